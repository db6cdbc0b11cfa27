import { bsm } from '@xhedge/pricing';
import { describe, expect, it } from 'vitest';
import { planSingleOption, runBacktest, type SingleOptionInput } from './backtest.ts';

/** Hull's textbook experiment: short 1 call, S0=49, K=50, r=5%, σ=20%, μ=13%, 20 weeks. */
const HULL = {
  type: 'call',
  side: 'short',
  spot: 49,
  strike: 50,
  expiryYears: 20 / 52,
  vol: 0.2,
  drift: 0.13,
  rate: 0.05,
  seed: 11,
} as const satisfies Partial<SingleOptionInput>;

async function run(input: SingleOptionInput) {
  const { report } = await runBacktest(planSingleOption(input), { workers: 1 });
  const p = report.policies[0];
  if (!p) throw new Error('no policy result');
  return { report, p };
}

describe('validation: the textbook delta-hedging experiment (Derman–Kamal)', () => {
  it('stdToPrice falls like 1/sqrt(N) and matches sqrt(π/4)·vega·σ/√N within sampling tolerance', async () => {
    const g = bsm({ type: 'call', spot: 49, strike: 50, timeYears: HULL.expiryYears, vol: 0.2, rate: 0.05 });
    const vegaPerUnitVol = g.vegaPerVolPoint * 100;
    const weeks = [5, 4, 2, 1, 0.5, 0.25];
    const logN: number[] = [];
    const logR: number[] = [];
    for (const w of weeks) {
      const { p, report } = await run({ ...HULL, paths: 4000, policy: 'interval', intervalDays: w * 7 });
      const n = report.steps;
      expect(n).toBe(Math.round(20 / w));
      const stdToPrice = p.stdToPrice as number;
      const dk = (Math.sqrt(Math.PI / 4) * vegaPerUnitVol * 0.2) / Math.sqrt(n) / g.price;
      // Derman–Kamal is an at-the-money, zero-drift approximation; 12% covers it plus sampling error.
      expect(Math.abs(stdToPrice / dk - 1)).toBeLessThan(0.12);
      // Unbiased: the mean hedged P&L is within 4 standard errors of zero (no costs).
      expect(Math.abs(p.meanPnlUsd)).toBeLessThan((4 * p.stdPnlUsd) / Math.sqrt(4000) + 1e-9);
      logN.push(Math.log(n));
      logR.push(Math.log(stdToPrice));
    }
    const mx = logN.reduce((a, b) => a + b) / logN.length;
    const my = logR.reduce((a, b) => a + b) / logR.length;
    const slope =
      logN.reduce((s, x, i) => s + (x - mx) * ((logR[i] as number) - my), 0) /
      logN.reduce((s, x) => s + (x - mx) ** 2, 0);
    expect(slope).toBeGreaterThan(-0.58);
    expect(slope).toBeLessThan(-0.42);
  });
});

describe('validation: Whalley–Wilmott against daily Black-Scholes delta hedging with proportional costs', () => {
  it('a risk-averse hedger has lower entropic risk with the WW band, and trades far less', async () => {
    // 1% proportional cost, both policies look at the market once a day; γ = 1 per USD for a $2.40 option.
    const common = { ...HULL, paths: 2000, costBps: 100, stepDays: 1, riskAversion: 1 } as const;
    const daily = await run({ ...common, policy: 'interval', intervalDays: 1 });
    const ww = await run({ ...common, policy: 'ww' });
    expect(ww.p.entropicRiskUsd).toBeLessThan(daily.p.entropicRiskUsd * 0.7);
    expect(ww.p.trades).toBeLessThan(daily.p.trades / 2);
    expect(ww.p.turnoverUsd).toBeLessThan(daily.p.turnoverUsd / 2);
    expect(ww.p.meanCostUsd).toBeLessThan(daily.p.meanCostUsd / 2);
    // The band costs variance: WW is not simply "more hedging".
    expect(ww.p.stdPnlUsd).toBeGreaterThan(daily.p.stdPnlUsd * 0.8);
  });
});

describe('validation: zero volatility, zero cost', () => {
  it('the hedging error goes to zero as rebalancing becomes continuous', async () => {
    const errors: number[] = [];
    for (const n of [10, 100, 1000, 10_000]) {
      const days = (20 * 7) / n;
      const { p } = await run({
        ...HULL,
        vol: 0,
        paths: 2,
        policy: 'interval',
        intervalDays: days,
        stepDays: days,
      });
      expect(p.stdPnlUsd).toBeLessThan(1e-9); // deterministic path
      errors.push(Math.abs(p.meanPnlUsd));
    }
    for (let i = 1; i < errors.length; i++)
      expect(errors[i] as number).toBeLessThan((errors[i - 1] as number) / 5);
    expect(errors[errors.length - 1] as number).toBeLessThan(1e-4);
  });
});
