import { Dec, instrumentMeta, ManualClock, parseInstrumentId } from '@xhedge/core';
import { createMarketSimulator } from '@xhedge/sim';
import {
  InvalidOrderError,
  type MarketInfo,
  type SettlementPrice,
  type VenueAdapter,
  type VenueCapabilities,
} from '@xhedge/venue';
import { runVenueConformance } from '@xhedge/venue/conformance';
import { describe, expect, it } from 'vitest';
import { createPaperVenue } from './create.ts';
import { ShadowVenue } from './shadow.ts';
import { MemoryShadowStore } from './shadow-store.ts';
import { conformanceSetup, TEST_START_MS, testVenue } from './testkit.ts';

/** A dry run over a venue that must never receive an order: its placeOrder and cancelOrder throw. */
function dryRunOf(kind: Parameters<typeof testVenue>[0]) {
  const t = testVenue(kind);
  const sent: string[] = [];
  const real = t.venue;
  const guard = new Proxy(real, {
    get(target, prop, recv) {
      if (prop === 'placeOrder' || prop === 'cancelOrder')
        return (req: { clientOrderId?: string } | string) => {
          sent.push(typeof req === 'string' ? req : String(req.clientOrderId));
          throw new Error('a dry run sent an order to the venue');
        };
      const v = Reflect.get(target, prop, recv);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  return { ...t, real, shadow: new ShadowVenue(guard, { clock: t.clock }), sent };
}

// The shared venue contract holds for a dry-run venue too (nothing rests, so nothing to cancel).
runVenueConformance('dry run over paper-gmx', async () => {
  const s = await conformanceSetup('paper-gmx', async () => 'ETH-USD:PERP', '0.5');
  const { makeTimeout: _none, ...rest } = s;
  return { ...rest, venue: new ShadowVenue(s.venue) };
});
runVenueConformance('dry run over paper-spot-amm', async () => {
  const s = await conformanceSetup('paper-spot-amm', async () => 'ETH-USDC:SPOT', '2');
  const { makeTimeout: _none, ...rest } = s;
  return { ...rest, venue: new ShadowVenue(s.venue) };
});

/** The capabilities of a stand-in venue: one product, market orders, synchronous fills, USDC. */
function stubCapabilities(
  product: VenueCapabilities['products'][number],
  liquidityModel: VenueCapabilities['liquidityModel'],
): VenueCapabilities {
  return {
    products: [product],
    venueGreeks: false,
    liquidityModel,
    executionMode: 'sync',
    orderTypes: ['market'],
    reduceOnly: true,
    cancel: true,
    clientOrderId: 'string',
    fundingIntervalHours: null,
    collateral: ['USDC'],
    inverseSettlement: false,
    gasAsset: null,
  };
}

/**
 * `v` stating that its options settle in the underlying coin (coin-settled, inverse), listing only the
 * markets `listed` keeps (default: all).
 */
function coinSettled(v: VenueAdapter, listed: (m: MarketInfo) => boolean = () => true): VenueAdapter {
  return new Proxy(v, {
    get(target, prop, recv) {
      if (prop === 'loadMarkets')
        return async () =>
          (await target.loadMarkets()).filter(listed).map((m) => ({
            ...m,
            instrument: { ...m.instrument, settlementCurrency: m.instrument.underlying, inverse: true },
          }));
      const x = Reflect.get(target, prop, recv);
      return typeof x === 'function' ? x.bind(target) : x;
    },
  });
}

describe('dry run (ShadowVenue)', () => {
  it('a perp hedge fills at the venue quote, reaches nothing, and shows in positions, P&L and collateral', async () => {
    const d = dryRunOf('paper-drift');
    const [before] = await d.shadow.fetchBalances();
    const q = await d.shadow.quoteHedge({ instrument: 'SOL-USD:PERP', side: 'sell', sizeBase: '4' });
    const o = await d.shadow.placeOrder({
      clientOrderId: 'dry-1',
      instrument: 'SOL-USD:PERP',
      side: 'sell',
      orderType: 'market',
      sizeBase: '4',
    });
    expect(d.sent).toEqual([]);
    expect(await d.real.fetchPositions()).toEqual([]);
    expect(o).toMatchObject({
      status: 'filled',
      filledSizeBase: '4',
      avgFillPriceUsd: String(q.expectedPriceUsd),
    });
    const [pos] = await d.shadow.fetchPositions();
    const [mark] = await d.shadow.fetchMarks(['SOL-USD:PERP']);
    expect(pos).toMatchObject({
      instrument: 'SOL-USD:PERP',
      sizeBase: -4,
      entryPriceUsd: q.expectedPriceUsd,
    });
    // short 4 at the fill: P&L at the mark is (fill − mark) × 4
    const pnl = new Dec(q.expectedPriceUsd)
      .sub(mark?.markPriceUsd ?? Number.NaN)
      .mul(4)
      .toNumber();
    expect(pos?.unsettledPnlUsd).toBeCloseTo(pnl, 9);
    // the fee and gas left the collateral; nothing else did (a perp moves no notional)
    const [after] = await d.shadow.fetchBalances();
    expect((before?.amount ?? 0) - (after?.amount ?? 0)).toBeCloseTo(q.feeUsd + q.gasUsd, 9);
    // the same client order id again: the same order, no second fill
    expect(
      await d.shadow.placeOrder({
        clientOrderId: 'dry-1',
        instrument: 'SOL-USD:PERP',
        side: 'sell',
        orderType: 'market',
        sizeBase: '4',
      }),
    ).toEqual(o);
    expect(await d.shadow.fetchFills({ clientOrderId: 'dry-1' })).toHaveLength(1);
    // closing half realizes its P&L into the collateral at the close's price
    const q2 = await d.shadow.quoteHedge({ instrument: 'SOL-USD:PERP', side: 'buy', sizeBase: '2' });
    await d.shadow.placeOrder({
      clientOrderId: 'dry-2',
      instrument: 'SOL-USD:PERP',
      side: 'buy',
      orderType: 'market',
      sizeBase: '2',
      reduceOnly: true,
    });
    const [closed] = await d.shadow.fetchBalances();
    const realized = new Dec(q.expectedPriceUsd).sub(q2.expectedPriceUsd).mul(2).toNumber();
    expect((closed?.amount ?? 0) - (after?.amount ?? 0)).toBeCloseTo(realized - q2.feeUsd - q2.gasUsd, 9);
    expect((await d.shadow.fetchPositions())[0]).toMatchObject({
      sizeBase: -2,
      entryPriceUsd: q.expectedPriceUsd,
    });
    expect(d.sent).toEqual([]);
  });

  it('a simulated perp position pays or earns funding at the venue rate and mark for the time it is held', async () => {
    const d = dryRunOf('paper-drift');
    const shadow = d.shadow;
    await shadow.placeOrder({
      clientOrderId: 'dry-f',
      instrument: 'SOL-USD:PERP',
      side: 'sell',
      orderType: 'market',
      sizeBase: '4',
    });
    const [before] = await shadow.fetchBalances();
    await d.advance(2 * 3_600_000);
    const funding = await shadow.fetchFundingRate?.('SOL-USD:PERP');
    const ratePerHour = funding?.ratePerHour ?? Number.NaN;
    const [mark] = await shadow.fetchMarks(['SOL-USD:PERP']);
    const [after] = await shadow.fetchBalances();
    // short 4: receives 4 × mark × rate × 2 h when the rate is positive
    const expected = 4 * (mark?.markPriceUsd ?? Number.NaN) * ratePerHour * 2;
    expect(ratePerHour).not.toBe(0);
    expect((after?.amount ?? 0) - (before?.amount ?? 0)).toBeCloseTo(expected, 8);
    expect(d.sent).toEqual([]);
  });

  it('a limit the quote does not meet fills nothing; reduce-only may not grow; health says dry run', async () => {
    const d = dryRunOf('paper-drift');
    const q = await d.shadow.quoteHedge({ instrument: 'SOL-USD:PERP', side: 'buy', sizeBase: '3' });
    const o = await d.shadow.placeOrder({
      clientOrderId: 'dry-lim',
      instrument: 'SOL-USD:PERP',
      side: 'buy',
      orderType: 'ioc',
      sizeBase: '3',
      limitPriceUsd: new Dec(q.expectedPriceUsd).mul(0.99).toFixed(4),
    });
    expect(o).toMatchObject({ status: 'cancelled', filledSizeBase: '0' });
    expect(o.error).toMatch(/beyond the limit/);
    expect(await d.shadow.fetchPositions()).toEqual([]);
    await expect(
      d.shadow.placeOrder({
        clientOrderId: 'dry-ro',
        instrument: 'SOL-USD:PERP',
        side: 'buy',
        orderType: 'market',
        sizeBase: '3',
        reduceOnly: true,
      }),
    ).rejects.toMatchObject({ code: 'VENUE_INVALID_ORDER' });
    expect((await d.shadow.health()).details).toMatchObject({ dryRun: true });
    expect(d.shadow.capabilities.cancel).toBe(false);
    expect(d.sent).toEqual([]);
  });

  it('an option bought in a dry run pays its premium from the collateral and adds to the position', async () => {
    const d = dryRunOf('paper-lyra');
    const markets = await d.shadow.loadMarkets();
    const call = markets.find((m) => m.instrument.optionType === 'call');
    if (!call) throw new Error('no call listed');
    const [before] = (await d.shadow.fetchBalances()).filter(
      (b) => b.asset === d.shadow.capabilities.collateral[0],
    );
    const q = await d.shadow.quoteHedge({ instrument: call.instrument.id, side: 'buy', sizeBase: '1' });
    await d.shadow.placeOrder({
      clientOrderId: 'dry-opt',
      instrument: call.instrument.id,
      side: 'buy',
      orderType: 'market',
      sizeBase: '1',
    });
    const [after] = (await d.shadow.fetchBalances()).filter(
      (b) => b.asset === d.shadow.capabilities.collateral[0],
    );
    expect((before?.amount ?? 0) - (after?.amount ?? 0)).toBeCloseTo(
      q.expectedPriceUsd + q.feeUsd + q.gasUsd,
      9,
    );
    expect((await d.shadow.fetchPositions()).find((p) => p.instrument === call.instrument.id)?.sizeBase).toBe(
      1,
    );
    expect(d.sent).toEqual([]);
  });
});

/**
 * Paper Lyra (BTC and ETH boards) on a market that steps every minute at hh:mm:30, so a board's
 * settlement price is fixed at 08:00:30, the first step after its 08:00 expiry: between the two the
 * board has expired and the venue reports no price yet. Two dry-run wrappers share one store (`open`
 * makes more), as two processes share the run's Redis.
 */
function lyraExpiry(params: Record<string, unknown> = {}, wrap = (v: VenueAdapter) => v) {
  const clock = new ManualClock(TEST_START_MS + 30_000);
  const market = createMarketSimulator({
    underlyings: { BTC: { spot: 95_000, vol: 0.55 }, ETH: { spot: 3_500, vol: 0.7 } },
    correlations: { 'BTC/ETH': 0.8 },
    seed: 7,
    clock,
    stepMs: 60_000,
  });
  const real = createPaperVenue({ id: 'p-lyra', kind: 'paper-lyra', chain: 'evm:42161', market, params });
  real.seedBalance('USDC', 10_000_000);
  const store = new MemoryShadowStore();
  const inner = wrap(real);
  const open = () => new ShadowVenue(inner, { clock, store });
  return { clock, real, store, open, shadows: [open(), open()] as const };
}

/** The nearest BTC board and its options by type, lowest strike first. */
async function nearestBoard(v: VenueAdapter) {
  const opts = (await v.loadMarkets()).map((m) => m.instrument).filter((m) => m.underlying === 'BTC');
  const expiryMs = Math.min(...opts.map((m) => m.expiryMs ?? Number.POSITIVE_INFINITY));
  const board = opts.filter((m) => m.expiryMs === expiryMs).sort((a, b) => (a.strike ?? 0) - (b.strike ?? 0));
  const calls = board.filter((m) => m.optionType === 'call').map((m) => m.id);
  const puts = board.filter((m) => m.optionType === 'put').map((m) => m.id);
  return { expiryMs, calls, puts };
}

const trade = (clientOrderId: string, instrument: string, side: 'buy' | 'sell', sizeBase: string) => ({
  clientOrderId,
  instrument,
  side,
  orderType: 'market' as const,
  sizeBase,
});

/** What the venue's settlement price pays per unit of a (linear) option, exact. */
function payoffPerUnit(instrument: string, priceUsd: string): Dec {
  const p = parseInstrumentId(instrument);
  if (p.kind !== 'option') throw new Error(`${instrument} is no option`);
  const s = new Dec(priceUsd);
  return Dec.max(p.optionType === 'call' ? s.sub(p.strike) : new Dec(p.strike).sub(s), 0);
}

const usdc = async (v: VenueAdapter) => (await v.fetchBalances()).find((b) => b.asset === 'USDC');

describe('dry run: expired options and futures settle', () => {
  it('calls and puts bought and sold pay their payoff once at the settlement price, then leave the positions', async () => {
    const r = lyraExpiry();
    const [a, b] = r.shadows;
    const { expiryMs, calls, puts } = await nearestBoard(a);
    const [deepCall, call] = calls as [string, string];
    const deepPut = puts.at(-1) as string;
    const otmPut = puts[0] as string;
    // sizes: +2 ITM call, +1.5 ITM put, −0.5 ITM call (a shadow short), +1 far-OTM put
    const held: [string, string][] = [
      [deepCall, '2'],
      [deepPut, '1.5'],
      [call, '-0.5'],
      [otmPut, '1'],
    ];
    for (const [i, [id, size]] of held.entries())
      await a.placeOrder(trade(`exp-${i}`, id, size.startsWith('-') ? 'sell' : 'buy', size.replace('-', '')));
    const cashBefore = (await r.store.load()).cashUsd;
    const balanceBefore = await usdc(b);
    const listed = async (v: ShadowVenue) =>
      Object.fromEntries((await v.fetchPositions()).map((p) => [p.instrument, p.sizeBase]));
    const all = Object.fromEntries(held.map(([id, size]) => [id, Number(size)]));
    expect(await listed(b)).toEqual(all);

    // expired, but the board's price is not fixed yet: nothing changes, the positions stay listed
    r.clock.set(expiryMs + 10_000);
    expect(await a.fetchSettlementPrices?.(calls)).toEqual([]);
    expect(await listed(a)).toEqual(all);
    expect(await usdc(b)).toEqual({ ...balanceBefore, asOfMs: expect.any(Number) });
    expect((await r.store.load()).cashUsd.eq(cashBefore)).toBe(true);

    // fixed at 08:00:30: each pays max(±(S − K), 0) × signed size, once, however often it is read
    r.clock.set(expiryMs + 120_000);
    const prices = (await a.fetchSettlementPrices?.(held.map(([id]) => id))) ?? [];
    expect(prices.map((p) => p.instrument).sort()).toEqual(held.map(([id]) => id).sort());
    const due = held.reduce((sum, [id, size]) => {
      const priceUsd = prices.find((p) => p.instrument === id)?.priceUsd ?? 'NaN';
      return sum.add(payoffPerUnit(id, priceUsd).mul(size));
    }, new Dec(0));
    // both ITM calls, the ITM put and the short pay; the far-OTM put pays nothing
    expect(payoffPerUnit(deepCall, prices[0]?.priceUsd ?? 'NaN').gt(0)).toBe(true);
    expect(payoffPerUnit(deepPut, prices[0]?.priceUsd ?? 'NaN').gt(0)).toBe(true);
    expect(payoffPerUnit(otmPut, prices[0]?.priceUsd ?? 'NaN').isZero()).toBe(true);
    const [first, second, third] = [await usdc(a), await usdc(b), await usdc(a)];
    expect((await r.store.load()).cashUsd.sub(cashBefore).eq(due)).toBe(true);
    expect(first?.amount).toBeCloseTo((balanceBefore?.amount ?? Number.NaN) + due.toNumber(), 6);
    expect(second?.amount).toBe(first?.amount);
    expect(third?.amount).toBe(first?.amount);
    expect(await listed(a)).toEqual({});
    expect(await listed(r.open())).toEqual({});
    expect((await r.store.load()).cashUsd.sub(cashBefore).eq(due)).toBe(true);
    // the venue itself holds nothing and paid nothing: the payoffs are the dry run's own
    expect(await r.real.fetchPositions()).toEqual([]);
    expect((await usdc(r.real))?.amount).toBe(10_000_000);
  });

  it('the real part of a position is left to the venue, which pays it itself', async () => {
    const r = lyraExpiry({ settlementDelayMs: 3_600_000 });
    const [a] = r.shadows;
    const { expiryMs, calls } = await nearestBoard(a);
    const call = calls[0] as string;
    r.real.seedPosition(call, 1);
    await a.placeOrder(trade('exp-real', call, 'buy', '2'));
    const cashBefore = (await r.store.load()).cashUsd;
    expect((await a.fetchPositions()).find((p) => p.instrument === call)?.sizeBase).toBe(3);
    r.clock.set(expiryMs + 120_000);
    const [price] = (await a.fetchSettlementPrices?.([call])) ?? [];
    const perUnit = payoffPerUnit(call, price?.priceUsd ?? 'NaN');
    // the venue keeps listing its own unit until it pays it out; the simulated two are paid now
    expect((await a.fetchPositions()).find((p) => p.instrument === call)?.sizeBase).toBe(1);
    expect((await r.store.load()).cashUsd.sub(cashBefore).eq(perUnit.mul(2))).toBe(true);
    r.clock.set(expiryMs + 3_600_000 + 60_000);
    expect(await a.fetchPositions()).toEqual([]);
    const real = await usdc(r.real);
    expect(real?.amount).toBeCloseTo(10_000_000 + perUnit.toNumber(), 6);
    // not paid a second time now that the venue has paid its own
    expect((await r.store.load()).cashUsd.sub(cashBefore).eq(perUnit.mul(2))).toBe(true);
    expect((await usdc(a))?.amount).toBeCloseTo(
      (real?.amount ?? Number.NaN) + cashBefore.add(perUnit.mul(2)).toNumber(),
      6,
    );
  });

  it('a coin-settled option pays its payoff in the coin (USD payoff ÷ settlement price)', async () => {
    // the same AMM, stating its options settle in the underlying coin
    const r = lyraExpiry({}, (v) => coinSettled(v));
    const [a] = r.shadows;
    const { expiryMs, puts } = await nearestBoard(a);
    const put = puts.at(-1) as string;
    await a.placeOrder(trade('exp-coin', put, 'buy', '0.5'));
    const cashBefore = (await r.store.load()).cashUsd;
    r.clock.set(expiryMs + 120_000);
    const [price] = (await a.fetchSettlementPrices?.([put])) ?? [];
    const coin = payoffPerUnit(put, price?.priceUsd ?? 'NaN')
      .mul('0.5')
      .div(price?.priceUsd ?? 'NaN');
    const btc = (await a.fetchBalances()).find((x) => x.asset === 'BTC');
    expect(coin.gt(0)).toBe(true);
    expect(btc?.amount).toBe(coin.toNumber());
    const s = await r.store.load();
    expect(s.coins.get('BTC')?.eq(coin)).toBe(true);
    expect(s.cashUsd.eq(cashBefore)).toBe(true);
    expect((await a.fetchPositions()).find((p) => p.instrument === put)).toBeUndefined();
  });

  it('a coin-settled option the venue stops listing once expired is still paid in the coin after the markets are read again', async () => {
    // coin-settled options, and a venue that drops a board from its markets once it has expired
    let hiddenUpToMs = 0;
    const r = lyraExpiry({}, (v) =>
      coinSettled(v, (m) => (m.instrument.expiryMs ?? Number.POSITIVE_INFINITY) > hiddenUpToMs),
    );
    const [a] = r.shadows;
    const { expiryMs, puts } = await nearestBoard(a);
    const put = puts.at(-1) as string;
    const later = (await a.loadMarkets()).find(
      (m) => m.instrument.underlying === 'BTC' && (m.instrument.expiryMs ?? 0) > expiryMs,
    )?.instrument.id;
    if (!later) throw new Error('no later BTC board listed');
    await a.placeOrder(trade('drop-1', put, 'buy', '0.5'));
    // expired and dropped; an order a minute later reads the markets again, without it
    r.clock.set(expiryMs + 60_000);
    hiddenUpToMs = expiryMs;
    await a.placeOrder(trade('drop-2', later, 'buy', '0.1'));
    expect((await a.loadMarkets()).some((m) => m.instrument.id === put)).toBe(false);
    const cashBefore = (await r.store.load()).cashUsd;
    r.clock.set(expiryMs + 120_000);
    const [price] = (await a.fetchSettlementPrices?.([put])) ?? [];
    const coin = payoffPerUnit(put, price?.priceUsd ?? 'NaN')
      .mul('0.5')
      .div(price?.priceUsd ?? 'NaN');
    expect(coin.gt(0)).toBe(true);
    expect((await a.fetchBalances()).find((x) => x.asset === 'BTC')?.amount).toBe(coin.toNumber());
    const s = await r.store.load();
    expect(s.coins.get('BTC')?.eq(coin)).toBe(true);
    expect(s.cashUsd.eq(cashBefore)).toBe(true);
    expect(s.books.get(put)?.size.isZero()).toBe(true);
  });

  it("a dated future's simulated part settles its P&L against its entry at the settlement price", async () => {
    // no paper venue lists dated futures: a minimal one that quotes at a set price, fee- and gas-free
    const clock = new ManualClock(TEST_START_MS);
    const fut = 'BTC-USD:FUT:20260109';
    const expiryMs = Date.UTC(2026, 0, 9, 8);
    let priceUsd = 95_000;
    let settlement: SettlementPrice | undefined;
    const venue = 'stub-fut';
    const never = async (): Promise<never> => {
      throw new Error('a dry run reached the venue');
    };
    const inner: VenueAdapter = {
      id: venue,
      kind: 'stub',
      chain: 'evm:1',
      capabilities: stubCapabilities('future', 'orderbook'),
      loadMarkets: async () => [
        {
          instrument: instrumentMeta(fut),
          venueSymbol: 'BTC-9JAN26',
          minSizeBase: '0.1',
          sizeStepBase: '0.1',
          priceTickUsd: '0.5',
          active: clock.nowMs() < expiryMs,
        },
      ],
      fetchPositions: async () => [],
      fetchBalances: async () => [
        { venue, chain: 'evm:1', asset: 'USDC', amount: 100_000, asOfMs: clock.nowMs() },
      ],
      fetchMarks: async () => [{ venue, instrument: fut, markPriceUsd: priceUsd, asOfMs: clock.nowMs() }],
      fetchFills: async () => [],
      fetchSettlementPrices: async (ids) => (settlement && ids.includes(fut) ? [settlement] : []),
      quoteHedge: async (q) => ({
        venue,
        instrument: fut,
        side: q.side,
        requestedSizeBase: q.sizeBase,
        executableSizeBase: q.sizeBase,
        referencePriceUsd: priceUsd,
        expectedPriceUsd: priceUsd,
        feeUsd: 0,
        impactUsd: 0,
        gasUsd: 0,
        fundingCarryUsd: 0,
        totalCostUsd: 0,
        expectedLatencyMs: 0,
        asOfMs: clock.nowMs(),
      }),
      placeOrder: never,
      getOrderByClientId: async () => null,
      cancelOrder: never,
      health: async () => ({ ok: true, latencyMs: 0, halted: false, dataAgeMs: 0 }),
    };
    const store = new MemoryShadowStore();
    const shadow = new ShadowVenue(inner, { clock, store });
    await shadow.placeOrder(trade('fut-1', fut, 'buy', '2'));
    priceUsd = 96_000;
    await shadow.placeOrder({ ...trade('fut-2', fut, 'sell', '0.5'), reduceOnly: true }); // realizes 0.5 × 1,000
    expect((await store.load()).cashUsd.eq(500)).toBe(true);
    clock.set(expiryMs + 60_000);
    expect((await shadow.fetchPositions()).map((p) => p.sizeBase)).toEqual([1.5]);
    settlement = { instrument: fut, priceUsd: '97250.5', fixedAtMs: expiryMs };
    clock.set(expiryMs + 180_000);
    // the 1.5 left at 95,000 settle at 97,250.5: 1.5 × 2,250.5 = 3,375.75
    expect((await shadow.fetchBalances())[0]?.amount).toBe(100_000 + 500 + 3_375.75);
    expect((await store.load()).cashUsd.eq('3875.75')).toBe(true);
    expect(await shadow.fetchPositions()).toEqual([]);
    expect((await shadow.fetchBalances())[0]?.amount).toBe(103_875.75);
  });

  it('a failed settlement-price read leaves the position listed, shows in health, and is asked again after a wait', async () => {
    let asked = 0;
    let failing = true;
    const flaky = (v: VenueAdapter): VenueAdapter =>
      new Proxy(v, {
        get(target, prop, recv) {
          if (prop === 'fetchSettlementPrices')
            return async (ids: readonly string[]) => {
              asked++;
              if (failing) throw new Error('rpc down');
              return target.fetchSettlementPrices?.(ids);
            };
          const x = Reflect.get(target, prop, recv);
          return typeof x === 'function' ? x.bind(target) : x;
        },
      });
    const r = lyraExpiry({}, flaky);
    const [a] = r.shadows;
    const { expiryMs, calls } = await nearestBoard(a);
    await a.placeOrder(trade('exp-flaky', calls[0] as string, 'buy', '1'));
    r.clock.set(expiryMs + 120_000);
    expect((await a.fetchPositions()).map((p) => p.sizeBase)).toEqual([1]);
    expect((await a.health()).details).toMatchObject({ settlementTrouble: 'rpc down' });
    failing = false;
    await a.fetchPositions();
    expect(asked).toBe(1); // not every read: after 10 s
    r.clock.advance(10_000);
    expect(await a.fetchPositions()).toEqual([]);
    expect(asked).toBe(2);
    expect((await a.health()).details).not.toHaveProperty('settlementTrouble');
  });

  it('a settlement that cannot be made (the markets cannot be read) fails no read: the position stays listed and is settled after a wait (review finding)', async () => {
    let marketsDown = false;
    const flaky = (v: VenueAdapter): VenueAdapter =>
      new Proxy(v, {
        get(target, prop, recv) {
          if (prop === 'loadMarkets')
            return async () => {
              if (marketsDown) throw new Error('markets down');
              return target.loadMarkets();
            };
          const x = Reflect.get(target, prop, recv);
          return typeof x === 'function' ? x.bind(target) : x;
        },
      });
    const r = lyraExpiry({}, flaky);
    const [a, b] = r.shadows;
    const { expiryMs, calls } = await nearestBoard(a);
    await a.placeOrder(trade('exp-markets', calls[0] as string, 'buy', '1'));
    r.clock.set(expiryMs + 120_000);
    marketsDown = true; // b has not read the markets yet
    expect((await b.fetchPositions()).map((p) => p.sizeBase)).toEqual([1]);
    expect((await b.health()).details).toMatchObject({
      settlementTrouble: expect.stringContaining('markets down'),
    });
    marketsDown = false;
    expect((await b.fetchPositions()).map((p) => p.sizeBase)).toEqual([1]); // waits 10 s first
    r.clock.advance(10_000);
    expect(await b.fetchPositions()).toEqual([]);
    expect((await b.health()).details).not.toHaveProperty('settlementTrouble');
  });

  it('over a venue without settlement prices an expired position stays listed, nothing paid', async () => {
    const hide = (v: VenueAdapter): VenueAdapter =>
      new Proxy(v, {
        get(target, prop, recv) {
          if (prop === 'fetchSettlementPrices') return undefined;
          const x = Reflect.get(target, prop, recv);
          return typeof x === 'function' ? x.bind(target) : x;
        },
      });
    const r = lyraExpiry({}, hide);
    const [a] = r.shadows;
    const { expiryMs, calls } = await nearestBoard(a);
    await a.placeOrder(trade('exp-none', calls[0] as string, 'buy', '1'));
    const cashBefore = (await r.store.load()).cashUsd;
    r.clock.set(expiryMs + 3_600_000);
    expect((await a.fetchPositions()).map((p) => p.sizeBase)).toEqual([1]);
    expect((await r.store.load()).cashUsd.eq(cashBefore)).toBe(true);
  });
});

/**
 * A venue that lists `markets()` as they stand now and quotes every listed instrument at `priceUsd`,
 * fee- and gas-free, whether or not it still trades (the contract does not make a quote refuse it),
 * up to `maxSizeBase` when given (the executable size); a sell's quote states `lockPerUnitUsd` × the
 * executable size as `lockedCollateralUsd` when given, else no lock. Its USDC balance states no
 * `available` (all of it free). It must never receive an order.
 */
function stubOptionVenue(o: {
  clock: ManualClock;
  markets: () => MarketInfo[];
  priceUsd: number;
  lockPerUnitUsd?: number;
  maxSizeBase?: string;
}): VenueAdapter {
  const venue = 'stub-opt';
  const never = async (): Promise<never> => {
    throw new Error('a dry run reached the venue');
  };
  return {
    id: venue,
    kind: 'stub',
    chain: 'evm:1',
    capabilities: stubCapabilities('option', 'amm'),
    loadMarkets: async () => o.markets(),
    fetchPositions: async () => [],
    fetchBalances: async () => [
      { venue, chain: 'evm:1', asset: 'USDC', amount: 50_000, asOfMs: o.clock.nowMs() },
    ],
    fetchMarks: async (ids) =>
      (ids ?? []).map((instrument) => ({
        venue,
        instrument,
        markPriceUsd: o.priceUsd,
        asOfMs: o.clock.nowMs(),
      })),
    fetchFills: async () => [],
    quoteHedge: async (q) => {
      const executable =
        o.maxSizeBase === undefined ? new Dec(q.sizeBase) : Dec.min(q.sizeBase, o.maxSizeBase);
      return {
        venue,
        instrument: q.instrument,
        side: q.side,
        requestedSizeBase: q.sizeBase,
        executableSizeBase: executable.toFixed(),
        referencePriceUsd: o.priceUsd,
        expectedPriceUsd: o.priceUsd,
        feeUsd: 0,
        impactUsd: 0,
        gasUsd: 0,
        fundingCarryUsd: 0,
        totalCostUsd: 0,
        expectedLatencyMs: 0,
        asOfMs: o.clock.nowMs(),
        ...(executable.lt(q.sizeBase) ? { capReason: 'stub cap' } : {}),
        ...(q.side === 'sell' && o.lockPerUnitUsd !== undefined
          ? { lockedCollateralUsd: new Dec(o.lockPerUnitUsd).mul(executable).toNumber() }
          : {}),
      };
    },
    placeOrder: never,
    getOrderByClientId: async () => null,
    cancelOrder: never,
    health: async () => ({ ok: true, latencyMs: 0, halted: false, dataAgeMs: 0 }),
  };
}

/**
 * A dry run over a stand-in venue listing one BTC call, quoting it at 1,000 and stating that a sell locks
 * 4,000.5 USD a unit (at most `maxSizeBase` of an order fills), on a manual clock and a memory store.
 */
function lockingCall(o: { maxSizeBase?: string } = {}) {
  const clock = new ManualClock(TEST_START_MS);
  const call = 'BTC-USD:OPT:20260130:100000:C';
  const store = new MemoryShadowStore();
  const shadow = new ShadowVenue(
    stubOptionVenue({
      clock,
      priceUsd: 1_000,
      lockPerUnitUsd: 4_000.5,
      ...(o.maxSizeBase === undefined ? {} : { maxSizeBase: o.maxSizeBase }),
      markets: () => [listed(call, true)],
    }),
    { clock, store },
  );
  return { clock, call, store, shadow };
}

const listed = (id: string, active: boolean): MarketInfo => ({
  instrument: instrumentMeta(id),
  venueSymbol: id,
  minSizeBase: '0.1',
  sizeStepBase: '0.1',
  priceTickUsd: '0.01',
  active,
});

describe('dry run: what the venue would refuse or lock', () => {
  it('an order on an instrument past its expiry, or listed inactive now, is refused as the venues refuse it; nothing is recorded', async () => {
    const clock = new ManualClock(TEST_START_MS);
    const call = 'BTC-USD:OPT:20260109:100000:C'; // expires 2026-01-09T08:00Z
    const put = 'BTC-USD:OPT:20260130:90000:P';
    let putActive = true;
    // the call stays listed, and active, after its expiry (a board awaiting its settlement)
    const inner = stubOptionVenue({
      clock,
      priceUsd: 1_000,
      markets: () => [listed(call, true), listed(put, putActive)],
    });
    const store = new MemoryShadowStore();
    const shadow = new ShadowVenue(inner, { clock, store });
    expect((await shadow.placeOrder(trade('live-call', call, 'sell', '1'))).status).toBe('filled');
    expect((await shadow.placeOrder(trade('live-put', put, 'buy', '1'))).status).toBe('filled');

    clock.set(Date.UTC(2026, 0, 9, 8)); // the expiry itself: no longer trades
    const late = await shadow
      .placeOrder({ ...trade('late-call', call, 'buy', '1'), reduceOnly: true })
      .catch((e: unknown) => e);
    expect(late).toBeInstanceOf(InvalidOrderError);
    expect(late).toMatchObject({
      code: 'VENUE_INVALID_ORDER',
      outcome: 'rejected',
      retryable: false,
      clientOrderId: 'late-call',
    });
    expect((late as Error).message).toContain(
      `dry run: ${call} expired at 2026-01-09T08:00:00.000Z and takes no order`,
    );

    // the put's board is frozen after the dry run read it active: seen once the markets are read again
    putActive = false;
    clock.advance(10_000);
    const frozen = await shadow.placeOrder(trade('frozen-put', put, 'sell', '1')).catch((e: unknown) => e);
    expect(frozen).toBeInstanceOf(InvalidOrderError);
    expect(frozen).toMatchObject({ outcome: 'rejected', retryable: false, clientOrderId: 'frozen-put' });
    expect((frozen as Error).message).toContain(
      `dry run: ${put} is inactive on the venue and takes no order`,
    );

    // nothing of the refused orders is stored
    expect(await shadow.getOrderByClientId('late-call')).toBeNull();
    expect(await shadow.getOrderByClientId('frozen-put')).toBeNull();
    expect((await shadow.fetchFills()).map((f) => f.clientOrderId)).toEqual(['live-call', 'live-put']);
    const s = await store.load();
    expect(s.orderSeq).toBe(2);
    expect(s.books.get(call)?.size.eq(-1)).toBe(true);
    expect(s.books.get(put)?.size.eq(1)).toBe(true);
  });

  it('reads the markets once per marketsMaxAgeMs (10 s), not per order; an instrument frozen meanwhile is refused once they are read again', async () => {
    const clock = new ManualClock(TEST_START_MS);
    const put = 'BTC-USD:OPT:20260130:90000:P';
    let active = true;
    let reads = 0;
    let failing = false;
    const inner = stubOptionVenue({
      clock,
      priceUsd: 1_000,
      markets: () => {
        reads++;
        if (failing) throw new Error('markets down');
        return [listed(put, active)];
      },
    });
    const shadow = new ShadowVenue(inner, { clock });
    for (let i = 0; i < 5; i++) {
      expect((await shadow.placeOrder(trade(`ttl-${i}`, put, 'buy', '1'))).status).toBe('filled');
      clock.advance(1_000);
    }
    // orders at once share the read too
    const both = await Promise.all([
      shadow.placeOrder(trade('ttl-a', put, 'buy', '1')),
      shadow.placeOrder(trade('ttl-b', put, 'buy', '1')),
    ]);
    expect(both.map((o) => o.status)).toEqual(['filled', 'filled']);
    expect(reads).toBe(1);

    // frozen on the venue 9.999 s after the read: the read is still used
    active = false;
    clock.advance(4_999);
    expect((await shadow.placeOrder(trade('ttl-cached', put, 'buy', '1'))).status).toBe('filled');
    expect(reads).toBe(1);
    // 10 s after the read: read again, and refused
    clock.advance(1);
    const frozen = await shadow.placeOrder(trade('ttl-frozen', put, 'buy', '1')).catch((e: unknown) => e);
    expect(frozen).toBeInstanceOf(InvalidOrderError);
    expect((frozen as Error).message).toContain(
      `dry run: ${put} is inactive on the venue and takes no order`,
    );
    expect(reads).toBe(2);
    expect(await shadow.getOrderByClientId('ttl-frozen')).toBeNull();

    // a failed read is not kept: the next order reads again
    clock.advance(10_000);
    failing = true;
    await expect(shadow.placeOrder(trade('ttl-down', put, 'buy', '1'))).rejects.toThrow('markets down');
    failing = false;
    active = true;
    expect((await shadow.placeOrder(trade('ttl-up', put, 'buy', '1'))).status).toBe('filled');
    expect(reads).toBe(4);

    // the age is the constructor's: 0 reads for every order; a bad one is refused, naming it
    const every = new ShadowVenue(inner, { clock, marketsMaxAgeMs: 0 });
    await every.placeOrder(trade('every-1', put, 'buy', '1'));
    await every.placeOrder(trade('every-2', put, 'buy', '1'));
    expect(reads).toBe(6);
    expect(() => new ShadowVenue(inner, { clock, marketsMaxAgeMs: Number.NaN })).toThrow(
      /marketsMaxAgeMs must be a finite number of ms >= 0, got NaN/,
    );
  });

  it('an order whose quote carries it past the expiry is refused, as one sent after it; nothing is recorded', async () => {
    const clock = new ManualClock(TEST_START_MS);
    const call = 'BTC-USD:OPT:20260109:100000:C'; // expires 2026-01-09T08:00Z
    const expiryMs = Date.UTC(2026, 0, 9, 8);
    const stub = stubOptionVenue({ clock, priceUsd: 1_000, markets: () => [listed(call, true)] });
    // a quote that takes 2 s (as a slow RPC would)
    const slow: VenueAdapter = {
      ...stub,
      quoteHedge: async (q) => {
        clock.advance(2_000);
        return stub.quoteHedge(q);
      },
    };
    const store = new MemoryShadowStore();
    const shadow = new ShadowVenue(slow, { clock, store });
    clock.set(expiryMs - 1_000); // sent 1 s before the expiry, quoted 1 s after it
    const late = await shadow.placeOrder(trade('slow-quote', call, 'buy', '1')).catch((e: unknown) => e);
    expect(clock.nowMs()).toBe(expiryMs + 1_000);
    expect(late).toBeInstanceOf(InvalidOrderError);
    expect(late).toMatchObject({ outcome: 'rejected', retryable: false, clientOrderId: 'slow-quote' });
    expect((late as Error).message).toContain(
      `dry run: ${call} expired at 2026-01-09T08:00:00.000Z and takes no order`,
    );
    expect(await shadow.getOrderByClientId('slow-quote')).toBeNull();
    expect(await shadow.fetchFills()).toEqual([]);
    expect((await store.load()).orderSeq).toBe(0);
  });

  it('over paper Lyra an expired option is refused with the class, outcome and retry of the venue’s own refusal, naming the expiry', async () => {
    const r = lyraExpiry();
    const [a] = r.shadows;
    const { expiryMs, calls } = await nearestBoard(a);
    const call = calls[0] as string;
    await a.placeOrder(trade('before', call, 'buy', '1')); // the dry run has read it listed and live
    r.clock.set(expiryMs + 60_000); // the market has stepped past the expiry (at 08:00:30)
    const byDryRun = await a.placeOrder(trade('dry-late', call, 'buy', '1')).catch((e: unknown) => e);
    // (the paper venue checks an order against its market as of its last read, which the dry run's was)
    const byVenue = await r.real.placeOrder(trade('venue-late', call, 'buy', '1')).catch((e: unknown) => e);
    expect(byVenue).toBeInstanceOf(InvalidOrderError);
    expect(byDryRun).toBeInstanceOf(InvalidOrderError);
    const { outcome, retryable } = byVenue as InvalidOrderError;
    expect(byDryRun).toMatchObject({ outcome, retryable, clientOrderId: 'dry-late' });
    expect((byDryRun as Error).message).toContain(
      `dry run: ${call} expired at ${new Date(expiryMs).toISOString()} and takes no order`,
    );
    expect(await a.getOrderByClientId('dry-late')).toBeNull();
  });

  it('a simulated short option locks the collateral the venue states, off available and not equity; bought back it releases pro rata, settled it releases the rest once', async () => {
    const r = lyraExpiry();
    const [a, b] = r.shadows;
    const { expiryMs, calls, puts } = await nearestBoard(a);
    const call = calls.at(-1) as string;
    const put = puts.at(-1) as string;
    const real = await usdc(r.real);
    const realAmount = new Dec(real?.amount ?? Number.NaN);
    const realFree = new Dec(real?.available ?? Number.NaN);
    /** The merged USDC balance `v` reports, against the store: equity moves by the cash, free also by the lock. */
    const expectBalance = async (v: VenueAdapter, lockedUsd: Dec) => {
      const s = await r.store.load();
      expect(await usdc(v)).toMatchObject({
        amount: realAmount.add(s.cashUsd).toNumber(),
        available: realFree.add(s.cashUsd).sub(lockedUsd).toNumber(),
      });
    };
    const lockOf = async (id: string) => (await r.store.load()).books.get(id)?.lockedUsd;

    const q = await a.quoteHedge({ instrument: call, side: 'sell', sizeBase: '0.5' });
    expect(q.lockedCollateralUsd).toBeGreaterThan(0);
    const stated = new Dec(q.lockedCollateralUsd ?? Number.NaN);
    await a.placeOrder(trade('short-1', call, 'sell', '0.5'));
    expect((await lockOf(call))?.eq(stated)).toBe(true);
    await expectBalance(b, stated);

    // 0.2 of the 0.5 bought back: 0.2 / 0.5 of the lock is released
    await b.placeOrder(trade('short-2', call, 'buy', '0.2'));
    const left = stated.mul('0.3').div('0.5');
    expect((await lockOf(call))?.eq(left)).toBe(true);
    await expectBalance(a, left);

    // a simulated long sold back locks nothing, though the venue (which does not hold it) states a lock
    await a.placeOrder(trade('long-1', put, 'buy', '1'));
    const qs = await a.quoteHedge({ instrument: put, side: 'sell', sizeBase: '1' });
    expect(qs.lockedCollateralUsd).toBeGreaterThan(0);
    await a.placeOrder(trade('long-2', put, 'sell', '1'));
    expect((await lockOf(put))?.isZero()).toBe(true);
    await expectBalance(a, left);

    // expired, the price not fixed yet: the short still locks
    r.clock.set(expiryMs + 10_000);
    expect((await a.fetchPositions()).find((p) => p.instrument === call)?.sizeBase).toBe(-0.3);
    await expectBalance(b, left);

    // settled: paid and released in one write, once however many read
    r.clock.set(expiryMs + 120_000);
    const reads = [await usdc(a), await usdc(b), await usdc(r.open()), await usdc(a)];
    const s = await r.store.load();
    expect(s.books.get(call)?.size.isZero()).toBe(true);
    expect(s.books.get(call)?.lockedUsd.isZero()).toBe(true);
    for (const x of reads)
      expect(x).toMatchObject({
        amount: realAmount.add(s.cashUsd).toNumber(),
        available: realFree.add(s.cashUsd).toNumber(),
      });
    expect(await r.real.fetchPositions()).toEqual([]);
  });

  it('the simulated book nets, as paper Lyra does: a sell bigger than a long locks only the share that opens the short', async () => {
    const { call, store, shadow } = lockingCall();
    const book = async () => (await store.load()).books.get(call);
    await shadow.placeOrder(trade('net-1', call, 'buy', '1'));
    expect((await book())?.lockedUsd.isZero()).toBe(true);
    // long 1, sell 3: the venue's quote states L = 3 × 4,000.5 = 12,001.5 for the 3; 2 of them open
    // the short, which locks L × 2/3 = 8,001 (a venue that keeps the long apart would lock all of L)
    const q = await shadow.quoteHedge({ instrument: call, side: 'sell', sizeBase: '3' });
    expect(q.lockedCollateralUsd).toBe(12_001.5);
    await shadow.placeOrder(trade('net-2', call, 'sell', '3'));
    const short = new Dec('12001.5').mul(2).div(3);
    expect(short.eq(8_001)).toBe(true);
    expect((await book())?.size.eq(-2)).toBe(true);
    expect((await book())?.lockedUsd.eq(short)).toBe(true);
    // 0.7 of the short 2 bought back: the lock × (2 − 0.7) / 2 = 5,200.65 is left
    await shadow.placeOrder(trade('net-3', call, 'buy', '0.7'));
    const left = short.mul(new Dec(2).sub('0.7')).div(2);
    expect(left.eq('5200.65')).toBe(true);
    expect((await book())?.lockedUsd.eq(left)).toBe(true);
    // buying 3 flips the short 1.3 to a long 1.7: nothing locked
    await shadow.placeOrder(trade('net-4', call, 'buy', '3'));
    expect((await book())?.size.eq('1.7')).toBe(true);
    expect((await book())?.lockedUsd.isZero()).toBe(true);
  });

  it('a sell the venue can take only part of locks only the filled share', async () => {
    const { call, store, shadow } = lockingCall({ maxSizeBase: '0.5' });
    const o = await shadow.placeOrder(trade('part-1', call, 'sell', '2'));
    // final, as the paper venues end a partial fill (cancelled with its filled size): a
    // 'partially-filled' order would never be updated, so the worker would poll it and the controls
    // would count it in flight forever
    expect(o).toMatchObject({ status: 'cancelled', filledSizeBase: '0.5', avgFillPriceUsd: '1000' });
    expect(o.error).toMatch(/partially filled 0\.5 of 2; remainder cancelled/);
    expect(await shadow.getOrderByClientId('part-1')).toMatchObject({
      status: 'cancelled',
      filledSizeBase: '0.5',
    });
    const b = (await store.load()).books.get(call);
    expect(b?.size.eq('-0.5')).toBe(true);
    // 0.5 × 4,000.5, not the 2 × 4,000.5 the order asked for
    expect(b?.lockedUsd.eq('2000.25')).toBe(true);
    expect(await shadow.fetchBalances()).toMatchObject([
      { asset: 'USDC', amount: 50_500, available: 50_500 - 2_000.25 },
    ]);
  });

  it('a balance that states no available gets one, its amount less the lock; a quote that states no lock locks nothing', async () => {
    const { clock, call, shadow: locking } = lockingCall();
    await locking.placeOrder(trade('s-1', call, 'sell', '2'));
    // 2 sold at 1,000: +2,000 premium; 2 × 4,000.5 locked
    expect(await locking.fetchBalances()).toMatchObject([
      { asset: 'USDC', amount: 52_000, available: 43_999 },
    ]);
    await locking.placeOrder(trade('s-2', call, 'buy', '0.5'));
    // 0.5 of the 2 bought back: 1,500 of the 2,000 premium left, 1.5 × 4,000.5 locked
    expect(await locking.fetchBalances()).toMatchObject([
      { asset: 'USDC', amount: 51_500, available: 51_500 - 6_000.75 },
    ]);

    // the venue's quote states no lock: the simulated short locks nothing, as before locks were kept
    const silent = new ShadowVenue(
      stubOptionVenue({ clock, priceUsd: 1_000, markets: () => [listed(call, true)] }),
      { clock },
    );
    await silent.placeOrder(trade('s-3', call, 'sell', '2'));
    const [bal] = await silent.fetchBalances();
    expect(bal).toMatchObject({ asset: 'USDC', amount: 52_000 });
    expect(bal).not.toHaveProperty('available');
  });
});
