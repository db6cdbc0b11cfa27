import { Dec } from '@xhedge/core';
import {
  InvalidOrderError,
  RevertedError,
  StaleOracleError,
  VenueHaltedError,
  VenueTimeoutError,
} from '@xhedge/venue';
import { describe, expect, it } from 'vitest';
import { testVenue } from './testkit.ts';

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('fault injection', () => {
  it('a timed-out order really reaches the venue and fills later (sync-style venue)', async () => {
    const { venue, advance } = testVenue('paper-drift');
    venue.faults.timeoutNext({ fillDelayMs: 5_000 });
    const req = {
      clientOrderId: 'late-1',
      instrument: 'BTC-USD:PERP',
      side: 'buy',
      orderType: 'market',
      sizeBase: '0.5',
    } as const;
    const err = await rejection(venue.placeOrder(req));
    expect(err).toBeInstanceOf(VenueTimeoutError);
    expect((err as VenueTimeoutError).outcome).toBe('unknown');
    const pending = await venue.getOrderByClientId('late-1');
    expect(pending?.status).toBe('acknowledged');
    expect(await venue.fetchFills({ clientOrderId: 'late-1' })).toEqual([]);
    await advance(4_000);
    expect((await venue.getOrderByClientId('late-1'))?.status).toBe('acknowledged');
    await advance(2_000);
    const done = await venue.getOrderByClientId('late-1');
    expect(done?.status).toBe('filled');
    expect(done?.filledSizeBase).toBe('0.5');
    const pos = (await venue.fetchPositions()).find((p) => p.instrument === 'BTC-USD:PERP');
    expect(pos?.sizeBase).toBe(0.5);
    // A retry with the same client id after the timeout finds the order instead of sending a second one.
    const retry = await venue.placeOrder(req);
    expect(retry.venueOrderId).toBe(done?.venueOrderId);
    expect((await venue.fetchFills({ clientOrderId: 'late-1' })).length).toBe(1);
  });

  it('a timed-out keeper order executes at the keeper', async () => {
    const { venue, advance } = testVenue('paper-gmx');
    venue.faults.timeoutNext();
    const err = await rejection(
      venue.placeOrder({
        clientOrderId: 'late-gmx',
        instrument: 'ETH-USD:PERP',
        side: 'sell',
        orderType: 'market',
        sizeBase: '2',
      }),
    );
    expect(err).toBeInstanceOf(VenueTimeoutError);
    await advance(2_000);
    expect((await venue.getOrderByClientId('late-gmx'))?.status).toBe('filled');
  });

  it('injected rejects raise the chosen typed error once, then orders pass', async () => {
    const { venue } = testVenue('paper-spot-amm');
    venue.faults.rejectNext({ error: 'reverted' });
    const req = {
      clientOrderId: 'rej-1',
      instrument: 'ETH-USDC:SPOT',
      side: 'buy',
      orderType: 'market',
      sizeBase: '1',
    } as const;
    const err = await rejection(venue.placeOrder(req));
    expect(err).toBeInstanceOf(RevertedError);
    expect((err as RevertedError).outcome).toBe('rejected');
    expect((await venue.placeOrder(req)).status).toBe('filled');
  });

  it('partial fills fill a fraction and cancel the rest', async () => {
    const { venue } = testVenue('paper-drift');
    venue.faults.partialFillNext({ fraction: 0.4 });
    const o = await venue.placeOrder({
      clientOrderId: 'part-1',
      instrument: 'SOL-USD:PERP',
      side: 'buy',
      orderType: 'market',
      sizeBase: '10',
    });
    expect(o.status).toBe('cancelled');
    expect(o.filledSizeBase).toBe('4');
    expect(o.error).toMatch(/partially filled/);
    const pos = (await venue.fetchPositions()).find((p) => p.instrument === 'SOL-USD:PERP');
    expect(pos?.sizeBase).toBe(4);
  });

  it('stale marks freeze the oracle: marks stop moving and oracle trades fail', async () => {
    const { venue, advance } = testVenue('paper-drift');
    venue.faults.setStaleMarks(true);
    const [a] = await venue.fetchMarks(['BTC-USD:PERP']);
    await advance(60_000);
    const [b] = await venue.fetchMarks(['BTC-USD:PERP']);
    expect(b?.markPriceUsd).toBe(a?.markPriceUsd);
    expect(b?.asOfMs).toBe(a?.asOfMs);
    expect((await venue.health()).dataAgeMs).toBeGreaterThanOrEqual(60_000);
    const err = await rejection(
      venue.placeOrder({
        clientOrderId: 'stale-1',
        instrument: 'BTC-USD:PERP',
        side: 'buy',
        orderType: 'market',
        sizeBase: '0.1',
      }),
    );
    expect(err).toBeInstanceOf(StaleOracleError);
    venue.faults.setStaleMarks(false);
    const [c] = await venue.fetchMarks(['BTC-USD:PERP']);
    expect(c?.asOfMs).toBeGreaterThan(a?.asOfMs ?? 0);
  });

  it('crossed quotes swap bid and ask in the marks until turned off or reset', async () => {
    const { venue } = testVenue('paper-drift');
    const [sane] = await venue.fetchMarks(['BTC-USD:PERP']);
    expect(sane?.bidUsd).toBeLessThan(sane?.askUsd ?? Number.NaN);
    venue.faults.setCrossedQuotes(true);
    const [crossed] = await venue.fetchMarks(['BTC-USD:PERP']);
    expect([crossed?.bidUsd, crossed?.askUsd]).toEqual([sane?.askUsd, sane?.bidUsd]);
    expect(crossed?.markPriceUsd).toBe(sane?.markPriceUsd);
    venue.faults.reset();
    const [again] = await venue.fetchMarks(['BTC-USD:PERP']);
    expect(again?.bidUsd).toBeLessThan(again?.askUsd ?? Number.NaN);
  });

  it('a keeper cancels a pending order when the oracle is stale at execution', async () => {
    const { venue, advance } = testVenue('paper-gmx');
    await venue.placeOrder({
      clientOrderId: 'stale-gmx',
      instrument: 'BTC-USD:PERP',
      side: 'buy',
      orderType: 'market',
      sizeBase: '0.1',
    });
    venue.faults.setStaleMarks(true);
    await advance(2_000);
    const o = await venue.getOrderByClientId('stale-gmx');
    expect(o?.status).toBe('cancelled');
    expect(o?.error).toMatch(/stale/);
  });

  it('a halted chain refuses requests, holds keeper orders, and resumes', async () => {
    const { venue, advance } = testVenue('paper-gmx');
    await venue.placeOrder({
      clientOrderId: 'halt-1',
      instrument: 'ETH-USD:PERP',
      side: 'buy',
      orderType: 'market',
      sizeBase: '1',
    });
    venue.faults.halt();
    const err = await rejection(venue.fetchPositions());
    expect(err).toBeInstanceOf(VenueHaltedError);
    const h = await venue.health();
    expect(h.halted).toBe(true);
    expect(h.ok).toBe(false);
    await advance(10_000);
    venue.faults.resume();
    // The keeper runs once blocks resume.
    expect((await venue.getOrderByClientId('halt-1'))?.status).toBe('filled');
  });

  it('added latency is awaited through the injected sleep', async () => {
    const { venue, clock } = testVenue('paper-drift');
    venue.faults.latencyMs = 2_500;
    const t0 = clock.nowMs();
    await venue.fetchBalances();
    expect(clock.nowMs() - t0).toBe(2_500);
    expect((await venue.health()).latencyMs).toBeGreaterThanOrEqual(2_500);
  });

  it('params.latencyMs adds latency to every request and to quoted latency', async () => {
    const { venue, clock } = testVenue('paper-drift', { latencyMs: 300 });
    const t0 = clock.nowMs();
    const q = await venue.quoteHedge({ instrument: 'SOL-USD:PERP', side: 'buy', sizeBase: '1' });
    expect(clock.nowMs() - t0).toBe(300);
    expect(q.expectedLatencyMs).toBe(300 + 400);
  });

  it('reusing a client order id for a different order is refused', async () => {
    const { venue } = testVenue('paper-drift');
    await venue.placeOrder({
      clientOrderId: 'reuse',
      instrument: 'SOL-USD:PERP',
      side: 'buy',
      orderType: 'market',
      sizeBase: '1',
    });
    const err = await rejection(
      venue.placeOrder({
        clientOrderId: 'reuse',
        instrument: 'SOL-USD:PERP',
        side: 'buy',
        orderType: 'market',
        sizeBase: '2',
      }),
    );
    expect(err).toBeInstanceOf(InvalidOrderError);
  });

  it('credit and debit move collateral for the paper bridge, exactly', async () => {
    const { venue } = testVenue('paper-lyra');
    const before = (await venue.fetchBalances()).find((b) => b.asset === 'USDC')?.amount ?? 0;
    await venue.creditBalance('USDC', '1234.56');
    const after = await venue.debitBalance('USDC', '0.56');
    expect(new Dec(after.amount).sub(before).toFixed()).toBe('1234');
    await expect(venue.debitBalance('USDC', 1e12)).rejects.toThrow(/cannot debit/);
    await expect(venue.creditBalance('USDC', -5)).rejects.toBeInstanceOf(InvalidOrderError);
  });
});
