import { randomUUID } from 'node:crypto';
import { XhedgeError } from '@xhedge/core';
import type { Redis } from 'ioredis';
import { keysFor } from './keys.ts';
import { within } from './within.ts';

// SET NX PX, then a fresh fencing token above both the counter and the floor (the ledger's highest
// accepted token, so a Redis that lost its data cannot hand out a token the ledger would refuse).
// A lease already ours (an earlier ACQUIRE of this same life ran but its reply was lost: a timeout, a
// dropped connection) is taken up again with its token, if the ledger would still accept it: otherwise
// the holder would believe it is not the leader while its key kept every standby out for a whole TTL.
// "Ours" is ARGV[1], the holder, its instance and its life (see LeaderLease#owner): a step of an
// earlier life, stopped but still in flight, releases its key itself, so it must not be taken up.
const ACQUIRE = `
local cur = redis.call('GET', KEYS[1])
local mine = ARGV[1] .. '|'
if cur and string.sub(cur, 1, #mine) == mine then
  local held = tonumber(string.sub(cur, #mine + 1))
  if held and held > tonumber(ARGV[3]) then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return held
  end
  redis.call('DEL', KEYS[1])
end
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

/** What a submission needs of a lease: its name, the token held now, and a check in Redis. */
export interface LeaseHold {
  readonly name: string;
  /** The token held now; undefined when not held. */
  readonly token: number | undefined;
  /** Checks in Redis, now, that the lease is held; returns the token, else throws NotLeaderError. */
  assertHeld(): Promise<number>;
}

/**
 * `lease` held to one term, the one of `token`: it answers that token only while the lease still holds
 * it, and is not held once the lease lost it, even if the same lease object has taken the lease again
 * since (a new term, another token). A tick plans under one token; its plans are submitted under this
 * view, so plans made before another leader's term are never submitted under the term after it (they
 * were made on positions and orders read before the other leader's hedges).
 */
export function leaseTerm(lease: LeaseHold, token: number): LeaseHold {
  return {
    name: lease.name,
    get token() {
      return lease.token === token ? token : undefined;
    },
    async assertHeld() {
      if (lease.token !== token) throw new NotLeaderError(lease.name);
      if ((await lease.assertHeld()) !== token) throw new NotLeaderError(lease.name);
      return token;
    },
  };
}

export interface LeaderLeaseOptions {
  redis: Redis;
  prefix: string;
  /** Lease name (one per role: `orchestrator`). */
  name: string;
  /** This process's id. @defaultValue a random UUID */
  holderId?: string;
  /**
   * Lease time to live, ms: how long a dead leader blocks the standby. It is also how long this process
   * counts itself the holder after its last acquisition or renewal that Redis confirmed (from when that
   * call was sent): past it the key may have lapsed, so the hold is dropped even while a renewal is still
   * unanswered (Redis down, a silent network), and a step gives up on a call unanswered that long.
   * @defaultValue 10000
   */
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
  /** `performance.now()` past which `#token` is no longer held: its last confirmed call's send time + TTL. */
  #heldUntil = 0;
  /** Drops the hold at `#heldUntil` when no renewal has confirmed it by then (see `#lapse`). */
  #expiry: NodeJS.Timeout | undefined;
  #timer: NodeJS.Timeout | undefined;
  #onChange: ((leader: boolean, token: number | undefined) => void) | undefined;
  /** Bumped by every `stop`: a step that began before it neither sets leadership nor keeps a key it took. */
  #epoch = 0;
  /** Bumped by every `start` and `stop`: the loop of an earlier start schedules nothing more. */
  #loops = 0;
  /** Steps whose Redis call is under way (`stop` waits for them, see there). */
  readonly #steps = new Set<Promise<unknown>>();
  /** This object's own id: two leases given one `holderId` are still two owners. */
  readonly #instance = randomUUID().slice(0, 8);

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
    this.#lapseIfDue();
    return this.#token;
  }
  get isLeader(): boolean {
    return this.token !== undefined;
  }

  /**
   * Holds `token` until `sentAt` + TTL (`sentAt`: when the call that confirmed it was sent; Redis ran it
   * later, so its key lapses no earlier than this), or clears the hold (`undefined`).
   */
  #hold(token: number | undefined, sentAt: number): void {
    this.#token = token;
    if (this.#expiry) clearTimeout(this.#expiry);
    this.#expiry = undefined;
    if (token === undefined) return;
    this.#heldUntil = sentAt + this.#ttlMs;
    this.#expiry = setTimeout(() => this.#lapseIfDue(), Math.max(0, this.#heldUntil - performance.now()));
    this.#expiry.unref?.();
  }

  /**
   * The TTL has passed since the last confirmed acquisition or renewal (Redis down, a renewal that
   * hangs): the key may have lapsed and a standby may hold it, so this process is not the leader any
   * more, whether or not that renewal ever answers.
   */
  #lapseIfDue(): void {
    if (this.#token === undefined || performance.now() < this.#heldUntil) return;
    this.#hold(undefined, 0);
    this.#onChange?.(false, undefined);
  }

  /**
   * Who owns a key this process writes: the holder, this object and its life (`#epoch`, bumped by
   * every stop). A key of another life is never taken up nor renewed: a stopped step still in flight
   * gives its own key back, and would otherwise delete one a later life believes it holds.
   */
  #owner(epoch: number): string {
    return `${this.holderId}#${this.#instance}.${epoch}`;
  }

  #value(token: number, epoch: number = this.#epoch): string {
    return `${this.#owner(epoch)}|${token}`;
  }

  /**
   * One acquisition or renewal step. A `stop` that lands while it runs wins: the step then leaves
   * leadership alone and gives back a lease it has just taken (see `stop`).
   * @returns the token while leader, undefined otherwise.
   */
  async tick(): Promise<number | undefined> {
    const epoch = this.#epoch;
    const before = this.token;
    let floor = 0;
    if (before === undefined) {
      try {
        floor = await this.#floor();
      } catch {
        // the floor cannot be read (ledger down): a token handed out now might be refused, or worse
        return undefined;
      }
      // stopped while the floor was read: no acquisition at all
      if (epoch !== this.#epoch) return undefined;
    }
    const step = this.#step(epoch, before, floor);
    this.#steps.add(step);
    void step.finally(() => this.#steps.delete(step));
    return step;
  }

  /** The Redis half of `tick` (tracked in `#steps` for `stop`); never throws. */
  async #step(epoch: number, before: number | undefined, floor: number): Promise<number | undefined> {
    let after = before;
    const sentAt = performance.now();
    // A call unanswered for a TTL is given up (a client that queues commands while Redis is down, a
    // silent network): the hold has lapsed by then anyway, and the loop must go on to acquire again once
    // Redis is back. Should it still land later: a renewal's answer is about a hold already dropped; an
    // acquisition's key is ours, taken up again by the next step (see ACQUIRE) or left to lapse.
    const unanswered = () => {
      throw new Error(`lease ${this.name}: Redis did not answer within ${this.#ttlMs} ms`);
    };
    try {
      if (before !== undefined) {
        const ok = await within(
          this.#redis.eval(RENEW, 1, this.#key, this.#value(before, epoch), this.#ttlMs),
          this.#ttlMs,
          unanswered,
        );
        if (ok !== 1) after = undefined;
      } else {
        const t = Number(
          await within(
            this.#redis.eval(ACQUIRE, 2, this.#key, this.#tokenKey, this.#owner(epoch), this.#ttlMs, floor),
            this.#ttlMs,
            unanswered,
          ),
        );
        if (t > 0) after = t;
      }
    } catch {
      // Redis unreachable: we cannot prove the lease, so we are not the leader.
      after = undefined;
    }
    if (epoch !== this.#epoch) {
      // stopped while the call was in flight: stop() dropped the token it knew; one this step has just
      // taken is given back here, so a standby need not wait a TTL for it
      if (after !== undefined && after !== before) await this.#release(after, epoch);
      return undefined;
    }
    // another step (a manual tick beside the loop) changed the token meanwhile, or the hold lapsed while
    // this call was out: this one's answer is about a token no longer held, so it changes nothing
    if (this.token !== before) return this.#token;
    this.#hold(after, sentAt);
    if (before !== after) this.#onChange?.(after !== undefined, after);
    return after;
  }

  /** Deletes the lease if it still holds `token` of ours from life `epoch` (compare-and-delete); never throws. */
  async #release(token: number, epoch: number): Promise<void> {
    await this.#redis.eval(RELEASE, 1, this.#key, this.#value(token, epoch)).catch(() => {});
  }

  /**
   * Keeps acquiring/renewing in the background; `onChange` sees every gain and loss. A second start
   * replaces the loop of the first (never two loops).
   */
  start(onChange?: (leader: boolean, token: number | undefined) => void): void {
    this.#onChange = onChange;
    if (this.#timer) clearTimeout(this.#timer);
    const loop = ++this.#loops;
    const step = async () => {
      await this.tick();
      // a stop, or a later start, since this step began: that loop is over
      if (loop === this.#loops) this.#timer = setTimeout(step, this.#renewEveryMs);
    };
    this.#timer = setTimeout(step, 0);
  }

  /** Checks in Redis, now, that this process still holds the lease; returns the token. */
  async assertHeld(): Promise<number> {
    const t = this.token;
    if (t === undefined) throw new NotLeaderError(this.name);
    // no answer by the time the hold lapses: not held, whatever Redis says later
    const notLeader = () => {
      throw new NotLeaderError(this.name);
    };
    const value = await within(this.#redis.get(this.#key), this.#heldUntil - performance.now(), notLeader);
    if (value !== this.#value(t)) {
      if (this.#token === t) {
        this.#hold(undefined, 0);
        this.#onChange?.(false, undefined);
      }
      throw new NotLeaderError(this.name);
    }
    // the key was ours when Redis read it, but the hold may have lapsed while the read was out
    if (this.token !== t) throw new NotLeaderError(this.name);
    return t;
  }

  /**
   * Stops renewing and releases the lease if held (a clean handover, no TTL wait). A step under way
   * is superseded: it sets no token, and gives back a lease its acquisition has just taken. Its Redis
   * call is waited for, at most a TTL (past that, a lease it took would have lapsed by itself; should
   * the call still land later, the step gives that lease back then), so that once this resolves this
   * process is not the leader, holds no token, runs no timer, and the key is free for a standby.
   */
  async stop(): Promise<void> {
    const life = this.#epoch;
    this.#epoch++;
    this.#loops++;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const t = this.#token;
    this.#hold(undefined, 0);
    if (this.#steps.size > 0) await within(Promise.all(this.#steps), this.#ttlMs, () => {});
    if (t !== undefined) await this.#release(t, life);
  }
}
