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
  checkSettlementPrice,
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
import {
  MemoryShadowStore,
  type ShadowBook,
  type ShadowFundingWrite,
  type ShadowOrderWrite,
  type ShadowSettlementWrite,
  type ShadowState,
  type ShadowStore,
} from './shadow-store.ts';

/**
 * Dry run (`dryRun: true` in the profile, `xhedge start --dry-run`): a real venue whose orders are
 * simulated instead of sent. Everything the venue answers is real (markets, marks, books, quotes,
 * Greeks, funding, settlement prices, health, the account's own positions and balances);
 * `placeOrder` never reaches it: the order fills at once at the venue's own quote for its size
 * (`quoteHedge`: its price impact, fee and gas), up to the executable size, only when that price is
 * within the order's limit. What the simulated fills add is laid over the account as the venue
 * reports it, so the planner, risk, the controls and the loss-since-mark breaker see the book as if
 * the hedges had traded:
 * - perps and futures: the size is added to the real position; the P&L of the added part (realized
 *   and at the mark) is reported in `unsettledPnlUsd` together with the real position's own; fees and
 *   gas, the P&L the simulated trades realized and the funding they pay or earn (at the venue's rate
 *   and mark, for the time held) move the collateral balance;
 * - spot and options: the size is added and the premium or price paid (plus fees and gas) moves the
 *   collateral balance;
 * - options sold short: a sell locks the collateral the venue's quote states for it
 *   (`HedgeQuote.lockedCollateralUsd`, for the filled share of the quoted size) on the part of it that
 *   opens or grows the simulated short (a simulated long it sells back locks nothing): the collateral's
 *   `available` drops by it, its amount (equity) does not. The simulated book nets, as paper Lyra
 *   does: long 1 then sell 3 is short 2 and locks 2/3 of the lock stated for the 3. On a venue that
 *   keeps longs and shorts as separate positions (real Lyra, the venue-lyra adapter: a sell bigger than
 *   a long opens a short of its own that locks the full quoted amount) a flip in one fill locks less
 *   here than the venue would. Buying the short back releases its lock pro rata (all of it when the
 *   short is closed or flipped); its
 *   settlement at expiry releases what is left in the same atomic update that pays it. The quote is the
 *   venue's answer for the real account as it stands (a sell a real long covers may lock nothing
 *   there), and a lock stays as stated at the fill. A quote that states no lock (the field absent)
 *   locks nothing: the dry run's `available` is then higher than the venue's would be. Perps and
 *   futures lock no simulated margin;
 * - an order on an instrument past its expiry (at this venue's clock, as settlement reads it) or listed
 *   inactive is refused with `InvalidOrderError`, as the venues refuse it (not retryable). The expiry is
 *   checked against the clock before the venue's quote and again after it (a slow quote started just
 *   before the expiry does not fill after it); whether it is listed and active, against the markets as
 *   read at most `marketsMaxAgeMs` ago (a board frozen later is seen within that time);
 * - options and dated futures past their expiry: once the venue reports the expiry's settlement price
 *   (`fetchSettlementPrices`, fixed at or after the expiry), the simulated part of the position is
 *   settled once, as the venue settles the real one: its payoff at that price (an option's
 *   max(±(price − strike), 0) × size, a future's (price − entry) × size) moves the collateral balance,
 *   in the coin for a coin-settled instrument (the USD amount ÷ the price), and it is no longer listed.
 *   The real part is left to the venue. Until the price is reported the position stays listed as it is
 *   (the planner values it at the settlement price or spot); over a venue without
 *   `fetchSettlementPrices` it stays listed for good and the risk engine values it at spot (with its
 *   warning), as no price is made up here. A venue that answers nothing (or fails) is asked again
 *   after a wait that doubles from 10 s to 2 min; a failed read or a price left out shows in
 *   `health().details.settlementTrouble`.
 * The queue, the ledger, the pre-trade controls and the breakers run exactly as they would live.
 * Simulated orders never rest, so there is nothing to cancel (`capabilities.cancel` is false).
 *
 * What was simulated (orders by client order id, fills, the added books, the collateral moved, funding
 * times) lives in a `ShadowStore`: this process's memory by default (`MemoryShadowStore`), or the run's
 * Redis (`RedisShadowStore`) so every process of a deployment sees the same simulated fills and a
 * restart keeps them. Every read loads it afresh, settles what is due and accrues funding; each order,
 * each settlement and each funding accrual is one atomic update of it, so a client order id fills once
 * across processes, and an expired position is paid out once and funding paid once.
 */
