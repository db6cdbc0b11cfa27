import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '@xhedge/config';
import { connectRedis, type RedisEndpoint } from '@xhedge/execution';
import { type Run, startRun } from '@xhedge/runtime';
import { openDatabase } from '@xhedge/store';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { listening } from './listening.ts';

const PG_URL = 'postgres://postgres@127.0.0.1:5432/test';
const hasPostgres = await listening(5432);
if (!hasPostgres)
  console.warn('roles.test: SKIPPED, no PostgreSQL on 127.0.0.1:5432 (split roles need a shared database)');
const dir = mkdtempSync(join(tmpdir(), 'xhedge-roles-'));
const schema = `xhedge_roles_${process.pid}`;
const runs: Run[] = [];
let embedded: RedisEndpoint | undefined;
let sharedRedisUrl: string | undefined;

afterAll(async () => {
  for (const r of runs.reverse()) await r.stop();
  if (hasPostgres) {
    const db = await openDatabase({ url: PG_URL, schema, migrate: false });
    await db.dropSchema();
    await db.close();
  }
  if (sharedRedisUrl) {
    // The run's keys (controls, config, queues) on the shared Redis go with the test.
    const ep = await connectRedis({ url: sharedRedisUrl });
    const c = ep.client();
    const keys = await c.keys(`{xhedge}:roles-${process.pid}*`);
    if (keys.length > 0) await c.del(...keys);
    await c.quit();
  }
  await embedded?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!hasPostgres)(
  'one role per process: api, orchestrator and worker share Redis and Postgres',
  () => {
    it('the API serves what the orchestrator plans and the worker executes; its kill switch reaches the worker', async () => {
      let redisUrl = 'redis://127.0.0.1:6379';
      if (!(await listening(6379))) {
        console.warn('roles.test: no Redis on 6379; using an embedded js-redis-server shared by URL');
        embedded = await connectRedis({});
        redisUrl = embedded.url;
      } else sharedRedisUrl = redisUrl;
      const config = parseConfig(
        readFileSync(new URL('../../../configs/profiles/paper.yaml', import.meta.url), 'utf8')
          .replace(/^name: .*$/m, `name: roles-${process.pid}`)
          .replace(/^dataDir: .*$/m, `dataDir: ${join(dir, 'data')}`),
      );
      const ADMIN = `roles-admin-token-${process.pid}-0123456789`;
      const env = { REDIS_URL: redisUrl, DATABASE_URL: PG_URL, XHEDGE_API_TOKEN: ADMIN };
      // the profile's database limits reach the ledger's Postgres connections
      config.database = { poolSize: 4, statementTimeoutMs: 23_456, queryTimeoutMs: 30_000 };
      const common = { config, env, databaseSchema: schema, logger: pino({ level: 'silent' }) };
      const api = await startRun({ ...common, role: 'api', port: 0 });
      runs.push(api);
      const call = async (path: string, init: RequestInit = {}) => {
        const r = await fetch(`${api.apiUrl}${path}`, {
          ...init,
          headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
        });
        return { status: r.status, json: (await r.json()) as Record<string, unknown> };
      };
      expect(api.admin?.source).toBe('env');
      const setting = await api.ledger.db
        .selectNoFrom((eb) => eb.fn<string>('current_setting', [eb.val('statement_timeout')]).as('t'))
        .executeTakeFirstOrThrow();
      expect(setting.t).toBe('23456ms');
      expect((await call('/v1/ready')).status).toBe(503);

      runs.push(await startRun({ ...common, role: 'orchestrator' }));
      const worker = await startRun({ ...common, role: 'worker', metricsPort: 0 });
      runs.push(worker);
      const until = async (what: string, fn: () => Promise<boolean>) => {
        const deadline = Date.now() + 30_000;
        while (!(await fn())) {
          if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
          await new Promise((r) => setTimeout(r, 250));
        }
      };
      await until('readiness', async () => (await call('/v1/ready')).status === 200);
      expect(((await call('/v1/risk/snapshot')).json.seq as number) > 0).toBe(true);
      await until(
        'a filled hedge',
        async () => ((await call('/v1/hedges/jobs?status=filled')).json as unknown as unknown[]).length > 0,
      );

      // The worker's own counters are served by the worker (the API process never sees them).
      expect(worker.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      await until('the worker counting its fills', async () =>
        /^xhedge_orders_total\{venue="[\w-]+",status="filled"\} [1-9]/m.test(
          await (await fetch(`${worker.metricsUrl}/metrics`)).text(),
        ),
      );
      expect((await fetch(`${worker.metricsUrl}/healthz`)).status).toBe(200);
      expect((await fetch(`${worker.metricsUrl}/v1/health`)).status).toBe(404);

      const trip = await call('/v1/kill-switch/trip', {
        method: 'POST',
        body: JSON.stringify({ scope: 'global', reason: 'roles test' }),
      });
      expect(trip.status).toBe(200);
      // The worker process reads the same Redis: it reports the switch engaged.
      expect((await worker.killSwitch.engaged()).map((e) => e.scope)).toEqual(['global']);
      const reset = await call('/v1/kill-switch/reset', {
        method: 'POST',
        body: JSON.stringify({ scope: 'global', reason: 'roles test done' }),
      });
      expect(reset.status).toBe(200);
    });
  },
);
