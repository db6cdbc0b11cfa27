import { EXPIRY_HOUR_UTC } from '@xhedge/core';
import {
  black76,
  bsm,
  everlastingOption,
  ImpliedVolError,
  type ImpliedVolInput,
  impliedVol,
  inverseOption,
  type OptionKind,
  PricingInputError,
  timeToExpiryYears,
} from '@xhedge/pricing';
import type { Command } from 'commander';
import { CliUsageError, EXIT_INVALID, EXIT_OK, parseNumberOption, parseTimeOption } from '../cli-error.ts';
import type { CliIo } from '../io.ts';

const MODELS = ['bs', 'black76', 'inverse', 'everlasting'] as const;
type Model = (typeof MODELS)[number];

/** Raw options shared by `greeks` and `iv` (commander gives strings). */
interface RawOptionArgs {
  model?: string;
  type?: string;
  spot?: string;
  forward?: string;
  strike?: string;
  expiryYears?: string;
  expiry?: string;
  vol?: string;
  rate?: string;
  carry?: string;
  fundingPeriodDays?: string;
  price?: string;
  json?: boolean;
}

interface Parsed {
  model: Model;
  type: OptionKind;
  /** Spot, or the forward when --forward was given. */
  underlying: number;
  isForward: boolean;
  strike: number;
  /** Years to expiry (for everlasting options: the funding period in years). */
  timeYears: number;
  rate: number;
  carry: number;
  fundingPeriodDays: number;
}

function parseCommon(o: RawOptionArgs, nowMs: number): Parsed {
  if (o.model === undefined) throw new CliUsageError(`--model is required (${MODELS.join(' | ')})`);
  if (!(MODELS as readonly string[]).includes(o.model))
    throw new CliUsageError(`unknown model "${o.model}": use one of ${MODELS.join(', ')}`);
  const model = o.model as Model;
  if (o.type !== 'call' && o.type !== 'put')
    throw new CliUsageError(
      o.type === undefined
        ? '--type is required (call | put)'
        : `--type must be call or put, got "${o.type}"`,
    );
  if ((o.spot === undefined) === (o.forward === undefined))
    throw new CliUsageError('give exactly one of --spot or --forward');
  const isForward = o.forward !== undefined;
  const underlying = isForward
    ? parseNumberOption('forward', o.forward ?? '', { positive: true })
    : parseNumberOption('spot', o.spot ?? '', { positive: true });
  if (o.strike === undefined) throw new CliUsageError('--strike is required');
  const strike = parseNumberOption('strike', o.strike, { positive: true });
  // Decimals per year: 5 for 5 % priced at 500 % (a delta of 1) without a word.
  const rate = o.rate === undefined ? 0 : decimalRate('rate', o.rate);
  const carry = o.carry === undefined ? 0 : decimalRate('carry', o.carry);
  const fundingPeriodDays =
    o.fundingPeriodDays === undefined
      ? 1
      : parseNumberOption('funding-period-days', o.fundingPeriodDays, { positive: true });
  let timeYears: number;
  if (model === 'everlasting') {
    if (o.expiry !== undefined || o.expiryYears !== undefined)
      throw new CliUsageError('everlasting options have no expiry: use --funding-period-days (default 1)');
    if (rate !== 0 || carry !== 0)
      throw new CliUsageError('the everlasting model assumes --rate 0 and --carry 0');
    timeYears = fundingPeriodDays / 365;
  } else {
    if (o.fundingPeriodDays !== undefined)
      throw new CliUsageError('--funding-period-days only applies to --model everlasting');
    if ((o.expiry === undefined) === (o.expiryYears === undefined))
      throw new CliUsageError('give exactly one of --expiry-years <T> or --expiry <ISO instant>');
    if (o.expiryYears !== undefined)
      timeYears = parseNumberOption('expiry-years', o.expiryYears, { positive: true });
    else {
      const ms = parseTimeOption('expiry', o.expiry ?? '', { dateHourUtc: EXPIRY_HOUR_UTC });
      try {
        timeYears = timeToExpiryYears(ms, nowMs);
      } catch (err) {
        if (err instanceof PricingInputError)
          throw new CliUsageError(`--expiry ${o.expiry} is not in the future`);
        throw err;
      }
    }
  }
  if (model === 'black76' && !isForward) throw new CliUsageError('--model black76 needs --forward');
  if (model === 'black76' && carry !== 0)
    throw new CliUsageError('--carry does not apply to black76 (the forward has it)');
  return { model, type: o.type, underlying, isForward, strike, timeYears, rate, carry, fundingPeriodDays };
}

