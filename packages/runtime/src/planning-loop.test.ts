import { randomBytes } from 'node:crypto';
import { LimitsConfig } from '@xhedge/config';
import { type HedgeIntent, ManualClock } from '@xhedge/core';
import {
  clientOrderIdFor,
  ExecutionService,
  LeaderLease,
  NotLeaderError,
  orderQueueName,
  type PlanLike,
  TickOverrunError,
} from '@xhedge/execution';
import { controlStack, machineRedisOrEmbedded } from '@xhedge/execution/testing';
import { FencedOutError, Ledger, openDatabase } from '@xhedge/store';
import { Queue } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { PlanningLoop, type PlanningLoopOptions } from './planning-loop.ts';

/** Waits until `ok()` holds, polling every 10 ms, for at most `ms` of wall time. */
async function until(ok: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  for (const end = Date.now() + ms; !(await ok()); ) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * What the planning loop runs on: the machine's Redis (a prefix of its own), a PGlite ledger, the
 * controls and a real execution service. `close` leaves nothing of the prefix behind.
 */
async function loopStack() {
  const redis = await machineRedisOrEmbedded('planning loop test');
  const cmd = redis.client();
  const prefix = `xhpl${randomBytes(4).toString('hex')}`;
  const ledger = new Ledger(await openDatabase());
  const clock = new ManualClock(Date.now());
  const { base } = await controlStack({
    redis,
    cmd,
    prefix,
    ledger,
    limits: LimitsConfig.parse({ maxOrderNotionalUsd: 1e6, maxHedgeNotionalPerWindowUsd: 1e8 }),
    clock,
  });
  const service = new ExecutionService(base);
  const newLease = (ttlMs = 5000) =>
    new LeaderLease({
      redis: cmd,
      prefix,
      name: 'orchestrator',
      ttlMs,
      tokenFloor: () => ledger.fencingToken('orchestrator'),
    });
  const loops: PlanningLoop[] = [];
  const errors: unknown[] = [];
  /** A loop as the run builds it: a new lease per life, the ledger fenced at each new token. */
  const loop = (o: Partial<PlanningLoopOptions> & Pick<PlanningLoopOptions, 'plan'>) => {
    const l = new PlanningLoop({
      lease: () => newLease(),
      service,
      fence: (token) => ledger.advanceFencing('orchestrator', token),
      intervalMs: 10,
      onError: (e) => errors.push(e),
      ...o,
    });
    loops.push(l);
    return l;
  };
  /** A 1 SOL buy on gmx-arb at 180, plan `plan_<n>`. */
  const plan = (n: string): PlanLike => {
    const leg: HedgeIntent = {
      id: `int_pl${n}`,
      planId: `plan_${n}`,
      underlying: 'SOL',
      venue: 'gmx-arb',
      chain: 'evm:42161',
      instrument: 'SOL-USD:PERP',
      side: 'buy',
      sizeBase: '1',
      orderType: 'market',
      referencePriceUsd: 180,
      reduceOnly: false,
      urgency: 'normal',
      reason: 'test',
      dependsOn: [],
      createdAtMs: clock.nowMs(),
    };
    return { planId: leg.planId, legs: [leg] };
  };
  const queued = async () => {
    const q = new Queue(orderQueueName('gmx-arb'), { connection: redis.options, prefix });
    try {
      return await q.getJobCountByTypes('waiting', 'waiting-children', 'prioritized', 'delayed', 'active');
    } finally {
      await q.close();
    }
  };
  return {
    ledger,
    cmd,
    prefix,
    errors,
    loop,
    plan,
    queued,
    newLease,
    async close() {
      for (const l of loops) await l.stop();
      await service.close();
      const keys = await cmd.keys(`${prefix}:*`);
      if (keys.length > 0) await cmd.del(...keys);
      cmd.disconnect();
      await redis.close();
      await ledger.close();
    },
  };
}

describe('planning loop: a tick that never ends (regression: hedging stopped for good)', () => {
  it('contends again at once under a new lease; the hung tick, when it wakes, queues and records nothing', async () => {
    const st = await loopStack();
    try {
      const tokens: number[] = [];
      let wake: () => void = () => {};
      const asleep = new Promise<void>((r) => {
        wake = r;
      });
      const hung = st.plan('hung');
      st.loop({
        tickTimeoutMs: 300,
        plan: async ({ token }) => {
          tokens.push(token);
          // the first tick waits on a call that never answers (until the test wakes it)
          if (tokens.length === 1) {
            await asleep;
            return [hung];
          }
          return [];
        },
      }).start();
      // the watchdog fires after 300 ms, and ticks go on under a new term while the first never ends
      await until(() => tokens.length >= 3, 5000, 'ticks after the hung one');
      expect(st.errors.some((e) => e instanceof TickOverrunError)).toBe(true);
      const [first, second] = tokens as [number, number];
      expect(second).toBeGreaterThan(first);
      // the new term fenced the ledger before it planned (it planned nothing)
      expect(await st.ledger.fencingToken('orchestrator')).toBe(second);
      // the hung tick wakes and hands its plan to the orchestrator: refused, nothing queued or recorded
      wake();
      await until(() => st.errors.some((e) => e instanceof NotLeaderError), 5000, 'the refusal');
      expect(await st.ledger.getIntent(hung.legs[0]?.id as string)).toBeUndefined();
      expect(await st.ledger.getOrder(clientOrderIdFor(hung.legs[0]?.id as string))).toBeUndefined();
      expect(await st.queued()).toBe(0);
      // and planning still goes on, in the new term
      const n = tokens.length;
      await until(() => tokens.length > n + 2, 5000, 'more ticks');
      expect(new Set(tokens.slice(1))).toEqual(new Set([second]));
    } finally {
      await st.close();
    }
  }, 30_000);
});

describe('planning loop: a new term fences the ledger before it plans (regression: only a plan moved the fence)', () => {
  it('leader A holds token n; B takes the lease with n+1 and plans nothing; A’s late plan fenced with n is refused', async () => {
    const st = await loopStack();
    try {
      // A leads with token n (a lease of 300 ms that it stops renewing: paused mid-tick)
      const a = st.newLease(300);
      const n = (await a.tick()) as number;
      expect(n).toBeGreaterThan(0);
      await st.ledger.recordPlan(
        [{ intent: st.plan('a1').legs[0] as HedgeIntent, clientOrderId: 'xh-a1', status: 'queued' }],
        { actor: 'orchestrator:a', fence: { leaseName: 'orchestrator', token: n } },
      );
      await new Promise((r) => setTimeout(r, 400)); // A's lease lapses
      // B takes over and ticks, planning nothing
      const tokens: number[] = [];
      st.loop({
        plan: async ({ token }) => {
          tokens.push(token);
          return [];
        },
      }).start();
      await until(() => tokens.length >= 1, 5000, "B's first tick");
      expect(tokens[0]).toBe(n + 1);
      expect(await st.ledger.fencingToken('orchestrator')).toBe(n + 1);
      // A wakes and writes its plan with token n: refused, nothing recorded
      const late = st.plan('a2').legs[0] as HedgeIntent;
      await expect(
        st.ledger.recordPlan([{ intent: late, clientOrderId: 'xh-a2', status: 'queued' }], {
          actor: 'orchestrator:a',
          fence: { leaseName: 'orchestrator', token: n },
        }),
      ).rejects.toBeInstanceOf(FencedOutError);
      expect(await st.ledger.getIntent(late.id)).toBeUndefined();
    } finally {
      await st.close();
    }
  }, 30_000);

  it('plans nothing under a token the lease lost while its fence was written (review: an old token overtook the live tick)', async () => {
    const st = await loopStack();
    try {
      let lease: LeaderLease | undefined;
      const fenced: number[] = [];
      const planned: number[] = [];
      st.loop({
        lease: () => {
          lease = st.newLease();
          return lease;
        },
        fence: async (token) => {
          await st.ledger.advanceFencing('orchestrator', token);
          fenced.push(token);
          if (fenced.length > 1) return;
          // while the first fence was written: the lease lapsed and was taken again under a newer token
          await st.cmd.del(`${st.prefix}:lease:orchestrator`);
          for (let i = 0; i < 3 && (lease?.token === undefined || lease.token === token); i++)
            await lease?.tick();
        },
        plan: async ({ token }) => {
          planned.push(token);
          return [];
        },
      }).start();
      await until(() => planned.length >= 1, 5000, 'planning under the new token');
      expect(fenced.length).toBeGreaterThanOrEqual(2);
      expect(planned).not.toContain(fenced[0]);
      expect(planned[0]).toBe(fenced[1]);
    } finally {
      await st.close();
    }
  }, 30_000);

  it('plans nothing under a token the ledger has not taken; the fence is tried again at the next tick', async () => {
    const st = await loopStack();
    try {
      let failures = 2;
      const fenced: number[] = [];
      const planned: number[] = [];
      st.loop({
        fence: async (token) => {
          if (failures-- > 0) throw new Error('ledger unreachable');
          await st.ledger.advanceFencing('orchestrator', token);
          fenced.push(token);
        },
        plan: async ({ token }) => {
          // the fence of this token is in the ledger before anything is planned under it
          expect(await st.ledger.fencingToken('orchestrator')).toBe(token);
          planned.push(token);
          return [];
        },
      }).start();
      await until(() => planned.length >= 2, 5000, 'planning after the fence');
      expect(st.errors.map((e) => (e as Error).message)).toEqual([
        'ledger unreachable',
        'ledger unreachable',
      ]);
      expect(fenced).toEqual([planned[0]]);
    } finally {
      await st.close();
    }
  }, 30_000);
});
