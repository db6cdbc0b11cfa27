// `pnpm bench`: latency from a decision (submitPlan) to the order reaching the paper venue through
// the queue, against the bare BullMQ add → process round trip measured in the same run, on the same
// Redis. The ledger is the machine's Postgres when it answers (production-like: the durable commit
// pays the disk flush), else PGlite. Samples of the paths are interleaved (one of each in turn), so
// load from other processes on the machine hits every path alike, and each sample runs at rest: the
// next starts when the previous job has completed.
// The headline path records plans as runs do, flushed to disk before the add (`durableIntents`, on
// by default: an unflushed record lost in a database crash let a planner hedge the same exposure
// twice); a second row shows the same path without the flush.
// Two floors (Postgres only) put raw statements around the same bare BullMQ hop and nothing else:
// - this design's: the intent row written and flushed before the add, then in the job the send
//   claim (one Redis call) before the send. It is also the least any design meeting the issue can
//   do (the intent in the ledger before the add, a check in Redis before the send); the gap between
//   it and xhedge's path is xhedge's own cost (its checks, market data, JavaScript);
// - the first design: the same row, then a flushed compare-and-set `queued → sent` in the ledger
//   before the send, the guard the send claim replaced.
// BENCH_N (default 3000: a p99 is the 30th-worst sample, not the 10th) samples per path after
// BENCH_WARMUP (default 50) unmeasured ones.
import { randomBytes } from 'node:crypto';
import { type DatabaseHandle, openDatabase, postgresReachable, TEST_PG_URL } from '@xhedge/store';
import { Queue, Worker } from 'bullmq';
import { makeEnv, testRedis } from './test-env.ts';

/** A whole number of samples from the environment, or a clear stop (a NaN would print empty tables). */
function count(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  const n = raw === undefined ? fallback : Number(raw);
  if (!Number.isInteger(n) || n < min) {
    console.error(
      `bench: ${name} must be a whole number of samples, at least ${min}; got ${JSON.stringify(raw)}`,
    );
    process.exit(2);
  }
  return n;
}
const N = count('BENCH_N', 3000, 100);
const WARMUP = count('BENCH_WARMUP', 50, 0);
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
};

interface Path {
  name: string;
  sample(i: number): Promise<number>;
  close(): Promise<void>;
}

/**
 * A plain BullMQ queue and worker, one job at a time: `before` (awaited) → add → the processor runs
 * `inJob` (awaited) and the sample is the time to that point.
 */
async function bullPath(o: {
  name: string;
  queue: string;
  before?: (id: string) => Promise<void>;
  inJob?: (id: string) => Promise<void>;
  data: (i: number) => object;
  close?: () => Promise<void>;
}): Promise<Path & { redis: string }> {
  const redis = await testRedis();
  const prefix = `xhb${randomBytes(3).toString('hex')}`;
  const q = new Queue(o.queue, { connection: redis.options, prefix });
  let t0 = 0;
  let reached: ((ms: number) => void) | undefined;
  let done: (() => void) | undefined;
  const w = new Worker(
    o.queue,
    async (job) => {
      await o.inJob?.(job.id as string);
      reached?.(performance.now() - t0);
    },
    { connection: redis.options, prefix, concurrency: 8 },
  );
  w.on('completed', () => done?.());
  await w.waitUntilReady();
  return {
    name: o.name,
    redis: redis.embedded ? 'embedded js-redis-server' : redis.url,
    async sample(i) {
      const id = `${o.queue}${i}`;
      const r = new Promise<number>((res) => {
        reached = res;
      });
      const d = new Promise<void>((res) => {
        done = res;
      });
      t0 = performance.now();
      await o.before?.(id);
      await q.add('x', o.data(i), { jobId: id, priority: 10 });
      const ms = await r;
      await d;
      return ms;
    },
    async close() {
      await w.close();
      await q.obliterate({ force: true });
      await q.close();
      await redis.close();
      await o.close?.();
    },
  };
}

const bare = () => bullPath({ name: 'bare BullMQ add → process', queue: 'bare', data: (i) => ({ i }) });

/**
 * A floor: raw statements around the bare BullMQ hop, without xhedge's code. `before` the add, the
 * intent row (about the size of an intent, flushed); `claim` decides what the job does before the
 * "send": this design's send claim, or the first design's flushed compare-and-set in the ledger.
 */
async function floor(name: string, db: DatabaseHandle, claim: 'redis' | 'ledger'): Promise<Path> {
  const run = db.prepared;
  if (!run) throw new Error('floor: needs Postgres');
  const table = `bench_floor_${claim}`;
  await run(
    `floor_t_${claim}`,
    `create table ${table} (id text primary key, status text not null, data text)`,
    [],
  );
  const pad = 'x'.repeat(600);
  const redis = await testRedis();
  const cmd = redis.client();
  const claimPrefix = `xhbc${randomBytes(3).toString('hex')}`;
  const path = await bullPath({
    name,
    queue: `floor${claim}`,
    data: (i) => ({ i, pad }),
    before: async (id) => {
      await run(`floor_rec_${claim}`, `insert into ${table} values ($1, 'queued', $2)`, [id, pad]);
    },
    inJob: async (id) => {
      if (claim === 'redis') {
        const ok = await cmd.set(`${claimPrefix}:${id}`, 'send', 'PX', 60_000, 'NX');
        if (ok !== 'OK') throw new Error(`floor: job ${id} not claimed`);
        return;
      }
      const r = await run(
        `floor_claim_${claim}`,
        `update ${table} set status = 'sent' where id = $1 and status = 'queued' returning *`,
        [id],
      );
      if (r.rows.length !== 1) throw new Error(`floor: job ${id} not claimed`);
    },
    close: async () => {
      const keys = await cmd.keys(`${claimPrefix}:*`);
      if (keys.length) await cmd.del(...keys);
      cmd.disconnect();
      await redis.close();
      await db.dropSchema();
      await db.close();
    },
  });
  return path;
}

