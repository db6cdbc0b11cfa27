import { createHash } from 'node:crypto';
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

/**
 * The stored table's last entry: tombstones of the released records pruned from the history, each
 * {@link prunedKey} of a client order id, oldest first. An entry of its own in the same array (not a
 * new file shape) so that the table stays one atomic write, and an older build reading it fails
 * loudly on it rather than reading an empty map.
 */
const PrunedEntry = z.object({ pruned: z.array(z.string().regex(/^[A-Za-z0-9_-]{16}$/)) }).strict();
export type PrunedEntry = z.infer<typeof PrunedEntry>;

/** A pruned client order id's tombstone: 96 bits of its sha256, base64url (16 characters). */
function prunedKey(clientOrderId: string): string {
  return createHash('sha256').update(clientOrderId).digest('base64url').slice(0, 16);
}

/**
 * Durable storage of the mapping: the whole table is small (≤ 255 live + a bounded history, then at
 * most one {@link PrunedEntry}).
 */
export interface UserOrderIdStore {
  load(): Promise<unknown[]>;
  save(entries: readonly (UserOrderIdRecord | PrunedEntry)[]): Promise<void>;
}

export function memoryUserOrderIdStore(): UserOrderIdStore & { snapshot(): unknown[] } {
  let data: unknown[] = [];
  return {
    load: async () => structuredClone(data),
    save: async (entries) => {
      data = structuredClone([...entries]);
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
    async save(entries) {
      const tmp = `${path}.tmp`;
      await mkdir(dirname(path), { recursive: true });
      await writeFile(tmp, JSON.stringify(entries, null, 1));
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
  /** Tombstones kept of released records pruned from that history (19 bytes each on disk). @defaultValue 20000 */
  prunedLimit?: number;
}

/**
 * The durable client-order-id → u8 map. A u8 is never handed out while it is live here or while
 * an open order on chain carries it (`busy`), so a reused id cannot be confused with an older order.
 * Every change is saved before the caller proceeds (the record exists before the transaction is sent).
 *
 * History is bounded: past `historyLimit` released records the oldest are pruned. Absent from the map
 * must still mean "never sent" (the worker re-sends such an order), so a pruned record leaves a
 * tombstone (a 16-character hash of its client id, {@link isPruned}) and the venue answers for it
 * "outcome unknown", not null. The tombstones are bounded too (`prunedLimit`, oldest dropped): an id
 * pruned that long ago reads as never sent again. Refusing every unknown id once anything was pruned
 * would instead leave each order that never landed (or never got this far) unresolvable, forever.
 */
export class UserOrderIdMap {
  readonly #store: UserOrderIdStore;
  readonly #clock: Clock;
  readonly #historyLimit: number;
  readonly #prunedLimit: number;
  readonly #byClient = new Map<string, UserOrderIdRecord>();
  /** Tombstones ({@link prunedKey}) of pruned released records, oldest first. */
  readonly #pruned = new Set<string>();
  /** The save in progress (or last done): saves run one at a time, in the order of the changes. */
  #saving: Promise<void> = Promise.resolve();

  private constructor(o: UserOrderIdMapOptions) {
    this.#store = o.store;
    this.#clock = o.clock;
    this.#historyLimit = o.historyLimit ?? 1000;
    this.#prunedLimit = o.prunedLimit ?? 20_000;
  }

  static async open(o: UserOrderIdMapOptions): Promise<UserOrderIdMap> {
    return UserOrderIdMap.fromRecords(o, await o.store.load());
  }

  /** The map over records already loaded from `o.store` (validated here, as `open` does). */
  static fromRecords(o: UserOrderIdMapOptions, raw: readonly unknown[]): UserOrderIdMap {
    const map = new UserOrderIdMap(o);
    for (const r of raw) {
      if (typeof r === 'object' && r !== null && 'pruned' in r) {
        for (const key of parseOrThrow(PrunedEntry, r, 'stored Drift pruned ids').pruned)
          map.#pruned.add(key);
        continue;
      }
      const rec = parseOrThrow(UserOrderIdRecord, r, 'stored Drift user order id record');
      map.#byClient.set(rec.clientOrderId, rec);
    }
    return map;
  }

  get(clientOrderId: string): UserOrderIdRecord | undefined {
    return this.#byClient.get(clientOrderId);
  }

  /** Whether this client id had a record, released and then pruned from the history. */
  isPruned(clientOrderId: string): boolean {
    return !this.#byClient.has(clientOrderId) && this.#pruned.has(prunedKey(clientOrderId));
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
    // Oldest pruned first, so the tombstones stay oldest first.
    for (const r of released.slice(this.#historyLimit).reverse()) {
      this.#byClient.delete(r.clientOrderId);
      this.#pruned.add(prunedKey(r.clientOrderId));
    }
    for (const key of this.#pruned) {
      if (this.#pruned.size <= this.#prunedLimit) break;
      this.#pruned.delete(key);
    }
    // Concurrent orders change the map at once; their saves must not overlap (two writes of one file
    // race: a rename finds its temp file already moved) nor land out of order (an older table last).
    const entries: (UserOrderIdRecord | PrunedEntry)[] = [...this.#byClient.values()];
    if (this.#pruned.size > 0) entries.push({ pruned: [...this.#pruned] });
    const saved = this.#saving.then(() => this.#store.save(entries));
    this.#saving = saved.catch(() => undefined);
    await saved;
  }
}
