import { PolicyConfig } from '@xhedge/config';
import { parseOrThrow } from '@xhedge/core';
import { bsm } from '@xhedge/pricing';
import { GAMMA_BAND_CAP_FRACTION, gammaScaledHalfWidth, lelandVol, wwHalfWidth } from '@xhedge/strategy';
import { describe, expect, it } from 'vitest';
import { planFromFile, planSingleOption, runBacktest } from './backtest.ts';
import { createBookGrid } from './book-grid.ts';
import { batchField, type EngineJob, PATH_FIELDS, type PathBatch, pathMarket, runPaths } from './engine.ts';
import { BacktestInputError } from './errors.ts';
import { runJob } from './pool.ts';
import { parseBacktestFile } from './spec.ts';
import { replayFills } from './test-helpers.ts';

const YAML = `
version: 1
name: unit
book:
  options:
    - { type: call, moneyness: 1.05, expiryDays: 20, size: -3 }
    - { type: put, strike: 90000, expiryDays: 40, size: 2 }
market: { spot: 100000, vol: 0.5, rate: 0.03, drift: 0.1, process: { kind: heston } , volMark: process }
horizonDays: 10
stepHours: 2
paths: 40
seed: 5
riskAversion: 0.0001
venues:
  - { id: eth-l1, chain: "evm:1", feeBps: 5, halfSpreadBps: 2, impactBpsPerMillionUsd: 10 }
  - { id: arb, chain: "evm:42161", feeBps: 7, fundingRatePerHour: 0.00002 }
  - { id: sol, chain: "solana:mainnet-beta", feeBps: 9, gasUsd: 0.0005, priorityFeeUsd: 0.01 }
policies:
  band: { kind: band, bandDelta: 0.3 }
`;

function jobFor(policy: unknown, decisions: EngineJob['decisions'] = 'auto'): EngineJob {
  const plan = planFromFile(parseBacktestFile(YAML), '.');
  return { ...plan.base, decisions, policy: parseOrThrow(PolicyConfig, policy, 'policy') };
}

