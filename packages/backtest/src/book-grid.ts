import { DAYS_PER_YEAR } from '@xhedge/core';
import {
  type BsmBatchInput,
  bsmBatch,
  type GreeksBatchOutput,
  greeksBatchOutput,
  type OptionKind,
} from '@xhedge/pricing';

/** One option of the book, in engine units. */
export interface EngineOption {
  type: OptionKind;
  strike: number;
  /** Years to expiry at the start of the run. */
  expiryYears: number;
  /** Signed size, underlying units (short < 0). */
  sizeBase: number;
}

/** A zero pricing vol is priced as its limit (forward intrinsic). */
const MIN_VOL = 1e-12;
/** Options closer to expiry than this (years) are settled at intrinsic instead of priced. */
const EXPIRED_YEARS = 1e-12;

/** The option book's value and Greeks (size applied) at every step of one path, one array per field. */
export interface BookSeries {
  /** Value of the options still alive at the point, USD (settled options are cash, in `settledUsd`). */
  valueUsd: Float64Array;
  /**
   * Cash paid out at the point by the options that settle there (size × intrinsic at that point's spot),
   * USD. An option settles once, at the first point at or after its expiry; the payoff then belongs to
   * the hedger's cash, not to the book, so later spot moves do not change it.
   */
  settledUsd: Float64Array;
  delta: Float64Array;
  gamma: Float64Array;
  thetaPerYear: Float64Array;
  vegaPerVolPoint: Float64Array;
  vannaPerVolPoint: Float64Array;
  /** |Γ|-weighted time to expiry, years. */
  gammaTenorYears: Float64Array;
}

/**
 * The book laid out for the batch kernel over every (step, live option) pair of a path. Strikes, times
 * to expiry and option types do not depend on the path, so they are written once; each path only
 * writes its spot and vol per step, prices the whole path in one `bsmBatch` call (struct of arrays, no
 * allocation per option) and reduces per step. The spot path is known before any hedge decision, so
 * pricing does not wait on the decisions and the result equals pricing step by step.
 */
export interface BookGrid {
  readonly options: readonly EngineOption[];
  /** Steps + 1 valuation times. */
  readonly points: number;
  readonly stepYears: number;
  /** Live entries of point k are [start[k], start[k + 1]). */
  readonly start: Int32Array;
  /** 1 when option i is still alive at point k (`live[k · nOptions + i]`). */
  readonly live: Uint8Array;
  /** The point at which option i settles (the first at or after its expiry), or `points` if it never does. */
  readonly settlePoint: Int32Array;
  /**
   * Least delta the options alive at point k can have at any spot, vol or time, underlying units:
   * −(long puts + short calls), a put's delta per unit lying in (−1, 0) and a call's in (0, 1). With
   * {@link optionDeltaCeilingBase} it is the risk engine's `UnderlyingRisk.optionDeltaFloorBase` /
   * `optionDeltaCeilingBase`, which the strategy clamps Leland's delta into and caps gamma bands by.
   * It depends only on which options are alive, not on the path: computed once per grid.
   */
  readonly optionDeltaFloorBase: Float64Array;
  /** Greatest delta of the options alive at point k, underlying units: long calls + short puts. */
  readonly optionDeltaCeilingBase: Float64Array;
  readonly input: BsmBatchInput & { rate: number };
  readonly out: GreeksBatchOutput & { vannaPerVolPoint: Float64Array };
  readonly series: BookSeries;
}

