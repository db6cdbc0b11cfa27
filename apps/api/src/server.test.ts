import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigFile } from '@xhedge/config';
import { ManualClock } from '@xhedge/core';
import {
  BreakerResetConflictError,
  KillSwitchPendingError,
  KillSwitchReleaseConflictError,
  KillSwitchUnrecordedError,
} from '@xhedge/execution';
import { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerMetrics } from './metrics.ts';
import { buildApiServer, REDACT_PATHS } from './server.ts';
import { BrowserSessions } from './sessions.ts';
import { type MemoryPorts, memoryPorts } from './testing/memory-ports.ts';
import { bootstrapAdminToken, FileTokenStore } from './tokens.ts';

const cfg = loadConfigFile(new URL('../../../configs/profiles/paper.yaml', import.meta.url).pathname);
const ADMIN = 'admin-token-for-unit-tests-0123456789';

let app: FastifyInstance;
let ports: MemoryPorts;
const tokens: Record<'viewer' | 'risk' | 'operator' | 'admin', string> = {
  viewer: '',
  risk: '',
  operator: '',
  admin: ADMIN,
};

const snapshot = (seq: number) => ({
  seq,
  asOfMs: 1_000 * seq,
  underlyings: {
    BTC: { delta: 1.5, deltaUsd: 142_500, gamma: 0.001, vegaPerVolPoint: -900, thetaPerDay: 120 },
  },
  extra: 'kept',
});

beforeAll(async () => {
  ports = memoryPorts({ venues: cfg.venues, policy: cfg.policy, adminToken: ADMIN });
  registerMetrics(ports.metrics, ports).observeHedge({
    venue: 'gmx-arb',
    underlying: 'BTC',
    status: 'filled',
    costUsd: 12.5,
    latencyMs: 800,
  });
  app = await buildApiServer({ ports, logger: false, rateLimitPerMinute: 100_000 });
  const system = { tokenId: 'x', name: 'test', role: 'admin' as const };
  tokens.viewer = (await ports.tokens.create({ name: 'v', role: 'viewer' }, system)).token;
  tokens.operator = (await ports.tokens.create({ name: 'o', role: 'operator' }, system)).token;
  tokens.risk = (await ports.tokens.create({ name: 'r', role: 'risk' }, system)).token;
  await app.ready();
});
afterAll(async () => app.close());

const auth = (role: keyof typeof tokens) => ({ authorization: `Bearer ${tokens[role]}` });

