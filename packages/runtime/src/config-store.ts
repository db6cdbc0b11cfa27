import type { Actor, Policies, PolicyPort, VenuesPort } from '@xhedge/api';
import { PoliciesConfig, VenueConfig, type XhedgeConfig } from '@xhedge/config';
import { ValidationError, XhedgeError } from '@xhedge/core';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { checkVenueParams } from './venues.ts';

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

  async #saveVenues(list: VenueConfig[], changed: string): Promise<void> {
    await this.#redis.set(this.#venuesKey, JSON.stringify(list));
    // a nudge only: a process that misses it still sees the change at its next poll
    await this.#redis.publish(this.venuesChannel, changed).catch(() => 0);
  }

  /** The API's venue port over this store. */
  venuesPort(): VenuesPort {
    return {
      list: () => this.venues(),
      get: async (id) => (await this.venues()).find((v) => v.id === id),
      add: async (venue: VenueConfig, _actor: Actor) => {
        checkVenueParams(venue);
        const list = await this.venues();
        if (list.some((v) => v.id === venue.id))
          throw new XhedgeError('CONFLICT', `venue ${venue.id} exists; update it instead`, {
            details: { id: venue.id },
          });
        await this.#saveVenues([...list, venue], venue.id);
        return venue;
      },
      update: async (id, venue, _actor) => {
        const list = await this.venues();
        const i = list.findIndex((v) => v.id === id);
        if (i < 0) throw new XhedgeError('NOT_FOUND', `no venue ${id}`, { details: { id } });
        const prev = list[i];
        // Kind and chain decide which adapter runs; changing them is a new venue, not an update.
        if (prev && (prev.kind !== venue.kind || prev.chain !== venue.chain))
          throw new XhedgeError('CONFLICT', `venue ${id}: kind and chain cannot change; add a new venue`);
        checkVenueParams(venue);
        list[i] = venue;
        await this.#saveVenues(list, id);
        return venue;
      },
      disable: async (id, _actor) => {
        const list = await this.venues();
        const v = list.find((x) => x.id === id);
        if (!v) throw new XhedgeError('NOT_FOUND', `no venue ${id}`, { details: { id } });
        v.enabled = false;
        await this.#saveVenues(list, id);
        return v;
      },
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
