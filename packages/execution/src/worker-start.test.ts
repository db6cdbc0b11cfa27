import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { LimitsConfig } from '@xhedge/config';
import { systemClock } from '@xhedge/core';
import { createMarketSimulator } from '@xhedge/sim';
import { Ledger, openDatabase } from '@xhedge/store';
import { createPaperVenue, type PaperVenue } from '@xhedge/venue-paper';
import type { Worker } from 'bullmq';
import { Redis as IORedis, type Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisEndpoint } from './redis.ts';
import { testRedis, until } from './test-env.ts';
import { type ControlStack, controlStack, silentRedisProxy } from './testing.ts';
import { type StartWorkersOptions, startWorkers } from './worker.ts';

/**
 * A worker pool whose start fails after some of its parts started (workers created and connecting, the
 * kill-switch listener attached and subscribed) closes them before it rejects, with the error that
 * stopped it. Checked on the machine's Redis: the pool's connections by name in CLIENT LIST, the
 * subscription in PUBSUB NUMSUB, and each worker's own `closed` event (BullMQ clears its timers there).
 */
describe('a worker pool whose start fails part way leaves nothing running', () => {
  let redis: RedisEndpoint;
  let cmd: Redis;
  let ledger: Ledger;
  let stack: ControlStack;
  const prefix = `xhws${randomBytes(4).toString('hex')}`;
  const paper: PaperVenue[] = [];

  const venue = (id: string): PaperVenue => {
    const v = createPaperVenue({
      id,
      kind: 'paper-drift',
      chain: 'solana:mainnet-beta',
      market: createMarketSimulator({
        underlyings: { ETH: { spot: 3500, vol: 0.6 } },
        seed: 3,
        clock: systemClock,
      }),
    });
    paper.push(v);
    return v;
  };

  /**
   * The Redis clients of pools started with `connectionName` under this test's queue prefix: their
   * command connections carry `connectionName`, BullMQ names the blocking ones `<prefix>:<queue>:w:<id>`.
   */
  const poolClients = async (connectionName: string): Promise<string[]> =>
    ((await cmd.client('LIST')) as string)
      .split('\n')
      .map((line) => / name=(\S*)/.exec(line)?.[1] ?? '')
      .filter((name) => name === connectionName || name.startsWith(`${prefix}:`));

  /** No client of the pool is connected now, nor 300 ms later (one still connecting would show by then). */
  const noPoolClients = async (connectionName: string) => {
    await until(async () => (await poolClients(connectionName)).length === 0, 5_000).catch(async () => {
      throw new Error(`pool connections left open: ${(await poolClients(connectionName)).join(', ')}`);
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(await poolClients(connectionName)).toEqual([]);
  };

  const subscribers = async (): Promise<number> => {
    const [, n] = (await cmd.pubsub('NUMSUB', stack.killSwitch.channel)) as [string, number];
    return Number(n);
  };

  /** The start options with `onWorker` collecting every worker and the ones that closed. */
  const watched = (o: Partial<StartWorkersOptions> & Pick<StartWorkersOptions, 'venues' | 'subscriber'>) => {
    const opened: Worker[] = [];
    const closed = new Set<Worker>();
    const options: StartWorkersOptions = {
      ...stack.base,
      ...o,
      onWorker: (w, v) => {
        opened.push(w);
        w.once('closed', () => closed.add(w));
        o.onWorker?.(w, v);
      },
    };
    return { options, opened, closed };
  };

  beforeAll(async () => {
    redis = await testRedis();
    cmd = redis.client();
    ledger = new Ledger(await openDatabase());
    stack = await controlStack({
      redis,
      cmd,
      prefix,
      ledger,
      limits: LimitsConfig.parse({ maxOrderNotionalUsd: 1e6, maxHedgeNotionalPerWindowUsd: 1e8 }),
    });
  });
  afterAll(async () => {
    for (const v of paper) await v.close?.();
    const keys = await cmd.keys(`${prefix}:*`);
    if (keys.length) await cmd.del(...keys);
    cmd.disconnect();
    await redis.close();
    await ledger.close();
  });

  it('a worker callback that throws after two workers were created: both closed, the caller gets its error', async (ctx) => {
    if (redis.embedded) {
      console.warn('[worker-start] skipped: needs a real Redis (CLIENT LIST names), not the embedded one');
      ctx.skip();
    }
    const connectionName = `${prefix}-pool1`;
    const subscriber = redis.client();
    const listeners = subscriber.listenerCount('message');
    const boom = new Error('onWorker refused venue b');
    const { options, opened, closed } = watched({
      connection: { ...redis.options, connectionName },
      venues: new Map([
        ['a', venue('a')],
        ['b', venue('b')],
      ]),
      subscriber,
      onWorker: (_w, v) => {
        if (v === 'b') throw boom;
      },
    });
    await expect(startWorkers(options)).rejects.toBe(boom);
    expect(opened).toHaveLength(2);
    expect(closed.size).toBe(2);
    await noPoolClients(connectionName);
    expect(subscriber.listenerCount('message')).toBe(listeners);
    expect(await subscribers()).toBe(0);
    subscriber.disconnect();
  });

  it('workers that cannot connect, after the kill-switch subscription was made: the process still exits by itself', async (ctx) => {
    if (redis.embedded) {
      console.warn(
        '[worker-start] skipped: needs a real Redis (refused credentials, PUBSUB NUMSUB), not the embedded one',
      );
      ctx.skip();
    }
    // In a process of its own: a BullMQ worker whose connection failed loops without yielding to I/O or
    // timers until it is closed, so a pool that left one behind would hang this test's process too.
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        fileURLToPath(new URL('./worker-start.child.ts', import.meta.url)),
        redis.url,
        `${prefix}c`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    const exited = await new Promise<number | 'hung'>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve('hung');
      }, 20_000);
      child.once('exit', (code) => {
        clearTimeout(timer);
        resolve(code ?? -1);
      });
    });
    expect(exited, `child output: ${out}\n${err}`).toBe(0);
    const seen = JSON.parse(out.trim().split('\n').pop() ?? '{}');
    // the caller got the server's refusal, not an error of the undo
    expect(seen.error).toMatch(/WRONGPASS/);
    expect(seen).toMatchObject({ opened: 2, closed: 2, subscribed: 0 });
    expect(seen.listenersAfter).toBe(seen.listenersBefore);
  }, 40_000);

  it('a venue added to a running pool whose worker fails to start: closed, not added, and can be added again', async (ctx) => {
    if (redis.embedded) {
      console.warn('[worker-start] skipped: needs a real Redis (CLIENT LIST names), not the embedded one');
      ctx.skip();
    }
    const connectionName = `${prefix}-pool3`;
    const subscriber = redis.client();
    let refuse = true;
    const boom = new Error('onWorker refused venue c');
    const { options, opened, closed } = watched({
      connection: { ...redis.options, connectionName },
      venues: new Map([['a', venue('a')]]),
      subscriber,
      onWorker: (_w, v) => {
        if (v === 'c' && refuse) throw boom;
      },
    });
    const pool = await startWorkers(options);
    const c = venue('c');
    await expect(pool.addVenue('c', c)).rejects.toBe(boom);
    const failed = opened[1] as Worker;
    expect(closed.has(failed)).toBe(true);
    expect(pool.venueIds).toEqual(['a']);
    expect(pool.venue('c')).toBeUndefined();
    refuse = false;
    await pool.addVenue('c', c);
    expect(pool.venueIds).toEqual(['a', 'c']);
    await pool.close(true);
    await noPoolClients(connectionName);
    subscriber.disconnect();
  });

  it("the workers' errors reach the pool's log once per streak, not nowhere", async () => {
    const subscriber = redis.client();
    const logs: { level: string; msg: string }[] = [];
    const { options, opened } = watched({
      venues: new Map([['e', venue('e')]]),
      subscriber,
      log: (level, msg) => logs.push({ level, msg }),
    });
    const pool = await startWorkers(options);
    try {
      const w = opened[0] as Worker;
      for (let i = 0; i < 5; i++) w.emit('error', new Error(`connect ECONNREFUSED 127.0.0.1:1 (${i})`));
      expect(logs).toEqual([
        { level: 'warn', msg: 'order worker for e: connect ECONNREFUSED 127.0.0.1:1 (0)' },
      ]);
    } finally {
      await pool.close();
      subscriber.disconnect();
    }
  });

  it('close() does not hang on a subscriber whose connection stopped answering', async () => {
    // the subscriber reaches Redis through a proxy that can go silent (a network cut: nothing is
    // refused, nothing answers), so its UNSUBSCRIBE is written and never answered
    const proxy = await silentRedisProxy(redis.url);
    const port = proxy.port;
    const subscriber = new IORedis({ host: '127.0.0.1', port, maxRetriesPerRequest: null });
    subscriber.on('error', () => {});
    const pool = await startWorkers(watched({ venues: new Map([['d', venue('d')]]), subscriber }).options);
    proxy.cut();
    const t0 = Date.now();
    const closedIn = await Promise.race([
      pool.close().then(() => Date.now() - t0),
      new Promise<'hung'>((r) => setTimeout(() => r('hung'), 15_000)),
    ]);
    expect(closedIn).not.toBe('hung');
    expect(closedIn).toBeLessThan(12_000);
    subscriber.disconnect();
    await proxy.close();
  }, 30_000);
});
