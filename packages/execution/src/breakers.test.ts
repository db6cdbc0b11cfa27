import { randomBytes } from 'node:crypto';
import { BreakersConfig } from '@xhedge/config';
import { ManualClock } from '@xhedge/core';
import { type DatabaseHandle, Ledger, openDatabase, postgresReachable, TEST_PG_URL } from '@xhedge/store';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BreakerBoard, BreakerResetConflictError, breakerNames, breakersFor } from './breakers.ts';
import { keysFor } from './keys.ts';
import { ExecutionMetrics } from './metrics.ts';
import { testRedis } from './test-env.ts';

/**
 * Every trip of the venue and market breakers, on a real Redis: the breaker opens, the order gate's
 * list for an order on that venue, chain and underlying contains it, and the transition is in the
 * ledger and in the metrics.
 */
describe('breaker names', () => {
  it('lists every breaker any order of the venues and underlyings consults, and nothing else', () => {
    const venues = [
      { id: 'gmx-arb', chain: 'evm:42161' },
      { id: 'lyra-arb', chain: 'evm:42161' },
      { id: 'drift-sol', chain: 'solana:mainnet-beta' },
    ];
    const names = breakerNames({ venues, underlyings: ['BTC', 'ETH'] });
    const consulted = new Set<string>();
    for (const v of venues)
      for (const u of ['BTC', 'ETH'])
        for (const instrument of [`${u}-USD:PERP`, `${u}-USD:OPT:20261225:100000:C`])
          for (const n of breakersFor({ venue: v.id, chain: v.chain, underlying: u, instrument }))
            consulted.add(n);
    expect(names).toEqual([...consulted].sort());
    expect(names).toContain('chain:solana:mainnet-beta');
    expect(names.filter((n) => n.startsWith('chain:'))).toHaveLength(2);
    expect(breakerNames({ venues, underlyings: [] })).toEqual(
      expect.arrayContaining(['venue:gmx-arb', 'chain:evm:42161', 'market:loss']),
    );
  });
});

