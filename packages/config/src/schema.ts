import {
  AssetSymbol,
  ChainId,
  FiniteNumber,
  InstrumentId,
  MAX_ABS_DRIFT_PER_YEAR,
  MAX_SPOT_USD,
  MAX_VOL_DECIMAL,
  MIN_SPOT_USD,
  parseInstrumentId,
  Seed,
  VenueId,
} from '@xhedge/core';
import { z } from 'zod';

/**
 * A reference to a secret: the name of an environment variable or the path of a key file. Secrets are
 * never written in the config itself, so a config file can be committed, logged and shown.
 */
export const SecretRef = z.union(
  [
    z
      .object({
        env: z
          .string()
          .regex(/^[A-Z_][A-Z0-9_]*$/, 'env must be an environment variable name (UPPER_SNAKE_CASE)'),
      })
      .strict(),
    z.object({ keyFile: z.string().min(1, 'keyFile must be a path') }).strict(),
  ],
  { error: 'a secret must be given as {env: VAR_NAME} or {keyFile: path}, never inline' },
);
export type SecretRef = z.infer<typeof SecretRef>;

/** A value that may be given inline (not secret) or by environment variable (e.g. RPC URLs with API keys). */
const UrlOrEnv = z.union(
  [
    z.url({ error: 'expected a URL such as https://arb1.example.org' }),
    z.object({ env: z.string().regex(/^[A-Z_][A-Z0-9_]*$/) }).strict(),
  ],
  {
    error: 'expected a URL or {env: VAR_NAME}',
  },
);

/** Adapter kinds xhedge knows. `paper-*` run on the simulated market; the others talk to real chains. */
export const VENUE_KINDS = [
  'paper-lyra',
  'paper-gmx',
  'paper-drift',
  'paper-spot-amm',
  'lyra',
  'gmx',
  'drift',
] as const;
export const VenueKind = z.enum(VENUE_KINDS, {
  error: `unknown venue kind; expected one of ${VENUE_KINDS.join(', ')}`,
});
export type VenueKind = z.infer<typeof VenueKind>;

/** Which chain family each kind runs on. */
export const VENUE_KIND_FAMILY: Readonly<Record<VenueKind, 'evm' | 'solana'>> = {
  'paper-lyra': 'evm',
  'paper-gmx': 'evm',
  'paper-drift': 'solana',
  'paper-spot-amm': 'evm',
  lyra: 'evm',
  gmx: 'evm',
  drift: 'solana',
};

export const VenueConfig = z
  .object({
    id: VenueId,
    kind: VenueKind,
    chain: ChainId,
    enabled: z.boolean().default(true),
    endpoints: z
      .object({
        rpc: z.array(UrlOrEnv).min(1).optional(),
        ws: UrlOrEnv.optional(),
      })
      .strict()
      .default({}),
    /** Named secrets the adapter needs (privateKey, apiKey, ...), each by env var or key file. */
    credentials: z.record(z.string().regex(/^[a-zA-Z][a-zA-Z0-9]*$/), SecretRef).default({}),
    /** Adapter-specific parameters (contract addresses, fee overrides, simulation knobs). No secrets. */
    params: z.record(z.string(), z.unknown()).default({}),
  })
  .strict();
export type VenueConfig = z.infer<typeof VenueConfig>;

export const UnderlyingConfig = z
  .object({
    symbol: AssetSymbol,
    quote: AssetSymbol.default('USD'),
    /**
     * Volatility (decimal, 0.6 = 60%) of this underlying when no real venue marks an option on it (a
     * book of perps and spot only): risk needs one for its scenario grid and the policies for their
     * bands. Option implied vols from the venues win when there are any. Paper runs take theirs from
     * the simulated market. @defaultValue none (such an underlying is not priced and not hedged)
     */
    volDecimal: FiniteNumber.positive().max(5, 'volDecimal is a decimal (0.6 = 60%), at most 5').optional(),
  })
  .strict();

