import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PolicyConfig } from '@xhedge/config';
import { parseOrThrow, ValidationError } from '@xhedge/core';
import { bsm } from '@xhedge/pricing';
import { describe, expect, it } from 'vitest';
import { type FrontierCurve, planFromFile, runBacktest } from './backtest.ts';
import { batchField, runPaths } from './engine.ts';
import { renderFrontierSvg, writeFrontier } from './frontier.ts';
import { createProgressBar } from './progress.ts';
import { loadBacktestFile, parseBacktestFile } from './spec.ts';
import { specProblems } from './test-helpers.ts';

const example = new URL('../../../configs/backtests/btc-replay.yaml', import.meta.url).pathname;

describe('backtest file', () => {
  it('names every bad field by its path', () => {
    const bad = `
version: 1
name: bad
book: { options: [{ type: call, strike: 100, moneyness: 1, expiryDays: 10, size: -1 }] }
market: { vol: 45, process: { kind: gbm } }
horizonDays: 10
stepHours: 1
paths: 1
riskAversion: 1
venues:
  - { id: a-venue, chain: "evm:1", feeBps: -1 }
  - { id: a-venue, chain: "ethereum", feeBps: 1 }
policies: { band: { kind: band, bandDelta: -1 } }
frontier: [{ policy: nope, param: bandDelta, values: [1, 2] }]
`;
    let err: unknown;
    try {
      parseBacktestFile(bad, 'bad.yaml');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ValidationError);
    const paths = (err as ValidationError).issues.map((i) => i.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        'book.options[0]',
        'market.vol',
        'paths',
        'venues[0].feeBps',
        'venues[1].chain',
        'policies.band.bandDelta',
      ]),
    );
    expect(() => parseBacktestFile('version: 1\nname: x\n', 'min.yaml')).toThrow(/book/);
    expect(() => parseBacktestFile(': : :', 'y.yaml')).toThrow(ValidationError);
  });

  it('cross-checks venues and sweeps once the fields are valid', () => {
    const text = readFileSync(example, 'utf8')
      .replace('id: gmx-arb', 'id: eth-l1-dex')
      .replace('policy: band, param', 'policy: nope, param');
    const err = (() => {
      try {
        parseBacktestFile(text);
      } catch (e) {
        return e as ValidationError;
      }
    })();
    expect(err?.issues.map((i) => i.path)).toEqual(
      expect.arrayContaining(['venues[1].id', 'frontier[1].policy']),
    );
  });

  it('refuses settings the engine would ignore or turn into almost no gas', () => {
    const text = readFileSync(example, 'utf8');
    const replayWith = (extra: string): string => text.replace('  rate: 0.04', `  rate: 0.04\n  ${extra}`);
    expect(specProblems(replayWith('volMark: process'))).toMatch(
      /market\.volMark: a replay has no process vol/,
    );
    expect(specProblems(replayWith('realizedVol: 0.8'))).toMatch(/market\.realizedVol: realizedVol applies/);
    expect(specProblems(replayWith('drift: 0.2'))).toMatch(/market\.drift: drift applies/);
    // min 0 of a log-uniform gas range: the engine paid about a twentieth of max on average.
    expect(specProblems(text.replace('gasUsd: { min: 5, max: 50 }', 'gasUsd: { min: 0, max: 50 }'))).toMatch(
      /venues\[0\]\.gasUsd\.min: gasUsd\.min must be above 0/,
    );
    expect(() =>
      parseBacktestFile(text.replace('gasUsd: { min: 5, max: 50 }', 'gasUsd: { min: 0, max: 0 }')),
    ).not.toThrow();
    // A 30-day option on 7-hour steps expires inside the 40-day horizon between steps 102 and 103.
    const late = text.replace('horizonDays: 30', 'horizonDays: 40').replace('stepHours: 1', 'stepHours: 7');
    expect(specProblems(late)).toMatch(
      /book\.options\[0\]\.expiryDays: expires inside the horizon between two steps/,
    );
    // Expiring on a step (30 days = 180 steps of 4 h) or after the horizon is fine.
    expect(() => parseBacktestFile(late.replace('stepHours: 7', 'stepHours: 4'))).not.toThrow();
    expect(() =>
      parseBacktestFile(
        text.replace('horizonDays: 30', 'horizonDays: 29').replace('stepHours: 1', 'stepHours: 7'),
      ),
    ).not.toThrow();
  });

  it('the shipped BTC replay example loads and runs on the real data', async () => {
    const file = loadBacktestFile(example);
    const plan = planFromFile(file, file.baseDir);
    expect(plan.base.process.kind).toBe('replay');
    expect(plan.base.steps).toBe(720);
    expect(plan.policies.map((p) => p.name)).toContain('ww');
    // A few paths, fast routing: the full file runs from the CLI.
    const small = {
      ...plan,
      base: { ...plan.base, paths: 6, routing: 'cheapest' as const },
      policies: plan.policies.slice(0, 2),
    };
    const { report } = await runBacktest(small, { workers: 1 });
    expect(report.policies).toHaveLength(2);
    for (const p of report.policies) {
      expect(Number.isFinite(p.entropicRiskUsd)).toBe(true);
      expect(p.meanCostUsd).toBeGreaterThan(0);
      expect(p.attribution.gasUsd).toBeLessThan(0);
    }
    // Replay windows start at the configured spot: the first option strike is moneyness × spot.
    expect(plan.base.options[0]?.strike).toBeCloseTo(105_000, 6);
  });

  it('the shipped cross-chain example moves collateral from Arbitrum to the Solana venue', async () => {
    const file = loadBacktestFile(
      new URL('../../../configs/backtests/cross-chain.yaml', import.meta.url).pathname,
    );
    const plan = planFromFile(file, file.baseDir);
    const { report } = await runBacktest({ ...plan, base: { ...plan.base, paths: 4 } }, { workers: 1 });
    for (const p of report.policies) {
      expect(p.transfers).toBeGreaterThan(0);
      expect(p.attribution.bridgeUsd).toBeLessThan(0);
    }
  });

  it('live routing sends trades through @xhedge/routing and splits them across venues when it pays', async () => {
    const file = loadBacktestFile(example);
    const plan = planFromFile(file, file.baseDir);
    // No unwind: venues may end with offsetting positions under live routing, which the unwind would trade.
    const small = {
      ...plan,
      base: { ...plan.base, paths: 2, steps: 48, unwindAtEnd: false },
      policies: plan.policies.slice(0, 1),
    };
    const live = await runBacktest(small, { workers: 1 });
    const cheap = await runBacktest(
      { ...small, base: { ...small.base, routing: 'cheapest' } },
      { workers: 1 },
    );
    const l = live.report.policies[0];
    const c = cheap.report.policies[0];
    expect(l && c).toBeTruthy();
    // Same decisions, so the same hedge turnover; the legs (and so the costs) may differ.
    expect(Math.abs((l?.turnoverUsd ?? 0) / (c?.turnoverUsd ?? 1) - 1)).toBeLessThan(1e-9);
    expect(l?.trades).toBeGreaterThanOrEqual(c?.trades ?? 0);
  });
});

