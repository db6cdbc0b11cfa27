import { randomUUID } from 'node:crypto';
import { Dec, ManualClock, parseInstrumentId } from '@xhedge/core';
import { createMarketSimulator } from '@xhedge/sim';
import { runVenueConformance } from '@xhedge/venue/conformance';
import { Redis } from 'ioredis';
import { createRedisMock, type RedisMock } from 'js-redis-server';
import { afterAll, describe, expect, it } from 'vitest';
import { createPaperVenue } from './create.ts';
import { ShadowVenue } from './shadow.ts';
import { RedisShadowStore } from './shadow-store.ts';
import { conformanceSetup, TEST_START_MS, testVenue } from './testkit.ts';

/**
 * The machine's Redis (`TEST_REDIS_URL`, default 127.0.0.1:6379) when it answers, else an embedded
 * js-redis-server, said out loud (the same rule as `@xhedge/execution/testing`, which this package
 * cannot depend on: execution's tests depend on it).
 */
let embedded: RedisMock | undefined;
const url = await (async () => {
  const machine = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
  const probe = new Redis(machine, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    connectTimeout: 500,
    retryStrategy: () => null,
  });
  probe.on('error', () => {});
  try {
    await probe.connect();
    await probe.ping();
    return machine;
  } catch {
    console.warn(`[venue-paper tests] Redis at ${machine} not reachable: using the embedded js-redis-server`);
    embedded = await createRedisMock({ port: 0 });
    return `redis://127.0.0.1:${embedded.port}`;
  } finally {
    probe.disconnect();
  }
})();

const clients: Redis[] = [];
const prefixes: string[] = [];
/** A Redis connection of its own, as another process of the deployment would have. */
function client(): Redis {
  const c = new Redis(url, { maxRetriesPerRequest: 3 });
  clients.push(c);
  return c;
}
function newPrefix(): string {
  const p = `{xhedge-test}:shadow-${randomUUID()}`;
  prefixes.push(p);
  return p;
}

afterAll(async () => {
  const c = clients[0] ?? client();
  for (const p of prefixes) {
    const keys = await c.keys(`${p}:*`);
    if (keys.length) await c.del(...keys);
  }
  await Promise.all(clients.map((x) => x.quit()));
  await embedded?.close();
});

/** One paper venue and `n` dry-run wrappers over it, each on its own Redis connection (a process each). */
function processes(n: number) {
  const t = testVenue('paper-drift');
  const prefix = newPrefix();
  const store = () => new RedisShadowStore({ redis: client(), prefix, venue: t.venue.id });
  const open = () => new ShadowVenue(t.venue, { clock: t.clock, store: store() });
  return { ...t, prefix, open, shadows: Array.from({ length: n }, open) };
}

const sell = (clientOrderId: string, sizeBase = '4') => ({
  clientOrderId,
  instrument: 'SOL-USD:PERP',
  side: 'sell' as const,
  orderType: 'market' as const,
  sizeBase,
});

runVenueConformance('dry run over paper-gmx, state in Redis', async () => {
  const s = await conformanceSetup('paper-gmx', async () => 'ETH-USD:PERP', '0.5');
  const { makeTimeout: _none, ...rest } = s;
  const store = new RedisShadowStore({ redis: client(), prefix: newPrefix(), venue: s.venue.id });
  return { ...rest, venue: new ShadowVenue(s.venue, { store }) };
});