describe('engine', () => {
  it('P&L attribution adds up to the P&L on every path (costs, funding, vol moves included)', async () => {
    const job = jobFor({ kind: 'band', bandDelta: 0.3 });
    const b = await runPaths(job, 0, job.paths);
    const pnl = batchField(b, 'pnlUsd');
    let traded = 0;
    let vega = 0;
    for (let i = 0; i < b.count; i++) {
      const parts =
        (batchField(b, 'deltaUsd')[i] as number) +
        (batchField(b, 'gammaUsd')[i] as number) +
        (batchField(b, 'thetaUsd')[i] as number) +
        (batchField(b, 'vegaUsd')[i] as number) +
        (batchField(b, 'residualUsd')[i] as number) +
        (batchField(b, 'fundingUsd')[i] as number) -
        (batchField(b, 'feesUsd')[i] as number) -
        (batchField(b, 'slippageUsd')[i] as number) -
        (batchField(b, 'gasUsd')[i] as number);
      expect(parts).toBeCloseTo(pnl[i] as number, 6);
      traded += batchField(b, 'trades')[i] as number;
      vega += Math.abs(batchField(b, 'vegaUsd')[i] as number);
    }
    expect(traded).toBeGreaterThan(0);
    expect(vega).toBeGreaterThan(0); // Heston marks move the vol
  });

  it('the fast kernel makes exactly the decisions of the live HedgeStrategy, for every policy kind', async () => {
    const policies = [
      { kind: 'interval', intervalMinutes: 360 },
      { kind: 'band', bandDelta: 0.2, minTradeUsd: 500, maxOrderUsd: 30000 },
      { kind: 'band', gammaScaled: { z: 1.5, windowHours: 6 } },
      { kind: 'ww', riskAversion: 0.0002, costBps: 8 },
      { kind: 'leland', intervalMinutes: 240, costBps: 10, targetDelta: 0.5 },
    ];
    for (const p of policies) {
      const live = await runPaths(jobFor(p, 'strategy'), 0, 12);
      const fast = await runPaths(jobFor(p, 'kernel'), 0, 12);
      expect(batchField(fast, 'trades'), JSON.stringify(p)).toEqual(batchField(live, 'trades'));
      const a = batchField(fast, 'pnlUsd');
      const l = batchField(live, 'pnlUsd');
      for (let i = 0; i < a.length; i++) expect(a[i] as number).toBeCloseTo(l[i] as number, 6);
    }
  });

  it('same seed, same result, whatever the number of worker threads; another seed differs', async () => {
    const job = jobFor({ kind: 'ww', riskAversion: 0.0002, costBps: 8 });
    const one = await runJob(job, { workers: 1 });
    const two = await runJob(job, { workers: 2 });
    expect(two.count).toBe(job.paths);
    expect(Array.from(two.data)).toEqual(Array.from(one.data));
    const other = await runJob({ ...job, seed: 6 }, { workers: 1 });
    expect(Array.from(batchField(other, 'pnlUsd'))).not.toEqual(Array.from(batchField(one, 'pnlUsd')));
    expect(one.data.length).toBe(PATH_FIELDS.length * job.paths);
  });

  it('reports progress for every path, from worker threads too', async () => {
    const plan = planSingleOption({
      type: 'put',
      side: 'long',
      spot: 100,
      strike: 95,
      expiryYears: 0.1,
      vol: 0.3,
      paths: 300,
      seed: 2,
      policy: 'band',
      bandDelta: 0.1,
    });
    let last = 0;
    let calls = 0;
    const { report } = await runBacktest(plan, {
      workers: 2,
      onProgress: (done, total) => {
        expect(done).toBeGreaterThan(last);
        expect(total).toBe(300);
        last = done;
        calls++;
      },
    });
    expect(last).toBe(300);
    expect(calls).toBeGreaterThan(1);
    expect(report.policies[0]?.trades).toBeGreaterThan(1);
  });

  it('a worker failure surfaces as a typed error instead of hanging', async () => {
    const job = jobFor({ kind: 'band', bandDelta: 0.3 });
    const bad: EngineJob = {
      ...job,
      process: { kind: 'replay', prices: Float64Array.from([1, 2, 3]), barsPerStep: 1 },
    };
    await expect(runJob(bad, { workers: 2 })).rejects.toThrow(/replay history has 3 bars/);
  });
});

describe('an option that expires inside the horizon', () => {
  // Long 1 call K=100 expiring after one day, a two-day run with daily steps, spot 100 → 110 → 120,
  // never hedged (band wider than the book's delta), rate 5%.
  const text = `
version: 1
name: expiry
book: { options: [{ type: call, strike: 100, expiryDays: 1, size: 1 }] }
market: { spot: 100, vol: 0.5, rate: 0.05, process: { kind: gbm } }
horizonDays: 2
stepHours: 24
paths: 2
riskAversion: 0.0001
routing: cheapest
venues: [{ id: flat, chain: offchain, feeBps: 0 }]
policies: { none: { kind: band, bandDelta: 1000 } }
`;

  it('settles at the expiry spot into cash; later spot moves do not change its payoff', async () => {
    const plan = planFromFile(parseBacktestFile(text), '.');
    const job: EngineJob = {
      ...plan.base,
      paths: 1,
      process: { kind: 'replay', prices: Float64Array.of(100, 110, 120), barsPerStep: 1 },
      policy: (plan.policies[0] as { policy: EngineJob['policy'] }).policy,
    };
    const b = await runPaths(job, 0, 1);
    const dt = 1 / 365;
    const g = Math.exp(0.05 * dt);
    const premium = bsm({ type: 'call', spot: 100, strike: 100, timeYears: dt, vol: 0.5, rate: 0.05 }).price;
    expect(batchField(b, 'trades')[0]).toBe(0);
    // Premium paid at t0 (financed for two days); payoff max(110 − 100, 0) = 10 received at day 1 and
    // earning a day's interest. Valuing the dead option at the final spot would give 20 instead.
    expect(batchField(b, 'pnlUsd')[0] as number).toBeCloseTo(-premium * g * g + 10 * g, 9);
  });
});

