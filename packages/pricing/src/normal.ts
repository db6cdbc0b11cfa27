/** Standard normal density. */
export function normPdf(x: number): number {
  return 0.3989422804014327 * Math.exp(-0.5 * x * x);
}

/** 0.46875·√2: below it in |x|, Φ comes from Cody's erf on |x/√2| ≤ 0.46875 (no exponential). */
const ERF_REGION_X = 0.6629126073623883;
/** Φ(−40) ≈ 3.7e-351 is below the smallest subnormal: 0 (and 1) exactly past it. */
const TAIL_ZERO_X = 40;

/**
 * Standard normal CDF Φ(x), to about 1e-15 relative over the whole range where Φ(x) is a normal double
 * (down to Φ(−37.5) ≈ 4.6e-308; below that the result is subnormal and keeps the absolute accuracy of
 * its last bit, reaching 0 near x ≈ −38.5). Built on W. J. Cody's erf/erfcx approximations (see
 * `erfcx` below): Φ(x) = ½ + ½·erf(x/√2) near 0, else ½·e^{−x²/2}·erfcx(|x|/√2) for the lower tail and
 * 1 minus it for the upper, with e^{−x²/2} split so its rounding does not grow with x². NaN gives NaN.
 */
export function normCdf(x: number): number {
  const a = Math.abs(x);
  if (a < ERF_REGION_X) return 0.5 + 0.5 * erfSmall(x * SQRT1_2);
  if (a > TAIL_ZERO_X) return x > 0 ? 1 : 0;
  const tail = lowerTail(a, expMinusHalfSquare(a));
  return x > 0 ? 1 - tail : tail;
}

/**
 * Φ(x) given e = exp(−x²/2), for callers that have that exponential already (a Black price computes
 * φ(d1) once and gets the other exponentials from it): the same Cody approximations as `normCdf`, so
 * the result is as accurate, relative, as the `e` passed in (an exp of a rounded x²/2 is off by about
 * x²/2 ulps). Beyond |x| = 40 it is 0 or 1 whatever `e` is.
 */
export function normCdfWithExp(x: number, e: number): number {
  const a = Math.abs(x);
  if (a < ERF_REGION_X) return 0.5 + 0.5 * erfSmall(x * SQRT1_2);
  const tail = lowerTail(a, e);
  return x > 0 ? 1 - tail : tail;
}

// W. J. Cody, "Rational Chebyshev approximations for the error function", Math. Comp. 23 (1969) 631-638:
// near-minimax rational functions for erf on |x| ≤ 0.46875 and for erfcx on [0.46875, 4] and (4, ∞),
// written out in Horner form (this sits in the implied-vol inner loop).
const INV_SQRT_PI = 0.5641895835477563;
const SQRT1_2 = Math.SQRT1_2;

/** erf(y) for |y| ≤ 0.46875 (Cody's first rational, in z = y²). */
function erfSmall(y: number): number {
  const z = y * y;
  const num =
    (((0.18577770618460315 * z + 3.1611237438705655) * z + 113.86415415105016) * z + 377.485237685302) * z +
    3209.3775891384694;
  const den =
    (((z + 23.601290952344122) * z + 244.02463793444417) * z + 1282.6165260773723) * z + 2844.236833439171;
  return (y * num) / den;
}

/**
 * e^{−a²/2} for 0 ≤ a ≤ 40 with a = hi + lo, hi a multiple of 1/16: hi²/2 is exact, so the only rounding
 * in the exponent is that of (a − hi)(a + hi)/2 < 2.5. An exp of the rounded a²/2 is off by up to
 * a²/2 × 1.1e-16 relative (8e-14 at a = 38).
 */
function expMinusHalfSquare(a: number): number {
  const hi = Math.trunc(a * 16) / 16;
  return Math.exp(-0.5 * (a - hi) * (a + hi)) * Math.exp(-0.5 * hi * hi);
}

/** exp(y²) for y ≥ 0 with the square split so the exponent's rounding error does not grow with y. */
function expSquare(y: number): number {
  const hi = Math.trunc(y * 16) / 16;
  return Math.exp(hi * hi) * Math.exp((y - hi) * (y + hi));
}

/** erfcx(y) for 0.46875 ≤ y ≤ 4 (Cody's second rational). */
function erfcxMid(y: number): number {
  const num =
    (((((((2.1531153547440383e-8 * y + 0.5641884969886701) * y + 8.883149794388377) * y + 66.11919063714163) *
      y +
      298.6351381974001) *
      y +
      881.952221241769) *
      y +
      1712.0476126340707) *
      y +
      2051.0783778260716) *
      y +
    1230.3393547979972;
  const den =
    (((((((y + 15.744926110709835) * y + 117.6939508913125) * y + 537.1811018620099) * y +
      1621.3895745666903) *
      y +
      3290.7992357334597) *
      y +
      4362.619090143247) *
      y +
      3439.3676741437216) *
      y +
    1230.3393548037495;
  return num / den;
}

/** erfcx(y) for y > 4 (Cody's third rational, in 1/y²). */
function erfcxLarge(y: number): number {
  if (y >= 6.71e7) return INV_SQRT_PI / y; // 1 − 1/(2y²) == 1 in double precision
  const z = 1 / (y * y);
  const num =
    ((((0.016315387137302097 * z + 0.30532663496123236) * z + 0.36034489994980445) * z +
      0.12578172611122926) *
      z +
      0.016083785148742275) *
      z +
    0.0006587491615298378;
  const den =
    ((((z + 2.568520192289822) * z + 1.8729528499234604) * z + 0.5279051029514285) * z +
      0.06051834131244132) *
      z +
    0.0023352049762686918;
  return (INV_SQRT_PI - (z * num) / den) / y;
}

/**
 * ½·erfc(a/√2) = Φ(−a) for a ≥ ERF_REGION_X given e = e^{−a²/2}: the two Cody ranges called directly
 * (one branch fewer than through erfcxNonNegative, in the batch kernel's inner loop).
 */
function lowerTail(a: number, e: number): number {
  if (a > TAIL_ZERO_X) return 0;
  // a·(1/√2) and 1/√2 itself are each off by half an ulp; erfcx's relative sensitivity to its argument
  // is below 1 here, so this costs about 2e-16
  const y = a * SQRT1_2;
  return 0.5 * e * (y <= 4 ? erfcxMid(y) : erfcxLarge(y));
}

/** erfcx(y) = exp(y²)·erfc(y) for y ≥ 0. */
function erfcxNonNegative(y: number): number {
  if (y <= 0.46875) return Math.exp(y * y) * (1 - erfSmall(y));
  return y <= 4 ? erfcxMid(y) : erfcxLarge(y);
}

/**
 * Scaled complementary error function erfcx(x) = exp(x²)·erfc(x), accurate to near double precision in
 * relative terms; it is what lets deep out-of-the-money Black prices be computed without underflow or
 * cancellation. Overflows to +Infinity below x ≈ −26.6.
 */
export function erfcx(x: number): number {
  if (x >= 0) return erfcxNonNegative(x);
  return 2 * expSquare(-x) - erfcxNonNegative(-x);
}
