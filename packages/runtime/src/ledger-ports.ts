import type {
  AuditPort,
  HedgeJobView,
  HedgePlanView,
  HedgesPort,
  PnlPort,
  PnlView,
  RiskPort,
  RiskSliceView,
  RiskSnapshotView,
} from '@xhedge/api';
import { XhedgeError } from '@xhedge/core';
import type { GreekTotals, RiskSnapshot } from '@xhedge/risk';
import type { Ledger, LedgerIntent, LedgerOrder } from '@xhedge/store';
import { type AttributionFill, attributePnl } from '@xhedge/strategy';
import type { SnapshotBus } from './snapshot-bus.ts';

/** Ledger order → the API's job view: status, attempts and the outcome in words. */
export function jobView(o: LedgerOrder, planId: string): HedgeJobView {
  const filled = Number(o.filledSizeBase);
  let outcome: string | undefined;
  if (o.error) outcome = `${o.status}: ${o.error}`;
  else if (filled > 0) outcome = `${o.status} ${o.filledSizeBase} @ ${o.avgFillPriceUsd ?? '?'}`;
  const v: HedgeJobView = {
    id: o.intentId,
    planId,
    clientOrderId: o.clientOrderId,
    underlying: o.underlying,
    venue: o.venue,
    instrument: o.instrument,
    side: o.side,
    sizeBase: o.sizeBase,
    status: o.status,
    attempts: o.sendAttempts,
    filledSizeBase: o.filledSizeBase,
    updatedAtMs: o.updatedAtMs,
  };
  if (outcome !== undefined) v.outcome = outcome;
  if (o.avgFillPriceUsd !== undefined) v.avgFillPriceUsd = o.avgFillPriceUsd;
  return v;
}

/** Intents of one plan → the API's plan view. */
function planView(intents: readonly LedgerIntent[]): HedgePlanView | undefined {
  const first = intents[0];
  if (!first) return undefined;
  return {
    planId: first.planId,
    underlying: first.underlying,
    createdAtMs: Math.min(...intents.map((i) => i.createdAtMs)),
    reason: first.reason,
    legs: intents.map((i) => ({
      id: i.id,
      venue: i.venue,
      chain: i.chain,
      instrument: i.instrument,
      side: i.side,
      sizeBase: i.sizeBase,
      orderType: i.orderType,
      referencePriceUsd: i.referencePriceUsd,
      urgency: i.urgency,
      status: i.status,
    })),
  };
}

function groupPlans(intents: readonly LedgerIntent[]): HedgePlanView[] {
  const byPlan = new Map<string, LedgerIntent[]>();
  for (const i of intents) {
    const list = byPlan.get(i.planId) ?? [];
    list.push(i);
    byPlan.set(i.planId, list);
  }
  return [...byPlan.values()].flatMap((l) => planView(l) ?? []).sort((a, b) => a.createdAtMs - b.createdAtMs);
}

function slice(
  s: RiskSnapshot,
  by: 'underlying' | 'venue' | 'chain',
  key: string,
): RiskSliceView | undefined {
  const underlyings: Record<string, GreekTotals> = {};
  for (const [u, r] of Object.entries(s.underlyings)) {
    if (by === 'underlying' && u === key) underlyings[u] = r;
    const part = by === 'venue' ? r.byVenue[key] : by === 'chain' ? r.byChain[key] : undefined;
    if (part) underlyings[u] = part;
  }
  if (Object.keys(underlyings).length === 0) return undefined;
  return { by, key, seq: s.seq, asOfMs: s.asOfMs, underlyings };
}

/** The API's risk port over the snapshot bus and the ledger's snapshot history. */
export function riskPort(opts: {
  bus: SnapshotBus;
  ledger: Ledger;
  /** Full-revaluation grid with other shocks than the engine's own; undefined when no engine is in this process. */
  customGrid?: (
    underlying: string,
    spotShocksPct: number[],
    volShocksPts: number[],
  ) => Promise<RiskSnapshot | undefined>;
}): RiskPort {
  const { bus, ledger } = opts;
  return {
    latest: async () => bus.latest() as Promise<RiskSnapshotView | undefined>,
    history: async (r) => {
      const q: { fromMs?: number; toMs?: number; limit: number } = { limit: r.limit };
      if (r.fromMs !== undefined) q.fromMs = r.fromMs;
      // The ledger's upper bound is exclusive; the API's is inclusive.
      if (r.toMs !== undefined) q.toMs = r.toMs + 1;
      const rows = await ledger.riskSnapshotHistory(q);
      return rows.reverse().map((x) => x.snapshot as RiskSnapshotView);
    },
    slice: async (by, key) => {
      const s = await bus.latest();
      return s ? slice(s, by, key) : undefined;
    },
    scenarioGrid: async (q) => {
      const s = opts.customGrid
        ? await opts.customGrid(q.underlying, q.spotShocksPct, q.volShocksPts)
        : await bus.latest();
      const u = s?.underlyings[q.underlying];
      if (!s || !u) throw new XhedgeError('NOT_FOUND', `no risk for underlying ${q.underlying}`);
      const grid = u.scenarios;
      if (!grid)
        throw new XhedgeError('NOT_FOUND', `no scenario grid for ${q.underlying} in snapshot ${s.seq}`);
      return { underlying: q.underlying, asOfMs: s.asOfMs, ...grid };
    },
    subscribe: (fn) => bus.subscribe(fn),
  };
}

