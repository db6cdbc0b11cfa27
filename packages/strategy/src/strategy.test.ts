import type { PolicyConfig } from '@xhedge/config';
import { instrumentMeta, ManualClock, MS_PER_DAY, MS_PER_HOUR, MS_PER_YEAR } from '@xhedge/core';
import { normCdf } from '@xhedge/pricing';
import { RiskEngine, type RiskPosition, type UnderlyingRisk } from '@xhedge/risk';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { attributePnl, sumAttributions } from './attribution.ts';
import { GAMMA_BAND_CAP_FRACTION, gammaScaledHalfWidth, lelandVol, wwHalfWidth } from './bands.ts';
import { vegaCandidatesFromChain } from './candidates.ts';
import { HedgeStrategy } from './strategy.ts';
import { solveVegaHedge, type VegaCandidate } from './vega.ts';

const S = 60_000;
const T0 = Date.UTC(2026, 0, 1);

function risk(over: Partial<UnderlyingRisk> = {}): UnderlyingRisk {
  const zero = {
    delta: 0,
    deltaUsd: 0,
    netDeltaCoin: 0,
    gamma: 0,
    gamma1PctUsd: 0,
    vegaPerVolPoint: 0,
    thetaPerDay: 0,
    rhoPer1Pct: 0,
    vannaPerVolPoint: 0,
    valueUsd: 0,
    fundingUsdPerHour: 0,
  };
  return {
    ...zero,
    underlying: 'BTC',
    spotUsd: S,
    volDecimal: 0.6,
    rateDecimal: 0,
    gammaWeightedTenorYears: 0.25,
    positionCount: 1,
    vegaByExpiry: {},
    vegaByBucket: {},
    byVenue: {},
    byChain: {},
    ...over,
  };
}

const common = { targetDelta: 0, urgencyMultiple: 3, minTradeUsd: 100 };
const band = (x: Partial<Extract<PolicyConfig, { kind: 'band' }>> = {}): PolicyConfig => ({
  kind: 'band',
  bandDelta: 0.5,
  ...common,
  ...x,
});

function strat(policy: PolicyConfig, clock = new ManualClock(T0)) {
  return { s: new HedgeStrategy({ clock, defaultPolicy: policy }), clock };
}

describe('delta bands', () => {
  it('holds inside the absolute band and trades back to target outside it', () => {
    const { s } = strat(band());
    const hold = s.decideUnderlying(risk({ delta: 0.4 }), 1);
    expect(hold).toMatchObject({ action: 'hold', code: 'inside-band', tradeDeltaBase: 0 });
    expect(hold.reason).toMatch(/inside the ±0.5 band/);
    const trade = s.decideUnderlying(risk({ delta: 0.8 }), 2);
    expect(trade).toMatchObject({ action: 'hedge', code: 'hedge', side: 'sell', urgency: 'normal' });
    expect(trade.tradeDeltaBase).toBeCloseTo(-0.8, 12);
    expect(trade.reason).toMatch(/sell 0.8 BTC .* back to the target/);
  });

  it('widens the band with gamma and vol so it cannot ping-pong', () => {
    const { s } = strat(band({ bandDelta: 0.1, gammaScaled: { z: 2, windowHours: 1 } }));
    const gamma = 0.001;
    const expected = 2 * gamma * 0.6 * S * Math.sqrt(MS_PER_HOUR / MS_PER_YEAR);
    const d = s.decideUnderlying(risk({ delta: 0.3, gamma }), 1);
    expect(d.bandHalfWidth).toBeCloseTo(expected, 12);
    expect(expected).toBeGreaterThan(0.3);
    expect(d.code).toBe('inside-band');
  });

  it('Whalley–Wilmott: hand-computed half-width, trades to the band edge', () => {
    const policy: PolicyConfig = { kind: 'ww', riskAversion: 0.001, costBps: 10, ...common };
    const { s } = strat(policy);
    const gamma = 0.0005;
    const H = Math.cbrt((1.5 * Math.exp(-0.05 * 0.25) * 0.001 * S * gamma * gamma) / 0.001);
    expect(
      wwHalfWidth({
        spotUsd: S,
        gamma,
        costFraction: 0.001,
        riskAversion: 0.001,
        rateDecimal: 0.05,
        tenorYears: 0.25,
      }),
    ).toBeCloseTo(H, 12);
    const r = risk({ delta: -5, gamma, rateDecimal: 0.05 });
    const d = s.decideUnderlying(r, 1);
    expect(d.bandHalfWidth).toBeCloseTo(H, 12);
    expect(d.tradeDeltaBase).toBeCloseTo(5 - H, 12);
    expect(d.reason).toMatch(/to the band edge/);
  });
});

/** BTC risk of `positions` as the risk engine prices them (flat 60% vol, rate 0) at `nowMs`. */
function engineRisk(nowMs: number, spotUsd: number, positions: readonly Omit<RiskPosition, 'asOfMs'>[]) {
  const engine = new RiskEngine({ clock: new ManualClock(nowMs) });
  engine.setBook({ positions: positions.map((p) => ({ ...p, asOfMs: nowMs })) });
  engine.setMarket('BTC', { spotUsd, volDecimal: 0.6, rateDecimal: 0, asOfMs: nowMs });
  const r = engine.snapshot({ scenarios: false }).underlyings.BTC;
  if (!r) throw new Error('no BTC risk');
  return r;
}
const option = (instrument: string, sizeBase: number) => ({
  venue: 'lyra-arb',
  chain: 'evm:42161',
  instrument,
  sizeBase,
});