export class ShadowVenue implements VenueAdapter {
  readonly id: string;
  readonly kind: string;
  readonly chain: string;
  readonly capabilities: VenueCapabilities;
  readonly #inner: VenueAdapter;
  readonly #clock: Clock;
  readonly #store: ShadowStore;
  readonly #marketsMaxAgeMs: number;
  /** The venue's markets as last read (or being read), and when the read started (clock ms). */
  #markets: { read: Promise<MarketInfo[]>; atMs: number } | undefined;
  /**
   * The last market read for each instrument id: a read adds and replaces, never removes, so the
   * settlement still finds an expired instrument the venue no longer lists.
   */
  readonly #known = new Map<string, MarketInfo>();
  /** Expired instruments the venue gave no settlement price for yet: when to ask again, and the wait. */
  readonly #settlementWaits = new Map<string, { nextAtMs: number; waitMs: number }>();
  /** What went wrong in the last settlement-price read ('' when nothing did). */
  #settlementTrouble = '';
  readonly fetchOrderBook?: NonNullable<VenueAdapter['fetchOrderBook']>;
  readonly fetchGreeks?: NonNullable<VenueAdapter['fetchGreeks']>;
  readonly fetchOptionChain?: NonNullable<VenueAdapter['fetchOptionChain']>;
  readonly fetchFundingRate?: NonNullable<VenueAdapter['fetchFundingRate']>;
  readonly fetchSettlementPrices?: NonNullable<VenueAdapter['fetchSettlementPrices']>;

  /**
   * @param o.marketsMaxAgeMs How long the venue's markets, once read, are used for checking orders
   *   before they are read again, ms (a read is a full `loadMarkets`: on Lyra about a hundred RPC
   *   calls). An instrument frozen or delisted later is refused within this time; its expiry is checked
   *   against the clock on every order whatever the age. 0 reads them for every order.
   *   @defaultValue 10_000
   */
  constructor(inner: VenueAdapter, o: { clock?: Clock; store?: ShadowStore; marketsMaxAgeMs?: number } = {}) {
    const maxAgeMs = o.marketsMaxAgeMs ?? MARKETS_MAX_AGE_MS;
    if (typeof maxAgeMs !== 'number' || !Number.isFinite(maxAgeMs) || maxAgeMs < 0)
      throw new RangeError(
        `${inner.id}: dry run: marketsMaxAgeMs must be a finite number of ms >= 0, got ${String(maxAgeMs)}`,
      );
    this.#marketsMaxAgeMs = maxAgeMs;
    this.#inner = inner;
    this.#clock = o.clock ?? systemClock;
    this.#store = o.store ?? new MemoryShadowStore();
    this.id = inner.id;
    this.kind = inner.kind;
    this.chain = inner.chain;
    this.capabilities = { ...inner.capabilities, cancel: false };
    // the venue's optional reads, when it has them, are its own
    if (inner.fetchOrderBook) this.fetchOrderBook = inner.fetchOrderBook.bind(inner);
    if (inner.fetchGreeks) this.fetchGreeks = inner.fetchGreeks.bind(inner);
    if (inner.fetchOptionChain) this.fetchOptionChain = inner.fetchOptionChain.bind(inner);
    if (inner.fetchFundingRate) this.fetchFundingRate = inner.fetchFundingRate.bind(inner);
    if (inner.fetchSettlementPrices) this.fetchSettlementPrices = inner.fetchSettlementPrices.bind(inner);
  }

