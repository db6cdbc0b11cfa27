import { HedgeIntent, ManualClock, parseInstrumentId, type Side, toDecimalString } from '@xhedge/core';
import { type HedgeDecision, HedgeStrategy, type OptionTrade } from '@xhedge/strategy';
import type { HedgeQuote, QuoteRequest, VenueCapabilities } from '@xhedge/venue';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CollateralReservation, collateralUse, legMarginUsd, maxSizeForMarginUsd } from './collateral.ts';
import { HedgePlan, limitPrice } from './plan.ts';
import { quoteVenues } from './quotes.ts';
import {
  type BridgeCostModel,
  type CollateralSource,
  type OptionMarket,
  planDecision,
  type RouteOptions,
  type RouteRequest,
  type RouteVenue,
  routeDelta,
} from './route.ts';

const S = 60_000;
const NOW = Date.UTC(2026, 0, 1);

interface Book {
  feeBps: number;
  /** Half spread, bps of notional. */
  spreadBps?: number;
  /** Linear price impact: USD per unit per unit of size. */
  impactPerUnit2?: number;
  gasUsd: number;
  capBase?: number;
}

function quote(venue: string, side: Side, size: number, b: Book): HedgeQuote {
  const exec = Math.min(size, b.capBase ?? size);
  const fee = exec * S * (b.feeBps / 10_000);
  const impact = exec * S * ((b.spreadBps ?? 0) / 10_000) + (b.impactPerUnit2 ?? 0) * exec * exec;
  const q: HedgeQuote = {
    venue,
    instrument: 'BTC-USD:PERP',
    side,
    requestedSizeBase: toDecimalString(size, 8),
    executableSizeBase: toDecimalString(exec, 8),
    referencePriceUsd: S,
    expectedPriceUsd: S + (side === 'buy' ? 1 : -1) * (impact / exec),
    feeUsd: fee,
    impactUsd: impact,
    gasUsd: b.gasUsd,
    fundingCarryUsd: 0,
    totalCostUsd: fee + impact + b.gasUsd,
    expectedLatencyMs: 500,
    asOfMs: NOW,
  };
  if (exec < size) q.capReason = 'open-interest cap';
  return q;
}

function venue(
  name: string,
  chain: string,
  size: number,
  side: Side,
  b: Book,
  extra: Partial<RouteVenue> = {},
): RouteVenue {
  return {
    venue: name,
    chain,
    instrument: 'BTC-USD:PERP',
    quotes: [quote(name, side, size, b), quote(name, side, size / 4, b)],
    minSizeBase: 0.001,
    sizeStepBase: 0.001,
    priceTickUsd: 0.1,
    positionBase: 0,
    freeCollateralUsd: 1e9,
    marginFraction: 0.1,
    ...extra,
  };
}

const bridge: BridgeCostModel = (from, to) =>
  from === to ? { feeUsd: 0.5, latencyMs: 1_000 } : { feeUsd: 4, latencyMs: 120_000 };

function req(deltaBase: number, over: Partial<RouteRequest> = {}): RouteRequest {
  return {
    planId: 'plan_test1',
    underlying: 'BTC',
    deltaBase,
    referencePriceUsd: S,
    urgency: 'normal',
    reason: 'test hedge.',
    createdAtMs: NOW,
    ...over,
  };
}

/** A hedge of `deltaBase` on one perp venue whose minimum (0.01) is above it. */
function loneMinimumPlan(deltaBase: number) {
  return routeDelta(
    req(deltaBase),
    [
      venue(
        'perp-arb',
        'evm:42161',
        Math.abs(deltaBase),
        deltaBase > 0 ? 'buy' : 'sell',
        { feeBps: 5, gasUsd: 0.1 },
        { minSizeBase: 0.01, sizeStepBase: 0.01 },
      ),
    ],
    { bridge },
  );
}

describe('routeDelta', () => {
  it('sends a small hedge to an L2 rather than L1 (gas dominates)', () => {
    const size = 0.2;
    const plan = routeDelta(
      req(-size),
      [
        venue('perp-eth', 'evm:1', size, 'sell', { feeBps: 2, gasUsd: 25 }),
        venue('perp-arb', 'evm:42161', size, 'sell', { feeBps: 5, gasUsd: 0.1 }),
      ],
      { bridge },
    );
    expect(plan.legs).toHaveLength(1);
    expect(plan.legs[0]).toMatchObject({
      venue: 'perp-arb',
      chain: 'evm:42161',
      side: 'sell',
      sizeBase: '0.2',
    });
    expect(plan.legCosts[0]?.totalCostUsd).toBeCloseTo(0.2 * S * 0.0005 + 0.1, 9);
    expect(plan.shortfallBase).toBe(0);
    expect(() => HedgeIntent.parse(plan.legs[0])).not.toThrow();
  });

  it('splits a large hedge across venues when impact makes that cheaper', () => {
    const size = 100;
    const b: Book = { feeBps: 4, spreadBps: 1, impactPerUnit2: 2, gasUsd: 0.2 };
    const plan = routeDelta(
      req(size),
      [
        venue('perp-arb', 'evm:42161', size, 'buy', b),
        venue('perp-sol', 'solana:mainnet-beta', size, 'buy', b),
      ],
      { bridge },
    );
    expect(plan.legs.map((l) => l.venue).sort()).toEqual(['perp-arb', 'perp-sol']);
    const sizes = plan.legs.map((l) => Number(l.sizeBase));
    expect(sizes.reduce((s, x) => s + x, 0)).toBeCloseTo(100, 9);
    expect(Math.abs((sizes[0] ?? 0) - (sizes[1] ?? 0))).toBeLessThanOrEqual(100 / 64 + 1e-9);
    // Two halves pay half the impact of one order: 2·(2·50²) vs 2·100².
    const single = 100 * S * 0.0005 + 2 * 100 * 100 + 0.2;
    expect(plan.totalCostUsd).toBeLessThan(single);
    expect(plan.notes.join(' ')).toMatch(/split over 2 venues/);
  });

  it('downsizes a capped venue instead of failing, and sends the rest elsewhere', () => {
    const size = 5;
    const cheapCapped = venue(
      'perp-arb',
      'evm:42161',
      size,
      'buy',
      { feeBps: 2, gasUsd: 0.1 },
      { maxOrderSizeBase: 2 },
    );
    const dearer = venue('perp-sol', 'solana:mainnet-beta', size, 'buy', { feeBps: 6, gasUsd: 0.01 });
    const plan = routeDelta(req(size), [cheapCapped, dearer], { bridge });
    const by = Object.fromEntries(plan.legs.map((l) => [l.venue, l.sizeBase]));
    expect(by).toEqual({ 'perp-arb': '2', 'perp-sol': '3' });
    expect(plan.notes.join(' ')).toMatch(/perp-arb: downsized to its cap 2/);

    const alone = routeDelta(
      req(size),
      [venue('perp-gmx', 'evm:42161', size, 'buy', { feeBps: 5, gasUsd: 0.3, capBase: 1.5 })],
      {
        bridge,
      },
    );
    expect(alone.legs.map((l) => l.sizeBase)).toEqual(['1.5']);
    expect(alone.shortfallBase).toBeCloseTo(3.5, 9);
    expect(alone.notes.join(' ')).toMatch(/open-interest cap/);
  });

  it('marks legs that only reduce an existing position reduce-only', () => {
    const plan = routeDelta(
      req(-2),
      [
        venue(
          'perp-arb',
          'evm:42161',
          2,
          'sell',
          { feeBps: 5, gasUsd: 0.1 },
          { positionBase: 3, freeCollateralUsd: 0 },
        ),
      ],
      { bridge },
    );
    expect(plan.legs[0]).toMatchObject({ reduceOnly: true, sizeBase: '2' });
    expect(plan.transfers).toEqual([]);
  });

  it('moves collateral first when margin sits on another chain: a transfer the leg depends on', () => {
    const plan = routeDelta(
      req(1),
      [
        venue(
          'perp-sol',
          'solana:mainnet-beta',
          1,
          'buy',
          { feeBps: 5, gasUsd: 0.01 },
          { freeCollateralUsd: 0 },
        ),
      ],
      {
        bridge,
        collateralSources: [{ venue: 'lyra-arb', chain: 'evm:42161', asset: 'USDC', availableUsd: 100_000 }],
      },
    );
    expect(plan.transfers).toHaveLength(1);
    const t = plan.transfers[0];
    expect(t).toMatchObject({
      fromChain: 'evm:42161',
      toChain: 'solana:mainnet-beta',
      asset: 'USDC',
      amount: '7200',
    });
    expect(plan.legs[0]?.dependsOn).toEqual([t?.id]);
    expect(plan.legCosts[0]?.bridgeFeeUsd).toBe(4);
    expect(plan.legCosts[0]?.delayCostUsd).toBeCloseTo(2, 9); // 2 minutes × $1/min
  });

  it('prefers a venue with margin in place over one that needs a bridge, all else close', () => {
    const plan = routeDelta(
      req(1),
      [
        venue(
          'perp-sol',
          'solana:mainnet-beta',
          1,
          'buy',
          { feeBps: 4.5, gasUsd: 0.01 },
          { freeCollateralUsd: 0 },
        ),
        venue('perp-arb', 'evm:42161', 1, 'buy', { feeBps: 5, gasUsd: 0.1 }),
      ],
      {
        bridge,
        collateralSources: [{ venue: 'lyra-arb', chain: 'evm:42161', asset: 'USDC', availableUsd: 100_000 }],
      },
    );
    expect(plan.legs.map((l) => l.venue)).toEqual(['perp-arb']);
  });

  it('never rounds a needed hedge to zero: a sub-minimum size goes out at the venue minimum', () => {
    const plan = loneMinimumPlan(0.004);
    expect(plan.legs.map((l) => l.sizeBase)).toEqual(['0.01']);
  });
});

/**
 * Regression for the backtester's report on issue 5 (routing fixed costs): `routeDelta` split small hedges
 * across L1, L2 and Solana venues, paying gas on each leg (the 4-hourly policy paid ~$1,855 of gas per
 * path) and leaving opposite positions on different venues. Cause: plans were ranked by delivered size
 * first with a 5e-10 tolerance, so float noise in a single leg's rounding (0.5 → 0.499999999 at a 1e-9
 * step) let any split that summed exactly win, whatever its gas.
 */
