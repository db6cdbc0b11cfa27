import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
