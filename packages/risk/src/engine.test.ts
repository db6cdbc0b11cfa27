import { instrumentMeta, ManualClock, MS_PER_DAY, MS_PER_YEAR, ValidationError } from '@xhedge/core';
import { inverseOption, normCdf, normPdf, VolSurface } from '@xhedge/pricing';
import { describe, expect, it } from 'vitest';
import { MIN_SCENARIO_VOL_DECIMAL, RiskEngine, type RiskPosition } from './engine.ts';
import { RiskSnapshot } from './snapshot.ts';
import { unitGreeks } from './unit-greeks.ts';

const NOW = Date.UTC(2026, 0, 1, 8);
const EXPIRY = Date.UTC(2026, 2, 31, 8);
const T = (EXPIRY - NOW) / MS_PER_YEAR;
const S = 60_000;
const CALL = 'BTC-USD:OPT:20260331:70000:C';
const PUT = 'BTC-USD:OPT:20260331:60000:P';

/** Hand-written Black-Scholes (r = 0) so the expectations do not run through the engine's code path. */
function bs(type: 'C' | 'P', K: number, vol: number, spot = S) {
  const d1 = (Math.log(spot / K) + 0.5 * vol * vol * T) / (vol * Math.sqrt(T));
  const d2 = d1 - vol * Math.sqrt(T);
  const price = type === 'C' ? spot * normCdf(d1) - K * normCdf(d2) : K * normCdf(-d2) - spot * normCdf(-d1);
  const delta = type === 'C' ? normCdf(d1) : normCdf(d1) - 1;
  const gamma = normPdf(d1) / (spot * vol * Math.sqrt(T));
  const vega = (spot * normPdf(d1) * Math.sqrt(T)) / 100;
  const theta = -(spot * normPdf(d1) * vol) / (2 * Math.sqrt(T)) / 365;
  return { price, delta, gamma, vega, theta };
}

function rel(actual: number, expected: number): void {
  const scale = Math.max(Math.abs(expected), 1e-12);
  expect(Math.abs(actual - expected) / scale).toBeLessThanOrEqual(1e-9);
}

function book(clock: ManualClock) {
  const positions: RiskPosition[] = [
    // Coin-settled (Deribit-style) call, long 2.
    {
      venue: 'deribit',
      chain: 'offchain',
      instrument: CALL,
      sizeBase: 2,
      settlementCurrency: 'BTC',
      asOfMs: NOW,
    },
    // Inverse perp in USD contracts of 10: short 3,000 contracts = 30,000 USD face.
    {
      venue: 'deribit',
      chain: 'offchain',
      instrument: 'BTC-USD:PERP',
      sizeBase: 0,
      contracts: -3000,
      settlementCurrency: 'BTC',
      asOfMs: NOW,
    },
    // Linear put on an Arbitrum AMM, short 3; its position report is two minutes old.
    { venue: 'lyra-arb', chain: 'evm:42161', instrument: PUT, sizeBase: -3, asOfMs: NOW - 120_000 },
    // Linear perp on Solana, long 1.2.
    {
      venue: 'drift-sol',
      chain: 'solana:mainnet-beta',
      instrument: 'BTC-USD:PERP',
      sizeBase: 1.2,
      asOfMs: NOW,
    },
    // ETH perp on Optimism.
    { venue: 'perp-op', chain: 'evm:10', instrument: 'ETH-USD:PERP', sizeBase: 10, asOfMs: NOW },
  ];
  const engine = new RiskEngine({ clock, staleAfterMs: 30_000 });
  engine.setBook({
    positions,
    balances: [
      { venue: 'deribit', chain: 'offchain', asset: 'BTC', amount: 1.5, asOfMs: NOW },
      { venue: 'lyra-arb', chain: 'evm:42161', asset: 'USDC', amount: 50_000, asOfMs: NOW },
    ],
    funding: [{ venue: 'drift-sol', instrument: 'BTC-USD:PERP', ratePerHour: 0.0001, asOfMs: NOW }],
    markets: [
      {
        venue: 'deribit',
        instrument: instrumentMeta('BTC-USD:PERP', { settlementCurrency: 'BTC', contractValueUsd: 10 }),
      },
    ],
  });
  engine.setMarket('BTC', { spotUsd: S, volDecimal: 0.6, rateDecimal: 0, asOfMs: NOW });
  engine.setMarket('ETH', { spotUsd: 3000, volDecimal: 0.7, asOfMs: NOW });
  engine.updateMarks([
    { venue: 'deribit', instrument: CALL, markPriceUsd: 1000, ivDecimal: 0.55, asOfMs: NOW },
  ]);
  return engine;
}

