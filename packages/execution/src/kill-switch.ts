import { randomUUID } from 'node:crypto';
import { type Clock, isDatabaseUnavailable, systemClock, XhedgeError } from '@xhedge/core';
import type { KillSwitchEvent, Ledger } from '@xhedge/store';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { keysFor } from './keys.ts';
import type { ExecutionMetrics } from './metrics.ts';
import { evalScript } from './script.ts';

/** `global`, `venue:<id>` or `underlying:<symbol>`. */
export const KillScope = z.union([
  z.literal('global'),
  z.string().regex(/^venue:[a-z0-9][a-z0-9-]{0,39}$/),
  z.string().regex(/^underlying:[A-Z][A-Z0-9]{1,9}$/),
]);
export type KillScope = z.infer<typeof KillScope>;

const Engagement = z.object({
  eventId: z.string(),
  actor: z.string(),
  reason: z.string(),
  allowRiskReducing: z.boolean(),
  engagedAtMs: z.number(),
});
export type KillEngagement = z.infer<typeof Engagement> & { scope: KillScope };

/**
 * What an `engage` did to the scope (see `KillSwitch.engage`): `engaged` a scope that was not,
 * `tightened` a reduce-only engagement into a full stop, `kept` the engagement in force (the request was
 * as strict or looser), or `replaced` it (asked for with `replace: true`).
 */
export type KillEngageChange = 'engaged' | 'tightened' | 'kept' | 'replaced';

/** The answer of `engage`: the engagement in force now, what the call did, and what was asked. */
export type KillEngageResult = KillEngagement & {
  change: KillEngageChange;
  /** The request as made: who asked, why, and the setting asked for. */
  requested: { actor: string; reason: string; allowRiskReducing: boolean };
  /** The engagement in force before the call, when the scope was engaged (and readable). */
  previous?: KillEngagement;
};

/** Who, why and since when of the engagement in force, as a ledger event's details carry it when the event's own actor and reason are not those. */
const InForce = z.object({ actor: z.string(), reason: z.string(), engagedAtMs: z.number() });

/** What a kill-switch change announces to every process (Redis pub/sub). */
export const KillEvent = z.object({
  action: z.enum(['engage', 'release']),
  scope: KillScope,
  eventId: z.string(),
  allowRiskReducing: z.boolean(),
});
export type KillEvent = z.infer<typeof KillEvent>;

/**
 * Engages a scope without ever loosening it by accident (KEYS[1] the kill hash; ARGV: [1] scope, [2] the
 * new engagement as JSON, [3] '1' to replace what is there, [4] the new event id, [5] '1' when the new
 * one allows risk-reducing orders, [6] the new engagement as a full stop). Returns {change, the value in
 * force now, the value before or ''}:
 * - `engaged`: nothing was there; the new engagement is in force.
 * - `replaced`: ARGV[3]; the new engagement is in force, whatever was there (the only way to loosen).
 * - `tightened`: the one there let risk-reducing orders pass and the new one is a full stop: the new
 *   one is in force (its who, why and since).
 * - `kept`: the new one is as strict or looser: the one there stays in force (its who, why, since and
 *   setting) under the new event id, so the new announcement's cancel pass is the engagement's. One
 *   that does not read (the gate reads it as a full stop) becomes the new one as a full stop.
 */
const ENGAGE = `
local prev = redis.call('HGET', KEYS[1], ARGV[1])
if not prev or ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return {prev and 'replaced' or 'engaged', ARGV[2], prev or ''}
end
local ok, e = pcall(cjson.decode, prev)
if not (ok and type(e) == 'table') then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[6])
  return {'kept', ARGV[6], prev}
end
if e.allowRiskReducing == true and ARGV[5] == '0' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return {'tightened', ARGV[2], prev}
end
e.eventId = ARGV[4]
local v = cjson.encode(e)
redis.call('HSET', KEYS[1], ARGV[1], v)
return {'kept', v, prev}`;

/**
 * Removes the engagement a release read, and only that one (KEYS[1] the kill hash; ARGV scope, the
 * value read or '' when none was). Returns {removed 1/0, the value there now when it is another, else ''}.
 */
const RELEASE_IF_SAME = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return {0, ''} end
if cur == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return {1, ''}
end
return {0, cur}`;

/** Removes a hash field only while it still holds the given value (KEYS[1] hash; ARGV field, value). */
const DELETE_IF_SAME = `
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0`;

/** Removes a key only while it still holds the given value (KEYS[1]; ARGV value). */
const DELETE_KEY_IF_SAME = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/**
 * Takes a cancel claim as a lease (KEYS[1]; ARGV the running value, lease ms, the legacy claim's ms),
 * or says why not: `done` when the value is a finished pass's, `running` when a pass holds it (see
 * `claimCancel`). A legacy claim (neither `run|` nor `done|`) older than a lease is taken over: its
 * age is its PTTL's distance from the hour it was set for.
 */
const CLAIM_CANCEL = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 'taken' end
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, 5) == 'done|' then return 'done' end
if v and string.sub(v, 1, 4) ~= 'run|' then
  local left = redis.call('PTTL', KEYS[1])
  if left >= 0 and tonumber(ARGV[3]) - left > tonumber(ARGV[2]) then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 'taken'
  end
end
return 'running'`;

/** Extends a lease only while it still holds the given value (KEYS[1]; ARGV value, lease ms). */
const RENEW_IF_SAME = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

/**
 * Records a finished pass on its claim (KEYS[1]; ARGV running value, done value, done ms): while the
 * claim is still ours, or gone (it lapsed and nobody took it; our pass did finish). A claim another
 * pass took over is that pass's to finish.
 */
const FINISH_CANCEL = `
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] or not v then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0`;

/**
 * How long a cancel claim holds without renewal, ms: what a process that died in the middle of a cancel
 * pass (kill -9) costs the venue's working orders before another process takes the pass over.
 */
