import { readFileSync } from 'node:fs';
import { parseConfig } from '@xhedge/config';
import { ManualClock, parseInstrumentId } from '@xhedge/core';
import { ANVIL_DEV_KEYS, type EvmContext, ensureAllowance, MemoryOrderStore, TxSender } from '@xhedge/evm';
import { type LocalTestChain, startLocalTestChain } from '@xhedge/evm/testing';
import { CollateralReservation, legMarginUsd } from '@xhedge/routing';
import { createMarketFromConfig } from '@xhedge/sim';
import type { HedgeDecision } from '@xhedge/strategy';
import { InsufficientFundsError } from '@xhedge/venue';
import {
  deployGmxFixture,
  type GmxFixture,
  GmxKeeper,
  type GmxOrderRecord,
  GmxVenue,
} from '@xhedge/venue-gmx';
import { createPaperVenues } from '@xhedge/venue-paper';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRouter } from './router.ts';

const PAPER = readFileSync(new URL('../../../configs/profiles/paper.yaml', import.meta.url), 'utf8');

/** The paper profile's lyra-arb (options), gmx-arb and drift-sol (perps) on the simulated market. */
async function paperVenues(lyraUsdc?: number) {
  const config = parseConfig(PAPER, 'paper.yaml');
  const keep = ['lyra-arb', 'gmx-arb', 'drift-sol'];
  config.venues = config.venues.filter((v) => keep.includes(v.id));
  config.book.positions = config.book.positions.filter((p) => keep.includes(p.venue));
  config.book.balances = config.book.balances.filter((b) => keep.includes(b.venue));
  if (lyraUsdc !== undefined) {
    // lyra-arb holds only `lyraUsdc`, none of it locked by short options.
    config.book.positions = config.book.positions.filter((p) => p.venue !== 'lyra-arb');
    config.book.balances = config.book.balances.map((b) =>
      b.venue === 'lyra-arb' ? { ...b, amount: lyraUsdc } : b,
    );
  }
  const clock = new ManualClock(Date.UTC(2026, 0, 5));
  const market = createMarketFromConfig({
    market: config.market,
    underlyings: config.underlyings.map((u) => u.symbol),
    clock,
  });
  const venues = createPaperVenues({ config, market, clock });
  const lyra = venues.find((v) => v.id === 'lyra-arb');
  const call = (await lyra?.loadMarkets())?.find(
    (m) => m.active && m.instrument.kind === 'option' && m.instrument.id.startsWith('BTC-USD:OPT:'),
  );
  if (!call) throw new Error('lyra-arb lists no BTC option');
  return { venues, clock, callId: call.instrument.id };
}

/**
 * A decision buying 10 BTC options at 0.5 delta each (+5 BTC of delta), with no delta trade: the policy
 * held the delta hedge back (interval not due) while the book drifts 0.9 BTC outside its 0.5 band.
 */
function vegaOnly(callId: string, asOfMs: number, over: Partial<HedgeDecision> = {}): HedgeDecision {
  return {
    id: 'dec_vegaonly1',
    underlying: 'BTC',
    snapshotSeq: 1,
    asOfMs,
    policy: 'interval',
    action: 'hedge',
    code: 'vega-only',
    urgency: 'normal',
    spotUsd: 95_000,
    bookDelta: -4.1,
    effectiveDelta: 0.9,
    targetDelta: 0,
    driftDelta: 0.9,
    bandHalfWidth: 0.5,
    tradeDeltaBase: 0,
    side: null,
    tradeNotionalUsd: 0,
    vegaTrades: [
      {
        venue: 'lyra-arb',
        chain: 'evm:42161',
        instrument: callId,
        side: 'buy',
        sizeBase: 10,
        priceUsd: 5000,
        vegaPerVolPoint: 2000,
        delta: 5,
        costUsd: 100,
      },
    ],
    reason: 'BTC: vega breach; interval not due.',
    ...over,
  };
}

