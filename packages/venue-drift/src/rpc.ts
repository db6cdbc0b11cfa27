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

/**
 * A Solana JSON-RPC request that got no complete answer (status, headers and body) within its time
 * limit; the request was aborted and its socket closed. The message names the JSON-RPC method, the
 * limit and the option that sets it, never the URL (a provider's key often sits in its path or query).
 */
export class RpcTimeoutError extends Error {
  override name = 'RpcTimeoutError';
  /** The JSON-RPC method asked (`getAccountInfo`, `sendTransaction`, ...), or `batch` / `request`. */
  readonly method: string;
  readonly timeoutMs: number;
  constructor(method: string, timeoutMs: number, option: string, options?: ErrorOptions) {
    super(`Solana RPC ${method} got no answer within ${timeoutMs} ms (${option})`, options);
    this.method = method;
    this.timeoutMs = timeoutMs;
  }
}

/** The RpcTimeoutError in `err`'s cause chain, if any. */
export function findRpcTimeout(err: unknown): RpcTimeoutError | undefined {
  let e = err;
  for (let depth = 0; e instanceof Error && depth < 16; depth++, e = e.cause) {
    if (e instanceof RpcTimeoutError) return e;
  }
  return undefined;
}

/** The JSON-RPC method of a request body, for error messages: a plain method name or nothing. */
function rpcMethodOf(body: unknown): string {
  if (typeof body !== 'string') return 'request';
  try {
    const parsed: unknown = JSON.parse(body);
    if (Array.isArray(parsed)) return 'batch';
    const method = (parsed as { method?: unknown } | null)?.method;
    return typeof method === 'string' && /^[A-Za-z][A-Za-z0-9_]{0,63}$/.test(method) ? method : 'request';
  } catch {
    return 'request';
  }
}

/** HTTP statuses whose Response may not carry a body. */
const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);

export interface TimeoutFetchOptions {
  /** Each request's limit, ms, from sending it to the last byte of its answer. */
  timeoutMs: number;
  /** The setting named in the timeout's message. @defaultValue 'params.rpcTimeoutMs' */
  option?: string;
  /** @defaultValue globalThis.fetch */
  fetch?: typeof globalThis.fetch;
}

/**
 * A `fetch` for web3.js `Connection` (its `fetch` option) under which every request has a time limit
 * of its own: the whole exchange, body included (a node that sends headers and then stalls is cut off
 * too), is aborted after `timeoutMs` and rejected with {@link RpcTimeoutError}. The answer is read in
 * full before it is handed back, so nothing of it is left open after the limit. web3.js passes the
 * rejection on unchanged (its own retries only follow HTTP 429 answers, each a request of its own).
 */
export function timeoutFetch(o: TimeoutFetchOptions): typeof globalThis.fetch {
  if (!Number.isInteger(o.timeoutMs) || o.timeoutMs <= 0)
    throw new RangeError(`timeoutMs must be a positive integer, got ${o.timeoutMs}`);
  const option = o.option ?? 'params.rpcTimeoutMs';
  const inner = o.fetch ?? globalThis.fetch;
  return async (input, init) => {
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, o.timeoutMs);
    const outer = init?.signal ?? undefined;
    const passOn = () => controller.abort(outer?.reason);
    if (outer?.aborted) passOn();
    else outer?.addEventListener('abort', passOn, { once: true });
    try {
      const res = await inner(input, { ...init, signal: controller.signal });
      const body = await res.arrayBuffer();
      return new Response(NULL_BODY_STATUS.has(res.status) ? null : body, {
        status: res.status,
        statusText: res.statusText,
        headers: res.headers,
      });
    } catch (err) {
      if (timedOut) throw new RpcTimeoutError(rpcMethodOf(init?.body), o.timeoutMs, option, { cause: err });
      throw err;
    } finally {
      clearTimeout(timer);
      outer?.removeEventListener('abort', passOn);
    }
  };
}
