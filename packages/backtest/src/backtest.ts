import { readFileSync } from 'node:fs';
import { PolicyConfig } from '@xhedge/config';
import {
  DAYS_PER_YEAR,
  FiniteNumber,
  MAX_SPOT_USD,
  MIN_SPOT_USD,
  MS_PER_HOUR,
  NumericError,
  parseOrThrow,
  Seed,
  ValidationError,
} from '@xhedge/core';
import { bsm } from '@xhedge/pricing';
import { parsePriceCsv } from '@xhedge/sim';
import { z } from 'zod';
import type { EngineVenue } from './costs.ts';
import {
  batchField,
  type EngineJob,
  type EngineOption,
  hestonSubsteps,
  initialBookValue,
  type PathBatch,
  runPaths,
} from './engine.ts';
import type { DecisionMode } from './hedge-rules.ts';
import { mean, pnlStats, shareAboveZero } from './metrics.ts';
import { createWorkerPool, defaultWorkerCount, type WorkerPool } from './pool.ts';
import {
  type BacktestFile,
  Bps,
  CostUsd,
  DriftPerYear,
  gasRangeUsd,
  horizonNotWholeMessage,
  horizonSteps,
  MAX_BACKTEST_PATHS,
  MAX_BACKTEST_STEPS,
  MAX_BACKTEST_USD,
  MAX_EXPIRY_YEARS,
  PriceUsd,
  RatePerYear,
  resolveCsvPath,
  type SweepParam,
  type VenueCostSpec,
  VolDecimal,
} from './spec.ts';

/** A resolved backtest: the engine job without its policy, the policies to compare, and sweeps. */
export interface BacktestPlan {
  name: string;
  base: Omit<EngineJob, 'policy'>;
  policies: { name: string; policy: PolicyConfig }[];
  /** γ of the entropic risk measure, per USD. */
  riskAversion: number;
  sweeps: { policy: string; param: SweepParam; values: number[] }[];
}

/** P&L attribution, mean per path, USD. Costs are negative contributions; the parts sum to mean P&L. */
export interface Attribution {
  deltaUsd: number;
  gammaUsd: number;
  thetaUsd: number;
  vegaUsd: number;
  /** Higher-order and expiry terms not captured by the Greeks above. */
  residualUsd: number;
  /** Interest on cash plus perp funding. */
  fundingUsd: number;
  feesUsd: number;
  slippageUsd: number;
  gasUsd: number;
  /** Fees of moving collateral across chains (messaging and gas on both chains). */
  bridgeUsd: number;
  /** Liquidation penalties (the spread and impact of liquidation closes are in slippageUsd). */
  liquidationUsd: number;
}

export interface PolicyResult {
  name: string;
  policy: PolicyConfig;
  meanPnlUsd: number;
  stdPnlUsd: number;
  /**
   * Std of the discounted cost of writing and hedging, divided by the book's Black-Scholes value; null
   * when the book is worth nothing at the start (an out-of-the-money option at vol 0): no ratio.
   */
  stdToPrice: number | null;
  cvar95Usd: number;
  entropicRiskUsd: number;
  /** Mean transaction cost per path (fees + slippage + gas + bridge fees + liquidation penalties), USD. */
  meanCostUsd: number;
  /** Mean traded notional per path, USD (the hedger's own trades; not liquidation closes). */
  turnoverUsd: number;
  /** Mean number of hedge trades per path (including the unwind; liquidation closes are counted in `liquidations`). */
  trades: number;
  /** Mean number of cross-chain collateral transfers per path (0 unless collateral is modelled). */
  transfers: number;
  /** Mean number of liquidations per path (0 unless collateral is modelled). */
  liquidations: number;
  /** Share of paths with at least one liquidation, 0..1. */
  liquidatedPathShare: number;
  /** Mean liquidation penalty per path, USD (a cost: positive; also in attribution.liquidationUsd, negated). */
  liquidationUsd: number;
  attribution: Attribution;
}

