import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { openDatabase } from './database.ts';
import { MIGRATIONS, migrate } from './migrations.ts';
import { postgresReachable, TEST_PG_URL } from './test-backends.ts';

const pgUp = await postgresReachable();
if (!pgUp) console.warn('[migrations on Postgres] skipped: no Postgres reachable at TEST_PG_URL');

const newest = Math.max(...MIGRATIONS.map((m) => m.version));

describe('a ledger migrated by a newer release (an older release started on it: a rollback)', () => {
  it('PGlite: refused naming both versions, unless allowNewerLedger', async () => {
    const h = await openDatabase({});
    try {
      const older = MIGRATIONS.filter((m) => m.version < newest);
      const err = await migrate(h.db, older).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toMatchObject({
        code: 'LEDGER_TOO_NEW',
        details: { ledgerVersion: newest, knownVersion: newest - 1 },
      });
      expect(String((err as Error).message)).toMatch(
        new RegExp(
          `migrated to version ${newest} by a newer release; this release knows versions up to ${newest - 1}`,
        ),
      );
      expect(await migrate(h.db, older, Date.now, { allowNewerLedger: true })).toEqual([]);
      // this release's own versions: nothing to do, nothing refused
      expect(await migrate(h.db)).toEqual([]);
    } finally {
      await h.close();
    }
  });
});

describe.runIf(pgUp)('migrations on Postgres: a schema change waiting for a table lock', () => {
  it('gives up its lock wait at lockTimeoutMs and is tried again (writers are not queued behind it), then applies', async () => {
    const schema = `t_${randomBytes(6).toString('hex')}`;
    const h = await openDatabase({ url: TEST_PG_URL, schema, poolSize: 1 });
    const holder = new pg.Client({ connectionString: TEST_PG_URL, options: `-c search_path=${schema}` });
    await holder.connect();
    try {
      // a long transaction writing the table: a CREATE INDEX (SHARE lock) waits for it
      await holder.query('begin');
      await holder.query('lock table risk_snapshots in row exclusive mode');
      const extra = [
        ...MIGRATIONS,
        { version: newest + 1, name: 'test index', up: ['create index t_seq_again on risk_snapshots (seq)'] },
      ];
      // with too few tries it fails with Postgres's lock_not_available, nothing applied
      await expect(
        migrate(h.db, extra, Date.now, { lockTimeoutMs: 100, lockRetryMs: 20, lockAttempts: 3 }),
      ).rejects.toMatchObject({ code: '55P03' });
      const applied = async () =>
        (await h.db.selectFrom('xhedge_migrations').select('version').execute()).map((r) => r.version);
      expect(await applied()).not.toContain(newest + 1);
      // tried again while the holder finishes: it applies once the lock is free
      const run = migrate(h.db, extra, Date.now, { lockTimeoutMs: 100, lockRetryMs: 50, lockAttempts: 100 });
      await new Promise((r) => setTimeout(r, 400));
      await holder.query('commit');
      expect(await run).toEqual([newest + 1]);
      expect(await applied()).toContain(newest + 1);
      const idx = await sql<{
        n: number;
      }>`select count(*)::int as n from pg_indexes where schemaname = ${schema} and indexname = 't_seq_again'`.execute(
        h.db,
      );
      expect(idx.rows[0]?.n).toBe(1);
    } finally {
      await holder.end().catch(() => {});
      await h.dropSchema();
      await h.close();
    }
  }, 60_000);
});
