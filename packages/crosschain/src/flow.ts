import { redact } from '@xhedge/core';
import {
  DelayedError,
  type FlowJob,
  type Job,
  type JobsOptions,
  type RedisOptions,
  UnrecoverableError,
  Worker,
} from 'bullmq';
import type { TransferExecutor, TransferRequest } from './paper-bridge.ts';
import { type TransferRecord, wasSent } from './tracker.ts';

/** Queue the transfer children of hedge flows run on. */
export const TRANSFER_QUEUE = 'xhedge-transfers';

export interface TransferThenHedgeFlow {
  transfer: TransferRequest;
  /** The hedge job (parent): it runs only after the transfer child completed, i.e. delivered. */
  hedge: {
    queueName: string;
    name: string;
    jobId: string;
    data: Record<string, unknown>;
    /** The hedge queue's own job options (attempts, backoff, priority, retention); `jobId` wins. */
    opts?: Omit<JobsOptions, 'jobId'>;
  };
  /** @defaultValue TRANSFER_QUEUE */
  transferQueue?: string;
  prefix?: string;
}

/** How long a finished transfer job stays in Redis, seconds: a week, as the order jobs (ORDER_JOB_OPTIONS). */
export const TRANSFER_KEEP_COMPLETED_S = 7 * 24 * 3600;
/** How long a failed transfer job stays, seconds: a month, as the order jobs. */
export const TRANSFER_KEEP_FAILED_S = 30 * 24 * 3600;

/**
 * One BullMQ flow: the hedge is the parent, the transfer its child. BullMQ keeps the parent in
 * `waiting-children` until the child completes, and the transfer job completes only on delivery, so
 * the hedge never runs before the collateral has arrived. A failed transfer fails the hedge.
 */
export function transferThenHedgeFlow(f: TransferThenHedgeFlow): FlowJob {
  const prefix = f.prefix === undefined ? {} : { prefix: f.prefix };
  return {
    name: f.hedge.name,
    queueName: f.hedge.queueName,
    data: f.hedge.data,
    opts: { ...f.hedge.opts, jobId: f.hedge.jobId },
    ...prefix,
    children: [
      {
        name: 'transfer',
        queueName: f.transferQueue ?? TRANSFER_QUEUE,
        data: f.transfer,
        opts: {
          jobId: f.transfer.transferId,
          failParentOnFailure: true,
          attempts: 3,
          backoff: { type: 'exponential', delay: 1000 },
          // kept as long as the order jobs are (the dedup window of its transfer id), then removed: without
          // it every finished transfer stayed in Redis for ever
          removeOnComplete: { age: TRANSFER_KEEP_COMPLETED_S, count: 100_000 },
          removeOnFail: { age: TRANSFER_KEEP_FAILED_S },
        },
        ...prefix,
      },
    ],
  };
}

export interface TransferWorkerOptions {
  executor: TransferExecutor;
  connection: RedisOptions;
  /** @defaultValue TRANSFER_QUEUE */
  queueName?: string;
  prefix?: string;
  /** How long a transfer job sleeps (delayed, not holding a worker) between delivery checks, ms. @defaultValue 1000 */
  recheckMs?: number;
  /** Wall-clock source for BullMQ's delay timestamps. @defaultValue Date.now */
  now?: () => number;
  /**
   * Called once a transfer has failed for good, before its job fails (and with it the hedge parent,
   * `failParentOnFailure`). Use it to close the hedge's ledger order: a failed parent job left
   * `queued` in the ledger looks like work to re-drive, and a retried parent would run without its
   * collateral. `parentJobId` is the hedge job id (the intent id in execution's queues). Called too
   * when the executor throws on the job's last attempt (unknown venue, bad amount, a reused id, a
   * store error): then there may be no `failed` record, only the error.
   */
  onFailed?: (failure: TransferFailure) => Promise<void>;
  /**
   * Sees the worker's own errors (its Redis connection refused or lost, a failed fetch of the next job:
   * BullMQ reconnects and goes on by itself), a few a second during a Redis outage, so a caller logging
   * them limits how often. The worker always has an `'error'` listener: without one BullMQ writes each
   * of these to `console.error`, beside the process's logger. @defaultValue ignored
   */
  onError?: (err: Error) => void;
}

export interface TransferFailure {
  transfer: TransferRequest;
  /** The `failed` record; absent when the executor threw instead (the record may not exist, or be stale). */
  record?: TransferRecord;
  /** Why: the record's error, or the message the executor threw. */
  error: string;
  parentJobId: string | undefined;
}

/**
 * Runs transfer jobs: sends once (idempotent on the transfer id), then re-checks delivery by moving
 * the job to delayed instead of blocking a worker. Completes with the delivered record; a failed
 * transfer is unrecoverable (no blind resend: the collateral may be in flight). A `timed-out` transfer
 * that was sent is still waited for (the collateral may land late, and then it is on the book): the
 * hedge parent runs after a late delivery, and it is the hedge's decision-age control that refuses it,
 * its age counted from its planning (runtime's `transferDeliveredAtMs` gives no delivery time for a
 * transfer delivered past its deadline).
 */
export function startTransferWorker(o: TransferWorkerOptions): Worker {
  const now = o.now ?? Date.now;
  const worker = new Worker(
    o.queueName ?? TRANSFER_QUEUE,
    async (job: Job<TransferRequest>, token?: string) => {
      let rec: TransferRecord;
      try {
        const known = await o.executor.status(job.data.transferId);
        // one never sent (left `planned`, or timed out so) goes to send, which sends it or refuses it; so
        // does one written `sent` whose debit was never made (`debitPending`: a crash, or a write saved
        // but reported failed): the bridge debits it only on a send and never delivers it before, so
        // only waiting on it failed it at its deadline with its hedge, nothing moved. One whose debit an
        // earlier process began (`debitBegunAtMs`) is failed there as unknown, never debited again
        const unsent =
          !known ||
          known.state === 'planned' ||
          (known.state === 'timed-out' && !wasSent(known)) ||
          (known.debitPending === true && known.state !== 'failed' && known.state !== 'delivered');
        rec = unsent ? await o.executor.send(job.data) : known;
      } catch (err) {
        // no retry left (BullMQ's rule, Job.shouldRetryJob): the job and its hedge parent fail with err
        const unrecoverable = err instanceof Error && err.name === 'UnrecoverableError';
        if (unrecoverable || job.attemptsMade + 1 >= (job.opts.attempts ?? 1))
          await o.onFailed?.({
            transfer: job.data,
            // goes to the log and the ledger: a driver's message may echo a URL with its credentials
            error: redact(err instanceof Error ? err.message : String(err)),
            parentJobId: job.parent?.id,
          });
        throw err;
      }
      if (rec.state === 'delivered') return rec;
      if (rec.state === 'failed') {
        // the record's error (a venue's message, kept as it was thrown) is redacted like a thrown one
        const error = redact(rec.error ?? 'unknown');
        await o.onFailed?.({ transfer: job.data, record: rec, error, parentJobId: job.parent?.id });
        throw new UnrecoverableError(`transfer ${rec.transferId} failed: ${error}`);
      }
      await job.updateProgress({ state: rec.state, guid: rec.guid });
      await job.moveToDelayed(now() + (o.recheckMs ?? 1000), token);
      throw new DelayedError();
    },
    { connection: o.connection, ...(o.prefix === undefined ? {} : { prefix: o.prefix }), maxStalledCount: 0 },
  );
  const onError = o.onError;
  worker.on('error', (err) => {
    try {
      onError?.(err);
    } catch {
      // a caller's listener that throws would have BullMQ emit that again, then print it
    }
  });
  return worker;
}
