import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  type AdminTokenBootstrap,
  type ApiPorts,
  BrowserSessions,
  bootstrapAdminToken,
  buildApiServer,
  FileTokenStore,
  type HedgeMetrics,
  REDACT_PATHS,
  RedisSessionStore,
  registerMetrics,
} from '@xhedge/api';
import { capFor, type XhedgeConfig } from '@xhedge/config';
import { AcceleratedClock, type Clock, type OrderStatus, systemClock, XhedgeError } from '@xhedge/core';
import {
  type BridgeEndpoint,
  createPaperBridgeForVenues,
  layerZeroCostModel,
  type PaperBridge,
  routingBridgeCost,
  wasSent,
} from '@xhedge/crosschain';
import {
  BreakerBoard,
  closeRedisClient,
  connectRedis,
  DropCopy,
  ExecutionMetrics,
  ExecutionService,
  type KillScope,
  KillSwitch,
  keepControlStateRestored,
  LeaderLease,
  type MarketDataSource,
  type OrderJobData,
  type OrderJobResult,
  PreTradeControls,
  Reconciler,
  type RedisEndpoint,
  redisDurability,
  startWorkers,
  VenueMarketData,
  type WorkerPool,
} from '@xhedge/execution';
import {
  Ledger,
  newestRecordedMs,
  type OpenDatabaseOptions,
  openDatabase,
  SnapshotRetention,
} from '@xhedge/store';
import type { VenueAdapter, VenueHealth } from '@xhedge/venue';
import type { PaperVenue } from '@xhedge/venue-paper';
import { RedisShadowStore } from '@xhedge/venue-paper/shadow-store';
import type { Job, Queue, Worker } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { type Logger, pino } from 'pino';
import { SharedConfigStore } from './config-store.ts';
import { controlsPort } from './controls-port.ts';
import { deploymentEndpoints } from './deployment.ts';
import { FailureStreak } from './failure-streak.ts';
import { auditPort, hedgesPort, pnlPort, riskPort } from './ledger-ports.ts';
import { prettyLogDestination } from './log-format.ts';
import { LOG_SERIALIZERS } from './masked-error.ts';
import { serveMetrics } from './metrics-server.ts';
import { grossNotionalUsd, type PlanForExecution, TickPlanner } from './planner.ts';
import { PlanningLoop } from './planning-loop.ts';
import { createRouter } from './router.ts';
import { SnapshotBus } from './snapshot-bus.ts';
import { startTransferJobs, TransferFlows, transferDeliveredAtMs } from './transfers.ts';
import { VenueRegistry } from './venue-registry.ts';
import { buildVenue, buildVenues, hasPaperVenues, type RunVenues, realOnSimulatedClock } from './venues.ts';

export const RUN_ROLES = ['all', 'orchestrator', 'worker', 'api'] as const;
/** Chain id of anvil's and hardhat's local dev chains. */
const DEV_CHAIN = 'evm:31337';
/** Orders at a venue that only the adapter that sent them is sure to find again. */
const WORKING: readonly OrderStatus[] = ['sent', 'acknowledged', 'partially-filled', 'outcome-unknown'];
/** How often (wall ms) a process running venues re-reads the venue configs, besides the store's nudges. */
const VENUE_POLL_MS = 1000;
export type RunRole = (typeof RUN_ROLES)[number];

export interface StartRunOptions {
  config: XhedgeConfig;
  /** Which part runs in this process. @defaultValue `all` */
  role?: RunRole;
  /**
   * REDIS_URL, DATABASE_URL, XHEDGE_API_TOKEN, XHEDGE_LOG_LEVEL, XHEDGE_LOG_FORMAT (`json` or `pretty`;
   * default pretty on a terminal, JSON otherwise), and the env vars the profile names for keys.
   * @defaultValue process.env
   */
  env?: Readonly<Record<string, string | undefined>>;
  /** API port (0 = any free port). @defaultValue the profile's `api.port` (8780) */
  port?: number;
  /** API host. @defaultValue the profile's `api.host` (127.0.0.1) */
  host?: string;
  /** Dry run: orders to real venues are simulated at their quotes, never sent (overrides the profile's `dryRun`). */
  dryRun?: boolean;
  /**
   * Port of the Prometheus listener (`/metrics`, `/healthz`) of a process without the API (`worker`,
   * `orchestrator`): its counters live in its own registry, so scrape each such process. On `host`.
   * 0 = any free port. @defaultValue none (no listener)
   */
  metricsPort?: number;
  /** Folder for PGlite, tokens and the one-time admin token file. @defaultValue the profile's `dataDir` */
  dataDir?: string;
  /** Structured logger. @defaultValue pino to stdout at XHEDGE_LOG_LEVEL (info), secrets redacted, format per XHEDGE_LOG_FORMAT */
  logger?: Logger;
  /** Postgres schema of the ledger (several runs may share one database). @defaultValue `public` */
  databaseSchema?: string;
  /** Redis key prefix of this run (several runs may share one Redis). @defaultValue `{xhedge}:<profile name>` */
  redisPrefix?: string;
  /** API requests per minute per token. @defaultValue 600 */
  rateLimitPerMinute?: number;
  /**
   * Longest wait for one venue call of a planning tick, wall ms (`TickPlannerOptions.venueReadTimeoutMs`):
   * a venue that has not answered by then is handled as a failed read for that tick. Must be below
   * `tickTimeoutMs`. @defaultValue 10000
   */
  venueReadTimeoutMs?: number;
  /**
   * Most wall time one venue's calls may take in one planning tick, ms
   * (`TickPlannerOptions.venueTickBudgetMs`): after that its other calls of the tick fail at once, as a
   * failed read, so a venue answering each call just inside `venueReadTimeoutMs` cannot hold the tick
   * past the watchdog. Must be below `tickTimeoutMs`. @defaultValue 2 × venueReadTimeoutMs, at most half of
   * `tickTimeoutMs` (and at least venueReadTimeoutMs)
   */
  venueTickBudgetMs?: number;
  /**
   * The planning tick watchdog, wall ms (execution's `OrchestratorOptions.tickTimeoutMs`): a tick still
   * running after this long is given up, and planning goes on under a new lease (see `PlanningLoop`).
   * 0 turns it off. @defaultValue 60000
   */
  tickTimeoutMs?: number;
  /**
   * Run clock. @defaultValue an accelerated clock at the profile's `market.speed` when it has paper
   * venues, else the system clock (real chains run in real time)
   */
  clock?: Clock;
}

export interface Run {
  readonly role: RunRole;
  /** `http://host:port` of the API, when this process serves it. */
  readonly apiUrl: string | undefined;
  /** `http://host:port` of the metrics listener of a process without the API (`metricsPort`). */
  readonly metricsUrl: string | undefined;
  readonly admin: AdminTokenBootstrap | undefined;
  readonly clock: Clock;
  readonly redis: { embedded: boolean; url: string };
  readonly database: 'postgres' | 'pglite';
  /**
   * The venue adapters this process runs now, paper and real, enabled or not (empty for the api role):
   * the profile's venues at start, then the ones operators add through the API. A disabled venue is
   * built too, read-only: risk reads its positions and balances into the book, routing never picks it,
   * and the workers send it no order (see `VenueRegistry.forExecution`). One that cannot be built is
   * left out and named in the risk snapshot's warnings; it does not hold hedging.
   */
  readonly venues: readonly VenueAdapter[];
  readonly ledger: Ledger;
  readonly killSwitch: KillSwitch;
  readonly planner: TickPlanner | undefined;
  /** The paper bridge moving collateral among the paper venues (none without paper venues or for the api role). */
  readonly bridge: PaperBridge | undefined;
  /** Lines for the operator: where the API and docs are, the one-time admin token. */
  describe(): string[];
  /** Graceful shutdown: API, planning, workers, queues, then Redis and the database. Idempotent. */
  stop(): Promise<void>;
}