describe('replay of a CSV with a gap', () => {
  it('keeps bars on real time: a 3-hour hole is held at the last price, not squeezed into one bar', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xhedge-replay-'));
    const csv = join(dir, 'gap.csv');
    // Hourly rows at 00..02, nothing at 03 and 04, rows again from 05.
    const rows = [
      ['00', 100],
      ['01', 101],
      ['02', 102],
      ['05', 130],
      ['06', 131],
      ['07', 132],
      ['08', 133],
    ];
    writeFileSync(
      csv,
      `timestamp,price\n${rows.map(([h, p]) => `2025-01-01T${h}:00:00Z,${p}`).join('\n')}\n`,
    );
    // A long 4-hour call, never hedged: the P&L is its payoff at hour 4 less its premium.
    const plan = planFromFile(
      parseBacktestFile(`
version: 1
name: gap
book: { options: [{ type: call, strike: 100, expiryDays: ${4 / 24}, size: 1 }] }
market: { vol: 0.5, process: { kind: replay, csv: ${JSON.stringify(csv)} } }
horizonDays: ${4 / 24}
stepHours: 1
paths: 2
riskAversion: 0.0001
routing: cheapest
venues: [{ id: flat, chain: offchain, feeBps: 0 }]
policies: { none: { kind: band, bandDelta: 1000 } }
`),
      dir,
    );
    expect(plan.base.steps).toBe(4);
    const policy = parseOrThrow(PolicyConfig, { kind: 'band', bandDelta: 1000 }, 'policy');
    const b = await runPaths({ ...plan.base, policy }, 0, 1);
    const premium = bsm({ type: 'call', spot: 100, strike: 100, timeYears: 4 / 24 / 365, vol: 0.5 }).price;
    // At hour 4 the last recorded price is hour 2's 102 (payoff 2); the fifth row (hour 6, 131) is
    // two hours later than the option's expiry.
    expect(batchField(b, 'pnlUsd')[0] as number).toBeCloseTo(2 - premium, 9);
  });
});

