import { NumericError } from '@xhedge/core';
import { BacktestInputError } from './errors.ts';

/** Distribution statistics of per-path hedged P&L (USD). */
export interface PnlStats {
  meanPnlUsd: number;
  stdPnlUsd: number;
  /** Expected shortfall at 95%: minus the mean of the worst 5% of P&L, USD (a loss is positive). */
  cvar95Usd: number;
  /** (1/γ)·log E[exp(−γ·PnL)], USD (a loss is positive). */
  entropicRiskUsd: number;
}

function requireFinite(values: Float64Array, what: string): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number;
    if (!Number.isFinite(v)) throw new NumericError(`${what}[${i}]`, v);
  }
}

export function mean(values: Float64Array): number {
  if (values.length === 0) throw new BacktestInputError('mean of an empty sample');
  // Pairwise-free Kahan sum: the order is fixed (path index), so results do not depend on worker count.
  let sum = 0;
  let c = 0;
  for (let i = 0; i < values.length; i++) {
    const y = (values[i] as number) - c;
    const t = sum + y;
    c = t - sum - y;
    sum = t;
  }
  return sum / values.length;
}

/** Share of the sample above zero (e.g. paths with at least one liquidation), 0..1. */
export function shareAboveZero(values: Float64Array): number {
  if (values.length === 0) throw new BacktestInputError('share of an empty sample');
  let n = 0;
  for (let i = 0; i < values.length; i++) if ((values[i] as number) > 0) n++;
  return n / values.length;
}

/** Sample standard deviation (n − 1), two-pass for accuracy. */
export function stdDev(values: Float64Array, mu = mean(values)): number {
  if (values.length < 2) return 0;
  let ss = 0;
  for (let i = 0; i < values.length; i++) {
    const d = (values[i] as number) - mu;
    ss += d * d;
  }
  return Math.sqrt(ss / (values.length - 1));
}

/**
 * Conditional value at risk of P&L at level `alpha` (0.95): minus the mean of the worst (1 − alpha) share
 * of outcomes, counting the boundary sample fractionally so the estimate is continuous in the sample.
 */
export function cvar(pnl: Float64Array, alpha = 0.95): number {
  if (pnl.length === 0) throw new BacktestInputError('CVaR of an empty sample');
  if (!(alpha > 0 && alpha < 1)) throw new BacktestInputError(`CVaR level must be in (0, 1), got ${alpha}`);
  const sorted = Float64Array.from(pnl).sort();
  const tail = (1 - alpha) * sorted.length;
  const whole = Math.floor(tail);
  let sum = 0;
  for (let i = 0; i < whole; i++) sum += sorted[i] as number;
  const frac = tail - whole;
  if (frac > 0) sum += frac * (sorted[Math.min(whole, sorted.length - 1)] as number);
  return -sum / tail;
}

/**
 * Entropic risk (1/γ)·log E[exp(−γ·PnL)] with γ = `riskAversionPerUsd`, evaluated with log-sum-exp so
 * large losses or large γ do not overflow. Tends to −mean(PnL) as γ → 0.
 */
export function entropicRisk(pnl: Float64Array, riskAversionPerUsd: number): number {
  if (pnl.length === 0) throw new BacktestInputError('entropic risk of an empty sample');
  if (!(riskAversionPerUsd > 0 && Number.isFinite(riskAversionPerUsd)))
    throw new BacktestInputError(`risk aversion must be a positive number, got ${riskAversionPerUsd}`);
  const g = riskAversionPerUsd;
  let m = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < pnl.length; i++) m = Math.max(m, -g * (pnl[i] as number));
  let s = 0;
  for (let i = 0; i < pnl.length; i++) s += Math.exp(-g * (pnl[i] as number) - m);
  return (m + Math.log(s / pnl.length)) / g;
}

/** All distribution statistics of a P&L sample; throws NumericError on a non-finite sample. */
export function pnlStats(pnl: Float64Array, riskAversionPerUsd: number): PnlStats {
  requireFinite(pnl, 'pnl');
  const mu = mean(pnl);
  const stats: PnlStats = {
    meanPnlUsd: mu,
    stdPnlUsd: stdDev(pnl, mu),
    cvar95Usd: cvar(pnl, 0.95),
    entropicRiskUsd: entropicRisk(pnl, riskAversionPerUsd),
  };
  // Finite P&Ls can still overflow a sum or a square (1e300 USD): refused, never an Infinity std.
  for (const [k, v] of Object.entries(stats))
    if (!Number.isFinite(v))
      throw new NumericError(`${k} of ${pnl.length} P&Ls (past the range of a double)`, v);
  return stats;
}
