import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientOrderIdFor } from './ids.ts';
import { type Env, makeEnv, until } from './test-env.ts';

// An async-keeper venue (paper-gmx) keeps orders pending for the keeper delay: working orders whose
// jobs are active (polling the venue) when the kill switch engages.
describe('kill switch with working orders', () => {
  let env: Env;
  beforeAll(async () => {
    env = await makeEnv({
      venueKind: 'paper-gmx',
      venueParams: { keeperDelayMs: 2500 },
      workers: { pollBudgetMs: 20_000, pollIntervalMs: 50, sendDeadlineMs: 5_000 },
    });
    env.paper.seedPosition('ETH-USD:PERP', 2);
  });
  afterAll(async () => {
    await env?.close();
  });

  it('cancels the working order at the venue, aborts its job, and lets a risk-reducing one finish', async () => {
    const chain = 'evm:42161' as const;
    const open = env.intent(1, { chain });
    const reduce = env.intent(2, { chain, side: 'sell', reduceOnly: true, sizeBase: '0.5' });
    await env.service.submitPlan({ planId: open.planId, legs: [open] });
    await env.service.submitPlan({ planId: reduce.planId, legs: [reduce] });
    const a = clientOrderIdFor(open.id);
    const b = clientOrderIdFor(reduce.id);
    // both reached the venue and wait for the keeper; their jobs are active
    await until(async () => {
      const [oa, ob] = await Promise.all([env.ledger.getOrder(a), env.ledger.getOrder(b)]);
      return oa?.status === 'acknowledged' && ob?.status === 'acknowledged';
    });
    const q = env.service.queue('pv');
    expect(await (await q.getJob(open.id))?.getState()).toBe('active');
    expect((await env.paper.getOrderByClientId(a))?.status).toBe('acknowledged');

    await env.killSwitch.engage('global', {
      actor: 'risk-owner:test',
      reason: 'drill',
      allowRiskReducing: true,
    });

    // the open order is cancelled on the venue and in the ledger; its job ends failed (aborted)
    const oa = await until(async () => {
      const o = await env.ledger.getOrder(a);
      return o?.status === 'cancelled' ? o : undefined;
    });
    expect(oa.filledSizeBase).toBe('0');
    expect((await env.paper.getOrderByClientId(a))?.status).toBe('cancelled');
    const job = await until(async () => {
      const j = await q.getJob(open.id);
      return j?.failedReason ? j : undefined;
    });
    expect(job.failedReason).toMatch(/cancelled/);
    // the risk-reducing order stays working and fills when the keeper executes it
    const ob = await until(async () => {
      const o = await env.ledger.getOrder(b);
      return o && ['filled', 'cancelled', 'failed', 'rejected'].includes(o.status) ? o : undefined;
    });
    expect(ob.status).toBe('filled');
    expect(env.placed.filter((c) => c === a)).toHaveLength(1);
    const ev = await env.ledger.listKillSwitchEvents({ scope: 'global' });
    const cancelWorking = ev.find((e) => e.action === 'cancel-working');
    expect(cancelWorking?.details).toMatchObject({ venue: 'pv', cancelled: 1 });
    // new orders are blocked while engaged; reduce-only ones still pass
    const late = env.intent(3, { chain });
    const lateReduce = env.intent(4, { chain, side: 'sell', reduceOnly: true, sizeBase: '0.1' });
    const res = await env.service.submitPlan({ planId: late.planId, legs: [late, lateReduce] });
    expect(res.map((r) => r.outcome)).toEqual(['blocked', 'queued']);
    await env.killSwitch.release('global', { actor: 'risk-owner:test', reason: 'drill over' });
  }, 30_000);
});
