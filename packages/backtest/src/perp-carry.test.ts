import { describe, expect, it } from 'vitest';
import { planFromFile } from './backtest.ts';
import { batchField, type EngineJob, runPaths } from './engine.ts';
import { parseBacktestFile } from './spec.ts';

/**
 * Short 10 at-the-money calls (delta ≈ −5.3), rate 5%, 30 daily steps on a flat spot of 100,000: the
 * band policy buys ≈ 5.3 BTC of perp at the first step and adjusts it as the calls' delta decays; the
 * other policy never hedges. The spot never moves, so the perp leg earns nothing; what separates the
 * two runs is the perp's costs: its fees (real cash, financed to the end) and its funding.
 */
function spec(fundingRatePerHour: number): string {
  return `
version: 1
name: perp-carry
book: { options: [{ type: call, strike: 100000, expiryDays: 60, size: -10 }] }
market: { spot: 100000, vol: 0.5, rate: 0.05, process: { kind: gbm } }
horizonDays: 30
stepHours: 24
paths: 2
riskAversion: 0.0001
routing: cheapest
venues: [{ id: perp, chain: offchain, feeBps: 5, fundingRatePerHour: ${fundingRatePerHour} }]
policies:
  hedged: { kind: band, bandDelta: 0.05, minTradeUsd: 0 }
  none: { kind: band, bandDelta: 1000 }
`;
}

const SPOT = 100_000;
const STEPS = 30;
const RATE = 0.05;
const FEE = 5e-4;

interface Run {
  pnlUsd: number;
  fundingUsd: number;
  /** Hedge fills as [step, sizeBase]. */
  fills: [number, number][];
}

async function run(fundingRatePerHour: number, policyName: string): Promise<Run> {
  const plan = planFromFile(parseBacktestFile(spec(fundingRatePerHour)), '.');
  const policy = plan.policies.find((p) => p.name === policyName)?.policy;
  if (!policy) throw new Error(`no policy ${policyName}`);
  const job: EngineJob = {
    ...plan.base,
    paths: 1,
    policy,
    process: { kind: 'replay', prices: new Float64Array(STEPS + 1).fill(SPOT), barsPerStep: 1 },
  };
  const fills: [number, number][] = [];
  const b = await runPaths(job, 0, 1, {
    onEvent: (e) => {
      if (e.type === 'fill') fills.push([e.step, e.sizeBase]);
    },
  });
  return {
    pnlUsd: batchField(b, 'pnlUsd')[0] as number,
    fundingUsd: batchField(b, 'fundingUsd')[0] as number,
    fills,
  };
}

/**
 * The perp leg's P&L at the end, by hand from the fills: a fee paid at step k leaves cash then and
 * would have earned interest for the n − k steps left; the funding of step k (−position · spot · rate
 * per hour · 24 h) settles at the step's end and earns interest for the n − 1 − k steps after it. No
 * notional: a perp posts margin, it is not bought with cash.
 */
function perpLegByHand(fills: [number, number][], fundingRatePerHour: number): number {
  const g = Math.exp((RATE * 1) / 365);
  let usd = 0;
  for (const [step, size] of fills) usd -= FEE * Math.abs(size) * SPOT * g ** (STEPS - step);
  let pos = 0;
  for (let k = 0; k < STEPS; k++) {
    for (const [step, size] of fills) if (step === k) pos += size;
    usd += -pos * SPOT * fundingRatePerHour * 24 * g ** (STEPS - 1 - k);
  }
  return usd;
}

describe('a perp hedge is not financed at the risk-free rate', () => {
  it('flat spot, zero funding, 5% rate: hedged minus unhedged P&L is the fees (financed), nothing more', async () => {
    const hedged = await run(0, 'hedged');
    const none = await run(0, 'none');
    expect(none.fills).toEqual([]);
    // ≈ +5.3 BTC bought at the first step, ≈ 530,000 USD of notional held for 30 days.
    const [first] = hedged.fills;
    expect(first?.[0]).toBe(0);
    expect(first?.[1] as number).toBeGreaterThan(5);
    const expected = perpLegByHand(hedged.fills, 0);
    // Fees only: ≈ 265 USD at the start and ≈ 265 at the unwind, a few dollars of rebalancing between.
    expect(-expected).toBeGreaterThan(2 * FEE * 5 * SPOT);
    expect(-expected).toBeLessThan(2 * FEE * 6 * SPOT);
    // Financing the notional at 5% as well would take a further ≈ 2,200 USD (530,000 · (e^{0.05·30/365} − 1)).
    expect(hedged.pnlUsd - none.pnlUsd).toBeCloseTo(expected, 6);
  });

  it('flat spot, funding 0.002%/h: the perp leg is its fees and its funding, each financed from when it is paid', async () => {
    const hedged = await run(2e-5, 'hedged');
    const none = await run(2e-5, 'none');
    const expected = perpLegByHand(hedged.fills, 2e-5);
    // Longs pay: ≈ 5.3 BTC · 100,000 · 0.00002 · 720 h ≈ 7,600 USD of funding on top of the fees.
    expect(perpLegByHand(hedged.fills, 2e-5) - perpLegByHand(hedged.fills, 0)).toBeLessThan(-7000);
    expect(hedged.pnlUsd - none.pnlUsd).toBeCloseTo(expected, 6);
    // fundingUsd is interest on cash plus funding: the unhedged run's is interest on the premium alone.
    const fundingPaid = expected - perpLegByHand(hedged.fills, 0);
    const feeInterest =
      perpLegByHand(hedged.fills, 0) + FEE * SPOT * hedged.fills.reduce((s, [, q]) => s + Math.abs(q), 0);
    expect(hedged.fundingUsd - none.fundingUsd).toBeCloseTo(fundingPaid + feeInterest, 6);
  });
});