export interface BacktestReport {
  name: string;
  paths: number;
  seed: number;
  steps: number;
  stepHours: number;
  horizonDays: number;
  /** Book value at the start at the pricing vol (negative for a written book), USD. */
  bookValueUsd: number;
  /** Sum of |size · Black-Scholes price| over the book: the denominator of stdToPrice, USD. */
  bsPriceUsd: number;
  riskAversion: number;
  policies: PolicyResult[];
}

export interface FrontierPoint {
  value: number;
  riskUsd: number;
  costUsd: number;
  entropicRiskUsd: number;
}
export interface FrontierCurve {
  policy: string;
  param: SweepParam;
  points: FrontierPoint[];
}

function toEngineVenue(v: VenueCostSpec): EngineVenue {
  const [gasMinUsd, gasMaxUsd] = gasRangeUsd(v);
  return {
    id: v.id,
    chain: v.chain,
    feeFraction: v.feeBps / 10_000,
    halfSpreadFraction: v.halfSpreadBps / 10_000,
    impactFractionPerUsd: v.impactBpsPerMillionUsd / 10_000 / 1_000_000,
    gasMinUsd,
    gasMaxUsd,
    priorityFeeUsd: v.priorityFeeUsd,
    fundingRatePerHour: v.fundingRatePerHour,
    hedges: v.hedges,
    ...(v.collateralUsd !== undefined ? { collateralUsd: v.collateralUsd } : {}),
    ...(v.marginFraction !== undefined ? { marginFraction: v.marginFraction } : {}),
    ...(v.maintenanceMarginFraction !== undefined
      ? { maintenanceMarginFraction: v.maintenanceMarginFraction }
      : {}),
    ...(v.liquidationPenaltyFraction !== undefined
      ? { liquidationPenaltyFraction: v.liquidationPenaltyFraction }
      : {}),
  };
}

