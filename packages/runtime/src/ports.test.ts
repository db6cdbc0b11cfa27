import { readFileSync } from 'node:fs';
import { ApiError } from '@xhedge/api';
import { parseConfig } from '@xhedge/config';
import { type HedgeIntent, ManualClock, XhedgeError } from '@xhedge/core';
import { BreakerBoard, connectRedis, KillSwitch, type RedisEndpoint } from '@xhedge/execution';
import { RiskEngine } from '@xhedge/risk';
import { Ledger, openDatabase } from '@xhedge/store';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SharedConfigStore } from './config-store.ts';
import { controlsPort } from './controls-port.ts';
import { auditPort, hedgesPort, pnlPort, riskPort } from './ledger-ports.ts';
import { SnapshotBus } from './snapshot-bus.ts';

const config = parseConfig(
  readFileSync(new URL('../../../configs/profiles/paper.yaml', import.meta.url), 'utf8'),
);
const actor = { tokenId: 't', name: 'alice', role: 'operator' as const };
let ep: RedisEndpoint;
let redis: Redis;
let ledger: Ledger;

beforeAll(async () => {
  // Embedded Redis and in-memory PGlite: what a run uses with no setup.
  ep = await connectRedis({});
  redis = ep.client();
  ledger = new Ledger(await openDatabase({}));
});
afterAll(async () => {
  await redis.quit();
  await ledger.close();
  await ep.close();
});

describe('shared config store (Redis)', () => {
  it('seeds from the profile once, then keeps operator changes', async () => {
    const prefix = `{xhedge}:cfg-${process.pid}`;
    const store = new SharedConfigStore({ redis, prefix, config });
    await store.init();
    const venues = store.venuesPort();
    await venues.disable('gmx-arb', actor);
    // A second process seeding from the same profile keeps the change.
    const again = new SharedConfigStore({ redis, prefix, config });
    await again.init();
    expect((await again.venues()).find((v) => v.id === 'gmx-arb')?.enabled).toBe(false);
    await expect(venues.add({ ...config.venues[0]!, id: 'lyra-arb' }, actor)).rejects.toMatchObject({
      code: 'CONFLICT',
    });
    await expect(
      venues.update('lyra-arb', { ...config.venues[0]!, kind: 'paper-gmx' }, actor),
    ).rejects.toBeInstanceOf(XhedgeError);
    const policy = store.policyPort();
    const next = { ...(await policy.get()), tickIntervalMs: 5000 };
    expect((await policy.update(next, actor)).after.tickIntervalMs).toBe(5000);
    expect((await again.policy()).tickIntervalMs).toBe(5000);
    await expect(
      policy.update({ ...next, perUnderlying: { DOGE: next.default } }, actor),
    ).rejects.toMatchObject({ code: 'VALIDATION' });
  });
});

describe('shared config store: a venue update (regression: leaving out credentials deleted them)', () => {
  it('keeps the credentials and endpoints an update leaves out, and clears them only when given empty', async () => {
    const store = new SharedConfigStore({ redis, prefix: `{xhedge}:cfg-upd-${process.pid}`, config });
    await store.init();
    const venues = store.venuesPort();
    const base = config.venues[0]!;
    const keyed = {
      ...base,
      endpoints: { rpc: [{ env: 'XH_TEST_RPC' }] },
      credentials: { privateKey: { env: 'XH_TEST_KEY' } },
    };
    await venues.update(base.id, keyed, actor);
    // what an operator sends back after a read: no credentials (write-only), no endpoints (redacted)
    const { credentials: _c, endpoints: _e, ...sentBack } = keyed;
    const { after } = await venues.update(base.id, { ...sentBack, params: { ...base.params } }, actor);
    expect(after.credentials).toEqual({ privateKey: { env: 'XH_TEST_KEY' } });
    expect(after.endpoints).toEqual({ rpc: [{ env: 'XH_TEST_RPC' }] });
    const { after: cleared } = await venues.update(
      base.id,
      { ...sentBack, credentials: {}, endpoints: {} },
      actor,
    );
    expect(cleared.credentials).toEqual({});
    expect(cleared.endpoints).toEqual({});
  });
});

