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
 * crash) is taken over: a lock of this host whose pid no longer runs. A lock of another host cannot be
 * checked and is refused; remove it by hand once that host no longer runs the store. Every write first
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
      typeof h.sinceMs === 'number'
    )
      return h as TransferStoreHolder;
  } catch {
    // reported below
  }
  throw new TransferStoreLockedError(
    'TRANSFER_STORE_LOCK_UNREADABLE',
    `transfer store lock ${lockFile} does not name its holder (pid, host); remove it by hand if no process uses the store`,
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

/** A holder that is certainly gone: on this host, its pid not running. */
function dead(h: TransferStoreHolder): boolean {
  return h.host === hostname() && !pidAlive(h.pid);
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
