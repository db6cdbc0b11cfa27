import { readFileSync } from 'node:fs';
import {
  AssetSymbol,
  ChainId,
  formatPath,
  InstrumentIdError,
  ManualClock,
  parseInstrumentId,
  VenueId,
} from '@xhedge/core';
import { RiskEngine, type RiskPosition, type RiskSnapshot } from '@xhedge/risk';
import type { Command } from 'commander';
import { z } from 'zod';
import { CliUsageError, EXIT_OK, parseTimeOption } from '../cli-error.ts';
import { type CliIo, formatTable } from '../io.ts';

const CSV_COLUMNS = ['venue', 'chain', 'instrument', 'size', 'settle'] as const;

/**
 * `--market` JSON: per underlying spot (USD), flat vol (decimal), rate (decimal), optional per-instrument
 * IVs and optional settlement prices (USD) of expiries already past, by expiry date `YYYYMMDD`.
 */
export const RiskMarketFile = z.record(
  AssetSymbol,
  z
    .object({
      spot: z.number().positive().finite(),
      vol: z.number().positive().max(5, 'vol is a decimal (0.6 = 60%), at most 5'),
      rate: z.number().min(-1).max(1, 'rate is a decimal per year (0.05 = 5%), between -1 and 1').default(0),
      iv: z.record(z.string(), z.number().positive().max(5, 'iv is a decimal (0.6 = 60%)')).default({}),
      /** Settlement prices of expiries already past, USD, by expiry date as in the instrument ids. */
      settlement: z
        .record(z.string(), z.number().positive().finite())
        .superRefine((r, ctx) => {
          // checked here, not by the record's key schema: zod reports a bad key without its message
          for (const k of Object.keys(r))
            if (!/^\d{8}$/.test(k))
              ctx.addIssue({
                code: 'custom',
                path: [k],
                message: `settlement keys are expiry dates YYYYMMDD, as in the instrument ids; got "${k}"`,
              });
        })
        .default({}),
    })
    .strict(),
);
export type RiskMarketFile = z.infer<typeof RiskMarketFile>;

function read(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new CliUsageError(
      `cannot read ${what} ${path}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}

/** Parses the positions CSV (header `venue,chain,instrument,size,settle`); errors name the file, line and field. */
export function parsePositionsCsv(text: string, file: string, asOfMs: number): RiskPosition[] {
  const lines = text.split(/\r?\n/);
  const header = (lines[0] ?? '').split(',').map((h) => h.trim());
  if (header.join(',') !== CSV_COLUMNS.join(','))
    throw new CliUsageError(
      `${file} line 1: header must be "${CSV_COLUMNS.join(',')}", got "${lines[0] ?? ''}"`,
    );
  const out: RiskPosition[] = [];
  lines.forEach((raw, i) => {
    const n = i + 1;
    if (i === 0 || raw.trim() === '' || raw.trim().startsWith('#')) return;
    const cells = raw.split(',').map((c) => c.trim());
    if (cells.length !== CSV_COLUMNS.length)
      throw new CliUsageError(
        `${file} line ${n}: expected ${CSV_COLUMNS.length} fields, got ${cells.length}`,
      );
    const [venue = '', chain = '', instrument = '', size = '', settle = ''] = cells;
    const field = (name: string, schema: z.ZodType, value: string) => {
      const r = schema.safeParse(value);
      if (!r.success)
        throw new CliUsageError(
          `${file} line ${n}: ${name} "${value}": ${r.error.issues[0]?.message ?? 'invalid'}`,
        );
    };
    field('venue', VenueId, venue);
    field('chain', ChainId, chain);
    try {
      parseInstrumentId(instrument);
    } catch (err) {
      if (err instanceof InstrumentIdError) throw new CliUsageError(`${file} line ${n}: ${err.shortMessage}`);
      throw err;
    }
    const sizeBase = Number(size);
    if (size === '' || !Number.isFinite(sizeBase) || sizeBase === 0)
      throw new CliUsageError(
        `${file} line ${n}: size "${size}" must be a non-zero number (underlying units)`,
      );
    if (settle !== '') field('settle', AssetSymbol, settle);
    const p: RiskPosition = { venue, chain, instrument, sizeBase, asOfMs };
    if (settle !== '') p.settlementCurrency = settle;
    out.push(p);
  });
  if (out.length === 0) throw new CliUsageError(`${file}: no positions`);
  return out;
}

export function parseMarketJson(text: string, file: string): RiskMarketFile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new CliUsageError(`${file}: not JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  const r = RiskMarketFile.safeParse(json);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new CliUsageError(`${file}: ${i ? `${formatPath(i.path) || '(root)'}: ${i.message}` : 'invalid'}`);
  }
  return r.data;
}

