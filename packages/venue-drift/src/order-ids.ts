import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { type Clock, DecimalString, Order, OrderType, parseOrThrow, Side, XhedgeError } from '@xhedge/core';
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
  /**
   * Clock time taken just before the User read `baseBeforeRaw` comes from: a fill of another order
   * on the market that this order's record was made after cannot be in that position.
   */
  baseBeforeAtMs: z.number().int().nonnegative().optional(),
  /**
   * The slot the placing transaction ran in (its signature status at the venue's commitment), which
   * the program writes into the order's slot (`Order.slot`): known once confirmed.
   */
  landedSlot: z.number().int().nonnegative().optional(),
  createdAtMs: z.number().int().nonnegative(),
  updatedAtMs: z.number().int().nonnegative(),
  /** The order's terminal state once known. */
  final: Order.optional(),
  /**
   * A live record only: the order has ended (its slot gone) but its fill is not proven, only within
   * this range (base units) the position change allows, other orders on the market having been in
   * flight. The order stays unresolved (outcome unknown, its record live, never pruned) until the
   * range closes. (A released record written by the previous build may carry it with an estimated
   * `final`.)
   */
  filledBoundsBase: z.object({ min: DecimalString, max: DecimalString }).optional(),
  /**
   * With `filledBoundsBase`: what the range was worked out from, so that it narrows as the other
   * orders' fills become known, never moved by later trades: the position change when the order was
   * found ended, net of the other orders' known parts (BASE_PRECISION, signed), and the other orders
   * whose parts were not known (`lowerKnown`: all of its fill counts, it was sent after this order's
   * position read and had ended; else anything from 0 to its fill).
   */
  fillEvidence: z
    .object({
      netRaw: z.string().regex(/^-?\d+$/),
      others: z.array(
        z.object({
          clientOrderId: z.string().min(1).max(64),
          side: z.enum(['buy', 'sell']),
          sizeBase: DecimalString,
          lowerKnown: z.boolean(),
        }),
      ),
    })
    .optional(),
  /** Clock time by which the order was known to have ended (set when its fill was left in a range). */
  endedAtMs: z.number().int().nonnegative().optional(),
  /**
   * The client id of the order whose position read (`baseBeforeRaw`) already showed this order ended:
   * this order's fill is in that order's position before, not part of its change.
   */
  endInPositionOf: z.string().min(1).max(64).optional(),
});
export type UserOrderIdRecord = z.infer<typeof UserOrderIdRecord>;

const PrunedKey = z.string().regex(/^[A-Za-z0-9_-]{16}$/);
const TerminalStatus = z.enum(['filled', 'cancelled', 'rejected', 'failed']);

/**
 * A pruned record's tombstone with how its order ended: {@link prunedKey} of the client id, then the
 * terminal order's fields, positional to keep it small (about 150 bytes in JSON).
 */
const Tombstone = z.tuple([
  PrunedKey,
  TerminalStatus,
  /** filledSizeBase */
  DecimalString,
  /** avgFillPriceUsd */
  DecimalString.nullable(),
  /** venueOrderId */
  z.string().nullable(),
  /** instrument */
  z.string().min(1).max(64),
  Side,
  OrderType,
  /** sizeBase */
  DecimalString,
  /** limitPriceUsd */
  DecimalString.nullable(),
  /** reduceOnly */
  z.boolean(),
  /** createdAtMs */
  z.number().int().nonnegative(),
  /** updatedAtMs: when the adapter recorded the end */
  z.number().int().nonnegative(),
  /**
   * error: written as null (status and sizes answer a late lookup; the text cost most of the file),
   * read when an earlier build wrote it
   */
  z.string().nullable(),
]);
type Tombstone = z.infer<typeof Tombstone>;

/**
 * The stored table's last entry: tombstones of the released records pruned from the history, oldest
 * first. Each is a {@link Tombstone} with the order's terminal state, or a bare {@link prunedKey} where
 * the record had none (written by an earlier build, which kept only the key). An entry of its own in
 * the same array (not a new file shape) so that the table stays one atomic write, and an older build
 * reading it fails loudly on it rather than reading an empty map.
 */
