import { XhedgeError } from '@xhedge/core';
import { type OptionKind, PricingInputError } from './bsm.ts';
import { lastOtm, normalisedBlackOtm } from './normalised-black.ts';

/** Why a price has no implied volatility. */
export type ImpliedVolReason =
  | 'below-intrinsic'
  | 'no-time-value'
  | 'above-maximum'
  | 'invalid-input'
  | 'not-converged';

/** A price that no volatility reproduces (or inputs that cannot be solved); never a NaN or a clamp. */
export class ImpliedVolError extends XhedgeError {
  override name = 'ImpliedVolError';
  readonly reason: ImpliedVolReason;
  constructor(reason: ImpliedVolReason, message: string, details: Record<string, unknown> = {}) {
    super('IMPLIED_VOL', message, { details: { reason, ...details } });
    this.reason = reason;
  }
}

/** Approximate Φ⁻¹(p) for 0 < p ≤ 0.5 (Abramowitz & Stegun 26.2.23, |error| < 4.5e-4): a starting point only. */
function approxInverseNormalLower(p: number): number {
  const t = Math.sqrt(-2 * Math.log(p));
  return -(
    t -
    (2.515517 + 0.802853 * t + 0.010328 * t * t) / (1 + t * (1.432788 + t * (0.189269 + 0.001308 * t)))
  );
}

const MAX_ITERATIONS = 60;
const SQRT_2PI = 2.5066282746310002;

/** Status of `blackImpliedVolCore` and `normalisedImpliedStdCore`: ≥ 0 is a result; negative values code the failure. */
const CORE_INVALID = -1;
const CORE_BELOW = -2;
const CORE_NO_TIME_VALUE = -3;
const CORE_ABOVE = -4;
const CORE_NOT_CONVERGED = -5;

/**
 * Total standard deviation s = σ√T with b(x, s) = beta, for x ≤ 0 and 0 < beta < e^{x/2} (callers check).
 * Throws `ImpliedVolError` ('not-converged') when the search does not converge.
 */
export function normalisedImpliedStd(beta: number, x: number): number {
  const s = normalisedImpliedStdCore(beta, x);
  if (s === CORE_NOT_CONVERGED)
    throw new ImpliedVolError('not-converged', `implied vol did not converge (x=${x}, beta=${beta})`, {
      x,
      beta,
    });
  return s;
}

/**
 * Allocation-free, throw-free core of `normalisedImpliedStd`: s, or `CORE_NOT_CONVERGED` (a batch reports
 * that per element instead of losing the whole batch to one throw).
 *
 * b(·) is the integral of a log-concave density in s, so ln b(s) is concave and −ln(b_max − b(s)) is
 * convex: Householder(2) (Halley) on the first below the inflection point s_c = √(2|x|) and on the second
 * above it converges fast from a rational-ish asymptotic guess; every step is kept inside a bracket that
 * shrinks with each evaluation, with Newton then bisection as fallbacks, so it cannot diverge.
 */