describe('RiskEngine: hand-computed book', () => {
  const clock = new ManualClock(NOW);
  const engine = book(clock);
  const snap = engine.snapshot();
  const btc = snap.underlyings.BTC;
  const c = bs('C', 70_000, 0.55);
  const p = bs('P', 60_000, 0.6);
  const invPerp = -30_000 / S; // -0.5 BTC
  const balance = 1.5;
  const perp = 1.2;

  it('is a valid, versioned snapshot with seq 1', () => {
    expect(() => RiskSnapshot.parse(JSON.parse(JSON.stringify(snap)))).not.toThrow();
    expect(snap.version).toBe(1);
    expect(snap.seq).toBe(1);
    expect(engine.snapshot({ scenarios: false }).seq).toBe(2);
  });

  it('aggregates delta, gamma, vega, theta per underlying to 1e-9', () => {
    if (!btc) throw new Error('no BTC');
    const delta = 2 * c.delta + invPerp + balance - 3 * p.delta + perp;
    rel(btc.delta, delta);
    rel(btc.deltaUsd, delta * S);
    // Coin-settled call: net delta = BS delta − price in coin.
    rel(btc.netDeltaCoin, 2 * (c.delta - c.price / S) + invPerp + balance - 3 * p.delta + perp);
    const gamma = 2 * c.gamma - 3 * p.gamma;
    rel(btc.gamma, gamma);
    rel(btc.gamma1PctUsd, gamma * S * S * 0.01);
    rel(btc.vegaPerVolPoint, 2 * c.vega - 3 * p.vega);
    rel(btc.thetaPerDay, 2 * c.theta - 3 * p.theta);
    rel(btc.valueUsd, 2 * c.price - 3 * p.price + balance * S);
    rel(btc.fundingUsdPerHour, -perp * S * 0.0001);
    expect(btc.vegaByExpiry['20260331']).toBeCloseTo(2 * c.vega - 3 * p.vega, 9);
    expect(btc.vegaByBucket['30-90d']).toBeCloseTo(2 * c.vega - 3 * p.vega, 9);
    const eth = snap.underlyings.ETH;
    expect(eth?.delta).toBe(10);
    expect(eth?.deltaUsd).toBe(30_000);
    expect(Object.keys(eth?.byChain ?? {})).toEqual(['evm:10']);
  });

  it('breaks down by venue and by chain', () => {
    if (!btc) throw new Error('no BTC');
    const deribit = btc.byVenue.deribit;
    rel(deribit?.delta ?? 0, 2 * c.delta + invPerp + balance);
    rel(btc.byChain.offchain?.delta ?? 0, 2 * c.delta + invPerp + balance);
    rel(btc.byVenue['lyra-arb']?.delta ?? 0, -3 * p.delta);
    rel(btc.byChain['evm:42161']?.vegaPerVolPoint ?? 0, -3 * p.vega);
    rel(btc.byChain['solana:mainnet-beta']?.delta ?? 0, perp);
    expect(Object.keys(btc.byChain).sort()).toEqual(['evm:42161', 'offchain', 'solana:mainnet-beta']);
    // USDC balance is not delta.
    rel(btc.byVenue['lyra-arb']?.valueUsd ?? 0, -3 * p.price);
  });

  it('revalues the scenario grid in full', () => {
    const grid = btc?.scenarios;
    if (!grid) throw new Error('no grid');
    const j = grid.spotShocksPct.indexOf(10);
    const i = grid.volShocksPts.indexOf(0);
    const up = 1.1 * S;
    const expected =
      (invPerp + balance + perp) * S * 0.1 +
      2 * (bs('C', 70_000, 0.55, up).price - c.price) -
      3 * (bs('P', 60_000, 0.6, up).price - p.price);
    rel(grid.pnlUsd[i]?.[j] ?? Number.NaN, expected);
    const k = grid.volShocksPts.indexOf(10);
    const vUp = 2 * (bs('C', 70_000, 0.65).price - c.price) - 3 * (bs('P', 60_000, 0.7).price - p.price);
    rel(grid.pnlUsd[k]?.[grid.spotShocksPct.indexOf(0)] ?? Number.NaN, vUp);
  });

  it('lists stale inputs and by how much', () => {
    expect(snap.staleCount).toBe(1);
    expect(snap.stale[0]).toMatchObject({
      kind: 'position',
      venue: 'lyra-arb',
      key: PUT,
      ageMs: 120_000,
      staleByMs: 90_000,
    });
  });
});

