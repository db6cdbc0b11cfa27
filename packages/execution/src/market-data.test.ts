import { ManualClock, systemClock } from '@xhedge/core';
import { createMarketSimulator } from '@xhedge/sim';
import { createPaperVenue } from '@xhedge/venue-paper';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VenueMarketData } from './market-data.ts';
import { type Env, makeEnv, until } from './test-env.ts';

/** A funded paper venue on its own ETH market (the market is shared when given). */
function venueOn(
  id: string,
  kind: 'paper-drift' | 'paper-gmx',
  seed: number,
  market = createMarketSimulator({
    underlyings: { ETH: { spot: 3500, vol: 0.6 } },
    seed,
    clock: systemClock,
  }),
) {
  const chain = kind === 'paper-gmx' ? 'evm:42161' : 'solana:mainnet-beta';
  const venue = createPaperVenue({ id, kind, chain, market });
  venue.seedBalance('USDC', 1e7);
  return { venue, market };
}

/** A market ETH perp order on venue `pa`. */
function ethOrder(
  n: number,
  chain: 'evm:42161' | 'solana:mainnet-beta',
  sizeBase: string,
  referencePriceUsd: number,
) {
  return {
    id: `int_md00000000000000000000${n}`,
    planId: `plan_md${n}`,
    underlying: 'ETH',
    venue: 'pa',
    chain,
    instrument: 'ETH-USD:PERP',
    side: 'buy' as const,
    sizeBase,
    orderType: 'market' as const,
    referencePriceUsd,
    reduceOnly: false,
    urgency: 'normal' as const,
    reason: 'test',
    createdAtMs: Date.now(),
    dependsOn: [],
  };
}

