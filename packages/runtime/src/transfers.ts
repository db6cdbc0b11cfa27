import { type HedgeIntent, redact } from '@xhedge/core';
import {
  startTransferWorker,
  type TransferExecutor,
  TransferRecord,
  transferThenHedgeFlow,
} from '@xhedge/crosschain';
import {
  type ConnectionOptions,
  type ControlResult,
  clientOrderIdFor,
  type ExecutionService,
  type LeaseHold,
  type LegResult,
  ORDER_JOB_OPTIONS,
  type OrderJobData,
  orderQueueName,
  PRIORITY,
} from '@xhedge/execution';
import type { CollateralTransfer } from '@xhedge/routing';
import type { Ledger } from '@xhedge/store';
import { FlowProducer, type Job, type Worker } from 'bullmq';
import type { PlanForExecution } from './planner.ts';

export interface TransferFlowsOptions {
  /** BullMQ connection options (not a shared client). */
  connection: ConnectionOptions;
  /** The run's queue prefix (the order queues' prefix). */
  queuePrefix: string;
  ledger: Ledger;
  service: ExecutionService;
  /** Ledger actor of the intents it records. @defaultValue `orchestrator` */
  actor?: string;
}

/**
 * Submits plans that move collateral first. Execution's `submitPlan` takes legs that depend on other
 * legs only; a leg that needs a collateral transfer runs instead as one BullMQ flow
 * (`transferThenHedgeFlow` of @xhedge/crosschain): the hedge job is the parent in its venue's order
 * queue, the transfer its child in the transfer queue, so BullMQ keeps the hedge waiting until the
 * transfer job completes, which happens only on delivery. The intent is written to the ledger (fenced
 * by the leader lease) and passes the same pre-queue controls as any leg before the flow is added; its
 * `dependsOn` on the transfer is dropped from the intent because the flow, not the ledger, holds that
 * dependency (the order worker checks `dependsOn` against ledger orders, and a transfer is not one).
 * Legs of the plan that need no transfer go through `submitPlan` as usual.
 */
export class TransferFlows {
  readonly #o: TransferFlowsOptions;
  readonly #flows: FlowProducer;

  constructor(o: TransferFlowsOptions) {
    this.#o = o;
    this.#flows = new FlowProducer({ connection: o.connection, prefix: o.queuePrefix });
  }

