import { loadConfigFile } from '@xhedge/config';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApiServer, REDACT_PATHS } from './server.ts';
import { type MemoryPorts, memoryPorts } from './testing/memory-ports.ts';

const cfg = loadConfigFile(new URL('../../../configs/profiles/paper.yaml', import.meta.url).pathname);
const ADMIN = 'admin-token-for-unit-tests-0123456789';
const LEDGER_DOWN = 'connect ECONNREFUSED postgres://xh:pgS3cretPw@10.4.4.4:5432/xhedge?sslpassword=k3yPass';

/**
 * A change made through the API whose audit entry then fails (the ledger is down): the change is in
 * force, so the answer must say so, distinctly, instead of a generic 500 that reads as "not done".
 */
describe('a change applied whose audit entry failed', () => {
  let app: FastifyInstance;
  let ports: MemoryPorts;
  let ledgerDown = false;
  const lines: string[] = [];
  const system = { tokenId: 'x', name: 'test', role: 'admin' as const };
  const auth = { authorization: `Bearer ${ADMIN}` };

  beforeAll(async () => {
    ports = memoryPorts({ venues: cfg.venues, policy: cfg.policy, adminToken: ADMIN });
    const record = ports.audit.record;
    app = await buildApiServer({
      ports: {
        ...ports,
        audit: {
          ...ports.audit,
          record: async (e) => {
            if (ledgerDown) throw new Error(LEDGER_DOWN);
            return record(e);
          },
        },
      },
      logger: pino(
        { level: 'info', redact: { paths: REDACT_PATHS, censor: '[redacted]' } },
        { write: (line: string) => void lines.push(line) },
      ),
    });
    await app.ready();
  });
  afterAll(async () => app.close());

  const get = async (url: string) => {
    const r = await app.inject({ url, headers: auth });
    expect(r.statusCode, r.body).toBe(200);
    return r.json();
  };
  const body = (payload: object) => payload;

  const changes: {
    name: string;
    method: 'POST' | 'PUT' | 'DELETE';
    url: () => Promise<string>;
    payload?: object;
    action: string;
    /** The change is in force: read back through the API. */
    applied: () => Promise<void>;
  }[] = [
    {
      name: 'venue add',
      method: 'POST',
      url: async () => '/v1/venues',
      payload: body({ id: 'gmx-new', kind: 'paper-gmx', chain: 'evm:42161' }),
      action: 'venue.add',
      applied: async () => expect((await get('/v1/venues/gmx-new')).kind).toBe('paper-gmx'),
    },
    {
      name: 'venue update',
      method: 'PUT',
      url: async () => '/v1/venues/gmx-arb',
      payload: body({ id: 'gmx-arb', kind: 'paper-gmx', chain: 'evm:42161', params: { keeperDelayMs: 900 } }),
      action: 'venue.update',
      applied: async () => expect((await get('/v1/venues/gmx-arb')).params).toEqual({ keeperDelayMs: 900 }),
    },
    {
      name: 'venue disable',
      method: 'POST',
      url: async () => '/v1/venues/uni-eth/disable',
      payload: body({ reason: 'venue halted' }),
      action: 'venue.disable',
      applied: async () => expect((await get('/v1/venues/uni-eth')).enabled).toBe(false),
    },
    {
      name: 'hedge job cancel',
      method: 'POST',
      url: async () => '/v1/hedges/jobs/int_1/cancel',
      payload: body({ reason: 'stale plan' }),
      action: 'hedge.cancel',
      applied: async () => expect((await get('/v1/hedges/jobs/int_1')).status).toBe('cancelled'),
    },
    {
      name: 'kill switch engage',
      method: 'POST',
      url: async () => '/v1/kill-switch/trip',
      payload: body({ scope: 'venue', target: 'gmx-arb', reason: 'venue acting up' }),
      action: 'kill-switch.trip',
      applied: async () =>
        expect((await get('/v1/controls')).killSwitches).toContainEqual(
          expect.objectContaining({ scope: 'venue', target: 'gmx-arb', engaged: true }),
        ),
    },
    {
      name: 'kill switch release',
      method: 'POST',
      url: async () => '/v1/kill-switch/reset',
      payload: body({ scope: 'venue', target: 'gmx-arb', reason: 'venue fine again' }),
      action: 'kill-switch.reset',
      applied: async () =>
        expect((await get('/v1/controls')).killSwitches).toContainEqual(
          expect.objectContaining({ scope: 'venue', target: 'gmx-arb', engaged: false }),
        ),
    },
    {
      name: 'breaker trip',
      method: 'POST',
      url: async () => '/v1/breakers/venue:gmx-arb/trip',
      payload: body({ reason: 'by hand' }),
      action: 'breaker.trip',
      applied: async () =>
        expect((await get('/v1/controls')).breakers).toContainEqual(
          expect.objectContaining({ name: 'venue:gmx-arb', state: 'open' }),
        ),
    },
    {
      name: 'breaker reset',
      method: 'POST',
      url: async () => '/v1/breakers/venue:gmx-arb/reset',
      payload: body({ reason: 'venue recovered' }),
      action: 'breaker.reset',
      applied: async () =>
        expect((await get('/v1/controls')).breakers).toContainEqual(
          expect.objectContaining({ name: 'venue:gmx-arb', state: 'closed' }),
        ),
    },
    {
      name: 'book mark',
      method: 'POST',
      url: async () => '/v1/risk/mark',
      payload: body({ equityUsd: 995_000, reason: 'new day' }),
      action: 'book-mark.set',
      applied: async () => expect((await get('/v1/risk/mark')).markUsd).toBe(995_000),
    },
    {
      name: 'policy update',
      method: 'PUT',
      url: async () => '/v1/policy',
      payload: body({ ...cfg.policy, tickIntervalMs: 2_000 }),
      action: 'policy.update',
      applied: async () => expect((await get('/v1/policy')).tickIntervalMs).toBe(2_000),
    },
    {
      name: 'token role',
      method: 'PUT',
      url: async () =>
        `/v1/tokens/${(await ports.tokens.create({ name: 'promote', role: 'viewer' }, system)).view.id}/role`,
      payload: body({ role: 'risk' }),
      action: 'token.role',
      applied: async () =>
        expect((await get('/v1/tokens')).find((t: { name: string }) => t.name === 'promote').role).toBe(
          'risk',
        ),
    },
    {
      name: 'token revoke',
      method: 'DELETE',
      url: async () =>
        `/v1/tokens/${(await ports.tokens.create({ name: 'leaver', role: 'viewer' }, system)).view.id}`,
      action: 'token.revoke',
      applied: async () =>
        expect((await get('/v1/tokens')).map((t: { name: string }) => t.name)).not.toContain('leaver'),
    },
  ];

  it.each(changes)(
    '$name: 500 AUDIT_UNRECORDED saying the change is in force, logged without secrets',
    async (c) => {
      const url = await c.url();
      const audited = ports.auditLog.length;
      lines.length = 0;
      ledgerDown = true;
      let r: Awaited<ReturnType<typeof app.inject>>;
      try {
        r = await app.inject({
          method: c.method,
          url,
          headers: auth,
          ...(c.payload ? { payload: c.payload } : {}),
        });
      } finally {
        ledgerDown = false;
      }
      expect(r.statusCode, r.body).toBe(500);
      const e = r.json().error;
      expect(e.code).toBe('AUDIT_UNRECORDED');
      expect(e.message).toMatch(/in force.*audit ledger did not record it.*do not repeat/);
      expect(e.details).toMatchObject({ applied: true, recorded: false, action: c.action });
      expect(r.body).not.toMatch(/pgS3cretPw|k3yPass|10\.4\.4\.4|ECONNREFUSED/);
      await c.applied();
      expect(ports.auditLog.length).toBe(audited);
      const log = lines.join('\n');
      expect(log).toContain(c.action);
      expect(log).toMatch(/audit ledger did not record it/);
      expect(log).toContain('ECONNREFUSED');
      expect(log).not.toMatch(/pgS3cretPw|k3yPass|"stack":"[^"]/);
    },
  );

  it('token create: the token is revoked again and the answer is 503 NOT_READY (no unaudited credential, no value lost)', async () => {
    lines.length = 0;
    ledgerDown = true;
    let r: Awaited<ReturnType<typeof app.inject>>;
    try {
      r = await app.inject({
        method: 'POST',
        url: '/v1/tokens',
        headers: auth,
        payload: { name: 'unaudited', role: 'admin' },
      });
    } finally {
      ledgerDown = false;
    }
    expect(r.statusCode, r.body).toBe(503);
    expect(r.json().error).toMatchObject({
      code: 'NOT_READY',
      message: expect.stringMatching(/^no token created: the audit ledger did not record it/),
      details: { applied: false, recorded: false, action: 'token.create' },
    });
    expect(r.body).not.toMatch(/pgS3cretPw|k3yPass|xh_/);
    expect((await get('/v1/tokens')).map((t: { name: string }) => t.name)).not.toContain('unaudited');
    expect(lines.join('\n')).not.toMatch(/pgS3cretPw|k3yPass/);
    // the ledger back: created, audited
    const ok = await app.inject({
      method: 'POST',
      url: '/v1/tokens',
      headers: auth,
      payload: { name: 'unaudited', role: 'viewer' },
    });
    expect(ok.statusCode).toBe(201);
    expect(ports.auditLog.at(-1)).toMatchObject({ action: 'token.create', target: ok.json().info.id });
  });

  it('token create whose revoke fails as well: 500 AUDIT_UNRECORDED naming the token id, never its value', async () => {
    const own = memoryPorts({ venues: cfg.venues, policy: cfg.policy, adminToken: ADMIN });
    const t = own.tokens;
    let created = '';
    const srv = await buildApiServer({
      ports: {
        ...own,
        tokens: {
          verify: (x) => t.verify(x),
          list: () => t.list(),
          create: async (q, a) => {
            const r = await t.create(q, a);
            created = r.token;
            return r;
          },
          setRole: (id, role, a) => t.setRole(id, role, a),
          revoke: async () => {
            throw new Error('EROFS: read-only file system');
          },
        },
        audit: {
          ...own.audit,
          record: async () => {
            throw new Error(LEDGER_DOWN);
          },
        },
      },
      logger: false,
    });
    try {
      const r = await srv.inject({
        method: 'POST',
        url: '/v1/tokens',
        headers: auth,
        payload: { name: 'stuck', role: 'viewer' },
      });
      expect(r.statusCode, r.body).toBe(500);
      const id = (await t.list()).find((x) => x.name === 'stuck')?.id;
      expect(id).toBeDefined();
      expect(r.json().error).toMatchObject({
        code: 'AUDIT_UNRECORDED',
        message: expect.stringContaining(`token ${id} created and revoking it again failed`),
        details: { applied: true, recorded: false, action: 'token.create', target: id },
      });
      expect(created).not.toBe('');
      expect(r.body).not.toContain(created);
    } finally {
      await srv.close();
    }
  });
});

