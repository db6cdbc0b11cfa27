import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keepControlStateRestored, redisEpoch, restoreControlState } from './control-state.ts';
import { clientOrderIdFor } from './ids.ts';
import { type Env, makeEnv, until } from './test-env.ts';
import { hasRedisServer, type OwnRedis, spawnRedisServer } from './testing.ts';

/**
 * Redis losing its data must stop trading, not resume it: the gate passes nothing until the control
 * state (kill switch, open breakers) is restored from the ledger, and the restore brings back what
 * the ledger says is engaged or open.
 */
describe('control state after Redis loses its data', () => {
  let env: Env;
  let n = 0;
  beforeAll(async () => {
    env = await makeEnv({ venueKind: 'paper-spot-amm' });
  });
  afterAll(async () => {
    await env?.close();
  });
  /** Everything of this deployment gone from Redis (queues too), as after a restart without AOF. */
  const wipe = async () => {
    const keys = await env.cmd.keys(`${env.prefix}:*`);
    if (keys.length) await env.cmd.del(...keys);
  };
  const parts = () => ({
    redis: env.cmd,
    prefix: env.prefix,
    killSwitch: env.killSwitch,
    breakers: env.breakers,
    ledger: env.ledger,
  });
  const submit = async () => {
    const leg = env.intent(++n, { instrument: 'ETH-USDC:SPOT', chain: 'evm:1', sizeBase: '0.01' });
    const [r] = await env.service.submitPlan({ planId: leg.planId, legs: [leg] });
    return { leg, r };
  };
  const filled = (intentId: string) =>
    until(async () => {
      const o = await env.ledger.getOrder(clientOrderIdFor(intentId));
      return o?.status === 'filled' ? o : undefined;
    });

  it('an empty Redis passes no order until the restore; the restore brings the kill switch back', async () => {
    const ok = await submit();
    expect(ok.r?.outcome).toBe('queued');
    await filled(ok.leg.id);
    await env.killSwitch.engage('global', { actor: 'risk-owner:ana', reason: 'exchange incident' });
    await wipe();
    // without the restore, the switch would be gone and this order would trade
    const lost = await submit();
    expect(lost.r).toMatchObject({ outcome: 'blocked', control: 'kill-switch' });
    expect(lost.r?.reason).toMatch(/no restored control state/);
    const r = await restoreControlState(parts(), { actor: 'test' });
    expect(r.killSwitch.map((e) => [e.scope, e.reason])).toEqual([['global', 'exchange incident']]);
    const still = await submit();
    expect(still.r).toMatchObject({ outcome: 'blocked', control: 'kill-switch' });
    expect(still.r?.reason).toMatch(/exchange incident/);
    await env.killSwitch.release('global', { actor: 'risk-owner:ana', reason: 'resolved' });
    const after = await submit();
    expect(after.r?.outcome).toBe('queued');
    await filled(after.leg.id);
    expect(env.placed).not.toContain(clientOrderIdFor(lost.leg.id));
    expect(env.placed).not.toContain(clientOrderIdFor(still.leg.id));
  });

  it('an open breaker Redis lost comes back open with its reason and cooldown; a reset one stays closed', async () => {
    await env.breakers.trip('venue:pv', 'operator hold: venue upgrade', { actor: 'operator:ana' }, 600_000);
    const opened = await env.breakers.status('venue:pv');
    await wipe();
    const r = await restoreControlState(parts(), { actor: 'test' });
    expect(r.breakers).toEqual(['venue:pv']);
    expect(await env.breakers.status('venue:pv')).toEqual(opened);
    const blocked = await submit();
    expect(blocked.r).toMatchObject({ outcome: 'blocked', control: 'breaker' });
    expect(blocked.r?.reason).toMatch(/venue upgrade/);
    expect((await env.ledger.listAudit({ action: 'breaker.restore' }))[0]).toMatchObject({
      subject: 'venue:pv',
      details: { cooldownMs: 600_000, ledgerState: 'open' },
    });
    // restoring again changes nothing; an operator reset is not undone by the next restore
    expect((await restoreControlState(parts(), { actor: 'test' })).breakers).toEqual([]);
    await env.breakers.reset('venue:pv', 'operator:ana', 'upgrade done');
    expect((await restoreControlState(parts(), { actor: 'test' })).breakers).toEqual([]);
    expect((await env.breakers.status('venue:pv')).state).toBe('closed');
    const ok = await submit();
    expect(ok.r?.outcome).toBe('queued');
    await filled(ok.leg.id);
  });

  it('a trip the server lost comes back open though the breaker had tripped and closed before (its hash survived)', async () => {
    const key = `${env.prefix}:breaker:venue:pv`;
    await env.breakers.trip('venue:pv', 'first trip', {}, 600_000);
    await env.breakers.reset('venue:pv', 'operator:ana', 'fixed');
    const before = await env.cmd.hgetall(key);
    expect(before.state).toBe('closed');
    await env.breakers.trip('venue:pv', 'failure rate 100% ≥ 50%', {}, 600_000);
    // the server comes back without its last writes (AOF everysec, or a failover to a replica that
    // missed them): the breaker as before the trip, the control-state key naming the server that is gone
    await env.cmd.del(key);
    await env.cmd.hset(key, before);
    await env.cmd.set(`${env.prefix}:control-state`, 'a-server-that-is-gone');
    const r = await restoreControlState(parts(), { actor: 'test' });
    expect(r.breakers).toEqual(['venue:pv']);
    expect(await env.breakers.status('venue:pv')).toMatchObject({
      state: 'open',
      reason: 'failure rate 100% ≥ 50%',
      cooldownMs: 600_000,
    });
    const blocked = await submit();
    expect(blocked.r).toMatchObject({ outcome: 'blocked', control: 'breaker' });
    // on a server that kept its data, a breaker Redis has closed stays closed (the ledger may lag it)
    await env.cmd.hset(key, 'state', 'closed');
    expect((await restoreControlState(parts(), { actor: 'test' })).breakers).toEqual([]);
    expect((await env.breakers.status('venue:pv')).state).toBe('closed');
    await env.breakers.reset('venue:pv', 'operator:ana', 'test over');
  });

  it('the periodic restore puts the state back after a wipe without anyone asking', async () => {
    await env.killSwitch.engage('venue:pv', { actor: 'risk-owner:ana', reason: 'venue drill' });
    const seen: string[] = [];
    const loop = keepControlStateRestored(parts(), {
      actor: 'test-loop',
      intervalMs: 100,
      onRestored: (r) => seen.push(...r.killSwitch.map((e) => e.scope)),
    });
    try {
      await loop.first;
      await wipe();
      expect(await env.cmd.exists(`${env.prefix}:control-state`)).toBe(0);
      await until(async () => (await env.cmd.exists(`${env.prefix}:control-state`)) === 1, 5000, 50);
      expect(seen).toContain('venue:pv');
      expect((await env.killSwitch.engaged()).map((e) => e.scope)).toEqual(['venue:pv']);
    } finally {
      await loop.stop();
    }
    await env.killSwitch.release('venue:pv', { actor: 'risk-owner:ana', reason: 'drill over' });
  });
});

