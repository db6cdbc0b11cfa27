import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ManualClock } from '@xhedge/core';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { openFileTransferStore, TransferStoreLockedError } from './file-store.ts';
import { TransferTracker } from './tracker.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'xhedge-xfer-store-'));
let n = 0;
const freshFile = () => path.join(dir, `transfers-${++n}.json`);
const children: ChildProcess[] = [];
const opened: { close(): void }[] = [];
const open = (file: string) => {
  const s = openFileTransferStore(file);
  opened.push(s);
  return s;
};

afterEach(() => {
  for (const s of opened.splice(0)) s.close();
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs file-store.child.ts; resolves with its first JSON line (and the process). */
function child(
  mode: 'hold' | 'try',
  file: string,
): Promise<{ proc: ChildProcess; out: Record<string, unknown> }> {
  const proc = spawn(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(new URL('./file-store.child.ts', import.meta.url)), mode, file],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.push(proc);
  let out = '';
  let err = '';
  proc.stderr?.on('data', (d) => {
    err += d;
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`child ${mode} said nothing in 20 s: ${err}`)), 20_000);
    proc.stdout?.on('data', (d) => {
      out += d;
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line && out.includes('\n')) {
        clearTimeout(timer);
        resolve({ proc, out: JSON.parse(line) });
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      if (!out.includes('\n')) reject(new Error(`child ${mode} exited ${code}: ${err}`));
    });
  });
}

const exited = (proc: ChildProcess) =>
  new Promise<void>((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) resolve();
    else proc.once('exit', () => resolve());
  });

const record = (transferId: string) => ({
  transferId,
  kind: 'oft-send' as const,
  srcChain: 'evm:42161' as const,
  dstChain: 'evm:10' as const,
  srcEid: 30110,
  dstEid: 30111,
  asset: 'USDC',
  amount: '100',
  fromVenue: 'arb',
  toVenue: 'op',
  feeUsd: 0.5,
  expectedLatencyMs: 60_000,
  timeoutMs: 180_000,
});

describe('a file transfer store is used by one process at a time', () => {
  it('a second opening in the same process is refused, naming the file and the holder; after close it opens', async () => {
    const file = freshFile();
    const first = open(file);
    const clock = new ManualClock(0);
    await new TransferTracker({ store: first, clock }).create(record('x_a'));
    expect(() => openFileTransferStore(file)).toThrow(TransferStoreLockedError);
    expect(() => openFileTransferStore(file)).toThrow(
      expect.objectContaining({
        code: 'TRANSFER_STORE_LOCKED',
        message: expect.stringContaining(
          `transfer store ${file} is held by pid ${process.pid} on host ${hostname()}`,
        ),
        details: expect.objectContaining({ file, pid: process.pid, host: hostname() }),
      }),
    );
    first.close();
    const second = open(file);
    expect((await new TransferTracker({ store: second, clock }).get('x_a'))?.state).toBe('planned');
    // a closed store is refused, not read stale
    await expect(first.get('x_a')).rejects.toThrow(/is closed/);
  });

  it('another process holding it: opening is refused naming its pid and host; after its kill -9 the lock is taken over', async () => {
    const file = freshFile();
    const { proc, out } = await child('hold', file);
    expect(out.state).toBe('sent');
    let refused: unknown;
    try {
      open(file);
    } catch (err) {
      refused = err;
    }
    expect(refused).toMatchObject({
      code: 'TRANSFER_STORE_LOCKED',
      message: expect.stringContaining(`held by pid ${proc.pid} on host ${hostname()}`),
    });
    proc.kill('SIGKILL');
    await exited(proc);
    // its lock is left behind, naming a dead pid of this host: taken over, not blocking forever
    expect(JSON.parse(readFileSync(`${file}.lock`, 'utf8'))).toMatchObject({ pid: proc.pid });
    const store = open(file);
    expect(JSON.parse(readFileSync(`${file}.lock`, 'utf8'))).toMatchObject({ pid: process.pid });
    const rec = await new TransferTracker({ store, clock: new ManualClock(0) }).get('x_child');
    expect(rec).toMatchObject({ state: 'sent', amount: '100' });
  });

  it('this process holding it: another process is refused, naming this pid', async () => {
    const file = freshFile();
    open(file);
    const { out } = await child('try', file);
    expect(out).toMatchObject({
      opened: false,
      code: 'TRANSFER_STORE_LOCKED',
      message: expect.stringContaining(
        `transfer store ${file} is held by pid ${process.pid} on host ${hostname()}`,
      ),
    });
  });

  it('a lock of another host is refused and kept; one of a dead pid of this host is taken over', async () => {
    const file = freshFile();
    const foreign = { pid: process.pid, host: 'other-host.invalid', sinceMs: 0, token: 'f' };
    writeFileSync(`${file}.lock`, JSON.stringify(foreign));
    expect(() => open(file)).toThrow(/held by another host, pid \d+ on host other-host\.invalid/);
    expect(JSON.parse(readFileSync(`${file}.lock`, 'utf8'))).toEqual(foreign);
    // a pid that ran and exited; and a recovery of it whose process died too
    const proc = spawn(process.execPath, ['-e', '']);
    await exited(proc);
    const deadHolder = { pid: proc.pid, host: hostname(), sinceMs: 0 };
    writeFileSync(`${file}.lock`, JSON.stringify({ ...deadHolder, token: 'd' }));
    writeFileSync(`${file}.lock.recover`, JSON.stringify({ ...deadHolder, token: 'r' }));
    expect(() => open(file)).not.toThrow();
    expect(JSON.parse(readFileSync(`${file}.lock`, 'utf8'))).toMatchObject({ pid: process.pid });
    expect(() => readFileSync(`${file}.lock.recover`)).toThrow(/ENOENT/);
  });

  it('a lock that is not this store’s any more: the write is refused and nothing is written', async () => {
    const file = freshFile();
    const store = open(file);
    const tracker = new TransferTracker({ store, clock: new ManualClock(0) });
    await tracker.create(record('x_b'));
    const before = readFileSync(file, 'utf8');
    writeFileSync(`${file}.lock`, JSON.stringify({ pid: 1, host: hostname(), sinceMs: 0, token: 'other' }));
    await expect(tracker.create(record('x_c'))).rejects.toMatchObject({ code: 'TRANSFER_STORE_LOCK_LOST' });
    expect(readFileSync(file, 'utf8')).toBe(before);
    // close leaves a lock that is not its own alone
    store.close();
    expect(JSON.parse(readFileSync(`${file}.lock`, 'utf8'))).toMatchObject({ token: 'other' });
  });

  it('a store file that is not JSON is refused naming it, and the lock is released', () => {
    const file = freshFile();
    writeFileSync(file, '{not json');
    expect(() => open(file)).toThrow(`transfer store ${file} is not valid JSON`);
    expect(() => readFileSync(`${file}.lock`)).toThrow(/ENOENT/);
  });
});