describe('unwind at the end', () => {
  it('closes every venue that holds a position, each paying its own costs', async () => {
    // Short 10 deep in-the-money calls (delta −10) expiring after the horizon: the +10 hedge at spot
    // 100,000 (1,000,000 USD) is split 5/5 over two venues whose impact (10 bps per 1,000,000 USD) makes
    // one order of 10 cost more than two of 5. Spot does not move, so nothing trades again, and the
    // unwind closes each venue's +5 on that venue. (No router leaves +10 on one venue against −10 on
    // another any more, the case this once missed: see cheapest-routing.test.ts.)
    const { fills, batch } = await replayFills(
      `
version: 1
name: unwind
book: { options: [{ type: call, strike: 1, expiryDays: 30, size: -10 }] }
market: { spot: 100000, vol: 0.5, process: { kind: gbm } }
horizonDays: 2
stepHours: 24
paths: 2
riskAversion: 0.0001
routing: live
venues:
  - { id: venue-a, chain: offchain, feeBps: 1, impactBpsPerMillionUsd: 10, gasUsd: 0 }
  - { id: venue-b, chain: offchain, feeBps: 1, impactBpsPerMillionUsd: 10, gasUsd: 0 }
policies: { band: { kind: band, bandDelta: 0.5, minTradeUsd: 0 } }
`,
      [100_000, 100_000, 100_000],
    );
    const byVenue = (x: { venue: string }, y: { venue: string }) => x.venue.localeCompare(y.venue);
    expect(fills.filter((f) => f.step === 0).sort(byVenue)).toEqual([
      { venue: 'venue-a', sizeBase: 5, step: 0 },
      { venue: 'venue-b', sizeBase: 5, step: 0 },
    ]);
    expect(fills.filter((f) => f.step === 2).sort(byVenue)).toEqual([
      { venue: 'venue-a', sizeBase: -5, step: 2 },
      { venue: 'venue-b', sizeBase: -5, step: 2 },
    ]);
    expect(batchField(batch, 'trades')[0]).toBe(4);
    // 1 bp of 500,000 USD on each of the four orders
    expect(batchField(batch, 'feesUsd')[0] as number).toBeCloseTo(4 * 50, 9);
  });
});

describe('the single-option experiment', () => {
  it('an interval policy hedges at every step, also when the expiry is not a whole number of intervals', async () => {
    // 0.1 years = 36.5 days of daily hedging: every engine step must be at least one day, or the
    // policy's one-day time gate refuses every other step.
    const plan = planSingleOption({
      type: 'call',
      side: 'short',
      spot: 100,
      strike: 100,
      expiryYears: 0.1,
      vol: 0.5,
      paths: 4,
      seed: 3,
      policy: 'interval',
      intervalDays: 1,
    });
    expect(plan.base.stepYears * 365).toBeGreaterThanOrEqual(1);
    const { report } = await runBacktest(plan, { workers: 1 });
    // One hedge per step (the interval policy has no band) plus the unwind.
    expect(report.policies[0]?.trades).toBe(plan.base.steps + 1);
  });
});

/** Every hedge fill of paths [0, job.paths), as [path, step, sizeBase], and the batch. */
async function fillsOf(job: EngineJob): Promise<{ fills: [number, number, number][]; batch: PathBatch }> {
  const fills: [number, number, number][] = [];
  const batch = await runPaths(job, 0, job.paths, {
    onEvent: (e) => {
      if (e.type === 'fill') fills.push([e.path, e.step, e.sizeBase]);
    },
  });
  return { fills, batch };
}

