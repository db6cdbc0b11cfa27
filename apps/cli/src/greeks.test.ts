import { describe, expect, it } from 'vitest';
import { runCli } from './program.ts';
import { captureIo } from './testing.ts';

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = captureIo();
  const code = await runCli(args, io);
  return { code, out: io.stdout, err: io.stderr };
}

describe('xhedge greeks / iv', () => {
  it("greeks --json: Hull's example", async () => {
    const r = await run([
      'greeks',
      '--model',
      'bs',
      '--type',
      'call',
      '--spot',
      '49',
      '--strike',
      '50',
      '--expiry-years',
      String(20 / 52),
      '--vol',
      '0.2',
      '--rate',
      '0.05',
      '--json',
    ]);
    expect(r.code).toBe(0);
    const g = JSON.parse(r.out) as Record<string, number>;
    expect(g.price).toBeCloseTo(2.4, 2);
    expect(g.delta).toBeCloseTo(0.522, 3);
    expect(g.gamma).toBeCloseTo(0.066, 3);
    expect(g.vegaPerVolPoint).toBeCloseTo(0.121, 3);
    expect((g.thetaPerDay as number) * 365).toBeCloseTo(-4.31, 2);
    expect(g.rhoPer1Pct).toBeCloseTo(0.0891, 4);
  });

  it('greeks inverse prints priceCoin and netDeltaCoin; a table without --json', async () => {
    const args = [
      'greeks',
      '--model',
      'inverse',
      '--type',
      'put',
      '--forward',
      '60000',
      '--strike',
      '55000',
      '--expiry',
      '2099-01-01T08:00:00Z',
      '--vol',
      '0.6',
    ];
    const j = await run([...args, '--json']);
    expect(j.code).toBe(0);
    const g = JSON.parse(j.out) as Record<string, number>;
    expect(g.netDeltaCoin).toBeCloseTo((g.delta as number) - (g.priceCoin as number), 12);
    expect(g.priceCoin).toBeCloseTo((g.price as number) / 60_000, 12);
    const t = await run(args);
    expect(t.code).toBe(0);
    expect(t.out).toMatch(/^netDeltaCoin\s+-?\d/m);
  });

  it('greeks everlasting and black76', async () => {
    const e = await run([
      'greeks',
      '--model',
      'everlasting',
      '--type',
      'call',
      '--spot',
      '60000',
      '--strike',
      '60000',
      '--vol',
      '0.8',
      '--funding-period-days',
      '1',
      '--json',
    ]);
    expect(e.code).toBe(0);
    const g = JSON.parse(e.out) as Record<string, number>;
    expect(g.fundingUsdPerDay).toBeCloseTo(g.price as number, 9); // ATM: mark − payoff = price, T = 1 day
    const b = await run([
      'greeks',
      '--model',
      'black76',
      '--type',
      'put',
      '--forward',
      '3000',
      '--strike',
      '2800',
      '--expiry-years',
      '0.5',
      '--vol',
      '0.7',
      '--json',
    ]);
    expect(b.code).toBe(0);
    expect(JSON.parse(b.out)).toHaveProperty('rhoPer1Pct');
  });

  it('iv round-trips the greeks price and reports impossible prices with exit 2', async () => {
    const g = JSON.parse(
      (
        await run([
          'greeks',
          '--model',
          'bs',
          '--type',
          'call',
          '--spot',
          '100',
          '--strike',
          '120',
          '--expiry-years',
          '0.3',
          '--vol',
          '0.55',
          '--json',
        ])
      ).out,
    ) as { price: number };
    const iv = await run([
      'iv',
      '--model',
      'bs',
      '--type',
      'call',
      '--spot',
      '100',
      '--strike',
      '120',
      '--expiry-years',
      '0.3',
      '--price',
      String(g.price),
      '--json',
    ]);
    expect(iv.code).toBe(0);
    expect((JSON.parse(iv.out) as { iv: number }).iv).toBeCloseTo(0.55, 10);
    const bad = await run([
      'iv',
      '--model',
      'black76',
      '--type',
      'call',
      '--forward',
      '100',
      '--strike',
      '90',
      '--expiry-years',
      '1',
      '--price',
      '5',
    ]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/below the intrinsic value 10/);
    const high = await run([
      'iv',
      '--model',
      'bs',
      '--type',
      'call',
      '--spot',
      '100',
      '--strike',
      '90',
      '--expiry-years',
      '1',
      '--price',
      '150',
    ]);
    expect(high.code).toBe(2);
    expect(high.err).toMatch(/maximum/);
  });

  it('bad arguments exit 2 with a clear message', async () => {
    const base = ['--type', 'call', '--spot', '100', '--expiry-years', '1', '--vol', '0.5'];
    const missingStrike = await run(['greeks', '--model', 'bs', ...base]);
    expect(missingStrike.code).toBe(2);
    expect(missingStrike.err).toMatch(/--strike is required/);
    const negVol = await run([
      'greeks',
      '--model',
      'bs',
      '--type',
      'call',
      '--spot',
      '100',
      '--strike',
      '100',
      '--expiry-years',
      '1',
      '--vol',
      '-0.2',
    ]);
    expect(negVol.code).toBe(2);
    expect(negVol.err).toMatch(/--vol must be greater than 0/);
    const percent = await run(['greeks', '--model', 'bs', '--strike', '100', ...base.slice(0, -1), '65']);
    expect(percent.code).toBe(2);
    expect(percent.err).toMatch(/--vol is a decimal \(0\.65 = 65%\), got 65/);
    const unknown = await run(['greeks', '--model', 'heston', '--strike', '100', ...base]);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/unknown model "heston"/);
    const past = await run([
      'greeks',
      '--model',
      'bs',
      '--type',
      'call',
      '--spot',
      '100',
      '--strike',
      '100',
      '--expiry',
      '2001-01-01T00:00:00Z',
      '--vol',
      '0.5',
    ]);
    expect(past.code).toBe(2);
    expect(past.err).toMatch(/not in the future/);
  });

  it('refuses a rate or carry given as a percentage', async () => {
    const base = [
      'greeks',
      '--model',
      'bs',
      '--type',
      'call',
      '--spot',
      '100',
      '--strike',
      '100',
      '--expiry-years',
      '1',
    ];
    for (const [extra, message] of [
      [
        ['--vol', '0.5', '--rate', '5'],
        /--rate is a decimal per year \(0\.05 = 5%\), between -1 and 1, got 5/,
      ],
      [['--vol', '0.5', '--carry', '-5'], /--carry is a decimal per year \(0\.05 = 5%\), between -3 and 3/],
    ] as const) {
      const r = await run([...base, ...extra]);
      expect(r.code, extra.join(' ')).toBe(2);
      expect(r.err).toMatch(message);
    }
    expect((await run([...base, '--vol', '0.5', '--rate', '0.05'])).code).toBe(0);
    expect((await run([...base, '--vol', '0.5', '--carry', '-1.5'])).code).toBe(0);
  });
});
