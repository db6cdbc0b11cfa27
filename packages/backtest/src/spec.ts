import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { PolicyConfig } from '@xhedge/config';
import {
  AssetSymbol,
  ChainId,
  chainInfo,
  DAYS_PER_YEAR,
  FiniteNumber,
  parseOrThrow,
  Seed,
  ValidationError,
  VenueId,
} from '@xhedge/core';
import {
  MAX_ABS_DRIFT_PER_YEAR,
  MAX_SPOT_USD,
  MAX_VOL_DECIMAL,
  MIN_SPOT_USD,
  ProcessSpec as SimProcessSpec,
} from '@xhedge/sim';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { DEFAULT_MARGIN_FRACTION } from './costs.ts';

/**
 * The backtest file format (`configs/backtests/*.yaml`). Policies use the live operator config's
 * `PolicyConfig` shape, so a policy block can be copied between a profile and a backtest unchanged.
 */

const positive = FiniteNumber.positive();
const nonNegative = FiniteNumber.nonnegative();

/**
 * Bounds of a backtest's inputs, in the file and in {@link planSingleOption}'s: wide enough for any real
 * book, tight enough that a typo (an exponent, a unit slip) is refused by name instead of giving costs,
 * prices or a P&L past the range of a double, or a run that allocates gigabytes.
 */
/** Most paths of one run (16 per-path results of 8 bytes: 128 MB per policy). */
export const MAX_BACKTEST_PATHS = 1_000_000;
/** Most steps of one path (a year of minutes is 525,600). */
export const MAX_BACKTEST_STEPS = 1_000_000;
/** Largest proportional cost, bps (100% of notional), as the policy schema's costBps. */
export const MAX_COST_BPS = 10_000;
/** Largest USD amount of a fixed cost or balance (a trillion), as the policy schema's USD settings. */
export const MAX_BACKTEST_USD = 1e12;
/** Longest option life, years. */
export const MAX_EXPIRY_YEARS = 100;
/** Risk-free rate range, decimal per year. */
export const MIN_RATE = -0.5;
export const MAX_RATE = 1;
/** Range of an option's moneyness (strike / spot): a strike a thousandth to a thousand times spot. */
export const MIN_MONEYNESS = 1e-3;
export const MAX_MONEYNESS = 1e3;
/** Largest |size| of one option of the book, units of the underlying (a trillion). */
export const MAX_BOOK_SIZE_BASE = 1e12;

/**
 * Steps of `stepHours` in a horizon of `horizonDays`, and whether they fill it exactly (to a billionth
 * of a step: the float residue of 1 day / 0.1 h). `steps` is the nearest whole number, what a run of a
 * horizon that is not whole would have simulated instead of the horizon asked for.
 */
export function horizonSteps(horizonDays: number, stepHours: number): { steps: number; whole: boolean } {
  const exact = (horizonDays * 24) / stepHours;
  const steps = Math.round(exact);
  return { steps, whole: Math.abs(exact - steps) <= 1e-9 };
}

/** Why a horizon is not a whole number of steps, naming both (the message of the refusal). */
export function horizonNotWholeMessage(horizonDays: number, stepHours: number): string {
  const hours = horizonDays * 24;
  const exact = hours / stepHours;
  const down = Math.floor(exact);
  const fmt = (x: number): number => Number(x.toPrecision(10));
  const options = [down, down + 1]
    .filter((n) => n >= 1)
    .map((n) => `${fmt((n * stepHours) / 24)} days (${n} steps)`)
    .join(' or ');
  return `horizonDays ${horizonDays} (${fmt(hours)} h) is ${fmt(exact)} steps of stepHours ${stepHours}, not a whole number; a partial last step is not simulated, so give a horizon that is a multiple of the step: ${options}`;
}

