import { randomBytes } from 'node:crypto';
import { BreakersConfig, loadConfigFile } from '@xhedge/config';
import { BreakerBoard, KillSwitch } from '@xhedge/execution';
import { hasRedisServer, type OwnRedis, silentRedisProxy, spawnRedisServer } from '@xhedge/execution/testing';
import { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { registerMetrics } from './metrics.ts';
import type { KillSwitchView } from './schemas.ts';
import { buildApiServer } from './server.ts';
import { memoryPorts } from './testing/memory-ports.ts';

/**
 * Regression (an observability audit's drill): with Redis down, /metrics answered 503 on every scrape
 * (its kill-switch, breaker and queue collectors read Redis), so Prometheus marked every series stale and
 * every alert resolved, XhedgeControlStateNotRestored too. Each collector's read is now bounded and its
 * failure leaves only its own series out; `xhedge_dependency_up` says which store failed. The kill switch,
 * breakers and queue here are execution's real ones on a redis-server of the test's own.
 */
const cfg = loadConfigFile(new URL('../../../configs/profiles/paper.yaml', import.meta.url).pathname);
const ADMIN = 'admin-token-for-unit-tests-0123456789';
const READ_TIMEOUT_MS = 300;

const cleanup: (() => Promise<unknown> | unknown)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

/** An API whose controls and queue are the real ones over `redisUrl`, a venue kill switch and a breaker engaged. */
async function apiOver(redisUrl: string): Promise<{ app: FastifyInstance; scrape: () => Promise<Scrape> }> {
  // as the run's client: bounded retries, no command timeout (a silent Redis holds its commands)
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 3 });
  redis.on('error', () => {});
  cleanup.push(() => redis.disconnect());
  const prefix = `xhmo${randomBytes(4).toString('hex')}`;
  const kill = new KillSwitch({ redis, prefix });
  const breakers = new BreakerBoard({ redis, prefix, config: BreakersConfig.parse({}) });
  await kill.engage('venue:gmx-arb', { actor: 'test', reason: 'drill' });
  await breakers.trip('venue:gmx-arb', 'drill', { actor: 'test' });
  const queue = new Queue('orders-gmx-arb', {
    connection: { url: redisUrl, maxRetriesPerRequest: 3 },
    prefix,
  });
  queue.on('error', () => {});
  cleanup.push(() => queue.disconnect());
  const ports = memoryPorts({ venues: cfg.venues, policy: cfg.policy, adminToken: ADMIN });
  ports.controls.killSwitches = async () =>
    (await kill.engaged()).map((e): KillSwitchView => {
      const [scope, target] = e.scope.split(':') as [KillSwitchView['scope'], string];
      return { scope, target, engaged: true };
    });
  ports.controls.breakers = async () =>
    (await breakers.list()).map((b) => ({ name: b.name, state: b.state }));
  const withQueue = { ...ports, queues: [queue] };
  registerMetrics(ports.metrics, withQueue, { readTimeoutMs: READ_TIMEOUT_MS });
  const app = await buildApiServer({ ports: withQueue, logger: false, rateLimitPerMinute: 100_000 });
  cleanup.push(() => app.close());
  const scrape = async (): Promise<Scrape> => {
    const t0 = performance.now();
    const r = await app.inject({ url: '/metrics', headers: { authorization: `Bearer ${ADMIN}` } });
    return { status: r.statusCode, body: r.body, ms: performance.now() - t0 };
  };
  return { app, scrape };
}

interface Scrape {
  status: number;
  body: string;
  ms: number;
}

const KILL = 'xhedge_kill_switch_now{scope="venue",target="gmx-arb"} 1';
const BREAKER = 'xhedge_breaker_state_now{breaker="venue:gmx-arb"} 2';
const REDIS_UP = 'xhedge_dependency_up{dependency="redis"} 1';
const REDIS_DOWN = 'xhedge_dependency_up{dependency="redis"} 0';
const DB_UP = 'xhedge_dependency_up{dependency="database"} 1';

const haveRedis = hasRedisServer();
if (!haveRedis) console.warn('[metrics-outage test] skipped: redis-server binary not found');

describe.skipIf(!haveRedis)(
  '/metrics while Redis is down (regression: 503 on every scrape, every alert resolved)',
  () => {
    it('a Redis that goes silent: 200 within the read bound, redis 0, its series left out, the rest served', async () => {
      const server: OwnRedis = await spawnRedisServer();
      cleanup.push(() => server.stop());
      const proxy = await silentRedisProxy(server.url);
      cleanup.push(() => proxy.close());
      const { scrape } = await apiOver(proxy.url);
      const ok = await scrape();
      expect(ok.status).toBe(200);
      for (const line of [KILL, BREAKER, REDIS_UP, DB_UP]) expect(ok.body).toContain(line);
      expect(ok.body).toMatch(/^xhedge_queue_jobs\{queue="orders-gmx-arb",state="waiting"\} 0$/m);

      proxy.cut();
      for (let i = 0; i < 2; i++) {
        const cut = await scrape();
        expect(cut.status).toBe(200);
        // bounded: the reads run at once, each cut off at the read timeout
        expect(cut.ms).toBeLessThan(READ_TIMEOUT_MS + 5_000); // (headroom for a loaded machine; unbounded it hung)
        expect(cut.body).toContain(REDIS_DOWN);
        expect(cut.body).toContain(DB_UP);
        expect(cut.body).not.toMatch(/^xhedge_(kill_switch_now|breaker_state_now|queue_jobs)\{/m);
        // families stay declared; what does not read Redis is served
        expect(cut.body).toContain('# TYPE xhedge_kill_switch_now gauge');
        expect(cut.body).toMatch(/^xhedge_risk_snapshot_seq \d+$/m);
      }
    }, 60_000);

    it('a Redis that stops and comes back: redis 0 while down, the kill switch and breaker series back with it', async () => {
      // AOF: the restarted server has the engagement again, as a production Redis would
      const server: OwnRedis = await spawnRedisServer(['--appendonly', 'yes', '--appendfsync', 'always']);
      cleanup.push(() => server.stop());
      const { scrape } = await apiOver(server.url);
      expect((await scrape()).body).toContain(KILL);

      await server.kill();
      const down = await scrape();
      expect(down.status).toBe(200);
      expect(down.body).toContain(REDIS_DOWN);
      expect(down.body).toContain(DB_UP);
      expect(down.body).not.toContain('xhedge_kill_switch_now{');

      await server.start();
      const deadline = Date.now() + 20_000;
      let back = await scrape();
      while (!back.body.includes(REDIS_UP) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 200));
        back = await scrape();
      }
      expect(back.status).toBe(200);
      for (const line of [KILL, BREAKER, REDIS_UP, DB_UP]) expect(back.body).toContain(line);
    }, 60_000);
  },
);
