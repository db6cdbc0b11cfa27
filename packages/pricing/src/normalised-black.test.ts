import { describe, expect, it } from 'vitest';
import { erfcx } from './normal.ts';
import { normalisedBlackOtm } from './normalised-black.ts';

/** b(x, s) = ∫₀ˢ e^{−(x²/u² + u²/4)/2}/√(2π) du: a positive integrand, so quadrature has no cancellation. */
function bByQuadrature(x: number, s: number): number {
  const gl = [
    [-0.906179845938664, 0.236926885056189],
    [-0.538469310105683, 0.478628670499366],
    [0, 0.568888888888889],
    [0.538469310105683, 0.478628670499366],
    [0.906179845938664, 0.236926885056189],
  ] as const;
  // The integrand is negligible below u where x²/(2u²) exceeds ~800 more than at s; integrate from there.
  const uMin = x === 0 ? 0 : Math.abs(x) / Math.sqrt((x * x) / (s * s) + 1600);
  const panels = 20_000;
  let sum = 0;
  for (let j = 0; j < panels; j++) {
    const a = uMin + ((s - uMin) * j) / panels;
    const b = uMin + ((s - uMin) * (j + 1)) / panels;
    for (const [xi, w] of gl) {
      const u = 0.5 * (b - a) * xi + 0.5 * (a + b);
      sum += 0.5 * (b - a) * w * 0.3989422804014327 * Math.exp(-0.5 * ((x * x) / (u * u) + 0.25 * u * u));
    }
  }
  return sum;
}

describe('normalised Black', () => {
  it('matches an independent quadrature to ~1e-12 in every region (deep OTM, short expiries)', () => {
    for (const [x, s] of [
      [-0.01, 0.0009], // region I: h ≈ −11, t tiny
      [-0.5, 0.04], // region I
      [-0.1, 0.012], // region II
      [-0.001, 0.002], // region II near the money
      [0, 0.3], // region II at the money
      [-1, 0.5], // region IV
      [-3, 2], // region IV
      [-0.2, 3], // region III
    ] as const) {
      const b = normalisedBlackOtm(x, s);
      const q = bByQuadrature(x, s);
      expect(Math.abs(b - q)).toBeLessThan(1e-11 * q);
    }
  });

  it('erfcx is exp(x²)·erfc(x) (reference values)', () => {
    expect(erfcx(0)).toBe(1);
    expect(erfcx(1)).toBeCloseTo(0.42758357615580705, 15);
    expect(erfcx(-0.5)).toBeCloseTo(1.9523604891825568, 14);
    expect(erfcx(10) / 0.05614099274382259 - 1).toBeLessThan(1e-14);
  });
});
