import { describe, expect, it } from 'vitest';
import { black76, bsm, type OptionGreeks, PricingInputError, timeToExpiryYears } from './bsm.ts';
import { everlastingOption } from './everlasting.ts';
import { inverseOption } from './inverse.ts';

describe('BSM reference values', () => {
  it("Hull's example: S=49, K=50, r=5%, σ=20%, T=20 weeks", () => {
    const g = bsm({ type: 'call', spot: 49, strike: 50, timeYears: 20 / 52, vol: 0.2, rate: 0.05 });
    expect(g.price).toBeCloseTo(2.4, 2);
    expect(g.delta).toBeCloseTo(0.522, 3);
    expect(g.gamma).toBeCloseTo(0.066, 3);
    expect(g.vegaPerVolPoint * 100).toBeCloseTo(12.1, 1); // per unit vol
    expect(g.thetaPerDay * 365).toBeCloseTo(-4.31, 2); // per year
    expect(g.rhoPer1Pct * 100).toBeCloseTo(8.91, 2); // per unit rate
  });

  // QuantLib test-suite/europeanoption.cpp, testValues(): data from E.G. Haug, "Option pricing formulas",
  // McGraw-Hill 1998, pp. 2-8, 24, 27 (type, strike, spot, q, r, t, vol, value; tolerance 1e-4).
  const haugValues: [string, number, number, number, number, number, number, number][] = [
    ['call', 65, 60, 0, 0.08, 0.25, 0.3, 2.1334],
    ['put', 95, 100, 0.05, 0.1, 0.5, 0.2, 2.4648],
    ['put', 19, 19, 0.1, 0.1, 0.75, 0.28, 1.7011],
    ['call', 19, 19, 0.1, 0.1, 0.75, 0.28, 1.7011],
    ['call', 1.6, 1.56, 0.08, 0.06, 0.5, 0.12, 0.0291],
    ['put', 70, 75, 0.05, 0.1, 0.5, 0.35, 4.087],
    ['call', 100, 90, 0.1, 0.1, 0.1, 0.15, 0.0205],
    ['call', 100, 100, 0.1, 0.1, 0.1, 0.15, 1.8734],
    ['call', 100, 110, 0.1, 0.1, 0.1, 0.15, 9.9413],
    ['call', 100, 90, 0.1, 0.1, 0.1, 0.25, 0.315],
    ['call', 100, 110, 0.1, 0.1, 0.5, 0.35, 15.3086],
    ['put', 100, 90, 0.1, 0.1, 0.1, 0.15, 9.921],
    ['put', 100, 110, 0.1, 0.1, 0.1, 0.15, 0.0408],
    ['put', 100, 90, 0.1, 0.1, 0.5, 0.35, 14.4452],
    ['put', 100, 110, 0.1, 0.1, 0.5, 0.35, 5.7963],
    ['call', 40, 42, 0.08, 0.04, 0.75, 0.35, 5.0975],
  ];
  it.each(haugValues)(
    'QuantLib/Haug value: %s K=%d S=%d q=%d r=%d t=%d σ=%d → %d',
    (type, K, S, q, r, t, v, value) => {
      const g = bsm({
        type: type as 'call' | 'put',
        spot: S,
        strike: K,
        timeYears: t,
        vol: v,
        rate: r,
        carry: q,
      });
      expect(Math.abs(g.price - value)).toBeLessThan(1e-4);
    },
  );

  it('QuantLib/Haug Greek values (testGreekValues, Haug pp. 11-16)', () => {
    const d = (type: 'call' | 'put', K: number, S: number, q: number, r: number, t: number, v: number) =>
      bsm({ type, spot: S, strike: K, timeYears: t, vol: v, rate: r, carry: q });
    expect(d('call', 100, 105, 0.1, 0.1, 0.5, 0.36).delta).toBeCloseTo(0.5946, 4);
    expect(d('put', 100, 105, 0.1, 0.1, 0.5, 0.36).delta).toBeCloseTo(-0.3566, 4);
    expect(d('call', 60, 55, 0, 0.1, 0.75, 0.3).gamma).toBeCloseTo(0.0278, 4);
    expect(d('put', 60, 55, 0, 0.1, 0.75, 0.3).gamma).toBeCloseTo(0.0278, 4);
    expect(d('call', 60, 55, 0, 0.1, 0.75, 0.3).vegaPerVolPoint * 100).toBeCloseTo(18.9358, 4);
    expect(d('put', 60, 55, 0, 0.1, 0.75, 0.3).vegaPerVolPoint * 100).toBeCloseTo(18.9358, 4);
    expect(d('put', 405, 430, 0.05, 0.07, 1 / 12, 0.2).thetaPerDay * 365).toBeCloseTo(-31.1924, 4);
    expect(d('put', 405, 430, 0.05, 0.07, 1 / 12, 0.2).thetaPerDay).toBeCloseTo(-0.0855, 4);
    expect(d('call', 75, 72, 0, 0.09, 1, 0.19).rhoPer1Pct * 100).toBeCloseTo(38.7325, 4);
  });
});

