import type { HedgeIntent } from '@xhedge/core';
import { FlowProducer, type Job, Worker } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientOrderIdFor } from './ids.ts';
import { keysFor } from './keys.ts';
import { ORDER_JOB_OPTIONS, orderQueueName } from './queue.ts';
import { Reconciler } from './reconciler.ts';
import { ExecutionService } from './service.ts';
import { type Env, failedJob, makeEnv, until } from './test-env.ts';

/**
 * Adds `leg`'s order job on venue pv behind a "transfer" child in `transferQueue` that fails the hedge
 * when it fails (the runtime's transfer-then-hedge flow, without its transfer worker).
 */
function addBehindTransfer(
  flows: FlowProducer,
  leg: HedgeIntent,
  transferQueue: string,
  transferOpts: { attempts?: number } = {},
) {
  return flows.add({
    name: 'order',
    queueName: orderQueueName('pv'),
    data: { intent: leg, clientOrderId: clientOrderIdFor(leg.id) },
    opts: { ...ORDER_JOB_OPTIONS, jobId: leg.id },
    children: [
      {
        name: 'transfer',
        queueName: transferQueue,
        data: {},
        opts: { ...transferOpts, failParentOnFailure: true, jobId: `xfer-${leg.id}` },
      },
    ],
  });
}

describe('reconciler and flows whose child failed', () => {
  let env: Env;
  beforeAll(async () => {
    env = await makeEnv();
  });
  afterAll(async () => {
    await env?.close();
  });

  /**
   * A hedge recorded `queued` behind a collateral "transfer" child that fails for good in its own queue,
   * with no hook touching the ledger (as a stalled transfer worker would): once the parent hedge job has
   * failed through failParentOnFailure, `run` gets it. The transfer worker and the flow producer close
   * after `run`.
   */
  async function withFailedTransferHedge(
    n: number,
    run: (h: { leg: HedgeIntent; cid: string; job: Job }) => Promise<void>,
  ): Promise<void> {
    const leg = env.intent(n);
    const cid = clientOrderIdFor(leg.id);
    await env.ledger.recordIntent(leg, { clientOrderId: cid, actor: 'test' });
    const childQueue = `xfer-test-${n}`;
    const transfers = new Worker(
      childQueue,
      async () => {
        throw new Error('bridge lost the message');
      },
      { connection: env.redis.options, prefix: env.prefix },
    );
    const flows = new FlowProducer({ connection: env.redis.options, prefix: env.prefix });
    try {
      await addBehindTransfer(flows, leg, childQueue, { attempts: 1 });
      await env.ledger.transition(cid, 'queued', { actor: 'test' });
      const job = await failedJob(env.service.queue('pv'), leg.id, 20_000);
      await run({ leg, cid, job });
    } finally {
      await transfers.close();
      await flows.close();
    }
  }
  const sweeper = () =>
    new Reconciler({
      service: env.service,
      ledger: env.ledger,
      redis: env.cmd,
      prefix: env.prefix,
      minAgeMs: 0,
    });

  it('cancels a queued hedge whose collateral child job failed, and never re-drives or sends it', async () => {
    await withFailedTransferHedge(1, async ({ cid, job }) => {
      expect((await job.getDependenciesCount({ failed: true })).failed).toBe(1);
      expect((await env.ledger.getOrder(cid))?.status).toBe('queued');

      const rec = sweeper();
      const res = await rec.sweep();
      expect(res).toMatchObject({ redriven: 0, cancelled: 1 });
      const o = await env.ledger.getOrder(cid);
      expect(o?.status).toBe('cancelled');
      expect(o?.error).toMatch(/depends on failed/);
      // A second sweep finds nothing open, the job stays failed and the venue never saw the order.
      expect((await rec.sweep()).redriven).toBe(0);
      expect(await job.getState()).toBe('failed');
      expect(env.placed).not.toContain(cid);
    });
  });

  it('decides nothing for such a hedge while Redis has lost its control state: no cancel, no retry', async () => {
    await withFailedTransferHedge(2, async ({ cid, job }) => {
      // a Redis that lost some of its last writes (the job survived): the control state is not restored
      await env.cmd.del(keysFor(env.prefix).controlState);
      try {
        // cancelUnsent refuses there; that refusal is not a run holding the claim, so no retry either
        expect(await sweeper().sweep()).toMatchObject({ examined: 1, redriven: 0, cancelled: 0 });
        expect(await job.getState()).toBe('failed');
        expect((await env.ledger.getOrder(cid))?.status).toBe('queued');
        expect(await env.cmd.get(keysFor(env.prefix).sendClaim(cid))).toBeNull();
      } finally {
        await env.restoreControlState();
      }
    });
  });
});