describe('RiskEngine: incremental updates and venue Greeks', () => {
  it('re-derives the inverse perp size from its USD face when spot moves, without a rebuild', () => {
    const clock = new ManualClock(NOW);
    const engine = book(clock);
    engine.setMarket('BTC', { spotUsd: 50_000, volDecimal: 0.6, asOfMs: NOW });
    const snap = engine.snapshot({ scenarios: false });
    const d = snap.underlyings.BTC?.byVenue.deribit?.delta ?? Number.NaN;
    const c = bs('C', 70_000, 0.55, 50_000);
    rel(d, 2 * c.delta - 30_000 / 50_000 + 1.5);
    expect(snap.underlyings.BTC?.scenarios).toBeUndefined();
  });

  it('uses a new mark IV on the next snapshot and flags time-based staleness', () => {
    const clock = new ManualClock(NOW);
    const engine = book(clock);
    clock.advance(60_000);
    engine.setMarket('BTC', { spotUsd: S, volDecimal: 0.6, asOfMs: NOW + 60_000 });
    engine.setMarket('ETH', { spotUsd: 3000, volDecimal: 0.7, asOfMs: NOW + 60_000 });
    engine.updateMarks([
      { venue: 'deribit', instrument: CALL, markPriceUsd: 1000, ivDecimal: 0.8, asOfMs: NOW + 60_000 },
    ]);
    const snap = engine.snapshot({ scenarios: false });
    const kinds = snap.stale.map((s) => `${s.kind}:${s.venue ?? ''}:${s.key}`).sort();
    // Positions, balances and funding are all a minute old now.
    expect(kinds).toContain('funding:drift-sol:BTC-USD:PERP');
    expect(kinds).toContain('balance:deribit:BTC');
    expect(kinds).not.toContain(`mark:deribit:${CALL}`);
    expect(snap.staleCount).toBe(snap.stale.length);
  });

  it('flags venue Greeks that diverge beyond tolerance and passes those that agree', () => {
    const clock = new ManualClock(NOW);
    const engine = book(clock);
    const c = bs('C', 70_000, 0.55);
    engine.setVenueGreeks('deribit', [
      {
        instrument: CALL,
        greeks: {
          delta: c.delta + 0.05,
          gamma: c.gamma,
          vegaPerVolPoint: c.vega * 1.01,
          thetaPerDay: c.theta,
          rhoPer1Pct: 0,
        },
        convention: 'deribit: BS delta, vega USD/pt, theta USD/day',
        asOfMs: NOW,
      },
    ]);
    const snap = engine.snapshot({ scenarios: false });
    expect(snap.divergences.map((d) => d.greek)).toEqual(['delta']);
    expect(snap.divergences[0]?.absDiff).toBeCloseTo(0.05, 12);
  });

  it('does not compare venue Greeks older than the staleness limit: listed as stale, and said so (regression: compared as if fresh)', () => {
    const clock = new ManualClock(NOW);
    const engine = book(clock);
    const c = bs('C', 70_000, 0.55);
    const off = (asOfMs: number) => [
      {
        instrument: CALL,
        greeks: {
          delta: c.delta + 0.05,
          gamma: c.gamma,
          vegaPerVolPoint: c.vega,
          thetaPerDay: c.theta,
          rhoPer1Pct: 0,
        },
        convention: 'deribit: BS delta, vega USD/pt, theta USD/day',
        asOfMs,
      },
    ];
    // the venue's last set, 40 s old (its reads failing since), over a limit of 30 s
    engine.setVenueGreeks('deribit', off(NOW - 40_000));
    const old = engine.snapshot({ scenarios: false });
    expect(old.divergences).toEqual([]);
    expect(old.stale).toContainEqual(
      expect.objectContaining({ kind: 'venue-greeks', venue: 'deribit', key: CALL, staleByMs: 10_000 }),
    );
    expect(old.warnings).toContainEqual(
      `deribit Greeks of 1 instrument(s) held are older than 30000 ms: not compared with the model (listed as stale), e.g. ${CALL} (40000 ms old)`,
    );
    expect(RiskSnapshot.safeParse(old).success).toBe(true);
    // at the limit they are still fresh, and compared
    engine.setVenueGreeks('deribit', off(NOW - 30_000));
    const atLimit = engine.snapshot({ scenarios: false });
    expect(atLimit.divergences.map((d) => d.greek)).toEqual(['delta']);
    expect(atLimit.warnings.join('\n')).not.toMatch(/not compared with the model/);
  });

  it('warns instead of guessing when an underlying has no market, and values expired options at intrinsic', () => {
    const clock = new ManualClock(EXPIRY + MS_PER_DAY);
    const engine = new RiskEngine({ clock });
    engine.setBook({
      positions: [
        { venue: 'v-one', chain: 'offchain', instrument: CALL, sizeBase: 1, asOfMs: EXPIRY },
        { venue: 'v-one', chain: 'offchain', instrument: 'SOL-USD:PERP', sizeBase: 1, asOfMs: EXPIRY },
      ],
    });
    engine.setMarket('BTC', { spotUsd: 80_000, volDecimal: 0.6, asOfMs: EXPIRY + MS_PER_DAY });
    const snap = engine.snapshot();
    expect(snap.underlyings.SOL).toBeUndefined();
    expect(snap.warnings.join('\n')).toMatch(/no market .* for SOL/);
    expect(snap.warnings.join('\n')).toMatch(/expired and its settlement price is not known/);
    // Cash-settled: the payoff is fixed, so no delta even though spot is far above the strike.
    expect(snap.underlyings.BTC?.delta).toBe(0);
    expect(snap.underlyings.BTC?.valueUsd).toBe(10_000);
  });
});

describe('RiskEngine: expired options', () => {
  const DAY_AFTER = EXPIRY + MS_PER_DAY;
  const LIVE_CALL = 'BTC-USD:OPT:20260626:90000:C';
  function expiredBook(settlementPricesUsd?: Record<string, number>) {
    const engine = new RiskEngine({ clock: new ManualClock(DAY_AFTER) });
    engine.setBook({
      positions: [
        // Long 2 of the 70,000 call, USD-settled (AMM), and long 3 coin-settled (Deribit-style); both
        // expired in the money and still listed by their venues.
        { venue: 'lyra-arb', chain: 'evm:42161', instrument: CALL, sizeBase: 2, asOfMs: DAY_AFTER },
        {
          venue: 'deribit',
          chain: 'offchain',
          instrument: CALL,
          sizeBase: 3,
          settlementCurrency: 'BTC',
          asOfMs: DAY_AFTER,
        },
        // A live call, to show the expired ones are out of the option delta and its bounds.
        { venue: 'lyra-arb', chain: 'evm:42161', instrument: LIVE_CALL, sizeBase: 1, asOfMs: DAY_AFTER },
      ],
    });
    const market = { spotUsd: 80_000, volDecimal: 0.6, rateDecimal: 0, asOfMs: DAY_AFTER };
    engine.setMarket('BTC', settlementPricesUsd ? { ...market, settlementPricesUsd } : market);
    return engine;
  }

  it('an expired in-the-money cash-settled call contributes no delta, gamma or vega and is worth its settlement payoff', () => {
    const snap = expiredBook({ '20260331': 75_000 }).snapshot();
    const btc = snap.underlyings.BTC;
    const lyra = btc?.byVenue['lyra-arb'];
    const deribit = btc?.byVenue.deribit;
    const liveT = (Date.UTC(2026, 5, 26, 8) - DAY_AFTER) / MS_PER_YEAR;
    const g = inverseOption({ type: 'call', spot: 80_000, strike: 90_000, timeYears: liveT, vol: 0.6 });
    // USD-settled: 2 × (75,000 − 70,000) USD, fixed; the live call is all the venue's delta.
    rel(lyra?.delta ?? Number.NaN, g.delta);
    rel(lyra?.gamma ?? Number.NaN, g.gamma);
    rel(lyra?.vegaPerVolPoint ?? Number.NaN, g.vegaPerVolPoint);
    rel(lyra?.valueUsd ?? Number.NaN, 2 * 5_000 + g.price);
    // Coin-settled: 3 × 5,000 / 75,000 BTC paid, a coin amount (delta like a balance), no coin net delta.
    const coin = (3 * 5_000) / 75_000;
    rel(deribit?.delta ?? Number.NaN, coin);
    expect(deribit?.gamma).toBe(0);
    expect(deribit?.vegaPerVolPoint).toBe(0);
    expect(deribit?.netDeltaCoin).toBe(0);
    rel(deribit?.valueUsd ?? Number.NaN, coin * 80_000);
    // Only the live call moves with vol.
    rel(btc?.optionDeltaBase ?? Number.NaN, g.delta);
    expect([btc?.optionDeltaFloorBase, btc?.optionDeltaCeilingBase]).toEqual([0, 1]);
    // Scenario grid: the expired payoffs do not move with spot, except the coin paid.
    const grid = btc?.scenarios;
    const j = grid?.spotShocksPct.indexOf(10) ?? -1;
    const i = grid?.volShocksPts.indexOf(0) ?? -1;
    rel(
      grid?.pnlUsd[i]?.[j] ?? Number.NaN,
      coin * 80_000 * 0.1 +
        inverseOption({ type: 'call', spot: 88_000, strike: 90_000, timeYears: liveT, vol: 0.6 }).price -
        g.price,
    );
    expect(snap.warnings.join('\n')).toMatch(
      `${CALL} has expired: valued at its payoff at the settlement price 75000`,
    );
  });

  it('without a settlement price an expired option is valued at intrinsic at spot, still without delta, and says so', () => {
    const snap = expiredBook().snapshot({ scenarios: false });
    const lyra = snap.underlyings.BTC?.byVenue['lyra-arb'];
    const deribit = snap.underlyings.BTC?.byVenue.deribit;
    const liveT = (Date.UTC(2026, 5, 26, 8) - DAY_AFTER) / MS_PER_YEAR;
    const g = inverseOption({ type: 'call', spot: 80_000, strike: 90_000, timeYears: liveT, vol: 0.6 });
    rel(lyra?.delta ?? Number.NaN, g.delta);
    rel(lyra?.valueUsd ?? Number.NaN, 2 * 10_000 + g.price);
    rel(deribit?.delta ?? Number.NaN, (3 * 10_000) / 80_000);
    expect(snap.warnings.join('\n')).toMatch(
      `${CALL} has expired and its settlement price is not known: valued at intrinsic at spot 80000`,
    );
  });

  it('refuses a settlement price that is not a price', () => {
    const engine = new RiskEngine({ clock: new ManualClock(DAY_AFTER) });
    expect(() =>
      engine.setMarket('BTC', {
        spotUsd: 80_000,
        volDecimal: 0.6,
        asOfMs: DAY_AFTER,
        settlementPricesUsd: { '20260331': Number.NaN },
      }),
    ).toThrow('settlement price of BTC 20260331 is not a finite number');
  });
});