/** Builds the grid for `steps` steps of `stepYears` (point k is at time k · stepYears). */
export function createBookGrid(
  options: readonly EngineOption[],
  steps: number,
  stepYears: number,
  rate: number,
): BookGrid {
  const points = steps + 1;
  const nOpt = options.length;
  const live = new Uint8Array(points * nOpt);
  const start = new Int32Array(points + 1);
  let n = 0;
  for (let k = 0; k < points; k++) {
    start[k] = n;
    const t = k * stepYears;
    for (let i = 0; i < nOpt; i++) {
      if ((options[i] as EngineOption).expiryYears - t > EXPIRED_YEARS) {
        live[k * nOpt + i] = 1;
        n++;
      }
    }
  }
  start[points] = n;
  const settlePoint = new Int32Array(nOpt).fill(points);
  for (let i = 0; i < nOpt; i++) {
    for (let k = 0; k < points; k++) {
      if (live[k * nOpt + i] === 0) {
        settlePoint[i] = k;
        break;
      }
    }
  }
  const optionDeltaFloorBase = new Float64Array(points);
  const optionDeltaCeilingBase = new Float64Array(points);
  for (let k = 0; k < points; k++) {
    let floorBase = 0;
    let ceilingBase = 0;
    for (let i = 0; i < nOpt; i++) {
      if (live[k * nOpt + i] === 0) continue;
      const o = options[i] as EngineOption;
      // A unit's delta spans (0, 1) for a call and (−1, 0) for a put; a short size flips the span.
      const one = o.type === 'call' ? o.sizeBase : -o.sizeBase;
      if (one < 0) floorBase += one;
      else ceilingBase += one;
    }
    optionDeltaFloorBase[k] = floorBase;
    optionDeltaCeilingBase[k] = ceilingBase;
  }
  const f = () => new Float64Array(n);
  const input = { callPut: f(), spot: f(), strike: f(), timeYears: f(), vol: f(), rate };
  let e = 0;
  for (let k = 0; k < points; k++) {
    const t = k * stepYears;
    for (let i = 0; i < nOpt; i++) {
      if (live[k * nOpt + i] === 0) continue;
      const o = options[i] as EngineOption;
      input.callPut[e] = o.type === 'call' ? 1 : -1;
      input.strike[e] = o.strike;
      input.timeYears[e] = o.expiryYears - t;
      e++;
    }
  }
  const out = greeksBatchOutput(n);
  const s = () => new Float64Array(points);
  const series: BookSeries = {
    valueUsd: s(),
    settledUsd: s(),
    delta: s(),
    gamma: s(),
    thetaPerYear: s(),
    vegaPerVolPoint: s(),
    vannaPerVolPoint: s(),
    gammaTenorYears: s(),
  };
  return {
    options,
    points,
    stepYears,
    start,
    live,
    settlePoint,
    optionDeltaFloorBase,
    optionDeltaCeilingBase,
    input,
    out,
    series,
  };
}

/**
 * Values the book at every point of one path (`spots[k]`, `vols[k]`) into `grid.series` (overwritten on
 * the next call). An option settles at intrinsic at the first point at or after its expiry (`settledUsd`) and
 * is out of the book from then on: valuing it at intrinsic of every later spot would keep an expired
 * option's payoff moving with the market (unhedged, since it has no Greeks) until the end of the run.
 */
export function priceBookPath(grid: BookGrid, spots: Float64Array, vols: Float64Array): BookSeries {
  const { options, points, start, live, settlePoint, input, out, series } = grid;
  const nOpt = options.length;
  for (let k = 0; k < points; k++) {
    const s = spots[k] as number;
    const v = Math.max(vols[k] as number, MIN_VOL);
    for (let e = start[k] as number; e < (start[k + 1] as number); e++) {
      input.spot[e] = s;
      input.vol[e] = v;
    }
  }
  bsmBatch(input, out, start[points]);
  const { price, delta, gamma, thetaPerDay, vegaPerVolPoint, vannaPerVolPoint } = out;
  const tau = input.timeYears;
  for (let k = 0; k < points; k++) {
    const S = spots[k] as number;
    let value = 0;
    let settled = 0;
    let d = 0;
    let g = 0;
    let theta = 0;
    let vega = 0;
    let vanna = 0;
    let absGamma = 0;
    let gammaTau = 0;
    let e = start[k] as number;
    for (let i = 0; i < nOpt; i++) {
      const o = options[i] as EngineOption;
      if (live[k * nOpt + i] === 0) {
        if (settlePoint[i] === k)
          settled += o.sizeBase * (o.type === 'call' ? Math.max(S - o.strike, 0) : Math.max(o.strike - S, 0));
        continue;
      }
      const q = o.sizeBase;
      const ge = q * (gamma[e] as number);
      value += q * (price[e] as number);
      d += q * (delta[e] as number);
      g += ge;
      theta += q * (thetaPerDay[e] as number);
      vega += q * (vegaPerVolPoint[e] as number);
      vanna += q * (vannaPerVolPoint[e] as number);
      const ag = Math.abs(ge);
      absGamma += ag;
      gammaTau += ag * (tau[e] as number);
      e++;
    }
    series.valueUsd[k] = value;
    series.settledUsd[k] = settled;
    series.delta[k] = d;
    series.gamma[k] = g;
    series.thetaPerYear[k] = theta * DAYS_PER_YEAR;
    series.vegaPerVolPoint[k] = vega;
    series.vannaPerVolPoint[k] = vanna;
    series.gammaTenorYears[k] = absGamma > 0 ? gammaTau / absGamma : 0;
  }
  return series;
}
