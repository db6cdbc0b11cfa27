import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type ApiPorts, buildApiServer, FileTokenStore } from '@xhedge/api';
import { parseConfig } from '@xhedge/config';
import { ManualClock } from '@xhedge/core';
import { BreakerBoard, type KillEngagement, KillSwitch } from '@xhedge/execution';
import { machineRedisOrEmbedded } from '@xhedge/execution/testing';
import { Ledger, openDatabase } from '@xhedge/store';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlsPort } from './controls-port.ts';
import { auditPort } from './ledger-ports.ts';

// The machine's Redis when it answers (as a deployment has one), else an embedded js-redis-server.
const endpoint = await machineRedisOrEmbedded('controls port tests');
const config = parseConfig(
  readFileSync(new URL('../../../configs/profiles/paper.yaml', import.meta.url), 'utf8'),
);
const ADMIN = 'admin-token-for-controls-port-tests-01';
const tokens = new FileTokenStore({ envAdminToken: ADMIN });
let headers: Record<string, string> = {};
let redis: Redis;
const servers: FastifyInstance[] = [];
const ledgers: Ledger[] = [];
const prefixes: string[] = [];

beforeAll(async () => {
  redis = endpoint.client();
  const system = { tokenId: 'x', name: 'test', role: 'admin' as const };
  const risk = await tokens.create({ name: 'alice', role: 'risk' }, system);
  headers = { authorization: `Bearer ${risk.token}` };
});
afterAll(async () => {
  for (const s of servers) await s.close();
  for (const l of ledgers) await l.close();
  // this file's keys only (never a FLUSHDB)
  for (const p of prefixes) {
    const keys = await redis.keys(`${p}:*`);
    if (keys.length > 0) await redis.del(...keys);
  }
  redis.disconnect();
  await endpoint.close();
});

/**
 * One deployment of its own (Redis prefix, PGlite ledger): its kill switch and board, and an API server
 * over the runtime's controls port. `switchOf` gives the kill switch the port uses (a racing one).
 */
async function deployment(switchOf?: (ledger: Ledger, prefix: string) => KillSwitch) {
  const prefix = `{xhedge-test}:controls-${randomBytes(6).toString('hex')}`;
  prefixes.push(prefix);
  const ledger = new Ledger(await openDatabase({}));
  ledgers.push(ledger);
  const clock = new ManualClock(1_800_000_000_000);
  const kill = new KillSwitch({ redis, prefix, ledger });
  const board = new BreakerBoard({ redis, prefix, config: config.breakers, ledger, clock });
  const logged: string[] = [];
  const port = controlsPort(switchOf?.(ledger, prefix) ?? kill, board, ledger, undefined, {
    error: (_obj, msg) => void logged.push(msg),
  });
  const unused = {} as never;
  const ports: ApiPorts = {
    readiness: async () => ({ ready: true, checks: [] }),
    risk: unused,
    hedges: unused,
    controls: port,
    pnl: unused,
    venues: unused,
    policy: unused,
    audit: auditPort(ledger),
    tokens,
    metrics: new Registry(),
  };
  const app = await buildApiServer({ ports, logger: false, rateLimitPerMinute: 100_000 });
  servers.push(app);
  await app.ready();
  const post = (url: string, payload: object) => app.inject({ method: 'POST', url, headers, payload });
  const controls = async () => (await app.inject({ url: '/v1/controls', headers })).json();
  return { prefix, ledger, kill, board, clock, post, controls, logged };
}

/** A kill switch whose release runs `between` after it read Redis, before it removes the entry. */
function releasing(ledger: Ledger, prefix: string, between: () => Promise<unknown>): KillSwitch {
  const racing = Object.create(ledger) as Ledger;
  racing.recordKillSwitchEvent = async (e) => {
    await ledger.recordKillSwitchEvent(e);
    if (e.action === 'release') await between();
  };
  racing.audit = (e) => ledger.audit(e);
  return new KillSwitch({ redis, prefix, ledger: racing });
}

