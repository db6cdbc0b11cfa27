/**
 * What a GMX v2 position is worth to the book beyond what the wallet holds: its collateral and its
 * P&L, both per side (a long and a short in one market are two positions with their own entry).
 *
 * Units as on chain: `sizeInUsd` is USD with 30 decimals, `sizeInTokens` is in the index token's
 * smallest unit, and prices are USD per smallest unit with 30 decimals (30 − token decimals for a
 * whole token), so `sizeInTokens × price` is USD with 30 decimals.
 */

/** The fields of a `Position.Props` (gmx-synthetics `contracts/position/Position.sol`) this module reads. */
export interface GmxPositionSide {
  isLong: boolean;
  /** What the open size cost, USD with 30 decimals. */
  sizeInUsd: bigint;
  /** Open size in the index token's smallest unit. */
  sizeInTokens: bigint;
}

/** An oracle price pair for the index token, GMX units (USD per smallest unit, 30 decimals). */
export interface GmxPricePair {
  min: bigint;
  max: bigint;
}

/**
 * The P&L of one side, USD with 30 decimals, as gmx-synthetics' `PositionUtils.getPositionPnlUsd`
 * computes it before its pool cap (long `sizeInTokens × price − sizeInUsd`, short `sizeInUsd −
 * sizeInTokens × price`), at the mid of the oracle's min and max (the price `fetchMarks` reports as
 * the mark; GMX itself picks min or max by side), without rounding the mid first. Pending borrowing
 * and funding fees and the closing fee are not in it.
 */
export function sidePnlUsd30(p: GmxPositionSide, price: GmxPricePair): bigint {
  if (price.min <= 0n || price.max < price.min)
    throw new RangeError(`GMX index price pair min ${price.min} max ${price.max} is not a price`);
  const valueUsd30 = (p.sizeInTokens * (price.min + price.max)) / 2n;
  return p.isLong ? valueUsd30 - p.sizeInUsd : p.sizeInUsd - valueUsd30;
}

/**
 * USD value of a collateral amount at a GMX price (USD per smallest unit, 30 decimals), as
 * gmx-synthetics values position collateral (`collateralAmount × collateralTokenPrice.min`), USD with
 * 30 decimals.
 */
export function collateralUsd30(collateralAmount: bigint, minPrice: bigint): bigint {
  if (minPrice <= 0n) throw new RangeError(`GMX collateral price ${minPrice} is not a price`);
  return collateralAmount * minPrice;
}
