import { randomBytes } from 'node:crypto';
import { LimitsConfig } from '@xhedge/config';
import { type HedgeIntent, ManualClock } from '@xhedge/core';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PreTradeControls } from './controls.ts';
import { clientOrderIdFor } from './ids.ts';
import type { RedisEndpoint } from './redis.ts';
import { testRedis } from './test-env.ts';

const clock = new ManualClock(1_000_000);
const limits = LimitsConfig.parse({
  maxOrderNotionalUsd: 10_000,
  maxHedgeNotionalPerWindowUsd: 25_000,
  windowSeconds: 60,
  priceBandBps: 100,
  maxSlippageBps: 20,
  staleAfterMs: 5_000,
  maxPositionBase: { ETH: 10 },
  maxVenueNotionalUsd: { v1: 12_000, '*': 100_000 },
  maxTotalNotionalUsd: 150_000,
  maxNetDeltaUsd: { BTC: 500_000, '*': 30_000 },
  repeatedExecution: { maxExecutions: 4, windowSeconds: 60 },
});
const leg = (n: number, over: Partial<HedgeIntent> = {}): HedgeIntent => ({
  id: `int_${String(n).padStart(24, '0')}`,
  planId: `plan_${n}`,
  underlying: 'ETH',
  venue: 'v1',
  chain: 'evm:1',
  instrument: 'ETH-USD:PERP',
  side: 'buy',
  sizeBase: '2',
  orderType: 'market',
  referencePriceUsd: 3000,
  reduceOnly: false,
  urgency: 'normal',
  reason: 't',
  createdAtMs: clock.nowMs(),
  dependsOn: [],
  ...over,
});