export const PositionConfig = z
  .object({
    venue: VenueId,
    instrument: InstrumentId,
    /** Signed size in underlying units (short < 0). */
    size: FiniteNumber.refine((v) => v !== 0, 'size must not be zero'),
    /** Settlement currency; the base coin (e.g. BTC) means coin-settled. Default: the quote. */
    settle: AssetSymbol.optional(),
  })
  .strict();
export type PositionConfig = z.infer<typeof PositionConfig>;

export const BalanceConfig = z
  .object({
    venue: VenueId,
    asset: AssetSymbol,
    amount: FiniteNumber.nonnegative(),
  })
  .strict();

export const BookConfig = z
  .object({
    /** `config`: start from the positions below (paper venues are seeded with them); `venues`: read them from the venues. */
    source: z.enum(['config', 'venues']).default('config'),
    positions: z.array(PositionConfig).default([]),
    balances: z.array(BalanceConfig).default([]),
  })
  .strict();

// the simulator's own bounds, so `config check` refuses what the paper market would refuse at start
const SimUnderlying = z
  .object({
    spot: FiniteNumber.min(MIN_SPOT_USD, `spot is USD, at least ${MIN_SPOT_USD}`).max(
      MAX_SPOT_USD,
      `spot is USD, at most ${MAX_SPOT_USD}`,
    ),
    vol: FiniteNumber.positive().max(
      MAX_VOL_DECIMAL,
      `vol is a decimal (0.6 = 60%), at most ${MAX_VOL_DECIMAL}`,
    ),
    drift: FiniteNumber.min(
      -MAX_ABS_DRIFT_PER_YEAR,
      `drift is a decimal per year, at least -${MAX_ABS_DRIFT_PER_YEAR}`,
    )
      .max(MAX_ABS_DRIFT_PER_YEAR, `drift is a decimal per year, at most ${MAX_ABS_DRIFT_PER_YEAR}`)
      .default(0),
  })
  .strict();

export const MarketConfig = z
  .object({
    seed: Seed.default(1),
    process: z.enum(['gbm', 'jump', 'heston', 'regime', 'replay']).default('gbm'),
    /** Simulated time per wall-clock time (3600 = one market hour a second). */
    speed: FiniteNumber.positive().max(1_000_000).default(60),
    underlyings: z.record(AssetSymbol, SimUnderlying).default({}),
    /** Pairwise correlations, e.g. {"BTC/ETH": 0.8}. */
    correlations: z
      .record(
        z.string().regex(/^[A-Z][A-Z0-9]{1,9}\/[A-Z][A-Z0-9]{1,9}$/, 'expected A/B'),
        FiniteNumber.min(-1).max(1),
      )
      .default({}),
    replayCsv: z.string().optional(),
  })
  .strict();

/**
 * Bounds of a policy's settings: wide enough for any real book, tight enough that a typo (an exponent, a
 * unit slip) is refused with the field's name instead of planning with it. USD amounts up to a trillion;
 * periods from a second to a year.
 */
const MAX_POLICY_USD = 1e12;
const MINUTES_PER_YEAR = 525_600;
const PolicyUsd = (what: string) => FiniteNumber.max(MAX_POLICY_USD, `${what} is USD, at most 1e12`);
const PolicyMinutes = (what: string) =>
  FiniteNumber.min(1 / 60, `${what} is in minutes, at least 1/60 (one second)`).max(
    MINUTES_PER_YEAR,
    `${what} is in minutes, at most ${MINUTES_PER_YEAR} (a year)`,
  );
const CostBps = FiniteNumber.nonnegative().max(10_000, 'costBps is basis points, at most 10000 (100%)');