describe('shared config store: changes at once', () => {
  it('keeps every one of many venue changes made at the same time, from two processes', async () => {
    const prefix = `{xhedge}:cfg-race-${process.pid}`;
    const a = new SharedConfigStore({ redis, prefix, config });
    await a.init();
    // a second process: its own connection, the same keys
    const other = ep.client();
    const b = new SharedConfigStore({ redis: other, prefix, config });
    try {
      const ids = config.venues.map((v) => v.id);
      const first = config.venues.find((v) => v.kind === 'paper-gmx');
      const rest = config.venues.filter((v) => v !== first);
      if (!first) throw new Error('the profile has no paper-gmx venue');
      // a params change that leaves `enabled` out, as an operator's PUT may
      const { enabled: _, ...rest0 } = first;
      const updated = { ...rest0, params: { ...first.params, keeperDelayMs: 2500 } };
      await Promise.all([
        ...ids.map((id, i) => (i % 2 === 0 ? a : b).venuesPort().disable(id, actor)),
        b.venuesPort().update(first.id, updated, actor),
        a.venuesPort().add({ ...(rest[0] ?? first), id: 'added-now', enabled: true }, actor),
      ]);
      const after = await a.venues();
      // every disable landed, whatever order the update ran in relative to them
      for (const id of ids) expect(after.find((v) => v.id === id)?.enabled, id).toBe(false);
      expect(after.find((v) => v.id === first.id)?.params).toMatchObject({ keeperDelayMs: 2500 });
      expect(after.find((v) => v.id === 'added-now')?.enabled).toBe(true);
      // the profile the store was seeded from is not changed by them
      expect(config.venues.every((v) => v.enabled !== false)).toBe(true);
    } finally {
      other.disconnect();
    }
  });
});

describe('risk and audit ports over the ledger', () => {
  it('stores snapshots, serves history and slices by underlying, venue and chain', async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const engine = new RiskEngine({ clock });
    engine.setMarket('BTC', { spotUsd: 95_000, volDecimal: 0.55, asOfMs: clock.nowMs() });
    engine.setBook({
      positions: [
        {
          venue: 'gmx-arb',
          chain: 'evm:42161',
          instrument: 'BTC-USD:PERP',
          sizeBase: 2,
          asOfMs: clock.nowMs(),
        },
        {
          venue: 'drift-sol',
          chain: 'solana:mainnet-beta',
          instrument: 'BTC-USD:PERP',
          sizeBase: -0.5,
          asOfMs: clock.nowMs(),
        },
      ],
    });
    const bus = new SnapshotBus(ledger, { persistEveryMs: 0 });
    const seen: number[] = [];
    bus.subscribe((s) => seen.push(s.seq));
    await bus.publish(engine.snapshot());
    clock.advance(1000);
    await bus.publish(engine.snapshot());
    const port = riskPort({ bus, ledger });
    expect(seen).toEqual([1, 2]);
    expect((await port.history({ limit: 10 })).map((s) => s.seq)).toEqual([1, 2]);
    expect((await port.slice('venue', 'gmx-arb'))?.underlyings.BTC?.delta).toBeCloseTo(2);
    expect((await port.slice('chain', 'solana:mainnet-beta'))?.underlyings.BTC?.delta).toBeCloseTo(-0.5);
    expect((await port.slice('underlying', 'BTC'))?.underlyings.BTC?.delta).toBeCloseTo(1.5);
    expect(await port.slice('venue', 'nowhere')).toBeUndefined();
    const audit = auditPort(ledger);
    await audit.record({
      actor: 'alice',
      action: 'policy.update',
      target: 'policy',
      details: { role: 'operator' },
    });
    expect((await audit.list({ limit: 10 })).at(-1)).toMatchObject({
      actor: 'operator:alice',
      action: 'policy.update',
    });
  });
});

