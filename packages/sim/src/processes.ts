import { MAX_ABS_DRIFT_PER_YEAR, MAX_SPOT_USD, MAX_VOL_DECIMAL, MIN_SPOT_USD } from '@xhedge/core';
import { z } from 'zod';
import { cholesky, correlationMatrix } from './cholesky.ts';
import { SimError } from './errors.ts';
import type { Rng } from './rng.ts';

// Bounds of the simulator's inputs (drift, vol and spot ones in @xhedge/core, shared with the profile's
// paper market and the backtest spec).
export { MAX_ABS_DRIFT_PER_YEAR, MAX_SPOT_USD, MAX_VOL_DECIMAL, MIN_SPOT_USD };
/** Largest jump rate, per year (about eleven an hour). */
export const MAX_JUMPS_PER_YEAR = 100_000;
/** Largest |mean| and sd of a log jump: 5 is a move of e^5, 148× up or 99.3% down. */
export const MAX_LOG_JUMP = 5;
/** Largest mean-reversion speed of Heston variance, per year (a half-life of under an hour). */
export const MAX_KAPPA_PER_YEAR = 10_000;
/**
 * Largest kappa·dt of one Euler step of the Heston variance. The step v += kappa·(theta − v)·dt + … moves
 * v past theta once kappa·dt > 1 and swings with a growing amplitude past 2 (kappa 1000 per year on daily
 * steps: the mean variance went 1.6, 0, 0.73, 0.48… around a long-run 0.64, stuck at 0 on 27% of steps).
 * A longer step is simulated as equal sub-steps each at most this; at or below it a step is one Euler
 * step, exactly as before.
 */
export const MAX_HESTON_KAPPA_DT = 0.1;
/** Most sub-steps one Heston step may take (kappa·dt up to 100,000: kappa 10,000 per year over 10 years). */
export const MAX_HESTON_SUBSTEPS_PER_STEP = 1_000_000;

/**
 * Equal sub-steps of one Heston step of `dtYears` at mean-reversion `kappaPerYear`, each with kappa·dt at
 * most {@link MAX_HESTON_KAPPA_DT} (to a billionth: the float residue of dt / n); 1 when kappa·dt is
 * already within it. Throws {@link SimError} naming kappa and dt past {@link MAX_HESTON_SUBSTEPS_PER_STEP}.
 */
export function hestonSubsteps(kappaPerYear: number, dtYears: number): number {
  const kappaDt = kappaPerYear * dtYears;
  if (!(kappaDt >= 0) || !Number.isFinite(kappaDt))
    throw new SimError(
      `Heston kappa ${kappaPerYear} per year on a step of ${dtYears} years gives no kappa·dt`,
      {
        kappaPerYear,
        dtYears,
      },
    );
  const n = Math.max(1, Math.ceil(kappaDt / MAX_HESTON_KAPPA_DT - 1e-9));
  if (n > MAX_HESTON_SUBSTEPS_PER_STEP)
    throw new SimError(
      `Heston kappa ${kappaPerYear} per year on a step of ${dtYears} years (kappa·dt ${Number(kappaDt.toPrecision(4))}) needs ${n} sub-steps to keep kappa·dt at most ${MAX_HESTON_KAPPA_DT}, above the limit of ${MAX_HESTON_SUBSTEPS_PER_STEP} per step; use shorter steps or a lower kappa`,
      { kappaPerYear, dtYears, substeps: n },
    );
  return n;
}

/** Largest Heston vol of variance (fitted crypto values are below 5). */
export const MAX_VOL_OF_VOL = 20;
/** Largest stressed-regime vol multiplier. */
export const MAX_STRESSED_VOL_MULTIPLIER = 20;