describe('efficient frontier plot', () => {
  const curves: FrontierCurve[] = [
    {
      policy: 'band',
      param: 'bandDelta',
      points: [1, 2, 4].map((v) => ({ value: v, riskUsd: 100 * v, costUsd: 50 / v, entropicRiskUsd: 0 })),
    },
    {
      policy: 'ww',
      param: 'riskAversion',
      points: [0.1, 1].map((v) => ({ value: v, riskUsd: 80 / v, costUsd: 40 * v, entropicRiskUsd: 0 })),
    },
  ];
  it('draws one curve per policy and one point per setting, as SVG and PNG', () => {
    const svg = renderFrontierSvg(curves, 'Frontier <test>');
    expect(svg.match(/<polyline /g)).toHaveLength(2);
    expect(svg.match(/<circle /g)).toHaveLength(5);
    expect(svg).toContain('Frontier &lt;test&gt;');
    expect(svg).toContain('band (bandDelta)');
    const dir = mkdtempSync(join(tmpdir(), 'xhedge-frontier-'));
    const files = writeFrontier(curves, dir);
    const png = readFileSync(files.pngPath);
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    expect(png.readUInt32BE(16)).toBe(800); // width from the IHDR chunk
    expect(JSON.parse(readFileSync(files.jsonPath, 'utf8'))).toHaveLength(2);
  });
  it('refuses an empty frontier', () => {
    expect(() => renderFrontierSvg([])).toThrow(/no points/);
  });
});

describe('progress bar', () => {
  it('draws on a terminal, at most once per percent, and clears the line', () => {
    const out: string[] = [];
    let now = 0;
    const bar = createProgressBar({ write: (s) => out.push(s), isTty: true }, 'bt', 10, () => now);
    for (let d = 0; d <= 1000; d += 5) {
      now += 10;
      bar.update(d, 1000);
    }
    bar.finish();
    expect(out.length).toBeGreaterThan(90);
    expect(out.length).toBeLessThanOrEqual(102);
    expect(out.some((s) => s.includes('[##########] 100% 1000/1000 paths'))).toBe(true);
    expect(out[out.length - 1]).toBe('\r\x1b[2K');
  });
  it('stays quiet when not a terminal', () => {
    const out: string[] = [];
    const bar = createProgressBar({ write: (s) => out.push(s), isTty: false });
    bar.update(5, 10);
    bar.finish();
    expect(out).toEqual([]);
  });
});