/** `ks` as it is, except that `onRelease` runs once its release failed, before the failure is passed on. */
function afterFailedRelease(ks: KillSwitch, onRelease: () => Promise<unknown>): KillSwitch {
  return new Proxy(ks, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target);
      if (prop === 'release')
        return async (...args: Parameters<KillSwitch['release']>) => {
          try {
            return await target.release(...args);
          } catch (err) {
            await onRelease();
            throw err;
          }
        };
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

describe('kill switch over the API: an engage never loosens, a release never removes a newer engagement', () => {
  it('a release that finds the scope engaged again after its read answers 409 naming the newer engagement; it stays engaged', async () => {
    let newer: KillEngagement | undefined;
    const d = await deployment((ledger, prefix) =>
      releasing(ledger, prefix, async () => {
        newer = await d.kill.engage('venue:gmx-arb', { actor: 'operator:bo', reason: 'depeg: full stop' });
      }),
    );
    await d.kill.engage('venue:gmx-arb', {
      actor: 'operator:ana',
      reason: 'venue slow',
      allowRiskReducing: true,
    });
    const r = await d.post('/v1/kill-switch/reset', {
      scope: 'venue',
      target: 'gmx-arb',
      reason: 'venue back',
    });
    expect(r.statusCode, r.body).toBe(409);
    expect(r.json().error).toMatchObject({
      code: 'KILL_SWITCH_RELEASE_CONFLICT',
      message: expect.stringMatching(/^kill switch venue:gmx-arb NOT released: engaged again by operator:bo/),
      details: {
        scope: 'venue:gmx-arb',
        engaged: true,
        released: false,
        eventId: newer?.eventId,
        actor: 'operator:bo',
        reason: 'depeg: full stop',
        allowRiskReducing: false,
      },
    });
    expect((await d.controls()).killSwitches).toContainEqual(
      expect.objectContaining({
        scope: 'venue',
        target: 'gmx-arb',
        engaged: true,
        by: 'operator:bo',
        allowRiskReducing: false,
      }),
    );
    expect(d.logged).toEqual([]);
  });

  it('a release conflict stays a 409 though another operator releases the scope before the port reads it back (no AUDIT_UNRECORDED)', async () => {
    const d = await deployment((ledger, prefix) =>
      afterFailedRelease(
        releasing(ledger, prefix, () => d.kill.engage('global', { actor: 'operator:bo', reason: 'halt' })),
        () => d.kill.release('global', { actor: 'operator:cy', reason: 'halt over' }),
      ),
    );
    await d.kill.engage('global', { actor: 'operator:ana', reason: 'drill', allowRiskReducing: true });
    const r = await d.post('/v1/kill-switch/reset', { scope: 'global', reason: 'drill over' });
    expect(r.statusCode, r.body).toBe(409);
    expect(r.json().error).toMatchObject({
      code: 'KILL_SWITCH_RELEASE_CONFLICT',
      details: { actor: 'operator:bo', released: false },
    });
    // this call released nothing: nothing to record by hand
    expect(d.logged).toEqual([]);
  });

  it('a reduce-only trip over a full stop answers 200 with change kept and the full stop in force; replace: true loosens it', async () => {
    const d = await deployment();
    const stop = await d.post('/v1/kill-switch/trip', {
      scope: 'underlying',
      target: 'BTC',
      reason: 'stop all',
    });
    expect(stop.statusCode, stop.body).toBe(200);
    expect(stop.json()).toMatchObject({ engaged: true, allowRiskReducing: false, change: 'engaged' });
    expect(stop.json()).not.toHaveProperty('previous');
    const since = stop.json().sinceMs;

    const reduce = await d.post('/v1/kill-switch/trip', {
      scope: 'underlying',
      target: 'BTC',
      reason: 'wind the book down',
      allowRiskReducing: true,
    });
    expect(reduce.statusCode, reduce.body).toBe(200);
    expect(reduce.json()).toMatchObject({
      scope: 'underlying',
      target: 'BTC',
      engaged: true,
      change: 'kept',
      // the full stop in force: its who, why, since and setting
      allowRiskReducing: false,
      reason: 'stop all',
      by: 'operator:alice',
      sinceMs: since,
      previous: { by: 'operator:alice', reason: 'stop all', sinceMs: since, allowRiskReducing: false },
    });
    const held = (await d.controls()).killSwitches.find(
      (k: { scope: string; target?: string }) => k.scope === 'underlying' && k.target === 'BTC',
    );
    expect(held).toMatchObject({ engaged: true, allowRiskReducing: false, reason: 'stop all' });

    const loosened = await d.post('/v1/kill-switch/trip', {
      scope: 'underlying',
      target: 'BTC',
      reason: 'wind the book down',
      allowRiskReducing: true,
      replace: true,
    });
    expect(loosened.statusCode, loosened.body).toBe(200);
    expect(loosened.json()).toMatchObject({
      engaged: true,
      change: 'replaced',
      allowRiskReducing: true,
      reason: 'wind the book down',
      previous: { reason: 'stop all', allowRiskReducing: false },
    });
    expect((await d.kill.engaged()).find((e) => e.scope === 'underlying:BTC')).toMatchObject({
      allowRiskReducing: true,
    });
  });
});

describe('breakers over the API: a reset told the trip it closes', () => {
  it('a stale openedAtMs answers 409 naming the trip in force and the breaker stays open; the one in force closes it', async () => {
    const d = await deployment();
    const name = 'market:stale-mark:ETH';
    const first = await d.post(`/v1/breakers/${name}/trip`, { reason: 'marks 9000 ms old' });
    expect(first.statusCode, first.body).toBe(200);
    const seen = first.json().sinceMs as number;
    expect(seen).toBe(d.clock.nowMs());
    // closed and tripped again meanwhile, by someone else: a newer trip the operator has not seen
    await d.board.reset(name, 'operator:bo', 'feed back');
    d.clock.advance(1_000);
    await d.board.trip(name, 'marks 12000 ms old');

    const stale = await d.post(`/v1/breakers/${name}/reset`, { reason: 'feed back', openedAtMs: seen });
    expect(stale.statusCode, stale.body).toBe(409);
    expect(stale.json().error).toMatchObject({
      code: 'BREAKER_RESET_CONFLICT',
      details: {
        breaker: name,
        state: 'open',
        reason: 'marks 12000 ms old',
        openedAtMs: d.clock.nowMs(),
        expectedOpenedAtMs: seen,
      },
    });
    expect((await d.controls()).breakers).toContainEqual(
      expect.objectContaining({ name, state: 'open', sinceMs: d.clock.nowMs() }),
    );
    expect(await d.ledger.listAudit({ action: 'breaker.reset', actor: 'alice' })).toEqual([]);

    const current = await d.post(`/v1/breakers/${name}/reset`, {
      reason: 'feed back',
      openedAtMs: d.clock.nowMs(),
    });
    expect(current.statusCode, current.body).toBe(200);
    expect(current.json()).toMatchObject({ name, state: 'closed' });
    expect((await d.board.status(name)).state).toBe('closed');
  });

  it('a reset conflict stays a 409 though another operator closes the breaker before the port reads it back', async () => {
    const d = await deployment();
    const name = 'market:stale-mark:BTC';
    await d.board.trip(name, 'marks old');
    const seen = d.clock.nowMs();
    await d.board.reset(name, 'operator:bo', 'x');
    d.clock.advance(1_000);
    await d.board.trip(name, 'marks older');
    // the board the port uses closes it (another operator) once its conflict is thrown
    const port = controlsPort(
      d.kill,
      new Proxy(d.board, {
        get(target, prop) {
          const v = Reflect.get(target, prop, target);
          if (prop === 'reset')
            return async (...args: Parameters<BreakerBoard['reset']>) => {
              try {
                return await target.reset(...args);
              } catch (err) {
                await target.reset(name, 'operator:cy', 'closing it myself');
                throw err;
              }
            };
          return typeof v === 'function' ? v.bind(target) : v;
        },
      }),
      d.ledger,
    );
    const actor = { tokenId: 't', name: 'alice', role: 'risk' as const };
    const err = await port.resetBreaker(name, 'feed back', actor, { openedAtMs: seen }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'BREAKER_RESET_CONFLICT' });
  });
});