describe('RiskEngine: expired futures', () => {
  const DAY_AFTER = EXPIRY + MS_PER_DAY;
  const EXPIRED_FUT = 'BTC-USD:FUT:20260331';
  const LIVE_FUT = 'BTC-USD:FUT:20260626';
  const liveT = (Date.UTC(2026, 5, 26, 8) - DAY_AFTER) / MS_PER_YEAR;
  function expiredBook(
    settlementPricesUsd?: Record<string, number>,
    inverseEntryUsd: number | null = 60_000,
  ) {
    const engine = new RiskEngine({ clock: new ManualClock(DAY_AFTER) });
    engine.setBook({
      positions: [
        // Long 2 of a linear (USD-margined) future bought at 70,000, expired and still listed.
        {
          venue: 'paper',
          chain: 'evm:42161',
          instrument: EXPIRED_FUT,
          sizeBase: 2,
          entryPriceUsd: 70_000,
          asOfMs: DAY_AFTER,
        },
        // Short 3,000 inverse contracts of 10 USD (30,000 USD face) sold at 60,000, expired too.
        {
          venue: 'deribit',
          chain: 'offchain',
          instrument: EXPIRED_FUT,
          sizeBase: 0,
          contracts: -3000,
          settlementCurrency: 'BTC',
          ...(inverseEntryUsd === null ? {} : { entryPriceUsd: inverseEntryUsd }),
          asOfMs: DAY_AFTER,
        },
        // A live future, to show the expired ones are out of the delta.
        { venue: 'paper', chain: 'evm:42161', instrument: LIVE_FUT, sizeBase: 1, asOfMs: DAY_AFTER },
      ],
      markets: [
        {
          venue: 'deribit',
          instrument: instrumentMeta(EXPIRED_FUT, { settlementCurrency: 'BTC', contractValueUsd: 10 }),
        },
      ],
    });
    const market = { spotUsd: 80_000, volDecimal: 0.6, rateDecimal: 0.05, asOfMs: DAY_AFTER };
    engine.setMarket('BTC', settlementPricesUsd ? { ...market, settlementPricesUsd } : market);
    return engine;
  }

  it('an expired linear future has no delta; an inverse one is the coin its P&L settled into', () => {
    const snap = expiredBook({ '20260331': 75_000 }).snapshot();
    const btc = snap.underlyings.BTC;
    // Linear: 2 × (75,000 − 70,000) USD, fixed; only the live future has delta, e^{rT}.
    const live = Math.exp(0.05 * liveT);
    rel(btc?.byVenue.paper?.delta ?? Number.NaN, live);
    // Inverse: −30,000 × (1/60,000 − 1/75,000) = −0.1 BTC lost, a coin amount: delta like a coin balance.
    const coin = -30_000 * (1 / 60_000 - 1 / 75_000);
    const deribit = btc?.byVenue.deribit;
    rel(deribit?.delta ?? Number.NaN, coin);
    rel(deribit?.netDeltaCoin ?? Number.NaN, coin);
    expect(deribit?.valueUsd).toBe(0); // a future's P&L is bookEquity's
    rel(btc?.delta ?? Number.NaN, live + coin);
    // Scenario grid: the expired futures do not move with spot beyond the coin.
    const grid = btc?.scenarios;
    const j = grid?.spotShocksPct.indexOf(10) ?? -1;
    rel(grid?.pnlUsd[0]?.[j] ?? Number.NaN, (live + coin) * 80_000 * 0.1);
    expect(btc?.settlementPricesUsd).toEqual({ '20260331': 75_000 });
    expect(snap.warnings.join('\n')).toMatch(
      `${EXPIRED_FUT} has expired: its P&L is settled at the settlement price 75000`,
    );
  });

  it('a re-sync that changes only an entry price updates the settled coin (the book diff sees entries)', () => {
    const clock = new ManualClock(DAY_AFTER);
    const engine = new RiskEngine({ clock });
    const markets = [
      {
        venue: 'deribit',
        instrument: instrumentMeta(EXPIRED_FUT, { settlementCurrency: 'BTC', contractValueUsd: 10 }),
      },
    ];
    const short = (entryPriceUsd: number): RiskPosition => ({
      venue: 'deribit',
      chain: 'offchain',
      instrument: EXPIRED_FUT,
      sizeBase: 0,
      contracts: -3000,
      settlementCurrency: 'BTC',
      entryPriceUsd,
      asOfMs: DAY_AFTER,
    });
    engine.setMarket('BTC', {
      spotUsd: 80_000,
      volDecimal: 0.6,
      asOfMs: DAY_AFTER,
      settlementPricesUsd: { '20260331': 75_000 },
    });
    engine.setBook({ positions: [short(60_000)], markets });
    rel(engine.snapshot().underlyings.BTC?.delta ?? Number.NaN, -30_000 * (1 / 60_000 - 1 / 75_000));
    engine.setBook({ positions: [short(50_000)], markets });
    rel(engine.snapshot().underlyings.BTC?.delta ?? Number.NaN, -30_000 * (1 / 50_000 - 1 / 75_000));
  });

  it('unitGreeks: a future has no Greeks from its expiry instant on', () => {
    const meta = instrumentMeta(EXPIRED_FUT);
    expect(unitGreeks(meta, 80_000, 0.6, 0.05, EXPIRY - 1).delta).toBeCloseTo(1, 9);
    for (const nowMs of [EXPIRY, DAY_AFTER]) {
      const g = unitGreeks(meta, 80_000, 0.6, 0.05, nowMs);
      expect([g.delta, g.netDeltaCoinInverse, g.priceUsd, g.settledCoinPerUnit]).toEqual([0, 0, 0, 0]);
    }
  });

  it('without a settlement price it settles at spot and says so; without an entry its coin is not counted', () => {
    const snap = expiredBook().snapshot({ scenarios: false });
    const btc = snap.underlyings.BTC;
    rel(btc?.byVenue.paper?.delta ?? Number.NaN, Math.exp(0.05 * liveT));
    rel(btc?.byVenue.deribit?.delta ?? Number.NaN, -30_000 * (1 / 60_000 - 1 / 80_000));
    expect(btc?.settlementPricesUsd).toBeUndefined();
    expect(snap.warnings.join('\n')).toMatch(
      `${EXPIRED_FUT} has expired and its settlement price is not known: its P&L is settled at spot 80000`,
    );
    const noEntry = expiredBook({ '20260331': 75_000 }, null).snapshot({ scenarios: false });
    expect(noEntry.underlyings.BTC?.byVenue.deribit?.delta).toBe(0);
    expect(noEntry.warnings.join('\n')).toMatch(
      `${EXPIRED_FUT} on deribit has expired with 1 position(s) or fill(s) without an entry price`,
    );
  });
});

