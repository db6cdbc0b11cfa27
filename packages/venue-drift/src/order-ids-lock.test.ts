import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ManualClock } from '@xhedge/core';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { DriftOrderIdStoreLockedError, fileUserOrderIdStore, UserOrderIdMap } from './order-ids.ts';

// One writer per Drift user order id file. Before: two maps on one file (an old and a new worker in a
// rolling deploy) each kept the table in memory and rewrote the file whole: the file held only the last
// writer's records (cid-A's, written before its send, was gone and read as "never sent"), and both handed
// out u8 1.

const dir = mkdtempSync(path.join(tmpdir(), 'xhedge-drift-ids-lock-'));
let n = 0;
const freshFile = () => path.join(dir, `drift-${++n}-drift-order-ids.json`);
const opened: { close(): void }[] = [];
const children: ChildProcess[] = [];

const init = (id: string) => ({
  clientOrderId: id,
  marketIndex: 0,
  instrument: 'SOL-USD:PERP',
  side: 'buy' as const,
  orderType: 'market' as const,
  sizeBase: '1',
  reduceOnly: false,
  baseBeforeRaw: '0',
});

const open = (file: string) => {
  const s = fileUserOrderIdStore(file);
  opened.push(s);
  return s;
};
const lockOf = (file: string) => JSON.parse(readFileSync(`${file}.lock`, 'utf8'));
const idsOnDisk = (file: string) =>
  (JSON.parse(readFileSync(file, 'utf8')) as { clientOrderId?: string; userOrderId?: number }[]).map((r) => [
    r.clientOrderId,
    r.userOrderId,
  ]);

