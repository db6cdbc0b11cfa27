import { RateLimitError, VenueNetworkError } from '@xhedge/venue';
import { z } from 'zod';

/**
 * One entry of the GMX oracle keeper's `GET /prices/tickers` (e.g.
 * https://arbitrum-api.gmxinfra.io/prices/tickers), as gmx-io/gmx-interface declares and records it
 * (commit a78e920e7c779ddd875ee857cc8b240d20ee42d9: `TickersResponse` in
 * sdk/src/clients/v1/modules/oracle.ts, a recorded Arbitrum answer in
 * sdk/src/test/fixtures/arbitrumTickers.json): `tokenAddress` (checksummed), `tokenSymbol`, `minPrice`
 * and `maxPrice` as decimal strings in GMX contract units (USD per smallest token unit × 10^30, what
 * `Oracle`/`MarketPrices` take; the interface reads them with `parseContractPrice(BigInt(minPrice),
 * decimals)`), `updatedAt` in milliseconds and `timestamp` in seconds. Older answers also carried
 * `oracleDecimals`; it is ignored.
 */
const isUint = (s: string) => /^[0-9]+$/.test(s);

export const GmxTicker = z
  .object({
    tokenAddress: z.string().regex(/^0x[0-9a-fA-F]{40}$/, 'an address'),
    tokenSymbol: z.string().optional(),
    minPrice: z.string().regex(/^[0-9]+$/, 'a non-negative integer string'),
    maxPrice: z.string().regex(/^[0-9]+$/, 'a non-negative integer string'),
    /** Milliseconds since the epoch. */
    updatedAt: z.number().int().nonnegative().optional(),
    /** Seconds since the epoch. */
    timestamp: z.number().int().nonnegative().optional(),
  })
  .refine((t) => t.updatedAt !== undefined || t.timestamp !== undefined, {
    message: 'neither updatedAt (ms) nor timestamp (s) is given',
  })
  .refine((t) => !isUint(t.minPrice) || !isUint(t.maxPrice) || BigInt(t.maxPrice) >= BigInt(t.minPrice), {
    message: 'maxPrice is below minPrice',
  });
export type GmxTicker = z.output<typeof GmxTicker>;
export const GmxTickersResponse = z.array(GmxTicker);

/** A token's price in GMX units (min/max) and when the oracle keeper last updated it. */
export interface GmxTokenPrice {
  min: bigint;
  max: bigint;
  updatedAtMs: number;
}

/**
 * Parses a `/prices/tickers` answer into prices by lowercase token address (exact: the decimal
 * strings become bigints, no float on the way). Throws, naming the first entry and field that is
 * wrong, when the answer is not in the documented format.
 */
export function parseGmxTickers(body: unknown, source: string): Map<string, GmxTokenPrice> {
  const parsed = GmxTickersResponse.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? issue.path.join('.') : 'the answer';
    throw new Error(
      `the GMX prices endpoint ${source} answered in an unexpected format: ${where}: ${issue?.message ?? 'invalid'}`,
    );
  }
  const out = new Map<string, GmxTokenPrice>();
  for (const t of parsed.data) {
    out.set(t.tokenAddress.toLowerCase(), {
      min: BigInt(t.minPrice),
      max: BigInt(t.maxPrice),
      // updatedAt is the keeper's own millisecond time; timestamp (seconds) when it is missing.
      updatedAtMs: t.updatedAt ?? (t.timestamp as number) * 1000,
    });
  }
  return out;
}

/**
 * Fetches and parses `url` (a GMX `/prices/tickers` endpoint). Transport failures and non-2xx answers
 * become retryable venue errors (429: `RateLimitError`); an answer in another format throws (see
 * {@link parseGmxTickers}).
 */
export async function fetchGmxTickers(
  url: string,
  opts: { venue: string; timeoutMs: number; fetchImpl?: typeof fetch },
): Promise<Map<string, GmxTokenPrice>> {
  const doFetch = opts.fetchImpl ?? fetch;
  let res: Response;
  try {
    res = await doFetch(url, {
      signal: AbortSignal.timeout(opts.timeoutMs),
      headers: { accept: 'application/json' },
    });
  } catch (err) {
    throw new VenueNetworkError({
      venue: opts.venue,
      message: `the GMX prices endpoint ${url} did not answer: ${err instanceof Error ? err.message : String(err)}`,
      cause: err,
    });
  }
  if (res.status === 429) {
    const after = Number(res.headers.get('retry-after'));
    throw new RateLimitError({
      venue: opts.venue,
      message: `the GMX prices endpoint ${url} is rate limiting (HTTP 429)`,
      ...(Number.isFinite(after) && after > 0 ? { retryAfterMs: after * 1000 } : {}),
    });
  }
  if (!res.ok) {
    throw new VenueNetworkError({
      venue: opts.venue,
      message: `the GMX prices endpoint ${url} answered HTTP ${res.status}`,
      details: { status: res.status },
    });
  }
  let body: unknown;
  try {
    body = await res.json();
  } catch (err) {
    throw new Error(`the GMX prices endpoint ${url} answered with something that is not JSON`, {
      cause: err,
    });
  }
  return parseGmxTickers(body, url);
}
