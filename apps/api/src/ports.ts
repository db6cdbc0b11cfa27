import type { PoliciesConfig, VenueConfig } from '@xhedge/config';
import type { OrderStatus } from '@xhedge/core';
import type { Queue } from 'bullmq';
import type { Registry } from 'prom-client';
import type { z } from 'zod';
import type {
  AuditEntryView,
  BookMarkView,
  BreakerView,
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
} from './schemas.ts';
import { checkEnabledChange, checkIfMatch, type IfMatch, type LastChange } from './versions.ts';

/**
 * The narrow ports the API needs from a run. The runtime implements them over the real risk engine,
 * ledger, queues and Redis-held controls; unit tests implement them in memory. Ports throw
 * `XhedgeError`s with code NOT_FOUND / CONFLICT / VALIDATION for the caller's mistakes; anything else
 * is a 500.
 */

/** Who is calling: from the bearer token. `name` is what the audit ledger records. */
export interface Actor {
  tokenId: string;
  name: string;
  role: Role;
}

export interface TimeRange {
  fromMs?: number;
  toMs?: number;
  limit: number;
}

/** Which hedge jobs to list. */
export interface JobQuery extends TimeRange {
  /** Any of these order statuses. */
  status?: readonly OrderStatus[];
  planId?: string;
  venue?: string;
  underlying?: string;
}

export interface RiskPort {
  /** The newest snapshot, or undefined before the first tick. */
  latest(): Promise<RiskSnapshotView | undefined>;
  /** Snapshots in [fromMs, toMs], oldest first, at most `limit`. */
  history(range: TimeRange): Promise<RiskSnapshotView[]>;
  /** The newest snapshot restricted to one underlying, venue or chain; undefined when unknown. */
  slice(by: SliceBy, key: string): Promise<RiskSliceView | undefined>;
  /** P&L of the book under spot × vol shocks. */
  scenarioGrid(q: {
    underlying: string;
    spotShocksPct: number[];
    volShocksPts: number[];
  }): Promise<ScenarioGridView>;
  /** Calls `fn` for every new snapshot; returns the unsubscribe function. */
  subscribe(fn: (snapshot: RiskSnapshotView) => void): () => void;
}

export interface HedgesPort {
  listPlans(range: TimeRange): Promise<HedgePlanView[]>;
  getPlan(planId: string): Promise<HedgePlanView | undefined>;
  /** Jobs newest first (by when they were queued; `fromMs`..`toMs` inclusive), every filter applied. */
  listJobs(q: JobQuery): Promise<HedgeJobView[]>;
  getJob(id: string): Promise<HedgeJobView | undefined>;
  /** Cancels a job not yet sent (or asks the venue to cancel a working order). CONFLICT when final. */
  cancelJob(id: string, actor: Actor): Promise<HedgeJobView>;
}

/** The names the brakes accept (see `ControlsPort.targets`). */
export interface ControlTargets {
  venues: readonly string[];
  underlyings: readonly string[];
  breakers: readonly string[];
}

