import * as nodeFs from 'node:fs';
import path from 'node:path';
import {
  acquireFileLock,
  assertFileLockHeld,
  describeFileLockHolder,
  type FileLockErrors,
  type FileLockHolder,
  type HeldFileLock,
  type OrderStatus,
  parseInstrumentId,
  releaseFileLock,
  STALE_HEARTBEATS,
  TERMINAL_ORDER_STATUSES,
  XhedgeError,
} from '@xhedge/core';

/** The file system calls {@link JsonFileOrderStore} makes (`node:fs` by default; injectable for tests). */
export type OrderStoreFs = Pick<
  typeof nodeFs,
  'mkdirSync' | 'readFileSync' | 'openSync' | 'writeFileSync' | 'fsyncSync' | 'closeSync' | 'renameSync'
>;

/**
 * A durable map from client order id to what the adapter knows about the order (tx hash, order key,
 * position id, status). On-chain venues have no client order id, so this mapping is what makes
 * `getOrderByClientId` work after a timeout or a restart. Implement it on any store (Postgres, Redis);
 * {@link JsonFileOrderStore} is the embedded default.
 *
 * Several writers may hold copies of one record (two replacements of one order at once; a reconcile that
 * read it before a cancel was recorded): a `put` must not drop a transaction another writer recorded at
 * the order's nonce, or a later replacement no longer outbids it and the order is not resolved by it. So
 * every `put` stores {@link mergeNonceTxsOnWrite}(what is stored now, the record), atomically with
 * respect to other puts of the record (both stores here do).
 */
export interface OrderRecordStore<T> {
  get(clientOrderId: string): Promise<T | undefined>;
  put(clientOrderId: string, record: T): Promise<void>;
  /**
   * Every record (fills, reconciliation, and the spend-cap window rebuilt after a restart); a store may
   * leave out final records it archived (see {@link JsonFileOrderStore}), which `get` still answers.
   */
  list(): Promise<T[]>;
  /**
   * Releases what the store holds (a file store's single-writer lock); later calls are refused. An
   * adapter that opened the store calls it from its own `close`.
   */
  close?(): void | Promise<void>;
}

export class MemoryOrderStore<T> implements OrderRecordStore<T> {
  private readonly map = new Map<string, T>();
  async get(id: string): Promise<T | undefined> {
    const v = this.map.get(id);
    return v === undefined ? undefined : structuredClone(v);
  }
  async put(id: string, record: T): Promise<void> {
    this.map.set(id, mergeNonceTxsOnWrite(this.map.get(id), structuredClone(record)));
  }
  async list(): Promise<T[]> {
    return [...this.map.values()].map((v) => structuredClone(v));
  }
}

/** Default {@link JsonFileOrderStoreOptions.finishedRetentionMs}: 30 days. */
export const DEFAULT_FINISHED_RETENTION_MS = 30 * 86_400_000;
/** Default {@link JsonFileOrderStoreOptions.compactEveryMs}: an hour. */
export const DEFAULT_COMPACT_EVERY_MS = 3_600_000;

/** How a {@link JsonFileOrderStore} keeps its live file small. */
export interface JsonFileOrderStoreOptions {
  /** The file system calls it makes (`node:fs` by default). */
  fs?: OrderStoreFs;
  /**
   * A final record (status filled, cancelled, rejected or failed) whose last change is at least this old
   * is moved to the archive file, a tombstone left in its place (see {@link JsonFileOrderStore}).
   * `Infinity` never archives. Keep it above the spend caps' window (a day by default).
   * @defaultValue {@link DEFAULT_FINISHED_RETENTION_MS} (30 days)
   */
  finishedRetentionMs?: number;
  /**
   * A `put` archives what is due at most this often (the first `put` after opening always looks).
   * @defaultValue {@link DEFAULT_COMPACT_EVERY_MS} (an hour)
   */
  compactEveryMs?: number;
  /** The clock ages are measured on (ms since epoch). @defaultValue `Date.now` */
  nowMs?: () => number;
  /** The archive file. @defaultValue the file's path without `.json`, plus `.archive.jsonl` */
  archiveFile?: string;
}

