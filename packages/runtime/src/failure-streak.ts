/**
 * Logs a run of failures of one recurring job (the planning tick) as a streak, not one line per failure:
 * the first failure, and each failure whose message differs from the one before, at error level with
 * the error; while the same failure repeats, one warning every `summaryEveryMs` counting them; and one
 * line when it succeeds again. A ledger outage failed the tick about four times a second, each with a
 * full stack at error level, and nothing said when it ended.
 */
export interface FailureStreakOptions {
  /** What fails, for the messages (e.g. `orchestrator tick`). */
  what: string;
  error: (err: unknown, msg: string) => void;
  warn: (data: Record<string, unknown>, msg: string) => void;
  info: (data: Record<string, unknown>, msg: string) => void;
  /** Wall time, ms. @defaultValue Date.now */
  nowMs?: () => number;
  /** Least time between two summaries of the same failure repeating, ms. @defaultValue 30000 */
  summaryEveryMs?: number;
}

interface Streak {
  sinceMs: number;
  failures: number;
  /** Failures since the last line about this streak. */
  unreported: number;
  /** The last failure's message with its numbers and ids left out (see `shapeOf`). */
  lastShape: string;
  reportedAtMs: number;
}

/**
 * A failure's message with what changes from one failure to the next left out (numbers, hex, ids), so the
 * same failure repeating ("planner tick 46 was overtaken by tick 47", "no answer within 5012 ms") is one
 * streak, not a new error line each time.
 */
function shapeOf(message: string): string {
  return message
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi, '<id>')
    .replace(/0x[0-9a-f]+/gi, '0x…')
    .replace(/\d+(?:\.\d+)?/g, '#');
}

export class FailureStreak {
  readonly #o: FailureStreakOptions;
  readonly #now: () => number;
  readonly #everyMs: number;
  #streak: Streak | undefined;

  constructor(o: FailureStreakOptions) {
    const every = o.summaryEveryMs ?? 30_000;
    if (!Number.isFinite(every) || every < 0)
      throw new RangeError(`summaryEveryMs must be a finite number of ms >= 0, got ${String(every)}`);
    this.#o = o;
    this.#now = o.nowMs ?? Date.now;
    this.#everyMs = every;
  }

  /** Whether a streak of failures is open (the last outcome was a failure). */
  get failing(): boolean {
    return this.#streak !== undefined;
  }

  fail(err: unknown): void {
    const now = this.#now();
    const message = err instanceof Error ? err.message : String(err);
    const shape = shapeOf(message);
    const s = this.#streak;
    if (!s || s.lastShape !== shape) {
      this.#o.error(err, s ? `${this.#o.what} failed differently` : `${this.#o.what} failed`);
      if (s) {
        s.failures++;
        s.unreported = 0;
        s.lastShape = shape;
        s.reportedAtMs = now;
      } else this.#streak = { sinceMs: now, failures: 1, unreported: 0, lastShape: shape, reportedAtMs: now };
      return;
    }
    s.failures++;
    s.unreported++;
    if (now - s.reportedAtMs >= this.#everyMs) {
      this.#o.warn(
        { failures: s.failures, sinceMs: s.sinceMs, lastError: message },
        `${this.#o.what} still failing: ${s.unreported} more the same way (${s.failures} since ${new Date(s.sinceMs).toISOString()})`,
      );
      s.unreported = 0;
      s.reportedAtMs = now;
    }
  }

  ok(): void {
    const s = this.#streak;
    if (!s) return;
    this.#streak = undefined;
    const seconds = Math.round((this.#now() - s.sinceMs) / 100) / 10;
    this.#o.info(
      { failures: s.failures, sinceMs: s.sinceMs },
      `${this.#o.what} succeeds again after ${s.failures} failure${s.failures === 1 ? '' : 's'} over ${seconds} s`,
    );
  }
}
