import { loadConfigFile } from '@xhedge/config';
import { isDatabaseUnavailable } from '@xhedge/core';
import { hasRedisServer, type OwnRedis, spawnRedisServer } from '@xhedge/execution/testing';
import { Redis, type RedisOptions } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApiServer, REDACT_PATHS } from './server.ts';
import { memoryPorts } from './testing/memory-ports.ts';

/**
 * Regression (a Redis outage drill): `GET /v1/venues/:id` answered 500 INTERNAL, logged as an unhandled
 * error, while Redis was down or read-only: ioredis's errors carry no `code`, and the API's mapping
 * (core's `isDatabaseUnavailable`) knew only the ledger's. They are a 503 NOT_READY to try again.
 * Every error here is a real one, from a redis-server of the test's own.
 */
const cfg = loadConfigFile(new URL('../../../configs/profiles/paper.yaml', import.meta.url).pathname);
const ADMIN = 'admin-token-for-unit-tests-0123456789';
const VENUE = cfg.venues[0]?.id ?? 'no-venue';

/** What `p` rejects with (the test fails if it resolves). */
async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

/** A client of `url` that the test closes; connection errors ignored (the commands reject on their own). */
const clients: Redis[] = [];
function client(url: string, o: RedisOptions = {}): Redis {
  const c = new Redis(url, o);
  c.on('error', () => {});
  clients.push(c);
  return c;
}

const servers: OwnRedis[] = [];
async function ownRedis(args: string[] = []): Promise<OwnRedis> {
  const s = await spawnRedisServer(args);
  servers.push(s);
  return s;
}

const haveRedis = hasRedisServer();
if (!haveRedis) console.warn('[redis-outage test] skipped: redis-server binary not found');

describe.skipIf(!haveRedis)('Redis down or unable to take a command: real ioredis errors', () => {
  /** Errors met by ioredis once its Redis was killed, and replies of a real replica / full server. */
  const down: Record<string, Error> = {};
  const wrong: Record<string, Error> = {};

  beforeAll(async () => {
    const primary = await ownRedis();
    const bounded = client(primary.url, { maxRetriesPerRequest: 1 });
    const noQueue = client(primary.url, { enableOfflineQueue: false });
    const noRetry = client(primary.url, { retryStrategy: () => null });
    await Promise.all([bounded, noQueue, noRetry].map((c) => new Promise((ready) => c.once('ready', ready))));

    // answers of a live server to wrong commands: not an outage
    const ok = client(primary.url);
    await ok.set('k:str', 'v');
    wrong.err = await rejection(ok.call('NOSUCHCOMMAND'));
    wrong.wrongtype = await rejection(ok.lpush('k:str', 'x'));
    wrong.noscript = await rejection(ok.evalsha('0'.repeat(40), 0));
    wrong.script = await rejection(ok.eval('return redis.call("nosuchcommand")', 0));

    // a replica refuses writes (as the old primary does after a failover)
    const replica = await ownRedis(['--replicaof', '127.0.0.1', String(primary.port)]);
    down.readonly = await rejection(client(replica.url).set('k', 'v'));
    // a replica of a master that is gone, told not to serve stale data
    // (set once it answers: the readiness PING would meet MASTERDOWN too)
    const orphan = await ownRedis(['--replicaof', '127.0.0.1', '1']);
    const o = client(orphan.url);
    await o.config('SET', 'replica-serve-stale-data', 'no');
    down.masterdown = await rejection(o.get('k'));
    // out of memory under noeviction
    const full = await ownRedis(['--maxmemory-policy', 'noeviction']);
    const f = client(full.url);
    await f.set('big', 'x'.repeat(4 << 20));
    await f.config('SET', 'maxmemory', String(1 << 20));
    down.oom = await rejection(f.set('more', 'y'));

    await primary.kill();
    down.maxRetries = await rejection(bounded.get('k'));
    down.noQueue = await rejection(noQueue.get('k'));
    down.closed = await rejection(noRetry.get('k'));
  }, 30_000);

  afterAll(async () => {
    for (const c of clients) c.disconnect();
    for (const s of servers) s.stop();
  });

  it('meets the errors an outage gives (guards the test itself)', () => {
    expect(down.maxRetries?.name).toBe('MaxRetriesPerRequestError');
    expect(down.noQueue?.message).toBe("Stream isn't writeable and enableOfflineQueue options is false");
    expect(down.closed?.message).toBe('Connection is closed.');
    expect(down.readonly?.message).toMatch(/^READONLY /);
    expect(down.masterdown?.message).toMatch(/^MASTERDOWN /);
    expect(down.oom?.message).toMatch(/^OOM /);
    expect(wrong.err?.message).toMatch(/^ERR /);
    expect(wrong.wrongtype?.message).toMatch(/^WRONGTYPE /);
    expect(wrong.noscript?.message).toMatch(/^NOSCRIPT /);
    expect(wrong.script?.name).toBe('ReplyError');
  });

  it('isDatabaseUnavailable: true for Redis unreachable, read-only, master down or out of memory', () => {
    for (const [what, err] of Object.entries(down)) expect(isDatabaseUnavailable(err), what).toBe(true);
  });

  it('isDatabaseUnavailable: false for a wrong command, a wrong type, a missing script, a script error', () => {
    for (const [what, err] of Object.entries(wrong)) expect(isDatabaseUnavailable(err), what).toBe(false);
  });

  /** An API whose venue port reads Redis and fails with `err`. */
  async function failingVenueServer(err: Error) {
    const lines: string[] = [];
    const ports = memoryPorts({ venues: cfg.venues, policy: cfg.policy, adminToken: ADMIN });
    const app = await buildApiServer({
      ports: {
        ...ports,
        venues: {
          ...ports.venues,
          get: async () => {
            throw err;
          },
        },
      },
      logger: pino(
        { level: 'info', redact: { paths: REDACT_PATHS, censor: '[redacted]' } },
        { write: (line: string) => void lines.push(line) },
      ),
    });
    return { app, lines };
  }

  for (const what of ['maxRetries', 'closed', 'noQueue', 'readonly']) {
    it(`GET /v1/venues/:id answers 503 NOT_READY, logged as a warning, on Redis ${what}`, async () => {
      const err = down[what];
      if (!err) throw new Error(`no ${what} error`);
      const { app, lines } = await failingVenueServer(err);
      try {
        const r = await app.inject({
          url: `/v1/venues/${VENUE}`,
          headers: { authorization: `Bearer ${ADMIN}` },
        });
        expect(r.statusCode, r.body).toBe(503);
        expect(r.json().error.code).toBe('NOT_READY');
        expect(r.json().error.message).toMatch(/\/v1\/ready/);
        expect(lines.find((l) => l.includes('backing store unavailable'))).toContain('"level":40');
        expect(lines.join('\n')).not.toContain('unhandled error');
      } finally {
        await app.close();
      }
    });
  }

  it('GET /v1/venues/:id still answers 500 INTERNAL on a Redis error that is a wrong command', async () => {
    const { app } = await failingVenueServer(wrong.wrongtype ?? new Error('none'));
    try {
      const r = await app.inject({
        url: `/v1/venues/${VENUE}`,
        headers: { authorization: `Bearer ${ADMIN}` },
      });
      expect(r.statusCode).toBe(500);
      expect(r.json().error.code).toBe('INTERNAL');
    } finally {
      await app.close();
    }
  });
});
