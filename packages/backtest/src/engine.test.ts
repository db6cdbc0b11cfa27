import { PolicyConfig } from '@xhedge/config';
import { parseOrThrow } from '@xhedge/core';
import { describe, expect, it } from 'vitest';
import { planFromFile, planSingleOption, runBacktest } from './backtest.ts';
import { batchField, type EngineJob, PATH_FIELDS, runPaths } from './engine.ts';
import { runJob } from './pool.ts';
import { parseBacktestFile } from './spec.ts';

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