/**
 * What stays in the live file of a {@link JsonFileOrderStore} for an archived record: its client order
 * id, final status and last change, and when it was archived (`archivedAtMs`, which marks it: records
 * must not have a field of that name).
 */
export interface ArchivedOrderTombstone {
  clientOrderId: string;
  status: string;
  updatedAtMs: number;
  archivedAtMs: number;
}

/** One line of the archive file: a record as it was when archived. */
interface ArchiveLine {
  id: string;
  archivedAtMs: number;
  record: unknown;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

const isTombstone = (v: unknown): v is ArchivedOrderTombstone =>
  isObject(v) && typeof v.archivedAtMs === 'number';

/**
 * One JSON file per venue; every `put` rewrites the file atomically and durably before it resolves:
 * write a temp file, fsync it, rename it over the file, fsync the directory (so the rename itself is on
 * disk). A record written before a broadcast thus survives a crash or a power loss. Records must be
 * JSON-safe (bigints as decimal strings).
 *
 * One writer per file, enforced: the file is read once and kept in memory, and every `put` rewrites it
 * whole, so a second store on the same file (an old and a new worker in a rolling deploy, two worker
 * processes on one host) dropped the other's records, and a dropped write-ahead record reads as "never
 * sent": the order was sent again, at the same nonce. So the first store of a process on the file takes
 * `<file>.lock` (pid, host, boot id, the process's start time, a random token) with an exclusive create,
 * and a store on the file in another process is refused with an {@link OrderStoreLockedError}
 * (`ORDER_STORE_LOCKED`) naming the file and the holder's pid and host. Within one process, a store
 * opened on a file this process has open already (the same absolute path; a venue rebuilt for new params
 * is built before the old adapter is closed) shares the first one's records in memory and its lock: one
 * copy of the file per process, so each sees the other's writes at once and neither drops them. A lock
 * whose holder is dead on this host (its pid gone; its pid running but started at another time, a reused
 * pid; written in an earlier boot) is taken over; one of another host is refused (remove it by hand once
 * that host no longer runs the venue). Every `put` first checks the lock is still this process's
 * (`ORDER_STORE_LOCK_LOST`: nothing written). {@link close} closes one store (the adapter that opened it
 * calls it from its own `close`): every later call on it is refused (`ORDER_STORE_CLOSED`); the last of
 * the process's stores on the file to close releases the lock, and so does a clean exit of the process.
 * Worker threads do not share: a second thread's store on the file is refused like another process's.
 *
 * Compaction keeps the live file (rewritten on every `put`, held in memory) to the orders that matter
 * now: on a `put` (at most once per `compactEveryMs`) or {@link compact}, every record that is final
 * (`status` filled, cancelled, rejected or failed) and whose last change is at least
 * `finishedRetentionMs` old is appended to the archive file (JSON lines, one `{id, archivedAtMs, record}`
 * per line, fsynced) and then replaced in the live file by an {@link ArchivedOrderTombstone}. The last
 * change is the latest of the record's `updatedAtMs`, its spend's `atMs` and, for a filled order on an
 * instrument with an expiry (a Lyra option), that expiry (the Lyra adapter finds a settled board from its
 * filled orders). A record with another status (however old: a stuck nonce), or without a numeric
 * `updatedAtMs`, is never archived.
 *
 * - `get` of an archived id reads the archive file (rare, slow: the whole file) and answers the full
 *   record, so an id is never taken for a new order; it throws, naming the files, when the archive does
 *   not have it. `put` of an archived id merges over the archived record and makes it live again.
 * - `list` answers live records only.
 * - A crash after the archive append and before the live rewrite leaves the records in both: the live
 *   record wins, and the next compaction appends them again (the last line of an id wins). A line torn by
 *   a crash mid-append is skipped (its record is still live); every append starts on a new line.
 * - Files written before compaction (no tombstones) load unchanged.
 */
export class JsonFileOrderStore<T> implements OrderRecordStore<T> {
  private readonly file: string;
  private readonly archiveFile: string;
  private readonly fs: OrderStoreFs;
  private readonly retentionMs: number;
  private readonly compactEveryMs: number;
  private readonly now: () => number;
  /** The file's state, shared by every store this process opened on the file (see {@link openOrderFile}). */
  private readonly shared: OpenOrderFile;
  private closed = false;