export interface ControlsPort {
  /**
   * The port writes the audit entry of a kill-switch change itself (execution's KillSwitch audits every
   * engage and release, whoever makes it), so the route does not write a second one. @defaultValue false
   */
  readonly auditsKillSwitch?: boolean;
  killSwitches(): Promise<KillSwitchView[]>;
  /**
   * Engages the switch. `allowRiskReducing`: reduce-only orders in the scope still pass (execution's
   * `KillSwitch.engage` option of that name, the CLI's `--allow-risk-reducing`). An engage never loosens
   * what is engaged (a reduce-only request over a full stop keeps the full stop) unless `replace` is true.
   * The answer is the engagement in force (`allowRiskReducing` of the view) and what the call did
   * (`change`, with `previous` when the scope was engaged).
   */
  tripKillSwitch(
    q: { scope: KillScope; target?: string; reason: string; allowRiskReducing: boolean; replace?: boolean },
    actor: Actor,
  ): Promise<KillSwitchView>;
  /**
   * Releases the engagement of the scope. One engaged after the port read it stays, and the port throws
   * a 409 `KILL_SWITCH_RELEASE_CONFLICT` naming it.
   */
  resetKillSwitch(
    q: { scope: KillScope; target?: string; reason: string },
    actor: Actor,
  ): Promise<KillSwitchView>;
  breakers(): Promise<BreakerView[]>;
  /**
   * What the brakes can name: every venue the run knows (enabled or not), the underlyings, and the
   * breakers its orders consult. When the port gives it, a trip naming anything else is refused (a typo
   * would otherwise engage a switch or open a breaker that stops nothing).
   */
  targets?(): Promise<ControlTargets>;
  tripBreaker(name: string, reason: string, actor: Actor): Promise<BreakerView>;
  /**
   * Closes the breaker. With `openedAtMs`, only the trip that opened then (the view's `sinceMs`): a newer
   * trip in force stays, and the port throws a 409 `BREAKER_RESET_CONFLICT` naming it.
   */
  resetBreaker(name: string, reason: string, actor: Actor, o?: { openedAtMs?: number }): Promise<BreakerView>;
  /** The book's mark (what the loss-since-mark breaker measures from) and the newest equity. */
  bookMark(): Promise<BookMarkView>;
  /**
   * Marks the book at `equityUsd`, or at the newest equity observed when absent. The port writes the
   * audit entry (`book-mark.set`) when `auditsBookMark` is true.
   */
  setBookMark(q: { equityUsd?: number; reason: string }, actor: Actor): Promise<BookMarkView>;
  readonly auditsBookMark?: boolean;
  /** Position breaks the drop-copy check has open, oldest first. */
  positionBreaks(): Promise<PositionBreakView[]>;
  /**
   * Asks the drop-copy check for a new baseline of one venue's instrument at its next quiet read (the
   * operator has explained the difference); the open break, if any, then closes. NOT_FOUND when the
   * check does not follow that instrument there. The port writes the audit entry
   * (`position-break.acknowledge`).
   */
  acknowledgePositionBreak(
    q: { venue: string; instrument: string; reason: string },
    actor: Actor,
  ): Promise<{ venue: string; instrument: string; breakOpen: boolean }>;
}

/**
 * A venue's replacement config. `enabled`, `credentials` and `endpoints` may be left out: the venue keeps
 * what it has. The API never shows credentials (write-only) and shows a keyed RPC URL redacted (a write
 * that sends it back is refused), so "read it, change a field, send it back" has to leave them out; taking
 * that as "none" deleted the venue's signer and RPC, and an enabled venue that can no longer be built holds
 * every hedge. `credentials: {}` clears them.
 */
export type VenueUpdate = Omit<VenueConfig, 'enabled' | 'credentials' | 'endpoints'> & {
  enabled?: boolean | undefined;
  credentials?: VenueConfig['credentials'] | undefined;
  endpoints?: VenueConfig['endpoints'] | undefined;
};

/** The config a {@link VenueUpdate} leaves: what it leaves out stays as `prev` has it. */
export function applyVenueUpdate(prev: VenueConfig, update: VenueUpdate): VenueConfig {
  return {
    ...update,
    enabled: update.enabled ?? prev.enabled,
    credentials: update.credentials ?? prev.credentials,
    endpoints: update.endpoints ?? prev.endpoints,
  };
}

/** What a venue update requires of the venue as stored. */
export interface VenuePrecondition {
  /** Only when the stored venue still has one of these versions (`'*'`: whatever its version). */
  ifMatch?: IfMatch | undefined;
  /**
   * Without `ifMatch`, refuse an update that would switch the venue on or off (428): what the API asks of
   * an operator's PUT, whose copy may predate another's disable. Code of the run calling the port
   * leaves it out.
   */
  enabledNeedsVersion?: boolean | undefined;
}

/**
 * Checks a venue update against the venue as stored (read inside the store's compare-and-set):
 * PRECONDITION_FAILED (412) when `ifMatch` names a version the venue no longer has, PRECONDITION_REQUIRED
 * (428) when an unconditional update would switch it on or off and `enabledNeedsVersion` says that needs
 * one. `version`: the stored venue's version; `last`: who last changed it, as the store recorded.
 */
