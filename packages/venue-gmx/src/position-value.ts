/**
 * What a GMX v2 position is worth to the book beyond what the wallet holds: its collateral and its
 * unsettled P&L, both per side (a long and a short in one market are two positions with their own
 * entry), from what gmx-synthetics' `Reader.getAccountPositionInfoList` reports for it
 * (`ReaderPositionUtils.PositionInfo`, contracts/reader/ReaderPositionUtils.sol).
 *
 * Units as on chain: USD values have 30 decimals; fee and funding amounts are in the smallest unit of
 * their token; prices are USD per smallest unit with 30 decimals, so `amount × price` is USD with 30
 * decimals.
 */

/** The fields of a `ReaderPositionUtils.PositionInfo` that {@link unsettledPnlUsd30} reads. */
export interface GmxPositionInfoValues {
  /**
   * `basePnlUsd`: the P&L of closing the whole position at the oracle price that minimizes it (long at
   * the index min price, short at the max), capped by the pool's max P&L factor for traders.
   */
  basePnlUsd: bigint;
  /**
   * `executionPriceResult.proportionalPendingImpactUsd`: the position's held-back price impact
   * (`numbers.pendingImpactAmount`, index token units) valued in USD, positive at the index min price,
   * negative at the max. Not in `pnlAfterPriceImpactUsd` (that is `basePnlUsd` + the impact of the
   * close itself).
   */
  pendingImpactUsd: bigint;
  /** `fees.borrowing.borrowingFeeAmount`: borrowing fee accrued, collateral token units. */
  borrowingFeeAmount: bigint;
  /** `fees.funding.fundingFeeAmount`: funding fee owed, collateral token units. */
  fundingFeeAmount: bigint;
  /** `fees.funding.claimableLongTokenAmount`: funding earned, the market's long token units. */
  claimableLongTokenAmount: bigint;
  /** `fees.funding.claimableShortTokenAmount`: funding earned, the market's short token units. */
  claimableShortTokenAmount: bigint;
}

/** Values token amounts in USD with 30 decimals (the caller's valuation: oracle min price, or par). */
export interface GmxTokenValuer {
  collateral(amount: bigint): bigint;
  longToken(amount: bigint): bigint;
  shortToken(amount: bigint): bigint;
}

/**
 * The unsettled P&L of one side, USD with 30 decimals: what it has earned or owes that its collateral
 * does not show yet. `basePnlUsd` + the pending price impact − the accrued borrowing and funding fees
 * (collateral token units, valued as the collateral is) + the funding it has earned (claimable, in the
 * long and short tokens). Costs the position has not incurred yet are left out: the closing fee
 * (`fees.positionFeeAmount`, which `fees.totalCostAmount` includes) and the price impact of a close
 * (`executionPriceResult.priceImpactUsd`), as book equity counts no exit cost of any venue.
 */
export function unsettledPnlUsd30(v: GmxPositionInfoValues, value: GmxTokenValuer): bigint {
  const feesUsd30 = value.collateral(v.borrowingFeeAmount + v.fundingFeeAmount);
  const earnedUsd30 =
    value.longToken(v.claimableLongTokenAmount) + value.shortToken(v.claimableShortTokenAmount);
  return v.basePnlUsd + v.pendingImpactUsd - feesUsd30 + earnedUsd30;
}

/**
 * USD value of a token amount at a GMX price (USD per smallest unit, 30 decimals), as gmx-synthetics
 * values position collateral (`collateralAmount × collateralTokenPrice.min`), USD with 30 decimals.
 */
export function collateralUsd30(collateralAmount: bigint, minPrice: bigint): bigint {
  if (minPrice <= 0n) throw new RangeError(`GMX collateral price ${minPrice} is not a price`);
  return collateralAmount * minPrice;
}
