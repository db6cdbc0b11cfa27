import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type ApiPorts, buildApiServer, FileTokenStore } from '@xhedge/api';
import { parseConfig, type VenueConfig } from '@xhedge/config';
import { machineRedisOrEmbedded } from '@xhedge/execution/testing';
import { type DatabaseHandle, Ledger, openDatabase, postgresReachable, TEST_PG_URL } from '@xhedge/store';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ConfigLedger, SharedConfigStore } from './config-store.ts';
import { auditPort } from './ledger-ports.ts';

// The machine's Redis when it answers (as a deployment has one), else an embedded js-redis-server.
const endpoint = await machineRedisOrEmbedded('config store version tests');
const config = parseConfig(
  readFileSync(new URL('../../../configs/profiles/paper.yaml', import.meta.url), 'utf8'),
);
const ADMIN = 'admin-token-for-config-version-tests-01';
const SYSTEM = { tokenId: 'x', name: 'test', role: 'admin' as const };
const alice = { tokenId: 'a', name: 'alice', role: 'operator' as const };
const bob = { tokenId: 'b', name: 'bob', role: 'operator' as const };

const clients: Redis[] = [];
const servers: FastifyInstance[] = [];
const prefixes: string[] = [];
let ledger: Ledger;
let db: DatabaseHandle;
/** The run's own database: the test Postgres in a schema of this file's own when it answers, else PGlite. */
async function openLedgerDb(): Promise<DatabaseHandle> {
  if (await postgresReachable())
    return openDatabase({ url: TEST_PG_URL, schema: `t_cfg_${randomBytes(6).toString('hex')}`, poolSize: 4 });
  console.warn(`[config store tests] Postgres at ${TEST_PG_URL} not reachable: PGlite`);
  return openDatabase({});
}
const handles: DatabaseHandle[] = [];
/** Each deployment's own ledger (a run's database holds one copy of its config). */
const ledgers = new Map<string, Promise<Ledger>>();
function ledgerOf(prefix: string): Promise<Ledger> {
  let l = ledgers.get(prefix);
  if (!l) {
    l = openLedgerDb().then((h) => {
      handles.push(h);
      return new Ledger(h);
    });
    ledgers.set(prefix, l);
  }
  return l;
}
const tokens = new FileTokenStore({ envAdminToken: ADMIN });
const auth: Record<'alice' | 'bob', Record<string, string>> = { alice: {}, bob: {} };

beforeAll(async () => {
  db = await openLedgerDb();
  ledger = new Ledger(db);
  for (const name of ['alice', 'bob'] as const)
    auth[name] = {
      authorization: `Bearer ${(await tokens.create({ name, role: 'operator' }, SYSTEM)).token}`,
    };
});
afterAll(async () => {
  for (const s of servers) await s.close();
  const redis = endpoint.client();
  for (const p of prefixes) await redis.del(...CONFIG_KEYS.map((k) => `${p}:config:${k}`));
  redis.disconnect();
  for (const c of clients) c.disconnect();
  for (const h of [db, ...handles]) {
    if (h.kind === 'postgres') await h.dropSchema();
    await h.close();
  }
  await endpoint.close();
});

/** Every key the store keeps under `<prefix>:config:`. */
const CONFIG_KEYS = ['venues', 'policy', 'changes', 'version-key', 'revisions'];

/** A deployment's Redis key prefix of its own. */
function deployment(): string {
  const p = `{xhedge-test}:cfgver-${randomBytes(6).toString('hex')}`;
  prefixes.push(p);
  return p;
}

/**
 * The store of one process of the deployment: its own Redis connection, the deployment's keys and
 * ledger (`on`: that ledger instead; `profile`: a profile of its own).
 */
async function store(
  prefix: string,
  o: { on?: ConfigLedger; profile?: typeof config; init?: boolean } = {},
): Promise<SharedConfigStore> {
  const redis = endpoint.client();
  clients.push(redis);
  const s = new SharedConfigStore({
    redis,
    prefix,
    config: o.profile ?? config,
    ledger: o.on ?? (await ledgerOf(prefix)),
  });
  if (o.init !== false) await s.init();
  return s;
}

