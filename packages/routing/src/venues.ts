import type { HedgeQuote } from '@xhedge/venue';

/** One venue/chain that could take the delta hedge, with its quotes and trading rules. */
export interface RouteVenue {
  venue: string;
  chain: string;
  /** The hedge instrument on this venue (a perp or spot pair of the underlying). */
  instrument: string;
  /**
   * Quotes for the hedge side at one or more sizes (`quoteHedge`). Two sizes let the router separate
   * spread from size-dependent impact; with one, all impact is taken as linear in size. A leg's funding
   * carry is taken from the quotes of its own kind: those no larger than the position the hedge reduces
   * for a leg that only reduces it, the others for a leg that opens or grows one (a venue such as GMX
   * carries a decrease, which stops the position's funding, and an increase of the other side at rates of
   * opposite sign). `quoteVenues` quotes a size of each kind where the venue holds such a position.
   */
  quotes: readonly HedgeQuote[];
  /** Venue minimum order, underlying units. */
  minSizeBase: number;
  /** Venue size step, underlying units. */
  sizeStepBase: number;
  priceTickUsd?: number;
  /** Largest single order (or OI room), underlying units; the router downsizes to it. */
  maxOrderSizeBase?: number;
  /** Current position in `instrument` (signed), for reduce-only legs. */
  positionBase: number;
  /** Free collateral on this venue, USD. */
  freeCollateralUsd: number;
  /** Initial margin per USD of notional (0.1 = 10× leverage). */
  marginFraction: number;
  /**
   * Collateral the venue posts for an order that does not only reduce the position, USD per underlying
   * unit of the order's whole size, at the venue's own price (GMX sizes an increase at its max price for
   * a long, its min for a short, not at the decision's spot): the most its quotes of such orders state
   * (`lockedCollateralUsd` / executable size; `quoteVenues` fills it when a quote states one). A venue
   * that keeps a market's long and short apart (GMX v2) reduces the opposite position only when it
   * covers the whole order; a larger order opens its whole size beside it and posts collateral for all
   * of it (holding 2 long, a sell of 5 posts for 5, not 3). `legMarginUsd` then counts at least this on
   * the whole size of a leg past the position, not only `marginFraction` on the part past it; `routeDelta`
   * sizes such legs with headroom over it for the price moving before the order is placed (its
   * `maxSlippageBps`). Absent: the venue states none, and its legs are margined as a
   * netting venue takes them.
   */
  openCollateralUsdPerUnit?: number;
  /**
   * Assets the venue takes as collateral (its adapter's `capabilities.collateral`: a GMX venue's
   * collateral token, USDT or DAI as well as USDC). A collateral move to the venue is planned only in one
   * of these: USDC sent to a venue that margins in USDT pays the bridge and leaves the leg short of
   * margin. Absent: not checked (any USD-like source asset is taken); `quoteVenues` fills it from
   * the adapter.
   */
  collateralAssets?: readonly string[];
}

/**
 * Where spare collateral sits, to fund venues short of margin. The asset must be USD-like (USD, USDC,
 * USDT, DAI): a move's amount is sized in USD and sent as that many units of it.
 */
export interface CollateralSource {
  venue: string;
  chain: string;
  /** What the move sends, as it is held and as the bridge carries it (a destination must take it). */
  asset: string;
  availableUsd: number;
}

/**
 * What routing needs of an option (vega) leg's market to fit the leg to its venue's free collateral: its
 * size rules, and what the leg pays on top of its premium.
 */
export interface OptionMarket {
  /** Venue minimum order, underlying units. */
  minSizeBase: number;
  /** Venue size step, underlying units. */
  sizeStepBase: number;
  /**
   * Venue fee per unit traded, USD (the fee its quote for the leg's size states, over that size). Absent:
   * the trade's estimated cost per unit (spread plus fee) stands in, which is at least the fee.
   */
  feeUsdPerUnit?: number;
  /**
   * Collateral the venue locks per unit of a sold option, USD (a sell quote's `lockedCollateralUsd` over
   * its size). Absent where the venue's quote states none: a sell is then counted for its fee only.
   */
  shortCollateralUsdPerUnit?: number;
}
