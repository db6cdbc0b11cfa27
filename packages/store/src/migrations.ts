import { XhedgeError } from '@xhedge/core';
import { type Kysely, sql } from 'kysely';
import type { LedgerDatabase } from './schema.ts';

/** One schema change. Versions are applied in order, once, each in its own transaction. */
export interface Migration {
  version: number;
  name: string;
  up: readonly string[];
}

/**
 * The ledger's migrations. Append only: a released migration is never edited, a change is a new
 * version. Timestamps are int8 ms since the epoch (UTC); sizes and prices are exact decimal strings
 * (`text`), as they were at the venue boundary.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'ledger',
    up: [
      `create table intents (
        id text primary key, plan_id text not null, underlying text not null, venue text not null,
        chain text not null, instrument text not null, side text not null, size_base text not null,
        order_type text not null, limit_price_usd text, reference_price_usd double precision not null,
        reduce_only boolean not null, urgency text not null, reason text not null, depends_on jsonb not null,
        created_at_ms bigint not null, recorded_at_ms bigint not null, lease_name text, fencing_token bigint)`,
      'create index intents_created on intents (created_at_ms)',
      'create index intents_underlying on intents (underlying, created_at_ms)',
      'create index intents_venue on intents (venue, created_at_ms)',
      'create index intents_plan on intents (plan_id)',
      `create table orders (
        client_order_id text primary key, intent_id text not null unique references intents (id),
        underlying text not null, venue text not null, instrument text not null, side text not null,
        order_type text not null, size_base text not null, limit_price_usd text, reduce_only boolean not null,
        status text not null, venue_order_id text, filled_size_base text not null default '0',
        avg_fill_price_usd text, error text, send_attempts integer not null default 0, last_send_at_ms bigint,
        created_at_ms bigint not null, updated_at_ms bigint not null)`,
      'create index orders_status on orders (status, updated_at_ms)',
      'create index orders_venue on orders (venue, created_at_ms)',
      'create index orders_underlying on orders (underlying, created_at_ms)',
      'create index orders_created on orders (created_at_ms)',
      `create table order_events (
        id bigserial primary key, client_order_id text not null references orders (client_order_id),
        from_status text, to_status text not null, kind text not null, at_ms bigint not null,
        actor text not null, note text)`,
      'create index order_events_order on order_events (client_order_id, id)',
      `create table fills (
        venue text not null, fill_id text not null, client_order_id text not null, instrument text not null,
        side text not null, size_base text not null, price_usd text not null, fee_usd double precision not null,
        gas_usd double precision not null, ts_ms bigint not null, primary key (venue, fill_id))`,
      'create index fills_order on fills (client_order_id)',
      'create index fills_ts on fills (ts_ms)',
      `create table breaker_events (
        id bigserial primary key, breaker text not null, from_state text not null, to_state text not null,
        reason text not null, at_ms bigint not null, details jsonb not null)`,
      'create index breaker_events_at on breaker_events (at_ms)',
      `create table kill_switch_events (
        id bigserial primary key, scope text not null, action text not null, actor text not null,
        reason text not null, allow_risk_reducing boolean not null, at_ms bigint not null, details jsonb not null)`,
      'create index kill_switch_events_at on kill_switch_events (at_ms)',
      `create table audit (
        id bigserial primary key, at_ms bigint not null, actor text not null, action text not null,
        subject text, details jsonb not null)`,
      'create index audit_at on audit (at_ms)',
      `create table risk_snapshots (
        id bigserial primary key, seq bigint not null unique, as_of_ms bigint not null, snapshot jsonb not null)`,
      'create index risk_snapshots_at on risk_snapshots (as_of_ms)',
      `create table fencing (lease_name text primary key, token bigint not null, updated_at_ms bigint not null)`,
    ],
  },
  {
    version: 2,
    name: 'latest-state indexes',
    // The control-state restore (every few seconds, in every process) reads the latest event per
    // breaker and per kill-switch scope, and the book mark's restore the latest audit entry of an
    // action: index scans instead of sorting whole tables that only grow.
    up: [
      'create index breaker_events_latest on breaker_events (breaker, id desc)',
      'create index kill_switch_events_latest on kill_switch_events (scope, id desc)',
      'create index audit_action on audit (action, id desc)',
    ],
  },
  {
    version: 3,
    name: 'position baselines',
    // The drop-copy check: per venue and instrument, the venue's position at a quiet read, from which
    // our own fills since must explain every change. `size_base` null asks for a new baseline at the
    // next quiet read (an operator acknowledging a break).
    up: [
      `create table position_baselines (
        venue text not null, instrument text not null, size_base text, at_ms bigint not null,
        actor text not null, reason text not null, primary key (venue, instrument))`,
      'create index orders_venue_instrument on orders (venue, instrument, created_at_ms)',
    ],
  },
  {
    version: 4,
    name: 'config documents',
    // The durable copy of the config operators change at run time (`venues`, `policy`), one row per
    // document: its latest JSON text as Redis held it, the revision Redis gave it (a row is only ever
    // replaced by a higher revision) and who made that change. Redis keeps the shared copy processes read;
    // one that lost or rolled back the document is restored from here. The value may hold an inline RPC
    // URL with a key in it: this is the run's own database, and the value is never logged.
    up: [
      `create table config_documents (
        name text primary key, value_json text not null, revision bigint not null, actor text not null,
        action text not null, updated_at_ms bigint not null)`,
    ],
  },
  {
    version: 5,
    name: 'risk snapshot time order',
    // Snapshot history is read by time range in time order (the API's risk history, the P&L
    // attribution's probes) and the retention walks the table in that order: one index on
    // (as_of_ms, seq) serves the range, the order and a limit without a sort. With only `seq` ordered
    // (and the index on as_of_ms alone) Postgres walked the seq index from the newest row and filtered
    // out every row after the range (518,400 rows at 5 s: 172,801 rows filtered, 76 ms for a day ten
    // days back; 90 ms for a probe 29 days back -> 0.03-0.2 ms). It replaces `risk_snapshots_at`, of
    // which it is a superset. Built without CONCURRENTLY (a migration runs in a transaction): inserts
    // of snapshots wait for it, about a second per 500k rows.
    up: [
      'create index risk_snapshots_at_seq on risk_snapshots (as_of_ms, seq)',
      'drop index risk_snapshots_at',
    ],
  },
];

/** Options of {@link migrate}. */
export interface MigrateOptions {
  /**
   * Run on a ledger a newer release migrated (its highest applied version above this code's): refused
   * by default (`LEDGER_TOO_NEW`), since this release does not keep what the newer one added (a rollback
   * whose processes write the ledger beside it). @defaultValue false
   */
  allowNewerLedger?: boolean | undefined;
  /**
   * How long one migration statement waits for a table lock, ms (`lock_timeout`), before its
   * transaction is rolled back and tried again after `lockRetryMs`: a schema change queued behind a long
   * transaction holds every writer of that table queued behind it for as long as it waits.
   * @defaultValue 5000
   */
  lockTimeoutMs?: number | undefined;
  /** Wait before a migration whose lock wait timed out is tried again, ms. @defaultValue 1000 */
  lockRetryMs?: number | undefined;
  /** Tries of one migration whose lock wait timed out before its error is thrown. @defaultValue 60 */
  lockAttempts?: number | undefined;
}

