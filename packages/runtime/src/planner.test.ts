import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseConfig, type XhedgeConfig } from '@xhedge/config';
import { type HedgeIntent, ManualClock, parseInstrumentId } from '@xhedge/core';
import { BreakerBoard, clientOrderIdFor, ExecutionMetrics } from '@xhedge/execution';
import { hasRedisServer, spawnRedisServer } from '@xhedge/execution/testing';
import { createMarketFromConfig } from '@xhedge/sim';
import { type DatabaseHandle, Ledger, openDatabase, postgresReachable, TEST_PG_URL } from '@xhedge/store';
import type { VenueAdapter } from '@xhedge/venue';
import { createPaperVenues, type PaperVenue } from '@xhedge/venue-paper';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import {
  grossNotionalUsd,
  optionSkew,
  type PlanForExecution,
  planNetDelta,
  TickPlanner,
  type TickPlannerOptions,
  TickSupersededError,
  venuePrices,
} from './planner.ts';
import { createRouter, fitOrderTypes, orderTypeFor } from './router.ts';
import { SnapshotBus } from './snapshot-bus.ts';

const PAPER = readFileSync(new URL('../../../configs/profiles/paper.yaml', import.meta.url), 'utf8');

/** The paper profile with only the venues named kept (and the book entries on them). */
function profile(keep: readonly string[], edit: (c: XhedgeConfig) => void = () => {}): XhedgeConfig {
  const c = parseConfig(PAPER, 'paper.yaml');
  c.venues = c.venues.filter((v) => keep.includes(v.id));
  c.book.positions = c.book.positions.filter((p) => keep.includes(p.venue));
  c.book.balances = c.book.balances.filter((b) => keep.includes(b.venue));
  edit(c);
  return c;
}

interface Harness {
  clock: ManualClock;
  venues: PaperVenue[];
  ledger: Ledger;
  planner: TickPlanner;
  venue(id: string): PaperVenue;
  /** A new planner over the same venues, market, clock and ledger: the process restarted. */
  restart(): TickPlanner;
}

const open: Ledger[] = [];
const schemas: DatabaseHandle[] = [];
afterEach(async () => {
  // a throwaway Postgres schema is dropped while its pool is still open
  for (const h of schemas.splice(0)) await h.dropSchema();
  for (const l of open.splice(0)) await l.close();
});

/** The ledger databases a test runs on: PGlite, and the test Postgres (a throwaway schema) when it answers. */
const pgOk = await postgresReachable();
if (!pgOk)
  console.warn(`[planner tests] Postgres at ${TEST_PG_URL} not reachable: ledger tests run on PGlite only`);
const databases: [string, () => Promise<DatabaseHandle>][] = [
  ['pglite', () => openDatabase({})],
  ...(pgOk
    ? [
        [
          'postgres',
          async () => {
            const h = await openDatabase({
              url: TEST_PG_URL,
              schema: `t_${randomBytes(6).toString('hex')}`,
              poolSize: 4,
            });
            schemas.push(h);
            return h;
          },
        ] as [string, () => Promise<DatabaseHandle>],
      ]
    : []),
];

async function harness(
  config: XhedgeConfig,
  wrap?: (v: PaperVenue) => VenueAdapter,
  breakers?: TickPlannerOptions['breakers'],
  more: Partial<TickPlannerOptions> = {},
  database: () => Promise<DatabaseHandle> = () => openDatabase({}),
): Promise<Harness> {
  const clock = new ManualClock(Date.UTC(2026, 0, 5));
  const market = createMarketFromConfig({
    market: config.market,
    underlyings: config.underlyings.map((u) => u.symbol),
    clock,
  });
  const venues = createPaperVenues({ config, market, clock });
  const ledger = new Ledger(await database(), { clock });
  open.push(ledger);
  const options: TickPlannerOptions = {
    clock,
    market,
    venues: venues.map((v) => wrap?.(v) ?? v),
    ledger,
    bus: new SnapshotBus(ledger),
    currentVenues: async () => config.venues,
    currentPolicy: async () => config.policy,
    route: createRouter({ maxSlippageBps: config.limits.maxSlippageBps, log: () => {} }),
    maxOptionOrderBase: config.limits.maxPositionBase,
    optionPriceBandBps: config.limits.priceBandBps - config.limits.maxSlippageBps,
    staleAfterMs: config.limits.staleAfterMs,
    ...(breakers ? { breakers } : {}),
    log: () => {},
    ...more,
  };
  const planner = new TickPlanner(options);
  const venue = (id: string) => venues.find((v) => v.id === id) as PaperVenue;
  return { clock, venues, ledger, planner, venue, restart: () => new TickPlanner(options) };
}

/** What execution does with a leg, by hand: ledger first, then the venue, the ledger following it. */
async function send(h: Harness, leg: HedgeIntent): Promise<string> {
  const clientOrderId = clientOrderIdFor(leg.id);
  await h.ledger.recordIntent(leg, { clientOrderId, actor: 'test' });
  await h.ledger.transition(clientOrderId, 'queued', { actor: 'test' });
  await h.ledger.transition(clientOrderId, 'sent', { actor: 'test' });
  const o = await h.venue(leg.venue).placeOrder({
    clientOrderId,
    instrument: leg.instrument,
    side: leg.side,
    orderType: leg.orderType,
    sizeBase: leg.sizeBase,
    ...(leg.limitPriceUsd !== undefined ? { limitPriceUsd: leg.limitPriceUsd } : {}),
    reduceOnly: leg.reduceOnly,
  });
  await h.ledger.transition(clientOrderId, o.status === 'filled' ? 'filled' : 'acknowledged', {
    actor: 'test',
    patch: { filledSizeBase: o.filledSizeBase },
  });
  return clientOrderId;
}

/** The worker's reconcile step: asks the venue and writes what it says. */
async function reconcile(h: Harness, venue: string, clientOrderId: string): Promise<string> {
  const o = await h.venue(venue).getOrderByClientId(clientOrderId);
  if (o?.status === 'filled')
    await h.ledger.transition(clientOrderId, 'filled', {
      actor: 'test',
      patch: { filledSizeBase: o.filledSizeBase },
    });
  return o?.status ?? 'missing';
}

const btcPlans = (plans: PlanForExecution[]) => plans.filter((p) => p.underlying === 'BTC');

describe('order types fitted to each venue (regression: ioc sent to gmx-arb, which takes market|limit)', () => {
  it('maps an unsupported type to the nearest one with the same price bound', () => {
    expect(orderTypeFor('ioc', ['market', 'limit', 'ioc'])).toBe('ioc');
    expect(orderTypeFor('ioc', ['market', 'limit'])).toBe('market');
    expect(orderTypeFor('ioc', ['limit'])).toBe('limit');
    expect(orderTypeFor('limit', ['market'])).toBe('market');
    expect(orderTypeFor('market', ['limit', 'ioc'])).toBe('ioc');
  });

  it('routes the BTC hedge to gmx-arb as a market order bounded by its limit, and the venue takes it', async () => {
    const h = await harness(profile(['lyra-arb', 'gmx-arb']));
    const plans = btcPlans(await h.planner.plan());
    const leg = plans[0]?.legs[0];
    expect(leg?.venue).toBe('gmx-arb');
    expect(leg?.orderType).toBe('market');
    expect(Number(leg?.limitPriceUsd)).toBeGreaterThan(0);
    // The GMX-style venue takes it (an ioc would throw InvalidOrderError "order type ioc is not supported").
    const id = await send(h, leg as HedgeIntent);
    expect((await h.ledger.getOrder(id))?.status).toBe('acknowledged');
    const drift = h.venues.find((v) => v.id === 'drift-sol');
    expect(drift).toBeUndefined();
    // Venues that list the planned type keep it.
    const onDrift = fitOrderTypes([{ ...(leg as HedgeIntent), venue: 'x', orderType: 'ioc' }], new Map());
    expect(onDrift[0]?.orderType).toBe('ioc');
  });
});

describe('routing around open breakers', () => {
  it('leaves out a venue whose venue or chain breaker is cooling down; the hedge goes to another', async () => {
    const venuesOf = (plans: PlanForExecution[]) => [
      ...new Set(btcPlans(plans).flatMap((p) => p.legs.map((l) => l.venue))),
    ];
    const cfg = profile(['lyra-arb', 'gmx-arb', 'drift-sol']);
    const asked: string[][] = [];
    const stub = (cooling: (n: string) => boolean): TickPlannerOptions['breakers'] => ({
      observePrice: async () => {},
      observeChain: async () => {},
      coolingDown: async (names) => {
        asked.push([...names]);
        return new Set(names.filter(cooling));
      },
    });
    const free = await harness(
      cfg,
      undefined,
      stub(() => false),
    );
    const usual = venuesOf(await free.planner.plan());
    expect(usual.length).toBeGreaterThan(0);
    const first = usual[0] as string;
    expect(asked.at(-1)).toEqual(expect.arrayContaining([`venue:${first}`]));
    const tripped = await harness(
      cfg,
      undefined,
      stub((n) => n === `venue:${first}`),
    );
    const around = venuesOf(await tripped.planner.plan());
    expect(around.length).toBeGreaterThan(0);
    expect(around).not.toContain(first);
    // a chain's breaker leaves out every venue on that chain
    const chain = cfg.venues.find((v) => v.id === first)?.chain as string;
    const chainDown = await harness(
      cfg,
      undefined,
      stub((n) => n === `chain:${chain}`),
    );
    const onOthers = venuesOf(await chainDown.planner.plan());
    for (const id of onOthers) expect(cfg.venues.find((v) => v.id === id)?.chain).not.toBe(chain);
  });
});

describe('routing around a venue kill switch (regression: the router kept choosing a venue under its kill switch and every plan was blocked)', () => {
  it('leaves out a venue its kill switch is engaged on; the hedge goes to another; a failing read routes as before', async () => {
    const venuesOf = (plans: PlanForExecution[]) => [
      ...new Set(btcPlans(plans).flatMap((p) => p.legs.map((l) => l.venue))),
    ];
    const cfg = profile(['lyra-arb', 'gmx-arb', 'drift-sol']);
    const usual = venuesOf(await (await harness(cfg)).planner.plan());
    expect(usual.length).toBeGreaterThan(0);
    const first = usual[0] as string;
    const logs: string[] = [];
    const killed = await harness(cfg, undefined, undefined, {
      killedVenues: async () => new Set([first]),
      log: (_level, msg) => logs.push(msg),
    });
    const around = venuesOf(await killed.planner.plan());
    expect(around.length).toBeGreaterThan(0);
    expect(around).not.toContain(first);
    expect(logs).toContain('venues left out of routing by their kill switch');
    const failing = await harness(cfg, undefined, undefined, {
      killedVenues: async () => {
        throw new Error('redis down');
      },
      log: (_level, msg) => logs.push(msg),
    });
    expect(venuesOf(await failing.planner.plan())).toEqual(usual);
    expect(logs.filter((m) => m.startsWith('reading the kill switch for routing failed'))).toHaveLength(1);
  }, 120_000);
});

describe('every venue disabled (regression: disabling them all was silent)', () => {
  it('plans nothing and says in the snapshot that no venue is enabled', async () => {
    const cfg = profile(['lyra-arb', 'gmx-arb', 'drift-sol']);
    const h = await harness(cfg, undefined, undefined, {
      currentVenues: async () => cfg.venues.map((v) => ({ ...v, enabled: false })),
    });
    expect(await h.planner.plan()).toEqual([]);
    expect(h.planner.lastSnapshot?.warnings).toContain(
      'no venue is enabled: no hedge can be placed until one is (PUT /v1/venues/{id} with "enabled": true and the version its GET gave)',
    );
  }, 120_000);
});

describe('one tick does not spend a venue collateral twice (regression: each plan read the same balances)', () => {
  it("the ETH hedge is routed on what the BTC hedge leaves of gmx-arb's free collateral", async () => {
    // Collateral on gmx-arb only: $70,000 free. The BTC hedge (6.27 BTC, ≈ $59.5k of margin at 10×) and
    // the ETH hedge (64.6 ETH, ≈ $22.6k) both want it; each plan is routed on balances read before either
    // executes, so without a reservation each saw the whole $70,000.
    const cfg = profile(['lyra-arb', 'gmx-arb', 'drift-sol'], (c) => {
      c.book.balances = c.book.balances
        .filter((b) => b.venue !== 'drift-sol')
        .map((b) => (b.venue === 'gmx-arb' ? { ...b, amount: 79_500 } : b));
    });
    const planNotes: string[] = [];
    const route = createRouter({
      maxSlippageBps: cfg.limits.maxSlippageBps,
      log: (_level, msg, data) => {
        if (msg === 'plan notes') planNotes.push(...((data?.notes as string[] | undefined) ?? []));
      },
    });
    const h = await harness(cfg, undefined, undefined, { route });
    const freeUsd = async (id: string) =>
      (await h.venue(id).fetchBalances()).reduce((s, b) => s + (b.available ?? b.amount), 0);
    const gmxFreeUsd = await freeUsd('gmx-arb');
    expect(gmxFreeUsd).toBe(70_000);
    const positions = await h.venue('gmx-arb').fetchPositions();
    const plans = await h.planner.plan();
    expect(plans.map((p) => p.underlying).sort()).toEqual(['BTC', 'ETH']);
    let marginUsd = 0;
    for (const leg of plans.flatMap((p) => p.legs)) {
      if (leg.venue !== 'gmx-arb') continue;
      // Perps at 10× (the router's margin fraction); the part reducing a position needs none.
      const heldBase = positions.find((p) => p.instrument === leg.instrument)?.sizeBase ?? 0;
      const reducibleBase = heldBase * (leg.side === 'buy' ? 1 : -1) < 0 ? Math.abs(heldBase) : 0;
      marginUsd += Math.max(0, Number(leg.sizeBase) - reducibleBase) * leg.referencePriceUsd * 0.1;
    }
    expect(
      marginUsd,
      `gmx-arb: the tick's plans need $${marginUsd} of margin, $${gmxFreeUsd} is free`,
    ).toBeLessThanOrEqual(gmxFreeUsd);
    // The later plan still goes out, cut to what is left rather than dropped, and says so.
    for (const p of plans) expect(p.legs.some((l) => l.venue === 'gmx-arb')).toBe(true);
    expect(planNotes.filter((n) => n.startsWith('shortfall '))).toHaveLength(1);
  });
});

