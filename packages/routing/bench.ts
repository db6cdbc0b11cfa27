/**
 * `pnpm bench` (this package): tick → snapshot → decision → plan for a book of 10,000 positions over
 * 5 venues and 3 chains (BTC, ETH, SOL; 720 distinct options plus perps). Rows:
 * - baseline: every position priced on its own with bsm, Greeks summed into maps (no caching)
 * - full rebuild: a fresh RiskEngine per tick (parse, group, link) then snapshot → decide → plan
 * - setBook, full lists, nothing changed: a long-lived engine given all 10,000 positions every tick (what
 *   a loop that re-reads every venue does); setBook diffs against the cached book
 * - setBook, full lists, every position re-stamped: same, each position with a new as-of time
 * - setBook, full lists, 20 positions changed
 * - incremental, marks + spots only: one RiskEngine; only spots and marks change per tick
 * - incremental, 20 fills per tick (applyFill) + marks + spots
 * - incremental, 20 positions upserted per tick (upsertPositions) + marks + spots
 * - incremental + scenario grid: marks + spots, with the 3×13 full-revaluation scenario grid every tick
 * Prints median and p99 per tick. Target: incremental median ≤ 2 ms, p99 ≤ 10 ms.
 */
import { ManualClock, type Mark, MS_PER_DAY, msToExpiryDate, yearFraction } from '@xhedge/core';
import { bsm } from '@xhedge/pricing';
import { RiskEngine, type RiskPosition } from '@xhedge/risk';
import { HedgeStrategy } from '@xhedge/strategy';
import type { HedgeQuote } from '@xhedge/venue';
import { type BridgeCostModel, planDecision, type RouteVenue } from './src/index.ts';

let seed = 42;
const rand = () => {
  seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
  return seed / 2_147_483_648;
};

const T0 = Date.UTC(2026, 0, 1, 8);
const SPOTS: Record<string, number> = { BTC: 60_000, ETH: 3_000, SOL: 150 };
const VOLS: Record<string, number> = { BTC: 0.6, ETH: 0.7, SOL: 0.9 };
const OPTION_VENUES = [
  { venue: 'lyra-arb', chain: 'evm:42161' },
  { venue: 'lyra-op', chain: 'evm:10' },
];
const PERP_VENUES = [
  { venue: 'gmx-arb', chain: 'evm:42161', gasUsd: 0.3, feeBps: 5 },
  { venue: 'perp-op', chain: 'evm:10', gasUsd: 0.2, feeBps: 4 },
  { venue: 'drift-sol', chain: 'solana:mainnet-beta', gasUsd: 0.005, feeBps: 6 },
];

const options: { id: string; u: string; K: number; call: boolean; expiryMs: number }[] = [];
for (const u of Object.keys(SPOTS)) {
  const S = SPOTS[u] ?? 1;
  for (let e = 1; e <= 8; e++) {
    const expiryMs = T0 + e * 14 * MS_PER_DAY;
    for (let s = -7; s <= 7; s++) {
      const K = Math.round(S * (1 + s * 0.05));
      for (const cp of ['C', 'P'])
        options.push({
          id: `${u}-USD:OPT:${msToExpiryDate(expiryMs)}:${K}:${cp}`,
          u,
          K,
          call: cp === 'C',
          expiryMs,
        });
    }
  }
}
const generated: RiskPosition[] = [];
for (let i = 0; i < 10_000; i++) {
  if (i % 5 < 3) {
    const o = options[Math.floor(rand() * options.length)] as (typeof options)[number];
    const v = OPTION_VENUES[i % 2] as (typeof OPTION_VENUES)[number];
    generated.push({
      ...v,
      instrument: o.id,
      sizeBase: Math.round((rand() - 0.5) * 20) / 10 || 0.1,
      asOfMs: T0,
    });
  } else {
    const u = Object.keys(SPOTS)[i % 3] as string;
    const v = PERP_VENUES[i % 3] as (typeof PERP_VENUES)[number];
    generated.push({
      venue: v.venue,
      chain: v.chain,
      instrument: `${u}-USD:PERP`,
      sizeBase: (rand() - 0.5) * 2,
      asOfMs: T0,
    });
  }
}
// As an adapter delivers them (parsed from JSON): uniform object shapes. The generator's own objects mix
// shapes and field representations, which makes V8 property access several times slower than real input.
const positions = JSON.parse(JSON.stringify(generated)) as RiskPosition[];
const optionById = new Map(options.map((o) => [o.id, o]));

