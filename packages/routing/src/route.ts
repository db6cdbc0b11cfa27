import { deterministicId, type HedgeIntent, type Side, toDecimalString, type Urgency } from '@xhedge/core';
import type { HedgeDecision } from '@xhedge/strategy';
import type { HedgeQuote } from '@xhedge/venue';
import { allocateEqualMarginal } from './allocate.ts';
import {
  type CollateralTransfer,
  type HedgePlan,
  intentId,
  type LegCost,
  limitPrice,
  transferId,
} from './plan.ts';

/** One venue/chain that could take the delta hedge, with its quotes and trading rules. */
export interface RouteVenue {
  venue: string;
  chain: string;
  /** The hedge instrument on this venue (a perp or spot pair of the underlying). */
  instrument: string;
  /**
   * Quotes for the hedge side at one or more sizes (`quoteHedge`). Two sizes let the router separate
   * spread from size-dependent impact; with one, all impact is taken as linear in size.
   */
  quotes: readonly HedgeQuote[];
  /** Venue minimum order, underlying units. */
  minSizeBase: number;
  /** Venue size step, underlying units. */
  sizeStepBase: number;
  priceTickUsd?: number;
  /** Largest single order (or OI room), underlying units; the router downsizes to it. */
  maxOrderSizeBase?: number;
  /** Current position in `instrument` (signed), for reduce-only legs. */
  positionBase: number;
  /** Free collateral on this venue, USD. */
  freeCollateralUsd: number;
  /** Initial margin per USD of notional (0.1 = 10× leverage). */
  marginFraction: number;
}

/** Where spare collateral sits (USD-like), to fund venues short of margin. */
export interface CollateralSource {
  venue: string;
  chain: string;
  asset: string;
  availableUsd: number;
}

/** Cost and delay of moving collateral between chains (or venues on one chain); null = no route. */
export type BridgeCostModel = (
  fromChain: string,
  toChain: string,
  amountUsd: number,
) => { feeUsd: number; latencyMs: number } | null;

export interface RouteOptions {
  bridge: BridgeCostModel;
  collateralSources?: readonly CollateralSource[];
  /** Price of waiting for collateral, USD per minute of bridge latency. @defaultValue 1 */
  delayCostUsdPerMinute?: number;
  /** Delay cost multiplier for urgent hedges. @defaultValue 10 */
  urgentDelayMultiplier?: number;
  /** Limit price distance from the expected price, bps. @defaultValue 50 */
  maxSlippageBps?: number;
  /** Extra collateral moved above the bare margin need. @defaultValue 0.2 */
  collateralBuffer?: number;
  /** Most venues one hedge is split over. @defaultValue 3 */
  maxLegs?: number;
  /**
   * @deprecated Ignored: the split is now solved exactly (equal marginal cost within caps, found by
   * bisection) instead of by chunks. Kept so existing callers still compile.
   */
  splitChunks?: number;
  /**
   * Ranking charge on size that opens or grows a position, bps of the reference notional: roughly what
   * closing that position later costs. Every plan opens the same size when no venue holds an opposite
   * position, so the charge only tips the choice towards reducing an existing position (reduce-only)
   * over opening an opposite one elsewhere when all-in costs are within about this much. It is never
   * part of the reported leg costs. 0 turns the preference off. @defaultValue 5
   */
  openPositionPenaltyBps?: number;
}

/** What to route: the delta part of a decision. */
export interface RouteRequest {
  planId: string;
  underlying: string;
  /** Signed delta to trade (buy > 0), underlying units. */
  deltaBase: number;
  referencePriceUsd: number;
  urgency: Urgency;
  reason: string;
  createdAtMs: number;
  /** Index of the first leg, when other legs of the same plan come first (ids stay distinct). Default 0. */
  firstLegIndex?: number;
}

/**
 * Cost curve of one venue fitted from its quotes: cost(q) = a·q + k·q² + fixed, where fixed is the
 * gas / execution / priority fee plus any fixed USD part of the trading fee.
 */
interface Model {
  v: RouteVenue;
  a: number;
  k: number;
  feePerUnit: number;
  /** Fixed USD part of the trading fee (fee = feePerUnit·q + feeFixedUsd), from two quote sizes. */
  feeFixedUsd: number;
  fundingPerUnit: number;
  spreadPerUnit: number;
  gasUsd: number;
  latencyMs: number;
  cap: number;
  capReason: string | undefined;
  /** Size that reduces the existing position (needs no margin). */
  reducible: number;
  /** Size coverable by free margin without moving collateral. */
  noBridgeCap: number;
  bridge: { source: CollateralSource; feeUsd: number; latencyMs: number; delayUsd: number } | null;
  expectedPrice: number;
}

