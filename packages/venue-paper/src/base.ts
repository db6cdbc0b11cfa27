import {
  type Balance,
  type ChainId,
  chainInfo,
  Dec,
  type Fill,
  type Mark,
  type Order,
  type OrderStatus,
  type OrderType,
  type Position,
  parseInstrumentId,
  type Side,
  TERMINAL_ORDER_STATUSES,
  toDecimalString,
  type VenueId,
} from '@xhedge/core';
import { createGasProcess, type GasProcess, type PaperMarket } from '@xhedge/sim';
import {
  AcceptablePriceError,
  type HedgeQuote,
  InsufficientFundsError,
  InvalidOrderError,
  type MarketInfo,
  NonceError,
  OrderNotFoundError,
  OrderRequest,
  QuoteRequest,
  RateLimitError,
  RevertedError,
  StaleOracleError,
  type VenueAdapter,
  type VenueCapabilities,
  VenueError,
  VenueHaltedError,
  type VenueHealth,
  VenueNetworkError,
  VenueTimeoutError,
} from '@xhedge/venue';
import { FaultInjector } from './faults.ts';

/** The asset paper venues hold collateral, premium and P&L in. */
export const COLLATERAL = 'USDC';

/**
 * The gas process of a venue's chain: USD per transaction between the chain's typical low and high
 * (the mission's table in core's CHAINS), or `fallbackUsd` for chains not in it; `overrideUsd` wins.
 * Deterministic in the market seed and the chain, so venues on one chain see the same gas.
 */
export function chainGasProcess(
  ctx: Pick<PaperVenueContext, 'chain' | 'market'>,
  fallbackUsd: readonly [number, number],
  overrideUsd: { low?: number | undefined; high?: number | undefined } = {},
): GasProcess {
  const [lo, hi] = chainInfo(ctx.chain)?.typicalTxCostUsd ?? fallbackUsd;
  return createGasProcess({
    seed: ctx.market.seed,
    label: `gas:${ctx.chain}`,
    lowUsd: overrideUsd.low ?? Math.max(lo, 1e-4),
    highUsd: overrideUsd.high ?? Math.max(hi, 1e-4),
  });
}

/** Everything a paper venue needs from its run. */
export interface PaperVenueContext {
  id: VenueId;
  chain: ChainId;
  market: PaperMarket;
  /** Waits `ms` for injected latency. @defaultValue a real `setTimeout` */
  sleep?: (ms: number) => Promise<void>;
}

/** What executing a size now would give, before gas. */
export interface ExecQuote {
  referencePriceUsd: number;
  /** Average price per unit including spread and impact, before fees. */
  avgPriceUsd: number;
  feeUsd: number;
  /** Spread plus impact versus the reference price for the size, USD (negative = price improvement). */
  impactUsd: number;
  /** What the venue can take now (≤ requested). */
  executableSize: InstanceType<typeof Dec>;
  capReason?: string;
}

/** A paper venue: a `VenueAdapter` plus fault injection and collateral moves for the paper bridge. */
export interface PaperVenue extends VenueAdapter {
  readonly faults: FaultInjector;
  /** Adds `amount` (exact decimal or number, > 0) of `asset` to the venue account. */
  creditBalance(asset: string, amount: string | number): Promise<Balance>;
  /** Removes `amount` of `asset`; throws InsufficientFundsError beyond what is free. */
  debitBalance(asset: string, amount: string | number): Promise<Balance>;
  /** Sets a starting position (book seeding), entry at the current mark. */
  seedPosition(instrument: string, sizeBase: number): void;
  /** Adds a starting balance (book seeding). */
  seedBalance(asset: string, amount: number): void;
  /** Runs keepers, funding and settlement up to the clock's time (every request does this first). */
  sync(): void;
}

type D = InstanceType<typeof Dec>;

/** An order as the paper venue keeps it (exact decimals). */
export interface OrderRecord {
  clientOrderId: string;
  instrument: string;
  side: Side;
  orderType: OrderType;
  size: D;
  limit: D | undefined;
  reduceOnly: boolean;
  venueOrderId: string;
  status: OrderStatus;
  filled: D;
  notional: D;
  createdAtMs: number;
  updatedAtMs: number;
  /** Set while the order waits for a keeper or a delayed (timed-out) execution. */
  dueMs: number | undefined;
  /** A limit order resting until the market reaches it. */
  resting: boolean;
  error: string | undefined;
  seq: number;
}

interface PositionState {
  size: D;
  entryUsd: number;
}

/** A reason an execution failed: thrown as a typed error inline, recorded on pending orders. */
export class ExecFailure extends Error {
  constructor(
    readonly kind: 'acceptable-price' | 'stale-oracle' | 'capacity' | 'funds' | 'invalid',
    message: string,
  ) {
    super(message);
  }
}