export function normalisedImpliedStdCore(beta: number, x: number): number {
  const bMax = Math.exp(0.5 * x);
  const complementTarget = bMax - beta;
  const sc = Math.sqrt(-2 * x);
  let lower = false;
  // Bracket [lo, hi] with the branch objective's values at its ends (NaN until known).
  let lo = 0;
  let hi = Number.POSITIVE_INFINITY;
  let fLo = Number.NaN;
  let fHi = Number.NaN;
  let s: number;
  if (sc > 0) {
    const bc = normalisedBlackOtm(x, sc);
    const vc = lastOtm.vega;
    const compC = lastOtm.complement >= 0 ? lastOtm.complement : bMax - bc;
    lower = beta < bc;
    if (lower) {
      hi = sc;
      fHi = Math.log(bc / beta);
      // Tangent of the concave ln b at s_c lies above it: its root is a lower bound of the solution.
      s = sc - fHi / (vc / bc);
      if (!(s > 0)) {
        // Far below: ln b ≈ −x²/(2s²) + ln(s³/(x²√(2π))) − s²/8, two fixed-point passes.
        const lnBeta = Math.log(beta);
        s = -x / Math.sqrt(-2 * lnBeta);
        for (let i = 0; i < 2; i++) {
          const r = -lnBeta - 0.9189385332046728 - 0.125 * s * s + 3 * Math.log(s) - 2 * Math.log(-x);
          if (!(r > 0)) break;
          s = -x / Math.sqrt(2 * r);
        }
        if (!(s > 0 && s < sc)) s = 0.5 * sc;
      }
    } else {
      lo = sc;
      fLo = Math.log(complementTarget / compC);
      // Tangent of the convex −ln(b_max − b) at s_c lies below it: its root is an upper bound.
      hi = sc - fLo / (vc / compC);
      if (!(hi > sc)) hi = Number.POSITIVE_INFINITY;
      // b_max − b ≈ 2·b_max·Φ(−s/2) (exact at x = 0) usually lands closer.
      const guess = -2 * approxInverseNormalLower(Math.min(0.5, complementTarget / (2 * bMax)));
      s = guess > lo && guess < hi ? guess : Number.isFinite(hi) ? 0.5 * (lo + hi) : 2 * sc;
    }
  } else {
    // At the money: b = 1 − 2Φ(−s/2) exactly, so the guess is already within the A&S error. That error
    // (≈4e-7 in s near p = ½) is larger than s itself for a tiny β: the search started at a negative s
    // and returned a negative vol (σ√T below ~2e-7). There b = s/√(2π)·(1 − s²/24 + …) is the guess.
    s = beta < 1e-3 ? SQRT_2PI * beta : -2 * approxInverseNormalLower(Math.min(0.5, complementTarget / 2));
  }
  for (let i = 0; i < MAX_ITERATIONS; i++) {
    const b = normalisedBlackOtm(x, s);
    if (b === beta) return s;
    const v = lastOtm.vega;
    const v2 = v * ((x * x) / (s * s * s) - 0.25 * s);
    let f: number;
    let newton: number;
    let halley: number;
    if (lower) {
      // F = ln(b/β): concave, Householder on it is nearly linear in the lower region.
      f = Math.log(b / beta);
      const f1 = v / b;
      const f2 = v2 / b - f1 * f1;
      newton = -f / f1;
      halley = newton / (1 + (newton * f2) / (2 * f1));
    } else {
      // G = ln((b_max − β)/(b_max − b)): convex.
      const comp = lastOtm.complement >= 0 ? lastOtm.complement : bMax - b;
      f = Math.log(complementTarget / comp);
      const g1 = v / comp;
      const g2 = v2 / comp + g1 * g1;
      newton = -f / g1;
      halley = newton / (1 + (newton * g2) / (2 * g1));
    }
    if (b > beta) {
      hi = s;
      fHi = f;
    } else {
      lo = s;
      fLo = f;
    }
    // Converged: the correction is below double-precision resolution of s, or a Halley step so small
    // that the cubic convergence leaves an error at double precision after it (~step³: a step of 1e-5·s
    // leaves ~1e-15·s; the round-trip tests hold prices to 1e-10 relative, measured 8.6e-13).
    if (Math.abs(newton) <= 4e-16 * s) return s;
    let next = s + halley;
    if (Math.abs(halley) <= 1e-5 * s && next > lo && next < hi) return next;
    if (!(next > lo && next < hi)) next = s + newton;
    if (!(next > lo && next < hi)) {
      // Out of the bracket (or no usable derivative): regula falsi on the objective, else bisection.
      next = lo - (fLo * (hi - lo)) / (fHi - fLo);
      if (!(next > lo && next < hi)) {
        if (hi === Number.POSITIVE_INFINITY) next = 2 * Math.max(s, lo);
        else if (lo === 0) next = 0.25 * hi;
        else next = Math.sqrt(lo * hi);
      }
    }
    if (Math.abs(next - s) <= 4e-16 * s) return next;
    s = next;
    // only a bounded bracket can have closed: with hi = ∞ (at the money, before the first iterate above
    // the solution) ∞ ≤ ∞ held and the search stopped after one step (ATM vols off by ~3e-11, or 1e-9)
    if (hi < Number.POSITIVE_INFINITY && hi - lo <= 4e-16 * hi) return s;
  }
  return CORE_NOT_CONVERGED;
}

