import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LeaderLease } from './lease.ts';
import { Orchestrator } from './orchestrator.ts';
import type { ExecutionService } from './service.ts';
import { testRedis } from './test-env.ts';

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
});
