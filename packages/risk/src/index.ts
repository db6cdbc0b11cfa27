export {
  DEFAULT_ASSET_ALIASES,
  DEFAULT_SPOT_SHOCKS_PCT,
  DEFAULT_VOL_SHOCKS_PTS,
  MAX_IV_DECIMAL,
  MIN_SCENARIO_VOL_DECIMAL,
  type RiskBook,
  RiskEngine,
  type RiskEngineOptions,
  type RiskFill,
  type RiskPosition,
  type SnapshotOptions,
} from './engine.ts';
export { type BookEquity, bookEquity } from './equity.ts';
export {
  GREEK_FIELDS,
  GreeksDivergence,
  GreekTotals,
  RISK_SNAPSHOT_VERSION,
  RiskSnapshot,
  ScenarioGrid,
  StaleInput,
  StaleInputKind,
  UnderlyingRisk,
} from './snapshot.ts';
export {
  DEFAULT_EXPIRY_BUCKETS_DAYS,
  expiryBucketLabel,
  type PricedInstrument,
  type UnderlyingMarket,
  type UnitGreeks,
  unitGreeks,
  type VolSmile,
} from './unit-greeks.ts';
