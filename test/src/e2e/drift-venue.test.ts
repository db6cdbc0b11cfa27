import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '@xhedge/config';
import { type Run, startRun } from '@xhedge/runtime';
import { DriftVenue, USER_STATUS } from '@xhedge/venue-drift';
import {
  type DriftFixture,
  type DriftRpcServer,
  driftDryRunProfile,
  driftFixture,
  startDriftRpcServer,
} from '@xhedge/venue-drift/testing';
import { ShadowVenue } from '@xhedge/venue-paper';
import { RedisShadowStore } from '@xhedge/venue-paper/shadow-store';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { waitFor } from './wait.ts';

/**
 * A `drift` venue from an operator profile, end to end: the runtime builds the real DriftVenue from the
 * profile (`createDriftVenue`: RPC URL, signer from an env var, program id, markets) and talks to a
 * Solana JSON-RPC HTTP server over litesvm holding Drift's User, PerpMarket and SpotMarket accounts
 * (no program code: litesvm cannot run Drift, so a sent order would land without filling). In a dry run
 * the account's long 2.5 SOL-PERP is read over HTTP, the planner hedges its delta with a sell that the
 * dry run fills at the venue's quote, and not one transaction reaches the RPC.
 */
const dir = mkdtempSync(join(tmpdir(), 'xhedge-drift-venue-'));
const logs: string[] = [];
let f: DriftFixture | undefined;
let server: DriftRpcServer | undefined;
let run: Run | undefined;

