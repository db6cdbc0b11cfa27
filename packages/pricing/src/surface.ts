import { yearFraction } from '@xhedge/core';
import { PricingInputError } from './bsm.ts';
import {
  fitSviSlice,
  type SmileFit,
  SmileFitError,
  type SmileQuote,
  type SviParams,
  sviTotalVariance,
} from './svi.ts';

/** One expiry of quotes for `VolSurface.fit`. */
export interface ExpiryQuotes {
  /** UTC instant of expiry, ms. */
  expiryMs: number;
  /** Forward (or futures) price for that expiry, USD. */
  forward: number;
  quotes: readonly SmileQuote[];
}

/** A slice of the surface: SVI parameters on log-moneyness ln(K/F) for one expiry. */
export interface SurfaceSlice {
  expiryMs: number;
  timeYears: number;
  forward: number;
  params: SviParams;
}

/** Where total variance decreases with expiry at some strike (calendar arbitrage). */
export interface CalendarViolation {
  earlierExpiryMs: number;
  laterExpiryMs: number;
  k: number;
}

/**
 * The house volatility surface: an SVI smile per expiry, interpolated linearly in total variance
 * w = σ²T at fixed log-moneyness k = ln(K/F(T)) across expiries, with F(T) log-linear between the
 * slices' forwards. Before the first expiry and after the last, implied vol at fixed k is held flat.
 * Used to mark positions on venues that publish no IV.
 */
export class VolSurface {
  readonly asOfMs: number;
  readonly slices: readonly SurfaceSlice[];
  /** The per-expiry fits (RMS error, butterfly check) when built with `fit`. */
  readonly fits: readonly SmileFit[];

  constructor(asOfMs: number, slices: readonly SurfaceSlice[], fits: readonly SmileFit[] = []) {
    if (slices.length === 0) throw new SmileFitError('a surface needs at least one expiry');
    const sorted = [...slices].sort((a, b) => a.expiryMs - b.expiryMs);
    for (const s of sorted)
      if (!(s.timeYears > 0 && s.forward > 0))
        throw new SmileFitError(
          `slice ${new Date(s.expiryMs).toISOString()} must be in the future with a forward > 0`,
        );
    this.asOfMs = asOfMs;
    this.slices = sorted;
    this.fits = fits;
  }

  /** Fits one SVI slice per expiry from quotes observed at `asOfMs`. */
  static fit(asOfMs: number, expiries: readonly ExpiryQuotes[]): VolSurface {
    const fits: SmileFit[] = [];
    const slices: SurfaceSlice[] = [];
    for (const e of expiries) {
      const timeYears = yearFraction(asOfMs, e.expiryMs);
      if (!(timeYears > 0))
        throw new SmileFitError(`expiry ${new Date(e.expiryMs).toISOString()} is not after asOf`);
      const fit = fitSviSlice({ forward: e.forward, timeYears, quotes: e.quotes });
      fits.push(fit);
      slices.push({ expiryMs: e.expiryMs, timeYears, forward: e.forward, params: fit.params });
    }
    return new VolSurface(asOfMs, slices, fits);
  }

  /** Forward at `expiryMs`, log-linear in time between slices, flat outside. */
  forward(expiryMs: number): number {
    const T = this.time(expiryMs);
    const { lo, hi, weight } = this.bracket(T);
    return Math.exp(Math.log(lo.forward) * (1 - weight) + Math.log(hi.forward) * weight);
  }

  /** Total variance σ²T at strike and expiry. */
  totalVariance(strike: number, expiryMs: number): number {
    if (!(strike > 0 && Number.isFinite(strike)))
      throw new PricingInputError('strike', strike, 'must be positive');
    const T = this.time(expiryMs);
    const { lo, hi, weight } = this.bracket(T);
    const k = Math.log(strike / this.forward(expiryMs));
    if (lo === hi) return (sviTotalVariance(lo.params, k) * T) / lo.timeYears;
    const wLo = sviTotalVariance(lo.params, k);
    const wHi = sviTotalVariance(hi.params, k);
    return wLo + (wHi - wLo) * weight;
  }

  /** Implied vol (decimal) for a strike and expiry instant. */
  vol(strike: number, expiryMs: number): number {
    const T = this.time(expiryMs);
    const w = this.totalVariance(strike, expiryMs);
    if (!(w > 0)) throw new SmileFitError(`surface gives non-positive variance ${w} at strike ${strike}`);
    return Math.sqrt(w / T);
  }

  /** Calendar-arbitrage scan: total variance must not decrease with expiry at any k in [kMin, kMax]. */
  calendarViolations(kMin = -2, kMax = 2, points = 81): CalendarViolation[] {
    const out: CalendarViolation[] = [];
    for (let i = 1; i < this.slices.length; i++) {
      const a = this.slices[i - 1] as SurfaceSlice;
      const b = this.slices[i] as SurfaceSlice;
      for (let j = 0; j < points; j++) {
        const k = kMin + ((kMax - kMin) * j) / (points - 1);
        if (sviTotalVariance(b.params, k) < sviTotalVariance(a.params, k) - 1e-12) {
          out.push({ earlierExpiryMs: a.expiryMs, laterExpiryMs: b.expiryMs, k });
          break;
        }
      }
    }
    return out;
  }

  private time(expiryMs: number): number {
    const T = yearFraction(this.asOfMs, expiryMs);
    if (!(T > 0)) throw new PricingInputError('expiryMs', expiryMs, 'must be after the surface asOf');
    return T;
  }

  private bracket(T: number): { lo: SurfaceSlice; hi: SurfaceSlice; weight: number } {
    const s = this.slices;
    const first = s[0] as SurfaceSlice;
    const last = s[s.length - 1] as SurfaceSlice;
    if (T <= first.timeYears) return { lo: first, hi: first, weight: 0 };
    if (T >= last.timeYears) return { lo: last, hi: last, weight: 0 };
    let i = 1;
    while ((s[i] as SurfaceSlice).timeYears < T) i++;
    const lo = s[i - 1] as SurfaceSlice;
    const hi = s[i] as SurfaceSlice;
    return { lo, hi, weight: (T - lo.timeYears) / (hi.timeYears - lo.timeYears) };
  }
}
