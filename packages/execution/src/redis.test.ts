import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { closeRedisClient, redisDurability } from './redis.ts';
import { testRedis, until } from './test-env.ts';
import { hasRedisServer, silentRedisProxy, spawnRedisServer } from './testing.ts';

describe('redisDurability: is this Redis fit for orders?', () => {
  it('reads the version, eviction policy and AOF of a real Redis', async () => {
    const ep = await testRedis();
    const c = ep.client();
    try {
      const d = await redisDurability(c);
      if (ep.embedded) {
        console.warn('[redis test] embedded Redis: only the refusal path runs');
        expect(d.warnings.length).toBeGreaterThan(0);
        return;
      }
      const [, policy] = (await c.config('GET', 'maxmemory-policy')) as string[];
      const [, aof] = (await c.config('GET', 'appendonly')) as string[];
      expect(d.version).toMatch(/^\d+\.\d+/);
      expect(d.evictionPolicy).toBe(policy);
      expect(d.appendonly).toBe(aof === 'yes');
      expect(d.errors.some((e) => e.includes('maxmemory-policy'))).toBe(policy !== 'noeviction');
      expect(d.warnings.some((w) => w.includes('appendonly is off'))).toBe(aof !== 'yes');
    } finally {
      c.disconnect();
      await ep.close();
    }
  });

  /** A redis-server of the test's own with these extra arguments, and a client; undefined without the binary. */
  const ownRedis = async (args: string[]) => {
    if (!hasRedisServer()) {
      console.warn('[redis test] skipped: redis-server binary not found');
      return undefined;
    }
    const server = await spawnRedisServer(args);
    const c = new Redis(server.url);
    return {
      c,
      stop() {
        c.disconnect();
        server.stop();
      },
    };
  };

  it('calls an evicting policy an error, naming the setting', async () => {
    const r = await ownRedis(['--appendonly', 'yes', '--maxmemory-policy', 'allkeys-lru']);
    if (!r) return;
    try {
      const d = await redisDurability(r.c);
      expect(d.errors).toEqual([expect.stringMatching(/maxmemory-policy is allkeys-lru.*set noeviction/)]);
      expect(d.appendonly).toBe(true);
      expect(d.warnings).toEqual([]);
    } finally {
      r.stop();
    }
  });

  it('says what it could not check on a Redis that refuses CONFIG (as managed services do)', async () => {
    const r = await ownRedis(['--rename-command', 'CONFIG', '']);
    if (!r) return;
    try {
      const d = await redisDurability(r.c);
      expect(d.errors).toEqual([]);
      expect(d.version).toMatch(/^\d+\./);
      expect(d.warnings).toEqual([
        expect.stringMatching(/CONFIG GET refused.*check maxmemory-policy noeviction/),
      ]);
    } finally {
      r.stop();
    }
  });
});

describe('closeRedisClient', () => {
  it('quits a healthy client at once, and cuts one Redis no longer answers after the wait', async (ctx) => {
    const ep = await testRedis();
    if (ep.embedded) {
      console.warn('[redis test] skipped: the proxy needs a real Redis on TCP, not the embedded one');
      await ep.close();
      ctx.skip();
    }
    const proxy = await silentRedisProxy(ep.url);
    try {
      const healthy = new Redis(proxy.url);
      await healthy.ping();
      let t0 = Date.now();
      await closeRedisClient(healthy, 5_000);
      expect(Date.now() - t0).toBeLessThan(2_000);
      await until(async () => healthy.status === 'end', 1_000);

      // a subscriber with an UNSUBSCRIBE written and never answered: QUIT alone would wait for ever
      const cutOff = new Redis(proxy.url, { maxRetriesPerRequest: null });
      cutOff.on('error', () => {});
      await cutOff.subscribe('xh-close-test');
      proxy.cut();
      void cutOff.unsubscribe().catch(() => {});
      t0 = Date.now();
      const closed = await Promise.race([
        closeRedisClient(cutOff, 300).then(() => Date.now() - t0),
        new Promise<'hung'>((r) => setTimeout(() => r('hung'), 5_000)),
      ]);
      expect(closed).not.toBe('hung');
      expect(closed).toBeGreaterThanOrEqual(290);
      await until(async () => cutOff.status === 'end', 1_000);
    } finally {
      await proxy.close();
      await ep.close();
    }
  });
});