describe('VenueMarketData over paper venues', () => {
  it('gives the order venue mark, the position across venues and the quote; caches marks briefly', async () => {
    const { venue: a, market } = venueOn('pa', 'paper-drift', 5);
    const { venue: b } = venueOn('pb', 'paper-gmx', 5, market);
    a.seedPosition('ETH-USD:PERP', 2);
    b.seedPosition('ETH-USD:PERP', -0.5);
    let fetches = 0;
    const fetchMarks = a.fetchMarks.bind(a);
    a.fetchMarks = (ids) => {
      fetches += 1;
      return fetchMarks(ids);
    };
    const md = new VenueMarketData({ venues: [a, b], markCacheMs: 10_000 });
    const intent = ethOrder(1, 'solana:mainnet-beta', '1', market.spot('ETH'));
    const [c1, c2] = await Promise.all([md.context(intent), md.context(intent)]);
    expect(c1.mark?.priceUsd).toBeGreaterThan(0);
    expect(Math.abs((c1.mark?.asOfMs ?? 0) - Date.now())).toBeLessThan(5_000);
    expect(c1.positionBase).toBeCloseTo(1.5, 9);
    expect(c1.expectedPriceUsd).toBeGreaterThan(0);
    expect(c2.mark).toEqual(c1.mark);
    await md.context(intent);
    expect(fetches).toBe(1);
    expect(await md.context({ ...intent, venue: 'nowhere' })).toEqual({});
    await a.close?.();
    await b.close?.();
  });

  it("gives the order venue's exposure when asked: its position in the instrument, its other linear positions at their marks", async () => {
    const market = createMarketSimulator({
      underlyings: { ETH: { spot: 3500, vol: 0.6 }, BTC: { spot: 95_000, vol: 0.5 } },
      seed: 9,
      clock: systemClock,
    });
    const { venue: a } = venueOn('pa', 'paper-drift', 9, market);
    a.seedPosition('ETH-USD:PERP', 2);
    a.seedPosition('BTC-USD:PERP', -0.1);
    const intent = ethOrder(7, 'solana:mainnet-beta', '1', market.spot('ETH'));
    const asked = new VenueMarketData({ venues: [a], venueExposure: (v) => v === 'pa' });
    const ctx = await asked.context(intent);
    const [btc] = await a.fetchMarks(['BTC-USD:PERP']);
    expect(ctx.venueExposure?.instrumentSizeBase).toBeCloseTo(2, 12);
    expect(ctx.venueExposure?.otherNotionalUsd).toBeCloseTo(0.1 * (btc?.markPriceUsd ?? Number.NaN), 6);
    // not asked (no cap on the venue): not read
    expect((await new VenueMarketData({ venues: [a] }).context(intent)).venueExposure).toBeUndefined();
    // across venues: another venue's ETH counts as notional, the order venue's ETH as the position it changes
    const { venue: b } = venueOn('pb', 'paper-gmx', 9, market);
    b.seedPosition('ETH-USD:PERP', -1);
    const [ethB] = await b.fetchMarks(['ETH-USD:PERP']);
    const total = (await new VenueMarketData({ venues: [a, b], totalExposure: true }).context(intent))
      .totalExposure;
    expect(total?.instrumentSizeBase).toBeCloseTo(2, 12);
    expect(total?.otherNotionalUsd).toBeCloseTo(
      0.1 * (btc?.markPriceUsd ?? Number.NaN) + 1 * (ethB?.markPriceUsd ?? Number.NaN),
      6,
    );
    await a.close?.();
    await b.close?.();
  });

  it('an option order reads no positions: it moves neither the linear position nor the exposure the caps count', async () => {
    const { venue: a, market } = venueOn('pa', 'paper-drift', 11);
    const { venue: b } = venueOn('pb', 'paper-gmx', 11, market);
    const l = createPaperVenue({ id: 'pl', kind: 'paper-lyra', chain: 'evm:10', market });
    l.seedBalance('USDC', 1e7);
    const listed = (await l.loadMarkets()).find((m) => m.instrument.kind === 'option');
    if (!listed) throw new Error('paper-lyra lists no option');
    a.seedPosition('ETH-USD:PERP', 2);
    let reads = 0;
    for (const v of [a, b, l]) {
      const fetchPositions = v.fetchPositions.bind(v);
      v.fetchPositions = () => {
        reads += 1;
        return fetchPositions();
      };
    }
    const md = new VenueMarketData({
      venues: [a, b, l],
      quotes: false,
      venueExposure: () => true,
      totalExposure: true,
    });
    const perp = ethOrder(12, 'solana:mainnet-beta', '1', market.spot('ETH'));
    const option = {
      ...perp,
      id: 'int_md000000000000000000013',
      venue: 'pl',
      chain: 'evm:10' as const,
      instrument: listed.instrument.id,
    };
    const ctx = await md.context(option);
    expect(ctx.mark?.priceUsd).toBeGreaterThan(0);
    expect(reads).toBe(0);
    expect(ctx.positionBase).toBeUndefined();
    expect(ctx.venueExposure).toBeUndefined();
    expect(ctx.totalExposure).toBeUndefined();
    // the same order on the perp reads them all
    const linear = await md.context(perp);
    expect(reads).toBe(3);
    expect(linear.positionBase).toBeCloseTo(2, 12);
    expect(linear.venueExposure?.instrumentSizeBase).toBeCloseTo(2, 12);
    await a.close?.();
    await b.close?.();
    await l.close?.();
  });

  it('quotes: reused briefly for the same order shape, dropped by our fills and by age', async () => {
    const { venue: a, market } = venueOn('pa', 'paper-gmx', 8);
    let quotes = 0;
    const quoteHedge = a.quoteHedge.bind(a);
    a.quoteHedge = (q) => {
      quotes += 1;
      return quoteHedge(q);
    };
    const clock = new ManualClock(1_000_000);
    const md = new VenueMarketData({ venues: [a], clock, quoteCacheMs: 250 });
    const intent = ethOrder(2, 'evm:42161', '2', market.spot('ETH'));
    const first = (await md.context(intent)).expectedPriceUsd;
    expect(first).toBeGreaterThan(0);
    expect((await md.context(intent)).expectedPriceUsd).toBe(first);
    expect(quotes).toBe(1);
    // another size or side is another quote
    await md.context({ ...intent, sizeBase: '3' });
    await md.context({ ...intent, side: 'sell' });
    expect(quotes).toBe(3);
    // a fill of ours on the venue: its quotes are asked again
    md.invalidatePositions('pa');
    await md.context(intent);
    expect(quotes).toBe(4);
    // older than the cache time: asked again
    clock.advance(251);
    await md.context(intent);
    expect(quotes).toBe(5);
    // a failed quote is not kept: the next check asks again
    a.quoteHedge = () => {
      quotes += 1;
      return Promise.reject(new Error('rpc down'));
    };
    clock.advance(251);
    await expect(md.context(intent)).rejects.toThrow('rpc down');
    await expect(md.context(intent)).rejects.toThrow('rpc down');
    expect(quotes).toBe(7);
    await a.close?.();
  });

  it('positions: re-read at once after our fill (never the pre-fill ones), served stale within bounds while refreshed', async () => {
    const { venue: a } = venueOn('pa', 'paper-drift', 6);
    a.seedPosition('ETH-USD:PERP', 1);
    let reads = 0;
    const fetchPositions = a.fetchPositions.bind(a);
    a.fetchPositions = () => {
      reads += 1;
      return fetchPositions();
    };
    const clock = new ManualClock(1_000_000);
    const md = new VenueMarketData({ venues: [a], clock, positionCacheMs: 1000 });
    expect(await md.positionBase('ETH')).toBeCloseTo(1, 12);
    expect(reads).toBe(1);
    // a fill of ours: the read starts now, and the next check sees the position after it
    a.seedPosition('ETH-USD:PERP', 3);
    md.invalidatePositions('pa');
    expect(reads).toBe(2);
    expect(await md.positionBase('ETH')).toBeCloseTo(3, 12);
    expect(reads).toBe(2);
    // past the cache time: the cached positions answer at once and a refresh runs behind them
    a.seedPosition('ETH-USD:PERP', 4); // moved by someone else (not our fill)
    clock.advance(1500);
    expect(await md.positionBase('ETH')).toBeCloseTo(3, 12);
    expect(reads).toBe(3);
    // the refresh lands in the background (no new read is started meanwhile)
    let seen = 3;
    for (let i = 0; i < 100 && seen !== 4; i++) {
      await new Promise((r) => setTimeout(r, 10));
      seen = (await md.positionBase('ETH')) ?? Number.NaN;
    }
    expect(seen).toBeCloseTo(4, 12);
    expect(reads).toBe(3);
    // too old to serve (past 5× the cache time): waited for
    a.seedPosition('ETH-USD:PERP', 5);
    clock.advance(6000);
    expect(await md.positionBase('ETH')).toBeCloseTo(5, 12);
    expect(reads).toBe(4);
    // a failing venue: the error reaches the check (no stale guess), and the next check reads again
    a.fetchPositions = () => {
      reads += 1;
      return Promise.reject(new Error('rpc down'));
    };
    md.invalidatePositions('pa');
    await expect(md.positionBase('ETH')).rejects.toThrow('rpc down');
    await expect(md.positionBase('ETH')).rejects.toThrow('rpc down');
    expect(reads).toBe(6);
    await a.close?.();
  });
});