export function checkVenueUpdate(
  prev: VenueConfig,
  version: string,
  update: VenueUpdate,
  cond: VenuePrecondition | undefined,
  last: LastChange | undefined,
): void {
  checkIfMatch(`venue ${prev.id}`, version, cond?.ifMatch, last);
  if (cond?.enabledNeedsVersion) checkEnabledChange(prev.id, prev, version, update, cond.ifMatch, last);
}

/** A change as the store made it: the config before and after, both read and written in one compare-and-set. */
export interface Change<T> {
  before: T;
  after: T;
}

export interface VenuesPort {
  list(): Promise<VenueConfig[]>;
  get(id: string): Promise<VenueConfig | undefined>;
  /**
   * The version of a venue's config as stored (see `configVersion`): what GET shows (`version`, `ETag`)
   * and a conditional update names. The same content has the same version in every process of the run.
   */
  versionOf(venue: VenueConfig): Promise<string>;
  /** CONFLICT when the id exists. */
  add(venue: VenueConfig, actor: Actor): Promise<VenueConfig>;
  /**
   * Replaces the venue's config (the id stays); `enabled`, `credentials` and `endpoints` left out keep
   * the venue's own ({@link applyVenueUpdate}). `cond` is checked in the same compare-and-set as the
   * write ({@link checkVenueUpdate}): PRECONDITION_FAILED naming the venue's version now and who changed
   * it, PRECONDITION_REQUIRED for an unconditional switch on or off the API refuses. NOT_FOUND when absent.
   */
  update(
    id: string,
    venue: VenueUpdate,
    actor: Actor,
    cond?: VenuePrecondition,
  ): Promise<Change<VenueConfig>>;
  disable(id: string, actor: Actor): Promise<VenueConfig>;
}

/** Hedge policy parameters as the config file's `policy` section holds them. */
export type Policies = z.output<typeof PoliciesConfig>;

export interface PolicyPort {
  get(): Promise<Policies>;
  /** The version of a policy document as stored (as {@link VenuesPort.versionOf}). */
  versionOf(policy: Policies): Promise<string>;
  /**
   * Replaces the whole document. With `ifMatch`, only when the stored one still has one of those
   * versions, checked in the same compare-and-set as the write: else PRECONDITION_FAILED naming its
   * version now and who changed it. Without, it replaces whatever is stored (last writer wins).
   */
  update(next: Policies, actor: Actor, ifMatch?: IfMatch): Promise<Change<Policies>>;
}

export interface PnlPort {
  attribution(q: { fromMs: number; toMs: number; underlying?: string }): Promise<PnlView>;
}

/** The audit ledger: every change made through the API, with who made it. */
export interface AuditPort {
  record(entry: {
    actor: string;
    action: string;
    target: string;
    details: Record<string, unknown>;
  }): Promise<void>;
  list(range: TimeRange): Promise<AuditEntryView[]>;
}

/** Bearer tokens: stored hashed; the clear token is returned once, at creation. */
export interface TokensPort {
  verify(token: string): Promise<Actor | undefined>;
  list(): Promise<TokenView[]>;
  create(q: { name: string; role: Role }, actor: Actor): Promise<{ token: string; view: TokenView }>;
  setRole(id: string, role: Role, actor: Actor): Promise<TokenView>;
  revoke(id: string, actor: Actor): Promise<void>;
}

export interface ApiPorts {
  readiness(): Promise<ReadinessView>;
  risk: RiskPort;
  hedges: HedgesPort;
  controls: ControlsPort;
  venues: VenuesPort;
  policy: PolicyPort;
  pnl: PnlPort;
  audit: AuditPort;
  tokens: TokensPort;
  /** Prometheus registry served at /metrics (the runtime registers its own gauges on it too). */
  metrics: Registry;
  /** BullMQ queues shown in Bull Board at /admin/queues (the list may grow while it runs; the board follows); none → no board. */
  queues?: readonly Queue[];
}