describe('operator API', () => {
  it('answers health and readiness without auth; readiness is 503 before the first snapshot', async () => {
    expect((await app.inject({ url: '/v1/health' })).statusCode).toBe(200);
    const r = await app.inject({ url: '/v1/ready' });
    expect(r.statusCode).toBe(503);
    expect(r.json().ready).toBe(false);
    ports.publish(snapshot(1));
    expect((await app.inject({ url: '/v1/ready' })).statusCode).toBe(200);
  });

  it('serves an OpenAPI 3.1 document and Swagger UI', async () => {
    const doc = (await app.inject({ url: '/docs/json' })).json();
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toContain('/v1/risk/snapshot');
    expect(Object.keys(doc.paths).every((p: string) => p.startsWith('/v1/'))).toBe(true);
    const ui = await app.inject({ url: '/docs/' });
    expect(ui.statusCode).toBe(200);
    expect(ui.body).toMatch(/swagger/i);
  });

  it('returns the snapshot with extra fields intact', async () => {
    const r = await app.inject({ url: '/v1/risk/snapshot', headers: auth('viewer') });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({ seq: 1, extra: 'kept' });
  });

  it('rejects a malformed request with 400 naming the field, in the one error shape', async () => {
    const r = await app.inject({
      method: 'POST',
      url: '/v1/venues',
      headers: auth('operator'),
      payload: { id: 'new-venue', kind: 'paper-gmx', chain: 'arbitrum' },
    });
    expect(r.statusCode).toBe(400);
    const e = r.json().error;
    expect(e.code).toBe('VALIDATION');
    expect(e.message).toMatch(/^body\.chain:/);
    const q = await app.inject({ url: '/v1/risk/history?limit=0&bogus=1', headers: auth('viewer') });
    expect(q.statusCode).toBe(400);
    expect(q.json().error.details.issues.map((i: { field: string }) => i.field)).toEqual(
      expect.arrayContaining(['querystring.limit']),
    );
    const long = await app.inject({ url: `/v1/venues/${'x'.repeat(300)}`, headers: auth('viewer') });
    expect(long.statusCode).toBe(414);
    expect(long.json().error.code).toBe('URI_TOO_LONG');
    const bad = await app.inject({
      method: 'POST',
      url: '/v1/kill-switch/trip',
      headers: { ...auth('operator'), 'content-type': 'application/json' },
      payload: '{"scope": ',
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.code).toBe('BAD_REQUEST');
  });

  it('lists hedge jobs by status (open, or a list), plan, venue and underlying; a bad status is named', async () => {
    const ids = async (qs: string) => {
      const r = await app.inject({ url: `/v1/hedges/jobs${qs}`, headers: auth('viewer') });
      expect(r.statusCode, `${qs}: ${r.body}`).toBe(200);
      return (r.json() as { id: string }[]).map((j) => j.id);
    };
    expect(await ids('')).toEqual(['int_1']);
    expect(await ids('?status=open')).toEqual(['int_1']);
    expect(await ids('?status=filled')).toEqual([]);
    expect(await ids('?status=filled,%20queued')).toEqual(['int_1']);
    expect(await ids('?venue=gmx-arb&underlying=BTC&planId=plan_1')).toEqual(['int_1']);
    expect(await ids('?underlying=ETH')).toEqual([]);
    const bad = await app.inject({ url: '/v1/hedges/jobs?status=queued,fild', headers: auth('viewer') });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toMatchObject({ code: 'VALIDATION' });
    expect(bad.json().error.message).toMatch(
      /^querystring\.status: "fild" is not an order status; expected open or any of planned, queued, .*failed$/,
    );
    const range = await app.inject({
      url: '/v1/hedges/jobs?fromMs=1700000000005&toMs=1700000000004',
      headers: auth('viewer'),
    });
    expect(range.statusCode).toBe(400);
    expect(range.json().error.message).toBe('querystring.fromMs: must not be after toMs');
    for (const [qs, message] of [
      ['fromMs=abc', 'querystring.fromMs: expected milliseconds since the Unix epoch (a whole number)'],
      ['toMs=1.5', 'querystring.toMs: expected milliseconds since the Unix epoch (a whole number)'],
      [
        'toMs=1732000000',
        'querystring.toMs: expected milliseconds since the Unix epoch; this looks like seconds (multiply by 1000)',
      ],
      ['limit=0', 'querystring.limit: expected a whole number, at least 1'],
      ['limit=5001', 'querystring.limit: expected a whole number, at most 5000'],
    ]) {
      const r = await app.inject({ url: `/v1/hedges/jobs?${qs}`, headers: auth('viewer') });
      expect(r.statusCode, qs).toBe(400);
      expect(r.json().error.message, qs).toBe(message);
    }
    // a number the route needs, left out: required, and what it is
    const pnl = await app.inject({ url: '/v1/pnl?fromMs=1700000000000', headers: auth('viewer') });
    expect(pnl.statusCode).toBe(400);
    expect(pnl.json().error.message).toBe(
      'querystring.toMs: required: milliseconds since the Unix epoch (a whole number)',
    );
    for (const [qs, message] of [
      [
        'underlying=BTC&spotShocksPct=x',
        'querystring.spotShocksPct: expected comma-separated numbers, e.g. -10,-5,0,5,10',
      ],
      ['', 'querystring.underlying: required (string)'],
    ]) {
      const r = await app.inject({ url: `/v1/risk/scenarios?${qs}`, headers: auth('viewer') });
      expect(r.statusCode, qs).toBe(400);
      expect(r.json().error.message, qs).toBe(message);
    }
    const doc = (await app.inject({ url: '/docs/json' })).json() as {
      paths: Record<string, { get?: { parameters?: { name: string }[] } }>;
    };
    expect(doc.paths['/v1/hedges/jobs']?.get?.parameters?.map((p) => p.name)).toEqual(
      expect.arrayContaining(['status', 'planId', 'venue', 'underlying', 'fromMs', 'toMs', 'limit']),
    );
  });

  it('a body left out, empty or missing a field says what the route wants, by name', async () => {
    const trip = (headers: Record<string, string>, payload?: string) =>
      app.inject({
        method: 'POST',
        url: '/v1/breakers/venue:gmx-arb/trip',
        headers: { ...auth('operator'), ...headers },
        ...(payload !== undefined ? { payload } : {}),
      });
    for (const r of [await trip({}), await trip({ 'content-type': 'application/json' }, '')]) {
      expect(r.statusCode).toBe(400);
      expect(r.json().error).toMatchObject({
        code: 'VALIDATION',
        message: 'body: required: a JSON object with reason',
        details: { issues: [{ field: 'body', message: 'required: a JSON object with reason' }] },
      });
    }
    const empty = await trip({ 'content-type': 'application/json' }, '{}');
    expect(empty.json().error.message).toBe('body.reason: required (string)');
    // optional keys are named as such
    const ack = await app.inject({ method: 'POST', url: '/v1/risk/mark', headers: auth('operator') });
    expect(ack.statusCode).toBe(400);
    expect(ack.json().error.message).toMatch(/^body: required: a JSON object with reason; optional \w+/);
  });

  it('never returns credentials and refuses inline secrets', async () => {
    const add = await app.inject({
      method: 'POST',
      url: '/v1/venues',
      headers: auth('operator'),
      payload: {
        id: 'gmx-two',
        kind: 'gmx',
        chain: 'evm:42161',
        credentials: { privateKey: { env: 'GMX_KEY' } },
      },
    });
    expect(add.statusCode).toBe(201);
    expect(add.body).not.toContain('GMX_KEY');
    expect(add.json().credentialNames).toEqual(['privateKey']);
    const inline = await app.inject({
      method: 'POST',
      url: '/v1/venues',
      headers: auth('operator'),
      payload: { id: 'gmx-three', kind: 'gmx', chain: 'evm:42161', params: { apiKey: 'sk-live-1' } },
    });
    expect(inline.statusCode).toBe(400);
    expect(inline.body).not.toContain('sk-live-1');
    expect(inline.json().error.details.issues[0].field).toBe('body.params.apiKey');
    const dup = await app.inject({
      method: 'POST',
      url: '/v1/venues',
      headers: auth('operator'),
      payload: { id: 'gmx-two', kind: 'gmx', chain: 'evm:42161' },
    });
    expect(dup.statusCode).toBe(409);
  });

  it('a venue replaced without `enabled` keeps its state: a params change does not switch a disabled venue back on', async () => {
    const put = (payload: object) =>
      app.inject({ method: 'PUT', url: '/v1/venues/uni-eth', headers: auth('operator'), payload });
    const body = { id: 'uni-eth', kind: 'paper-spot-amm', chain: 'evm:1' };
    const off = await app.inject({
      method: 'POST',
      url: '/v1/venues/uni-eth/disable',
      headers: auth('operator'),
      payload: { reason: 'venue halted' },
    });
    expect(off.statusCode, off.body).toBe(200);
    expect(off.json().enabled).toBe(false);
    const kept = await put(body);

    expect(kept.statusCode).toBe(200);
    expect(kept.json().enabled).toBe(false);
    // said out loud without the version it was read at: refused (a copy read before the disable would
    // otherwise switch the venue back on), nothing changed
    const blind = await put({ ...body, enabled: true });
    expect(blind.statusCode, blind.body).toBe(428);
    expect(blind.json().error.code).toBe('PRECONDITION_REQUIRED');
    // said out loud with the version read, it is what the body says
    const read = await app.inject({ url: '/v1/venues/uni-eth', headers: auth('operator') });
    expect(read.json().enabled).toBe(false);
    const on = await put({ ...body, enabled: true, version: read.json().version });
    expect(on.statusCode, on.body).toBe(200);
    expect(on.json().enabled).toBe(true);
    expect((await put(body)).json().enabled).toBe(true);
    const doc = (await app.inject({ url: '/docs/json' })).json() as {
      paths: Record<string, { put?: { requestBody?: unknown } }>;
    };
    expect(JSON.stringify(doc.paths['/v1/venues/{id}']?.put?.requestBody)).toMatch(
      /stays enabled or disabled/,
    );
  });

  it('a venue replaced without credentials or endpoints keeps them (they are never shown, so a read sent back has none)', async () => {
    const put = (payload: object) =>
      app.inject({ method: 'PUT', url: '/v1/venues/uni-eth', headers: auth('operator'), payload });
    const body = { id: 'uni-eth', kind: 'paper-spot-amm', chain: 'evm:1' };
    const set = await put({
      ...body,
      endpoints: { rpc: [{ env: 'XH_RPC' }] },
      credentials: { privateKey: { env: 'XH_KEY' } },
    });
    expect(set.statusCode, set.body).toBe(200);
    expect(set.json().credentialNames).toEqual(['privateKey']);
    const kept = await put(body);
    expect(kept.statusCode, kept.body).toBe(200);
    expect(kept.json().credentialNames).toEqual(['privateKey']);
    expect(kept.json().endpoints).toEqual({ rpc: [{ env: 'XH_RPC' }] });
    const cleared = await put({ ...body, credentials: {}, endpoints: {} });
    expect(cleared.json().credentialNames).toEqual([]);
    expect(cleared.json().endpoints).toEqual({});
  });

  it('audits every change with who made it', async () => {
    const r = await app.inject({
      method: 'POST',
      url: '/v1/kill-switch/trip',
      headers: auth('operator'),
      payload: { scope: 'venue', target: 'gmx-arb', reason: 'venue acting up' },
    });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({ scope: 'venue', target: 'gmx-arb', engaged: true, by: 'o' });
    expect(ports.auditLog.at(-1)).toMatchObject({
      actor: 'o',
      action: 'kill-switch.trip',
      target: 'venue:gmx-arb',
    });
    const noTarget = await app.inject({
      method: 'POST',
      url: '/v1/kill-switch/trip',
      headers: auth('operator'),
      payload: { scope: 'venue', reason: 'no target given' },
    });
    expect(noTarget.statusCode).toBe(400);
    expect(noTarget.json().error.message).toMatch(/^body\.target/);
  });

  it('refuses to trip a kill switch or a breaker on a name the run does not know (a typo stops nothing)', async () => {
    const post = (url: string, payload: object) =>
      app.inject({ method: 'POST', url, headers: auth('operator'), payload });
    const audited = ports.auditLog.length;
    const venue = await post('/v1/kill-switch/trip', {
      scope: 'venue',
      target: 'gmx-arbitrum',
      reason: 'typo',
    });
    expect(venue.statusCode).toBe(400);
    expect(venue.json().error).toMatchObject({
      code: 'VALIDATION',
      message: expect.stringMatching(
        /^body\.target: no venue gmx-arbitrum in this run; the venues are .*gmx-arb/,
      ),
    });
    const und = await post('/v1/kill-switch/trip', { scope: 'underlying', target: 'DOGE', reason: 'typo' });
    expect(und.statusCode).toBe(400);
    expect(und.json().error.message).toBe(
      'body.target: no underlying DOGE in this run; the underlyings are BTC, ETH',
    );
    const brk = await post('/v1/breakers/venue:gmx_arb/trip', { reason: 'typo' });
    expect(brk.statusCode).toBe(404);
    expect(brk.json().error).toMatchObject({
      code: 'NOT_FOUND',
      message: 'no breaker venue:gmx_arb guards any order of this run',
      details: { breaker: 'venue:gmx_arb', breakers: ['venue:gmx-arb'] },
    });
    // nothing engaged, nothing opened, nothing audited
    expect(ports.auditLog.length).toBe(audited);
    const controls = (await app.inject({ url: '/v1/controls', headers: auth('viewer') })).json();
    expect(JSON.stringify(controls)).not.toMatch(/gmx-arbitrum|DOGE|gmx_arb/);
    // the real names still work; releasing is never refused for a known name
    expect(
      (await post('/v1/kill-switch/trip', { scope: 'underlying', target: 'ETH', reason: 'real' })).statusCode,
    ).toBe(200);
    expect(
      (await post('/v1/kill-switch/reset', { scope: 'underlying', target: 'ETH', reason: 'real' }))
        .statusCode,
    ).toBe(200);
    expect(
      (await post('/v1/kill-switch/reset', { scope: 'underlying', target: 'ETH', reason: 'not engaged' }))
        .statusCode,
    ).toBe(200);
    // a release of a name the run does not know, with nothing engaged there, would release nothing
    // (a misspelt release answered 200 hides that the switch meant is still engaged): refused
    const typo = await post('/v1/kill-switch/reset', {
      scope: 'underlying',
      target: 'DOGE',
      reason: 'no-op',
    });
    expect(typo.statusCode).toBe(400);
    expect(typo.json().error).toMatchObject({
      code: 'VALIDATION',
      message:
        'body.target: no kill switch engaged on underlying DOGE, and no underlying DOGE in this run: releasing it ' +
        'would release nothing; the underlyings engaged are (none); the underlyings are BTC, ETH',
      details: { issues: [{ field: 'body.target', message: expect.stringMatching(/^no kill switch/) }] },
    });
    expect(ports.auditLog.length).toBe(audited + 3);
  });

  it('releases whatever is engaged or has opened, even once its venue left the config; a release that would release nothing is refused', async () => {
    const own = memoryPorts({ venues: cfg.venues, policy: cfg.policy, adminToken: ADMIN });
    const system = { tokenId: 'x', name: 'test', role: 'admin' as const };
    const risk = (await own.tokens.create({ name: 'risk-owner', role: 'risk' }, system)).token;
    // the run's names, as the config says them now
    let venues = ['gmx-arb', 'drift-sol'];
    let breakers = ['venue:gmx-arb', 'venue:drift-sol', 'market:loss'];
    const srv = await buildApiServer({
      ports: {
        ...own,
        controls: {
          ...own.controls,
          targets: async () => ({ venues, underlyings: ['BTC', 'ETH'], breakers }),
        },
      },
      logger: false,
    });
    const post = (url: string, payload: object) =>
      srv.inject({ method: 'POST', url, headers: { authorization: `Bearer ${risk}` }, payload });
    try {
      expect(
        (await post('/v1/kill-switch/trip', { scope: 'venue', target: 'gmx-arb', reason: 'venue down' }))
          .statusCode,
      ).toBe(200);
      expect((await post('/v1/breakers/venue:gmx-arb/trip', { reason: 'venue down' })).statusCode).toBe(200);
      // gmx-arb leaves the config while its switch is engaged and its breaker open
      venues = ['drift-sol'];
      breakers = ['venue:drift-sol', 'market:loss'];
      const misspelt = await post('/v1/kill-switch/reset', {
        scope: 'venue',
        target: 'gmx-arbb',
        reason: 'back up',
      });
      expect(misspelt.statusCode).toBe(400);
      expect(misspelt.json().error.message).toBe(
        'body.target: no kill switch engaged on venue gmx-arbb, and no venue gmx-arbb in this run: releasing it ' +
          'would release nothing; the venues engaged are gmx-arb; the venues are drift-sol',
      );
      const ks = await post('/v1/kill-switch/reset', {
        scope: 'venue',
        target: 'gmx-arb',
        reason: 'back up',
      });
      expect(ks.statusCode, ks.body).toBe(200);
      expect(ks.json()).toMatchObject({ scope: 'venue', target: 'gmx-arb', engaged: false });
      const unknown = await post('/v1/breakers/nonexistent/reset', { reason: 'typo' });
      expect(unknown.statusCode).toBe(404);
      expect(unknown.json().error).toMatchObject({
        code: 'NOT_FOUND',
        message:
          'no breaker nonexistent to close: no order of this run consults it and it has never opened, so ' +
          'releasing it would close nothing; the breakers are market:loss, venue:drift-sol, venue:gmx-arb',
        details: { breaker: 'nonexistent', breakers: ['market:loss', 'venue:drift-sol', 'venue:gmx-arb'] },
      });
      const brk = await post('/v1/breakers/venue:gmx-arb/reset', { reason: 'back up' });
      expect(brk.statusCode, brk.body).toBe(200);
      expect(brk.json()).toMatchObject({ name: 'venue:gmx-arb', state: 'closed' });
      // the OpenAPI document says so
      const doc = (await srv.inject({ url: '/docs/json' })).json();
      expect(doc.paths['/v1/breakers/{name}/reset'].post.description).toMatch(
        /^Every breaker that has ever opened can be closed/,
      );
      expect(doc.paths['/v1/kill-switch/reset'].post.description).toMatch(
        /^Whatever is engaged can be released/,
      );
    } finally {
      await srv.close();
    }
  });

  it('a trip may let reduce-only orders through (allowRiskReducing, as the CLI), false when left out; documented', async () => {
    const post = (url: string, payload: object) =>
      app.inject({ method: 'POST', url, headers: auth('risk'), payload });
    const allow = await post('/v1/kill-switch/trip', {
      scope: 'underlying',
      target: 'BTC',
      reason: 'wind the BTC book down',
      allowRiskReducing: true,
    });
    expect(allow.statusCode, allow.body).toBe(200);
    expect(allow.json()).toMatchObject({
      scope: 'underlying',
      target: 'BTC',
      engaged: true,
      allowRiskReducing: true,
    });
    expect(ports.auditLog.at(-1)).toMatchObject({
      action: 'kill-switch.trip',
      target: 'underlying:BTC',
      details: { reason: 'wind the BTC book down', allowRiskReducing: true },
    });
    const strict = await post('/v1/kill-switch/trip', {
      scope: 'underlying',
      target: 'BTC',
      reason: 'stop all',
    });
    expect(strict.statusCode, strict.body).toBe(200);
    expect(strict.json()).toMatchObject({ engaged: true, allowRiskReducing: false });
    const bad = await post('/v1/kill-switch/trip', {
      scope: 'global',
      reason: 'x'.repeat(5),
      allowRiskReducing: 'yes',
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.details.issues[0].field).toBe('body.allowRiskReducing');
    // a release has nothing to allow: the key is refused, named
    const rel = await post('/v1/kill-switch/reset', {
      scope: 'underlying',
      target: 'BTC',
      reason: 'done',
      allowRiskReducing: true,
    });
    expect(rel.statusCode).toBe(400);
    expect(rel.json().error.message).toContain('allowRiskReducing');
    expect(
      (await post('/v1/kill-switch/reset', { scope: 'underlying', target: 'BTC', reason: 'done' }))
        .statusCode,
    ).toBe(200);
    const doc = (await app.inject({ url: '/docs/json' })).json();
    const schemaOf = (path: string) => {
      const body = doc.paths[path].post.requestBody.content['application/json'].schema;
      return body.$ref ? doc.components.schemas[body.$ref.split('/').at(-1)] : body;
    };
    expect(schemaOf('/v1/kill-switch/trip').properties.allowRiskReducing).toMatchObject({
      type: 'boolean',
      default: false,
      description: expect.stringMatching(/reduce-only orders in the scope still pass/),
    });
    expect(schemaOf('/v1/kill-switch/trip').required ?? []).not.toContain('allowRiskReducing');
    expect(schemaOf('/v1/kill-switch/reset').properties).not.toHaveProperty('allowRiskReducing');
  });

  it('writes no second audit entry for a kill-switch change its port audits itself', async () => {
    const own = memoryPorts({ venues: cfg.venues, policy: cfg.policy, adminToken: ADMIN });
    const system = { tokenId: 'x', name: 'test', role: 'admin' as const };
    const op = (await own.tokens.create({ name: 'o2', role: 'operator' }, system)).token;
    const selfAuditing = buildApiServer({
      ports: { ...own, controls: { ...own.controls, auditsKillSwitch: true } },
      logger: false,
    });
    const a2 = await selfAuditing;
    try {
      const before = own.auditLog.length;
      const r = await a2.inject({
        method: 'POST',
        url: '/v1/kill-switch/trip',
        headers: { authorization: `Bearer ${op}` },
        payload: { scope: 'global', reason: 'audited by the kill switch itself' },
      });
      expect(r.statusCode).toBe(200);
      expect(own.auditLog.length).toBe(before);
      // Other changes are still audited by the API.
      const b = await a2.inject({
        method: 'POST',
        url: '/v1/breakers/venue:gmx-arb/trip',
        headers: { authorization: `Bearer ${op}` },
        payload: { reason: 'by hand' },
      });
      expect(b.statusCode).toBe(200);
      expect(own.auditLog.at(-1)).toMatchObject({ action: 'breaker.trip', actor: 'o2' });
    } finally {
      await a2.close();
    }
  });

  it('a kill switch engaged whose ledger record failed: a 500 that says it IS engaged, not an internal error', async () => {
    const own = memoryPorts({ venues: cfg.venues, policy: cfg.policy, adminToken: ADMIN });
    const system = { tokenId: 'x', name: 'test', role: 'admin' as const };
    const op = (await own.tokens.create({ name: 'o3', role: 'operator' }, system)).token;
    const unrecorded = await buildApiServer({
      ports: {
        ...own,
        controls: {
          ...own.controls,
          tripKillSwitch: async () => {
            throw new KillSwitchUnrecordedError(
              {
                scope: 'global',
                eventId: 'e1',
                actor: 'operator:o3',
                reason: 'r',
                allowRiskReducing: false,
                engagedAtMs: 1,
              },
              new Error('connect ECONNREFUSED 127.0.0.1:5432'),
            );
          },
        },
      },
      logger: false,
    });
    try {
      const r = await unrecorded.inject({
        method: 'POST',
        url: '/v1/kill-switch/trip',
        headers: { authorization: `Bearer ${op}` },
        payload: { scope: 'global', reason: 'ledger is down' },
      });
      expect(r.statusCode).toBe(500);
      expect(r.json().error).toMatchObject({
        code: 'KILL_SWITCH_UNRECORDED',
        message: expect.stringMatching(
          /^kill switch ENGAGED global \(orders are stopped\), but the ledger did not record it/,
        ),
        details: { engaged: true, recorded: false },
      });
    } finally {
      await unrecorded.close();
    }
  });

  it('a kill switch engaged while Redis is down: a 503 that says it is recorded and applied when Redis answers, not a bare NOT_READY', async () => {
    const own = memoryPorts({ venues: cfg.venues, policy: cfg.policy, adminToken: ADMIN });
    const system = { tokenId: 'x', name: 'test', role: 'admin' as const };
    const op = (await own.tokens.create({ name: 'o5', role: 'operator' }, system)).token;
    const redisDown = Object.assign(new Error('Reached the max retries per request limit (which is 1).'), {
      name: 'MaxRetriesPerRequestError',
    });
    const pending = await buildApiServer({
      ports: {
        ...own,
        controls: {
          ...own.controls,
          tripKillSwitch: async () => {
            throw new KillSwitchPendingError(
              {
                scope: 'global',
                eventId: 'e5',
                actor: 'operator:o5',
                reason: 'r',
                allowRiskReducing: false,
                engagedAtMs: 1,
              },
              redisDown,
            );
          },
        },
      },
      logger: false,
    });
    try {
      const r = await pending.inject({
        method: 'POST',
        url: '/v1/kill-switch/trip',
        headers: { authorization: `Bearer ${op}` },
        payload: { scope: 'global', reason: 'redis is down' },
      });
      expect(r.statusCode).toBe(503);
      expect(r.json().error).toMatchObject({
        code: 'KILL_SWITCH_PENDING',
        message: expect.stringMatching(
          /^kill switch global engagement RECORDED in the ledger but not yet in force/,
        ),
        details: { engaged: false, recorded: true, pending: true },
      });
    } finally {
      await pending.close();
    }
  });

  it('a release or reset that found a newer engagement or trip answers 409 naming it; the bodies take replace and openedAtMs, documented', async () => {
    const own = memoryPorts({ venues: cfg.venues, policy: cfg.policy, adminToken: ADMIN });
    const system = { tokenId: 'x', name: 'test', role: 'admin' as const };
    const risk = (await own.tokens.create({ name: 'r4', role: 'risk' }, system)).token;
    const newer = {
      scope: 'global' as const,
      eventId: 'e2',
      actor: 'operator:bo',
      reason: 'depeg: full stop',
      allowRiskReducing: false,
      engagedAtMs: 1_800_000_000_000,
    };
    const srv = await buildApiServer({
      ports: {
        ...own,
        controls: {
          ...own.controls,
          resetKillSwitch: async () => {
            throw new KillSwitchReleaseConflictError('global', newer, { ledgerRestated: true });
          },
        },
      },
      logger: false,
    });
    const post = (app: FastifyInstance, url: string, payload: object) =>
      app.inject({ method: 'POST', url, headers: { authorization: `Bearer ${risk}` }, payload });
    try {
      const rel = await post(srv, '/v1/kill-switch/reset', { scope: 'global', reason: 'drill over' });
      expect(rel.statusCode, rel.body).toBe(409);
      expect(rel.json().error).toMatchObject({
        code: 'KILL_SWITCH_RELEASE_CONFLICT',
        message: expect.stringMatching(/^kill switch global NOT released: engaged again by operator:bo/),
        details: { scope: 'global', engaged: true, released: false, eventId: 'e2', actor: 'operator:bo' },
      });
      // a reduce-only trip over a full stop keeps it (the memory port as execution's switch); replace loosens
      expect(
        (await post(srv, '/v1/kill-switch/trip', { scope: 'global', reason: 'stop' })).json(),
      ).toMatchObject({
        change: 'engaged',
        allowRiskReducing: false,
      });
      const kept = await post(srv, '/v1/kill-switch/trip', {
        scope: 'global',
        reason: 'wind down',
        allowRiskReducing: true,
      });
      expect(kept.json()).toMatchObject({ change: 'kept', allowRiskReducing: false, reason: 'stop' });
      const replaced = await post(srv, '/v1/kill-switch/trip', {
        scope: 'global',
        reason: 'wind down',
        allowRiskReducing: true,
        replace: true,
      });
      expect(replaced.json()).toMatchObject({ change: 'replaced', allowRiskReducing: true });
      expect(own.auditLog.at(-1)).toMatchObject({
        action: 'kill-switch.trip',
        details: { allowRiskReducing: true, replace: true },
      });
      const notBool = await post(srv, '/v1/kill-switch/trip', {
        scope: 'global',
        reason: 'x'.repeat(5),
        replace: 1,
      });
      expect(notBool.json().error.details.issues[0].field).toBe('body.replace');
    } finally {
      await srv.close();
    }

    const conflict = new BreakerResetConflictError(
      { name: 'venue:gmx-arb', state: 'open', reason: 'errors 6/10', openedAtMs: 2_000 },
      1_000,
    );
    const brk = await buildApiServer({
      ports: {
        ...own,
        controls: {
          ...own.controls,
          resetBreaker: async (_n, _r, _a, o) => {
            expect(o).toEqual({ openedAtMs: 1_000 });
            throw conflict;
          },
        },
      },
      logger: false,
    });
    try {
      const reset = await post(brk, '/v1/breakers/venue:gmx-arb/reset', {
        reason: 'back',
        openedAtMs: 1_000,
      });
      expect(reset.statusCode, reset.body).toBe(409);
      expect(reset.json().error).toMatchObject({
        code: 'BREAKER_RESET_CONFLICT',
        details: { breaker: 'venue:gmx-arb', state: 'open', openedAtMs: 2_000, expectedOpenedAtMs: 1_000 },
      });
      // a trip has no trip to name
      expect(
        (await post(brk, '/v1/breakers/venue:gmx-arb/trip', { reason: 'x'.repeat(5), openedAtMs: 1 }))
          .statusCode,
      ).toBe(400);
      const doc = (await brk.inject({ url: '/docs/json' })).json();
      const bodyOf = (path: string) => {
        const b = doc.paths[path].post.requestBody.content['application/json'].schema;
        return b.$ref ? doc.components.schemas[b.$ref.split('/').at(-1)] : b;
      };
      expect(bodyOf('/v1/kill-switch/trip').properties.replace).toMatchObject({
        type: 'boolean',
        description: 'loosen an engaged full stop to reduce-only; without it an engage never loosens',
      });
      expect(bodyOf('/v1/breakers/{name}/reset').properties.openedAtMs.description).toMatch(
        /^close only the trip opened at this time, as GET \/v1\/controls showed it.*409 if a newer trip is in force$/,
      );
      expect(doc.paths['/v1/kill-switch/reset'].post.responses['409'].description).toMatch(
        /KILL_SWITCH_RELEASE_CONFLICT/,
      );
      expect(doc.paths['/v1/breakers/{name}/reset'].post.responses['409'].description).toMatch(
        /BREAKER_RESET_CONFLICT/,
      );
    } finally {
      await brk.close();
    }
  });

  it('shows the book mark to viewers; operators re-mark it (at a value or at the newest equity), audited', async () => {
    const g = await app.inject({ url: '/v1/risk/mark', headers: auth('viewer') });
    expect(g.statusCode).toBe(200);
    expect(g.json()).toMatchObject({ markUsd: 1_000_000, lastEquityUsd: 990_000, lossSinceMarkUsd: 10_000 });
    const mark = (role: 'viewer' | 'operator', payload: object) =>
      app.inject({ method: 'POST', url: '/v1/risk/mark', headers: auth(role), payload });
    expect((await mark('viewer', { reason: 'viewers cannot mark' })).statusCode).toBe(403);
    const bad = await mark('operator', { equityUsd: 'lots', reason: 'a bad value' });
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain('equityUsd');
    // a finite but absurd equity would make the loss since the mark overflow to Infinity
    const huge = await mark('operator', { equityUsd: -1.79e308, reason: 'a typo' });
    expect(huge.statusCode).toBe(400);
    expect(huge.json().error.details.issues).toEqual([
      expect.objectContaining({ field: 'body.equityUsd', message: 'expected USD from -1e15 to 1e15' }),
    ]);
    const atLast = await mark('operator', { reason: 'end of day' });
    expect(atLast.statusCode).toBe(200);
    expect(atLast.json()).toMatchObject({ markUsd: 990_000, lossSinceMarkUsd: 0, reason: 'end of day' });
    expect(ports.auditLog.at(-1)).toMatchObject({
      action: 'book-mark.set',
      target: 'book',
      details: { reason: 'end of day' },
    });
    const at = await mark('operator', { equityUsd: 1_020_000, reason: 'fees not yet booked' });
    expect(at.statusCode, at.body).toBe(200);
    expect(at.json()).toMatchObject({ markUsd: 1_020_000, lossSinceMarkUsd: 30_000 });
    expect(ports.auditLog.at(-1)).toMatchObject({ details: { equityUsd: 1_020_000 } });
    expect(ports.auditLog.at(-1)?.details).not.toHaveProperty('forced');
  });

  it('refuses a mark farther from the newest equity than the loss limit unless forced, and audits it as forced', async () => {
    // newest equity 990,000 USD, loss limit 50,000 USD (memory ports); an equity entered in thousands
    const mark = (payload: object) =>
      app.inject({ method: 'POST', url: '/v1/risk/mark', headers: auth('risk'), payload });
    const before = (await app.inject({ url: '/v1/risk/mark', headers: auth('viewer') })).json();
    const audited = ports.auditLog.length;
    const typo = await mark({ equityUsd: 990, reason: 'new trading day' });
    expect(typo.statusCode).toBe(400);
    const message =
      "990 USD is 989010 USD below the book's newest equity 990000 USD, more than the market:loss breaker's " +
      'limit 50000 USD (breakers.market.maxLossSinceMarkUsd): check the value and its unit, or send "force": true ' +
      'to mark there anyway';
    expect(typo.json().error).toEqual({
      code: 'VALIDATION',
      message: `body.equityUsd: ${message}`,
      details: {
        issues: [{ field: 'body.equityUsd', message }],
        equityUsd: 990,
        lastEquityUsd: 990_000,
        differenceUsd: -989_010,
        maxLossSinceMarkUsd: 50_000,
      },
    });
    // above by more than the limit: the breaker would trip at once
    const above = await mark({ equityUsd: 1_040_000.5, reason: 'capital added' });
    expect(above.statusCode).toBe(400);
    expect(above.json().error.message).toMatch(/^body\.equityUsd: 1040000\.5 USD is 50000\.5 USD above/);
    // nothing marked, nothing audited
    expect((await app.inject({ url: '/v1/risk/mark', headers: auth('viewer') })).json()).toEqual(before);
    expect(ports.auditLog.length).toBe(audited);
    const noValue = await mark({ force: true, reason: 'at the newest equity' });
    expect(noValue.statusCode).toBe(400);
    expect(noValue.json().error.message).toBe(
      'body.force: only with equityUsd: a mark at the newest equity is never refused',
    );
    const forced = await mark({ equityUsd: 1_200_000, force: true, reason: 'capital added' });
    expect(forced.statusCode, forced.body).toBe(200);
    expect(forced.json()).toMatchObject({ markUsd: 1_200_000, lossSinceMarkUsd: 210_000 });
    expect(ports.auditLog.slice(audited)).toEqual([
      expect.objectContaining({
        actor: 'r',
        action: 'book-mark.set',
        details: expect.objectContaining({
          equityUsd: 1_200_000,
          reason: 'capital added',
          forced: true,
          lastEquityUsd: 990_000,
          differenceUsd: 210_000,
          maxLossSinceMarkUsd: 50_000,
        }),
      }),
    ]);
  });

  it('a forced mark through a port that audits its own marks gets an entry of its own; with no equity yet any mark is taken', async () => {
    const own = memoryPorts({ venues: cfg.venues, policy: cfg.policy, adminToken: ADMIN });
    const system = { tokenId: 'x', name: 'test', role: 'admin' as const };
    const risk = (await own.tokens.create({ name: 'risk-owner', role: 'risk' }, system)).token;
    let observed = true;
    const srv = await buildApiServer({
      ports: {
        ...own,
        controls: {
          ...own.controls,
          auditsBookMark: true,
          bookMark: async () => {
            const m = await own.controls.bookMark();
            if (!observed) delete m.lastEquityUsd;
            return m;
          },
        },
      },
      logger: false,
    });
    const mark = (payload: object) =>
      srv.inject({
        method: 'POST',
        url: '/v1/risk/mark',
        headers: { authorization: `Bearer ${risk}` },
        payload,
      });
    try {
      expect((await mark({ equityUsd: 6254, reason: 'new day' })).statusCode).toBe(400);
      const r = await mark({ equityUsd: 6254, force: true, reason: 'book really shrank' });
      expect(r.statusCode, r.body).toBe(200);
      expect(own.auditLog.at(-1)).toMatchObject({
        actor: 'risk-owner',
        action: 'book-mark.forced',
        target: 'book',
        details: {
          equityUsd: 6254,
          reason: 'book really shrank',
          forced: true,
          lastEquityUsd: 990_000,
          differenceUsd: -983_746,
          maxLossSinceMarkUsd: 50_000,
          role: 'risk',
        },
      });
      // no equity observed yet: nothing to compare with, taken as before
      observed = false;
      const first = await mark({ equityUsd: 6254, reason: 'opening mark' });
      expect(first.statusCode, first.body).toBe(200);
      expect(own.auditLog.at(-1)?.action).toBe('book-mark.forced');
    } finally {
      await srv.close();
    }
  });

  it('lists position breaks to viewers; operators acknowledge one, audited', async () => {
    const g = await app.inject({ url: '/v1/positions/breaks', headers: auth('viewer') });
    expect(g.statusCode).toBe(200);
    expect(g.json().breaks).toEqual([expect.objectContaining({ venue: 'gmx-arb', diffBase: 0.5 })]);
    const ack = (role: 'viewer' | 'operator', payload: object) =>
      app.inject({ method: 'POST', url: '/v1/positions/breaks/acknowledge', headers: auth(role), payload });
    const body = { venue: 'gmx-arb', instrument: 'ETH-USD:PERP', reason: 'manual trade on the venue UI' };
    expect((await ack('viewer', body)).statusCode).toBe(403);
    const bad = await ack('operator', { ...body, venue: 'Not A Venue' });
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain('venue');
    expect((await ack('operator', { venue: 'gmx-arb', instrument: 'ETH-USD:PERP' })).body).toContain(
      'reason',
    );
    const ok = await ack('operator', body);
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toEqual({ venue: 'gmx-arb', instrument: 'ETH-USD:PERP', breakOpen: true });
    expect(ports.auditLog.at(-1)).toMatchObject({
      action: 'position-break.acknowledge',
      target: 'gmx-arb/ETH-USD:PERP',
      details: { reason: body.reason },
    });
    expect(
      (await app.inject({ url: '/v1/positions/breaks', headers: auth('viewer') })).json().breaks,
    ).toEqual([]);
    expect((await ack('operator', { ...body, venue: 'nowhere' })).statusCode).toBe(404);
  });

  it('creates, uses and revokes tokens (admin only); the value appears once', async () => {
    const c = await app.inject({
      method: 'POST',
      url: '/v1/tokens',
      headers: auth('admin'),
      payload: { name: 'ci', role: 'viewer' },
    });
    expect(c.statusCode).toBe(201);
    const { token, info } = c.json();
    expect(
      (await app.inject({ url: '/v1/venues', headers: { authorization: `Bearer ${token}` } })).statusCode,
    ).toBe(200);
    const list = await app.inject({ url: '/v1/tokens', headers: auth('admin') });
    expect(list.body).not.toContain(token);
    const del = await app.inject({ method: 'DELETE', url: `/v1/tokens/${info.id}`, headers: auth('admin') });
    expect(del.statusCode).toBe(204);
    expect(
      (await app.inject({ url: '/v1/venues', headers: { authorization: `Bearer ${token}` } })).statusCode,
    ).toBe(401);
    expect(ports.auditLog.map((a) => a.action)).toEqual(
      expect.arrayContaining(['token.create', 'token.revoke']),
    );
  });

  it('exposes Prometheus metrics behind auth', async () => {
    expect((await app.inject({ url: '/metrics' })).statusCode).toBe(401);
    const m = await app.inject({ url: '/metrics', headers: auth('viewer') });
    expect(m.statusCode).toBe(200);
    expect(m.body).toContain('xhedge_book_greek{underlying="BTC",greek="delta"} 1.5');
    expect(m.body).toContain('xhedge_hedges_total{venue="gmx-arb",underlying="BTC",status="filled"} 1');
    expect(m.body).toContain('xhedge_breaker_state_now{breaker="venue:gmx-arb"} 0');
    // no divergences in the snapshot: the family is served, no series
    expect(m.body).toContain('# TYPE xhedge_greeks_divergences gauge');
    expect(m.body).not.toContain('xhedge_greeks_divergences{');
  });

  it("counts the newest snapshot's Greek divergences per venue and Greek", async () => {
    const d = (instrument: string, greek: string) => ({
      venue: 'lyra-op',
      instrument,
      greek,
      local: 0.5,
      venueValue: 0.6,
      absDiff: 0.1,
      tolerance: 0.02,
      convention: 'lyra',
    });
    ports.publish({
      ...snapshot(3),
      divergences: [
        d('ETH-USD:OPT:20991231:4000:C', 'delta'),
        d('ETH-USD:OPT:20991231:4500:C', 'delta'),
        d('ETH-USD:OPT:20991231:4000:C', 'gamma'),
        'junk',
      ],
    });
    const m = await app.inject({ url: '/metrics', headers: auth('viewer') });
    expect(m.body).toContain('xhedge_greeks_divergences{venue="lyra-op",greek="delta"} 2');
    expect(m.body).toContain('xhedge_greeks_divergences{venue="lyra-op",greek="gamma"} 1');
    ports.publish(snapshot(4));
    const after = await app.inject({ url: '/metrics', headers: auth('viewer') });
    expect(after.body).not.toContain('xhedge_greeks_divergences{');
  });

  it('streams snapshots as server-sent events', async () => {
    const address = await app.listen({ port: 0, host: '127.0.0.1' });
    const ctl = new AbortController();
    const res = await fetch(`${address}/v1/risk/stream`, { headers: auth('viewer'), signal: ctl.signal });
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
    const reader = res.body!.getReader();
    let text = '';
    setTimeout(() => ports.publish(snapshot(2)), 50);
    while (!text.includes('"seq":2')) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    ctl.abort();
    expect(text).toContain('event: snapshot');
    expect(text).toContain('id: 2');
  });
});

describe('readiness details', () => {
  it('gives each check only its name and ok without a valid token, the details with one', async () => {
    const own = memoryPorts({ venues: cfg.venues, policy: cfg.policy, adminToken: ADMIN });
    const system = { tokenId: 'x', name: 'test', role: 'admin' as const };
    const viewer = (await own.tokens.create({ name: 'ready', role: 'viewer' }, system)).token;
    const checks = [
      { name: 'redis', ok: false, detail: 'maxmemory-policy allkeys-lru on redis-7.internal.corp:6379' },
      { name: 'database', ok: true, detail: 'postgres' },
      { name: 'snapshot', ok: true, detail: 'seq 4' },
    ];
    const srv = await buildApiServer({
      ports: { ...own, readiness: async () => ({ ready: false, checks }) },
      logger: false,
    });
    try {
      for (const headers of [{}, { authorization: 'Bearer not-a-token' }]) {
        const r = await srv.inject({ url: '/v1/ready', headers });
        expect(r.statusCode).toBe(503);
        expect(r.json()).toEqual({
          ready: false,
          checks: [
            { name: 'redis', ok: false },
            { name: 'database', ok: true },
            { name: 'snapshot', ok: true },
          ],
        });
        expect(r.body).not.toMatch(/internal\.corp|allkeys|postgres|seq 4/);
      }
      const full = await srv.inject({ url: '/v1/ready', headers: { authorization: `Bearer ${viewer}` } });
      expect(full.statusCode).toBe(503);
      expect(full.json()).toEqual({ ready: false, checks });
      const doc = (await srv.inject({ url: '/docs/json' })).json();
      expect(doc.paths['/v1/ready'].get.description).toMatch(/valid bearer token/);
    } finally {
      await srv.close();
    }
  });
});

describe('server-sent events: the first read fails', () => {
  it('sends an error event and closes the stream, logging the error without secrets', async () => {
    const own = memoryPorts({ venues: cfg.venues, policy: cfg.policy, adminToken: ADMIN });
    const system = { tokenId: 'x', name: 'test', role: 'admin' as const };
    const viewer = (await own.tokens.create({ name: 'sse', role: 'viewer' }, system)).token;
    const lines: string[] = [];
    const risk = {
      ...own.risk,
      latest: async () => {
        throw new Error('connect ECONNREFUSED redis://xh:s3cretPw99@10.9.8.7:6379');
      },
    };
    const srv = await buildApiServer({
      ports: { ...own, risk },
      logger: pino(
        { level: 'info', redact: { paths: REDACT_PATHS, censor: '[redacted]' } },
        { write: (line: string) => void lines.push(line) },
      ),
    });
    try {
      const address = await srv.listen({ port: 0, host: '127.0.0.1' });
      const res = await fetch(`${address}/v1/risk/stream`, {
        headers: { authorization: `Bearer ${viewer}` },
        signal: AbortSignal.timeout(3_000),
      });
      expect(res.status).toBe(200);
      const text = await res.text(); // resolves only once the server ends the stream
      expect(text).toMatch(/^event: error\ndata: \{.*\}\n\n$/);
      expect(text).not.toMatch(/s3cretPw99|10\.9\.8\.7/);
      const log = lines.join('\n');
      expect(log).toMatch(/risk stream/);
      expect(log).toContain('ECONNREFUSED');
      expect(log).not.toContain('s3cretPw99');
    } finally {
      await srv.close();
    }
  });
});

describe('server-sent events: a client that leaves', () => {
  it('before its stream starts (auth or the first read still pending) leaves nothing subscribed', async () => {
    const own = memoryPorts({ venues: cfg.venues, policy: cfg.policy, adminToken: ADMIN });
    const system = { tokenId: 'x', name: 'test', role: 'admin' as const };
    const viewer = (await own.tokens.create({ name: 'sse', role: 'viewer' }, system)).token;
    let release: () => void = () => {};
    const firstRead = new Promise<void>((r) => {
      release = r;
    });
    let reading = 0;
    let live = 0;
    const risk = {
      ...own.risk,
      latest: async () => {
        reading++;
        await firstRead;
        return undefined;
      },
      subscribe: (fn: Parameters<typeof own.risk.subscribe>[0]) => {
        live++;
        const off = own.risk.subscribe(fn);
        return () => {
          live--;
          off();
        };
      },
    };
    const srv = await buildApiServer({ ports: { ...own, risk }, logger: false });
    try {
      const address = await srv.listen({ port: 0, host: '127.0.0.1' });
      const ctl = new AbortController();
      const req = fetch(`${address}/v1/risk/stream`, {
        headers: { authorization: `Bearer ${viewer}` },
        signal: ctl.signal,
      }).catch(() => undefined);
      for (let i = 0; reading === 0 && i < 200; i++) await new Promise((r) => setTimeout(r, 10));
      expect(reading).toBe(1);
      ctl.abort();
      await req;
      await new Promise((r) => setTimeout(r, 50)); // the server hears the close
      release();
      await new Promise((r) => setTimeout(r, 50));
      expect(live).toBe(0);
    } finally {
      release();
      await srv.close();
    }
  });
});

describe('browser sessions (EventSource and Bull Board cannot send a bearer header)', () => {
  it('a bearer caller gets an HttpOnly SameSite=Strict cookie that only the read-only browser routes accept', async () => {
    const res = await app.inject({ method: 'POST', url: '/v1/session', headers: auth('viewer') });
    expect(res.statusCode).toBe(201);
    const setCookie = String(res.headers['set-cookie']);
    expect(setCookie).toMatch(/^xh_session=xs_[A-Za-z0-9_-]{43}; /);
    expect(setCookie).toContain('HttpOnly');
    expect(setCookie).toContain('SameSite=Strict');
    expect(setCookie).toContain('Path=/');
    expect(setCookie).not.toContain('Secure'); // plain http here; https requests get Secure
    // the session id is in the cookie only, never in the body
    const id = /^xh_session=([^;]+)/.exec(setCookie)?.[1] as string;
    expect(res.body).not.toContain(id);
    expect(res.json()).toMatchObject({
      cookie: 'xh_session',
      accepts: ['GET /v1/risk/stream', 'GET /admin/queues'],
    });
    const cookie = `other=1; xh_session=${id}`;
    // not accepted on the API's other routes, reads or changes
    expect((await app.inject({ url: '/v1/venues', headers: { cookie } })).statusCode).toBe(401);
    const change = await app.inject({
      method: 'POST',
      url: '/v1/kill-switch/trip',
      headers: { cookie },
      payload: { scope: 'global', reason: 'csrf attempt' },
    });
    expect(change.statusCode).toBe(401);
    // a cookie cannot open another session
    expect((await app.inject({ method: 'POST', url: '/v1/session', headers: { cookie } })).statusCode).toBe(
      401,
    );
    // the stream accepts it
    if (!app.server.listening) await app.listen({ port: 0, host: '127.0.0.1' });
    const address = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
    const ctl = new AbortController();
    const sse = await fetch(`${address}/v1/risk/stream`, { headers: { cookie }, signal: ctl.signal });
    expect(sse.status).toBe(200);
    expect(sse.headers.get('content-type')).toMatch(/text\/event-stream/);
    ctl.abort();
    const bad = await fetch(`${address}/v1/risk/stream`, { headers: { cookie: 'xh_session=xs_forged' } });
    expect(bad.status).toBe(401);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toMatch(
      /POST \/v1\/session/,
    );
    // logout: the cookie is cleared and the session is dead
    const out = await app.inject({ method: 'DELETE', url: '/v1/session', headers: { cookie } });
    expect(out.statusCode).toBe(204);
    expect(String(out.headers['set-cookie'])).toMatch(/^xh_session=; .*Max-Age=0/);
    const after = await fetch(`${address}/v1/risk/stream`, { headers: { cookie } });
    expect(after.status).toBe(401);
  });

  it('Bull Board opens in a browser with the session cookie, and not without', async () => {
    // the board's page itself does not touch Redis; the queue only has to exist
    const q = new Queue('orders-gmx-arb', {
      connection: { host: '127.0.0.1', port: 6379, lazyConnect: true },
    });
    q.on('error', () => {});
    const p = memoryPorts({ venues: cfg.venues, policy: cfg.policy, adminToken: ADMIN });
    const srv = await buildApiServer({ ports: { ...p, queues: [q] }, logger: false });
    const r = await srv.inject({
      method: 'POST',
      url: '/v1/session',
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    const cookie = `xh_session=${/^xh_session=([^;]+)/.exec(String(r.headers['set-cookie']))?.[1]}`;
    expect((await srv.inject({ url: '/admin/queues' })).statusCode).toBe(401);
    const page = await srv.inject({ url: '/admin/queues', headers: { cookie } });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/text\/html/);
    await srv.close();
    await q.close();
  });

  it('a session follows its token: revoked token, dead session; expired after its ttl', async () => {
    const clock = new ManualClock(1_000_000);
    const p = memoryPorts({ venues: cfg.venues, policy: cfg.policy, adminToken: ADMIN });
    const sessions = new BrowserSessions({ ttlMs: 60_000, clock });
    const srv = await buildApiServer({ ports: p, logger: false, sessions });
    const system = { tokenId: 'x', name: 'test', role: 'admin' as const };
    const { token, view } = await p.tokens.create({ name: 'dash', role: 'viewer' }, system);
    const open = async () => {
      const r = await srv.inject({
        method: 'POST',
        url: '/v1/session',
        headers: { authorization: `Bearer ${token}` },
      });
      return `xh_session=${/^xh_session=([^;]+)/.exec(String(r.headers['set-cookie']))?.[1]}`;
    };
    const metricsWith = (cookie: string) => srv.inject({ url: '/metrics', headers: { cookie } });
    const c1 = await open();
    // /metrics is not a browser route
    expect((await metricsWith(c1)).statusCode).toBe(401);
    clock.advance(59_999);
    expect(await sessions.tokenOf(c1.slice('xh_session='.length))).toBe(view.id);
    clock.advance(1);
    expect(await sessions.tokenOf(c1.slice('xh_session='.length))).toBeUndefined();
    const c2 = await open();
    expect(await sessions.tokenOf(c2.slice('xh_session='.length))).toBe(view.id);
    await p.tokens.revoke(view.id, system);
    const stream = await srv.inject({ url: '/v1/risk/stream', headers: { cookie: c2 } });
    expect(stream.statusCode).toBe(401);
    await srv.close();
    expect(() => new BrowserSessions({ ttlMs: Number.NaN })).toThrow(/ttlMs/);
  });
});

type Need = 'public' | 'viewer' | 'risk' | 'operator' | 'admin';
/**
 * The rule from the issue: reads need viewer, changes operator, tokens and roles admin; the brakes
 * (kill switch, breakers, book mark, acknowledging a position break) the risk owner's role.
 */
function expectedAccess(method: string, path: string): Need {
  if (path === '/v1/health' || path === '/v1/ready') return 'public';
  if (path === '/v1/session') return method === 'delete' ? 'public' : 'viewer'; // any token opens one
  if (path.startsWith('/v1/tokens')) return 'admin';
  if (method === 'get') return 'viewer';
  const brakes = ['/v1/kill-switch/', '/v1/breakers/', '/v1/risk/mark', '/v1/positions/breaks/acknowledge'];
  return brakes.some((b) => path.startsWith(b)) ? 'risk' : 'operator';
}
const SAMPLE: Record<string, string> = {
  id: 'gmx-arb',
  underlying: 'BTC',
  chain: 'evm:42161',
  name: 'venue:gmx-arb',
};

describe('auth matrix: every role against every route of the OpenAPI document', () => {
  it("gives 401 without a token, 403 below the route's role, and lets the role and above through", async () => {
    const doc = (await app.inject({ url: '/docs/json' })).json() as {
      paths: Record<string, Record<string, unknown>>;
    };
    const routes = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((method) => ({ method, path })),
    );
    routes.push({ method: 'get', path: '/metrics' });
    expect(routes.length).toBeGreaterThanOrEqual(28);
    const rank: Record<Need, number> = { public: 0, viewer: 1, risk: 2, operator: 3, admin: 4 };
    const rows: string[] = [];
    for (const { method, path } of routes) {
      const need = expectedAccess(method, path);
      const url = path.replace(/\{(\w+)\}/g, (_m, k: string) => encodeURIComponent(SAMPLE[k] ?? 'x'));
      for (const who of ['none', 'viewer', 'risk', 'operator', 'admin'] as const) {
        const allowed = rank[who === 'none' ? 'public' : who] >= rank[need];
        if (allowed && path === '/v1/risk/stream') continue; // an allowed stream never ends; covered by the SSE test
        const headers = who === 'none' ? {} : auth(who);
        const r = await app.inject({ method: method.toUpperCase() as 'GET', url, headers });
        const got = r.statusCode;
        const ok = allowed ? got !== 401 && got !== 403 : got === (who === 'none' ? 401 : 403);
        if (!ok) rows.push(`${method} ${path} as ${who}: ${got} (${need} needed)`);
        if (!allowed) expect(r.json().error.code).toBe(who === 'none' ? 'UNAUTHORIZED' : 'FORBIDDEN');
      }
    }
    expect(rows).toEqual([]);
  });
});

describe('malformed requests the API fuzz found (fuzz.test.ts): a 4xx naming what is wrong', () => {
  const json = (role: keyof typeof tokens) => ({ ...auth(role), 'content-type': 'application/json' });

  it('a venue whose params nest thousands of levels deep is a 400 naming where, not a 500 (stack overflow)', async () => {
    const nested = (levels: number) => `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`;
    const venue = (id: string, levels: number) =>
      `{"id":"${id}","kind":"gmx","chain":"evm:42161","params":{"a":${nested(levels)}}}`;
    const tooDeep = /^body\.params(\.a){16}: nested deeper than 16 levels/;
    for (const [method, url, id] of [
      ['POST', '/v1/venues', 'deep-venue'],
      ['PUT', '/v1/venues/gmx-arb', 'gmx-arb'],
    ] as const) {
      for (const levels of [20_000, 16]) {
        const r = await app.inject({ method, url, headers: json('operator'), payload: venue(id, levels) });
        expect(r.statusCode, `${method} ${levels}: ${r.body.slice(0, 300)}`).toBe(400);
        expect(r.json().error.code).toBe('VALIDATION');
        expect(r.json().error.message).toMatch(tooDeep);
      }
    }
    // settings as deep as the limit are taken, and read back
    const ok = await app.inject({
      method: 'POST',
      url: '/v1/venues',
      headers: json('operator'),
      payload: venue('deep-ok', 15),
    });
    expect(ok.statusCode, ok.body.slice(0, 300)).toBe(201);
    expect((await app.inject({ url: '/v1/venues/deep-ok', headers: auth('viewer') })).statusCode).toBe(200);
  });

  it('a whole number in a query string is decimal digits: empty, blank, hex or exponent values are refused, not read as 0 or a number', async () => {
    const epoch = 'expected milliseconds since the Unix epoch (a whole number)';
    for (const [qs, message] of [
      ['fromMs=', `querystring.fromMs: ${epoch}`],
      ['fromMs=%20', `querystring.fromMs: ${epoch}`],
      ['toMs=0x10', `querystring.toMs: ${epoch}`],
      ['fromMs=1e3', `querystring.fromMs: ${epoch}`],
      ['toMs=5%20', `querystring.toMs: ${epoch}`],
      ['limit=%2B5', 'querystring.limit: expected a whole number'],
      ['limit=', 'querystring.limit: expected a whole number'],
    ]) {
      const r = await app.inject({ url: `/v1/hedges/jobs?${qs}`, headers: auth('viewer') });
      expect(r.statusCode, `${qs}: ${r.body}`).toBe(400);
      expect(r.json().error.message, qs).toBe(message);
    }
    const pnl = await app.inject({ url: '/v1/pnl?fromMs=&toMs=', headers: auth('viewer') });
    expect(pnl.statusCode, pnl.body).toBe(400);
    expect(pnl.json().error.message).toBe(`querystring.fromMs: ${epoch}`);
    // digits still work, with the default page size when left out, and the document still says so
    expect(
      (await app.inject({ url: '/v1/hedges/jobs?fromMs=0&limit=7', headers: auth('viewer') })).statusCode,
    ).toBe(200);
    const doc = (await app.inject({ url: '/docs/json' })).json() as {
      paths: Record<string, { get?: { parameters?: { name: string; schema: unknown }[] } }>;
    };
    expect(doc.paths['/v1/hedges/jobs']?.get?.parameters?.find((p) => p.name === 'limit')?.schema).toEqual({
      default: 200,
      type: 'integer',
      minimum: 1,
      maximum: 5000,
    });
  });

  it('a scenario shock out of range names the shock and the range, not "required"', async () => {
    for (const [qs, message] of [
      ['spotShocksPct=0,900', 'querystring.spotShocksPct[1]: expected numbers from -90 to 500'],
      [`volShocksPts=${'9'.repeat(400)}`, 'querystring.volShocksPts[0]: expected numbers from -100 to 300'],
    ]) {
      const r = await app.inject({ url: `/v1/risk/scenarios?underlying=BTC&${qs}`, headers: auth('viewer') });
      expect(r.statusCode, r.body).toBe(400);
      expect(r.json().error.message).toBe(message);
    }
  });

  it('ids and breaker names as long as the schemas allow (128 characters) reach the route, not a 414', async () => {
    const id = `j${'x'.repeat(127)}`;
    const job = await app.inject({ url: `/v1/hedges/jobs/${id}`, headers: auth('viewer') });
    expect(job.statusCode, job.body).toBe(404);
    expect(job.json().error.code).toBe('NOT_FOUND');
    const name = `venue:${'x'.repeat(122)}`;
    const brk = await app.inject({
      method: 'POST',
      url: `/v1/breakers/${name}/trip`,
      headers: json('risk'),
      payload: { reason: 'long name' },
    });
    expect(brk.statusCode, brk.body).toBe(404);
    expect(brk.json().error.message).toBe(`no breaker ${name} guards any order of this run`);
    const long = await app.inject({ url: `/v1/hedges/jobs/${'x'.repeat(257)}`, headers: auth('viewer') });
    expect(long.statusCode).toBe(414);
    expect(long.json().error.code).toBe('URI_TOO_LONG');
  });
});

describe('rate limiting', () => {
  it('answers 429 RATE_LIMITED past the limit', async () => {
    const p = memoryPorts({ venues: cfg.venues, policy: cfg.policy, adminToken: ADMIN });
    const small = await buildApiServer({ ports: p, logger: false, rateLimitPerMinute: 3 });
    const codes: number[] = [];
    for (let i = 0; i < 5; i++)
      codes.push(
        (await small.inject({ url: '/v1/venues', headers: { authorization: `Bearer ${ADMIN}` } })).statusCode,
      );
    await small.close();
    expect(codes).toEqual([200, 200, 200, 429, 429]);
  });
});

describe('tokens shared by API replicas (one data folder)', () => {
  it("each replica sees the others' changes at once, and changes made at the same time all land", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xhedge-api-'));
    try {
      const file = join(dir, 'tokens.json');
      const a = new FileTokenStore({ file });
      const b = new FileTokenStore({ file });
      const system = { tokenId: 'system', name: 'test', role: 'admin' as const };
      const t1 = await a.create({ name: 'ci', role: 'viewer' }, system);
      // made on A, known on B
      expect((await b.verify(t1.token))?.name).toBe('ci');
      // revoked on B, refused on A at its next check
      await b.revoke(t1.view.id, system);
      expect(await a.verify(t1.token)).toBeUndefined();
      // changes made at once on both replicas: none undoes another
      const made = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          (i % 2 ? a : b).create({ name: `t${i}`, role: 'viewer' }, system),
        ),
      );
      const names = (await a.list()).map((t) => t.name).sort();
      expect(names).toEqual(made.map((m) => m.view.name).sort());
      for (const m of made) expect((await b.verify(m.token))?.name).toBe(m.view.name);
      // a role changed on A holds on B, and B's later change does not bring the revoked token back
      await a.setRole(made[0]?.view.id ?? '', 'operator', system);
      await b.create({ name: 'later', role: 'viewer' }, system);
      expect((await b.verify(made[0]?.token ?? ''))?.role).toBe('operator');
      expect(await b.verify(t1.token)).toBeUndefined();
      expect(readdirSync(dir).sort()).toEqual(['tokens.json']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('admin token bootstrap', () => {
  it('generates one admin token on a paper profile, keeps only its hash and a 0600 one-time file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xhedge-api-'));
    try {
      const file = join(dir, 'tokens.json');
      const store = new FileTokenStore({ file });
      const first = await bootstrapAdminToken({
        store,
        dataDir: dir,
        envToken: undefined,
        paperProfile: true,
      });
      expect(first.source).toBe('generated');
      expect(first.token).toMatch(/^xh_/);
      expect(readFileSync(file, 'utf8')).not.toContain(first.token);
      expect(statSync(join(dir, 'admin-token')).mode & 0o777).toBe(0o600);
      const again = new FileTokenStore({ file });
      expect((await again.verify(first.token!))?.role).toBe('admin');
      expect(await again.verify(`${first.token}x`)).toBeUndefined();
      const second = await bootstrapAdminToken({
        store: again,
        dataDir: dir,
        envToken: undefined,
        paperProfile: true,
      });
      expect(second.source).toBe('existing');
      expect(second.token).toBeUndefined();
      await expect(
        bootstrapAdminToken({
          store: new FileTokenStore(),
          dataDir: dir,
          envToken: undefined,
          paperProfile: false,
        }),
      ).rejects.toThrow(/XHEDGE_API_TOKEN/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the last admin token', () => {
  it('cannot revoke itself or lose its role: 409 saying to create another admin first; the banner line says when the file token is revoked', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xhedge-api-'));
    const own = memoryPorts({ venues: cfg.venues, policy: cfg.policy, adminToken: ADMIN });
    const store = new FileTokenStore({ file: join(dir, 'api-tokens.json') });
    const srv = await buildApiServer({ ports: { ...own, tokens: store }, logger: false });
    try {
      const boot = await bootstrapAdminToken({
        store,
        dataDir: dir,
        envToken: undefined,
        paperProfile: true,
      });
      expect(boot.source).toBe('generated');
      expect(boot.summary).not.toContain(boot.token);
      const as = (token: string) => ({ authorization: `Bearer ${token}` });
      const first = boot.token ?? '';
      const [self] = (await srv.inject({ url: '/v1/tokens', headers: as(first) })).json();
      const message =
        `token ${self.id} (bootstrap-admin) is the last admin token: revoking it would leave no token that can ` +
        'manage tokens; create another admin token first (POST /v1/tokens with "role": "admin")';
      const revoke = await srv.inject({ method: 'DELETE', url: `/v1/tokens/${self.id}`, headers: as(first) });
      expect(revoke.statusCode).toBe(409);
      expect(revoke.json().error).toEqual({
        code: 'CONFLICT',
        message,
        details: { id: self.id, lastAdmin: true },
      });
      const demote = await srv.inject({
        method: 'PUT',
        url: `/v1/tokens/${self.id}/role`,
        headers: as(first),
        payload: { role: 'operator' },
      });
      expect(demote.statusCode).toBe(409);
      expect(demote.json().error.message).toMatch(
        /is the last admin token: giving it the operator role would/,
      );
      // still the admin, nothing audited
      expect((await srv.inject({ url: '/v1/tokens', headers: as(first) })).statusCode).toBe(200);
      expect(own.auditLog.filter((a) => a.action.startsWith('token.'))).toEqual([]);
      expect(
        (await bootstrapAdminToken({ store, dataDir: dir, envToken: undefined, paperProfile: true })).summary,
      ).toBe(`admin token: generated at first start, in ${join(dir, 'admin-token')}`);
      // with another admin, it may go
      const made = await srv.inject({
        method: 'POST',
        url: '/v1/tokens',
        headers: as(first),
        payload: { name: 'second-admin', role: 'admin' },
      });
      expect(made.statusCode).toBe(201);
      const second = made.json().token as string;
      const gone = await srv.inject({ method: 'DELETE', url: `/v1/tokens/${self.id}`, headers: as(first) });
      expect(gone.statusCode).toBe(204);
      expect((await srv.inject({ url: '/v1/tokens', headers: as(first) })).statusCode).toBe(401);
      // now the second is the last one
      const last = await srv.inject({
        method: 'DELETE',
        url: `/v1/tokens/${made.json().info.id}`,
        headers: as(second),
      });
      expect(last.statusCode).toBe(409);
      // at the next start the file's token is said to be revoked, not "generated at first start"
      const next = await bootstrapAdminToken({
        store: new FileTokenStore({ file: join(dir, 'api-tokens.json') }),
        dataDir: dir,
        envToken: undefined,
        paperProfile: true,
      });
      expect(next).toMatchObject({ source: 'existing', fileToken: 'revoked' });
      expect(next.summary).toBe(
        `admin token: the one generated at first start, in ${join(dir, 'admin-token')}, is REVOKED; use another ` +
          'admin token (GET /v1/tokens lists them)',
      );
      // and one whose admin role was taken, or that is gone
      const third = await store.create(
        { name: 'third-admin', role: 'admin' },
        { tokenId: 'x', name: 't', role: 'admin' },
      );
      writeFileSync(join(dir, 'admin-token'), `${third.token}\n`);
      await store.setRole(made.json().info.id, 'admin', { tokenId: 'x', name: 't', role: 'admin' });
      await store.setRole(third.view.id, 'viewer', { tokenId: 'x', name: 't', role: 'admin' });
      expect(
        await bootstrapAdminToken({ store, dataDir: dir, envToken: undefined, paperProfile: true }),
      ).toMatchObject({
        fileToken: 'not-admin',
        fileRole: 'viewer',
        summary: expect.stringMatching(/now has the viewer role/),
      });
      rmSync(join(dir, 'admin-token'));
      expect(
        await bootstrapAdminToken({ store, dataDir: dir, envToken: undefined, paperProfile: true }),
      ).toMatchObject({ source: 'existing', fileToken: 'missing' });
      // a file that cannot be read is said so; the start is not refused for it
      mkdirSync(join(dir, 'admin-token'));
      expect(
        await bootstrapAdminToken({ store, dataDir: dir, envToken: undefined, paperProfile: true }),
      ).toMatchObject({
        source: 'existing',
        fileToken: 'unreadable',
        summary: expect.stringMatching(/EISDIR/),
      });
    } finally {
      await srv.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('may be revoked while the environment admin token (XHEDGE_API_TOKEN) remains', async () => {
    const made = await app.inject({
      method: 'POST',
      url: '/v1/tokens',
      headers: auth('admin'),
      payload: { name: 'temp-admin', role: 'admin' },
    });
    expect(made.statusCode).toBe(201);
    const id = made.json().info.id as string;
    const del = await app.inject({
      method: 'DELETE',
      url: `/v1/tokens/${id}`,
      headers: { authorization: `Bearer ${made.json().token}` },
    });
    expect(del.statusCode).toBe(204);
  });
});

describe('venue URLs that may hold an API key (RPC endpoints, params such as pricesUrl)', () => {
  it('are shown by their origin alone, to every role, and their masked form is refused back', async () => {
    const own = memoryPorts({ venues: cfg.venues, policy: cfg.policy, adminToken: ADMIN });
    const srv = await buildApiServer({ ports: own, logger: false });
    const admin = { authorization: `Bearer ${ADMIN}` };
    const keys = /AlchemyK3ySecret|QueryK3ySecret|WsPassw0rd|FeedK3ySecret/;
    try {
      const body = {
        id: 'gmx-keyed',
        kind: 'gmx',
        chain: 'evm:42161',
        endpoints: {
          rpc: [
            'https://arb-mainnet.g.alchemy.com/v2/AlchemyK3ySecret',
            'https://arb1.arbitrum.io',
            { env: 'ARB_RPC' },
          ],
          ws: 'wss://operator:WsPassw0rd@ws.example.org',
        },
        params: {
          pricesUrl: 'https://arbitrum-api.gmxinfra.io/prices/tickers?apikey=QueryK3ySecret',
          oracle: '0xa85233c63b9ee964add6f2cffe00fd84eb32338f',
          feeds: [{ url: 'https://feed.example.org/FeedK3ySecret' }],
        },
      };
      const add = await srv.inject({ method: 'POST', url: '/v1/venues', headers: admin, payload: body });
      expect(add.statusCode, add.body).toBe(201);
      const one = await srv.inject({ url: '/v1/venues/gmx-keyed', headers: admin });
      const all = await srv.inject({ url: '/v1/venues', headers: admin });
      for (const r of [add, one, all]) expect(r.body).not.toMatch(keys);
      const v = one.json();
      expect(v.endpoints).toEqual({
        rpc: ['https://arb-mainnet.g.alchemy.com/[redacted]', 'https://arb1.arbitrum.io', { env: 'ARB_RPC' }],
        ws: 'wss://ws.example.org/[redacted]',
      });
      expect(v.params).toEqual({
        pricesUrl: 'https://arbitrum-api.gmxinfra.io/[redacted]',
        oracle: '0xa85233c63b9ee964add6f2cffe00fd84eb32338f',
        feeds: [{ url: 'https://feed.example.org/[redacted]' }],
      });
      // the port still holds the real URLs
      expect(JSON.stringify(await own.venues.get('gmx-keyed'))).toMatch(/AlchemyK3ySecret/);
      // a view sent back as a replacement would run the venue on the masked URLs: refused, by field
      const back = await srv.inject({
        method: 'PUT',
        url: '/v1/venues/gmx-keyed',
        headers: admin,
        payload: {
          id: 'gmx-keyed',
          kind: 'gmx',
          chain: 'evm:42161',
          endpoints: v.endpoints,
          params: v.params,
        },
      });
      expect(back.statusCode).toBe(400);
      expect(back.json().error.details.issues.map((i: { field: string }) => i.field)).toEqual([
        'body.endpoints.rpc[0]',
        'body.endpoints.ws',
        'body.params.pricesUrl',
        'body.params.feeds[0].url',
      ]);
      expect(JSON.stringify(await own.venues.get('gmx-keyed'))).toMatch(/AlchemyK3ySecret/);
    } finally {
      await srv.close();
    }
  });
});

describe('the brakes when the names they may take cannot be read', () => {
  it('a kill switch or a breaker is still engaged: a failed typo check never keeps the brakes off', async () => {
    const own = memoryPorts({ venues: cfg.venues, policy: cfg.policy, adminToken: ADMIN });
    const system = { tokenId: 'x', name: 'test', role: 'admin' as const };
    const risk = (await own.tokens.create({ name: 'risk-owner', role: 'risk' }, system)).token;
    const srv = await buildApiServer({
      ports: {
        ...own,
        controls: {
          ...own.controls,
          targets: async () => {
            throw new Error('venue list unreadable');
          },
        },
      },
      logger: false,
    });
    const post = (url: string, payload: object) =>
      srv.inject({ method: 'POST', url, headers: { authorization: `Bearer ${risk}` }, payload });
    try {
      const venue = await post('/v1/kill-switch/trip', {
        scope: 'venue',
        target: 'gmx-arb',
        reason: 'venue down',
      });
      expect(venue.statusCode, venue.body).toBe(200);
      expect(venue.json()).toMatchObject({ scope: 'venue', target: 'gmx-arb', engaged: true });
      const und = await post('/v1/kill-switch/trip', {
        scope: 'underlying',
        target: 'BTC',
        reason: 'btc gap',
      });
      expect(und.statusCode, und.body).toBe(200);
      expect(und.json()).toMatchObject({ scope: 'underlying', target: 'BTC', engaged: true });
      const brk = await post('/v1/breakers/venue:gmx-arb/trip', { reason: 'by hand' });
      expect(brk.statusCode, brk.body).toBe(200);
      expect(brk.json()).toMatchObject({ name: 'venue:gmx-arb', state: 'open' });
      // closing one the board holds open is allowed as before; a name it does not hold is not
      expect((await post('/v1/breakers/venue:gmx-arb/reset', { reason: 'back' })).statusCode).toBe(200);
      expect((await post('/v1/breakers/venue:nowhere/reset', { reason: 'typo' })).statusCode).toBe(404);
    } finally {
      await srv.close();
    }
  });
});

describe('rate limiting of callers that fail authentication', () => {
  it('counts guesses with made-up tokens or none per address; a valid token keeps its own budget', async () => {
    const p = memoryPorts({ venues: cfg.venues, policy: cfg.policy, adminToken: ADMIN });
    const small = await buildApiServer({ ports: p, logger: false, rateLimitPerMinute: 3 });
    try {
      const codes: number[] = [];
      for (let i = 0; i < 5; i++)
        codes.push(
          (await small.inject({ url: '/v1/venues', headers: { authorization: `Bearer xh_guess_${i}` } }))
            .statusCode,
        );
      expect(codes).toEqual([401, 401, 401, 429, 429]);
      const none = await small.inject({ url: '/v1/tokens' });
      expect(none.statusCode).toBe(429);
      expect(none.json().error.code).toBe('RATE_LIMITED');
      const valid = await small.inject({ url: '/v1/venues', headers: { authorization: `Bearer ${ADMIN}` } });
      expect(valid.statusCode).toBe(200);
    } finally {
      await small.close();
    }
  });
});

describe('server-sent events: a client that stops reading', () => {
  it('is let go once its backlog passes the bound, instead of the server buffering every snapshot for it', async () => {
    const own = memoryPorts({ venues: cfg.venues, policy: cfg.policy, adminToken: ADMIN });
    const system = { tokenId: 'x', name: 'test', role: 'admin' as const };
    const viewer = (await own.tokens.create({ name: 'stalled', role: 'viewer' }, system)).token;
    let live = 0;
    const risk = {
      ...own.risk,
      subscribe: (fn: Parameters<typeof own.risk.subscribe>[0]) => {
        live++;
        const off = own.risk.subscribe(fn);
        return () => {
          live--;
          off();
        };
      },
    };
    const srv = await buildApiServer({
      ports: { ...own, risk },
      logger: false,
      streamBacklogBytes: 256 * 1024,
    });
    const sock = new Socket();
    try {
      await srv.listen({ port: 0, host: '127.0.0.1' });
      const { port } = srv.server.address() as { port: number };
      await new Promise<void>((r) => sock.connect(port, '127.0.0.1', r));
      let closedByServer = false;
      sock.on('close', () => {
        closedByServer = true;
      });
      sock.on('error', () => {});
      sock.write(`GET /v1/risk/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${viewer}\r\n\r\n`);
      for (let i = 0; live === 0 && i < 200; i++) await new Promise((r) => setTimeout(r, 10));
      expect(live).toBe(1);
      sock.pause(); // the client reads nothing more
      const pad = 'x'.repeat(256 * 1024);
      for (let seq = 1; seq <= 120 && live > 0; seq++) {
        own.publish({ seq, asOfMs: seq, underlyings: {}, pad });
        await new Promise((r) => setImmediate(r));
      }
      for (let i = 0; (live > 0 || !closedByServer) && i < 100; i++)
        await new Promise((r) => setTimeout(r, 10));
      expect(live).toBe(0);
      expect(closedByServer).toBe(true);
    } finally {
      sock.destroy();
      await srv.close();
    }
  });
});
