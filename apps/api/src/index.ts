export { type Access, actorOf, bearerToken } from './auth.ts';
export { API_ERROR_STATUS, ApiError, type ApiErrorCode, type ErrorBody } from './errors.ts';
export { type HedgeMetrics, registerMetrics } from './metrics.ts';
export type {
  Actor,
  ApiPorts,
  AuditPort,
  Change,
  ControlsPort,
  ControlTargets,
  HedgesPort,
  JobQuery,
  PnlPort,
  Policies,
  PolicyPort,
  RiskPort,
  TimeRange,
  TokensPort,
  VenuePrecondition,
  VenuesPort,
  VenueUpdate,
} from './ports.ts';
export { applyVenueUpdate, checkVenueUpdate } from './ports.ts';
export { venueView } from './routes.ts';
export {
  AuditEntryView,
  BreakerView,
  GreeksView,
  HedgeJobView,
  HedgePlanView,
  KillScope,
  KillSwitchView,
  PnlView,
  PositionBreakView,
  ReadinessView,
  RiskSliceView,
  RiskSnapshotView,
  Role,
  ScenarioGridView,
  SliceBy,
  TokenView,
  VenueView,
} from './schemas.ts';
export { type ApiServerOptions, buildApiServer, REDACT_PATHS } from './server.ts';
export {
  BROWSER_ROUTES,
  BrowserSessions,
  MemorySessionStore,
  RedisSessionStore,
  SESSION_COOKIE,
  type SessionRedis,
  type SessionStore,
  SessionStoreError,
} from './sessions.ts';
export {
  type AdminTokenBootstrap,
  bootstrapAdminToken,
  FileTokenStore,
  type FileTokenStoreOptions,
  generateToken,
  roleAllows,
  sha256Hex,
} from './tokens.ts';
export {
  checkEnabledChange,
  checkIfMatch,
  configVersion,
  etag,
  type IfMatch,
  type LastChange,
} from './versions.ts';