  /** The file's records, read once and kept in memory (shared with the other stores on the file). */
  private get data(): Record<string, T | ArchivedOrderTombstone> | undefined {
    return this.shared.data as Record<string, T | ArchivedOrderTombstone> | undefined;
  }
  private set data(v: Record<string, T | ArchivedOrderTombstone> | undefined) {
    this.shared.data = v;
  }
  private get lastCompactionMs(): number | undefined {
    return this.shared.lastCompactionMs;
  }
  private set lastCompactionMs(v: number | undefined) {
    this.shared.lastCompactionMs = v;
  }
  private get lock(): HeldFileLock {
    return this.shared.lock;
  }

  constructor(file: string, opts: JsonFileOrderStoreOptions = {}) {
    this.file = file;
    this.fs = opts.fs ?? nodeFs;
    this.archiveFile = opts.archiveFile ?? `${file.replace(/\.json$/, '')}.archive.jsonl`;
    if (this.archiveFile === file) {
      throw new RangeError(`order store ${file}: archiveFile must not be the store's own file`);
    }
    this.retentionMs = opts.finishedRetentionMs ?? DEFAULT_FINISHED_RETENTION_MS;
    if (typeof this.retentionMs !== 'number' || Number.isNaN(this.retentionMs) || this.retentionMs <= 0) {
      throw new RangeError(
        `order store ${file}: finishedRetentionMs ${String(opts.finishedRetentionMs)} is not a number of milliseconds > 0 (Infinity never archives)`,
      );
    }
    this.compactEveryMs = opts.compactEveryMs ?? DEFAULT_COMPACT_EVERY_MS;
    if (!Number.isFinite(this.compactEveryMs) || this.compactEveryMs < 0) {
      throw new RangeError(
        `order store ${file}: compactEveryMs ${String(opts.compactEveryMs)} is not a finite number of milliseconds >= 0`,
      );
    }
    this.now = opts.nowMs ?? Date.now;
    this.shared = openOrderFile(file, this.archiveFile);
  }

  /**
   * Closes this store: every later call on it is refused. The last store of this process on the file to
   * close releases the file's lock (when still its own: one taken over or removed by hand is left alone)
   * and drops its records from memory (a later opening reads the file again). Idempotent.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeOrderFile(this.shared);
  }

  private assertOpen(what: string): void {
    if (this.closed)
      throw new OrderStoreLockedError('ORDER_STORE_CLOSED', `order store ${this.file} is closed (${what})`, {
        details: { file: this.file },
      });
  }

  private load(): Record<string, T | ArchivedOrderTombstone> {
    this.assertOpen('read');
    if (this.data) return this.data;
    let text: string;
    try {
      text = this.fs.readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      this.data = {};
      return this.data;
    }
    try {
      this.data = JSON.parse(text) as Record<string, T | ArchivedOrderTombstone>;
    } catch (err) {
      throw new Error(`order store ${this.file} is not valid JSON: ${(err as Error).message}`, {
        cause: err,
      });
    }
    return this.data;
  }

  async get(id: string): Promise<T | undefined> {
    const v = this.load()[id];
    if (v === undefined) return undefined;
    if (isTombstone(v)) return this.readArchived(id);
    return structuredClone(v);
  }

  async put(id: string, record: T): Promise<void> {
    this.assertOpen('put');
    assertFileLockHeld(this.lock);
    const data = this.load();
    const had = data[id];
    const stored = isTombstone(had) ? this.readArchived(id) : had;
    data[id] = mergeNonceTxsOnWrite(stored, structuredClone(record));
    const now = this.now();
    if (this.lastCompactionMs === undefined || now - this.lastCompactionMs >= this.compactEveryMs) {
      this.lastCompactionMs = now;
      this.archiveDue(now);
    }
    this.writeLive();
  }

  async list(): Promise<T[]> {
    const out: T[] = [];
    for (const v of Object.values(this.load())) if (!isTombstone(v)) out.push(structuredClone(v));
    return out;
  }

  /** Archives every record due now (see {@link JsonFileOrderStore}); how many were archived. */
  async compact(): Promise<{ archived: number }> {
    this.assertOpen('compact');
    assertFileLockHeld(this.lock);
    const now = this.now();
    this.lastCompactionMs = now;
    const archived = this.archiveDue(now);
    if (archived > 0) this.writeLive();
    return { archived };
  }