describe('RiskEngine: contract sizes', () => {
  it('turns linear contracts into underlying units with the venue contract size', () => {
    const clock = new ManualClock(NOW);
    const engine = new RiskEngine({ clock });
    engine.setBook({
      positions: [
        {
          venue: 'op-perp',
          chain: 'evm:10',
          instrument: 'ETH-USD:PERP',
          sizeBase: 0,
          contracts: 25,
          asOfMs: NOW,
        },
        { venue: 'op-perp', chain: 'evm:10', instrument: 'ETH-USD:PERP', sizeBase: -1, asOfMs: NOW },
      ],
      markets: [{ venue: 'op-perp', instrument: instrumentMeta('ETH-USD:PERP', { contractSize: 0.1 }) }],
    });
    engine.setMarket('ETH', { spotUsd: 3000, volDecimal: 0.7, asOfMs: NOW });
    const eth = engine.snapshot({ scenarios: false }).underlyings.ETH;
    expect(eth?.delta).toBeCloseTo(25 * 0.1 - 1, 12);
    expect(eth?.positionCount).toBe(2);
  });

  const FUT = 'BTC-USD:FUT:20260626';
  const invFut = (contracts: number) => ({
    venue: 'deribit',
    chain: 'offchain',
    instrument: FUT,
    sizeBase: 0,
    contracts,
    settlementCurrency: 'BTC',
    asOfMs: NOW,
  });

  it('sizes an inverse dated future in contracts by its USD face: delta = the coin the face bought at entry', () => {
    const clock = new ManualClock(NOW);
    const engine = new RiskEngine({ clock });
    const markets = [
      {
        venue: 'deribit',
        instrument: instrumentMeta(FUT, { settlementCurrency: 'BTC', contractValueUsd: 10 }),
      },
    ];
    // Short 3,000 contracts of 10 USD sold at 64,000: a 30,000 USD short, not 3,000 BTC.
    engine.setBook({ positions: [{ ...invFut(-3000), entryPriceUsd: 64_000 }], markets });
    engine.setMarket('BTC', { spotUsd: S, volDecimal: 0.6, rateDecimal: 0.05, asOfMs: NOW });
    // Its P&L is −30,000 × (1/64,000 − 1/forward) BTC, worth that × spot: −30,000 × spot / 64,000 +
    // 30,000 × e^{−rT} USD, so its delta is −30,000 / 64,000 BTC at any spot, rate or not.
    rel(engine.snapshot({ scenarios: false }).underlyings.BTC?.delta ?? Number.NaN, -30_000 / 64_000);
    engine.setMarket('BTC', { spotUsd: 50_000, volDecimal: 0.6, rateDecimal: 0.05, asOfMs: NOW });
    const btc = engine.snapshot().underlyings.BTC;
    rel(btc?.delta ?? Number.NaN, -30_000 / 64_000);
    const grid = btc?.scenarios;
    rel(grid?.pnlUsd[0]?.[grid.spotShocksPct.indexOf(10)] ?? Number.NaN, (-30_000 / 64_000) * 5_000);
    // Without an entry price it is taken as entered at the price it trades at (no coin P&L yet): the
    // model's forward here, there being no mark. The snapshot says so.
    engine.setBook({ positions: [invFut(-3000)], markets });
    const forward = 50_000 * Math.exp((0.05 * (Date.UTC(2026, 5, 26, 8) - NOW)) / MS_PER_YEAR);
    const snap = engine.snapshot({ scenarios: false });
    rel(snap.underlyings.BTC?.delta ?? Number.NaN, -30_000 / forward);
    expect(snap.warnings.join('\n')).toMatch(
      `${FUT} on deribit: 1 coin-settled position(s) without an entry price: delta takes them as entered at the mark`,
    );
  });

  it('refuses inverse perps and futures in contracts without a contractValueUsd, and keeps the book as it was', () => {
    const engine = new RiskEngine({ clock: new ManualClock(NOW) });
    engine.setMarket('BTC', { spotUsd: S, volDecimal: 0.6, asOfMs: NOW });
    const { contracts: _inContracts, ...inCoin } = invFut(0);
    engine.setBook({ positions: [{ ...inCoin, sizeBase: -0.5 }] });
    expect(() => engine.setBook({ positions: [invFut(-3000)] })).toThrow(
      /position deribit BTC-USD:FUT:20260626: contracts: -3000 contracts of an inverse future whose instrument has no contractValueUsd/,
    );
    expect(() => engine.upsertPositions([{ ...invFut(-3000), instrument: 'BTC-USD:PERP' }])).toThrow(
      /inverse perp whose instrument has no contractValueUsd/,
    );
    // New metadata without a face value is refused too, before the book is rebuilt on it.
    expect(() =>
      engine.setBook({
        positions: [invFut(-3000)],
        markets: [{ venue: 'deribit', instrument: instrumentMeta(FUT, { settlementCurrency: 'BTC' }) }],
      }),
    ).toThrow(ValidationError);
    expect(engine.snapshot({ scenarios: false }).underlyings.BTC?.delta).toBe(-0.5);
  });
});