const PolicyCommon = {
  /** Target net delta, underlying units (0 = flat). */
  targetDelta: FiniteNumber.min(-1e12).max(1e12).default(0),
  /** A drift this many times the band skips time gates and gas waits. */
  urgencyMultiple: FiniteNumber.min(1).max(1_000_000).default(3),
  /** Smallest order worth sending, USD notional (dust guard). */
  minTradeUsd: PolicyUsd('minTradeUsd').nonnegative().default(50),
  /** Largest single hedge order, USD notional. */
  maxOrderUsd: PolicyUsd('maxOrderUsd').positive().optional(),
  /** Hedge notional allowed per rolling window (the strategy downsizes, then holds, past it). */
  caps: z
    .object({
      /** Largest total hedge notional per window, USD. */
      maxWindowUsd: PolicyUsd('maxWindowUsd').positive(),
      /** Window length, minutes. Default 60. */
      windowMinutes: PolicyMinutes('windowMinutes').default(60),
    })
    .strict()
    .optional(),
  vega: z
    .object({
      enabled: z.boolean().default(false),
      /** Half-width of the vega no-trade band, USD per vol point. */
      bandPerVolPoint: PolicyUsd('bandPerVolPoint').positive(),
      /** Vega the book is brought back to, USD per vol point. Default 0. */
      targetPerVolPoint: PolicyUsd('targetPerVolPoint').min(-MAX_POLICY_USD).default(0),
    })
    .strict()
    .optional(),
};

export const PolicyConfig = z.discriminatedUnion(
  'kind',
  [
    z
      .object({
        kind: z.literal('interval'),
        intervalMinutes: PolicyMinutes('intervalMinutes'),
        ...PolicyCommon,
      })
      .strict(),
    z
      .object({
        kind: z.literal('band'),
        /** Half-width of the no-trade band, underlying units. */
        bandDelta: FiniteNumber.positive().optional(),
        /** Scale the band by gamma and vol: max(bandDelta, z·Γ·σ·S·√(window)). */
        gammaScaled: z
          .object({
            z: FiniteNumber.positive().max(100),
            windowHours: FiniteNumber.min(
              1 / 3600,
              'windowHours is in hours, at least 1/3600 (one second)',
            ).max(8760, 'windowHours is in hours, at most 8760 (a year)'),
          })
          .strict()
          .optional(),
        ...PolicyCommon,
      })
      .strict(),
    z
      .object({
        kind: z.literal('ww'),
        /**
         * Exponential-utility risk aversion γ, per USD of P&L (not per unit). The Whalley–Wilmott band is
         * (1.5·λ·S·Γ²/γ)^(1/3) underlying units, so typical values are 1e-5 to 1e-3; 1 gives a razor-thin band.
         */
        riskAversion: FiniteNumber.positive(),
        costBps: CostBps,
        ...PolicyCommon,
      })
      .strict(),
    z
      .object({
        kind: z.literal('leland'),
        intervalMinutes: PolicyMinutes('intervalMinutes'),
        costBps: CostBps,
        ...PolicyCommon,
      })
      .strict(),
  ],
  { error: 'policy kind must be one of interval, band, ww, leland' },
);
export type PolicyConfig = z.infer<typeof PolicyConfig>;

export const PoliciesConfig = z
  .object({
    /** How often the orchestrator looks at the book (simulated ms on paper). */
    tickIntervalMs: z
      .number()
      .int()
      .positive()
      .max(86_400_000, {
        error: 'tickIntervalMs must be at most 86400000 (a day): a timer cannot wait longer',
      })
      .default(1000),
    default: PolicyConfig,
    perUnderlying: z.record(AssetSymbol, PolicyConfig).default({}),
  })
  .strict();

const positive = FiniteNumber.positive();

/** Positive caps keyed by `key` (a venue id, an underlying) or `*` for every key without its own entry. */
export type CapsBy = Readonly<Record<string, number>>;

/** The cap `caps` (a {@link capsBy} record) sets for `key`: its own entry, else `*`, else none. */
export function capFor(caps: CapsBy, key: string): number | undefined {
  return caps[key] ?? caps['*'];
}