describe('circuit breakers: what trips each one', () => {
  let redis: Awaited<ReturnType<typeof testRedis>>;
  let cmd: Redis;
  let ledger: Ledger;
  const clock = new ManualClock(Date.UTC(2026, 0, 5));
  const metrics = new ExecutionMetrics();
  let n = 0;
  const board = (config: object = {}) =>
    new BreakerBoard({
      redis: cmd,
      prefix: `xhbrk${process.pid}-${++n}`,
      config: BreakersConfig.parse(config),
      ledger,
      metrics,
      clock,
    });
  const tripped = async (b: BreakerBoard, name: string) => {
    expect((await b.status(name)).state).toBe('open');
    const ev = await ledger.listBreakerEvents({ breaker: name });
    expect(ev[0]).toMatchObject({ fromState: 'closed', toState: 'open' });
    const m = await metrics.registry.getSingleMetricAsString('xhedge_breaker_transitions_total');
    expect(m).toContain(`breaker="${name}",from="closed",to="open"`);
    return ev[0]?.reason ?? '';
  };

  beforeAll(async () => {
    redis = await testRedis();
    cmd = redis.client();
    ledger = new Ledger(await openDatabase(), { clock });
  });

  it('a half-open trial held for its order is renewed past its lifetime, and let go after maxHoldMs', async () => {
    const b = new BreakerBoard({
      redis: cmd,
      prefix: `xhbrk${process.pid}-${++n}`,
      config: BreakersConfig.parse({}),
      ledger,
      clock,
      trialTtlMs: 150,
    });
    await b.trip('venue:slow', 'test trip', {}, 0);
    const g = await b.gate(['venue:slow'], { takeTrial: true });
    if (!g.allowed) throw new Error('expected the trial');
    const stop = b.holdTrials(g.trials, { maxHoldMs: 60_000 });
    try {
      const key = keysFor(b.prefix).breakerTrial('venue:slow');
      await new Promise((r) => setTimeout(r, 400)); // past its 150 ms: renewed
      expect(await cmd.exists(key)).toBe(1);
      clock.advance(60_001); // held as long as allowed: no more renewals, it lapses
      await new Promise((r) => setTimeout(r, 400));
      expect(await cmd.exists(key)).toBe(0);
    } finally {
      stop();
    }
  });
  afterAll(async () => {
    const keys = await cmd.keys(`xhbrk${process.pid}-*`);
    if (keys.length) await cmd.del(...keys);
    cmd.disconnect();
    await redis.close();
    await ledger.close();
  });

  it('coolingDown: open breakers whose cooldown has not passed; not closed ones, nor one due its trial', async () => {
    const b = board();
    await b.trip('venue:a', 'manual', {}, 60_000);
    await b.trip('chain:evm:1', 'halt', {}, 600_000);
    expect([...(await b.coolingDown(['venue:a', 'chain:evm:1', 'venue:never']))].sort()).toEqual([
      'chain:evm:1',
      'venue:a',
    ]);
    clock.advance(60_001); // venue:a is due its half-open trial: a router must let an order reach it
    expect([...(await b.coolingDown(['venue:a', 'chain:evm:1']))]).toEqual(['chain:evm:1']);
  });

  it('an order is gated by its venue, chain, and its underlying’s market breakers', () => {
    expect(breakersFor({ venue: 'gmx-arb', chain: 'evm:42161', underlying: 'BTC' })).toEqual([
      'venue:gmx-arb',
      'chain:evm:42161',
      'market:price-shock:BTC',
      'market:price-dispersion:BTC',
      'market:slippage:BTC',
      'market:stale-mark:BTC',
      'market:loss',
    ]);
  });

  it('venue: error rate over the window, timeouts and slow calls count as failures', async () => {
    const cfg = { venue: { minRequests: 4, errorRatePct: 50, latencyMs: 2000 } };
    const errors = board(cfg);
    await errors.recordVenueCall('v1', { ok: true, latencyMs: 10 });
    await errors.recordVenueCall('v1', { ok: true, latencyMs: 10 });
    await errors.recordVenueCall('v1', { ok: false, latencyMs: 10 });
    expect((await errors.status('venue:v1')).state).toBe('closed'); // below minRequests
    await errors.recordVenueCall('v1', { ok: false, latencyMs: 10 });
    expect(await tripped(errors, 'venue:v1')).toMatch(/failure rate 50% ≥ 50%/);

    const slow = board(cfg);
    for (let i = 0; i < 2; i++) await slow.recordVenueCall('v2', { ok: true, latencyMs: 10 });
    await slow.recordVenueCall('v2', { ok: true, latencyMs: 2500 }); // answered, but too slow
    await slow.recordVenueCall('v2', { ok: true, timedOut: true, latencyMs: 10 });
    await tripped(slow, 'venue:v2');
  });

  it('venue: a breaker that closed after a good trial starts from a clean window (no re-trip on old failures)', async () => {
    const b = board({ venue: { minRequests: 4, errorRatePct: 50, cooldownSeconds: 1, windowSeconds: 600 } });
    for (let i = 0; i < 4; i++) await b.recordVenueCall('v3', { ok: false, latencyMs: 10 });
    expect((await b.status('venue:v3')).state).toBe('open');
    clock.advance(1_500);
    const g = await b.gate(['venue:v3'], { takeTrial: true });
    expect(g.allowed).toBe(true);
    if (!g.allowed) return;
    for (const t of g.trials) await b.reportTrial(t, true);
    expect((await b.status('venue:v3')).state).toBe('closed');
    // the venue is healthy now: its next calls must not meet the four failures of before the trip
    await b.recordVenueCall('v3', { ok: true, latencyMs: 10 });
    await b.recordVenueCall('v3', { ok: true, latencyMs: 10 });
    expect((await b.status('venue:v3')).state).toBe('closed');
    // an operator reset clears it as well
    for (let i = 0; i < 4; i++) await b.recordVenueCall('v3', { ok: false, latencyMs: 10 });
    expect((await b.status('venue:v3')).state).toBe('open');
    await b.reset('venue:v3', 'operator:ana', 'venue fixed');
    await b.recordVenueCall('v3', { ok: true, latencyMs: 10 });
    expect((await b.status('venue:v3')).state).toBe('closed');
  });

  it('market: a price shock within the window, and not when the same move is spread wider', async () => {
    const b = board({ market: { priceShockPct: 5, priceShockWindowSeconds: 60 } });
    const t0 = clock.nowMs();
    await b.observePrice('ETH', 3000, t0);
    await b.observePrice('ETH', 3140, t0 + 120_000); // +4.7%, and the first sample left the window
    await b.observePrice('ETH', 2990, t0 + 240_000); // −4.8% from 3140, first one out of the window
    expect((await b.status('market:price-shock:ETH')).state).toBe('closed');
    await b.observePrice('ETH', 3150, t0 + 250_000); // +5.4% from 2990 within 10 s
    expect(await tripped(b, 'market:price-shock:ETH')).toMatch(/price moved 5\.35% within 60s/);
  });

  it('market: a price sample that is not a positive finite number is refused, and never poisons the window', async () => {
    const b = board({ market: { priceShockPct: 5, priceShockWindowSeconds: 60 } });
    const t0 = clock.nowMs();
    await b.observePrice('ETH', 3000, t0);
    for (const bad of [Number.NaN, 0, -3000, Number.POSITIVE_INFINITY])
      await expect(b.observePrice('ETH', bad, t0 + 1_000)).rejects.toMatchObject({
        code: 'NUMERIC',
        message: `ETH price sample must be a positive finite number of USD, got ${bad}`,
      });
    await b.observePrice('ETH', 3200, t0 + 2_000); // +6.7% within the window
    expect(await tripped(b, 'market:price-shock:ETH')).toMatch(/price moved 6\.67% within 60s/);
    // samples already in the window (written by a process without the check) are skipped by the script
    const c = board({ market: { priceShockPct: 5, priceShockWindowSeconds: 60 } });
    const key = `${c.prefix}:prices:BTC`;
    await cmd.zadd(key, t0, `${t0}:a|NaN`, t0, `${t0}:b|0`, t0, `${t0}:c|-inf`);
    await c.observePrice('BTC', 95_000, t0 + 1_000);
    expect((await c.status('market:price-shock:BTC')).state).toBe('closed');
    await c.observePrice('BTC', 100_000, t0 + 2_000); // +5.3%
    expect(await tripped(c, 'market:price-shock:BTC')).toMatch(/price moved 5\.26% within 60s/);
  });

  it('market: an implied-vol shock within the window stops option orders only', async () => {
    const b = board({ market: { ivShockVolPoints: 15, ivShockWindowSeconds: 300 } });
    const t0 = clock.nowMs();
    await b.observeIv('BTC', 0.5, t0);
    await b.observeIv('BTC', 0.64, t0 + 60_000); // 14 vol points
    await b.observeIv('BTC', Number.NaN, t0 + 61_000); // ignored, never a sample
    expect((await b.status('market:iv-shock:BTC')).state).toBe('closed');
    await b.observeIv('BTC', 0.66, t0 + 400_000); // 0.5 left the window: 2 points from 0.64
    expect((await b.status('market:iv-shock:BTC')).state).toBe('closed');
    await b.observeIv('BTC', 0.82, t0 + 420_000); // 16 points from 0.66 (0.64 left the window too)
    expect(await tripped(b, 'market:iv-shock:BTC')).toMatch(
      /implied vol moved 16\.0 vol points within 300s \(66\.0 to 82\.0\)/,
    );
    const perp = { venue: 'lyra', chain: 'evm:10', underlying: 'BTC', instrument: 'BTC-USD:PERP' };
    const option = { ...perp, instrument: 'BTC-USD:OPT:20261225:100000:C' };
    expect(breakersFor(perp)).not.toContain('market:iv-shock:BTC');
    expect(breakersFor(option)).toContain('market:iv-shock:BTC');
    expect(await b.gate(breakersFor(perp), { takeTrial: false })).toMatchObject({ allowed: true });
    expect(await b.gate(breakersFor(option), { takeTrial: false })).toMatchObject({
      allowed: false,
      breaker: 'market:iv-shock:BTC',
    });
  });

  it('market: a skew shock within the window stops option orders only', async () => {
    const b = board({ market: { skewShockVolPoints: 8, skewShockWindowSeconds: 120 } });
    const t0 = clock.nowMs();
    await b.observeSkew('ETH', 0.03, t0); // puts 3 vol points over calls
    await b.observeSkew('ETH', -0.045, t0 + 30_000); // 7.5 points: calls now dearer
    await b.observeSkew('ETH', Number.NaN, t0 + 31_000); // no sample
    expect((await b.status('market:skew-shock:ETH')).state).toBe('closed');
    await b.observeSkew('ETH', 0.036, t0 + 60_000); // 8.1 points from −0.045
    expect(await tripped(b, 'market:skew-shock:ETH')).toBe(
      'skew moved 8.1 vol points within 120s (-4.5 to 3.6)',
    );
    const perp = { venue: 'lyra', chain: 'evm:10', underlying: 'ETH', instrument: 'ETH-USD:PERP' };
    const option = { ...perp, instrument: 'ETH-USD:OPT:20261225:3000:P' };
    expect(await b.gate(breakersFor(perp), { takeTrial: false })).toMatchObject({ allowed: true });
    expect(await b.gate(breakersFor(option), { takeTrial: false })).toMatchObject({
      allowed: false,
      breaker: 'market:skew-shock:ETH',
    });
  });

  it('market: venues whose prices of one underlying spread too wide stop its hedges', async () => {
    const b = board({ market: { maxPriceDispersionBps: 100 } });
    // one venue: nothing to compare, whatever its price
    expect(await b.observeDispersion('SOL', { 'drift-sol': 1 })).toBe(0);
    // 180.0 – 181.7 around a median of 180.5: 94.2 bps
    expect(await b.observeDispersion('SOL', { a: 180, b: 180.5, c: 181.7 })).toBeCloseTo(94.18, 2);
    // a price that is not one is left out, not compared (a NaN would compare as "no spread")
    expect(await b.observeDispersion('SOL', { a: 180, b: Number.NaN, c: 0 })).toBe(0);
    expect((await b.status('market:price-dispersion:SOL')).state).toBe('closed');
    // one stale feed: 180 and 180.4 against 178 (median 180): 133.3 bps
    expect(await b.observeDispersion('SOL', { a: 180, b: 180.4, stale: 178, bad: Number.NaN })).toBeCloseTo(
      133.33,
      2,
    );
    expect(await tripped(b, 'market:price-dispersion:SOL')).toBe(
      'SOL prices spread 133.3 bps ≥ 100 bps across venues: stale 178, b 180.4 USD',
    );
    const ev = await ledger.listBreakerEvents({ breaker: 'market:price-dispersion:SOL' });
    expect(ev[0]?.details).toMatchObject({ medianUsd: 180, leftOut: ['bad'] });
    const sol = { venue: 'drift-sol', chain: 'solana:mainnet-beta', underlying: 'SOL' };
    expect(await b.gate(breakersFor(sol), { takeTrial: false })).toMatchObject({
      allowed: false,
      breaker: 'market:price-dispersion:SOL',
    });
    expect(await b.gate(breakersFor({ ...sol, underlying: 'ETH' }), { takeTrial: false })).toMatchObject({
      allowed: true,
    });
  });

  it('market: hedge slippage, loss since the mark, stale marks, chain halt', async () => {
    const b = board({ market: { maxHedgeSlippageBps: 40, maxLossSinceMarkUsd: 10_000, staleMarkMs: 5000 } });
    await b.observeSlippage('BTC', 39.9);
    await b.observeLossSinceMark(9_999);
    await b.observeMarkAge('BTC', 5000);
    await b.observeChain('solana:mainnet-beta', false);
    for (const name of [
      'market:slippage:BTC',
      'market:loss',
      'market:stale-mark:BTC',
      'chain:solana:mainnet-beta',
    ])
      expect((await b.status(name)).state).toBe('closed');
    await b.observeSlippage('BTC', 41.5, { clientOrderId: 'c1' });
    expect(await tripped(b, 'market:slippage:BTC')).toMatch(/hedge slippage 41\.5 bps > 40 bps/);
    await b.observeLossSinceMark(12_500);
    expect(await tripped(b, 'market:loss')).toMatch(/loss since mark 12500\.00 USD > 10000 USD/);
    await b.observeMarkAge('BTC', 7000);
    expect(await tripped(b, 'market:stale-mark:BTC')).toMatch(/marks 7000 ms old > 5000 ms/);
    await b.observeChain('solana:mainnet-beta', true);
    expect(await tripped(b, 'chain:solana:mainnet-beta')).toMatch(/chain halted/);
  });

  it('without a configured loss limit the loss breaker never trips', async () => {
    const b = board();
    await b.observeLossSinceMark(1e12);
    expect((await b.status('market:loss')).state).toBe('closed');
  });

  it('the book mark: first equity marks it, losses are measured from it, operators re-mark', async () => {
    const b = board({ market: { maxLossSinceMarkUsd: 5_000 } });
    expect(await b.bookMark()).toEqual({ maxLossSinceMarkUsd: 5_000 });
    // the first observation becomes the mark, written to the audit log
    expect(await b.observeEquity(100_000, { actor: 'planner' })).toEqual({
      markUsd: 100_000,
      lossSinceMarkUsd: 0,
      marked: true,
    });
    const audit = await ledger.listAudit({ action: 'book-mark.set', actor: 'planner' });
    expect(audit[0]?.details).toMatchObject({ markUsd: 100_000, automatic: true });
    // a gain, then a loss inside the limit: no trip
    expect((await b.observeEquity(103_000)).lossSinceMarkUsd).toBe(-3_000);
    expect((await b.observeEquity(95_500)).lossSinceMarkUsd).toBe(4_500);
    expect((await b.status('market:loss')).state).toBe('closed');
    expect(await b.bookMark()).toMatchObject({
      markUsd: 100_000,
      lastEquityUsd: 95_500,
      lossSinceMarkUsd: 4_500,
    });
    expect(await metrics.registry.getSingleMetricAsString('xhedge_book_loss_since_mark_usd')).toMatch(
      / 4500$/m,
    );
    expect(await metrics.registry.getSingleMetricAsString('xhedge_book_equity_usd')).toMatch(/ 95500$/m);
    // the operator re-marks at the newest equity: the same loss is now measured from there
    const m = await b.setMark({ actor: 'operator:ana', reason: 'end of day' });
    expect(m).toMatchObject({
      markUsd: 95_500,
      markedBy: 'operator:ana',
      reason: 'end of day',
      lossSinceMarkUsd: 0,
    });
    expect((await b.observeEquity(91_000)).lossSinceMarkUsd).toBe(4_500);
    expect((await b.status('market:loss')).state).toBe('closed');
    // past the limit: trips, with the loss in the reason
    await b.observeEquity(90_400);
    const st = await b.status('market:loss');
    expect(st.state).toBe('open');
    expect(st.reason).toMatch(/loss since mark 5100\.00 USD > 5000 USD/);
    // an explicit mark; re-marking does not close the breaker (the operator resets it on its own)
    expect(
      await b.setMark({ equityUsd: 90_000, actor: 'operator:ana', reason: 'acknowledged' }),
    ).toMatchObject({
      markUsd: 90_000,
      lossSinceMarkUsd: -400,
    });
    expect((await b.status('market:loss')).state).toBe('open');
    const re = await ledger.listAudit({ action: 'book-mark.set', actor: 'operator:ana' });
    expect(re.map((e) => e.details)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ markUsd: 90_000, previousMarkUsd: 95_500, reason: 'acknowledged' }),
      ]),
    );
    await expect(b.observeEquity(Number.NaN)).rejects.toThrow(/finite/);
    await expect(b.setMark({ equityUsd: Number.POSITIVE_INFINITY, actor: 'x', reason: 'y' })).rejects.toThrow(
      /finite/,
    );
  });

  it('a mark asked for before any equity was observed is taken at the next observation', async () => {
    const b = board({ market: { maxLossSinceMarkUsd: 1_000 } });
    expect(await b.setMark({ actor: 'operator:ana', reason: 'start' })).toEqual({
      maxLossSinceMarkUsd: 1_000,
    });
    expect((await b.observeEquity(42_000)).marked).toBe(true);
    expect((await b.bookMark()).markUsd).toBe(42_000);
    // a book that starts over forgets its mark; the next equity marks it again
    await b.clearMark({ actor: 'run', reason: 'paper book rebuilt' });
    expect(await b.bookMark()).toEqual({ maxLossSinceMarkUsd: 1_000 });
    expect((await ledger.listAudit({ action: 'book-mark.clear', actor: 'run' }))[0]?.details).toMatchObject({
      previousMarkUsd: 42_000,
    });
    expect(await b.observeEquity(40_000)).toMatchObject({ marked: true, lossSinceMarkUsd: 0 });
  });

  it('a mark Redis lost comes back from the ledger instead of marking afresh (the loss so far is kept)', async () => {
    // its own ledger: the mark's restore reads the ledger's last word on the mark
    const own = new Ledger(await openDatabase(), { clock });
    try {
      const prefix = `xhbrk${process.pid}-${++n}`;
      const mk = () =>
        new BreakerBoard({
          redis: cmd,
          prefix,
          config: BreakersConfig.parse({ market: { maxLossSinceMarkUsd: 1_000 } }),
          ledger: own,
          clock,
        });
      const b = mk();
      await b.observeEquity(10_000);
      await b.observeEquity(9_500);
      await cmd.del(`${prefix}:book-mark`); // Redis lost it
      const r = await mk().observeEquity(8_900);
      expect(r).toEqual({ markUsd: 10_000, lossSinceMarkUsd: 1_100, marked: false });
      expect((await b.status('market:loss')).state).toBe('open');
      expect((await b.bookMark()).reason).toMatch(/restored from the ledger/);
      expect(await own.listAudit({ action: 'book-mark.restore' })).toHaveLength(1);
      // after a clear, the ledger's last word is "no mark": the next equity marks afresh
      await b.clearMark({ actor: 'run', reason: 'paper restart' });
      await cmd.del(`${prefix}:book-mark`);
      expect(await b.observeEquity(5_000)).toMatchObject({ markUsd: 5_000, marked: true });
    } finally {
      await own.close();
    }
  });
});

