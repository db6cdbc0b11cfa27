export { CHOLESKY_ZERO_PIVOT, cholesky, correlationMatrix } from './cholesky.ts';
export { SimError } from './errors.ts';
export { createGasProcess, type GasProcess, type GasProcessOptions } from './gas.ts';
export {
  createMarketFromConfig,
  createMarketSimulator,
  DEFAULT_UNDERLYINGS,
  type MarketConfigLike,
  type MarketSimulatorOptions,
  type MarketSnapshot,
  type PaperMarket,
  type UnderlyingState,
} from './market.ts';
export {
  MAX_PATH_POINTS,
  type PathSet,
  type PathSummary,
  realizedVol,
  type SimulatePathsOptions,
  simulatePaths,
  summarizePaths,
} from './paths.ts';
export {
  hestonSubsteps,
  MAX_ABS_DRIFT_PER_YEAR,
  MAX_HESTON_KAPPA_DT,
  MAX_HESTON_SUBSTEPS_PER_STEP,
  MAX_JUMPS_PER_YEAR,
  MAX_KAPPA_PER_YEAR,
  MAX_LOG_JUMP,
  MAX_SPOT_USD,
  MAX_STRESSED_VOL_MULTIPLIER,
  MAX_VOL_DECIMAL,
  MAX_VOL_OF_VOL,
  MIN_SPOT_USD,
  PathEngine,
  type PathEngineOptions,
  ProcessSpec,
  type Regime,
  type StepResult,
  UnderlyingSpec,
} from './processes.ts';
export {
  parsePriceCsv,
  type ReplayGap,
  type ReplayPrice,
  ReplaySeries,
  readPriceCsvFile,
} from './replay.ts';
export { createRng, hashString, type Rng } from './rng.ts';
export { DEFAULT_SURFACE, type SurfaceParams, VolSurfaceState } from './surface.ts';
