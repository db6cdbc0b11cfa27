import {
  type Commitment,
  type Connection,
  type PublicKey,
  SolanaJSONRPCError,
  SolanaJSONRPCErrorCode,
} from '@solana/web3.js';

export type ConfirmationLevel = 'processed' | 'confirmed' | 'finalized';

export interface SignatureStatus {
  confirmationStatus: ConfirmationLevel | null;
  /** The transaction's error when it landed and failed (it still paid its fee). */
  err: unknown;
  slot: number;
  /** Program log lines, when the transport has them (used to explain reverts). */
  logs?: string[];
}

export interface AccountReadOptions {
  /**
   * The oldest slot the answer may reflect: a node (or load-balanced replica) still behind it throws
   * {@link MinContextSlotNotReachedError} instead of answering from older state.
   */
  minContextSlot?: number;
}

/** The node answering a read has not yet reached the slot the read asked for; ask again later. */
export class MinContextSlotNotReachedError extends Error {
  override name = 'MinContextSlotNotReachedError';
  readonly minContextSlot: number;
  /** The slot the node was at, when it said. */
  readonly contextSlot: number | undefined;
  constructor(minContextSlot: number, contextSlot?: number, options?: ErrorOptions) {
    super(
      `node state is older than slot ${minContextSlot}${contextSlot === undefined ? '' : ` (at slot ${contextSlot})`}`,
      options,
    );
    this.minContextSlot = minContextSlot;
    this.contextSlot = contextSlot;
  }
}

/**
 * What the adapter needs from a Solana node. Implemented over `@solana/web3.js` `Connection` by
 * {@link connectionRpc}, and over an in-process SVM in tests.
 */
export interface SolanaRpc {
  getAccountData(address: PublicKey, opts?: AccountReadOptions): Promise<Uint8Array | null>;
  getLatestBlockhash(): Promise<{ blockhash: string; lastValidBlockHeight: number }>;
  getBlockHeight(): Promise<number>;
  /** Sends a signed, serialized transaction; returns its signature (base58). */
  sendRawTransaction(raw: Uint8Array): Promise<string>;
  getSignatureStatus(signature: string): Promise<SignatureStatus | null>;
}

const RANK: Record<ConfirmationLevel, number> = { processed: 0, confirmed: 1, finalized: 2 };

/** True when `status` has reached at least `wanted`. */
export function reached(status: ConfirmationLevel | null, wanted: ConfirmationLevel): boolean {
  return status !== null && RANK[status] >= RANK[wanted];
}

/**
 * A {@link SolanaRpc} over a web3.js Connection. Reads use `commitment`; sends skip preflight
 * (the outcome is decided by confirmation, and preflight would hide a landed-but-failed transaction).
 */
export function connectionRpc(connection: Connection, commitment: Commitment = 'confirmed'): SolanaRpc {
  return {
    async getAccountData(address, opts) {
      const min = opts?.minContextSlot;
      let res: Awaited<ReturnType<Connection['getAccountInfoAndContext']>>;
      try {
        res = await connection.getAccountInfoAndContext(address, {
          commitment,
          ...(min === undefined ? {} : { minContextSlot: min }),
        });
      } catch (err) {
        if (
          min !== undefined &&
          err instanceof SolanaJSONRPCError &&
          err.code === SolanaJSONRPCErrorCode.JSON_RPC_SERVER_ERROR_MIN_CONTEXT_SLOT_NOT_REACHED
        )
          throw new MinContextSlotNotReachedError(min, undefined, { cause: err });
        throw err;
      }
      // Checked here too: not every provider enforces minContextSlot.
      if (min !== undefined && res.context.slot < min)
        throw new MinContextSlotNotReachedError(min, res.context.slot);
      return res.value ? new Uint8Array(res.value.data) : null;
    },
    getLatestBlockhash: () => connection.getLatestBlockhash(commitment),
    getBlockHeight: () => connection.getBlockHeight(commitment),
    sendRawTransaction: (raw) =>
      connection.sendRawTransaction(raw, {
        skipPreflight: true,
        maxRetries: 0,
        preflightCommitment: commitment,
      }),
    async getSignatureStatus(signature) {
      const res = await connection.getSignatureStatuses([signature], { searchTransactionHistory: true });
      const s = res.value[0];
      if (!s) return null;
      return { confirmationStatus: s.confirmationStatus ?? null, err: s.err, slot: s.slot };
    },
  };
}
