import { describe, expect, it } from 'vitest';
import { carryFactorPerSecond30, carryUsd, fundingRatePerHour, type GmxMarketRates } from './funding.ts';

const E = (n: number) => BigInt(n) * 10n ** 30n; // USD with 30 decimals
const F = 10n ** 22n; // 10^-8 per second
const rates = (over: Partial<GmxMarketRates> = {}): GmxMarketRates => ({
  longsPayShorts: true,
  fundingFactorPerSecond: F,
  borrowingFactorPerSecondForLongs: 3n * F,
  borrowingFactorPerSecondForShorts: 2n * F,
  ...over,
});
const oi = { longUsd30: E(10_500), shortUsd30: E(3_500) };

describe('GMX funding rate (FundingRate.ratePerHour: + = longs pay)', () => {
  it("is the paying side's factor × 3 600, signed by longsPayShorts, converted from 30 decimals exactly", () => {
    expect(fundingRatePerHour(rates())).toBe(0.000036);
    expect(fundingRatePerHour(rates({ longsPayShorts: false }))).toBe(-0.000036);
    // no funding (either side empty): 0, never −0
    expect(
      Object.is(fundingRatePerHour(rates({ longsPayShorts: false, fundingFactorPerSecond: 0n })), 0),
    ).toBe(true);
    // 1 wei of a factor survives: 3 600 × 10^-30
    expect(fundingRatePerHour(rates({ fundingFactorPerSecond: 1n }))).toBe(3.6e-27);
  });
});

describe('GMX carry of an order (per USD of size per second, + = cost)', () => {
  it('an increase on the paying side pays the factor plus its borrowing', () => {
    expect(
      carryFactorPerSecond30(rates(), oi, { isLong: true, increase: true, sizeDeltaUsd30: E(7000) }),
    ).toBe(4n * F);
    expect(
      carryFactorPerSecond30(rates({ longsPayShorts: false }), oi, {
        isLong: false,
        increase: true,
        sizeDeltaUsd30: E(3500),
      }),
    ).toBe(3n * F);
  });

  it('an increase on the receiving side is credited the payers over the receivers with the order in, none once it would not be the smaller', () => {
    // 10 500 × F spread over 3 500 + 3 500
    expect(
      carryFactorPerSecond30(rates(), oi, { isLong: false, increase: true, sizeDeltaUsd30: E(3500) }),
    ).toBe(2n * F - (3n * F) / 2n);
    // 3 500 + 7 000 = 10 500: no credit
    expect(
      carryFactorPerSecond30(rates(), oi, { isLong: false, increase: true, sizeDeltaUsd30: E(7000) }),
    ).toBe(2n * F);
    // rounded down: 10 500 / 10 000 × 7 → 7.35, credited 7
    expect(
      carryFactorPerSecond30(rates({ fundingFactorPerSecond: 7n }), oi, {
        isLong: false,
        increase: true,
        sizeDeltaUsd30: E(6500),
      }),
    ).toBe(2n * F - 7n);
  });

  it('a decrease stops what the side costs now: a saving on the paying side, a lost credit (rounded up) on the receiving side', () => {
    expect(
      carryFactorPerSecond30(rates(), oi, { isLong: true, increase: false, sizeDeltaUsd30: E(100) }),
    ).toBe(-4n * F);
    // shorts receive 10 500 / 3 500 × F = 3F and pay 2F: closing some loses F net
    expect(
      carryFactorPerSecond30(rates(), oi, { isLong: false, increase: false, sizeDeltaUsd30: E(100) }),
    ).toBe(F);
    // 10 500 / 3 500 × 7 = 21 exactly; × 10 500 / 4 000 = 18.375 → 19
    expect(
      carryFactorPerSecond30(
        rates({ fundingFactorPerSecond: 7n }),
        { longUsd30: E(10_500), shortUsd30: E(4_000) },
        { isLong: false, increase: false, sizeDeltaUsd30: E(100) },
      ),
    ).toBe(-(2n * F - 19n));
  });

  it('no funding moving: borrowing only', () => {
    const none = rates({ fundingFactorPerSecond: 0n, longsPayShorts: false });
    expect(carryFactorPerSecond30(none, oi, { isLong: true, increase: true, sizeDeltaUsd30: E(1) })).toBe(
      3n * F,
    );
    expect(carryFactorPerSecond30(none, oi, { isLong: false, increase: true, sizeDeltaUsd30: E(1) })).toBe(
      2n * F,
    );
  });

  it('carryUsd: factor × 3 600 × hours × size, exact to the last conversion; bad hours are refused', () => {
    expect(carryUsd(4n * F, E(7000), 24)).toBe(24.192);
    expect(carryUsd(-F, E(1750), 24)).toBe(-1.512);
    expect(carryUsd(4n * F, E(7000), 0.5)).toBe(0.504);
    expect(Object.is(carryUsd(-F, E(1750), 0), 0)).toBe(true);
    // 2 BTC at 60 000 paying 7 × 10^-9 per second (2.52 × 10^-5 per hour) for a day
    expect(carryUsd(7n * 10n ** 21n, E(120_000), 24)).toBe(72.576);
    expect(() => carryUsd(F, E(1), Number.NaN)).toThrow(/holdingHours/);
    expect(() => carryUsd(F, E(1), -1)).toThrow(/holdingHours/);
  });
});