describe('RiskEngine: pricing models', () => {
  it('coin-settled options use pricing’s inverse model for the coin net delta', () => {
    const clock = new ManualClock(NOW);
    const engine = new RiskEngine({ clock });
    engine.setBook({
      positions: [
        {
          venue: 'deribit',
          chain: 'offchain',
          instrument: PUT,
          sizeBase: -4,
          settlementCurrency: 'BTC',
          asOfMs: NOW,
        },
      ],
    });
    engine.setMarket('BTC', { spotUsd: S, volDecimal: 0.6, asOfMs: NOW });
    const btc = engine.snapshot({ scenarios: false }).underlyings.BTC;
    const g = inverseOption({ type: 'put', spot: S, strike: 60_000, timeYears: T, vol: 0.6 });
    rel(btc?.netDeltaCoin ?? Number.NaN, -4 * g.netDeltaCoin);
    rel(btc?.delta ?? Number.NaN, -4 * bs('P', 60_000, 0.6).delta);
  });

  it('marks options from the market’s smile when no venue publishes an IV; venue IVs and overrides win', () => {
    const clock = new ManualClock(NOW);
    // One SVI slice at the options' expiry: total variance w(k) = a + b(ρ(k − m) + √((k − m)² + σ²)).
    const params = { a: 0.04, b: 0.2, rho: -0.3, m: 0, sigma: 0.2 };
    const surface = new VolSurface(NOW, [{ expiryMs: EXPIRY, timeYears: T, forward: S, params }]);
    const smileVol = (K: number) => {
      const k = Math.log(K / S);
      const w = params.a + params.b * (params.rho * k + Math.sqrt(k * k + params.sigma ** 2));
      return Math.sqrt(w / T);
    };
    const engine = new RiskEngine({ clock });
    engine.setBook({
      positions: [
        { venue: 'lyra-arb', chain: 'evm:42161', instrument: CALL, sizeBase: 1, asOfMs: NOW },
        { venue: 'lyra-arb', chain: 'evm:42161', instrument: PUT, sizeBase: 1, asOfMs: NOW },
      ],
    });
    engine.setMarket('BTC', { spotUsd: S, volDecimal: 0.6, asOfMs: NOW, volSurface: surface });
    const vega = (snap: ReturnType<RiskEngine['snapshot']>) =>
      snap.underlyings.BTC?.vegaPerVolPoint ?? Number.NaN;
    rel(
      vega(engine.snapshot({ scenarios: false })),
      bs('C', 70_000, smileVol(70_000)).vega + bs('P', 60_000, smileVol(60_000)).vega,
    );
    engine.updateMarks([
      { venue: 'lyra-arb', instrument: CALL, markPriceUsd: 900, ivDecimal: 0.5, asOfMs: NOW },
    ]);
    rel(
      vega(engine.snapshot({ scenarios: false })),
      bs('C', 70_000, 0.5).vega + bs('P', 60_000, smileVol(60_000)).vega,
    );
    engine.setMarket('BTC', {
      spotUsd: S,
      volDecimal: 0.6,
      asOfMs: NOW,
      volSurface: surface,
      ivByInstrument: { [PUT]: 0.7 },
    });
    rel(vega(engine.snapshot({ scenarios: false })), bs('C', 70_000, 0.5).vega + bs('P', 60_000, 0.7).vega);
  });

  it('refuses a scenario grid it could not price, naming the shock (a spot shock of -100% failed every snapshot)', () => {
    const clock = new ManualClock(NOW);
    expect(() => new RiskEngine({ clock, scenario: { spotShocksPct: [-10, -100] } })).toThrow(
      'scenario.spotShocksPct[1] is -100: a spot shock is a finite percentage above -100',
    );
    expect(() => new RiskEngine({ clock, scenario: { volShocksPts: [Number.NaN] } })).toThrow(
      /scenario.volShocksPts\[0\] is NaN/,
    );
    expect(() => new RiskEngine({ clock, scenario: { spotShocksPct: [-99.9, 500] } })).not.toThrow();
  });

  /** The book's vega, USD per vol point. */
  const bookVega = (snap: ReturnType<RiskEngine['snapshot']>) =>
    snap.underlyings.BTC?.vegaPerVolPoint ?? Number.NaN;

  it('a bad per-instrument vol (negative, zero, a percentage) is left out with a warning naming it; the rest of the book is priced', () => {
    for (const bad of [-0.2, 0, 55]) {
      const engine = new RiskEngine({ clock: new ManualClock(NOW) });
      engine.setBook({
        positions: [
          { venue: 'v', chain: 'offchain', instrument: CALL, sizeBase: 1, asOfMs: NOW },
          { venue: 'v', chain: 'offchain', instrument: PUT, sizeBase: 1, asOfMs: NOW },
        ],
      });
      engine.setMarket('BTC', { spotUsd: S, volDecimal: 0.6, asOfMs: NOW, ivByInstrument: { [PUT]: bad } });
      const snap = engine.snapshot({ scenarios: false });
      // the put at the flat vol, as if no override were given
      rel(bookVega(snap), bs('C', 70_000, 0.6).vega + bs('P', 60_000, 0.6).vega);
      expect(snap.warnings).toContainEqual(expect.stringContaining(`the IV given for ${PUT} (${bad})`));
    }
  });

  it('a mark IV given as a percentage (55 for 0.55) is left out of the mean, with a warning; a market vol of 55 is refused', () => {
    const engine = new RiskEngine({ clock: new ManualClock(NOW) });
    engine.setBook({
      positions: [{ venue: 'lyra-arb', chain: 'offchain', instrument: CALL, sizeBase: 1, asOfMs: NOW }],
    });
    engine.setMarket('BTC', { spotUsd: S, volDecimal: 0.6, asOfMs: NOW });
    engine.updateMarks([
      { venue: 'lyra-arb', instrument: CALL, markPriceUsd: 900, ivDecimal: 55, asOfMs: NOW },
    ]);
    const snap = engine.snapshot({ scenarios: false });
    rel(bookVega(snap), bs('C', 70_000, 0.6).vega);
    expect(snap.warnings).toContainEqual(expect.stringMatching(/1 mark IV\(s\) above 10 .* 55 for /));
    expect(() => engine.setMarket('BTC', { spotUsd: S, volDecimal: 55, asOfMs: NOW })).toThrow(
      /vol of BTC is 55: a decimal vol is expected/,
    );
  });

  it('falls back to the flat vol, with a warning, where the smile has no answer', () => {
    const clock = new ManualClock(NOW);
    const engine = new RiskEngine({ clock });
    engine.setBook({
      positions: [{ venue: 'v', chain: 'offchain', instrument: CALL, sizeBase: 1, asOfMs: NOW }],
    });
    engine.setMarket('BTC', {
      spotUsd: S,
      volDecimal: 0.6,
      asOfMs: NOW,
      volSurface: {
        vol: () => {
          throw new Error('no slice');
        },
      },
    });
    const snap = engine.snapshot({ scenarios: false });
    rel(snap.underlyings.BTC?.vegaPerVolPoint ?? Number.NaN, bs('C', 70_000, 0.6).vega);
    expect(snap.warnings.join(' ')).toMatch(
      /vol surface of BTC gave no vol for 1 option\(s\) \(no slice\): flat vol used/,
    );
  });
});

