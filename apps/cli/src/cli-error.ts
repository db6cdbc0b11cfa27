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