const perpLegs = <L extends { instrument: string }>(legs: readonly L[]) =>
  legs.filter((l) => parseInstrumentId(l.instrument).kind !== 'option');

/**
 * Regression: a vega-only plan went out without its offsetting delta leg. The router quoted the perp
 * venues only for a delta trade (`side` not null), so planDecision, which adds a leg offsetting the option
 * legs' delta when the book is outside its band, found no venue for it.
 */
/** A router at 50 bps of slippage that keeps the notes its plans log. */
function notingRouter() {
  const notes: string[] = [];
  const route = createRouter({
    maxSlippageBps: 50,
    log: (_level, msg, data) => {
      if (msg === 'plan notes') notes.push(...((data?.notes as string[]) ?? []));
    },
  });
  return { route, notes };
}

describe('createRouter: vega-only decisions (regression: offsetting delta leg missing)', () => {
  const route = createRouter({ maxSlippageBps: 50, log: () => {} });

  it('routes a perp leg selling the 5 BTC of delta the option legs add, with them', async () => {
    const { venues, clock, callId } = await paperVenues();
    const plan = await route(vegaOnly(callId, clock.nowMs()), venues);
    if (!plan) throw new Error('expected a plan');
    expect(plan.legs.filter((l) => l.instrument === callId).map((l) => [l.side, l.sizeBase])).toEqual([
      ['buy', '10'],
    ]);
    const perps = perpLegs(plan.legs);
    expect(perps.length, 'the plan has no perp leg offsetting its option legs').toBeGreaterThan(0);
    for (const l of perps) {
      expect(l.side).toBe('sell');
      expect(parseInstrumentId(l.instrument).kind).toBe('perp');
    }
    // 5 BTC within the venues' size step (0.0001 on both perp venues).
    const soldBase = perps.reduce((s, l) => s + Number(l.sizeBase), 0);
    expect(Math.abs(soldBase - 5)).toBeLessThanOrEqual(0.0001 + 1e-12);
  });

  it('adds no delta leg when the book stays inside its band with the option legs (the policy holds)', async () => {
    const { venues, clock, callId } = await paperVenues();
    const inside = vegaOnly(callId, clock.nowMs(), { effectiveDelta: 0.3, driftDelta: 0.3 });
    const plan = await route(inside, venues);
    expect(plan?.legs.map((l) => l.instrument)).toEqual([callId]);
  });

  it('routes a delta trade as it is: the strategy already netted the option legs into it', async () => {
    const { venues, clock, callId } = await paperVenues();
    const withTrade = vegaOnly(callId, clock.nowMs(), {
      code: 'hedge',
      tradeDeltaBase: -0.9,
      side: 'sell',
      tradeNotionalUsd: 85_500,
    });
    const plan = await route(withTrade, venues);
    const perps = perpLegs(plan?.legs ?? []);
    expect(perps.map((l) => l.side)).toEqual(perps.map(() => 'sell'));
    expect(perps.reduce((s, l) => s + Number(l.sizeBase), 0)).toBeCloseTo(0.9, 9);
  });
});

/**
 * One paper perp venue of the paper profile (and nothing else), holding `usdc` and no position, with
 * its `params` replaced.
 */
async function lonePerpVenue(
  id: 'gmx-arb' | 'drift-sol',
  params: Record<string, unknown>,
  usdc: number,
  more: Record<string, number> = {},
) {
  const config = parseConfig(PAPER, 'paper.yaml');
  config.venues = config.venues.filter((v) => v.id === id).map((v) => ({ ...v, params }));
  config.book.positions = [];
  config.book.balances = [
    { venue: id, asset: 'USDC', amount: usdc },
    ...Object.entries(more).map(([asset, amount]) => ({ venue: id, asset, amount })),
  ];
  const clock = new ManualClock(Date.UTC(2026, 0, 5));
  const market = createMarketFromConfig({
    market: config.market,
    underlyings: config.underlyings.map((u) => u.symbol),
    clock,
  });
  const venues = createPaperVenues({ config, market, clock });
  const [mark] = (await venues[0]?.fetchMarks(['BTC-USD:PERP'])) ?? [];
  if (!mark) throw new Error(`${id} has no BTC perp mark`);
  return { venues, clock, spotUsd: mark.markPriceUsd };
}

