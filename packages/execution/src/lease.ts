import { randomUUID } from 'node:crypto';
import { XhedgeError } from '@xhedge/core';
import type { Redis } from 'ioredis';
import { keysFor } from './keys.ts';

// SET NX PX, then a fresh fencing token above both the counter and the floor (the ledger's highest
// accepted token, so a Redis that lost its data cannot hand out a token the ledger would refuse).
const ACQUIRE = `
if not redis.call('SET', KEYS[1], 'pending', 'NX', 'PX', ARGV[2]) then return 0 end
local t = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[3])
if t <= floor then t = floor + 1; redis.call('SET', KEYS[2], t) end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. t, 'PX', ARGV[2])
return t`;
const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

export class NotLeaderError extends XhedgeError {
  override name = 'NotLeaderError';
  constructor(name: string) {
    super('NOT_LEADER', `not the holder of lease ${name}`, { details: { name } });
  }
}

export interface LeaderLeaseOptions {
  redis: Redis;
  prefix: string;
  /** Lease name (one per role: `orchestrator`). */
  name: string;
  /** This process's id. @defaultValue a random UUID */
  holderId?: string;
  /** Lease time to live, ms: how long a dead leader blocks the standby. @defaultValue 10000 */
  ttlMs?: number;
  /** Renewal/acquisition period, ms. @defaultValue ttlMs / 3 */
  renewEveryMs?: number;
  /** Lowest token to hand out (e.g. `() => ledger.fencingToken(name)`). @defaultValue 0 */
  tokenFloor?: () => Promise<number>;
}

/**
 * Single-leader lease in Redis with a fencing token. Acquire is SET NX PX; renew and release are
 * compare-and-act Lua on the holder's value. The token strictly increases with every new leader; the
 * ledger refuses writes carrying an older token than it has seen, so a paused ex-leader (GC, network
 * partition) that wakes up after the standby took over cannot plan.
 */
export class LeaderLease {
  readonly name: string;
  readonly holderId: string;
  readonly #redis: Redis;
  readonly #key: string;
  readonly #tokenKey: string;
  readonly #ttlMs: number;
  readonly #renewEveryMs: number;
  readonly #floor: () => Promise<number>;
  #token: number | undefined;
  #timer: NodeJS.Timeout | undefined;
  #onChange: ((leader: boolean, token: number | undefined) => void) | undefined;

  constructor(o: LeaderLeaseOptions) {
    const k = keysFor(o.prefix);
    this.name = o.name;
    this.holderId = o.holderId ?? randomUUID();
    this.#redis = o.redis;
    this.#key = k.lease(o.name);
    this.#tokenKey = k.leaseToken(o.name);
    this.#ttlMs = o.ttlMs ?? 10_000;
    this.#renewEveryMs = o.renewEveryMs ?? Math.max(50, Math.floor(this.#ttlMs / 3));
    this.#floor = o.tokenFloor ?? (async () => 0);
  }

  get token(): number | undefined {
    return this.#token;
  }
  get isLeader(): boolean {
    return this.#token !== undefined;
  }

  #value(token: number): string {
    return `${this.holderId}|${token}`;
  }

  /** One acquisition or renewal step. @returns the token while leader, undefined otherwise. */
  async tick(): Promise<number | undefined> {
    const before = this.#token;
    try {
      if (this.#token !== undefined) {
        const ok = await this.#redis.eval(RENEW, 1, this.#key, this.#value(this.#token), this.#ttlMs);
        if (ok !== 1) this.#token = undefined;
      } else {
        const t = Number(
          await this.#redis.eval(
            ACQUIRE,
            2,
            this.#key,
            this.#tokenKey,
            this.holderId,
            this.#ttlMs,
            await this.#floor(),
          ),
        );
        if (t > 0) this.#token = t;
      }
    } catch {
      // Redis unreachable: we cannot prove the lease, so we are not the leader.
      this.#token = undefined;
    }
    if (before !== this.#token) this.#onChange?.(this.#token !== undefined, this.#token);
    return this.#token;
  }

  /** Keeps acquiring/renewing in the background; `onChange` sees every gain and loss. */
  start(onChange?: (leader: boolean, token: number | undefined) => void): void {
    this.#onChange = onChange;
    const loop = async () => {
      await this.tick();
      if (this.#timer !== undefined) this.#timer = setTimeout(loop, this.#renewEveryMs);
    };
    this.#timer = setTimeout(loop, 0);
  }

  /** Checks in Redis, now, that this process still holds the lease; returns the token. */
  async assertHeld(): Promise<number> {
    const t = this.#token;
    if (t === undefined) throw new NotLeaderError(this.name);
    if ((await this.#redis.get(this.#key)) !== this.#value(t)) {
      this.#token = undefined;
      this.#onChange?.(false, undefined);
      throw new NotLeaderError(this.name);
    }
    return t;
  }

  /** Stops renewing and releases the lease if held (a clean handover, no TTL wait). */
  async stop(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const t = this.#token;
    this.#token = undefined;
    if (t !== undefined) await this.#redis.eval(RELEASE, 1, this.#key, this.#value(t)).catch(() => {});
  }
}
