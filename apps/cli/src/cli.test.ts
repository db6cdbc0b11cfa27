import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { describe, expect, it, vi } from 'vitest';
import { endOutputOnClosedPipe } from './io.ts';
import { runCli } from './program.ts';
import { captureIo } from './testing.ts';

const root = new URL('../../../', import.meta.url).pathname;
const paper = join(root, 'configs/profiles/paper.yaml');
/** `xhedge greeks` of an at-the-money one-year call; its last argument is the spot. */
const GREEKS_ATM_CALL = [
  'greeks',
  ...['--model', 'bs', '--type', 'call', '--strike', '100', '--expiry-years', '1', '--vol', '0.5'],
  ...['--spot', '100'],
];

describe('xhedge CLI (in process)', () => {
  it('config check: exit 0 and a one-line summary for the paper profile', async () => {
    const io = captureIo();
    expect(await runCli(['config', 'check', paper], io)).toBe(0);
    expect(io.stdout.trim().split('\n')).toHaveLength(1);
    expect(io.stdout).toMatch(/paper-demo: 3 underlyings/);
    expect(io.stdout).not.toMatch(/DRY RUN/);
    const dir = mkdtempSync(join(tmpdir(), 'xhedge-cli-'));
    const dry = join(dir, 'dry.yaml');
    writeFileSync(dry, `${readFileSync(paper, 'utf8')}\ndryRun: true\n`);
    const io2 = captureIo();
    expect(await runCli(['config', 'check', dry], io2)).toBe(0);
    expect(io2.stdout).toMatch(/DRY RUN \(no order reaches a real venue\)/);
  });

  it('start: --metrics-port is refused for the roles that serve the API, and out of range', async () => {
    const all = captureIo();
    expect(await runCli(['start', '--metrics-port', '9464'], all)).toBe(2);
    expect(all.stderr).toMatch(
      /--metrics-port is for --role worker or orchestrator; role all serves \/metrics/,
    );
    const big = captureIo();
    expect(await runCli(['start', '--role', 'worker', '--metrics-port', '70000'], big)).toBe(2);
    expect(big.stderr).toMatch(/--metrics-port must be at most 65535, got 70000/);
  });

  it('config check: exit 2 listing every problem with path, line and hint; no secret printed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xhedge-cli-'));
    const file = join(dir, 'bad.yaml');
    writeFileSync(
      file,
      [
        'version: 1',
        'name: bad',
        'underlyings: [{symbol: BTC}]',
        'venues:',
        '  - {id: a-venue, kind: paper-gmx, chain: evm:42161}',
        '  - {id: b-venue, kind: paper-gmx, chain: ethereum, credentials: {privateKey: "0xTOPSECRET"}}',
        'policy: {default: {kind: band, bandDelta: 1}}',
        'limits: {maxOrderNotionalUsd: -1, maxHedgeNotionalPerWindowUsd: 10}',
      ].join('\n'),
    );
    const io = captureIo();
    expect(await runCli(['config', 'check', file], io)).toBe(2);
    expect(io.stderr).toMatch(/venues\[1\]\.chain \(line 6\): expected evm:<chain id>/);
    expect(io.stderr).toMatch(/hint: chains look like/);
    expect(io.stderr).toMatch(/venues\[1\]\.credentials\.privateKey \(line 6\)/);
    expect(io.stderr).toMatch(/limits\.maxOrderNotionalUsd \(line 8\)/);
    expect(io.stderr).not.toContain('TOPSECRET');
  });

  it('config check: exit 2 naming venue params the runtime would reject, by their path', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xhedge-cli-'));
    const file = join(dir, 'bad-params.yaml');
    writeFileSync(
      file,
      [
        'version: 1',
        'name: bad-params',
        'underlyings: [{symbol: ETH}]',
        'venues:',
        '  - {id: lyra-arb, kind: paper-lyra, chain: evm:42161}',
        '  - {id: drift-sol, kind: paper-drift, chain: solana:mainnet-beta, params: {takerFeeBpz: 3}}',
        '  - {id: gmx-arb, kind: paper-gmx, chain: evm:42161, params: {keeperDelayMs: -5}}',
        'policy: {default: {kind: band, bandDelta: 1}}',
        'limits: {maxOrderNotionalUsd: 1000, maxHedgeNotionalPerWindowUsd: 10000}',
      ].join('\n'),
    );
    const io = captureIo();
    expect(await runCli(['config', 'check', file], io)).toBe(2);
    expect(io.stdout).toBe('');
    expect(io.stderr).toMatch(/: 2 problems\n/);
    expect(io.stderr).toMatch(
      /^ {2}venues\[2\]\.params\.keeperDelayMs: .*\(venue gmx-arb, kind paper-gmx\)$/m,
    );
    expect(io.stderr).toMatch(/^ {2}venues\[1\]\.params: .*takerFeeBpz/m);
    expect(io.stderr).toMatch(/hint: remove the key or check its spelling/);
    expect(io.stderr).not.toMatch(/venues\[0\]/);

    const json = captureIo();
    expect(await runCli(['config', 'check', '--json', file], json)).toBe(2);
    const out = JSON.parse(json.stdout) as { ok: boolean; problems: { path: string }[] };
    expect(out.ok).toBe(false);
    expect(out.problems.map((p) => p.path).sort()).toEqual([
      'venues[1].params',
      'venues[2].params.keeperDelayMs',
    ]);
  });

  const shipped = readdirSync(join(root, 'configs/profiles')).filter((f) => f.endsWith('.yaml'));
  it('the shipped profiles are found', () => {
    expect(shipped).toContain('paper.yaml');
  });
  it.each(shipped)('config check: shipped profile %s passes (venue params included)', async (name) => {
    const io = captureIo();
    expect(await runCli(['config', 'check', join(root, 'configs/profiles', name)], io)).toBe(0);
    expect(io.stderr).toBe('');
    expect(io.stdout).toMatch(/^ok /);
  });

  it('unknown commands and missing arguments exit 2', async () => {
    expect(await runCli(['frobnicate'], captureIo())).toBe(2);
    expect(await runCli(['config', 'check'], captureIo())).toBe(2);
  });

  it('number flags take decimal notation only (0x10 is not 16, a blank is not 0)', async () => {
    const greeks = (spot: string) => [...GREEKS_ATM_CALL.slice(0, -1), spot];
    for (const bad of ['0x10', '0b11', '0o7', '', ' ', '1_000', 'Infinity', '1e309']) {
      const io = captureIo();
      expect(await runCli(greeks(bad), io), JSON.stringify(bad)).toBe(2);
      expect(io.stderr).toMatch(/--spot must be a decimal number/);
    }
    for (const good of ['100', '+100', '1e2', '1.5e2', '.5e3', '100.']) {
      const io = captureIo();
      expect(await runCli(greeks(good), io), good).toBe(0);
    }
  });

  it('a closed output pipe ends the output, not the command: writes go nowhere, nothing exits', () => {
    const written: string[] = [];
    const out = new Writable({
      write(chunk, _enc, cb) {
        written.push(String(chunk));
        cb();
      },
    });
    endOutputOnClosedPipe(out);
    const exit = vi.spyOn(process, 'exit').mockImplementation((() => undefined) as never);
    try {
      out.write('before\n');
      out.emit('error', Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
      expect(out.write('after\n')).toBe(true);
      expect(written).toEqual(['before\n']);
      expect(exit).not.toHaveBeenCalled();
      expect(() => out.emit('error', Object.assign(new Error('disk full'), { code: 'ENOSPC' }))).toThrow(
        'disk full',
      );
    } finally {
      exit.mockRestore();
    }
  });

  it('--help and --version exit 0', async () => {
    const io = captureIo();
    expect(await runCli(['--help'], io)).toBe(0);
    expect(io.stdout).toMatch(/config/);
    const v = captureIo();
    expect(await runCli(['--version'], v)).toBe(0);
    expect(v.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});

describe('xhedge CLI (as users run it: pnpm xhedge)', () => {
  const run = promisify(execFile);
  it('exits 0 for the paper profile and 2 for a missing file', async () => {
    const ok = await run('pnpm', ['-s', 'xhedge', 'config', 'check', 'configs/profiles/paper.yaml'], {
      cwd: root,
    });
    expect(ok.stdout).toMatch(/^ok configs\/profiles\/paper.yaml/);
    await expect(
      run('pnpm', ['-s', 'xhedge', 'config', 'check', 'missing.yaml'], { cwd: root }),
    ).rejects.toMatchObject({ code: 2 });
  });

  it('a reader that closes the pipe early ends the output quietly, exit 0, no EPIPE stack', async () => {
    const child = spawn('pnpm', ['-s', 'xhedge', ...GREEKS_ATM_CALL], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.destroy(); // as `| head -0` would
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect(stderr).not.toMatch(/EPIPE|Unhandled/);
    expect(code).toBe(0);
  }, 60_000);
});
