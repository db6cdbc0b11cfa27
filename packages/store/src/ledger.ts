import {
  type Clock,
  canTransition,
  Dec,
  DecimalString,
  Fill,
  HedgeIntent,
  OPEN_ORDER_STATUSES,
  type Order,
  type OrderStatus,
  parseOrThrow,
  systemClock,
  ValidationError,
} from '@xhedge/core';
import { CompiledQuery, type Insertable, type Kysely, type Selectable, sql } from 'kysely';
import type { DatabaseHandle } from './database.ts';
import {
  FencedOutError,
  IllegalTransitionError,
  LedgerConflictError,
  LedgerNotFoundError,
} from './errors.ts';
import type {
  BreakerEventsTable,
  IntentsTable,
  KillSwitchEventsTable,
  LedgerDatabase,
  OrdersTable,
} from './schema.ts';

type OrderRow = Selectable<OrdersTable>;
type IntentRow = Selectable<IntentsTable>;
type KillSwitchEventRow = Selectable<KillSwitchEventsTable>;
type BreakerEventRow = Selectable<BreakerEventsTable>;

/** Who did something: `worker:<id>`, `orchestrator:<id>`, `operator:<name>`, `risk-owner:<name>`. */
export type Actor = string;

/** An order as the ledger keeps it: core `Order` plus routing and send bookkeeping. */
export type LedgerOrder = Order & {
  underlying: string;
  /** How many times the order was handed to the venue (1 normally; more only after a proven not-sent). */
  sendAttempts: number;
  lastSendAtMs?: number;
};

export type LedgerIntent = HedgeIntent & {
  recordedAtMs: number;
  status: OrderStatus;
  clientOrderId: string;
  leaseName?: string;
  fencingToken?: number;
};

export interface OrderEvent {
  id: number;
  clientOrderId: string;
  fromStatus: OrderStatus | null;
  toStatus: OrderStatus;
  /** `transition` (status change), `resend` (re-sent after a proven not-sent), `update` (same-status fill progress). */
  kind: 'transition' | 'resend' | 'update';
  atMs: number;
  actor: Actor;
  note?: string;
}

export interface BreakerEvent {
  id: number;
  breaker: string;
  fromState: string;
  toState: string;
  reason: string;
  atMs: number;
  details: Record<string, unknown>;
}

export interface KillSwitchEvent {
  id: number;
  /** `global`, `venue:<id>` or `underlying:<symbol>`. */
  scope: string;
  action: 'engage' | 'release' | 'cancel-working';
  actor: Actor;
  reason: string;
  allowRiskReducing: boolean;
  atMs: number;
  details: Record<string, unknown>;
}

export interface AuditEntry {
  id: number;
  atMs: number;
  actor: Actor;
  action: string;
  subject?: string;
  details: Record<string, unknown>;
}

/** A drop-copy baseline: the venue's position of one instrument at a quiet read. */
export interface PositionBaseline {
  venue: string;
  instrument: string;
  /** Exact decimal, underlying units; absent while a new baseline is requested. */
  sizeBase?: string;
  atMs: number;
  actor: Actor;
  reason: string;
}

/**
 * The durable copy of one config document operators change at run time (`venues`, `policy`): its JSON
 * text as the shared store (Redis) held it, the revision the store gave it, and who made that change.
 * The value may hold secrets (an inline RPC URL with a key): never log it.
 */
export interface ConfigDocument {
  name: string;
  valueJson: string;
  /** Whole number ≥ 0, increasing with every change of the document; the ledger keeps the highest. */
  revision: number;
  actor: Actor;
  /** `venue.disable`, `policy.update`, `seed` (from the profile), `sync` (a copy the ledger missed), ... */
  action: string;
  atMs: number;
}

export interface RiskSnapshotRecord {
  seq: number;
  asOfMs: number;
  snapshot: unknown;
}

/** Filters shared by the list queries; all optional, combined with AND. */
/** A fill with what P&L attribution needs of the intent it filled. */
export interface IntentFill extends Fill {
  underlying: string;
  referencePriceUsd: number;
}

export interface LedgerQuery {
  /** Inclusive lower bound on the row's time (created / at / ts), ms since epoch. */
  fromMs?: number;
  /** Exclusive upper bound, ms since epoch. */
  toMs?: number;
  underlying?: string;
  venue?: string;
  status?: OrderStatus | readonly OrderStatus[];
  planId?: string;
  /** Rows to return, newest first. @defaultValue 500 (at most 5000) */
  limit?: number;
}

export interface TransitionPatch {
  venueOrderId?: string;
  filledSizeBase?: string;
  avgFillPriceUsd?: string;
  error?: string;
}

export interface TransitionResult {
  /**
   * False when nothing was written: the order already was in `to` (an idempotent replay), or it was in
   * none of the states the transition's `from` allowed (`unmet`).
   */
  changed: boolean;
  /**
   * True when `from` was given and the order was in none of those states (and not already in `to`):
   * nothing written, `order` is the order as it stands.
   */
  unmet?: boolean;
  order: LedgerOrder;
}

/** One leg of a plan for `recordPlan`, with the state it enters the ledger in. */
export interface PlannedLeg {
  intent: HedgeIntent;
  clientOrderId: string;
  /** `queued` (checks passed, the job is added next) or `cancelled` (blocked by a control). */
  status: 'queued' | 'cancelled';
  /** Why it was blocked (for `cancelled`). */
  error?: string;
}

export interface RecordedLeg {
  intentId: string;
  /** False when the intent was recorded before (nothing written for it). */
  created: boolean;
  order: LedgerOrder;
}

export interface LedgerOptions {
  clock?: Clock;
}

/**
 * The first field in which an intent differs from the one recorded under its id, or undefined: what
 * is sent (venue, instrument, side, size, order type, limit, reduce-only) must be the same, so a replay
 * with other content is a conflict, never silently the old order.
 */
function intentConflict(
  prev: Pick<
    IntentRow,
    'venue' | 'instrument' | 'side' | 'size_base' | 'order_type' | 'limit_price_usd' | 'reduce_only'
  >,
  t: HedgeIntent,
): string | undefined {
  const sameDecimal = (a: string | null, b: string | undefined) =>
    a === null || b === undefined ? a === null && b === undefined : new Dec(a).eq(b);
  if (prev.venue !== t.venue) return 'venue';
  if (prev.instrument !== t.instrument) return 'instrument';
  if (prev.side !== t.side) return 'side';
  if (!new Dec(prev.size_base).eq(t.sizeBase)) return 'sizeBase';
  if (prev.order_type !== t.orderType) return 'orderType';
  if (!sameDecimal(prev.limit_price_usd, t.limitPriceUsd)) return 'limitPriceUsd';
  if (prev.reduce_only !== t.reduceOnly) return 'reduceOnly';
  return undefined;
}

/** The fields of a fill recorded before that differ from `f` (its id's venue and time aside). */
function fillConflict(prev: Selectable<LedgerDatabase['fills']>, f: Fill): string[] {
  const out: string[] = [];
  if (prev.client_order_id !== f.clientOrderId) out.push('clientOrderId');
  if (prev.instrument !== f.instrument) out.push('instrument');
  if (prev.side !== f.side) out.push('side');
  if (!new Dec(prev.size_base).eq(f.sizeBase)) out.push('sizeBase');
  if (!new Dec(prev.price_usd).eq(f.priceUsd)) out.push('priceUsd');
  if (Number(prev.fee_usd) !== f.feeUsd) out.push('feeUsd');
  if (Number(prev.gas_usd) !== f.gasUsd) out.push('gasUsd');
  return out;
}

const MAX_LIMIT = 5000;

/**
 * The audit ledger: the system of record for intents, orders (with every state change), fills,
 * breaker and kill-switch events, audit entries and risk snapshots. Every write that matters is
 * idempotent (keyed by deterministic ids) so a retried job or a restarted process can replay it.
 * The order state machine (core `ORDER_TRANSITIONS`) is enforced here, under a row lock.
 */
export class Ledger {
  readonly db: Kysely<LedgerDatabase>;
  readonly #handle: DatabaseHandle;
  readonly #clock: Clock;

  constructor(handle: DatabaseHandle, opts: LedgerOptions = {}) {
    this.#handle = handle;
    this.db = handle.db;
    this.#clock = opts.clock ?? systemClock;
  }

  get kind(): DatabaseHandle['kind'] {
    return this.#handle.kind;
  }