/** How far ahead of the wall clock a real-time run accepts the ledger's newest row (host clock skew). */
const FUTURE_LEDGER_SLACK_MS = 5 * 60_000;

/** Longest wait for one check of `/v1/ready` (Redis, the database, the snapshot), ms. */
const READY_CHECK_MS = 3_000;

/** The `openDatabase` options the profile's `database` section sets (none of them: the store's defaults). */
function databaseLimits(d: XhedgeConfig['database']): Partial<OpenDatabaseOptions> {
  const out: Partial<OpenDatabaseOptions> = {};
  if (!d) return out;
  for (const k of [
    'poolSize',
    'connectTimeoutMs',
    'acquireTimeoutMs',
    'statementTimeoutMs',
    'queryTimeoutMs',
    'migrationTimeoutMs',
  ] as const)
    if (d[k] !== undefined) out[k] = d[k];
  if (d.allowNewerLedger !== undefined) out.allowNewerLedger = d.allowNewerLedger;
  return out;
}

/**
 * Where a venue's RPC is, for printing: the host of a literal URL (paths and queries often carry API
 * keys), or the name of the env var that holds it.
 */
function rpcLabel(u: string | { env: string } | undefined): string | undefined {
  if (u === undefined) return undefined;
  if (typeof u !== 'string') return `$${u.env}`;
  try {
    return new URL(u).host;
  } catch {
    return undefined;
  }
}

