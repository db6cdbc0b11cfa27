import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Circuit breaker states (shared with breakers.ts, declared here to keep imports one-way). */
export type BreakerState = 'closed' | 'open' | 'half-open';

const STATE_VALUE: Record<BreakerState, number> = { closed: 0, 'half-open': 1, open: 2 };

/**
 * Execution metrics on their own prom-client registry (serve `registry.metrics()` from the API).
 * Every breaker transition and kill-switch action lands here as well as in the ledger.
 */
export class ExecutionMetrics {
  readonly registry: Registry;
  readonly breakerState: Gauge<'breaker'>;
  readonly breakerTransitions: Counter<'breaker' | 'from' | 'to'>;
  readonly breakerReduceOnlyPasses: Counter<'breaker' | 'phase'>;
  readonly killSwitchEngaged: Gauge<'scope'>;
  readonly killSwitchActions: Counter<'scope' | 'action'>;
  readonly orders: Counter<'venue' | 'status'>;
  readonly controlBlocks: Counter<'control' | 'phase'>;
  readonly sendSeconds: Histogram<'venue'>;
  readonly reconciliations: Counter<'result'>;
  readonly ledgerRetries: Counter;
  readonly plannerTickFailures: Counter;
  readonly leader: Gauge;
  readonly leaderAcquisitions: Counter;
  readonly bookEquityUsd: Gauge;
  readonly lossSinceMarkUsd: Gauge;
  readonly lossLimitUsd: Gauge;
  readonly controlStateRestoredAt: Gauge;
  readonly venueAccountLiquidating: Gauge<'venue'>;
  readonly positionBreak: Gauge<'venue' | 'instrument'>;
  readonly positionDiffBase: Gauge<'venue' | 'instrument'>;
  readonly positionBreaks: Counter<'venue'>;
  readonly fillConflicts: Counter<'venue'>;
  readonly positionCheckedAt: Gauge<'venue'>;
  readonly venueNotionalUsd: Gauge<'venue'>;
  readonly venueNotionalLimitUsd: Gauge<'venue'>;
  readonly totalNotionalLimitUsd: Gauge;
  readonly netDeltaLimitUsd: Gauge<'underlying'>;
  readonly deltaOutsideBand: Gauge<'underlying'>;
  readonly lastOrderQueuedAt: Gauge<'underlying'>;
  readonly snapshotWarnings: Gauge;
  readonly venueReadOk: Gauge<'venue'>;
  readonly equityObservedAt: Gauge;
  readonly plannerTickAt: Gauge;

