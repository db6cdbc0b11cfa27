import {
  assertFinite,
  DAYS_PER_YEAR,
  expiryDateToMs,
  MS_PER_DAY,
  MS_PER_HOUR,
  MS_PER_YEAR,
  type Side,
} from '@xhedge/core';

/** The book's Greeks at the start of an interval (from a snapshot's `UnderlyingRisk`). */
export interface AttributionStart {
  spotUsd: number;
  volDecimal: number;
  delta: number;
  gamma: number;
  vegaPerVolPoint: number;
  thetaPerDay: number;
}

/** A hedge fill in the interval, against the price it was planned at. */
export interface AttributionFill {
  side: Side;
  sizeBase: number;
  priceUsd: number;
  referencePriceUsd: number;
  feeUsd: number;
  gasUsd?: number;
}

/** The options of one expiry at an interval's start: their theta and the time they have left. */
export interface ExpiryTheta {
  /** Time to the expiry from the interval's start, ms (0 once past it). */
  msLeft: number;
  /** Theta of the options of that expiry, USD per calendar day (+ = the book earns it). */
  thetaPerDay: number;
}

export interface AttributionInput {
  start: AttributionStart;
  endSpotUsd: number;
  endVolDecimal: number;
  elapsedMs: number;
  /**
   * `start.thetaPerDay` split by option expiry ({@link thetaByExpiry}): each part earns theta for
   * min(`elapsedMs`, its `msLeft`) only, so an interval longer than an option's life credits no theta
   * after that option expired; what the split leaves of `start.thetaPerDay` earns it until the last
   * expiry listed. Absent or empty: `start.thetaPerDay` over the whole interval.
   */
  thetaByExpiry?: readonly ExpiryTheta[];
  /** Funding received (+) or paid (−) over the interval, USD. */
  fundingUsd?: number;
  fills?: readonly AttributionFill[];
  /** The book's measured P&L over the interval, USD; gives `unexplainedUsd` when present. */
  actualPnlUsd?: number;
}

/** P&L of one interval split by source, USD (+ = gain). */
export interface PnlAttribution {
  deltaUsd: number;
  gammaUsd: number;
  thetaUsd: number;
  vegaUsd: number;
  fundingUsd: number;
  feesUsd: number;
  slippageUsd: number;
  gasUsd: number;
  totalUsd: number;
  /** Gamma + theta + hedging costs: what gamma scalping earned net of the time decay it paid for. */
  scalpingNetUsd: number;
  unexplainedUsd?: number;
}

/**
 * Theta of an interval, USD: per expiry for at most the time it has left (see
 * {@link AttributionInput.thetaByExpiry}), else `thetaPerDay` × the interval in days.
 */
function intervalThetaUsd(thetaPerDay: number, elapsedMs: number, split?: readonly ExpiryTheta[]): number {
  if (!split || split.length === 0) return thetaPerDay * (elapsedMs / MS_PER_DAY);
  let usdMs = 0;
  let splitPerDay = 0;
  let longestMs = 0;
  for (const e of split) {
    const leftMs = Math.max(0, assertFinite('thetaByExpiry msLeft', e.msLeft));
    usdMs += assertFinite('thetaByExpiry thetaPerDay', e.thetaPerDay) * Math.min(elapsedMs, leftMs);
    splitPerDay += e.thetaPerDay;
    longestMs = Math.max(longestMs, leftMs);
  }
  return (usdMs + (thetaPerDay - splitPerDay) * Math.min(elapsedMs, longestMs)) / MS_PER_DAY;
}

/**
 * Taylor attribution of one interval: delta Δ·dS, gamma ½Γ·dS², theta θ·days (per expiry at most to
 * that expiry, with `thetaByExpiry`), vega ν·dσ(points), plus funding, fees, slippage (fill vs
 * reference, signed by side) and gas, so an operator sees whether gamma scalping paid for theta.
 */