describe('routeDelta: fixed costs per leg (backtest report on issue 5)', () => {
  /** A venue quoted the way the backtester quotes it: fee, half spread, impact ∝ notional², gas; 1e-9 step. */
  interface ModelVenue {
    id: string;
    chain: string;
    feeBps: number;
    halfSpreadBps: number;
    impactBpsPerMillionUsd: number;
    gasUsd: number;
    positionBase?: number;
  }
  function modelVenue(v: ModelVenue, side: Side, size: number): RouteVenue {
    const mk = (n: number): HedgeQuote => {
      const notional = n * S;
      const slip = v.halfSpreadBps / 10_000 + (v.impactBpsPerMillionUsd / 1e10) * notional;
      const feeUsd = (notional * v.feeBps) / 10_000;
      return {
        venue: v.id,
        instrument: 'BTC-USD:PERP',
        side,
        requestedSizeBase: toDecimalString(n, 12),
        executableSizeBase: toDecimalString(n, 12),
        referencePriceUsd: S,
        expectedPriceUsd: S * (side === 'buy' ? 1 + slip : 1 - slip),
        feeUsd,
        impactUsd: slip * notional,
        gasUsd: v.gasUsd,
        fundingCarryUsd: 0,
        totalCostUsd: feeUsd + slip * notional + v.gasUsd,
        expectedLatencyMs: 0,
        asOfMs: NOW,
      };
    };
    return {
      venue: v.id,
      chain: v.chain,
      instrument: 'BTC-USD:PERP',
      quotes: [mk(size), mk(2 * size)],
      minSizeBase: 0,
      sizeStepBase: 1e-9,
      positionBase: v.positionBase ?? 0,
      freeCollateralUsd: 1e12,
      marginFraction: 0.1,
    };
  }
  /** The cost models of configs/backtests/btc-replay.yaml, gas at a mid value; plus an Optimism perp. */
  const L1: ModelVenue = {
    id: 'eth-l1-dex',
    chain: 'evm:1',
    feeBps: 5,
    halfSpreadBps: 2,
    impactBpsPerMillionUsd: 5,
    gasUsd: 20,
  };
  const ARB: ModelVenue = {
    id: 'gmx-arb',
    chain: 'evm:42161',
    feeBps: 6,
    halfSpreadBps: 1,
    impactBpsPerMillionUsd: 20,
    gasUsd: 0.3,
  };
  const OP: ModelVenue = { ...ARB, id: 'perp-op', chain: 'evm:10', gasUsd: 0.05 };
  const SOL: ModelVenue = {
    id: 'drift-sol',
    chain: 'solana:mainnet-beta',
    feeBps: 10,
    halfSpreadBps: 1,
    impactBpsPerMillionUsd: 30,
    gasUsd: 0.0055,
  };
  const route = (delta: number, vs: readonly ModelVenue[], over: Partial<RouteRequest> = {}) =>
    routeDelta(
      req(delta, over),
      vs.map((v) => modelVenue(v, delta > 0 ? 'buy' : 'sell', Math.abs(delta))),
      { bridge },
    );

  it('a small hedge goes out as exactly one leg, on the cheapest L2 all-in', () => {
    for (const delta of [0.2, -0.2, 0.1234567891, -0.05]) {
      const plan = route(delta, [L1, ARB, OP, SOL]);
      expect(plan.legs).toHaveLength(1);
      expect(plan.legs[0]?.venue).toBe('perp-op');
      expect(Number(plan.legs[0]?.sizeBase)).toBeCloseTo(Math.abs(delta), 8);
      expect(plan.legCosts[0]?.gasUsd).toBe(0.05);
      expect(plan.shortfallBase).toBeLessThan(1e-8);
      expect(plan.notes.join(' ')).not.toMatch(/split/);
    }
    // The reported case: 0.5 BTC over L1 + Arbitrum used to come out as 0.3984375 on L1 + 0.1015625 on Arbitrum.
    const reported = route(0.5, [L1, ARB]);
    expect(reported.legs.map((l) => [l.venue, l.sizeBase])).toEqual([['gmx-arb', '0.5']]);
  });

  it('splits only when the impact saved exceeds the extra leg’s fixed cost', () => {
    // Two venues with the same linear cost and impact k·q²; the second charges gas g. Halves save k·q²/2 of
    // impact, so the split pays exactly when q > √(2g/k).
    const k = (20 / 1e10) * S * S; // USD per BTC²
    const a: ModelVenue = { ...ARB, id: 'perp-a', gasUsd: 0 };
    const b: ModelVenue = { ...ARB, id: 'perp-b', chain: 'evm:10', gasUsd: 30 };
    const threshold = Math.sqrt((2 * b.gasUsd) / k);
    const below = route(0.9 * threshold, [a, b]);
    expect(below.legs.map((l) => l.venue)).toEqual(['perp-a']);
    const above = route(1.1 * threshold, [a, b]);
    expect(above.legs.map((l) => l.venue).sort()).toEqual(['perp-a', 'perp-b']);
    expect(Number(above.legs[0]?.sizeBase)).toBeCloseTo(Number(above.legs[1]?.sizeBase), 8);
    const alone = route(1.1 * threshold, [a]);
    expect(above.totalCostUsd).toBeLessThan(alone.totalCostUsd);
    const saved = alone.totalCostUsd - above.totalCostUsd;
    expect(saved).toBeCloseTo(k * (1.1 * threshold) ** 2 * 0.5 - b.gasUsd, 6);
    expect(above.notes.join(' ')).toMatch(
      /split over 2 venues: saves \$\d+\.\d\d against the best single venue/,
    );
  });

  it('never chooses a split when one venue is cheaper all-in (property)', () => {
    const venueArb = fc.record({
      feeBps: fc.double({ min: 0, max: 20, noNaN: true }),
      halfSpreadBps: fc.double({ min: 0, max: 5, noNaN: true }),
      impactBpsPerMillionUsd: fc.double({ min: 0, max: 50, noNaN: true }),
      gasUsd: fc.double({ min: 0, max: 50, noNaN: true }),
    });
    fc.assert(
      fc.property(
        fc.array(venueArb, { minLength: 2, maxLength: 4 }),
        fc.double({ min: 0.001, max: 200, noNaN: true }),
        fc.boolean(),
        (specs, size, buy) => {
          const vs = specs.map((x, i) => ({ ...x, id: `v${i}`, chain: `evm:${i + 1}` }));
          const delta = buy ? size : -size;
          const plan = route(delta, vs);
          expect(plan.shortfallBase).toBeLessThan(1e-8);
          for (const v of vs) {
            const single = route(delta, [v]);
            // Within a rounding step's cost of the best single venue, never above it.
            expect(plan.totalCostUsd).toBeLessThanOrEqual(single.totalCostUsd + 1e-6);
          }
        },
      ),
      { numRuns: 150, seed: 5 },
    );
  });

  it('reduces an existing position instead of opening an opposite one elsewhere when costs are comparable', () => {
    // Selling 0.2 BTC: perp-op is 0.5 bps cheaper, but gmx-arb holds a 3 BTC long the sale can reduce.
    const longOnArb: ModelVenue = { ...ARB, feeBps: 6.5, positionBase: 3 };
    const plan = route(-0.2, [OP, longOnArb]);
    expect(plan.legs.map((l) => [l.venue, l.reduceOnly])).toEqual([['gmx-arb', true]]);
    expect(plan.notes.join(' ')).toMatch(/gmx-arb: reduces the existing 3 position \(reduce-only\)/);
    // Opposite positions on two venues: the sale reduces the long, it never adds to the short.
    const shortOnOp: ModelVenue = { ...OP, positionBase: -2 };
    const both = route(-0.2, [shortOnOp, longOnArb]);
    expect(both.legs.map((l) => [l.venue, l.side, l.reduceOnly])).toEqual([['gmx-arb', 'sell', true]]);
    // Buying instead: now the short on perp-op is the one to reduce.
    const buy = route(0.2, [shortOnOp, longOnArb]);
    expect(buy.legs.map((l) => [l.venue, l.reduceOnly])).toEqual([['perp-op', true]]);
    // Without positions the cheaper venue wins.
    expect(route(-0.2, [OP, { ...longOnArb, positionBase: 0 }]).legs.map((l) => l.venue)).toEqual([
      'perp-op',
    ]);
    // The flat charge off, selling on perp-op still leaves −0.2 there against gmx-arb's long: a pair both
    // venues must close later, which costs more than the 0.5 bps saved now. Only the flat charge is off.
    const off = routeDelta(req(-0.2), [modelVenue(OP, 'sell', 0.2), modelVenue(longOnArb, 'sell', 0.2)], {
      bridge,
      openPositionPenaltyBps: 0,
    });
    expect(off.legs.map((l) => [l.venue, l.reduceOnly])).toEqual([['gmx-arb', true]]);
  });

  it('charges a fixed USD part of the fee once per leg, like gas', () => {
    // fee = 5 bps + $3 per order: two quotes let the router see the fixed part.
    const withFixed = (name: string, chain: string): RouteVenue => {
      const v = venue(name, chain, 1, 'buy', { feeBps: 5, gasUsd: 0 });
      return {
        ...v,
        quotes: v.quotes.map((q) => ({ ...q, feeUsd: q.feeUsd + 3, totalCostUsd: q.totalCostUsd + 3 })),
      };
    };
    const plan = routeDelta(req(1), [withFixed('perp-a', 'evm:10'), withFixed('perp-b', 'evm:8453')], {
      bridge,
    });
    expect(plan.legs).toHaveLength(1);
    expect(plan.legCosts[0]?.feeUsd).toBeCloseTo(S * 0.0005 + 3, 9);
  });
});

/**
 * Regression: routing spent one venue's free collateral twice. Each venue's cost model was fitted on its
 * own, so in a split the source venue's free collateral funded both its own leg and the moves out of it:
 * 20 ETH at 10× with $5,000 free on X only put 6.67 ETH on X and moved 2 × $2,001 out of X, leaving $998
 * on X for a leg needing $1,667.50 of margin.
 */