/** A venue's health, or not-ok when it does not answer within `timeoutMs`. */
async function probe(v: VenueAdapter, timeoutMs = 5000): Promise<VenueHealth> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<VenueHealth>((resolve) => {
    timer = setTimeout(
      () =>
        resolve({
          ok: false,
          latencyMs: timeoutMs,
          halted: false,
          dataAgeMs: Number.POSITIVE_INFINITY,
          details: { error: `no answer in ${timeoutMs} ms` },
        }),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([
      v.health().catch(
        (err: unknown): VenueHealth => ({
          ok: false,
          latencyMs: 0,
          halted: false,
          dataAgeMs: Number.POSITIVE_INFINITY,
          details: { error: err instanceof Error ? err.message : String(err) },
        }),
      ),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The Redis at `url` answers (a PING through `redis`), or a configuration error naming REDIS_URL (its
 * password masked) and what went wrong: a refused password or user, nothing listening, a timeout. Before
 * this, such a start failed with the client's own error and a stack trace.
 */
async function redisAnswers(redis: Redis, url: string): Promise<void> {
  try {
    await redis.ping();
  } catch (err) {
    const reason = (err instanceof Error ? err.message : String(err)).split('\n')[0];
    throw new XhedgeError(
      'CONFIG_INVALID',
      `REDIS_URL ${safeUrl(url)} does not answer: ${reason}; check its host, port, user and password`,
      { cause: err },
    );
  }
}

/** Postgres's answers that mean DATABASE_URL is wrong: refused login, unknown role or database, nothing there. */
const DATABASE_URL_CODES = new Set([
  '28P01', // invalid_password
  '28000', // invalid_authorization_specification (role does not exist, pg_hba refusal)
  '3D000', // invalid_catalog_name (database does not exist)
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
]);

/**
 * `open()` of the ledger at DATABASE_URL, with a configuration error naming DATABASE_URL (password
 * masked) when Postgres refuses the login, knows no such role or database, or does not answer; any other
 * failure (a migration, say) is passed on as it is.
 */
async function databaseAnswers<T>(url: string | undefined, open: () => Promise<T>): Promise<T> {
  try {
    return await open();
  } catch (err) {
    const code = (err as { code?: unknown } | null)?.code;
    if (url && typeof code === 'string' && DATABASE_URL_CODES.has(code)) {
      const reason = (err instanceof Error ? err.message : String(err)).split('\n')[0];
      throw new XhedgeError(
        'CONFIG_INVALID',
        `DATABASE_URL ${safeUrl(url)} refused the ledger: ${reason}; check its host, port, user, password and database`,
        { cause: err },
      );
    }
    throw err;
  }
}

/**
 * A service URL for printing: `redis://user:secret@host` → `redis://user:***@host`, every query value
 * masked too (`postgres://host/db?password=***`), parsed as a URL so that a password holding an `@`
 * is masked whole; one that does not parse prints as `[unparsable URL]`. A pattern over the text left
 * a query's password as it was and the part of a password after its `@`.
 */
function safeUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return '[unparsable URL]';
  }
  if (u.password) u.password = '***';
  for (const k of new Set(u.searchParams.keys())) u.searchParams.set(k, '***');
  return u.toString();
}

/**
 * Starts a run of xhedge from a validated profile: Redis (REDIS_URL or an embedded js-redis-server),
 * the ledger (DATABASE_URL or PGlite in the data folder), paper venues on the simulated 24/7 market,
 * and, by role, the leader-leased planning loop, the order workers with the reconciler, and the API.
 */
export async function startRun(opts: StartRunOptions): Promise<Run> {
  const config = opts.dryRun === undefined ? opts.config : { ...opts.config, dryRun: opts.dryRun };
  const role = opts.role ?? 'all';
  const venueReadMs = opts.venueReadTimeoutMs ?? 10_000;
  const tickMs = opts.tickTimeoutMs ?? 60_000;
  if (tickMs > 0 && venueReadMs >= tickMs)
    throw new XhedgeError(
      'CONFIG_INVALID',
      `venueReadTimeoutMs ${venueReadMs} must be below tickTimeoutMs ${tickMs}: a tick makes several rounds of venue calls, so one hung venue would trip the tick watchdog`,
    );
  // by default 2 × the read deadline, but never more than half the watchdog (nor less than one read): a
  // read deadline a profile raised must not make the default budget refuse the start
  const venueBudgetMs =
    opts.venueTickBudgetMs ??
    (tickMs > 0 ? Math.max(venueReadMs, Math.min(2 * venueReadMs, Math.floor(tickMs / 2))) : 2 * venueReadMs);
  if (tickMs > 0 && venueBudgetMs >= tickMs)
    throw new XhedgeError(
      'CONFIG_INVALID',
      `venueTickBudgetMs ${venueBudgetMs} must be below tickTimeoutMs ${tickMs}: a slow venue would use all of it and trip the tick watchdog`,
    );
  const env = opts.env ?? process.env;
  const pretty =
    env.XHEDGE_LOG_FORMAT === 'pretty' || (env.XHEDGE_LOG_FORMAT !== 'json' && process.stdout.isTTY === true);
  const log =
    opts.logger ??
    pino(
      {
        level: env.XHEDGE_LOG_LEVEL ?? 'info',
        redact: { paths: REDACT_PATHS, censor: '[redacted]' },
        serializers: LOG_SERIALIZERS,
      },
      pretty ? prettyLogDestination(process.stdout) : process.stdout,
    );
  const dataDir = resolve(opts.dataDir ?? config.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const paperOnly = config.venues.every((v) => v.kind.startsWith('paper-'));
  // Paper venues and local dev chains (anvil/hardhat's chain id) hold nothing of value: the API may
  // generate its admin token there instead of asking for XHEDGE_API_TOKEN.
  const noRealFunds = config.venues.every((v) => v.kind.startsWith('paper-') || v.chain === DEV_CHAIN);
  // The simulated market runs faster than real time (market.speed) only in an all-paper run. A real venue
  // on that clock would see its options expire, its rolling limits and breaker cooldowns pass, and its
  // marks go stale `speed` times too fast (a real 30-day option counted as expired after 12 hours); with
  // one in the profile, the paper venues run at real time too.
  const simulated = paperOnly && hasPaperVenues(config);
  const mixedPaper = !paperOnly && hasPaperVenues(config);
  const endpoints = deploymentEndpoints(config, env);
  const { redisUrl, dbUrl } = endpoints;
  if (role !== 'all' && (!redisUrl || !dbUrl))
    throw new XhedgeError(
      'CONFIG_INVALID',
      `--role ${role} shares state with the other roles: set REDIS_URL and DATABASE_URL (embedded ones live in one process)`,
    );
  if (role !== 'all' && paperOnly)
    log.warn('paper venues live inside one process; with split roles each process simulates its own venues');

  const speed = simulated ? (config.market?.speed ?? 60) : 1;
  if (mixedPaper && (config.market?.speed ?? 60) !== 1)
    log.warn(
      `the profile has real venues beside paper ones: the simulated market runs at real time (1×), not market.speed ${config.market?.speed ?? 60}×, so the real venues see time as it is`,
    );
  const prefix = opts.redisPrefix ?? endpoints.redisPrefix;
  const queuePrefix = `${prefix}:q`;

  // Everything opened is closed in reverse order by `stop`, also when a later step of startup fails.
  const closers: { name: string; close: () => Promise<unknown> }[] = [];
  const stopAll = async () => {
    for (const c of closers.reverse().splice(0)) {
      try {
        log.debug({ part: c.name }, 'closing');
        await c.close();
      } catch (err) {
        log.error({ err, part: c.name }, 'shutdown step failed');
      }
    }
  };

  try {
    const redisEp: RedisEndpoint = await connectRedis({ url: redisUrl });
    closers.push({ name: 'redis', close: () => redisEp.close() });
    const redis: Redis = redisEp.client({ maxRetriesPerRequest: 3 });
    closers.push({ name: 'redis client', close: () => closeRedisClient(redis) });
    if (!redisEp.embedded) await redisAnswers(redis, redisEp.url);
    // An evicting Redis can drop order jobs and locks silently: refused where funds are real, loud
    // everywhere (and /v1/ready says not ready). The embedded one is in memory by design.
    const durability = redisEp.embedded ? undefined : await redisDurability(redis);
    for (const w of durability?.warnings ?? []) log.warn({ redis: safeUrl(redisEp.url) }, w);
    for (const e of durability?.errors ?? []) log.error({ redis: safeUrl(redisEp.url) }, e);
    if (durability && durability.errors.length > 0 && !noRealFunds)
      throw new XhedgeError(
        'CONFIG_INVALID',
        `REDIS_URL points to a Redis unfit for orders: ${durability.errors.join('; ')}`,
      );
    const db = await databaseAnswers(dbUrl, () =>
      openDatabase({
        url: dbUrl,
        dataDir: dbUrl ? undefined : join(dataDir, 'pglite'),
        schema: opts.databaseSchema,
        // the profile's limits on the Postgres connections (database.poolSize, connectTimeoutMs, ...)
        ...databaseLimits(config.database),
        // a pooled connection Postgres ended (restart, failover): replaced at the next query; said once
        // per connection, its message masked by the store
        onError: (err) =>
          log.warn({ err }, 'ledger database connection lost; the next query opens a new one'),
      }),
    );
    // A simulated clock starts after the newest time the ledger holds: the last paper run stamped its rows
    // ahead of the wall clock, and a clock starting at the wall clock again found them in the future,
    // inside every rolling window, time gate and cooldown until it caught up.
    const newestMs = opts.clock ? undefined : await newestRecordedMs(db);
    // A real-time run on a ledger a simulated run wrote (rows hours ahead of the wall clock): its rolling
    // windows and time gates would hold hedging until the wall clock caught up. Refused, naming the gap.
    if (!simulated && newestMs !== undefined && newestMs > Date.now() + FUTURE_LEDGER_SLACK_MS)
      throw new XhedgeError(
        'CONFIG_INVALID',
        `the ledger holds rows stamped up to ${new Date(newestMs).toISOString()}, ${((newestMs - Date.now()) / 3_600_000).toFixed(1)} h ahead of this run's real-time clock: it was written by a simulated (paper, market.speed) run, whose hedges would count as recent for that long and hold this run's hedging; start this profile on its own ledger (another dataDir, DATABASE_URL or schema)`,
        { details: { newestMs } },
      );
    const clock: Clock =
      opts.clock ??
      (simulated
        ? new AcceleratedClock({
            startMs: Math.max(Date.now(), (newestMs ?? 0) + 1),
            speed,
          })
        : systemClock);
    const ledger = new Ledger(db, { clock });
    /** For building venues: a real venue cannot run on a clock faster than real time. */
    const simulatedSpeed = simulated && speed !== 1 ? { simulatedSpeed: speed } : {};
    closers.push({ name: 'database', close: () => ledger.close() });

    const execMetrics = new ExecutionMetrics();
    const breakers = new BreakerBoard({
      redis,
      prefix,
      config: config.breakers,
      ledger,
      metrics: execMetrics,
      clock,
    });
    const killSwitch = new KillSwitch({ redis, prefix, ledger, metrics: execMetrics, clock });
    const controls = new PreTradeControls({ redis, prefix, limits: config.limits, clock });
    // Fail-closed: kill-switch engagements, open breakers and the pre-trade windows (hedge notional,
    // executions, orders in flight) the ledger holds but Redis lost come back before anything trades,
    // and every 5 s while the run goes (a Redis restart or failover can happen at any time); until a
    // restore has run on the Redis of the moment, the order gate passes nothing.
    const restorer = keepControlStateRestored(
      { redis, prefix, killSwitch, breakers, ledger, controls, metrics: execMetrics },
      {
        actor: 'run',
        intervalMs: 5_000,
        onRestored: (r) => {
          for (const e of r.killSwitch)
            log.warn(
              { scope: e.scope, reason: e.reason, engagedBy: e.actor, eventId: e.eventId },
              `kill switch ${e.scope} restored from the ledger (missing in Redis)`,
            );
          for (const b of r.breakers)
            log.warn({ breaker: b }, `breaker ${b} restored open from the ledger (missing in Redis)`);
          if (r.reservations > 0)
            log.warn(
              { orders: r.reservations },
              `pre-trade windows restored from the ledger: ${r.reservations} orders (Redis lost them)`,
            );
        },
        onError: (err) => log.error({ err }, 'restoring the control state from the ledger failed'),
      },
    );
    closers.push({ name: 'control-state restore', close: () => restorer.stop() });
    await restorer.first;
    // Operators' venue and policy changes: Redis the shared copy, the ledger the durable one. A Redis that
    // lost or rolled back them gets the ledger's copy back at start, every 5 s and on reconnect (never the
    // profile's while the ledger has one); a change the ledger missed is written to it.
    const configStore = new SharedConfigStore({ redis, prefix, config, ledger });
    await configStore.init();
    const configRestorer = configStore.keepRestored({
      intervalMs: 5_000,
      onRestored: (done) => {
        for (const r of done) {
          // revisions and outcomes only: the documents may hold a keyed RPC URL
          const data = {
            document: r.document,
            outcome: r.outcome,
            redisRevision: r.redisRevision,
            revision: r.revision,
          };
          if (r.outcome === 'conflict')
            log.error(
              data,
              `shared config ${r.document}: a change made on an old copy (Redis revision ${r.redisRevision ?? 'none'}, after Redis lost or rolled back the ${r.document}) was undone; the ledger's copy is in force at revision ${r.revision}: whoever made it must read the ${r.document} again and redo it`,
            );
          else if (r.outcome === 'restored')
            log.warn(
              data,
              `shared config ${r.document} restored from the ledger at revision ${r.revision} (Redis had ${r.redisRevision ?? 'none'})`,
            );
          else
            log.info(
              data,
              `shared config ${r.document} ${r.outcome} in the ledger at revision ${r.revision}`,
            );
        }
      },
      onError: (err) =>
        log.error({ err }, 'keeping the shared config (venues, policy) restored from the ledger failed'),
    });
    closers.push({ name: 'shared config restore', close: () => configRestorer.stop() });
    await configRestorer.first;
    // A venue cap keyed by no venue stored (a typo such as gmx-arbitrum for gmx-arb) never applies: said at
    // start (a venue added later through the API under that id gets it).
    {
      const stored = new Set((await configStore.venues()).map((v) => v.id));
      const unknown = Object.keys(config.limits.maxVenueNotionalUsd).filter(
        (k) => k !== '*' && !stored.has(k),
      );
      if (unknown.length > 0)
        log.warn(
          { caps: unknown, venues: [...stored] },
          `limits.maxVenueNotionalUsd names no venue of this run: ${unknown.join(', ')}; those caps apply to nothing until a venue with that id is added (a typo leaves the venue under the * cap or none)`,
        );
    }
    const bus = new SnapshotBus(ledger, { log });
    closers.push({ name: 'snapshot bus', close: async () => bus.close() });

    let built: RunVenues = { all: [], paper: [], market: undefined };
    // The venues of this process, kept in line with the stored venue configs while the run goes: the
    // api role only writes configs; the orchestrator (each tick) and the workers (poll and pub/sub
    // nudge) apply them to their own parts. The profile's enabled venues are built first (one that
    // cannot be built fails the start); the registry's first sync then builds the disabled ones,
    // read-only (one that fails is logged and left out; a slow one is waited for at most
    // venueReadTimeoutMs, then taken by a later sync), and those operators stored meanwhile.
    let registry: VenueRegistry | undefined;
    /** Puts a paper venue added while running on the paper bridge (set once the bridge exists). */
    let joinBridge: ((v: PaperVenue) => void) | undefined;
    if (role !== 'api') {
      // a dry run keeps its simulated fills in the run's Redis: every role sees them, a restart keeps them
      const shadowStore = (venue: string) => new RedisShadowStore({ redis, prefix, venue });
      built = await buildVenues({ config, clock, env, dataDir, shadowStore, ...simulatedSpeed });
      const started = built;
      const reg = new VenueRegistry({
        initial: built.all.map((adapter) => {
          const c = config.venues.find((v) => v.id === adapter.id);
          if (!c) throw new XhedgeError('INTERNAL', `venue ${adapter.id} built but not in the profile`);
          return { config: c, adapter };
        }),
        build: async (v, previous) => {
          const adapter = await buildVenue(
            v,
            { config, clock, env, dataDir, shadowStore, market: started.market, ...simulatedSpeed },
            previous,
          );
          // a rebuilt paper venue is on the bridge already (its endpoint follows the registry)
          if (!previous && v.kind.startsWith('paper-')) joinBridge?.(adapter as PaperVenue);
          return adapter;
        },
        current: () => configStore.venues(),
        workingOrders: async (venue) =>
          (await ledger.listOrders({ venue, status: WORKING, limit: 1 })).length,
        log: (level, msg, data) => log[level](data ?? {}, msg),
        disabledWaitMs: venueReadMs,
      });
      registry = reg;
      closers.push({ name: 'venues', close: () => reg.close() });
      // Changes operators stored (in this run's Redis, also before a restart) apply before anything runs.
      await reg.sync();
    }
    const liveVenues = (): VenueAdapter[] => registry?.adapters() ?? [];
    const { market } = built;
    // Real venues are probed once at start, so the banner says whether their chains answer (the loop
    // keeps retrying them every tick either way).
    const paperIds = new Set(built.paper.map((v) => v.id));
    const health = new Map(
      await Promise.all(
        built.all.filter((v) => !paperIds.has(v.id)).map(async (v) => [v.id, await probe(v)] as const),
      ),
    );
    // Collateral moves among the paper venues: a LayerZero-like bridge (fee and delivery latency) on the
    // run's clock, for the paper venues of the start and those added while running (a run that starts
    // without paper venues has none). Real chains get no bridge here, so routing never plans a move to
    // or from them. Its endpoints follow the registry, so a paper venue rebuilt for new params stays on it.
    const endpoint = (v: PaperVenue): BridgeEndpoint => {
      const now = () => (registry?.get(v.id) as PaperVenue | undefined) ?? v;
      return {
        id: v.id,
        chain: v.chain,
        debitBalance: (asset, amount) => now().debitBalance(asset, amount),
        creditBalance: (asset, amount) => now().creditBalance(asset, amount),
      };
    };
    const bridge =
      built.paper.length > 0 ? createPaperBridgeForVenues(built.paper.map(endpoint), clock) : undefined;
    const transferable = new Set(bridge ? built.paper.map((v) => v.id) : []);
    if (bridge && registry) {
      const reg = registry;
      joinBridge = (v) => {
        if (transferable.has(v.id)) return;
        try {
          bridge.addVenue(endpoint(v));
          transferable.add(v.id);
          log.info({ venue: v.id }, `paper venue ${v.id} joined the paper bridge`);
        } catch (err) {
          log.warn({ venue: v.id, err }, `paper venue ${v.id} cannot join the paper bridge`);
        }
      };
      // paper venues the start's sync added from stored configs (built before the bridge)
      for (const c of await configStore.venues()) {
        const a = reg.get(c.id);
        if (a && c.kind.startsWith('paper-')) joinBridge(a as PaperVenue);
      }
    }
    // The adapters as execution gets them (the registry's live map: venues added later are in it): a
    // disabled venue's refuses new orders, and its failed position read counts as none (see
    // `VenueRegistry.forExecution`). The workers get these too (`attachWorkers`).
    const byId: ReadonlyMap<string, VenueAdapter> = registry?.forExecution ?? new Map();
    // The pre-trade controls read marks, quotes and positions from the venues themselves, so the
    // stale-mark, price-band, slippage and position-limit checks run in the real run; stale marks also
    // trip the market breaker. Disabled venues' positions count in the exposure checks too.
    const venueCaps = config.limits.maxVenueNotionalUsd;
    const marketData: MarketDataSource = new VenueMarketData({
      venues: byId,
      breakers,
      clock,
      venueExposure: (venue) => capFor(venueCaps, venue) !== undefined,
      totalExposure: config.limits.maxTotalNotionalUsd !== undefined,
    });
    const service = new ExecutionService({
      connection: redisEp.options,
      queuePrefix,
      ledger,
      controls,
      breakers,
      killSwitch,
      marketData,
      reduceOnlyEnforced: (venue) => byId.get(venue)?.capabilities.reduceOnly === true,
      metrics: execMetrics,
      clock,
    });
    closers.push({ name: 'execution service', close: () => service.close() });

    let planner: TickPlanner | undefined;
    /** Starts the planning loop, once the workers that run its orders are up (see the end of the start). */
    let startPlanning: (() => void) | undefined;
    if (role === 'all' || role === 'orchestrator') {
      // Paper venues start from the profile on every start: in an all-paper book a mark kept in Redis
      // from an earlier run measures another book, and the first tick marks this one. Where any venue is
      // real (a dry run's too, whose simulated fills are kept in Redis), the mark stays: cleared, every
      // restart forgot the loss since it and re-armed the loss-since-mark breaker from zero. The paper
      // venues' restart then moves the equity against it (their P&L since the last start) by design:
      // erring toward the breaker tripping (an operator re-marks through the API), not toward a loss
      // forgotten.
      const venuesNow = await configStore.venues();
      if (built.paper.length > 0 && venuesNow.every((v) => v.kind.startsWith('paper-')))
        await breakers.clearMark({
          actor: 'run',
          reason: 'paper venues restart from the profile: the first tick marks the book again',
        });
      else if (built.paper.length > 0)
        log.warn(
          { real: venuesNow.filter((v) => !v.kind.startsWith('paper-')).map((v) => v.id) },
          'the book mark is kept (real venues): the paper venues restart from the profile, so their P&L since the last start counts against it',
        );
      // Likewise their drop-copy baselines: the ledger keeps the previous run's, but a paper venue's
      // positions start again from the profile, so each baseline is taken anew at the first quiet read
      // (else every restart of a paper profile reported a position break). Every paper venue the
      // registry built: disabled ones (read too) and stored ones as well as the profile's enabled ones.
      const paperNow = liveVenues().filter((v) => registry?.configOf(v.id)?.kind.startsWith('paper-'));
      for (const v of paperNow)
        for (const b of await ledger.positionBaselines(v.id))
          if (b.sizeBase !== undefined)
            await ledger.setPositionBaseline({
              venue: v.id,
              instrument: b.instrument,
              sizeBase: null,
              actor: 'run',
              reason: 'paper venues restart from the profile: a new baseline at the first quiet read',
            });
      const liquidating = new Map<string, VenueHealth['liquidation']>();
      // The drop-copy check: each venue read by the planner is compared with the ledger (leader only).
      const dc = config.dropCopy;
      const dropCopy = dc.enabled
        ? new DropCopy({
            ledger,
            metrics: execMetrics,
            toleranceBase: dc.toleranceBase,
            graceMs: dc.graceSeconds * 1000,
            settleMs: dc.settleSeconds * 1000,
            intervalMs: dc.intervalSeconds * 1000,
            log: (level, msg, data) => log[level](data ?? {}, msg),
            onBreak: async (b) => {
              if (dc.onBreak !== 'halt-venue') return;
              await killSwitch.engage(`venue:${b.venue}` as KillScope, {
                actor: 'drop-copy',
                reason: `position break on ${b.instrument}: ${b.venueSizeBase} at the venue, ${b.expectedSizeBase} by the ledger`,
                allowRiskReducing: true,
              });
            },
          })
        : undefined;
      if (dropCopy) closers.push({ name: 'drop-copy check', close: () => dropCopy.idle() });
      if (config.limits.maxTotalNotionalUsd !== undefined)
        execMetrics.totalNotionalLimitUsd.set(config.limits.maxTotalNotionalUsd);
      // the policy's tick period, market time: the profile's until the planner reads the shared policy
      let tickIntervalMs = config.policy.tickIntervalMs;
      const p = new TickPlanner({
        clock,
        // xhedge_venue_read_ok, _book_delta_outside_band, _last_order_queued_timestamp_seconds,
        // _snapshot_warnings, _book_equity_observed_timestamp_seconds
        metrics: execMetrics,
        onVenueRead: (venue, read) => {
          dropCopy?.observe(venue, read.positions, read.readStartedAtMs);
          execMetrics.venueNotionalUsd.set({ venue }, grossNotionalUsd(read.positions, read.marks));
          const cap = capFor(venueCaps, venue);
          if (cap !== undefined) execMetrics.venueNotionalLimitUsd.set({ venue }, cap);
        },
        onSnapshot: (snap) => {
          for (const u of Object.keys(snap.underlyings)) {
            const cap = capFor(config.limits.maxNetDeltaUsd, u);
            if (cap !== undefined) execMetrics.netDeltaLimitUsd.set({ underlying: u }, cap);
          }
        },
        onVenueHealth: (venue, h) => {
          execMetrics.venueAccountLiquidating.set(
            { venue },
            h.liquidation === 'bankrupt' ? 2 : h.liquidation ? 1 : 0,
          );
          if (liquidating.get(venue) === h.liquidation) return;
          liquidating.set(venue, h.liquidation);
          if (h.liquidation)
            log.error(
              { venue, liquidation: h.liquidation },
              `venue ${venue} says the account is ${h.liquidation}`,
            );
          else log.info({ venue }, `venue ${venue}: the account is no longer being liquidated`);
        },
        fallbackVolDecimal: new Map(
          config.underlyings.flatMap((u) => (u.volDecimal !== undefined ? [[u.symbol, u.volDecimal]] : [])),
        ),
        // each tick first brings the venues in line with the configs it plans with (unless a sync is
        // underway already: the tick does not wait for a swap waiting for the venue's jobs); every
        // adapter is read, disabled ones too, and only enabled ones are routed to
        venues: async (configs) => {
          await registry?.syncIfIdle(configs);
          return liveVenues();
        },
        // a venue the registry could not build: an enabled one holds hedging as an unreadable venue, a
        // disabled one is named in the warnings and holds nothing; this says why
        notRunning: (id) => registry?.buildFailure(id),
        ledger,
        bus,
        currentVenues: () => configStore.venues(),
        currentPolicy: async () => {
          const policy = await configStore.policy();
          // the orchestrator's pause follows the policy the planner last read (PUT /v1/policy)
          tickIntervalMs = policy.tickIntervalMs;
          return policy;
        },
        route: createRouter({
          maxSlippageBps: config.limits.maxSlippageBps,
          log: (level, msg, data) => log[level](data ?? {}, msg),
          ...(bridge
            ? {
                bridge: routingBridgeCost(layerZeroCostModel()),
                transferable,
                // Rule: no bridge slower than 80% of the staleness budget. The funded hedge's decision age
                // counts from the delivery (dependencyReadyAtMs below), but its size was planned before the
                // transfer; this bound keeps that plan at most ~1.8× staleAfterMs old when it is sent.
                maxTransferLatencyMs: 0.8 * config.limits.staleAfterMs,
              }
            : {}),
        }),
        maxOptionOrderBase: config.limits.maxPositionBase,
        optionPriceBandBps: Math.max(0, config.limits.priceBandBps - config.limits.maxSlippageBps),
        staleAfterMs: config.limits.staleAfterMs,
        breakers,
        killedVenues: async () =>
          new Set(
            (await killSwitch.engaged())
              .filter((e) => e.scope.startsWith('venue:'))
              .map((e) => e.scope.slice(6)),
          ),
        // collateral on the paper bridge (debited at the source, not yet credited): still the book's; a
        // transfer that timed out while `planned` was never debited
        ...(bridge
          ? {
              inTransit: async () =>
                (await bridge.tracker.list())
                  .filter(
                    (t) =>
                      t.state === 'sent' || t.state === 'verified' || (t.state === 'timed-out' && wasSent(t)),
                  )
                  .map((t) => ({ transferId: t.transferId, asset: t.asset, amount: Number(t.amount) })),
            }
          : {}),
        log: (level, msg, data) => log[level](data ?? {}, msg),
        ...(market ? { market } : {}),
        ...(opts.venueReadTimeoutMs !== undefined ? { venueReadTimeoutMs: opts.venueReadTimeoutMs } : {}),
        venueTickBudgetMs: venueBudgetMs,
      });
      planner = p;
      // The lease's own client gives up on a command (bounded retries, a command timeout) instead of
      // queueing it for as long as Redis is gone, as the endpoint's default (BullMQ's unlimited retries)
      // does: a renewal answers, or fails, well within the lease's renewal period, and the lease drops its
      // hold a TTL after its last confirmed renewal anyway (LeaderLease).
      const leaseRedis = redisEp.client({ maxRetriesPerRequest: 1, commandTimeout: 2_000 });
      closers.push({ name: 'lease client', close: () => closeRedisClient(leaseRedis) });
      const flows = new TransferFlows({ connection: redisEp.options, queuePrefix, ledger, service });
      closers.push({ name: 'transfer flows', close: () => flows.close() });
      // A tick that keeps failing (the ledger down) is logged as a streak, not once per tick; a tick
      // that started with no failure since the one before it means that one ended well.
      const tickFailures = new FailureStreak({
        what: 'orchestrator tick',
        error: (err, msg) => log.error({ err }, msg),
        warn: (data, msg) => log.warn(data, msg),
        info: (data, msg) => log.info(data, msg),
      });
      let failedSinceLastTick = true;
      // Risk snapshot retention (the profile's snapshotRetention): a pass at most every intervalMinutes,
      // poked by the leader's ticks only, in bounded batches; stopped (a pass ended between statements)
      // before the database closes.
      const sr = config.snapshotRetention;
      const retention =
        sr?.enabled === false
          ? undefined
          : new SnapshotRetention({
              ledger,
              clock,
              options: {
                ...(sr?.fullResolutionDays !== undefined
                  ? { fullResolutionDays: sr.fullResolutionDays }
                  : {}),
                ...(sr?.downsampleEveryMs !== undefined ? { downsampleEveryMs: sr.downsampleEveryMs } : {}),
                ...(sr?.retentionDays !== undefined ? { retentionDays: sr.retentionDays } : {}),
                ...(sr?.intervalMinutes !== undefined ? { intervalMs: sr.intervalMinutes * 60_000 } : {}),
                ...(sr?.batchSize !== undefined ? { batchSize: sr.batchSize } : {}),
              },
              onResult: (r, ms) => {
                if (r.deleted > 0)
                  log.info(
                    { ...r, ms: Math.round(ms) },
                    `risk snapshot retention: ${r.deleted} of ${r.examined} snapshots older than the full-resolution span deleted`,
                  );
              },
              onError: (err) =>
                log.warn({ err }, 'risk snapshot retention pass failed; tried again next interval'),
            });
      if (retention) closers.push({ name: 'snapshot retention', close: () => retention.stop() });
      const loop = new PlanningLoop({
        // a new lease object for each life of the loop (see PlanningLoop: after a tick overrun)
        lease: () =>
          new LeaderLease({
            redis: leaseRedis,
            prefix,
            name: 'orchestrator',
            tokenFloor: () => ledger.fencingToken('orchestrator'),
          }),
        service,
        // a new term fences the ledger before it plans, so an old leader's late write is refused
        fence: (token) => ledger.advanceFencing('orchestrator', token),
        // Plans that move collateral first run as flows (transfer, then hedge); the rest go to submitPlan.
        // The planner lives across leadership terms: the lease token tells it when a new one starts
        // (another leader may have hedged meanwhile; its hedge windows are read from the ledger again).
        plan: async ({ token, lease }) => {
          if (!failedSinceLastTick) tickFailures.ok();
          failedSinceLastTick = false;
          retention?.poke();
          const out: PlanForExecution[] = [];
          for (const plan of await p.plan({ leaseToken: token })) {
            if (plan.transfers.length === 0) out.push(plan);
            else p.onPlanned(plan, await flows.submit(plan, lease));
          }
          return out;
        },
        // The tick period is market time on paper; at least 200 ms of wall time so a tick can finish.
        intervalMs: () => Math.max(200, Math.round(tickIntervalMs / speed)),
        ...(opts.tickTimeoutMs !== undefined ? { tickTimeoutMs: opts.tickTimeoutMs } : {}),
        onPlanned: (plan, legs) => p.onPlanned(plan, legs),
        onError: (err) => {
          failedSinceLastTick = true;
          tickFailures.fail(err);
          execMetrics.plannerTickFailures.inc();
        },
        onLeadership: (leader, token) => {
          execMetrics.leader.set(leader ? 1 : 0);
          if (leader) execMetrics.leaderAcquisitions.inc();
          log.info({ leader, token }, leader ? `leader (lease token ${token})` : 'no longer the leader');
        },
        log: (level, msg, data) => log[level](data ?? {}, msg),
      });
      // Started last, so it stops first (closers run newest first), before the workers: planning while
      // they drain queued orders no process would run (with the embedded Redis those jobs were lost, and
      // the ledger kept them queued).
      startPlanning = () => {
        loop.start();
        closers.push({ name: 'orchestrator', close: () => loop.stop() });
      };
    }

    let hedgeMetrics: HedgeMetrics | undefined;
    const pendingHedgeEvents: Job<OrderJobData, OrderJobResult>[] = [];
    if (role === 'all' || role === 'worker') {
      const subscriber = redisEp.client();
      // closed after the workers (closers run newest first), also when their start fails
      closers.push({ name: 'kill-switch subscriber', close: () => closeRedisClient(subscriber) });
      // Every worker the pool opens, at start or for a venue added later, reports the orders that end.
      const watch = (w: Worker<OrderJobData, OrderJobResult>) => {
        w.on('completed', (job) => {
          void reportJob(job);
          if (hedgeMetrics) void observeJob(job, 'filled');
          // held for the API's hedge metrics, which an `all` run builds after its workers; a worker
          // process serves none, and held them all for its life
          else if (role === 'all') pendingHedgeEvents.push(job);
        });
        w.on('failed', (job, err) => {
          if (!job || job.attemptsMade < (job.opts.attempts ?? 1)) return;
          void reportJob(job, err);
          if (hedgeMetrics) void observeJob(job, 'failed');
        });
      };
      const start = (venues: ReadonlyMap<string, VenueAdapter>) =>
        startWorkers({
          connection: redisEp.options,
          queuePrefix,
          venues,
          ledger,
          controls,
          breakers,
          killSwitch,
          subscriber,
          marketData,
          metrics: execMetrics,
          clock,
          onWorker: watch,
          log: (level, msg, data) => log[level](data ?? {}, msg),
          // A hedge funded by a bridge transfer is as old as the delivery, not as its plan.
          ...(bridge ? { dependencyReadyAtMs: transferDeliveredAtMs } : {}),
        });
      // The registry starts the pool on every venue it built, disabled ones too (their workers follow
      // and cancel orders working there, and refuse new ones: `VenueRegistry.forExecution`), and, from
      // then on, adds workers for new venues and swaps adapters through it.
      const pool: WorkerPool = registry ? await registry.attachWorkers(start) : await start(byId);
      closers.push({ name: 'workers', close: () => pool.close() });
      if (bridge) {
        const transfers = startTransferJobs({
          executor: bridge,
          connection: redisEp.options,
          queuePrefix,
          ledger,
          service,
          // Delivery checks every ~2 s of run time (wall ms shrink with the market speed), so the hedge
          // waiting for the collateral goes soon after it lands.
          recheckMs: Math.max(25, Math.round(2000 / speed)),
          log: (level, msg, data) => log[level](data ?? {}, msg),
        });
        closers.push({ name: 'transfer worker', close: () => transfers.close() });
      }
      const reconciler = new Reconciler({ service, ledger, redis, prefix, metrics: execMetrics, clock });
      reconciler.start((err) => log.error({ err }, 'reconciler sweep failed'));
      closers.push({ name: 'reconciler', close: async () => reconciler.stop() });
    }
    if (registry) {
      const reg = registry;
      // stops first, so no venue is added to workers that are closing
      closers.push({ name: 'venue registry', close: () => reg.stop() });
      await reg.start({
        pollMs: VENUE_POLL_MS,
        subscriber: redisEp.client(),
        channel: configStore.venuesChannel,
      });
    }
    // Planning starts once its workers run, and stops before them (right after the API).
    startPlanning?.();
    /** One line per order that ended: what filled where (with the venue's order id or tx), or why it failed. */
    async function reportJob(job: Job<OrderJobData, OrderJobResult>, err?: Error): Promise<void> {
      const { intent } = job.data;
      const order = await ledger.getOrderByIntent(intent.id).catch(() => undefined);
      const what = `${intent.side} ${order?.filledSizeBase ?? intent.sizeBase} ${intent.instrument} on ${intent.venue}`;
      const data = {
        intentId: intent.id,
        status: order?.status,
        ...(order?.venueOrderId ? { venueOrderId: order.venueOrderId } : {}),
      };
      if (err)
        log.warn(
          { ...data, err: err.message },
          `hedge order failed: ${intent.side} ${intent.sizeBase} ${intent.instrument} on ${intent.venue}`,
        );
      else
        log.info(
          data,
          `hedge order filled: ${what}${order?.avgFillPriceUsd ? ` at $${Number(order.avgFillPriceUsd).toLocaleString('en-US', { maximumFractionDigits: 6 })}` : ''}`,
        );
    }
    async function observeJob(job: Job<OrderJobData, OrderJobResult>, fallback: string): Promise<void> {
      const intent = job.data.intent;
      const order = await ledger.getOrderByIntent(intent.id).catch(() => undefined);
      const fills = await ledger.listFills({ clientOrderId: job.data.clientOrderId }).catch(() => []);
      const filled = fills.reduce((s, f) => s + Number(f.sizeBase), 0);
      const paid = fills.reduce((s, f) => s + Number(f.sizeBase) * Number(f.priceUsd), 0);
      const slippage =
        filled > 0 ? (intent.side === 'buy' ? 1 : -1) * (paid - filled * intent.referencePriceUsd) : 0;
      const costUsd = slippage + fills.reduce((s, f) => s + f.feeUsd + f.gasUsd, 0);
      const h: Parameters<HedgeMetrics['observeHedge']>[0] = {
        venue: intent.venue,
        underlying: intent.underlying,
        status: order?.status ?? fallback,
      };
      if (filled > 0) h.costUsd = costUsd;
      if (job.finishedOn !== undefined) h.latencyMs = job.finishedOn - job.timestamp;
      hedgeMetrics?.observeHedge(h);
    }

    let app: FastifyInstance | undefined;
    let apiUrl: string | undefined;
    let admin: AdminTokenBootstrap | undefined;
    if (role === 'all' || role === 'api') {
      if (!planner) bus.follow(1000, (err) => log.warn({ err }, 'reading the newest snapshot failed'));
      const tokens = new FileTokenStore({
        file: join(dataDir, 'api-tokens.json'),
        envAdminToken: env.XHEDGE_API_TOKEN,
      });
      admin = await bootstrapAdminToken({
        store: tokens,
        dataDir,
        envToken: env.XHEDGE_API_TOKEN,
        paperProfile: noRealFunds,
      });
      // Queues of the venues stored now; a venue added through this API gets its queue in the metrics and
      // in Bull Board at once.
      const queues: Queue[] = (await configStore.venues()).map((v) => service.queue(v.id));
      const storedVenues = configStore.venuesPort();
      const venuesPort: ApiPorts['venues'] = {
        ...storedVenues,
        add: async (venue, actor) => {
          // refused before it is stored: an enabled venue that cannot be built holds every hedge
          if (simulatedSpeed.simulatedSpeed !== undefined && !venue.kind.startsWith('paper-'))
            throw realOnSimulatedClock(venue, simulatedSpeed.simulatedSpeed);
          const added = await storedVenues.add(venue, actor);
          queues.push(service.queue(added.id));
          return added;
        },
      };
      const ports: ApiPorts = {
        readiness: async () => {
          const checks: { name: string; ok: boolean; detail?: string }[] = [];
          const order = ['redis', 'database', 'snapshot'];
          // each check answers within READY_CHECK_MS: a Redis or database that stops answering (a silent
          // network) made /v1/ready hang instead of saying not ready
          const check = async (name: string, fn: () => Promise<string | undefined>) => {
            let timer: NodeJS.Timeout | undefined;
            try {
              const detail = await Promise.race([
                fn(),
                new Promise<never>((_, reject) => {
                  timer = setTimeout(
                    () => reject(new Error(`no answer within ${READY_CHECK_MS} ms`)),
                    READY_CHECK_MS,
                  );
                  timer.unref();
                }),
              ]).finally(() => clearTimeout(timer));
              checks.push(detail === undefined ? { name, ok: true } : { name, ok: true, detail });
            } catch (err) {
              checks.push({ name, ok: false, detail: err instanceof Error ? err.message : String(err) });
            }
          };
          // at once, each within READY_CHECK_MS: the answer takes at most that long
          await Promise.all([
            check('redis', async () => {
              await redis.ping();
              if (!durability) return 'embedded (in memory)';
              if (durability.errors.length > 0) throw new Error(durability.errors.join('; '));
              return `Redis ${durability.version ?? '?'}, ${durability.evictionPolicy ?? 'policy unknown'}, AOF ${
                durability.appendonly === undefined ? 'unknown' : durability.appendonly ? 'on' : 'off'
              }`;
            }),
            check('database', async () => {
              await ledger.fencingToken('orchestrator');
              return db.kind;
            }),
            check('snapshot', async () => {
              const s = await bus.latest();
              if (!s) throw new Error('no risk snapshot yet');
              return `seq ${s.seq}`;
            }),
          ]);
          checks.sort((a, b) => order.indexOf(a.name) - order.indexOf(b.name));
          return { ready: checks.every((c) => c.ok), checks };
        },
        risk: riskPort({
          bus,
          ledger,
          ...(planner
            ? { customGrid: async (_u: string, s: number[], v: number[]) => planner?.customGrid(s, v) }
            : {}),
        }),
        hedges: hedgesPort({ ledger, cancel: (id, actor) => cancelJob(id, actor) }),
        controls: controlsPort(
          killSwitch,
          breakers,
          ledger,
          async () => ({
            venues: await configStore.venues(),
            underlyings: config.underlyings.map((u) => u.symbol),
          }),
          log.child({ component: 'api' }),
        ),
        venues: venuesPort,
        policy: configStore.policyPort(),
        pnl: pnlPort(ledger),
        audit: auditPort(ledger),
        tokens,
        metrics: execMetrics.registry,
        queues,
      };
      hedgeMetrics = registerMetrics(execMetrics.registry, ports);
      for (const j of pendingHedgeEvents.splice(0)) void observeJob(j, 'filled');
      app = await buildApiServer({
        ports,
        logger: log.child({ component: 'api' }),
        // Browser sessions in this run's Redis: every API replica of the run accepts them, restarts keep them.
        sessions: new BrowserSessions({ store: new RedisSessionStore({ redis, prefix }) }),
        ...(opts.rateLimitPerMinute !== undefined ? { rateLimitPerMinute: opts.rateLimitPerMinute } : {}),
      });
      const host = opts.host ?? config.api.host;
      const address = await app.listen({ host, port: opts.port ?? config.api.port });
      apiUrl = address;
      const a = app;
      // The API closes first, so no operator change lands while the rest shuts down.
      closers.push({ name: 'api', close: () => a.close() });
    }

    /** Operator cancel of a job not yet sent: the job leaves the queue and the order is cancelled. */
    async function cancelJob(intentId: string, actor: string): Promise<void> {
      const order = await ledger.getOrderByIntent(intentId);
      if (!order) throw new XhedgeError('NOT_FOUND', `no job ${intentId}`);
      if (order.status !== 'planned' && order.status !== 'queued')
        throw new XhedgeError(
          'CONFLICT',
          `job ${intentId} is ${order.status}; only planned or queued jobs can be cancelled (use the venue kill switch to cancel working orders)`,
          { details: { status: order.status } },
        );
      const job = await service.queue(order.venue).getJob(intentId);
      if (job) {
        if (await job.isActive())
          throw new XhedgeError(
            'CONFLICT',
            `job ${intentId} is being executed now; use the venue kill switch`,
          );
        await job.remove();
      }
      if (!(await service.cancelUnsent(order.clientOrderId, { actor, error: 'cancelled by operator' })))
        throw new XhedgeError(
          'CONFLICT',
          `job ${intentId} may have been sent (it was claimed for sending, it is past queued now, or Redis lost its control state and the restore has not run); its run asks the venue and ends it, or use the venue kill switch`,
          { details: { status: order.status } },
        );
    }

    let metricsUrl: string | undefined;
    if (role !== 'all' && role !== 'api' && opts.metricsPort !== undefined) {
      const m = await serveMetrics({
        registry: execMetrics.registry,
        host: opts.host ?? config.api.host,
        port: opts.metricsPort,
      });
      metricsUrl = m.url;
      closers.push({ name: 'metrics listener', close: () => m.close() });
    }

    const realVenues = config.venues.filter((v) => v.enabled && !v.kind.startsWith('paper-'));
    if (config.dryRun)
      log.warn(
        { venues: realVenues.map((v) => v.id) },
        'DRY RUN: orders to real venues are simulated at their quotes and never sent',
      );

    let stopped: Promise<void> | undefined;
    log.info(
      { role, apiUrl, metricsUrl, redis: redisEp.embedded ? 'embedded' : 'external', database: db.kind },
      'xhedge run started',
    );
    return {
      role,
      apiUrl,
      metricsUrl,
      admin,
      clock,
      redis: { embedded: redisEp.embedded, url: safeUrl(redisEp.url) },
      database: db.kind,
      get venues() {
        return liveVenues();
      },
      ledger,
      killSwitch,
      planner,
      bridge,
      describe() {
        const lines = [
          `xhedge ${config.name}: role ${role}, ${liveVenues().length} venues (${liveVenues().filter((v) => registry?.configOf(v.id)?.kind.startsWith('paper-')).length} paper${simulated ? `, market speed ${speed}×` : ''})`,
          `  redis    ${redisEp.embedded ? `embedded js-redis-server at ${safeUrl(redisEp.url)}` : safeUrl(redisEp.url)}`,
          `  database ${db.kind === 'pglite' ? `PGlite in ${join(dataDir, 'pglite')}` : 'PostgreSQL (DATABASE_URL)'}`,
        ];
        for (const v of config.venues) {
          const h = health.get(v.id);
          if (!h) continue;
          const rpc = rpcLabel(v.endpoints.rpc?.[0]);
          const state = h.ok
            ? `answering${h.details?.blockNumber !== undefined ? ` (block ${String(h.details.blockNumber)})` : ''}`
            : `NOT answering (${String(h.details?.error ?? 'no answer')}); retried every tick`;
          lines.push(`  venue    ${v.id}: ${v.kind} on ${v.chain}${rpc ? ` via ${rpc}` : ''}, ${state}`);
        }
        if (config.dryRun)
          lines.push(
            `  DRY RUN  orders to ${realVenues.map((v) => v.id).join(', ') || 'real venues (none here)'} are simulated at their quotes, never sent`,
          );
        if (config.venues.some((v) => v.chain === DEV_CHAIN && health.get(v.id)?.ok === false))
          lines.push('           (a local chain? start it first: pnpm xhedge local-chain up)');
        if (apiUrl) {
          lines.push(`  API      ${apiUrl}/v1   (health: ${apiUrl}/v1/health)`);
          lines.push(`  docs     ${apiUrl}/docs`);
          lines.push(`  metrics  ${apiUrl}/metrics   queues: ${apiUrl}/admin/queues`);
        }
        if (metricsUrl) lines.push(`  metrics  ${metricsUrl}/metrics (this ${role} process's own counters)`);
        if (admin?.source === 'generated')
          lines.push(`  admin token (shown once; also in ${admin.file}): ${admin.token}`);
        else if (admin) lines.push(`  ${admin.summary}`);
        lines.push('  Ctrl-C stops it.');
        return lines;
      },
      stop() {
        stopped ??= stopAll().then(() => log.info('xhedge run stopped'));
        return stopped;
      },
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