/**
 * `cmd` as a board sees it, with `step` run once around the first command of `methods` that names `key`:
 * right before it (`before`) or right after it answered (`after`). Another process's step, made to land
 * exactly inside a board's operation.
 */
function interleaved(
  cmd: Redis,
  o: { methods: readonly string[]; key: string; at: 'before' | 'after'; step: () => Promise<unknown> },
): Redis {
  let fired = false;
  return new Proxy(cmd, {
    get(target, prop) {
      const v: unknown = Reflect.get(target, prop, target);
      if (typeof v !== 'function') return v;
      const f = v as (...args: unknown[]) => Promise<unknown>;
      if (!o.methods.includes(String(prop))) return f.bind(target);
      return async (...args: unknown[]) => {
        const mine = !fired && args.includes(o.key);
        if (mine) fired = true;
        if (mine && o.at === 'before') await o.step();
        const r = await f.apply(target, args);
        if (mine && o.at === 'after') await o.step();
        return r;
      };
    },
  });
}

describe('circuit breakers: transitions racing each other across processes', () => {
  let redis: Awaited<ReturnType<typeof testRedis>>;
  let cmd: Redis;
  let other: Redis;
  let db: DatabaseHandle;
  let ledger: Ledger;
  const clock = new ManualClock(Date.UTC(2026, 0, 6));
  let n = 0;
  const cfg = BreakersConfig.parse({
    venue: { minRequests: 4, errorRatePct: 50, cooldownSeconds: 1, windowSeconds: 600 },
  });
  /** Two boards on one deployment, as two processes hold them: `a` on `redisA` (a hooked client), `b` on its own. */
  const boards = (redisA?: (prefix: string) => Redis, ledgerA: Ledger = ledger) => {
    const prefix = `xhbrr${process.pid}-${++n}`;
    const mk = (r: Redis, l: Ledger) => new BreakerBoard({ redis: r, prefix, config: cfg, ledger: l, clock });
    return { prefix, a: mk(redisA ? redisA(prefix) : cmd, ledgerA), b: mk(other, ledger) };
  };
  const last = async (name: string) => (await ledger.listBreakerEvents({ breaker: name, limit: 1 }))[0];

  beforeAll(async () => {
    redis = await testRedis();
    cmd = redis.client();
    other = redis.client();
    if (await postgresReachable())
      db = await openDatabase({
        url: TEST_PG_URL,
        schema: `t_${randomBytes(6).toString('hex')}`,
        poolSize: 4,
      });
    else {
      console.warn(`[breakers tests] Postgres at ${TEST_PG_URL} not reachable: the race tests run on PGlite`);
      db = await openDatabase();
    }
    ledger = new Ledger(db, { clock });
  });
  afterAll(async () => {
    const keys = await cmd.keys(`xhbrr${process.pid}-*`);
    if (keys.length) await cmd.del(...keys);
    cmd.disconnect();
    other.disconnect();
    await redis.close();
    if (db?.kind === 'postgres') await db.dropSchema();
    await ledger?.close();
  });

  it('a trip that lands inside a reset is closed by it and recorded so: from open, with the trip it closed', async () => {
    const name = 'market:slippage:ETH';
    let b: BreakerBoard | undefined;
    const { a } = boards((prefix) =>
      interleaved(cmd, {
        methods: ['hset', 'eval', 'evalsha'],
        key: keysFor(prefix).breaker(name),
        at: 'before',
        step: async () => {
          clock.advance(5);
          await b?.trip(name, 'slippage 80 bps > 50 bps');
        },
      }),
    );
    b = new BreakerBoard({ redis: other, prefix: a.prefix, config: cfg, ledger, clock });
    const openedAtMs = clock.nowMs() + 5;
    const r = await a.reset(name, 'operator:ana', 'all good');
    expect(r).toEqual({ name, from: 'open', closed: { openedAtMs, reason: 'slippage 80 bps > 50 bps' } });
    expect((await a.status(name)).state).toBe('closed');
    // the ledger: the trip, then its close, from the state Redis really held
    const events = (await ledger.listBreakerEvents({ breaker: name })).reverse();
    expect(events.map((e) => `${e.fromState}->${e.toState}`)).toEqual(['closed->open', 'open->closed']);
    expect(events[1]?.details).toMatchObject({
      actor: 'operator:ana',
      closedOpenedAtMs: openedAtMs,
      closedReason: 'slippage 80 bps > 50 bps',
    });
  });

  it('a reset told which trip it closes leaves a newer trip open and says so (409)', async () => {
    const name = 'market:stale-mark:ETH';
    const { a } = boards();
    await a.trip(name, 'marks 9000 ms old');
    const seen = await a.status(name);
    await a.reset(name, 'operator:bo', 'feed back', { ifOpenedAtMs: seen.openedAtMs as number });
    clock.advance(1_000);
    await a.trip(name, 'marks 12000 ms old'); // a newer trip the operator has not seen
    const err = await a
      .reset(name, 'operator:bo', 'feed back', { ifOpenedAtMs: seen.openedAtMs as number })
      .then(
        (r) => r,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(BreakerResetConflictError);
    expect(err).toMatchObject({
      code: 'BREAKER_RESET_CONFLICT',
      details: {
        breaker: name,
        state: 'open',
        reason: 'marks 12000 ms old',
        openedAtMs: clock.nowMs(),
        expectedOpenedAtMs: seen.openedAtMs,
      },
    });
    expect((await a.status(name)).state).toBe('open');
    expect(await last(name)).toMatchObject({
      fromState: 'closed',
      toState: 'open',
      reason: 'marks 12000 ms old',
    });
    // told the trip in force, it closes it
    expect(await a.reset(name, 'operator:bo', 'feed back', { ifOpenedAtMs: clock.nowMs() })).toMatchObject({
      from: 'open',
    });
    expect((await a.status(name)).state).toBe('closed');
  });

  it("a reset whose ledger event lands after a later trip's: the ledger's last word is open, as Redis", async () => {
    const name = 'chain:evm:1';
    let b: BreakerBoard | undefined;
    // the reset's process is slow to write its event: a trip in Redis and its event come first
    const slow = new Proxy(ledger, {
      get(target, prop) {
        const v: unknown = Reflect.get(target, prop, target);
        if (prop !== 'recordBreakerEvent' || typeof v !== 'function')
          return typeof v === 'function' ? v.bind(target) : v;
        return async (e: Parameters<Ledger['recordBreakerEvent']>[0]) => {
          if (e.toState === 'closed') await b?.trip(name, 'chain halted (no blocks / trading paused)');
          await target.recordBreakerEvent(e);
        };
      },
    });
    const { a } = boards(undefined, slow);
    b = new BreakerBoard({ redis: other, prefix: a.prefix, config: cfg, ledger, clock });
    await a.trip(name, 'chain halted (no blocks / trading paused)');
    clock.advance(2_000);
    await a.reset(name, 'operator:cy', 'chain back');
    const st = await a.status(name);
    expect(st.state).toBe('open');
    expect(await last(name)).toMatchObject({
      toState: 'open',
      details: { openedAtMs: st.openedAtMs, cooldownMs: st.cooldownMs },
    });
    // Redis loses its writes: the restore finds the breaker open, as Redis had it
    await cmd.del(keysFor(a.prefix).breaker(name));
    expect(await a.restoreOpen({ actor: 'run', serverLostData: true })).toContain(name);
    expect((await a.status(name)).state).toBe('open');
  });

  it('a trip Redis loses right after it (a restart missing the last writes) is not restated as closed: the restore puts it back', async () => {
    const name = 'market:loss';
    let lose = false;
    let before: Record<string, string> = {};
    // Redis restarts from a snapshot taken before the trip (the breaker's hash as a trip and a reset
    // left it: closed) while the trip's process writes its open event
    const losing = new Proxy(ledger, {
      get(target, prop) {
        const v: unknown = Reflect.get(target, prop, target);
        if (prop !== 'recordBreakerEvent' || typeof v !== 'function')
          return typeof v === 'function' ? v.bind(target) : v;
        return async (e: Parameters<Ledger['recordBreakerEvent']>[0]) => {
          if (lose && e.toState === 'open') {
            const key = keysFor(a.prefix).breaker(name);
            await cmd.del(key);
            await cmd.hset(key, before);
          }
          await target.recordBreakerEvent(e);
        };
      },
    });
    const { a } = boards(undefined, losing);
    await a.trip(name, 'first trip', {}, 60_000);
    clock.advance(1_000);
    await a.reset(name, 'operator:ed', 'closed after review');
    before = await cmd.hgetall(keysFor(a.prefix).breaker(name));
    expect(before.state).toBe('closed');
    clock.advance(1_000);
    lose = true;
    await a.trip(name, 'loss limit hit', {}, 86_400_000);
    lose = false;
    expect((await a.status(name)).state).toBe('closed');
    // the ledger's last word is the trip, not a "closed" restated from what Redis lost
    expect(await last(name)).toMatchObject({
      fromState: 'closed',
      toState: 'open',
      reason: 'loss limit hit',
    });
    expect(await a.restoreOpen({ actor: 'run', serverLostData: true })).toContain(name);
    expect(await a.status(name)).toMatchObject({ state: 'open', reason: 'loss limit hit' });
  });

  it('a reset between the window deciding a venue trip and the trip: the reset stands', async () => {
    let b: BreakerBoard | undefined;
    const { a } = boards((prefix) =>
      interleaved(cmd, {
        methods: ['eval', 'evalsha'],
        key: keysFor(prefix).venueCalls('v9'),
        at: 'after',
        step: () => b?.reset('venue:v9', 'operator:di', 'venue fixed') ?? Promise.resolve(),
      }),
    );
    b = new BreakerBoard({ redis: other, prefix: a.prefix, config: cfg, ledger, clock });
    for (let i = 0; i < 3; i++) await b.recordVenueCall('v9', { ok: false, latencyMs: 10 });
    // the fourth failure trips it; the operator's reset lands right after the window decided so
    await a.recordVenueCall('v9', { ok: false, latencyMs: 10 });
    expect((await a.status('venue:v9')).state).toBe('closed');
    // the reset's event landed before the trip's (it ran inside the trip's call): the trip's process
    // restates the close after its own event, so the ledger's last word is closed, as Redis
    const events = (await ledger.listBreakerEvents({ breaker: 'venue:v9' })).reverse();
    expect(events.map((e) => [`${e.fromState}->${e.toState}`, e.details.restated === true])).toEqual([
      ['open->closed', false],
      ['closed->open', false],
      ['open->closed', true],
    ]);
    expect(events[1]?.reason).toBe('failure rate 100% ≥ 50%');
  });

  it('a venue call right after a good trial closed the breaker does not meet the failures that opened it', async () => {
    let b: BreakerBoard | undefined;
    const { a } = boards((prefix) =>
      interleaved(cmd, {
        methods: ['eval', 'evalsha'],
        key: keysFor(prefix).breakerTrial('venue:v8'),
        at: 'after',
        step: () => b?.recordVenueCall('v8', { ok: false, latencyMs: 10 }) ?? Promise.resolve(),
      }),
    );
    b = new BreakerBoard({ redis: other, prefix: a.prefix, config: cfg, ledger, clock });
    for (let i = 0; i < 4; i++) await b.recordVenueCall('v8', { ok: false, latencyMs: 10 });
    expect((await b.status('venue:v8')).state).toBe('open');
    clock.advance(1_500);
    const g = await b.gate(['venue:v8'], { takeTrial: true });
    if (!g.allowed) throw new Error('expected the trial');
    await b.recordVenueCall('v8', { ok: true, latencyMs: 10 }); // the trial order's own call
    // the trial's report closes it; another process's single failure lands right after
    for (const t of g.trials) await a.reportTrial(t, true);
    expect((await a.status('venue:v8')).state).toBe('closed');
  });
});
