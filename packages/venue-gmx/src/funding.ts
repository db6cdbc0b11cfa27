import { Dec } from '@xhedge/core';
import { FLOAT_PRECISION } from './keys.ts';

// GMX v2's funding and borrowing as gmx-synthetics a5c0c883 charges them (contracts/market/MarketUtils.sol):
// - Funding: `getNextFundingAmountPerSize` takes `fundingUsd = sizeOfPayingSide × seconds ×
//   fundingFactorPerSecond` from the paying side (longs when `longsPayShorts`) and spreads it over the
//   receiving side's open interest. So the paying side pays exactly `fundingFactorPerSecond` per USD of
//   position size per second, and the receiving side gets `fundingFactorPerSecond × payingOI /
//   receivingOI` per USD: more than the payers' rate when it is the smaller side, less when it is the
//   larger. Nothing moves while either side has no open interest (the factor is then 0).
// - Borrowing: `getBorrowingFees` charges `sizeInUsd × (cumulative borrowing factor − the position's)`,
//   the cumulative factor growing by `borrowingFactorPerSecondForLongs/ForShorts` each second. Each side
//   pays its own; no one receives it.
// Both factors are 30-decimal (10^30 = 1) per second, applied to the position's USD size; Reader.getMarketInfo
// reports them as of the block read (`nextFunding`, `borrowingFactorPerSecondFor*`).

/** What `Reader.getMarketInfo` reports of a market's funding and borrowing: 30-decimal factors per second. */
export interface GmxMarketRates {
  /** `nextFunding.longsPayShorts`. */
  longsPayShorts: boolean;
  /** `nextFunding.fundingFactorPerSecond`: what the paying side pays per USD of its size per second. */
  fundingFactorPerSecond: bigint;
  /** `borrowingFactorPerSecondForLongs`: what a long pays per USD of its size per second. */
  borrowingFactorPerSecondForLongs: bigint;
  borrowingFactorPerSecondForShorts: bigint;
}

/** Each side's open interest, USD with 30 decimals (`MarketUtils.getOpenInterest`). */
export interface GmxOpenInterestUsd30 {
  longUsd30: bigint;
  shortUsd30: bigint;
}

const SECONDS_PER_HOUR = 3600n;

/** A signed 30-decimal factor as a JS number (the only float step; the rest is bigint or Dec). */
function factorToNumber(factor30: bigint): number {
  const n = new Dec(factor30.toString()).div(FLOAT_PRECISION.toString()).toNumber();
  return n === 0 ? 0 : n; // no -0
}

/**
 * The market's funding rate as `FundingRate.ratePerHour` states it (per hour, as a fraction of
 * notional, + = longs pay): the paying side's rate, `fundingFactorPerSecond × 3600`, positive when
 * longs pay, negative when shorts do.
 *
 * That is exactly what a position on the paying side pays. A position on the receiving side gets
 * `× payingOI / receivingOI` of it (see above), which one symmetric number cannot say: when the paying
 * side is the larger (always so under GMX's static funding model, where the larger side pays) the
 * receivers get at least this rate, so reading it for both sides never understates a cost. Under
 * adaptive funding the smaller side may be paying for a while, and then a receiver's credit read from
 * this rate is too high by `receivingOI / payingOI`. Borrowing is not in it (both sides pay their own,
 * no one receives it): it is the market's rate, what the adapter reports while the account holds
 * nothing there; a held position's rate, borrowing included, is {@link heldCarryRatePerHour}'s.
 */
export function fundingRatePerHour(r: GmxMarketRates): number {
  const perHour30 = r.fundingFactorPerSecond * SECONDS_PER_HOUR;
  return factorToNumber(r.longsPayShorts ? perHour30 : -perHour30);
}

/**
 * What holding side `isLong` of a market costs per USD of its size per second, 30 decimals, + = a cost:
 * the side's borrowing (`borrowingFactorPerSecondForLongs/ForShorts`, never negative) plus the funding
 * factor when the side pays, less it when it receives (the paying side's rate, read for the receivers
 * too as {@link fundingRatePerHour} does: never less cost than GMX credits them when the paying side is
 * the larger).
 */
export function heldSideFactorPerSecond30(r: GmxMarketRates, isLong: boolean): bigint {
  const borrowing = isLong ? r.borrowingFactorPerSecondForLongs : r.borrowingFactorPerSecondForShorts;
  const F = r.fundingFactorPerSecond;
  return borrowing + (isLong === r.longsPayShorts ? F : -F);
}

/** One GMX position of the account: its side, its size in whole index tokens (> 0), its market's rates. */
export interface GmxHeldSide {
  isLong: boolean;
  /** `sizeInTokens` in whole index tokens, exact decimal. */
  sizeBase: string;
  rates: GmxMarketRates;
}

