import { z } from 'zod';
import { InstrumentIdError } from './errors.ts';
import { AssetSymbol } from './ids.ts';

/**
 * Canonical instrument ids (venue symbols exist only inside adapters):
 *
 *   BTC-USD:PERP                      perpetual swap
 *   BTC-USD:SPOT                      spot pair
 *   BTC-USD:FUT:20261225              dated future, expiring 08:00 UTC on that date
 *   BTC-USD:OPT:20261225:100000:C     option: expiry date, strike (canonical decimal), C or P
 *
 * Strikes are written in canonical decimal form: no sign, no leading zeros, no trailing fractional
 * zeros, no exponent (`100000`, `0.25`, `2.5`), so one instrument has exactly one id.
 */
export type InstrumentKind = 'perp' | 'spot' | 'future' | 'option';
export type OptionType = 'call' | 'put';

/** Expiries are at 08:00 UTC on the expiry date, the convention of crypto options venues. */
export const EXPIRY_HOUR_UTC = 8;

interface ParsedBase {
  id: string;
  base: AssetSymbol;
  quote: AssetSymbol;
}
export type ParsedInstrumentId =
  | (ParsedBase & { kind: 'perp' })
  | (ParsedBase & { kind: 'spot' })
  | (ParsedBase & { kind: 'future'; expiryDate: string; expiryMs: number })
  | (ParsedBase & {
      kind: 'option';
      expiryDate: string;
      expiryMs: number;
      strike: string;
      optionType: OptionType;
    });

const SYMBOL_RE = /^[A-Z][A-Z0-9]{1,9}$/;
const STRIKE_RE = /^(0|[1-9][0-9]*)(\.[0-9]*[1-9])?$/;

/** Parses `YYYYMMDD` into the expiry instant (08:00 UTC), or returns the reason it is not a date. */
export function expiryDateToMs(date: string): number | string {
  if (!/^[0-9]{8}$/.test(date)) return `expiry "${date}" is not YYYYMMDD`;
  const y = Number(date.slice(0, 4));
  const m = Number(date.slice(4, 6));
  const d = Number(date.slice(6, 8));
  if (y < 2000 || y > 2200) return `expiry year ${y} is out of range 2000-2200`;
  const ms = Date.UTC(y, m - 1, d, EXPIRY_HOUR_UTC);
  const check = new Date(ms);
  if (check.getUTCFullYear() !== y || check.getUTCMonth() !== m - 1 || check.getUTCDate() !== d) {
    return `expiry "${date}" is not a calendar date`;
  }
  return ms;
}

/** Formats an instant's UTC date as `YYYYMMDD`. */
export function msToExpiryDate(ms: number): string {
  const d = new Date(ms);
  const y = d.getUTCFullYear().toString().padStart(4, '0');
  const m = (d.getUTCMonth() + 1).toString().padStart(2, '0');
  const day = d.getUTCDate().toString().padStart(2, '0');
  return `${y}${m}${day}`;
}

/** Parses a canonical instrument id; throws {@link InstrumentIdError} saying what is wrong. */
export function parseInstrumentId(id: string): ParsedInstrumentId {
  if (typeof id !== 'string' || id.length === 0) throw new InstrumentIdError(String(id), 'empty');
  if (id.length > 64) throw new InstrumentIdError(id.slice(0, 64), 'longer than 64 characters');
  const parts = id.split(':');
  const pair = parts[0] ?? '';
  const dash = pair.split('-');
  if (dash.length !== 2) throw new InstrumentIdError(id, `pair "${pair}" is not BASE-QUOTE`);
  const [base, quote] = dash as [string, string];
  if (!SYMBOL_RE.test(base)) throw new InstrumentIdError(id, `base "${base}" is not an upper-case symbol`);
  if (!SYMBOL_RE.test(quote)) throw new InstrumentIdError(id, `quote "${quote}" is not an upper-case symbol`);
  if (base === quote) throw new InstrumentIdError(id, 'base and quote are the same asset');
  const kind = parts[1];
  switch (kind) {
    case 'PERP':
    case 'SPOT':
      if (parts.length !== 2) throw new InstrumentIdError(id, `${kind} takes no further fields`);
      return { id, base, quote, kind: kind === 'PERP' ? 'perp' : 'spot' };
    case 'FUT': {
      if (parts.length !== 3)
        throw new InstrumentIdError(id, 'FUT takes exactly one field: the expiry YYYYMMDD');
      const expiryDate = parts[2] ?? '';
      const expiryMs = expiryDateToMs(expiryDate);
      if (typeof expiryMs === 'string') throw new InstrumentIdError(id, expiryMs);
      return { id, base, quote, kind: 'future', expiryDate, expiryMs };
    }
    case 'OPT': {
      if (parts.length !== 5) {
        throw new InstrumentIdError(id, 'OPT takes exactly three fields: expiry YYYYMMDD, strike, C or P');
      }
      const [, , expiryDate = '', strike = '', cp = ''] = parts;
      const expiryMs = expiryDateToMs(expiryDate);
      if (typeof expiryMs === 'string') throw new InstrumentIdError(id, expiryMs);
      if (!STRIKE_RE.test(strike)) {
        throw new InstrumentIdError(
          id,
          `strike "${strike}" is not a canonical positive decimal (e.g. 100000 or 2.5)`,
        );
      }
      if (Number(strike) <= 0) throw new InstrumentIdError(id, 'strike must be positive');
      if (cp !== 'C' && cp !== 'P') throw new InstrumentIdError(id, `option type "${cp}" is not C or P`);
      return {
        id,
        base,
        quote,
        kind: 'option',
        expiryDate,
        expiryMs,
        strike,
        optionType: cp === 'C' ? 'call' : 'put',
      };
    }
    default:
      throw new InstrumentIdError(id, `kind "${kind ?? ''}" is not PERP, SPOT, FUT or OPT`);
  }
}

