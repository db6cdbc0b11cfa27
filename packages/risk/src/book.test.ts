import { instrumentMeta, ManualClock, type Mark, MS_PER_DAY } from '@xhedge/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RiskEngine, type RiskPosition } from './engine.ts';
import { GREEK_FIELDS, type GreekTotals, type RiskSnapshot } from './snapshot.ts';

const NOW = Date.UTC(2026, 0, 1, 8);
const CALL = 'BTC-USD:OPT:20260331:70000:C';
const PUT = 'BTC-USD:OPT:20260331:60000:P';
const ETH_CALL = 'ETH-USD:OPT:20260227:3500:C';

function close(actual: number, expected: number, what: string): void {
  const scale = Math.max(Math.abs(expected), 1);
  if (Math.abs(actual - expected) > 1e-9 * scale) throw new Error(`${what}: ${actual} ≠ ${expected}`);
}

function sameTotals(a: GreekTotals | undefined, b: GreekTotals | undefined, what: string): void {
  expect(a, what).toBeDefined();
  expect(b, what).toBeDefined();
  for (const f of GREEK_FIELDS) close(a?.[f] ?? Number.NaN, b?.[f] ?? Number.NaN, `${what} ${f}`);
}

/** Same risk, up to float summation order: incremental updates must give what a fresh engine gives. */
function expectSameRisk(a: RiskSnapshot, b: RiskSnapshot): void {
  expect(Object.keys(a.underlyings).sort()).toEqual(Object.keys(b.underlyings).sort());
  for (const [u, rb] of Object.entries(b.underlyings)) {
    const ra = a.underlyings[u];
    sameTotals(ra, rb, u);
    expect(ra?.positionCount, `${u} positionCount`).toBe(rb.positionCount);
    expect(Object.keys(ra?.byVenue ?? {}).sort(), `${u} venues`).toEqual(Object.keys(rb.byVenue).sort());
    expect(Object.keys(ra?.byChain ?? {}).sort(), `${u} chains`).toEqual(Object.keys(rb.byChain).sort());
    for (const v of Object.keys(rb.byVenue)) sameTotals(ra?.byVenue[v], rb.byVenue[v], `${u} ${v}`);
    for (const c of Object.keys(rb.byChain)) sameTotals(ra?.byChain[c], rb.byChain[c], `${u} ${c}`);
    expect(Object.keys(ra?.vegaByExpiry ?? {}).sort()).toEqual(Object.keys(rb.vegaByExpiry).sort());
    for (const [e, x] of Object.entries(rb.vegaByExpiry)) close(ra?.vegaByExpiry[e] ?? Number.NaN, x, e);
    const ga = ra?.scenarios?.pnlUsd.flat() ?? [];
    const gb = rb.scenarios?.pnlUsd.flat() ?? [];
    expect(ga.length).toBe(gb.length);
    for (let i = 0; i < gb.length; i++) close(ga[i] ?? Number.NaN, gb[i] ?? Number.NaN, `${u} grid ${i}`);
  }
  const stale = (s: RiskSnapshot) => s.stale.map((x) => `${x.kind}|${x.venue}|${x.key}|${x.ageMs}`).sort();
  expect(stale(a)).toEqual(stale(b));
  expect([...a.warnings].sort()).toEqual([...b.warnings].sort());
}

const pos = (
  venue: string,
  chain: string,
  instrument: string,
  sizeBase: number,
  extra: Partial<RiskPosition> = {},
): RiskPosition => ({ venue, chain, instrument, sizeBase, asOfMs: NOW, ...extra });

const BASE: RiskPosition[] = [
  pos('deribit', 'offchain', CALL, 2, { settlementCurrency: 'BTC' }),
  pos('lyra-arb', 'evm:42161', PUT, -3),
  pos('drift-sol', 'solana:mainnet-beta', 'BTC-USD:PERP', 1.2),
  pos('perp-op', 'evm:10', 'ETH-USD:PERP', 10),
];
const MARKS: Mark[] = [
  { venue: 'deribit', instrument: CALL, markPriceUsd: 1000, ivDecimal: 0.55, asOfMs: NOW },
  { venue: 'lyra-arb', instrument: PUT, markPriceUsd: 5000, ivDecimal: 0.62, asOfMs: NOW },
  { venue: 'lyra-op', instrument: ETH_CALL, markPriceUsd: 120, ivDecimal: 0.7, asOfMs: NOW },
];

