// `pnpm bench` (or `pnpm --filter @xhedge/sim bench`): throughput of each price process and of the
// shared market, as steps per second and as a ratio to plain GBM measured in the same run.
import { ManualClock } from '@xhedge/core';
import { createMarketSimulator, createRng, PathEngine, type ProcessSpec } from '../src/index.ts';

const STEPS = 200_000;
const dt = 1 / 8760;

function timeIt(fn: () => void): number {
  fn(); // warm-up
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

function engineRun(process: ProcessSpec, n: number): () => void {
  return () => {
    const underlyings: Record<string, { spot: number; vol: number }> = {};
    for (let i = 0; i < n; i++) underlyings[`U${i}`] = { spot: 100, vol: 0.6 };
    const e = new PathEngine({ underlyings, process, rng: createRng(1) });
    for (let k = 0; k < STEPS; k++) e.step(dt);
  };
}

const rows: [string, number][] = [
  ['gbm, 1 underlying (baseline)', timeIt(engineRun({ kind: 'gbm' }, 1))],
  ['jump, 1 underlying', timeIt(engineRun({ kind: 'jump' }, 1))],
  ['heston, 1 underlying', timeIt(engineRun({ kind: 'heston' }, 1))],
  ['regime, 1 underlying', timeIt(engineRun({ kind: 'regime' }, 1))],
  ['gbm, 3 correlated', timeIt(engineRun({ kind: 'gbm' }, 3))],
  [
    'market: 3 underlyings + surface',
    timeIt(() => {
      const clock = new ManualClock(0);
      const m = createMarketSimulator({
        underlyings: {
          BTC: { spot: 95_000, vol: 0.55 },
          ETH: { spot: 3_500, vol: 0.7 },
          SOL: { spot: 180, vol: 0.9 },
        },
        correlations: { 'BTC/ETH': 0.8 },
        seed: 1,
        clock,
      });
      clock.advance(STEPS * 1000);
      m.sync();
    }),
  ],
];
const base = rows[0]?.[1] ?? 1;
console.log(`${STEPS} steps each`);
console.log(['case'.padEnd(34), 'steps/s'.padStart(12), 'time vs baseline'.padStart(18)].join(''));
for (const [name, s] of rows)
  console.log(
    [
      name.padEnd(34),
      Math.round(STEPS / s)
        .toString()
        .padStart(12),
      `${(s / base).toFixed(2)}×`.padStart(18),
    ].join(''),
  );
