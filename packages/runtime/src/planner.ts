import type { Policies } from '@xhedge/api';
import type { VenueConfig } from '@xhedge/config';
import {
  type Balance,
  type Clock,
  type FundingRate,
  type HedgeIntent,
  instrumentMeta,
  isDatabaseUnavailable,
  type Mark,
  median,
  OPEN_ORDER_STATUSES,
  type ParsedInstrumentId,
  type Position,
  parseInstrumentId,
  toDecimalString,
  XhedgeError,
} from '@xhedge/core';
import {
  type ExecutionMetrics,
  type LegResult,
  linearNotionalUsd,
  type PlanLike,
  type PlanNetDelta,
} from '@xhedge/execution';
import { bookEquity, MAX_IV_DECIMAL, RiskEngine, type RiskSnapshot } from '@xhedge/risk';
import { CollateralReservation, type CollateralTransfer } from '@xhedge/routing';
import type { PaperMarket } from '@xhedge/sim';
import type { Ledger } from '@xhedge/store';
import {
  type DecisionContext,
  type HedgeDecision,
  HedgeStrategy,
  type VegaCandidate,
  vegaCandidatesFromChain,
} from '@xhedge/strategy';
import {
  checkSettlementPrice,
  type MarketInfo,
  type VenueAdapter,
  type VenueGreeks,
  type VenueHealth,
} from '@xhedge/venue';
import { maskedError } from './masked-error.ts';
import type { SnapshotBus } from './snapshot-bus.ts';

/** A routed plan, as execution takes it. */
export interface PlanForExecution extends PlanLike {
  underlying: string;
  reason: string;
  legs: readonly HedgeIntent[];
  /** Collateral moves that must be delivered before the legs listing them in `dependsOn` run. */
  transfers: readonly CollateralTransfer[];
}

/**
 * Routing, seen from the loop: a decision and the venues allowed now → a plan, or undefined. Every plan
 * of a tick is routed on venue balances read before any of them executes, so the tick passes one
 * `reservation` to all its routings: each takes off what earlier plans of the tick committed and adds
 * its own (without it, two underlyings' hedges could each count the same free collateral).
 */
export type RoutePlan = (
  decision: HedgeDecision,
  venues: readonly VenueAdapter[],
  reservation?: CollateralReservation,
) => Promise<PlanForExecution | undefined>;

export interface TickPlannerOptions {
  clock: Clock;
  /** The simulated market paper venues price from; stepped to the clock before each tick. */
  market?: PaperMarket;
  /**
   * The venue adapters: a fixed list, or a function of the venue configs in force that returns them
   * (a `VenueRegistry` syncing to them, so venues added or changed through the API join the next tick).
   * Every adapter is read (a disabled venue's positions are still part of the book); only enabled
   * venues are routed to. A venue enabled in the configs in force that has no adapter here (its build
   * failed, or it is being built) is handled as a venue whose read failed: its last good read stands in
   * while young, else the underlyings it held get no hedge, all of them when it was never read. A
   * disabled venue that cannot be read (its read failed, or it has no adapter: its build failed or is
   * under way) holds no hedge, since operators disable a broken venue to let hedging go on: its last
   * good read stands in while young, else its positions are left out of the book; either way it is
   * named in the snapshot's warnings and logged once per streak.
   */
  venues: readonly VenueAdapter[] | ((configs: readonly VenueConfig[]) => Promise<readonly VenueAdapter[]>);
  /**
   * Why a configured venue, enabled or disabled, has no adapter among `venues` (the registry's last
   * failed build of it, `VenueRegistry.buildFailure`), for the log: such a venue is handled as a venue
   * whose read failed (see `venues`), this only says why. @defaultValue nothing known
   */
  notRunning?: (venueId: string) => unknown;
  /**
   * Vol (decimal) per underlying for when no real venue marks an option on it (the profile's
   * `underlyings[].volDecimal`); option implied vols win.
   */
  fallbackVolDecimal?: ReadonlyMap<string, number>;
  /**
   * Each successful venue read: its positions, the marks read there, and when the read began by the
   * run's clock (the drop-copy check compares the positions with the ledger; the venue's notional is
   * exported from them). Must not throw or block.
   */
  onVenueRead?: (
    venue: string,
    read: { positions: readonly Position[]; marks: readonly Mark[]; readStartedAtMs: number },
  ) => void;
  /** Each venue's health as read at each tick (with the market breakers on). */
  onVenueHealth?: (venue: string, health: VenueHealth) => void;
  /** Each tick's risk snapshot, before its hedges are planned. Must not throw or block. */
  onSnapshot?: (snapshot: RiskSnapshot) => void;
  /**
   * The gauges the planner sets as it goes (timestamps wall-clock Unix seconds, for Prometheus's `time()`):
   * `venueReadOk` per venue each tick, `deltaOutsideBand` per underlying from each tick's decisions,
   * `snapshotWarnings` per published snapshot, `lastOrderQueuedAt` when a plan of the underlying had an
   * order queued (`onPlanned`), `equityObservedAt` when the loss-since-mark breaker was fed. Both
   * timestamps start at the planner's start, so "never since the start" reads as old, not as absent.
   * `plannerTickAt` with every published snapshot: a former leader's gauges stop being current.
   * @defaultValue none
   */
  metrics?: Pick<
    ExecutionMetrics,
    | 'venueReadOk'
    | 'deltaOutsideBand'
    | 'snapshotWarnings'
    | 'lastOrderQueuedAt'
    | 'equityObservedAt'
    | 'plannerTickAt'
  >;
  ledger: Ledger;
  bus: SnapshotBus;
  /** Venues and policy in force now (operators change them through the API). */
  currentVenues: () => Promise<VenueConfig[]>;
  currentPolicy: () => Promise<Policies>;
  route: RoutePlan;
  /**
   * Largest option order per underlying for vega hedges, underlying units (a venue's own
   * `maxOrderSizeBase` wins when smaller). @defaultValue the profile's `limits.maxPositionBase`, else 1000
   */
  maxOptionOrderBase?: Readonly<Record<string, number>>;
  /**
   * After a plan none of whose legs was queued (every leg blocked by a control, a breaker or the kill
   * switch), the underlying gets no new plan for this long, doubling at each such plan up to
   * `maxMs`, and back to nothing once a plan is queued: a block that lasts (a kill switch over a
   * weekend) is retried, not re-planned into the ledger and the log every tick. Run-clock ms.
   * @defaultValue { initialMs: 2000, maxMs: 30000 }
   */
  blockedRetry?: { initialMs: number; maxMs: number };
  /**
   * Farthest an option leg's expected price may be from the option's mark, bps: keep it inside the
   * pre-trade price band less the limit's slippage. @defaultValue 150
   */
  optionPriceBandBps?: number;
  /** Inputs older than this are stale in the snapshot, ms. */
  staleAfterMs: number;
  /**
   * Longest wait for one venue call of a tick (wall ms): every read the tick makes of a venue (positions,
   * balances, marks, funding, Greeks, settlement prices, health, markets, option chains, quotes, also
   * routing's) fails with a {@link VenueReadTimeoutError} when it has not answered by then, exactly as
   * if it had failed (its data left out, or the venue's last good read standing in; the venue is left
   * out of routing for the tick), and the venue's other calls of the same tick fail at once instead of
   * waiting again. A venue that never answers thus costs a tick about this long, not the whole tick.
   * Keep it well below the orchestrator's tick watchdog (`tickTimeoutMs`, 60 s): a tick makes several
   * rounds of venue calls. @defaultValue 10000
   */
  venueReadTimeoutMs?: number;
  /**
   * Most wall time one venue's calls may take in one tick, ms (calls under way at once count once; a
   * health probe does not count): a venue that answers each call just inside `venueReadTimeoutMs` would
   * otherwise hold the tick for that many times over (funding one perp after another, settlements,
   * quotes, option chains, routing). The call under way when it runs out fails with a
   * {@link VenueReadTimeoutError}, and the venue's other calls of the tick fail at once, exactly as after
   * a call that timed out. Keep it below the tick watchdog (`tickTimeoutMs`).
   * @defaultValue 2 × venueReadTimeoutMs
   */
  venueTickBudgetMs?: number;
  /**
   * The market circuit breakers fed by each tick: every underlying's spot (price shock over the
   * window) and vol (implied-vol shock), and every venue's chain liveness from its health probe (chain halt). @defaultValue none
   */
  /**
   * The venues a kill switch is engaged on now (`venue:<id>` scopes): read but not routed to, as a venue
   * whose breaker is open. Without it a venue under its kill switch stayed the router's choice (say, to
   * reduce the position held there first) and every plan for the underlying was blocked at the gate
   * while another venue could have hedged. A failing read routes as if none were engaged: the gate still
   * blocks every order to an engaged venue. @defaultValue none
   */
  killedVenues?(): Promise<ReadonlySet<string>>;
  breakers?: {
    observePrice(underlying: string, priceUsd: number, tsMs?: number): Promise<void>;
    /** Each underlying's vol as the snapshot prices it (implied-vol shock over the window). */
    observeIv?(underlying: string, ivDecimal: number, tsMs?: number): Promise<void>;
    /**
     * Each underlying's price at every venue that gave one this tick, USD by venue (`venuePrices`):
     * the price-dispersion breaker.
     */
    observeDispersion?(
      underlying: string,
      pricesUsdByVenue: Readonly<Record<string, number>>,
    ): Promise<unknown>;
    /** Each underlying's smile skew from the tick's option marks (`optionSkew`): the skew-shock breaker. */
    observeSkew?(underlying: string, skewDecimal: number, tsMs?: number): Promise<void>;
    observeChain(chain: string, halted: boolean): Promise<void>;
    /**
     * Of `names`, the breakers open and cooling down now (`BreakerBoard.coolingDown`): a venue whose
     * `venue:` or `chain:` breaker is among them is read but not routed to this tick.
     */
    coolingDown?(names: readonly string[]): Promise<ReadonlySet<string>>;
    /**
     * The book's equity (risk's `bookEquity`), against the mark: feeds the loss-since-mark breaker.
     * Observed only on a tick where every venue was read, everything held could be valued and no order
     * was working; a partial book, or money on its way into a position, would read as a loss.
     */
    observeEquity?(
      equityUsd: number,
      o: { atMs?: number; actor?: string },
    ): Promise<{ markUsd: number; lossSinceMarkUsd: number; marked: boolean }>;
  };
  /**
   * Collateral debited at one venue and not yet credited at another (bridge transfers in flight), so
   * a transfer does not read as a loss of book equity. Read before and after the venues (a transfer
   * sent or delivered while they are read is counted, at worst twice: a gain for one tick, never a
   * loss). @defaultValue none
   */
  inTransit?: () => Promise<readonly { transferId: string; asset: string; amount: number }[]>;
  log: (level: 'info' | 'warn' | 'error', msg: string, data?: Record<string, unknown>) => void;
}

/**
 * Decision codes where the policy holds with the drift past its band on purpose (a time gate not due, a
 * drift below the smallest order): `xhedge_book_delta_outside_band` reads 0 for them.
 */
const ON_PURPOSE_HOLDS: ReadonlySet<string> = new Set(['inside-band', 'interval-not-due', 'dust']);

function safeMeta(id: string): (ParsedInstrumentId & { underlying: string }) | undefined {
  try {
    const m = parseInstrumentId(id);
    return { ...m, underlying: m.base };
  } catch {
    return undefined;
  }
}

/**
 * Gross notional of a venue's linear positions (perps, futures, spot) at one read's marks, else their
 * entry prices, USD: execution's `linearNotionalUsd`, the rule the notional caps use; a position with
 * neither price is left out of this metric.
 */
export function grossNotionalUsd(positions: readonly Position[], marks: readonly Mark[]): number {
  const byInstrument = new Map<string, number>();
  for (const m of marks) if (!byInstrument.has(m.instrument)) byInstrument.set(m.instrument, m.markPriceUsd);
  return linearNotionalUsd(positions, (i) => byInstrument.get(i));
}

/**
 * What risk and hedging see of the positions read: those with a size, and closed coin-settled (inverse)
 * perps and futures whose P&L the venue still owes (`unsettledPnlUsd`): that P&L is coin, whose delta
 * is its amount (the risk engine counts U / mark), as book equity counts it. Other size-0 positions only
 * carry USD P&L the venue has not settled yet: equity counts it, and it has no delta.
 */