type Opts = Required<Omit<RouteOptions, 'collateralSources' | 'splitChunks'>>;

function fitCostModel(
  v: RouteVenue,
  side: Side,
  size: number,
  opts: Opts,
  sources: readonly CollateralSource[],
  urgent: boolean,
  ref: number,
): Model | null {
  const qs = v.quotes
    .filter((q) => q.side === side && Number(q.executableSizeBase) > 0)
    .map((q) => ({ q, n: Number(q.executableSizeBase) }))
    .sort((x, y) => x.n - y.n);
  const big = qs[qs.length - 1];
  if (!big) return null;
  const small = qs[0] ?? big;
  let feePerUnit = big.q.feeUsd / big.n;
  let feeFixedUsd = 0;
  const fundingPerUnit = big.q.fundingCarryUsd / big.n;
  const uBig = big.q.impactUsd / big.n;
  let k = uBig / big.n;
  let spread = 0;
  if (small.n < big.n) {
    const uSmall = small.q.impactUsd / small.n;
    k = (uBig - uSmall) / (big.n - small.n);
    spread = uSmall - k * small.n;
    if (k < 0 || spread < 0) {
      k = Math.max(k, 0);
      spread = Math.max(0, (uBig + uSmall) / 2 - (k * (big.n + small.n)) / 2);
    }
    // A fixed USD part of the fee (bps + fixed) is a per-leg cost like gas: split it out.
    const slope = (big.q.feeUsd - small.q.feeUsd) / (big.n - small.n);
    const fixed = big.q.feeUsd - slope * big.n;
    if (slope >= 0 && fixed > 1e-9) {
      feePerUnit = slope;
      feeFixedUsd = fixed;
    }
  }
  // Room to plan in: the request (or the venue minimum, so a needed hedge never rounds to zero) unless a cap is lower.
  let cap = Math.max(size, v.minSizeBase);
  let capReason: string | undefined;
  const quoteCapped = qs.some(
    (x) => x.q.capReason !== undefined || Number(x.q.executableSizeBase) < Number(x.q.requestedSizeBase),
  );
  if (quoteCapped) {
    const c = Math.min(
      ...qs.filter((x) => Number(x.q.executableSizeBase) < Number(x.q.requestedSizeBase)).map((x) => x.n),
      big.n,
    );
    cap = Math.min(cap, c);
    capReason = qs.find((x) => x.q.capReason)?.q.capReason ?? 'venue liquidity';
  }
  if (v.maxOrderSizeBase !== undefined && v.maxOrderSizeBase < cap) {
    cap = v.maxOrderSizeBase;
    capReason = `max order ${v.maxOrderSizeBase}`;
  }
  const signed = side === 'buy' ? 1 : -1;
  const reducible = v.positionBase * signed < 0 ? Math.abs(v.positionBase) : 0;
  const marginPerUnit = ref * v.marginFraction;
  const noBridgeCap = Math.min(
    cap,
    reducible + (marginPerUnit > 0 ? v.freeCollateralUsd / marginPerUnit : cap),
  );
  let bridge: Model['bridge'] = null;
  if (noBridgeCap < cap) {
    const needUsd = (cap - reducible) * marginPerUnit * (1 + opts.collateralBuffer) - v.freeCollateralUsd;
    for (const s of sources) {
      if (s.venue === v.venue || s.availableUsd < needUsd) continue;
      const b = opts.bridge(s.chain, v.chain, needUsd);
      if (!b) continue;
      const delayUsd =
        (b.latencyMs / 60_000) * opts.delayCostUsdPerMinute * (urgent ? opts.urgentDelayMultiplier : 1);
      if (!bridge || b.feeUsd + delayUsd < bridge.feeUsd + bridge.delayUsd)
        bridge = { source: s, feeUsd: b.feeUsd, latencyMs: b.latencyMs, delayUsd };
    }
  }
  return {
    v,
    a: feePerUnit + fundingPerUnit + spread,
    k,
    feePerUnit,
    feeFixedUsd,
    fundingPerUnit,
    spreadPerUnit: spread,
    gasUsd: Math.max(...qs.map((x) => x.q.gasUsd)),
    latencyMs: big.q.expectedLatencyMs,
    cap,
    capReason,
    reducible,
    noBridgeCap,
    bridge,
    expectedPrice: big.q.expectedPriceUsd,
  };
}