describe('pre-trade checks fed by VenueMarketData (end to end through submitPlan)', () => {
  let env: Env;
  beforeAll(async () => {
    env = await makeEnv({
      marketData: true,
      limits: {
        staleAfterMs: 400,
        priceBandBps: 100,
        maxSlippageBps: 30,
        maxPositionBase: { ETH: 5 },
      },
    });
  });
  afterAll(async () => {
    await env?.close();
  });

  const mark = async () => {
    const [m] = await env.paper.fetchMarks(['ETH-USD:PERP']);
    return m?.markPriceUsd ?? Number.NaN;
  };

  it('price band: a reference far from the venue mark is blocked', async () => {
    const leg = env.intent(1, { referencePriceUsd: (await mark()) * 1.05 });
    const [r] = await env.service.submitPlan({ planId: leg.planId, legs: [leg] });
    expect(r).toMatchObject({ outcome: 'blocked', control: 'price-band' });
  });

  it('max slippage: the venue quote is too far above the reference', async () => {
    const leg = env.intent(2, { referencePriceUsd: (await mark()) * 0.995 });
    const [r] = await env.service.submitPlan({ planId: leg.planId, legs: [leg] });
    expect(r).toMatchObject({ outcome: 'blocked', control: 'max-slippage' });
  });

  it('position limit: the position across venues would grow past the limit', async () => {
    env.paper.seedPosition('ETH-USD:PERP', 4.8);
    env.marketData?.invalidatePositions('pv');
    const leg = env.intent(3, { referencePriceUsd: await mark() });
    const [r] = await env.service.submitPlan({ planId: leg.planId, legs: [leg] });
    expect(r).toMatchObject({ outcome: 'blocked', control: 'position-limit' });
    // reducing it is fine
    const sell = env.intent(4, { referencePriceUsd: await mark(), side: 'sell' });
    const [s] = await env.service.submitPlan({ planId: sell.planId, legs: [sell] });
    expect(s?.outcome).toBe('queued');
  });

  it('position limit: legs of one plan checked at once count each other (no leg sees a position without the others)', async () => {
    const capped = await makeEnv({ marketData: true, limits: { maxPositionBase: { ETH: 1 } } });
    try {
      const [m] = await capped.paper.fetchMarks(['ETH-USD:PERP']);
      const px = m?.markPriceUsd ?? Number.NaN;
      // nothing held; each 0.6 ETH buy fits under ±1 ETH alone, the two together do not
      const legs = [1, 2].map((n) =>
        capped.intent(n, { referencePriceUsd: px, sizeBase: '0.6', planId: capped.intent(1).planId }),
      );
      const rs = await capped.service.submitPlan({ planId: legs[0]?.planId as string, legs });
      expect(rs.map((r) => r.outcome).sort()).toEqual(['blocked', 'queued']);
      const blocked = rs.find((r) => r.outcome === 'blocked');
      expect(blocked).toMatchObject({ control: 'position-limit' });
      expect(blocked?.reason).toMatch(
        /position would be 1\.2 ETH > ±1 ETH with the same-side orders in flight/,
      );
      const queued = rs.find((r) => r.outcome === 'queued');
      await until(
        async () => (await capped.ledger.getOrder(queued?.clientOrderId as string))?.status === 'filled',
      );
      expect(capped.placed).toEqual([queued?.clientOrderId]);
    } finally {
      await capped.close();
    }
  });

  it('venue exposure: a cap on what the venue holds blocks an order that grows it, not one that shrinks it', async () => {
    const capped = await makeEnv({ marketData: true, limits: { maxVenueNotionalUsd: { pv: 20_000 } } });
    try {
      const [m] = await capped.paper.fetchMarks(['ETH-USD:PERP']);
      const px = m?.markPriceUsd ?? Number.NaN;
      capped.paper.seedPosition('ETH-USD:PERP', 5); // about 17 500 USD
      const buy = capped.intent(1, { referencePriceUsd: px, sizeBase: '1' });
      const [r] = await capped.service.submitPlan({ planId: buy.planId, legs: [buy] });
      expect(r).toMatchObject({ outcome: 'blocked', control: 'venue-exposure' });
      expect(r?.reason).toMatch(/notional on pv would be \d+\.\d{2} USD > 20000 USD/);
      const sell = capped.intent(2, { referencePriceUsd: px, side: 'sell', sizeBase: '1' });
      const [s] = await capped.service.submitPlan({ planId: sell.planId, legs: [sell] });
      expect(s?.outcome).toBe('queued');
    } finally {
      await capped.close();
    }
  });

  it('stale marks (faults.setStaleMarks) block orders once the marks are older than staleAfterMs', async () => {
    env.paper.faults.setStaleMarks(true);
    await env.paper.fetchMarks(['ETH-USD:PERP']); // freezes them now
    await new Promise((r) => setTimeout(r, 700));
    const leg = env.intent(5, { referencePriceUsd: await mark(), side: 'sell', createdAtMs: Date.now() });
    const [r] = await env.service.submitPlan({ planId: leg.planId, legs: [leg] });
    expect(r).toMatchObject({ outcome: 'blocked', control: 'stale-data' });
    expect(r?.reason).toMatch(/mark is \d+ ms old/);
    expect(env.placed).not.toContain(r?.clientOrderId);
    env.paper.faults.setStaleMarks(false);
  });
  it('crossed market: a venue quoting bid above ask blocks the order; its sane quotes pass again', async () => {
    env.paper.faults.setCrossedQuotes(true);
    try {
      await new Promise((r) => setTimeout(r, 300)); // the mark cache (250 ms) lets go of the sane quote
      const leg = env.intent(7, { referencePriceUsd: await mark(), side: 'sell', createdAtMs: Date.now() });
      const [r] = await env.service.submitPlan({ planId: leg.planId, legs: [leg] });
      expect(r).toMatchObject({ outcome: 'blocked', control: 'crossed-market' });
      expect(r?.reason).toMatch(/^pv quotes ETH-USD:PERP crossed: bid [\d.]+ > ask [\d.]+/);
      expect(env.placed).not.toContain(r?.clientOrderId);
    } finally {
      env.paper.faults.setCrossedQuotes(false);
    }
    await new Promise((r) => setTimeout(r, 300));
    const ctx = await env.marketData?.context(env.intent(8));
    expect(ctx?.mark?.bidUsd).toBeLessThan(ctx?.mark?.askUsd ?? Number.NaN);
  });

  it('a mark the venue leaves out blocks the order as stale-data, a reduce-only one too', async () => {
    const px = await mark();
    const fetchMarks = env.paper.fetchMarks;
    env.paper.fetchMarks = async (ids) =>
      (await fetchMarks.call(env.paper, ids)).filter((m) => m.instrument !== 'ETH-USD:PERP');
    try {
      await new Promise((r) => setTimeout(r, 300)); // the mark cache lets go of the last one
      const reason = 'pv gave no mark for ETH-USD:PERP: its age, price band and quote cannot be checked';
      for (const [n, over] of [
        [20, {}],
        [21, { side: 'sell', reduceOnly: true }],
      ] as const) {
        const leg = env.intent(n, { referencePriceUsd: px, createdAtMs: Date.now(), ...over });
        const [r] = await env.service.submitPlan({ planId: leg.planId, legs: [leg] });
        expect(r).toMatchObject({ outcome: 'blocked', control: 'stale-data', reason });
        expect(env.placed).not.toContain(r?.clientOrderId);
      }
    } finally {
      env.paper.fetchMarks = fetchMarks;
    }
    await new Promise((r) => setTimeout(r, 300));
  });

  it('a venue mark or quote that is not a number (adapters build them without a parse) blocks, naming it', async () => {
    // the paper market's clock steps by the second: the default staleAfterMs keeps its marks fresh here
    const own = await makeEnv({ marketData: true });
    try {
      const [m0] = await own.paper.fetchMarks(['ETH-USD:PERP']);
      const px = m0?.markPriceUsd ?? Number.NaN;
      const { fetchMarks, quoteHedge } = own.paper;
      const faults: [string, string, RegExp][] = [
        ['asOfMs', 'stale-data', /^pv mark time of ETH-USD:PERP is not a number: NaN$/],
        ['bidUsd', 'crossed-market', /^pv quotes ETH-USD:PERP with a bid or ask that is not a number/],
        ['quote', 'max-slippage', /^pv expected price of ETH-USD:PERP is not a positive finite number: NaN$/],
      ];
      let n = 1;
      for (const [field, control, reason] of faults) {
        own.paper.fetchMarks = async (ids) =>
          (await fetchMarks.call(own.paper, ids)).map((m) =>
            field === 'quote' ? m : { ...m, [field]: Number.NaN },
          );
        own.paper.quoteHedge = async (q) => {
          const quote = await quoteHedge.call(own.paper, q);
          return field === 'quote' ? { ...quote, expectedPriceUsd: Number.NaN } : quote;
        };
        await new Promise((r) => setTimeout(r, 300)); // past the mark and quote caches
        const leg = own.intent(n++, { referencePriceUsd: px, side: 'sell', createdAtMs: Date.now() });
        const [r] = await own.service.submitPlan({ planId: leg.planId, legs: [leg] });
        expect(r, field).toMatchObject({
          outcome: 'blocked',
          control,
          reason: expect.stringMatching(reason),
        });
        expect(own.placed).not.toContain(r?.clientOrderId);
      }
      // sane again: the order goes
      own.paper.fetchMarks = fetchMarks;
      own.paper.quoteHedge = quoteHedge;
      await new Promise((r) => setTimeout(r, 300));
      const leg = own.intent(n, { referencePriceUsd: px, side: 'sell', createdAtMs: Date.now() });
      const [r] = await own.service.submitPlan({ planId: leg.planId, legs: [leg] });
      expect(r?.outcome).toBe('queued');
    } finally {
      await own.close();
    }
  });
});
