import { type Clock, ValidationError } from '@xhedge/core';
import { sql } from 'kysely';
import type { Ledger } from './ledger.ts';

const DAY_MS = 86_400_000;

/**
 * How long risk snapshots are kept (the profile's `snapshotRetention`). A snapshot is stored at least
 * every 5 s (17,280 a day; a 52-position book's is ~6 KB of JSON, ~100 MB a day).
 */
export interface SnapshotRetentionPolicy {
  /** Every snapshot younger than this is kept, days. @defaultValue 7 */
  fullResolutionDays: number;
  /** Older than `fullResolutionDays`: the last snapshot of each bucket this long is kept, ms. @defaultValue 60000 */
  downsampleEveryMs: number;
  /**
   * Older than this nothing is kept (but the newest snapshot and those plans were made from), days. A
   * quarter: a quarterly option's life, and a quarter's P&L attribution, reads the whole way. About 0.7 GB
   * for the 7 days at full resolution plus 0.7 GB for the 83 days at one a minute, for such a book.
   * @defaultValue 90
   */
  retentionDays: number;
}

export interface SnapshotRetentionOptions extends Partial<SnapshotRetentionPolicy> {
  /** Time between two passes (wall clock), ms. @defaultValue 3600000 (an hour) */
  intervalMs?: number;
  /** Snapshots examined (and at most deleted) per statement. @defaultValue 2000 */
  batchSize?: number;
  /** Pause between two statements of a pass, ms (other writers get the table and the pool). @defaultValue 100 */
  pauseMs?: number;
}

export const SNAPSHOT_RETENTION_DEFAULTS: Readonly<Required<SnapshotRetentionOptions>> = {
  fullResolutionDays: 7,
  downsampleEveryMs: 60_000,
  retentionDays: 90,
  intervalMs: 3_600_000,
  batchSize: 2000,
  pauseMs: 100,
};

/**
 * The options with their defaults, checked: a `ValidationError` naming each wrong option (days and ms
 * positive and finite, `fullResolutionDays` not above `retentionDays`, whole ms and counts).
 */
export function snapshotRetentionOptions(
  o: SnapshotRetentionOptions = {},
): Required<SnapshotRetentionOptions> {
  const v = { ...SNAPSHOT_RETENTION_DEFAULTS };
  for (const [k, val] of Object.entries(o)) if (val !== undefined) (v as Record<string, unknown>)[k] = val;
  const issues: { path: string; message: string }[] = [];
  const days = (k: 'fullResolutionDays' | 'retentionDays', min: number) => {
    const d = v[k];
    if (typeof d !== 'number' || !Number.isFinite(d) || d < min || d > 36_500)
      issues.push({ path: k, message: `must be a number of days from ${min} to 36500, got ${String(d)}` });
  };
  days('fullResolutionDays', 0);
  days('retentionDays', 1);
  const whole = (
    k: 'downsampleEveryMs' | 'intervalMs' | 'batchSize' | 'pauseMs',
    min: number,
    max: number,
  ) => {
    const n = v[k];
    if (!Number.isSafeInteger(n) || n < min || n > max)
      issues.push({ path: k, message: `must be a whole number from ${min} to ${max}, got ${String(n)}` });
  };
  whole('downsampleEveryMs', 1000, DAY_MS);
  whole('intervalMs', 1000, DAY_MS);
  whole('batchSize', 1, 100_000);
  whole('pauseMs', 0, 60_000);
  if (issues.length === 0 && v.fullResolutionDays > v.retentionDays)
    issues.push({
      path: 'fullResolutionDays',
      message: `must not be above retentionDays (${v.retentionDays}), got ${v.fullResolutionDays}`,
    });
  if (issues.length > 0) throw new ValidationError('snapshot retention', issues);
  return v;
}

/** What a pass did. */
export interface SnapshotRetentionResult {
  /** Snapshots at or after this were all kept, ms (run clock, rounded down to a bucket). */
  fullBeforeMs: number;
  /** Snapshots before this were deleted (but the newest and those plans were made from), ms. */
  retainBeforeMs: number;
  examined: number;
  deleted: number;
  statements: number;
  /** False when `stop` ended the pass early (it resumes from the start next time). */
  complete: boolean;
}

