import { readFileSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { type Clock, Order, parseOrThrow, XhedgeError } from '@xhedge/core';
import { z } from 'zod';

/** Drift's user order id is a u8 and 0 means "none": 255 ids can be live at once. */
export const MAX_USER_ORDER_ID = 255;

/**
 * One client order id's mapping to a Drift u8 user order id, with what the adapter needs to
 * reconcile the order after an unknown outcome: the transaction signature, the block height after
 * which that transaction can never land, and the perp position before it was sent.
 */
export const UserOrderIdRecord = z.object({
  clientOrderId: z.string().min(1).max(64),
  userOrderId: z.number().int().min(1).max(MAX_USER_ORDER_ID),
  marketIndex: z.number().int().min(0).max(65_535),
  instrument: z.string().min(1),
  side: z.enum(['buy', 'sell']),
  orderType: z.enum(['market', 'limit', 'ioc']),
  sizeBase: z.string(),
  limitPriceUsd: z.string().optional(),
  reduceOnly: z.boolean(),
  /** `live` holds the u8; `released` frees it for reuse (the record stays for lookups). */
  state: z.enum(['live', 'released']),
  signature: z.string().optional(),
  lastValidBlockHeight: z.number().int().nonnegative().optional(),
  /** Perp base before sending, BASE_PRECISION integer as a string. */
  baseBeforeRaw: z.string().regex(/^-?\d+$/),
  createdAtMs: z.number().int().nonnegative(),
  updatedAtMs: z.number().int().nonnegative(),
  /** The order's terminal state once known. */
  final: Order.optional(),
});
export type UserOrderIdRecord = z.infer<typeof UserOrderIdRecord>;

/** Durable storage of the mapping: the whole table is small (≤ 255 live + a bounded history). */
export interface UserOrderIdStore {
  load(): Promise<unknown[]>;
  save(records: readonly UserOrderIdRecord[]): Promise<void>;
}

export function memoryUserOrderIdStore(): UserOrderIdStore & { snapshot(): unknown[] } {
  let data: unknown[] = [];
  return {
    load: async () => structuredClone(data),
    save: async (records) => {
      data = structuredClone([...records]);
    },
    snapshot: () => structuredClone(data),
  };
}

/** Parses the file's records: an array, or nothing when the file does not exist yet. */
function parseStoreFile(text: string | undefined): unknown[] {
  if (text === undefined) return [];
  const parsed: unknown = JSON.parse(text);
  return Array.isArray(parsed) ? parsed : [];
}

function orMissing(read: () => string): string | undefined {
  try {
    return read();
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * A JSON file written atomically (write to a temp file, then rename); its folder is made on the first
 * save. `loadSync` reads it at once, for a venue built synchronously from a profile.
 */
export function fileUserOrderIdStore(path: string): UserOrderIdStore & { loadSync(): unknown[] } {
  return {
    async load() {
      try {
        return parseStoreFile(await readFile(path, 'utf8'));
      } catch (err) {
        if ((err as { code?: string }).code === 'ENOENT') return [];
        throw err;
      }
    },
    loadSync: () => parseStoreFile(orMissing(() => readFileSync(path, 'utf8'))),
    async save(records) {
      const tmp = `${path}.tmp`;
      await mkdir(dirname(path), { recursive: true });
      await writeFile(tmp, JSON.stringify(records, null, 1));
      await rename(tmp, path);
    },
  };
}

export class UserOrderIdsExhaustedError extends XhedgeError {
  override name = 'UserOrderIdsExhaustedError';
  constructor(live: number) {
    super('DRIFT_USER_ORDER_IDS_EXHAUSTED', `all ${live} Drift user order ids are in use`, {
      details: { live },
      metaMessages: ['wait for open orders to complete or cancel some before placing more'],
    });
  }
}

export interface UserOrderIdMapOptions {
  store: UserOrderIdStore;
  clock: Clock;
  /** Released records kept for lookups, newest first. @defaultValue 1000 */
  historyLimit?: number;
}

/**
 * The durable client-order-id → u8 map. A u8 is never handed out while it is live here or while
 * an open order on chain carries it (`busy`), so a reused id cannot be confused with an older order.
 * Every change is saved before the caller proceeds (the record exists before the transaction is sent).
 */
export class UserOrderIdMap {
  readonly #store: UserOrderIdStore;
  readonly #clock: Clock;
  readonly #historyLimit: number;
  readonly #byClient = new Map<string, UserOrderIdRecord>();
  /** The save in progress (or last done): saves run one at a time, in the order of the changes. */
  #saving: Promise<void> = Promise.resolve();

  private constructor(o: UserOrderIdMapOptions) {
    this.#store = o.store;
    this.#clock = o.clock;
    this.#historyLimit = o.historyLimit ?? 1000;
  }

  static async open(o: UserOrderIdMapOptions): Promise<UserOrderIdMap> {
    return UserOrderIdMap.fromRecords(o, await o.store.load());
  }

  /** The map over records already loaded from `o.store` (validated here, as `open` does). */
  static fromRecords(o: UserOrderIdMapOptions, raw: readonly unknown[]): UserOrderIdMap {
    const map = new UserOrderIdMap(o);
    for (const r of raw) {
      const rec = parseOrThrow(UserOrderIdRecord, r, 'stored Drift user order id record');
      map.#byClient.set(rec.clientOrderId, rec);
    }
    return map;
  }

  get(clientOrderId: string): UserOrderIdRecord | undefined {
    return this.#byClient.get(clientOrderId);
  }

  /** The live record holding this u8, if any. */
  byUserOrderId(userOrderId: number): UserOrderIdRecord | undefined {
    for (const r of this.#byClient.values())
      if (r.state === 'live' && r.userOrderId === userOrderId) return r;
    return undefined;
  }

  get liveCount(): number {
    let n = 0;
    for (const r of this.#byClient.values()) if (r.state === 'live') n++;
    return n;
  }

  /**
   * Returns the existing record for `clientOrderId`, or assigns the lowest u8 that is neither live
   * here nor `busy` on chain. Throws UserOrderIdsExhaustedError when none is free.
   */
  async assign(
    init: Omit<UserOrderIdRecord, 'userOrderId' | 'state' | 'createdAtMs' | 'updatedAtMs'>,
    busy: ReadonlySet<number>,
  ): Promise<UserOrderIdRecord> {
    const existing = this.#byClient.get(init.clientOrderId);
    if (existing) return existing;
    const taken = new Set(busy);
    for (const r of this.#byClient.values()) if (r.state === 'live') taken.add(r.userOrderId);
    let id = 0;
    for (let i = 1; i <= MAX_USER_ORDER_ID; i++) {
      if (!taken.has(i)) {
        id = i;
        break;
      }
    }
    if (id === 0) throw new UserOrderIdsExhaustedError(taken.size);
    const now = this.#clock.nowMs();
    const rec = parseOrThrow(
      UserOrderIdRecord,
      { ...init, userOrderId: id, state: 'live', createdAtMs: now, updatedAtMs: now },
      'Drift user order id record',
    );
    this.#byClient.set(rec.clientOrderId, rec);
    await this.#persist();
    return rec;
  }

  async update(
    clientOrderId: string,
    patch: Partial<Pick<UserOrderIdRecord, 'signature' | 'lastValidBlockHeight' | 'baseBeforeRaw'>>,
  ): Promise<UserOrderIdRecord> {
    const rec = this.#require(clientOrderId);
    const next = parseOrThrow(
      UserOrderIdRecord,
      { ...rec, ...patch, updatedAtMs: this.#clock.nowMs() },
      'Drift user order id record',
    );
    this.#byClient.set(clientOrderId, next);
    await this.#persist();
    return next;
  }

  /** Frees the u8; `final` (when known) answers later lookups without asking the chain. */
  async release(clientOrderId: string, final?: Order): Promise<UserOrderIdRecord> {
    const rec = this.#require(clientOrderId);
    const next: UserOrderIdRecord = { ...rec, state: 'released', updatedAtMs: this.#clock.nowMs() };
    if (final) next.final = final;
    this.#byClient.set(clientOrderId, next);
    await this.#persist();
    return next;
  }

  /** Forgets a record whose transaction never landed, so the same client id can be sent again. */
  async forget(clientOrderId: string): Promise<void> {
    this.#byClient.delete(clientOrderId);
    await this.#persist();
  }

  #require(clientOrderId: string): UserOrderIdRecord {
    const rec = this.#byClient.get(clientOrderId);
    if (!rec) throw new RangeError(`no Drift user order id record for ${clientOrderId}`);
    return rec;
  }

  async #persist(): Promise<void> {
    const released = [...this.#byClient.values()]
      .filter((r) => r.state === 'released')
      .sort((a, b) => b.updatedAtMs - a.updatedAtMs);
    for (const r of released.slice(this.#historyLimit)) this.#byClient.delete(r.clientOrderId);
    // Concurrent orders change the map at once; their saves must not overlap (two writes of one file
    // race: a rename finds its temp file already moved) nor land out of order (an older table last).
    const records = [...this.#byClient.values()];
    const saved = this.#saving.then(() => this.#store.save(records));
    this.#saving = saved.catch(() => undefined);
    await saved;
  }
}
