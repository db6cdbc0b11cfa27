import type { HedgeIntent } from '@xhedge/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientOrderIdFor } from './ids.ts';
import { keysFor } from './keys.ts';
import { type Env, makeEnv, until } from './test-env.ts';

/**
 * A leg that depends on another (`dependsOn`, e.g. a hedge after its collateral leg) is only sent once
 * that one filled. A run that finds the leg's send claim held does not wait for its dependencies: it
 * reconciles the order, and when the venue proves it never had it, re-sends it. The restore after a
 * Redis data loss holds such a claim for every queued order, so the re-send must check the
 * dependencies itself.
 */
describe('a re-send of a dependent leg', () => {
  let env: Env;
  beforeAll(async () => {
    env = await makeEnv({ workers: { sendDeadlineMs: 300, pollBudgetMs: 1000, pollIntervalMs: 25 } });
  });
  afterAll(async () => {
    await env?.close();
  });

  const cid = (l: HedgeIntent) => clientOrderIdFor(l.id);
  /** A leg and the one that depends on it, recorded `queued`, without jobs. */
  const pair = async (n: number) => {
    const dep = env.intent(n);
    const leg = env.intent(n + 1, { planId: dep.planId, dependsOn: [dep.id] });
    await env.ledger.recordPlan(
      [dep, leg].map((l) => ({ intent: l, clientOrderId: cid(l), status: 'queued' as const })),
      { actor: 'test' },
    );
    return { dep, leg };
  };
  /**
   * Redis lost its data (the control state with it), and the restore claimed every queued order as
   * `restored`: a run may have sent it under a claim that is gone.
   */
  const dataLossAndRestore = async () => {
    await env.cmd.del(keysFor(env.prefix).controlState);
    return env.restoreControlState();
  };
  const ended = (l: HedgeIntent) =>
    until(async () => {
      const o = await env.ledger.getOrder(cid(l));
      return o && ['filled', 'cancelled', 'rejected', 'failed'].includes(o.status) ? o : undefined;
    });

  it('is cancelled, never sent, when its dependency ended without filling', async () => {
    const { dep, leg } = await pair(1);
    // its reservation, as the producer took it at queue time
    expect(await env.service.preQueueCheck(leg)).toMatchObject({ ok: true });
    expect(await env.cmd.hget(keysFor(env.prefix).ctlNotional, leg.id)).not.toBeNull();
    await env.ledger.transition(cid(dep), 'sent', { actor: 'worker:x' });
    await env.ledger.transition(cid(dep), 'cancelled', { actor: 'worker:x', patch: { error: 'no fill' } });
    expect((await dataLossAndRestore()).sendClaims).toContain(cid(leg));
    // the reconciler re-drives it (a plain job: its flow went with Redis's data)
    await env.service.enqueue(leg);
    const o = await ended(leg);
    expect(o.status).toBe('cancelled');
    expect(o.error).toBe(`dependency ${dep.id} ended cancelled (not re-sent; the venue never had it)`);
    expect(env.placed).not.toContain(cid(leg));
    // it never traded: its reservation is given back
    expect(await env.cmd.hget(keysFor(env.prefix).ctlNotional, leg.id)).toBeNull();
  });

  it('waits while its dependency works, and is sent once after it filled', async () => {
    const { dep, leg } = await pair(3);
    await env.ledger.transition(cid(dep), 'sent', { actor: 'worker:x' });
    await env.ledger.transition(cid(dep), 'acknowledged', { actor: 'worker:x' });
    expect((await dataLossAndRestore()).sendClaims).toContain(cid(leg));
    await env.service.enqueue(leg);
    // well past the send deadline: proven not at the venue, but not re-sent while the dependency works
    const waiting = await until(async () => {
      const o = await env.ledger.getOrder(cid(leg));
      if (!o || o.status === 'queued') return undefined;
      return (o.status !== 'sent' || Date.now() - (o.lastSendAtMs ?? Date.now()) > 1500) && o;
    });
    expect(env.placed).not.toContain(cid(leg));
    expect(waiting).toMatchObject({ status: 'sent', sendAttempts: 1 });
    await env.ledger.transition(cid(dep), 'filled', { actor: 'worker:x', patch: { filledSizeBase: '0.5' } });
    const o = await ended(leg);
    expect(o.status, o.error ?? '').toBe('filled');
    expect(env.placed.filter((c) => c === cid(leg))).toHaveLength(1);
    expect(o.sendAttempts).toBe(2);
  });
});
