import { type Balance, instrumentMeta, ManualClock, type Mark, MS_PER_DAY, MS_PER_YEAR } from '@xhedge/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type RiskBook, RiskEngine, type RiskPosition } from './engine.ts';
import { bookEquity } from './equity.ts';

/**
 * The snapshot's delta must be the derivative in spot of the equity `bookEquity` reports from the same
 * inputs: bump spot (every mark moving with it, as the venues' would), revalue, and compare. A venue's
 * `unsettledPnlUsd` is re-reported at the bumped mark, as a venue would on its next read.
 */
const NOW = Date.UTC(2026, 0, 1, 8);
const LIVE_FUT = 'BTC-USD:FUT:20260626';
const LIVE_EXPIRY = Date.UTC(2026, 5, 26, 8);
const EXPIRED_FUT = 'BTC-USD:FUT:20251226';
const EXPIRED_AT = Date.UTC(2025, 11, 26, 8);
const SETTLED_USD = 58_000;
const CALL = 'BTC-USD:OPT:20260331:70000:C';
const PUT = 'BTC-USD:OPT:20260331:55000:P';
const RATE = 0.05;
/** The venues' mark of a live dated future: the model's forward. */
const forward = (spotUsd: number) => spotUsd * Math.exp((RATE * (LIVE_EXPIRY - NOW)) / MS_PER_YEAR);

const MARKETS: NonNullable<RiskBook['markets']> = [
  { venue: 'lin-c', instrument: instrumentMeta('BTC-USD:PERP', { contractSize: 0.1 }) },
  {
    venue: 'inv',
    instrument: instrumentMeta('BTC-USD:PERP', { settlementCurrency: 'BTC', contractValueUsd: 10 }),
  },
  {
    venue: 'inv',
    instrument: instrumentMeta(LIVE_FUT, { settlementCurrency: 'BTC', contractValueUsd: 100 }),
  },
  {
    venue: 'inv',
    instrument: instrumentMeta(EXPIRED_FUT, { settlementCurrency: 'BTC', contractValueUsd: 100 }),
  },
  {
    venue: 'inv-u',
    instrument: instrumentMeta('BTC-USD:PERP', { settlementCurrency: 'BTC', contractValueUsd: 10 }),
  },
  {
    venue: 'inv-u',
    instrument: instrumentMeta(EXPIRED_FUT, { settlementCurrency: 'BTC', contractValueUsd: 100 }),
  },
];

/** One book: signed sizes and contracts, entry prices, and the price an inverse perp's P&L last settled at. */
interface Book {
  linPerp: number;
  linFut: number;
  linContracts: number;
  invPerpContracts: number;
  invFutContracts: number;
  invPerpBase: number;
  invFutBase: number;
  invSettlingContracts: number;
  expiredContracts: number;
  paidContracts: number;
  calls: number;
  coinPuts: number;
  entries: number[];
  lastSettledUsd: number;
}

