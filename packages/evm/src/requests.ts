import { Dec } from '@xhedge/core';
import { InvalidOrderError, type OrderRequest, type QuoteRequest } from '@xhedge/venue';
import type { z } from 'zod';

/**
 * Validates an order or quote request at an adapter's boundary: schema problems and non-positive sizes
 * become InvalidOrderErrors (rejected, never retried), as the adapter contract requires.
 */
export function parseVenueRequest<S extends typeof OrderRequest | typeof QuoteRequest>(
  schema: S,
  input: unknown,
  venue: string,
): z.output<S> {
  const res = schema.safeParse(input);
  const cid =
    typeof input === 'object' && input !== null
      ? (input as { clientOrderId?: unknown }).clientOrderId
      : undefined;
  const clientOrderId =
    typeof cid === 'string' && cid.length > 0 && cid.length <= 64 ? { clientOrderId: cid } : {};
  if (!res.success) {
    throw new InvalidOrderError({
      venue,
      message: `invalid request: ${res.error.issues.map((i) => `${i.path.join('.') || '<root>'}: ${i.message}`).join('; ')}`,
      ...clientOrderId,
    });
  }
  const sizeBase = (res.data as { sizeBase: string }).sizeBase;
  const size = new Dec(sizeBase);
  if (!size.isFinite() || size.lte(0)) {
    throw new InvalidOrderError({
      venue,
      message: `size must be positive, got ${sizeBase}`,
      ...clientOrderId,
    });
  }
  return res.data as z.output<S>;
}