describe('no duplicate hedge while one is pending', () => {
  it('holds while a keeper order works, also when it fills during the venue read', async () => {
    let fillDuringRead: (() => Promise<void>) | undefined;
    const h = await harness(profile(['lyra-arb', 'gmx-arb']), (v) =>
      v.id !== 'gmx-arb'
        ? v
        : (new Proxy(v, {
            get(target, prop, receiver) {
              if (prop !== 'fetchPositions') {
                const x = Reflect.get(target, prop, receiver);
                return typeof x === 'function' ? x.bind(target) : x;
              }
              // The positions are read first; the keeper executes and the worker records the fill
              // before the tick's other reads finish (the interleaving that hedged twice before).
              return async () => {
                const p = await target.fetchPositions();
                const f = fillDuringRead;
                fillDuringRead = undefined;
                await f?.();
                return p;
              };
            },
          }) as VenueAdapter),
    );
    const first = btcPlans(await h.planner.plan());
    expect(first).toHaveLength(1);
    const leg = first[0]?.legs[0] as HedgeIntent;
    const id = await send(h, leg);
    // Keeper delay not over: the order works, the next tick holds.
    expect(btcPlans(await h.planner.plan())).toHaveLength(0);
    expect(h.planner.lastSnapshot?.underlyings.BTC?.delta).toBeLessThan(-1);
    // Next tick: the keeper executes while the venues are being read.
    fillDuringRead = async () => {
      h.clock.advance(2000);
      expect(await reconcile(h, 'gmx-arb', id)).toBe('filled');
    };
    expect(btcPlans(await h.planner.plan())).toHaveLength(0);
    expect(fillDuringRead).toBeUndefined();
    // Then the fill is in the positions and the book is inside its band: nothing to do.
    expect(btcPlans(await h.planner.plan())).toHaveLength(0);
    expect(Math.abs(h.planner.lastSnapshot?.underlyings.BTC?.delta ?? 99)).toBeLessThan(0.5);
  });
});

describe('vega hedging from the venues option chains', () => {
  it('plans option legs on lyra-arb when vega is outside its band', async () => {
    const h = await harness(
      profile(['lyra-arb', 'gmx-arb'], (c) => {
        c.policy.perUnderlying = {};
        c.policy.default = {
          ...c.policy.default,
          vega: { enabled: true, bandPerVolPoint: 2000, targetPerVolPoint: 0 },
        };
      }),
    );
    const plans = await h.planner.plan();
    const btc = btcPlans(plans)[0];
    const vegaBefore = h.planner.lastSnapshot?.underlyings.BTC?.vegaPerVolPoint ?? 0;
    const deltaBefore = h.planner.lastSnapshot?.underlyings.BTC?.delta ?? Number.NaN;
    // The net-delta check's facts: the book as planned on, and what the legs add (options at their delta)
    expect(btc?.netDelta?.bookDeltaBase).toBe(deltaBefore);
    expect(btc?.netDelta?.spotUsd).toBe(h.planner.lastSnapshot?.underlyings.BTC?.spotUsd);
    const planDelta = btc?.netDelta?.planDeltaBase ?? Number.NaN;
    // The demo book is short options: vega far below −2000 $/pt, so the plan buys options.
    expect(vegaBefore).toBeLessThan(-2000);
    const options = btc?.legs.filter((l) => parseInstrumentId(l.instrument).kind === 'option') ?? [];
    expect(options.length).toBeGreaterThan(0);
    const lyra = h.venue('lyra-arb');
    for (const l of options) {
      expect(l.venue).toBe('lyra-arb');
      expect(l.side).toBe('buy');
      // Inside the pre-trade price band (200 bps) that execution checks: mark vs reference, limit vs reference.
      const [mark] = await lyra.fetchMarks([l.instrument]);
      const ref = l.referencePriceUsd;
      expect(Math.abs((mark?.markPriceUsd ?? 0) - ref) / ref).toBeLessThanOrEqual(0.02);
      expect(Math.abs(Number(l.limitPriceUsd) - ref) / ref).toBeLessThanOrEqual(0.02);
    }
    // The legs execute on the venue, and vega moves towards the band.
    for (const l of btc?.legs ?? []) await send(h, l);
    h.clock.advance(2000);
    for (const l of btc?.legs ?? []) await reconcile(h, l.venue, clientOrderIdFor(l.id));
    await h.planner.plan();
    const vegaAfter = h.planner.lastSnapshot?.underlyings.BTC?.vegaPerVolPoint ?? vegaBefore;
    // the book's delta moved by what the plan said its legs add (the market moved 2 s meanwhile)
    const deltaAfter = h.planner.lastSnapshot?.underlyings.BTC?.delta ?? Number.NaN;
    expect(Math.abs(deltaAfter - (deltaBefore + planDelta))).toBeLessThan(0.05);
    const bought = options.reduce((s, l) => s + Number(l.sizeBase), 0);
    // and the bought calls count at their delta, not at their size
    const linear = (btc?.legs ?? [])
      .filter((l) => parseInstrumentId(l.instrument).kind !== 'option')
      .reduce((sum, l) => sum + (l.side === 'buy' ? 1 : -1) * Number(l.sizeBase), 0);
    expect(planDelta - linear).toBeGreaterThan(0.1 * bought);
    expect(planDelta - linear).toBeLessThan(bought);
    expect(bought).toBeGreaterThan(0);
    expect(vegaAfter).toBeGreaterThan(vegaBefore + 1000);
  });
});

describe('gas money is not book delta (regression: 10,000 ETH of anvil gas hedged as delta, twice)', () => {
  it('leaves a balance in the gas asset out, and still counts other coin balances', async () => {
    const keep = ['gmx-arb', 'lyra-arb'];
    const base = await harness(profile(keep));
    await base.planner.plan();
    const before = base.planner.lastSnapshot?.underlyings;
    // Both EVM venues report the signing wallet's ETH (their gas asset), and gmx-arb holds 2 BTC.
    const asOfMs = Date.UTC(2026, 0, 5);
    const withWallet = await harness(
      profile(keep),
      (v) =>
        new Proxy(v, {
          get(target, prop) {
            if (prop === 'fetchBalances')
              return async () => [
                ...(await target.fetchBalances()),
                { venue: v.id, chain: v.chain, asset: 'ETH', amount: 10_000, asOfMs },
                ...(v.id === 'gmx-arb'
                  ? [{ venue: v.id, chain: v.chain, asset: 'BTC', amount: 2, asOfMs }]
                  : []),
              ];
            const x = Reflect.get(target, prop, target);
            return typeof x === 'function' ? x.bind(target) : x;
          },
        }),
    );
    expect(withWallet.venue('gmx-arb').capabilities.gasAsset).toBe('ETH');
    await withWallet.planner.plan();
    const after = withWallet.planner.lastSnapshot?.underlyings;
    expect(after?.ETH?.delta).toBeCloseTo(before?.ETH?.delta ?? Number.NaN, 9);
    expect(after?.BTC?.delta).toBeCloseTo((before?.BTC?.delta ?? Number.NaN) + 2, 9);
  });
});

describe('market circuit breakers fed by the tick', () => {
  it('each tick gives every underlying its spot (price shock) and vol (iv shock), and every venue chain its liveness (chain halt)', async () => {
    const prices: [string, number, number | undefined][] = [];
    const ivs: [string, number, number | undefined][] = [];
    const chains: [string, boolean][] = [];
    const dispersion = new Map<string, Readonly<Record<string, number>>>();
    const skews = new Map<string, number>();
    const h = await harness(profile(['lyra-arb', 'gmx-arb', 'drift-sol']), undefined, {
      observePrice: async (u, p, ts) => {
        prices.push([u, p, ts]);
      },
      observeIv: async (u, iv, ts) => {
        ivs.push([u, iv, ts]);
      },
      observeDispersion: async (u, byVenue) => {
        dispersion.set(u, byVenue);
      },
      observeSkew: async (u, skew) => {
        skews.set(u, skew);
      },
      observeChain: async (c, halted) => {
        chains.push([c, halted]);
      },
    });
    await h.planner.plan();
    const snap = h.planner.lastSnapshot;
    expect(prices.map(([u]) => u).sort()).toEqual(Object.keys(snap?.underlyings ?? {}).sort());
    for (const [u, p, ts] of prices) {
      expect(p).toBe(snap?.underlyings[u]?.spotUsd);
      expect(ts).toBe(snap?.asOfMs);
    }
    expect(ivs.map(([u, iv, ts]) => [u, iv, ts]).sort()).toEqual(
      Object.entries(snap?.underlyings ?? {})
        .map(([u, r]) => [u, r.volDecimal, snap?.asOfMs])
        .sort(),
    );
    // the demo book's options give each underlying a skew (the options venue's marks of what it holds)
    const held = (await h.venue('lyra-arb').fetchPositions()).map((p) => p.instrument);
    const expected = optionSkew(
      await h.venue('lyra-arb').fetchMarks(held),
      new Map(Object.entries(snap?.underlyings ?? {}).map(([u, r]) => [u, r.spotUsd])),
      snap?.asOfMs ?? 0,
    );
    expect([...skews.keys()].sort()).toEqual(['BTC', 'ETH']);
    for (const [u, v] of skews) expect(v).toBeCloseTo(expected.get(u) ?? Number.NaN, 12);
    // every venue holding an underlying gives its price of it (paper venues price from one market)
    expect(Object.fromEntries(dispersion)).toEqual({
      BTC: { 'lyra-arb': snap?.underlyings.BTC?.spotUsd, 'gmx-arb': snap?.underlyings.BTC?.spotUsd },
      ETH: { 'lyra-arb': snap?.underlyings.ETH?.spotUsd, 'drift-sol': snap?.underlyings.ETH?.spotUsd },
    });
    expect(chains.sort()).toEqual([
      ['evm:42161', false], // lyra-arb
      ['evm:42161', false], // gmx-arb
      ['solana:mainnet-beta', false],
    ]);
    chains.length = 0;
    h.venue('drift-sol').faults.halt();
    h.clock.advance(60_000);
    await h.planner.plan();
    expect(chains).toContainEqual(['solana:mainnet-beta', true]);
    expect(chains).toContainEqual(['evm:42161', false]);
  });
});

describe('venue notional fed by the tick', () => {
  it("gives each venue's gross notional of perps, futures and spot at its marks (options left out)", async () => {
    const seen = new Map<string, number>();
    const h = await harness(profile(['lyra-arb', 'gmx-arb', 'drift-sol']), undefined, undefined, {
      onVenueRead: (venue, read) => void seen.set(venue, grossNotionalUsd(read.positions, read.marks)),
    });
    h.venue('gmx-arb').seedPosition('BTC-USD:PERP', -2);
    h.venue('drift-sol').seedPosition('ETH-USD:PERP', 3);
    await h.planner.plan();
    const [btc] = await h.venue('gmx-arb').fetchMarks(['BTC-USD:PERP']);
    const [eth] = await h.venue('drift-sol').fetchMarks(['ETH-USD:PERP']);
    const gmxHeld = (await h.venue('gmx-arb').fetchPositions()).find((p) => p.instrument === 'BTC-USD:PERP');
    expect(seen.get('gmx-arb')).toBeCloseTo(
      Math.abs(gmxHeld?.sizeBase ?? Number.NaN) * (btc?.markPriceUsd ?? Number.NaN),
      6,
    );
    const driftHeld = (await h.venue('drift-sol').fetchPositions()).find(
      (p) => p.instrument === 'ETH-USD:PERP',
    );
    expect(seen.get('drift-sol')).toBeCloseTo(
      Math.abs(driftHeld?.sizeBase ?? Number.NaN) * (eth?.markPriceUsd ?? Number.NaN),
      6,
    );
    // lyra-arb holds only the options book
    expect(seen.get('lyra-arb')).toBe(0);
  });
});