describe('routeDelta: one venue collateral is spent once (regression: double-spent source)', () => {
  const ETH = 2500;
  const ethQuote = (venue: string, size: number): HedgeQuote => {
    const feeUsd = size * ETH * 0.0005;
    const impactUsd = 2 * size * size;
    return {
      venue,
      instrument: 'ETH-USD:PERP',
      side: 'buy',
      requestedSizeBase: toDecimalString(size, 8),
      executableSizeBase: toDecimalString(size, 8),
      referencePriceUsd: ETH,
      expectedPriceUsd: ETH + impactUsd / size,
      feeUsd,
      impactUsd,
      gasUsd: 0.1,
      fundingCarryUsd: 0,
      totalCostUsd: feeUsd + impactUsd + 0.1,
      expectedLatencyMs: 500,
      asOfMs: NOW,
    };
  };
  // Impact makes a three-way split the cheapest; the 10 ETH largest order makes one necessary (and keeps
  // a whole-cap move, 10 × $250 × 1.2 = $3,000, within what X holds, so moves out of X are planned).
  const ethVenue = (name: string, chain: string, freeCollateralUsd: number): RouteVenue => ({
    venue: name,
    chain,
    instrument: 'ETH-USD:PERP',
    quotes: [ethQuote(name, 20), ethQuote(name, 5)],
    minSizeBase: 0.01,
    sizeStepBase: 0.01,
    positionBase: 0,
    freeCollateralUsd,
    marginFraction: 0.1,
    maxOrderSizeBase: 10,
  });

  /**
   * Random ETH venues for the property tests (each on the chain `chainOf` gives it, quoting `buy`'s side,
   * with its order cap and position) and the collateral sources they offer (their free collateral).
   */
  function randomVenues<
    T extends { freeUsd: number; maxOrderBase: number; positionBase: number; apart?: boolean },
  >(specs: readonly T[], buy: boolean, chainOf: (x: T, i: number) => string) {
    const side: Side = buy ? 'buy' : 'sell';
    const vs = specs.map((x, i) => {
      const v = ethVenue(`v${i}`, chainOf(x, i), x.freeUsd);
      return {
        ...v,
        quotes: v.quotes.map((q) => ({ ...q, side })),
        maxOrderSizeBase: x.maxOrderBase,
        positionBase: x.positionBase,
        // GMX: an order its opposite position does not cover posts collateral on its whole size, per unit
        // at its own price (a tenth of $3,510: GMX's price above the request's $3,500)
        ...(x.apart ? { openCollateralUsdPerUnit: 351 } : {}),
      };
    });
    const sources = vs
      .filter((v) => v.freeCollateralUsd > 0)
      .map((v) => ({ venue: v.venue, chain: v.chain, asset: 'USDC', availableUsd: v.freeCollateralUsd }));
    return { vs, sources };
  }
  const ethReq = (deltaBase: number): RouteRequest => ({
    ...req(deltaBase),
    underlying: 'ETH',
    referencePriceUsd: ETH,
  });

  /**
   * Every venue: margin its legs need ≤ free + moved in − moved out − bridge fees out; every source: moved
   * out + bridge fees ≤ free − own margin (the bridge debits each move plus its fee from the source).
   */
  function expectFundable(
    plan: ReturnType<typeof routeDelta>,
    vs: readonly RouteVenue[],
    sources: readonly CollateralSource[],
  ) {
    for (const v of vs) {
      // The part of a leg that reduces the venue's position needs no margin; on a venue that keeps long and
      // short apart, a leg past the position posts on its whole size, at its price per unit with the
      // slippage bound's headroom (50 bps) for the price moving before it is placed.
      const marginUsd = plan.legs
        .filter((l) => l.venue === v.venue)
        .reduce((s, l) => {
          const reducibleBase =
            v.positionBase * (l.side === 'buy' ? 1 : -1) < 0 ? Math.abs(v.positionBase) : 0;
          const sizeBase = Number(l.sizeBase);
          const pastUsd = Math.max(0, sizeBase - reducibleBase) * l.referencePriceUsd * v.marginFraction;
          const wholeUsd =
            v.openCollateralUsdPerUnit !== undefined && sizeBase > reducibleBase + 1e-12
              ? sizeBase * v.openCollateralUsdPerUnit * 1.005
              : 0;
          return s + Math.max(pastUsd, wholeUsd);
        }, 0);
      const inUsd = plan.transfers
        .filter((t) => t.toVenue === v.venue)
        .reduce((s, t) => s + Number(t.amount), 0);
      const outUsd = plan.transfers
        .filter((t) => t.fromVenue === v.venue)
        .reduce((s, t) => s + Number(t.amount) + t.feeUsd, 0);
      expect(
        marginUsd,
        `${v.venue}: margin ${marginUsd} > free ${v.freeCollateralUsd} + in ${inUsd} − out ${outUsd}`,
      ).toBeLessThanOrEqual(v.freeCollateralUsd + inUsd - outUsd + 1e-6);
      if (outUsd > 0) {
        // A venue that funds others is funded by none, and gives only what its own legs leave.
        expect(inUsd, `${v.venue}: moves both in and out`).toBe(0);
        expect(
          outUsd,
          `${v.venue}: moves out ${outUsd} > free ${v.freeCollateralUsd} − own margin ${marginUsd}`,
        ).toBeLessThanOrEqual(v.freeCollateralUsd - marginUsd + 1e-6);
      }
    }
    for (const s of sources) {
      const outUsd = plan.transfers
        .filter((t) => t.fromVenue === s.venue && t.asset === s.asset)
        .reduce((sum, t) => sum + Number(t.amount) + t.feeUsd, 0);
      expect(outUsd, `${s.venue} ${s.asset}: moves out ${outUsd} > ${s.availableUsd}`).toBeLessThanOrEqual(
        s.availableUsd + 1e-6,
      );
    }
  }

  it('20 ETH, $5,000 free on X only: X keeps the margin of its own leg, moves out of X are cut, the rest is an honest shortfall', () => {
    const vs = [
      ethVenue('perp-x', 'evm:1', 5000),
      ethVenue('perp-y', 'evm:10', 0),
      ethVenue('perp-z', 'evm:42161', 0),
    ];
    const sources: CollateralSource[] = [
      { venue: 'perp-x', chain: 'evm:1', asset: 'USDC', availableUsd: 5000 },
    ];
    const plan = routeDelta(ethReq(20), vs, { bridge, collateralSources: sources });
    expect(() => HedgePlan.parse({ ...plan, reason: 'r', urgency: 'normal' })).not.toThrow();
    expectFundable(plan, vs, sources);
    // Most a fundable plan delivers: X's own 10 ETH ($2,500) and 8.31 ETH on one venue funded by the
    // other $2,500 less the $4 bridge fee X also pays (8.31 × $250 × 1.2 = $2,493); a third leg would
    // have no collateral left.
    const sizes = Object.fromEntries(plan.legs.map((l) => [l.venue, Number(l.sizeBase)]));
    expect(sizes['perp-x']).toBe(10);
    expect(plan.plannedDeltaBase).toBeCloseTo(18.31, 9);
    expect(plan.shortfallBase).toBeCloseTo(1.69, 9);
    expect(plan.transfers).toHaveLength(1);
    expect(plan.transfers[0]).toMatchObject({ fromVenue: 'perp-x', amount: '2493', feeUsd: 4 });
    const notes = plan.notes.join(' ');
    expect(notes).toMatch(/shortfall 1\.69/);
    expect(notes).toMatch(/collateral on perp-x is shared/);
  });

  it('leaves a split whose moves fit alone: the same 10 ETH split three ways when X holds enough for all of it', () => {
    const vs = [
      ethVenue('perp-x', 'evm:1', 5000),
      ethVenue('perp-y', 'evm:10', 0),
      ethVenue('perp-z', 'evm:42161', 0),
    ];
    const sources: CollateralSource[] = [
      { venue: 'perp-x', chain: 'evm:1', asset: 'USDC', availableUsd: 5000 },
    ];
    const plan = routeDelta(ethReq(10), vs, { bridge, collateralSources: sources });
    expectFundable(plan, vs, sources);
    // 3.34 + 2 × 3.33 ETH (the step rounding leaves over goes to one leg): $835 on X, 2 × $999 moved
    // out of it; $2,833 of $5,000.
    expect(plan.legs.map((l) => [l.venue, l.sizeBase])).toEqual([
      ['perp-x', '3.34'],
      ['perp-y', '3.33'],
      ['perp-z', '3.33'],
    ]);
    expect(plan.transfers.map((t) => t.amount)).toEqual(['999', '999']);
    expect(plan.shortfallBase).toBeLessThanOrEqual(1e-9);
    expect(plan.notes.join(' ')).not.toMatch(/is shared/);
  });

  it('a reservation carries what one plan takes to the next plan of the round (two underlyings, one source)', () => {
    const vs = [ethVenue('perp-x', 'evm:1', 5000), ethVenue('perp-y', 'evm:10', 0)];
    const sources: CollateralSource[] = [
      { venue: 'perp-x', chain: 'evm:1', asset: 'USDC', availableUsd: 5000 },
    ];
    const reservation = new CollateralReservation();
    const routeReserved = (deltaBase: number, planId: string) => {
      const seen = vs.map((v) => ({
        ...v,
        freeCollateralUsd: reservation.freeUsd(v.venue, v.freeCollateralUsd),
      }));
      const plan = routeDelta({ ...ethReq(deltaBase), planId }, seen, {
        bridge,
        collateralSources: reservation.sources(sources),
      });
      reservation.commit(plan, seen);
      return plan;
    };
    // The first plan: 10 ETH on perp-x ($2,500 of margin) and 8.31 ETH on perp-y funded by $2,493 from
    // perp-x, which also pays the $4 bridge fee.
    const first = routeReserved(20, 'plan_first1');
    expect(first.plannedDeltaBase).toBeCloseTo(18.31, 9);
    expect(reservation.freeUsd('perp-x', 5000)).toBeCloseTo(3, 9);
    expect(reservation.sources(sources).map((s) => s.availableUsd)).toEqual([3]);
    // perp-y counts all it saw (nothing) towards its funded leg: a later plan gets nothing there either.
    expect(reservation.freeUsd('perp-y', 0)).toBe(0);
    // The second plan sees $3 left on perp-x: one 0.01 ETH order's margin ($2.50) there, and no move (its
    // $4 fee alone is more than is left).
    const second = routeReserved(5, 'plan_second1');
    expect(second.legs.map((l) => [l.venue, l.sizeBase])).toEqual([['perp-x', '0.01']]);
    expect(second.transfers).toEqual([]);
    expect(second.shortfallBase).toBeCloseTo(4.99, 9);
  });

  it('never plans a move or a leg its collateral cannot fund (property)', () => {
    // Collateral, largest orders and positions in whole units: sizes where moves are planned and contested.
    const spec = fc.record({
      freeUsd: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 8_000 })),
      maxOrderBase: fc.integer({ min: 1, max: 20 }),
      positionBase: fc.oneof(fc.constant(0), fc.integer({ min: -10, max: 10 })),
      sameChain: fc.boolean(),
    });
    fc.assert(
      fc.property(
        fc.array(spec, { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 1, max: 4000 }).map((x) => x / 100),
        fc.boolean(),
        (specs, size, buy) => {
          const { vs, sources } = randomVenues(specs, buy, (x, i) =>
            x.sameChain ? 'evm:1' : `evm:${i + 2}`,
          );
          const plan = routeDelta(ethReq(buy ? size : -size), vs, { bridge, collateralSources: sources });
          expectFundable(plan, vs, sources);
        },
      ),
      { numRuns: 300, seed: 11 },
    );
  });

  it('never plans a move or a leg its collateral cannot fund on venues that keep long and short apart either (property)', () => {
    // GMX-like venues among the others: a leg past the position posts on its whole size.
    const spec = fc.record({
      freeUsd: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 8_000 })),
      maxOrderBase: fc.integer({ min: 1, max: 20 }),
      positionBase: fc.oneof(fc.constant(0), fc.integer({ min: -10, max: 10 })),
      sameChain: fc.boolean(),
      apart: fc.boolean(),
    });
    fc.assert(
      fc.property(
        fc.array(spec, { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 1, max: 4000 }).map((x) => x / 100),
        fc.boolean(),
        (specs, size, buy) => {
          const { vs, sources } = randomVenues(specs, buy, (x, i) =>
            x.sameChain ? 'evm:1' : `evm:${i + 2}`,
          );
          const plan = routeDelta(ethReq(buy ? size : -size), vs, { bridge, collateralSources: sources });
          expectFundable(plan, vs, sources);
        },
      ),
      { numRuns: 300, seed: 23 },
    );
  });

  describe('a move’s bridge fee comes out of its source too (audit: transfer failed, hedge cancelled)', () => {
    /** The audit's route: Arbitrum → Optimism at $1.11. */
    const auditBridge: BridgeCostModel = (from, to) =>
      from === to ? { feeUsd: 0, latencyMs: 0 } : { feeUsd: 1.11, latencyMs: 60_000 };
    const arbSource: CollateralSource = {
      venue: 'perp-arb',
      chain: 'evm:42161',
      asset: 'USDC',
      availableUsd: 1000,
    };

    /** Optimism perp with no margin of its own, at a 0.001 ETH step (so the audit's $999.90 move is plannable). */
    const opVenue = (): RouteVenue => ({ ...ethVenue('perp-op', 'evm:10', 0), sizeStepBase: 0.001 });

    it('$1,000 free on the source, $1.11 fee: never a move whose amount + fee exceeds $1,000 (was 999.90 + 1.11)', () => {
      // 3.333 ETH on Optimism needs 3.333 × $250 × 1.2 = $999.90 moved in: with the fee, $1,001.01.
      const vs = [opVenue()];
      const plan = routeDelta(ethReq(3.333), vs, { bridge: auditBridge, collateralSources: [arbSource] });
      expect(() => HedgePlan.parse({ ...plan, reason: 'r', urgency: 'normal' })).not.toThrow();
      expectFundable(plan, vs, [arbSource]);
      expect(plan.transfers).toHaveLength(1);
      const t = plan.transfers[0];
      expect(t).toMatchObject({ fromVenue: 'perp-arb', toVenue: 'perp-op', feeUsd: 1.11 });
      expect(Number(t?.amount) + (t?.feeUsd ?? 0)).toBeLessThanOrEqual(1000);
      // The most $998.89 funds at a 0.001 step: 3.329 ETH ($998.70 moved); the rest is shortfall, not a
      // move the bridge refuses.
      expect(plan.legs.map((l) => [l.venue, l.sizeBase])).toEqual([['perp-op', '3.329']]);
      expect(t?.amount).toBe('998.7');
      expect(plan.shortfallBase).toBeCloseTo(0.004, 9);
      // The fee is counted once in the leg's cost, as before.
      expect(plan.legCosts[0]?.bridgeFeeUsd).toBe(1.11);
      expect(plan.totalCostUsd).toBeCloseTo(plan.legCosts[0]?.totalCostUsd ?? Number.NaN, 9);
    });

    it('a source that holds the move plus its fee funds the whole leg', () => {
      const vs = [opVenue()];
      const sources = [{ ...arbSource, availableUsd: 1001.01 }];
      const plan = routeDelta(ethReq(3.333), vs, { bridge: auditBridge, collateralSources: sources });
      expectFundable(plan, vs, sources);
      expect(plan.transfers.map((t) => t.amount)).toEqual(['999.9']);
      expect(plan.shortfallBase).toBeLessThanOrEqual(1e-9);
    });

    it.each([
      // [free on the source venue, its own leg's size (ETH), request, planned Optimism size, move]
      // $1,000: own 2 ETH ($500 margin) leaves $500 − $1.11 → 1.66 ETH on Optimism ($498 moved).
      [1000, 2, 2 + 3.333, 1.66, '498'],
      // $600: own 2 ETH leaves $100 − $1.11 → 0.32 ETH ($96 moved).
      [600, 2, 2 + 3.333, 0.32, '96'],
      // $501: own 2 ETH leaves $1, less than the fee: no move at all.
      [501, 2, 2 + 3.333, 0, undefined],
    ])(
      'source venue with $%d free keeps its own %d ETH leg’s margin, then pays move + fee from the rest',
      (freeUsd, ownBase, request, opBase, move) => {
        // The source venue's own leg is capped at ownBase; Optimism (no margin of its own) needs the move.
        const vs = [
          { ...ethVenue('perp-arb', 'evm:42161', freeUsd), maxOrderSizeBase: ownBase },
          ethVenue('perp-op', 'evm:10', 0),
        ];
        const sources = [{ ...arbSource, availableUsd: freeUsd }];
        const plan = routeDelta(ethReq(request), vs, { bridge: auditBridge, collateralSources: sources });
        expectFundable(plan, vs, sources);
        const sizes = Object.fromEntries(plan.legs.map((l) => [l.venue, Number(l.sizeBase)]));
        expect(sizes['perp-arb']).toBe(ownBase);
        expect(sizes['perp-op'] ?? 0).toBeCloseTo(opBase, 9);
        expect(plan.transfers[0]?.amount).toBe(move);
      },
    );

    it('never plans moves whose amounts and fees together exceed what their sources hold (property)', () => {
      const spec = fc.record({
        freeUsd: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 8_000 })),
        maxOrderBase: fc.integer({ min: 1, max: 20 }),
        positionBase: fc.oneof(fc.constant(0), fc.integer({ min: -10, max: 10 })),
        chain: fc.integer({ min: 1, max: 3 }),
      });
      fc.assert(
        fc.property(
          fc.array(spec, { minLength: 1, maxLength: 4 }),
          fc.integer({ min: 1, max: 4000 }).map((x) => x / 100),
          fc.boolean(),
          // Bridge fee per route, USD: up to a large share of small sources.
          fc.integer({ min: 0, max: 5000 }).map((x) => x / 100),
          fc.integer({ min: 0, max: 100 }).map((x) => x / 100),
          (specs, size, buy, crossFeeUsd, sameFeeUsd) => {
            const { vs, sources } = randomVenues(specs, buy, (x) => `evm:${x.chain}`);
            const feeBridge: BridgeCostModel = (from, to) => ({
              feeUsd: from === to ? sameFeeUsd : crossFeeUsd,
              latencyMs: from === to ? 1_000 : 60_000,
            });
            const plan = routeDelta(ethReq(buy ? size : -size), vs, {
              bridge: feeBridge,
              collateralSources: sources,
            });
            expectFundable(plan, vs, sources);
            // Each move's fee is counted once, on the leg it funds.
            const feesUsd = plan.transfers.reduce((s, t) => s + t.feeUsd, 0);
            const legFeesUsd = plan.legCosts.reduce((s, l) => s + l.bridgeFeeUsd, 0);
            expect(legFeesUsd).toBeCloseTo(feesUsd, 9);
          },
        ),
        { numRuns: 300, seed: 23 },
      );
    });

    it('a reservation counts a move’s fee against its source for the next plan of the round', () => {
      const vs = [ethVenue('perp-op', 'evm:10', 0)];
      const reservation = new CollateralReservation();
      const plan = routeDelta(ethReq(1), vs, { bridge: auditBridge, collateralSources: [arbSource] });
      expect(plan.transfers.map((t) => t.amount)).toEqual(['300']);
      reservation.commit(plan, vs);
      // $1,000 − $300 moved − $1.11 fee.
      expect(reservation.sources([arbSource]).map((s) => s.availableUsd)).toEqual([698.89]);
      expect(reservation.freeUsd('perp-arb', 1000)).toBeCloseTo(698.89, 9);
    });
  });
});

/**
 * Rounding a split to the venues' size steps: each leg rounded to its nearest step over-hedged, e.g. three
 * legs of 6.666… ETH at a 0.01 step went out as 3 × 6.67 = 20.01 ETH for 20, and the clamped shortfall hid it.
 */
describe('routeDelta: legs rounded to size steps never over-hedge', () => {
  const b: Book = { feeBps: 4, spreadBps: 1, impactPerUnit2: 2, gasUsd: 0.2 };
  const legSum = (plan: ReturnType<typeof routeDelta>) =>
    plan.legs.reduce((s, l) => s + Number(l.sizeBase), 0);

  it('20 ETH over three venues with a 0.01 step: legs sum to at most 20, within one step of it', () => {
    const size = 20;
    const vs = ['evm:1', 'evm:10', 'evm:42161'].map((chain, i) =>
      venue(`perp-${i}`, chain, size, 'buy', b, {
        instrument: 'ETH-USD:PERP',
        minSizeBase: 0.01,
        sizeStepBase: 0.01,
      }),
    );
    const plan = routeDelta(req(size, { underlying: 'ETH' }), vs, { bridge });
    expect(plan.legs).toHaveLength(3);
    const sum = legSum(plan);
    expect(sum).toBeLessThanOrEqual(size + 1e-9);
    expect(sum).toBeGreaterThanOrEqual(size - 0.01 - 1e-9);
    expect(plan.legs.map((l) => l.sizeBase).sort()).toEqual(['6.66', '6.67', '6.67']);
    expect(plan.plannedDeltaBase).toBeCloseTo(sum, 9);
    expect(plan.shortfallBase).toBeCloseTo(size - sum, 9);
    expect(plan.notes.join(' ')).not.toMatch(/over-hedged/);
  });

  it('refuses a non-finite delta or a reference price that is not positive, by name; a zero delta plans nothing', () => {
    const v = venue(
      'perp-arb',
      'evm:42161',
      1,
      'buy',
      { feeBps: 5, gasUsd: 0.1 },
      { freeCollateralUsd: 1_000 },
    );
    // $1,000 free at 10% margin and $60,000 funds 0.166 BTC: a reference price of 0 (or NaN) would turn
    // the margin check off and plan the whole 1 BTC the venue will refuse for margin.
    for (const referencePriceUsd of [0, -1, Number.NaN, Number.POSITIVE_INFINITY])
      expect(() => routeDelta(req(1, { referencePriceUsd }), [v], { bridge })).toThrow(
        /referencePriceUsd must be a positive finite number/,
      );
    for (const deltaBase of [Number.NaN, Number.POSITIVE_INFINITY])
      expect(() => routeDelta(req(deltaBase), [v], { bridge })).toThrow(/deltaBase/);
    // Nothing to hedge is no order, not a sell at the venue minimum.
    const sell = venue('perp-arb', 'evm:42161', 0.001, 'sell', { feeBps: 5, gasUsd: 0.1 });
    const none = routeDelta(req(0), [sell], { bridge });
    expect(none.legs).toEqual([]);
    expect(none).toMatchObject({ plannedDeltaBase: 0, shortfallBase: 0, totalCostUsd: 0 });
  });

  it('reports the over-hedge of a lone leg raised to its venue minimum instead of hiding it', () => {
    const plan = loneMinimumPlan(-0.004);
    expect(plan.legs.map((l) => l.sizeBase)).toEqual(['0.01']);
    expect(plan.plannedDeltaBase).toBeCloseTo(-0.01, 12);
    expect(plan.shortfallBase).toBe(0);
    expect(plan.notes.join(' ')).toMatch(/over-hedged by 0\.006: perp-arb takes no less than 0\.01/);
  });

  it('legs sum to at most the request (bar a lone leg at its venue minimum), and within a step per leg of it when caps allow (property)', () => {
    const spec = fc.record({
      feeBps: fc.double({ min: 0, max: 10, noNaN: true }),
      spreadBps: fc.double({ min: 0, max: 5, noNaN: true }),
      impactPerUnit2: fc.double({ min: 0, max: 200, noNaN: true }),
      gasUsd: fc.double({ min: 0, max: 20, noNaN: true }),
      step: fc.constantFrom(0.001, 0.01, 0.1, 0.25, 1),
      min: fc.constantFrom(0, 0.001, 0.01, 0.3, 2),
      maxOrder: fc.option(fc.constantFrom(0.5, 3, 7.5, 20), { nil: undefined }),
    });
    fc.assert(
      fc.property(
        fc.array(spec, { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 1, max: 50_000 }).map((x) => x / 1000),
        fc.boolean(),
        (specs, size, buy) => {
          const side: Side = buy ? 'buy' : 'sell';
          const vs = specs.map((x, i) =>
            venue(
              `v${i}`,
              `evm:${i + 1}`,
              size,
              side,
              {
                feeBps: x.feeBps,
                spreadBps: x.spreadBps,
                impactPerUnit2: x.impactPerUnit2,
                gasUsd: x.gasUsd,
              },
              {
                minSizeBase: x.min,
                sizeStepBase: x.step,
                ...(x.maxOrder !== undefined && { maxOrderSizeBase: x.maxOrder }),
              },
            ),
          );
          const plan = routeDelta(req(buy ? size : -size), vs, { bridge });
          const sum = legSum(plan);
          expect(Math.abs(plan.plannedDeltaBase)).toBeCloseTo(sum, 9);
          expect(Math.sign(plan.plannedDeltaBase)).toBe(plan.legs.length > 0 ? (buy ? 1 : -1) : 0);
          if (sum > size + 1e-9) {
            // Only a lone leg its venue's minimum order (or step) raised above the request, said so.
            expect(plan.legs).toHaveLength(1);
            const v = vs.find((x) => x.venue === plan.legs[0]?.venue) as RouteVenue;
            expect(sum).toBeCloseTo(Math.max(v.minSizeBase, v.sizeStepBase), 12);
            expect(plan.shortfallBase).toBe(0);
            expect(plan.notes.join(' ')).toMatch(/over-hedged by/);
            return;
          }
          expect(plan.shortfallBase).toBeCloseTo(size - sum, 9);
          if (specs.every((x) => x.maxOrder === undefined) && specs.some((x) => x.min <= size)) {
            const largestStep = Math.max(...specs.map((x) => x.step));
            expect(plan.legs.length).toBeGreaterThan(0);
            expect(sum).toBeGreaterThanOrEqual(size - plan.legs.length * largestStep - 1e-9);
          }
        },
      ),
      { numRuns: 400, seed: 7 },
    );
  });
});