  /**
   * Appends the records due to the archive (fsynced) and puts tombstones in their place in memory; the
   * caller rewrites the live file. A failure before the tombstones are set leaves memory as it was.
   */
  private archiveDue(nowMs: number): number {
    const data = this.load();
    const due: [string, T][] = [];
    for (const [id, v] of Object.entries(data)) {
      if (isTombstone(v)) continue;
      const since = finalSinceMs(v);
      if (since !== undefined && nowMs - since >= this.retentionMs) due.push([id, v]);
    }
    if (due.length === 0) return 0;
    const lines = due.map(([id, record]) =>
      JSON.stringify({ id, archivedAtMs: nowMs, record } satisfies ArchiveLine),
    );
    // the leading newline ends a line torn by a crash mid-append (skipped on read: its record stayed live)
    this.appendDurably(this.archiveFile, `\n${lines.join('\n')}\n`);
    for (const [id, record] of due) {
      const r = record as { status: string; updatedAtMs: number };
      data[id] = { clientOrderId: id, status: r.status, updatedAtMs: r.updatedAtMs, archivedAtMs: nowMs };
    }
    return due.length;
  }

  /** The record archived under `id` (the last line for it), read from the archive file. */
  private readArchived(id: string): T {
    let text: string;
    try {
      text = this.fs.readFileSync(this.archiveFile, 'utf8');
    } catch (err) {
      throw new Error(
        `order store ${this.file}: order ${id} is archived but the archive ${this.archiveFile} cannot be read: ${(err as Error).message}`,
        { cause: err },
      );
    }
    const needle = JSON.stringify(id);
    let found: T | undefined;
    for (const line of text.split('\n')) {
      if (!line.includes(needle)) continue;
      let e: unknown;
      try {
        e = JSON.parse(line);
      } catch {
        continue; // torn by a crash mid-append: its records were still live then
      }
      if (isObject(e) && e.id === id && isObject(e.record)) found = e.record as T;
    }
    if (found === undefined) {
      throw new Error(
        `order store ${this.file}: order ${id} is archived (a tombstone) but the archive ${this.archiveFile} has no record of it`,
      );
    }
    return found;
  }

  private appendDurably(file: string, text: string): void {
    const fs = this.fs;
    const dir = path.dirname(file);
    fs.mkdirSync(dir, { recursive: true });
    const fd = fs.openSync(file, 'a');
    try {
      fs.writeFileSync(fd, text);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    this.syncDir(dir);
  }

  private syncDir(dir: string): void {
    // The directory holds the entries (a new archive file, a rename): sync it too, or a power loss can
    // undo them. (Windows cannot open a directory; there they are as durable as NTFS makes them.)
    if (process.platform === 'win32') return;
    const fs = this.fs;
    const dfd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(dfd);
    } finally {
      fs.closeSync(dfd);
    }
  }

