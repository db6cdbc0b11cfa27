import type { InstrumentMeta } from '@xhedge/core';
import { MS_PER_DAY, NumericError, yearFraction } from '@xhedge/core';
import { inverseOption } from '@xhedge/pricing';

/**
 * A volatility smile or surface the engine can read an option's IV from, e.g. `VolSurface` of
 * @xhedge/pricing (SVI slices per expiry). May throw where it has no answer; the engine then falls back
 * to the flat vol and says so.
 */
export interface VolSmile {
  /** Implied vol (decimal) at a strike (USD) and expiry instant (ms). */
  vol(strikeUsd: number, expiryMs: number): number;
}

/** Market inputs of one underlying: spot, flat vol, rate, and optionally a smile. */
export interface UnderlyingMarket {
  /** Spot (index) price, USD. */
  spotUsd: number;
  /** Flat implied vol, decimal (0.6), used where no instrument IV is known. */
  volDecimal: number;
  /** Continuously compounded rate, decimal. Default 0. */
  rateDecimal?: number;
  /** Instant the inputs describe. */
  asOfMs: number;
  /** Per-instrument IV overrides, decimal. */
  ivByInstrument?: Readonly<Record<string, number>>;
  /**
   * Smile or surface for options no venue publishes an IV for. Order of precedence per option:
   * `ivByInstrument`, then the mean of the venues' mark IVs, then this, then `volDecimal`.
   */
  volSurface?: VolSmile;
  /**
   * Settlement (delivery) prices of expiries already past, USD, by expiry date `YYYYMMDD` (as in the
   * instrument ids). An expired option is worth its payoff at this price, and an expired future's P&L
   * is fixed at it, whatever spot does after; without one the engine takes spot instead and says so in
   * the snapshot's warnings.
   */
  settlementPricesUsd?: Readonly<Record<string, number>>;
}

/** Price and Greeks of one unit (1 underlying unit) of an instrument, USD numéraire. */
export interface UnitGreeks {
  priceUsd: number;
  delta: number;
  gamma: number;
  vegaPerVolPoint: number;
  thetaPerDay: number;
  rhoPer1Pct: number;
  vannaPerVolPoint: number;
  /**
   * Options: coin-numéraire net delta per unit were the option coin-settled (pricing's `inverseOption`:
   * BS delta − price in coin); equals `delta` for everything else.
   */
  netDeltaCoinInverse: number;
  /**
   * Expired options: the fixed amount of coin one unit pays were it coin-settled (payoff at the
   * settlement price ÷ settlement price). Held coin moves with spot, so a coin-settled expired option's
   * USD delta is this amount, while a USD-settled one has none. 0 for everything live, and for expired
   * futures: what they pay depends on each position's entry, so the engine works it out per position.
   */
  settledCoinPerUnit: number;
}

/** What pricing needs from an instrument. */
export type PricedInstrument = Pick<InstrumentMeta, 'kind' | 'strike' | 'expiryMs' | 'optionType'>;

/**
 * Per-unit Greeks of an instrument at a spot, vol and rate (one consistent model for every venue):
 * options BSM on spot with rate r; dated futures e^{rT} (the forward's sensitivity to spot); perps and
 * spot 1. Those are per unit of a linear position: a live coin-settled (inverse) perp or future is delta
 * by the coin its P&L is in, which depends on each position's face and entry, so the engine works that
 * out per position too (book's `addPosition`).
 *
 * A dated future at or past its expiry has settled in cash: its P&L was fixed at the settlement price,
 * so it has no Greeks at all (all 0: with delta e^{r·0} = 1 it would count as live delta at spot for as
 * long as a venue still lists it). A linear (USD-margined) one's settled P&L is USD: no delta. An
 * inverse (coin-margined) one's is a coin amount that depends on each position's entry, so the engine
 * works it out per position and counts it as delta like a coin balance, the convention of coin-settled
 * options below.
 *
 * An expired option is cash-settled: its payoff was fixed at the settlement price
 * (`settlementPriceUsd`; spot when not known yet), so it has no Greeks at all. `priceUsd` is that
 * payoff in USD, `delta` 0 (right for a USD-settled option; a coin-settled one pays a fixed coin amount,
 * `settledCoinPerUnit`, which the engine counts as delta like a coin balance). The id format has no
 * physical-settlement flag: crypto options venues settle in cash, and physical settlement (becoming a
 * position in the underlying) is not modelled.
 */
