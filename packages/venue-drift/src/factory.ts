import { join } from 'node:path';
import { Connection, Keypair, PublicKey } from '@solana/web3.js';
import {
  type ChainId,
  type Clock,
  InstrumentId,
  parseInstrumentId,
  redact,
  resolveSecret,
  SecretError,
  systemClock,
  XhedgeError,
} from '@xhedge/core';
import type { HedgeQuote, QuoteRequest } from '@xhedge/venue';
import bs58 from 'bs58';
import { z } from 'zod';
import { DriftVenue, type DriftVenueOptions, keypairSigner } from './adapter.ts';
import { decodePerpMarket } from './decode.ts';
import { driftPda } from './instructions.ts';
import { PRICE_PRECISION } from './layout.ts';
import { fileUserOrderIdStore, UserOrderIdMap } from './order-ids.ts';
import { connectionRpc, type SolanaRpc, timeoutFetch } from './rpc.ts';

/** Drift protocol-v2's program on mainnet-beta and devnet. */
export const DRIFT_PROGRAM_ID = 'dRiftyHA39MWEi3m9aunc5MzRF1JYuBsbn6VPcn33UH';

const PublicKeyParam = z.string().refine(
  (s) => {
    try {
      return new PublicKey(s).toBase58() === s;
    } catch {
      return false;
    }
  },
  { error: 'expected a base58 Solana address' },
);

const U16 = z.number().int().min(0).max(65_535);

/** The longest `params.rpcTimeoutMs` accepted: 2 minutes (a node silent that long is not answering). */
export const RPC_TIMEOUT_MAX_MS = 120_000;

const DriftMarketParams = z
  .object({
    /** Canonical perp instrument id, `SOL-USD:PERP`. */
    instrument: InstrumentId.refine(
      (id) => {
        try {
          return parseInstrumentId(id).kind === 'perp';
        } catch {
          return true; // InstrumentId has said what is wrong
        }
      },
      { error: 'Drift markets here are perps: expected an id such as SOL-USD:PERP' },
    ),
    /** Drift's perp market index (0 = SOL-PERP, 1 = BTC-PERP, 2 = ETH-PERP on mainnet). */
    marketIndex: U16,
  })
  .strict();

/** The instrument's base asset; undefined for an invalid id (InstrumentId reports it). */
function baseOf(instrument: string): string | undefined {
  try {
    return parseInstrumentId(instrument).base;
  } catch {
    return undefined;
  }
}

/** The `params` of a `drift` venue in an operator profile. */
export const DriftVenueParams = z
  .object({
    /** @defaultValue Drift mainnet `dRiftyHA39MWEi3m9aunc5MzRF1JYuBsbn6VPcn33UH` */
    programId: PublicKeyParam.default(DRIFT_PROGRAM_ID),
    /** The signer's Drift sub-account. @defaultValue 0 */
    subAccountId: U16.default(0),
    markets: z.array(DriftMarketParams).min(1, 'list at least one perp market'),
    /** Collateral spot market (USDC = 0 on Drift). @defaultValue 0 */
    quoteSpotMarketIndex: U16.optional(),
    /** Priority fee, micro-lamports per compute unit. @defaultValue 10000 */
    computeUnitPriceMicroLamports: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
    /** Compute units one order transaction may use (Solana's ceiling is 1.4M). @defaultValue 300000 */
    computeUnitLimit: z.number().int().positive().max(1_400_000).optional(),
    /**
     * No longer read: the taker fee comes from the Drift State account (perp fee tier 0, with the
     * market's fee_adjustment). Still accepted, so a profile or a venue stored through the API that set
     * it keeps starting (a refusal left such a venue out of the run, its positions out of the book);
     * building the venue warns that it is ignored.
     */
    takerFeeBps: z.number().nonnegative().optional(),
    /** Limit orders expire this many seconds after placement. @defaultValue 60 */
    orderTtlSeconds: z
      .number()
      .int()
      .positive()
      .max(86_400 * 30)
      .optional(),
    /** Commitment at which reads are made and an order counts as sent. @defaultValue 'confirmed' */
    commitment: z.enum(['processed', 'confirmed', 'finalized']).optional(),
    /**
     * Perp market whose oracle price is USD per SOL, used to price transaction fees in quotes. Need not
     * be among `markets`; when it is, its instrument must be SOL's. @defaultValue 0 (SOL-PERP)
     */
    solPriceMarketIndex: U16.default(0),
    /**
     * Time limit of each Solana JSON-RPC request, ms, from sending it to the last byte of the answer:
     * reads, the order send and each confirmation poll. A request past it is aborted (its socket
     * closed) and fails as `VenueTimeoutError` (retryable); for the order send, and a status read after
     * it, with outcome unknown (the transaction may have landed: the order is looked up by its client
     * id before anything is sent again). @defaultValue 10000
     */
    rpcTimeoutMs: z.number().int().min(100).max(RPC_TIMEOUT_MAX_MS).default(10_000),
  })
  .strict()
  .superRefine((p, ctx) => {
    const seen = new Map<string, number>();
    const indices = new Set<number>();
    p.markets.forEach((m, i) => {
      if (seen.has(m.instrument))
        ctx.addIssue({
          code: 'custom',
          path: ['markets', i, 'instrument'],
          message: `${m.instrument} is listed twice`,
        });
      if (indices.has(m.marketIndex))
        ctx.addIssue({
          code: 'custom',
          path: ['markets', i, 'marketIndex'],
          message: `market index ${m.marketIndex} is listed twice`,
        });
      seen.set(m.instrument, i);
      indices.add(m.marketIndex);
    });
    const sol = p.markets.find((m) => m.marketIndex === p.solPriceMarketIndex);
    const solBase = sol && baseOf(sol.instrument);
    if (sol && solBase !== undefined && solBase !== 'SOL')
      ctx.addIssue({
        code: 'custom',
        path: ['solPriceMarketIndex'],
        message: `market ${p.solPriceMarketIndex} is ${sol.instrument}, not a SOL market`,
      });
  });