function marksAt(nowMs: number, count: number): Mark[] {
  const out: Mark[] = [];
  for (let i = 0; i < count; i++) {
    const o = options[Math.floor(rand() * options.length)] as (typeof options)[number];
    const v = OPTION_VENUES[i % 2] as (typeof OPTION_VENUES)[number];
    out.push({
      venue: v.venue,
      instrument: o.id,
      markPriceUsd: 100,
      ivDecimal: (VOLS[o.u] ?? 0.6) * (0.95 + rand() * 0.1),
      asOfMs: nowMs,
    });
  }
  return out;
}

function quotesFor(u: string, side: 'buy' | 'sell', size: number, nowMs: number): RouteVenue[] {
  const S = SPOTS[u] ?? 1;
  return PERP_VENUES.map((v) => {
    const mk = (n: number): HedgeQuote => {
      const fee = n * S * (v.feeBps / 10_000);
      const impact = n * S * 0.0001 + 0.00002 * S * n * n;
      return {
        venue: v.venue,
        instrument: `${u}-USD:PERP`,
        side,
        requestedSizeBase: n.toFixed(8),
        executableSizeBase: n.toFixed(8),
        referencePriceUsd: S,
        expectedPriceUsd: S,
        feeUsd: fee,
        impactUsd: impact,
        gasUsd: v.gasUsd,
        fundingCarryUsd: 0,
        totalCostUsd: fee + impact + v.gasUsd,
        expectedLatencyMs: 500,
        asOfMs: nowMs,
      };
    };
    return {
      venue: v.venue,
      chain: v.chain,
      instrument: `${u}-USD:PERP`,
      quotes: [mk(size), mk(size / 4)],
      minSizeBase: 0.001,
      sizeStepBase: 0.001,
      priceTickUsd: 0.01,
      positionBase: 0,
      freeCollateralUsd: 1e9,
      marginFraction: 0.1,
    };
  });
}
const bridge: BridgeCostModel = (a, b) =>
  a === b ? { feeUsd: 0.5, latencyMs: 1000 } : { feeUsd: 5, latencyMs: 120_000 };

function moveSpots(): void {
  for (const u of Object.keys(SPOTS)) SPOTS[u] = (SPOTS[u] ?? 1) * (1 + (rand() - 0.5) * 0.002);
}

function setMarkets(engine: RiskEngine, nowMs: number): void {
  for (const u of Object.keys(SPOTS))
    engine.setMarket(u, { spotUsd: SPOTS[u] ?? 1, volDecimal: VOLS[u] ?? 0.6, asOfMs: nowMs });
}

const clock = new ManualClock(T0);
const strategy = new HedgeStrategy({
  clock,
  defaultPolicy: { kind: 'band', bandDelta: 0.01, targetDelta: 0, urgencyMultiple: 3, minTradeUsd: 10 },
});
let plansMade = 0;
function decideAndPlan(snap: ReturnType<RiskEngine['snapshot']>): void {
  for (const d of strategy.decide(snap)) {
    if (d.action !== 'hedge' || d.side === null) continue;
    const plan = planDecision(d, {
      venues: quotesFor(d.underlying, d.side, Math.abs(d.tradeDeltaBase), d.asOfMs),
      options: { bridge },
    });
    if (plan) plansMade++;
  }
}

function baselineTick(nowMs: number): number {
  // Naive: price each position on its own, sum into per-underlying/venue/chain maps.
  const acc = new Map<string, number>();
  for (const p of positions) {
    const u = p.instrument.slice(0, p.instrument.indexOf('-'));
    const S = SPOTS[u] ?? 1;
    let delta = p.sizeBase;
    let vega = 0;
    const o = optionById.get(p.instrument);
    if (o) {
      const g = bsm({
        type: o.call ? 'call' : 'put',
        spot: S,
        strike: o.K,
        timeYears: yearFraction(nowMs, o.expiryMs),
        vol: VOLS[u] ?? 0.6,
      });
      delta = p.sizeBase * g.delta;
      vega = p.sizeBase * g.vegaPerVolPoint;
    }
    for (const k of [`${u}`, `${u}|${p.venue}`, `${u}|${p.chain}`]) {
      acc.set(`${k}|d`, (acc.get(`${k}|d`) ?? 0) + delta);
      acc.set(`${k}|v`, (acc.get(`${k}|v`) ?? 0) + vega);
    }
  }
  return acc.size;
}