describe('loss-since-mark breaker fed by the tick', () => {
  it('observes the book equity each tick; a hedge trade moves it only by its costs; a partial read is not observed', async () => {
    const seen: number[] = [];
    let failPositions = false;
    const config = profile(['lyra-arb', 'gmx-arb', 'drift-sol']);
    const h = await harness(
      config,
      (v) =>
        new Proxy(v, {
          get(target, prop) {
            if (prop === 'fetchPositions' && v.id === 'drift-sol' && failPositions)
              return async () => {
                throw new Error('rpc down');
              };
            const x = Reflect.get(target, prop, target);
            return typeof x === 'function' ? x.bind(target) : x;
          },
        }),
      {
        observePrice: async () => {},
        observeChain: async () => {},
        observeEquity: async (equityUsd) => {
          seen.push(equityUsd);
          return {
            markUsd: seen[0] as number,
            lossSinceMarkUsd: (seen[0] as number) - equityUsd,
            marked: seen.length === 1,
          };
        },
      },
    );
    const plans = await h.planner.plan();
    expect(seen).toHaveLength(1);
    const e0 = seen[0] as number;
    expect(Number.isFinite(e0)).toBe(true);
    expect(e0).toBeGreaterThan(0);
    // the snapshot keeps the equity observed (P&L attribution's actual P&L)
    expect(h.planner.lastSnapshot?.bookEquityUsd).toBe(e0);
    // hedge every planned leg at the venues, at the same market instant: equity moves by fees and spread only
    const legs = plans.flatMap((p) => p.legs);
    expect(legs.length).toBeGreaterThan(0);
    let notionalUsd = 0;
    for (const leg of legs) {
      await send(h, leg);
      notionalUsd += Number(leg.sizeBase) * leg.referencePriceUsd;
    }
    await h.planner.plan();
    expect(seen).toHaveLength(2);
    const cost = e0 - (seen[1] as number);
    console.log(
      `[planner test] equity ${e0.toFixed(2)} USD; hedged ${notionalUsd.toFixed(0)} USD of legs for ${cost.toFixed(2)} USD`,
    );
    expect(cost).toBeGreaterThanOrEqual(0);
    expect(cost).toBeLessThan(0.01 * notionalUsd); // fees + spread + gas: well under 1% of what was traded
    // an order still working (its collateral may sit in a keeper's vault): no observation either
    const working = plans.flatMap((p) => p.legs)[0] as HedgeIntent;
    const pending = { ...working, id: `${working.id}w`, planId: `${working.planId}w` };
    await h.ledger.recordIntent(pending, { clientOrderId: clientOrderIdFor(pending.id), actor: 'test' });
    await h.planner.plan();
    expect(seen).toHaveLength(2);
    expect(h.planner.lastSnapshot?.bookEquityUsd).toBeUndefined();
    await h.ledger.transition(clientOrderIdFor(pending.id), 'cancelled', { actor: 'test' });
    // a venue that cannot be read: no observation (its collateral and P&L would read as a loss)
    failPositions = true;
    await h.planner.plan();
    expect(seen).toHaveLength(2);
    expect(h.planner.lastSnapshot?.bookEquityUsd).toBeUndefined();
    failPositions = false;
    await h.planner.plan();
    expect(seen).toHaveLength(3);
  });
});

describe('the gauges a tick sets (audit: a venue not read blinded the loss breaker, a delta past its band with no order paged nobody)', () => {
  it('venue read ok/failed, delta outside the band, last order queued, snapshot warnings, equity observed', async () => {
    const metrics = new ExecutionMetrics();
    /** The gauge's value for `labels`, undefined when it has no such series. */
    const gauge = async (name: string, labels: Record<string, string> = {}) => {
      const m = await metrics.registry.getSingleMetric(name)?.get();
      return m?.values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value;
    };
    let failPositions = false;
    const startSec = Date.now() / 1000;
    const h = await harness(
      profile(['lyra-arb', 'gmx-arb', 'drift-sol']),
      (v) =>
        new Proxy(v, {
          get(target, prop) {
            if (prop === 'fetchPositions' && v.id === 'drift-sol' && failPositions)
              return async () => {
                throw new Error('rpc down');
              };
            const x = Reflect.get(target, prop, target);
            return typeof x === 'function' ? x.bind(target) : x;
          },
        }),
      {
        observePrice: async () => {},
        observeChain: async () => {},
        observeEquity: async () => ({ markUsd: 0, lossSinceMarkUsd: 0, marked: false }),
      },
      { metrics },
    );
    // before any tick: the equity timestamp starts at the planner's start (so "never" reads as old)
    const made = (await gauge('xhedge_book_equity_observed_timestamp_seconds')) as number;
    expect(made).toBeGreaterThanOrEqual(Math.floor(startSec));
    expect(made).toBeLessThanOrEqual(Date.now() / 1000);

    const plans = await h.planner.plan();
    const btc = btcPlans(plans)[0] as PlanForExecution;
    expect(btc).toBeDefined();
    for (const venue of ['lyra-arb', 'gmx-arb', 'drift-sol'])
      expect(await gauge('xhedge_venue_read_ok', { venue })).toBe(1);
    // the book starts unhedged: BTC's drift is past its band by a positive amount, at most the whole delta
    const outside = (await gauge('xhedge_book_delta_outside_band', { underlying: 'BTC' })) as number;
    expect(outside).toBeGreaterThan(0);
    expect(outside).toBeLessThanOrEqual(Math.abs(h.planner.lastSnapshot?.underlyings.BTC?.delta ?? 0) + 1e-9);
    expect(await gauge('xhedge_snapshot_warnings')).toBe(h.planner.lastSnapshot?.warnings.length);
    // the tick's own timestamp: alerts on these gauges keep to the planner that ticks now (the leader)
    const tickedAt = (await gauge('xhedge_planner_tick_timestamp_seconds')) as number;
    expect(tickedAt).toBeGreaterThanOrEqual(Math.floor(startSec));
    expect(tickedAt).toBeLessThanOrEqual(Date.now() / 1000);
    const observedAt = (await gauge('xhedge_book_equity_observed_timestamp_seconds')) as number;
    expect(observedAt).toBeGreaterThanOrEqual(made);
    // no order queued yet: the timestamp is the planner's start, not absent
    const seeded = (await gauge('xhedge_last_order_queued_timestamp_seconds', {
      underlying: 'BTC',
    })) as number;
    expect(seeded).toBe(made);

    // the plan is queued: the timestamp is now
    await new Promise((r) => setTimeout(r, 20));
    const beforeQueue = Date.now() / 1000;
    h.planner.onPlanned(btc, queuedAll(btc));
    const queuedAt = (await gauge('xhedge_last_order_queued_timestamp_seconds', {
      underlying: 'BTC',
    })) as number;
    expect(queuedAt).toBeGreaterThanOrEqual(beforeQueue);
    expect(queuedAt).toBeLessThanOrEqual(Date.now() / 1000);

    // every leg executed: inside the band again
    for (const p of plans) {
      h.planner.onPlanned(p, queuedAll(p));
      for (const leg of p.legs) await send(h, leg);
    }
    h.clock.advance(1000);
    await h.planner.plan();
    expect(await gauge('xhedge_book_delta_outside_band', { underlying: 'BTC' })).toBe(0);
    const lastObserved = (await gauge('xhedge_book_equity_observed_timestamp_seconds')) as number;
    expect(lastObserved).toBeGreaterThanOrEqual(observedAt);

    // drift-sol cannot be read: read_ok 0 there, the equity is not observed (its timestamp stays), the
    // snapshot's warnings are counted
    failPositions = true;
    h.clock.advance(1000);
    await new Promise((r) => setTimeout(r, 20));
    await h.planner.plan();
    expect(await gauge('xhedge_venue_read_ok', { venue: 'drift-sol' })).toBe(0);
    expect(await gauge('xhedge_venue_read_ok', { venue: 'gmx-arb' })).toBe(1);
    expect(await gauge('xhedge_book_equity_observed_timestamp_seconds')).toBe(lastObserved);
    const warnings = h.planner.lastSnapshot?.warnings.length ?? 0;
    expect(warnings).toBeGreaterThan(0);
    expect(await gauge('xhedge_snapshot_warnings')).toBe(warnings);
    // read again: 1
    failPositions = false;
    h.clock.advance(1000);
    await h.planner.plan();
    expect(await gauge('xhedge_venue_read_ok', { venue: 'drift-sol' })).toBe(1);
    expect(await gauge('xhedge_book_equity_observed_timestamp_seconds')).toBeGreaterThan(lastObserved);
  });
});

describe('a venue that cannot be read (regression: its hedge vanished from the book and was placed again)', () => {
  /**
   * The paper profile's options (lyra-arb) and two perp venues: the BTC hedge goes to drift-sol, whose
   * reads fail while `down` is set; gmx-arb stays readable, so a hedge placed again would have a route.
   */
  async function flaky() {
    const state: {
      down: boolean;
      fundingDown: boolean;
      marksDown: boolean;
      /** Runs once, inside the next positions read, after the venue gave its positions. */
      afterPositions?: (() => Promise<void>) | undefined;
    } = { down: false, fundingDown: false, marksDown: false };
    const logs: string[] = [];
    const h = await harness(
      profile(['lyra-arb', 'gmx-arb', 'drift-sol']),
      (v) =>
        v.id !== 'drift-sol'
          ? v
          : (new Proxy(v, {
              get(target, prop) {
                if (state.down && (prop === 'fetchPositions' || prop === 'fetchBalances'))
                  return async () => {
                    throw new Error('rpc down');
                  };
                if (prop === 'fetchPositions' && state.afterPositions) {
                  const after = state.afterPositions;
                  state.afterPositions = undefined;
                  return async () => {
                    const positions = await target.fetchPositions();
                    await after();
                    return positions;
                  };
                }
                if (state.marksDown && prop === 'fetchMarks')
                  return async () => {
                    throw new Error('marks rpc down');
                  };
                if (state.fundingDown && prop === 'fetchFundingRate')
                  return async () => {
                    throw new Error('oracle TWAP not positive');
                  };
                const x = Reflect.get(target, prop, target);
                return typeof x === 'function' ? x.bind(target) : x;
              },
            }) as VenueAdapter),
      undefined,
      { log: (_level, msg) => logs.push(msg) },
    );
    return { h, state, logs };
  }

  /** Hedges the book once (every planned leg sent and filled), then lets the keeper delay pass. */
  async function hedged(h: Harness) {
    const legs = (await h.planner.plan()).flatMap((p) => p.legs);
    expect(legs.some((l) => l.venue === 'drift-sol')).toBe(true);
    for (const leg of legs) {
      const id = await send(h, leg);
      h.clock.advance(3000);
      await reconcile(h, leg.venue, id);
    }
    h.clock.advance(100);
    expect(await h.planner.plan()).toEqual([]); // read after the fills: inside the bands
    return legs;
  }

  it.each([
    ['its positions and balances: it stands in with its last read (young, none of our orders moved)', 'down'],
    ['its funding: only that carry is left out (regression: its positions counted twice)', 'fundingDown'],
    ['its marks, after its positions: it stands in with that read, once (regression: twice)', 'marksDown'],
  ] as const)('a venue whose read of %s', async (_what, fault) => {
    const { h, state } = await flaky();
    await hedged(h);
    const delta = h.planner.lastSnapshot?.underlyings.BTC?.delta;
    state[fault] = true;
    h.clock.advance(1000);
    expect(await h.planner.plan()).toEqual([]);
    // drift-sol's hedge counts once (without it, or twice, BTC delta is far outside its band)
    expect(h.planner.lastSnapshot?.underlyings.BTC?.delta).toBeCloseTo(delta ?? Number.NaN, 2);
    expect(Math.abs(h.planner.lastSnapshot?.underlyings.BTC?.delta ?? 99)).toBeLessThan(0.5);
  });

  it('a funding read that keeps failing is logged when it starts, changes or ends, not every tick (regression: a warning per tick)', async () => {
    const { h, state, logs } = await flaky();
    await hedged(h);
    const warned = () =>
      logs.filter((l) => /funding rate of BTC-USD:PERP on drift-sol not read/.test(l)).length;
    state.fundingDown = true;
    for (let i = 0; i < 3; i++) {
      h.clock.advance(1000);
      await h.planner.plan();
    }
    expect(warned()).toBe(1);
    state.fundingDown = false;
    h.clock.advance(1000);
    await h.planner.plan();
    expect(logs).toContain('funding rate of BTC-USD:PERP on drift-sol read again');
    state.fundingDown = true;
    h.clock.advance(1000);
    await h.planner.plan();
    expect(warned()).toBe(2);
  });

  it('holds the underlyings it holds once its last read is stale, and everything when it was never read', async () => {
    const { h, state } = await flaky();
    await hedged(h);
    state.down = true;
    h.clock.advance(120_000); // beyond staleAfterMs: its positions may have moved
    expect(btcPlans(await h.planner.plan())).toEqual([]);
    // the book without it looks unhedged, and still nothing is placed for BTC
    expect(Math.abs(h.planner.lastSnapshot?.underlyings.BTC?.delta ?? 0)).toBeGreaterThan(0.5);
    // and the snapshot says why, not only the log
    expect(h.planner.lastSnapshot?.warnings).toContain(
      'venue drift-sol could not be read: no hedge for BTC, ETH until it is read again',
    );

    const never = await flaky();
    never.state.down = true;
    expect(await never.h.planner.plan()).toEqual([]);
    expect(never.h.planner.lastSnapshot?.warnings).toContain(
      'venue drift-sol could not be read: no hedge for any underlying until it is read again (it was never read)',
    );
  });

  it('an enabled venue that stops running (not built, being rebuilt) is a venue that cannot be read: its last read stands in while young, then its underlyings are held, never planned as if it held nothing (regression: its hedge was placed again elsewhere)', async () => {
    const state = { gone: false };
    const logs: { level: string; msg: string; data?: Record<string, unknown> }[] = [];
    let adapters: readonly VenueAdapter[] = [];
    const h = await harness(profile(['lyra-arb', 'gmx-arb', 'drift-sol']), undefined, undefined, {
      // the venues running now, as a registry gives them: drift-sol left out while `gone`
      venues: async () => adapters.filter((v) => !state.gone || v.id !== 'drift-sol'),
      notRunning: (id) =>
        id === 'drift-sol'
          ? new Error(
              'venue drift-sol (drift on solana:mainnet-beta): secret key env var DRIFT_KEY is not set; ?api_key=k3y',
            )
          : undefined,
      log: (level, msg, data) => logs.push({ level, msg, ...(data ? { data } : {}) }),
    });
    adapters = h.venues;
    await hedged(h);
    const delta = h.planner.lastSnapshot?.underlyings.BTC?.delta;
    state.gone = true;
    for (let i = 0; i < 2; i++) {
      h.clock.advance(1000);
      expect(await h.planner.plan()).toEqual([]);
      // drift-sol's short perp still counts (without it BTC looks long, and is hedged again on gmx-arb)
      expect(h.planner.lastSnapshot?.underlyings.BTC?.delta).toBeCloseTo(delta ?? Number.NaN, 1);
      expect(Math.abs(h.planner.lastSnapshot?.underlyings.BTC?.delta ?? 99)).toBeLessThan(0.5);
    }
    expect(h.planner.lastSnapshot?.warnings.find((w) => w.startsWith('venue drift-sol'))).toMatch(
      /^venue drift-sol is enabled but not running \(its adapter is not built\): its positions and balances of \d+ s ago stand in$/,
    );
    h.clock.advance(120_000); // its last read is stale now
    expect(btcPlans(await h.planner.plan())).toEqual([]);
    expect(Math.abs(h.planner.lastSnapshot?.underlyings.BTC?.delta ?? 0)).toBeGreaterThan(0.5);
    expect(h.planner.lastSnapshot?.warnings).toContain(
      'venue drift-sol is enabled but not running (its adapter is not built): no hedge for BTC, ETH until it runs',
    );
    // running again: read, the book whole, nothing to hedge; each change of the streak logged once
    state.gone = false;
    h.clock.advance(1000);
    expect(btcPlans(await h.planner.plan())).toEqual([]);
    expect(Math.abs(h.planner.lastSnapshot?.underlyings.BTC?.delta ?? 99)).toBeLessThan(0.5);
    const streak = logs.filter((l) => l.data?.venue === 'drift-sol' && !/funding|Greeks/.test(l.msg));
    expect(streak.map((l) => [l.level, l.msg.replace(/\d+ s ago/, 'N s ago')])).toEqual([
      [
        'warn',
        'venue drift-sol is enabled but not running (its adapter is not built); its positions and balances of N s ago stand in while it is not running (logged again when this changes)',
      ],
      [
        'warn',
        'venue drift-sol is enabled but not running (its adapter is not built); no hedge for the underlyings it holds while it is not running (logged again when this changes)',
      ],
      ['info', 'venue drift-sol runs and is read again'],
    ]);
    expect(streak[0]?.data?.err).toMatchObject({
      message:
        'venue drift-sol (drift on solana:mainnet-beta): secret key env var DRIFT_KEY is not set; ?api_key=[redacted]',
    });
    expect(JSON.stringify(logs)).not.toContain('k3y');
  });

  it('holds when one of our orders on it changed after its last read (a fill would have moved it)', async () => {
    const { h, state } = await flaky();
    const legs = (await h.planner.plan()).flatMap((p) => p.legs);
    h.clock.advance(100);
    await h.planner.plan(); // drift-sol read before the hedge: its last read has no hedge in it
    const leg = legs.find((l) => l.venue === 'drift-sol') as HedgeIntent;
    state.down = true;
    h.clock.advance(100);
    const id = await send(h, leg); // filled while the venue cannot be read
    expect((await h.ledger.getOrder(id))?.status).toBe('filled');
    h.clock.advance(100);
    expect(btcPlans(await h.planner.plan())).toEqual([]);
  });
  it('holds when one of our orders on it filled while its last read was under way (regression: the fill was missed, the stale read stood in and the hedge was placed again)', async () => {
    const { h, state } = await flaky();
    const legs = (await h.planner.plan()).flatMap((p) => p.legs);
    const leg = legs.find((l) => l.venue === 'drift-sol') as HedgeIntent;
    for (const other of legs.filter((l) => l !== leg)) {
      const id = await send(h, other);
      h.clock.advance(3000);
      await reconcile(h, other.venue, id);
    }
    // the drift-sol leg is working when the next tick begins (so that tick holds BTC) ...
    const clientOrderId = clientOrderIdFor(leg.id);
    await h.ledger.recordIntent(leg, { clientOrderId, actor: 'test' });
    await h.ledger.transition(clientOrderId, 'queued', { actor: 'test' });
    await h.ledger.transition(clientOrderId, 'sent', { actor: 'test' });
    // ... and fills at the venue just after it gave that tick its positions; the ledger has the fill
    // before the read ends
    state.afterPositions = async () => {
      h.clock.advance(50);
      const o = await h.venue('drift-sol').placeOrder({
        clientOrderId,
        instrument: leg.instrument,
        side: leg.side,
        orderType: leg.orderType,
        sizeBase: leg.sizeBase,
        ...(leg.limitPriceUsd !== undefined ? { limitPriceUsd: leg.limitPriceUsd } : {}),
        reduceOnly: leg.reduceOnly,
      });
      expect(o.status).toBe('filled');
      await h.ledger.transition(clientOrderId, 'filled', {
        actor: 'test',
        patch: { filledSizeBase: o.filledSizeBase },
      });
      h.clock.advance(50);
    };
    h.clock.advance(100);
    expect(btcPlans(await h.planner.plan())).toEqual([]);
    expect(state.afterPositions).toBeUndefined();
    // the venue's last good read has no fill in it, and the fill landed before that read ended
    state.down = true;
    h.clock.advance(100);
    expect(btcPlans(await h.planner.plan())).toEqual([]);
  });
});