export type InstrumentIdParts =
  | { kind: 'perp' | 'spot'; base: string; quote: string }
  | { kind: 'future'; base: string; quote: string; expiryDate: string }
  | {
      kind: 'option';
      base: string;
      quote: string;
      expiryDate: string;
      strike: string;
      optionType: OptionType;
    };

/** Formats parts into the canonical id; validates by parsing the result, so format ∘ parse is the identity. */
export function formatInstrumentId(parts: InstrumentIdParts): string {
  const pair = `${parts.base}-${parts.quote}`;
  let id: string;
  switch (parts.kind) {
    case 'perp':
      id = `${pair}:PERP`;
      break;
    case 'spot':
      id = `${pair}:SPOT`;
      break;
    case 'future':
      id = `${pair}:FUT:${parts.expiryDate}`;
      break;
    case 'option':
      id = `${pair}:OPT:${parts.expiryDate}:${parts.strike}:${parts.optionType === 'call' ? 'C' : 'P'}`;
      break;
  }
  parseInstrumentId(id);
  return id;
}

/** Canonical decimal form of a positive strike given as a number or string (`100000.0` → `100000`). */
export function canonicalStrike(strike: number | string): string {
  const s = typeof strike === 'number' ? strike.toString() : strike.trim();
  if (!/^[0-9]+(\.[0-9]+)?$/.test(s))
    throw new InstrumentIdError(String(strike), 'strike is not a plain decimal');
  let [int = '0', frac = ''] = s.split('.');
  int = int.replace(/^0+(?=[0-9])/, '');
  frac = frac.replace(/0+$/, '');
  return frac ? `${int}.${frac}` : int;
}

/** zod schema for a canonical instrument id string. */
export const InstrumentId = z.string().superRefine((value, ctx) => {
  try {
    parseInstrumentId(value);
  } catch (err) {
    ctx.addIssue({
      code: 'custom',
      message: err instanceof InstrumentIdError ? err.shortMessage : String(err),
    });
  }
});
export type InstrumentId = z.infer<typeof InstrumentId>;

/** What the book needs to know about an instrument beyond its id. */
export const InstrumentMeta = z.object({
  id: InstrumentId,
  kind: z.enum(['perp', 'spot', 'future', 'option']),
  underlying: AssetSymbol,
  quote: AssetSymbol,
  /** Currency premium, P&L and settlement are paid in: `USD`/`USDC` (linear) or the coin (inverse). */
  settlementCurrency: AssetSymbol,
  /** True when the contract is coin-settled (Deribit-style options, inverse perps). */
  inverse: z.boolean(),
  /** Units of the underlying per contract (1 for most venues; `sizeBase = contracts × contractSize`). */
  contractSize: z.number().positive().finite(),
  /** For inverse perps quoted in USD contracts: USD face value of one contract (Deribit BTC-PERP: 10). */
  contractValueUsd: z.number().positive().finite().optional(),
  expiryMs: z.number().int().optional(),
  strike: z.number().positive().finite().optional(),
  optionType: z.enum(['call', 'put']).optional(),
});
export type InstrumentMeta = z.infer<typeof InstrumentMeta>;

const STABLES = new Set(['USD', 'USDC', 'USDT', 'DAI']);
export function isUsdLike(asset: string): boolean {
  return STABLES.has(asset);
}

/**
 * Builds instrument metadata from a canonical id; settlement defaults to the quote currency
 * (linear). Pass `settlementCurrency` equal to the base asset for a coin-settled (inverse) contract.
 */
export function instrumentMeta(
  id: string,
  opts: { settlementCurrency?: string; contractSize?: number; contractValueUsd?: number } = {},
): InstrumentMeta {
  const p = parseInstrumentId(id);
  const settlementCurrency = opts.settlementCurrency ?? p.quote;
  const meta: InstrumentMeta = {
    id,
    kind: p.kind,
    underlying: p.base,
    quote: p.quote,
    settlementCurrency,
    inverse: settlementCurrency === p.base,
    contractSize: opts.contractSize ?? 1,
  };
  if (opts.contractValueUsd !== undefined) meta.contractValueUsd = opts.contractValueUsd;
  if (p.kind === 'future' || p.kind === 'option') meta.expiryMs = p.expiryMs;
  if (p.kind === 'option') {
    meta.strike = Number(p.strike);
    meta.optionType = p.optionType;
  }
  return InstrumentMeta.parse(meta);
}
