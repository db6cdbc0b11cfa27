import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type ApiPorts, buildApiServer, FileTokenStore } from '@xhedge/api';
import { parseConfig, type VenueConfig } from '@xhedge/config';
import { machineRedisOrEmbedded } from '@xhedge/execution/testing';
import { Ledger, openDatabase } from '@xhedge/store';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SharedConfigStore } from './config-store.ts';
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
const tokens = new FileTokenStore({ envAdminToken: ADMIN });
const auth: Record<'alice' | 'bob', Record<string, string>> = { alice: {}, bob: {} };

beforeAll(async () => {
  // in-memory PGlite: the ledger a paper run uses with no setup
  ledger = new Ledger(await openDatabase({}));
  for (const name of ['alice', 'bob'] as const)
    auth[name] = {
      authorization: `Bearer ${(await tokens.create({ name, role: 'operator' }, SYSTEM)).token}`,
    };
});
afterAll(async () => {
  for (const s of servers) await s.close();
  const redis = endpoint.client();
  for (const p of prefixes)
    await redis.del(...['venues', 'policy', 'changes', 'version-key'].map((k) => `${p}:config:${k}`));
  redis.disconnect();
  for (const c of clients) c.disconnect();
  await ledger.close();
  await endpoint.close();
});

/** A deployment's Redis key prefix of its own. */
function deployment(): string {
  const p = `{xhedge-test}:cfgver-${randomBytes(6).toString('hex')}`;
  prefixes.push(p);
  return p;
}

/** The store of one process of the deployment: its own Redis connection, the deployment's keys. */
async function store(prefix: string): Promise<SharedConfigStore> {
  const redis = endpoint.client();
  clients.push(redis);
  const s = new SharedConfigStore({ redis, prefix, config });
  await s.init();
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
