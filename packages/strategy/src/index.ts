export {
  type AttributionFill,
  type AttributionInput,
  type AttributionStart,
  attributePnl,
  type PnlAttribution,
  sumAttributions,
} from './attribution.ts';
export { gammaScaledHalfWidth, lelandVol, wwHalfWidth } from './bands.ts';
export { type ListedOption, vegaCandidatesFromChain } from './candidates.ts';
export {
  type DecisionCode,
  type DecisionContext,
  type HedgeDecision,
  HedgeStrategy,
  type HedgeStrategyOptions,
} from './strategy.ts';
export { type OptionTrade, solveVegaHedge, type VegaCandidate, type VegaSolution } from './vega.ts';
