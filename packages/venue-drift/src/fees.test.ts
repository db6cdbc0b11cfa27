import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { solanaFeeLamports } from './fees.ts';

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
