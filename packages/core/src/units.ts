import { Decimal } from 'decimal.js';
import { z } from 'zod';
import { NumericError } from './errors.ts';

/** Milliseconds in one calendar day and one ACT/365 year (crypto trades 24/7: calendar time, no sessions). */
export const MS_PER_HOUR = 3_600_000;
export const MS_PER_DAY = 86_400_000;
export const DAYS_PER_YEAR = 365;
export const MS_PER_YEAR = MS_PER_DAY * DAYS_PER_YEAR;

/**
 * Bounds of a simulated market's inputs, shared by the simulator, the backtest spec and the profile's
 * paper market: wide enough for any market, tight enough that a typo (an exponent, a percentage for a
 * decimal) is refused by name instead of simulating prices past the range of a double.
 */
/** Largest |drift|, decimal per year: 100 is a factor e^100 (1e43) in a year. */
export const MAX_ABS_DRIFT_PER_YEAR = 100;
/** Largest simulated vol, decimal per year (5 = 500%). */
export const MAX_VOL_DECIMAL = 5;
/** Range of a starting spot, USD: below a trillionth or above a trillion dollars no asset trades. */
export const MIN_SPOT_USD = 1e-12;
export const MAX_SPOT_USD = 1e12;
/**
 * Largest seed of a simulated market or backtest: the generators keep 32 bits of it, so a larger seed
 * would silently give the same paths as a smaller one (2^32 + 1 as 1).
 */
export const MAX_SEED = 0xffff_ffff;
/** A seed of a simulated market or backtest: a whole number 0..2^32-1. */
export const Seed = z
  .number()
  .int('a seed is a whole number')
  .min(0, 'a seed is at least 0')
  .max(MAX_SEED, `a seed is at most ${MAX_SEED} (32 bits)`);

/** Year fraction between two UTC instants, ACT/365 over calendar time. Negative when `toMs` is earlier. */
export function yearFraction(fromMs: number, toMs: number): number {
  return (toMs - fromMs) / MS_PER_YEAR;
}

/** An instant: integer milliseconds since the Unix epoch, UTC. */
export const TimestampMs = z.number().int().nonnegative();
export type TimestampMs = z.infer<typeof TimestampMs>;

/** A finite float64 (rejects NaN and ±Infinity at every boundary). */
export const FiniteNumber = z.number().finite();

/**
 * An exact decimal as a string, used for order sizes and prices at venue boundaries:
 * optional sign, digits, optional fraction. No exponent, no thousands separators.
 */
export const DecimalString = z
  .string()
  .regex(/^-?(0|[1-9][0-9]*)(\.[0-9]+)?$/, 'expected a plain decimal string such as "1.25" or "-0.5"');
export type DecimalString = z.infer<typeof DecimalString>;

/** Same, strictly positive. */
export const PositiveDecimalString = DecimalString.refine(
  (s) => new Decimal(s).gt(0),
  'must be greater than 0',
);

/** Exact decimal helpers (decimal.js, 40 significant digits, round half-even). */
export const Dec = Decimal.clone({ precision: 40, rounding: Decimal.ROUND_HALF_EVEN });
export type Dec = InstanceType<typeof Dec>;

/** Converts a float to an exact decimal string rounded to `decimals` places (half-even); rejects NaN/∞. */
export function toDecimalString(value: number | string | Dec, decimals: number): DecimalString {
  if (typeof value === 'number' && !Number.isFinite(value)) throw new NumericError('decimal value', value);
  const d = new Dec(value).toDecimalPlaces(decimals, Decimal.ROUND_HALF_EVEN);
  const s = d.toFixed();
  return s === '-0' ? '0' : s;
}

/** Rounds an exact decimal down in magnitude to a multiple of `step` (lot size), keeping the sign. */
export function roundToStep(value: DecimalString | Dec, step: DecimalString): DecimalString {
  const v = new Dec(value);
  const st = new Dec(step);
  if (st.lte(0)) throw new NumericError('lot step', Number(step));
  const n = v.abs().div(st).floor();
  const out = n.mul(st).mul(v.isNeg() ? -1 : 1);
  return out.isZero() ? '0' : out.toFixed();
}

/** Parses an exact decimal string into a float64 for risk math (never NaN). */
export function decimalToNumber(value: DecimalString): number {
  const n = Number(value);
  if (!Number.isFinite(n)) throw new NumericError('decimal', n, { value });
  return n;
}

/** Basis points → fraction (5 bps → 0.0005). */
/** The median of `xs` (the mean of the middle two for an even count); undefined when empty. */
export function median(xs: readonly number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

export function bpsToFraction(bps: number): number {
  return bps / 10_000;
}
