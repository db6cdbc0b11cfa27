export {
  type Attribution,
  type BacktestPlan,
  type BacktestReport,
  type BacktestRunOptions,
  bookPremiumUsd,
  type FrontierCurve,
  type FrontierPoint,
  type PolicyResult,
  planFromFile,
  planSingleOption,
  runBacktest,
  type SingleOptionInput,
  summarize,
} from './backtest.ts';
export {
  DEFAULT_LIQUIDATION_PENALTY_FRACTION,
  DEFAULT_MARGIN_FRACTION,
  type EngineVenue,
  liquidationPenaltyFraction,
  maintenanceMarginFraction,
  type TradeCost,
} from './costs.ts';
export {
  batchField,
  type EngineEvent,
  type EngineJob,
  type EngineOption,
  type EngineProcess,
  PATH_FIELDS,
  type PathBatch,
  type PathField,
  type RunPathsOptions,
  runPaths,
} from './engine.ts';
export { BacktestCollateralError, BacktestInputError, BacktestWorkerError } from './errors.ts';
export { renderFrontierSvg, svgToPng, writeFrontier } from './frontier.ts';
export {
  type DecisionMode,
  deciderFor,
  type HedgeDecider,
  type HedgeState,
  kernelDecider,
  kernelSupports,
  strategyDecider,
} from './hedge-rules.ts';
export { cvar, entropicRisk, mean, type PnlStats, pnlStats, shareAboveZero, stdDev } from './metrics.ts';
export { createWorkerPool, mergeBatches, type RunOptions, runJob, type WorkerPool } from './pool.ts';
export { createProgressBar, type ProgressBar, type ProgressSink } from './progress.ts';
export {
  BacktestFile,
  type BacktestFileInput,
  BookOption,
  loadBacktestFile,
  MAX_BACKTEST_PATHS,
  MAX_BACKTEST_STEPS,
  MAX_BACKTEST_USD,
  MAX_COST_BPS,
  MAX_EXPIRY_YEARS,
  MAX_RATE,
  MIN_RATE,
  parseBacktestFile,
  VenueCostSpec,
} from './spec.ts';