function inputs(b: Book, spotUsd: number) {
  const e = (i: number) => b.entries[i % b.entries.length] as number;
  const pos = (p: Omit<RiskPosition, 'chain' | 'asOfMs'>): RiskPosition => ({
    chain: 'offchain',
    asOfMs: NOW,
    ...p,
  });
  const BTC = 'BTC';
  // A perp whose coin P&L the venue settles apart (as Deribit does each session): since it last settled
  // at `lastSettledUsd`, face × (1/settled − 1/mark) coins are still outside the balance, stated in USD
  // at the mark.
  const settlingFace = b.invSettlingContracts * 10;
  const unsettledPnlUsd = settlingFace * (spotUsd / b.lastSettledUsd - 1);
  const positions: RiskPosition[] = [
    pos({ venue: 'lin', instrument: 'BTC-USD:PERP', sizeBase: b.linPerp, entryPriceUsd: e(0) }),
    pos({ venue: 'lin', instrument: LIVE_FUT, sizeBase: b.linFut, entryPriceUsd: e(1) }),
    pos({
      venue: 'lin-c',
      instrument: 'BTC-USD:PERP',
      sizeBase: 0,
      contracts: b.linContracts,
      entryPriceUsd: e(2),
    }),
    pos({
      venue: 'inv',
      instrument: 'BTC-USD:PERP',
      sizeBase: 0,
      contracts: b.invPerpContracts,
      settlementCurrency: BTC,
      entryPriceUsd: e(3),
    }),
    pos({
      venue: 'inv',
      instrument: LIVE_FUT,
      sizeBase: 0,
      contracts: b.invFutContracts,
      settlementCurrency: BTC,
      entryPriceUsd: e(4),
    }),
    // Inverse ones in base units: the coin their face bought at entry.
    pos({
      venue: 'inv-b',
      instrument: 'BTC-USD:PERP',
      sizeBase: b.invPerpBase,
      settlementCurrency: BTC,
      entryPriceUsd: e(5),
    }),
    pos({
      venue: 'inv-b',
      instrument: LIVE_FUT,
      sizeBase: b.invFutBase,
      settlementCurrency: BTC,
      entryPriceUsd: e(6),
    }),
    pos({
      venue: 'inv-u',
      instrument: 'BTC-USD:PERP',
      sizeBase: 0,
      contracts: b.invSettlingContracts,
      settlementCurrency: BTC,
      entryPriceUsd: e(7),
      unsettledPnlUsd,
    }),
    // Expired, still listed, its coin not paid yet: the venue's own read after the expiry says so.
    pos({
      venue: 'inv',
      instrument: EXPIRED_FUT,
      sizeBase: 0,
      contracts: b.expiredContracts,
      settlementCurrency: BTC,
      entryPriceUsd: e(8),
    }),
    // Expired, still listed, its coin already paid into the balance: nothing left outside it.
    pos({
      venue: 'inv-u',
      instrument: EXPIRED_FUT,
      sizeBase: 0,
      contracts: b.paidContracts,
      settlementCurrency: BTC,
      entryPriceUsd: e(9),
      unsettledPnlUsd: 0,
    }),
    pos({ venue: 'amm', instrument: CALL, sizeBase: b.calls }),
    pos({ venue: 'inv', instrument: PUT, sizeBase: b.coinPuts, settlementCurrency: BTC }),
  ];
  const paidCoin = b.paidContracts * 100 * (1 / e(9) - 1 / SETTLED_USD);
  const balances: Balance[] = [
    { venue: 'inv', chain: 'offchain', asset: BTC, amount: 1.25, asOfMs: NOW },
    { venue: 'inv-u', chain: 'offchain', asset: BTC, amount: 2 + paidCoin, asOfMs: NOW },
    { venue: 'lin', chain: 'offchain', asset: 'USDC', amount: 100_000, asOfMs: NOW },
  ];
  const mark = (venue: string, instrument: string, markPriceUsd: number): Mark => ({
    venue,
    instrument,
    markPriceUsd,
    asOfMs: NOW,
  });
  const marks: Mark[] = [
    mark('lin', 'BTC-USD:PERP', spotUsd),
    mark('lin', LIVE_FUT, forward(spotUsd)),
    mark('lin-c', 'BTC-USD:PERP', spotUsd),
    mark('inv', 'BTC-USD:PERP', spotUsd),
    mark('inv', LIVE_FUT, forward(spotUsd)),
    mark('inv-b', 'BTC-USD:PERP', spotUsd),
    mark('inv-b', LIVE_FUT, forward(spotUsd)),
    mark('inv-u', 'BTC-USD:PERP', spotUsd),
    // No longer trading: its last mark stays where it was.
    mark('inv', EXPIRED_FUT, 57_000),
    mark('inv-u', EXPIRED_FUT, 57_000),
  ];
  return { positions, balances, marks, markets: MARKETS };
}

function valueAt(b: Book, spotUsd: number) {
  const inp = inputs(b, spotUsd);
  const engine = new RiskEngine({ clock: new ManualClock(NOW), staleAfterMs: 60_000 });
  engine.setBook({ positions: inp.positions, balances: inp.balances, markets: inp.markets });
  engine.setMarket('BTC', {
    spotUsd,
    volDecimal: 0.6,
    rateDecimal: RATE,
    asOfMs: NOW,
    settlementPricesUsd: { '20251226': SETTLED_USD },
  });
  engine.updateMarks(inp.marks);
  const snap = engine.snapshot({ scenarios: false });
  return { snap, equity: bookEquity(snap, inp) };
}

/** Δequity / Δspot by central difference, and the snapshot's delta, at `spotUsd`. */
function slopeAndDelta(b: Book, spotUsd: number) {
  const h = spotUsd * 1e-5;
  const up = valueAt(b, spotUsd + h).equity;
  const down = valueAt(b, spotUsd - h).equity;
  const here = valueAt(b, spotUsd);
  expect(up.unvalued).toEqual([]);
  expect(here.equity.unvalued).toEqual([]);
  return {
    slope: (up.equityUsd - down.equityUsd) / (2 * h),
    delta: here.snap.underlyings.BTC?.delta ?? Number.NaN,
  };
}

const NONE: Book = {
  linPerp: 0,
  linFut: 0,
  linContracts: 0,
  invPerpContracts: 0,
  invFutContracts: 0,
  invPerpBase: 0,
  invFutBase: 0,
  invSettlingContracts: 0,
  expiredContracts: 0,
  paidContracts: 0,
  calls: 0,
  coinPuts: 0,
  entries: [60_000],
  lastSettledUsd: 60_000,
};

