// `pnpm bench`: 10,000 paths × 30 days of hourly steps, a 10-option BTC book, band policy.
// Two tables, each against a baseline measured in the same run:
//  1. book valuation: the scalar `bsm` call per (step, option) the engine used to make, against the
//     struct-of-arrays `bsmBatch` path valuation it makes now (same paths, same numbers);
//  2. the whole backtest: one thread, against the worker-thread pool (start-up shown apart).
// The machine is shared: the load average is printed before and after, so slow runs can be told apart.
import { availableParallelism, loadavg } from 'node:os';
import { PolicyConfig } from '@xhedge/config';
import { parseOrThrow } from '@xhedge/core';
import { bsm } from '@xhedge/pricing';
import { createBookGrid, priceBookPath } from '../src/book-grid.ts';
import { batchField, createWorkerPool, type EngineJob, mean, runJob } from '../src/index.ts';

const paths = Number(process.env.BENCH_PATHS ?? 10_000);
const pricingPaths = Math.min(paths, Number(process.env.BENCH_PRICING_PATHS ?? 1_000));
const steps = 30 * 24;
const job: EngineJob = {
  options: Array.from({ length: 10 }, (_, i) => ({
    type: i % 2 === 0 ? ('call' as const) : ('put' as const),
    strike: 100_000 * (0.8 + 0.04 * i),
    expiryYears: (14 + 7 * i) / 365,
    sizeBase: i % 3 === 0 ? 2 : -3,
  })),
  spot0: 100_000,
  vol: 0.55,
  volMark: 'fixed',
  rate: 0.04,
  process: { kind: 'simulated', spec: { kind: 'gbm' }, drift: 0, vol: 0.55 },
  steps,
  stepYears: 1 / (365 * 24),
  paths,
  seed: 1,
  policy: parseOrThrow(PolicyConfig, { kind: 'band', bandDelta: 0.5 }, 'policy'),
  venues: [
    {
      id: 'gmx-arb',
      chain: 'evm:42161',
      feeFraction: 6e-4,
      halfSpreadFraction: 1e-4,
      impactFractionPerUsd: 2e-9,
      gasMinUsd: 0.01,
      gasMaxUsd: 0.5,
      priorityFeeUsd: 0,
      fundingRatePerHour: 1e-5,
    },
    {
      id: 'drift-sol',
      chain: 'solana:mainnet-beta',
      feeFraction: 1e-3,
      halfSpreadFraction: 1e-4,
      impactFractionPerUsd: 3e-9,
      gasMinUsd: 0.0005,
      gasMaxUsd: 0.0005,
      priorityFeeUsd: 0.005,
      fundingRatePerHour: 1e-5,
    },
  ],
  unwindAtEnd: true,
  underlying: 'BTC',
  decisions: 'kernel',
  routing: 'cheapest',
};

const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
const printTable = (rows: string[][]): void => {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  for (const r of rows)
    console.log(
      r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  '),
    );
};

// Deterministic spot paths for the valuation table (a random walk; only the pricing is timed).
function spotPath(seed: number): Float64Array {
  const s = new Float64Array(steps + 1);
  let x = 100_000;
  let u = seed * 2654435761;
  for (let k = 0; k <= steps; k++) {
    s[k] = x;
    u = (u * 1103515245 + 12345) % 2147483648;
    x *= 1 + 0.006 * (u / 2147483648 - 0.5);
  }
  return s;
}

/** The engine's former valuation: one `bsm` object per (step, option). */
function scalarBookValue(spots: Float64Array): number {
  let acc = 0;
  for (let k = 0; k <= steps; k++) {
    const t = k * job.stepYears;
    for (const o of job.options) {
      const tau = o.expiryYears - t;
      if (tau <= 1e-12) continue;
      const g = bsm({
        type: o.type,
        spot: spots[k] as number,
        strike: o.strike,
        timeYears: tau,
        vol: job.vol,
        rate: job.rate,
      });
      acc += o.sizeBase * (g.price + g.delta + g.gamma + g.thetaPerDay + g.vegaPerVolPoint);
    }
  }
  return acc;
}

