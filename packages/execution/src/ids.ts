import { createHash } from 'node:crypto';

/** Venues take at most 64 characters in the client order id (OrderRequest contract). */
export const CLIENT_ORDER_ID_MAX = 64;

/**
 * The venue client order id of an intent: `xh-<intent id>` (deterministic, so a retried or
 * reconciled job asks the venue about the same id), hashed down when it would exceed 64 characters.
 * Only letters, digits, `_` and `-` (what every adapter maps from).
 */
export function clientOrderIdFor(intentId: string): string {
  const plain = `xh-${intentId}`;
  if (plain.length <= CLIENT_ORDER_ID_MAX && /^[A-Za-z0-9_-]+$/.test(plain)) return plain;
  return `xh-h-${createHash('sha256').update(intentId).digest('hex').slice(0, 40)}`;
}
