import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LeaderLease, NotLeaderError } from './lease.ts';
import { Orchestrator, TickOverrunError } from './orchestrator.ts';
import type { ExecutionService } from './service.ts';
import { heldAcquire, makeEnv, testRedis, until } from './test-env.ts';

/**
 * A leader on `lease` (watchdog at 300 ms) whose every tick hangs like a venue read that never answers,
 * until `unhang()`; `ticksA()` counts its ticks.
 */
function hangingLeader(lease: LeaderLease, onError: (e: unknown) => void) {
  let ticks = 0;
  let release: () => void = () => {};
  const a = new Orchestrator({
    lease,
    service: {} as ExecutionService,
    intervalMs: 10,
    tickTimeoutMs: 300,
    plan: async () => {
      ticks++;
      await new Promise<void>((r) => {
        release = r;
      });
      return [];
    },
    onError,
  });
  return { a, ticksA: () => ticks, unhang: () => release() };
}

/** An orchestrator on `lease` planning nothing, every 10 ms, that calls `onTick` at each tick. */
function countingStandby(lease: LeaderLease, onTick: () => void): Orchestrator {
  return new Orchestrator({
    lease,
    service: {} as ExecutionService,
    intervalMs: 10,
    plan: async () => {
      onTick();
      return [];
    },
  });
}