const cases = [
  { spot: 60_000, strike: 65_000, timeYears: 0.1, vol: 0.6, rate: 0.04, carry: 0.01 },
  { spot: 60_000, strike: 40_000, timeYears: 1.5, vol: 0.9, rate: 0.02, carry: 0 },
  { spot: 3_000, strike: 3_050, timeYears: 2 / 365, vol: 0.45, rate: 0.05, carry: 0.03 },
  { spot: 100, strike: 130, timeYears: 5, vol: 0.25, rate: 0.01, carry: -0.02 },
];

describe('put-call parity and finite differences', () => {
  it.each(cases)('parity C − P = S·e^{−qT} − K·e^{−rT} (%o)', (c) => {
    const call = bsm({ ...c, type: 'call' });
    const put = bsm({ ...c, type: 'put' });
    const fwd = c.spot * Math.exp(-c.carry * c.timeYears) - c.strike * Math.exp(-c.rate * c.timeYears);
    expect(call.price - put.price).toBeCloseTo(fwd, 8);
    expect(call.delta - put.delta).toBeCloseTo(Math.exp(-c.carry * c.timeYears), 12);
    expect(call.gamma).toBeCloseTo(put.gamma, 14);
  });

  const fdCheck = (
    price: (p: Record<string, number>) => number,
    g: OptionGreeks,
    c: Record<string, number>,
  ) => {
    const S = c.spot as number;
    const hS = S * 1e-4;
    const at = (patch: Record<string, number>) => price({ ...c, ...patch });
    const rel = (a: number, b: number, tol: number) =>
      expect(Math.abs(a - b)).toBeLessThanOrEqual(tol * (Math.abs(b) + 1e-12));
    rel(g.delta, (at({ spot: S + hS }) - at({ spot: S - hS })) / (2 * hS), 1e-6);
    rel(g.gamma, (at({ spot: S + hS }) - 2 * at({}) + at({ spot: S - hS })) / (hS * hS), 1e-3);
    const v = c.vol as number;
    const hv = 1e-5;
    rel(g.vegaPerVolPoint, ((at({ vol: v + hv }) - at({ vol: v - hv })) / (2 * hv)) * 0.01, 1e-6);
    rel(
      g.volgaPerVolPoint,
      ((at({ vol: v + hv }) - 2 * at({}) + at({ vol: v - hv })) / (hv * hv)) * 1e-4,
      1e-2,
    );
    const dDelta = (vol: number) => (at({ vol, spot: S + hS }) - at({ vol, spot: S - hS })) / (2 * hS);
    rel(g.vannaPerVolPoint, ((dDelta(v + 1e-4) - dDelta(v - 1e-4)) / 2e-4) * 0.01, 1e-3);
  };

  it.each(cases)('every BSM Greek matches a finite difference of the price (%o)', (c) => {
    for (const type of ['call', 'put'] as const) {
      const price = (p: Record<string, number>) =>
        bsm({
          type,
          spot: p.spot as number,
          strike: c.strike,
          timeYears: p.timeYears as number,
          vol: p.vol as number,
          rate: p.rate as number,
          carry: c.carry,
        }).price;
      const g = bsm({ ...c, type });
      fdCheck(price, g, c);
      const T = c.timeYears;
      const hT = 1e-6;
      // theta is −∂V/∂T per day; rho per 1% of rate
      expect(g.thetaPerDay).toBeCloseTo(
        -(price({ ...c, timeYears: T + hT }) - price({ ...c, timeYears: T - hT })) / (2 * hT) / 365,
        6,
      );
      expect(g.rhoPer1Pct).toBeCloseTo(
        ((price({ ...c, rate: c.rate + 1e-6 }) - price({ ...c, rate: c.rate - 1e-6 })) / 2e-6) * 0.01,
        5,
      );
    }
  });

  it('Black-76: rho holds the forward fixed (−T·V) and equals BSM with carry = rate otherwise', () => {
    const g = black76({
      type: 'put',
      forward: 61_000,
      strike: 58_000,
      timeYears: 0.5,
      vol: 0.55,
      rate: 0.05,
    });
    const b = bsm({
      type: 'put',
      spot: 61_000,
      strike: 58_000,
      timeYears: 0.5,
      vol: 0.55,
      rate: 0.05,
      carry: 0.05,
    });
    expect(g.price).toBeCloseTo(b.price, 9);
    expect(g.delta).toBeCloseTo(b.delta, 12);
    const p = (r: number) =>
      black76({ type: 'put', forward: 61_000, strike: 58_000, timeYears: 0.5, vol: 0.55, rate: r }).price;
    expect(g.rhoPer1Pct).toBeCloseTo(((p(0.05 + 1e-6) - p(0.05 - 1e-6)) / 2e-6) * 0.01, 5);
  });

  it('Black-76 names a bad forward as the forward (it was reported as the spot)', () => {
    for (const forward of [-61_000, 0, Number.NaN]) {
      const at = () => black76({ type: 'call', forward, strike: 58_000, timeYears: 0.5, vol: 0.55 });
      expect(at).toThrow(PricingInputError);
      expect(at).toThrow(new RegExp(`^forward = ${forward}: must be a positive finite number`));
    }
  });

  it('refuses a vol so small that vol·√T underflows (the Greeks came out NaN), and prices a tiny real one', () => {
    const at = (vol: number) => () => bsm({ type: 'call', spot: 100, strike: 100, timeYears: 1, vol });
    expect(at(5e-324)).toThrow(/vol·√timeYears is below 1e-150/);
    const g = at(1e-9)();
    for (const [k, v] of Object.entries(g)) expect(Number.isFinite(v), k).toBe(true);
  });

  it('finite inputs whose Greeks overflow a double are refused, never priced NaN or Infinity', () => {
    const base = { type: 'call' as const, spot: 100, strike: 100, timeYears: 1, vol: 0.5 };
    for (const over of [{ rate: 1e308 }, { spot: 1e308 }, { carry: -1e308 }, { rate: -800 }]) {
      expect(() => bsm({ ...base, ...over }), JSON.stringify(over)).toThrow(
        /out of the range a double can price: \w+ came out (NaN|-?Infinity)/,
      );
      expect(() => inverseOption({ ...base, ...over }), JSON.stringify(over)).toThrow(/out of the range/);
    }
    expect(() =>
      black76({ type: 'put', forward: 100, strike: 100, timeYears: 1, vol: 0.5, rate: 1e308 }),
    ).toThrow(/out of the range/);
    // in coin: a put's USD price over a spot near 0 overflows (it was priceCoin Infinity)
    expect(() => inverseOption({ type: 'put', spot: 1e-300, strike: 1e10, timeYears: 1, vol: 0.5 })).toThrow(
      /out of the range a double can price: priceCoin came out Infinity/,
    );
    // a vol so small that u = √(1 + 8/(σ²T)) overflows
    expect(() =>
      everlastingOption({ type: 'call', spot: 100, strike: 90, vol: 1e-200, fundingPeriodYears: 1 / 365 }),
    ).toThrow(/out of the range a double can price/);
    // what is in range still prices
    for (const [k, v] of Object.entries(bsm({ ...base, rate: 2, carry: -1 })))
      expect(Number.isFinite(v), k).toBe(true);
  });

  it('time to expiry from UTC instants is ACT/365 and rejects expired options', () => {
    const now = Date.UTC(2026, 0, 1);
    expect(timeToExpiryYears(now + 3_600_000, now)).toBeCloseTo(1 / 8760, 15);
    expect(timeToExpiryYears(Date.UTC(2027, 0, 1), now)).toBe(1);
    expect(() => timeToExpiryYears(now - 1, now)).toThrow(/expiryMs/);
  });
});

