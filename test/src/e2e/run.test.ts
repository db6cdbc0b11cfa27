import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, type XhedgeConfig } from '@xhedge/config';
import { type Run, startRun } from '@xhedge/runtime';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { malformedRequests, type OpenApiDoc } from './openapi-fuzz.ts';
import { withTestPolicy } from './test-policy.ts';

/**
 * The whole system in this process, as `pnpm start` runs it with no setup: embedded Redis
 * (js-redis-server), PGlite in a temporary data folder, the paper venues on the simulated market,
 * the leader-leased planning loop, the workers and the API on a free port.
 */
const paper = readFileSync(new URL('../../../configs/profiles/paper.yaml', import.meta.url), 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'xhedge-e2e-'));
/** Market speed: one simulated minute is 6 s of wall time. */
const SPEED = 10;

function e2eConfig(): XhedgeConfig {
  // Its own narrow bands, so hedges keep coming (the kill-switch test needs one after the reset).
  const text = withTestPolicy(paper)
    .replace(/^name: .*$/m, `name: e2e-${process.pid}`)
    .replace(/^dataDir: .*$/m, `dataDir: ${join(dir, 'data')}`)
    .replace(/^ {2}speed: .*$/m, `  speed: ${SPEED}`);
  return parseConfig(text, 'e2e.yaml');
}

let run: Run;
let base: string;
const tokens = { admin: '', operator: '', viewer: '' };