export type DriftVenueParams = z.output<typeof DriftVenueParams>;
export type DriftVenueParamsInput = z.input<typeof DriftVenueParams>;

/** A secret by reference, as the operator config gives it: env var name or key file path. */
export type DriftSecretRef = { env: string } | { keyFile: string };

/** The operator config entry of a `drift` venue (a structural subset of `@xhedge/config`'s VenueConfig). */
export interface DriftVenueConfigLike {
  id: string;
  chain: ChainId;
  endpoints?: { rpc?: readonly (string | { env: string })[] | undefined };
  credentials?: Readonly<Record<string, DriftSecretRef>>;
  params?: Readonly<Record<string, unknown>>;
}

export interface CreateDriftVenueDeps {
  /** Where secrets are read: env vars (`process.env` by default) and key files. */
  secrets?: {
    env?: Readonly<Record<string, string | undefined>>;
    readFile?: (path: string) => string;
  };
  /** Folder of the client-order-id map file, `<dataDir>/<venueId>-drift-order-ids.json`. @defaultValue '.xhedge' */
  dataDir?: string;
  clock?: Clock;
  /** The node to talk to instead of `endpoints.rpc[0]` (tests). */
  rpc?: SolanaRpc;
  sleep?: (ms: number) => Promise<void>;
  /** Where a warning about the params goes (one that is ignored). @defaultValue process.emitWarning */
  warn?: (message: string) => void;
}

/** A Drift credential or endpoint could not be loaded; the message names the reference, never the value. */
export class DriftSecretError extends SecretError {
  override name = 'DriftSecretError';
}

/**
 * A {@link SolanaRpc} whose errors carry no RPC key: web3.js's fetch errors quote the request URL,
 * and a provider's key often sits in it (`?api-key=...`, or a path token). Messages and stacks are
 * redacted in place, so the error keeps its class and cause.
 */
export function redactingRpc(rpc: SolanaRpc): SolanaRpc {
  const clean = (err: unknown): unknown => {
    for (let e = err, depth = 0; e instanceof Error && depth < 16; e = e.cause, depth++) {
      rewrite(e, 'message', redact(e.message));
      if (e.stack) rewrite(e, 'stack', redact(e.stack));
    }
    return err;
  };
  const wrap =
    <A extends unknown[], R>(f: (...a: A) => Promise<R>) =>
    (...a: A) =>
      f(...a).catch((err: unknown) => {
        throw clean(err);
      });
  return {
    getAccountData: wrap(rpc.getAccountData),
    getLatestBlockhash: wrap(rpc.getLatestBlockhash),
    getBlockHeight: wrap(rpc.getBlockHeight),
    sendRawTransaction: wrap(rpc.sendRawTransaction),
    getSignatureStatus: wrap(rpc.getSignatureStatus),
  };
}

/**
 * Sets an error's `message` or `stack` when `text` differs. Some errors' `message` is a getter only
 * (a DOMException, such as fetch's AbortError): assigning it throws a TypeError, which replaced the
 * error being thrown (a timed-out request failed as "Cannot set property message"); such an error gets
 * an own property instead.
 */
function rewrite(e: Error, key: 'message' | 'stack', text: string): void {
  if (e[key] === text) return;
  try {
    e[key] = text;
  } catch {
    Object.defineProperty(e, key, { value: text, writable: true, configurable: true });
  }
}

