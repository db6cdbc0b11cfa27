// Test helpers other packages' tests share (`@xhedge/execution/testing`); not part of the runtime API.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LimitsConfig } from '@xhedge/config';
import { BreakersConfig } from '@xhedge/config';
import type { Clock } from '@xhedge/core';
import type { Ledger } from '@xhedge/store';
import { Redis } from 'ioredis';
import type { z } from 'zod';
import { BreakerBoard, type BreakerBoardOptions } from './breakers.ts';
import { restoreControlState } from './control-state.ts';
import { PreTradeControls } from './controls.ts';
import { KillSwitch } from './kill-switch.ts';
import type { ExecutionMetrics } from './metrics.ts';
import { connectRedis, type RedisEndpoint } from './redis.ts';

/**
 * The machine's Redis (`TEST_REDIS_URL`, default 127.0.0.1:6379) when it answers, else an embedded
 * js-redis-server, said out loud: tests run on a fresh machine with no Redis installed.
 */
export async function machineRedisOrEmbedded(who = 'tests'): Promise<RedisEndpoint> {
  const url = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
  const probe = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    connectTimeout: 500,
    retryStrategy: () => null,
  });
  probe.on('error', () => {}); // the failed connect rejects below; the event would only add noise
  try {
    await probe.connect();
    await probe.ping();
    return await connectRedis({ url });
  } catch {
    console.warn(`[${who}] Redis at ${url} not reachable: using the embedded js-redis-server`);
    return connectRedis();
  } finally {
    probe.disconnect();
  }
}

/** A free loopback TCP port. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

/** Whether a `redis-server` binary is on the PATH (tests that need their own Redis skip, saying so, without one). */
export function hasRedisServer(): boolean {
  return spawnSync('redis-server', ['--version']).status === 0;
}

export interface OwnRedis {
  url: string;
  port: number;
  /** SIGKILL, resolved once the process has exited. */
  kill(): Promise<void>;
  /**
   * A new server on the same port with the same arguments (empty: no persistence unless the args ask;
   * with `--appendonly yes` it reloads what the last one persisted).
   */
  start(): Promise<void>;
  /** SIGKILL without waiting; the server's working directory is removed. */
  stop(): void;
}

/**
 * A `redis-server` of the test's own on a free port (`--save ''` plus `args`), resolved once it answers
 * PING. Its working directory (AOF, RDB) is a fresh temporary one, never the test's cwd. Throws when
 * the binary is missing: check `hasRedisServer()` first.
 */
export async function spawnRedisServer(args: readonly string[] = []): Promise<OwnRedis> {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  const dir = mkdtempSync(join(tmpdir(), 'xhedge-redis-'));
  let server: ChildProcess;
  const start = async () => {
    server = spawn('redis-server', ['--port', String(port), '--dir', dir, '--save', '', ...args], {
      stdio: 'ignore',
    });
    const c = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0 });
    c.on('error', () => {}); // refused while it starts: retried below
    try {
      for (let i = 0; ; i++) {
        try {
          await c.connect();
          await c.ping();
          return;
        } catch (err) {
          c.disconnect();
          if (i > 200) throw err;
          await new Promise((r) => setTimeout(r, 25));
        }
      }
    } finally {
      c.disconnect();
    }
  };
  await start();
  return {
    url,
    port,
    kill: () =>
      new Promise<void>((r) => {
        if (server.exitCode !== null || server.signalCode !== null) return r();
        server.once('exit', () => r());
        server.kill('SIGKILL');
      }),
    start,
    stop() {
      server.once('exit', () => rmSync(dir, { recursive: true, force: true }));
      server.kill('SIGKILL');
    },
  };
}

/** What `controlStack` builds: the gates of one test deployment, and the options a service or worker pool takes. */
export interface ControlStack {
  controls: PreTradeControls;
  breakers: BreakerBoard;
  killSwitch: KillSwitch;
  /** The common options of `ExecutionService` and `startWorkers` (connection, prefix, ledger, gates). */
  base: {
    connection: RedisEndpoint['options'];
    queuePrefix: string;
    ledger: Ledger;
    controls: PreTradeControls;
    breakers: BreakerBoard;
    killSwitch: KillSwitch;
    clock?: Clock;
    metrics?: ExecutionMetrics;
  };
}

/**
 * The pre-trade controls, breakers and kill switch of a test deployment under `prefix`, with the control
 * state restored from the ledger as a run does at start (until then the order gate passes nothing).
 * Breakers take their defaults unless `breakers` (thresholds) or `reduceOnlyPasses` (policy) is given.
 */
export async function controlStack(o: {
  redis: RedisEndpoint;
  cmd: Redis;
  prefix: string;
  ledger: Ledger;
  limits: z.infer<typeof LimitsConfig>;
  breakers?: z.infer<typeof BreakersConfig>;
  /** The breakers' reduce-only policy (`BreakerBoardOptions.reduceOnlyPasses`); default theirs. */
  reduceOnlyPasses?: BreakerBoardOptions['reduceOnlyPasses'];
  /** How long a half-open trial token is held (`BreakerBoardOptions.trialTtlMs`); default theirs. */
  trialTtlMs?: number;
  clock?: Clock;
  metrics?: ExecutionMetrics;
}): Promise<ControlStack> {
  const { cmd: redis, prefix, ledger } = o;
  const opt = { ...(o.clock ? { clock: o.clock } : {}), ...(o.metrics ? { metrics: o.metrics } : {}) };
  const controls = new PreTradeControls({
    redis,
    prefix,
    limits: o.limits,
    ...(o.clock ? { clock: o.clock } : {}),
  });
  const breakers = new BreakerBoard({
    redis,
    prefix,
    config: o.breakers ?? BreakersConfig.parse({}),
    ledger,
    ...(o.reduceOnlyPasses ? { reduceOnlyPasses: o.reduceOnlyPasses } : {}),
    ...(o.trialTtlMs !== undefined ? { trialTtlMs: o.trialTtlMs } : {}),
    ...opt,
  });
  const killSwitch = new KillSwitch({ redis, prefix, ledger, ...opt });
  await restoreControlState({ redis, prefix, killSwitch, breakers, ledger, controls }, { actor: 'test' });
  return {
    controls,
    breakers,
    killSwitch,
    base: {
      connection: o.redis.options,
      queuePrefix: prefix,
      ledger,
      controls,
      breakers,
      killSwitch,
      ...opt,
    },
  };
}

/**
 * A TCP proxy to the Redis at `url` that can go silent: from `cut()` on, nothing passes either way and
 * nothing is refused or closed (a network cut, as a client sees it). `url` is the proxy's own.
 */
export async function silentRedisProxy(
  url: string,
): Promise<{ url: string; port: number; cut(): void; close(): Promise<void> }> {
  const target = new URL(url);
  let silent = false;
  const sockets = new Set<Socket>();
  const proxy = createServer((client) => {
    const upstream = connect(Number(target.port || 6379), target.hostname);
    sockets.add(client).add(upstream);
    client.on('data', (d) => {
      if (!silent) upstream.write(d);
    });
    upstream.on('data', (d) => {
      if (!silent) client.write(d);
    });
    for (const [a, b] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      a.on('error', () => {});
      a.on('close', () => b.destroy());
    }
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  const port = (proxy.address() as AddressInfo).port;
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    cut() {
      silent = true;
    },
    async close() {
      for (const sk of sockets) sk.destroy();
      await new Promise((r) => proxy.close(r));
    },
  };
}
