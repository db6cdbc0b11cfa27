import { userInfo } from 'node:os';
import { ConfigError, formatProblem, loadConfigFile, type XhedgeConfig } from '@xhedge/config';
import { isXhedgeError, namesForMessage, XhedgeError } from '@xhedge/core';
import {
  BreakerBoard,
  type BreakerStatus,
  connectRedis,
  type KillEngagement,
  type KillEngageResult,
  KillScope,
  KillSwitch,
  KillSwitchReleaseConflictError,
  KillSwitchUnrecordedError,
} from '@xhedge/execution';
import { deploymentEndpoints, SharedConfigStore } from '@xhedge/runtime';
import { Ledger, openDatabase } from '@xhedge/store';
import type { Command } from 'commander';
import { z } from 'zod';
import { CliUsageError, EXIT_FAILURE, EXIT_INVALID, EXIT_OK } from '../cli-error.ts';
import type { CliIo } from '../io.ts';
import { DEFAULT_PROFILE } from './start.ts';

/** How long the CLI waits for Redis to answer before giving up, ms (an operator tool must not hang). */
const REDIS_CONNECT_TIMEOUT_MS = 5_000;
/** How long one Redis command may wait for its answer once connected, ms. */
const REDIS_COMMAND_TIMEOUT_MS = 5_000;
/** How long the CLI waits for the ledger to open (connect, and migrate for a change), ms. */
const LEDGER_OPEN_TIMEOUT_MS = 10_000;
/** Postgres schema names `openDatabase` accepts. */
export const DB_SCHEMA_RE = /^[a-z_][a-z0-9_]{0,62}$/;
/** Same rule as the API's `reason`: say why, in at least 3 characters. */
export const Reason = z
  .string()
  .trim()
  .min(3, 'say why, in at least 3 characters')
  .max(500, 'at most 500 characters');
export const Actor = z.string().trim().min(1, 'must not be empty').max(100, 'at most 100 characters');

interface KillSwitchOptions {
  config: string;
  scope?: string;
  reason?: string;
  allowRiskReducing?: boolean;
  /** Engage even on a venue or underlying the deployment does not know. */
  force?: boolean;
  /** Engage replacing what is engaged, even loosening a full stop to reduce-only. */
  replace?: boolean;
  actor?: string;
  dbSchema?: string;
  json?: boolean;
}

type Action = 'engage' | 'release' | 'status';

/** `operator:<os user>`, the actor of a change when `--actor` is not given. */
export function defaultActor(): string {
  let user: string | undefined;
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry for this uid (some containers): fall back to the environment
  }
  return `operator:${user || process.env.USER || process.env.LOGNAME || 'unknown'}`;
}

/** Parses `--scope`; an invalid one is a usage error naming it and the accepted forms. */
export function parseKillScope(raw: string): KillScope {
  const r = KillScope.safeParse(raw);
  if (!r.success)
    throw new CliUsageError(`--scope "${raw}" is not a kill-switch scope`, [
      'expected global, venue:<venue id> (lowercase, e.g. venue:gmx-arb) or underlying:<SYMBOL> (e.g. underlying:BTC)',
    ]);
  return r.data;
}

/** Validates one text option with a zod schema; errors name the option. */
export function textOption(name: string, schema: z.ZodType<string>, raw: string | undefined): string {
  if (raw === undefined) throw new CliUsageError(`--${name} is required`);
  const r = schema.safeParse(raw);
  if (!r.success) throw new CliUsageError(`--${name}: ${r.error.issues[0]?.message ?? 'invalid'}`);
  return r.data;
}

/**
 * What is wrong with a scope that names a venue or underlying the deployment does not know (a typo
 * engages a switch that stops nothing, while the operator believes it stopped trading), or undefined.
 * The venues are the run's: its shared list in Redis (venues added through the API included, as the
 * API checks them), else the profile's; the underlyings are the profile's. A list that cannot be read
 * falls back to the profile's, said in `note`.
 */