function open(positions: readonly Position[]): Position[] {
  return positions.filter((p) => p.sizeBase !== 0 || owesCoin(p));
}

/** A closed coin-settled perp or future whose P&L (coin) the venue has not paid into the balances yet. */
function owesCoin(p: Position): boolean {
  if (p.unsettledPnlUsd === undefined || p.unsettledPnlUsd === 0) return false;
  try {
    const m = instrumentMeta(
      p.instrument,
      p.settlementCurrency === undefined ? {} : { settlementCurrency: p.settlementCurrency },
    );
    return m.inverse && (m.kind === 'perp' || m.kind === 'future');
  } catch {
    return false;
  }
}

/**
 * What a plan does to the book's net delta (the input of execution's `net-delta` check), from the legs'
 * own sides and sizes: perps, futures and spot add ±size, an option its size times the per-unit delta the
 * vega solver priced it at. An option leg the decision did not price makes the sum NaN, which the check
 * refuses with its reason rather than passing.
 */
export function planNetDelta(
  plan: Pick<PlanForExecution, 'underlying' | 'legs'>,
  decision: Pick<HedgeDecision, 'vegaTrades'>,
  risk: Pick<RiskSnapshot['underlyings'][string], 'delta' | 'spotUsd'>,
): PlanNetDelta {
  const perUnit = new Map(
    decision.vegaTrades.map((t) => [
      `${t.venue}|${t.instrument}`,
      t.delta / (t.side === 'buy' ? t.sizeBase : -t.sizeBase),
    ]),
  );
  let planDeltaBase = 0;
  for (const leg of plan.legs) {
    const signed = Number(leg.sizeBase) * (leg.side === 'buy' ? 1 : -1);
    planDeltaBase +=
      parseInstrumentId(leg.instrument).kind === 'option'
        ? signed * (perUnit.get(`${leg.venue}|${leg.instrument}`) ?? Number.NaN)
        : signed;
  }
  return { underlying: plan.underlying, bookDeltaBase: risk.delta, planDeltaBase, spotUsd: risk.spotUsd };
}

/** The bucket at `outer` → `inner` of a two-level grouping, made and stored first if absent. */
function bucket<K1, K2, V>(by: Map<K1, Map<K2, V>>, outer: K1, inner: K2, make: () => V): V {
  let m = by.get(outer);
  if (m === undefined) {
    m = new Map();
    by.set(outer, m);
  }
  let v = m.get(inner);
  if (v === undefined) {
    v = make();
    m.set(inner, v);
  }
  return v;
}

/**
 * Each underlying's price at each venue, from one tick's marks: the median of the index prices the
 * venue reported with them (its oracle), else the median of its perp and spot marks. Futures (basis)
 * and option premiums are not prices of the underlying and are left out.
 */
export function venuePrices(marks: readonly Mark[]): Map<string, Record<string, number>> {
  const by = new Map<string, Map<string, { index: number[]; marks: number[] }>>();
  for (const mk of marks) {
    const meta = safeMeta(mk.instrument);
    if (!meta) continue;
    const e = bucket(by, meta.underlying, mk.venue, () => ({ index: [] as number[], marks: [] as number[] }));
    if (mk.indexPriceUsd !== undefined) e.index.push(mk.indexPriceUsd);
    if ((meta.kind === 'perp' || meta.kind === 'spot') && mk.markPriceUsd > 0) e.marks.push(mk.markPriceUsd);
  }
  const out = new Map<string, Record<string, number>>();
  for (const [u, venues] of by) {
    const prices: Record<string, number> = {};
    for (const [v, e] of venues) {
      const p = median(e.index.length > 0 ? e.index : e.marks);
      if (p !== undefined) prices[v] = p;
    }
    out.set(u, prices);
  }
  return out;
}

/** The wings `optionSkew` compares: strikes this far from spot, |ln K/S|. */
const SKEW_WING = { minLogMoneyness: 0.05, maxLogMoneyness: 0.25 } as const;
const SKEW_MIN_EXPIRY_MS = 7 * 86_400_000;

/**
 * Each underlying's smile skew from one tick's option marks, vol decimal: at the nearest expiry at least
 * 7 days out that has both wings marked, the mean mark implied vol of out-of-the-money puts minus that
 * of out-of-the-money calls, strikes 5–25% from spot (|ln K/S|). Positive when puts are dearer. The
 * same expiry and wings each tick keep the series comparable; an underlying with no such expiry, or
 * without a spot, gets none (no sample rather than a skew from one wing).
 */
export function optionSkew(
  marks: readonly Mark[],
  spotUsd: ReadonlyMap<string, number>,
  nowMs: number,
): Map<string, number> {
  // underlying → expiry → the wings' implied vols
  const by = new Map<string, Map<number, { puts: number[]; calls: number[] }>>();
  for (const mk of marks) {
    // no IV, or one no venue quotes (a percentage for a decimal): no sample
    if (mk.ivDecimal === undefined || !(mk.ivDecimal > 0) || mk.ivDecimal > MAX_IV_DECIMAL) continue;
    const meta = safeMeta(mk.instrument);
    if (meta?.kind !== 'option' || meta.expiryMs - nowMs < SKEW_MIN_EXPIRY_MS) continue;
    const spot = spotUsd.get(meta.base);
    if (spot === undefined || !(spot > 0)) continue;
    const m = Math.log(Number(meta.strike) / spot);
    const otm = meta.optionType === 'put' ? -m : m;
    if (!(otm >= SKEW_WING.minLogMoneyness && otm <= SKEW_WING.maxLogMoneyness)) continue;
    const wings = bucket(by, meta.base, meta.expiryMs, () => ({
      puts: [] as number[],
      calls: [] as number[],
    }));
    (meta.optionType === 'put' ? wings.puts : wings.calls).push(mk.ivDecimal);
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const out = new Map<string, number>();
  for (const [u, expiries] of by) {
    const nearest = [...expiries.entries()]
      .filter(([, w]) => w.puts.length > 0 && w.calls.length > 0)
      .sort((a, b) => a[0] - b[0])[0];
    if (nearest) out.set(u, mean(nearest[1].puts) - mean(nearest[1].calls));
  }
  return out;
}

/**
 * A balance of the venue's gas asset that is not also its collateral is the signing wallet's gas money
 * (an EVM venue reports the wallet's native ETH), not a holding of the book: counting it as delta would
 * hedge the fee float, and twice when two venues sign from one wallet (on a local anvil chain that is
 * 10,000 ETH per dev account).
 */
function isGasMoney(v: VenueAdapter, b: Balance): boolean {
  const { gasAsset, collateral } = v.capabilities;
  return gasAsset !== null && b.asset === gasAsset && !collateral.includes(b.asset);
}

/**
 * Relative spread (max − min) / min between the settlement prices venues report for one underlying and
 * expiry beyond which the planner warns. Venues fix them from different sources (an AMM's spot oracle at
 * its settling transaction, a CEX's averaged index), so a few bps apart is normal.
 */
const SETTLEMENT_SPREAD_WARN_FRACTION = 0.001;

/**
 * How soon a venue is asked again for an expired instrument whose settlement price it did not give (not
 * fixed yet, a failed read, an answer left out), ms: the first retry, doubled on each further miss up to
 * `SETTLEMENT_RETRY_MAX_MS`. A board waits for a keeper's settling transaction, minutes to hours after
 * its expiry, and each ask is an RPC read or more (Lyra: two per board): asked every tick, that was one
 * read per second per expiry for as long as the keeper took. Meanwhile the position is valued at spot,
 * with the engine's warning, as before it was asked.
 */
const SETTLEMENT_RETRY_MS = 10_000;
const SETTLEMENT_RETRY_MAX_MS = 120_000;

/** An expired instrument a venue is asked the settlement price of, and the expiry it belongs to. */
interface AskedSettlement {
  underlying: string;
  /** YYYYMMDD, as in the id and as the risk engine keys settlement prices. */
  date: string;
  expiryMs: number;
}

/**
 * One entry of a venue's `fetchSettlementPrices` answer, checked and converted to a number where it
 * enters: the price as the risk engine takes it, or why it is left out ({@link checkSettlementPrice}:
 * not a valid `SettlementPrice`, an instrument not asked for, fixed before the expiry, which would make
 * it a guess; or a decimal that is no finite positive number once converted).
 */
function checkSettlement(
  raw: unknown,
  asked: ReadonlyMap<string, AskedSettlement>,
): (AskedSettlement & { instrument: string; priceUsd: number }) | string {
  const r = checkSettlementPrice(raw, asked);
  if (typeof r === 'string') return r;
  const { instrument, priceUsd: decimal } = r.entry;
  const priceUsd = Number(decimal);
  if (!Number.isFinite(priceUsd) || !(priceUsd > 0))
    return `${instrument}: priceUsd ${decimal} is not a finite positive number`;
  return { ...(asked.get(instrument) as AskedSettlement), instrument, priceUsd };
}

/** Intents read per page when the hedge windows start from the ledger (the ledger's largest page). */
const SEED_PAGE = 5000;

/**
 * Most executions kept for replay into a new strategy (see `TickPlanner.#executions`), far above what a
 * window holds in practice; past it the oldest go, and the next strategy starts from the ledger instead.
 */
const MAX_EXECUTIONS = 200_000;

/**
 * How far back a policy looks at past delta hedges, ms: its longest window cap (`caps.windowMinutes`) or
 * time gate (`intervalMinutes`), over the default and every per-underlying policy; 0 when it has none.
 */
function hedgeLookbackMs(policy: Policies): number {
  const minutes = (p: Policies['default']) =>
    Math.max(
      p.caps?.windowMinutes ?? 0,
      p.kind === 'interval' || p.kind === 'leland' ? p.intervalMinutes : 0,
    );
  return (
    Math.max(minutes(policy.default), ...Object.values(policy.perUnderlying ?? {}).map(minutes)) * 60_000
  );
}

/** The start of `TickPlanner.#readTrouble`'s entry for an enabled venue that has no adapter. */
const NOT_RUNNING = 'not running:';

/** A venue a tick could not read, and what was done about it: the snapshot's warning says so. */
interface VenueMissed {
  venue: string;
  /** With no adapter (its build failed, or it is being built), rather than a failed read. */
  notRunning: boolean;
  /** Not enabled: it holds no hedge (`left out` rather than `held` or `never read`). */
  disabled: boolean;
  /**
   * Its last good read stands in; or its underlyings (`held`) get no hedge; or all do (never read); or,
   * disabled, its positions are left out of the book.
   */
  outcome: 'stands in' | 'held' | 'never read' | 'left out';
  /** Age of its last good read, run-clock ms (none when it was never read). */
  ageMs?: number;
  /** The underlyings held for it (outcome `held`). */
  held: string[];
}

/** What `TickPlanner.#read` gathers of the venues it could not read. */
interface UnreadVenues {
  /** The tick's positions and balances, which a stand-in read adds to. */
  positions: Position[];
  balances: Balance[];
  failed: string[];
  /** Underlyings that get no hedge this tick; all of them when `blockAll`. */
  blocked: Set<string>;
  blockAll: boolean;
  misses: VenueMissed[];
}

/** The snapshot's warning for a venue the tick could not read. */
function missWarning(m: VenueMissed): string {
  const what = m.disabled
    ? `disabled venue ${m.venue} not read (${m.notRunning ? 'its adapter is not built' : 'its read failed'})`
    : m.notRunning
      ? `venue ${m.venue} is enabled but not running (its adapter is not built)`
      : `venue ${m.venue} could not be read`;
  const until = m.notRunning ? 'until it runs' : 'until it is read again';
  switch (m.outcome) {
    case 'left out':
      return `${what}: its positions are not in the book ${until} (it holds no hedge: it is disabled)`;
    case 'stands in':
      return `${what}: its positions and balances of ${((m.ageMs ?? 0) / 1000).toFixed(0)} s ago stand in`;
    case 'held':
      return m.held.length > 0
        ? `${what}: no hedge for ${m.held.join(', ')} ${until}`
        : `${what}: its last read, ${((m.ageMs ?? 0) / 1000).toFixed(0)} s ago, held nothing`;
    default:
      return `${what}: no hedge for any underlying ${until} (it was never read)`;
  }
}

/** What identifies a failure for logging it on change: its error code, else its class name, else its text. */
function failureKind(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code !== '') return code;
  if (err instanceof Error) return err.name === 'Error' ? err.message : err.name;
  return String(err);
}

