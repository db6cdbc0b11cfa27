import { PolicyConfig } from '@xhedge/config';
import { parseOrThrow } from '@xhedge/core';
import { describe, expect, it } from 'vitest';
import { planFromFile, runBacktest } from './backtest.ts';
import { batchField, type EngineEvent, type EngineJob, type PathBatch, runPaths } from './engine.ts';
import { BacktestInputError } from './errors.ts';
import { parseBacktestFile } from './spec.ts';
import { specProblems } from './test-helpers.ts';

/**
 * A book of 10 short deep in-the-money calls (strike 10% of spot, 20% vol: delta exactly 1 on every
 * path below), so a band policy hedges +10 BTC at the first step and has nothing to do afterwards.
 */
function yaml(venues: string, extra = ''): string {
  return `
version: 1
name: liquidation
book:
  options:
    - { type: call, moneyness: 0.1, expiryDays: 30, size: -10 }
market: { spot: 100000, vol: 0.2, rate: 0, process: { kind: gbm } }
horizonDays: 1
stepHours: 1
paths: 2
riskAversion: 0.0001
routing: live
unwindAtEnd: false
venues:
${venues}
policies:
  band: { kind: band, bandDelta: 0.5, minTradeUsd: 0 }
${extra}`;
}

const SPOT0 = 100_000;
const STEPS = 24;
const FEE = 5e-4; // feeBps 5
const HALF_SPREAD = 1e-4; // halfSpreadBps 1

/** A deterministic path: spot falls 1% of its start per hour for `dropSteps` hours, then stays. */
function fallingPrices(dropSteps: number): Float64Array {
  return Float64Array.from({ length: STEPS + 1 }, (_, k) => SPOT0 * (1 - 0.01 * Math.min(k, dropSteps)));
}

function solVenue(collateralUsd: number, extra = ''): string {
  return `  - { id: drift-sol, chain: "solana:mainnet-beta", feeBps: 5, halfSpreadBps: 1, gasUsd: 0.0005, collateralUsd: ${collateralUsd}${extra} }`;
}

/** One path of the spec over `prices` (the same arithmetic the engine's replay uses for spots). */
async function replay(
  text: string,
  prices: Float64Array,
  decisions: EngineJob['decisions'] = 'kernel',
): Promise<{ batch: PathBatch; events: EngineEvent[]; job: EngineJob }> {
  const plan = planFromFile(parseBacktestFile(text), '.');
  const job: EngineJob = {
    ...plan.base,
    paths: 1,
    decisions,
    process: { kind: 'replay', prices, barsPerStep: 1 },
    policy: (plan.policies[0] as { policy: EngineJob['policy'] }).policy,
  };
  const events: EngineEvent[] = [];
  const batch = await runPaths(job, 0, 1, { onEvent: (e) => events.push(e) });
  return { batch, events, job };
}

const one = (b: PathBatch, f: Parameters<typeof batchField>[1]): number => batchField(b, f)[0] as number;

/** The sum of the P&L attribution parts of path i, every cost (liquidation penalties included) negative. */
function attributed(b: PathBatch, i: number): number {
  const f = (n: Parameters<typeof batchField>[1]) => batchField(b, n)[i] as number;
  return (
    f('deltaUsd') +
    f('gammaUsd') +
    f('thetaUsd') +
    f('vegaUsd') +
    f('residualUsd') +
    f('fundingUsd') -
    f('feesUsd') -
    f('slippageUsd') -
    f('gasUsd') -
    f('bridgeUsd') -
    f('liquidationUsd')
  );
}

