import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { CliUsageError } from '../cli-error.ts';
import { runCli } from '../program.ts';
import { captureIo } from '../testing.ts';
import { planFromFlags, registerBacktest, runBacktestCommand } from './backtest.ts';

const root = new URL('../../../../', import.meta.url).pathname;

const HULL = [
  '--type',
  'call',
  '--side',
  'short',
  '--spot',
  '49',
  '--strike',
  '50',
  '--expiry-years',
  '0.3846',
  '--vol',
  '0.2',
  '--drift',
  '0.13',
  '--rate',
  '0.05',
];

async function run(args: string[], io = captureIo()): Promise<{ code: number; io: typeof io }> {
  let code = -1;
  const program = new Command().exitOverride();
  registerBacktest(program, io, (c) => (code = c));
  await program.parseAsync(['backtest', ...args], { from: 'user' });
  return { code, io };
}

describe('xhedge backtest', () => {
  it('single option, --json: the textbook numbers (weekly rebalancing: stdToPrice ≈ 0.19)', async () => {
    const { code, io } = await run([
      ...HULL,
      '--paths',
      '3000',
      '--seed',
      '1',
      '--policy',
      'interval',
      '--interval-days',
      '7',
      '--workers',
      '1',
      '--json',
    ]);
    expect(code).toBe(0);
    const out = JSON.parse(io.stdout) as {
      report: { policies: { stdToPrice: number; trades: number; attribution: Record<string, number> }[] };
    };
    const p = out.report.policies[0];
    expect(p?.stdToPrice).toBeGreaterThan(0.16);
    expect(p?.stdToPrice).toBeLessThan(0.23);
    expect(Object.keys(p?.attribution ?? {})).toEqual(
      expect.arrayContaining([
        'deltaUsd',
        'gammaUsd',
        'thetaUsd',
        'vegaUsd',
        'fundingUsd',
        'feesUsd',
        'slippageUsd',
        'gasUsd',
        'bridgeUsd',
      ]),
    );
    expect(io.stderr).toBe(''); // no progress bar when not a terminal
  });

  it('prints tables without --json', async () => {
    const { code, io } = await run([
      ...HULL,
      '--paths',
      '200',
      '--policy',
      'ww',
      '--cost-bps',
      '50',
      '--risk-aversion',
      '2',
      '--workers',
      '1',
    ]);
    expect(code).toBe(0);
    expect(io.stdout).toMatch(
      /policy\s+mean P&L\s+std P&L\s+stdToPrice\s+CVaR95\s+entropic\s+meanCost\s+turnover\s+trades\s+transfers/,
    );
    expect(io.stdout).toMatch(/P&L attribution/);
    expect(io.stdout).toMatch(/^ww\s/m);
  });

  it('--config with --frontier writes SVG and PNG', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xhedge-bt-'));
    const cfg = readFileSync(join(root, 'configs/backtests/btc-replay.yaml'), 'utf8')
      .replace('paths: 200 ', 'paths: 4 ')
      .replace('routing: live ', 'routing: cheapest ')
      .replace('../../packages/sim/data/btc-usd-1h.csv', join(root, 'packages/sim/data/btc-usd-1h.csv'));
    const file = join(dir, 'bt.yaml');
    writeFileSync(file, cfg);
    const { code, io } = await run([
      '--config',
      file,
      '--frontier',
      join(dir, 'out'),
      '--workers',
      '1',
      '--json',
    ]);
    expect(code).toBe(0);
    const out = JSON.parse(io.stdout) as {
      report: { policies: unknown[] };
      frontier: { curves: { points: unknown[] }[]; files: { pngPath: string } };
    };
    expect(out.report.policies).toHaveLength(5);
    expect(out.frontier.curves).toHaveLength(3);
    expect(out.frontier.curves[1]?.points).toHaveLength(5);
    expect(readFileSync(out.frontier.files.pngPath).subarray(1, 4).toString()).toBe('PNG');
    expect(readFileSync(join(dir, 'out', 'frontier.svg'), 'utf8')).toMatch(/<svg/);
  });

  it('an invalid backtest file exits 2 listing every problem by path', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xhedge-bt-'));
    const file = join(dir, 'bad.yaml');
    writeFileSync(
      file,
      'version: 1\nname: x\nbook: {options: []}\nmarket: {vol: -1, process: {kind: gbm}}\nhorizonDays: 1\nstepHours: 1\npaths: 10\nriskAversion: 1\nvenues: []\npolicies: {}\n',
    );
    const { code, io } = await run(['--config', file]);
    expect(code).toBe(2);
    expect(io.stderr).toMatch(/book\.options: the book needs at least one option/);
    expect(io.stderr).toMatch(/market\.vol/);
    expect(io.stderr).toMatch(/venues: at least one venue/);
  });

  it('bad or missing flags are usage errors', () => {
    expect(() => planFromFlags({ type: 'call', side: 'short' })).toThrow(CliUsageError);
    expect(() => planFromFlags({ type: 'straddle', side: 'short', policy: 'band' })).toThrow(
      /--type must be call or put/,
    );
    expect(() =>
      planFromFlags({
        type: 'call',
        side: 'short',
        spot: '49',
        strike: '50',
        expiryYears: '0.3',
        vol: '20',
        policy: 'band',
      }),
    ).toThrow(/--vol is a decimal/);
    const flags = { type: 'call', side: 'short', spot: '49', strike: '50', expiryYears: '0.3', vol: '0.2' };
    expect(() => planFromFlags({ ...flags, policy: 'interval', bandDelta: '0.1' })).toThrow(
      /--band-delta applies to --policy band, not interval/,
    );
    expect(() => planFromFlags({ ...flags, policy: 'ww', intervalDays: '2' })).toThrow(
      /--interval-days applies to --policy interval or leland, not ww/,
    );
    expect(() => planFromFlags({ ...flags, policy: 'band', bandDelta: '0.1' })).not.toThrow();
    expect(() =>
      planFromFlags({
        type: 'call',
        side: 'short',
        spot: '49',
        strike: '50',
        expiryYears: '0.3',
        vol: '0.2',
        policy: 'delta',
      }),
    ).toThrow(/--policy must be one of/);
  });

  it('--frontier without --config is a usage error', async () => {
    await expect(runBacktestCommand({ frontier: 'out' }, captureIo())).rejects.toThrow(
      /--frontier needs --config/,
    );
  });

  it.each([
    [['--policy', 'interval', '--cost-bps', '1e300'], /^error: --cost-bps must be at most 10000, got 1e300$/],
    [['--policy', 'band', '--cost-bps', '1e300'], /^error: --cost-bps must be at most 10000, got 1e300$/],
    [
      ['--policy', 'interval', '--gas-usd', '1e300'],
      /^error: --gas-usd must be at most 1000000000000, got 1e300$/,
    ],
    [['--policy', 'interval', '--drift', '1e300'], /^error: --drift must be at most 100, got 1e300$/],
    [['--policy', 'interval', '--rate', '1e300'], /^error: --rate must be at most 1, got 1e300$/],
    [['--policy', 'interval', '--paths', '1e12'], /^error: --paths must be at most 1000000, got 1e12$/],
    [
      ['--policy', 'interval', '--strike', '1e308'],
      /^error: --strike must be at most 1000000000000, got 1e308$/,
    ],
    [
      ['--policy', 'interval', '--drift', '100', '--expiry-years', '50', '--interval-days', '30'],
      /^error: path \d+: underlying X: the simulated price left the range of a double .*drift 100/,
    ],
  ])('a value that would print Infinity exits 2 with one line naming it: %j', async (extra, line) => {
    const io = captureIo();
    const args = ['backtest', ...HULL, '--paths', '20', '--workers', '1', ...extra, '--json'];
    expect(await runCli(args, io)).toBe(2);
    expect(io.stdout).toBe('');
    const lines = io.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(line);
  });
});
