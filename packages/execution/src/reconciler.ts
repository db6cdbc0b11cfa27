import { type Clock, type OrderStatus, systemClock } from '@xhedge/core';
import type { Ledger } from '@xhedge/store';
import type { Redis } from 'ioredis';
import { keysFor } from './keys.ts';
import type { ExecutionMetrics } from './metrics.ts';
import type { ExecutionService } from './service.ts';

const OPEN: readonly OrderStatus[] = [
  'planned',
  'queued',
  'sent',
  'acknowledged',
  'partially-filled',
  'outcome-unknown',
];

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
}

export interface SweepResult {
  examined: number;
  /** Jobs re-added or retried (their next run reconciles with the venue first). */
  redriven: number;
  /** Orders cancelled because a dependency ended without filling. */
  cancelled: number;
}

/**
 * Finds ledger orders that are not terminal and whose job cannot finish them: no job (crash between
 * ledger and queue, job removed), or a failed job (stalled worker with `maxStalledCount: 0`, attempts
 * exhausted while the outcome was unknown). It re-drives them under the same job id; the processor
 * then asks the venue before anything is sent. A not-yet-sent order whose job failed because a flow child
 * failed (e.g. the collateral transfer of a transfer-then-hedge flow), or whose ledger dependency ended
 * without filling, is cancelled instead. One sweeper at a time (Redis lock).
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
      const orders = (await this.#o.ledger.listOrders({ status: OPEN, limit: 5000 })).filter(
        (o) => now - o.updatedAtMs >= minAge,
      );
      for (const order of orders) {
        res.examined += 1;
        const intent = await this.#o.ledger.getIntent(order.intentId);
        if (!intent) continue;
        const job = await this.#o.service.queue(order.venue).getJob(order.intentId);
        if (!job) {
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

  /** `ExecutionService.cancelUnsent` as the reconciler: false when a run holds the order's send claim. */
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