  /**
   * Records an intent and its order (status `planned`) before anything is queued. Idempotent: the
   * same intent again returns `created: false`; the same id with different content is a
   * `LedgerConflictError`. With `fence`, the write is refused (`FencedOutError`) when a newer lease
   * token was already seen for `fence.leaseName`, in the same transaction as the insert.
   */
  async recordIntent(
    intentIn: HedgeIntent,
    opts: { clientOrderId: string; actor: Actor; fence?: { leaseName: string; token: number } },
  ): Promise<{ created: boolean; order: LedgerOrder }> {
    const intent = parseOrThrow(HedgeIntent, intentIn, 'intent');
    const now = this.#clock.nowMs();
    return this.db.transaction().execute(async (tx) => {
      if (opts.fence) await this.#checkFence(tx, opts.fence.leaseName, opts.fence.token, now);
      const inserted = await tx
        .insertInto('intents')
        .values({
          id: intent.id,
          plan_id: intent.planId,
          underlying: intent.underlying,
          venue: intent.venue,
          chain: intent.chain,
          instrument: intent.instrument,
          side: intent.side,
          size_base: intent.sizeBase,
          order_type: intent.orderType,
          limit_price_usd: intent.limitPriceUsd ?? null,
          reference_price_usd: intent.referencePriceUsd,
          reduce_only: intent.reduceOnly,
          urgency: intent.urgency,
          reason: intent.reason,
          depends_on: JSON.stringify(intent.dependsOn),
          created_at_ms: intent.createdAtMs,
          recorded_at_ms: now,
          lease_name: opts.fence?.leaseName ?? null,
          fencing_token: opts.fence?.token ?? null,
        })
        .onConflict((oc) => oc.column('id').doNothing())
        .returning('id')
        .executeTakeFirst();
      if (!inserted) {
        const prev = await tx
          .selectFrom('intents')
          .selectAll()
          .where('id', '=', intent.id)
          .executeTakeFirstOrThrow();
        const field = intentConflict(prev, intent);
        if (field) throw new LedgerConflictError('intent', intent.id, field);
        const order = await tx
          .selectFrom('orders')
          .selectAll()
          .where('intent_id', '=', intent.id)
          .executeTakeFirstOrThrow();
        return { created: false, order: toOrder(order) };
      }
      const row: Insertable<OrdersTable> = {
        client_order_id: opts.clientOrderId,
        intent_id: intent.id,
        underlying: intent.underlying,
        venue: intent.venue,
        instrument: intent.instrument,
        side: intent.side,
        order_type: intent.orderType,
        size_base: intent.sizeBase,
        limit_price_usd: intent.limitPriceUsd ?? null,
        reduce_only: intent.reduceOnly,
        status: 'planned',
        venue_order_id: null,
        filled_size_base: '0',
        avg_fill_price_usd: null,
        error: null,
        send_attempts: 0,
        last_send_at_ms: null,
        created_at_ms: now,
        updated_at_ms: now,
      };
      const created = await tx.insertInto('orders').values(row).returningAll().executeTakeFirstOrThrow();
      await tx
        .insertInto('order_events')
        .values({
          client_order_id: opts.clientOrderId,
          from_status: null,
          to_status: 'planned',
          kind: 'transition',
          at_ms: now,
          actor: opts.actor,
          note: intent.reason.slice(0, 500),
        })
        .execute();
      return { created: true, order: toOrder(created) };
    });
  }

