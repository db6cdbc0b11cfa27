import { describe, expect, it } from 'vitest';
import { CliUsageError, parseTimeOption } from './cli-error.ts';

describe('parseTimeOption', () => {
  const expiry = { dateHourUtc: 8 };
  it('reads a time without a zone as UTC, not the machine local time', () => {
    expect(parseTimeOption('expiry', '2026-12-25T08:00:00', expiry)).toBe(Date.UTC(2026, 11, 25, 8));
    expect(parseTimeOption('expiry', '2026-12-25 08:00', expiry)).toBe(Date.UTC(2026, 11, 25, 8));
    expect(parseTimeOption('expiry', '2026-12-25T08:00:00Z', expiry)).toBe(Date.UTC(2026, 11, 25, 8));
    expect(parseTimeOption('expiry', '2026-12-25T09:00:00+01:00', expiry)).toBe(Date.UTC(2026, 11, 25, 8));
  });

  it('puts a date alone at the given UTC hour (08:00 for an expiry, 00:00 for an as-of)', () => {
    expect(parseTimeOption('expiry', '2026-12-25', expiry)).toBe(Date.UTC(2026, 11, 25, 8));
    expect(parseTimeOption('as-of', '2026-12-25', { dateHourUtc: 0 })).toBe(Date.UTC(2026, 11, 25));
  });

  it('takes epoch ms and refuses epoch seconds, naming the mistake', () => {
    expect(parseTimeOption('as-of', '1766649600000', expiry)).toBe(1_766_649_600_000);
    expect(() => parseTimeOption('as-of', '1766649600', expiry)).toThrow(
      /--as-of looks like epoch seconds \(as ms it would be 1970-01-21\): give ms, 1766649600000/,
    );
  });

  it.each([
    '2026-02-30',
    '2026-13-01',
    '2026-02-30T08:00',
    '2026-02-31T08:00:00Z',
    'tomorrow',
    '',
    '12/25/2026',
    '2026-12-25T25:00:00Z',
  ])('refuses %j with a usage error naming the option', (raw) => {
    expect(() => parseTimeOption('expiry', raw, expiry)).toThrow(CliUsageError);
    expect(() => parseTimeOption('expiry', raw, expiry)).toThrow(/--expiry/);
  });
});