/** Selling 5 BTC of delta with no option legs, at `spotUsd`. */
function sellDelta(asOfMs: number, spotUsd: number): HedgeDecision {
  return {
    id: 'dec_margin01',
    underlying: 'BTC',
    snapshotSeq: 1,
    asOfMs,
    policy: 'band',
    action: 'hedge',
    code: 'hedge',
    urgency: 'normal',
    spotUsd,
    bookDelta: 5,
    effectiveDelta: 5,
    targetDelta: 0,
    driftDelta: 5,
    bandHalfWidth: 0.5,
    tradeDeltaBase: -5,
    side: 'sell',
    tradeNotionalUsd: 5 * spotUsd,
    vegaTrades: [],
    reason: 'BTC: delta outside its band.',
  };
}

/**
 * Regression: the router sized every perp leg at 10% initial margin, whatever the venue asked. On a
 * market asking more (a 4× market), a venue short of collateral got a leg 2.5× larger than its
 * collateral carries, which the venue rejects for margin.
 */
describe("createRouter: legs are sized by the venue's initial margin, never under the 10% floor", () => {
  const route = createRouter({ maxSlippageBps: 50, log: () => {} });
  const STEP_BASE = 0.0001; // the paper venues' BTC size step
  const FREE_USD = 40_000; // under what 5 BTC needs at either fraction: collateral binds

  it('sizes the leg on a venue requiring 25% to free collateral / (0.25 × price)', async () => {
    const { venues, clock, spotUsd } = await lonePerpVenue('drift-sol', { maxLeverage: 4 }, FREE_USD);
    const [market] = (await venues[0]?.loadMarkets()) ?? [];
    expect(market?.initialMarginFraction).toBe(0.25);
    const plan = await route(sellDelta(clock.nowMs(), spotUsd), venues);
    const legs = perpLegs(plan?.legs ?? []);
    expect(legs.map((l) => [l.venue, l.side])).toEqual([['drift-sol', 'sell']]);
    const expectedBase = Math.floor(FREE_USD / (0.25 * spotUsd) / STEP_BASE) * STEP_BASE; // ≈ 1.68 BTC, not ≈ 4.2
    expect(Number(legs[0]?.sizeBase)).toBeCloseTo(expectedBase, 9);
    // the venue's margin for the leg fits its free collateral
    expect(Number(legs[0]?.sizeBase) * spotUsd * 0.25).toBeLessThanOrEqual(FREE_USD);
  });

  it('counts only the collateral the venue margins with: a USDT balance on a USDC venue is no free collateral there', async () => {
    const { venues, clock, spotUsd } = await lonePerpVenue('drift-sol', { maxLeverage: 4 }, FREE_USD, {
      USDT: 1_000_000,
    });
    expect(venues[0]?.capabilities.collateral).toEqual(['USDC']);
    expect((await venues[0]?.fetchBalances())?.map((b) => b.asset).sort()).toEqual(['USDC', 'USDT']);
    const plan = await route(sellDelta(clock.nowMs(), spotUsd), venues);
    const legs = perpLegs(plan?.legs ?? []);
    const expectedBase = Math.floor(FREE_USD / (0.25 * spotUsd) / STEP_BASE) * STEP_BASE; // ≈ 1.68 BTC, not 5
    expect(Number(legs[0]?.sizeBase)).toBeCloseTo(expectedBase, 9);
  });

  it('sizes the leg at the 10% floor on a venue allowing 50× (2%)', async () => {
    const { venues, clock, spotUsd } = await lonePerpVenue('gmx-arb', { maxLeverage: 50 }, FREE_USD);
    const [market] = (await venues[0]?.loadMarkets()) ?? [];
    expect(market?.initialMarginFraction).toBe(0.02);
    const plan = await route(sellDelta(clock.nowMs(), spotUsd), venues);
    const legs = perpLegs(plan?.legs ?? []);
    expect(legs.map((l) => [l.venue, l.side])).toEqual([['gmx-arb', 'sell']]);
    const expectedBase = Math.floor(FREE_USD / (0.1 * spotUsd) / STEP_BASE) * STEP_BASE; // ≈ 4.2 BTC, not 5
    expect(Number(legs[0]?.sizeBase)).toBeCloseTo(expectedBase, 9);
  });
});

