import { randomBytes } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { type DatabaseHandle, openDatabase } from './database.ts';
import { postgresReachable, TEST_PG_URL } from './test-backends.ts';

const pgUp = await postgresReachable();
if (!pgUp) console.warn('[openDatabase on Postgres] skipped: no Postgres reachable at TEST_PG_URL');

describe.runIf(pgUp)('openDatabase on Postgres', () => {
  it('several processes opening (creating and migrating) a fresh schema at once all succeed', async () => {
    for (let round = 0; round < 8; round++) {
      const schema = `t_${randomBytes(6).toString('hex')}`;
      const res = await Promise.allSettled(
        Array.from({ length: 4 }, () => openDatabase({ url: TEST_PG_URL, schema, poolSize: 2 })),
      );
      const opened = res.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
      const errors = res.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
      const first: DatabaseHandle | undefined = opened[0];
      const versions = first
        ? (await first.db.selectFrom('xhedge_migrations').select('version').orderBy('version').execute()).map(
            (r) => r.version,
          )
        : [];
      const cleanup =
        first ?? (await openDatabase({ url: TEST_PG_URL, schema, poolSize: 1, migrate: false }));
      await cleanup.dropSchema();
      for (const h of new Set([cleanup, ...opened])) await h.close();
      expect(errors, `round ${round}`).toEqual([]);
      // each migration applied once
      expect(versions).toEqual([1, 2, 3]);
    }
  }, 60_000);
});

describe('openDatabase on a Postgres that accepts connections and never answers', () => {
  it('fails within connectTimeoutMs instead of waiting for ever', async () => {
    const sockets: Socket[] = [];
    const server = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as { port: number };
    try {
      const started = Date.now();
      const err = await openDatabase({
        url: `postgres://xhedge:pw@127.0.0.1:${port}/test`,
        connectTimeoutMs: 300,
      }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(String(err)).toMatch(/timeout/i);
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    }
  }, 20_000);
});
