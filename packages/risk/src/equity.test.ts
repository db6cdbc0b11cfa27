import {
  type Balance,
  instrumentMeta,
  ManualClock,
  type Mark,
  MS_PER_DAY,
  MS_PER_YEAR,
  type Position,
} from '@xhedge/core';
import { bsm } from '@xhedge/pricing';
import { describe, expect, it } from 'vitest';
import { type RiskBook, RiskEngine, type RiskPosition } from './engine.ts';
import { bookEquity } from './equity.ts';

const NOW = Date.UTC(2026, 0, 1, 8);
const EXPIRY = Date.UTC(2026, 2, 31, 8);
const CALL = 'ETH-USD:OPT:20260331:4000:C';

function equityOf(positions: Position[], balances: Balance[], marks: Mark[] = [], spot = 3000) {
  const engine = new RiskEngine({ clock: new ManualClock(NOW), staleAfterMs: 60_000 });
  engine.setBook({ positions, balances });
  engine.setMarket('ETH', { spotUsd: spot, volDecimal: 0.7, rateDecimal: 0, asOfMs: NOW });
  engine.updateMarks(marks);
  return bookEquity(engine.snapshot({ scenarios: false }), { positions, balances, marks });
}

const pos = (p: Partial<RiskPosition> & Pick<Position, 'instrument' | 'sizeBase'>): RiskPosition => ({
  venue: 'v',
  chain: 'evm:42161',
  asOfMs: NOW,
  ...p,
});
const bal = (asset: string, amount: number, venue = 'v'): Balance => ({
  venue,
  chain: 'evm:42161',
  asset,
  amount,
  asOfMs: NOW,
});