/** One API replica of the deployment over its own store; the ports this test does not use are absent. */
async function replica(prefix: string): Promise<FastifyInstance> {
  const s = await store(prefix);
  const unused = {} as never;
  const ports: ApiPorts = {
    readiness: async () => ({ ready: true, checks: [] }),
    risk: unused,
    hedges: unused,
    controls: unused,
    pnl: unused,
    venues: s.venuesPort(),
    policy: s.policyPort(),
    audit: auditPort(ledger),
    tokens,
    metrics: new Registry(),
  };
  const app = await buildApiServer({ ports, logger: false, rateLimitPerMinute: 100_000 });
  servers.push(app);
  await app.ready();
  return app;
}

const getJson = async (app: FastifyInstance, url: string, who: 'alice' | 'bob') => {
  const r = await app.inject({ url, headers: auth[who] });
  expect(r.statusCode, r.body).toBe(200);
  return { body: r.json(), etag: String(r.headers.etag) };
};

describe('venue updates through two API replicas over one Redis: no lost update', () => {
  it("an operator's copy read before another's disable does not enable the venue again (412, naming who)", async () => {
    const prefix = deployment();
    const [one, two] = [await replica(prefix), await replica(prefix)];
    // Bob reads gmx-arb on replica two
    const read = await getJson(two, '/v1/venues/gmx-arb', 'bob');
    expect(read.body.enabled).toBe(true);
    // Alice disables it on replica one
    const off = await one.inject({
      method: 'POST',
      url: '/v1/venues/gmx-arb/disable',
      headers: auth.alice,
      payload: { reason: 'keeper stuck' },
    });
    expect(off.statusCode, off.body).toBe(200);
    // Bob sends his edited copy back, with the version he read
    const { credentialNames: _, ...copy } = read.body;
    const stale = await two.inject({
      method: 'PUT',
      url: '/v1/venues/gmx-arb',
      headers: auth.bob,
      payload: { ...copy, params: { ...copy.params, keeperDelayMs: 200 } },
    });
    expect(stale.statusCode, stale.body).toBe(412);
    expect(stale.json().error).toMatchObject({
      code: 'PRECONDITION_FAILED',
      details: { version: off.json().version, changedBy: 'alice', change: 'venue.disable' },
    });
    // without the version, enabled: true: refused too
    const { version: _v, ...blind } = copy;
    const unconditional = await two.inject({
      method: 'PUT',
      url: '/v1/venues/gmx-arb',
      headers: auth.bob,
      payload: { ...blind, params: { keeperDelayMs: 200 } },
    });
    expect(unconditional.statusCode, unconditional.body).toBe(428);
    // as stored, for every process: disabled, params as they were
    const stored = (await (await store(prefix)).venues()).find((v) => v.id === 'gmx-arb');
    expect(stored).toMatchObject({ enabled: false, params: { keeperDelayMs: 1500 } });
    // the same content has the same version on both replicas
    expect((await getJson(one, '/v1/venues/gmx-arb', 'alice')).etag).toBe(
      (await getJson(two, '/v1/venues/gmx-arb', 'bob')).etag,
    );
  });

  it('a change written by a process that records no author (an older one) is still seen: 412, author not recorded', async () => {
    const prefix = deployment();
    const app = await replica(prefix);
    const read = await getJson(app, '/v1/venues/drift-sol', 'bob');
    // the list rewritten directly, as a process of the previous release or a repair script would
    const s = await store(prefix);
    const list = (await s.venues()).map(
      (v): VenueConfig => (v.id === 'drift-sol' ? { ...v, enabled: false } : v),
    );
    const direct = endpoint.client();
    clients.push(direct);
    await direct.set(`${prefix}:config:venues`, JSON.stringify(list));
    const r = await app.inject({
      method: 'PUT',
      url: '/v1/venues/drift-sol',
      headers: { ...auth.bob, 'if-match': read.etag },
      payload: { id: 'drift-sol', kind: 'paper-drift', chain: 'solana:mainnet-beta', enabled: true },
    });
    expect(r.statusCode, r.body).toBe(412);
    expect(r.json().error.message).toMatch(/who changed it is not recorded/);
    expect(r.json().error.details.changedBy).toBeUndefined();
    expect((await s.venues()).find((v) => v.id === 'drift-sol')?.enabled).toBe(false);
  });

  it('of many updates made at once from the same version, from two processes, exactly one is written', async () => {
    const prefix = deployment();
    const [a, b] = [await store(prefix), await store(prefix)];
    const gmx = (await a.venues()).find((v) => v.id === 'gmx-arb') as VenueConfig;
    const v0 = await a.venuesPort().versionOf(gmx);
    const { enabled: _, ...update } = gmx;
    const results = await Promise.allSettled(
      Array.from({ length: 12 }, (_x, i) =>
        (i % 2 === 0 ? a : b)
          .venuesPort()
          .update('gmx-arb', { ...update, params: { keeperDelayMs: 100 + i } }, i % 2 ? bob : alice, {
            ifMatch: [v0],
          }),
      ),
    );
    const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
    expect(won).toHaveLength(1);
    for (const r of results)
      if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'PRECONDITION_FAILED' });
    const stored = (await b.venues()).find((v) => v.id === 'gmx-arb');
    expect(stored?.params).toEqual({ keeperDelayMs: 100 + (won[0] ?? -1) });
  });
});

