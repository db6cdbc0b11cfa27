import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { ApiPorts } from './ports.ts';

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

/**
 * Registers xhedge's Prometheus metrics on `registry`: book Greeks per underlying, breaker and kill-switch
 * states and queue depth (read from the ports when scraped), and hedge counts, cost and latency (fed by
 * the run through the returned {@link HedgeMetrics}).
 */
export function registerMetrics(registry: Registry, ports: Omit<ApiPorts, 'metrics'>): HedgeMetrics {
  new Gauge({
    name: 'xhedge_book_greek',
    help: 'Book Greeks per underlying from the newest risk snapshot (project units, see the greek label)',
    labelNames: ['underlying', 'greek'],
    registers: [registry],
    async collect() {
      this.reset();
      const snap = await ports.risk.latest();
      if (!snap) return;
      for (const [u, g] of Object.entries(snap.underlyings)) {
        for (const greek of GREEKS) this.set({ underlying: u, greek }, g[greek]);
      }
    },
  });
  new Gauge({
    name: 'xhedge_risk_snapshot_seq',
    help: 'Sequence number of the newest risk snapshot',
    registers: [registry],
    async collect() {
      const snap = await ports.risk.latest();
      this.set(snap?.seq ?? 0);
    },
  });
  new Gauge({
    name: 'xhedge_greeks_divergences',
    help: "Held options whose Greek, as a venue publishes it, differs from the model's beyond tolerance in the newest risk snapshot, per venue and Greek",
    labelNames: ['venue', 'greek'],
    registers: [registry],
    async collect() {
      this.reset();
      const snap = await ports.risk.latest();
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
    help: 'Circuit breaker state read from Redis at scrape time: 0 closed, 1 half-open, 2 open',
    labelNames: ['breaker'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const b of await ports.controls.breakers()) this.set({ breaker: b.name }, BREAKER_STATE[b.state]);
    },
  });
  new Gauge({
    name: 'xhedge_kill_switch_now',
    help: 'Kill switch engaged (1) per scope and target, read from Redis at scrape time',
    labelNames: ['scope', 'target'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const k of await ports.controls.killSwitches())
        this.set({ scope: k.scope, target: k.target ?? '*' }, k.engaged ? 1 : 0);
    },
  });
  new Gauge({
    name: 'xhedge_queue_jobs',
    help: 'BullMQ jobs per queue and state',
    labelNames: ['queue', 'state'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const q of ports.queues ?? []) {
        const counts = await q.getJobCounts(
          'waiting',
          'active',
          'delayed',
          'failed',
          'completed',
          'prioritized',
        );
        for (const [state, n] of Object.entries(counts)) this.set({ queue: q.name, state }, n);
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
