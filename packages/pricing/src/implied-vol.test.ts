import { describe, expect, it } from 'vitest';
import { IV_STATUS, impliedVolBatch } from './batch.ts';
import { black76, bsm } from './bsm.ts';
import { everlastingOption } from './everlasting.ts';
import { blackImpliedVol, ImpliedVolError, type ImpliedVolInput, impliedVol } from './implied-vol.ts';
import { inverseOption } from './inverse.ts';

const HOUR = 1 / 8760;
const TIMES = [HOUR, 6 * HOUR, 1 / 365, 7 / 365, 30 / 365, 0.25, 1, 2, 5];
const MONEYNESS = [0.25, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 1, 1.01, 1.05, 1.1, 1.25, 1.5, 2, 4];
const VOLS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.8, 1, 1.5, 2, 3, 5];

describe('implied vol round trips (relative price error ≤ 1e-10)', () => {
  it('Black-Scholes-Merton over expiries 1h..5y, strikes K/S 0.25..4, vols 1%..500%', () => {
    let solved = 0;
    let unidentifiable = 0;
    let worst = 0;
    for (const T of TIMES)
      for (const m of MONEYNESS)
        for (const vol of VOLS)
          for (const type of ['call', 'put'] as const) {
            const c = { type, spot: 60_000, strike: 60_000 * m, timeYears: T, rate: 0.03, carry: 0.01 };
            const price = bsm({ ...c, vol }).price;
            const F = c.spot * Math.exp((c.rate - c.carry) * T);
            const intrinsic =
              Math.exp(-c.rate * T) * Math.max(type === 'call' ? F - c.strike : c.strike - F, 0);
            // Prices that underflow or whose time value is below 1e-12 of the price carry no vol information.
            if (price < 1e-300 || price - intrinsic <= 1e-12 * price) {
              unidentifiable++;
              continue;
            }
            const iv = impliedVol({ model: 'bs', ...c, price });
            const back = bsm({ ...c, vol: iv }).price;
            const err = Math.abs(back - price) / price;
            worst = Math.max(worst, err);
            if (err > 1e-10)
              throw new Error(`round trip ${err} for ${JSON.stringify({ ...c, vol, price, iv })}`);
            solved++;
          }
    expect(solved).toBeGreaterThan(2200);
    expect(worst).toBeLessThan(1e-10);
    expect(unidentifiable).toBeLessThan(solved);
  });

  it('recovers the vol itself to 1e-8 where the price is vega-sensitive', () => {
    for (const T of TIMES)
      for (const m of [0.8, 0.95, 1, 1.05, 1.25])
        for (const vol of VOLS) {
          const c = { type: 'call' as const, forward: 100, strike: 100 * m, timeYears: T, rate: 0.02 };
          const g = black76({ ...c, vol });
          if (g.price < 1e-300 || g.vegaPerVolPoint * 100 * vol < 1e-6 * g.price) continue; // no vol information
          expect(Math.abs(impliedVol({ model: 'black76', ...c, price: g.price }) - vol)).toBeLessThan(
            1e-8 * vol,
          );
        }
  });

  it('inverse options: price in coin → vol', () => {
    for (const [K, T, vol] of [
      [50_000, 0.02, 0.45],
      [90_000, 1, 0.8],
      [60_000, HOUR, 0.6],
    ] as const)
      for (const type of ['call', 'put'] as const) {
        const c = { type, spot: 60_000, strike: K, timeYears: T };
        const priceCoin = inverseOption({ ...c, vol }).priceCoin;
        expect(impliedVol({ model: 'inverse', ...c, priceCoin })).toBeCloseTo(vol, 9);
      }
  });

  it('everlasting options over strikes, funding periods and vols', () => {
    for (const K of [30_000, 55_000, 60_000, 65_000, 120_000])
      for (const days of [1 / 24, 1, 7, 30])
        for (const vol of [0.05, 0.3, 0.8, 2, 5])
          for (const type of ['call', 'put'] as const) {
            const c = { type, spot: 60_000, strike: K, fundingPeriodYears: days / 365 };
            const g = everlastingOption({ ...c, vol });
            if (g.timeValue <= 1e-12 * g.price) continue;
            const iv = impliedVol({ model: 'everlasting', ...c, price: g.price });
            const back = everlastingOption({ ...c, vol: iv }).price;
            expect(Math.abs(back - g.price)).toBeLessThanOrEqual(1e-10 * g.price);
          }
  });
});