/** A price in USD (spot, strike): the simulator's range. */
export const PriceUsd = FiniteNumber.min(MIN_SPOT_USD, `a price in USD, at least ${MIN_SPOT_USD}`).max(
  MAX_SPOT_USD,
  `a price in USD, at most ${MAX_SPOT_USD}`,
);
/** Real-world drift of a simulated process, decimal per year. */
export const DriftPerYear = FiniteNumber.min(
  -MAX_ABS_DRIFT_PER_YEAR,
  `drift is a decimal per year, at least -${MAX_ABS_DRIFT_PER_YEAR}`,
).max(MAX_ABS_DRIFT_PER_YEAR, `drift is a decimal per year, at most ${MAX_ABS_DRIFT_PER_YEAR}`);
export const Bps = nonNegative.max(MAX_COST_BPS, `basis points, at most ${MAX_COST_BPS} (100%)`);
export const CostUsd = nonNegative.max(MAX_BACKTEST_USD, `USD, at most ${MAX_BACKTEST_USD}`);
export const RatePerYear = FiniteNumber.min(MIN_RATE).max(MAX_RATE);
export const VolDecimal = nonNegative.max(
  MAX_VOL_DECIMAL,
  `vol is a decimal (0.6 = 60%), at most ${MAX_VOL_DECIMAL}`,
);

/** One option of the book. Give `strike` in USD or `moneyness` (strike / initial spot). */
export const BookOption = z
  .object({
    type: z.enum(['call', 'put']),
    strike: PriceUsd.optional(),
    moneyness: FiniteNumber.min(MIN_MONEYNESS, `moneyness is strike / spot, at least ${MIN_MONEYNESS}`)
      .max(MAX_MONEYNESS, `moneyness is strike / spot, at most ${MAX_MONEYNESS}`)
      .optional(),
    /** Time to expiry at the start of the backtest, calendar days. */
    expiryDays: positive.max(
      MAX_EXPIRY_YEARS * DAYS_PER_YEAR,
      `expiryDays is at most ${MAX_EXPIRY_YEARS * DAYS_PER_YEAR} (${MAX_EXPIRY_YEARS} years)`,
    ),
    /** Signed size in underlying units (short < 0). */
    size: FiniteNumber.refine((v) => v !== 0, 'size must not be zero').refine(
      (v) => Math.abs(v) <= MAX_BOOK_SIZE_BASE,
      `size is units of the underlying, at most ${MAX_BOOK_SIZE_BASE} either way`,
    ),
  })
  .strict()
  .refine((o) => (o.strike === undefined) !== (o.moneyness === undefined), {
    message: 'give exactly one of strike (USD) or moneyness (strike / spot)',
  });
export type BookOption = z.infer<typeof BookOption>;

const GasRange = z
  .object({ min: CostUsd, max: CostUsd })
  .strict()
  .refine((g) => g.max >= g.min, { message: 'gasUsd.max must be at least gasUsd.min', path: ['max'] })
  // The gas process is log-uniform between min and max (@xhedge/sim createGasProcess): a zero min has no
  // log, and the engine's stand-in (1e-9 USD) spreads the range over ten decades, so the gas paid is
  // near zero almost always (mean about a twentieth of max, instead of somewhere between min and max).
  .refine((g) => g.max === 0 || g.min > 0, {
    message: 'gasUsd.min must be above 0 when gasUsd.max is (gas is log-uniform between them)',
    path: ['min'],
  });

