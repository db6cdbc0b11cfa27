import { BreakersConfig } from '@xhedge/config';
import { ManualClock } from '@xhedge/core';
import { Ledger, openDatabase } from '@xhedge/store';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BreakerBoard, breakersFor } from './breakers.ts';
import { ExecutionMetrics } from './metrics.ts';
import { testRedis } from './test-env.ts';

/**
 * Every trip of the venue and market breakers, on a real Redis: the breaker opens, the order gate's
 * list for an order on that venue, chain and underlying contains it, and the transition is in the
 * ledger and in the metrics.
 */
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
  afterAll(async () => {
    const keys = await cmd.keys(`xhbrk${process.pid}-*`);
    if (keys.length) await cmd.del(...keys);
    cmd.disconnect();
    await redis.close();
    await ledger.close();
  });

  it('an order is gated by its venue, chain, and its underlying’s market breakers', () => {
    expect(breakersFor({ venue: 'gmx-arb', chain: 'evm:42161', underlying: 'BTC' })).toEqual([
      'venue:gmx-arb',
      'chain:evm:42161',
      'market:price-shock:BTC',
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
});