const PrunedEntry = z.object({ pruned: z.array(z.union([PrunedKey, Tombstone])) }).strict();
export type PrunedEntry = z.infer<typeof PrunedEntry>;

/** A pruned client order id's key: 96 bits of its sha256, base64url (16 characters). */
function prunedKey(clientOrderId: string): string {
  return createHash('sha256').update(clientOrderId).digest('base64url').slice(0, 16);
}

/** How a pruned order ended, as its tombstone kept it (the venue adds its id and the client id). */
export type PrunedOrder = Pick<
  Order,
  | 'status'
  | 'filledSizeBase'
  | 'instrument'
  | 'side'
  | 'orderType'
  | 'sizeBase'
  | 'reduceOnly'
  | 'createdAtMs'
  | 'updatedAtMs'
> &
  Partial<Pick<Order, 'avgFillPriceUsd' | 'venueOrderId' | 'limitPriceUsd' | 'error'>>;

/** The tombstone of a released record: its terminal order, or null when the record has none. */
function tombstoneOf(key: string, r: UserOrderIdRecord): Tombstone | null {
  const f = r.final;
  const status = f && TerminalStatus.safeParse(f.status);
  if (!f || !status?.success) return null;
  return [
    key,
    status.data,
    f.filledSizeBase,
    f.avgFillPriceUsd ?? null,
    f.venueOrderId ?? null,
    f.instrument,
    f.side,
    f.orderType,
    f.sizeBase,
    f.limitPriceUsd ?? null,
    f.reduceOnly,
    f.createdAtMs,
    f.updatedAtMs,
    null,
  ];
}