const KILL_CANCEL_LEASE_MS = 30_000;
/**
 * How long a finished cancel pass is remembered, ms: further attempts at the same announcement (other
 * processes, their retries, the announcement heard again) skip the venue meanwhile. A pass made after
 * it lapsed (a worker pool starting hours into an engagement replays it) finds the venue's orders
 * cancelled already, or cancels what was sent since: harmless either way.
 */
const KILL_CANCEL_DONE_MS = 3_600_000;
/**
 * How long releases before the lease set their cancel claim for, ms: their claim (the claimant's id
 * alone, or `1`; never renewed) stood for both a running and a finished pass. During a rolling deploy
 * such a claim older than a lease counts as lapsed (see `claimCancel`).
 */
const LEGACY_CANCEL_CLAIM_MS = 3_600_000;

/** What `claimCancel` found: the claim is ours now, a pass holds it, or a pass finished. */
export type CancelClaim = 'taken' | 'running' | 'done';

export interface KillSwitchOptions {
  redis: Redis;
  prefix: string;
  ledger?: Ledger;
  metrics?: ExecutionMetrics;
  clock?: Clock;
  /**
   * Lease of a cancel claim, ms (see `claimCancel`): renewed every third of it while the pass runs, so
   * a pass may take longer; a claim whose process died lapses after it.
   * @defaultValue 30000
   */
  cancelLeaseMs?: number;
}

/**
 * The kill switch: global, per venue, per underlying. State lives in Redis (every process checks it
 * before queueing and right before sending), changes are announced on a channel so workers abort
 * active jobs and cancel working orders at once, and every action is written to the ledger and the
 * metrics. It needs nothing from the trading processes: the API or a CLI engages it with Redis alone.
 * With `allowRiskReducing`, reduce-only orders still pass. The ledger is the durable record: if Redis
 * loses an engagement, `restore` (run at startup and periodically) puts it back, so a data loss in
 * Redis keeps trading stopped instead of silently resuming it (fail-closed). A release made without
 * the ledger is therefore undone by the next `restore` wherever the ledger still says engaged.
 */
/**
 * The switch is engaged (in Redis: orders are stopped, working ones are being cancelled) but its ledger
 * record failed. `engage` writes Redis first on purpose, so a ledger outage never delays the stop; this
 * error tells the caller exactly that, instead of a failure that reads as "not engaged".
 */
export class KillSwitchUnrecordedError extends XhedgeError {
  override name = 'KillSwitchUnrecordedError';
  readonly engagement: KillEngagement;
  /** What failed: the kill-switch event (the ledger has no record) or only the audit entry after it. */
  readonly part: 'event' | 'audit';
  constructor(engagement: KillEngagement, cause: unknown, part: 'event' | 'audit' = 'event') {
    const why = (cause instanceof Error ? cause.message : String(cause)).split('\n')[0]?.slice(0, 300);
    const scope = engagement.scope;
    super(
      'KILL_SWITCH_UNRECORDED',
      part === 'event'
        ? `kill switch ENGAGED ${scope} (orders are stopped), but the ledger did not record it: ${why}`
        : `kill switch ENGAGED ${scope} (orders are stopped) and recorded, but its audit entry failed: ${why}`,
      {
        details: {
          scope,
          eventId: engagement.eventId,
          engaged: true,
          recorded: part === 'audit',
          audited: false,
        },
        metaMessages: [
          part === 'event'
            ? 'it stays engaged; once the ledger answers, record it by hand (or release and engage it again)'
            : 'it stays engaged and its kill-switch event is in the ledger; only the audit line is missing',
        ],
        cause,
      },
    );
    this.engagement = engagement;
    this.part = part;
  }
}

/**
 * The engage could not reach Redis (down, read-only, loading, failing over), so it is NOT in force yet,
 * but its kill-switch event is in the ledger (`details.pendingRedis`): the control-state restore (run at
 * start, every few seconds, and as soon as the Redis client is ready again) puts it in force and
 * announces it (the workers' cancel pass) once Redis answers. Meanwhile no order passes the gate anyway
 * (it lives in Redis), but orders resting at venues stay working until then. Code
 * `KILL_SWITCH_PENDING`.
 */
export class KillSwitchPendingError extends XhedgeError {
  override name = 'KillSwitchPendingError';
  readonly engagement: KillEngagement;
  constructor(engagement: KillEngagement, cause: unknown, o: { replace?: boolean } = {}) {
    const why = (cause instanceof Error ? cause.message : String(cause)).split('\n')[0]?.slice(0, 300);
    super(
      'KILL_SWITCH_PENDING',
      `kill switch ${engagement.scope} engagement RECORDED in the ledger but not yet in force: Redis did not take it (${why}); it is applied, and working orders cancelled, as soon as Redis answers`,
      {
        details: {
          scope: engagement.scope,
          eventId: engagement.eventId,
          engaged: false,
          recorded: true,
          pending: true,
          allowRiskReducing: engagement.allowRiskReducing,
        },
        metaMessages: [
          'no new order passes while Redis is unreachable (the order gate lives there); orders resting at venues stay working until it is applied',
          'do not engage again: the recorded engagement is applied by the control-state restore once Redis answers',
          ...(o.replace
            ? [
                'replace was asked: when applied it never loosens an engagement Redis holds by then (engage again with replace)',
              ]
            : []),
        ],
        cause,
      },
    );
    this.engagement = engagement;
  }
}

/**
 * A release found a newer engagement of its scope than the one it read: one that arrived after its read
 * (an engage, or a re-engage that changed the entry). The release removed nothing: the newer engagement
 * stays in force, and the ledger's last word on the scope is that engagement again (restated after the
 * release's own event, see `KillSwitch.release`). Code `KILL_SWITCH_RELEASE_CONFLICT`: a conflict
 * (HTTP 409); release again after reading the newer engagement.
 */