/** Turns a validated backtest file into a plan (reads the replay CSV). */
export function planFromFile(file: BacktestFile, baseDir: string): BacktestPlan {
  const stepYears = file.stepHours / (24 * DAYS_PER_YEAR);
  const { steps, whole } = horizonSteps(file.horizonDays, file.stepHours);
  if (!whole || steps < 1)
    throw new ValidationError('backtest', [
      {
        path: 'horizonDays',
        message:
          steps < 1
            ? `horizonDays ${file.horizonDays} is shorter than one step of stepHours ${file.stepHours}`
            : horizonNotWholeMessage(file.horizonDays, file.stepHours),
      },
    ]);
  const m = file.market;
  let process: EngineJob['process'];
  let spot0 = m.spot;
  if (m.process.kind === 'replay') {
    const path = resolveCsvPath(m.process.csv, baseDir);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new ValidationError('backtest', [
        { path: 'market.process.csv', message: `cannot read ${path}: ${(err as Error).message}` },
      ]);
    }
    const series = parsePriceCsv(text);
    // The engine counts bars as time, so it gets the regular grid: a gap in the CSV (25 hours without a
    // row in the shipped BTC file) is held at the last price for its real length, not squeezed into one
    // bar, which would give that bar a day's move (inflating realized vol and gamma P&L) and shift
    // every later bar of the window off its real time.
    const prices = series.regularPrices();
    const barsPerStep = (file.stepHours * MS_PER_HOUR) / series.stepMs;
    if (!Number.isInteger(barsPerStep))
      throw new ValidationError('backtest', [
        {
          path: 'stepHours',
          message: `must be a multiple of the CSV's bar (${series.stepMs / MS_PER_HOUR} h)`,
        },
      ]);
    if (steps * barsPerStep >= prices.length)
      throw new ValidationError('backtest', [
        {
          path: 'horizonDays',
          message: `the CSV spans ${prices.length} bars; the horizon needs ${steps * barsPerStep + 1}`,
        },
      ]);
    process = { kind: 'replay', prices, barsPerStep };
    spot0 ??= prices[0] as number;
  } else {
    process = { kind: 'simulated', spec: m.process, drift: m.drift, vol: m.realizedVol ?? m.vol };
    // Refused here, before any path runs, when the sub-steps a stable variance needs are too many.
    if (m.process.kind === 'heston') hestonSubsteps(m.process.kappa, stepYears, steps);
  }
  if (spot0 === undefined)
    throw new ValidationError('backtest', [
      { path: 'market.spot', message: 'required for a simulated process' },
    ]);
  const s0 = spot0;
  const options: EngineOption[] = file.book.options.map((o) => ({
    type: o.type,
    strike: o.strike ?? (o.moneyness as number) * s0,
    expiryYears: o.expiryDays / DAYS_PER_YEAR,
    sizeBase: o.size,
  }));
  // a strike given as moneyness is checked once spot is known: in the range a strike in USD must be
  const strikes = options.flatMap((o, i) =>
    o.strike >= MIN_SPOT_USD && o.strike <= MAX_SPOT_USD
      ? []
      : [
          {
            path: `book.options[${i}].moneyness`,
            message: `gives a strike of ${Number(o.strike.toPrecision(6))} USD (moneyness × spot ${s0}), outside ${MIN_SPOT_USD}..${MAX_SPOT_USD} USD`,
          },
        ],
  );
  if (strikes.length) throw new ValidationError('backtest', strikes);
  return {
    name: file.name,
    base: {
      options,
      spot0: s0,
      vol: m.vol,
      volMark: m.volMark,
      rate: m.rate,
      process,
      steps,
      stepYears,
      paths: file.paths,
      seed: file.seed,
      venues: file.venues.map(toEngineVenue),
      unwindAtEnd: file.unwindAtEnd,
      underlying: file.underlying,
      decisions: file.decisions,
      routing: file.routing,
    },
    policies: Object.entries(file.policies).map(([name, policy]) => ({ name, policy })),
    riskAversion: file.riskAversion,
    sweeps: file.frontier,
  };
}

/** Single-option inputs of `xhedge backtest` flags. */
export interface SingleOptionInput {
  type: 'call' | 'put';
  side: 'long' | 'short';
  /** Units of underlying. @defaultValue 1 */
  sizeBase?: number;
  spot: number;
  strike: number;
  expiryYears: number;
  /** Pricing and realized vol, decimal. */
  vol: number;
  /** Real-world drift, decimal per year. @defaultValue 0 */
  drift?: number;
  /** Risk-free rate, decimal; also the hedge perp's funding, so the hedge carries like financed stock. @defaultValue 0 */
  rate?: number;
  paths: number;
  seed: number;
  policy: 'interval' | 'band' | 'ww' | 'leland';
  /** Rebalancing interval for interval and leland, days. @defaultValue 1 */
  intervalDays?: number;
  /** Band half-width for band, underlying units. @defaultValue 0.05 */
  bandDelta?: number;
  /** Proportional cost per trade, bps. @defaultValue 0 */
  costBps?: number;
  /** Gas per trade, USD. @defaultValue 0 */
  gasUsd?: number;
  /** γ per USD, for ww and the entropic risk. @defaultValue 1 */
  riskAversion?: number;
  /** Simulation step, days. @defaultValue interval for interval/leland, 0.25 for band/ww */
  stepDays?: number;
  /** A drift this many times the band (or one interval's expected move) hedges early. @defaultValue 3 */
  urgencyMultiple?: number;
  /** @defaultValue auto */
  decisions?: DecisionMode | 'auto';
}

