import { DAYS_PER_YEAR, XhedgeError, yearFraction } from '@xhedge/core';
import { normCdf, normPdf } from './normal.ts';
import { normalisedBlackOtm } from './normalised-black.ts';

export type OptionKind = 'call' | 'put';

/** Inputs of Black-Scholes-Merton on spot. Rates and carry are continuously compounded decimals. */
export interface BsmInput {
  type: OptionKind;
  /** Spot price of the underlying, USD. */
  spot: number;
  strike: number;
  /** ACT/365 year fraction to expiry (> 0; use the payoff at expiry). */
  timeYears: number;
  /** Implied volatility, decimal (0.65). */
  vol: number;
  /** Risk-free rate, decimal. Default 0. */
  rate?: number;
  /** Carry / dividend / borrow yield q, decimal. Default 0. */
  carry?: number;
}

/**
 * Price and Greeks of one unit of the option (multiply by the signed position size).
 * Units: `delta` per unit of underlying; `gamma` per 1 USD move; `vegaPerVolPoint` USD per 0.01 vol;
 * `thetaPerDay` USD per calendar day; `rhoPer1Pct` USD per 0.01 rate; `vannaPerVolPoint` delta change per
 * 0.01 vol; `volgaPerVolPoint` vega-per-vol-point change per 0.01 vol.
 */
export interface OptionGreeks {
  price: number;
  delta: number;
  gamma: number;
  vegaPerVolPoint: number;
  thetaPerDay: number;
  rhoPer1Pct: number;
  vannaPerVolPoint: number;
  volgaPerVolPoint: number;
}

export class PricingInputError extends XhedgeError {
  override name = 'PricingInputError';
  constructor(field: string, value: unknown, expected: string) {
    super('PRICING_INPUT', `${field} = ${String(value)}: ${expected}`, {
      details: { field, value, expected },
    });
  }
}

/** Smallest vol·√T priced: far below any real option, far above where d1 and the Greeks lose their digits. */
const MIN_VOL_SQRT_T = 1e-150;

function check(input: BsmInput): void {
  if (input.type !== 'call' && input.type !== 'put')
    throw new PricingInputError('type', input.type, 'must be call or put');
  if (!(input.spot > 0 && Number.isFinite(input.spot)))
    throw new PricingInputError('spot', input.spot, 'must be a positive finite number');
  if (!(input.strike > 0 && Number.isFinite(input.strike)))
    throw new PricingInputError('strike', input.strike, 'must be a positive finite number');
  if (!(input.timeYears > 0 && Number.isFinite(input.timeYears)))
    throw new PricingInputError(
      'timeYears',
      input.timeYears,
      'must be > 0 (expired options are worth their payoff)',
    );
  if (!(input.vol > 0 && Number.isFinite(input.vol)))
    throw new PricingInputError('vol', input.vol, 'must be a positive finite decimal (0.65, not 65)');
  // vol·√T underflowing to 0 (a subnormal vol) made d1 = 0/0 and the Greeks NaN
  if (!(input.vol * Math.sqrt(input.timeYears) > MIN_VOL_SQRT_T))
    throw new PricingInputError(
      'vol',
      input.vol,
      `with timeYears ${input.timeYears}, vol·√timeYears is below ${MIN_VOL_SQRT_T}: too small to price`,
    );
  if (input.rate !== undefined && !Number.isFinite(input.rate))
    throw new PricingInputError('rate', input.rate, 'must be finite');
  if (input.carry !== undefined && !Number.isFinite(input.carry))
    throw new PricingInputError('carry', input.carry, 'must be finite');
}

