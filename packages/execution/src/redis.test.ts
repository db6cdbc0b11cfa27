import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { redisDurability } from './redis.ts';
import { testRedis } from './test-env.ts';
import { hasRedisServer, spawnRedisServer } from './testing.ts';

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
