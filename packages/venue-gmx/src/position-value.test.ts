import { describe, expect, it } from 'vitest';
import { collateralUsd30, sidePnlUsd30 } from './position-value.ts';
import { fromUsd30, usd30, usdToGmxPrice } from './units.ts';

// ETH has 18 decimals: a GMX price is USD per wei with 30 decimals, i.e. USD × 10^12.
const ETH_DECIMALS = 18;
const eth = (n: number) => BigInt(Math.round(n * 1e6)) * 10n ** 12n; // whole ETH → wei (6 places)
const at = (usd: number) => {
  const p = usdToGmxPrice(usd, ETH_DECIMALS);
  return { min: p, max: p };
};

describe('sidePnlUsd30 (gmx-synthetics PositionUtils.getPositionPnlUsd, before the pool cap)', () => {
  it('long: sizeInTokens × price − sizeInUsd', () => {
    // 2 ETH bought for 6 000 USD, marked at 3 100: worth 6 200 → +200.
    const long = { isLong: true, sizeInUsd: usd30(6000), sizeInTokens: eth(2) };
    expect(sidePnlUsd30(long, at(3100))).toBe(usd30(200));
    expect(sidePnlUsd30(long, at(2900))).toBe(usd30(-200));
  });

  it('short: sizeInUsd − sizeInTokens × price', () => {
    // 1 ETH sold for 3 200 USD, marked at 3 100: buying it back costs 3 100 → +100.
    const short = { isLong: false, sizeInUsd: usd30(3200), sizeInTokens: eth(1) };
    expect(sidePnlUsd30(short, at(3100))).toBe(usd30(100));
    expect(sidePnlUsd30(short, at(3300))).toBe(usd30(-100));
  });

  it('both sides open sum by side, unlike (mark − entry averaged over both) × net size', () => {
    const long = { isLong: true, sizeInUsd: usd30(6000), sizeInTokens: eth(2) };
    const short = { isLong: false, sizeInUsd: usd30(3200), sizeInTokens: eth(1) };
    const bySide = fromUsd30(sidePnlUsd30(long, at(3100)) + sidePnlUsd30(short, at(3100)));
    expect(bySide).toBe(300);
    const netView = (3100 - 9200 / 3) * 1;
    expect(netView).toBeCloseTo(33.33, 2);
  });

  it('values at the mid of min and max without rounding the mid first', () => {
    // min 3 099.99, max 3 100.01 (in USD per wei): the mid is 3 100.
    const price = {
      min: usdToGmxPrice('3099.99', ETH_DECIMALS),
      max: usdToGmxPrice('3100.01', ETH_DECIMALS),
    };
    const long = { isLong: true, sizeInUsd: usd30(3000), sizeInTokens: eth(1) };
    expect(sidePnlUsd30(long, price)).toBe(usd30(100));
    // An odd number of wei at an odd min + max: exact to 1e-30 USD.
    const odd = { min: 3n, max: 4n };
    expect(sidePnlUsd30({ isLong: true, sizeInUsd: 0n, sizeInTokens: 3n }, odd)).toBe(10n); // 3 × 3.5 = 10.5
  });

  it('refuses a price that is not one', () => {
    const long = { isLong: true, sizeInUsd: usd30(3000), sizeInTokens: eth(1) };
    expect(() => sidePnlUsd30(long, { min: 0n, max: 0n })).toThrow(/not a price/);
    expect(() => sidePnlUsd30(long, { min: 5n, max: 4n })).toThrow(/not a price/);
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
