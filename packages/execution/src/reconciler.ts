import { type Clock, OPEN_ORDER_STATUSES, systemClock } from '@xhedge/core';
import type { Ledger, LedgerOrder } from '@xhedge/store';
import type { Redis } from 'ioredis';
import { controlStateRestored } from './control-state.ts';
import { keysFor } from './keys.ts';
import type { ExecutionMetrics } from './metrics.ts';
import { producerMarked } from './producing.ts';
import { OrderJobData } from './queue.ts';
import type { ExecutionService } from './service.ts';

export interface ReconcilerOptions {
  service: ExecutionService;
  ledger: Ledger;
  redis: Redis;
  prefix: string;
  metrics?: ExecutionMetrics;
  clock?: Clock;
  /** Orders untouched for this long are looked at, ms. @defaultValue 5000 */
  minAgeMs?: number;
  /** Sweep period, ms. @defaultValue 5000 */
  intervalMs?: number;
  /**
   * An order the ledger has `planned` or `queued` with no job (its producer stopped before adding it)
   * is cancelled once untouched this long, ms, and no producer marks it (see `#orphan`). Longer than
   * a producer usually takes from its ledger write to its job add (the gates' market data are read in
   * between), and well over the producers' `producerMarkAfterMs` (a slower one marks its orders from
   * then on); shorter than `limits.staleAfterMs`, the age past which the order could not pass the
   * gates anyway.
   * @defaultValue 10000
   */
  orphanGraceMs?: number;
}

export interface SweepResult {
  examined: number;
  /** Jobs re-added or retried (their next run reconciles with the venue first). */
  redriven: number;
  /**
   * Orders cancelled unsent: a dependency ended without filling, a flow child failed, or no job was
   * ever added for them (orphans, see `Reconciler.#orphan`).
   */
  cancelled: number;
}

/**
 * Finds ledger orders that are not terminal and whose job cannot finish them: no job (crash between
 * ledger and queue, job removed, jobs lost with Redis's data), or a failed job (stalled worker with
 * `maxStalledCount: 0`, attempts exhausted while the outcome was unknown). It re-drives them under the
 * same job id; the processor then asks the venue before anything is sent. Cancelled unsent instead: an
 * order with no job that was never claimed for sending (an orphan of its plan, see `#orphan`), and a
 * not-yet-sent order whose job failed because a flow child failed (e.g. the collateral transfer of a
 * transfer-then-hedge flow) or whose ledger dependency ended without filling. One sweeper at a time
 * (Redis lock).
 */
export class Reconciler {
  readonly #o: ReconcilerOptions;
  readonly #clock: Clock;
  #timer: NodeJS.Timeout | undefined;

  constructor(o: ReconcilerOptions) {
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
  }