describe('delta is the derivative of book equity', () => {
  it('long and short inverse perps and futures in contracts, entered away from spot: delta = face / entry', () => {
    const S = 60_000;
    for (const sign of [1, -1]) {
      // 3,000 perp contracts of 10 USD entered at 50,000, 400 future contracts of 100 USD at 75,000.
      const b: Book = {
        ...NONE,
        invPerpContracts: sign * 3_000,
        invFutContracts: sign * 400,
        entries: [0, 0, 0, 50_000, 75_000],
      };
      const { slope, delta } = slopeAndDelta(b, S);
      // Their USD value is the coin P&L at spot, face × (1/entry − 1/mark) × spot, plus 1.25 + 2 BTC held.
      const expected = 3.25 + sign * (30_000 / 50_000 + 40_000 / 75_000);
      expect(slope).toBeCloseTo(expected, 6);
      expect(delta).toBeCloseTo(expected, 9);
    }
  });

  it('an expired inverse future still listed with nothing outside the balance (unsettledPnlUsd 0) adds no coin', () => {
    const b: Book = { ...NONE, paidContracts: -500, entries: [0, 0, 0, 0, 0, 0, 0, 0, 0, 62_000] };
    const { slope, delta } = slopeAndDelta(b, 60_000);
    // The paid coin is in the inv-u balance: 2 + that coin, plus the 1.25 on inv, counted once.
    const paid = -500 * 100 * (1 / 62_000 - 1 / SETTLED_USD);
    expect(slope).toBeCloseTo(3.25 + paid, 6);
    expect(delta).toBeCloseTo(3.25 + paid, 9);
  });

  it('holds for any mix of linear and inverse perps and futures, long and short, contracts and base units (property)', () => {
    const size = fc.integer({ min: -40, max: 40 }).map((x) => x / 8);
    const contracts = fc.integer({ min: -5_000, max: 5_000 });
    const price = fc.integer({ min: 30_000, max: 90_000 });
    const book: fc.Arbitrary<Book> = fc.record({
      linPerp: size,
      linFut: size,
      linContracts: contracts,
      invPerpContracts: contracts,
      invFutContracts: contracts,
      invPerpBase: size,
      invFutBase: size,
      invSettlingContracts: contracts,
      expiredContracts: contracts,
      paidContracts: contracts,
      calls: size,
      coinPuts: size,
      entries: fc.array(price, { minLength: 10, maxLength: 10 }),
      lastSettledUsd: price,
    });
    fc.assert(
      fc.property(book, fc.integer({ min: 40_000, max: 80_000 }), (b, spotUsd) => {
        const { slope, delta } = slopeAndDelta(b, spotUsd);
        // Options are repriced (central difference: error ~h²); the rest is linear in spot.
        expect(Math.abs(slope - delta)).toBeLessThanOrEqual(1e-6 * (1 + Math.abs(delta)));
      }),
      { numRuns: 200, seed: 7 },
    );
  });

  it('a perp whose coin P&L the venue settles apart: delta = (face + unsettled USD) / mark = face / last settlement', () => {
    // 3,000 contracts of 10 USD bought at 50,000; the venue last settled its P&L at 55,000 (paid into the
    // balance then) and states the rest, 30,000 × (60,000/55,000 − 1) USD at the mark, as unsettled.
    const b: Book = { ...NONE, invSettlingContracts: 3_000, entries: [50_000], lastSettledUsd: 55_000 };
    const { slope, delta } = slopeAndDelta(b, 60_000);
    expect(slope).toBeCloseTo(3.25 + 30_000 / 55_000, 6);
    expect(delta).toBeCloseTo(3.25 + 30_000 / 55_000, 9);
  });
});

