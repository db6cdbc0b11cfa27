import { DAYS_PER_YEAR } from '@xhedge/core';
import { finiteGreeks, type OptionGreeks, type OptionKind, PricingInputError } from './bsm.ts';

/**
 * Inputs of an everlasting (perpetual) option (White & Bankman-Fried, "Everlasting Options", 2021): no
 * expiry; the holder pays funding (mark − payoff) per funding period, continuously. Priced under
 * Black-Scholes with r = 0, which is the same as a Black-Scholes option whose expiry is exponentially
 * distributed with mean `fundingPeriodYears`.
 */
export interface EverlastingInput {
  type: OptionKind;
  /** Price of the underlying (index or perp mark), USD. */
  spot: number;
  strike: number;
  /** Implied volatility, decimal (0.65). */
  vol: number;
  /** Funding period T as an ACT/365 year fraction (1 day = 1/365). */
  fundingPeriodYears: number;
}

/**
 * Price and Greeks per unit of underlying. `thetaPerDay` is the funding the holder pays per calendar day
 * (−(mark − payoff)/T, the everlasting equivalent of time decay); `rhoPer1Pct` is 0 (r = 0 model).
 */
export interface EverlastingGreeks extends OptionGreeks {
  /** Payoff if exercised now: max(S − K, 0) or max(K − S, 0). */
  payoff: number;
  /** Mark − payoff: the same for calls and puts at one strike. */
  timeValue: number;
  /** Funding rate a long pays: (mark − payoff)/T with T in years, USD per year (paid continuously). */
  fundingUsdPerYear: number;
  /** The same per calendar day: (mark − payoff)/T with T in days, USD. */
  fundingUsdPerDay: number;
}

function check(input: EverlastingInput): void {
  if (input.type !== 'call' && input.type !== 'put')
    throw new PricingInputError('type', input.type, 'must be call or put');
  if (!(input.spot > 0 && input.spot < Number.POSITIVE_INFINITY))
    throw new PricingInputError('spot', input.spot, 'must be a positive finite number');
  if (!(input.strike > 0 && input.strike < Number.POSITIVE_INFINITY))
    throw new PricingInputError('strike', input.strike, 'must be a positive finite number');
  if (!(input.vol > 0 && input.vol < Number.POSITIVE_INFINITY))
    throw new PricingInputError('vol', input.vol, 'must be a positive finite decimal (0.65, not 65)');
  if (!(input.fundingPeriodYears > 0 && input.fundingPeriodYears < Number.POSITIVE_INFINITY))
    throw new PricingInputError(
      'fundingPeriodYears',
      input.fundingPeriodYears,
      'must be > 0 (1 day = 1/365)',
    );
}

/**
 * Closed form: with y = ln(S/K) and u = √(1 + 8/(σ²T)), the time value (same for calls and puts) is
 * TV = √(SK)/u · e^{−u|y|/2}, i.e. (K/u)(S/K)^{(1∓u)/2}; price = payoff + TV.
 */
export function everlastingOption(input: EverlastingInput): EverlastingGreeks {
  check(input);
  const { spot: S, strike: K, vol: v, fundingPeriodYears: T } = input;
  const isCall = input.type === 'call';
  const y = Math.log(S / K);
  const u = Math.sqrt(1 + 8 / (v * v * T));
  const tv = (Math.sqrt(S * K) / u) * Math.exp(-0.5 * u * Math.abs(y));
  // TV ∝ S^p with p = (1 − u)/2 above the strike and (1 + u)/2 below it.
  const p = S >= K ? 0.5 * (1 - u) : 0.5 * (1 + u);
  const payoff = isCall ? Math.max(S - K, 0) : Math.max(K - S, 0);
  // at S = K the same side as `p` (above): the price is smooth there, and its delta one value
  const payoffDelta = isCall ? (S >= K ? 1 : 0) : S < K ? -1 : 0;
  const tvDelta = (p * tv) / S;
  const gamma = (p * (p - 1) * tv) / (S * S);
  // dTV/du = TV·(−1/u − |y|/2); du/dσ = −8/(u σ³ T)
  const dTvDu = tv * (-1 / u - 0.5 * Math.abs(y));
  const duDv = -8 / (u * v * v * v * T);
  const vega = dTvDu * duDv;
  // d²TV/du² = TV·((1/u + |y|/2)² + 1/u²); d²u/dσ² = 24/(uσ⁴T) − (du/dσ)²/u
  const d2TvDu2 = tv * ((1 / u + 0.5 * Math.abs(y)) ** 2 + 1 / (u * u));
  const d2uDv2 = 24 / (u * v * v * v * v * T) - (duDv * duDv) / u;
  const volga = d2TvDu2 * duDv * duDv + dTvDu * d2uDv2;
  // vanna = d(tvDelta)/dσ = d/dσ (p·TV/S), p depends on u too (dp/du = ∓1/2)
  const dpDu = S >= K ? -0.5 : 0.5;
  const vanna = ((dpDu * tv + p * dTvDu) * duDv) / S;
  const fundingPerYear = tv / T;
  return finiteGreeks(
    {
      price: payoff + tv,
      delta: payoffDelta + tvDelta,
      gamma,
      vegaPerVolPoint: vega / 100,
      thetaPerDay: -fundingPerYear / DAYS_PER_YEAR,
      rhoPer1Pct: 0,
      vannaPerVolPoint: vanna / 100,
      volgaPerVolPoint: volga / 10_000,
      payoff,
      timeValue: tv,
      fundingUsdPerYear: fundingPerYear,
      fundingUsdPerDay: fundingPerYear / DAYS_PER_YEAR,
    },
    `spot ${S}, strike ${K}, vol ${v}, fundingPeriodYears ${T}`,
  );
}
