import { ManualClock, MS_PER_DAY, MS_PER_HOUR } from '@xhedge/core';
import { RiskEngine, type RiskPosition, type UnderlyingRisk } from '@xhedge/risk';
import { describe, expect, it } from 'vitest';
import {
  type AttributionPoint,
  type AttributionRisk,
  attributePnl,
  attributeSeries,
  type PnlAttribution,
  sumAttributions,
  thetaByExpiry,
} from './attribution.ts';

// The auditor's book: short 10 ATM BTC calls with a day left, BTC 100,000, vol 60%, rate 0.
const EXPIRY = Date.UTC(2026, 2, 2, 8);
const NOW = EXPIRY - MS_PER_DAY;
const S = 100_000;
const CALL = 'BTC-USD:OPT:20260302:100000:C';

function engineRisk(atMs: number, positions: RiskPosition[], spotUsd = S): UnderlyingRisk {
  const clock = new ManualClock(atMs);
  const engine = new RiskEngine({ clock });
  engine.setBook({ positions: positions.map((p) => ({ ...p, asOfMs: atMs })) });
  engine.setMarket('BTC', { spotUsd, volDecimal: 0.6, rateDecimal: 0, asOfMs: atMs });
  const risk = engine.snapshot({ scenarios: false }).underlyings.BTC;
  if (!risk) throw new Error('no BTC risk');
  return risk;
}

const short10: RiskPosition[] = [
  { venue: 'lyra-arb', chain: 'evm:42161', instrument: CALL, sizeBase: -10, asOfMs: NOW },
];

function finite(a: PnlAttribution): void {
  for (const [k, v] of Object.entries(a)) expect(Number.isFinite(v), k).toBe(true);
}

describe('theta capped at each option expiry', () => {
  it("the auditor's repro: 10 short ATM calls with a day left, 30 days on: theta is at most the premium", () => {
    const start = engineRisk(NOW, short10);
    const end = engineRisk(NOW + 30 * MS_PER_DAY, short10);
    const premiumUsd = -start.valueUsd;
    expect(premiumUsd).toBeCloseTo(12_528, -1);
    // theta over 30 days from the first snapshot's θ: what the port reported (187,911 USD)
    const uncapped = attributePnl({
      start,
      endSpotUsd: end.spotUsd,
      endVolDecimal: end.volDecimal,
      elapsedMs: 30 * MS_PER_DAY,
    });
    expect(uncapped.thetaUsd).toBeCloseTo(187_911, -1);

    const r = attributeSeries([
      { asOfMs: NOW, risk: start },
      { asOfMs: NOW + 30 * MS_PER_DAY, risk: end },
    ]);
    // one interval: θ of the day the options had left, not of 30 days
    expect(r.attribution.thetaUsd).toBeCloseTo(start.thetaPerDay, 6);
    expect(r.attribution.thetaUsd).toBeGreaterThan(0);
    expect(r.attribution.thetaUsd).toBeLessThanOrEqual(premiumUsd);
    expect(r.intervals).toBe(1);
    finite(r.attribution);
  });

  it('hourly snapshots through the expiry earn about the premium, never more', () => {
    const premiumUsd = -engineRisk(NOW, short10).valueUsd;
    const points: AttributionPoint[] = [];
    for (let h = 0; h <= 30 * 24; h++) {
      const at = NOW + h * MS_PER_HOUR;
      points.push({ asOfMs: at, risk: engineRisk(at, short10) });
    }
    const r = attributeSeries(points);
    expect(r.intervals).toBe(720);
    // the left-point sum of a θ that grows toward expiry falls short of the whole premium; none after
    expect(r.attribution.thetaUsd).toBeLessThanOrEqual(premiumUsd);
    expect(r.attribution.thetaUsd).toBeGreaterThan(0.85 * premiumUsd);
    // spot and vol do not move: no delta, gamma or vega P&L
    expect(r.attribution.deltaUsd).toBe(0);
    expect(r.attribution.gammaUsd).toBe(0);
    expect(r.attribution.vegaUsd).toBe(0);
  });

  it("splits the engine's theta by expiry as the engine prices each expiry alone", () => {
    const far = 'BTC-USD:OPT:20260401:110000:P';
    const nearOnly = engineRisk(NOW, short10);
    const farOnly = engineRisk(NOW, [
      { venue: 'lyra-arb', chain: 'evm:42161', instrument: far, sizeBase: 4, asOfMs: NOW },
    ]);
    const both = engineRisk(NOW, [
      ...short10,
      { venue: 'lyra-arb', chain: 'evm:42161', instrument: far, sizeBase: 4, asOfMs: NOW },
    ]);
    const split = thetaByExpiry(both, NOW);
    expect(split).toHaveLength(2);
    const byLeft = new Map(split.map((e) => [e.msLeft, e.thetaPerDay]));
    expect(byLeft.get(MS_PER_DAY)).toBeCloseTo(nearOnly.thetaPerDay, 6);
    expect(byLeft.get(Date.UTC(2026, 3, 1, 8) - NOW)).toBeCloseTo(farOnly.thetaPerDay, 6);
    // 3 days on: the near expiry earns its one day, the far one all three
    const a = attributePnl({
      start: both,
      endSpotUsd: S,
      endVolDecimal: 0.6,
      elapsedMs: 3 * MS_PER_DAY,
      thetaByExpiry: split,
    });
    expect(a.thetaUsd).toBeCloseTo(nearOnly.thetaPerDay + 3 * farOnly.thetaPerDay, 6);
    // an expiry already past earns nothing
    expect(thetaByExpiry(both, EXPIRY + 1).find((e) => e.msLeft === 0)).toEqual({
      msLeft: 0,
      thetaPerDay: 0,
    });
  });
});