/**
 * Shared behaviour of the paper venues: validation, idempotent client order ids, the order state
 * machine in its three execution modes, positions, balances and fills in exact decimals, gas, fault
 * injection. Subclasses give markets, prices, fees, marks and their periodic accruals.
 */
export abstract class PaperVenueBase implements PaperVenue {
  readonly id: VenueId;
  readonly chain: ChainId;
  abstract readonly kind: string;
  abstract readonly capabilities: VenueCapabilities;
  readonly faults = new FaultInjector();
  protected readonly market: PaperMarket;
  protected readonly orders = new Map<string, OrderRecord>();
  /**
   * Orders that `sync()` must look at: waiting for a keeper or a delayed execution, or resting.
   * Kept apart from `orders` (which holds every order ever placed, for lookups by client id) so a
   * sync costs O(working orders), not O(history).
   */
  readonly #working = new Set<OrderRecord>();
  protected readonly fills: Fill[] = [];
  protected readonly positions = new Map<string, PositionState>();
  protected readonly balances = new Map<string, D>();
  readonly #sleep: (ms: number) => Promise<void>;
  /** Latency of every request from the venue's params, ms (injected faults add to it). */
  protected requestLatencyMs = 0;
  #seq = 0;
  #frozenMarks: Map<string, Mark> | undefined;
  #frozenAtMs = 0;

