import { systemClock } from '@xhedge/core';
import { createMarketSimulator } from '@xhedge/sim';
import { postgresReachable, TEST_PG_URL } from '@xhedge/store';
import { createPaperVenue, RedisShadowStore, ShadowVenue } from '@xhedge/venue-paper';
import { describe, expect, it, vi } from 'vitest';
import { deploymentPerTest } from './test-deployment.ts';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const pgOk = await postgresReachable();
if (!pgOk)
  console.warn(
    `[cli dry-run tests] Postgres at ${TEST_PG_URL} not reachable: the dry-run CLI tests are skipped`,
  );

describe.skipIf(!pgOk)('xhedge dry-run status|reset (real Redis and Postgres)', () => {
  const t = deploymentPerTest({
    tag: 'dry-cli-test',
    command: 'dry-run',
    redisUrl: REDIS_URL,
    extraYaml: 'dryRun: true',
  });
  const cli = (args: string[]) => t.cli(args);

  /** One simulated fill on venue `pv`, as a dry-run worker of this deployment would record it. */
  async function simulateFill(): Promise<void> {
    const market = createMarketSimulator({
      underlyings: { SOL: { spot: 180, vol: 0.5 } },
      seed: 1,
      clock: systemClock,
    });
    const inner = createPaperVenue({ id: 'pv', kind: 'paper-drift', chain: 'solana:mainnet-beta', market });
    const store = new RedisShadowStore({ redis: t.redis, prefix: t.deployment.prefix, venue: 'pv' });
    const shadow = new ShadowVenue(inner, { store });
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
    expect(await t.redis.exists(...RedisShadowStore.keysOf(t.deployment.prefix, 'pv'))).toBe(0);
    const ledger = t.deployment.ledger;
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