describe('planDecision', () => {
  const decision: HedgeDecision = {
    id: 'dec_abc123',
    underlying: 'BTC',
    snapshotSeq: 9,
    asOfMs: NOW,
    policy: 'band',
    action: 'hedge',
    code: 'hedge',
    urgency: 'normal',
    spotUsd: S,
    bookDelta: 0,
    effectiveDelta: 1.5,
    targetDelta: 0,
    driftDelta: 1.5,
    bandHalfWidth: 0.5,
    tradeDeltaBase: -1.5,
    side: 'sell',
    tradeNotionalUsd: 90_000,
    vegaTrades: [
      {
        venue: 'lyra-arb',
        chain: 'evm:42161',
        instrument: 'BTC-USD:OPT:20260327:60000:C',
        side: 'buy',
        sizeBase: 3,
        priceUsd: 5000,
        vegaPerVolPoint: 300,
        delta: 1.5,
        costUsd: 150,
      },
    ],
    reason: 'BTC: vega breach.',
  };

  it('puts vega legs first, then routed delta legs, with distinct deterministic ids', () => {
    const inputs = {
      venues: [venue('perp-arb', 'evm:42161', 1.5, 'sell', { feeBps: 5, gasUsd: 0.1 })],
      options: { bridge },
    };
    const plan = planDecision(decision, inputs);
    if (!plan) throw new Error('expected a plan');
    expect(() => HedgePlan.parse(JSON.parse(JSON.stringify(plan)))).not.toThrow();
    expect(plan.legs.map((l) => [l.instrument, l.side, l.sizeBase])).toEqual([
      ['BTC-USD:OPT:20260327:60000:C', 'buy', '3'],
      ['BTC-USD:PERP', 'sell', '1.5'],
    ]);
    expect(new Set(plan.legs.map((l) => l.id)).size).toBe(2);
    expect(plan.legs[0]?.limitPriceUsd).toBe('5025');
    expect(plan.totalCostUsd).toBeCloseTo(150 + 1.5 * S * 0.0005 + 0.1, 9);
    expect(planDecision(decision, inputs)).toEqual(plan);
    expect(planDecision({ ...decision, action: 'hold' }, inputs)).toBeNull();
  });
});

describe('planDecision: vega-only decisions', () => {
  const vegaOnly: HedgeDecision = {
    id: 'dec_vega01',
    underlying: 'BTC',
    snapshotSeq: 4,
    asOfMs: NOW,
    policy: 'interval',
    action: 'hedge',
    code: 'vega-only',
    urgency: 'normal',
    spotUsd: S,
    bookDelta: 0.1,
    effectiveDelta: 0.1,
    targetDelta: 0,
    driftDelta: 0.1,
    bandHalfWidth: 0.5,
    tradeDeltaBase: 0,
    side: null,
    tradeNotionalUsd: 0,
    vegaTrades: [
      {
        venue: 'lyra-arb',
        chain: 'evm:42161',
        instrument: 'BTC-USD:OPT:20260327:60000:C',
        side: 'buy',
        sizeBase: 2,
        priceUsd: 5000,
        vegaPerVolPoint: 200,
        delta: 1.1,
        costUsd: 40,
      },
      {
        venue: 'lyra-op',
        chain: 'evm:10',
        instrument: 'BTC-USD:OPT:20260327:55000:P',
        side: 'buy',
        sizeBase: 1,
        priceUsd: 3000,
        vegaPerVolPoint: 90,
        delta: -0.4,
        costUsd: 20,
      },
    ],
    reason: 'BTC: vega breach; delta inside its band.',
  };

  it('returns a plan of the vega legs alone when their delta keeps the book inside its band', () => {
    const plan = planDecision(vegaOnly, { venues: [], options: { bridge } });
    if (!plan) throw new Error('a vega-only decision must give a plan');
    expect(() => HedgePlan.parse(JSON.parse(JSON.stringify(plan)))).not.toThrow();
    expect(plan.legs.map((l) => [l.venue, l.instrument, l.side, l.sizeBase])).toEqual([
      ['lyra-arb', 'BTC-USD:OPT:20260327:60000:C', 'buy', '2'],
      ['lyra-op', 'BTC-USD:OPT:20260327:55000:P', 'buy', '1'],
    ]);
    expect(plan.requestedDeltaBase).toBe(0);
    expect(plan.totalCostUsd).toBe(60);
    expect(plan.notes.join(' ')).toMatch(/vega legs only/);
  });

  it('plans a real vega-only decision from HedgeStrategy end to end', () => {
    const clock = new ManualClock(NOW);
    const strategy = new HedgeStrategy({
      clock,
      defaultPolicy: {
        kind: 'band',
        bandDelta: 0.5,
        targetDelta: 0,
        urgencyMultiple: 3,
        minTradeUsd: 100,
        vega: { enabled: true, bandPerVolPoint: 50, targetPerVolPoint: 0 },
      },
    });
    const zero = {
      delta: 0,
      deltaUsd: 0,
      netDeltaCoin: 0,
      gamma: 0,
      gamma1PctUsd: 0,
      vegaPerVolPoint: -400,
      thetaPerDay: 0,
      rhoPer1Pct: 0,
      vannaPerVolPoint: 0,
      valueUsd: 0,
      fundingUsdPerHour: 0,
    };
    const d = strategy.decideUnderlying(
      {
        ...zero,
        underlying: 'BTC',
        spotUsd: S,
        volDecimal: 0.6,
        rateDecimal: 0,
        gammaWeightedTenorYears: 0.2,
        positionCount: 3,
        vegaByExpiry: {},
        vegaByBucket: {},
        byVenue: {},
        byChain: {},
      },
      7,
      {
        vegaCandidates: [
          {
            venue: 'lyra-arb',
            chain: 'evm:42161',
            instrument: 'BTC-USD:OPT:20260327:60000:C',
            vegaPerVolPoint: 100,
            delta: 0.05,
            priceUsd: 5000,
            costPerUnitUsd: 30,
            maxSizeBase: 10,
          },
        ],
      },
    );
    expect(d).toMatchObject({ action: 'hedge', code: 'vega-only', tradeDeltaBase: 0, side: null });
    const plan = planDecision(d, { venues: [], options: { bridge } });
    expect(plan?.legs.map((l) => [l.instrument, l.side, l.sizeBase])).toEqual([
      ['BTC-USD:OPT:20260327:60000:C', 'buy', '4'],
    ]);
  });

  it('hedges the delta the vega legs add when the policy held the delta hedge back outside the band', () => {
    // Interval not due: the book drifts 0.9 outside a 0.5 band, so the legs' +0.7 delta is sold with them.
    const held = { ...vegaOnly, bookDelta: 0.2, effectiveDelta: 0.9, driftDelta: 0.9 };
    const plan = planDecision(held, {
      venues: [venue('perp-arb', 'evm:42161', 0.7, 'sell', { feeBps: 5, gasUsd: 0.1 })],
      options: { bridge },
    });
    if (!plan) throw new Error('expected a plan');
    expect(plan.legs.map((l) => [l.instrument, l.side, l.sizeBase])).toEqual([
      ['BTC-USD:OPT:20260327:60000:C', 'buy', '2'],
      ['BTC-USD:OPT:20260327:55000:P', 'buy', '1'],
      ['BTC-USD:PERP', 'sell', '0.7'],
    ]);
    expect(plan.requestedDeltaBase).toBeCloseTo(-0.7, 12);
    expect(plan.plannedDeltaBase).toBeCloseTo(-0.7, 12);
    expect(new Set(plan.legs.map((l) => l.id)).size).toBe(3);
    expect(plan.notes.join(' ')).toMatch(/vega legs add 0\.7 delta outside the band/);
  });
});

/**
 * Regression: option (vega) legs' premium was not counted against their venue's free collateral. A plan
 * bought options for $3,000 on a venue holding $5,000 and sized a perp leg needing $4,000 of margin there
 * too; the venue rejected an order and the planner retried the same plan.
 */
