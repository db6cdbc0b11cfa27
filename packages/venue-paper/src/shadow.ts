import {
  type Balance,
  type Clock,
  Dec,
  type Fill,
  type Mark,
  type Order,
  type Position,
  parseInstrumentId,
  systemClock,
} from '@xhedge/core';
import {
  type HedgeQuote,
  InvalidOrderError,
  type MarketInfo,
  OrderNotFoundError,
  OrderRequest,
  type QuoteRequest,
  type VenueAdapter,
  type VenueCapabilities,
  type VenueHealth,
} from '@xhedge/venue';

/** What one instrument's simulated trades add to the real account. */
interface ShadowBook {
  /** Signed size added, underlying units. */
  size: Dec;
  /** Average entry of `size`, USD per unit (0 while `size` is 0). */
  entryUsd: Dec;
}

/**
 * Dry run (`dryRun: true` in the profile, `xhedge start --dry-run`): a real venue whose orders are
 * simulated instead of sent. Everything the venue answers is real (markets, marks, books, quotes,
 * Greeks, funding, health, the account's own positions and balances); `placeOrder` never reaches it:
 * the order fills at once at the venue's own quote for its size (`quoteHedge`: its price impact, fee
 * and gas), up to the executable size, only when that price is within the order's limit. What the
 * simulated fills add is laid over the account as the venue reports it, so the planner, risk, the
 * controls and the loss-since-mark breaker see the book as if the hedges had traded:
 * - perps and futures: the size is added to the real position; the P&L of the added part (realized
 *   and at the mark) is reported in `unsettledPnlUsd` together with the real position's own; fees and
 *   gas, the P&L the simulated trades realized and the funding they pay or earn (at the venue's rate
 *   and mark, for the time held) move the collateral balance;
 * - spot and options: the size is added and the premium or price paid (plus fees and gas) moves the
 *   collateral balance.
 * The queue, the ledger, the pre-trade controls and the breakers run exactly as they would live.
 * Simulated orders never rest, so there is nothing to cancel (`capabilities.cancel` is false).
 */
export class ShadowVenue implements VenueAdapter {
  readonly id: string;
  readonly kind: string;
  readonly chain: string;
  readonly capabilities: VenueCapabilities;
  readonly #inner: VenueAdapter;
  readonly #clock: Clock;
  readonly #books = new Map<string, ShadowBook>();
  /** Collateral moved by simulated trades, USD (fees and gas paid, premiums, realized perp P&L). */
  #cashUsd = new Dec(0);
  readonly #orders = new Map<string, Order>();
  readonly #fills: Fill[] = [];
  /** When each simulated perp position last paid or received funding, ms. */
  readonly #fundedUntilMs = new Map<string, number>();
  #markets: Promise<MarketInfo[]> | undefined;
  #seq = 0;
  readonly fetchOrderBook?: NonNullable<VenueAdapter['fetchOrderBook']>;
  readonly fetchGreeks?: NonNullable<VenueAdapter['fetchGreeks']>;
  readonly fetchOptionChain?: NonNullable<VenueAdapter['fetchOptionChain']>;
  readonly fetchFundingRate?: NonNullable<VenueAdapter['fetchFundingRate']>;

  constructor(inner: VenueAdapter, o: { clock?: Clock } = {}) {
    this.#inner = inner;
    this.#clock = o.clock ?? systemClock;
    this.id = inner.id;
    this.kind = inner.kind;
    this.chain = inner.chain;
    this.capabilities = { ...inner.capabilities, cancel: false };
    // the venue's optional reads, when it has them, are its own
    if (inner.fetchOrderBook) this.fetchOrderBook = inner.fetchOrderBook.bind(inner);
    if (inner.fetchGreeks) this.fetchGreeks = inner.fetchGreeks.bind(inner);
    if (inner.fetchOptionChain) this.fetchOptionChain = inner.fetchOptionChain.bind(inner);
    if (inner.fetchFundingRate) this.fetchFundingRate = inner.fetchFundingRate.bind(inner);
  }

  /** The venue the reads go to. */
  get inner(): VenueAdapter {
    return this.#inner;
  }

