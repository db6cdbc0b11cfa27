import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bsm } from '@xhedge/pricing';
import { describe, expect, it } from 'vitest';
import { runCli } from './program.ts';
import { captureIo } from './testing.ts';

const dir = mkdtempSync(join(tmpdir(), 'xhedge-risk-'));
function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const AS_OF = '2026-01-01T08:00:00Z';
const CSV = [
  'venue,chain,instrument,size,settle',
  'deribit,offchain,BTC-USD:OPT:20260331:70000:C,2,BTC',
  'gmx-arb,evm:42161,BTC-USD:PERP,-0.5,',
  'drift-sol,solana:mainnet-beta,ETH-USD:PERP,10,USDC',
].join('\n');
const MARKET = JSON.stringify({
  BTC: { spot: 60000, vol: 0.6, rate: 0, iv: { 'BTC-USD:OPT:20260331:70000:C': 0.55 } },
  ETH: { spot: 3000, vol: 0.7 },
});

describe('xhedge risk', () => {
  it('--json: Greeks per underlying with byVenue and byChain', async () => {
    const io = captureIo();
    const code = await runCli(
      [
        'risk',
        '--positions',
        file('ok.csv', CSV),
        '--market',
        file('ok.json', MARKET),
        '--json',
        '--as-of',
        AS_OF,
      ],
      io,
    );
    expect(io.stderr).toBe('');
    expect(code).toBe(0);
    const out = JSON.parse(io.stdout) as {
      underlyings: Record<
        string,
        Record<string, number> & { byVenue: Record<string, Record<string, number>> }
      >;
    };
    const T = (Date.UTC(2026, 2, 31, 8) - Date.UTC(2026, 0, 1, 8)) / (365 * 86_400_000);
    const c = bsm({ type: 'call', spot: 60000, strike: 70000, timeYears: T, vol: 0.55 });
    const btc = out.underlyings.BTC;
    expect(btc?.delta).toBeCloseTo(2 * c.delta - 0.5, 12);
    expect(btc?.deltaUsd).toBeCloseTo((2 * c.delta - 0.5) * 60000, 6);
    expect(btc?.netDeltaCoin).toBeCloseTo(2 * (c.delta - c.price / 60000) - 0.5, 12);
    expect(btc?.gamma1PctUsd).toBeCloseTo(2 * c.gamma * 60000 * 60000 * 0.01, 6);
    expect(btc?.vegaPerVolPoint).toBeCloseTo(2 * c.vegaPerVolPoint, 9);
    expect(btc?.thetaPerDay).toBeCloseTo(2 * c.thetaPerDay, 9);
    expect(btc?.byVenue['gmx-arb']?.delta).toBe(-0.5);
    expect(Object.keys(out.underlyings.ETH?.byChain ?? {})).toEqual(['solana:mainnet-beta']);
  });

  it('prints a table without --json', async () => {
    const io = captureIo();
    const code = await runCli(
      ['risk', '--positions', file('t.csv', CSV), '--market', file('t.json', MARKET), '--as-of', AS_OF],
      io,
    );
    expect(code).toBe(0);
    expect(io.stdout).toMatch(/gamma1PctUsd/);
    expect(io.stdout).toMatch(/venue deribit/);
    expect(io.stdout).toMatch(/chain evm:42161/);
  });

  it('bad CSV: exit 2 naming the line and field', async () => {
    const bad = CSV.replace('gmx-arb,evm:42161,BTC-USD:PERP,-0.5,', 'gmx-arb,evm:42161,BTC-USD:PERP,lots,');
    const io = captureIo();
    expect(
      await runCli(['risk', '--positions', file('bad.csv', bad), '--market', file('m.json', MARKET)], io),
    ).toBe(2);
    expect(io.stderr).toMatch(/bad\.csv line 3: size "lots"/);

    const io2 = captureIo();
    const badChain = CSV.replace('evm:42161', 'arbitrum');
    expect(
      await runCli(
        ['risk', '--positions', file('bad2.csv', badChain), '--market', file('m.json', MARKET)],
        io2,
      ),
    ).toBe(2);
    expect(io2.stderr).toMatch(/line 3: chain "arbitrum"/);

    const io3 = captureIo();
    const badInst = CSV.replace('BTC-USD:OPT:20260331:70000:C', 'BTC-USD:OPT:20260231:70000:C');
    expect(
      await runCli(
        ['risk', '--positions', file('bad3.csv', badInst), '--market', file('m.json', MARKET)],
        io3,
      ),
    ).toBe(2);
    expect(io3.stderr).toMatch(/line 2: invalid instrument id .* not a calendar date/);
  });

  it('bad market JSON: exit 2 naming the field; a missing underlying is named too', async () => {
    const io = captureIo();
    const bad = JSON.stringify({ BTC: { spot: 60000, vol: 60 }, ETH: { spot: 3000, vol: 0.7 } });
    expect(
      await runCli(['risk', '--positions', file('p.csv', CSV), '--market', file('bad.json', bad)], io),
    ).toBe(2);
    expect(io.stderr).toMatch(/bad\.json: BTC\.vol: vol is a decimal/);

    const ioRate = captureIo();
    const pct = JSON.stringify({ BTC: { spot: 60000, vol: 0.6, rate: 5 }, ETH: { spot: 3000, vol: 0.7 } });
    expect(
      await runCli(['risk', '--positions', file('p.csv', CSV), '--market', file('pct.json', pct)], ioRate),
    ).toBe(2);
    expect(ioRate.stderr).toMatch(/pct\.json: BTC\.rate: rate is a decimal per year/);

    const io2 = captureIo();
    const noEth = JSON.stringify({ BTC: { spot: 60000, vol: 0.6 } });
    expect(
      await runCli(['risk', '--positions', file('p.csv', CSV), '--market', file('noeth.json', noEth)], io2),
    ).toBe(2);
    expect(io2.stderr).toMatch(/position 3 \(ETH-USD:PERP\) needs market data for ETH/);

    const io3 = captureIo();
    expect(
      await runCli(
        ['risk', '--positions', file('p.csv', CSV), '--market', file('nojson.json', '{oops')],
        io3,
      ),
    ).toBe(2);
    expect(io3.stderr).toMatch(/not JSON/);
  });

  it('an expired option is worth its payoff at the settlement price given, with no delta; a bad settlement key is named', async () => {
    const csv = [
      'venue,chain,instrument,size,settle',
      'lyra-arb,evm:42161,BTC-USD:OPT:20251231:60000:C,3,USDC',
    ].join('\n');
    const market = JSON.stringify({ BTC: { spot: 70000, vol: 0.6, settlement: { '20251231': 62000 } } });
    const io = captureIo();
    const code = await runCli(
      [
        'risk',
        '--positions',
        file('exp.csv', csv),
        '--market',
        file('exp.json', market),
        '--json',
        '--as-of',
        AS_OF,
      ],
      io,
    );
    expect(io.stderr).toBe('');
    expect(code).toBe(0);
    const out = JSON.parse(io.stdout) as { underlyings: Record<string, Record<string, number>> };
    // settled at 62,000 on 31 Dec: 3 × 2,000 whatever spot does after, and no delta left
    expect(out.underlyings.BTC?.delta).toBe(0);
    expect(out.underlyings.BTC?.gamma).toBe(0);

    const io2 = captureIo();
    const bad = JSON.stringify({ BTC: { spot: 70000, vol: 0.6, settlement: { '2025-12-31': 62000 } } });
    expect(
      await runCli(
        ['risk', '--positions', file('exp2.csv', csv), '--market', file('bad-settle.json', bad)],
        io2,
      ),
    ).toBe(2);
    expect(io2.stderr).toMatch(/settlement keys are expiry dates YYYYMMDD/);
  });
});