describe('impossible prices are typed errors, never NaN', () => {
  const base = { model: 'bs' as const, spot: 100, strike: 90, timeYears: 1 };
  const reasonOf = (f: () => unknown): string => {
    try {
      f();
    } catch (err) {
      if (err instanceof ImpliedVolError) return err.reason;
      throw err;
    }
    throw new Error('expected an ImpliedVolError');
  };
  it('below intrinsic, at intrinsic, above maximum, invalid inputs', () => {
    expect(reasonOf(() => impliedVol({ ...base, type: 'call', price: 9.5 }))).toBe('below-intrinsic');
    expect(reasonOf(() => impliedVol({ ...base, type: 'call', price: 10 }))).toBe('no-time-value');
    expect(reasonOf(() => impliedVol({ ...base, type: 'call', price: 100 }))).toBe('above-maximum');
    expect(reasonOf(() => impliedVol({ ...base, type: 'put', price: 95 }))).toBe('above-maximum');
    expect(reasonOf(() => impliedVol({ ...base, type: 'put', price: -1 }))).toBe('below-intrinsic');
    expect(reasonOf(() => impliedVol({ ...base, type: 'put', price: Number.NaN }))).toBe('invalid-input');
    expect(reasonOf(() => impliedVol({ ...base, type: 'put', timeYears: 0, price: 1 }))).toBe(
      'invalid-input',
    );
    expect(
      reasonOf(() =>
        impliedVol({
          model: 'everlasting',
          type: 'call',
          spot: 100,
          strike: 90,
          fundingPeriodYears: 1 / 365,
          price: 100,
        }),
      ),
    ).toBe('above-maximum');
    expect(() => impliedVol({ ...base, type: 'call', price: 5 })).toThrow(/below the intrinsic value 10/);
  });

  it('batch: bad entries get NaN plus a status code and are counted', () => {
    const n = 4;
    const vol = new Float64Array(n);
    const status = new Uint8Array(n);
    const p0 = black76({ type: 'call', forward: 100, strike: 110, timeYears: 0.5, vol: 0.7 }).price;
    const failures = impliedVolBatch(
      {
        callPut: Float64Array.from([1, 1, -1, 1]),
        forward: Float64Array.from([100, 100, 100, 100]),
        strike: Float64Array.from([110, 90, 110, 110]),
        timeYears: Float64Array.from([0.5, 0.5, 0.5, 0.5]),
        price: Float64Array.from([p0, 5, 200, p0]),
      },
      vol,
      status,
    );
    expect(failures).toBe(2);
    expect(vol[0]).toBeCloseTo(0.7, 12);
    expect([...status]).toEqual([0, IV_STATUS['below-intrinsic'], IV_STATUS['above-maximum'], 0]);
    expect(Number.isNaN(vol[1])).toBe(true);
  });
});

describe('forward × strike out of the range of a double', () => {
  it('solves prices whose F·K overflows or underflows (a vol of 0 came back as found, or above-maximum)', () => {
    // at the money b = 2Φ(s/2) − 1 = s/√(2π) to 1e-100 here: σ = √(2π)·price/F for T = 1
    for (const [F, p] of [
      [1e200, 1e150],
      [1e155, 1e100],
      [1e-200, 1e-250],
      [1e-170, 1e-180],
    ] as const) {
      const want = Math.sqrt(2 * Math.PI) * (p / F);
      const got = impliedVol({
        model: 'black76',
        type: 'call',
        forward: F,
        strike: F,
        timeYears: 1,
        price: p,
      });
      expect(Math.abs(got / want - 1), `F = K = ${F}, price ${p}`).toBeLessThan(1e-12);
      const vol = new Float64Array(1);
      const status = new Uint8Array(1);
      const one = (x: number) => Float64Array.from([x]);
      const batch = { callPut: one(1), forward: one(F), strike: one(F), timeYears: one(1), price: one(p) };
      expect(impliedVolBatch(batch, vol, status)).toBe(0);
      expect(Math.abs((vol[0] as number) / want - 1)).toBeLessThan(1e-12);
    }
  });
});

