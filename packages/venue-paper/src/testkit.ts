import { ManualClock } from '@xhedge/core';
import { createMarketSimulator, type PaperMarket } from '@xhedge/sim';
import type { ConformanceSetup } from '@xhedge/venue/conformance';
import type { PaperVenue } from './base.ts';
import { createPaperVenue, type PaperVenueKind } from './create.ts';

/** 2026-01-05T00:00Z: a fixed start so listings and paths are reproducible. */
export const TEST_START_MS = Date.UTC(2026, 0, 5);

/** A manual clock and a three-underlying market on it (test helper, not exported from the package). */
export function testMarket(seed = 7): { clock: ManualClock; market: PaperMarket } {
  const clock = new ManualClock(TEST_START_MS);
  const market = createMarketSimulator({
    underlyings: {
      BTC: { spot: 95_000, vol: 0.55 },
      ETH: { spot: 3_500, vol: 0.7 },
      SOL: { spot: 180, vol: 0.9 },
    },
    correlations: { 'BTC/ETH': 0.8, 'BTC/SOL': 0.7, 'ETH/SOL': 0.75 },
    seed,
    clock,
  });
  return { clock, market };
}

const CHAIN: Record<PaperVenueKind, string> = {
  'paper-lyra': 'evm:42161',
  'paper-gmx': 'evm:42161',
  'paper-drift': 'solana:mainnet-beta',
  'paper-spot-amm': 'evm:1',
};

/** One funded paper venue on a fresh market, with `advance` moving the manual clock. */
export function testVenue(
  kind: PaperVenueKind,
  params: Record<string, unknown> = {},
): { venue: PaperVenue; clock: ManualClock; market: PaperMarket; advance: (ms: number) => Promise<void> } {
  const { clock, market } = testMarket();
  const venue = createPaperVenue({
    id: kind.replace('paper-', 'p-'),
    kind,
    chain: CHAIN[kind],
    market,
    params,
    sleep: async (ms) => {
      clock.advance(ms);
    },
  });
  venue.seedBalance('USDC', 10_000_000);
  return {
    venue,
    clock,
    market,
    advance: async (ms) => {
      clock.advance(ms);
    },
  };
}

/** Conformance setup for a paper venue kind. */
export async function conformanceSetup(
  kind: PaperVenueKind,
  instrument: (v: PaperVenue) => Promise<string>,
  size: string,
): Promise<ConformanceSetup> {
  const t = testVenue(kind);
  return {
    venue: t.venue,
    instrument: await instrument(t.venue),
    size,
    advance: t.advance,
    makeTimeout: () => t.venue.faults.timeoutNext(),
    teardown: () => t.venue.close?.(),
    pollStepMs: 500,
  };
}
