import { DAYS_PER_YEAR } from '@xhedge/core';
import { SimError } from './errors.ts';
import { PathEngine, type ProcessSpec, type UnderlyingSpec } from './processes.ts';
import { createRng } from './rng.ts';

export interface SimulatePathsOptions {
  process?: ProcessSpec;
  /** One underlying's spot, vol and drift. */
  underlying: UnderlyingSpec;
  /** Horizon in calendar days (crypto trades 24/7). */
  days: number;
  /** Steps per day (24 = hourly). */
  stepsPerDay: number;
  /** Number of independent paths. */
  paths: number;
  seed: number;
}

/** Independent paths of one underlying: `prices[p][k]` is the price of path p after k steps. */
export interface PathSet {
  dtYears: number;
  steps: number;
  /** The horizon simulated, calendar days: steps / stepsPerDay (the days asked for, to a billionth of a step). */
  horizonDays: number;
  prices: Float64Array[];
  /** Jumps per path (jump and regime processes). */
  jumps: Int32Array;
  /** Steps spent in the stressed regime, per path. */
  stressedSteps: Int32Array;
}

/** Largest paths × (steps + 1) prices one call may hold: 8 bytes each, 800 MB. */
export const MAX_PATH_POINTS = 100_000_000;

/** Simulates `paths` independent paths; deterministic by seed. */
export function simulatePaths(opts: SimulatePathsOptions): PathSet {
  for (const [k, v] of [
    ['days', opts.days],
    ['stepsPerDay', opts.stepsPerDay],
    ['paths', opts.paths],
  ] as const) {
    if (!(v > 0) || !Number.isFinite(v)) throw new SimError(`${k} must be > 0, got ${v}`);
  }
  const steps = wholeSteps(opts.days, opts.stepsPerDay);
  if (!Number.isInteger(opts.paths)) throw new SimError(`paths must be a whole number, got ${opts.paths}`);
  if (opts.paths * (steps + 1) > MAX_PATH_POINTS)
    throw new SimError(
      `paths × (steps + 1) = ${opts.paths} × ${steps + 1} prices is above the limit of ${MAX_PATH_POINTS}`,
      { paths: opts.paths, steps },
    );
  const dtYears = 1 / (opts.stepsPerDay * DAYS_PER_YEAR);
  const root = createRng(opts.seed);
  const prices: Float64Array[] = [];
  const jumps = new Int32Array(opts.paths);
  const stressedSteps = new Int32Array(opts.paths);
  for (let p = 0; p < opts.paths; p++) {
    const engine = new PathEngine({
      underlyings: { X: opts.underlying },
      process: opts.process ?? { kind: 'gbm' },
      rng: root.fork(`path:${p}`),
    });
    const out = new Float64Array(steps + 1);
    out[0] = engine.spot(0);
    for (let k = 1; k <= steps; k++) {
      const r = engine.step(dtYears);
      if (r.regime === 'stressed') stressedSteps[p] = (stressedSteps[p] ?? 0) + 1;
      out[k] = engine.spot(0);
    }
    jumps[p] = engine.jumpCounts[0] ?? 0;
    prices.push(out);
  }
  return { dtYears, steps, horizonDays: steps / opts.stepsPerDay, prices, jumps, stressedSteps };
}

/**
 * Steps of a horizon of `days` at `stepsPerDay`. Throws {@link SimError} unless they are a whole number
 * (to a billionth of a step: the float residue of e.g. 0.1 day × 10): rounded, 0.4375 days of hourly steps
 * (10.5) ran 11 hours without a word. The error names the nearest whole horizons.
 */