/** One simulated underlying: starting spot (USD), annualized vol (decimal) and drift (decimal per year). */
export const UnderlyingSpec = z.object({
  spot: z
    .number()
    .finite()
    .min(MIN_SPOT_USD, `spot is USD, at least ${MIN_SPOT_USD}`)
    .max(MAX_SPOT_USD, `spot is USD, at most ${MAX_SPOT_USD}`),
  vol: z
    .number()
    .positive('vol must be above 0')
    .max(MAX_VOL_DECIMAL, `vol is a decimal (0.8 = 80%), at most ${MAX_VOL_DECIMAL}`),
  /** Annualized drift μ of the log price (before the −σ²/2 correction), decimal. @defaultValue 0 */
  drift: z
    .number()
    .min(-MAX_ABS_DRIFT_PER_YEAR, `drift is a decimal per year, at least -${MAX_ABS_DRIFT_PER_YEAR}`)
    .max(MAX_ABS_DRIFT_PER_YEAR, `drift is a decimal per year, at most ${MAX_ABS_DRIFT_PER_YEAR}`)
    .default(0),
});
export type UnderlyingSpec = z.input<typeof UnderlyingSpec>;

/**
 * The price process. All are driven by the same correlated Brownian increments (Cholesky of the
 * correlation matrix); jumps are independent per underlying.
 * - `gbm`: constant vol.
 * - `jump`: Merton jump-diffusion: Poisson jumps (`intensityPerYear`) with normal log sizes
 *   (`meanLogJump`, `stdLogJump`), drift-compensated so E[S_t] = S_0·e^{μt}.
 * - `heston`: stochastic variance v (mean-reverting at `kappa` to `thetaVar`, default vol², vol of
 *   variance `volOfVol`, spot/variance correlation `rho`), full-truncation Euler; a step with kappa·dt
 *   above {@link MAX_HESTON_KAPPA_DT} is taken as equal sub-steps (see {@link hestonSubsteps}).
 * - `regime`: calm/stressed Markov switching: in stress vol × `stressedVolMultiplier`, correlations
 *   pulled towards `stressedCorrelation`, optional jumps.
 */
export const ProcessSpec = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('gbm') }),
  z.object({
    kind: z.literal('jump'),
    /** Expected jumps per year. @defaultValue 12 */
    intensityPerYear: z
      .number()
      .nonnegative()
      .max(MAX_JUMPS_PER_YEAR, `intensityPerYear is at most ${MAX_JUMPS_PER_YEAR}`)
      .default(12),
    /** Mean of the log jump size. @defaultValue -0.03 */
    meanLogJump: z
      .number()
      .min(-MAX_LOG_JUMP, `meanLogJump is a log size, at least -${MAX_LOG_JUMP}`)
      .max(MAX_LOG_JUMP, `meanLogJump is a log size, at most ${MAX_LOG_JUMP}`)
      .default(-0.03),
    /** Std dev of the log jump size. @defaultValue 0.06 */
    stdLogJump: z
      .number()
      .nonnegative()
      .max(MAX_LOG_JUMP, `stdLogJump is a log size, at most ${MAX_LOG_JUMP}`)
      .default(0.06),
  }),
  z.object({
    kind: z.literal('heston'),
    /** Mean-reversion speed of the variance, per year. @defaultValue 3 */
    kappa: z
      .number()
      .positive()
      .max(MAX_KAPPA_PER_YEAR, `kappa is per year, at most ${MAX_KAPPA_PER_YEAR}`)
      .default(3),
    /** Long-run variance; defaults to the underlying's vol². */
    thetaVar: z
      .number()
      .positive()
      .max(
        MAX_VOL_DECIMAL ** 2,
        `thetaVar is a variance, at most ${MAX_VOL_DECIMAL ** 2} (vol ${MAX_VOL_DECIMAL})`,
      )
      .optional(),
    /** Vol of variance ξ. @defaultValue 0.8 */
    volOfVol: z
      .number()
      .nonnegative()
      .max(MAX_VOL_OF_VOL, `volOfVol is at most ${MAX_VOL_OF_VOL}`)
      .default(0.8),
    /** Correlation of spot and variance shocks (negative: vol up when price down). @defaultValue -0.5 */
    rho: z.number().min(-1).max(1).default(-0.5),
  }),
  z.object({
    kind: z.literal('regime'),
    /** Vol multiplier while stressed. @defaultValue 2.5 */
    stressedVolMultiplier: z
      .number()
      .positive()
      .max(MAX_STRESSED_VOL_MULTIPLIER, `stressedVolMultiplier is at most ${MAX_STRESSED_VOL_MULTIPLIER}`)
      .default(2.5),
    /** Rate of calm → stressed switches, per year. @defaultValue 6 */
    calmToStressedPerYear: z.number().nonnegative().finite().default(6),
    /** Rate of stressed → calm switches, per year (mean stress lasts 1/rate years). @defaultValue 52 */
    stressedToCalmPerYear: z.number().nonnegative().finite().default(52),
    /** Pairwise correlation floor while stressed (correlations go to one in a crash). @defaultValue 0.9 */
    stressedCorrelation: z.number().min(-1).max(1).default(0.9),
    /** Jumps per year while stressed (log size mean −5%, sd 5%). @defaultValue 24 */
    stressedJumpsPerYear: z
      .number()
      .nonnegative()
      .max(MAX_JUMPS_PER_YEAR, `stressedJumpsPerYear is at most ${MAX_JUMPS_PER_YEAR}`)
      .default(24),
    /** Start in the stressed regime. @defaultValue false */
    startStressed: z.boolean().default(false),
  }),
]);
export type ProcessSpec = z.input<typeof ProcessSpec>;
type ParsedProcess = z.output<typeof ProcessSpec>;