describe('dry run with its state in Redis (RedisShadowStore)', () => {
  it("one process's simulated fill is seen by another: position, collateral, order and fill", async () => {
    const p = processes(2);
    const [a, b] = p.shadows as [ShadowVenue, ShadowVenue];
    const [cashBefore] = await b.fetchBalances();
    const q = await a.quoteHedge({ instrument: 'SOL-USD:PERP', side: 'sell', sizeBase: '4' });
    const o = await a.placeOrder(sell('x-1'));
    expect(o).toMatchObject({ status: 'filled', filledSizeBase: '4', venueOrderId: 'dry-1' });
    expect(await p.venue.fetchPositions()).toEqual([]); // the paper venue itself took nothing
    expect(await b.getOrderByClientId('x-1')).toEqual(o);
    expect(await b.fetchFills({ clientOrderId: 'x-1' })).toEqual(
      await a.fetchFills({ clientOrderId: 'x-1' }),
    );
    expect(await b.fetchFills()).toHaveLength(1);
    expect((await b.fetchPositions())[0]).toMatchObject({
      instrument: 'SOL-USD:PERP',
      sizeBase: -4,
      entryPriceUsd: q.expectedPriceUsd,
    });
    const [cashAfter] = await b.fetchBalances();
    expect((cashBefore?.amount ?? 0) - (cashAfter?.amount ?? 0)).toBeCloseTo(q.feeUsd + q.gasUsd, 9);
    // B closing half realizes the P&L against A's entry
    await b.placeOrder({ ...sell('x-2', '2'), side: 'buy', reduceOnly: true });
    expect((await a.fetchPositions())[0]?.sizeBase).toBe(-2);
    expect((await a.fetchFills()).map((f) => f.fillId)).toEqual(['dry-1-1', 'dry-2-1']);
    // the amounts are kept as exact decimal strings
    const raw = await client().hgetall(`${p.prefix}:dry-run:${p.venue.id}`);
    expect(raw.cash).toMatch(/^-\d+(\.\d+)?$/);
    expect(JSON.parse(raw['book:SOL-USD:PERP'] ?? '{}')).toEqual({
      size: '-2',
      entryUsd: new Dec(q.expectedPriceUsd).toFixed(),
    });
    // orders and fills live beside the account's state, so reading the account does not grow with them
    expect(Object.keys(raw).sort()).toEqual(['book:SOL-USD:PERP', 'cash', 'funded:SOL-USD:PERP', 'seq', 'v']);
    const [, ordersKey, fillsKey] = RedisShadowStore.keysOf(p.prefix, p.venue.id);
    expect(await client().hkeys(ordersKey)).toEqual(expect.arrayContaining(['x-1', 'x-2']));
    expect(await client().hlen(fillsKey)).toBe(2);
    const store = new RedisShadowStore({ redis: client(), prefix: p.prefix, venue: p.venue.id });
    expect(await store.counts()).toEqual({ orders: 2, fills: 2 });
    expect((await store.fills({ clientOrderId: 'x-2' })).map((f) => f.fillId)).toEqual(['dry-2-1']);
    expect(await store.fills({ clientOrderId: 'never' })).toEqual([]);
    // a state written in the layout of an earlier version is refused, saying how to start over
    await client().hset(`${p.prefix}:dry-run:${p.venue.id}`, 'order:old', '{}');
    await expect(store.load()).rejects.toThrow(/layout of an earlier xhedge.*xhedge dry-run reset/);
  });

  it('a book stored before locks were kept (no lockedUsd in its JSON) reads as locking nothing', async () => {
    const prefix = newPrefix();
    const venue = 'old-lyra';
    const put = 'BTC-USD:OPT:20260130:90000:P';
    const call = 'BTC-USD:OPT:20260130:100000:C';
    const [key] = RedisShadowStore.keysOf(prefix, venue);
    await client().hset(key, {
      v: '3',
      cash: '2500.5',
      seq: '3',
      [`book:${put}`]: JSON.stringify({ size: '-2', entryUsd: '1250.25' }),
      [`book:${call}`]: JSON.stringify({ size: '-1', entryUsd: '800', lockedUsd: '4000.5' }),
    });
    const s = await new RedisShadowStore({ redis: client(), prefix, venue }).load();
    const old = s.books.get(put);
    expect(old?.size.eq(-2)).toBe(true);
    expect(old?.entryUsd.eq('1250.25')).toBe(true);
    expect(old?.lockedUsd.isZero()).toBe(true);
    expect(s.books.get(call)?.lockedUsd.eq('4000.5')).toBe(true);
    expect(s.cashUsd.eq('2500.5')).toBe(true);
  });

  it('the same client order id placed by two processes at once fills once', async () => {
    const p = processes(4);
    const orders = await Promise.all(p.shadows.map((s) => s.placeOrder(sell('same'))));
    for (const o of orders) expect(o).toEqual(orders[0]);
    expect(await p.shadows[1]?.fetchFills()).toHaveLength(1);
    expect((await p.shadows[2]?.fetchPositions())?.[0]?.sizeBase).toBe(-4);
  });

  it('different orders placed by several processes at once are all booked (no lost update)', async () => {
    const p = processes(4);
    const q = await p.venue.quoteHedge({ instrument: 'SOL-USD:PERP', side: 'sell', sizeBase: '1' });
    const orders = await Promise.all(p.shadows.map((s, i) => s.placeOrder(sell(`par-${i}`, '1'))));
    expect(new Set(orders.map((o) => o.venueOrderId)).size).toBe(4);
    const fresh = p.open();
    expect((await fresh.fetchPositions())[0]?.sizeBase).toBe(-4);
    expect(await fresh.fetchFills()).toHaveLength(4);
    // each paid its fee and gas: the moved collateral is the sum of the four
    const fills = await fresh.fetchFills();
    const paid = fills.reduce((s, f) => s.add(f.feeUsd).add(f.gasUsd), new Dec(0));
    const [real] = await p.venue.fetchBalances();
    const [merged] = await fresh.fetchBalances();
    expect((real?.amount ?? 0) - (merged?.amount ?? 0)).toBeCloseTo(paid.toNumber(), 6); // a 10M balance as a double
    expect(paid.toNumber()).toBeGreaterThan(4 * q.gasUsd);
  });

  it('a write computed from a state another process changed meanwhile is computed again, not lost', async () => {
    const t = testVenue('paper-drift');
    const prefix = newPrefix();
    const other = new ShadowVenue(t.venue, {
      clock: t.clock,
      store: new RedisShadowStore({ redis: client(), prefix, venue: t.venue.id }),
    });
    // A's connection lets B place a whole order between A's read and A's write
    const real = client();
    let cut = true;
    const racing = new Proxy(real, {
      get(target, prop, recv) {
        if (prop === 'evalsha' && cut)
          return async (...args: Parameters<Redis['evalsha']>) => {
            cut = false;
            await other.placeOrder(sell('b-in-between', '1'));
            return target.evalsha(...args);
          };
        const v = Reflect.get(target, prop, recv);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    const store = new RedisShadowStore({ redis: racing, prefix, venue: t.venue.id });
    let decided = 0;
    const place = store.placeOrder.bind(store);
    store.placeOrder = (id, decide) =>
      place(id, (s) => {
        decided++;
        return decide(s);
      });
    const a = new ShadowVenue(t.venue, { clock: t.clock, store });
    const o = await a.placeOrder(sell('a-first', '2'));
    expect(decided).toBe(2); // the first write found B's order stored after its read
    expect(o.venueOrderId).toBe('dry-2');
    expect((await other.fetchPositions())[0]?.sizeBase).toBe(-3);
    expect((await other.fetchFills()).map((f) => f.clientOrderId)).toEqual(['b-in-between', 'a-first']);
  });

  it('a restarted process sees what was simulated before it', async () => {
    const p = processes(1);
    const first = p.shadows[0] as ShadowVenue;
    const o = await first.placeOrder(sell('before-restart'));
    const positions = await first.fetchPositions();
    const balances = await first.fetchBalances();
    const restarted = p.open();
    expect(await restarted.getOrderByClientId('before-restart')).toEqual(o);
    expect(await restarted.fetchPositions()).toEqual(positions);
    expect(await restarted.fetchBalances()).toEqual(balances);
    // placing it again after the restart returns the stored order, no second fill
    expect(await restarted.placeOrder(sell('before-restart'))).toEqual(o);
    expect(await restarted.fetchFills()).toHaveLength(1);
    // the next order numbers on
    expect((await restarted.placeOrder(sell('after-restart', '1'))).venueOrderId).toBe('dry-2');
  });

  it('funding is accrued once for the time held, however many processes read at once', async () => {
    const p = processes(3);
    const [a] = p.shadows as [ShadowVenue];
    await a.placeOrder(sell('fund'));
    const [before] = await a.fetchBalances();
    await p.advance(2 * 3_600_000);
    const ratePerHour = (await a.fetchFundingRate?.('SOL-USD:PERP'))?.ratePerHour ?? Number.NaN;
    const [mark] = await a.fetchMarks(['SOL-USD:PERP']);
    const reads = await Promise.all(p.shadows.flatMap((s) => [s.fetchBalances(), s.fetchBalances()]));
    const after = await p.open().fetchBalances();
    // short 4: receives 4 × mark × rate × 2 h (once, not once per reader)
    const expected = 4 * (mark?.markPriceUsd ?? Number.NaN) * ratePerHour * 2;
    expect(ratePerHour).not.toBe(0);
    expect((after[0]?.amount ?? 0) - (before?.amount ?? 0)).toBeCloseTo(expected, 8);
    for (const r of reads) expect(r[0]?.amount).toBe(after[0]?.amount);
  });

  it('an expired option is paid out once, however many processes read at once, and not again after a restart', async () => {
    const clock = new ManualClock(TEST_START_MS);
    const market = createMarketSimulator({
      underlyings: { BTC: { spot: 95_000, vol: 0.55 } },
      seed: 7,
      clock,
    });
    const lyra = createPaperVenue({ id: 'p-lyra', kind: 'paper-lyra', chain: 'evm:42161', market });
    lyra.seedBalance('USDC', 10_000_000);
    const prefix = newPrefix();
    const open = () =>
      new ShadowVenue(lyra, {
        clock,
        store: new RedisShadowStore({ redis: client(), prefix, venue: lyra.id }),
      });
    const shadows = [open(), open(), open()];
    const [a] = shadows as [ShadowVenue];
    const board = (await a.loadMarkets()).map((m) => m.instrument);
    const expiryMs = Math.min(...board.map((m) => m.expiryMs ?? Number.POSITIVE_INFINITY));
    const put = board
      .filter((m) => m.expiryMs === expiryMs && m.optionType === 'put')
      .sort((x, y) => (y.strike ?? 0) - (x.strike ?? 0))[0]?.id as string;
    const q = await lyra.quoteHedge({ instrument: put, side: 'sell', sizeBase: '0.3' });
    expect(q.lockedCollateralUsd).toBeGreaterThan(0);
    await a.placeOrder({
      clientOrderId: 'exp-put',
      instrument: put,
      side: 'sell',
      orderType: 'market',
      sizeBase: '0.3',
    });
    const store = new RedisShadowStore({ redis: client(), prefix, venue: lyra.id });
    const cashBefore = (await store.load()).cashUsd;
    // the short's lock is kept as an exact decimal, and another process takes it off the free collateral
    const lockedUsd = new Dec(q.lockedCollateralUsd ?? Number.NaN);
    const stored = await client().hget(`${prefix}:dry-run:${lyra.id}`, `book:${put}`);
    expect(JSON.parse(stored ?? '{}')).toMatchObject({ size: '-0.3', lockedUsd: lockedUsd.toFixed() });
    const [real] = await lyra.fetchBalances();
    const free = new Dec(real?.available ?? Number.NaN).add(cashBefore);
    expect((await shadows[1]?.fetchBalances())?.[0]?.available).toBe(free.sub(lockedUsd).toNumber());
    clock.set(expiryMs + 60_000);
    const [price] = (await a.fetchSettlementPrices?.([put])) ?? [];
    // short 0.3 of the ITM put: pays (K − S) × 0.3
    const parsed = parseInstrumentId(put);
    if (parsed.kind !== 'option') throw new Error(`${put} is no option`);
    const owed = new Dec(parsed.strike).sub(price?.priceUsd ?? 'NaN').mul('-0.3');
    expect(owed.lt(0)).toBe(true);
    const reads = await Promise.all(shadows.flatMap((s) => [s.fetchBalances(), s.fetchPositions()]));
    expect((await store.load()).cashUsd.sub(cashBefore).eq(owed)).toBe(true);
    const after = await open().fetchBalances();
    // the payoff is paid and the lock released in the same write: free again, by the payoff
    expect(after[0]?.available).toBe(free.add(owed).toNumber());
    for (const r of reads.filter((_, i) => i % 2 === 0)) expect(r).toEqual(after);
    for (const r of reads.filter((_, i) => i % 2 === 1)) expect(r).toEqual([]);
    // the stored book is closed, so a restarted process has nothing left to settle
    const raw = await client().hgetall(`${prefix}:dry-run:${lyra.id}`);
    expect(JSON.parse(raw[`book:${put}`] ?? '{}')).toEqual({ size: '0', entryUsd: '0' });
    const restarted = open();
    expect(await restarted.fetchBalances()).toEqual(after);
    expect(await restarted.fetchPositions()).toEqual([]);
    expect((await store.load()).cashUsd.sub(cashBefore).eq(owed)).toBe(true);
  });
});
