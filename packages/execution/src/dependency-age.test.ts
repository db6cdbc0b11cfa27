import { FlowProducer, type Job, Worker } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientOrderIdFor } from './ids.ts';
import { ORDER_JOB_OPTIONS, orderQueueName } from './queue.ts';
import { type Env, makeEnv, until } from './test-env.ts';

/** What the collateral child returns in this test: when it was delivered (ms, the run's clock). */
async function deliveredAtMs(job: Job): Promise<number | undefined> {
  const times = Object.values(await job.getChildrenValues()).map((v) => (v as { atMs?: unknown }).atMs);
  const ok = times.filter((t): t is number => typeof t === 'number');
  return ok.length > 0 ? Math.max(...ok) : undefined;
}

describe('decision age of a leg that waited for its collateral (flow child)', () => {
  let env: Env;
  let useDelivery = true;
  /** The jobs the worker asked for their dependency times. */
  const asked: string[] = [];
  const childQueue = 'xfer-age-test';
  let transfers: Worker;
  let flows: FlowProducer;
  beforeAll(async () => {
    env = await makeEnv({
      limits: { staleAfterMs: 30_000 },
      workers: {
        dependencyReadyAtMs: (job) => {
          asked.push(job.id as string);
          return useDelivery ? deliveredAtMs(job) : Promise.resolve(undefined);
        },
      },
    });
    // The "bridge" delivers at once and reports the delivery time.
    transfers = new Worker(childQueue, async () => ({ atMs: Date.now() }), {
      connection: env.redis.options,
      prefix: env.prefix,
    });
    flows = new FlowProducer({ connection: env.redis.options, prefix: env.prefix });
  });
  afterAll(async () => {
    await transfers?.close();
    await flows?.close();
    await env?.close();
  });

  /** A hedge decided 10 minutes ago (a slow bridge) that runs once its transfer child completes. */
  async function hedgeAfterSlowTransfer(n: number) {
    const leg = env.intent(n, { createdAtMs: Date.now() - 10 * 60_000 });
    const cid = clientOrderIdFor(leg.id);
    await env.ledger.recordIntent(leg, { clientOrderId: cid, actor: 'test' });
    await env.ledger.transition(cid, 'queued', { actor: 'test' });
    await flows.add({
      name: 'order',
      queueName: orderQueueName('pv'),
      data: { intent: leg, clientOrderId: cid },
      opts: { ...ORDER_JOB_OPTIONS, jobId: leg.id },
      children: [{ name: 'transfer', queueName: childQueue, data: {}, opts: { failParentOnFailure: true } }],
    });
    return until(async () => {
      const o = await env.ledger.getOrder(cid);
      return o && ['filled', 'cancelled', 'rejected', 'failed'].includes(o.status) ? o : undefined;
    }, 20_000);
  }

  it('measures the age from the delivery, so the funded hedge is sent', async () => {
    useDelivery = true;
    const o = await hedgeAfterSlowTransfer(1);
    expect(o.status, o.error ?? '').toBe('filled');
    expect(env.placed).toContain(o.clientOrderId);
  });

  it('without a delivery time the same hedge is stale and never sent', async () => {
    useDelivery = false;
    const o = await hedgeAfterSlowTransfer(2);
    expect(o.status).toBe('cancelled');
    expect(o.error).toMatch(/stale-data: decision is \d+ ms old > 30000 ms/);
    expect(env.placed).not.toContain(o.clientOrderId);
  });

  it('a plain submitted leg (no flow children) is not asked for its dependency time: one Redis read less', async () => {
    const leg = env.intent(3);
    await env.service.submitPlan({ planId: leg.planId, legs: [leg] });
    const o = await until(async () => {
      const x = await env.ledger.getOrder(clientOrderIdFor(leg.id));
      return x && x.status === 'filled' ? x : undefined;
    });
    expect(env.placed).toContain(o.clientOrderId);
    expect(asked).not.toContain(leg.id);
    // the flow parents above were asked
    expect(asked.length).toBeGreaterThan(0);
  });
});