/** The venue calls of a tick that get a deadline (`venueReadTimeoutMs`): every read the planner and routing make. */
const VENUE_READS: ReadonlySet<PropertyKey> = new Set<keyof VenueAdapter>([
  'loadMarkets',
  'fetchPositions',
  'fetchBalances',
  'fetchMarks',
  'fetchFills',
  'fetchOrderBook',
  'fetchGreeks',
  'fetchOptionChain',
  'fetchFundingRate',
  'fetchSettlementPrices',
  'quoteHedge',
  'health',
]);

/**
 * A venue call of a tick gave no answer within `venueReadTimeoutMs` (`read`), or was not made because
 * an earlier call to the venue in the same tick had given none (`after`): handled as a failed read.
 */
export class VenueReadTimeoutError extends XhedgeError {
  override name = 'VenueReadTimeoutError';
  /**
   * `budget`: the venue's calls of the tick took its whole `venueTickBudgetMs` (`timeoutMs`) rather than
   * one call its `venueReadTimeoutMs`.
   */
  constructor(venue: string, read: string, timeoutMs: number, after?: string, budget = false) {
    super(
      'VENUE_READ_TIMEOUT',
      budget
        ? after === undefined
          ? `venue ${venue}: ${read} cut off, the venue's calls took its whole tick budget of ${timeoutMs} ms`
          : `venue ${venue}: ${read} not asked, its calls took their whole tick budget of ${timeoutMs} ms (at ${after})`
        : after === undefined
          ? `venue ${venue}: ${read} gave no answer within ${timeoutMs} ms`
          : `venue ${venue}: ${read} not asked, its ${after} gave no answer within ${timeoutMs} ms this tick`,
      {
        details: {
          venue,
          read,
          ...(budget ? { tickBudgetMs: timeoutMs } : { timeoutMs }),
          ...(after === undefined ? {} : { after }),
        },
      },
    );
  }
}

/**
 * One tick's venue-call deadlines: a new one per tick, captured by that tick's venue views, so a call an
 * overtaken tick makes late, or its timeout, never reaches a later tick's. Each call fails with a
 * {@link VenueReadTimeoutError} after `callMs` or once its venue's calls of the tick have taken
 * `budgetMs` of wall time in all (calls under way at once count once), whichever comes first; after that
 * the venue is `hung` and its other calls of the tick fail at once. A health probe says nothing of the
 * venue's data: its timeout marks nothing, and it neither counts toward nor is cut by the budget.
 */
class TickDeadlines {
  /** Venues whose other calls of this tick fail at once: the call that timed out, and whether by budget. */
  readonly hung = new Map<string, { read: string; budget: boolean }>();
  /** Per venue: wall ms its calls took so far, the calls under way, and since when (wall ms) they are. */
  readonly #busy = new Map<string, { usedMs: number; calls: number; sinceMs: number }>();
  readonly #callMs: number;
  readonly #budgetMs: number;

  constructor(callMs: number, budgetMs: number) {
    this.#callMs = callMs;
    this.#budgetMs = budgetMs;
  }

  /** `call()` under the venue's deadlines (see the class). */
  async call<T>(venue: string, read: string, call: () => Promise<T>): Promise<T> {
    const earlier = this.hung.get(venue);
    if (earlier !== undefined)
      throw new VenueReadTimeoutError(
        venue,
        read,
        earlier.budget ? this.#budgetMs : this.#callMs,
        earlier.read,
        earlier.budget,
      );
    const counted = read !== 'health';
    let busy = this.#busy.get(venue);
    if (!busy) {
      busy = { usedMs: 0, calls: 0, sinceMs: 0 };
      this.#busy.set(venue, busy);
    }
    const b = busy;
    const startMs = performance.now();
    const leftMs = counted
      ? this.#budgetMs - b.usedMs - (b.calls > 0 ? startMs - b.sinceMs : 0)
      : Number.POSITIVE_INFINITY;
    if (!(leftMs > 0)) {
      this.hung.set(venue, { read, budget: true });
      throw new VenueReadTimeoutError(venue, read, this.#budgetMs, undefined, true);
    }
    const byBudget = leftMs < this.#callMs;
    if (counted) {
      if (b.calls === 0) b.sinceMs = startMs;
      b.calls++;
    }
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => {
          // a health probe that does not answer says nothing of the venue's data (as one that fails)
          if (counted && !this.hung.has(venue)) this.hung.set(venue, { read, budget: byBudget });
          reject(
            new VenueReadTimeoutError(
              venue,
              read,
              byBudget ? this.#budgetMs : this.#callMs,
              undefined,
              byBudget,
            ),
          );
        },
        Math.min(this.#callMs, leftMs),
      );
    });
    try {
      // the call itself cannot be stopped: it is left to settle alone (its answer is dropped)
      return await Promise.race([Promise.resolve().then(call), late]);
    } finally {
      clearTimeout(timer);
      if (counted && --b.calls === 0) b.usedMs += performance.now() - b.sinceMs;
    }
  }
}

/**
 * A tick of `TickPlanner.plan` was overtaken by a later one (its caller gave up on it, e.g. after the
 * orchestrator's tick watchdog): it stops at its next step, changing nothing the later tick uses, and
 * hands out no plan.
 */
export class TickSupersededError extends XhedgeError {
  override name = 'TickSupersededError';
  constructor(tick: number, current: number) {
    super(
      'TICK_SUPERSEDED',
      `planner tick ${tick} was overtaken by tick ${current}: it stopped, with no plan and nothing changed`,
      { details: { tick, current } },
    );
  }
}

/** Holds that last until the policy or the window changes: logged when an underlying enters one. */
const CAP_HOLDS: ReadonlySet<string> = new Set(['window-cap-reached', 'order-cap-below-minimum']);

/**
 * What the leader does each tick (execution's `Orchestrator` runs it on its timer, only while holding
 * the lease): read every venue, build a risk snapshot, publish it, decide and route hedges, and hand
 * the plans back for submission. A failing venue read, or a venue that is not running, is logged once
 * per streak and named in the snapshot's warnings; its last good read stands in while young, else its
 * underlyings are not hedged, or, for a disabled venue, its positions are left out (see `#read`). Expired options and futures still held are
 * valued at the settlement prices their venues report (`fetchSettlementPrices`), else at spot with the snapshot's warning. Venues that
 * publish Greeks (`capabilities.venueGreeks`, `fetchGreeks`) are asked for those of the live options they
 * hold, which the snapshot compares with the model's (`divergences`; see `#readGreeks`).
 */
export class TickPlanner {
  /** Whether the last `killedVenues` read failed (its log says so once per streak). */
  #killReadFailing = false;
  readonly #o: TickPlannerOptions;
  readonly #risk: RiskEngine;
  #strategy: HedgeStrategy | undefined;
  #policyJson = '';
  /**
   * Executions the strategy counted, replayed into a new strategy when the policy changes, in time order.
   * They start from the ledger's (see #seedExecutions) and are kept for `#coveredMs` (older ones no
   * window or time gate of the policy counts).
   */
  readonly #executions: { underlying: string; notionalUsd: number; atMs: number }[] = [];
  /**
   * How far back `#executions` holds every delta hedge, ms: the lookback of the policy in force
   * (`hedgeLookbackMs`). Undefined until they are read from the ledger, and again once they may miss
   * some (a new leadership term: another leader may have hedged meanwhile; the `MAX_EXECUTIONS` cap):
   * the next strategy then starts from the ledger, as it does when a policy looks further back.
   */
  #coveredMs: number | undefined;
  /** The lease token the last tick was planned under (see `plan`). */
  #leaseToken: number | undefined;
  /** The kind of failure (`failureKind`) of each venue|instrument's last funding read that failed, logged on change. */
  readonly #fundingTrouble = new Map<string, string>();
  /**
   * What went wrong in each venue's last Greeks read (`failureKind`, or why entries were left out),
   * logged when it starts or changes, and when the Greeks are read again; absent when nothing did.
   */
  readonly #greeksTrouble = new Map<string, string>();
  /** Venues whose published Greeks the risk engine holds (forgotten there once they hold no live option). */
  readonly #greeksFed = new Set<string>();
  /** The hold code (cap-related) each underlying's last decision came out with, logged when it changes. */
  readonly #capHold = new Map<string, string>();
  #lastSnapshot: RiskSnapshot | undefined;
  #seqOffset = 0;
  #lastInputs:
    | { positions: Position[]; balances: Balance[]; funding: FundingRate[]; marks: Mark[] }
    | undefined;
  ticks = 0;
  /**
   * Each venue's last successful read (positions, balances) and when it began, by the run's clock: an
   * order of ours that changed after that may be missing from it (a fill between the venue's answer and
   * the read's end too), so `#read` does not let such a read stand in.
   */
  readonly #lastGood = new Map<string, { positions: Position[]; balances: Balance[]; atMs: number }>();
  /** Why the last tick did not observe the book's equity ('' when it did): logged when it changes. */
  #equitySkip = '';
  /** The breakers' store (Redis) could not take the last tick's observations (logged once per streak). */
  #observeFailing = false;
  /** The open breakers could not be read for routing (Redis unavailable; logged once per streak). */
  #coolingReadFailing = false;

  /**
   * Decisions of the plans the last tick handed out, until `onPlanned` reports what was queued. Cleared
   * when a tick starts: a plan not reported by then was never submitted (its submission threw: not the
   * leader, fenced out, a failed queue add), and would otherwise stay here for the life of the process.
   */
  readonly #pending = new Map<string, HedgeDecision>();
  /** Number of the tick under way (`plan`); a tick whose number is no longer this one was overtaken. */
  #tick = 0;
  /** When the planner was made, wall-clock Unix seconds: the timestamps' start (see `metrics`). */
  readonly #startedAtSec = Date.now() / 1000;
  /** Venues with an `xhedge_venue_read_ok` series; one no longer configured and without adapter loses it. */
  readonly #readOkVenues = new Set<string>();
  /** Underlyings with an `xhedge_book_delta_outside_band` series. */
  readonly #bandUnderlyings = new Set<string>();
  /** Underlyings with an `xhedge_last_order_queued_timestamp_seconds` series. */
  readonly #queuedUnderlyings = new Set<string>();
  readonly #venueReadTimeoutMs: number;
  readonly #venueTickBudgetMs: number;
  /** Each tick's venue view (see `#deadlined`) → its adapter, for the caches kept per adapter. */
  readonly #adapterOf = new WeakMap<VenueAdapter, VenueAdapter>();
  /** The kind of failure (`failureKind`) and its outcome of each venue's last read that failed, logged on change. */
  readonly #readTrouble = new Map<string, string>();
  /** Underlyings whose last plan was blocked whole: no new plan before `untilMs` (see `blockedRetry`). */
  readonly #blockedUntil = new Map<string, { untilMs: number; delayMs: number }>();
  /** Per adapter (a venue rebuilt with new params is a new adapter, and is asked again). */
  readonly #marketInfo = new WeakMap<VenueAdapter, MarketInfo[]>();
  readonly #optionFeeBpsByVenue = new WeakMap<VenueAdapter, number>();
  /** Spot and vol learnt from venue marks, for underlyings the simulated market does not give. */
  readonly #learnt = new Map<string, { spotUsd: number; volDecimal: number; asOfMs: number }>();
  /**
   * Settlement prices venues reported for the expired options and futures held, USD, by underlying →
   * expiry date (YYYYMMDD) → venue. A fixed price never changes: a venue is asked for an expiry only
   * until it answers, and an expiry is dropped once nothing held refers to it.
   */
  readonly #settled = new Map<string, Map<string, Map<string, number>>>();
  /** What went wrong in each venue's last settlement-price read ('' or absent: nothing), logged on change. */
  readonly #settlementTrouble = new Map<string, string>();
  /**
   * Expired instruments a venue was asked for and gave no settlement price: venue → instrument → when it
   * may be asked again and the wait after that (see `SETTLEMENT_RETRY_MS`). Dropped once answered or
   * no longer held.
   */
  readonly #settlementRetry = new Map<string, Map<string, { nextAtMs: number; delayMs: number }>>();

