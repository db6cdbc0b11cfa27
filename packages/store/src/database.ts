import { mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import { maskCredentials, XhedgeError } from '@xhedge/core';
import {
  Kysely,
  type PostgresCursor,
  PostgresDialect,
  type PostgresPool,
  type PostgresPoolClient,
  type PostgresQueryResult,
  sql,
} from 'kysely';
import pg from 'pg';
import { migrate } from './migrations.ts';
import { PGliteDialect } from './pglite-dialect.ts';
import type { LedgerDatabase } from './schema.ts';

export interface OpenDatabaseOptions {
  /**
   * PostgreSQL connection URL. When absent the ledger runs on PGlite (Postgres in WebAssembly,
   * in-process) in `dataDir`.
   */
  url?: string | undefined;
  /** PGlite data folder; omitted = in memory (tests). Ignored with `url`. */
  dataDir?: string | undefined;
  /**
   * Schema for every table (created when missing); lets several runs/tests share one database.
   * @defaultValue `public`
   */
  schema?: string | undefined;
  /** Apply pending migrations on open. @defaultValue true */
  migrate?: boolean | undefined;
  /**
   * Open a ledger a newer release migrated (see `MigrateOptions.allowNewerLedger`); refused with
   * `LEDGER_TOO_NEW` by default. @defaultValue false
   */
  allowNewerLedger?: boolean | undefined;
  /** Largest number of pooled Postgres connections. @defaultValue 10 */
  poolSize?: number | undefined;
  /**
   * How long a new Postgres connection may take to be ready (TCP, TLS, authentication), ms: the
   * open's first connection and every pooled one. A server that accepts the connection but never
   * answers fails the open or the query with a {@link DatabaseTimeoutError} instead of holding the
   * caller for ever. 0 = no limit.
   * @defaultValue 10000
   */
  connectTimeoutMs?: number | undefined;
  /**
   * How long a query may wait for a pooled connection when all `poolSize` are in use, ms (a
   * {@link DatabaseTimeoutError} naming `acquireTimeoutMs` after it). 0 = no limit.
   * @defaultValue 30000
   */
  acquireTimeoutMs?: number | undefined;
  /**
   * Postgres `statement_timeout` of the pooled connections, ms: the server cancels a statement
   * running longer (a {@link DatabaseTimeoutError} naming `statementTimeoutMs`); the connection stays
   * usable. Migrations have their own limit, `migrationTimeoutMs`. 0 = no limit.
   * @defaultValue 30000
   */
  statementTimeoutMs?: number | undefined;
  /**
   * Client-side limit on waiting for a statement's answer, ms (pg `query_timeout`): catches a dead
   * network or a hung server, which no server-side timeout can. The connection is then dropped (the
   * pool opens a new one) and the query fails with a {@link DatabaseTimeoutError} naming
   * `queryTimeoutMs`. Must be above `statementTimeoutMs` so that a slow statement is cancelled by the
   * server first. 0 = no limit.
   * @defaultValue statementTimeoutMs + 5000 (0 when statementTimeoutMs is 0)
   */
  queryTimeoutMs?: number | undefined;
  /**
   * `statement_timeout` of the migrations run by the open, ms (a schema change on a big table, or a
   * wait for another process's migration, can take long); the client-side limit is 5000 ms more.
   * 0 = no limit.
   * @defaultValue 600000
   */
  migrationTimeoutMs?: number | undefined;
  /** TCP keepalive on the Postgres connections: a peer gone silently is noticed. @defaultValue true */
  keepAlive?: boolean | undefined;
  /**
   * Idle time before the first keepalive probe, ms (0 = the operating system's, often 2 hours).
   * @defaultValue 10000
   */
  keepAliveInitialDelayMs?: number | undefined;
  /**
   * Sees a pooled Postgres connection that failed outside a query (a restart, failover,
   * `idle_session_timeout`, pgbouncer, `pg_terminate_backend`): the pool has dropped it and opens a
   * new one for the next query, and a query that was running on it rejects on its own. The error's
   * message has credentials masked. A throwing callback is ignored.
   * @defaultValue ignore
   */
  onError?: ((err: XhedgeError) => void) | undefined;
}

/**
 * A Postgres operation of the ledger took longer than its configured limit. `what` says which:
 * `connect` (a new connection), `pool` (waiting for a free pooled connection), `statement` (the
 * server cancelled a statement at its `statement_timeout`), `query` (no answer from the server in
 * time; the connection was dropped). `option` names the setting that holds the limit.
 */
export class DatabaseTimeoutError extends XhedgeError {
  override name = 'DatabaseTimeoutError';
  readonly what: 'connect' | 'pool' | 'statement' | 'query';
  readonly timeoutMs: number;
  readonly option: string;
  constructor(
    what: DatabaseTimeoutError['what'],
    limit: { ms: number; option: string },
    shortMessage: string,
    cause?: unknown,
  ) {
    super('DB_TIMEOUT', shortMessage, {
      details: { what, timeoutMs: limit.ms, option: limit.option },
      ...(cause === undefined ? {} : { cause }),
    });
    this.what = what;
    this.timeoutMs = limit.ms;
    this.option = limit.option;
  }
}

export interface DatabaseHandle {
  readonly db: Kysely<LedgerDatabase>;
  readonly kind: 'postgres' | 'pglite';
  readonly schema: string;
  /**
   * Runs a named prepared statement (Postgres only; PGlite has no use for it): `text` uses `$n`
   * placeholders and must be the same for every call with this `name`.
   */
  prepared?<R>(name: string, text: string, params: readonly unknown[]): Promise<{ rows: R[] }>;
  /** Drops the schema and everything in it (tests); refuses `public`. */
  dropSchema(): Promise<void>;
  close(): Promise<void>;
}

const SCHEMA_RE = /^[a-z_][a-z0-9_]{0,62}$/;

/** A limit in ms and the option that sets it (named in the timeout errors). */
interface Limit {
  ms: number;
  option: string;
}

/** The limits of one set of Postgres connections (the pool, the migrations' pool, the first one). */
interface Limits {
  connect: Limit;
  acquire: Limit;
  statement: Limit;
  query: Limit;
  poolSize: number;
}

/** `opts[name]` when given, else `fallback`; refuses anything but a whole number of ms ≥ 0. */
function msOption(opts: OpenDatabaseOptions, name: keyof OpenDatabaseOptions, fallback: number): number {
  const v = opts[name];
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    throw new RangeError(`openDatabase: ${name} must be a whole number of ms, 0 or more; got ${String(v)}`);
  return v;
}

/** The first line of a statement, whitespace collapsed, for an error message (statements carry no values). */
function statementHead(text: string | undefined): string {
  if (!text) return '';
  const one = text.replace(/\s+/g, ' ').trim();
  return `: ${one.length > 120 ? `${one.slice(0, 117)}...` : one}`;
}

/**
 * `err` as a {@link DatabaseTimeoutError} when it is one of pg's timeouts (their raw messages do not
 * say which limit was hit), else `err` itself, untouched (callers switch on pg's `code`).
 */
function timeoutError(err: unknown, limits: Limits, text?: string): unknown {
  if (!(err instanceof Error)) return err;
  const code = (err as { code?: unknown }).code;
  if (code === '57014' && /statement timeout/i.test(err.message)) {
    const l = limits.statement;
    return new DatabaseTimeoutError(
      'statement',
      l,
      `ledger database: Postgres cancelled a statement that ran longer than ${l.option} (${l.ms} ms)${statementHead(text)}`,
      err,
    );
  }
  if (err.message === 'Query read timeout') {
    const l = limits.query;
    return new DatabaseTimeoutError(
      'query',
      l,
      `ledger database: no answer from Postgres within ${l.option} (${l.ms} ms); the connection was dropped${statementHead(text)}`,
      err,
    );
  }
  // the connection's own timer ('timeout expired'), or the pool's when it is the shorter
  const connectLimit =
    err.message === 'timeout expired'
      ? limits.connect
      : err.message === 'Connection terminated due to connection timeout'
        ? limits.acquire
        : undefined;
  if (connectLimit)
    return new DatabaseTimeoutError(
      'connect',
      connectLimit,
      `ledger database: connecting to Postgres took longer than ${connectLimit.option} (${connectLimit.ms} ms)`,
      err,
    );
  if (err.message === 'timeout exceeded when trying to connect') {
    const l = limits.acquire;
    return new DatabaseTimeoutError(
      'pool',
      l,
      `ledger database: no pooled connection came free within ${l.option} (${l.ms} ms; poolSize ${limits.poolSize})`,
      err,
    );
  }
  return err;
}

/** Reports a connection that failed outside a query to `onError`, credentials masked, never throwing. */
function connectionErrorReporter(onError: OpenDatabaseOptions['onError']): (err: unknown) => void {
  return (err) => {
    if (!onError) return;
    const raw = err instanceof Error ? err.message : String(err);
    const code = (err as { code?: unknown } | null)?.code;
    try {
      onError(
        new XhedgeError(
          'DB_CONNECTION_LOST',
          `ledger database: a Postgres connection failed and was dropped (the next query opens a new one): ${maskCredentials(raw)}`,
          { details: typeof code === 'string' ? { pgCode: code } : {} },
        ),
      );
    } catch {
      // a failing report must not take the process down: that is what this listener prevents
    }
  };
}

/** `fn` for the first call only: a connection's first error says why it failed, the next repeat it. */
function once(fn: (err: unknown) => void): (err: unknown) => void {
  let called = false;
  return (err) => {
    if (called) return;
    called = true;
    fn(err);
  };
}

/** A pooled client for Kysely whose timeouts are {@link DatabaseTimeoutError}s. */
class GuardedClient implements PostgresPoolClient {
  #client: pg.PoolClient;
  #limits: Limits;
  #dropped = false;
  constructor(client: pg.PoolClient, limits: Limits) {
    this.#client = client;
    this.#limits = limits;
  }
  query<R>(sqlText: string, parameters: ReadonlyArray<unknown>): Promise<PostgresQueryResult<R>>;
  query<R>(cursor: PostgresCursor<R>): PostgresCursor<R>;
  query<R>(
    q: string | PostgresCursor<R>,
    parameters: ReadonlyArray<unknown> = [],
  ): Promise<PostgresQueryResult<R>> | PostgresCursor<R> {
    if (typeof q !== 'string')
      return (this.#client as unknown as { query(c: PostgresCursor<R>): PostgresCursor<R> }).query(q);
    return this.run<R>({ text: q, values: [...parameters] }) as Promise<PostgresQueryResult<R>>;
  }
  async run<R>(config: pg.QueryConfig): Promise<pg.QueryResult & { rows: R[] }> {
    try {
      return (await this.#client.query(config)) as pg.QueryResult & { rows: R[] };
    } catch (err) {
      if (err instanceof Error && err.message === 'Query read timeout' && !this.#dropped) {
        // the statement may still be on the wire: the connection cannot be trusted with the next one
        // (it would queue behind it), so it is closed now (end() destroys the socket of a client with
        // a query in flight) and left out of the pool at release
        this.#dropped = true;
        this.#client.end().catch(() => {});
      }
      throw timeoutError(err, this.#limits, config.text);
    }
  }
  release(): void {
    this.#client.release(this.#dropped ? true : undefined);
  }
}

/** The pg pool as Kysely sees it, with clear timeout errors. */
class GuardedPool implements PostgresPool {
  readonly pool: pg.Pool;
  readonly limits: Limits;
  constructor(pool: pg.Pool, limits: Limits) {
    this.pool = pool;
    this.limits = limits;
  }
  async connect(): Promise<GuardedClient> {
    try {
      return new GuardedClient(await this.pool.connect(), this.limits);
    } catch (err) {
      throw timeoutError(err, this.limits);
    }
  }
  end(): Promise<void> {
    return this.pool.end();
  }
}

/**
 * A pg pool on `schema` whose connections carry the limits, with a listener for every connection's
 * errors: without one, a connection ended by the server (a restart, `pg_terminate_backend`) is an
 * unhandled 'error' event that ends the process.
 */
function guardedPool(
  url: string,
  schema: string,
  limits: Limits,
  tcp: Pick<pg.ClientConfig, 'keepAlive' | 'keepAliveInitialDelayMillis'>,
  report: (err: unknown) => void,
): GuardedPool {
  const connectionTimeoutMillis = limits.connect.ms;
  // The pool's connectionTimeoutMillis also bounds the wait for a free connection (acquireTimeoutMs);
  // each new connection gets connectTimeoutMs of its own.
  class LedgerClient extends pg.Client {
    constructor(config?: pg.ClientConfig) {
      super({ ...config, connectionTimeoutMillis });
    }
  }
  const pool = new pg.Pool({
    connectionString: url,
    max: limits.poolSize,
    // set on the server at connection start: the same `options` startup parameter as the search path
    options: `-c search_path=${schema}${limits.statement.ms > 0 ? ` -c statement_timeout=${limits.statement.ms}` : ''}`,
    ...tcp,
    ...(limits.query.ms > 0 ? { query_timeout: limits.query.ms } : {}),
    ...(limits.acquire.ms > 0 ? { connectionTimeoutMillis: limits.acquire.ms } : {}),
    Client: LedgerClient,
  });
  // an idle client's error: the pool has already dropped it
  pool.on('error', () => {});
  // every client's error, idle or checked out (a checked-out one has no other listener; the pool
  // drops it at release because it is no longer queryable)
  pool.on('connect', (client) => client.on('error', once(report)));
  return new GuardedPool(pool, limits);
}

/** Opens the ledger database: Postgres at `url`, else PGlite; creates the schema and migrates it. */
export async function openDatabase(opts: OpenDatabaseOptions = {}): Promise<DatabaseHandle> {
  const schema = opts.schema ?? 'public';
  if (!SCHEMA_RE.test(schema)) throw new RangeError(`openDatabase: bad schema name "${schema}"`);
  const connectTimeoutMs = msOption(opts, 'connectTimeoutMs', 10_000);
  const acquireTimeoutMs = msOption(opts, 'acquireTimeoutMs', 30_000);
  const statementTimeoutMs = msOption(opts, 'statementTimeoutMs', 30_000);
  const queryTimeoutMs = msOption(
    opts,
    'queryTimeoutMs',
    statementTimeoutMs > 0 ? statementTimeoutMs + 5_000 : 0,
  );
  const migrationTimeoutMs = msOption(opts, 'migrationTimeoutMs', 600_000);
  const keepAliveInitialDelayMs = msOption(opts, 'keepAliveInitialDelayMs', 10_000);
  if (statementTimeoutMs > 0 && queryTimeoutMs > 0 && queryTimeoutMs <= statementTimeoutMs)
    throw new RangeError(
      `openDatabase: queryTimeoutMs (${queryTimeoutMs}) must be above statementTimeoutMs (${statementTimeoutMs}), or 0`,
    );
  const poolSize = opts.poolSize ?? 10;
  let db: Kysely<LedgerDatabase>;
  let kind: DatabaseHandle['kind'];
  let closeExtra: () => Promise<void> = async () => {};
  let prepared: DatabaseHandle['prepared'];
  let migrationDb: Kysely<LedgerDatabase> | undefined;
  if (opts.url) {
    const url = opts.url;
    const report = connectionErrorReporter(opts.onError);
    const tcp = { keepAlive: opts.keepAlive ?? true, keepAliveInitialDelayMillis: keepAliveInitialDelayMs };
    const limits: Limits = {
      connect: { ms: connectTimeoutMs, option: 'connectTimeoutMs' },
      acquire: { ms: acquireTimeoutMs, option: 'acquireTimeoutMs' },
      statement: { ms: statementTimeoutMs, option: 'statementTimeoutMs' },
      query: { ms: queryTimeoutMs, option: 'queryTimeoutMs' },
      poolSize,
    };
    const admin = new pg.Client({
      connectionString: url,
      connectionTimeoutMillis: connectTimeoutMs,
      ...tcp,
      ...(queryTimeoutMs > 0 ? { query_timeout: queryTimeoutMs } : {}),
    });
    admin.on('error', once(report));
    try {
      await admin.connect();
    } catch (err) {
      throw timeoutError(err, limits);
    }
    try {
      // `if not exists` is not safe against a concurrent create (a duplicate key error on
      // pg_namespace): processes starting at once serialize on an advisory lock first
      await admin.query('begin');
      await admin.query('select pg_advisory_xact_lock(hashtext($1))', [`xhedge.schema.${schema}`]);
      await admin.query(`create schema if not exists ${schema}`);
      await admin.query('commit');
    } catch (err) {
      throw timeoutError(err, limits);
    } finally {
      // a client with a statement in flight (a read timeout) is closed by destroying its socket
      await admin.end();
    }
    const guarded = guardedPool(url, schema, limits, tcp, report);
    db = new Kysely<LedgerDatabase>({ dialect: new PostgresDialect({ pool: guarded }) });
    kind = 'postgres';
    prepared = async <R>(name: string, text: string, params: readonly unknown[]) => {
      const client = await guarded.connect();
      try {
        const res = await client.run<R>({ name, text, values: [...params] });
        return { rows: res.rows };
      } finally {
        client.release();
      }
    };
    if (opts.migrate ?? true) {
      // Migrations on a connection of their own with their own (longer) limit: the pool's
      // statement_timeout would cut off a long schema change or the wait for another process's.
      const migrationLimits: Limits = {
        ...limits,
        statement: { ms: migrationTimeoutMs, option: 'migrationTimeoutMs' },
        query: {
          ms: migrationTimeoutMs > 0 ? migrationTimeoutMs + 5_000 : 0,
          option: 'migrationTimeoutMs (+ 5000 ms on the client)',
        },
        poolSize: 1,
      };
      migrationDb = new Kysely<LedgerDatabase>({
        dialect: new PostgresDialect({ pool: guardedPool(url, schema, migrationLimits, tcp, report) }),
      });
    }
  } else {
    if (opts.dataDir) mkdirSync(opts.dataDir, { recursive: true });
    const lite = new PGlite(opts.dataDir);
    await lite.waitReady;
    await lite.exec(`create schema if not exists ${schema}; set search_path to ${schema}`);
    db = new Kysely<LedgerDatabase>({ dialect: new PGliteDialect(lite) });
    kind = 'pglite';
    closeExtra = () => lite.close();
  }
  if (migrationDb) {
    try {
      await migrate(migrationDb, undefined, undefined, { allowNewerLedger: opts.allowNewerLedger });
    } finally {
      await migrationDb.destroy();
    }
  } else if (kind === 'pglite' && (opts.migrate ?? true))
    await migrate(db, undefined, undefined, { allowNewerLedger: opts.allowNewerLedger });
  return {
    db,
    kind,
    schema,
    ...(prepared ? { prepared } : {}),
    async dropSchema() {
      if (schema === 'public') throw new RangeError('dropSchema: refusing to drop public');
      await sql.raw(`drop schema if exists ${schema} cascade`).execute(db);
    },
    async close() {
      await db.destroy();
      await closeExtra();
    },
  };
}

/**
 * `DATABASE_URL` when set, else PGlite in `<dataDir>/pglite` (the embedded default).
 */
export function openDatabaseFromEnv(
  dataDir: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
  extra: Omit<OpenDatabaseOptions, 'url' | 'dataDir'> = {},
): Promise<DatabaseHandle> {
  const url = env.DATABASE_URL;
  return url ? openDatabase({ ...extra, url }) : openDatabase({ ...extra, dataDir: `${dataDir}/pglite` });
}
