import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { XhedgeError } from '@xhedge/core';
import type { TransferRecord, TransferStore } from './tracker.ts';

/** Who holds a file transfer store: written to `<file>.lock` when the store is opened. */
export interface TransferStoreHolder {
  pid: number;
  host: string;
  /** Wall-clock ms when it opened the store. */
  sinceMs: number;
  /** Random per opening: tells this opening's lock from a later one of the same pid. */
  token: string;
  /**
   * The host's boot id (Linux: `/proc/sys/kernel/random/boot_id`) when the store was opened: a lock of
   * an earlier boot is dead whatever its pid. Absent where there is no /proc, and in older locks.
   */
  bootId?: string;
  /**
   * When the holder's process started, in clock ticks since boot (Linux: field 22 of `/proc/<pid>/stat`):
   * a running pid with another start time is a reused pid, not the holder. Absent where there is no
   * /proc, and in older locks.
   */
  startTicks?: number;
}

export class TransferStoreLockedError extends XhedgeError {
  override name = 'TransferStoreLockedError';
}

/** A transfer store kept in one JSON file, held by one process at a time. */
export interface FileTransferStore extends TransferStore {
  /** The store's file. */
  readonly file: string;
  /** Releases the lock (when still this store's); later calls are refused. */
  close(): void;
}

/**
 * Opens the transfer store kept in `file` (created on the first write), for this process alone.
 *
 * One process at a time: the paper bridge's exactly-once rests on what the process that wrote a
 * transfer's marks remembers (a debit begun elsewhere is never made again), so two bridges over one
 * store both debited a transfer's source. Opening takes `<file>.lock` (pid, host, since when) with an
 * exclusive create; a second opening, in another process or in this one, is refused with a
 * TransferStoreLockedError naming the file and the holder. A lock whose holder is dead (a kill -9, a
 * crash, an OOM kill, a reboot) is taken over: a lock of this host (same host name) written in an earlier
 * boot (another boot id), or whose pid no longer runs, or whose pid runs but started at another time than
 * the lock records (the pid was reused: in a container node is pid 1 after every restart). Boot id and
 * start time come from Linux's /proc; where there is none (macOS, Windows), and for locks written before
 * they were recorded, a lock of this host is dead only when its pid no longer runs, so a reused pid (a
 * restarted container, a reboot) still reads as a live holder there and its lock must be removed by hand.
 * A lock of another host cannot be checked and is refused; remove it by hand once that host no longer
 * runs the store. Every write first
 * checks that the lock is still this store's (one taken over or removed under it is refused, not
 * overwritten), then rewrites the file atomically and durably (temp file, fsync, rename, directory fsync).
 * Records are read once at open: the holder is the only writer.
 */
export function openFileTransferStore(file: string): FileTransferStore {
  const lockFile = `${file}.lock`;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const me: TransferStoreHolder = {
    pid: process.pid,
    host: hostname(),
    sinceMs: Date.now(),
    token: randomBytes(12).toString('hex'),
    ...processIdentity(),
  };
  acquire(file, lockFile, me);
  let records: Map<string, TransferRecord>;
  try {
    records = load(file);
  } catch (err) {
    release(lockFile, me);
    throw err;
  }
  let closed = false;

  const open = (what: string) => {
    if (closed)
      throw new TransferStoreLockedError(
        'TRANSFER_STORE_CLOSED',
        `transfer store ${file} is closed (${what})`,
        {
          details: { file },
        },
      );
  };

  return {
    file,
    get: async (id) => {
      open('get');
      const r = records.get(id);
      return r === undefined ? undefined : structuredClone(r);
    },
    list: async () => {
      open('list');
      return [...records.values()].map((r) => structuredClone(r));
    },
    put: async (r) => {
      open('put');
      const holder = readHolder(lockFile);
      if (holder?.token !== me.token)
        throw new TransferStoreLockedError(
          'TRANSFER_STORE_LOCK_LOST',
          `transfer store ${file} is no longer held by this process (pid ${me.pid} on ${me.host}): its lock ${lockFile} ${holder ? `is held by ${describe(holder)}` : 'is gone'}; nothing written`,
          { details: { file, lockFile, holder } },
        );
      const next = new Map(records);
      next.set(r.transferId, structuredClone(r));
      replaceFile(file, `${JSON.stringify(Object.fromEntries(next), null, 1)}\n`);
      // the file has it now (a failed directory sync below still throws: not known to be durable)
      records = next;
      syncDir(path.dirname(file));
    },
    close: () => {
      if (closed) return;
      closed = true;
      release(lockFile, me);
    },
  };
}