/** Allocation-free, throw-free core of `blackImpliedVol`: the vol, or a negative CORE_* code. */
export function blackImpliedVolCore(isCall: boolean, F: number, K: number, T: number, p: number): number {
  if (
    !(F > 0 && F < Number.POSITIVE_INFINITY && K > 0 && K < Number.POSITIVE_INFINITY) ||
    !(T > 0 && T < Number.POSITIVE_INFINITY) ||
    !(p - p === 0)
  )
    return CORE_INVALID;
  const intrinsic = isCall ? Math.max(F - K, 0) : Math.max(K - F, 0);
  // A price within rounding of intrinsic has no time value rather than being below it.
  if (intrinsic - p > 1e-14 * intrinsic) return CORE_BELOW;
  if (p >= (isCall ? F : K)) return CORE_ABOVE;
  const timeValue = p - intrinsic;
  if (!(timeValue > 0)) return CORE_NO_TIME_VALUE;
  const x = -Math.abs(Math.log(F / K));
  // √F·√K: F·K overflows (or underflows) long before F or K does, and β came out 0 (a vol of 0 reported
  // as found) or ∞ (reported above the maximum)
  const beta = timeValue / (Math.sqrt(F) * Math.sqrt(K));
  if (!(beta < Math.exp(0.5 * x))) return CORE_ABOVE;
  const std = normalisedImpliedStdCore(beta, x);
  return std === CORE_NOT_CONVERGED ? CORE_NOT_CONVERGED : std / Math.sqrt(T);
}

/** Maps a negative core code to its reason. */
export function coreReason(code: number): ImpliedVolReason {
  if (code === CORE_BELOW) return 'below-intrinsic';
  if (code === CORE_NO_TIME_VALUE) return 'no-time-value';
  if (code === CORE_ABOVE) return 'above-maximum';
  if (code === CORE_NOT_CONVERGED) return 'not-converged';
  return 'invalid-input';
}

/**
 * Implied Black volatility from an undiscounted price on forward F: checks the no-arbitrage bounds
 * (intrinsic < price < F for calls, < K for puts) and solves on the out-of-the-money time value.
 */
export function blackImpliedVol(args: {
  isCall: boolean;
  forward: number;
  strike: number;
  timeYears: number;
  undiscountedPrice: number;
}): number {
  const { isCall, forward: F, strike: K, timeYears: T, undiscountedPrice: p } = args;
  const vol = blackImpliedVolCore(isCall, F, K, T, p);
  if (vol >= 0) return vol;
  const kind = isCall ? 'call' : 'put';
  const intrinsic = isCall ? Math.max(F - K, 0) : Math.max(K - F, 0);
  const max = isCall ? F : K;
  switch (coreReason(vol)) {
    case 'below-intrinsic':
      throw new ImpliedVolError(
        'below-intrinsic',
        `price ${p} is below the intrinsic value ${intrinsic} of the ${kind} (forward ${F}, strike ${K}): no volatility gives it`,
        { price: p, intrinsic },
      );
    case 'no-time-value':
      throw new ImpliedVolError(
        'no-time-value',
        `price ${p} equals the intrinsic value ${intrinsic}: no time value to imply a volatility from`,
        { price: p, intrinsic },
      );
    case 'above-maximum':
      throw new ImpliedVolError(
        'above-maximum',
        `price ${p} is at or above the ${kind}'s maximum ${max} (${isCall ? 'the forward' : 'the strike'}): no finite volatility gives it`,
        { price: p, maximum: max },
      );
    case 'not-converged':
      throw new ImpliedVolError(
        'not-converged',
        `implied vol of the ${kind} did not converge (forward ${F}, strike ${K}, timeYears ${T}, price ${p})`,
        { forward: F, strike: K, timeYears: T, price: p },
      );
    default: {
      // name the input that is wrong, not all four
      const bad: [string, number] = !(F > 0 && F < Number.POSITIVE_INFINITY)
        ? ['forward', F]
        : !(K > 0 && K < Number.POSITIVE_INFINITY)
          ? ['strike', K]
          : !(T > 0 && T < Number.POSITIVE_INFINITY)
            ? ['timeYears', T]
            : ['undiscountedPrice', p];
      throw new ImpliedVolError(
        'invalid-input',
        `${bad[0]} = ${bad[1]}: must be a ${bad[0] === 'undiscountedPrice' ? 'finite' : 'positive finite'} number (forward ${F}, strike ${K}, timeYears ${T}, price ${p})`,
        { field: bad[0], forward: F, strike: K, timeYears: T, price: p },
      );
    }
  }
}