async function unknownTarget(
  scope: KillScope,
  c: Connections,
  d: { config: XhedgeConfig; redisPrefix: string },
): Promise<{ message: string; note?: string } | undefined> {
  const [kind, id] = scope.split(':');
  if (kind === 'underlying') {
    const known = d.config.underlyings.map((u) => u.symbol);
    if (id === undefined || known.includes(id)) return undefined;
    return {
      message: `no underlying ${id} in deployment ${d.redisPrefix}; the underlyings are ${namesForMessage(known)}`,
    };
  }
  if (kind !== 'venue' || id === undefined) return undefined;
  let venues = d.config.venues;
  let note: string | undefined;
  try {
    venues = await new SharedConfigStore({
      redis: c.redis,
      prefix: d.redisPrefix,
      config: d.config,
    }).venues();
  } catch (err) {
    note = `note: the run's venue list could not be read (${err instanceof Error ? err.message : String(err)}); checked against profile ${d.config.name}`;
  }
  const known = venues.map((v) => v.id);
  if (known.includes(id)) return undefined;
  return {
    message: `no venue ${id} in deployment ${d.redisPrefix}; the venues are ${namesForMessage(known)}`,
    ...(note ? { note } : {}),
  };
}

/** `redis://user:secret@host:6379/0` → `host:6379` (credentials and paths stay out of messages). */
function redisLabel(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || '6379'}`;
  } catch {
    return 'the configured Redis';
  }
}

/** `postgres://user:secret@host:5432/db` → `host:5432` (credentials stay out of messages). */
function postgresLabel(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || '5432'}`;
  } catch {
    return 'the configured Postgres';
  }
}

/**
 * `work`, or a rejection with `timeoutError()` after `ms` (the work is left to settle on its own:
 * `onLate` gets what it still produces, so it can be closed).
 */
async function withDeadline<T>(
  work: Promise<T>,
  ms: number,
  timeoutError: () => Error,
  onLate: (value: T) => unknown = () => {},
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let late = false;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      late = true;
      reject(timeoutError());
    }, ms);
  });
  work.then(
    (v) => (late ? onLate(v) : undefined),
    () => {},
  );
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Opens the deployment's ledger, failing with `UNAVAILABLE` within `LEDGER_OPEN_TIMEOUT_MS` when its
 * Postgres does not answer (a connection it accepts but never serves would wait forever).
 */
export async function openLedger(o: {
  url: string;
  schema: string | undefined;
  poolSize: number;
  migrate: boolean;
}): Promise<Ledger> {
  const unreachable = (why: string, cause?: unknown) =>
    new XhedgeError('UNAVAILABLE', `cannot reach the ledger at ${postgresLabel(o.url)}`, {
      metaMessages: [why],
      ...(cause !== undefined ? { cause } : {}),
    });
  const db = await withDeadline(
    openDatabase({ ...o, connectTimeoutMs: LEDGER_OPEN_TIMEOUT_MS }),
    LEDGER_OPEN_TIMEOUT_MS,
    () => unreachable(`no answer within ${LEDGER_OPEN_TIMEOUT_MS} ms`),
    (late) => late.close().catch(() => {}),
  ).catch((err: unknown) => {
    // a connect timeout is the store's DB_TIMEOUT: the ledger did not answer, said as such
    if (isXhedgeError(err) && err.code === 'DB_TIMEOUT') throw unreachable(err.shortMessage, err);
    if (isXhedgeError(err)) throw err;
    // a refused connection, a timeout, a refused role or database: one line, never a stack trace
    // (pg's messages name the host, user and database, never the password)
    throw unreachable(String(err instanceof Error ? err.message : err).split('\n')[0] ?? '', err);
  });
  return new Ledger(db);
}

/** An open connection to the deployment's Redis (and ledger), closed by `close` whatever happened. */
export interface Connections {
  redis: ReturnType<Awaited<ReturnType<typeof connectRedis>>['client']>;
  kill: KillSwitch;
  breakers: BreakerBoard;
  ledger: Ledger | undefined;
  /**
   * With `ledgerAfterRedis`: the ledger being opened (`ledger` and the kill switch's own ledger are then
   * undefined); it rejects when the ledger cannot be opened.
   */
  ledgerLater?: Promise<Ledger>;
  close(): Promise<void>;
}

/**
 * Connects to the deployment's Redis (failing within `REDIS_CONNECT_TIMEOUT_MS` when it does not
 * answer, instead of retrying forever) and, when `dbUrl` is set, its ledger; builds the kill switch
 * and the breaker board on the deployment's key prefix.
 */
export async function connect(o: {
  config: XhedgeConfig;
  redisUrl: string;
  redisPrefix: string;
  dbUrl: string | undefined;
  dbSchema: string | undefined;
  /** Apply pending ledger migrations on open. */
  migrate: boolean;
  /**
   * Open the ledger in the background (`ledgerLater`) and build the kill switch without it: an engage
   * stops trading in Redis first and must not wait on, or be refused by, a ledger that is slow or down.
   */
  ledgerAfterRedis?: boolean;
}): Promise<Connections> {
  const closers: (() => Promise<unknown>)[] = [];
  const close = async () => {
    for (const c of closers.reverse().splice(0)) await c().catch(() => {});
  };
  try {
    let lastRedisError: Error | undefined;
    const endpoint = await connectRedis({ url: o.redisUrl, onError: (err) => (lastRedisError = err) });
    closers.push(() => endpoint.close());
    const redis = endpoint.client({
      lazyConnect: true,
      connectTimeout: REDIS_CONNECT_TIMEOUT_MS,
      commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
      maxRetriesPerRequest: 1,
      retryStrategy: (attempt) => (attempt > 2 ? null : 200),
    });
    closers.push(async () => {
      if (redis.status === 'ready') await redis.quit();
      else redis.disconnect();
    });
    try {
      // connectTimeout covers the TCP connect only: a Redis that accepts but never answers would
      // hold the handshake (AUTH, the ready check) forever
      await withDeadline(
        redis.connect(),
        REDIS_CONNECT_TIMEOUT_MS,
        () => new Error(`no answer within ${REDIS_CONNECT_TIMEOUT_MS} ms`),
      );
    } catch (err) {
      const cause: unknown = lastRedisError ?? err;
      throw new XhedgeError('UNAVAILABLE', `cannot reach Redis at ${redisLabel(o.redisUrl)}`, {
        cause,
        metaMessages: [cause instanceof Error ? cause.message : String(cause)],
      });
    }
    let ledger: Ledger | undefined;
    let ledgerLater: Promise<Ledger> | undefined;
    if (o.dbUrl) {
      // Only a change migrates (as the run does at start): a status check must not alter the ledger.
      const opening = openLedger({ url: o.dbUrl, schema: o.dbSchema, poolSize: 2, migrate: o.migrate });
      closers.push(async () => (await opening.catch(() => undefined))?.close());
      if (o.ledgerAfterRedis) {
        ledgerLater = opening;
        opening.catch(() => {}); // its caller reads the failure
      } else ledger = await opening;
    }
    const kill = new KillSwitch({ redis, prefix: o.redisPrefix, ...(ledger ? { ledger } : {}) });
    const breakers = new BreakerBoard({
      redis,
      prefix: o.redisPrefix,
      config: o.config.breakers,
      ...(ledger ? { ledger } : {}),
    });
    return { redis, kill, breakers, ledger, ...(ledgerLater ? { ledgerLater } : {}), close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** An engagement as the CLI prints it (JSON and text). */
function engagementView(e: KillEngagement) {
  return {
    scope: e.scope,
    reason: e.reason,
    by: e.actor,
    since: new Date(e.engagedAtMs).toISOString(),
    sinceMs: e.engagedAtMs,
    allowRiskReducing: e.allowRiskReducing,
    eventId: e.eventId,
  };
}

/** `a full stop` or `reduce-only (risk-reducing orders allowed)`. */
function modeText(allowRiskReducing: boolean): string {
  return allowRiskReducing ? 'reduce-only (risk-reducing orders allowed)' : 'a full stop';
}

/** `<mode> by <actor> since <iso> ("<reason>")`: an engagement in one phrase. */
function engagementText(e: KillEngagement): string {
  return `${modeText(e.allowRiskReducing)} by ${e.actor} since ${new Date(e.engagedAtMs).toISOString()} ("${e.reason}")`;
}

/** What an engage did and what is in force now, in one line. */
function engageText(r: KillEngageResult, prefix: string): string {
  const cancels = 'running workers abort jobs and cancel working orders';
  const asked = r.requested;
  switch (r.change) {
    case 'kept': {
      const loosening = asked.allowRiskReducing && !r.allowRiskReducing;
      return (
        `kill switch ${r.scope} already ENGAGED on ${prefix} as ${engagementText(r)}; ` +
        (loosening
          ? 'your reduce-only request did not loosen it (use --replace to)'
          : 'it stays in force; your request is recorded in the ledger') +
        `; ${cancels}`
      );
    }
    case 'tightened':
      return (
        `kill switch ${r.scope} on ${prefix} is now a full stop, by ${asked.actor}: "${asked.reason}"` +
        `${r.previous ? ` (was ${engagementText(r.previous)})` : ''}; ${cancels}`
      );
    case 'replaced':
      return (
        `kill switch ${r.scope} on ${prefix} REPLACED${r.previous ? ` (was ${engagementText(r.previous)})` : ''}: ` +
        `now ENGAGED as ${modeText(r.allowRiskReducing)} by ${asked.actor}: "${asked.reason}"; ${cancels}`
      );
    default:
      return (
        `kill switch ENGAGED ${r.scope} on ${prefix} by ${asked.actor}: "${asked.reason}"` +
        `${r.allowRiskReducing ? ' (risk-reducing orders allowed)' : ''}; ${cancels}`
      );
  }
}

/** A breaker that is not closed, as the CLI prints it. */
function breakerView(b: BreakerStatus) {
  return {
    name: b.name,
    state: b.state,
    reason: b.reason ?? '',
    ...(b.openedAtMs !== undefined
      ? { since: new Date(b.openedAtMs).toISOString(), sinceMs: b.openedAtMs }
      : {}),
    ...(b.cooldownMs !== undefined ? { cooldownMs: b.cooldownMs } : {}),
  };
}

/** The ledger's latest kill-switch events per scope; undefined (with a note) when it cannot be read. */
async function ledgerStates(ledger: Ledger, io: CliIo) {
  try {
    return await ledger.killSwitchStates();
  } catch (err) {
    io.err(
      `note: the ledger could not be read (${err instanceof Error ? err.message : String(err)}): engagements Redis lost are not shown`,
    );
    return undefined;
  }
}

/** Engaged scopes and non-closed breakers; with the ledger, also the engagements Redis has lost. */
async function status(c: Connections, io: CliIo) {
  const engaged = (await c.kill.engaged()).sort((a, b) => a.scope.localeCompare(b.scope));
  const breakers = (await c.breakers.list()).filter((b) => b.state !== 'closed');
  const inRedis = new Set<string>(engaged.map((e) => e.scope));
  const states = c.ledger ? await ledgerStates(c.ledger, io) : undefined;
  // A scope the ledger says is engaged but Redis lost: a running xhedge restores it within 5 s.
  const missingInRedis = states
    ?.filter((s) => s.action === 'engage' && !inRedis.has(s.scope))
    .map((s) => ({ scope: s.scope, reason: s.reason, by: s.actor, sinceMs: s.atMs }));
  return {
    killSwitches: engaged.map(engagementView),
    breakers: breakers.map(breakerView),
    ...(missingInRedis ? { missingInRedis } : {}),
  };
}

/** Prints the status in text form. */
function printStatus(io: CliIo, prefix: string, s: Awaited<ReturnType<typeof status>>): void {
  io.out(`deployment ${prefix}`);
  if (s.killSwitches.length === 0) io.out('kill switch: not engaged');
  for (const k of s.killSwitches)
    io.out(
      `kill switch ENGAGED ${k.scope}: "${k.reason}" by ${k.by} since ${k.since}` +
        `${k.allowRiskReducing ? ' (risk-reducing orders allowed)' : ''}`,
    );
  for (const m of s.missingInRedis ?? [])
    io.out(
      `kill switch ${m.scope}: engaged in the ledger but missing in Redis ("${m.reason}" by ${m.by}); a running xhedge restores it`,
    );
  if (s.breakers.length === 0) io.out('breakers: all closed');
  for (const b of s.breakers)
    io.out(
      `breaker ${b.state.toUpperCase()} ${b.name}${b.reason ? `: "${b.reason}"` : ''}${b.since ? ` since ${b.since}` : ''}`,
    );
}

/**
 * The deployment an operator command works on: `--db-schema` checked, the profile loaded (undefined,
 * with every problem printed, when it is invalid), and its Redis (required: `noRedisHint` says why and
 * what to do without it) and ledger URLs from the env or the profile.
 */
export function deploymentOf(
  opts: { config: string; dbSchema?: string | undefined },
  io: CliIo,
  env: Readonly<Record<string, string | undefined>>,
  noRedisHint: string[],
): { config: XhedgeConfig; redisUrl: string; dbUrl: string | undefined; redisPrefix: string } | undefined {
  if (opts.dbSchema !== undefined && !DB_SCHEMA_RE.test(opts.dbSchema))
    throw new CliUsageError(`--db-schema "${opts.dbSchema}" is not a schema name (lowercase, digits, _)`);
  const config = loadProfile(opts.config, io);
  if (!config) return undefined;
  // Redis is the switch; the ledger records it: a ledger URL the profile takes from an unset env var
  // does not stop the commands that only read Redis (status); a change still refuses without the ledger
  // (below), and stderr says why there is none
  const { redisUrl, dbUrl, redisPrefix, unresolved } = deploymentEndpoints(config, env, {
    optional: ['database'],
  });
  for (const why of unresolved) io.err(`warning: no ledger (only Redis is read): ${why}`);
  if (!redisUrl) throw new CliUsageError(`no Redis URL for profile ${config.name}`, noRedisHint);
  return { config, redisUrl, dbUrl, redisPrefix };
}

/** Loads the profile; prints every problem and returns undefined when it is invalid. */
export function loadProfile(file: string, io: CliIo): XhedgeConfig | undefined {
  try {
    return loadConfigFile(file);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    io.err(`invalid config ${file}: ${err.problems.length} problem(s)`);
    for (const p of err.problems) io.err(`  ${formatProblem(p)}`);
    return undefined;
  }
}

/**
 * Runs one kill-switch action against the deployment's Redis and ledger, never through the trading
 * process: so it works when that process is stuck or gone. Returns the exit code.
 */
export async function runKillSwitch(
  action: Action,
  opts: KillSwitchOptions,
  io: CliIo,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<number> {
  // Arguments first: a typo must not need Redis to be reported.
  const scope =
    action === 'status'
      ? undefined
      : parseKillScope(opts.scope ?? (action === 'engage' ? 'global' : throwMissingScope()));
  const reason = action === 'status' ? undefined : textOption('reason', Reason, opts.reason);
  const actor = textOption('actor', Actor, opts.actor ?? defaultActor());
  const d = deploymentOf(opts, io, env, [
    'its run uses an embedded Redis that lives inside the xhedge process, out of reach of this command.',
    'set REDIS_URL (or the profile redis.url) to the deployment Redis, or use the API of the running',
    `xhedge: POST /v1/kill-switch/${action === 'release' ? 'reset' : 'trip'} (GET /v1/controls for the status)`,
  ]);
  if (!d) return EXIT_INVALID;
  const { config, dbUrl, redisPrefix } = d;
  if (!dbUrl && action !== 'status')
    throw new CliUsageError(
      `no DATABASE_URL for profile ${config.name}: refusing to ${action} without the ledger`,
      [
        action === 'release'
          ? 'a release the ledger does not record is undone by the run restoring the engagement from the ledger.'
          : 'an engagement the ledger does not record would not survive a Redis data loss.',
        'set DATABASE_URL (or the profile database.url) to the deployment ledger.',
      ],
    );
  const c = await connect({
    ...d,
    dbSchema: opts.dbSchema,
    migrate: action !== 'status',
    ledgerAfterRedis: action === 'engage',
  });
  try {
    if (action === 'status') {
      const s = await status(c, io);
      if (opts.json) io.out(JSON.stringify({ deployment: redisPrefix, ...s }));
      else printStatus(io, redisPrefix, s);
      return EXIT_OK;
    }
    if (!scope || !reason) throw new Error('unreachable: engage/release without scope or reason');
    if (action === 'engage') {
      // Refused as the API refuses it, unless forced (a venue about to be added). A release is never
      // refused: whatever is engaged must be releasable.
      const unknown = await unknownTarget(scope, c, d);
      if (unknown?.note) io.err(unknown.note);
      if (unknown && !opts.force)
        throw new CliUsageError(`--scope ${scope}: ${unknown.message}`, [
          'engaged, it would stop nothing. Check the spelling, or engage it anyway with --force.',
        ]);
      if (unknown) io.err(`note: ${unknown.message}; engaging ${scope} anyway (--force)`);
      const e = await c.kill.engage(scope, {
        actor,
        reason,
        allowRiskReducing: opts.allowRiskReducing ?? false,
        ...(opts.replace ? { replace: true } : {}),
      });
      // engaged in Redis first (orders stop); then recorded (the result: the event says what was asked
      // and what is in force), or said to be engaged and unrecorded (exit 1)
      if (c.ledgerLater) {
        const ledger = await c.ledgerLater.catch((err: unknown) => {
          throw new KillSwitchUnrecordedError(e, err);
        });
        // records it, then restates an engagement that got into Redis meanwhile (an API's full stop
        // tightening this one), so this late record is not the ledger's last word over it
        await c.kill.recordEngagement(ledger, e);
      }
      if (opts.json)
        io.out(
          JSON.stringify({
            action,
            deployment: redisPrefix,
            engaged: true,
            // the engagement in force (its who, why and since: another's when it was kept)
            ...engagementView(e),
            change: e.change,
            requested: e.requested,
            ...(e.previous ? { previous: engagementView(e.previous) } : {}),
          }),
        );
      else io.out(engageText(e, redisPrefix));
      return EXIT_OK;
    }
    let wasEngaged: boolean;
    try {
      wasEngaged = await c.kill.release(scope, { actor, reason });
    } catch (err) {
      if (!(err instanceof KillSwitchReleaseConflictError)) throw err;
      // engaged again after the release read it: nothing was released, the newer engagement stays
      io.err(`error: ${err.message}`);
      if (opts.json)
        io.out(
          JSON.stringify({
            action,
            deployment: redisPrefix,
            scope,
            engaged: true,
            released: false,
            ...err.details,
            code: err.code,
          }),
        );
      return EXIT_FAILURE;
    }
    if (opts.json)
      io.out(
        JSON.stringify({
          action,
          deployment: redisPrefix,
          scope,
          engaged: false,
          wasEngaged,
          by: actor,
          reason,
        }),
      );
    else
      io.out(
        wasEngaged
          ? `kill switch released ${scope} on ${redisPrefix} by ${actor}: "${reason}"`
          : `kill switch ${scope} was not engaged on ${redisPrefix}; the release is recorded in the ledger`,
      );
    return EXIT_OK;
  } finally {
    await c.close();
  }
}

function throwMissingScope(): never {
  throw new CliUsageError('--scope is required for release (global, venue:<id> or underlying:<SYMBOL>)');
}

/** The options of a command on a deployment's Redis and ledger: `--config`, `--db-schema`, `--json`. */
export function deploymentOptions(cmd: Command): Command {
  return cmd
    .option('--config <file>', 'operator profile (its name picks the Redis key prefix)', DEFAULT_PROFILE)
    .option('--db-schema <name>', 'Postgres schema of the ledger when the run uses another than public')
    .option('--json', 'machine-readable output');
}

/**
 * `xhedge kill-switch engage|release|status`: the operator's kill switch, straight on the deployment's
 * Redis and ledger (REDIS_URL / DATABASE_URL or the profile's URLs), so it works when the trading
 * process is unhealthy. Engaging announces it to every worker, which abort jobs and cancel working
 * orders.
 */
export function registerKillSwitch(program: Command, io: CliIo, setExit: (code: number) => void): void {
  const ks = program
    .command('kill-switch')
    .description('engage, release or show the kill switch directly on the deployment Redis and ledger');
  const common = deploymentOptions;
  const changes = (cmd: Command) =>
    common(cmd)
      .option('--reason <text>', 'why (at least 3 characters); recorded in the ledger and the audit')
      .option('--actor <name>', 'who (default operator:<os user>)');

  changes(ks.command('engage').description('stop new orders in a scope; workers cancel working orders'))
    .option('--scope <scope>', 'global | venue:<id> | underlying:<SYMBOL>', 'global')
    .option('--allow-risk-reducing', 'still let reduce-only orders through')
    .option(
      '--replace',
      'replace what is engaged in the scope, even loosen an engaged full stop to reduce-only (without it an engage never loosens)',
    )
    .option(
      '--force',
      'engage even on a venue or underlying the deployment does not know (refused otherwise, exit 2: it would stop nothing)',
    )
    .action(async (opts: KillSwitchOptions) => setExit(await runKillSwitch('engage', opts, io)));
  changes(ks.command('release').description('release the kill switch of a scope'))
    .option('--scope <scope>', 'global | venue:<id> | underlying:<SYMBOL> (required)')
    .action(async (opts: KillSwitchOptions) => setExit(await runKillSwitch('release', opts, io)));
  common(ks.command('status').description('engaged kill-switch scopes and open breakers')).action(
    async (opts: KillSwitchOptions) => setExit(await runKillSwitch('status', opts, io)),
  );
}