function capsBy(key: z.ZodType<string>, what: string) {
  return z
    .record(z.string(), positive)
    .superRefine((caps, ctx) => {
      for (const k of Object.keys(caps))
        if (k !== '*' && !key.safeParse(k).success)
          ctx.addIssue({ code: 'custom', path: [k], message: `"${k}" is neither ${what} nor *` });
    })
    .default({});
}

export const LimitsConfig = z
  .object({
    maxOrderNotionalUsd: positive,
    maxHedgeNotionalPerWindowUsd: positive,
    windowSeconds: positive.default(3600),
    /** Reject orders priced further than this from the reference price. */
    priceBandBps: positive
      .max(10_000, { error: 'priceBandBps is in bps: at most 10000 (100 %)' })
      .default(200),
    maxSlippageBps: positive
      .max(10_000, { error: 'maxSlippageBps is in bps: at most 10000 (100 %)' })
      .default(50),
    /** Inputs older than this block trading. */
    staleAfterMs: z.number().int().positive().default(30_000),
    /** Largest absolute hedge position per underlying, underlying units. */
    maxPositionBase: z.record(AssetSymbol, positive).default({}),
    /**
     * Largest notional held on one venue (its perps, futures and spot, |size| × mark, USD): a cap on
     * what one counterparty or contract holds. By venue id; `*` for every venue without its own entry.
     * Orders that shrink their instrument's position there always pass.
     */
    maxVenueNotionalUsd: capsBy(VenueId, 'a venue id (a lower-case slug such as lyra-arb)'),
    /**
     * Largest notional held across every venue (their perps, futures and spot, |size| × mark, USD).
     * Orders that shrink their instrument's position on their venue always pass. @defaultValue none
     */
    maxTotalNotionalUsd: positive.optional(),
    /**
     * Largest net delta of the book per underlying, USD (|delta| × spot, options, perps, futures and spot
     * together): a plan whose legs would leave the book's net delta beyond it, and further from zero than
     * before, is refused whole (`net-delta`). A plan that brings the delta closer to zero always passes,
     * even when the book stays beyond the cap. By underlying; `*` for every underlying without its own
     * entry. @defaultValue none
     */
    maxNetDeltaUsd: capsBy(AssetSymbol, 'an underlying (an upper-case symbol such as ETH)'),
    repeatedExecution: z
      .object({ maxExecutions: z.number().int().positive(), windowSeconds: positive })
      .strict()
      .default({ maxExecutions: 30, windowSeconds: 60 }),
  })
  .strict();

/**
 * A reduce-only policy by market breaker kind (`breakers.reduceOnlyPasses`): whether a reduce-only order
 * goes past an open breaker of that kind. Venue and chain breakers cannot be named.
 */
export const ReduceOnlyPassesConfig = z
  .object({
    loss: z.boolean().optional(),
    slippage: z.boolean().optional(),
    'price-shock': z.boolean().optional(),
    'price-dispersion': z.boolean().optional(),
    'stale-mark': z.boolean().optional(),
    'iv-shock': z.boolean().optional(),
    'skew-shock': z.boolean().optional(),
  })
  .strict();