describe('policy updates through two API replicas over one Redis: no lost update', () => {
  it("two operators' changes from the same read: the second is refused (412, naming who), the first kept", async () => {
    const prefix = deployment();
    const [one, two] = [await replica(prefix), await replica(prefix)];
    const readA = await getJson(one, '/v1/policy', 'alice');
    const readB = await getJson(two, '/v1/policy', 'bob');
    expect(readA.etag).toBe(readB.etag);
    const a = await one.inject({
      method: 'PUT',
      url: '/v1/policy',
      headers: { ...auth.alice, 'if-match': readA.etag },
      payload: {
        ...readA.body,
        version: undefined,
        perUnderlying: { ...readA.body.perUnderlying, BTC: { ...readA.body.default, bandDelta: 0.1 } },
      },
    });
    expect(a.statusCode, a.body).toBe(200);
    const eth = readB.body.perUnderlying.ETH;
    const b = await two.inject({
      method: 'PUT',
      url: '/v1/policy',
      headers: auth.bob,
      payload: { ...readB.body, perUnderlying: { ...readB.body.perUnderlying, ETH: { ...eth, costBps: 8 } } },
    });
    expect(b.statusCode, b.body).toBe(412);
    expect(b.json().error.details).toMatchObject({
      version: a.json().version,
      changedBy: 'alice',
      change: 'policy.update',
    });
    const now = await (await store(prefix)).policy();
    expect(now.perUnderlying.BTC).toMatchObject({ bandDelta: 0.1 });
    expect(now.perUnderlying.ETH).toMatchObject({ costBps: 6 });
  });

  it('of many policy updates at once from the same version, exactly one is written', async () => {
    const prefix = deployment();
    const [a, b] = [await store(prefix), await store(prefix)];
    const p0 = await a.policy();
    const v0 = await a.policyPort().versionOf(p0);
    const results = await Promise.allSettled(
      Array.from({ length: 12 }, (_x, i) =>
        (i % 2 === 0 ? a : b).policyPort().update({ ...p0, tickIntervalMs: 2000 + i }, alice, [v0]),
      ),
    );
    const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
    expect(won).toHaveLength(1);
    expect((await b.policy()).tickIntervalMs).toBe(2000 + (won[0] ?? -1));
  });

  it('unconditional PUTs at once: each audit entry has the document it replaced as before (read in the same step)', async () => {
    const prefix = deployment();
    const [one, two] = [await replica(prefix), await replica(prefix)];
    const { body } = await getJson(one, '/v1/policy', 'alice');
    const { version: _, ...doc } = body;
    const since = Date.now() - 1;
    const answers = await Promise.all(
      [one, two, one, two].map((app, i) =>
        app.inject({
          method: 'PUT',
          url: '/v1/policy',
          headers: i % 2 ? auth.bob : auth.alice,
          payload: { ...doc, tickIntervalMs: 3000 + i },
        }),
      ),
    );
    for (const r of answers) expect(r.statusCode, r.body).toBe(200);
    const entries = (await ledger.listAudit({ fromMs: since, limit: 100 }))
      .filter((e) => e.action === 'policy.update')
      .map((e) => e.details as { before: { version: string }; after: { version: string } });
    expect(entries).toHaveLength(4);
    // a chain: the first replaced the document read above, each later one what the one before wrote
    const byBefore = new Map(entries.map((e) => [e.before.version, e]));
    expect(byBefore.size).toBe(4);
    let at = body.version as string;
    for (let i = 0; i < 4; i++) {
      const e = byBefore.get(at);
      expect(e, `an entry replacing version ${at}`).toBeDefined();
      at = e?.after.version ?? '';
    }
    expect(at).toBe((await getJson(two, '/v1/policy', 'bob')).body.version);
  });
});

