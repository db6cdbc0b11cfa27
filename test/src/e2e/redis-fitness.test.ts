import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '@xhedge/config';
import {
  freePort,
  hasRedisServer,
  type OwnRedis,
  silentRedisProxy,
  spawnRedisServer,
} from '@xhedge/execution/testing';
import { startRun } from '@xhedge/runtime';
import { postgresReachable, TEST_PG_URL } from '@xhedge/store';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * A Redis that may evict keys can drop order jobs and their locks without a trace: a run refuses it
 * where funds are real, and on paper runs but reports itself not ready.
 */
const hasRedis = hasRedisServer();
const dir = mkdtempSync(join(tmpdir(), 'xhedge-redis-fit-'));
const profile = (file: string, edit: (t: string) => string) =>
  parseConfig(
    edit(readFileSync(new URL(`../../../configs/profiles/${file}`, import.meta.url), 'utf8'))
      .replace(/^name: .*$/m, `name: fit-${process.pid}`)
      .replace(/^dataDir: .*$/m, `dataDir: ${join(dir, file)}`),
    file,
  );

describe.runIf(hasRedis)('a run on an evicting Redis', () => {
  let server: OwnRedis | undefined;
  let url = '';
  beforeAll(async () => {
    server = await spawnRedisServer(['--maxmemory-policy', 'allkeys-lru']);
    url = server.url;
  });
  afterAll(() => {
    server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses to start with venues holding real funds, naming the setting', async () => {
    // the local-chain profile moved off the dev chain: real funds as far as xhedge can tell
    const config = profile('local-chains.yaml', (t) => t.replaceAll('evm:31337', 'evm:42161'));
    await expect(
      startRun({ config, env: { REDIS_URL: url }, port: 0, logger: pino({ level: 'silent' }) }),
    ).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringMatching(/maxmemory-policy is allkeys-lru.*noeviction/),
    });
  });

  it('runs a paper profile but reports not ready, saying why to a token holder', async () => {
    const token = `xh_fitness_${process.pid}_token`;
    const run = await startRun({
      config: profile('paper.yaml', (t) => t),
      env: { REDIS_URL: url, XHEDGE_API_TOKEN: token },
      port: 0,
      logger: pino({ level: 'silent' }),
    });
    try {
      type Ready = { checks: { name: string; ok: boolean; detail?: string }[] };
      const res = await fetch(`${run.apiUrl}/v1/ready`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(503);
      const body = (await res.json()) as Ready;
      expect(body.checks.find((c) => c.name === 'redis')).toMatchObject({
        ok: false,
        detail: expect.stringMatching(/maxmemory-policy is allkeys-lru/),
      });
      // without a token: which part is not ready, no detail (internal settings, hosts)
      const anon = await fetch(`${run.apiUrl}/v1/ready`);
      expect(anon.status).toBe(503);
      const bare = (await anon.json()) as Ready;
      expect(bare.checks.find((c) => c.name === 'redis')).toEqual({ name: 'redis', ok: false });
    } finally {
      await run.stop();
    }
  }, 60_000);
});

describe.runIf(hasRedis)('a run on a Redis with a password', () => {
  let server: OwnRedis | undefined;
  afterAll(() => server?.stop());

  it('never writes the password to its log, even where it warns about that Redis', async () => {
    const password = `pw-${process.pid}-never-logged`;
    server = await spawnRedisServer(['--maxmemory-policy', 'allkeys-lru']);
    // the password is set once the server answers (the helper's readiness check has none)
    const admin = new Redis(server.url);
    await admin.config('SET', 'requirepass', password);
    admin.disconnect();
    const lines: string[] = [];
    const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(s) });
    const run = await startRun({
      config: profile('paper.yaml', (t) => t),
      env: { REDIS_URL: server.url.replace('redis://', `redis://:${password}@`) },
      port: 0,
      logger,
    });
    await run.stop();
    const log = lines.join('');
    // the run did log about this Redis (the eviction policy), with its address, not its password
    expect(log).toMatch(/maxmemory-policy is allkeys-lru/);
    expect(log).toContain(`127.0.0.1:${server.port}`);
    expect(log).not.toContain(password);
  }, 60_000);
});

