import { z } from 'zod';
import { AssetSymbol, ChainId, EntityId, Underlying, VenueId } from './ids.ts';
import { InstrumentId } from './instrument.ts';
import { DecimalString, FiniteNumber, TimestampMs } from './units.ts';

/**
 * The normalized book. Every input carries the instant it describes (`asOfMs`) so the risk engine
 * can say what is stale. Sizes are signed, in units of the underlying (`sizeBase`): +2 = long 2 BTC
 * of exposure-per-unit, whatever the venue's contract units are.
 */
export const Position = z.object({
  venue: VenueId,
  chain: ChainId,
  instrument: InstrumentId,
  /** Signed size in underlying units (long > 0). float64: risk math; orders use exact decimals. */
  sizeBase: FiniteNumber,
  /** Average entry price in USD per unit of underlying (or premium per unit for options), when known. */
  entryPriceUsd: FiniteNumber.optional(),
  /**
   * P&L of the position that the venue has not yet moved into the balances `fetchBalances` reports,
   * USD (perps whose P&L settles separately, like Drift's `quote_asset_amount`); when present, equity
   * uses it instead of (mark − entry) × size. A position closed (size 0) whose P&L is still unsettled
   * is reported with size 0 and this field.
   */
  unsettledPnlUsd: FiniteNumber.optional(),
  /**
   * Collateral locked in the position that `fetchBalances` does not report (isolated margin, GMX
   * position collateral), USD; book equity adds it.
   */
  marginUsd: FiniteNumber.nonnegative().optional(),
  /** Settlement currency when the venue says so (`BTC` for coin-settled). */
  settlementCurrency: AssetSymbol.optional(),
  asOfMs: TimestampMs,
});
export type Position = z.infer<typeof Position>;

/** A mark: what one unit of the instrument is worth now. Options are marked in USD per unit of underlying. */
export const Mark = z.object({
  venue: VenueId,
  instrument: InstrumentId,
  /** Mark price in USD per unit of underlying (option premium in USD for coin-settled options too). */
  markPriceUsd: FiniteNumber.nonnegative(),
  /** The underlying index price the venue used, USD. */
  indexPriceUsd: FiniteNumber.positive().optional(),
  /** Implied volatility as a decimal (0.65), never percent. */
  ivDecimal: FiniteNumber.positive().optional(),
  bidUsd: FiniteNumber.nonnegative().optional(),
  askUsd: FiniteNumber.nonnegative().optional(),
  asOfMs: TimestampMs,
});
export type Mark = z.infer<typeof Mark>;

/** Funding normalized to a rate per hour, positive when longs pay shorts. */
export const FundingRate = z.object({
  venue: VenueId,
  instrument: InstrumentId,
  ratePerHour: FiniteNumber,
  asOfMs: TimestampMs,
});
export type FundingRate = z.infer<typeof FundingRate>;

/** A balance of one asset on one venue and chain (collateral in a volatile coin is delta). */
export const Balance = z.object({
  venue: VenueId,
  chain: ChainId,
  asset: AssetSymbol,
  /** Total amount in units of the asset. */
  amount: FiniteNumber,
  /** Of which free to use as margin or to move. */
  available: FiniteNumber.optional(),
  asOfMs: TimestampMs,
});
export type Balance = z.infer<typeof Balance>;

/**
 * Greeks of a position (size applied) or of a book, in the project's units:
 * - `delta`: underlying units, USD numéraire; `deltaUsd` = delta × spot
 * - `netDeltaCoin`: coin-numéraire net delta for coin-settled options (BS delta − price in coin)
 * - `gamma`: change of `delta` per 1 USD move of the underlying; `gamma1PctUsd`: change of `deltaUsd` for a 1% move
 * - `vegaPerVolPoint`: USD per 0.01 of implied vol
 * - `thetaPerDay`: USD per calendar day (year = 365 days)
 * - `rhoPer1Pct`: USD per 0.01 of rate
 * - `vannaPerVolPoint`: change of `delta` per 0.01 of vol; `volgaPerVolPoint`: change of vega per 0.01 of vol
 */
export const Greeks = z.object({
  delta: FiniteNumber,
  deltaUsd: FiniteNumber,
  netDeltaCoin: FiniteNumber.optional(),
  gamma: FiniteNumber,
  gamma1PctUsd: FiniteNumber,
  vegaPerVolPoint: FiniteNumber,
  thetaPerDay: FiniteNumber,
  rhoPer1Pct: FiniteNumber,
  vannaPerVolPoint: FiniteNumber.optional(),
  volgaPerVolPoint: FiniteNumber.optional(),
});
export type Greeks = z.infer<typeof Greeks>;

export function zeroGreeks(): Greeks {
  return {
    delta: 0,
    deltaUsd: 0,
    gamma: 0,
    gamma1PctUsd: 0,
    vegaPerVolPoint: 0,
    thetaPerDay: 0,
    rhoPer1Pct: 0,
  };
}

