import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect, createServer, type Socket } from 'node:net';
import type { XhedgeError } from '@xhedge/core';
import { sql } from 'kysely';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import {
  type DatabaseHandle,
  DatabaseTimeoutError,
  type OpenDatabaseOptions,
  openDatabase,
} from './database.ts';
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
      expect(versions).toEqual([1, 2, 3, 4, 5]);
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
      expect(err).toBeInstanceOf(DatabaseTimeoutError);
      expect(err).toMatchObject({ what: 'connect', option: 'connectTimeoutMs', timeoutMs: 300 });
      expect(String(err)).not.toContain('pw@');
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    }
  }, 20_000);
});

const newSchema = () => `t_${randomBytes(6).toString('hex')}`;

async function waitFor(what: string, cond: () => boolean, withinMs = 5_000): Promise<void> {
  const until = Date.now() + withinMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`waited ${withinMs} ms for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The settled outcome of `p`, or 'still pending' after `ms` (a hang fails the test instead of timing it out). */
function within<T>(p: Promise<T>, ms: number): Promise<{ ok: T } | { err: unknown } | 'still pending'> {
  return Promise.race([
    p.then(
      (ok) => ({ ok }),
      (err: unknown) => ({ err }),
    ),
    new Promise<'still pending'>((r) => setTimeout(() => r('still pending'), ms)),
  ]);
}

async function backendPid(h: DatabaseHandle): Promise<number> {
  const r = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(h.db);
  return Number(r.rows[0]?.pid);
}

/** Ends backend `pid` from a connection of its own, as a restart, failover or an operator would. */
async function terminateBackend(pid: number): Promise<void> {
  const c = new pg.Client({ connectionString: TEST_PG_URL });
  await c.connect();
  try {
    const r = await c.query('select pg_terminate_backend($1) as ok', [pid]);
    expect(r.rows[0]?.ok).toBe(true);
  } finally {
    await c.end();
  }
}

async function dropAndClose(h: DatabaseHandle | undefined, schema: string): Promise<void> {
  const cleanup = await openDatabase({ url: TEST_PG_URL, schema, poolSize: 1, migrate: false });
  await cleanup.dropSchema();
  await cleanup.close();
  await h?.close();
}

/** TEST_PG_URL with a password in it when it has none (trust auth never asks for it): errors must not show it. */
function urlWithSecret(): { url: string; secret: string } {
  const u = new URL(TEST_PG_URL);
  if (!u.password) u.password = 'xhedgeNotShown9';
  return { url: u.toString(), secret: decodeURIComponent(u.password) };
}

describe.runIf(pgUp)('openDatabase on Postgres: connections the server ends', () => {
  it('an idle pooled connection ended by the server is reported (masked) and the next query gets a new one', async () => {
    const schema = newSchema();
    const { url, secret } = urlWithSecret();
    const errors: XhedgeError[] = [];
    const h = await openDatabase({ url, schema, poolSize: 1, onError: (e) => errors.push(e) });
    try {
      const pid = await backendPid(h);
      await terminateBackend(pid);
      // the pool sees the idle connection die: without a listener, an unhandled 'error' event (57P01)
      // would end the process (the vitest worker here)
      await waitFor('the pool to report the ended connection', () => errors.length > 0);
      expect(errors[0]?.code).toBe('DB_CONNECTION_LOST');
      expect(errors[0]?.details).toMatchObject({ pgCode: '57P01' });
      expect(errors[0]?.message).toMatch(/terminating connection/);
      for (const e of errors) expect(`${e.message} ${JSON.stringify(e.details)}`).not.toContain(secret);
      const next = await backendPid(h);
      expect(next).not.toBe(pid);
      expect((await h.prepared?.<{ one: number }>('one', 'select 1 as one', []))?.rows).toEqual([{ one: 1 }]);
      expect(process.exitCode ?? 0).toBe(0);
    } finally {
      await dropAndClose(h, schema);
    }
  }, 20_000);

  it('a connection ended while a transaction holds it fails that transaction only; the next query works', async () => {
    const schema = newSchema();
    const errors: XhedgeError[] = [];
    const h = await openDatabase({ url: TEST_PG_URL, schema, poolSize: 1, onError: (e) => errors.push(e) });
    try {
      let pid = 0;
      const tx = h.db.transaction().execute(async (trx) => {
        pid = Number((await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx)).rows[0]?.pid);
        await terminateBackend(pid);
        // checked out: the pool has no listener on this client; ours must take the 'error' event
        await waitFor('the ended connection to be reported', () => errors.length > 0);
        await sql`select 1`.execute(trx);
      });
      await expect(tx).rejects.toThrow();
      expect(errors[0]?.details).toMatchObject({ pgCode: '57P01' });
      const next = await backendPid(h);
      expect(next).not.toBe(pid);
    } finally {
      await dropAndClose(h, schema);
    }
  }, 20_000);
});

describe.runIf(pgUp)('openDatabase on Postgres: timeouts', () => {
  const open = (schema: string, extra: OpenDatabaseOptions) =>
    openDatabase({ url: TEST_PG_URL, schema, poolSize: 1, ...extra });

  it('by default pooled connections carry statement_timeout 30 s and TCP keepalive', async () => {
    const schema = newSchema();
    const h = await open(schema, {});
    try {
      const r = await sql<{ statement_timeout: string }>`show statement_timeout`.execute(h.db);
      expect(r.rows[0]?.statement_timeout).toBe('30s');
      // the search path is still the schema's
      expect((await sql<{ s: string }>`select current_schema() as s`.execute(h.db)).rows[0]?.s).toBe(schema);
      // keepalive armed on our end of the pooled connection, first probe after 10 s (ss shows its timer)
      const port = (await sql<{ port: number }>`select inet_client_port() as port`.execute(h.db)).rows[0]
        ?.port;
      let socketInfo: string | undefined;
      try {
        socketInfo = execFileSync('ss', ['-tno', 'state', 'established', `( sport = :${port} )`], {
          encoding: 'utf8',
        });
      } catch {
        console.warn('[openDatabase keepalive] not checked: `ss` is not available');
      }
      if (socketInfo !== undefined) expect(socketInfo).toMatch(/timer:\(keepalive,(\d+\.)?\d+(ms|sec)/);
    } finally {
      await dropAndClose(h, schema);
    }
  }, 20_000);

  it('a statement past statementTimeoutMs is cancelled by the server with a clear error; the connection stays', async () => {
    const schema = newSchema();
    const h = await open(schema, { statementTimeoutMs: 300 });
    try {
      const pid = await backendPid(h);
      const started = Date.now();
      const err = await sql`select pg_sleep(3)`.execute(h.db).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(Date.now() - started).toBeLessThan(2_500);
      expect(err).toBeInstanceOf(DatabaseTimeoutError);
      expect(err).toMatchObject({
        code: 'DB_TIMEOUT',
        what: 'statement',
        option: 'statementTimeoutMs',
        timeoutMs: 300,
      });
      expect(String(err)).toContain('statementTimeoutMs (300 ms): select pg_sleep(3)');
      // the prepared-statement path too
      await expect(h.prepared?.('sleep', 'select pg_sleep($1)', [3])).rejects.toMatchObject({
        what: 'statement',
      });
      expect(await backendPid(h)).toBe(pid);
      expect((await sql<{ one: number }>`select 1 as one`.execute(h.db)).rows).toEqual([{ one: 1 }]);
    } finally {
      await dropAndClose(h, schema);
    }
  }, 20_000);

  it('no answer within queryTimeoutMs (a dead network) fails the query clearly and drops that connection', async () => {
    const schema = newSchema();
    // statement_timeout off: only the client-side limit can end the wait
    const h = await open(schema, { statementTimeoutMs: 0, queryTimeoutMs: 300 });
    try {
      const pid = await backendPid(h);
      const started = Date.now();
      const res = await within(sql`select pg_sleep(3)`.execute(h.db), 2_500);
      expect(Date.now() - started).toBeLessThan(2_500);
      expect(res).toHaveProperty('err');
      const err = (res as { err: unknown }).err;
      expect(err).toBeInstanceOf(DatabaseTimeoutError);
      expect(err).toMatchObject({ what: 'query', option: 'queryTimeoutMs', timeoutMs: 300 });
      // the next query does not queue behind the unanswered one: a new connection answers at once
      const t = Date.now();
      expect(await backendPid(h)).not.toBe(pid);
      expect(Date.now() - t).toBeLessThan(1_000);
    } finally {
      await dropAndClose(h, schema);
    }
  }, 20_000);

  it('waiting for a free pooled connection is bounded by acquireTimeoutMs', async () => {
    const schema = newSchema();
    const h = await open(schema, { acquireTimeoutMs: 300 });
    try {
      let release = () => {};
      const held = new Promise<void>((r) => {
        release = r;
      });
      let inTx = false;
      const tx = h.db.transaction().execute(async (trx) => {
        await sql`select 1`.execute(trx);
        inTx = true;
        await held;
      });
      await waitFor('the transaction to hold the only connection', () => inTx);
      const res = await within(sql`select 1`.execute(h.db), 2_500);
      expect(res).toHaveProperty('err');
      expect((res as { err: unknown }).err).toMatchObject({
        what: 'pool',
        option: 'acquireTimeoutMs',
        message: expect.stringContaining('poolSize 1'),
      });
      release();
      await tx;
      expect((await sql<{ one: number }>`select 1 as one`.execute(h.db)).rows).toEqual([{ one: 1 }]);
    } finally {
      await dropAndClose(h, schema);
    }
  }, 20_000);

  it('a new pooled connection to a server that never answers fails within connectTimeoutMs; the pool recovers', async () => {
    const target = new URL(TEST_PG_URL);
    let mode: 'forward' | 'hang' = 'forward';
    const sockets = new Set<Socket>();
    const track = (s: Socket) => {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
    };
    const proxy = createServer((s) => {
      track(s);
      if (mode === 'hang') return;
      const up = connect(Number(target.port || 5432), target.hostname);
      track(up);
      s.on('close', () => up.destroy());
      up.on('close', () => s.destroy());
      s.pipe(up);
      up.pipe(s);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const via = new URL(TEST_PG_URL);
    via.hostname = '127.0.0.1';
    via.port = String((proxy.address() as { port: number }).port);
    const schema = newSchema();
    const errors: XhedgeError[] = [];
    const h = await openDatabase({
      url: via.toString(),
      schema,
      poolSize: 1,
      connectTimeoutMs: 300,
      onError: (e) => errors.push(e),
    });
    try {
      const pid = await backendPid(h);
      mode = 'hang';
      await terminateBackend(pid);
      await waitFor('the ended connection to be reported', () => errors.length > 0);
      const started = Date.now();
      const res = await within(backendPid(h), 5_000);
      expect(res).toHaveProperty('err');
      const err = (res as { err: unknown }).err;
      expect(err).toBeInstanceOf(DatabaseTimeoutError);
      expect(err).toMatchObject({ what: 'connect', option: 'connectTimeoutMs', timeoutMs: 300 });
      expect(Date.now() - started).toBeLessThan(2_500);
      mode = 'forward';
      expect(await backendPid(h)).not.toBe(pid);
    } finally {
      await dropAndClose(h, schema);
      for (const s of sockets) s.destroy();
      await new Promise((r) => proxy.close(r));
    }
  }, 30_000);

  it('migrations are not cut off by statementTimeoutMs; migrationTimeoutMs bounds them instead', async () => {
    const schema = newSchema();
    // another process migrating this schema: the open waits for its lock longer than statementTimeoutMs
    const blocker = new pg.Client({ connectionString: TEST_PG_URL });
    await blocker.connect();
    try {
      await blocker.query('begin');
      await blocker.query('select pg_advisory_xact_lock(hashtext($1))', [`${schema}.xhedge_migrations`]);
      const limited = await openDatabase({
        url: TEST_PG_URL,
        schema,
        poolSize: 1,
        migrationTimeoutMs: 300,
      }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(limited).toBeInstanceOf(DatabaseTimeoutError);
      expect(limited).toMatchObject({ what: 'statement', option: 'migrationTimeoutMs', timeoutMs: 300 });
      const opening = openDatabase({ url: TEST_PG_URL, schema, poolSize: 1, statementTimeoutMs: 200 });
      await new Promise((r) => setTimeout(r, 1_000));
      await blocker.query('commit');
      const h = await opening;
      try {
        const versions = await h.db
          .selectFrom('xhedge_migrations')
          .select('version')
          .orderBy('version')
          .execute();
        expect(versions.map((r) => r.version)).toEqual([1, 2, 3, 4, 5]);
        // the pool keeps its own, shorter limit
        await expect(sql`select pg_sleep(2)`.execute(h.db)).rejects.toMatchObject({ what: 'statement' });
      } finally {
        await dropAndClose(h, schema);
      }
    } finally {
      await blocker.end();
    }
  }, 30_000);
});

describe('openDatabase timeout options', () => {
  it('refuses a limit that is not a whole number of ms, 0 or more, naming it', async () => {
    await expect(openDatabase({ statementTimeoutMs: -1 })).rejects.toThrow(
      /statementTimeoutMs must be a whole number/,
    );
    await expect(openDatabase({ connectTimeoutMs: Number.NaN })).rejects.toThrow(/connectTimeoutMs/);
    await expect(openDatabase({ acquireTimeoutMs: 1.5 })).rejects.toThrow(/acquireTimeoutMs/);
    await expect(openDatabase({ statementTimeoutMs: 1_000, queryTimeoutMs: 1_000 })).rejects.toThrow(
      /queryTimeoutMs \(1000\) must be above statementTimeoutMs \(1000\)/,
    );
  });

  it('PGlite (no pool) opens and answers with the options given', async () => {
    const h = await openDatabase({ statementTimeoutMs: 100, connectTimeoutMs: 100, onError: () => {} });
    try {
      expect(h.kind).toBe('pglite');
      expect((await sql<{ one: number }>`select 1 as one`.execute(h.db)).rows).toEqual([{ one: 1 }]);
    } finally {
      await h.close();
    }
  });
});

describe.runIf(pgUp)(
  'isLedgerUnavailable: the errors of a ledger that cannot answer, not of a wrong statement',
  () => {
    it('a refused connection, a backend ended mid-statement: unavailable; a statement cancelled at its timeout, bad SQL, a division by zero: not', async () => {
      const { isLedgerUnavailable } = await import('./errors.ts');
      const caught = async (p: Promise<unknown>): Promise<unknown> =>
        p.then(
          () => {
            throw new Error('expected a failure');
          },
          (err: unknown) => err,
        );
      // nothing listens on the port: the pool's connect is refused
      const port = await new Promise<number>((res) => {
        const s = createServer();
        s.listen(0, '127.0.0.1', () => {
          const p = (s.address() as { port: number }).port;
          s.close(() => res(p));
        });
      });
      const u = new URL(TEST_PG_URL);
      u.port = String(port);
      const refused = await caught(
        openDatabase({ url: u.toString(), schema: newSchema(), poolSize: 1, migrate: false }).then((h) =>
          sql`select 1`.execute(h.db).finally(() => h.close()),
        ),
      );
      expect(isLedgerUnavailable(refused)).toBe(true);

      const schema = newSchema();
      const h = await openDatabase({ url: TEST_PG_URL, schema, poolSize: 1, statementTimeoutMs: 200 });
      try {
        const pid = await backendPid(h);
        const slow = caught(sql`select pg_sleep(5)`.execute(h.db));
        await new Promise((r) => setTimeout(r, 100));
        await terminateBackend(pid);
        expect(isLedgerUnavailable(await slow)).toBe(true);
        // The pool drops the terminated connection when its error event arrives; a query sent before that
        // can meet the dead client ("not queryable"), which is no statement timeout. Wait until the ledger
        // answers again (a clean-clone run under load sent pg_sleep to the dead client).
        for (let i = 0; ; i++) {
          const ok = await sql`select 1`.execute(h.db).then(
            () => true,
            (err: unknown) => {
              if (i >= 50 || !isLedgerUnavailable(err)) throw err;
              return false;
            },
          );
          if (ok) break;
          await new Promise((r) => setTimeout(r, 100));
        }
        // the server cancels a statement at its statement_timeout (a held lock, a slow plan): the store's
        // DatabaseTimeoutError, but no outage (running it again changes nothing)
        const cancelled = await caught(sql`select pg_sleep(2)`.execute(h.db));
        expect((cancelled as { code?: string }).code, String(cancelled)).toBe('DB_TIMEOUT');
        expect((cancelled as { what?: string }).what).toBe('statement');
        expect(isLedgerUnavailable(cancelled)).toBe(false);
        // a statement the server refuses as it stands is no outage
        const bad = await caught(sql`select * from no_such_table_here`.execute(h.db));
        expect((bad as { code?: string }).code).toBe('42P01');
        expect(isLedgerUnavailable(bad)).toBe(false);
        expect(isLedgerUnavailable(await caught(sql`select 1/0`.execute(h.db)))).toBe(false);
        expect(isLedgerUnavailable(new Error('order x: queued → filled is not allowed'))).toBe(false);
        expect(isLedgerUnavailable(undefined)).toBe(false);
      } finally {
        await dropAndClose(h, schema);
      }
    });
  },
);
