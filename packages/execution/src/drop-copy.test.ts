import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DropCopy, type PositionCheck } from './drop-copy.ts';
import { clientOrderIdFor } from './ids.ts';
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

  it('stops following an option at its expiry (settlement, not an order, takes it out), closing its break', async () => {
    const opt = 'ETH-USD:OPT:20270326:3000:C';
    const expiryMs = Date.UTC(2027, 2, 26, 8);
    const day = 86_400_000;
    const leg = env.intent(++n, {
      venue: 'exp',
      instrument: opt,
      sizeBase: '1',
      createdAtMs: expiryMs - 30 * day,
    });
    const cid = clientOrderIdFor(leg.id);
    await env.ledger.recordPlan([{ intent: leg, clientOrderId: cid, status: 'queued' }], { actor: 't' });
    await env.ledger.transition(cid, 'sent', { actor: 't' });
    await env.ledger.transition(cid, 'filled', { actor: 't', patch: { filledSizeBase: '1' } });
    const held = [{ venue: 'exp', chain: 'evm:42161', instrument: opt, sizeBase: 1, asOfMs: 0 }];
    const expCheck = (positions: typeof held, atMs: number) => dc.check('exp', positions, atMs);
    expect(one2(await expCheck(held, expiryMs - 10 * day), opt).state).toBe('baselined');
    await expCheck([], expiryMs - 5 * day);
    expect(one2(await expCheck([], expiryMs - 4 * day), opt).state).toBe('break');
    expect((await env.ledger.openPositionBreaks()).map((b) => b.subject)).toEqual([`exp/${opt}`]);
    // past the expiry the venue holding nothing is no break: it is not compared at all
    expect(await expCheck([], expiryMs + 3_600_000)).toEqual([]);
    expect(await env.ledger.openPositionBreaks()).toEqual([]);
    expect((await env.ledger.listAudit({ action: 'position-break-resolved' }))[0]?.details).toMatchObject({
      how: 'expired',
    });
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
