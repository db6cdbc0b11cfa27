import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { JsonFileOrderStore, OrderStoreLockedError } from './store.ts';

// One writer per order store file. Before: two stores on one file (an old and a new worker in a rolling
// deploy) each kept the file in memory and rewrote it whole, so the file held only the last writer's
// records: cid-A, written ahead of its send, was gone, read as "never sent" and sent again.

const dir = mkdtempSync(path.join(tmpdir(), 'xhedge-order-store-lock-'));
let n = 0;
const freshFile = () => path.join(dir, `venue-${++n}-orders.json`);
const opened: JsonFileOrderStore<Rec>[] = [];
const children: ChildProcess[] = [];

interface Rec {
  clientOrderId: string;
  txHash: string;
  nonce: number;
}
const rec = (clientOrderId: string, nonce: number): Rec => ({
  clientOrderId,
  txHash: `0x${String(nonce).padStart(64, '0')}`,
  nonce,
});

const open = (file: string) => {
  const s = new JsonFileOrderStore<Rec>(file);
  opened.push(s);
  return s;
};
const lockOf = (file: string) => JSON.parse(readFileSync(`${file}.lock`, 'utf8'));

afterEach(() => {
  for (const s of opened.splice(0)) s.close();
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const storeUrl = new URL('./store.ts', import.meta.url).href;
/**
 * A second Node process over the store. `hold`: opens it, puts cid-A, prints its pid and keeps the store
 * open until killed. `try`: tries to open it and prints what happened. `exit`: opens it, puts cid-A and
 * exits without closing it.
 */
const CHILD = `
const { JsonFileOrderStore } = await import(${JSON.stringify(storeUrl)});
const [mode, file] = process.argv.slice(-2);
if (mode === 'try') {
  try {
    new JsonFileOrderStore(file).close();
    console.log(JSON.stringify({ pid: process.pid, opened: true }));
  } catch (err) {
    console.log(JSON.stringify({ pid: process.pid, opened: false, code: err.code, message: err.message }));
  }
} else {
  const store = new JsonFileOrderStore(file);
  await store.put('cid-A', { clientOrderId: 'cid-A', txHash: '0x' + 'a'.repeat(64), nonce: 7 });
  console.log(JSON.stringify({ pid: process.pid, put: 'cid-A' }));
  if (mode === 'hold') setInterval(() => undefined, 60_000);
}
`;

function child(mode: 'hold' | 'try' | 'exit', file: string) {
  const proc = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHILD, mode, file], {
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: fileURLToPath(new URL('..', import.meta.url)),
  });
  children.push(proc);
  let out = '';
  let err = '';
  proc.stderr?.on('data', (d) => {
    err += d;
  });
  return new Promise<{ proc: ChildProcess; out: Record<string, unknown> }>((resolve, reject) => {
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
const startTicks = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(
    stat
      .slice(stat.lastIndexOf(')') + 2)
      .split(' ')
      .at(22 - 3),
  );
};

describe('JsonFileOrderStore: one writer per file', () => {
  it('another process holding the file: opening is refused naming the file, its pid and host and what to do; after its kill -9 the lock is taken over and its record is there', async () => {
    const file = freshFile();
    const { proc, out } = await child('hold', file);
    expect(out).toMatchObject({ pid: proc.pid, put: 'cid-A' });
    let refused: unknown;
    try {
      open(file);
    } catch (err) {
      refused = err;
    }
    expect(refused).toBeInstanceOf(OrderStoreLockedError);
    expect(refused).toMatchObject({
      code: 'ORDER_STORE_LOCKED',
      message: expect.stringContaining(
        `order store ${file} is held by pid ${proc.pid} on host ${hostname()}`,
      ),
      details: expect.objectContaining({ file, pid: proc.pid, host: hostname() }),
    });
    expect((refused as Error).message).toMatch(/stop the other process before starting this one/);
    expect((refused as Error).message).toMatch(/never run two writers of one store/);
    // nothing of ours reached the file: the holder's write-ahead record is intact
    expect(Object.keys(JSON.parse(readFileSync(file, 'utf8')))).toEqual(['cid-A']);

    proc.kill('SIGKILL');
    await exited(proc);
    // its lock is left behind naming a dead pid of this host: taken over, not blocking for ever
    expect(lockOf(file)).toMatchObject({ pid: proc.pid, host: hostname() });
    const store = open(file);
    expect(lockOf(file)).toMatchObject({ pid: process.pid, host: hostname() });
    expect(await store.get('cid-A')).toMatchObject({ clientOrderId: 'cid-A', nonce: 7 });
    await store.put('cid-B', rec('cid-B', 8));
    expect(Object.keys(JSON.parse(readFileSync(file, 'utf8'))).sort()).toEqual(['cid-A', 'cid-B']);
  });

  it('this process holding the file: another process is refused naming this pid', async () => {
    const file = freshFile();
    await open(file).put('cid-A', rec('cid-A', 1));
    const { out } = await child('try', file);
    expect(out).toMatchObject({
      opened: false,
      code: 'ORDER_STORE_LOCKED',
      message: expect.stringContaining(
        `order store ${file} is held by pid ${process.pid} on host ${hostname()}`,
      ),
    });
  });

  it('a second store on the file in this process shares the first: each sees the other’s writes at once, the lock stays until the last one closes, then a new store reads the file', async () => {
    const file = freshFile();
    const first = open(file);
    await first.put('cid-A', rec('cid-A', 1));
    const token = lockOf(file).token;
    // another spelling of the same file (relative, through a symlinked folder) is the same store
    const linked = path.join(dir, `link-${n}`);
    symlinkSync(dir, linked);
    const second = open(path.relative(process.cwd(), path.join(linked, path.basename(file))));
    expect(await second.get('cid-A')).toMatchObject({ nonce: 1 });
    await second.put('cid-B', rec('cid-B', 2));
    // the finding: two writers on one file dropped each other's write-ahead records; now one copy
    expect(await first.get('cid-B')).toMatchObject({ nonce: 2 });
    await first.put('cid-C', rec('cid-C', 3));
    expect(Object.keys(JSON.parse(readFileSync(file, 'utf8'))).sort()).toEqual(['cid-A', 'cid-B', 'cid-C']);
    expect(lockOf(file).token).toBe(token);

    // the old one closes (a venue rebuilt for new params): the new one goes on, the lock still held
    first.close();
    await expect(first.get('cid-A')).rejects.toMatchObject({ code: 'ORDER_STORE_CLOSED' });
    await expect(first.put('cid-D', rec('cid-D', 4))).rejects.toMatchObject({ code: 'ORDER_STORE_CLOSED' });
    first.close(); // idempotent: does not close the other's share
    expect(lockOf(file)).toMatchObject({ pid: process.pid, token });
    await second.put('cid-D', rec('cid-D', 4));
    expect((await second.list()).map((r) => r.clientOrderId).sort()).toEqual([
      'cid-A',
      'cid-B',
      'cid-C',
      'cid-D',
    ]);
    const { out } = await child('try', file);
    expect(out).toMatchObject({ opened: false, code: 'ORDER_STORE_LOCKED' });

    // the last one closes: no lock behind; a new store reads the file again (a change made meanwhile shows)
    second.close();
    expect(existsSync(`${file}.lock`)).toBe(false);
    const onDisk = JSON.parse(readFileSync(file, 'utf8'));
    writeFileSync(file, JSON.stringify({ ...onDisk, 'cid-E': rec('cid-E', 5) }));
    const third = open(file);
    expect(lockOf(file).token).not.toBe(token);
    expect((await third.list()).map((r) => r.clientOrderId).sort()).toEqual([
      'cid-A',
      'cid-B',
      'cid-C',
      'cid-D',
      'cid-E',
    ]);
    await expect(second.get('cid-A')).rejects.toMatchObject({ code: 'ORDER_STORE_CLOSED' });
  });

  it('a second store on an open file with another archive is refused; one whose lock was taken over is refused at once', async () => {
    const file = freshFile();
    const first = open(file);
    await first.put('cid-A', rec('cid-A', 1));
    expect(() => new JsonFileOrderStore<Rec>(file, { archiveFile: `${file}.other.jsonl` })).toThrow(
      /is open in this process with the archive .*cannot be opened again with the archive/,
    );
    const other = { pid: process.ppid, host: hostname(), sinceMs: 0, token: 'other' };
    writeFileSync(`${file}.lock`, JSON.stringify(other));
    expect(() => new JsonFileOrderStore<Rec>(file)).toThrow(
      expect.objectContaining({ code: 'ORDER_STORE_LOCK_LOST' }),
    );
    first.close();
    expect(lockOf(file)).toEqual(other);
  });

  it('a process that exits without closing the store leaves no lock behind', async () => {
    const file = freshFile();
    const { proc } = await child('exit', file);
    await exited(proc);
    expect(proc.exitCode).toBe(0);
    expect(existsSync(`${file}.lock`)).toBe(false);
    expect(await open(file).get('cid-A')).toMatchObject({ nonce: 7 });
  });

  it('a lock that is no longer this store’s: the write is refused, nothing is written, close leaves it alone', async () => {
    const file = freshFile();
    const store = open(file);
    await store.put('cid-A', rec('cid-A', 1));
    const before = readFileSync(file, 'utf8');
    const other = { pid: process.ppid, host: hostname(), sinceMs: 0, token: 'other' };
    writeFileSync(`${file}.lock`, JSON.stringify(other));
    await expect(store.put('cid-B', rec('cid-B', 2))).rejects.toMatchObject({
      code: 'ORDER_STORE_LOCK_LOST',
      message: expect.stringContaining(`held by pid ${process.ppid}`),
    });
    await expect(store.compact()).rejects.toMatchObject({ code: 'ORDER_STORE_LOCK_LOST' });
    expect(readFileSync(file, 'utf8')).toBe(before);
    store.close();
    expect(lockOf(file)).toEqual(other);
  });

  it('a lock of another host is refused and kept; an unreadable lock is refused naming it', () => {
    const file = freshFile();
    const foreign = { pid: process.pid, host: 'other-host.invalid', sinceMs: 0, token: 'f' };
    writeFileSync(`${file}.lock`, JSON.stringify(foreign));
    expect(() => open(file)).toThrow(
      /held by another host, pid \d+ on host other-host\.invalid.*remove it by hand once that host no longer runs the venue/,
    );
    expect(lockOf(file)).toEqual(foreign);
    const garbled = freshFile();
    writeFileSync(`${garbled}.lock`, 'not json');
    expect(() => open(garbled)).toThrow(
      expect.objectContaining({
        code: 'ORDER_STORE_LOCK_UNREADABLE',
        message: expect.stringContaining(`${garbled}.lock does not name its holder`),
      }),
    );
  });

  it.runIf(linux)(
    'a lock of a running pid that started at another time (reused), or of an earlier boot, is taken over',
    () => {
      const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
      const reused = freshFile();
      writeFileSync(
        `${reused}.lock`,
        JSON.stringify({
          pid: process.ppid,
          host: hostname(),
          sinceMs: 0,
          token: 'old',
          bootId,
          startTicks: startTicks(process.ppid) + 1,
        }),
      );
      open(reused);
      expect(lockOf(reused)).toMatchObject({ pid: process.pid, startTicks: startTicks(process.pid), bootId });
      const earlierBoot = freshFile();
      writeFileSync(
        `${earlierBoot}.lock`,
        JSON.stringify({
          pid: process.ppid,
          host: hostname(),
          sinceMs: 0,
          token: 'boot',
          bootId: '00000000-0000-4000-8000-000000000000',
          startTicks: startTicks(process.ppid),
        }),
      );
      open(earlierBoot);
      expect(lockOf(earlierBoot)).toMatchObject({ pid: process.pid, bootId });
      // the same lock of this boot and that start time is a live holder: refused and kept
      const live = freshFile();
      const lock = {
        pid: process.ppid,
        host: hostname(),
        sinceMs: 0,
        token: 'live',
        bootId,
        startTicks: startTicks(process.ppid),
      };
      writeFileSync(`${live}.lock`, JSON.stringify(lock));
      expect(() => open(live)).toThrow(/is held by pid/);
      expect(lockOf(live)).toEqual(lock);
    },
  );
});
