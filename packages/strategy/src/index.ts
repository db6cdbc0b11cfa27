export {
  type AttributionFill,
  type AttributionInput,
  type AttributionPoint,
  type AttributionRisk,
  type AttributionStart,
  attributePnl,
  attributeSeries,
  type ExpiryTheta,
  type PnlAttribution,
  type SeriesAttribution,
  sumAttributions,
  type TimedFill,
  thetaByExpiry,
} from './attribution.ts';
export {
  GAMMA_BAND_CAP_FRACTION,
  gammaBandCapBase,
  gammaScaledHalfWidth,
  lelandVol,
  wwHalfWidth,
} from './bands.ts';
export { type ListedOption, vegaCandidatesFromChain } from './candidates.ts';
export {
  type DecisionCode,
  type DecisionContext,
  type HedgeDecision,
  HedgeStrategy,
  type HedgeStrategyOptions,
} from './strategy.ts';
export { type OptionTrade, solveVegaHedge, type VegaCandidate, type VegaSolution } from './vega.ts';
