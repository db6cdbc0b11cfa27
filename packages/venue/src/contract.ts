import {
  AssetSymbol,
  type Balance,
  type ChainId,
  DecimalString,
  type Fill,
  FiniteNumber,
  type FundingRate,
  type Greeks,
  InstrumentId,
  InstrumentMeta,
  type Mark,
  type Order,
  OrderType,
  type Position,
  PositiveDecimalString,
  parseInstrumentId,
  Side,
  TimestampMs,
  type VenueId,
} from '@xhedge/core';
import { z } from 'zod';

/** How an order becomes a fill on this venue. */
export type ExecutionMode =
  /** The answer to the request is the fill (CEX, Hyperliquid IOC, paper). */
  | 'sync'
  /** A transaction that fills when it is confirmed (options AMM, spot AMM, Drift). */
  | 'tx-confirmed'
  /** The request creates an order a keeper executes or cancels later (GMX v2). */
  | 'async-keeper';

/**
 * The form of client order id the venue takes. The orchestrator always owns a string id; the adapter
 * maps it: `string` label as is, `hex128` hashed, `uint32` / `u8` into a small integer space with a
 * persisted mapping, `none` where the venue has none and the adapter keeps the mapping durably.
 */
export type ClientOrderIdForm = 'string' | 'hex128' | 'uint32' | 'u8' | 'none';

export const VenueCapabilities = z.object({
  products: z.array(z.enum(['perp', 'spot', 'future', 'option'])).min(1),
  /** The venue publishes Greeks (compared with local ones, never trusted blindly). */
  venueGreeks: z.boolean(),
  liquidityModel: z.enum(['orderbook', 'amm', 'oracle', 'rfq']),
  executionMode: z.enum(['sync', 'tx-confirmed', 'async-keeper']),
  orderTypes: z.array(OrderType).min(1),
  reduceOnly: z.boolean(),
  cancel: z.boolean(),
  clientOrderId: z.enum(['string', 'hex128', 'uint32', 'u8', 'none']),
  /** Funding settlement interval in hours (1 for hourly), null where there is no funding. */
  fundingIntervalHours: z.number().positive().nullable(),
  collateral: z.array(AssetSymbol).min(1),
  inverseSettlement: z.boolean(),
  gasAsset: AssetSymbol.nullable(),
});
export type VenueCapabilities = z.infer<typeof VenueCapabilities>;

/** One tradable instrument on a venue, with its trading rules in underlying units. */
export const MarketInfo = z.object({
  instrument: InstrumentMeta,
  /** The venue's own symbol or market key; used only inside the adapter. */
  venueSymbol: z.string().min(1),
  minSizeBase: DecimalString,
  sizeStepBase: DecimalString,
  priceTickUsd: DecimalString,
  /** Largest single order the venue takes, underlying units. */
  maxOrderSizeBase: DecimalString.optional(),
  /** Room left under an open-interest cap, per side (GMX), underlying units. */
  openInterestRoomBase: z.object({ long: DecimalString, short: DecimalString }).optional(),
  /**
   * The fraction of notional the venue requires to open a position in this market, as the venue
   * states it (0.2 = at most 5× leverage): Drift's `margin_ratio_initial`, GMX's
   * `MIN_COLLATERAL_FACTOR`, a paper venue's 1 / max leverage. Routing never sizes a leg on less margin
   * than this, so an order does not fail for margin (or open near liquidation) where the venue asks for
   * more than routing's own default. Absent where the venue states none (spot, options), or the
   * adapter cannot read it.
   */
  initialMarginFraction: FiniteNumber.positive().max(1).optional(),
  active: z.boolean(),
});
export type MarketInfo = z.infer<typeof MarketInfo>;

export const QuoteRequest = z.object({
  instrument: InstrumentId,
  side: Side,
  /** Positive, underlying units. */
  sizeBase: DecimalString,
  reduceOnly: z.boolean().default(false),
  /** Expected holding time for funding carry, hours. */
  holdingHours: FiniteNumber.nonnegative().default(24),
});
export type QuoteRequest = z.input<typeof QuoteRequest>;

