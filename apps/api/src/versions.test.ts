import { loadConfigFile } from '@xhedge/config';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildApiServer } from './server.ts';
import { type MemoryPorts, memoryPorts } from './testing/memory-ports.ts';

const cfg = loadConfigFile(new URL('../../../configs/profiles/paper.yaml', import.meta.url).pathname);
const ADMIN = 'admin-token-for-version-tests-0123456789';
const SYSTEM = { tokenId: 'x', name: 'test', role: 'admin' as const };

/**
 * Lost updates between operators (a concurrency audit of a live run): a venue disabled by one operator
 * was enabled again by another's copy read before, and two policy changes made from the same read kept
 * only the last. Each venue and the policy now have a version (GET: `version` and `ETag`); a change sent
 * with the version it was made from (`If-Match` or `version`) is refused with 412 when it is no longer the
 * stored one.
 */
describe('versions of venues and the policy: changes made from an old read are refused', () => {
  let app: FastifyInstance;
  let ports: MemoryPorts;
  let alice: Record<string, string>;
  let bob: Record<string, string>;

  beforeEach(async () => {
    ports = memoryPorts({ venues: cfg.venues, policy: cfg.policy, adminToken: ADMIN });
    app = await buildApiServer({ ports, logger: false, rateLimitPerMinute: 100_000 });
    const token = async (name: string) =>
      (await ports.tokens.create({ name, role: 'operator' }, SYSTEM)).token;
    alice = { authorization: `Bearer ${await token('alice')}` };
    bob = { authorization: `Bearer ${await token('bob')}` };
    await app.ready();
  });
  afterEach(async () => app.close());

  const get = async (url: string, headers = bob) => {
    const r = await app.inject({ url, headers });
    expect(r.statusCode, r.body).toBe(200);
    return { body: r.json(), etag: r.headers.etag as string };
  };
  const put = (url: string, headers: Record<string, string>, payload: object) =>
    app.inject({ method: 'PUT', url, headers, payload });
  /** A venue as GET shows it, made into a PUT body: what an operator's script sends back. */
  const sentBack = (view: Record<string, unknown>): Record<string, unknown> => {
    const { credentialNames: _, ...rest } = view;
    return rest;
  };

  it('a venue read before another operator disabled it is not enabled again by the copy sent back (412, naming who)', async () => {
    const read = await get('/v1/venues/gmx-arb');
    expect(read.body.enabled).toBe(true);
    expect(read.body.version).toMatch(/^[0-9a-f]{32}$/);
    expect(read.etag).toBe(`"${read.body.version}"`);

    const off = await app.inject({
      method: 'POST',
      url: '/v1/venues/gmx-arb/disable',
      headers: alice,
      payload: { reason: 'keeper stuck' },
    });
    expect(off.statusCode, off.body).toBe(200);
    expect(off.json().version).not.toBe(read.body.version);
    expect(off.headers.etag).toBe(`"${off.json().version}"`);

    // Bob's edited copy, with the version it was read at (in the body, as GET gave it)
    const edited: Record<string, unknown> = {
      ...sentBack(read.body),
      params: { ...read.body.params, keeperDelayMs: 200 },
    };
    const stale = await put('/v1/venues/gmx-arb', bob, edited);
    expect(stale.statusCode, stale.body).toBe(412);
    const e = stale.json().error;
    expect(e.code).toBe('PRECONDITION_FAILED');
    expect(e.message).toContain(`it is now version ${off.json().version}`);
    expect(e.message).toMatch(/last changed by alice \(venue\.disable\)/);
    expect(e.details).toMatchObject({
      version: off.json().version,
      expected: [read.body.version],
      changedBy: 'alice',
      change: 'venue.disable',
    });
    // the same with If-Match instead of the body's version
    const { version: _v, ...withoutVersion } = edited;
    const header = await put('/v1/venues/gmx-arb', { ...bob, 'if-match': read.etag }, withoutVersion);
    expect(header.statusCode, header.body).toBe(412);
    // nothing changed: still disabled, old params
    const now = await get('/v1/venues/gmx-arb');
    expect(now.body.enabled).toBe(false);
    expect(now.body.params.keeperDelayMs).toBe(1500);
    expect(now.etag).toBe(off.headers.etag);

    // the copy without any version, enabled: true: refused (428), an unconditional PUT cannot switch it on
    const blind = await put('/v1/venues/gmx-arb', bob, withoutVersion);
    expect(blind.statusCode, blind.body).toBe(428);
    expect(blind.json().error.code).toBe('PRECONDITION_REQUIRED');
    expect(blind.json().error.message).toMatch(/venue gmx-arb is disabled .*last changed by alice/);
    expect((await get('/v1/venues/gmx-arb')).body.enabled).toBe(false);

    // made again on what it is now: taken, and the venue stays disabled
    const again = await get('/v1/venues/gmx-arb');
    const redo = await put(
      '/v1/venues/gmx-arb',
      { ...bob, 'if-match': again.etag },
      { ...sentBack(again.body), version: undefined, params: { keeperDelayMs: 200 } },
    );
    expect(redo.statusCode, redo.body).toBe(200);
    expect(redo.json()).toMatchObject({ enabled: false, params: { keeperDelayMs: 200 } });
    expect(redo.headers.etag).toBe(`"${redo.json().version}"`);
  });

  it('two updates made from the same read: the second is refused (412), not silently the last to win', async () => {
    const read = await get('/v1/venues/drift-sol');
    const body = (takerFeeBps: number) => ({
      ...sentBack(read.body),
      params: { ...read.body.params, takerFeeBps },
    });
    const first = await put('/v1/venues/drift-sol', alice, body(4));
    expect(first.statusCode, first.body).toBe(200);
    const second = await put('/v1/venues/drift-sol', bob, body(9));
    expect(second.statusCode, second.body).toBe(412);
    expect(second.json().error.details).toMatchObject({ changedBy: 'alice', change: 'venue.update' });
    expect((await get('/v1/venues/drift-sol')).body.params.takerFeeBps).toBe(4);
  });

  it('policy changes made from the same read: the second is refused (412, naming who) and keeps the first', async () => {
    const readA = await get('/v1/policy', alice);
    const readB = await get('/v1/policy', bob);
    expect(readA.etag).toBe(`"${readA.body.version}"`);
    expect(readB.body.version).toBe(readA.body.version);

    const tighter = {
      ...readA.body,
      perUnderlying: { ...readA.body.perUnderlying, BTC: { ...readA.body.default, bandDelta: 0.1 } },
    };
    const a = await put('/v1/policy', alice, tighter);
    expect(a.statusCode, a.body).toBe(200);
    expect(a.headers.etag).toBe(`"${a.json().version}"`);

    const eth = readB.body.perUnderlying.ETH;
    const { version: _, ...docB } = {
      ...readB.body,
      perUnderlying: { ...readB.body.perUnderlying, ETH: { ...eth, costBps: 8 } },
    };
    const b = await put('/v1/policy', { ...bob, 'if-match': readB.etag }, docB);
    expect(b.statusCode, b.body).toBe(412);
    expect(b.json().error.details).toMatchObject({
      version: a.json().version,
      changedBy: 'alice',
      change: 'policy.update',
    });
    const now = await get('/v1/policy');
    expect(now.body.perUnderlying.BTC.bandDelta).toBe(0.1);
    expect(now.body.perUnderlying.ETH.costBps).toBe(6);

    // made again on what it is now: both changes hold
    const redo = await put(
      '/v1/policy',
      { ...bob, 'if-match': now.etag },
      {
        ...now.body,
        version: undefined,
        perUnderlying: { ...now.body.perUnderlying, ETH: { ...now.body.perUnderlying.ETH, costBps: 8 } },
      },
    );
    expect(redo.statusCode, redo.body).toBe(200);
    expect(redo.json().perUnderlying.BTC.bandDelta).toBe(0.1);
    expect(redo.json().perUnderlying.ETH.costBps).toBe(8);
  });

  it('a PUT without a version is still taken (scripts) and may switch a venue off (stopping is never held up), but not on; If-Match: * can', async () => {
    const body = { id: 'uni-eth', kind: 'paper-spot-amm', chain: 'evm:1' };
    const params = await put('/v1/venues/uni-eth', bob, { ...body, params: { feeBps: 30 } });
    expect(params.statusCode, params.body).toBe(200);
    const same = await put('/v1/venues/uni-eth', bob, { ...body, enabled: true, params: { feeBps: 31 } });
    expect(same.statusCode, same.body).toBe(200);
    const off = await put('/v1/venues/uni-eth', bob, { ...body, enabled: false });
    expect(off.statusCode, off.body).toBe(200);
    expect((await get('/v1/venues/uni-eth')).body.enabled).toBe(false);
    const on = await put('/v1/venues/uni-eth', bob, { ...body, enabled: true });
    expect(on.statusCode, on.body).toBe(428);
    expect(on.json().error.message).toMatch(
      /venue uni-eth is disabled .* an update that enables it must say which version/,
    );
    expect((await get('/v1/venues/uni-eth')).body.enabled).toBe(false);
    const forced = await put('/v1/venues/uni-eth', { ...bob, 'if-match': '*' }, { ...body, enabled: true });
    expect(forced.statusCode, forced.body).toBe(200);
    expect(forced.json().enabled).toBe(true);
    const policy = await get('/v1/policy');
    const { version: _, ...doc } = policy.body;
    const blind = await put('/v1/policy', bob, { ...doc, tickIntervalMs: 2000 });
    expect(blind.statusCode, blind.body).toBe(200);
    expect(blind.json().version).not.toBe(policy.body.version);
  });

  it('If-Match: a list of versions, a bare version; a weak tag or one the body contradicts is a 400', async () => {
    const read = await get('/v1/venues/uni-eth');
    const body = { id: 'uni-eth', kind: 'paper-spot-amm', chain: 'evm:1', params: { feeBps: 12 } };
    const weak = await put('/v1/venues/uni-eth', { ...bob, 'if-match': `W/${read.etag}` }, body);
    expect(weak.statusCode).toBe(400);
    expect(weak.json().error.details.issues[0].field).toBe('headers.if-match');
    const junk = await put('/v1/venues/uni-eth', { ...bob, 'if-match': '"a" "b"' }, body);
    expect(junk.statusCode).toBe(400);
    const contradict = await put(
      '/v1/venues/uni-eth',
      { ...bob, 'if-match': read.etag },
      { ...body, version: 'ffffffffffffffffffffffffffffffff' },
    );
    expect(contradict.statusCode).toBe(400);
    expect(contradict.json().error.details.issues[0].field).toBe('body.version');
    const list = await put('/v1/venues/uni-eth', { ...bob, 'if-match': `"0123", ${read.etag}` }, body);
    expect(list.statusCode, list.body).toBe(200);
    const bare = await put('/v1/venues/uni-eth', { ...bob, 'if-match': list.json().version }, body);
    expect(bare.statusCode, bare.body).toBe(200);
    // the same content, the same version
    expect(bare.json().version).toBe(list.json().version);
    // the list shows every venue's version, as its own GET does
    const all = (await get('/v1/venues')).body as { id: string; version: string }[];
    expect(all.find((v) => v.id === 'uni-eth')?.version).toBe(bare.json().version);
  });

  it('audits venue and policy updates with before and after, secrets and keyed URLs masked', async () => {
    const secrets = /AlchemyK3ySecret|QueryK3ySecret|XH_SIGNER_KEY|XH_RPC_URL/;
    const admin = { authorization: `Bearer ${ADMIN}` };
    const add = await app.inject({
      method: 'POST',
      url: '/v1/venues',
      headers: admin,
      payload: {
        id: 'gmx-keyed',
        kind: 'gmx',
        chain: 'evm:42161',
        endpoints: { rpc: ['https://arb-mainnet.g.alchemy.com/v2/AlchemyK3ySecret', { env: 'XH_RPC_URL' }] },
        credentials: { privateKey: { env: 'XH_SIGNER_KEY' } },
        params: { pricesUrl: 'https://prices.example.org/tickers?apikey=QueryK3ySecret', keeperDelayMs: 900 },
      },
    });
    expect(add.statusCode, add.body).toBe(201);
    expect(add.headers.etag).toBe(`"${add.json().version}"`);
    const upd = await put(
      '/v1/venues/gmx-keyed',
      { ...alice, 'if-match': add.headers.etag as string },
      { id: 'gmx-keyed', kind: 'gmx', chain: 'evm:42161', params: { keeperDelayMs: 200 } },
    );
    expect(upd.statusCode, upd.body).toBe(200);
    const entry = ports.auditLog.find((a) => a.action === 'venue.update' && a.target === 'gmx-keyed');
    expect(entry?.actor).toBe('alice');
    expect(entry?.details).toMatchObject({
      precondition: 'version',
      before: {
        version: add.json().version,
        params: { pricesUrl: 'https://prices.example.org/[redacted]', keeperDelayMs: 900 },
        endpoints: { rpc: ['https://arb-mainnet.g.alchemy.com/[redacted]', { env: 'XH_RPC_URL' }] },
        credentialNames: ['privateKey'],
      },
      after: { version: upd.json().version, params: { keeperDelayMs: 200 }, credentialNames: ['privateKey'] },
    });
    // the env var names of an endpoint are shown as the venue view shows them; credentials never
    const audited = JSON.stringify(ports.auditLog);
    expect(audited.replaceAll('{"env":"XH_RPC_URL"}', '')).not.toMatch(secrets);

    const before = await get('/v1/policy');
    const { version: _, ...doc } = before.body;
    const pol = await put(
      '/v1/policy',
      { ...bob, 'if-match': before.etag },
      { ...doc, tickIntervalMs: 3000 },
    );
    expect(pol.statusCode, pol.body).toBe(200);
    const polEntry = ports.auditLog.findLast((a) => a.action === 'policy.update');
    expect(polEntry?.details).toMatchObject({
      precondition: 'version',
      before: { tickIntervalMs: 1000, version: before.body.version },
      after: { tickIntervalMs: 3000, version: pol.json().version },
    });
  });

  it('documents the version in the OpenAPI: ETag of the reads, If-Match of the updates, their 412 and 428', async () => {
    const doc = (await app.inject({ url: '/docs/json' })).json() as {
      paths: Record<string, Record<string, Record<string, unknown>>>;
      components?: { schemas?: Record<string, unknown> };
    };
    const op = (path: string, method: string) => JSON.stringify(doc.paths[path]?.[method]);
    for (const [path, method] of [
      ['/v1/venues/{id}', 'get'],
      ['/v1/venues/{id}', 'put'],
      ['/v1/policy', 'get'],
      ['/v1/policy', 'put'],
    ] as const) {
      const responses = doc.paths[path]?.[method]?.responses as Record<string, { headers?: object }>;
      expect(responses['200']?.headers, `${method} ${path}`).toHaveProperty('ETag');
      const body = op(path, method).includes('#/components/schemas/Venue"')
        ? JSON.stringify((doc.components?.schemas?.Venue as { properties?: object })?.properties)
        : op(path, method);
      expect(body, `${method} ${path}`).toMatch(/"version":\{"type":"string"/);
    }
    for (const path of ['/v1/venues/{id}', '/v1/policy']) {
      expect(op(path, 'put')).toMatch(/"in":"header","name":"if-match"/);
      expect(op(path, 'put')).toMatch(/"412".*PRECONDITION_FAILED/);
    }
    expect(op('/v1/venues/{id}', 'put')).toMatch(/"428".*PRECONDITION_REQUIRED/);
  });
});