describe('attribution over a series of snapshots', () => {
  const risk = (
    spotUsd: number,
    volDecimal: number,
    delta: number,
    gamma: number,
    vegaPerVolPoint: number,
    thetaPerDay: number,
    fundingUsdPerHour: number,
  ): AttributionRisk => ({
    spotUsd,
    volDecimal,
    delta,
    gamma,
    vegaPerVolPoint,
    thetaPerDay,
    fundingUsdPerHour,
  });
  const H = MS_PER_HOUR;
  const points: AttributionPoint[] = [
    { asOfMs: 0, risk: risk(100, 0.5, 2, 0.1, 10, -24, -1) },
    { asOfMs: 6 * H, risk: risk(102, 0.52, 1, 0.05, 8, -12, 2) },
    { asOfMs: 12 * H, risk: risk(99, 0.5, -1, 0.2, 5, -48, 0) },
    { asOfMs: 24 * H, risk: risk(100, 0.55, 0, 0, 0, 0, 0) },
  ];
  const fill = { side: 'buy' as const, sizeBase: 1, priceUsd: 102.5, referencePriceUsd: 102, feeUsd: 0.3 };

  it('sums each interval from its own start Greeks, with its fills; residual = actual − explained', () => {
    const r = attributeSeries(
      points,
      [
        { ...fill, gasUsd: 0.1, tsMs: 7 * H },
        // at the last snapshot: in the last interval
        { ...fill, priceUsd: 102, tsMs: 24 * H },
        // before the first snapshot: not attributed
        { ...fill, tsMs: -1 },
      ],
      { actualPnlUsd: 5 },
    );
    // by hand, interval by interval (6 h, 6 h, 12 h):
    //   delta 2·2 + 1·(−3) + (−1)·1 = 0
    //   gamma ½·0.1·4 + ½·0.05·9 + ½·0.2·1 = 0.2 + 0.225 + 0.1 = 0.525
    //   theta −24/4 − 12/4 − 48/2 = −33
    //   vega 10·2 + 8·(−2) + 5·5 = 29 (vol points)
    //   funding −1·6 + 2·6 + 0 = 6
    //   fees −0.6, slippage −0.5 (bought 0.5 above plan), gas −0.1
    const a = r.attribution;
    expect(r.intervals).toBe(3);
    expect(r.fillsOutside).toBe(1);
    expect(a.deltaUsd).toBeCloseTo(0, 9);
    expect(a.gammaUsd).toBeCloseTo(0.525, 9);
    expect(a.thetaUsd).toBeCloseTo(-33, 9);
    expect(a.vegaUsd).toBeCloseTo(29, 9);
    expect(a.fundingUsd).toBeCloseTo(6, 9);
    expect(a.feesUsd).toBeCloseTo(-0.6, 9);
    expect(a.slippageUsd).toBeCloseTo(-0.5, 9);
    expect(a.gasUsd).toBeCloseTo(-0.1, 9);
    const explained = 0 + 0.525 - 33 + 29 + 6 - 0.6 - 0.5 - 0.1;
    expect(a.totalUsd).toBeCloseTo(explained, 9);
    expect(a.unexplainedUsd).toBeCloseTo(5 - explained, 9);
    // from the first snapshot's Greeks alone the day reads otherwise: theta −24, vega 50, funding −24
    const once = attributePnl({
      start: points[0]?.risk as AttributionRisk,
      endSpotUsd: 100,
      endVolDecimal: 0.55,
      elapsedMs: 24 * H,
    });
    expect(once.totalUsd).not.toBeCloseTo(explained, 1);
  });

  it('an interval with the underlying out of the book at one end explains only its costs', () => {
    const r = attributeSeries(
      [
        { asOfMs: 0, risk: undefined },
        { asOfMs: H, risk: risk(100, 0.5, 1, 0, 0, 0, -1) },
        { asOfMs: 2 * H, risk: undefined },
      ],
      [{ ...fill, tsMs: 30 * 60_000 }],
    );
    expect(r.intervals).toBe(2);
    expect(r.intervalsWithoutGreeks).toBe(2);
    expect(r.attribution).toMatchObject({ deltaUsd: 0, gammaUsd: 0, thetaUsd: 0, vegaUsd: 0 });
    expect(r.attribution.fundingUsd).toBeCloseTo(-1, 12);
    expect(r.attribution.totalUsd).toBeCloseTo(-1 - 0.3 - 0.5, 12);
  });

  it('nothing to attribute: no snapshot or one gives 0 intervals and zeros, never NaN', () => {
    for (const pts of [[], [points[0] as AttributionPoint]]) {
      const r = attributeSeries(pts, [{ ...fill, tsMs: 0 }], { actualPnlUsd: 0 });
      expect(r.intervals).toBe(0);
      expect(r.fillsOutside).toBe(1);
      expect(r.attribution.totalUsd).toBe(0);
      finite(r.attribution);
    }
  });

  it('refuses snapshots out of time order and a negative interval', () => {
    expect(() => attributeSeries([points[1] as AttributionPoint, points[0] as AttributionPoint])).toThrow(
      /time order/,
    );
    expect(() =>
      attributePnl({
        start: points[0]?.risk as AttributionRisk,
        endSpotUsd: 1,
        endVolDecimal: 1,
        elapsedMs: -1,
      }),
    ).toThrow(/elapsedMs/);
  });

  it('sumAttributions gives a residual only when every part has one', () => {
    const one = attributePnl({
      start: points[0]?.risk as AttributionRisk,
      endSpotUsd: 101,
      endVolDecimal: 0.5,
      elapsedMs: H,
      actualPnlUsd: 3,
    });
    const unmeasured = attributePnl({
      start: points[0]?.risk as AttributionRisk,
      endSpotUsd: 101,
      endVolDecimal: 0.5,
      elapsedMs: H,
    });
    expect(sumAttributions([one, one]).unexplainedUsd).toBeCloseTo(
      2 * (one.unexplainedUsd ?? Number.NaN),
      12,
    );
    // a sum over part of the intervals is no residual of the whole
    expect(sumAttributions([one, unmeasured]).unexplainedUsd).toBeUndefined();
    expect(sumAttributions([]).unexplainedUsd).toBeUndefined();
  });
});
