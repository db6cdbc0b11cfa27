import { describe, expect, it } from 'vitest';
import { type EngineVenue, type GasCurve, routeCheapest } from './costs.ts';
import { batchField } from './engine.ts';
import { replayFills } from './test-helpers.ts';

/** A zero-gas venue with a fee of `feeBps`, or a zero-fee one with `gasUsd` per trade. */
function venue(id: string, feeBps: number, gasUsd = 0): EngineVenue {
  return {
    id,
    chain: 'offchain',
    feeFraction: feeBps / 10_000,
    halfSpreadFraction: 0,
    impactFractionPerUsd: 0,
    gasMinUsd: gasUsd,
    gasMaxUsd: gasUsd,
    priorityFeeUsd: 0,
    fundingRatePerHour: 0,
  };
}

const flatGas = (venues: EngineVenue[]): GasCurve[] => venues.map((v) => () => v.gasMinUsd);

describe('cheapest routing', () => {
  it('a trade against a position held on another venue reduces it first, even when that venue costs more', () => {
    // 10 bps (cheap) and 20 bps (dear); the dear venue is short 3.
    const venues = [venue('cheap', 10), venue('dear', 20)];
    const legs = (positions: number[], deltaBase: number) =>
      routeCheapest(venues, flatGas(venues), Float64Array.from(positions), deltaBase, 100, 0);
    // Buying 2: all of it closes part of the short (no long 2 on cheap next to short 3 on dear).
    expect(legs([0, -3], 2)).toEqual([{ venueIndex: 1, sizeBase: 2 }]);
    // Buying 5: 3 close the short, the 2 that open new exposure go to the cheaper venue.
    expect(legs([0, -3], 5)).toEqual([
      { venueIndex: 1, sizeBase: 3 },
      { venueIndex: 0, sizeBase: 2 },
    ]);
    // Selling adds to the short nowhere else: it goes where it is cheapest, as without positions.
    expect(legs([0, -3], -2)).toEqual([{ venueIndex: 0, sizeBase: -2 }]);
    expect(legs([0, 0], 2)).toEqual([{ venueIndex: 0, sizeBase: 2 }]);
    // Float residue is no trade: 0.1 + 0.2 closes both shorts, and no 5.6e-17 opens on a third order.
    expect(legs([-0.1, -0.2], 0.1 + 0.2)).toEqual([
      { venueIndex: 0, sizeBase: 0.1 },
      { venueIndex: 1, sizeBase: 0.2 },
    ]);
  });

  it('among several opposite positions the cheapest per unit goes first; a venue already in the trade pays no second gas', () => {
    // a: 30 bps; b: 10 bps; c: 1 bp plus 50 USD gas. Trades at spot 100.
    const venues = [venue('a', 30), venue('b', 10), { ...venue('c', 1, 50) }];
    const legs = (positions: number[], deltaBase: number) =>
      routeCheapest(venues, flatGas(venues), Float64Array.from(positions), deltaBase, 100, 0);
    // Short 1 on a, short 4 on b: b first (cheaper per unit), then a; nothing opens.
    expect(legs([-1, -4, 0], 5)).toEqual([
      { venueIndex: 1, sizeBase: 4 },
      { venueIndex: 0, sizeBase: 1 },
    ]);
    // c is short 1: closing it costs 50.01 USD (gas). Buying 1,001: after that the other 1,000 (100,000
    // USD) cost 10 USD more on c (1 bp, its gas already paid) and 100 USD on b: one order of 1,001 on c.
    expect(legs([0, 0, -1], 1001)).toEqual([{ venueIndex: 2, sizeBase: 1001 }]);
  });

  it.each(['cheapest', 'live'] as const)(
    'routing %s: the engine no longer leaves +10 on one venue and −10 on another, so the unwind has nothing to close',
    async (routing) => {
      // Short 10 deep in-the-money calls (delta −10) expiring after one day: +10 hedge at spot 100 on the
      // fee-only venue (1 USD vs 50 USD gas); after expiry the −10 at spot 100,000 costs 1,000 USD there
      // and 50 USD of gas on the other. Opening −10 there would leave +10/−10, net 0, and the unwind would
      // close both (1,000 + 50 more): 1,101 USD in all against 1,001 for closing the +10 where it is.
      const { fills, batch } = await replayFills(
        `
version: 1
name: offsetting
book: { options: [{ type: call, strike: 1, expiryDays: 1, size: -10 }] }
market: { spot: 100, vol: 0.5, process: { kind: gbm } }
horizonDays: 2
stepHours: 24
paths: 2
riskAversion: 0.0001
routing: ${routing}
venues:
  - { id: gas-only, chain: offchain, feeBps: 0, gasUsd: 50 }
  - { id: fee-only, chain: offchain, feeBps: 10 }
policies: { band: { kind: band, bandDelta: 0.5, minTradeUsd: 0 } }
`,
        [100, 100_000, 100_000],
      );
      expect(fills).toEqual([
        { venue: 'fee-only', sizeBase: 10, step: 0 },
        { venue: 'fee-only', sizeBase: -10, step: 1 },
      ]);
      expect(batchField(batch, 'trades')[0]).toBe(2);
      expect(batchField(batch, 'feesUsd')[0] as number).toBeCloseTo(1 + 1000, 9);
      expect(batchField(batch, 'gasUsd')[0]).toBe(0);
    },
  );
});