function wholeSteps(days: number, stepsPerDay: number): number {
  const exact = days * stepsPerDay;
  const steps = Math.round(exact);
  if (Math.abs(exact - steps) <= 1e-9 && steps >= 1) return steps;
  const fmt = (x: number): number => Number(x.toPrecision(10));
  const down = Math.floor(exact);
  const options = [down, down + 1]
    .filter((k) => k >= 1)
    .map((k) => `${fmt(k / stepsPerDay)} day${k === stepsPerDay ? '' : 's'} (${k} step${k === 1 ? '' : 's'})`)
    .join(' or ');
  throw new SimError(
    `days ${days} × stepsPerDay ${stepsPerDay} is ${fmt(exact)} steps, not a whole number; a partial last step is not simulated, so give a horizon that is a whole number of steps: ${options}`,
    { days, stepsPerDay, steps: exact },
  );
}

/** Annualized realized vol of a price series sampled every `dtYears` (close-to-close log returns). */
export function realizedVol(prices: ArrayLike<number>, dtYears: number): number {
  const n = prices.length - 1;
  if (n < 1) throw new SimError('realized vol needs at least two prices');
  let sum = 0;
  let sumSq = 0;
  for (let k = 1; k <= n; k++) {
    const r = Math.log((prices[k] as number) / (prices[k - 1] as number));
    sum += r;
    sumSq += r * r;
  }
  // Demeaned sample variance: drift does not inflate realized vol.
  const mean = sum / n;
  const variance = n > 1 ? (sumSq - n * mean * mean) / (n - 1) : sumSq;
  return Math.sqrt(variance / dtYears);
}

function mean(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i] as number;
  return s / xs.length;
}
function std(xs: ArrayLike<number>): number {
  const m = mean(xs);
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += ((xs[i] as number) - m) ** 2;
  return xs.length > 1 ? Math.sqrt(s / (xs.length - 1)) : 0;
}
function quantile(sorted: Float64Array, q: number): number {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  const a = sorted[lo] as number;
  const b = sorted[hi] as number;
  return a + (b - a) * (pos - lo);
}

/** Summary statistics of a path set (for sanity checks of a process). */
export interface PathSummary {
  paths: number;
  steps: number;
  startPrice: number;
  realizedVolMean: number;
  realizedVolStd: number;
  terminalMean: number;
  terminalStd: number;
  terminalP05: number;
  terminalP50: number;
  terminalP95: number;
  /** Mean of log(S_T/S_0). */
  logReturnMean: number;
  /** Mean of the per-path maximum drawdown (fraction). */
  maxDrawdownMean: number;
  jumpsPerPathMean: number;
  /** Share of steps spent in the stressed regime. */
  stressedFraction: number;
}

export function summarizePaths(set: PathSet): PathSummary {
  const n = set.prices.length;
  const vols = new Float64Array(n);
  const terminal = new Float64Array(n);
  const logRet = new Float64Array(n);
  const dd = new Float64Array(n);
  let stressed = 0;
  for (let p = 0; p < n; p++) {
    const path = set.prices[p] as Float64Array;
    vols[p] = realizedVol(path, set.dtYears);
    const last = path[path.length - 1] as number;
    terminal[p] = last;
    logRet[p] = Math.log(last / (path[0] as number));
    let peak = path[0] as number;
    let worst = 0;
    for (let k = 1; k < path.length; k++) {
      const x = path[k] as number;
      if (x > peak) peak = x;
      worst = Math.max(worst, 1 - x / peak);
    }
    dd[p] = worst;
    stressed += set.stressedSteps[p] ?? 0;
  }
  const sorted = Float64Array.from(terminal).sort();
  return {
    paths: n,
    steps: set.steps,
    startPrice: set.prices[0]?.[0] ?? Number.NaN,
    realizedVolMean: mean(vols),
    realizedVolStd: std(vols),
    terminalMean: mean(terminal),
    terminalStd: std(terminal),
    terminalP05: quantile(sorted, 0.05),
    terminalP50: quantile(sorted, 0.5),
    terminalP95: quantile(sorted, 0.95),
    logReturnMean: mean(logRet),
    maxDrawdownMean: mean(dd),
    jumpsPerPathMean: mean(set.jumps),
    stressedFraction: stressed / (n * set.steps),
  };
}
