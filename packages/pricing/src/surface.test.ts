import { describe, expect, it } from 'vitest';
import { VolSurface } from './surface.ts';
import { checkButterfly, durrlemanG, fitSviSlice, type SviParams, sviTotalVariance } from './svi.ts';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 5, 1, 8);

function quotesFrom(p: SviParams, F: number, T: number, noise = 0) {
  const out = [];
  for (let k = -0.6; k <= 0.6001; k += 0.1) {
    const v = Math.sqrt(sviTotalVariance(p, k) / T);
    out.push({ strike: F * Math.exp(k), vol: v * (1 + noise * Math.sin(17 * k)) });
  }
  return out;
}

describe('SVI smile', () => {
  const truth: SviParams = { a: 0.02, b: 0.12, rho: -0.35, m: 0.05, sigma: 0.25 };

  it('refits a known arbitrage-free smile from its quotes', () => {
    const fit = fitSviSlice({ forward: 60_000, timeYears: 0.25, quotes: quotesFrom(truth, 60_000, 0.25) });
    expect(fit.rmsVolError).toBeLessThan(1e-4);
    expect(fit.butterfly.arbitrageFree).toBe(true);
    for (const k of [-0.5, -0.2, 0, 0.3, 0.5])
      expect(sviTotalVariance(fit.params, k)).toBeCloseTo(sviTotalVariance(truth, k), 5);
  });

  it('fits noisy quotes within the noise', () => {
    const fit = fitSviSlice({
      forward: 60_000,
      timeYears: 0.1,
      quotes: quotesFrom(truth, 60_000, 0.1, 0.01),
    });
    expect(fit.rmsVolError).toBeLessThan(0.015);
    expect(fit.butterfly.arbitrageFree).toBe(true);
  });

  it("flags butterfly arbitrage (Durrleman's g < 0) on Vogt's smile (Gatheral & Jacquier 2014)", () => {
    const vogt: SviParams = { a: -0.041, b: 0.1331, rho: 0.306, m: 0.3586, sigma: 0.4153 };
    const check = checkButterfly(vogt, -1.5, 1.5);
    expect(check.arbitrageFree).toBe(false);
    expect(check.minG).toBeLessThan(0);
    expect(durrlemanG(truth, 0)).toBeGreaterThan(0);
  });

  it('rejects too few quotes', () => {
    expect(() => fitSviSlice({ forward: 1, timeYears: 1, quotes: [{ strike: 1, vol: 0.5 }] })).toThrow(
      /at least 5/,
    );
  });
});

describe('VolSurface', () => {
  const s1: SviParams = { a: 0.004, b: 0.04, rho: -0.3, m: 0, sigma: 0.2 };
  const s2: SviParams = { a: 0.03, b: 0.1, rho: -0.3, m: 0, sigma: 0.3 };
  const e1 = NOW + 30 * DAY;
  const e2 = NOW + 180 * DAY;

  it('fits per expiry and marks any strike/expiry by total-variance interpolation', () => {
    const surface = VolSurface.fit(NOW, [
      { expiryMs: e1, forward: 60_000, quotes: quotesFrom(s1, 60_000, 30 / 365) },
      { expiryMs: e2, forward: 61_000, quotes: quotesFrom(s2, 61_000, 180 / 365) },
    ]);
    expect(surface.calendarViolations()).toEqual([]);
    // On a slice: the slice's own vol.
    expect(surface.vol(60_000, e1)).toBeCloseTo(Math.sqrt(sviTotalVariance(s1, 0) / (30 / 365)), 3);
    // Between: total variance is linear in time at fixed log-moneyness.
    const mid = NOW + 105 * DAY;
    const F = surface.forward(mid);
    expect(F).toBeGreaterThan(60_000);
    expect(F).toBeLessThan(61_000);
    const w = surface.totalVariance(F, mid);
    expect(w).toBeCloseTo(0.5 * (sviTotalVariance(s1, 0) + sviTotalVariance(s2, 0)), 4);
    // Before the first expiry vol is flat at fixed moneyness; expired instants are rejected.
    expect(surface.vol(60_000, NOW + 5 * DAY)).toBeCloseTo(surface.vol(60_000, e1), 10);
    expect(() => surface.vol(60_000, NOW - DAY)).toThrow(/after the surface asOf/);
  });

  it('reports calendar arbitrage when a later slice has less total variance', () => {
    const surface = new VolSurface(NOW, [
      { expiryMs: e1, timeYears: 30 / 365, forward: 60_000, params: s2 },
      { expiryMs: e2, timeYears: 180 / 365, forward: 60_000, params: s1 },
    ]);
    expect(surface.calendarViolations()).toHaveLength(1);
  });
});
