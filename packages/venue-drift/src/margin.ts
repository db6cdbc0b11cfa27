import type { DriftPerpMarket, DriftPerpPosition, DriftSpotMarket, DriftUser } from './decode.ts';
import {
  BASE_PRECISION,
  type DriftContractType,
  MARGIN_PRECISION,
  MAX_POSITIVE_UPNL_FOR_INITIAL_MARGIN,
  MAX_PREDICTION_MARKET_PRICE,
  OPEN_ORDER_MARGIN_REQUIREMENT,
  POSITION_FLAG,
  PRICE_PRECISION,
  QUOTE_PRECISION,
  QUOTE_SPOT_MARKET_INDEX,
  SPOT_IMF_PRECISION,
  SPOT_WEIGHT_PRECISION,
  USER_STATUS,
} from './layout.ts';

/** Cross-margin free collateral for a risk-increasing perp order ({@link driftFreeCollateral}). */
export interface DriftFreeCollateral {
  /** Cross-margin collateral for initial margin, QUOTE_PRECISION (may be negative). */
  totalCollateralQuote: bigint;
  /** Cross-margin initial margin requirement, QUOTE_PRECISION. */
  initialMarginQuote: bigint;
  /** max(0, collateral − requirement), QUOTE_PRECISION; 0 when `zeroReason` is set. */
  freeQuote: bigint;
  /** Why free collateral is 0 whatever the sums say. */
  zeroReason?: string;
}

export interface DriftMarginInput {
  user: DriftUser;
  /** The PerpMarket of every perp position in use. */
  perpMarkets: ReadonlyMap<number, DriftPerpMarket>;
  /** Spot market 0, the quote market the program values at the quote price. */
  quoteSpotMarket: DriftSpotMarket;
}

/**
 * Free collateral for a risk-increasing perp order, as protocol-v2 (v2.162.0) computes it in
 * `calculate_margin_requirement_and_total_collateral_and_liability_info` under the margin type
 * `place_perp_order` checks such an order with (`meets_place_order_margin_requirement`: cross margin at
 * `Initial`, every isolated position at `Maintenance`), in integers rounded as the program rounds
 * them (QUOTE_PRECISION, 1e-6 USDC):
 *
 * - Collateral: the deposit in spot market 0 (USDC, the program's quote market) at its cumulative
 *   deposit interest; a borrow there adds its amount (borrow interest, rounded up) to the requirement.
 * - Each cross perp position in use adds its unrealized P&L (base × oracle + `quote_asset_amount` +
 *   funding owed since its last funding settlement; the expiry price once the market is in settlement):
 *   a loss in full; a gain at the market's `unrealized_pnl_initial_asset_weight`, scaled down by the
 *   users' net P&L imbalance (`unrealized_pnl_max_imbalance`) and by the `unrealized_pnl_imf_factor`
 *   size discount, then capped at MAX_POSITIVE_UPNL_FOR_INITIAL_MARGIN (100 USDC per position).
 * - Each cross perp position requires its worst-case liability (the larger of base + open bids and
 *   base + open asks, at the oracle price; a prediction market's short at 1 − price) × the initial margin
 *   ratio / MARGIN_PRECISION, where the ratio is the highest of the market's `margin_ratio_initial` with
 *   the `imf_factor` size premium, the user's `max_margin_ratio` and the position's own; 0 in settlement.
 *   Plus 0.01 USDC per open order (OPEN_ORDER_MARGIN_REQUIREMENT).
 *
 * Left out, each on the side that never overstates free collateral:
 * - High-leverage mode (`margin_mode`): its ratios are never above the ordinary ones used here.
 * - Deposits in other spot markets (their oracle prices and asset weights are not read): counted 0.
 *   A borrow or open orders there (a liability, not valued here) make the result 0.
 * - Isolated positions' collateral and P&L stay out of cross collateral, as in the program. Each must
 *   meet its maintenance requirement for a cross order to pass: checked with its gains counted 0 (the
 *   program counts them at the maintenance weight), and a failure makes the result 0.
 * - A user the program refuses risk-increasing orders for (being liquidated, bankrupt, reduce-only, an
 *   isolated position being liquidated or bankrupt), or a position whose market has no positive oracle
 *   price, gives 0.
 *
 * Not modelled, and able to move the result either way by a little: the strict quote price (the program
 * values USDC at the lower of its oracle price and 5-minute TWAP for collateral, the higher for
 * liabilities; here at 1, the unit the balance is in, so only that spread is missed), and the live perp
 * oracle price (the market's last stored oracle price is used, the price `fetchMarks` reports).
 */
