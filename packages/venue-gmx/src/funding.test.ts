import { describe, expect, it } from 'vitest';
import {
  carryFactorPerSecond30,
  carryUsd,
  fundingRatePerHour,
  type GmxMarketRates,
  heldCarryRatePerHour,
  heldSideFactorPerSecond30,
} from './funding.ts';

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

describe("GMX carry of the account's positions (FundingRate.ratePerHour: funding and borrowing, + = longs pay)", () => {
  it('each side pays its borrowing; funding as the paying rate, paid or credited', () => {
    // longs pay F: a long pays F + 3F, a short pays 2F less F
    expect(heldSideFactorPerSecond30(rates(), true)).toBe(4n * F);
    expect(heldSideFactorPerSecond30(rates(), false)).toBe(F);
    // shorts pay F: a long pays 3F less F, a short 2F + F
    expect(heldSideFactorPerSecond30(rates({ longsPayShorts: false }), true)).toBe(2n * F);
    expect(heldSideFactorPerSecond30(rates({ longsPayShorts: false }), false)).toBe(3n * F);
  });

  it("one side held: its factor × 3 600, signed so the book's −size × rate is its cost", () => {
    // a long: (10^-8 funding + 3 × 10^-8 borrowing) × 3 600, the market's funding rate alone is 0.000036
    expect(heldCarryRatePerHour([{ isLong: true, sizeBase: '3', rates: rates() }])).toBe(0.000144);
    // a short: it receives 10^-8 and pays 2 × 10^-8 borrowing, a cost of 10^-8: −(−3 × rate) > 0
    expect(heldCarryRatePerHour([{ isLong: false, sizeBase: '1', rates: rates() }])).toBe(-0.000036);
    // borrowing outweighing a credit on either side still reads as a cost
    const credit = rates({ borrowingFactorPerSecondForLongs: 0n, borrowingFactorPerSecondForShorts: 0n });
    expect(heldCarryRatePerHour([{ isLong: false, sizeBase: '1', rates: credit }])).toBe(0.000036);
    // the size does not change a rate (it is per unit of notional)
    expect(heldCarryRatePerHour([{ isLong: true, sizeBase: '0.000001', rates: rates() }])).toBe(0.000144);
    expect(heldCarryRatePerHour([])).toBe(0);
  });

  it('a long and a short of one market (GMX keeps them apart): the rate that makes the net size carry what both cost', () => {
    // long 2 pays 4F each, short 5 pays F each: 13F on a net −3 → −13/3 F per unit of net size
    const r = heldCarryRatePerHour([
      { isLong: true, sizeBase: '2', rates: rates() },
      { isLong: false, sizeBase: '5', rates: rates() },
    ]);
    expect(r).toBeCloseTo((-13 / 3) * 1e-8 * 3600, 18);
    // the book's funding per hour: −net × spot × rate = −(−3) × 3 500 × r = −13F × 3 500 × 3 600
    expect(-(-3 * 3500) * (r as number)).toBeCloseTo(-(2 * 4 + 5 * 1) * 1e-8 * 3500 * 3600, 12);
    // two markets of one index, each with its own rates
    const other = rates({ borrowingFactorPerSecondForLongs: 7n * F });
    expect(
      heldCarryRatePerHour([
        { isLong: true, sizeBase: '1', rates: rates() },
        { isLong: true, sizeBase: '1', rates: other },
      ]),
    ).toBe(((4 + 8) / 2) * 0.000036);
  });

  it('a net size of 0 that costs something has no rate; one that costs nothing has 0; a bad size is refused', () => {
    const both = [
      { isLong: true, sizeBase: '1.5', rates: rates() },
      { isLong: false, sizeBase: '1.5', rates: rates() },
    ];
    expect(heldCarryRatePerHour(both)).toBeUndefined();
    const none = rates({
      fundingFactorPerSecond: 0n,
      borrowingFactorPerSecondForLongs: 0n,
      borrowingFactorPerSecondForShorts: 0n,
    });
    expect(heldCarryRatePerHour(both.map((b) => ({ ...b, rates: none })))).toBe(0);
    expect(() => heldCarryRatePerHour([{ isLong: true, sizeBase: '-1', rates: rates() }])).toThrow(/size/);
    expect(() => heldCarryRatePerHour([{ isLong: true, sizeBase: 'NaN', rates: rates() }])).toThrow(/size/);
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