describe('the ledger keeps the durable copy: a Redis that lost or rolled back the config gets it back', () => {
  /** A Redis reset of this deployment only (DEL of its own keys; never a flush). */
  const reset = async (prefix: string) => {
    const r = endpoint.client();
    await r.del(...CONFIG_KEYS.map((k) => `${prefix}:config:${k}`));
    r.disconnect();
  };
  const gmx = async (s: SharedConfigStore) => (await s.venues()).find((v) => v.id === 'gmx-arb');

  it('a venue disabled through the API stays disabled after a Redis reset (read path and init)', async () => {
    const prefix = deployment();
    const app = await replica(prefix);
    const off = await app.inject({
      method: 'POST',
      url: '/v1/venues/gmx-arb/disable',
      headers: auth.alice,
      payload: { reason: 'compromised' },
    });
    expect(off.statusCode, off.body).toBe(200);
    await reset(prefix);
    // a process already running (the venue registry polls venues() every second)
    expect((await getJson(app, '/v1/venues/gmx-arb', 'alice')).body.enabled).toBe(false);
    await reset(prefix);
    // a process starting on the empty Redis
    expect((await gmx(await store(prefix)))?.enabled).toBe(false);
  });

  it('a policy change and a venue added through the API survive a Redis reset', async () => {
    const prefix = deployment();
    const s = await store(prefix);
    const p0 = await s.policy();
    await s.policyPort().update({ ...p0, tickIntervalMs: 4321 }, alice);
    const added = { ...(config.venues.find((v) => v.id === 'gmx-arb') as VenueConfig), id: 'gmx-arb-2' };
    await s.venuesPort().add(added, bob);
    await reset(prefix);
    const again = await store(prefix, { init: false });
    expect((await again.policy()).tickIntervalMs).toBe(4321);
    expect((await again.venues()).map((v) => v.id)).toContain('gmx-arb-2');
    // a change after the restore builds on the restored copy
    await again.venuesPort().disable('drift-sol', alice);
    await reset(prefix);
    const venues = await (await store(prefix)).venues();
    expect(venues.find((v) => v.id === 'gmx-arb-2')).toBeDefined();
    expect(venues.find((v) => v.id === 'drift-sol')?.enabled).toBe(false);
  });

  it('a change written without a revision (an older release during a rolling deploy) is made durable, not undone by a later reset', async () => {
    const prefix = deployment();
    const s = await store(prefix);
    // what an older release's API does: the value set in place, no revision, no ledger write
    const r = endpoint.client();
    const key = `${prefix}:config:venues`;
    const list = JSON.parse((await r.get(key)) as string) as VenueConfig[];
    (list.find((v) => v.id === 'gmx-arb') as VenueConfig).enabled = false;
    await r.set(key, JSON.stringify(list));
    r.disconnect();
    const done = await s.restore();
    // a new revision (above the ledger's 0), recorded
    expect(done).toEqual([
      expect.objectContaining({ document: 'venues', outcome: 'recorded', redisRevision: 0 }),
    ]);
    expect(done[0]?.revision).toBeGreaterThan(0);
    expect((await (await ledgerOf(prefix)).configDocument('venues'))?.revision).toBe(done[0]?.revision);
    await reset(prefix);
    expect((await gmx(await store(prefix)))?.enabled).toBe(false);
  });

  it('a Redis rolled back to an older revision is replaced by the ledger copy (restore, and before a change)', async () => {
    const prefix = deployment();
    const s = await store(prefix);
    const r = endpoint.client();
    clients.push(r);
    const key = `${prefix}:config:venues`;
    const revisions = `${prefix}:config:revisions`;
    const [old, oldRev] = [await r.get(key), await r.hget(revisions, 'venues')];
    await s.venuesPort().disable('gmx-arb', alice);
    const rev1 = Number(await r.hget(revisions, 'venues'));
    // the snapshot of before the disable comes back (a restart from an old RDB, a replica that lagged)
    await r.set(key, old ?? '');
    await r.hset(revisions, 'venues', oldRev ?? '0');
    expect((await gmx(s))?.enabled).toBe(true);
    const done = await s.restore();
    expect(done).toEqual([{ document: 'venues', outcome: 'restored', redisRevision: 0, revision: rev1 }]);
    expect((await gmx(s))?.enabled).toBe(false);
    // rolled back again, then a change before any restore ran: made on the ledger's copy, not the old one
    await r.set(key, old ?? '');
    await r.hset(revisions, 'venues', oldRev ?? '0');
    await s.venuesPort().disable('drift-sol', bob);
    const after = await s.venues();
    expect(after.find((v) => v.id === 'gmx-arb')?.enabled).toBe(false);
    expect(after.find((v) => v.id === 'drift-sol')?.enabled).toBe(false);
    expect(await (await ledgerOf(prefix)).configDocument('venues')).toMatchObject({
      revision: Number(await r.hget(revisions, 'venues')),
      valueJson: JSON.stringify(after),
      actor: 'bob',
      action: 'venue.disable',
    });
  });

  it('a fresh ledger and Redis seed from the profile; after that the stored copy wins over a changed profile', async () => {
    const prefix = deployment();
    const l = await ledgerOf(prefix);
    expect(await l.configDocument('venues')).toBeUndefined();
    const s = await store(prefix);
    expect(await s.venues()).toEqual(config.venues);
    expect(await l.configDocument('venues')).toMatchObject({
      revision: 0,
      valueJson: JSON.stringify(config.venues),
      action: 'seed',
    });
    expect(JSON.parse((await l.configDocument('policy'))?.valueJson ?? 'null')).toEqual(config.policy);
    await s.policyPort().update({ ...(await s.policy()), tickIntervalMs: 7777 }, alice);
    await reset(prefix);
    // the profile file changed meanwhile: the operator's change in the ledger wins
    const edited = { ...config, policy: { ...config.policy, tickIntervalMs: 1234 } };
    expect((await (await store(prefix, { profile: edited })).policy()).tickIntervalMs).toBe(7777);
  });

  it('many changes at once from two processes leave the ledger at the newest revision and value', async () => {
    const prefix = deployment();
    const [a, b] = [await store(prefix), await store(prefix)];
    const p0 = await a.policy();
    await Promise.all([
      ...config.venues.map((v, i) => (i % 2 ? a : b).venuesPort().disable(v.id, alice)),
      ...Array.from({ length: 6 }, (_x, i) =>
        (i % 2 ? a : b).policyPort().update({ ...p0, tickIntervalMs: 2000 + i }, bob),
      ),
    ]);
    const r = endpoint.client();
    clients.push(r);
    const l = await ledgerOf(prefix);
    for (const doc of ['venues', 'policy'] as const) {
      // the newest: Redis's (every change got a revision above the one before it)
      const stored = await l.configDocument(doc);
      expect(String(stored?.revision)).toBe(await r.hget(`${prefix}:config:revisions`, doc));
      expect(stored?.valueJson).toBe(await r.get(`${prefix}:config:${doc}`));
    }
    await reset(prefix);
    expect((await a.venues()).every((v) => !v.enabled)).toBe(true);
  });

  it('a change the ledger does not take is reported in force but not durable; the restore records it', async () => {
    const prefix = deployment();
    const l = await ledgerOf(prefix);
    let down = false;
    const flaky: ConfigLedger = {
      configDocument: (name) => l.configDocument(name),
      writeConfigDocument: (d) =>
        down
          ? Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))
          : l.writeConfigDocument(d),
    };
    const s = await store(prefix, { on: flaky });
    down = true;
    const err = await s
      .venuesPort()
      .disable('gmx-arb', alice)
      .catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: 'AUDIT_UNRECORDED',
      details: { applied: true, durable: false, document: 'venues' },
    });
    const rev = (err as { details: { revision: number } }).details.revision;
    expect(rev).toBeGreaterThan(0);
    expect((err as Error).message).toMatch(/in force .* not yet durable/);
    // the ledger was read before the change: nothing said about it being undone
    expect((err as Error).message).not.toMatch(/could not be read before the change/);
    expect((err as { details: object }).details).not.toHaveProperty('verified');
    expect((await l.configDocument('venues'))?.revision).toBe(0);
    // in force for every process at once
    expect((await gmx(await store(prefix, { on: flaky, init: false })))?.enabled).toBe(false);
    down = false;
    expect(await s.restore()).toEqual([
      { document: 'venues', outcome: 'recorded', redisRevision: rev, revision: rev },
    ]);
    expect(await l.configDocument('venues')).toMatchObject({
      revision: rev,
      actor: 'alice',
      action: 'venue.disable',
    });
    await reset(prefix);
    expect((await gmx(s))?.enabled).toBe(false);
  });

  it('a read that finds the config gone while the ledger cannot be read fails instead of taking the profile', async () => {
    const prefix = deployment();
    const l = await ledgerOf(prefix);
    let down = false;
    const flaky: ConfigLedger = {
      configDocument: (name) =>
        down
          ? Promise.reject(Object.assign(new Error('timeout'), { code: 'DB_TIMEOUT' }))
          : l.configDocument(name),
      writeConfigDocument: (d) => l.writeConfigDocument(d),
    };
    const s = await store(prefix, { on: flaky });
    await s.venuesPort().disable('gmx-arb', alice);
    await reset(prefix);
    down = true;
    await expect(s.venues()).rejects.toMatchObject({ code: 'NOT_READY' });
    await expect(s.venuesPort().disable('drift-sol', alice)).rejects.toMatchObject({ code: 'NOT_READY' });
    down = false;
    expect((await gmx(s))?.enabled).toBe(false);
  });
});

