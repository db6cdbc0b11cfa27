import { type BsmInput, bsm, finiteGreeks, type OptionGreeks } from './bsm.ts';

/**
 * Inputs of a coin-settled (inverse) option, as Deribit-style venues list them: premium and payoff in the
 * coin, payoff max(S_T − K, 0)/S_T for a call. `spot` is the USD price of the coin used for marking (the
 * index, or the forward with `carry = rate` for Black-76 marking).
 */
export type InverseInput = BsmInput;

/** Greeks of one inverse option in coin numéraire (what a coin-margined account carries). */
export interface InverseCoinGreeks {
  /** Option price in coin = USD price / spot. */
  price: number;
  /** Coin-numéraire net delta in underlying units: BS delta − price in coin (= spot·∂priceCoin/∂spot). */
  netDelta: number;
  /** ∂netDelta/∂spot, per 1 USD move. */
  gamma: number;
  /** Coin per 0.01 vol. */
  vegaPerVolPoint: number;
  /** Coin per calendar day. */
  thetaPerDay: number;
  /** Coin per 0.01 rate. */
  rhoPer1Pct: number;
}

/**
 * USD-numéraire price and Greeks (identical to BSM: the USD value of a coin-settled option equals the
 * linear one), plus `priceCoin`, `netDeltaCoin` and the full coin-numéraire Greeks in `coin`.
 */
export interface InverseGreeks extends OptionGreeks {
  priceCoin: number;
  netDeltaCoin: number;
  coin: InverseCoinGreeks;
}

/** Price and Greeks of a coin-settled option in USD and in coin. */
export function inverseOption(input: InverseInput): InverseGreeks {
  const usd = bsm(input);
  const S = input.spot;
  const priceCoin = usd.price / S;
  const netDelta = usd.delta - priceCoin;
  const out: InverseGreeks = {
    ...usd,
    priceCoin,
    netDeltaCoin: netDelta,
    coin: {
      price: priceCoin,
      netDelta,
      // d/dS (delta − C/S) = gamma − delta/S + C/S²
      gamma: usd.gamma - netDelta / S,
      vegaPerVolPoint: usd.vegaPerVolPoint / S,
      thetaPerDay: usd.thetaPerDay / S,
      rhoPer1Pct: usd.rhoPer1Pct / S,
    },
  };
  // in coin, a price over a spot near 0 can still overflow (a put at spot 1e-300): refused, never Infinity
  const inputs = `spot ${S}, strike ${input.strike}, timeYears ${input.timeYears}, vol ${input.vol}`;
  finiteGreeks(out, inputs);
  finiteGreeks(out.coin, inputs);
  return out;
}
