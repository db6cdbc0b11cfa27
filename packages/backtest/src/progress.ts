/** Where the progress bar draws; the CLI passes stderr, tests pass a buffer. */
export interface ProgressSink {
  write(text: string): void;
  /** Draw only on a terminal: a redirected or piped run stays quiet. */
  isTty: boolean;
}

export interface ProgressBar {
  update(done: number, total: number): void;
  /** Clears the bar line (no-op when nothing was drawn). */
  finish(): void;
}

/**
 * A one-line progress bar redrawn in place with `\r`, at most once per percent, with the elapsed time
 * and an estimate of the time left. Silent when the sink is not a terminal.
 * @param nowMs injected clock, ms. @defaultValue Date.now
 */
export function createProgressBar(
  sink: ProgressSink,
  label = 'backtest',
  width = 30,
  nowMs: () => number = Date.now,
): ProgressBar {
  const t0 = nowMs();
  let lastPct = -1;
  let drawn = false;
  return {
    update(done, total) {
      if (!sink.isTty || total <= 0) return;
      const frac = Math.min(1, done / total);
      const pct = Math.floor(frac * 100);
      if (pct === lastPct) return;
      lastPct = pct;
      const fill = Math.round(frac * width);
      const elapsed = (nowMs() - t0) / 1000;
      const eta = frac > 0 ? (elapsed * (1 - frac)) / frac : 0;
      sink.write(
        `\r${label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${String(pct).padStart(3)}% ${done}/${total} paths ${elapsed.toFixed(1)}s eta ${eta.toFixed(1)}s`,
      );
      drawn = true;
    },
    finish() {
      if (drawn) sink.write('\r\x1b[2K');
      drawn = false;
    },
  };
}
