import { HedgeIntent } from '@xhedge/core';
import type { JobsOptions, WorkerOptions } from 'bullmq';
import { z } from 'zod';

/** One queue per venue, so a worker serves only the venues it has adapters (and keys) for. */
export function orderQueueName(venue: string): string {
  return `orders-${venue}`;
}

/** Job payload: the intent (no secrets: job data is stored in clear text) and its client order id. */
export const OrderJobData = z.object({
  intent: HedgeIntent,
  clientOrderId: z.string().min(1).max(64),
  /** Send attempt number that the venue answered `not-sent` for (re-send needs no deadline wait). */
  notSentAttempt: z.number().int().optional(),
  /**
   * When the producer queued the job, right after the ledger recorded the order `queued` (its clock,
   * ms). A run within `FAST_SEND_WINDOW_MS` of it may send on its send claim alone; without it (a job
   * added by the reconciler, a flow behind a transfer) every run reads the ledger first.
   */
  queuedAtMs: z.number().int().nonnegative().optional(),
  /**
   * Wall time of the first and of the latest run of this job that failed because the ledger could not be
   * reached, in the outage under way (see `StartWorkersOptions.ledgerRetryForMs`).
   */
  ledgerDown: z
    .object({ sinceMs: z.number().int().nonnegative(), lastMs: z.number().int().nonnegative() })
    .optional(),
});
export type OrderJobData = z.infer<typeof OrderJobData>;

export interface OrderJobResult {
  status: 'filled';
  filledSizeBase: string;
  avgFillPriceUsd?: string;
}

/** Priorities (lower runs first); every job gets one, since BullMQ runs unprioritized jobs first. */
export const PRIORITY = { urgent: 1, normal: 10 } as const;

/**
 * Job options for order jobs, chosen for "effects exactly once":
 * - `attempts: 10` with exponential backoff (`delay` 500 ms) and 50% jitter: retryable venue errors
 *   (network, rate limit, halted, unknown outcome still unresolved) back off without herding. Every
 *   attempt starts by reconciling with the venue, so a retry never sends blindly.
 * - `removeOnComplete` keeps a week (and up to 100k jobs), `removeOnFail` a month: BullMQ ignores an
 *   `add` whose jobId (= intent id) still exists, so the dedup window is the retention window; the
 *   ledger (unique intent id, state machine) covers what is older.
 * - rejections are thrown as `UnrecoverableError` by the processor: never retried.
 */
export const ORDER_JOB_OPTIONS: JobsOptions = {
  attempts: 10,
  backoff: { type: 'exponential', delay: 500, jitter: 0.5 },
  removeOnComplete: { age: 7 * 24 * 3600, count: 100_000 },
  removeOnFail: { age: 30 * 24 * 3600 },
};

/** Worker settings an operator may tune (all ms unless said otherwise). */
export interface OrderWorkerSettings {
  /**
   * Lock on an active job; renewed every lockDuration/2 while the worker lives. After a crash the
   * job is detected stalled within about lockDuration + stalledInterval.
   * @defaultValue 30000
   */
  lockDuration?: number;
  /** How often workers look for stalled jobs. @defaultValue 15000 */
  stalledInterval?: number;
  /** Parallel jobs per worker (per venue queue). @defaultValue 8 */
  concurrency?: number;
}

/**
 * BullMQ worker options. `maxStalledCount: 0`: a job whose worker died is moved to *failed*, not
 * re-run blindly; the reconciler then retries it, and the retried run first asks the venue
 * (`getOrderByClientId`) what became of the order.
 */
export function orderWorkerOptions(
  s: OrderWorkerSettings = {},
): Pick<WorkerOptions, 'lockDuration' | 'stalledInterval' | 'maxStalledCount' | 'concurrency'> {
  return {
    lockDuration: s.lockDuration ?? 30_000,
    stalledInterval: s.stalledInterval ?? 15_000,
    maxStalledCount: 0,
    concurrency: s.concurrency ?? 8,
  };
}