async function api(method: string, path: string, opts: { token?: string; body?: unknown } = {}) {
  const headers: Record<string, string> = {};
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${base}${path}`, {
    method,
    headers,
    ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : {}, text };
}

/**
 * configs/alerts/xhedge.rules.yml against a live /metrics: every metric a rule reads is served (a
 * renamed metric would leave its alert silently never firing), and every rule says how bad it is
 * and what to do.
 */
function checkAlertRules(metricsText: string): void {
  const rules = parseYaml(
    readFileSync(new URL('../../../configs/alerts/xhedge.rules.yml', import.meta.url), 'utf8'),
  ) as { groups: { name: string; rules: Record<string, unknown>[] }[] };
  const served = new Set([...metricsText.matchAll(/^# TYPE (\S+) (\w+)$/gm)].map((m) => m[1]));
  const problems: string[] = [];
  let n = 0;
  for (const g of rules.groups) {
    for (const r of g.rules) {
      n++;
      const name = String(r.alert);
      const labels = (r.labels ?? {}) as Record<string, string>;
      const notes = (r.annotations ?? {}) as Record<string, string>;
      if (!['page', 'ticket'].includes(labels.severity ?? '')) problems.push(`${name}: severity`);
      if (!notes.summary || !notes.description) problems.push(`${name}: summary and description`);
      // only xhedge's own metrics must be served; Prometheus's own `up` (per scraped target) is not
      const used = String(r.expr).match(/\bxhedge_\w+/g) ?? [];
      const promOwn = /(^|[^\w])up\{job="[^"]+"\}/.test(String(r.expr));
      if (used.length === 0 && !promOwn) problems.push(`${name}: reads no xhedge metric`);
      for (const m of used) {
        const family = m.replace(/_(bucket|sum|count)$/, '');
        if (!served.has(m) && !served.has(family)) problems.push(`${name}: ${m} is not served at /metrics`);
      }
    }
  }
  expect(problems).toEqual([]);
  expect(n).toBeGreaterThanOrEqual(10);
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

interface Job {
  id: string;
  status: string;
  venue: string;
  attempts: number;
}

beforeAll(async () => {
  run = await startRun({
    config: e2eConfig(),
    env: {},
    port: 0,
    logger: pino({ level: 'silent' }),
    rateLimitPerMinute: 1_000_000,
  });
  base = run.apiUrl ?? '';
  expect(run.admin?.source).toBe('generated');
  tokens.admin = run.admin?.token ?? '';
  for (const role of ['operator', 'viewer'] as const) {
    const r = await api('POST', '/v1/tokens', { token: tokens.admin, body: { name: `e2e-${role}`, role } });
    expect(r.status).toBe(201);
    tokens[role] = r.json.token as string;
  }
});

afterAll(async () => {
  await run?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('xhedge end to end on paper venues (embedded Redis and PGlite)', () => {
  it('becomes ready and serves a risk snapshot with Greeks per underlying', async () => {
    await until('readiness', async () => ((await api('GET', '/v1/ready')).status === 200 ? true : undefined));
    const s = await api('GET', '/v1/risk/snapshot', { token: tokens.viewer });
    expect(s.status).toBe(200);
    // SOL is listed but the demo book holds none of it.
    expect(Object.keys(s.json.underlyings as object)).toEqual(expect.arrayContaining(['BTC', 'ETH']));
    const btc = (s.json.underlyings as Record<string, { gamma: number; vegaPerVolPoint: number }>).BTC;
    // The demo book is short options: negative gamma and vega.
    expect(btc?.gamma).toBeLessThan(0);
    expect(btc?.vegaPerVolPoint).toBeLessThan(0);
  });

  it('executes a hedge on the paper venues within a simulated minute', async () => {
    const startSimMs = run.clock.nowMs();
    const filled = await until('a filled hedge', async () => {
      const r = await api('GET', '/v1/hedges/jobs?status=filled&limit=5', { token: tokens.viewer });
      return (r.json as unknown as Job[])[0];
    });
    expect(filled.attempts).toBeGreaterThanOrEqual(1);
    const order = await run.ledger.getOrderByIntent(filled.id);
    expect(order?.status).toBe('filled');
    expect(Number(order?.filledSizeBase)).toBeGreaterThan(0);
    // The venue has the fill too.
    const venue = run.venues.find((v) => v.id === filled.venue);
    const fills = await venue?.fetchFills({ clientOrderId: order?.clientOrderId ?? '' });
    expect(fills?.length).toBeGreaterThan(0);
    const plan = await api('GET', `/v1/hedges/plans/${(await run.ledger.getIntent(filled.id))?.planId}`, {
      token: tokens.viewer,
    });
    expect(plan.status).toBe(200);
    // Planned from the run's market: the fill came within one simulated minute of the first tick.
    expect((order?.updatedAtMs ?? Number.POSITIVE_INFINITY) - startSimMs).toBeLessThan(60_000);
  });

  it('auth matrix: every role against every route of the live OpenAPI document', async () => {
    const doc = (await api('GET', '/docs/json')).json as unknown as OpenApiDoc;
    const rank = { public: 0, viewer: 1, operator: 2, admin: 3 } as const;
    const need = (method: string, path: string): keyof typeof rank =>
      path === '/v1/health' || path === '/v1/ready' || (path === '/v1/session' && method === 'delete')
        ? 'public'
        : path === '/v1/session'
          ? 'viewer' // any token opens a read-only browser session
          : path.startsWith('/v1/tokens')
            ? 'admin'
            : method === 'get'
              ? 'viewer'
              : 'operator';
    const sample: Record<string, string> = {
      id: 'gmx-arb',
      underlying: 'BTC',
      chain: 'evm:42161',
      name: 'venue:gmx-arb',
    };
    const wrong: string[] = [];
    let checked = 0;
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const method of Object.keys(ops)) {
        const url = path.replace(/\{(\w+)\}/g, (_m, k: string) => encodeURIComponent(sample[k] ?? 'x'));
        for (const who of ['none', 'viewer', 'operator', 'admin'] as const) {
          const allowed = rank[who === 'none' ? 'public' : who] >= rank[need(method, path)];
          if (allowed && path === '/v1/risk/stream') continue; // an allowed stream never ends
          const r = await fetch(`${base}${url}`, {
            method: method.toUpperCase(),
            headers: who === 'none' ? {} : { authorization: `Bearer ${tokens[who]}` },
          });
          await r.arrayBuffer();
          checked++;
          const ok = allowed
            ? r.status !== 401 && r.status !== 403
            : r.status === (who === 'none' ? 401 : 403);
          if (!ok) wrong.push(`${method} ${path} as ${who}: ${r.status}`);
        }
      }
    }
    expect(wrong).toEqual([]);
    expect(checked).toBeGreaterThan(100);
    // Outside the OpenAPI document: Prometheus metrics and Bull Board need a viewer token too.
    for (const path of ['/metrics', '/admin/queues']) {
      expect((await fetch(`${base}${path}`)).status).toBe(401);
      const ok = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${tokens.viewer}` } });
      expect(ok.status).toBe(200);
      const text = await ok.text();
      if (path === '/metrics') {
        expect(text).toMatch(/xhedge_book_greek\{underlying="BTC",greek="delta"\}/);
        expect(text).toMatch(
          /xhedge_hedges_total\{venue="[a-z-]+",underlying="[A-Z]+",status="filled"\} [1-9]/,
        );
        expect(text).toMatch(/xhedge_queue_jobs\{queue="orders-gmx-arb",state="completed"\}/);
        // the run restored its control state at start and keeps doing so (the alert watches this one)
        const restoredAt = Number(/^xhedge_control_state_restored_timestamp_seconds (\S+)$/m.exec(text)?.[1]);
        expect(Date.now() / 1000 - restoredAt).toBeLessThan(60);
        checkAlertRules(text);
      }
    }
  });

  it('fuzz: 1,000+ malformed requests from the OpenAPI document all get a 4xx; the process stays up', async () => {
    const doc = (await api('GET', '/docs/json')).json as unknown as OpenApiDoc;
    const reqs = malformedRequests(doc, {
      seed: 7,
      perOperation: 40,
      headers: { authorization: `Bearer ${tokens.admin}` },
      prefix: '/v1/',
    });
    expect(reqs.length).toBeGreaterThanOrEqual(1000);
    const bad: string[] = [];
    const statuses = new Map<number, number>();
    for (let i = 0; i < reqs.length; i += 8) {
      await Promise.all(
        reqs.slice(i, i + 8).map(async (q) => {
          const r = await fetch(`${base}${q.url}`, {
            method: q.method,
            headers: q.headers,
            ...(q.body !== undefined ? { body: q.body } : {}),
          });
          const text = await r.text();
          statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
          const shapeOk = (() => {
            try {
              const e = (JSON.parse(text) as { error?: { code?: unknown } }).error;
              return typeof e?.code === 'string';
            } catch {
              return false;
            }
          })();
          if (r.status < 400 || r.status >= 500 || !shapeOk)
            bad.push(`${q.method} ${q.url.slice(0, 80)} (${q.why}): ${r.status} ${text.slice(0, 120)}`);
        }),
      );
    }
    expect(bad).toEqual([]);
    expect((await api('GET', '/v1/health')).status).toBe(200);
    const seq = (await api('GET', '/v1/risk/snapshot', { token: tokens.viewer })).json.seq as number;
    await until('a newer snapshot', async () => {
      const s = await api('GET', '/v1/risk/snapshot', { token: tokens.viewer });
      return (s.json.seq as number) > seq ? true : undefined;
    });
    // Nothing the fuzzer sent changed anything: no audit entry besides the token creations.
    const audit = await api('GET', '/v1/audit?limit=100', { token: tokens.viewer });
    expect((audit.json as unknown as { action: string }[]).map((a) => a.action)).not.toContain('venue.add');
    console.log(`fuzz: ${reqs.length} requests, statuses ${JSON.stringify(Object.fromEntries(statuses))}`);
  });

  it('kill switch: no order is sent after it is tripped; hedging resumes after reset', async () => {
    const trip = await api('POST', '/v1/kill-switch/trip', {
      token: tokens.operator,
      body: { scope: 'global', reason: 'e2e: stop everything' },
    });
    expect(trip.status).toBe(200);
    expect(trip.json.engaged).toBe(true);
    const trippedAtMs = run.clock.nowMs();
    // Let the loop run for 20 simulated seconds (many ticks) under the switch.
    const ticksBefore = run.planner?.ticks ?? 0;
    await until('ticks under the kill switch', async () =>
      (run.planner?.ticks ?? 0) >= ticksBefore + 5 && run.clock.nowMs() - trippedAtMs > 20_000
        ? true
        : undefined,
    );
    const sentAfter = (await run.ledger.listOrders({ limit: 5000 })).filter(
      (o) => (o.lastSendAtMs ?? 0) > trippedAtMs,
    );
    expect(sentAfter.map((o) => `${o.intentId} ${o.status}`)).toEqual([]);
    const controls = await api('GET', '/v1/controls', { token: tokens.viewer });
    expect((controls.json.killSwitches as { scope: string; engaged: boolean }[])[0]).toMatchObject({
      scope: 'global',
      engaged: true,
    });

    const reset = await api('POST', '/v1/kill-switch/reset', {
      token: tokens.operator,
      body: { scope: 'global', reason: 'e2e: resume' },
    });
    expect(reset.status).toBe(200);
    const resetAtMs = run.clock.nowMs();
    const resumed = await until(
      'an order sent after the reset',
      async () => (await run.ledger.listOrders({ limit: 50 })).find((o) => (o.lastSendAtMs ?? 0) > resetAtMs),
      90_000,
    );
    expect(resumed.sendAttempts).toBeGreaterThanOrEqual(1);
    const audit = await api('GET', '/v1/audit?limit=200', { token: tokens.viewer });
    const actions = (audit.json as unknown as { action: string; actor: string }[]).filter((a) =>
      a.action.startsWith('kill-switch.'),
    );
    // One entry per change (the kill switch writes it; the API does not add a second one).
    expect(actions.map((a) => a.action)).toEqual(['kill-switch.engage', 'kill-switch.release']);
    expect(actions.map((a) => a.actor)).toEqual(['operator:e2e-operator', 'operator:e2e-operator']);
  }, 150_000);

  it('kill switch through the API: allowRiskReducing reaches the switch in force', async () => {
    const venue = run.venues[0]?.id as string;
    const trip = await api('POST', '/v1/kill-switch/trip', {
      token: tokens.operator,
      body: { scope: 'venue', target: venue, reason: 'e2e: reduce only', allowRiskReducing: true },
    });
    expect(trip.status).toBe(200);
    expect(trip.json).toMatchObject({
      scope: 'venue',
      target: venue,
      engaged: true,
      allowRiskReducing: true,
    });
    const inForce = (await run.killSwitch.engaged()).find((e) => e.scope === `venue:${venue}`);
    expect(inForce?.allowRiskReducing).toBe(true);
    const reset = await api('POST', '/v1/kill-switch/reset', {
      token: tokens.operator,
      body: { scope: 'venue', target: venue, reason: 'e2e: done' },
    });
    expect(reset.status).toBe(200);
  });

  it('stops cleanly: the API is gone afterwards', async () => {
    await run.stop();
    await expect(fetch(`${base}/v1/health`)).rejects.toThrow();
  });
});
