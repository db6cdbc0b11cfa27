import { randomBytes } from 'node:crypto';
import { type Order, systemClock } from '@xhedge/core';
import { createMarketSimulator } from '@xhedge/sim';
import {
  type DatabaseHandle,
  type Ledger,
  openDatabase,
  postgresReachable,
  TEST_PG_URL,
} from '@xhedge/store';
import { createPaperVenue, type PaperVenue } from '@xhedge/venue-paper';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientOrderIdFor } from './ids.ts';
import { keysFor } from './keys.ts';
import {
  type KillEngagement,
  KillEvent,
  type KillScope,
  KillSwitch,
  KillSwitchReleaseConflictError,
  KillSwitchUnrecordedError,
} from './kill-switch.ts';
import { type Env, makeEnv, until } from './test-env.ts';
import { startWorkers } from './worker.ts';

/** A paper-gmx venue `id` on a market of its own, whose keeper is far slower than the tests. */
function slowKeeperVenue(id: string): PaperVenue {
  return createPaperVenue({
    id,
    kind: 'paper-gmx',
    chain: 'evm:42161',
    market: createMarketSimulator({
      underlyings: { ETH: { spot: 3500, vol: 0.6 } },
      seed: 3,
      clock: systemClock,
    }),
    params: { keeperDelayMs: 60_000 },
  });
}

/** An order the ledger has working at `venue` (no job: only a cancel pass touches it). */
async function workingInLedger(env: Env, n: number, venue = 'pv'): Promise<string> {
  const l = env.intent(n, { chain: 'evm:42161', venue });
  const cid = clientOrderIdFor(l.id);
  await env.ledger.recordPlan([{ intent: l, clientOrderId: cid, status: 'queued' }], { actor: 'test' });
  await env.ledger.transition(cid, 'sent', { actor: 'test' });
  await env.ledger.transition(cid, 'acknowledged', { actor: 'test' });
  return cid;
}

/** The recorded cancel passes of engagement `eventId` (of `scope`), at `venue` or at every venue. */
async function cancelPassesOf(env: Env, scope: string, eventId: string, venue?: string) {
  return (await env.ledger.listKillSwitchEvents({ scope })).filter(
    (e) =>
      e.action === 'cancel-working' &&
      e.details.eventId === eventId &&
      (venue === undefined || e.details.venue === venue),
  );
}

// An async-keeper venue (paper-gmx) keeps orders pending for the keeper delay: working orders whose
// jobs are active (polling the venue) when the kill switch engages.
/**
 * A worker pool of its own, as another process runs it, on venue `id`: its kill switch on `redis` with
 * cancel lease `leaseMs`, its own subscriber, cancel passes retried after 100 ms.
 */
async function processPool(
  env: Env,
  id: string,
  venue: PaperVenue,
  leaseMs: number,
  redis: Env['cmd'],
): Promise<{ pool: Awaited<ReturnType<typeof startWorkers>>; subscriber: Env['cmd'] }> {
  const subscriber = env.redis.client();
  const killSwitch = new KillSwitch({
    redis,
    prefix: env.prefix,
    ledger: env.ledger,
    cancelLeaseMs: leaseMs,
  });
  const pool = await startWorkers({
    connection: env.redis.options,
    queuePrefix: env.prefix,
    venues: new Map([[id, venue]]),
    ledger: env.ledger,
    controls: env.controls,
    breakers: env.breakers,
    killSwitch,
    subscriber,
    killCancelRetryMs: 100,
  });
  return { pool, subscriber };
}

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

