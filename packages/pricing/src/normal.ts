/** Standard normal density. */
export function normPdf(x: number): number {
  return 0.3989422804014327 * Math.exp(-0.5 * x * x);
}

/**
 * Standard normal CDF to double precision (Hart 1968, as published by G. West, "Better approximations
 * to cumulative normal functions", 2005): absolute error below 1e-14 over the real line.
 */
export function normCdf(x: number): number {
  const a = Math.abs(x);
  return a > 37 ? (x > 0 ? 1 : 0) : normCdfWithExp(x, Math.exp(-0.5 * a * a));
}

/**
 * Φ(x) given e = exp(−x²/2), for callers that have that exponential already (Hart 1968 via West 2005):
 * a Black price computes φ(d1) once and gets the other exponentials from it.
 */
export function normCdfWithExp(x: number, e: number): number {
  const a = Math.abs(x);
  let c: number;
  if (a > 37) c = 0;
  else if (a < 7.07106781186547) {
    let n = 3.52624965998911e-2 * a + 0.700383064443688;
    n = n * a + 6.37396220353165;
    n = n * a + 33.912866078383;
    n = n * a + 112.079291497871;
    n = n * a + 221.213596169931;
    n = n * a + 220.206867912376;
    let d = 8.83883476483184e-2 * a + 1.75566716318264;
    d = d * a + 16.064177579207;
    d = d * a + 86.7807322029461;
    d = d * a + 296.564248779674;
    d = d * a + 637.333633378831;
    d = d * a + 793.826512519948;
    d = d * a + 440.413735824752;
    c = (e * n) / d;
  } else {
    let b = a + 0.65;
    b = a + 4 / b;
    b = a + 3 / b;
    b = a + 2 / b;
    b = a + 1 / b;
    c = e / b / 2.506628274631;
  }
  return x > 0 ? 1 - c : c;
}

// W. J. Cody, "Rational Chebyshev approximations for the error function", Math. Comp. 23 (1969) 631-638:
// near-minimax rational functions for erf on |x| ≤ 0.46875 and for erfcx on [0.46875, 4] and (4, ∞),
// written out in Horner form (this sits in the implied-vol inner loop).
const INV_SQRT_PI = 0.5641895835477563;

/** exp(y²) for y ≥ 0 with the square split so the exponent's rounding error does not grow with y. */
function expSquare(y: number): number {
  const hi = Math.trunc(y * 16) / 16;
  return Math.exp(hi * hi) * Math.exp((y - hi) * (y + hi));
}

/** erfcx(y) = exp(y²)·erfc(y) for y ≥ 0. */
function erfcxNonNegative(y: number): number {
  if (y <= 0.46875) {
    const z = y * y;
    const num =
      (((0.18577770618460315 * z + 3.1611237438705655) * z + 113.86415415105016) * z + 377.485237685302) * z +
      3209.3775891384694;
    const den =
      (((z + 23.601290952344122) * z + 244.02463793444417) * z + 1282.6165260773723) * z + 2844.236833439171;
    return Math.exp(z) * (1 - (y * num) / den);
  }
  if (y <= 4) {
    const num =
      (((((((2.1531153547440383e-8 * y + 0.5641884969886701) * y + 8.883149794388377) * y +
        66.11919063714163) *
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
 * Scaled complementary error function erfcx(x) = exp(x²)·erfc(x), accurate to near double precision in
 * relative terms; it is what lets deep out-of-the-money Black prices be computed without underflow or
 * cancellation. Overflows to +Infinity below x ≈ −26.6.
 */
export function erfcx(x: number): number {
  if (x >= 0) return erfcxNonNegative(x);
  return 2 * expSquare(-x) - erfcxNonNegative(-x);
}
