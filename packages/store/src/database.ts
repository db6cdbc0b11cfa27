import { mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import { Kysely, PostgresDialect, sql } from 'kysely';
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
  /** Largest number of pooled Postgres connections. @defaultValue 10 */
  poolSize?: number | undefined;
  /**
   * How long the first Postgres connection of an open may take to be ready (TCP, TLS, authentication),
   * ms: a server that accepts the connection but never answers fails the open instead of holding the
   * caller for ever. (Not the pool's: its timeout would also bound the wait for a free connection.)
   * @defaultValue 10000
   */
  connectTimeoutMs?: number | undefined;
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

/** Opens the ledger database: Postgres at `url`, else PGlite; creates the schema and migrates it. */
export async function openDatabase(opts: OpenDatabaseOptions = {}): Promise<DatabaseHandle> {
  const schema = opts.schema ?? 'public';
  if (!SCHEMA_RE.test(schema)) throw new RangeError(`openDatabase: bad schema name "${schema}"`);
  let db: Kysely<LedgerDatabase>;
  let kind: DatabaseHandle['kind'];
  let closeExtra: () => Promise<void> = async () => {};
  let prepared: DatabaseHandle['prepared'];
  if (opts.url) {
    const connectionTimeoutMillis = opts.connectTimeoutMs ?? 10_000;
    const admin = new pg.Client({ connectionString: opts.url, connectionTimeoutMillis });
    await admin.connect();
    try {
      // `if not exists` is not safe against a concurrent create (a duplicate key error on
      // pg_namespace): processes starting at once serialize on an advisory lock first
      await admin.query('begin');
      await admin.query('select pg_advisory_xact_lock(hashtext($1))', [`xhedge.schema.${schema}`]);
      await admin.query(`create schema if not exists ${schema}`);
      await admin.query('commit');
    } finally {
      await admin.end();
    }
    const pool = new pg.Pool({
      connectionString: opts.url,
      max: opts.poolSize ?? 10,
      options: `-c search_path=${schema}`,
    });
    db = new Kysely<LedgerDatabase>({ dialect: new PostgresDialect({ pool }) });
    kind = 'postgres';
    prepared = async <R>(name: string, text: string, params: readonly unknown[]) => {
      const res = await pool.query({ name, text, values: [...params] });
      return { rows: res.rows as R[] };
    };
  } else {
    if (opts.dataDir) mkdirSync(opts.dataDir, { recursive: true });
    const lite = new PGlite(opts.dataDir);
    await lite.waitReady;
    await lite.exec(`create schema if not exists ${schema}; set search_path to ${schema}`);
    db = new Kysely<LedgerDatabase>({ dialect: new PGliteDialect(lite) });
    kind = 'pglite';
    closeExtra = () => lite.close();
  }
  if (opts.migrate ?? true) await migrate(db);
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