  async sweep(): Promise<SweepResult> {
    const res: SweepResult = { examined: 0, redriven: 0, cancelled: 0 };
    const lock = keysFor(this.#o.prefix).reconcileLock;
    const interval = this.#o.intervalMs ?? 5000;
    const token = `${process.pid}:${Math.random()}`;
    if ((await this.#o.redis.set(lock, token, 'PX', interval * 2, 'NX')) !== 'OK') return res;
    try {
      const now = this.#clock.nowMs();
      const minAge = this.#o.minAgeMs ?? 5000;
      const orders = (await this.#o.ledger.listAllOrders({ status: OPEN_ORDER_STATUSES })).filter(
        (o) => now - o.updatedAtMs >= minAge,
      );
      for (const order of orders) {
        res.examined += 1;
        const intent = await this.#o.ledger.getIntent(order.intentId);
        if (!intent) continue;
        const job = await this.#o.service.queue(order.venue).getJob(order.intentId);
        if (!job) {
          if (order.status === 'planned' || order.status === 'queued') {
            const orphan = await this.#orphan(order, now);
            if (orphan === 'wait') continue;
            if (orphan === 'cancelled') {
              res.cancelled += 1;
              this.#o.metrics?.reconciliations.inc({ result: 'cancelled' });
              continue;
            }
            // claimed for sending: it may be out, so it is re-driven and its run asks the venue
          }
          await this.#o.service.enqueue(intent);
          if (order.status === 'planned') {
            await this.#o.ledger.transition(order.clientOrderId, 'queued', { actor: 'reconciler' });
          }
          res.redriven += 1;
          this.#o.metrics?.reconciliations.inc({ result: 'requeued' });
          continue;
        }
        const state = await job.getState();
        if (state !== 'failed' && state !== 'completed') continue;
        if (order.status === 'planned' || order.status === 'queued') {
          // Nothing is decided for it while this Redis server's control state is not restored (as for
          // an orphan): `cancelUnsent` refuses then, and a retry would take that refusal for a claim a
          // run holds. The restore claims it, and the next sweep decides.
          if (!(await controlStateRestored(this.#o.redis, this.#o.prefix))) continue;
          // A flow parent (a hedge waiting for its collateral transfer) fails when a child fails; the
          // collateral never arrived, so the hedge must not be re-driven: it ends cancelled.
          const failedChildren = (await job.getDependenciesCount({ failed: true })).failed ?? 0;
          if (
            failedChildren > 0 &&
            (await this.#cancelUnsent(
              order.clientOrderId,
              `a job it depends on failed: ${job.failedReason ?? 'child failed'}`,
            ))
          ) {
            res.cancelled += 1;
            this.#o.metrics?.reconciliations.inc({ result: 'cancelled' });
            continue;
          }
          const deps = await Promise.all(intent.dependsOn.map((d) => this.#o.ledger.getOrderByIntent(d)));
          const dead = deps.find(
            (d) => d && d.status !== 'filled' && ['cancelled', 'rejected', 'failed'].includes(d.status),
          );
          if (
            dead &&
            (await this.#cancelUnsent(
              order.clientOrderId,
              `dependency ${dead.intentId} ended ${dead.status}`,
            ))
          ) {
            res.cancelled += 1;
            continue;
          }
        }
        // A job whose data this release cannot read (written by an incompatible release, or damaged) fails
        // at once on every run, never sent: retried as it stands it failed again every sweep and held the
        // underlying's hedging for ever. It is made again from the ledger's intent (the same job id).
        if (
          state === 'failed' &&
          (order.status === 'planned' || order.status === 'queued') &&
          !OrderJobData.safeParse(job.data).success
        ) {
          // a job BullMQ will not remove (a flow parent with a child still locked) is left for a later
          // sweep; it must not stop this sweep's other orders
          const removed = await job.remove().then(
            () => true,
            () => false,
          );
          if (!removed) continue;
          await this.#o.service.enqueue(intent);
          if (order.status === 'planned')
            await this.#o.ledger.transition(order.clientOrderId, 'queued', { actor: 'reconciler' });
          res.redriven += 1;
          this.#o.metrics?.reconciliations.inc({ result: 'requeued' });
          continue;
        }
        await job.retry(state);
        res.redriven += 1;
        this.#o.metrics?.reconciliations.inc({ result: 'retried' });
      }
    } finally {
      await this.#o.redis.eval(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
        1,
        lock,
        token,
      );
    }
    return res;
  }

  /**
   * An order the ledger has `planned` or `queued` and no job: its producer stopped between the ledger
   * write and the job add (a crash in `submitPlan`, or behind a collateral transfer before its flow was
   * added). It is not re-driven as a plain job, which would go around what only the producer checks:
   * the plan's net delta (`ExecutionService.checkPlan`; the ledger keeps no plan to check again) and the
   * flow the leg belonged to (a leg behind a transfer would go without its collateral). Its plan was
   * sized for a book and a market that have moved since, and the planner counts it as in flight until
   * it ends: it is cancelled unsent (its reservation given back), and the planner plans again.
   * `wait`: not yet, within `orphanGraceMs` (its producer may still be adding the job), while a live
   * producer marks it (`ExecutionService.producing`: a producer slower than the grace, e.g. a leg behind
   * a collateral transfer; a dead one's mark lapses within its TTL), or while the
   * control state of this Redis server is not restored (a data loss may have taken the send claim it
   * was sent under; the restore claims it). `claimed`: a run, or the restore, holds its send claim, so
   * it may have been sent: it is re-driven, and its run asks the venue first.
   */
  async #orphan(order: LedgerOrder, nowMs: number): Promise<'wait' | 'cancelled' | 'claimed'> {
    const idleMs = nowMs - order.updatedAtMs;
    if (idleMs < (this.#o.orphanGraceMs ?? 10_000)) return 'wait';
    if (await producerMarked(this.#o.redis, this.#o.prefix, order.clientOrderId)) return 'wait';
    // A producer adds the job before it drops its mark: one that did both since the sweep looked for
    // the job has a job now (the next sweep takes it from there).
    if (await this.#o.service.queue(order.venue).getJob(order.intentId)) return 'wait';
    // after the job lookup that found none: a server restored now had the claims of every queued order
    if (!(await controlStateRestored(this.#o.redis, this.#o.prefix))) return 'wait';
    const cancelled = await this.#cancelUnsent(
      order.clientOrderId,
      `orphaned: ${order.status} for ${Math.round(idleMs)} ms with no job (its producer stopped before queueing it); never sent, its plan is stale`,
    );
    return cancelled ? 'cancelled' : 'claimed';
  }

  /**
   * `ExecutionService.cancelUnsent` as the reconciler: false when a run holds the order's send claim,
   * when the ledger has it past `queued` by now, or while the control state is not restored (the
   * callers here ask that first and wait).
   */
  #cancelUnsent(clientOrderId: string, error: string): Promise<boolean> {
    return this.#o.service.cancelUnsent(clientOrderId, { actor: 'reconciler', error });
  }

  start(onError: (err: unknown) => void = () => {}): void {
    const loop = async () => {
      await this.sweep().catch(onError);
      if (this.#timer !== undefined) this.#timer = setTimeout(loop, this.#o.intervalMs ?? 5000);
    };
    this.#timer = setTimeout(loop, this.#o.intervalMs ?? 5000);
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
