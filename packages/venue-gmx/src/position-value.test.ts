import { describe, expect, it } from 'vitest';
import { collateralUsd30, type GmxTokenValuer, unsettledPnlUsd30 } from './position-value.ts';
import { fromUsd30, usd30, usdToGmxPrice } from './units.ts';

// ETH has 18 decimals: a GMX price is USD per wei with 30 decimals, i.e. USD × 10^12.
const ETH_DECIMALS = 18;
const eth = (n: number) => BigInt(Math.round(n * 1e6)) * 10n ** 12n; // whole ETH → wei (6 places)

/** USDC collateral at par, WETH long token at 3 000 USD, USDC short token at par. */
const valuer: GmxTokenValuer = {
  collateral: (a) => collateralUsd30(a, usdToGmxPrice(1, 6)),
  longToken: (a) => collateralUsd30(a, usdToGmxPrice(3000, ETH_DECIMALS)),
  shortToken: (a) => collateralUsd30(a, usdToGmxPrice(1, 6)),
};
const none = {
  pendingImpactUsd: 0n,
  borrowingFeeAmount: 0n,
  fundingFeeAmount: 0n,
  claimableLongTokenAmount: 0n,
  claimableShortTokenAmount: 0n,
};

describe('unsettledPnlUsd30 (from a ReaderPositionUtils.PositionInfo)', () => {
  it('is basePnlUsd when nothing is pending', () => {
    expect(unsettledPnlUsd30({ ...none, basePnlUsd: usd30(200) }, valuer)).toBe(usd30(200));
    expect(unsettledPnlUsd30({ ...none, basePnlUsd: usd30(-75.5) }, valuer)).toBe(usd30(-75.5));
  });

  it('adds the pending price impact (signed) and takes off borrowing and funding fees at the collateral value', () => {
    const v = {
      ...none,
      basePnlUsd: usd30(200),
      pendingImpactUsd: usd30(-7.2),
      borrowingFeeAmount: 12_345_678n, // 12.345678 USDC
      fundingFeeAmount: 3_200_000n, // 3.2 USDC
    };
    // 200 − 7.2 − 12.345678 − 3.2, exact to 1e-30 USD.
    expect(unsettledPnlUsd30(v, valuer)).toBe(usd30('177.254322'));
    // A positive pending impact (the increases improved the balance) counts for the position.
    expect(unsettledPnlUsd30({ ...v, pendingImpactUsd: usd30(7.2) }, valuer)).toBe(usd30('191.654322'));
    // Fees in a collateral token other than USDC are valued as that collateral is.
    const wethCollateral = { ...valuer, collateral: valuer.longToken };
    expect(
      unsettledPnlUsd30({ ...none, basePnlUsd: 0n, borrowingFeeAmount: eth(0.001) }, wethCollateral),
    ).toBe(usd30(-3));
  });

  it('adds the funding the position earned, in the long and the short token', () => {
    const v = {
      ...none,
      basePnlUsd: usd30(10),
      claimableLongTokenAmount: eth(0.0005), // 1.5 USD at 3 000
      claimableShortTokenAmount: 250_000n, // 0.25 USDC
    };
    expect(fromUsd30(unsettledPnlUsd30(v, valuer))).toBe(11.75);
  });
});

describe('collateralUsd30', () => {
  it('values collateral as amount × min price (USD per smallest unit, 30 decimals)', () => {
    // 1.5 WETH at 3 000 USD: 4 500 USD.
    expect(fromUsd30(collateralUsd30(eth(1.5), usdToGmxPrice(3000, ETH_DECIMALS)))).toBe(4500);
    // 250 USDC (6 decimals) at 1 USD.
    expect(collateralUsd30(250_000_000n, usdToGmxPrice(1, 6))).toBe(usd30(250));
    expect(() => collateralUsd30(1n, 0n)).toThrow(/not a price/);
  });
});