describe('coin-settled (inverse) options', () => {
  it.each(cases)('net delta in coin = spot·∂(price in coin)/∂spot; coin Greeks are consistent (%o)', (c) => {
    for (const type of ['call', 'put'] as const) {
      const g = inverseOption({ ...c, type });
      const coinPrice = (S: number) => inverseOption({ ...c, spot: S, type }).priceCoin;
      const h = c.spot * 1e-5;
      const dCoin = (coinPrice(c.spot + h) - coinPrice(c.spot - h)) / (2 * h);
      expect(g.netDeltaCoin).toBeCloseTo(c.spot * dCoin, 7);
      expect(g.netDeltaCoin).toBeCloseTo(g.delta - g.priceCoin, 14);
      expect(g.priceCoin * c.spot).toBeCloseTo(g.price, 8);
      const netDelta = (S: number) => inverseOption({ ...c, spot: S, type }).netDeltaCoin;
      const fdGamma = (netDelta(c.spot + h) - netDelta(c.spot - h)) / (2 * h);
      expect(Math.abs(g.coin.gamma - fdGamma)).toBeLessThan(1e-6 * Math.abs(fdGamma) + 1e-13);
      expect(g.coin.vegaPerVolPoint * c.spot).toBeCloseTo(g.vegaPerVolPoint, 10);
    }
  });

  it('a deep ITM inverse call carries much less coin delta than USD delta', () => {
    const g = inverseOption({ type: 'call', spot: 60_000, strike: 30_000, timeYears: 0.1, vol: 0.5 });
    expect(g.delta).toBeGreaterThan(0.99);
    expect(g.netDeltaCoin).toBeCloseTo(0.5, 2); // 1 − (S − K)/S
  });
});