/** Runs `job` with the kernel and with the live HedgeStrategy and expects the same fills, to the bit. */
async function expectSameDecisions(job: EngineJob): Promise<[number, number, number][]> {
  const fast = await fillsOf({ ...job, decisions: 'kernel' });
  const live = await fillsOf({ ...job, decisions: 'strategy' });
  expect(fast.fills, JSON.stringify(job.policy)).toEqual(live.fills);
  expect(Array.from(batchField(fast.batch, 'pnlUsd'))).toEqual(Array.from(batchField(live.batch, 'pnlUsd')));
  return fast.fills;
}

describe("the options' delta range, as the live strategy applies it", () => {
  it('Leland near Le ≈ 1: a book long only calls is never hedged long, by the kernel and the live strategy alike', async () => {
    // Long 1 BTC of the 66,000 call a week out at 60,000, hedged every 5 min at 10 bps a side: Le ≈ 0.86
    // takes the hedge vol from 60% to 22%, and the linear vanna step alone would take the options' delta
    // below 0 (their floor) whenever the call is well out of the money.
    const plan = planFromFile(
      parseBacktestFile(`
version: 1
name: leland-near-one
book: { options: [{ type: call, strike: 66000, expiryDays: 7, size: 1 }] }
market: { spot: 60000, vol: 0.6, rate: 0, process: { kind: gbm } }
horizonDays: 3
stepHours: 1
paths: 12
seed: 9
riskAversion: 0.0001
routing: cheapest
venues: [{ id: flat, chain: offchain, feeBps: 0 }]
policies: { leland: { kind: leland, intervalMinutes: 5, costBps: 10 } }
`),
      '.',
    );
    const policy = (plan.policies[0] as { policy: EngineJob['policy'] }).policy;
    const job: EngineJob = { ...plan.base, policy };

    // At the start the unclamped rule buys: Δ + vanna · (σ_L − σ) is below 0 by more than the dust.
    const o = plan.base.options[0] as EngineJob['options'][number];
    const g = bsm({
      type: 'call',
      spot: 60_000,
      strike: 66_000,
      timeYears: o.expiryYears,
      vol: 0.6,
      rate: 0,
    });
    const lv = lelandVol({
      volDecimal: 0.6,
      roundTripCostFraction: 0.002,
      intervalMs: 5 * 60_000,
      gammaSign: 1,
    });
    expect(lv.lelandNumber).toBeGreaterThan(0.85);
    const unclampedDelta = g.delta + g.vannaPerVolPoint * (lv.volDecimal - 0.6) * 100;
    expect(-unclampedDelta * 60_000).toBeGreaterThan(policy.minTradeUsd);

    const fills = await expectSameDecisions(job);
    // Clamped, the options' delta stays in [0, 1], so the hedge (minus it) stays in [−1, 0]: nothing
    // at the start (delta 0 is the target) and never long afterwards; the call coming into the money
    // on some paths is sold against.
    expect(fills.filter(([, step]) => step === 0)).toEqual([]);
    const hedge = new Float64Array(job.paths);
    for (const [path, step, sizeBase] of fills) {
      if (step === job.steps) continue; // the unwind
      hedge[path] = (hedge[path] as number) + sizeBase;
      expect(hedge[path], `path ${path} step ${step}`).toBeLessThanOrEqual(1e-12);
    }
    expect(fills.filter(([, step]) => step < job.steps).length).toBeGreaterThan(job.paths);
  });

  it('into expiry the gamma-driven bands are capped at a quarter of the options: a 0.5% move an hour out is hedged', async () => {
    // Long 1 BTC of the at-the-money call two hours from expiry, target delta 0.5 (the book starts
    // hedged). Spot +0.5% over the first hour takes the call's delta to ≈ 0.78 at the decision an hour
    // before expiry: a drift of 0.28, past the cap (0.25 × 1) but inside both uncapped bands (≈ 0.6),
    // which would hold it to expiry.
    const plan = planFromFile(
      parseBacktestFile(`
version: 1
name: into-expiry
book: { options: [{ type: call, strike: 60000, expiryDays: ${2 / 24}, size: 1 }] }
market: { spot: 60000, vol: 0.6, rate: 0, process: { kind: gbm } }
horizonDays: ${2 / 24}
stepHours: 1
paths: 2
riskAversion: 0.0001
routing: cheapest
venues: [{ id: flat, chain: offchain, feeBps: 0 }]
policies:
  gammaScaled: { kind: band, gammaScaled: { z: 2, windowHours: 1 }, targetDelta: 0.5 }
  ww: { kind: ww, riskAversion: 0.0002, costBps: 8, targetDelta: 0.5 }
`),
      '.',
    );
    expect(plan.base.steps).toBe(2);
    const o = plan.base.options[0] as EngineJob['options'][number];
    const S1 = 60_000 * 1.005;
    const tau1 = o.expiryYears - plan.base.stepYears;
    const g = bsm({ type: 'call', spot: S1, strike: 60_000, timeYears: tau1, vol: 0.6, rate: 0 });
    const drift = g.delta - 0.5;
    const cap = GAMMA_BAND_CAP_FRACTION * 1;
    expect(drift).toBeGreaterThan(cap);
    const uncappedGammaScaled = gammaScaledHalfWidth({
      z: 2,
      gamma: g.gamma,
      volDecimal: 0.6,
      spotUsd: S1,
      windowMs: 3_600_000,
    });
    const uncappedWw = wwHalfWidth({
      spotUsd: S1,
      gamma: g.gamma,
      costFraction: 8 / 10_000,
      riskAversion: 0.0002,
      rateDecimal: 0,
      tenorYears: tau1,
    });
    expect(plan.policies.map((p) => p.name)).toEqual(['gammaScaled', 'ww']);
    for (const { name, policy } of plan.policies) {
      // Uncapped, the band would hold the drift: the cap is what makes this hedge.
      expect(name === 'ww' ? uncappedWw : uncappedGammaScaled, name).toBeGreaterThan(drift);
      const fills = await expectSameDecisions({
        ...plan.base,
        paths: 1,
        policy,
        process: { kind: 'replay', prices: Float64Array.of(60_000, S1, S1), barsPerStep: 1 },
      });
      // Band: back to the target; Whalley–Wilmott: to the capped band's edge. Then the unwind.
      const sold = name === 'ww' ? drift - cap : drift;
      expect(
        fills.map(([, step]) => step),
        name,
      ).toEqual([1, 2]);
      expect(fills[0]?.[2] as number, name).toBeCloseTo(-sold, 12);
    }
  });

  it('into expiry the interval and Leland urgency yardstick is capped too: a large drift between slots is hedged', async () => {
    // Long 1 BTC of the 60,000 call two hours from expiry, hedged every 2 h, urgent past 1.5× the
    // yardstick. The first slot hedges it 1.5% out of the money (delta ≈ 0.05); half an hour later spot
    // is at the strike (delta ≈ 0.5): a drift of ≈ 0.45 between slots, past 1.5× the cap (0.375) but
    // not 1.5× the uncapped yardstick (≈ 0.69), which would wait for the slot after expiry.
    const plan = planFromFile(
      parseBacktestFile(`
version: 1
name: into-expiry-urgent
book: { options: [{ type: call, strike: 60000, expiryDays: ${2 / 24}, size: 1 }] }
market: { spot: ${60_000 * 0.985}, vol: 0.6, rate: 0, process: { kind: gbm } }
horizonDays: ${2 / 24}
stepHours: 0.5
paths: 2
riskAversion: 0.0001
routing: cheapest
venues: [{ id: flat, chain: offchain, feeBps: 0 }]
policies:
  interval: { kind: interval, intervalMinutes: 120, urgencyMultiple: 1.5 }
  leland: { kind: leland, intervalMinutes: 120, costBps: 5, urgencyMultiple: 1.5 }
`),
      '.',
    );
    expect(plan.base.steps).toBe(4);
    const o = plan.base.options[0] as EngineJob['options'][number];
    const S0 = 60_000 * 0.985;
    const greeks = (spot: number, step: number) =>
      bsm({
        type: 'call',
        spot,
        strike: 60_000,
        timeYears: o.expiryYears - step * plan.base.stepYears,
        vol: 0.6,
        rate: 0,
      });
    const g0 = greeks(S0, 0);
    const g1 = greeks(60_000, 1);
    const cap = GAMMA_BAND_CAP_FRACTION * 1;
    const uncapped = gammaScaledHalfWidth({
      z: 1,
      gamma: g1.gamma,
      volDecimal: 0.6,
      spotUsd: 60_000,
      windowMs: 120 * 60_000,
    });
    expect(plan.policies.map((p) => p.name)).toEqual(['interval', 'leland']);
    for (const { name, policy } of plan.policies) {
      // Leland's vol shifts the hedged delta by vanna · (σ_L − σ) (far inside the options' range here).
      const lv = lelandVol({
        volDecimal: 0.6,
        roundTripCostFraction: 0.001,
        intervalMs: 120 * 60_000,
        gammaSign: 1,
      });
      const adj = (g: typeof g0) =>
        name === 'leland' ? g.vannaPerVolPoint * (lv.volDecimal - 0.6) * 100 : 0;
      const drift = g1.delta + adj(g1) - (g0.delta + adj(g0));
      expect(drift, name).toBeGreaterThanOrEqual(1.5 * cap);
      // Uncapped, the drift would not be urgent: the cap is what makes this hedge.
      expect(drift, name).toBeLessThan(1.5 * uncapped);
      const fills = await expectSameDecisions({
        ...plan.base,
        paths: 1,
        policy,
        process: {
          kind: 'replay',
          prices: Float64Array.of(S0, 60_000, 60_000, 60_000, 60_000),
          barsPerStep: 1,
        },
      });
      // The first slot, the urgent hedge between slots, then (drift below the dust) only the unwind.
      expect(
        fills.map(([, step]) => step),
        name,
      ).toEqual([0, 1, 4]);
      expect(fills[1]?.[2] as number, name).toBeCloseTo(-drift, 12);
    }
  });

  it('the kernel and the live strategy agree fill by fill while options expire, for every policy kind', async () => {
    // A short call expiring after one day and a short put after two, over three days: the cap binds in
    // each option's last hours, and the delta range changes when the call settles.
    const plan = planFromFile(
      parseBacktestFile(`
version: 1
name: expiring
book:
  options:
    - { type: call, moneyness: 1, expiryDays: 1, size: -3 }
    - { type: put, moneyness: 0.98, expiryDays: 2, size: -2 }
market: { spot: 60000, vol: 0.6, rate: 0.03, process: { kind: gbm } }
horizonDays: 3
stepHours: 1
paths: 12
seed: 3
riskAversion: 0.0001
routing: cheapest
venues: [{ id: flat, chain: offchain, feeBps: 5 }]
policies: { band: { kind: band, bandDelta: 0.1 } }
`),
      '.',
    );
    const grid = createBookGrid(plan.base.options, plan.base.steps, plan.base.stepYears, plan.base.rate);
    // Short 3 calls (delta down to −3) and short 2 puts (up to +2): floor −3, ceiling 2; once the call
    // has settled (step 24), 0 and 2; once the put has too, nothing.
    expect([grid.optionDeltaFloorBase[23], grid.optionDeltaCeilingBase[23]]).toEqual([-3, 2]);
    expect([grid.optionDeltaFloorBase[24], grid.optionDeltaCeilingBase[24]]).toEqual([0, 2]);
    expect([grid.optionDeltaFloorBase[48], grid.optionDeltaCeilingBase[48]]).toEqual([0, 0]);
    const policies = [
      { kind: 'interval', intervalMinutes: 120 },
      { kind: 'band', bandDelta: 0.1, gammaScaled: { z: 2, windowHours: 2 }, maxOrderUsd: 100_000 },
      { kind: 'ww', riskAversion: 0.0002, costBps: 8 },
      { kind: 'leland', intervalMinutes: 5, costBps: 10 },
      { kind: 'leland', intervalMinutes: 120, costBps: 10, targetDelta: -0.5 },
    ];
    for (const p of policies) {
      const fills = await expectSameDecisions({
        ...plan.base,
        policy: parseOrThrow(PolicyConfig, p, 'policy'),
      });
      expect(fills.length, JSON.stringify(p)).toBeGreaterThan(plan.base.paths);
    }
  });
});