describe('hedges port over the ledger', () => {
  it('lists jobs in one query with their plan, filtered by status, plan, venue, underlying and time', async () => {
    const clock = new ManualClock(10_000);
    const db = await openDatabase({});
    const led = new Ledger(db, { clock });
    const leg = (n: number, over: Partial<HedgeIntent>): HedgeIntent => ({
      id: `int_${String(n).padStart(24, '0')}`,
      planId: 'plan_a',
      underlying: 'ETH',
      venue: 'gmx-arb',
      chain: 'evm:42161',
      instrument: 'ETH-USD:PERP',
      side: 'buy',
      sizeBase: '1',
      orderType: 'market',
      referencePriceUsd: 3000,
      reduceOnly: false,
      urgency: 'normal',
      reason: 'delta drifted',
      createdAtMs: 1,
      dependsOn: [],
      ...over,
    });
    const legs = [
      leg(1, {}),
      leg(2, { planId: 'plan_b', venue: 'drift-sol', chain: 'solana:mainnet-beta' }),
      leg(3, { planId: 'plan_b', underlying: 'BTC', instrument: 'BTC-USD:PERP' }),
    ];
    for (const l of legs) {
      clock.advance(1_000); // queued at 11 000, 12 000, 13 000
      await led.recordPlan([{ intent: l, clientOrderId: `xh-${l.id}`, status: 'queued' }], { actor: 'o' });
    }
    await led.transition(`xh-${legs[0]?.id}`, 'sent', { actor: 'w' });
    await led.transition(`xh-${legs[0]?.id}`, 'filled', { actor: 'w', patch: { filledSizeBase: '1' } });
    let queries = 0;
    const listed = led.listOrdersWithPlan.bind(led);
    led.listOrdersWithPlan = (q) => {
      queries++;
      return listed(q);
    };
    const port = hedgesPort({ ledger: led, cancel: async () => {} });
    const ids = async (q: Parameters<typeof port.listJobs>[0]) => (await port.listJobs(q)).map((j) => j.id);
    const [a, b, c] = legs.map((l) => l.id);
    expect(await ids({ limit: 10 })).toEqual([c, b, a]);
    expect(queries).toBe(1);
    expect(await port.listJobs({ limit: 1 })).toEqual([
      expect.objectContaining({ id: c, planId: 'plan_b', underlying: 'BTC', status: 'queued' }),
    ]);
    expect(await ids({ limit: 10, status: ['filled'] })).toEqual([a]);
    expect(await ids({ limit: 10, status: ['queued', 'sent'] })).toEqual([c, b]);
    expect(await ids({ limit: 10, planId: 'plan_b' })).toEqual([c, b]);
    expect(await ids({ limit: 10, venue: 'drift-sol' })).toEqual([b]);
    expect(await ids({ limit: 10, underlying: 'BTC' })).toEqual([c]);
    // the API's time range is inclusive at both ends
    expect(await ids({ limit: 10, fromMs: 12_000, toMs: 13_000 })).toEqual([c, b]);
    expect(await ids({ limit: 10, fromMs: 11_001, toMs: 12_000 })).toEqual([b]);
    expect(await ids({ limit: 10, fromMs: 11_001, toMs: 11_999 })).toEqual([]);
    expect(await ids({ limit: 10, planId: 'plan_b', underlying: 'ETH', status: ['queued'] })).toEqual([b]);
    await led.close();
  });
});

describe('pnl port over the ledger', () => {
  it('attributes a range from its first snapshot to its last, however many lie between, with its fills', async () => {
    const db = await openDatabase({});
    const led = new Ledger(db);
    // 5003 snapshots, 5 s apart: BTC long 1 (delta), spot rising a cent a snapshot
    const n = 5003;
    const t0 = 1_000_000;
    const snap = (seq: number) => ({
      seq,
      asOfMs: t0 + seq * 5_000,
      underlyings: {
        BTC: {
          spotUsd: 100 + seq * 0.01,
          volDecimal: 0.5,
          delta: 1,
          gamma: 0,
          vegaPerVolPoint: 0,
          thetaPerDay: 0,
          fundingUsdPerHour: 0,
        },
      },
    });
    for (let from = 1; from <= n; from += 1000) {
      const rows = [];
      for (let seq = from; seq < Math.min(from + 1000, n + 1); seq++)
        rows.push({ seq, as_of_ms: t0 + seq * 5_000, snapshot: JSON.stringify(snap(seq)) });
      await led.db.insertInto('risk_snapshots').values(rows).execute();
    }
    const leg: HedgeIntent = {
      id: `int_${'p'.repeat(24)}`,
      planId: 'plan_p',
      underlying: 'BTC',
      venue: 'gmx-arb',
      chain: 'evm:42161',
      instrument: 'BTC-USD:PERP',
      side: 'buy',
      sizeBase: '2',
      orderType: 'market',
      referencePriceUsd: 100,
      reduceOnly: false,
      urgency: 'normal',
      reason: 'delta drifted',
      createdAtMs: t0,
      dependsOn: [],
    };
    await led.recordPlan([{ intent: leg, clientOrderId: 'xh-p', status: 'queued' }], { actor: 'o' });
    await led.recordFill({
      fillId: 'f-p',
      clientOrderId: 'xh-p',
      venue: 'gmx-arb',
      instrument: 'BTC-USD:PERP',
      side: 'buy',
      sizeBase: '2',
      priceUsd: '100.5',
      feeUsd: 3,
      gasUsd: 0,
      tsMs: t0 + 10 * 5_000,
    });
    const pnl = await pnlPort(led).attribution({ fromMs: 0, toMs: t0 + (n + 1) * 5_000 });
    expect([pnl.fromSeq, pnl.toSeq]).toEqual([1, n]);
    // Δ · dS from the first snapshot to the last: 1 × (n − 1) cents
    expect(pnl.byUnderlying.BTC?.deltaUsd).toBeCloseTo((n - 1) * 0.01, 9);
    // the fill: 3 USD fee, bought 0.5 above the planned price on 2 BTC
    expect(pnl.byUnderlying.BTC?.feesUsd).toBeCloseTo(-3, 9);
    expect(pnl.byUnderlying.BTC?.slippageUsd).toBeCloseTo(-1, 9);
    await led.close();
  });
});