  constructor(registry: Registry = new Registry()) {
    this.registry = registry;
    const registers = [registry];
    this.breakerState = new Gauge({
      name: 'xhedge_breaker_state',
      help: 'Circuit breaker state: 0 closed, 1 half-open, 2 open',
      labelNames: ['breaker'],
      registers,
    });
    this.breakerTransitions = new Counter({
      name: 'xhedge_breaker_transitions_total',
      help: 'Circuit breaker state transitions',
      labelNames: ['breaker', 'from', 'to'],
      registers,
    });
    this.breakerReduceOnlyPasses = new Counter({
      name: 'xhedge_breaker_reduce_only_passes_total',
      help: 'Reduce-only orders the gate let past an open or half-open market breaker whose policy allows it (phase: queue or send; a send-phase pass whose job is then aborted by a kill switch is counted too, though nothing is sent)',
      labelNames: ['breaker', 'phase'],
      registers,
    });
    this.killSwitchEngaged = new Gauge({
      name: 'xhedge_kill_switch_engaged',
      help: '1 while the kill switch of this scope is engaged',
      labelNames: ['scope'],
      registers,
    });
    this.killSwitchActions = new Counter({
      name: 'xhedge_kill_switch_actions_total',
      help: 'Kill switch actions (engage, release, cancel-working)',
      labelNames: ['scope', 'action'],
      registers,
    });
    this.orders = new Counter({
      name: 'xhedge_orders_total',
      help: 'Orders reaching a terminal status',
      labelNames: ['venue', 'status'],
      registers,
    });
    this.controlBlocks = new Counter({
      name: 'xhedge_control_blocks_total',
      help: 'Intents blocked by a pre-trade control, kill switch or breaker',
      labelNames: ['control', 'phase'],
      registers,
    });
    this.sendSeconds = new Histogram({
      name: 'xhedge_order_send_seconds',
      help: 'placeOrder round trip to the venue',
      labelNames: ['venue'],
      buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.reconciliations = new Counter({
      name: 'xhedge_reconciliations_total',
      help: 'Orders resolved against the venue or re-driven by the reconciler',
      labelNames: ['result'],
      registers,
    });
    this.leader = new Gauge({
      name: 'xhedge_leader',
      help: "1 while this process holds the orchestrator's lease (plans), else 0",
      registers,
    });
    this.leaderAcquisitions = new Counter({
      name: 'xhedge_leader_acquisitions_total',
      help: "Times this process took the orchestrator's lease: many in a short time is leadership flapping between processes (a lease that lapses: Redis slow, event loop stalls)",
      registers,
    });
    this.plannerTickFailures = new Counter({
      name: 'xhedge_planner_tick_failures_total',
      help: 'Planning ticks that failed (reading, planning or submitting), the leader only; a failure after the snapshot was published leaves xhedge_risk_snapshot_seq moving',
      registers,
    });
    this.ledgerRetries = new Counter({
      name: 'xhedge_order_ledger_retries_total',
      help: 'Order job runs handed back for a short wait because the ledger database (or Redis) could not be reached or answer',
      registers,
    });
    this.bookEquityUsd = new Gauge({
      name: 'xhedge_book_equity_usd',
      help: "The book's mark-to-market equity at the last tick that could value all of it, USD",
      registers,
    });
    this.lossSinceMarkUsd = new Gauge({
      name: 'xhedge_book_loss_since_mark_usd',
      help: 'Mark minus book equity, USD (positive = loss); the market:loss breaker trips past its limit',
      registers,
    });
    this.lossLimitUsd = new Gauge({
      name: 'xhedge_book_loss_limit_usd',
      help: 'The loss since the mark at which the market:loss breaker trips, USD (breakers.market.maxLossSinceMarkUsd; absent when unset)',
      registers,
    });
    this.venueAccountLiquidating = new Gauge({
      name: 'xhedge_venue_account_liquidating',
      help: "1 while the venue liquidates this run's account there (or part of it), 2 when it declared it bankrupt, else 0 (from the venue's health, each tick)",
      labelNames: ['venue'],
      registers,
    });
    this.positionBreak = new Gauge({
      name: 'xhedge_position_break',
      help: "1 while the venue's position in the instrument differs from what our ledger explains (drop-copy check), else 0",
      labelNames: ['venue', 'instrument'],
      registers,
    });
    this.positionDiffBase = new Gauge({
      name: 'xhedge_position_unexplained_base',
      help: "The venue's position minus the drop-copy baseline and our fills since, underlying units, at the last quiet read",
      labelNames: ['venue', 'instrument'],
      registers,
    });
    this.positionBreaks = new Counter({
      name: 'xhedge_position_breaks_total',
      help: 'Position breaks opened by the drop-copy check',
      labelNames: ['venue'],
      registers,
    });
    this.fillConflicts = new Counter({
      name: 'xhedge_fill_conflicts_total',
      help: 'Fills a venue reported under an id the ledger holds with other content (the first row is kept; audited as fill.conflict)',
      labelNames: ['venue'],
      registers,
    });
    this.positionCheckedAt = new Gauge({
      name: 'xhedge_position_check_timestamp_seconds',
      help: "When the drop-copy check last compared this venue's positions with the ledger, Unix seconds",
      labelNames: ['venue'],
      registers,
    });
    this.venueNotionalUsd = new Gauge({
      name: 'xhedge_venue_notional_usd',
      help: "A venue's gross notional (perps, futures, spot: |size| × mark) at the last tick that read it, USD",
      labelNames: ['venue'],
      registers,
    });
    this.venueNotionalLimitUsd = new Gauge({
      name: 'xhedge_venue_notional_limit_usd',
      help: 'The notional a venue may hold before orders that grow it are blocked (limits.maxVenueNotionalUsd), USD; absent when unset',
      labelNames: ['venue'],
      registers,
    });
    this.totalNotionalLimitUsd = new Gauge({
      name: 'xhedge_total_notional_limit_usd',
      help: 'The notional all venues together may hold before orders that grow it are blocked (limits.maxTotalNotionalUsd), USD; absent when unset',
      registers,
    });
    this.netDeltaLimitUsd = new Gauge({
      name: 'xhedge_net_delta_limit_usd',
      help: "The book's largest net delta per underlying (limits.maxNetDeltaUsd), USD; plans that push past it are blocked (net-delta); absent when unset",
      labelNames: ['underlying'],
      registers,
    });
    this.deltaOutsideBand = new Gauge({
      name: 'xhedge_book_delta_outside_band',
      help: "How far the book's delta drift (effective delta minus target) is outside the hedge policy's no-trade band at the last tick, underlying units: |drift| minus the band's half-width, 0 inside it or where the policy holds on purpose (time gate not due, below the smallest order)",
      labelNames: ['underlying'],
      registers,
    });
    this.lastOrderQueuedAt = new Gauge({
      name: 'xhedge_last_order_queued_timestamp_seconds',
      help: "When a hedge plan for the underlying last had an order queued, Unix seconds (wall clock); the planner's start until one is",
      labelNames: ['underlying'],
      registers,
    });
    this.snapshotWarnings = new Gauge({
      name: 'xhedge_snapshot_warnings',
      help: 'Warnings in the last risk snapshot the planner published (venues not read, stale inputs, breakers that could not observe, ...)',
      registers,
    });
    this.venueReadOk = new Gauge({
      name: 'xhedge_venue_read_ok',
      help: "1 when the planner's last tick read the venue (positions, balances, marks), 0 when the read failed or the venue has no adapter",
      labelNames: ['venue'],
      registers,
    });
    this.equityObservedAt = new Gauge({
      name: 'xhedge_book_equity_observed_timestamp_seconds',
      help: "When the book's equity was last observed for the loss-since-mark breaker, Unix seconds (wall clock); the planner's start until it is. Skipped while a venue is not read, something held cannot be valued or an order works",
      registers,
    });
    this.plannerTickAt = new Gauge({
      name: 'xhedge_planner_tick_timestamp_seconds',
      help: "When this process's planner last published a risk snapshot, Unix seconds (wall clock): a process that is not the leader stops moving it, so alerts on the planner's other gauges keep to the current leader",
      registers,
    });
    this.controlStateRestoredAt = new Gauge({
      name: 'xhedge_control_state_restored_timestamp_seconds',
      help: 'When this process last restored the control state (kill switch, open breakers) from the ledger, Unix seconds; orders wait while it cannot',
      registers,
    });
  }

  breakerTransition(breaker: string, from: BreakerState, to: BreakerState): void {
    this.breakerTransitions.inc({ breaker, from, to });
    this.breakerState.set({ breaker }, STATE_VALUE[to]);
  }
}