export const BreakersConfig = z
  .object({
    venue: z
      .object({
        errorRatePct: FiniteNumber.gt(0).max(100).default(50),
        minRequests: z.number().int().positive().default(5),
        windowSeconds: positive.default(60),
        timeoutMs: z.number().int().positive().default(10_000),
        latencyMs: z.number().int().positive().default(5_000),
        cooldownSeconds: positive.default(30),
      })
      .strict()
      .default({
        errorRatePct: 50,
        minRequests: 5,
        windowSeconds: 60,
        timeoutMs: 10_000,
        latencyMs: 5_000,
        cooldownSeconds: 30,
      }),
    market: z
      .object({
        priceShockPct: positive.default(10),
        priceShockWindowSeconds: positive.default(300),
        maxHedgeSlippageBps: positive.default(100),
        maxLossSinceMarkUsd: positive.optional(),
        staleMarkMs: z.number().int().positive().default(60_000),
        /**
         * Implied vol of an underlying moving this many vol points within the window opens
         * `market:iv-shock:<u>`, which stops option orders on it (vega hedges); perp hedges go on.
         */
        ivShockVolPoints: positive.default(20),
        ivShockWindowSeconds: positive.default(300),
        /**
         * The venues' prices of one underlying (each venue's index price, else its perp and spot marks)
         * spreading wider than this, bps of their median, opens `market:price-dispersion:<u>`: one feed is
         * wrong or stale, and no hedge on that underlying goes until they agree again.
         */
        maxPriceDispersionBps: positive.default(200),
        /**
         * The smile's skew (mean implied vol of out-of-the-money puts minus calls, see the planner's
         * `optionSkew`) moving this many vol points within the window opens `market:skew-shock:<u>`,
         * which stops option orders on it like the implied-vol shock.
         */
        skewShockVolPoints: positive.default(10),
        skewShockWindowSeconds: positive.default(300),
      })
      .strict()
      .default({
        priceShockPct: 10,
        priceShockWindowSeconds: 300,
        maxHedgeSlippageBps: 100,
        staleMarkMs: 60_000,
        ivShockVolPoints: 20,
        ivShockWindowSeconds: 300,
        maxPriceDispersionBps: 200,
        skewShockVolPoints: 10,
        skewShockWindowSeconds: 300,
      }),
    /**
     * By market breaker kind, whether a reduce-only order goes past such a breaker while it is open
     * (true) or is blocked like any other (false); kinds left out keep their defaults: `loss` and
     * `slippage` pass, the kinds that put the price itself in doubt (`price-shock`, `price-dispersion`,
     * `stale-mark`, `iv-shock`, `skew-shock`) block. Venue and chain breakers always block and cannot be
     * named here. See `REDUCE_ONLY_PASSES` in @xhedge/execution.
     */
    reduceOnlyPasses: ReduceOnlyPassesConfig.optional(),
  })
  .strict();

/**
 * The drop-copy check: each venue's position in every instrument our orders trade there, against a
 * baseline plus our own fills since (see execution's `DropCopy`).
 */
export const DropCopyConfig = z
  .object({
    enabled: z.boolean().default(true),
    /** Largest unexplained difference that is not a break, underlying units. */
    toleranceBase: positive.default(1e-6),
    /** How long a difference must last over reads before it is a break. */
    graceSeconds: positive.default(60),
    /** An order of ours changed this recently (or still working) puts its instrument out of the comparison. */
    settleSeconds: FiniteNumber.nonnegative().default(10),
    /** One venue is checked at most this often (on the planner's reads). */
    intervalSeconds: FiniteNumber.nonnegative().default(10),
    /**
     * `alert`: ledger audit, error log, `xhedge_position_break` metric. `halt-venue`: also engage the
     * venue's kill switch, risk-reducing orders still allowed, until an operator releases it.
     */
    onBreak: z.enum(['alert', 'halt-venue']).default('alert'),
  })
  .strict();

/** Query parameters that carry a secret (`?password=`, `?sslpassword=`, `?token=`, ...). */
const SECRET_QUERY_PARAM_RE =
  /^(.*password|.*passwd|.*passphrase|pass|pwd|.*secret.*|.*token|.*api.?key|.*private.?key)$/i;

/** Names of non-empty secret-looking query parameters in `url`; never their values. */
function secretQueryParams(url: string): string[] {
  const q = url.indexOf('?');
  if (q < 0) return [];
  const query = url.slice(q + 1).split('#')[0] ?? '';
  const names: string[] = [];
  for (const pair of query.split(/[&;]/)) {
    const eq = pair.indexOf('=');
    if (eq <= 0 || eq === pair.length - 1) continue;
    let name = pair.slice(0, eq);
    try {
      name = decodeURIComponent(name.replace(/\+/g, ' '));
    } catch {
      // keep the raw name
    }
    if (SECRET_QUERY_PARAM_RE.test(name.trim())) names.push(name.trim());
  }
  return names;
}

