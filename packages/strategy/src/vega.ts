import type { Side } from '@xhedge/core';

/** A listed option the vega solver may trade, with per-unit Greeks and cost. */
export interface VegaCandidate {
  venue: string;
  chain: string;
  instrument: string;
  /** Per unit of underlying, USD per vol point (> 0 for a long option). */
  vegaPerVolPoint: number;
  /** Per unit of underlying. */
  delta: number;
  /** Option premium per unit, USD (reference for limit prices). */
  priceUsd: number;
  /** All-in cost of trading one unit (fee + half spread + impact estimate), USD. */
  costPerUnitUsd: number;
  /** Largest size this candidate takes now, underlying units. */
  maxSizeBase: number;
  /** Venue minimum order, underlying units. Default 0. */
  minSizeBase?: number;
  /** Venue size step, underlying units. Default: no rounding. */
  sizeStepBase?: number;
}

/** One option trade chosen by the solver. */
export interface OptionTrade {
  venue: string;
  chain: string;
  instrument: string;
  side: Side;
  /** Positive, underlying units. */
  sizeBase: number;
  priceUsd: number;
  /** Signed vega this trade adds, USD per vol point. */
  vegaPerVolPoint: number;
  /** Signed delta this trade adds, underlying units. */
  delta: number;
  costUsd: number;
}

export interface VegaSolution {
  trades: OptionTrade[];
  vegaBefore: number;
  vegaAfter: number;
  deltaChange: number;
  costUsd: number;
  /** The candidates could not bring vega back inside the band (liquidity, minimum sizes). */
  shortfall: boolean;
}

/** Rounds toward zero to a whole number of steps (a count within 1e-9 of the next whole one is float noise). */
function roundStep(x: number, step: number | undefined): number {
  if (!step || step <= 0) return x;
  return Math.floor(x / step + 1e-9) * step;
}

/**
 * The smallest order the venue takes: its minimum rounded up to a whole number of size steps, and at least
 * one step. It was max(minimum, step), off the step grid when the minimum is not a multiple of the step
 * (minimum 0.25, step 0.1: an order of 0.25, which the venue refuses).
 */
function smallestOrder(c: VegaCandidate): number {
  const min = c.minSizeBase !== undefined && c.minSizeBase > 0 ? c.minSizeBase : 0;
  const step = c.sizeStepBase !== undefined && c.sizeStepBase > 0 ? c.sizeStepBase : 0;
  if (step === 0) return min;
  return Math.max(1, Math.ceil(min / step - 1e-9)) * step;
}

/**
 * Least-cost vega hedge: brings `vegaNow` to `target` using the candidates. With linear costs and one
 * constraint (total vega), this LP is a fractional knapsack, so a greedy fill in order of cost per vega
 * point is optimal; sizes are then rounded down to each venue's step and minimums respected. The one
 * exception to rounding down: where the rounded size is below the venue's smallest order (its minimum on
 * the step grid, at least one step), that smallest order is taken only when it ends inside the band and
 * nearer the target, so it may pass the target by less than the tolerance but never leaves the band.
 */
export function solveVegaHedge(p: {
  vegaNow: number;
  target: number;
  /** Residual vega tolerated after the hedge, USD per vol point. */
  tolerance: number;
  candidates: readonly VegaCandidate[];
}): VegaSolution {
  const need0 = p.target - p.vegaNow;
  const side: Side = need0 > 0 ? 'buy' : 'sell';
  const sign = need0 > 0 ? 1 : -1;
  const ranked = p.candidates
    .filter((c) => c.vegaPerVolPoint > 0 && c.maxSizeBase > 0)
    .map((c) => ({ c, costPerVega: c.costPerUnitUsd / c.vegaPerVolPoint }))
    .sort((a, b) => a.costPerVega - b.costPerVega || a.c.instrument.localeCompare(b.c.instrument));
  let need = Math.abs(need0);
  const trades: OptionTrade[] = [];
  for (const { c } of ranked) {
    if (need <= p.tolerance * 1e-6) break;
    // Every trade, the first included, is rounded toward zero: it never passes the target on its own.
    let size = roundStep(Math.min(c.maxSizeBase, need / c.vegaPerVolPoint), c.sizeStepBase);
    // Below the smallest order (a need smaller than one step rounded down to 0, and the book stayed
    // outside the band for ever though one step landed inside it): the one rounding up, below.
    const smallest = smallestOrder(c);
    if (size < smallest) {
      // Taking the smallest order would overshoot; only worth it if we still end inside the band and
      // nearer the target than without it (a residual already inside the band was pushed to the far
      // edge, at a cost: -10 became +50 with a band of 50).
      const residual = Math.abs(need - smallest * c.vegaPerVolPoint);
      if (smallest <= c.maxSizeBase && residual <= p.tolerance && residual < need) size = smallest;
      else continue;
    }
    if (size <= 0) continue;
    const vega = sign * size * c.vegaPerVolPoint;
    trades.push({
      venue: c.venue,
      chain: c.chain,
      instrument: c.instrument,
      side,
      sizeBase: size,
      priceUsd: c.priceUsd,
      vegaPerVolPoint: vega,
      delta: sign * size * c.delta,
      costUsd: size * c.costPerUnitUsd,
    });
    need -= size * c.vegaPerVolPoint;
  }
  const added = trades.reduce((s, t) => s + t.vegaPerVolPoint, 0);
  const vegaAfter = p.vegaNow + added;
  return {
    trades,
    vegaBefore: p.vegaNow,
    vegaAfter,
    deltaChange: trades.reduce((s, t) => s + t.delta, 0),
    costUsd: trades.reduce((s, t) => s + t.costUsd, 0),
    shortfall: Math.abs(vegaAfter - p.target) > p.tolerance,
  };
}
