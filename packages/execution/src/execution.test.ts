import { NotSupportedError, VenueTimeoutError } from '@xhedge/venue';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientOrderIdFor } from './ids.ts';
import { keysFor } from './keys.ts';
import { LeaderLease } from './lease.ts';
import { Reconciler } from './reconciler.ts';
import { ExecutionService } from './service.ts';
import { type Env, failedJob, makeEnv, until } from './test-env.ts';

describe('graceful shutdown of the workers (SIGTERM/SIGINT close them this way)', () => {
  it('takes no new job, and the order being sent completes: filled in the ledger, the job completed, not stalled', async () => {
    const env = await makeEnv();
    try {
      env.paper.faults.latencyMs = 600;
      const leg = env.intent(1);
      await env.service.submitPlan({ planId: leg.planId, legs: [leg] });
      const cid = clientOrderIdFor(leg.id);
      await until(async () => (await env.ledger.getOrder(cid))?.status === 'sent');
      const closing = env.pool.close(); // not forced: waits for the active job
      const later = env.intent(2);
      await env.service.submitPlan({ planId: later.planId, legs: [later] });
      await closing;
      expect((await env.ledger.getOrder(cid))?.status).toBe('filled');
      expect(await (await env.service.queue('pv').getJob(leg.id))?.getState()).toBe('completed');
      // the order queued after the close began was not taken: it waits for the next worker
      expect(await (await env.service.queue('pv').getJob(later.id))?.getState()).toMatch(
        /waiting|prioritized/,
      );
      expect(env.placed).toEqual([cid]);
    } finally {
      await env.close();
    }
  });
});

