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
    this.map.set(id, structuredClone(record));
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
    data[id] = structuredClone(record);
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
