import {
  type Clock,
  HedgeIntent,
  type OrderStatus,
  parseOrThrow,
  systemClock,
  TERMINAL_ORDER_STATUSES,
} from '@xhedge/core';
import type { Ledger, LedgerOrder, RecordedLeg } from '@xhedge/store';
import { type FlowJob, FlowProducer, Queue } from 'bullmq';
import type { BreakerBoard } from './breakers.ts';
import { controlStateRestored } from './control-state.ts';
import type {
  ControlName,
  ControlResult,
  MarketDataSource,
  PlanNetDelta,
  PreTradeControls,
} from './controls.ts';
import { OrderGate } from './gate.ts';
import { clientOrderIdFor } from './ids.ts';
import type { KillSwitch } from './kill-switch.ts';
import { type LeaseHold, NotLeaderError } from './lease.ts';
import type { ExecutionMetrics } from './metrics.ts';
import { ProducerMarks } from './producing.ts';
import { ORDER_JOB_OPTIONS, type OrderJobData, orderQueueName, PRIORITY } from './queue.ts';
import type { ConnectionOptions } from './redis.ts';
import { SendClaims } from './send-claim.ts';

/** The states of an order no run has sent: the only ones `cancelUnsent` cancels from. */
const UNSENT: readonly OrderStatus[] = ['planned', 'queued'];
/** Of those, the one no run has even queued: never sent whatever Redis lost (see `cancelUnsent`). */
const NEVER_QUEUED: readonly OrderStatus[] = ['planned'];

/** What execution needs of a plan (routing's `HedgePlan` has these fields). */
export interface PlanLike {
  planId: string;
  legs: readonly HedgeIntent[];
  /**
   * The plan's effect on the book's net delta, for the `net-delta` check (`limits.maxNetDeltaUsd`):
   * when it fails, every leg of the plan is blocked. Without it the check is not made.
   */
  netDelta?: PlanNetDelta;
}

export interface LegResult {
  intentId: string;
  clientOrderId: string;
  /** `queued`: in the queue now; `duplicate`: seen before (nothing queued again); `blocked`: cancelled by a control. */
  outcome: 'queued' | 'duplicate' | 'blocked';
  control?: ControlName;
  reason?: string;
}

export interface ExecutionServiceOptions {
  /** BullMQ connection options (not a shared client). */
  connection: ConnectionOptions;
  /** BullMQ key prefix (`{xhedge}` on Redis Cluster). */
  queuePrefix: string;
  ledger: Ledger;
  controls: PreTradeControls;
  breakers: BreakerBoard;
  killSwitch: KillSwitch;
  marketData?: MarketDataSource;
  /**
   * Whether a venue enforces reduce-only orders (`capabilities.reduceOnly`). When given, a leg flagged
   * reduce-only on a venue that does not is judged before queueing as any other leg, as the worker
   * judges it before the send (blocked at once, not queued and cancelled there). @defaultValue the flag
   * is taken as it is here (the worker still judges it before the send)
   */
  reduceOnlyEnforced?: (venue: string) => boolean;
  metrics?: ExecutionMetrics;
  clock?: Clock;
  /** Actor name written to the ledger. @defaultValue `orchestrator` */
  actor?: string;
  /**
   * Wait for the disk flush when recording plans (`Ledger.recordPlan`'s `durable`). On by default. Off,
   * a plan is committed and visible at once without the flush (about 0.5 ms less at the median, 2 ms at
   * p99 on a local Postgres), but a crash of the database server within its WAL writer's delay (about
   * 0.6 s) can lose the record of an order a worker has already sent: the worker puts it back from its
   * job when that job runs again, but until then the ledger shows no working order on the underlying,
   * and a planner reading it plans the same hedge again (found by a Postgres-crash drill: two hedges,
   * both filled). Turn it off only where no planner reads this ledger, or a second hedge is harmless.
   * @defaultValue true
   */
  durableIntents?: boolean;
  /**
   * A producer still between its ledger write and its job add after this long marks its orders in
   * Redis, renewed while it works (`producing`; `submitPlan` does it for its own legs), ms. Must stay
   * well under the reconciler's `orphanGraceMs`, which cancels unmarked orders with no job past it. A
   * plan queued sooner, the usual case, costs no Redis call for it.
   * @defaultValue 1000
   */
  producerMarkAfterMs?: number;
  /**
   * How long a producer mark lasts without renewal, ms: how long a producer that died keeps the
   * reconciler from cancelling its orders.
   * @defaultValue 10000
   */
  producerMarkTtlMs?: number;
  /**
   * A producer still at work this long after it began is taken as hung (a call that never answers):
   * its marks are no longer renewed, so they lapse and the reconciler cancels its orders, which the
   * planner would otherwise count in flight for ever. Well over any real submission, ms.
   * @defaultValue 60000
   */
  producerMarkMaxMs?: number;
}

