import { erfcx, normCdf } from './normal.ts';

/**
 * Normalised Black (Jäckel, "Let's Be Rational", 2015): with x = ln(F/K) and s = σ√T, the undiscounted
 * Black price divided by √(FK). Only the out-of-the-money part b(x, s) for x ≤ 0 (an OTM call) is needed:
 * every price is intrinsic + √(FK)·b(−|x|, s), for calls and puts alike.
 *
 * Computing b as e^{x/2}Φ(h+t) − e^{−x/2}Φ(h−t) (h = x/s, t = s/2) cancels catastrophically when t ≪ |h|
 * (short expiries, low vols, far strikes), so it is evaluated in four regions as LBR does:
 * I   asymptotic expansion of the Mills-ratio difference (h < −10, t small),
 * II  Taylor expansion in t (t < 0.21),
 * III the plain formula where the first term dominates (h + t > 0.85),
 * IV  the Mills-ratio difference through erfcx.
 * All give b to ~1e-14 relative, down to the smallest representable prices.
 */

const INV_SQRT_2PI = 0.3989422804014327;
const SQRT_PI_OVER_2 = 1.2533141373155003;
const SQRT1_2 = Math.SQRT1_2;
const ASYMPTOTIC_H = -10;
const SMALL_T = 0.21;

/** Mills ratio Y(z) = Φ(z)/φ(z). */
function mills(z: number): number {
  return SQRT_PI_OVER_2 * erfcx(-z * SQRT1_2);
}

/** Region I: Y(h+t) − Y(h−t) from the asymptotic series Y(−a) ~ Σ (−1)ⁿ(2n−1)!! a^{−(2n+1)}, no cancellation. */
function millsDifferenceAsymptotic(h: number, t: number): number {
  const a1 = -h - t; // > 0, the smaller magnitude
  const a2 = -h + t;
  const rho = a1 / a2;
  const rho2 = rho * rho;
  const inv1 = 1 / a1;
  const inv1sq = inv1 * inv1;
  const oneMinusRho = (2 * t) / a2; // exact form of 1 − a1/a2
  // term n: (−1)ⁿ(2n−1)!! · a1^{−m}(1 − ρ^m), m = 2n+1, with (1 − ρ^m) = (1 − ρ)·G_m, G_m = Σ_{k<m} ρ^k.
  let g = 1; // G_1
  let rhoPow = rho; // ρ^m for the current m, start m = 1
  let a1Pow = inv1; // a1^{−m}
  let coeff = 1; // (2n−1)!! with sign
  let sum = 0;
  for (let n = 0; n < 40; n++) {
    const term = coeff * a1Pow * g;
    sum += term;
    if (Math.abs(term) <= 1e-17 * Math.abs(sum)) break;
    // advance m → m + 2
    g += rhoPow * (1 + rho);
    rhoPow *= rho2;
    a1Pow *= inv1sq;
    coeff *= -(2 * n + 1);
  }
  return oneMinusRho * sum;
}

/** Region II: Y(h+t) − Y(h−t) = 2 Σ_{k odd} Y⁽ᵏ⁾(h) tᵏ/k!, with Y' = 1 + hY and Y⁽ᵏ⁺¹⁾ = hY⁽ᵏ⁾ + kY⁽ᵏ⁻¹⁾. */
function millsDifferenceSmallT(h: number, t: number): number {
  let yPrev = mills(h);
  let y = 1 + h * yPrev; // Y'
  const t2 = t * t;
  let tk = t; // t^k / k!
  let sum = y * tk;
  for (let k = 1; k < 17; k += 2) {
    const yNext = h * y + k * yPrev; // Y^(k+1)
    const yNext2 = h * yNext + (k + 1) * y; // Y^(k+2)
    yPrev = yNext;
    y = yNext2;
    tk *= t2 / ((k + 1) * (k + 2));
    const term = y * tk;
    sum += term;
    if (Math.abs(term) <= 1e-17 * Math.abs(sum)) break;
  }
  return 2 * sum;
}

/**
 * By-products of the last `normalisedBlackOtm` call, for the implied-vol loop (saves an `exp` each):
 * `vega` = ∂b/∂s, and `complement` = b_max − b computed without cancellation, or −1 when b is far from
 * b_max (then b_max − b is exact enough and the caller forms it).
 */
export const lastOtm = { complement: -1, vega: 0 };

/**
 * b(x, s) for x ≤ 0 and s ≥ 0: the normalised out-of-the-money Black price (sets `lastOtm`).
 */
export function normalisedBlackOtm(x: number, s: number): number {
  if (!(s > 0)) {
    lastOtm.complement = -1;
    lastOtm.vega = 0;
    return 0;
  }
  if (s === Number.POSITIVE_INFINITY) {
    lastOtm.complement = 0;
    lastOtm.vega = 0;
    return Math.exp(0.5 * x);
  }
  const h = x / s;
  const t = 0.5 * s;
  // e^{−(h²+t²)/2}/√(2π) is both ∂b/∂s and the prefactor of the Mills-ratio forms.
  const vega = INV_SQRT_2PI * Math.exp(-0.5 * (h * h + t * t));
  lastOtm.vega = vega;
  if (h + t > 0.85) {
    // Region III: both terms plain; complement is e^{x/2}Φ(−h−t) + e^{−x/2}Φ(h−t) (no cancellation).
    const e = Math.exp(0.5 * x);
    const c1 = normCdf(-h - t);
    const c2 = normCdf(h - t);
    lastOtm.complement = e * c1 + c2 / e;
    return e * (1 - c1) - c2 / e;
  }
  lastOtm.complement = -1;
  if (h < ASYMPTOTIC_H && h + t < ASYMPTOTIC_H + SMALL_T) return vega * millsDifferenceAsymptotic(h, t);
  if (t < SMALL_T) return vega * millsDifferenceSmallT(h, t);
  return vega * (mills(h + t) - mills(h - t));
}

/** ∂b/∂s = φ(h+t)·e^{x/2} = e^{−(h²+t²)/2}/√(2π). */
export function normalisedVega(x: number, s: number): number {
  const h = x / s;
  const t = 0.5 * s;
  return INV_SQRT_2PI * Math.exp(-0.5 * (h * h + t * t));
}

/**
 * Undiscounted Black price on forward F and strike K with total standard deviation s = σ√T, accurate in
 * relative terms deep out of the money: intrinsic + √(FK)·b(−|ln(F/K)|, s).
 */
export function undiscountedBlack(forward: number, strike: number, s: number, isCall: boolean): number {
  const x = Math.log(forward / strike);
  const intrinsic = isCall ? Math.max(forward - strike, 0) : Math.max(strike - forward, 0);
  return intrinsic + Math.sqrt(forward * strike) * normalisedBlackOtm(-Math.abs(x), s);
}