describe('planDecision: option legs are paid from their venue collateral before the delta legs', () => {
  const CALL = 'BTC-USD:OPT:20260327:60000:C';
  const PUT = 'BTC-USD:OPT:20260327:55000:P';
  /** Buys 3 calls at $990 + $10 fee = $1,000 each ($3,000), +0.5 delta each. */
  const buyCalls = (over: Partial<OptionTrade> = {}): OptionTrade => ({
    venue: 'opt-x',
    chain: 'evm:42161',
    instrument: CALL,
    side: 'buy',
    sizeBase: 3,
    priceUsd: 990,
    vegaPerVolPoint: 150,
    delta: 1.5,
    costUsd: 60,
    ...over,
  });
  const callMarket: OptionMarket = { minSizeBase: 0.1, sizeStepBase: 0.1, feeUsdPerUnit: 10 };
  /** A decision trading `tradeDeltaBase` with its option trades, which add `vegaDeltaBase` to the book's. */
  const decide = (tradeDeltaBase: number, vegaTrades: OptionTrade[]): HedgeDecision => {
    const vegaDeltaBase = vegaTrades.reduce((s, t) => s + t.delta, 0);
    return {
      id: 'dec_optcash1',
      underlying: 'BTC',
      snapshotSeq: 3,
      asOfMs: NOW,
      policy: 'band',
      action: 'hedge',
      code: tradeDeltaBase === 0 ? 'vega-only' : 'hedge',
      urgency: 'normal',
      spotUsd: S,
      bookDelta: -tradeDeltaBase - vegaDeltaBase,
      effectiveDelta: -tradeDeltaBase,
      targetDelta: 0,
      driftDelta: -tradeDeltaBase,
      bandHalfWidth: 0.1,
      tradeDeltaBase,
      side: tradeDeltaBase > 0 ? 'buy' : tradeDeltaBase < 0 ? 'sell' : null,
      tradeNotionalUsd: Math.abs(tradeDeltaBase) * S,
      vegaTrades,
      reason: 'BTC: vega and delta breach.',
    };
  };
  /** opt-x also lists a perp, with $5,000 free; 1/6 margin: 0.4 BTC sold needs $4,000 of it. */
  const X_FREE_USD = 5000;
  const perpX = (size: number, extra: Partial<RouteVenue> = {}) =>
    venue(
      'opt-x',
      'evm:42161',
      size,
      'sell',
      { feeBps: 5, gasUsd: 0.1 },
      {
        freeCollateralUsd: X_FREE_USD,
        marginFraction: 1 / 6,
        ...extra,
      },
    );
  // No slippage: the limit is the quoted price, so a call takes exactly $1,000.
  const options = (over: Partial<RouteOptions> = {}): RouteOptions => ({
    bridge,
    maxSlippageBps: 0,
    ...over,
  });
  const sizesOf = (plan: HedgePlan) => plan.legs.map((l) => [l.venue, l.instrument, l.side, l.sizeBase]);

  /**
   * Every venue: delta margin + what the option legs take ≤ free + moved in − moved out, with the option
   * legs' take worked out here from their sizes, limits and `markets` (a buy: limit + fee; a sell: fee +
   * short collateral), and the plan's `optionCollateralUsd` stating the same. Free collateral from the
   * delta venues, else from `freeUsdOf` (option venues, sources).
   */
  function expectPaid(
    plan: HedgePlan,
    vs: readonly RouteVenue[],
    freeUsdOf: Record<string, number>,
    markets: Record<string, OptionMarket>,
  ) {
    const optionUsd = new Map<string, number>();
    for (const l of plan.legs) {
      if (parseInstrumentId(l.instrument).kind !== 'option') continue;
      const m = markets[`${l.venue}|${l.instrument}`];
      if (!m) throw new Error(`no market for ${l.venue}|${l.instrument}`);
      const feeUsd = m.feeUsdPerUnit ?? 0;
      const perUnitUsd =
        l.side === 'buy' ? Number(l.limitPriceUsd) + feeUsd : feeUsd + (m.shortCollateralUsdPerUnit ?? 0);
      optionUsd.set(l.venue, (optionUsd.get(l.venue) ?? 0) + Number(l.sizeBase) * perUnitUsd);
    }
    const use = collateralUse({ legs: plan.legs, transfers: plan.transfers }, vs);
    for (const venue of new Set([...use.keys(), ...optionUsd.keys()])) {
      const { marginUsd = 0, movedInUsd = 0, movedOutUsd = 0 } = use.get(venue) ?? {};
      const takeUsd = optionUsd.get(venue) ?? 0;
      const freeUsd = vs.find((v) => v.venue === venue)?.freeCollateralUsd ?? freeUsdOf[venue] ?? 0;
      expect(
        marginUsd + takeUsd,
        `${venue}: margin ${marginUsd} + options ${takeUsd} > free ${freeUsd} + in ${movedInUsd} − out ${movedOutUsd}`,
      ).toBeLessThanOrEqual(freeUsd + movedInUsd - movedOutUsd + 1e-6);
    }
    for (const [venue, usd] of optionUsd) expect(plan.optionCollateralUsd?.[venue]).toBeCloseTo(usd, 6);
  }

  it('$5,000 free, $3,000 of premium and a delta leg needing $4,000 on one venue: the delta leg gets the $2,000 left', () => {
    const vs = [perpX(0.4)];
    const plan = planDecision(decide(-0.4, [buyCalls()]), {
      venues: vs,
      options: options(),
      optionMarkets: { [`opt-x|${CALL}`]: callMarket },
    });
    if (!plan) throw new Error('expected a plan');
    expect(() => HedgePlan.parse(JSON.parse(JSON.stringify(plan)))).not.toThrow();
    expect(sizesOf(plan)).toEqual([
      ['opt-x', CALL, 'buy', '3'],
      ['opt-x', 'BTC-USD:PERP', 'sell', '0.2'],
    ]);
    expect(plan.optionCollateralUsd).toEqual({ 'opt-x': 3000 });
    expect(plan.shortfallBase).toBeCloseTo(0.2, 9);
    expectPaid(plan, vs, {}, { [`opt-x|${CALL}`]: callMarket });
    const notes = plan.notes.join(' ');
    expect(notes).toMatch(/opt-x: option legs take \$3000\.00 of its \$5000\.00 free collateral/);
    expect(notes).toMatch(/shortfall 0\.2: caps, liquidity or collateral/);
  });

  it('or funds the rest by a move: $2,800 (the $4,000 margin and buffer less the $2,000 left) from another venue', () => {
    const vs = [perpX(0.4)];
    const sources: CollateralSource[] = [
      { venue: 'opt-x', chain: 'evm:42161', asset: 'USDC', availableUsd: X_FREE_USD },
      { venue: 'vault-z', chain: 'evm:10', asset: 'USDC', availableUsd: 10_000 },
    ];
    const plan = planDecision(decide(-0.4, [buyCalls()]), {
      venues: vs,
      options: options({ collateralSources: sources }),
      optionMarkets: { [`opt-x|${CALL}`]: callMarket },
    });
    if (!plan) throw new Error('expected a plan');
    expect(sizesOf(plan)).toEqual([
      ['opt-x', CALL, 'buy', '3'],
      ['opt-x', 'BTC-USD:PERP', 'sell', '0.4'],
    ]);
    expect(plan.transfers.map((t) => [t.fromVenue, t.toVenue, t.amount])).toEqual([
      ['vault-z', 'opt-x', '2800'],
    ]);
    expect(plan.legs[1]?.dependsOn).toEqual([plan.transfers[0]?.id]);
    expect(plan.shortfallBase).toBeLessThanOrEqual(1e-9);
    expectPaid(plan, vs, { 'vault-z': 10_000 }, { [`opt-x|${CALL}`]: callMarket });
  });

  it('cuts an option leg its venue cannot pay for to the whole steps it can, notes it, and routes the delta it no longer adds', () => {
    const vs = [venue('perp-arb', 'evm:42161', 1.5, 'sell', { feeBps: 5, gasUsd: 0.1 })];
    const optionFreeUsd = { 'opt-x': 2550 };
    const plan = planDecision(decide(-1.5, [buyCalls()]), {
      venues: vs,
      options: options(),
      optionFreeCollateralUsd: optionFreeUsd,
      optionMarkets: { [`opt-x|${CALL}`]: callMarket },
    });
    if (!plan) throw new Error('expected a plan');
    // $2,550 pays 2.55 calls: 2.5 at the 0.1 step. The 0.5 calls cut would have added 0.25 delta.
    expect(sizesOf(plan)).toEqual([
      ['opt-x', CALL, 'buy', '2.5'],
      ['perp-arb', 'BTC-USD:PERP', 'sell', '1.25'],
    ]);
    expect(plan.optionCollateralUsd).toEqual({ 'opt-x': 2500 });
    expect(plan.legCosts[0]).toMatchObject({ sizeBase: 2.5, totalCostUsd: 50 });
    expect(plan.requestedDeltaBase).toBeCloseTo(-1.25, 12);
    expect(plan.plannedDeltaBase).toBeCloseTo(-1.25, 12);
    expectPaid(plan, vs, optionFreeUsd, { [`opt-x|${CALL}`]: callMarket });
    const notes = plan.notes.join(' ');
    expect(notes).toMatch(
      /opt-x: buy 3 BTC-USD:OPT:20260327:60000:C takes \$3000\.00 .*\$2550\.00 free there: cut to 2\.5/,
    );
    expect(notes).toMatch(/delta routed moved from -1\.5 to -1\.25/);
  });

  it('refuses a free collateral that is not a finite number, naming the venue, rather than letting the leg through unchecked', () => {
    const vs = [venue('perp-arb', 'evm:42161', 1.5, 'sell', { feeBps: 5, gasUsd: 0.1 })];
    expect(() =>
      planDecision(decide(-1.5, [buyCalls()]), {
        venues: vs,
        options: options(),
        optionFreeCollateralUsd: { 'opt-x': Number.NaN },
        optionMarkets: { [`opt-x|${CALL}`]: callMarket },
      }),
    ).toThrow(/opt-x free collateral/);
  });

  it('drops an option leg whose venue cannot pay for its minimum order, and routes the book’s own delta', () => {
    const vs = [venue('perp-arb', 'evm:42161', 2, 'sell', { feeBps: 5, gasUsd: 0.1 })];
    const plan = planDecision(decide(-2, [buyCalls()]), {
      venues: vs,
      options: options(),
      optionFreeCollateralUsd: { 'opt-x': 80 },
      optionMarkets: { [`opt-x|${CALL}`]: callMarket },
    });
    if (!plan) throw new Error('expected a plan');
    expect(sizesOf(plan)).toEqual([['perp-arb', 'BTC-USD:PERP', 'sell', '0.5']]);
    expect(plan.optionCollateralUsd).toBeUndefined();
    expect(plan.notes.join(' ')).toMatch(
      /\$80\.00 free there: dropped, it pays less than the venue minimum 0\.1/,
    );
  });

  it('leaves a vega-only plan as it was when its venues hold enough; a sell takes its fee and short collateral, not its premium', () => {
    const trades = [
      buyCalls(),
      buyCalls({ venue: 'opt-y', instrument: PUT, side: 'sell', sizeBase: 1, priceUsd: 800, delta: 0.4 }),
    ];
    // Inside the band: the option legs go alone.
    const inside = { ...decide(0, trades), bookDelta: 0, effectiveDelta: 0.05, driftDelta: 0.05 };
    const markets = {
      [`opt-x|${CALL}`]: callMarket,
      [`opt-y|${PUT}`]: { ...callMarket, shortCollateralUsdPerUnit: 500 },
    };
    const unchecked = planDecision(inside, { venues: [], options: options() });
    // Exactly enough on both: $3,000 for the calls; $10 fee + $500 locked for the put sold.
    const plan = planDecision(inside, {
      venues: [],
      options: options(),
      optionFreeCollateralUsd: { 'opt-x': 3000, 'opt-y': 510 },
      optionMarkets: markets,
    });
    if (!plan || !unchecked) throw new Error('expected plans');
    expect(plan.legs).toEqual(unchecked.legs);
    expect(sizesOf(plan)).toEqual([
      ['opt-x', CALL, 'buy', '3'],
      ['opt-y', PUT, 'sell', '1'],
    ]);
    expect(plan.totalCostUsd).toBe(unchecked.totalCostUsd);
    expect(plan.optionCollateralUsd).toEqual({ 'opt-x': 3000, 'opt-y': 510 });
    expectPaid(plan, [], { 'opt-x': 3000, 'opt-y': 510 }, markets);
    expect(plan.notes).toEqual(['vega legs only: their delta keeps the book inside its delta band']);
  });

  it('a reservation carries the option legs’ take to the next plan of the round', () => {
    const reservation = new CollateralReservation();
    const first = planDecision(
      { ...decide(0, [buyCalls()]), bookDelta: -1.5, effectiveDelta: 0, driftDelta: 0 },
      {
        venues: [],
        options: options(),
        optionFreeCollateralUsd: { 'opt-x': reservation.freeUsd('opt-x', X_FREE_USD) },
        optionMarkets: { [`opt-x|${CALL}`]: callMarket },
      },
    );
    if (!first) throw new Error('expected a plan');
    reservation.commit(first, []);
    expect(reservation.freeUsd('opt-x', X_FREE_USD)).toBeCloseTo(2000, 9);
    // The next plan's delta leg on opt-x sees the $2,000 left: 0.2 BTC at $10,000 margin per BTC.
    const seen = [perpX(0.4, { freeCollateralUsd: reservation.freeUsd('opt-x', X_FREE_USD) })];
    const second = planDecision(
      { ...decide(-0.4, []), id: 'dec_optcash2' },
      { venues: seen, options: options() },
    );
    expect(second?.legs.map((l) => l.sizeBase)).toEqual(['0.2']);
    // A venue a move funds commits all it had: the option legs and the delta leg share it.
    const funded = new CollateralReservation();
    const vs = [perpX(0.4)];
    const moved = planDecision(decide(-0.4, [buyCalls()]), {
      venues: vs,
      options: options({
        collateralSources: [{ venue: 'vault-z', chain: 'evm:10', asset: 'USDC', availableUsd: 10_000 }],
      }),
      optionMarkets: { [`opt-x|${CALL}`]: callMarket },
    });
    if (!moved) throw new Error('expected a plan');
    expect(moved.transfers).toHaveLength(1);
    funded.commit(moved, vs);
    expect(funded.freeUsd('opt-x', X_FREE_USD)).toBe(0);
  });

  it('never plans option legs and delta legs on a venue beyond its collateral and what moves in (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 8000 }),
        fc.integer({ min: 1, max: 60 }).map((x) => x / 10),
        fc.integer({ min: 1, max: 80 }).map((x) => x / 100),
        // opt-x's largest order: under the request, perp-y (no collateral of its own) takes the rest.
        fc.integer({ min: 1, max: 80 }).map((x) => x / 100),
        fc.boolean(),
        fc.boolean(),
        (freeUsd, callsBase, deltaBase, maxOrderBase, withVault, sell) => {
          const vs = [
            perpX(deltaBase, { freeCollateralUsd: freeUsd, maxOrderSizeBase: maxOrderBase }),
            venue(
              'perp-y',
              'evm:8453',
              deltaBase,
              'sell',
              { feeBps: 6, gasUsd: 0.1 },
              { freeCollateralUsd: 0 },
            ),
          ];
          const freeUsdOf = { 'opt-x': freeUsd, 'vault-z': withVault ? 3000 : 0 };
          const sources: CollateralSource[] = Object.entries(freeUsdOf)
            .filter(([, usd]) => usd > 0)
            .map(([v, usd]) => ({
              venue: v,
              chain: v === 'opt-x' ? 'evm:42161' : 'evm:10',
              asset: 'USDC',
              availableUsd: usd,
            }));
          const trade = buyCalls({
            sizeBase: callsBase,
            delta: 0.5 * callsBase,
            ...(sell ? { side: 'sell' } : {}),
          });
          const markets = { [`opt-x|${CALL}`]: { ...callMarket, shortCollateralUsdPerUnit: 300 } };
          const plan = planDecision(decide(-deltaBase, [trade]), {
            venues: vs,
            options: options({ collateralSources: sources }),
            optionMarkets: markets,
          });
          if (!plan) throw new Error('expected a plan');
          expectPaid(plan, vs, freeUsdOf, markets);
          expect(plan.optionCollateralUsd?.['opt-x'] ?? 0).toBeLessThanOrEqual(freeUsd + 1e-6);
        },
      ),
      { numRuns: 300, seed: 7 },
    );
  });
});

/**
 * Regression (found fixing the backtester's own router): the live router ranked plans by all-in cost plus a
 * flat 5 bps on opened size, so with a long on one venue and a cheaper venue to trade now it sold on the
 * cheap venue and left a long against a short: a pair with no net delta that pays funding on both legs,
 * ties up margin on both and must be closed twice. Opening against an opposite position left elsewhere now
 * pays the estimated later close of that pair in the ranking.
 */