describe('an expired coin-settled future or option: its coin is counted once', () => {
  const EXPIRY = Date.UTC(2026, 2, 27, 8);
  const AFTER = EXPIRY + MS_PER_DAY;
  const FUT = 'BTC-USD:FUT:20260327';
  const COIN_CALL = 'BTC-USD:OPT:20260327:60000:C';
  const markets: NonNullable<RiskBook['markets']> = [
    {
      venue: 'deribit',
      instrument: instrumentMeta(FUT, { settlementCurrency: 'BTC', contractValueUsd: 10 }),
    },
  ];
  // Short 3,000 contracts of 10 USD sold at 60,000, settled at 75,000: −30,000 × (1/60,000 − 1/75,000)
  // = −0.1 BTC. Long 2 coin-settled 60,000 calls: 2 × 15,000 / 75,000 = +0.4 BTC.
  const futCoin = -30_000 * (1 / 60_000 - 1 / 75_000);
  const callCoin = (2 * 15_000) / 75_000;
  function at(
    spotUsd: number,
    reportedAtMs: number,
    balance: { amount: number; asOfMs: number; venue?: string },
  ) {
    const positions: RiskPosition[] = [
      {
        venue: 'deribit',
        chain: 'offchain',
        instrument: FUT,
        sizeBase: 0,
        contracts: -3_000,
        settlementCurrency: 'BTC',
        entryPriceUsd: 60_000,
        asOfMs: reportedAtMs,
      },
      {
        venue: 'deribit',
        chain: 'offchain',
        instrument: COIN_CALL,
        sizeBase: 2,
        settlementCurrency: 'BTC',
        asOfMs: reportedAtMs,
      },
    ];
    const balances: Balance[] = [
      {
        venue: balance.venue ?? 'deribit',
        chain: 'offchain',
        asset: 'BTC',
        amount: balance.amount,
        asOfMs: balance.asOfMs,
      },
    ];
    const engine = new RiskEngine({ clock: new ManualClock(AFTER), staleAfterMs: 10 * MS_PER_DAY });
    engine.setBook({ positions, balances, markets });
    engine.setMarket('BTC', {
      spotUsd,
      volDecimal: 0.6,
      asOfMs: AFTER,
      settlementPricesUsd: { '20260327': 75_000 },
    });
    const snap = engine.snapshot({ scenarios: false });
    return { snap, equity: bookEquity(snap, { positions, balances, marks: [], markets }) };
  }

  it('reported after the expiry and still listed, the coin is owed: counted from the position', () => {
    // The balance, read after the expiry too, does not hold it (a venue that paid reports the position closed).
    const { snap, equity } = at(80_000, AFTER, { amount: 1, asOfMs: AFTER });
    expect(snap.underlyings.BTC?.delta).toBeCloseTo(1 + futCoin + callCoin, 12);
    expect(equity.unvalued).toEqual([]);
    expect(equity.equityUsd).toBeCloseTo((1 + futCoin + callCoin) * 80_000, 6);
    expect(snap.warnings.join('\n')).not.toMatch(/counted from that balance alone/);
  });

  it('reported before the expiry while the balance was read after it: the balance alone counts, and says so', () => {
    // The venue has paid: the balance (read after the expiry) holds 1 + both coins; the position report,
    // from before the expiry, cannot say it was paid. Counting both would count the coin twice.
    const paid = 1 + futCoin + callCoin;
    const { snap, equity } = at(80_000, EXPIRY - 3_600_000, { amount: paid, asOfMs: AFTER });
    expect(snap.underlyings.BTC?.delta).toBeCloseTo(paid, 12);
    expect(snap.underlyings.BTC?.valueUsd).toBeCloseTo(paid * 80_000, 6);
    const said = snap.warnings.filter((w) => /counted from that balance alone/.test(w));
    expect(said).toEqual([
      `${FUT} on deribit was last reported before its expiry and the venue's BTC balance after it: what ` +
        'it settled into is counted from that balance alone (it may be paid in)',
      `${COIN_CALL} on deribit was last reported before its expiry and the venue's BTC balance after it: ` +
        'what it settled into is counted from that balance alone (it may be paid in)',
    ]);
    // Equity leaves them out too, and says it cannot vouch for the total (the breaker waits).
    expect(equity.unvalued).toEqual([`deribit:${FUT}`, `deribit:${COIN_CALL}`]);
    expect(equity.equityUsd).toBeCloseTo(paid * 80_000, 6);
    // And still moves with spot as the delta says.
    const up = at(80_800, EXPIRY - 3_600_000, { amount: paid, asOfMs: AFTER });
    expect(up.equity.equityUsd - equity.equityUsd).toBeCloseTo(paid * 800, 6);
  });

  it('a balance read before the expiry cannot hold the payment, nor can another venue’s: counted from the position', () => {
    const before = EXPIRY - 3_600_000;
    for (const balance of [
      { amount: 1, asOfMs: before },
      { amount: 1, asOfMs: AFTER, venue: 'elsewhere' },
    ]) {
      const { snap, equity } = at(80_000, before, balance);
      expect(snap.underlyings.BTC?.delta).toBeCloseTo(1 + futCoin + callCoin, 12);
      expect(equity.unvalued).toEqual([]);
      expect(equity.equityUsd).toBeCloseTo((1 + futCoin + callCoin) * 80_000, 6);
    }
  });

  it('keeps the horizon the tests need (the expired future of the property test expired before NOW)', () => {
    expect(EXPIRED_AT).toBeLessThan(NOW - MS_PER_DAY);
  });
});
