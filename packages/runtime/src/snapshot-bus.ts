import type { RiskSnapshotView } from '@xhedge/api';
import { type Clock, systemClock } from '@xhedge/core';
import type { RiskSnapshot } from '@xhedge/risk';
import type { Ledger } from '@xhedge/store';
import { maskedError } from './masked-error.ts';

export interface SnapshotBusOptions {
  /**
   * Least time between two snapshots written to the ledger (wall clock), ms: a tick every few hundred
   * ms would otherwise write gigabytes a day. Forced writes (snapshots that led to a plan) always go.
   * @defaultValue 5000
   */
  persistEveryMs?: number;
  /** @defaultValue the system clock */
  clock?: Clock;
  /**
   * Where a listener that throws is told of: the others and the publisher carry on. Once per failure
   * streak, not per snapshot: `warn` when it starts failing (the error masked: no credentials), `info`
   * (else `warn`) when it takes a snapshot again or unsubscribes while failing, with how many snapshots
   * it failed and how many of those failures were not logged. A pino logger fits. @defaultValue none
   */
  log?: {
    warn(obj: Record<string, unknown>, msg: string): void;
    info?(obj: Record<string, unknown>, msg: string): void;
  };
}

type Listener = (s: RiskSnapshotView) => void;

/** A listener failing now: the snapshot it first failed on, and the failures since that were not logged. */
interface FailureStreak {
  sinceSeq: number;
  suppressed: number;
}

/**
 * Where snapshots go after a tick and where the API reads them: the newest one in memory, listeners for
 * the SSE stream (every snapshot), and the ledger for history (throttled). An API running in another
 * process than the orchestrator polls the ledger instead ({@link SnapshotBus.follow}).
 */
export class SnapshotBus {
  #latest: RiskSnapshot | undefined;
  readonly #listeners = new Set<Listener>();
  /** The listeners whose last call threw (a listener that fails on every snapshot is logged once). */
  readonly #failing = new Map<Listener, FailureStreak>();
  readonly #ledger: Ledger;
  #timer: NodeJS.Timeout | undefined;
  /** A `follow` poll of the ledger is in flight (the next ones wait for it). */
  #polling = false;

  readonly #persistEveryMs: number;
  readonly #clock: Clock;
  readonly #log: SnapshotBusOptions['log'];
  #lastPersistMs = Number.NEGATIVE_INFINITY;

  constructor(ledger: Ledger, opts: SnapshotBusOptions = {}) {
    this.#ledger = ledger;
    this.#persistEveryMs = opts.persistEveryMs ?? 5000;
    this.#clock = opts.clock ?? systemClock;
    this.#log = opts.log;
  }

  /**
   * Makes a snapshot the newest, tells the listeners, and writes it to the ledger when due or when
   * `force` (a snapshot whose seq went into plan ids must be on record, so seqs never repeat).
   */
  async publish(s: RiskSnapshot, opts: { force?: boolean } = {}): Promise<void> {
    // never back to an older snapshot: a tick the next one overtook may still publish its own late
    if (this.#latest !== undefined && s.seq < this.#latest.seq) return;
    this.#latest = s;
    const now = this.#clock.nowMs();
    if (opts.force || now - this.#lastPersistMs >= this.#persistEveryMs) {
      await this.#ledger.recordRiskSnapshot({ seq: s.seq, asOfMs: s.asOfMs, snapshot: s });
      this.#lastPersistMs = now;
    }
    this.#emit(s);
  }

  #emit(s: RiskSnapshot): void {
    for (const l of this.#listeners) {
      try {
        l(s);
      } catch (err) {
        // A broken SSE connection must not stop the tick nor the other listeners; its own close
        // handler unsubscribes it. Told of (masked: a driver's error can hold its URL), never rethrown;
        // once when it starts failing, not on every snapshot (one tick a second made it a line a second).
        const streak = this.#failing.get(l);
        if (streak) {
          streak.suppressed++;
          continue;
        }
        this.#failing.set(l, { sinceSeq: s.seq, suppressed: 0 });
        this.#tell(
          'warn',
          { err: maskedError(err), seq: s.seq, listeners: this.#listeners.size },
          'a risk snapshot listener failed; the other listeners and the tick carry on (logged again when it recovers)',
        );
        continue;
      }
      const streak = this.#failing.get(l);
      if (streak) {
        this.#failing.delete(l);
        const f = streakFields(streak);
        this.#tell(
          'info',
          { seq: s.seq, ...f },
          `a risk snapshot listener works again after ${f.failures} failed snapshot(s), ` +
            `${f.suppressed} of those failures not logged`,
        );
      }
    }
  }

  #tell(level: 'warn' | 'info', obj: Record<string, unknown>, msg: string): void {
    try {
      const log = this.#log;
      if (level === 'info' && log?.info) log.info(obj, msg);
      else log?.warn(obj, msg);
    } catch {
      // a log that throws must not stop the tick either
    }
  }

  async latest(): Promise<RiskSnapshot | undefined> {
    if (this.#latest) return this.#latest;
    const r = await this.#ledger.latestRiskSnapshot();
    return r ? (r.snapshot as RiskSnapshot) : undefined;
  }

  /** Adds a listener of every snapshot; the function returned removes it. */
  subscribe(fn: Listener): () => void {
    this.#listeners.add(fn);
    return () => {
      this.#listeners.delete(fn);
      const streak = this.#failing.get(fn);
      if (!streak) return;
      // gone while failing: its streak ends here, and the failures not logged are told of
      this.#failing.delete(fn);
      const f = streakFields(streak);
      this.#tell(
        'info',
        f,
        `a failing risk snapshot listener unsubscribed after ${f.failures} failed snapshot(s), ` +
          `${f.suppressed} of those failures not logged`,
      );
    };
  }

  /**
   * For an API without an orchestrator in its process: polls the ledger every `intervalMs` for a newer
   * snapshot. One poll at a time: while one is in flight (a slow or hung ledger) the next ones are
   * skipped, not piled up on the pool. Only a snapshot with a higher seq than the newest one held is
   * taken and emitted, so an answer older than what is held never replaces it.
   */
  follow(intervalMs: number, onError: (err: unknown) => void): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = setInterval(() => {
      if (this.#polling) return;
      this.#polling = true;
      void this.#ledger
        .latestRiskSnapshot()
        .then((r) => {
          if (r && r.seq > (this.#latest?.seq ?? Number.NEGATIVE_INFINITY)) {
            this.#latest = r.snapshot as RiskSnapshot;
            this.#emit(this.#latest);
          }
        })
        .catch((err: unknown) => {
          try {
            onError(err);
          } catch {
            // a reporter that throws must not leave the poll in flight for ever
          }
        })
        .finally(() => {
          this.#polling = false;
        });
    }, intervalMs);
    this.#timer.unref();
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#listeners.clear();
    this.#failing.clear();
  }
}

/** A failure streak as its closing log line gives it. */
function streakFields(streak: FailureStreak): {
  failedSinceSeq: number;
  failures: number;
  suppressed: number;
} {
  return { failedSinceSeq: streak.sinceSeq, failures: streak.suppressed + 1, suppressed: streak.suppressed };
}