function batchBookValue(spots: Float64Array, grid: ReturnType<typeof createBookGrid>): number {
  const vols = new Float64Array(steps + 1).fill(job.vol);
  const b = priceBookPath(grid, spots, vols);
  let acc = 0;
  for (let k = 0; k <= steps; k++) acc += b.valueUsd[k] as number;
  return acc;
}

const cores = availableParallelism();
console.log(
  `backtest bench: ${paths} paths × ${steps} hourly steps, 10-option book, band policy; ${cores} cores; load average ${load()}`,
);

// 1. Valuation only.
const grid = createBookGrid(job.options, steps, job.stepYears, job.rate);
const options = grid.start[grid.points] ?? 0;
const spotsList = Array.from({ length: pricingPaths }, (_, i) => spotPath(i + 1));
let sink = 0;
for (const s of spotsList.slice(0, 50)) sink += scalarBookValue(s) + batchBookValue(s, grid); // warm-up
let t0 = performance.now();
for (const s of spotsList) sink += scalarBookValue(s);
const scalarS = (performance.now() - t0) / 1000;
t0 = performance.now();
for (const s of spotsList) sink += batchBookValue(s, grid);
const batchS = (performance.now() - t0) / 1000;
if (!Number.isFinite(sink)) throw new Error('valuation produced a non-finite number');
console.log(`\nbook valuation, ${pricingPaths} paths × ${options} live (step, option) pairs, one thread`);
printTable([
  ['valuation', 'seconds', 'options/s', 'ratio'],
  [
    'scalar bsm per option (baseline)',
    scalarS.toFixed(2),
    `${((pricingPaths * options) / scalarS / 1e6).toFixed(1)}M`,
    '1.00×',
  ],
  [
    'bsmBatch per path',
    batchS.toFixed(2),
    `${((pricingPaths * options) / batchS / 1e6).toFixed(1)}M`,
    `${(scalarS / batchS).toFixed(2)}×`,
  ],
]);

// 2. The whole backtest.
// CPU seconds of this process (all threads) per wall second: how many cores the run actually got.
const cpuSeconds = (since: NodeJS.CpuUsage): number => {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1e6;
};
async function single() {
  const t = performance.now();
  const cpu = process.cpuUsage();
  const b = await runJob(job, { workers: 1 });
  const s = (performance.now() - t) / 1000;
  return { s, cores: cpuSeconds(cpu) / s, b };
}
async function pooled() {
  const t = performance.now();
  const cpu = process.cpuUsage();
  const pool = createWorkerPool(cores);
  try {
    // A two-path job: every worker has loaded its modules once this returns.
    await pool.run({ ...job, paths: 2, steps: 1 });
    const startS = (performance.now() - t) / 1000;
    const b = await pool.run(job);
    const s = (performance.now() - t) / 1000;
    return { s, startS, cores: cpuSeconds(cpu) / s, b };
  } finally {
    await pool.close();
  }
}
const base = await single();
const pool = await pooled();
const same = base.b.data.length === pool.b.data.length && base.b.data.every((v, i) => v === pool.b.data[i]);
console.log(`\nwhole backtest (${paths} paths)`);
printTable([
  [
    'run',
    'seconds',
    'of which start-up',
    'cores obtained',
    'paths/s',
    'ratio',
    'mean P&L USD',
    'trades/path',
  ],
  ...[
    { label: 'single thread (baseline)', startS: 0, ...base },
    { label: `worker threads ×${cores}`, ...pool },
  ].map((r) => [
    r.label,
    r.s.toFixed(2),
    r.startS.toFixed(2),
    r.cores.toFixed(2),
    (paths / r.s).toFixed(0),
    `${(base.s / r.s).toFixed(2)}×`,
    mean(batchField(r.b, 'pnlUsd')).toFixed(2),
    mean(batchField(r.b, 'trades')).toFixed(1),
  ]),
]);
console.log(
  `identical results single thread vs workers: ${same ? 'yes' : 'NO'}; target < 15 s on ${cores} cores: ${pool.s < 15 ? 'met' : 'missed'} (${pool.s.toFixed(2)} s); load average ${load()}`,
);