describe('routeDelta: reduces opposite positions on other venues before opening (pair close charge)', () => {
  const P = 100_000;
  /** A venue's cost in USD per underlying unit (fee, half spread), impact USD per unit², gas per order. */
  interface Costs {
    id: string;
    feeUsdPerUnit: number;
    spreadUsdPerUnit?: number;
    impactUsdPerUnit2?: number;
    gasUsd: number;
    positionBase: number;
    maxOrderSizeBase?: number | undefined;
  }
  /** What the venue's quotes state for `n` units: the test's own cost model, also used as the oracle. */
  const tradeUsd = (c: Costs, n: number) =>
    n <= 0
      ? 0
      : n * (c.feeUsdPerUnit + (c.spreadUsdPerUnit ?? 0)) + (c.impactUsdPerUnit2 ?? 0) * n * n + c.gasUsd;
  function costVenue(c: Costs, side: Side, size: number): RouteVenue {
    const mk = (n: number): HedgeQuote => {
      const feeUsd = n * c.feeUsdPerUnit;
      const impactUsd = n * (c.spreadUsdPerUnit ?? 0) + (c.impactUsdPerUnit2 ?? 0) * n * n;
      return {
        venue: c.id,
        instrument: 'BTC-USD:PERP',
        side,
        requestedSizeBase: toDecimalString(n, 12),
        executableSizeBase: toDecimalString(n, 12),
        referencePriceUsd: P,
        expectedPriceUsd: P + (side === 'buy' ? 1 : -1) * (impactUsd / n),
        feeUsd,
        impactUsd,
        gasUsd: c.gasUsd,
        fundingCarryUsd: 0,
        totalCostUsd: feeUsd + impactUsd + c.gasUsd,
        expectedLatencyMs: 0,
        asOfMs: NOW,
      };
    };
    return {
      venue: c.id,
      chain: `evm:${c.id.length}`,
      instrument: 'BTC-USD:PERP',
      quotes: [mk(size), mk(size / 4)],
      minSizeBase: 0,
      sizeStepBase: 1e-9,
      positionBase: c.positionBase,
      freeCollateralUsd: 1e12,
      marginFraction: 0.1,
      ...(c.maxOrderSizeBase !== undefined && { maxOrderSizeBase: c.maxOrderSizeBase }),
    };
  }
  const route = (delta: number, cs: readonly Costs[], over: Partial<RouteOptions> = {}) =>
    routeDelta(
      req(delta, { referencePriceUsd: P }),
      cs.map((c) => costVenue(c, delta > 0 ? 'buy' : 'sell', Math.abs(delta))),
      { bridge, ...over },
    );
  const legsOf = (plan: ReturnType<typeof routeDelta>) =>
    plan.legs.map((l) => [l.venue, l.sizeBase, l.reduceOnly]);
  /** Venue A: fee only, $100 per unit all-in. Venue B: no fee, $50 of gas per order. */
  const A: Costs = { id: 'perp-a', feeUsdPerUnit: 100, gasUsd: 0, positionBase: 10 };
  const B: Costs = { id: 'perp-b', feeUsdPerUnit: 0, gasUsd: 50, positionBase: 0 };

  it('sells 10 on A holding +10 ($1,000) rather than opening −10 on B ($50 now, $1,100 with the later close of both)', () => {
    const plan = route(-10, [A, B]);
    // Before: B scored $50 + 10 × $50 (5 bps of $100,000) = $550 against $1,000 and opened −10 there.
    expect(legsOf(plan)).toEqual([['perp-a', '10', true]]);
    // The ranking charge is never in the reported costs.
    expect(plan.totalCostUsd).toBeCloseTo(1_000, 9);
    expect(plan.legCosts.map((l) => l.totalCostUsd)).toEqual([1_000]);
    expect(plan.notes.join(' ')).toMatch(/perp-a: reduces the existing 10 position \(reduce-only\)/);
    expect(plan.notes.join(' ')).not.toMatch(/opposite positions left/);
    // Without the long on A, B is cheaper by far and takes it all.
    expect(legsOf(route(-10, [{ ...A, positionBase: 0 }, B]))).toEqual([['perp-b', '10', false]]);
    // Venue order does not matter; a buy reduces a short the same way.
    expect(legsOf(route(-10, [B, A]))).toEqual([['perp-a', '10', true]]);
    expect(legsOf(route(10, [{ ...A, positionBase: -10 }, B]))).toEqual([['perp-a', '10', true]]);
  });

  it('opens elsewhere when A cannot be reduced now (no usable quote), or for what is left after reducing all A holds', () => {
    // A quotes only buys: its long cannot be sold now, so B opens the whole sale (no pair charge to pay).
    const aBuysOnly = { ...costVenue(A, 'buy', 10) };
    const unquoted = routeDelta(req(-10, { referencePriceUsd: P }), [aBuysOnly, costVenue(B, 'sell', 10)], {
      bridge,
    });
    expect(legsOf(unquoted)).toEqual([['perp-b', '10', false]]);
    expect(unquoted.notes.join(' ')).toMatch(/perp-a: no usable sell quote; skipped/);
    expect(unquoted.notes.join(' ')).not.toMatch(/opposite positions left/);
    // A holds +4 of the 10 to sell: reduce those 4 ($400) and open the other 6 on B ($50). Before, B took
    // all 10 ($50 + 10 × $50 = $550 against $400 + $50 + 6 × $50 = $750), leaving +4 on A against −10 on B.
    const partial = route(-10, [{ ...A, positionBase: 4 }, B]);
    expect(legsOf(partial)).toEqual([
      ['perp-b', '6', false],
      ['perp-a', '4', true],
    ]);
    expect(partial.totalCostUsd).toBeCloseTo(450, 9);
    // B alone costs less now; the note says why the split still wins (the pair B alone would leave: B
    // closes 4 for $50, A closes 4 for $400).
    expect(partial.notes.join(' ')).toMatch(
      /split over 2 venues: \$400\.00 more now than the best single venue \(perp-b\), which would leave opposite positions on perp-a to close later \(≈ \$450\.00\)/,
    );
    expect(partial.notes.join(' ')).not.toMatch(/opposite positions left/);
    // A fee on B makes no difference to which side reduces: only B can take what A does not hold.
    const bWithFee = route(-10, [
      { ...A, positionBase: 4 },
      { ...B, feeUsdPerUnit: 20 },
    ]);
    expect(legsOf(bWithFee)).toEqual([
      ['perp-b', '6', false],
      ['perp-a', '4', true],
    ]);
  });

  it('a sliver held on a cheap venue does not stand for the whole pair: the rest sits where closing it is dear (review finding)', () => {
    // Sell 10. A holds +1 and closes for $0.50 of gas; C holds +9 at $30 a unit and $50 of gas; B holds
    // nothing, $50 of gas. Opening 10 on B leaves +1 on A and +9 on C to close later ($0.50 + $320) on top
    // of B's own close ($50): $420.50 in all against $320.50 for reducing A and C now. Charging the pair as
    // if A could close all 10 for $0.50 made B look like $100.50 and won.
    const a: Costs = { id: 'perp-a', feeUsdPerUnit: 0, gasUsd: 0.5, positionBase: 1 };
    const c: Costs = { id: 'perp-c', feeUsdPerUnit: 30, gasUsd: 50, positionBase: 9 };
    const b: Costs = { id: 'perp-b', feeUsdPerUnit: 0, gasUsd: 50, positionBase: 0 };
    const plan = route(-10, [a, b, c]);
    expect(legsOf(plan).sort()).toEqual([
      ['perp-a', '1', true],
      ['perp-c', '9', true],
    ]);
    expect(plan.totalCostUsd).toBeCloseTo(320.5, 9);
  });

  it('reduces, then puts the rest on a venue whose minimum an even split of it would miss (review finding)', () => {
    // Sell 11. A holds +10 and takes at most 10.5 in one order, opening cheaply ($1 a unit); B costs $20 a
    // unit plus $50 of gas, minimum order 1. Splitting the last 1 at equal marginal cost gives A 0.5 and B
    // 0.5, under B's minimum: that dropped the subset, and B alone took all 11, opening −11 against A's +10.
    const a: Costs = { id: 'perp-a', feeUsdPerUnit: 1, gasUsd: 0, positionBase: 10, maxOrderSizeBase: 10.5 };
    const b: Costs = { id: 'perp-b', feeUsdPerUnit: 20, gasUsd: 50, positionBase: 0 };
    const plan = routeDelta(
      req(-11, { referencePriceUsd: P }),
      [costVenue(a, 'sell', 11), { ...costVenue(b, 'sell', 11), minSizeBase: 1, sizeStepBase: 0.001 }],
      // no flat charge: opening on A ($1 a unit) is then cheaper than on B in every split of the rest
      { bridge, openPositionPenaltyBps: 0 },
    );
    expect(legsOf(plan).sort()).toEqual([
      ['perp-a', '10', true],
      ['perp-b', '1', false],
    ]);
    expect(plan.shortfallBase).toBe(0);
  });

  it('opens against an opposite position it cannot reduce further now (largest order), and says what the pair will cost to close', () => {
    // A's largest order is 3: reducing more is not possible now. B at $20 per unit and $50 gas opens the
    // rest, 7, against the 7 left on A.
    const capped = route(-10, [
      { ...A, maxOrderSizeBase: 3 },
      { ...B, feeUsdPerUnit: 20 },
    ]);
    expect(legsOf(capped)).toEqual([
      ['perp-b', '7', false],
      ['perp-a', '3', true],
    ]);
    // The pair: B closes 7 ($140 + $50), A closes 7 ($700): $890, a ranking charge only.
    expect(capped.notes.join(' ')).toMatch(
      /opens 7 against opposite positions left on perp-a: no plan reducing more was possible or cheaper counting the later close of both sides \(≈ \$890\.00, not in the leg costs\)/,
    );
    expect(capped.totalCostUsd).toBeCloseTo(300 + 140 + 50, 9);
  });

  it('never opens on one venue while an opposite position elsewhere is left that reducing costs no more than opening and closing both later (property)', () => {
    const spec = fc.record({
      feeUsdPerUnit: fc.double({ min: 0, max: 200, noNaN: true }),
      spreadUsdPerUnit: fc.double({ min: 0, max: 50, noNaN: true }),
      impactUsdPerUnit2: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 20, noNaN: true })),
      gasUsd: fc.double({ min: 0, max: 100, noNaN: true }),
      positionBase: fc.oneof(
        fc.constant(0),
        fc.integer({ min: -2000, max: 2000 }).map((x) => x / 100),
      ),
      maxOrderSizeBase: fc.option(fc.integer({ min: 1, max: 30 }), { nil: undefined }),
    });
    let pairsChecked = 0;
    fc.assert(
      fc.property(
        fc.array(spec, { minLength: 2, maxLength: 3 }),
        fc.integer({ min: 1, max: 2000 }).map((x) => x / 100),
        fc.boolean(),
        (specs, size, buy) => {
          const cs: Costs[] = specs.map((x, i) => ({ ...x, id: `v${i}` }));
          const sign = buy ? 1 : -1;
          const plan = route(sign * size, cs);
          const q = cs.map((c) =>
            plan.legs.filter((l) => l.venue === c.id).reduce((s, l) => s + Number(l.sizeBase), 0),
          );
          const reducible = cs.map((c) => (c.positionBase * sign < 0 ? Math.abs(c.positionBase) : 0));
          const cost = (qs: readonly number[]) => cs.reduce((s, c, i) => s + tradeUsd(c, qs[i] ?? 0), 0);
          expect(plan.totalCostUsd).toBeCloseTo(cost(q), 6);
          const unreduced = cs.map((_, j) => Math.max(0, (reducible[j] ?? 0) - (q[j] ?? 0)));
          const unreducedTotal = unreduced.reduce((s, x) => s + x, 0);
          const holders = cs.filter((_, j) => (unreduced[j] ?? 0) > 1e-6);
          const openedBy = q.map((x, i) => x - (reducible[i] ?? 0));
          // One venue opening: the pair it makes, if any, is its own (several share theirs in the ranking).
          if (openedBy.filter((o) => o > 1e-6).length !== 1) return;
          const i = openedBy.findIndex((o) => o > 1e-6);
          const ci = cs[i] as Costs;
          const opened = openedBy[i] as number;
          cs.forEach((cj, j) => {
            if (j === i || (unreduced[j] ?? 0) <= 1e-6) return;
            // Move what pairs from the opening venue to the one holding the opposite position, within its cap.
            const room = (cj.maxOrderSizeBase ?? Number.POSITIVE_INFINITY) - (q[j] ?? 0);
            const d = Math.min(opened, unreduced[j] ?? 0, room);
            // Only a move that leaves no pair at all: otherwise both plans pay a later close.
            if (d <= 1e-6 || (opened - d > 1e-6 && unreducedTotal - d > 1e-6)) return;
            const alt = q.map((x, k) => (k === i ? x - d : k === j ? x + d : x));
            const laterCloseUsd = tradeUsd(ci, d) + Math.min(...holders.map((h) => tradeUsd(h, d)));
            pairsChecked++;
            expect(
              cost(q) + laterCloseUsd,
              `${ci.id} opens ${opened} while ${cj.id} keeps ${unreduced[j]} it could reduce`,
            ).toBeLessThanOrEqual(cost(alt) + 1e-6 * (1 + cost(alt)));
          });
        },
      ),
      { numRuns: 400, seed: 13 },
    );
    // The property is about something: some plans do open against a position they could not reduce more.
    expect(pairsChecked).toBeGreaterThan(0);
  });
});

describe('quoteVenues', () => {
  it('asks each adapter at two sizes and leaves out venues that fail to quote', async () => {
    const asked: string[] = [];
    const ok = {
      quoteHedge: async (r: QuoteRequest) => {
        asked.push(r.sizeBase);
        return quote('perp-arb', r.side, Number(r.sizeBase), { feeBps: 5, gasUsd: 0.1 });
      },
    };
    const broken = {
      quoteHedge: async (): Promise<HedgeQuote> => {
        throw new Error('venue down');
      },
    };
    const base = venue('perp-arb', 'evm:42161', 1, 'buy', { feeBps: 5, gasUsd: 0.1 });
    const { quotes: _q, ...rest } = base;
    const { venues, notes } = await quoteVenues(
      [
        { ...rest, adapter: ok },
        { ...rest, venue: 'perp-down', adapter: broken },
      ],
      { side: 'buy', sizeBase: 2 },
    );
    expect(asked).toEqual(['2', '0.5']);
    expect(venues.map((v) => v.venue)).toEqual(['perp-arb']);
    expect(notes.join(' ')).toMatch(/perp-down: quote for 2 failed \(venue down\)/);
    // sizes floored to the venue's step in decimals: 0.7 / 0.1 is 6.999… in floats (asked 0.6 before)
    asked.length = 0;
    await quoteVenues([{ ...rest, sizeStepBase: 0.1, minSizeBase: 0.1, adapter: ok }], {
      side: 'buy',
      sizeBase: 0.7,
    });
    expect(asked).toEqual(['0.7', '0.1']);
    // a step finer than the decimals it is rounded in fails that venue's quote, never the others'
    const both = await quoteVenues(
      [
        { ...rest, sizeStepBase: 1e-13, adapter: ok },
        { ...rest, venue: 'perp-fine', adapter: ok },
      ],
      { side: 'buy', sizeBase: 1 },
    );
    expect(both.venues.map((v) => v.venue)).toEqual(['perp-fine']);
    expect(both.notes.join(' ')).toMatch(/perp-arb: quote for 1 failed/);
  });

  it('never plans more on a venue than the largest size it quoted: its full-size quote failed, its quarter did not', async () => {
    // An AMM refuses a quote past its reserve (Drift's adapter: "exceeds the AMM's base reserve").
    const amm = {
      quoteHedge: async (r: QuoteRequest) => {
        if (Number(r.sizeBase) > 5) throw new Error("size exceeds the AMM's base reserve");
        return quote('perp-amm', r.side, Number(r.sizeBase), { feeBps: 1, gasUsd: 0.01 });
      },
    };
    const book = {
      quoteHedge: async (r: QuoteRequest) =>
        quote('perp-book', r.side, Number(r.sizeBase), { feeBps: 5, gasUsd: 0.1 }),
    };
    const strip = (v: RouteVenue) => {
      const { quotes: _q, ...rest } = v;
      return rest;
    };
    const targets = [
      {
        ...strip(venue('perp-amm', 'solana:mainnet-beta', 10, 'buy', { feeBps: 1, gasUsd: 0.01 })),
        adapter: amm,
      },
      { ...strip(venue('perp-book', 'evm:42161', 10, 'buy', { feeBps: 5, gasUsd: 0.1 })), adapter: book },
    ];
    const { venues, notes } = await quoteVenues(targets, { side: 'buy', sizeBase: 10 });
    expect(notes.join(' ')).toMatch(/perp-amm: quote for 10 failed/);
    const plan = routeDelta(req(10), venues, { bridge });
    const sizes = Object.fromEntries(plan.legs.map((l) => [l.venue, Number(l.sizeBase)]));
    // The cheap AMM takes what it quoted, the book the rest: not all 10 on a size the AMM refused.
    expect(sizes['perp-amm']).toBeLessThanOrEqual(2.5);
    expect(plan.plannedDeltaBase).toBeCloseTo(10, 9);
    // Alone, the AMM takes 2.5 and the rest is an honest shortfall.
    const alone = routeDelta(
      req(10),
      venues.filter((v) => v.venue === 'perp-amm'),
      { bridge },
    );
    expect(alone.plannedDeltaBase).toBeCloseTo(2.5, 9);
    expect(alone.shortfallBase).toBeCloseTo(7.5, 9);
    expect(venues.find((v) => v.venue === 'perp-amm')?.maxOrderSizeBase).toBe(2.5);
    expect(notes.join(' ')).toMatch(/perp-amm: capped at 2\.5, the largest size it quoted/);
  });
});