describe('a venue whose calls never answer (regression: one hung read stopped hedging for good)', () => {
  /**
   * The paper profile's lyra-arb, gmx-arb and drift-sol; while `hung` is set, every call drift-sol gets
   * waits for ever (as a socket a server accepted and never answers), or until `release()` when
   * `releasable`. `calls` counts the calls it got while hung.
   */
  async function hanging(
    more: Partial<TickPlannerOptions> = {},
    breakers?: TickPlannerOptions['breakers'],
    only?: ReadonlySet<string>,
  ) {
    const state = { hung: false, calls: [] as string[] };
    const waiting: (() => void)[] = [];
    const logs: { level: string; msg: string; data?: Record<string, unknown> }[] = [];
    const h = await harness(
      profile(['lyra-arb', 'gmx-arb', 'drift-sol']),
      (v) =>
        v.id !== 'drift-sol'
          ? v
          : (new Proxy(v, {
              get(target, prop) {
                const x = Reflect.get(target, prop, target);
                if (typeof x !== 'function') return x;
                if (!state.hung || (only && !only.has(String(prop)))) return x.bind(target);
                return (...args: unknown[]) => {
                  state.calls.push(String(prop));
                  return new Promise<void>((r) => waiting.push(r)).then(() => x.apply(target, args));
                };
              },
            }) as VenueAdapter),
      breakers,
      { log: (level, msg, data) => logs.push({ level, msg, ...(data ? { data } : {}) }), ...more },
    );
    const release = () => {
      for (const r of waiting.splice(0)) r();
    };
    return { h, state, logs, release };
  }

  /** `p`, or a failure naming `what` when it has not settled within `ms` of wall time. */
  const within = <T>(p: Promise<T>, ms: number, what: string) =>
    Promise.race([
      p,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`${what}: no end in ${ms} ms`)), ms),
      ),
    ]);

  it('ticks go on, the other venues are hedged, and the hung venue is read as failed, logged once', async () => {
    const chains: string[] = [];
    const { h, state, logs } = await hanging(
      { venueReadTimeoutMs: 200 },
      { observePrice: async () => {}, observeChain: async (chain) => void chains.push(chain) },
    );
    // read once while it answers: its last read then stands in while young
    const first = btcPlans(await h.planner.plan());
    expect(first.flatMap((p) => p.legs.map((l) => l.venue))).toContain('drift-sol');
    state.hung = true;
    for (let i = 0; i < 3; i++) {
      h.clock.advance(1000);
      const started = performance.now();
      const plans = btcPlans(await within(h.planner.plan(), 5000, `tick ${i + 1} with drift-sol hung`));
      expect(performance.now() - started).toBeLessThan(3000);
      // the book is what it was (drift-sol's last read stands in), so BTC is hedged again, elsewhere
      const venues = plans.flatMap((p) => p.legs.map((l) => l.venue));
      expect(venues.length).toBeGreaterThan(0);
      expect(venues).not.toContain('drift-sol');
    }
    // one wait per tick for its reads, then nothing more asked of it in that tick (no quotes, no markets)
    expect(new Set(state.calls)).toEqual(new Set(['fetchPositions', 'fetchBalances', 'health']));
    expect(state.calls.filter((c) => c === 'fetchPositions')).toHaveLength(3);
    // its health probe timed out too: no chain liveness from it while hung (a failed probe says nothing)
    expect(chains.filter((c) => c === 'solana:mainnet-beta')).toHaveLength(1);
    const failed = logs.filter((l) => l.msg.startsWith('reading venue drift-sol failed'));
    expect(failed).toHaveLength(1);
    expect(failed[0]?.level).toBe('warn');
    expect(failed[0]?.msg).toMatch(/positions and balances of \d+ s ago stand in/);
    expect(failed[0]?.data?.err).toMatchObject({
      code: 'VENUE_READ_TIMEOUT',
      message: 'venue drift-sol: fetchPositions gave no answer within 200 ms',
    });
    // it answers again: read again, logged once, routed to again
    state.hung = false;
    h.clock.advance(1000);
    await h.planner.plan();
    expect(logs.filter((l) => l.msg === 'venue drift-sol read again')).toHaveLength(1);
  });

  it('only its funding read hangs: that carry is left out, nothing else, logged once per streak', async () => {
    const { h, state, logs } = await hanging(
      { venueReadTimeoutMs: 150 },
      undefined,
      new Set(['fetchFundingRate']),
    );
    // drift-sol holds a BTC perp once its hedge is placed (its funding is read from then on)
    for (const leg of (await h.planner.plan()).flatMap((p) => p.legs)) {
      const id = await send(h, leg);
      h.clock.advance(3000);
      await reconcile(h, leg.venue, id);
    }
    h.clock.advance(100);
    await h.planner.plan();
    const delta = h.planner.lastSnapshot?.underlyings.BTC?.delta;
    state.hung = true;
    for (let i = 0; i < 3; i++) {
      h.clock.advance(1000);
      await within(h.planner.plan(), 5000, 'tick');
      // drift-sol's positions still count, once (left out, or twice, BTC delta is far outside its band)
      expect(h.planner.lastSnapshot?.underlyings.BTC?.delta).toBeCloseTo(delta ?? Number.NaN, 1);
      expect(Math.abs(h.planner.lastSnapshot?.underlyings.BTC?.delta ?? 99)).toBeLessThan(0.5);
    }
    const warned = logs.filter((l) => /funding rate of BTC-USD:PERP on drift-sol not read/.test(l.msg));
    expect(warned).toHaveLength(1);
    expect(warned[0]?.data?.err).toMatch(/fetchFundingRate gave no answer within 150 ms/);
    expect(logs.some((l) => l.msg.startsWith('reading venue drift-sol failed'))).toBe(false);
  });

  it('only its health probe hangs: the tick ends, and its data still counts and is routed to', async () => {
    const { h, state, logs } = await hanging(
      { venueReadTimeoutMs: 150 },
      { observePrice: async () => {}, observeChain: async () => {} },
      new Set(['health']),
    );
    state.hung = true;
    const plans = btcPlans(await within(h.planner.plan(), 5000, 'tick'));
    expect(state.calls).toEqual(['health']);
    expect(plans.flatMap((p) => p.legs.map((l) => l.venue))).toContain('drift-sol');
    expect(logs.some((l) => l.msg.startsWith('reading venue drift-sol failed'))).toBe(false);
  });

  it('a venue hung since the start holds every underlying (it was never read), and the tick still ends', async () => {
    const { h, state, logs } = await hanging({ venueReadTimeoutMs: 150 });
    state.hung = true;
    expect(await within(h.planner.plan(), 5000, 'tick')).toEqual([]);
    expect(logs.map((l) => l.msg)).toContain(
      'reading venue drift-sol failed; no hedge for any underlying (it was never read) while it fails (logged again when this changes)',
    );
  });

  it('a tick overtaken by a later one stops with no plan and changes nothing (its caller gave up on it)', async () => {
    const { h, state, release } = await hanging({ venueReadTimeoutMs: 60_000 });
    await h.planner.plan();
    state.hung = true;
    h.clock.advance(1000);
    const stuck = h.planner.plan();
    await new Promise((r) => setTimeout(r, 100));
    expect(state.calls).toContain('fetchPositions');
    // the caller gave up on it (the tick watchdog) and ticks again; the venue answers now
    state.hung = false;
    h.clock.advance(1000);
    const plans = await h.planner.plan();
    expect(plans.length).toBeGreaterThan(0);
    const seq = h.planner.lastSnapshot?.seq;
    release();
    await expect(stuck).rejects.toBeInstanceOf(TickSupersededError);
    expect(h.planner.lastSnapshot?.seq).toBe(seq);
    expect(h.planner.pendingPlans).toBe(plans.length);
  });

  it('refuses a deadline that is no whole number of ms', () => {
    for (const bad of [0, -5, 1.5, Number.NaN])
      expect(() => new TickPlanner({ venueReadTimeoutMs: bad } as TickPlannerOptions)).toThrow(
        `venueReadTimeoutMs must be a whole number of ms, at least 1; got ${bad}`,
      );
  });
});