describe('a change made on an old copy (Redis rolled back, the ledger not read first) is undone, and said so', () => {
  const venuesKey = (prefix: string) => `${prefix}:config:venues`;
  const revisionsKey = (prefix: string) => `${prefix}:config:revisions`;
  /** Redis's venues and revisions as they stand (what a snapshot, an old RDB, holds). */
  const snapshot = async (r: Redis, prefix: string) => ({
    value: (await r.get(venuesKey(prefix))) as string,
    revisions: await r.hgetall(revisionsKey(prefix)),
  });
  /** Redis comes back from `snap` (a restart from an old RDB, a failover to a replica that lagged). */
  const rollBack = async (r: Redis, prefix: string, snap: Awaited<ReturnType<typeof snapshot>>) => {
    await r.set(venuesKey(prefix), snap.value);
    await r.del(revisionsKey(prefix));
    await r.hset(revisionsKey(prefix), snap.revisions);
  };
  /** The deployment's ledger; `ctl.reads` of configDocument fail (counting down), writes fail while `ctl.writes`. */
  const flakyLedger = (l: Ledger) => {
    const ctl = { reads: 0, writes: false };
    const down = () =>
      Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
    const on: ConfigLedger = {
      configDocument: (name) => {
        if (ctl.reads <= 0) return l.configDocument(name);
        ctl.reads--;
        return down();
      },
      writeConfigDocument: (d) => (ctl.writes ? down() : l.writeConfigDocument(d)),
    };
    return { on, ctl };
  };
  /** gmx-arb disabled (revision 1), the snapshot of then, drift-sol disabled (revision 2). */
  const setUp = async () => {
    const prefix = deployment();
    const l = await ledgerOf(prefix);
    const { on, ctl } = flakyLedger(l);
    const s = await store(prefix, { on });
    const r = endpoint.client();
    clients.push(r);
    const seeded = await snapshot(r, prefix);
    await s.venuesPort().disable('gmx-arb', alice);
    const one = await snapshot(r, prefix);
    await s.venuesPort().disable('drift-sol', bob);
    return { prefix, l, s, r, ctl, seeded, one };
  };
  /** Redis and the ledger hold the same venues at the same revision; returns which venues are enabled. */
  const inLine = async (r: Redis, l: Ledger, prefix: string) => {
    const stored = await l.configDocument('venues');
    expect(String(stored?.revision)).toBe(await r.hget(revisionsKey(prefix), 'venues'));
    expect(stored?.valueJson).toBe(await r.get(venuesKey(prefix)));
    const list = JSON.parse(stored?.valueJson ?? '[]') as VenueConfig[];
    return Object.fromEntries(list.map((v) => [v.id, v.enabled]));
  };

  it('rolled back one revision, ledger read failing before the change: CONFLICT, undone, the disable made since kept', async () => {
    const { prefix, l, s, r, ctl, one } = await setUp();
    const ledgerRevision = (await l.configDocument('venues'))?.revision ?? 0;
    await rollBack(r, prefix, one);
    ctl.reads = 1;
    const err = await s
      .venuesPort()
      .disable('uni-eth', alice)
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'CONFLICT', details: { applied: false, document: 'venues' } });
    expect((err as Error).message).toMatch(/made on an old copy of the venues .* has been undone/);
    const { details } = err as { details: { revision: number; inForceRevision: number } };
    // never a revision the ledger used before
    expect(details.revision).toBeGreaterThan(ledgerRevision);
    expect(details.inForceRevision).toBeGreaterThan(details.revision);
    expect(await inLine(r, l, prefix)).toMatchObject({
      'gmx-arb': false,
      'drift-sol': false,
      'uni-eth': true,
    });
    expect(await s.restore()).toEqual([]);
    // made again, on the copy in force: done
    await s.venuesPort().disable('uni-eth', alice);
    expect(await inLine(r, l, prefix)).toMatchObject({
      'gmx-arb': false,
      'drift-sol': false,
      'uni-eth': false,
    });
  });

  it('ledger down during the change: AUDIT_UNRECORDED saying it may be undone; the ledger back, the restore undoes it', async () => {
    const { prefix, l, s, r, ctl, one } = await setUp();
    await rollBack(r, prefix, one);
    ctl.reads = 1;
    ctl.writes = true;
    const err = await s
      .venuesPort()
      .disable('uni-eth', alice)
      .catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: 'AUDIT_UNRECORDED',
      details: { applied: true, durable: false, verified: false },
    });
    expect((err as Error).message).toMatch(/could not be read before the change either.* undoes this change/);
    const changed = (err as { details: { revision: number } }).details.revision;
    ctl.writes = false;
    const done = await s.restore();
    expect(done).toEqual([
      { document: 'venues', outcome: 'conflict', redisRevision: changed, revision: expect.any(Number) },
    ]);
    expect(done[0]?.revision).toBeGreaterThan(changed);
    expect(await inLine(r, l, prefix)).toMatchObject({
      'gmx-arb': false,
      'drift-sol': false,
      'uni-eth': true,
    });
    expect(await s.restore()).toEqual([]);
  });

  it('rolled back two revisions: the change is undone at once and said so (CONFLICT), or by the restore when the ledger was down', async () => {
    const { prefix, l, s, r, ctl, seeded } = await setUp();
    await rollBack(r, prefix, seeded);
    ctl.reads = 1;
    const err = await s
      .venuesPort()
      .disable('uni-eth', alice)
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'CONFLICT' });
    expect((err as Error).message).toMatch(/made on an old copy .* has been undone/);
    expect(await inLine(r, l, prefix)).toMatchObject({
      'gmx-arb': false,
      'drift-sol': false,
      'uni-eth': true,
    });
    // again, the ledger down for the change: not durable, may be undone; the restore undoes it (not a warning)
    await rollBack(r, prefix, seeded);
    ctl.reads = 1;
    ctl.writes = true;
    await expect(s.venuesPort().disable('uni-eth', alice)).rejects.toMatchObject({
      code: 'AUDIT_UNRECORDED',
      details: { verified: false },
    });
    ctl.writes = false;
    expect(await s.restore()).toEqual([expect.objectContaining({ document: 'venues', outcome: 'conflict' })]);
    expect(await inLine(r, l, prefix)).toMatchObject({
      'gmx-arb': false,
      'drift-sol': false,
      'uni-eth': true,
    });
  });

  it('a change made on one whose ledger write has not landed (two at once, written out of order): both done, no conflict', async () => {
    const prefix = deployment();
    const l = await ledgerOf(prefix);
    // process a: its first ledger write held until process b's change is in the ledger
    let reached!: () => void;
    const atGate = new Promise<void>((res) => (reached = res));
    let release!: () => void;
    const gate = new Promise<void>((res) => (release = res));
    let held = false;
    const gated: ConfigLedger = {
      configDocument: (name) => l.configDocument(name),
      writeConfigDocument: async (d) => {
        if (!held && d.action === 'venue.disable') {
          held = true;
          reached();
          await gate;
        }
        return l.writeConfigDocument(d);
      },
    };
    const a = await store(prefix, { on: gated });
    // process b: its restore before the change cannot read the ledger (so it does not record a's first)
    const { on, ctl } = flakyLedger(l);
    const b = await store(prefix, { on });
    const first = a.venuesPort().disable('gmx-arb', alice);
    await atGate;
    ctl.reads = 1;
    // made on a's revision, which the ledger lacks yet: written (the highest wins)
    await b.venuesPort().disable('drift-sol', bob);
    const r = endpoint.client();
    clients.push(r);
    expect(await inLine(r, l, prefix)).toMatchObject({ 'gmx-arb': false, 'drift-sol': false });
    // a's write arrives late: refused (the ledger holds a newer one made on it), reported done
    release();
    await expect(first).resolves.toMatchObject({ id: 'gmx-arb', enabled: false });
    expect(await inLine(r, l, prefix)).toMatchObject({ 'gmx-arb': false, 'drift-sol': false });
    expect(await a.restore()).toEqual([]);
  });

  it("a change by an older release (revision one up, no base) after one of this release's is recorded, not undone", async () => {
    const prefix = deployment();
    const l = await ledgerOf(prefix);
    const s = await store(prefix);
    await s.venuesPort().disable('gmx-arb', alice);
    const r = endpoint.client();
    clients.push(r);
    // the older release's compare-and-set: the value and HINCRBY, its base field untouched; its ledger write lost
    const list = JSON.parse((await r.get(venuesKey(prefix))) as string) as VenueConfig[];
    (list.find((v) => v.id === 'drift-sol') as VenueConfig).enabled = false;
    await r.set(venuesKey(prefix), JSON.stringify(list));
    const rev = await r.hincrby(revisionsKey(prefix), 'venues', 1);
    expect(await s.restore()).toEqual([
      { document: 'venues', outcome: 'recorded', redisRevision: rev, revision: rev },
    ]);
    expect(await inLine(r, l, prefix)).toMatchObject({ 'gmx-arb': false, 'drift-sol': false });
  });
});