/**
 * The pre-trade windows (hedge notional per window, executions, orders live for the self-cross and
 * position checks) are control state too: a Redis that lost them must not start a fresh window.
 */
describe('pre-trade windows after Redis loses its data', () => {
  let env: Env;
  beforeAll(async () => {
    // about 35 USD an order (0.01 ETH): one fits in the window, two do not
    env = await makeEnv({ venueKind: 'paper-spot-amm', limits: { maxHedgeNotionalPerWindowUsd: 60 } });
  });
  afterAll(async () => {
    await env?.close();
  });

  it('the restore puts back what the ledger says the window holds', async () => {
    const leg = (n: number) =>
      env.intent(n, { instrument: 'ETH-USDC:SPOT', chain: 'evm:1', sizeBase: '0.01' });
    const first = leg(1);
    expect((await env.service.submitPlan({ planId: first.planId, legs: [first] }))[0]?.outcome).toBe(
      'queued',
    );
    await until(async () => (await env.ledger.getOrder(clientOrderIdFor(first.id)))?.status === 'filled');
    const keys = await env.cmd.keys(`${env.prefix}:*`);
    await env.cmd.del(...keys);
    await env.restoreControlState();
    const second = leg(2);
    const [r] = await env.service.submitPlan({ planId: second.planId, legs: [second] });
    expect(r).toMatchObject({ outcome: 'blocked', control: 'window-notional-underlying' });
    expect(env.placed).toEqual([clientOrderIdFor(first.id)]);
    // restoring again on the same server counts nothing twice
    await env.cmd.del(`${env.prefix}:control-state`);
    await env.restoreControlState();
    const reserved = Number(await env.cmd.hget(`${env.prefix}:ctl:notional`, first.id));
    expect(reserved).toBeGreaterThan(30);
    const total = await env.cmd.hget(`${env.prefix}:ctl:notional`, `#total|${env.prefix}:ctl:notional-u:ETH`);
    expect(Number(total)).toBeCloseTo(reserved, 6);
  });
});

