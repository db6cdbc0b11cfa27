import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '@xhedge/config';
import { postgresReachable } from '@xhedge/store';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { deploymentEndpoints } from './deployment.ts';
import { startRun } from './run.ts';

const dir = mkdtempSync(join(tmpdir(), 'xhedge-deployment-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const PAPER = readFileSync(new URL('../../../configs/profiles/paper.yaml', import.meta.url), 'utf8');
const pgOk = await postgresReachable();

describe('deployment endpoints (regression: a profile naming an env var that is not set ran on an embedded Redis and a fresh PGlite ledger)', () => {
  const profile = {
    name: 'prod',
    redis: { url: { env: 'XH_TEST_REDIS' } },
    database: { url: { env: 'XH_TEST_DB' } },
  };

  it('a URL the profile takes from an env var that is not set (or empty) is a config error naming it', () => {
    for (const env of [{}, { XH_TEST_REDIS: '', XH_TEST_DB: '' }]) {
      expect(() => deploymentEndpoints(profile, env)).toThrow(
        expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.stringMatching(/XH_TEST_REDIS/) }),
      );
    }
    expect(() => deploymentEndpoints(profile, { XH_TEST_REDIS: 'redis://127.0.0.1:6379' })).toThrow(
      expect.objectContaining({
        code: 'CONFIG_INVALID',
        message: expect.stringMatching(/database\.url.*XH_TEST_DB/),
      }),
    );
  });

  it('REDIS_URL and DATABASE_URL still win, env-named URLs resolve, and a profile naming none is embedded', () => {
    expect(
      deploymentEndpoints(profile, { REDIS_URL: 'redis://r:6379', DATABASE_URL: 'postgres://d/x' }),
    ).toEqual({
      redisUrl: 'redis://r:6379',
      dbUrl: 'postgres://d/x',
      redisPrefix: '{xhedge}:prod',
      unresolved: [],
    });
    expect(
      deploymentEndpoints(profile, { XH_TEST_REDIS: 'redis://r:6379', XH_TEST_DB: 'postgres://d/x' }),
    ).toMatchObject({ redisUrl: 'redis://r:6379', dbUrl: 'postgres://d/x' });
    expect(deploymentEndpoints({ name: 'paper' }, {})).toMatchObject({
      redisUrl: undefined,
      dbUrl: undefined,
    });
  });

  it('a command that can do without one service is not stopped by its unset env var (review: kill-switch status needs only Redis)', () => {
    const onlyRedis = deploymentEndpoints(
      profile,
      { XH_TEST_REDIS: 'redis://r:6379' },
      { optional: ['database'] },
    );
    expect(onlyRedis).toMatchObject({ redisUrl: 'redis://r:6379', dbUrl: undefined });
    expect(onlyRedis.unresolved).toEqual([expect.stringMatching(/database\.url.*XH_TEST_DB/)]);
    expect(
      deploymentEndpoints(profile, { XH_TEST_DB: 'postgres://d/x' }, { optional: ['redis'] }),
    ).toMatchObject({ redisUrl: undefined, dbUrl: 'postgres://d/x' });
    // the one it needs still refuses
    expect(() =>
      deploymentEndpoints(profile, { XH_TEST_DB: 'postgres://d/x' }, { optional: ['database'] }),
    ).toThrow(/redis\.url.*XH_TEST_REDIS/);
  });

  it('a run whose profile names an unset env var for its ledger does not start on an embedded one', async () => {
    const config = parseConfig(`${PAPER}\ndatabase:\n  url: { env: XH_TEST_DB }\n`, 'paper.yaml');
    const outcome = await startRun({
      config,
      env: {},
      dataDir: join(dir, 'data'),
      port: 0,
      logger: pino({ level: 'silent' }),
    }).then(
      async (run) => {
        await run.stop();
        return 'started';
      },
      (err: unknown) => err,
    );
    expect(outcome).toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringMatching(/XH_TEST_DB/) });
  });
});

describe('service URLs in errors (regression: a password in the query, or one holding an @, was printed)', () => {
  it.skipIf(!pgOk)('a DATABASE_URL Postgres refuses is named without its password', async () => {
    for (const url of [
      'postgres://postgres@127.0.0.1:5432/xh_missing_db?password=hunter2query&sslmode=disable',
      'postgres://postgres:pass@hunter2word@127.0.0.1:5432/xh_missing_db',
    ]) {
      const err = await startRun({
        config: parseConfig(PAPER, 'paper.yaml'),
        env: { DATABASE_URL: url },
        dataDir: join(dir, 'data'),
        port: 0,
        logger: pino({ level: 'silent' }),
      }).then(
        async (run) => {
          await run.stop();
          return undefined;
        },
        (e: unknown) => e as Error,
      );
      expect(err).toMatchObject({
        code: 'CONFIG_INVALID',
        message: expect.stringMatching(
          /DATABASE_URL postgres:\/\/postgres(:\*\*\*)?@127\.0\.0\.1:5432\/xh_missing_db/,
        ),
      });
      expect(err?.message).not.toMatch(/hunter2/);
    }
  });
});