describe('limitPrice', () => {
  it('lands on the tick inside the slippage bound, in decimals (a buy down, a sell up)', () => {
    // a 0.125 tick has three decimals: 100.125, not 100.13 (two, from log10 of the tick)
    expect(limitPrice('buy', 100.2, 0, 0.125)).toBe('100.125');
    expect(limitPrice('sell', 100.2, 0, 0.125)).toBe('100.25');
    // a price already on the tick stays (100.3 / 0.1 is 1002.999... in floats: one tick lower)
    expect(limitPrice('buy', 100.3, 0, 0.1)).toBe('100.3');
    expect(limitPrice('sell', 100.3, 0, 0.1)).toBe('100.3');
    expect(limitPrice('buy', 64_000, 50, 0.5)).toBe('64320');
    expect(limitPrice('sell', 64_000, 50, 0.5)).toBe('63680');
    expect(limitPrice('buy', 0.123456789, 0, 0.0001)).toBe('0.1234');
    expect(limitPrice('buy', 100, 10)).toBe('100.1');
  });

  it('is on the tick and inside the bound for any price and tick', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.01, max: 1e6, noNaN: true }),
        fc.constantFrom(0.5, 0.1, 0.125, 0.01, 0.05, 0.0001, 1, 25),
        fc.constantFrom<Side>('buy', 'sell'),
        (price, tick, side) => {
          const out = Number(limitPrice(side, price, 0, tick));
          const ticks = out / tick;
          expect(Math.abs(ticks - Math.round(ticks))).toBeLessThan(1e-6);
          if (side === 'buy') expect(out).toBeLessThanOrEqual(price + 1e-9);
          else expect(out).toBeGreaterThanOrEqual(price - 1e-9);
          expect(Math.abs(out - price)).toBeLessThan(tick + 1e-9);
        },
      ),
    );
  });
});

describe('routeDelta: a collateral move sends an asset its destination takes (review: USDC sent to a USDT venue)', () => {
  /** A GMX-like venue on Arbitrum whose collateral token is USDT, with no margin of its own. */
  const gmxUsdt = (extra: Partial<RouteVenue> = {}) =>
    venue(
      'gmx-arb',
      'evm:42161',
      1,
      'buy',
      { feeBps: 4, gasUsd: 0.3 },
      { freeCollateralUsd: 0, collateralAssets: ['USDT'], ...extra },
    );
  const usdcOnSol: CollateralSource = {
    venue: 'drift-sol',
    chain: 'solana:mainnet-beta',
    asset: 'USDC',
    availableUsd: 100_000,
  };
  const usdtOnOp: CollateralSource = {
    venue: 'lyra-op',
    chain: 'evm:10',
    asset: 'USDT',
    availableUsd: 100_000,
  };
  /** USDC from Solana is the cheaper route: a router blind to the asset takes it. */
  const cheapSolBridge: BridgeCostModel = (from) =>
    from === 'solana:mainnet-beta' ? { feeUsd: 1, latencyMs: 30_000 } : { feeUsd: 4, latencyMs: 120_000 };

  it('funds the USDT venue from the USDT source, not from the cheaper USDC one', () => {
    const plan = routeDelta(req(1), [gmxUsdt()], {
      bridge: cheapSolBridge,
      collateralSources: [usdcOnSol, usdtOnOp],
    });
    expect(plan.transfers).toHaveLength(1);
    expect(plan.transfers[0]).toMatchObject({
      fromVenue: 'lyra-op',
      toVenue: 'gmx-arb',
      asset: 'USDT',
      amount: '7200',
      feeUsd: 4,
    });
    expect(plan.legs.map((l) => [l.venue, l.sizeBase])).toEqual([['gmx-arb', '1']]);
    expect(plan.legCosts[0]?.bridgeFeeUsd).toBe(4);
  });

  it('plans no move to it when no source holds its collateral, and says why; the hedge goes where margin is', () => {
    const vs = [
      gmxUsdt(),
      venue('perp-op', 'evm:10', 1, 'buy', { feeBps: 8, gasUsd: 0.2 }, { freeCollateralUsd: 50_000 }),
    ];
    const plan = routeDelta(req(1), vs, { bridge: cheapSolBridge, collateralSources: [usdcOnSol] });
    expect(plan.transfers).toEqual([]);
    expect(plan.legs.map((l) => [l.venue, l.sizeBase])).toEqual([['perp-op', '1']]);
    expect(plan.notes.join(' ')).toMatch(
      /gmx-arb: no collateral move to it, so it takes at most 0 on its own margin: it takes USDT as collateral, not USDC on drift-sol/,
    );
    // Alone, it is an honest shortfall, not a bridge paid for a margin the venue cannot use.
    const alone = routeDelta(req(1), [gmxUsdt()], { bridge: cheapSolBridge, collateralSources: [usdcOnSol] });
    expect(alone.transfers).toEqual([]);
    expect(alone.legs).toEqual([]);
    expect(alone.shortfallBase).toBe(1);
  });

  it('asks the bridge for the source’s asset: a route it does not carry funds nothing', () => {
    const carriesUsdcOnly: BridgeCostModel = (from, _to, _usd, asset) =>
      asset !== 'USDC'
        ? null
        : from === 'evm:10'
          ? { feeUsd: 4, latencyMs: 120_000 }
          : { feeUsd: 1, latencyMs: 30_000 };
    const daiOnSol: CollateralSource = { ...usdcOnSol, asset: 'DAI' };
    const usdcOnOp: CollateralSource = { ...usdtOnOp, asset: 'USDC' };
    const plan = routeDelta(req(1), [gmxUsdt({ collateralAssets: ['USDC', 'DAI'] })], {
      bridge: carriesUsdcOnly,
      collateralSources: [daiOnSol, usdcOnOp],
    });
    expect(plan.transfers.map((t) => [t.fromVenue, t.asset, t.amount])).toEqual([
      ['lyra-op', 'USDC', '7200'],
    ]);
  });

  it('refuses a source whose asset is not USD-like, naming it: the move is sized in USD', () => {
    expect(() =>
      routeDelta(
        req(1),
        [venue('perp-arb', 'evm:42161', 1, 'buy', { feeBps: 4, gasUsd: 0.3 }, { freeCollateralUsd: 0 })],
        {
          bridge: cheapSolBridge,
          collateralSources: [{ ...usdtOnOp, asset: 'WETH' }],
        },
      ),
    ).toThrow(/collateral source lyra-op \(evm:10\) holds WETH, not a USD-like asset/);
  });

  it('counts the bridge fee as it is debited in the asset (rounded up to its 6 decimals): never a move a unit over its source', () => {
    // 1 ETH on Optimism needs $300 moved in; the fee 1.1100004 is debited as 1.110001 USDC: $301.11 held
    // pays $300 + $1.1100004 in floats, but not the debit of 301.110001 USDC.
    const ETH = 2500;
    const ethVenue = venue(
      'perp-op',
      'evm:10',
      1,
      'buy',
      { feeBps: 5, gasUsd: 0.1 },
      { freeCollateralUsd: 0, sizeStepBase: 0.01, minSizeBase: 0.01 },
    );
    const oddFee: BridgeCostModel = () => ({ feeUsd: 1.1100004, latencyMs: 60_000 });
    const source: CollateralSource = {
      venue: 'perp-arb',
      chain: 'evm:42161',
      asset: 'USDC',
      availableUsd: 301.11,
    };
    const plan = routeDelta({ ...req(1), underlying: 'ETH', referencePriceUsd: ETH }, [ethVenue], {
      bridge: oddFee,
      collateralSources: [source],
    });
    expect(plan.transfers).toHaveLength(1);
    const t = plan.transfers[0];
    const debitMicro = Math.round(Number(t?.amount) * 1e6) + 1_110_001;
    expect(debitMicro).toBeLessThanOrEqual(301_110_000);
    expect(t?.amount).toBe('297');
    expect(plan.legs.map((l) => l.sizeBase)).toEqual(['0.99']);
    // The reservation counts the fee as debited too: what is left is what the source holds after the debit.
    const reservation = new CollateralReservation();
    reservation.commit(plan, [ethVenue]);
    const left = reservation.sources([source]).map((s) => s.availableUsd);
    expect(left).toHaveLength(1);
    expect(left[0]).toBeCloseTo(2.999999, 9);
  });

  it('only ever moves an asset its destination takes, held by its source (property)', () => {
    const assets = ['USDC', 'USDT', 'DAI'] as const;
    const spec = fc.record({
      freeUsd: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 20_000 })),
      takes: fc.subarray([...assets], { minLength: 1 }),
      holds: fc.constantFrom(...assets),
      chain: fc.integer({ min: 1, max: 3 }),
    });
    fc.assert(
      fc.property(
        fc.array(spec, { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 1, max: 300 }),
        (specs, tenths) => {
          const size = tenths / 100;
          const vs = specs.map((x, i) =>
            venue(
              `v${i}`,
              `evm:${x.chain}`,
              size,
              'buy',
              { feeBps: 5 + i, gasUsd: 0.1 },
              { freeCollateralUsd: x.freeUsd, collateralAssets: x.takes },
            ),
          );
          const sources = specs.flatMap((x, i) =>
            x.freeUsd > 0
              ? [{ venue: `v${i}`, chain: `evm:${x.chain}`, asset: x.holds, availableUsd: x.freeUsd }]
              : [],
          );
          const plan = routeDelta(req(size), vs, { bridge, collateralSources: sources });
          for (const t of plan.transfers) {
            expect(specs[Number(t.toVenue.slice(1))]?.takes).toContain(t.asset);
            expect(sources.some((s) => s.venue === t.fromVenue && s.asset === t.asset)).toBe(true);
          }
        },
      ),
      { numRuns: 200, seed: 5 },
    );
  });
});

describe('quoteVenues: what the venues take as collateral', () => {
  it('reads each venue’s collateral from its adapter’s capabilities after quoting; a target’s own list stands', async () => {
    let symbol = 'USDC';
    const gmx = {
      // GMX names its collateral token once it has read it.
      get capabilities() {
        return { collateral: [symbol] } as unknown as VenueCapabilities;
      },
      quoteHedge: async (r: QuoteRequest) => {
        symbol = 'USDT';
        return quote('gmx-arb', r.side, Number(r.sizeBase), { feeBps: 5, gasUsd: 0.1 });
      },
    };
    const { quotes: _q, ...rest } = venue('gmx-arb', 'evm:42161', 1, 'buy', { feeBps: 5, gasUsd: 0.1 });
    const { venues } = await quoteVenues(
      [
        { ...rest, adapter: gmx },
        { ...rest, venue: 'gmx-dai', collateralAssets: ['DAI'], adapter: gmx },
        { ...rest, venue: 'perp-bare', adapter: { quoteHedge: gmx.quoteHedge } },
      ],
      { side: 'buy', sizeBase: 1 },
    );
    expect(venues.map((v) => [v.venue, v.collateralAssets])).toEqual([
      ['gmx-arb', ['USDT']],
      ['gmx-dai', ['DAI']],
      ['perp-bare', undefined],
    ]);
  });
});

describe('routeDelta: funding carry from a quote of the leg’s own kind (review: carry scaled from the largest quote)', () => {
  /**
   * A GMX-like venue holding `positionBase` BTC: as GMX's placeOrder decides, an order no larger than the
   * opposite position decreases it (stopping the carry that position pays: `reduceUsdPerUnit`, negative),
   * a larger one increases its own side (paying `openUsdPerUnit`).
   */
  function gmxLike(positionBase: number, carry: { reduceUsdPerUnit: number; openUsdPerUnit: number }) {
    const asked: string[] = [];
    const book: Book = { feeBps: 5, gasUsd: 0.3 };
    return {
      asked,
      adapter: {
        quoteHedge: async (r: QuoteRequest): Promise<HedgeQuote> => {
          asked.push(r.sizeBase);
          const size = Number(r.sizeBase);
          const q = quote('gmx-arb', r.side, size, book);
          const opposite = positionBase * (r.side === 'buy' ? 1 : -1) < 0;
          const decrease = opposite && size <= Math.abs(positionBase);
          const fundingCarryUsd = size * (decrease ? carry.reduceUsdPerUnit : carry.openUsdPerUnit);
          return { ...q, fundingCarryUsd, totalCostUsd: q.totalCostUsd + fundingCarryUsd };
        },
      },
    };
  }
  const target = (name: string, chain: string, b: Book, positionBase: number) => {
    const { quotes: _q, ...rest } = venue(name, chain, 1, 'sell', b, { positionBase });
    return rest;
  };
  const drift = {
    quoteHedge: async (r: QuoteRequest) =>
      quote('drift-sol', r.side, Number(r.sizeBase), { feeBps: 6, gasUsd: 0.01 }),
  };

  it('sell 16 with +3 held on GMX: reduces it (the decrease saves $60 a unit of carry), not charged the $150 a unit an increase pays', async () => {
    const gmx = gmxLike(3, { reduceUsdPerUnit: -60, openUsdPerUnit: 150 });
    const { venues, notes } = await quoteVenues(
      [
        { ...target('gmx-arb', 'evm:42161', { feeBps: 5, gasUsd: 0.3 }, 3), adapter: gmx.adapter },
        { ...target('drift-sol', 'solana:mainnet-beta', { feeBps: 6, gasUsd: 0.01 }, 0), adapter: drift },
      ],
      { side: 'sell', sizeBase: 16 },
    );
    expect(notes).toEqual([]);
    // Both usual sizes increase on GMX: the reducing size is quoted too (three quotes, no more).
    expect(gmx.asked).toEqual(['16', '4', '3']);
    const plan = routeDelta(req(-16), venues, { bridge });
    const legs = Object.fromEntries(plan.legs.map((l, i) => [l.venue, { leg: l, cost: plan.legCosts[i] }]));
    expect(legs['gmx-arb']?.leg).toMatchObject({ sizeBase: '3', reduceOnly: true });
    expect(legs['gmx-arb']?.cost?.fundingCarryUsd).toBeCloseTo(-180, 9);
    expect(legs['drift-sol']?.leg.sizeBase).toBe('13');
    expect(plan.plannedDeltaBase).toBeCloseTo(-16, 9);
    expect(plan.notes.join(' ')).not.toMatch(/funding carry of/);
  });

  it('a split leg’s carry is read between quotes of its own kind; a leg that opens past the position pays the increase’s', () => {
    // GMX holds +4: quotes at 2 and 4 decrease (carry −60 a unit), at 8 and 16 increase (+10 a unit at 8,
    // +20 a unit at 16: the increase's rate grows with the open interest it adds).
    const gmxQuote = (n: number, carryUsd: number) => ({
      ...quote('gmx-arb', 'sell', n, { feeBps: 5, gasUsd: 0.3 }),
      fundingCarryUsd: carryUsd,
    });
    const gmx: RouteVenue = {
      ...venue('gmx-arb', 'evm:42161', 16, 'sell', { feeBps: 5, gasUsd: 0.3 }, { positionBase: 4 }),
      quotes: [gmxQuote(16, 320), gmxQuote(8, 80), gmxQuote(4, -240), gmxQuote(2, -120)],
    };
    const at = (deltaBase: number) => {
      const plan = routeDelta(req(deltaBase), [gmx], { bridge });
      return plan.legCosts[0]?.fundingCarryUsd;
    };
    expect(at(-3)).toBeCloseTo(-180, 9);
    expect(at(-4)).toBeCloseTo(-240, 9);
    // 12 is halfway between the increases at 8 and 16: $200, not 12 × $20 (nor anything of the decreases).
    expect(at(-12)).toBeCloseTo(200, 9);
    expect(at(-16)).toBeCloseTo(320, 9);
  });

  it('says so when a leg’s kind was not quoted and the other kind’s carry stands in', () => {
    const plan = routeDelta(
      req(-2),
      [venue('gmx-arb', 'evm:42161', 16, 'sell', { feeBps: 5, gasUsd: 0.3 }, { positionBase: 2 })],
      { bridge },
    );
    expect(plan.legs[0]).toMatchObject({ sizeBase: '2', reduceOnly: true });
    expect(plan.notes.join(' ')).toMatch(
      /gmx-arb: funding carry of 2 taken from quotes of sizes that open past its 2 position: none was quoted at a size that only reduces it/,
    );
  });
});