  async submit(plan: PlanForExecution, lease: LeaseHold): Promise<LegResult[]> {
    const transfers = new Map(plan.transfers.map((t) => [t.id, t]));
    const direct = plan.legs.filter((l) => !l.dependsOn.some((d) => transfers.has(d)));
    const results: LegResult[] = [];
    if (direct.length > 0)
      results.push(
        ...(await this.#o.service.submitPlan(
          { planId: plan.planId, legs: direct, ...(plan.netDelta ? { netDelta: plan.netDelta } : {}) },
          { lease },
        )),
      );
    // the plan's own checks hold for the legs behind a transfer too
    const whole = this.#o.service.checkPlan(plan);
    for (const leg of plan.legs) {
      const needs = leg.dependsOn.filter((d) => transfers.has(d));
      if (needs.length === 0) continue;
      if (needs.length > 1)
        throw new RangeError(`leg ${leg.id} needs ${needs.length} transfers; a flow carries one`);
      const t = transfers.get(needs[0] as string) as CollateralTransfer;
      const intent = { ...leg, dependsOn: leg.dependsOn.filter((d) => !transfers.has(d)) };
      const clientOrderId = clientOrderIdFor(intent.id);
      // From its ledger write to its flow add the leg is marked as being produced, so the reconciler
      // does not take a slow submission (a pre-queue check's market-data read) for a dead producer's
      // orphan and cancel the hedge while its collateral moves.
      results.push(
        await this.#o.service.producing([clientOrderId], () =>
          this.#submitLeg(intent, clientOrderId, t, whole, lease),
        ),
      );
    }
    return results;
  }

  /** One leg behind a transfer: its ledger write, its pre-queue checks and its flow add (see `submit`). */
  async #submitLeg(
    intent: HedgeIntent,
    clientOrderId: string,
    t: CollateralTransfer,
    whole: ControlResult,
    lease: LeaseHold,
  ): Promise<LegResult> {
    const actor = this.#o.actor ?? 'orchestrator';
    const { created, order } = await this.#o.ledger.recordIntent(intent, {
      clientOrderId,
      actor,
      fence: { leaseName: lease.name, token: await lease.assertHeld() },
    });
    if (!created && order.status !== 'planned') {
      return { intentId: intent.id, clientOrderId, outcome: 'duplicate' };
    }
    const verdict = whole.ok ? await this.#o.service.preQueueCheck(intent) : whole;
    if (!verdict.ok) {
      // a flow added before a crash may be running it: claimed as blocked first, or reconciled there
      if (
        await this.#o.service.cancelUnsent(clientOrderId, {
          actor,
          error: `blocked by ${verdict.control}: ${verdict.reason}`,
        })
      ) {
        return { intentId: intent.id, clientOrderId, outcome: 'blocked', ...verdict };
      }
      return { intentId: intent.id, clientOrderId, outcome: 'duplicate' };
    }
    const data: OrderJobData = { intent, clientOrderId };
    await lease.assertHeld();
    await this.#flows.add(
      transferThenHedgeFlow({
        transfer: {
          transferId: t.id,
          fromVenue: t.fromVenue,
          toVenue: t.toVenue,
          asset: t.asset,
          amount: t.amount,
        },
        hedge: {
          queueName: orderQueueName(intent.venue),
          name: 'order',
          jobId: intent.id,
          data: data as unknown as Record<string, unknown>,
          opts: { ...ORDER_JOB_OPTIONS, priority: PRIORITY[intent.urgency] },
        },
        prefix: this.#o.queuePrefix,
      }),
    );
    await this.#o.ledger.transition(clientOrderId, 'queued', {
      actor,
      note: `after transfer ${t.id}: ${t.amount} ${t.asset} ${t.fromVenue} → ${t.toVenue}`,
    });
    return { intentId: intent.id, clientOrderId, outcome: 'queued' };
  }

  close(): Promise<void> {
    return this.#flows.close();
  }
}

export interface TransferWorkerRunOptions {
  executor: TransferExecutor;
  connection: ConnectionOptions;
  queuePrefix: string;
  ledger: Ledger;
  /** Cancels the hedge of a failed transfer (claimed as blocked first). */
  service: ExecutionService;
  /** Wall ms between delivery checks of a transfer in flight. @defaultValue 200 */
  recheckMs?: number;
  log: (level: 'warn' | 'error', msg: string, data?: Record<string, unknown>) => void;
  /**
   * The worker's own errors (Redis refused or lost: a few a second while it is down) are logged as a
   * streak: the first at once, then at most one line this often, counting the ones not logged. An error
   * after `errorSummaryEveryMs` without any starts a new streak. @defaultValue 30000
   */
  errorSummaryEveryMs?: number;
  /** Wall time for those streaks, ms. @defaultValue Date.now */
  nowMs?: () => number;
}

/**
 * The transfer worker's `onError`: its errors through the run's logger (never BullMQ's console.error),
 * one line per streak and then at most one per `everyMs` (a Redis outage gave 16 lines in 10 s).
 */
