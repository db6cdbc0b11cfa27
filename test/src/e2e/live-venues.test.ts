import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, type XhedgeConfig } from '@xhedge/config';
import { connectRedis, type RedisEndpoint } from '@xhedge/execution';
import { type Run, startRun } from '@xhedge/runtime';
import { openDatabase } from '@xhedge/store';
import type { PaperVenue } from '@xhedge/venue-paper';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listening } from './listening.ts';
import { withTestPolicy } from './test-policy.ts';

/**
 * Venues operators add through the API while xhedge runs take effect without a restart: the run
 * (paper profile at 60×, narrow test bands, the machine's Redis, PGlite) gets a new paper perp venue
 * by POST /v1/venues, the other delta venues are disabled, and the next hedges fill on the new venue;
 * risk reads its positions and keeps reading the disabled venues'. New params (PUT) rebuild the adapter
 * between orders. With split roles (shared Redis and Postgres) the api role only writes the config, and
 * the orchestrator and worker processes each build the venue for their own parts.
 */
const PAPER = readFileSync(new URL('../../../configs/profiles/paper.yaml', import.meta.url), 'utf8');
let REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const NAME = `live-venues-${process.pid}`;
const SPLIT = `live-venues-split-${process.pid}`;
const PG_URL = 'postgres://postgres@127.0.0.1:5432/test';
const SCHEMA = `xhedge_live_venues_${process.pid}`;
const dir = mkdtempSync(join(tmpdir(), 'xhedge-live-venues-'));
const split: Run[] = [];
let run: Run;
let base = '';
let token = '';
let ep: RedisEndpoint;

const hasPostgres = await listening(5432);
if (!hasPostgres)
  console.warn(
    'live-venues.test: split roles SKIPPED, no PostgreSQL on 127.0.0.1:5432 (they share a database)',
  );

function profile(name: string): XhedgeConfig {
  return parseConfig(
    withTestPolicy(PAPER)
      .replace(/^name: .*$/m, `name: ${name}`)
      .replace(/^dataDir: .*$/m, `dataDir: ${join(dir, name)}`),
    `${name}.yaml`,
  );
}

