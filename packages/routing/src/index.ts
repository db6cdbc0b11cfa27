export {
  CollateralTransfer,
  HedgePlan,
  intentId,
  LegCost,
  limitPrice,
  transferId,
} from './plan.ts';
export { type QuoteTarget, quoteVenues } from './quotes.ts';
export {
  type BridgeCostModel,
  type CollateralSource,
  type PlanInputs,
  planDecision,
  type RouteOptions,
  type RouteRequest,
  type RouteVenue,
  routeDelta,
} from './route.ts';
