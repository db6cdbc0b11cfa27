import { Balance, Dec, Fill, Mark, Order, Position, type Side, TERMINAL_ORDER_STATUSES } from '@xhedge/core';
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import {
  HedgeQuote,
  MarketInfo,
  type OrderRequest,
  SettlementPrice,
  type VenueAdapter,
  VenueCapabilities,
} from '../contract.ts';
import { isVenueError, type VenueErrorCode } from '../errors.ts';

/**
 * What an adapter package gives the conformance suite. `setup` is called before every check and
 * `teardown` after it, so each check may get a fresh venue (paper) or reuse a long-lived one (a local
 * chain): every check measures changes relative to the state it finds, and client order ids are unique
 * per run.
 */
export interface ConformanceSetup {
  venue: VenueAdapter;
  /** A tradable instrument id on the venue (canonical form, e.g. `ETH-USD:PERP`). */
  instrument: string;
  /** A valid order size for it (exact decimal, ≥ the minimum, a multiple of the step). */
  size: string;
  /**
   * Moves the venue's time forward by `ms` of simulated time: advance a ManualClock, mine blocks,
   * run keepers. Without it the suite waits in real time (polling every `pollStepMs`).
   */
  advance?: (ms: number) => Promise<void>;
  /**
   * Arranges that the next `placeOrder` times out for the caller (a `VenueError` with outcome
   * `unknown`) while the order still reaches the venue and fills later. Without it the timeout check
   * is skipped with a printed reason.
   */
  makeTimeout?: () => Promise<void> | void;
  /** Releases the venue (stop nodes, clear timers). */
  teardown?: () => Promise<void> | void;
  /** Longest time to wait for an order to reach a final state, ms (simulated with `advance`). @defaultValue 60000 */
  settleMs?: number;
  /** Time step while waiting, ms. @defaultValue 500 */
  pollStepMs?: number;
  /** Relative tolerance between a quote's expected price and the fill price. @defaultValue 0.05 */
  priceTolerance?: number;
}

let runCounter = 0;
const RUN = Date.now().toString(36);

function clientId(tag: string): string {
  runCounter += 1;
  return `cf-${RUN}-${tag}-${runCounter}`;
}

function skipWith(ctx: TestContext, suite: string, reason: string): void {
  console.info(`[conformance ${suite}] skipped "${ctx.task.name}": ${reason}`);
  ctx.skip(reason);
}

async function positionSize(venue: VenueAdapter, instrument: string): Promise<number> {
  const positions = await venue.fetchPositions();
  let sum = 0;
  for (const p of positions) {
    Position.parse(p);
    if (p.instrument === instrument) sum += p.sizeBase;
  }
  return sum;
}

async function wait(s: ConformanceSetup, ms: number): Promise<void> {
  if (s.advance) await s.advance(ms);
  else await new Promise((r) => setTimeout(r, ms));
}

/**
 * Polls the order until it is final or `settleMs` passed. `allowMissing`: the order may not be visible
 * yet (a timed-out request still in flight), so `null` is waited out instead of failing at once.
 */
async function settle(
  s: ConformanceSetup,
  clientOrderId: string,
  opts: { allowMissing?: boolean } = {},
): Promise<Order> {
  const limit = s.settleMs ?? 60_000;
  const step = s.pollStepMs ?? 500;
  let waited = 0;
  for (;;) {
    const o = await s.venue.getOrderByClientId(clientOrderId);
    if (o === null) {
      if (!opts.allowMissing || waited >= limit)
        throw new Error(`order ${clientOrderId} is unknown to the venue after ${waited} ms`);
    } else if (TERMINAL_ORDER_STATUSES.has(o.status) || waited >= limit) return Order.parse(o);
    await wait(s, step);
    waited += step;
  }
}

async function expectVenueError(p: Promise<unknown>, code: VenueErrorCode, what: string): Promise<void> {
  let caught: unknown;
  try {
    await p;
  } catch (err) {
    caught = err;
  }
  expect(caught, `${what}: expected ${code}, but it succeeded`).toBeDefined();
  expect(isVenueError(caught), `${what}: expected a VenueError, got ${String(caught)}`).toBe(true);
  expect((caught as { code: string }).code, `${what}: ${String(caught)}`).toBe(code);
}