  constructor(ctx: PaperVenueContext) {
    this.id = ctx.id;
    this.chain = ctx.chain;
    this.market = ctx.market;
    this.#sleep = ctx.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  }

  // ---- hooks for subclasses ----
  protected abstract marketInfos(): MarketInfo[];
  /** Price of executing `size` now; throws ExecFailure when it cannot. */
  protected abstract execQuote(instrument: string, side: Side, size: D): ExecQuote;
  protected abstract markOf(instrument: string): Mark;
  /** Cost of one transaction now, USD. */
  protected abstract gasUsdNow(): number;
  /** `premium`: cash changes hands at the trade price (options, spot); `margin`: P&L realized on closing (perps). */
  protected abstract settlement(instrument: string): 'premium' | 'margin';
  /** Collateral locked per unit of |position| (perps: notional / max leverage; short options: a share of spot). */
  protected abstract marginPerUnitUsd(instrument: string, size: D): number;
  /**
   * Collateral executing `size` now would lock on top of its premium and fee, USD (a quote's
   * `lockedCollateralUsd`); undefined where this venue does not state it.
   */
  protected lockedCollateralUsd(_instrument: string, _side: Side, _size: D): number | undefined {
    return undefined;
  }
  /** Funding and borrow over `hours` for a position change, USD (signed, + = cost). */
  protected fundingCarryUsd(_instrument: string, _side: Side, _size: D, _hours: number): number {
    return 0;
  }
  /** Time from send to fill, ms. */
  protected expectedLatencyMs(): number {
    return this.requestLatencyMs + (chainInfo(this.chain)?.blockTimeMs ?? 0);
  }
  /** How long a timed-out order takes to land when the fault gives no delay. */
  protected defaultLateFillMs(): number {
    return Math.max(1000, chainInfo(this.chain)?.blockTimeMs ?? 0);
  }
  /** Whether execution uses the oracle (stale marks then fail trades). */
  protected abstract readonly oraclePriced: boolean;
  /** Venue order id for a new order (venue-specific form); may throw InvalidOrderError. */
  protected abstract allocateVenueOrderId(clientOrderId: string, seq: number): string;
  /** Periodic accruals (funding, borrow, expiries) up to market time `nowMs`. */
  protected accrue(_nowMs: number): void {}
  /** A non-marketable limit order that rests (orderbook venues) or null when this venue never rests orders. */
  protected restsIfNotMarketable(_rec: OrderRecord): boolean {
    return false;
  }
  /** Called on sync for resting orders; returns the fill price when the market reached the limit. */
  protected restingFillPrice(_rec: OrderRecord): number | undefined {
    return undefined;
  }
  /** Fee of a resting (maker) fill, USD. */
  protected makerFeeUsd(_rec: OrderRecord, _notionalUsd: number): number {
    return 0;
  }

  // ---- helpers ----
  protected now(): number {
    return this.market.nowMs();
  }
  protected err(message: string, extra: { clientOrderId?: string; details?: Record<string, unknown> } = {}) {
    return { venue: this.id, message, ...extra };
  }
  /**
   * The market of a listed instrument; throws InvalidOrderError for a malformed or unknown id, and for
   * an inactive one (an expired option) unless `inactive` allows it (reads such as marks: a position
   * in it may still be listed until it is paid out).
   */
  protected marketOrThrow(instrument: string, opts: { inactive?: boolean } = {}): MarketInfo {
    try {
      parseInstrumentId(instrument);
    } catch (cause) {
      throw new InvalidOrderError({ ...this.err(`bad instrument id "${instrument}"`), cause });
    }
    const m = this.marketInfos().find((x) => x.instrument.id === instrument);
    if (!m) throw new InvalidOrderError(this.err(`unknown instrument ${instrument}`));
    if (!m.active && !opts.inactive) throw new InvalidOrderError(this.err(`${instrument} is not active`));
    return m;
  }
  protected positionSize(instrument: string): D {
    return this.positions.get(instrument)?.size ?? new Dec(0);
  }
  protected cash(): D {
    return this.balances.get(COLLATERAL) ?? new Dec(0);
  }
  protected marginUsedUsd(): number {
    let used = 0;
    for (const [inst, p] of this.positions)
      if (!p.size.isZero()) used += this.marginPerUnitUsd(inst, p.size) * p.size.abs().toNumber();
    return used;
  }
  protected addCash(deltaUsd: number | D): void {
    const d = typeof deltaUsd === 'number' ? new Dec(toDecimalString(deltaUsd, 6)) : deltaUsd;
    this.balances.set(COLLATERAL, this.cash().add(d));
  }
  protected tick(instrument: string): D {
    return new Dec(this.marketInfos().find((m) => m.instrument.id === instrument)?.priceTickUsd ?? '0.01');
  }
  /** Rounds a price to the tick, against the taker (buys up, sells down), so the boundary is exact. */
  protected roundPrice(instrument: string, price: number, side: Side): D {
    const t = this.tick(instrument);
    const q = new Dec(toDecimalString(price, 12)).div(t);
    return (side === 'buy' ? q.ceil() : q.floor()).mul(t);
  }
  protected async enter(): Promise<void> {
    const latency = this.requestLatencyMs + this.faults.latencyMs;
    if (latency > 0) await this.#sleep(latency);
    if (this.faults.halted) throw new VenueHaltedError(this.err('chain halted (injected)'));
    this.sync();
  }

  sync(): void {
    this.market.sync();
    if (this.faults.halted) return;
    const now = this.now();
    this.accrue(now);
    for (const rec of this.#working) {
      if (TERMINAL_ORDER_STATUSES.has(rec.status) || (rec.dueMs === undefined && !rec.resting))
        this.#working.delete(rec);
    }
    if (this.#working.size === 0) return;
    const due = [...this.#working]
      .filter((o) => o.dueMs !== undefined && o.dueMs <= now)
      .sort((a, b) => (a.dueMs ?? 0) - (b.dueMs ?? 0) || a.seq - b.seq);
    for (const rec of due) {
      rec.dueMs = undefined;
      if (this.restsIfNotMarketable(rec)) {
        rec.resting = true;
        continue;
      }
      this.#execute(rec, false);
    }
    for (const rec of this.#working) {
      if (!rec.resting || TERMINAL_ORDER_STATUSES.has(rec.status)) continue;
      const px = this.restingFillPrice(rec);
      if (px !== undefined) {
        rec.resting = false;
        const stale = this.#reduceOnlyStale(rec);
        if (stale !== undefined) {
          // the venue cancels a resting reduce-only order the position no longer covers (it would grow or flip it)
          rec.status = 'cancelled';
          rec.error = stale;
          rec.updatedAtMs = now;
          continue;
        }
        const price = this.roundPrice(rec.instrument, px, rec.side);
        const fee = this.makerFeeUsd(rec, price.mul(rec.size).toNumber());
        this.applyFill(rec, rec.size, price, fee, this.gasUsdNow());
        rec.status = 'filled';
      }
    }
  }

  // ---- VenueAdapter ----
  async loadMarkets(): Promise<MarketInfo[]> {
    await this.enter();
    return this.marketInfos();
  }

  async fetchPositions(): Promise<Position[]> {
    await this.enter();
    const asOfMs = this.now();
    const out: Position[] = [];
    for (const [instrument, p] of this.positions) {
      if (p.size.isZero()) continue;
      out.push({
        venue: this.id,
        chain: this.chain,
        instrument,
        sizeBase: p.size.toNumber(),
        entryPriceUsd: p.entryUsd,
        // Spot holdings are the coin itself; perps and options settle in the collateral.
        settlementCurrency:
          parseInstrumentId(instrument).kind === 'spot' ? parseInstrumentId(instrument).base : COLLATERAL,
        asOfMs,
      });
    }
    return out;
  }

  async fetchBalances(): Promise<Balance[]> {
    await this.enter();
    return [...this.balances.keys()].map((a) => this.#balance(a));
  }

  #balance(asset: string): Balance {
    const amount = (this.balances.get(asset) ?? new Dec(0)).toNumber();
    const locked = asset === COLLATERAL ? this.marginUsedUsd() : 0;
    return {
      venue: this.id,
      chain: this.chain,
      asset,
      amount,
      available: Math.max(0, amount - locked),
      asOfMs: this.now(),
    };
  }

  async fetchMarks(instruments?: readonly string[]): Promise<Mark[]> {
    await this.enter();
    const ids = instruments ?? this.marketInfos().map((m) => m.instrument.id);
    // Expired instruments are marked too (as when every mark is asked for): a position in one stays
    // listed until the venue pays it out, and a reader marks what it holds.
    for (const id of ids) this.marketOrThrow(id, { inactive: true });
    if (this.faults.staleMarks) {
      if (!this.#frozenMarks) {
        this.#frozenMarks = new Map(
          this.marketInfos().map((m) => [m.instrument.id, this.markOf(m.instrument.id)]),
        );
        this.#frozenAtMs = this.now();
      }
      const frozen = this.#frozenMarks;
      return ids.map((id) => this.#quoteFault(frozen.get(id) ?? this.markOf(id)));
    }
    this.#frozenMarks = undefined;
    return ids.map((id) => this.#quoteFault(this.markOf(id)));
  }

  /** A mark as the injected quote faults leave it (crossed: bid and ask swapped). */
  #quoteFault(m: Mark): Mark {
    if (!this.faults.crossedQuotes || m.bidUsd === undefined || m.askUsd === undefined) return m;
    return { ...m, bidUsd: m.askUsd, askUsd: m.bidUsd };
  }

  async fetchFills(opts: { sinceMs?: number; clientOrderId?: string } = {}): Promise<Fill[]> {
    await this.enter();
    return this.fills
      .filter(
        (f) =>
          (opts.sinceMs === undefined || f.tsMs >= opts.sinceMs) &&
          (opts.clientOrderId === undefined || f.clientOrderId === opts.clientOrderId),
      )
      .map((f) => ({ ...f }));
  }

  async quoteHedge(raw: QuoteRequest): Promise<HedgeQuote> {
    await this.enter();
    const parsed = QuoteRequest.safeParse(raw);
    if (!parsed.success)
      throw new InvalidOrderError(this.err(`bad quote request: ${parsed.error.issues[0]?.message ?? ''}`));
    const req = parsed.data;
    const m = this.marketOrThrow(req.instrument);
    const size = new Dec(req.sizeBase);
    if (!size.gt(0)) throw new InvalidOrderError(this.err(`size ${req.sizeBase} must be > 0`));
    let q: ExecQuote;
    try {
      q = this.execQuote(req.instrument, req.side, size);
    } catch (e) {
      throw this.#failureError(e, undefined);
    }
    let exec = q.executableSize;
    let capReason = q.capReason;
    if (m.maxOrderSizeBase !== undefined && exec.gt(m.maxOrderSizeBase)) {
      exec = new Dec(m.maxOrderSizeBase);
      capReason = `largest order is ${m.maxOrderSizeBase}`;
    }
    const gasUsd = this.gasUsdNow();
    const scale = exec.div(size).toNumber();
    const feeUsd = q.feeUsd * scale;
    const impactUsd = q.impactUsd * scale;
    const fundingCarryUsd = this.fundingCarryUsd(req.instrument, req.side, exec, req.holdingHours);
    const out: HedgeQuote = {
      venue: this.id,
      instrument: req.instrument,
      side: req.side,
      requestedSizeBase: size.toFixed(),
      executableSizeBase: exec.toFixed(),
      referencePriceUsd: q.referencePriceUsd,
      expectedPriceUsd: q.avgPriceUsd,
      feeUsd,
      impactUsd,
      gasUsd,
      fundingCarryUsd,
      totalCostUsd: feeUsd + impactUsd + gasUsd + fundingCarryUsd,
      expectedLatencyMs: this.expectedLatencyMs(),
      asOfMs: this.now(),
    };
    if (capReason !== undefined) out.capReason = capReason;
    const lockedCollateralUsd = this.lockedCollateralUsd(req.instrument, req.side, exec);
    if (lockedCollateralUsd !== undefined) {
      // Routing takes it off the free collateral: a NaN would pass every comparison there.
      if (!Number.isFinite(lockedCollateralUsd) || lockedCollateralUsd < 0)
        throw new RangeError(
          `${this.id}: lockedCollateralUsd for ${req.sizeBase} ${req.instrument} must be finite and >= 0, got ${lockedCollateralUsd}`,
        );
      out.lockedCollateralUsd = lockedCollateralUsd;
    }
    return out;
  }

  #validate(raw: OrderRequest): {
    clientOrderId: string;
    instrument: string;
    side: Side;
    orderType: OrderType;
    size: D;
    limit: D | undefined;
    reduceOnly: boolean;
  } {
    const parsed = OrderRequest.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new InvalidOrderError(
        this.err(`bad order: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`, {
          details: { issues: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`) },
        }),
      );
    }
    const r = parsed.data;
    const e = (msg: string) => new InvalidOrderError(this.err(msg, { clientOrderId: r.clientOrderId }));
    if (!this.capabilities.orderTypes.includes(r.orderType))
      throw e(`order type ${r.orderType} is not supported`);
    const size = new Dec(r.sizeBase);
    if (!size.gt(0)) throw e(`size ${r.sizeBase} must be > 0`);
    let limit: D | undefined;
    if (r.limitPriceUsd !== undefined) {
      limit = new Dec(r.limitPriceUsd);
      if (!limit.gt(0)) throw e(`limit price ${r.limitPriceUsd} must be > 0`);
    } else if (r.orderType !== 'market') throw e(`a ${r.orderType} order needs limitPriceUsd`);
    return {
      clientOrderId: r.clientOrderId,
      instrument: r.instrument,
      side: r.side,
      orderType: r.orderType,
      size,
      limit,
      reduceOnly: r.reduceOnly,
    };
  }

  /**
   * The checks of a new order against the market as it stands when the order reaches the venue: listed
   * and active (not past its expiry), size at least the minimum, a multiple of the step and at most the
   * largest order. Not run for a client order id the venue already has: its retry returns that order
   * even after the market changed (the option expired, the pool's largest order shrank).
   */
  #checkMarket(r: { clientOrderId: string; instrument: string; size: D }): void {
    const e = (msg: string) => new InvalidOrderError(this.err(msg, { clientOrderId: r.clientOrderId }));
    const m = this.marketOrThrow(r.instrument);
    const size = r.size.toFixed();
    if (r.size.lt(m.minSizeBase)) throw e(`size ${size} is below the minimum ${m.minSizeBase}`);
    if (!r.size.mod(m.sizeStepBase).isZero()) throw e(`size ${size} is not a multiple of ${m.sizeStepBase}`);
    if (m.maxOrderSizeBase !== undefined && r.size.gt(m.maxOrderSizeBase))
      throw e(`size ${size} is above the largest order ${m.maxOrderSizeBase}`);
  }

  async placeOrder(raw: OrderRequest): Promise<Order> {
    const r = this.#validate(raw);
    await this.enter();
    const existing = this.orders.get(r.clientOrderId);
    // checked as it reaches the venue: the request's latency may have carried it past an expiry (also
    // for a client order id rejected before, which is placed afresh below); never for an order the
    // venue has, which is returned as it is whatever the market did since
    if (!existing || existing.status === 'rejected') this.#checkMarket(r);
    if (existing && existing.status !== 'rejected') {
      const same =
        existing.instrument === r.instrument &&
        existing.side === r.side &&
        existing.size.eq(r.size) &&
        existing.orderType === r.orderType &&
        existing.reduceOnly === r.reduceOnly;
      if (!same)
        throw new InvalidOrderError(
          this.err(`client order id ${r.clientOrderId} was already used for a different order`, {
            clientOrderId: r.clientOrderId,
          }),
        );
      return this.toOrder(existing);
    }
    const injected = this.faults.takeReject();
    if (injected) throw this.#injectedError(injected, r.clientOrderId);
    const pos = this.positionSize(r.instrument);
    const signed = r.side === 'buy' ? r.size : r.size.neg();
    if (r.reduceOnly) {
      if (pos.isZero() || pos.isPos() === signed.isPos())
        throw new InvalidOrderError(
          this.err(`reduce-only ${r.side} of ${r.size.toFixed()} would grow the position ${pos.toFixed()}`, {
            clientOrderId: r.clientOrderId,
          }),
        );
      if (r.size.gt(pos.abs()))
        throw new InvalidOrderError(
          this.err(`reduce-only ${r.side} of ${r.size.toFixed()} would flip the position ${pos.toFixed()}`, {
            clientOrderId: r.clientOrderId,
          }),
        );
    }
    this.checkFunds(r.instrument, r.side, r.size, pos);
    const seq = ++this.#seq;
    const now = this.now();
    const rec: OrderRecord = {
      ...r,
      venueOrderId: this.allocateVenueOrderId(r.clientOrderId, seq),
      status: 'acknowledged',
      filled: new Dec(0),
      notional: new Dec(0),
      createdAtMs: now,
      updatedAtMs: now,
      dueMs: undefined,
      resting: false,
      error: undefined,
      seq,
    };
    this.orders.set(r.clientOrderId, rec);
    this.#working.add(rec); // dropped by the next sync unless it waits or rests
    const timeout = this.faults.takeTimeout();
    if (timeout) {
      rec.dueMs = now + (timeout.fillDelayMs ?? this.defaultLateFillMs());
      throw new VenueTimeoutError(
        this.err('no answer before the deadline (injected); the order may still execute', {
          clientOrderId: r.clientOrderId,
        }),
      );
    }
    if (this.capabilities.executionMode === 'async-keeper') {
      rec.dueMs = now + this.keeperDelayMs();
      return this.toOrder(rec);
    }
    if (this.restsIfNotMarketable(rec)) {
      rec.resting = true;
      return this.toOrder(rec);
    }
    this.#execute(rec, true);
    return this.toOrder(rec);
  }

  /** Delay before a keeper executes an order (async-keeper venues). */
  protected keeperDelayMs(): number {
    return 0;
  }

  /**
   * What a fill taking the position from `pos` to `after` adds to the margin the account locks here
   * (`marginUsedUsd`), USD; 0 when it locks no more. Margin per unit may depend on the side (a short
   * option locks, a long one does not), so a long turned short locks on its whole short, not on the
   * units its size grew by.
   */
  protected marginAddedUsd(instrument: string, pos: D, after: D): number {
    const lockedUsd = (p: D) => this.marginPerUnitUsd(instrument, p) * p.abs().toNumber();
    return Math.max(0, lockedUsd(after) - lockedUsd(pos));
  }

  /** Throws InsufficientFundsError when the account cannot pay for an order that adds exposure. */
  protected checkFunds(instrument: string, side: Side, size: D, pos: D): void {
    const signed = side === 'buy' ? size : size.neg();
    const after = pos.add(signed);
    const mark = this.markOf(instrument).markPriceUsd;
    const gas = this.gasUsdNow();
    let need = gas;
    if (this.settlement(instrument) === 'premium') {
      if (parseInstrumentId(instrument).kind === 'spot' && after.isNeg())
        throw new InsufficientFundsError(
          this.err(`cannot sell ${size.toFixed()} ${instrument}: only ${pos.toFixed()} held`),
        );
      if (side === 'buy') need += mark * size.toNumber() * 1.05;
    }
    need += this.marginAddedUsd(instrument, pos, after);
    const free = this.cash().toNumber() - this.marginUsedUsd();
    if (need > free)
      throw new InsufficientFundsError(
        this.err(`needs about ${need.toFixed(2)} ${COLLATERAL}, ${free.toFixed(2)} free`, {
          details: { needUsd: need, freeUsd: free },
        }),
      );
  }

  #injectedError(kind: string, clientOrderId: string): VenueError {
    const p = this.err(`injected ${kind}`, { clientOrderId });
    switch (kind) {
      case 'invalid':
        return new InvalidOrderError(p);
      case 'insufficient-funds':
        return new InsufficientFundsError(p);
      case 'network':
        return new VenueNetworkError(p);
      case 'rate-limit':
        return new RateLimitError({ ...p, retryAfterMs: 1000 });
      case 'nonce':
        return new NonceError(p);
      default:
        return new RevertedError({ ...p, reason: 'injected revert' });
    }
  }

  #failureError(e: unknown, clientOrderId: string | undefined): VenueError {
    if (e instanceof VenueError) return e;
    if (!(e instanceof ExecFailure)) throw e;
    const p = clientOrderId === undefined ? this.err(e.message) : this.err(e.message, { clientOrderId });
    switch (e.kind) {
      case 'acceptable-price':
        return new AcceptablePriceError(p);
      case 'stale-oracle':
        return new StaleOracleError(p);
      case 'funds':
        return new InsufficientFundsError(p);
      default:
        return new InvalidOrderError(p);
    }
  }

  /**
   * Why a reduce-only order no longer reduces the position as it stands (none left, on its side, or
   * smaller than the order: it would grow or flip it); undefined when it does, or is not reduce-only.
   */
  #reduceOnlyStale(rec: OrderRecord): string | undefined {
    if (!rec.reduceOnly) return undefined;
    const pos = this.positionSize(rec.instrument);
    if (pos.isZero() || pos.isPos() === (rec.side === 'buy') || rec.size.gt(pos.abs()))
      return `reduce-only order no longer reduces the position ${pos.toFixed()}`;
    return undefined;
  }

  /** Executes an order now. Inline failures throw typed errors; late (keeper/timed-out) ones are recorded. */
  #execute(rec: OrderRecord, inline: boolean): void {
    try {
      if (this.oraclePriced && this.faults.staleMarks)
        throw new ExecFailure('stale-oracle', 'oracle price is stale');
      // The position may have changed while the order waited (keeper, late fill).
      const stale = this.#reduceOnlyStale(rec);
      if (stale !== undefined) throw new ExecFailure('invalid', stale);
      // A delayed order landing at or after its option's expiry: the venue reverts it, no model price fills it.
      const expiryMs = this.marketInfos().find((m) => m.instrument.id === rec.instrument)?.instrument
        .expiryMs;
      if (expiryMs !== undefined && expiryMs <= this.now())
        throw new ExecFailure(
          'invalid',
          `${rec.instrument} expired at ${new Date(expiryMs).toISOString()}; the venue takes no trade on it`,
        );
      const q = this.execQuote(rec.instrument, rec.side, rec.size);
      if (q.executableSize.lt(rec.size))
        throw new ExecFailure(
          'capacity',
          `only ${q.executableSize.toFixed()} executable: ${q.capReason ?? 'capacity'}`,
        );
      const price = this.roundPrice(rec.instrument, q.avgPriceUsd, rec.side);
      if (rec.limit !== undefined) {
        const breached = rec.side === 'buy' ? price.gt(rec.limit) : price.lt(rec.limit);
        if (breached)
          throw new ExecFailure(
            'acceptable-price',
            `execution price ${price.toFixed()} is worse than the acceptable price ${rec.limit.toFixed()}`,
          );
      }
      const fraction = this.faults.takePartial();
      let size = rec.size;
      if (fraction !== undefined) {
        const step = new Dec(
          this.marketInfos().find((m) => m.instrument.id === rec.instrument)?.sizeStepBase ?? '1',
        );
        size = rec.size.mul(fraction).div(step).floor().mul(step);
        if (size.isZero()) size = step;
      }
      const fee = q.feeUsd * size.div(rec.size).toNumber();
      this.applyFill(rec, size, price, fee, this.gasUsdNow());
      if (size.lt(rec.size)) {
        rec.status = 'cancelled';
        rec.error = `partially filled ${size.toFixed()} of ${rec.size.toFixed()}; remainder cancelled by the venue`;
      } else rec.status = 'filled';
    } catch (e) {
      const err = this.#failureError(e, rec.clientOrderId);
      rec.updatedAtMs = this.now();
      rec.error = err.shortMessage;
      // A keeper cancels what it cannot execute; an inline transaction is rejected (reverted).
      rec.status = this.capabilities.executionMode === 'async-keeper' ? 'cancelled' : 'rejected';
      if (inline) throw err;
    }
  }

  /** Books a fill: position, average entry, cash (premium or realized P&L), fees and gas. */
  protected applyFill(rec: OrderRecord, size: D, price: D, feeUsd: number, gasUsd: number): void {
    const now = this.now();
    const signed = rec.side === 'buy' ? size : size.neg();
    const st = this.positions.get(rec.instrument) ?? { size: new Dec(0), entryUsd: 0 };
    const px = price.toNumber();
    const before = st.size;
    const after = before.add(signed);
    const reducing = !before.isZero() && before.isPos() !== signed.isPos();
    if (this.settlement(rec.instrument) === 'premium') {
      this.addCash(price.mul(signed).neg());
    } else if (reducing) {
      const closed = Dec.min(size, before.abs());
      const pnl = new Dec(toDecimalString(px - st.entryUsd, 12)).mul(closed).mul(before.isPos() ? 1 : -1);
      this.addCash(pnl);
    }
    if (after.isZero()) st.entryUsd = 0;
    else if (!reducing) {
      st.entryUsd = (st.entryUsd * before.abs().toNumber() + px * size.toNumber()) / after.abs().toNumber();
    } else if (after.isPos() !== before.isPos()) st.entryUsd = px;
    st.size = after;
    this.positions.set(rec.instrument, st);
    this.addCash(-(feeUsd + gasUsd));
    rec.filled = rec.filled.add(size);
    rec.notional = rec.notional.add(price.mul(size));
    rec.updatedAtMs = now;
    this.fills.push({
      // the client order id makes it unique past a restart: a venue order id can restart with the
      // process (paper Drift counts from 1), and the ledger keeps one fill per (venue, fill id)
      fillId: `${rec.venueOrderId}-${rec.clientOrderId}-${this.fills.length + 1}`,
      clientOrderId: rec.clientOrderId,
      venue: this.id,
      instrument: rec.instrument,
      side: rec.side,
      sizeBase: size.toFixed(),
      priceUsd: price.toFixed(),
      feeUsd,
      gasUsd,
      tsMs: now,
    });
  }

  protected toOrder(rec: OrderRecord): Order {
    const o: Order = {
      clientOrderId: rec.clientOrderId,
      intentId: /^[A-Za-z][A-Za-z0-9_-]{2,127}$/.test(rec.clientOrderId)
        ? rec.clientOrderId
        : `ord_${rec.clientOrderId}`,
      venue: this.id,
      venueOrderId: rec.venueOrderId,
      instrument: rec.instrument,
      side: rec.side,
      orderType: rec.orderType,
      sizeBase: rec.size.toFixed(),
      reduceOnly: rec.reduceOnly,
      status: rec.status,
      filledSizeBase: rec.filled.toFixed(),
      createdAtMs: rec.createdAtMs,
      updatedAtMs: rec.updatedAtMs,
    };
    if (rec.limit !== undefined) o.limitPriceUsd = rec.limit.toFixed();
    if (rec.filled.gt(0)) o.avgFillPriceUsd = toDecimalString(rec.notional.div(rec.filled), 8);
    if (rec.error !== undefined) o.error = rec.error;
    return o;
  }

  async getOrderByClientId(clientOrderId: string): Promise<Order | null> {
    await this.enter();
    const rec = this.orders.get(clientOrderId);
    return rec ? this.toOrder(rec) : null;
  }

  async cancelOrder(clientOrderId: string): Promise<Order> {
    await this.enter();
    const rec = this.orders.get(clientOrderId);
    if (!rec) throw new OrderNotFoundError(this.err(`no order ${clientOrderId}`, { clientOrderId }));
    if (!this.capabilities.cancel)
      throw new InvalidOrderError(
        this.err('orders on this venue fill or revert atomically; nothing to cancel', { clientOrderId }),
      );
    if (TERMINAL_ORDER_STATUSES.has(rec.status)) return this.toOrder(rec);
    rec.status = 'cancelled';
    rec.dueMs = undefined;
    rec.resting = false;
    rec.updatedAtMs = this.now();
    rec.error = 'cancelled by the account';
    this.onCancel(rec);
    return this.toOrder(rec);
  }

  /** Orders not yet terminal that wait for a keeper, a delayed execution or the market (resting). */
  protected workingOrders(): OrderRecord[] {
    return [...this.#working].filter(
      (o) => !TERMINAL_ORDER_STATUSES.has(o.status) && (o.dueMs !== undefined || o.resting),
    );
  }

  /** Releases venue-side resources of a cancelled order (e.g. a u8 user order id). */
  protected onCancel(_rec: OrderRecord): void {}

  async health(): Promise<VenueHealth> {
    const start = Date.now();
    const latency = this.requestLatencyMs + this.faults.latencyMs;
    if (latency > 0) await this.#sleep(latency);
    if (!this.faults.halted) this.sync();
    else this.market.sync();
    const staleFor = this.faults.staleMarks && this.#frozenMarks ? this.now() - this.#frozenAtMs : 0;
    const dataAge = Math.max(
      staleFor,
      ...this.market.underlyings.map((u) => this.now() - this.market.state(u).priceAsOfMs),
    );
    return {
      ok: !this.faults.halted,
      latencyMs: Date.now() - start + latency,
      halted: this.faults.halted,
      dataAgeMs: dataAge,
      details: {
        chain: this.chain,
        blockTimeMs: chainInfo(this.chain)?.blockTimeMs ?? 0,
        gasUsd: this.gasUsdNow(),
        openOrders: this.workingOrders().length,
      },
    };
  }

  // ---- paper bridge ----
  #amount(amount: string | number): D {
    const s =
      typeof amount === 'number' ? (Number.isFinite(amount) ? toDecimalString(amount, 12) : 'NaN') : amount;
    if (!/^(0|[1-9][0-9]*)(\.[0-9]+)?$/.test(s) || !new Dec(s).gt(0))
      throw new InvalidOrderError(this.err(`amount ${String(amount)} must be a positive decimal`));
    return new Dec(s);
  }
  async creditBalance(asset: string, amount: string | number): Promise<Balance> {
    const a = this.#amount(amount);
    await this.enter();
    this.balances.set(asset, (this.balances.get(asset) ?? new Dec(0)).add(a));
    return this.#balance(asset);
  }
  async debitBalance(asset: string, amount: string | number): Promise<Balance> {
    const a = this.#amount(amount);
    await this.enter();
    const free = this.#balance(asset).available ?? 0;
    if (a.toNumber() > free + 1e-9)
      throw new InsufficientFundsError(this.err(`cannot debit ${a.toFixed()} ${asset}: ${free} free`));
    this.balances.set(asset, (this.balances.get(asset) ?? new Dec(0)).sub(a));
    return this.#balance(asset);
  }
  seedPosition(instrument: string, sizeBase: number): void {
    this.marketOrThrow(instrument);
    const size = new Dec(toDecimalString(sizeBase, 12));
    this.positions.set(instrument, { size, entryUsd: this.markOf(instrument).markPriceUsd });
  }
  seedBalance(asset: string, amount: number): void {
    this.balances.set(asset, (this.balances.get(asset) ?? new Dec(0)).add(toDecimalString(amount, 12)));
  }
}
