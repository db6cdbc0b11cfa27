import { rpcUrlRedactor } from '@xhedge/evm';
import { RateLimitError, VenueNetworkError } from '@xhedge/venue';
import { z } from 'zod';

/**
 * How an oracle keeper endpoint is named in messages: as RPC URLs are (`rpcUrlRedactor`), its origin
 * alone (`https://host/[redacted]`) when its userinfo, path or query could hold an API key.
 */
export function endpointLabel(url: string): string {
  return rpcUrlRedactor([url]).text(url);
}

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

/** `schema` over an endpoint's answer; throws naming `what`, the first wrong entry and field. */
function parseAnswer<S extends z.ZodType>(schema: S, body: unknown, what: string): z.output<S> {
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const where = issue?.path.length ? issue.path.join('.') : 'the answer';
  throw new Error(`${what} answered in an unexpected format: ${where}: ${issue?.message ?? 'invalid'}`);
}

/** A token's price in GMX units (min/max) and when the oracle keeper last updated it. */
export interface GmxTokenPrice {
  min: bigint;
  max: bigint;
  updatedAtMs: number;
}

/**
 * Parses a `/prices/tickers` answer into prices by lowercase token address (exact: the decimal
 * strings become bigints, no float on the way). Throws, naming the first entry and field that is
 * wrong, when the answer is not in the documented format. `source` names the endpoint in that error:
 * pass {@link endpointLabel} of its URL, never the URL.
 */
export function parseGmxTickers(body: unknown, source: string): Map<string, GmxTokenPrice> {
  const data = parseAnswer(GmxTickersResponse, body, `the GMX prices endpoint ${source}`);
  const out = new Map<string, GmxTokenPrice>();
  for (const t of data) {
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
 * GETs `url`, a GMX oracle keeper endpoint (`what` names it in errors), and returns its JSON.
 * Transport failures and non-2xx answers become retryable venue errors (429: `RateLimitError`); an
 * answer that is not JSON throws. Errors name the endpoint by {@link endpointLabel}, and what fetch or
 * the JSON parser threw (a message quoting the URL or a body echoing it) is scrubbed of it in place.
 */
async function fetchGmxJson(
  url: string,
  what: string,
  opts: { venue: string; timeoutMs: number; fetchImpl?: typeof fetch },
): Promise<unknown> {
  const doFetch = opts.fetchImpl ?? fetch;
  const redactor = rpcUrlRedactor([url]);
  const label = redactor.text(url);
  let res: Response;
  try {
    res = await doFetch(url, {
      signal: AbortSignal.timeout(opts.timeoutMs),
      headers: { accept: 'application/json' },
    });
  } catch (err) {
    const why = redactor.text(err instanceof Error ? err.message : String(err));
    throw new VenueNetworkError({
      venue: opts.venue,
      message: `${what} ${label} did not answer: ${why}`,
      cause: redactor.error(err),
    });
  }
  if (res.status === 429) {
    const after = Number(res.headers.get('retry-after'));
    throw new RateLimitError({
      venue: opts.venue,
      message: `${what} ${label} is rate limiting (HTTP 429)`,
      ...(Number.isFinite(after) && after > 0 ? { retryAfterMs: after * 1000 } : {}),
    });
  }
  if (!res.ok) {
    throw new VenueNetworkError({
      venue: opts.venue,
      message: `${what} ${label} answered HTTP ${res.status}`,
      details: { status: res.status },
    });
  }
  try {
    return await res.json();
  } catch (err) {
    throw new Error(`${what} ${label} answered with something that is not JSON`, {
      cause: redactor.error(err),
    });
  }
}

/** Fetches and parses `url`, a GMX `/prices/tickers` endpoint (see {@link parseGmxTickers}). */
export async function fetchGmxTickers(
  url: string,
  opts: { venue: string; timeoutMs: number; fetchImpl?: typeof fetch },
): Promise<Map<string, GmxTokenPrice>> {
  return parseGmxTickers(await fetchGmxJson(url, 'the GMX prices endpoint', opts), endpointLabel(url));
}

/**
 * The GMX oracle keeper's `GET /tokens` (e.g. https://arbitrum-api.gmxinfra.io/tokens, GMX's REST v2
 * docs): `{ "tokens": [{ "symbol", "address", "decimals", "synthetic"? }] }`, every token the keepers
 * price, synthetic index tokens (no ERC-20 contract) among them.
 */
export const GmxTokensResponse = z.object({
  tokens: z.array(
    z.object({
      symbol: z.string().min(1),
      address: z.string().regex(/^0x[0-9a-fA-F]{40}$/, 'an address'),
      decimals: z.number().int().min(0).max(36),
      synthetic: z.boolean().optional(),
    }),
  ),
});

/** One token of the list, as the adapter lists index tokens. */
export interface GmxTokenInfo {
  address: `0x${string}`;
  symbol: string;
  decimals: number;
  synthetic: boolean;
}

/** Parses a `/tokens` answer; throws naming the first entry and field that is wrong. */
export function parseGmxTokens(body: unknown, source: string): GmxTokenInfo[] {
  return parseAnswer(GmxTokensResponse, body, `the GMX tokens endpoint ${source}`).tokens.map((t) => ({
    address: t.address as `0x${string}`,
    symbol: t.symbol,
    decimals: t.decimals,
    synthetic: t.synthetic ?? false,
  }));
}

/** Fetches and parses `url`, a GMX `/tokens` endpoint. */
export async function fetchGmxTokens(
  url: string,
  opts: { venue: string; timeoutMs: number; fetchImpl?: typeof fetch },
): Promise<GmxTokenInfo[]> {
  return parseGmxTokens(await fetchGmxJson(url, 'the GMX tokens endpoint', opts), endpointLabel(url));
}