  /**
   * Records every leg of a plan in ONE statement (one round trip, atomic): the fence check, the
   * intents, their orders already in their first state (`queued` once the pre-queue checks passed, or
   * `cancelled` with the control's reason), and the events `planned` → that state. Idempotent per
   * intent id: legs recorded before come back with `created: false` and their current order (a
   * different content under the same id is a `LedgerConflictError`). With `fence`, nothing is
   * written and `FencedOutError` is thrown when a newer lease token was already seen.
   *
   * `durable: false` commits without waiting for the WAL flush (`synchronous_commit = off` for this
   * statement only): the rows are visible to every reader at once, and only a crash of the database
   * server within its WAL writer's delay (about 0.6 s) can lose them. A worker may send the order in
   * that time; what it records of the send (`recordSend`, durable) fails then, and its next run puts
   * the intent back from the job's copy before reconciling with the venue (the send claim in Redis
   * keeps it from sending twice). @defaultValue durable true
   */
  async recordPlan(
    legs: readonly PlannedLeg[],
    opts: { actor: Actor; fence?: { leaseName: string; token: number }; durable?: boolean },
  ): Promise<RecordedLeg[]> {
    if (legs.length === 0) return [];
    const intents = legs.map((l, i) => parseOrThrow(HedgeIntent, l.intent, `plan leg ${i}`));
    const now = this.#clock.nowMs();
    const f = opts.fence;
    // $1 now, $2 actor, $3 lease name, $4 token, then 19 per leg
    const params: unknown[] = [now, opts.actor, f?.leaseName ?? null, f?.token ?? null];
    const rowsSql = legs.map((l, i) => {
      const t = intents[i] as HedgeIntent;
      const at = params.length;
      params.push(
        t.id,
        t.planId,
        t.underlying,
        t.venue,
        t.chain,
        t.instrument,
        t.side,
        t.sizeBase,
        t.orderType,
        t.limitPriceUsd ?? null,
        t.referencePriceUsd,
        t.reduceOnly,
        t.urgency,
        t.reason,
        JSON.stringify(t.dependsOn),
        t.createdAtMs,
        l.clientOrderId,
        l.status,
        l.error ?? null,
      );
      const p = (k: number, type: string) => `$${at + k}::${type}`;
      return `(${p(1, 'text')}, ${p(2, 'text')}, ${p(3, 'text')}, ${p(4, 'text')}, ${p(5, 'text')}, ${p(6, 'text')},
        ${p(7, 'text')}, ${p(8, 'text')}, ${p(9, 'text')}, ${p(10, 'text')}, ${p(11, 'float8')}, ${p(12, 'boolean')},
        ${p(13, 'text')}, ${p(14, 'text')}, ${p(15, 'jsonb')}, ${p(16, 'bigint')}, ${p(17, 'text')}, ${p(18, 'text')},
        ${p(19, 'text')}, ${i})`;
    });
    const fence = f
      ? `insert into fencing (lease_name, token, updated_at_ms) values ($3::text, $4::bigint, $1::bigint)
          on conflict (lease_name) do update set token = excluded.token, updated_at_ms = excluded.updated_at_ms
          where fencing.token <= excluded.token returning token`
      : 'select 1 as token';
    const commit = opts.durable === false ? `(select set_config('synchronous_commit', 'off', true))` : `'on'`;
    const text = `
      with fence as (${fence}),
      v (id, plan_id, underlying, venue, chain, instrument, side, size_base, order_type, limit_price_usd,
         reference_price_usd, reduce_only, urgency, reason, depends_on, created_at_ms, client_order_id,
         status, error, ord) as (values ${rowsSql.join(', ')}),
      ins as (
        insert into intents (id, plan_id, underlying, venue, chain, instrument, side, size_base, order_type,
          limit_price_usd, reference_price_usd, reduce_only, urgency, reason, depends_on, created_at_ms,
          recorded_at_ms, lease_name, fencing_token)
        select id, plan_id, underlying, venue, chain, instrument, side, size_base, order_type, limit_price_usd,
          reference_price_usd, reduce_only, urgency, reason, depends_on, created_at_ms, $1::bigint,
          $3::text, $4::bigint
        from v where exists (select 1 from fence)
        on conflict (id) do nothing returning id),
      o as (
        insert into orders (client_order_id, intent_id, underlying, venue, instrument, side, order_type,
          size_base, limit_price_usd, reduce_only, status, filled_size_base, error, send_attempts,
          created_at_ms, updated_at_ms)
        select v.client_order_id, v.id, v.underlying, v.venue, v.instrument, v.side, v.order_type, v.size_base,
          v.limit_price_usd, v.reduce_only, v.status, '0', v.error, 0, $1::bigint, $1::bigint
        from v join ins on ins.id = v.id
        returning client_order_id, intent_id),
      ev as (
        insert into order_events (client_order_id, from_status, to_status, kind, at_ms, actor, note)
        select v.client_order_id, s.from_status, s.to_status, 'transition', $1::bigint, $2::text, s.note
        from v join ins on ins.id = v.id
        cross join lateral (values (1, null::text, 'planned'::text, left(v.reason, 500)),
                                   (2, 'planned'::text, v.status, v.error)) s (n, from_status, to_status, note)
        order by v.ord, s.n)
      select (select count(*) from fence)::int as fence_ok, ${commit} as sc, o.client_order_id, o.intent_id
      from (select 1) one left join o on true`;
    const name = `xh_record_plan_${legs.length}_${f ? 'f' : 'n'}_${opts.durable === false ? 'a' : 'd'}`;
    const res = await this.#query<{
      fence_ok: number;
      sc: string;
      client_order_id: string | null;
      intent_id: string | null;
    }>(name, text, params);
    const rows = res.rows;
    if (f && Number(rows[0]?.fence_ok ?? 0) === 0) {
      throw new FencedOutError(f.leaseName, f.token, await this.fencingToken(f.leaseName));
    }
    // the rows written are what was given: built here, not read back
    const created = new Set<string>();
    for (const r of rows) if (r.client_order_id && r.intent_id) created.add(r.intent_id);
    const out: RecordedLeg[] = [];
    for (const [i, t] of intents.entries()) {
      const leg = legs[i] as PlannedLeg;
      if (created.has(t.id)) {
        const order: LedgerOrder = {
          clientOrderId: leg.clientOrderId,
          intentId: t.id,
          venue: t.venue,
          instrument: t.instrument,
          side: t.side,
          orderType: t.orderType,
          sizeBase: t.sizeBase,
          reduceOnly: t.reduceOnly,
          status: leg.status,
          filledSizeBase: '0',
          createdAtMs: now,
          updatedAtMs: now,
          underlying: t.underlying,
          sendAttempts: 0,
          ...(t.limitPriceUsd !== undefined ? { limitPriceUsd: t.limitPriceUsd } : {}),
          ...(leg.error !== undefined ? { error: leg.error } : {}),
        };
        out.push({ intentId: t.id, created: true, order });
        continue;
      }
      // recorded before: same content or a conflict, never silently different
      const prev = await this.db
        .selectFrom('intents')
        .innerJoin('orders', 'orders.intent_id', 'intents.id')
        .selectAll('orders')
        .select([
          'intents.size_base as intent_size_base',
          'intents.order_type as intent_order_type',
          'intents.limit_price_usd as intent_limit_price_usd',
          'intents.reduce_only as intent_reduce_only',
        ])
        .where('intents.id', '=', t.id)
        .executeTakeFirstOrThrow();
      const field = intentConflict(
        {
          venue: prev.venue,
          instrument: prev.instrument,
          side: prev.side,
          size_base: prev.intent_size_base,
          order_type: prev.intent_order_type,
          limit_price_usd: prev.intent_limit_price_usd,
          reduce_only: prev.intent_reduce_only,
        },
        t,
      );
      if (field) throw new LedgerConflictError('intent', t.id, field);
      out.push({ intentId: t.id, created: false, order: toOrder(prev) });
    }
    return out;
  }

  /**
   * Records that an order went to the venue: `queued → sent` (counting the attempt, `lastSendAtMs` =
   * `atMs`) with its event, in one statement, `UPDATE … WHERE status = 'queued' RETURNING`: of any
   * number of racing callers exactly one gets the order back, the others `undefined` (it was recorded
   * already, or is no longer `queued`). A durable commit. The guard against a double send is the
   * send claim in Redis, taken before the send (execution's `SendClaim`); this is the ledger's record
   * of it, written while the venue call is in flight.
   */
  async recordSend(
    clientOrderId: string,
    opts: { actor: Actor; atMs: number; note?: string },
  ): Promise<LedgerOrder | undefined> {
    const now = this.#clock.nowMs();
    const res = await this.#query<OrderRow>(
      'xh_record_send',
      `with u as (
        update orders set status = 'sent', send_attempts = send_attempts + 1, last_send_at_ms = $1::bigint,
          updated_at_ms = $4::bigint
        where client_order_id = $2::text and status = 'queued'
        returning *),
      ev as (
        insert into order_events (client_order_id, from_status, to_status, kind, at_ms, actor, note)
        select client_order_id, 'queued', 'sent', 'transition', $1::bigint, $3::text, $5::text from u)
      select * from u`,
      [Math.floor(opts.atMs), clientOrderId, opts.actor, now, opts.note ?? null],
    );
    const row = res.rows[0];
    return row ? toOrder(row) : undefined;
  }

  /**
   * The client order ids of every order still `queued`, and of every order recorded since
   * `createdSinceMs` whatever its state (no limit: for the send claims' restore after a Redis loss).
   */
  async clientOrderIdsToClaim(o: { createdSinceMs: number }): Promise<string[]> {
    const rows = await this.db
      .selectFrom('orders')
      .select('client_order_id')
      .where((eb) => eb.or([eb('status', '=', 'queued'), eb('created_at_ms', '>=', o.createdSinceMs)]))
      .orderBy('client_order_id')
      .execute();
    return rows.map((r) => r.client_order_id);
  }

  /**
   * A hot statement: on Postgres a named prepared statement (parsed and planned once per connection,
   * which more than halves its cost), elsewhere a plain query.
   */
  async #query<R>(name: string, text: string, params: readonly unknown[]): Promise<{ rows: R[] }> {
    if (this.#handle.prepared) return this.#handle.prepared<R>(name, text, params);
    const res = await this.db.executeQuery<R>(CompiledQuery.raw(text, [...params]));
    return { rows: [...res.rows] };
  }

  async #checkFence(
    tx: Kysely<LedgerDatabase>,
    leaseName: string,
    token: number,
    now: number,
  ): Promise<void> {
    const row = await tx
      .insertInto('fencing')
      .values({ lease_name: leaseName, token, updated_at_ms: now })
      .onConflict((oc) =>
        oc
          .column('lease_name')
          .doUpdateSet({ token, updated_at_ms: now })
          .where('fencing.token', '<=', token),
      )
      .returning('token')
      .executeTakeFirst();
    if (!row) {
      const cur = await tx
        .selectFrom('fencing')
        .select('token')
        .where('lease_name', '=', leaseName)
        .executeTakeFirstOrThrow();
      throw new FencedOutError(leaseName, token, Number(cur.token));
    }
  }

  /**
   * Records `token` as the highest accepted lease token of `leaseName`: what a new leader writes when it
   * takes the lease, before it plans. From then on a write fenced with an older token (`recordPlan`,
   * `recordIntent`) is refused, although the new leader has written nothing yet; without it an old
   * leader paused mid-tick could still commit a plan after a standby took over and planned nothing. The
   * same conditional upsert those writes make (`where fencing.token <= excluded.token`): the token
   * already recorded again changes nothing; an older one is refused (`FencedOutError`: a newer leader
   * has been seen, so the caller is not the leader). A token that is not a whole number ≥ 1, or an empty
   * lease name, is a `ValidationError`.
   */
  async advanceFencing(leaseName: string, token: number): Promise<void> {
    const issues: { path: string; message: string }[] = [];
    if (typeof leaseName !== 'string' || leaseName === '')
      issues.push({ path: 'leaseName', message: `must be a non-empty string, got ${String(leaseName)}` });
    if (!Number.isSafeInteger(token) || token < 1)
      issues.push({ path: 'token', message: `must be a whole number ≥ 1, got ${String(token)}` });
    if (issues.length > 0) throw new ValidationError('fencing token', issues);
    await this.#checkFence(this.db, leaseName, token, this.#clock.nowMs());
  }

  /** Highest lease token the ledger has accepted for `leaseName` (0 when none). */
  async fencingToken(leaseName: string): Promise<number> {
    const row = await this.db
      .selectFrom('fencing')
      .select('token')
      .where('lease_name', '=', leaseName)
      .executeTakeFirst();
    return row ? Number(row.token) : 0;
  }

  /**
   * Moves an order to `to` if the state machine allows it (row-locked, so concurrent workers
   * serialize). `to === from` is an idempotent replay (no write, `changed: false`), except
   * `partially-filled`, which records fill progress (a `filledSizeBase` lower than the one recorded is a
   * stale report: no write, `changed: false`). Moving to `sent` counts a send attempt. The patch's
   * sizes and prices must be exact decimals (`ValidationError`).
   *
   * `from`: a precondition on the current state, decided in the same transaction as the write (a
   * caller's earlier read may be stale by then: a cancel "of an order not sent" must not land on one a
   * worker has sent meanwhile). When the order is in none of those states, nothing is written, no
   * state machine error is thrown, and the result says `unmet` (an order already in `to` is a replay
   * as above). Without it, any state the state machine allows.
   */
  async transition(
    clientOrderId: string,
    to: OrderStatus,
    opts: { actor: Actor; note?: string; patch?: TransitionPatch; from?: readonly OrderStatus[] },
  ): Promise<TransitionResult> {
    const now = this.#clock.nowMs();
    const allowed = opts.from;
    for (const k of ['filledSizeBase', 'avgFillPriceUsd'] as const) {
      const v = opts.patch?.[k];
      if (v !== undefined) parseOrThrow(DecimalString, v, `order ${clientOrderId} ${k}`);
    }
    return this.db.transaction().execute(async (tx) => {
      const cur = await tx
        .selectFrom('orders')
        .selectAll()
        .where('client_order_id', '=', clientOrderId)
        .forUpdate()
        .executeTakeFirst();
      if (!cur) throw new LedgerNotFoundError('order', clientOrderId);
      const from = cur.status as OrderStatus;
      if (from === to && to !== 'partially-filled') return { changed: false, order: toOrder(cur) };
      if (allowed && !allowed.includes(from)) return { changed: false, unmet: true, order: toOrder(cur) };
      if (!canTransition(from, to)) throw new IllegalTransitionError(clientOrderId, from, to);
      const p = opts.patch ?? {};
      // fill progress only grows: a lower one is a stale report (a racing run's older venue read)
      if (from === to && p.filledSizeBase !== undefined && new Dec(p.filledSizeBase).lt(cur.filled_size_base))
        return { changed: false, order: toOrder(cur) };
      const updated = await tx
        .updateTable('orders')
        .set({
          status: to,
          venue_order_id: p.venueOrderId ?? cur.venue_order_id,
          filled_size_base: p.filledSizeBase ?? cur.filled_size_base,
          avg_fill_price_usd: p.avgFillPriceUsd ?? cur.avg_fill_price_usd,
          error: p.error ?? cur.error,
          send_attempts: to === 'sent' ? cur.send_attempts + 1 : cur.send_attempts,
          ...(to === 'sent' ? { last_send_at_ms: now } : {}),
          updated_at_ms: now,
        })
        .where('client_order_id', '=', clientOrderId)
        // the precondition in the statement as well (the row lock above already holds it there)
        .$if(allowed !== undefined, (qb) => qb.where('status', 'in', [...(allowed ?? [])]))
        .returningAll()
        .executeTakeFirst();
      if (!updated) {
        // only the precondition can leave the locked row out
        if (!allowed) throw new LedgerNotFoundError('order', clientOrderId);
        return { changed: false, unmet: true, order: toOrder(cur) };
      }
      await tx
        .insertInto('order_events')
        .values({
          client_order_id: clientOrderId,
          from_status: from,
          to_status: to,
          kind: from === to ? 'update' : 'transition',
          at_ms: now,
          actor: opts.actor,
          note: opts.note ?? p.error ?? null,
        })
        .execute();
      return { changed: true, order: toOrder(updated) };
    });
  }

  /**
   * Claims the right to send an order in `sent` again, after the venue proved it never received it
   * (not found past the send deadline, or a `not-sent` error). Compare-and-set on the attempt count:
   * of several workers racing, exactly one gets `true`.
   */
  async claimResend(clientOrderId: string, expectedAttempts: number, opts: { actor: Actor; note: string }) {
    const now = this.#clock.nowMs();
    return this.db.transaction().execute(async (tx) => {
      const res = await tx
        .updateTable('orders')
        .set({ send_attempts: expectedAttempts + 1, last_send_at_ms: now, updated_at_ms: now })
        .where('client_order_id', '=', clientOrderId)
        .where('status', '=', 'sent')
        .where('send_attempts', '=', expectedAttempts)
        .executeTakeFirst();
      if (Number(res.numUpdatedRows) !== 1) return false;
      await tx
        .insertInto('order_events')
        .values({
          client_order_id: clientOrderId,
          from_status: 'sent',
          to_status: 'sent',
          kind: 'resend',
          at_ms: now,
          actor: opts.actor,
          note: opts.note,
        })
        .execute();
      return true;
    });
  }

  /** One order by client order id (a hot read: every order job starts with it). */
  async getOrder(clientOrderId: string): Promise<LedgerOrder | undefined> {
    const res = await this.#query<OrderRow>(
      'xh_get_order',
      'select * from orders where client_order_id = $1::text',
      [clientOrderId],
    );
    const row = res.rows[0];
    return row ? toOrder(row) : undefined;
  }

  async getOrderByIntent(intentId: string): Promise<LedgerOrder | undefined> {
    const row = await this.db
      .selectFrom('orders')
      .selectAll()
      .where('intent_id', '=', intentId)
      .executeTakeFirst();
    return row ? toOrder(row) : undefined;
  }

  async getIntent(id: string): Promise<LedgerIntent | undefined> {
    const rows = await this.#intentQuery().where('intents.id', '=', id).execute();
    const row = rows[0];
    return row ? toIntent(row) : undefined;
  }

  #intentQuery() {
    return this.db
      .selectFrom('intents')
      .innerJoin('orders', 'orders.intent_id', 'intents.id')
      .selectAll('intents')
      .select(['orders.status as status', 'orders.client_order_id as client_order_id']);
  }

  /** Intents with their order's current status, newest first. Time filters apply to `createdAtMs`. */
  async listIntents(q: LedgerQuery = {}): Promise<LedgerIntent[]> {
    const rows = await this.#intentsQuery(q).limit(limitOf(q)).execute();
    return rows.map(toIntent);
  }

  /**
   * Every intent `q` selects, newest first, however many: read in pages of 5000, each after the last
   * row of the one before (created time, then id), so no row is skipped or read twice however many
   * share a millisecond (a time cursor alone skips the rest of a ms a whole page ended in). For the
   * readers that must count all of them (the planner's hedge windows after a restart). `opts.pageSize`:
   * rows per read (@defaultValue 5000).
   */
  async listAllIntents(
    q: Omit<LedgerQuery, 'limit'> = {},
    opts: { pageSize?: number } = {},
  ): Promise<LedgerIntent[]> {
    const pageSize = limitOf({ limit: opts.pageSize ?? MAX_LIMIT });
    const out: LedgerIntent[] = [];
    for (;;) {
      const last = out.at(-1);
      let qb = this.#intentsQuery(q);
      if (last)
        qb = qb.where((eb) =>
          eb.or([
            eb('intents.created_at_ms', '<', last.createdAtMs),
            eb.and([eb('intents.created_at_ms', '=', last.createdAtMs), eb('intents.id', '>', last.id)]),
          ]),
        );
      const page = (await qb.limit(pageSize).execute()).map(toIntent);
      out.push(...page);
      if (page.length < pageSize) return out;
    }
  }

  /** The intents `q` selects (limit aside), newest first, then by id. */
  #intentsQuery(q: Omit<LedgerQuery, 'limit'>) {
    let qb = this.#intentQuery();
    if (q.fromMs !== undefined) qb = qb.where('intents.created_at_ms', '>=', q.fromMs);
    if (q.toMs !== undefined) qb = qb.where('intents.created_at_ms', '<', q.toMs);
    if (q.underlying) qb = qb.where('intents.underlying', '=', q.underlying);
    if (q.venue) qb = qb.where('intents.venue', '=', q.venue);
    if (q.planId) qb = qb.where('intents.plan_id', '=', q.planId);
    const st = statuses(q.status);
    if (st) qb = st.length > 0 ? qb.where('orders.status', 'in', st) : qb.where(sql<boolean>`false`);
    return qb.orderBy('intents.created_at_ms', 'desc').orderBy('intents.id');
  }

  /** Orders, newest first. Time filters apply to the order's creation time. */
  async listOrders(q: LedgerQuery = {}): Promise<LedgerOrder[]> {
    const rows = await this.#ordersQuery(q).selectAll('orders').execute();
    return rows.map(toOrder);
  }

  /**
   * Every order `q` selects, newest first, however many: read in pages of 5000, each after the last
   * row of the one before (created time, then client order id), so no row is skipped or read twice
   * while orders are added. For the passes that must see all of them (the kill switch's cancels, the
   * reconciler), where a capped list would leave the rest working. `opts.pageSize`: rows per read
   * (@defaultValue 5000).
   */
  async listAllOrders(
    q: Omit<LedgerQuery, 'limit'> = {},
    opts: { pageSize?: number } = {},
  ): Promise<LedgerOrder[]> {
    const pageSize = limitOf({ limit: opts.pageSize ?? MAX_LIMIT });
    const out: LedgerOrder[] = [];
    for (;;) {
      const last = out.at(-1);
      let qb = this.#ordersQuery({ ...q, limit: pageSize });
      if (last)
        qb = qb.where((eb) =>
          eb.or([
            eb('orders.created_at_ms', '<', last.createdAtMs),
            eb.and([
              eb('orders.created_at_ms', '=', last.createdAtMs),
              eb('orders.client_order_id', '>', last.clientOrderId),
            ]),
          ]),
        );
      const page = (await qb.selectAll('orders').execute()).map(toOrder);
      out.push(...page);
      if (page.length < pageSize) return out;
    }
  }

  /**
   * The underlyings with at least one order in `status` (one of them), in one statement; `q` narrows it
   * to a venue, to orders created from `createdFromMs`, and to orders changed from `updatedFromMs`.
   * Without `status`, every status. All of them, never a page: a left-out underlying is a wrong answer.
   */
  async underlyingsWithOrders(
    status?: OrderStatus | readonly OrderStatus[],
    q: { venue?: string; createdFromMs?: number; updatedFromMs?: number } = {},
  ): Promise<Set<string>> {
    const st = statuses(status);
    if (st?.length === 0) return new Set();
    let qb = this.db.selectFrom('orders').select('underlying').distinct();
    if (st) qb = qb.where('status', 'in', st);
    if (q.venue !== undefined) qb = qb.where('venue', '=', q.venue);
    if (q.createdFromMs !== undefined) qb = qb.where('created_at_ms', '>=', q.createdFromMs);
    if (q.updatedFromMs !== undefined) qb = qb.where('updated_at_ms', '>=', q.updatedFromMs);
    const rows = await qb.execute();
    return new Set(rows.map((r) => r.underlying));
  }

  /**
   * `listOrders` with each order's plan id, in one statement (the API's list of hedge jobs: a page of
   * 5000 is one query, not one per order).
   */
  async listOrdersWithPlan(q: LedgerQuery = {}): Promise<Array<LedgerOrder & { planId: string }>> {
    const rows = await this.#ordersQuery(q)
      .innerJoin('intents', 'intents.id', 'orders.intent_id')
      .selectAll('orders')
      .select('intents.plan_id as plan_id')
      .execute();
    return rows.map((r) => ({ ...toOrder(r), planId: r.plan_id }));
  }

  /** The orders `q` selects, newest first, at most `q.limit` (an empty status list selects none). */
  #ordersQuery(q: LedgerQuery) {
    let qb = this.db.selectFrom('orders');
    if (q.fromMs !== undefined) qb = qb.where('orders.created_at_ms', '>=', q.fromMs);
    if (q.toMs !== undefined) qb = qb.where('orders.created_at_ms', '<', q.toMs);
    if (q.underlying) qb = qb.where('orders.underlying', '=', q.underlying);
    if (q.venue) qb = qb.where('orders.venue', '=', q.venue);
    if (q.planId)
      qb = qb.where(
        'orders.intent_id',
        'in',
        this.db.selectFrom('intents').select('intents.id').where('intents.plan_id', '=', q.planId),
      );
    const st = statuses(q.status);
    if (st) qb = st.length > 0 ? qb.where('orders.status', 'in', st) : qb.where(sql<boolean>`false`);
    return qb.orderBy('orders.created_at_ms', 'desc').orderBy('orders.client_order_id').limit(limitOf(q));
  }

  /** Every state change of one order, oldest first. */
  async orderEvents(clientOrderId: string): Promise<OrderEvent[]> {
    const rows = await this.db
      .selectFrom('order_events')
      .selectAll()
      .where('client_order_id', '=', clientOrderId)
      .orderBy('id')
      .execute();
    return rows.map((r) => ({
      id: Number(r.id),
      clientOrderId: r.client_order_id,
      fromStatus: (r.from_status as OrderStatus | null) ?? null,
      toStatus: r.to_status as OrderStatus,
      kind: r.kind as OrderEvent['kind'],
      atMs: Number(r.at_ms),
      actor: r.actor,
      ...(r.note === null ? {} : { note: r.note }),
    }));
  }

  /**
   * Records a fill once (keyed by venue and fill id). The same fill again is a no-op (sizes and prices
   * compared as decimals: `1.5` is `1.50`); the same id with another order, instrument, side, size,
   * price, fee or gas is a `LedgerConflictError` naming every field that differs, with both values (a
   * venue's bug, or a fill id reused, e.g. by a venue whose ids restart with its process): the row
   * recorded first stays, and the new one is not taken. The time is not compared.
   * @returns false when it was recorded before.
   */
  async recordFill(fillIn: Fill): Promise<boolean> {
    // the system of record takes no NaN/Infinity fee nor a size or price that is not an exact decimal
    const fill = parseOrThrow(Fill, fillIn, 'fill');
    const res = await this.db
      .insertInto('fills')
      .values({
        venue: fill.venue,
        fill_id: fill.fillId,
        client_order_id: fill.clientOrderId,
        instrument: fill.instrument,
        side: fill.side,
        size_base: fill.sizeBase,
        price_usd: fill.priceUsd,
        fee_usd: fill.feeUsd,
        gas_usd: fill.gasUsd,
        ts_ms: fill.tsMs,
      })
      .onConflict((oc) => oc.columns(['venue', 'fill_id']).doNothing())
      .executeTakeFirst();
    if (Number(res.numInsertedOrUpdatedRows ?? 0n) === 1) return true;
    // recorded before (fills are never updated): the same content, or a conflict
    const prev = await this.db
      .selectFrom('fills')
      .selectAll()
      .where('venue', '=', fill.venue)
      .where('fill_id', '=', fill.fillId)
      .executeTakeFirstOrThrow();
    const fields = fillConflict(prev, fill);
    if (fields.length > 0) {
      const recorded: Record<string, unknown> = toFill(prev);
      const reported: Record<string, unknown> = fill;
      throw new LedgerConflictError('fill', fill.fillId, fields, {
        details: { venue: fill.venue },
        recorded: Object.fromEntries(fields.map((f) => [f, recorded[f]])),
        reported: Object.fromEntries(fields.map((f) => [f, reported[f]])),
      });
    }
    return false;
  }

  /** Fills, newest first; `underlying` matches the instrument's base. Time filters apply to `tsMs`. */
  async listFills(q: LedgerQuery & { clientOrderId?: string } = {}): Promise<Fill[]> {
    let qb = this.db.selectFrom('fills').selectAll();
    if (q.fromMs !== undefined) qb = qb.where('ts_ms', '>=', q.fromMs);
    if (q.toMs !== undefined) qb = qb.where('ts_ms', '<', q.toMs);
    if (q.venue) qb = qb.where('venue', '=', q.venue);
    if (q.underlying) qb = qb.where('instrument', 'like', `${q.underlying}-%`);
    if (q.clientOrderId) qb = qb.where('client_order_id', '=', q.clientOrderId);
    const rows = await qb.orderBy('ts_ms', 'desc').orderBy('fill_id').limit(limitOf(q)).execute();
    return rows.map(toFill);
  }

  /**
   * Every fill in [`fromMs`, `toMs`) with the underlying and reference price of the intent it filled,
   * oldest first, in one statement and without a cap: what a P&L attribution over the range needs.
   */
  async fillsWithIntent(q: { fromMs: number; toMs: number }): Promise<IntentFill[]> {
    const rows = await this.db
      .selectFrom('fills')
      .innerJoin('orders', 'orders.client_order_id', 'fills.client_order_id')
      .innerJoin('intents', 'intents.id', 'orders.intent_id')
      .selectAll('fills')
      .select([
        'intents.underlying as intent_underlying',
        'intents.reference_price_usd as intent_reference_usd',
      ])
      .where('fills.ts_ms', '>=', q.fromMs)
      .where('fills.ts_ms', '<', q.toMs)
      .orderBy('fills.ts_ms')
      .orderBy('fills.fill_id')
      .execute();
    return rows.map((r) => ({
      ...toFill(r),
      underlying: r.intent_underlying,
      referencePriceUsd: Number(r.intent_reference_usd),
    }));
  }

  async recordBreakerEvent(e: Omit<BreakerEvent, 'id' | 'atMs'> & { atMs?: number }): Promise<void> {
    await this.db
      .insertInto('breaker_events')
      .values({
        breaker: e.breaker,
        from_state: e.fromState,
        to_state: e.toState,
        reason: e.reason,
        at_ms: e.atMs ?? this.#clock.nowMs(),
        details: JSON.stringify(e.details),
      })
      .execute();
  }

  /** Breaker transitions, newest first; `venue`/`underlying` match breakers named `venue:<id>` etc. */
  async listBreakerEvents(q: LedgerQuery & { breaker?: string } = {}): Promise<BreakerEvent[]> {
    let qb = this.db.selectFrom('breaker_events').selectAll();
    if (q.fromMs !== undefined) qb = qb.where('at_ms', '>=', q.fromMs);
    if (q.toMs !== undefined) qb = qb.where('at_ms', '<', q.toMs);
    if (q.breaker) qb = qb.where('breaker', '=', q.breaker);
    // exact names, no LIKE: `venue:gmx` is not `venue:gmx-arb`, and `_` in an id is no wildcard
    if (q.venue) qb = qb.where('breaker', '=', `venue:${q.venue}`);
    if (q.underlying) {
      const suffix = `:${q.underlying}`;
      qb = qb.where(sql<boolean>`right(breaker, ${suffix.length}) = ${suffix}`);
    }
    const rows = await qb.orderBy('id', 'desc').limit(limitOf(q)).execute();
    return rows.map(toBreakerEvent);
  }

  /**
   * The latest event of every breaker that ever changed state, ordered by name: the state the ledger
   * last saw it in (breakers restore an `open` one that Redis lost).
   */
  async breakerStates(): Promise<BreakerEvent[]> {
    const rows = await this.db
      .selectFrom('breaker_events')
      .selectAll()
      .distinctOn('breaker')
      .orderBy('breaker')
      .orderBy('id', 'desc')
      .execute();
    return rows.map(toBreakerEvent);
  }

  async recordKillSwitchEvent(e: Omit<KillSwitchEvent, 'id' | 'atMs'> & { atMs?: number }): Promise<void> {
    await this.db
      .insertInto('kill_switch_events')
      .values({
        scope: e.scope,
        action: e.action,
        actor: e.actor,
        reason: e.reason,
        allow_risk_reducing: e.allowRiskReducing,
        at_ms: e.atMs ?? this.#clock.nowMs(),
        details: JSON.stringify(e.details),
      })
      .execute();
  }

  async listKillSwitchEvents(q: LedgerQuery & { scope?: string } = {}): Promise<KillSwitchEvent[]> {
    let qb = this.db.selectFrom('kill_switch_events').selectAll();
    if (q.fromMs !== undefined) qb = qb.where('at_ms', '>=', q.fromMs);
    if (q.toMs !== undefined) qb = qb.where('at_ms', '<', q.toMs);
    if (q.scope) qb = qb.where('scope', '=', q.scope);
    if (q.venue) qb = qb.where('scope', '=', `venue:${q.venue}`);
    if (q.underlying) qb = qb.where('scope', '=', `underlying:${q.underlying}`);
    const rows = await qb.orderBy('id', 'desc').limit(limitOf(q)).execute();
    return rows.map(toKillSwitchEvent);
  }

  /**
   * The kill-switch state as the ledger knows it: per scope, its latest `engage` or `release` event
   * (`cancel-working` rows are ignored), ordered by scope. A scope whose latest event is `engage` is
   * engaged; the kill switch restores such scopes when Redis has lost them.
   */
  async killSwitchStates(): Promise<KillSwitchEvent[]> {
    const rows = await this.db
      .selectFrom('kill_switch_events')
      .selectAll()
      .distinctOn('scope')
      .where('action', 'in', ['engage', 'release'])
      .orderBy('scope')
      .orderBy('id', 'desc')
      .execute();
    return rows.map(toKillSwitchEvent);
  }

  /** Appends an audit entry: who did what to which subject. Details must hold no secrets. */
  async audit(e: { actor: Actor; action: string; subject?: string; details?: Record<string, unknown> }) {
    await this.db
      .insertInto('audit')
      .values({
        at_ms: this.#clock.nowMs(),
        actor: e.actor,
        action: e.action,
        subject: e.subject ?? null,
        details: JSON.stringify(e.details ?? {}),
      })
      .execute();
  }

  async listAudit(q: LedgerQuery & { actor?: string; action?: string } = {}): Promise<AuditEntry[]> {
    let qb = this.db.selectFrom('audit').selectAll();
    if (q.fromMs !== undefined) qb = qb.where('at_ms', '>=', q.fromMs);
    if (q.toMs !== undefined) qb = qb.where('at_ms', '<', q.toMs);
    if (q.actor) qb = qb.where('actor', '=', q.actor);
    if (q.action) qb = qb.where('action', '=', q.action);
    const rows = await qb.orderBy('id', 'desc').limit(limitOf(q)).execute();
    return rows.map(toAuditEntry);
  }

  /**
   * The drop-copy baselines (one per venue and instrument): the venue's position at a quiet read.
   * `sizeBase` is absent while a new baseline is requested (an acknowledged break).
   */
  async positionBaselines(venue?: string): Promise<PositionBaseline[]> {
    let qb = this.db.selectFrom('position_baselines').selectAll();
    if (venue) qb = qb.where('venue', '=', venue);
    const rows = await qb.orderBy('venue').orderBy('instrument').execute();
    return rows.map((r) => ({
      venue: r.venue,
      instrument: r.instrument,
      ...(r.size_base === null ? {} : { sizeBase: r.size_base }),
      atMs: Number(r.at_ms),
      actor: r.actor,
      reason: r.reason,
    }));
  }

  /** Sets (or, with `sizeBase: null`, asks for at the next quiet read) the baseline of one venue and instrument. */
  async setPositionBaseline(b: {
    venue: string;
    instrument: string;
    sizeBase: string | null;
    atMs?: number;
    actor: Actor;
    reason: string;
  }): Promise<void> {
    const row = {
      venue: b.venue,
      instrument: b.instrument,
      size_base:
        b.sizeBase === null ? null : parseOrThrow(DecimalString, b.sizeBase, 'position baseline sizeBase'),
      at_ms: b.atMs ?? this.#clock.nowMs(),
      actor: b.actor,
      reason: b.reason,
    };
    await this.db
      .insertInto('position_baselines')
      .values(row)
      .onConflict((oc) =>
        oc.columns(['venue', 'instrument']).doUpdateSet({
          size_base: row.size_base,
          at_ms: row.at_ms,
          actor: row.actor,
          reason: row.reason,
        }),
      )
      .execute();
  }

  /** The instruments our orders on `venue` ever traded (what the drop-copy check follows there). */
  async instrumentsTraded(venue: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('orders')
      .select('instrument')
      .distinct()
      .where('venue', '=', venue)
      .execute();
    return rows.map((r) => r.instrument).sort();
  }

  /**
   * Our orders on `venue` that can explain or disturb a position read: created at or after
   * `createdFromMs`, not yet terminal, or changed after `updatedAfterMs`. Unbounded (the drop-copy
   * baselines roll forward, so it stays short).
   */
  async ordersForPositionCheck(
    venue: string,
    o: { createdFromMs: number; updatedAfterMs: number },
  ): Promise<LedgerOrder[]> {
    const rows = await this.db
      .selectFrom('orders')
      .selectAll()
      .where('venue', '=', venue)
      .where((eb) =>
        eb.or([
          eb('created_at_ms', '>=', o.createdFromMs),
          eb('status', 'in', OPEN_ORDER_STATUSES),
          eb('updated_at_ms', '>', o.updatedAfterMs),
        ]),
      )
      .orderBy('created_at_ms')
      .orderBy('client_order_id')
      .execute();
    return rows.map(toOrder);
  }

  /**
   * Position breaks still open: the newest `position-break` audit entry of each venue and instrument
   * (subject `venue/instrument`) that no `position-break-resolved` entry followed.
   */
  async openPositionBreaks(): Promise<AuditEntry[]> {
    const rows = await this.db
      .selectFrom('audit')
      .selectAll()
      .distinctOn('subject')
      .where('action', 'in', ['position-break', 'position-break-resolved'])
      .orderBy('subject')
      .orderBy('id', 'desc')
      .execute();
    return rows.filter((r) => r.action === 'position-break').map(toAuditEntry);
  }

  /** The durable copy of config document `name` (see {@link ConfigDocument}), or undefined when none. */
  async configDocument(name: string): Promise<ConfigDocument | undefined> {
    const r = await this.db
      .selectFrom('config_documents')
      .selectAll()
      .where('name', '=', name)
      .executeTakeFirst();
    return r
      ? {
          name: r.name,
          valueJson: r.value_json,
          revision: Number(r.revision),
          actor: r.actor,
          action: r.action,
          atMs: Number(r.updated_at_ms),
        }
      : undefined;
  }

  /**
   * Stores a config document's value at `revision`, unless the ledger holds it at that revision or a
   * higher one already: changes written out of order (two at once, a late retry) never put an older
   * value over a newer one. One conditional upsert, so concurrent writers agree.
   *
   * With `baseRevision` (the revision the change was made on; below `revision`): written only when the
   * ledger has no row, or its row is at `baseRevision` (the change was made on the ledger's newest copy),
   * or below it (the change was made on a revision whose own write has not landed yet: two changes at
   * once whose writes arrive out of order, or one whose write failed; the highest revision wins then).
   * A row above `baseRevision` refuses it: the change was made on a copy older than the ledger's newest
   * (the shared store lost or rolled back the document), and would drop what the ledger holds.
   * @returns `written` (false: the ledger had the revision or a newer one, or a row above `baseRevision`)
   * and the row as it stands.
   * A name that is empty, a revision that is not a whole number ≥ 0, a `baseRevision` that is not one
   * below `revision`, or a value that is not JSON is a `ValidationError` (which never quotes the value).
   */
  async writeConfigDocument(d: {
    name: string;
    valueJson: string;
    revision: number;
    /** The revision the change was made on (see above); absent: the highest revision wins. */
    baseRevision?: number;
    actor: Actor;
    action: string;
    atMs?: number;
  }): Promise<{ written: boolean; current: ConfigDocument }> {
    const issues: { path: string; message: string }[] = [];
    if (typeof d.name !== 'string' || d.name === '')
      issues.push({ path: 'name', message: 'must be a non-empty string' });
    if (!Number.isSafeInteger(d.revision) || d.revision < 0)
      issues.push({ path: 'revision', message: `must be a whole number ≥ 0, got ${String(d.revision)}` });
    const base = d.baseRevision;
    if (base !== undefined && (!Number.isSafeInteger(base) || base < 0 || !(base < d.revision)))
      issues.push({
        path: 'baseRevision',
        message: `must be a whole number ≥ 0 below revision ${String(d.revision)}, got ${String(base)}`,
      });
    let json = typeof d.valueJson === 'string';
    if (json)
      try {
        JSON.parse(d.valueJson);
      } catch {
        json = false;
      }
    if (!json) issues.push({ path: 'valueJson', message: 'must be JSON text' });
    if (typeof d.actor !== 'string' || d.actor === '')
      issues.push({ path: 'actor', message: 'must be a non-empty string' });
    if (typeof d.action !== 'string' || d.action === '')
      issues.push({ path: 'action', message: 'must be a non-empty string' });
    if (issues.length > 0) throw new ValidationError(`config document ${String(d.name)}`, issues);
    const row = {
      name: d.name,
      value_json: d.valueJson,
      revision: d.revision,
      actor: d.actor,
      action: d.action,
      updated_at_ms: d.atMs ?? this.#clock.nowMs(),
    };
    const res = await this.db
      .insertInto('config_documents')
      .values(row)
      .onConflict((oc) =>
        oc
          .column('name')
          .doUpdateSet({
            value_json: (eb) => eb.ref('excluded.value_json'),
            revision: (eb) => eb.ref('excluded.revision'),
            actor: (eb) => eb.ref('excluded.actor'),
            action: (eb) => eb.ref('excluded.action'),
            updated_at_ms: (eb) => eb.ref('excluded.updated_at_ms'),
          })
          // with a base: the row at or below it (below it: base < revision, so the highest still wins)
          .where((eb) =>
            base === undefined
              ? eb('config_documents.revision', '<', eb.ref('excluded.revision'))
              : eb('config_documents.revision', '<=', base),
          ),
      )
      .returning('name')
      .executeTakeFirst();
    const written = res !== undefined;
    if (written)
      return {
        written,
        current: {
          name: row.name,
          valueJson: row.value_json,
          revision: row.revision,
          actor: row.actor,
          action: row.action,
          atMs: row.updated_at_ms,
        },
      };
    const current = await this.configDocument(d.name);
    // only a row deleted between the two statements
    if (!current) throw new LedgerNotFoundError('config document', d.name);
    return { written, current };
  }

  /** Stores a risk snapshot (any JSON, versioned by `seq`); a replayed `seq` is ignored. */
  async recordRiskSnapshot(s: RiskSnapshotRecord): Promise<boolean> {
    const res = await this.db
      .insertInto('risk_snapshots')
      .values({ seq: s.seq, as_of_ms: s.asOfMs, snapshot: JSON.stringify(s.snapshot) })
      .onConflict((oc) => oc.column('seq').doNothing())
      .executeTakeFirst();
    return Number(res.numInsertedOrUpdatedRows ?? 0n) === 1;
  }

  async latestRiskSnapshot(): Promise<RiskSnapshotRecord | undefined> {
    const r = await this.db
      .selectFrom('risk_snapshots')
      .selectAll()
      .orderBy('seq', 'desc')
      .limit(1)
      .executeTakeFirst();
    return r ? { seq: Number(r.seq), asOfMs: Number(r.as_of_ms), snapshot: r.snapshot } : undefined;
  }

  /**
   * Snapshots by `asOfMs` range, newest first (`oldestFirst`: the other way round): ordered by `asOfMs`,
   * then `seq` (the same order as by `seq` alone as long as the run's clock never went back). One range
   * scan of the (as_of_ms, seq) index (migration 5) however far back the range is; ordered by seq, a
   * range ten days back filtered 172,801 newer rows first.
   */
  async riskSnapshotHistory(
    q: Pick<LedgerQuery, 'fromMs' | 'toMs' | 'limit'> & { oldestFirst?: boolean } = {},
  ): Promise<RiskSnapshotRecord[]> {
    let qb = this.db.selectFrom('risk_snapshots').selectAll();
    if (q.fromMs !== undefined) qb = qb.where('as_of_ms', '>=', q.fromMs);
    if (q.toMs !== undefined) qb = qb.where('as_of_ms', '<', q.toMs);
    const dir = q.oldestFirst ? 'asc' : 'desc';
    const rows = await qb.orderBy('as_of_ms', dir).orderBy('seq', dir).limit(limitOf(q)).execute();
    return rows.map((r) => ({ seq: Number(r.seq), asOfMs: Number(r.as_of_ms), snapshot: r.snapshot }));
  }

  /**
   * One batch of the snapshot retention (see {@link SnapshotRetention}, which runs them): examines up to
   * `batchSize` snapshots older than `fullBeforeMs`, in (as_of_ms, seq) order after the cursor `after`,
   * and deletes, in the same statement, those of them that are
   * - older than `retainBeforeMs`, or
   * - not the last of their `downsampleEveryMs` bucket (buckets aligned on the epoch: the last is the
   *   snapshot with the greatest (as_of_ms, seq) in it, the book as it stood at the end of the bucket),
   *
   * unless it is the newest snapshot (greatest seq: the planner continues the sequence from it) or the
   * snapshot a plan was made from: the newest one at or before some intent's `created_at_ms` (intents
   * are stamped with the decision's time, on the same clock, just after the snapshot they were planned
   * from; their ids derive from its seq, which no column holds). Those are kept however old.
   *
   * Every decision holds whatever the other batches delete, so batches can run in any number and the
   * cursor never has to go back: deleting a snapshot that is not the last of its bucket leaves the last,
   * and one that no intent followed before the next snapshot leaves every intent's snapshot in place.
   * @returns how many were examined and deleted, and the cursor for the next batch (undefined: none examined).
   */
  async pruneRiskSnapshotsBatch(o: {
    fullBeforeMs: number;
    retainBeforeMs: number;
    downsampleEveryMs: number;
    batchSize: number;
    after?: { asOfMs: number; seq: number };
  }): Promise<{ examined: number; deleted: number; next?: { asOfMs: number; seq: number } }> {
    const issues: { path: string; message: string }[] = [];
    for (const k of ['fullBeforeMs', 'retainBeforeMs'] as const)
      if (!Number.isSafeInteger(o[k])) issues.push({ path: k, message: `must be whole ms, got ${o[k]}` });
    if (!Number.isSafeInteger(o.downsampleEveryMs) || o.downsampleEveryMs < 1)
      issues.push({ path: 'downsampleEveryMs', message: `must be whole ms ≥ 1, got ${o.downsampleEveryMs}` });
    if (!Number.isSafeInteger(o.batchSize) || o.batchSize < 1)
      issues.push({ path: 'batchSize', message: `must be a whole number ≥ 1, got ${o.batchSize}` });
    if (issues.length === 0 && o.retainBeforeMs > o.fullBeforeMs)
      issues.push({ path: 'retainBeforeMs', message: 'must not be after fullBeforeMs' });
    if (issues.length > 0) throw new ValidationError('risk snapshot retention batch', issues);
    const afterAsOf = o.after?.asOfMs ?? Number.MIN_SAFE_INTEGER;
    const afterSeq = o.after?.seq ?? Number.MIN_SAFE_INTEGER;
    const every = o.downsampleEveryMs;
    // bucket end: as_of_ms rounded down to the bucket, plus one bucket (floor, also below 0)
    const r = await sql<{
      examined: string | number;
      deleted: string | number;
      as_of_ms: unknown;
      seq: unknown;
    }>`
      with examined as (
        select id, seq, as_of_ms from risk_snapshots
        where (as_of_ms, seq) > (${afterAsOf}::bigint, ${afterSeq}::bigint) and as_of_ms < ${o.fullBeforeMs}::bigint
        order by as_of_ms, seq
        limit ${o.batchSize}::bigint
      ),
      doomed as (
        select e.id from examined e
        cross join lateral (
          select n.as_of_ms from risk_snapshots n
          where (n.as_of_ms, n.seq) > (e.as_of_ms, e.seq)
          order by n.as_of_ms, n.seq
          limit 1
        ) nx
        where e.seq < (select max(seq) from risk_snapshots)
          and (e.as_of_ms < ${o.retainBeforeMs}::bigint
            or nx.as_of_ms < (floor(e.as_of_ms::numeric / ${every}::bigint)::bigint + 1) * ${every}::bigint)
          and not exists (
            select 1 from intents i where i.created_at_ms >= e.as_of_ms and i.created_at_ms < nx.as_of_ms)
      ),
      del as (delete from risk_snapshots where id in (select id from doomed) returning id),
      last as (select as_of_ms, seq from examined order by as_of_ms desc, seq desc limit 1)
      select (select count(*) from examined) as examined, (select count(*) from del) as deleted,
        last.as_of_ms, last.seq
      from (select 1) one left join last on true`.execute(this.db);
    const row = r.rows[0];
    const examined = Number(row?.examined ?? 0);
    const deleted = Number(row?.deleted ?? 0);
    if (!row || examined === 0 || row.as_of_ms === null || row.as_of_ms === undefined)
      return { examined, deleted };
    return { examined, deleted, next: { asOfMs: Number(row.as_of_ms), seq: Number(row.seq) } };
  }

  /** Counts of orders per status (for dashboards and the chaos audit). */
  async orderStatusCounts(
    q: Pick<LedgerQuery, 'venue' | 'underlying'> = {},
  ): Promise<Record<string, number>> {
    let qb = this.db.selectFrom('orders').select(['status', sql<string>`count(*)`.as('n')]);
    if (q.venue) qb = qb.where('venue', '=', q.venue);
    if (q.underlying) qb = qb.where('underlying', '=', q.underlying);
    const rows = await qb.groupBy('status').execute();
    return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
  }

  close(): Promise<void> {
    return this.#handle.close();
  }
}