/**
 * What in `url` is a credential written inline, one sentence each, naming where (never the value): a
 * password in the userinfo (`user:pass@`), secret-looking query parameters (`?password=`, `?apikey=`).
 */
export function urlCredentialProblems(url: string): string[] {
  const out: string[] = [];
  if (/^[a-z][a-z0-9+.-]*:\/\/[^/@]*:[^/@]+@/i.test(url)) out.push('the URL holds a password inline');
  const params = secretQueryParams(url);
  if (params.length > 0)
    out.push(`the URL holds a password inline (query parameter ${params.map((p) => `"${p}"`).join(', ')})`);
  return out;
}

const ServiceUrl = z
  .object({ url: UrlOrEnv.optional() })
  .strict()
  .superRefine((v, ctx) => {
    if (typeof v.url !== 'string') return;
    for (const problem of urlCredentialProblems(v.url))
      ctx.addIssue({ code: 'custom', path: ['url'], message: `${problem}; give {env: VAR_NAME} instead` });
  });

/** A limit in ms; 0 = no limit. At most a day: a larger value is a unit mistake (seconds × 1000 twice). */
const LimitMs = z.number().int().min(0).max(86_400_000);

/**
 * The ledger's database: where (`url`, else `DATABASE_URL`, else PGlite) and the limits of its
 * Postgres connections (`openDatabase` options of the same names; their defaults when left out). A
 * limit that is too small fails queries under normal load; one that is too large holds a tick, an API
 * request or a shutdown on a hung database that long.
 */
export const DatabaseConfig = z
  .object({
    url: UrlOrEnv.optional(),
    /** Largest number of pooled Postgres connections. Default 10. */
    poolSize: z.number().int().min(1).max(200).optional(),
    /** A new connection's time to be ready (TCP, TLS, auth). Default 10 000. */
    connectTimeoutMs: LimitMs.optional(),
    /** The wait for a pooled connection when all are in use. Default 30 000. */
    acquireTimeoutMs: LimitMs.optional(),
    /** Postgres `statement_timeout` of the pooled connections. Default 30 000. */
    statementTimeoutMs: LimitMs.optional(),
    /** Client-side wait for an answer; above statementTimeoutMs. Default statementTimeoutMs + 5000. */
    queryTimeoutMs: LimitMs.optional(),
    /** `statement_timeout` of the migrations run at start. Default 600 000. */
    migrationTimeoutMs: LimitMs.optional(),
    /**
     * Start on a ledger a newer release migrated (a rollback): refused by default (`LEDGER_TOO_NEW`),
     * since this release does not keep what the newer one added. Default false.
     */
    allowNewerLedger: z.boolean().optional(),
  })
  .strict()
  .superRefine((v, ctx) => {
    if (typeof v.url === 'string')
      for (const problem of urlCredentialProblems(v.url))
        ctx.addIssue({ code: 'custom', path: ['url'], message: `${problem}; give {env: VAR_NAME} instead` });
    const statement = v.statementTimeoutMs ?? 30_000;
    const query = v.queryTimeoutMs;
    if (query !== undefined && query > 0 && statement > 0 && query <= statement)
      ctx.addIssue({
        code: 'custom',
        path: ['queryTimeoutMs'],
        message: `queryTimeoutMs (${query}) must be above statementTimeoutMs (${statement}${v.statementTimeoutMs === undefined ? ', its default' : ''}), or 0: the server must cancel a slow statement before the client gives up on the connection`,
      });
  });

/** The profile's `database` section, as parsed. */
export type DatabaseConfig = z.infer<typeof DatabaseConfig>;