interface IvCommon {
  type: OptionKind;
  strike: number;
}

/** Implied-vol inputs per model; rates and carry are continuously compounded decimals (default 0). */
export type ImpliedVolInput =
  | (IvCommon & {
      model: 'bs';
      spot: number;
      timeYears: number;
      rate?: number;
      carry?: number;
      /** Option price, USD. */
      price: number;
    })
  | (IvCommon & {
      model: 'black76';
      forward: number;
      timeYears: number;
      rate?: number;
      /** Option price, USD. */
      price: number;
    })
  | (IvCommon & {
      model: 'inverse';
      /** USD price of the coin used for marking (index; or the forward with carry = rate). */
      spot: number;
      timeYears: number;
      rate?: number;
      carry?: number;
      /** Option price in coin, as coin-settled venues quote it. */
      priceCoin: number;
    })
  | (IvCommon & {
      model: 'everlasting';
      spot: number;
      /** Funding period as an ACT/365 year fraction. */
      fundingPeriodYears: number;
      /** Option price, USD. */
      price: number;
    });

/**
 * The caller's own inputs checked by their names before a forward and an undiscounted price are made of
 * them: a negative or NaN spot, strike, time or price was reported as a bad `forward`, or as all four.
 */
function checkIvInputs(input: ImpliedVolInput): void {
  const positive: [string, number][] = [['strike', input.strike]];
  let price: [string, number];
  if (input.model === 'black76') positive.push(['forward', input.forward]);
  else positive.push(['spot', input.spot]);
  if (input.model === 'everlasting') positive.push(['fundingPeriodYears', input.fundingPeriodYears]);
  else positive.push(['timeYears', input.timeYears]);
  if (input.model === 'inverse') price = ['priceCoin', input.priceCoin];
  else price = ['price', input.price];
  for (const [name, v] of positive)
    if (!(v > 0 && v < Number.POSITIVE_INFINITY))
      throw new ImpliedVolError('invalid-input', `${name} = ${v}: must be a positive finite number`, {
        field: name,
        value: v,
      });
  if (!Number.isFinite(price[1]))
    throw new ImpliedVolError('invalid-input', `${price[0]} = ${price[1]}: must be a finite number`, {
      field: price[0],
      value: price[1],
    });
}

function finiteOr0(name: string, v: number | undefined): number {
  if (v === undefined) return 0;
  if (!Number.isFinite(v)) throw new PricingInputError(name, v, 'must be finite');
  return v;
}

