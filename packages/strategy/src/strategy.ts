import type { PolicyConfig } from '@xhedge/config';
import {
  assertFinite,
  type Clock,
  deterministicId,
  MS_PER_HOUR,
  type Side,
  type Urgency,
  ValidationError,
} from '@xhedge/core';
import type { RiskSnapshot, UnderlyingRisk } from '@xhedge/risk';
import {
  GAMMA_BAND_CAP_FRACTION,
  gammaBandCapBase,
  gammaScaledHalfWidth,
  lelandVol,
  wwHalfWidth,
} from './bands.ts';
import { type OptionTrade, solveVegaHedge, type VegaCandidate } from './vega.ts';

/** Why a decision came out as it did (stable codes for dashboards and tests; `reason` has the words). */
export type DecisionCode =
  | 'inside-band'
  | 'interval-not-due'
  | 'pending-order'
  | 'gas-wait'
  | 'dust'
  | 'window-cap-reached'
  | 'order-cap-below-minimum'
  | 'hedge'
  | 'hedge-urgent'
  | 'vega-only';

/** What the strategy decided for one underlying. `tradeDeltaBase` is what routing must execute (signed). */
export interface HedgeDecision {
  /** Deterministic: the same snapshot and underlying always give the same id. */
  id: string;
  underlying: string;
  snapshotSeq: number;
  asOfMs: number;
  policy: PolicyConfig['kind'];
  action: 'hold' | 'hedge';
  code: DecisionCode;
  urgency: Urgency;
  spotUsd: number;
  /** Book delta from the snapshot, underlying units. */
  bookDelta: number;
  /** Delta the policy hedges: book delta + vega trades' delta (+ Leland adjustment). */
  effectiveDelta: number;
  targetDelta: number;
  /** effectiveDelta − targetDelta. */
  driftDelta: number;
  /** Half-width of the no-trade band used, underlying units. */
  bandHalfWidth: number;
  /** Signed delta to trade with perps/spot (buy > 0), underlying units; 0 on hold. */
  tradeDeltaBase: number;
  side: Side | null;
  tradeNotionalUsd: number;
  /** Option trades to bring vega back inside its band (traded before the delta hedge). */
  vegaTrades: OptionTrade[];
  /** The order was cut by a cap: how much was wanted and which cap cut it. */
  capped?: { wantedDeltaBase: number; by: 'per-order' | 'per-window' };
  /** Plain words for the operator. */
  reason: string;
}

/** What the strategy knows from outside the snapshot for one underlying. */
export interface DecisionContext {
  /** A hedge order for this underlying is still working: never stack another on it. */
  pendingOrder?: boolean;
  /** Gas is expensive on the chains we would hedge on: wait unless the drift is urgent. */
  gasHigh?: boolean;
  /** Smallest minimum order size among the venues that can take the hedge, underlying units. */
  venueMinSizeBase?: number;
  /** Listed options the vega solver may trade. */
  vegaCandidates?: readonly VegaCandidate[];
}

export interface HedgeStrategyOptions {
  clock: Clock;
  /** Policy for underlyings without their own entry. */
  defaultPolicy: PolicyConfig;
  perUnderlying?: Readonly<Record<string, PolicyConfig>>;
}

interface UnderlyingState {
  lastHedgeMs: number | null;
  /** Executed hedge notionals in the rolling window: [atMs, usd]. */
  window: [number, number][];
}

/**
 * The live options' delta and the range it can take at any vol (see `UnderlyingRisk`), or null when the
 * snapshot does not carry them (snapshots stored before they existed, books built by hand).
 */
function optionDeltaRange(
  risk: UnderlyingRisk,
): { deltaBase: number; floorBase: number; ceilingBase: number } | null {
  const { optionDeltaBase, optionDeltaFloorBase, optionDeltaCeilingBase } = risk;
  if (
    optionDeltaBase === undefined ||
    optionDeltaFloorBase === undefined ||
    optionDeltaCeilingBase === undefined
  )
    return null;
  return { deltaBase: optionDeltaBase, floorBase: optionDeltaFloorBase, ceilingBase: optionDeltaCeilingBase };
}

