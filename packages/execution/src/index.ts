export {
  type BookMark,
  BreakerBoard,
  type BreakerBoardOptions,
  type BreakerGate,
  type BreakerReset,
  BreakerResetConflictError,
  type BreakerState,
  type BreakerStatus,
  breakerNames,
  breakersFor,
  MARKET_BREAKER_KINDS,
  type MarketBreakerKind,
  marketBreakerKind,
  REDUCE_ONLY_PASSES,
  type ReduceOnlyPass,
  ReduceOnlyPasses,
  type Trial,
} from './breakers.ts';
export {
  type ControlStateParts,
  keepControlStateRestored,
  keepRestoring,
  type RestoredControlState,
  restoreControlState,
} from './control-state.ts';
export {
  type ControlContext,
  type ControlName,
  type ControlResult,
  type MarketDataSource,
  type PlanNetDelta,
  PreTradeControls,
  type PreTradeControlsOptions,
} from './controls.ts';
export {
  acknowledgePositionBreak,
  DropCopy,
  type DropCopyOptions,
  type PositionCheck,
  type PositionCheckState,
} from './drop-copy.ts';
export { type GateResult, OrderGate, type SendGateResult } from './gate.ts';
export { CLIENT_ORDER_ID_MAX, clientOrderIdFor } from './ids.ts';
export {
  type CancelClaim,
  type KillEngageChange,
  type KillEngagement,
  type KillEngageResult,
  KillEvent,
  KillScope,
  KillSwitch,
  type KillSwitchOptions,
  KillSwitchPendingError,
  KillSwitchReleaseConflictError,
  KillSwitchUnrecordedError,
  recordKillEngagement,
  scopeCovers,
} from './kill-switch.ts';
export { LeaderLease, type LeaderLeaseOptions, type LeaseHold, leaseTerm, NotLeaderError } from './lease.ts';
export { linearNotionalUsd, VenueMarketData, type VenueMarketDataOptions } from './market-data.ts';
export { ExecutionMetrics } from './metrics.ts';
export { Orchestrator, type OrchestratorOptions, TickOverrunError } from './orchestrator.ts';
export { producerMarked } from './producing.ts';
export {
  ORDER_JOB_OPTIONS,
  OrderJobData,
  type OrderJobResult,
  type OrderWorkerSettings,
  orderQueueName,
  orderWorkerOptions,
  PRIORITY,
} from './queue.ts';
export { Reconciler, type ReconcilerOptions, type SweepResult } from './reconciler.ts';
export {
  type ConnectionOptions,
  type ConnectRedisOptions,
  closeRedisClient,
  connectRedis,
  connectRedisFromEnv,
  type RedisDurability,
  type RedisEndpoint,
  redisDurability,
  redisOptionsFromUrl,
} from './redis.ts';
export {
  ExecutionService,
  type ExecutionServiceOptions,
  type LegResult,
  type PlanLike,
} from './service.ts';
export { onShutdownSignals } from './shutdown.ts';
export { type StartWorkersOptions, startWorkers, type WorkerPool } from './worker.ts';