/**
 * A rate or yield per year as a decimal: a value beyond the bound is a percentage given by mistake. A
 * risk-free rate stays within ±1 (100 %/yr); a carry (a perp's funding, a borrow) can pass 100 %/yr in
 * crypto, so it may reach ±3.
 */
function decimalRate(name: 'rate' | 'carry', raw: string): number {
  const r = parseNumberOption(name, raw);
  const bound = name === 'rate' ? 1 : 3;
  if (Math.abs(r) > bound)
    throw new CliUsageError(
      `--${name} is a decimal per year (0.05 = 5%), between -${bound} and ${bound}, got ${raw}`,
    );
  return r;
}

/** With --forward on a spot model, the forward stands in for spot with carry = rate (Black-76 marking). */
function spotAndCarry(p: Parsed): { spot: number; carry: number } {
  return p.isForward ? { spot: p.underlying, carry: p.rate } : { spot: p.underlying, carry: p.carry };
}

/** Computes the Greeks record printed by `xhedge greeks`. */
function computeGreeks(p: Parsed, vol: number): Record<string, number | string> {
  const base = { model: p.model, type: p.type };
  switch (p.model) {
    case 'bs': {
      const { spot, carry } = spotAndCarry(p);
      return {
        ...base,
        timeYears: p.timeYears,
        ...bsm({ type: p.type, spot, strike: p.strike, timeYears: p.timeYears, vol, rate: p.rate, carry }),
      };
    }
    case 'black76':
      return {
        ...base,
        timeYears: p.timeYears,
        ...black76({
          type: p.type,
          forward: p.underlying,
          strike: p.strike,
          timeYears: p.timeYears,
          vol,
          rate: p.rate,
        }),
      };
    case 'inverse': {
      const { spot, carry } = spotAndCarry(p);
      const { coin, ...usd } = inverseOption({
        type: p.type,
        spot,
        strike: p.strike,
        timeYears: p.timeYears,
        vol,
        rate: p.rate,
        carry,
      });
      return {
        ...base,
        timeYears: p.timeYears,
        ...usd,
        gammaCoin: coin.gamma,
        vegaPerVolPointCoin: coin.vegaPerVolPoint,
        thetaPerDayCoin: coin.thetaPerDay,
        rhoPer1PctCoin: coin.rhoPer1Pct,
      };
    }
    case 'everlasting':
      return {
        ...base,
        fundingPeriodDays: p.fundingPeriodDays,
        ...everlastingOption({
          type: p.type,
          spot: p.underlying,
          strike: p.strike,
          vol,
          fundingPeriodYears: p.timeYears,
        }),
      };
  }
}

function printTable(io: CliIo, rec: Record<string, number | string>): void {
  const width = Math.max(...Object.keys(rec).map((k) => k.length));
  for (const [k, v] of Object.entries(rec))
    io.out(
      `${k.padEnd(width)}  ${typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toPrecision(8)) : v}`,
    );
}

function rethrowPricing(err: unknown): never {
  if (err instanceof PricingInputError) throw new CliUsageError(err.shortMessage);
  throw err;
}