const fmt = (x: number, d = 4) => (Math.abs(x) >= 1000 ? x.toFixed(0) : Number(x.toPrecision(d)).toString());
const usd = (x: number) => `$${Math.round(Math.abs(x)).toLocaleString('en-US')}`;

/**
 * Decides, per underlying, whether and how much to hedge under its configured policy. Deterministic:
 * the only inputs are the snapshot, the context, the injected clock and the executions recorded
 * through {@link HedgeStrategy.recordExecution}.
 */
export class HedgeStrategy {
  readonly #clock: Clock;
  readonly #default: PolicyConfig;
  readonly #per: Readonly<Record<string, PolicyConfig>>;
  readonly #state = new Map<string, UnderlyingState>();

  constructor(opts: HedgeStrategyOptions) {
    this.#clock = opts.clock;
    this.#default = opts.defaultPolicy;
    this.#per = opts.perUnderlying ?? {};
  }

  policyFor(underlying: string): PolicyConfig {
    return this.#per[underlying] ?? this.#default;
  }

  /**
   * Tells the strategy a delta hedge went out (time gates and window caps count from it). Only the
   * delta hedge: option (vega) trades are not what `intervalMinutes`, `maxOrderUsd` or `caps` limit.
   * Executions that no window can count any more are dropped here (all of them when the policy has no
   * `caps`), so a process that runs for months keeps only the window's worth.
   */
  recordExecution(underlying: string, notionalUsd: number, atMs: number = this.#clock.nowMs()): void {
    // a NaN here would make the window's sum NaN, and every cap check against it pass
    assertFinite(`${underlying} executed hedge notional (USD)`, notionalUsd);
    assertFinite(`${underlying} hedge execution time (ms)`, atMs);
    const st = this.#stateOf(underlying);
    // replayed executions may come out of order: the time gate counts from the latest
    st.lastHedgeMs = st.lastHedgeMs === null ? atMs : Math.max(st.lastHedgeMs, atMs);
    const caps = this.policyFor(underlying).caps;
    if (!caps) {
      st.window = [];
      return;
    }
    const windowMs = caps.windowMinutes * 60_000;
    const nowMs = this.#clock.nowMs();
    // The window is kept in time order, so the expired are at its front and an execution goes at its
    // end: constant work per execution (a filter of the whole window on every call made replaying a
    // long window's executions at start quadratic: seconds for 20,000, with the event loop blocked).
    const w = st.window;
    let expired = 0;
    while (expired < w.length && nowMs - (w[expired] as [number, number])[0] >= windowMs) expired++;
    if (expired > 0) w.splice(0, expired);
    if (nowMs - atMs < windowMs) {
      let at = w.length; // a replayed execution older than the newest goes in its place
      while (at > 0 && (w[at - 1] as [number, number])[0] > atMs) at--;
      w.splice(at, 0, [atMs, Math.abs(notionalUsd)]);
    }
  }

  /** How many executions the strategy holds for the underlying's window cap (none without `caps`). */
  windowExecutions(underlying: string): number {
    return this.#state.get(underlying)?.window.length ?? 0;
  }

  /** One decision per underlying in the snapshot, in the snapshot's order. */
  decide(snapshot: RiskSnapshot, ctx: Readonly<Record<string, DecisionContext>> = {}): HedgeDecision[] {
    return Object.values(snapshot.underlyings).map((risk) =>
      this.decideUnderlying(risk, snapshot.seq, ctx[risk.underlying] ?? {}),
    );
  }

