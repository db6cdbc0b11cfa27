import { layerZeroCostModel } from '@xhedge/crosschain';
import { describe, expect, it } from 'vitest';
import { planFromFile, runBacktest } from './backtest.ts';
import { batchField, type EngineEvent, type EngineJob, runPaths } from './engine.ts';
import { runJob } from './pool.ts';
import { parseBacktestFile } from './spec.ts';
import { specProblems } from './test-helpers.ts';

/** A short-option book whose only hedge venue is on Solana; `where` says where the USDC sits. */
function yaml(where: 'arbitrum' | 'solana', extra = ''): string {
  const arb = where === 'arbitrum' ? 2_000_000 : 0;
  const sol = where === 'solana' ? 2_000_000 : 0;
  return `
version: 1
name: collateral-${where}
book:
  options:
    - { type: call, moneyness: 1.0, expiryDays: 10, size: -20 }
    - { type: put, moneyness: 0.97, expiryDays: 14, size: -10 }
market: { spot: 100000, vol: 0.6, rate: 0.03, process: { kind: gbm } }
horizonDays: 3
stepHours: 1
paths: 6
seed: 11
riskAversion: 0.0001
routing: live
venues:
  - { id: arb-treasury, chain: "evm:42161", feeBps: 0, hedges: false, collateralUsd: ${arb} }
  - { id: drift-sol, chain: "solana:mainnet-beta", feeBps: 10, gasUsd: 0.0005, collateralUsd: ${sol}, marginFraction: 0.1 }
policies:
  band: { kind: band, bandDelta: 0.5 }
${extra}`;
}

function jobFor(where: 'arbitrum' | 'solana'): EngineJob {
  const plan = planFromFile(parseBacktestFile(yaml(where)), '.');
  return { ...plan.base, policy: (plan.policies[0] as { policy: EngineJob['policy'] }).policy };
}

async function eventsOf(job: EngineJob): Promise<EngineEvent[]> {
  const events: EngineEvent[] = [];
  await runPaths(job, 0, job.paths, { onEvent: (e) => events.push(e) });
  return events;
}

describe('collateral and the paper bridge', () => {
  it('collateral on Arbitrum, hedge venue on Solana: transfers first, pays the bridge fee, hedges only on delivery', async () => {
    const job = jobFor('arbitrum');
    const events = await eventsOf(job);
    const fee = layerZeroCostModel().estimate({
      srcChain: 'evm:42161',
      dstChain: 'solana:mainnet-beta',
      asset: 'USDC',
      amount: 1,
    }).feeUsd;
    const sent = events.filter((e) => e.type === 'transfer-sent');
    expect(sent.length).toBeGreaterThan(0);
    for (const p of new Set(events.map((e) => e.path))) {
      const mine = events.filter((e) => e.path === p);
      const deliveredAt = new Map<string, number>();
      const sentAt = new Map<string, number>();
      for (const e of mine) {
        if (e.type === 'transfer-sent') {
          expect(e).toMatchObject({ fromVenue: 'arb-treasury', toVenue: 'drift-sol' });
          expect(e.feeUsd).toBeCloseTo(fee, 12);
          // Margin for the hedge (10% of its notional) plus the router's buffer.
          expect(e.amountUsd).toBeGreaterThan(0);
          sentAt.set(e.transferId, e.step);
        }
        if (e.type === 'transfer-delivered') deliveredAt.set(e.transferId, e.step);
      }
      const fills = mine.filter((e) => e.type === 'fill');
      // Nothing can trade on Solana before the first collateral arrives.
      const first = fills[0];
      expect(first?.type === 'fill' && first.afterTransfer).toBeTruthy();
      for (const f of fills) {
        if (f.type !== 'fill' || f.afterTransfer === undefined) continue;
        const d = deliveredAt.get(f.afterTransfer);
        expect(d).toBe(f.step);
        expect(f.step).toBeGreaterThan(sentAt.get(f.afterTransfer) as number);
      }
    }

    const plan = planFromFile(parseBacktestFile(yaml('arbitrum')), '.');
    const { report } = await runBacktest(plan, { workers: 1 });
    const r = report.policies[0];
    expect(r?.transfers).toBeCloseTo(sent.length / job.paths, 12);
    expect(r?.attribution.bridgeUsd).toBeCloseTo((-sent.length * fee) / job.paths, 9);
    expect(r?.meanCostUsd).toBeGreaterThan(-(r?.attribution.feesUsd ?? 0));
  });

  it('collateral already on Solana: no transfers, no bridge fees, the same hedges traded at once', async () => {
    const job = jobFor('solana');
    const events = await eventsOf(job);
    expect(events.some((e) => e.type === 'transfer-sent')).toBe(false);
    const fills = events.filter((e) => e.type === 'fill');
    expect(fills.length).toBeGreaterThan(job.paths);
    expect(fills.every((e) => e.type === 'fill' && e.afterTransfer === undefined)).toBe(true);
    const b = await runPaths(job, 0, job.paths);
    expect(Array.from(batchField(b, 'transfers'))).toEqual(new Array(job.paths).fill(0));
    expect(Array.from(batchField(b, 'bridgeUsd'))).toEqual(new Array(job.paths).fill(0));
  });

  it('the attribution, bridge fees included, adds up to the P&L; same result with worker threads', async () => {
    const job = jobFor('arbitrum');
    const one = await runJob(job, { workers: 1 });
    const two = await runJob(job, { workers: 2 });
    expect(Array.from(two.data)).toEqual(Array.from(one.data));
    const f = (n: Parameters<typeof batchField>[1], i: number) => batchField(one, n)[i] as number;
    for (let i = 0; i < one.count; i++) {
      const parts =
        f('deltaUsd', i) +
        f('gammaUsd', i) +
        f('thetaUsd', i) +
        f('vegaUsd', i) +
        f('residualUsd', i) +
        f('fundingUsd', i) -
        f('feesUsd', i) -
        f('slippageUsd', i) -
        f('gasUsd', i) -
        f('bridgeUsd', i) -
        f('liquidationUsd', i);
      expect(parts).toBeCloseTo(f('pnlUsd', i), 6);
      expect(f('transfers', i)).toBeGreaterThan(0);
      // 2M USDC of treasury for a ~1.5M notional hedge: the router's buffer keeps margin well clear.
      expect(f('liquidations', i)).toBe(0);
    }
  });

  it('rejects collateral settings that cannot be simulated, naming the field', () => {
    const bad = specProblems;
    expect(bad(yaml('arbitrum').replace('routing: live', 'routing: cheapest'))).toMatch(
      /routing: .*only with routing: live/,
    );
    expect(bad(yaml('arbitrum').replace('collateralUsd: 2000000', 'collateralUsd: -5'))).toMatch(
      /venues\.0\.collateralUsd|venues\[0\]\.collateralUsd/,
    );
    expect(
      bad(yaml('arbitrum').replace(', hedges: false, collateralUsd: 2000000', ', hedges: false')),
    ).toMatch(/collateral account and needs collateralUsd/);
    expect(
      bad(
        yaml('arbitrum')
          .replace(', hedges: false', '')
          .replaceAll(/, collateralUsd: \d+/g, ''),
      ),
    ).toMatch(/marginFraction applies only when collateral is modelled/);
    expect(bad(yaml('arbitrum').replace('feeBps: 10, gasUsd', 'feeBps: 10, hedges: false, gasUsd'))).toMatch(
      /at least one venue must take hedges/,
    );
  });
});
