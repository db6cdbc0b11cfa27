import type { LeaderLease } from './lease.ts';
import type { ExecutionService, LegResult, PlanLike } from './service.ts';

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

  constructor(o: OrchestratorOptions) {
    this.#o = o;
  }

  /** One tick: plans and submits if leader. @returns the number of plans submitted. */
  async tick(): Promise<number> {
    const token = this.#o.lease.token;
    if (token === undefined) return 0;
    const plans = await this.#o.plan({ token });
    let n = 0;
    for (const plan of plans) {
      const legs = await this.#o.service.submitPlan(plan, { lease: this.#o.lease });
      this.#o.onPlanned?.(plan, legs, token);
      n += 1;
    }
    return n;
  }

  start(): void {
    this.#running = true;
    this.#o.lease.start();
    const loop = async () => {
      if (!this.#running) return;
      this.#inflight = this.tick().then(
        () => {},
        (e) => this.#o.onError?.(e),
      );
      await this.#inflight;
      this.#inflight = undefined;
      if (this.#running) this.#timer = setTimeout(loop, this.#pauseMs());
    };
    this.#timer = setTimeout(loop, 0);
  }

  /** The pause before the next tick: the option's value now, 1000 when it is not a finite number ≥ 0. */
  #pauseMs(): number {
    const i = this.#o.intervalMs;
    const ms = typeof i === 'function' ? i() : (i ?? 1000);
    return Number.isFinite(ms) && ms >= 0 ? ms : 1000;
  }

  /**
   * Stops planning: no new tick starts, the tick under way finishes (so the connections it uses are
   * not closed under it), then the lease is released for a standby.
   */
  async stop(): Promise<void> {
    this.#running = false;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#inflight;
    await this.#o.lease.stop();
  }
}
