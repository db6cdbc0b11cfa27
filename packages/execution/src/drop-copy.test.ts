import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DropCopy, type PositionCheck } from './drop-copy.ts';
import { clientOrderIdFor } from './ids.ts';
import { ExecutionMetrics } from './metrics.ts';
import { type Env, makeEnv, until } from './test-env.ts';

const PERP = 'ETH-USD:PERP';

describe('drop-copy check: the venue position against the ledger', () => {
  let env: Env;
  let n = 0;
  const breaks: PositionCheck[] = [];
  const errors: string[] = [];
  const shownAtAction: number[] = [];
  let dc: DropCopy;
  beforeAll(async () => {
    env = await makeEnv();
    dc = new DropCopy({
      ledger: env.ledger,
      metrics: env.metrics,
      graceMs: 1000,
      settleMs: 0,
      rollEveryMs: 3_600_000,
      log: (level, msg) => {
        if (level === 'error') errors.push(msg);
      },
      onBreak: async (b) => {
        breaks.push(b);
        // the action runs before the break is on the ledger: whoever sees the break sees the halt too
        shownAtAction.push((await env.ledger.openPositionBreaks()).length);
      },
    });
  });
  afterAll(async () => {
    await env?.close();
  });

  /** One hedge through queue, worker and ledger, until the ledger has it filled. */
  async function hedge(side: 'buy' | 'sell', sizeBase: string): Promise<void> {
    const leg = env.intent(++n, { side, sizeBase });
    const [r] = await env.service.submitPlan({ planId: leg.planId, legs: [leg] });
    expect(r?.outcome).toBe('queued');
    await until(async () => (await env.ledger.getOrder(clientOrderIdFor(leg.id)))?.status === 'filled');
  }
  /** An order that reaches the venue without our ledger (a duplicate, a human, another bot). */
  const foreign = (side: 'buy' | 'sell', sizeBase: string) =>
    env.paper.placeOrder({
      clientOrderId: `foreign-${++n}`,
      instrument: PERP,
      side,
      sizeBase,
      orderType: 'market',
    });
  const check = async (atMs: number) => dc.check('pv', await env.paper.fetchPositions(), atMs);
  const one2 = (cs: PositionCheck[], instrument: string) => {
    expect(cs.map((c) => c.instrument)).toEqual([instrument]);
    return cs[0] as PositionCheck;
  };
  const one = (cs: PositionCheck[]) => {
    expect(cs.map((c) => c.instrument)).toEqual([PERP]);
    return cs[0] as PositionCheck;
  };
  const metric = async (name: string) =>
    (await env.metrics.registry.getSingleMetric(name)?.get())?.values.find(
      (v) => v.labels.instrument === PERP,
    )?.value;

  it('follows nothing before we trade, then baselines at the first quiet read', async () => {
    expect(await check(Date.now())).toEqual([]);
    await foreign('buy', '2'); // already held: part of the baseline, not a break
    await hedge('buy', '1');
    const c = one(await check(Date.now()));
    expect(c).toMatchObject({ state: 'baselined', expectedSizeBase: '3', diffBase: 0 });
    expect(c.venueSizeBase).toBeCloseTo(3, 12);
    expect((await env.ledger.positionBaselines('pv'))[0]).toMatchObject({
      sizeBase: '3',
      actor: 'drop-copy',
    });
  });

  it('explains our own fills since the baseline, exactly', async () => {
    await hedge('buy', '0.5');
    await hedge('sell', '0.25');
    const c = one(await check(Date.now()));
    expect(c).toMatchObject({ state: 'ok', expectedSizeBase: '3.25' });
    expect(Math.abs(c.diffBase ?? 1)).toBeLessThan(1e-9);
  });

  it('does not compare while an order of ours is working or has just changed', async () => {
    const slow = new DropCopy({ ledger: env.ledger, settleMs: 60_000, graceMs: 0 });
    await foreign('buy', '0.1');
    // our last fill changed seconds ago: in flight for a 60 s settle, so the 0.1 is not yet judged
    expect(one(await slow.check('pv', await env.paper.fetchPositions(), Date.now())).state).toBe('in-flight');
    await foreign('sell', '0.1');
  });

  it('opens a break when an order outside the ledger moves the position for longer than the grace', async () => {
    await foreign('buy', '0.4');
    const t = Date.now();
    const first = one(await check(t));
    expect(first).toMatchObject({ state: 'suspect', sinceMs: t });
    // exact, as operators read it (a float subtraction gave 0.3999999999999999)
    expect(first.diffBase).toBe(0.4);
    expect(breaks).toHaveLength(0);
    expect(one(await check(t + 999)).state).toBe('suspect');
    const broken = one(await check(t + 1000));
    expect(broken).toMatchObject({ state: 'break', expectedSizeBase: '3.25', sinceMs: t });
    expect(breaks).toHaveLength(1);
    expect(shownAtAction).toEqual([0]);
    expect(errors).toEqual([
      `position break on pv: ${PERP} is 3.65 ETH at the venue, 3.25 ETH by our ledger (+0.4 ETH unexplained for 1 s)`,
    ]);
    // reported once: later reads keep it open without a second audit entry or callback
    expect(one(await check(t + 5000)).state).toBe('break');
    expect(breaks).toHaveLength(1);
    const open = await env.ledger.openPositionBreaks();
    expect(open.map((o) => o.subject)).toEqual([`pv/${PERP}`]);
    expect(open[0]?.details).toMatchObject({ venue: 'pv', instrument: PERP, expectedSizeBase: '3.25' });
    expect(await metric('xhedge_position_break')).toBe(1);
    const checkedAt = (
      await env.metrics.registry.getSingleMetric('xhedge_position_check_timestamp_seconds')?.get()
    )?.values.find((v) => v.labels.venue === 'pv')?.value;
    expect(Math.abs((checkedAt ?? 0) - Date.now() / 1000)).toBeLessThan(60);
    expect(await metric('xhedge_position_unexplained_base')).toBeCloseTo(0.4, 9);
  });

  it('keeps the break open across our own orders and a restart, and closes it when venue and ledger agree again', async () => {
    await hedge('buy', '0.5');
    expect(one(await check(Date.now())).state).toBe('break');
    // a new process (leader failover) does not report it again, and knows it is open
    const restarted = new DropCopy({
      ledger: env.ledger,
      graceMs: 1000,
      settleMs: 0,
      onBreak: (b) => void breaks.push(b),
    });
    expect(one(await restarted.check('pv', await env.paper.fetchPositions(), Date.now())).state).toBe(
      'break',
    );
    expect(breaks).toHaveLength(1);
    await foreign('sell', '0.4'); // whoever it was undid it
    const c = one(await restarted.check('pv', await env.paper.fetchPositions(), Date.now()));
    expect(c).toMatchObject({ state: 'ok', expectedSizeBase: '3.75' });
    expect(await env.ledger.openPositionBreaks()).toEqual([]);
    const resolved = await env.ledger.listAudit({ action: 'position-break-resolved' });
    expect(resolved[0]?.details).toMatchObject({ how: 'agree again' });
    // the first instance learns it from its next read as well
    expect(one(await check(Date.now())).state).toBe('ok');
    expect(await metric('xhedge_position_break')).toBe(0);
  });

  it('an acknowledged break takes a new baseline at the next quiet read', async () => {
    await foreign('sell', '1');
    const t = Date.now();
    await check(t);
    expect(one(await check(t + 2000)).state).toBe('break');
    expect(breaks).toHaveLength(2);
    expect(
      await dc.acknowledge({
        venue: 'pv',
        instrument: PERP,
        actor: 'alice',
        reason: 'manual unwind on the venue UI',
      }),
    ).toEqual({ venue: 'pv', instrument: PERP, breakOpen: true });
    await expect(
      dc.acknowledge({ venue: 'pv', instrument: 'BTC-USD:PERP', actor: 'alice', reason: 'never traded' }),
    ).rejects.toThrow(/no drop-copy baseline for pv\/BTC-USD:PERP/);
    const c = one(await check(Date.now()));
    expect(c).toMatchObject({ state: 'baselined', expectedSizeBase: '2.75' });
    expect(await env.ledger.openPositionBreaks()).toEqual([]);
    const resolved = await env.ledger.listAudit({ action: 'position-break-resolved' });
    expect(resolved[0]?.details).toMatchObject({ how: 'acknowledged', by: 'alice' });
    expect((await env.ledger.listAudit({ action: 'position-break.acknowledge' }))[0]).toMatchObject({
      actor: 'alice',
    });
    await hedge('sell', '0.75');
    expect(one(await check(Date.now()))).toMatchObject({ state: 'ok', expectedSizeBase: '2' });
  });

  it('rolls an agreeing baseline forward, so the orders it sums stay few', async () => {
    const before = (await env.ledger.positionBaselines('pv'))[0];
    const roller = new DropCopy({ ledger: env.ledger, settleMs: 0, rollEveryMs: 0 });
    const now = Date.now();
    expect(one(await roller.check('pv', await env.paper.fetchPositions(), now)).state).toBe('ok');
    const after = (await env.ledger.positionBaselines('pv'))[0];
    expect(after).toMatchObject({
      sizeBase: '2',
      atMs: now,
      reason: expect.stringMatching(/rolled forward/),
    });
    expect(after?.atMs).toBeGreaterThan(before?.atMs ?? now);
  });

  it('refuses a venue read with a size that is not a number, naming it', async () => {
    await expect(
      dc.check('pv', [{ venue: 'pv', instrument: PERP, sizeBase: Number.NaN } as never], Date.now()),
    ).rejects.toThrow(/position size of ETH-USD:PERP/);
    expect(() => new DropCopy({ ledger: env.ledger, graceMs: -1 })).toThrow(/graceMs/);
  });

  /** One filled order of ours, written to the ledger directly (stamped `createdAtMs`). */
  async function filledOrder(
    venue: string,
    instrument: string,
    side: 'buy' | 'sell',
    sizeBase: string,
    createdAtMs: number,
  ): Promise<void> {
    const leg = env.intent(++n, { venue, instrument, side, sizeBase, createdAtMs });
    const cid = clientOrderIdFor(leg.id);
    await env.ledger.recordPlan([{ intent: leg, clientOrderId: cid, status: 'queued' }], { actor: 't' });
    await env.ledger.transition(cid, 'sent', { actor: 't' });
    await env.ledger.transition(cid, 'filled', { actor: 't', patch: { filledSizeBase: sizeBase } });
  }
  /** The series of one metric for a venue and instrument in a registry. */
  const series = async (m: ExecutionMetrics, name: string, venue: string, instrument: string) =>
    ((await m.registry.getSingleMetric(name)?.get())?.values ?? []).filter(
      (v) => v.labels.venue === venue && v.labels.instrument === instrument,
    );
  /** The `position-break-resolved` audit entries of one `venue/instrument`. */
  const resolvedOf = async (subject: string) =>
    (await env.ledger.listAudit({ action: 'position-break-resolved' })).filter((e) => e.subject === subject);
  /** The ledger, with the `createdFromMs` of every drop-copy order read recorded. */
  const recording = (reads: number[]) =>
    new Proxy(env.ledger, {
      get(target, prop, recv) {
        if (prop === 'ordersForPositionCheck')
          return (venue: string, o: { createdFromMs: number; updatedAfterMs: number }) => {
            reads.push(o.createdFromMs);
            return target.ordersForPositionCheck(venue, o);
          };
        const v = Reflect.get(target, prop, recv);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });

  it('stops comparing an option at its expiry, but keeps its open break until an operator acknowledges it', async () => {
    const opt = 'ETH-USD:OPT:20270326:3000:C';
    const expiryMs = Date.UTC(2027, 2, 26, 8);
    const day = 86_400_000;
    await filledOrder('exp', opt, 'buy', '1', expiryMs - 30 * day);
    const held = [{ venue: 'exp', chain: 'evm:42161', instrument: opt, sizeBase: 1, asOfMs: 0 }];
    const expCheck = (positions: typeof held, atMs: number) => dc.check('exp', positions, atMs);
    expect(one2(await expCheck(held, expiryMs - 10 * day), opt).state).toBe('baselined');
    await expCheck([], expiryMs - 5 * day);
    expect(one2(await expCheck([], expiryMs - 4 * day), opt).state).toBe('break');
    const openBreak = [`exp/${opt}`];
    expect((await env.ledger.openPositionBreaks()).map((b) => b.subject)).toEqual(openBreak);
    // past the expiry it is not compared (the venue holding nothing is no new break, nor is it ok) ...
    expect(await expCheck([], expiryMs + 3_600_000)).toEqual([]);
    expect(await expCheck([], expiryMs + 7_200_000)).toEqual([]);
    // ... but what the venue held unexplained is not explained by settlement: the break stays open and shown
    expect((await env.ledger.openPositionBreaks()).map((b) => b.subject)).toEqual(openBreak);
    expect((await series(env.metrics, 'xhedge_position_break', 'exp', opt)).map((v) => v.value)).toEqual([1]);
    // a restart (leader failover) keeps it open and shows it too, without reporting it again
    const m2 = new ExecutionMetrics();
    const restarted = new DropCopy({ ledger: env.ledger, metrics: m2, settleMs: 0 });
    expect(await restarted.check('exp', [], expiryMs + 7_200_000)).toEqual([]);
    expect((await series(m2, 'xhedge_position_break', 'exp', opt)).map((v) => v.value)).toEqual([1]);
    expect((await env.ledger.openPositionBreaks()).map((b) => b.subject)).toEqual(openBreak);
    expect(await resolvedOf(`exp/${opt}`)).toEqual([]);
    // the operator explains it: the next check closes it, and the option is no longer followed
    expect(
      await dc.acknowledge({ venue: 'exp', instrument: opt, actor: 'bob', reason: 'sold on the venue UI' }),
    ).toEqual({ venue: 'exp', instrument: opt, breakOpen: true });
    expect(await expCheck([], expiryMs + 10_800_000)).toEqual([]);
    expect(await env.ledger.openPositionBreaks()).toEqual([]);
    const resolved = await resolvedOf(`exp/${opt}`);
    expect(resolved.map((e) => e.details)).toEqual([
      expect.objectContaining({ how: 'acknowledged', by: 'bob', expiryMs }),
    ]);
    expect(await series(env.metrics, 'xhedge_position_break', 'exp', opt)).toEqual([]);
    expect(await series(env.metrics, 'xhedge_position_unexplained_base', 'exp', opt)).toEqual([]);
    // the restarted one learns it from the ledger as well
    expect(await restarted.check('exp', [], expiryMs + 10_800_000)).toEqual([]);
    expect(await series(m2, 'xhedge_position_break', 'exp', opt)).toEqual([]);
    expect(await resolvedOf(`exp/${opt}`)).toHaveLength(1);
  });

  it('after an option expires, reads only orders since the oldest live baseline and drops its metrics', async () => {
    const day = 86_400_000;
    const expiring = 'ETH-USD:OPT:20280128:3000:C';
    const E = Date.UTC(2028, 0, 28, 8);
    const live = 'ETH-USD:OPT:20280225:3000:P';
    const v = 'ro';
    const t0 = Date.now(); // the ledger stamps the orders below now, after every baseline
    const baseline = (instrument: string, sizeBase: string, atMs: number) =>
      env.ledger.setPositionBaseline({
        venue: v,
        instrument,
        sizeBase,
        atMs,
        actor: 'drop-copy',
        reason: 't',
      });
    // the expiring option's baseline is the oldest; the live option's is older than the perp's
    await baseline(expiring, '0', t0 - 20 * day);
    await baseline(live, '0', t0 - 5 * day);
    await baseline(PERP, '1', t0 - 3 * day);
    await filledOrder(v, expiring, 'buy', '1', t0);
    await filledOrder(v, live, 'sell', '1', t0);
    await filledOrder(v, live, 'sell', '1', t0);
    await filledOrder(v, PERP, 'buy', '1', t0);
    await filledOrder(v, PERP, 'buy', '0.5', t0);
    const pos = (instrument: string, sizeBase: number) => ({
      venue: v,
      chain: 'solana:mainnet-beta',
      instrument,
      sizeBase,
      asOfMs: 0,
    });
    const reads: number[] = [];
    const never = 3650 * day; // no baseline rolls forward in this test
    const ro = new DropCopy({
      ledger: recording(reads),
      metrics: env.metrics,
      settleMs: 0,
      rollEveryMs: never,
    });
    const states = (cs: PositionCheck[]) => cs.map((c) => [c.instrument, c.state, c.expectedSizeBase]);
    const liveOk = [
      [live, 'ok', '-2'],
      [PERP, 'ok', '2.5'],
    ];
    expect(
      states(await ro.check(v, [pos(expiring, 1), pos(live, -2), pos(PERP, 2.5)], E - 3_600_000)),
    ).toEqual([[expiring, 'ok', '1'], ...liveOk]);
    expect(reads).toEqual([t0 - 20 * day]);
    expect((await series(env.metrics, 'xhedge_position_break', v, expiring)).map((s) => s.value)).toEqual([
      0,
    ]);
    expect((await series(env.metrics, 'xhedge_position_unexplained_base', v, expiring)).length).toBe(1);
    // expired, still held before settlement: not compared, and its baseline no longer holds the read back;
    // the live option's (older than the perp's and than the previous check) still does
    expect(
      states(await ro.check(v, [pos(expiring, 1), pos(live, -2), pos(PERP, 2.5)], E + 3_600_000)),
    ).toEqual(liveOk);
    expect(states(await ro.check(v, [pos(live, -2), pos(PERP, 2.5)], E + 7_200_000))).toEqual(liveOk);
    expect(reads.slice(1)).toEqual([t0 - 5 * day, t0 - 5 * day]);
    expect(await series(env.metrics, 'xhedge_position_break', v, expiring)).toEqual([]);
    expect(await series(env.metrics, 'xhedge_position_unexplained_base', v, expiring)).toEqual([]);
    expect((await series(env.metrics, 'xhedge_position_break', v, live)).map((s) => s.value)).toEqual([0]);
    expect((await series(env.metrics, 'xhedge_position_break', v, PERP)).map((s) => s.value)).toEqual([0]);
    // a new fill of the live option after the expiry is explained as before
    await filledOrder(v, live, 'buy', '0.5', t0);
    const after = [
      [live, 'ok', '-1.5'],
      [PERP, 'ok', '2.5'],
    ];
    expect(states(await ro.check(v, [pos(live, -1.5), pos(PERP, 2.5)], E + 10_800_000))).toEqual(after);
    // a process started after the expiry does not follow the expired option at all
    const m2 = new ExecutionMetrics();
    const reads2: number[] = [];
    const fresh = new DropCopy({ ledger: recording(reads2), metrics: m2, settleMs: 0, rollEveryMs: never });
    expect(states(await fresh.check(v, [pos(live, -1.5), pos(PERP, 2.5)], E + 10_800_000))).toEqual(after);
    expect(reads2).toEqual([t0 - 5 * day]);
    expect(await series(m2, 'xhedge_position_break', v, expiring)).toEqual([]);
  });

  it('a check whose ledger read failed is tried again in full by the next one', async () => {
    let down = true;
    const flaky = new Proxy(env.ledger, {
      get(target, prop, recv) {
        if (prop === 'openPositionBreaks' && down)
          return async () => {
            down = false;
            throw new Error('ledger down');
          };
        const v = Reflect.get(target, prop, recv);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    const d = new DropCopy({ ledger: flaky, settleMs: 0 });
    await expect(d.check('pv', await env.paper.fetchPositions(), Date.now())).rejects.toThrow('ledger down');
    expect(
      (await d.check('pv', await env.paper.fetchPositions(), Date.now())).map((c) => c.instrument),
    ).toContain(PERP);
  });

  it('observe checks a venue at most once per interval, never two at once', async () => {
    const seen: number[] = [];
    const o = new DropCopy({ ledger: env.ledger, settleMs: 0, intervalMs: 10_000 });
    const orig = o.check.bind(o);
    o.check = async (v, p, at) => {
      seen.push(at);
      return orig(v, p, at);
    };
    const p = await env.paper.fetchPositions();
    const t = Date.now();
    o.observe('pv', p, t);
    o.observe('pv', p, t + 20_000); // still running: skipped
    await o.idle();
    o.observe('pv', p, t + 5_000); // inside the interval: skipped
    o.observe('pv', p, t + 10_000);
    await o.idle();
    expect(seen).toEqual([t, t + 10_000]);
  });
});
