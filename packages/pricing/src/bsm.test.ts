import { describe, expect, it } from 'vitest';
import { bsm } from './bsm.ts';

describe('bsm seed', () => {
  it("matches Hull's example (S=49, K=50, r=5%, vol=20%, T=20 weeks)", () => {
    const g = bsm({ type: 'call', spot: 49, strike: 50, timeYears: 0.3846, vol: 0.2, rate: 0.05 });
    expect(g.price).toBeCloseTo(2.4, 2);
    expect(g.delta).toBeCloseTo(0.522, 3);
    expect(g.gamma).toBeCloseTo(0.066, 3);
    expect(g.vegaPerVolPoint * 100).toBeCloseTo(12.1, 1);
    expect(g.thetaPerDay * 365).toBeCloseTo(-4.31, 2);
    expect(g.rhoPer1Pct * 100).toBeCloseTo(8.91, 2);
  });
  it('rejects a negative vol with a typed error', () => {
    expect(() => bsm({ type: 'call', spot: 1, strike: 1, timeYears: 1, vol: -0.1 })).toThrow(/vol/);
  });
});