function workerErrorLog(
  log: TransferWorkerRunOptions['log'],
  everyMs: number,
  nowMs: () => number,
): (err: Error) => void {
  if (!Number.isFinite(everyMs) || everyMs < 0)
    throw new RangeError(`errorSummaryEveryMs must be a finite number of ms >= 0, got ${String(everyMs)}`);
  let streak:
    | { sinceMs: number; lastMs: number; loggedAtMs: number; errors: number; unlogged: number }
    | undefined;
  return (err) => {
    const now = nowMs();
    // the message as the logger has it: a driver's message may echo a URL with its credentials
    const error = redact(err.message);
    if (!streak || now - streak.lastMs >= everyMs) {
      streak = { sinceMs: now, lastMs: now, loggedAtMs: now, errors: 1, unlogged: 0 };
      log(
        'warn',
        'transfer worker error (its Redis connection, most often: BullMQ reconnects and goes on by itself)',
        { error, name: err.name },
      );
      return;
    }
    streak.lastMs = now;
    streak.errors++;
    streak.unlogged++;
    if (now - streak.loggedAtMs < everyMs) return;
    log('warn', `transfer worker: still failing, ${streak.unlogged} more errors`, {
      error,
      errors: streak.errors,
      sinceMs: streak.sinceMs,
    });
    streak.loggedAtMs = now;
    streak.unlogged = 0;
  };
}

/**
 * The worker side of transfer flows: runs the transfer jobs on the executor (the paper bridge), and when
 * a transfer fails for good, cancels the hedge order waiting for it in the ledger before its parent job
 * fails, so nothing re-drives a hedge whose collateral never arrived.
 */
export function startTransferJobs(o: TransferWorkerRunOptions): Worker {
  return startTransferWorker({
    executor: o.executor,
    connection: o.connection,
    prefix: o.queuePrefix,
    recheckMs: o.recheckMs ?? 200,
    onError: workerErrorLog(o.log, o.errorSummaryEveryMs ?? 30_000, o.nowMs ?? Date.now),
    // also when the executor threw on the last attempt: then there may be no record, only the error
    onFailed: async ({ transfer, record, error, parentJobId }) => {
      o.log('error', `collateral transfer ${transfer.transferId} failed`, {
        error,
        hedge: parentJobId,
        state: record?.state ?? 'unknown (the executor threw)',
      });
      if (!parentJobId) return;
      const order = await o.ledger.getOrderByIntent(parentJobId);
      if (order && (order.status === 'planned' || order.status === 'queued'))
        await o.service.cancelUnsent(order.clientOrderId, {
          actor: 'transfer-worker',
          error: `collateral transfer ${transfer.transferId} failed: ${error}`,
        });
    },
  });
}

/**
 * When the collateral of a transfer-then-hedge flow landed: the delivery time (run clock) of the
 * parent job's delivered transfer children, or undefined for a job without any. Given to the order
 * workers as `dependencyReadyAtMs`, so the pre-trade decision-age control measures a funded hedge from
 * the delivery instead of from its planning: a slow bridge does not get the hedge cancelled after the
 * collateral moved. The router still refuses bridges slower than `maxTransferLatencyMs` (run.ts: 80% of
 * `limits.staleAfterMs`), so the plan's sizing is never older than the staleness budget plus that.
 *
 * A late delivery does not count: when any transfer child was delivered after its deadline
 * (`deadlineMs`, the plan time plus the allowed latency) or went through `timed-out`, this is
 * undefined, so the hedge's age counts from its planning and the stale-data control refuses it once
 * that age passes `staleAfterMs` (its size and limit were decided before the transfer, possibly half an
 * hour ago). The transfer job itself
 * keeps waiting for a timed-out message that was sent, and completes when it lands: the collateral is
 * then on the book, where the next decision sees it; failing the job at the timeout instead would
 * cancel the hedge while its collateral may still arrive, and put the cancel on a path (the transfer
 * worker) that does not see the market. One rule, at the one place that decides a hedge's age.
 */
export async function transferDeliveredAtMs(job: Job): Promise<number | undefined> {
  let at: number | undefined;
  for (const v of Object.values(await job.getChildrenValues())) {
    const rec = TransferRecord.safeParse(v);
    if (!rec.success || rec.data.state !== 'delivered') continue;
    const delivered = rec.data.history.findLast((h) => h.state === 'delivered')?.atMs;
    if (delivered === undefined) continue;
    if (delivered > rec.data.deadlineMs || rec.data.history.some((h) => h.state === 'timed-out'))
      return undefined;
    at = Math.max(at ?? delivered, delivered);
  }
  return at;
}
