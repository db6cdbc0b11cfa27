import type { HedgeIntent } from '@xhedge/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientOrderIdFor } from './ids.ts';
import { keysFor } from './keys.ts';
import { type Env, failedJob, makeEnv } from './test-env.ts';

// An order cancelled from outside its job's run (an operator, a failed collateral transfer, the
// reconciler) gives back the pre-trade reservation its leg took at queue time, so it does not count
// against later hedges until its window expires.
describe('cancelUnsent and the pre-trade reservation', () => {
  let env: Env;
  // one leg is 0.5 ETH at about 3500 USD: two of them do not fit the window
  const windowUsd = 3000;
  beforeAll(async () => {
    env = await makeEnv({ limits: { maxHedgeNotionalPerWindowUsd: windowUsd } });
  });
  afterAll(async () => {
    await env?.close();
  });

  /** A leg recorded `queued` with its reservation taken, as `submitPlan` leaves it before the job add. */
  const queuedLeg = async (l: HedgeIntent) => {
    await env.ledger.recordPlan([{ intent: l, clientOrderId: clientOrderIdFor(l.id), status: 'queued' }], {
      actor: 'test',
    });
    expect(await env.service.preQueueCheck(l)).toMatchObject({ ok: true });
  };

  it('releases the window notional, the execution count and the self-cross entry; a later run releasing again changes nothing', async () => {
    const k = keysFor(env.prefix);
    const a = env.intent(1);
    const b = env.intent(2);
    await queuedLeg(a);
    expect(await env.service.preQueueCheck(b)).toMatchObject({
      ok: false,
      control: 'window-notional-underlying',
    });

    expect(
      await env.service.cancelUnsent(clientOrderIdFor(a.id), { actor: 'operator:ana', error: 'not wanted' }),
    ).toBe(true);
    expect((await env.ledger.getOrder(clientOrderIdFor(a.id)))?.status).toBe('cancelled');
    // nothing of a is left in the windows
    expect(await env.cmd.hget(k.ctlNotional, a.id)).toBeNull();
    expect(await env.cmd.zscore(k.ctlExec('ETH'), a.id)).toBeNull();
    expect(await env.cmd.zscore(k.ctlSide('ETH'), a.id)).toBeNull();
    // so the next hedge fits the window again
    expect(await env.service.preQueueCheck(b)).toMatchObject({ ok: true });
    const totalAfterB = Number(await env.cmd.hget(k.ctlNotional, `#total|${k.ctlUnderlying('ETH')}`));
    expect(totalAfterB).toBeGreaterThan(0);

    // a's job comes after all (added before the cancel, or by a re-submission): its run finds the order
    // cancelled and releases a again; b's reservation still counts in full
    await env.service.enqueue(a);
    const job = await failedJob(env.service.queue('pv'), a.id);
    expect(job.failedReason).toMatch(/ended cancelled: not wanted/);
    expect(Number(await env.cmd.hget(k.ctlNotional, `#total|${k.ctlUnderlying('ETH')}`))).toBe(totalAfterB);
    expect(await env.service.preQueueCheck(env.intent(3))).toMatchObject({
      ok: false,
      control: 'window-notional-underlying',
    });
    expect(env.placed).not.toContain(clientOrderIdFor(a.id));
  });

  it('releases nothing when a run holds the send claim (the order may be out)', async () => {
    const k = keysFor(env.prefix);
    const c = env.intent(4, { sizeBase: '0.1' });
    await queuedLeg(c);
    await env.cmd.set(k.sendClaim(clientOrderIdFor(c.id)), `send|${Date.now()}|worker:live`);
    expect(
      await env.service.cancelUnsent(clientOrderIdFor(c.id), { actor: 'operator:ana', error: 'too late' }),
    ).toBe(false);
    expect(await env.cmd.hget(k.ctlNotional, c.id)).not.toBeNull();
    expect(await env.cmd.zscore(k.ctlSide('ETH'), c.id)).not.toBeNull();
  });

  it('cancels nothing the ledger has past queued, though no claim is left (let go after CLAIM_RETAIN_MS)', async () => {
    const k = keysFor(env.prefix);
    const e = env.intent(5, { sizeBase: '0.1' });
    const cid = clientOrderIdFor(e.id);
    await queuedLeg(e);
    // sent and working at the venue; its send claim was let go after the ledger recorded the send
    await env.ledger.transition(cid, 'sent', { actor: 'worker:w' });
    await env.ledger.transition(cid, 'acknowledged', { actor: 'worker:w', patch: { venueOrderId: 'v-5' } });
    expect(await env.cmd.get(k.sendClaim(cid))).toBeNull();
    expect(await env.service.cancelUnsent(cid, { actor: 'operator:ana', error: 'too late' })).toBe(false);
    expect(await env.ledger.getOrder(cid)).toMatchObject({ status: 'acknowledged', venueOrderId: 'v-5' });
    // its reservation stands (it may trade), and the blocked claim the cancel took is given back
    expect(await env.cmd.hget(k.ctlNotional, e.id)).not.toBeNull();
    expect(await env.cmd.zscore(k.ctlSide('ETH'), e.id)).not.toBeNull();
    expect(await env.cmd.get(k.sendClaim(cid))).toBeNull();
    // a claim another actor took as blocked is not this cancel's to give back
    await env.cmd.set(k.sendClaim(cid), `blocked|${Date.now()}|operator:bob`);
    expect(await env.service.cancelUnsent(cid, { actor: 'operator:ana', error: 'too late' })).toBe(false);
    expect(await env.cmd.get(k.sendClaim(cid))).toMatch(/^blocked\|\d+\|operator:bob$/);
  });

  it('cancels nothing while Redis has lost its control state: a lost claim may have covered a send', async () => {
    const k = keysFor(env.prefix);
    const f = env.intent(6, { sizeBase: '0.1' });
    const cid = clientOrderIdFor(f.id);
    await queuedLeg(f);
    // a Redis that lost its data: the control state (and any send claim) is gone
    await env.cmd.del(k.controlState);
    try {
      expect(await env.service.cancelUnsent(cid, { actor: 'operator:ana', error: 'not wanted' })).toBe(false);
      expect((await env.ledger.getOrder(cid))?.status).toBe('queued');
      // nothing written to Redis either: no blocked claim that would stop the restore's claim
      expect(await env.cmd.get(k.sendClaim(cid))).toBeNull();
      expect(await env.cmd.hget(k.ctlNotional, f.id)).not.toBeNull();
    } finally {
      await env.restoreControlState();
    }
    // the restore claimed it (it may have been sent): its run decides, after asking the venue
    expect(await env.cmd.get(k.sendClaim(cid))).toMatch(/^restored\|/);
    expect(await env.service.cancelUnsent(cid, { actor: 'operator:ana', error: 'not wanted' })).toBe(false);
    expect((await env.ledger.getOrder(cid))?.status).toBe('queued');
  });

  it('while Redis has lost its control state, still cancels a `planned` order: it was never sent, whatever Redis lost', async () => {
    const k = keysFor(env.prefix);
    const p = env.intent(7, { sizeBase: '0.1' });
    const cid = clientOrderIdFor(p.id);
    // as a hedge behind a collateral transfer is recorded before its flow is added
    await env.ledger.recordIntent(p, { clientOrderId: cid, actor: 'test' });
    expect((await env.ledger.getOrder(cid))?.status).toBe('planned');
    await env.cmd.del(k.controlState);
    try {
      expect(
        await env.service.cancelUnsent(cid, { actor: 'orchestrator', error: 'blocked by stale-data' }),
      ).toBe(true);
      expect((await env.ledger.getOrder(cid))?.status).toBe('cancelled');
      // decided on the ledger's word: no claim written while the claims are not to be trusted
      expect(await env.cmd.get(k.sendClaim(cid))).toBeNull();
    } finally {
      await env.restoreControlState();
    }
  });
});