/** The bounds of {@link SingleOptionInput}: those of the backtest file's fields. */
const SingleOptionSchema = z
  .object({
    type: z.enum(['call', 'put']),
    side: z.enum(['long', 'short']),
    sizeBase: FiniteNumber.positive().max(MAX_BACKTEST_USD).optional(),
    spot: PriceUsd,
    strike: PriceUsd,
    expiryYears: FiniteNumber.positive().max(MAX_EXPIRY_YEARS, `years, at most ${MAX_EXPIRY_YEARS}`),
    vol: VolDecimal,
    drift: DriftPerYear.optional(),
    rate: RatePerYear.optional(),
    paths: z.number().int().min(2).max(MAX_BACKTEST_PATHS, `at most ${MAX_BACKTEST_PATHS}`),
    seed: Seed,
    policy: z.enum(['interval', 'band', 'ww', 'leland']),
    intervalDays: FiniteNumber.positive().optional(),
    bandDelta: FiniteNumber.positive().optional(),
    costBps: Bps.optional(),
    gasUsd: CostUsd.optional(),
    riskAversion: FiniteNumber.positive().optional(),
    stepDays: FiniteNumber.positive().optional(),
    urgencyMultiple: FiniteNumber.optional(),
    decisions: z.enum(['auto', 'strategy', 'kernel']).optional(),
  })
  .strict();

/**
 * Builds a plan for one option hedged with one policy on GBM paths (the textbook experiment). Throws
 * ValidationError naming every input out of its bounds (a cost of 1e300 bps, a drift of 1e300).
 */
export function planSingleOption(input: SingleOptionInput): BacktestPlan {
  parseOrThrow(SingleOptionSchema, input, 'backtest');
  const intervalDays = input.intervalDays ?? 1;
  const costBps = input.costBps ?? 0;
  const riskAversion = input.riskAversion ?? 1;
  // Dust guard off: a single textbook option trades fractions of a share.
  const common = {
    minTradeUsd: 0,
    ...(input.urgencyMultiple !== undefined ? { urgencyMultiple: input.urgencyMultiple } : {}),
  };
  const raw =
    input.policy === 'interval'
      ? { kind: 'interval', intervalMinutes: intervalDays * 1440, ...common }
      : input.policy === 'leland'
        ? { kind: 'leland', intervalMinutes: intervalDays * 1440, costBps, ...common }
        : input.policy === 'band'
          ? { kind: 'band', bandDelta: input.bandDelta ?? 0.05, ...common }
          : { kind: 'ww', riskAversion, costBps, ...common };
  const policy = parseOrThrow(PolicyConfig, raw, 'policy');
  const stepDays =
    input.stepDays ?? (input.policy === 'interval' || input.policy === 'leland' ? intervalDays : 0.25);
  const horizonDays = input.expiryYears * DAYS_PER_YEAR;
  // Interval policies trade only once `intervalDays` have passed since the last hedge: a step rounded
  // to a hair shorter than the interval (36.5 days in 37 steps of 0.986 d) would fail that gate every
  // other step and hedge half as often as asked. Their steps are never shorter than stepDays.
  const gated = input.policy === 'interval' || input.policy === 'leland';
  const steps = Math.max(
    1,
    gated ? Math.floor(horizonDays / stepDays + 1e-9) : Math.round(horizonDays / stepDays),
  );
  if (steps > MAX_BACKTEST_STEPS)
    throw new ValidationError('backtest', [
      {
        path: 'stepDays',
        message: `steps of ${stepDays} days over ${horizonDays} days are ${steps} steps, at most ${MAX_BACKTEST_STEPS}`,
      },
    ]);
  return {
    name: `${input.side} ${input.type} K=${input.strike}`,
    base: {
      options: [
        {
          type: input.type,
          strike: input.strike,
          expiryYears: input.expiryYears,
          sizeBase: (input.side === 'short' ? -1 : 1) * (input.sizeBase ?? 1),
        },
      ],
      spot0: input.spot,
      vol: input.vol,
      volMark: 'fixed',
      rate: input.rate ?? 0,
      process: { kind: 'simulated', spec: { kind: 'gbm' }, drift: input.drift ?? 0, vol: input.vol },
      steps,
      // The grid ends exactly at expiry, so the last step settles the option.
      stepYears: input.expiryYears / steps,
      paths: input.paths,
      seed: input.seed,
      venues: [
        {
          id: 'flat-cost',
          chain: 'offchain',
          feeFraction: costBps / 10_000,
          halfSpreadFraction: 0,
          impactFractionPerUsd: 0,
          gasMinUsd: input.gasUsd ?? 0,
          gasMaxUsd: input.gasUsd ?? 0,
          priorityFeeUsd: 0,
          // The textbook hedges with the underlying bought on cash borrowed at the rate. The engine's
          // hedge is a perp (no notional financed), so its funding is the rate: the same carry.
          fundingRatePerHour: (input.rate ?? 0) / (DAYS_PER_YEAR * 24),
        },
      ],
      unwindAtEnd: true,
      underlying: 'X',
      decisions: input.decisions ?? 'auto',
      routing: 'cheapest', // one venue: nothing to route
    },
    policies: [{ name: input.policy, policy }],
    riskAversion,
    sweeps: [],
  };
}