export function driftFreeCollateral(input: DriftMarginInput): DriftFreeCollateral {
  const { user, perpMarkets, quoteSpotMarket: quote } = input;
  if (quote.marketIndex !== QUOTE_SPOT_MARKET_INDEX)
    throw new RangeError(
      `free collateral needs spot market ${QUOTE_SPOT_MARKET_INDEX} (the quote market), got ${quote.marketIndex}`,
    );
  let collateral = 0n;
  let requirement = 0n;
  const result = (zeroReason?: string): DriftFreeCollateral => {
    const free = collateral > requirement ? collateral - requirement : 0n;
    return {
      totalCollateralQuote: collateral,
      initialMarginQuote: requirement,
      freeQuote: zeroReason ? 0n : free,
      ...(zeroReason ? { zeroReason } : {}),
    };
  };

  if (user.status & (USER_STATUS.beingLiquidated | USER_STATUS.bankrupt))
    return result('the account is being liquidated or bankrupt: the program refuses its orders');
  if (user.status & USER_STATUS.reduceOnly)
    return result('the account is reduce-only: the program refuses risk-increasing orders');

  for (const s of user.spotPositions) {
    if (s.marketIndex === QUOTE_SPOT_MARKET_INDEX) {
      const value = quoteTokenValue(s.scaledBalance, quote, s.balanceType);
      if (s.balanceType === 'deposit') collateral += value;
      else requirement += value;
    } else if (s.balanceType === 'borrow' || s.openOrders !== 0 || s.openBids !== 0n || s.openAsks !== 0n) {
      return result(
        `spot market ${s.marketIndex} holds a borrow or open orders, a liability not valued here`,
      );
    }
    // a deposit in another spot market: counted 0 (its price and asset weight are not read)
  }

  for (const p of user.perpPositions) {
    if (p.positionFlag & (POSITION_FLAG.beingLiquidated | POSITION_FLAG.bankrupt))
      return result(`the isolated position in perp market ${p.marketIndex} is being liquidated or bankrupt`);
    const pm = perpMarkets.get(p.marketIndex);
    if (!pm) throw new RangeError(`perp market ${p.marketIndex} of a position in use was not given`);
    if (pm.lastOraclePrice <= 0n)
      return result(
        `perp market ${p.marketIndex} has no positive oracle price: its position cannot be valued`,
      );
    const settled = pm.status === 'settlement';
    const pnl = positionPnlQuote(p, pm, settled ? pm.expiryPrice : pm.lastOraclePrice);
    const liability = worstCaseLiabilityQuote(p, pm.lastOraclePrice, pm.contractType);
    const openOrders = BigInt(p.openOrders) * OPEN_ORDER_MARGIN_REQUIREMENT;

    if (p.positionFlag & POSITION_FLAG.isolated) {
      if (pm.quoteSpotMarketIndex !== quote.marketIndex)
        return result(
          `the isolated position in perp market ${p.marketIndex} is collateralised in another spot market`,
        );
      const ratio = settled
        ? 0n
        : sizePremiumMarginRatio(BigInt(pm.marginRatioMaintenance), pm.imfFactor, liability.baseAbs);
      const isoRequirement = (liability.valueQuote * ratio) / BigInt(MARGIN_PRECISION) + openOrders;
      const isoCollateral =
        quoteTokenValue(p.isolatedPositionScaledBalance, quote, 'deposit') + (pnl < 0n ? pnl : 0n);
      if (isoCollateral < isoRequirement)
        return result(
          `the isolated position in perp market ${p.marketIndex} is below its maintenance margin: the program refuses risk-increasing orders`,
        );
      continue;
    }

    const ratio = settled
      ? 0n
      : maxBig(
          sizePremiumMarginRatio(BigInt(pm.marginRatioInitial), pm.imfFactor, liability.baseAbs),
          maxBig(BigInt(user.maxMarginRatio), BigInt(p.maxMarginRatio)),
        );
    requirement += (liability.valueQuote * ratio) / BigInt(MARGIN_PRECISION) + openOrders;
    collateral += initialWeightedPnlQuote(pnl, pm);
  }
  return result();
}