describe('gamma-driven bands into expiry', () => {
  // 1 BTC of the 60,000 call one hour before its expiry, delta-hedged at 60,000 with a short perp.
  const EXPIRY = Date.UTC(2026, 2, 31, 8);
  const NOW = EXPIRY - MS_PER_HOUR;
  const book = [option('BTC-USD:OPT:20260331:60000:C', 1), option('BTC-USD:PERP', -0.5)];
  const cap = GAMMA_BAND_CAP_FRACTION * 1;
  const policies: PolicyConfig[] = [
    band({ bandDelta: undefined, gammaScaled: { z: 2, windowHours: 1 } }),
    { kind: 'ww', riskAversion: 0.0002, costBps: 8, ...common },
  ];

  it('an at-the-money book an hour from expiry gets a band no wider than the cap', () => {
    const r = engineRisk(NOW, S, book);
    for (const p of policies) {
      const d = strat(p).s.decideUnderlying(r, 1);
      expect(d.bandHalfWidth, p.kind).toBeLessThanOrEqual(cap);
      expect(d.reason, p.kind).toMatch(/capped from 0\.\d+ at 0\.25/);
    }
  });

  it('a realistic move (+0.5% spot, 0.28 BTC of delta) is hedged, not held inside an unreachable band', () => {
    const r = engineRisk(NOW, S * 1.005, book);
    const T = MS_PER_HOUR / MS_PER_YEAR;
    const callDelta = normCdf((Math.log(1.005) + 0.5 * 0.36 * T) / (0.6 * Math.sqrt(T)));
    expect(r.delta).toBeCloseTo(callDelta - 0.5, 12);
    expect(r.delta).toBeGreaterThan(0.28);
    for (const p of policies) {
      const d = strat(p).s.decideUnderlying(r, 1);
      expect(d.action, `${p.kind}: ${d.reason}`).toBe('hedge');
      expect(d.side).toBe('sell');
      expect(d.tradeDeltaBase).toBeCloseTo(p.kind === 'ww' ? -(r.delta - cap) : -r.delta, 12);
    }
  });

  it('interval: the urgency yardstick is capped too, so a large drift an hour out skips the time gate', () => {
    // Hedged at the last slot ten minutes ago while the call was out of the money (short 0.1); now spot
    // is at the strike an hour from expiry: a drift of ≈ 0.4. One interval's expected delta change is
    // ≈ 0.4 too (Γ·σ·S·√1h at the money), so 1.5× it is never reached; capped at 0.25, 1.5× is 0.375.
    const p: PolicyConfig = { kind: 'interval', intervalMinutes: 60, ...common, urgencyMultiple: 1.5 };
    const { s, clock } = strat(p, new ManualClock(NOW - 10 * 60_000));
    s.recordExecution('BTC', 0.1 * S);
    clock.advance(10 * 60_000);
    const r = engineRisk(NOW, S, [option('BTC-USD:OPT:20260331:60000:C', 1), option('BTC-USD:PERP', -0.1)]);
    const uncapped = gammaScaledHalfWidth({
      z: 1,
      gamma: r.gamma,
      volDecimal: 0.6,
      spotUsd: S,
      windowMs: MS_PER_HOUR,
    });
    expect(r.delta).toBeGreaterThanOrEqual(1.5 * cap);
    expect(r.delta).toBeLessThan(1.5 * uncapped);
    const d = s.decideUnderlying(r, 1);
    expect(d, d.reason).toMatchObject({
      action: 'hedge',
      code: 'hedge-urgent',
      urgency: 'urgent',
      side: 'sell',
    });
    expect(d.tradeDeltaBase).toBeCloseTo(-r.delta, 12);
    expect(d.reason).toMatch(/every 60 min \(urgency yardstick capped from 0\.\d+ at 0\.25/);
    // A week out the yardstick (≈ 0.03) is below the cap and left alone.
    const week = engineRisk(EXPIRY - 7 * MS_PER_DAY, S, [
      option('BTC-USD:OPT:20260331:60000:C', 1),
      option('BTC-USD:PERP', -0.1),
    ]);
    expect(s.decideUnderlying(week, 2).reason).not.toMatch(/capped/);
  });

  it('leaves the band alone where it is sensible: the same option a week out', () => {
    const r = engineRisk(EXPIRY - 7 * MS_PER_DAY, S, book);
    const p = band({ bandDelta: undefined, gammaScaled: { z: 2, windowHours: 1 } });
    const d = strat(p).s.decideUnderlying(r, 1);
    expect(d.bandHalfWidth).toBeCloseTo(2 * r.gamma * 0.6 * S * Math.sqrt(T1H), 12);
    expect(d.bandHalfWidth).toBeLessThan(cap);
  });
});
const T1H = MS_PER_HOUR / MS_PER_YEAR;

describe('time gates, urgency, gas and pending orders', () => {
  const interval: PolicyConfig = { kind: 'interval', intervalMinutes: 60, ...common };

  it('interval: hedges when due, holds until the next slot, urgent drift skips the gate', () => {
    const { s, clock } = strat(interval);
    const gamma = 0.0001; // expected delta change per hour ≈ 0.0001·0.6·60000·√(1h) ≈ 0.038
    const first = s.decideUnderlying(risk({ delta: 0.05, gamma }), 1);
    expect(first.action).toBe('hedge');
    s.recordExecution('BTC', first.tradeNotionalUsd);
    clock.advance(10 * 60_000);
    const notDue = s.decideUnderlying(risk({ delta: 0.05, gamma }), 2);
    expect(notDue.code).toBe('interval-not-due');
    expect(notDue.reason).toMatch(/in 3000 s/);
    const urgent = s.decideUnderlying(risk({ delta: 0.5, gamma }), 3);
    expect(urgent).toMatchObject({ action: 'hedge', code: 'hedge-urgent', urgency: 'urgent' });
    expect(urgent.reason).toMatch(/time and gas gates skipped/);
    clock.advance(50 * 60_000);
    expect(s.decideUnderlying(risk({ delta: 0.05, gamma }), 4).code).toBe('hedge');
  });

  it('says what urgency was measured against: the band, the expected change per interval, or the smallest order', () => {
    // every urgent hedge said "drift ≥ 3× band", for an interval policy (no band) and for a book with no
    // gamma alike, whose measure is the smallest order
    const { s, clock } = strat(interval);
    s.recordExecution('BTC', 6_000);
    clock.advance(10 * 60_000);
    const withGamma = s.decideUnderlying(risk({ delta: 0.5, gamma: 0.0001 }), 1);
    expect(withGamma.code).toBe('hedge-urgent');
    expect(withGamma.reason).toMatch(
      /urgent \(drift ≥ 3× the interval's expected delta change, 0\.03\d+ BTC\)/,
    );
    const noGamma = s.decideUnderlying(risk({ delta: 0.05 }), 2);
    expect(noGamma.code).toBe('hedge-urgent');
    expect(noGamma.reason).toMatch(
      /urgent \(drift ≥ 3× the smallest order, 0\.001667 BTC, as the book has no gamma to measure drift by\)/,
    );
    const inBand = strat(band()).s.decideUnderlying(risk({ delta: 1.6 }), 1, { gasHigh: true });
    expect(inBand.reason).toMatch(/urgent \(drift ≥ 3× the band, 0\.5 BTC\)/);
  });

  it('gas waits hold normal drift, not urgent drift', () => {
    const { s } = strat(band());
    expect(s.decideUnderlying(risk({ delta: 0.8 }), 1, { gasHigh: true }).code).toBe('gas-wait');
    const d = s.decideUnderlying(risk({ delta: 1.6 }), 2, { gasHigh: true });
    expect(d).toMatchObject({ code: 'hedge-urgent', side: 'sell' });
  });

  it('a working order blocks the next hedge, even an urgent one', () => {
    const { s } = strat(band());
    const d = s.decideUnderlying(risk({ delta: 5 }), 1, { pendingOrder: true });
    expect(d).toMatchObject({ action: 'hold', code: 'pending-order' });
  });
});

describe('caps and dust', () => {
  it('per-order cap downsizes the order', () => {
    const { s } = strat(band({ maxOrderUsd: 30_000 }));
    const d = s.decideUnderlying(risk({ delta: 2 }), 1);
    expect(d.tradeDeltaBase).toBeCloseTo(-0.5, 12);
    expect(d.capped).toEqual({ wantedDeltaBase: -2, by: 'per-order' });
    expect(d.reason).toMatch(/cut from 2 by the per-order cap/);
  });

  it('per-window cap downsizes, then holds until the window rolls', () => {
    const { s, clock } = strat(band({ caps: { maxWindowUsd: 100_000, windowMinutes: 60 } }));
    s.recordExecution('BTC', 70_000);
    const d = s.decideUnderlying(risk({ delta: 1 }), 1);
    expect(d.tradeNotionalUsd).toBeCloseTo(30_000, 6);
    expect(d.capped?.by).toBe('per-window');
    s.recordExecution('BTC', d.tradeNotionalUsd);
    expect(s.decideUnderlying(risk({ delta: 1 }), 2).code).toBe('window-cap-reached');
    clock.advance(61 * 60_000);
    expect(s.decideUnderlying(risk({ delta: 1 }), 3).tradeDeltaBase).toBeCloseTo(-1, 12);
  });

  it('never rounds a needed rehedge to zero: trades the venue minimum when the band allows', () => {
    const { s } = strat(band({ bandDelta: 0.001 }));
    const d = s.decideUnderlying(risk({ delta: 0.0015 }), 1, { venueMinSizeBase: 0.002 });
    expect(d.action).toBe('hedge');
    expect(d.tradeDeltaBase).toBeCloseTo(-0.002, 12);
  });

  it('holds dust that the venue minimum would overshoot past the band', () => {
    const { s } = strat(band({ bandDelta: 0.0001 }));
    const d = s.decideUnderlying(risk({ delta: 0.0005 }), 1);
    expect(d.code).toBe('dust');
    expect(d.reason).toMatch(/below the minimum/);
  });

  it('a window cap used up exactly is a hold, not a hedge of size 0, even with no minimum order (minTradeUsd 0)', () => {
    const { s } = strat(band({ minTradeUsd: 0, caps: { maxWindowUsd: 100_000, windowMinutes: 60 } }));
    s.recordExecution('BTC', 100_000);
    const d = s.decideUnderlying(risk({ delta: 1 }), 1);
    expect(d, d.reason).toMatchObject({
      action: 'hold',
      code: 'window-cap-reached',
      tradeDeltaBase: 0,
      side: null,
    });
    expect(d.reason).toMatch(/hedge cap of \$100,000 per 60 min is used up \(\$100,000\); holding/);
    // room left below the venue minimum: held too, and the reason says what is left
    const { s: s2 } = strat(band({ caps: { maxWindowUsd: 100_000, windowMinutes: 60 } }));
    s2.recordExecution('BTC', 99_000);
    const d2 = s2.decideUnderlying(risk({ delta: 1 }), 1, { venueMinSizeBase: 0.02 });
    expect(d2).toMatchObject({ action: 'hold', code: 'window-cap-reached', tradeDeltaBase: 0 });
    expect(d2.reason).toMatch(/the \$1,000 left is below the smallest order, 0\.02 BTC/);
  });

  it('a per-order cap below the venue minimum (or minTradeUsd) holds with its own code, never an order the venue refuses', () => {
    // $600 buys 0.01 BTC; the venue takes no less than 0.02 BTC ($1,200)
    const { s } = strat(band({ maxOrderUsd: 600 }));
    const d = s.decideUnderlying(risk({ delta: 1 }), 1, { venueMinSizeBase: 0.02 });
    expect(d, d.reason).toMatchObject({
      action: 'hold',
      code: 'order-cap-below-minimum',
      tradeDeltaBase: 0,
      side: null,
      tradeNotionalUsd: 0,
    });
    expect(d.reason).toMatch(
      /maxOrderUsd \$600 \(0\.01 BTC\) is below the smallest order, 0\.02 BTC \(\$1,200/,
    );
    // minTradeUsd above maxOrderUsd: the same hold
    const { s: s2 } = strat(band({ maxOrderUsd: 50, minTradeUsd: 100 }));
    expect(s2.decideUnderlying(risk({ delta: 1 }), 1).code).toBe('order-cap-below-minimum');
    // a cap at or above the minimum still cuts and trades
    const { s: s3 } = strat(band({ maxOrderUsd: 1_200 }));
    const ok = s3.decideUnderlying(risk({ delta: 1 }), 1, { venueMinSizeBase: 0.02 });
    expect(ok).toMatchObject({ action: 'hedge', capped: { by: 'per-order' } });
    expect(ok.tradeDeltaBase).toBeCloseTo(-0.02, 12);
  });

  it('keeps only the executions a window can still count (none without caps): a 24/7 process does not grow', () => {
    const { s, clock } = strat(band());
    for (let i = 0; i < 10_000; i++) {
      s.recordExecution('BTC', 1_000);
      clock.advance(60_000);
    }
    expect(s.windowExecutions('BTC')).toBe(0);
    const capped = strat(band({ caps: { maxWindowUsd: 1e9, windowMinutes: 60 } }));
    for (let i = 0; i < 10_000; i++) {
      capped.s.recordExecution('BTC', 1_000);
      capped.clock.advance(60_000);
    }
    // what the window held when the last one was recorded: that one and the 59 of the hour before it
    expect(capped.s.windowExecutions('BTC')).toBe(60);
    // and the cap still counts them: a minute later 59 × $1,000 of $60,000 leaves $1,000
    const room = strat(band({ caps: { maxWindowUsd: 60_000, windowMinutes: 60 } }));
    for (let i = 0; i < 10_000; i++) {
      room.s.recordExecution('BTC', 1_000);
      room.clock.advance(60_000);
    }
    expect(room.s.decideUnderlying(risk({ delta: 1 }), 1).tradeNotionalUsd).toBeCloseTo(1_000, 6);
  });

  it('executions replayed out of order are kept in time order: the expired leave, the rest count', () => {
    const { s, clock } = strat(band({ caps: { maxWindowUsd: 60_000, windowMinutes: 60 } }));
    const now = clock.nowMs();
    // 50 minutes ago, 10 minutes ago, 70 minutes ago (expired), 30 minutes ago: $40,000 in the window
    for (const [agoMin, usd] of [
      [50, 10_000],
      [10, 10_000],
      [70, 50_000],
      [30, 20_000],
    ] as const)
      s.recordExecution('BTC', usd, now - agoMin * 60_000);
    expect(s.windowExecutions('BTC')).toBe(3);
    expect(s.decideUnderlying(risk({ delta: 1 }), 1).tradeNotionalUsd).toBeCloseTo(20_000, 6);
    // 15 minutes on, the one of 50 minutes ago has left the window: it is pruned first, by time
    clock.advance(15 * 60_000);
    s.recordExecution('BTC', 1_000);
    expect(s.windowExecutions('BTC')).toBe(3);
    expect(s.decideUnderlying(risk({ delta: 1 }), 1).tradeNotionalUsd).toBeCloseTo(29_000, 6);
  });

  it('refuses a spot or vol that is not positive instead of hedging past the caps with a $0 or NaN notional', () => {
    // Spot 0: the dust size was ∞ or NaN and size × 0 never exceeded maxOrderUsd, so 1 BTC went out as a
    // $0 order past the $30,000 cap; spot NaN gave a NaN notional, a negative spot a negative one.
    const { s } = strat(band({ minTradeUsd: 0, maxOrderUsd: 30_000 }));
    for (const spotUsd of [0, Number.NaN, -S, Number.POSITIVE_INFINITY])
      expect(() => s.decideUnderlying(risk({ delta: 1, spotUsd }), 1), String(spotUsd)).toThrow(
        /BTC risk given to the hedge strategy: spotUsd: spot must be a positive USD price/,
      );
    // A NaN vol made the interval policy's urgency yardstick NaN: a 0.5 BTC drift was never urgent.
    const { s: si } = strat({ kind: 'interval', intervalMinutes: 60, ...common });
    si.recordExecution('BTC', 1_000);
    for (const volDecimal of [Number.NaN, 0, -0.6])
      expect(() => si.decideUnderlying(risk({ delta: 0.5, gamma: 0.0001, volDecimal }), 1)).toThrow(
        /volDecimal: vol must be a positive decimal/,
      );
    expect(si.decideUnderlying(risk({ delta: 0.5, gamma: 0.0001 }), 1).code).toBe('hedge-urgent');
  });

  it('refuses a NaN or infinite execution, which would make every window check pass', () => {
    const { s } = strat(band({ caps: { maxWindowUsd: 100_000, windowMinutes: 60 } }));
    expect(() => s.recordExecution('BTC', Number.NaN)).toThrow(/BTC executed hedge notional/);
    expect(() => s.recordExecution('BTC', 1, Number.POSITIVE_INFINITY)).toThrow(/BTC hedge execution time/);
  });
});

describe('Leland and vega', () => {
  it('Leland vol raises the hedge vol of a short-gamma book and shifts delta by vanna', () => {
    const lv = lelandVol({
      volDecimal: 0.6,
      roundTripCostFraction: 0.002,
      intervalMs: MS_PER_HOUR,
      gammaSign: -1,
    });
    const le = (Math.sqrt(2 / Math.PI) * 0.002) / (0.6 * Math.sqrt(MS_PER_HOUR / MS_PER_YEAR));
    expect(lv.lelandNumber).toBeCloseTo(le, 12);
    expect(lv.volDecimal).toBeCloseTo(0.6 * Math.sqrt(1 + le), 12);
    const policy: PolicyConfig = { kind: 'leland', intervalMinutes: 60, costBps: 10, ...common };
    const { s } = strat(policy);
    const d = s.decideUnderlying(risk({ delta: 1, gamma: -0.0002, vannaPerVolPoint: 0.02 }), 1);
    expect(d.effectiveDelta).toBeCloseTo(1 + 0.02 * (lv.volDecimal - 0.6) * 100, 12);
    expect(d.tradeDeltaBase).toBeCloseTo(-d.effectiveDelta, 12);
  });

  it('Leland near Le ≈ 1: a book long only calls is never hedged by buying', () => {
    // Long 1 BTC of the 70,000 call a week out (delta 0.035), hedged every 5 min at 10 bps a side:
    // Le ≈ 0.86, the hedge vol drops from 60% to 22% and vanna alone shifted delta by −0.09 (a buy).
    const NOW = Date.UTC(2026, 2, 24, 8);
    const r = engineRisk(NOW, S, [option('BTC-USD:OPT:20260331:70000:C', 1)]);
    const policy: PolicyConfig = { kind: 'leland', intervalMinutes: 5, costBps: 10, ...common };
    const le = lelandVol({
      volDecimal: 0.6,
      roundTripCostFraction: 0.002,
      intervalMs: 5 * 60_000,
      gammaSign: 1,
    });
    expect(le.lelandNumber).toBeCloseTo(0.862, 3);
    expect(r.vannaPerVolPoint * (le.volDecimal - 0.6) * 100).toBeLessThan(-r.delta);
    const d = strat(policy).s.decideUnderlying(r, 1);
    // The exact Black–Scholes delta at 22% vol is 3e-7: the options' floor (0) is the right answer.
    expect(d.effectiveDelta).toBe(0);
    expect(d.tradeDeltaBase).toBe(0);
  });

  it('Leland keeps the adjusted delta inside what the options can reach, for any long-only book and cost', () => {
    const NOW = Date.UTC(2026, 0, 1, 8);
    const expiries = ['20260101', '20260102', '20260109', '20260130', '20260327'];
    const leg = fc.record({
      expiry: fc.constantFrom(...expiries),
      strike: fc.integer({ min: 40, max: 100 }).map((k) => k * 1000),
      sizeBase: fc.double({ min: 0.1, max: 5, noNaN: true }),
    });
    fc.assert(
      fc.property(
        fc.constantFrom('C', 'P'),
        fc.array(leg, { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 1, max: 240 }),
        fc.integer({ min: 1, max: 50 }),
        (type, legs, intervalMinutes, costBps) => {
          const positions = legs.map((l) =>
            option(`BTC-USD:OPT:${l.expiry}:${l.strike}:${type}`, l.sizeBase),
          );
          // One hour after 08:00 on Jan 1 the first expiry is gone; start before it.
          const r = engineRisk(NOW - MS_PER_HOUR, S, positions);
          const policy: PolicyConfig = { kind: 'leland', intervalMinutes, costBps, ...common };
          const d = strat(policy).s.decideUnderlying(r, 1);
          const gross = legs.reduce((sum, l) => sum + l.sizeBase, 0);
          // Long calls: delta in [0, gross], so the hedge only ever sells; long puts: only buys.
          if (type === 'C') {
            expect(d.effectiveDelta).toBeGreaterThanOrEqual(0);
            expect(d.tradeDeltaBase).toBeLessThanOrEqual(0);
          } else {
            expect(d.effectiveDelta).toBeLessThanOrEqual(0);
            expect(d.tradeDeltaBase).toBeGreaterThanOrEqual(0);
          }
          expect(Math.abs(d.effectiveDelta)).toBeLessThanOrEqual(gross * (1 + 1e-12));
        },
      ),
      { numRuns: 300, seed: 7 },
    );
  });

  const candidates: VegaCandidate[] = [
    {
      venue: 'lyra-arb',
      chain: 'evm:42161',
      instrument: 'BTC-USD:OPT:20260327:60000:C',
      vegaPerVolPoint: 100,
      delta: 0.5,
      priceUsd: 5000,
      costPerUnitUsd: 50,
      maxSizeBase: 3,
      sizeStepBase: 0.1,
    },
    {
      venue: 'deribit',
      chain: 'offchain',
      instrument: 'BTC-USD:OPT:20260626:60000:C',
      vegaPerVolPoint: 150,
      delta: 0.55,
      priceUsd: 8000,
      costPerUnitUsd: 120,
      maxSizeBase: 100,
      sizeStepBase: 0.1,
    },
  ];

  it('solver fills the cheapest vega per dollar first, within capacity', () => {
    // Need +600 vega: lyra costs 0.5 $/vega (max 300 vega), deribit 0.8 $/vega.
    const sol = solveVegaHedge({ vegaNow: -600, target: 0, tolerance: 50, candidates });
    expect(sol.trades.map((t) => [t.venue, t.side, Number(t.sizeBase.toFixed(6))])).toEqual([
      ['lyra-arb', 'buy', 3],
      ['deribit', 'buy', 2],
    ]);
    expect(sol.vegaAfter).toBeCloseTo(0, 9);
    expect(sol.costUsd).toBeCloseTo(3 * 50 + 2 * 120, 9);
    expect(sol.deltaChange).toBeCloseTo(3 * 0.5 + 2 * 0.55, 12);
    expect(sol.shortfall).toBe(false);
  });

  it('a vega breach adds option trades, then hedges the resulting delta', () => {
    const policy: PolicyConfig = band({
      vega: { enabled: true, bandPerVolPoint: 100, targetPerVolPoint: 0 },
    });
    const { s } = strat(policy);
    const d = s.decideUnderlying(risk({ delta: 0, vegaPerVolPoint: -600 }), 1, {
      vegaCandidates: candidates,
    });
    expect(d.vegaTrades).toHaveLength(2);
    expect(d.effectiveDelta).toBeCloseTo(2.6, 12);
    expect(d.tradeDeltaBase).toBeCloseTo(-2.6, 12);
    expect(d.reason).toMatch(/vega -600 \$\/pt is outside 0 ± 100/);
    // Inside the vega band: no option trades.
    expect(
      s.decideUnderlying(risk({ vegaPerVolPoint: -50 }), 2, { vegaCandidates: candidates }).vegaTrades,
    ).toEqual([]);
  });

  it('solver never takes a minimum order that leaves vega further from the target than it was', () => {
    // Lyra's 3 BTC bring -310 to -10, inside the ±50 band. Deribit's minimum 0.4 (60 $/pt) was taken
    // because -10 + 60 = +50 is still inside the band: $48 paid to end at +50 instead of -10.
    const withMin: VegaCandidate[] = [
      candidates[0] as VegaCandidate,
      { ...(candidates[1] as VegaCandidate), minSizeBase: 0.4 },
    ];
    const sol = solveVegaHedge({ vegaNow: -310, target: 0, tolerance: 50, candidates: withMin });
    expect(sol.trades.map((t) => [t.venue, t.side, Number(t.sizeBase.toFixed(6))])).toEqual([
      ['lyra-arb', 'buy', 3],
    ]);
    expect(sol.vegaAfter).toBeCloseTo(-10, 9);
    expect(sol.costUsd).toBeCloseTo(150, 9);
    expect(sol.shortfall).toBe(false);
    // A minimum that lands nearer the target is still taken: from -40, 0.4 of Deribit ends at +20.
    const nearer = solveVegaHedge({ vegaNow: -340, target: 0, tolerance: 50, candidates: withMin });
    expect(nearer.trades.map((t) => [t.venue, Number(t.sizeBase.toFixed(6))])).toEqual([
      ['lyra-arb', 3],
      ['deribit', 0.4],
    ]);
    expect(nearer.vegaAfter).toBeCloseTo(20, 9);
  });

  it('solver rounds a need smaller than one size step up to one step when that lands inside the band', () => {
    // 0.1 BTC of this call is 12 $/pt; the book is 11 $/pt short with a ±10 band. 11/120 = 0.09 BTC
    // rounded down to 0: no trade, and the book stayed outside its band tick after tick.
    const one: VegaCandidate = {
      venue: 'lyra-arb',
      chain: 'evm:42161',
      instrument: 'BTC-USD:OPT:20260327:60000:C',
      vegaPerVolPoint: 120,
      delta: 0.5,
      priceUsd: 5000,
      costPerUnitUsd: 50,
      maxSizeBase: 3,
      sizeStepBase: 0.1,
    };
    const sol = solveVegaHedge({ vegaNow: -11, target: 0, tolerance: 10, candidates: [one] });
    expect(sol.trades.map((t) => [t.side, Number(t.sizeBase.toFixed(6))])).toEqual([['buy', 0.1]]);
    expect(sol.vegaAfter).toBeCloseTo(1, 9);
    expect(sol.shortfall).toBe(false);
    // Short vega the other way sells the step; one that would land outside the band is not taken.
    const sell = solveVegaHedge({ vegaNow: 11, target: 0, tolerance: 10, candidates: [one] });
    expect(sell.trades.map((t) => [t.side, Number(t.sizeBase.toFixed(6))])).toEqual([['sell', 0.1]]);
    expect(sell.vegaAfter).toBeCloseTo(-1, 9);
    const far = solveVegaHedge({ vegaNow: -5, target: 0, tolerance: 4, candidates: [one] });
    expect(far.trades).toEqual([]);
  });

  it('solver: every trade, the first included, is on the step grid, rounded toward the target, never past the band', () => {
    // A minimum that is not a whole number of steps (0.25 with a step of 0.1) was taken as it is: an
    // order of 0.25 the venue refuses. The smallest order on the grid is 0.3.
    const offGrid: VegaCandidate = {
      ...(candidates[0] as VegaCandidate),
      minSizeBase: 0.25,
      sizeStepBase: 0.1,
      vegaPerVolPoint: 100,
    };
    const sol = solveVegaHedge({ vegaNow: -27, target: 0, tolerance: 10, candidates: [offGrid] });
    expect(sol.trades.map((t) => [t.side, Number(t.sizeBase.toFixed(9))])).toEqual([['buy', 0.3]]);
    expect(sol.vegaAfter).toBeCloseTo(3, 9);
    const onGrid = (size: number, step: number) => Math.abs(size / step - Math.round(size / step)) < 1e-9;
    fc.assert(
      fc.property(
        fc.double({ min: -5000, max: 5000, noNaN: true }),
        fc.double({ min: 1, max: 200, noNaN: true }),
        fc.array(
          fc.record({
            vega: fc.double({ min: 5, max: 300, noNaN: true }),
            cost: fc.double({ min: 1, max: 200, noNaN: true }),
            max: fc.double({ min: 0.05, max: 20, noNaN: true }),
            step: fc.constantFrom(0.01, 0.1, 0.25, 1),
            minSteps: fc.double({ min: 0, max: 7, noNaN: true }),
          }),
          { minLength: 1, maxLength: 4 },
        ),
        (vegaNow, tolerance, cs) => {
          const cands: VegaCandidate[] = cs.map((c, i) => ({
            venue: `v${i}`,
            chain: 'offchain',
            instrument: `OPT-${i}`,
            vegaPerVolPoint: c.vega,
            delta: 0.5,
            priceUsd: 1000,
            costPerUnitUsd: c.cost,
            maxSizeBase: c.max,
            sizeStepBase: c.step,
            minSizeBase: c.minSteps * c.step,
          }));
          const sol = solveVegaHedge({ vegaNow, target: 0, tolerance, candidates: cands });
          let vega = vegaNow;
          for (const [k, t] of sol.trades.entries()) {
            const c = cands.find((x) => x.instrument === t.instrument) as VegaCandidate;
            expect(onGrid(t.sizeBase, c.sizeStepBase as number), `trade ${k} ${t.sizeBase}`).toBe(true);
            expect(t.sizeBase).toBeGreaterThanOrEqual((c.minSizeBase as number) - 1e-12);
            expect(t.sizeBase).toBeLessThanOrEqual(c.maxSizeBase + 1e-12);
            const before = vega;
            vega += t.vegaPerVolPoint;
            // rounded toward zero, or else the smallest order, taken only when it ends inside the band
            // and nearer the target
            if (Math.sign(vega) !== Math.sign(before) && Math.abs(vega) > 1e-9 * Math.abs(before)) {
              expect(Math.abs(vega), `trade ${k} passed the target`).toBeLessThanOrEqual(tolerance);
              expect(Math.abs(vega)).toBeLessThan(Math.abs(before));
            }
          }
          expect(Math.abs(sol.vegaAfter - vega)).toBeLessThan(1e-9 * (1 + Math.abs(vegaNow)));
        },
      ),
      { numRuns: 2000, seed: 11 },
    );
  });

  it('a vega breach held for a working order is not reported as within the band', () => {
    const policy: PolicyConfig = band({
      vega: { enabled: true, bandPerVolPoint: 100, targetPerVolPoint: 0 },
    });
    const d = strat(policy).s.decideUnderlying(risk({ vegaPerVolPoint: -600 }), 1, {
      pendingOrder: true,
      vegaCandidates: candidates,
    });
    expect(d).toMatchObject({ action: 'hold', code: 'pending-order', vegaTrades: [] });
    expect(d.reason).not.toMatch(/within/);
    expect(d.reason).toMatch(
      /vega -600 \$\/pt is outside 0 ± 100: no option trade while a hedge order is working/,
    );
  });

  it('is deterministic: same snapshot, same decision', () => {
    const a = strat(band()).s.decideUnderlying(risk({ delta: 0.9 }), 7);
    const b = strat(band()).s.decideUnderlying(risk({ delta: 0.9 }), 7);
    expect(a).toEqual(b);
  });
});

describe('P&L attribution', () => {
  it('splits an interval into delta, gamma, theta, vega, funding, fees, slippage and gas', () => {
    const a = attributePnl({
      start: {
        spotUsd: 60_000,
        volDecimal: 0.6,
        delta: 0.1,
        gamma: 0.001,
        vegaPerVolPoint: 200,
        thetaPerDay: -240,
      },
      endSpotUsd: 61_000,
      endVolDecimal: 0.62,
      elapsedMs: 6 * MS_PER_HOUR,
      fundingUsd: -3,
      fills: [
        { side: 'sell', sizeBase: 1, priceUsd: 60_990, referencePriceUsd: 61_000, feeUsd: 30, gasUsd: 0.2 },
      ],
      actualPnlUsd: 1000,
    });
    expect(a.deltaUsd).toBeCloseTo(100, 9);
    expect(a.gammaUsd).toBeCloseTo(500, 9);
    expect(a.thetaUsd).toBeCloseTo(-60, 9);
    expect(a.vegaUsd).toBeCloseTo(400, 9);
    expect(a.feesUsd).toBe(-30);
    expect(a.slippageUsd).toBeCloseTo(-10, 9);
    expect(a.gasUsd).toBeCloseTo(-0.2, 12);
    expect(a.totalUsd).toBeCloseTo(100 + 500 - 60 + 400 - 3 - 30 - 10 - 0.2, 9);
    expect(a.scalpingNetUsd).toBeCloseTo(500 - 60 - 30 - 10 - 0.2, 9);
    expect(a.unexplainedUsd).toBeCloseTo(1000 - a.totalUsd, 9);
    const sum = sumAttributions([a, a]);
    expect(sum.gammaUsd).toBeCloseTo(1000, 9);
    expect(sum.unexplainedUsd).toBeCloseTo(2 * (a.unexplainedUsd ?? 0), 9);
  });
});

describe('vegaCandidatesFromChain', () => {
  it('prices listed options with the risk model and costs them by spread and fee', () => {
    const now = Date.UTC(2026, 0, 1, 8);
    const id = 'BTC-USD:OPT:20260327:60000:C';
    const c = vegaCandidatesFromChain({
      venue: 'lyra-arb',
      chain: 'evm:42161',
      underlying: 'BTC',
      spotUsd: S,
      volDecimal: 0.6,
      nowMs: now,
      feeBps: 3,
      maxSizeBase: 10,
      options: [
        {
          instrument: instrumentMeta(id),
          mark: {
            venue: 'lyra-arb',
            instrument: id,
            markPriceUsd: 5000,
            ivDecimal: 0.55,
            bidUsd: 4950,
            askUsd: 5050,
            asOfMs: now,
          },
        },
        {
          instrument: instrumentMeta('ETH-USD:OPT:20260327:3000:C'),
          mark: {
            venue: 'lyra-arb',
            instrument: 'ETH-USD:OPT:20260327:3000:C',
            markPriceUsd: 200,
            asOfMs: now,
          },
        },
      ],
    });
    expect(c).toHaveLength(1);
    expect(c[0]?.costPerUnitUsd).toBeCloseTo(50 + S * 0.0003, 9);
    expect(c[0]?.vegaPerVolPoint).toBeGreaterThan(0);
    expect(c[0]?.delta).toBeGreaterThan(0.4);
    expect(c[0]?.priceUsd).toBe(5000);
  });

  it('prices an option whose mark IV no venue quotes (a percentage, or not positive) as the risk engine does', () => {
    // A venue giving 55 for 55%: the risk engine leaves that IV out (flat 60% vol). At 5500% vol the
    // candidate had delta 1 and vega ~1e-36 $/pt, so the solver bought its whole size for almost no vega
    // and the delta hedge sold 1 BTC per option whose delta the book then carried as 0.56.
    const now = Date.UTC(2026, 0, 1, 8);
    const id = 'BTC-USD:OPT:20260327:60000:C';
    const held = engineRisk(now, S, [option(id, 1)]);
    const mark = (ivDecimal: number) => ({
      venue: 'lyra-arb',
      instrument: id,
      markPriceUsd: 5000,
      ivDecimal,
      bidUsd: 4950,
      askUsd: 5050,
      asOfMs: now,
    });
    for (const iv of [55, 0]) {
      const c = vegaCandidatesFromChain({
        venue: 'lyra-arb',
        chain: 'evm:42161',
        underlying: 'BTC',
        spotUsd: S,
        volDecimal: 0.6,
        nowMs: now,
        feeBps: 3,
        maxSizeBase: 10,
        options: [{ instrument: instrumentMeta(id), mark: mark(iv) }],
      });
      expect(c, `iv ${iv}`).toHaveLength(1);
      expect(c[0]?.delta, `iv ${iv}`).toBeCloseTo(held.delta, 12);
      expect(c[0]?.vegaPerVolPoint, `iv ${iv}`).toBeCloseTo(held.vegaPerVolPoint, 9);
    }
  });
});