/** submitPlan of a one-leg plan → placeOrder at the paper venue, every gate and control on. */
async function xhedge(name: string, db: DatabaseHandle, durableIntents: boolean): Promise<Path> {
  const env = await makeEnv({
    venueKind: 'paper-spot-amm',
    db,
    durableIntents,
    marketData: true,
    // every control runs; the throttles are set wide enough for a benchmark's back-to-back orders
    limits: { repeatedExecution: { maxExecutions: 1_000_000, windowSeconds: 60 } },
    // production worker settings (the test defaults check for stalled jobs every second)
    workers: { settings: {} },
  });
  let t0 = 0;
  let reached: ((ms: number) => void) | undefined;
  let done: ((jobId: string | undefined) => void) | undefined;
  for (const w of env.pool.workers) {
    w.on('completed', (job) => done?.(job.id));
    w.on('failed', (job) => done?.(job?.id));
  }
  const place = env.paper.placeOrder.bind(env.paper);
  env.paper.placeOrder = (req) => {
    reached?.(performance.now() - t0);
    return place(req);
  };
  return {
    name,
    async sample(i) {
      const leg = env.intent(i, { instrument: 'ETH-USDC:SPOT', chain: 'evm:1', sizeBase: '0.01' });
      const r = new Promise<number>((res) => {
        reached = res;
      });
      const d = new Promise<void>((res) => {
        done = (id) => {
          if (id === leg.id) res();
        };
      });
      t0 = performance.now();
      const [res] = await env.service.submitPlan({ planId: leg.planId, legs: [leg] });
      if (res?.outcome !== 'queued') throw new Error(`order ${i} not queued: ${res?.reason ?? res?.outcome}`);
      const ms = await r;
      await d;
      return ms;
    },
    close: () => env.close(),
  };
}

const usePg = await postgresReachable();
const open = () =>
  usePg
    ? openDatabase({ url: TEST_PG_URL, schema: `bench_${randomBytes(4).toString('hex')}`, poolSize: 4 })
    : openDatabase();
const b = await bare();
const paths: Path[] = [
  b,
  await xhedge('decision → order at paper venue', await open(), true),
  await xhedge('  same, plan record not flushed', await open(), false),
];
if (usePg) {
  paths.push(await xhedge('  same, ledger on PGlite in memory', await openDatabase(), true));
  paths.push(await floor('  floor: bare + row, claim', await open(), 'redis'));
  paths.push(await floor('  first: bare + row, flushed ledger CAS', await open(), 'ledger'));
}
const xs: number[][] = paths.map(() => []);
for (let i = 0; i < N + WARMUP; i++) {
  for (const [k, p] of paths.entries()) {
    const ms = await p.sample(i);
    if (i >= WARMUP) xs[k]?.push(ms);
  }
}
for (const p of paths) await p.close();

const base = xs[0] as number[];
console.log(
  `n = ${N} per path (after ${WARMUP} warm-up, interleaved); Redis ${b.redis}; ledger ${usePg ? `Postgres ${TEST_PG_URL}` : 'PGlite in memory (no Postgres reachable)'}`,
);
console.log(
  `${'path'.padEnd(40)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'×p50'.padStart(6)} ${'×p99'.padStart(6)}`,
);
for (const [k, p] of paths.entries()) {
  const v = xs[k] as number[];
  console.log(
    `${p.name.padEnd(40)} ${pct(v, 50).toFixed(2).padStart(8)} ${pct(v, 99).toFixed(2).padStart(8)} ${(pct(v, 50) / pct(base, 50)).toFixed(2).padStart(6)} ${(pct(v, 99) / pct(base, 99)).toFixed(2).padStart(6)}`,
  );
}
const ratio = pct(xs[1] as number[], 99) / pct(base, 99);
console.log(
  `target (decision → venue p99 ≤ 2× bare p99): ${ratio <= 2 ? 'met' : 'NOT met'} (${ratio.toFixed(2)}×)`,
);
const fl = paths.findIndex((p) => p.name.includes('floor'));
if (fl >= 0) {
  const f = xs[fl] as number[];
  const floorRatio = pct(f, 99) / pct(base, 99);
  console.log(
    `the floor (the intent row flushed before the add, the send claim before the send, nothing else: the least the issue's design allows) is ${floorRatio.toFixed(2)}× bare at p99; ` +
      `xhedge adds p50 +${(pct(xs[1] as number[], 50) - pct(f, 50)).toFixed(2)} ms, p99 +${(pct(xs[1] as number[], 99) - pct(f, 99)).toFixed(2)} ms over it`,
  );
}
process.exit(0);