/** Everlasting options: solve √(SK)/u·e^{−u|y|/2} = TV for u > 1, then σ = √(8/(T(u² − 1))). */
function everlastingImpliedVol(input: Extract<ImpliedVolInput, { model: 'everlasting' }>): number {
  const { spot: S, strike: K, fundingPeriodYears: T, price } = input;
  // each is a positive finite number (checkIvInputs); their product can still overflow a double
  if (!Number.isFinite(S * K * T))
    throw new ImpliedVolError(
      'invalid-input',
      `spot ${S} × strike ${K} × fundingPeriodYears ${T} overflows a double: out of the range priced`,
      { spot: S, strike: K, fundingPeriodYears: T },
    );
  const isCall = input.type === 'call';
  const payoff = isCall ? Math.max(S - K, 0) : Math.max(K - S, 0);
  const max = isCall ? S : K;
  if (price < payoff)
    throw new ImpliedVolError('below-intrinsic', `price ${price} is below the payoff ${payoff}`, {
      price,
      payoff,
    });
  if (price >= max)
    throw new ImpliedVolError('above-maximum', `price ${price} is at or above the maximum ${max}`, {
      price,
      max,
    });
  const tv = price - payoff;
  if (!(tv > 0))
    throw new ImpliedVolError('no-time-value', `price ${price} equals the payoff: no time value`, {
      price,
      payoff,
    });
  const a = 0.5 * Math.abs(Math.log(S / K));
  const lnC = Math.log(Math.sqrt(S * K) / tv);
  // f(u) = ln u + a·u − ln c is increasing and concave: Newton from the left converges monotonically.
  let u = 1;
  if (Math.log(u) + a * u - lnC >= 0)
    throw new ImpliedVolError('above-maximum', `price ${price} needs an infinite volatility`, { price });
  for (let i = 0; i < 200; i++) {
    const f = Math.log(u) + a * u - lnC;
    const step = -f / (1 / u + a);
    u += step;
    if (Math.abs(step) <= 1e-15 * u) break;
  }
  const vol = Math.sqrt(8 / (T * (u - 1) * (u + 1)));
  if (!(vol > 0 && Number.isFinite(vol)))
    throw new ImpliedVolError('not-converged', `everlasting implied vol failed for price ${price}`, {
      price,
    });
  return vol;
}

/**
 * Implied volatility (decimal) for any model. Throws `ImpliedVolError` with a `reason` when the price is
 * below intrinsic, has no time value, is at/above the maximum, or inputs are invalid.
 */
export function impliedVol(input: ImpliedVolInput): number {
  if (input.type !== 'call' && input.type !== 'put')
    throw new ImpliedVolError('invalid-input', `type ${String(input.type)} must be call or put`);
  const isCall = input.type === 'call';
  checkIvInputs(input);
  switch (input.model) {
    case 'bs': {
      const r = finiteOr0('rate', input.rate);
      const q = finiteOr0('carry', input.carry);
      const T = input.timeYears;
      return blackImpliedVol({
        isCall,
        forward: input.spot * Math.exp((r - q) * T),
        strike: input.strike,
        timeYears: T,
        undiscountedPrice: input.price * Math.exp(r * T),
      });
    }
    case 'black76': {
      const r = finiteOr0('rate', input.rate);
      return blackImpliedVol({
        isCall,
        forward: input.forward,
        strike: input.strike,
        timeYears: input.timeYears,
        undiscountedPrice: input.price * Math.exp(r * input.timeYears),
      });
    }
    case 'inverse': {
      const r = finiteOr0('rate', input.rate);
      const q = finiteOr0('carry', input.carry);
      const T = input.timeYears;
      return blackImpliedVol({
        isCall,
        forward: input.spot * Math.exp((r - q) * T),
        strike: input.strike,
        timeYears: T,
        undiscountedPrice: input.priceCoin * input.spot * Math.exp(r * T),
      });
    }
    case 'everlasting':
      return everlastingImpliedVol(input);
    default: {
      const never: never = input;
      throw new ImpliedVolError(
        'invalid-input',
        `unknown model ${String((never as { model: unknown }).model)}`,
      );
    }
  }
}
