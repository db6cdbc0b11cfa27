import { describe, expect, it } from 'vitest';
import { runCli } from '../program.ts';
import { captureIo } from '../testing.ts';

describe('xhedge simulate', () => {
  it('prints GBM summary statistics as JSON, realized vol near the input, deterministic by seed', async () => {
    const args = [
      'simulate',
      '--process',
      'gbm',
      '--vol',
      '0.8',
      '--days',
      '30',
      '--steps-per-day',
      '24',
      '--paths',
      '200',
      '--seed',
      '7',
      '--json',
    ];
    const io = captureIo();
    expect(await runCli(args, io)).toBe(0);
    const out = JSON.parse(io.stdout) as Record<string, number>;
    expect(Math.abs((out.realizedVolMean ?? 0) - 0.8)).toBeLessThan(0.01);
    for (const k of ['realizedVolStd', 'terminalMean', 'terminalStd', 'terminalP05', 'terminalP95'])
      expect(Number.isFinite(out[k])).toBe(true);
    const again = captureIo();
    await runCli(args, again);
    expect(again.stdout).toBe(io.stdout);
  });

  it('runs jump, heston and regime with their flags', async () => {
    const io = captureIo();
    expect(
      await runCli(
        [
          'simulate',
          '--process',
          'jump',
          '--jump-intensity',
          '50',
          '--days',
          '365',
          '--steps-per-day',
          '1',
          '--paths',
          '100',
          '--json',
        ],
        io,
      ),
    ).toBe(0);
    const j = JSON.parse(io.stdout) as Record<string, number>;
    expect(j.jumpsPerPathMean).toBeGreaterThan(45);
    expect(j.jumpsPerPathMean).toBeLessThan(55);
    expect(
      await runCli(
        ['simulate', '--process', 'heston', '--kappa', '2', '--rho', '-0.7', '--paths', '20'],
        captureIo(),
      ),
    ).toBe(0);
    const r = captureIo();
    expect(
      await runCli(
        ['simulate', '--process', 'regime', '--calm-to-stressed', '50', '--paths', '20', '--json'],
        r,
      ),
    ).toBe(0);
    expect((JSON.parse(r.stdout) as Record<string, number>).stressedFraction).toBeGreaterThan(0);
  });

  it.each([
    [['--vol', 'abc']],
    [['--vol', '80']],
    [['--paths', '0']],
    [['--paths', '2.5']],
    [['--process', 'brownian']],
    [['--kappa', '2']],
    [['--process', 'heston', '--rho', '3']],
    [['--days', '1', '--steps-per-day', '1']],
    [['--paths', '1000000', '--days', '365']],
  ])('exits 2 on bad arguments %j', async (extra) => {
    const io = captureIo();
    expect(await runCli(['simulate', ...extra], io)).toBe(2);
    expect(io.stderr).toMatch(/error/);
  });

  it.each([
    [['--drift', '1e300'], /^error: --drift must be at most 100, got 1e300$/],
    // the generators keep 32 bits of a seed: 2^32 + 1 gave the paths of seed 1
    [['--seed', '4294967297'], /^error: --seed must be at most 4294967295, got 4294967297$/],
    [['--drift', '-1e300'], /^error: --drift must be at least -100, got -1e300$/],
    [['--vol', '1e300'], /^error: --vol is a decimal \(0\.8 = 80%\), at most 5, got 1e300$/],
    [['--spot', '1e308'], /^error: --spot must be at most 1000000000000, got 1e308$/],
    [['--spot', '1e-320'], /^error: --spot must be at least 1e-12, got 1e-320$/],
    // a horizon that is not a whole number of steps: refused naming both (it ran 3 days for 2.5)
    [
      ['--days', '2.5', '--steps-per-day', '1'],
      /^error: .*days 2\.5 × stepsPerDay 1 is 2\.5 steps, not a whole number/,
    ],
    [
      ['--days', '1e9'],
      /^error: --paths × steps \(--days × --steps-per-day\) = 1000 × 24000000000 is above the limit of 20000000$/,
    ],
    [
      ['--paths', '1e12'],
      /^error: --paths × steps \(--days × --steps-per-day\) = 1000000000000 × 720 is above/,
    ],
    [['--process', 'jump', '--jump-intensity', '1e300'], /^error: --jump-intensity must be at most 100000/],
    [['--process', 'jump', '--jump-mean', '1000'], /^error: --jump-mean must be at most 5/],
    [['--process', 'jump', '--jump-std', '1e3'], /^error: --jump-std must be at most 5/],
    [['--process', 'heston', '--kappa', '1e300'], /^error: --kappa must be at most 10000/],
    [['--process', 'heston', '--vol-of-vol', '1e300'], /^error: --vol-of-vol must be at most 20/],
    [['--process', 'regime', '--stressed-mult', '1e300'], /^error: --stressed-mult must be at most 20/],
    [
      ['--drift', '100', '--days', '3650', '--steps-per-day', '1', '--paths', '2'],
      /^error: underlying X: the simulated price left the range of a double after 7\.\d+ years .*drift 100/,
    ],
  ])('a value that would print NaN or Infinity exits 2 with one line naming it: %j', async (extra, line) => {
    const io = captureIo();
    expect(await runCli(['simulate', ...extra, '--json'], io)).toBe(2);
    expect(io.stdout).toBe('');
    const lines = io.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(line);
  });
});
