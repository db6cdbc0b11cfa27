import { XhedgeError } from '@xhedge/core';
import { type LeaderLease, leaseTerm } from './lease.ts';
import type { ExecutionService, LegResult, PlanLike } from './service.ts';
import { within } from './within.ts';

export interface OrchestratorOptions {
  lease: LeaderLease;
  service: ExecutionService;
  /** Produces the plans of one tick (risk → strategy → routing); called only while leader. */
  plan: (ctx: { token: number }) => Promise<readonly PlanLike[]>;
  /**
   * Pause between ticks, ms: a number, or a function asked after every tick (a period an operator
   * changes at run time takes effect from the next pause). @defaultValue 1000
   */
  intervalMs?: number | (() => number);
  onPlanned?: (plan: PlanLike, legs: LegResult[], token: number) => void;
  onError?: (err: unknown) => void;
  /** Told when this process becomes the leader (with its token) or stops being it (the lease's `onChange`). */
  onLeadership?: (leader: boolean, token: number | undefined) => void;
  /**
   * A tick still running after this long, ms, is taken as hung (a read or a call that never answers):
   * `onError` gets a {@link TickOverrunError} and the leader steps down (releases the lease), so a
   * standby plans instead of a leader that holds the lease and plans nothing. It campaigns for the
   * lease again once the hung tick settles; anything that tick still tries to submit meanwhile is
   * refused (not the leader, and fenced in the ledger). `stop` waits for a tick no longer than this.
   * 0 turns the watchdog off. @defaultValue 60000
   */
  tickTimeoutMs?: number;
}

/** Whether `p` (which never rejects) settles within `ms`. */
const settledWithin = (p: Promise<void>, ms: number) =>
  within(
    p.then(() => true),
    ms,
    () => false,
  );

/** A tick ran past `tickTimeoutMs`: the leader stepped down (see `OrchestratorOptions.tickTimeoutMs`). */
export class TickOverrunError extends XhedgeError {
  override name = 'TickOverrunError';
  constructor(timeoutMs: number) {
    super(
      'TICK_OVERRUN',
      `an orchestrator tick is still running after ${timeoutMs} ms: stepped down (lease released) so a standby plans; campaigning again once the tick ends`,
      { details: { timeoutMs } },
    );
  }
}

/**
 * Plans on a timer, only while it holds the leader lease; standbys run the same loop and take over
 * when the leader's lease expires. Plans carry the fencing token to the ledger, so a deposed leader
 * cannot write even if it still believes it leads.
 */
export class Orchestrator {
  readonly #o: OrchestratorOptions;
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  /** The tick under way, if any (stop waits for it: its plans reach the ledger and the queue whole). */
  #inflight: Promise<void> | undefined;
  /** When the tick under way is taken as hung (performance.now() ms); Infinity with no watchdog. */
  #deadline = Number.POSITIVE_INFINITY;
  /** Bumped by every start and stop: a loop of an older one does nothing more once its tick ends. */
  #generation = 0;
  readonly #tickTimeoutMs: number;

  constructor(o: OrchestratorOptions) {
    const t = o.tickTimeoutMs ?? 60_000;
    if (!Number.isInteger(t) || t < 0)
      throw new RangeError(`tickTimeoutMs must be a whole number of ms, at least 0 (0: off); got ${t}`);
    this.#o = o;
    this.#tickTimeoutMs = t;
  }

  /** One tick: plans and submits if leader. @returns the number of plans submitted. */
  async tick(): Promise<number> {
    const token = this.#o.lease.token;
    if (token === undefined) return 0;
    const plans = await this.#o.plan({ token });
    // submitted under the tick's term only: plans made under this token are never submitted under a later
    // one the same lease object took after another leader's term (they predate that leader's hedges)
    const term = leaseTerm(this.#o.lease, token);
    let n = 0;
    for (const plan of plans) {
      const legs = await this.#o.service.submitPlan(plan, { lease: term });
      this.#o.onPlanned?.(plan, legs, token);
      n += 1;
    }
    return n;
  }

  start(): void {
    this.#running = true;
    // a loop of an earlier start still waiting on a hung tick stands down when that tick ends
    const gen = ++this.#generation;
    const current = () => this.#running && gen === this.#generation;
    this.#o.lease.start(this.#o.onLeadership);
    const loop = async () => {
      // no tick overlaps a hung one (the planner's state is its own), also one of an earlier start
      await this.#inflight;
      if (!current()) return;
      const tick = this.tick().then(
        () => {},
        (e) => this.#o.onError?.(e),
      );
      this.#inflight = tick;
      if ((await this.#watch(tick)) === 'overran' && current()) {
        this.#o.onError?.(new TickOverrunError(this.#tickTimeoutMs));
        await this.#o.lease.stop();
        await tick;
        if (current()) this.#o.lease.start(this.#o.onLeadership);
      }
      await tick;
      if (this.#inflight === tick) {
        this.#inflight = undefined;
        this.#deadline = Number.POSITIVE_INFINITY;
      }
      if (current()) this.#timer = setTimeout(loop, this.#pauseMs());
    };
    this.#timer = setTimeout(loop, 0);
  }

  /** Waits for `tick`, or until the watchdog's deadline (`tickTimeoutMs`) passes first. */
  async #watch(tick: Promise<void>): Promise<'done' | 'overran'> {
    if (this.#tickTimeoutMs === 0) {
      await tick;
      return 'done';
    }
    this.#deadline = performance.now() + this.#tickTimeoutMs;
    return (await settledWithin(tick, this.#tickTimeoutMs)) ? 'done' : 'overran';
  }

  /** The pause before the next tick: the option's value now, 1000 when it is not a finite number ≥ 0. */
  #pauseMs(): number {
    const i = this.#o.intervalMs;
    const ms = typeof i === 'function' ? i() : (i ?? 1000);
    return Number.isFinite(ms) && ms >= 0 ? ms : 1000;
  }

  /**
   * Stops planning: no new tick starts, the tick under way finishes (so the connections it uses are
   * not closed under it), then the lease is released for a standby (also one a lease step in flight
   * is taking, see `LeaderLease.stop`). A hung tick is waited for only until its watchdog deadline
   * (`tickTimeoutMs`), so a shutdown does not hang with it.
   */
  async stop(): Promise<void> {
    this.#running = false;
    this.#generation++;
    if (this.#timer) clearTimeout(this.#timer);
    const inflight = this.#inflight;
    if (inflight) {
      const leftMs = this.#deadline - performance.now();
      if (leftMs === Number.POSITIVE_INFINITY) await inflight;
      else if (leftMs > 0) await settledWithin(inflight, leftMs);
    }
    await this.#o.lease.stop();
  }
}
