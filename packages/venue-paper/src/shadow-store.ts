import { createHash } from 'node:crypto';
import { Dec, type Fill, type Order } from '@xhedge/core';
import type { Redis } from 'ioredis';

/** What one instrument's simulated trades add to the real account. */
export interface ShadowBook {
  /** Signed size added, underlying units. */
  size: Dec;
  /** Average entry of `size`, USD per unit (0 while `size` is 0). */
  entryUsd: Dec;
  /**
   * Collateral the simulated short of an option locks, USD, as the venue's quotes stated it when the
   * short was sold (`HedgeQuote.lockedCollateralUsd`): taken off the collateral's `available`, not off its
   * amount; released pro rata as the short is bought back, and in full when it is settled. 0 for a long,
   * for anything but an option, and where the venue's quote states no lock.
   */
  lockedUsd: Dec;
}

/**
 * What a dry-run venue's simulated trades add to the account, as one consistent snapshot (the orders
 * and fills themselves are kept beside it and read one by one: a read of the account does not grow
 * with the number of simulated fills).
 */
export interface ShadowState {
  /** Per instrument, what the simulated fills added. */
  books: Map<string, ShadowBook>;
  /**
   * Collateral moved by simulated trades, USD (fees and gas paid, premiums, realized perp P&L, funding,
   * the payoffs of expired positions settled in cash).
   */
  cashUsd: Dec;
  /**
   * Coins moved by simulated trades, by asset, in units of the asset: the payoffs of expired
   * coin-settled options and futures, paid in their underlying coin. Absent assets moved nothing.
   */
  coins: Map<string, Dec>;
  /** When each simulated perp position last paid or received funding, ms. */
  fundedUntilMs: Map<string, number>;
  /** Simulated orders numbered so far (the last `dry-<n>` venue order id). */
  orderSeq: number;
}

/** One simulated order and what it changes, computed from the state it is applied to. */
export interface ShadowOrderWrite {
  order: Order;
  /** Its fill (none when nothing filled). */
  fill?: Fill;
  /** The instrument's book after the fill. */
  book?: { instrument: string; book: ShadowBook };
  /** The collateral moved after the fill (absolute, not a delta). */
  cashUsd: Dec;
  /** Funding times that change (absolute). */
  fundedUntilMs?: ReadonlyMap<string, number>;
}

/** A funding accrual: the collateral moved after it and the funding times that move. */
export interface ShadowFundingWrite {
  cashUsd: Dec;
  fundedUntilMs: ReadonlyMap<string, number>;
}

/**
 * A settlement of expired simulated positions: each settled instrument's book after it (absolute: size
 * 0 once its simulated part is paid out), and the collateral after the payoffs (absolute, not deltas).
 */
export interface ShadowSettlementWrite {
  books: ReadonlyMap<string, ShadowBook>;
  cashUsd: Dec;
  /** Coins that change (absolute). */
  coins: ReadonlyMap<string, Dec>;
}

/**
 * Where a dry-run venue (`ShadowVenue`) keeps what it simulated. Updates are given as pure functions
 * of the current state: a store applies the write each returns atomically against the state it was
 * computed from, calling the function again on a newer state when another writer got there first
 * (so the functions must not have side effects).
 */
export interface ShadowStore {
  /** The simulated state of the venue's account, as it is now. */
  load(): Promise<ShadowState>;
  /** The simulated order with this client order id, if any. */
  order(clientOrderId: string): Promise<Order | undefined>;
  /** Simulated fills, oldest first: all, or those of one client order id or since a time. */
  fills(q?: { clientOrderId?: string; sinceMs?: number }): Promise<Fill[]>;
  /** How many orders and fills were simulated. */
  counts(): Promise<{ orders: number; fills: number }>;
  /**
   * Records the order with `clientOrderId` (and its fill, book and collateral) computed by `decide`
   * from the current state; when an order with that client id is stored already (placed by this or any
   * other process), returns that one and writes nothing.
   */
  placeOrder(clientOrderId: string, decide: (s: ShadowState) => ShadowOrderWrite): Promise<Order>;
  /**
   * Records the funding `decide` computes from the current state (undefined: nothing to record);
   * resolves to the state after it.
   */
  accrueFunding(decide: (s: ShadowState) => ShadowFundingWrite | undefined): Promise<ShadowState>;
  /**
   * Records the settlement `decide` computes from the current state (undefined: nothing to settle);
   * resolves to the state after it.
   */
  settle(decide: (s: ShadowState) => ShadowSettlementWrite | undefined): Promise<ShadowState>;
}

