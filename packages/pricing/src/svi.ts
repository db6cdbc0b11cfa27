import { XhedgeError } from '@xhedge/core';

/**
 * Raw SVI (Gatheral 2004) total implied variance at log-moneyness k = ln(K/F):
 * w(k) = a + b·(ρ(k − m) + √((k − m)² + σ²)).
 */
export interface SviParams {
  a: number;
  b: number;
  rho: number;
  m: number;
  sigma: number;
}

/** A quote of one option of the expiry being fitted. */
export interface SmileQuote {
  strike: number;
  /** Implied vol, decimal. */
  vol: number;
  /** Relative weight in the least squares (e.g. vega or 1/spread). Default 1. */
  weight?: number;
}

export class SmileFitError extends XhedgeError {
  override name = 'SmileFitError';
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('SMILE_FIT', message, { details });
  }
}

export function sviTotalVariance(p: SviParams, k: number): number {
  const d = k - p.m;
  return p.a + p.b * (p.rho * d + Math.sqrt(d * d + p.sigma * p.sigma));
}

/** w, w', w'' at k. */
function sviDerivatives(p: SviParams, k: number): [number, number, number] {
  const d = k - p.m;
  const r = Math.sqrt(d * d + p.sigma * p.sigma);
  return [p.a + p.b * (p.rho * d + r), p.b * (p.rho + d / r), (p.b * p.sigma * p.sigma) / (r * r * r)];
}

/**
 * Durrleman's condition: the density implied by the smile is non-negative iff
 * g(k) = (1 − k·w'/(2w))² − (w'²/4)(1/w + 1/4) + w''/2 ≥ 0 (and w > 0).
 */
export function durrlemanG(p: SviParams, k: number): number {
  const [w, w1, w2] = sviDerivatives(p, k);
  if (!(w > 0)) return Number.NEGATIVE_INFINITY;
  const u = 1 - (k * w1) / (2 * w);
  return u * u - ((w1 * w1) / 4) * (1 / w + 0.25) + w2 / 2;
}

/** Result of a butterfly-arbitrage scan over a log-moneyness grid. */
export interface ButterflyCheck {
  arbitrageFree: boolean;
  /** Smallest g(k) found and where. */
  minG: number;
  atK: number;
}

/** Scans g(k) on `points` log-moneyness values in [kMin, kMax] (defaults −3..3, 601 points). */
export function checkButterfly(p: SviParams, kMin = -3, kMax = 3, points = 601): ButterflyCheck {
  let minG = Number.POSITIVE_INFINITY;
  let atK = kMin;
  for (let i = 0; i < points; i++) {
    const k = kMin + ((kMax - kMin) * i) / (points - 1);
    const g = durrlemanG(p, k);
    if (g < minG) {
      minG = g;
      atK = k;
    }
  }
  return { arbitrageFree: minG >= -1e-12, minG, atK };
}

/** A fitted expiry slice. */
export interface SmileFit {
  params: SviParams;
  /** ACT/365 years to expiry used for the fit. */
  timeYears: number;
  forward: number;
  /** Root-mean-square error in implied vol over the quotes (decimal). */
  rmsVolError: number;
  butterfly: ButterflyCheck;
}

/** Weighted linear least squares for (a, bρ, b) at fixed (m, σ). */
function innerFit(
  ks: Float64Array,
  ws: Float64Array,
  wt: Float64Array,
  m: number,
  sigma: number,
): SviParams | null {
  // w = a + d·(k − m) + c·√((k − m)² + σ²) with c = b, d = bρ: linear in (a, d, c).
  let s11 = 0;
  let s12 = 0;
  let s13 = 0;
  let s22 = 0;
  let s23 = 0;
  let s33 = 0;
  let r1 = 0;
  let r2 = 0;
  let r3 = 0;
  for (let i = 0; i < ks.length; i++) {
    const x = (ks[i] as number) - m;
    const z = Math.sqrt(x * x + sigma * sigma);
    const w = wt[i] as number;
    const y = ws[i] as number;
    s11 += w;
    s12 += w * x;
    s13 += w * z;
    s22 += w * x * x;
    s23 += w * x * z;
    s33 += w * z * z;
    r1 += w * y;
    r2 += w * x * y;
    r3 += w * z * y;
  }
  const det = s11 * (s22 * s33 - s23 * s23) - s12 * (s12 * s33 - s23 * s13) + s13 * (s12 * s23 - s22 * s13);
  if (!(Math.abs(det) > 1e-300)) return null;
  const a = (r1 * (s22 * s33 - s23 * s23) - s12 * (r2 * s33 - s23 * r3) + s13 * (r2 * s23 - s22 * r3)) / det;
  const d = (s11 * (r2 * s33 - s23 * r3) - r1 * (s12 * s33 - s23 * s13) + s13 * (s12 * r3 - r2 * s13)) / det;
  let c = (s11 * (s22 * r3 - r2 * s23) - s12 * (s12 * r3 - r2 * s13) + r1 * (s12 * s23 - s22 * s13)) / det;
  // Enforce b ≥ 0 and |ρ| < 1; the outer search then prefers (m, σ) where no clamping is needed.
  c = Math.max(c, 1e-12);
  const rho = Math.max(-0.999, Math.min(0.999, d / c));
  return { a, b: c, rho, m, sigma };
}