describe('collateral on a venue that keeps long and short apart (review: GMX flip budgeted as if netted)', () => {
  // GMX v2 as its adapter quotes it: leverage 2 (collateral 0.5 of notional), ETH at $3,500. An order the
  // opposite position covers decreases it (posts nothing); a larger one opens its whole size beside it.
  const ETH = 3500;
  const FRACTION = 0.5;
  function gmxQuote(side: Side, size: number, positionBase: number): HedgeQuote {
    const decrease = positionBase * (side === 'buy' ? 1 : -1) < 0 && size <= Math.abs(positionBase);
    const feeUsd = size * ETH * 0.0005;
    return {
      venue: 'gmx-arb',
      instrument: 'ETH-USD:PERP',
      side,
      requestedSizeBase: toDecimalString(size, 8),
      executableSizeBase: toDecimalString(size, 8),
      referencePriceUsd: ETH,
      expectedPriceUsd: ETH,
      feeUsd,
      impactUsd: 0,
      gasUsd: 0.2,
      fundingCarryUsd: 0,
      totalCostUsd: feeUsd + 0.2,
      lockedCollateralUsd: decrease ? 0 : size * ETH * FRACTION,
      expectedLatencyMs: 2000,
      asOfMs: NOW,
    };
  }
  const gmxAdapter = (positionBase: number) => ({
    quoteHedge: async (r: QuoteRequest) => gmxQuote(r.side, Number(r.sizeBase), positionBase),
  });
  /** gmx-arb holding `positionBase` ETH with `freeCollateralUsd` in its wallet, as the runtime targets it. */
  const gmxTarget = (positionBase: number, freeCollateralUsd: number) => ({
    venue: 'gmx-arb',
    chain: 'evm:42161',
    instrument: 'ETH-USD:PERP',
    minSizeBase: 0.01,
    sizeStepBase: 0.01,
    priceTickUsd: 0.01,
    positionBase,
    freeCollateralUsd,
    marginFraction: FRACTION, // max(10%, the market's initialMarginFraction 0.5)
  });
  const quoted = async (positionBase: number, freeCollateralUsd: number, side: Side, sizeBase: number) => {
    const { venues, notes } = await quoteVenues(
      [{ ...gmxTarget(positionBase, freeCollateralUsd), adapter: gmxAdapter(positionBase) }],
      { side, sizeBase },
    );
    expect(notes).toEqual([]);
    return venues;
  };
  const ethReq = (deltaBase: number): RouteRequest => ({
    ...req(deltaBase),
    underlying: 'ETH',
    referencePriceUsd: ETH,
  });

  it('legMarginUsd: holding 2 long, a sell of 5 needs collateral for all 5 ($8,750), not the 3 past the long ($5,250)', () => {
    const apart = { positionBase: 2, marginFraction: FRACTION, openCollateralUsdPerUnit: ETH * FRACTION };
    expect(legMarginUsd(apart, 'sell', 5, ETH)).toBe(8750);
    // posted at the venue's price: a decision at another spot does not shrink it (review: 3490 × 0.5 per unit)
    expect(legMarginUsd(apart, 'sell', 5, 3490)).toBe(8750);
    // the long covers a sell of up to 2: a decrease, nothing posted
    expect(legMarginUsd(apart, 'sell', 2, ETH)).toBe(0);
    expect(legMarginUsd(apart, 'sell', 1, ETH)).toBe(0);
    // just past it: the whole size
    expect(legMarginUsd(apart, 'sell', 2.01, ETH)).toBeCloseTo(2.01 * 1750, 9);
    // growing the long: the whole size either way
    expect(legMarginUsd(apart, 'buy', 5, ETH)).toBe(8750);
    // a venue that nets takes the 3 past the long only
    const { openCollateralUsdPerUnit: _o, ...nets } = apart;
    expect(legMarginUsd(nets, 'sell', 5, ETH)).toBe(5250);
    // routing's own margin fraction stays a floor: a venue posting 2% is not budgeted under 10% past the position
    const low = { positionBase: 2, marginFraction: 0.1, openCollateralUsdPerUnit: ETH * 0.02 };
    expect(legMarginUsd(low, 'sell', 5, ETH)).toBeCloseTo(3 * ETH * 0.1, 9);
    expect(() => legMarginUsd({ ...apart, openCollateralUsdPerUnit: Number.NaN }, 'sell', 5, ETH)).toThrow(
      /openCollateralUsdPerUnit must be a finite number >= 0, got NaN/,
    );
  });

  it('maxSizeForMarginUsd is the inverse of legMarginUsd, at any reference price', () => {
    const venues = [
      { positionBase: 2, marginFraction: FRACTION, openCollateralUsdPerUnit: 1749.75 },
      { positionBase: -3, marginFraction: 0.1, openCollateralUsdPerUnit: 1750.25 },
      { positionBase: 2, marginFraction: 0.1, openCollateralUsdPerUnit: 70 },
      { positionBase: 2, marginFraction: 0.1 },
    ];
    for (const v of venues)
      for (const side of ['buy', 'sell'] as const)
        for (const ref of [3490, 3500, 3510])
          for (const budgetUsd of [1, 1000, 7000, 50_000]) {
            const sizeBase = maxSizeForMarginUsd(v, side, budgetUsd, ref);
            const reducibleBase =
              v.positionBase * (side === 'buy' ? 1 : -1) < 0 ? Math.abs(v.positionBase) : 0;
            // the largest size within the budget: its margin is the budget (or it only reduces)
            if (sizeBase > reducibleBase)
              expect(legMarginUsd(v, side, sizeBase, ref)).toBeCloseTo(budgetUsd, 6);
            else expect(legMarginUsd(v, side, sizeBase, ref)).toBe(0);
            expect(legMarginUsd(v, side, sizeBase * 1.001 + 1e-6, ref)).toBeGreaterThan(budgetUsd);
          }
  });

  it("quoteVenues reads the collateral per unit from a quote of an order past the position (GMX's lockedCollateralUsd), not from a decrease", async () => {
    const [gmx] = await quoted(2, 1e6, 'sell', 5);
    // quoted at 5 (an increase: $8,750 for 5) and 1.25 (a decrease: $0)
    expect(gmx?.quotes.map((q) => [q.requestedSizeBase, q.lockedCollateralUsd])).toEqual([
      ['5', 8750],
      ['1.25', 0],
    ]);
    expect(gmx?.openCollateralUsdPerUnit).toBe(1750);
    // a venue whose quotes state none keeps none (margined as a netting venue)
    const plain = await quoteVenues(
      [
        {
          ...gmxTarget(2, 1e6),
          adapter: {
            quoteHedge: async (r: QuoteRequest) => {
              const { lockedCollateralUsd: _l, ...q } = gmxQuote(r.side, Number(r.sizeBase), 2);
              return q;
            },
          },
        },
      ],
      { side: 'sell', sizeBase: 5 },
    );
    expect(plain.venues[0]?.openCollateralUsdPerUnit).toBeUndefined();
    // a stated amount that is no number leaves the venue out, by name, not the plan
    const bad = await quoteVenues(
      [
        {
          ...gmxTarget(2, 1e6),
          adapter: {
            quoteHedge: async (r: QuoteRequest) => ({
              ...gmxQuote(r.side, Number(r.sizeBase), 2),
              lockedCollateralUsd: Number.NaN,
            }),
          },
        },
      ],
      { side: 'sell', sizeBase: 5 },
    );
    expect(bad.venues).toEqual([]);
    expect(bad.notes.join(' ')).toMatch(/gmx-arb: quote for 5 states lockedCollateralUsd NaN/);
  });

  it('holding 2 long with $7,000 free, a sell of 5 is cut to the 3.98 whose collateral the wallet holds with 50 bps to spare, not sent whole', async () => {
    const venues = await quoted(2, 7000, 'sell', 5);
    const plan = routeDelta(ethReq(-5), venues, { bridge });
    // netted, 5 would need $5,250 and be sent: GMX pulls $8,750 for it and the order fails; 4 ($7,000)
    // is the whole wallet, refused on any uptick before it is placed: 7,000 / (1,750 × 1.005) = 3.98
    expect(plan.legs.map((l) => [l.venue, l.side, l.sizeBase, l.reduceOnly])).toEqual([
      ['gmx-arb', 'sell', '3.98', false],
    ]);
    expect(3.98 * ETH * FRACTION * 1.005).toBeLessThanOrEqual(7000);
    expect(plan.shortfallBase).toBeCloseTo(1.02, 9);
  });

  it('holding 2 long with $3,000 free, only the decrease goes out: any sell past the long posts more than is free', async () => {
    const venues = await quoted(2, 3000, 'sell', 5);
    const plan = routeDelta(ethReq(-5), venues, { bridge });
    // netted, 2 + 3000 / 1750 = 3.71 would go out, an increase posting $6,492.50
    expect(plan.legs.map((l) => [l.sizeBase, l.reduceOnly])).toEqual([['2', true]]);
    expect(plan.shortfallBase).toBeCloseTo(3, 9);
  });

  it('moves the collateral of the whole size, with its headroom and buffer: $10,552.50 for a sell of 5 past a long of 2 (not $6,300)', async () => {
    const venues = await quoted(2, 0, 'sell', 5);
    const sources: CollateralSource[] = [
      { venue: 'drift-sol', chain: 'solana:mainnet-beta', asset: 'USDC', availableUsd: 50_000 },
    ];
    const plan = routeDelta(ethReq(-5), venues, { bridge, collateralSources: sources });
    expect(plan.legs.map((l) => [l.sizeBase, l.dependsOn.length])).toEqual([['5', 1]]);
    // 5 × $1,750 × 1.005 (the slippage bound's headroom) × 1.2 (the move's buffer)
    expect(plan.transfers.map((t) => [t.toVenue, t.amount])).toEqual([['gmx-arb', '10552.5']]);
    // a move a cent short of the need is cut to the size it funds, at the whole-size rule (reserveCaps)
    const tight: CollateralSource[] = [{ ...(sources[0] as CollateralSource), availableUsd: 8404 }];
    const cut = routeDelta(ethReq(-5), venues, { bridge, collateralSources: tight });
    const [leg] = cut.legs;
    const [move] = cut.transfers;
    expect(Number(move?.amount) + (move?.feeUsd ?? 0)).toBeLessThanOrEqual(8404);
    expect(
      legMarginUsd(venues[0] as RouteVenue, 'sell', Number(leg?.sizeBase), ETH) * 1.005 * 1.2,
    ).toBeLessThanOrEqual(Number(move?.amount) + 1e-9);
    // $8,400 after the $4 fee funds 8,400 / 1.2 / (1,750 × 1.005) = 3.98 ETH: $8,399.79 moved
    expect([leg?.sizeBase, move?.amount]).toEqual(['3.98', '8399.79']);
  });

  it('a reservation commits the collateral of the whole size for the next plan of the round', async () => {
    const venues = await quoted(2, 10_000, 'sell', 5);
    const plan = routeDelta(ethReq(-5), venues, { bridge });
    expect(plan.legs.map((l) => l.sizeBase)).toEqual(['5']);
    expect(collateralUse(plan, venues).get('gmx-arb')?.marginUsd).toBe(8750);
    const reservation = new CollateralReservation();
    reservation.commit(plan, venues);
    expect(reservation.freeUsd('gmx-arb', 10_000)).toBe(1250);
  });
  it("review: at spot 3490 under GMX's 3500, the leg's collateral at GMX's own price fits the wallet, with room for the price to move", async () => {
    // GMX as its adapter quotes it: reference (mid) $3,500, an increase posts at its min price for a
    // short ($3,499.50), its max for a long ($3,500.50), × 0.5, rounded up to the USDC unit.
    const MID = 3500;
    const SPOT = 3490;
    const postedPxOf = (side: Side) => (side === 'buy' ? MID + 0.5 : MID - 0.5);
    const quoteAt = (side: Side, size: number, positionBase: number): HedgeQuote => {
      const decrease = positionBase * (side === 'buy' ? 1 : -1) < 0 && size <= Math.abs(positionBase);
      const feeUsd = size * MID * 0.0005;
      return {
        ...gmxQuote(side, size, positionBase),
        referencePriceUsd: MID,
        expectedPriceUsd: postedPxOf(side),
        feeUsd,
        totalCostUsd: feeUsd + 0.2,
        lockedCollateralUsd: decrease ? 0 : Math.ceil(size * postedPxOf(side) * FRACTION * 1e6) / 1e6,
      };
    };
    // 7,000 / (1,749.75 × 1.005) = 3.98; 7,000 / (1,750.25 × 1.005) = 3.979 → 3.97
    for (const [positionBase, side, deltaBase, plannedBase] of [
      [2, 'sell', -5, '3.98'],
      [0, 'buy', 5, '3.97'],
    ] as const) {
      const { venues, notes } = await quoteVenues(
        [
          {
            ...gmxTarget(positionBase, 7000),
            adapter: {
              quoteHedge: async (r: QuoteRequest) => quoteAt(r.side, Number(r.sizeBase), positionBase),
            },
          },
        ],
        { side, sizeBase: 5 },
      );
      expect(notes).toEqual([]);
      const plan = routeDelta({ ...ethReq(deltaBase), referencePriceUsd: SPOT }, venues, { bridge });
      expect(plan.legs).toHaveLength(1);
      const [leg] = plan.legs;
      const sizeBase = Number(leg?.sizeBase);
      // was 4.01 (sell) budgeted at $3,490 × 0.49993: GMX posts 4.01 × $3,499.50 × 0.5 = $7,016.50, refused
      expect([leg?.side, leg?.sizeBase, leg?.reduceOnly]).toEqual([side, plannedBase, false]);
      const postedUsd = sizeBase * postedPxOf(side) * FRACTION;
      expect(postedUsd).toBeLessThanOrEqual(7000);
      // and it still fits after GMX's price moves the slippage bound (50 bps) against it before placement
      expect(postedUsd * 1.005).toBeLessThanOrEqual(7000);
      // routing counts what GMX posts at its own price, whatever the decision's spot
      expect(legMarginUsd(venues[0] as RouteVenue, side, sizeBase, SPOT)).toBeCloseTo(postedUsd, 5);
    }
  });
});
