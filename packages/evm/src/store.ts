import * as nodeFs from 'node:fs';
import path from 'node:path';

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
  /** Every record (fills, reconciliation, and the spend-cap window rebuilt after a restart). */
  list(): Promise<T[]>;
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

/**
 * One JSON file per venue; every `put` rewrites the file atomically and durably before it resolves:
 * write a temp file, fsync it, rename it over the file, fsync the directory (so the rename itself is on
 * disk). A record written before a broadcast thus survives a crash or a power loss. Records must be
 * JSON-safe (bigints as decimal strings). Single writer per file (one process per venue account).
 */
export class JsonFileOrderStore<T> implements OrderRecordStore<T> {
  private readonly file: string;
  private readonly fs: OrderStoreFs;
  private data: Record<string, T> | undefined;

  constructor(file: string, opts: { fs?: OrderStoreFs } = {}) {
    this.file = file;
    this.fs = opts.fs ?? nodeFs;
  }

  private load(): Record<string, T> {
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
      this.data = JSON.parse(text) as Record<string, T>;
    } catch (err) {
      throw new Error(`order store ${this.file} is not valid JSON: ${(err as Error).message}`, {
        cause: err,
      });
    }
    return this.data;
  }

  async get(id: string): Promise<T | undefined> {
    const v = this.load()[id];
    return v === undefined ? undefined : structuredClone(v);
  }

  async put(id: string, record: T): Promise<void> {
    const data = this.load();
    data[id] = mergeNonceTxsOnWrite(data[id], structuredClone(record));
    const fs = this.fs;
    const dir = path.dirname(this.file);
    fs.mkdirSync(dir, { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeFileSync(fd, JSON.stringify(data, null, 1));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, this.file);
    // The rename lives in the directory: sync it too, or a power loss can bring back the old file.
    // (Windows cannot open a directory; there the rename is as durable as NTFS makes it.)
    if (process.platform !== 'win32') {
      const dfd = fs.openSync(dir, 'r');
      try {
        fs.fsyncSync(dfd);
      } finally {
        fs.closeSync(dfd);
      }
    }
  }

  async list(): Promise<T[]> {
    return Object.values(this.load()).map((v) => structuredClone(v));
  }
}

/** The fields of an on-chain order record that {@link mergeNonceTxsOnWrite} reads (loosely: records may be old). */
interface NonceTxsFields {
  nonce?: unknown;
  txHash?: unknown;
  status?: unknown;
  cancelTxHash?: unknown;
  nonceTxs?: unknown;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

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