/**
 * Funding owed to (+) or by (−) a position since its last funding settlement, QUOTE_PRECISION:
 * protocol-v2 `calculate_funding_payment` (the market's cumulative rate, long side for a long, short
 * side otherwise, less the position's; longs pay a rising rate). Truncated toward zero, as the program
 * divides.
 */
export function accruedFundingQuote(p: DriftPerpPosition, pm: DriftPerpMarket): bigint {
  const cumulative = p.baseAssetAmount > 0n ? pm.cumulativeFundingRateLong : pm.cumulativeFundingRateShort;
  const rateDelta = cumulative - p.lastCumulativeFundingRate;
  if (rateDelta === 0n || p.baseAssetAmount === 0n) return 0n;
  const magnitude = (abs(rateDelta) * abs(p.baseAssetAmount)) / (PRICE_PRECISION * 1_000n);
  const sign = (p.baseAssetAmount > 0n ? -1n : 1n) * (rateDelta > 0n ? 1n : -1n);
  return (magnitude * sign) / 1_000n;
}

/** base × price (truncated) + quote_asset_amount + funding owed, QUOTE_PRECISION. */
function positionPnlQuote(p: DriftPerpPosition, pm: DriftPerpMarket, price: bigint): bigint {
  if (p.baseAssetAmount === 0n) return p.quoteAssetAmount;
  const px = price > 0n ? price : 0n;
  return (p.baseAssetAmount * px) / BASE_PRECISION + p.quoteAssetAmount + accruedFundingQuote(p, pm);
}

/**
 * `PerpPosition::worst_case_liability_value`: the larger liability of all open bids filling or all
 * open asks filling, at the oracle price (a prediction market's short owes 1 − price a unit).
 */
function worstCaseLiabilityQuote(
  p: DriftPerpPosition,
  oraclePrice: bigint,
  contractType: DriftContractType,
): { baseAbs: bigint; valueQuote: bigint } {
  const value = (base: bigint): bigint => {
    const price =
      contractType === 'prediction' && base < 0n ? MAX_PREDICTION_MARKET_PRICE - oraclePrice : oraclePrice;
    return (abs(base) * (price > 0n ? price : 0n)) / BASE_PRECISION;
  };
  const bids = p.baseAssetAmount + p.openBids;
  const asks = p.baseAssetAmount + p.openAsks;
  const [vb, va] = [value(bids), value(asks)];
  return va >= vb ? { baseAbs: abs(asks), valueQuote: va } : { baseAbs: abs(bids), valueQuote: vb };
}

/**
 * `calculate_size_premium_liability_weight` bounded, as `PerpMarket::get_margin_ratio` applies it: the
 * ratio, or 0.8 × ratio + √(size × 10 + 1) × imf / 1e7 when that is larger (size BASE_PRECISION).
 */
function sizePremiumMarginRatio(ratio: bigint, imfFactor: number, sizeBase: bigint): bigint {
  if (imfFactor === 0) return ratio;
  const premium =
    ratio -
    ratio / 5n +
    (isqrt(sizeBase * 10n + 1n) * BigInt(imfFactor)) /
      ((100_000n * SPOT_IMF_PRECISION) / BigInt(MARGIN_PRECISION));
  return maxBig(premium, ratio);
}

