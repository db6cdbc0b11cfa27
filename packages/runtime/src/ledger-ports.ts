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
import { expiryDateToMs, XhedgeError } from '@xhedge/core';
import type { GreekTotals, RiskSnapshot } from '@xhedge/risk';
import type { Ledger, LedgerIntent, LedgerOrder, RiskSnapshotRecord } from '@xhedge/store';
import { type AttributionPoint, attributeSeries, type TimedFill } from '@xhedge/strategy';
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
 * Most intervals a P&L attribution reads snapshots for (see {@link pnlPort}): 2 h steps over 30 days,
 * 4 min over a day. A 30-day range of the paper profile (a snapshot stored every 5 s: 518,400) then
 * reads 361 snapshots, about 0.3 s on Postgres.
 */
export const PNL_MAX_INTERVALS = 360;
/** Most option expiries inside a sampled range that get a boundary of their own (two snapshots each). */
export const PNL_MAX_EXPIRY_BOUNDARIES = 64;
/**
 * Time a sampled range may spend reading snapshots, ms: past it no further reads start and the answer
 * says how many steps it read (coarse to fine, so those make an even grid). Normally far from reached;
 * it bounds the answer where the store plans the reads badly (PGlite without statistics: a read can
 * scan the table).
 */
export const PNL_SAMPLING_BUDGET_MS = 600;
/** Snapshot reads of a sampled range in flight at once. */
const PROBE_CONCURRENCY = 8;
/** The store's largest page. */
const STORE_MAX_LIMIT = 5000;

type StoredSnapshot = RiskSnapshot & { bookEquityUsd?: unknown };
interface Point {
  seq: number;
  asOfMs: number;
  snapshot: StoredSnapshot;
}

function point(r: RiskSnapshotRecord): Point {
  return { seq: r.seq, asOfMs: r.asOfMs, snapshot: r.snapshot as StoredSnapshot };
}

/**
 * Runs `fn` over `items` in their order, at most `limit` at once, starting none once `until()` is false;
 * the answers of those run, in the items' order (undefined for those not run).
 */