/**
 * The risk snapshot retention: every snapshot for `fullResolutionDays`, then the last of each
 * `downsampleEveryMs` bucket up to `retentionDays`, none older (see {@link Ledger.pruneRiskSnapshotsBatch}
 * for the rows always kept). A pass walks the snapshots older than the full-resolution span in time
 * order, `batchSize` per statement with `pauseMs` between, so no statement holds locks or runs long;
 * on PGlite (no autovacuum) a pass that deleted anything ends with a VACUUM of the table, so its space is
 * used again. Passes run from {@link SnapshotRetention.poke} (the leader's tick calls it), at most one
 * every `intervalMs` and one at a time. Cutoffs are by the ledger's clock (the run's, which stamps the
 * snapshots); the interval is wall-clock time.
 */
export class SnapshotRetention {
  readonly options: Readonly<Required<SnapshotRetentionOptions>>;
  readonly #ledger: Ledger;
  readonly #clock: Clock;
  readonly #onResult: ((r: SnapshotRetentionResult, ms: number) => void) | undefined;
  readonly #onError: ((err: unknown) => void) | undefined;
  #running: Promise<void> | undefined;
  #lastStartedAt: number | undefined;
  #stopped = false;
  #wake: (() => void) | undefined;

  constructor(o: {
    ledger: Ledger;
    /** The clock snapshots are stamped with (the run's). */
    clock: Clock;
    options?: SnapshotRetentionOptions | undefined;
    /** Told after each pass (how long it took, wall ms). */
    onResult?: (r: SnapshotRetentionResult, ms: number) => void;
    /** Told when a pass fails (the next poke after the interval tries again). */
    onError?: (err: unknown) => void;
  }) {
    this.options = snapshotRetentionOptions(o.options);
    this.#ledger = o.ledger;
    this.#clock = o.clock;
    this.#onResult = o.onResult;
    this.#onError = o.onError;
  }

  /** Starts a pass in the background when none runs and the last started `intervalMs` ago or more. */
  poke(): void {
    if (this.#stopped || this.#running) return;
    const now = performance.now();
    if (this.#lastStartedAt !== undefined && now - this.#lastStartedAt < this.options.intervalMs) return;
    this.#lastStartedAt = now;
    this.#running = this.run()
      .then((r) => this.#onResult?.(r, performance.now() - now))
      .catch((err: unknown) => this.#onError?.(err))
      .finally(() => {
        this.#running = undefined;
      });
  }

  /** One whole pass now (also while another runs: the two delete nothing twice). */
  async run(): Promise<SnapshotRetentionResult> {
    const o = this.options;
    const now = this.#clock.nowMs();
    const bucket = (ms: number) => Math.floor(ms / o.downsampleEveryMs) * o.downsampleEveryMs;
    const fullBeforeMs = bucket(now - Math.round(o.fullResolutionDays * DAY_MS));
    const retainBeforeMs = Math.min(fullBeforeMs, bucket(now - Math.round(o.retentionDays * DAY_MS)));
    const out: SnapshotRetentionResult = {
      fullBeforeMs,
      retainBeforeMs,
      examined: 0,
      deleted: 0,
      statements: 0,
      complete: false,
    };
    let after: { asOfMs: number; seq: number } | undefined;
    for (;;) {
      if (this.#stopped) return out;
      const b = await this.#ledger.pruneRiskSnapshotsBatch({
        fullBeforeMs,
        retainBeforeMs,
        downsampleEveryMs: o.downsampleEveryMs,
        batchSize: o.batchSize,
        ...(after ? { after } : {}),
      });
      out.statements++;
      out.examined += b.examined;
      out.deleted += b.deleted;
      if (!b.next || b.examined < o.batchSize) break;
      after = b.next;
      if (o.pauseMs > 0) await this.#pause(o.pauseMs);
    }
    if (out.deleted > 0 && this.#ledger.kind === 'pglite' && !this.#stopped)
      await sql`vacuum risk_snapshots`.execute(this.#ledger.db);
    out.complete = true;
    return out;
  }

  #pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.#wake = undefined;
        resolve();
      }, ms);
      t.unref?.();
      this.#wake = () => {
        clearTimeout(t);
        this.#wake = undefined;
        resolve();
      };
    });
  }

  /** Stops: no pass starts again, one under way ends after its statement in flight (awaited). */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    await this.#running;
  }
}
