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
    expect(await cmd.get(key)).toMatch(/^a#[0-9a-f]{8}\.0\|\d+$/);
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
    expect(await cmd.get(key)).toMatch(/^b#/);
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

  /** The real client, whose first ACQUIRE runs in Redis and then loses its reply (a timeout, a dropped connection). */
  const lostFirstAcquire = () => {
    let lose = true;
    return new Proxy(cmd, {
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
  };

  it('an acquisition whose reply was lost is taken up again by the next step, with its token', async () => {
    const name = 'lost';
    const key = keysFor(prefix).lease(name);
    const redis = lostFirstAcquire();
    const ttlMs = 5_000; // waiting it out would be seen
    const a = new LeaderLease({ redis, prefix, name, holderId: 'a', ttlMs });
    const b = new LeaderLease({ redis: cmd, prefix, name, holderId: 'b', ttlMs });
    expect(await a.tick()).toBeUndefined();
    const value = await cmd.get(key);
    expect(value).toMatch(/^a#[0-9a-f]{8}\.0\|\d+$/);
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
    let floor = 0;
    const a = new LeaderLease({
      redis: lostFirstAcquire(),
      prefix,
      name,
      holderId: 'a',
      tokenFloor: async () => floor,
    });
    expect(await a.tick()).toBeUndefined(); // ran, its reply lost: the key is a's
    const [owner, token] = String(await cmd.get(key)).split('|');
    floor = Number(token) + 5; // the ledger has seen a later token since (a Redis that lost its data)
    expect(await a.tick()).toBe(floor + 1);
    expect(await cmd.get(key)).toBe(`${owner}|${floor + 1}`);
    await a.stop();
  });

  it('a stopped step that lands after a restart of the loop never leaves a leader without its key (review: two leaders)', async () => {
    const name = 'race';
    const key = keysFor(prefix).lease(name);
    // ACQUIREs wait before they reach Redis (a connection down: ioredis queues them), then go in order
    const go = gate();
    let held = 2;
    const redis = new Proxy(cmd, {
      get(target, prop, recv) {
        const val = Reflect.get(target, prop, recv);
        if (prop === 'eval' && typeof val === 'function')
          return async (...args: unknown[]) => {
            if (held > 0 && typeof args[0] === 'string' && args[0].includes("'NX', 'PX'")) {
              held--;
              await go.wait();
            }
            return val.apply(target, args);
          };
        return typeof val === 'function' ? val.bind(target) : val;
      },
    });
    const ttlMs = 300;
    const a = new LeaderLease({ redis, prefix, name, holderId: 'a', ttlMs, renewEveryMs: 5_000 });
    a.start();
    await sleep(20);
    await a.stop(); // gives up waiting for the queued step after a TTL
    a.start(); // its first ACQUIRE queues behind the old one
    await sleep(20);
    go.open(); // both run: the old life's first, then the new one's
    await sleep(100);
    const value = await cmd.get(key);
    // never "leader" without its key in Redis (before: a leader while the old step deleted the key)
    if (a.isLeader) expect(String(value)).toMatch(new RegExp(`\\|${a.token}$`));
    const b = new LeaderLease({ redis: cmd, prefix, name, holderId: 'b', ttlMs });
    const bToken = await b.tick();
    expect(a.isLeader && bToken !== undefined).toBe(false);
    await a.stop();
    await b.stop();
  });
});