describe('liquidation when a venue runs out of maintenance margin', () => {
  const cases = [
    { label: 'defaults (maintenance half of 10%, penalty 1%)', extra: '', mm: 0.05, penalty: 0.01 },
    {
      label: 'explicit maintenance 8%, penalty 0.5%',
      extra: ', maintenanceMarginFraction: 0.08, liquidationPenaltyFraction: 0.005',
      mm: 0.08,
      penalty: 0.005,
    },
  ];
  for (const c of cases) {
    it(`liquidates exactly at the first step equity < maintenance, penalty to the cent: ${c.label}`, async () => {
      const collateralUsd = 120_000;
      const prices = fallingPrices(12);
      const { batch, events } = await replay(yaml(solVenue(collateralUsd, c.extra)), prices);

      // Independently: +10 BTC at step 0 pays fee and half-spread out of the venue's collateral, then the
      // perp's P&L settles into it every step; liquidation at the first step where the equity is below
      // the maintenance fraction of the position's notional at that step's price.
      const spots = Array.from(prices, (p) => (SPOT0 * p) / (prices[0] as number));
      const size = 10;
      const openCost = (FEE + HALF_SPREAD) * size * SPOT0;
      let expectedStep = -1;
      let equityAt = 0;
      for (let k = 1; k <= STEPS; k++) {
        const equity = collateralUsd - openCost + size * ((spots[k] as number) - SPOT0);
        if (equity < size * (spots[k] as number) * c.mm) {
          expectedStep = k;
          equityAt = equity;
          break;
        }
      }
      expect(expectedStep).toBeGreaterThan(1); // the case is not trivial: some steps pass first
      const fills = events.filter((e) => e.type === 'fill');
      expect(fills[0]).toMatchObject({ step: 0, sizeBase: size });
      const liq = events.filter((e) => e.type === 'liquidation');
      // The first liquidation; the re-hedge (on what margin is left) may be liquidated again later.
      const e = liq[0] as Extract<EngineEvent, { type: 'liquidation' }>;
      const sLiq = spots[expectedStep] as number;
      expect(e.step).toBe(expectedStep);
      expect(e.venue).toBe('drift-sol');
      expect(e.sizeBase).toBe(-size);
      expect(e.spotUsd).toBe(sLiq);
      expect(e.equityUsd).toBeCloseTo(equityAt, 2);
      expect(e.maintenanceUsd).toBeCloseTo(size * sLiq * c.mm, 2);
      expect(e.penaltyUsd).toBeCloseTo(size * sLiq * c.penalty, 2);
      expect(e.slippageUsd).toBeCloseTo(size * sLiq * HALF_SPREAD, 2);
      expect(one(batch, 'liquidations')).toBe(liq.length);
      let penalties = 0;
      for (const x of liq) {
        if (x.type !== 'liquidation') continue;
        expect(x.equityUsd).toBeLessThan(x.maintenanceUsd);
        expect(x.penaltyUsd).toBeCloseTo(Math.abs(x.sizeBase) * x.spotUsd * c.penalty, 9);
        penalties += x.penaltyUsd;
      }
      expect(one(batch, 'liquidationUsd')).toBeCloseTo(penalties, 9);
      // No trade of the hedger's own between the opening and the liquidation: the close is not a trade.
      expect(fills.every((f) => f.step === 0 || f.step >= expectedStep)).toBe(true);
      // The hedge was gone, and the policy saw it at once: it re-hedged at the liquidation step (with what
      // margin was left, so less than the full 10 BTC).
      const rehedge = fills.find((f) => f.step === expectedStep);
      expect(rehedge?.sizeBase).toBeGreaterThan(0);
      expect(rehedge?.sizeBase).toBeLessThan(size);
      expect(attributed(batch, 0)).toBeCloseTo(one(batch, 'pnlUsd'), 6);
    });
  }

  it('a well-collateralised venue is never liquidated, and then the margin settings change nothing', async () => {
    const prices = fallingPrices(12);
    const rich = await replay(yaml(solVenue(400_000)), prices);
    expect(rich.events.some((e) => e.type === 'liquidation')).toBe(false);
    expect(one(rich.batch, 'liquidations')).toBe(0);
    expect(one(rich.batch, 'liquidationUsd')).toBe(0);
    const strict = await replay(
      yaml(solVenue(400_000, ', maintenanceMarginFraction: 0.1, liquidationPenaltyFraction: 0.5')),
      prices,
    );
    expect(Array.from(strict.batch.data)).toEqual(Array.from(rich.batch.data));
    // The same venue thinly collateralised on the same path is liquidated (the path is adverse enough).
    const thin = await replay(yaml(solVenue(120_000)), prices);
    expect(one(thin.batch, 'liquidations')).toBe(1);
  });

  it('specs without collateral never liquidate (no margin model): every path reports 0', async () => {
    const text = yaml(
      '  - { id: drift-sol, chain: "solana:mainnet-beta", feeBps: 5, halfSpreadBps: 1 }',
    ).replace('paths: 2', 'paths: 8');
    const plan = planFromFile(parseBacktestFile(text), '.');
    const job: EngineJob = {
      ...plan.base,
      // Unlimited margin through a 24% fall that liquidates 120k of collateral (above) at 8%.
      process: { kind: 'replay', prices: fallingPrices(24), barsPerStep: 1 },
      paths: 1,
      policy: (plan.policies[0] as { policy: EngineJob['policy'] }).policy,
    };
    const b = await runPaths(job, 0, 1);
    expect(one(b, 'trades')).toBeGreaterThan(0);
    expect(one(b, 'liquidations')).toBe(0);
    expect(one(b, 'liquidationUsd')).toBe(0);
    const sim = await runPaths({ ...plan.base, policy: job.policy }, 0, plan.base.paths);
    expect(Array.from(batchField(sim, 'liquidations'))).toEqual(new Array(plan.base.paths).fill(0));
    expect(Array.from(batchField(sim, 'liquidationUsd'))).toEqual(new Array(plan.base.paths).fill(0));
  });

  it('collateral bridged in from a treasury before the hedge trades keeps the venue out of liquidation', async () => {
    // The Solana venue alone holds 80k USDC: 8 BTC at the full 10% initial margin, liquidated on a 6% fall.
    // With a treasury on Arbitrum the router bridges the margin of the whole 10 BTC plus its buffer first
    // (the hedge waits for delivery), and the same fall leaves the venue above maintenance.
    const prices = fallingPrices(6);
    const alone = await replay(yaml(solVenue(80_000)), prices);
    expect(alone.events.some((e) => e.type === 'transfer-sent')).toBe(false);
    expect(one(alone.batch, 'liquidations')).toBe(1);
    expect(one(alone.batch, 'liquidationUsd')).toBeGreaterThan(0);

    const treasury =
      '  - { id: arb-treasury, chain: "evm:42161", feeBps: 0, hedges: false, collateralUsd: 200000 }';
    const bridged = await replay(yaml(`${treasury}\n${solVenue(80_000)}`), prices);
    const sent = bridged.events.filter((e) => e.type === 'transfer-sent');
    expect(sent).toHaveLength(1);
    const delivered = bridged.events.find((e) => e.type === 'transfer-delivered');
    const hedged = bridged.events.find((e) => e.type === 'fill');
    expect(hedged?.type === 'fill' && hedged.afterTransfer).toBe(delivered?.transferId);
    // Delivered before the fall is over: in time.
    expect(delivered?.step).toBeLessThan(6);
    expect(one(bridged.batch, 'liquidations')).toBe(0);
    expect(one(bridged.batch, 'liquidationUsd')).toBe(0);
  });

  it('the kernel and the live HedgeStrategy liquidate the same paths at the same steps', async () => {
    const text = `
version: 1
name: thin-gbm
book:
  options:
    - { type: call, moneyness: 1.0, expiryDays: 10, size: -20 }
market: { spot: 100000, vol: 0.8, rate: 0.03, process: { kind: gbm } }
horizonDays: 3
stepHours: 1
paths: 24
seed: 4
riskAversion: 0.0001
routing: live
venues:
  - { id: drift-sol, chain: "solana:mainnet-beta", feeBps: 5, halfSpreadBps: 1, gasUsd: 0.0005, collateralUsd: 90000 }
policies:
  band: { kind: band, bandDelta: 0.5 }
`;
    const plan = planFromFile(parseBacktestFile(text), '.');
    const policy = (plan.policies[0] as { policy: EngineJob['policy'] }).policy;
    const run = async (decisions: EngineJob['decisions']) => {
      const events: Extract<EngineEvent, { type: 'liquidation' }>[] = [];
      const batch = await runPaths({ ...plan.base, decisions, policy }, 0, plan.base.paths, {
        onEvent: (e) => {
          if (e.type === 'liquidation') events.push(e);
        },
      });
      return { batch, events };
    };
    const kernel = await run('kernel');
    const live = await run('strategy');
    const counts = Array.from(batchField(kernel.batch, 'liquidations'));
    expect(counts.filter((n) => n > 0).length).toBeGreaterThan(2); // thin margin: several paths liquidate
    expect(counts.filter((n) => n === 0).length).toBeGreaterThan(2); // ... but not all
    expect(Array.from(batchField(live.batch, 'liquidations'))).toEqual(counts);
    expect(live.events.map((e) => [e.path, e.step, e.venue, e.sizeBase])).toEqual(
      kernel.events.map((e) => [e.path, e.step, e.venue, e.sizeBase]),
    );
    const kl = batchField(kernel.batch, 'liquidationUsd');
    const ll = batchField(live.batch, 'liquidationUsd');
    const kp = batchField(kernel.batch, 'pnlUsd');
    const lp = batchField(live.batch, 'pnlUsd');
    for (let i = 0; i < plan.base.paths; i++) {
      expect(ll[i] as number).toBeCloseTo(kl[i] as number, 6);
      expect(lp[i] as number).toBeCloseTo(kp[i] as number, 6);
      expect(attributed(kernel.batch, i)).toBeCloseTo(kp[i] as number, 6);
    }

    // The report: mean count, share of liquidated paths, the penalty as a cost and in the attribution.
    const { report } = await runBacktest(plan, { workers: 1 });
    const r = report.policies[0];
    const liquidated = counts.filter((n) => n > 0).length;
    const meanPenalty = Array.from(kl).reduce((s, x) => s + x, 0) / plan.base.paths;
    expect(r?.liquidations).toBeCloseTo(counts.reduce((s, x) => s + x, 0) / plan.base.paths, 12);
    expect(r?.liquidatedPathShare).toBeCloseTo(liquidated / plan.base.paths, 12);
    expect(r?.liquidationUsd).toBeCloseTo(meanPenalty, 6);
    expect(r?.attribution.liquidationUsd).toBeCloseTo(-meanPenalty, 6);
    const a = r?.attribution;
    expect(r?.meanCostUsd).toBeCloseTo(
      -((a?.feesUsd ?? 0) + (a?.slippageUsd ?? 0) + (a?.gasUsd ?? 0) + (a?.bridgeUsd ?? 0)) + meanPenalty,
      6,
    );
  });
});