function statuses(s: LedgerQuery['status']): OrderStatus[] | undefined {
  if (s === undefined) return undefined;
  return typeof s === 'string' ? [s] : [...s];
}

function limitOf(q: { limit?: number }): number {
  const l = q.limit ?? 500;
  if (!Number.isInteger(l) || l < 1) throw new RangeError(`limit must be a positive integer, got ${l}`);
  return Math.min(l, MAX_LIMIT);
}

function asRecord(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

function toOrder(r: OrderRow): LedgerOrder {
  const o: LedgerOrder = {
    clientOrderId: r.client_order_id,
    intentId: r.intent_id,
    venue: r.venue,
    instrument: r.instrument,
    side: r.side as Order['side'],
    orderType: r.order_type as Order['orderType'],
    sizeBase: r.size_base,
    reduceOnly: r.reduce_only,
    status: r.status as OrderStatus,
    filledSizeBase: r.filled_size_base,
    createdAtMs: Number(r.created_at_ms),
    updatedAtMs: Number(r.updated_at_ms),
    underlying: r.underlying,
    sendAttempts: r.send_attempts,
  };
  if (r.venue_order_id !== null) o.venueOrderId = r.venue_order_id;
  if (r.limit_price_usd !== null) o.limitPriceUsd = r.limit_price_usd;
  if (r.avg_fill_price_usd !== null) o.avgFillPriceUsd = r.avg_fill_price_usd;
  if (r.error !== null) o.error = r.error;
  if (r.last_send_at_ms !== null) o.lastSendAtMs = Number(r.last_send_at_ms);
  return o;
}

function toFill(r: Selectable<LedgerDatabase['fills']>): Fill {
  return {
    fillId: r.fill_id,
    clientOrderId: r.client_order_id,
    venue: r.venue,
    instrument: r.instrument,
    side: r.side as Fill['side'],
    sizeBase: r.size_base,
    priceUsd: r.price_usd,
    feeUsd: r.fee_usd,
    gasUsd: r.gas_usd,
    tsMs: Number(r.ts_ms),
  };
}

function toAuditEntry(r: Selectable<LedgerDatabase['audit']>): AuditEntry {
  return {
    id: Number(r.id),
    atMs: Number(r.at_ms),
    actor: r.actor,
    action: r.action,
    ...(r.subject === null ? {} : { subject: r.subject }),
    details: asRecord(r.details),
  };
}

function toBreakerEvent(r: BreakerEventRow): BreakerEvent {
  return {
    id: Number(r.id),
    breaker: r.breaker,
    fromState: r.from_state,
    toState: r.to_state,
    reason: r.reason,
    atMs: Number(r.at_ms),
    details: asRecord(r.details),
  };
}

function toKillSwitchEvent(r: KillSwitchEventRow): KillSwitchEvent {
  return {
    id: Number(r.id),
    scope: r.scope,
    action: r.action as KillSwitchEvent['action'],
    actor: r.actor,
    reason: r.reason,
    allowRiskReducing: r.allow_risk_reducing,
    atMs: Number(r.at_ms),
    details: asRecord(r.details),
  };
}

function toIntent(r: IntentRow & { status: string; client_order_id: string }): LedgerIntent {
  const i: LedgerIntent = {
    id: r.id,
    planId: r.plan_id,
    underlying: r.underlying,
    venue: r.venue,
    chain: r.chain as LedgerIntent['chain'],
    instrument: r.instrument,
    side: r.side as LedgerIntent['side'],
    sizeBase: r.size_base,
    orderType: r.order_type as LedgerIntent['orderType'],
    referencePriceUsd: r.reference_price_usd,
    reduceOnly: r.reduce_only,
    urgency: r.urgency as LedgerIntent['urgency'],
    reason: r.reason,
    createdAtMs: Number(r.created_at_ms),
    dependsOn: Array.isArray(r.depends_on) ? r.depends_on.map(String) : [],
    recordedAtMs: Number(r.recorded_at_ms),
    status: r.status as OrderStatus,
    clientOrderId: r.client_order_id,
  };
  if (r.limit_price_usd !== null) i.limitPriceUsd = r.limit_price_usd;
  if (r.lease_name !== null) i.leaseName = r.lease_name;
  if (r.fencing_token !== null) i.fencingToken = Number(r.fencing_token);
  return i;
}

/**
 * The newest time any ledger row carries, ms (intents created, fills, breaker and kill-switch events,
 * audit entries, risk snapshots), or undefined for an empty ledger. A run on a simulated clock starts
 * after it: a paper run's rows are stamped ahead of the wall clock (60× speed), and a restart whose clock
 * began at the wall clock again found the last run's hedges "in the future", inside every rolling window
 * and time gate until its clock caught up (an hour of blocked hedging after a minute's run).
 */
export async function newestRecordedMs(handle: DatabaseHandle): Promise<number | undefined> {
  const { db } = handle;
  const rows = await Promise.all([
    db
      .selectFrom('intents')
      .select((eb) => eb.fn.max('created_at_ms').as('ms'))
      .executeTakeFirst(),
    db
      .selectFrom('fills')
      .select((eb) => eb.fn.max('ts_ms').as('ms'))
      .executeTakeFirst(),
    db
      .selectFrom('breaker_events')
      .select((eb) => eb.fn.max('at_ms').as('ms'))
      .executeTakeFirst(),
    db
      .selectFrom('kill_switch_events')
      .select((eb) => eb.fn.max('at_ms').as('ms'))
      .executeTakeFirst(),
    db
      .selectFrom('audit')
      .select((eb) => eb.fn.max('at_ms').as('ms'))
      .executeTakeFirst(),
    db
      .selectFrom('risk_snapshots')
      .select((eb) => eb.fn.max('as_of_ms').as('ms'))
      .executeTakeFirst(),
  ]);
  let newest: number | undefined;
  for (const r of rows) {
    const raw = r?.ms;
    if (raw === null || raw === undefined) continue;
    const ms = Number(raw);
    if (!Number.isSafeInteger(ms)) throw new Error(`ledger: a newest time ${String(raw)} is not a whole ms`);
    newest = newest === undefined ? ms : Math.max(newest, ms);
  }
  return newest;
}
