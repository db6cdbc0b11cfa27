// The operator commands on a deployment's Redis and ledger must fail, not hang, when a backend
// accepts the connection but never answers (a stuck proxy, a Postgres out of connections, a
// blackholed host behind a load balancer): the operator pulling the brakes needs an answer.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectRedis, KillSwitch } from '@xhedge/execution';
import { redisPrefixFor } from '@xhedge/runtime';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { runCli } from './program.ts';
import { captureIo } from './testing.ts';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const root = new URL('../../../', import.meta.url).pathname;
const PAPER_YAML = readFileSync(join(root, 'configs/profiles/paper.yaml'), 'utf8');

/** A TCP server on a free port that keeps every connection open and hands its data to `onData`. */
async function tcpServer(
  onData: (s: Socket, chunk: Buffer) => void = () => {},
): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('data', (chunk: Buffer) => onData(s, chunk));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    port: address.port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A TCP server that accepts every connection and never writes a byte. */
const silentServer = () => tcpServer();

/**
 * A Redis that answers the connection handshake (the ready check's INFO) and then no command: one
 * that stops answering between the connect and the command.
 */
function stallingRedis(): Promise<{ port: number; close(): Promise<void> }> {
  const info = 'redis_version:7.2.0\r\nloading:0\r\n';
  return tcpServer((s, chunk) => {
    // one RESP array per command: CLIENT SETINFO and INFO are the handshake
    for (const cmd of chunk.toString('latin1').split(/(?=\*\d+\r\n)/)) {
      const name = cmd.split('\r\n')[2]?.toLowerCase();
      if (name === 'client') s.write('+OK\r\n');
      else if (name === 'info') s.write(`$${Buffer.byteLength(info)}\r\n${info}\r\n`);
    }
  });
}

describe('operator commands against a Redis or Postgres that never answers', () => {
  let silent: Awaited<ReturnType<typeof silentServer>>;
  let profile: string;
  let name: string;

  beforeAll(async () => {
    silent = await silentServer();
    name = `unresponsive-cli-test ${randomBytes(5).toString('hex')}`;
    profile = join(mkdtempSync(join(tmpdir(), 'xhedge-cli-')), 'profile.yaml');
    writeFileSync(profile, PAPER_YAML.replace(/^name: .*$/m, `name: ${name}`));
  });
  afterAll(async () => {
    await silent.close();
  });
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it('kill-switch status: a silent Redis exits 1 naming it (without its password) instead of hanging', async () => {
    vi.stubEnv('REDIS_URL', `redis://:red1s-s3cret@127.0.0.1:${silent.port}`);
    vi.stubEnv('DATABASE_URL', '');
    const io = captureIo();
    const started = Date.now();
    const code = await runCli(['kill-switch', 'status', '--config', profile], io);
    expect(code).toBe(1);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(io.stderr).toContain(`cannot reach Redis at 127.0.0.1:${silent.port}`);
    expect(io.stderr + io.stdout).not.toContain('red1s-s3cret');
  }, 25_000);

  it('kill-switch status: a Redis that stops answering after the connect exits 1 instead of hanging', async () => {
    const stalling = await stallingRedis();
    try {
      vi.stubEnv('REDIS_URL', `redis://127.0.0.1:${stalling.port}`);
      vi.stubEnv('DATABASE_URL', '');
      const io = captureIo();
      const started = Date.now();
      const code = await runCli(['kill-switch', 'status', '--config', profile], io);
      expect(code).toBe(1);
      expect(Date.now() - started).toBeLessThan(15_000);
      expect(io.stdout).toBe('');
      expect(io.stderr).toMatch(/timed out/);
    } finally {
      await stalling.close();
    }
  }, 25_000);

  it('kill-switch engage: a silent ledger does not delay the stop; exit 1 saying it is engaged, not recorded', async () => {
    vi.stubEnv('REDIS_URL', REDIS_URL);
    vi.stubEnv('DATABASE_URL', `postgres://ops:pg-s3cret@127.0.0.1:${silent.port}/ledger`);
    const io = captureIo();
    const started = Date.now();
    const running = runCli(
      ['kill-switch', 'engage', '--config', profile, '--reason', 'silent ledger drill'],
      io,
    );
    const endpoint = await connectRedis({ url: REDIS_URL });
    const redis = endpoint.client();
    try {
      const kill = new KillSwitch({ redis, prefix: redisPrefixFor(name) });
      // engaged in Redis while the command still waits for the ledger (up to its 10 s)
      let engagedAtMs: number | undefined;
      while (engagedAtMs === undefined && Date.now() - started < 8_000) {
        if ((await kill.engaged()).some((e) => e.scope === 'global')) engagedAtMs = Date.now();
        else await new Promise((r) => setTimeout(r, 50));
      }
      expect(engagedAtMs, 'engaged before the ledger deadline').toBeDefined();
      const code = await running;
      expect(code).toBe(1);
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(io.stderr).toMatch(
        /^error: kill switch ENGAGED global \(orders are stopped\), but the ledger did not record it/,
      );
      expect(io.stderr).toContain(`cannot reach the ledger at 127.0.0.1:${silent.port}`);
      expect(io.stderr + io.stdout).not.toContain('pg-s3cret');
      await kill.release('global', { actor: 'test', reason: 'drill over' });
    } finally {
      await redis.quit();
      await endpoint.close();
    }
  }, 30_000);

  it('positions breaks: a silent ledger exits 1 naming it instead of hanging', async () => {
    vi.stubEnv('DATABASE_URL', `postgres://ops:pg-s3cret@127.0.0.1:${silent.port}/ledger`);
    const io = captureIo();
    const code = await runCli(['positions', 'breaks', '--config', profile], io);
    expect(code).toBe(1);
    expect(io.stderr).toContain(`cannot reach the ledger at 127.0.0.1:${silent.port}`);
    expect(io.stderr + io.stdout).not.toContain('pg-s3cret');
  }, 30_000);

  it('as users run it: the process exits 1 once the command gave up, not held open by the silent connection', async () => {
    const started = Date.now();
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = execFile(
        'pnpm',
        ['-s', 'xhedge', 'kill-switch', 'status', '--config', profile],
        {
          cwd: root,
          timeout: 45_000,
          env: {
            ...process.env,
            REDIS_URL,
            DATABASE_URL: `postgres://ops:pg-s3cret@127.0.0.1:${silent.port}/ledger`,
          },
        },
        (_err, _stdout, stderr) => resolve({ code: child.exitCode, stderr }),
      );
    });
    expect(r.stderr).toContain('cannot reach the ledger');
    expect(r.code).toBe(1);
    expect(Date.now() - started).toBeLessThan(40_000);
  }, 60_000);
});