describe('controls port: the book mark over the breaker board', () => {
  it('shows what the planner observed and lets an operator re-mark, audited once by the board', async () => {
    const prefix = `{xhedge}:mark-${process.pid}`;
    const breakers = new BreakerBoard({ redis, prefix, config: config.breakers, ledger });
    const port = controlsPort(new KillSwitch({ redis, prefix, ledger }), breakers, ledger);
    expect(port.auditsBookMark).toBe(true);
    await breakers.observeEquity(250_000, { actor: 'orchestrator' });
    await breakers.observeEquity(248_000);
    expect(await port.bookMark()).toMatchObject({
      markUsd: 250_000,
      lastEquityUsd: 248_000,
      lossSinceMarkUsd: 2_000,
    });
    const m = await port.setBookMark({ reason: 'new trading day' }, actor);
    expect(m).toMatchObject({ markUsd: 248_000, markedBy: 'operator:alice', lossSinceMarkUsd: 0 });
    const audit = await ledger.listAudit({ action: 'book-mark.set', actor: 'operator:alice' });
    expect(audit).toHaveLength(1);
    expect(audit[0]?.details).toMatchObject({
      markUsd: 248_000,
      previousMarkUsd: 250_000,
      reason: 'new trading day',
    });
  });

  it("names what the brakes may target: the run's venues (as they are now), underlyings and breakers", async () => {
    const prefix = `{xhedge}:targets-${process.pid}`;
    const store = new SharedConfigStore({ redis, prefix, config });
    await store.init();
    const breakers = new BreakerBoard({ redis, prefix, config: config.breakers, ledger });
    const port = controlsPort(new KillSwitch({ redis, prefix, ledger }), breakers, ledger, async () => ({
      venues: await store.venues(),
      underlyings: config.underlyings.map((u) => u.symbol),
    }));
    const t = await port.targets?.();
    expect(t?.venues).toEqual(config.venues.map((v) => v.id));
    expect(t?.underlyings).toEqual(['BTC', 'ETH', 'SOL']);
    expect(t?.breakers).toEqual(
      expect.arrayContaining([
        'venue:gmx-arb',
        'chain:evm:42161',
        'chain:solana:mainnet-beta',
        'market:price-shock:SOL',
        'market:iv-shock:BTC',
        'market:loss',
      ]),
    );
    // a venue an operator adds through the API is a target at once
    await store
      .venuesPort()
      .add({ ...(config.venues[1] as (typeof config.venues)[number]), id: 'gmx-two' }, actor);
    expect((await port.targets?.())?.breakers).toContain('venue:gmx-two');
    // without what the run knows, the port names nothing and the API refuses nothing
    expect(controlsPort(new KillSwitch({ redis, prefix, ledger }), breakers, ledger).targets).toBeUndefined();
  });
});