describe('execution on BullMQ with a paper venue', () => {
  let env: Env;
  beforeAll(async () => {
    env = await makeEnv();
  });
  afterAll(async () => {
    await env?.close();
  });

  const filled = (cid: string) =>
    until(async () => {
      const o = await env.ledger.getOrder(cid);
      return o && ['filled', 'cancelled', 'rejected', 'failed'].includes(o.status) ? o : undefined;
    });

  it('records the intent before queueing; jobId = intent id; client id derived; fills once', async () => {
    const leg = env.intent(1);
    const [r] = await env.service.submitPlan({ planId: leg.planId, legs: [leg] });
    expect(r).toMatchObject({ outcome: 'queued', clientOrderId: clientOrderIdFor(leg.id) });
    const o = await filled(clientOrderIdFor(leg.id));
    expect(o.status).toBe('filled');
    expect((await env.service.queue('pv').getJob(leg.id))?.id).toBe(leg.id);
    expect(env.placed.filter((c) => c === clientOrderIdFor(leg.id))).toHaveLength(1);
    const events = (await env.ledger.orderEvents(o.clientOrderId)).map((e) => e.toStatus);
    expect(events.slice(0, 3)).toEqual(['planned', 'queued', 'sent']);
    expect(await env.ledger.listFills({ clientOrderId: o.clientOrderId })).not.toHaveLength(0);
    // the same plan again is a duplicate: nothing queued, nothing sent
    const [again] = await env.service.submitPlan({ planId: leg.planId, legs: [leg] });
    expect(again?.outcome).toBe('duplicate');
    expect(env.placed.filter((c) => c === o.clientOrderId)).toHaveLength(1);
  });

  it('records the fills before the status that says they happened: a reader never sees a filled order without them', async () => {
    const paper = env.paper as unknown as { fetchFills: typeof env.paper.fetchFills };
    const slow = env.paper.fetchFills.bind(env.paper);
    paper.fetchFills = async (o) => {
      await new Promise((r) => setTimeout(r, 400));
      return slow(o);
    };
    try {
      const leg = env.intent(42);
      const cid = clientOrderIdFor(leg.id);
      await env.service.submitPlan({ planId: leg.planId, legs: [leg] });
      const deadline = Date.now() + 10_000;
      let polls = 0;
      for (;;) {
        const o = await env.ledger.getOrder(cid);
        const fills = await env.ledger.listFills({ clientOrderId: cid });
        if (o?.status === 'filled') {
          expect(fills.reduce((sum, f) => sum + Number(f.sizeBase), 0)).toBeCloseTo(Number(o.sizeBase), 12);
          break;
        }
        expect(Date.now()).toBeLessThan(deadline);
        polls += 1;
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(polls).toBeGreaterThan(5); // the poll did watch the order through the slow fill listing
    } finally {
      Reflect.deleteProperty(paper, 'fetchFills');
    }
  });

  it('an order cancelled after a partial fill keeps its fills in the ledger', async () => {
    env.paper.faults.partialFillNext({ fraction: 0.4 });
    const leg = env.intent(43, { sizeBase: '1' });
    const cid = clientOrderIdFor(leg.id);
    await env.service.submitPlan({ planId: leg.planId, legs: [leg] });
    const o = await filled(cid);
    const fills = await env.ledger.listFills({ clientOrderId: cid });
    expect(fills.reduce((sum, f) => sum + Number(f.sizeBase), 0)).toBeCloseTo(0.4, 12);
    expect(Number(o.filledSizeBase)).toBeCloseTo(0.4, 12);
  });

  it('a venue that cannot list fills (VENUE_NOT_SUPPORTED): the order fills in one run, no fill row invented', async () => {
    const real = env.paper.fetchFills.bind(env.paper);
    env.paper.fetchFills = async () => {
      throw new NotSupportedError({ venue: 'pv', message: 'fill history needs an event indexer' });
    };
    try {
      const leg = env.intent(40);
      await env.service.submitPlan({ planId: leg.planId, legs: [leg] });
      const o = await filled(clientOrderIdFor(leg.id));
      expect(o.status).toBe('filled');
      expect(Number(o.filledSizeBase)).toBeCloseTo(Number(leg.sizeBase), 12);
      expect(await env.ledger.listFills({ clientOrderId: o.clientOrderId })).toHaveLength(0);
      // read again once completed: a job read before its completion was recorded has attemptsMade 0
      await until(async () => (await env.service.queue('pv').getJob(leg.id))?.isCompleted());
      const job = await env.service.queue('pv').getJob(leg.id);
      expect(job?.attemptsMade).toBe(1);
    } finally {
      env.paper.fetchFills = real;
    }
  });

  it('a fill id the ledger holds with other content (ids reused): audited once and counted, the order still fills', async () => {
    // the counter is there at 0 before any conflict, so the alert's increase() sees the first one
    const before = await env.metrics.fillConflicts.get();
    expect(before.values.find((v) => v.labels.venue === 'pv')?.value).toBe(0);
    // a fill of an earlier order under the id the venue reports again (as a venue whose ids restart)
    await env.ledger.recordFill({
      fillId: 'reused-1',
      venue: 'pv',
      clientOrderId: 'xh-earlier',
      instrument: 'ETH-USD:PERP',
      side: 'sell',
      sizeBase: '7',
      priceUsd: '2000',
      feeUsd: 1,
      gasUsd: 0,
      tsMs: 1,
    });
    const real = env.paper.fetchFills.bind(env.paper);
    env.paper.fetchFills = async (q) => {
      const fills = await real(q);
      const first = fills[0];
      return first ? [{ ...first, fillId: 'reused-1' }, ...fills] : fills;
    };
    try {
      const leg = env.intent(44);
      const cid = clientOrderIdFor(leg.id);
      await env.service.submitPlan({ planId: leg.planId, legs: [leg] });
      const o = await filled(cid);
      expect(o.status).toBe('filled');
      // read again once completed: a job read before its completion was recorded has attemptsMade 0
      await until(async () => (await env.service.queue('pv').getJob(leg.id))?.isCompleted());
      const job = await env.service.queue('pv').getJob(leg.id);
      expect(job?.attemptsMade).toBe(1);
      // the order's own fills went in; the reused id kept its first row
      const own = await env.ledger.listFills({ clientOrderId: cid });
      expect(own.reduce((s, f) => s + Number(f.sizeBase), 0)).toBeCloseTo(Number(leg.sizeBase), 12);
      expect((await env.ledger.listFills({ clientOrderId: 'xh-earlier' }))[0]?.sizeBase).toBe('7');
      const audits = await env.ledger.listAudit({ action: 'fill.conflict' });
      expect(audits).toHaveLength(1);
      expect(audits[0]).toMatchObject({
        subject: 'pv/reused-1',
        details: { clientOrderId: cid, id: 'reused-1', recorded: { clientOrderId: 'xh-earlier' } },
      });
      const counted = await env.metrics.fillConflicts.get();
      expect(counted.values.find((v) => v.labels.venue === 'pv')?.value).toBe(1);
    } finally {
      env.paper.fetchFills = real;
    }
  });

  it('resolves a timeout whose order fills later through getOrderByClientId, never re-sending', async () => {
    env.paper.faults.timeoutNext({ fillDelayMs: 200 });
    const leg = env.intent(2);
    await env.service.submitPlan({ planId: leg.planId, legs: [leg] });
    const o = await filled(clientOrderIdFor(leg.id));
    expect(o.status).toBe('filled');
    expect(env.placed.filter((c) => c === o.clientOrderId)).toHaveLength(1);
    expect((await env.ledger.orderEvents(o.clientOrderId)).map((e) => e.toStatus)).toContain(
      'outcome-unknown',
    );
  });

  it('a rejection is final: ledger rejected, job failed without retries', async () => {
    env.paper.faults.rejectNext({ error: 'invalid' });
    const leg = env.intent(3);
    await env.service.submitPlan({ planId: leg.planId, legs: [leg] });
    const o = await filled(clientOrderIdFor(leg.id));
    expect(o.status).toBe('rejected');
    const job = await failedJob(env.service.queue('pv'), leg.id);
    expect(job.attemptsMade).toBeLessThanOrEqual(1);
    expect(env.placed.filter((c) => c === o.clientOrderId)).toHaveLength(1);
  });

  it('runs a dependent leg only after its dependency filled (flow)', async () => {
    const first = env.intent(4, { reason: 'move collateral first' });
    const second = env.intent(5, { planId: first.planId, dependsOn: [first.id], urgency: 'urgent' });
    const res = await env.service.submitPlan({ planId: first.planId, legs: [first, second] });
    expect(res.map((r) => r.outcome)).toEqual(['queued', 'queued']);
    const o2 = await filled(clientOrderIdFor(second.id));
    expect(o2.status).toBe('filled');
    const o1 = await env.ledger.getOrder(clientOrderIdFor(first.id));
    const e1 = await env.ledger.orderEvents(clientOrderIdFor(first.id));
    const e2 = await env.ledger.orderEvents(clientOrderIdFor(second.id));
    const filledAt = e1.find((e) => e.toStatus === 'filled')?.atMs ?? Number.POSITIVE_INFINITY;
    const sentAt = e2.find((e) => e.toStatus === 'sent')?.atMs ?? 0;
    expect(o1?.status).toBe('filled');
    expect(sentAt).toBeGreaterThanOrEqual(filledAt);
  });

  it('kill switch blocks new orders, lets reduce-only through when allowed, and is audited', async () => {
    await env.killSwitch.engage('venue:pv', {
      actor: 'operator:test',
      reason: 'drill',
      allowRiskReducing: true,
    });
    const a = env.intent(6);
    const b = env.intent(7, { reduceOnly: true, planId: a.planId });
    const res = await env.service.submitPlan({ planId: a.planId, legs: [a, b] });
    expect(res.map((r) => r.outcome)).toEqual(['blocked', 'queued']);
    expect((await env.ledger.getOrder(clientOrderIdFor(a.id)))?.status).toBe('cancelled');
    expect(env.placed).not.toContain(clientOrderIdFor(a.id));
    await filled(clientOrderIdFor(b.id));
    await env.killSwitch.release('venue:pv', { actor: 'operator:test', reason: 'drill over' });
    const ev = await env.ledger.listKillSwitchEvents({ venue: 'pv' });
    expect(ev.map((e) => e.action)).toEqual(expect.arrayContaining(['engage', 'release']));
    expect(await env.metrics.registry.getSingleMetricAsString('xhedge_kill_switch_actions_total')).toContain(
      'action="engage"',
    );
  });

  it('an open venue breaker stops orders; after the cooldown exactly one half-open trial goes', async () => {
    expect((await env.breakers.status('venue:pv')).state).toBe('closed');
    await env.breakers.trip('venue:pv', 'test trip', {}, 300);
    const leg = env.intent(8);
    const [r] = await env.service.submitPlan({ planId: leg.planId, legs: [leg] });
    expect(r?.outcome).toBe('blocked');
    await new Promise((res) => setTimeout(res, 350));
    const g1 = await env.breakers.gate(['venue:pv'], { takeTrial: true });
    const g2 = await env.breakers.gate(['venue:pv'], { takeTrial: true });
    expect(g1).toMatchObject({ allowed: true });
    expect(g2.allowed).toBe(false);
    if (g1.allowed) await env.breakers.reportTrial(g1.trials[0] as never, true);
    expect((await env.breakers.status('venue:pv')).state).toBe('closed');
    const states = (await env.ledger.listBreakerEvents({ breaker: 'venue:pv' }))
      .map((e) => e.toState)
      .reverse();
    expect(states).toEqual(['open', 'half-open', 'closed']);
  });

  it('a worker that dies mid-order: the job fails as stalled, the reconciler re-drives it, the venue sees one order', async () => {
    env.paper.faults.latencyMs = 800;
    const leg = env.intent(9);
    await env.service.submitPlan({ planId: leg.planId, legs: [leg] });
    const cid = clientOrderIdFor(leg.id);
    await until(async () => (await env.ledger.getOrder(cid))?.status === 'sent');
    await env.pool.close(true); // abandon the active job: its lock is no longer renewed
    env.paper.faults.latencyMs = 0;
    const { startWorkers } = await import('./worker.ts');
    const subscriber2 = env.redis.client();
    const pool2 = await startWorkers({
      connection: env.redis.options,
      queuePrefix: env.prefix,
      venues: new Map([['pv', env.paper]]),
      ledger: env.ledger,
      controls: env.controls,
      breakers: env.breakers,
      killSwitch: env.killSwitch,
      subscriber: subscriber2,
      sendDeadlineMs: 1500,
      pollIntervalMs: 50,
      settings: { lockDuration: 2000, stalledInterval: 500 },
    });
    // the live worker's stalled check fails the job (maxStalledCount 0) instead of re-running it
    const job = await until(async () => {
      const j = await env.service.queue('pv').getJob(leg.id);
      return j?.failedReason ? j : undefined;
    }, 20_000);
    expect(job.failedReason).toMatch(/stalled/);
    const rec = new Reconciler({
      service: env.service,
      ledger: env.ledger,
      redis: env.cmd,
      prefix: env.prefix,
      minAgeMs: 0,
    });
    await rec.sweep();
    const o = await filled(cid);
    expect(o.status).toBe('filled');
    expect(env.placed.filter((c) => c === cid)).toHaveLength(1);
    await pool2.close();
    subscriber2.disconnect(); // an embedded Redis waits for its clients before it stops
  });
});

describe('leader lease', () => {
  let env: Env;
  beforeAll(async () => {
    env = await makeEnv();
  });
  afterAll(async () => {
    await env?.close();
  });

  it('exactly one holder; the standby takes over when the leader stops renewing; stale tokens are fenced', async () => {
    const a = new LeaderLease({ redis: env.cmd, prefix: env.prefix, name: 'orch', ttlMs: 300 });
    const b = new LeaderLease({ redis: env.cmd, prefix: env.prefix, name: 'orch', ttlMs: 300 });
    const ta = await a.tick();
    expect(ta).toBeGreaterThan(0);
    expect(await b.tick()).toBeUndefined();
    const leg = env.intent(20);
    await env.service.submitPlan({ planId: leg.planId, legs: [leg] }, { lease: a });
    await new Promise((r) => setTimeout(r, 400)); // a is paused past its TTL
    const tb = await b.tick();
    expect(tb).toBeGreaterThan(ta as number);
    // a still believes it leads (no tick since), but Redis and the ledger say no
    const stale = env.intent(21);
    await expect(
      env.service.submitPlan({ planId: stale.planId, legs: [stale] }, { lease: a }),
    ).rejects.toThrow(/not the holder/);
    const { FencedOutError } = await import('@xhedge/store');
    await env.service.submitPlan({ planId: env.intent(22).planId, legs: [env.intent(22)] }, { lease: b });
    await expect(
      env.ledger.recordIntent(stale, {
        clientOrderId: clientOrderIdFor(stale.id),
        actor: 'a',
        fence: { leaseName: 'orch', token: ta as number },
      }),
    ).rejects.toBeInstanceOf(FencedOutError);
    await b.stop();
    expect(await a.tick()).toBeGreaterThan(tb as number);
    await a.stop();
  });
});

describe('the net-delta check of a plan (limits.maxNetDeltaUsd)', () => {
  let env: Env;
  beforeAll(async () => {
    // ETH at the paper spot; the cap is 10 ETH of delta
    env = await makeEnv({ limits: { maxNetDeltaUsd: { ETH: 10 * 3000 } } });
  });
  afterAll(async () => {
    await env?.close();
  });

  it('blocks every leg of a plan that pushes the book past the cap, keeps nothing reserved, and lets the hedge back through', async () => {
    const spotUsd = 3000;
    const a = env.intent(1, { sizeBase: '2' });
    const b = env.intent(2, { sizeBase: '3', planId: a.planId });
    // book +9 ETH, the plan adds +5: 14 ETH × 3000 = 42 000 USD > 30 000
    const res = await env.service.submitPlan({
      planId: a.planId,
      legs: [a, b],
      netDelta: { underlying: 'ETH', bookDeltaBase: 9, planDeltaBase: 5, spotUsd },
    });
    expect(res.map((r) => [r.outcome, r.control])).toEqual([
      ['blocked', 'net-delta'],
      ['blocked', 'net-delta'],
    ]);
    expect(res[0]?.reason).toBe(
      'net delta on ETH would be 42000.00 USD > ±30000 USD (book 27000.00 USD, the plan adds 5 ETH)',
    );
    for (const leg of [a, b]) {
      const o = await env.ledger.getOrder(clientOrderIdFor(leg.id));
      expect(o?.status).toBe('cancelled');
      expect(o?.error).toContain('blocked by net-delta');
    }
    expect(await env.metrics.registry.getSingleMetricAsString('xhedge_control_blocks_total')).toContain(
      'xhedge_control_blocks_total{control="net-delta",phase="queue"} 2',
    );
    // the gates had reserved both legs: released, so the live-intent set is empty again
    expect(await env.cmd.zcard(`${env.prefix}:ctl:side:ETH`)).toBe(0);
    // the hedge back from +9 goes, and so does a plan without the net-delta facts
    const c = env.intent(3, { side: 'sell', sizeBase: '5' });
    const d = env.intent(4, { sizeBase: '0.5' });
    const [rc] = await env.service.submitPlan({
      planId: c.planId,
      legs: [c],
      netDelta: { underlying: 'ETH', bookDeltaBase: 9, planDeltaBase: -5, spotUsd },
    });
    const [rd] = await env.service.submitPlan({ planId: d.planId, legs: [d] });
    expect([rc?.outcome, rd?.outcome]).toEqual(['queued', 'queued']);
    await until(async () => {
      const o = await env.ledger.getOrder(clientOrderIdFor(d.id));
      return o?.status === 'filled' ? o : undefined;
    });
    expect(env.placed).not.toContain(clientOrderIdFor(a.id));
    expect(env.placed).not.toContain(clientOrderIdFor(b.id));
  });
});

/** The order once it ended (or throws after the `until` timeout). */
function ended(env: Env, cid: string) {
  return until(async () => {
    const o = await env.ledger.getOrder(cid);
    return o && ['filled', 'cancelled', 'rejected', 'failed'].includes(o.status) ? o : undefined;
  });
}

describe('a plan re-submitted after its order ended', () => {
  let env: Env;
  beforeAll(async () => {
    env = await makeEnv();
  });
  afterAll(async () => {
    await env?.close();
  });

  /** What the window controls hold for an intent: notional, execution count, live (self-cross). */
  const reservation = async (id: string) => {
    const k = keysFor(env.prefix);
    return {
      notionalUsd: await env.cmd.hget(k.ctlNotional, id),
      executedAt: await env.cmd.zscore(k.ctlExec('ETH'), id),
      liveSince: await env.cmd.zscore(k.ctlSide('ETH'), id),
    };
  };
  const jobEnded = (id: string) =>
    until(async () =>
      (await (await env.service.queue('pv').getJob(id))?.getState()) === 'failed' ? true : undefined,
    );

  it('an order cancelled after a partial fill keeps its window notional and execution count; one that never traded gives them back', async () => {
    env.paper.faults.partialFillNext({ fraction: 0.4 });
    const leg = env.intent(1, { sizeBase: '1' });
    await env.service.submitPlan({ planId: leg.planId, legs: [leg] });
    const o = await ended(env, clientOrderIdFor(leg.id));
    expect(o.status).toBe('cancelled');
    expect(Number(o.filledSizeBase)).toBeCloseTo(0.4, 12);
    await jobEnded(leg.id);
    // its run settled it: counted in the windows, no longer live
    const settled = await reservation(leg.id);
    expect(settled.notionalUsd).not.toBeNull();
    expect(settled.executedAt).not.toBeNull();
    expect(settled.liveSince).toBeNull();

    const [again] = await env.service.submitPlan({ planId: leg.planId, legs: [leg] });
    expect(again?.outcome).toBe('duplicate');
    expect(await reservation(leg.id)).toEqual(settled);

    // a rejected order never traded: nothing of it stays, re-submitted or not
    env.paper.faults.rejectNext({ error: 'invalid' });
    const refused = env.intent(2);
    await env.service.submitPlan({ planId: refused.planId, legs: [refused] });
    expect((await ended(env, clientOrderIdFor(refused.id))).status).toBe('rejected');
    await jobEnded(refused.id);
    const none = { notionalUsd: null, executedAt: null, liveSince: null };
    expect(await reservation(refused.id)).toEqual(none);
    const [dup] = await env.service.submitPlan({ planId: refused.planId, legs: [refused] });
    expect(dup?.outcome).toBe('duplicate');
    expect(await reservation(refused.id)).toEqual(none);
  });
});

describe('the venue breaker counts the worker’s order lookups', () => {
  let env: Env;
  beforeAll(async () => {
    // an async keeper: each order is looked up many times before it fills
    env = await makeEnv({
      venueKind: 'paper-gmx',
      venueParams: { keeperDelayMs: 1500 },
      workers: { pollBudgetMs: 20_000, pollIntervalMs: 50, sendDeadlineMs: 5_000 },
    });
  });
  afterAll(async () => {
    await env?.close();
  });

  it('a lookup timeout per order among many good polls does not open venue:pv', async () => {
    // each order's third lookup times out (its run fails and is retried); every other one answers
    const real = env.paper.getOrderByClientId.bind(env.paper);
    const lookups = new Map<string, number>();
    env.paper.getOrderByClientId = async (cid) => {
      const n = (lookups.get(cid) ?? 0) + 1;
      lookups.set(cid, n);
      if (n === 3)
        throw new VenueTimeoutError({
          venue: 'pv',
          message: 'no answer before the deadline (injected)',
          clientOrderId: cid,
        });
      return real(cid);
    };
    try {
      const legs = [1, 2, 3, 4, 5].map((n) => env.intent(n, { chain: 'evm:42161' }));
      for (const leg of legs) await env.service.submitPlan({ planId: leg.planId, legs: [leg] });
      for (const leg of legs) expect((await ended(env, clientOrderIdFor(leg.id))).status).toBe('filled');
      for (const leg of legs) expect(lookups.get(clientOrderIdFor(leg.id))).toBeGreaterThan(3);
      // 5 timeouts among 5 sends and dozens of answered lookups: far below the 50% error rate
      expect((await env.breakers.status('venue:pv')).state).toBe('closed');
      expect(await env.ledger.listBreakerEvents({ breaker: 'venue:pv' })).toEqual([]);
    } finally {
      Reflect.deleteProperty(env.paper, 'getOrderByClientId');
    }
  }, 30_000);
});

describe('a half-open trial order the venue rejects', () => {
  let env: Env;
  beforeAll(async () => {
    env = await makeEnv();
  });
  afterAll(async () => {
    await env?.close();
  });

  it('hands the trial back: the breaker stays half-open and the next order is the trial that closes it', async () => {
    await env.breakers.trip('market:loss', 'loss since mark 1200.00 USD > 1000 USD', {}, 300);
    await new Promise((r) => setTimeout(r, 350)); // the cooldown elapsed: the next send is the trial
    env.paper.faults.rejectNext({ error: 'invalid' });
    const refused = env.intent(1);
    await env.service.submitPlan({ planId: refused.planId, legs: [refused] });
    expect((await ended(env, clientOrderIdFor(refused.id))).status).toBe('rejected');
    // not re-opened for another cooldown by an order-specific refusal, and the trial slot is free
    expect((await env.breakers.status('market:loss')).state).toBe('half-open');
    expect(await env.cmd.exists(keysFor(env.prefix).breakerTrial('market:loss'))).toBe(0);

    const next = env.intent(2);
    await env.service.submitPlan({ planId: next.planId, legs: [next] });
    expect((await ended(env, clientOrderIdFor(next.id))).status).toBe('filled');
    expect((await env.breakers.status('market:loss')).state).toBe('closed');
    const states = (await env.ledger.listBreakerEvents({ breaker: 'market:loss' }))
      .map((e) => e.toState)
      .reverse();
    expect(states).toEqual(['open', 'half-open', 'closed']);
  });
});

describe('a reduce-only order on a venue that does not enforce reduce-only', () => {
  let env: Env;
  beforeAll(async () => {
    env = await makeEnv({ venueKind: 'paper-spot-amm' });
  });
  afterAll(async () => {
    await env?.close();
  });

  it('is judged as any order: an engaged kill switch allowing risk-reducing orders stops it', async () => {
    expect(env.paper.capabilities.reduceOnly).toBe(false);
    const spot = { instrument: 'ETH-USDC:SPOT', chain: 'evm:1', sizeBase: '0.01' };
    const held = env.intent(1, spot);
    await env.service.submitPlan({ planId: held.planId, legs: [held] });
    expect((await ended(env, clientOrderIdFor(held.id))).status).toBe('filled');
    await env.killSwitch.engage('venue:pv', {
      actor: 'operator:test',
      reason: 'drill',
      allowRiskReducing: true,
    });
    try {
      // the venue would take it whatever it does to the position: the flag is only the planner's word
      const flagged = env.intent(2, { ...spot, side: 'sell', reduceOnly: true });
      await env.service.submitPlan({ planId: flagged.planId, legs: [flagged] });
      const o = await ended(env, clientOrderIdFor(flagged.id));
      expect(o.status).toBe('cancelled');
      expect(o.error).toMatch(/kill-switch/);
      expect(env.placed).not.toContain(clientOrderIdFor(flagged.id));
      // a producer told which venues enforce reduce-only blocks it before queueing (reserving nothing)
      const producer = new ExecutionService({
        connection: env.redis.options,
        queuePrefix: env.prefix,
        ledger: env.ledger,
        controls: env.controls,
        breakers: env.breakers,
        killSwitch: env.killSwitch,
        reduceOnlyEnforced: (venue) => venue !== 'pv',
      });
      try {
        const again = env.intent(3, { ...spot, side: 'sell', reduceOnly: true });
        const [r] = await producer.submitPlan({ planId: again.planId, legs: [again] });
        expect(r).toMatchObject({ outcome: 'blocked', control: 'kill-switch' });
      } finally {
        await producer.close();
      }
    } finally {
      await env.killSwitch.release('venue:pv', { actor: 'operator:test', reason: 'drill over' });
    }
  });
});

describe('a half-open trial order slower than its trial token lives', () => {
  let env: Env;
  beforeAll(async () => {
    env = await makeEnv({ trialTtlMs: 300 });
  });
  afterAll(async () => {
    await env?.close();
  });

  it('holds the trial until its report: no second order goes as a trial while the first is at the venue', async () => {
    await env.breakers.trip('market:loss', 'loss since mark 1200.00 USD > 1000 USD', {}, 100);
    await new Promise((r) => setTimeout(r, 150)); // the cooldown elapsed: the next send is the trial
    env.paper.faults.latencyMs = 1500; // the trial's send takes five times the token's 300 ms
    const trial = env.intent(1);
    await env.service.submitPlan({ planId: trial.planId, legs: [trial] });
    const cid = clientOrderIdFor(trial.id);
    await until(async () => (await env.ledger.getOrder(cid))?.status === 'sent');
    await new Promise((r) => setTimeout(r, 800)); // well past the token's lifetime, the send still out
    expect((await env.breakers.status('market:loss')).state).toBe('half-open');
    const second = await env.breakers.gate(['market:loss'], { takeTrial: true });
    expect(second.allowed).toBe(false);
    env.paper.faults.latencyMs = 0;
    expect((await ended(env, cid)).status).toBe('filled');
    // the trial's own report closed it, and its token is gone with the report (no renewal left behind)
    expect((await env.breakers.status('market:loss')).state).toBe('closed');
    await new Promise((r) => setTimeout(r, 250));
    expect(await env.cmd.exists(keysFor(env.prefix).breakerTrial('market:loss'))).toBe(0);
  });
});

describe('a venue breaker its own failure rate tripped', () => {
  let env: Env;
  beforeAll(async () => {
    env = await makeEnv();
  });
  afterAll(async () => {
    await env?.close();
  });

  it('closes on a good half-open trial, though the failures that tripped it are still in its window', async () => {
    // 5 failed calls of 5 (the defaults: minRequests 5, 50%, a 60 s window, a 30 s cooldown)
    for (let i = 0; i < 5; i++)
      await env.breakers.recordVenueCall('pv', { ok: false, timedOut: true, latencyMs: 10 });
    expect((await env.breakers.status('venue:pv')).state).toBe('open');
    // the cooldown has passed (the failures have not left the 60 s window): the next send is the trial
    await env.cmd.hset(keysFor(env.prefix).breaker('venue:pv'), 'openedAt', String(Date.now() - 31_000));
    const trial = env.intent(1);
    await env.service.submitPlan({ planId: trial.planId, legs: [trial] });
    expect((await ended(env, clientOrderIdFor(trial.id))).status).toBe('filled');
    // the trial's own good call is not a sixth sample that re-trips it on the five old failures
    expect((await env.breakers.status('venue:pv')).state).toBe('closed');
    const states = (await env.ledger.listBreakerEvents({ breaker: 'venue:pv' })).map((e) => e.toState);
    expect(states.reverse()).toEqual(['open', 'half-open', 'closed']);
    const next = env.intent(2);
    await env.service.submitPlan({ planId: next.planId, legs: [next] });
    expect((await ended(env, clientOrderIdFor(next.id))).status).toBe('filled');
  });
});

/**
 * Regression (a Postgres crash drill): a plan recorded without the disk flush was lost with the crash
 * while its order was already at the venue; the planner then read no working order and hedged the same
 * exposure again, and both filled. A service records its plans durably unless told otherwise.
 */
describe('plan records are flushed unless a producer opts out', () => {
  let env: Env;
  beforeAll(async () => {
    env = await makeEnv();
  });
  afterAll(async () => {
    await env?.close();
  });

  it('a service built without durableIntents waits for the flush; durableIntents: false does not', async () => {
    const seen: (boolean | undefined)[] = [];
    const record = env.ledger.recordPlan.bind(env.ledger);
    env.ledger.recordPlan = (legs, opts) => {
      seen.push(opts.durable);
      return record(legs, opts);
    };
    const producer = (durableIntents?: boolean) =>
      new ExecutionService({
        connection: env.redis.options,
        queuePrefix: env.prefix,
        ledger: env.ledger,
        controls: env.controls,
        breakers: env.breakers,
        killSwitch: env.killSwitch,
        ...(durableIntents !== undefined ? { durableIntents } : {}),
      });
    for (const [n, p] of [producer(), producer(false)].entries()) {
      try {
        const leg = env.intent(10 + n);
        const [r] = await p.submitPlan({ planId: leg.planId, legs: [leg] });
        expect(r?.outcome).toBe('queued');
        await until(async () => (await env.ledger.getOrder(clientOrderIdFor(leg.id)))?.status === 'filled');
      } finally {
        await p.close();
      }
    }
    expect(seen).toEqual([true, false]);
  });
});

/**
 * Regression (a Postgres outage drill): an order job whose run failed on the ledger was retried on
 * BullMQ's exponential backoff, using an attempt each time. After a two-minute outage its next run was
 * 83 s away, and hedging held that long with the database back; after a few outages the job failed for
 * good ("hedge order failed ... ECONNREFUSED") though its order had filled.
 */
describe('an order job whose ledger cannot be reached', () => {
  let env: Env;
  beforeAll(async () => {
    env = await makeEnv({ workers: { ledgerRetryMs: 100 } });
  });
  afterAll(async () => {
    await env?.close();
  });

  it('runs again shortly on no attempt, past its attempts, and ends with the order filled once', async () => {
    const outageCalls = 12; // more than the job's 10 attempts
    let failed = 0;
    const recordSend = env.ledger.recordSend.bind(env.ledger);
    env.ledger.recordSend = (...a: Parameters<typeof recordSend>) => {
      if (failed < outageCalls) {
        failed++;
        return Promise.reject(
          Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }),
        );
      }
      return recordSend(...a);
    };
    const retries = () => env.metrics.ledgerRetries.get().then((m) => m.values[0]?.value ?? 0);
    const before = await retries();
    const leg = env.intent(1);
    const cid = clientOrderIdFor(leg.id);
    await env.service.submitPlan({ planId: leg.planId, legs: [leg] });
    await until(async () => (await env.ledger.getOrder(cid))?.status === 'filled', 20_000);
    expect(failed).toBe(outageCalls);
    expect(env.placed.filter((c) => c === cid)).toEqual([cid]);
    const q = env.service.queue('pv');
    await until(async () => (await (await q.getJob(leg.id))?.getState()) === 'completed');
    const job = await q.getJob(leg.id);
    // no failed attempt: the one that completed is the only one counted (BullMQ counts it at the end)
    expect(job?.stacktrace ?? []).toEqual([]);
    expect(job?.attemptsMade).toBe(1);
    expect((await retries()) - before).toBe(outageCalls);
  });
});

