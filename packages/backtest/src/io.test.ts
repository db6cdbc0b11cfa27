import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PolicyConfig } from '@xhedge/config';
import { parseOrThrow, ValidationError } from '@xhedge/core';
import { bsm } from '@xhedge/pricing';
import { describe, expect, it } from 'vitest';
import { type FrontierCurve, planFromFile, planSingleOption, runBacktest } from './backtest.ts';
import { batchField, runPaths } from './engine.ts';
import { BacktestInputError } from './errors.ts';
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
    // A 30-day option on 7-hour steps expires inside the 42-day horizon between steps 102 and 103.
    const late = text.replace('horizonDays: 30', 'horizonDays: 42').replace('stepHours: 1', 'stepHours: 7');
    expect(specProblems(late)).toMatch(
      /book\.options\[0\]\.expiryDays: expires inside the horizon between two steps/,
    );
    // Expiring on a step (30 days = 180 steps of 4 h) or after the horizon is fine.
    expect(() => parseBacktestFile(late.replace('stepHours: 7', 'stepHours: 4'))).not.toThrow();
    expect(() =>
      parseBacktestFile(
        text.replace('horizonDays: 30', 'horizonDays: 28').replace('stepHours: 1', 'stepHours: 7'),
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

describe('bounds a double can run', () => {
  const GBM = `
version: 1
name: bounds
book: { options: [{ type: call, moneyness: 1, expiryDays: 30, size: -1 }] }
market: { spot: 100, vol: 0.5, drift: 0, process: { kind: gbm } }
horizonDays: 30
stepHours: 24
paths: 100
riskAversion: 1
routing: cheapest
venues: [{ id: gmx-arb, chain: "evm:42161", feeBps: 5, halfSpreadBps: 1, gasUsd: 1, priorityFeeUsd: 0 }]
policies: { daily: { kind: interval, intervalMinutes: 1440 } }
`;

  it('the file refuses costs, prices, drifts and sizes past them by path', () => {
    expect(() => parseBacktestFile(GBM)).not.toThrow();
    const cases: [string, string, RegExp][] = [
      ['feeBps: 5', 'feeBps: 1e300', /venues\[0\]\.feeBps: basis points, at most 10000/],
      ['halfSpreadBps: 1', 'halfSpreadBps: 1e300', /venues\[0\]\.halfSpreadBps: basis points, at most 10000/],
      ['gasUsd: 1', 'gasUsd: 1e300', /venues\[0\]\.gasUsd/],
      [
        'priorityFeeUsd: 0',
        'priorityFeeUsd: 1e300',
        /venues\[0\]\.priorityFeeUsd: USD, at most 1000000000000/,
      ],
      ['drift: 0', 'drift: 1e300', /market\.drift: drift is a decimal per year, at most 100/],
      ['spot: 100', 'spot: 1e308', /market\.spot: a price in USD, at most 1000000000000/],
      ['expiryDays: 30', 'expiryDays: 1e300', /book\.options\[0\]\.expiryDays: expiryDays is at most 36500/],
      ['paths: 100', 'paths: 10000000', /paths: paths is at most 1000000/],
      [
        'stepHours: 24',
        'stepHours: 0.0001',
        /stepHours: gives 7200000 steps over horizonDays 30, at most 1000000/,
      ],
      ['kind: gbm', 'kind: jump, intensityPerYear: 1e300', /market\.process\.intensityPerYear/],
      // a moneyness, an impact or a size past the range gave an Infinity strike, cost or P&L
      [
        'moneyness: 1',
        'moneyness: 1e300',
        /book\.options\[0\]\.moneyness: moneyness is strike \/ spot, at most 1000/,
      ],
      [
        'moneyness: 1',
        'moneyness: 1e-300',
        /book\.options\[0\]\.moneyness: moneyness is strike \/ spot, at least 0\.001/,
      ],
      [
        'size: -1',
        'size: -1e300',
        /book\.options\[0\]\.size: size is units of the underlying, at most 1000000000000/,
      ],
      [
        'priorityFeeUsd: 0',
        'priorityFeeUsd: 0, impactBpsPerMillionUsd: 1e300',
        /venues\[0\]\.impactBpsPerMillionUsd: basis points, at most 10000/,
      ],
      // the generators keep 32 bits of a seed: 2^32 + 1 gave the paths of seed 1
      ['paths: 100', 'paths: 100\nseed: 4294967297', /seed: a seed is at most 4294967295/],
    ];
    for (const [from, to, problem] of cases) expect(specProblems(GBM.replace(from, to))).toMatch(problem);
  });

  it('planSingleOption refuses the same by name (a cost of 1e300 bps gave an Infinity std)', () => {
    const base = {
      type: 'call',
      side: 'short',
      spot: 100,
      strike: 100,
      expiryYears: 0.1,
      vol: 0.5,
      paths: 50,
      seed: 1,
      policy: 'interval',
    } as const;
    const problems = (extra: Record<string, number>): string => {
      try {
        planSingleOption({ ...base, ...extra });
      } catch (err) {
        expect(err).toBeInstanceOf(ValidationError);
        return (err as ValidationError).issues.map((i) => `${i.path}: ${i.message}`).join('\n');
      }
      throw new Error('expected a validation error');
    };
    expect(() => planSingleOption(base)).not.toThrow();
    expect(problems({ costBps: 1e300 })).toMatch(/costBps: basis points, at most 10000/);
    expect(problems({ gasUsd: 1e300 })).toMatch(/gasUsd: USD, at most 1000000000000/);
    expect(problems({ drift: 1e300 })).toMatch(/drift: drift is a decimal per year, at most 100/);
    expect(problems({ rate: 1e300 })).toMatch(/rate: /);
    expect(problems({ spot: 1e308 })).toMatch(/spot: a price in USD, at most/);
    expect(problems({ strike: 1e-320 })).toMatch(/strike: a price in USD, at least 1e-12/);
    expect(problems({ paths: 1e12 })).toMatch(/paths: at most 1000000/);
    expect(problems({ expiryYears: 1e300 })).toMatch(/expiryYears: years, at most 100/);
    expect(problems({ stepDays: 1e-9 })).toMatch(/stepDays: .* 36500000000 steps, at most 1000000/);
    expect(problems({ seed: 2 ** 32 + 1 })).toMatch(/seed: a seed is at most 4294967295/);
  });

  it('a strike given as moneyness must land in the range of a price once spot is known', () => {
    const tiny = GBM.replace('spot: 100', 'spot: 1e-11').replace('moneyness: 1', 'moneyness: 0.01');
    expect(() => planFromFile(parseBacktestFile(tiny), '.')).toThrow(
      /book\.options\[0\]\.moneyness: gives a strike of 1e-13 USD \(moneyness × spot 1e-11\), outside 1e-12\.\.1000000000000 USD/,
    );
    expect(() => planFromFile(parseBacktestFile(GBM), '.')).not.toThrow();
  });

  it('a path the drift compounds past a double is an input error naming it, in the thread or a worker', async () => {
    for (const vol of [0, 0.5])
      for (const workers of [1, 2]) {
        const plan = planSingleOption({
          type: 'call',
          side: 'short',
          spot: 100,
          strike: 100,
          expiryYears: 50,
          vol,
          drift: 100,
          paths: 4,
          seed: 1,
          policy: 'interval',
          intervalDays: 30,
        });
        const run = runBacktest(plan, { workers });
        await expect(run).rejects.toThrow(BacktestInputError);
        await expect(run).rejects.toThrow(
          /drift 100 .*(leaves|left) the range of a double|left the range of a double .*drift 100/,
        );
      }
  });

  it('a jump, Heston or regime process at realized vol 0 is refused, not run as a riskless path', async () => {
    for (const kind of ['jump', 'heston', 'regime'] as const) {
      const plan = planFromFile(
        parseBacktestFile(`
version: 1
name: vol0
book: { options: [{ type: put, moneyness: 0.9, expiryDays: 10, size: -1 }] }
market: { spot: 100, vol: 0.5, realizedVol: 0, process: { kind: ${kind} } }
horizonDays: 10
stepHours: 24
paths: 4
riskAversion: 0.01
routing: cheapest
venues: [{ id: flat, chain: offchain, feeBps: 0 }]
policies: { daily: { kind: interval, intervalMinutes: 1440, minTradeUsd: 0 } }
`),
        '.',
      );
      const run = runBacktest(plan, { workers: 1 });
      await expect(run, kind).rejects.toThrow(BacktestInputError);
      await expect(run, kind).rejects.toThrow(new RegExp(`a ${kind} process needs a realized vol above 0`));
    }
  });

  it('a book worth nothing has no stdToPrice (null, not Infinity)', async () => {
    const plan = planSingleOption({
      type: 'call',
      side: 'short',
      spot: 100,
      strike: 200,
      expiryYears: 0.1,
      vol: 0,
      paths: 2,
      seed: 1,
      policy: 'interval',
    });
    const { report } = await runBacktest(plan, { workers: 1 });
    expect(report.bsPriceUsd).toBe(0);
    expect(report.policies[0]?.stdToPrice).toBeNull();
  });
});

describe('a horizon that is not a whole number of steps', () => {
  const file = (horizonDays: number, stepHours: number): string => `
version: 1
name: horizon
book: { options: [{ type: call, moneyness: 1, expiryDays: 30, size: -1 }] }
market: { spot: 100, vol: 0.5, process: { kind: gbm } }
horizonDays: ${horizonDays}
stepHours: ${stepHours}
paths: 2
riskAversion: 0.0001
routing: cheapest
venues: [{ id: flat, chain: offchain, feeBps: 0 }]
policies: { hourly: { kind: band, bandDelta: 0.1 } }
`;

  it('is refused naming the horizon and the step (10.5 h of 1-hour steps ran 11 h, 10.4 h ran 10 h)', () => {
    expect(specProblems(file(10.5 / 24, 1))).toMatch(
      /^horizonDays: horizonDays 0\.4375 \(10\.5 h\) is 10\.5 steps of stepHours 1, not a whole number; .*multiple of the step: 0\.4166666667 days \(10 steps\) or 0\.4583333333 days \(11 steps\)$/,
    );
    expect(specProblems(file(10.4 / 24, 1))).toMatch(
      /horizonDays: .*\(10\.4 h\) is 10\.4 steps of stepHours 1/,
    );
    // 10 days of 7-hour steps: 34.29 steps.
    expect(specProblems(file(10, 7))).toMatch(
      /horizonDays: horizonDays 10 \(240 h\) is 34\.28571429 steps of stepHours 7, not a whole number/,
    );
    // planFromFile refuses it too when given a file that skipped the schema.
    const parsed = parseBacktestFile(file(1, 1));
    expect(() => planFromFile({ ...parsed, horizonDays: 10.5 / 24 }, '.')).toThrow(ValidationError);
    expect(() => planFromFile({ ...parsed, horizonDays: 10.5 / 24 }, '.')).toThrow(
      /horizonDays: horizonDays 0\.4375 \(10\.5 h\) is 10\.5 steps/,
    );
  });

  it('a whole horizon runs and the report states the horizon simulated (1 day of 0.1-hour steps: 240)', async () => {
    const plan = planFromFile(parseBacktestFile(file(1, 0.1)), '.');
    expect(plan.base.steps).toBe(240);
    const { report } = await runBacktest(plan, { workers: 1 });
    expect(report.steps).toBe(240);
    expect(report.horizonDays).toBeCloseTo(1, 12);
    expect(report.stepHours).toBeCloseTo(0.1, 12);
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
