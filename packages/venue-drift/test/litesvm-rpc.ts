import { type PublicKey, VersionedTransaction } from '@solana/web3.js';
import bs58 from 'bs58';
import { FailedTransactionMetadata, type LiteSVM } from 'litesvm';
import {
  type AccountReadOptions,
  MinContextSlotNotReachedError,
  type SignatureStatus,
  type SolanaRpc,
} from '../src/rpc.ts';

/** Blocks a blockhash stays valid for on mainnet; litesvm has no block height, its slot stands in. */
export const BLOCKHASH_VALIDITY_BLOCKS = 150;

/**
 * A SolanaRpc over an in-process litesvm. `dropNext()` makes the next send vanish (a leader that
 * never included it), so blockhash expiry and the unknown outcome can be produced on demand.
 */
export class LiteSvmRpc implements SolanaRpc {
  readonly svm: LiteSVM;
  readonly #statuses = new Map<string, SignatureStatus>();
  #drop = 0;
  #validUntil = new Map<string, number>();
  readonly #lagging = new Map<string, { data: Uint8Array | null; slot: number }>();
  sends = 0;
  /** The last transaction handed to sendRawTransaction. */
  lastTx: VersionedTransaction | undefined;
  /**
   * Stands in for a program litesvm cannot run: called for every executed send; returning true
   * means "the program ran and succeeded" (the emulator has written the accounts it would write),
   * `{ err }` that it ran and failed (the transaction lands with that error), false that litesvm
   * executes it.
   */
  emulate: ((tx: VersionedTransaction) => boolean | { err: unknown }) | undefined;

  constructor(svm: LiteSVM) {
    this.svm = svm;
  }
  dropNext(n = 1): void {
    this.#drop += n;
  }
  slot(): number {
    return Number(this.svm.getClock().slot);
  }
  /** Moves the chain forward `blocks` slots with a fresh blockhash. */
  advance(blocks: number): void {
    this.svm.warpToSlot(BigInt(this.slot() + blocks));
    this.svm.expireBlockhash();
  }
  /**
   * Serves reads of `address` from a replica stuck at the current slot: later writes stay unseen
   * until {@link catchUp}, and a read asking for a later `minContextSlot` is refused, as a node does.
   */
  lagAccount(address: PublicKey): void {
    const acc = this.svm.getAccount(address);
    this.#lagging.set(address.toBase58(), {
      data: acc ? new Uint8Array(acc.data) : null,
      slot: this.slot(),
    });
  }
  /** Every lagging replica catches up with the chain. */
  catchUp(): void {
    this.#lagging.clear();
  }
  async getAccountData(address: PublicKey, opts?: AccountReadOptions): Promise<Uint8Array | null> {
    const lag = this.#lagging.get(address.toBase58());
    const contextSlot = lag?.slot ?? this.slot();
    if (opts?.minContextSlot !== undefined && contextSlot < opts.minContextSlot)
      throw new MinContextSlotNotReachedError(opts.minContextSlot, contextSlot);
    if (lag) return lag.data;
    const acc = this.svm.getAccount(address);
    return acc ? new Uint8Array(acc.data) : null;
  }
  async getLatestBlockhash(): Promise<{ blockhash: string; lastValidBlockHeight: number }> {
    const blockhash = this.svm.latestBlockhash();
    const lastValidBlockHeight = this.#validUntil.get(blockhash) ?? this.slot() + BLOCKHASH_VALIDITY_BLOCKS;
    this.#validUntil.set(blockhash, lastValidBlockHeight);
    return { blockhash, lastValidBlockHeight };
  }
  async getBlockHeight(): Promise<number> {
    return this.slot();
  }
  async sendRawTransaction(raw: Uint8Array): Promise<string> {
    this.sends += 1;
    const tx = VersionedTransaction.deserialize(raw);
    this.lastTx = tx;
    const sigBytes = tx.signatures[0];
    if (!sigBytes) throw new Error('unsigned transaction');
    const signature = bs58.encode(sigBytes);
    if (this.#drop > 0) {
      this.#drop -= 1;
      return signature;
    }
    if (this.#statuses.has(signature)) return signature;
    const emulated = this.emulate?.(tx);
    if (emulated) {
      this.land(signature, emulated === true ? null : emulated.err);
      return signature;
    }
    const res = this.svm.sendTransaction(tx);
    if (res instanceof FailedTransactionMetadata) {
      // litesvm 0.8: calling err() on an executed failure aborts the process at exit (native
      // bad_alloc under vitest), so the error is read from toString() instead.
      const text = res.toString();
      const meta = res.meta();
      // Transactions rejected before execution (bad blockhash, missing program) never land.
      if (meta.computeUnitsConsumed() === 0n) return signature;
      const err = /err: ([^,]+(?:\{[^}]*\})?)/.exec(text)?.[1] ?? 'failed';
      this.#statuses.set(signature, {
        confirmationStatus: 'confirmed',
        err,
        slot: this.slot(),
        logs: meta.logs(),
      });
    } else {
      this.#statuses.set(signature, {
        confirmationStatus: 'confirmed',
        err: null,
        slot: this.slot(),
        logs: res.logs(),
      });
    }
    return signature;
  }
  async getSignatureStatus(signature: string): Promise<SignatureStatus | null> {
    return this.#statuses.get(signature) ?? null;
  }
  /** Marks a signature as landed: stands in for the Drift program's execution, which litesvm cannot run. */
  land(signature: string, err: unknown = null): void {
    this.#statuses.set(signature, { confirmationStatus: 'confirmed', err, slot: this.slot() });
  }
}
