import type { PolicyConfig } from '@xhedge/config';
import { ManualClock } from '@xhedge/core';
import type { UnderlyingRisk } from '@xhedge/risk';
import {
  gammaBandCapBase,
  gammaScaledHalfWidth,
  HedgeStrategy,
  lelandVol,
  wwHalfWidth,
} from '@xhedge/strategy';
import { BacktestInputError } from './errors.ts';

/** What the hedger sees at one decision time of one path (one underlying). */
export interface HedgeState {
  /** Simulated time, whole ms since the start of the run. */
  nowMs: number;
  spotUsd: number;
  /**
   * Current hedge position, underlying units (perp or spot), including legs already planned that wait
   * for a collateral transfer (so the hedger does not plan the same drift twice).
   */
  hedgeBase: number;
  /**
   * Delta of the option book (size applied), underlying units: the options alive at this step only
   * (expired ones have settled into cash), without the hedge. This is the risk snapshot's
   * `optionDeltaBase`; the snapshot's `delta` is this plus the hedge.
   */
  bookDelta: number;
  /**
   * Least and greatest delta the live options can have at any spot, vol or time, underlying units:
   * −(long puts + short calls) and long calls + short puts (the snapshot's `optionDeltaFloorBase` and
   * `optionDeltaCeilingBase`). The strategy keeps Leland's vol-adjusted delta inside them and caps
   * gamma-driven bands and the urgency yardstick at a fraction of ceiling − floor; without them a
   * backtest would rank policies by rules the live system does not run.
   */
  optionDeltaFloorBase: number;
  optionDeltaCeilingBase: number;
  /** Gamma of the option book (size applied), per 1 USD move. */
  bookGamma: number;
  /** Delta change of the option book per 0.01 vol. */
  bookVannaPerVolPoint: number;
  /** The hedger's pricing vol, decimal. */
  volDecimal: number;
  rateDecimal: number;
  /** |Γ|-weighted time to expiry of the options, years. */
  gammaWeightedTenorYears: number;
}

/**
 * Makes the hedge decisions of one path. `decide` returns the signed hedge trade (underlying units,
 * buy > 0; 0 = hold); the engine calls `recordExecution` after every trade it makes.
 */
export interface HedgeDecider {
  decide(s: HedgeState, step: number): number;
  recordExecution(notionalUsd: number, atMs: number): void;
}

/** How decisions are made: the live `HedgeStrategy` class, or the kernel (same rules, no allocation). */
export type DecisionMode = 'strategy' | 'kernel';

/** Policies the kernel can run; the others (rolling window caps, vega hedging) need the live class. */
export function kernelSupports(policy: PolicyConfig): boolean {
  return policy.caps === undefined && !policy.vega?.enabled;
}

/** Rejects what the backtester does not simulate rather than silently ignoring it. */
export function assertSimulable(policy: PolicyConfig): void {
  if (policy.vega?.enabled)
    throw new BacktestInputError(
      'vega hedging with options is not simulated by the backtester; disable policy.vega',
    );
}

/**
 * The live decision code: one `HedgeStrategy` (@xhedge/strategy) per path on a manual clock, fed a
 * risk snapshot built from the simulated book. Exactly what the orchestrator runs, so it is the
 * reference; it formats operator-facing reasons on every call, which makes it slow for big runs.
 */
export function strategyDecider(policy: PolicyConfig, underlying = 'BTC'): HedgeDecider {
  assertSimulable(policy);
  const clock = new ManualClock(0);
  const strategy = new HedgeStrategy({ clock, defaultPolicy: policy });
  const risk: UnderlyingRisk = {
    underlying,
    spotUsd: 1,
    volDecimal: 1,
    rateDecimal: 0,
    gammaWeightedTenorYears: 0,
    // Set on every decision (below); here so the object keeps one shape.
    optionDeltaBase: 0,
    optionDeltaFloorBase: 0,
    optionDeltaCeilingBase: 0,
    positionCount: 1,
    vegaByExpiry: {},
    vegaByBucket: {},
    byVenue: {},
    byChain: {},
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
    decide(s, step) {
      clock.set(s.nowMs);
      risk.spotUsd = s.spotUsd;
      // Vol must be positive in a snapshot; a zero pricing vol is its small limit.
      risk.volDecimal = Math.max(s.volDecimal, 1e-12);
      risk.rateDecimal = s.rateDecimal;
      risk.gammaWeightedTenorYears = s.gammaWeightedTenorYears;
      // The snapshot's delta is the whole book: options plus the hedge.
      risk.delta = s.bookDelta + s.hedgeBase;
      risk.deltaUsd = risk.delta * s.spotUsd;
      risk.netDeltaCoin = risk.delta;
      risk.gamma = s.bookGamma;
      risk.gamma1PctUsd = s.bookGamma * s.spotUsd * 0.01 * s.spotUsd;
      risk.vannaPerVolPoint = s.bookVannaPerVolPoint;
      // The book is all options, so its option delta is bookDelta (the hedge is the rest of `delta`).
      risk.optionDeltaBase = s.bookDelta;
      risk.optionDeltaFloorBase = s.optionDeltaFloorBase;
      risk.optionDeltaCeilingBase = s.optionDeltaCeilingBase;
      const d = strategy.decideUnderlying(risk, step);
      return d.action === 'hedge' ? d.tradeDeltaBase : 0;
    },
    recordExecution(notionalUsd, atMs) {
      strategy.recordExecution(underlying, notionalUsd, atMs);
    },
  };
}

