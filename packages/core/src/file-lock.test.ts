import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  acquireFileLock,
  assertFileLockHeld,
  currentBootId,
  type FileLockErrors,
  type HeldFileLock,
  processStartTicks,
  releaseFileLock,
} from './file-lock.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'xhedge-file-lock-'));
let n = 0;
const freshFile = () => path.join(dir, `store-${++n}.json`);
const held: HeldFileLock[] = [];
const children: ChildProcess[] = [];

class LockError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}
const errors: FileLockErrors = {
  locked: (h, why) => new LockError('LOCKED', `${why} pid ${h.pid} on ${h.host}`),
  contended: () => new LockError('CONTENDED', 'kept changing hands'),
  unreadable: (f) => new LockError('UNREADABLE', `unreadable ${f}`),
  lost: (l, h) => new LockError('LOST', `${l.file} lost to ${h ? h.pid : 'nobody'}`),
};
const take = (file: string) => {
  const l = acquireFileLock(file, errors);
  held.push(l);
  return l;
};
const lockOf = (file: string) => JSON.parse(readFileSync(`${file}.lock`, 'utf8'));
const exited = (p: ChildProcess) => new Promise<void>((resolve) => p.once('exit', () => resolve()));
const linux = process.platform === 'linux';

afterEach(() => {
  for (const l of held.splice(0)) releaseFileLock(l);
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('acquireFileLock', () => {
  it('writes who holds the file and refuses a second taking while that holder lives', () => {
    const file = freshFile();
    const l = take(file);
    expect(lockOf(file)).toEqual(l.me);
    expect(l.me).toMatchObject({ pid: process.pid, host: hostname() });
    if (linux)
      expect(l.me).toMatchObject({ bootId: currentBootId(), startTicks: processStartTicks(process.pid) });
    expect(() => take(file)).toThrow(new LockError('LOCKED', `held by pid ${process.pid} on ${hostname()}`));
    expect(lockOf(file)).toEqual(l.me);
  });

  it('refuses a live holder in another process', async () => {
    const file = freshFile();
    const proc = spawn(process.execPath, ['-e', 'setInterval(() => {}, 60000)']);
    children.push(proc);
    await new Promise((resolve) => proc.once('spawn', resolve));
    const pid = proc.pid as number;
    const holder = {
      pid,
      host: hostname(),
      sinceMs: 0,
      token: 'live',
      ...(linux ? { bootId: currentBootId(), startTicks: processStartTicks(pid) } : {}),
    };
    writeFileSync(`${file}.lock`, JSON.stringify(holder));
    expect(() => take(file)).toThrow(`held by pid ${pid} on ${hostname()}`);
    expect(lockOf(file)).toEqual(holder);
  });

  it('takes over the lock of a dead holder (and of a dead recoverer)', async () => {
    const file = freshFile();
    const proc = spawn(process.execPath, ['-e', '']);
    await exited(proc);
    const dead = { pid: proc.pid, host: hostname(), sinceMs: 0 };
    writeFileSync(`${file}.lock`, JSON.stringify({ ...dead, token: 'd' }));
    writeFileSync(`${file}.lock.recover`, JSON.stringify({ ...dead, token: 'r' }));
    const l = take(file);
    expect(lockOf(file)).toEqual(l.me);
    expect(existsSync(`${file}.lock.recover`)).toBe(false);
  });

  it('refuses a lock of another host, and one that does not name its holder', () => {
    const file = freshFile();
    writeFileSync(`${file}.lock`, JSON.stringify({ pid: 1, host: 'other.invalid', sinceMs: 0, token: 'f' }));
    expect(() => take(file)).toThrow('held by another host, pid 1 on other.invalid');
    writeFileSync(`${file}.lock`, '{"pid":"x"}');
    expect(() => take(file)).toThrow(`unreadable ${file}.lock`);
  });
});

describe('assertFileLockHeld / releaseFileLock', () => {
  it('refuses once the lock is gone or another holder took it; release leaves another holder alone', () => {
    const file = freshFile();
    const l = take(file);
    expect(() => assertFileLockHeld(l)).not.toThrow();
    rmSync(`${file}.lock`);
    expect(() => assertFileLockHeld(l)).toThrow(`${file} lost to nobody`);
    const other = { ...l.me, token: 'other' };
    writeFileSync(`${file}.lock`, JSON.stringify(other));
    expect(() => assertFileLockHeld(l)).toThrow(`${file} lost to ${process.pid}`);
    releaseFileLock(l);
    expect(lockOf(file)).toEqual(other);
    rmSync(`${file}.lock`);
    const again = take(file);
    releaseFileLock(again);
    expect(existsSync(`${file}.lock`)).toBe(false);
  });
});

describe('locks whose holder cannot be checked by its pid (review fixes)', () => {
  /** A lock as another process would have written it. */
  const planted = (file: string, h: Record<string, unknown>, ageMs = 0) => {
    writeFileSync(
      `${file}.lock`,
      JSON.stringify({ pid: 999_999, host: hostname(), sinceMs: Date.now(), token: 'theirs', ...h }),
    );
    if (ageMs > 0) {
      const t = new Date(Date.now() - ageMs);
      utimesSync(`${file}.lock`, t, t);
    }
  };

  it.runIf(linux)(
    'a container beside this one (same host name, another pid namespace): its pid is not judged here, the lock is refused',
    () => {
      const file = freshFile();
      // pid 999999 does not run in this namespace: read by pid it would be taken over from a live worker
      planted(file, { pidNs: 'pid:[1]', heartbeatMs: 10_000 });
      expect(() => take(file)).toThrow(/held by pid 999999/);
      expect(lockOf(file).token).toBe('theirs');
    },
  );

  it('a lock of another host that its holder stopped refreshing (a crashed container) is taken over; a fresh one is refused', () => {
    const fresh = freshFile();
    planted(fresh, { host: 'worker-7f9c', heartbeatMs: 1_000 });
    expect(() => take(fresh)).toThrow(/held by another host, pid 999999 on worker-7f9c/);
    const stale = freshFile();
    planted(stale, { host: 'worker-7f9c', heartbeatMs: 1_000 }, 7_000);
    const l = take(stale);
    expect(lockOf(stale).token).toBe(l.me.token);
    // an older lock that promised no heartbeat is never taken as stale
    const old = freshFile();
    planted(old, { host: 'worker-7f9c' }, 3_600_000);
    expect(() => take(old)).toThrow(/held by another host/);
  });

  it('the holder refreshes its lock while it holds it, and stops once released', async () => {
    const file = freshFile();
    const l = acquireFileLock(file, errors, { heartbeatMs: 50 });
    held.push(l);
    const t = new Date(Date.now() - 60_000);
    utimesSync(`${file}.lock`, t, t);
    // refreshed within a few heartbeats (waited for up to 10 s: a loaded machine runs timers late)
    const deadline = Date.now() + 10_000;
    while (Date.now() - statSync(`${file}.lock`).mtimeMs > 5_000 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    expect(Date.now() - statSync(`${file}.lock`).mtimeMs).toBeLessThan(5_000);
    expect(lockOf(file).heartbeatMs).toBe(50);
    releaseFileLock(l);
    expect(existsSync(`${file}.lock`)).toBe(false);
  });
});