export class KillSwitchReleaseConflictError extends XhedgeError {
  override name = 'KillSwitchReleaseConflictError';
  readonly scope: KillScope;
  /** The newer engagement, in force; undefined when its entry does not read (the gate takes it as a full stop). */
  readonly engagement: KillEngagement | undefined;
  constructor(
    scope: KillScope,
    engagement: KillEngagement | undefined,
    o: { ledgerRestated?: boolean; cause?: unknown } = {},
  ) {
    const by = engagement
      ? ` by ${engagement.actor} at ${new Date(engagement.engagedAtMs).toISOString()} ("${engagement.reason.slice(0, 200)}")`
      : ' (its entry does not read: a full stop)';
    super(
      'KILL_SWITCH_RELEASE_CONFLICT',
      `kill switch ${scope} NOT released: engaged again${by} after this release read it; it stays engaged`,
      {
        details: {
          scope,
          engaged: true,
          released: false,
          ...(engagement
            ? {
                eventId: engagement.eventId,
                actor: engagement.actor,
                reason: engagement.reason,
                allowRiskReducing: engagement.allowRiskReducing,
                engagedAtMs: engagement.engagedAtMs,
              }
            : { unreadable: true }),
          ...(o.ledgerRestated !== undefined ? { ledgerRestated: o.ledgerRestated } : {}),
        },
        metaMessages: [
          'a release removes only the engagement it read: read the newer one, and release again if it should go',
          ...(o.ledgerRestated === false
            ? [
                'the ledger may say released last while it is engaged: engage it again (or record the engagement by hand) so a restore keeps it',
              ]
            : []),
        ],
        ...(o.cause !== undefined ? { cause: o.cause } : {}),
      },
    );
    this.scope = scope;
    this.engagement = engagement;
  }
}

/**
 * Writes an engagement made in Redis to the ledger: its kill-switch event, then its audit entry. Throws
 * {@link KillSwitchUnrecordedError} naming the part that failed. It records only: a caller that engaged
 * without a ledger at hand (the CLI, the ledger slow to open) calls `KillSwitch.recordEngagement` once
 * the ledger is there (the stop never waits on the ledger), which also restates a newer engagement that
 * got into Redis meanwhile; this alone could leave a late record as the ledger's last word.
 */
export async function recordKillEngagement(
  ledger: Ledger,
  e: KillEngagement | KillEngageResult,
): Promise<void> {
  // The event says who asked and why; its setting and event id are those in force (what a restore puts
  // back), and when the engagement in force is another's (`kept`), its who, why and since are in
  // `details.inForce`.
  const asked = 'requested' in e ? e.requested : e;
  const change = 'change' in e ? e.change : 'engaged';
  const inForceOther = asked.actor !== e.actor || asked.reason !== e.reason;
  try {
    await ledger.recordKillSwitchEvent({
      scope: e.scope,
      action: 'engage',
      actor: asked.actor,
      reason: asked.reason,
      allowRiskReducing: e.allowRiskReducing,
      details: {
        eventId: e.eventId,
        ...(change !== 'engaged' ? { change, requestedAllowRiskReducing: asked.allowRiskReducing } : {}),
        ...(inForceOther || change === 'kept'
          ? { inForce: { actor: e.actor, reason: e.reason, engagedAtMs: e.engagedAtMs } }
          : {}),
      },
    });
  } catch (err) {
    throw new KillSwitchUnrecordedError(e, err, 'event');
  }
  try {
    await ledger.audit({
      actor: asked.actor,
      action: 'kill-switch.engage',
      subject: e.scope,
      details: {
        reason: asked.reason,
        ...(change !== 'engaged'
          ? {
              change,
              allowRiskReducing: e.allowRiskReducing,
              requestedAllowRiskReducing: asked.allowRiskReducing,
              ...(inForceOther ? { inForceActor: e.actor, inForceReason: e.reason } : {}),
            }
          : {}),
      },
    });
  } catch (err) {
    throw new KillSwitchUnrecordedError(e, err, 'audit');
  }
}

export class KillSwitch {
  /** Redis key prefix (shared with the controls and the breakers of one deployment). */
  readonly prefix: string;
  readonly #redis: Redis;
  readonly #keys: ReturnType<typeof keysFor>;
  readonly #ledger: Ledger | undefined;
  readonly #metrics: ExecutionMetrics | undefined;
  readonly #clock: Clock;
  /** Lease of a cancel claim, ms (`KillSwitchOptions.cancelLeaseMs`). */
  readonly cancelLeaseMs: number;

  constructor(o: KillSwitchOptions) {
    const leaseMs = o.cancelLeaseMs ?? KILL_CANCEL_LEASE_MS;
    // PX takes whole milliseconds; a renewal every third of it needs a few to be meaningful
    if (!Number.isInteger(leaseMs) || leaseMs < 30)
      throw new RangeError(`cancelLeaseMs must be a whole number of ms, at least 30; got ${leaseMs}`);
    this.prefix = o.prefix;
    this.#redis = o.redis;
    this.#keys = keysFor(o.prefix);
    this.#ledger = o.ledger;
    this.#metrics = o.metrics;
    this.#clock = o.clock ?? systemClock;
    this.cancelLeaseMs = leaseMs;
  }

  /** True with a ledger: its engagements can be restored after Redis loses them (see `restore`). */
  get durable(): boolean {
    return this.#ledger !== undefined;
  }

  /** The Redis hash holding the engagements (field = scope, value = JSON). */
  get stateKey(): string {
    return this.#keys.kill;
  }

  /** Parses an engagement as stored in `stateKey`. */
  static engagementOf(scope: KillScope, raw: string): KillEngagement {
    return { scope, ...Engagement.parse(JSON.parse(raw)) };
  }

