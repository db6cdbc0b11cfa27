import { XhedgeError } from '@xhedge/core';

/** Bad arguments or an input that cannot be used: the CLI prints the message and exits 2. */
export class CliUsageError extends XhedgeError {
  override name = 'CliUsageError';
  constructor(message: string, metaMessages: readonly string[] = []) {
    super('CLI_USAGE', message, { metaMessages });
  }
}

/** Exit codes: 0 ok, 1 unexpected failure, 2 invalid input or arguments. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_INVALID = 2;

/** Parses a CLI number option; rejects NaN, infinities and (optionally) non-positive values by name. */
/** A decimal number as people write one: sign, digits with an optional fraction, an optional exponent. */
const DECIMAL_NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

export function parseNumberOption(
  name: string,
  raw: string,
  opts: { positive?: boolean; integer?: boolean; min?: number; max?: number } = {},
): number {
  // decimal notation only: Number() also reads 0x10 as 16, 0b11 as 3 and '' as 0
  const v = DECIMAL_NUMBER.test(raw.trim()) ? Number(raw) : Number.NaN;
  if (!Number.isFinite(v)) throw new CliUsageError(`--${name} must be a decimal number, got "${raw}"`);
  if (opts.integer && !Number.isInteger(v))
    throw new CliUsageError(`--${name} must be a whole number, got ${raw}`);
  if (opts.positive && !(v > 0)) throw new CliUsageError(`--${name} must be greater than 0, got ${raw}`);
  if (opts.min !== undefined && v < opts.min)
    throw new CliUsageError(`--${name} must be at least ${opts.min}, got ${raw}`);
  if (opts.max !== undefined && v > opts.max)
    throw new CliUsageError(`--${name} must be at most ${opts.max}, got ${raw}`);
  return v;
}

/** Epoch values below this are seconds, not ms (1e11 ms is March 1973; 1e11 s is the year 5138). */
const EPOCH_MS_MIN = 1e11;
const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$/i;
const HAS_ZONE = /(Z|[+-]\d{2}:?\d{2})$/i;

/**
 * Parses a CLI time option as epoch ms, the same on every machine: ISO 8601 with a zone
 * (`2026-12-25T08:00:00Z`, `+01:00`), a date-time without one read as UTC (never the machine's local
 * time), a date alone at `dateHourUtc` (08:00 UTC for an option expiry, the venues' convention), or
 * epoch milliseconds (a value that can only be seconds is refused, naming the mistake).
 */
export function parseTimeOption(name: string, raw: string, opts: { dateHourUtc: number }): number {
  const text = raw.trim();
  const bad = (why: string) =>
    new CliUsageError(
      `--${name} ${why}, got "${raw}" (give an ISO time such as 2026-12-25T08:00:00Z, a date 2026-12-25 (${String(opts.dateHourUtc).padStart(2, '0')}:00 UTC), or epoch ms)`,
    );
  if (/^\d+$/.test(text)) {
    const ms = Number(text);
    if (ms < EPOCH_MS_MIN)
      throw bad(
        `looks like epoch seconds (as ms it would be ${new Date(ms).toISOString().slice(0, 10)}): give ms, ${text}000`,
      );
    if (ms > 8.64e15) throw bad('is past the last representable time');
    return ms;
  }
  const date = ISO_DATE.exec(text);
  let ms: number;
  if (date) {
    const [y, m, d] = [Number(date[1]), Number(date[2]), Number(date[3])];
    ms = Date.UTC(y, m - 1, d, opts.dateHourUtc);
    const check = new Date(ms);
    if (check.getUTCMonth() !== m - 1 || check.getUTCDate() !== d) throw bad('is not a calendar date');
  } else if (ISO_DATE_TIME.test(text)) {
    const iso = text.replace(' ', 'T');
    // Date.parse rolls 2026-02-30T08:00 over to March 2: the date part must be a calendar date
    const [y, m, d] = iso.slice(0, 10).split('-').map(Number) as [number, number, number];
    const day = new Date(Date.UTC(y, m - 1, d));
    if (day.getUTCMonth() !== m - 1 || day.getUTCDate() !== d) throw bad('is not a calendar date');
    ms = Date.parse(HAS_ZONE.test(iso) ? iso : `${iso}Z`);
  } else throw bad('is not a time');
  if (!Number.isFinite(ms)) throw bad('is not a valid time');
  return ms;
}
