import { MS_PER_DAY, MS_PER_YEAR } from '@xhedge/core';

/** Shape of the implied-vol surface and how it reacts to the market. */
export interface SurfaceParams {
  /** ATM vol change per unit log return, opposite sign (spot down → vol up). @defaultValue 0.6 */
  leverage: number;
  /** Half-life of the spot-move vol shock, days. @defaultValue 2 */
  shockHalfLifeDays: number;
  /** Half-life of the realized-variance EWMA, days. @defaultValue 1 */
  realizedHalfLifeDays: number;
  /** Weight of realized variance in short-dated ATM variance (the rest is the process's own). @defaultValue 0.4 */
  realizedWeight: number;
  /** Short-dated ATM level decays to the long-run vol over this many days of expiry. @defaultValue 30 */
  termDecayDays: number;
  /** Slope of IV in standardized moneyness ln(K/S)/(σ√T), relative (negative: puts richer). @defaultValue -0.08 */
  skew: number;
  /** Curvature (smile) in standardized moneyness, relative. @defaultValue 0.03 */
  curvature: number;
  /** Skew multiplier in the stressed regime. @defaultValue 1.5 */
  stressedSkewMultiplier: number;
  /** Floor and cap of any IV, decimal. @defaultValue 0.05 / 5 */
  minVol: number;
  maxVol: number;
}

export const DEFAULT_SURFACE: SurfaceParams = {
  leverage: 0.6,
  shockHalfLifeDays: 2,
  realizedHalfLifeDays: 1,
  realizedWeight: 0.4,
  termDecayDays: 30,
  skew: -0.08,
  curvature: 0.03,
  stressedSkewMultiplier: 1.5,
  minVol: 0.05,
  maxVol: 5,
};

/**
 * The implied-vol state of one underlying. Short-dated ATM vol blends the process's instantaneous
 * variance with realized variance and jumps on spot moves (leverage effect), then decays towards the
 * long-run level along the term structure; skew and smile are in standardized moneyness.
 */
export class VolSurfaceState {
  readonly params: SurfaceParams;
  readonly longRunVol: number;
  #ewmaVar: number;
  #shock = 0;
  #instVar: number;
  #stressed = false;

  constructor(longRunVol: number, params: SurfaceParams) {
    this.params = params;
    this.longRunVol = longRunVol;
    this.#ewmaVar = longRunVol * longRunVol;
    this.#instVar = this.#ewmaVar;
  }

  /** Feeds one step: its log return, length and the process's instantaneous vol. */
  update(logReturn: number, dtYears: number, instantVol: number, stressed: boolean): void {
    const p = this.params;
    const dtDays = dtYears * (MS_PER_YEAR / MS_PER_DAY);
    const aR = 1 - 2 ** (-dtDays / p.realizedHalfLifeDays);
    this.#ewmaVar += aR * ((logReturn * logReturn) / dtYears - this.#ewmaVar);
    this.#shock = this.#shock * 2 ** (-dtDays / p.shockHalfLifeDays) - p.leverage * logReturn;
    this.#instVar = instantVol * instantVol;
    this.#stressed = stressed;
  }

  /** Short-dated ATM vol, decimal. */
  atmVol(): number {
    const p = this.params;
    const base = Math.sqrt((1 - p.realizedWeight) * this.#instVar + p.realizedWeight * this.#ewmaVar);
    return clamp(base + this.#shock, p.minVol, p.maxVol);
  }

  /** IV for a strike and time to expiry (years) given spot, decimal. */
  iv(spot: number, strike: number, timeYears: number): number {
    const p = this.params;
    const t = Math.max(timeYears, 1 / (365 * 24));
    const decay = Math.exp(-(t * 365) / p.termDecayDays);
    const atmT = this.longRunVol + (this.atmVol() - this.longRunVol) * decay;
    const x = clamp(Math.log(strike / spot) / (atmT * Math.sqrt(t)), -4, 4);
    const skew = p.skew * (this.#stressed ? p.stressedSkewMultiplier : 1);
    return clamp(atmT * (1 + skew * x + p.curvature * x * x), p.minVol, p.maxVol);
  }
}

function clamp(x: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, x));
}