/**
 * The carry of the account's positions in one instrument as `FundingRate.ratePerHour` states it: per
 * hour, a fraction of notional, + = longs pay, for the book to apply to the account's net size there
 * (risk: funding P&L per hour = −netSize × spot × rate). Funding and borrowing both: each position costs
 * its size × {@link heldSideFactorPerSecond30} of its side and market, and the rate is their sum over
 * the net size, × 3 600:
 *
 *   rate = Σ sizeBase × factor(side) / (Σ long sizeBase − Σ short sizeBase) × 3 600 / 10^30
 *
 * For a long alone that is `(funding factor signed as longs pay + borrowing for longs) × 3 600`; for a
 * short alone `(funding factor signed as longs pay − borrowing for shorts) × 3 600`: each side pays its
 * borrowing, and the book's −size × rate makes it a cost for either sign. GMX keeps a long and a short
 * of one market apart (both pay borrowing), so with both held the rate is what makes the net size carry
 * what both cost (it can exceed either side's own rate). GMX charges on `sizeInUsd`, the book on the
 * size at spot: the same approximation the funding rate alone made.
 *
 * Undefined when the net size is 0 while the positions cost something (a long and a short of equal size):
 * no rate on a net size of 0 carries that. `sides` empty: 0 (nothing held, nothing carried).
 */
export function heldCarryRatePerHour(sides: readonly GmxHeldSide[]): number | undefined {
  let cost = new Dec(0);
  let net = new Dec(0);
  for (const s of sides) {
    const size = new Dec(s.sizeBase);
    if (!size.isFinite() || size.isNegative())
      throw new RangeError(`a held position's size must be a finite decimal ≥ 0, got ${s.sizeBase}`);
    cost = cost.add(size.mul(heldSideFactorPerSecond30(s.rates, s.isLong).toString()));
    net = s.isLong ? net.add(size) : net.sub(size);
  }
  if (net.isZero()) return cost.isZero() ? 0 : undefined;
  const rate = cost.div(net).mul(SECONDS_PER_HOUR.toString()).div(FLOAT_PRECISION.toString()).toNumber();
  return rate === 0 ? 0 : rate; // no -0
}

/**
 * What an order changes in the account's funding and borrowing per USD of its size per second, 30
 * decimals, positive a cost, at the rates of the block read:
 *
 * - An increase holds `isLong` from now on: the side's borrowing, plus its funding when it pays
 *   (`fundingFactorPerSecond`), less it when it receives. A receiver's credit is conservative: the
 *   payers' total spread over the receiving side's open interest *with the order in it*
 *   (`F × payingOI / (receivingOI + sizeDeltaUsd30)`, rounded down), and none when the order would leave
 *   the receiving side no smaller than the paying side (GMX's static model then turns funding round at
 *   once; adaptive funding starts turning it). So a cost is never understated for what the order itself
 *   changes; how the factors move afterwards with the skew (and over time, under adaptive funding) is not
 *   modelled.
 * - A decrease stops holding that much of side `isLong` (the position it reduces): minus what that side
 *   costs now (its borrowing and its funding at the current open interest, the order's own size still in
 *   it; a lost credit rounded up): a saving when the side pays, a loss of the credit when it receives.
 */
export function carryFactorPerSecond30(
  r: GmxMarketRates,
  oi: GmxOpenInterestUsd30,
  order: { isLong: boolean; increase: boolean; sizeDeltaUsd30: bigint },
): bigint {
  const borrowing = order.isLong ? r.borrowingFactorPerSecondForLongs : r.borrowingFactorPerSecondForShorts;
  const F = r.fundingFactorPerSecond;
  let funding = 0n;
  if (F > 0n) {
    if (order.isLong === r.longsPayShorts) {
      funding = F;
    } else {
      const payingOi = r.longsPayShorts ? oi.longUsd30 : oi.shortUsd30;
      const receivingOi =
        (order.isLong ? oi.longUsd30 : oi.shortUsd30) + (order.increase ? order.sizeDeltaUsd30 : 0n);
      // an increase's credit rounded down, a decrease's lost credit up: never less cost
      const credit = order.increase
        ? receivingOi > 0n && receivingOi < payingOi
          ? (F * payingOi) / receivingOi
          : 0n
        : receivingOi > 0n
          ? (F * payingOi + receivingOi - 1n) / receivingOi
          : 0n;
      funding = -credit;
    }
  }
  const holding = borrowing + funding;
  return order.increase ? holding : -holding;
}

/**
 * `factor30PerSecond` (see {@link carryFactorPerSecond30}) over `holdingHours` on `sizeDeltaUsd30`, USD:
 * the quote's `fundingCarryUsd`. Exact (bigint and Dec) up to the one conversion to a number at the end.
 */
export function carryUsd(factor30PerSecond: bigint, sizeDeltaUsd30: bigint, holdingHours: number): number {
  if (!Number.isFinite(holdingHours) || holdingHours < 0)
    throw new RangeError(`holdingHours must be a finite number ≥ 0, got ${holdingHours}`);
  const usd = new Dec((factor30PerSecond * SECONDS_PER_HOUR * sizeDeltaUsd30).toString())
    .mul(holdingHours)
    .div((FLOAT_PRECISION * FLOAT_PRECISION).toString())
    .toNumber();
  return usd === 0 ? 0 : usd;
}
