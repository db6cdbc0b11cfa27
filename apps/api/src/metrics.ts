import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { ApiPorts } from './ports.ts';
import type { BreakerView, KillSwitchView, RiskSnapshotView } from './schemas.ts';

/** The hedge metrics the run feeds as jobs finish; the rest is read from the ports at scrape time. */
export interface HedgeMetrics {
  observeHedge(h: {
    venue: string;
    underlying: string;
    /** Final order status: filled, rejected, failed, cancelled, ... */
    status: string;
    /** All-in cost paid (fee + impact + gas), USD; omitted when nothing traded. */
    costUsd?: number;
    /** From queueing the intent to its final status, ms. */
    latencyMs?: number;
  }): void;
}

const GREEKS = ['delta', 'deltaUsd', 'gamma', 'vegaPerVolPoint', 'thetaPerDay'] as const;
const BREAKER_STATE = { closed: 0, 'half-open': 1, open: 2 } as const;
const QUEUE_STATES = ['waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized'] as const;

export interface MetricsOptions {
  /**
   * Longest wait for one read a scrape makes (Redis: kill switches, breakers, queue counts; the ledger; the
   * newest snapshot), ms. A read that fails or does not answer by then leaves its own series out of that
   * scrape and sets `xhedge_dependency_up` of its store to 0; the rest is served (200). @defaultValue 2000
   */
  readTimeoutMs?: number;
}

/** What one scrape read, each part on its own: undefined where the read failed or timed out. */
interface ScrapeReads {
  snapshot: { value: RiskSnapshotView | undefined } | undefined;
  killSwitches: KillSwitchView[] | undefined;
  breakers: BreakerView[] | undefined;
  queues: { name: string; counts: Record<string, number> | undefined }[];
  /** Whether the ledger answered a one-row read. */
  ledger: boolean;
}