/**
 * The producer: turns plans into ledger intents and BullMQ jobs. Per plan:
 * 1. at once (they do not depend on each other): the gates of every leg (kill switch, breakers,
 *    window controls with their reservation: one Redis script per leg), the lease check in Redis,
 *    and the ledger write of the whole plan in one statement (intents and orders `queued`, events,
 *    fenced by the lease token);
 * 2. legs a gate blocked (or whose dependency was blocked) → `cancelled` with the control's reason;
 * 3. the jobs (jobId = intent id) of the others: a plain add for a leg without dependencies, a
 *    BullMQ flow for a leg that waits for others.
 * Nothing is queued before both the ledger and the gates said yes. A crash between 1 and 3 leaves a
 * `queued` order without a job: the reconciler cancels it unsent once `orphanGraceMs` passed (its plan
 * is stale by then, see `Reconciler`); a producer that is alive but slower than that marks its orders
 * meanwhile (`producing`), so the reconciler leaves them alone.
 */
export class ExecutionService {
  readonly #o: ExecutionServiceOptions;
  readonly #queues = new Map<string, Queue>();
  readonly #flows: FlowProducer;
  readonly #clock: Clock;
  readonly #actor: string;
  readonly #gate: OrderGate;
  readonly #claims: SendClaims;
  readonly #marks: ProducerMarks;

