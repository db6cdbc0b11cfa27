/** Which typed error an injected rejection raises. */
export type InjectedRejection =
  | 'reverted'
  | 'invalid'
  | 'insufficient-funds'
  | 'network'
  | 'rate-limit'
  | 'nonce';

interface Queued<T> {
  remaining: number;
  value: T;
}

/**
 * Fault injection for one paper venue, for chaos and failure-mode tests. Faults are consumed by the
 * venue's requests in order; `reset()` clears everything.
 */
export class FaultInjector {
  /** Added to every request (awaited through the venue's `sleep`), ms. @defaultValue 0 */
  latencyMs = 0;
  #halted = false;
  #stale = false;
  #crossed = false;
  #timeouts: Queued<{ fillDelayMs: number | undefined }>[] = [];
  #rejects: Queued<InjectedRejection>[] = [];
  #partials: Queued<number>[] = [];

  /**
   * The next `count` orders reach the venue and execute `fillDelayMs` later (simulated time; default
   * one block or the keeper delay), but the caller gets a `VenueTimeoutError` (outcome unknown).
   */
  timeoutNext(opts: { count?: number; fillDelayMs?: number } = {}): void {
    this.#timeouts.push({ remaining: opts.count ?? 1, value: { fillDelayMs: opts.fillDelayMs } });
  }
  /** The next `count` orders are refused with the given kind of error (default a revert). */
  rejectNext(opts: { count?: number; error?: InjectedRejection } = {}): void {
    this.#rejects.push({ remaining: opts.count ?? 1, value: opts.error ?? 'reverted' });
  }
  /** The next `count` orders fill only `fraction` of their size; the rest is cancelled. */
  partialFillNext(opts: { count?: number; fraction: number }): void {
    if (!(opts.fraction > 0 && opts.fraction < 1))
      throw new RangeError('partial fill fraction must be in (0, 1)');
    this.#partials.push({ remaining: opts.count ?? 1, value: opts.fraction });
  }
  /** Freezes marks and the oracle at their current values (oracle-priced trades fail as stale). */
  setStaleMarks(on: boolean): void {
    this.#stale = on;
  }
  /** Marks come back crossed (bid and ask swapped, bid above ask): a broken quote feed. */
  setCrossedQuotes(on: boolean): void {
    this.#crossed = on;
  }
  get crossedQuotes(): boolean {
    return this.#crossed;
  }
  /** Halts the chain: requests fail with `VenueHaltedError`, keepers stop, health reports halted. */
  halt(): void {
    this.#halted = true;
  }
  resume(): void {
    this.#halted = false;
  }
  get halted(): boolean {
    return this.#halted;
  }
  get staleMarks(): boolean {
    return this.#stale;
  }
  reset(): void {
    this.latencyMs = 0;
    this.#halted = false;
    this.#stale = false;
    this.#crossed = false;
    this.#timeouts = [];
    this.#rejects = [];
    this.#partials = [];
  }

  /** @internal consumed by the venue when an order arrives. */
  takeTimeout(): { fillDelayMs: number | undefined } | undefined {
    return take(this.#timeouts);
  }
  /** @internal */
  takeReject(): InjectedRejection | undefined {
    return take(this.#rejects);
  }
  /** @internal */
  takePartial(): number | undefined {
    return take(this.#partials);
  }
}

function take<T>(q: Queued<T>[]): T | undefined {
  const head = q[0];
  if (!head) return undefined;
  head.remaining -= 1;
  if (head.remaining <= 0) q.shift();
  return head.value;
}