afterAll(async () => {
  await run?.stop();
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

const until = <T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number) =>
  waitFor(what, fn, {
    timeoutMs,
    stepMs: 200,
    context: () =>
      `snapshot: ${JSON.stringify(run?.planner?.lastSnapshot)?.slice(0, 3000)}; run log:\n${logs.slice(-30).join('\n')}`,
  });

describe('a drift venue from a profile, over JSON-RPC to litesvm', () => {
  it('dry run: reads the Drift account, hedges its delta in the ledger, and sends no transaction', async () => {
    // oracle and funding timestamps at wall time: the run's clock is the system clock (a real chain)
    f = await driftFixture({ nowMs: Date.now() });
    server = await startDriftRpcServer(f.rpc);
    // the solana-keygen key file format: a JSON array of the 64 secret key bytes
    const key = JSON.stringify(Array.from(f.authority.secretKey));
    const apiToken = randomBytes(32).toString('hex');
    const config = parseConfig(
      driftDryRunProfile({
        name: `drift-venue-e2e-${process.pid}`,
        dataDir: join(dir, 'data'),
        rpcUrl: server.url,
        programId: f.programId.toBase58(),
      }),
      'drift-venue.yaml',
    );
    run = await startRun({
      config,
      env: { XHEDGE_DRIFT_KEY: key, XHEDGE_API_TOKEN: apiToken },
      port: 0,
      logger: pino({ level: 'info' }, { write: (line: string) => void logs.push(line.trimEnd()) }),
    });
    expect(run.venues.map((v) => v.id)).toEqual(['drift-sol']);
    // a dry run wraps the real adapter: reads go to Drift, orders are simulated
    const venue = run.venues[0];
    if (!(venue instanceof ShadowVenue)) throw new Error('drift-sol is not wrapped for the dry run');
    const inner = venue.inner;
    if (!(inner instanceof DriftVenue)) throw new Error('drift-sol is not the real DriftVenue');
    expect(inner.userAccount.toBase58()).toBe(
      // the User PDA of the key in the env var, read by the fixture's own venue
      f.venue.userAccount.toBase58(),
    );
    expect(run.describe().some((l) => /DRY RUN {2}orders to drift-sol are simulated/.test(l))).toBe(true);
    // a dry run keeps its simulated fills in the run's Redis (every role sees them, a restart keeps
    // them), so it keeps the book mark too, like a live run
    expect(venue.store).toBeInstanceOf(RedisShadowStore);
    expect(await run.ledger.listAudit({ action: 'book-mark.clear' })).toEqual([]);

    // The account as the real adapter reads it over HTTP: 2.5 SOL long, 1000 scaled USDC × 1.05 interest.
    const [pos] = await inner.fetchPositions();
    expect(pos).toMatchObject({ venue: 'drift-sol', instrument: 'SOL-USD:PERP', sizeBase: 2.5 });
    const [usdc] = await inner.fetchBalances();
    expect(usdc?.asset).toBe('USDC');
    expect(usdc?.amount).toBeCloseTo(1050, 9);
    expect(server.calls.get('getAccountInfo')).toBeGreaterThan(0);

    // The planner's first snapshot holds the position's delta (+2.5 SOL, outside the ±0.5 band).
    const first = await until(
      'a snapshot with the Drift position',
      async () => {
        const s = run?.planner?.lastSnapshot;
        const d = s?.underlyings.SOL?.delta;
        return d !== undefined && d > 0.5 ? d : undefined;
      },
      20_000,
    );
    expect(first).toBeCloseTo(2.5, 9);

    // The hedge: a sell of the delta, simulated and filled with a dry-run venue order id.
    const order = await until(
      'the dry-run hedge filled in the ledger',
      async () => {
        const orders = (await run?.ledger.listOrders({ venue: 'drift-sol', limit: 20 })) ?? [];
        return orders.find((o) => o.status === 'filled');
      },
      30_000,
    );
    expect(order.instrument).toBe('SOL-USD:PERP');
    expect(order.side).toBe('sell');
    expect(order.venueOrderId).toMatch(/^dry-\d+$/);
    expect(order.filledSizeBase).toBe(order.sizeBase);
    expect(Number(order.sizeBase)).toBeCloseTo(2.5, 1);
    const fills = await run.ledger.listFills({ clientOrderId: order.clientOrderId });
    expect(fills.reduce((s, x) => s + Number(x.sizeBase), 0)).toBeCloseTo(Number(order.sizeBase), 9);

    // After the simulated fill the book is flat (a flat book lists no SOL): the dry run lays the sell
    // over the account, while the account itself is unchanged.
    const filledSeq = run.planner?.lastSnapshot?.seq ?? 0;
    await until(
      'a snapshot inside the band',
      async () => {
        const s = run?.planner?.lastSnapshot;
        if (!s || s.seq <= filledSeq) return undefined;
        return Math.abs(s.underlyings.SOL?.delta ?? 0) < 0.5 ? true : undefined;
      },
      20_000,
    );
    expect((await venue.fetchPositions()).map((p) => [p.instrument, p.sizeBase])).toEqual([
      ['SOL-USD:PERP', 2.5 - Number(order.sizeBase)],
    ]);
    expect((await inner.fetchPositions())[0]?.sizeBase).toBe(2.5);
    // The simulated fill is in the run's Redis: a dry-run wrapper built afresh over it (another
    // process, or this one restarted) sees the same order and the same merged position.
    const again = new ShadowVenue(inner, { store: venue.store });
    expect((await again.getOrderByClientId(order.clientOrderId))?.venueOrderId).toBe(order.venueOrderId);
    expect((await again.fetchPositions()).map((p) => [p.instrument, p.sizeBase])).toEqual([
      ['SOL-USD:PERP', 2.5 - Number(order.sizeBase)],
    ]);
    // Only the Drift venue took the hedge.
    expect((await run.ledger.listOrders({ limit: 20 })).map((o) => o.venue)).toEqual(['drift-sol']);

    // Nothing was sent: no sendTransaction reached the node, and only the methods the adapter uses were called.
    expect(server.sendTransactionCalls).toBe(0);
    expect(f.rpc.sends).toBe(0);
    expect(server.unsupported).toEqual([]);
    // Drift starts liquidating the account: the venue's health says so, the run pages (metric, error log).
    f.setUser({
      status: USER_STATUS.beingLiquidated,
      perpPositions: [
        {
          marketIndex: 0,
          baseAssetAmount: 2_500_000_000n,
          quoteEntryAmount: -450_000_000n,
          quoteAssetAmount: -450_000_000n,
        },
      ],
    });
    const scrape = async () =>
      (await fetch(`${run?.apiUrl}/metrics`, { headers: { authorization: `Bearer ${apiToken}` } })).text();
    await until(
      'the liquidation gauge',
      async () =>
        /^xhedge_venue_account_liquidating\{venue="drift-sol"\} 1$/m.test(await scrape()) ? true : undefined,
      20_000,
    );
    expect(logs.some((l) => /venue drift-sol says the account is being-liquidated/.test(l))).toBe(true);

    // The key never shows in the run's log.
    expect(logs.join('\n')).not.toContain(key);

    await run.stop();
    run = undefined;
  }, 90_000);
});
