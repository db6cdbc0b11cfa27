import { toDecimalString } from '@xhedge/core';
import { quoteVenues, routeDelta } from '@xhedge/routing';
import type { HedgeQuote, QuoteRequest } from '@xhedge/venue';
import { describe, expect, it } from 'vitest';
import {
  type EngineVenue,
  type GasCurve,
  quoteHedge,
  ROUTING_HOLDING_HOURS,
  routeCheapest,
  routeLive,
} from './costs.ts';
import { batchField } from './engine.ts';
import { replayFills } from './test-helpers.ts';

const SPOT_USD = 100;
const SIZE_BASE = 10;
/** Low fee, high funding: 2 bps, longs pay 1 bp per hour (24 bps over a day). */
const LOW_FEE_FUNDING_PER_HOUR = 1e-4;
/** High fee, low funding: 5 bps, longs pay 0.01 bp per hour. */
const HIGH_FEE_FUNDING_PER_HOUR = 1e-6;

function venue(id: string, feeBps: number, fundingRatePerHour: number): EngineVenue {
  return {
    id,
    chain: 'offchain',
    feeFraction: feeBps / 10_000,
    halfSpreadFraction: 0,
    impactFractionPerUsd: 0,
    gasMinUsd: 0,
    gasMaxUsd: 0,
    priorityFeeUsd: 0,
    fundingRatePerHour,
  };
}

const venues = [
  venue('low-fee', 2, LOW_FEE_FUNDING_PER_HOUR),
  venue('high-fee', 5, HIGH_FEE_FUNDING_PER_HOUR),
];
const noGas: GasCurve[] = venues.map(() => () => 0);

/**
 * What the live router picks for the trade: the venues quote through `quoteVenues` (which sets the
 * holding period) the way a live perp adapter prices it (Drift's: fee on notional, funding = rate ×
 * holdingHours × notional, + for a buy), and `routeDelta` plans it. Returns the one leg's venue, its
 * carry, and the holding hours the venues were asked to quote.
 */
async function liveChoice(
  deltaBase: number,
): Promise<{ venue: string; fundingCarryUsd: number; holdingHours: number[] }> {
  const side = deltaBase > 0 ? 'buy' : 'sell';
  const holdingHours: number[] = [];
  const targets = venues.map((v) => ({
    venue: v.id,
    chain: v.chain,
    instrument: 'BTC-USD:PERP',
    minSizeBase: 0,
    sizeStepBase: 1e-9,
    positionBase: 0,
    freeCollateralUsd: 0,
    marginFraction: 0,
    adapter: {
      async quoteHedge(req: QuoteRequest): Promise<HedgeQuote> {
        const hours = req.holdingHours ?? Number.NaN;
        holdingHours.push(hours);
        const notional = Number(req.sizeBase) * SPOT_USD;
        const feeUsd = v.feeFraction * notional;
        const carry = v.fundingRatePerHour * hours * notional * (req.side === 'buy' ? 1 : -1);
        return {
          venue: v.id,
          instrument: req.instrument,
          side: req.side,
          requestedSizeBase: req.sizeBase,
          executableSizeBase: req.sizeBase,
          referencePriceUsd: SPOT_USD,
          expectedPriceUsd: SPOT_USD,
          feeUsd,
          impactUsd: 0,
          gasUsd: 0,
          fundingCarryUsd: carry,
          totalCostUsd: feeUsd + carry,
          expectedLatencyMs: 0,
          asOfMs: 0,
        };
      },
    },
  }));
  const quoted = await quoteVenues(targets, { side, sizeBase: Math.abs(deltaBase) });
  const plan = routeDelta(
    {
      planId: 'live',
      underlying: 'BTC',
      deltaBase,
      referencePriceUsd: SPOT_USD,
      urgency: 'normal',
      reason: '',
      createdAtMs: 0,
    },
    quoted.venues,
    { bridge: () => null },
  );
  expect(plan.legs).toHaveLength(1);
  const leg = plan.legCosts[0];
  if (!leg) throw new Error('no leg');
  return { venue: leg.venue, fundingCarryUsd: leg.fundingCarryUsd, holdingHours };
}