function measure(
  name: string,
  ticks: number,
  fn: (nowMs: number) => void,
): { name: string; median: number; p99: number } {
  const times: number[] = [];
  for (let i = 0; i < ticks + 20; i++) {
    clock.advance(1000);
    moveSpots();
    const t = performance.now();
    fn(clock.nowMs());
    if (i >= 20) times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return {
    name,
    median: times[Math.floor(times.length / 2)] ?? 0,
    p99: times[Math.floor(times.length * 0.99)] ?? 0,
  };
}

const allMarks = marksAt(T0, 1500);
const book = () => ({ positions });
const rows = [
  measure('baseline (per-position bsm, maps)', 200, (now) => baselineTick(now)),
  measure('full rebuild per tick (fresh engine)', 200, (now) => {
    const e = new RiskEngine({ clock });
    e.setBook(book());
    setMarkets(e, now);
    e.updateMarks(allMarks);
    decideAndPlan(e.snapshot({ scenarios: false }));
  }),
];
const warm = new RiskEngine({ clock });
warm.setBook(book());
warm.updateMarks(allMarks);
rows.push(
  measure('setBook, full lists, nothing changed', 500, (now) => {
    warm.setBook(book());
    setMarkets(warm, now);
    warm.updateMarks(marksAt(now, 200));
    decideAndPlan(warm.snapshot({ scenarios: false }));
  }),
);
let restamped = positions;
rows.push(
  measure('setBook, full lists, all re-stamped', 300, (now) => {
    restamped = restamped.map((p) => ({ ...p, asOfMs: now }));
    warm.setBook({ positions: restamped });
    setMarkets(warm, now);
    warm.updateMarks(marksAt(now, 200));
    decideAndPlan(warm.snapshot({ scenarios: false }));
  }),
);
const changing = positions.map((p) => ({ ...p }));
/** Changes 20 random positions' sizes in place; returns them. */
function change20(list: RiskPosition[], nowMs: number): RiskPosition[] {
  const out: RiskPosition[] = [];
  for (let j = 0; j < 20; j++) {
    const i = Math.floor(rand() * list.length);
    const p = list[i] as RiskPosition;
    const next = { ...p, sizeBase: p.sizeBase + (rand() - 0.5), asOfMs: nowMs };
    list[i] = next;
    out.push(next);
  }
  return out;
}
rows.push(
  measure('setBook, full lists, 20 positions changed', 500, (now) => {
    change20(changing, now);
    warm.setBook({ positions: changing });
    setMarkets(warm, now);
    warm.updateMarks(marksAt(now, 200));
    decideAndPlan(warm.snapshot({ scenarios: false }));
  }),
);
const engine = new RiskEngine({ clock });
engine.setBook(book());
engine.updateMarks(allMarks);
rows.push(
  measure('incremental: marks + spots only', 2000, (now) => {
    setMarkets(engine, now);
    engine.updateMarks(marksAt(now, 200));
    decideAndPlan(engine.snapshot({ scenarios: false }));
  }),
  measure('incremental: 20 fills (applyFill) + marks', 2000, (now) => {
    for (let j = 0; j < 20; j++) {
      const p = positions[Math.floor(rand() * positions.length)] as RiskPosition;
      engine.applyFill({
        venue: p.venue,
        chain: p.chain,
        instrument: p.instrument,
        side: rand() < 0.5 ? 'buy' : 'sell',
        sizeBase: '0.1',
        tsMs: now,
      });
    }
    setMarkets(engine, now);
    engine.updateMarks(marksAt(now, 200));
    decideAndPlan(engine.snapshot({ scenarios: false }));
  }),
);
const upserted = positions.map((p) => ({ ...p }));
rows.push(
  measure('incremental: 20 positions upserted + marks', 2000, (now) => {
    engine.upsertPositions(change20(upserted, now));
    setMarkets(engine, now);
    engine.updateMarks(marksAt(now, 200));
    decideAndPlan(engine.snapshot({ scenarios: false }));
  }),
  measure('incremental + scenario grid', 300, (now) => {
    setMarkets(engine, now);
    engine.updateMarks(marksAt(now, 200));
    decideAndPlan(engine.snapshot({ scenarios: true }));
  }),
);
const base = rows[0]?.median ?? 1;
const table = [['path', 'median ms', 'p99 ms', 'median vs baseline']];
for (const r of rows)
  table.push([r.name, r.median.toFixed(3), r.p99.toFixed(3), `${(r.median / base).toFixed(2)}×`]);
const widths = table[0]?.map((_, i) => Math.max(...table.map((r) => (r[i] ?? '').length))) ?? [];
console.log(
  `tick → snapshot → decision → plan; ${positions.length} positions, ${options.length} options, 5 venues, 3 chains`,
);
for (const r of table)
  console.log(r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  '));
const inc = rows.filter((r) => r.name.startsWith('incremental:'));
console.log(
  `plans made: ${plansMade}; target (incremental rows): median ≤ 2 ms, p99 ≤ 10 ms → ${inc.every((r) => r.median <= 2 && r.p99 <= 10) ? 'met' : 'NOT met'}`,
);
