import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keepControlStateRestored, restoreControlState } from './control-state.ts';
import { clientOrderIdFor } from './ids.ts';
import { type Env, makeEnv, until } from './test-env.ts';

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