describe('Heston variance at a coarse step (kappa·dt above 2)', () => {
  // Variance starts at 0.3² = 0.09 and reverts to thetaVar 0.64. One Euler step of kappa·dt 2.74 took
  // it to 0.09 + 2.74·0.55 = 1.6 on average (theory: 0.60), the next to 0 on most paths (theory: 0.64),
  // swinging on between 0 and 2.5× the long-run variance and stuck at 0 a quarter of the time.
  const hestonFile = (kappa: number, horizonDays: number, stepHours: number): string => `
version: 1
name: heston-coarse
book: { options: [{ type: call, moneyness: 1, expiryDays: ${horizonDays}, size: -1 }] }
market:
  spot: 100
  vol: 0.3
  volMark: process
  process: { kind: heston, kappa: ${kappa}, thetaVar: 0.64, volOfVol: 0.8, rho: -0.5 }
horizonDays: ${horizonDays}
stepHours: ${stepHours}
paths: 1500
seed: 11
riskAversion: 0.0001
routing: cheapest
venues: [{ id: flat, chain: offchain, feeBps: 0 }]
policies: { daily: { kind: interval, intervalMinutes: 1440 } }
`;

  it.each([
    // kappa 1000 per year on daily steps (kappa·dt 2.74), kappa 100 on 730-hour steps (kappa·dt 8.33)
    { kappa: 1000, horizonDays: 10, stepHours: 24 },
    { kappa: 100, horizonDays: 365, stepHours: 730 },
  ])(
    'stays bounded and its mean is θ + (v0 − θ)e^(−κt) at every step: kappa $kappa, stepHours $stepHours',
    ({ kappa, horizonDays, stepHours }) => {
      const plan = planFromFile(parseBacktestFile(hestonFile(kappa, horizonDays, stepHours)), '.');
      const job: EngineJob = { ...plan.base, policy: (plan.policies[0] as { policy: PolicyConfig }).policy };
      expect(kappa * job.stepYears).toBeGreaterThan(2);
      const theta = 0.64;
      const v0 = 0.09;
      const sum = new Float64Array(job.steps + 1);
      let maxVar = 0;
      for (let p = 0; p < job.paths; p++) {
        const { vols } = pathMarket(job, p);
        for (let k = 0; k <= job.steps; k++) {
          const v = (vols[k] as number) ** 2;
          expect(Number.isFinite(v)).toBe(true);
          sum[k] = (sum[k] as number) + v;
          maxVar = Math.max(maxVar, v);
        }
      }
      // Stationary sd of v is ξ·√(θ / 2κ): 0.014 at kappa 1000, 0.045 at kappa 100; nothing near 1.5θ.
      expect(maxVar).toBeLessThan(1.5 * theta);
      for (let k = 1; k <= job.steps; k++) {
        const expected = theta + (v0 - theta) * Math.exp(-kappa * k * job.stepYears);
        expect(Math.abs((sum[k] as number) / job.paths / expected - 1), `step ${k}`).toBeLessThan(0.02);
      }
    },
  );

  it('a horizon whose sub-steps would be too many is refused naming kappa and the step', () => {
    // kappa 10000 per year over 100 years: 274 sub-steps per daily step, 10,001,000 in all.
    expect(() => planFromFile(parseBacktestFile(hestonFile(10_000, 36_500, 24)), '.')).toThrow(
      BacktestInputError,
    );
    expect(() => planFromFile(parseBacktestFile(hestonFile(10_000, 36_500, 24)), '.')).toThrow(
      /Heston kappa 10000 per year on steps of 0\.00273973 years \(kappa·dt 27\.4\) needs 274 sub-steps per step.*lower kappa or the horizon/,
    );
  });
});