describe('an overtaken tick and slow venues (review fixes: stale writes, a leaking hung map, no per-tick budget)', () => {
  const READS = new Set([
    'loadMarkets',
    'fetchPositions',
    'fetchBalances',
    'fetchMarks',
    'fetchFundingRate',
    'fetchGreeks',
    'fetchOptionChain',
    'fetchSettlementPrices',
    'fetchOrderBook',
    'fetchFills',
    'quoteHedge',
    'health',
  ]);
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  /** A promise and what settles it. */
  const latch = () => {
    let open = () => {};
    const p = new Promise<void>((r) => {
      open = r;
    });
    return { p, open };
  };
  /** Waits (wall time) until `ok()`, failing after 5 s. */
  const until = async (ok: () => boolean, what: string) => {
    for (const started = performance.now(); !ok(); await sleep(5))
      if (performance.now() - started > 5000) throw new Error(`never: ${what}`);
  };

  /**
   * lyra-arb, gmx-arb and drift-sol (holding BTC, ETH and SOL perps); drift-sol's reads answer after
   * `ctl.delayMs`, and the next call of a name in `ctl.once` waits for that latch (that call only).
   * `routed`: the venues each route call was given; `ctl.beforeRoute` runs (awaited) before routing.
   */
  async function controlled(
    more: Partial<TickPlannerOptions> = {},
    breakers?: TickPlannerOptions['breakers'],
  ) {
    const ctl = {
      delayMs: 0,
      once: new Map<string, Promise<void>>(),
      calls: [] as string[],
      beforeRoute: undefined as (() => Promise<void>) | undefined,
    };
    const routed: string[][] = [];
    const logs: { level: string; msg: string; data?: Record<string, unknown> }[] = [];
    const config = profile(['lyra-arb', 'gmx-arb', 'drift-sol'], (c) => {
      c.book.positions.push(
        { venue: 'drift-sol', instrument: 'BTC-USD:PERP', size: 0.5 },
        { venue: 'drift-sol', instrument: 'SOL-USD:PERP', size: 100 },
      );
    });
    const router = createRouter({ maxSlippageBps: config.limits.maxSlippageBps, log: () => {} });
    const h = await harness(
      config,
      (v) =>
        v.id !== 'drift-sol'
          ? v
          : (new Proxy(v, {
              get(target, prop) {
                const x = Reflect.get(target, prop, target);
                if (typeof x !== 'function') return x;
                if (!READS.has(String(prop))) return x.bind(target);
                return async (...args: unknown[]) => {
                  ctl.calls.push(String(prop));
                  const gate = ctl.once.get(String(prop));
                  if (gate) {
                    ctl.once.delete(String(prop));
                    await gate;
                  }
                  if (ctl.delayMs > 0) await sleep(ctl.delayMs);
                  return x.apply(target, args);
                };
              },
            }) as VenueAdapter),
      breakers,
      {
        log: (level, msg, data) => logs.push({ level, msg, ...(data ? { data } : {}) }),
        route: async (d, venues, reservation) => {
          routed.push(venues.map((v) => v.id));
          await ctl.beforeRoute?.();
          return router(d, venues, reservation);
        },
        ...more,
      },
    );
    return { h, ctl, routed, logs };
  }

  it('an overtaken tick that resumes after the newer one feeds no equity to the loss breaker and hands out no plan', async () => {
    const equity: number[] = [];
    const priceGate = { hold: undefined as ReturnType<typeof latch> | undefined, waiting: 0 };
    const { h } = await controlled(
      {},
      {
        observePrice: async () => {
          const hold = priceGate.hold;
          if (!hold) return;
          priceGate.waiting++;
          await hold.p;
        },
        observeChain: async () => {},
        observeEquity: async (equityUsd) => {
          equity.push(equityUsd);
          return { markUsd: equity[0] as number, lossSinceMarkUsd: 0, marked: equity.length === 1 };
        },
      },
    );
    await h.planner.plan();
    expect(equity).toHaveLength(1);
    // tick A stops in the price breakers (a slow breaker store); its caller gives up on it
    priceGate.hold = latch();
    const held = priceGate.hold;
    h.clock.advance(1000);
    const stuck = h.planner.plan().catch((err: unknown) => err);
    await until(() => priceGate.waiting > 0, 'tick A in the price breakers');
    priceGate.hold = undefined;
    h.clock.advance(1000);
    const plans = await h.planner.plan();
    expect(plans.length).toBeGreaterThan(0);
    expect(equity).toHaveLength(2);
    const seq = h.planner.lastSnapshot?.seq;
    held.open();
    expect(await stuck).toBeInstanceOf(TickSupersededError);
    // its stale equity never reached the breaker; the later tick's snapshot and plans stand
    expect(equity).toHaveLength(2);
    expect(h.planner.lastSnapshot?.seq).toBe(seq);
    expect(h.planner.pendingPlans).toBe(plans.length);
  });

  it('an overtaken tick whose policy read resumes late builds no strategy and routes nothing', async () => {
    const config = profile(['lyra-arb', 'gmx-arb', 'drift-sol']);
    let policyHold: ReturnType<typeof latch> | undefined;
    let policyWaiting = 0;
    const logs: string[] = [];
    const { h, routed } = await controlled({
      currentPolicy: async () => {
        const hold = policyHold;
        if (hold) {
          policyWaiting++;
          await hold.p;
        }
        return config.policy;
      },
      log: (_level, msg) => logs.push(msg),
    });
    policyHold = latch();
    const held = policyHold;
    const stuck = h.planner.plan().catch((err: unknown) => err);
    await until(() => policyWaiting > 0, 'tick A reading the policy');
    policyHold = undefined;
    h.clock.advance(1000);
    const plans = await h.planner.plan();
    expect(plans.length).toBeGreaterThan(0);
    const routes = routed.length;
    held.open();
    expect(await stuck).toBeInstanceOf(TickSupersededError);
    expect(routed).toHaveLength(routes);
    expect(logs).not.toContain('hedge policy changed; strategy rebuilt');
    expect(h.planner.pendingPlans).toBe(plans.length);
  });

  it("a venue timing out on an overtaken tick's late call is not hung in the newer tick", async () => {
    const priceGate = { hold: undefined as ReturnType<typeof latch> | undefined, waiting: 0 };
    const { h, ctl, routed } = await controlled(
      { venueReadTimeoutMs: 200 },
      {
        observePrice: async () => {
          const hold = priceGate.hold;
          if (!hold) return;
          priceGate.waiting++;
          await hold.p;
        },
        observeChain: async () => {},
      },
    );
    // tick A stops before routing (its caller gives up on it) ...
    const routeHold = latch();
    let inRoute = false;
    ctl.beforeRoute = async () => {
      ctl.beforeRoute = undefined;
      inRoute = true;
      await routeHold.p;
    };
    const stuck = h.planner.plan().catch((err: unknown) => err);
    await until(() => inRoute, 'tick A routing');
    // ... tick B reads every venue (drift-sol answers) and waits in the price breakers
    priceGate.hold = latch();
    const bHeld = priceGate.hold;
    h.clock.advance(1000);
    const b = h.planner.plan();
    await until(() => priceGate.waiting > 0, 'tick B in the price breakers');
    priceGate.hold = undefined;
    // tick A goes on: routing's call to drift-sol, made after tick B began, never answers
    const never = latch();
    ctl.once.set('fetchBalances', never.p);
    routeHold.open();
    await until(
      () => ctl.calls.includes('fetchBalances') && !ctl.once.has('fetchBalances'),
      'A asks drift-sol',
    );
    await sleep(200 + 150);
    // its timeout belongs to tick A: tick B still reads and routes to drift-sol
    bHeld.open();
    const plans = await b;
    const bRoutes = routed.slice(1);
    expect(bRoutes.length).toBeGreaterThan(0);
    for (const r of bRoutes) expect(r).toContain('drift-sol');
    expect(plans.flatMap((p) => p.legs.map((l) => l.venue))).toContain('drift-sol');
    never.open();
    expect(await stuck).toBeInstanceOf(TickSupersededError);
  });

  it('a venue answering each call just inside its deadline is cut at its tick budget; the other venues are hedged', async () => {
    const { h, ctl, routed, logs } = await controlled({ venueReadTimeoutMs: 300 });
    const budgetMs = 600;
    ctl.delayMs = 270;
    const started = performance.now();
    const plans = await h.planner.plan();
    const tookMs = performance.now() - started;
    // positions and balances at once (270 ms), marks (540 ms), then the first funding read is cut at
    // 600 ms: nothing more is asked of it this tick (no other perp's funding, no routing call)
    expect(ctl.calls.sort()).toEqual(['fetchBalances', 'fetchFundingRate', 'fetchMarks', 'fetchPositions']);
    expect(tookMs).toBeLessThan(budgetMs + 400);
    expect(routed.length).toBeGreaterThan(0);
    for (const r of routed) expect(r).not.toContain('drift-sol');
    const venues = plans.flatMap((p) => p.legs.map((l) => l.venue));
    expect(venues.length).toBeGreaterThan(0);
    expect(venues).not.toContain('drift-sol');
    const cut = logs.find((l) => /funding rate of .* on drift-sol not read/.test(l.msg));
    expect(String(cut?.data?.err)).toMatch(
      /fetchFundingRate cut off, the venue's calls took its whole tick budget of 600 ms/,
    );
    // the budget is per tick: answering fast again, it is read and routed to in the next one
    ctl.delayMs = 0;
    routed.length = 0;
    h.clock.advance(1000);
    await h.planner.plan();
    expect(routed.length).toBeGreaterThan(0);
    for (const r of routed) expect(r).toContain('drift-sol');
  });

  it('refuses a venue tick budget that is no whole number of ms', () => {
    for (const bad of [0, -5, 1.5, Number.NaN])
      expect(() => new TickPlanner({ venueTickBudgetMs: bad } as TickPlannerOptions)).toThrow(
        `venueTickBudgetMs must be a whole number of ms, at least 1; got ${bad}`,
      );
  });
});

describe('plans never reported are not kept (regression: #pending grew by every plan whose submission threw)', () => {
  it('a tick keeps only its own plans awaiting a report', async () => {
    const h = await harness(profile(['lyra-arb', 'gmx-arb']));
    const first = await h.planner.plan();
    expect(first.length).toBeGreaterThan(0);
    expect(h.planner.pendingPlans).toBe(first.length);
    // their submission threw (not the leader, fenced out, a failed queue add): no report comes
    for (let i = 0; i < 3; i++) {
      h.clock.advance(1000);
      const plans = await h.planner.plan();
      expect(plans.length).toBeGreaterThan(0);
      expect(h.planner.pendingPlans).toBe(plans.length);
    }
    const last = await h.planner.plan();
    for (const p of last) h.planner.onPlanned(p, []);
    expect(h.planner.pendingPlans).toBe(0);
  });
});

describe('planNetDelta: what a plan adds to the book delta', () => {
  const leg = (instrument: string, side: 'buy' | 'sell', sizeBase: string, venue = 'v') =>
    ({ instrument, side, sizeBase, venue }) as HedgeIntent;
  const call = 'ETH-USD:OPT:20270326:4000:C';
  it('linear legs at ±size, options at the per-unit delta the solver priced; an unpriced option is NaN', () => {
    const plan = {
      underlying: 'ETH',
      legs: [leg(call, 'sell', '2'), leg('ETH-USD:PERP', 'buy', '1.5'), leg('ETH-USD:SPOT', 'sell', '0.25')],
    };
    // the solver sold 4 of the call at delta 0.6: −2.4 in all, so −0.6 per unit sold ×2 = −1.2
    const trades = [{ venue: 'v', instrument: call, side: 'sell' as const, sizeBase: 4, delta: -2.4 }];
    const nd = planNetDelta(plan, { vegaTrades: trades as never }, { delta: 3, spotUsd: 3000 });
    expect(nd).toEqual({
      underlying: 'ETH',
      bookDeltaBase: 3,
      planDeltaBase: expect.any(Number),
      spotUsd: 3000,
    });
    expect(nd.planDeltaBase).toBeCloseTo(-1.2 + 1.5 - 0.25, 12);
    // the same option on another venue was not priced by the decision
    const other = planNetDelta(
      { underlying: 'ETH', legs: [leg(call, 'buy', '1', 'w')] },
      { vegaTrades: trades as never },
      { delta: 3, spotUsd: 3000 },
    );
    expect(other.planDeltaBase).toBeNaN();
  });
});

describe("venuePrices: each venue's price of each underlying, from one tick's marks", () => {
  it("the venue's index price, else its perp and spot marks; futures and option premiums left out", () => {
    const mk = (venue: string, instrument: string, markPriceUsd: number, indexPriceUsd?: number) => ({
      venue,
      instrument,
      markPriceUsd,
      ...(indexPriceUsd !== undefined ? { indexPriceUsd } : {}),
      asOfMs: 0,
    });
    const prices = venuePrices([
      // an options venue: the premium is no price of ETH, the index it reports with it is
      mk('lyra', 'ETH-USD:OPT:20270326:4000:C', 250, 3001),
      mk('lyra', 'ETH-USD:OPT:20270326:3000:P', 90, 3003),
      // a perp venue without an index: its perp mark; a dated future's basis is left out
      mk('drift', 'ETH-USD:PERP', 3010),
      mk('drift', 'ETH-USD:FUT:20270326', 3100),
      mk('drift', 'SOL-USD:PERP', 181),
      // a spot venue: the median of its spot marks
      mk('amm', 'ETH-USDC:SPOT', 2990),
      mk('amm', 'ETH-USD:SPOT', 2994),
      mk('amm', 'ETH-USDT:SPOT', 3000),
      mk('odd', 'not an instrument', 1),
    ]);
    expect(Object.fromEntries(prices)).toEqual({
      ETH: { lyra: 3002, drift: 3010, amm: 2994 },
      SOL: { drift: 181 },
    });
    // a venue whose only mark is a future gives no price at all
    expect(venuePrices([mk('x', 'BTC-USD:FUT:20270326', 100_000)]).get('BTC')).toEqual({});
  });
});