describe('bookEquity', () => {
  it('sums cash at par, coins at spot, options at model, spot holdings at their mark and perp P&L', () => {
    const e = equityOf(
      [
        pos({ instrument: CALL, sizeBase: -2 }),
        pos({ instrument: 'ETH-USD:PERP', sizeBase: 1.5, entryPriceUsd: 2900 }),
        pos({ venue: 'amm', instrument: 'ETH-USDC:SPOT', sizeBase: 0.5 }),
      ],
      [bal('USDC', 10_000), bal('WETH', 2, 'amm'), bal('ETH', 1)],
      [
        { venue: 'v', instrument: 'ETH-USD:PERP', markPriceUsd: 3010, asOfMs: NOW },
        { venue: 'amm', instrument: 'ETH-USDC:SPOT', markPriceUsd: 3005, asOfMs: NOW },
      ],
    );
    const call = bsm({
      type: 'call',
      spot: 3000,
      strike: 4000,
      timeYears: (EXPIRY - NOW) / MS_PER_YEAR,
      vol: 0.7,
      rate: 0,
    });
    expect(e.cashUsd).toBe(10_000);
    expect(e.modelValueUsd).toBeCloseTo(3 * 3000 - 2 * call.price, 6);
    expect(e.spotUsd).toBeCloseTo(0.5 * 3005, 9);
    expect(e.unrealizedUsd).toBeCloseTo(1.5 * (3010 - 2900), 9);
    expect(e.equityUsd).toBeCloseTo(e.cashUsd + e.modelValueUsd + e.spotUsd + e.unrealizedUsd, 9);
    expect(e.unvalued).toEqual([]);
  });

  it('counts collateral in transit between venues, so a bridge transfer is not a loss', () => {
    const before = equityOf([], [bal('USDC', 10_000, 'a'), bal('ETH', 1, 'a')]);
    const balances = [bal('USDC', 6_000, 'a'), bal('ETH', 1, 'a')];
    const engine = new RiskEngine({ clock: new ManualClock(NOW), staleAfterMs: 60_000 });
    engine.setBook({ positions: [], balances });
    engine.setMarket('ETH', { spotUsd: 3000, volDecimal: 0.7, asOfMs: NOW });
    const snap = engine.snapshot({ scenarios: false });
    const during = bookEquity(
      snap,
      { positions: [], balances, marks: [] },
      {
        inTransit: [
          { asset: 'USDC', amount: 4_000 },
          { asset: 'WETH', amount: 1 },
          { asset: 'SOL', amount: 2 },
        ],
      },
    );
    expect(during.inTransitUsd).toBe(4_000 + 3000);
    expect(during.equityUsd - 3000).toBe(before.equityUsd);
    expect(during.unvalued).toEqual(['in-transit:SOL']);
  });

  it('moves by the book P&L when spot moves: a delta-hedged short call loses only its convexity', () => {
    const positions = [
      pos({ instrument: CALL, sizeBase: -10 }),
      pos({ instrument: 'ETH-USD:PERP', sizeBase: 3, entryPriceUsd: 3000 }),
    ];
    const at = (s: number) =>
      equityOf(
        positions,
        [bal('USDC', 50_000)],
        [{ venue: 'v', instrument: 'ETH-USD:PERP', markPriceUsd: s, asOfMs: NOW }],
        s,
      );
    const down = at(2700).equityUsd - at(3000).equityUsd;
    const up = at(3300).equityUsd - at(3000).equityUsd;
    // short gamma: both 10% moves cost money, and far less than an unhedged 10-call short would lose up
    expect(down).toBeLessThan(0);
    expect(up).toBeLessThan(0);
    expect(Math.abs(up)).toBeLessThan(10 * 300 * 0.5);
  });

  describe('perp P&L the venue settles apart from closing (Drift: unsettledPnlUsd)', () => {
    // Long 2 ETH entered at 3000, marked at 2800: a 400 USD loss, first still in the position, then
    // moved into the USDC deposit by a settle (the entry does not change, the position stays open).
    const mark = [{ venue: 'v', instrument: 'ETH-USD:PERP', markPriceUsd: 2800, asOfMs: NOW }];
    const long = (unsettledPnlUsd?: number) =>
      pos({
        instrument: 'ETH-USD:PERP',
        sizeBase: 2,
        entryPriceUsd: 3000,
        ...(unsettledPnlUsd === undefined ? {} : { unsettledPnlUsd }),
      });

    it('counts a settled loss once: the deposit holds it, the position no longer does', () => {
      const before = equityOf([long(-400)], [bal('USDC', 10_000)], mark, 2800);
      const after = equityOf([long(0)], [bal('USDC', 9_600)], mark, 2800);
      expect(before.unrealizedUsd).toBe(-400);
      expect(before.equityUsd).toBe(9_600);
      expect(after.unrealizedUsd).toBe(0);
      expect(after.equityUsd).toBe(9_600);
      // (mark − entry) × size after the settle counts the 400 twice: what unsettledPnlUsd avoids.
      expect(equityOf([long()], [bal('USDC', 9_600)], mark, 2800).equityUsd).toBe(9_200);
      expect(before.unvalued).toEqual([]);
      expect(after.unvalued).toEqual([]);
    });

    it('counts a partly settled gain as deposit + the unsettled rest', () => {
      // Marked at 3300: +600; 250 of it settled into the deposit, 350 still in the position.
      const up = [{ venue: 'v', instrument: 'ETH-USD:PERP', markPriceUsd: 3300, asOfMs: NOW }];
      const e = equityOf([long(350)], [bal('USDC', 10_250)], up, 3300);
      expect(e.unrealizedUsd).toBe(350);
      expect(e.equityUsd).toBe(10_600);
    });

    it('counts a closed position whose P&L is not settled yet (size 0), and adds no Greeks for it', () => {
      const closed = pos({ instrument: 'ETH-USD:PERP', sizeBase: 0, unsettledPnlUsd: -150 });
      const e = equityOf([closed], [bal('USDC', 10_000)], mark, 2800);
      expect(e.unrealizedUsd).toBe(-150);
      expect(e.equityUsd).toBe(9_850);
      expect(e.unvalued).toEqual([]);
      // A closed position without unsettled P&L is nothing.
      expect(
        equityOf([pos({ instrument: 'ETH-USD:PERP', sizeBase: 0 })], [bal('USDC', 10_000)]).equityUsd,
      ).toBe(10_000);
      const engine = new RiskEngine({ clock: new ManualClock(NOW), staleAfterMs: 60_000 });
      engine.setMarket('ETH', { spotUsd: 2800, volDecimal: 0.7, rateDecimal: 0, asOfMs: NOW });
      engine.setBook({ positions: [closed, long(-400)], balances: [] });
      const snap = engine.snapshot({ scenarios: false });
      expect(snap.underlyings.ETH?.delta).toBeCloseTo(2, 12);
    });

    it('values a perp with unsettledPnlUsd without a market for its underlying', () => {
      const sol = pos({
        instrument: 'SOL-USD:PERP',
        sizeBase: -3,
        entryPriceUsd: 180,
        unsettledPnlUsd: 12.5,
      });
      const e = equityOf([sol], [bal('USDC', 1_000)]);
      expect(e.unvalued).toEqual([]);
      expect(e.equityUsd).toBe(1_012.5);
    });
  });

  describe('collateral locked in positions (GMX: marginUsd) and P&L by side', () => {
    const mark = (px: number) => [{ venue: 'v', instrument: 'ETH-USD:PERP', markPriceUsd: px, asOfMs: NOW }];

    it('opening a position moves collateral from the wallet into the position: equity is unchanged', () => {
      const before = equityOf([], [bal('USDC', 10_000)], mark(3000), 3000);
      // Long 1 ETH at 3000 with 1 500 USDC collateral (leverage 2); the wallet is down by the collateral.
      const opened = (marginUsd?: number) =>
        pos({
          instrument: 'ETH-USD:PERP',
          sizeBase: 1,
          entryPriceUsd: 3000,
          unsettledPnlUsd: 0,
          ...(marginUsd === undefined ? {} : { marginUsd }),
        });
      const after = equityOf([opened(1_500)], [bal('USDC', 8_500)], mark(3000), 3000);
      expect(after.marginUsd).toBe(1_500);
      expect(after.cashUsd).toBe(8_500);
      expect(after.equityUsd).toBe(before.equityUsd);
      expect(after.unvalued).toEqual([]);
      // Without it, opening looks like losing the collateral (the false loss the breaker would see).
      expect(equityOf([opened()], [bal('USDC', 8_500)], mark(3000), 3000).equityUsd).toBe(
        before.equityUsd - 1_500,
      );
      // A fee taken from the collateral is the only cost.
      const withFee = equityOf([opened(1_498.5)], [bal('USDC', 8_500)], mark(3000), 3000);
      expect(withFee.equityUsd).toBeCloseTo(before.equityUsd - 1.5, 9);
    });

    it('values a market with both sides open by side, not by (mark − averaged entry) × net size', () => {
      // Long 2 ETH bought for 6 000 USD and short 1 ETH sold for 3 200 USD, marked at 3 100:
      // long 2 × 3100 − 6000 = +200, short 3200 − 3100 = +100 → +300. The net view (size +1, entry
      // averaged over both sides 9200 / 3) would say (3100 − 3066.67) × 1 = +33.33.
      const net = pos({
        instrument: 'ETH-USD:PERP',
        sizeBase: 1,
        entryPriceUsd: 9_200 / 3,
        unsettledPnlUsd: 300,
        marginUsd: 3_000 + 1_600,
      });
      const e = equityOf([net], [bal('USDC', 5_400)], mark(3100), 3100);
      expect(e.unrealizedUsd).toBe(300);
      expect(e.marginUsd).toBe(4_600);
      expect(e.equityUsd).toBe(5_400 + 4_600 + 300);
      const { unsettledPnlUsd: _, ...netOnly } = net;
      expect(equityOf([netOnly], [bal('USDC', 5_400)], mark(3100), 3100).unrealizedUsd).toBeCloseTo(
        100 / 3,
        9,
      );
    });

    it('counts a market whose long and short cancel (size 0) by its margin and P&L, with no delta', () => {
      // Long 1 ETH bought for 3 000, short 1 ETH sold for 3 200, marked at 3 100: +100 each side.
      const flat = pos({
        instrument: 'ETH-USD:PERP',
        sizeBase: 0,
        entryPriceUsd: 3_100,
        unsettledPnlUsd: 200,
        marginUsd: 3_100,
      });
      const e = equityOf([flat], [bal('USDC', 6_900)], mark(3100), 3100);
      expect(e.equityUsd).toBe(6_900 + 3_100 + 200);
      expect(e.unvalued).toEqual([]);
      const engine = new RiskEngine({ clock: new ManualClock(NOW), staleAfterMs: 60_000 });
      engine.setMarket('ETH', { spotUsd: 3100, volDecimal: 0.7, rateDecimal: 0, asOfMs: NOW });
      engine.setBook({ positions: [flat], balances: [] });
      expect(engine.snapshot({ scenarios: false }).underlyings.ETH?.delta ?? 0).toBe(0);
    });

    it('adds the margin of any kind of position, closed or not, even one it cannot value', () => {
      const e = equityOf(
        [
          pos({ instrument: CALL, sizeBase: 0, marginUsd: 250 }),
          pos({ instrument: 'ETH-USD:PERP', sizeBase: 0, marginUsd: 40 }),
          pos({ instrument: 'BTC-USD:PERP', sizeBase: 1, entryPriceUsd: 90_000, marginUsd: 10 }),
        ],
        [bal('USDC', 100)],
      );
      expect(e.marginUsd).toBe(300);
      expect(e.equityUsd).toBe(400);
      expect(e.unvalued).toEqual(['v:BTC-USD:PERP']);
    });
  });

  describe('positions in contracts', () => {
    // Long 25 linear contracts of 0.1 ETH (2.5 ETH) bought at 2,900; short 6,000 inverse contracts of
    // 1 USD (Deribit ETH-PERPETUAL: 6,000 USD face) sold at 3,000. Both marked.
    const positions: RiskPosition[] = [
      pos({ instrument: 'ETH-USD:PERP', sizeBase: 0, contracts: 25, entryPriceUsd: 2_900 }),
      pos({
        venue: 'deribit',
        chain: 'offchain',
        instrument: 'ETH-USD:PERP',
        sizeBase: 0,
        contracts: -6_000,
        settlementCurrency: 'ETH',
        entryPriceUsd: 3_000,
      }),
    ];
    const markets: NonNullable<RiskBook['markets']> = [
      { venue: 'v', instrument: instrumentMeta('ETH-USD:PERP', { contractSize: 0.1 }) },
      {
        venue: 'deribit',
        instrument: instrumentMeta('ETH-USD:PERP', { settlementCurrency: 'ETH', contractValueUsd: 1 }),
      },
    ];
    const marks: Mark[] = [
      { venue: 'v', instrument: 'ETH-USD:PERP', markPriceUsd: 3_010, asOfMs: NOW },
      { venue: 'deribit', instrument: 'ETH-USD:PERP', markPriceUsd: 3_300, asOfMs: NOW },
    ];
    function snapshot() {
      const engine = new RiskEngine({ clock: new ManualClock(NOW), staleAfterMs: 60_000 });
      engine.setBook({ positions, markets });
      engine.setMarket('ETH', { spotUsd: 3_300, volDecimal: 0.7, asOfMs: NOW });
      return engine.snapshot({ scenarios: false });
    }

    it('sizes them as the engine does: linear × contractSize, inverse by face / entry', () => {
      const e = bookEquity(snapshot(), { positions, balances: [], marks, markets });
      // Linear: 2.5 × (3,010 − 2,900) = 275. Inverse: −6,000 × (1/3,000 − 1/3,300) ETH at 3,300 = −600.
      expect(e.unrealizedUsd).toBeCloseTo(2.5 * 110 + -6_000 * (1 / 3_000 - 1 / 3_300) * 3_300, 9);
      expect(e.unrealizedUsd).toBeCloseTo(275 - 600, 9);
      expect(e.unvalued).toEqual([]);
    });

    it('lists inverse contracts it cannot size (no contractValueUsd) instead of valuing them at 0', () => {
      const e = bookEquity(snapshot(), { positions, balances: [], marks });
      expect(e.unvalued).toEqual(['deribit:ETH-USD:PERP']);
      // Without the venue's contract size a linear contract is 1 ETH (the engine's default too).
      expect(e.unrealizedUsd).toBeCloseTo(25 * 110, 9);
    });
  });

  describe('expired futures', () => {
    // ETH futures expiring 20260331, a day later: long 2 linear bought at 2,500, and short 6,000 inverse
    // contracts of 1 USD sold at 3,000; settled at 2,800. The venues still list both, marked stale.
    const FUT = 'ETH-USD:FUT:20260331';
    const AFTER = EXPIRY + MS_PER_DAY;
    const positions: RiskPosition[] = [
      pos({ instrument: FUT, sizeBase: 2, entryPriceUsd: 2_500, asOfMs: AFTER }),
      pos({
        venue: 'deribit',
        chain: 'offchain',
        instrument: FUT,
        sizeBase: 0,
        contracts: -6_000,
        settlementCurrency: 'ETH',
        entryPriceUsd: 3_000,
        asOfMs: AFTER,
      }),
    ];
    const markets: NonNullable<RiskBook['markets']> = [
      {
        venue: 'deribit',
        instrument: instrumentMeta(FUT, { settlementCurrency: 'ETH', contractValueUsd: 1 }),
      },
    ];
    const marks: Mark[] = [
      { venue: 'v', instrument: FUT, markPriceUsd: 2_900, asOfMs: AFTER },
      { venue: 'deribit', instrument: FUT, markPriceUsd: 2_900, asOfMs: AFTER },
    ];
    function at(spotUsd: number, settlementPricesUsd?: Record<string, number>) {
      const engine = new RiskEngine({ clock: new ManualClock(AFTER), staleAfterMs: 60_000 });
      engine.setBook({ positions, markets });
      const market = { spotUsd, volDecimal: 0.7, asOfMs: AFTER };
      engine.setMarket('ETH', settlementPricesUsd ? { ...market, settlementPricesUsd } : market);
      const snap = engine.snapshot({ scenarios: false });
      return { snap, equity: bookEquity(snap, { positions, balances: [], marks, markets }) };
    }

    it('fixes their P&L at the settlement price: linear in USD, inverse in coin worth it at spot', () => {
      const { snap, equity } = at(3_200, { '20260331': 2_800 });
      // Linear: 2 × (2,800 − 2,500) = 600 USD. Inverse: −6,000 × (1/3,000 − 1/2,800) = +0.142857 ETH.
      const coin = -6_000 * (1 / 3_000 - 1 / 2_800);
      expect(equity.unrealizedUsd).toBeCloseTo(600 + coin * 3_200, 9);
      expect(equity.unvalued).toEqual([]);
      // Equity moves with spot exactly as the snapshot's delta says: only the inverse one's coin.
      expect(snap.underlyings.ETH?.delta).toBeCloseTo(coin, 12);
      const up = at(3_520, { '20260331': 2_800 });
      expect(up.equity.equityUsd - equity.equityUsd).toBeCloseTo(coin * 320, 9);
      expect(up.equity.equityUsd - equity.equityUsd).toBeCloseTo(
        (snap.underlyings.ETH?.delta ?? Number.NaN) * 320,
        9,
      );
    });

    it('without a settlement price settles them at spot, as the engine does', () => {
      const { snap, equity } = at(3_200);
      const coin = -6_000 * (1 / 3_000 - 1 / 3_200);
      expect(equity.unrealizedUsd).toBeCloseTo(2 * (3_200 - 2_500) + coin * 3_200, 9);
      expect(snap.underlyings.ETH?.delta).toBeCloseTo(coin, 12);
    });
  });

  it('lists what it cannot value instead of guessing', () => {
    const e = equityOf(
      [
        pos({ instrument: 'ETH-USD:PERP', sizeBase: 1 }), // no entry price
        pos({ instrument: 'BTC-USD:PERP', sizeBase: 1, entryPriceUsd: 90_000 }), // no BTC market
      ],
      [bal('USDC', 100), bal('SOL', 3)],
    );
    expect(e.unvalued.sort()).toEqual(['v:BTC-USD:PERP', 'v:ETH-USD:PERP', 'v:SOL']);
    expect(e.equityUsd).toBe(100);
  });

  it('refuses to return a non-finite equity', () => {
    const engine = new RiskEngine({ clock: new ManualClock(NOW), staleAfterMs: 60_000 });
    engine.setMarket('ETH', { spotUsd: 3000, volDecimal: 0.7, asOfMs: NOW });
    const snap = engine.snapshot({ scenarios: false });
    expect(() =>
      bookEquity(snap, {
        positions: [],
        balances: [bal('USDC', Number.POSITIVE_INFINITY)],
        marks: [],
      }),
    ).toThrow(/not finite/);
  });
});
