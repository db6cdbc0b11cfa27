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
});
