/**
 * `pnpm bench` / `pnpm -s bench:greeks [--json]`: options per second of the batch Greeks kernel on 1M random
 * BTC options against npm `black-scholes` + `greeks` measured in the same run, and implied-vol solves per
 * second. Seeded inputs; wall-clock figures are for comparison on one machine, not assertions.
 */
import { createRequire } from 'node:module';
import { bsm, bsmBatch, type GreeksBatchOutput, impliedVolBatch } from '../src/index.ts';

const require = createRequire(import.meta.url);
type Bs = { blackScholes(s: number, k: number, t: number, v: number, r: number, cp: string): number };
type Gr = {
  getDelta(s: number, k: number, t: number, v: number, r: number, cp: string): number;
  getGamma(s: number, k: number, t: number, v: number, r: number): number;
  getVega(s: number, k: number, t: number, v: number, r: number): number;
  getTheta(s: number, k: number, t: number, v: number, r: number, cp: string): number;
  getRho(s: number, k: number, t: number, v: number, r: number, cp: string): number;
};
const bs = require('black-scholes') as Bs;
const greeks = require('greeks') as Gr;

const json = process.argv.includes('--json');
const N = 1_000_000;
const IV_N = 200_000;

/** mulberry32: deterministic inputs run to run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const rand = rng(42);
const callPut = new Float64Array(N);
const spot = new Float64Array(N);
const strike = new Float64Array(N);
const timeYears = new Float64Array(N);
const vol = new Float64Array(N);
for (let i = 0; i < N; i++) {
  callPut[i] = rand() < 0.5 ? 1 : -1;
  spot[i] = 60_000 + 20_000 * rand();
  strike[i] = (spot[i] as number) * Math.exp(0.6 * (rand() - 0.5));
  timeYears[i] = 1 / 8760 + rand() * 2; // 1 hour .. 2 years
  vol[i] = 0.3 + rand() * 0.9;
}
const rate = 0.04;
const out: GreeksBatchOutput = {
  price: new Float64Array(N),
  delta: new Float64Array(N),
  gamma: new Float64Array(N),
  vegaPerVolPoint: new Float64Array(N),
  thetaPerDay: new Float64Array(N),
  rhoPer1Pct: new Float64Array(N),
};

function best(runs: number, f: () => void): number {
  let min = Number.POSITIVE_INFINITY;
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    f();
    min = Math.min(min, performance.now() - t0);
  }
  return min / 1000;
}

// Batch engine: warm up, then best of 5.
const batchSec = best(5, () => bsmBatch({ callPut, spot, strike, timeYears, vol, rate }, out));

// npm black-scholes + greeks on the same inputs (fewer options: it is much slower); best of 3.
const NPM_N = 200_000;
let sink = 0;
const npmSec = best(3, () => {
  for (let i = 0; i < NPM_N; i++) {
    const cp = callPut[i] === 1 ? 'call' : 'put';
    const s = spot[i] as number;
    const k = strike[i] as number;
    const t = timeYears[i] as number;
    const v = vol[i] as number;
    sink +=
      bs.blackScholes(s, k, t, v, rate, cp) +
      greeks.getDelta(s, k, t, v, rate, cp) +
      greeks.getGamma(s, k, t, v, rate) +
      greeks.getVega(s, k, t, v, rate) +
      greeks.getTheta(s, k, t, v, rate, cp) +
      greeks.getRho(s, k, t, v, rate, cp);
  }
});

// Scalar API (plain objects) for reference.
const SCALAR_N = 200_000;
const scalarSec = best(3, () => {
  for (let i = 0; i < SCALAR_N; i++)
    sink += bsm({
      type: callPut[i] === 1 ? 'call' : 'put',
      spot: spot[i] as number,
      strike: strike[i] as number,
      timeYears: timeYears[i] as number,
      vol: vol[i] as number,
      rate,
    }).delta;
});

// Implied vol: prices from the accurate scalar pricer, solved back in batch.
const ivCp = callPut.subarray(0, IV_N);
const forward = new Float64Array(IV_N);
const ivPrice = new Float64Array(IV_N);
for (let i = 0; i < IV_N; i++) {
  const T = timeYears[i] as number;
  forward[i] = (spot[i] as number) * Math.exp(rate * T);
  ivPrice[i] = bsm({
    type: callPut[i] === 1 ? 'call' : 'put',
    spot: spot[i] as number,
    strike: strike[i] as number,
    timeYears: T,
    vol: vol[i] as number,
    rate,
  }).price;
}
const ivOut = new Float64Array(IV_N);
const status = new Uint8Array(IV_N);
let failures = 0;
const ivSec = best(3, () => {
  failures = impliedVolBatch(
    {
      callPut: ivCp,
      forward,
      strike: strike.subarray(0, IV_N),
      timeYears: timeYears.subarray(0, IV_N),
      price: ivPrice,
      rate,
    },
    ivOut,
    status,
  );
});
// Accuracy: reprice with the solved vol (1-hour deep ITM options have time value below 1e-15 of the
// price, so the vol itself is not identifiable there; the price round trip is what must hold).
let maxRelPriceErr = 0;
for (let i = 0; i < IV_N; i++) {
  if (status[i] !== 0) continue;
  const p2 = bsm({
    type: callPut[i] === 1 ? 'call' : 'put',
    spot: spot[i] as number,
    strike: strike[i] as number,
    timeYears: timeYears[i] as number,
    vol: ivOut[i] as number,
    rate,
  }).price;
  maxRelPriceErr = Math.max(maxRelPriceErr, Math.abs(p2 - (ivPrice[i] as number)) / (ivPrice[i] as number));
}

const result = {
  options: N,
  batchOptionsPerSec: Math.round(N / batchSec),
  npmBlackScholesGreeksOptionsPerSec: Math.round(NPM_N / npmSec),
  scalarOptionsPerSec: Math.round(SCALAR_N / scalarSec),
  batchVsNpm: Number((NPM_N / npmSec === 0 ? 0 : N / batchSec / (NPM_N / npmSec)).toFixed(1)),
  ivSolves: IV_N,
  ivSolvesPerSec: Math.round(IV_N / ivSec),
  ivFailures: failures,
  ivMaxRelPriceError: maxRelPriceErr,
  targets: { batchOptionsPerSec: 15_000_000, ivSolvesPerSec: 2_000_000 },
  node: process.version,
  sink: Number.isFinite(sink),
};

if (json) console.log(JSON.stringify(result));
else {
  const fmt = (x: number) => x.toLocaleString('en-US');
  const rows: [string, string, string][] = [
    [
      'batch bsmBatch (price+Δ+Γ+vega+θ+ρ)',
      `${fmt(result.batchOptionsPerSec)}/s`,
      `${result.batchVsNpm}× npm`,
    ],
    ['npm black-scholes + greeks (baseline)', `${fmt(result.npmBlackScholesGreeksOptionsPerSec)}/s`, '1.0×'],
    [
      'scalar bsm (plain objects)',
      `${fmt(result.scalarOptionsPerSec)}/s`,
      `${(result.scalarOptionsPerSec / result.npmBlackScholesGreeksOptionsPerSec).toFixed(1)}× npm`,
    ],
    [
      'implied vol (impliedVolBatch)',
      `${fmt(result.ivSolvesPerSec)}/s`,
      `max round-trip price error ${maxRelPriceErr.toExponential(1)}`,
    ],
  ];
  console.log(`xhedge pricing benchmark: ${fmt(N)} random BTC options, one core, ${process.version}`);
  for (const [a, b, c] of rows) console.log(`${a.padEnd(40)} ${b.padStart(16)}  ${c}`);
  console.log(
    `targets: ≥ 15,000,000 options/s batch, ≥ 2,000,000 IV solves/s; ${failures} IV inputs had no time value (deep ITM, 1 hour)`,
  );
}