/** Cost model of one hedge venue (a perp or spot market on one chain). */
export const VenueCostSpec = z
  .object({
    id: VenueId,
    chain: ChainId,
    /** Taker fee, bps of notional. */
    feeBps: Bps,
    /** Half the bid-ask spread paid on every trade, bps of notional. Default 0. */
    halfSpreadBps: Bps.default(0),
    /** Price impact, bps per 1,000,000 USD traded (linear impact: cost grows with the square of size). Default 0. */
    impactBpsPerMillionUsd: Bps.default(0),
    /**
     * Gas per transaction, USD: a number, or a {min, max} range the gas moves through over time
     * (log-uniform, as the paper venues' gas). Default: the chain's typical range.
     */
    gasUsd: z.union([CostUsd, GasRange]).optional(),
    /** Priority / tip fee per transaction, USD (Solana compute-unit price). Default 0. */
    priorityFeeUsd: CostUsd.default(0),
    /**
     * Funding of a long hedge, per hour (+ = longs pay). Charged on the position every step, and priced
     * into routing as the live router does: 24 h of it per trade (a buy pays it, a sell earns it). Default 0.
     */
    fundingRatePerHour: FiniteNumber.min(-0.01).max(0.01).default(0),
    /**
     * USDC collateral on this venue at the start, USD. When any venue sets it, collateral is modelled
     * per venue and per path: venues without it start at 0, every hedge needs `marginFraction` of its
     * notional as margin, and the live router funds a venue short of margin from another over the
     * simulated LayerZero bridge (fee and latency), the hedge waiting for delivery. Needs `routing: live`.
     */
    collateralUsd: CostUsd.optional(),
    /** Initial margin per USD of notional (0.1 = 10× leverage), when collateral is modelled. Default 0.1. */
    marginFraction: FiniteNumber.gt(0).max(1).optional(),
    /**
     * Maintenance margin per USD of notional, when collateral is modelled: a venue whose equity (collateral
     * plus perp P&L) falls below it is liquidated. Above 0, at most marginFraction. Default: half of
     * marginFraction (0.05 at the default 0.1; Drift's default perp market: 5%; GMX v2: 0.5–1%).
     */
    maintenanceMarginFraction: FiniteNumber.gt(0).max(1).optional(),
    /**
     * Liquidation penalty per USD of liquidated notional, charged to the venue's collateral on top of the
     * close's spread and impact. Default 0.01 (Drift's default perp market: 1%; GMX v2: 0.2–0.45% plus its close fee).
     */
    liquidationPenaltyFraction: nonNegative.lt(1).optional(),
    /** false: a collateral account only (a treasury wallet or vault on that chain), never hedged on. Default true. */
    hedges: z.boolean().default(true),
  })
  .strict();
export type VenueCostSpec = z.infer<typeof VenueCostSpec>;

/** Simulated processes come from @xhedge/sim (gbm, jump, heston, regime); `replay` plays a CSV's returns. */
const ProcessSpec = z.discriminatedUnion(
  'kind',
  [
    ...SimProcessSpec.options,
    z
      .object({
        kind: z.literal('replay'),
        /** CSV with `timestamp,price` (hourly bars); relative paths resolve from the backtest file. */
        csv: z.string().min(1),
      })
      .strict(),
  ],
  { error: 'process kind must be gbm, jump, heston, regime or replay' },
);

const SweepParam = z.enum(['intervalMinutes', 'bandDelta', 'riskAversion', 'costBps']);
export type SweepParam = z.infer<typeof SweepParam>;