/** An API whose audit port's list throws `err`, logging every line into `lines`. */
async function failingAuditServer(err: Error) {
  const lines: string[] = [];
  const ports = memoryPorts({ venues: cfg.venues, policy: cfg.policy, adminToken: ADMIN });
  const app = await buildApiServer({
    ports: {
      ...ports,
      audit: {
        ...ports.audit,
        list: async () => {
          throw err;
        },
      },
    },
    logger: pino(
      { level: 'info', redact: { paths: REDACT_PATHS, censor: '[redacted]' } },
      { write: (line: string) => void lines.push(line) },
    ),
  });
  return { app, lines };
}

describe('a port that fails with an error the API does not know', () => {
  it('answers 500 INTERNAL and logs the error with its credentials masked, its stack frames kept', async () => {
    const { app, lines } = await failingAuditServer(new Error(LEDGER_DOWN));
    try {
      const r = await app.inject({ url: '/v1/audit', headers: { authorization: `Bearer ${ADMIN}` } });
      expect(r.statusCode).toBe(500);
      expect(r.json().error.code).toBe('INTERNAL');
      expect(r.body).not.toMatch(/pgS3cretPw|k3yPass|ECONNREFUSED/);
      const log = lines.find((l) => l.includes('unhandled error')) ?? '';
      expect(log).toContain('ECONNREFUSED postgres://[redacted]@10.4.4.4:5432');
      expect(log).toMatch(/"stack":"\s*at /);
      expect(lines.join('\n')).not.toMatch(/pgS3cretPw|k3yPass/);
    } finally {
      await app.close();
    }
  });
});

/**
 * Regression (a Postgres outage drill): a ledger-backed route answered 500 INTERNAL, logged as an
 * unhandled error with its stack, while the database was down; it is a 503 to try again.
 */
describe('a port that fails because the ledger cannot be reached', () => {
  it('answers 503 NOT_READY pointing at /v1/ready, and logs a warning with the URL masked', async () => {
    const { app, lines } = await failingAuditServer(
      Object.assign(new Error(LEDGER_DOWN), { code: 'ECONNREFUSED' }),
    );
    try {
      const r = await app.inject({ url: '/v1/audit', headers: { authorization: `Bearer ${ADMIN}` } });
      expect(r.statusCode).toBe(503);
      expect(r.json().error.code).toBe('NOT_READY');
      expect(r.json().error.message).toMatch(/the ledger database or Redis\) cannot be reached.*\/v1\/ready/);
      expect(r.body).not.toMatch(/pgS3cretPw|k3yPass|ECONNREFUSED/);
      const log = lines.find((l) => l.includes('backing store unavailable')) ?? '';
      expect(log).toContain('"level":40');
      expect(log).toContain('ECONNREFUSED postgres://[redacted]@10.4.4.4:5432');
      expect(lines.join('\n')).not.toMatch(/pgS3cretPw|k3yPass|unhandled error/);
    } finally {
      await app.close();
    }
  });
});