interface Choice {
  m: Model;
  useBridge: boolean;
  cap: number;
  /** Costs this leg pays once, whatever its size: gas, fixed fee, bridge fee and delay. */
  fixed: number;
}

/**
 * Nearest multiple of the venue step (a needed hedge is not floored away), never above the cap. Float math
 * in the search (cleaned to 12 places); exact decimal strings are made once, for the chosen legs.
 */
function roundLeg(size: number, v: RouteVenue, cap: number): number {
  const step = v.sizeStepBase;
  if (!(step > 0)) return Math.min(size, cap);
  const nearest = Math.round(size / step) * step;
  // cap/step carries float noise (0.5/1e-9 = 499999999.99999994): floor with a tolerance, not 1e-9 absolute.
  const maxByCap = Math.floor(cap / step + 1e-6) * step;
  return Number(Math.min(nearest, maxByCap).toFixed(12));
}

/** All-in cost of a leg of size q (0 when unused: an unused venue pays no fixed cost). */
function legCost(c: Choice, q: number): number {
  return q <= 0 ? 0 : c.m.a * q + c.m.k * q * q + c.fixed;
}

interface Candidate {
  q: number[];
  choices: Choice[];
  planned: number;
  /** All-in cost of the legs, USD. */
  cost: number;
  /** Cost plus the ranking charge on opened size, per unit planned × requested size (comparable across plans). */
  score: number;
  /** |requested − planned|. */
  miss: number;
}

/**
 * Routes a signed delta across venues at the lowest all-in cost: fee + spread/impact for the size + gas or
 * execution fee + funding carry over the holding time + (when margin is short) the bridge fee and a price
 * on its delay.
 *
 * Every subset of up to `maxLegs` venues is tried, each venue with or without a collateral move; within a
 * subset the size is split at equal marginal cost within caps, rounded to each venue's step and minimum,
 * and each leg pays its own fixed costs (gas, fixed fee, bridge). So a split is only chosen when the impact
 * it saves exceeds the extra legs' fixed costs, and never when one venue is cheaper all-in. Plans are
 * ranked by how close they come to the requested size (differences within one size step are rounding,
 * not capacity), then by all-in cost plus a small charge on size that opens a position
 * (`openPositionPenaltyBps`), which makes reducing an existing position win over opening an opposite one
 * elsewhere when costs are comparable. A pure function of its inputs.
 */
