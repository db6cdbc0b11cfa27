import { assertFinite, MS_PER_DAY, type Side } from '@xhedge/core';

/** The book's Greeks at the start of an interval (from a snapshot's `UnderlyingRisk`). */
export interface AttributionStart {
  spotUsd: number;
  volDecimal: number;
  delta: number;
  gamma: number;
  vegaPerVolPoint: number;
  thetaPerDay: number;
}

/** A hedge fill in the interval, against the price it was planned at. */
export interface AttributionFill {
  side: Side;
  sizeBase: number;
  priceUsd: number;
  referencePriceUsd: number;
  feeUsd: number;
  gasUsd?: number;
}

export interface AttributionInput {
  start: AttributionStart;
  endSpotUsd: number;
  endVolDecimal: number;
  elapsedMs: number;
  /** Funding received (+) or paid (−) over the interval, USD. */
  fundingUsd?: number;
  fills?: readonly AttributionFill[];
  /** The book's measured P&L over the interval, USD; gives `unexplainedUsd` when present. */
  actualPnlUsd?: number;
}

/** P&L of one interval split by source, USD (+ = gain). */
export interface PnlAttribution {
  deltaUsd: number;
  gammaUsd: number;
  thetaUsd: number;
  vegaUsd: number;
  fundingUsd: number;
  feesUsd: number;
  slippageUsd: number;
  gasUsd: number;
  totalUsd: number;
  /** Gamma + theta + hedging costs: what gamma scalping earned net of the time decay it paid for. */
  scalpingNetUsd: number;
  unexplainedUsd?: number;
}

/**
 * Taylor attribution of one interval: delta Δ·dS, gamma ½Γ·dS², theta θ·days, vega ν·dσ(points), plus
 * funding, fees, slippage (fill vs reference, signed by side) and gas, so an operator sees whether
 * gamma scalping paid for theta.
 */
export function attributePnl(input: AttributionInput): PnlAttribution {
  const { start } = input;
  const dS = input.endSpotUsd - start.spotUsd;
  const deltaUsd = start.delta * dS;
  const gammaUsd = 0.5 * start.gamma * dS * dS;
  const thetaUsd = start.thetaPerDay * (input.elapsedMs / MS_PER_DAY);
  const vegaUsd = start.vegaPerVolPoint * (input.endVolDecimal - start.volDecimal) * 100;
  let feesUsd = 0;
  let slippageUsd = 0;
  let gasUsd = 0;
  for (const f of input.fills ?? []) {
    feesUsd -= f.feeUsd;
    gasUsd -= f.gasUsd ?? 0;
    const paid = (f.priceUsd - f.referencePriceUsd) * f.sizeBase;
    slippageUsd -= f.side === 'buy' ? paid : -paid;
  }
  const fundingUsd = input.fundingUsd ?? 0;
  const totalUsd = deltaUsd + gammaUsd + thetaUsd + vegaUsd + fundingUsd + feesUsd + slippageUsd + gasUsd;
  const out: PnlAttribution = {
    deltaUsd,
    gammaUsd,
    thetaUsd,
    vegaUsd,
    fundingUsd,
    feesUsd,
    slippageUsd,
    gasUsd,
    totalUsd: assertFinite('attributed P&L', totalUsd),
    scalpingNetUsd: gammaUsd + thetaUsd + feesUsd + slippageUsd + gasUsd,
  };
  if (input.actualPnlUsd !== undefined) out.unexplainedUsd = input.actualPnlUsd - totalUsd;
  return out;
}

/** Sums interval attributions (a day, a backtest). */
export function sumAttributions(parts: readonly PnlAttribution[]): PnlAttribution {
  const keys = [
    'deltaUsd',
    'gammaUsd',
    'thetaUsd',
    'vegaUsd',
    'fundingUsd',
    'feesUsd',
    'slippageUsd',
    'gasUsd',
    'totalUsd',
    'scalpingNetUsd',
  ] as const;
  const out: PnlAttribution = {
    deltaUsd: 0,
    gammaUsd: 0,
    thetaUsd: 0,
    vegaUsd: 0,
    fundingUsd: 0,
    feesUsd: 0,
    slippageUsd: 0,
    gasUsd: 0,
    totalUsd: 0,
    scalpingNetUsd: 0,
  };
  let unexplained: number | undefined;
  for (const p of parts) {
    for (const k of keys) out[k] += p[k];
    if (p.unexplainedUsd !== undefined) unexplained = (unexplained ?? 0) + p.unexplainedUsd;
  }
  if (unexplained !== undefined) out.unexplainedUsd = unexplained;
  return out;
}
