import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { loadConfigFile } from '@xhedge/config';
import { machineRedisOrEmbedded } from '@xhedge/execution/testing';
import { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { Redis, type RedisOptions } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApiServer, REDACT_PATHS } from './server.ts';
import { BrowserSessions, RedisSessionStore, SessionStoreError } from './sessions.ts';
import { type MemoryPorts, memoryPorts } from './testing/memory-ports.ts';
import { sha256Hex } from './tokens.ts';

// The machine's Redis when it answers, else an embedded js-redis-server (a fresh machine has none).
const endpoint = await machineRedisOrEmbedded('api session tests');

const cfg = loadConfigFile(new URL('../../../configs/profiles/paper.yaml', import.meta.url).pathname);
const ADMIN = 'admin-token-for-redis-session-tests-0123';
const SYSTEM = { tokenId: 'x', name: 'test', role: 'admin' as const };
const prefix = `{xhedge-test}:${randomBytes(6).toString('hex')}`;

const clients: Redis[] = [];
const servers: FastifyInstance[] = [];
const redisClient = (opts: RedisOptions = {}) => {
  const r = new Redis({ ...(endpoint.options as RedisOptions), maxRetriesPerRequest: 1, ...opts });
  r.on('error', () => {});
  clients.push(r);
  return r;
};
/** One API replica: its own Redis connection and sessions object, the deployment's shared ports. */
const replica = async (ports: MemoryPorts, ttlMs?: number, queues?: Queue[]) => {
  const sessions = new BrowserSessions({
    ...(ttlMs ? { ttlMs } : {}),
    store: new RedisSessionStore({ redis: redisClient(), prefix }),
  });
  const app = await buildApiServer({
    ports: queues ? { ...ports, queues } : ports,
    logger: false,
    sessions,
    heartbeatMs: 50, // the stream's headers reach fetch with the first write
  });
  servers.push(app);
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { app, sessions, url: `http://127.0.0.1:${(app.server.address() as { port: number }).port}` };
};
const openSession = async (app: FastifyInstance, token: string) => {
  const r = await app.inject({
    method: 'POST',
    url: '/v1/session',
    headers: { authorization: `Bearer ${token}` },
  });
  expect(r.statusCode).toBe(201);
  const id = /^xh_session=([^;]+)/.exec(String(r.headers['set-cookie']))?.[1];
  if (!id) throw new Error('no session cookie set');
  return { id, cookie: `xh_session=${id}` };
};
/** Status of the SSE stream for a cookie (an accepted stream is aborted once its headers came). */
const streamStatus = async (url: string, cookie: string) => {
  const ctl = new AbortController();
  const r = await fetch(`${url}/v1/risk/stream`, { headers: { cookie }, signal: ctl.signal });
  const body = r.status === 200 ? undefined : await r.json();
  ctl.abort();
  return { status: r.status, body: body as { error: { code: string; message: string } } | undefined };
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let ports: MemoryPorts;
let admin: Redis;
beforeAll(async () => {
  ports = memoryPorts({ venues: cfg.venues, policy: cfg.policy, adminToken: ADMIN });
  admin = redisClient();
  await admin.set(`${prefix}:probe`, '1', 'PX', 1_000); // fails the suite early if Redis is not there
});
afterAll(async () => {
  for (const s of servers) await s.close();
  const keys = await admin.keys(`${prefix}:*`);
  if (keys.length > 0) for (const k of keys) await admin.del(k);
  for (const c of clients) c.disconnect();
  await endpoint.close();
});

describe('browser sessions shared through Redis (several API replicas, restarts)', () => {
  it('a session opened on replica A is accepted on B (stream and Bull Board); logout on B ends it on A', async () => {
    const q = new Queue('orders-gmx-arb', {
      connection: { ...endpoint.options, lazyConnect: true },
    });
    q.on('error', () => {});
    const a = await replica(ports);
    const b = await replica(ports, undefined, [q]);
    const { token, view } = await ports.tokens.create({ name: 'dash', role: 'viewer' }, SYSTEM);
    const { id, cookie } = await openSession(a.app, token);

    expect((await streamStatus(b.url, cookie)).status).toBe(200);
    const board = await b.app.inject({ url: '/admin/queues', headers: { cookie } });
    expect(board.statusCode).toBe(200);
    expect(board.headers['content-type']).toMatch(/text\/html/);
    expect(await b.sessions.tokenOf(id)).toBe(view.id);
    // still only the browser routes
    expect((await b.app.inject({ url: '/v1/venues', headers: { cookie } })).statusCode).toBe(401);

    // Redis holds the id's sha256 and the token id, never the clear id (nor the bearer token)
    const keys = await admin.keys(`${prefix}:session:*`);
    expect(keys).toContain(`${prefix}:session:${sha256Hex(id)}`);
    for (const k of keys) {
      expect(k).not.toContain(id);
      expect(k).not.toContain(id.slice(3));
      const v = await admin.get(k);
      expect(v).not.toContain(id.slice(3));
      expect(v).not.toContain(token);
    }
    expect(await admin.get(`${prefix}:session:${sha256Hex(id)}`)).toBe(view.id);
    const pttl = await admin.pttl(`${prefix}:session:${sha256Hex(id)}`);
    expect(pttl).toBeGreaterThan(8 * 3_600_000 - 60_000);
    expect(pttl).toBeLessThanOrEqual(8 * 3_600_000);

    const out = await b.app.inject({ method: 'DELETE', url: '/v1/session', headers: { cookie } });
    expect(out.statusCode).toBe(204);
    expect(String(out.headers['set-cookie'])).toMatch(/^xh_session=; .*Max-Age=0/);
    expect(await admin.get(`${prefix}:session:${sha256Hex(id)}`)).toBeNull();
    const afterA = await streamStatus(a.url, cookie);
    expect(afterA.status).toBe(401);
    expect(afterA.body?.error.message).toMatch(/POST \/v1\/session/);
    expect((await a.app.inject({ url: '/v1/risk/stream', headers: { cookie } })).statusCode).toBe(401);
    await q.close();
  });

  it('a session outlives the replica that made it (an API restart keeps browsers logged in)', async () => {
    const first = await replica(ports);
    const { token } = await ports.tokens.create({ name: 'restart', role: 'viewer' }, SYSTEM);
    const { cookie } = await openSession(first.app, token);
    await first.app.close();
    const second = await replica(ports);
    expect((await streamStatus(second.url, cookie)).status).toBe(200);
  });

  it('expires after its ttl on every replica (Redis PX)', async () => {
    const a = await replica(ports, 400);
    const b = await replica(ports, 400);
    const { token } = await ports.tokens.create({ name: 'short', role: 'viewer' }, SYSTEM);
    const { id, cookie } = await openSession(a.app, token);
    const pttl = await admin.pttl(`${prefix}:session:${sha256Hex(id)}`);
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(400);
    expect((await streamStatus(b.url, cookie)).status).toBe(200);
    await sleep(500);
    expect(await admin.get(`${prefix}:session:${sha256Hex(id)}`)).toBeNull();
    expect((await streamStatus(b.url, cookie)).status).toBe(401);
    expect((await streamStatus(a.url, cookie)).status).toBe(401);
  });

  it('follows its token: revoking the token kills the session on every replica', async () => {
    const a = await replica(ports);
    const b = await replica(ports);
    const { token, view } = await ports.tokens.create({ name: 'revoked', role: 'viewer' }, SYSTEM);
    const { cookie } = await openSession(a.app, token);
    expect((await streamStatus(b.url, cookie)).status).toBe(200);
    await ports.tokens.revoke(view.id, SYSTEM);
    expect((await streamStatus(b.url, cookie)).status).toBe(401);
    expect((await streamStatus(a.url, cookie)).status).toBe(401);
  });

  it('forged or malformed cookies are refused without a valid session', async () => {
    const a = await replica(ports);
    for (const forged of ['xs_forged', `xs_${'A'.repeat(43)}`, 'x'.repeat(5_000)])
      expect((await streamStatus(a.url, `xh_session=${forged}`)).status).toBe(401);
  });
});

describe('fail closed when the session store cannot be reached', () => {
  let silent: Server;
  let silentPort: number;
  const sockets = new Set<Socket>();
  beforeAll(async () => {
    // accepts connections and never answers: a Redis that hangs
    silent = createServer((s) => {
      sockets.add(s);
      s.on('error', () => {});
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    silentPort = (silent.address() as { port: number }).port;
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => silent.close(r));
  });

  it('a Redis that refuses connections: 503 on the browser routes and on opening a session, never a pass', async () => {
    // a token-valid session id is of no use while the store cannot confirm it
    const down = redisClient({
      port: 1,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      lazyConnect: true,
    });
    const sessions = new BrowserSessions({ store: new RedisSessionStore({ redis: down, prefix }) });
    const lines: string[] = [];
    const logger = pino(
      { level: 'info', redact: { paths: REDACT_PATHS, censor: '[redacted]' } },
      { write: (l: string) => void lines.push(l) },
    );
    const app = await buildApiServer({ ports, logger, sessions });
    servers.push(app);
    const { token } = await ports.tokens.create({ name: 'down', role: 'viewer' }, SYSTEM);
    const cookie = `xh_session=xs_${randomBytes(32).toString('base64url')}`;
    const r = await app.inject({ url: '/v1/risk/stream', headers: { cookie } });
    expect(r.statusCode).toBe(503);
    expect(r.json().error.code).toBe('NOT_READY');
    expect(r.json().error.message).toMatch(/session store is unreachable/);
    expect(r.body).not.toContain(cookie.slice('xh_session='.length));
    const open = await app.inject({
      method: 'POST',
      url: '/v1/session',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(open.statusCode).toBe(503);
    expect(open.headers['set-cookie']).toBeUndefined();
    // logout that cannot reach the store keeps the cookie, so the browser can retry it
    const out = await app.inject({ method: 'DELETE', url: '/v1/session', headers: { cookie } });
    expect(out.statusCode).toBe(503);
    expect(out.headers['set-cookie']).toBeUndefined();
    // the log names the store's failure, never the session id
    const log = lines.join('\n');
    expect(lines.filter((l) => l.includes('browser-session store unreachable'))).toHaveLength(3);
    expect(log).toMatch(/Redis (GET|SET|DEL) failed/);
    expect(log).not.toContain(cookie.slice('xh_session=xs_'.length));
    // the bearer header still works
    expect(
      (await app.inject({ url: '/v1/venues', headers: { authorization: `Bearer ${token}` } })).statusCode,
    ).toBe(200);
  });

  it('a Redis that hangs: the lookup times out into a 503 instead of waiting forever', async () => {
    const hung = redisClient({ port: silentPort, maxRetriesPerRequest: 0 });
    const store = new RedisSessionStore({ redis: hung, prefix, timeoutMs: 200 });
    const sessions = new BrowserSessions({ store });
    const id = `xs_${randomBytes(32).toString('base64url')}`;
    const started = Date.now();
    const err = await sessions.tokenOf(id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SessionStoreError);
    expect((err as SessionStoreError).statusCode).toBe(503);
    expect(String((err as SessionStoreError).cause)).toMatch(/GET took longer than 200 ms/);
    expect(String(err)).not.toContain(id);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(() => new RedisSessionStore({ redis: hung, prefix, timeoutMs: 0 })).toThrow(/timeoutMs/);
    expect(() => new RedisSessionStore({ redis: hung, prefix: '' })).toThrow(/prefix/);
  });
});