export function unitGreeks(
  inst: PricedInstrument,
  spotUsd: number,
  volDecimal: number,
  rateDecimal: number,
  nowMs: number,
  settlementPriceUsd?: number,
): UnitGreeks {
  // A NaN or infinite rate gave a dated future a NaN or infinite delta, silently (e^{NaN·T}); refused
  // here for every kind, as the engine's setMarket refuses it. r = 0 is exact: no division by r anywhere.
  if (!Number.isFinite(rateDecimal))
    throw new NumericError(`rate (rateDecimal) of a ${inst.kind}`, rateDecimal);
  if (inst.kind === 'option') {
    const K = inst.strike ?? 0;
    const T = yearFraction(nowMs, inst.expiryMs ?? nowMs);
    const call = inst.optionType === 'call';
    if (T <= 0) {
      const settleUsd = settlementPriceUsd ?? spotUsd;
      if (!(settleUsd > 0) || !Number.isFinite(settleUsd))
        throw new NumericError('settlement price of an expired option', settleUsd);
      const payoffUsd = Math.max(call ? settleUsd - K : K - settleUsd, 0);
      // Coin-settled, the payoff is coin already: delta − price in coin = coin − coin = 0.
      return linearGreeks(payoffUsd, 0, 0, payoffUsd / settleUsd);
    }
    // USD Greeks of a coin-settled option equal the linear one's; inverseOption adds the coin net delta.
    const g = inverseOption({
      type: call ? 'call' : 'put',
      spot: spotUsd,
      strike: K,
      timeYears: T,
      vol: volDecimal,
      rate: rateDecimal,
    });
    return {
      priceUsd: g.price,
      delta: g.delta,
      gamma: g.gamma,
      vegaPerVolPoint: g.vegaPerVolPoint,
      thetaPerDay: g.thetaPerDay,
      rhoPer1Pct: g.rhoPer1Pct,
      vannaPerVolPoint: g.vannaPerVolPoint,
      netDeltaCoinInverse: g.netDeltaCoin,
      settledCoinPerUnit: 0,
    };
  }
  if (inst.kind === 'future') {
    // A future without an expiry cannot be judged expired: it stays a forward at T = 0 (delta 1).
    if (inst.expiryMs !== undefined && inst.expiryMs <= nowMs) return linearGreeks(0, 0, 0);
    const T = Math.max(yearFraction(nowMs, inst.expiryMs ?? nowMs), 0);
    // A finite rate can still overflow the forward factor (r = 1000 over a year): refused, not Infinity.
    const delta = Math.exp(rateDecimal * T);
    if (!Number.isFinite(delta))
      throw new NumericError(`delta e^(rT) of a future (rate ${rateDecimal}, ${T} years)`, delta);
    return linearGreeks(0, delta, delta);
  }
  return linearGreeks(0, 1, 1);
}

/**
 * Per-unit Greeks of what moves linearly with spot, or not at all (perps, spot, dated futures, anything
 * expired): no gamma, vega, theta, rho or vanna.
 */
function linearGreeks(
  priceUsd: number,
  delta: number,
  netDeltaCoinInverse: number,
  settledCoinPerUnit = 0,
): UnitGreeks {
  return {
    priceUsd,
    delta,
    gamma: 0,
    vegaPerVolPoint: 0,
    thetaPerDay: 0,
    rhoPer1Pct: 0,
    vannaPerVolPoint: 0,
    netDeltaCoinInverse,
    settledCoinPerUnit,
  };
}

/** Default tenor buckets for vega, in days: `0-7d`, `7-30d`, `30-90d`, `90-180d`, `180d+`. */
export const DEFAULT_EXPIRY_BUCKETS_DAYS: readonly number[] = [7, 30, 90, 180];

/** Label of the tenor bucket an expiry falls into. */
export function expiryBucketLabel(expiryMs: number, nowMs: number, bucketsDays: readonly number[]): string {
  const days = (expiryMs - nowMs) / MS_PER_DAY;
  let lo = 0;
  for (const hi of bucketsDays) {
    if (days < hi) return `${lo}-${hi}d`;
    lo = hi;
  }
  return `${lo}d+`;
}
