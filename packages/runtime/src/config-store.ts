import { randomBytes } from 'node:crypto';
import {
  type Actor,
  applyVenueUpdate,
  checkIfMatch,
  checkVenueUpdate,
  configVersion,
  type LastChange,
  type Policies,
  type PolicyPort,
  type VenuesPort,
} from '@xhedge/api';
import { PoliciesConfig, VenueConfig, type XhedgeConfig } from '@xhedge/config';
import { ValidationError, XhedgeError } from '@xhedge/core';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { checkVenueParams } from './venues.ts';

/** Tries of a change before it gives up to others writing the same key at the same time. */
const CAS_ATTEMPTS = 20;
/** Longest wait before a try after a lost compare-and-set, ms (each wait is random up to 2^try ms, capped). */
const CAS_BACKOFF_CAP_MS = 50;

/**
 * SET KEYS[1] ARGV[3] if the key is as read: absent (ARGV[1] = 'absent') or holding ARGV[2]; with it,
 * who made the change (ARGV[5]) under field ARGV[4] of the hash KEYS[2], in the same step.
 */
const SET_IF_UNCHANGED = `
local cur = redis.call('GET', KEYS[1])
if (ARGV[1] == 'absent' and cur == false) or (ARGV[1] == 'present' and cur == ARGV[2]) then
  redis.call('SET', KEYS[1], ARGV[3])
  redis.call('HSET', KEYS[2], ARGV[4], ARGV[5])
  return 1
end
return 0`;