  /** The venue the reads go to. */
  get inner(): VenueAdapter {
    return this.#inner;
  }

  /** Where the simulated orders, fills, books and collateral are kept. */
  get store(): ShadowStore {
    return this.#store;
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
    const trouble = this.#settlementTrouble ? { settlementTrouble: this.#settlementTrouble } : {};
    return { ...h, details: { ...h.details, dryRun: true, ...trouble } };
  }

  async fetchPositions(): Promise<Position[]> {
    const state = await this.#refresh();
    const real = await this.#inner.fetchPositions();
    const added = [...state.books].filter(([, b]) => !b.size.isZero());
    if (added.length === 0 && state.cashUsd.isZero()) return real;
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

  /**
   * The account's balances with what the simulated trades moved added (collateral and coins), and the
   * collateral the simulated option shorts lock taken off the collateral's `available` (not its amount;
   * a balance that states no `available`, free in full, gets one: its amount less the lock).
   */
  async fetchBalances(): Promise<Balance[]> {
    const { cashUsd, coins, books } = await this.#refresh();
    const real = await this.#inner.fetchBalances();
    const lockedUsd = [...books.values()].reduce((sum, b) => sum.add(b.lockedUsd), new Dec(0));
    const moved: [string, Dec][] = [[this.#collateral, cashUsd], ...coins];
    if (moved.every(([, d]) => d.isZero()) && lockedUsd.isZero()) return real;
    const out = real.map((b) => ({ ...b }));
    for (const [asset, d] of moved) {
      const lock = asset === this.#collateral ? lockedUsd : new Dec(0);
      if (d.isZero() && lock.isZero()) continue;
      let c = out.find((b) => b.asset === asset);
      if (!c) {
        c = { venue: this.id, chain: this.chain, asset, amount: 0, asOfMs: this.#clock.nowMs() };
        out.push(c);
      }
      const free = new Dec(c.available ?? c.amount);
      c.amount = new Dec(c.amount).add(d).toNumber();
      if (c.available !== undefined || !lock.isZero())
        c.available = Dec.max(0, free.add(d).sub(lock)).toNumber();
    }
    return out;
  }

  async fetchFills(opts: { sinceMs?: number; clientOrderId?: string } = {}): Promise<Fill[]> {
    return this.#store.fills(opts);
  }

  async getOrderByClientId(clientOrderId: string): Promise<Order | null> {
    return (await this.#store.order(clientOrderId)) ?? null;
  }

  async cancelOrder(clientOrderId: string): Promise<Order> {
    const o = await this.#store.order(clientOrderId);
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
    const seen = await this.#store.order(req.clientOrderId);
    if (seen) return seen;
    const market = (await this.#recentMarkets()).find((m) => m.instrument.id === req.instrument);
    // as the venue would: an option board past its expiry may stay listed until it is settled
    const id = parseInstrumentId(req.instrument);
    const expiryMs = market?.instrument.expiryMs ?? ('expiryMs' in id ? id.expiryMs : undefined);
    const refuseExpired = () => {
      if (expiryMs !== undefined && expiryMs <= this.#clock.nowMs())
        throw invalid(`${req.instrument} expired at ${new Date(expiryMs).toISOString()} and takes no order`);
    };
    refuseExpired();
    if (!market) throw invalid(`unknown instrument ${req.instrument}`);
    if (!market.active) throw invalid(`${req.instrument} is inactive on the venue and takes no order`);
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
    // the quote may take seconds: an order it carried past the expiry fills no more than a late one
    refuseExpired();
    const now = Math.floor(this.#clock.nowMs());
    const price = new Dec(q.expectedPriceUsd);
    const within =
      req.limitPriceUsd === undefined ||
      (sign > 0 ? price.lte(req.limitPriceUsd) : price.gte(req.limitPriceUsd));
    const filled = within ? Dec.min(size, new Dec(q.executableSizeBase)) : new Dec(0);
    // the size held so far pays funding up to now, before it changes (at the rate and mark read here)
    const funding =
      !filled.isZero() && isPerpLike(req.instrument)
        ? await this.#fundingInputs([req.instrument])
        : new Map<string, FundingInput>();
    const feeUsd = filled.isZero() ? 0 : new Dec(q.feeUsd).mul(filled.div(q.executableSizeBase)).toNumber();
    // the collateral the venue states the filled share of a sell locks (undefined: it states none)
    const lockUsd = filled.isZero() ? undefined : this.#quotedLockUsd(q, filled);
    // computed from the stored state as it is when written (the store may ask again on a newer one)
    const decide = (state: ShadowState): ShadowOrderWrite => {
      const venueOrderId = `dry-${state.orderSeq + 1}`;
      const order: Order = {
        clientOrderId: req.clientOrderId,
        intentId: /^[A-Za-z][A-Za-z0-9_-]{2,127}$/.test(req.clientOrderId)
          ? req.clientOrderId
          : `dry-${req.clientOrderId}`,
        venue: this.id,
        venueOrderId,
        instrument: req.instrument,
        side: req.side,
        orderType: req.orderType,
        sizeBase: req.sizeBase,
        ...(req.limitPriceUsd !== undefined ? { limitPriceUsd: req.limitPriceUsd } : {}),
        reduceOnly: req.reduceOnly,
        // final, as the paper venues end a partial fill: the remainder is cancelled, not left working
        status: filled.eq(size) ? 'filled' : 'cancelled',
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
        ...(!filled.isZero() && filled.lt(size)
          ? {
              error: `dry run: partially filled ${filled.toFixed()} of ${size.toFixed()}; remainder cancelled by the venue (${q.capReason ?? 'capacity'})`,
            }
          : {}),
      };
      if (filled.isZero()) return { order, cashUsd: state.cashUsd };
      const accrued = isPerpLike(req.instrument)
        ? accrue(state, [req.instrument], now, funding)
        : { cashUsd: state.cashUsd, fundedUntilMs: new Map<string, number>() };
      const booked = apply(
        state.books.get(req.instrument),
        accrued.cashUsd,
        req.instrument,
        filled.mul(sign),
        price,
        new Dec(feeUsd).add(q.gasUsd),
        lockUsd,
      );
      return {
        order,
        fill: {
          fillId: `${venueOrderId}-1`,
          clientOrderId: req.clientOrderId,
          venue: this.id,
          instrument: req.instrument,
          side: req.side,
          sizeBase: filled.toFixed(),
          priceUsd: price.toFixed(),
          feeUsd,
          gasUsd: q.gasUsd,
          tsMs: now,
        },
        book: { instrument: req.instrument, book: booked.book },
        cashUsd: booked.cashUsd,
        fundedUntilMs: accrued.fundedUntilMs,
      };
    };
    return this.#store.placeOrder(req.clientOrderId, decide);
  }

  /**
   * The markets as the venue listed them at most `marketsMaxAgeMs` ago (an order is checked against
   * them, as the venue checks it), read again when older; orders at once share one read. Each read
   * adds to the settlement's lookup (`#known`). A failed read is not kept.
   */
  async #recentMarkets(): Promise<MarketInfo[]> {
    const now = this.#clock.nowMs();
    let cached = this.#markets;
    if (!cached || now < cached.atMs || now - cached.atMs >= this.#marketsMaxAgeMs) {
      const read = this.#inner.loadMarkets().then((markets) => {
        for (const m of markets) this.#known.set(m.instrument.id, m);
        return markets;
      });
      cached = { read, atMs: now };
      this.#markets = cached;
    }
    try {
      return await cached.read;
    } catch (err) {
      if (this.#markets === cached) this.#markets = undefined;
      throw err;
    }
  }

  /**
   * The collateral the quote `q` states a sell of its `executableSizeBase` locks
   * (`lockedCollateralUsd`), for the `filled` share of it, exact USD; undefined when the quote states
   * none, so nothing is locked. Throws when the venue stated something that is no amount.
   */
  #quotedLockUsd(q: HedgeQuote, filled: Dec): Dec | undefined {
    const stated = q.lockedCollateralUsd;
    if (q.side !== 'sell' || stated === undefined) return undefined;
    if (typeof stated !== 'number' || !Number.isFinite(stated) || stated < 0)
      throw new Error(
        `${this.id}: dry run: the quote for ${q.instrument} states lockedCollateralUsd ${String(stated)}, not an amount >= 0`,
      );
    return new Dec(stated).mul(filled).div(q.executableSizeBase);
  }

  /** The venue's funding rate and mark for `instruments` (none when it has no funding rate read). */
  async #fundingInputs(instruments: readonly string[]): Promise<Map<string, FundingInput>> {
    const out = new Map<string, FundingInput>();
    const read = this.#inner.fetchFundingRate?.bind(this.#inner);
    if (!read || instruments.length === 0) return out;
    const [rates, marks] = await Promise.all([
      Promise.all(instruments.map((i) => read(i))),
      this.#inner.fetchMarks(instruments),
    ]);
    instruments.forEach((instrument, k) => {
      const mark = marks.find((m) => m.instrument === instrument);
      if (!mark)
        throw new Error(`${this.id}: dry run: no mark for ${instrument}, so its funding cannot be accrued`);
      out.set(instrument, { ratePerHour: rates[k]?.ratePerHour ?? 0, markUsd: mark.markPriceUsd });
    });
    return out;
  }

  /** The stored state, loaded afresh, after settling the expired positions due and accruing funding. */
  async #refresh(): Promise<ShadowState> {
    const now = Math.floor(this.#clock.nowMs());
    const settled = await this.#settleExpired(await this.#store.load(), now);
    return this.#accrueFunding(settled, now);
  }

  /**
   * Settles the simulated part of every option and dated future past its expiry whose settlement price
   * the venue reports now; resolves to the stored state after it. The payoffs are computed inside the
   * store's atomic update from the stored books (a settled book is size 0), so processes reading at
   * once, or again after a restart, pay each once. Instruments the venue gives no price for (yet) wait
   * before they are asked again (`SETTLEMENT_RETRY_MS`, doubling to `SETTLEMENT_RETRY_MAX_MS`), as a
   * board may wait hours for its keeper.
   */
  async #settleExpired(state: ShadowState, nowMs: number): Promise<ShadowState> {
    const read = this.#inner.fetchSettlementPrices?.bind(this.#inner);
    const due = dueSettlement(state, nowMs);
    for (const id of this.#settlementWaits.keys()) if (!due.includes(id)) this.#settlementWaits.delete(id);
    const ask = due.filter((id) => (this.#settlementWaits.get(id)?.nextAtMs ?? 0) <= nowMs);
    if (!read || ask.length === 0) return state;
    const prices = new Map<string, Dec>();
    const trouble: string[] = [];
    try {
      for (const raw of await read(ask)) {
        const r = checkSettlement(raw, ask);
        if (typeof r === 'string') trouble.push(r);
        else prices.set(r.instrument, r.priceUsd);
      }
    } catch (err) {
      trouble.push(err instanceof Error ? err.message : String(err));
    }
    for (const id of ask) {
      if (prices.has(id)) this.#settlementWaits.delete(id);
      else this.#waitForSettlement(id, nowMs);
    }
    this.#settlementTrouble = trouble.join('; ');
    if (prices.size === 0) return state;
    try {
      const inCoin = await this.#settlesInCoin([...prices.keys()]);
      return await this.#store.settle((s) => settle(s, prices, inCoin));
    } catch (err) {
      // the markets could not be read or the store was busy: nothing was paid; the read goes on with
      // the positions as they stand, and the settlement is tried again after a wait
      for (const id of prices.keys()) this.#waitForSettlement(id, nowMs);
      this.#settlementTrouble = [
        ...trouble,
        `settling ${[...prices.keys()].join(', ')}: ${err instanceof Error ? err.message : String(err)}`,
      ].join('; ');
      return state;
    }
  }

  /** `id` is asked again after a wait that doubles from `SETTLEMENT_RETRY_MS` up to `SETTLEMENT_RETRY_MAX_MS`. */
  #waitForSettlement(id: string, nowMs: number): void {
    const waitMs = Math.min(
      (this.#settlementWaits.get(id)?.waitMs ?? SETTLEMENT_RETRY_MS / 2) * 2,
      SETTLEMENT_RETRY_MAX_MS,
    );
    this.#settlementWaits.set(id, { nextAtMs: nowMs + waitMs, waitMs });
  }

  /**
   * Which of `instruments` the venue settles in their underlying coin: as its market states
   * (`inverse`: settled in the base), else, for one it no longer lists, as the venue settles
   * (`capabilities.inverseSettlement`).
   */
  async #settlesInCoin(instruments: readonly string[]): Promise<Set<string>> {
    // an instrument not seen in any read yet: read them (a failed read throws, and the settlement is
    // tried again later); one a read has seen stays known after the venue stops listing it
    if (instruments.some((id) => !this.#known.has(id))) await this.#recentMarkets();
    const out = new Set<string>();
    for (const id of instruments) {
      const meta = this.#known.get(id)?.instrument;
      if (meta ? meta.inverse : this.#inner.capabilities.inverseSettlement) out.add(id);
    }
    return out;
  }

  /**
   * Funding on the simulated perp positions since they last paid it, at the venue's current rate and
   * mark (longs pay shorts when the rate is positive), into the collateral; resolves to the stored
   * state after it. The accrual is computed inside the store's atomic update from the stored funding
   * times, so processes reading at once pay each stretch of time once. Venues without a funding rate
   * read (`fetchFundingRate`) accrue none.
   */
  async #accrueFunding(state: ShadowState, now: number): Promise<ShadowState> {
    const due = dueFunding(state, now);
    if (due.length === 0 || !this.#inner.fetchFundingRate) return state;
    const inputs = await this.#fundingInputs(due);
    return this.#store.accrueFunding((s) => {
      const w = accrue(s, dueFunding(s, now), now, inputs);
      return w.fundedUntilMs.size > 0 ? w : undefined;
    });
  }

  async close(): Promise<void> {
    await this.#inner.close?.();
  }
}

/** A venue's funding rate and mark, read before an update that accrues funding. */
interface FundingInput {
  /** Funding rate per hour, as a fraction of notional (longs pay when positive). */
  ratePerHour: number;
  markUsd: number;
}

/** How long the markets read for checking orders are used before they are read again, ms (default). */
const MARKETS_MAX_AGE_MS = 10_000;

/** First wait before an expired instrument without a settlement price is asked again, ms (as the planner's). */
const SETTLEMENT_RETRY_MS = 10_000;
/** Longest such wait, ms. */
const SETTLEMENT_RETRY_MAX_MS = 120_000;

/** The simulated options and dated futures held past their expiry at `nowMs`. */
function dueSettlement(s: ShadowState, nowMs: number): string[] {
  return [...s.books]
    .filter(([i, b]) => {
      if (b.size.isZero()) return false;
      const p = parseInstrumentId(i);
      return (p.kind === 'option' || p.kind === 'future') && p.expiryMs <= nowMs;
    })
    .map(([i]) => i);
}

/**
 * One entry of a venue's settlement-price answer, as an exact price, or why it is left out
 * ({@link checkSettlementPrice}: not a valid `SettlementPrice`, an instrument not asked for, or fixed
 * before its expiry: a guess).
 */
function checkSettlement(
  raw: unknown,
  asked: readonly string[],
): { instrument: string; priceUsd: Dec } | string {
  const r = checkSettlementPrice(raw, new Set(asked));
  return typeof r === 'string' ? r : { instrument: r.entry.instrument, priceUsd: new Dec(r.entry.priceUsd) };
}

/**
 * What the simulated part of an expired instrument's `book` is paid at the settlement price, USD: an
 * option's payoff (call max(S − K, 0), put max(K − S, 0), per unit × signed size; the premium was paid
 * at the fill), a dated future's P&L against its entry (P&L realized by earlier reductions is paid
 * already).
 */
function settlementUsd(instrument: string, book: ShadowBook, priceUsd: Dec): Dec {
  const p = parseInstrumentId(instrument);
  if (p.kind === 'option') {
    const k = new Dec(p.strike);
    return Dec.max(p.optionType === 'call' ? priceUsd.sub(k) : k.sub(priceUsd), 0).mul(book.size);
  }
  if (p.kind === 'future') return priceUsd.sub(book.entryUsd).mul(book.size);
  throw new Error(`dry run: ${instrument} has no expiry, so it does not settle`);
}

/**
 * The settlement of the simulated books in `prices` that still hold a size in `s` (none left: another
 * process or an earlier read settled them, undefined): each pays its payoff into the collateral, or in
 * its underlying coin (the USD amount ÷ the settlement price) when it is in `inCoin`, and closes.
 */
function settle(
  s: ShadowState,
  prices: ReadonlyMap<string, Dec>,
  inCoin: ReadonlySet<string>,
): ShadowSettlementWrite | undefined {
  const books = new Map<string, ShadowBook>();
  const coins = new Map<string, Dec>();
  let cashUsd = s.cashUsd;
  for (const [instrument, priceUsd] of prices) {
    const b = s.books.get(instrument);
    if (!b || b.size.isZero()) continue;
    const usd = settlementUsd(instrument, b, priceUsd);
    if (inCoin.has(instrument)) {
      const coin = parseInstrumentId(instrument).base;
      coins.set(coin, (coins.get(coin) ?? s.coins.get(coin) ?? new Dec(0)).add(usd.div(priceUsd)));
    } else cashUsd = cashUsd.add(usd);
    // closed: a short's lock is released with its payoff, in the same write
    books.set(instrument, { size: new Dec(0), entryUsd: new Dec(0), lockedUsd: new Dec(0) });
  }
  return books.size > 0 ? { books, cashUsd, coins } : undefined;
}

/** The simulated perp positions that have not paid funding up to `nowMs`. */
function dueFunding(s: ShadowState, nowMs: number): string[] {
  return [...s.books]
    .filter(([i, b]) => !b.size.isZero() && isPerpLike(i) && (s.fundedUntilMs.get(i) ?? nowMs) < nowMs)
    .map(([i]) => i);
}

/**
 * The funding `instruments` pay or earn from their stored funding time up to `nowMs`, at the rates read
 * in `inputs` (an instrument without one is left for a later accrual unless it holds nothing), and the
 * funding times that move to `nowMs` (never back: another process may have accrued further already).
 */
function accrue(
  s: ShadowState,
  instruments: readonly string[],
  nowMs: number,
  inputs: ReadonlyMap<string, FundingInput>,
): ShadowFundingWrite {
  let cashUsd = s.cashUsd;
  const fundedUntilMs = new Map<string, number>();
  for (const instrument of instruments) {
    const since = s.fundedUntilMs.get(instrument);
    if (since !== undefined && since >= nowMs) continue;
    const size = s.books.get(instrument)?.size ?? new Dec(0);
    if (since !== undefined && !size.isZero()) {
      const input = inputs.get(instrument);
      if (!input) continue;
      const hours = new Dec(nowMs - since).div(3_600_000);
      cashUsd = cashUsd.sub(size.mul(input.markUsd).mul(input.ratePerHour).mul(hours));
    }
    fundedUntilMs.set(instrument, nowMs);
  }
  return { cashUsd, fundedUntilMs };
}

/**
 * A simulated fill of signed `delta` at `price` on the instrument's `book`, paying `costUsd` from the
 * collateral moved so far (`cashUsd`): the book and collateral after it. For an option, `lockUsd` (the
 * collateral the venue states the whole fill locks, USD; undefined: none stated) is locked for the
 * share of the fill that opens or grows the book's short; a fill that shrinks the short releases its
 * lock pro rata (all of it once the short is gone).
 */
function apply(
  b: ShadowBook | undefined,
  cashUsd: Dec,
  instrument: string,
  delta: Dec,
  price: Dec,
  costUsd: Dec,
  lockUsd: Dec | undefined,
): { book: ShadowBook; cashUsd: Dec } {
  const before = b ?? { size: new Dec(0), entryUsd: new Dec(0), lockedUsd: new Dec(0) };
  let cash = cashUsd.sub(costUsd);
  if (!isPerpLike(instrument)) {
    cash = cash.sub(delta.mul(price)); // the premium or price changes hands
  } else if (!before.size.isZero() && before.size.isNegative() !== delta.isNegative()) {
    // a reduction realizes P&L on the part closed, against the average entry
    const closed = Dec.min(delta.abs(), before.size.abs()).mul(before.size.isNegative() ? -1 : 1);
    cash = cash.add(price.sub(before.entryUsd).mul(closed));
  }
  const size = before.size.add(delta);
  let entryUsd: Dec;
  if (size.isZero()) entryUsd = new Dec(0);
  else if (before.size.isZero() || size.isNegative() !== before.size.isNegative())
    entryUsd = price; // opened or flipped
  else if (delta.isNegative() === before.size.isNegative())
    entryUsd = before.entryUsd.mul(before.size).add(price.mul(delta)).div(size); // grown
  else entryUsd = before.entryUsd; // reduced
  return {
    book: { size, entryUsd, lockedUsd: lockedAfter(instrument, before, size, delta, lockUsd) },
    cashUsd: cash,
  };
}

/**
 * What `before`'s short locks after a fill of signed `delta` leaves the book at `size`, USD (see
 * {@link apply}); only an option locks. The book nets, as paper Lyra does: a sell of 3 on a long 1
 * opens a short of 2, which locks 2/3 of `lockUsd`. A venue that keeps longs and shorts as separate
 * positions (real Lyra) would open a short of 3 beside the long and lock all of it: on such a venue a
 * flip in one fill locks less here than the venue would.
 */
function lockedAfter(
  instrument: string,
  before: ShadowBook,
  size: Dec,
  delta: Dec,
  lockUsd: Dec | undefined,
): Dec {
  if (parseInstrumentId(instrument).kind !== 'option') return before.lockedUsd;
  const shortBefore = Dec.max(before.size.neg(), 0);
  const shortAfter = Dec.max(size.neg(), 0);
  if (shortAfter.isZero()) return new Dec(0);
  if (shortAfter.lt(shortBefore)) return before.lockedUsd.mul(shortAfter).div(shortBefore);
  if (shortAfter.gt(shortBefore) && lockUsd !== undefined)
    return before.lockedUsd.add(lockUsd.mul(shortAfter.sub(shortBefore)).div(delta.abs()));
  return before.lockedUsd;
}

function isPerpLike(instrument: string): boolean {
  const k = parseInstrumentId(instrument).kind;
  return k === 'perp' || k === 'future';
}