function order(
  s: ConformanceSetup,
  tag: string,
  side: Side,
  extra: Partial<OrderRequest> = {},
): OrderRequest {
  return {
    clientOrderId: clientId(tag),
    instrument: s.instrument,
    side,
    orderType: 'market',
    sizeBase: s.size,
    ...extra,
  };
}

/**
 * Registers the venue-adapter conformance checks as a vitest `describe` block. Each adapter package
 * runs it against its own venue, in a `*.test.ts` file:
 *
 * ```ts
 * import { runVenueConformance } from '@xhedge/venue/conformance';
 * runVenueConformance('gmx-anvil', async () => {
 *   const chain = await startLocalChain();
 *   const venue = createGmxAdapter({ ... });
 *   return {
 *     venue,
 *     instrument: 'ETH-USD:PERP',
 *     size: '0.5',
 *     advance: async (ms) => { await chain.mine(ms); await keeper.run(); },
 *     makeTimeout: () => transport.dropNextResponse(),
 *     teardown: () => chain.stop(),
 *   };
 * });
 * ```
 *
 * What the checks require of the adapter (each is one test):
 * - capabilities parse as `VenueCapabilities`; `loadMarkets` returns `MarketInfo`s including the
 *   instrument (active, `size` ≥ min and a multiple of the step); marks, balances and health validate.
 * - `quoteHedge` returns a valid `HedgeQuote` whose `totalCostUsd` = fee + impact + gas + funding
 *   carry; a market buy of `size` then reaches `filled` near the quoted price (`priceTolerance`).
 * - a sell of `size` quotes a valid `HedgeQuote` too, with the same sum, and states any collateral it
 *   would lock (`lockedCollateralUsd`) as a finite, non-negative USD amount.
 * - positions move by exactly the signed sum of `fetchFills({ clientOrderId })`, for a buy and a sell.
 * - a reduce-only order that would grow (or open) a position throws `InvalidOrderError` at once and
 *   leaves no live order (`getOrderByClientId` → null or `rejected`).
 * - `placeOrder` twice with one client order id returns the same `venueOrderId`, and fills once;
 *   so does a third call after the fill.
 * - cancel: async-keeper venues cancel a pending market order before the keeper runs; other venues
 *   with `cancel` rest a limit buy at half the mark and cancel it. Cancelled orders never fill.
 *   `cancelOrder` of an unknown id throws `OrderNotFoundError`.
 * - after `makeTimeout`, `placeOrder` throws a `VenueError` with outcome `unknown`; the order is then
 *   found by `getOrderByClientId`, fills, and placing the same id again returns it (no second order).
 * - malformed orders (unknown or malformed instrument, zero/negative/NaN/exponent size, empty, spaced or
 *   over-long client id, limit without price) and malformed quotes throw `InvalidOrderError`.
 * - `fetchSettlementPrices`, where the venue has it, answers nothing for the (live) instrument and
 *   for an empty list: a settlement price exists only once the venue fixed one, never as a guess.
 *
 * Checks a venue cannot do (no cancel, no reduce-only, no `makeTimeout`, no `fetchSettlementPrices`)
 * are skipped with the reason printed. Orders use client ids `cf-<run>-<check>-<n>`, unique per run.
 */