/** Black-Scholes-Merton price and Greeks on spot with rate r and carry (dividend) yield q. */
export function bsm(input: BsmInput): OptionGreeks {
  check(input);
  const { spot: S, strike: K, timeYears: T, vol: v } = input;
  const r = input.rate ?? 0;
  const q = input.carry ?? 0;
  const sqrtT = Math.sqrt(T);
  const vSqrtT = v * sqrtT;
  const d1 = (Math.log(S / K) + (r - q + 0.5 * v * v) * T) / vSqrtT;
  const d2 = d1 - vSqrtT;
  const dfR = Math.exp(-r * T);
  const dfQ = Math.exp(-q * T);
  const pdf1 = normPdf(d1);
  const gamma = (dfQ * pdf1) / (S * vSqrtT);
  const vega = S * dfQ * pdf1 * sqrtT; // per unit vol
  const vanna = (-dfQ * pdf1 * d2) / v; // d delta / d vol
  const volga = (vega * d1 * d2) / v; // d vega / d vol
  let price: number;
  let delta: number;
  let theta: number; // per year
  let rho: number; // per unit rate
  // The price goes through normalised Black (intrinsic + out-of-the-money part): S·N(d1) − K·N(d2) loses
  // up to half the digits far from the money, which would break implied-vol round trips.
  const forward = (S * dfQ) / dfR;
  const otm = Math.sqrt(forward * K) * normalisedBlackOtm(-Math.abs(Math.log(forward / K)), vSqrtT);
  if (input.type === 'call') {
    const n1 = normCdf(d1);
    const n2 = normCdf(d2);
    price = dfR * (Math.max(forward - K, 0) + otm);
    delta = dfQ * n1;
    theta = (-S * dfQ * pdf1 * v) / (2 * sqrtT) - r * K * dfR * n2 + q * S * dfQ * n1;
    rho = K * T * dfR * n2;
  } else {
    const n1 = normCdf(-d1);
    const n2 = normCdf(-d2);
    price = dfR * (Math.max(K - forward, 0) + otm);
    delta = -dfQ * n1;
    theta = (-S * dfQ * pdf1 * v) / (2 * sqrtT) + r * K * dfR * n2 - q * S * dfQ * n1;
    rho = -K * T * dfR * n2;
  }
  return finiteGreeks(
    {
      price,
      delta,
      gamma,
      vegaPerVolPoint: vega / 100,
      thetaPerDay: theta / DAYS_PER_YEAR,
      rhoPer1Pct: rho / 100,
      vannaPerVolPoint: vanna / 100,
      volgaPerVolPoint: volga / 10_000,
    },
    `spot ${S}, strike ${K}, timeYears ${T}, vol ${v}, rate ${r}, carry ${q}`,
  );
}

/**
 * `g` when every Greek is a finite number; else a `PricingInputError`: each input can be finite and
 * their combination still overflow a double (a rate of 1e308, a spot of 1e308), and a NaN or an
 * infinity must not leave the pricer as a price.
 */
export function finiteGreeks<G extends object>(g: G, inputs: string): G {
  for (const [k, v] of Object.entries(g))
    if (typeof v === 'number' && !Number.isFinite(v))
      throw new PricingInputError(
        'inputs',
        inputs,
        `out of the range a double can price: ${k} came out ${v}`,
      );
  return g;
}

/**
 * Black-76 on a forward F with discount rate r: BSM with spot = F and carry = rate, except rho, which is
 * taken with the forward held fixed (∂V/∂r = −T·V; BSM's rho would move the implied forward too).
 * Delta and gamma are per unit of the forward.
 */
export function black76(input: Omit<BsmInput, 'spot' | 'carry'> & { forward: number }): OptionGreeks {
  const { forward, ...rest } = input;
  // checked here so a bad forward is named as the forward (bsm would call it the spot)
  if (!(forward > 0 && Number.isFinite(forward)))
    throw new PricingInputError('forward', forward, 'must be a positive finite number');
  const g = bsm({ ...rest, spot: forward, carry: input.rate ?? 0 });
  return { ...g, rhoPer1Pct: (-input.timeYears * g.price) / 100 };
}

/**
 * ACT/365 year fraction from `nowMs` to `expiryMs` (UTC instants, calendar time: crypto trades 24/7).
 * Throws `PricingInputError` when the option has expired (use its payoff instead).
 */
export function timeToExpiryYears(expiryMs: number, nowMs: number): number {
  if (!Number.isFinite(expiryMs) || !Number.isFinite(nowMs))
    throw new PricingInputError(
      'expiryMs/nowMs',
      `${expiryMs}/${nowMs}`,
      'must be finite UTC instants in ms',
    );
  const t = yearFraction(nowMs, expiryMs);
  if (!(t > 0))
    throw new PricingInputError('expiryMs', expiryMs, `must be after now (${new Date(nowMs).toISOString()})`);
  return t;
}