function addModelOptions(cmd: Command): Command {
  return cmd
    .option('--model <model>', `pricing model: ${MODELS.join(' | ')}`)
    .option('--type <type>', 'call | put')
    .option('--spot <S>', 'spot price of the underlying, USD')
    .option('--forward <F>', 'forward/futures price, USD (black76; for bs/inverse it marks on the forward)')
    .option('--strike <K>', 'strike, USD')
    .option('--expiry-years <T>', 'time to expiry, ACT/365 years')
    .option(
      '--expiry <iso>',
      'expiry instant, e.g. 2026-12-25T08:00:00Z; a date alone is 08:00 UTC, no zone is UTC (time from now, ACT/365)',
    )
    .option('--rate <r>', 'risk-free rate, decimal (default 0)')
    .option('--carry <q>', 'carry/dividend/borrow yield, decimal (default 0)')
    .option('--funding-period-days <N>', 'everlasting options: funding period in days (default 1)')
    .option('--json', 'print one JSON object');
}

/** `xhedge greeks` and `xhedge iv`. `now` is injectable for tests. */
export function registerGreeks(
  program: Command,
  io: CliIo,
  setExit: (code: number) => void,
  now: () => number = Date.now,
): void {
  addModelOptions(
    program.command('greeks').description('price and Greeks of one option (units per DESIGN.md)'),
  )
    .option('--vol <v>', 'implied volatility, decimal (0.65)')
    .action((o: RawOptionArgs) => {
      const p = parseCommon(o, now());
      if (o.vol === undefined) throw new CliUsageError('--vol is required (decimal, e.g. 0.65)');
      const vol = parseNumberOption('vol', o.vol, { positive: true });
      // as simulate and backtest: a 20 meant as 20% would price at 2000% vol without a word
      if (vol > 5) throw new CliUsageError(`--vol is a decimal (0.65 = 65%), got ${o.vol}`);
      let rec: Record<string, number | string>;
      try {
        rec = computeGreeks(p, vol);
      } catch (err) {
        rethrowPricing(err);
      }
      if (o.json) io.out(JSON.stringify(rec));
      else printTable(io, rec);
      setExit(EXIT_OK);
    });

  addModelOptions(
    program.command('iv').description('implied volatility from a price (inverse: price in coin)'),
  )
    .option('--price <P>', 'option price: USD, or coin for --model inverse')
    .action((o: RawOptionArgs) => {
      const p = parseCommon(o, now());
      if (o.price === undefined) throw new CliUsageError('--price is required');
      const price = parseNumberOption('price', o.price, { positive: true });
      const { spot, carry } = spotAndCarry(p);
      const input: ImpliedVolInput =
        p.model === 'bs'
          ? {
              model: 'bs',
              type: p.type,
              spot,
              strike: p.strike,
              timeYears: p.timeYears,
              rate: p.rate,
              carry,
              price,
            }
          : p.model === 'black76'
            ? {
                model: 'black76',
                type: p.type,
                forward: p.underlying,
                strike: p.strike,
                timeYears: p.timeYears,
                rate: p.rate,
                price,
              }
            : p.model === 'inverse'
              ? {
                  model: 'inverse',
                  type: p.type,
                  spot,
                  strike: p.strike,
                  timeYears: p.timeYears,
                  rate: p.rate,
                  carry,
                  priceCoin: price,
                }
              : {
                  model: 'everlasting',
                  type: p.type,
                  spot: p.underlying,
                  strike: p.strike,
                  fundingPeriodYears: p.timeYears,
                  price,
                };
      try {
        const iv = impliedVol(input);
        io.out(o.json ? JSON.stringify({ iv }) : `iv  ${iv.toPrecision(10)}`);
        setExit(EXIT_OK);
      } catch (err) {
        if (err instanceof ImpliedVolError) {
          if (o.json) io.out(JSON.stringify({ error: err.reason, message: err.shortMessage }));
          io.err(`error: ${err.shortMessage}`);
          setExit(EXIT_INVALID);
          return;
        }
        rethrowPricing(err);
      }
    });
}