  private writeLive(): void {
    const fs = this.fs;
    const dir = path.dirname(this.file);
    fs.mkdirSync(dir, { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeFileSync(fd, JSON.stringify(this.load(), null, 1));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, this.file);
    this.syncDir(dir);
  }
}

/** Who holds an order store: written to `<file>.lock` when the store is opened. */
export type OrderStoreHolder = FileLockHolder;

/**
 * A {@link JsonFileOrderStore} refused: its file is held by another store (`ORDER_STORE_LOCKED`), its lock
 * is no longer this store's (`ORDER_STORE_LOCK_LOST`), the lock cannot be read (`ORDER_STORE_LOCK_UNREADABLE`),
 * or the store is closed (`ORDER_STORE_CLOSED`).
 */
export class OrderStoreLockedError extends XhedgeError {
  override name = 'OrderStoreLockedError';
}

const RUN_ONE_WRITER =
  "one process at a time writes a venue's order store: stop the other process before starting this one (a rolling deploy stops a venue's workers before starting new ones); never run two writers of one store";

/** The errors of an order store's lock (see {@link JsonFileOrderStore}). */
function storeLockErrors(file: string): FileLockErrors {
  const lockFile = `${file}.lock`;
  return {
    locked: (h, why, me) => {
      const self = h.pid === me.pid && h.host === me.host;
      return new OrderStoreLockedError(
        'ORDER_STORE_LOCKED',
        `order store ${file} is ${why} ${describeFileLockHolder(h)}${self ? ', this process (another thread, or another copy of the store module: open it through one)' : ''}: ${RUN_ONE_WRITER} (lock ${lockFile}${h.host === me.host && h.pidNs === me.pidNs ? '' : h.heartbeatMs === undefined ? '; an older lock, never refreshed: remove it by hand once that host no longer runs the venue' : `; taken over once its holder has not refreshed it for ${(STALE_HEARTBEATS * h.heartbeatMs) / 1000} s`})`,
        { details: { file, lockFile, pid: h.pid, host: h.host, sinceMs: h.sinceMs } },
      );
    },
    contended: () =>
      new OrderStoreLockedError(
        'ORDER_STORE_LOCKED',
        `order store ${file}: its lock ${lockFile} kept changing hands; try again`,
        {
          details: { file, lockFile },
        },
      ),
    unreadable: (f) =>
      new OrderStoreLockedError(
        'ORDER_STORE_LOCK_UNREADABLE',
        `order store lock ${f} does not name its holder (pid, host, sinceMs, token; bootId a string and startTicks a whole number of clock ticks where present); remove it by hand if no process uses the store`,
        { details: { lockFile: f } },
      ),
    lost: (l, holder) =>
      new OrderStoreLockedError(
        'ORDER_STORE_LOCK_LOST',
        `order store ${l.file} is no longer held by this store (pid ${l.me.pid} on ${l.me.host}): its lock ${l.lockFile} ${holder ? `is held by ${describeFileLockHolder(holder)}` : 'is gone'}; nothing written. ${RUN_ONE_WRITER}`,
        { details: { file: l.file, lockFile: l.lockFile, holder } },
      ),
  };
}

/** Takes `<file>.lock` for this process (see {@link JsonFileOrderStore}), released on a clean exit too. */
function acquireStoreLock(file: string): HeldFileLock {
  return acquireFileLock(file, storeLockErrors(file), { releaseOnExit: true });
}

/**
 * A file this process has open: its lock, its records in memory and how many stores (handles) use it.
 * Every {@link JsonFileOrderStore} of this process on the file works on this one object.
 */
interface OpenOrderFile {
  /** The registry key: the file's absolute path, its folder's symlinks resolved. */
  key: string;
  archiveFile: string;
  lock: HeldFileLock;
  data: Record<string, unknown> | undefined;
  lastCompactionMs: number | undefined;
  /** Stores open on it; the last one's close releases the lock. */
  handles: number;
}

/** The order store files this process has open, by {@link openFileKey}. */
const openFiles = new Map<string, OpenOrderFile>();

/**
 * The absolute path of `file` with its folder's symlinks resolved (the folder is made first), so two
 * spellings of one file share one entry.
 */
function openFileKey(file: string): string {
  nodeFs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  return resolvedPath(file);
}

/** `file` as an absolute path, its folder's symlinks resolved when the folder exists. */
function resolvedPath(file: string): string {
  const abs = path.resolve(file);
  try {
    return path.join(nodeFs.realpathSync(path.dirname(abs)), path.basename(abs));
  } catch {
    return abs;
  }
}

/**
 * The open file `file` (see {@link JsonFileOrderStore}): the one this process has open already, with one
 * more handle; else a new one, its lock taken (refused while another process holds it).
 */
function openOrderFile(file: string, archiveFile: string): OpenOrderFile {
  const key = openFileKey(file);
  const open = openFiles.get(key);
  if (open) {
    if (resolvedPath(archiveFile) !== resolvedPath(open.archiveFile))
      throw new RangeError(
        `order store ${file} is open in this process with the archive ${open.archiveFile}; it cannot be opened again with the archive ${archiveFile}`,
      );
    // its lock taken over (or removed by hand) meanwhile: refused now rather than at the first write
    assertFileLockHeld(open.lock);
    open.handles++;
    return open;
  }
  const opened: OpenOrderFile = {
    key,
    archiveFile,
    lock: acquireStoreLock(file),
    data: undefined,
    lastCompactionMs: undefined,
    handles: 1,
  };
  openFiles.set(key, opened);
  return opened;
}

/** One handle of `f` closed: the last one releases the lock and forgets the records. */
function closeOrderFile(f: OpenOrderFile): void {
  f.handles--;
  if (f.handles > 0) return;
  if (openFiles.get(f.key) === f) openFiles.delete(f.key);
  f.data = undefined;
  releaseFileLock(f.lock);
}

/**
 * When a stored record became final for archiving, or undefined when it is not final or has no numeric
 * `updatedAtMs` (never archived): the latest of its `updatedAtMs`, its spend's `atMs` and, for a filled
 * order on an instrument with an expiry, that expiry.
 */
function finalSinceMs(v: unknown): number | undefined {
  if (!isObject(v)) return undefined;
  const status = v.status;
  if (typeof status !== 'string' || !TERMINAL_ORDER_STATUSES.has(status as OrderStatus)) return undefined;
  if (typeof v.updatedAtMs !== 'number' || !Number.isFinite(v.updatedAtMs)) return undefined;
  let since = v.updatedAtMs;
  const spendAt = isObject(v.spend) ? v.spend.atMs : undefined;
  if (typeof spendAt === 'number' && Number.isFinite(spendAt)) since = Math.max(since, spendAt);
  if (status === 'filled' && typeof v.instrument === 'string') {
    try {
      const id = parseInstrumentId(v.instrument);
      if ('expiryMs' in id && Number.isFinite(id.expiryMs)) since = Math.max(since, id.expiryMs);
    } catch {
      // not an instrument id: no expiry
    }
  }
  return since;
}

/** The fields of an on-chain order record that {@link mergeNonceTxsOnWrite} reads (loosely: records may be old). */
interface NonceTxsFields {
  nonce?: unknown;
  txHash?: unknown;
  status?: unknown;
  cancelTxHash?: unknown;
  nonceTxs?: unknown;
}

/** Lower-cased hashes a record names at its nonce: `txHash`, `cancelTxHash`, its `nonceTxs` entries. */
function namedHashes(r: NonceTxsFields): Set<string> {
  const out = new Set<string>();
  if (typeof r.txHash === 'string') out.add(r.txHash.toLowerCase());
  if (typeof r.cancelTxHash === 'string') out.add(r.cancelTxHash.toLowerCase());
  if (Array.isArray(r.nonceTxs)) {
    for (const t of r.nonceTxs) if (isObject(t) && typeof t.hash === 'string') out.add(t.hash.toLowerCase());
  }
  return out;
}

/**
 * What a `put` of `incoming` over `stored` (the record as stored now, if any) stores, for on-chain order
 * records (anything else is stored as given): when both are at the same nonce and track the same order
 * transaction (one's `txHash` is among the hashes the other names), `incoming` with
 * - `nonceTxs`: the union of both lists by hash (case-insensitive), stored ones first in their order,
 *   then the incoming ones, each entry with every field either copy has (the richest); a cancel the
 *   stored record names only as `cancelTxHash` (an older record) is kept as an entry, last;
 * - `cancelTxHash`: the later signed of the two (by `signedAtMs`, else by position in the merged list), so
 *   it does not go back to an older cancel; unless `incoming` is `cancelled` (the chain said which cancel
 *   took the nonce: that one).
 * A record at another nonce, or with a new order transaction at the same nonce (a fresh send, its list
 * starting over), replaces the stored one as given. Mutates and returns `incoming`.
 */
export function mergeNonceTxsOnWrite<T>(stored: T | undefined, incoming: T): T {
  if (!isObject(stored) || !isObject(incoming)) return incoming;
  const s = stored as NonceTxsFields;
  const n = incoming as NonceTxsFields;
  if (!Array.isArray(s.nonceTxs) && typeof s.cancelTxHash !== 'string') return incoming;
  if (s.nonce === undefined || s.nonce !== n.nonce) return incoming;
  const sameTx =
    (typeof n.txHash === 'string' && namedHashes(s).has(n.txHash.toLowerCase())) ||
    (typeof s.txHash === 'string' && namedHashes(n).has(s.txHash.toLowerCase()));
  if (!sameTx) return incoming;

  const merged: unknown[] = [];
  const byKey = new Map<string, unknown>();
  const keyOf = (t: unknown) =>
    isObject(t) && typeof t.hash === 'string' ? t.hash.toLowerCase() : `raw:${JSON.stringify(t)}`;
  const addEntry = (t: unknown) => {
    const key = keyOf(t);
    const had = byKey.get(key);
    if (had === undefined) {
      const entry = isObject(t) ? { ...t } : t;
      byKey.set(key, entry);
      merged.push(entry);
      return;
    }
    if (!isObject(t) || !isObject(had)) return;
    for (const [k, v] of Object.entries(t)) if (v !== undefined && had[k] === undefined) had[k] = v;
  };
  for (const t of Array.isArray(s.nonceTxs) ? s.nonceTxs : []) addEntry(t);
  const incomingHadList = Array.isArray(n.nonceTxs);
  for (const t of incomingHadList ? (n.nonceTxs as unknown[]) : []) addEntry(t);
  if (typeof s.cancelTxHash === 'string' && !byKey.has(s.cancelTxHash.toLowerCase())) {
    addEntry({ kind: 'cancel', hash: s.cancelTxHash });
  }
  if (merged.length > 0 || incomingHadList) n.nonceTxs = merged;

  const sc = typeof s.cancelTxHash === 'string' ? s.cancelTxHash : undefined;
  const nc = typeof n.cancelTxHash === 'string' ? n.cancelTxHash : undefined;
  if (sc !== undefined && n.status !== 'cancelled' && (nc === undefined || signedLater(merged, sc, nc))) {
    n.cancelTxHash = sc;
  }
  return incoming;
}

/** Whether the entry `a` of `list` was signed after `b` (by `signedAtMs` when both have it and differ). */
function signedLater(list: unknown[], a: string, b: string): boolean {
  const at = (h: string) =>
    list.findIndex(
      (t) => isObject(t) && typeof t.hash === 'string' && t.hash.toLowerCase() === h.toLowerCase(),
    );
  const ia = at(a);
  const ib = at(b);
  const signedAt = (i: number) => {
    const t = list[i];
    return isObject(t) ? t.signedAtMs : undefined;
  };
  const ta = signedAt(ia);
  const tb = signedAt(ib);
  if (typeof ta === 'number' && typeof tb === 'number' && ta !== tb) return ta > tb;
  return ia > ib;
}