export function attributePnl(input: AttributionInput): PnlAttribution {
  const { start } = input;
  if (!(Number.isFinite(input.elapsedMs) && input.elapsedMs >= 0))
    throw new RangeError(`attribution elapsedMs must be a finite number >= 0, got ${input.elapsedMs}`);
  const dS = input.endSpotUsd - start.spotUsd;
  const deltaUsd = start.delta * dS;
  const gammaUsd = 0.5 * start.gamma * dS * dS;
  const thetaUsd = intervalThetaUsd(start.thetaPerDay, input.elapsedMs, input.thetaByExpiry);
  const vegaUsd = start.vegaPerVolPoint * (input.endVolDecimal - start.volDecimal) * 100;
  let feesUsd = 0;
  let slippageUsd = 0;
  let gasUsd = 0;
  for (const f of input.fills ?? []) {
    feesUsd -= f.feeUsd;
    gasUsd -= f.gasUsd ?? 0;
    const paid = (f.priceUsd - f.referencePriceUsd) * f.sizeBase;
    slippageUsd -= f.side === 'buy' ? paid : -paid;
  }
  const fundingUsd = input.fundingUsd ?? 0;
  const totalUsd = deltaUsd + gammaUsd + thetaUsd + vegaUsd + fundingUsd + feesUsd + slippageUsd + gasUsd;
  const out: PnlAttribution = {
    deltaUsd,
    gammaUsd,
    thetaUsd,
    vegaUsd,
    fundingUsd,
    feesUsd,
    slippageUsd,
    gasUsd,
    totalUsd: assertFinite('attributed P&L', totalUsd),
    scalpingNetUsd: gammaUsd + thetaUsd + feesUsd + slippageUsd + gasUsd,
  };
  if (input.actualPnlUsd !== undefined) out.unexplainedUsd = input.actualPnlUsd - totalUsd;
  return out;
}

/**
 * Sums interval attributions (a day, a backtest). `unexplainedUsd` only when every part has one: a sum
 * over some of the intervals is no residual of the whole.
 */
export function sumAttributions(parts: readonly PnlAttribution[]): PnlAttribution {
  const keys = [
    'deltaUsd',
    'gammaUsd',
    'thetaUsd',
    'vegaUsd',
    'fundingUsd',
    'feesUsd',
    'slippageUsd',
    'gasUsd',
    'totalUsd',
    'scalpingNetUsd',
  ] as const;
  const out: PnlAttribution = {
    deltaUsd: 0,
    gammaUsd: 0,
    thetaUsd: 0,
    vegaUsd: 0,
    fundingUsd: 0,
    feesUsd: 0,
    slippageUsd: 0,
    gasUsd: 0,
    totalUsd: 0,
    scalpingNetUsd: 0,
  };
  let unexplained = 0;
  let allMeasured = parts.length > 0;
  for (const p of parts) {
    for (const k of keys) out[k] += p[k];
    if (p.unexplainedUsd === undefined) allMeasured = false;
    else unexplained += p.unexplainedUsd;
  }
  assertFinite('summed attributed P&L', out.totalUsd);
  if (allMeasured) out.unexplainedUsd = assertFinite('summed unexplained P&L', unexplained);
  return out;
}

/**
 * The book's theta split by option expiry from what a risk snapshot holds of one underlying (its total
 * `thetaPerDay` and `vegaByExpiry`), with the time each expiry has left at `asOfMs`. The snapshot keeps
 * no theta per expiry, so each is taken from its vega by the Black–Scholes identity at a zero rate,
 * θ = −ν·σ / (2T) per year (ν per unit of vol, T the expiry's time left in years), at the underlying's
 * vol: exact for BSM options at that vol, whatever their strike. What the estimates leave of the total
 * (rates, other IVs, futures' carry) is not split: {@link attributePnl} lets it run to the last expiry.
 * Expiries are at 08:00 UTC of their date (the instrument ids' convention); an expiry key that is no
 * date is left out (its theta stays in the rest). Expired ones have `msLeft` 0 and no theta.
 */
export function thetaByExpiry(
  risk: { thetaPerDay: number; volDecimal: number; vegaByExpiry: Readonly<Record<string, number>> },
  asOfMs: number,
): ExpiryTheta[] {
  const out: ExpiryTheta[] = [];
  for (const [date, vegaPerVolPoint] of Object.entries(risk.vegaByExpiry)) {
    const expiryMs = expiryDateToMs(date);
    if (typeof expiryMs === 'string') continue;
    const msLeft = Math.max(0, expiryMs - asOfMs);
    const years = msLeft / MS_PER_YEAR;
    const thetaPerDay =
      msLeft > 0 && vegaPerVolPoint !== 0
        ? (-vegaPerVolPoint * 100 * risk.volDecimal) / (2 * years) / DAYS_PER_YEAR
        : 0;
    out.push({ msLeft, thetaPerDay: assertFinite(`theta of expiry ${date}`, thetaPerDay, { date }) });
  }
  return out;
}

/** One underlying's risk at a snapshot, as interval attribution reads it (a snapshot's `UnderlyingRisk` fits). */
export interface AttributionRisk extends AttributionStart {
  fundingUsdPerHour: number;
  /** Vega per vol point by expiry date YYYYMMDD: caps each expiry's theta at its expiry. */
  vegaByExpiry?: Readonly<Record<string, number>>;
}

