import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';

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
 * One JSON file per venue; every `put` rewrites the file atomically (write a temp file, fsync by
 * rename) before it resolves, so a record written before a broadcast survives a crash. Records must be
 * JSON-safe (bigints as decimal strings). Single writer per file (one process per venue account).
 */
export class JsonFileOrderStore<T> implements OrderRecordStore<T> {
  private readonly file: string;
  private data: Record<string, T> | undefined;

  constructor(file: string) {
    this.file = file;
  }

  private load(): Record<string, T> {
    if (this.data) return this.data;
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
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
    mkdirSync(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(data, null, 1));
    renameSync(tmp, this.file);
  }

  async list(): Promise<T[]> {
    return Object.values(this.load()).map((v) => structuredClone(v));
  }
}
