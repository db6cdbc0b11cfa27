import type { HedgeIntent } from '@xhedge/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { restoreControlState } from './control-state.ts';
import { OrderGate } from './gate.ts';
import { clientOrderIdFor } from './ids.ts';
import { keysFor } from './keys.ts';
import type { OrderJobData } from './queue.ts';
import { CLAIM_RETAIN_MS, formatSendClaim, parseSendClaim, SendClaims } from './send-claim.ts';
import { type Env, makeEnv, until } from './test-env.ts';

/**
 * The send claim is the guard against a double send: taken in the gate's script right before the
 * send, recorded in the ledger while the venue call is in flight, restored for every queued order
 * after Redis lost its data. These tests play the failures it must survive on a real Redis, a real
 * ledger and a paper venue, and count what reaches the venue.
 */
describe('send claims', () => {
  let env: Env;
  let claims: SendClaims;
  let n = 0;
  beforeAll(async () => {
    env = await makeEnv({
      venueKind: 'paper-spot-amm',
      workers: { sendDeadlineMs: 400, pollBudgetMs: 1000, pollIntervalMs: 25 },
    });
    claims = new SendClaims(env.cmd, env.prefix);
  });
  afterAll(async () => {
    await env?.close();
  });
  const leg = () => env.intent(++n, { instrument: 'ETH-USDC:SPOT', chain: 'evm:1', sizeBase: '0.01' });
  const gate = () =>
    new OrderGate({ controls: env.controls, breakers: env.breakers, killSwitch: env.killSwitch });
  const ended = (clientOrderId: string) =>
    until(async () => {
      const o = await env.ledger.getOrder(clientOrderId);
      return o && ['filled', 'cancelled', 'rejected', 'failed'].includes(o.status) ? o : undefined;
    });
  /** The ledger's record of a leg, `queued`, and its job: what a submit leaves, without the run. */
  const recordAndQueue = async (l: HedgeIntent, o: { record?: boolean; claim?: string } = {}) => {
    const coid = clientOrderIdFor(l.id);
    if (o.record ?? true)
      await env.ledger.recordPlan([{ intent: l, clientOrderId: coid, status: 'queued' }], { actor: 'test' });
    if (o.claim) await env.cmd.set(keysFor(env.prefix).sendClaim(coid), o.claim);
    const data: OrderJobData = { intent: l, clientOrderId: coid };
    await env.service.queue('pv').add('order', data, { jobId: l.id });
    return coid;
  };
  const sentToVenue = (coid: string) => env.placed.filter((c) => c === coid).length;
  /** The leg placed at the venue straight, as a run that died afterwards would have (not counted). */
  const sentBefore = (l: HedgeIntent) =>
    env.paper.placeOrder({
      clientOrderId: clientOrderIdFor(l.id),
      instrument: l.instrument,
      side: l.side,
      orderType: l.orderType,
      sizeBase: l.sizeBase,
      reduceOnly: false,
    });

  it('parses what the gate writes, and refuses a corrupt claim by name', () => {
    const c = { kind: 'send', atMs: 1_700_000_000_000, by: 'worker:ab|cd' } as const;
    expect(parseSendClaim(formatSendClaim(c), 'xh-1')).toEqual(c);
    expect(() => parseSendClaim('sent|12|w', 'xh-9')).toThrow(/send claim of order xh-9 is malformed/);
  });

  it('of many runs gating one order at once, exactly one may send; the others find its claim', async () => {
    const l = leg();
    const g = gate();
    const coid = clientOrderIdFor(l.id);
    const res = await Promise.all(
      Array.from({ length: 8 }, (_, i) => g.checkToSend(l, {}, { clientOrderId: coid, by: `w${i}` })),
    );
    const sends = res.filter((r) => r.kind === 'send');
    expect(sends).toHaveLength(1);
    const winner = `w${res.findIndex((r) => r.kind === 'send')}`;
    for (const r of res.filter((x) => x.kind !== 'send'))
      expect(r).toMatchObject({ kind: 'held', claim: { kind: 'send', by: winner } });
    expect(await claims.read(coid)).toMatchObject({ kind: 'send', by: winner });
    // the winner gives it back (it learned the order is not queued): a foreign give-back does nothing
    expect(await claims.giveBack(coid, 'someone-else')).toBe(false);
    expect(await claims.giveBack(coid, winner)).toBe(true);
    expect(await claims.read(coid)).toBeUndefined();
  });

  it('a breaker opened or a kill switch engaged after the gate passed fails the re-check before the send', async () => {
    const l = leg();
    const g = gate();
    const r = await g.checkToSend(l, {}, { clientOrderId: clientOrderIdFor(l.id), by: 'w1' });
    expect(r.kind).toBe('send');
    expect(await g.recheck(l, [])).toEqual({ ok: true });
    await env.breakers.trip('venue:pv', 'recheck drill', { actor: 'operator:ana' }, 60_000);
    try {
      expect(await g.recheck(l, [])).toMatchObject({
        ok: false,
        control: 'breaker',
        reason: /recheck drill/,
      });
    } finally {
      await env.breakers.reset('venue:pv', 'operator:ana', 'drill over');
    }
    await env.killSwitch.engage('underlying:ETH', { actor: 'risk-owner:ana', reason: 'recheck drill' });
    try {
      expect(await g.recheck(l, [])).toMatchObject({ ok: false, control: 'kill-switch' });
    } finally {
      await env.killSwitch.release('underlying:ETH', { actor: 'risk-owner:ana', reason: 'drill over' });
    }
    expect(await g.recheck(l, [])).toEqual({ ok: true });
  });

  it('a gate that says no claims the order as blocked, so no later run sends it', async () => {
    const l = leg();
    const coid = clientOrderIdFor(l.id);
    await env.killSwitch.engage(`venue:pv`, { actor: 'risk-owner:ana', reason: 'claim drill' });
    try {
      const r = await gate().checkToSend(l, {}, { clientOrderId: coid, by: 'w1' });
      expect(r).toMatchObject({ kind: 'blocked', control: 'kill-switch' });
    } finally {
      await env.killSwitch.release(`venue:pv`, { actor: 'risk-owner:ana', reason: 'drill over' });
    }
    expect(await gate().checkToSend(l, {}, { clientOrderId: coid, by: 'w2' })).toMatchObject({
      kind: 'held',
      claim: { kind: 'blocked', by: 'w1' },
    });
    // a run of its job cancels it (never sent)
    await recordAndQueue(l);
    const o = await ended(coid);
    expect(o.status).toBe('cancelled');
    expect(o.error).toMatch(/blocked by an earlier run \(w1\)/);
    expect(sentToVenue(coid)).toBe(0);
  });

  it('a cancel from outside the run claims the order as blocked first; a held send claim stops it', async () => {
    const l = leg();
    const coid = clientOrderIdFor(l.id);
    await env.ledger.recordPlan([{ intent: l, clientOrderId: coid, status: 'queued' }], { actor: 'test' });
    expect(await env.service.cancelUnsent(coid, { actor: 'operator:ana', error: 'not wanted' })).toBe(true);
    expect(await claims.read(coid)).toMatchObject({ kind: 'blocked', by: 'operator:ana' });
    // a run of it that comes late (a stalled one, a job added again) finds the order ended, sends nothing
    await env.service.enqueue(l);
    const job = await until(async () => {
      const j = await env.service.queue('pv').getJob(l.id);
      return j && (await j.getState()) === 'failed' ? j : undefined;
    });
    expect(job.failedReason).toMatch(/ended cancelled: not wanted/);
    expect(sentToVenue(coid)).toBe(0);
    // an order whose send claim a run holds is not cancelled: it may have gone out
    const m = leg();
    const mid = clientOrderIdFor(m.id);
    await env.ledger.recordPlan([{ intent: m, clientOrderId: mid, status: 'queued' }], { actor: 'test' });
    const g = await gate().checkToSend(m, {}, { clientOrderId: mid, by: 'worker:live' });
    expect(g.kind).toBe('send');
    expect(await env.service.cancelUnsent(mid, { actor: 'operator:ana', error: 'too late' })).toBe(false);
    expect((await env.ledger.getOrder(mid))?.status).toBe('queued');
    expect(await claims.block(mid, 'reconciler')).toMatchObject({ kind: 'send', by: 'worker:live' });
  });

  it('a run that finds the order claimed by a dead worker that did send it: recorded, reconciled, sent once', async () => {
    const l = leg();
    const coid = clientOrderIdFor(l.id);
    const atMs = Date.now();
    // the dead worker's send reached the venue (not through the counting wrapper)
    await sentBefore(l);
    await recordAndQueue(l, { claim: formatSendClaim({ kind: 'send', atMs, by: 'worker:dead' }) });
    const o = await ended(coid);
    expect(o.status).toBe('filled');
    expect(sentToVenue(coid)).toBe(0);
    const sent = (await env.ledger.orderEvents(coid)).find((e) => e.toStatus === 'sent');
    expect(sent).toMatchObject({ atMs, note: expect.stringMatching(/claimed by worker:dead/) });
    // recorded: the claim stays a while (CLAIM_RETAIN_MS), then goes
    const ttl = await env.cmd.pttl(keysFor(env.prefix).sendClaim(coid));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(CLAIM_RETAIN_MS);
  });

  it('a claim whose worker died before the send: not at the venue after the deadline, then sent exactly once', async () => {
    const l = leg();
    const coid = clientOrderIdFor(l.id);
    await recordAndQueue(l, {
      claim: formatSendClaim({ kind: 'send', atMs: Date.now(), by: 'worker:died-early' }),
    });
    const o = await ended(coid);
    expect(o.status).toBe('filled');
    expect(sentToVenue(coid)).toBe(1);
    const kinds = (await env.ledger.orderEvents(coid)).map((e) => `${e.kind}:${e.toStatus}`);
    expect(kinds).toContain('resend:sent');
  });

  it('the ledger failing to record a send that went out: the retry finds the claim and reconciles, one order', async () => {
    const l = leg();
    const coid = clientOrderIdFor(l.id);
    const real = env.ledger.recordSend.bind(env.ledger);
    let failed = 0;
    env.ledger.recordSend = async (id, o) => {
      if (id === coid && failed === 0) {
        failed += 1;
        throw new Error('connection terminated unexpectedly (injected)');
      }
      return real(id, o);
    };
    try {
      await env.service.submitPlan({ planId: l.planId, legs: [l] });
      const o = await ended(coid);
      expect(o.status).toBe('filled');
      expect(failed).toBe(1);
      expect(sentToVenue(coid)).toBe(1);
      const sent = (await env.ledger.orderEvents(coid)).find((e) => e.toStatus === 'sent');
      expect(sent?.note).toMatch(/which did not record the send/);
    } finally {
      env.ledger.recordSend = real;
    }
  });

  it('a job run again for an order that already filled sends nothing, claim or none', async () => {
    const l = leg();
    const coid = clientOrderIdFor(l.id);
    await env.service.submitPlan({ planId: l.planId, legs: [l] });
    expect((await ended(coid)).status).toBe('filled');
    expect(await claims.read(coid)).toMatchObject({ kind: 'send' });
    // e.g. an operator re-adding the job by hand under another id: the claim is held
    const data: OrderJobData = { intent: l, clientOrderId: coid };
    const again = async (jobId: string) => {
      const job = await env.service.queue('pv').add('order', data, { jobId });
      await until(async () => ((await job.getState()) === 'completed' ? true : undefined));
    };
    await again(`${l.id}-again`);
    // and long after, the claim let go: the claim is taken afresh, the ledger says filled, it is given back
    await env.cmd.del(keysFor(env.prefix).sendClaim(coid));
    await again(`${l.id}-later`);
    expect(sentToVenue(coid)).toBe(1);
    expect(await claims.read(coid)).toBeUndefined();
  });

  it('the ledger is read after the claim, not with it, while a restore after a data loss is recent', async () => {
    const reads = new Map<string, number>();
    const real = env.ledger.getOrder.bind(env.ledger);
    env.ledger.getOrder = (id) => {
      reads.set(id, (reads.get(id) ?? 0) + 1);
      return real(id);
    };
    const at = keysFor(env.prefix).controlStateAt;
    try {
      const run = async (restoredAgoMs: number) => {
        await env.cmd.set(at, String(Date.now() - restoredAgoMs));
        const l = leg();
        const coid = clientOrderIdFor(l.id);
        await env.service.submitPlan({ planId: l.planId, legs: [l] });
        expect((await ended(coid)).status).toBe('filled');
        return reads.get(coid) ?? 0;
      };
      const recent = await run(500);
      const old = await run(60_000);
      // the run reads the order again after the claim only when the restore was recent
      expect(recent - old).toBe(1);
    } finally {
      env.ledger.getOrder = real;
    }
  });

  it('an order the ledger lost while its claim says sent is put back from the job and reconciled', async () => {
    const l = leg();
    const coid = clientOrderIdFor(l.id);
    await sentBefore(l);
    await recordAndQueue(l, {
      record: false,
      claim: formatSendClaim({ kind: 'send', atMs: Date.now(), by: 'worker:before-the-crash' }),
    });
    const o = await ended(coid);
    expect(o.status).toBe('filled');
    expect(sentToVenue(coid)).toBe(0);
    expect((await env.ledger.listAudit({ action: 'intent.restore' })).map((a) => a.subject)).toContain(l.id);
    // without a claim, an order the ledger does not have is refused (nobody sent it)
    const m = leg();
    await recordAndQueue(m, { record: false });
    const job = await until(async () => {
      const j = await env.service.queue('pv').getJob(m.id);
      return j && (await j.getState()) === 'failed' ? j : undefined;
    });
    expect(job.failedReason).toMatch(/is not in the ledger; refusing to send/);
    expect(sentToVenue(clientOrderIdFor(m.id))).toBe(0);
  });

  it('after Redis lost its data, every queued order is claimed as restored, once; none is sent blind', async () => {
    const parts = {
      redis: env.cmd,
      prefix: env.prefix,
      killSwitch: env.killSwitch,
      breakers: env.breakers,
      ledger: env.ledger,
    };
    // a restore on a server that kept its state claims nothing
    expect((await restoreControlState(parts, { actor: 'test' })).sendClaims).toEqual([]);
    const l = leg();
    const coid = clientOrderIdFor(l.id);
    // queued in the ledger; suppose a worker had claimed and sent it just before Redis lost everything
    await env.ledger.recordPlan([{ intent: l, clientOrderId: coid, status: 'queued' }], { actor: 'test' });
    await sentBefore(l);
    const keys = await env.cmd.keys(`${env.prefix}:*`);
    if (keys.length) await env.cmd.del(...keys);
    const r = await restoreControlState(parts, { actor: 'restore-test' });
    expect(r.sendClaims).toContain(coid);
    expect(await claims.read(coid)).toMatchObject({ kind: 'restored', by: 'restore-test' });
    const at = keysFor(env.prefix).controlStateAt;
    const markedAt = Number(await env.cmd.get(at));
    expect(Math.abs(markedAt - Date.now())).toBeLessThan(5000);
    // a restore without a loss claims nothing and leaves the time of the last one as it was
    await env.cmd.set(at, String(markedAt - 60_000));
    expect((await restoreControlState(parts, { actor: 'test' })).sendClaims).toEqual([]);
    expect(Number(await env.cmd.get(at))).toBe(markedAt - 60_000);
    const audit = await env.ledger.listAudit({ action: 'send-claim.restore' });
    expect(audit[0]?.details).toMatchObject({ clientOrderIds: expect.arrayContaining([coid]) });
    // the job was lost with the rest; added again (as the reconciler does), its run asks the venue
    await env.service.enqueue(l);
    const o = await ended(coid);
    expect(o.status).toBe('filled');
    expect(sentToVenue(coid)).toBe(0);
    const sent = (await env.ledger.orderEvents(coid)).find((e) => e.toStatus === 'sent');
    expect(sent?.note).toMatch(/restored claim \(restore-test\)/);
  });
});