function emptyState(): ShadowState {
  return { books: new Map(), cashUsd: new Dec(0), coins: new Map(), fundedUntilMs: new Map(), orderSeq: 0 };
}

function cloneState(s: ShadowState): ShadowState {
  return {
    books: new Map(s.books),
    cashUsd: s.cashUsd,
    coins: new Map(s.coins),
    fundedUntilMs: new Map(s.fundedUntilMs),
    orderSeq: s.orderSeq,
  };
}

/** Fills matching `q`, oldest first (by time, then by the order they were simulated in). */
function selectFills(
  fills: Iterable<[number, Fill]>,
  q: { clientOrderId?: string; sinceMs?: number } = {},
): Fill[] {
  return [...fills]
    .filter(
      ([, f]) =>
        (q.clientOrderId === undefined || f.clientOrderId === q.clientOrderId) &&
        (q.sinceMs === undefined || f.tsMs >= q.sinceMs),
    )
    .sort((a, b) => a[1].tsMs - b[1].tsMs || a[0] - b[0])
    .map(([, f]) => f);
}

/** What a write turns `s` into (a new state; `s` is left as it was). */
function applyOrder(s: ShadowState, w: ShadowOrderWrite): ShadowState {
  const n = cloneState(s);
  n.orderSeq += 1;
  if (w.book) n.books.set(w.book.instrument, w.book.book);
  n.cashUsd = w.cashUsd;
  for (const [k, v] of w.fundedUntilMs ?? []) n.fundedUntilMs.set(k, v);
  return n;
}

function applyFunding(s: ShadowState, w: ShadowFundingWrite): ShadowState {
  const n = cloneState(s);
  n.cashUsd = w.cashUsd;
  for (const [k, v] of w.fundedUntilMs) n.fundedUntilMs.set(k, v);
  return n;
}

function applySettlement(s: ShadowState, w: ShadowSettlementWrite): ShadowState {
  const n = cloneState(s);
  for (const [k, b] of w.books) n.books.set(k, b);
  n.cashUsd = w.cashUsd;
  for (const [k, v] of w.coins) n.coins.set(k, v);
  return n;
}

/** The simulated state in this process's memory: lost on restart, unseen by other processes. */
export class MemoryShadowStore implements ShadowStore {
  #state = emptyState();
  readonly #orders = new Map<string, Order>();
  /** By client order id: the order's sequence number and its fill. */
  readonly #fills = new Map<string, [number, Fill]>();

