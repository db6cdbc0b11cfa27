import { readFileSync } from 'node:fs';
import { MS_PER_YEAR } from '@xhedge/core';
import { SimError } from './errors.ts';

/** A hole in a historical series: no price between `fromMs` and `toMs` (both are recorded rows). */
export interface ReplayGap {
  fromMs: number;
  toMs: number;
  /** Rows expected inside the gap at the series' regular step. */
  missingRows: number;
}

/** The price a replay gives for an instant, and whether it is held across a gap. */
export interface ReplayPrice {
  priceUsd: number;
  /** Timestamp of the row the price comes from. */
  asOfMs: number;
  /** True when `ms` falls inside a gap (or past the end): the price is the last recorded one. */
  stale: boolean;
  gap?: ReplayGap;
}

/**
 * A historical `timestamp,price` series. Gaps are explicit: they are listed, prices inside them are
 * the last recorded price flagged `stale` (never interpolated, which would invent a calm market), and
 * realized vol uses each return's own time span so a 25-hour return is not counted as one hour.
 */
export class ReplaySeries {
  readonly timesMs: Float64Array;
  readonly prices: Float64Array;
  /** The regular spacing of the rows (the most common interval). */
  readonly stepMs: number;
  readonly gaps: readonly ReplayGap[];

  constructor(timesMs: readonly number[], prices: readonly number[]) {
    if (timesMs.length !== prices.length || timesMs.length < 2)
      throw new SimError('a replay series needs at least two rows');
    this.timesMs = Float64Array.from(timesMs);
    this.prices = Float64Array.from(prices);
    const counts = new Map<number, number>();
    for (let i = 1; i < timesMs.length; i++) {
      const d = (timesMs[i] as number) - (timesMs[i - 1] as number);
      if (!(d > 0)) throw new SimError(`replay rows must be strictly increasing in time (row ${i + 1})`);
      counts.set(d, (counts.get(d) ?? 0) + 1);
    }
    let step = 0;
    let best = -1;
    for (const [d, c] of counts)
      if (c > best) {
        best = c;
        step = d;
      }
    this.stepMs = step;
    const gaps: ReplayGap[] = [];
    for (let i = 1; i < timesMs.length; i++) {
      const from = timesMs[i - 1] as number;
      const to = timesMs[i] as number;
      if (to - from > step * 1.5)
        gaps.push({ fromMs: from, toMs: to, missingRows: Math.round((to - from) / step) - 1 });
    }
    this.gaps = gaps;
  }

  get startMs(): number {
    return this.timesMs[0] as number;
  }
  get endMs(): number {
    return this.timesMs[this.timesMs.length - 1] as number;
  }

  /** Price at an instant: the last row at or before `ms`. Throws before the first row. */
  priceAt(ms: number): ReplayPrice {
    if (ms < this.startMs)
      throw new SimError(`replay has no price before ${new Date(this.startMs).toISOString()}`);
    let lo = 0;
    let hi = this.timesMs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.timesMs[mid] as number) <= ms) lo = mid;
      else hi = mid - 1;
    }
    const asOfMs = this.timesMs[lo] as number;
    const out: ReplayPrice = { priceUsd: this.prices[lo] as number, asOfMs, stale: false };
    if (lo === this.timesMs.length - 1) {
      // One step after the last row a new row was due: held from then on, as inside a gap.
      out.stale = ms - asOfMs >= this.stepMs;
    } else if (ms - asOfMs >= this.stepMs) {
      const gap = this.gaps.find((g) => g.fromMs === asOfMs);
      out.stale = true;
      if (gap) out.gap = gap;
    }
    return out;
  }

  /**
   * The series on its regular grid: one price every `stepMs` from the first row to the last, each the
   * last recorded price at or before that instant (held across gaps, never interpolated). Index i is
   * at `startMs + i · stepMs`, so consumers that count bars measure time correctly: a 25-hour gap
   * stays 25 hours (held, then the whole move at once) instead of shrinking to one bar.
   */
  regularPrices(): Float64Array {
    const n = Math.floor((this.endMs - this.startMs) / this.stepMs) + 1;
    const out = new Float64Array(n);
    let row = 0;
    for (let i = 0; i < n; i++) {
      const ms = this.startMs + i * this.stepMs;
      while (row + 1 < this.timesMs.length && (this.timesMs[row + 1] as number) <= ms) row++;
      out[i] = this.prices[row] as number;
    }
    return out;
  }

  /**
   * Annualized realized vol from consecutive rows. `gaps: 'time-weighted'` (default) keeps returns
   * across gaps but weighs each by its time span; `'skip'` drops returns that span a gap.
   */
  realizedVol(opts: { gaps?: 'time-weighted' | 'skip' } = {}): number {
    const mode = opts.gaps ?? 'time-weighted';
    let sumSq = 0;
    let sumDt = 0;
    for (let i = 1; i < this.timesMs.length; i++) {
      const dt = (this.timesMs[i] as number) - (this.timesMs[i - 1] as number);
      if (mode === 'skip' && dt > this.stepMs * 1.5) continue;
      const r = Math.log((this.prices[i] as number) / (this.prices[i - 1] as number));
      sumSq += r * r;
      sumDt += dt;
    }
    return Math.sqrt(sumSq / (sumDt / MS_PER_YEAR));
  }
}

/** 1e11 ms is 1973-03-03; the same number in seconds would be the year 5138. */
const EPOCH_MS_FLOOR = 1e11;

/** Parses `timestamp,price` CSV (ISO-8601 or epoch-ms timestamps, header optional). */
export function parsePriceCsv(text: string): ReplaySeries {
  const times: number[] = [];
  const prices: number[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, idx) => {
    const line = raw.trim();
    if (line === '') return;
    const [ts = '', px = '', ...rest] = line.split(',');
    if (idx === 0 && !/^[0-9]/.test(ts)) return; // header
    if (rest.length > 0) throw new SimError(`line ${idx + 1}: expected timestamp,price`, { line: idx + 1 });
    // A date-time without a zone (`2025-03-09T02:00:00`, `2025-03-09 02:00`) is read as UTC: Date.parse
    // takes it as the machine's local time, so the same file replayed differently per machine, and in a
    // zone with daylight saving a spring-forward hour collapsed onto the next (refused as not increasing)
    // and a fall-back hour became a fake one-hour gap.
    const zoneless = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(ts);
    const ms = /^[0-9]+$/.test(ts) ? Number(ts) : Date.parse(zoneless ? `${ts.replace(' ', 'T')}Z` : ts);
    const price = Number(px);
    if (!Number.isFinite(ms)) throw new SimError(`line ${idx + 1}: bad timestamp "${ts}"`, { line: idx + 1 });
    // Epoch seconds (the usual exchange export) read as ms would squeeze an hour into 3.6 s: a replay
    // 1000× too fast and a realized vol √1000 too high. No price series of interest predates 1973.
    if (/^[0-9]+$/.test(ts) && ms < EPOCH_MS_FLOOR)
      throw new SimError(
        `line ${idx + 1}: timestamp ${ts} looks like epoch seconds; give epoch milliseconds or ISO-8601`,
        { line: idx + 1 },
      );
    if (!(price > 0) || !Number.isFinite(price))
      throw new SimError(`line ${idx + 1}: price "${px}" must be a positive number`, { line: idx + 1 });
    times.push(ms);
    prices.push(price);
  });
  return new ReplaySeries(times, prices);
}

/** Reads and parses a `timestamp,price` CSV file. */
export function readPriceCsvFile(path: string): ReplaySeries {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new SimError(`cannot read replay CSV ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, {
      path,
    });
  }
  return parsePriceCsv(text);
}
