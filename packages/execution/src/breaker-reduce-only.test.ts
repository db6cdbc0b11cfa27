import { BreakersConfig } from '@xhedge/config';
import { ValidationError } from '@xhedge/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BreakerBoard, breakersFor } from './breakers.ts';
import { OrderGate } from './gate.ts';
import { clientOrderIdFor } from './ids.ts';
import { keysFor } from './keys.ts';
import { type Env, makeEnv, until } from './test-env.ts';

/**
 * Reduce-only orders and open market breakers, on a real Redis through the test env: which breakers a
 * reduce-only order goes past (by their policy) and which block it like any other order, that such a
 * pass takes no half-open trial, and that every pass is recorded (the gate's verdict, the metric, the
 * audit log of a send).
 */
describe('reduce-only orders past open market breakers', () => {
  let env: Env;
  let gate: OrderGate;
  const option = 'ETH-USD:OPT:20261225:4000:P';
  /** Every breaker an option order on ETH at venue pv consults, and whether a reduce-only one passes it open (defaults). */
  const EXPECTED: Record<string, boolean> = {
    'venue:pv': false,
    'chain:solana:mainnet-beta': false,
    'market:price-shock:ETH': false,
    'market:price-dispersion:ETH': false,
    'market:slippage:ETH': true,
    'market:stale-mark:ETH': false,
    'market:loss': true,
    'market:iv-shock:ETH': false,
    'market:skew-shock:ETH': false,
  };
  const check = (g: OrderGate, reduceOnly: boolean, n: number, instrument = option) =>
    g.check(
      env.intent(n, { instrument, reduceOnly, side: reduceOnly ? 'sell' : 'buy' }),
      {},
      { takeTrial: true, reserve: false },
    );
  const passesMetric = async () =>
    (await env.metrics.registry.getSingleMetricAsString('xhedge_breaker_reduce_only_passes_total'))
      .split('\n')
      .filter((l) => l.startsWith('xhedge_breaker_reduce_only_passes_total{'));

  beforeAll(async () => {
    env = await makeEnv();
    env.paper.seedPosition('ETH-USD:PERP', 10);
    gate = new OrderGate({ controls: env.controls, breakers: env.breakers, killSwitch: env.killSwitch });
  });
  afterAll(async () => {
    await env?.close();
  });
  // each test starts with every breaker closed, whatever the one before left
  afterEach(async () => {
    for (const name of Object.keys(EXPECTED)) {
      if ((await env.breakers.status(name)).state !== 'closed')
        await env.breakers.reset(name, 'test', 'next test');
    }
  });

  it('by default: loss and slippage let a reduce-only order through; venue, chain and price-trust breakers block it', async () => {
    const consulted = breakersFor({
      venue: 'pv',
      chain: 'solana:mainnet-beta',
      underlying: 'ETH',
      instrument: option,
    });
    expect([...consulted].sort()).toEqual(Object.keys(EXPECTED).sort());
    let n = 100;
    for (const name of consulted) {
      await env.breakers.trip(name, `test trip of ${name}`, {}, 600_000);
      const other = await check(gate, false, n++);
      expect(other, name).toMatchObject({ ok: false, control: 'breaker' });
      if (!other.ok) expect(other.reason).toBe(`${name} open: test trip of ${name}`);
      const reduce = await check(gate, true, n++);
      if (EXPECTED[name]) {
        expect(reduce, name).toEqual({
          ok: true,
          trials: [],
          passes: [{ breaker: name, state: 'open', reason: `test trip of ${name}` }],
        });
      } else {
        expect(reduce, name).toMatchObject({ ok: false, control: 'breaker' });
        if (!reduce.ok) expect(reduce.reason).toBe(`${name} open: test trip of ${name}`);
      }
      // a pass changes nothing of the breaker
      expect((await env.breakers.status(name)).state, name).toBe('open');
      await env.breakers.reset(name, 'test', 'next kind');
    }
    // counted where the gate let them through (right before a send: the trial-taking gate)
    expect((await passesMetric()).sort()).toEqual([
      'xhedge_breaker_reduce_only_passes_total{breaker="market:loss",phase="send"} 1',
      'xhedge_breaker_reduce_only_passes_total{breaker="market:slippage:ETH",phase="send"} 1',
    ]);
    // closed breakers: nothing to pass, nothing reported
    expect(await check(gate, true, n++)).toEqual({ ok: true, trials: [], passes: [] });
  });

  it('a reduce-only order blocked by another open breaker passes nothing, and one past two open breakers reports both', async () => {
    await env.breakers.trip('market:loss', 'loss', {}, 600_000);
    await env.breakers.trip('market:stale-mark:ETH', 'stale', {}, 600_000);
    expect(await check(gate, true, 200)).toMatchObject({
      ok: false,
      control: 'breaker',
      reason: 'market:stale-mark:ETH open: stale',
    });
    await env.breakers.reset('market:stale-mark:ETH', 'test', 'fresh marks');
    await env.breakers.trip('market:slippage:ETH', 'slip', {}, 600_000);
    const r = await check(gate, true, 201);
    expect(r.ok && r.passes.map((p) => p.breaker).sort()).toEqual(['market:loss', 'market:slippage:ETH']);
    await env.breakers.reset('market:loss', 'test', 'done');
    await env.breakers.reset('market:slippage:ETH', 'test', 'done');
  });

  it('takes no half-open trial: open past its cooldown stays open, and a half-open trial stays with the order that took it', async () => {
    const trialKey = keysFor(env.prefix).breakerTrial('market:loss');
    await env.breakers.trip('market:loss', 'loss since mark 1200.00 USD > 1000 USD', {}, 200);
    await new Promise((r) => setTimeout(r, 250));
    // cooldown over: a reduce-only order goes, but neither moves the breaker nor takes its trial
    const first = await check(gate, true, 300);
    expect(first).toMatchObject({
      ok: true,
      trials: [],
      passes: [{ breaker: 'market:loss', state: 'open' }],
    });
    expect((await env.breakers.status('market:loss')).state).toBe('open');
    expect(await env.cmd.exists(trialKey)).toBe(0);
    // the next order that is not reduce-only is the trial
    const trial = await check(gate, false, 301);
    expect(trial).toMatchObject({ ok: true, passes: [] });
    if (!trial.ok) throw new Error('unreachable');
    expect(trial.trials.map((t) => t.breaker)).toEqual(['market:loss']);
    expect((await env.breakers.status('market:loss')).state).toBe('half-open');
    const token = await env.cmd.get(trialKey);
    expect(token).toBe(trial.trials[0]?.token);
    // half-open, trial held: a reduce-only order still goes and leaves the trial where it is; others wait
    expect(await check(gate, true, 302)).toMatchObject({
      ok: true,
      trials: [],
      passes: [{ breaker: 'market:loss', state: 'half-open' }],
    });
    expect(await env.cmd.get(trialKey)).toBe(token);
    expect(await check(gate, false, 303)).toMatchObject({ ok: false, control: 'breaker' });
    // the trial's own outcome decides
    await env.breakers.reportTrial(trial.trials[0] as never, true);
    expect((await env.breakers.status('market:loss')).state).toBe('closed');
    const states = (await env.ledger.listBreakerEvents({ breaker: 'market:loss' }))
      .map((e) => e.toState)
      .reverse();
    expect(states.slice(-3)).toEqual(['open', 'half-open', 'closed']);
  });

  it('the policy is the board’s option: a kind can be let through or held; venue and chain breakers cannot be named', async () => {
    const board = new BreakerBoard({
      redis: env.cmd,
      prefix: env.prefix,
      config: env.breakers.config,
      ledger: env.ledger,
      reduceOnlyPasses: { 'price-shock': true, loss: false },
    });
    expect(board.reduceOnlyPolicy).toMatchObject({ 'price-shock': true, loss: false, slippage: true });
    const own = new OrderGate({ controls: env.controls, breakers: board, killSwitch: env.killSwitch });
    await board.trip('market:price-shock:ETH', 'price moved 12.00% within 300s', {}, 600_000);
    expect(await check(own, true, 400)).toMatchObject({
      ok: true,
      passes: [{ breaker: 'market:price-shock:ETH', state: 'open' }],
    });
    expect(await check(own, false, 401)).toMatchObject({ ok: false, control: 'breaker' });
    await board.reset('market:price-shock:ETH', 'test', 'done');
    await board.trip('market:loss', 'loss', {}, 600_000);
    expect(await check(own, true, 402)).toMatchObject({
      ok: false,
      control: 'breaker',
      reason: 'market:loss open: loss',
    });
    await board.reset('market:loss', 'test', 'done');
    const withPolicy = (reduceOnlyPasses: unknown) => () =>
      new BreakerBoard({
        redis: env.cmd,
        prefix: env.prefix,
        config: env.breakers.config,
        reduceOnlyPasses: reduceOnlyPasses as never,
      });
    for (const bad of [{ venue: true }, { chain: true }, { loss: 'yes' }])
      expect(withPolicy(bad)).toThrow(ValidationError);
    expect(withPolicy({ venue: true })).toThrow(/breakers reduceOnlyPasses/);
  });

  it("the profile's breakers.reduceOnlyPasses is the policy when the board is given none; the option wins over it", async () => {
    const config = BreakersConfig.parse({ reduceOnlyPasses: { loss: false, 'stale-mark': true } });
    const board = new BreakerBoard({ redis: env.cmd, prefix: env.prefix, config });
    expect(board.reduceOnlyPolicy).toMatchObject({ loss: false, 'stale-mark': true, slippage: true });
    const own = new OrderGate({ controls: env.controls, breakers: board, killSwitch: env.killSwitch });
    await board.trip('market:loss', 'loss', {}, 600_000);
    expect(await check(own, true, 410)).toMatchObject({ ok: false, reason: 'market:loss open: loss' });
    await board.reset('market:loss', 'test', 'done');
    const over = new BreakerBoard({
      redis: env.cmd,
      prefix: env.prefix,
      config,
      reduceOnlyPasses: { loss: true },
    });
    expect(over.reduceOnlyPolicy).toMatchObject({ loss: true, 'stale-mark': false });
    expect(() => BreakersConfig.parse({ reduceOnlyPasses: { venue: true } })).toThrow(/venue/);
  });

  it('end to end: with market:loss open a reduce-only hedge is sent and fills, audited; the other leg is blocked and never sent', async () => {
    await env.breakers.trip('market:loss', 'loss since mark 5000.00 USD > 1000 USD', {}, 600_000);
    const open = env.intent(500);
    const reduce = env.intent(501, { side: 'sell', reduceOnly: true, planId: open.planId });
    const res = await env.service.submitPlan({ planId: open.planId, legs: [open, reduce] });
    expect(res.map((r) => r.outcome)).toEqual(['blocked', 'queued']);
    const cid = clientOrderIdFor(reduce.id);
    const done = await until(async () => {
      const o = await env.ledger.getOrder(cid);
      return o && ['filled', 'cancelled', 'failed', 'rejected'].includes(o.status) ? o : undefined;
    });
    expect(done.status).toBe('filled');
    expect(env.placed).toEqual([cid]);
    expect((await env.ledger.getOrder(clientOrderIdFor(open.id)))?.status).toBe('cancelled');
    const audit = (await env.ledger.listAudit({ action: 'breaker.reduce-only-pass' })).filter(
      (a) => a.details.clientOrderId === cid,
    );
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({
      subject: 'market:loss',
      details: {
        state: 'open',
        reason: 'loss since mark 5000.00 USD > 1000 USD',
        intentId: reduce.id,
        venue: 'pv',
        side: 'sell',
        sizeBase: '0.5',
      },
    });
    expect(audit[0]?.actor).toBe(env.pool.workerId);
    // the breaker stayed open: no trial taken, no transition written
    expect((await env.breakers.status('market:loss')).state).toBe('open');
    expect((await env.ledger.listBreakerEvents({ breaker: 'market:loss' }))[0]?.toState).toBe('open');
    expect(await passesMetric()).toContain(
      'xhedge_breaker_reduce_only_passes_total{breaker="market:loss",phase="queue"} 1',
    );
    await env.breakers.reset('market:loss', 'test', 'done');
  });

  it('end to end: with stale marks both legs are blocked, the reduce-only one too, and nothing is audited', async () => {
    await env.breakers.trip('market:stale-mark:ETH', 'marks 90000 ms old > 60000 ms', {}, 600_000);
    const open = env.intent(600);
    const reduce = env.intent(601, { side: 'sell', reduceOnly: true, planId: open.planId });
    const res = await env.service.submitPlan({ planId: open.planId, legs: [open, reduce] });
    expect(res.map((r) => r.outcome)).toEqual(['blocked', 'blocked']);
    for (const l of [open, reduce]) {
      const o = await env.ledger.getOrder(clientOrderIdFor(l.id));
      expect(o?.status).toBe('cancelled');
      expect(o?.error).toMatch(/market:stale-mark:ETH open/);
      expect(env.placed).not.toContain(clientOrderIdFor(l.id));
    }
    const audit = (await env.ledger.listAudit({ action: 'breaker.reduce-only-pass' })).filter(
      (a) => a.subject === 'market:stale-mark:ETH',
    );
    expect(audit).toEqual([]);
    await env.breakers.reset('market:stale-mark:ETH', 'test', 'done');
  });
});
