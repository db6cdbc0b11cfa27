import { FlowProducer, Worker } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientOrderIdFor } from './ids.ts';
import { ORDER_JOB_OPTIONS, orderQueueName } from './queue.ts';
import { Reconciler } from './reconciler.ts';
import { type Env, makeEnv, until } from './test-env.ts';

describe('reconciler and flows whose child failed', () => {
  let env: Env;
  beforeAll(async () => {
    env = await makeEnv();
  });
  afterAll(async () => {
    await env?.close();
  });

  it('cancels a queued hedge whose collateral child job failed, and never re-drives or sends it', async () => {
    const leg = env.intent(1);
    const cid = clientOrderIdFor(leg.id);
    await env.ledger.recordIntent(leg, { clientOrderId: cid, actor: 'test' });
    // The collateral "transfer" fails for good in its own queue, with no hook touching the ledger (as a
    // stalled transfer worker would): the parent hedge job fails through failParentOnFailure.
    const childQueue = 'xfer-test';
    const transfers = new Worker(
      childQueue,
      async () => {
        throw new Error('bridge lost the message');
      },
      { connection: env.redis.options, prefix: env.prefix },
    );
    const flows = new FlowProducer({ connection: env.redis.options, prefix: env.prefix });
    try {
      await flows.add({
        name: 'order',
        queueName: orderQueueName('pv'),
        data: { intent: leg, clientOrderId: cid },
        opts: { ...ORDER_JOB_OPTIONS, jobId: leg.id },
        children: [
          {
            name: 'transfer',
            queueName: childQueue,
            data: {},
            opts: { attempts: 1, failParentOnFailure: true, jobId: `xfer-${leg.id}` },
          },
        ],
      });
      await env.ledger.transition(cid, 'queued', { actor: 'test' });
      const job = await until(async () => {
        const j = await env.service.queue('pv').getJob(leg.id);
        return j && (await j.getState()) === 'failed' ? j : undefined;
      }, 20_000);
      expect((await job.getDependenciesCount({ failed: true })).failed).toBe(1);
      expect((await env.ledger.getOrder(cid))?.status).toBe('queued');

      const rec = new Reconciler({
        service: env.service,
        ledger: env.ledger,
        redis: env.cmd,
        prefix: env.prefix,
        minAgeMs: 0,
      });
      const res = await rec.sweep();
      expect(res).toMatchObject({ redriven: 0, cancelled: 1 });
      const o = await env.ledger.getOrder(cid);
      expect(o?.status).toBe('cancelled');
      expect(o?.error).toMatch(/depends on failed/);
      // A second sweep finds nothing open, the job stays failed and the venue never saw the order.
      expect((await rec.sweep()).redriven).toBe(0);
      expect(await job.getState()).toBe('failed');
      expect(env.placed).not.toContain(cid);
    } finally {
      await transfers.close();
      await flows.close();
    }
  });
});
