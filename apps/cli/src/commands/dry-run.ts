import { VenueId } from '@xhedge/core';
import { RedisShadowStore } from '@xhedge/venue-paper';
import type { Command } from 'commander';
import { CliUsageError, EXIT_INVALID, EXIT_OK } from '../cli-error.ts';
import type { CliIo } from '../io.ts';
import {
  Actor,
  type Connections,
  connect,
  defaultActor,
  deploymentOf,
  deploymentOptions,
  Reason,
  textOption,
} from './kill-switch.ts';

interface DryRunOptions {
  config: string;
  venue?: string;
  reason?: string;
  actor?: string;
  dbSchema?: string;
  json?: boolean;
}

/** Venue ids with simulated state on the deployment's Redis (`<prefix>:dry-run:<venue>`). */
async function venuesWithState(c: Connections, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await c.redis.scan(cursor, 'MATCH', `${prefix}:dry-run:*`, 'COUNT', 500);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  return keys.map((k) => k.slice(`${prefix}:dry-run:`.length)).sort();
}

/**
 * What a dry run has simulated on one venue, as the CLI prints it (exact decimal strings): the positions
 * it added (size in the underlying, entry in USD per unit, the collateral a short option locks in USD),
 * the collateral moved (USD) and the coins moved (`amount` in units of `asset`: payoffs of coin-settled
 * instruments, paid in the coin).
 */
async function venueView(c: Connections, prefix: string, venue: string) {
  const store = new RedisShadowStore({ redis: c.redis, prefix, venue });
  const [s, counts] = await Promise.all([store.load(), store.counts()]);
  return {
    venue,
    positions: [...s.books]
      .filter(([, b]) => !b.size.isZero())
      .map(([instrument, b]) => ({
        instrument,
        sizeBase: b.size.toFixed(),
        entryUsd: b.entryUsd.toFixed(),
        lockedUsd: b.lockedUsd.toFixed(),
      })),
    cashUsd: s.cashUsd.toFixed(),
    coins: [...s.coins]
      .filter(([, amount]) => !amount.isZero())
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([asset, amount]) => ({ asset, amount: amount.toFixed() })),
    orders: counts.orders,
    fills: counts.fills,
  };
}

/**
 * `xhedge dry-run status|reset`: what a dry run has simulated, kept in the deployment's Redis, and
 * starting over from the real accounts (the simulated state deleted, the book mark cleared so the
 * next tick marks the book again; both recorded in the ledger's audit). Returns the exit code.
 */
export async function runDryRun(
  action: 'status' | 'reset',
  opts: DryRunOptions,
  io: CliIo,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<number> {
  const reason = action === 'reset' ? textOption('reason', Reason, opts.reason) : undefined;
  const actor = textOption('actor', Actor, opts.actor ?? defaultActor());
  if (opts.venue !== undefined && !VenueId.safeParse(opts.venue).success)
    throw new CliUsageError(`--venue "${opts.venue}" is not a venue id (lowercase letters, digits and -)`);
  const d = deploymentOf(opts, io, env, [
    'its run uses an embedded Redis that lives inside the xhedge process (and its dry-run state with it);',
    'set REDIS_URL (or the profile redis.url) to the deployment Redis.',
  ]);
  if (!d) return EXIT_INVALID;
  const { config, dbUrl, redisPrefix } = d;
  if (action === 'reset' && !dbUrl)
    throw new CliUsageError(
      `no DATABASE_URL for profile ${config.name}: refusing to reset without the ledger`,
      ['the reset clears the book mark, which the run restores from the ledger; set DATABASE_URL.'],
    );
  const c = await connect({ ...d, dbSchema: opts.dbSchema, migrate: action === 'reset' });
  try {
    const all = await venuesWithState(c, redisPrefix);
    const venues = opts.venue === undefined ? all : all.filter((v) => v === opts.venue);
    if (action === 'status') {
      const views = await Promise.all(venues.map((v) => venueView(c, redisPrefix, v)));
      if (opts.json)
        io.out(JSON.stringify({ deployment: redisPrefix, dryRun: config.dryRun, venues: views }));
      else {
        io.out(
          `deployment ${redisPrefix}${config.dryRun ? ' (dry run)' : ' (the profile is not a dry run)'}`,
        );
        if (views.length === 0) io.out('no simulated state');
        for (const v of views) {
          io.out(
            `${v.venue}: ${v.orders} simulated orders, ${v.fills} fills, collateral moved ${v.cashUsd} USD`,
          );
          if (v.coins.length > 0)
            io.out(`  coins moved: ${v.coins.map((x) => `${x.amount} ${x.asset}`).join(', ')}`);
          for (const p of v.positions)
            io.out(
              `  ${p.instrument} ${p.sizeBase} at ${p.entryUsd} USD${p.lockedUsd === '0' ? '' : `, locks ${p.lockedUsd} USD`}`,
            );
        }
      }
      return EXIT_OK;
    }
    if (!reason) throw new Error('unreachable: reset without a reason');
    // audited first: a reset whose audit cannot be written does not happen (no unaudited delete)
    await c.ledger?.audit({
      actor,
      action: 'dry-run.reset',
      subject: opts.venue ?? 'all',
      details: { venues, reason },
    });
    const removedKeys = venues.length
      ? await c.redis.del(...venues.flatMap((v) => RedisShadowStore.keysOf(redisPrefix, v)))
      : 0;
    await c.breakers.clearMark({
      actor,
      reason: `dry run reset (${venues.join(', ') || 'no simulated state'}): ${reason}`,
    });
    if (opts.json)
      io.out(JSON.stringify({ action, deployment: redisPrefix, venues, removedKeys, by: actor, reason }));
    else
      io.out(
        venues.length
          ? `dry run reset on ${redisPrefix}: ${venues.join(', ')} start from the real accounts again; the next tick marks the book`
          : `no simulated state on ${redisPrefix}${opts.venue ? ` for ${opts.venue}` : ''}; the book mark is cleared`,
      );
    return EXIT_OK;
  } finally {
    await c.close();
  }
}

/** `xhedge dry-run status|reset` on the deployment's Redis and ledger (REDIS_URL / DATABASE_URL). */
export function registerDryRun(program: Command, io: CliIo, setExit: (code: number) => void): void {
  const dr = program
    .command('dry-run')
    .description("show or reset what a dry run has simulated (in the deployment's Redis)");
  const common = (cmd: Command) =>
    deploymentOptions(cmd).option(
      '--venue <id>',
      'one venue only (default: every venue with simulated state)',
    );
  common(
    dr.command('status').description('simulated orders, fills, positions, collateral and coins per venue'),
  ).action(async (opts: DryRunOptions) => setExit(await runDryRun('status', opts, io)));
  common(dr.command('reset').description('start over from the real accounts; the book is marked again'))
    .option('--reason <text>', 'why (at least 3 characters); recorded in the audit')
    .option('--actor <name>', 'who (default operator:<os user>)')
    .action(async (opts: DryRunOptions) => setExit(await runDryRun('reset', opts, io)));
}