describe('optionSkew: the smile skew a tick measures for the skew-shock breaker', () => {
  const now = Date.UTC(2026, 10, 24, 8);
  const iv = (instrument: string, ivDecimal: number) => ({
    venue: 'lyra',
    instrument,
    markPriceUsd: 100,
    ivDecimal,
    asOfMs: now,
  });
  const spots = new Map([['ETH', 3000]]);
  it('OTM puts minus OTM calls, 5–25% from spot, at the nearest expiry a week out with both wings', () => {
    const skew = optionSkew(
      [
        // 3 days out: too near, left out
        iv('ETH-USD:OPT:20261127:2700:P', 0.9),
        iv('ETH-USD:OPT:20261127:3300:C', 0.5),
        // 2026-12-25 (31 days): the wings, and strikes outside them
        iv('ETH-USD:OPT:20261225:2700:P', 0.72), // ln(2700/3000) = −10.5%
        iv('ETH-USD:OPT:20261225:2500:P', 0.76), // −18.2%
        iv('ETH-USD:OPT:20261225:3300:C', 0.66), // +9.5%
        iv('ETH-USD:OPT:20261225:3000:C', 0.6), // at the money: not a wing
        iv('ETH-USD:OPT:20261225:2000:P', 0.95), // −40.5%: too far
        iv('ETH-USD:OPT:20261225:2700:C', 0.8), // an in-the-money call: not a wing
        // a later expiry with both wings: not the nearest
        iv('ETH-USD:OPT:20270326:2700:P', 0.7),
        iv('ETH-USD:OPT:20270326:3300:C', 0.69),
      ],
      spots,
      now,
    );
    expect(skew.get('ETH')).toBeCloseTo((0.72 + 0.76) / 2 - 0.66, 12);
  });
  it('no sample from one wing, without a spot, or from marks without an implied vol', () => {
    expect(optionSkew([iv('ETH-USD:OPT:20261225:2700:P', 0.72)], spots, now).size).toBe(0);
    const both = [iv('ETH-USD:OPT:20261225:2700:P', 0.72), iv('ETH-USD:OPT:20261225:3300:C', 0.66)];
    expect(optionSkew(both, new Map(), now).size).toBe(0);
    const noIv = both.map(({ ivDecimal: _, ...m }) => m);
    expect(optionSkew(noIv, spots, now).size).toBe(0);
    expect(optionSkew(both, spots, now).get('ETH')).toBeCloseTo(0.06, 12);
  });
  it('an IV no venue quotes (72 for 0.72: a percentage) is no sample, so it cannot trip the skew breaker', () => {
    const marks = [
      iv('ETH-USD:OPT:20261225:2700:P', 72),
      iv('ETH-USD:OPT:20261225:2500:P', 0.76),
      iv('ETH-USD:OPT:20261225:3300:C', 0.66),
    ];
    expect(optionSkew(marks, spots, now).get('ETH')).toBeCloseTo(0.76 - 0.66, 12);
  });
});

describe('a plan blocked whole is retried with a growing pause, not re-planned every tick', () => {
  it('holds the underlying 2 s, then 4 s after a second block; a queued plan ends the pause', async () => {
    const h = await harness(profile(['lyra-arb', 'gmx-arb']));
    const blockedAll = (plan: PlanForExecution) =>
      plan.legs.map((l) => ({
        intentId: l.id,
        clientOrderId: clientOrderIdFor(l.id),
        outcome: 'blocked' as const,
        control: 'kill-switch' as const,
        reason: 'engaged: drill',
      }));
    const first = btcPlans(await h.planner.plan())[0] as PlanForExecution;
    expect(first).toBeDefined();
    h.planner.onPlanned(first, blockedAll(first));
    h.clock.advance(1000);
    expect(btcPlans(await h.planner.plan())).toEqual([]);
    h.clock.advance(1001); // 2.001 s after the block
    const second = btcPlans(await h.planner.plan())[0] as PlanForExecution;
    expect(second?.planId).not.toBe(first.planId);
    h.planner.onPlanned(second, blockedAll(second));
    h.clock.advance(3000);
    expect(btcPlans(await h.planner.plan())).toEqual([]); // the second pause is 4 s
    h.clock.advance(1001);
    const third = btcPlans(await h.planner.plan())[0] as PlanForExecution;
    expect(third).toBeDefined();
    // queued this time: no pause after it (the next plan waits only for its order, as always)
    h.planner.onPlanned(
      third,
      third.legs.map((l) => ({ intentId: l.id, clientOrderId: clientOrderIdFor(l.id), outcome: 'queued' })),
    );
    h.clock.advance(100);
    expect(btcPlans(await h.planner.plan())).toHaveLength(1);
  });
});

describe('a closed coin-settled perp whose coin P&L the venue still owes (regression: counted by equity, not by delta)', () => {
  it('counts the owed coin, U / mark, as BTC delta; a closed linear perp with unsettled USD P&L adds none', async () => {
    const U = 6_000; // USD at the mark, owed in BTC
    const extra: { instrument: string; settlementCurrency?: string }[] = [];
    const h = await harness(
      profile(['gmx-arb']),
      (v) =>
        new Proxy(v, {
          get(target, prop) {
            if (prop === 'fetchPositions')
              return async () => [
                ...(await target.fetchPositions()),
                ...extra.map((e) => ({
                  venue: target.id,
                  chain: target.chain,
                  sizeBase: 0,
                  unsettledPnlUsd: U,
                  asOfMs: h.clock.nowMs(),
                  ...e,
                })),
              ];
            const x = Reflect.get(target, prop, target);
            return typeof x === 'function' ? x.bind(target) : x;
          },
        }),
    );
    const delta = async () => {
      h.clock.advance(1000);
      await h.planner.plan();
      return h.planner.lastSnapshot?.underlyings.BTC?.delta ?? Number.NaN;
    };
    const before = await delta();
    extra.push({ instrument: 'BTC-USD:PERP' }); // linear (USD-settled): its P&L is USD
    const linear = await delta();
    expect(linear).toBeCloseTo(before, 9);
    extra.splice(0, 1, { instrument: 'BTC-USD:PERP', settlementCurrency: 'BTC' });
    const inverse = await delta();
    const spot = h.planner.lastSnapshot?.underlyings.BTC?.spotUsd ?? Number.NaN;
    // U / mark, the paper perp marked at spot
    expect(inverse - before).toBeCloseTo(U / spot, 6);
  });
});

describe('expired options at the settlement price their venue reports (regression: taken at spot until the venue paid them out)', () => {
  /** 08:00 UTC on the harness's first day: 8 h after it starts. */
  const EXPIRED = 'BTC-USD:OPT:20260105:90000:C';
  const EXPIRY_MS = Date.UTC(2026, 0, 5, 8);
  const PAYOUT_DELAY_MS = 86_400_000;

  /**
   * The book is 2 BTC calls struck at 90,000 on lyra-arb (or on each of `venues`, paper Lyras on one
   * market), which pays expired positions out a day after their expiry: until then they are held.
   */
  function expiring(venues: readonly string[] = ['lyra-arb']): XhedgeConfig {
    return profile(['lyra-arb'], (c) => {
      const lyra = c.venues[0] as XhedgeConfig['venues'][number];
      c.venues = venues.map((id) => ({
        ...lyra,
        id,
        params: { ...lyra.params, settlementDelayMs: PAYOUT_DELAY_MS },
      }));
      c.book.positions = venues.map((venue) => ({ venue, instrument: EXPIRED, size: 2 }));
    });
  }

  /** Each venue with its settlement-price read replaced (`undefined`: the venue has none). */
  const withSettlements =
    (
      read: (
        inner: NonNullable<VenueAdapter['fetchSettlementPrices']>,
        venue: string,
      ) => VenueAdapter['fetchSettlementPrices'],
    ) =>
    (v: PaperVenue): VenueAdapter =>
      new Proxy(v, {
        get(target, prop) {
          if (prop === 'fetchSettlementPrices')
            return read(target.fetchSettlementPrices?.bind(target) as never, target.id);
          const x = Reflect.get(target, prop, target);
          return typeof x === 'function' ? x.bind(target) : x;
        },
      });

  const btc = (h: Harness) => h.planner.lastSnapshot?.underlyings.BTC;
  const expiredWarning = (h: Harness) =>
    h.planner.lastSnapshot?.warnings.find((w) => w.startsWith(`${EXPIRED} has expired`));

  it('asks the venue once it has expired, values it at that price (not spot), and does not ask again', async () => {
    const asked: string[][] = [];
    const h = await harness(
      expiring(),
      withSettlements((inner) => async (ids) => {
        asked.push([...ids]);
        return inner(ids);
      }),
    );
    await h.planner.plan();
    expect(asked).toEqual([]); // live: nothing to ask
    expect(btc(h)?.settlementPricesUsd).toBeUndefined();

    h.clock.advance(EXPIRY_MS - h.clock.nowMs() + 45 * 60_000);
    await h.planner.plan();
    expect(asked).toEqual([[EXPIRED]]);
    const [fixed] = (await h.venue('lyra-arb').fetchSettlementPrices?.([EXPIRED])) ?? [];
    const settleUsd = Number(fixed?.priceUsd);
    expect(fixed?.fixedAtMs).toBe(EXPIRY_MS);
    expect(btc(h)?.settlementPricesUsd).toEqual({ '20260105': settleUsd });
    const spot = btc(h)?.spotUsd ?? Number.NaN;
    expect(Math.abs(spot - settleUsd)).toBeGreaterThan(1); // the market moved on after the expiry
    expect(btc(h)?.valueUsd).toBeCloseTo(2 * (settleUsd - 90_000), 6);
    expect(btc(h)?.delta).toBe(0);
    expect(expiredWarning(h)).toContain(`at the settlement price ${settleUsd}`);

    h.clock.advance(60_000);
    await h.planner.plan();
    expect(asked).toHaveLength(1); // a settled price never changes
    expect(btc(h)?.valueUsd).toBeCloseTo(2 * (settleUsd - 90_000), 6);
  });

  it('a venue without the read, or whose read fails, leaves it at spot with the warning; the tick goes on', async () => {
    const afterExpiry = async (h: Harness) => {
      h.clock.advance(EXPIRY_MS - h.clock.nowMs() + 45 * 60_000);
      return h.planner.plan();
    };
    const atSpot = (h: Harness) => {
      expect(btc(h)?.settlementPricesUsd).toBeUndefined();
      expect(btc(h)?.valueUsd).toBeCloseTo(2 * ((btc(h)?.spotUsd ?? Number.NaN) - 90_000), 6);
      expect(expiredWarning(h)).toContain('its settlement price is not known');
    };
    const none = await harness(
      expiring(),
      withSettlements(() => undefined),
    );
    await afterExpiry(none);
    atSpot(none);

    const logs: string[] = [];
    let down = true;
    const failing = await harness(
      expiring(),
      withSettlements((inner) => async (ids) => {
        if (down) throw new Error('rpc down');
        return inner(ids);
      }),
      undefined,
      { log: (_level, msg, data) => logs.push(`${msg} ${JSON.stringify(data ?? {})}`) },
    );
    await expect(afterExpiry(failing)).resolves.toBeDefined();
    atSpot(failing);
    expect(logs.filter((l) => l.includes('settlement prices from venue lyra-arb left out'))).toHaveLength(1);
    expect(logs.join('\n')).toContain('rpc down');
    failing.clock.advance(1000);
    await failing.planner.plan();
    expect(logs.filter((l) => l.includes('settlement prices from venue lyra-arb left out'))).toHaveLength(1);
    down = false; // asked again once its wait is over (SETTLEMENT_RETRY_MS: 10 s after the first miss)
    failing.clock.advance(1000);
    await failing.planner.plan();
    expect(btc(failing)?.settlementPricesUsd).toBeUndefined();
    failing.clock.advance(8000);
    await failing.planner.plan();
    expect(btc(failing)?.settlementPricesUsd?.['20260105']).toBeGreaterThan(0);
  });

  it('asks a venue that has not fixed the price yet again after a doubling wait, not every tick (regression: an RPC read per tick until the keeper settled)', async () => {
    const askedAtS: number[] = [];
    let fixed = false;
    const h = await harness(
      expiring(),
      withSettlements((inner) => async (ids) => {
        askedAtS.push(Math.round((h.clock.nowMs() - EXPIRY_MS) / 1000));
        return fixed ? inner(ids) : [];
      }),
    );
    h.clock.advance(EXPIRY_MS - h.clock.nowMs());
    for (let s = 0; s < 600; s++) {
      h.clock.advance(1000);
      await h.planner.plan();
    }
    // 10 s, doubling, capped at 2 min: 600 ticks, 8 reads
    expect(askedAtS).toEqual([1, 11, 31, 71, 151, 271, 391, 511]);
    expect(btc(h)?.settlementPricesUsd).toBeUndefined();
    expect(expiredWarning(h)).toContain('its settlement price is not known');

    fixed = true; // the keeper settled the board: found at the next ask, and never asked again
    for (let s = 0; s < 300; s++) {
      h.clock.advance(1000);
      await h.planner.plan();
    }
    expect(askedAtS).toEqual([1, 11, 31, 71, 151, 271, 391, 511, 631]);
    expect(btc(h)?.settlementPricesUsd?.['20260105']).toBeGreaterThan(0);
  });

  it('leaves out an answer that is no settlement price (a guess before the expiry, not finite, not asked for)', async () => {
    const logs: string[] = [];
    const bad = [
      { instrument: EXPIRED, priceUsd: '93000', fixedAtMs: EXPIRY_MS - 1 },
      { instrument: EXPIRED, priceUsd: `1${'0'.repeat(400)}`, fixedAtMs: EXPIRY_MS },
      { instrument: EXPIRED, priceUsd: '-5', fixedAtMs: EXPIRY_MS },
      { instrument: 'ETH-USD:OPT:20260105:3000:C', priceUsd: '3400', fixedAtMs: EXPIRY_MS },
    ];
    const h = await harness(
      expiring(),
      withSettlements(() => async () => bad as never),
      undefined,
      { log: (_level, msg, data) => logs.push(`${msg} ${JSON.stringify(data ?? {})}`) },
    );
    h.clock.advance(EXPIRY_MS - h.clock.nowMs() + 60_000);
    await h.planner.plan();
    expect(btc(h)?.settlementPricesUsd).toBeUndefined();
    expect(expiredWarning(h)).toContain('its settlement price is not known');
    const log = logs.find((l) => l.includes('settlement prices from venue lyra-arb left out')) ?? '';
    expect(log).toContain('before its expiry');
    expect(log).toContain('not a finite positive number');
    expect(log).toContain('priceUsd');
    expect(log).toContain('ETH-USD:OPT:20260105:3000:C: not asked for');
  });

  it('two venues disagreeing on one expiry: valued at the median of their prices, with a warning naming both', async () => {
    const logs: string[] = [];
    const h = await harness(
      expiring(['lyra-arb', 'lyra-b']),
      withSettlements((inner, venue) => async (ids) => {
        const got = await inner(ids);
        // lyra-b settles 1% higher than lyra-arb (another oracle)
        return venue === 'lyra-b'
          ? got.map((p) => ({ ...p, priceUsd: (Number(p.priceUsd) * 1.01).toFixed(8) }))
          : got;
      }),
      undefined,
      { log: (_level, msg, data) => logs.push(`${msg} ${JSON.stringify(data ?? {})}`) },
    );
    h.clock.advance(EXPIRY_MS - h.clock.nowMs() + 60_000);
    await h.planner.plan();
    const [a] = (await h.venue('lyra-arb').fetchSettlementPrices?.([EXPIRED])) ?? [];
    const lo = Number(a?.priceUsd);
    const hi = Number((lo * 1.01).toFixed(8));
    expect(btc(h)?.settlementPricesUsd?.['20260105']).toBeCloseTo((lo + hi) / 2, 6);
    const warned = logs.filter((l) => l.includes('venues settle BTC 20260105 at prices 1.00% apart'));
    expect(warned).toHaveLength(1);
    expect(warned[0]).toContain('"lyra-arb"');
    expect(warned[0]).toContain('"lyra-b"');
    h.clock.advance(1000);
    await h.planner.plan();
    expect(logs.filter((l) => l.includes('venues settle BTC'))).toHaveLength(1); // once, not every tick
  });
});

