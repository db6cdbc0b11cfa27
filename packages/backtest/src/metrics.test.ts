import { NumericError } from '@xhedge/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cvar, entropicRisk, mean, pnlStats, shareAboveZero, stdDev } from './metrics.ts';

describe('metrics', () => {
  it('mean and sample std of a known sample', () => {
    const x = Float64Array.from([1, 2, 3, 4]);
    expect(mean(x)).toBe(2.5);
    expect(stdDev(x)).toBeCloseTo(Math.sqrt(5 / 3), 12);
  });

  it('P&Ls too large to square are refused by statistic, never an Infinity std', () => {
    const x = Float64Array.from([-3e300, 1e300, 2e300, -1e299]);
    expect(() => pnlStats(x, 1)).toThrow(NumericError);
    expect(() => pnlStats(x, 1)).toThrow(
      /stdPnlUsd of 4 P&Ls \(past the range of a double\) is not a finite number \(Infinity\)/,
    );
  });

  it('CVaR 95% is minus the mean of the worst 5%', () => {
    const x = Float64Array.from({ length: 100 }, (_, i) => i - 50); // -50 .. 49
    expect(cvar(x, 0.95)).toBeCloseTo(48, 12); // worst five: -50..-46
    // fractional tail: 10 samples, 0.5 of the worst one
    expect(cvar(Float64Array.from([5, -10, 3, 1, 2, 0, 4, 6, 7, 8]), 0.95)).toBeCloseTo(10, 12);
  });

  it('entropic risk matches the direct formula, tends to -mean for small γ and never overflows', () => {
    const x = Float64Array.from([-1, 0.5, 2, -0.25]);
    const direct = Math.log(x.reduce((s, v) => s + Math.exp(-2 * v), 0) / x.length) / 2;
    expect(entropicRisk(x, 2)).toBeCloseTo(direct, 12);
    expect(entropicRisk(x, 1e-9)).toBeCloseTo(-mean(x), 6);
    // exp(1e5) overflows a double; log-sum-exp does not: the worst loss dominates.
    const big = Float64Array.from([-1e5, 0, 1e5]);
    expect(entropicRisk(big, 1)).toBeCloseTo(1e5 - Math.log(3), 6);
  });

  it('entropic risk is at least -mean (Jensen) and increases with γ', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: -1e3, max: 1e3, noNaN: true }), { minLength: 2, maxLength: 50 }),
        fc.double({ min: 1e-4, max: 10, noNaN: true }),
        (xs, g) => {
          const x = Float64Array.from(xs);
          const r1 = entropicRisk(x, g);
          expect(r1).toBeGreaterThanOrEqual(-mean(x) - 1e-6 * (1 + Math.abs(mean(x))));
          expect(entropicRisk(x, g * 2)).toBeGreaterThanOrEqual(r1 - 1e-9 * (1 + Math.abs(r1)));
        },
      ),
    );
  });

  it('share above zero counts strictly positive samples (paths with a liquidation)', () => {
    expect(shareAboveZero(Float64Array.from([0, 1, 0, 2, 0]))).toBe(0.4);
    expect(shareAboveZero(Float64Array.from([0, -1]))).toBe(0);
    expect(() => shareAboveZero(new Float64Array(0))).toThrow(/empty/);
  });

  it('rejects non-finite samples and bad parameters with typed errors', () => {
    expect(() => pnlStats(Float64Array.from([1, Number.NaN]), 1)).toThrow(/not a finite number/);
    expect(() => entropicRisk(Float64Array.from([1]), 0)).toThrow(/risk aversion/);
    expect(() => cvar(new Float64Array(0))).toThrow(/empty/);
  });
});