/**
 * How long the ledger keeps risk snapshots (store's `SnapshotRetention`; its defaults for what is left
 * out). A snapshot is stored at least every 5 s, ~100 MB a day for a 52-position book: every one is
 * kept for `fullResolutionDays`, then the last of each `downsampleEveryMs` up to `retentionDays`, none
 * older, except the newest and those a plan was made from. The leader runs a pass every
 * `intervalMinutes`, in statements of `batchSize` snapshots.
 */
export const SnapshotRetentionConfig = z
  .object({
    /** False keeps every snapshot for ever. Default true. */
    enabled: z.boolean().optional(),
    /** Every snapshot younger than this is kept, days. Default 7. */
    fullResolutionDays: z.number().min(0).max(36_500).optional(),
    /** Past fullResolutionDays, one snapshot (the last) per this many ms. Default 60 000. */
    downsampleEveryMs: z.number().int().min(1000).max(86_400_000).optional(),
    /** Snapshots older than this are deleted, days. Default 90. */
    retentionDays: z.number().min(1).max(36_500).optional(),
    /** Time between two passes, minutes. Default 60. */
    intervalMinutes: z.number().int().min(1).max(1440).optional(),
    /** Snapshots examined (at most deleted) per statement. Default 2000. */
    batchSize: z.number().int().min(1).max(100_000).optional(),
  })
  .strict()
  .superRefine((v, ctx) => {
    const full = v.fullResolutionDays ?? 7;
    const keep = v.retentionDays ?? 90;
    if (full > keep)
      ctx.addIssue({
        code: 'custom',
        path: [v.fullResolutionDays === undefined ? 'retentionDays' : 'fullResolutionDays'],
        message: `fullResolutionDays (${full}${v.fullResolutionDays === undefined ? ', its default' : ''}) must not be above retentionDays (${keep}${v.retentionDays === undefined ? ', its default' : ''}): snapshots are kept in full before they are thinned out`,
      });
  });

/** The profile's `snapshotRetention` section, as parsed. */
export type SnapshotRetentionConfig = z.infer<typeof SnapshotRetentionConfig>;

