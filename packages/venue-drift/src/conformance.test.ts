import { Balance, ManualClock, Mark } from '@xhedge/core';
import { createMarketSimulator } from '@xhedge/sim';
import { HedgeQuote, isVenueError, MarketInfo, type OrderRequest, VenueCapabilities } from '@xhedge/venue';
import { runVenueConformance } from '@xhedge/venue/conformance';
import { createPaperVenue } from '@xhedge/venue-paper';
import { beforeAll, describe, expect, it } from 'vitest';
import { type DriftFixture, driftFixture } from '../test/fixture.ts';

/**
 * Where the venue conformance suite runs for Drift (see README.md): litesvm has no Drift program, so
 * checks that need the program to act (fills, cancels, reduce-only enforcement, fill history) run
 * against the paper Solana venue; the checks the real adapter can pass on injected accounts run here
 * on litesvm, mirroring the suite's assertions.
 */

// 2026-01-05T00:10Z, away from the hourly funding settlement.
const START_MS = Date.UTC(2026, 0, 5, 0, 10);

runVenueConformance('paper-drift (Solana paper venue)', () => {
  const clock = new ManualClock(START_MS);
  const market = createMarketSimulator({ underlyings: { SOL: { spot: 180, vol: 0.9 } }, seed: 10, clock });
  const venue = createPaperVenue({
    id: 'drift-sol',
    kind: 'paper-drift',
    chain: 'solana:mainnet-beta',
    market,
    // Injected latency passes on the manual clock, not in real time.
    sleep: async (ms) => {
      clock.advance(ms);
    },
  });
  venue.seedBalance('USDC', 1_000_000);
  return {
    venue,
    instrument: 'SOL-USD:PERP',
    size: '3',
    advance: async (ms) => {
      clock.advance(ms);
    },
    makeTimeout: () => venue.faults.timeoutNext(),
    teardown: () => venue.close?.(),
  };
});

describe('venue conformance on litesvm: the real DriftVenue, checks that need no Drift program', () => {
  // One local SVM for the block: these checks only read accounts or are refused before sending, and
  // every litesvm instance holds a large native heap.
  let f: DriftFixture;
  beforeAll(async () => {
    f = await driftFixture();
  });
  const order = (over: Partial<OrderRequest>): OrderRequest => ({
    clientOrderId: `cf-svm-${Math.random().toString(36).slice(2, 10)}`,
    instrument: 'SOL-USD:PERP',
    side: 'buy',
    orderType: 'market',
    sizeBase: '1',
    ...over,
  });

  it('declares valid capabilities and loads markets that validate (suite check 1)', async () => {
    const { venue } = f;
    VenueCapabilities.parse(venue.capabilities);
    const markets = await venue.loadMarkets();
    expect(markets.length).toBeGreaterThan(0);
    for (const m of markets) MarketInfo.parse(m);
    expect(markets.find((m) => m.instrument.id === 'SOL-USD:PERP')?.active).toBe(true);
    const marks = await venue.fetchMarks(['SOL-USD:PERP']);
    expect(marks).toHaveLength(1);
    for (const mk of marks) Mark.parse(mk);
    for (const b of await venue.fetchBalances()) Balance.parse(b);
    const h = await venue.health();
    expect(h.ok).toBe(true);
    expect(h.halted).toBe(false);
  });

  it('quotes with totalCostUsd = fee + impact + gas + funding carry (suite check 2, quote half)', async () => {
    const { venue } = f;
    const q = HedgeQuote.parse(
      await venue.quoteHedge({ instrument: 'SOL-USD:PERP', side: 'buy', sizeBase: '3' }),
    );
    expect(Number(q.executableSizeBase)).toBeGreaterThan(0);
    const parts = q.feeUsd + q.impactUsd + q.gasUsd + q.fundingCarryUsd;
    expect(Math.abs(q.totalCostUsd - parts)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(parts)));
  });

  const malformed: [string, Partial<OrderRequest>][] = [
    ['unknown instrument', { instrument: 'ZZZQ-USD:PERP' }],
    ['malformed instrument id', { instrument: 'not an instrument' }],
    ['zero size', { sizeBase: '0' }],
    ['negative size', { sizeBase: '-1' }],
    ['NaN size', { sizeBase: 'NaN' }],
    ['exponent size', { sizeBase: '1e3' }],
    ['empty client id', { clientOrderId: '' }],
    ['client id with spaces', { clientOrderId: 'has space' }],
    ['client id too long', { clientOrderId: 'x'.repeat(65) }],
    ['limit order without a price', { orderType: 'limit' }],
  ];
  it.each(malformed)(
    'rejects a malformed order (%s) with InvalidOrderError before sending (suite malformed-order checks)',
    async (label, over) => {
      const req = order(over);
      const err = await f.venue.placeOrder(req).catch((e: unknown) => e);
      expect(isVenueError(err), `${label}: ${String(err)}`).toBe(true);
      expect((err as { code: string }).code).toBe('VENUE_INVALID_ORDER');
      expect(f.rpc.sends).toBe(0);
      if (/^[A-Za-z0-9_-]{1,64}$/.test(req.clientOrderId))
        expect(await f.venue.getOrderByClientId(req.clientOrderId)).toBeNull();
    },
  );

  it('cancel of an unknown client order id throws OrderNotFoundError (suite cancel check, last step)', async () => {
    const err = await f.venue.cancelOrder('cf-svm-nope').catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe('VENUE_ORDER_NOT_FOUND');
    expect(f.rpc.sends).toBe(0);
  });

  it('rejects a malformed quote request with InvalidOrderError (suite check)', async () => {
    const { venue } = f;
    for (const q of [
      { instrument: 'ZZZQ-USD:PERP', side: 'buy' as const, sizeBase: '3' },
      { instrument: 'SOL-USD:PERP', side: 'buy' as const, sizeBase: '-2' },
    ]) {
      const err = await venue.quoteHedge(q).catch((e: unknown) => e);
      expect((err as { code?: string }).code).toBe('VENUE_INVALID_ORDER');
    }
  });
});