/** Builds the snapshot for `xhedge risk`. */
export function computeRisk(
  positions: readonly RiskPosition[],
  market: RiskMarketFile,
  asOfMs: number,
  opts: { positionsFile: string; scenarios: boolean },
): RiskSnapshot {
  for (const [i, p] of positions.entries()) {
    const u = parseInstrumentId(p.instrument).base;
    if (!market[u])
      throw new CliUsageError(
        `${opts.positionsFile}: position ${i + 1} (${p.instrument}) needs market data for ${u}`,
      );
  }
  const engine = new RiskEngine({ clock: new ManualClock(asOfMs) });
  engine.setBook({ positions });
  for (const [u, m] of Object.entries(market))
    engine.setMarket(u, {
      spotUsd: m.spot,
      volDecimal: m.vol,
      rateDecimal: m.rate,
      asOfMs,
      ivByInstrument: m.iv,
      settlementPricesUsd: m.settlement,
    });
  return engine.snapshot({ scenarios: opts.scenarios });
}

const COLUMNS = ['delta', 'deltaUsd', 'gamma', 'gamma1PctUsd', 'vegaPerVolPoint', 'thetaPerDay'] as const;

function renderTable(snap: RiskSnapshot): string {
  const rows: (string | number)[][] = [['', ...COLUMNS]];
  for (const r of Object.values(snap.underlyings)) {
    rows.push([`${r.underlying} @ ${r.spotUsd}`, ...COLUMNS.map((c) => r[c])]);
    for (const [v, t] of Object.entries(r.byVenue)) rows.push([`  venue ${v}`, ...COLUMNS.map((c) => t[c])]);
    for (const [ch, t] of Object.entries(r.byChain))
      rows.push([`  chain ${ch}`, ...COLUMNS.map((c) => t[c])]);
  }
  return formatTable(rows);
}

function parseAsOf(raw: string | undefined): number {
  if (raw === undefined) return Date.now();
  return parseTimeOption('as-of', raw, { dateHourUtc: 0 });
}

interface RiskOptions {
  positions: string;
  market: string;
  json?: boolean;
  asOf?: string;
  scenarios?: boolean;
}

/** `xhedge risk --positions <csv> --market <json> [--json]`: the book's Greeks without any venue. */
export function registerRisk(program: Command, io: CliIo, setExit: (code: number) => void): void {
  program
    .command('risk')
    .description('aggregate a book of positions into Greeks per underlying, by venue and by chain')
    .requiredOption('--positions <csv>', 'CSV with columns venue,chain,instrument,size,settle')
    .requiredOption('--market <json>', 'JSON: {"BTC": {"spot": 60000, "vol": 0.6, "rate": 0, "iv": {...}}}')
    .option('--json', 'machine-readable output')
    .option(
      '--as-of <time>',
      'pricing time: ISO 8601 (no zone = UTC; a date alone = 00:00 UTC) or epoch ms (default: now)',
    )
    .option('--scenarios', 'include the spot ±1..30% × vol ±10 pt P&L grid')
    .action((opts: RiskOptions) => {
      const asOfMs = parseAsOf(opts.asOf);
      const positions = parsePositionsCsv(read(opts.positions, 'positions'), opts.positions, asOfMs);
      const market = parseMarketJson(read(opts.market, 'market'), opts.market);
      const snap = computeRisk(positions, market, asOfMs, {
        positionsFile: opts.positions,
        scenarios: opts.scenarios === true,
      });
      if (opts.json) io.out(JSON.stringify(snap, null, 2));
      else {
        io.out(renderTable(snap));
        for (const w of snap.warnings) io.err(`warning: ${w}`);
      }
      setExit(EXIT_OK);
    });
}