function objective(
  p: SviParams,
  ks: Float64Array,
  ws: Float64Array,
  wt: Float64Array,
  scale: number,
): number {
  let sse = 0;
  for (let i = 0; i < ks.length; i++) {
    const w = sviTotalVariance(p, ks[i] as number);
    const e = w - (ws[i] as number);
    sse += (wt[i] as number) * e * e;
  }
  // Penalties (in units of the data's scale) keep the slice free of butterfly arbitrage and inside
  // Lee's wing bound b(1+|ρ|) ≤ 4.
  let penalty = 0;
  const minW = p.a + p.b * p.sigma * Math.sqrt(1 - p.rho * p.rho);
  if (minW < 0) penalty += scale * (1 + (minW * minW) / 1e-6);
  const wing = p.b * (1 + Math.abs(p.rho)) - 4;
  if (wing > 0) penalty += scale * (1 + wing * wing);
  for (let k = -2; k <= 2; k += 0.1) {
    const g = durrlemanG(p, k);
    if (g < 0) penalty += Number.isFinite(g) ? scale * (0.01 + g * g) : scale * 1e6;
  }
  return sse + penalty;
}

/**
 * Fits raw SVI to one expiry's quotes (Zeliade's quasi-explicit method: linear least squares in (a, bρ, b)
 * inside a Nelder-Mead search over (m, ln σ)), penalising butterfly arbitrage (Durrleman's g < 0),
 * negative variance and Lee's wing bound. Needs at least 5 quotes.
 */
export function fitSviSlice(args: {
  forward: number;
  timeYears: number;
  quotes: readonly SmileQuote[];
}): SmileFit {
  const { forward: F, timeYears: T, quotes } = args;
  if (!(F > 0 && Number.isFinite(F))) throw new SmileFitError(`forward ${F} must be positive`);
  if (!(T > 0 && Number.isFinite(T))) throw new SmileFitError(`timeYears ${T} must be positive`);
  if (quotes.length < 5) throw new SmileFitError(`need at least 5 quotes to fit SVI, got ${quotes.length}`);
  const n = quotes.length;
  const ks = new Float64Array(n);
  const ws = new Float64Array(n);
  const wt = new Float64Array(n);
  quotes.forEach((q, i) => {
    if (!(q.strike > 0 && q.vol > 0 && Number.isFinite(q.strike * q.vol)))
      throw new SmileFitError(`quote ${i}: strike and vol must be positive`, { quote: q });
    ks[i] = Math.log(q.strike / F);
    ws[i] = q.vol * q.vol * T;
    wt[i] = q.weight ?? 1;
  });
  let sumWt = 0;
  let sumW = 0;
  for (let i = 0; i < n; i++) {
    sumWt += wt[i] as number;
    sumW += ws[i] as number;
  }
  const penaltyScale = sumWt * (sumW / n) ** 2;
  const kLo = Math.min(...ks);
  const kHi = Math.max(...ks);
  const evalAt = (m: number, lnSigma: number): { f: number; p: SviParams | null } => {
    const p = innerFit(ks, ws, wt, m, Math.exp(lnSigma));
    return { f: p ? objective(p, ks, ws, wt, penaltyScale) : Number.POSITIVE_INFINITY, p };
  };
  // Nelder-Mead from a few starts over (m, ln σ).
  let best: { f: number; p: SviParams | null } = { f: Number.POSITIVE_INFINITY, p: null };
  for (const m0 of [0, 0.5 * (kLo + kHi)]) {
    for (const ls0 of [Math.log(0.05), Math.log(0.3)]) {
      let simplex: [number, number, number][] = [
        [m0, ls0, 0],
        [m0 + 0.1, ls0, 0],
        [m0, ls0 + 0.5, 0],
      ];
      simplex = simplex.map(([m, l]) => [m, l, evalAt(m, l).f]);
      for (let it = 0; it < 300; it++) {
        simplex.sort((x, y) => x[2] - y[2]);
        const [b0, b1, w] = simplex as [
          [number, number, number],
          [number, number, number],
          [number, number, number],
        ];
        if (Math.abs(w[2] - b0[2]) <= 1e-14 * (Math.abs(b0[2]) + 1e-30)) break;
        const cm = 0.5 * (b0[0] + b1[0]);
        const cl = 0.5 * (b0[1] + b1[1]);
        const rm = cm + (cm - w[0]);
        const rl = cl + (cl - w[1]);
        const fr = evalAt(rm, rl).f;
        if (fr < b0[2]) {
          const em = cm + 2 * (cm - w[0]);
          const el = cl + 2 * (cl - w[1]);
          const fe = evalAt(em, el).f;
          simplex[2] = fe < fr ? [em, el, fe] : [rm, rl, fr];
        } else if (fr < b1[2]) simplex[2] = [rm, rl, fr];
        else {
          const km = cm + 0.5 * (w[0] - cm);
          const kl = cl + 0.5 * (w[1] - cl);
          const fk = evalAt(km, kl).f;
          if (fk < w[2]) simplex[2] = [km, kl, fk];
          else
            simplex = simplex.map(([m, l], j) => {
              if (j === 0) return [m, l, simplex[0]?.[2] ?? Number.POSITIVE_INFINITY];
              const mm = b0[0] + 0.5 * (m - b0[0]);
              const ll = b0[1] + 0.5 * (l - b0[1]);
              return [mm, ll, evalAt(mm, ll).f];
            });
        }
      }
      simplex.sort((x, y) => x[2] - y[2]);
      const top = simplex[0];
      if (top && top[2] < best.f) best = evalAt(top[0], top[1]);
    }
  }
  const params = best.p;
  if (!params) throw new SmileFitError('SVI fit failed: quotes are degenerate (need distinct strikes)');
  let se = 0;
  for (let i = 0; i < n; i++) {
    const w = sviTotalVariance(params, ks[i] as number);
    const v = Math.sqrt(Math.max(w, 0) / T);
    se += (v - (quotes[i]?.vol ?? 0)) ** 2;
  }
  return {
    params,
    timeYears: T,
    forward: F,
    rmsVolError: Math.sqrt(se / n),
    butterfly: checkButterfly(params),
  };
}
