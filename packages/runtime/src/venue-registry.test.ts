import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, VenueConfig, type XhedgeConfig } from '@xhedge/config';
import { deterministicId, type HedgeIntent, ManualClock } from '@xhedge/core';
import {
  clientOrderIdFor,
  closeRedisClient,
  connectRedis,
  ExecutionService,
  type RedisEndpoint,
  startWorkers,
  VenueMarketData,
} from '@xhedge/execution';
import { controlStack, silentRedisProxy } from '@xhedge/execution/testing';
import { Ledger, openDatabase } from '@xhedge/store';
import { isVenueError, type VenueAdapter } from '@xhedge/venue';
import { Redis as IORedis, type Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SharedConfigStore } from './config-store.ts';
import { TickPlanner } from './planner.ts';
import { createRouter } from './router.ts';
import { SnapshotBus } from './snapshot-bus.ts';
import { VenueRegistry, type VenueWorkers } from './venue-registry.ts';
import { buildVenue, buildVenues } from './venues.ts';

const PAPER = readFileSync(new URL('../../../configs/profiles/paper.yaml', import.meta.url), 'utf8');
const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const actor = { tokenId: 't', name: 'alice', role: 'operator' as const };

/**
 * Paper profile: lyra-arb and gmx-arb enabled, drift-sol disabled (its book entries stay: a 40 ETH perp
 * and 1 000 000 USDC), no uni-eth.
 */
function profile(): XhedgeConfig {
  const c = parseConfig(PAPER, 'paper.yaml');
  c.name = `registry-${process.pid}`;
  c.venues = c.venues.filter((v) => v.id !== 'uni-eth');
  c.book.balances = c.book.balances.filter((b) => b.venue !== 'uni-eth');
  const drift = c.venues.find((v) => v.id === 'drift-sol');
  if (drift) drift.enabled = false;
  // A narrow BTC band, so the first tick decides to hedge and routing is asked.
  c.policy.default = { ...c.policy.default, kind: 'band', bandDelta: 0.001 } as typeof c.policy.default;
  return c;
}

/** The pool as the registry sees it, recording what it is asked. */
class FakeWorkers implements VenueWorkers {
  readonly map = new Map<string, VenueAdapter>();
  readonly added: string[] = [];
  readonly replaced: string[] = [];
  get venueIds(): string[] {
    return [...this.map.keys()];
  }
  venue(id: string): VenueAdapter | undefined {
    return this.map.get(id);
  }
  async addVenue(id: string, adapter: VenueAdapter): Promise<void> {
    this.added.push(id);
    this.map.set(id, adapter);
  }
  async replaceVenue(id: string, next: (current: VenueAdapter) => Promise<VenueAdapter>) {
    const cur = this.map.get(id);
    if (!cur) throw new Error(`no ${id}`);
    const n = await next(cur);
    this.map.set(id, n);
    if (n !== cur) this.replaced.push(id);
    return cur;
  }
}

let ep: RedisEndpoint;
let redis: Redis;
const cleanup: (() => Promise<unknown>)[] = [];
let n = 0;

beforeAll(async () => {
  ep = await connectRedis({ url: REDIS_URL });
  redis = ep.client();
});
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});
afterAll(async () => {
  await redis.quit();
  await ep.close();
});

interface HarnessOptions {
  /** Venues whose builds fail from the start on (`failing` of the harness). */
  failing?: readonly string[];
  /** What a failing build throws. */
  failure?: (id: string) => Error;
  /** Each build waits for this first (a slow build). */
  slowBuild?: (id: string) => Promise<void>;
  disabledWaitMs?: number;
  /** Built adapters' position and balance reads fail while their venue is in this set (an RPC down). */
  brokenReads?: Set<string>;
  /** Changes to the profile before anything runs. */
  edit?: (c: XhedgeConfig) => void;
  /** Whether the harness attaches its fake worker pool. @defaultValue true */
  fakeWorkers?: boolean;
}