describe('an order job whose ledger stays unreachable past ledgerRetryForMs', () => {
  let env: Env;
  beforeAll(async () => {
    env = await makeEnv({ workers: { ledgerRetryMs: 100, ledgerRetryForMs: 600 } });
  });
  afterAll(async () => {
    await env?.close();
  });

  it('takes its own retries then (loud, on attempts), and still ends with the order filled once when the ledger is back', async () => {
    let down = true;
    let failed = 0;
    const recordSend = env.ledger.recordSend.bind(env.ledger);
    env.ledger.recordSend = (...a: Parameters<typeof recordSend>) => {
      if (down) {
        failed++;
        return Promise.reject(
          Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }),
        );
      }
      return recordSend(...a);
    };
    const leg = env.intent(1);
    const cid = clientOrderIdFor(leg.id);
    await env.service.submitPlan({ planId: leg.planId, legs: [leg] });
    const q = env.service.queue('pv');
    // handed back on no attempt for about 600 ms, then a failure takes an attempt (its stack is kept)
    const retried = await until(async () => {
      const j = await q.getJob(leg.id);
      return j && (j.stacktrace ?? []).length > 0 ? j : undefined;
    }, 20_000);
    expect(retried.stacktrace?.[0]).toMatch(/ECONNREFUSED/);
    expect(failed).toBeGreaterThan(2);
    expect(retried.data.ledgerDown?.sinceMs).toBeGreaterThan(0);
    down = false;
    await until(async () => (await env.ledger.getOrder(cid))?.status === 'filled', 20_000);
    expect(env.placed.filter((c) => c === cid)).toEqual([cid]);
  });
});
