import type { HedgeIntent } from '@xhedge/core';
import { afterEach, describe, expect, it } from 'vitest';
import { clientOrderIdFor } from './ids.ts';
import { type Env, makeEnv, until } from './test-env.ts';

/**
 * Urgent hedges go first: order jobs carry `PRIORITY[intent.urgency]`, so while a venue's worker is
 * busy (here: paused), urgent legs queued later overtake normal ones queued earlier, and legs of the
 * same urgency keep the order they were queued in. Checked end to end: real Redis/BullMQ, the worker
 * pool, and the order in which client order ids reach the (paper) venue.
 */
describe('order job priorities (urgent before normal, FIFO within a priority)', () => {
  let env: Env | undefined;
  afterEach(async () => {
    await env?.close();
    env = undefined;
  });

  /** An env whose single venue worker runs one job at a time, so jobs reach the venue in queue order. */
  async function serialEnv(): Promise<Env> {
    return makeEnv({
      // the env's defaults (lockDuration 2000, stalledInterval 1000) plus concurrency 1
      workers: { settings: { lockDuration: 2000, stalledInterval: 1000, concurrency: 1 } },
    });
  }

  /** Pauses the venue worker and waits until it fetches nothing more. */
  async function pauseWorker(e: Env): Promise<void> {
    expect(e.pool.workers).toHaveLength(1);
    await e.pool.workers[0]?.pause();
  }

  /** Submits each leg as its own plan, one after the other, so the queue order is the array order. */
  async function submitInOrder(e: Env, legs: readonly HedgeIntent[]): Promise<void> {
    for (const leg of legs) {
      const [r] = await e.service.submitPlan({ planId: leg.planId, legs: [leg] });
      expect(r?.outcome).toBe('queued');
    }
  }

  /** Resumes the worker and waits until every leg reached the venue and ended filled. */
  async function runAll(e: Env, legs: readonly HedgeIntent[]): Promise<string[]> {
    // nothing may have run while the worker was paused: all legs wait as prioritized jobs
    expect(e.placed).toEqual([]);
    expect(await e.service.queue('pv').getJobCountByTypes('prioritized')).toBe(legs.length);
    await e.pool.workers[0]?.resume();
    await until(async () => e.placed.length >= legs.length);
    for (const leg of legs) {
      const o = await until(async () => {
        const cur = await e.ledger.getOrder(clientOrderIdFor(leg.id));
        return cur?.status === 'filled' ? cur : undefined;
      });
      expect(o.status).toBe('filled');
    }
    // each leg reached the venue exactly once
    expect(e.placed).toHaveLength(legs.length);
    return [...e.placed];
  }

  it('urgent legs queued after normal ones reach the venue before every normal one', async () => {
    env = await serialEnv();
    await pauseWorker(env);
    const e = env;
    const normal = [1, 2, 3, 4].map((n) => e.intent(n, { urgency: 'normal' }));
    const urgent = [5, 6, 7].map((n) => e.intent(n, { urgency: 'urgent' }));
    await submitInOrder(e, [...normal, ...urgent]);
    const placed = await runAll(e, [...normal, ...urgent]);

    const cids = (legs: HedgeIntent[]) => legs.map((l) => clientOrderIdFor(l.id));
    // every urgent leg before any normal one, and each group in the order it was queued
    expect(placed.slice(0, urgent.length)).toEqual(cids(urgent));
    expect(placed.slice(urgent.length)).toEqual(cids(normal));
  });

  it('legs of equal urgency keep FIFO order when urgencies are interleaved', async () => {
    env = await serialEnv();
    await pauseWorker(env);
    const e = env;
    // n u n u n u n u: queue order alternates between the two urgencies
    const legs = [11, 12, 13, 14, 15, 16, 17, 18].map((n, i) =>
      e.intent(n, { urgency: i % 2 === 0 ? 'normal' : 'urgent' }),
    );
    await submitInOrder(e, legs);
    const placed = await runAll(e, legs);

    const cidsOf = (u: HedgeIntent['urgency']) =>
      legs.filter((l) => l.urgency === u).map((l) => clientOrderIdFor(l.id));
    expect(placed).toEqual([...cidsOf('urgent'), ...cidsOf('normal')]);
  });
});