/** Postgres `lock_not_available`: a statement gave up waiting for a lock at its `lock_timeout`. */
const LOCK_NOT_AVAILABLE = '55P03';

/**
 * Applies the migrations not applied yet, in version order. Safe when several processes start at
 * once: each version runs in a transaction holding a transaction-scoped advisory lock keyed on the
 * current schema, so a second runner waits and then sees the version as applied. A statement waits for
 * a table lock at most `lockTimeoutMs`; the migration is then rolled back and tried again (writers of
 * that table are not held behind it meanwhile). A ledger whose highest applied version is above every
 * version here (a newer release migrated it) is refused with `LEDGER_TOO_NEW` unless `allowNewerLedger`.
 * @returns the versions applied by this call.
 */
export async function migrate(
  db: Kysely<LedgerDatabase>,
  migrations: readonly Migration[] = MIGRATIONS,
  nowMs: () => number = Date.now,
  opts: MigrateOptions = {},
): Promise<number[]> {
  const lockTimeoutMs = opts.lockTimeoutMs ?? 5_000;
  const lockRetryMs = opts.lockRetryMs ?? 1_000;
  const lockAttempts = opts.lockAttempts ?? 60;
  for (const [name, v] of [
    ['lockTimeoutMs', lockTimeoutMs],
    ['lockRetryMs', lockRetryMs],
    ['lockAttempts', lockAttempts],
  ] as const)
    if (!Number.isSafeInteger(v) || v < (name === 'lockAttempts' ? 1 : 0))
      throw new RangeError(
        `migrate: ${name} must be a whole number${name === 'lockAttempts' ? ' ≥ 1' : ' of ms ≥ 0'}, got ${String(v)}`,
      );
  const lock = (tx: Kysely<LedgerDatabase>) =>
    sql`select pg_advisory_xact_lock(hashtext(current_schema() || '.xhedge_migrations'))`.execute(tx);
  // under the lock too: a concurrent `create table if not exists` fails with a duplicate key (pg_type)
  const newest = await db.transaction().execute(async (tx) => {
    await lock(tx);
    await sql`create table if not exists xhedge_migrations (
      version integer primary key, name text not null, applied_at_ms bigint not null)`.execute(tx);
    const r = await tx
      .selectFrom('xhedge_migrations')
      .select((eb) => eb.fn.max('version').as('v'))
      .executeTakeFirst();
    return r?.v == null ? 0 : Number(r.v);
  });
  const known = migrations.reduce((m, x) => Math.max(m, x.version), 0);
  if (newest > known && opts.allowNewerLedger !== true)
    throw new XhedgeError(
      'LEDGER_TOO_NEW',
      `the ledger was migrated to version ${newest} by a newer release; this release knows versions up to ${known} and does not keep what the newer one added (an older release started on it, a rollback)`,
      {
        details: { ledgerVersion: newest, knownVersion: known },
        metaMessages: [
          'run the release that migrated it, or restore the ledger backup taken before the upgrade',
          'to run this release on it anyway: database.allowNewerLedger: true in the profile (openDatabase allowNewerLedger)',
        ],
      },
    );
  const applied: number[] = [];
  for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
    for (let attempt = 1; ; attempt++) {
      try {
        await db.transaction().execute(async (tx) => {
          await lock(tx);
          const done = await tx
            .selectFrom('xhedge_migrations')
            .select('version')
            .where('version', '=', m.version)
            .executeTakeFirst();
          if (done) return;
          // after the advisory lock (another migrator is waited for as long as it takes)
          if (lockTimeoutMs > 0) await sql.raw(`set local lock_timeout = ${lockTimeoutMs}`).execute(tx);
          for (const stmt of m.up) await sql.raw(stmt).execute(tx);
          await tx
            .insertInto('xhedge_migrations')
            .values({ version: m.version, name: m.name, applied_at_ms: nowMs() })
            .execute();
          applied.push(m.version);
        });
        break;
      } catch (err) {
        if ((err as { code?: unknown }).code !== LOCK_NOT_AVAILABLE || attempt >= lockAttempts) throw err;
        await new Promise((r) => setTimeout(r, lockRetryMs));
      }
    }
  }
  return applied;
}
