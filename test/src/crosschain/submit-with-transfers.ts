import { HedgeIntent, parseOrThrow } from '@xhedge/core';
import { transferThenHedgeFlow } from '@xhedge/crosschain';
import {
  clientOrderIdFor,
  type ExecutionService,
  type LegResult,
  ORDER_JOB_OPTIONS,
  type OrderJobData,
  orderQueueName,
  PRIORITY,
} from '@xhedge/execution';
import type { HedgePlan } from '@xhedge/routing';
import type { Ledger } from '@xhedge/store';
import type { FlowProducer } from 'bullmq';

export interface SubmitWithTransfersOptions {
  plan: HedgePlan;
  service: ExecutionService;
  ledger: Ledger;
  /** A FlowProducer on the execution queues' connection and prefix. */
  flows: FlowProducer;
  /** The execution queues' BullMQ prefix (the transfer queue shares it: flows stay in one prefix). */
  prefix: string;
  transferQueue?: string;
  actor?: string;
}

/**
 * Glue for plans whose legs wait for collateral moves, until `ExecutionService.submitPlan` takes
 * routing's `transfers` itself: `submitPlan` refuses a leg whose `dependsOn` names something that is
 * not a leg (RangeError), and the order worker cancels a leg whose dependency is not a filled ledger
 * order. So a transfer-gated leg goes the same way `submitPlan` takes a leg — `preQueueCheck`, ledger
 * intent (planned), BullMQ job, ledger `queued` — except that its job is the parent of a transfer
 * job (crosschain's `transferThenHedgeFlow`), and the transfer id is taken off its `dependsOn` (the
 * flow, not the ledger, holds that dependency). Legs without transfers go through `submitPlan`.
 */
export async function submitPlanWithTransfers(o: SubmitWithTransfersOptions): Promise<LegResult[]> {
  const actor = o.actor ?? 'orchestrator';
  const transfers = new Map(o.plan.transfers.map((t) => [t.id, t]));
  const gated = o.plan.legs.filter((l) => l.dependsOn.some((d) => transfers.has(d)));
  const plain = o.plan.legs.filter((l) => !gated.includes(l));
  const results: LegResult[] = plain.length
    ? await o.service.submitPlan({ planId: o.plan.planId, legs: plain })
    : [];
  for (const leg of gated) {
    const deps = leg.dependsOn.filter((d) => transfers.has(d));
    const rest = leg.dependsOn.filter((d) => !transfers.has(d));
    const transfer = transfers.get(deps[0] ?? '');
    if (!transfer || deps.length > 1 || rest.length > 0)
      throw new RangeError(`leg ${leg.id}: one transfer and no other dependency is all a flow can gate`);
    const intent = parseOrThrow(
      HedgeIntent,
      { ...leg, dependsOn: [] },
      `plan ${o.plan.planId} leg ${leg.id}`,
    );
    const clientOrderId = clientOrderIdFor(intent.id);
    const { created, order } = await o.ledger.recordIntent(intent, { clientOrderId, actor });
    if (!created && order.status !== 'planned') {
      results.push({ intentId: intent.id, clientOrderId, outcome: 'duplicate' });
      continue;
    }
    const verdict = await o.service.preQueueCheck(intent);
    if (!verdict.ok) {
      await o.ledger.transition(clientOrderId, 'cancelled', {
        actor,
        patch: { error: `blocked by ${verdict.control}: ${verdict.reason}` },
      });
      results.push({ intentId: intent.id, clientOrderId, outcome: 'blocked', ...verdict });
      continue;
    }
    const data: OrderJobData = { intent, clientOrderId };
    await o.flows.add(
      transferThenHedgeFlow({
        transfer: {
          transferId: transfer.id,
          fromVenue: transfer.fromVenue,
          toVenue: transfer.toVenue,
          asset: transfer.asset,
          amount: transfer.amount,
        },
        hedge: {
          queueName: orderQueueName(intent.venue),
          name: 'order',
          jobId: intent.id,
          data,
          opts: { ...ORDER_JOB_OPTIONS, priority: PRIORITY[intent.urgency] },
        },
        prefix: o.prefix,
        ...(o.transferQueue === undefined ? {} : { transferQueue: o.transferQueue }),
      }),
    );
    await o.ledger.transition(clientOrderId, 'queued', { actor });
    results.push({ intentId: intent.id, clientOrderId, outcome: 'queued' });
  }
  return results;
}