/** The all-in cost of a proposed order, in USD, broken down; positive = cost. */
export const HedgeQuote = z.object({
  venue: z.string(),
  instrument: InstrumentId,
  side: Side,
  requestedSizeBase: DecimalString,
  /** What the venue can take now (≤ requested: capped by liquidity, order max or OI caps). */
  executableSizeBase: DecimalString,
  referencePriceUsd: FiniteNumber.positive(),
  /** Average execution price expected for `executableSizeBase`. */
  expectedPriceUsd: FiniteNumber.positive(),
  feeUsd: FiniteNumber,
  /** Spread plus price impact for the size, versus the reference price. */
  impactUsd: FiniteNumber,
  /** Gas, priority fee or keeper execution fee. */
  gasUsd: FiniteNumber.nonnegative(),
  /** Funding over `holdingHours` (signed: negative when the position earns funding). */
  fundingCarryUsd: FiniteNumber,
  totalCostUsd: FiniteNumber,
  /**
   * Collateral the venue would lock (or require posted) for this order of `executableSizeBase`, USD, on
   * top of its premium and fee: what the order moves out of the account's free collateral into the
   * venue's hold, such as a short option's margin (Lyra v1: the `setCollateralTo` the trade would post,
   * less what the position already holds). Not a cost: it comes back when the position closes, so it is
   * not in `totalCostUsd`; routing takes a sold option's off its venue's free collateral before sizing the
   * other legs. 0: nothing locked (a long bought, a sell closing a long). Absent: the venue does not say.
   */
  lockedCollateralUsd: FiniteNumber.nonnegative().optional(),
  /** Expected time from send to fill. */
  expectedLatencyMs: FiniteNumber.nonnegative(),
  asOfMs: TimestampMs,
  /** Why the executable size is smaller than requested, when it is. */
  capReason: z.string().optional(),
});
export type HedgeQuote = z.infer<typeof HedgeQuote>;

export const OrderRequest = z.object({
  /** The orchestrator's id (derived from the intent id); the adapter maps it to the venue's form. */
  clientOrderId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'expected 1-64 letters, digits, _ or -'),
  instrument: InstrumentId,
  side: Side,
  orderType: OrderType,
  /** Positive, underlying units; rounded by the caller to the market's size step. */
  sizeBase: DecimalString,
  /** Worst acceptable average price (slippage bound); required for limit and ioc. */
  limitPriceUsd: DecimalString.optional(),
  reduceOnly: z.boolean().default(false),
});
export type OrderRequest = z.input<typeof OrderRequest>;

export interface OrderBookLevel {
  priceUsd: number;
  sizeBase: number;
}
export interface OrderBook {
  instrument: string;
  bids: OrderBookLevel[];
  asks: OrderBookLevel[];
  asOfMs: number;
}

/** Greeks published by a venue, normalized to project units, tagged with the venue's convention. */
export interface VenueGreeks {
  instrument: string;
  /** Per one unit of underlying, not size-applied. */
  greeks: Omit<Greeks, 'deltaUsd' | 'gamma1PctUsd'> & { ivDecimal?: number };
  convention: string;
  asOfMs: number;
}

export interface OptionChainEntry {
  instrument: InstrumentMeta;
  mark: Mark;
  greeks?: VenueGreeks;
}

/**
 * The price an expired option or dated future settled at on this venue: the underlying's price the
 * venue fixed for the expiry (a delivery or index price, Lyra's `boardToPriceAtExpiry`), which decides
 * the instrument's payoff or final P&L there. It never changes once fixed.
 */
export const SettlementPrice = z.object({
  instrument: InstrumentId,
  /**
   * The underlying's settlement price, exact decimal, in the instrument's quote currency (USD) per unit
   * of underlying: an option's payoff is max(±(price − strike), 0) per unit at it.
   */
  priceUsd: PositiveDecimalString,
  /**
   * When the venue fixed the price, at or after the expiry. A venue that keeps no time with the price
   * (Lyra v1 stores only the price per board) gives the expiry, the instant the price stands for.
   */
  fixedAtMs: TimestampMs,
});
export type SettlementPrice = z.infer<typeof SettlementPrice>;