/**
 * A Redis that restarts from its AOF keeps the control-state key but may have lost the last writes
 * (with `appendfsync everysec`, up to a second of them, a kill switch engagement among them). The key
 * is bound to the server's run_id, so the gate stays shut on the restarted server until a restore has
 * run on it, and the loop restores as soon as the client reconnects, not at its next interval.
 */
describe('control state across a Redis restart that keeps its data', () => {
  let server: OwnRedis | undefined;
  let env: Env | undefined;
  let n = 0;
  beforeAll(async () => {
    if (!hasRedisServer()) {
      console.warn('[control-state test] skipped: redis-server binary not found');
      return;
    }
    server = await spawnRedisServer(['--appendonly', 'yes', '--appendfsync', 'always']);
    env = await makeEnv({
      venueKind: 'paper-spot-amm',
      redisUrl: server.url,
      // the submissions retried while the producer reconnects each count as an execution
      limits: { repeatedExecution: { maxExecutions: 10_000, windowSeconds: 60 } },
    });
  });
  afterAll(async () => {
    await env?.close();
    server?.stop();
  });
  const submit = async (e: Env) => {
    const leg = e.intent(++n, { instrument: 'ETH-USDC:SPOT', chain: 'evm:1', sizeBase: '0.01' });
    const [r] = await e.service.submitPlan({ planId: leg.planId, legs: [leg] });
    return { leg, r };
  };
  const restart = async (s: OwnRedis, e: Env) => {
    await s.kill();
    await s.start();
    await until(async () => (await e.cmd.ping().catch(() => '')) === 'PONG', 10_000, 25);
  };
  /** The producer fails fast while its own connection is still down (no offline queue): retry then. */
  const submitOnceConnected = (e: Env) =>
    until(
      () =>
        submit(e).catch((err: Error) => {
          if (/Stream isn't writeable/.test(err.message)) return undefined;
          throw err;
        }),
      10_000,
      25,
    );

  it.skipIf(!hasRedisServer())(
    'the gate is shut on the restarted server until a restore runs on it',
    async () => {
      const e = env as Env;
      const s = server as OwnRedis;
      const ok = await submit(e);
      expect(ok.r?.outcome).toBe('queued');
      const stateKey = `${e.prefix}:control-state`;
      const before = await e.cmd.get(stateKey);
      expect(before).toBe(await redisEpoch(e.cmd));
      await restart(s, e);
      // the AOF brought the key back, but it names the server that is gone
      expect(await e.cmd.get(stateKey)).toBe(before);
      const epoch = await redisEpoch(e.cmd);
      expect(epoch).not.toBe(before);
      const held = await submit(e);
      expect(held.r).toMatchObject({ outcome: 'blocked', control: 'kill-switch' });
      expect(held.r?.reason).toMatch(/no restored control state.*restarted/);
      await restoreControlState(
        { redis: e.cmd, prefix: e.prefix, killSwitch: e.killSwitch, breakers: e.breakers, ledger: e.ledger },
        { actor: 'test' },
      );
      expect(await e.cmd.get(stateKey)).toBe(epoch);
      const after = await submitOnceConnected(e);
      expect(after.r, after.r?.reason).toMatchObject({ outcome: 'queued' });
      expect(e.placed).not.toContain(clientOrderIdFor(held.leg.id));
    },
  );

  it.skipIf(!hasRedisServer())('the loop restores as soon as the client reconnects', async () => {
    const e = env as Env;
    const s = server as OwnRedis;
    const stateKey = `${e.prefix}:control-state`;
    const loop = keepControlStateRestored(
      { redis: e.cmd, prefix: e.prefix, killSwitch: e.killSwitch, breakers: e.breakers, ledger: e.ledger },
      { actor: 'test-loop', intervalMs: 600_000 },
    );
    try {
      await loop.first;
      await restart(s, e);
      const epoch = await redisEpoch(e.cmd);
      // far sooner than the 10-minute interval: the reconnect started it
      await until(async () => (await e.cmd.get(stateKey)) === epoch, 5000, 25);
      const after = await submitOnceConnected(e);
      expect(after.r?.outcome).toBe('queued');
    } finally {
      await loop.stop();
    }
  });
});