/**
 * The same rules as `HedgeStrategy.decideUnderlying` (band, time gate, urgency override, dust,
 * per-order cap, to-edge sizing for Whalley–Wilmott, Leland's delta kept within the options' delta
 * range, gamma-driven bands and the urgency yardstick capped by the options' gross size), built on the
 * strategy package's exported band functions, without snapshots or reason strings. A test checks it
 * against {@link strategyDecider} path by path.
 */
export function kernelDecider(policy: PolicyConfig): HedgeDecider {
  assertSimulable(policy);
  if (!kernelSupports(policy))
    throw new BacktestInputError('rolling window caps need the live strategy: use decisions: strategy');
  let lastHedgeMs: number | null = null;
  const target = policy.targetDelta;
  return {
    decide(s) {
      const S = s.spotUsd;
      const vol = Math.max(s.volDecimal, 1e-12);
      let eff = s.bookDelta + s.hedgeBase;
      // As the strategy: computed for every policy, so a range that is not one throws here too.
      const bandCapBase = gammaBandCapBase({
        optionDeltaFloorBase: s.optionDeltaFloorBase,
        optionDeltaCeilingBase: s.optionDeltaCeilingBase,
      });
      let band = 0;
      let urgencyRef = 0;
      let gateMs: number | null = null;
      let toEdge = false;
      switch (policy.kind) {
        case 'interval':
        case 'leland': {
          gateMs = policy.intervalMinutes * 60_000;
          // The urgency yardstick grows with Γ into expiry: capped like the gamma-driven bands.
          urgencyRef = Math.min(
            gammaScaledHalfWidth({
              z: 1,
              gamma: s.bookGamma,
              volDecimal: vol,
              spotUsd: S,
              windowMs: gateMs,
            }),
            bandCapBase,
          );
          if (policy.kind === 'leland' && s.bookGamma !== 0) {
            const lv = lelandVol({
              volDecimal: vol,
              roundTripCostFraction: (2 * policy.costBps) / 10_000,
              intervalMs: gateMs,
              gammaSign: Math.sign(s.bookGamma),
            });
            // The strategy's clamp, in its order of operations (the parity test compares fills exactly):
            // the linear vanna step overshoots near Le ≈ 1, past any delta the options can have.
            const linearAdj = s.bookVannaPerVolPoint * (lv.volDecimal - vol) * 100;
            const adjusted = Math.min(
              Math.max(s.bookDelta + linearAdj, s.optionDeltaFloorBase),
              s.optionDeltaCeilingBase,
            );
            eff += adjusted - s.bookDelta;
          }
          break;
        }
        case 'band': {
          const scaled = policy.gammaScaled
            ? gammaScaledHalfWidth({
                z: policy.gammaScaled.z,
                gamma: s.bookGamma,
                volDecimal: vol,
                spotUsd: S,
                windowMs: policy.gammaScaled.windowHours * 3_600_000,
              })
            : 0;
          // Only the gamma-driven part is capped; the absolute band is the operator's.
          band = Math.max(policy.bandDelta ?? 0, Math.min(scaled, bandCapBase));
          urgencyRef = band;
          break;
        }
        case 'ww': {
          band = Math.min(
            wwHalfWidth({
              spotUsd: S,
              gamma: s.bookGamma,
              costFraction: policy.costBps / 10_000,
              riskAversion: policy.riskAversion,
              rateDecimal: s.rateDecimal,
              tenorYears: s.gammaWeightedTenorYears,
            }),
            bandCapBase,
          );
          urgencyRef = band;
          toEdge = true;
          break;
        }
      }
      const drift = eff - target;
      const absDrift = Math.abs(drift);
      const dustBase = policy.minTradeUsd / S;
      urgencyRef = Math.max(urgencyRef, dustBase);
      const urgent = absDrift >= policy.urgencyMultiple * urgencyRef && absDrift > band;
      if (absDrift <= band) return 0;
      if (gateMs !== null && !urgent && lastHedgeMs !== null && s.nowMs - lastHedgeMs < gateMs) return 0;
      let size = toEdge ? absDrift - band : absDrift;
      if (size < dustBase) {
        if (dustBase <= absDrift + band) size = dustBase;
        else return 0;
      }
      if (policy.maxOrderUsd !== undefined && size * S > policy.maxOrderUsd) size = policy.maxOrderUsd / S;
      return drift > 0 ? -size : size;
    },
    recordExecution(_notionalUsd, atMs) {
      lastHedgeMs = atMs;
    },
  };
}

/** The decider for a policy: `kernel` when it supports the policy (unless `strategy` is forced). */
export function deciderFor(
  policy: PolicyConfig,
  mode: DecisionMode | 'auto' = 'auto',
  underlying?: string,
): HedgeDecider {
  if (mode === 'strategy' || (mode === 'auto' && !kernelSupports(policy)))
    return strategyDecider(policy, underlying);
  return kernelDecider(policy);
}