export function routeDelta(
  req: RouteRequest,
  venues: readonly RouteVenue[],
  options: RouteOptions,
): Omit<HedgePlan, 'reason' | 'urgency'> & { legs: HedgeIntent[] } {
  const opts: Opts = {
    bridge: options.bridge,
    delayCostUsdPerMinute: options.delayCostUsdPerMinute ?? 1,
    urgentDelayMultiplier: options.urgentDelayMultiplier ?? 10,
    maxSlippageBps: options.maxSlippageBps ?? 50,
    collateralBuffer: options.collateralBuffer ?? 0.2,
    maxLegs: options.maxLegs ?? 3,
    openPositionPenaltyBps: options.openPositionPenaltyBps ?? 5,
  };
  const side: Side = req.deltaBase > 0 ? 'buy' : 'sell';
  const size = Math.abs(req.deltaBase);
  const urgent = req.urgency === 'urgent';
  const openUsdPerUnit = (opts.openPositionPenaltyBps / 10_000) * req.referencePriceUsd;
  const notes: string[] = [];
  const models: Model[] = [];
  for (const v of venues) {
    const m = fitCostModel(
      v,
      side,
      size,
      opts,
      options.collateralSources ?? [],
      urgent,
      req.referencePriceUsd,
    );
    if (!m) notes.push(`${v.venue}: no usable ${side} quote; skipped`);
    else models.push(m);
  }
  // Plans within one (largest) size step of each other differ by rounding, not by what they can deliver.
  const missTol = Math.max(0, ...models.map((m) => m.v.sizeStepBase)) + size * 1e-12;
  const better = (x: Candidate, y: Candidate | null) =>
    !y || x.miss < y.miss - missTol || (Math.abs(x.miss - y.miss) <= missTol && x.score < y.score - 1e-9);
  let best: Candidate | null = null;
  let bestSingle: Candidate | null = null;
  const n = models.length;
  // Each venue: 0 = unused, 1 = with the margin it has, 2 = after a collateral move.
  const total = 3 ** n;
  for (let code = 1; code < total; code++) {
    const choices: Choice[] = [];
    let c = code;
    let ok = true;
    for (let i = 0; i < n && ok; i++) {
      const mode = c % 3;
      c = Math.floor(c / 3);
      const m = models[i] as Model;
      if (mode === 0) continue;
      const fixedBase = m.gasUsd + m.feeFixedUsd;
      if (mode === 1) {
        if (m.noBridgeCap < m.v.minSizeBase || m.noBridgeCap <= 0) ok = false;
        choices.push({ m, useBridge: false, cap: m.noBridgeCap, fixed: fixedBase });
      } else if (!m.bridge) ok = false;
      else
        choices.push({
          m,
          useBridge: true,
          cap: m.cap,
          fixed: fixedBase + m.bridge.feeUsd + m.bridge.delayUsd,
        });
    }
    if (!ok || choices.length === 0 || choices.length > opts.maxLegs) continue;
    const raw = allocateEqualMarginal(
      choices.map((ch) => ({
        a: ch.m.a,
        k: ch.m.k,
        reducible: ch.m.reducible,
        openUsdPerUnit,
        cap: ch.cap,
      })),
      size,
    );
    const q = raw.map((x, i) => roundLeg(x, (choices[i] as Choice).m.v, (choices[i] as Choice).cap));
    // No dust legs below a venue minimum (a subset without that venue covers the case); and a needed
    // hedge never rounds to zero: a lone leg below the minimum is raised to it.
    for (let i = 0; i < q.length; i++) {
      const v = (choices[i] as Choice).m.v;
      if ((q[i] ?? 0) > 0 && (q[i] ?? 0) < v.minSizeBase) q[i] = 0;
    }
    if (q.every((x) => x <= 0)) {
      const i = raw.indexOf(Math.max(...raw));
      const ch = choices[i] as Choice;
      if (ch.m.v.minSizeBase <= ch.cap) q[i] = Math.max(ch.m.v.minSizeBase, ch.m.v.sizeStepBase);
    }
    // A subset whose venue ends unused is the same plan as the subset without it.
    if (choices.length > 1 && q.some((x) => x <= 0)) continue;
    const planned = q.reduce((s, x) => s + x, 0);
    if (planned <= 0) continue;
    let cost = 0;
    let opened = 0;
    q.forEach((x, i) => {
      const ch = choices[i] as Choice;
      cost += legCost(ch, x);
      opened += Math.max(0, x - ch.m.reducible);
    });
    const cand: Candidate = {
      q,
      choices,
      planned,
      cost,
      score: ((cost + opened * openUsdPerUnit) * size) / planned,
      miss: Math.abs(size - planned),
    };
    if (better(cand, best)) best = cand;
    if (choices.length === 1 && better(cand, bestSingle)) bestSingle = cand;
  }
  const legs: HedgeIntent[] = [];
  const legCosts: LegCost[] = [];
  const transfers: CollateralTransfer[] = [];
  if (!best) {
    notes.push('no venue can take any of this hedge now');
    return {
      planId: req.planId,
      underlying: req.underlying,
      createdAtMs: req.createdAtMs,
      legs,
      legCosts,
      transfers,
      requestedDeltaBase: req.deltaBase,
      plannedDeltaBase: 0,
      shortfallBase: size,
      totalCostUsd: 0,
      notes,
    };
  }
  const order = best.q.map((_, i) => i).sort((x, y) => (best.q[y] ?? 0) - (best.q[x] ?? 0));
  for (const i of order) {
    const q = best.q[i] ?? 0;
    if (q <= 0) continue;
    const ch = best.choices[i] as Choice;
    const m = ch.m;
    const id = intentId(req.planId, (req.firstLegIndex ?? 0) + legs.length, m.v.venue, m.v.instrument);
    const dependsOn: string[] = [];
    let bridgeFeeUsd = 0;
    let delayCostUsd = 0;
    let latency = m.latencyMs;
    if (ch.useBridge && m.bridge && q > m.noBridgeCap) {
      const needUsd = Math.max(
        0,
        (q - m.reducible) * req.referencePriceUsd * m.v.marginFraction * (1 + opts.collateralBuffer) -
          m.v.freeCollateralUsd,
      );
      const t: CollateralTransfer = {
        id: transferId(req.planId, m.v.venue),
        planId: req.planId,
        fromVenue: m.bridge.source.venue,
        fromChain: m.bridge.source.chain,
        toVenue: m.v.venue,
        toChain: m.v.chain,
        asset: m.bridge.source.asset,
        amount: toDecimalString(Math.ceil(needUsd * 100) / 100, 2),
        feeUsd: m.bridge.feeUsd,
        expectedLatencyMs: m.bridge.latencyMs,
      };
      transfers.push(t);
      dependsOn.push(t.id);
      bridgeFeeUsd = m.bridge.feeUsd;
      delayCostUsd = m.bridge.delayUsd;
      latency += m.bridge.latencyMs;
      notes.push(
        `${m.v.venue}: margin short; moving ${t.amount} ${t.asset} from ${t.fromVenue} (${t.fromChain}) first`,
      );
    }
    const reduceOnly = q <= m.reducible + 1e-12;
    if (reduceOnly)
      notes.push(`${m.v.venue}: reduces the existing ${m.v.positionBase} position (reduce-only)`);
    const feeUsd = m.feePerUnit * q + m.feeFixedUsd;
    const impactUsd = m.spreadPerUnit * q + m.k * q * q;
    const fundingCarryUsd = m.fundingPerUnit * q;
    const totalCostUsd = feeUsd + impactUsd + m.gasUsd + fundingCarryUsd + bridgeFeeUsd + delayCostUsd;
    if (m.cap < size && q >= m.cap - 1e-12)
      notes.push(`${m.v.venue}: downsized to its cap ${m.cap} (${m.capReason ?? 'cap'})`);
    legs.push({
      id,
      planId: req.planId,
      underlying: req.underlying,
      venue: m.v.venue,
      chain: m.v.chain,
      instrument: m.v.instrument,
      side,
      sizeBase: toDecimalString(q, 12),
      orderType: 'ioc',
      limitPriceUsd: limitPrice(side, m.expectedPrice, opts.maxSlippageBps, m.v.priceTickUsd),
      referencePriceUsd: req.referencePriceUsd,
      reduceOnly,
      urgency: req.urgency,
      reason:
        `${req.reason} Leg ${legs.length + 1}: ${side} ${q} on ${m.v.venue} (${m.v.chain}), all-in ≈ $${totalCostUsd.toFixed(2)}.`.slice(
          0,
          2000,
        ),
      createdAtMs: req.createdAtMs,
      dependsOn,
    });
    legCosts.push({
      intentId: id,
      venue: m.v.venue,
      chain: m.v.chain,
      instrument: m.v.instrument,
      sizeBase: q,
      feeUsd,
      impactUsd,
      gasUsd: m.gasUsd,
      fundingCarryUsd,
      bridgeFeeUsd,
      delayCostUsd,
      totalCostUsd,
      expectedLatencyMs: latency,
    });
  }
  if (legs.length > 1) {
    const single = bestSingle;
    const fixedUsd = best.choices.reduce((s, ch, i) => s + ((best.q[i] ?? 0) > 0 ? ch.fixed : 0), 0);
    notes.push(
      single && Math.abs(single.miss - best.miss) <= missTol
        ? `split over ${legs.length} venues: saves $${(single.cost - best.cost).toFixed(2)} against the best ` +
            `single venue (${single.choices[0]?.m.v.venue}) after $${fixedUsd.toFixed(2)} of fixed costs on its legs`
        : `split over ${legs.length} venues: no single venue can take all of it`,
    );
  }
  const plannedSigned = (side === 'buy' ? 1 : -1) * best.planned;
  const shortfall = Math.max(0, size - best.planned);
  if (shortfall > 1e-9)
    notes.push(`shortfall ${toDecimalString(shortfall, 8)}: caps, liquidity or collateral`);
  return {
    planId: req.planId,
    underlying: req.underlying,
    createdAtMs: req.createdAtMs,
    legs,
    legCosts,
    transfers,
    requestedDeltaBase: req.deltaBase,
    plannedDeltaBase: plannedSigned,
    shortfallBase: shortfall,
    totalCostUsd: legCosts.reduce((s, l) => s + l.totalCostUsd, 0),
    notes,
  };
}

