import type { HedgeIntent } from '@xhedge/core';
import { Ledger } from '@xhedge/store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { restoreControlState } from './control-state.ts';
import { OrderGate } from './gate.ts';
import { clientOrderIdFor } from './ids.ts';
import { keysFor } from './keys.ts';
import type { OrderJobData } from './queue.ts';
import {
  CLAIM_RETAIN_MS,
  FAST_SEND_WINDOW_MS,
  formatSendClaim,
  parseSendClaim,
  SendClaims,
} from './send-claim.ts';
import { type Env, failedJob, makeEnv, until } from './test-env.ts';

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
      // the prototype's read: tests wrap the instance's to see what the workers read
      const o = await Ledger.prototype.getOrder.call(env.ledger, clientOrderId);
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

  it('a first run of an order queued moments ago sends on its claim alone; other runs read the ledger first', async () => {
    // what each run read of the ledger before its order reached the venue
    const readFirst = new Map<string, boolean>();
    const real = env.ledger.getOrder.bind(env.ledger);
    env.ledger.getOrder = (id) => {
      if (!readFirst.has(id)) readFirst.set(id, sentToVenue(id) === 0);
      return real(id);
    };
    try {
      // submitted: the producer queued it right after the ledger recorded it `queued`
      const l = leg();
      const coid = clientOrderIdFor(l.id);
      await env.service.submitPlan({ planId: l.planId, legs: [l] });
      expect((await ended(coid)).status).toBe('filled');
      expect(sentToVenue(coid)).toBe(1);
      expect(readFirst.get(coid)).not.toBe(true);
      expect(await claims.read(coid)).toMatchObject({ kind: 'send' });
      // a job added without that mark (as the reconciler adds one): the ledger is read before the gates
      const m = leg();
      const mid = await recordAndQueue(m);
      expect((await ended(mid)).status).toBe('filled');
      expect(readFirst.get(mid)).toBe(true);
      // marked, but queued longer ago than the window: read first as well
      const o = leg();
      const oid = clientOrderIdFor(o.id);
      await env.ledger.recordPlan([{ intent: o, clientOrderId: oid, status: 'queued' }], { actor: 'test' });
      const data: OrderJobData = {
        intent: o,
        clientOrderId: oid,
        queuedAtMs: Date.now() - FAST_SEND_WINDOW_MS - 1000,
      };
      await env.service.queue('pv').add('order', data, { jobId: o.id });
      expect((await ended(oid)).status).toBe('filled');
      expect(readFirst.get(oid)).toBe(true);
      expect(sentToVenue(mid) + sentToVenue(oid)).toBe(2);
    } finally {
      env.ledger.getOrder = real;
    }
  });

  it('nothing runs between the answer of the gate and the venue call: not one turn of the event loop', async () => {
    // A check that passed may not wait for anything before the send: a breaker opening in the meantime
    // would be missed. Each Redis script's answer schedules a probe for the loop's next turn; at the
    // venue call the probe of the last answer (the gate's) must not have run yet.
    const redis = env.controls.redis;
    const real = redis.evalsha.bind(redis);
    let turned: boolean | undefined;
    const seen = new Map<string, boolean | undefined>();
    redis.evalsha = ((...args: Parameters<typeof real>) => {
      const p = real(...args);
      p.then(
        () => {
          turned = false;
          setImmediate(() => {
            turned = true;
          });
        },
        () => {},
      );
      return p;
    }) as typeof redis.evalsha;
    const place = env.paper.placeOrder;
    env.paper.placeOrder = (req) => {
      seen.set(req.clientOrderId, turned);
      return place.call(env.paper, req);
    };
    try {
      // a fast send, and a send after the ledger was read first
      const a = leg();
      await env.service.submitPlan({ planId: a.planId, legs: [a] });
      const b = leg();
      const bid = await recordAndQueue(b);
      const aid = clientOrderIdFor(a.id);
      expect((await ended(aid)).status).toBe('filled');
      expect((await ended(bid)).status).toBe('filled');
      expect(seen.get(aid)).toBe(false);
      expect(seen.get(bid)).toBe(false);
    } finally {
      redis.evalsha = real;
      env.paper.placeOrder = place;
    }
  });

  it('a job with malformed data fails at once, naming the field, and sends nothing', async () => {
    const l = leg();
    const bad = { intent: l, clientOrderId: clientOrderIdFor(l.id), queuedAtMs: 'soon' };
    await env.service.queue('pv').add('order', bad as unknown as OrderJobData, { jobId: l.id });
    await until(async () => (await env.service.queue('pv').getJobState(l.id)) === 'failed');
    const job = await env.service.queue('pv').getJob(l.id);
    expect(job?.failedReason).toBe(
      `order job ${l.id}: queuedAtMs: Invalid input: expected number, received string; not sent`,
    );
    expect(job?.attemptsMade).toBe(1);
    expect(sentToVenue(clientOrderIdFor(l.id))).toBe(0);
  });

  it('a fresh order cancelled from outside before its run is not sent: the cancel claimed it first', async () => {
    const l = leg();
    const coid = clientOrderIdFor(l.id);
    await env.ledger.recordPlan([{ intent: l, clientOrderId: coid, status: 'queued' }], { actor: 'test' });
    expect(await env.service.cancelUnsent(coid, { actor: 'operator:ana', error: 'changed my mind' })).toBe(
      true,
    );
    // its job, marked as just queued, runs the fast path: the claim says blocked, the ledger decides
    await env.service.enqueue(l, { queuedAtMs: Date.now() });
    const job = await failedJob(env.service.queue('pv'), l.id);
    expect(job.failedReason).toMatch(/ended cancelled: changed my mind/);
    expect(sentToVenue(coid)).toBe(0);
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
    const job = await failedJob(env.service.queue('pv'), l.id);
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
    // a failed run puts the workers in doubt of the ledger for a while: the next fresh order's run
    // reads it before anything is sent
    const next = leg();
    const nid = clientOrderIdFor(next.id);
    const get = env.ledger.getOrder.bind(env.ledger);
    let readBeforeSend: boolean | undefined;
    env.ledger.getOrder = (id) => {
      if (id === nid) readBeforeSend ??= sentToVenue(nid) === 0;
      return get(id);
    };
    try {
      await env.service.submitPlan({ planId: next.planId, legs: [next] });
      expect((await ended(nid)).status).toBe('filled');
      expect(readBeforeSend).toBe(true);
    } finally {
      env.ledger.getOrder = get;
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
    // and long after, the claim let go: the run reads the ledger first (its job is not marked as just
    // queued), which says filled; no claim is taken
    await env.cmd.del(keysFor(env.prefix).sendClaim(coid));
    await again(`${l.id}-later`);
    expect(sentToVenue(coid)).toBe(1);
    expect(await claims.read(coid)).toBeUndefined();
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
    const job = await failedJob(env.service.queue('pv'), m.id);
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
    const filled = (await env.ledger.listOrders({ status: ['filled'], limit: 5000 })).map(
      (o) => o.clientOrderId,
    );
    expect(filled.length).toBeGreaterThan(0);
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
    // orders of the last day past `queued` are claimed too: their claims were lost with the rest, and
    // a run of one may not go by the claim alone (it reads the ledger, which decides)
    expect(r.sendClaims).toEqual(expect.arrayContaining(filled));
    // a restore without a loss claims nothing
    expect((await restoreControlState(parts, { actor: 'test' })).sendClaims).toEqual([]);
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
