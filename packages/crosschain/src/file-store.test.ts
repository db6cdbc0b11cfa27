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

const linux = process.platform === 'linux';
/** This boot's id (Linux), read here on its own. */
const bootId = () => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
/** When `pid` started, in clock ticks since boot: field 22 of /proc/<pid>/stat, counted after the name. */
const startTicks = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(
    stat
      .slice(stat.lastIndexOf(')') + 2)
      .split(' ')
      .at(22 - 3),
  );
};

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
    if (linux && proc.pid !== undefined) {
      // the lock names the child beyond its pid: this boot and the child's own start time
      const lock = JSON.parse(readFileSync(`${file}.lock`, 'utf8'));
      expect(lock).toMatchObject({ pid: proc.pid, bootId: bootId(), startTicks: startTicks(proc.pid) });
      expect(Number.isSafeInteger(lock.startTicks)).toBe(true);
    }
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

  it.runIf(linux)(
    'a lock of a running pid that started at another time (a reused pid: pid 1 after a container restart) is taken over',
    () => {
      // this very pid, as after a restart where node is pid 1 again
      const file = freshFile();
      const reused = {
        pid: process.pid,
        host: hostname(),
        sinceMs: 0,
        token: 'old',
        bootId: bootId(),
        startTicks: startTicks(process.pid) - 1,
      };
      writeFileSync(`${file}.lock`, JSON.stringify(reused));
      open(file);
      const lock = JSON.parse(readFileSync(`${file}.lock`, 'utf8'));
      expect(lock).toMatchObject({
        pid: process.pid,
        host: hostname(),
        bootId: bootId(),
        startTicks: startTicks(process.pid),
      });
      expect(lock.token).not.toBe('old');
      // and a live pid of another process that started at another time
      const other = freshFile();
      const ppid = process.ppid;
      writeFileSync(
        `${other}.lock`,
        JSON.stringify({ ...reused, pid: ppid, startTicks: startTicks(ppid) + 1 }),
      );
      open(other);
      expect(JSON.parse(readFileSync(`${other}.lock`, 'utf8'))).toMatchObject({ pid: process.pid });
    },
  );

  it.runIf(linux)(
    'a lock of an earlier boot is taken over, even when its pid runs now with its start time',
    () => {
      const file = freshFile();
      const ppid = process.ppid;
      const earlierBoot = {
        pid: ppid,
        host: hostname(),
        sinceMs: 0,
        token: 'boot',
        bootId: '00000000-0000-4000-8000-000000000000',
        startTicks: startTicks(ppid),
      };
      expect(earlierBoot.bootId).not.toBe(bootId());
      writeFileSync(`${file}.lock`, JSON.stringify(earlierBoot));
      open(file);
      expect(JSON.parse(readFileSync(`${file}.lock`, 'utf8'))).toMatchObject({
        pid: process.pid,
        bootId: bootId(),
      });
    },
  );

  it('a lock of a live pid is refused and kept: with this boot and its start time, or written without them', () => {
    const ppid = process.ppid;
    const old = { pid: ppid, host: hostname(), sinceMs: 0, token: 'live' };
    const locks = linux ? [old, { ...old, bootId: bootId(), startTicks: startTicks(ppid) }] : [old];
    for (const lock of locks) {
      const file = freshFile();
      writeFileSync(`${file}.lock`, JSON.stringify(lock));
      expect(() => open(file)).toThrow(
        expect.objectContaining({
          code: 'TRANSFER_STORE_LOCKED',
          message: expect.stringContaining(`is held by pid ${ppid} on host ${hostname()}`),
        }),
      );
      expect(JSON.parse(readFileSync(`${file}.lock`, 'utf8'))).toEqual(lock);
    }
  });

  it('a lock whose start time or boot id is malformed is refused naming them, and kept', () => {
    for (const bad of [{ startTicks: 'soon' }, { startTicks: -1 }, { startTicks: 1.5 }, { bootId: 7 }]) {
      const file = freshFile();
      const lock = { pid: process.ppid, host: hostname(), sinceMs: 0, token: 'bad', ...bad };
      writeFileSync(`${file}.lock`, JSON.stringify(lock));
      expect(() => open(file)).toThrow(
        expect.objectContaining({
          code: 'TRANSFER_STORE_LOCK_UNREADABLE',
          message: expect.stringContaining('bootId a string and startTicks a whole number'),
        }),
      );
      expect(JSON.parse(readFileSync(`${file}.lock`, 'utf8'))).toEqual(lock);
    }
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