afterEach(() => {
  for (const s of opened.splice(0)) s.close();
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const moduleUrl = new URL('./order-ids.ts', import.meta.url).href;
/**
 * A second Node process over the file. `hold`: opens the store, assigns cid-A (u8 1), prints its pid and
 * keeps the store open until killed. `try`: tries to open it and prints what happened. `exit`: opens it,
 * assigns cid-A and exits without closing it.
 */
const CHILD = `
const { fileUserOrderIdStore, UserOrderIdMap } = await import(${JSON.stringify(moduleUrl)});
const [mode, file] = process.argv.slice(-2);
if (mode === 'try') {
  try {
    fileUserOrderIdStore(file).close();
    console.log(JSON.stringify({ pid: process.pid, opened: true }));
  } catch (err) {
    console.log(JSON.stringify({ pid: process.pid, opened: false, code: err.code, message: err.message }));
  }
} else {
  const store = fileUserOrderIdStore(file);
  const map = await UserOrderIdMap.open({ store, clock: { nowMs: () => 1000 } });
  const rec = await map.assign(${JSON.stringify(init('cid-A'))}, new Set());
  console.log(JSON.stringify({ pid: process.pid, userOrderId: rec.userOrderId }));
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

describe('fileUserOrderIdStore: one writer per file', () => {
  it('another process holding the file: opening is refused naming the file, its pid and host and what to do; after its kill -9 the lock is taken over, its record kept and its u8 not handed out again', async () => {
    const file = freshFile();
    const { proc, out } = await child('hold', file);
    expect(out).toMatchObject({ pid: proc.pid, userOrderId: 1 });
    let refused: unknown;
    try {
      open(file);
    } catch (err) {
      refused = err;
    }
    expect(refused).toBeInstanceOf(DriftOrderIdStoreLockedError);
    expect(refused).toMatchObject({
      code: 'DRIFT_ORDER_IDS_LOCKED',
      message: expect.stringContaining(
        `Drift user order id store ${file} is held by pid ${proc.pid} on host ${hostname()}`,
      ),
      details: expect.objectContaining({ file, pid: proc.pid, host: hostname() }),
    });
    expect((refused as Error).message).toMatch(/stop the other process before starting this one/);
    expect(idsOnDisk(file)).toEqual([['cid-A', 1]]);

    proc.kill('SIGKILL');
    await exited(proc);
    expect(lockOf(file)).toMatchObject({ pid: proc.pid, host: hostname() });
    const store = open(file);
    expect(lockOf(file)).toMatchObject({ pid: process.pid });
    const map = await UserOrderIdMap.open({ store, clock: new ManualClock(2000) });
    expect(map.get('cid-A')).toMatchObject({ userOrderId: 1, state: 'live' });
    expect((await map.assign(init('cid-B'), new Set())).userOrderId).toBe(2);
    expect(idsOnDisk(file)).toEqual([
      ['cid-A', 1],
      ['cid-B', 2],
    ]);
  });

  it('this process holding the file: another process is refused naming this pid', async () => {
    const file = freshFile();
    open(file);
    const { out } = await child('try', file);
    expect(out).toMatchObject({
      opened: false,
      code: 'DRIFT_ORDER_IDS_LOCKED',
      message: expect.stringContaining(
        `Drift user order id store ${file} is held by pid ${process.pid} on host ${hostname()}`,
      ),
    });
  });

  it('a second map on the file in this process shares the first one’s table: each sees the other’s u8s at once, the lock stays until the last one closes, then a new map reads the file', async () => {
    const file = freshFile();
    const a = await UserOrderIdMap.open({ store: open(file), clock: new ManualClock(0) });
    await a.assign(init('cid-A'), new Set());
    const token = lockOf(file).token;
    // the registry's rebuild: the new venue is built (synchronously, from the file) before the old closes;
    // another spelling of the same file (relative, through a symlinked folder) is the same file
    const linked = path.join(dir, `link-${n}`);
    symlinkSync(dir, linked);
    const store = open(path.relative(process.cwd(), path.join(linked, path.basename(file))));
    const b = UserOrderIdMap.fromRecords({ store, clock: new ManualClock(0) }, store.loadSync());
    expect(b.get('cid-A')).toMatchObject({ userOrderId: 1 });
    // the finding: two maps on one file both handed out u8 2 and dropped each other's records
    const [fromA, fromB] = await Promise.all([
      a.assign(init('cid-B'), new Set()),
      b.assign(init('cid-C'), new Set()),
    ]);
    expect([fromA.userOrderId, fromB.userOrderId]).toEqual([2, 3]);
    expect(a.get('cid-C')).toMatchObject({ userOrderId: 3 });
    expect(b.get('cid-B')).toMatchObject({ userOrderId: 2 });
    expect(idsOnDisk(file)).toEqual([
      ['cid-A', 1],
      ['cid-B', 2],
      ['cid-C', 3],
    ]);
    // a map opened (async) over the file meanwhile shares it too
    const c = await UserOrderIdMap.open({ store: open(file), clock: new ManualClock(0) });
    expect(c.get('cid-C')).toMatchObject({ userOrderId: 3 });

    // the old ones close: the new one goes on, the lock still held; the closed ones refuse
    await a.close();
    await a.close(); // idempotent: does not close another opening
    await c.close();
    expect(lockOf(file)).toMatchObject({ pid: process.pid, token });
    expect(() => a.get('cid-A')).toThrow(expect.objectContaining({ code: 'DRIFT_ORDER_IDS_CLOSED' }));
    await expect(a.assign(init('cid-X'), new Set())).rejects.toMatchObject({
      code: 'DRIFT_ORDER_IDS_CLOSED',
    });
    expect(b.get('cid-X')).toBeUndefined();
    expect((await b.assign(init('cid-D'), new Set())).userOrderId).toBe(4);
    const { out } = await child('try', file);
    expect(out).toMatchObject({ opened: false, code: 'DRIFT_ORDER_IDS_LOCKED' });

    // the last one closes: no lock behind; a new map reads the file again
    await b.close();
    expect(existsSync(`${file}.lock`)).toBe(false);
    const d = await UserOrderIdMap.open({ store: open(file), clock: new ManualClock(0) });
    expect(lockOf(file).token).not.toBe(token);
    expect(d.records().map((r) => [r.clientOrderId, r.userOrderId])).toEqual([
      ['cid-A', 1],
      ['cid-B', 2],
      ['cid-C', 3],
      ['cid-D', 4],
    ]);
  });

  it('an opening of a file whose lock was taken over meanwhile is refused at once', () => {
    const file = freshFile();
    open(file);
    const other = { pid: process.ppid, host: hostname(), sinceMs: 0, token: 'other' };
    writeFileSync(`${file}.lock`, JSON.stringify(other));
    expect(() => fileUserOrderIdStore(file)).toThrow(
      expect.objectContaining({ code: 'DRIFT_ORDER_IDS_LOCK_LOST' }),
    );
  });

  it('a process that exits without closing the store leaves no lock behind', async () => {
    const file = freshFile();
    const { proc } = await child('exit', file);
    await exited(proc);
    expect(proc.exitCode).toBe(0);
    expect(existsSync(`${file}.lock`)).toBe(false);
    expect(open(file).loadSync()).toHaveLength(1);
  });

  it('a lock that is no longer this store’s: the save is refused, nothing is written, close leaves it alone', async () => {
    const file = freshFile();
    const store = open(file);
    const map = await UserOrderIdMap.open({ store, clock: new ManualClock(0) });
    await map.assign(init('cid-A'), new Set());
    const before = readFileSync(file, 'utf8');
    const other = { pid: process.ppid, host: hostname(), sinceMs: 0, token: 'other' };
    writeFileSync(`${file}.lock`, JSON.stringify(other));
    await expect(map.assign(init('cid-B'), new Set())).rejects.toMatchObject({
      code: 'DRIFT_ORDER_IDS_LOCK_LOST',
    });
    expect(readFileSync(file, 'utf8')).toBe(before);
    store.close();
    expect(lockOf(file)).toEqual(other);
  });

  it('a lock of another host is refused and kept', () => {
    const file = freshFile();
    const foreign = { pid: process.pid, host: 'other-host.invalid', sinceMs: 0, token: 'f' };
    writeFileSync(`${file}.lock`, JSON.stringify(foreign));
    expect(() => open(file)).toThrow(/held by another host, pid \d+ on host other-host\.invalid/);
    expect(lockOf(file)).toEqual(foreign);
  });

  it.runIf(linux)('a lock of a running pid that started at another time (a reused pid) is taken over', () => {
    const file = freshFile();
    const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    const lock = { pid: process.ppid, host: hostname(), sinceMs: 0, token: 'old', bootId };
    writeFileSync(`${file}.lock`, JSON.stringify({ ...lock, startTicks: startTicks(process.ppid) + 1 }));
    open(file);
    expect(lockOf(file)).toMatchObject({ pid: process.pid, startTicks: startTicks(process.pid) });
    // with its own start time it is a live holder: refused and kept
    const live = freshFile();
    const held = { ...lock, startTicks: startTicks(process.ppid) };
    writeFileSync(`${live}.lock`, JSON.stringify(held));
    expect(() => open(live)).toThrow(/is held by pid/);
    expect(lockOf(live)).toEqual(held);
  });
});
