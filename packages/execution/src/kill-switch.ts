import { randomUUID } from 'node:crypto';
import { type Clock, systemClock } from '@xhedge/core';
import type { Ledger } from '@xhedge/store';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { keysFor } from './keys.ts';
import type { ExecutionMetrics } from './metrics.ts';

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

export interface KillSwitchOptions {
  redis: Redis;
  prefix: string;
  ledger?: Ledger;
  metrics?: ExecutionMetrics;
  clock?: Clock;
}

/**
 * The kill switch: global, per venue, per underlying. State lives in Redis (every process checks it
 * before queueing and right before sending), changes are announced on a channel so workers abort
 * active jobs and cancel working orders at once, and every action is written to the ledger and the
 * metrics. It needs nothing from the trading processes: the API or a CLI engages it with Redis alone.
 * With `allowRiskReducing`, reduce-only orders still pass.
 */
export class KillSwitch {
  /** Redis key prefix (shared with the controls and the breakers of one deployment). */
  readonly prefix: string;
  readonly #redis: Redis;
  readonly #keys: ReturnType<typeof keysFor>;
  readonly #ledger: Ledger | undefined;
  readonly #metrics: ExecutionMetrics | undefined;
  readonly #clock: Clock;

  constructor(o: KillSwitchOptions) {
    this.prefix = o.prefix;
    this.#redis = o.redis;
    this.#keys = keysFor(o.prefix);
    this.#ledger = o.ledger;
    this.#metrics = o.metrics;
    this.#clock = o.clock ?? systemClock;
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
    await this.#ledger?.recordKillSwitchEvent({
      scope,
      action: 'engage',
      actor: o.actor,
      reason: o.reason,
      allowRiskReducing: e.allowRiskReducing,
      details: { eventId: e.eventId },
    });
    await this.#ledger?.audit({
      actor: o.actor,
      action: 'kill-switch.engage',
      subject: scope,
      details: { reason: o.reason },
    });
    return { scope, ...e };
  }

  async release(scopeIn: KillScope, o: { actor: string; reason: string }): Promise<boolean> {
    const scope = KillScope.parse(scopeIn);
    const removed = await this.#redis.hdel(this.#keys.kill, scope);
    const ev: KillEvent = { action: 'release', scope, eventId: randomUUID(), allowRiskReducing: false };
    await this.#redis.publish(this.#keys.killChannel, JSON.stringify(ev));
    this.#metrics?.killSwitchEngaged.set({ scope }, 0);
    this.#metrics?.killSwitchActions.inc({ scope, action: 'release' });
    await this.#ledger?.recordKillSwitchEvent({
      scope,
      action: 'release',
      actor: o.actor,
      reason: o.reason,
      allowRiskReducing: false,
      details: { wasEngaged: removed === 1 },
    });
    await this.#ledger?.audit({
      actor: o.actor,
      action: 'kill-switch.release',
      subject: scope,
      details: { reason: o.reason },
    });
    return removed === 1;
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

  /** Takes the once-per-(event, venue) right to cancel working orders; other processes skip. */
  async claimCancel(eventId: string, venue: string): Promise<boolean> {
    return (
      (await this.#redis.set(this.#keys.killCancelLock(eventId, venue), '1', 'PX', 3_600_000, 'NX')) === 'OK'
    );
  }
}

/** Does an engagement of `scope` cover this order? */
export function scopeCovers(scope: string, o: { venue: string; underlying: string }): boolean {
  return scope === 'global' || scope === `venue:${o.venue}` || scope === `underlying:${o.underlying}`;
}