function describeRef(ref: DriftSecretRef): string {
  return 'env' in ref ? `environment variable ${ref.env}` : `key file ${ref.keyFile}`;
}

/**
 * A Solana keypair from its secret: base58 of the 64-byte secret key (what wallets export) or a JSON
 * array of its 64 bytes (a `solana-keygen` key file). Errors say what shape was wrong, never echo the
 * text, and carry no cause (JSON.parse's message quotes its input).
 */
export function parseSolanaSecretKey(text: string, what = 'credentials.signer'): Keypair {
  let bytes: Uint8Array | undefined;
  if (text.startsWith('[')) {
    let arr: unknown;
    try {
      arr = JSON.parse(text);
    } catch {
      throw new DriftSecretError(`${what} is not valid JSON (expected an array of 64 bytes)`, {});
    }
    if (
      !Array.isArray(arr) ||
      arr.length !== 64 ||
      !arr.every((b) => typeof b === 'number' && Number.isInteger(b) && b >= 0 && b <= 255)
    )
      throw new DriftSecretError(`${what} is not a JSON array of 64 bytes (0-255)`, {
        length: Array.isArray(arr) ? arr.length : undefined,
      });
    bytes = Uint8Array.from(arr as number[]);
  } else {
    try {
      bytes = bs58.decode(text);
    } catch {
      throw new DriftSecretError(`${what} is neither base58 nor a JSON array of bytes`, {});
    }
    if (bytes.length !== 64)
      throw new DriftSecretError(`${what} decodes to ${bytes.length} bytes, expected a 64-byte secret key`, {
        length: bytes.length,
      });
  }
  try {
    return Keypair.fromSecretKey(bytes);
  } catch {
    throw new DriftSecretError(
      `${what} is not a valid ed25519 secret key (its public half does not match)`,
      {},
    );
  }
}

/** How long a SOL price read for fee estimates is reused, clock ms. */
const SOL_PRICE_MAX_AGE_MS = 30_000;

/**
 * USD per SOL for fee estimates: the oracle price cached on a perp market (`solPriceMarketIndex`), kept
 * from the venue's own reads of that market and re-read when older than {@link SOL_PRICE_MAX_AGE_MS}.
 * A read with a non-positive oracle price leaves the last positive one in place (it only prices gas).
 */
class SolPriceCache {
  readonly #address: PublicKey;
  readonly #marketIndex: number;
  readonly #clock: Clock;
  #usd: number | undefined;
  #atMs = Number.NEGATIVE_INFINITY;

  constructor(programId: PublicKey, marketIndex: number, clock: Clock) {
    this.#address = driftPda.perpMarket(programId, marketIndex);
    this.#marketIndex = marketIndex;
    this.#clock = clock;
  }

