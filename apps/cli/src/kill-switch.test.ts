import { appendFileSync } from 'node:fs';
import { loadConfigFile } from '@xhedge/config';
import {
  BreakerBoard,
  type KillEngagement,
  KillEvent,
  type KillScope,
  KillSwitch,
  type RedisEndpoint,
} from '@xhedge/execution';
import { Ledger, openDatabase, postgresReachable, TEST_PG_URL } from '@xhedge/store';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { deploymentPerTest } from './test-deployment.ts';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
type Redis = ReturnType<RedisEndpoint['client']>;

const pgOk = await postgresReachable();
if (!pgOk)
  console.warn(
    `[cli kill-switch tests] Postgres at ${TEST_PG_URL} not reachable: the ledger tests are skipped`,
  );

describe.skipIf(!pgOk)('xhedge kill-switch (real Redis and Postgres)', () => {
  const t = deploymentPerTest({ tag: 'ks-cli-test', command: 'kill-switch', redisUrl: REDIS_URL });
  /** Runs the CLI on this test's profile and ledger schema. */
  const cli = (args: string[]) => t.cli(args);
  let redis: Redis;
  let subscriber: Redis;
  let profile: { file: string; name: string };
  let prefix: string;
  let ledger: Ledger;
  let kill: KillSwitch;
  let events: KillEvent[];

  beforeEach(async () => {
    redis = t.redis;
    ({ prefix, ledger } = t.deployment);
    profile = t.deployment;
    kill = new KillSwitch({ redis, prefix, ledger });
    events = [];
    subscriber = t.endpoint.client();
    subscriber.on('message', (channel: string, message: string) => {
      if (channel === kill.channel) events.push(KillEvent.parse(JSON.parse(message)));
    });
    await subscriber.subscribe(kill.channel);
  });

  afterEach(async () => {
    await subscriber.quit();
  });

  it('engage: the deployment kill switch is engaged, announced, and recorded in the ledger and the audit', async () => {
    const r = await cli([
      'engage',
      '--scope',
      'venue:gmx-arb',
      '--reason',
      'venue halted withdrawals',
      '--allow-risk-reducing',
      '--actor',
      'operator:alice',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /kill switch ENGAGED venue:gmx-arb .*by operator:alice: "venue halted withdrawals"/,
    );

    const engaged = await kill.engaged();
    expect(engaged).toHaveLength(1);
    expect(engaged[0]).toMatchObject({
      scope: 'venue:gmx-arb',
      actor: 'operator:alice',
      reason: 'venue halted withdrawals',
      allowRiskReducing: true,
    });
    expect(await kill.blocking({ venue: 'gmx-arb', underlying: 'BTC', reduceOnly: false })).toBeDefined();

    await vi.waitFor(() => expect(events).toHaveLength(1));
    expect(events[0]).toMatchObject({
      action: 'engage',
      scope: 'venue:gmx-arb',
      eventId: engaged[0]?.eventId,
      allowRiskReducing: true,
    });

    const rows = await ledger.listKillSwitchEvents({ scope: 'venue:gmx-arb' });
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      action: 'engage',
      actor: 'operator:alice',
      reason: 'venue halted withdrawals',
      allowRiskReducing: true,
      details: { eventId: engaged[0]?.eventId },
    });
    const audit = await ledger.listAudit({ action: 'kill-switch.engage' });
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ actor: 'operator:alice', subject: 'venue:gmx-arb' });
  });

  it('engage whose ledger write fails: exit 1 saying the switch IS engaged and not recorded', async () => {
    const h = await openDatabase({ url: TEST_PG_URL, schema: t.deployment.schema, migrate: false });
    const run = h.prepared;
    if (!run) throw new Error('needs Postgres');
    await run('ks_off', 'alter table kill_switch_events rename to kill_switch_events_off', []);
    try {
      const r = await cli(['engage', '--scope', 'underlying:ETH', '--reason', 'oracle drift']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        /^error: kill switch ENGAGED underlying:ETH \(orders are stopped\), but the ledger did not record it/,
      );
      expect(r.stderr).not.toMatch(/unexpected failure/);
      expect((await kill.engaged()).map((e) => e.scope)).toEqual(['underlying:ETH']);
    } finally {
      await run('ks_on', 'alter table kill_switch_events_off rename to kill_switch_events', []);
      await h.close();
    }
  });

  it('engage defaults to the global scope and an operator:<os user> actor; --json prints the engagement', async () => {
    const r = await cli(['engage', '--reason', 'market halt', '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    // the prefix the run uses: `{xhedge}:` and the profile name with the space replaced
    expect(prefix).toBe(`{xhedge}:${profile.name.replace(' ', '-')}`);
    expect(out).toMatchObject({ action: 'engage', engaged: true, scope: 'global', deployment: prefix });
    expect(out.by).toMatch(/^operator:\S+$/);
    const engaged = await kill.engaged();
    expect(engaged.map((e) => [e.scope, e.actor, e.allowRiskReducing])).toEqual([['global', out.by, false]]);
  });

  it('status: engaged scopes and open breakers, as text and as JSON', async () => {
    const quiet = await cli(['status']);
    expect(quiet.code).toBe(0);
    expect(quiet.stdout).toMatch(/kill switch: not engaged/);
    expect(quiet.stdout).toMatch(/breakers: all closed/);

    expect((await cli(['engage', '--scope', 'underlying:ETH', '--reason', 'oracle drift'])).code).toBe(0);
    const board = new BreakerBoard({ redis, prefix, config: loadConfigFile(profile.file).breakers, ledger });
    await board.trip('venue:drift-sol', 'error rate 80%');

    const text = await cli(['status']);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`deployment ${prefix}`);
    expect(text.stdout).toMatch(
      /kill switch ENGAGED underlying:ETH: "oracle drift" by operator:\S+ since \d{4}-/,
    );
    expect(text.stdout).toMatch(/breaker OPEN venue:drift-sol: "error rate 80%" since \d{4}-/);

    const json = await cli(['status', '--json']);
    expect(json.code).toBe(0);
    const out = JSON.parse(json.stdout) as {
      deployment: string;
      killSwitches: {
        scope: string;
        reason: string;
        by: string;
        since: string;
        allowRiskReducing: boolean;
      }[];
      breakers: { name: string; state: string; reason: string }[];
      missingInRedis: unknown[];
    };
    expect(out.deployment).toBe(prefix);
    expect(out.killSwitches).toHaveLength(1);
    expect(out.killSwitches[0]).toMatchObject({
      scope: 'underlying:ETH',
      reason: 'oracle drift',
      allowRiskReducing: false,
    });
    expect(Number.isNaN(Date.parse(out.killSwitches[0]?.since ?? ''))).toBe(false);
    expect(out.breakers).toEqual([
      expect.objectContaining({ name: 'venue:drift-sol', state: 'open', reason: 'error rate 80%' }),
    ]);
    expect(out.missingInRedis).toEqual([]);
  });

  it('status: an engagement the ledger holds but Redis lost is shown as such', async () => {
    expect((await cli(['engage', '--scope', 'global', '--reason', 'redis test'])).code).toBe(0);
    await redis.del(kill.stateKey);
    const json = await cli(['status', '--json']);
    const out = JSON.parse(json.stdout) as { killSwitches: unknown[]; missingInRedis: { scope: string }[] };
    expect(out.killSwitches).toEqual([]);
    expect(out.missingInRedis.map((m) => m.scope)).toEqual(['global']);
    expect((await cli(['status'])).stdout).toMatch(/global: engaged in the ledger but missing in Redis/);
  });

  it('release: the scope is released in Redis, announced, and the ledger says released', async () => {
    await kill.engage('underlying:BTC', { actor: 'operator:bob', reason: 'fat finger' });
    await vi.waitFor(() => expect(events).toHaveLength(1));

    const r = await cli(['release', '--scope', 'underlying:BTC', '--reason', 'checked, all good']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/kill switch released underlying:BTC/);
    expect(await kill.engaged()).toEqual([]);
    await vi.waitFor(() => expect(events).toHaveLength(2));
    expect(events[1]).toMatchObject({ action: 'release', scope: 'underlying:BTC' });
    const states = await ledger.killSwitchStates();
    expect(states.map((s) => [s.scope, s.action, s.reason])).toEqual([
      ['underlying:BTC', 'release', 'checked, all good'],
    ]);
    expect(await kill.restore({ actor: 'test' })).toEqual([]);
    expect((await ledger.listAudit({ action: 'kill-switch.release' }))[0]?.subject).toBe('underlying:BTC');

    const again = await cli(['release', '--scope', 'underlying:BTC', '--reason', 'once more', '--json']);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ scope: 'underlying:BTC', wasEngaged: false });
  });

  it('release refused because the scope was engaged again after its read: exit 1 naming the newer engagement, which stays', async () => {
    const scope: KillScope = 'underlying:SOL';
    // The race made deterministic: the other operator's engage runs inside the CLI's release, after it
    // read Redis and before it removes the entry (at its ledger event, as the library's race tests do).
    const record = Ledger.prototype.recordKillSwitchEvent;
    let newer: KillEngagement | undefined;
    /** The engagement in Redis is the newer one, as it was engaged. */
    const heldIsNewer = async () => {
      const {
        scope: s,
        eventId,
        actor,
        reason,
        allowRiskReducing,
        engagedAtMs,
      } = newer ?? ({} as KillEngagement);
      expect(await kill.engaged()).toEqual([
        { scope: s, eventId, actor, reason, allowRiskReducing, engagedAtMs },
      ]);
    };
    const spy = vi.spyOn(Ledger.prototype, 'recordKillSwitchEvent').mockImplementation(async function (
      this: Ledger,
      e,
    ) {
      if (e.action === 'release' && e.scope === scope)
        newer = await kill.engage(scope, { actor: 'risk-owner:bo', reason: 'depeg: full stop' });
      return record.call(this, e);
    });
    try {
      await kill.engage(scope, { actor: 'operator:ana', reason: 'sol halt', allowRiskReducing: true });
      const r = await cli(['release', '--scope', scope, '--reason', 'halt over']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        /^error: kill switch underlying:SOL NOT released: engaged again by risk-owner:bo at \d{4}-\S+ \("depeg: full stop"\) after this release read it; it stays engaged\n/,
      );
      expect(r.stderr).toContain('read the newer one, and release again if it should go');
      expect(r.stderr).not.toMatch(/unexpected failure/);
      expect(r.stdout).toBe('');
      await heldIsNewer();

      const j = await cli(['release', '--scope', scope, '--reason', 'halt over', '--json']);
      expect(j.code).toBe(1);
      expect(j.stderr).toMatch(
        /^error: kill switch underlying:SOL NOT released: engaged again by risk-owner:bo/,
      );
      expect(JSON.parse(j.stdout)).toEqual({
        action: 'release',
        deployment: prefix,
        scope,
        engaged: true,
        released: false,
        eventId: newer?.eventId,
        actor: 'risk-owner:bo',
        reason: 'depeg: full stop',
        allowRiskReducing: false,
        engagedAtMs: newer?.engagedAtMs,
        ledgerRestated: true,
        code: 'KILL_SWITCH_RELEASE_CONFLICT',
      });
      await heldIsNewer();
    } finally {
      spy.mockRestore();
    }
    // once read, it releases
    const ok = await cli(['release', '--scope', scope, '--reason', 'halt over', '--json']);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ scope, engaged: false, wasEngaged: true });
    expect(await kill.engaged()).toEqual([]);
  });

  it('engage never loosens a full stop: a reduce-only engage says it was kept (the full stop stays); a full stop tightens a reduce-only one', async () => {
    const first = await kill.engage('venue:gmx-arb', { actor: 'operator:alice', reason: 'venue halted' });
    const since = new Date(first.engagedAtMs).toISOString();
    const r = await cli([
      'engage',
      '--scope',
      'venue:gmx-arb',
      '--reason',
      'only reduce now',
      '--allow-risk-reducing',
      '--actor',
      'operator:bob',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      `kill switch venue:gmx-arb already ENGAGED on ${prefix} as a full stop by operator:alice since ${since} ("venue halted"); your reduce-only request did not loosen it (use --replace to)`,
    );
    expect(await kill.engaged()).toEqual([
      expect.objectContaining({ actor: 'operator:alice', reason: 'venue halted', allowRiskReducing: false }),
    ]);

    const j = await cli([
      'engage',
      '--scope',
      'venue:gmx-arb',
      '--reason',
      'only reduce now',
      '--allow-risk-reducing',
      '--actor',
      'operator:bob',
      '--json',
    ]);
    expect(j.code).toBe(0);
    expect(JSON.parse(j.stdout)).toMatchObject({
      action: 'engage',
      engaged: true,
      scope: 'venue:gmx-arb',
      by: 'operator:alice',
      allowRiskReducing: false,
      since,
      change: 'kept',
      requested: { actor: 'operator:bob', reason: 'only reduce now', allowRiskReducing: true },
      previous: { by: 'operator:alice', reason: 'venue halted', allowRiskReducing: false, since },
    });
    // the ledger says what was asked and what is in force
    const rows = await ledger.listKillSwitchEvents({ scope: 'venue:gmx-arb' });
    expect(rows[0]).toMatchObject({
      action: 'engage',
      actor: 'operator:bob',
      reason: 'only reduce now',
      allowRiskReducing: false,
      details: { change: 'kept', requestedAllowRiskReducing: true, inForce: { actor: 'operator:alice' } },
    });

    await kill.engage('underlying:ETH', {
      actor: 'operator:ana',
      reason: 'eth drift',
      allowRiskReducing: true,
    });
    const t = await cli([
      'engage',
      '--scope',
      'underlying:ETH',
      '--reason',
      'depeg',
      '--actor',
      'operator:bo',
    ]);
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(
      /^kill switch underlying:ETH on \S+ is now a full stop, by operator:bo: "depeg" \(was reduce-only \(risk-reducing orders allowed\) by operator:ana since \d{4}-/,
    );
    expect((await kill.engaged()).find((e) => e.scope === 'underlying:ETH')).toMatchObject({
      actor: 'operator:bo',
      allowRiskReducing: false,
    });
  });

  it('engage recorded after a full stop tightened it meanwhile: the ledger restates the full stop, so a restore keeps it', async () => {
    const scope: KillScope = 'underlying:SOL';
    // The race made deterministic: the API's full stop lands in Redis and the ledger after the CLI's
    // reduce-only engage is in Redis, before the CLI's ledger event (its ledger opens late).
    const record = Ledger.prototype.recordKillSwitchEvent;
    let api: Awaited<ReturnType<KillSwitch['engage']>> | undefined;
    const spy = vi.spyOn(Ledger.prototype, 'recordKillSwitchEvent').mockImplementation(async function (
      this: Ledger,
      e,
    ) {
      if (e.action === 'engage' && e.actor === 'operator:cli' && !api)
        api = await kill.engage(scope, { actor: 'operator:api', reason: 'full stop' });
      return record.call(this, e);
    });
    try {
      const r = await cli([
        'engage',
        '--scope',
        scope,
        '--reason',
        'reduce only please',
        '--allow-risk-reducing',
        '--actor',
        'operator:cli',
      ]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    } finally {
      spy.mockRestore();
    }
    expect(api?.change).toBe('tightened');
    const last = (await ledger.killSwitchStates()).find((s) => s.scope === scope);
    expect(last).toMatchObject({
      action: 'engage',
      allowRiskReducing: false,
      details: { eventId: api?.eventId, restatedBy: 'operator:cli' },
    });
    // Redis loses it: the restore puts back the full stop
    await redis.hdel(kill.stateKey, scope);
    expect((await kill.restore({ actor: 'run' })).find((e) => e.scope === scope)).toMatchObject({
      actor: 'operator:api',
      allowRiskReducing: false,
    });
    expect((await kill.engaged()).find((e) => e.scope === scope)?.allowRiskReducing).toBe(false);
  });

  it('engage --replace loosens a full stop to reduce-only, saying what it replaced', async () => {
    await kill.engage('global', { actor: 'operator:alice', reason: 'market halt' });
    const r = await cli([
      'engage',
      '--reason',
      'reduce only from now',
      '--allow-risk-reducing',
      '--replace',
      '--actor',
      'operator:bob',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^kill switch global on \S+ REPLACED \(was a full stop by operator:alice since \d{4}-\S+ \("market halt"\)\): now ENGAGED as reduce-only \(risk-reducing orders allowed\) by operator:bob: "reduce only from now"/,
    );
    expect(await kill.engaged()).toEqual([
      expect.objectContaining({
        actor: 'operator:bob',
        reason: 'reduce only from now',
        allowRiskReducing: true,
      }),
    ]);

    const j = await cli(['engage', '--reason', 'full stop again', '--replace', '--json']);
    expect(j.code).toBe(0);
    expect(JSON.parse(j.stdout)).toMatchObject({
      change: 'replaced',
      allowRiskReducing: false,
      previous: { by: 'operator:bob', allowRiskReducing: true },
    });
    const help = await cli(['engage', '--help']);
    expect(help.stdout.replace(/\s+/g, ' ')).toContain('without it an engage never loosens');
  });

  it('a bad scope exits 2 naming it, before touching Redis or the ledger', async () => {
    const r = await cli(['engage', '--scope', 'venue:GMX_ARB', '--reason', 'typo test']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('"venue:GMX_ARB" is not a kill-switch scope');
    expect(r.stdout).toBe('');
    const rel = await cli(['release', '--scope', 'everything', '--reason', 'typo test']);
    expect(rel.code).toBe(2);
    expect(rel.stderr).toContain('"everything"');
    expect(await kill.engaged()).toEqual([]);
    expect(await ledger.listKillSwitchEvents()).toEqual([]);
  });

  it('engage on a venue or underlying the deployment does not know exits 2 naming the known ones, unless --force; release is never refused', async () => {
    const venue = await cli(['engage', '--scope', 'venue:gmx-arbb', '--reason', 'typo drill']);
    expect(venue.code).toBe(2);
    expect(venue.stderr).toContain(
      `no venue gmx-arbb in deployment ${prefix}; the venues are lyra-arb, gmx-arb, drift-sol, uni-eth`,
    );
    expect(venue.stderr).toContain('--force');
    expect(venue.stdout).toBe('');
    const underlying = await cli(['engage', '--scope', 'underlying:DOGE', '--reason', 'typo drill']);
    expect(underlying.code).toBe(2);
    expect(underlying.stderr).toContain(
      `no underlying DOGE in deployment ${prefix}; the underlyings are BTC, ETH, SOL`,
    );
    expect(await kill.engaged()).toEqual([]);
    expect(await ledger.listKillSwitchEvents()).toEqual([]);

    // --force engages it anyway, saying so
    const forced = await cli([
      'engage',
      '--scope',
      'venue:gmx-arbb',
      '--reason',
      'venue about to be added',
      '--force',
    ]);
    expect(forced.code).toBe(0);
    expect(forced.stderr).toMatch(/note: no venue gmx-arbb .*engaging venue:gmx-arbb anyway \(--force\)/);
    expect((await kill.engaged()).map((e) => e.scope)).toEqual(['venue:gmx-arbb']);
    // a release of any scope goes through
    const released = await cli(['release', '--scope', 'venue:gmx-arbb', '--reason', 'drill over']);
    expect(released.code).toBe(0);
    const never = await cli(['release', '--scope', 'underlying:DOGE', '--reason', 'drill over']);
    expect(never.code).toBe(0);
    expect(await kill.engaged()).toEqual([]);

    // a venue the run added through the API (its shared venue list in Redis) is known
    const venues = loadConfigFile(profile.file).venues;
    const added = { ...(venues[0] as (typeof venues)[number]), id: 'lyra-new' };
    await redis.set(`${prefix}:config:venues`, JSON.stringify([...venues, added]));
    const api = await cli(['engage', '--scope', 'venue:lyra-new', '--reason', 'new venue halt']);
    expect(api.stderr).toBe('');
    expect(api.code).toBe(0);

    const help = await cli(['engage', '--help']);
    expect(help.stdout.replace(/\s+/g, ' ')).toContain(
      '--force engage even on a venue or underlying the deployment does not know (refused otherwise, exit 2',
    );
  });

  it('a missing or too short reason, or release without --scope, exits 2', async () => {
    const none = await cli(['engage']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/--reason is required/);
    const short = await cli(['engage', '--reason', 'x ']);
    expect(short.code).toBe(2);
    expect(short.stderr).toMatch(/--reason: say why, in at least 3 characters/);
    const noScope = await cli(['release', '--reason', 'all clear']);
    expect(noScope.code).toBe(2);
    expect(noScope.stderr).toMatch(/--scope is required for release/);
    expect(await kill.engaged()).toEqual([]);
  });

  it('no Redis URL: exit 2 saying to set REDIS_URL or use the API', async () => {
    vi.stubEnv('REDIS_URL', '');
    for (const args of [['engage', '--reason', 'no redis'], ['status']]) {
      const r = await cli(args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/no Redis URL for profile/);
      expect(r.stderr).toContain('set REDIS_URL');
      expect(r.stderr).toContain('POST /v1/kill-switch/trip');
    }
    expect(await kill.engaged()).toEqual([]);
  });

  it('no DATABASE_URL: engage and release exit 2 and change nothing; status still works', async () => {
    vi.stubEnv('DATABASE_URL', '');
    const engage = await cli(['engage', '--reason', 'no ledger']);
    expect(engage.code).toBe(2);
    expect(engage.stderr).toMatch(/no DATABASE_URL .*refusing to engage without the ledger/);
    await kill.engage('global', { actor: 'operator:carol', reason: 'set by the test' });
    const release = await cli(['release', '--scope', 'global', '--reason', 'no ledger']);
    expect(release.code).toBe(2);
    expect(release.stderr).toMatch(/refusing to release without the ledger/);
    expect((await kill.engaged()).map((e) => e.scope)).toEqual(['global']);
    const status = await cli(['status', '--json']);
    expect(status.code).toBe(0);
    const out = JSON.parse(status.stdout) as { killSwitches: { scope: string }[]; missingInRedis?: unknown };
    expect(out.killSwitches.map((k) => k.scope)).toEqual(['global']);
    expect(out.missingInRedis).toBeUndefined();
  });

  it('a profile whose ledger URL is an unset env var: status still works, with a warning naming it (review: it died)', async () => {
    vi.stubEnv('DATABASE_URL', '');
    appendFileSync(profile.file, '\ndatabase:\n  url: { env: XH_KS_TEST_UNSET_DB }\n');
    await kill.engage('global', { actor: 'operator:dave', reason: 'set by the test' });
    const status = await cli(['status']);
    expect(status.code).toBe(0);
    expect(status.stderr).toMatch(
      /warning: no ledger \(only Redis is read\): database\.url of the profile is the env var XH_KS_TEST_UNSET_DB/,
    );
    expect(status.stdout).toMatch(/global/);
    // a change still needs the ledger, and says so
    const engage = await cli(['engage', '--reason', 'no ledger']);
    expect(engage.code).toBe(2);
    expect(engage.stderr).toMatch(/refusing to engage without the ledger/);
  });
});