/**
 * Regression: the option legs' premium was not counted against their venue's free collateral, so a plan
 * could buy more options than the venue could pay for, and the venue rejected the order.
 */
describe("createRouter: option legs are cut to what their venue's collateral pays", () => {
  it('buys only the calls lyra-arb can pay for at the limit price plus fee, and the round keeps that collateral', async () => {
    const LYRA_USD = 20_000;
    const { venues, clock, callId } = await paperVenues(LYRA_USD);
    const lyra = venues.find((v) => v.id === 'lyra-arb');
    const market = (await lyra?.loadMarkets())?.find((m) => m.instrument.id === callId);
    const q = await lyra?.quoteHedge({ instrument: callId, side: 'buy', sizeBase: '10', holdingHours: 0 });
    if (!market || !q) throw new Error('expected the call and its quote');
    // Ten calls cost more than lyra-arb holds.
    expect(10 * q.expectedPriceUsd).toBeGreaterThan(LYRA_USD);
    const { route, notes } = notingRouter();
    const reservation = new CollateralReservation();
    const plan = await route(vegaOnly(callId, clock.nowMs()), venues, reservation);
    const calls = plan?.legs.filter((l) => l.instrument === callId) ?? [];
    expect(calls).toHaveLength(1);
    const [call] = calls;
    if (!call) throw new Error('expected the call leg');
    const sizeBase = Number(call.sizeBase);
    const feeUsdPerUnit = q.feeUsd / Number(q.executableSizeBase);
    const takeUsd = sizeBase * (Number(call.limitPriceUsd) + feeUsdPerUnit);
    expect(sizeBase).toBeGreaterThan(0);
    expect(sizeBase).toBeLessThan(10);
    expect(takeUsd).toBeLessThanOrEqual(LYRA_USD + 1e-6);
    // Cut to whole steps: one more step would not be paid for.
    const stepBase = Number(market.sizeStepBase);
    expect(Math.abs(sizeBase / stepBase - Math.round(sizeBase / stepBase))).toBeLessThan(1e-6);
    expect((sizeBase + stepBase) * (Number(call.limitPriceUsd) + feeUsdPerUnit)).toBeGreaterThan(LYRA_USD);
    expect(notes.join(' ')).toMatch(/lyra-arb: buy 10 .* free there: cut to/);
    // The offsetting perp leg sells the delta of the calls bought, not of the 10 decided (0.5 each).
    const soldBase = perpLegs(plan?.legs ?? []).reduce((s, l) => s + Number(l.sizeBase), 0);
    expect(Math.abs(soldBase - 0.5 * sizeBase)).toBeLessThanOrEqual(0.0001 + 1e-12);
    // Later plans of the round see what the calls took.
    expect(reservation.freeUsd('lyra-arb', LYRA_USD)).toBeCloseTo(LYRA_USD - takeUsd, 6);
  });
});

/**
 * Regression: a sold option's locked collateral was never counted. Routing takes `shortCollateralUsdPerUnit`
 * off the venue's free collateral for a sell, but the runtime router never filled it (the venue contract had
 * no field for it), so a sell counted only its fee and a plan could sell options whose collateral the venue
 * did not have; the venue then refused the order.
 */
