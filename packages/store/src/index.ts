export {
  type DatabaseHandle,
  DatabaseTimeoutError,
  type OpenDatabaseOptions,
  openDatabase,
  openDatabaseFromEnv,
} from './database.ts';
export {
  FencedOutError,
  IllegalTransitionError,
  isLedgerUnavailable,
  LedgerConflictError,
  LedgerNotFoundError,
} from './errors.ts';
export {
  type Actor,
  type AuditEntry,
  type BreakerEvent,
  type ConfigDocument,
  type IntentFill,
  type KillSwitchEvent,
  Ledger,
  type LedgerIntent,
  type LedgerOptions,
  type LedgerOrder,
  type LedgerQuery,
  newestRecordedMs,
  type OrderEvent,
  type PlannedLeg,
  type PositionBaseline,
  type RecordedLeg,
  type RiskSnapshotRecord,
  type TransitionPatch,
  type TransitionResult,
} from './ledger.ts';
export { MIGRATIONS, type MigrateOptions, type Migration, migrate } from './migrations.ts';
export { PGliteDialect } from './pglite-dialect.ts';
export {
  SNAPSHOT_RETENTION_DEFAULTS,
  SnapshotRetention,
  type SnapshotRetentionOptions,
  type SnapshotRetentionPolicy,
  type SnapshotRetentionResult,
  snapshotRetentionOptions,
} from './retention.ts';
export type { LedgerDatabase } from './schema.ts';
export { postgresReachable, TEST_PG_URL } from './test-backends.ts';
