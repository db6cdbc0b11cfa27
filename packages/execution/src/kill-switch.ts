import { randomUUID } from 'node:crypto';
import { type Clock, systemClock, XhedgeError } from '@xhedge/core';
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

/** What a kill-switch change announces to every process (Redis pub/sub). */
export const KillEvent = z.object({
  action: z.enum(['engage', 'release']),
  scope: KillScope,
  eventId: z.string(),
  allowRiskReducing: z.boolean(),
});
export type KillEvent = z.infer<typeof KillEvent>;

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
 * Writes an engagement made in Redis to the ledger: its kill-switch event, then its audit entry. Throws
 * {@link KillSwitchUnrecordedError} naming the part that failed. `KillSwitch.engage` calls it after the
 * Redis write; a caller that engaged without a ledger at hand (the CLI, the ledger slow to open) calls it
 * once the ledger is there, so the stop never waits on the ledger.
 */
export async function recordKillEngagement(ledger: Ledger, e: KillEngagement): Promise<void> {
  try {
    await ledger.recordKillSwitchEvent({
      scope: e.scope,
      action: 'engage',
      actor: e.actor,
      reason: e.reason,
      allowRiskReducing: e.allowRiskReducing,
      details: { eventId: e.eventId },
    });
  } catch (err) {
    throw new KillSwitchUnrecordedError(e, err, 'event');
  }
  try {
    await ledger.audit({
      actor: e.actor,
      action: 'kill-switch.engage',
      subject: e.scope,
      details: { reason: e.reason },
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

  async engage(
    scopeIn: KillScope,
    o: { actor: string; reason: string; allowRiskReducing?: boolean },
  ): Promise<KillEngagement> {
    const scope = KillScope.parse(scopeIn);
    const e = {
      eventId: randomUUID(),
      actor: o.actor,
      reason: o.reason,
      allowRiskReducing: o.allowRiskReducing ?? false,
      engagedAtMs: this.#clock.nowMs(),
    };
    await this.#redis.hset(this.#keys.kill, scope, JSON.stringify(e));
    const ev: KillEvent = {
      action: 'engage',
      scope,
      eventId: e.eventId,
      allowRiskReducing: e.allowRiskReducing,
    };
    await this.#redis.publish(this.#keys.killChannel, JSON.stringify(ev));
    this.#metrics?.killSwitchEngaged.set({ scope }, 1);
    this.#metrics?.killSwitchActions.inc({ scope, action: 'engage' });
    if (this.#ledger) await recordKillEngagement(this.#ledger, { scope, ...e });
    return { scope, ...e };
  }

  /**
   * Releases `scope`. The ledger event is written first, then the Redis entry is removed and the
   * release announced: a failed ledger write leaves the switch engaged (fail-closed), and the ledger
   * never says "engaged" after Redis said released, which `restore` relies on (see there).
   */
  async release(scopeIn: KillScope, o: { actor: string; reason: string }): Promise<boolean> {
    const scope = KillScope.parse(scopeIn);
    // Whether it was engaged is read before the ledger write so the event can say so; the HDEL
    // below is the authority for the return value.
    const wasEngaged = (await this.#redis.hexists(this.#keys.kill, scope)) === 1;
    await this.#ledger?.recordKillSwitchEvent({
      scope,
      action: 'release',
      actor: o.actor,
      reason: o.reason,
      allowRiskReducing: false,
      details: { wasEngaged },
    });
    const removed = await this.#redis.hdel(this.#keys.kill, scope);
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
    return removed === 1;
  }

  /**
   * Puts back every engagement the ledger holds but Redis lost (a restart without AOF, the last
   * second of `appendfsync everysec`, a failover to a replica that missed the write, an eviction):
   * for each scope whose latest ledger `engage`/`release` event is `engage` and which is absent from
   * the Redis hash, the engagement is written back with HSETNX (same event id, reason, actor,
   * `allowRiskReducing`, `engagedAtMs` = the ledger time), announced on `channel` as an `engage`
   * (with a fresh announcement id, so workers abort jobs and cancel working orders again even if the
   * original cancel claims survived), counted in the metrics and audited as `kill-switch.restore`.
   * It only adds: an engagement present in Redis is left alone (also one whose ledger write failed).
   * Returns what it restored; without a ledger, nothing.
   *
   * Ordering against a concurrent `release` (which writes the ledger first, then HDELs):
   * - Redis is read before the ledger. If a scope is absent from that Redis read but the ledger read
   *   says `engage`, the release's HDEL cannot explain the absence: that HDEL follows the release's
   *   ledger write, which would then precede our ledger read and show as the latest event. So the
   *   entry really was lost. (Reading the ledger first would leave a window where a release lands
   *   between the two reads and restore re-engages a scope that was just released.)
   * - A release can still start after our ledger read and before our HSETNX. Therefore the ledger
   *   is read once more after writing: if the scope's latest event is no longer the one restored,
   *   our entry is removed again (compare-and-delete, so a newer engagement stays). A release whose
   *   ledger write comes after that second read does its HDEL after our HSETNX and removes it itself.
   * Every remaining window errs towards engaged, never towards released.
   */
  async restore(o: { actor: string }): Promise<KillEngagement[]> {
    if (!this.#ledger) return [];
    const inRedis = await this.#redis.hgetall(this.#keys.kill);
    const lost = (await this.#ledger.killSwitchStates()).filter(
      (ev) => ev.action === 'engage' && inRedis[ev.scope] === undefined,
    );
    const restored: KillEngagement[] = [];
    for (const ev of lost) {
      const e = await this.#restoreOne(ev, o.actor);
      if (e) restored.push(e);
    }
    return restored;
  }

  /** Restores one lost engagement (see `restore`); undefined when Redis holds the scope again or it was released. */
  async #restoreOne(ev: KillSwitchEvent, actor: string): Promise<KillEngagement | undefined> {
    const ledger = this.#ledger;
    // engage() only writes parsed scopes; a row that does not parse could never block anything.
    const parsed = KillScope.safeParse(ev.scope);
    if (!ledger || !parsed.success) return undefined;
    const scope = parsed.data;
    const eventId = typeof ev.details.eventId === 'string' ? ev.details.eventId : randomUUID();
    const e = {
      eventId,
      actor: ev.actor,
      reason: ev.reason,
      allowRiskReducing: ev.allowRiskReducing,
      engagedAtMs: ev.atMs,
    };
    const raw = JSON.stringify(e);
    if ((await this.#redis.hsetnx(this.#keys.kill, scope, raw)) !== 1) return undefined;
    const latest = (await ledger.killSwitchStates()).find((s) => s.scope === ev.scope);
    if (latest?.id !== ev.id) {
      await evalScript(this.#redis, DELETE_IF_SAME, [this.#keys.kill], [scope, raw]);
      return undefined;
    }
    const announced: KillEvent = {
      action: 'engage',
      scope,
      eventId: `${eventId}:restore:${randomUUID()}`,
      allowRiskReducing: e.allowRiskReducing,
    };
    await this.#redis.publish(this.#keys.killChannel, JSON.stringify(announced));
    this.#metrics?.killSwitchEngaged.set({ scope }, 1);
    this.#metrics?.killSwitchActions.inc({ scope, action: 'restore' });
    await ledger.audit({
      actor,
      action: 'kill-switch.restore',
      subject: scope,
      details: {
        reason: ev.reason,
        originalActor: ev.actor,
        eventId,
        announcedEventId: announced.eventId,
      },
    });
    return { scope, ...e };
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

/** The value of a cancel claim while `by`'s pass runs (a finished one reads `done|<by>`). */
function runningClaim(by: string): string {
  return `run|${by}`;
}

/** Does an engagement of `scope` cover this order? */
export function scopeCovers(scope: string, o: { venue: string; underlying: string }): boolean {
  return scope === 'global' || scope === `venue:${o.venue}` || scope === `underlying:${o.underlying}`;
}