  decideUnderlying(risk: UnderlyingRisk, snapshotSeq: number, ctx: DecisionContext = {}): HedgeDecision {
    const nowMs = this.#clock.nowMs();
    const policy = this.policyFor(risk.underlying);
    const st = this.#stateOf(risk.underlying);
    const S = risk.spotUsd;
    const U = risk.underlying;
    // Every USD amount (dust, caps) divides or multiplies by spot and the bands scale with vol: a spot of
    // 0, NaN or below 0 made the caps' checks false and hedged the whole drift past maxOrderUsd with a
    // notional of $0, NaN or −$60,000; a NaN vol made the interval policy's urgency never fire.
    const bad: { path: string; message: string }[] = [];
    if (!(S > 0) || !Number.isFinite(S))
      bad.push({ path: 'spotUsd', message: `spot must be a positive USD price (got ${S})` });
    if (!(risk.volDecimal > 0) || !Number.isFinite(risk.volDecimal))
      bad.push({ path: 'volDecimal', message: `vol must be a positive decimal (got ${risk.volDecimal})` });
    if (bad.length) throw new ValidationError(`${U} risk given to the hedge strategy`, bad);
    const notes: string[] = [];

    // Vega first: its option trades change the delta the hedge must cover.
    let vegaTrades: OptionTrade[] = [];
    let vegaDelta = 0;
    if (policy.vega?.enabled) {
      const target = policy.vega.targetPerVolPoint;
      const band = policy.vega.bandPerVolPoint;
      const off = risk.vegaPerVolPoint - target;
      if (Math.abs(off) > band && ctx.pendingOrder)
        // (it said "within" here: an operator read a breached vega band as fine)
        notes.push(
          `vega ${fmt(risk.vegaPerVolPoint)} $/pt is outside ${fmt(target)} ± ${fmt(band)}: no option trade while a hedge order is working`,
        );
      else if (Math.abs(off) > band) {
        const sol = solveVegaHedge({
          vegaNow: risk.vegaPerVolPoint,
          target,
          tolerance: band,
          candidates: ctx.vegaCandidates ?? [],
        });
        vegaTrades = sol.trades;
        vegaDelta = sol.deltaChange;
        notes.push(
          `vega ${fmt(risk.vegaPerVolPoint)} $/pt is outside ${fmt(target)} ± ${fmt(band)}: ` +
            (sol.trades.length
              ? `${sol.trades.map((t) => `${t.side} ${fmt(t.sizeBase)} ${t.instrument} on ${t.venue}`).join(', ')} ` +
                `(cost ${usd(sol.costUsd)}) brings it to ${fmt(sol.vegaAfter)}`
              : 'no listed option can take the trade') +
            (sol.shortfall ? ' — still outside the band (liquidity or minimum sizes)' : ''),
        );
      } else notes.push(`vega ${fmt(risk.vegaPerVolPoint)} $/pt is within ${fmt(target)} ± ${fmt(band)}`);
    }

    let effectiveDelta = risk.delta + vegaDelta;
    const targetDelta = policy.targetDelta;
    const options = optionDeltaRange(risk);
    const bandCapBase = options
      ? gammaBandCapBase({
          optionDeltaFloorBase: options.floorBase,
          optionDeltaCeilingBase: options.ceilingBase,
        })
      : null;
    const capWords = (uncappedBase: number, cappedBase: number) =>
      cappedBase < uncappedBase
        ? ` capped from ${fmt(uncappedBase)} at ${fmt(cappedBase)}, ${fmt(GAMMA_BAND_CAP_FRACTION)} of the options' gross size: their delta cannot move much further`
        : '';
    let band = 0;
    let urgencyRef = 0;
    let timeGateMs: number | null = null;
    let toEdge = false;
    let bandWords = '';
    switch (policy.kind) {
      case 'interval':
      case 'leland': {
        const intervalMs = policy.intervalMinutes * 60_000;
        timeGateMs = intervalMs;
        // Expected delta change over one interval: the yardstick for "urgent" between scheduled hedges.
        // It grows with Γ into expiry like a gamma-driven band and is capped like one: uncapped, in the
        // last hours it outgrew what the options' delta could still move and no drift was ever urgent.
        const uncapped = gammaScaledHalfWidth({
          z: 1,
          gamma: risk.gamma,
          volDecimal: risk.volDecimal,
          spotUsd: S,
          windowMs: intervalMs,
        });
        urgencyRef = bandCapBase === null ? uncapped : Math.min(uncapped, bandCapBase);
        bandWords = `every ${fmt(policy.intervalMinutes)} min`;
        if (urgencyRef < uncapped) bandWords += ` (urgency yardstick${capWords(uncapped, urgencyRef)})`;
        if (policy.kind === 'leland' && risk.gamma !== 0) {
          const lv = lelandVol({
            volDecimal: risk.volDecimal,
            roundTripCostFraction: (2 * policy.costBps) / 10_000,
            intervalMs,
            gammaSign: Math.sign(risk.gamma),
          });
          // First order in vol: Δ(σ_adj) ≈ Δ(σ) + vanna · (σ_adj − σ) in vol points.
          const linearAdj = risk.vannaPerVolPoint * (lv.volDecimal - risk.volDecimal) * 100;
          let adj = linearAdj;
          let clampWords = options ? '' : ' (the snapshot has no option delta range: unclamped)';
          if (options) {
            // Near Le ≈ 1 the vol step is tens of points and the linear step overshoots past any delta
            // the options can have: a book of long OTM calls came out short and its hedge bought. A
            // call's delta stays in (0, 1) and a put's in (−1, 0) at every vol, so the exact delta at
            // σ_adj is within the options' floor and ceiling: clamping there removes only impossible
            // values (a long-calls book never turns short).
            const adjusted = Math.min(
              Math.max(options.deltaBase + linearAdj, options.floorBase),
              options.ceilingBase,
            );
            adj = adjusted - options.deltaBase;
            if (adj !== linearAdj)
              clampWords = ` (vanna alone gave ${fmt(linearAdj)}: kept within the options' delta range ${fmt(options.floorBase)} to ${fmt(options.ceilingBase)})`;
          }
          effectiveDelta += adj;
          bandWords += `, Leland vol ${fmt(lv.volDecimal * 100, 3)}% (Le ${fmt(lv.lelandNumber, 3)}) shifts delta by ${fmt(adj)}${clampWords}`;
        }
        break;
      }
      case 'band': {
        const abs = policy.bandDelta ?? 0;
        const uncapped = policy.gammaScaled
          ? gammaScaledHalfWidth({
              z: policy.gammaScaled.z,
              gamma: risk.gamma,
              volDecimal: risk.volDecimal,
              spotUsd: S,
              windowMs: policy.gammaScaled.windowHours * MS_PER_HOUR,
            })
          : 0;
        // The operator's absolute band is theirs to set; only the gamma-driven part is capped.
        const scaled = bandCapBase === null ? uncapped : Math.min(uncapped, bandCapBase);
        band = Math.max(abs, scaled);
        urgencyRef = band;
        bandWords =
          scaled > abs
            ? `±${fmt(band)} band (gamma-scaled: ${fmt(policy.gammaScaled?.z ?? 0)}·|Γ|·σ·S·√${fmt(policy.gammaScaled?.windowHours ?? 0)}h${capWords(uncapped, scaled)})`
            : `±${fmt(band)} band`;
        break;
      }
      case 'ww': {
        const uncapped = wwHalfWidth({
          spotUsd: S,
          gamma: risk.gamma,
          costFraction: policy.costBps / 10_000,
          riskAversion: policy.riskAversion,
          rateDecimal: risk.rateDecimal,
          tenorYears: risk.gammaWeightedTenorYears,
        });
        // Γ^{2/3} blows up into expiry too (the asymptotics assume the band is small against what
        // the options' delta can still do): capped like the gamma-scaled band.
        band = bandCapBase === null ? uncapped : Math.min(uncapped, bandCapBase);
        urgencyRef = band;
        toEdge = true;
        bandWords = `±${fmt(band)} Whalley–Wilmott band (cost ${fmt(policy.costBps)} bps, risk aversion ${fmt(policy.riskAversion)}${capWords(uncapped, band)})`;
        break;
      }
    }
    assertFinite(`${U} band`, band);
    assertFinite(`${U} effective delta`, effectiveDelta);

    const outside = timeGateMs === null ? `outside the ${bandWords}` : `scheduled hedge (${bandWords})`;
    const drift = effectiveDelta - targetDelta;
    const dustBase = Math.max(policy.minTradeUsd / S, ctx.venueMinSizeBase ?? 0);
    // What "urgent" is measured against: the band, or for a time-gated policy the delta change the book's
    // gamma makes over one interval; never less than the smallest order. A book with no gamma (and no
    // absolute bandDelta) has a yardstick of 0, so the smallest order is the measure: its delta cannot
    // move with the market, so any drift it has came from a position change (an expiry, a fill), and that
    // is treated as urgent once it is urgencyMultiple smallest orders. The reason says which measure it was.
    // built only for an urgent decision's reason (every decision of every tick passes here)
    const measuredBy = urgencyRef;
    const yardstickWords = () =>
      dustBase > measuredBy
        ? `the smallest order, ${fmt(dustBase)} ${U}, ` +
          (measuredBy === 0
            ? 'as the book has no gamma to measure drift by'
            : `above the ${timeGateMs === null ? 'band' : "interval's expected delta change"} of ${fmt(measuredBy)}`)
        : timeGateMs === null
          ? `the band, ${fmt(measuredBy)} ${U}`
          : `the interval's expected delta change, ${fmt(measuredBy)} ${U}`;
    urgencyRef = Math.max(urgencyRef, dustBase);
    const urgent = Math.abs(drift) >= policy.urgencyMultiple * urgencyRef && Math.abs(drift) > band;
    const urgency: Urgency = urgent ? 'urgent' : 'normal';
    const head = `${U}: delta ${fmt(effectiveDelta)} vs target ${fmt(targetDelta)} (drift ${fmt(drift)}, ${usd(drift * S)})`;

    const base = {
      id: deterministicId('dec', U, snapshotSeq),
      underlying: U,
      snapshotSeq,
      asOfMs: nowMs,
      policy: policy.kind,
      urgency,
      spotUsd: S,
      bookDelta: risk.delta,
      effectiveDelta,
      targetDelta,
      driftDelta: drift,
      bandHalfWidth: band,
      vegaTrades,
    };
    const vegaNote = notes.length ? ` ${notes.join('; ')}.` : '';
    const hold = (code: DecisionCode, why: string): HedgeDecision => ({
      ...base,
      action: vegaTrades.length && code !== 'pending-order' ? 'hedge' : 'hold',
      code: vegaTrades.length && code !== 'pending-order' ? 'vega-only' : code,
      vegaTrades: code === 'pending-order' ? [] : vegaTrades,
      tradeDeltaBase: 0,
      side: null,
      tradeNotionalUsd: 0,
      reason: `${head}: ${why}.${vegaNote}`,
    });

    if (ctx.pendingOrder) return hold('pending-order', 'a hedge order is still working; waiting for it');
    if (Math.abs(drift) <= band)
      return hold(
        'inside-band',
        timeGateMs === null ? `inside the ${bandWords}; no trade` : 'at the target; no trade',
      );
    if (timeGateMs !== null && !urgent && st.lastHedgeMs !== null && nowMs - st.lastHedgeMs < timeGateMs) {
      const dueIn = timeGateMs - (nowMs - st.lastHedgeMs);
      return hold('interval-not-due', `next scheduled hedge (${bandWords}) in ${fmt(dueIn / 1000, 3)} s`);
    }
    if (ctx.gasHigh && !urgent) return hold('gas-wait', 'gas is high and the drift is not urgent; waiting');

    // Size: back to target, or (Whalley–Wilmott) to the nearest band edge.
    const sign = drift > 0 ? -1 : 1;
    let size = toEdge ? Math.abs(drift) - band : Math.abs(drift);
    if (size < dustBase) {
      // Outside the band but below the smallest order: trade the minimum unless it overshoots the band.
      if (dustBase <= Math.abs(drift) + band) size = dustBase;
      else
        return hold(
          'dust',
          `${outside}, but ${fmt(size)} ${U} (${usd(size * S)}) is below the minimum ` +
            `${fmt(dustBase)} ${U} and the minimum would overshoot the band; holding`,
        );
    }
    let capped: HedgeDecision['capped'];
    const wanted = size;
    if (policy.maxOrderUsd !== undefined && size * S > policy.maxOrderUsd) {
      size = policy.maxOrderUsd / S;
      // An order cut below the smallest one (minTradeUsd, the venue minimum) would be raised back past
      // the cap by routing or refused by the venue, tick after tick: no order until the policy changes.
      if (size < dustBase)
        return hold(
          'order-cap-below-minimum',
          `${outside}, but the per-order cap maxOrderUsd ${usd(policy.maxOrderUsd)} (${fmt(size)} ${U}) is below ` +
            `the smallest order, ${fmt(dustBase)} ${U} (${usd(dustBase * S)}: minTradeUsd or the venue minimum); ` +
            'no order can be sent until maxOrderUsd is raised; holding',
        );
      capped = { wantedDeltaBase: sign * wanted, by: 'per-order' };
    }
    if (policy.caps) {
      const windowMs = policy.caps.windowMinutes * 60_000;
      st.window = st.window.filter(([t]) => nowMs - t < windowMs);
      const used = st.window.reduce((s, [, x]) => s + x, 0);
      const roomUsd = policy.caps.maxWindowUsd - used;
      // no room at all is a hold even when there is no minimum (dustBase 0): never a hedge of size 0
      if (roomUsd <= 0 || roomUsd / S < dustBase)
        return hold(
          'window-cap-reached',
          `hedge cap of ${usd(policy.caps.maxWindowUsd)} per ${fmt(policy.caps.windowMinutes)} min is used up (${usd(used)}` +
            (roomUsd > 0
              ? `; the ${usd(roomUsd)} left is below the smallest order, ${fmt(dustBase)} ${U}`
              : '') +
            '); holding',
        );
      if (size * S > roomUsd) {
        size = roomUsd / S;
        capped = { wantedDeltaBase: sign * wanted, by: 'per-window' };
      }
    }
    const trade = sign * size;
    const words =
      `${outside}; ${trade > 0 ? 'buy' : 'sell'} ${fmt(size)} ${U} (${usd(size * S)}) ` +
      (toEdge ? 'to the band edge' : 'back to the target') +
      // it said "× band" for every policy: an interval policy has no band, and the measure may be the
      // smallest order (a book with no gamma), so an operator could not tell why a hedge was urgent
      (urgent
        ? `; urgent (drift ≥ ${fmt(policy.urgencyMultiple)}× ${yardstickWords()}): time and gas gates skipped`
        : '') +
      (capped ? `; cut from ${fmt(wanted)} by the ${capped.by} cap` : '');
    const decision: HedgeDecision = {
      ...base,
      action: 'hedge',
      code: urgent ? 'hedge-urgent' : 'hedge',
      tradeDeltaBase: trade,
      side: trade > 0 ? 'buy' : 'sell',
      tradeNotionalUsd: size * S,
      reason: `${head}: ${words}.${vegaNote}`,
    };
    if (capped) decision.capped = capped;
    return decision;
  }

  #stateOf(underlying: string): UnderlyingState {
    let st = this.#state.get(underlying);
    if (!st) {
      st = { lastHedgeMs: null, window: [] };
      this.#state.set(underlying, st);
    }
    return st;
  }
}