/** A snapshot in a series: its time and the underlying's risk then (undefined: the book did not hold it). */
export interface AttributionPoint {
  asOfMs: number;
  risk: AttributionRisk | undefined;
}

/** A fill with the time it happened, ms: it counts in the interval it falls in. */
export interface TimedFill extends AttributionFill {
  tsMs: number;
}

export interface SeriesAttribution {
  /** The intervals' attributions summed ({@link sumAttributions}); all 0 with no interval. */
  attribution: PnlAttribution;
  /** Intervals attributed: one fewer than the snapshots, 0 with fewer than two. */
  intervals: number;
  /**
   * Intervals in which the underlying was not in the book at one end (no Greeks to start from, or no spot
   * to end at): only their fills' costs and the start's funding are attributed; the rest is unexplained.
   */
  intervalsWithoutGreeks: number;
  /** Fills outside the first to last snapshot, not attributed. */
  fillsOutside: number;
}

const NO_GREEKS: AttributionStart = {
  spotUsd: 0,
  volDecimal: 0,
  delta: 0,
  gamma: 0,
  vegaPerVolPoint: 0,
  thetaPerDay: 0,
};

/**
 * Attribution of a series of snapshots of one underlying, snapshot to snapshot: each interval from the
 * Greeks at its start, with its own spot and vol move, its time (theta per expiry at most to that expiry,
 * {@link thetaByExpiry}), funding at its start's rate and the fills in it ([start, end); the last
 * interval takes a fill at its end too), then summed. The book's hedges change between snapshots, so
 * one set of Greeks over a long range says nothing; this follows them. `actualPnlUsd`, the underlying's
 * measured P&L over the series, gives `unexplainedUsd` = actual − explained.
 */
export function attributeSeries(
  points: readonly AttributionPoint[],
  fills: readonly TimedFill[] = [],
  opts: { actualPnlUsd?: number } = {},
): SeriesAttribution {
  for (let i = 1; i < points.length; i++) {
    const a = points[i - 1]?.asOfMs ?? 0;
    const b = points[i]?.asOfMs ?? 0;
    if (!(b >= a))
      throw new RangeError(`attribution snapshots must be in time order: ${b} follows ${a} at index ${i}`);
  }
  const parts: PnlAttribution[] = [];
  let withoutGreeks = 0;
  let fillsOutside = 0;
  const byInterval: TimedFill[][] = [];
  const first = points[0]?.asOfMs;
  const last = points[points.length - 1]?.asOfMs;
  for (const f of fills) {
    if (first === undefined || last === undefined || points.length < 2 || f.tsMs < first || f.tsMs > last) {
      fillsOutside++;
      continue;
    }
    // the interval [t_i, t_i+1) holding the fill; the last one is closed at its end
    let lo = 0;
    let hi = points.length - 2;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((points[mid]?.asOfMs ?? 0) <= f.tsMs) lo = mid;
      else hi = mid - 1;
    }
    const list = byInterval[lo] ?? [];
    list.push(f);
    byInterval[lo] = list;
  }
  for (let i = 0; i + 1 < points.length; i++) {
    const a = points[i] as AttributionPoint;
    const b = points[i + 1] as AttributionPoint;
    const elapsedMs = b.asOfMs - a.asOfMs;
    const intervalFills = byInterval[i] ?? [];
    const s = a.risk;
    const e = b.risk;
    if (!s || !e) {
      withoutGreeks++;
      parts.push(
        attributePnl({
          start: NO_GREEKS,
          endSpotUsd: 0,
          endVolDecimal: 0,
          elapsedMs,
          fundingUsd: s ? s.fundingUsdPerHour * (elapsedMs / MS_PER_HOUR) : 0,
          fills: intervalFills,
        }),
      );
      continue;
    }
    const input: AttributionInput = {
      start: s,
      endSpotUsd: e.spotUsd,
      endVolDecimal: e.volDecimal,
      elapsedMs,
      fundingUsd: s.fundingUsdPerHour * (elapsedMs / MS_PER_HOUR),
      fills: intervalFills,
    };
    if (s.vegaByExpiry) input.thetaByExpiry = thetaByExpiry({ ...s, vegaByExpiry: s.vegaByExpiry }, a.asOfMs);
    parts.push(attributePnl(input));
  }
  const attribution = sumAttributions(parts);
  if (opts.actualPnlUsd !== undefined)
    attribution.unexplainedUsd = assertFinite('actual P&L', opts.actualPnlUsd) - attribution.totalUsd;
  return {
    attribution,
    intervals: parts.length,
    intervalsWithoutGreeks: withoutGreeks,
    fillsOutside,
  };
}