async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (t: T) => Promise<R>,
  until: () => boolean = () => true,
): Promise<(R | undefined)[]> {
  const out: (R | undefined)[] = new Array(items.length).fill(undefined);
  let next = 0;
  const worker = async () => {
    while (next < items.length && until()) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** 1 .. n−1 coarse to fine: n/2 first, then the quarters, the eighths... (each once). */
function coarseToFine(n: number): number[] {
  let top = 1;
  while (top * 2 < n) top *= 2;
  const out: number[] = [];
  for (let s = top; s >= 1; s /= 2) for (let k = s; k < n; k += 2 * s) out.push(k);
  return out;
}

/** Book equity stored with a snapshot (`bookEquityUsd`, USD), when there is a finite one. */
function equityOf(s: StoredSnapshot): number | undefined {
  const v = s.bookEquityUsd;
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

interface RangePoints {
  points: Point[];
  /** How the snapshots were chosen, in words. */
  sampling: string;
  sampled: boolean;
}

/**
 * The snapshots a range is attributed over, oldest first. Every one in the range when it holds at most
 * `maxIntervals` + 1 (known from the first and last seq: no count query), else a sample: the first and
 * the last, the first at or after the start of each of `maxIntervals` equal steps between them (a step
 * without one near its start, a gap in the record, merges into the one before), and around each option
 * expiry inside the range the last snapshot before it and the first at or after it, so that no interval
 * but the one the store itself has across the expiry carries an expiring option's Greeks past it.
 */
async function rangePoints(
  ledger: Ledger,
  fromMs: number,
  toMsExclusive: number,
  maxIntervals: number,
  budgetMs: number,
): Promise<RangePoints> {
  const range = { fromMs, toMs: toMsExclusive, limit: 1 };
  const [oldest, newest] = await Promise.all([
    ledger.riskSnapshotHistory({ ...range, oldestFirst: true }),
    ledger.riskSnapshotHistory(range),
  ]);
  const a = oldest[0];
  const b = newest[0];
  if (!a || !b) return { points: [], sampling: 'no snapshot in the range', sampled: false };
  if (a.seq === b.seq) return { points: [point(a)], sampling: 'one snapshot in the range', sampled: false };
  const bySeq = new Map<number, Point>();
  const add = (rows: readonly RiskSnapshotRecord[] | undefined) => {
    for (const r of rows ?? []) bySeq.set(r.seq, point(r));
  };
  const ordered = () => [...bySeq.values()].sort((x, y) => x.asOfMs - y.asOfMs || x.seq - y.seq);
  // every row of the range has a seq between the oldest's and the newest's, each its own
  if (b.seq - a.seq <= maxIntervals) {
    add(await ledger.riskSnapshotHistory({ fromMs, toMs: toMsExclusive, limit: b.seq - a.seq + 1 }));
    return { points: ordered(), sampling: `every snapshot in the range (${bySeq.size})`, sampled: false };
  }
  add([a, b]);
  const started = performance.now();
  const inBudget = () => performance.now() - started < budgetMs;
  const t0 = Math.min(a.asOfMs, b.asOfMs);
  const t1 = Math.max(a.asOfMs, b.asOfMs);
  const stepMs = (t1 - t0) / maxIntervals;
  // The store orders a time range by seq, and Postgres, expecting many rows in a range, walks the seq
  // index instead of the time index: from the first row of the table until it meets the range (a read
  // near the end of 30 days at 5 s took 90 ms, 720 of them 10 s). So each read looks in a window it
  // expects few rows in (seq span / time span bounds the rows stored), widened 4× while it finds none,
  // up to √(seq span)/2 seqs, below where the planner turns; past that the step counts as a gap.
  const seqSpan = b.seq - a.seq;
  const msPerSeq = (t1 - t0) / seqSpan;
  const widestMs = Math.max(msPerSeq, (Math.sqrt(seqSpan) / 2) * msPerSeq);
  let windowMs = 4 * msPerSeq;
  const probe = async (lo: number, hi: number, oldestFirst: boolean) => {
    let w = Math.max(1, Math.ceil(Math.min(windowMs, widestMs)));
    for (;;) {
      const r = await ledger.riskSnapshotHistory({
        fromMs: oldestFirst ? lo : Math.max(lo, hi - w),
        toMs: oldestFirst ? Math.min(hi, lo + w) : hi,
        limit: 1,
        oldestFirst,
      });
      if (r.length > 0) {
        windowMs = w;
        return r;
      }
      if (w >= hi - lo || w >= widestMs) return r;
      w = Math.ceil(Math.min(w * 4, widestMs));
    }
  };
  const steps = coarseToFine(maxIntervals);
  const probes = await mapLimit(
    steps,
    PROBE_CONCURRENCY,
    (k) => probe(Math.ceil(t0 + k * stepMs), Math.ceil(t0 + (k + 1) * stepMs), true),
    inBudget,
  );
  const stepsRead = probes.filter((r) => r !== undefined).length;
  for (const r of probes) add(r);
  // option expiries strictly inside the span, from the options the sampled snapshots hold
  const expiries = new Set<number>();
  for (const p of bySeq.values())
    for (const u of Object.values(p.snapshot.underlyings ?? {}))
      for (const date of Object.keys(u.vegaByExpiry ?? {})) {
        const e = expiryDateToMs(date);
        if (typeof e === 'number' && e > t0 && e <= t1 && e > p.asOfMs) expiries.add(e);
      }
  const all = [...expiries].sort((x, y) => x - y);
  const bounded = all.slice(0, PNL_MAX_EXPIRY_BOUNDARIES);
  const sampledTimes = ordered().map((p) => p.asOfMs);
  const around = await mapLimit(
    bounded,
    PROBE_CONCURRENCY,
    async (e) => {
      // between the sampled snapshots on either side of the expiry
      const i = sampledTimes.findIndex((t) => t >= e);
      const lo = sampledTimes[i - 1] ?? t0;
      const hi = sampledTimes[i] ?? t1;
      const [before, after] = await Promise.all([probe(lo, e, false), probe(e, hi + 1, true)]);
      return [...before, ...after];
    },
    inBudget,
  );
  const expiriesRead = around.filter((r) => r !== undefined).length;
  for (const r of around) add(r);
  const points = ordered();
  const cut: string[] = [];
  if (stepsRead < steps.length)
    cut.push(`${stepsRead} of the ${steps.length} step starts read, coarse to fine`);
  if (expiriesRead < all.length) cut.push(`${expiriesRead} of the ${all.length} expiries read`);
  return {
    points,
    sampled: true,
    sampling:
      `${points.length} of seq ${a.seq}..${b.seq}: the first and last, the first at or after the start ` +
      `of each of ${maxIntervals} equal steps of ${Math.round(stepMs / 1000)} s (within ` +
      `${Math.round(widestMs / 1000)} s of it, else the step merges into the one before), and the last ` +
      'before and the first at or after each option expiry; theta per expiry stops at that expiry in ' +
      `every interval${cut.length ? ` (within the ${budgetMs} ms budget: ${cut.join(', ')})` : ''}`,
  };
}

/**
 * P&L attribution of a range, snapshot to snapshot, as a risk desk explains P&L: each interval between
 * two stored risk snapshots from the Greeks at its start, with its own spot and vol move, its time
 * (theta per option expiry at most to that expiry: strategy's `thetaByExpiry`), funding at its start's
 * rate and the hedge fills in it (fees, gas, and slippage against the price the intent was planned at),
 * then summed (strategy's `attributeSeries`). Over a long range one set of Greeks says nothing: the
 * book's hedges trade and its Greeks move with spot, vol and time. The work is bounded: at most
 * `maxIntervals` intervals, sampled as `rangePoints` says (`sampling` in the answer), plus two snapshots
 * around each option expiry in the range.
 *
 * `totalUsd` is the explained P&L. The residual, `unexplainedUsd`, is the actual change of the book's
 * equity from the first snapshot to the last (`actualUsd`) minus it: it needs the book equity stored
 * with both snapshots (`bookEquityUsd`) and the whole book (no `underlying`: equity is not split by
 * underlying); otherwise `residual` says why it is not known. With fewer than two snapshots in the range
 * there is nothing to attribute: all 0 and `note` says so.
 */
export function pnlPort(
  ledger: Ledger,
  opts: {
    /** @defaultValue {@link PNL_MAX_INTERVALS} */
    maxIntervals?: number;
    /** @defaultValue {@link PNL_SAMPLING_BUDGET_MS} */
    samplingBudgetMs?: number;
  } = {},
): PnlPort {
  const maxIntervals = opts.maxIntervals ?? PNL_MAX_INTERVALS;
  const budgetMs = opts.samplingBudgetMs ?? PNL_SAMPLING_BUDGET_MS;
  if (!(budgetMs > 0)) throw new RangeError(`samplingBudgetMs must be > 0, got ${budgetMs}`);
  if (!Number.isInteger(maxIntervals) || maxIntervals < 1 || maxIntervals >= STORE_MAX_LIMIT)
    throw new RangeError(
      `maxIntervals must be an integer from 1 to ${STORE_MAX_LIMIT - 1}, got ${maxIntervals}`,
    );
  return {
    attribution: async (q): Promise<PnlView> => {
      if (!(Number.isFinite(q.fromMs) && Number.isFinite(q.toMs)) || q.toMs < q.fromMs)
        throw new XhedgeError(
          'VALIDATION',
          `P&L range: toMs ${q.toMs} must not be before fromMs ${q.fromMs}`,
          {
            details: { fromMs: q.fromMs, toMs: q.toMs },
          },
        );
      // The ledger's upper bound is exclusive; the API's is inclusive.
      const { points, sampling, sampled } = await rangePoints(
        ledger,
        q.fromMs,
        q.toMs + 1,
        maxIntervals,
        budgetMs,
      );
      const first = points[0];
      const last = points[points.length - 1];
      const base = {
        fromMs: q.fromMs,
        toMs: q.toMs,
        fromSeq: first?.seq ?? null,
        toSeq: last?.seq ?? null,
        snapshots: points.length,
        intervals: Math.max(0, points.length - 1),
        sampled,
        sampling,
      };
      if (!first || !last || points.length < 2)
        return {
          ...base,
          totalUsd: 0,
          byUnderlying: {},
          note: first
            ? `nothing to attribute: one risk snapshot (seq ${first.seq}) between fromMs and toMs; attribution needs two`
            : 'nothing to attribute: no risk snapshot between fromMs and toMs',
        };
      // every fill from the first snapshot to the last, each with its intent's underlying and reference
      // price, in one query
      const fills = await ledger.fillsWithIntent({ fromMs: first.asOfMs, toMs: last.asOfMs + 1 });
      const underlyings = new Set<string>();
      for (const p of points)
        for (const u of Object.keys(p.snapshot.underlyings ?? {}))
          if (!q.underlying || u === q.underlying) underlyings.add(u);
      // a fill's costs count even when no snapshot held its underlying
      for (const f of fills)
        if (!q.underlying || f.underlying === q.underlying) underlyings.add(f.underlying);
      const byUnderlying: Record<string, Record<string, number>> = {};
      let totalUsd = 0;
      for (const u of [...underlyings].sort()) {
        const series: AttributionPoint[] = points.map((p) => ({
          asOfMs: p.asOfMs,
          risk: p.snapshot.underlyings?.[u],
        }));
        const uFills: TimedFill[] = fills.flatMap((f) =>
          f.underlying === u
            ? [
                {
                  tsMs: f.tsMs,
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
        const r = attributeSeries(series, uFills);
        byUnderlying[u] = {
          ...r.attribution,
          intervals: r.intervals,
          intervalsWithoutGreeks: r.intervalsWithoutGreeks,
        };
        totalUsd += r.attribution.totalUsd;
      }
      const view: PnlView = { ...base, totalUsd, byUnderlying };
      const eqFirst = equityOf(first.snapshot);
      const eqLast = equityOf(last.snapshot);
      if (q.underlying)
        view.residual =
          'not known for one underlying: the book equity it is measured from covers the whole book';
      else if (eqFirst === undefined || eqLast === undefined)
        view.residual =
          `not known: no book equity (bookEquityUsd) stored with snapshot seq ${eqFirst === undefined ? first.seq : last.seq}, ` +
          'so the actual P&L of the range is not on record';
      else {
        const actualUsd = eqLast - eqFirst;
        view.actualUsd = actualUsd;
        view.unexplainedUsd = actualUsd - totalUsd;
        view.residual =
          'actual change of the book equity from the first snapshot to the last, minus the explained total';
      }
      return view;
    },
  };
}
