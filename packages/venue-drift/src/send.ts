import type { VersionedTransaction } from '@solana/web3.js';
import {
  NotConfirmedError,
  type OrderOutcome,
  type VenueError,
  VenueNetworkError,
  VenueTimeoutError,
} from '@xhedge/venue';
import bs58 from 'bs58';
import { landedFailureError } from './program-errors.ts';
import { type ConfirmationLevel, findRpcTimeout, reached, type SolanaRpc } from './rpc.ts';

/**
 * The venue error for a failed call to the node: `VenueTimeoutError` (code `VENUE_TIMEOUT`) when a
 * request got no answer within its limit (an {@link RpcTimeoutError} in the cause chain; the message
 * says which request, the limit and `params.rpcTimeoutMs`), else `VenueNetworkError`. Both are
 * retryable; `outcome` is the order's: `not-sent` for a read made before anything went out, `unknown`
 * once a transaction may have gone out (a timed-out send may have reached a leader and landed).
 */
export function rpcFailure(p: {
  venue: string;
  message: string;
  outcome: OrderOutcome;
  clientOrderId?: string;
  details?: Record<string, unknown>;
  cause: unknown;
}): VenueError {
  const timeout = findRpcTimeout(p.cause);
  if (!timeout) return new VenueNetworkError(p);
  return new VenueTimeoutError({
    ...p,
    message: `${p.message}: ${timeout.message}`,
    details: { ...p.details, rpcMethod: timeout.method, rpcTimeoutMs: timeout.timeoutMs },
  });
}

/**
 * How long a confirmation is waited for at most, ms, whatever the node says of its block height: a
 * blockhash lasts 150 blocks (60-90 s), so the expiry check ends the wait first on a live chain; this
 * ends it on a node whose block height has stopped (stalled, cut off from the cluster), which would
 * otherwise be polled for ever.
 */
export const CONFIRM_MAX_WAIT_MS = 120_000;

export interface SendAndConfirmOptions {
  rpc: SolanaRpc;
  /** Signed. Its first signature is the transaction id, known before sending. */
  tx: VersionedTransaction;
  /** From getLatestBlockhash: past this block height the transaction can never land. */
  lastValidBlockHeight: number;
  commitment: ConfirmationLevel;
  venue: string;
  clientOrderId?: string;
  /** Poll interval, ms. @defaultValue 400 (one slot) */
  pollMs?: number;
  /** Re-broadcast every this many polls while unconfirmed (leaders drop transactions). @defaultValue 5 */
  rebroadcastEvery?: number;
  sleep: (ms: number) => Promise<void>;
  /** The time, ms, against which {@link SendAndConfirmOptions.maxWaitMs} is measured. @defaultValue Date.now */
  nowMs?: () => number;
  /** The longest wait for confirmation after the send, ms. @defaultValue {@link CONFIRM_MAX_WAIT_MS} */
  maxWaitMs?: number;
}

export interface SendAndConfirmResult {
  signature: string;
  slot: number;
}

export function signatureOf(tx: VersionedTransaction): string {
  const sig = tx.signatures[0];
  if (!sig) throw new RangeError('transaction is not signed');
  return bs58.encode(sig);
}

/**
 * Sends and waits for `commitment`. Throws:
 * - outcome rejected when the transaction landed with an error: the class its program error says
 *   ({@link landedFailureError}: InsufficientFundsError, InvalidOrderError, ... else RevertedError);
 * - NotConfirmedError (outcome unknown) when the block height passed `lastValidBlockHeight`
 *   without a status: the caller resolves it by looking the order up (the transaction can no
 *   longer land, so "not found" then means it never will); also when `maxWaitMs` passed first (a
 *   node whose block height has stopped): the transaction may still land, and the lookup says so;
 * - VenueTimeoutError (outcome unknown) when the send, or a status or block height read after it, got
 *   no answer within `params.rpcTimeoutMs`: the transaction may have landed;
 * - VenueNetworkError (outcome unknown) when the node could not be reached otherwise, after sending.
 */
export async function sendAndConfirm(o: SendAndConfirmOptions): Promise<SendAndConfirmResult> {
  const signature = signatureOf(o.tx);
  const raw = o.tx.serialize();
  const pollMs = o.pollMs ?? 400;
  const every = o.rebroadcastEvery ?? 5;
  const base = {
    venue: o.venue,
    ...(o.clientOrderId === undefined ? {} : { clientOrderId: o.clientOrderId }),
  };
  const nowMs = o.nowMs ?? Date.now;
  const maxWaitMs = o.maxWaitMs ?? CONFIRM_MAX_WAIT_MS;
  const details = { signature, lastValidBlockHeight: o.lastValidBlockHeight };
  try {
    await o.rpc.sendRawTransaction(raw);
  } catch (cause) {
    // The signed bytes may have reached a leader (a timed-out send too): only a status lookup can tell.
    throw rpcFailure({
      ...base,
      message: `sending transaction ${signature} failed`,
      outcome: 'unknown',
      details,
      cause,
    });
  }
  const sentAtMs = nowMs();
  // After the send, a read that fails says nothing about the transaction: outcome unknown.
  const afterSend = async <T>(what: string, call: () => Promise<T>): Promise<T> => {
    try {
      return await call();
    } catch (cause) {
      throw rpcFailure({
        ...base,
        message: `transaction ${signature} was sent, but reading its ${what} failed`,
        outcome: 'unknown',
        details,
        cause,
      });
    }
  };
  for (let poll = 1; ; poll++) {
    const status = await afterSend('status', () => o.rpc.getSignatureStatus(signature));
    if (status?.err) {
      // rejected, classed by the program error it carries (decoded: Drift InsufficientCollateral, ...)
      throw landedFailureError({
        ...base,
        signature,
        slot: status.slot,
        err: status.err,
        ...(status.logs ? { logs: status.logs } : {}),
      });
    }
    if (status && reached(status.confirmationStatus, o.commitment)) return { signature, slot: status.slot };
    const height = await afterSend('block height', () => o.rpc.getBlockHeight());
    if (height > o.lastValidBlockHeight && status === null) {
      throw new NotConfirmedError({
        ...base,
        message: `transaction ${signature} not confirmed before its blockhash expired (height ${height} > ${o.lastValidBlockHeight})`,
        details: { ...details, blockHeight: height },
      });
    }
    const waitedMs = nowMs() - sentAtMs;
    if (waitedMs >= maxWaitMs) {
      throw new NotConfirmedError({
        ...base,
        message: `transaction ${signature} not confirmed within ${maxWaitMs} ms of sending, its blockhash not expired at the node's block height ${height} (valid to ${o.lastValidBlockHeight}): the node may have stalled; the transaction may still land`,
        details: {
          ...details,
          blockHeight: height,
          confirmationStatus: status?.confirmationStatus ?? null,
          waitedMs,
        },
      });
    }
    // Re-broadcast is best-effort: a failure here changes nothing, the next status poll decides.
    if (status === null && poll % every === 0) await o.rpc.sendRawTransaction(raw).catch(() => undefined);
    await o.sleep(pollMs);
  }
}