/** Full jitter before try `attempt` + 1: processes that lost the same race do not collide again in step. */
function backoff(attempt: number): Promise<void> {
  const ms = Math.random() * Math.min(CAS_BACKOFF_CAP_MS, 2 ** attempt);
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A {@link LastChange} as stored, or undefined when absent or not one. */
function lastChange(raw: string | null | undefined): LastChange | undefined {
  if (!raw) return undefined;
  try {
    const v = JSON.parse(raw) as Partial<LastChange>;
    return typeof v.version === 'string' &&
      typeof v.by === 'string' &&
      typeof v.atMs === 'number' &&
      typeof v.action === 'string'
      ? { version: v.version, by: v.by, atMs: v.atMs, action: v.action }
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The parts of the profile operators change at run time (venues, policy), kept in Redis so every
 * process of a run sees one version: the API writes, the orchestrator reads at each tick and the
 * venue registry of each orchestrator and worker applies venue changes (`venuesChannel`). Seeded from
 * the profile on first start (SET NX), so a restart keeps operators' changes until the Redis is reset.
 * Each venue and the policy document have a version (`configVersion`, keyed by `<prefix>:config:version-key`)
 * that a conditional change names; who last changed each is kept with it (`<prefix>:config:changes`), written
 * in the same step as the change, so a refused change can say who made the one it lost to.
 */
export class SharedConfigStore {
  readonly #redis: Redis;
  readonly #venuesKey: string;
  readonly #policyKey: string;
  /** Hash: who last changed each venue (`venue:<id>`) and the policy (`policy`), with the version it left. */
  readonly #changesKey: string;
  /** The key of the run's config versions (see `configVersion`), shared by its processes. */
  readonly #versionKeyKey: string;
  readonly #config: XhedgeConfig;
  /**
   * Pub/sub channel told after every venue change (add, update, disable), so the processes running
   * venues apply it at once instead of at their next poll.
   */
  readonly venuesChannel: string;

  constructor(opts: { redis: Redis; prefix: string; config: XhedgeConfig }) {
    this.#redis = opts.redis;
    this.#venuesKey = `${opts.prefix}:config:venues`;
    this.venuesChannel = `${opts.prefix}:config:venues:changed`;
    this.#policyKey = `${opts.prefix}:config:policy`;
    this.#changesKey = `${opts.prefix}:config:changes`;
    this.#versionKeyKey = `${opts.prefix}:config:version-key`;
    this.#config = opts.config;
  }

  async init(): Promise<void> {
    await this.#redis.set(this.#venuesKey, JSON.stringify(this.#config.venues), 'NX');
    await this.#redis.set(this.#policyKey, JSON.stringify(this.#config.policy), 'NX');
    await this.#versionKey();
  }

  /**
   * The key versions are made with: random, made once per deployment and kept in its Redis, so every
   * process gives the same content the same version. Read each time (one GET): a Redis reset makes a new
   * one, and a process holding the old would answer other versions than its peers.
   */
  async #versionKey(): Promise<string> {
    const key = await this.#redis.get(this.#versionKeyKey);
    if (key !== null) return key;
    await this.#redis.set(this.#versionKeyKey, randomBytes(32).toString('hex'), 'NX');
    const made = await this.#redis.get(this.#versionKeyKey);
    if (made === null) throw new XhedgeError('INTERNAL', `${this.#versionKeyKey} vanished as it was written`);
    return made;
  }

  async venues(): Promise<VenueConfig[]> {
    const raw = await this.#redis.get(this.#venuesKey);
    if (raw === null) return this.#config.venues;
    return z.array(VenueConfig).parse(JSON.parse(raw));
  }

  async policy(): Promise<Policies> {
    const raw = await this.#redis.get(this.#policyKey);
    if (raw === null) return this.#config.policy;
    return PoliciesConfig.parse(JSON.parse(raw));
  }

  /**
   * One change of `key` (the venue list, the policy), atomic against every other (in this process or
   * another): `edit` makes the value to write (`write`) from the value read, written only if nobody wrote it meanwhile
   * (compare-and-set in one script, with the record of who made it), else read and edited again after a
   * random wait. `edit` sees the version key and the record of who last changed `field`, so a version
   * check it makes (`If-Match`) holds for the value it writes. Without it, two changes at once each wrote
   * back what they had read, and one undid the other (a disable lost to a concurrent update kept hedging
   * on the venue).
   */
  async #change<V, T>(q: {
    key: string;
    read: (raw: string | null) => V;
    field: string;
    what: string;
    action: string;
    actor: Actor;
    /** `write`: the whole value to store; `after`: the config the change is about, whose version it records. */
    edit: (
      value: V,
      ctx: { versionKey: string; last: LastChange | undefined },
    ) => { result: T; write: V; after: unknown };
  }): Promise<T> {
    for (let attempt = 1; attempt <= CAS_ATTEMPTS; attempt++) {
      const versionKey = await this.#versionKey();
      const [raw, lastRaw] = await Promise.all([
        this.#redis.get(q.key),
        this.#redis.hget(this.#changesKey, q.field),
      ]);
      const value = q.read(raw);
      const { result, write, after } = q.edit(value, { versionKey, last: lastChange(lastRaw) });
      const text = JSON.stringify(write);
      const change: LastChange = {
        version: configVersion(after, versionKey),
        by: q.actor.name,
        atMs: Date.now(),
        action: q.action,
      };
      const written = await this.#redis.eval(
        SET_IF_UNCHANGED,
        2,
        q.key,
        this.#changesKey,
        raw === null ? 'absent' : 'present',
        raw ?? '',
        text,
        q.field,
        JSON.stringify(change),
      );
      if (written === 1) return result;
      if (attempt < CAS_ATTEMPTS) await backoff(attempt);
    }
    throw new XhedgeError(
      'CONFLICT',
      `${q.what} changed ${CAS_ATTEMPTS} times while this change was made; try again`,
      { details: { target: q.what } },
    );
  }

  /** One venue change (see {@link #change}); the processes running venues are told once it is written. */
  async #changeVenues<T>(
    id: string,
    action: string,
    actor: Actor,
    edit: (
      list: VenueConfig[],
      ctx: { versionKey: string; last: LastChange | undefined },
    ) => { result: T; after: VenueConfig },
  ): Promise<T> {
    const result = await this.#change({
      key: this.#venuesKey,
      read: (raw) =>
        raw === null ? structuredClone(this.#config.venues) : z.array(VenueConfig).parse(JSON.parse(raw)),
      field: `venue:${id}`,
      what: `venue ${id}: the venue list`,
      action,
      actor,
      edit: (list, ctx) => ({ ...edit(list, ctx), write: list }),
    });
    // a nudge only: a process that misses it still sees the change at its next poll
    await this.#redis.publish(this.venuesChannel, id).catch(() => 0);
    return result;
  }

  /** The API's venue port over this store. */
  venuesPort(): VenuesPort {
    return {
      list: () => this.venues(),
      get: async (id) => (await this.venues()).find((v) => v.id === id),
      versionOf: async (v) => configVersion(v, await this.#versionKey()),
      add: async (venue: VenueConfig, actor: Actor) => {
        checkVenueParams(venue);
        return this.#changeVenues(venue.id, 'venue.add', actor, (list) => {
          if (list.some((v) => v.id === venue.id))
            throw new XhedgeError('CONFLICT', `venue ${venue.id} exists; update it instead`, {
              details: { id: venue.id },
            });
          list.push(venue);
          return { result: venue, after: venue };
        });
      },
      update: async (id, venue, actor, cond) =>
        this.#changeVenues(id, 'venue.update', actor, (list, { versionKey, last }) => {
          const i = list.findIndex((v) => v.id === id);
          const prev = list[i];
          if (!prev) throw new XhedgeError('NOT_FOUND', `no venue ${id}`, { details: { id } });
          // the version as stored now, in the compare-and-set that writes: a change made since the
          // caller's read is refused (412), never overwritten
          checkVenueUpdate(prev, configVersion(prev, versionKey), venue, cond, last);
          // Kind and chain decide which adapter runs; changing them is a new venue, not an update.
          if (prev.kind !== venue.kind || prev.chain !== venue.chain)
            throw new XhedgeError('CONFLICT', `venue ${id}: kind and chain cannot change; add a new venue`);
          checkVenueParams(venue);
          const next: VenueConfig = applyVenueUpdate(prev, venue);
          list[i] = next;
          return { result: { before: prev, after: next }, after: next };
        }),
      disable: async (id, actor) =>
        this.#changeVenues(id, 'venue.disable', actor, (list) => {
          const v = list.find((x) => x.id === id);
          if (!v) throw new XhedgeError('NOT_FOUND', `no venue ${id}`, { details: { id } });
          v.enabled = false;
          return { result: v, after: v };
        }),
    };
  }

  /** The API's policy port over this store. */
  policyPort(): PolicyPort {
    return {
      get: () => this.policy(),
      versionOf: async (p) => configVersion(p, await this.#versionKey()),
      update: async (next, actor, ifMatch) => {
        const symbols = new Set(this.#config.underlyings.map((u) => u.symbol));
        const unknown = Object.keys(next.perUnderlying).filter((u) => !symbols.has(u));
        if (unknown.length > 0)
          throw new ValidationError(
            'policy',
            unknown.map((u) => ({
              path: `body.perUnderlying.${u}`,
              message: `underlying ${u} is not in this run`,
            })),
          );
        return this.#change({
          key: this.#policyKey,
          read: (raw) => (raw === null ? this.#config.policy : PoliciesConfig.parse(JSON.parse(raw))),
          field: 'policy',
          what: 'policy',
          action: 'policy.update',
          actor,
          // the whole document is replaced, but only if it is still the version the caller read
          edit: (before: Policies, { versionKey, last }) => {
            checkIfMatch('policy', configVersion(before, versionKey), ifMatch, last);
            return { result: { before, after: next }, write: next, after: next };
          },
        });
      },
    };
  }
}