function prunedOrderOf(t: Tombstone): PrunedOrder {
  const [
    ,
    status,
    filled,
    avg,
    venueOrderId,
    instrument,
    side,
    orderType,
    size,
    limit,
    reduceOnly,
    createdAtMs,
    updatedAtMs,
    error,
  ] = t;
  return {
    status,
    filledSizeBase: filled,
    ...(avg === null ? {} : { avgFillPriceUsd: avg }),
    ...(venueOrderId === null ? {} : { venueOrderId }),
    instrument,
    side,
    orderType,
    sizeBase: size,
    ...(limit === null ? {} : { limitPriceUsd: limit }),
    reduceOnly,
    createdAtMs,
    updatedAtMs,
    ...(error === null ? {} : { error }),
  };
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
      // One entry per line: the tombstones' entry stays one line rather than one per field.
      await writeFile(tmp, `[\n${entries.map((e) => JSON.stringify(e)).join(',\n')}\n]\n`);
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

/**
 * `save: false` changes the map in memory only: the next change that saves writes it too. For a
 * change nothing is sent on until a later save in the same call (a crash before then loses nothing
 * that was acted on).
 */
export interface SaveOptions {
  save?: boolean;
}

export interface UserOrderIdMapOptions {
  store: UserOrderIdStore;
  clock: Clock;
  /** Released records kept for lookups, newest first. @defaultValue 1000 */
  historyLimit?: number;
  /**
   * Tombstones kept of released records pruned from that history, each with how its order ended
   * (about 150 bytes on disk). @defaultValue 20000
   */
  prunedLimit?: number;
}

/**
 * The durable client-order-id → u8 map. A u8 is never handed out while it is live here or while
 * an open order on chain carries it (`busy`), so a reused id cannot be confused with an older order.
 * Every change is saved before the caller proceeds (the record exists before the transaction is sent).
 *
 * History is bounded: past `historyLimit` released records the oldest are pruned. Absent from the map
 * must still mean "never sent" (the worker re-sends such an order), so a pruned record leaves a
 * tombstone: a 16-character hash of its client id with the terminal state of its order (status,
 * filled size, average price, what it was), so that a late lookup (a reconciler resolving an old
 * outcome-unknown order) gets that answer, not "unknown" for ever ({@link pruned}). Only a record
 * released without a terminal state (an earlier build's bare tombstone) leaves nothing to answer
 * with. The tombstones are bounded too (`prunedLimit`, oldest dropped): an id pruned that long ago
 * reads as never sent again. Refusing every unknown id once anything was pruned would instead leave
 * each order that never landed (or never got this far) unresolvable, forever.
 */
export class UserOrderIdMap {
  readonly #store: UserOrderIdStore;
  readonly #clock: Clock;
  readonly #historyLimit: number;
  readonly #prunedLimit: number;
  readonly #byClient = new Map<string, UserOrderIdRecord>();
  /** Tombstones of pruned released records by {@link prunedKey}, oldest first (null: key only). */
  readonly #pruned = new Map<string, Tombstone | null>();
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
        for (const t of parseOrThrow(PrunedEntry, r, 'stored Drift pruned ids').pruned) {
          if (typeof t === 'string') map.#pruned.set(t, null);
          else map.#pruned.set(t[0], t);
        }
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
    return this.pruned(clientOrderId) !== undefined;
  }

  /**
   * A pruned client id's order as it ended: undefined when the id was not pruned (it has a record, or
   * none was ever kept), null when its tombstone holds no terminal state (an earlier build's).
   */
  pruned(clientOrderId: string): PrunedOrder | null | undefined {
    if (this.#byClient.has(clientOrderId)) return undefined;
    const key = prunedKey(clientOrderId);
    if (!this.#pruned.has(key)) return undefined;
    const t = this.#pruned.get(key);
    return t ? prunedOrderOf(t) : null;
  }

  /** Every record (live and released), for reconciling one order against the others. */
  records(): UserOrderIdRecord[] {
    return [...this.#byClient.values()];
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
    opts?: SaveOptions,
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
    if (opts?.save !== false) await this.#persist();
    return rec;
  }

  async update(
    clientOrderId: string,
    patch: Partial<
      Pick<
        UserOrderIdRecord,
        | 'signature'
        | 'lastValidBlockHeight'
        | 'baseBeforeRaw'
        | 'landedSlot'
        | 'filledBoundsBase'
        | 'fillEvidence'
        | 'endedAtMs'
      >
    >,
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

  /**
   * Frees the u8; `final` (when known) answers later lookups without asking the chain, and its
   * tombstone once the record is pruned (a range of fills the record held is dropped: `final` is the
   * answer). `endInPositionOf`: see {@link UserOrderIdRecord}.
   */
  async release(
    clientOrderId: string,
    final?: Order,
    opts?: SaveOptions & { endInPositionOf?: string },
  ): Promise<UserOrderIdRecord> {
    const rec = this.#require(clientOrderId);
    const { filledBoundsBase: _range, fillEvidence: _evidence, ...kept } = rec;
    const next: UserOrderIdRecord = { ...kept, state: 'released', updatedAtMs: this.#clock.nowMs() };
    if (final) next.final = final;
    if (opts?.endInPositionOf !== undefined) next.endInPositionOf = opts.endInPositionOf;
    this.#byClient.set(clientOrderId, next);
    if (opts?.save !== false) await this.#persist();
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
      const key = prunedKey(r.clientOrderId);
      this.#pruned.delete(key); // re-inserted as the newest
      this.#pruned.set(key, tombstoneOf(key, r));
    }
    for (const key of this.#pruned.keys()) {
      if (this.#pruned.size <= this.#prunedLimit) break;
      this.#pruned.delete(key);
    }
    // Concurrent orders change the map at once; their saves must not overlap (two writes of one file
    // race: a rename finds its temp file already moved) nor land out of order (an older table last).
    const entries: (UserOrderIdRecord | PrunedEntry)[] = [...this.#byClient.values()];
    if (this.#pruned.size > 0) entries.push({ pruned: [...this.#pruned].map(([key, t]) => t ?? key) });
    const saved = this.#saving.then(() => this.#store.save(entries));
    this.#saving = saved.catch(() => undefined);
    await saved;
  }
}