// A producer that crashed in `submitPlan` after the ledger recorded the plan's legs `queued` and before it
// added their jobs: the legs are orphans. Re-driven as plain jobs they would skip the plan's own checks
// (net delta) and their flow; their plan is stale by now, so the reconciler cancels them unsent.
describe('reconciler and orders with no job', () => {
  let env: Env;
  beforeAll(async () => {
    env = await makeEnv();
  });
  afterAll(async () => {
    await env?.close();
  });

  const reconciler = (orphanGraceMs: number) =>
    new Reconciler({
      service: env.service,
      ledger: env.ledger,
      redis: env.cmd,
      prefix: env.prefix,
      minAgeMs: 0,
      orphanGraceMs,
    });

  /**
   * The plan's legs as a crashed `submitPlan` leaves them: `queued`, no job, and (`reserved`, for legs
   * fresh enough to pass the gates) their reservations taken.
   */
  const crashedPlan = async (legs: HedgeIntent[], o: { reserved: boolean }) => {
    await env.ledger.recordPlan(
      legs.map((l) => ({ intent: l, clientOrderId: clientOrderIdFor(l.id), status: 'queued' as const })),
      { actor: 'test' },
    );
    if (o.reserved)
      for (const l of legs) expect(await env.service.preQueueCheck(l)).toMatchObject({ ok: true });
  };
  const jobOf = (l: HedgeIntent) => env.service.queue('pv').getJob(l.id);

  it('cancels the legs of a plan whose jobs were never added (a dependent one too), and queues nothing', async () => {
    const a = env.intent(1);
    const b = env.intent(2, { planId: a.planId, dependsOn: [a.id] });
    await crashedPlan([a, b], { reserved: true });

    const res = await reconciler(0).sweep();
    expect(res).toMatchObject({ examined: 2, redriven: 0, cancelled: 2 });
    for (const l of [a, b]) {
      const o = await env.ledger.getOrder(clientOrderIdFor(l.id));
      expect(o?.status).toBe('cancelled');
      expect(o?.error).toMatch(/^orphaned: queued for \d+ ms with no job/);
      expect(await jobOf(l)).toBeUndefined();
      // its reservation is given back, and no run can send it later (claimed as blocked)
      expect(await env.cmd.hget(keysFor(env.prefix).ctlNotional, l.id)).toBeNull();
      expect(await env.cmd.get(keysFor(env.prefix).sendClaim(clientOrderIdFor(l.id)))).toMatch(/^blocked\|/);
    }
    expect((await reconciler(0).sweep()).examined).toBe(0);
    expect(env.placed).not.toContain(clientOrderIdFor(a.id));
    expect(env.placed).not.toContain(clientOrderIdFor(b.id));
  });

  it('a failed job whose data this release cannot read (an incompatible release wrote it) is made again from the ledger, not retried for ever', async () => {
    const f = env.intent(91);
    await crashedPlan([f], { reserved: false });
    const cid = clientOrderIdFor(f.id);
    // as an incompatible producer would write it: the intent under another name
    await env.service
      .queue('pv')
      .add('order', { hedgeIntent: f, clientOrderId: cid } as never, { jobId: f.id });
    const failed = await until(async () =>
      (await (await jobOf(f))?.getState()) === 'failed' ? true : undefined,
    );
    expect(failed).toBe(true);
    expect((await jobOf(f))?.failedReason).toMatch(/not sent$/);
    expect(await reconciler(60_000).sweep()).toMatchObject({ redriven: 1 });
    const o = await until(async () => {
      const x = await env.ledger.getOrder(cid);
      return x?.status === 'filled' ? x : undefined;
    });
    expect(o.status).toBe('filled');
    expect(env.placed.filter((c) => c === cid)).toHaveLength(1);
  });

  it('leaves an orphan alone within the grace (its producer may still be adding the job)', async () => {
    const c = env.intent(3);
    await crashedPlan([c], { reserved: true });
    expect(await reconciler(60_000).sweep()).toMatchObject({ redriven: 0, cancelled: 0 });
    expect((await env.ledger.getOrder(clientOrderIdFor(c.id)))?.status).toBe('queued');
    expect(await jobOf(c)).toBeUndefined();
    await env.service.cancelUnsent(clientOrderIdFor(c.id), { actor: 'test', error: 'cleanup' });
  });

  it('re-drives an orphan a run holds the send claim of (it may be out): its run asks the venue first', async () => {
    // planned long ago: after the send deadline its run finds it not at the venue and may not re-send it
    const d = env.intent(4, { createdAtMs: Date.now() - 120_000 });
    await crashedPlan([d], { reserved: false });
    const cid = clientOrderIdFor(d.id);
    await env.cmd.set(keysFor(env.prefix).sendClaim(cid), `send|${Date.now()}|worker:gone`);
    expect(await reconciler(0).sweep()).toMatchObject({ redriven: 1, cancelled: 0 });
    expect(await jobOf(d)).toBeDefined();
    const o = await until(async () => {
      const x = await env.ledger.getOrder(cid);
      return x?.status === 'cancelled' ? x : undefined;
    });
    expect(o.error).toMatch(/stale-data.*not re-sent; the venue never had it/);
    expect(env.placed).not.toContain(cid);
  });

  it('cancels no orphan while Redis has lost its control state; after the restore claimed it, re-drives it', async () => {
    const e = env.intent(5, { createdAtMs: Date.now() - 120_000 });
    await crashedPlan([e], { reserved: false });
    const cid = clientOrderIdFor(e.id);
    // a Redis that lost its data: the control state (and any send claim) is gone
    await env.cmd.del(keysFor(env.prefix).controlState);
    expect(await reconciler(0).sweep()).toMatchObject({ redriven: 0, cancelled: 0 });
    expect((await env.ledger.getOrder(cid))?.status).toBe('queued');
    expect(await env.cmd.get(keysFor(env.prefix).sendClaim(cid))).toBeNull();
    const restored = await env.restoreControlState();
    expect(restored.sendClaims).toContain(cid);
    expect(await reconciler(0).sweep()).toMatchObject({ redriven: 1, cancelled: 0 });
    expect(await jobOf(e)).toBeDefined();
  });

  describe('a producer slower than the grace', () => {
    const graceMs = 400;
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    /**
     * Another producer process, marking its orders after 50 ms with marks that last 300 ms unrenewed
     * (a tenth and under the grace): `slowContextMs` delays its gates' market-data read.
     */
    const producer = (slowContextMs = 0, maxHoldMs?: number) =>
      new ExecutionService({
        connection: env.redis.options,
        queuePrefix: env.prefix,
        ledger: env.ledger,
        controls: env.controls,
        breakers: env.breakers,
        killSwitch: env.killSwitch,
        marketData: {
          context: async () => {
            await sleep(slowContextMs);
            return {};
          },
        },
        producerMarkAfterMs: 50,
        producerMarkTtlMs: 300,
        ...(maxHoldMs !== undefined ? { producerMarkMaxMs: maxHoldMs } : {}),
      });

    it('leaves a leg behind a collateral transfer alone while its live producer works past the grace', async () => {
      const p = producer();
      const flows = new FlowProducer({ connection: env.redis.options, prefix: env.prefix });
      const leg = env.intent(6);
      const cid = clientOrderIdFor(leg.id);
      try {
        // as the runtime's transfer flows do: the intent `planned`, its check, then the flow and `queued`
        await p.producing([cid], async () => {
          await env.ledger.recordIntent(leg, { clientOrderId: cid, actor: 'test' });
          expect(await p.preQueueCheck(leg)).toMatchObject({ ok: true });
          // the producer takes 2.5 graces (and 3 unrenewed mark lives) before its add; sweeps meanwhile
          // (the sweeps' counts include orders of the tests before: this one's status is what counts)
          for (let i = 0; i < 4; i++) {
            await sleep(graceMs / 4 + 150);
            await reconciler(graceMs).sweep();
            expect((await env.ledger.getOrder(cid))?.status).toBe('planned');
          }
          expect(await jobOf(leg)).toBeUndefined();
          // a transfer no worker takes in this test: the hedge waits for it
          await addBehindTransfer(flows, leg, 'xfer-slow-producer');
          await env.ledger.transition(cid, 'queued', { actor: 'test' });
        });
        // the mark is gone with the work; the hedge waits for its transfer, uncancelled
        expect(await env.cmd.exists(keysFor(env.prefix).producing(cid))).toBe(0);
        await reconciler(graceMs).sweep();
        expect((await env.ledger.getOrder(cid))?.status).toBe('queued');
        expect(await (await jobOf(leg))?.getState()).toBe('waiting-children');
      } finally {
        await env.service.cancelUnsent(cid, { actor: 'test', error: 'cleanup' });
        await flows.close();
        await p.close();
      }
    });

    it("does not cancel a plan's leg while submitPlan waits on gates slower than the grace", async () => {
      const p = producer(3 * graceMs);
      const leg = env.intent(7);
      const cid = clientOrderIdFor(leg.id);
      try {
        const submitted = p.submitPlan({ planId: leg.planId, legs: [leg] });
        // recorded `queued` at once, its job added only once the gates answered
        await until(async () => (await env.ledger.getOrder(cid))?.status === 'queued', 5_000, 10);
        await sleep(graceMs + 100);
        expect(await jobOf(leg)).toBeUndefined();
        await reconciler(graceMs).sweep();
        expect((await env.ledger.getOrder(cid))?.status).toBe('queued');
        expect((await submitted).map((r) => r.outcome)).toEqual(['queued']);
        expect(await env.cmd.exists(keysFor(env.prefix).producing(cid))).toBe(0);
        const o = await until(async () => {
          const x = await env.ledger.getOrder(cid);
          return x && ['filled', 'cancelled', 'failed', 'rejected'].includes(x.status) ? x : undefined;
        });
        expect(o.status).toBe('filled');
        expect(env.placed).toContain(cid);
      } finally {
        await p.close();
      }
    });

    it('stops marking a hung producer after producerMarkMaxMs: its orphan is cancelled, not counted in flight for ever', async () => {
      const p = producer(0, 1000);
      const leg = env.intent(9);
      const cid = clientOrderIdFor(leg.id);
      let unhang: () => void = () => {};
      const hung = new Promise<void>((r) => {
        unhang = r;
      });
      try {
        const work = p.producing([cid], async () => {
          await env.ledger.recordIntent(leg, { clientOrderId: cid, actor: 'test' });
          await hung; // a call that never answers
        });
        await until(async () => (await env.cmd.exists(keysFor(env.prefix).producing(cid))) === 1, 5_000, 10);
        await sleep(graceMs);
        await reconciler(graceMs).sweep();
        expect((await env.ledger.getOrder(cid))?.status).toBe('planned'); // still marked, still at work
        // past the cap the marks are not renewed: they lapse within their TTL and the orphan goes
        await until(async () => (await env.cmd.exists(keysFor(env.prefix).producing(cid))) === 0, 5_000, 20);
        await reconciler(graceMs).sweep();
        const o = await env.ledger.getOrder(cid);
        expect(o?.status).toBe('cancelled');
        expect(o?.error).toMatch(/^orphaned: planned/);
        unhang();
        await work;
      } finally {
        unhang();
        await p.close();
      }
    });

    it('cancels the orphan once the mark of its dead producer lapsed', async () => {
      const f = env.intent(8);
      await crashedPlan([f], { reserved: true });
      const cid = clientOrderIdFor(f.id);
      // what a producer killed mid-work leaves behind: its last mark, never renewed nor dropped
      await env.cmd.set(keysFor(env.prefix).producing(cid), 'orchestrator|dead', 'PX', 300);
      await reconciler(0).sweep();
      expect((await env.ledger.getOrder(cid))?.status).toBe('queued');
      await until(async () => (await env.cmd.exists(keysFor(env.prefix).producing(cid))) === 0, 5_000);
      await reconciler(0).sweep();
      const o = await env.ledger.getOrder(cid);
      expect(o?.status).toBe('cancelled');
      expect(o?.error).toMatch(/^orphaned: queued/);
      expect(await jobOf(f)).toBeUndefined();
      expect(env.placed).not.toContain(cid);
    });
  });
});