/** The API's hedges port over the ledger; `cancel` comes from execution. */
export function hedgesPort(opts: {
  ledger: Ledger;
  cancel: (intentId: string, actor: string) => Promise<void>;
}): HedgesPort {
  const { ledger } = opts;
  const getJob = async (id: string): Promise<HedgeJobView | undefined> => {
    const [intent, order] = await Promise.all([ledger.getIntent(id), ledger.getOrderByIntent(id)]);
    return intent && order ? jobView(order, intent.planId) : undefined;
  };
  return {
    listPlans: async (r) => {
      const q: { fromMs?: number; toMs?: number; limit: number } = { limit: Math.min(5000, r.limit * 4) };
      if (r.fromMs !== undefined) q.fromMs = r.fromMs;
      if (r.toMs !== undefined) q.toMs = r.toMs + 1;
      return groupPlans(await ledger.listIntents(q)).slice(-r.limit);
    },
    getPlan: async (planId) => planView(await ledger.listIntents({ planId, limit: 5000 })),
    listJobs: async (q) => {
      const orders = await ledger.listOrdersWithPlan({
        limit: q.limit,
        ...(q.fromMs !== undefined ? { fromMs: q.fromMs } : {}),
        ...(q.toMs !== undefined ? { toMs: q.toMs + 1 } : {}),
        ...(q.status ? { status: q.status } : {}),
        ...(q.planId ? { planId: q.planId } : {}),
        ...(q.venue ? { venue: q.venue } : {}),
        ...(q.underlying ? { underlying: q.underlying } : {}),
      });
      return orders.map((o) => jobView(o, o.planId));
    },
    getJob,
    cancelJob: async (id, actor) => {
      const job = await getJob(id);
      if (!job) throw new XhedgeError('NOT_FOUND', `no job ${id}`, { details: { id } });
      await opts.cancel(id, `operator:${actor.name}`);
      const after = await getJob(id);
      if (!after) throw new XhedgeError('NOT_FOUND', `no job ${id}`, { details: { id } });
      return after;
    },
  };
}

/** The API's audit port over the ledger's audit table. */
export function auditPort(ledger: Ledger): AuditPort {
  return {
    record: (e) =>
      ledger.audit({ actor: `operator:${e.actor}`, action: e.action, subject: e.target, details: e.details }),
    list: async (r) => {
      const q: { fromMs?: number; toMs?: number; limit: number } = { limit: r.limit };
      if (r.fromMs !== undefined) q.fromMs = r.fromMs;
      if (r.toMs !== undefined) q.toMs = r.toMs + 1;
      const rows = await ledger.listAudit(q);
      return rows.reverse().map((a) => ({
        id: String(a.id),
        atMs: a.atMs,
        actor: a.actor,
        action: a.action,
        target: a.subject ?? '',
        details: a.details,
      }));
    },
  };
}

/**
 * P&L attribution between the first and last snapshot of a range (strategy's `attributePnl`: Taylor
 * explain from the first snapshot's Greeks, funding at the first snapshot's rate, and the fees, gas and
 * slippage of the hedge fills in the range against the prices their intents were planned at).
 */
export function pnlPort(ledger: Ledger): PnlPort {
  return {
    attribution: async (q): Promise<PnlView> => {
      // the first and the last snapshot of the range, however many lie between (two rows, not a page
      // of the newest: a long range was attributed over its last page only)
      const range = { fromMs: q.fromMs, toMs: q.toMs + 1, limit: 1 };
      const [oldest, newest] = await Promise.all([
        ledger.riskSnapshotHistory({ ...range, oldestFirst: true }),
        ledger.riskSnapshotHistory(range),
      ]);
      const first = oldest[0]?.snapshot as RiskSnapshot | undefined;
      const last = newest[0]?.snapshot as RiskSnapshot | undefined;
      const byUnderlying: Record<string, Record<string, number>> = {};
      let totalUsd = 0;
      if (first && last) {
        // every fill between them, each with its intent's underlying and reference price, in one query
        const fills = await ledger.fillsWithIntent({ fromMs: first.asOfMs, toMs: last.asOfMs + 1 });
        const elapsedMs = last.asOfMs - first.asOfMs;
        for (const [u, a] of Object.entries(first.underlyings)) {
          if (q.underlying && u !== q.underlying) continue;
          const b = last.underlyings[u];
          if (!b) continue;
          const uFills: AttributionFill[] = fills.flatMap((f) =>
            f.underlying === u
              ? [
                  {
                    side: f.side,
                    sizeBase: Number(f.sizeBase),
                    priceUsd: Number(f.priceUsd),
                    referencePriceUsd: f.referencePriceUsd,
                    feeUsd: f.feeUsd,
                    gasUsd: f.gasUsd,
                  },
                ]
              : [],
          );
          const r = attributePnl({
            start: a,
            endSpotUsd: b.spotUsd,
            endVolDecimal: b.volDecimal,
            elapsedMs,
            fundingUsd: a.fundingUsdPerHour * (elapsedMs / 3_600_000),
            fills: uFills,
          });
          byUnderlying[u] = { ...r };
          totalUsd += r.totalUsd;
        }
      }
      return {
        fromMs: q.fromMs,
        toMs: q.toMs,
        totalUsd,
        byUnderlying,
        fromSeq: first?.seq ?? null,
        toSeq: last?.seq ?? null,
      };
    },
  };
}
