import { MS_PER_YEAR } from '@xhedge/core';

/**
 * Largest half-width a gamma-driven band (gamma-scaled or Whalley–Wilmott) may have, as a fraction of
 * the live options' gross size (underlying units). Both widths grow with Γ, and Γ of an at-the-money
 * option grows like 1/√T into expiry: one hour out a 1-BTC ATM call gets a gamma-scaled band of
 * z·0.4·√(window/1 h) BTC (0.8 at z = 2, 1 h) and a Whalley–Wilmott one of ≈ 0.7 BTC (8 bps, risk
 * aversion 2e-4), wider than the 0.5 its delta can still move (to 0 or 1): the book held until the
 * option was nearly all the way in or out of the money, and the last hours went unhedged.
 *
 * A quarter of the gross size is breached by a realistic move (an ATM option's delta going 0.5 → 0.75,
 * about 0.4·σ·√T of spot) and leaves the band alone where it is sensible: for a book of one ATM option
 * the gamma-scaled band reaches it only within about (1.6·z)²·window of expiry. A book of far options
 * plus a few near ones keeps a looser cap (its gross size is large): the cap is a bound, not a model.
 * The interval and Leland policies' urgency yardstick (the gamma-scaled delta change over one interval)
 * is capped the same way.
 */
export const GAMMA_BAND_CAP_FRACTION = 0.25;

/**
 * The cap of a gamma-driven band, underlying units: {@link GAMMA_BAND_CAP_FRACTION} of the live
 * options' gross size (their delta ceiling − floor). Each unit of option can move the book's delta by at
 * most 1 over its whole life, so the options together cannot move it by more than their gross size.
 */
export function gammaBandCapBase(p: {
  optionDeltaFloorBase: number;
  optionDeltaCeilingBase: number;
}): number {
  const grossBase = p.optionDeltaCeilingBase - p.optionDeltaFloorBase;
  if (!(grossBase >= 0) || !Number.isFinite(grossBase))
    throw new RangeError(
      `option delta range [${p.optionDeltaFloorBase}, ${p.optionDeltaCeilingBase}] is not a range`,
    );
  return GAMMA_BAND_CAP_FRACTION * grossBase;
}

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
