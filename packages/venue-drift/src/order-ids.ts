import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { readFileSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import {
  acquireFileLock,
  assertFileLockHeld,
  type Clock,
  DecimalString,
  describeFileLockHolder,
  type FileLockErrors,
  type FileLockHolder,
  type HeldFileLock,
  Order,
  OrderType,
  parseOrThrow,
  releaseFileLock,
  Side,
  STALE_HEARTBEATS,
  XhedgeError,
} from '@xhedge/core';
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
  /** Releases what the store holds (the file store's single-writer lock); later calls are refused. */
  close?(): void | Promise<void>;
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
 *
 * One writer per file, enforced: the map is read once and kept in memory and every save rewrites the
 * file whole, so two stores on one file (an old and a new worker in a rolling deploy, two worker
 * processes on one host) dropped each other's records and handed out the same u8 twice, and a dropped
 * record reads as "never sent" (the order is sent again). So the first opening of a process takes
 * `<path>.lock` (pid, host, boot id, the process's start time, a random token) with an exclusive create;
 * an opening in another process is refused with a {@link DriftOrderIdStoreLockedError}
 * (`DRIFT_ORDER_IDS_LOCKED`) naming the file and the holder's pid and host. Within one process, opening a
 * file this process has open already (the same absolute path; a venue rebuilt for new params is built
 * before the old adapter is closed) shares its lock, and every {@link UserOrderIdMap} over the file shares
 * one table in memory: each sees the other's assignments at once and no u8 is handed out twice. A lock
 * whose holder is dead on this host (its pid gone; its pid running but started at another time, a reused
 * pid; written in an earlier boot) is taken over; one of another host is refused (remove it by hand once
 * that host no longer runs the venue). Every save first checks the lock is still this process's
 * (`DRIFT_ORDER_IDS_LOCK_LOST`: nothing written). `close` (or {@link UserOrderIdMap.close}) closes this
 * opening: every later call on it is refused (`DRIFT_ORDER_IDS_CLOSED`); the last opening of the process
 * to close releases the lock and drops the shared table (a later opening reads the file), and so does a
 * clean exit of the process. Worker threads do not share: another thread is refused like another process.
 */
export function fileUserOrderIdStore(
  path: string,
): UserOrderIdStore & { loadSync(): unknown[]; close(): void; readonly path: string } {
  const file = openIdFile(path);
  const lock = file.lock;
  let closed = false;
  const open = (what: string) => {
    if (closed)
      throw new DriftOrderIdStoreLockedError(
        'DRIFT_ORDER_IDS_CLOSED',
        `Drift user order id store ${path} is closed (${what})`,
        { details: { file: path } },
      );
  };
  const store: UserOrderIdStore & { loadSync(): unknown[]; close(): void; readonly path: string } = {
    path,
    async load() {
      open('load');
      try {
        return parseStoreFile(await readFile(path, 'utf8'));
      } catch (err) {
        if ((err as { code?: string }).code === 'ENOENT') return [];
        throw err;
      }
    },
    loadSync: () => {
      open('load');
      return parseStoreFile(orMissing(() => readFileSync(path, 'utf8')));
    },
    async save(entries) {
      open('save');
      assertFileLockHeld(lock);
      const tmp = `${path}.tmp`;
      await mkdir(dirname(path), { recursive: true });
      // One entry per line: the tombstones' entry stays one line rather than one per field.
      await writeFile(tmp, `[\n${entries.map((e) => JSON.stringify(e)).join(',\n')}\n]\n`);
      await rename(tmp, path);
    },
    close() {
      if (closed) return;
      closed = true;
      closeIdFile(file);
    },
  };
  openedFiles.set(store, file);
  return store;
}

/** A {@link UserOrderIdMap}'s table: one per file per process, shared by every map over the file. */
interface MapTable {
  byClient: Map<string, UserOrderIdRecord>;
  /** Tombstones of pruned released records by {@link prunedKey}, oldest first (null: key only). */
  pruned: Map<string, Tombstone | null>;
  /** The save in progress (or last done): saves run one at a time, in the order of the changes. */
  saving: Promise<void>;
}

/**
 * A Drift user order id file this process has open: its lock, how many openings use it, and the table
 * the maps over it share (set by the first map built over it).
 */
interface OpenIdFile {
  /** The registry key: the file's absolute path, its folder's symlinks resolved. */
  key: string;
  lock: HeldFileLock;
  handles: number;
  table: MapTable | undefined;
}

/** The files this process has open, by {@link OpenIdFile.key}. */
const openIdFiles = new Map<string, OpenIdFile>();
/** The open file of each {@link fileUserOrderIdStore} opening (how a map finds the shared table). */
const openedFiles = new WeakMap<UserOrderIdStore, OpenIdFile>();

/**
 * The open file `path`: the one this process has open already, with one more opening (refused when its
 * lock was taken over or removed meanwhile); else a new one, its lock taken (refused while another
 * process holds it).
 */
function openIdFile(path: string): OpenIdFile {
  const abs = resolve(path);
  fs.mkdirSync(dirname(abs), { recursive: true });
  const key = join(fs.realpathSync(dirname(abs)), basename(abs));
  const open = openIdFiles.get(key);
  if (open) {
    assertFileLockHeld(open.lock);
    open.handles++;
    return open;
  }
  const opened: OpenIdFile = { key, lock: acquireStoreLock(path), handles: 1, table: undefined };
  openIdFiles.set(key, opened);
  return opened;
}

/** One opening of `f` closed: the last one releases the lock and drops the shared table. */
function closeIdFile(f: OpenIdFile): void {
  f.handles--;
  if (f.handles > 0) return;
  if (openIdFiles.get(f.key) === f) openIdFiles.delete(f.key);
  f.table = undefined;
  releaseFileLock(f.lock);
}

/** Who holds a Drift user order id store: written to `<file>.lock` when the store is opened. */
export type OrderIdStoreHolder = FileLockHolder;

/**
 * A {@link fileUserOrderIdStore} refused: its file is held by another store (`DRIFT_ORDER_IDS_LOCKED`), its
 * lock is no longer this store's (`DRIFT_ORDER_IDS_LOCK_LOST`), the lock cannot be read
 * (`DRIFT_ORDER_IDS_LOCK_UNREADABLE`), or the store is closed (`DRIFT_ORDER_IDS_CLOSED`).
 */
export class DriftOrderIdStoreLockedError extends XhedgeError {
  override name = 'DriftOrderIdStoreLockedError';
}

const RUN_ONE_WRITER =
  "one process at a time writes a Drift venue's user order id store: stop the other process before starting this one (a rolling deploy stops a venue's workers before starting new ones); never run two writers of one store";

/** The errors of a Drift user order id store's lock (see {@link fileUserOrderIdStore}). */
function storeLockErrors(file: string): FileLockErrors {
  const lockFile = `${file}.lock`;
  return {
    locked: (h, why, me) => {
      const self = h.pid === me.pid && h.host === me.host;
      return new DriftOrderIdStoreLockedError(
        'DRIFT_ORDER_IDS_LOCKED',
        `Drift user order id store ${file} is ${why} ${describeFileLockHolder(h)}${self ? ', this process (another thread, or another copy of this module: open it through one)' : ''}: ${RUN_ONE_WRITER} (lock ${lockFile}${h.host === me.host && h.pidNs === me.pidNs ? '' : h.heartbeatMs === undefined ? '; an older lock, never refreshed: remove it by hand once that host no longer runs the venue' : `; taken over once its holder has not refreshed it for ${(STALE_HEARTBEATS * h.heartbeatMs) / 1000} s`})`,
        { details: { file, lockFile, pid: h.pid, host: h.host, sinceMs: h.sinceMs } },
      );
    },
    contended: () =>
      new DriftOrderIdStoreLockedError(
        'DRIFT_ORDER_IDS_LOCKED',
        `Drift user order id store ${file}: its lock ${lockFile} kept changing hands; try again`,
        {
          details: { file, lockFile },
        },
      ),
    unreadable: (f) =>
      new DriftOrderIdStoreLockedError(
        'DRIFT_ORDER_IDS_LOCK_UNREADABLE',
        `Drift user order id store lock ${f} does not name its holder (pid, host, sinceMs, token; bootId a string and startTicks a whole number of clock ticks where present); remove it by hand if no process uses the store`,
        { details: { lockFile: f } },
      ),
    lost: (l, holder) =>
      new DriftOrderIdStoreLockedError(
        'DRIFT_ORDER_IDS_LOCK_LOST',
        `Drift user order id store ${l.file} is no longer held by this store (pid ${l.me.pid} on ${l.me.host}): its lock ${l.lockFile} ${holder ? `is held by ${describeFileLockHolder(holder)}` : 'is gone'}; nothing written. ${RUN_ONE_WRITER}`,
        { details: { file: l.file, lockFile: l.lockFile, holder } },
      ),
  };
}

/** Takes `<file>.lock` for this process (see {@link fileUserOrderIdStore}), released on a clean exit too. */
function acquireStoreLock(file: string): HeldFileLock {
  return acquireFileLock(file, storeLockErrors(file), { releaseOnExit: true });
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
  /** The table: this map's own, or, over a {@link fileUserOrderIdStore}, the one of every map over the file. */
  readonly #table: MapTable;
  #closed = false;

  private constructor(o: UserOrderIdMapOptions, table: MapTable) {
    this.#store = o.store;
    this.#clock = o.clock;
    this.#historyLimit = o.historyLimit ?? 1000;
    this.#prunedLimit = o.prunedLimit ?? 20_000;
    this.#table = table;
  }

  get #byClient(): Map<string, UserOrderIdRecord> {
    this.#assertOpen();
    return this.#table.byClient;
  }
  get #pruned(): Map<string, Tombstone | null> {
    this.#assertOpen();
    return this.#table.pruned;
  }

  /**
   * The map over `o.store`'s records. Over a file another map of this process has open, it shares that
   * map's table (newer than the file while a save is under way): the file is not read again.
   */
  static async open(o: UserOrderIdMapOptions): Promise<UserOrderIdMap> {
    if (openedFiles.get(o.store)?.table) return UserOrderIdMap.fromRecords(o, []);
    return UserOrderIdMap.fromRecords(o, await o.store.load());
  }

  /**
   * The map over records already loaded from `o.store` (validated here, as `open` does); over a file
   * another map of this process has open, that map's table (`raw` is not used: the table is newer).
   */
  static fromRecords(o: UserOrderIdMapOptions, raw: readonly unknown[]): UserOrderIdMap {
    const file = openedFiles.get(o.store);
    if (file?.table) return new UserOrderIdMap(o, file.table);
    const table: MapTable = { byClient: new Map(), pruned: new Map(), saving: Promise.resolve() };
    for (const r of raw) {
      if (typeof r === 'object' && r !== null && 'pruned' in r) {
        for (const t of parseOrThrow(PrunedEntry, r, 'stored Drift pruned ids').pruned) {
          if (typeof t === 'string') table.pruned.set(t, null);
          else table.pruned.set(t[0], t);
        }
        continue;
      }
      const rec = parseOrThrow(UserOrderIdRecord, r, 'stored Drift user order id record');
      table.byClient.set(rec.clientOrderId, rec);
    }
    if (file) file.table = table;
    return new UserOrderIdMap(o, table);
  }

  #assertOpen(): void {
    if (this.#closed)
      throw new DriftOrderIdStoreLockedError(
        'DRIFT_ORDER_IDS_CLOSED',
        `Drift user order id map${'path' in this.#store ? ` over ${String(this.#store.path)}` : ''} is closed`,
      );
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

  /**
   * Closes this map: every later call on it is refused (`DRIFT_ORDER_IDS_CLOSED`). Waits for the save in
   * progress, then closes its store (the last opening of a file store in this process releases its lock;
   * other maps over the file go on). The adapter that opened the map calls it from its own `close`.
   * Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#table.saving;
    await this.#store.close?.();
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
    const saved = this.#table.saving.then(() => this.#store.save(entries));
    this.#table.saving = saved.catch(() => undefined);
    await saved;
  }
}
