import { Dec } from '@xhedge/core';
import { runVenueConformance } from '@xhedge/venue/conformance';
import { describe, expect, it } from 'vitest';
import { ShadowVenue } from './shadow.ts';
import { conformanceSetup, testVenue } from './testkit.ts';

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