describe('pre-trade controls', () => {
  let redis: RedisEndpoint;
  let cmd: Redis;
  let c: PreTradeControls;
  beforeAll(async () => {
    redis = await testRedis();
    cmd = redis.client();
    c = new PreTradeControls({ redis: cmd, prefix: `xhc${randomBytes(4).toString('hex')}`, limits, clock });
  });
  afterAll(async () => {
    cmd.disconnect();
    await redis.close();
  });

  it('per-order checks: notional, stale, band, slippage, position', () => {
    expect(c.checkOrder(leg(1, { sizeBase: '4' }), {})).toMatchObject({
      ok: false,
      control: 'max-order-notional',
    });
    expect(c.checkOrder(leg(1, { createdAtMs: clock.nowMs() - 6_000 }), {})).toMatchObject({
      control: 'stale-data',
    });
    expect(c.checkOrder(leg(1), { mark: { priceUsd: 3000, asOfMs: clock.nowMs() - 9_000 } })).toMatchObject({
      control: 'stale-data',
    });
    expect(c.checkOrder(leg(1), { mark: { priceUsd: 3100, asOfMs: clock.nowMs() } })).toMatchObject({
      control: 'price-band',
    });
    expect(c.checkOrder(leg(1, { limitPriceUsd: '3100' }), {})).toMatchObject({ control: 'price-band' });
    expect(c.checkOrder(leg(1), { expectedPriceUsd: 3009 })).toMatchObject({ control: 'max-slippage' });
    expect(c.checkOrder(leg(1), { positionBase: 9 })).toMatchObject({ control: 'position-limit' });
    // reducing an over-limit position is allowed
    expect(c.checkOrder(leg(1, { side: 'sell' }), { positionBase: 12 })).toEqual({ ok: true });
    // venue exposure: 2 ETH more on v1 (at the reference, 3000) on top of 1 ETH and 5 000 USD of others
    const exposure = { venueExposure: { instrumentSizeBase: 1, otherNotionalUsd: 5_000 } };
    expect(c.checkOrder(leg(1), exposure)).toMatchObject({
      control: 'venue-exposure',
      reason: 'notional on v1 would be 14000.00 USD > 12000 USD (its other positions 5000.00 USD)',
    });
    // valued at the mark when there is one: 3 × 2 990 + 5 000
    expect(
      c.checkOrder(leg(1), { ...exposure, mark: { priceUsd: 2990, asOfMs: clock.nowMs() } }),
    ).toMatchObject({
      control: 'venue-exposure',
      reason: expect.stringMatching(/would be 13970\.00 USD/),
    });
    // shrinking the venue's position in the instrument passes, however much it holds
    expect(
      c.checkOrder(leg(1, { side: 'sell' }), {
        venueExposure: { instrumentSizeBase: 9, otherNotionalUsd: 50_000 },
      }),
    ).toEqual({ ok: true });
    // other venues fall to the '*' cap: 2 × 3000 + 95 000 > 100 000
    expect(
      c.checkOrder(leg(1, { venue: 'v2' }), {
        venueExposure: { instrumentSizeBase: 0, otherNotionalUsd: 95_000 },
      }),
    ).toMatchObject({ control: 'venue-exposure' });
    expect(
      c.checkOrder(leg(1, { venue: 'v2' }), {
        venueExposure: { instrumentSizeBase: 0, otherNotionalUsd: 93_000 },
      }),
    ).toEqual({ ok: true });
    // across venues: 2 × 3000 more on top of 0.5 ETH here and 145 000 USD held elsewhere > 150 000
    expect(
      c.checkOrder(leg(1), { totalExposure: { instrumentSizeBase: 0.5, otherNotionalUsd: 145_000 } }),
    ).toMatchObject({
      control: 'total-exposure',
      reason: 'notional across venues would be 152500.00 USD > 150000 USD',
    });
    expect(
      c.checkOrder(leg(1, { side: 'sell' }), {
        totalExposure: { instrumentSizeBase: 3, otherNotionalUsd: 200_000 },
      }),
    ).toEqual({ ok: true });
    expect(
      c.checkOrder(leg(1), { mark: { priceUsd: 3010, asOfMs: clock.nowMs() }, positionBase: 0 }),
    ).toEqual({
      ok: true,
    });
  });

  it('a crossed quote at the venue blocks the order; a locked one does not', () => {
    const at = clock.nowMs();
    expect(
      c.checkOrder(leg(1), { mark: { priceUsd: 3000, asOfMs: at, bidUsd: 3001.5, askUsd: 2999 } }),
    ).toEqual({
      ok: false,
      control: 'crossed-market',
      reason: 'v1 quotes ETH-USD:PERP crossed: bid 3001.5 > ask 2999; its prices are not to be traded on',
    });
    expect(
      c.checkOrder(leg(1), { mark: { priceUsd: 3000, asOfMs: at, bidUsd: 3000, askUsd: 3000 } }),
    ).toEqual({
      ok: true,
    });
    // one side missing: nothing to compare
    expect(c.checkOrder(leg(1), { mark: { priceUsd: 3000, asOfMs: at, bidUsd: 3100 } })).toEqual({
      ok: true,
    });
  });

  it('a number a check reads that is not finite blocks the order under that check, naming it', () => {
    const at = clock.nowMs();
    const m = { priceUsd: 3000, asOfMs: at };
    const cases: [Parameters<PreTradeControls['checkOrder']>[1], string, RegExp][] = [
      [
        { mark: { ...m, asOfMs: Number.NaN } },
        'stale-data',
        /^v1 mark time of ETH-USD:PERP is not a number: NaN$/,
      ],
      [
        { mark: { ...m, priceUsd: Number.NaN } },
        'price-band',
        /^v1 mark of ETH-USD:PERP is not a positive finite number: NaN$/,
      ],
      [
        { mark: { ...m, bidUsd: Number.NaN, askUsd: 3001 } },
        'crossed-market',
        /bid or ask that is not a number: bid NaN, ask 3001/,
      ],
      [{ mark: { ...m, bidUsd: 2999, askUsd: Number.NaN } }, 'crossed-market', /bid 2999, ask NaN/],
      [
        { expectedPriceUsd: Number.NaN },
        'max-slippage',
        /^v1 expected price of ETH-USD:PERP is not a positive finite number: NaN$/,
      ],
      [{ decisionAsOfMs: Number.NaN }, 'stale-data', /time the dependencies completed is not a number: NaN/],
      [
        { venueExposure: { instrumentSizeBase: Number.NaN, otherNotionalUsd: 0 } },
        'venue-exposure',
        /^what v1 holds is not a number: NaN ETH-USD:PERP, other positions 0 USD$/,
      ],
      [
        { totalExposure: { instrumentSizeBase: 0, otherNotionalUsd: Number.NaN } },
        'total-exposure',
        /^what the venues hold is not a number: 0 ETH-USD:PERP on v1, other positions NaN USD$/,
      ],
    ];
    for (const [ctx, control, reason] of cases)
      expect(c.checkOrder(leg(1), ctx), JSON.stringify(ctx)).toMatchObject({
        ok: false,
        control,
        reason: expect.stringMatching(reason),
      });
    // a sell expecting an infinite price looked like no slippage at all
    expect(
      c.checkOrder(leg(1, { side: 'sell' }), { expectedPriceUsd: Number.POSITIVE_INFINITY }),
    ).toMatchObject({
      control: 'max-slippage',
    });
    expect(c.checkOrder(leg(1, { referencePriceUsd: Number.NaN }), {})).toMatchObject({
      control: 'price-band',
      reason: 'reference price NaN of ETH-USD:PERP is not a positive finite number',
    });
    expect(c.checkOrder(leg(1, { createdAtMs: Number.NaN }), {})).toMatchObject({ control: 'stale-data' });
    // the same inputs, finite, pass
    expect(
      c.checkOrder(leg(1), {
        mark: { ...m, bidUsd: 2999, askUsd: 3001 },
        expectedPriceUsd: 3001,
        decisionAsOfMs: at,
        venueExposure: { instrumentSizeBase: 0, otherNotionalUsd: 0 },
        totalExposure: { instrumentSizeBase: 0, otherNotionalUsd: 0 },
      }),
    ).toEqual({ ok: true });
  });

  it('a mark the venue left out blocks as stale-data, reduce-only orders too; no mark source skips the mark checks', () => {
    const missing = {
      ok: false,
      control: 'stale-data',
      reason: 'v1 gave no mark for ETH-USD:PERP: its age, price band and quote cannot be checked',
    };
    expect(c.checkOrder(leg(1), { markMissing: true })).toEqual(missing);
    expect(c.checkOrder(leg(1, { side: 'sell', reduceOnly: true }), { markMissing: true })).toEqual(missing);
    expect(c.checkOrder(leg(1), {})).toEqual({ ok: true });
  });

  it('net delta of a plan: refused beyond the cap and further from zero; hedges back always pass', () => {
    const nd = (bookDeltaBase: number, planDeltaBase: number, underlying = 'ETH', spotUsd = 3000) => ({
      underlying,
      bookDeltaBase,
      planDeltaBase,
      spotUsd,
    });
    // ETH falls to '*' (30 000 USD = 10 ETH at 3000): 4 + 7 = 11 ETH = 33 000 USD
    expect(c.checkNetDelta(nd(4, 7))).toEqual({
      ok: false,
      control: 'net-delta',
      reason: 'net delta on ETH would be 33000.00 USD > ±30000 USD (book 12000.00 USD, the plan adds 7 ETH)',
    });
    expect(c.checkNetDelta(nd(4, 6))).toEqual({ ok: true }); // exactly at the cap
    // a plan that overshoots: −4 → +4 is no further from zero and inside the cap; −4 → +12 is refused
    expect(c.checkNetDelta(nd(-4, 8))).toEqual({ ok: true });
    expect(c.checkNetDelta(nd(-4, 16))).toMatchObject({ control: 'net-delta' });
    // already beyond the cap: a hedge that brings it closer passes, even when it stays beyond
    expect(c.checkNetDelta(nd(-20, 5))).toEqual({ ok: true });
    expect(c.checkNetDelta(nd(-20, -1))).toMatchObject({ control: 'net-delta' });
    // BTC has its own cap: 4 BTC at 100 000 = 400 000 USD ≤ 500 000
    expect(c.checkNetDelta(nd(0, 4, 'BTC', 100_000))).toEqual({ ok: true });
    expect(c.checkNetDelta(nd(0, 6, 'BTC', 100_000))).toMatchObject({ control: 'net-delta' });
    // what cannot be valued is refused, naming what is wrong
    expect(c.checkNetDelta(nd(1, Number.NaN))).toEqual({
      ok: false,
      control: 'net-delta',
      reason: "cannot value the plan's net delta on ETH: book 1, plan NaN, spot 3000",
    });
    expect(c.checkNetDelta(nd(1, 1, 'ETH', 0))).toMatchObject({ control: 'net-delta' });
    // no cap at all: not checked
    const uncapped = new PreTradeControls({
      redis: cmd,
      prefix: 'unused',
      limits: LimitsConfig.parse({ ...limits, maxNetDeltaUsd: {} }),
      clock,
    });
    expect(uncapped.checkNetDelta(nd(1e9, 1e9))).toEqual({ ok: true });
  });

  it('window notional is shared and idempotent per intent; released intents free room', async () => {
    expect(await c.check(leg(10), {}, { reserve: true })).toEqual({ ok: true });
    expect(await c.check(leg(10), {}, { reserve: true })).toEqual({ ok: true }); // same intent: not counted twice
    expect(await c.check(leg(11), {}, { reserve: true })).toEqual({ ok: true });
    expect(await c.check(leg(12), {}, { reserve: true })).toEqual({ ok: true }); // 18k
    expect(await c.check(leg(13, { sizeBase: '3' }), {}, { reserve: true })).toMatchObject({
      control: 'window-notional-underlying',
    });
    await c.release(leg(12));
    expect(await c.check(leg(13), {}, { reserve: true })).toEqual({ ok: true });
    clock.advance(61_000);
    expect(await c.check(leg(14, { createdAtMs: clock.nowMs() }), {}, { reserve: true })).toEqual({
      ok: true,
    });
  });

  it('self-cross: opposite sides live at once on different venues (other plans) block; not otherwise', async () => {
    clock.advance(120_000);
    const at = clock.nowMs();
    const buy = leg(20, { createdAtMs: at, planId: 'plan_x' });
    const samePlan = leg(21, { side: 'sell', venue: 'v2', createdAtMs: at, planId: 'plan_x' });
    const otherVenue = leg(22, { side: 'sell', venue: 'v2', createdAtMs: at, planId: 'plan_y' });
    const sameVenue = leg(23, { side: 'sell', venue: 'v1', createdAtMs: at, planId: 'plan_z' });
    expect(await c.check(buy, {}, { reserve: true })).toEqual({ ok: true });
    // legs of one plan may cross on purpose (moving a hedge between venues)
    expect(await c.check(samePlan, {}, { reserve: true })).toEqual({ ok: true });
    await c.release(samePlan);
    // another plan's sell on another venue while the buy is live: a self-cross
    expect(await c.check(otherVenue, {}, { reserve: false })).toMatchObject({
      control: 'self-cross',
      reason: expect.stringContaining(buy.id),
    });
    // on the same venue the orders net in one account: not a self-cross
    expect(await c.check(sameVenue, {}, { reserve: false })).toEqual({ ok: true });
    // once the buy has ended (filled), it is no longer live: the sell may go
    await c.settle(buy);
    expect(await c.check(otherVenue, {}, { reserve: true })).toEqual({ ok: true });
    // and a buy after that sell is judged against the live sell
    const buy2 = leg(24, { createdAtMs: at, planId: 'plan_w', venue: 'v3' });
    expect(await c.check(buy2, {}, { reserve: false })).toMatchObject({ control: 'self-cross' });
    await c.release(otherVenue);
    expect(await c.check(buy2, {}, { reserve: false })).toEqual({ ok: true });
  });

  it('self-cross: a working order kept live past the window still counts; one nobody keeps lapses', async () => {
    clock.advance(120_000);
    const kept = leg(40, { createdAtMs: clock.nowMs(), planId: 'plan_k', venue: 'v1' });
    const crashed = leg(41, { createdAtMs: clock.nowMs(), planId: 'plan_l', venue: 'v3' });
    expect(await c.check(kept, {}, { reserve: true })).toEqual({ ok: true });
    expect(await c.check(crashed, {}, { reserve: true })).toEqual({ ok: true });
    // the worker finds `kept` still working every few seconds; nobody hears of `crashed` again
    for (let i = 0; i < 8; i++) {
      clock.advance(10_000);
      await c.keepLive(kept);
    }
    const sell = () => leg(42, { side: 'sell', createdAtMs: clock.nowMs(), planId: 'plan_m', venue: 'v2' });
    // 80 s on, past the 60 s window: the working buy still blocks a sell of another plan elsewhere
    expect(await c.check(sell(), {}, { reserve: false })).toMatchObject({
      control: 'self-cross',
      reason: expect.stringContaining(kept.id),
    });
    // once it ends, the other buy (never kept, a crashed worker's) has lapsed: the sell may go
    await c.settle(kept);
    expect(await c.check(sell(), {}, { reserve: false })).toEqual({ ok: true });
    // keeping an intent that already ended does not bring it back
    await c.keepLive(kept);
    expect(await c.check(sell(), {}, { reserve: false })).toEqual({ ok: true });
  });

  it('repeated-execution throttle', async () => {
    clock.advance(120_000);
    for (let i = 30; i < 34; i++) {
      expect(
        await c.check(leg(i, { createdAtMs: clock.nowMs(), sizeBase: '0.1' }), {}, { reserve: true }),
      ).toEqual({
        ok: true,
      });
    }
    expect(
      await c.check(leg(34, { createdAtMs: clock.nowMs(), sizeBase: '0.1' }), {}, { reserve: true }),
    ).toMatchObject({
      control: 'repeated-execution',
    });
  });

  it('position limit: orders in flight on the same side count, concurrent checks included', async () => {
    clock.advance(120_000);
    const own = new PreTradeControls({
      redis: cmd,
      prefix: `xhc${randomBytes(4).toString('hex')}`,
      limits,
      clock,
    });
    const at = clock.nowMs();
    // 8 ETH held, cap ±10: each 1.5 ETH buy passes alone, both together would hold 11
    const a = leg(50, { sizeBase: '1.5', createdAtMs: at, planId: 'plan_p', venue: 'v2' });
    const b = leg(51, { sizeBase: '1.5', createdAtMs: at, planId: 'plan_p', venue: 'v3' });
    const ctx = { positionBase: 8 };
    expect(own.checkOrder(a, ctx)).toEqual({ ok: true });
    expect(own.checkOrder(b, ctx)).toEqual({ ok: true });
    const both = await Promise.all([a, b].map((l) => own.check(l, ctx, { reserve: true })));
    expect(both.filter((r) => r.ok)).toHaveLength(1);
    expect(both.find((r) => !r.ok)).toEqual({
      ok: false,
      control: 'position-limit',
      reason: 'position would be 11 ETH > ±10 ETH with the same-side orders in flight',
    });
    const [passed, refused] = both[0]?.ok ? [a, b] : [b, a];
    // its own reservation is not counted against itself (the check right before the send)
    expect(await own.check(passed, ctx, { reserve: true })).toEqual({ ok: true });
    // a sell in flight makes no room: it may still fail
    const sell = leg(52, { side: 'sell', sizeBase: '3', createdAtMs: at, planId: 'plan_p', venue: 'v1' });
    expect(await own.check(sell, ctx, { reserve: true })).toEqual({ ok: true });
    expect(await own.check(refused, ctx, { reserve: false })).toMatchObject({ control: 'position-limit' });
    // an order that ends without trading frees its room
    await own.release(passed);
    expect(await own.check(refused, ctx, { reserve: true })).toEqual({ ok: true });
    // an option order does not move the linear position, and takes no room from it
    const call = leg(53, { instrument: 'ETH-USD:OPT:20261225:4000:C', sizeBase: '1.5', createdAtMs: at });
    expect(await own.check(call, { positionBase: 0 }, { reserve: true })).toEqual({ ok: true });
    expect(
      await own.check(leg(54, { sizeBase: '1.5', createdAtMs: at }), ctx, { reserve: false }),
    ).toMatchObject({ control: 'position-limit' });
    await own.settle(refused);
    expect(await own.check(leg(54, { sizeBase: '1.5', createdAtMs: at }), ctx, { reserve: false })).toEqual({
      ok: true,
    });
    // a position that is not a number is refused, not compared
    expect(own.checkOrder(a, { positionBase: Number.NaN })).toMatchObject({ control: 'position-limit' });
  });

  it('option legs move neither the linear position limit nor the linear exposure caps, in the per-order check as in the window', async () => {
    clock.advance(120_000);
    const own = new PreTradeControls({
      redis: cmd,
      prefix: `xhc${randomBytes(4).toString('hex')}`,
      limits,
      clock,
    });
    const at = clock.nowMs();
    // 9 ETH of perps held, cap ±10: a 2-contract call buy (premium 150 USD) is not 11 ETH of position
    const call = leg(60, {
      instrument: 'ETH-USD:OPT:20261225:4000:C',
      sizeBase: '2',
      referencePriceUsd: 150,
      createdAtMs: at,
    });
    const ctx = { positionBase: 9 };
    expect(own.checkOrder(call, ctx)).toEqual({ ok: true });
    expect(await own.check(call, ctx, { reserve: true })).toEqual({ ok: true });
    // nor does a venue at its (perps, futures and spot) notional cap refuse it
    const full = { venueExposure: { instrumentSizeBase: 0, otherNotionalUsd: 12_000 } };
    expect(own.checkOrder(call, full)).toEqual({ ok: true });
    // the same size of perp is refused by both
    const perp = leg(61, { sizeBase: '2', createdAtMs: at });
    expect(own.checkOrder(perp, ctx)).toMatchObject({ control: 'position-limit' });
    expect(own.checkOrder(perp, full)).toMatchObject({ control: 'venue-exposure' });
  });

  it('client order ids are deterministic and within 64 characters', () => {
    expect(clientOrderIdFor('int_abc')).toBe('xh-int_abc');
    const long = clientOrderIdFor('x'.repeat(100));
    expect(long.length).toBeLessThanOrEqual(64);
    expect(clientOrderIdFor('x'.repeat(100))).toBe(long);
  });
});