  /** The rpc, with every read of the SOL market also updating the cache. */
  observe(rpc: SolanaRpc): SolanaRpc {
    return {
      getLatestBlockhash: () => rpc.getLatestBlockhash(),
      getBlockHeight: () => rpc.getBlockHeight(),
      sendRawTransaction: (raw) => rpc.sendRawTransaction(raw),
      getSignatureStatus: (sig) => rpc.getSignatureStatus(sig),
      getAccountData: async (address, opts) => {
        const data = await rpc.getAccountData(address, opts);
        if (data && address.equals(this.#address)) this.#take(data);
        return data;
      },
    };
  }

  #take(data: Uint8Array): void {
    let price: bigint;
    try {
      price = decodePerpMarket(data).lastOraclePrice;
    } catch {
      return; // the venue's own read reports the decode failure
    }
    if (price <= 0n) return;
    this.#usd = Number(price) / Number(PRICE_PRECISION);
    this.#atMs = this.#clock.nowMs();
  }

  get fresh(): boolean {
    return this.#usd !== undefined && this.#clock.nowMs() - this.#atMs <= SOL_PRICE_MAX_AGE_MS;
  }

  /** The cached price; throws (never NaN) when no positive oracle price has been read. */
  usd(venue: string): number {
    if (this.#usd === undefined)
      throw new XhedgeError(
        'DRIFT_SOL_PRICE_UNKNOWN',
        `venue ${venue}: no SOL price for fee estimates: perp market ${this.#marketIndex} (params.solPriceMarketIndex) has no positive oracle price`,
        { details: { venue, marketIndex: this.#marketIndex } },
      );
    return this.#usd;
  }

  marketIndex(): number {
    return this.#marketIndex;
  }
}

/** A DriftVenue built from a profile: quotes re-read the SOL price market first when its price is stale. */
class ProfileDriftVenue extends DriftVenue {
  readonly #sol: SolPriceCache;
  constructor(o: DriftVenueOptions, sol: SolPriceCache) {
    super(o);
    this.#sol = sol;
  }
  override async quoteHedge(input: QuoteRequest): Promise<HedgeQuote> {
    if (!this.#sol.fresh) await this.readPerpMarket(this.#sol.marketIndex());
    return super.quoteHedge(input);
  }
}

function resolveRpcUrl(v: DriftVenueConfigLike, sources: CreateDriftVenueDeps['secrets']): string {
  const first = v.endpoints?.rpc?.[0];
  if (first === undefined)
    throw new DriftSecretError(`venue ${v.id} has no endpoints.rpc (a Solana JSON-RPC URL)`, { venue: v.id });
  return typeof first === 'string' ? first : resolveSecret(first, sources, 'endpoints.rpc[0]');
}

/**
 * Builds a `drift` venue from its operator config (params: {@link DriftVenueParams}): the Solana node
 * from `endpoints.rpc[0]`, the signer from `credentials.signer` (env var or key file holding a base58
 * secret key or a solana-keygen JSON array), and the durable client-order-id map at
 * `<dataDir>/<venueId>-drift-order-ids.json`. Throws a ZodError for bad params (paths under `params`)
 * and an XhedgeError naming the credential or endpoint that is missing or malformed.
 */
export function createDriftVenue(venue: DriftVenueConfigLike, deps: CreateDriftVenueDeps = {}): DriftVenue {
  const p = DriftVenueParams.parse(venue.params ?? {});
  if (p.takerFeeBps !== undefined)
    (deps.warn ?? ((m: string) => process.emitWarning(m, { code: 'XHEDGE_DRIFT_TAKER_FEE_IGNORED' })))(
      `venue ${venue.id}: params.takerFeeBps (${p.takerFeeBps}) is ignored: the taker fee is read from the Drift program's State account (perp fee tier 0); remove it from the venue's params`,
    );
  const ref = venue.credentials?.signer;
  if (!ref)
    throw new DriftSecretError(
      `venue ${venue.id} has no credentials.signer (an env var or key file with the Solana secret key)`,
      { venue: venue.id },
    );
  const keypair = parseSolanaSecretKey(
    resolveSecret(ref, deps.secrets, 'credentials.signer'),
    `credentials.signer (${describeRef(ref)})`,
  );
  const rpcBase =
    deps.rpc ??
    redactingRpc(
      connectionRpc(
        new Connection(resolveRpcUrl(venue, deps.secrets), {
          commitment: p.commitment ?? 'confirmed',
          fetch: timeoutFetch({ timeoutMs: p.rpcTimeoutMs, option: 'params.rpcTimeoutMs' }),
        }),
        p.commitment,
      ),
    );
  const clock = deps.clock ?? systemClock;
  const programId = new PublicKey(p.programId);
  const sol = new SolPriceCache(programId, p.solPriceMarketIndex, clock);
  // the venue opened the id file: its close closes it; so does a failure building it
  const store = fileUserOrderIdStore(join(deps.dataDir ?? '.xhedge', `${venue.id}-drift-order-ids.json`));
  try {
    return profileVenue(store);
  } catch (err) {
    store.close();
    throw err;
  }

  function profileVenue(store: ReturnType<typeof fileUserOrderIdStore>): DriftVenue {
    const orderIds = UserOrderIdMap.fromRecords({ store, clock }, store.loadSync());
    return new ProfileDriftVenue(
      {
        id: venue.id,
        chain: venue.chain,
        programId,
        signer: keypairSigner(keypair),
        subAccountId: p.subAccountId,
        rpc: sol.observe(rpcBase),
        markets: p.markets,
        orderIds,
        closeOrderIds: true,
        clock,
        solPriceUsd: () => sol.usd(venue.id),
        ...(p.quoteSpotMarketIndex === undefined ? {} : { quoteSpotMarketIndex: p.quoteSpotMarketIndex }),
        ...(p.commitment === undefined ? {} : { commitment: p.commitment }),
        ...(p.computeUnitPriceMicroLamports === undefined
          ? {}
          : { computeUnitPriceMicroLamports: BigInt(p.computeUnitPriceMicroLamports) }),
        ...(p.computeUnitLimit === undefined ? {} : { computeUnitLimit: p.computeUnitLimit }),
        ...(p.orderTtlSeconds === undefined ? {} : { orderTtlSeconds: p.orderTtlSeconds }),
        ...(deps.sleep === undefined ? {} : { sleep: deps.sleep }),
      },
      sol,
    );
  }
}