  constructor(o: ExecutionServiceOptions) {
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
    this.#actor = o.actor ?? 'orchestrator';
    this.#marks = new ProducerMarks({
      redis: o.controls.redis,
      prefix: o.controls.prefix,
      holder: this.#actor,
      markAfterMs: o.producerMarkAfterMs,
      ttlMs: o.producerMarkTtlMs,
      maxHoldMs: o.producerMarkMaxMs,
    });
    this.#flows = new FlowProducer({ connection: o.connection, prefix: o.queuePrefix });
    this.#claims = new SendClaims(o.controls.redis, o.controls.prefix);
    // Redis errors surface on the calls that fail; the event would otherwise crash the process.
    this.#flows.on('error', () => {});
    this.#gate = new OrderGate({
      controls: o.controls,
      breakers: o.breakers,
      killSwitch: o.killSwitch,
      clock: o.clock,
      reduceOnlyEnforced: o.reduceOnlyEnforced,
    });
  }

  queue(venue: string): Queue {
    let q = this.#queues.get(venue);
    if (!q) {
      q = new Queue(orderQueueName(venue), {
        connection: o2(this.#o.connection),
        prefix: this.#o.queuePrefix,
        defaultJobOptions: ORDER_JOB_OPTIONS,
      });
      q.on('error', () => {});
      this.#queues.set(venue, q);
    }
    return q;
  }

  /**
   * Submits every leg of a plan. Legs with `dependsOn` run as a BullMQ flow: a leg is the parent of
   * the legs it depends on, so it only runs after they completed (filled); a failed dependency fails
   * it. With `lease`, the lease is checked in Redis and the ledger refuses the plan from a deposed
   * leader (fencing token). No second lease check before queueing: legs the ledger accepted are
   * legitimate. From the ledger write to the adds the legs are under `producing`, so a slow submission
   * (a gate's market-data read slower than the reconciler's orphan grace) is not taken for a dead one.
   */
  async submitPlan(plan: PlanLike, opts: { lease?: LeaseHold } = {}): Promise<LegResult[]> {
    const legs = plan.legs.map((l, i) => parseOrThrow(HedgeIntent, l, `plan ${plan.planId} leg ${i}`));
    const byId = new Map(legs.map((l) => [l.id, l]));
    for (const leg of legs) {
      for (const d of leg.dependsOn) {
        if (!byId.has(d))
          throw new RangeError(`leg ${leg.id} depends on ${d}, which is not in plan ${plan.planId}`);
      }
    }
    const dependedOn = new Map<string, string>();
    for (const l of legs) {
      for (const d of l.dependsOn) {
        const prev = dependedOn.get(d);
        if (prev)
          throw new RangeError(`leg ${d} is a dependency of both ${prev} and ${l.id}; flows are trees`);
        dependedOn.set(d, l.id);
      }
    }
    const token = opts.lease?.token;
    if (opts.lease && token === undefined) throw new NotLeaderError(opts.lease.name);
    return this.producing(
      legs.map((l) => clientOrderIdFor(l.id)),
      () => this.#submit(plan, legs, { byId, dependedOn, lease: opts.lease, token }),
    );
  }

  /** `submitPlan` of a plan whose legs were checked: the ledger write, the gates and the adds. */
  async #submit(
    plan: PlanLike,
    legs: readonly HedgeIntent[],
    o: {
      byId: ReadonlyMap<string, HedgeIntent>;
      dependedOn: ReadonlyMap<string, string>;
      lease: LeaseHold | undefined;
      token: number | undefined;
    },
  ): Promise<LegResult[]> {
    const { byId, dependedOn, lease, token } = o;
    // 1. the gates and the lease check in Redis, and the ledger write (every leg `queued`, fenced),
    // all in flight at once; a leg a gate blocked is moved to `cancelled` before anything is queued.
    // (the ledger statement goes out first: the gates' market-data work runs while it is in flight)
    const [write, gates, held] = await Promise.allSettled([
      this.#o.ledger.recordPlan(
        legs.map((leg) => ({
          intent: leg,
          clientOrderId: clientOrderIdFor(leg.id),
          status: 'queued' as const,
        })),
        {
          actor: this.#actor,
          durable: this.#o.durableIntents ?? true,
          ...(lease && token !== undefined ? { fence: { leaseName: lease.name, token } } : {}),
        },
      ),
      Promise.all(legs.map((leg) => this.preQueueCheck(leg))),
      lease?.assertHeld(),
    ]);
    if (write.status === 'rejected') {
      // Nothing written. Reservations are left to expire with their window (never under-count: a
      // re-submitted plan's legs may be live under the same ids).
      throw write.reason;
    }
    const recorded = write.value;
    if (gates.status === 'rejected' || held.status === 'rejected') {
      const why = gates.status === 'rejected' ? gates.reason : (held as PromiseRejectedResult).reason;
      const msg = why instanceof Error ? why.message : String(why);
      for (const [i, r] of recorded.entries()) {
        if (!r.created) continue;
        await this.#o.ledger.transition(r.order.clientOrderId, 'cancelled', {
          actor: this.#actor,
          patch: { error: `not queued: ${msg}` },
        });
        await this.#o.controls.release(legs[i] as HedgeIntent).catch(() => {});
      }
      throw why;
    }
    const verdicts = gates.value;
    const blocked = new Map<string, { control: ControlName; reason: string }>();
    // the plan's check applies to every leg: the legs were sized together
    const whole = this.checkPlan(plan);
    legs.forEach((leg, i) => {
      const v = whole.ok ? verdicts[i] : whole;
      if (v && !v.ok) blocked.set(leg.id, { control: v.control, reason: v.reason });
    });
    // a leg whose dependency is blocked is blocked too
    for (let changed = true; changed; ) {
      changed = false;
      for (const leg of legs) {
        if (blocked.has(leg.id)) continue;
        const dep = leg.dependsOn.find((d) => blocked.has(d));
        if (dep) {
          blocked.set(leg.id, { control: 'breaker', reason: `dependency ${dep} was blocked` });
          changed = true;
        }
      }
    }
    const results: LegResult[] = [];
    const toQueue: HedgeIntent[] = [];
    for (const [i, leg] of legs.entries()) {
      const r = recorded[i] as RecordedLeg;
      const clientOrderId = r.order.clientOrderId;
      const b = blocked.get(leg.id);
      const reserved = verdicts[i]?.ok === true;
      if (!r.created) {
        results.push({ intentId: leg.id, clientOrderId, outcome: 'duplicate' });
        await this.#afterDuplicate(leg, r.order, reserved);
        // a plan re-submitted after a failed add: queue its queued legs again (same job id: no double)
        if (r.order.status === 'queued' && !b) toQueue.push(leg);
        continue;
      }
      if (b) {
        await this.#o.ledger.transition(clientOrderId, 'cancelled', {
          actor: this.#actor,
          patch: { error: `blocked by ${b.control}: ${b.reason}` },
        });
        if (reserved) await this.#o.controls.release(leg);
        this.#o.metrics?.controlBlocks.inc({ control: b.control, phase: 'queue' });
        results.push({ intentId: leg.id, clientOrderId, outcome: 'blocked', ...b });
        continue;
      }
      results.push({ intentId: leg.id, clientOrderId, outcome: 'queued' });
      toQueue.push(leg);
    }
    // 3. jobs: roots are legs no other queued leg depends on; every one is `queued` in the ledger now
    const queued = new Set(toQueue.map((l) => l.id));
    const now = Math.floor(this.#clock.nowMs());
    await Promise.all(
      toQueue
        .filter((l) => !(dependedOn.has(l.id) && queued.has(dependedOn.get(l.id) as string)))
        .map((root) =>
          root.dependsOn.length === 0
            ? this.enqueue(root, { queuedAtMs: now })
            : this.#flows.add(this.#flowOf(root, byId, now)),
        ),
    );
    return results;
  }

  /**
   * Runs `work`, a producer's steps from its ledger write of these orders to the add of their jobs,
   * under producer marks (`ProducerMarks`): while it is still at work `producerMarkAfterMs` after it
   * started, the orders are marked in Redis and the mark is renewed until `work` ends, so the
   * reconciler does not cancel them as orphans however long it takes (a leg behind a collateral
   * transfer, written `planned` before its pre-queue check and its flow add). A producer that dies
   * leaves marks that lapse after `producerMarkTtlMs`; the reconciler then cancels the orders as it
   * would have. The marks are dropped when `work` ends, resolved or not. `submitPlan` does this for its
   * own legs; a producer adding jobs by other means (a transfer-then-hedge flow) wraps its own steps.
   */
  producing<T>(clientOrderIds: readonly string[], work: () => Promise<T>): Promise<T> {
    return this.#marks.hold(clientOrderIds, work);
  }

  /** The checks of a plan as a whole (no I/O): its net delta (`PlanLike.netDelta`). */
  checkPlan(plan: Pick<PlanLike, 'netDelta'>): ControlResult {
    return plan.netDelta ? this.#o.controls.checkNetDelta(plan.netDelta) : { ok: true };
  }

  /**
   * The gates reserved for a leg recorded before: keep that only while its order is live. An order that
   * ended having traded (filled, or cancelled/failed after a partial fill) is settled as its run's end
   * settles it: it keeps its window notional and execution count and stops counting as live; one that
   * never traded gives its reservation back.
   */
  async #afterDuplicate(
    leg: HedgeIntent,
    order: Pick<LedgerOrder, 'status' | 'filledSizeBase'>,
    reserved: boolean,
  ): Promise<void> {
    if (!reserved || !TERMINAL_ORDER_STATUSES.has(order.status)) return;
    if (order.status === 'filled' || Number(order.filledSizeBase) > 0) await this.#o.controls.settle(leg);
    else await this.#o.controls.release(leg);
  }

  /**
   * Cancels an order that was not sent, from outside its job's run (an operator, a failed collateral
   * transfer, the reconciler): it is claimed as blocked first (`SendClaims.block`), so no run of it can
   * send it after the cancel, and the reservation its leg took at queue time is given back. Returns
   * true when the order is cancelled (by this call, or before it). Returns false, and the order stays
   * as it is, when it may have been sent; its job's run ends it after asking the venue:
   * - the control state of this Redis server is not restored (`controlStateRestored`): it lost data,
   *   and with it maybe the send claim a run sent the order under (the restore claims such orders);
   *   nothing is changed, in Redis or the ledger, unless the order is still `planned` (never sent:
   *   cancelled on the ledger's word, e.g. a hedge behind a collateral transfer a control refused);
   * - a run holds its send claim (or the restore after a data loss does);
   * - the ledger has it past `queued` (or ended otherwise): the claim is no proof on its own, as it is
   *   let go `CLAIM_RETAIN_MS` after the send was recorded. The cancel is conditional on `planned` or
   *   `queued` in the ledger's own transaction, so it cannot land on an order a run sent meanwhile
   *   either. The blocked claim just taken is given back: it would stand, for `SEND_CLAIM_TTL_MS`, for
   *   a decision ("never sent") that was not made. (It would not stop the order's runs: the claim
   *   decides nothing for an order past `queued`, which never goes back there.)
   */
  async cancelUnsent(clientOrderId: string, o: { actor: string; error: string }): Promise<boolean> {
    // While the control state is not restored, a claim proves nothing and none is taken: only a
    // `planned` order is cancelled then, on the ledger's word. It was never sent, whatever Redis lost: a
    // run moves it to `queued` in the ledger before any gate, and its job carries no `queuedAtMs`, so
    // every run of it reads the ledger first (no fast send). A `queued` one waits for the restore.
    const restored = await controlStateRestored(this.#o.controls.redis, this.#o.controls.prefix);
    if (restored && (await this.#claims.block(clientOrderId, o.actor))) return false;
    const { changed, unmet, order } = await this.#o.ledger.transition(clientOrderId, 'cancelled', {
      actor: o.actor,
      patch: { error: o.error },
      from: restored ? UNSENT : NEVER_QUEUED,
    });
    if (unmet) {
      // given back only when this actor took it (else: another cancel's, or none). One left behind
      // by a failed call misleads nobody that decides: no run reads it for an order past `queued`.
      if (restored) await this.#claims.giveBack(clientOrderId, o.actor).catch(() => false);
      return false;
    }
    if (changed) await this.#releaseUnsent(order);
    return true;
  }

  /**
   * Gives back the pre-trade reservation of an order this service just cancelled unsent (window
   * notional, execution count, live for the self-cross check): it never traded, and left in place it
   * would count against later hedges until its window ran out. Only the cancel that ended the order
   * releases here (an order that had ended before keeps what its end decided); a run of its job that
   * comes later finds it cancelled and releases again (`#finish`), which changes nothing:
   * `PreTradeControls.release` is idempotent per intent id (it subtracts a notional only for the window
   * member it removed). A release that fails leaves the windows over-counting until they expire (the
   * safe side), and the cancel stands: it is not reported as failed.
   */
  async #releaseUnsent(order: LedgerOrder): Promise<void> {
    if (Number(order.filledSizeBase) !== 0) return;
    await this.#o.controls
      .release({ id: order.intentId, underlying: order.underlying, venue: order.venue })
      .catch(() => {});
  }

  /**
   * Adds one intent's job (idempotent: an existing job id is left as is). `queuedAtMs` only when the
   * ledger has just recorded the order `queued` (see `OrderJobData.queuedAtMs`).
   */
  async enqueue(intent: HedgeIntent, o: { queuedAtMs?: number } = {}): Promise<void> {
    const data: OrderJobData = {
      intent,
      clientOrderId: clientOrderIdFor(intent.id),
      ...(o.queuedAtMs !== undefined ? { queuedAtMs: o.queuedAtMs } : {}),
    };
    await this.queue(intent.venue).add('order', data, {
      ...ORDER_JOB_OPTIONS,
      jobId: intent.id,
      priority: PRIORITY[intent.urgency],
    });
  }

  #flowOf(leg: HedgeIntent, byId: ReadonlyMap<string, HedgeIntent>, queuedAtMs: number): FlowJob {
    const data: OrderJobData = { intent: leg, clientOrderId: clientOrderIdFor(leg.id), queuedAtMs };
    const children = leg.dependsOn.map((d) => {
      const child = this.#flowOf(byId.get(d) as HedgeIntent, byId, queuedAtMs);
      child.opts = { ...child.opts, failParentOnFailure: true };
      return child;
    });
    return {
      name: 'order',
      queueName: orderQueueName(leg.venue),
      data,
      prefix: this.#o.queuePrefix,
      opts: { ...ORDER_JOB_OPTIONS, jobId: leg.id, priority: PRIORITY[leg.urgency] },
      ...(children.length ? { children } : {}),
    } as FlowJob;
  }

  /** Kill switch, breakers (no trial taken: half-open lets it queue) and controls with reservation. */
  async preQueueCheck(leg: HedgeIntent) {
    const ctx = (await this.#o.marketData?.context(leg)) ?? {};
    return this.#gate.check(leg, ctx, { takeTrial: false, reserve: true });
  }

  get nowMs(): number {
    return this.#clock.nowMs();
  }

  async close(): Promise<void> {
    await this.#flows.close();
    await Promise.all([...this.#queues.values()].map((q) => q.close()));
  }
}

function o2(c: ConnectionOptions): ConnectionOptions {
  // Producers fail fast instead of buffering while Redis is down (the caller retries the plan).
  return { ...c, enableOfflineQueue: false, maxRetriesPerRequest: 1 };
}