async function api(method: string, path: string, body?: unknown, at = base, bearer = token) {
  const res = await fetch(`${at}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${bearer}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, json: (text ? JSON.parse(text) : {}) as unknown };
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Job {
  id: string;
  status: string;
  venue: string;
  underlying: string;
}
interface Snapshot {
  seq: number;
  underlyings: Record<string, { byVenue: Record<string, unknown> }>;
}

beforeAll(async () => {
  if (process.env.TEST_REDIS_URL === undefined && !(await listening(6379))) {
    console.warn('live-venues.test: no Redis on 6379; using an embedded js-redis-server shared by URL');
    ep = await connectRedis({});
    REDIS_URL = ep.url;
  } else ep = await connectRedis({ url: REDIS_URL });
  run = await startRun({
    config: profile(NAME),
    env: { REDIS_URL },
    port: 0,
    logger: pino({ level: 'silent' }),
    rateLimitPerMinute: 1_000_000,
  });
  base = run.apiUrl ?? '';
  token = run.admin?.token ?? '';
  expect(token).not.toBe('');
});

afterAll(async () => {
  for (const r of [run, ...split].reverse()) await r?.stop();
  if (hasPostgres) {
    const db = await openDatabase({ url: PG_URL, schema: SCHEMA, migrate: false });
    await db.dropSchema();
    await db.close();
  }
  if (ep) {
    const c = ep.client();
    for (const name of [NAME, SPLIT]) {
      const keys = await c.keys(`{xhedge}:${name}*`);
      if (keys.length > 0) await c.del(...keys);
    }
    await c.quit();
    await ep.close();
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('a venue added through the API joins the running xhedge', () => {
  it('is read by risk and hedged on, with the other delta venues disabled, without a restart', async () => {
    await until('readiness', async () => ((await api('GET', '/v1/ready')).status === 200 ? true : undefined));
    expect(run.venues.map((v) => v.id)).toEqual(['lyra-arb', 'gmx-arb', 'drift-sol', 'uni-eth']);

    const add = await api('POST', '/v1/venues', {
      id: 'drift-live',
      kind: 'paper-drift',
      chain: 'solana:mainnet-beta',
      params: { takerFeeBps: 8 },
    });
    expect(add.status).toBe(201);
    const live = await until('the new venue in the run', async () =>
      run.venues.find((v) => v.id === 'drift-live'),
    );
    expect(live.chain).toBe('solana:mainnet-beta');
    // A paper venue added while running joins the paper bridge (routing may move collateral to it);
    // here its collateral arrives as a deposit, so the hedges below need no transfer.
    await until('drift-live on the paper bridge', async () =>
      run.bridge?.venueIds.includes('drift-live') ? true : undefined,
    );
    expect(run.bridge?.venueIds).toEqual(['lyra-arb', 'gmx-arb', 'drift-sol', 'uni-eth', 'drift-live']);
    await (live as PaperVenue).creditBalance('USDC', '3000000');

    // Only the new venue can take delta hedges now (lyra-arb lists options only).
    for (const id of ['gmx-arb', 'drift-sol', 'uni-eth']) {
      const r = await api('POST', `/v1/venues/${id}/disable`, { reason: 'live venue test' });
      expect(r.status).toBe(200);
    }
    // Bull Board follows: the new venue's queue is listed without a restart
    const board = (await api('GET', '/admin/queues/api/queues')).json as { queues: { name: string }[] };
    expect(board.queues.map((q) => q.name)).toContain('orders-drift-live');
    const listed = (await api('GET', '/v1/venues')).json as { id: string; enabled: boolean }[];
    expect(listed.filter((v) => v.enabled).map((v) => v.id)).toEqual(['lyra-arb', 'drift-live']);

    // (b) a hedge fills there
    const job = await until('a filled hedge on drift-live', async () => {
      const jobs = (await api('GET', '/v1/hedges/jobs?status=filled&limit=500')).json as Job[];
      return jobs.find((j) => j.venue === 'drift-live');
    });
    const order = await run.ledger.getOrderByIntent(job.id);
    expect(order?.status).toBe('filled');
    expect(Number(order?.filledSizeBase)).toBeGreaterThan(0);
    const fills = await live.fetchFills({ clientOrderId: order?.clientOrderId ?? '' });
    expect(fills.length).toBeGreaterThan(0);
    expect((await live.fetchPositions()).map((p) => p.instrument)).toContain(`${job.underlying}-USD:PERP`);

    // (a) risk reads it: a later snapshot has the new venue's position, and still the disabled venues'
    const snap = await until('a snapshot with drift-live', async () => {
      const s = (await api('GET', '/v1/risk/snapshot')).json as Snapshot;
      return s.underlyings[job.underlying]?.byVenue['drift-live'] ? s : undefined;
    });
    expect(snap.underlyings.ETH?.byVenue['drift-sol']).toBeDefined();
    expect(snap.underlyings.BTC?.byVenue['gmx-arb']).toBeDefined();
    // the disabled venues keep their adapters
    expect(run.venues.map((v) => v.id)).toEqual([
      'lyra-arb',
      'gmx-arb',
      'drift-sol',
      'uni-eth',
      'drift-live',
    ]);

    // New params: the adapter is rebuilt between orders, keeps the venue's book, and takes the next hedges.
    const held = (await live.fetchPositions()).map((p) => [p.instrument, p.sizeBase]);
    const put = await api('PUT', '/v1/venues/drift-live', {
      id: 'drift-live',
      kind: 'paper-drift',
      chain: 'solana:mainnet-beta',
      params: { takerFeeBps: 5 },
    });
    expect(put.status).toBe(200);
    const rebuilt = await until('drift-live rebuilt', async () => {
      const v = run.venues.find((x) => x.id === 'drift-live');
      return v && v !== live ? v : undefined;
    });
    const carried = new Map((await rebuilt.fetchPositions()).map((p) => [p.instrument, p.sizeBase]));
    // what the old adapter held when the PUT went in is there (later fills may have added to it)
    for (const [instrument] of held) expect(carried.has(instrument as string)).toBe(true);
    const seen = new Set(
      ((await api('GET', '/v1/hedges/jobs?status=filled&limit=500')).json as Job[]).map((j) => j.id),
    );
    const next = await until('a hedge filled on the rebuilt drift-live', async () => {
      const jobs = (await api('GET', '/v1/hedges/jobs?status=filled&limit=500')).json as Job[];
      for (const j of jobs.filter((x) => x.venue === 'drift-live' && !seen.has(x.id))) {
        const o = await run.ledger.getOrderByIntent(j.id);
        if ((await rebuilt.fetchFills({ clientOrderId: o?.clientOrderId ?? '' })).length > 0) return j;
      }
      return undefined;
    });
    expect(next.venue).toBe('drift-live');
  }, 120_000);
});

describe.skipIf(!hasPostgres)('split roles apply a venue added through the api role', () => {
  it('the orchestrator routes to it and the worker process executes on it; the api role only writes', async () => {
    const TOKEN = `live-venues-admin-${process.pid}-0123456789abcdef`;
    const common = {
      config: profile(SPLIT),
      env: { REDIS_URL, DATABASE_URL: PG_URL, XHEDGE_API_TOKEN: TOKEN },
      databaseSchema: SCHEMA,
      logger: pino({ level: 'silent' }),
    };
    const apiRun = await startRun({ ...common, role: 'api', port: 0, rateLimitPerMinute: 1_000_000 });
    split.push(apiRun);
    const orchestrator = await startRun({ ...common, role: 'orchestrator' });
    split.push(orchestrator);
    const worker = await startRun({ ...common, role: 'worker' });
    split.push(worker);
    const at = apiRun.apiUrl ?? '';
    const call = (method: string, path: string, body?: unknown) => api(method, path, body, at, TOKEN);
    await until('readiness', async () =>
      (await call('GET', '/v1/ready')).status === 200 ? true : undefined,
    );

    expect(
      (
        await call('POST', '/v1/venues', {
          id: 'drift-split',
          kind: 'paper-drift',
          chain: 'solana:mainnet-beta',
        })
      ).status,
    ).toBe(201);
    // each process running venues builds its own (paper venues are simulated per process)
    const mine = await until('the venue in the orchestrator and the worker', async () => {
      const o = orchestrator.venues.find((v) => v.id === 'drift-split');
      const w = worker.venues.find((v) => v.id === 'drift-split');
      return o && w ? { o, w } : undefined;
    });
    expect(mine.o).not.toBe(mine.w);
    expect(apiRun.venues).toEqual([]);
    for (const v of [mine.o, mine.w]) await (v as PaperVenue).creditBalance('USDC', '3000000');
    for (const id of ['gmx-arb', 'drift-sol', 'uni-eth'])
      expect((await call('POST', `/v1/venues/${id}/disable`, { reason: 'split roles test' })).status).toBe(
        200,
      );

    // planned by the orchestrator process, filled by the worker process on its copy of the venue
    const job = await until('a filled hedge on drift-split', async () => {
      const jobs = (await call('GET', '/v1/hedges/jobs?status=filled&limit=500')).json as Job[];
      return jobs.find((j) => j.venue === 'drift-split');
    });
    const order = await worker.ledger.getOrderByIntent(job.id);
    expect((await mine.w.fetchFills({ clientOrderId: order?.clientOrderId ?? '' })).length).toBeGreaterThan(
      0,
    );
    expect((await mine.o.fetchFills({ clientOrderId: order?.clientOrderId ?? '' })).length).toBe(0);
  }, 120_000);
});