  get #collateral(): string {
    return this.#inner.capabilities.collateral[0] ?? 'USDC';
  }

  loadMarkets(): Promise<MarketInfo[]> {
    return this.#inner.loadMarkets();
  }

  fetchMarks(instruments?: readonly string[]): Promise<Mark[]> {
    return this.#inner.fetchMarks(instruments);
  }

  quoteHedge(req: QuoteRequest): Promise<HedgeQuote> {
    return this.#inner.quoteHedge(req);
  }

  async health(): Promise<VenueHealth> {
    const h = await this.#inner.health();
    return { ...h, details: { ...h.details, dryRun: true } };
  }

  async fetchPositions(): Promise<Position[]> {
    await this.#accrueFunding();
    const real = await this.#inner.fetchPositions();
    const added = [...this.#books].filter(([, b]) => !b.size.isZero());
    if (added.length === 0 && this.#cashUsd.isZero()) return real;
    const perpLike = added.filter(([id]) => isPerpLike(id)).map(([id]) => id);
    const marks = perpLike.length
      ? new Map((await this.#inner.fetchMarks(perpLike)).map((m) => [m.instrument, m.markPriceUsd]))
      : new Map<string, number>();
    const out = real.map((p) => ({ ...p }));
    const now = this.#clock.nowMs();
    for (const [instrument, b] of added) {
      let p = out.find((x) => x.instrument === instrument);
      if (!p) {
        p = {
          venue: this.id,
          chain: this.chain,
          instrument,
          sizeBase: 0,
          settlementCurrency:
            parseInstrumentId(instrument).kind === 'spot'
              ? parseInstrumentId(instrument).base
              : this.#collateral,
          asOfMs: now,
        };
        out.push(p);
      }
      const realSize = new Dec(p.sizeBase);
      const total = realSize.add(b.size);
      if (isPerpLike(instrument)) {
        const mark = marks.get(instrument);
        if (mark === undefined)
          throw new Error(
            `${this.id}: dry run: no mark for ${instrument}, so the simulated part of its position cannot be valued`,
          );
        const realPnl =
          p.unsettledPnlUsd !== undefined
            ? new Dec(p.unsettledPnlUsd)
            : p.entryPriceUsd !== undefined
              ? new Dec(mark).sub(p.entryPriceUsd).mul(realSize)
              : undefined;
        if (realPnl === undefined && !realSize.isZero())
          throw new Error(
            `${this.id}: dry run: ${instrument} has a real position without an entry or P&L, so the merged position cannot be valued`,
          );
        const shadowPnl = new Dec(mark).sub(b.entryUsd).mul(b.size);
        p.unsettledPnlUsd = (realPnl ?? new Dec(0)).add(shadowPnl).toNumber();
      }
      p.entryPriceUsd = total.isZero()
        ? undefined
        : new Dec(p.entryPriceUsd ?? b.entryUsd.toNumber())
            .mul(realSize)
            .add(b.entryUsd.mul(b.size))
            .div(total)
            .abs()
            .toNumber();
      if (p.entryPriceUsd === undefined) delete p.entryPriceUsd;
      p.sizeBase = total.toNumber();
      p.asOfMs = Math.min(p.asOfMs, now);
    }
    return out;
  }

  async fetchBalances(): Promise<Balance[]> {
    await this.#accrueFunding();
    const real = await this.#inner.fetchBalances();
    if (this.#cashUsd.isZero()) return real;
    const out = real.map((b) => ({ ...b }));
    let c = out.find((b) => b.asset === this.#collateral);
    if (!c) {
      c = {
        venue: this.id,
        chain: this.chain,
        asset: this.#collateral,
        amount: 0,
        asOfMs: this.#clock.nowMs(),
      };
      out.push(c);
    }
    c.amount = new Dec(c.amount).add(this.#cashUsd).toNumber();
    if (c.available !== undefined)
      c.available = Math.max(0, new Dec(c.available).add(this.#cashUsd).toNumber());
    return out;
  }

  async fetchFills(opts: { sinceMs?: number; clientOrderId?: string } = {}): Promise<Fill[]> {
    return this.#fills.filter(
      (f) =>
        (opts.clientOrderId === undefined || f.clientOrderId === opts.clientOrderId) &&
        (opts.sinceMs === undefined || f.tsMs >= opts.sinceMs),
    );
  }

  async getOrderByClientId(clientOrderId: string): Promise<Order | null> {
    return this.#orders.get(clientOrderId) ?? null;
  }

  async cancelOrder(clientOrderId: string): Promise<Order> {
    const o = this.#orders.get(clientOrderId);
    if (!o)
      throw new OrderNotFoundError({
        venue: this.id,
        clientOrderId,
        message: `${this.id}: dry run: no order ${clientOrderId}`,
      });
    return o; // simulated orders are final when placed
  }

  async placeOrder(input: OrderRequest): Promise<Order> {
    const parsed = OrderRequest.safeParse(input);
    const invalid = (why: string) =>
      new InvalidOrderError({
        venue: this.id,
        message: `${this.id}: dry run: ${why}`,
        ...(typeof input?.clientOrderId === 'string' ? { clientOrderId: input.clientOrderId } : {}),
      });
    if (!parsed.success)
      throw invalid(
        parsed.error.issues.map((i) => `${i.path.join('.') || 'order'}: ${i.message}`).join('; '),
      );
    const req = parsed.data;
    const seen = this.#orders.get(req.clientOrderId);
    if (seen) return seen;
    this.#markets ??= this.#inner.loadMarkets();
    const market = (await this.#markets).find((m) => m.instrument.id === req.instrument);
    if (!market) throw invalid(`unknown instrument ${req.instrument}`);
    const size = new Dec(req.sizeBase);
    if (size.lt(market.minSizeBase))
      throw invalid(`size ${req.sizeBase} is below the minimum ${market.minSizeBase}`);
    if (!size.div(market.sizeStepBase).isInteger())
      throw invalid(`size ${req.sizeBase} is not a multiple of the step ${market.sizeStepBase}`);
    if ((req.orderType === 'limit' || req.orderType === 'ioc') && req.limitPriceUsd === undefined)
      throw invalid(`a ${req.orderType} order needs limitPriceUsd`);
    const sign = req.side === 'buy' ? 1 : -1;
    if (req.reduceOnly) {
      const pos = (await this.fetchPositions()).find((p) => p.instrument === req.instrument)?.sizeBase ?? 0;
      if (pos === 0 || Math.sign(pos) === sign || size.gt(Math.abs(pos)))
        throw invalid(`reduce-only ${req.side} of ${req.sizeBase} would grow the position ${pos}`);
    }
    const q = await this.#inner.quoteHedge({
      instrument: req.instrument,
      side: req.side,
      sizeBase: req.sizeBase,
      reduceOnly: req.reduceOnly,
    });
    const now = this.#clock.nowMs();
    const price = new Dec(q.expectedPriceUsd);
    const within =
      req.limitPriceUsd === undefined ||
      (sign > 0 ? price.lte(req.limitPriceUsd) : price.gte(req.limitPriceUsd));
    const filled = within ? Dec.min(size, new Dec(q.executableSizeBase)) : new Dec(0);
    const order: Order = {
      clientOrderId: req.clientOrderId,
      intentId: /^[A-Za-z][A-Za-z0-9_-]{2,127}$/.test(req.clientOrderId)
        ? req.clientOrderId
        : `dry-${req.clientOrderId}`,
      venue: this.id,
      venueOrderId: `dry-${++this.#seq}`,
      instrument: req.instrument,
      side: req.side,
      orderType: req.orderType,
      sizeBase: req.sizeBase,
      ...(req.limitPriceUsd !== undefined ? { limitPriceUsd: req.limitPriceUsd } : {}),
      reduceOnly: req.reduceOnly,
      status: filled.isZero() ? 'cancelled' : filled.eq(size) ? 'filled' : 'partially-filled',
      filledSizeBase: filled.toFixed(),
      createdAtMs: now,
      updatedAtMs: now,
      ...(filled.isZero()
        ? {
            error: within
              ? `dry run: the venue quotes no executable size (${q.capReason ?? 'no liquidity'})`
              : `dry run: the quoted price ${q.expectedPriceUsd} is beyond the limit ${req.limitPriceUsd}`,
          }
        : { avgFillPriceUsd: price.toFixed() }),
    };
    if (!filled.isZero()) {
      await this.#accrueFunding(); // the size held so far pays up to now, before it changes
      if (isPerpLike(req.instrument) && !this.#fundedUntilMs.has(req.instrument))
        this.#fundedUntilMs.set(req.instrument, now);
      const share = filled.div(q.executableSizeBase);
      const feeUsd = new Dec(q.feeUsd).mul(share).toNumber();
      this.#apply(req.instrument, filled.mul(sign), price, new Dec(feeUsd).add(q.gasUsd));
      this.#fills.push({
        fillId: `${order.venueOrderId}-1`,
        clientOrderId: req.clientOrderId,
        venue: this.id,
        instrument: req.instrument,
        side: req.side,
        sizeBase: filled.toFixed(),
        priceUsd: price.toFixed(),
        feeUsd,
        gasUsd: q.gasUsd,
        tsMs: now,
      });
    }
    this.#orders.set(req.clientOrderId, order);
    return order;
  }

  /**
   * Funding on the simulated perp positions since they last paid it, at the venue's current rate and
   * mark (longs pay shorts when the rate is positive), into the collateral. Venues without a funding
   * rate read (`fetchFundingRate`) accrue none.
   */
  async #accrueFunding(): Promise<void> {
    const now = this.#clock.nowMs();
    for (const [instrument, since] of this.#fundedUntilMs) {
      const b = this.#books.get(instrument);
      const hours = (now - since) / 3_600_000;
      if (!b || b.size.isZero() || !(hours > 0) || !this.#inner.fetchFundingRate) {
        this.#fundedUntilMs.set(instrument, now);
        continue;
      }
      const [{ ratePerHour }, [mark]] = await Promise.all([
        this.#inner.fetchFundingRate(instrument),
        this.#inner.fetchMarks([instrument]),
      ]);
      if (!mark)
        throw new Error(`${this.id}: dry run: no mark for ${instrument}, so its funding cannot be accrued`);
      this.#cashUsd = this.#cashUsd.sub(b.size.mul(mark.markPriceUsd).mul(ratePerHour).mul(hours));
      this.#fundedUntilMs.set(instrument, now);
    }
  }

  /** Books a simulated fill of signed `delta` at `price`, paying `costUsd` from the collateral. */
  #apply(instrument: string, delta: Dec, price: Dec, costUsd: Dec): void {
    const b = this.#books.get(instrument) ?? { size: new Dec(0), entryUsd: new Dec(0) };
    this.#cashUsd = this.#cashUsd.sub(costUsd);
    if (!isPerpLike(instrument)) {
      this.#cashUsd = this.#cashUsd.sub(delta.mul(price)); // the premium or price changes hands
    } else if (!b.size.isZero() && b.size.isNegative() !== delta.isNegative()) {
      // a reduction realizes P&L on the part closed, against the average entry
      const closed = Dec.min(delta.abs(), b.size.abs()).mul(b.size.isNegative() ? -1 : 1);
      this.#cashUsd = this.#cashUsd.add(price.sub(b.entryUsd).mul(closed));
    }
    const size = b.size.add(delta);
    let entryUsd: Dec;
    if (size.isZero()) entryUsd = new Dec(0);
    else if (b.size.isZero() || size.isNegative() !== b.size.isNegative())
      entryUsd = price; // opened or flipped
    else if (delta.isNegative() === b.size.isNegative())
      entryUsd = b.entryUsd.mul(b.size).add(price.mul(delta)).div(size); // grown
    else entryUsd = b.entryUsd; // reduced
    this.#books.set(instrument, { size, entryUsd });
  }

  async close(): Promise<void> {
    await this.#inner.close?.();
  }
}

function isPerpLike(instrument: string): boolean {
  const k = parseInstrumentId(instrument).kind;
  return k === 'perp' || k === 'future';
}
