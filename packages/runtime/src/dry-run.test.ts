import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '@xhedge/config';
import { systemClock } from '@xhedge/core';
import type { RedisEndpoint } from '@xhedge/execution';
import { machineRedisOrEmbedded } from '@xhedge/execution/testing';
import { driftDryRunProfile, driftFixture, startDriftRpcServer } from '@xhedge/venue-drift/testing';
import { ShadowVenue } from '@xhedge/venue-paper';
import { RedisShadowStore } from '@xhedge/venue-paper/shadow-store';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { startRun } from './run.ts';
import { buildVenues } from './venues.ts';

const dir = mkdtempSync(join(tmpdir(), 'xhedge-dry-run-'));
const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
  rmSync(dir, { recursive: true, force: true });
});

describe('dry run', () => {
  it('may run with split roles: a worker start goes on to the usual shared Redis and database check', async () => {
    const config = parseConfig(
      `${readFileSync(new URL('../../../configs/profiles/paper.yaml', import.meta.url), 'utf8')}\ndryRun: true\n`,
      'paper.yaml',
    );
    for (const role of ['worker', 'orchestrator'] as const)
      await expect(startRun({ config, role, env: {}, logger: pino({ level: 'silent' }) })).rejects.toThrow(
        new RegExp(`--role ${role} shares state with the other roles: set REDIS_URL and DATABASE_URL`),
      );
  });

  it("keeps each real venue's simulated fills in the run's Redis: another process and a restart see them", async () => {
    const f = await driftFixture({ nowMs: Date.now() });
    const server = await startDriftRpcServer(f.rpc);
    cleanup.push(() => server.close());
    const redisEp: RedisEndpoint = await machineRedisOrEmbedded('runtime dry-run test');
    cleanup.push(() => redisEp.close());
    const prefix = `{xhedge-test}:dry-run-${randomUUID()}`;
    const config = parseConfig(
      driftDryRunProfile({
        name: `dry-run-test`,
        dataDir: join(dir, 'data'),
        rpcUrl: server.url,
        programId: f.programId.toBase58(),
      }),
      'dry-run.yaml',
    );
    const env = { XHEDGE_DRIFT_KEY: JSON.stringify(Array.from(f.authority.secretKey)) };
    /** One process of the deployment: its own Redis connection and its own venues. */
    const process = async () => {
      const redis: Redis = redisEp.client();
      const built = await buildVenues({
        config,
        clock: systemClock,
        env,
        dataDir: join(dir, 'data'),
        shadowStore: (venue) => new RedisShadowStore({ redis, prefix, venue }),
      });
      cleanup.push(async () => {
        await Promise.all(built.all.map((v) => v.close?.()));
        await redis.quit();
      });
      const [venue] = built.all;
      if (!(venue instanceof ShadowVenue)) throw new Error('drift-sol is not wrapped for the dry run');
      expect(venue.store).toBeInstanceOf(RedisShadowStore);
      return venue;
    };
    cleanup.push(async () => {
      const c = redisEp.client();
      const keys = await c.keys(`${prefix}:*`);
      if (keys.length) await c.del(...keys);
      await c.quit();
    });
    const worker = await process();
    const orchestrator = await process();
    const [real] = await worker.inner.fetchPositions();
    expect(real?.sizeBase).toBe(2.5);

    const order = await worker.placeOrder({
      clientOrderId: `split-${randomUUID().slice(0, 8)}`,
      instrument: 'SOL-USD:PERP',
      side: 'sell',
      orderType: 'market',
      sizeBase: '2.5',
    });
    expect(order.status).toBe('filled');
    // the orchestrator's venue sees the worker's simulated sell laid over the account: flat
    expect((await orchestrator.fetchPositions()).find((p) => p.instrument === 'SOL-USD:PERP')?.sizeBase).toBe(
      0,
    );
    expect(await orchestrator.getOrderByClientId(order.clientOrderId)).toEqual(order);
    expect(await orchestrator.fetchFills({ clientOrderId: order.clientOrderId })).toHaveLength(1);
    // placed again by the orchestrator's process: the same order, no second fill
    expect(await orchestrator.placeOrder({ ...order, orderType: 'market', sizeBase: '2.5' })).toEqual(order);
    // a restart keeps it
    const restarted = await process();
    expect(await restarted.fetchFills()).toHaveLength(1);
    expect((await restarted.fetchPositions()).find((p) => p.instrument === 'SOL-USD:PERP')?.sizeBase).toBe(0);
    // and the Drift account itself never changed
    expect((await restarted.inner.fetchPositions())[0]?.sizeBase).toBe(2.5);
    expect(server.sendTransactionCalls).toBe(0);
  }, 60_000);
});