describe('everlasting options', () => {
  const T = 1 / 365;
  it('call and put time values are equal; price = payoff + time value; funding = (mark − payoff)/T', () => {
    for (const K of [50_000, 60_000, 70_000]) {
      const c = everlastingOption({ type: 'call', spot: 60_000, strike: K, vol: 0.7, fundingPeriodYears: T });
      const p = everlastingOption({ type: 'put', spot: 60_000, strike: K, vol: 0.7, fundingPeriodYears: T });
      expect(c.timeValue).toBeCloseTo(p.timeValue, 9);
      expect(c.price - p.price).toBeCloseTo(60_000 - K, 8);
      expect(c.fundingUsdPerDay).toBeCloseTo(c.price - c.payoff, 9); // T = 1 day
      expect(c.thetaPerDay).toBeCloseTo(-c.fundingUsdPerDay, 12);
    }
  });

  it('delta at the strike itself: smooth through it, call − put = 1, equal to a finite difference', () => {
    const K = 100;
    const vol = 0.8;
    const u = Math.sqrt(1 + 8 / (vol * vol * T));
    const at = (type: 'call' | 'put', spot: number) =>
      everlastingOption({ type, spot, strike: K, vol, fundingPeriodYears: T });
    for (const type of ['call', 'put'] as const) {
      const h = 1e-4;
      const fd = (at(type, K + h).price - at(type, K - h).price) / (2 * h);
      expect(at(type, K).delta).toBeCloseTo(fd, 6);
    }
    // the closed form there: (1 + u)/(2u) for the call, (1 − u)/(2u) for the put
    expect(at('call', K).delta).toBeCloseTo((1 + u) / (2 * u), 12);
    expect(at('put', K).delta).toBeCloseTo((1 - u) / (2 * u), 12);
    expect(at('call', K).delta - at('put', K).delta).toBeCloseTo(1, 12);
  });

  it('equals the integral of Black-Scholes prices over an exponential expiry distribution', () => {
    // E[BS(τ)] with τ ~ Exp(mean T), r = 0: substitute τ = −T·ln(u) and integrate over u ∈ (0, 1) with a
    // composite Gauss-Legendre rule on a fine grid (BS(τ) is smooth in u away from u = 0).
    const gl = [
      [-0.906179845938664, 0.236926885056189],
      [-0.538469310105683, 0.478628670499366],
      [0, 0.568888888888889],
      [0.538469310105683, 0.478628670499366],
      [0.906179845938664, 0.236926885056189],
    ] as const;
    for (const [type, K, Tf, vol] of [
      ['call', 55_000, 1 / 365, 0.8],
      ['put', 62_000, 7 / 365, 0.5],
      ['call', 60_000, 30 / 365, 1.2],
    ] as const) {
      let sum = 0;
      const panels = 4000;
      for (let j = 0; j < panels; j++) {
        const a = j / panels;
        const b = (j + 1) / panels;
        for (const [xi, w] of gl) {
          const u = 0.5 * (b - a) * xi + 0.5 * (a + b);
          const tau = -Tf * Math.log(u);
          sum += 0.5 * (b - a) * w * bsm({ type, spot: 60_000, strike: K, timeYears: tau, vol }).price;
        }
      }
      const closed = everlastingOption({ type, spot: 60_000, strike: K, vol, fundingPeriodYears: Tf }).price;
      expect(Math.abs(closed - sum)).toBeLessThan(1e-6 * closed);
    }
  });

  it('Greeks match finite differences', () => {
    for (const [type, K] of [
      ['call', 55_000],
      ['put', 67_000],
    ] as const) {
      const c = { spot: 60_000, vol: 0.7, rate: 0 };
      const price = (p: Record<string, number>) =>
        everlastingOption({
          type,
          spot: p.spot as number,
          strike: K,
          vol: p.vol as number,
          fundingPeriodYears: 3 / 365,
        }).price;
      const g = everlastingOption({ type, spot: 60_000, strike: K, vol: 0.7, fundingPeriodYears: 3 / 365 });
      const hS = 6;
      expect(g.delta).toBeCloseTo(
        (price({ ...c, spot: 60_006 }) - price({ ...c, spot: 59_994 })) / (2 * hS),
        6,
      );
      expect(
        g.gamma /
          ((price({ ...c, spot: 60_006 }) - 2 * price(c) + price({ ...c, spot: 59_994 })) / (hS * hS)),
      ).toBeCloseTo(1, 4);
      expect(g.vegaPerVolPoint).toBeCloseTo(
        ((price({ ...c, vol: 0.70001 }) - price({ ...c, vol: 0.69999 })) / 2e-5) * 0.01,
        6,
      );
      const v2 = ((price({ ...c, vol: 0.7001 }) - 2 * price(c) + price({ ...c, vol: 0.6999 })) / 1e-8) * 1e-4;
      expect(g.volgaPerVolPoint / v2).toBeCloseTo(1, 3);
      const d = (vol: number) =>
        (price({ ...c, vol, spot: 60_006 }) - price({ ...c, vol, spot: 59_994 })) / 12;
      expect(g.vannaPerVolPoint / (((d(0.7001) - d(0.6999)) / 2e-4) * 0.01)).toBeCloseTo(1, 3);
    }
  });
});
