import { MS_PER_YEAR } from '@xhedge/core';

/**
 * Whalley–Wilmott asymptotic no-trade half-width, underlying units:
 * H = (3/2 · e^{−r τ} · λ · S · Γ² / γ)^{1/3}
 * with λ the proportional cost (fraction), S spot (USD), Γ the book's gamma (per USD), γ the risk
 * aversion (per USD) and τ the time to expiry (years). Rehedging goes to the nearest band edge.
 */
export function wwHalfWidth(p: {
  spotUsd: number;
  gamma: number;
  costFraction: number;
  riskAversion: number;
  rateDecimal?: number;
  tenorYears?: number;
}): number {
  const disc = Math.exp(-(p.rateDecimal ?? 0) * (p.tenorYears ?? 0));
  return Math.cbrt((1.5 * disc * p.costFraction * p.spotUsd * p.gamma * p.gamma) / p.riskAversion);
}

/**
 * Gamma/vol-scaled band: the delta change one expected move over the window causes,
 * z · |Γ| · σ · S · √(window). Re-hedging only past this cannot ping-pong on noise.
 */
export function gammaScaledHalfWidth(p: {
  z: number;
  gamma: number;
  volDecimal: number;
  spotUsd: number;
  windowMs: number;
}): number {
  return p.z * Math.abs(p.gamma) * p.volDecimal * p.spotUsd * Math.sqrt(p.windowMs / MS_PER_YEAR);
}

/**
 * Leland-adjusted volatility for hedging at discrete intervals with proportional costs:
 * Le = √(2/π) · k / (σ √Δt), k the round-trip cost fraction; σ_adj = σ √(1 + Le) for a short-gamma
 * book (its hedges buy high and sell low), σ √(1 − Le) for a long-gamma one (floored at 1% of σ²).
 */
export function lelandVol(p: {
  volDecimal: number;
  roundTripCostFraction: number;
  intervalMs: number;
  gammaSign: number;
}): { volDecimal: number; lelandNumber: number } {
  const dt = p.intervalMs / MS_PER_YEAR;
  const le = (Math.sqrt(2 / Math.PI) * p.roundTripCostFraction) / (p.volDecimal * Math.sqrt(dt));
  const factor = p.gammaSign < 0 ? 1 + le : Math.max(1 - le, 0.01);
  return { volDecimal: p.volDecimal * Math.sqrt(factor), lelandNumber: le };
}