// Redis losing the kill-switch hash (restart without AOF, failover, eviction) must not resume trading:
// the ledger is the durable record and `restore` puts lost engagements back.
describe('kill switch restore from the ledger', () => {
  let env: Env;
  beforeAll(async () => {
    env = await makeEnv();
  });
  afterAll(async () => {
    await env?.close();
  });

  const order = { venue: 'pv', underlying: 'ETH' };
  const byScope = <T extends { scope: string }>(xs: T[]) =>
    [...xs].sort((a, b) => a.scope.localeCompare(b.scope));

  it('brings lost engagements back, announces them, does it once, and not after a release', async () => {
    const ks = env.killSwitch;
    await ks.engage('global', { actor: 'risk-owner:ana', reason: 'drill', allowRiskReducing: true });
    await ks.engage('venue:pv', { actor: 'operator:bo', reason: 'venue outage' });
    const before = byScope(await ks.engaged());
    expect(before.map((e) => e.scope)).toEqual(['global', 'venue:pv']);

    // simulated data loss: the hash is gone, nothing blocks any more
    await env.cmd.del(ks.stateKey);
    expect(await ks.blocking({ ...order, reduceOnly: false })).toBeUndefined();

    const heard: KillEvent[] = [];
    const sub = env.redis.client();
    try {
      sub.on('message', (_ch, msg) => heard.push(KillEvent.parse(JSON.parse(msg))));
      await sub.subscribe(ks.channel);

      const restored = byScope(await ks.restore({ actor: 'run' }));
      const states = new Map((await env.ledger.killSwitchStates()).map((s) => [s.scope, s]));
      expect(restored.map(({ engagedAtMs: _, ...rest }) => rest)).toEqual(
        before.map(({ engagedAtMs: _, ...rest }) => rest),
      );
      for (const e of restored) expect(e.engagedAtMs).toBe(states.get(e.scope)?.atMs);
      expect(byScope(await ks.engaged())).toEqual(restored);

      // the gate blocks again: global lets reduce-only pass, venue:pv does not
      expect((await ks.blocking({ ...order, reduceOnly: false }))?.scope).toBe('global');
      expect((await ks.blocking({ ...order, reduceOnly: true }))?.scope).toBe('venue:pv');
      const leg = env.intent(1);
      const res = await env.service.submitPlan({ planId: leg.planId, legs: [leg] });
      expect(res.map((r) => r.outcome)).toEqual(['blocked']);
      expect(await env.metrics.killSwitchEngaged.get()).toMatchObject({
        values: expect.arrayContaining([
          expect.objectContaining({ labels: { scope: 'venue:pv' }, value: 1 }),
        ]),
      });

      // workers hear an engage per restored scope, as for a fresh engagement
      const engages = await until(async () => {
        const e = heard.filter((h) => h.action === 'engage');
        return e.length >= 2 ? e : undefined;
      });
      expect(byScope(engages).map((e) => [e.scope, e.allowRiskReducing])).toEqual([
        ['global', true],
        ['venue:pv', false],
      ]);
      // …and act on them: the workers' cancel pass runs for the restore announcement
      const cancelPass = await until(async () =>
        (await env.ledger.listKillSwitchEvents({ scope: 'venue:pv' })).find(
          (e) => e.action === 'cancel-working' && String(e.details.eventId).includes(':restore:'),
        ),
      );
      expect(cancelPass.details).toMatchObject({ venue: 'pv' });

      const audits = await env.ledger.listAudit({ action: 'kill-switch.restore' });
      expect(byScope(audits.map((a) => ({ ...a, scope: a.subject ?? '' })))).toMatchObject([
        {
          actor: 'run',
          subject: 'global',
          details: { reason: 'drill', originalActor: 'risk-owner:ana', eventId: before[0]?.eventId },
        },
        {
          actor: 'run',
          subject: 'venue:pv',
          details: { reason: 'venue outage', originalActor: 'operator:bo', eventId: before[1]?.eventId },
        },
      ]);
    } finally {
      sub.disconnect();
    }

    // nothing is missing now: a no-op
    expect(await ks.restore({ actor: 'run' })).toEqual([]);
    expect(await env.ledger.listAudit({ action: 'kill-switch.restore' })).toHaveLength(2);

    // a released scope stays released, also after another loss
    expect(await ks.release('venue:pv', { actor: 'operator:bo', reason: 'venue back' })).toBe(true);
    expect(await ks.restore({ actor: 'run' })).toEqual([]);
    await env.cmd.del(ks.stateKey);
    expect((await ks.restore({ actor: 'run' })).map((e) => e.scope)).toEqual(['global']);
    expect((await ks.blocking({ ...order, reduceOnly: true }))?.scope).toBeUndefined();
    expect((await ks.blocking({ ...order, reduceOnly: false }))?.scope).toBe('global');
    await ks.release('global', { actor: 'risk-owner:ana', reason: 'drill over' });
    expect(await ks.restore({ actor: 'run' })).toEqual([]);
    expect(await ks.engaged()).toEqual([]);
  }, 30_000);

  it('only adds: an engagement in Redis whose ledger write failed is left alone', async () => {
    // the same Redis hash, but a ledger whose kill-switch writes fail
    const failing = Object.create(env.ledger) as Ledger;
    failing.recordKillSwitchEvent = async () => {
      throw new Error('ledger down');
    };
    const flaky = new KillSwitch({ redis: env.cmd, prefix: env.prefix, ledger: failing });
    // the caller is told the truth: engaged (orders stopped), not recorded
    const err = await flaky.engage('underlying:BTC', { actor: 'operator:cy', reason: 'btc halt' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(KillSwitchUnrecordedError);
    expect(err).toMatchObject({
      code: 'KILL_SWITCH_UNRECORDED',
      message: expect.stringMatching(/^kill switch ENGAGED underlying:BTC .*did not record it: ledger down/),
      engagement: { scope: 'underlying:BTC', actor: 'operator:cy' },
      details: { engaged: true, recorded: false },
    });
    const raw = await env.cmd.hget(env.killSwitch.stateKey, 'underlying:BTC');
    expect(raw).toBeTruthy();
    expect((await env.killSwitch.engaged()).map((e) => e.scope)).toContain('underlying:BTC');

    expect(await env.killSwitch.restore({ actor: 'run' })).toEqual([]);
    expect(await env.cmd.hget(env.killSwitch.stateKey, 'underlying:BTC')).toBe(raw);
    // a release whose ledger write fails leaves the switch engaged (ledger first, then Redis)
    await expect(flaky.release('underlying:BTC', { actor: 'operator:cy', reason: 'resume' })).rejects.toThrow(
      'ledger down',
    );
    expect(await env.cmd.hget(env.killSwitch.stateKey, 'underlying:BTC')).toBe(raw);
    await env.killSwitch.release('underlying:BTC', { actor: 'operator:cy', reason: 'resume' });
  });

  it('an engagement recorded whose audit line fails says so: engaged and recorded, only the audit missing', async () => {
    const noAudit = Object.create(env.ledger) as Ledger;
    noAudit.recordKillSwitchEvent = env.ledger.recordKillSwitchEvent.bind(env.ledger);
    noAudit.audit = async () => {
      throw new Error('audit table locked');
    };
    const ks = new KillSwitch({ redis: env.cmd, prefix: env.prefix, ledger: noAudit });
    const err = await ks.engage('underlying:ETH', { actor: 'operator:cy', reason: 'eth halt' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({
      code: 'KILL_SWITCH_UNRECORDED',
      part: 'audit',
      message: expect.stringMatching(
        /^kill switch ENGAGED underlying:ETH \(orders are stopped\) and recorded, but its audit entry failed: audit table locked/,
      ),
      details: { engaged: true, recorded: true, audited: false },
    });
    expect((await env.ledger.listKillSwitchEvents({}))[0]).toMatchObject({
      scope: 'underlying:ETH',
      action: 'engage',
    });
    await env.killSwitch.release('underlying:ETH', { actor: 'operator:cy', reason: 'resume' });
  });

  it('undoes its own write when a release lands between its ledger read and its HSETNX', async () => {
    const ks = env.killSwitch;
    await ks.engage('underlying:SOL', { actor: 'operator:di', reason: 'sol halt' });
    await env.cmd.hdel(ks.stateKey, 'underlying:SOL'); // lost
    // a ledger that lets a concurrent release commit right after restore's first read
    let reads = 0;
    const racing = Object.create(env.ledger) as Ledger;
    racing.killSwitchStates = async () => {
      const states = await env.ledger.killSwitchStates();
      reads += 1;
      if (reads === 1) await ks.release('underlying:SOL', { actor: 'operator:di', reason: 'resume' });
      return states;
    };
    const restorer = new KillSwitch({ redis: env.cmd, prefix: env.prefix, ledger: racing });
    expect(await restorer.restore({ actor: 'run' })).toEqual([]);
    expect(reads).toBe(2);
    expect(await env.cmd.hexists(ks.stateKey, 'underlying:SOL')).toBe(0);
  });
});

// Working orders must be cancelled even when the first cancel pass fails or never runs: a venue's cancel
// timing out or an adapter throwing, the ledger failing, or the engagement's announcement lost.
describe('kill switch: working orders are cancelled until it succeeds', () => {
  let env: Env;
  let pw: PaperVenue;
  const chain = 'evm:42161' as const;
  beforeAll(async () => {
    // keepers far slower than the tests: an order stays working until it is cancelled
    env = await makeEnv({
      venueKind: 'paper-gmx',
      venueParams: { keeperDelayMs: 60_000 },
      workers: { pollBudgetMs: 20_000, pollIntervalMs: 50, sendDeadlineMs: 5_000 },
    });
    env.paper.seedPosition('ETH-USD:PERP', 2);
    pw = slowKeeperVenue('pw');
    pw.seedBalance('USDC', 1e8);
    await env.pool.addVenue('pw', pw);
  });
  afterAll(async () => {
    await pw?.close?.();
    await env?.close();
  });

  const status = (cid: string) => env.ledger.getOrder(cid).then((o) => o?.status);
  const cancelPasses = (eventId: string, venue: string) => cancelPassesOf(env, 'global', eventId, venue);

  it('a cancel pass that fails records it, goes on with the other venues and gives its claim back; the next attempt cancels', async () => {
    const a = env.intent(1, { chain });
    const b = env.intent(2, { chain, venue: 'pw' });
    await env.service.submitPlan({ planId: a.planId, legs: [a] });
    await env.service.submitPlan({ planId: b.planId, legs: [b] });
    const ca = clientOrderIdFor(a.id);
    const cb = clientOrderIdFor(b.id);
    await until(async () => (await status(ca)) === 'acknowledged' && (await status(cb)) === 'acknowledged');

    // pv's adapter fails every cancel with a plain Error (not a VenueError) for now
    const real = env.paper.cancelOrder.bind(env.paper);
    let failing = true;
    env.paper.cancelOrder = async (cid) => {
      if (failing) throw new Error('rpc connection reset');
      return real(cid);
    };
    try {
      const e = await env.killSwitch.engage('global', { actor: 'risk-owner:test', reason: 'drill' });
      const claim = (venue: string) => keysFor(env.prefix).killCancelLock(e.eventId, venue);

      const [failed] = await until(async () => {
        const p = await cancelPasses(e.eventId, 'pv');
        return p.length > 0 ? p : undefined;
      }, 8_000);
      expect(failed?.details).toMatchObject({ working: 1, cancelled: 0, failed: 1 });
      expect(String(failed?.details.firstError)).toContain('rpc connection reset');
      // pv's claim is free again; pw's pass ran after pv's failed, and keeps its claim
      expect(await env.cmd.exists(claim('pv'))).toBe(0);
      await until(async () => (await cancelPasses(e.eventId, 'pw')).length > 0, 8_000);
      expect(await env.cmd.exists(claim('pw'))).toBe(1);
      expect((await pw.getOrderByClientId(cb))?.status).toBe('cancelled');
      expect((await env.paper.getOrderByClientId(ca))?.status).toBe('acknowledged');

      // the next attempt at the same event (another process hearing it, here the announcement again)
      // takes the claim and cancels
      failing = false;
      await env.cmd.publish(
        env.killSwitch.channel,
        JSON.stringify({ action: 'engage', scope: 'global', eventId: e.eventId, allowRiskReducing: false }),
      );
      const done = await until(async () =>
        (await cancelPasses(e.eventId, 'pv')).find((p) => p.details.cancelled === 1),
      );
      expect(done.details).not.toHaveProperty('failed');
      expect((await env.paper.getOrderByClientId(ca))?.status).toBe('cancelled');
      await until(async () => (await status(ca)) === 'cancelled');
      expect(env.placed.filter((c) => c === ca)).toHaveLength(1);
    } finally {
      env.paper.cancelOrder = real;
      await env.killSwitch.release('global', { actor: 'risk-owner:test', reason: 'drill over' });
    }
  }, 30_000);

  it('a working order whose run never heard of the engagement (announcement lost) is cancelled by its run; reduce-only stays where allowed', async () => {
    const open = env.intent(3, { chain });
    const reduce = env.intent(4, { chain, side: 'sell', reduceOnly: true, sizeBase: '0.5' });
    await env.service.submitPlan({ planId: open.planId, legs: [open] });
    await env.service.submitPlan({ planId: reduce.planId, legs: [reduce] });
    const co = clientOrderIdFor(open.id);
    const cr = clientOrderIdFor(reduce.id);
    await until(async () => (await status(co)) === 'acknowledged' && (await status(cr)) === 'acknowledged');

    // engaged in Redis without the announcement: no run is aborted, no cancel pass runs
    await env.cmd.hset(
      env.killSwitch.stateKey,
      'global',
      JSON.stringify({
        eventId: 'unannounced',
        actor: 'risk-owner:test',
        reason: 'drill',
        allowRiskReducing: true,
        engagedAtMs: Date.now(),
      }),
    );
    try {
      await until(async () => (await status(co)) === 'cancelled', 8_000);
      expect((await env.paper.getOrderByClientId(co))?.status).toBe('cancelled');
      expect(await cancelPasses('unannounced', 'pv')).toEqual([]);
      // the risk-reducing order is left working (its run polled since, and asked the switch)
      await new Promise((r) => setTimeout(r, 300));
      expect(await status(cr)).toBe('acknowledged');
      expect((await env.paper.getOrderByClientId(cr))?.status).toBe('acknowledged');
    } finally {
      await env.killSwitch.release('global', { actor: 'risk-owner:test', reason: 'drill over' });
    }
  }, 30_000);
});

// A cancel pass that fails is tried again on a timer while the switch stays engaged: the runs of the
// orders' jobs ask for a cancel once per run only, and nothing announces the engagement again.
describe('kill switch: a failed cancel pass is retried on a timer', () => {
  let env: Env;
  const logs: { level: string; msg: string }[] = [];
  const chain = 'evm:42161' as const;
  beforeAll(async () => {
    env = await makeEnv({
      venueKind: 'paper-gmx',
      venueParams: { keeperDelayMs: 60_000 },
      // a run polls a working order for 20 s: its own cancel is asked once in that time
      workers: {
        pollBudgetMs: 20_000,
        pollIntervalMs: 50,
        sendDeadlineMs: 5_000,
        killCancelRetryMs: 100,
        log: (level, msg) => logs.push({ level, msg }),
      },
    });
    env.paper.seedPosition('ETH-USD:PERP', 2);
  });
  afterAll(async () => {
    await env?.close();
  });

  const passes = (eventId: string, venue = 'pv') => cancelPassesOf(env, 'global', eventId, venue);

  it('cancels the working order once the venue answers, with no new announcement', async () => {
    const a = env.intent(1, { chain });
    await env.service.submitPlan({ planId: a.planId, legs: [a] });
    const ca = clientOrderIdFor(a.id);
    await until(async () => (await env.ledger.getOrder(ca))?.status === 'acknowledged');
    // the venue fails its first three cancels (the pass's, the aborted run's and a retry's, in some order)
    const real = env.paper.cancelOrder.bind(env.paper);
    let calls = 0;
    env.paper.cancelOrder = async (cid) => {
      calls += 1;
      if (calls <= 3) throw new Error('rpc connection reset');
      return real(cid);
    };
    try {
      const e = await env.killSwitch.engage('global', { actor: 'risk-owner:test', reason: 'retry drill' });
      await until(async () => (await env.paper.getOrderByClientId(ca))?.status === 'cancelled', 8_000);
      await until(async () => (await env.ledger.getOrder(ca))?.status === 'cancelled', 8_000);
      const p = await passes(e.eventId);
      expect(p.filter((x) => x.details.failed === 1).length).toBeGreaterThanOrEqual(1);
      expect(p.find((x) => x.details.cancelled === 1)?.details).not.toHaveProperty('failed');
      expect(calls).toBeGreaterThanOrEqual(4);
      expect(env.placed.filter((c) => c === ca)).toHaveLength(1);
    } finally {
      env.paper.cancelOrder = real;
      await env.killSwitch.release('global', { actor: 'risk-owner:test', reason: 'drill over' });
    }
  }, 30_000);

  it('a cancel refused at the fee cap (stuckAtCap) is logged at error level, naming the refusal', async () => {
    const a = env.intent(7, { chain });
    await env.service.submitPlan({ planId: a.planId, legs: [a] });
    const ca = clientOrderIdFor(a.id);
    await until(async () => (await env.ledger.getOrder(ca))?.status === 'acknowledged');
    const real = env.paper.cancelOrder.bind(env.paper);
    let calls = 0;
    env.paper.cancelOrder = async (cid) => {
      calls += 1;
      if (calls === 1) throw new Error('rpc connection reset');
      if (calls <= 3)
        // what the EVM sender's FeeCapError carries (this package does not depend on it)
        throw Object.assign(new Error('nonce 7: a cancel needs 10.125 gwei, above the cap 9 gwei'), {
          details: { reason: 'fee-cap', stuckAtCap: true, nonce: 7 },
        });
      return real(cid);
    };
    logs.length = 0;
    try {
      await env.killSwitch.engage('global', { actor: 'risk-owner:test', reason: 'fee cap drill' });
      await until(async () => (await env.ledger.getOrder(ca))?.status === 'cancelled', 8_000);
      const errors = logs.filter((l) => l.level === 'error');
      expect(errors.length).toBeGreaterThanOrEqual(1);
      expect(errors[0]?.msg).toMatch(/refused at the fee cap.*nonce 7: a cancel needs 10\.125 gwei/);
      // only the fee-cap refusal is an error (a connection reset, which the run's own cancel may meet
      // rather than the pass's, is a warning when the pass meets it)
      expect(errors.every((l) => /refused at the fee cap/.test(l.msg))).toBe(true);
    } finally {
      env.paper.cancelOrder = real;
      await env.killSwitch.release('global', { actor: 'risk-owner:test', reason: 'drill over' });
    }
  }, 30_000);

  it('stops retrying once the switch is released', async () => {
    await workingInLedger(env, 2);
    const real = env.paper.cancelOrder.bind(env.paper);
    env.paper.cancelOrder = async () => {
      throw new Error('venue unreachable');
    };
    try {
      const e = await env.killSwitch.engage('global', { actor: 'risk-owner:test', reason: 'release drill' });
      // the announcement's pass and a retry failed
      await until(async () => ((await passes(e.eventId)).length >= 2 ? true : undefined), 8_000);
      await env.killSwitch.release('global', { actor: 'risk-owner:test', reason: 'drill over' });
      // at most a retry under way at the release finishes; none comes after (they were 100, 200, 400 ms apart)
      await new Promise((r) => setTimeout(r, 300));
      const atRelease = (await passes(e.eventId)).length;
      await new Promise((r) => setTimeout(r, 1_500));
      expect((await passes(e.eventId)).length).toBe(atRelease);
    } finally {
      env.paper.cancelOrder = real;
    }
  }, 30_000);

  it('leaves no retry behind when the pool closes', async () => {
    const pz = slowKeeperVenue('pz');
    let calls = 0;
    pz.cancelOrder = async () => {
      calls += 1;
      throw new Error('venue unreachable');
    };
    await workingInLedger(env, 3, 'pz');
    const subscriber = env.redis.client();
    const pool = await startWorkers({
      connection: env.redis.options,
      queuePrefix: env.prefix,
      venues: new Map([['pz', pz]]),
      ledger: env.ledger,
      controls: env.controls,
      breakers: env.breakers,
      killSwitch: env.killSwitch,
      subscriber,
      killCancelRetryMs: 100,
    });
    try {
      const e = await env.killSwitch.engage('global', { actor: 'risk-owner:test', reason: 'close drill' });
      await until(async () => ((await passes(e.eventId, 'pz')).length >= 2 ? true : undefined), 8_000);
      await pool.close();
      const atClose = calls;
      await new Promise((r) => setTimeout(r, 1_500));
      expect(calls).toBe(atClose);
    } finally {
      await pool.close();
      subscriber.disconnect();
      await pz.close?.();
      await env.killSwitch.release('global', { actor: 'risk-owner:test', reason: 'drill over' });
    }
  }, 30_000);
});

// The cancel claim is a lease: a process killed in the middle of its cancel pass (kill -9) must not keep
// the venue's working orders from being cancelled for long, and a live pass, however slow, keeps its
// claim until it finished, after which no process repeats it.
describe('kill switch: the cancel claim is a lease', () => {
  let env: Env;
  const leaseMs = 300;
  const opened: { close(): Promise<void> }[] = [];
  beforeAll(async () => {
    env = await makeEnv();
  });
  afterAll(async () => {
    for (const o of opened.reverse()) await o.close();
    await env?.close();
  });

  /** A paper venue whose cancels are counted (and take `cancelMs`), each answering `cancelled`. */
  const venueWithCancels = (id: string, cancelMs = 0) => {
    const v = slowKeeperVenue(id);
    const cancels: string[] = [];
    v.cancelOrder = async (cid) => {
      cancels.push(cid);
      await new Promise((r) => setTimeout(r, cancelMs));
      return { clientOrderId: cid, status: 'cancelled' } as unknown as Order;
    };
    return { venue: v, cancels };
  };

  /** Another process: its own worker pool on `venue`, with a kill switch whose cancel lease is `leaseMs`. */
  const processOn = async (id: string, venue: PaperVenue) => {
    const { pool, subscriber } = await processPool(env, id, venue, leaseMs, env.cmd);
    const p = {
      pool,
      async close() {
        await pool.close();
        subscriber.disconnect();
        await venue.close?.();
      },
    };
    opened.push(p);
    return p;
  };

  /** The recorded cancel passes of an engagement `venue:<venue>` (the env's own pool records its pv's too). */
  const passes = (scope: `venue:${string}`, eventId: string) =>
    cancelPassesOf(env, scope, eventId, scope.slice('venue:'.length));
  const announce = (scope: string, eventId: string) =>
    env.cmd.publish(
      env.killSwitch.channel,
      JSON.stringify({ action: 'engage', scope, eventId, allowRiskReducing: false }),
    );
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it('a claim whose process died mid-pass lapses after the lease, and another process takes the pass over', async () => {
    const cid = await workingInLedger(env, 1, 'pd');
    const scope = 'venue:pd' as const;
    const e = await env.killSwitch.engage(scope, { actor: 'risk-owner:test', reason: 'dead drill' });
    const claimKey = keysFor(env.prefix).killCancelLock(e.eventId, 'pd');
    try {
      // a process took the claim, then died (kill -9): never renewed, never finished nor given back
      const dead = new KillSwitch({ redis: env.cmd, prefix: env.prefix, cancelLeaseMs: leaseMs });
      expect(await dead.claimCancel(e.eventId, 'pd', 'worker:dead')).toBe('taken');
      const other = new KillSwitch({ redis: env.cmd, prefix: env.prefix, cancelLeaseMs: leaseMs });
      expect(await other.claimCancel(e.eventId, 'pd', 'worker:other')).toBe('running');
      expect(await env.cmd.pttl(claimKey)).toBeLessThanOrEqual(leaseMs);

      // a live process hears the engagement while the dead claim still stands: it skips the venue for
      // now, looks again after a lease and takes the pass over
      const { venue, cancels } = venueWithCancels('pd');
      const live = await processOn('pd', venue);
      await announce(scope, e.eventId);
      const [done] = await until(async () => {
        const p = await passes(scope, e.eventId);
        return p.length > 0 ? p : undefined;
      }, 8_000);
      expect(done?.actor).toBe(live.pool.workerId);
      expect(done?.details).toMatchObject({ venue: 'pd', working: 1, cancelled: 1 });
      expect(cancels).toEqual([cid]);
      expect(await env.cmd.get(claimKey)).toBe(`done|${live.pool.workerId}`);
      // the dead process's claim cannot be given back or renewed over the pass that replaced it
      expect(await dead.giveBackCancel(e.eventId, 'pd', 'worker:dead')).toBe(false);
      expect(await dead.renewCancel(e.eventId, 'pd', 'worker:dead')).toBe(false);
      expect(await env.cmd.get(claimKey)).toBe(`done|${live.pool.workerId}`);
    } finally {
      await env.killSwitch.release(scope, { actor: 'risk-owner:test', reason: 'drill over' });
    }
  }, 30_000);

  it('a live pass that takes longer than the lease keeps its claim (renewed) until it finished', async () => {
    const cid = await workingInLedger(env, 2, 'pl');
    const scope = 'venue:pl' as const;
    // the venue answers a cancel after four leases
    const { venue, cancels } = venueWithCancels('pl', 4 * leaseMs);
    const slow = await processOn('pl', venue);
    const e = await env.killSwitch.engage(scope, { actor: 'risk-owner:test', reason: 'slow drill' });
    const claimKey = keysFor(env.prefix).killCancelLock(e.eventId, 'pl');
    const other = new KillSwitch({ redis: env.cmd, prefix: env.prefix, cancelLeaseMs: leaseMs });
    try {
      await until(async () => cancels.length > 0, 8_000, 10);
      // two leases into the venue call: the claim is still the slow pass's
      await sleep(2 * leaseMs);
      expect(await env.cmd.get(claimKey)).toBe(`run|${slow.pool.workerId}`);
      expect(await other.claimCancel(e.eventId, 'pl', 'worker:other')).toBe('running');
      expect(await passes(scope, e.eventId)).toEqual([]);

      const [done] = await until(async () => {
        const p = await passes(scope, e.eventId);
        return p.length > 0 ? p : undefined;
      }, 8_000);
      expect(done?.actor).toBe(slow.pool.workerId);
      expect(done?.details).toMatchObject({ venue: 'pl', working: 1, cancelled: 1 });
      expect(cancels).toEqual([cid]);
      // finished: marked done for far longer than a lease
      expect(await env.cmd.get(claimKey)).toBe(`done|${slow.pool.workerId}`);
      expect(await env.cmd.pttl(claimKey)).toBeGreaterThan(60_000);
      expect(await other.claimCancel(e.eventId, 'pl', 'worker:other')).toBe('done');
    } finally {
      await env.killSwitch.release(scope, { actor: 'risk-owner:test', reason: 'drill over' });
    }
  }, 30_000);

  it('a finished pass is not redone by another process, also after the lease', async () => {
    const cid = await workingInLedger(env, 3, 'pf');
    const scope = 'venue:pf' as const;
    const first = venueWithCancels('pf');
    const a = await processOn('pf', first.venue);
    const e = await env.killSwitch.engage(scope, { actor: 'risk-owner:test', reason: 'done drill' });
    try {
      await until(async () => (await passes(scope, e.eventId)).length > 0, 8_000);
      expect(first.cancels).toEqual([cid]);
      // long after the lease, a second process hears the engagement (and the first hears it again)
      await sleep(2 * leaseMs);
      const second = venueWithCancels('pf');
      await processOn('pf', second.venue);
      await announce(scope, e.eventId);
      await sleep(4 * leaseMs);
      expect(second.cancels).toEqual([]);
      expect(first.cancels).toEqual([cid]);
      const p = await passes(scope, e.eventId);
      expect(p).toHaveLength(1);
      expect(p[0]?.actor).toBe(a.pool.workerId);
    } finally {
      await env.killSwitch.release(scope, { actor: 'risk-owner:test', reason: 'drill over' });
    }
  }, 30_000);
  it('a pass stuck past ten leases stops renewing its claim: another process takes the pass over', async () => {
    const cid = await workingInLedger(env, 5, 'ph');
    const scope = 'venue:ph' as const;
    const ledger = env.ledger as unknown as { listAllOrders: (q: { venue?: string }) => Promise<unknown> };
    const list = ledger.listAllOrders.bind(ledger);
    let hang = true;
    // the first pass at venue ph never gets its working orders from the ledger (a call that never answers)
    ledger.listAllOrders = (q) => {
      if (q.venue === 'ph' && hang) {
        hang = false;
        return new Promise(() => {});
      }
      return list(q);
    };
    try {
      const stuck = venueWithCancels('ph');
      await processOn('ph', stuck.venue);
      const e = await env.killSwitch.engage(scope, { actor: 'risk-owner:test', reason: 'stuck drill' });
      await until(async () => !hang, 5_000, 10);
      // a second process, started while the switch is engaged, finds the claim held and looks again
      const other = venueWithCancels('ph');
      const b = await processOn('ph', other.venue);
      const [done] = await until(async () => {
        const p = await passes(scope, e.eventId);
        return p.length > 0 ? p : undefined;
      }, 15_000);
      expect(done?.actor).toBe(b.pool.workerId);
      expect(other.cancels).toEqual([cid]);
      expect(stuck.cancels).toEqual([]);
    } finally {
      ledger.listAllOrders = list;
      await env.killSwitch.release(scope, { actor: 'risk-owner:test', reason: 'drill over' });
    }
  }, 30_000);

  it('a claim of an older release (no run| prefix, set for an hour) counts as lapsed after a lease: a rolling deploy', async () => {
    const cid = await workingInLedger(env, 6, 'po');
    const scope = 'venue:po' as const;
    const e = await env.killSwitch.engage(scope, { actor: 'risk-owner:test', reason: 'deploy drill' });
    const claimKey = keysFor(env.prefix).killCancelLock(e.eventId, 'po');
    const legacyKey = keysFor(env.prefix).killCancelLock(`${e.eventId}-legacy`, 'po');
    try {
      // an old process claimed the venue (its id alone, for an hour) and died mid-pass, or finished
      await env.cmd.set(claimKey, 'worker:old', 'PX', 3_600_000);
      const other = new KillSwitch({ redis: env.cmd, prefix: env.prefix, cancelLeaseMs: leaseMs });
      // within its first lease it may be a live pass: left alone
      expect(await other.claimCancel(e.eventId, 'po', 'worker:other')).toBe('running');
      expect(await env.cmd.get(claimKey)).toBe('worker:old');
      // a new process hears the engagement: it looks again after a lease and takes the pass over
      const { venue, cancels } = venueWithCancels('po');
      const live = await processOn('po', venue);
      await announce(scope, e.eventId);
      const [done] = await until(async () => {
        const p = await passes(scope, e.eventId);
        return p.length > 0 ? p : undefined;
      }, 5_000);
      expect(done?.actor).toBe(live.pool.workerId);
      expect(cancels).toEqual([cid]);
      expect(await env.cmd.get(claimKey)).toBe(`done|${live.pool.workerId}`);
      // the old process's give-back (compare-and-delete on its id) leaves the new claim alone
      expect(await other.giveBackCancel(e.eventId, 'po', 'worker:old')).toBe(false);
      // the oldest format ('1') alike: taken once older than a lease, as a lease of our own
      await env.cmd.set(legacyKey, '1', 'PX', 3_600_000);
      await sleep(2 * leaseMs);
      expect(await other.claimCancel(`${e.eventId}-legacy`, 'po', 'worker:other')).toBe('taken');
      expect(await env.cmd.get(legacyKey)).toBe('run|worker:other');
      expect(await env.cmd.pttl(legacyKey)).toBeLessThanOrEqual(leaseMs);
    } finally {
      await env.cmd.del(legacyKey);
      await env.killSwitch.release(scope, { actor: 'risk-owner:test', reason: 'drill over' });
    }
  }, 30_000);

  it('a switch engaged while no process ran: a pool that starts makes the cancel pass', async () => {
    const cid = await workingInLedger(env, 4, 'ps');
    const scope = 'venue:ps' as const;
    // engaged and announced with no pool on venue ps listening
    const e = await env.killSwitch.engage(scope, { actor: 'risk-owner:test', reason: 'restart drill' });
    try {
      await sleep(2 * leaseMs);
      expect(await passes(scope, e.eventId)).toEqual([]);
      const { venue, cancels } = venueWithCancels('ps');
      const started = await processOn('ps', venue);
      const [done] = await until(async () => {
        const p = await passes(scope, e.eventId);
        return p.length > 0 ? p : undefined;
      }, 8_000);
      expect(done?.actor).toBe(started.pool.workerId);
      expect(done?.details).toMatchObject({ venue: 'ps', working: 1, cancelled: 1 });
      expect(cancels).toEqual([cid]);
    } finally {
      await env.killSwitch.release(scope, { actor: 'risk-owner:test', reason: 'drill over' });
    }
  }, 30_000);
});

describe('kill switch: a cancel pass is retried for as long as a venue may refuse it', () => {
  let env: Env;
  beforeAll(async () => {
    env = await makeEnv({
      venueKind: 'paper-gmx',
      venueParams: { keeperDelayMs: 60_000 },
      // the production schedule (1 s doubling to 30 s) squeezed: 10 ms doubling to 20 ms
      workers: { killCancelRetryMs: 10, killCancelRetryMaxMs: 20, killCancelTimeoutMs: 200 },
    });
  });
  afterAll(async () => {
    await env?.close();
  });

  it('keeps trying past eight refusals (a GMX market order is not cancellable for its first 300 s)', async () => {
    await workingInLedger(env, 1);
    const real = env.paper.cancelOrder.bind(env.paper);
    let calls = 0;
    // the venue refuses the cancel twelve times (RequestNotYetCancellable), then takes it
    env.paper.cancelOrder = async (c) => {
      calls += 1;
      if (calls <= 12) throw new Error('RequestNotYetCancellable(12, 300, "MarketIncrease")');
      return { clientOrderId: c, status: 'cancelled' } as unknown as Order;
    };
    try {
      const e = await env.killSwitch.engage('global', { actor: 'risk-owner:test', reason: 'gmx drill' });
      const done = await until(async () => {
        const p = (await cancelPassesOf(env, 'global', e.eventId)).filter((x) => x.details.cancelled === 1);
        return p.length > 0 ? p : undefined;
      }, 15_000);
      expect(done[0]?.details).toMatchObject({ venue: 'pv', working: 1, cancelled: 1 });
      expect(calls).toBe(13);
    } finally {
      env.paper.cancelOrder = real;
      await env.killSwitch.release('global', { actor: 'risk-owner:test', reason: 'drill over' });
    }
  }, 30_000);
  it('a venue cancel that never answers times out: the pass gives its claim back and a retry cancels', async () => {
    await workingInLedger(env, 2);
    const real = env.paper.cancelOrder.bind(env.paper);
    let calls = 0;
    // the first cancel hangs (an RPC that never answers), the next one is taken
    env.paper.cancelOrder = (c) => {
      calls += 1;
      if (calls === 1) return new Promise<Order>(() => {});
      return Promise.resolve({ clientOrderId: c, status: 'cancelled' } as unknown as Order);
    };
    try {
      const e = await env.killSwitch.engage('global', { actor: 'risk-owner:test', reason: 'hang drill' });
      const passes = () => cancelPassesOf(env, 'global', e.eventId);
      // (the ledger still lists the order of the test before as working: a pass cancels both)
      const done = await until(async () => {
        const p = (await passes()).filter((x) => x.details.failed === undefined);
        return p.length > 0 ? p : undefined;
      }, 10_000);
      expect(done[0]?.details.venue).toBe('pv');
      expect(done[0]?.details.cancelled).toBe(done[0]?.details.working);
      const timedOut = (await passes()).find((x) => x.details.failed === 1);
      expect(String(timedOut?.details.firstError)).toMatch(/no answer within 200 ms/);
      expect(calls).toBeGreaterThanOrEqual(2);
    } finally {
      env.paper.cancelOrder = real;
      await env.killSwitch.release('global', { actor: 'risk-owner:test', reason: 'drill over' });
    }
  }, 30_000);
});

// A pool's close must not shut its Redis and ledger under a cancel pass (the start-up one, or one an
// announcement started) and leave that pass's claim standing for a lease: it lets the pass finish, or
// aborts it and gives the claim back at once; nothing rejects unhandled after it.
describe('kill switch: the pool closes after its cancel passes', () => {
  let env: Env;
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  beforeAll(async () => {
    env = await makeEnv();
    process.on('unhandledRejection', onUnhandled);
  });
  afterAll(async () => {
    process.off('unhandledRejection', onUnhandled);
    await env?.close();
  });

  /**
   * A pool of its own on venue `id`, whose kill switch (own Redis client, lease `leaseMs`) and
   * subscriber are closed right after the pool, as a process shutting down does. Cancels answer
   * `cancelled` after `cancelMs`, or never (`'never'`).
   */
  const poolOn = async (id: string, o: { cancelMs: number | 'never'; leaseMs: number }) => {
    const venue = slowKeeperVenue(id);
    const cancels: string[] = [];
    venue.cancelOrder = (cid) => {
      cancels.push(cid);
      if (o.cancelMs === 'never') return new Promise<Order>(() => {});
      const ms = o.cancelMs;
      return new Promise((r) =>
        setTimeout(() => r({ clientOrderId: cid, status: 'cancelled' } as Order), ms),
      );
    };
    const ksRedis = env.redis.client();
    const { pool, subscriber } = await processPool(env, id, venue, o.leaseMs, ksRedis);
    return {
      pool,
      cancels,
      /** Closes the pool, then its connections; resolves with how long the pool's close took, ms. */
      async close(force = false) {
        const t0 = performance.now();
        await pool.close(force);
        const ms = performance.now() - t0;
        ksRedis.disconnect();
        subscriber.disconnect();
        await venue.close?.();
        return ms;
      },
    };
  };
  const claimOf = (eventId: string, venue: string) =>
    env.cmd.get(keysFor(env.prefix).killCancelLock(eventId, venue));
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it('a graceful close right after start lets the start-up pass finish: the claim is done, not left running', async () => {
    const cid = await workingInLedger(env, 1, 'pa');
    const scope = 'venue:pa' as const;
    const e = await env.killSwitch.engage(scope, { actor: 'risk-owner:test', reason: 'close drill' });
    try {
      const p = await poolOn('pa', { cancelMs: 300, leaseMs: 5_000 });
      const took = await p.close();
      expect(await claimOf(e.eventId, 'pa')).toBe(`done|${p.pool.workerId}`);
      expect(p.cancels).toEqual([cid]);
      expect(await cancelPassesOf(env, scope, e.eventId, 'pa')).toHaveLength(1);
      expect(took).toBeLessThan(5_000);
      await sleep(300);
      expect(unhandled).toEqual([]);
    } finally {
      await env.killSwitch.release(scope, { actor: 'risk-owner:test', reason: 'drill over' });
    }
  }, 30_000);

  it('a graceful close waits a lease at most: a pass stuck at the venue is aborted and gives its claim back', async () => {
    await workingInLedger(env, 2, 'pb');
    const scope = 'venue:pb' as const;
    const e = await env.killSwitch.engage(scope, { actor: 'risk-owner:test', reason: 'stuck close drill' });
    try {
      const p = await poolOn('pb', { cancelMs: 'never', leaseMs: 400 });
      await until(async () => p.cancels.length > 0, 5_000, 10);
      const took = await p.close();
      expect(took).toBeGreaterThanOrEqual(300);
      expect(took).toBeLessThan(2_000);
      // given back: another process takes the pass over now, not a lease later
      expect(await claimOf(e.eventId, 'pb')).toBeNull();
      await sleep(300);
      expect(await claimOf(e.eventId, 'pb')).toBeNull();
      expect(p.cancels).toHaveLength(1);
      expect(unhandled).toEqual([]);
    } finally {
      await env.killSwitch.release(scope, { actor: 'risk-owner:test', reason: 'drill over' });
    }
  }, 30_000);

  it('a forced close aborts the pass an announcement started and gives its claim back at once', async () => {
    await workingInLedger(env, 3, 'pc');
    const scope = 'venue:pc' as const;
    const p = await poolOn('pc', { cancelMs: 'never', leaseMs: 10_000 });
    const e = await env.killSwitch.engage(scope, { actor: 'risk-owner:test', reason: 'forced close drill' });
    try {
      await until(async () => p.cancels.length > 0, 5_000, 10);
      expect(await claimOf(e.eventId, 'pc')).toBe(`run|${p.pool.workerId}`);
      const took = await p.close(true);
      expect(took).toBeLessThan(1_000);
      expect(await claimOf(e.eventId, 'pc')).toBeNull();
      const other = new KillSwitch({ redis: env.cmd, prefix: env.prefix });
      expect(await other.claimCancel(e.eventId, 'pc', 'worker:other')).toBe('taken');
      await sleep(300);
      expect(p.cancels).toHaveLength(1);
      expect(unhandled).toEqual([]);
    } finally {
      await env.killSwitch.release(scope, { actor: 'risk-owner:test', reason: 'drill over' });
    }
  }, 30_000);
});

/** The test Postgres in a schema of its own (dropped by the env's close) when it answers, else PGlite. */
async function raceLedgerDb(): Promise<DatabaseHandle> {
  if (await postgresReachable())
    return openDatabase({ url: TEST_PG_URL, schema: `t_${randomBytes(6).toString('hex')}`, poolSize: 4 });
  console.warn(`[kill-switch tests] Postgres at ${TEST_PG_URL} not reachable: the race tests run on PGlite`);
  return openDatabase();
}

// The races an audit of a live run found, made deterministic: the other party's step runs inside the
// release, between its read of Redis and its removal (at its ledger write).
describe('kill switch: a release racing an engage', () => {
  let env: Env;
  beforeAll(async () => {
    env = await makeEnv({ db: await raceLedgerDb() });
  });
  afterAll(async () => {
    await env?.close();
  });

  /**
   * A kill switch on the env's Redis and ledger whose release runs `between` after it read Redis: right
   * before its ledger event (`before`) or right after it (`after`), either way before it removes the entry.
   */
  const releasing = (between: () => Promise<unknown>, at: 'before' | 'after') => {
    const racing = Object.create(env.ledger) as Ledger;
    racing.recordKillSwitchEvent = async (e) => {
      if (e.action === 'release' && at === 'before') await between();
      await env.ledger.recordKillSwitchEvent(e);
      if (e.action === 'release' && at === 'after') await between();
    };
    racing.audit = (e) => env.ledger.audit(e);
    return new KillSwitch({ redis: env.cmd, prefix: env.prefix, ledger: racing });
  };
  const inRedis = async (scope: KillScope) => (await env.killSwitch.engaged()).find((e) => e.scope === scope);
  const lastWord = async (scope: KillScope) =>
    (await env.ledger.killSwitchStates()).find((s) => s.scope === scope);
  /** Redis loses the scope, the periodic restore runs: what it puts back. */
  const afterLossAndRestore = async (scope: KillScope) => {
    await env.cmd.hdel(env.killSwitch.stateKey, scope);
    await env.killSwitch.restore({ actor: 'run' });
    return inRedis(scope);
  };

  for (const at of ['before', 'after'] as const)
    it(`an engage ${at} the release's ledger event stays engaged; the release says so; ledger and restore agree with Redis`, async () => {
      const scope: KillScope = at === 'before' ? 'underlying:SOL' : 'underlying:AVAX';
      const ks = env.killSwitch;
      await ks.engage(scope, { actor: 'operator:ana', reason: 'sol halt', allowRiskReducing: true });
      let newer: KillEngagement | undefined;
      const rel = releasing(async () => {
        newer = await ks.engage(scope, { actor: 'risk-owner:bo', reason: 'depeg: full stop' });
      }, at);
      const err = await rel.release(scope, { actor: 'operator:ana', reason: 'halt over' }).then(
        (r) => r,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(KillSwitchReleaseConflictError);
      expect(err).toMatchObject({
        code: 'KILL_SWITCH_RELEASE_CONFLICT',
        message: expect.stringMatching(
          new RegExp(
            `^kill switch ${scope} NOT released: engaged again by risk-owner:bo at .*depeg: full stop`,
          ),
        ),
        details: {
          scope,
          engaged: true,
          released: false,
          eventId: newer?.eventId,
          actor: 'risk-owner:bo',
          reason: 'depeg: full stop',
          allowRiskReducing: false,
          engagedAtMs: newer?.engagedAtMs,
          ledgerRestated: true,
        },
      });
      const held = await inRedis(scope);
      expect(held).toMatchObject({
        eventId: newer?.eventId,
        actor: 'risk-owner:bo',
        allowRiskReducing: false,
      });
      // the ledger's last word is the engagement Redis holds, whichever of the two events came first
      expect(await lastWord(scope)).toMatchObject({
        action: 'engage',
        allowRiskReducing: false,
        details: { eventId: newer?.eventId },
      });
      expect(await afterLossAndRestore(scope)).toEqual(held);
      expect(await ks.release(scope, { actor: 'operator:ana', reason: 'over now' })).toBe(true);
      expect(await lastWord(scope)).toMatchObject({
        action: 'release',
        details: { releasedEventId: newer?.eventId },
      });
      expect(await afterLossAndRestore(scope)).toBeUndefined();
    });

  it('a release of a scope not engaged when it read leaves an engagement that arrived meanwhile', async () => {
    const scope: KillScope = 'underlying:DOT';
    let newer: KillEngagement | undefined;
    const rel = releasing(async () => {
      newer = await env.killSwitch.engage(scope, { actor: 'operator:cy', reason: 'dot halt' });
    }, 'before');
    const err = await rel.release(scope, { actor: 'operator:di', reason: 'cleanup' }).then(
      (r) => r,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({
      code: 'KILL_SWITCH_RELEASE_CONFLICT',
      details: { scope, eventId: newer?.eventId, actor: 'operator:cy' },
    });
    expect((await inRedis(scope))?.eventId).toBe(newer?.eventId);
    expect(await lastWord(scope)).toMatchObject({ action: 'engage', details: { eventId: newer?.eventId } });
    expect(await env.killSwitch.release(scope, { actor: 'operator:cy', reason: 'over' })).toBe(true);
  });

  it('a release with nothing raced it releases as before: true, then false', async () => {
    const scope: KillScope = 'underlying:ATOM';
    await env.killSwitch.engage(scope, { actor: 'operator:cy', reason: 'atom halt' });
    expect(await env.killSwitch.release(scope, { actor: 'operator:cy', reason: 'over' })).toBe(true);
    expect(await env.killSwitch.release(scope, { actor: 'operator:cy', reason: 'again' })).toBe(false);
    expect(await inRedis(scope)).toBeUndefined();
  });
});

describe('kill switch: an engage never loosens an engaged scope by accident', () => {
  let env: Env;
  beforeAll(async () => {
    env = await makeEnv({ db: await raceLedgerDb() });
  });
  afterAll(async () => {
    await env?.close();
  });
  const order = { venue: 'pv', underlying: 'ETH' };
  const inRedis = async (scope: KillScope) => (await env.killSwitch.engaged()).find((e) => e.scope === scope);

  it('a reduce-only engage after a full stop keeps the full stop and its who and why; ledger and restore agree', async () => {
    const ks = env.killSwitch;
    const scope: KillScope = 'venue:pv';
    const first = await ks.engage(scope, { actor: 'operator:ana', reason: 'venue hacked' });
    expect(first).toMatchObject({ change: 'engaged', actor: 'operator:ana', allowRiskReducing: false });
    const second = await ks.engage(scope, {
      actor: 'drop-copy',
      reason: 'position break on ETH-USD:PERP',
      allowRiskReducing: true,
    });
    expect(second).toMatchObject({
      scope,
      change: 'kept',
      actor: 'operator:ana',
      reason: 'venue hacked',
      allowRiskReducing: false,
      engagedAtMs: first.engagedAtMs,
      requested: { actor: 'drop-copy', reason: 'position break on ETH-USD:PERP', allowRiskReducing: true },
      previous: { eventId: first.eventId, actor: 'operator:ana', allowRiskReducing: false },
    });
    expect(second.eventId).not.toBe(first.eventId);
    const { change: _c, requested: _r, previous: _p, ...inForce } = second;
    expect(await inRedis(scope)).toEqual(inForce);
    // reduce-only orders are still stopped
    expect(await ks.blocking({ ...order, reduceOnly: true })).toMatchObject({ scope, actor: 'operator:ana' });
    // the ledger: who asked, the setting in force, and the engagement in force
    const ev = (await env.ledger.listKillSwitchEvents({ scope })).find((e) => e.action === 'engage');
    expect(ev).toMatchObject({
      action: 'engage',
      actor: 'drop-copy',
      reason: 'position break on ETH-USD:PERP',
      allowRiskReducing: false,
      details: {
        eventId: second.eventId,
        change: 'kept',
        requestedAllowRiskReducing: true,
        inForce: { actor: 'operator:ana', reason: 'venue hacked', engagedAtMs: first.engagedAtMs },
      },
    });
    // a restore after a loss puts back exactly what Redis held
    await env.cmd.hdel(ks.stateKey, scope);
    expect((await ks.restore({ actor: 'run' })).find((e) => e.scope === scope)).toEqual(inForce);

    // a full stop over a reduce-only engagement tightens it: the new one is in force
    const underlying: KillScope = 'underlying:ETH';
    await ks.engage(underlying, { actor: 'drop-copy', reason: 'break', allowRiskReducing: true });
    const tight = await ks.engage(underlying, { actor: 'operator:bo', reason: 'full stop' });
    expect(tight).toMatchObject({ change: 'tightened', actor: 'operator:bo', allowRiskReducing: false });
    // loosening on purpose: replace
    const loose = await ks.engage(underlying, {
      actor: 'operator:bo',
      reason: 'reduce only now',
      allowRiskReducing: true,
      replace: true,
    });
    expect(loose).toMatchObject({ change: 'replaced', reason: 'reduce only now', allowRiskReducing: true });
    expect((await inRedis(underlying))?.allowRiskReducing).toBe(true);
    await ks.release(underlying, { actor: 'operator:bo', reason: 'over' });
    await ks.release(scope, { actor: 'operator:ana', reason: 'over' });
  });

  it('an engage recorded late (switch without a ledger, as the CLI) is restated under a full stop that tightened it meanwhile', async () => {
    const scope: KillScope = 'underlying:SOL';
    const cli = new KillSwitch({ redis: env.cmd, prefix: env.prefix }); // as the CLI builds it
    const a = await cli.engage(scope, {
      actor: 'operator:cli',
      reason: 'reduce only please',
      allowRiskReducing: true,
    });
    const b = await env.killSwitch.engage(scope, { actor: 'operator:api', reason: 'full stop' });
    expect([a.change, b.change]).toEqual(['engaged', 'tightened']);
    // the CLI's ledger opened late: its event comes after the full stop's
    await cli.recordEngagement(env.ledger, a);
    const last = (await env.ledger.killSwitchStates()).find((s) => s.scope === scope);
    expect(last).toMatchObject({
      action: 'engage',
      allowRiskReducing: false,
      details: { eventId: b.eventId, restatedBy: 'operator:cli' },
    });
    // Redis loses it: the restore puts back the full stop, not the reduce-only request
    await env.cmd.hdel(env.killSwitch.stateKey, scope);
    expect((await env.killSwitch.restore({ actor: 'run' })).find((e) => e.scope === scope)).toMatchObject({
      eventId: b.eventId,
      actor: 'operator:api',
      allowRiskReducing: false,
    });
    expect((await inRedis(scope))?.allowRiskReducing).toBe(false);
    await env.killSwitch.release(scope, { actor: 'operator:api', reason: 'over' });
  });

  it('concurrent engages from two processes end as a full stop whichever lands last', async () => {
    const clients = [env.redis.client(), env.redis.client()] as const;
    const [a, b] = clients.map(
      (redis) => new KillSwitch({ redis, prefix: env.prefix, ledger: env.ledger }),
    ) as [KillSwitch, KillSwitch];
    const scope: KillScope = 'underlying:BTC';
    try {
      for (let round = 0; round < 10; round++) {
        const [first, second] = round % 2 ? [a, b] : [b, a];
        await Promise.all([
          first.engage(scope, { actor: 'operator:ana', reason: 'full stop' }),
          second.engage(scope, { actor: 'drop-copy', reason: 'break', allowRiskReducing: true }),
        ]);
        expect(await inRedis(scope)).toMatchObject({ actor: 'operator:ana', allowRiskReducing: false });
        const last = (await env.ledger.killSwitchStates()).find((s) => s.scope === scope);
        expect(last).toMatchObject({ action: 'engage', allowRiskReducing: false });
        expect(await env.killSwitch.release(scope, { actor: 'operator:ana', reason: 'round over' })).toBe(
          true,
        );
      }
    } finally {
      for (const c of clients) c.disconnect();
    }
  });
});