describe('createRouter: option sells are cut to the collateral their venue locks', () => {
  it("sells only the calls whose locked collateral (the quote's lockedCollateralUsd) plus fee lyra-arb's free collateral holds", async () => {
    const LYRA_USD = 50_000;
    const { venues, clock, callId } = await paperVenues(LYRA_USD);
    const lyra = venues.find((v) => v.id === 'lyra-arb');
    const market = (await lyra?.loadMarkets())?.find((m) => m.instrument.id === callId);
    const q = await lyra?.quoteHedge({ instrument: callId, side: 'sell', sizeBase: '10', holdingHours: 0 });
    if (!market || !q || q.lockedCollateralUsd === undefined)
      throw new Error('expected the call and a sell quote stating its locked collateral');
    const quotedBase = Number(q.executableSizeBase);
    const feeUsdPerUnit = q.feeUsd / quotedBase;
    const lockedUsdPerUnit = q.lockedCollateralUsd / quotedBase;
    // The fees of ten calls fit lyra-arb's collateral; the collateral ten short calls lock does not.
    expect(10 * feeUsdPerUnit).toBeLessThan(LYRA_USD);
    expect(10 * (feeUsdPerUnit + lockedUsdPerUnit)).toBeGreaterThan(LYRA_USD);
    const { route, notes } = notingRouter();
    const reservation = new CollateralReservation();
    const sellCalls = vegaOnly(callId, clock.nowMs(), {
      vegaTrades: [
        {
          venue: 'lyra-arb',
          chain: 'evm:42161',
          instrument: callId,
          side: 'sell',
          sizeBase: 10,
          priceUsd: 5000,
          vegaPerVolPoint: -2000,
          delta: -5,
          costUsd: 100,
        },
      ],
      bookDelta: 5.9,
      effectiveDelta: -0.9,
      driftDelta: -0.9,
    });
    const plan = await route(sellCalls, venues, reservation);
    const calls = plan?.legs.filter((l) => l.instrument === callId) ?? [];
    expect(calls.map((l) => l.side)).toEqual(['sell']);
    const sizeBase = Number(calls[0]?.sizeBase);
    const takeUsdPerUnit = feeUsdPerUnit + lockedUsdPerUnit;
    expect(sizeBase).toBeGreaterThan(0);
    expect(sizeBase).toBeLessThan(10);
    expect(sizeBase * takeUsdPerUnit).toBeLessThanOrEqual(LYRA_USD + 1e-6);
    // Cut to whole steps: one more step's collateral would not fit.
    const stepBase = Number(market.sizeStepBase);
    expect(Math.abs(sizeBase / stepBase - Math.round(sizeBase / stepBase))).toBeLessThan(1e-6);
    expect((sizeBase + stepBase) * takeUsdPerUnit).toBeGreaterThan(LYRA_USD);
    expect(notes.join(' ')).toMatch(
      /lyra-arb: sell 10 .* \(fee and short collateral\), .* free there: cut to/,
    );
    // The offsetting perp leg buys the delta of the calls sold, not of the 10 decided (0.5 each).
    const perps = perpLegs(plan?.legs ?? []);
    expect(perps.map((l) => l.side)).toEqual(perps.map(() => 'buy'));
    const boughtBase = perps.reduce((s, l) => s + Number(l.sizeBase), 0);
    expect(Math.abs(boughtBase - 0.5 * sizeBase)).toBeLessThanOrEqual(0.0001 + 1e-12);
    // Later plans of the round see the collateral the short calls lock.
    expect(reservation.freeUsd('lyra-arb', LYRA_USD)).toBeCloseTo(LYRA_USD - sizeBase * takeUsdPerUnit, 6);
  });
});

/**
 * Regression: a venue whose balances could not be read was left out of the option legs' collateral map,
 * which routing takes as "not checked": its option legs went out at full size, paid from collateral
 * nobody had read (the venue refuses them, or an on-chain one reverts and keeps the gas), while the plan's
 * delta legs offset options that never fill.
 */
