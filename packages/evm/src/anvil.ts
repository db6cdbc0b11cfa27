import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import path from 'node:path';
import { XhedgeError } from '@xhedge/core';

/** A running anvil node started by {@link startAnvil}. */
export interface AnvilInstance {
  rpcUrl: string;
  port: number;
  pid: number;
  chainId: number;
  /** Stops the node (SIGTERM, then SIGKILL after 2 s). Idempotent. */
  stop(): Promise<void>;
}

export interface StartAnvilOptions {
  /** Port to listen on; a free loopback port when omitted. */
  port?: number;
  /** Chain id. @defaultValue 31337 */
  chainId?: number;
  /** Seconds between blocks; automine (a block per transaction) when omitted. */
  blockTimeSeconds?: number;
  /** Starting timestamp of the chain, seconds since epoch. */
  timestampSeconds?: number;
  /** Base fee of the first block, wei. @defaultValue anvil's 1 gwei */
  baseFeeWei?: bigint;
  /** Extra arguments passed to anvil as is. */
  args?: readonly string[];
  /** How long to wait for the node to answer. @defaultValue 15000 */
  readyTimeoutMs?: number;
}

export class AnvilError extends XhedgeError {
  override name = 'AnvilError';
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('ANVIL', message, { details });
  }
}

/** Path of the real anvil binary shipped in `@foundry-rs/anvil-<platform>` (not the node wrapper). */
export function anvilBinaryPath(): string {
  const require = createRequire(import.meta.url);
  const wrapper = require.resolve('@foundry-rs/anvil/package.json');
  const fromWrapper = createRequire(wrapper);
  const platform = `${process.platform === 'win32' ? 'win32' : process.platform}-${process.arch === 'x64' ? 'amd64' : process.arch}`;
  const pkg = fromWrapper.resolve(`@foundry-rs/anvil-${platform}/package.json`);
  return path.join(path.dirname(pkg), 'bin', process.platform === 'win32' ? 'anvil.exe' : 'anvil');
}

/** A free TCP port on 127.0.0.1 (bind to 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function rpcReady(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
    });
    return res.ok;
  } catch {
    return false;
  }
}

/**
 * Starts anvil on loopback and resolves once it answers JSON-RPC. The caller owns the process and
 * must call `stop()` (tests: in afterAll). Spawns the platform binary directly, so the pid is the node's.
 */
export async function startAnvil(opts: StartAnvilOptions = {}): Promise<AnvilInstance> {
  const port = opts.port ?? (await freePort());
  const chainId = opts.chainId ?? 31337;
  const args = ['--host', '127.0.0.1', '--port', String(port), '--chain-id', String(chainId), '--silent'];
  if (opts.blockTimeSeconds !== undefined) args.push('--block-time', String(opts.blockTimeSeconds));
  if (opts.timestampSeconds !== undefined) args.push('--timestamp', String(opts.timestampSeconds));
  if (opts.baseFeeWei !== undefined) args.push('--base-fee', opts.baseFeeWei.toString());
  if (opts.args) args.push(...opts.args);
  const child: ChildProcess = spawn(anvilBinaryPath(), args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => {
    stderr = (stderr + b.toString()).slice(-2000);
  });
  let exited = false;
  child.on('exit', () => {
    exited = true;
  });
  const rpcUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 15_000);
  while (!(await rpcReady(rpcUrl))) {
    if (exited) throw new AnvilError('anvil exited before it was ready', { stderr, port });
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new AnvilError('anvil did not answer in time', { stderr, port });
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  const pid = child.pid ?? -1;
  return {
    rpcUrl,
    port,
    pid,
    chainId,
    stop: () =>
      new Promise<void>((resolve) => {
        if (exited) return resolve();
        const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}

/** The well-known anvil dev accounts' private keys (public knowledge; local chains only). */
export const ANVIL_DEV_KEYS = [
  '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80',
  '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d',
  '0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a',
  '0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6',
] as const;
