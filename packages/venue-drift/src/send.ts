import type { VersionedTransaction } from '@solana/web3.js';
import { NotConfirmedError, VenueNetworkError } from '@xhedge/venue';
import bs58 from 'bs58';
import { landedFailureError } from './program-errors.ts';
import { type ConfirmationLevel, reached, type SolanaRpc } from './rpc.ts';

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
 *   longer land, so "not found" then means it never will);
 * - VenueNetworkError (outcome unknown) when the node could not be reached after sending.
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
  try {
    await o.rpc.sendRawTransaction(raw);
  } catch (cause) {
    // The signed bytes may have reached a leader: only a status lookup can tell.
    throw new VenueNetworkError({
      ...base,
      message: `sending transaction ${signature} failed`,
      outcome: 'unknown',
      details: { signature, lastValidBlockHeight: o.lastValidBlockHeight },
      cause,
    });
  }
  for (let poll = 1; ; poll++) {
    const status = await o.rpc.getSignatureStatus(signature);
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
    const height = await o.rpc.getBlockHeight();
    if (height > o.lastValidBlockHeight && status === null) {
      throw new NotConfirmedError({
        ...base,
        message: `transaction ${signature} not confirmed before its blockhash expired (height ${height} > ${o.lastValidBlockHeight})`,
        details: { signature, lastValidBlockHeight: o.lastValidBlockHeight, blockHeight: height },
      });
    }
    // Re-broadcast is best-effort: a failure here changes nothing, the next status poll decides.
    if (status === null && poll % every === 0) await o.rpc.sendRawTransaction(raw).catch(() => undefined);
    await o.sleep(pollMs);
  }
}