describe('createRouter: option legs on a venue whose balances were not read', () => {
  it('spend none of its collateral: the legs are dropped, and no delta leg offsets them', async () => {
    const { venues, clock, callId } = await paperVenues(20_000);
    const down = venues.map((v) =>
      v.id !== 'lyra-arb'
        ? v
        : (new Proxy(v, {
            get(target, prop) {
              if (prop === 'fetchBalances')
                return async () => {
                  throw new Error('rpc down');
                };
              const x = Reflect.get(target, prop, target);
              return typeof x === 'function' ? x.bind(target) : x;
            },
          }) as typeof v),
    );
    const { route, notes } = notingRouter();
    const plan = await route(vegaOnly(callId, clock.nowMs()), down);
    expect(plan?.legs.filter((l) => l.instrument === callId) ?? []).toEqual([]);
    expect(perpLegs(plan?.legs ?? [])).toEqual([]);
    expect(notes.join(' ')).not.toMatch(/free collateral unknown/);
  });
});

/** `v` with `over` in place of its own members (a venue whose reads fail, or with other capabilities). */
function altered<V extends object>(v: V, over: Record<string, unknown>): V {
  return new Proxy(v, {
    get(target, prop) {
      if (typeof prop === 'string' && prop in over) return over[prop];
      const x = Reflect.get(target, prop, target);
      return typeof x === 'function' ? x.bind(target) : x;
    },
  });
}

/**
 * Regression: one venue's error outside any try (its markets read for an option leg, an order type it
 * cannot take) threw out of routing, and the tick planned nothing for any underlying.
 */
describe('createRouter: a failing venue is left out, not the whole tick', () => {
  it('a venue whose markets cannot be read pays for none of its option legs; the plan goes on without them', async () => {
    const { venues, clock, callId } = await paperVenues();
    const down = venues.map((v) =>
      v.id !== 'lyra-arb'
        ? v
        : altered(v, {
            loadMarkets: async () => {
              throw new Error('rpc down');
            },
          }),
    );
    const warnings: string[] = [];
    const route = createRouter({
      maxSlippageBps: 50,
      log: (level, msg) => {
        if (level === 'warn') warnings.push(msg);
      },
    });
    const plan = await route(vegaOnly(callId, clock.nowMs()), down);
    // the option legs are dropped, and so is the delta leg that would have offset them
    expect(plan?.legs ?? []).toEqual([]);
    expect(warnings).toContain('venue lyra-arb left out of the option legs: its markets cannot be read');
    // a delta trade goes out on the other venues, less the 5 BTC the dropped calls would have added
    const withTrade = vegaOnly(callId, clock.nowMs(), {
      code: 'hedge',
      tradeDeltaBase: -9,
      side: 'sell',
      tradeNotionalUsd: 855_000,
    });
    const rest = await route(withTrade, down);
    expect(rest?.legs.filter((l) => l.instrument === callId)).toEqual([]);
    const perps = perpLegs(rest?.legs ?? []);
    expect(perps.map((l) => l.side)).toEqual(perps.map(() => 'sell'));
    expect(perps.reduce((s, l) => s + Number(l.sizeBase), 0)).toBeCloseTo(4, 3);
  });

  it('a venue that takes none of the order types legs are planned as is left out of routing; the others take the hedge', async () => {
    const { venues, clock } = await paperVenues();
    const route = createRouter({ maxSlippageBps: 50, log: () => {} });
    const [mark] = (await venues.find((v) => v.id === 'gmx-arb')?.fetchMarks(['BTC-USD:PERP'])) ?? [];
    const decision = sellDelta(clock.nowMs(), mark?.markPriceUsd ?? 95_000);
    const usual = await route(decision, venues);
    expect(usual?.legs.map((l) => l.venue)).toContain('gmx-arb');
    const odd = venues.map((v) =>
      v.id !== 'gmx-arb' ? v : altered(v, { capabilities: { ...v.capabilities, orderTypes: [] } }),
    );
    const plan = await route(decision, odd);
    const legs = plan?.legs ?? [];
    expect(legs.length).toBeGreaterThan(0);
    expect(legs.map((l) => l.venue)).not.toContain('gmx-arb');
  });
});