/** Per-underlying routing inputs for {@link planDecision}. */
export interface PlanInputs {
  /** Venues that can take the delta hedge, with quotes for the decision's side. */
  venues: readonly RouteVenue[];
  options: RouteOptions;
  /** Price tick per option venue|instrument for vega legs' limit prices. */
  optionTickUsd?: Readonly<Record<string, number>>;
}

/**
 * Turns a strategy decision into a plan: the decision's option (vega) trades as legs on the venues the
 * solver chose, then the delta hedge routed by {@link routeDelta}. Holds give null.
 *
 * A vega-only decision (option trades, no delta trade) still gets a plan: its vega legs, plus a delta leg
 * taking out the delta those legs add when the book is outside its delta band (the policy held the
 * delta hedge back for time, gas, dust or caps; the option trade must not add to the drift meanwhile).
 * Inside the band, the vega legs go alone. `inputs.venues` then needs quotes for that side.
 */
export function planDecision(decision: HedgeDecision, inputs: PlanInputs): HedgePlan | null {
  if (decision.action !== 'hedge') return null;
  const planId = deterministicId('plan', decision.id);
  const opts = inputs.options;
  const slip = opts.maxSlippageBps ?? 50;
  const legs: HedgeIntent[] = [];
  const legCosts: LegCost[] = [];
  for (const t of decision.vegaTrades) {
    const id = intentId(planId, legs.length, t.venue, t.instrument);
    legs.push({
      id,
      planId,
      underlying: decision.underlying,
      venue: t.venue,
      chain: t.chain,
      instrument: t.instrument,
      side: t.side,
      sizeBase: toDecimalString(t.sizeBase, 12),
      orderType: 'limit',
      limitPriceUsd: limitPrice(
        t.side,
        t.priceUsd,
        slip,
        inputs.optionTickUsd?.[`${t.venue}|${t.instrument}`],
      ),
      referencePriceUsd: t.priceUsd,
      reduceOnly: false,
      urgency: decision.urgency,
      reason: `${decision.reason} Vega leg: ${t.side} ${t.sizeBase} ${t.instrument} on ${t.venue}.`.slice(
        0,
        2000,
      ),
      createdAtMs: decision.asOfMs,
      dependsOn: [],
    });
    legCosts.push({
      intentId: id,
      venue: t.venue,
      chain: t.chain,
      instrument: t.instrument,
      sizeBase: t.sizeBase,
      feeUsd: 0,
      impactUsd: t.costUsd,
      gasUsd: 0,
      fundingCarryUsd: 0,
      bridgeFeeUsd: 0,
      delayCostUsd: 0,
      totalCostUsd: t.costUsd,
      expectedLatencyMs: 0,
    });
  }
  const base: HedgePlan = {
    planId,
    underlying: decision.underlying,
    createdAtMs: decision.asOfMs,
    reason: decision.reason,
    urgency: decision.urgency,
    legs,
    legCosts,
    transfers: [],
    requestedDeltaBase: decision.tradeDeltaBase,
    plannedDeltaBase: 0,
    shortfallBase: 0,
    totalCostUsd: legCosts.reduce((s, l) => s + l.totalCostUsd, 0),
    notes: [],
  };
  let deltaBase = decision.tradeDeltaBase;
  const notes: string[] = [];
  if (deltaBase === 0 && legs.length > 0) {
    const vegaDelta = decision.vegaTrades.reduce((s, t) => s + t.delta, 0);
    if (Math.abs(decision.driftDelta) > decision.bandHalfWidth && Math.abs(vegaDelta) > 1e-12) {
      deltaBase = -vegaDelta;
      notes.push(
        `vega legs add ${toDecimalString(vegaDelta, 8)} delta outside the band: hedged with them; the rest of the drift waits for the policy`,
      );
    } else notes.push('vega legs only: their delta keeps the book inside its delta band');
  }
  if (deltaBase === 0) return { ...base, notes };
  const routed = routeDelta(
    {
      planId,
      underlying: decision.underlying,
      deltaBase,
      referencePriceUsd: decision.spotUsd,
      urgency: decision.urgency,
      reason: decision.reason,
      createdAtMs: decision.asOfMs,
      firstLegIndex: legs.length,
    },
    inputs.venues,
    opts,
  );
  return {
    ...base,
    legs: [...legs, ...routed.legs],
    legCosts: [...legCosts, ...routed.legCosts],
    transfers: routed.transfers,
    requestedDeltaBase: deltaBase,
    plannedDeltaBase: routed.plannedDeltaBase,
    shortfallBase: routed.shortfallBase,
    totalCostUsd: base.totalCostUsd + routed.totalCostUsd,
    notes: [...notes, ...routed.notes],
  };
}
