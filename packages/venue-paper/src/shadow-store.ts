import { createHash } from 'node:crypto';
import { Dec, type Fill, type Order } from '@xhedge/core';
import type { Redis } from 'ioredis';

/** What one instrument's simulated trades add to the real account. */
export interface ShadowBook {
  /** Signed size added, underlying units. */
  size: Dec;
  /** Average entry of `size`, USD per unit (0 while `size` is 0). */
  entryUsd: Dec;
}

/** Everything a dry-run venue has simulated, as one consistent snapshot. */
export interface ShadowState {
  /** Per instrument, what the simulated fills added. */
  books: Map<string, ShadowBook>;
  /** Collateral moved by simulated trades, USD (fees and gas paid, premiums, realized perp P&L, funding). */
  cashUsd: Dec;
  /** Every simulated order, by client order id. */
  orders: Map<string, Order>;
  /** Every simulated fill, oldest first. */
  fills: Fill[];
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
 * Where a dry-run venue (`ShadowVenue`) keeps what it simulated. Updates are given as pure functions
 * of the current state: a store applies the write each returns atomically against the state it was
 * computed from, calling the function again on a newer state when another writer got there first
 * (so the functions must not have side effects).
 */
export interface ShadowStore {
  /** The whole simulated state of the venue, as it is now. */
  load(): Promise<ShadowState>;
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
}

function emptyState(): ShadowState {
  return {
    books: new Map(),
    cashUsd: new Dec(0),
    orders: new Map(),
    fills: [],
    fundedUntilMs: new Map(),
    orderSeq: 0,
  };
}

function cloneState(s: ShadowState): ShadowState {
  return {
    books: new Map(s.books),
    cashUsd: s.cashUsd,
    orders: new Map(s.orders),
    fills: [...s.fills],
    fundedUntilMs: new Map(s.fundedUntilMs),
    orderSeq: s.orderSeq,
  };
}

/** What a write turns `s` into (a new state; `s` is left as it was). */
function applyOrder(s: ShadowState, w: ShadowOrderWrite): ShadowState {
  const n = cloneState(s);
  n.orders.set(w.order.clientOrderId, w.order);
  n.orderSeq += 1;
  if (w.fill) n.fills.push(w.fill);
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

/** The simulated state in this process's memory: lost on restart, unseen by other processes. */
export class MemoryShadowStore implements ShadowStore {
  #state = emptyState();

  async load(): Promise<ShadowState> {
    return cloneState(this.#state);
  }

  async placeOrder(clientOrderId: string, decide: (s: ShadowState) => ShadowOrderWrite): Promise<Order> {
    const seen = this.#state.orders.get(clientOrderId);
    if (seen) return seen;
    const w = decide(cloneState(this.#state));
    this.#state = applyOrder(this.#state, w);
    return w.order;
  }

  async accrueFunding(decide: (s: ShadowState) => ShadowFundingWrite | undefined): Promise<ShadowState> {
    const w = decide(cloneState(this.#state));
    if (w) this.#state = applyFunding(this.#state, w);
    return cloneState(this.#state);
  }
}

/**
 * Writes `ARGV[3..]` (field, value pairs) into the hash when its version is still `ARGV[1]`, bumping
 * it; when `ARGV[2]` names a client order id that is stored already, returns that order instead.
 */
const CAS_SCRIPT = `
local unpack = unpack or table.unpack
if ARGV[2] ~= '' then
  local seen = redis.call('HGET', KEYS[1], 'order:' .. ARGV[2])
  if seen then return {'seen', seen} end
end
local v = redis.call('HGET', KEYS[1], 'v') or '0'
if v ~= ARGV[1] then return {'conflict'} end
redis.call('HSET', KEYS[1], 'v', tostring(tonumber(v) + 1), unpack(ARGV, 3))
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
 * The simulated state in the run's Redis, one hash per venue (`<prefix>:dry-run:<venue>`), so every
 * process of a deployment (orchestrator, workers) sees the same simulated fills and a restart keeps
 * them. Amounts are stored as exact decimal strings, orders and fills as JSON keyed by client order id
 * and sequence. Each update is read, computed and written with a compare-and-set on the hash's version
 * (a Lua script), retried on a newer state when another process wrote in between: no update is lost
 * and a client order id is placed once across all processes.
 */
export class RedisShadowStore implements ShadowStore {
  readonly key: string;
  readonly #redis: Redis;
  readonly #venue: string;
  readonly #maxAttempts: number;

  constructor(o: RedisShadowStoreOptions) {
    this.#redis = o.redis;
    this.#venue = o.venue;
    this.key = `${o.prefix}:dry-run:${o.venue}`;
    this.#maxAttempts = o.maxAttempts ?? 100;
  }

  async load(): Promise<ShadowState> {
    return (await this.#read()).state;
  }

  async placeOrder(clientOrderId: string, decide: (s: ShadowState) => ShadowOrderWrite): Promise<Order> {
    for (let i = 0; i < this.#maxAttempts; i++) {
      const { state, version } = await this.#read();
      const seen = state.orders.get(clientOrderId);
      if (seen) return seen;
      const w = decide(state);
      if (w.order.clientOrderId !== clientOrderId)
        throw new Error(
          `${this.#venue}: dry run: the order to record is ${w.order.clientOrderId}, not ${clientOrderId}`,
        );
      const fields: string[] = [
        `order:${clientOrderId}`,
        JSON.stringify(w.order),
        'seq',
        String(state.orderSeq + 1),
        'cash',
        w.cashUsd.toFixed(),
      ];
      if (w.fill) fields.push(`fill:${state.orderSeq + 1}`, JSON.stringify(w.fill));
      if (w.book)
        fields.push(
          `book:${w.book.instrument}`,
          JSON.stringify({ size: w.book.book.size.toFixed(), entryUsd: w.book.book.entryUsd.toFixed() }),
        );
      for (const [k, v] of w.fundedUntilMs ?? []) fields.push(`funded:${k}`, fundedMs(k, v));
      const r = await this.#cas(version, clientOrderId, fields);
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
      const r = await this.#cas(version, '', fields);
      if (r.kind === 'ok') return applyFunding(state, w);
    }
    throw this.#busy('accruing funding');
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
    const args = [this.key, version, clientOrderId, ...fields];
    let res: unknown;
    try {
      res = await this.#redis.evalsha(CAS_SHA, 1, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      res = await this.#redis.eval(CAS_SCRIPT, 1, ...args);
    }
    if (!Array.isArray(res))
      throw new Error(`${this.#venue}: dry run: unexpected Redis reply ${String(res)}`);
    const [kind, order] = res as [unknown, unknown];
    if (kind === 'ok' || kind === 'conflict') return { kind };
    if (kind === 'seen' && typeof order === 'string')
      return { kind, order: this.#json(`order:${clientOrderId}`, order) as Order };
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
    const fills: [number, Fill][] = [];
    for (const [field, raw] of Object.entries(h)) {
      const colon = field.indexOf(':');
      const kind = colon < 0 ? field : field.slice(0, colon);
      const name = field.slice(colon + 1);
      if (kind === 'cash') state.cashUsd = this.#dec(field, raw);
      else if (kind === 'seq') state.orderSeq = this.#int(field, raw);
      else if (kind === 'order') state.orders.set(name, this.#json(field, raw) as Order);
      else if (kind === 'fill') fills.push([this.#int(field, name), this.#json(field, raw) as Fill]);
      else if (kind === 'funded') state.fundedUntilMs.set(name, this.#int(field, raw));
      else if (kind === 'book') {
        const b = this.#json(field, raw) as { size?: unknown; entryUsd?: unknown };
        state.books.set(name, {
          size: this.#dec(`${field}.size`, b.size),
          entryUsd: this.#dec(`${field}.entryUsd`, b.entryUsd),
        });
      }
    }
    state.fills = fills.sort((a, b) => a[0] - b[0]).map(([, f]) => f);
    return { state, version: h.v ?? '0' };
  }

  #int(field: string, raw: string): number {
    const n = Number(raw);
    if (!/^-?\d+$/.test(raw) || !Number.isSafeInteger(n))
      throw new Error(`${this.#venue}: dry run: ${this.key} field ${field} is not an integer: ${raw}`);
    return n;
  }
}

function fundedMs(instrument: string, ms: number): string {
  if (!Number.isSafeInteger(ms))
    throw new Error(`dry run: funding time of ${instrument} is not a whole ms: ${ms}`);
  return String(ms);
}