export const BacktestFile = z
  .object({
    version: z.literal(1, { error: 'version must be 1' }),
    name: z.string().min(1).max(80),
    underlying: AssetSymbol.default('BTC'),
    book: z.object({ options: z.array(BookOption).min(1, 'the book needs at least one option') }).strict(),
    market: z
      .object({
        /** Initial spot, USD. For replay, the historical returns are applied from this level; default: the first CSV price. */
        spot: PriceUsd.optional(),
        /** The hedger's pricing (implied) vol, decimal. */
        vol: VolDecimal,
        rate: RatePerYear.default(0),
        /** Real-world drift of simulated processes, decimal per year. Default 0. */
        drift: DriftPerYear.default(0),
        /** Vol of simulated processes, decimal. Default: vol (the hedger's model is right on average). */
        realizedVol: VolDecimal.optional(),
        /** `fixed`: options marked at vol throughout; `process`: at the process's instantaneous vol (vega P&L). */
        volMark: z.enum(['fixed', 'process']).default('fixed'),
        process: ProcessSpec,
      })
      .strict(),
    horizonDays: positive,
    stepHours: positive,
    paths: z.number().int().min(2).max(MAX_BACKTEST_PATHS, `paths is at most ${MAX_BACKTEST_PATHS}`),
    seed: Seed.default(1),
    /** γ of the entropic risk measure, per USD of P&L. */
    riskAversion: positive,
    /**
     * How hedge decisions are made: `strategy` runs the live HedgeStrategy class per step; `kernel` the
     * same rules without snapshots (much faster); `auto` (default) uses the kernel where it supports the policy.
     */
    decisions: z.enum(['auto', 'strategy', 'kernel']).default('auto'),
    /**
     * `live` (default): each trade goes through the live router (@xhedge/routing), which may split it
     * across venues; `cheapest` (much faster): a trade first reduces positions of the opposite sign on
     * any venue, and what is left goes to the single venue with the lowest all-in cost. Both rank venues
     * all-in as the live router does: fee, spread, impact, gas and 24 h of the venue's funding.
     */
    routing: z.enum(['live', 'cheapest']).default('live'),
    /** Close the hedge at the end of the horizon (and pay for it). Default true. */
    unwindAtEnd: z.boolean().default(true),
    venues: z.array(VenueCostSpec).min(1, 'at least one venue is required'),
    policies: z
      .record(
        z.string().regex(/^[A-Za-z][A-Za-z0-9_.-]{0,39}$/, 'policy names are letters, digits, _ . -'),
        PolicyConfig,
      )
      .refine((p) => Object.keys(p).length > 0, 'at least one policy is required'),
    frontier: z
      .array(
        z
          .object({
            policy: z.string().min(1),
            param: SweepParam,
            values: z.array(positive).min(2, 'a sweep needs at least two values'),
          })
          .strict(),
      )
      .default([]),
  })
  .strict()
  .superRefine((f, ctx) => {
    const ids = new Set<string>();
    f.venues.forEach((v, i) => {
      if (ids.has(v.id))
        ctx.addIssue({ code: 'custom', path: ['venues', i, 'id'], message: `duplicate venue id "${v.id}"` });
      ids.add(v.id);
    });
    if (!f.venues.some((v) => v.hedges))
      ctx.addIssue({ code: 'custom', path: ['venues'], message: 'at least one venue must take hedges' });
    const collateral = f.venues.some((v) => v.collateralUsd !== undefined);
    f.venues.forEach((v, i) => {
      if (!v.hedges && v.collateralUsd === undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['venues', i, 'collateralUsd'],
          message: 'a venue with hedges: false is a collateral account and needs collateralUsd',
        });
      for (const field of [
        'marginFraction',
        'maintenanceMarginFraction',
        'liquidationPenaltyFraction',
      ] as const)
        if (v[field] !== undefined && !collateral)
          ctx.addIssue({
            code: 'custom',
            path: ['venues', i, field],
            message: `${field} applies only when collateral is modelled (set collateralUsd on the venues)`,
          });
      const initial = v.marginFraction ?? DEFAULT_MARGIN_FRACTION;
      if (v.maintenanceMarginFraction !== undefined && v.maintenanceMarginFraction > initial)
        ctx.addIssue({
          code: 'custom',
          path: ['venues', i, 'maintenanceMarginFraction'],
          message: `venue "${v.id}": maintenanceMarginFraction ${v.maintenanceMarginFraction} exceeds its marginFraction ${initial}${v.marginFraction === undefined ? ' (default)' : ''}; maintenance margin must be at most initial margin`,
        });
    });
    if (collateral && f.routing !== 'live')
      ctx.addIssue({
        code: 'custom',
        path: ['routing'],
        message: 'collateral (venues[].collateralUsd) is modelled only with routing: live',
      });
    f.frontier.forEach((s, i) => {
      const p = f.policies[s.policy];
      if (!p) {
        ctx.addIssue({
          code: 'custom',
          path: ['frontier', i, 'policy'],
          message: `unknown policy "${s.policy}" (not in policies)`,
        });
        return;
      }
      if (!(s.param in p) && !(s.param === 'bandDelta' && p.kind === 'band'))
        ctx.addIssue({
          code: 'custom',
          path: ['frontier', i, 'param'],
          message: `a ${p.kind} policy has no ${s.param}`,
        });
    });
    // The engine values the book only at step boundaries: an option expiring between two of them
    // would settle at the next boundary's spot, i.e. on a price from after its expiry.
    const { steps, whole } = horizonSteps(f.horizonDays, f.stepHours);
    // Rounded, 10.5 hours of 1-hour steps ran 11 hours (10.4 ran 10): time added or dropped without a word.
    if (!whole && f.horizonDays * 24 >= f.stepHours)
      ctx.addIssue({
        code: 'custom',
        path: ['horizonDays'],
        message: horizonNotWholeMessage(f.horizonDays, f.stepHours),
      });
    f.book.options.forEach((o, i) => {
      const expirySteps = (o.expiryDays * 24) / f.stepHours;
      if (expirySteps < steps && Math.abs(expirySteps - Math.round(expirySteps)) > 1e-9)
        ctx.addIssue({
          code: 'custom',
          path: ['book', 'options', i, 'expiryDays'],
          message: `expires inside the horizon between two steps (after ${expirySteps.toFixed(3)} steps of ${f.stepHours} h); choose a stepHours that divides its expiry`,
        });
    });
    if (f.horizonDays * 24 < f.stepHours)
      ctx.addIssue({ code: 'custom', path: ['stepHours'], message: 'the step is longer than the horizon' });
    if (steps > MAX_BACKTEST_STEPS)
      ctx.addIssue({
        code: 'custom',
        path: ['stepHours'],
        message: `gives ${steps} steps over horizonDays ${f.horizonDays}, at most ${MAX_BACKTEST_STEPS}`,
      });
    if (f.market.process.kind === 'replay') {
      // A replay's spots are history: these settings shape simulated processes only, and the engine
      // would ignore them without a word (options marked at the fixed vol, history's own drift).
      if (f.market.volMark === 'process')
        ctx.addIssue({
          code: 'custom',
          path: ['market', 'volMark'],
          message: 'a replay has no process vol to mark at; use volMark: fixed',
        });
      if (f.market.realizedVol !== undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['market', 'realizedVol'],
          message: 'realizedVol applies to simulated processes; a replay realizes the history',
        });
      if (f.market.drift !== 0)
        ctx.addIssue({
          code: 'custom',
          path: ['market', 'drift'],
          message: 'drift applies to simulated processes; a replay follows the history',
        });
    }
    if (f.market.process.kind === 'replay' && !Number.isInteger(f.stepHours))
      ctx.addIssue({
        code: 'custom',
        path: ['stepHours'],
        message: 'replay of hourly bars needs a whole number of hours',
      });
  });