function describe(h: TransferStoreHolder): string {
  return `pid ${h.pid} on host ${h.host} (since ${new Date(h.sinceMs).toISOString()})`;
}

/** Whether a process of this host runs `pid` (EPERM: it runs, as another user). */
function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The holder a lock file names; undefined when there is none; throws when it cannot be read as one. */
function readHolder(lockFile: string): TransferStoreHolder | undefined {
  let text: string;
  try {
    text = fs.readFileSync(lockFile, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const h = JSON.parse(text) as Partial<TransferStoreHolder>;
    if (
      Number.isInteger(h.pid) &&
      typeof h.host === 'string' &&
      typeof h.token === 'string' &&
      typeof h.sinceMs === 'number' &&
      (h.bootId === undefined || typeof h.bootId === 'string') &&
      (h.startTicks === undefined || (Number.isSafeInteger(h.startTicks) && h.startTicks >= 0))
    )
      return h as TransferStoreHolder;
  } catch {
    // reported below
  }
  throw new TransferStoreLockedError(
    'TRANSFER_STORE_LOCK_UNREADABLE',
    `transfer store lock ${lockFile} does not name its holder (pid, host, sinceMs, token; bootId a string and startTicks a whole number of clock ticks where present); remove it by hand if no process uses the store`,
    { details: { lockFile } },
  );
}

/**
 * Creates `target` holding `h`, only if it does not exist: written whole to a temp file first and then
 * linked (atomic, fails on an existing file), so no reader sees a half-written lock. False if it exists.
 */
function createExclusive(target: string, h: TransferStoreHolder): boolean {
  const tmp = `${target}.${h.pid}.${h.token}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(h));
  try {
    fs.linkSync(tmp, target);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/** Linux's /proc, where a process's boot id and start time can be read; not on macOS or Windows. */
const hasProc = process.platform === 'linux';

/** This boot's id (Linux); undefined where it cannot be read. Read once: it does not change while we run. */
let bootIdCache: { id: string | undefined } | undefined;
function currentBootId(): string | undefined {
  if (bootIdCache === undefined) {
    let id: string | undefined;
    if (hasProc) {
      try {
        const text = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
        if (/^[0-9a-f-]{8,64}$/i.test(text)) id = text;
      } catch {
        // no /proc: the pid rule alone
      }
    }
    bootIdCache = { id };
  }
  return bootIdCache.id;
}

/**
 * When process `pid` started, in clock ticks since boot: field 22 of `/proc/<pid>/stat` (Linux).
 * Undefined when it cannot be read (no /proc, no such process, hidden by hidepid, not in the format).
 * Field 2, the command name in parentheses, may itself hold spaces and parentheses: fields are counted
 * from after its last ')'. The pid in field 1 must be `pid` (a /proc of another pid namespace is not used).
 */
function startTicksOf(pid: number): number | undefined {
  if (!hasProc) return undefined;
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const open = text.indexOf(' (');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open || text.slice(0, open) !== String(pid)) return undefined;
  // after the name: field 3 (state) onwards, so field 22 is the 20th
  const ticks = text
    .slice(close + 1)
    .trim()
    .split(/\s+/)[22 - 3];
  if (ticks === undefined || !/^\d+$/.test(ticks)) return undefined;
  const n = Number(ticks);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** What tells this process from a later one of the same pid: boot id and start time, where readable. */
function processIdentity(): Pick<TransferStoreHolder, 'bootId' | 'startTicks'> {
  const bootId = currentBootId();
  const startTicks = startTicksOf(process.pid);
  return {
    ...(bootId === undefined ? {} : { bootId }),
    ...(startTicks === undefined ? {} : { startTicks }),
  };
}

/**
 * A holder that is certainly gone, on this host: written in another boot; or its pid not running; or its
 * pid running but started at another time (a reused pid; in another boot it is gone anyway). Boot id and
 * start time are compared only when both the lock and this host have them (Linux's /proc; locks written
 * before they were recorded do not); otherwise the pid rule alone. A start time that cannot be read for a
 * running pid (/proc hidden) is not taken as a different one.
 */
function dead(h: TransferStoreHolder): boolean {
  if (h.host !== hostname()) return false;
  const bootId = currentBootId();
  if (h.bootId !== undefined && bootId !== undefined && h.bootId !== bootId) return true;
  if (!pidAlive(h.pid)) return true;
  if (h.startTicks === undefined) return false;
  const startTicks = startTicksOf(h.pid);
  if (startTicks === undefined) return !pidAlive(h.pid); // exited meanwhile, or its /proc is hidden
  return startTicks !== h.startTicks;
}

function acquire(file: string, lockFile: string, me: TransferStoreHolder): void {
  const recoverFile = `${lockFile}.recover`;
  const locked = (h: TransferStoreHolder, why: string) =>
    new TransferStoreLockedError(
      'TRANSFER_STORE_LOCKED',
      `transfer store ${file} is ${why} ${describe(h)}${h.pid === me.pid && h.host === me.host ? ', this process' : ''}: one process at a time uses a transfer store (lock ${lockFile})`,
      { details: { file, lockFile, pid: h.pid, host: h.host, sinceMs: h.sinceMs } },
    );
  for (let attempt = 0; attempt < 10; attempt++) {
    if (createExclusive(lockFile, me)) return;
    const holder = readHolder(lockFile);
    if (holder === undefined) continue; // released meanwhile
    if (!dead(holder)) throw locked(holder, holder.host === me.host ? 'held by' : 'held by another host,');
    // Stale: its holder died (kill -9, crash). Taken over under a second lock, so two processes finding
    // it stale at once do not both remove it and each take a fresh one (the second removing the first's).
    if (!createExclusive(recoverFile, me)) {
      const recovering = readHolder(recoverFile);
      if (recovering && !dead(recovering)) throw locked(recovering, 'being recovered by');
      // its recoverer died while recovering
      fs.rmSync(recoverFile, { force: true });
      continue;
    }
    try {
      // still the dead holder's (not one a faster process took meanwhile): remove it
      if (readHolder(lockFile)?.token === holder.token) fs.rmSync(lockFile, { force: true });
    } finally {
      if (readHolder(recoverFile)?.token === me.token) fs.rmSync(recoverFile, { force: true });
    }
  }
  throw new TransferStoreLockedError(
    'TRANSFER_STORE_LOCKED',
    `transfer store ${file}: its lock ${lockFile} kept changing hands; try again`,
    { details: { file, lockFile } },
  );
}

function release(lockFile: string, me: TransferStoreHolder): void {
  try {
    if (readHolder(lockFile)?.token === me.token) fs.rmSync(lockFile, { force: true });
  } catch {
    // an unreadable lock is not this store's: left for its owner
  }
}

function load(file: string): Map<string, TransferRecord> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw err;
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new XhedgeError('TRANSFER_STORE_CORRUPT', `transfer store ${file} is not valid JSON`, {
      cause: err,
      details: { file },
    });
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data))
    throw new XhedgeError('TRANSFER_STORE_CORRUPT', `transfer store ${file} is not an object of records`, {
      details: { file },
    });
  // records are validated by the tracker on the way out
  return new Map(Object.entries(data as Record<string, TransferRecord>));
}

/** Temp file, fsync, rename over `file`: the old file or the new, never half of one. */
function replaceFile(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeFileSync(fd, text);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

/** The rename lives in the directory: synced too, or a power loss can bring back the old file. */
function syncDir(dir: string): void {
  if (process.platform !== 'win32') {
    const dfd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(dfd);
    } finally {
      fs.closeSync(dfd);
    }
  }
}
