import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import path from 'node:path';
import {
  acquireFileLock,
  assertFileLockHeld,
  describeFileLockHolder,
  type FileLockErrors,
  type FileLockHolder,
  releaseFileLock,
  XhedgeError,
} from '@xhedge/core';
import type { TransferRecord, TransferStore } from './tracker.ts';

/** Who holds a file transfer store: written to `<file>.lock` when the store is opened. */
export type TransferStoreHolder = FileLockHolder;

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
  const lock = acquireFileLock(file, lockErrors(file));
  let records: Map<string, TransferRecord>;
  try {
    records = load(file);
  } catch (err) {
    releaseFileLock(lock);
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
      assertFileLockHeld(lock);
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
      releaseFileLock(lock);
    },
  };
}

/** The errors of a file transfer store's lock (see {@link openFileTransferStore}). */
function lockErrors(file: string): FileLockErrors {
  const lockFile = `${file}.lock`;
  return {
    locked: (h, why, me) =>
      new TransferStoreLockedError(
        'TRANSFER_STORE_LOCKED',
        `transfer store ${file} is ${why} ${describeFileLockHolder(h)}${h.pid === me.pid && h.host === me.host ? ', this process' : ''}: one process at a time uses a transfer store (lock ${lockFile})`,
        { details: { file, lockFile, pid: h.pid, host: h.host, sinceMs: h.sinceMs } },
      ),
    contended: () =>
      new TransferStoreLockedError(
        'TRANSFER_STORE_LOCKED',
        `transfer store ${file}: its lock ${lockFile} kept changing hands; try again`,
        { details: { file, lockFile } },
      ),
    unreadable: (f) =>
      new TransferStoreLockedError(
        'TRANSFER_STORE_LOCK_UNREADABLE',
        `transfer store lock ${f} does not name its holder (pid, host, sinceMs, token; bootId a string and startTicks a whole number of clock ticks where present); remove it by hand if no process uses the store`,
        { details: { lockFile: f } },
      ),
    lost: ({ me }, holder) =>
      new TransferStoreLockedError(
        'TRANSFER_STORE_LOCK_LOST',
        `transfer store ${file} is no longer held by this process (pid ${me.pid} on ${me.host}): its lock ${lockFile} ${holder ? `is held by ${describeFileLockHolder(holder)}` : 'is gone'}; nothing written`,
        { details: { file, lockFile, holder } },
      ),
  };
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