describe('RiskEngine: stale and non-finite inputs', () => {
  /** A call held on two venues; venue `a` marked an hour ago (IV 0.3), venue `b` now (IV 0.9). */
  function twoVenues(bMark: boolean) {
    const engine = new RiskEngine({ clock: new ManualClock(NOW) });
    engine.setBook({
      positions: [
        { venue: 'a', chain: 'evm:10', instrument: CALL, sizeBase: 1, asOfMs: NOW },
        { venue: 'b', chain: 'evm:42161', instrument: CALL, sizeBase: 1, asOfMs: NOW },
      ],
    });
    engine.setMarket('BTC', { spotUsd: S, volDecimal: 0.6, asOfMs: NOW });
    engine.updateMarks([
      { venue: 'a', instrument: CALL, markPriceUsd: 300, ivDecimal: 0.3, asOfMs: NOW - 3_600_000 },
      ...(bMark ? [{ venue: 'b', instrument: CALL, markPriceUsd: 2500, ivDecimal: 0.9, asOfMs: NOW }] : []),
    ]);
    return engine.snapshot({ scenarios: false });
  }

  it("prices from the fresh venue's IV, not a mean with a stale venue's, and says so", () => {
    const snap = twoVenues(true);
    // the mean with the hour-old IV (0.6) priced both lots at the wrong vol, silently
    rel(snap.underlyings.BTC?.vegaPerVolPoint ?? Number.NaN, 2 * bs('C', 70_000, 0.9).vega);
    expect(snap.warnings).toContainEqual(
      expect.stringMatching(/1 stale mark IV\(s\) left out .* 0\.3 for .* at a/),
    );
  });

  it('uses stale mark IVs only when no venue has a fresh one, and says so', () => {
    const snap = twoVenues(false);
    rel(snap.underlyings.BTC?.vegaPerVolPoint ?? Number.NaN, 2 * bs('C', 70_000, 0.3).vega);
    expect(snap.warnings).toContainEqual(
      expect.stringMatching(/1 option\(s\) priced from stale mark IVs only/),
    );
  });

  it('refuses a market whose rate or time is not a finite number (a NaN rate left the snapshot as NaN)', () => {
    const engine = new RiskEngine({ clock: new ManualClock(NOW) });
    engine.setBook({
      positions: [{ venue: 'v', chain: 'offchain', instrument: 'BTC-USD:PERP', sizeBase: 1, asOfMs: NOW }],
    });
    for (const rateDecimal of [Number.NaN, Number.POSITIVE_INFINITY])
      expect(() =>
        engine.setMarket('BTC', { spotUsd: S, volDecimal: 0.6, rateDecimal, asOfMs: NOW }),
      ).toThrow(/rate of BTC is not a finite number/);
    for (const asOfMs of [Number.NaN, -1])
      expect(() => engine.setMarket('BTC', { spotUsd: S, volDecimal: 0.6, asOfMs })).toThrow(
        /time of the BTC market/,
      );
    engine.setMarket('BTC', { spotUsd: S, volDecimal: 0.6, asOfMs: NOW });
    expect(RiskSnapshot.safeParse(engine.snapshot()).success).toBe(true);
  });
});