function engine(clock: ManualClock): RiskEngine {
  const e = new RiskEngine({ clock, staleAfterMs: 30_000 });
  e.setMarket('BTC', { spotUsd: 60_000, volDecimal: 0.6, asOfMs: clock.nowMs() });
  e.setMarket('ETH', { spotUsd: 3_000, volDecimal: 0.7, asOfMs: clock.nowMs() });
  return e;
}

function fresh(clock: ManualClock, positions: readonly RiskPosition[], marks: readonly Mark[] = MARKS) {
  const e = engine(clock);
  e.setBook({
    positions,
    balances: [{ venue: 'deribit', chain: 'offchain', asset: 'BTC', amount: 1.5, asOfMs: NOW }],
    funding: [{ venue: 'drift-sol', instrument: 'BTC-USD:PERP', ratePerHour: 0.0001, asOfMs: NOW }],
  });
  e.updateMarks(marks);
  return e;
}

describe('RiskEngine: incremental book updates', () => {
  it('setBook every tick diffs against the cached book and equals a fresh rebuild', () => {
    const clock = new ManualClock(NOW);
    const inc = fresh(clock, BASE);
    inc.snapshot();
    // Next tick: one size changes, the perp on Optimism is closed, a new option, venue and chain appear.
    const next = [
      pos('deribit', 'offchain', CALL, 2.5, { settlementCurrency: 'BTC' }),
      pos('lyra-arb', 'evm:42161', PUT, -3),
      pos('drift-sol', 'solana:mainnet-beta', 'BTC-USD:PERP', 1.2),
      pos('lyra-op', 'evm:10', ETH_CALL, -4),
      pos('hl', 'hyperliquid', 'BTC-USD:PERP', -0.7),
    ];
    inc.setBook({
      positions: next,
      balances: [{ venue: 'deribit', chain: 'offchain', asset: 'BTC', amount: 1.5, asOfMs: NOW }],
      funding: [{ venue: 'drift-sol', instrument: 'BTC-USD:PERP', ratePerHour: 0.0001, asOfMs: NOW }],
    });
    inc.updateMarks(MARKS);
    const a = inc.snapshot();
    const b = fresh(clock, next).snapshot();
    expectSameRisk(a, b);
    expect(a.underlyings.ETH?.byVenue['perp-op']).toBeUndefined();
    expect(a.underlyings.BTC?.byChain.hyperliquid?.delta).toBeCloseTo(-0.7, 12);
  });

  it('setBook after an upsert closed a position brings it back (the order cache never feeds a closed key)', () => {
    const clock = new ManualClock(NOW);
    const inc = fresh(clock, BASE);
    const again = () =>
      inc.setBook({
        positions: BASE,
        balances: [{ venue: 'deribit', chain: 'offchain', asset: 'BTC', amount: 1.5, asOfMs: NOW }],
        funding: [{ venue: 'drift-sol', instrument: 'BTC-USD:PERP', ratePerHour: 0.0001, asOfMs: NOW }],
      });
    again(); // steady state: every position's key is in the order cache
    inc.upsertPositions([pos('lyra-arb', 'evm:42161', PUT, 0)]);
    expect(inc.snapshot({ scenarios: false }).underlyings.BTC?.byVenue['lyra-arb']).toBeUndefined();
    again();
    expectSameRisk(inc.snapshot(), fresh(clock, BASE).snapshot());
  });

  it('upsertPositions touches only the keys given; a zero size closes a position', () => {
    const clock = new ManualClock(NOW);
    const inc = fresh(clock, BASE);
    inc.upsertPositions([
      pos('lyra-arb', 'evm:42161', PUT, -1),
      pos('perp-op', 'evm:10', 'ETH-USD:PERP', 0),
      pos('lyra-op', 'evm:10', ETH_CALL, 3),
    ]);
    inc.updateMarks(MARKS);
    const expected = [
      pos('deribit', 'offchain', CALL, 2, { settlementCurrency: 'BTC' }),
      pos('lyra-arb', 'evm:42161', PUT, -1),
      pos('drift-sol', 'solana:mainnet-beta', 'BTC-USD:PERP', 1.2),
      pos('lyra-op', 'evm:10', ETH_CALL, 3),
    ];
    expectSameRisk(inc.snapshot(), fresh(clock, expected).snapshot());
  });

  it('applyFill adds fills to positions and closes a position that nets to zero (decimal dust included)', () => {
    const clock = new ManualClock(NOW);
    const inc = fresh(clock, BASE);
    const fill = { venue: 'perp-op', chain: 'evm:10', instrument: 'ETH-USD:PERP', tsMs: NOW + 1 };
    inc.applyFill({ ...fill, side: 'sell', sizeBase: '9.7' });
    inc.applyFill({ ...fill, side: 'sell', sizeBase: '0.1' });
    expect(inc.snapshot({ scenarios: false }).underlyings.ETH?.delta).toBeCloseTo(0.2, 12);
    inc.applyFill({ ...fill, side: 'sell', sizeBase: '0.2' });
    inc.applyFill({
      venue: 'drift-sol',
      chain: 'solana:mainnet-beta',
      instrument: 'BTC-USD:PERP',
      side: 'buy',
      sizeBase: 0.3,
      tsMs: NOW,
    });
    const snap = inc.snapshot({ scenarios: false });
    // ETH had only that perp: the underlying is gone from the snapshot, as after a fresh rebuild.
    expect(snap.underlyings.ETH).toBeUndefined();
    expectSameRisk(
      snap,
      fresh(clock, [
        pos('deribit', 'offchain', CALL, 2, { settlementCurrency: 'BTC' }),
        pos('lyra-arb', 'evm:42161', PUT, -3),
        pos('drift-sol', 'solana:mainnet-beta', 'BTC-USD:PERP', 1.5),
      ]).snapshot({ scenarios: false }),
    );
    expect(() => inc.applyFill({ ...fill, side: 'buy', sizeBase: 'NaN', tsMs: NOW })).toThrow(/not a size/);
  });

  it('an instrument no longer held is neither priced, nor stale, nor warned about', () => {
    const clock = new ManualClock(NOW);
    const inc = fresh(clock, BASE);
    inc.upsertPositions([pos('deribit', 'offchain', CALL, 0, { settlementCurrency: 'BTC' })]);
    clock.advance(200 * MS_PER_DAY); // past the call's expiry; its mark is old
    inc.setMarket('BTC', { spotUsd: 60_000, volDecimal: 0.6, asOfMs: clock.nowMs() });
    inc.setMarket('ETH', { spotUsd: 3_000, volDecimal: 0.7, asOfMs: clock.nowMs() });
    const snap = inc.snapshot({ scenarios: false });
    expect(snap.warnings.join(' ')).not.toContain(CALL);
    expect(snap.stale.map((s) => s.key)).not.toContain(CALL);
    expect(snap.underlyings.BTC?.byVenue.deribit?.delta).toBeCloseTo(1.5, 12); // the BTC balance only
  });

  it('compacts instruments that are no longer held, keeping the marks of those still held', () => {
    const clock = new ManualClock(NOW);
    const inc = fresh(clock, BASE);
    const strikes = Array.from({ length: 600 }, (_, k) => `BTC-USD:OPT:20260331:${40_000 + k * 50}:P`);
    inc.upsertPositions(strikes.map((id) => pos('lyra-op', 'evm:10', id, 1)));
    inc.upsertPositions(strikes.map((id) => pos('lyra-op', 'evm:10', id, 0)));
    // The marks given before the compaction still price the options held (IV 0.55 on the call, not 0.6).
    const a = inc.snapshot();
    expectSameRisk(a, fresh(clock, BASE).snapshot());
    inc.upsertPositions([pos('lyra-op', 'evm:10', strikes[7] as string, 2)]);
    expectSameRisk(
      inc.snapshot(),
      fresh(clock, [...BASE, pos('lyra-op', 'evm:10', strikes[7] as string, 2)]).snapshot(),
    );
  });

  it('sees a change of unsettledPnlUsd alone, and keeps a closed coin-settled position whose coin is still owed', () => {
    const clock = new ManualClock(NOW);
    const markets = [
      {
        venue: 'deribit',
        instrument: instrumentMeta('BTC-USD:PERP', { settlementCurrency: 'BTC', contractValueUsd: 10 }),
      },
    ];
    const marks: Mark[] = [
      { venue: 'deribit', instrument: 'BTC-USD:PERP', markPriceUsd: 60_000, asOfMs: NOW },
    ];
    // 3,000 contracts of 10 USD; the venue states the coin P&L not yet paid in, in USD at the mark.
    const perp = (unsettledPnlUsd: number, contracts = 3_000) =>
      pos('deribit', 'offchain', 'BTC-USD:PERP', 0, {
        contracts,
        settlementCurrency: 'BTC',
        entryPriceUsd: 50_000,
        unsettledPnlUsd,
      });
    const inc = engine(clock);
    const delta = () => inc.snapshot({ scenarios: false }).underlyings.BTC?.delta ?? Number.NaN;
    inc.setBook({ positions: [perp(0)], markets });
    inc.updateMarks(marks);
    close(delta(), 30_000 / 60_000, 'all paid in');
    inc.setBook({ positions: [perp(6_000)], markets });
    close(delta(), 36_000 / 60_000, '6,000 USD of coin P&L still outside the balance');
    // Closed, its last 6,000 USD (0.1 BTC) not paid in yet: still the book's, through upsert as through setBook.
    inc.upsertPositions([perp(6_000, 0)]);
    close(delta(), 0.1, 'closed, not yet paid');
    const ref = engine(clock);
    ref.setBook({ positions: [perp(6_000, 0)], markets });
    ref.updateMarks(marks);
    expectSameRisk(inc.snapshot(), ref.snapshot());
    // Paid in: nothing left.
    inc.upsertPositions([perp(0, 0)]);
    expect(inc.snapshot().underlyings.BTC).toBeUndefined();
  });

  it('stays equal to a fresh rebuild over random upserts, fills and re-syncs, compaction included (property)', () => {
    const venues = [
      ['lyra-arb', 'evm:42161'],
      ['lyra-op', 'evm:10'],
      ['drift-sol', 'solana:mainnet-beta'],
    ] as const;
    const instruments = [CALL, PUT, ETH_CALL, 'BTC-USD:PERP', 'ETH-USD:PERP'];
    // Many short-lived strikes force dead lots past the compaction threshold.
    for (let k = 0; k < 40; k++) instruments.push(`BTC-USD:OPT:20260331:${50_000 + k * 500}:C`);
    const op = fc.record({
      kind: fc.constantFrom('upsert', 'fill', 'setBook'),
      v: fc.integer({ min: 0, max: venues.length - 1 }),
      i: fc.integer({ min: 0, max: instruments.length - 1 }),
      size: fc.integer({ min: -20, max: 20 }).map((x) => x / 4),
    });
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 400 }), (ops) => {
        const clock = new ManualClock(NOW);
        const inc = engine(clock);
        const truth = new Map<string, RiskPosition>();
        for (const o of ops) {
          const [venue, chain] = venues[o.v] ?? venues[0];
          const instrument = instruments[o.i] as string;
          const key = `${venue}|${instrument}`;
          if (o.kind === 'fill') {
            const size = (truth.get(key)?.sizeBase ?? 0) + o.size;
            if (Math.abs(size) < 1e-12) truth.delete(key);
            else truth.set(key, pos(venue, chain, instrument, size));
            inc.applyFill({
              venue,
              chain,
              instrument,
              side: o.size >= 0 ? 'buy' : 'sell',
              sizeBase: Math.abs(o.size),
              tsMs: NOW,
            });
          } else {
            if (o.size === 0) truth.delete(key);
            else truth.set(key, pos(venue, chain, instrument, o.size));
            if (o.kind === 'upsert') inc.upsertPositions([pos(venue, chain, instrument, o.size)]);
            else inc.setBook({ positions: [...truth.values()] });
          }
        }
        const ref = engine(clock);
        ref.setBook({ positions: [...truth.values()] });
        expectSameRisk(inc.snapshot(), ref.snapshot());
      }),
      { numRuns: 60, seed: 11 },
    );
  });
});