describe('controls port: a change in force whose ledger write then fails', () => {
  const risk = { tokenId: 't', name: 'alice', role: 'risk' as const };
  /** A ledger of its own (PGlite), a board and a switch on a prefix of their own, the port logging to `logged`. */
  async function setup(name: string) {
    const led = new Ledger(await openDatabase({}));
    const prefix = `{xhedge}:unrec-${name}-${process.pid}`;
    const breakers = new BreakerBoard({ redis, prefix, config: config.breakers, ledger: led });
    const kill = new KillSwitch({ redis, prefix, ledger: led });
    const logged: { obj: Record<string, unknown>; msg: string }[] = [];
    const port = controlsPort(kill, breakers, led, undefined, {
      error: (obj, msg) => void logged.push({ obj, msg }),
    });
    /** The ledger refuses every write to `table` from now on (a real database error). */
    const down = (table: 'audit' | 'breaker_events' | 'kill_switch_events') =>
      led.db.schema.alterTable(table).renameTo(`${table}_down`).execute();
    return { led, breakers, kill, port, logged, down };
  }
  /** The error `p` rejects with. */
  async function failure(p: Promise<unknown>): Promise<XhedgeError & { statusCode?: number }> {
    try {
      await p;
    } catch (err) {
      return err as XhedgeError & { statusCode?: number };
    }
    throw new Error('expected the change to fail');
  }

  it('a book mark set whose audit entry fails answers 500 AUDIT_UNRECORDED saying it is in force, logged for whoever records it', async () => {
    const { led, breakers, port, logged, down } = await setup('mark');
    await breakers.observeEquity(250_000, { actor: 'orchestrator' });
    await down('audit');
    const err = await failure(port.setBookMark({ equityUsd: 240_000, reason: 'new day' }, risk));
    expect(err).toBeInstanceOf(ApiError);
    expect(err.code).toBe('AUDIT_UNRECORDED');
    expect(err.statusCode).toBe(500);
    expect(err.shortMessage).toMatch(/book marked at 240000 USD \(in force\).*do not repeat it/);
    expect(err.details).toMatchObject({
      applied: true,
      recorded: false,
      action: 'book-mark.set',
      target: 'book',
      result: { markUsd: 240_000, markedBy: 'operator:alice', reason: 'new day' },
    });
    expect((await port.bookMark()).markUsd).toBe(240_000);
    expect(logged).toHaveLength(1);
    expect(logged[0]?.msg).toMatch(/record this entry by hand/);
    expect(logged[0]?.obj.audit).toEqual({
      actor: 'operator:alice',
      action: 'book-mark.set',
      subject: 'book',
      details: { markUsd: 240_000, reason: 'new day' },
    });
    expect(logged[0]?.obj.err).toMatchObject({ message: expect.stringMatching(/audit/) });
    await led.close();
  });

  it('a mark the board refused is not read back as in force, though an earlier one had the same operator and reason; nor a release of a scope not engaged', async () => {
    const { led, breakers, kill, logged, down } = await setup('same-mark');
    await breakers.setMark({ equityUsd: 250_000, actor: 'operator:alice', reason: 'daily re-mark' });
    // the board's write refused before it changed anything (Redis out of memory, reads still served)
    const refusing = new Proxy(breakers, {
      get(target, prop) {
        if (prop === 'setMark') return async () => Promise.reject(new Error('OOM command not allowed'));
        const v = Reflect.get(target, prop, target);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    const port = controlsPort(kill, refusing, led, undefined, {
      error: (obj, msg) => void logged.push({ obj, msg }),
    });
    const err = await failure(port.setBookMark({ equityUsd: 250_000, reason: 'daily re-mark' }, risk));
    expect(err.message).toMatch(/OOM/);
    expect(err.code).not.toBe('AUDIT_UNRECORDED');
    // a release of a scope that was not engaged, the ledger down: its own error, nothing to record by hand
    await down('kill_switch_events');
    const rel = await failure(port.resetKillSwitch({ scope: 'venue', target: 'gmx-arb', reason: 'x' }, risk));
    expect(rel.code).not.toBe('AUDIT_UNRECORDED');
    expect(logged).toEqual([]);
    await led.close();
  });

  it('a position break acknowledged whose audit entry fails answers AUDIT_UNRECORDED (the new baseline asked for); one refused is refused', async () => {
    const { led, port, logged, down } = await setup('ack');
    await led.setPositionBaseline({
      venue: 'gmx-arb',
      instrument: 'BTC-USD:PERP',
      sizeBase: '2',
      actor: 'drop-copy',
      reason: 'quiet read',
    });
    await down('audit');
    const err = await failure(
      port.acknowledgePositionBreak(
        { venue: 'gmx-arb', instrument: 'BTC-USD:PERP', reason: 'explained' },
        risk,
      ),
    );
    expect(err).toBeInstanceOf(ApiError);
    expect(err.code).toBe('AUDIT_UNRECORDED');
    expect(err.details).toMatchObject({
      applied: true,
      action: 'position-break.acknowledge',
      target: 'gmx-arb/BTC-USD:PERP',
    });
    // open breaks are audit entries too, unreadable here: the answer does not guess whether one is open
    expect(err.details.result).toEqual({ venue: 'gmx-arb', instrument: 'BTC-USD:PERP' });
    const [b] = await led.positionBaselines('gmx-arb');
    expect(b).toMatchObject({ instrument: 'BTC-USD:PERP', actor: 'operator:alice', reason: 'explained' });
    expect(b?.sizeBase).toBeUndefined();
    expect(logged.map((l) => l.obj.audit)).toEqual([
      {
        actor: 'operator:alice',
        action: 'position-break.acknowledge',
        subject: 'gmx-arb/BTC-USD:PERP',
        details: { reason: 'explained' },
      },
    ]);
    // nothing to acknowledge there: refused as before, nothing logged
    const missing = await failure(
      port.acknowledgePositionBreak({ venue: 'gmx-arb', instrument: 'ETH-USD:PERP', reason: 'x' }, risk),
    );
    expect(missing.code).toBe('NOT_FOUND');
    expect(logged).toHaveLength(1);
    await led.close();
  });

  it('a kill switch released whose audit entry fails answers AUDIT_UNRECORDED; one whose release event fails stays engaged and fails as it did', async () => {
    const a = await setup('release');
    await a.kill.engage('global', { actor: 'operator:bob', reason: 'drill' });
    await a.down('audit');
    const err = await failure(a.port.resetKillSwitch({ scope: 'global', reason: 'drill over' }, risk));
    expect(err).toBeInstanceOf(ApiError);
    expect(err.code).toBe('AUDIT_UNRECORDED');
    expect(err.details).toMatchObject({
      applied: true,
      action: 'kill-switch.release',
      target: 'global',
      result: { scope: 'global', engaged: false },
    });
    expect(await a.kill.engaged()).toEqual([]);
    await a.led.close();

    const b = await setup('release-event');
    await b.kill.engage('venue:gmx-arb', { actor: 'operator:bob', reason: 'drill' });
    await b.down('kill_switch_events');
    const e2 = await failure(
      b.port.resetKillSwitch({ scope: 'venue', target: 'gmx-arb', reason: 'drill over' }, risk),
    );
    expect(e2).not.toBeInstanceOf(ApiError);
    expect((await b.kill.engaged()).map((e) => e.scope)).toEqual(['venue:gmx-arb']);
    expect(b.logged).toEqual([]);
    await b.led.close();
  });

  it('a breaker opened or closed whose ledger event fails answers AUDIT_UNRECORDED with its state', async () => {
    const { led, breakers, port, logged, down } = await setup('breaker');
    await down('breaker_events');
    const opened = await failure(port.tripBreaker('venue:gmx-arb', 'venue misbehaves', risk));
    expect(opened).toBeInstanceOf(ApiError);
    expect(opened.code).toBe('AUDIT_UNRECORDED');
    expect(opened.details).toMatchObject({
      applied: true,
      action: 'breaker.trip',
      target: 'venue:gmx-arb',
      result: { name: 'venue:gmx-arb', state: 'open' },
    });
    expect((await breakers.status('venue:gmx-arb')).state).toBe('open');
    const closed = await failure(port.resetBreaker('venue:gmx-arb', 'venue fine', risk));
    expect(closed.code).toBe('AUDIT_UNRECORDED');
    expect(closed.details).toMatchObject({ result: { name: 'venue:gmx-arb', state: 'closed' } });
    expect((await breakers.status('venue:gmx-arb')).state).toBe('closed');
    expect(logged.map((l) => l.obj.audit)).toEqual([
      {
        actor: 'alice',
        action: 'breaker.trip',
        subject: 'venue:gmx-arb',
        details: { reason: 'venue misbehaves', role: 'risk' },
      },
      {
        actor: 'alice',
        action: 'breaker.reset',
        subject: 'venue:gmx-arb',
        details: { reason: 'venue fine', role: 'risk' },
      },
    ]);
    await led.close();
  });
});
