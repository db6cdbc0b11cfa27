import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keepControlStateRestored } from './control-state.ts';
import { keysFor } from './keys.ts';
import { KillEvent, KillSwitch } from './kill-switch.ts';
import { type Env, makeEnv, until } from './test-env.ts';
import { hasRedisServer, type OwnRedis, spawnRedisServer } from './testing.ts';
import { startWorkers } from './worker.ts';

/**
 * Redis down or refusing writes must not lose an operator's stop: the engage is recorded in the ledger
 * and put in force (announced: the workers' cancel pass) once Redis answers, even an empty Redis.
 */
describe.skipIf(!hasRedisServer())('kill switch while Redis is unavailable', () => {
  let server: OwnRedis;
  let env: Env;
  /** A client as the run's (a few retries, then the command fails): what the API's engage goes through. */
  let fast: Redis;
  let n = 0;
  beforeAll(async () => {
    server = await spawnRedisServer();
    env = await makeEnv({
      venueKind: 'paper-spot-amm',
      redisUrl: server.url,
      limits: { repeatedExecution: { maxExecutions: 10_000, windowSeconds: 60 } },
    });
    fast = env.redis.client({ maxRetriesPerRequest: 1 });
  });
  afterAll(async () => {
    fast?.disconnect();
    await env?.close();
    server?.stop();
  });
  const submit = async () => {
    const leg = env.intent(++n, { instrument: 'ETH-USDC:SPOT', chain: 'evm:1', sizeBase: '0.01' });
    const [r] = await env.service.submitPlan({ planId: leg.planId, legs: [leg] });
    return { leg, r };
  };

  it('an engage made while Redis is down is recorded, then in force and announced once an empty Redis is back', async () => {
    const ks = new KillSwitch({ redis: fast, prefix: env.prefix, ledger: env.ledger });
    const heard: KillEvent[] = [];
    const sub = env.redis.client();
    sub.on('message', (_c, m) => heard.push(KillEvent.parse(JSON.parse(m))));
    await sub.subscribe(ks.channel);
    const loop = keepControlStateRestored(
      {
        redis: env.cmd,
        prefix: env.prefix,
        killSwitch: env.killSwitch,
        breakers: env.breakers,
        ledger: env.ledger,
      },
      { actor: 'test-loop', intervalMs: 600_000 },
    );
    try {
      await loop.first;
      await server.kill();
      const err = await ks.engage('venue:pv', { actor: 'risk-owner:ana', reason: 'redis outage drill' }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toMatchObject({
        code: 'KILL_SWITCH_PENDING',
        details: { scope: 'venue:pv', engaged: false, recorded: true },
      });
      expect((err as Error).message).toMatch(/RECORDED in the ledger but not yet in force/);
      const eventId = (err as { details: { eventId: string } }).details.eventId;
      const [ev] = await env.ledger.listKillSwitchEvents({ scope: 'venue:pv' });
      expect(ev).toMatchObject({ action: 'engage', details: { eventId, pendingRedis: true } });
      // back without its data (no persistence): the reconnect's restore puts the engagement in force (the waits
      // allow for ioredis's reconnect backoff on a loaded machine: one of them ran past 10 s in a full run)
      await server.start();
      const inForce = await until(
        async () => (await env.killSwitch.engaged().catch(() => [])).find((e) => e.scope === 'venue:pv'),
        30_000,
        25,
      );
      expect(inForce).toMatchObject({ eventId, reason: 'redis outage drill', allowRiskReducing: false });
      // announced: every worker's cancel pass runs for it
      await until(
        async () => heard.some((h) => h.scope === 'venue:pv' && h.eventId.startsWith(`${eventId}:restore:`)),
        30_000,
        25,
      );
      await until(
        async () => (await env.cmd.get(`${env.prefix}:control-state`).catch(() => null)) !== null,
        30_000,
        25,
      );
      const blocked = await until(() => submit().catch(() => undefined), 30_000, 50);
      expect(blocked.r).toMatchObject({ outcome: 'blocked', control: 'kill-switch' });
      expect(blocked.r?.reason).toMatch(/redis outage drill/);
      // the restored engagement is the one a release reads: it goes
      expect(await ks.release('venue:pv', { actor: 'risk-owner:ana', reason: 'drill over' })).toBe(true);
    } finally {
      await loop.stop();
      sub.disconnect();
    }
  }, 150_000);

  it('a pending engage is not released by a release that did not read it; applied over an engagement Redis held, it never loosens', async () => {
    const ks = new KillSwitch({ redis: fast, prefix: env.prefix, ledger: env.ledger });
    await until(async () => (await fast.ping().catch(() => '')) === 'PONG', 10_000, 25);
    await ks.engage('underlying:ETH', {
      actor: 'risk-owner:ana',
      reason: 'reduce only',
      allowRiskReducing: true,
    });
    // a full stop recorded while Redis refused it (written as the engage's fallback writes it)
    const pendingId = 'pending-full-stop';
    await env.ledger.recordKillSwitchEvent({
      scope: 'underlying:ETH',
      action: 'engage',
      actor: 'risk-owner:bo',
      reason: 'full stop during outage',
      allowRiskReducing: false,
      details: { eventId: pendingId, pendingRedis: true },
    });
    // the release read the reduce-only one: the pending full stop was not what it read
    await expect(
      ks.release('underlying:ETH', { actor: 'risk-owner:ana', reason: 'over' }),
    ).rejects.toMatchObject({
      code: 'KILL_SWITCH_RELEASE_CONFLICT',
    });
    const restored = await ks.restore({ actor: 'test' });
    expect(restored.map((e) => [e.scope, e.eventId, e.allowRiskReducing])).toEqual([
      ['underlying:ETH', pendingId, false],
    ]);
    // applied once; the ledger's last word is what Redis holds
    expect(await ks.restore({ actor: 'test' })).toEqual([]);
    const [last] = (await env.ledger.killSwitchStates()).filter((s) => s.scope === 'underlying:ETH');
    expect(last).toMatchObject({
      action: 'engage',
      allowRiskReducing: false,
      details: { eventId: pendingId },
    });
    expect(await ks.release('underlying:ETH', { actor: 'risk-owner:ana', reason: 'over' })).toBe(true);
  }, 30_000);

  it('a pending engage recorded while a release is between its check and its own ledger event is not hidden by the release (review fix)', async () => {
    await until(async () => (await fast.ping().catch(() => '')) === 'PONG', 10_000, 25);
    // the ledger as the releasing process sees it: another process, cut off from Redis, records its
    // engage (the pending fallback) just before this release's event lands
    const pendingId = 'pending-during-release';
    const ledger = new Proxy(env.ledger, {
      get(target, prop, receiver) {
        if (prop === 'recordKillSwitchEvent')
          return async (e: Parameters<typeof target.recordKillSwitchEvent>[0]) => {
            if (e.action === 'release')
              await target.recordKillSwitchEvent({
                scope: e.scope,
                action: 'engage',
                actor: 'risk-owner:bo',
                reason: 'stop from a cut-off replica',
                allowRiskReducing: false,
                details: { eventId: pendingId, pendingRedis: true },
              });
            return target.recordKillSwitchEvent(e);
          };
        const v = Reflect.get(target, prop, receiver);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    const ks = new KillSwitch({ redis: fast, prefix: env.prefix, ledger });
    await ks.engage('underlying:BTC', { actor: 'risk-owner:ana', reason: 'first stop' });
    await expect(
      ks.release('underlying:BTC', { actor: 'risk-owner:ana', reason: 'over' }),
    ).rejects.toMatchObject({ code: 'KILL_SWITCH_RELEASE_CONFLICT' });
    // the pending engage is the ledger's last word again, and the restore puts it in force
    const restored = await new KillSwitch({ redis: fast, prefix: env.prefix, ledger: env.ledger }).restore({
      actor: 'test',
    });
    expect(restored.map((e) => [e.scope, e.eventId])).toEqual([['underlying:BTC', pendingId]]);
    const inForce = (await env.killSwitch.engaged()).find((e) => e.scope === 'underlying:BTC');
    // (a re-engage as strict as what is there keeps its who and why, under the new event id)
    expect(inForce).toMatchObject({ eventId: pendingId, allowRiskReducing: false });
    expect(await env.killSwitch.release('underlying:BTC', { actor: 'risk-owner:ana', reason: 'over' })).toBe(
      true,
    );
  }, 30_000);
});

/** The worker pool's start replays the cancel pass of every switch engaged before it. */
describe('start-up cancel replay', () => {
  let env: Env;
  beforeAll(async () => {
    env = await makeEnv({ venueKind: 'paper-drift' });
  });
  afterAll(async () => {
    await env?.close();
  });
  it('the start-up cancel pass runs for every engaged scope though one entry does not parse', async () => {
    const k = keysFor(env.prefix);
    const eventId = 'engaged-before-start';
    await env.cmd.hset(k.kill, 'underlying:BTC', 'not json, written by something else');
    await env.cmd.hset(
      k.kill,
      'venue:pv',
      JSON.stringify({
        eventId,
        actor: 'risk-owner:ana',
        reason: 'stop',
        allowRiskReducing: false,
        engagedAtMs: Date.now(),
      }),
    );
    const logged: string[] = [];
    const subscriber = env.redis.client();
    const pool = await startWorkers({
      connection: env.redis.options,
      queuePrefix: env.prefix,
      ledger: env.ledger,
      controls: env.controls,
      breakers: env.breakers,
      killSwitch: env.killSwitch,
      venues: new Map([['pv', env.paper]]),
      subscriber,
      workerId: 'worker:replay-test',
      log: (_l, msg) => logged.push(msg),
    });
    try {
      // the venue's cancel pass for the engagement ran (its claim says done)
      await until(
        async () => (await env.cmd.get(k.killCancelLock(eventId, 'pv')))?.startsWith('done|'),
        10_000,
        25,
      );
      expect(logged.some((m) => /underlying:BTC does not read/.test(m))).toBe(true);
    } finally {
      await pool.close(true);
      subscriber.disconnect();
      await env.cmd.hdel(k.kill, 'underlying:BTC', 'venue:pv');
    }
  }, 30_000);
});
