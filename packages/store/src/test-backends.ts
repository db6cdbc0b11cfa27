import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { type DatabaseHandle, openDatabase } from './database.ts';

/** The test Postgres (trust auth on this project's machines); override with TEST_DATABASE_URL. */
export const TEST_PG_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** True when the test Postgres answers within a second. */
export async function postgresReachable(url = TEST_PG_URL): Promise<boolean> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
  try {
    await c.connect();
    await c.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => {});
  }
}

export interface TestBackend {
  name: 'pglite' | 'postgres';
  open(): Promise<DatabaseHandle>;
}

/**
 * PGlite always; the real Postgres too when reachable (each open gets its own schema, dropped by
 * `closeTestDb`). Prints a visible line when Postgres is skipped.
 */
export async function testBackends(): Promise<TestBackend[]> {
  const out: TestBackend[] = [{ name: 'pglite', open: () => openDatabase() }];
  if (await postgresReachable()) {
    out.push({
      name: 'postgres',
      open: () =>
        openDatabase({ url: TEST_PG_URL, schema: `t_${randomBytes(6).toString('hex')}`, poolSize: 4 }),
    });
  } else {
    console.warn(`[store tests] Postgres at ${TEST_PG_URL} not reachable: running on PGlite only`);
  }
  return out;
}

export async function closeTestDb(h: DatabaseHandle): Promise<void> {
  if (h.kind === 'postgres') await h.dropSchema();
  await h.close();
}