describe('at the money (forward = strike, ln(F/K) = 0 exactly)', () => {
  it('solves σ√T below ~2e-7 (the search started at a negative s: a valid price was "invalid-input")', () => {
    for (const vol of [1e-7, 1e-8, 1e-10])
      for (const type of ['call', 'put'] as const) {
        const c = { type, spot: 100, strike: 100, timeYears: 1 };
        const price = bsm({ ...c, vol }).price;
        expect(Math.abs(impliedVol({ model: 'bs', ...c, price }) - vol)).toBeLessThan(1e-12 * vol);
      }
    // a 1-microsecond option at 50%: σ√T = 8.9e-8
    const c = { type: 'call' as const, forward: 60_000, strike: 60_000, timeYears: 1e-6 / (365 * 86_400) };
    const price = black76({ ...c, vol: 0.5 }).price;
    expect(impliedVol({ model: 'black76', ...c, price })).toBeCloseTo(0.5, 12);
    const vol = new Float64Array(1);
    const status = new Uint8Array(1);
    const batch = {
      callPut: Float64Array.from([1]),
      forward: Float64Array.from([100]),
      strike: Float64Array.from([100]),
      timeYears: Float64Array.from([1]),
      price: Float64Array.from([
        bsm({ type: 'call', spot: 100, strike: 100, timeYears: 1, vol: 1e-8 }).price,
      ]),
    };
    expect(impliedVolBatch(batch, vol, status)).toBe(0);
    expect(status[0]).toBe(IV_STATUS.ok);
    expect(vol[0]).toBeCloseTo(1e-8, 20);
  });

  it('recovers the vol to double precision (the search stopped after one step: errors of 3e-11)', () => {
    for (const [T, vol] of [
      [0.25, 1],
      [1, 0.5],
      [1 / 365, 0.8],
      [30 / 365, 0.65],
    ] as const)
      for (const type of ['call', 'put'] as const) {
        const c = { type, forward: 60_000, strike: 60_000, timeYears: T, rate: 0.03 };
        const price = black76({ ...c, vol }).price;
        const iv = impliedVol({ model: 'black76', ...c, price });
        expect(Math.abs(iv - vol), JSON.stringify({ T, vol, type })).toBeLessThan(1e-13 * vol);
      }
  });
});

describe('invalid inputs are named as the caller gave them', () => {
  const field = (f: () => unknown): { field: unknown; message: string } => {
    try {
      f();
    } catch (err) {
      if (err instanceof ImpliedVolError && err.reason === 'invalid-input')
        return { field: err.details.field, message: err.shortMessage };
      throw err;
    }
    throw new Error('expected an invalid-input ImpliedVolError');
  };
  const bs = { model: 'bs' as const, type: 'call' as const, spot: 100, strike: 90, timeYears: 1, price: 15 };
  it.each([
    ['spot', { ...bs, spot: -100 }, /^spot = -100: must be a positive finite number/],
    ['spot', { ...bs, spot: Number.NaN }, /^spot = NaN/],
    ['strike', { ...bs, strike: 0 }, /^strike = 0/],
    ['timeYears', { ...bs, timeYears: -1 }, /^timeYears = -1/],
    ['price', { ...bs, price: Number.NaN }, /^price = NaN: must be a finite number/],
    ['forward', { ...bs, model: 'black76', forward: -5 }, /^forward = -5/],
    ['priceCoin', { ...bs, model: 'inverse', priceCoin: Number.POSITIVE_INFINITY }, /^priceCoin = Infinity/],
    [
      'fundingPeriodYears',
      { ...bs, model: 'everlasting', fundingPeriodYears: Number.NaN },
      /^fundingPeriodYears = NaN/,
    ],
  ] as [string, unknown, RegExp][])('%s', (name, input, message) => {
    const got = field(() => impliedVol(input as ImpliedVolInput));
    expect(got.field).toBe(name);
    expect(got.message).toMatch(message);
  });

  it('blackImpliedVol names the one bad input, not all four', () => {
    const args = { isCall: true, forward: 100, strike: 90, timeYears: 1, undiscountedPrice: 15 };
    expect(field(() => blackImpliedVol({ ...args, strike: -90 })).message).toMatch(/^strike = -90/);
    expect(field(() => blackImpliedVol({ ...args, timeYears: 0 })).field).toBe('timeYears');
  });
});