/** Where a set of Greeks came from, and in which convention, so venue values can be compared to ours. */
export const GreeksSource = z.object({
  source: z.enum(['local', 'venue']),
  model: z.string().min(1),
  asOfMs: TimestampMs,
});
export type GreeksSource = z.infer<typeof GreeksSource>;

export const Side = z.enum(['buy', 'sell']);
export type Side = z.infer<typeof Side>;

export const OrderType = z.enum(['market', 'limit', 'ioc']);
export type OrderType = z.infer<typeof OrderType>;

export const Urgency = z.enum(['normal', 'urgent']);
export type Urgency = z.infer<typeof Urgency>;

/**
 * One leg of a hedge plan: what to trade where, and why. Its id is deterministic (derived from the
 * plan and leg), it is written to the ledger before it is queued, the BullMQ job id is this id and the
 * venue client order id derives from it.
 */
export const HedgeIntent = z.object({
  id: EntityId,
  planId: EntityId,
  underlying: Underlying,
  venue: VenueId,
  chain: ChainId,
  instrument: InstrumentId,
  side: Side,
  /** Exact, positive, in underlying units. */
  sizeBase: DecimalString,
  orderType: OrderType,
  /** Worst acceptable price (USD per unit); the slippage bound on chains that take one. */
  limitPriceUsd: DecimalString.optional(),
  /** Reference price the intent was planned against (for price-band checks before sending). */
  referencePriceUsd: FiniteNumber.positive(),
  reduceOnly: z.boolean(),
  urgency: Urgency,
  /** Plain-words reason an operator can read. */
  reason: z.string().min(1).max(2000),
  createdAtMs: TimestampMs,
  /** Intents this one waits for (a collateral transfer before a hedge). */
  dependsOn: z.array(EntityId).default([]),
});
export type HedgeIntent = z.infer<typeof HedgeIntent>;

/**
 * Order states. planned → queued → sent → acknowledged | outcome-unknown → filled | partially-filled |
 * cancelled | rejected | failed. `outcome-unknown` is resolved by asking the venue for the client
 * order id before anything is retried.
 */
export const OrderStatus = z.enum([
  'planned',
  'queued',
  'sent',
  'acknowledged',
  'outcome-unknown',
  'partially-filled',
  'filled',
  'cancelled',
  'rejected',
  'failed',
]);
export type OrderStatus = z.infer<typeof OrderStatus>;

export const TERMINAL_ORDER_STATUSES: ReadonlySet<OrderStatus> = new Set([
  'filled',
  'cancelled',
  'rejected',
  'failed',
]);

/** The statuses of an order that is not over (working, or its outcome still to be known). */
export const OPEN_ORDER_STATUSES: readonly OrderStatus[] = OrderStatus.options.filter(
  (s) => !TERMINAL_ORDER_STATUSES.has(s),
);

/** Allowed transitions of the order state machine. */
export const ORDER_TRANSITIONS: Readonly<Record<OrderStatus, readonly OrderStatus[]>> = {
  planned: ['queued', 'cancelled', 'failed'],
  queued: ['sent', 'cancelled', 'failed', 'rejected'],
  sent: ['acknowledged', 'outcome-unknown', 'partially-filled', 'filled', 'rejected', 'failed', 'cancelled'],
  acknowledged: ['partially-filled', 'filled', 'cancelled', 'rejected', 'outcome-unknown'],
  'outcome-unknown': ['acknowledged', 'partially-filled', 'filled', 'cancelled', 'rejected', 'failed'],
  'partially-filled': ['partially-filled', 'filled', 'cancelled', 'outcome-unknown'],
  filled: [],
  cancelled: [],
  rejected: [],
  failed: [],
};

export function canTransition(from: OrderStatus, to: OrderStatus): boolean {
  return ORDER_TRANSITIONS[from].includes(to);
}

export const Order = z.object({
  clientOrderId: z.string().min(1).max(128),
  intentId: EntityId,
  venue: VenueId,
  venueOrderId: z.string().optional(),
  instrument: InstrumentId,
  side: Side,
  orderType: OrderType,
  sizeBase: DecimalString,
  limitPriceUsd: DecimalString.optional(),
  reduceOnly: z.boolean(),
  status: OrderStatus,
  filledSizeBase: DecimalString,
  avgFillPriceUsd: DecimalString.optional(),
  createdAtMs: TimestampMs,
  updatedAtMs: TimestampMs,
  /** Why the venue rejected or the order failed, when it did. */
  error: z.string().optional(),
});
export type Order = z.infer<typeof Order>;

export const Fill = z.object({
  fillId: z.string().min(1),
  clientOrderId: z.string().min(1),
  venue: VenueId,
  instrument: InstrumentId,
  side: Side,
  sizeBase: DecimalString,
  priceUsd: DecimalString,
  /** Venue trading fee in USD (positive = paid). */
  feeUsd: FiniteNumber,
  /** Gas or execution fee in USD. */
  gasUsd: FiniteNumber.default(0),
  tsMs: TimestampMs,
});
export type Fill = z.infer<typeof Fill>;