/** `adapter`, with its position and balance reads failing while `broken` lists its venue. */
function breakable(adapter: VenueAdapter, broken: ReadonlySet<string>): VenueAdapter {
  return new Proxy(adapter, {
    get: (target, prop) => {
      if ((prop === 'fetchPositions' || prop === 'fetchBalances') && broken.has(target.id))
        return async () => {
          throw new Error(`rpc of ${target.id} refused the read`);
        };
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

async function harness(o: HarnessOptions = {}) {
  const config = profile();
  o.edit?.(config);
  const clock = new ManualClock(Date.UTC(2026, 0, 5));
  const prefix = `{xhedge}:registry-test-${process.pid}-${++n}`;
  cleanup.push(async () => {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
  });
  const store = new SharedConfigStore({ redis, prefix, config });
  await store.init();
  const ledger = new Ledger(await openDatabase({}), { clock });
  cleanup.push(() => ledger.close());
  const dataDir = mkdtempSync(join(tmpdir(), 'xhedge-registry-'));
  cleanup.push(async () => rmSync(dataDir, { recursive: true, force: true }));
  const built = await buildVenues({ config, clock, env: {}, dataDir });
  const logs: { level: string; msg: string; venue?: unknown; data?: Record<string, unknown> }[] = [];
  const builds: string[] = [];
  const failing = new Set<string>(o.failing ?? []);
  /** What a failing build throws. */
  const failure = { error: o.failure ?? ((id: string): Error => new Error(`rpc of ${id} down`)) };
  const registry = new VenueRegistry({
    initial: built.all.map((adapter) => ({
      config: config.venues.find((v) => v.id === adapter.id) as VenueConfig,
      adapter,
    })),
    build: async (v, previous) => {
      builds.push(v.id);
      await o.slowBuild?.(v.id);
      if (failing.has(v.id)) throw failure.error(v.id);
      const a = await buildVenue(v, { config, clock, env: {}, dataDir, market: built.market }, previous);
      return o.brokenReads ? breakable(a, o.brokenReads) : a;
    },
    current: () => store.venues(),
    workingOrders: async (venue) =>
      (
        await ledger.listOrders({
          venue,
          status: ['sent', 'acknowledged', 'partially-filled', 'outcome-unknown'],
          limit: 1,
        })
      ).length,
    log: (level, msg, data) => logs.push({ level, msg, venue: data?.venue, ...(data ? { data } : {}) }),
    ...(o.disabledWaitMs !== undefined ? { disabledWaitMs: o.disabledWaitMs } : {}),
  });
  cleanup.push(() => registry.close());
  // as the run starts: the stored configs apply before the workers start (drift-sol, disabled, is
  // built read-only here)
  const start = await registry.sync();
  builds.length = 0;
  const workers = new FakeWorkers();
  if (o.fakeWorkers !== false)
    await registry.attachWorkers(async (venues) => {
      for (const [id, a] of venues) workers.map.set(id, a);
      return workers;
    });
  const port = store.venuesPort();
  const ids = () => registry.adapters().map((a) => a.id);
  return {
    start,
    prefix,
    config,
    clock,
    store,
    port,
    ledger,
    registry,
    workers,
    logs,
    builds,
    failing,
    failure,
    ids,
    market: built.market,
  };
}

const perp = (id: string, params: Record<string, unknown> = {}) =>
  VenueConfig.parse({ id, kind: 'paper-drift', chain: 'solana:mainnet-beta', params });

describe('venue registry: stored venue configs → running adapters', () => {
  it('does nothing while the stored configs match what runs', async () => {
    const h = await harness();
    expect(h.start).toEqual({ added: ['drift-sol'], replaced: [], deferred: [], failed: [], refused: [] });
    expect(h.ids()).toEqual(['lyra-arb', 'gmx-arb', 'drift-sol']);
    const r = await h.registry.sync();
    expect(r).toEqual({ added: [], replaced: [], deferred: [], failed: [], refused: [] });
    expect(h.builds).toEqual([]);
    expect(h.workers.venueIds).toEqual(['lyra-arb', 'gmx-arb', 'drift-sol']);
  });

  it('builds a venue added through the API and starts its worker; once', async () => {
    const h = await harness();
    await h.port.add(perp('drift-two'), actor);
    const r = await h.registry.sync();
    expect(r.added).toEqual(['drift-two']);
    const a = h.registry.get('drift-two');
    expect(a?.chain).toBe('solana:mainnet-beta');
    expect(h.registry.byId.get('drift-two')).toBe(a);
    expect(h.workers.added).toEqual(['drift-two']);
    // the worker gets the venue's view for execution (it refuses orders while the venue is disabled)
    expect(h.workers.venue('drift-two')).toBe(h.registry.forExecution.get('drift-two'));
    expect(h.workers.venue('drift-two')?.id).toBe('drift-two');
    expect(h.ids()).toEqual(['lyra-arb', 'gmx-arb', 'drift-sol', 'drift-two']);
    // it prices from the run's market, like the venues of the start
    const [mark] = (await a?.fetchMarks(['ETH-USD:PERP'])) ?? [];
    expect(mark?.markPriceUsd).toBeCloseTo(h.market?.spot('ETH') ?? 0, -1);
    // nothing changed since: no second build
    expect((await h.registry.sync()).added).toEqual([]);
    expect(h.builds).toEqual(['drift-two']);
  });

  it('builds a venue disabled in the profile at start, read-only, seeded from the profile book; enabling it keeps that adapter', async () => {
    const h = await harness();
    const drift = h.registry.get('drift-sol');
    expect(h.registry.configOf('drift-sol')?.enabled).toBe(false);
    expect((await drift?.fetchPositions())?.map((p) => [p.instrument, p.sizeBase])).toEqual([
      ['ETH-USD:PERP', 40],
    ]);
    expect((await drift?.fetchBalances())?.find((b) => b.asset === 'USDC')?.amount).toBe(1_000_000);
    expect(h.logs.map((l) => l.msg)).toContain(
      'venue drift-sol (paper-drift on solana:mainnet-beta) is disabled: built read-only (its positions are in the book; no order is sent there)',
    );
    // it has a worker (for orders working there), which takes no new order
    expect(h.workers.venue('drift-sol')).toBe(h.registry.forExecution.get('drift-sol'));
    const stored = (await h.port.get('drift-sol')) as VenueConfig;
    await h.port.update('drift-sol', { ...stored, enabled: true }, actor);
    expect(await h.registry.sync()).toEqual({
      added: [],
      replaced: [],
      deferred: [],
      failed: [],
      refused: [],
    });
    expect(h.registry.get('drift-sol')).toBe(drift);
    expect(h.builds).toEqual([]);
    expect(h.logs.map((l) => l.msg)).toContain('venue drift-sol enabled');
  });

  it('a venue enabled while a sync waits on another venue (a hung build) takes orders at once (regression: refused as disabled until the stuck sync ended)', async () => {
    let release = () => {};
    const hung = new Promise<void>((r) => {
      release = r;
    });
    const h = await harness({
      slowBuild: async (id) => {
        if (id === 'drift-two') await hung;
      },
    });
    await h.port.add(perp('drift-two'), actor);
    const stuck = h.registry.sync(); // waits on drift-two's build
    await new Promise((r) => setTimeout(r, 50));
    const stored = (await h.port.get('drift-sol')) as VenueConfig;
    await h.port.update('drift-sol', { ...stored, enabled: true }, actor);
    // the planner's tick passes the configs it plans with: drift-sol enabled, routed to
    expect(await h.registry.syncIfIdle(await h.port.list())).toEqual({
      added: [],
      replaced: [],
      deferred: [],
      failed: [],
      refused: [],
    });
    try {
      const view = h.registry.forExecution.get('drift-sol') as VenueAdapter;
      const order = await view.placeOrder({
        clientOrderId: 'xh-enabled-mid-sync',
        instrument: 'ETH-USD:PERP',
        side: 'sell',
        sizeBase: '1',
        orderType: 'market',
      });
      expect(order.clientOrderId).toBe('xh-enabled-mid-sync');
    } finally {
      release();
      await stuck;
    }
  });

  it('keeps a disabled venue: risk reads its positions, routing gets the enabled venues only', async () => {
    const h = await harness();
    const gmx = h.registry.get('gmx-arb');
    await h.port.disable('gmx-arb', actor);
    expect(await h.registry.sync()).toEqual({
      added: [],
      replaced: [],
      deferred: [],
      failed: [],
      refused: [],
    });
    expect(h.registry.get('gmx-arb')).toBe(gmx);
    expect(h.registry.configOf('gmx-arb')?.enabled).toBe(false);
    expect(h.logs.map((l) => l.msg)).toContain('venue gmx-arb disabled');
    const routed: string[][] = [];
    const planner = new TickPlanner({
      clock: h.clock,
      ...(h.market ? { market: h.market } : {}),
      venues: async (configs) => {
        await h.registry.sync(configs);
        return h.registry.adapters();
      },
      ledger: h.ledger,
      bus: new SnapshotBus(h.ledger),
      currentVenues: () => h.store.venues(),
      currentPolicy: () => h.store.policy(),
      route: async (_d, venues) => {
        routed.push(venues.map((v) => v.id));
        return undefined;
      },
      staleAfterMs: h.config.limits.staleAfterMs,
      log: () => {},
    });
    await planner.plan();
    // gmx-arb holds the BTC perp of the book: still in the snapshot
    expect(planner.lastSnapshot?.underlyings.BTC?.byVenue['gmx-arb']).toBeDefined();
    expect(routed.length).toBeGreaterThan(0);
    for (const r of routed) expect(r).toEqual(['lyra-arb']);
  });

  it('new params wait for the venue working orders, then a rebuilt adapter takes over with the book', async () => {
    const h = await harness();
    const old = h.registry.get('gmx-arb');
    const oldView = h.workers.venue('gmx-arb');
    // an order working at gmx-arb (sent, not final)
    const intent: HedgeIntent = {
      id: deterministicId('int', 'registry', n),
      planId: deterministicId('plan', 'registry', n),
      underlying: 'BTC',
      venue: 'gmx-arb',
      chain: 'evm:42161',
      instrument: 'BTC-USD:PERP',
      side: 'sell',
      sizeBase: '0.1',
      orderType: 'market',
      referencePriceUsd: 95_000,
      reduceOnly: false,
      urgency: 'normal',
      reason: 'test',
      createdAtMs: h.clock.nowMs(),
      dependsOn: [],
    };
    const cid = clientOrderIdFor(intent.id);
    await h.ledger.recordIntent(intent, { clientOrderId: cid, actor: 'test' });
    await h.ledger.transition(cid, 'queued', { actor: 'test' });
    await h.ledger.transition(cid, 'sent', { actor: 'test' });
    const stored = (await h.port.get('gmx-arb')) as VenueConfig;
    await h.port.update('gmx-arb', { ...stored, params: { keeperDelayMs: 100 } }, actor);
    expect((await h.registry.sync()).deferred).toEqual(['gmx-arb']);
    expect((await h.registry.sync()).deferred).toEqual(['gmx-arb']);
    expect(h.registry.get('gmx-arb')).toBe(old);
    expect(h.registry.configOf('gmx-arb')?.params).toEqual({ keeperDelayMs: 1500 });
    expect(h.builds).toEqual([]);
    // said once, not at every sync
    expect(
      h.logs.filter((l) => l.venue === 'gmx-arb' && /wait until its working orders end/.test(l.msg)),
    ).toHaveLength(1);
    await h.ledger.transition(cid, 'cancelled', { actor: 'test' });
    expect((await h.registry.sync()).replaced).toEqual(['gmx-arb']);
    const next = h.registry.get('gmx-arb');
    expect(next).not.toBe(old);
    expect(h.workers.replaced).toEqual(['gmx-arb']);
    // the pool got the new adapter's view
    expect(h.workers.venue('gmx-arb')).toBe(h.registry.forExecution.get('gmx-arb'));
    expect(h.workers.venue('gmx-arb')).not.toBe(oldView);
    expect(h.registry.configOf('gmx-arb')?.params).toEqual({ keeperDelayMs: 100 });
    // the paper venue's book came along
    expect((await next?.fetchPositions())?.map((p) => [p.instrument, p.sizeBase])).toEqual([
      ['BTC-USD:PERP', 5],
    ]);
    expect((await next?.fetchBalances())?.find((b) => b.asset === 'USDC')?.amount).toBe(2_000_000);
  });

  it('a failed build is logged with the venue id, the run goes on, and the next sync tries again', async () => {
    const h = await harness();
    h.failing.add('drift-two');
    await h.port.add(perp('drift-two'), actor);
    expect((await h.registry.sync()).failed).toEqual(['drift-two']);
    expect((await h.registry.sync()).failed).toEqual(['drift-two']);
    expect(h.builds).toEqual(['drift-two', 'drift-two']);
    expect(h.registry.get('drift-two')).toBeUndefined();
    expect(h.workers.added).toEqual([]);
    const errors = h.logs.filter((l) => l.level === 'error');
    expect(errors).toHaveLength(1); // the same failure is logged once
    expect(errors[0]?.venue).toBe('drift-two');
    expect(errors[0]?.msg).toBe(
      'venue drift-two (paper-drift on solana:mainnet-beta): rpc of drift-two down (not built; tried again at every sync)',
    );
    h.failing.delete('drift-two');
    expect((await h.registry.sync()).added).toEqual(['drift-two']);
    expect(h.workers.added).toEqual(['drift-two']);

    // bad params: the API's port refuses them, naming the field; stored around the API anyway, the
    // build fails with the venue and the field in the log; fixed params build
    await expect(h.port.add(perp('drift-bad', { takerFeeBps: 'ten' }), actor)).rejects.toThrow(
      /venue drift-bad \(paper-drift\): params\.takerFeeBps: Invalid input: expected number/,
    );
    await expect(h.port.add(perp('drift-bad', { takerFeeBsp: 10 }), actor)).rejects.toThrow(
      /params: Unrecognized key: "takerFeeBsp"/,
    );
    const around = [...(await h.store.venues()), perp('drift-bad', { takerFeeBps: 'ten' })];
    expect((await h.registry.sync(around)).failed).toEqual(['drift-bad']);
    expect(h.logs.find((l) => l.venue === 'drift-bad')?.msg).toMatch(/drift-bad.*takerFeeBps/);
    await h.port.add(perp('drift-bad', { takerFeeBps: 10 }), actor);
    expect((await h.registry.sync()).added).toEqual(['drift-bad']);
    await expect(h.port.update('drift-bad', perp('drift-bad', { levels: 0 }), actor)).rejects.toThrow(
      /params\.levels/,
    );
  });

  /** A planner over the registry (as the run wires it: each tick syncs first), with real routing. */
  function plannerOn(h: Awaited<ReturnType<typeof harness>>) {
    const logs: { level: string; msg: string; data?: Record<string, unknown> }[] = [];
    const planner = new TickPlanner({
      clock: h.clock,
      ...(h.market ? { market: h.market } : {}),
      venues: async (configs) => {
        await h.registry.syncIfIdle(configs);
        return h.registry.adapters();
      },
      notRunning: (id) => h.registry.buildFailure(id),
      ledger: h.ledger,
      bus: new SnapshotBus(h.ledger),
      currentVenues: () => h.store.venues(),
      currentPolicy: () => h.store.policy(),
      route: createRouter({ maxSlippageBps: h.config.limits.maxSlippageBps, log: () => {} }),
      staleAfterMs: h.config.limits.staleAfterMs,
      log: (level, msg, data) => logs.push({ level, msg, ...(data ? { data } : {}) }),
    });
    return { planner, logs };
  }

  it('an enabled venue that cannot be built holds hedging as a venue never read does, until it is built (regression: planned as if it held nothing)', async () => {
    const h = await harness();
    h.failing.add('drift-two');
    h.failure.error = (id) => new Error(`venue ${id}: rpc https://alice:hunter2@rpc.example/ refused`);
    await h.port.add(perp('drift-two'), actor);
    const { planner, logs } = plannerOn(h);
    for (let i = 0; i < 3; i++) {
      expect(await planner.plan()).toEqual([]);
      h.clock.advance(1000);
    }
    // the book's BTC delta (gmx-arb's perp) is far outside its band: held, not hedged
    expect(Math.abs(planner.lastSnapshot?.underlyings.BTC?.delta ?? 0)).toBeGreaterThan(0.5);
    const held = logs.filter((l) => l.data?.venue === 'drift-two');
    expect(held).toHaveLength(1);
    expect(held[0]?.level).toBe('warn');
    expect(held[0]?.msg).toBe(
      'venue drift-two is enabled but not running (its adapter is not built); no hedge for any underlying (it was never read) while it is not running (logged again when this changes)',
    );
    expect(held[0]?.data?.err).toMatchObject({
      message: 'venue drift-two: rpc https://[redacted]@rpc.example/ refused',
    });
    expect(planner.lastSnapshot?.warnings).toContain(
      'venue drift-two is enabled but not running (its adapter is not built): no hedge for any underlying until it runs (it was never read)',
    );
    // the credential is nowhere: not in the planner's log, the registry's, the snapshot
    expect(JSON.stringify([logs, h.logs, planner.lastSnapshot])).not.toContain('hunter2');
    // it builds: read, logged once, and BTC is hedged
    h.failing.delete('drift-two');
    const plans = await planner.plan();
    expect(plans.map((p) => p.underlying)).toContain('BTC');
    expect(logs.filter((l) => l.data?.venue === 'drift-two').map((l) => [l.level, l.msg])).toEqual([
      ['warn', held[0]?.msg],
      ['info', 'venue drift-two runs and is read again'],
    ]);
    expect(planner.lastSnapshot?.warnings.join('\n')).not.toMatch(/drift-two/);
  });

  it('an operator who disables a venue that cannot be built ends its hold: a disabled venue it cannot build holds nothing, and the warnings say it is not read', async () => {
    const h = await harness();
    h.failing.add('drift-two');
    await h.port.add(perp('drift-two'), actor);
    const { planner, logs } = plannerOn(h);
    expect(await planner.plan()).toEqual([]);
    await h.port.disable('drift-two', actor);
    h.clock.advance(1000);
    expect((await planner.plan()).map((p) => p.underlying)).toContain('BTC');
    expect(logs.filter((l) => l.data?.venue === 'drift-two').map((l) => l.msg)).toEqual([
      'venue drift-two is enabled but not running (its adapter is not built); no hedge for any underlying (it was never read) while it is not running (logged again when this changes)',
      'disabled venue drift-two is not running (its adapter is not built); its positions are not in the book (it holds no hedge: it is disabled) while it is not running (logged again when this changes)',
    ]);
    expect(planner.lastSnapshot?.warnings).toContain(
      'disabled venue drift-two not read (its adapter is not built): its positions are not in the book until it runs (it holds no hedge: it is disabled)',
    );
  });

  /** ETH hedged on a narrow band too (the profile's ETH policy is a wide Whalley-Wilmott band). */
  const narrowEth = (c: XhedgeConfig) => {
    c.policy.perUnderlying = {};
  };

  /** Signed size of a plan's perp legs (delta 1 per unit), underlying units. */
  const perpDelta = (legs: readonly HedgeIntent[]) =>
    legs
      .filter((l) => l.instrument.endsWith(':PERP'))
      .reduce((a, l) => a + (l.side === 'buy' ? 1 : -1) * Number(l.sizeBase), 0);

  it('a venue disabled in the profile is read into the book: its 40 ETH perp is in the delta the planner hedges, and no hedge goes to it (regression: never built, it was left out: a 40 ETH hedge error)', async () => {
    const h = await harness({ edit: narrowEth });
    const { planner } = plannerOn(h);
    const plans = await planner.plan();
    const eth = planner.lastSnapshot?.underlyings.ETH;
    expect(eth?.byVenue['drift-sol']?.delta).toBeCloseTo(40, 6);
    // the options' delta and the disabled venue's perp, together
    const optionsDelta = eth?.byVenue['lyra-arb']?.delta ?? Number.NaN;
    expect(eth?.delta).toBeCloseTo(optionsDelta + 40, 6);
    const ethPlan = plans.find((p) => p.underlying === 'ETH');
    expect(ethPlan).toBeDefined();
    // the hedge brings the whole book's delta, the 40 ETH included, to about zero
    expect(Math.abs(perpDelta(ethPlan?.legs ?? []) + (eth?.delta ?? 0))).toBeLessThan(1);
    // routed to enabled venues only
    for (const p of plans) for (const l of p.legs) expect(l.venue).not.toBe('drift-sol');
    expect(planner.lastSnapshot?.warnings.join('\n')).not.toMatch(/drift-sol/);
  });

  it('no worker sends an order to a disabled venue: one naming it is refused before sending (rejected), its book unchanged; once enabled, the same adapter takes orders', async () => {
    const h = await harness({ fakeWorkers: false });
    // the execution side as the run wires it: real workers and pre-trade checks on the registry's views
    const { base } = await controlStack({
      redis: ep,
      cmd: redis,
      prefix: h.prefix,
      ledger: h.ledger,
      limits: h.config.limits,
      clock: h.clock,
    });
    const marketData = new VenueMarketData({
      venues: h.registry.forExecution,
      clock: h.clock,
      totalExposure: true,
    });
    const subscriber = ep.client();
    cleanup.push(() => closeRedisClient(subscriber));
    const pool = await h.registry.attachWorkers((venues) =>
      startWorkers({ ...base, venues, subscriber, marketData, pollIntervalMs: 20 }),
    );
    cleanup.push(() => pool.close());
    const service = new ExecutionService({ ...base, marketData });
    cleanup.push(() => service.close());
    // the disabled venue has a worker (orders working there are followed), on its view
    expect(pool.venueIds).toContain('drift-sol');
    const drift = h.registry.get('drift-sol') as VenueAdapter;
    const order = async (k: number) => {
      const intent: HedgeIntent = {
        id: deterministicId('int', 'disabled-order', n, k),
        planId: deterministicId('plan', 'disabled-order', n, k),
        underlying: 'ETH',
        venue: 'drift-sol',
        chain: 'solana:mainnet-beta',
        instrument: 'ETH-USD:PERP',
        side: 'sell',
        sizeBase: '1',
        orderType: 'market',
        referencePriceUsd: h.market?.spot('ETH') ?? 3500,
        reduceOnly: false,
        urgency: 'normal',
        reason: 'test',
        createdAtMs: h.clock.nowMs(),
        dependsOn: [],
      };
      await service.submitPlan({ planId: intent.planId, legs: [intent] });
      const cid = clientOrderIdFor(intent.id);
      const until = Date.now() + 20_000;
      for (;;) {
        const o = await h.ledger.getOrder(cid);
        if (o && ['filled', 'cancelled', 'rejected', 'failed'].includes(o.status)) return o;
        if (Date.now() > until) return o;
        await new Promise((r) => setTimeout(r, 25));
      }
    };
    const refused = await order(1);
    expect(refused?.status).toBe('rejected');
    expect(refused?.error).toMatch(/drift-sol: the venue is disabled: no new order is sent there/);
    expect((await drift.fetchPositions()).map((p) => [p.instrument, p.sizeBase])).toEqual([
      ['ETH-USD:PERP', 40],
    ]);
    // the view refuses by itself too, with a venue error that says nothing was sent
    const view = h.registry.forExecution.get('drift-sol') as VenueAdapter;
    const err = await view
      .placeOrder({
        clientOrderId: 'xh-direct-1',
        instrument: 'ETH-USD:PERP',
        side: 'sell',
        orderType: 'market',
        sizeBase: '1',
        reduceOnly: false,
      })
      .catch((e: unknown) => e);
    expect(isVenueError(err) && err.outcome).toBe('rejected');
    // enabled: the same adapter, whose view now lets orders through
    const stored = (await h.port.get('drift-sol')) as VenueConfig;
    await h.port.update('drift-sol', { ...stored, enabled: true }, actor);
    await h.registry.sync();
    expect(h.registry.get('drift-sol')).toBe(drift);
    const filled = await order(2);
    expect(filled?.status).toBe('filled');
    expect((await drift.fetchPositions()).map((p) => [p.instrument, p.sizeBase])).toEqual([
      ['ETH-USD:PERP', 39],
    ]);
  }, 60_000);

  it('a disabled venue that fails to build does not fail the start nor hold hedging: logged once (masked), named in the warnings; built later, it is read', async () => {
    const h = await harness({
      edit: narrowEth,
      failing: ['drift-sol'],
      failure: (id) => new Error(`venue ${id}: rpc https://alice:hunter2@rpc.example/ refused`),
    });
    expect(h.start.failed).toEqual(['drift-sol']);
    expect(h.registry.get('drift-sol')).toBeUndefined();
    const { planner, logs } = plannerOn(h);
    for (let i = 0; i < 3; i++) {
      const plans = await planner.plan();
      // not held: BTC and ETH are hedged (ETH without the 40 ETH it cannot read)
      expect(plans.map((p) => p.underlying).sort()).toEqual(['BTC', 'ETH']);
      h.clock.advance(1000);
    }
    expect(planner.lastSnapshot?.warnings).toContain(
      'disabled venue drift-sol not read (its adapter is not built): its positions are not in the book until it runs (it holds no hedge: it is disabled)',
    );
    // logged once by the registry (masked), once by the planner
    const built = h.logs.filter((l) => l.venue === 'drift-sol' && l.level === 'error');
    expect(built.map((l) => l.msg)).toEqual([
      'venue drift-sol: rpc https://[redacted]@rpc.example/ refused (disabled venue not built, so its positions are not in the book; it holds no hedge; tried again at every sync)',
    ]);
    const said = logs.filter((l) => l.data?.venue === 'drift-sol');
    expect(said.map((l) => [l.level, l.msg])).toEqual([
      [
        'warn',
        'disabled venue drift-sol is not running (its adapter is not built); its positions are not in the book (it holds no hedge: it is disabled) while it is not running (logged again when this changes)',
      ],
    ]);
    expect(said[0]?.data?.err).toMatchObject({
      message: 'venue drift-sol: rpc https://[redacted]@rpc.example/ refused',
    });
    expect(JSON.stringify([logs, h.logs, planner.lastSnapshot])).not.toContain('hunter2');
    // it builds: read into the book, said once, no warning left
    h.failing.delete('drift-sol');
    await planner.plan();
    expect(planner.lastSnapshot?.underlyings.ETH?.byVenue['drift-sol']?.delta).toBeCloseTo(40, 6);
    expect(planner.lastSnapshot?.warnings.join('\n')).not.toMatch(/drift-sol/);
    expect(logs.filter((l) => l.data?.venue === 'drift-sol').map((l) => l.msg)[1]).toBe(
      'venue drift-sol runs and is read again',
    );
  });

  it('a disabled venue whose reads fail holds no hedge: its last read stands in however old (no new order changes it; it was left out after staleAfterMs and hedged again elsewhere), said in the warnings; an enabled one still holds', async () => {
    const broken = new Set<string>();
    const h = await harness({ edit: narrowEth, brokenReads: broken });
    const { planner, logs } = plannerOn(h);
    await planner.plan();
    expect(planner.lastSnapshot?.underlyings.ETH?.byVenue['drift-sol']?.delta).toBeCloseTo(40, 6);
    // the order checks read it once while it works (what they count when its reads fail)
    const view = h.registry.forExecution.get('drift-sol') as VenueAdapter;
    expect((await view.fetchPositions()).map((p) => p.sizeBase)).toEqual([40]);
    broken.add('drift-sol');
    h.clock.advance(1000);
    await planner.plan();
    expect(planner.lastSnapshot?.underlyings.ETH?.byVenue['drift-sol']?.delta).toBeCloseTo(40, 6);
    expect(planner.lastSnapshot?.warnings).toContain(
      'disabled venue drift-sol not read (its read failed): its positions and balances of 1 s ago stand in',
    );
    // past the staleness limit: still in the book (no new order changes a disabled venue), ETH not held
    const before = planner.lastSnapshot?.underlyings.ETH?.delta as number;
    h.clock.advance(h.config.limits.staleAfterMs + 1000);
    const plans = await planner.plan();
    expect(planner.lastSnapshot?.underlyings.ETH?.byVenue['drift-sol']?.delta).toBeCloseTo(40, 6);
    expect(planner.lastSnapshot?.underlyings.ETH?.delta).toBeCloseTo(before, 0);
    expect(plans.map((p) => p.underlying)).toContain('ETH');
    expect(planner.lastSnapshot?.warnings.join('\n')).toMatch(
      /disabled venue drift-sol not read \(its read failed\): its positions and balances of \d+ s ago stand in/,
    );
    expect(logs.filter((l) => l.data?.venue === 'drift-sol').map((l) => l.msg)).toEqual([
      'reading disabled venue drift-sol failed; its positions and balances of 1 s ago stand in (it is disabled: no new order changes them) while it fails (logged again when this changes)',
    ]);
    // the order checks read every venue's positions: a broken disabled one counts its last read there
    // (logged once), an enabled one fails them as before
    const counted = await view.fetchPositions();
    expect(counted.map((p) => [p.instrument, p.sizeBase])).toEqual([['ETH-USD:PERP', 40]]);
    expect(await view.fetchPositions()).toEqual(counted);
    expect(h.logs.filter((l) => /for the order checks failed/.test(l.msg))).toHaveLength(1);
    // enabled, the same failure holds its underlyings (unchanged)
    const stored = (await h.port.get('drift-sol')) as VenueConfig;
    await h.port.update('drift-sol', { ...stored, enabled: true }, actor);
    h.clock.advance(1000);
    const held = await planner.plan();
    expect(held.map((p) => p.underlying)).not.toContain('ETH');
    expect(planner.lastSnapshot?.warnings).toContain(
      'venue drift-sol could not be read: no hedge for ETH until it is read again',
    );
    await expect(view.fetchPositions()).rejects.toThrow(/refused the read/);
  });

  it('a slow build of a disabled venue does not hold the start back: past disabledWaitMs the sync goes on (no hold), and a later sync takes the adapter', async () => {
    let open = () => {};
    const gate = new Promise<void>((r) => {
      open = r;
    });
    // the start returns while drift-sol's build is still held: it did not wait for it (no clock read
    // here: on a loaded machine the harness alone takes seconds)
    const h = await harness({
      disabledWaitMs: 300,
      slowBuild: async (id) => {
        if (id === 'drift-sol') await gate;
      },
    });
    expect(h.start.failed).toEqual(['drift-sol']);
    expect(h.registry.get('drift-sol')).toBeUndefined();
    expect(h.logs.filter((l) => l.venue === 'drift-sol').map((l) => l.msg)).toEqual([
      'disabled venue drift-sol (paper-drift on solana:mainnet-beta) is not built yet, so its positions are not in the book: its build has not finished after 300 ms; it goes on, and a later sync takes its adapter',
    ]);
    const { planner } = plannerOn(h);
    expect((await planner.plan()).map((p) => p.underlying)).toContain('BTC');
    expect(planner.lastSnapshot?.warnings).toContain(
      'disabled venue drift-sol not read (its adapter is not built): its positions are not in the book until it runs (it holds no hedge: it is disabled)',
    );
    // a later sync does not wait for it again, nor build it twice
    const t1 = Date.now();
    expect((await h.registry.sync()).failed).toEqual(['drift-sol']);
    expect(Date.now() - t1).toBeLessThan(250);
    open();
    await gate;
    expect((await h.registry.sync()).added).toEqual(['drift-sol']);
    expect(h.builds).toEqual([]); // the start's build (the harness clears its list after the start)
    expect(h.workers.added).toEqual(['drift-sol']);
    h.clock.advance(1000);
    await planner.plan();
    expect(planner.lastSnapshot?.underlyings.ETH?.byVenue['drift-sol']?.delta).toBeCloseTo(40, 6);
  });

  it('the planner tick does not wait behind a sync underway (syncIfIdle)', async () => {
    const h = await harness();
    let open = () => {};
    const gate = new Promise<void>((r) => {
      open = r;
    });
    const slow = new VenueRegistry({
      build: async () => {
        await gate;
        return h.registry.get('lyra-arb') as VenueAdapter;
      },
      current: () => h.store.venues(),
      workingOrders: async () => 0,
      log: () => {},
    });
    cleanup.push(() => slow.stop());
    const underway = slow.sync(); // builds lyra-arb and gmx-arb, held at the gate
    expect(await slow.syncIfIdle()).toEqual({
      added: [],
      replaced: [],
      deferred: [],
      failed: [],
      refused: [],
    });
    open();
    const r = await underway;
    expect(r.added).toEqual(['lyra-arb']);
    // the adapter they got calls itself lyra-arb
    expect(r.failed).toEqual(['gmx-arb', 'drift-sol']);
  });

  it('kind and chain never change under a running adapter (the store refuses, and so does the registry)', async () => {
    const h = await harness();
    const stored = (await h.port.get('gmx-arb')) as VenueConfig;
    await expect(h.port.update('gmx-arb', { ...stored, kind: 'paper-drift' }, actor)).rejects.toMatchObject({
      code: 'CONFLICT',
    });
    // a stored list that says otherwise anyway (written around the API)
    const list = await h.store.venues();
    const changed = list.map((v) => (v.id === 'gmx-arb' ? { ...v, chain: 'evm:10' } : v));
    const gmx = h.registry.get('gmx-arb');
    const r = await h.registry.sync(changed as VenueConfig[]);
    expect(r.refused).toEqual(['gmx-arb']);
    expect(h.registry.get('gmx-arb')).toBe(gmx);
    expect(h.logs.find((l) => l.venue === 'gmx-arb')?.msg).toMatch(/kind and chain cannot change/);
  });

  it('applies a change announced by the store at once (pub/sub), without waiting for the poll', async () => {
    const h = await harness();
    await h.registry.start({ pollMs: 600_000, subscriber: ep.client(), channel: h.store.venuesChannel });
    await h.port.add(perp('drift-nudged'), actor);
    const deadline = Date.now() + 10_000;
    while (!h.registry.get('drift-nudged') && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    expect(h.registry.get('drift-nudged')?.id).toBe('drift-nudged');
    expect(h.workers.added).toEqual(['drift-nudged']);
    await h.registry.stop();
    // stopped: changes are left for the next process
    await h.port.add(perp('drift-late'), actor);
    expect((await h.registry.sync()).added).toEqual([]);
  });

  it('stop does not hang on a subscriber whose Redis stopped answering', async () => {
    const h = await harness();
    const proxy = await silentRedisProxy(ep.url);
    cleanup.push(() => proxy.close());
    const subscriber = new IORedis(proxy.url, { maxRetriesPerRequest: null });
    subscriber.on('error', () => {});
    await h.registry.start({ pollMs: 600_000, subscriber, channel: h.store.venuesChannel });
    proxy.cut();
    // a command written and never answered: QUIT would queue behind it for ever
    void subscriber.unsubscribe().catch(() => {});
    const t0 = Date.now();
    const stopped = await Promise.race([
      h.registry.stop().then(() => Date.now() - t0),
      new Promise<'hung'>((r) => setTimeout(() => r('hung'), 12_000)),
    ]);
    expect(stopped).not.toBe('hung');
    // closed for good (its status moves on the socket's close event)
    const closedBy = Date.now() + 2_000;
    while (subscriber.status !== 'end' && Date.now() < closedBy) await new Promise((r) => setTimeout(r, 20));
    expect(subscriber.status).toBe('end');
  }, 30_000);
});

/** Waits until `cond` holds, at most `ms` wall ms; whether it held. */
async function until(cond: () => boolean, ms = 5_000): Promise<boolean> {
  const by = Date.now() + ms;
  while (!cond() && Date.now() < by) await new Promise((r) => setTimeout(r, 10));
  return cond();
}

describe('venue registry in a worker-only process (no planner tick): the enabled flags apply at once while a sync waits', () => {
  type H = Awaited<ReturnType<typeof harness>>;
  const ETH_SELL = { instrument: 'ETH-USD:PERP', side: 'sell', sizeBase: '1', orderType: 'market' } as const;

  /**
   * Stores a change of one venue as another process does, and announces it as the store does (written
   * straight to the run's Redis: what is under test is how this process hears of it, not the API).
   */
  async function store(h: H, id: string, change: Partial<VenueConfig>): Promise<void> {
    const list = (await h.store.venues()).map((v) => (v.id === id ? { ...v, ...change } : v));
    await redis.set(`${h.prefix}:config:venues`, JSON.stringify(list));
    await redis.publish(h.store.venuesChannel, id);
  }

  /**
   * gmx-arb's new params wait in the pool's swap (as for a job still running on its adapter, a
   * keeper-delayed order) while drift-sol, enabled before, is disabled, then enabled again; `drive` is
   * how this process hears of each change (the pub/sub nudge, the poll, a sync asked for). drift-sol's
   * order view must follow each change before gmx-arb's swap ends.
   */
  async function flagsWhileASwapWaits(h: H, drive: () => void): Promise<void> {
    const drift = h.registry.get('drift-sol') as VenueAdapter;
    const view = h.registry.forExecution.get('drift-sol') as VenueAdapter;
    const said = (msg: string) => h.logs.filter((l) => l.msg === msg).length;
    // drift-sol enabled, with nothing else under way: it takes orders
    await store(h, 'drift-sol', { enabled: true });
    await h.registry.sync();
    expect((await view.placeOrder({ clientOrderId: 'xh-before-swap', ...ETH_SELL })).clientOrderId).toBe(
      'xh-before-swap',
    );
    let release = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let entered = () => {};
    const held = new Promise<void>((r) => {
      entered = r;
    });
    const replace = h.workers.replaceVenue.bind(h.workers);
    h.workers.replaceVenue = async (id, next) => {
      if (id === 'gmx-arb') {
        entered();
        await gate;
      }
      return replace(id, next);
    };
    const gmx = h.registry.get('gmx-arb');
    try {
      await store(h, 'gmx-arb', { params: { keeperDelayMs: 100 } });
      drive();
      expect(await Promise.race([held.then(() => 'held'), until(() => false, 10_000)])).toBe('held');
      // disabled: its view refuses at once (nothing sent), with gmx-arb's swap still waiting
      await store(h, 'drift-sol', { enabled: false });
      drive();
      await until(() => said('venue drift-sol disabled') > 0);
      const err = await view
        .placeOrder({ clientOrderId: 'xh-disabled-mid-swap', ...ETH_SELL })
        .catch((e: unknown) => e);
      expect(isVenueError(err) && err.outcome).toBe('rejected');
      expect(String((err as Error).message)).toMatch(/drift-sol: the venue is disabled/);
      // nothing reached the venue; the order sent before is still followed through the view
      expect(await drift.getOrderByClientId('xh-disabled-mid-swap')).toBeNull();
      expect((await view.getOrderByClientId('xh-before-swap'))?.clientOrderId).toBe('xh-before-swap');
      // enabled again: its view takes orders, with gmx-arb's swap still waiting
      const enabledBefore = said('venue drift-sol enabled');
      await store(h, 'drift-sol', { enabled: true });
      drive();
      await until(() => said('venue drift-sol enabled') > enabledBefore);
      const order = await view.placeOrder({ clientOrderId: 'xh-enabled-mid-swap', ...ETH_SELL });
      expect(order.clientOrderId).toBe('xh-enabled-mid-swap');
      // all of it before gmx-arb's swap ended
      expect(h.registry.get('gmx-arb')).toBe(gmx);
      expect(h.workers.replaced).toEqual([]);
    } finally {
      release();
    }
    // the swap ends, and the syncs behind it: gmx-arb runs its new params, drift-sol still takes orders
    expect(await until(() => h.workers.replaced.includes('gmx-arb'), 10_000)).toBe(true);
    await h.registry.sync();
    expect(h.registry.configOf('gmx-arb')?.params).toEqual({ keeperDelayMs: 100 });
    expect(h.registry.get('drift-sol')).toBe(drift);
    const after = await view.placeOrder({ clientOrderId: 'xh-after-swap', ...ETH_SELL });
    expect(after.clientOrderId).toBe('xh-after-swap');
  }

  it('a change announced by the store (pub/sub nudge) applies at once (regression: queued behind the swap, up to the ~30 s send deadline)', async () => {
    const h = await harness();
    await h.registry.start({ pollMs: 600_000, subscriber: ep.client(), channel: h.store.venuesChannel });
    await flagsWhileASwapWaits(h, () => {}); // the store publishes each change
  }, 60_000);

  it('a change found by the poll applies at once (regression: the poll waited for its sync, held by the swap)', async () => {
    const h = await harness();
    await h.registry.start({ pollMs: 25 });
    await flagsWhileASwapWaits(h, () => {}); // the poll finds each change
  }, 60_000);

  it('a sync asked for behind one underway applies the flags at once (regression: only once the one underway ended)', async () => {
    const h = await harness();
    await flagsWhileASwapWaits(h, () => {
      void h.registry.sync().catch(() => undefined);
    });
  }, 60_000);

  it('a read of the configs that started before a disable and ends after it does not enable the venue again', async () => {
    const fake = (id: string) => {
      const sent: string[] = [];
      const adapter = {
        id,
        placeOrder: async (req: { clientOrderId: string }) => {
          sent.push(req.clientOrderId);
          return { clientOrderId: req.clientOrderId };
        },
        fetchPositions: async () => [],
        close: async () => {},
      } as unknown as VenueAdapter;
      return { adapter, sent };
    };
    const cfg = (id: string, enabled: boolean, params: Record<string, unknown> = {}) =>
      VenueConfig.parse({ id, kind: 'paper-drift', chain: 'solana:mainnet-beta', enabled, params });
    const a = fake('venue-a');
    const b = fake('venue-b');
    // venue-a's params changed, then venue-b was disabled
    const stale = [cfg('venue-a', true, { x: 1 }), cfg('venue-b', true)];
    const now = [cfg('venue-a', true, { x: 1 }), cfg('venue-b', false)];
    // the first two reads are answered by hand, each with what the store held when it started
    const answers: ((list: VenueConfig[]) => void)[] = [];
    const reg = new VenueRegistry({
      initial: [
        { config: cfg('venue-a', true), adapter: a.adapter },
        { config: cfg('venue-b', true), adapter: b.adapter },
      ],
      build: (c) => fake(c.id).adapter,
      current: async () =>
        answers.length < 2 ? new Promise<VenueConfig[]>((r) => answers.push(r)) : structuredClone(now),
      workingOrders: async () => 0,
      log: () => {},
    });
    let openSwap = () => {};
    const swapGate = new Promise<void>((r) => {
      openSwap = r;
    });
    let swapping = () => {};
    const inSwap = new Promise<void>((r) => {
      swapping = r;
    });
    const pool: VenueWorkers = {
      venueIds: ['venue-a', 'venue-b'],
      venue: (id) => reg.forExecution.get(id),
      addVenue: async () => undefined,
      replaceVenue: async (_id, next) => {
        swapping();
        await swapGate;
        return next(reg.forExecution.get('venue-a') as VenueAdapter);
      },
    };
    await reg.attachWorkers(async () => pool);
    const view = reg.forExecution.get('venue-b') as VenueAdapter;
    const order = (cid: string) =>
      view.placeOrder({ clientOrderId: cid, ...ETH_SELL }).then(
        () => 'sent',
        (e: unknown) => (isVenueError(e) ? e.outcome : 'error'),
      );
    const settle = () => new Promise((r) => setTimeout(r, 20));
    try {
      const first = reg.sync();
      const second = reg.sync(); // queued behind the first: reads the flags at once
      expect(await until(() => answers.length === 2)).toBe(true);
      // the read that started last answers first: venue-b disabled
      answers[1]?.(structuredClone(now));
      await settle();
      expect(await order('o-1')).toBe('rejected');
      // the one that started first answers last, with venue-b still enabled: it changes nothing
      answers[0]?.(structuredClone(stale));
      await settle();
      await inSwap; // the first sync got its configs and waits in venue-a's swap
      expect(await order('o-2')).toBe('rejected');
      openSwap();
      await first;
      await second;
      expect(await order('o-3')).toBe('rejected');
      expect(b.sent).toEqual([]);
    } finally {
      for (const answer of answers) answer(structuredClone(now));
      openSwap();
      await reg.close();
    }
  });
});