/** Gross Black-Scholes value of the book at the start, USD. */
export function bookPremiumUsd(base: Pick<EngineJob, 'options' | 'spot0' | 'vol' | 'rate'>): number {
  let s = 0;
  for (const o of base.options) {
    const g = bsm({
      type: o.type,
      spot: base.spot0,
      strike: o.strike,
      timeYears: o.expiryYears,
      vol: Math.max(base.vol, 1e-12),
      rate: base.rate,
    });
    s += Math.abs(o.sizeBase * g.price);
  }
  return s;
}

/** Summarizes one policy's per-path results. */
export function summarize(
  plan: BacktestPlan,
  name: string,
  policy: PolicyConfig,
  batch: PathBatch,
): PolicyResult {
  const pnl = batchField(batch, 'pnlUsd');
  const stats = pnlStats(pnl, plan.riskAversion);
  const horizonYears = plan.base.steps * plan.base.stepYears;
  const premium = bookPremiumUsd(plan.base);
  const fees = mean(batchField(batch, 'feesUsd'));
  const slip = mean(batchField(batch, 'slippageUsd'));
  const gas = mean(batchField(batch, 'gasUsd'));
  const bridge = mean(batchField(batch, 'bridgeUsd'));
  const liquidationUsd = mean(batchField(batch, 'liquidationUsd'));
  const liquidations = batchField(batch, 'liquidations');
  const result: PolicyResult = {
    name,
    policy,
    ...stats,
    stdToPrice: premium > 0 ? (stats.stdPnlUsd * Math.exp(-plan.base.rate * horizonYears)) / premium : null,
    meanCostUsd: fees + slip + gas + bridge + liquidationUsd,
    turnoverUsd: mean(batchField(batch, 'turnoverUsd')),
    trades: mean(batchField(batch, 'trades')),
    transfers: mean(batchField(batch, 'transfers')),
    liquidations: mean(liquidations),
    liquidatedPathShare: shareAboveZero(liquidations),
    liquidationUsd,
    attribution: {
      deltaUsd: mean(batchField(batch, 'deltaUsd')),
      gammaUsd: mean(batchField(batch, 'gammaUsd')),
      thetaUsd: mean(batchField(batch, 'thetaUsd')),
      vegaUsd: mean(batchField(batch, 'vegaUsd')),
      residualUsd: mean(batchField(batch, 'residualUsd')),
      fundingUsd: mean(batchField(batch, 'fundingUsd')),
      feesUsd: -fees,
      slippageUsd: -slip,
      gasUsd: -gas,
      bridgeUsd: -bridge,
      liquidationUsd: -liquidationUsd,
    },
  };
  assertFiniteResult(result);
  return result;
}

