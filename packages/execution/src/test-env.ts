import { randomBytes } from 'node:crypto';
import { capFor, LimitsConfig } from '@xhedge/config';
import { deterministicId, type HedgeIntent, systemClock } from '@xhedge/core';
import { createMarketSimulator } from '@xhedge/sim';
import { type DatabaseHandle, Ledger, openDatabase } from '@xhedge/store';
import type { VenueAdapter } from '@xhedge/venue';
import { createPaperVenue, type PaperVenue } from '@xhedge/venue-paper';
import type { Job, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { BreakerBoard, BreakerBoardOptions } from './breakers.ts';
import { type RestoredControlState, restoreControlState } from './control-state.ts';
import type { PreTradeControls } from './controls.ts';
import type { KillSwitch } from './kill-switch.ts';
import { VenueMarketData } from './market-data.ts';
import { ExecutionMetrics } from './metrics.ts';
import { connectRedis, type RedisEndpoint } from './redis.ts';
import { ExecutionService } from './service.ts';
import { controlStack, machineRedisOrEmbedded } from './testing.ts';
import { type StartWorkersOptions, startWorkers, type WorkerPool } from './worker.ts';

/** The machine's Redis when it answers, else an embedded one (said out loud). */
export function testRedis(): Promise<RedisEndpoint> {
  return machineRedisOrEmbedded('execution tests');
}

/** Counts calls reaching the venue (a transparent wrapper, the venue itself is a paper venue). */
export function countingVenue<V extends VenueAdapter>(v: V): { venue: V; placed: string[] } {
  const placed: string[] = [];
  const venue = new Proxy(v, {
    get(target, prop, recv) {
      const val = Reflect.get(target, prop, recv);
      if (prop === 'placeOrder' && typeof val === 'function') {
        return (req: { clientOrderId: string }) => {
          placed.push(req.clientOrderId);
          return val.call(target, req);
        };
      }
      return typeof val === 'function' ? val.bind(target) : val;
    },
  });
  return { venue, placed };
}

export interface Env {
  redis: RedisEndpoint;
  cmd: Redis;
  prefix: string;
  ledger: Ledger;
  paper: PaperVenue;
  placed: string[];
  metrics: ExecutionMetrics;
  controls: PreTradeControls;
  breakers: BreakerBoard;
  killSwitch: KillSwitch;
  service: ExecutionService;
  pool: WorkerPool;
  marketData: VenueMarketData | undefined;
  intent(n: number, over?: Partial<HedgeIntent>): HedgeIntent;
  /** The control-state restore a run makes after Redis lost its data (`restoreControlState`, actor `test`). */
  restoreControlState(): Promise<RestoredControlState>;
  close(): Promise<void>;
}

export interface MakeEnvOptions {
  venueKind?: 'paper-drift' | 'paper-gmx' | 'paper-spot-amm';
  /** A Redis of the test's own (e.g. `spawnRedisServer`); default the machine's, else embedded. */
  redisUrl?: string;
  /** Venue parameters (e.g. `keeperDelayMs` of paper-gmx). */
  venueParams?: Record<string, unknown>;
  limits?: object;
  /** The breakers' reduce-only policy (`BreakerBoardOptions.reduceOnlyPasses`); default theirs. */
  reduceOnlyPasses?: BreakerBoardOptions['reduceOnlyPasses'];
  /** How long a half-open trial token is held, ms (`BreakerBoardOptions.trialTtlMs`); default theirs. */
  trialTtlMs?: number;
  /** The ledger database; default an in-memory PGlite (closed with the env either way). */
  db?: DatabaseHandle;
  durableIntents?: boolean;
  /** Use `VenueMarketData` over the paper venue as the market-data source. @defaultValue false */
  marketData?: boolean;
  /** Options of the worker pool. */
  workers?: Partial<
    Pick<
      StartWorkersOptions,
      | 'sendDeadlineMs'
      | 'pollBudgetMs'
      | 'pollIntervalMs'
      | 'dependencyReadyAtMs'
      | 'settings'
      | 'killCancelRetryMs'
      | 'killCancelRetryMaxMs'
      | 'killCancelTimeoutMs'
      | 'ledgerRetryMs'
      | 'ledgerRetryForMs'
      | 'log'
    >
  >;
}

export async function makeEnv(opts: MakeEnvOptions = {}): Promise<Env> {
  const redis = opts.redisUrl ? await connectRedis({ url: opts.redisUrl }) : await testRedis();
  const cmd = redis.client();
  const prefix = `xht${randomBytes(4).toString('hex')}`;
  const db = opts.db ?? (await openDatabase());
  const metrics = new ExecutionMetrics();
  const ledger = new Ledger(db);
  const market = createMarketSimulator({
    underlyings: { ETH: { spot: 3500, vol: 0.6 } },
    seed: 3,
    clock: systemClock,
  });
  const kind = opts.venueKind ?? 'paper-drift';
  const paper = createPaperVenue({
    id: 'pv',
    kind,
    chain: kind === 'paper-gmx' ? 'evm:42161' : 'solana:mainnet-beta',
    market,
    ...(opts.venueParams ? { params: opts.venueParams } : {}),
  });
  paper.seedBalance('USDC', 1e8);
  const { venue, placed } = countingVenue(paper);
  const limits = LimitsConfig.parse({
    maxOrderNotionalUsd: 1e6,
    maxHedgeNotionalPerWindowUsd: 1e8,
    ...opts.limits,
  });
  const {
    controls,
    breakers,
    killSwitch,
    base: gates,
  } = await controlStack({
    redis,
    cmd,
    prefix,
    ledger,
    limits,
    metrics,
    ...(opts.reduceOnlyPasses ? { reduceOnlyPasses: opts.reduceOnlyPasses } : {}),
    ...(opts.trialTtlMs !== undefined ? { trialTtlMs: opts.trialTtlMs } : {}),
  });
  const marketData = opts.marketData
    ? new VenueMarketData({
        venues: new Map([['pv', venue as VenueAdapter]]),
        breakers,
        venueExposure: (v) => capFor(limits.maxVenueNotionalUsd, v) !== undefined,
        totalExposure: limits.maxTotalNotionalUsd !== undefined,
      })
    : undefined;
  const base = { ...gates, ...(marketData ? { marketData } : {}) };
  const service = new ExecutionService({ ...base, durableIntents: opts.durableIntents ?? false });
  const subscriber = redis.client();
  const pool = await startWorkers({
    ...base,
    venues: new Map([['pv', venue]]),
    subscriber,
    sendDeadlineMs: 1500,
    pollBudgetMs: 1000,
    pollIntervalMs: 50,
    settings: { lockDuration: 2000, stalledInterval: 1000 },
    ...opts.workers,
  });
  const spot = market.spot('ETH');
  return {
    redis,
    cmd,
    prefix,
    ledger,
    paper,
    placed,
    metrics,
    controls,
    breakers,
    killSwitch,
    service,
    pool,
    marketData,
    restoreControlState: () =>
      restoreControlState({ redis: cmd, prefix, killSwitch, breakers, ledger, controls }, { actor: 'test' }),
    intent: (n, over = {}) => ({
      id: deterministicId('int', prefix, n),
      planId: deterministicId('plan', prefix, n),
      underlying: 'ETH',
      venue: 'pv',
      chain: 'solana:mainnet-beta',
      instrument: 'ETH-USD:PERP',
      side: 'buy',
      sizeBase: '0.5',
      orderType: 'market',
      referencePriceUsd: spot,
      reduceOnly: false,
      urgency: 'normal',
      reason: 'test hedge',
      createdAtMs: Date.now(),
      dependsOn: [],
      ...over,
    }),
    async close() {
      await pool.close(true);
      await service.close();
      subscriber.disconnect();
      await paper.close?.();
      const keys = await cmd.keys(`${prefix}:*`);
      if (keys.length) await cmd.del(...keys);
      cmd.disconnect();
      await redis.close();
      if (db.kind === 'postgres' && db.schema !== 'public') await db.dropSchema();
      await ledger.close();
    },
  };
}

/**
 * The job `id` of `queue` once it has failed, read again after it did: a job read just before it failed
 * still has no `failedReason` (the race that flaked a fresh-clone run).
 */
export async function failedJob(queue: Queue, id: string, timeoutMs = 15_000): Promise<Job> {
  await until(async () => {
    const j = await queue.getJob(id);
    return j && (await j.getState()) === 'failed' ? j : undefined;
  }, timeoutMs);
  const job = await queue.getJob(id);
  if (!job) throw new Error(`job ${id} is gone after it failed`);
  return job;
}

/** Polls until `fn` returns a value or the time is up. */
export async function until<T>(
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 15_000,
  stepMs = 50,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error('until: timed out');
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** A gate: `wait()` resolves once `open()` was called. */
export function gate(): { open(): void; wait(): Promise<void> } {
  let open: () => void = () => {};
  const opened = new Promise<void>((r) => {
    open = r;
  });
  return { open, wait: () => opened };
}

/**
 * The real client, for a `LeaderLease`: once `arm()` was called, its next acquisition (the ACQUIRE
 * script) runs in Redis at once but its answer reaches the lease only after `reply.open()`, an
 * acquisition in flight for as long as the test likes. `sent` resolves when that call went out.
 */
export function heldAcquire(cmd: Redis) {
  const reply = gate();
  const sent = gate();
  let armed = false;
  const redis = new Proxy(cmd, {
    get(target, prop, recv) {
      const val = Reflect.get(target, prop, recv);
      if (prop === 'eval' && typeof val === 'function') {
        return async (...args: unknown[]) => {
          const isAcquire = typeof args[0] === 'string' && args[0].includes("'NX', 'PX'");
          const res = await val.apply(target, args);
          if (armed && isAcquire) {
            armed = false;
            sent.open();
            await reply.wait();
          }
          return res;
        };
      }
      return typeof val === 'function' ? val.bind(target) : val;
    },
  });
  return {
    redis,
    arm: () => {
      armed = true;
    },
    reply,
    sent: sent.wait(),
  };
}
