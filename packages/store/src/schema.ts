import type { ColumnType, Generated } from 'kysely';

/** int8 columns arrive as strings (pg) or numbers/bigints (PGlite); rows are normalized in the ledger. */
type Int8 = ColumnType<string | number | bigint, number, number>;
type Json = ColumnType<unknown, string, string>;

export interface IntentsTable {
  id: string;
  plan_id: string;
  underlying: string;
  venue: string;
  chain: string;
  instrument: string;
  side: string;
  size_base: string;
  order_type: string;
  limit_price_usd: string | null;
  reference_price_usd: number;
  reduce_only: boolean;
  urgency: string;
  reason: string;
  depends_on: Json;
  created_at_ms: Int8;
  recorded_at_ms: Int8;
  lease_name: string | null;
  fencing_token: Int8 | null;
}

export interface OrdersTable {
  client_order_id: string;
  intent_id: string;
  underlying: string;
  venue: string;
  instrument: string;
  side: string;
  order_type: string;
  size_base: string;
  limit_price_usd: string | null;
  reduce_only: boolean;
  status: string;
  venue_order_id: string | null;
  filled_size_base: string;
  avg_fill_price_usd: string | null;
  error: string | null;
  send_attempts: number;
  last_send_at_ms: Int8 | null;
  created_at_ms: Int8;
  updated_at_ms: Int8;
}

export interface OrderEventsTable {
  id: Generated<Int8>;
  client_order_id: string;
  from_status: string | null;
  to_status: string;
  kind: string;
  at_ms: Int8;
  actor: string;
  note: string | null;
}

export interface FillsTable {
  venue: string;
  fill_id: string;
  client_order_id: string;
  instrument: string;
  side: string;
  size_base: string;
  price_usd: string;
  fee_usd: number;
  gas_usd: number;
  ts_ms: Int8;
}

export interface BreakerEventsTable {
  id: Generated<Int8>;
  breaker: string;
  from_state: string;
  to_state: string;
  reason: string;
  at_ms: Int8;
  details: Json;
}

export interface KillSwitchEventsTable {
  id: Generated<Int8>;
  scope: string;
  action: string;
  actor: string;
  reason: string;
  allow_risk_reducing: boolean;
  at_ms: Int8;
  details: Json;
}

export interface AuditTable {
  id: Generated<Int8>;
  at_ms: Int8;
  actor: string;
  action: string;
  subject: string | null;
  details: Json;
}

export interface RiskSnapshotsTable {
  id: Generated<Int8>;
  seq: Int8;
  as_of_ms: Int8;
  snapshot: Json;
}

export interface FencingTable {
  lease_name: string;
  token: Int8;
  updated_at_ms: Int8;
}

export interface PositionBaselinesTable {
  venue: string;
  instrument: string;
  size_base: string | null;
  at_ms: Int8;
  actor: string;
  reason: string;
}

export interface ConfigDocumentsTable {
  name: string;
  value_json: string;
  revision: Int8;
  actor: string;
  action: string;
  updated_at_ms: Int8;
}

export interface MigrationsTable {
  version: number;
  name: string;
  applied_at_ms: Int8;
}

export interface LedgerDatabase {
  intents: IntentsTable;
  orders: OrdersTable;
  order_events: OrderEventsTable;
  fills: FillsTable;
  breaker_events: BreakerEventsTable;
  kill_switch_events: KillSwitchEventsTable;
  audit: AuditTable;
  risk_snapshots: RiskSnapshotsTable;
  fencing: FencingTable;
  position_baselines: PositionBaselinesTable;
  config_documents: ConfigDocumentsTable;
  xhedge_migrations: MigrationsTable;
}
