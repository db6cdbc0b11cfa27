import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InstrumentIdError } from './errors.ts';
import {
  canonicalStrike,
  formatInstrumentId,
  InstrumentId,
  type InstrumentIdParts,
  instrumentMeta,
  parseInstrumentId,
} from './instrument.ts';

const symbol = fc.stringMatching(/^[A-Z][A-Z0-9]{1,9}$/);
const date = fc
  .date({ min: new Date(Date.UTC(2000, 0, 1)), max: new Date(Date.UTC(2200, 11, 31)), noInvalidDate: true })
  .map((d) => d.toISOString().slice(0, 10).replaceAll('-', ''));
const strike = fc
  .tuple(fc.integer({ min: 0, max: 10_000_000 }), fc.stringMatching(/^[0-9]{0,6}$/))
  .map(([i, f]) => canonicalStrike(f ? `${i}.${f}` : String(i)))
  .filter((s) => Number(s) > 0);

const parts: fc.Arbitrary<InstrumentIdParts> = fc
  .tuple(symbol, symbol)
  .filter(([b, q]) => b !== q)
  .chain(([base, quote]) =>
    fc.oneof(
      fc.constantFrom('perp' as const, 'spot' as const).map((kind) => ({ kind, base, quote })),
      date.map((expiryDate) => ({ kind: 'future' as const, base, quote, expiryDate })),
      fc
        .tuple(date, strike, fc.constantFrom('call' as const, 'put' as const))
        .map(([expiryDate, s, optionType]) => ({
          kind: 'option' as const,
          base,
          quote,
          expiryDate,
          strike: s,
          optionType,
        })),
    ),
  );

describe('instrument ids', () => {
  it('parse(format(parts)) gives the parts back, and format(parse(id)) gives the id back', () => {
    fc.assert(
      fc.property(parts, (p) => {
        const id = formatInstrumentId(p);
        const parsed = parseInstrumentId(id);
        expect(parsed.kind).toBe(p.kind);
        expect(parsed.base).toBe(p.base);
        expect(parsed.quote).toBe(p.quote);
        if (p.kind === 'option' && parsed.kind === 'option') {
          expect(parsed.strike).toBe(p.strike);
          expect(parsed.optionType).toBe(p.optionType);
          expect(parsed.expiryDate).toBe(p.expiryDate);
        }
        const { id: _id, ...rest } = parsed;
        const again = formatInstrumentId(rest as InstrumentIdParts);
        expect(again).toBe(id);
      }),
      { numRuns: 2000 },
    );
  });

  it('parses the examples of DESIGN.md', () => {
    expect(parseInstrumentId('BTC-USD:PERP')).toEqual({
      id: 'BTC-USD:PERP',
      base: 'BTC',
      quote: 'USD',
      kind: 'perp',
    });
    const opt = parseInstrumentId('BTC-USD:OPT:20261225:100000:C');
    expect(opt).toMatchObject({
      kind: 'option',
      strike: '100000',
      optionType: 'call',
      expiryDate: '20261225',
    });
    if (opt.kind === 'option') expect(new Date(opt.expiryMs).toISOString()).toBe('2026-12-25T08:00:00.000Z');
    expect(parseInstrumentId('ETH-USDC:PERP').quote).toBe('USDC');
  });

  const bad: [string, RegExp][] = [
    ['', /empty/],
    ['BTC', /BASE-QUOTE/],
    ['BTCUSD:PERP', /BASE-QUOTE/],
    ['btc-usd:PERP', /upper-case/],
    ['BTC-BTC:PERP', /same asset/],
    ['BTC-USD:SWAP', /not PERP, SPOT, FUT or OPT/],
    ['BTC-USD:PERP:X', /no further fields/],
    ['BTC-USD:OPT:20261225:100000', /exactly three fields/],
    ['BTC-USD:OPT:20261325:100000:C', /not a calendar date/],
    ['BTC-USD:OPT:20260230:100000:C', /not a calendar date/],
    ['BTC-USD:OPT:2026-12-25:100000:C', /YYYYMMDD/],
    ['BTC-USD:OPT:20261225:0100000:C', /canonical/],
    ['BTC-USD:OPT:20261225:100000.0:C', /canonical/],
    ['BTC-USD:OPT:20261225:-5:C', /canonical/],
    ['BTC-USD:OPT:20261225:1e5:C', /canonical/],
    ['BTC-USD:OPT:20261225:0:C', /positive/],
    ['BTC-USD:OPT:20261225:100000:X', /C or P/],
    ['BTC-USD:FUT:1999', /YYYYMMDD/],
    ['BTC-USD:FUT:18991231', /out of range/],
  ];
  it.each(bad)('rejects %j with a reason', (id, reason) => {
    expect(() => parseInstrumentId(id)).toThrow(InstrumentIdError);
    expect(() => parseInstrumentId(id)).toThrow(reason);
    expect(InstrumentId.safeParse(id).success).toBe(false);
  });

  it('rejects arbitrary junk without crashing', () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        try {
          const p = parseInstrumentId(s);
          expect(p.id).toBe(s);
        } catch (err) {
          expect(err).toBeInstanceOf(InstrumentIdError);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('canonicalStrike normalizes', () => {
    expect(canonicalStrike('0100000.00')).toBe('100000');
    expect(canonicalStrike(2.5)).toBe('2.5');
    expect(canonicalStrike('0.250')).toBe('0.25');
    expect(() => canonicalStrike('1e5')).toThrow(InstrumentIdError);
  });

  it('builds metadata, inverse when settled in the base coin', () => {
    const linear = instrumentMeta('BTC-USD:OPT:20261225:100000:C');
    expect(linear).toMatchObject({
      inverse: false,
      settlementCurrency: 'USD',
      strike: 100000,
      optionType: 'call',
    });
    const inverse = instrumentMeta('BTC-USD:OPT:20261225:100000:P', { settlementCurrency: 'BTC' });
    expect(inverse.inverse).toBe(true);
    expect(inverse.expiryMs).toBe(Date.UTC(2026, 11, 25, 8));
    expect(
      instrumentMeta('BTC-USD:PERP', { settlementCurrency: 'BTC', contractValueUsd: 10 }).contractValueUsd,
    ).toBe(10);
  });
});