export type Regime = 'calm' | 'stressed';

/** Smallest positive double with full precision: a price below it has lost digits (or is 0). */
const MIN_NORMAL_DOUBLE = 2.2250738585072014e-308;

/** The first issue of a failed parse, with the value it refused (`kappa is per year, at most 10000, got 1e+300`). */
function firstIssue(err: z.ZodError, input: unknown): string {
  const issue = err.issues[0];
  if (!issue) return 'invalid';
  let value: unknown = input;
  for (const key of issue.path)
    value =
      value !== null && typeof value === 'object' ? (value as Record<PropertyKey, unknown>)[key] : undefined;
  return value === undefined ? issue.message : `${issue.message}, got ${String(value)}`;
}

export interface PathEngineOptions {
  underlyings: Readonly<Record<string, UnderlyingSpec>>;
  /** Pairwise correlations keyed `A/B`. Missing pairs are 0. */
  correlations?: Readonly<Record<string, number>>;
  process?: ProcessSpec;
  rng: Rng;
}

/** What one step did, per underlying (same order as `names`). */
export interface StepResult {
  dtYears: number;
  logReturns: Float64Array;
  jumps: Int32Array;
  regime: Regime;
}

/**
 * Steps several correlated underlyings forward. Deterministic: the same options and rng seed and the
 * same sequence of `dtYears` give the same prices.
 */
export class PathEngine {
  readonly names: readonly string[];
  readonly process: ParsedProcess;
  readonly #rng: Rng;
  readonly #logSpot: Float64Array;
  /** exp(logSpot), kept so the starting and replayed prices are exact. */
  readonly #spot: Float64Array;
  readonly #baseVol: Float64Array;
  readonly #drift: Float64Array;
  readonly #variance: Float64Array;
  readonly #cholCalm: number[][];
  readonly #cholStressed: number[][];
  readonly #eps: Float64Array;
  readonly #z: Float64Array;
  #regime: Regime;
  readonly #jumpCounts: Int32Array;
  readonly #startSpot: Float64Array;
  /** Simulated time so far, years (named in the error of a price that leaves the range of a double). */
  #elapsedYears = 0;