  constructor(o: TickPlannerOptions) {
    const t = o.venueReadTimeoutMs ?? 10_000;
    if (!Number.isSafeInteger(t) || t < 1)
      throw new RangeError(`venueReadTimeoutMs must be a whole number of ms, at least 1; got ${t}`);
    this.#venueReadTimeoutMs = t;
    const b = o.venueTickBudgetMs ?? 2 * t;
    if (!Number.isSafeInteger(b) || b < 1)
      throw new RangeError(`venueTickBudgetMs must be a whole number of ms, at least 1; got ${b}`);
    this.#venueTickBudgetMs = b;
    this.#o = o;
    this.#risk = new RiskEngine({ clock: o.clock, staleAfterMs: o.staleAfterMs });
    o.metrics?.equityObservedAt.set(this.#startedAtSec);
  }

  get lastSnapshot(): RiskSnapshot | undefined {
    return this.#lastSnapshot;
  }

  /** Plans handed out by the last tick and not yet reported through `onPlanned`. */
  get pendingPlans(): number {
    return this.#pending.size;
  }

  /**
   * `v` as one tick reads it: the same adapter, whose read calls ({@link VENUE_READS}) go through that
   * tick's `deadlines` (a new view per tick: nothing of one tick's deadlines reaches another's). Its
   * markets are listed once per adapter (kept in `#marketInfo`, for routing's cache too, which is keyed
   * by the view); other calls pass through.
   */
  #deadlined(v: VenueAdapter, deadlines: TickDeadlines): VenueAdapter {
    const view = new Proxy(v, {
      get: (target, prop) => {
        const x: unknown = Reflect.get(target, prop, target);
        if (typeof x !== 'function') return x;
        if (!VENUE_READS.has(prop)) return x.bind(target);
        if (prop === 'loadMarkets')
          return async () => {
            let m = this.#marketInfo.get(target);
            if (!m) {
              m = await deadlines.call(
                target.id,
                'loadMarkets',
                () => x.apply(target) as Promise<MarketInfo[]>,
              );
              this.#marketInfo.set(target, m);
            }
            return m;
          };
        return (...args: unknown[]) =>
          deadlines.call(target.id, String(prop), () => x.apply(target, args) as Promise<unknown>);
      },
    });
    this.#adapterOf.set(view, v);
    return view;
  }

  /** `check` throws once the tick was overtaken: a strategy built by then is not kept. */
  async #strategyFor(policy: Policies, check: () => void = () => {}): Promise<HedgeStrategy> {
    const json = JSON.stringify(policy);
    if (this.#strategy && json === this.#policyJson) return this.#strategy;
    const s = new HedgeStrategy({
      clock: this.#o.clock,
      defaultPolicy: policy.default,
      perUnderlying: policy.perUnderlying,
    });
    const lookbackMs = hedgeLookbackMs(policy);
    if (this.#coveredMs === undefined || lookbackMs > this.#coveredMs) {
      // the ledger's, instead of those counted here: it holds them too (intents are recorded before they
      // are queued) and those of any other leader. One by one (a spread of a long window's legs could
      // pass the engine's argument limit).
      const seeded = await this.#seedExecutions(lookbackMs);
      check();
      this.#executions.length = 0;
      for (const e of seeded) this.#executions.push(e);
    }
    this.#coveredMs = lookbackMs;
    for (const e of this.#executions) s.recordExecution(e.underlying, e.notionalUsd, e.atMs);
    if (this.#strategy) this.#o.log('info', 'hedge policy changed; strategy rebuilt');
    this.#strategy = s;
    this.#policyJson = json;
    return s;
  }

  /**
   * The delta hedges of the policy's longest window (`caps.windowMinutes`, `intervalMinutes`) before
   * now, from the ledger: a restart or a new leader (also this process leading again after another did)
   * must not start with an empty window cap and time gate, or it could hedge a second full window's
   * notional at once. Every perp, futures and spot leg
   * recorded in that time counts at its size × reference price, at its plan's time, unless its order
   * ended without ever being sent (blocked by a control when planned, cancelled or failed before it was
   * sent: it traded nothing). The ledger does not say which plans had no delta trade of their own (a
   * vega-only plan's leg offsetting its options' delta): those legs count too, erring toward less
   * hedging for at most one window after a restart.
   */
  async #seedExecutions(
    lookbackMs: number,
  ): Promise<{ underlying: string; notionalUsd: number; atMs: number }[]> {
    if (!(lookbackMs > 0)) return [];
    const nowMs = this.#o.clock.nowMs();
    const fromMs = nowMs - lookbackMs;
    // every intent of the window, in pages on (time, id): each read once, however many share a ms (a time
    // cursor alone skipped the rest of a ms a whole page ended in, and the window was counted short)
    const intents = await this.#o.ledger.listAllIntents({ fromMs }, { pageSize: SEED_PAGE });
    // orders are recorded after their intents (and the ledger keeps the run's clock): those of the window
    const neverSent = new Set(
      (await this.#o.ledger.listAllOrders({ fromMs, status: ['cancelled', 'failed', 'rejected'] }))
        .filter((o) => o.sendAttempts === 0)
        .map((o) => o.clientOrderId),
    );
    const out: { underlying: string; notionalUsd: number; atMs: number }[] = [];
    for (const i of intents) {
      if (safeMeta(i.instrument)?.kind === 'option' || neverSent.has(i.clientOrderId)) continue;
      const notionalUsd = Number(i.sizeBase) * i.referencePriceUsd;
      if (!Number.isFinite(notionalUsd)) {
        this.#o.log(
          'warn',
          `ledger intent ${i.id} left out of the hedge window: its notional is not a number`,
          {
            intent: i.id,
            sizeBase: i.sizeBase,
            referencePriceUsd: i.referencePriceUsd,
          },
        );
        continue;
      }
      out.push({ underlying: i.underlying, notionalUsd, atMs: i.createdAtMs });
    }
    out.sort((a, b) => a.atMs - b.atMs);
    if (out.length > 0) {
      const byUnderlyingUsd: Record<string, number> = {};
      for (const e of out)
        byUnderlyingUsd[e.underlying] = (byUnderlyingUsd[e.underlying] ?? 0) + e.notionalUsd;
      this.#o.log(
        'info',
        `hedge windows start from the ledger: ${out.length} legs of the last ${lookbackMs / 60_000} min`,
        {
          byUnderlyingUsd,
        },
      );
    }
    return out;
  }

  #setMarket(engine: RiskEngine): void {
    const m = this.#o.market;
    for (const u of m?.underlyings ?? []) {
      engine.setMarket(u, {
        spotUsd: m?.spot(u) ?? 0,
        volDecimal: m?.atmVol(u) ?? 0,
        asOfMs: m?.nowMs() ?? 0,
        ...this.#settlementPricesUsd(u),
      });
    }
    for (const [u, l] of this.#learnt) {
      if (!m?.underlyings.includes(u)) engine.setMarket(u, { ...l, ...this.#settlementPricesUsd(u) });
    }
  }

  /**
   * The settlement prices of an underlying's expiries the venues reported, as the risk engine takes
   * them (`settlementPricesUsd`, by expiry date), or nothing when none is known: the engine then takes
   * spot for what has expired and says so in the snapshot's warnings. The engine holds one price per
   * underlying and expiry, while each venue settles its own positions at its own price: where venues
   * report different prices, the median of their prices is used (see #learnSettlements).
   */
  #settlementPricesUsd(underlying: string): { settlementPricesUsd?: Record<string, number> } {
    const dates = this.#settled.get(underlying);
    if (!dates || dates.size === 0) return {};
    const out: Record<string, number> = {};
    for (const [date, byVenue] of dates) {
      const px = median([...byVenue.values()]);
      if (px !== undefined) out[date] = px;
    }
    return { settlementPricesUsd: out };
  }