const queuedAll = (plan: PlanForExecution) =>
  plan.legs.map((l) => ({
    intentId: l.id,
    clientOrderId: clientOrderIdFor(l.id),
    outcome: 'queued' as const,
  }));
const isOption = (l: HedgeIntent) => parseInstrumentId(l.instrument).kind === 'option';

describe('a vega-only plan does not move the delta hedge timer (regression: the next scheduled hedge waited a whole interval more)', () => {
  it('an interval policy hedges delta at its slot although a vega-only plan went out in between', async () => {
    const h = await harness(
      profile(['lyra-arb', 'gmx-arb'], (c) => {
        c.policy.perUnderlying = {};
        c.policy.default = {
          kind: 'interval',
          intervalMinutes: 60,
          targetDelta: 0,
          urgencyMultiple: 1_000_000, // never urgent: only the slot lets a delta hedge out
          minTradeUsd: 100,
          vega: { enabled: true, bandPerVolPoint: 2000, targetPerVolPoint: 0 },
        };
      }),
    );
    const btcPlan = async () => btcPlans(await h.planner.plan())[0] as PlanForExecution;
    const first = await btcPlan();
    expect(first.reason).toMatch(/back to the target/);
    h.planner.onPlanned(first, queuedAll(first));
    // 10 min later the delta waits for its slot, vega is still outside its band (nothing was executed)
    h.clock.advance(10 * 60_000);
    const vegaOnly = await btcPlan();
    expect(vegaOnly.reason).toMatch(/next scheduled hedge .* in 3000 s/);
    expect(vegaOnly.legs.some(isOption)).toBe(true);
    h.planner.onPlanned(vegaOnly, queuedAll(vegaOnly));
    // the slot: an hour after the delta hedge, not an hour after the vega plan
    h.clock.advance(50 * 60_000 + 1000);
    const due = await btcPlan();
    expect(due.reason).not.toMatch(/next scheduled hedge/);
    expect(due.reason).toMatch(/back to the target/);
  });
});

describe.each(databases)('the window cap survives a restart (%s ledger)', (_name, database) => {
  const capped = () =>
    profile(['lyra-arb', 'gmx-arb'], (c) => {
      c.policy.perUnderlying = {};
      c.policy.default = { ...c.policy.default, caps: { maxWindowUsd: 200_000, windowMinutes: 60 } };
    });
  const deltaUsd = (p: PlanForExecution) =>
    p.legs.filter((l) => !isOption(l)).reduce((s, l) => s + Number(l.sizeBase) * l.referencePriceUsd, 0);
  /** A perp leg on gmx-arb recorded earlier (by hand, as execution would). */
  const leg = (
    id: string,
    underlying: string,
    sizeBase: string,
    referencePriceUsd: number,
    createdAtMs: number,
  ): HedgeIntent => ({
    id,
    planId: `plan_${id}`,
    underlying,
    venue: 'gmx-arb',
    chain: 'evm:42161',
    instrument: `${underlying}-USD:PERP`,
    side: 'sell',
    sizeBase,
    orderType: 'market',
    referencePriceUsd,
    reduceOnly: false,
    urgency: 'normal',
    reason: 'an earlier hedge',
    createdAtMs,
    dependsOn: [],
  });
  /** What execution writes of a plan: every leg queued, then `then` on each. */
  const record = async (
    h: Harness,
    plan: PlanForExecution,
    then: (clientOrderId: string) => Promise<void>,
  ) => {
    await h.ledger.recordPlan(
      plan.legs.map((l) => ({ intent: l, clientOrderId: clientOrderIdFor(l.id), status: 'queued' as const })),
      { actor: 'test' },
    );
    for (const l of plan.legs) await then(clientOrderIdFor(l.id));
  };

  it('a restarted planner counts the window hedged before it (a sent order the venue rejected included)', async () => {
    const logs: string[] = [];
    const h = await harness(
      capped(),
      undefined,
      undefined,
      { log: (_level, msg, data) => logs.push(`${msg} ${JSON.stringify(data ?? {})}`) },
      database,
    );
    const first = btcPlans(await h.planner.plan())[0] as PlanForExecution;
    expect(deltaUsd(first)).toBeGreaterThan(199_000);
    expect(deltaUsd(first)).toBeLessThanOrEqual(200_000 + 1e-6);
    await record(h, first, async (id) => {
      await h.ledger.recordSend(id, { actor: 'test', atMs: h.clock.nowMs() });
      await h.ledger.transition(id, 'rejected', { actor: 'test', patch: { error: 'venue refused' } });
    });
    h.planner.onPlanned(first, queuedAll(first));
    h.clock.advance(1000);
    expect(btcPlans(await h.planner.plan())).toEqual([]);
    // the process restarts: the window is the ledger's, not empty
    const restarted = h.restart();
    h.clock.advance(1000);
    expect(btcPlans(await restarted.plan())).toEqual([]);
    expect(logs.some((l) => l.startsWith('hedge windows start from the ledger'))).toBe(true);
    expect(logs.filter((l) => l.startsWith('no BTC hedge: window-cap-reached')).length).toBeGreaterThan(0);
    // and the window rolls as it would have
    h.clock.advance(60 * 60_000);
    expect(btcPlans(await restarted.plan())).toHaveLength(1);
  });

  it('a planner leading again counts the hedges another leader placed meanwhile (regression: its windows were seeded once per process)', async () => {
    const logs: string[] = [];
    const h = await harness(
      capped(),
      undefined,
      undefined,
      { log: (_level, msg) => logs.push(msg) },
      database,
    );
    const a = h.planner;
    // A leads first (its windows start from the empty ledger); it loses the lease before submitting
    expect(btcPlans(await a.plan({ leaseToken: 1 }))).toHaveLength(1);
    // B leads and hedges the whole window cap
    const b = h.restart();
    h.clock.advance(1000);
    const hedged = btcPlans(await b.plan({ leaseToken: 2 }))[0] as PlanForExecution;
    expect(deltaUsd(hedged)).toBeGreaterThan(199_000);
    await record(h, hedged, async (id) => {
      await h.ledger.recordSend(id, { actor: 'test', atMs: h.clock.nowMs() });
      await h.ledger.transition(id, 'rejected', { actor: 'test', patch: { error: 'venue refused' } });
    });
    b.onPlanned(hedged, queuedAll(hedged));
    // A leads again, in the same process: B's hedge is in its window
    h.clock.advance(1000);
    expect(btcPlans(await a.plan({ leaseToken: 3 }))).toEqual([]);
    expect(logs).toContain('no BTC hedge: window-cap-reached');
    // the same term's next tick keeps its windows (no second read of the ledger)
    const reads = logs.filter((l) => l.startsWith('hedge windows start from the ledger')).length;
    h.clock.advance(1000);
    expect(btcPlans(await a.plan({ leaseToken: 3 }))).toEqual([]);
    expect(logs.filter((l) => l.startsWith('hedge windows start from the ledger')).length).toBe(reads);
  });

  it('a policy change keeps every hedge of the window, however many (regression: past 10,000 the oldest 5,000 were dropped, in the window or not)', async () => {
    const config = capped();
    const h = await harness(config, undefined, undefined, {}, database);
    // 30 min ago: a BTC hedge of $150,000 (sent, then refused: it counts), then 10,000 small ETH orders
    // still queued (ETH waits for them; they fill the list of executions the planner keeps)
    const t0 = h.clock.nowMs();
    const btc = leg('int_btc_earlier', 'BTC', '1.5', 100_000, t0);
    await h.ledger.recordPlan([{ intent: btc, clientOrderId: clientOrderIdFor(btc.id), status: 'queued' }], {
      actor: 'test',
    });
    await h.ledger.recordSend(clientOrderIdFor(btc.id), { actor: 'test', atMs: h.clock.nowMs() });
    await h.ledger.transition(clientOrderIdFor(btc.id), 'rejected', {
      actor: 'test',
      patch: { error: 'refused' },
    });
    for (let batch = 0; batch < 10; batch++)
      await h.ledger.recordPlan(
        Array.from({ length: 1000 }, (_, i) => {
          const intent = leg(`int_eth_${batch}_${i}`, 'ETH', '0.001', 3500, t0 + 1 + batch * 1000 + i);
          return { intent, clientOrderId: clientOrderIdFor(intent.id), status: 'queued' as const };
        }),
        { actor: 'test' },
      );
    h.clock.advance(30 * 60_000);
    // the $50,000 left of the BTC cap goes out
    const rest = btcPlans(await h.planner.plan())[0] as PlanForExecution;
    expect(deltaUsd(rest)).toBeGreaterThan(49_000);
    expect(deltaUsd(rest)).toBeLessThanOrEqual(50_000 + 1e-6);
    h.planner.onPlanned(rest, queuedAll(rest));
    // an operator changes the policy: the new strategy still sees the window used up
    config.policy.default = { ...config.policy.default, minTradeUsd: 101 };
    h.clock.advance(1000);
    expect(btcPlans(await h.planner.plan())).toEqual([]);
  }, 60_000);

  it('more legs in one ms than a ledger page: a restart does not hedge past the cap (regression: those after the first 5,000 of that ms were skipped)', async () => {
    const h = await harness(capped(), undefined, undefined, {}, database);
    // 30 min ago, all in the same ms: 5,000 small ETH legs (queued), then (its id sorts after theirs) a
    // BTC leg of the whole $200,000 cap, sent and then refused by the venue (it counts)
    const atMs = h.clock.nowMs();
    for (let batch = 0; batch < 5; batch++)
      await h.ledger.recordPlan(
        Array.from({ length: 1000 }, (_, i) => {
          const intent = leg(`int_a_${batch}_${String(i).padStart(4, '0')}`, 'ETH', '0.001', 3500, atMs);
          return { intent, clientOrderId: clientOrderIdFor(intent.id), status: 'queued' as const };
        }),
        { actor: 'test' },
      );
    const btc = leg('int_z_btc', 'BTC', '2', 100_000, atMs);
    await h.ledger.recordPlan([{ intent: btc, clientOrderId: clientOrderIdFor(btc.id), status: 'queued' }], {
      actor: 'test',
    });
    await h.ledger.recordSend(clientOrderIdFor(btc.id), { actor: 'test', atMs: atMs });
    await h.ledger.transition(clientOrderIdFor(btc.id), 'rejected', {
      actor: 'test',
      patch: { error: 'refused' },
    });
    h.clock.advance(30 * 60_000);
    // the BTC leg past the first 5,000 of its ms is read: the window is full, no BTC hedge
    expect(btcPlans(await h.restart().plan())).toEqual([]);
    // once that ms is out of the window, hedging resumes
    h.clock.advance(30 * 60_000 + 1);
    expect(btcPlans(await h.restart().plan())).toHaveLength(1);
  }, 60_000);

  it('a ms split by the ledger page is counted once: the rest read, none twice', async () => {
    const h = await harness(capped(), undefined, undefined, {}, database);
    // 30 min ago: 19 small ETH legs and a $100,000 BTC leg (sent, refused: it counts) in one ms, then
    // 4,990 small ETH legs in the next: the first page ends 10 legs into the earlier ms
    const atMs = h.clock.nowMs();
    const queued = (intent: HedgeIntent) => ({
      intent,
      clientOrderId: clientOrderIdFor(intent.id),
      status: 'queued' as const,
    });
    await h.ledger.recordPlan(
      Array.from({ length: 19 }, (_, i) =>
        queued(leg(`int_b_${String(i).padStart(2, '0')}`, 'ETH', '0.001', 3500, atMs)),
      ),
      { actor: 'test' },
    );
    const btc = leg('int_z_btc', 'BTC', '1', 100_000, atMs);
    await h.ledger.recordPlan([queued(btc)], { actor: 'test' });
    await h.ledger.recordSend(clientOrderIdFor(btc.id), { actor: 'test', atMs });
    await h.ledger.transition(clientOrderIdFor(btc.id), 'rejected', {
      actor: 'test',
      patch: { error: 'refused' },
    });
    for (let batch = 0; batch < 5; batch++)
      await h.ledger.recordPlan(
        Array.from({ length: 998 }, (_, i) =>
          queued(leg(`int_a_${batch}_${String(i).padStart(3, '0')}`, 'ETH', '0.001', 3500, atMs + 1)),
        ),
        { actor: 'test' },
      );
    h.clock.advance(30 * 60_000);
    // the $100,000 left of the cap: the BTC leg counted once (twice: nothing left; never: $200,000)
    const rest = btcPlans(await h.restart().plan())[0] as PlanForExecution;
    expect(deltaUsd(rest)).toBeGreaterThan(99_000);
    expect(deltaUsd(rest)).toBeLessThanOrEqual(100_000 + 1e-6);
  }, 60_000);

  it('legs blocked when planned (never sent) do not count after a restart', async () => {
    const h = await harness(capped(), undefined, undefined, {}, database);
    const first = btcPlans(await h.planner.plan())[0] as PlanForExecution;
    await record(h, first, async (id) => {
      await h.ledger.transition(id, 'cancelled', {
        actor: 'test',
        patch: { error: 'blocked by kill-switch: engaged: drill' },
      });
    });
    const restarted = h.restart();
    h.clock.advance(1000);
    const again = btcPlans(await restarted.plan())[0] as PlanForExecution;
    expect(deltaUsd(again)).toBeGreaterThan(199_000);
  });
});

