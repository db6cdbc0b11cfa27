import {
  type ExecutionService,
  type LeaderLease,
  type LeaseHold,
  type LegResult,
  leaseTerm,
  Orchestrator,
  type PlanLike,
  TickOverrunError,
} from '@xhedge/execution';

export interface PlanningLoopOptions {
  /**
   * A new leader lease (same Redis, prefix, name and token floor every time), asked for at the start and
   * again after each tick overrun: a lease object the hung tick still holds must never hold a token again.
   */
  lease: () => LeaderLease;
  service: ExecutionService;
  /**
   * Records a lease token the loop has just taken as the ledger's fencing token
   * (`ledger.advanceFencing(name, token)`), before the first plan under it: from then on a write of an
   * older leader is refused, whether or not this one plans anything. While it fails, nothing is planned
   * under that token (the next tick tries again).
   */
  fence: (token: number) => Promise<void>;
  /**
   * Produces the plans of one tick under `token`; `lease` is the one they are submitted under: held to
   * that token's term (`leaseTerm`), so none is submitted under a later term.
   */
  plan: (ctx: { token: number; lease: LeaseHold }) => Promise<readonly PlanLike[]>;
  /** Pause between ticks, ms (execution's `OrchestratorOptions.intervalMs`). @defaultValue 1000 */
  intervalMs?: number | (() => number);
  /** The tick watchdog, ms (execution's `OrchestratorOptions.tickTimeoutMs`; 0: off). @defaultValue 60000 */
  tickTimeoutMs?: number;
  onPlanned?: (plan: PlanLike, legs: LegResult[], token: number) => void;
  onError?: (err: unknown) => void;
  /** Told when this process becomes the leader or stops being it, on every lease of the loop. */
  onLeadership?: (leader: boolean, token: number | undefined) => void;
  log?: (level: 'info' | 'warn', msg: string, data?: Record<string, unknown>) => void;
}

/**
 * The leader-leased planning loop of a run: execution's `Orchestrator`, plus two things it leaves to its
 * caller.
 *
 * - **A term starts with a fence.** When a tick first runs under a lease token, that token is written to
 *   the ledger's fencing row (`fence`) before anything is planned. An old leader paused mid-tick whose
 *   write commits late is then refused even if this leader plans nothing.
 * - **A hung tick does not stop planning.** When the tick watchdog fires (`TickOverrunError`), the
 *   orchestrator releases the lease but waits for the hung tick before it contends again; with no
 *   standby, a tick that never ends stopped hedging for good. Here the stuck orchestrator is stopped and
 *   a new one, on a new lease object, contends at once. The hung tick is left to end alone: its lease
 *   holds no token any more, so `submitPlan` and the transfer flows refuse whatever it still tries to
 *   submit (not the leader), and the ledger refuses its writes (the new term's fence). The planner's
 *   own state is safe from it too: the new tick overtakes it (`TickPlanner.plan`).
 */
export class PlanningLoop {
  readonly #o: PlanningLoopOptions;
  #running = false;
  /** Bumped by every new orchestrator and by `stop`: an older one's overrun changes nothing. */
  #life = 0;
  #orchestrator: Orchestrator | undefined;
  /** A replacement under way (`stop` waits for it). */
  #renewing: Promise<void> | undefined;

  constructor(o: PlanningLoopOptions) {
    this.#o = o;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#begin();
  }

  #begin(): void {
    const life = ++this.#life;
    const lease = this.#o.lease();
    let fenced: number | undefined;
    const orchestrator = new Orchestrator({
      lease,
      service: this.#o.service,
      ...(this.#o.intervalMs !== undefined ? { intervalMs: this.#o.intervalMs } : {}),
      ...(this.#o.tickTimeoutMs !== undefined ? { tickTimeoutMs: this.#o.tickTimeoutMs } : {}),
      plan: async ({ token }) => {
        if (token !== fenced) {
          await this.#o.fence(token);
          fenced = token;
        }
        // the lease lost (or changed token) while the fence was written: this tick plans nothing (a
        // plan under an old token would overtake the live tick in the planner)
        if (lease.token !== token) return [];
        return this.#o.plan({ token, lease: leaseTerm(lease, token) });
      },
      ...(this.#o.onPlanned ? { onPlanned: this.#o.onPlanned } : {}),
      ...(this.#o.onLeadership ? { onLeadership: this.#o.onLeadership } : {}),
      onError: (err) => {
        this.#o.onError?.(err);
        if (err instanceof TickOverrunError && this.#running && life === this.#life)
          this.#renewing = this.#renew(orchestrator, life);
      },
    });
    this.#orchestrator = orchestrator;
    orchestrator.start();
  }

  /** Stops the orchestrator of `life`, stuck on a hung tick, and starts a new one on a new lease. */
  async #renew(stuck: Orchestrator, life: number): Promise<void> {
    // its tick is past the watchdog's deadline: stop waits no longer for it, and releases the lease
    await stuck.stop();
    if (!this.#running || life !== this.#life) return;
    this.#o.log?.(
      'warn',
      'a planning tick overran its watchdog: planning goes on under a new lease; the hung tick can no longer submit anything',
    );
    this.#begin();
  }

  /** Stops planning (see `Orchestrator.stop`), also a replacement under way. */
  async stop(): Promise<void> {
    this.#running = false;
    this.#life++;
    await this.#renewing;
    await this.#orchestrator?.stop();
  }
}