/** Every number of a policy result is finite: an overflow is an error naming the statistic, never an Infinity in a report. */
function assertFiniteResult(r: PolicyResult): void {
  const check = (field: string, v: number | null): void => {
    if (v !== null && !Number.isFinite(v))
      throw new NumericError(`${r.name}: ${field} (the inputs put it past the range of a double)`, v, {
        policy: r.name,
        field,
      });
  };
  for (const [k, v] of Object.entries(r))
    if (typeof v === 'number' || v === null) check(k, v as number | null);
  for (const [k, v] of Object.entries(r.attribution)) check(`attribution.${k}`, v);
}

export interface BacktestRunOptions {
  /** Worker threads; 0 or 1 runs in this thread. @defaultValue available parallelism */
  workers?: number;
  /** Progress: paths done so far and the total for the whole run (all policies and sweep points). */
  onProgress?: (done: number, total: number) => void;
}

class Runner {
  readonly #pool: WorkerPool | null;
  #done = 0;
  constructor(
    workers: number,
    readonly total: number,
    readonly onProgress: ((done: number, total: number) => void) | undefined,
  ) {
    this.#pool = workers > 1 ? createWorkerPool(workers) : null;
  }
  async run(job: EngineJob): Promise<PathBatch> {
    const tick = (n: number): void => {
      this.#done += n;
      this.onProgress?.(this.#done, this.total);
    };
    return this.#pool ? this.#pool.run(job, tick) : runPaths(job, 0, job.paths, { onPaths: tick });
  }
  async close(): Promise<void> {
    await this.#pool?.close();
  }
}

function withParam(policy: PolicyConfig, param: SweepParam, value: number): PolicyConfig {
  return parseOrThrow(PolicyConfig, { ...policy, [param]: value }, `sweep ${param}=${value}`);
}

/** Runs every policy of the plan on the same paths (same seed: common random numbers). */
export async function runBacktest(
  plan: BacktestPlan,
  opts: BacktestRunOptions & { frontier?: boolean } = {},
): Promise<{ report: BacktestReport; frontier: FrontierCurve[] }> {
  const sweepRuns = opts.frontier ? plan.sweeps.reduce((n, s) => n + s.values.length, 0) : 0;
  const total = (plan.policies.length + sweepRuns) * plan.base.paths;
  const runner = new Runner(opts.workers ?? defaultWorkerCount(), total, opts.onProgress);
  try {
    const policies: PolicyResult[] = [];
    for (const p of plan.policies) {
      const batch = await runner.run({ ...plan.base, policy: p.policy });
      policies.push(summarize(plan, p.name, p.policy, batch));
    }
    const frontier: FrontierCurve[] = [];
    if (opts.frontier) {
      for (const s of plan.sweeps) {
        const base = plan.policies.find((p) => p.name === s.policy);
        if (!base)
          throw new ValidationError('backtest', [
            { path: 'frontier', message: `unknown policy ${s.policy}` },
          ]);
        const points: FrontierPoint[] = [];
        for (const value of s.values) {
          const policy = withParam(base.policy, s.param, value);
          const r = summarize(plan, s.policy, policy, await runner.run({ ...plan.base, policy }));
          points.push({
            value,
            riskUsd: r.stdPnlUsd,
            costUsd: r.meanCostUsd,
            entropicRiskUsd: r.entropicRiskUsd,
          });
        }
        frontier.push({ policy: s.policy, param: s.param, points });
      }
    }
    const premium = initialBookValue(plan.base);
    return {
      report: {
        name: plan.name,
        paths: plan.base.paths,
        seed: plan.base.seed,
        steps: plan.base.steps,
        stepHours: plan.base.stepYears * DAYS_PER_YEAR * 24,
        horizonDays: plan.base.steps * plan.base.stepYears * DAYS_PER_YEAR,
        bookValueUsd: premium,
        bsPriceUsd: bookPremiumUsd(plan.base),
        riskAversion: plan.riskAversion,
        policies,
      },
      frontier,
    };
  } finally {
    await runner.close();
  }
}
