import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeState } from './decode.ts';
import { encodeStateAccount } from './encode.ts';
import { driftMakerRebateQuote, driftTakerFeeQuote, solanaFeeLamports } from './fees.ts';

describe('Solana fees on litesvm', () => {
  it('computes 5000 lamports per signature plus ceil(CU price × limit / 1e6)', () => {
    expect(
      solanaFeeLamports({ signatures: 1, computeUnitPriceMicroLamports: 0n, computeUnitLimit: 200_000 }),
    ).toBe(5000n);
    expect(solanaFeeLamports({ signatures: 2, computeUnitPriceMicroLamports: 1n, computeUnitLimit: 1 })).toBe(
      10_001n,
    );
    expect(
      solanaFeeLamports({ signatures: 1, computeUnitPriceMicroLamports: 10_000n, computeUnitLimit: 300_000 }),
    ).toBe(8000n);
  });

  it('charges 5000 lamports per signature plus CU price × limit when the transaction lands and fails', async () => {
    const result = await runFeeScenario();
    expect(result).toEqual({
      errorName: 'RevertedError',
      outcome: 'rejected',
      paidLamports: solanaFeeLamports({
        signatures: 1,
        computeUnitPriceMicroLamports: 10_000n,
        computeUnitLimit: 300_000,
      }).toString(),
      orderFeeLamports: '8000',
      orderStatus: 'rejected',
      idState: 'released',
    });
    expect(result.paidLamports).toBe('8000');
  });
});

describe('Drift perp fees, as protocol-v2 calculate_taker_fee / calculate_maker_rebate compute them', () => {
  const tier = {
    takerFeeNumerator: 70,
    takerFeeDenominator: 100_000,
    makerRebateNumerator: 15,
    makerRebateDenominator: 100_000,
  };
  it('taker: ceil(quote × num / den), then fee_adjustment (floor of the cut, ceil of the addition)', () => {
    expect(driftTakerFeeQuote(1_000_000_000n, tier, 0)).toBe(700_000n); // 1000 USDC at 7 bps
    expect(driftTakerFeeQuote(1_000_000_001n, tier, 0)).toBe(700_001n); // 700000.0007 rounds up
    expect(driftTakerFeeQuote(1n, tier, 0)).toBe(1n);
    expect(driftTakerFeeQuote(0n, tier, 0)).toBe(0n);
    expect(driftTakerFeeQuote(1_000_000_001n, tier, -50)).toBe(700_001n - 350_000n);
    expect(driftTakerFeeQuote(1_000_000_001n, tier, 50)).toBe(700_001n + 350_001n);
    expect(driftTakerFeeQuote(1_000_000_001n, tier, -100)).toBe(0n);
    // exact past 2^53: no float in between
    expect(driftTakerFeeQuote(10n ** 18n + 1n, tier, 0)).toBe(7n * 10n ** 14n + 1n);
  });

  it('maker rebate: floor(quote × num / den), then fee_adjustment (ceil of the cut, floor of the addition)', () => {
    expect(driftMakerRebateQuote(1_000_000_001n, tier, 0)).toBe(150_000n);
    expect(driftMakerRebateQuote(1_000_000_001n, tier, -33)).toBe(150_000n - 49_500n);
    expect(driftMakerRebateQuote(1_000_000_001n, tier, 33)).toBe(150_000n + 49_500n);
    expect(driftMakerRebateQuote(3_000_000n, tier, -33)).toBe(450n - 149n); // 148.5 cut rounds up
  });

  it('refuses what the program never holds, never a NaN or a guess', () => {
    expect(() => driftTakerFeeQuote(-1n, tier, 0)).toThrow(/fill quote amount -1 must not be negative/);
    expect(() => driftTakerFeeQuote(1n, { ...tier, takerFeeDenominator: 0 }, 0)).toThrow(
      /fee fraction 70\/0/,
    );
    expect(() => driftTakerFeeQuote(1n, tier, 101)).toThrow(/fee_adjustment 101 must be an integer percent/);
    expect(() => driftMakerRebateQuote(1n, tier, 0.5)).toThrow(/fee_adjustment 0\.5/);
  });

  it('the State account writer and reader agree on the perp fee tiers', () => {
    const state = decodeState(
      encodeStateAccount({ perpFeeTiers: [tier, { takerFeeNumerator: 35, makerRebateNumerator: 25 }] }),
    );
    expect(state.perpFeeTiers).toHaveLength(10);
    expect(state.perpFeeTiers[0]).toEqual(tier);
    expect(state.perpFeeTiers[1]).toEqual({
      takerFeeNumerator: 35,
      takerFeeDenominator: 100_000,
      makerRebateNumerator: 25,
      makerRebateDenominator: 100_000,
    });
    // protocol-v2's perps_default tier 0 when none is given: 10 bps taker, 2 bps maker
    expect(decodeState(encodeStateAccount()).perpFeeTiers[0]).toEqual({
      takerFeeNumerator: 100,
      takerFeeDenominator: 100_000,
      makerRebateNumerator: 20,
      makerRebateDenominator: 100_000,
    });
    expect(() =>
      decodeState(encodeStateAccount({ perpFeeTiers: [{}, {}, { makerRebateNumerator: 31 }] })),
    ).toThrow(/fee_tiers\[2\] maker rebate 31\/100000 is outside what the program accepts/);
  });
});

/** Runs test/fee-scenario.ts in a child process (see there why) and returns its RESULT line. */
async function runFeeScenario(): Promise<Record<string, unknown>> {
  const pkg = join(import.meta.dirname, '..');
  const child = spawn(process.execPath, ['--import', 'tsx', join(pkg, 'test/fee-scenario.ts')], {
    cwd: pkg,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  await new Promise<void>((resolve) => child.on('close', () => resolve()));
  const line = out.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`fee scenario printed no result\nstdout: ${out}\nstderr: ${err}`);
  return JSON.parse(line.slice('RESULT '.length)) as Record<string, unknown>;
}