describe('RiskEngine: non-finite venue Greeks, rates and vol shocks', () => {
  it('names a venue Greek that is NaN or infinite as invalid instead of passing it as agreeing', () => {
    const engine = book(new ManualClock(NOW));
    const c = bs('C', 70_000, 0.55);
    engine.setVenueGreeks('deribit', [
      {
        instrument: CALL,
        // |local − NaN| > tol is false, and so is ∞ > max(abs, rel·∞): all three passed as agreeing
        greeks: {
          delta: Number.NaN,
          gamma: Number.POSITIVE_INFINITY,
          vegaPerVolPoint: c.vega * 2,
          thetaPerDay: Number.NEGATIVE_INFINITY,
          rhoPer1Pct: 0,
        },
        convention: 'deribit: BS delta, vega USD/pt, theta USD/day',
        asOfMs: NOW,
      },
    ]);
    const snap = engine.snapshot({ scenarios: false });
    expect(snap.divergences.map((d) => d.greek)).toEqual(['vegaPerVolPoint']);
    expect(snap.warnings).toContainEqual(
      expect.stringMatching(
        new RegExp(
          `^deribit published 3 Greek\\(s\\) that are not finite numbers .*invalid.*: ` +
            `delta NaN for ${CALL}, gamma Infinity for ${CALL}, thetaPerDay -Infinity for ${CALL}$`,
        ),
      ),
    );
    expect(RiskSnapshot.safeParse(snap).success).toBe(true);
  });

  it('refuses venue Greeks whose time is not ms since epoch (listed as stale by NaN ms)', () => {
    const engine = book(new ManualClock(NOW));
    const greeks = { delta: 0.3, gamma: 1e-5, vegaPerVolPoint: 90, thetaPerDay: -20, rhoPer1Pct: 0 };
    for (const asOfMs of [Number.NaN, -1])
      expect(() =>
        engine.setVenueGreeks('deribit', [{ instrument: CALL, greeks, convention: 'x', asOfMs }]),
      ).toThrow(new RegExp(`time of the deribit Greeks of ${CALL} is ${asOfMs}`));
    expect(RiskSnapshot.safeParse(engine.snapshot()).success).toBe(true);
  });

  it('unitGreeks refuses a rate that is not finite, or a future forward factor that overflows', () => {
    const future = instrumentMeta('BTC-USD:FUT:20260331');
    // r = 0 and negative rates are exact: e^{0} = 1, e^{rT} < 1
    expect(unitGreeks(future, S, 0.6, 0, NOW).delta).toBe(1);
    expect(unitGreeks(future, S, 0.6, -0.05, NOW).delta).toBe(Math.exp(-0.05 * T));
    // a NaN rate gave the future a NaN delta, silently; an infinite one an infinite delta
    for (const r of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY])
      expect(() => unitGreeks(future, S, 0.6, r, NOW)).toThrow(
        /rate \(rateDecimal\) of a future is not a finite/,
      );
    expect(() => unitGreeks(instrumentMeta('BTC-USD:PERP'), S, 0.6, Number.NaN, NOW)).toThrow(/rate/);
    expect(() => unitGreeks(future, S, 0.6, 5000, NOW)).toThrow(/delta e\^\(rT\) of a future/);
  });

  it('prices a vol shock below the floor at MIN_SCENARIO_VOL_DECIMAL, and says so', () => {
    const engine = new RiskEngine({
      clock: new ManualClock(NOW),
      scenario: { spotShocksPct: [0, 10], volShocksPts: [-50, -10, 0] },
    });
    engine.setBook({
      positions: [{ venue: 'deribit', chain: 'offchain', instrument: CALL, sizeBase: 2, asOfMs: NOW }],
    });
    engine.setMarket('BTC', { spotUsd: S, volDecimal: 0.4, asOfMs: NOW });
    const snap = engine.snapshot();
    const grid = snap.underlyings.BTC?.scenarios;
    if (!grid) throw new Error('no grid');
    const base = bs('C', 70_000, 0.4).price;
    // −50 points on a 40% IV: priced at the floor (1 vol point), a finite P&L
    rel(grid.pnlUsd[0]?.[1] ?? Number.NaN, 2 * (bs('C', 70_000, 0.01, 1.1 * S).price - base));
    rel(grid.pnlUsd[1]?.[0] ?? Number.NaN, 2 * (bs('C', 70_000, 0.3).price - base));
    expect(snap.warnings).toContainEqual(
      expect.stringMatching(
        new RegExp(
          `^scenario grid of BTC: vol shock\\(s\\) -50 pts \\(1 option\\(s\\)\\) took IVs below 0\\.01, ` +
            `priced at that floor .*e\\.g\\. ${CALL} IV 0\\.4 -50 pts → 0\\.01$`,
        ),
      ),
    );
    expect(snap.warnings.filter((w) => w.includes('scenario grid'))).toHaveLength(1);
    expect(MIN_SCENARIO_VOL_DECIMAL).toBe(0.01);
  });
});