/** `fn()`, or undefined when it fails or has not answered within `ms` (its late answer is dropped). */
async function bounded<T>(fn: () => Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const read = (async () => fn())();
  read.catch(() => {});
  try {
    return await Promise.race([
      read,
      new Promise<undefined>((r) => {
        timer = setTimeout(() => r(undefined), ms);
      }),
    ]);
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Registers xhedge's Prometheus metrics on `registry`: book Greeks per underlying, breaker and kill-switch
 * states and queue depth (read from the ports when scraped), whether Redis and the ledger answered the
 * scrape (`xhedge_dependency_up`), and hedge counts, cost and latency (fed by the run through the returned
 * {@link HedgeMetrics}). A store that is down never fails the scrape: the series read from it are left
 * out and `xhedge_dependency_up` says which store it was (a 503 on every scrape made every alert resolve).
 */
export function registerMetrics(
  registry: Registry,
  ports: Omit<ApiPorts, 'metrics'>,
  o: MetricsOptions = {},
): HedgeMetrics {
  const ms = o.readTimeoutMs ?? 2000;
  // One set of reads per scrape, shared by the collectors (prom-client runs them all at once): each store
  // is read once, and the dependency gauge says what those reads met.
  let underway: Promise<ScrapeReads> | undefined;
  const readAll = async (): Promise<ScrapeReads> => {
    const [snapshot, killSwitches, breakers, queues, ledger] = await Promise.all([
      bounded(async () => ({ value: await ports.risk.latest() }), ms),
      bounded(() => ports.controls.killSwitches(), ms),
      bounded(() => ports.controls.breakers(), ms),
      Promise.all(
        (ports.queues ?? []).map(async (q) => ({
          name: q.name,
          counts: await bounded(() => q.getJobCounts(...QUEUE_STATES), ms),
        })),
      ),
      bounded(async () => {
        await ports.audit.list({ limit: 1 });
        return true;
      }, ms),
    ]);
    return { snapshot, killSwitches, breakers, queues, ledger: ledger === true };
  };
  const reads = (): Promise<ScrapeReads> => {
    underway ??= readAll().finally(() => {
      underway = undefined;
    });
    return underway;
  };
  new Gauge({
    name: 'xhedge_dependency_up',
    help: 'Whether a store the run depends on answered this scrape (1) or not (0): redis (kill switches, breakers, queue counts all read) and database (a one-row read of the ledger), each read bounded in time',
    labelNames: ['dependency'],
    registers: [registry],
    async collect() {
      const r = await reads();
      const redis =
        r.killSwitches !== undefined && r.breakers !== undefined && r.queues.every((q) => q.counts);
      this.set({ dependency: 'redis' }, redis ? 1 : 0);
      this.set({ dependency: 'database' }, r.ledger ? 1 : 0);
    },
  });
  new Gauge({
    name: 'xhedge_book_greek',
    help: 'Book Greeks per underlying from the newest risk snapshot (project units, see the greek label)',
    labelNames: ['underlying', 'greek'],
    registers: [registry],
    async collect() {
      this.reset();
      const snap = (await reads()).snapshot?.value;
      if (!snap) return;
      for (const [u, g] of Object.entries(snap.underlyings)) {
        for (const greek of GREEKS) this.set({ underlying: u, greek }, g[greek]);
      }
    },
  });
  new Gauge({
    name: 'xhedge_risk_snapshot_seq',
    help: 'Sequence number of the newest risk snapshot (0 before the first; absent while it cannot be read)',
    registers: [registry],
    async collect() {
      const snap = (await reads()).snapshot;
      if (snap) this.set(snap.value?.seq ?? 0);
      else this.remove({});
    },
  });
  new Gauge({
    name: 'xhedge_greeks_divergences',
    help: "Held options whose Greek, as a venue publishes it, differs from the model's beyond tolerance in the newest risk snapshot, per venue and Greek",
    labelNames: ['venue', 'greek'],
    registers: [registry],
    async collect() {
      this.reset();
      const snap = (await reads()).snapshot?.value;
      // reset each scrape: a label set exists only while its divergences do (absent = none). The view
      // keeps the snapshot's other fields unchecked: an entry without a venue and a Greek is not counted
      const list = snap?.divergences;
      if (!Array.isArray(list)) return;
      for (const d of list as unknown[]) {
        const { venue, greek } = (d ?? {}) as { venue?: unknown; greek?: unknown };
        if (typeof venue === 'string' && typeof greek === 'string') this.inc({ venue, greek });
      }
    },
  });
  new Gauge({
    name: 'xhedge_breaker_state_now',
    help: 'Circuit breaker state read from Redis at scrape time: 0 closed, 1 half-open, 2 open (absent while Redis cannot be read: see xhedge_dependency_up)',
    labelNames: ['breaker'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const b of (await reads()).breakers ?? []) this.set({ breaker: b.name }, BREAKER_STATE[b.state]);
    },
  });
  new Gauge({
    name: 'xhedge_kill_switch_now',
    help: 'Kill switch engaged (1) per scope and target, read from Redis at scrape time (absent while Redis cannot be read: see xhedge_dependency_up)',
    labelNames: ['scope', 'target'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const k of (await reads()).killSwitches ?? [])
        this.set({ scope: k.scope, target: k.target ?? '*' }, k.engaged ? 1 : 0);
    },
  });
  new Gauge({
    name: 'xhedge_queue_jobs',
    help: 'BullMQ jobs per queue and state (a queue Redis cannot count at scrape time is left out)',
    labelNames: ['queue', 'state'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const q of (await reads()).queues) {
        for (const [state, n] of Object.entries(q.counts ?? {})) this.set({ queue: q.name, state }, n);
      }
    },
  });
  const hedges = new Counter({
    name: 'xhedge_hedges_total',
    help: 'Hedge orders that reached a final status',
    labelNames: ['venue', 'underlying', 'status'],
    registers: [registry],
  });
  const cost = new Histogram({
    name: 'xhedge_hedge_cost_usd',
    help: 'All-in cost of executed hedge orders, USD',
    labelNames: ['venue', 'underlying'],
    buckets: [0.1, 1, 5, 10, 50, 100, 500, 1000, 5000, 20000],
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'xhedge_hedge_latency_seconds',
    help: 'From queueing a hedge intent to its final status, seconds',
    labelNames: ['venue'],
    // up to 15 min: a p95 past the top finite bucket is reported as that bucket's bound, so an alert on
    // "over 60 s" with 60 as the top bucket could never fire
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900],
    registers: [registry],
  });
  return {
    observeHedge(h) {
      hedges.inc({ venue: h.venue, underlying: h.underlying, status: h.status });
      if (h.costUsd !== undefined && Number.isFinite(h.costUsd))
        cost.observe({ venue: h.venue, underlying: h.underlying }, h.costUsd);
      if (h.latencyMs !== undefined && Number.isFinite(h.latencyMs))
        latency.observe({ venue: h.venue }, h.latencyMs / 1000);
    },
  };
}
