export {
  CollateralReservation,
  collateralUse,
  legMarginUsd,
  type MarginVenue,
  type VenueCollateralUse,
} from './collateral.ts';
export {
  CollateralTransfer,
  HedgePlan,
  intentId,
  LegCost,
  limitPrice,
  transferId,
} from './plan.ts';
export { DEFAULT_HOLDING_HOURS, type QuoteTarget, quoteVenues } from './quotes.ts';
export {
  type BridgeCostModel,
  type CollateralSource,
  type OptionMarket,
  type PlanInputs,
  planDecision,
  type RouteOptions,
  type RouteRequest,
  type RouteVenue,
  routeDelta,
  routedDeltaBase,
} from './route.ts';