  /**
   * Learns the settlement prices of the expired options and dated futures in `positions` (this tick's
   * open ones) from the venues holding them that have `fetchSettlementPrices`, asking each venue only
   * for the expiries it has not answered yet (a venue read that failed this tick is not asked). A
   * venue whose read throws or gives nothing leaves its expiries at spot (the engine's warning says
   * so) and is asked again after a wait that doubles on each miss (`SETTLEMENT_RETRY_MS`, up to
   * `SETTLEMENT_RETRY_MAX_MS`), not every tick; the tick goes on either way, and what went wrong is
   * logged when it changes.
   *
   * Each answer is checked where it enters: a valid `SettlementPrice` for an instrument that was asked
   * for, fixed at or after its expiry (a price fixed before is a guess), whose decimal converts to a
   * finite positive number; anything else is left out and logged.
   *
   * Venues disagreeing: the engine keys settlement prices by underlying and expiry date, so one price
   * stands for every venue's positions of that expiry, although each venue pays its own at its own
   * price. The price used is the median of the venues' prices (a venue that reports several for one
   * expiry counts with the median of its own), which one wrong venue out of three cannot move; when
   * the prices are more than `SETTLEMENT_SPREAD_WARN_FRACTION` apart a warning names each venue's
   * price, since a position is then off by its size × the gap between its venue's price and the median.
   */
  async #learnSettlements(
    venues: readonly VenueAdapter[],
    positions: readonly Position[],
    failed: readonly string[],
  ): Promise<void> {
    const nowMs = this.#o.clock.nowMs();
    // underlying → the expiry dates held past their expiry
    const held = new Map<string, Set<string>>();
    // venue → instrument to ask for → its expiry
    const ask = new Map<string, Map<string, AskedSettlement>>();
    for (const p of positions) {
      const m = safeMeta(p.instrument);
      if (!m || (m.kind !== 'option' && m.kind !== 'future') || m.expiryMs > nowMs) continue;
      let dates = held.get(m.underlying);
      if (!dates) {
        dates = new Set();
        held.set(m.underlying, dates);
      }
      dates.add(m.expiryDate);
      if (this.#settled.get(m.underlying)?.get(m.expiryDate)?.has(p.venue)) continue;
      if ((this.#settlementRetry.get(p.venue)?.get(p.instrument)?.nextAtMs ?? 0) > nowMs) continue;
      let wanted = ask.get(p.venue);
      if (!wanted) {
        wanted = new Map();
        ask.set(p.venue, wanted);
      }
      wanted.set(p.instrument, { underlying: m.underlying, date: m.expiryDate, expiryMs: m.expiryMs });
    }
    for (const [u, dates] of this.#settled) {
      for (const date of dates.keys()) if (!held.get(u)?.has(date)) dates.delete(date);
      if (dates.size === 0) this.#settled.delete(u);
    }
    for (const [venueId, waits] of this.#settlementRetry) {
      for (const id of waits.keys()) {
        const m = safeMeta(id);
        if (!m || m.kind === 'perp' || m.kind === 'spot' || !held.get(m.underlying)?.has(m.expiryDate))
          waits.delete(id);
      }
      if (waits.size === 0) this.#settlementRetry.delete(venueId);
    }
    // underlying → date → venue → the prices it reported (one per instrument)
    const reported = new Map<string, Map<string, Map<string, number[]>>>();
    await Promise.all(
      [...ask].map(async ([venueId, wanted]) => {
        const v = venues.find((x) => x.id === venueId);
        if (!v?.fetchSettlementPrices || failed.includes(venueId)) return;
        const trouble: string[] = [];
        const answered = new Set<string>();
        try {
          for (const raw of await v.fetchSettlementPrices([...wanted.keys()])) {
            const r = checkSettlement(raw, wanted);
            if (typeof r === 'string') trouble.push(r);
            else {
              answered.add(r.instrument);
              const byVenue = bucket(reported, r.underlying, r.date, () => new Map<string, number[]>());
              byVenue.set(venueId, [...(byVenue.get(venueId) ?? []), r.priceUsd]);
            }
          }
        } catch (err) {
          trouble.push(err instanceof Error ? err.message : String(err));
        }
        this.#settlementWaits(venueId, [...wanted.keys()], answered, nowMs);
        const now = trouble.join('; ');
        if (now !== (this.#settlementTrouble.get(venueId) ?? '')) {
          if (now)
            this.#o.log(
              'warn',
              `settlement prices from venue ${venueId} left out; its expired positions are taken at spot until it gives them`,
              { venue: venueId, trouble: now },
            );
          this.#settlementTrouble.set(venueId, now);
        }
      }),
    );
    for (const [u, dates] of reported) {
      for (const [date, byVenue] of dates) {
        const known = bucket(this.#settled, u, date, () => new Map<string, number>());
        for (const [venueId, prices] of byVenue) known.set(venueId, median(prices) as number);
        // every venue's price, and every price a venue just gave (one venue may give two for an expiry)
        const all = [...known.values(), ...[...byVenue.values()].flat()];
        const lo = Math.min(...all);
        const hi = Math.max(...all);
        if ((hi - lo) / lo > SETTLEMENT_SPREAD_WARN_FRACTION)
          this.#o.log(
            'warn',
            `venues settle ${u} ${date} at prices ${(((hi - lo) / lo) * 100).toFixed(2)}% apart; its expired positions are valued at their median`,
            {
              underlying: u,
              expiryDate: date,
              medianUsd: median([...known.values()]),
              byVenueUsd: Object.fromEntries(known),
              reportedUsd: Object.fromEntries(byVenue),
            },
          );
      }
    }
  }

  /**
   * After a venue's settlement-price read: the instruments it gave a price for wait no more; each of the
   * others is asked again after its wait, which doubles from `SETTLEMENT_RETRY_MS` on each miss, up to
   * `SETTLEMENT_RETRY_MAX_MS`.
   */
  #settlementWaits(
    venueId: string,
    asked: readonly string[],
    answered: ReadonlySet<string>,
    nowMs: number,
  ): void {
    let waits = this.#settlementRetry.get(venueId);
    for (const id of asked) {
      if (answered.has(id)) {
        waits?.delete(id);
        continue;
      }
      if (!waits) {
        waits = new Map();
        this.#settlementRetry.set(venueId, waits);
      }
      const prev = waits.get(id);
      const delayMs = prev ? Math.min(prev.delayMs * 2, SETTLEMENT_RETRY_MAX_MS) : SETTLEMENT_RETRY_MS;
      waits.set(id, { nextAtMs: nowMs + delayMs, delayMs });
    }
    if (waits?.size === 0) this.#settlementRetry.delete(venueId);
  }

  /**
   * Spot and vol of underlyings no simulated market gives (real venues): spot is the median of the
   * venues' index prices (else perp and spot marks), vol the mean mark IV of the listed options. An
   * underlying never seen keeps no market, and the snapshot says so; one seen before keeps its last
   * values until the venues give new ones.
   */
  #learnMarket(marks: readonly Mark[]): void {
    const simulated = new Set(this.#o.market?.underlyings ?? []);
    const by = new Map<string, { spots: number[]; index: number[]; ivs: number[]; asOfMs: number }>();
    for (const mk of marks) {
      const meta = safeMeta(mk.instrument);
      if (!meta || simulated.has(meta.underlying)) continue;
      let e = by.get(meta.underlying);
      if (!e) {
        e = { spots: [], index: [], ivs: [], asOfMs: 0 };
        by.set(meta.underlying, e);
      }
      if (mk.indexPriceUsd !== undefined) e.index.push(mk.indexPriceUsd);
      if (meta.kind !== 'option' && mk.markPriceUsd > 0) e.spots.push(mk.markPriceUsd);
      // an IV past MAX_IV_DECIMAL is no vol a venue quotes (a percentage for a decimal): the risk engine
      // leaves it out of its marks too, with a warning
      if (
        meta.kind === 'option' &&
        mk.ivDecimal !== undefined &&
        mk.ivDecimal > 0 &&
        mk.ivDecimal <= MAX_IV_DECIMAL
      )
        e.ivs.push(mk.ivDecimal);
      e.asOfMs = Math.max(e.asOfMs, mk.asOfMs);
    }
    for (const [u, e] of by) {
      const prev = this.#learnt.get(u);
      const spot = median(e.index.length > 0 ? e.index : e.spots) ?? prev?.spotUsd;
      const vol =
        e.ivs.length > 0
          ? e.ivs.reduce((a, b) => a + b, 0) / e.ivs.length
          : (prev?.volDecimal ?? this.#o.fallbackVolDecimal?.get(u));
      if (spot === undefined || vol === undefined || !(spot > 0) || !(vol > 0)) continue;
      this.#learnt.set(u, { spotUsd: spot, volDecimal: vol, asOfMs: e.asOfMs });
    }
  }

  /**
   * Reads every venue given. A venue that cannot be read must not make the book look unhedged (its
   * hedge would be placed again elsewhere): its last positions and balances are carried over when they
   * are younger than `staleAfterMs` and no order of ours on it changed since (a fill would have moved
   * them); otherwise the underlyings it held and those of our orders on it that changed (all of them,
   * if it was never read) get no new hedge this tick (`blocked`). Either way the venue is in `failed`
   * and logged, once per streak: when its reads start failing, when the failure or its outcome changes,
   * and when it is read again. A read that does not answer within `venueReadTimeoutMs` is a failed read.
   * `notRunning`: configured venues with no adapter among `venues` (a build that failed, one underway),
   * handled exactly as venues whose read failed (`TickPlannerOptions.notRunning` says why, for the log).
   * `holds(venue)`: whether a venue that cannot be read holds hedging as above (the enabled ones); for
   * the others (disabled) its last good read stands in the same way, else it is left out of the book
   * and nothing is held (see `TickPlannerOptions.venues`).
   * Each venue not read is also in `misses`, for the snapshot's warnings.
   * `live()`: false once the tick was overtaken; a read that ends after that changes nothing.
   */
  async #read(
    venues: readonly VenueAdapter[],
    live: () => boolean,
    notRunning: readonly string[],
    holds: (venue: string) => boolean,
  ) {
    const positions: Position[] = [];
    const balances: Balance[] = [];
    const marks: Mark[] = [];
    const funding: FundingRate[] = [];
    /** Venue → the Greeks it published for the live options it holds ([] when it holds none): see #readGreeks. */
    const greeks = new Map<string, VenueGreeks[]>();
    const missed: UnreadVenues = {
      positions,
      balances,
      failed: [],
      blocked: new Set(),
      blockAll: false,
      misses: [],
    };
    await Promise.all([
      ...venues.map(async (v) => {
        try {
          const readStartedAtMs = this.#o.clock.nowMs();
          const [p, b] = await Promise.all([
            v.fetchPositions(),
            v.fetchBalances(),
            this.#o.breakers ? this.#observeChain(v) : undefined,
          ]);
          if (!live()) return;
          const kept = b.filter((x) => !isGasMoney(v, x));
          // stamped with the read's start, not its end: an order that filled at the venue after it gave
          // these positions, and reached the ledger before the read ended, must count as moved since
          this.#lastGood.set(v.id, { positions: p, balances: kept, atMs: readStartedAtMs });
          const instruments = [...new Set(p.map((x) => x.instrument))];
          // Read alongside the marks; it never throws (a failure keeps the venue's last Greeks, see there).
          const greeksRead = this.#readGreeks(v, p);
          // Real venues are also where spot and vol come from: read every listed mark there.
          const vm = !this.#o.market
            ? await v.fetchMarks()
            : instruments.length > 0
              ? await v.fetchMarks(instruments)
              : [];
          if (!live()) return;
          // the venue's positions go in once its reads are done: a marks read that fails lands in the
          // catch below, which stands in with this read (taken above), so they would count twice
          positions.push(...p);
          balances.push(...kept);
          marks.push(...vm);
          this.#o.onVenueRead?.(v.id, { positions: p, marks: vm, readStartedAtMs });
          this.#setReadOk(v.id, 1);
          // A funding read that fails leaves that perp's carry out of the tick, nothing else: inside the
          // venue's read it counted the venue as unreadable after its positions were taken, and the last
          // read stood in on top of them (its positions twice, a hedge placed against a phantom delta).
          // A failure that lasts (an oracle a venue keeps stale) is logged when it starts or changes, and
          // when the rate is read again, not every tick.
          if (v.fetchFundingRate) {
            for (const i of instruments.filter((x) => x.endsWith(':PERP'))) {
              // an overtaken tick stops asking (its reads change nothing now)
              if (!live()) break;
              const key = `${v.id}|${i}`;
              try {
                funding.push(await v.fetchFundingRate(i));
                if (this.#fundingTrouble.delete(key))
                  this.#o.log('info', `funding rate of ${i} on ${v.id} read again`, {
                    venue: v.id,
                    instrument: i,
                  });
              } catch (err) {
                const kind = failureKind(err);
                if (this.#fundingTrouble.get(key) === kind) continue;
                this.#fundingTrouble.set(key, kind);
                this.#o.log(
                  'warn',
                  `funding rate of ${i} on ${v.id} not read; its carry is left out until it is (logged again when this changes)`,
                  {
                    venue: v.id,
                    instrument: i,
                    err: err instanceof Error ? err.message : String(err),
                  },
                );
              }
            }
          }
          const g = await greeksRead;
          if (g) greeks.set(v.id, g);
          const was = this.#readTrouble.get(v.id);
          if (was !== undefined) {
            this.#readTrouble.delete(v.id);
            this.#o.log(
              'info',
              was.startsWith(NOT_RUNNING)
                ? `venue ${v.id} runs and is read again`
                : `venue ${v.id} read again`,
              { venue: v.id },
            );
          }
        } catch (err) {
          if (live()) await this.#standIn(v.id, err, false, holds(v.id), missed, live);
        }
      }),
      ...notRunning.map((id) => this.#standIn(id, this.#whyNotRunning(id), true, holds(id), missed, live)),
    ]);
    const { failed, blocked, blockAll, misses } = missed;
    misses.sort((a, b) => (a.venue < b.venue ? -1 : a.venue > b.venue ? 1 : 0));
    return { positions, balances, marks, funding, greeks, failed, blocked, blockAll, misses };
  }

  /** `xhedge_venue_read_ok` of `venue` (see `TickPlannerOptions.metrics`). */
  #setReadOk(venue: string, ok: 0 | 1): void {
    const m = this.#o.metrics;
    if (!m) return;
    m.venueReadOk.set({ venue }, ok);
    this.#readOkVenues.add(venue);
  }

  /**
   * `xhedge_book_delta_outside_band` of each decided underlying: |drift| past the band's half-width, 0
   * inside it and where the policy holds on purpose (its time gate not due, the drift below the smallest
   * order), so the alert on it means "should be hedging"; underlyings no longer decided lose their series.
   * Each underlying's `xhedge_last_order_queued_timestamp_seconds` starts at the planner's start.
   */
  #setBandGauges(decisions: readonly HedgeDecision[]): void {
    const m = this.#o.metrics;
    if (!m) return;
    const seen = new Set<string>();
    for (const d of decisions) {
      const u = d.underlying;
      const off = Math.abs(d.driftDelta) - d.bandHalfWidth;
      if (!Number.isFinite(off)) continue;
      seen.add(u);
      m.deltaOutsideBand.set({ underlying: u }, ON_PURPOSE_HOLDS.has(d.code) ? 0 : Math.max(0, off));
      if (!this.#queuedUnderlyings.has(u)) {
        this.#queuedUnderlyings.add(u);
        m.lastOrderQueuedAt.set({ underlying: u }, this.#startedAtSec);
      }
    }
    for (const u of this.#bandUnderlyings)
      if (!seen.has(u)) {
        m.deltaOutsideBand.remove({ underlying: u });
        this.#bandUnderlyings.delete(u);
      }
    for (const u of seen) this.#bandUnderlyings.add(u);
  }

  /** `TickPlannerOptions.notRunning`'s answer; what it throws, if it throws (the tick goes on). */
  #whyNotRunning(venue: string): unknown {
    try {
      return this.#o.notRunning?.(venue);
    } catch (err) {
      return err;
    }
  }

  /**
   * A venue the tick cannot read (its read failed: `err`; or, `notRunning`, it has no adapter: `err` is
   * why, when known), into `into`: its last good read stands in when younger than `staleAfterMs` and
   * none of our orders on it changed since; otherwise, when it `holds` (enabled), the underlyings it
   * held and those of our orders on it that changed get no hedge (`blocked`), all of them when it was
   * never read (`blockAll`), and when it does not (disabled), it is left out of the book and nothing is
   * held. Logged once per streak (see `#read`).
   */
  async #standIn(
    venue: string,
    err: unknown,
    notRunning: boolean,
    holds: boolean,
    into: UnreadVenues,
    live: () => boolean,
  ): Promise<void> {
    into.failed.push(venue);
    this.#setReadOk(venue, 0);
    const last = this.#lastGood.get(venue);
    const moved = last ? await this.#movedSince(venue, last.atMs) : [];
    if (!live()) return;
    const ageMs = last ? this.#o.clock.nowMs() - last.atMs : undefined;
    // A disabled venue takes no new order, so its last good read stays the best estimate however old:
    // leaving it out after staleAfterMs made the planner hedge its positions again elsewhere for the
    // length of an RPC outage, and unwind that at the next good read.
    const carried =
      last !== undefined &&
      moved.length === 0 &&
      (!holds || (ageMs ?? Number.POSITIVE_INFINITY) <= this.#o.staleAfterMs);
    const held = new Set<string>();
    if (carried) {
      into.positions.push(...last.positions);
      into.balances.push(...last.balances);
    } else if (!holds) {
      // disabled: its last read (if any) stands in; an order of ours on it that changed since (one
      // working when it was disabled) holds that order's underlying; never read: left out, nothing held
      if (last) {
        into.positions.push(...last.positions);
        into.balances.push(...last.balances);
        for (const u of moved) held.add(u);
        for (const u of held) into.blocked.add(u);
      }
    } else if (!last) into.blockAll = true;
    else {
      for (const p of last.positions) held.add(safeMeta(p.instrument)?.underlying ?? p.instrument);
      for (const u of moved) held.add(u);
      for (const u of held) into.blocked.add(u);
    }
    const outcome = carried
      ? 'stands in'
      : !holds
        ? last
          ? 'held'
          : 'left out'
        : last
          ? 'held'
          : 'never read';
    into.misses.push({
      venue,
      notRunning,
      disabled: !holds,
      outcome,
      ...(ageMs === undefined ? {} : { ageMs }),
      held: [...held].sort(),
    });
    const kind = notRunning ? `${NOT_RUNNING}${err === undefined ? '' : failureKind(err)}` : failureKind(err);
    const trouble = `${kind}|${holds ? '' : 'disabled, '}${outcome}`;
    if (this.#readTrouble.get(venue) === trouble) return;
    this.#readTrouble.set(venue, trouble);
    const what = notRunning
      ? holds
        ? `venue ${venue} is enabled but not running (its adapter is not built);`
        : `disabled venue ${venue} is not running (its adapter is not built);`
      : holds
        ? `reading venue ${venue} failed;`
        : `reading disabled venue ${venue} failed;`;
    const then = carried
      ? `its positions and balances of ${((ageMs ?? 0) / 1000).toFixed(0)} s ago stand in${holds ? '' : ' (it is disabled: no new order changes them)'}`
      : !holds
        ? last
          ? `its last read stands in, and no hedge for ${[...held].join(', ')} (an order of ours on it changed since)`
          : 'its positions are not in the book (it holds no hedge: it is disabled)'
        : `no hedge for ${last ? 'the underlyings it holds' : 'any underlying (it was never read)'}`;
    this.#o.log(
      'warn',
      `${what} ${then} while it ${notRunning ? 'is not running' : 'fails'} (logged again when this changes)`,
      { venue, ...(err === undefined ? {} : { err: maskedError(err) }) },
    );
  }

  /**
   * The Greeks venue `v` publishes for the live options it holds (`positions`: its read of this tick),
   * for the risk engine's divergence check; asked only of a venue whose capabilities say `venueGreeks`
   * and that has `fetchGreeks`, and only when it holds a live option, so a tick costs no extra read
   * elsewhere. [] when there is nothing to ask (the engine forgets the venue's last set).
   *
   * Never throws: a read that fails gives undefined, and the engine keeps the venue's last set, which it
   * compares while it is younger than `staleAfterMs` and after that lists as stale without comparing.
   * The failure leaves out only this comparison, nothing else of the tick or of other venues. What went
   * wrong is logged when it starts or changes, and when the Greeks are read again, not every tick.
   * Entries are checked where they enter: one for an instrument not asked for is dropped, one without a
   * Greeks record or a time in ms since epoch (the engine would refuse the whole set, or fail the
   * snapshot) is left out and logged the same way.
   */
  async #readGreeks(v: VenueAdapter, positions: readonly Position[]): Promise<VenueGreeks[] | undefined> {
    if (!v.capabilities.venueGreeks || !v.fetchGreeks) return [];
    const nowMs = this.#o.clock.nowMs();
    const asked = new Set<string>();
    for (const p of positions) {
      if (p.sizeBase === 0) continue;
      const m = safeMeta(p.instrument);
      if (m?.kind === 'option' && m.expiryMs > nowMs) asked.add(p.instrument);
    }
    if (asked.size === 0) return [];
    let kind = '';
    let data: Record<string, unknown> = {};
    let out: VenueGreeks[] | undefined;
    try {
      const answer = await v.fetchGreeks([...asked]);
      out = [];
      const invalid: string[] = [];
      for (const g of answer) {
        if (!asked.has(g?.instrument)) continue;
        if (typeof g.greeks === 'object' && g.greeks !== null && Number.isFinite(g.asOfMs) && g.asOfMs >= 0)
          out.push(g);
        else invalid.push(g.instrument);
      }
      if (invalid.length > 0) {
        kind = 'invalid entries';
        data = { leftOut: invalid.slice(0, 10), leftOutCount: invalid.length };
      }
    } catch (err) {
      kind = failureKind(err);
      data = { err: maskedError(err) };
    }
    const was = this.#greeksTrouble.get(v.id);
    if (kind === '') {
      if (was !== undefined) {
        this.#greeksTrouble.delete(v.id);
        this.#o.log('info', `Greeks of venue ${v.id} read again; compared with the model`, { venue: v.id });
      }
    } else if (kind !== was) {
      this.#greeksTrouble.set(v.id, kind);
      this.#o.log(
        'warn',
        out === undefined
          ? `Greeks of venue ${v.id} not read; its last ones are compared until stale (logged again when this changes)`
          : `Greeks of venue ${v.id}: entries without a Greeks record or a valid time left out (logged again when this changes)`,
        { venue: v.id, ...data },
      );
    }
    return out;
  }

  /**
   * Hands the Greeks of this tick's reads to the risk engine (`#readGreeks`): a venue that published
   * some replaces its set, one with no live option left (or no longer run) has its set forgotten, and a
   * venue whose read failed keeps its last set, which the engine stops comparing once it is stale.
   */
  #feedGreeks(read: ReadonlyMap<string, VenueGreeks[]>, venues: readonly VenueAdapter[]): void {
    for (const [venue, list] of read) {
      if (list.length > 0) {
        this.#risk.setVenueGreeks(venue, list);
        this.#greeksFed.add(venue);
      } else if (this.#greeksFed.delete(venue)) this.#risk.setVenueGreeks(venue, []);
    }
    const running = new Set(venues.map((v) => v.id));
    for (const venue of this.#greeksFed)
      if (!running.has(venue)) {
        this.#greeksFed.delete(venue);
        this.#risk.setVenueGreeks(venue, []);
      }
    for (const venue of this.#greeksTrouble.keys())
      if (!running.has(venue)) this.#greeksTrouble.delete(venue);
  }

  /** The underlyings of our orders on `venue` that changed at or after `atMs` (their fills may have moved it). */
  async #movedSince(venue: string, atMs: number): Promise<string[]> {
    // one query over all of them: a page of the newest 500 left out an older order filled since
    const moved = await this.#o.ledger.underlyingsWithOrders(undefined, {
      venue,
      createdFromMs: atMs - 86_400_000,
      updatedFromMs: atMs,
    });
    return [...moved];
  }

  /** Feeds the loss-since-mark breaker with the book's equity, when the whole book was read and valued. */
  async #observeEquity(
    snapshot: RiskSnapshot,
    inputs: { positions: Position[]; balances: Balance[]; marks: Mark[] },
    inTransit: readonly { asset: string; amount: number }[],
    failedVenues: readonly string[],
    ordersWorking: boolean,
  ): Promise<void> {
    const observe = this.#o.breakers?.observeEquity?.bind(this.#o.breakers);
    // While an order works, its money may be in neither a balance nor a position (GMX's order vault
    // until the keeper executes, a transaction not yet mined): equity waits for the next quiet tick.
    if (ordersWorking) return;
    const eq = bookEquity(snapshot, inputs, { inTransit });
    // kept with the snapshot (P&L attribution's actual P&L) only when it is the whole book's
    if (failedVenues.length === 0 && eq.unvalued.length === 0 && Number.isFinite(eq.equityUsd))
      snapshot.bookEquityUsd = eq.equityUsd;
    if (!observe) return;
    const skip =
      failedVenues.length > 0
        ? `venues not read: ${failedVenues.join(', ')}`
        : eq.unvalued.length > 0
          ? `not valued: ${eq.unvalued.slice(0, 5).join(', ')}${eq.unvalued.length > 5 ? ', ...' : ''}`
          : '';
    if (skip !== this.#equitySkip) {
      if (skip) this.#o.log('warn', `book equity not observed (loss-since-mark breaker waits): ${skip}`);
      else this.#o.log('info', 'book equity observed again for the loss-since-mark breaker');
      this.#equitySkip = skip;
    }
    if (skip) return;
    const r = await observe(eq.equityUsd, { atMs: snapshot.asOfMs });
    this.#o.metrics?.equityObservedAt.set(Date.now() / 1000);
    if (r.marked)
      this.#o.log('info', `book marked at its equity, ${eq.equityUsd.toFixed(2)} USD`, {
        cashUsd: eq.cashUsd,
        modelValueUsd: eq.modelValueUsd,
        spotUsd: eq.spotUsd,
        unrealizedUsd: eq.unrealizedUsd,
        inTransitUsd: eq.inTransitUsd,
        marginUsd: eq.marginUsd,
      });
  }

  /** Feeds the chain-halt breaker from the venue's health probe (a failed probe says nothing). */
  async #observeChain(v: VenueAdapter): Promise<void> {
    const h = await v.health().catch(() => undefined);
    if (!h) return;
    this.#o.onVenueHealth?.(v.id, h);
    await this.#o.breakers?.observeChain(v.chain, h.halted);
  }

  /** `venues` less those whose `venue:` or `chain:` breaker is open and cooling down. */
  async #routable<V extends { id: string; chain: string }>(venues: V[]): Promise<V[]> {
    if (venues.length === 0) return venues;
    let out = venues;
    const killed = await this.#killedVenues();
    if (killed.size > 0) {
      out = out.filter((v) => !killed.has(v.id));
      if (out.length < venues.length)
        this.#o.log('info', 'venues left out of routing by their kill switch', {
          venues: venues.filter((v) => killed.has(v.id)).map((v) => v.id),
        });
    }
    const cooling = this.#o.breakers?.coolingDown;
    if (!cooling || out.length === 0) return out;
    const names = [...new Set(out.flatMap((v) => [`venue:${v.id}`, `chain:${v.chain}`]))];
    let blocked: ReadonlySet<string>;
    try {
      blocked = await cooling.call(this.#o.breakers, names);
      if (this.#coolingReadFailing) {
        this.#coolingReadFailing = false;
        this.#o.log('info', 'the open breakers are read again for routing', {});
      }
    } catch (err) {
      if (!isDatabaseUnavailable(err)) throw err;
      // The breakers' store (Redis) is unavailable: which venues an open breaker blocks is unknown, so
      // none is routed to (the order gate, in the same Redis, is shut too); the tick goes on to publish
      // the book, and the breakers' observe step says no hedge is planned from it.
      if (!this.#coolingReadFailing) {
        this.#coolingReadFailing = true;
        this.#o.log(
          'warn',
          'the open breakers could not be read for routing (Redis unavailable): no venue is routed to until they can',
          { err: err instanceof Error ? err.message.split('\n')[0]?.slice(0, 200) : String(err) },
        );
      }
      return [];
    }
    if (blocked.size === 0) return out;
    const open = out.filter((v) => !blocked.has(`venue:${v.id}`) && !blocked.has(`chain:${v.chain}`));
    this.#o.log('info', 'venues left out of routing by an open breaker', {
      venues: out.filter((v) => !open.includes(v)).map((v) => v.id),
      breakers: [...blocked],
    });
    return open;
  }

  /** `killedVenues`, or none when it is not given or its read fails (logged once per streak). */
  async #killedVenues(): Promise<ReadonlySet<string>> {
    if (!this.#o.killedVenues) return new Set();
    try {
      const killed = await this.#o.killedVenues();
      if (this.#killReadFailing) {
        this.#killReadFailing = false;
        this.#o.log('info', 'kill switch read again for routing', {});
      }
      return killed;
    } catch (err) {
      if (!this.#killReadFailing) {
        this.#killReadFailing = true;
        this.#o.log(
          'warn',
          'reading the kill switch for routing failed; routing as if none were engaged (the order gate still blocks)',
          {
            err: err instanceof Error ? err.message : String(err),
          },
        );
      }
      return new Set();
    }
  }

  /**
   * Forgets the hedges counted for the window caps and time gates: the next tick's strategy starts from
   * the ledger's (see #seedExecutions). For a new leadership term: the planner lives across them, and
   * another leader may have hedged while this process did not lead.
   */
  resetHedgeWindows(): void {
    this.#executions.length = 0;
    this.#coveredMs = undefined;
    this.#strategy = undefined;
    this.#policyJson = '';
  }

  /**
   * One tick: the plans to submit (the published snapshot is in `lastSnapshot`). `leaseToken`: the
   * leader lease's fencing token the tick plans under; a token other than the last tick's is a new
   * leadership term, and the hedge windows are read from the ledger again (`resetHedgeWindows`).
   *
   * A tick normally ends before the next begins. One that does not (a call that never answers, which its
   * caller gave up on) is overtaken by the next: it stops at its next step with a
   * {@link TickSupersededError}, having changed nothing the later tick uses, and hands out no plan.
   */
  async plan(o: { leaseToken?: number } = {}): Promise<PlanForExecution[]> {
    const tick = ++this.#tick;
    const live = () => tick === this.#tick;
    const check = () => {
      if (!live()) throw new TickSupersededError(tick, this.#tick);
    };
    // this tick's own deadlines, captured by its venue views: a late call or timeout of an overtaken
    // tick cannot mark a venue hung in this one
    const deadlines = new TickDeadlines(this.#venueReadTimeoutMs, this.#venueTickBudgetMs);
    // the last tick's plans not reported by now were never submitted (see #pending)
    this.#pending.clear();
    if (o.leaseToken !== undefined && o.leaseToken !== this.#leaseToken) {
      if (this.#leaseToken !== undefined) {
        this.resetHedgeWindows();
        this.#o.log('info', 'leading again: the hedge windows start from the ledger', {
          leaseToken: o.leaseToken,
        });
      }
      this.#leaseToken = o.leaseToken;
    }
    this.ticks++;
    this.#o.market?.sync();
    const venueCfg = await this.#o.currentVenues();
    // every venue call of the tick, routing's too, goes through the venue's view with its deadline
    const all = (typeof this.#o.venues === 'function' ? await this.#o.venues(venueCfg) : this.#o.venues).map(
      (v) => this.#deadlined(v, deadlines),
    );
    check();
    const enabledIds = new Set(venueCfg.filter((v) => v.enabled).map((v) => v.id));
    // Disabled venues are read (their positions are still the book's) but never routed to; nor are
    // venues an open breaker (theirs or their chain's) blocks, or every plan to them would be refused
    // while a healthy venue stood idle.
    const enabled = await this.#routable(all.filter((v) => enabledIds.has(v.id)));
    // Orders in flight are read BEFORE the venues: an order that fills while the venues are read is then
    // either still seen as working (hold) or already in the positions read. Reading in the other order
    // lets a keeper fill land between the two reads, and the same delta gets hedged twice.
    const inFlight = await this.#inFlightUnderlyings();
    const transitBefore = await this.#o.inTransit?.();
    // A configured venue with no adapter (its build failed: bad params, a key env var not set; or it is
    // being built) is a venue that cannot be read, never one holding nothing: without it, a hedge held
    // there would drop out of the book and be placed again elsewhere. An enabled one holds hedging for
    // that; a disabled one does not (see `TickPlannerOptions.venues`), and is named in the warnings.
    const running = new Set(all.map((v) => v.id));
    const notRunning = [...new Set(venueCfg.filter((c) => !running.has(c.id)).map((c) => c.id))];
    const { failed, blocked, blockAll, greeks, misses, ...inputs } = await this.#read(
      all,
      live,
      notRunning,
      (id) => enabledIds.has(id),
    );
    const transitAfter = await this.#o.inTransit?.();
    check();
    for (const venue of this.#readOkVenues)
      if (!running.has(venue) && !notRunning.includes(venue)) {
        this.#o.metrics?.venueReadOk.remove({ venue });
        this.#readOkVenues.delete(venue);
      }
    for (const [venue, trouble] of this.#readTrouble) {
      if (running.has(venue) || notRunning.includes(venue)) continue;
      this.#readTrouble.delete(venue);
      // no longer configured, with no adapter: the book leaves it out
      this.#o.log(
        'info',
        `venue ${venue} is no longer configured and has no adapter: it is not part of the book (a hold for it ends)`,
        { venue, was: trouble.split('|')[1] },
      );
    }
    this.#lastInputs = inputs;
    this.#learnMarket(inputs.marks);
    const held = open(inputs.positions);
    // nor is a venue whose calls of the tick timed out or took its budget asked (it would fail at once)
    await this.#learnSettlements(all, held, [...failed, ...deadlines.hung.keys()]);
    check();
    this.#setMarket(this.#risk);
    // Size-0 linear positions (a closed perp whose USD P&L the venue has not settled yet) count for
    // equity only; a closed inverse one's owed coin is delta too (see `open`).
    this.#risk.setBook({
      positions: held,
      balances: inputs.balances,
      funding: inputs.funding,
    });
    this.#risk.updateMarks(inputs.marks);
    this.#feedGreeks(greeks, all);
    const raw = this.#risk.snapshot();
    // Sequence numbers continue the ledger's (after a restart or a leader change): decision, plan and
    // intent ids derive from them, so a reused number would collide with intents recorded earlier
    // (snapshots that led to plans are always written, see SnapshotBus.publish).
    const stored = (await this.#o.ledger.latestRiskSnapshot())?.seq ?? 0;
    check();
    const seq = Math.max(raw.seq + this.#seqOffset, stored + 1);
    this.#seqOffset = seq - raw.seq;
    // a venue not read this tick is said in the snapshot too, not only in the log
    // nowhere to hedge: every venue disabled (or none configured); the book goes unhedged, said as such
    const nothingEnabled =
      enabledIds.size === 0
        ? [
            'no venue is enabled: no hedge can be placed until one is (PUT /v1/venues/{id} with "enabled": true and the version its GET gave)',
          ]
        : [];
    const extra = [...misses.map(missWarning), ...nothingEnabled];
    let snapshot: RiskSnapshot =
      extra.length === 0 ? { ...raw, seq } : { ...raw, seq, warnings: [...raw.warnings, ...extra] };
    this.#lastSnapshot = snapshot;
    const br = this.#o.breakers;
    if (br) {
      try {
        const byVenue = venuePrices(inputs.marks);
        const spots = new Map(Object.entries(snapshot.underlyings).map(([u, r]) => [u, r.spotUsd]));
        const skews = optionSkew(inputs.marks, spots, snapshot.asOfMs);
        await Promise.all(
          Object.entries(snapshot.underlyings).flatMap(([u, r]) => {
            const skew = skews.get(u);
            return [
              br.observePrice(u, r.spotUsd, snapshot.asOfMs),
              br.observeIv?.(u, r.volDecimal, snapshot.asOfMs),
              br.observeDispersion?.(u, byVenue.get(u) ?? {}),
              skew === undefined ? undefined : br.observeSkew?.(u, skew, snapshot.asOfMs),
            ];
          }),
        );
        // stale equity from an overtaken tick must not reach the loss-since-mark breaker
        check();
        const inTransit = new Map(
          [...(transitBefore ?? []), ...(transitAfter ?? [])].map((t) => [t.transferId, t]),
        );
        // A venue not read leaves the equity incomplete, so it is not observed: a drop that is no loss
        // would trip the breaker. A disabled venue never read is not counted there: it never was part of
        // the equity (else a broken disabled venue would stop the breaker's feed for good).
        const unread = failed.filter((id) => enabledIds.has(id) || this.#lastGood.has(id));
        await this.#observeEquity(snapshot, inputs, [...inTransit.values()], unread, inFlight.size > 0);
        check();
      } catch (err) {
        if (!isDatabaseUnavailable(err)) throw err;
        // Fail closed for trading, open for visibility: the snapshot goes out saying the breakers
        // missed this tick, and no plan is made from a tick they could not judge.
        const why = err instanceof Error ? err.message.split('\n')[0]?.slice(0, 200) : String(err);
        if (!this.#observeFailing) {
          this.#observeFailing = true;
          this.#o.log(
            'warn',
            'the circuit breakers could not observe the tick (Redis or the ledger unavailable): the snapshot is published, no hedge is planned until they can',
            { err: why },
          );
        }
        snapshot = {
          ...snapshot,
          warnings: [
            ...snapshot.warnings,
            `the circuit breakers could not observe this tick (Redis or the ledger is unavailable: ${why}); no hedge is planned from it`,
          ],
        };
        this.#lastSnapshot = snapshot;
        check();
        this.#o.onSnapshot?.(snapshot);
        this.#o.metrics?.snapshotWarnings.set(snapshot.warnings.length);
        this.#o.metrics?.plannerTickAt.set(Date.now() / 1000);
        await this.#o.bus.publish(snapshot);
        check();
        return [];
      }
      if (this.#observeFailing) {
        this.#observeFailing = false;
        this.#o.log('info', 'the circuit breakers observe the tick again', {});
      }
    }
    this.#o.onSnapshot?.(snapshot);
    this.#o.metrics?.snapshotWarnings.set(snapshot.warnings.length);
    this.#o.metrics?.plannerTickAt.set(Date.now() / 1000);
    const hold = blockAll ? new Set(Object.keys(snapshot.underlyings)) : blocked;
    const nowMs = this.#o.clock.nowMs();
    const waiting = [...this.#blockedUntil].filter(([, b]) => nowMs < b.untilMs).map(([u]) => u);
    // a venue a call of this tick timed out on is not routed to (its data is left out, as a failed read's)
    const routable = enabled.filter((v) => !deadlines.hung.has(v.id));
    const plans = await this.#hedge(
      snapshot,
      routable,
      new Set([...inFlight, ...hold, ...waiting]),
      check,
      live,
    );
    check();
    await this.#o.bus.publish(snapshot, { force: plans.length > 0 });
    check();
    return plans;
  }

  /** Underlyings with a hedge order not yet final (planned, queued, sent, working, unknown). */
  async #inFlightUnderlyings(): Promise<Set<string>> {
    // all of them, not a page: an underlying left out would be planned again while its order works
    return this.#o.ledger.underlyingsWithOrders(OPEN_ORDER_STATUSES);
  }

  async #hedge(
    snapshot: RiskSnapshot,
    enabled: readonly VenueAdapter[],
    inFlight: ReadonlySet<string>,
    check: () => void,
    live: () => boolean,
  ): Promise<PlanForExecution[]> {
    const policy = await this.#o.currentPolicy();
    // an overtaken tick's policy read may be older than the later tick's: it must not rebuild the strategy
    check();
    const strategy = await this.#strategyFor(policy, check);
    const ctx: Record<string, DecisionContext> = {};
    for (const [u, risk] of Object.entries(snapshot.underlyings)) {
      check();
      const c: DecisionContext = { pendingOrder: inFlight.has(u) };
      const minBase = await this.#venueMinSizeBase(u, enabled);
      if (minBase !== undefined) c.venueMinSizeBase = minBase;
      const vega = strategy.policyFor(u).vega;
      // Option candidates only when the vega solver will run: vega outside its band, nothing in flight.
      if (
        vega?.enabled &&
        !c.pendingOrder &&
        Math.abs(risk.vegaPerVolPoint - vega.targetPerVolPoint) > vega.bandPerVolPoint
      )
        c.vegaCandidates = await this.#vegaCandidates(u, risk, snapshot.asOfMs, enabled, live);
      ctx[u] = c;
    }
    // the decisions update the strategy's state and the cap-hold log: not from an overtaken tick
    check();
    const plans: PlanForExecution[] = [];
    // One per tick: the plans below are routed one after another on the same balances.
    const reservation = new CollateralReservation();
    const decisions = strategy.decide(snapshot, ctx);
    this.#setBandGauges(decisions);
    for (const d of decisions) {
      this.#logCapHold(d);
      if (d.action !== 'hedge') continue;
      const plan = await this.#o.route(d, enabled, reservation);
      check();
      if (!plan || plan.legs.length === 0) {
        this.#o.log('warn', `no route for the ${d.underlying} hedge`, { decision: d.id, reason: d.reason });
        continue;
      }
      this.#pending.set(plan.planId, d);
      const risk = snapshot.underlyings[d.underlying];
      plans.push(risk ? { ...plan, netDelta: planNetDelta(plan, d, risk) } : plan);
    }
    return plans;
  }

  /** A cap hold (window used up, per-order cap below the smallest order) is logged once, when it starts. */
  #logCapHold(d: HedgeDecision): void {
    const code = CAP_HOLDS.has(d.code) ? d.code : '';
    if (code === (this.#capHold.get(d.underlying) ?? '')) return;
    if (code) this.#o.log('warn', `no ${d.underlying} hedge: ${code}`, { decision: d.id, reason: d.reason });
    this.#capHold.set(d.underlying, code);
  }

  /**
   * The smallest minimum order among the enabled venues that can take the underlying's delta hedge
   * (their perp, else spot market, as routing picks it), underlying units; undefined when none lists
   * one. A venue whose markets cannot be read is left out (routing logs it).
   */
  async #venueMinSizeBase(underlying: string, enabled: readonly VenueAdapter[]): Promise<number | undefined> {
    let min: number | undefined;
    for (const v of enabled) {
      let markets: MarketInfo[];
      try {
        markets = await this.#markets(v);
      } catch {
        continue;
      }
      const list = markets.filter(
        (m) => m.active && m.instrument.underlying === underlying && m.instrument.kind !== 'option',
      );
      const market =
        list.find((m) => m.instrument.kind === 'perp') ?? list.find((m) => m.instrument.kind === 'spot');
      const x = market ? Number(market.minSizeBase) : Number.NaN;
      if (Number.isFinite(x) && x >= 0) min = min === undefined ? x : Math.min(min, x);
    }
    return min;
  }

  /** `v`'s markets (a tick's view lists them once per adapter, see `#deadlined`). */
  async #markets(v: VenueAdapter): Promise<MarketInfo[]> {
    return v.loadMarkets();
  }

  /**
   * Options the vega solver may trade, from every enabled venue that publishes an option chain: per-unit
   * Greeks from the risk model at the snapshot's spot and vol (mark IV where the venue gives one), cost
   * from the quoted spread plus the venue's fee (measured once per venue from a quote of its smallest
   * order), sizes within the venue's minimum, step and largest order. A venue that fails is left out.
   */
  async #vegaCandidates(
    underlying: string,
    risk: RiskSnapshot['underlyings'][string],
    nowMs: number,
    enabled: readonly VenueAdapter[],
    live: () => boolean,
  ): Promise<VegaCandidate[]> {
    const out: VegaCandidate[] = [];
    for (const v of enabled) {
      // an overtaken tick stops asking (its caller drops what it finds)
      if (!live()) break;
      if (!v.fetchOptionChain || !v.capabilities.products.includes('option')) continue;
      try {
        const chain = await v.fetchOptionChain(underlying);
        const infos = new Map((await this.#markets(v)).map((m) => [m.instrument.id, m]));
        const feeBps = await this.#optionFeeBps(v, chain[0]?.instrument.id, infos, risk.spotUsd);
        const vegaPolicy = this.#strategy?.policyFor(underlying).vega;
        const side = risk.vegaPerVolPoint < (vegaPolicy?.targetPerVolPoint ?? 0) ? 'buy' : 'sell';
        const cap = this.#o.maxOptionOrderBase?.[underlying] ?? 1000;
        const venueCandidates: VegaCandidate[] = [];
        for (const entry of chain) {
          if (!live()) break;
          const info = infos.get(entry.instrument.id);
          if (!info?.active) continue;
          const maxOrder = info.maxOrderSizeBase === undefined ? cap : Number(info.maxOrderSizeBase);
          const fromChain = vegaCandidatesFromChain({
            venue: v.id,
            chain: v.chain,
            underlying,
            options: [entry],
            spotUsd: risk.spotUsd,
            volDecimal: risk.volDecimal,
            rateDecimal: risk.rateDecimal,
            nowMs,
            feeBps,
            maxSizeBase: Math.min(cap, maxOrder),
            minSizeBase: Number(info.minSizeBase),
            sizeStepBase: Number(info.sizeStepBase),
          });
          for (const c of fromChain) {
            const sized = await this.#sizeOption(v, c, side, entry.mark.markPriceUsd, info);
            if (sized) venueCandidates.push(sized);
          }
        }
        // One option per venue and tick: an AMM reprices after each trade (its vol and skew move with
        // the vega it sells), so a second leg quoted before the first fills would miss its limit. The
        // cheapest per vega point goes now; the next tick continues from the new book.
        const best = venueCandidates.sort(
          (a, b) => a.costPerUnitUsd / a.vegaPerVolPoint - b.costPerUnitUsd / b.vegaPerVolPoint,
        )[0];
        if (best) out.push(best);
      } catch (err) {
        this.#o.log('warn', `option chain of ${v.id} left out of the vega hedge`, {
          venue: v.id,
          err: err instanceof Error ? err.message : String(err),
        });
      }
    }
    return out;
  }

  /**
   * Caps an option candidate at the largest size the venue fills within `optionPriceBandBps` of the
   * option's mark (an AMM's price moves with size; a leg priced past the pre-trade price band would be
   * blocked at the queue anyway), and sets its cost per unit from the venue's quote at that size
   * (fee + impact), which is what the solver ranks by. Sizes tried: the cap, then quartered down to the
   * venue minimum. Undefined when not even the minimum fits.
   */
  async #sizeOption(
    v: VenueAdapter,
    c: VegaCandidate,
    side: 'buy' | 'sell',
    markUsd: number,
    info: MarketInfo,
  ): Promise<VegaCandidate | undefined> {
    const band = this.#o.optionPriceBandBps ?? 150;
    const min = Number(info.minSizeBase);
    const step = Number(info.sizeStepBase) > 0 ? Number(info.sizeStepBase) : min;
    for (let size = c.maxSizeBase; size >= min && size > 0; size /= 4) {
      const q = Math.max(min, Math.floor(size / step + 1e-9) * step);
      const quote = await v.quoteHedge({
        instrument: c.instrument,
        side,
        sizeBase: toDecimalString(q, 12),
        holdingHours: 0,
      });
      const exec = Number(quote.executableSizeBase);
      const offBps = markUsd > 0 ? (Math.abs(quote.expectedPriceUsd - markUsd) / markUsd) * 10_000 : 0;
      if (exec > 0 && offBps <= band) {
        const perUnit = (quote.feeUsd + Math.max(quote.impactUsd, 0)) / exec;
        return { ...c, maxSizeBase: exec, costPerUnitUsd: Math.max(c.costPerUnitUsd, perUnit) };
      }
      if (q <= min) break;
    }
    return undefined;
  }

  /** A venue's option fee in bps of spot notional, from one quote of its smallest order (cached). */
  async #optionFeeBps(
    v: VenueAdapter,
    instrument: string | undefined,
    infos: ReadonlyMap<string, MarketInfo>,
    spotUsd: number,
  ): Promise<number> {
    const adapter = this.#adapterOf.get(v) ?? v;
    const known = this.#optionFeeBpsByVenue.get(adapter);
    if (known !== undefined || instrument === undefined) return known ?? 0;
    const size = infos.get(instrument)?.minSizeBase ?? '1';
    const q = await v.quoteHedge({ instrument, side: 'buy', sizeBase: size, holdingHours: 0 });
    const bps = (q.feeUsd / (Number(q.executableSizeBase) * spotUsd)) * 10_000;
    const fee = Number.isFinite(bps) && bps > 0 ? bps : 0;
    this.#optionFeeBpsByVenue.set(adapter, fee);
    return fee;
  }

  /** Execution's report on a submitted plan: counts the hedge in the strategy's gates when a leg was queued. */
  onPlanned(plan: PlanLike, legs: readonly LegResult[]): void {
    const d = this.#pending.get(plan.planId);
    this.#pending.delete(plan.planId);
    if (!d) return;
    const queued = legs.filter((l) => l.outcome === 'queued').length;
    if (queued > 0 && this.#o.metrics) {
      this.#o.metrics.lastOrderQueuedAt.set({ underlying: d.underlying }, Date.now() / 1000);
      this.#queuedUnderlyings.add(d.underlying);
    }
    const blockedWhole = queued === 0 && legs.some((l) => l.outcome === 'blocked');
    let retryInMs: number | undefined;
    if (blockedWhole) {
      const { initialMs, maxMs } = this.#o.blockedRetry ?? { initialMs: 2000, maxMs: 30_000 };
      const prev = this.#blockedUntil.get(d.underlying);
      retryInMs = Math.min(maxMs, prev ? prev.delayMs * 2 : initialMs);
      this.#blockedUntil.set(d.underlying, {
        untilMs: this.#o.clock.nowMs() + retryInMs,
        delayMs: retryInMs,
      });
    } else if (queued > 0) this.#blockedUntil.delete(d.underlying);
    // Only a delta trade counts in the time gate and the window cap, and only once one of its perp,
    // futures or spot legs is queued: option (vega) legs, and a vega-only plan's leg offsetting their
    // delta, are not the hedge the policy times and caps; counted, they pushed the next scheduled delta
    // hedge a whole interval away.
    // Counted when queued, not when filled: an order later rejected or failed keeps its notional in the
    // window. Conservative on purpose: while it works nobody knows whether it fills (outcome-unknown
    // may have), and a venue refusing every order cannot turn the cap into a retry loop. A restart
    // counts only what was sent (see #seedExecutions).
    const legById = new Map(plan.legs.map((l) => [l.id, l]));
    const deltaQueued = legs.some((l) => {
      const leg = legById.get(l.intentId);
      return l.outcome === 'queued' && leg !== undefined && safeMeta(leg.instrument)?.kind !== 'option';
    });
    if (d.tradeDeltaBase !== 0 && deltaQueued) {
      const atMs = this.#o.clock.nowMs();
      this.#executions.push({ underlying: d.underlying, notionalUsd: d.tradeNotionalUsd, atMs });
      this.#pruneExecutions(atMs);
      this.#strategy?.recordExecution(d.underlying, d.tradeNotionalUsd, atMs);
    }
    // Strategy reasons usually start with the underlying already ("ETH: delta …").
    const reason = d.reason.startsWith(`${d.underlying}:`)
      ? d.reason.slice(d.underlying.length + 1).trim()
      : d.reason;
    this.#o.log('info', `hedge ${d.underlying}: ${reason}`, {
      planId: plan.planId,
      legs: legs.length,
      queued,
      blocked: legs
        .filter((l) => l.outcome === 'blocked')
        .map((l) => `${l.intentId}: ${l.control ?? ''} ${l.reason ?? ''}`),
      ...(retryInMs !== undefined ? { nextPlanInMs: retryInMs } : {}),
    });
  }

  /**
   * Drops the executions no window or time gate of the policy counts any more (`#coveredMs` old; by time,
   * not by count: a count dropped executions still in the window, which a new strategy then missed).
   * Past `MAX_EXECUTIONS` the oldest go too, and the next strategy starts from the ledger instead.
   */
  #pruneExecutions(nowMs: number): void {
    const e = this.#executions;
    const coveredMs = this.#coveredMs ?? Number.POSITIVE_INFINITY;
    let expired = 0;
    while (expired < e.length && nowMs - (e[expired] as { atMs: number }).atMs >= coveredMs) expired++;
    if (e.length - expired > MAX_EXECUTIONS) {
      expired = e.length - MAX_EXECUTIONS;
      this.#coveredMs = undefined;
      this.#o.log(
        'warn',
        `more than ${MAX_EXECUTIONS} hedges in the policy's window; the oldest are dropped here, and the next strategy reads them from the ledger`,
      );
    }
    if (expired > 0) e.splice(0, expired);
  }

  /** A snapshot of the last tick's inputs with other scenario shocks (for the API's scenario grid). */
  customGrid(spotShocksPct: number[], volShocksPts: number[]): RiskSnapshot | undefined {
    const inputs = this.#lastInputs;
    if (!inputs) return undefined;
    const engine = new RiskEngine({
      clock: this.#o.clock,
      staleAfterMs: this.#o.staleAfterMs,
      scenario: { spotShocksPct, volShocksPts },
    });
    this.#setMarket(engine);
    engine.setBook({ positions: open(inputs.positions), balances: inputs.balances, funding: inputs.funding });
    engine.updateMarks(inputs.marks);
    return engine.snapshot();
  }
}