/**
 * Regression: the router's bridge wrapper dropped the asset routing names (the source venue's collateral),
 * so a cost model that prices or refuses by asset was always asked about its default asset.
 */
describe('createRouter: a collateral move is priced for the asset it moves', () => {
  it("asks the bridge with the source venue's collateral asset", async () => {
    const config = parseConfig(PAPER, 'paper.yaml');
    const keep = ['gmx-arb', 'drift-sol'];
    config.venues = config.venues.filter((v) => keep.includes(v.id));
    config.book.positions = [];
    config.book.balances = [
      { venue: 'gmx-arb', asset: 'USDC', amount: 1_000 },
      { venue: 'drift-sol', asset: 'USDC', amount: 1_000 },
    ];
    const clock = new ManualClock(Date.UTC(2026, 0, 5));
    const market = createMarketFromConfig({
      market: config.market,
      underlyings: config.underlyings.map((u) => u.symbol),
      clock,
    });
    const venues = createPaperVenues({ config, market, clock });
    const [mark] = (await venues[0]?.fetchMarks(['BTC-USD:PERP'])) ?? [];
    if (!mark) throw new Error('no BTC perp mark');
    const asked: (string | undefined)[] = [];
    const route = createRouter({
      maxSlippageBps: 50,
      log: () => {},
      transferable: new Set(keep),
      bridge: (_from, _to, _amountUsd, asset) => {
        asked.push(asset);
        return { feeUsd: 1, latencyMs: 30_000 };
      },
    });
    await route(sellDelta(clock.nowMs(), mark.markPriceUsd), venues);
    expect(asked.length).toBeGreaterThan(0);
    expect(new Set(asked)).toEqual(new Set(['USDC']));
  });
});

/**
 * Regression: routing budgeted a GMX delta leg as if the venue netted positions. GMX v2 keeps a market's
 * long and short apart: holding 2 ETH long, a sell of 5 does not close the long and open 3, it opens a
 * short of 5 beside it and posts collateral for all 5 (its quote's `lockedCollateralUsd`). Sized on the
 * 3 past the long, the leg was more than the wallet could post, and GMX refused it.
 */
