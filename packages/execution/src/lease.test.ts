import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keysFor } from './keys.ts';
import { LeaderLease } from './lease.ts';
import { gate, heldAcquire, testRedis } from './test-env.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('leader lease: stop while a step is in flight', () => {
  let redisEp: Awaited<ReturnType<typeof testRedis>>;
  let cmd: Redis;
  const prefix = `xhlease${randomBytes(3).toString('hex')}`;
  beforeAll(async () => {
    redisEp = await testRedis();
    cmd = redisEp.client();
  });
  afterAll(async () => {
    const keys = await cmd.keys(`${prefix}:*`);
    if (keys.length) await cmd.del(...keys);
    cmd.disconnect();
    await redisEp.close();
  });

  it('an acquisition answering after stop() leaves no token, no timer, and no key: a standby takes over at once', async () => {
    const name = 'acq';
    const key = keysFor(prefix).lease(name);
    const held = heldAcquire(cmd);
    held.arm();
    const ttlMs = 5_000; // a standby that had to wait for it would be seen
    const a = new LeaderLease({ redis: held.redis, prefix, name, holderId: 'a', ttlMs, renewEveryMs: 50 });
    const changes: boolean[] = [];
    a.start((leader) => changes.push(leader));
    await held.sent;
    // ACQUIRE ran in Redis (the key is a's), its answer has not reached a yet
    expect(await cmd.get(key)).toMatch(/^a\|\d+$/);
    const stopping = a.stop();
    await sleep(20);
    held.reply.open();
    await stopping;
    expect(a.isLeader).toBe(false);
    expect(a.token).toBeUndefined();
    expect(changes).toEqual([]); // never announced as leader
    expect(await cmd.get(key)).toBeNull();
    const b = new LeaderLease({ redis: cmd, prefix, name, holderId: 'b', ttlMs });
    expect(await b.tick()).toBeGreaterThan(0);
    // no timer of a runs on: a stays out, b's lease stays b's
    await sleep(200);
    expect(a.isLeader).toBe(false);
    expect(await cmd.get(key)).toMatch(/^b\|/);
    await b.stop();
  });

  it('stopped while its token floor is read: no acquisition is made', async () => {
    const name = 'floor';
    const key = keysFor(prefix).lease(name);
    const floorRead = gate();
    const floorAnswer = gate();
    const a = new LeaderLease({
      redis: cmd,
      prefix,
      name,
      ttlMs: 5_000,
      tokenFloor: async () => {
        floorRead.open();
        await floorAnswer.wait();
        return 0;
      },
    });
    a.start();
    await floorRead.wait();
    await a.stop();
    floorAnswer.open();
    await sleep(100);
    expect(a.isLeader).toBe(false);
    expect(await cmd.get(key)).toBeNull();
  });

  it('stop, then start again, while the old step is in flight: one loop, and a later stop ends it', async () => {
    const name = 'restart';
    const key = keysFor(prefix).lease(name);
    const held = heldAcquire(cmd);
    held.arm();
    const a = new LeaderLease({ redis: held.redis, prefix, name, ttlMs: 600, renewEveryMs: 30 });
    a.start();
    await held.sent;
    // the stop waits for the step in flight; a start comes before it ends (as a caller not awaiting it)
    const stopping = a.stop();
    a.start();
    held.reply.open();
    await stopping;
    await sleep(100);
    expect(a.isLeader).toBe(true); // the new loop took the lease
    await a.stop();
    expect(await cmd.get(key)).toBeNull();
    // no loop left behind to take it again
    await sleep(200);
    expect(a.isLeader).toBe(false);
    expect(await cmd.get(key)).toBeNull();
  });

  it('an acquisition whose reply was lost is taken up again by the next step, with its token', async () => {
    const name = 'lost';
    const key = keysFor(prefix).lease(name);
    let lose = true;
    // the first ACQUIRE runs in Redis, then its reply is lost (as a timeout or a dropped connection)
    const redis = new Proxy(cmd, {
      get(target, prop, recv) {
        const val = Reflect.get(target, prop, recv);
        if (prop === 'eval' && typeof val === 'function')
          return async (...args: unknown[]) => {
            const res = await val.apply(target, args);
            if (lose && typeof args[0] === 'string' && args[0].includes("'NX', 'PX'")) {
              lose = false;
              throw new Error('Command timed out');
            }
            return res;
          };
        return typeof val === 'function' ? val.bind(target) : val;
      },
    });
    const ttlMs = 5_000; // waiting it out would be seen
    const a = new LeaderLease({ redis, prefix, name, holderId: 'a', ttlMs });
    const b = new LeaderLease({ redis: cmd, prefix, name, holderId: 'b', ttlMs });
    expect(await a.tick()).toBeUndefined();
    const value = await cmd.get(key);
    expect(value).toMatch(/^a\|\d+$/);
    const token = Number(value?.split('|')[1]);
    // the next step finds the lease its own and holds it (before: not the leader, standby locked out)
    expect(await a.tick()).toBe(token);
    expect(a.isLeader).toBe(true);
    expect(await a.assertHeld()).toBe(token);
    expect(await b.tick()).toBeUndefined();
    await a.stop();
    expect(await cmd.get(key)).toBeNull();
    expect(await b.tick()).toBe(token + 1);
    await b.stop();
  });

  it('a lease of ours with a token the ledger has passed is not taken up: a fresh token is handed out', async () => {
    const name = 'stale';
    const key = keysFor(prefix).lease(name);
    await cmd.set(key, 'a|3', 'PX', 5_000);
    const a = new LeaderLease({ redis: cmd, prefix, name, holderId: 'a', tokenFloor: async () => 7 });
    expect(await a.tick()).toBe(8);
    expect(await cmd.get(key)).toBe('a|8');
    await a.stop();
  });
});
