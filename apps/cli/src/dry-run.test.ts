import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '@xhedge/core';
import { connectRedis, type RedisEndpoint } from '@xhedge/execution';
import { redisPrefixFor } from '@xhedge/runtime';
import { createMarketSimulator } from '@xhedge/sim';
import { Ledger, openDatabase, postgresReachable, TEST_PG_URL } from '@xhedge/store';
import { createPaperVenue, RedisShadowStore, ShadowVenue } from '@xhedge/venue-paper';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { runCli } from './program.ts';
import { captureIo } from './testing.ts';

const root = new URL('../../../', import.meta.url).pathname;
const paperYaml = readFileSync(join(root, 'configs/profiles/paper.yaml'), 'utf8');
const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const pgOk = await postgresReachable();
if (!pgOk)
  console.warn(
    `[cli dry-run tests] Postgres at ${TEST_PG_URL} not reachable: the dry-run CLI tests are skipped`,
  );

describe.skipIf(!pgOk)('xhedge dry-run status|reset (real Redis and Postgres)', () => {
  let endpoint: RedisEndpoint;
  let redis: ReturnType<RedisEndpoint['client']>;
  let file: string;
  let prefix: string;
  let schema: string;
  let ledger: Ledger;

  const cli = async (args: string[]) => {
    const io = captureIo();
    const code = await runCli(['dry-run', ...args, '--config', file, '--db-schema', schema], io);
    return { code, ...io };
  };

  beforeAll(async () => {
    endpoint = await connectRedis({ url: REDIS_URL });
    redis = endpoint.client();
  });
  afterAll(async () => {
    await redis?.quit();
    await endpoint?.close();
  });
  beforeEach(async () => {
    const name = `dry-cli-test ${randomBytes(5).toString('hex')}`;
    file = join(mkdtempSync(join(tmpdir(), 'xhedge-dry-')), 'profile.yaml');
    writeFileSync(file, `${paperYaml.replace(/^name: .*$/m, `name: ${name}`)}\ndryRun: true\n`);
    prefix = redisPrefixFor(name);
    schema = `dry_cli_${randomBytes(6).toString('hex')}`;
    ledger = new Ledger(await openDatabase({ url: TEST_PG_URL, schema, poolSize: 2 }));
    vi.stubEnv('REDIS_URL', REDIS_URL);
    vi.stubEnv('DATABASE_URL', TEST_PG_URL);
  });
  afterEach(async () => {
    vi.unstubAllEnvs();
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
    await ledger.close();
    const db = await openDatabase({ url: TEST_PG_URL, schema, migrate: false });
    await db.dropSchema();
    await db.close();
  });

  /** One simulated fill on venue `pv`, as a dry-run worker of this deployment would record it. */
  async function simulateFill(): Promise<void> {
    const market = createMarketSimulator({
      underlyings: { SOL: { spot: 180, vol: 0.5 } },
      seed: 1,
      clock: systemClock,
    });
    const inner = createPaperVenue({ id: 'pv', kind: 'paper-drift', chain: 'solana:mainnet-beta', market });
    const shadow = new ShadowVenue(inner, { store: new RedisShadowStore({ redis, prefix, venue: 'pv' }) });
    const o = await shadow.placeOrder({
      clientOrderId: 'dry-cli-1',
      instrument: 'SOL-USD:PERP',
      side: 'sell',
      orderType: 'market',
      sizeBase: '3',
    });
    expect(o.status).toBe('filled');
  }

  it('status lists what the dry run simulated; reset deletes it, clears the mark and audits both', async () => {
    await simulateFill();
    const st = await cli(['status', '--json']);
    expect(st.code).toBe(0);
    const view = JSON.parse(st.stdout) as {
      dryRun: boolean;
      venues: {
        venue: string;
        orders: number;
        fills: number;
        positions: { instrument: string; sizeBase: string }[];
      }[];
    };
    expect(view.dryRun).toBe(true);
    expect(view.venues).toMatchObject([
      { venue: 'pv', orders: 1, fills: 1, positions: [{ instrument: 'SOL-USD:PERP', sizeBase: '-3' }] },
    ]);
    const text = await cli(['status']);
    expect(text.stdout).toMatch(/pv: 1 simulated orders, 1 fills/);

    const bad = await cli(['reset', '--reason', 'x']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--reason: say why, in at least 3 characters/);

    const r = await cli(['reset', '--reason', 'start the policy trial over', '--actor', 'operator:ana']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/dry run reset on .*: pv start from the real accounts again/);
    expect(await redis.exists(`${prefix}:dry-run:pv`)).toBe(0);
    expect((await ledger.listAudit({ action: 'dry-run.reset' }))[0]).toMatchObject({
      actor: 'operator:ana',
      details: { venues: ['pv'], reason: 'start the policy trial over' },
    });
    expect((await ledger.listAudit({ action: 'book-mark.clear' }))[0]?.details.reason).toMatch(
      /dry run reset \(pv\)/,
    );
    expect((await cli(['status'])).stdout).toMatch(/no simulated state/);
  });

  it('reset refuses to run without the ledger, and names what is wrong', async () => {
    vi.stubEnv('DATABASE_URL', '');
    const r = await cli(['reset', '--reason', 'start over']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /no DATABASE_URL for profile dry-cli-test .*: refusing to reset without the ledger/,
    );
    const v = await cli(['status', '--venue', 'Not A Venue']);
    expect(v.code).toBe(2);
    expect(v.stderr).toMatch(/--venue "Not A Venue" is not a venue id/);
  });
});