describe('routing prices the funding the engine charges, over the live router holding period', () => {
  it('the live router asks venues for 24 h of funding, the period the backtest quotes', async () => {
    const live = await liveChoice(SIZE_BASE);
    expect(new Set(live.holdingHours)).toEqual(new Set([ROUTING_HOLDING_HOURS]));
    expect(ROUTING_HOLDING_HOURS).toBe(24);
  });

  it.each([
    // Buying 1,000 USD: low-fee 0.20 fee + 2.40 carry = 2.60; high-fee 0.50 + 0.024 = 0.524.
    { deltaBase: SIZE_BASE, pick: 'high-fee', carryUsd: HIGH_FEE_FUNDING_PER_HOUR * 24 * 1000 },
    // Selling earns the carry: low-fee 0.20 − 2.40 = −2.20; high-fee 0.50 − 0.024 = 0.476.
    { deltaBase: -SIZE_BASE, pick: 'low-fee', carryUsd: -LOW_FEE_FUNDING_PER_HOUR * 24 * 1000 },
  ])(
    'trade $deltaBase: both routing modes pick $pick, as the live router does, and quote its carry',
    async ({ deltaBase, pick, carryUsd }) => {
      const live = await liveChoice(deltaBase);
      expect(live.venue).toBe(pick);
      expect(live.fundingCarryUsd).toBeCloseTo(carryUsd, 12);

      const pickIndex = venues.findIndex((v) => v.id === pick);
      const positions = new Float64Array(venues.length);
      expect(routeCheapest(venues, noGas, positions, deltaBase, SPOT_USD, 0)).toEqual([
        { venueIndex: pickIndex, sizeBase: deltaBase },
      ]);
      const routed = routeLive({
        venues,
        gas: noGas,
        positions,
        collateral: null,
        underlying: 'BTC',
        deltaBase,
        spotUsd: SPOT_USD,
        ms: 0,
        planId: 'bt',
      });
      expect(routed.legs).toHaveLength(1);
      expect(routed.legs[0]?.venueIndex).toBe(pickIndex);
      expect(routed.legs[0]?.sizeBase).toBeCloseTo(deltaBase, 9);

      // The quote the backtest hands the live router for the picked venue: the live venue's carry.
      const q = quoteHedge(
        venues[pickIndex] as EngineVenue,
        { instrument: 'BTC-USD:PERP', side: deltaBase > 0 ? 'buy' : 'sell', spotUsd: SPOT_USD, ms: 0 },
        0,
        Math.abs(deltaBase),
      );
      expect(q.fundingCarryUsd).toBeCloseTo(carryUsd, 12);
      expect(q.totalCostUsd).toBeCloseTo(q.feeUsd + q.impactUsd + q.gasUsd + carryUsd, 12);
      expect(q.executableSizeBase).toBe(toDecimalString(Math.abs(deltaBase), 12));
    },
  );

  it('reducing opposite positions goes first where closing saves the most funding', () => {
    // Short 5 on each. A buy of 5 closes the short on high-fee, whose short earns almost nothing (closing
    // it gives up 0.012 USD), not the one on low-fee, whose short earns 1.20 USD a day.
    const legs = routeCheapest(venues, noGas, Float64Array.from([-5, -5]), 5, SPOT_USD, 0);
    expect(legs).toEqual([{ venueIndex: 1, sizeBase: 5 }]);
  });

  it.each(['cheapest', 'live'] as const)(
    'routing %s: the engine hedges on the venue the live router would pick and pays that venue its funding',
    async (routing) => {
      // Short 10 deep in-the-money calls (delta −10) at spot 100: the band policy buys 10 at step 0 and
      // holds them for one 24 h step; no unwind.
      const { fills, batch } = await replayFills(
        `
version: 1
name: funding-routing
book: { options: [{ type: call, strike: 1, expiryDays: 30, size: -10 }] }
market: { spot: 100, vol: 0.5, process: { kind: gbm } }
horizonDays: 1
stepHours: 24
paths: 2
riskAversion: 0.0001
routing: ${routing}
unwindAtEnd: false
venues:
  - { id: low-fee, chain: offchain, feeBps: 2, gasUsd: 0, fundingRatePerHour: ${LOW_FEE_FUNDING_PER_HOUR} }
  - { id: high-fee, chain: offchain, feeBps: 5, gasUsd: 0, fundingRatePerHour: ${HIGH_FEE_FUNDING_PER_HOUR} }
policies: { band: { kind: band, bandDelta: 0.5, minTradeUsd: 0 } }
`,
        [100, 100],
      );
      expect(fills).toHaveLength(1);
      expect(fills[0]?.venue).toBe('high-fee');
      expect(fills[0]?.sizeBase).toBeCloseTo(10, 9);
      expect(fills[0]?.step).toBe(0);
      expect(batchField(batch, 'feesUsd')[0] as number).toBeCloseTo(0.5, 9);
      // Rate 0: the funding field is the hedge's carry alone, 24 h on 1,000 USD long at 1e-6 per hour.
      expect(batchField(batch, 'fundingUsd')[0] as number).toBeCloseTo(
        -HIGH_FEE_FUNDING_PER_HOUR * 24 * 1000,
        9,
      );
    },
  );
});