describe('createRouter: a GMX leg past the opposite position fits the collateral GMX posts for its whole size (anvil)', () => {
  let chain: LocalTestChain;
  let trader: EvmContext;
  let fx: GmxFixture;
  let keeper: GmxKeeper;
  // leverage 2: an increase posts half its notional; ETH at $3,500
  const WALLET_USDC = 10_500; // $3,500 of it goes into the 2 ETH long: $7,000 stays free

  beforeAll(async () => {
    chain = await startLocalTestChain('gmx-router');
    const deployer = chain.ctxFor(ANVIL_DEV_KEYS[0]);
    const keeperCtx = chain.ctxFor(ANVIL_DEV_KEYS[2]);
    trader = chain.ctxFor(ANVIL_DEV_KEYS[1]);
    fx = await deployGmxFixture(deployer, {
      markets: [
        { symbol: 'BTC', decimals: 8, priceUsd: 95_000 },
        { symbol: 'ETH', decimals: 18, priceUsd: 3_500 },
      ],
      keepers: [keeperCtx.account.address],
      traders: [trader.account.address],
      traderUsdc: WALLET_USDC,
    });
    keeper = new GmxKeeper({
      ctx: keeperCtx,
      dataStore: fx.params.dataStore,
      eventEmitter: fx.params.eventEmitter,
    });
    await ensureAllowance(new TxSender({ ctx: trader }), {
      token: fx.params.collateralAsset,
      spender: fx.params.router,
      amount: 1_000_000_000_000n,
      policy: { mode: 'capped', capAmount: 1_000_000_000_000n },
    });
    // compiling the GMX contracts with solc-js takes a minute or more under load
  }, 300_000);
  afterAll(async () => {
    await chain?.stop();
  });

  it('holding 2 ETH long with $7,000 free, a sell of 5 is planned at the 3.98 whose $6,965 GMX posts, 50 bps under the wallet for the price to move (not 5, which needs $8,750, nor the whole wallet), and GMX takes it', async () => {
    const gmx = new GmxVenue(
      'gmx-local',
      { ...fx.params, approval: 'capped', approvalCap: '1000000', receiptTimeoutSeconds: 1 },
      { ctx: trader, store: new MemoryOrderStore<GmxOrderRecord>() },
    );
    const send = async (
      clientOrderId: string,
      side: 'buy' | 'sell',
      sizeBase: string,
      limitPriceUsd?: string,
    ) => {
      await gmx.placeOrder({
        clientOrderId,
        instrument: 'ETH-USD:PERP',
        side,
        orderType: 'market',
        sizeBase,
        ...(limitPriceUsd !== undefined ? { limitPriceUsd } : {}),
      });
      await keeper.runOnce();
      return gmx.getOrderByClientId(clientOrderId);
    };
    expect((await send('router-long', 'buy', '2'))?.status).toBe('filled');
    const freeUsd = (await gmx.fetchBalances()).find((b) => b.asset === 'USDC')?.amount;
    expect(freeUsd).toBe(7000);
    expect((await gmx.fetchPositions()).map((p) => [p.instrument, p.sizeBase])).toEqual([
      ['ETH-USD:PERP', 2],
    ]);

    const route = createRouter({ maxSlippageBps: 50, log: () => {} });
    const decision: HedgeDecision = {
      ...sellDelta(Date.now(), 3500),
      id: 'dec_gmxflip1',
      underlying: 'ETH',
      tradeNotionalUsd: 5 * 3500,
      reason: 'ETH: delta outside its band.',
    };
    const plan = await route(decision, [gmx]);
    const [leg] = plan?.legs ?? [];
    // netted, routing saw $5,250 of margin for 5 (3 past the long) and sent 5
    expect(plan?.legs.map((l) => [l.venue, l.side, l.sizeBase, l.reduceOnly, l.orderType])).toEqual([
      ['gmx-local', 'sell', '3.98', false, 'market'],
    ]);
    if (!leg) throw new Error('no leg');
    // what GMX posts for the leg is what routing counted, and the wallet holds it with the slippage
    // bound's headroom: 7,000 / (1,750 × 1.005) = 3.98
    const legQuote = await gmx.quoteHedge({
      instrument: 'ETH-USD:PERP',
      side: 'sell',
      sizeBase: leg.sizeBase,
    });
    expect(legQuote.lockedCollateralUsd).toBe(6965);
    expect(
      legMarginUsd(
        { positionBase: 2, marginFraction: 0.5, openCollateralUsdPerUnit: 1750 },
        'sell',
        3.98,
        3500,
      ),
    ).toBeCloseTo(6965, 9);
    expect((legQuote.lockedCollateralUsd ?? Number.POSITIVE_INFINITY) * 1.005).toBeLessThanOrEqual(
      freeUsd ?? 0,
    );
    // the netted plan's 5 is more than GMX can pull from the wallet; the planned leg goes through
    // (the wallet's 7,000 USDC against the 8,750 GMX pulls)
    const refused = await send('router-flip-5', 'sell', '5').catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(InsufficientFundsError);
    expect((refused as Error).message).toMatch(/ERC20InsufficientBalance\(.*, 7000000000, 8750000000\)/);
    expect((await send('router-flip', 'sell', leg.sizeBase, leg.limitPriceUsd))?.status).toBe('filled');
    expect((await gmx.fetchPositions()).map((p) => p.sizeBase)).toEqual([-1.98]);
    expect((await gmx.fetchBalances()).find((b) => b.asset === 'USDC')?.amount).toBe(35);
  });
});