  constructor(opts: PathEngineOptions) {
    const names = Object.keys(opts.underlyings);
    if (names.length === 0) throw new SimError('at least one underlying is required');
    this.names = names;
    const parsed = ProcessSpec.safeParse(opts.process ?? { kind: 'gbm' });
    if (!parsed.success)
      throw new SimError(`bad process: ${firstIssue(parsed.error, opts.process)}`, {
        process: opts.process,
      });
    this.process = parsed.data;
    this.#rng = opts.rng;
    const n = names.length;
    this.#logSpot = new Float64Array(n);
    this.#spot = new Float64Array(n);
    this.#baseVol = new Float64Array(n);
    this.#drift = new Float64Array(n);
    this.#variance = new Float64Array(n);
    this.#startSpot = new Float64Array(n);
    names.forEach((name, i) => {
      const s = UnderlyingSpec.safeParse(opts.underlyings[name]);
      if (!s.success)
        throw new SimError(`underlying ${name}: ${firstIssue(s.error, opts.underlyings[name])}`, { name });
      this.#startSpot[i] = s.data.spot;
      this.#logSpot[i] = Math.log(s.data.spot);
      this.#spot[i] = s.data.spot;
      this.#baseVol[i] = s.data.vol;
      this.#drift[i] = s.data.drift;
      this.#variance[i] = s.data.vol * s.data.vol;
    });
    const corr = correlationMatrix(names, opts.correlations ?? {});
    this.#cholCalm = cholesky(corr, names);
    const p = this.process;
    if (p.kind === 'regime') {
      const floor = p.stressedCorrelation;
      this.#cholStressed = cholesky(
        corr.map((row, i) => row.map((c, j) => (i === j ? 1 : Math.max(c, floor)))),
        names,
        `stressed correlation matrix (each pair at least stressedCorrelation ${floor})`,
      );
    } else this.#cholStressed = this.#cholCalm;
    this.#eps = new Float64Array(n);
    this.#z = new Float64Array(n);
    this.#regime = p.kind === 'regime' && p.startStressed ? 'stressed' : 'calm';
    this.#jumpCounts = new Int32Array(n);
  }

  spot(i: number): number {
    return this.#spot[i] ?? Number.NaN;
  }
  /** Instantaneous vol of underlying `i` (decimal, annualized) under the current regime/variance. */
  instantVol(i: number): number {
    const p = this.process;
    if (p.kind === 'heston') return Math.sqrt(Math.max(this.#variance[i] ?? 0, 0));
    const base = this.#baseVol[i] ?? 0;
    if (p.kind === 'regime' && this.#regime === 'stressed') return base * p.stressedVolMultiplier;
    return base;
  }
  baseVol(i: number): number {
    return this.#baseVol[i] ?? Number.NaN;
  }
  get regime(): Regime {
    return this.#regime;
  }
  /** Jumps so far per underlying. */
  get jumpCounts(): Int32Array {
    return this.#jumpCounts;
  }
  /** Replaces the log spot of one underlying (historical replay overrides the process). */
  setSpot(i: number, spot: number): void {
    this.#logSpot[i] = Math.log(spot);
    this.#spot[i] = spot;
  }

  step(dtYears: number, out?: StepResult): StepResult {
    if (!(dtYears > 0) || !Number.isFinite(dtYears)) throw new SimError(`step: dt ${dtYears} must be > 0`);
    const p = this.process;
    // Before any draw or state change: a step that would need too many sub-steps is refused whole.
    const substeps = p.kind === 'heston' ? hestonSubsteps(p.kappa, dtYears) : 1;
    const n = this.names.length;
    const res: StepResult = out ?? {
      dtYears,
      logReturns: new Float64Array(n),
      jumps: new Int32Array(n),
      regime: this.#regime,
    };
    res.dtYears = dtYears;
    if (p.kind === 'regime') {
      const rate = this.#regime === 'calm' ? p.calmToStressedPerYear : p.stressedToCalmPerYear;
      if (this.#rng.next() < 1 - Math.exp(-rate * dtYears))
        this.#regime = this.#regime === 'calm' ? 'stressed' : 'calm';
    }
    const chol = this.#regime === 'stressed' ? this.#cholStressed : this.#cholCalm;
    if (substeps === 1) this.#advance(dtYears, chol, res, false, this.#elapsedYears + dtYears);
    else {
      // Heston only (no jumps): the spot and the variance move together through every sub-step, each
      // with its own correlated draws from the same stream; the step returns their summed log return.
      res.logReturns.fill(0);
      res.jumps.fill(0);
      const h = dtYears / substeps;
      for (let j = 1; j <= substeps; j++) this.#advance(h, chol, res, true, this.#elapsedYears + j * h);
    }
    res.regime = this.#regime;
    this.#elapsedYears += dtYears;
    return res;
  }

  /**
   * One Euler step of `dtYears` of every underlying (no regime switch): correlated draws, Heston variance,
   * jumps, new spots. `accumulate` adds the log returns and jumps to `res` (sub-steps) instead of setting
   * them; `yearsAtEnd` is the simulated time after it, for the out-of-range error.
   */
  #advance(
    dtYears: number,
    chol: number[][],
    res: StepResult,
    accumulate: boolean,
    yearsAtEnd: number,
  ): void {
    const n = this.names.length;
    const p = this.process;
    const rng = this.#rng;
    for (let i = 0; i < n; i++) this.#eps[i] = rng.normal();
    for (let i = 0; i < n; i++) {
      const row = chol[i] as number[];
      let s = 0;
      for (let k = 0; k <= i; k++) s += (row[k] ?? 0) * (this.#eps[k] ?? 0);
      this.#z[i] = s;
    }
    const sqrtDt = Math.sqrt(dtYears);
    for (let i = 0; i < n; i++) {
      const z = this.#z[i] ?? 0;
      const mu = this.#drift[i] ?? 0;
      let sigma: number;
      let jumpLog = 0;
      let jumpCount = 0;
      let compensator = 0;
      if (p.kind === 'heston') {
        const v = Math.max(this.#variance[i] ?? 0, 0);
        sigma = Math.sqrt(v);
        const theta = p.thetaVar ?? (this.#baseVol[i] ?? 0) ** 2;
        const zv = p.rho * z + Math.sqrt(1 - p.rho * p.rho) * rng.normal();
        this.#variance[i] =
          (this.#variance[i] ?? 0) +
          p.kappa * (theta - v) * dtYears +
          p.volOfVol * Math.sqrt(v) * zv * sqrtDt;
      } else {
        sigma = this.instantVol(i);
      }
      let lambda = 0;
      let m = 0;
      let sd = 0;
      if (p.kind === 'jump') {
        lambda = p.intensityPerYear;
        m = p.meanLogJump;
        sd = p.stdLogJump;
      } else if (p.kind === 'regime' && this.#regime === 'stressed') {
        lambda = p.stressedJumpsPerYear;
        m = -0.05;
        sd = 0.05;
      }
      if (lambda > 0) {
        jumpCount = rng.poisson(lambda * dtYears);
        for (let j = 0; j < jumpCount; j++) jumpLog += m + sd * rng.normal();
        compensator = lambda * (Math.exp(m + 0.5 * sd * sd) - 1);
      }
      const r = (mu - 0.5 * sigma * sigma - compensator) * dtYears + sigma * sqrtDt * z + jumpLog;
      const logSpot = (this.#logSpot[i] ?? 0) + r;
      const spot = Math.exp(logSpot);
      // Bounded inputs can still compound past a double over a long horizon (drift 100 for 8 years):
      // refused by name, never an Infinity, 0 or NaN price.
      if (!(spot >= MIN_NORMAL_DOUBLE && spot < Number.POSITIVE_INFINITY))
        throw this.#outOfRange(i, logSpot, yearsAtEnd);
      this.#logSpot[i] = logSpot;
      this.#spot[i] = spot;
      res.logReturns[i] = accumulate ? (res.logReturns[i] ?? 0) + r : r;
      res.jumps[i] = accumulate ? (res.jumps[i] ?? 0) + jumpCount : jumpCount;
      this.#jumpCounts[i] = (this.#jumpCounts[i] ?? 0) + jumpCount;
    }
  }

  #outOfRange(i: number, logSpot: number, years: number): SimError {
    const name = this.names[i] ?? String(i);
    const { kind, ...params } = this.process;
    const processParams = Object.entries(params)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    const inputs = `spot ${this.#startSpot[i]}, drift ${this.#drift[i]}, vol ${this.#baseVol[i]}, process ${kind}${processParams ? ` (${processParams})` : ''}`;
    return new SimError(
      `underlying ${name}: the simulated price left the range of a double after ${Number(years.toPrecision(4))} years (log price ${Number.isNaN(logSpot) ? 'NaN' : Number(logSpot.toPrecision(4))}) with ${inputs}; lower the drift, vol, jump sizes or horizon`,
      { name, logSpot, years },
    );
  }
}