export function runVenueConformance(
  name: string,
  setup: () => ConformanceSetup | Promise<ConformanceSetup>,
): void {
  describe(`venue conformance: ${name}`, () => {
    let s: ConformanceSetup;
    beforeEach(async () => {
      s = await setup();
    });
    afterEach(async () => {
      await s?.teardown?.();
    });

    it('declares valid capabilities and loads markets that validate', async () => {
      VenueCapabilities.parse(s.venue.capabilities);
      const markets = await s.venue.loadMarkets();
      expect(markets.length).toBeGreaterThan(0);
      for (const m of markets) MarketInfo.parse(m);
      const m = markets.find((x) => x.instrument.id === s.instrument);
      expect(m, `${s.instrument} is not among the markets`).toBeDefined();
      if (!m) return;
      expect(m.active).toBe(true);
      const size = new Dec(s.size);
      expect(size.gte(m.minSizeBase), `size ${s.size} below minimum ${m.minSizeBase}`).toBe(true);
      expect(size.mod(m.sizeStepBase).isZero(), `size ${s.size} not a multiple of ${m.sizeStepBase}`).toBe(
        true,
      );
      const marks = await s.venue.fetchMarks([s.instrument]);
      expect(marks.length).toBe(1);
      for (const mk of marks) Mark.parse(mk);
      for (const b of await s.venue.fetchBalances()) Balance.parse(b);
      const h = await s.venue.health();
      expect(h.ok).toBe(true);
      expect(h.halted).toBe(false);
    });

    it('quotes, then places, then fills near the quoted price', async () => {
      const quote = HedgeQuote.parse(
        await s.venue.quoteHedge({ instrument: s.instrument, side: 'buy', sizeBase: s.size }),
      );
      expect(quote.instrument).toBe(s.instrument);
      expect(new Dec(quote.executableSizeBase).gt(0)).toBe(true);
      const parts = quote.feeUsd + quote.impactUsd + quote.gasUsd + quote.fundingCarryUsd;
      expect(
        Math.abs(quote.totalCostUsd - parts),
        'totalCostUsd is the sum of its parts',
      ).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(parts)));
      const req = order(s, 'qpf', 'buy');
      const placed = Order.parse(await s.venue.placeOrder(req));
      expect(placed.clientOrderId).toBe(req.clientOrderId);
      expect(placed.status).not.toBe('rejected');
      const done = await settle(s, req.clientOrderId);
      expect(done.status).toBe('filled');
      expect(new Dec(done.filledSizeBase).eq(s.size)).toBe(true);
      const avg = Number(done.avgFillPriceUsd);
      const tol = s.priceTolerance ?? 0.05;
      expect(
        Math.abs(avg / quote.expectedPriceUsd - 1),
        `fill ${avg} vs quote ${quote.expectedPriceUsd}`,
      ).toBeLessThan(tol);
    });

    it('quotes a sell that validates, stating any collateral it would lock as non-negative USD', async () => {
      const raw = await s.venue.quoteHedge({ instrument: s.instrument, side: 'sell', sizeBase: s.size });
      // The schema refuses a negative or non-finite lockedCollateralUsd (a sell is where venues state it).
      const quote = HedgeQuote.parse(raw);
      expect(quote.side).toBe('sell');
      expect(new Dec(quote.executableSizeBase).gt(0)).toBe(true);
      const parts = quote.feeUsd + quote.impactUsd + quote.gasUsd + quote.fundingCarryUsd;
      expect(
        Math.abs(quote.totalCostUsd - parts),
        'totalCostUsd is the sum of its parts (locked collateral is not a cost)',
      ).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(parts)));
    });

    it('positions match fills', async () => {
      const before = await positionSize(s.venue, s.instrument);
      const buy = order(s, 'pmf-b', 'buy');
      await s.venue.placeOrder(buy);
      const b = await settle(s, buy.clientOrderId);
      expect(b.status).toBe('filled');
      const sell = order(s, 'pmf-s', 'sell');
      await s.venue.placeOrder(sell);
      const c = await settle(s, sell.clientOrderId);
      expect(c.status).toBe('filled');
      for (const [o, sign] of [
        [b, 1],
        [c, -1],
      ] as const) {
        const fills = await s.venue.fetchFills({ clientOrderId: o.clientOrderId });
        expect(fills.length).toBeGreaterThan(0);
        let sum = new Dec(0);
        for (const f of fills) {
          Fill.parse(f);
          expect(f.side).toBe(sign > 0 ? 'buy' : 'sell');
          sum = sum.add(f.sizeBase);
        }
        expect(sum.eq(o.filledSizeBase), `fills ${sum.toFixed()} vs order ${o.filledSizeBase}`).toBe(true);
      }
      const mid = before + Number(b.filledSizeBase);
      const after = await positionSize(s.venue, s.instrument);
      expect(after).toBeCloseTo(mid - Number(c.filledSizeBase), 9);
    });

    it('reduce-only refuses to grow a position', async (ctx) => {
      if (!s.venue.capabilities.reduceOnly) {
        skipWith(ctx, name, 'the venue has no reduce-only orders (capabilities.reduceOnly = false)');
        return;
      }
      const pos = await positionSize(s.venue, s.instrument);
      const side: Side = pos >= 0 ? 'buy' : 'sell';
      const req = order(s, 'ro', side, { reduceOnly: true });
      await expectVenueError(
        s.venue.placeOrder(req),
        'VENUE_INVALID_ORDER',
        `reduce-only ${side} with position ${pos}`,
      );
      const o = await s.venue.getOrderByClientId(req.clientOrderId);
      expect(o === null || o.status === 'rejected').toBe(true);
      expect(await positionSize(s.venue, s.instrument)).toBeCloseTo(pos, 9);
    });

    it('placing the same client order id twice creates one order', async () => {
      const before = await positionSize(s.venue, s.instrument);
      const req = order(s, 'dup', 'buy');
      const first = await s.venue.placeOrder(req);
      const second = await s.venue.placeOrder({ ...req });
      expect(second.clientOrderId).toBe(first.clientOrderId);
      expect(second.venueOrderId).toBe(first.venueOrderId);
      const done = await settle(s, req.clientOrderId);
      expect(done.status).toBe('filled');
      const third = await s.venue.placeOrder({ ...req });
      expect(third.venueOrderId).toBe(first.venueOrderId);
      await settle(s, req.clientOrderId);
      const fills = await s.venue.fetchFills({ clientOrderId: req.clientOrderId });
      const sum = fills.reduce((acc, f) => acc.add(f.sizeBase), new Dec(0));
      expect(sum.eq(s.size), `filled ${sum.toFixed()} for one order of ${s.size}`).toBe(true);
      expect(await positionSize(s.venue, s.instrument)).toBeCloseTo(before + Number(s.size), 9);
    });

    it('cancels a working order', async (ctx) => {
      const caps = s.venue.capabilities;
      if (!caps.cancel) {
        skipWith(
          ctx,
          name,
          'the venue cannot cancel (capabilities.cancel = false: fills or reverts atomically)',
        );
        return;
      }
      const before = await positionSize(s.venue, s.instrument);
      let req: OrderRequest;
      if (caps.executionMode === 'async-keeper') {
        req = order(s, 'cxl', 'buy');
      } else {
        if (!caps.orderTypes.includes('limit')) {
          skipWith(ctx, name, 'the venue cancels only resting limit orders and takes no limit orders');
          return;
        }
        const [mark] = await s.venue.fetchMarks([s.instrument]);
        const markets = await s.venue.loadMarkets();
        const tick = markets.find((m) => m.instrument.id === s.instrument)?.priceTickUsd ?? '0.01';
        const far = new Dec(mark?.markPriceUsd ?? 0).mul(0.5).div(tick).floor().mul(tick);
        req = order(s, 'cxl', 'buy', { orderType: 'limit', limitPriceUsd: far.toFixed() });
      }
      const placed = await s.venue.placeOrder(req);
      expect(TERMINAL_ORDER_STATUSES.has(placed.status), `order is ${placed.status}, not working`).toBe(
        false,
      );
      const cancelled = Order.parse(await s.venue.cancelOrder(req.clientOrderId));
      expect(cancelled.status).toBe('cancelled');
      // Let keepers, blocks and the market run: a cancelled order must stay cancelled and unfilled.
      await wait(s, Math.min(s.settleMs ?? 60_000, 10 * (s.pollStepMs ?? 500)));
      const later = await settle(s, req.clientOrderId);
      expect(later.status).toBe('cancelled');
      expect(new Dec(later.filledSizeBase).isZero()).toBe(true);
      expect(await s.venue.fetchFills({ clientOrderId: req.clientOrderId })).toEqual([]);
      expect(await positionSize(s.venue, s.instrument)).toBeCloseTo(before, 9);
      await expectVenueError(
        s.venue.cancelOrder(clientId('nope')),
        'VENUE_ORDER_NOT_FOUND',
        'cancel of an unknown id',
      );
    });

    it('finds a timed-out order by its client order id afterwards', async (ctx) => {
      if (!s.makeTimeout) {
        skipWith(ctx, name, 'the setup gives no makeTimeout to force a timeout that still reaches the venue');
        return;
      }
      await s.makeTimeout();
      const req = order(s, 'tmo', 'buy');
      let caught: unknown;
      try {
        await s.venue.placeOrder(req);
      } catch (err) {
        caught = err;
      }
      expect(isVenueError(caught), `expected a VenueError, got ${String(caught)}`).toBe(true);
      expect((caught as { outcome: string }).outcome).toBe('unknown');
      const done = await settle(s, req.clientOrderId, { allowMissing: true });
      expect(done.clientOrderId).toBe(req.clientOrderId);
      expect(done.status).toBe('filled');
      const again = await s.venue.placeOrder({ ...req });
      expect(again.venueOrderId).toBe(done.venueOrderId);
      const fills = await s.venue.fetchFills({ clientOrderId: req.clientOrderId });
      expect(fills.reduce((a, f) => a.add(f.sizeBase), new Dec(0)).eq(s.size)).toBe(true);
    });

    const malformed: [string, (s: ConformanceSetup) => Partial<OrderRequest>][] = [
      ['unknown instrument', () => ({ instrument: 'ZZZQ-USD:PERP' })],
      ['malformed instrument id', () => ({ instrument: 'not an instrument' })],
      ['zero size', () => ({ sizeBase: '0' })],
      ['negative size', () => ({ sizeBase: '-1' })],
      ['NaN size', () => ({ sizeBase: 'NaN' })],
      ['exponent size', () => ({ sizeBase: '1e3' })],
      ['empty client id', () => ({ clientOrderId: '' })],
      ['client id with spaces', () => ({ clientOrderId: 'has space' })],
      ['client id too long', () => ({ clientOrderId: 'x'.repeat(65) })],
      ['limit order without a price', () => ({ orderType: 'limit' })],
    ];
    it.each(malformed)('rejects a malformed order (%s) with InvalidOrderError', async (_label, mutate) => {
      const req = { ...order(s, 'bad', 'buy'), ...mutate(s) };
      await expectVenueError(s.venue.placeOrder(req as OrderRequest), 'VENUE_INVALID_ORDER', _label);
      if (/^[A-Za-z0-9_-]{1,64}$/.test(req.clientOrderId)) {
        const o = await s.venue.getOrderByClientId(req.clientOrderId);
        expect(o === null || o.status === 'rejected').toBe(true);
      }
    });

    it('answers no settlement price for a live instrument', async (ctx) => {
      if (!s.venue.fetchSettlementPrices) {
        skipWith(ctx, name, 'the venue has no fetchSettlementPrices (no dated instruments)');
        return;
      }
      expect(await s.venue.fetchSettlementPrices([])).toEqual([]);
      const got = await s.venue.fetchSettlementPrices([s.instrument]);
      for (const p of got) SettlementPrice.parse(p);
      expect(got, `${s.instrument} is live: it has no settlement price yet`).toEqual([]);
    });

    it('rejects a malformed quote request with InvalidOrderError', async () => {
      await expectVenueError(
        s.venue.quoteHedge({ instrument: 'ZZZQ-USD:PERP', side: 'buy', sizeBase: s.size }),
        'VENUE_INVALID_ORDER',
        'quote on an unknown instrument',
      );
      await expectVenueError(
        s.venue.quoteHedge({ instrument: s.instrument, side: 'buy', sizeBase: '-2' }),
        'VENUE_INVALID_ORDER',
        'quote of a negative size',
      );
    });
  });
}