  async load(): Promise<ShadowState> {
    return cloneState(this.#state);
  }

  async order(clientOrderId: string): Promise<Order | undefined> {
    return this.#orders.get(clientOrderId);
  }

  async fills(q: { clientOrderId?: string; sinceMs?: number } = {}): Promise<Fill[]> {
    return selectFills(this.#fills.values(), q);
  }

  async counts(): Promise<{ orders: number; fills: number }> {
    return { orders: this.#orders.size, fills: this.#fills.size };
  }

  async placeOrder(clientOrderId: string, decide: (s: ShadowState) => ShadowOrderWrite): Promise<Order> {
    const seen = this.#orders.get(clientOrderId);
    if (seen) return seen;
    const w = decide(cloneState(this.#state));
    this.#state = applyOrder(this.#state, w);
    this.#orders.set(clientOrderId, w.order);
    if (w.fill) this.#fills.set(clientOrderId, [this.#state.orderSeq, w.fill]);
    return w.order;
  }

  async accrueFunding(decide: (s: ShadowState) => ShadowFundingWrite | undefined): Promise<ShadowState> {
    const w = decide(cloneState(this.#state));
    if (w) this.#state = applyFunding(this.#state, w);
    return cloneState(this.#state);
  }

  async settle(decide: (s: ShadowState) => ShadowSettlementWrite | undefined): Promise<ShadowState> {
    const w = decide(cloneState(this.#state));
    if (w) this.#state = applySettlement(this.#state, w);
    return cloneState(this.#state);
  }
}

/**
 * The compare-and-set of one update. KEYS: the state hash, the orders hash, the fills hash. ARGV: the
 * state's version the update was computed from; the client order id ('' for funding and settlement);
 * the order's JSON and its fill's JSON ('' for none); then the state's (field, value) pairs. When the client order id
 * is stored already, returns that order; when the version moved, writes nothing.
 */
const CAS_SCRIPT = `
local unpack = unpack or table.unpack
if ARGV[2] ~= '' then
  local seen = redis.call('HGET', KEYS[2], ARGV[2])
  if seen then return {'seen', seen} end
end
local v = redis.call('HGET', KEYS[1], 'v') or '0'
if v ~= ARGV[1] then return {'conflict'} end
redis.call('HSET', KEYS[1], 'v', tostring(tonumber(v) + 1), unpack(ARGV, 5))
if ARGV[3] ~= '' then redis.call('HSET', KEYS[2], ARGV[2], ARGV[3]) end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[3], ARGV[2], ARGV[4]) end
return {'ok'}
`;
const CAS_SHA = createHash('sha1').update(CAS_SCRIPT).digest('hex');

export interface RedisShadowStoreOptions {
  /** A client of the run's Redis (shared by every process of the deployment). */
  redis: Redis;
  /** The run's key prefix (`{xhedge}:<profile>`). */
  prefix: string;
  /** The venue whose simulated state this is. */
  venue: string;
  /** Attempts of one update before giving up when other writers keep changing the state. @defaultValue 100 */
  maxAttempts?: number;
}

/**
 * The simulated state in the run's Redis, so every process of a deployment (orchestrator, workers)
 * sees the same simulated fills and a restart keeps them: per venue, the account's state in one hash
 * (`<prefix>:dry-run:<venue>`: version, collateral moved, coins moved, order count, books with the
 * collateral their shorts lock, funding times), the orders and the fills in two more keyed by client
 * order id (`<prefix>:dry-run-orders:<venue>`, `<prefix>:dry-run-fills:<venue>`), so reading the
 * account does not grow with the fills. Amounts are exact decimal strings, orders and fills JSON.
 * Each update is read, computed and written with a compare-and-set on the state's version (one Lua
 * script over the three keys, which share the prefix's hash tag), retried on a newer state when
 * another process wrote in between: no update is lost and a client order id is placed once across all
 * processes.
 */
export class RedisShadowStore implements ShadowStore {
  readonly key: string;
  readonly #ordersKey: string;
  readonly #fillsKey: string;
  readonly #redis: Redis;
  readonly #venue: string;
  readonly #maxAttempts: number;

  /** Every key a venue's dry run keeps in Redis (what `xhedge dry-run reset` deletes). */
  static keysOf(prefix: string, venue: string): [string, string, string] {
    return [
      `${prefix}:dry-run:${venue}`,
      `${prefix}:dry-run-orders:${venue}`,
      `${prefix}:dry-run-fills:${venue}`,
    ];
  }

  constructor(o: RedisShadowStoreOptions) {
    this.#redis = o.redis;
    this.#venue = o.venue;
    [this.key, this.#ordersKey, this.#fillsKey] = RedisShadowStore.keysOf(o.prefix, o.venue);
    this.#maxAttempts = o.maxAttempts ?? 100;
  }

  async load(): Promise<ShadowState> {
    return (await this.#read()).state;
  }

  async order(clientOrderId: string): Promise<Order | undefined> {
    const raw = await this.#redis.hget(this.#ordersKey, clientOrderId);
    return raw === null ? undefined : (this.#json(`order ${clientOrderId}`, raw) as Order);
  }

  async fills(q: { clientOrderId?: string; sinceMs?: number } = {}): Promise<Fill[]> {
    const entries: [string, string][] =
      q.clientOrderId !== undefined
        ? await this.#redis
            .hget(this.#fillsKey, q.clientOrderId)
            .then((raw) => (raw === null ? [] : [[q.clientOrderId as string, raw]]))
        : Object.entries(await this.#redis.hgetall(this.#fillsKey));
    return selectFills(
      entries.map(([cid, raw]) => {
        const e = this.#json(`fill of ${cid}`, raw) as { seq?: unknown; fill?: unknown };
        if (typeof e.seq !== 'number' || typeof e.fill !== 'object' || e.fill === null)
          throw new Error(`${this.#venue}: dry run: ${this.#fillsKey} field ${cid} is not a fill record`);
        return [e.seq, e.fill as Fill];
      }),
      q,
    );
  }

  async counts(): Promise<{ orders: number; fills: number }> {
    const [orders, fills] = await Promise.all([
      this.#redis.hlen(this.#ordersKey),
      this.#redis.hlen(this.#fillsKey),
    ]);
    return { orders, fills };
  }

  async placeOrder(clientOrderId: string, decide: (s: ShadowState) => ShadowOrderWrite): Promise<Order> {
    for (let i = 0; i < this.#maxAttempts; i++) {
      const [seen, { state, version }] = await Promise.all([this.order(clientOrderId), this.#read()]);
      if (seen) return seen;
      const w = decide(state);
      if (w.order.clientOrderId !== clientOrderId)
        throw new Error(
          `${this.#venue}: dry run: the order to record is ${w.order.clientOrderId}, not ${clientOrderId}`,
        );
      const seq = state.orderSeq + 1;
      const fields: string[] = ['seq', String(seq), 'cash', w.cashUsd.toFixed()];
      if (w.book) fields.push(`book:${w.book.instrument}`, bookJson(w.book.book));
      for (const [k, v] of w.fundedUntilMs ?? []) fields.push(`funded:${k}`, fundedMs(k, v));
      const fill = w.fill ? JSON.stringify({ seq, fill: w.fill }) : '';
      const r = await this.#cas(version, clientOrderId, [JSON.stringify(w.order), fill, ...fields]);
      if (r.kind === 'seen') return r.order;
      if (r.kind === 'ok') return w.order;
    }
    throw this.#busy(`placing ${clientOrderId}`);
  }

  async accrueFunding(decide: (s: ShadowState) => ShadowFundingWrite | undefined): Promise<ShadowState> {
    for (let i = 0; i < this.#maxAttempts; i++) {
      const { state, version } = await this.#read();
      const w = decide(state);
      if (!w) return state;
      const fields = ['cash', w.cashUsd.toFixed()];
      for (const [k, v] of w.fundedUntilMs) fields.push(`funded:${k}`, fundedMs(k, v));
      const r = await this.#cas(version, '', ['', '', ...fields]);
      if (r.kind === 'ok') return applyFunding(state, w);
    }
    throw this.#busy('accruing funding');
  }

  async settle(decide: (s: ShadowState) => ShadowSettlementWrite | undefined): Promise<ShadowState> {
    for (let i = 0; i < this.#maxAttempts; i++) {
      const { state, version } = await this.#read();
      const w = decide(state);
      if (!w) return state;
      const fields = ['cash', w.cashUsd.toFixed()];
      for (const [k, b] of w.books) fields.push(`book:${k}`, bookJson(b));
      for (const [k, v] of w.coins) fields.push(`coin:${k}`, v.toFixed());
      const r = await this.#cas(version, '', ['', '', ...fields]);
      if (r.kind === 'ok') return applySettlement(state, w);
    }
    throw this.#busy('settling expired positions');
  }

  #busy(what: string): Error {
    return new Error(
      `${this.#venue}: dry run: ${what} in Redis (${this.key}) lost to other writers ${this.#maxAttempts} times in a row`,
    );
  }

  async #cas(
    version: string,
    clientOrderId: string,
    fields: readonly string[],
  ): Promise<{ kind: 'ok' } | { kind: 'conflict' } | { kind: 'seen'; order: Order }> {
    const args = [this.key, this.#ordersKey, this.#fillsKey, version, clientOrderId, ...fields];
    let res: unknown;
    try {
      res = await this.#redis.evalsha(CAS_SHA, 3, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      res = await this.#redis.eval(CAS_SCRIPT, 3, ...args);
    }
    if (!Array.isArray(res))
      throw new Error(`${this.#venue}: dry run: unexpected Redis reply ${String(res)}`);
    const [kind, order] = res as [unknown, unknown];
    if (kind === 'ok' || kind === 'conflict') return { kind };
    if (kind === 'seen' && typeof order === 'string')
      return { kind, order: this.#json(`order ${clientOrderId}`, order) as Order };
    throw new Error(`${this.#venue}: dry run: unexpected Redis reply ${JSON.stringify(res)}`);
  }

  #json(field: string, raw: string): unknown {
    try {
      return JSON.parse(raw);
    } catch {
      throw new Error(
        `${this.#venue}: dry run: ${this.key} field ${field} is not JSON: ${raw.slice(0, 200)}`,
      );
    }
  }

  #dec(field: string, raw: unknown): Dec {
    if (typeof raw !== 'string' || !/^-?\d+(\.\d+)?$/.test(raw))
      throw new Error(
        `${this.#venue}: dry run: ${this.key} field ${field} is not a decimal: ${JSON.stringify(raw)}`,
      );
    return new Dec(raw);
  }

  async #read(): Promise<{ state: ShadowState; version: string }> {
    const h = await this.#redis.hgetall(this.key);
    const state = emptyState();
    for (const [field, raw] of Object.entries(h)) {
      const colon = field.indexOf(':');
      const kind = colon < 0 ? field : field.slice(0, colon);
      const name = field.slice(colon + 1);
      if (kind === 'cash') state.cashUsd = this.#dec(field, raw);
      else if (kind === 'seq') state.orderSeq = this.#int(field, raw);
      else if (kind === 'order' || kind === 'fill')
        throw new Error(
          `${this.#venue}: dry run: ${this.key} holds orders and fills in the layout of an earlier xhedge; start the dry run over with \`xhedge dry-run reset\``,
        );
      else if (kind === 'funded') state.fundedUntilMs.set(name, this.#int(field, raw));
      else if (kind === 'coin') state.coins.set(name, this.#dec(field, raw));
      else if (kind === 'book') {
        const b = this.#json(field, raw) as { size?: unknown; entryUsd?: unknown; lockedUsd?: unknown };
        state.books.set(name, {
          size: this.#dec(`${field}.size`, b.size),
          entryUsd: this.#dec(`${field}.entryUsd`, b.entryUsd),
          // absent: nothing locked (also a book written before locks were kept)
          lockedUsd: b.lockedUsd === undefined ? new Dec(0) : this.#dec(`${field}.lockedUsd`, b.lockedUsd),
        });
      }
    }
    return { state, version: h.v ?? '0' };
  }

  #int(field: string, raw: string): number {
    const n = Number(raw);
    if (!/^-?\d+$/.test(raw) || !Number.isSafeInteger(n))
      throw new Error(`${this.#venue}: dry run: ${this.key} field ${field} is not an integer: ${raw}`);
    return n;
  }
}

/** A book as stored: exact decimal strings; `lockedUsd` only when something is locked. */
function bookJson(b: ShadowBook): string {
  return JSON.stringify({
    size: b.size.toFixed(),
    entryUsd: b.entryUsd.toFixed(),
    ...(b.lockedUsd.isZero() ? {} : { lockedUsd: b.lockedUsd.toFixed() }),
  });
}

function fundedMs(instrument: string, ms: number): string {
  if (!Number.isSafeInteger(ms))
    throw new Error(`dry run: funding time of ${instrument} is not a whole ms: ${ms}`);
  return String(ms);
}
