import { type Actor, applyVenueUpdate, type Policies, type PolicyPort, type VenuesPort } from '@xhedge/api';
import { PoliciesConfig, VenueConfig, type XhedgeConfig } from '@xhedge/config';
import { ValidationError, XhedgeError } from '@xhedge/core';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { checkVenueParams } from './venues.ts';

/** Tries of a venue change before it gives up to others writing the list at the same time. */
const CAS_ATTEMPTS = 20;

/** SET KEYS[1] ARGV[3] if the key is as read: absent (ARGV[1] = 'absent') or holding ARGV[2]. */
const SET_IF_UNCHANGED = `
local cur = redis.call('GET', KEYS[1])
if (ARGV[1] == 'absent' and cur == false) or (ARGV[1] == 'present' and cur == ARGV[2]) then
  redis.call('SET', KEYS[1], ARGV[3])
  return 1
end
return 0`;

/**
 * The parts of the profile operators change at run time (venues, policy), kept in Redis so every
 * process of a run sees one version: the API writes, the orchestrator reads at each tick and the
 * venue registry of each orchestrator and worker applies venue changes (`venuesChannel`). Seeded from
 * the profile on first start (SET NX), so a restart keeps operators' changes until the Redis is reset.
 */
export class SharedConfigStore {
  readonly #redis: Redis;
  readonly #venuesKey: string;
  readonly #policyKey: string;
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
    this.#config = opts.config;
  }

  async init(): Promise<void> {
    await this.#redis.set(this.#venuesKey, JSON.stringify(this.#config.venues), 'NX');
    await this.#redis.set(this.#policyKey, JSON.stringify(this.#config.policy), 'NX');
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
   * One venue change, atomic against every other (in this process or another): `edit` changes the list
   * read, which is written only if nobody wrote it meanwhile (compare-and-set in one script), else
   * read and edited again. Without it, two changes at once each wrote back the list they had read, and
   * one undid the other (a disable lost to a concurrent update kept hedging on the venue).
   */
  async #changeVenues<T>(changed: string, edit: (list: VenueConfig[]) => T): Promise<T> {
    for (let attempt = 1; attempt <= CAS_ATTEMPTS; attempt++) {
      const raw = await this.#redis.get(this.#venuesKey);
      const list =
        raw === null ? structuredClone(this.#config.venues) : z.array(VenueConfig).parse(JSON.parse(raw));
      const result = edit(list);
      const written = await this.#redis.eval(
        SET_IF_UNCHANGED,
        1,
        this.#venuesKey,
        raw === null ? 'absent' : 'present',
        raw ?? '',
        JSON.stringify(list),
      );
      if (written === 1) {
        // a nudge only: a process that misses it still sees the change at its next poll
        await this.#redis.publish(this.venuesChannel, changed).catch(() => 0);
        return result;
      }
    }
    throw new XhedgeError(
      'CONFLICT',
      `venue ${changed}: the venue list changed ${CAS_ATTEMPTS} times while this change was made; try again`,
      { details: { id: changed } },
    );
  }

  /** The API's venue port over this store. */
  venuesPort(): VenuesPort {
    return {
      list: () => this.venues(),
      get: async (id) => (await this.venues()).find((v) => v.id === id),
      add: async (venue: VenueConfig, _actor: Actor) => {
        checkVenueParams(venue);
        return this.#changeVenues(venue.id, (list) => {
          if (list.some((v) => v.id === venue.id))
            throw new XhedgeError('CONFLICT', `venue ${venue.id} exists; update it instead`, {
              details: { id: venue.id },
            });
          list.push(venue);
          return venue;
        });
      },
      update: async (id, venue, _actor) =>
        this.#changeVenues(id, (list) => {
          const i = list.findIndex((v) => v.id === id);
          const prev = list[i];
          if (!prev) throw new XhedgeError('NOT_FOUND', `no venue ${id}`, { details: { id } });
          // Kind and chain decide which adapter runs; changing them is a new venue, not an update.
          if (prev.kind !== venue.kind || prev.chain !== venue.chain)
            throw new XhedgeError('CONFLICT', `venue ${id}: kind and chain cannot change; add a new venue`);
          checkVenueParams(venue);
          const next: VenueConfig = applyVenueUpdate(prev, venue);
          list[i] = next;
          return next;
        }),
      disable: async (id, _actor) =>
        this.#changeVenues(id, (list) => {
          const v = list.find((x) => x.id === id);
          if (!v) throw new XhedgeError('NOT_FOUND', `no venue ${id}`, { details: { id } });
          v.enabled = false;
          return v;
        }),
    };
  }

  /** The API's policy port over this store. */
  policyPort(): PolicyPort {
    return {
      get: () => this.policy(),
      update: async (next, _actor) => {
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
        await this.#redis.set(this.#policyKey, JSON.stringify(next));
        return next;
      },
    };
  }
}