/**
 * One entry of a venue's `fetchSettlementPrices` answer, checked where it enters: a valid
 * `SettlementPrice` for an instrument that was asked for (`asked`), an option or dated future, fixed at or
 * after its expiry (a price fixed before is a guess); else why it is left out, one line naming the
 * instrument (or the field of an entry that is no settlement price).
 */
export function checkSettlementPrice(
  raw: unknown,
  asked: { has(instrument: string): boolean },
): { entry: SettlementPrice; expiryMs: number } | string {
  const parsed = SettlementPrice.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return `${issue?.path.join('.') || 'entry'}: ${issue?.message ?? 'not a settlement price'}`;
  }
  const entry = parsed.data;
  if (!asked.has(entry.instrument)) return `${entry.instrument}: not asked for`;
  const id = parseInstrumentId(entry.instrument);
  if (id.kind !== 'option' && id.kind !== 'future') return `${entry.instrument}: has no expiry`;
  if (entry.fixedAtMs < id.expiryMs)
    return `${entry.instrument}: fixed at ${new Date(entry.fixedAtMs).toISOString()}, before its expiry`;
  return { entry, expiryMs: id.expiryMs };
}

export interface VenueHealth {
  ok: boolean;
  /** Round-trip latency of the health probe. */
  latencyMs: number;
  /** The chain produces no blocks / the venue paused trading. */
  halted: boolean;
  /** Age of the newest market data the venue served. */
  dataAgeMs: number;
  /**
   * The venue is liquidating this account (or a part of it, e.g. an isolated position), or declared it
   * bankrupt; absent when it does not say or all is well. Operators are paged on it.
   */
  liquidation?: 'being-liquidated' | 'bankrupt';
  details?: Record<string, unknown>;
}

/**
 * The one interface every venue sits behind. Every method returns normalized types in the units of
 * `@xhedge/core`; venue symbols and contract units stay inside the adapter. Every method throws only
 * `VenueError`s (see errors.ts) so callers know the order's outcome and whether to retry.
 *
 * Idempotency: `placeOrder` with a client order id the venue already has returns the existing order and
 * creates nothing new. After a timeout, `getOrderByClientId` finds the order if it reached the venue.
 */
export interface VenueAdapter {
  readonly id: VenueId;
  readonly kind: string;
  readonly chain: ChainId;
  readonly capabilities: VenueCapabilities;

  loadMarkets(): Promise<MarketInfo[]>;
  fetchPositions(): Promise<Position[]>;
  fetchBalances(): Promise<Balance[]>;
  /** Marks for the given instruments (all listed ones when omitted). */
  fetchMarks(instruments?: readonly string[]): Promise<Mark[]>;
  /** Fills of this account, oldest first, optionally since an instant. */
  fetchFills(opts?: { sinceMs?: number; clientOrderId?: string }): Promise<Fill[]>;
  fetchOrderBook?(instrument: string, depth?: number): Promise<OrderBook>;
  fetchGreeks?(instruments?: readonly string[]): Promise<VenueGreeks[]>;
  fetchOptionChain?(underlying: string): Promise<OptionChainEntry[]>;
  fetchFundingRate?(instrument: string): Promise<FundingRate>;
  /**
   * Settlement prices of the given expired options and dated futures, on venues that list dated
   * instruments. Only prices the venue has fixed are answered: an instrument still live, expired but
   * not settled yet, or not the venue's own is absent from the answer (never a guess such as the spot
   * now), so a caller asks again later. At most one entry per instrument.
   */
  fetchSettlementPrices?(instruments: readonly string[]): Promise<SettlementPrice[]>;

  quoteHedge(req: QuoteRequest): Promise<HedgeQuote>;
  placeOrder(req: OrderRequest): Promise<Order>;
  /** The order with this client order id, or null when the venue never received it. */
  getOrderByClientId(clientOrderId: string): Promise<Order | null>;
  cancelOrder(clientOrderId: string): Promise<Order>;
  health(): Promise<VenueHealth>;
  /** Releases timers, sockets and subprocesses. */
  close?(): Promise<void>;
}