describe('a run whose REDIS_URL does not answer', () => {
  it('nothing listening there: refused at start as a configuration error naming REDIS_URL', async () => {
    const port = await freePort();
    await expect(
      startRun({
        config: profile('paper.yaml', (t) => t),
        env: { REDIS_URL: `redis://:not-logged-${process.pid}@127.0.0.1:${port}` },
        port: 0,
        logger: pino({ level: 'silent' }),
      }),
    ).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringMatching(
        new RegExp(
          `^REDIS_URL redis://:\\*\\*\\*@127\\.0\\.0\\.1:${port} does not answer: .+; check its host`,
        ),
      ),
    });
  }, 60_000);

  it.runIf(hasRedis)(
    'a wrong password: refused at start, the password never in the message',
    async () => {
      const server = await spawnRedisServer([]);
      try {
        const admin = new Redis(server.url);
        await admin.config('SET', 'requirepass', 'the-right-one');
        admin.disconnect();
        const wrong = `wrong-${process.pid}`;
        const err = await startRun({
          config: profile('paper.yaml', (t) => t),
          env: { REDIS_URL: server.url.replace('redis://', `redis://:${wrong}@`) },
          port: 0,
          logger: pino({ level: 'silent' }),
        }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringMatching(/WRONGPASS/) });
        expect(String((err as Error).message)).not.toContain(wrong);
      } finally {
        server.stop();
      }
    },
    60_000,
  );
});

describe('a run whose DATABASE_URL is wrong', () => {
  const start = (url: string) =>
    startRun({
      config: profile('paper.yaml', (t) => t),
      env: { DATABASE_URL: url },
      port: 0,
      logger: pino({ level: 'silent' }),
    }).then(
      () => undefined,
      (e: unknown) => e,
    );

  it('nothing listening there: a configuration error naming DATABASE_URL, the password masked', async () => {
    const port = await freePort();
    const err = await start(`postgres://postgres:pw-${process.pid}@127.0.0.1:${port}/test`);
    expect(err).toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringMatching(
        new RegExp(
          `^DATABASE_URL postgres://postgres:\\*\\*\\*@127\\.0\\.0\\.1:${port}/test refused the ledger: .*ECONNREFUSED`,
        ),
      ),
    });
    expect(String((err as Error).message)).not.toContain(`pw-${process.pid}`);
  }, 60_000);

  it("a database that does not exist, on the machine's Postgres: a configuration error saying so", async (ctx) => {
    if (!(await postgresReachable())) {
      console.warn('[run endpoints] skipped: no Postgres reachable at TEST_PG_URL');
      ctx.skip();
    }
    const url = new URL(TEST_PG_URL);
    url.pathname = `/xhedge_no_such_db_${process.pid}`;
    expect(await start(url.toString())).toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringMatching(
        /^DATABASE_URL .* refused the ledger: database "xhedge_no_such_db_\d+" does not exist/,
      ),
    });
  }, 60_000);
});

if (!hasRedis)
  it('a run on an evicting Redis (not run: no redis-server binary on this machine)', () => {
    console.warn('[redis fitness] not run: redis-server binary not found');
  });

describe.runIf(hasRedis)('a run whose Redis stops answering (a silent network)', () => {
  let server: OwnRedis | undefined;
  beforeAll(async () => {
    server = await spawnRedisServer();
  });
  afterAll(() => server?.stop());

  it('/v1/ready says not ready within seconds, naming Redis, instead of hanging', async () => {
    const proxy = await silentRedisProxy((server as OwnRedis).url);
    const token = `xh_silent_${process.pid}_token`;
    const run = await startRun({
      config: profile('paper.yaml', (t) => t.replace(/^name: .*$/m, `name: silent-${process.pid}`)),
      env: { REDIS_URL: `redis://127.0.0.1:${proxy.port}`, XHEDGE_API_TOKEN: token },
      port: 0,
      logger: pino({ level: 'silent' }),
    });
    try {
      proxy.cut();
      const res = await Promise.race([
        fetch(`${run.apiUrl}/v1/ready`, { headers: { authorization: `Bearer ${token}` } }),
        new Promise<'hung'>((r) => setTimeout(() => r('hung'), 20_000)),
      ]);
      expect(res).not.toBe('hung');
      const r = res as Response;
      expect(r.status).toBe(503);
      const body = (await r.json()) as { checks: { name: string; ok: boolean; detail?: string }[] };
      expect(body.checks.find((c) => c.name === 'redis')).toMatchObject({
        ok: false,
        detail: expect.stringMatching(/no answer within \d+ ms/),
      });
    } finally {
      // the network heals (a plain forwarder on the same port): the run reconnects and stops as usual
      await proxy.close();
      const target = new URL((server as OwnRedis).url);
      const heal = createServer((a) => {
        const b = connect(Number(target.port), target.hostname);
        a.pipe(b).pipe(a);
        a.on('error', () => b.destroy());
        b.on('error', () => a.destroy());
      });
      await new Promise<void>((r) => heal.listen(proxy.port, '127.0.0.1', () => r()));
      await run.stop();
      await new Promise((r) => heal.close(r));
    }
  }, 90_000);
});