describe('orchestrator', () => {
  let redis: Awaited<ReturnType<typeof testRedis>>;
  beforeAll(async () => {
    redis = await testRedis();
  });
  afterAll(async () => {
    await redis.close();
  });

  it('stop() waits for the tick under way, then releases the lease (no tick uses closed connections)', async () => {
    const cmd = redis.client();
    const prefix = `xhorch${randomBytes(3).toString('hex')}`;
    const lease = new LeaderLease({ redis: cmd, prefix, name: 'orchestrator', ttlMs: 5000 });
    let release: () => void = () => {};
    let entered: () => void = () => {};
    const inTick = new Promise<void>((r) => {
      entered = r;
    });
    let ticks = 0;
    let finished = 0;
    const errors: unknown[] = [];
    const orch = new Orchestrator({
      lease,
      service: {} as ExecutionService, // no plans: submitPlan is never called
      intervalMs: 10,
      plan: async () => {
        ticks++;
        entered();
        await new Promise<void>((r) => {
          release = r;
        });
        // what a real tick does last: a Redis call (it would fail if stop had closed the client)
        await cmd.ping();
        finished++;
        return [];
      },
      onError: (e) => errors.push(e),
    });
    try {
      orch.start();
      // the lease is taken on start's first renewal round; the tick runs once it is held
      for (let i = 0; i < 200 && !lease.isLeader; i++) await new Promise((r) => setTimeout(r, 10));
      expect(lease.isLeader).toBe(true);
      await inTick;
      let stopped = false;
      const stopping = orch.stop().then(() => {
        stopped = true;
      });
      await new Promise((r) => setTimeout(r, 50));
      expect(stopped).toBe(false); // still waiting for the tick
      expect(lease.isLeader).toBe(true);
      release();
      await stopping;
      expect(finished).toBe(1);
      expect(ticks).toBe(1); // no tick started after stop
      expect(lease.isLeader).toBe(false);
      expect(await cmd.get(`${prefix}:lease:orchestrator`)).toBeNull();
      expect(errors).toEqual([]);
    } finally {
      cmd.disconnect();
    }
  });

  it('asks its interval after every tick: a period changed at run time takes effect from the next pause', async () => {
    const cmd = redis.client();
    const prefix = `xhorch${randomBytes(3).toString('hex')}`;
    const lease = new LeaderLease({ redis: cmd, prefix, name: 'orchestrator', ttlMs: 5000 });
    let periodMs = 10;
    const tickAt: number[] = [];
    const asked: number[] = [];
    const orch = new Orchestrator({
      lease,
      service: {} as ExecutionService,
      intervalMs: () => {
        asked.push(periodMs);
        return periodMs;
      },
      plan: async () => {
        tickAt.push(performance.now());
        periodMs = 60_000; // the operator lengthens the period during the first tick
        return [];
      },
    });
    try {
      orch.start();
      for (let i = 0; i < 300 && tickAt.length < 1; i++) await new Promise((r) => setTimeout(r, 10));
      expect(tickAt.length).toBe(1);
      await new Promise((r) => setTimeout(r, 300));
      // the pause after the first tick is the new period: no second tick at the old 10 ms
      expect(tickAt.length).toBe(1);
      expect(asked.at(-1)).toBe(60_000);
    } finally {
      await orch.stop();
      cmd.disconnect();
    }
  });
  it('a hung tick: the leader steps down past tickTimeoutMs, a standby plans, and stop does not hang on it', async () => {
    const cmd = redis.client();
    const prefix = `xhorch${randomBytes(3).toString('hex')}`;
    const leaseOf = (holderId: string) =>
      new LeaderLease({ redis: cmd, prefix, name: 'orchestrator', holderId, ttlMs: 600 });
    const leaseA = leaseOf('a');
    const leaseB = leaseOf('b');
    const errorsA: unknown[] = [];
    let ticksB = 0;
    const { a, ticksA, unhang } = hangingLeader(leaseA, (e) => errorsA.push(e));
    const b = countingStandby(leaseB, () => ticksB++);
    try {
      a.start();
      await until(async () => ticksA() === 1, 2000, 10);
      b.start(); // the standby: A holds the lease, B plans nothing
      await new Promise((r) => setTimeout(r, 150));
      expect(ticksB).toBe(0);
      // past the watchdog A steps down and B takes over while A's tick still hangs
      await until(async () => ticksB > 0, 3000, 10);
      expect(errorsA.some((e) => e instanceof TickOverrunError)).toBe(true);
      expect(leaseA.isLeader).toBe(false);
      expect(ticksA()).toBe(1); // no tick overlapping the hung one
      // the hung tick ends: A campaigns again, but B holds the lease now
      unhang();
      await new Promise((r) => setTimeout(r, 400));
      expect(leaseB.isLeader).toBe(true);
      expect(leaseA.isLeader).toBe(false);
      expect(ticksA()).toBe(1);
      // B dies (releases): A, campaigning again, takes over and plans
      await b.stop();
      await until(async () => ticksA() > 1, 3000, 10);
      // a stop while a tick hangs returns at the watchdog's deadline, not never
      const t0 = performance.now();
      await a.stop();
      expect(performance.now() - t0).toBeLessThan(2000);
      expect(await cmd.get(`${prefix}:lease:orchestrator`)).toBeNull();
    } finally {
      unhang();
      await a.stop();
      await b.stop();
      cmd.disconnect();
    }
  });

  it('a step-down while the lease re-acquisition is in flight: the key is given back at once, not held a TTL', async () => {
    const cmd = redis.client();
    const prefix = `xhorch${randomBytes(3).toString('hex')}`;
    const key = `${prefix}:lease:orchestrator`;
    const held = heldAcquire(cmd);
    // a long TTL: a standby made to wait for it would be seen
    const leaseA = new LeaderLease({
      redis: held.redis,
      prefix,
      name: 'orchestrator',
      holderId: 'a',
      ttlMs: 5_000,
      renewEveryMs: 30,
    });
    const leaseB = new LeaderLease({
      redis: cmd,
      prefix,
      name: 'orchestrator',
      holderId: 'b',
      ttlMs: 5_000,
      renewEveryMs: 30,
    });
    let overran = false;
    let ticksB = 0;
    const { a, ticksA, unhang } = hangingLeader(leaseA, (e) => {
      if (e instanceof TickOverrunError) overran = true;
    });
    const b = countingStandby(leaseB, () => ticksB++);
    try {
      a.start();
      await until(async () => ticksA() === 1, 2000, 10);
      // while the tick hangs, a's lease lapses (a stall): its renewal fails and it campaigns again; the
      // re-acquisition lands in Redis, its answer is still on the way when the watchdog steps a down
      held.arm();
      await cmd.del(key);
      await held.sent;
      await until(async () => overran, 2000, 10);
      await new Promise((r) => setTimeout(r, 20));
      held.reply.open();
      b.start();
      // the standby takes over at once, not a TTL later
      await until(async () => ticksB > 0, 1500, 10);
      expect(leaseA.isLeader).toBe(false);
      expect(await cmd.get(key)).toMatch(/^b#/);
      expect(ticksA()).toBe(1);
    } finally {
      unhang();
      await a.stop();
      await b.stop();
      cmd.disconnect();
    }
  });

  it('stop then start while a tick hangs: no overrun reported after stop, no tick overlaps the hung one, one loop after it', async () => {
    const cmd = redis.client();
    const prefix = `xhorch${randomBytes(3).toString('hex')}`;
    const lease = new LeaderLease({ redis: cmd, prefix, name: 'orchestrator', ttlMs: 600 });
    let unhang: () => void = () => {};
    const hung = new Promise<void>((r) => {
      unhang = r;
    });
    const errors: unknown[] = [];
    let ticks = 0;
    let active = 0;
    let maxActive = 0;
    const orch = new Orchestrator({
      lease,
      service: {} as ExecutionService,
      intervalMs: 5,
      tickTimeoutMs: 300,
      plan: async () => {
        ticks++;
        active++;
        maxActive = Math.max(maxActive, active);
        if (ticks === 1) await hung;
        else await new Promise((r) => setTimeout(r, 2));
        active--;
        return [];
      },
      onError: (e) => errors.push(e),
    });
    try {
      orch.start();
      for (let i = 0; i < 200 && ticks < 1; i++) await new Promise((r) => setTimeout(r, 10));
      expect(ticks).toBe(1);
      await orch.stop(); // returns at the watchdog's deadline
      orch.start();
      await new Promise((r) => setTimeout(r, 500));
      expect(ticks).toBe(1); // the restarted loop waits for the hung tick
      expect(errors.filter((e) => e instanceof TickOverrunError)).toEqual([]);
      unhang();
      await new Promise((r) => setTimeout(r, 400));
      expect(ticks).toBeGreaterThan(3);
      expect(maxActive).toBe(1);
    } finally {
      unhang();
      await orch.stop();
      cmd.disconnect();
    }
  });

  it('refuses a tickTimeoutMs that is not a whole number of ms', () => {
    const lease = {} as LeaderLease;
    const plan = async () => [];
    expect(
      () => new Orchestrator({ lease, service: {} as ExecutionService, plan, tickTimeoutMs: -1 }),
    ).toThrow(/tickTimeoutMs must be a whole number of ms/);
    expect(
      () => new Orchestrator({ lease, service: {} as ExecutionService, plan, tickTimeoutMs: Number.NaN }),
    ).toThrow(/got NaN/);
  });
});

describe('orchestrator: a tick submits under its own term only', () => {
  it('plans made under one token are refused once the same lease object holds another (another leader hedged between)', async () => {
    const env = await makeEnv({ venueKind: 'paper-spot-amm' });
    try {
      const lease = new LeaderLease({
        redis: env.cmd,
        prefix: env.prefix,
        name: 'orchestrator',
        ttlMs: 5000,
      });
      const t1 = await lease.tick();
      expect(t1).toBeGreaterThan(0);
      const leg = env.intent(1, { instrument: 'ETH-USDC:SPOT', chain: 'evm:1', sizeBase: '0.01' });
      const orch = new Orchestrator({
        lease,
        service: env.service,
        plan: async () => {
          // while this tick plans: the lease lapses, another leader's term comes and goes, and the same
          // lease object takes it again under a newer token
          await env.cmd.del(`${env.prefix}:lease:orchestrator`);
          const other = new LeaderLease({
            redis: env.cmd,
            prefix: env.prefix,
            name: 'orchestrator',
            ttlMs: 5000,
          });
          await other.tick();
          await other.stop();
          // a renewal finds the key gone (the token is dropped), the next step acquires a new one
          for (let i = 0; i < 3 && (lease.token === undefined || lease.token === t1); i++) await lease.tick();
          return [{ planId: leg.planId, legs: [leg] }];
        },
      });
      const err = await orch.tick().catch((e: unknown) => e);
      expect(lease.token).toBeGreaterThan(t1 as number);
      expect(err).toBeInstanceOf(NotLeaderError);
      // nothing reached the ledger or the queue
      expect(await env.ledger.getOrderByIntent(leg.id)).toBeUndefined();
      expect(env.placed).toEqual([]);
      await lease.stop();
    } finally {
      await env.close();
    }
  });
});
