export { SharedConfigStore } from './config-store.ts';
export { controlsPort } from './controls-port.ts';
export { type DeploymentEndpoints, deploymentEndpoints, redisPrefixFor } from './deployment.ts';
export { auditPort, hedgesPort, jobView, pnlPort, riskPort } from './ledger-ports.ts';
export {
  optionSkew,
  type PlanForExecution,
  planNetDelta,
  type RoutePlan,
  TickPlanner,
  type TickPlannerOptions,
  TickSupersededError,
  VenueReadTimeoutError,
  venuePrices,
} from './planner.ts';
export { PlanningLoop, type PlanningLoopOptions } from './planning-loop.ts';
export { createRouter, type RouterOptions } from './router.ts';
export { RUN_ROLES, type Run, type RunRole, type StartRunOptions, startRun } from './run.ts';
export { SnapshotBus } from './snapshot-bus.ts';
export {
  type SyncReport,
  VenueRegistry,
  type VenueRegistryOptions,
  type VenueWorkers,
} from './venue-registry.ts';
export { checkVenueParams } from './venues.ts';