export const XhedgeConfig = z
  .object({
    version: z.literal(1, { error: 'version must be 1' }),
    name: z.string().min(1).max(80),
    /** Folder for embedded data (PGlite, generated tokens); relative to the working directory. */
    dataDir: z.string().min(1).default('.xhedge'),
    /**
     * Dry run: the real venues (lyra, gmx, ...) answer every read, but no order is sent to them; each
     * fills at once at the venue's own quote and is laid over the account (see venue-paper's
     * `ShadowVenue`). Queue, ledger, controls and breakers run as live. `xhedge start --dry-run` sets it.
     */
    dryRun: z.boolean().default(false),
    underlyings: z.array(UnderlyingConfig).min(1, 'at least one underlying is required'),
    venues: z.array(VenueConfig).min(1, 'at least one venue is required'),
    book: BookConfig.default({ source: 'config', positions: [], balances: [] }),
    market: MarketConfig.optional(),
    policy: PoliciesConfig,
    limits: LimitsConfig,
    breakers: BreakersConfig.default({
      venue: {
        errorRatePct: 50,
        minRequests: 5,
        windowSeconds: 60,
        timeoutMs: 10_000,
        latencyMs: 5_000,
        cooldownSeconds: 30,
      },
      market: {
        priceShockPct: 10,
        priceShockWindowSeconds: 300,
        maxHedgeSlippageBps: 100,
        staleMarkMs: 60_000,
        ivShockVolPoints: 20,
        ivShockWindowSeconds: 300,
        maxPriceDispersionBps: 200,
        skewShockVolPoints: 10,
        skewShockWindowSeconds: 300,
      },
    }),
    dropCopy: DropCopyConfig.default({
      enabled: true,
      toleranceBase: 1e-6,
      graceSeconds: 60,
      settleSeconds: 10,
      intervalSeconds: 10,
      onBreak: 'alert',
    }),
    redis: ServiceUrl.optional(),
    database: DatabaseConfig.optional(),
    snapshotRetention: SnapshotRetentionConfig.optional(),
    api: z
      .object({
        host: z.string().default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(8780),
      })
      .strict()
      .default({ host: '127.0.0.1', port: 8780 }),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    const venueIndex = new Map<string, number>();
    cfg.venues.forEach((v, i) => {
      const first = venueIndex.get(v.id);
      if (first !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['venues', i, 'id'],
          message: `duplicate venue id "${v.id}" (first at venues[${first}])`,
        });
      } else venueIndex.set(v.id, i);
      const family = VENUE_KIND_FAMILY[v.kind];
      if (!v.chain.startsWith(`${family}:`)) {
        ctx.addIssue({
          code: 'custom',
          path: ['venues', i, 'chain'],
          message: `a ${v.kind} venue runs on a ${family} chain, not ${v.chain}`,
        });
      }
    });
    const symbols = new Set<string>();
    cfg.underlyings.forEach((u, i) => {
      if (symbols.has(u.symbol))
        ctx.addIssue({
          code: 'custom',
          path: ['underlyings', i, 'symbol'],
          message: `duplicate underlying "${u.symbol}"`,
        });
      symbols.add(u.symbol);
    });
    cfg.book.positions.forEach((p, i) => {
      if (!venueIndex.has(p.venue)) {
        ctx.addIssue({
          code: 'custom',
          path: ['book', 'positions', i, 'venue'],
          message: `unknown venue "${p.venue}" (not in venues)`,
        });
      }
      let base: string;
      try {
        base = parseInstrumentId(p.instrument).base;
      } catch {
        return; // the instrument's own issue is reported already
      }
      if (!symbols.has(base)) {
        ctx.addIssue({
          code: 'custom',
          path: ['book', 'positions', i, 'instrument'],
          message: `underlying ${base} is not listed in underlyings`,
        });
      }
    });
    cfg.book.balances.forEach((b, i) => {
      if (!venueIndex.has(b.venue)) {
        ctx.addIssue({
          code: 'custom',
          path: ['book', 'balances', i, 'venue'],
          message: `unknown venue "${b.venue}" (not in venues)`,
        });
      }
    });
    for (const u of Object.keys(cfg.policy.perUnderlying)) {
      if (!symbols.has(u))
        ctx.addIssue({
          code: 'custom',
          path: ['policy', 'perUnderlying', u],
          message: `underlying ${u} is not listed in underlyings`,
        });
    }
    // A cap keyed by an underlying the profile does not have is never applied (the underlying it meant
    // falls back to `*`, or to no cap at all): a typo such as `XBT` for BTC silently removed the cap it
    // was written to set. Venue keys are checked at start against the venues stored then (a venue added
    // through the API lives in the run's store, not in the profile); see the runtime.
    const keyed: [field: 'maxPositionBase' | 'maxNetDeltaUsd', known: Set<string>, what: string][] = [
      ['maxPositionBase', symbols, 'underlying (not in underlyings)'],
      ['maxNetDeltaUsd', symbols, 'underlying (not in underlyings)'],
    ];
    for (const [field, known, what] of keyed)
      for (const k of Object.keys(cfg.limits[field]))
        if (k !== '*' && !known.has(k))
          ctx.addIssue({
            code: 'custom',
            path: ['limits', field, k],
            message: `unknown ${what}: this cap would never apply; known: ${[...known].join(', ')}`,
          });
    if (cfg.limits.maxHedgeNotionalPerWindowUsd < cfg.limits.maxOrderNotionalUsd) {
      ctx.addIssue({
        code: 'custom',
        path: ['limits', 'maxHedgeNotionalPerWindowUsd'],
        message: 'must be at least maxOrderNotionalUsd, or no order could ever pass',
      });
    }
  });
export type XhedgeConfig = z.infer<typeof XhedgeConfig>;
export type XhedgeConfigInput = z.input<typeof XhedgeConfig>;