describe('venue minimums reach the strategy (regression: a per-order cap below them was raised past the cap by routing)', () => {
  it('a per-order cap below the only perp venue minimum gives no plan, and a warning once', async () => {
    const logs: string[] = [];
    const h = await harness(
      profile(['lyra-arb', 'gmx-arb'], (c) => {
        c.policy.perUnderlying = {};
        c.policy.default = { ...c.policy.default, maxOrderUsd: 50_000 };
      }),
      // gmx-arb takes no BTC perp order under 1 BTC (≈ $95,000): more than maxOrderUsd buys
      (v) =>
        v.id !== 'gmx-arb'
          ? v
          : new Proxy(v, {
              get(target, prop) {
                if (prop === 'loadMarkets')
                  return async () =>
                    (await target.loadMarkets()).map((m) =>
                      m.instrument.id === 'BTC-USD:PERP' ? { ...m, minSizeBase: '1' } : m,
                    );
                const x = Reflect.get(target, prop, target);
                return typeof x === 'function' ? x.bind(target) : x;
              },
            }),
      undefined,
      { log: (_level, msg, data) => logs.push(`${msg} ${JSON.stringify(data ?? {})}`) },
    );
    expect(btcPlans(await h.planner.plan())).toEqual([]);
    h.clock.advance(1000);
    expect(btcPlans(await h.planner.plan())).toEqual([]);
    const warned = logs.filter((l) => l.startsWith('no BTC hedge: order-cap-below-minimum'));
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatch(/maxOrderUsd \$50,000 .* is below the smallest order, 1 BTC/);
  });
});

describe("venue Greeks reach the risk engine's divergence check (regression: the runtime never read them)", () => {
  const LYRA_OPTIONS = [
    'BTC-USD:OPT:20261225:100000:C',
    'BTC-USD:OPT:20261225:90000:P',
    'BTC-USD:OPT:20270326:110000:C',
    'ETH-USD:OPT:20261225:4000:C',
    'ETH-USD:OPT:20261225:3000:P',
  ];

  /**
   * lyra-arb (paper Lyra, publishes Greeks) and gmx-arb (does not), with lyra-arb's Greeks read as the
   * venue gives them ('real'), with 0.1 added to each delta ('skewed': another convention, a broken
   * feed), or failing ('down', the error holding a credential). Every fetchGreeks call is recorded.
   */
  async function withGreeks(edit?: (c: XhedgeConfig) => void) {
    const state = { mode: 'real' as 'real' | 'skewed' | 'down' | 'bad-time' };
    const asked: { venue: string; instruments: readonly string[] | undefined }[] = [];
    const logs: { level: string; msg: string; data: string }[] = [];
    const h = await harness(
      profile(['lyra-arb', 'gmx-arb'], edit),
      (v) =>
        new Proxy(v, {
          get(target, prop) {
            if (prop === 'fetchGreeks' && target.fetchGreeks) {
              const real = target.fetchGreeks.bind(target);
              return async (instruments?: readonly string[]) => {
                asked.push({ venue: target.id, instruments });
                if (state.mode === 'down')
                  throw new Error('rpc https://user:s3cr3t@lyra-rpc.example/v1 timed out');
                const g = await real(instruments);
                if (state.mode === 'real') return g;
                const skewed = g.map((x) => ({ ...x, greeks: { ...x.greeks, delta: x.greeks.delta + 0.1 } }));
                // 'bad-time': the first entry's time is no ms since epoch (the engine refuses such a set)
                if (state.mode === 'bad-time' && skewed[0]) skewed[0] = { ...skewed[0], asOfMs: Number.NaN };
                return skewed;
              };
            }
            const x = Reflect.get(target, prop, target);
            return typeof x === 'function' ? x.bind(target) : x;
          },
        }) as VenueAdapter,
      undefined,
      { log: (level, msg, data) => logs.push({ level, msg, data: JSON.stringify(data ?? {}) }) },
    );
    const snap = () => h.planner.lastSnapshot as NonNullable<TickPlanner['lastSnapshot']>;
    return { h, state, asked, logs, snap };
  }

  it('asks lyra-arb for the options it holds each tick: no divergence when they agree, one per option when its delta differs', async () => {
    const { h, state, asked, snap } = await withGreeks();
    expect(h.venue('lyra-arb').capabilities.venueGreeks).toBe(true);
    await h.planner.plan();
    // only the venue with venueGreeks, only for the options it holds
    expect(asked.map((a) => a.venue)).toEqual(['lyra-arb']);
    expect([...(asked[0]?.instruments ?? [])].sort()).toEqual([...LYRA_OPTIONS].sort());
    expect(snap().divergences).toEqual([]);
    expect(snap().warnings.join('\n')).not.toMatch(/lyra-arb (published|Greeks)/);
    state.mode = 'skewed';
    h.clock.advance(1000);
    await h.planner.plan();
    expect(asked).toHaveLength(2);
    const d = snap().divergences;
    expect(d.map((x) => `${x.venue} ${x.instrument} ${x.greek}`).sort()).toEqual(
      LYRA_OPTIONS.map((i) => `lyra-arb ${i} delta`).sort(),
    );
    for (const x of d) expect(x.venueValue - x.local).toBeCloseTo(0.1, 9);
    // agreeing again: the divergences go with the new set
    state.mode = 'real';
    h.clock.advance(1000);
    await h.planner.plan();
    expect(snap().divergences).toEqual([]);
  });

  it('does not ask a venue that holds no option (no extra read per tick)', async () => {
    const { h, asked, snap } = await withGreeks((c) => {
      c.book.positions = c.book.positions.filter((p) => p.venue !== 'lyra-arb');
    });
    await h.planner.plan();
    h.clock.advance(1000);
    await h.planner.plan();
    expect(asked).toEqual([]);
    expect(snap().underlyings.BTC?.positionCount).toBeGreaterThan(0);
  });

  it('a failing read leaves the tick and the other venues alone, is logged once per streak (masked), and its last Greeks are not compared once stale', async () => {
    const { h, state, logs, snap } = await withGreeks();
    const base = await withGreeks();
    state.mode = 'skewed';
    await h.planner.plan();
    expect(snap().divergences).toHaveLength(LYRA_OPTIONS.length);
    state.mode = 'down';
    const warned = () => logs.filter((l) => /Greeks of venue lyra-arb not read/.test(l.msg));
    // within staleAfterMs (30 s) the last set is still compared
    h.clock.advance(1000);
    const plans = await h.planner.plan();
    expect(snap().divergences).toHaveLength(LYRA_OPTIONS.length);
    // the rest of the tick as without the failure: the same book, the same hedges planned
    await base.h.planner.plan();
    base.h.clock.advance(1000);
    const basePlans = await base.h.planner.plan();
    expect(snap().underlyings.BTC?.delta).toBeCloseTo(base.snap().underlyings.BTC?.delta ?? Number.NaN, 9);
    expect(plans.map((p) => p.underlying)).toEqual(basePlans.map((p) => p.underlying));
    // past it: listed as stale, not compared
    for (let i = 0; i < 3; i++) {
      h.clock.advance(15_000);
      await h.planner.plan();
    }
    expect(snap().divergences).toEqual([]);
    expect(snap().stale.filter((s) => s.kind === 'venue-greeks' && s.venue === 'lyra-arb')).toHaveLength(
      LYRA_OPTIONS.length,
    );
    expect(snap().warnings).toContainEqual(
      expect.stringMatching(
        /^lyra-arb Greeks of 5 instrument\(s\) held are older than 30000 ms: not compared/,
      ),
    );
    expect(warned()).toHaveLength(1);
    expect(warned()[0]?.level).toBe('warn');
    expect(warned()[0]?.data).toContain('https://[redacted]@lyra-rpc.example/v1 timed out');
    expect(JSON.stringify(logs)).not.toContain('s3cr3t');
    // read again: logged once, compared again
    state.mode = 'skewed';
    h.clock.advance(1000);
    await h.planner.plan();
    h.clock.advance(1000);
    await h.planner.plan();
    expect(logs.filter((l) => /Greeks of venue lyra-arb read again/.test(l.msg))).toHaveLength(1);
    expect(snap().divergences).toHaveLength(LYRA_OPTIONS.length);
    expect(snap().stale.filter((s) => s.kind === 'venue-greeks')).toEqual([]);
    // a new streak is logged again
    state.mode = 'down';
    h.clock.advance(1000);
    await h.planner.plan();
    expect(warned()).toHaveLength(2);
  });

  it('an entry without a valid time is left out and logged once; the tick goes on and the others are compared', async () => {
    const { h, state, logs, snap } = await withGreeks();
    state.mode = 'bad-time';
    for (let i = 0; i < 2; i++) {
      h.clock.advance(1000);
      await h.planner.plan();
    }
    expect(snap().divergences).toHaveLength(LYRA_OPTIONS.length - 1);
    const left = logs.filter((l) => /Greeks of venue lyra-arb: entries .* left out/.test(l.msg));
    expect(left).toHaveLength(1);
    expect(left[0]?.data).toMatch(/"leftOutCount":1/);
  });
});

describe('breakers that cannot observe (regression: a Redis outage failed every tick and froze the risk view)', () => {
  it.skipIf(!hasRedisServer())(
    'the snapshot is published with a warning while Redis is down, and no plan is made from that tick',
    async () => {
      const server = await spawnRedisServer();
      const redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
      redis.on('error', () => {});
      try {
        const cfg = profile(['lyra-arb', 'gmx-arb', 'drift-sol']);
        const board = new BreakerBoard({
          redis,
          prefix: `xhpl${randomBytes(4).toString('hex')}`,
          config: cfg.breakers,
        });
        const logs: [string, string][] = [];
        const h = await harness(
          cfg,
          undefined,
          {
            observePrice: (u, p, ts) => board.observePrice(u, p, ts),
            observeIv: (u, iv, ts) => board.observeIv(u, iv, ts),
            observeDispersion: (u, byVenue) => board.observeDispersion(u, byVenue),
            observeEquity: (eq, o) => board.observeEquity(eq, o),
            // read for routing before the observe step, as run.ts passes it: it must not fail the tick
            coolingDown: (names) => board.coolingDown(names),
            // the chain breaker trips only on a halt: not under test here
            observeChain: async () => {},
          },
          { log: (level, msg) => logs.push([level, msg]) },
        );
        await server.kill();
        const down = await h.planner.plan();
        expect(down).toEqual([]);
        const snap = h.planner.lastSnapshot;
        expect(snap?.warnings.some((w) => /circuit breakers could not observe this tick/.test(w))).toBe(true);
        // published: the ledger has it (the bus writes the first one)
        expect((await h.ledger.latestRiskSnapshot())?.seq).toBe(snap?.seq);
        h.clock.advance(60_000);
        expect(await h.planner.plan()).toEqual([]);
        // logged once per streak
        expect(logs.filter(([l, m]) => l === 'warn' && /could not observe the tick/.test(m))).toHaveLength(1);
        expect(logs.filter(([l, m]) => l === 'warn' && /could not be read for routing/.test(m))).toHaveLength(
          1,
        );
        // with Redis back the same book is hedged: that tick would have planned
        await server.start();
        h.clock.advance(60_000);
        const back = await h.planner.plan();
        expect(back.length).toBeGreaterThan(0);
        expect(h.planner.lastSnapshot?.warnings.some((w) => /could not observe/.test(w))).toBe(false);
        expect(logs.some(([, m]) => m === 'the circuit breakers observe the tick again')).toBe(true);
      } finally {
        redis.disconnect();
        server.stop();
      }
    },
    120_000,
  );
});