export type BacktestFile = z.infer<typeof BacktestFile>;
export type BacktestFileInput = z.input<typeof BacktestFile>;

/** Parses a backtest YAML text; throws ValidationError naming every bad field by path (`venues[1].chain`). */
export function parseBacktestFile(text: string, file = '<backtest>'): BacktestFile {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ValidationError(`backtest ${file}`, [
      { path: '', message: `not valid YAML: ${(err as Error).message}` },
    ]);
  }
  return parseOrThrow(BacktestFile, raw, `backtest ${file}`);
}

/** Reads and validates a backtest file; a replay CSV path is resolved relative to the file. */
export function loadBacktestFile(file: string): BacktestFile & { baseDir: string } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ValidationError(`backtest ${file}`, [
      { path: '', message: `cannot read: ${(err as Error).message}` },
    ]);
  }
  return { ...parseBacktestFile(text, file), baseDir: dirname(resolve(file)) };
}

export function resolveCsvPath(csv: string, baseDir: string): string {
  return isAbsolute(csv) ? csv : resolve(baseDir, csv);
}

/** The gas range of a venue: its own, or the chain's typical transaction cost. */
export function gasRangeUsd(v: VenueCostSpec): readonly [number, number] {
  if (typeof v.gasUsd === 'number') return [v.gasUsd, v.gasUsd];
  if (v.gasUsd) return [v.gasUsd.min, v.gasUsd.max];
  return chainInfo(v.chain)?.typicalTxCostUsd ?? [0, 0];
}
