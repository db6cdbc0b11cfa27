import { Dec, ManualClock, parseInstrumentId, systemClock } from '@xhedge/core';
import { createMarketSimulator } from '@xhedge/sim';
import { openDatabase, postgresReachable, TEST_PG_URL } from '@xhedge/store';
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

  it('reset whose audit cannot be written deletes nothing (audited first)', async () => {
    await simulateFill();
    const h = await openDatabase({ url: TEST_PG_URL, schema: t.deployment.schema, migrate: false });
    const run = h.prepared;
    if (!run) throw new Error('needs Postgres');
    await run('audit_off', 'alter table audit rename to audit_off', []);
    try {
      const r = await cli(['reset', '--reason', 'start the policy trial over']);
      expect(r.code).toBe(1);
      expect(await t.redis.exists(...RedisShadowStore.keysOf(t.deployment.prefix, 'pv'))).toBeGreaterThan(0);
    } finally {
      await run('audit_on', 'alter table audit_off rename to audit', []);
      await h.close();
    }
  });

  it('status shows the coins a coin-settled option paid and the collateral a short locks, with units, in text and JSON', async () => {
    // paper Lyra stating its options settle in the underlying coin, on a market stepping every minute
    // at hh:mm:30 (a board's settlement price is fixed at 08:00:30)
    const clock = new ManualClock(Date.UTC(2026, 0, 5, 0, 0, 30));
    const market = createMarketSimulator({
      underlyings: { BTC: { spot: 95_000, vol: 0.55 } },
      seed: 7,
      clock,
      stepMs: 60_000,
    });
    const lyra = createPaperVenue({ id: 'pl', kind: 'paper-lyra', chain: 'evm:42161', market });
    lyra.seedBalance('USDC', 1_000_000);
    const inverse = new Proxy(lyra, {
      get(target, prop, recv) {
        if (prop === 'loadMarkets')
          return async () =>
            (await target.loadMarkets()).map((m) => ({
              ...m,
              instrument: { ...m.instrument, settlementCurrency: m.instrument.underlying, inverse: true },
            }));
        const x = Reflect.get(target, prop, recv);
        return typeof x === 'function' ? x.bind(target) : x;
      },
    });
    const store = new RedisShadowStore({ redis: t.redis, prefix: t.deployment.prefix, venue: 'pl' });
    const shadow = new ShadowVenue(inverse, { clock, store });
    try {
      const options = (await shadow.loadMarkets()).map((m) => m.instrument);
      const expiries = [...new Set(options.map((m) => m.expiryMs ?? 0))].sort((a, b) => a - b);
      const nearest = expiries[0] ?? Number.NaN;
      const put = options
        .filter((m) => m.expiryMs === nearest && m.optionType === 'put')
        .sort((a, b) => (b.strike ?? 0) - (a.strike ?? 0))[0]?.id as string;
      const call = options.find((m) => m.expiryMs === expiries.at(-1) && m.optionType === 'call')
        ?.id as string;
      await shadow.placeOrder({
        clientOrderId: 'dry-coin-put',
        instrument: put,
        side: 'buy',
        orderType: 'market',
        sizeBase: '0.5',
      });
      const q = await shadow.quoteHedge({ instrument: call, side: 'sell', sizeBase: '0.1' });
      await shadow.placeOrder({
        clientOrderId: 'dry-short-call',
        instrument: call,
        side: 'sell',
        orderType: 'market',
        sizeBase: '0.1',
      });
      clock.set(nearest + 120_000);
      const [price] = (await shadow.fetchSettlementPrices?.([put])) ?? [];
      await shadow.fetchBalances(); // the put settles: its payoff is paid in BTC
      const parsed = parseInstrumentId(put);
      if (parsed.kind !== 'option') throw new Error(`${put} is no option`);
      // (K − S) × 0.5 USD, in BTC at S
      const btc = new Dec(parsed.strike)
        .sub(price?.priceUsd ?? 'NaN')
        .mul('0.5')
        .div(price?.priceUsd ?? 'NaN');
      expect(btc.gt(0)).toBe(true);
      const lockedUsd = new Dec(q.lockedCollateralUsd ?? Number.NaN);
      expect(lockedUsd.gt(0)).toBe(true);

      const st = await cli(['status', '--json', '--venue', 'pl']);
      expect(st.code, st.stderr).toBe(0);
      const view = JSON.parse(st.stdout) as { venues: Record<string, unknown>[] };
      expect(view.venues).toEqual([
        expect.objectContaining({
          venue: 'pl',
          coins: [{ asset: 'BTC', amount: btc.toFixed() }],
          positions: [
            expect.objectContaining({ instrument: call, sizeBase: '-0.1', lockedUsd: lockedUsd.toFixed() }),
          ],
        }),
      ]);
      const text = (await cli(['status', '--venue', 'pl'])).stdout;
      expect(text).toContain(`  coins moved: ${btc.toFixed()} BTC`);
      expect(text).toContain(`  ${call} -0.1 at `);
      expect(text).toContain(`, locks ${lockedUsd.toFixed()} USD`);
    } finally {
      await shadow.close();
    }
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
