import { randomBytes } from 'node:crypto';
import { parseConfig } from '@xhedge/config';
import { Dec, isUsdLike, ManualClock } from '@xhedge/core';
import {
  createPaperBridgeForVenues,
  layerZeroCostModel,
  routingBridgeCost,
  startTransferWorker,
} from '@xhedge/crosschain';
import { redisForTests } from '@xhedge/crosschain/testing';
import {
  clientOrderIdFor,
  ExecutionService,
  orderQueueName,
  Reconciler,
  type RedisEndpoint,
  startWorkers,
} from '@xhedge/execution';
import { controlStack } from '@xhedge/execution/testing';
import { type CollateralSource, type QuoteTarget, quoteVenues, routeDelta } from '@xhedge/routing';
import { createMarketSimulator } from '@xhedge/sim';
import { Ledger, openDatabase } from '@xhedge/store';
import type { OrderRequest, VenueAdapter } from '@xhedge/venue';
import { createPaperVenues, type PaperVenue } from '@xhedge/venue-paper';
import { FlowProducer, Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { submitPlanWithTransfers } from './submit-with-transfers.ts';

/**
 * Issue 10 acceptance: a SOL delta that routing sends to the Solana paper venue (the only one listing
 * SOL perps here) while that venue is short of margin and the collateral sits on Arbitrum. Routing
 * (with the LayerZero-like bridge cost model) plans a USDC move; the move and the hedge run as one
 * BullMQ flow (PaperBridge transfer child, execution order job parent, real execution workers); no
 * order reaches the Solana venue before delivery.
 */
const PROFILE = `
version: 1
name: crosschain-e2e
underlyings: [{ symbol: SOL, quote: USD }, { symbol: ETH, quote: USD }]
venues:
  - { id: gmx-arb, kind: paper-gmx, chain: "evm:42161", params: { underlyings: [ETH] } }
  - { id: drift-sol, kind: paper-drift, chain: "solana:mainnet-beta" }
  - { id: uni-eth, kind: paper-spot-amm, chain: "evm:1", params: { underlyings: [ETH] } }
book:
  source: config
  positions: []
  balances:
    - { venue: gmx-arb, asset: USDC, amount: 1000000 }
    - { venue: drift-sol, asset: USDC, amount: 100 }
    - { venue: uni-eth, asset: USDC, amount: 500000 }
market:
  seed: 11
  process: gbm
  speed: 1
  underlyings: { SOL: { spot: 180, vol: 0.9 }, ETH: { spot: 3500, vol: 0.7 } }
  correlations: { ETH/SOL: 0.75 }
policy:
  default: { kind: band, bandDelta: 1 }
limits:
  maxOrderNotionalUsd: 1000000
  maxHedgeNotionalPerWindowUsd: 10000000
`;

/** 2026-01-05T00:10Z: fixed, and far from an hour boundary (Drift-style funding settles on the hour). */
const START_MS = Date.UTC(2026, 0, 5, 0, 10);
const HEDGE_SOL = 100;

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function usdc(v: VenueAdapter): Promise<InstanceType<typeof Dec>> {
  const bs = await v.fetchBalances();
  return new Dec(bs.find((b) => b.asset === 'USDC')?.amount ?? 0);
}

/** Routing inputs the way the run builds them: each venue's perp for the underlying, free USD, position. */
async function routeTargets(venues: readonly PaperVenue[], underlying: string): Promise<QuoteTarget[]> {
  const out: QuoteTarget[] = [];
  for (const adapter of venues) {
    const market = (await adapter.loadMarkets()).find(
      (m) => m.active && m.instrument.underlying === underlying && m.instrument.kind === 'perp',
    );
    if (!market) continue;
    const balances = await adapter.fetchBalances();
    out.push({
      adapter,
      venue: adapter.id,
      chain: adapter.chain,
      instrument: market.instrument.id,
      minSizeBase: Number(market.minSizeBase),
      sizeStepBase: Number(market.sizeStepBase),
      priceTickUsd: Number(market.priceTickUsd),
      positionBase: 0,
      freeCollateralUsd: balances
        .filter((b) => isUsdLike(b.asset))
        .reduce((s, b) => s + (b.available ?? b.amount), 0),
      marginFraction: 0.1,
    });
  }
  return out;
}

/** One scenario's world: paper venues on a manual clock, the routed plan, execution and the bridge. */
async function harness(shared: { redis: RedisEndpoint; ledger: Ledger; clock: ManualClock }) {
  const { redis, ledger, clock } = shared;
  const config = parseConfig(PROFILE, 'crosschain-e2e');
  const m = config.market;
  if (!m) throw new Error('profile has a market section');
  const market = createMarketSimulator({
    underlyings: m.underlyings,
    correlations: m.correlations,
    seed: m.seed,
    clock,
  });
  const venues = createPaperVenues({ config, market, clock });
  const byId = (id: string) => {
    const v = venues.find((x) => x.id === id);
    if (!v) throw new Error(`no venue ${id}`);
    return v;
  };
  const gmx = byId('gmx-arb');
  const drift = byId('drift-sol');

  // ---- routing: the real router, the LayerZero-like bridge model, a margin shortfall on Solana ----
  const costModel = layerZeroCostModel();
  const targets = await routeTargets(venues, 'SOL');
  expect(targets.map((t) => t.venue)).toEqual(['drift-sol']);
  const quoted = await quoteVenues(targets, { side: 'buy', sizeBase: HEDGE_SOL });
  const sources: CollateralSource[] = [];
  for (const v of venues) {
    const free = (await v.fetchBalances()).find((b) => b.asset === 'USDC');
    if (free) sources.push({ venue: v.id, chain: v.chain, asset: 'USDC', availableUsd: free.available ?? 0 });
  }
  const [mark] = await drift.fetchMarks(['SOL-USD:PERP']);
  if (!mark) throw new Error('no SOL mark');
  const routed = routeDelta(
    {
      planId: `plan-xc-${randomBytes(3).toString('hex')}`,
      underlying: 'SOL',
      deltaBase: HEDGE_SOL,
      referencePriceUsd: mark.markPriceUsd,
      urgency: 'normal',
      reason: 'book is short SOL delta',
      createdAtMs: clock.nowMs(),
    },
    quoted.venues,
    { bridge: routingBridgeCost(costModel), collateralSources: sources },
  );
  const plan = { ...routed, reason: 'book is short SOL delta', urgency: 'normal' as const };
  const leg = plan.legs[0];
  const transfer = plan.transfers[0];
  if (!leg || !transfer) throw new Error(`plan has no leg or no transfer: ${plan.notes.join('; ')}`);

  // ---- execution: real controls, breakers, kill switch, order workers; the transfer worker ----
  const prefix = `xhxc${randomBytes(4).toString('hex')}`;
  const cmd = redis.client();
  const subscriber = redis.client();
  const events: string[] = [];
  const placed: OrderRequest[] = [];
  const driftUsdcAtSend: InstanceType<typeof Dec>[] = [];
  // A transparent wrapper: records every order that reaches the Solana venue, and its USDC then.
  const countedDrift = new Proxy(drift, {
    get(target, prop, recv) {
      const val = Reflect.get(target, prop, recv);
      if (prop === 'placeOrder' && typeof val === 'function')
        return async (req: OrderRequest) => {
          events.push('placeOrder');
          placed.push(req);
          driftUsdcAtSend.push(await usdc(target));
          return val.call(target, req);
        };
      return typeof val === 'function' ? val.bind(target) : val;
    },
  });
  const { base } = await controlStack({
    redis,
    cmd,
    prefix,
    ledger,
    limits: config.limits,
    breakers: config.breakers,
    clock,
  });
  const service = new ExecutionService(base);
  const pool = await startWorkers({
    ...base,
    venues: new Map<string, VenueAdapter>([['drift-sol', countedDrift]]),
    subscriber,
    pollIntervalMs: 20,
  });
  const bridge = createPaperBridgeForVenues(venues, clock, { costModel });
  bridge.tracker.onChange((r) => events.push(`transfer:${r.state}`));
  const transferWorker = startTransferWorker({
    executor: bridge,
    connection: redis.options,
    prefix,
    recheckMs: 25,
    // A transfer that failed for good closes its hedge in the ledger, so nothing re-drives it.
    onFailed: async ({ parentJobId, transfer, error }) => {
      if (parentJobId === undefined) return;
      await ledger.transition(clientOrderIdFor(parentJobId), 'cancelled', {
        actor: 'transfer-worker',
        patch: { error: `collateral transfer ${transfer.transferId} failed: ${error}` },
      });
    },
  });
  const flows = new FlowProducer({ connection: redis.options, prefix });
  const orders = new Queue(orderQueueName('drift-sol'), { connection: redis.options, prefix });
  return {
    venues,
    gmx,
    drift,
    costModel,
    mark,
    plan,
    leg,
    transfer,
    prefix,
    cmd,
    service,
    events,
    placed,
    driftUsdcAtSend,
    bridge,
    orders,
    state: async () => (await bridge.tracker.get(transfer.id))?.state,
    submit: () => submitPlanWithTransfers({ plan, service, ledger, flows, prefix }),
    async close() {
      await transferWorker.close();
      await pool.close();
      await flows.close();
      await orders.close();
      await service.close();
      subscriber.disconnect();
      const keys = await cmd.keys(`${prefix}:*`);
      if (keys.length) await cmd.del(...keys);
      cmd.disconnect();
    },
  };
}

describe('cross-chain hedge on paper venues: transfer, then hedge, as one BullMQ flow', () => {
  const clock = new ManualClock(START_MS);
  let redis: RedisEndpoint;
  let ledger: Ledger;
  beforeAll(async () => {
    redis = await redisForTests('crosschain e2e');
    ledger = new Ledger(await openDatabase(), { clock });
  });
  afterAll(async () => {
    await ledger?.close();
    await redis?.close();
  });

  it('routes to the Solana venue, moves USDC from Arbitrum first, and sends the order only after delivery', async () => {
    const h = await harness({ redis, ledger, clock });
    const { plan, leg, transfer, gmx, drift, placed, orders } = h;
    try {
      expect(plan.legs).toHaveLength(1);
      expect(plan.transfers).toHaveLength(1);
      expect(leg).toMatchObject({ venue: 'drift-sol', side: 'buy', dependsOn: [transfer.id] });
      expect(Number(leg.sizeBase)).toBe(HEDGE_SOL);
      // Arbitrum beats Ethereum L1 as the source: cheaper and faster under the LayerZero-like model.
      const arbToSol = h.costModel.estimate({
        srcChain: 'evm:42161',
        dstChain: 'solana:mainnet-beta',
        asset: 'USDC',
        amount: Number(transfer.amount),
      });
      expect(transfer).toMatchObject({ fromVenue: 'gmx-arb', toVenue: 'drift-sol', asset: 'USDC' });
      expect(transfer.feeUsd).toBeCloseTo(arbToSol.feeUsd, 12);
      expect(plan.legCosts[0]?.bridgeFeeUsd).toBeCloseTo(arbToSol.feeUsd, 12);
      // The move covers the margin the router asked for: size × price × 10 % × 1.2 − free collateral.
      expect(Number(transfer.amount)).toBeCloseTo(HEDGE_SOL * h.mark.markPriceUsd * 0.1 * 1.2 - 100, 1);

      const gmxBefore = await usdc(gmx);
      const driftBefore = await usdc(drift);
      const cid = clientOrderIdFor(leg.id);
      expect(await h.submit()).toEqual([{ intentId: leg.id, clientOrderId: cid, outcome: 'queued' }]);

      // Sent: Arbitrum is debited (amount + fee) at once; the hedge waits for its child.
      await until('transfer sent', async () => (await h.state()) === 'sent');
      const fee = new Dec(transfer.feeUsd.toFixed(12));
      expect((await usdc(gmx)).eq(gmxBefore.sub(transfer.amount).sub(fee))).toBe(true);
      expect((await usdc(drift)).eq(driftBefore)).toBe(true);
      expect(await orders.getJobState(leg.id)).toBe('waiting-children');
      expect((await ledger.getOrder(cid))?.status).toBe('queued');

      // Verified (DVNs done, executor not yet): still nothing may reach the Solana venue.
      const sentAt = clock.nowMs();
      clock.advance(Math.ceil(arbToSol.latencyMs * 0.6));
      await until('transfer verified', async () => (await h.state()) === 'verified');
      // Several re-checks of the transfer pass in real time; the hedge must stay parked meanwhile.
      await new Promise((r) => setTimeout(r, 150));
      expect(placed).toEqual([]);
      expect(await orders.getJobState(leg.id)).toBe('waiting-children');

      // Delivered: the child completes, BullMQ releases the parent, the execution worker places it once.
      clock.advance(sentAt + arbToSol.latencyMs - clock.nowMs());
      const filled = await until('hedge filled', async () => {
        const o = await ledger.getOrder(cid);
        return o?.status === 'filled' ? o : undefined;
      });
      expect(h.events).toEqual([
        'transfer:planned',
        'transfer:sent',
        'transfer:verified',
        'transfer:delivered',
        'placeOrder',
      ]);
      expect(placed).toHaveLength(1);
      expect(placed[0]).toMatchObject({ clientOrderId: cid, instrument: 'SOL-USD:PERP', side: 'buy' });
      expect(h.driftUsdcAtSend[0]?.eq(driftBefore.add(transfer.amount))).toBe(true);
      expect(filled.filledSizeBase).toBe(String(HEDGE_SOL));
      await until('hedge job completed', async () => (await orders.getJobState(leg.id)) === 'completed');

      // Exactly one fill at the venue and in the ledger; the position is the hedge.
      const fills = await drift.fetchFills();
      expect(fills).toHaveLength(1);
      expect(await ledger.listFills({ clientOrderId: cid })).toHaveLength(1);
      const [pos] = await drift.fetchPositions();
      expect(pos).toMatchObject({ instrument: 'SOL-USD:PERP', sizeBase: HEDGE_SOL });

      // Money: Arbitrum paid amount + bridge fee; Solana got the amount and paid the trade's fee and gas.
      const fill = fills[0];
      if (!fill) throw new Error('one fill');
      const tradeCost = new Dec(fill.feeUsd.toFixed(6)).add(fill.gasUsd.toFixed(6));
      expect((await usdc(gmx)).eq(gmxBefore.sub(transfer.amount).sub(fee))).toBe(true);
      const driftAfter = await usdc(drift);
      expect(driftAfter.sub(driftBefore.add(transfer.amount).sub(tradeCost)).abs().lte(1e-6)).toBe(true);
      const record = await h.bridge.tracker.get(transfer.id);
      expect(record).toMatchObject({
        state: 'delivered',
        srcEid: 30110,
        dstEid: 30168,
        feeUsd: transfer.feeUsd,
      });
      expect(record?.guid).toMatch(/^0x[0-9a-f]{64}$/);
    } finally {
      await h.close();
    }
  });

  it('a transfer that fails fails its hedge: nothing reaches the venue, and the reconciler leaves it alone', async () => {
    const h = await harness({ redis, ledger, clock });
    const { leg, transfer, gmx, placed, orders } = h;
    try {
      // The Arbitrum collateral is gone between planning and sending: the bridge cannot debit it.
      const free = (await gmx.fetchBalances()).find((b) => b.asset === 'USDC')?.available ?? 0;
      await gmx.debitBalance('USDC', free);
      const cid = clientOrderIdFor(leg.id);
      expect((await h.submit())[0]?.outcome).toBe('queued');
      await until('hedge job failed', async () => (await orders.getJobState(leg.id)) === 'failed');
      expect(await h.state()).toBe('failed');
      const order = await ledger.getOrder(cid);
      expect(order?.status).toBe('cancelled');
      expect(order?.error).toContain(`collateral transfer ${transfer.id} failed`);
      // The reconciler re-drives open orders with failed jobs; this one is closed, so it stays failed.
      const sweep = await new Reconciler({
        service: h.service,
        ledger,
        redis: h.cmd,
        prefix: h.prefix,
        clock,
        minAgeMs: 0,
      }).sweep();
      expect(sweep.redriven).toBe(0);
      await new Promise((r) => setTimeout(r, 150));
      expect(await orders.getJobState(leg.id)).toBe('failed');
      expect(placed).toEqual([]);
      expect(await h.drift.fetchFills()).toEqual([]);
    } finally {
      await h.close();
    }
  });
});
