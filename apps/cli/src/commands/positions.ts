import { InstrumentId, parseInstrumentId, VenueId } from '@xhedge/core';
import { acknowledgePositionBreak } from '@xhedge/execution';
import { deploymentEndpoints } from '@xhedge/runtime';
import type { Command } from 'commander';
import { CliUsageError, EXIT_INVALID, EXIT_OK } from '../cli-error.ts';
import type { CliIo } from '../io.ts';
import {
  Actor,
  DB_SCHEMA_RE,
  defaultActor,
  deploymentOptions,
  loadProfile,
  openLedger,
  Reason,
  textOption,
} from './kill-switch.ts';

interface PositionsOptions {
  config: string;
  venue?: string;
  instrument?: string;
  reason?: string;
  actor?: string;
  dbSchema?: string;
  json?: boolean;
}

/**
 * `xhedge positions breaks|ack`: the drop-copy check's open position breaks, and an operator's
 * acknowledgement of a venue's position as it is (a new baseline at the next quiet read), straight on
 * the deployment's ledger (DATABASE_URL or the profile's database.url), so it works without the API
 * and when the trading process is down. Returns the exit code.
 */
export async function runPositions(
  action: 'breaks' | 'ack',
  opts: PositionsOptions,
  io: CliIo,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<number> {
  const reason = action === 'ack' ? textOption('reason', Reason, opts.reason) : undefined;
  const actor = textOption('actor', Actor, opts.actor ?? defaultActor());
  if (action === 'ack') {
    if (!VenueId.safeParse(opts.venue).success)
      throw new CliUsageError(
        opts.venue === undefined
          ? '--venue is required: the venue whose position is acknowledged'
          : `--venue "${opts.venue}" is not a venue id (lowercase letters, digits and -)`,
      );
    if (!InstrumentId.safeParse(opts.instrument).success)
      throw new CliUsageError(
        opts.instrument === undefined
          ? '--instrument is required, e.g. ETH-USD:PERP'
          : `--instrument "${opts.instrument}" is not an instrument id such as ETH-USD:PERP`,
      );
  }
  if (opts.dbSchema !== undefined && !DB_SCHEMA_RE.test(opts.dbSchema))
    throw new CliUsageError(`--db-schema "${opts.dbSchema}" is not a schema name (lowercase, digits, _)`);
  const config = loadProfile(opts.config, io);
  if (!config) return EXIT_INVALID;
  // only the ledger: a Redis URL the profile takes from an unset env var does not stop this command
  const { dbUrl } = deploymentEndpoints(config, env, { optional: ['redis'] });
  if (!dbUrl)
    throw new CliUsageError(`no DATABASE_URL for profile ${config.name}`, [
      'its run keeps the ledger in an embedded PGlite inside the xhedge process, out of reach of this command;',
      'set DATABASE_URL (or the profile database.url), or use the API of the running xhedge:',
      'GET /v1/positions/breaks, POST /v1/positions/breaks/acknowledge.',
    ]);
  // only a change migrates (as the run does at start): a listing must not alter the ledger
  const ledger = await openLedger({
    url: dbUrl,
    schema: opts.dbSchema,
    poolSize: 1,
    migrate: action === 'ack',
  });
  try {
    if (action === 'breaks') {
      const open = (await ledger.openPositionBreaks()).map((e) => ({
        subject: e.subject ?? '',
        openedAtMs: e.atMs,
        venueSizeBase: e.details.venueSizeBase,
        expectedSizeBase: e.details.expectedSizeBase,
        diffBase: e.details.diffBase,
        sinceMs: e.details.sinceMs,
      }));
      if (opts.json) io.out(JSON.stringify({ breaks: open }));
      else if (open.length === 0) io.out('no open position break');
      else
        for (const b of open) {
          // sizes in the instrument's base asset (ETH for ETH-USD:PERP), as the JSON's *SizeBase/diffBase
          const unit = baseUnit(b.subject);
          io.out(
            `${b.subject}: ${String(b.venueSizeBase)} ${unit} at the venue, ${String(b.expectedSizeBase)} ${unit} by the ledger (${String(b.diffBase)} ${unit} unexplained) since ${new Date(b.openedAtMs).toISOString()}`,
          );
        }
      return EXIT_OK;
    }
    const r = await acknowledgePositionBreak(ledger, {
      venue: opts.venue as string,
      instrument: opts.instrument as string,
      actor,
      reason: reason as string,
    });
    if (opts.json) io.out(JSON.stringify({ ...r, by: actor, reason }));
    else
      io.out(
        `${r.venue}/${r.instrument}: acknowledged; the drop-copy check takes a new baseline at its next quiet read${r.breakOpen ? ' and the break closes then' : ''}`,
      );
    return EXIT_OK;
  } finally {
    await ledger.close();
  }
}

/** The unit of a break's sizes: the base asset of the instrument in `venue/instrument`, else "base units". */
function baseUnit(subject: string): string {
  try {
    return parseInstrumentId(subject.slice(subject.indexOf('/') + 1)).base;
  } catch {
    return 'base units';
  }
}

/** `xhedge positions breaks|ack` on the deployment's ledger (DATABASE_URL). */
export function registerPositions(program: Command, io: CliIo, setExit: (code: number) => void): void {
  const p = program
    .command('positions')
    .description("the drop-copy check's position breaks (venue positions our ledger cannot explain)");
  deploymentOptions(p.command('breaks').description('open position breaks')).action(
    async (opts: PositionsOptions) => setExit(await runPositions('breaks', opts, io)),
  );
  deploymentOptions(
    p
      .command('ack')
      .description("acknowledge a venue's position as it is: a new baseline at the next quiet read"),
  )
    .option('--venue <id>', 'the venue')
    .option('--instrument <id>', 'the instrument, e.g. ETH-USD:PERP')
    .option('--reason <text>', 'why (at least 3 characters); recorded in the audit')
    .option('--actor <name>', 'who (default operator:<os user>)')
    .action(async (opts: PositionsOptions) => setExit(await runPositions('ack', opts, io)));
}