/**
 * Unrealized P&L as it counts toward initial margin (`calculate_perp_position_value_and_pnl` with
 * `PerpMarket::get_unrealized_asset_weight`): a loss in full; a gain × the initial asset weight, that
 * weight scaled by max imbalance / net user P&L when the users' net P&L exceeds
 * `unrealized_pnl_max_imbalance`, and lowered by the `unrealized_pnl_imf_factor` size discount; then at
 * most MAX_POSITIVE_UPNL_FOR_INITIAL_MARGIN.
 */
function initialWeightedPnlQuote(pnl: bigint, pm: DriftPerpMarket): bigint {
  if (pnl <= 0n) return pnl;
  let weight = BigInt(pm.unrealizedPnlInitialAssetWeight);
  if (weight === 0n) return 0n;
  if (pm.unrealizedPnlMaxImbalance > 0n) {
    const netUserPnl =
      ((pm.baseAssetAmountWithAmm + pm.baseAssetAmountWithUnsettledLp) * pm.lastOraclePrice) /
        (PRICE_PRECISION * (BASE_PRECISION / QUOTE_PRECISION)) +
      pm.ammQuoteAssetAmount +
      pm.quoteAssetAmountWithUnsettledLp +
      pm.netUnsettledFundingPnl;
    if (netUserPnl > pm.unrealizedPnlMaxImbalance)
      weight = (weight * pm.unrealizedPnlMaxImbalance) / netUserPnl;
  }
  if (weight > 0n && pm.unrealizedPnlImfFactor !== 0) {
    // calculate_size_discount_asset_weight, size in AMM_RESERVE_PRECISION (pnl × 1e3)
    const size = pnl * (BASE_PRECISION / QUOTE_PRECISION);
    const discount =
      ((SPOT_IMF_PRECISION + SPOT_IMF_PRECISION / 10n) * SPOT_WEIGHT_PRECISION) /
      (SPOT_IMF_PRECISION + (isqrt(size * 10n + 1n) * BigInt(pm.unrealizedPnlImfFactor)) / 100_000n);
    weight = minBig(weight, discount);
  }
  const weighted = (pnl * weight) / SPOT_WEIGHT_PRECISION;
  return minBig(weighted, MAX_POSITIVE_UPNL_FOR_INITIAL_MARGIN);
}

/**
 * A quote-market balance's value, QUOTE_PRECISION, as `get_token_amount` then `get_token_value` at a
 * price of 1: scaled × cumulative interest / 10^(19 − decimals) tokens (a borrow rounded up), then to
 * six decimals (a borrow rounded up again, so a liability is never understated).
 */
function quoteTokenValue(scaled: bigint, spot: DriftSpotMarket, type: 'deposit' | 'borrow'): bigint {
  if (!Number.isInteger(spot.decimals) || spot.decimals < 0 || spot.decimals > 19)
    throw new RangeError(`spot market ${spot.marketIndex} decimals ${spot.decimals} outside 0..=19`);
  const divisor = 10n ** BigInt(19 - spot.decimals);
  const unit = 10n ** BigInt(spot.decimals);
  if (type === 'deposit') {
    const tokens = (scaled * spot.cumulativeDepositInterest) / divisor;
    return (tokens * QUOTE_PRECISION) / unit;
  }
  const tokens = ceilDiv(scaled * spot.cumulativeBorrowInterest, divisor);
  return ceilDiv(tokens * QUOTE_PRECISION, unit);
}

function ceilDiv(a: bigint, b: bigint): bigint {
  return (a + b - 1n) / b; // a ≥ 0, b > 0
}

/** Math.max / Math.min for bigints. */
function maxBig(a: bigint, b: bigint): bigint {
  return a >= b ? a : b;
}
function minBig(a: bigint, b: bigint): bigint {
  return a <= b ? a : b;
}

function abs(v: bigint): bigint {
  return v < 0n ? -v : v;
}

/** floor(√n) for n ≥ 0 (num_integer's `nth_root(2)` on an unsigned integer). */
function isqrt(n: bigint): bigint {
  if (n < 2n) return n;
  let x = n;
  let y = (x + 1n) / 2n;
  while (y < x) {
    x = y;
    y = (x + n / x) / 2n;
  }
  return x;
}