describe('margin settings are validated, naming the venue and the field', () => {
  const problems = specProblems;

  it('maintenance above initial margin (set or default), zero or negative, a penalty of 100%', () => {
    expect(problems(yaml(solVenue(1e5, ', marginFraction: 0.05, maintenanceMarginFraction: 0.06')))).toMatch(
      /(venues\.0\.|venues\[0\]\.)maintenanceMarginFraction: venue "drift-sol": maintenanceMarginFraction 0\.06 exceeds its marginFraction 0\.05/,
    );
    expect(problems(yaml(solVenue(1e5, ', maintenanceMarginFraction: 0.2')))).toMatch(
      /"drift-sol": maintenanceMarginFraction 0\.2 exceeds its marginFraction 0\.1 \(default\)/,
    );
    expect(problems(yaml(solVenue(1e5, ', maintenanceMarginFraction: 0')))).toMatch(
      /maintenanceMarginFraction/,
    );
    expect(problems(yaml(solVenue(1e5, ', liquidationPenaltyFraction: 1')))).toMatch(
      /liquidationPenaltyFraction/,
    );
    expect(problems(yaml(solVenue(1e5, ', liquidationPenaltyFraction: -0.01')))).toMatch(
      /liquidationPenaltyFraction/,
    );
    // Equal to the initial margin is allowed.
    expect(() => parseBacktestFile(yaml(solVenue(1e5, ', maintenanceMarginFraction: 0.1')))).not.toThrow();
  });

  it('maintenance and penalty apply only when collateral is modelled', () => {
    const noCollateral = '  - { id: drift-sol, chain: "solana:mainnet-beta", feeBps: 5 }';
    expect(problems(yaml(noCollateral.replace(' }', ', maintenanceMarginFraction: 0.05 }')))).toMatch(
      /maintenanceMarginFraction applies only when collateral is modelled/,
    );
    expect(problems(yaml(noCollateral.replace(' }', ', liquidationPenaltyFraction: 0.01 }')))).toMatch(
      /liquidationPenaltyFraction applies only when collateral is modelled/,
    );
  });

  it('jobs built in code are checked by the engine too', async () => {
    const plan = planFromFile(parseBacktestFile(yaml(solVenue(1e5))), '.');
    const policy = parseOrThrow(PolicyConfig, { kind: 'band', bandDelta: 0.5 }, 'policy');
    const bad = (patch: object): EngineJob => ({
      ...plan.base,
      policy,
      venues: plan.base.venues.map((v) => ({ ...v, ...patch })),
    });
    await expect(runPaths(bad({ maintenanceMarginFraction: 0.2 }), 0, 1)).rejects.toThrow(
      /venue drift-sol: maintenanceMarginFraction must be above 0 and at most marginFraction \(0\.1\), got 0\.2/,
    );
    await expect(runPaths(bad({ maintenanceMarginFraction: Number.NaN }), 0, 1)).rejects.toThrow(
      BacktestInputError,
    );
    await expect(runPaths(bad({ liquidationPenaltyFraction: 1 }), 0, 1)).rejects.toThrow(
      /venue drift-sol: liquidationPenaltyFraction/,
    );
  });
});