  get channel(): string {
    return this.#keys.killChannel;
  }

  /**
   * Engages `scope`, in one Redis script, then announces it (workers abort jobs and cancel working
   * orders), then records it in the ledger. An engage never loosens a scope that is engaged, unless
   * asked to with `replace: true`: a full stop (`allowRiskReducing` false) stays a full stop when a
   * reduce-only engagement follows (`kept`: the engagement in force keeps its who, why and since; the
   * new request is in the ledger), and a full stop over a reduce-only engagement tightens it
   * (`tightened`: the new one is in force). The answer is the engagement in force and what the call did
   * (see {@link KillEngageResult}). Every engage gets a fresh event id, which the engagement in force
   * then carries, so its announcement makes a fresh cancel pass.
   *
   * After its ledger event it reads the scope once more: when a newer engagement got into Redis
   * meanwhile (whose own ledger event may have come before this one), that engagement is restated in the
   * ledger, so the ledger's last word on the scope is what Redis holds (see `#restate`).
   * @throws KillSwitchUnrecordedError engaged in Redis, but the ledger write failed
   * @throws KillSwitchPendingError Redis was unavailable (down, read-only, loading): not in force yet,
   * but recorded in the ledger, and put in force by the control-state restore once Redis answers
   */
  async engage(
    scopeIn: KillScope,
    o: { actor: string; reason: string; allowRiskReducing?: boolean; replace?: boolean },
  ): Promise<KillEngageResult> {
    const scope = KillScope.parse(scopeIn);
    const requested = { actor: o.actor, reason: o.reason, allowRiskReducing: o.allowRiskReducing ?? false };
    const e = { eventId: randomUUID(), ...requested, engagedAtMs: this.#clock.nowMs() };
    let res: unknown;
    try {
      res = await this.#engageScript(scope, e, o.replace === true);
    } catch (err) {
      // Redis down or refusing writes: the stop is not lost, it is recorded for the restore to apply
      if (!this.#ledger || !isDatabaseUnavailable(err)) throw err;
      throw await this.#recordPending(this.#ledger, { scope, ...e }, err, o.replace === true);
    }
    const [change, inForceRaw, prevRaw] = engageReply(res);
    const inForce = KillSwitch.engagementOf(scope, inForceRaw);
    const prev = prevRaw === '' ? undefined : Engagement.safeParse(safeJson(prevRaw));
    const result: KillEngageResult = {
      ...inForce,
      change,
      requested,
      ...(prev?.success ? { previous: { scope, ...prev.data } } : {}),
    };
    const ev: KillEvent = {
      action: 'engage',
      scope,
      eventId: inForce.eventId,
      allowRiskReducing: inForce.allowRiskReducing,
    };
    await this.#redis.publish(this.#keys.killChannel, JSON.stringify(ev));
    this.#metrics?.killSwitchEngaged.set({ scope }, 1);
    this.#metrics?.killSwitchActions.inc({ scope, action: 'engage' });
    if (this.#ledger) await this.recordEngagement(this.#ledger, result);
    return result;
  }

  /** Runs the ENGAGE script for `e` (see there). */
  #engageScript(
    scope: KillScope,
    e: { eventId: string; allowRiskReducing: boolean },
    replace: boolean,
  ): Promise<unknown> {
    return evalScript(
      this.#redis,
      ENGAGE,
      [this.#keys.kill],
      [
        scope,
        JSON.stringify(e),
        replace ? '1' : '0',
        e.eventId,
        e.allowRiskReducing ? '1' : '0',
        JSON.stringify({ ...e, allowRiskReducing: false }),
      ],
    );
  }

  /**
   * An engage Redis did not take because it was unavailable: its `engage` event goes to the ledger as a
   * normal engage's does (the restore puts it in force), marked `pendingRedis`, and the error to throw
   * says so. A ledger that fails too leaves nothing recorded: the Redis error is thrown as it is.
   */
  async #recordPending(
    ledger: Ledger,
    e: KillEngagement,
    redisErr: unknown,
    replace: boolean,
  ): Promise<unknown> {
    try {
      await ledger.recordKillSwitchEvent({
        scope: e.scope,
        action: 'engage',
        actor: e.actor,
        reason: e.reason,
        allowRiskReducing: e.allowRiskReducing,
        atMs: e.engagedAtMs,
        details: { eventId: e.eventId, pendingRedis: true, ...(replace ? { requestedReplace: true } : {}) },
      });
    } catch {
      return redisErr;
    }
    this.#metrics?.killSwitchActions.inc({ scope: e.scope, action: 'engage-pending' });
    await ledger
      .audit({
        actor: e.actor,
        action: 'kill-switch.engage',
        subject: e.scope,
        details: { reason: e.reason, pendingRedis: true, allowRiskReducing: e.allowRiskReducing },
      })
      // the event is the record a restore reads; the audit line is a courtesy here
      .catch(() => {});
    return new KillSwitchPendingError(e, redisErr, { replace });
  }

  /**
   * Writes an engagement made in Redis to the ledger (see {@link recordKillEngagement}), then makes the
   * ledger's last word on its scope agree with Redis: a newer engagement that got into Redis meanwhile
   * (whose own ledger event may have come before this one) is restated after it (see `#restate`), so a
   * restore after a loss puts back that one, not this late record (a reduce-only request recorded after
   * a full stop that tightened it). `engage` calls it with its own ledger; a caller that engaged with a
   * switch built without one (the CLI, its ledger slow to open) calls it once the ledger is open.
   * @throws KillSwitchUnrecordedError engaged in Redis, but the ledger write failed
   */
  async recordEngagement(ledger: Ledger, e: KillEngageResult | KillEngagement): Promise<void> {
    await recordKillEngagement(ledger, e);
    const by = 'requested' in e ? e.requested.actor : e.actor;
    // this engagement is in force and recorded; a newer one's own process records it too, so a
    // failed restatement only narrows what covers the case where that record came before ours
    await this.#restate(ledger, e.scope, e.eventId, by).catch(() => {});
  }

  /**
   * Releases the engagement of `scope` that it reads, and only that one. The ledger event is written
   * first, then the entry is removed if it still holds what was read (one script), and the release
   * announced: a failed ledger write leaves the switch engaged (fail-closed), and the ledger never says
   * "engaged" after Redis said released, which `restore` relies on (see there). True when it removed an
   * engagement; false when there was none (or another release removed it first).
   *
   * An engagement that arrived after the read (a new engage, or a re-engage that changed the entry)
   * stays: the release throws {@link KillSwitchReleaseConflictError}. Its ledger event is written by
   * then and may come after the newer engagement's, so the newer engagement is restated in the ledger
   * after it (an `engage` event with its event id, who, why and setting): the ledger's last word agrees
   * with Redis, and a restore after a loss puts the newer engagement back. Recording the release only
   * after the removal instead would let a restore that read the ledger in between re-engage a scope
   * just released, and a failed ledger write then leave it released with the ledger saying engaged.
   */
  async release(scopeIn: KillScope, o: { actor: string; reason: string }): Promise<boolean> {
    const scope = KillScope.parse(scopeIn);
    // What was engaged is read before the ledger write so the event can say so; the script below
    // removes exactly that and is the authority for the return value.
    const read = await this.#redis.hget(this.#keys.kill, scope);
    const released = read === null ? undefined : Engagement.safeParse(safeJson(read));
    // An engage recorded while Redis was down, not applied yet, is an engagement this release did not
    // read: it stays (the restore applies it), as one that reached Redis after the read would.
    const { pending, seenId } = await this.#pendingOf(scope);
    if (pending && pending.eventId !== (released?.success ? released.data.eventId : undefined))
      throw new KillSwitchReleaseConflictError(scope, pending.engagement);
    await this.#ledger?.recordKillSwitchEvent({
      scope,
      action: 'release',
      actor: o.actor,
      reason: o.reason,
      allowRiskReducing: false,
      details: {
        wasEngaged: read !== null,
        ...(released?.success ? { releasedEventId: released.data.eventId } : {}),
      },
    });
    // An engage recorded while its process could not reach Redis, landing between the check above and
    // this release's own event, would be hidden behind the release: the restore reads the scope's latest
    // event and skipped it, though its operator was told it is applied once Redis answers. It is recorded
    // again after the release, and the release removes nothing (the restore applies it).
    if (this.#ledger) {
      const since = (await this.#ledger.listKillSwitchEvents({ scope, limit: 200 })).filter(
        (x) => x.id > seenId,
      );
      const hidden = since.filter(isPending).at(-1);
      const latest = since.find((x) => x.action === 'engage' || x.action === 'release');
      if (hidden && latest && !isPending(latest) && typeof hidden.details.eventId === 'string') {
        await this.#ledger.recordKillSwitchEvent({
          scope,
          action: 'engage',
          actor: hidden.actor,
          reason: hidden.reason,
          allowRiskReducing: hidden.allowRiskReducing,
          atMs: hidden.atMs,
          details: { ...hidden.details, rerecordedAfterRelease: true },
        });
        throw new KillSwitchReleaseConflictError(scope, engagementOfEvent(scope, hidden));
      }
    }
    const res = await evalScript(this.#redis, RELEASE_IF_SAME, [this.#keys.kill], [scope, read ?? '']);
    if (!Array.isArray(res) || typeof res[1] !== 'string')
      throw new Error(`kill-switch release: unexpected script reply ${JSON.stringify(res)}`);
    const removed = res[0] === 1;
    const newerRaw = res[1];
    if (newerRaw !== '') return this.#releaseRefused(scope, newerRaw, o);
    const ev: KillEvent = { action: 'release', scope, eventId: randomUUID(), allowRiskReducing: false };
    await this.#redis.publish(this.#keys.killChannel, JSON.stringify(ev));
    this.#metrics?.killSwitchEngaged.set({ scope }, 0);
    this.#metrics?.killSwitchActions.inc({ scope, action: 'release' });
    await this.#ledger?.audit({
      actor: o.actor,
      action: 'kill-switch.release',
      subject: scope,
      details: { reason: o.reason },
    });
    return removed;
  }

  /**
   * The scope's latest ledger engage/release event when it is an engage recorded while Redis was down
   * (`pending`), and the newest event id read (`seenId`, 0 for none).
   */
  async #pendingOf(
    scope: KillScope,
  ): Promise<{ pending?: { eventId: string; engagement: KillEngagement }; seenId: number }> {
    if (!this.#ledger) return { seenId: Number.POSITIVE_INFINITY };
    const events = await this.#ledger.listKillSwitchEvents({ scope, limit: 200 });
    const seenId = events[0]?.id ?? 0;
    const ev = events.find((x) => x.action === 'engage' || x.action === 'release');
    if (!ev || !isPending(ev) || typeof ev.details.eventId !== 'string') return { seenId };
    return { pending: { eventId: ev.details.eventId, engagement: engagementOfEvent(scope, ev) }, seenId };
  }

  /** A release that found `newerRaw` in force instead of what it read: restated in the ledger, audited, thrown. */
  async #releaseRefused(
    scope: KillScope,
    newerRaw: string,
    o: { actor: string; reason: string },
  ): Promise<never> {
    const parsed = Engagement.safeParse(safeJson(newerRaw));
    const newer: KillEngagement | undefined = parsed.success ? { scope, ...parsed.data } : undefined;
    const ledger = this.#ledger;
    if (!ledger) throw new KillSwitchReleaseConflictError(scope, newer);
    let restateErr: unknown;
    await this.#restate(ledger, scope, null, o.actor).catch((err: unknown) => {
      restateErr = err;
    });
    await ledger
      .audit({
        actor: o.actor,
        action: 'kill-switch.release-conflict',
        subject: scope,
        details: {
          reason: o.reason,
          ...(newer ? { engagedEventId: newer.eventId, engagedBy: newer.actor } : { unreadable: true }),
        },
      })
      // the audit line is a courtesy here: the answer (not released) matters more than its failure
      .catch(() => {});
    throw new KillSwitchReleaseConflictError(scope, newer, {
      // an entry that does not read cannot be restated
      ledgerRestated: newer !== undefined && restateErr === undefined,
      ...(restateErr !== undefined ? { cause: restateErr } : {}),
    });
  }

  /**
   * Makes the ledger's last word on `scope` agree with Redis after this process wrote its own event
   * there: while Redis holds an engagement other than `left` (the event id of the engagement this
   * process left in force, which every engage gives it; null for none), that engagement is written to
   * the ledger again, as an `engage` event with its event id,
   * setting, who, why and since (`details.inForce`, `details.restatedBy`). Its own event may have come
   * before ours. Redis holding nothing is never restated as a release: that could be a loss, which a
   * restore must still be able to undo. A few rounds at most (each one follows another change).
   */
  async #restate(ledger: Ledger, scope: KillScope, left: string | null, by: string): Promise<void> {
    let last = left;
    for (let round = 0; round < 3; round++) {
      const cur = await this.#redis.hget(this.#keys.kill, scope);
      if (cur === null) return;
      const parsed = Engagement.safeParse(safeJson(cur));
      if (!parsed.success) return;
      const e = parsed.data;
      if (e.eventId === last) return;
      await ledger.recordKillSwitchEvent({
        scope,
        action: 'engage',
        actor: e.actor,
        reason: e.reason,
        allowRiskReducing: e.allowRiskReducing,
        details: {
          eventId: e.eventId,
          restatedBy: by,
          inForce: { actor: e.actor, reason: e.reason, engagedAtMs: e.engagedAtMs },
        },
      });
      last = e.eventId;
    }
  }

  /**
   * Puts back every engagement the ledger holds but Redis lost (a restart without AOF, the last
   * second of `appendfsync everysec`, a failover to a replica that missed the write, an eviction):
   * for each scope whose latest ledger `engage`/`release` event is `engage` and which is absent from
   * the Redis hash, the engagement is written back with HSETNX (same event id, reason, actor,
   * `allowRiskReducing`, `engagedAtMs` = the ledger time; or the who, why and since the event names in
   * `details.inForce`: a re-engage that kept an earlier engagement, a restatement), announced on `channel` as an `engage`
   * (with a fresh announcement id, so workers abort jobs and cancel working orders again even if the
   * original cancel claims survived), counted in the metrics and audited as `kill-switch.restore`.
   * It only adds: an engagement present in Redis is left alone (also one whose ledger write failed),
   * except that an engage recorded while Redis was unavailable (`details.pendingRedis`, see
   * {@link KillSwitchPendingError}) that is still the scope's latest event is applied over it as an
   * engage would have been, never loosening it (see `#applyPending`).
   * Returns what it restored; without a ledger, nothing.
   *
   * Ordering against a concurrent `release` (which writes the ledger first, then removes the entry it
   * read):
   * - Redis is read before the ledger. If a scope is absent from that Redis read but the ledger read
   *   says `engage`, the release's removal cannot explain the absence: it follows the release's
   *   ledger write, which would then precede our ledger read and show as the latest event. So the
   *   entry really was lost. (Reading the ledger first would leave a window where a release lands
   *   between the two reads and restore re-engages a scope that was just released.)
   * - A release can still start after our ledger read and before our HSETNX. Therefore the ledger
   *   is read once more after writing: if the scope's latest event is no longer the one restored,
   *   our entry is removed again (compare-and-delete, so a newer engagement stays). A release whose
   *   ledger write comes after that second read removes it itself when it read it; one that read Redis
   *   before our HSETNX finds an engagement it did not read, leaves it and says so
   *   ({@link KillSwitchReleaseConflictError}).
   * Every remaining window errs towards engaged, never towards released.
   */
  async restore(o: { actor: string }): Promise<KillEngagement[]> {
    if (!this.#ledger) return [];
    const inRedis = await this.#redis.hgetall(this.#keys.kill);
    const states = (await this.#ledger.killSwitchStates()).filter((ev) => ev.action === 'engage');
    const restored: KillEngagement[] = [];
    for (const ev of states) {
      const held = inRedis[ev.scope];
      const e =
        held === undefined
          ? await this.#restoreOne(ev, o.actor)
          : isPending(ev) && eventIdOf(held) !== ev.details.eventId
            ? await this.#applyPending(ev, o.actor)
            : undefined;
      if (e) restored.push(e);
    }
    return restored;
  }

  /**
   * Applies an engage recorded while Redis was unavailable (`details.pendingRedis`, the scope's latest
   * ledger event) to a scope Redis holds another engagement of: as an engage then would have, never
   * loosening it (the ENGAGE script without replace: a full stop tightens a reduce-only engagement, a
   * looser one keeps the one there under its event id). Announced (a fresh cancel pass), and the
   * engagement in force restated in the ledger after it, so its last word is what Redis holds. A
   * release that read the older engagement meanwhile finds this one and removes nothing.
   */
  async #applyPending(ev: KillSwitchEvent, actor: string): Promise<KillEngagement | undefined> {
    const ledger = this.#ledger;
    const parsed = KillScope.safeParse(ev.scope);
    if (!ledger || !parsed.success || typeof ev.details.eventId !== 'string') return undefined;
    const scope = parsed.data;
    const e = {
      eventId: ev.details.eventId,
      actor: ev.actor,
      reason: ev.reason,
      allowRiskReducing: ev.allowRiskReducing,
      engagedAtMs: ev.atMs,
    };
    const [change, inForceRaw] = engageReply(await this.#engageScript(scope, e, false));
    const inForce = KillSwitch.engagementOf(scope, inForceRaw);
    // The ledger's last word made what Redis holds, unless a release was recorded after the pending
    // engage meanwhile (it removes what it read, or is refused by what changed): restated then, the
    // engage landed after the release and the next restore put the released scope back in force.
    const latest = (await ledger.listKillSwitchEvents({ scope, limit: 50 })).find(
      (x) => x.action === 'engage' || x.action === 'release',
    );
    if (latest?.action !== 'release') await this.#restate(ledger, scope, null, actor);
    await this.#announceRestored(ledger, inForce, actor, { change });
    return inForce;
  }

  /** Restores one lost engagement (see `restore`); undefined when Redis holds the scope again or it was released. */
  async #restoreOne(ev: KillSwitchEvent, actor: string): Promise<KillEngagement | undefined> {
    const ledger = this.#ledger;
    // engage() only writes parsed scopes; a row that does not parse could never block anything.
    const parsed = KillScope.safeParse(ev.scope);
    if (!ledger || !parsed.success) return undefined;
    const scope = parsed.data;
    const eventId = typeof ev.details.eventId === 'string' ? ev.details.eventId : randomUUID();
    // a re-engage that kept an earlier engagement, or a restatement, names the engagement in force
    const inForce = InForce.safeParse(ev.details.inForce);
    const e = {
      eventId,
      actor: inForce.success ? inForce.data.actor : ev.actor,
      reason: inForce.success ? inForce.data.reason : ev.reason,
      allowRiskReducing: ev.allowRiskReducing,
      engagedAtMs: inForce.success ? inForce.data.engagedAtMs : ev.atMs,
    };
    const raw = JSON.stringify(e);
    if ((await this.#redis.hsetnx(this.#keys.kill, scope, raw)) !== 1) return undefined;
    const latest = (await ledger.killSwitchStates()).find((s) => s.scope === ev.scope);
    if (latest?.id !== ev.id) {
      await evalScript(this.#redis, DELETE_IF_SAME, [this.#keys.kill], [scope, raw]);
      return undefined;
    }
    await this.#announceRestored(ledger, { scope, ...e }, actor, isPending(ev) ? { pending: true } : {});
    return { scope, ...e };
  }

  /** Announces a restored (or pending, now applied) engagement, counts and audits it. */
  async #announceRestored(
    ledger: Ledger,
    e: KillEngagement,
    actor: string,
    extra: Record<string, unknown>,
  ): Promise<void> {
    const announced: KillEvent = {
      action: 'engage',
      scope: e.scope,
      eventId: `${e.eventId}:restore:${randomUUID()}`,
      allowRiskReducing: e.allowRiskReducing,
    };
    await this.#redis.publish(this.#keys.killChannel, JSON.stringify(announced));
    this.#metrics?.killSwitchEngaged.set({ scope: e.scope }, 1);
    this.#metrics?.killSwitchActions.inc({ scope: e.scope, action: 'restore' });
    await ledger.audit({
      actor,
      action: 'kill-switch.restore',
      subject: e.scope,
      details: {
        reason: e.reason,
        originalActor: e.actor,
        eventId: e.eventId,
        announcedEventId: announced.eventId,
        ...extra,
      },
    });
  }

  /** Records that working orders were cancelled for an engagement (called by the process that did it). */
  async recordCancelWorking(
    scope: KillScope,
    actor: string,
    details: Record<string, unknown>,
  ): Promise<void> {
    this.#metrics?.killSwitchActions.inc({ scope, action: 'cancel-working' });
    await this.#ledger?.recordKillSwitchEvent({
      scope,
      action: 'cancel-working',
      actor,
      reason: 'kill switch engaged',
      allowRiskReducing: false,
      details,
    });
  }

  /**
   * Every engagement, read one by one: an entry that does not parse (written by something else; the gate
   * reads it as a full stop) is listed in `unreadable` with why, not thrown for all (see `engaged`).
   */
  async engagedEach(): Promise<{
    engaged: KillEngagement[];
    unreadable: { scope: string; error: string }[];
  }> {
    const all = await this.#redis.hgetall(this.#keys.kill);
    const engaged: KillEngagement[] = [];
    const unreadable: { scope: string; error: string }[] = [];
    for (const [scope, v] of Object.entries(all)) {
      const s = KillScope.safeParse(scope);
      const p = Engagement.safeParse(safeJson(v));
      if (s.success && p.success) engaged.push({ scope: s.data, ...p.data });
      else
        unreadable.push({
          scope,
          error: !s.success
            ? 'not a kill-switch scope'
            : `entry does not parse: ${p.error?.message.slice(0, 200)}`,
        });
    }
    return { engaged, unreadable };
  }

  async engaged(): Promise<KillEngagement[]> {
    const all = await this.#redis.hgetall(this.#keys.kill);
    return Object.entries(all).map(([scope, v]) => ({
      scope: scope as KillScope,
      ...Engagement.parse(JSON.parse(v)),
    }));
  }

  /** The engagement that blocks this order, if any (reduce-only passes where allowed). */
  async blocking(o: {
    venue: string;
    underlying: string;
    reduceOnly: boolean;
  }): Promise<KillEngagement | undefined> {
    const scopes = ['global', `venue:${o.venue}`, `underlying:${o.underlying}`];
    const vals = await this.#redis.hmget(this.#keys.kill, ...scopes);
    for (let i = 0; i < scopes.length; i++) {
      const v = vals[i];
      if (!v) continue;
      const e = Engagement.parse(JSON.parse(v));
      if (e.allowRiskReducing && o.reduceOnly) continue;
      return { scope: scopes[i] as KillScope, ...e };
    }
    return undefined;
  }

  /**
   * Takes the once-per-(event, venue) right to cancel working orders, as a lease of `cancelLeaseMs`:
   * `taken` (ours now), `running` (a pass holds it: other processes skip the venue for now, and look
   * again after a lease, see the worker's `#cancelPasses`) or `done` (a pass finished: skip). The
   * claimant keeps the lease while its pass runs (`renewCancel`), and ends it with `finishCancel` (the
   * pass finished) or `giveBackCancel` (it did not). A claim whose process died mid-pass is not
   * renewed and lapses after the lease, so the next attempt (another process's retry, the announcement
   * heard again) takes it: the venue's working orders wait a lease for their cancels, not an hour. `by`
   * names the claimant, so only it renews, finishes or gives back the claim.
   *
   * A claim written by a release before the lease (during a rolling deploy: the claimant's id alone,
   * set for an hour and never renewed, kept as the marker of a finished pass too) reads as `running`
   * for its first lease and is taken over after it: its pass either finished (this pass then finds
   * nothing left to cancel, as a replay after a lapsed done marker) or still runs (a cancel sent twice
   * does no harm, see the worker's `#underClaim`); neither is worth the venue's orders waiting an hour.
   * That process cannot give back, nor overwrite, the claim then taken (its give-back compares its id).
   */
  async claimCancel(eventId: string, venue: string, by = 'anonymous'): Promise<CancelClaim> {
    const res = await evalScript(
      this.#redis,
      CLAIM_CANCEL,
      [this.#keys.killCancelLock(eventId, venue)],
      [runningClaim(by), this.cancelLeaseMs, LEGACY_CANCEL_CLAIM_MS],
    );
    if (res === 'taken' || res === 'running' || res === 'done') return res;
    throw new Error(`kill-switch claimCancel: unexpected script reply ${JSON.stringify(res)}`);
  }

  /**
   * Extends `by`'s cancel claim by another `cancelLeaseMs`, while its pass runs. False when the claim is
   * no longer `by`'s running one (it lapsed, e.g. the process stalled past the lease, and maybe another
   * process took it over).
   */
  async renewCancel(eventId: string, venue: string, by = 'anonymous'): Promise<boolean> {
    return (
      (await evalScript(
        this.#redis,
        RENEW_IF_SAME,
        [this.#keys.killCancelLock(eventId, venue)],
        [runningClaim(by), this.cancelLeaseMs],
      )) === 1
    );
  }

  /**
   * Records that `by`'s cancel pass finished (every working order it listed is cancelled): the claim
   * becomes a `done` marker kept an hour, so further attempts at the event skip the venue.
   * Also when the claim had lapsed and nobody took it. False, and nothing changed, when another pass
   * took the claim over (that pass ends it).
   */
  async finishCancel(eventId: string, venue: string, by = 'anonymous'): Promise<boolean> {
    return (
      (await evalScript(
        this.#redis,
        FINISH_CANCEL,
        [this.#keys.killCancelLock(eventId, venue)],
        [runningClaim(by), `done|${by}`, KILL_CANCEL_DONE_MS],
      )) === 1
    );
  }

  /**
   * Gives back a cancel claim taken by `by` whose pass did not finish (a cancel or the ledger failed),
   * so another attempt at the same event (another process, a repeated announcement) can take it at once
   * rather than after the lease. A claim held by someone else (ours lapsed and was taken again), or
   * finished, is left alone. True when removed.
   */
  async giveBackCancel(eventId: string, venue: string, by = 'anonymous'): Promise<boolean> {
    return (
      (await evalScript(
        this.#redis,
        DELETE_KEY_IF_SAME,
        [this.#keys.killCancelLock(eventId, venue)],
        [runningClaim(by)],
      )) === 1
    );
  }
}

/** The reply of the ENGAGE script, checked. */
function engageReply(res: unknown): [KillEngageChange, string, string] {
  const changes: readonly string[] = ['engaged', 'tightened', 'kept', 'replaced'];
  if (
    Array.isArray(res) &&
    typeof res[0] === 'string' &&
    changes.includes(res[0]) &&
    typeof res[1] === 'string' &&
    typeof res[2] === 'string'
  )
    return [res[0] as KillEngageChange, res[1], res[2]];
  throw new Error(`kill-switch engage: unexpected script reply ${JSON.stringify(res)}`);
}

/** An `engage` event recorded while Redis could not take it (see `KillSwitchPendingError`). */
/** The engagement an engage event of `scope` records (its event id from `details.eventId`). */
function engagementOfEvent(scope: KillScope, ev: KillSwitchEvent): KillEngagement {
  return {
    scope,
    eventId: String(ev.details.eventId),
    actor: ev.actor,
    reason: ev.reason,
    allowRiskReducing: ev.allowRiskReducing,
    engagedAtMs: ev.atMs,
  };
}

function isPending(ev: KillSwitchEvent): boolean {
  return ev.action === 'engage' && ev.details.pendingRedis === true;
}

/** The event id of an engagement as stored in Redis, or undefined when it does not read. */
function eventIdOf(raw: string): string | undefined {
  const p = Engagement.safeParse(safeJson(raw));
  return p.success ? p.data.eventId : undefined;
}

/** JSON.parse, or undefined for text that is not JSON (an entry written by something else). */
function safeJson(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return undefined;
  }
}

/** The value of a cancel claim while `by`'s pass runs (a finished one reads `done|<by>`). */
function runningClaim(by: string): string {
  return `run|${by}`;
}

/** Does an engagement of `scope` cover this order? */
export function scopeCovers(scope: string, o: { venue: string; underlying: string }): boolean {
  return scope === 'global' || scope === `venue:${o.venue}` || scope === `underlying:${o.underlying}`;
}
