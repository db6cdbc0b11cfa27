import {
  assertFinite,
  deterministicId,
  type HedgeIntent,
  isUsdLike,
  type Side,
  toDecimalString,
  type Urgency,
} from '@xhedge/core';
import type { HedgeDecision, OptionTrade } from '@xhedge/strategy';
import { allocateEqualMarginal } from './allocate.ts';
import {
  bridgeFeeDebitUsd,
  CollateralReservation,
  legMarginUsd,
  maxSizeForMarginUsd,
  openCollateralUsdPerUnitOf,
  reducesAt,
  reducibleBaseOf,
} from './collateral.ts';
import {
  type CollateralTransfer,
  type HedgePlan,
  intentId,
  type LegCost,
  limitPrice,
  transferId,
} from './plan.ts';
import type { CollateralSource, OptionMarket, RouteVenue } from './venues.ts';

export type { CollateralSource, OptionMarket, RouteVenue } from './venues.ts';

/**
 * Cost and delay of moving `amountUsd` of `asset` (a USD-like collateral, the source's) between chains (or
 * venues on one chain); null = no route, also for an asset the bridge does not carry (a model that ignores
 * the asset carries every one).
 */
export type BridgeCostModel = (
  fromChain: string,
  toChain: string,
  amountUsd: number,
  asset: string,
) => { feeUsd: number; latencyMs: number } | null;

export interface RouteOptions {
  bridge: BridgeCostModel;
  collateralSources?: readonly CollateralSource[];
  /** Price of waiting for collateral, USD per minute of bridge latency. @defaultValue 1 */
  delayCostUsdPerMinute?: number;
  /** Delay cost multiplier for urgent hedges. @defaultValue 10 */
  urgentDelayMultiplier?: number;
  /**
   * Limit price distance from the expected price, bps. Also the headroom legs on a venue that posts
   * collateral on an order's whole size at its own price (`openCollateralUsdPerUnit`, GMX) are sized
   * with: GMX takes the collateral at its price when the order is placed, after routing, so a leg sized to
   * the last dollar of the wallet at the quoted price is refused on any uptick (on a sell, any move up
   * of its min price). The price may move by the slippage bound before the order is placed; a leg of such
   * a venue is budgeted `openCollateralUsdPerUnit` × (1 + maxSlippageBps / 10,000) per unit, in its
   * no-move cap, its moves and the collateral its venue keeps for it. @defaultValue 50
   */
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
   * Ranking charge on size that opens or grows a position beyond every opposite position the venues
   * hold, bps of the reference notional: roughly what closing that position later costs. Size that
   * opens on a venue while another venue keeps a position this trade could reduce is charged the
   * estimated cost of closing the pair it makes later instead (see {@link routeDelta}). The flat charge
   * falls on the same size in every plan that delivers the same size (what is left of the hedge after
   * all opposite positions), so it only moves ties. It is never part of the reported leg costs. 0 turns
   * the flat charge off, not the pair's (a cost estimate, not a preference). @defaultValue 5
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

/** One way to fund a venue short of margin: a move from a collateral source. */
interface BridgeOption {
  source: CollateralSource;
  feeUsd: number;
  /** The most the fee debits from the source in its asset ({@link bridgeFeeDebitUsd}), USD. */
  feeDebitUsd: number;
  latencyMs: number;
  /** Price put on waiting for the move, USD. */
  delayUsd: number;
}

/** A quote's funding carry at its size: carry is read only between quotes of one kind (see {@link Carry}). */
interface CarryPoint {
  /** Executable size quoted, underlying units. */
  n: number;
  /** Its funding carry over the holding time, USD (negative when it earns). */
  usd: number;
}

/**
 * Funding carry of a venue's quotes by kind: those no larger than the position the hedge reduces (a
 * reducing order) and the others (an order that opens or grows a position), each by size. The two can
 * have opposite signs (GMX: a decrease stops the carry the position pays; an increase of the other side
 * pays its own), so a leg's carry is read from quotes of its own kind only ({@link carryUsd}).
 */
interface Carry {
  reduce: CarryPoint[];
  open: CarryPoint[];
}

/**
 * Cost curve of one venue fitted from its quotes: cost(q) = (fee + spread)·q + carry(q) + k·q² + fixed,
 * where fixed is the gas / execution / priority fee plus any fixed USD part of the trading fee, and the
 * carry is per unit `aReduce` − fee − spread up to the reducible size, `aOpen` − fee − spread past it
 * (read exactly by {@link carryUsd} for a leg's size).
 */
interface Model {
  v: RouteVenue;
  /** Linear cost per unit of a leg that only reduces the position (fee, spread, carry), USD. */
  aReduce: number;
  /** Linear cost per unit of a leg that opens or grows a position (fee, spread, carry), USD. */
  aOpen: number;
  k: number;
  feePerUnit: number;
  /** Fixed USD part of the trading fee (fee = feePerUnit·q + feeFixedUsd), from two quote sizes. */
  feeFixedUsd: number;
  carry: Carry;
  /** The carry per unit when every quote's is the same (a venue whose carry is linear in size), USD. */
  carryPerUnit: number | undefined;
  spreadPerUnit: number;
  gasUsd: number;
  latencyMs: number;
  cap: number;
  capReason: string | undefined;
  /** Size that reduces the existing position (needs no margin). */
  reducible: number;
  /** Size coverable by free margin without moving collateral. */
  noBridgeCap: number;
  /**
   * Sources that could each fund a move here, their bridge fee included (the bridge debits the move
   * plus its fee from the source), cheapest (fee + delay) first: only in an asset the venue takes as
   * collateral and the bridge carries. Which one a plan uses, and how much of
   * the cap it funds, is decided per candidate plan: several legs may want the same source.
   */
  bridges: BridgeOption[];
  /** Why no source can fund a move to the venue, short of margin (they hold assets it does not take), if so. */
  noMoveNote: string | undefined;
  expectedPrice: number;
}

type Opts = Required<Omit<RouteOptions, 'collateralSources' | 'splitChunks'>>;

/**
 * `v` as routing sizes its legs: a venue that posts collateral on an order's whole size at its own price
 * (`openCollateralUsdPerUnit`, GMX) with that collateral raised by the slippage bound, headroom for the
 * price moving between the quote and the order being placed (see {@link RouteOptions.maxSlippageBps});
 * other venues as they are. Every sizing site (no-move cap, moves, cuts, what a venue keeps for its own
 * leg) reads the venue through this, so they agree. A per-unit amount that is no finite number ≥ 0 is
 * refused by name.
 */
function withPostingHeadroom(v: RouteVenue, maxSlippageBps: number): RouteVenue {
  let perUnitUsd: number;
  try {
    perUnitUsd = openCollateralUsdPerUnitOf(v);
  } catch (err) {
    throw new RangeError(`${v.venue}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (perUnitUsd === 0) return v;
  return { ...v, openCollateralUsdPerUnit: perUnitUsd * (1 + maxSlippageBps / 10_000) };
}

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
  const reducible = reducibleBaseOf(v, side);
  // Fee and impact are fitted on the largest quote and the smallest of its kind (reducing or opening),
  // else the smallest: a reducing quote added for its carry does not bend the fit of the opening ones.
  const bigReduces = reducesAt(reducible, big.n);
  const small = qs.find((x) => x !== big && reducesAt(reducible, x.n) === bigReduces) ?? qs[0] ?? big;
  let feePerUnit = big.q.feeUsd / big.n;
  let feeFixedUsd = 0;
  const carry: Carry = { reduce: [], open: [] };
  for (const x of qs)
    (reducesAt(reducible, x.n) ? carry.reduce : carry.open).push({ n: x.n, usd: x.q.fundingCarryUsd });
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
  // The margin rule of every leg and move ({@link legMarginUsd}): a venue that posts collateral on an
  // order's whole size (GMX) fits less past its position on the same free collateral than one that nets.
  const noBridgeCap = Math.min(cap, maxSizeForMarginUsd(v, side, v.freeCollateralUsd, ref));
  const bridges: BridgeOption[] = [];
  let noMoveNote: string | undefined;
  if (noBridgeCap < cap) {
    const needUsd = legMarginUsd(v, side, cap, ref) * (1 + opts.collateralBuffer) - v.freeCollateralUsd;
    const accepted = v.collateralAssets;
    /** Sources left out for holding an asset the venue does not take as collateral. */
    const refused: CollateralSource[] = [];
    for (const s of sources) {
      if (s.venue === v.venue) continue;
      // The bridge delivers the asset it takes: one the venue cannot margin with funds no leg there.
      if (accepted !== undefined && !accepted.includes(s.asset)) {
        refused.push(s);
        continue;
      }
      const b = opts.bridge(s.chain, v.chain, needUsd, s.asset);
      if (!b) continue;
      const feeUsd = assertFinite(`bridge fee ${s.asset} ${s.chain} → ${v.chain}`, b.feeUsd);
      if (feeUsd < 0)
        throw new RangeError(
          `bridge fee ${s.asset} ${s.chain} → ${v.chain} must not be negative, got ${feeUsd}`,
        );
      const feeDebitUsd = bridgeFeeDebitUsd(feeUsd);
      // The move and its fee both come out of the source: one that cannot pay the fee funds nothing.
      if (!(s.availableUsd > feeDebitUsd)) continue;
      const delayUsd =
        (b.latencyMs / 60_000) * opts.delayCostUsdPerMinute * (urgent ? opts.urgentDelayMultiplier : 1);
      bridges.push({ source: s, feeUsd, feeDebitUsd, latencyMs: b.latencyMs, delayUsd });
    }
    // Stable: among equal costs the sources keep their given order.
    bridges.sort((x, y) => x.feeUsd + x.delayUsd - (y.feeUsd + y.delayUsd));
    if (bridges.length === 0 && refused.length > 0 && accepted !== undefined) {
      const held = [...new Set(refused.map((s) => `${s.asset} on ${s.venue}`))].join(', ');
      noMoveNote =
        `${v.venue}: no collateral move to it, so it takes at most ${toDecimalString(noBridgeCap, 8)} on its own margin: ` +
        `it takes ${accepted.length > 0 ? accepted.join(', ') : 'no asset'} as collateral, not ${held}`;
    }
  }
  // Carry per unit the allocator sees on each side of the reducible size: the largest quote's of the
  // kind, or the other kind's where none was quoted (legs read it exactly, by size: {@link carryUsd}).
  const perUnit = (pts: readonly CarryPoint[]) => {
    const last = pts[pts.length - 1];
    return last ? last.usd / last.n : undefined;
  };
  const reduceCarryPerUnit = perUnit(carry.reduce) ?? perUnit(carry.open) ?? 0;
  const openCarryPerUnit = perUnit(carry.open) ?? reduceCarryPerUnit;
  const linear = qs.every(
    (x) =>
      Math.abs(x.q.fundingCarryUsd / x.n - openCarryPerUnit) <=
      1e-12 * Math.max(1, Math.abs(openCarryPerUnit)),
  );
  return {
    v,
    aReduce: feePerUnit + spread + reduceCarryPerUnit,
    aOpen: feePerUnit + spread + openCarryPerUnit,
    k,
    feePerUnit,
    feeFixedUsd,
    carry,
    carryPerUnit: linear ? openCarryPerUnit : undefined,
    spreadPerUnit: spread,
    gasUsd: Math.max(...qs.map((x) => x.q.gasUsd)),
    latencyMs: big.q.expectedLatencyMs,
    cap,
    capReason,
    reducible,
    noBridgeCap,
    bridges,
    noMoveNote,
    expectedPrice: big.q.expectedPriceUsd,
  };
}

/**
 * Funding carry of a leg of `q` on the venue, USD, from its quotes of the leg's kind only (see
 * {@link Carry}): a leg that only reduces the position from the reducing quotes, one that opens or grows a
 * position from the others. Between two quotes of the kind, on the line through them; below or above
 * them all, at the nearest one's carry per unit. A kind the venue gave no quote of takes the other kind's
 * ({@link carryGuessed} says when).
 */
function carryUsd(m: Model, q: number): number {
  if (m.carryPerUnit !== undefined) return m.carryPerUnit * q;
  const reduces = reducesAt(m.reducible, q);
  const own = reduces ? m.carry.reduce : m.carry.open;
  return carryOn(own.length > 0 ? own : reduces ? m.carry.open : m.carry.reduce, q);
}

/** Whether {@link carryUsd} of a leg of `q` is read from quotes of the other kind than the leg. */
function carryGuessed(m: Model, q: number): boolean {
  return (reducesAt(m.reducible, q) ? m.carry.reduce : m.carry.open).length === 0;
}

function carryOn(pts: readonly CarryPoint[], q: number): number {
  const first = pts[0];
  if (!first) return 0;
  if (q <= first.n) return (first.usd / first.n) * q;
  for (let i = 1; i < pts.length; i++) {
    const hi = pts[i] as CarryPoint;
    // q > pts[i - 1].n here, so hi.n > lo.n
    if (q <= hi.n) {
      const lo = pts[i - 1] as CarryPoint;
      return lo.usd + ((hi.usd - lo.usd) * (q - lo.n)) / (hi.n - lo.n);
    }
  }
  const last = pts[pts.length - 1] as CarryPoint;
  return (last.usd / last.n) * q;
}

interface Choice {
  m: Model;
  /** The move funding this leg, when it is planned with one (null: the margin it has). */
  bridge: BridgeOption | null;
  cap: number;
  /** Costs this leg pays once, whatever its size: gas, fixed fee, bridge fee and delay. */
  fixed: number;
}

/** Whole steps of `step` in `size`, floored; `size / step` carries float noise (6.67/0.01 = 666.99…). */
function stepsIn(size: number, step: number): number {
  return Math.floor(size / step + 1e-9);
}

/**
 * Rounds a split to each venue's size step without going over the request or a leg's cap: every leg is
 * rounded down, then the steps left are handed out to the legs that rounding moved furthest from the
 * split (least overshoot of their ideal size first) while a step fits the rest of the request and the
 * leg's cap; a last pass fills what caps left over on legs still with room. Rounding each leg to the
 * nearest step instead over-hedges: 3 × 6.666… at 0.01 → 20.01 for 20. Float math in the search
 * (cleaned to 12 places); exact decimal strings are made once, for the chosen legs.
 */
function roundLegs(raw: readonly number[], choices: readonly Choice[], size: number): number[] {
  const steps = choices.map((ch) => ch.m.v.sizeStepBase);
  // cap/step carries float noise (0.5/1e-9 = 499999999.99999994): floor with a tolerance, not 1e-9 absolute.
  const maxByCap = choices.map((ch, i) => {
    const step = steps[i] as number;
    return step > 0 ? Math.floor(ch.cap / step + 1e-6) * step : ch.cap;
  });
  const clean = (x: number) => Number(x.toFixed(12));
  const q = raw.map((x, i) => {
    const step = steps[i] as number;
    const capped = Math.min(x, maxByCap[i] as number);
    return clean(step > 0 ? stepsIn(capped, step) * step : capped);
  });
  const sum = () => q.reduce((s, x) => s + x, 0);
  const fits = (i: number, n: number) => {
    const step = steps[i] as number;
    const add = n * step;
    return (
      step > 0 &&
      add <= size - sum() + step * 1e-9 &&
      (q[i] ?? 0) + add <= (maxByCap[i] as number) + step * 1e-9
    );
  };
  // Legs by how far above their ideal size one more step takes them, least first.
  const above = q.map((x, i) => x + (steps[i] as number) - (raw[i] ?? 0));
  const order = q
    .map((_, i) => i)
    .filter((i) => (steps[i] as number) > 0)
    .sort((x, y) => (above[x] as number) - (above[y] as number));
  for (const i of order) if (fits(i, 1)) q[i] = clean((q[i] ?? 0) + (steps[i] as number));
  for (const i of order) {
    const step = steps[i] as number;
    const n = Math.min(stepsIn(size - sum(), step), stepsIn((maxByCap[i] as number) - (q[i] ?? 0), step));
    if (n > 0 && fits(i, n)) q[i] = clean((q[i] ?? 0) + n * step);
  }
  return q;
}

/** All-in cost of a leg of size q (0 when unused: an unused venue pays no fixed cost). */
function legCost(c: Choice, q: number): number {
  const m = c.m;
  return q <= 0 ? 0 : (m.feePerUnit + m.spreadPerUnit) * q + carryUsd(m, q) + m.k * q * q + c.fixed;
}

interface Candidate {
  q: number[];
  choices: Choice[];
  planned: number;
  /** All-in cost of the legs, USD. */
  cost: number;
  /**
   * Cost plus the ranking charge on opened size ({@link openingCharge}), per unit planned × requested
   * size (comparable across plans).
   */
  score: number;
  /** |requested − planned|. */
  miss: number;
  /** Its caps were cut to collateral its legs share (see {@link reserveCaps}). */
  reserved: boolean;
  /** What it opens against opposite positions it leaves on other venues (see {@link openingCharge}). */
  pair: PairCharge;
}

/** What ranks plans besides their all-in cost: the charge on the size they open. */
interface Ranking {
  /** Flat charge per unit opened beyond every opposite position, USD (`openPositionPenaltyBps`). */
  flatUsdPerUnit: number;
  /**
   * Venues holding a position this trade reduces (at least a size step of it), with a usable quote: a
   * plan that opens elsewhere and leaves them unreduced makes a pair with no net delta.
   */
  reducers: readonly Model[];
}

/** Size that opens against opposite positions left on other venues, and what closing those pairs costs. */
interface PairCharge {
  pairedBase: number;
  /** Estimated cost of closing both sides of every pair later, USD. */
  closeUsd: number;
  /** Venues whose opposite position is left (partly) unreduced. */
  leftOn: string[];
}

/**
 * Estimated cost of closing `sizeBase` of a position on the venue later, USD: its fitted cost model for
 * that size (fee, spread and impact, gas and any fixed fee once), without the funding carry (a close pays
 * none). The model is fitted on this trade's side; closing an opened position trades the other side,
 * taken to cost the same.
 */
function closeCostUsd(m: Model, sizeBase: number): number {
  return (m.feePerUnit + m.spreadPerUnit) * sizeBase + m.k * sizeBase * sizeBase + m.gasUsd + m.feeFixedUsd;
}

/**
 * Whether `base` of a position is less than an order on its venue can trade (a size step), or float noise:
 * a plan rounded to steps may leave that much of a position it reduces, and then leaves no pair.
 */
function isDust(m: Model, base: number, eps: number): boolean {
  return base <= eps || (m.v.sizeStepBase > 0 && base < m.v.sizeStepBase * (1 - 1e-6));
}

/**
 * Ranking charge of legs `q` on the size they open (past each venue's own reducible position), USD. Size
 * that opens while other venues keep opposite positions this plan leaves unreduced (up to the size they
 * keep) makes pairs with no net delta, which pay funding on both sides, tie up margin on both and must be
 * closed twice later: it is charged the estimated cost of that close ({@link closeCostUsd}): each opening
 * venue's close of its share of the paired size (shared in proportion to what each opens), plus the close
 * of the paired size where the opposite positions sit, cheapest per unit first and each at most what it
 * holds ({@link closeLeftUsd}). The rest of the opened size pays the flat `flatUsdPerUnit`: every plan of
 * the same size opens that much.
 */
function openingCharge(
  choices: readonly Choice[],
  q: readonly number[],
  r: Ranking,
  eps: number,
): { chargeUsd: number; pair: PairCharge } {
  const openedBy = choices.map((ch, i) => {
    const o = (q[i] ?? 0) - ch.m.reducible;
    return o > eps ? o : 0;
  });
  const opened = openedBy.reduce((s, x) => s + x, 0);
  const left: { m: Model; base: number }[] = [];
  for (const m of r.reducers) {
    const i = choices.findIndex((ch) => ch.m === m);
    const base = m.reducible - (i < 0 ? 0 : Math.min(q[i] ?? 0, m.reducible));
    if (!isDust(m, base, eps)) left.push({ m, base });
  }
  const pairedBase = Math.min(
    opened,
    left.reduce((s, x) => s + x.base, 0),
  );
  const pair: PairCharge = { pairedBase, closeUsd: 0, leftOn: left.map((x) => x.m.v.venue) };
  if (pairedBase > 0) {
    openedBy.forEach((o, i) => {
      if (o > 0) pair.closeUsd += closeCostUsd((choices[i] as Choice).m, (o * pairedBase) / opened);
    });
    pair.closeUsd += closeLeftUsd(left, pairedBase);
  }
  return { chargeUsd: pair.closeUsd + (opened - pairedBase) * r.flatUsdPerUnit, pair };
}

/**
 * Estimated cost of closing `sizeBase` of the opposite positions `left` (each at most the `base` it
 * holds), cheapest per unit first, each venue's order paying its own fixed costs once, USD. A venue
 * holding a sliver cannot close the whole of a pair: the rest is closed where it sits. `sizeBase` is at
 * most what `left` holds in all.
 */
function closeLeftUsd(left: readonly { m: Model; base: number }[], sizeBase: number): number {
  const byUnitCost = [...left].sort(
    (x, y) => closeCostUsd(x.m, x.base) / x.base - closeCostUsd(y.m, y.base) / y.base,
  );
  let rest = sizeBase;
  let usd = 0;
  for (const l of byUnitCost) {
    if (!(rest > 0)) break;
    const take = Math.min(rest, l.base);
    usd += closeCostUsd(l.m, take);
    rest -= take;
  }
  return usd;
}

/**
 * The opening charge per unit the allocator sees on each venue of a subset: its own close plus the
 * close of the opposite positions on the other venues ({@link closeLeftUsd}, for the size it could pair,
 * gas spread over it), or the flat charge when there are none. `assumeReduced` leaves out opposite
 * positions on venues of the subset itself (taken to be reduced first); without it they count too.
 */
function openChargesPerUnit(
  choices: readonly Choice[],
  size: number,
  r: Ranking,
  assumeReduced: boolean,
): number[] {
  const inSubset = new Set(choices.map((ch) => ch.m));
  return choices.map((ch) => {
    const others = r.reducers.filter((m) => m !== ch.m && !(assumeReduced && inSubset.has(m)));
    const x = Math.min(
      size,
      others.reduce((s, m) => s + m.reducible, 0),
    );
    if (!(x > 0)) return r.flatUsdPerUnit;
    const left = others.map((m) => ({ m, base: m.reducible }));
    return (closeCostUsd(ch.m, x) + closeLeftUsd(left, x)) / x;
  });
}

/**
 * The splits of `size` over a subset worth ranking, each at equal marginal cost within the caps (each
 * venue's size past its own reducible position paying an opening charge per unit). The exact charge on a
 * pair is only paid while an opposite position is left, which the allocator's separable curves cannot
 * see, so the subset is split several ways: opposite positions of the subset's venues left (they
 * count against opening elsewhere), taken to be reduced (they do not), and reduced first (each venue of
 * the subset holding one takes all of it it can before the rest is split, or goes whole to one venue
 * that can take it). Each is then ranked on its exact {@link openingCharge}.
 */
function candidateSplits(choices: readonly Choice[], size: number, r: Ranking): number[][] {
  // The size past a venue's reducible position pays its opening carry instead of its reducing one: the
  // difference is part of its opening charge (never below 0, so the curve stays convex; each split is
  // then costed with each leg's exact carry).
  const split = (charges: readonly number[]) =>
    allocateEqualMarginal(
      choices.map((ch, i) => {
        const m = ch.m;
        const reduces = m.reducible > 0;
        return {
          a: reduces ? m.aReduce : m.aOpen,
          k: m.k,
          reducible: m.reducible,
          openUsdPerUnit: Math.max(0, (charges[i] as number) + (reduces ? m.aOpen - m.aReduce : 0)),
          cap: ch.cap,
        };
      }),
      size,
    );
  const leftCharges = openChargesPerUnit(choices, size, r, false);
  const out = [split(leftCharges)];
  if (r.reducers.length === 0) return out;
  const reducedCharges = openChargesPerUnit(choices, size, r, true);
  if (reducedCharges.some((x, i) => x !== leftCharges[i])) out.push(split(reducedCharges));
  const first = choices.map((ch) => (r.reducers.includes(ch.m) ? Math.min(ch.m.reducible, ch.cap) : 0));
  const firstTotal = first.reduce((s, x) => s + x, 0);
  // All of it reduces: the other venues would be unused, which a smaller subset covers.
  if (firstTotal <= 0 || firstTotal >= size) return out;
  const rest = allocateEqualMarginal(
    choices.map((ch, i) => {
      const taken = first[i] as number;
      // The curve past what it reduces: its marginal cost there, all of it opening.
      return {
        a: ch.m.aOpen + 2 * ch.m.k * taken,
        k: ch.m.k,
        reducible: 0,
        openUsdPerUnit: reducedCharges[i] as number,
        cap: Math.max(0, ch.cap - taken),
      };
    }),
    size - firstTotal,
  );
  out.push(first.map((x, i) => x + (rest[i] ?? 0)));
  // That split of the rest may leave a leg under its venue's minimum, which drops the whole subset
  // (sell 11: A reduces 10 and can open 0.5 more, B's minimum is 1; an even split of the last 1 leaves
  // B 0.5): the rest on one venue alone, where it fits, is tried too.
  const restBase = size - firstTotal;
  choices.forEach((ch, i) => {
    if ((first[i] as number) + restBase <= ch.cap)
      out.push(first.map((x, j) => (j === i ? x + restBase : x)));
  });
  return out;
}

/**
 * Sizes a subset of venues on a split of `size` ({@link candidateSplits}): rounded to each venue's step
 * and minimum, with its all-in cost and ranking. Null when the subset is the same plan as a smaller one
 * (a venue ends unused) or plans nothing.
 */
function sizeCandidate(
  choices: Choice[],
  size: number,
  raw: readonly number[],
  ranking: Ranking,
): Candidate | null {
  const q = roundLegs(raw, choices, size);
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
  if (choices.length > 1 && q.some((x) => x <= 0)) return null;
  const planned = q.reduce((s, x) => s + x, 0);
  if (planned <= 0) return null;
  let cost = 0;
  q.forEach((x, i) => {
    cost += legCost(choices[i] as Choice, x);
  });
  const { chargeUsd, pair } = openingCharge(choices, q, ranking, size * 1e-9);
  return {
    q,
    choices,
    planned,
    cost,
    score: ((cost + chargeUsd) * size) / planned,
    miss: Math.abs(size - planned),
    reserved: false,
    pair,
  };
}

/** What the collateral checks need of the request. */
interface Funding {
  side: Side;
  referencePriceUsd: number;
  collateralBuffer: number;
  /** Free collateral per venue of the request, USD: a venue gives no more than this, whatever its sources say. */
  freeByVenueUsd: ReadonlyMap<string, number>;
}

/**
 * What a move of `movedUsd` for a leg takes from its source, USD: the amount plus the bridge fee as it is
 * debited in the asset (the bridge debits both from the source). The fee is the one routing priced the
 * move at (at the whole cap's need, so at least the fee of any smaller move under a fee model that grows
 * with the amount). 0 for no move.
 */
function sourceDrawUsd(ch: Choice, movedUsd: number): number {
  return ch.bridge && movedUsd > 0 ? movedUsd + ch.bridge.feeDebitUsd : 0;
}

/** Slack on collateral sums, USD: float noise, well under the cent moves are rounded to. */
const COLLATERAL_EPS_USD = 1e-6;
/**
 * Slack on what a source pays out against what it holds, USD: float noise only. A millionth of a dollar
 * is a whole unit of USDC or USDT, and a debit a unit over the balance is refused.
 */
const SOURCE_EPS_USD = 1e-9;

const ceilCents = (usd: number) => Math.ceil(usd * 100) / 100;
const floorCents = (usd: number) => Math.floor(usd * 100) / 100;

/**
 * Collateral moved to a leg of size q before it is sent, USD rounded up to the cent (the transfer's
 * amount): its margin plus the buffer, less the free collateral its venue has. 0 for a leg planned
 * without a move, or one its own collateral covers.
 */
function moveUsd(ch: Choice, q: number, f: Funding): number {
  if (!ch.bridge || q <= ch.m.noBridgeCap) return 0;
  const needUsd =
    legMarginUsd(ch.m.v, f.side, q, f.referencePriceUsd) * (1 + f.collateralBuffer) -
    ch.m.v.freeCollateralUsd;
  return needUsd > 0 ? ceilCents(needUsd) : 0;
}

/**
 * Whether legs of sizes `q` can all be funded at once. Each venue's cost model is fitted on its own, so a
 * split can spend one source's collateral twice: two moves out of it, or moves out of a venue whose own
 * leg needs that collateral as margin. A move takes its amount plus its bridge fee from its source
 * ({@link sourceDrawUsd}). Feasible when no source pays out (moves and their fees) more than it holds, no
 * venue gives its own legs' margin plus its moves out and their fees beyond its free collateral, and no venue a move funds
 * funds another leg (routing counted all its free collateral towards its own leg).
 */
function drawsFit(choices: readonly Choice[], q: readonly number[], f: Funding): boolean {
  const movedBySource = new Map<CollateralSource, number>();
  const movedByVenue = new Map<string, number>();
  const marginByVenue = new Map<string, number>();
  const funded = new Set<string>();
  const add = <K>(m: Map<K, number>, k: K, usd: number) => m.set(k, (m.get(k) ?? 0) + usd);
  choices.forEach((ch, i) => {
    const qi = q[i] ?? 0;
    if (qi <= 0) return;
    const movedUsd = moveUsd(ch, qi, f);
    if (ch.bridge && movedUsd > 0) {
      funded.add(ch.m.v.venue);
      // The source pays the move and its bridge fee.
      const drawUsd = sourceDrawUsd(ch, movedUsd);
      add(movedBySource, ch.bridge.source, drawUsd);
      add(movedByVenue, ch.bridge.source.venue, drawUsd);
    } else add(marginByVenue, ch.m.v.venue, legMarginUsd(ch.m.v, f.side, qi, f.referencePriceUsd));
  });
  for (const [s, usd] of movedBySource)
    if (funded.has(s.venue) || usd > s.availableUsd + SOURCE_EPS_USD) return false;
  // Venues nothing moves out of keep their own legs within their free collateral by their caps.
  for (const [venue, movedUsd] of movedByVenue) {
    const freeUsd = f.freeByVenueUsd.get(venue);
    if (freeUsd !== undefined && (marginByVenue.get(venue) ?? 0) + movedUsd > freeUsd + COLLATERAL_EPS_USD)
      return false;
  }
  return true;
}

/**
 * The subset's choices with caps cut to the collateral its legs share, for when its unconstrained split
 * does not fit it ({@link drawsFit}). Legs on the margin they have come first and keep the margin for
 * their whole cap on their venue: margin in place carries no buffer, fee or wait, so it delivers the most
 * hedge per dollar. Then each funded leg, in order, takes the cheapest source with room for its whole
 * cap's move plus the bridge fee, else the one with the most room, its cap cut to what that room less the
 * fee funds. A venue a move funds is no
 * source. Null when a funded leg is left no room worth a leg.
 */
function reserveCaps(choices: readonly Choice[], f: Funding): Choice[] | null {
  const sourceLeftUsd = new Map<CollateralSource, number>();
  const venueLeftUsd = new Map(f.freeByVenueUsd);
  const funded = new Set(choices.filter((ch) => ch.bridge).map((ch) => ch.m.v.venue));
  for (const ch of choices) {
    const left = venueLeftUsd.get(ch.m.v.venue);
    if (ch.bridge || left === undefined) continue;
    venueLeftUsd.set(ch.m.v.venue, left - legMarginUsd(ch.m.v, f.side, ch.cap, f.referencePriceUsd));
  }
  const out: Choice[] = [];
  for (const ch of choices) {
    if (!ch.bridge) {
      out.push(ch);
      continue;
    }
    const m = ch.m;
    const needUsd = ceilCents(
      legMarginUsd(m.v, f.side, ch.cap, f.referencePriceUsd) * (1 + f.collateralBuffer) -
        m.v.freeCollateralUsd,
    );
    let pick: { b: BridgeOption; moveUsd: number } | null = null;
    for (const b of m.bridges) {
      if (funded.has(b.source.venue)) continue;
      // What the source can move once the bridge fee it also pays is set aside.
      const roomUsd = floorCents(
        Math.min(
          sourceLeftUsd.get(b.source) ?? b.source.availableUsd,
          venueLeftUsd.get(b.source.venue) ?? Number.POSITIVE_INFINITY,
        ) - b.feeDebitUsd,
      );
      if (roomUsd >= needUsd) {
        pick = { b, moveUsd: needUsd };
        break;
      }
      if (!pick || roomUsd > pick.moveUsd) pick = { b, moveUsd: roomUsd };
    }
    if (!pick || !(pick.moveUsd > 0)) return null;
    let cap = ch.cap;
    if (pick.moveUsd < needUsd) {
      // The size the room funds, a cent short of it: the move for a leg is rounded up to the cent.
      const fundedBase = maxSizeForMarginUsd(
        m.v,
        f.side,
        m.v.freeCollateralUsd + (pick.moveUsd - 0.01) / (1 + f.collateralBuffer),
        f.referencePriceUsd,
      );
      if (!Number.isFinite(fundedBase)) return null;
      cap = Math.min(ch.cap, fundedBase);
      if (!(cap > m.noBridgeCap) || cap < m.v.minSizeBase) return null;
    }
    const { source } = pick.b;
    const drawUsd = pick.moveUsd + pick.b.feeDebitUsd;
    sourceLeftUsd.set(source, (sourceLeftUsd.get(source) ?? source.availableUsd) - drawUsd);
    const venueLeft = venueLeftUsd.get(source.venue);
    if (venueLeft !== undefined) venueLeftUsd.set(source.venue, venueLeft - drawUsd);
    out.push({
      m,
      bridge: pick.b,
      cap,
      fixed: m.gasUsd + m.feeFixedUsd + pick.b.feeUsd + pick.b.delayUsd,
    });
  }
  return out;
}

/**
 * Why a split beat the best single venue of the same size: it costs less all-in, or it costs more now
 * but the single venue ranked below it on its opening charge (a pair it would leave to close later).
 */
function splitNote(legs: number, best: Candidate, single: Candidate, fixedUsd: number): string {
  const venue = single.choices[0]?.m.v.venue;
  const savedUsd = single.cost - best.cost;
  if (savedUsd >= 0)
    return (
      `split over ${legs} venues: saves $${savedUsd.toFixed(2)} against the best single venue (${venue}) ` +
      `after $${fixedUsd.toFixed(2)} of fixed costs on its legs`
    );
  const why =
    single.pair.pairedBase > 0
      ? `would leave opposite positions on ${single.pair.leftOn.join(', ')} to close later (≈ $${single.pair.closeUsd.toFixed(2)})`
      : 'ranks below it on the charge on the size it opens';
  return `split over ${legs} venues: $${(-savedUsd).toFixed(2)} more now than the best single venue (${venue}), which ${why}`;
}

/**
 * Routes a signed delta across venues at the lowest all-in cost: fee + spread/impact for the size + gas or
 * execution fee + funding carry over the holding time + (when margin is short) the bridge fee and a price
 * on its delay.
 *
 * Every subset of up to `maxLegs` venues is tried, each venue with or without a collateral move; within a
 * subset the size is split at equal marginal cost within caps, rounded to each venue's step (never above
 * the request, see {@link roundLegs}) and minimum, and each leg pays its own fixed costs (gas, fixed fee,
 * bridge). So a split is only chosen when the impact it saves exceeds the extra legs' fixed costs, and
 * never when one venue is cheaper all-in (the opening charges below counted). Plans are ranked by how
 * close they come to the requested size (differences within one size step are rounding, not capacity),
 * then by all-in cost plus a ranking charge on the size they open (never part of the reported leg costs;
 * see {@link openingCharge}). Size that opens on one venue while another keeps a position of the opposite
 * sign that the plan could have reduced makes a pair with no net delta: it pays funding on both sides,
 * ties up margin on both and must be closed twice later. That size is charged the estimated later close
 * of the pair: the opening venue's close plus the close where the opposite positions sit (cheapest per
 * unit first, each venue at most what it holds), each from its fitted cost model (fee, spread and impact,
 * gas once per order). So a plan reduces opposite positions first unless opening elsewhere is cheaper even counting
 * that close (a venue with an opposite position but no usable quote cannot be reduced and is not
 * counted). What opens beyond every opposite position pays the flat `openPositionPenaltyBps`, the same in
 * every plan of one size. A leg needs the collateral {@link legMarginUsd} counts (none for a leg that
 * only reduces its venue's position; else margin on the part past it, and at least what a venue that
 * keeps a market's long and short apart, GMX, posts on the whole size). Every plan is fundable as a
 * whole: legs drawing on one source's collateral (moves out of it, and its own venue's leg) are sized
 * to fit it together, with its own leg's margin kept first (see {@link reserveCaps}); what no collateral covers is shortfall. A pure
 * function of its inputs.
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
  // Refused by name: a NaN, zero or negative reference price turns every margin check off (legs sized
  // past their venues' collateral), and a NaN delta would plan nothing with a NaN shortfall.
  assertFinite('route request deltaBase', req.deltaBase);
  if (!(Number.isFinite(req.referencePriceUsd) && req.referencePriceUsd > 0))
    throw new RangeError(
      `route request referencePriceUsd must be a positive finite number, got ${req.referencePriceUsd}`,
    );
  // A move is sized in USD and sent as that many units of its source's asset: only a USD-like one.
  for (const s of options.collateralSources ?? [])
    if (!isUsdLike(s.asset))
      throw new RangeError(
        `collateral source ${s.venue} (${s.chain}) holds ${s.asset}, not a USD-like asset (USD, USDC, USDT, DAI): ` +
          'a collateral move is sized in USD and sent as that many units of its asset',
      );
  const side: Side = req.deltaBase > 0 ? 'buy' : 'sell';
  const size = Math.abs(req.deltaBase);
  const urgent = req.urgency === 'urgent';
  const notes: string[] = [];
  // Nothing to hedge: no order (the lone-leg rule below would send a venue minimum for it).
  if (size === 0)
    return {
      planId: req.planId,
      underlying: req.underlying,
      createdAtMs: req.createdAtMs,
      legs: [],
      legCosts: [],
      transfers: [],
      requestedDeltaBase: 0,
      plannedDeltaBase: 0,
      shortfallBase: 0,
      totalCostUsd: 0,
      notes: ['nothing to route: the delta is 0'],
    };
  if (!(Number.isFinite(opts.maxSlippageBps) && opts.maxSlippageBps >= 0))
    throw new RangeError(`maxSlippageBps must be a finite number >= 0, got ${String(opts.maxSlippageBps)}`);
  const models: Model[] = [];
  for (const v of venues) {
    const m = fitCostModel(
      withPostingHeadroom(v, opts.maxSlippageBps),
      side,
      size,
      opts,
      options.collateralSources ?? [],
      urgent,
      req.referencePriceUsd,
    );
    if (!m) notes.push(`${v.venue}: no usable ${side} quote; skipped`);
    else {
      models.push(m);
      if (m.noMoveNote !== undefined) notes.push(m.noMoveNote);
    }
  }
  // Plans within one (largest) size step of each other differ by rounding, not by what they can deliver.
  const missTol = Math.max(0, ...models.map((m) => m.v.sizeStepBase)) + size * 1e-12;
  const better = (x: Candidate, y: Candidate | null) =>
    !y || x.miss < y.miss - missTol || (Math.abs(x.miss - y.miss) <= missTol && x.score < y.score - 1e-9);
  const ranking: Ranking = {
    flatUsdPerUnit: (opts.openPositionPenaltyBps / 10_000) * req.referencePriceUsd,
    reducers: models.filter((m) => m.reducible > 0 && !isDust(m, m.reducible, size * 1e-9)),
  };
  /** The best-ranked plan of a subset over its {@link candidateSplits}. */
  const sizeSubset = (choices: Choice[]): Candidate | null => {
    let best: Candidate | null = null;
    for (const raw of candidateSplits(choices, size, ranking)) {
      const cand = sizeCandidate(choices, size, raw, ranking);
      if (cand && better(cand, best)) best = cand;
    }
    return best;
  };
  const funding: Funding = {
    side,
    referencePriceUsd: req.referencePriceUsd,
    collateralBuffer: opts.collateralBuffer,
    freeByVenueUsd: new Map(venues.map((v) => [v.venue, v.freeCollateralUsd])),
  };
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
      const bridge = m.bridges[0];
      if (mode === 1) {
        if (m.noBridgeCap < m.v.minSizeBase || m.noBridgeCap <= 0) ok = false;
        choices.push({ m, bridge: null, cap: m.noBridgeCap, fixed: fixedBase });
      } else if (!bridge) ok = false;
      else choices.push({ m, bridge, cap: m.cap, fixed: fixedBase + bridge.feeUsd + bridge.delayUsd });
    }
    if (!ok || choices.length === 0 || choices.length > opts.maxLegs) continue;
    let cand = sizeSubset(choices);
    // A split that spends a source twice is sized again on collateral reserved per leg; if even that
    // does not fit (float noise at the last cent), the subset is dropped: a plan must be fundable.
    if (cand && !drawsFit(cand.choices, cand.q, funding)) {
      const reserved = reserveCaps(choices, funding);
      cand = reserved ? sizeSubset(reserved) : null;
      if (cand && !drawsFit(cand.choices, cand.q, funding)) cand = null;
      if (cand) cand.reserved = true;
    }
    if (!cand) continue;
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
    const movedUsd = moveUsd(ch, q, funding);
    if (ch.bridge && movedUsd > 0) {
      const t: CollateralTransfer = {
        id: transferId(req.planId, m.v.venue),
        planId: req.planId,
        fromVenue: ch.bridge.source.venue,
        fromChain: ch.bridge.source.chain,
        toVenue: m.v.venue,
        toChain: m.v.chain,
        asset: ch.bridge.source.asset,
        amount: toDecimalString(movedUsd, 2),
        feeUsd: ch.bridge.feeUsd,
        expectedLatencyMs: ch.bridge.latencyMs,
      };
      transfers.push(t);
      dependsOn.push(t.id);
      bridgeFeeUsd = ch.bridge.feeUsd;
      delayCostUsd = ch.bridge.delayUsd;
      latency += ch.bridge.latencyMs;
      notes.push(
        `${m.v.venue}: margin short; moving ${t.amount} ${t.asset} from ${t.fromVenue} (${t.fromChain}) first`,
      );
    }
    const reduceOnly = reducesAt(m.reducible, q);
    if (reduceOnly)
      notes.push(`${m.v.venue}: reduces the existing ${m.v.positionBase} position (reduce-only)`);
    const feeUsd = m.feePerUnit * q + m.feeFixedUsd;
    const impactUsd = m.spreadPerUnit * q + m.k * q * q;
    const fundingCarryUsd = carryUsd(m, q);
    if (carryGuessed(m, q))
      notes.push(
        `${m.v.venue}: funding carry of ${q} taken from quotes of sizes that ${reduceOnly ? 'open past' : 'only reduce'} ` +
          `its ${m.v.positionBase} position: none was quoted at a size that ${reduceOnly ? 'only reduces it' : 'opens past it'}`,
      );
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
        ? splitNote(legs.length, best, single, fixedUsd)
        : `split over ${legs.length} venues: no single venue can take all of it`,
    );
  }
  if (best.pair.pairedBase > 0)
    notes.push(
      `opens ${toDecimalString(best.pair.pairedBase, 8)} against opposite positions left on ${best.pair.leftOn.join(', ')}: ` +
        `no plan reducing more was possible or cheaper counting the later close of both sides ` +
        `(≈ $${best.pair.closeUsd.toFixed(2)}, not in the leg costs)`,
    );
  if (best.reserved && transfers.length > 0) {
    const shared = [...new Set(transfers.map((t) => t.fromVenue))].join(', ');
    notes.push(
      `collateral on ${shared} is shared: its own legs keep their margin, and the moves out of it are cut to what is left`,
    );
  }
  const plannedSigned = (side === 'buy' ? 1 : -1) * best.planned;
  const shortfall = Math.max(0, size - best.planned);
  if (shortfall > 1e-9)
    notes.push(
      shortfall < missTol
        ? `shortfall ${toDecimalString(shortfall, 8)}: sizes rounded down to the venues' size steps`
        : `shortfall ${toDecimalString(shortfall, 8)}: caps, liquidity or collateral`,
    );
  // Legs are rounded down, so only a lone leg raised to its venue's minimum order (or size step) goes over.
  const over = best.planned - size;
  if (over > 1e-9) {
    const v = (best.choices[best.q.findIndex((x) => x > 0)] as Choice).m.v;
    notes.push(
      `over-hedged by ${toDecimalString(over, 8)}: ${v.venue} takes no less than ${Math.max(v.minSizeBase, v.sizeStepBase)}`,
    );
  }
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

/**
 * The signed delta a decision's plan routes to perp/spot venues (buy > 0), underlying units: what
 * {@link planDecision} gives {@link routeDelta}, so the venues can be quoted for that side and size.
 *
 * A delta trade is routed as it is: the strategy sized it on the book's delta plus the delta its option
 * legs add, so it already offsets them. A vega-only decision (option legs, no delta trade) routes the
 * opposite of its legs' delta when the book is outside its delta band (the policy held the delta hedge
 * back for time, gas, dust or caps; the option trade must not add to the drift meanwhile). Inside the
 * band it routes nothing: with the legs' delta the book is still inside. 0 for a hold.
 */
export function routedDeltaBase(
  decision: Pick<HedgeDecision, 'action' | 'tradeDeltaBase' | 'vegaTrades' | 'driftDelta' | 'bandHalfWidth'>,
): number {
  if (decision.action !== 'hedge') return 0;
  if (decision.tradeDeltaBase !== 0) return assertFinite('delta trade', decision.tradeDeltaBase);
  const vegaDelta = assertFinite(
    'vega legs delta',
    decision.vegaTrades.reduce((s, t) => s + t.delta, 0),
  );
  const outsideBand = Math.abs(decision.driftDelta) > decision.bandHalfWidth;
  return outsideBand && Math.abs(vegaDelta) > 1e-12 ? -vegaDelta : 0;
}

/** Per-underlying routing inputs for {@link planDecision}. */
export interface PlanInputs {
  /** Venues that can take the delta hedge, with quotes for the decision's side. */
  venues: readonly RouteVenue[];
  options: RouteOptions;
  /** Price tick per option venue|instrument for vega legs' limit prices. */
  optionTickUsd?: Readonly<Record<string, number>>;
  /**
   * Free collateral per option venue, USD, by venue: as read, less what earlier plans of the round
   * committed (`CollateralReservation.freeUsd`). The vega legs' premium, fees and short collateral are
   * taken from it before the delta legs are routed. A venue missing here falls back to the
   * `freeCollateralUsd` of its entry in `venues`; a venue in neither is not checked (noted when this
   * map is given).
   */
  optionFreeCollateralUsd?: Readonly<Record<string, number>>;
  /**
   * Size rules and fees per option venue|instrument, to count what a vega leg pays and to cut it to what
   * its venue's collateral pays. A leg that does not fit and has no entry here is dropped: its size step
   * is unknown.
   */
  optionMarkets?: Readonly<Record<string, OptionMarket>>;
}

/** A vega leg as {@link fitOptionLegs} leaves it. */
interface FittedOptionLeg {
  t: OptionTrade;
  sizeBase: number;
  limitPriceUsd: string;
}

/**
 * The decision's option trades fitted to their venues' free collateral, in the decision's order (the
 * vega solver's, cheapest vega first): each takes its premium at the limit price plus its fee (a buy), or
 * its fee plus the collateral its venue locks where stated (a sell; the premium it receives arrives with
 * the fill, so it funds nothing here). A leg its venue's collateral left by the legs before it does not
 * pay in full is cut to the whole steps that collateral pays, or dropped below the venue minimum; no
 * transfer is planned for an option leg. Returns the legs kept, what they take per venue (USD), and the
 * delta the cut and dropped part would have added (signed, underlying units).
 */
function fitOptionLegs(
  trades: readonly OptionTrade[],
  inputs: PlanInputs,
  slippageBps: number,
  notes: string[],
): { legs: FittedOptionLeg[]; takenUsd: Map<string, number>; cutDeltaBase: number } {
  const legs: FittedOptionLeg[] = [];
  const takenUsd = new Map<string, number>();
  const unchecked = new Set<string>();
  let cutDeltaBase = 0;
  trades.forEach((t, i) => {
    const key = `${t.venue}|${t.instrument}`;
    const sizeBase = assertFinite(`vega trade ${i} (${key}) sizeBase`, t.sizeBase);
    if (!(sizeBase > 0))
      throw new RangeError(`vega trade ${i} (${key}) sizeBase must be > 0, got ${sizeBase}`);
    const limitPriceUsd = limitPrice(t.side, t.priceUsd, slippageBps, inputs.optionTickUsd?.[key]);
    const market = inputs.optionMarkets?.[key];
    // A rebate is paid with the fill, like a sold premium: it funds nothing before.
    const feeUsdPerUnit = Math.max(
      0,
      assertFinite(`${key} fee per unit`, market?.feeUsdPerUnit ?? t.costUsd / sizeBase),
    );
    const takeUsdPerUnit =
      t.side === 'buy'
        ? assertFinite(`${key} limit price`, Number(limitPriceUsd)) + feeUsdPerUnit
        : feeUsdPerUnit +
          Math.max(
            0,
            assertFinite(`${key} short collateral per unit`, market?.shortCollateralUsdPerUnit ?? 0),
          );
    const readFreeUsd =
      inputs.optionFreeCollateralUsd?.[t.venue] ??
      inputs.venues.find((v) => v.venue === t.venue)?.freeCollateralUsd;
    // A NaN would fail every comparison below and let the leg through unchecked: refuse it by name.
    const freeUsd =
      readFreeUsd === undefined ? undefined : assertFinite(`${t.venue} free collateral`, readFreeUsd);
    const takenBeforeUsd = takenUsd.get(t.venue) ?? 0;
    const leftUsd = freeUsd === undefined ? Number.POSITIVE_INFINITY : Math.max(0, freeUsd - takenBeforeUsd);
    if (freeUsd === undefined) unchecked.add(t.venue);
    let fittedBase = sizeBase;
    const needUsd = sizeBase * takeUsdPerUnit;
    if (needUsd > leftUsd + COLLATERAL_EPS_USD) {
      const what = `${t.venue}: ${t.side} ${sizeBase} ${t.instrument} takes $${needUsd.toFixed(2)} (${t.side === 'buy' ? 'premium at its limit and fee' : 'fee and short collateral'}), $${leftUsd.toFixed(2)} free there`;
      const step = market?.sizeStepBase;
      if (!market || !(step !== undefined && step > 0)) {
        fittedBase = 0;
        notes.push(`${what}: dropped, its size step is unknown`);
      } else {
        let n = stepsIn(Math.min(sizeBase, leftUsd / takeUsdPerUnit), step);
        // Float noise in the floor: never a step more than the collateral pays.
        while (n > 0 && n * step * takeUsdPerUnit > leftUsd + COLLATERAL_EPS_USD) n--;
        fittedBase = Number((n * step).toFixed(12));
        if (fittedBase <= 0 || fittedBase < market.minSizeBase) {
          fittedBase = 0;
          notes.push(`${what}: dropped, it pays less than the venue minimum ${market.minSizeBase}`);
        } else notes.push(`${what}: cut to ${fittedBase}`);
      }
      cutDeltaBase += t.delta * (1 - fittedBase / sizeBase);
    }
    if (fittedBase <= 0) return;
    takenUsd.set(t.venue, takenBeforeUsd + fittedBase * takeUsdPerUnit);
    legs.push({ t, sizeBase: fittedBase, limitPriceUsd });
  });
  if (inputs.optionFreeCollateralUsd !== undefined)
    for (const venue of unchecked)
      notes.push(`${venue}: free collateral unknown; its option legs are not checked against it`);
  return { legs, takenUsd, cutDeltaBase: assertFinite('cut option legs delta', cutDeltaBase) };
}

/**
 * Turns a strategy decision into a plan: the decision's option (vega) trades as legs on the venues the
 * solver chose, then the delta hedge routed by {@link routeDelta}. Holds give null.
 *
 * The option legs take their venues' free collateral first (see {@link fitOptionLegs}): a leg its venue
 * cannot pay for is cut or dropped, with a note, and the plan's `optionCollateralUsd` states what they
 * take. The delta legs are then routed on what is left: each delta venue's free collateral and
 * collateral sources less the option legs' take there, so a venue is never planned for more than it
 * holds (a move may still fund a delta leg short after the premium). The delta routed moves by the
 * delta the cut option legs no longer add; if that turns it to the other side than the venues were
 * quoted for, none is routed (the next decision sees the book as it is).
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
  const notes: string[] = [];
  const fitted = fitOptionLegs(decision.vegaTrades, inputs, slip, notes);
  for (const { t, sizeBase, limitPriceUsd } of fitted.legs) {
    const id = intentId(planId, legs.length, t.venue, t.instrument);
    // The solver's cost is for its size; a cut leg costs its share of it.
    const costUsd = (t.costUsd * sizeBase) / t.sizeBase;
    legs.push({
      id,
      planId,
      underlying: decision.underlying,
      venue: t.venue,
      chain: t.chain,
      instrument: t.instrument,
      side: t.side,
      sizeBase: toDecimalString(sizeBase, 12),
      orderType: 'limit',
      limitPriceUsd,
      referencePriceUsd: t.priceUsd,
      reduceOnly: false,
      urgency: decision.urgency,
      reason: `${decision.reason} Vega leg: ${t.side} ${sizeBase} ${t.instrument} on ${t.venue}.`.slice(
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
      sizeBase,
      feeUsd: 0,
      impactUsd: costUsd,
      gasUsd: 0,
      fundingCarryUsd: 0,
      bridgeFeeUsd: 0,
      delayCostUsd: 0,
      totalCostUsd: costUsd,
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
  if (legs.length > 0) base.optionCollateralUsd = Object.fromEntries(fitted.takenUsd);
  const decidedDeltaBase = routedDeltaBase(decision);
  let deltaBase = decidedDeltaBase;
  if (decidedDeltaBase !== 0 && fitted.cutDeltaBase !== 0) {
    // The decision's delta offsets its option legs' delta: what the cut part no longer adds is not offset.
    const movedBase = decidedDeltaBase + fitted.cutDeltaBase;
    deltaBase = movedBase * decidedDeltaBase > 0 && Math.abs(movedBase) > 1e-12 ? movedBase : 0;
    notes.push(
      deltaBase !== 0
        ? `delta routed moved from ${toDecimalString(decidedDeltaBase, 8)} to ${toDecimalString(deltaBase, 8)}: the cut option legs no longer add ${toDecimalString(fitted.cutDeltaBase, 8)}`
        : `the cut option legs leave ${toDecimalString(movedBase, 8)} delta to route, not the ${toDecimalString(decidedDeltaBase, 8)} decided: none routed, the next decision sees the book as it is`,
    );
  }
  if (decision.tradeDeltaBase === 0 && legs.length > 0)
    notes.push(
      deltaBase !== 0
        ? `vega legs add ${toDecimalString(-deltaBase, 8)} delta outside the band: hedged with them; the rest of the drift waits for the policy`
        : 'vega legs only: their delta keeps the book inside its delta band',
    );
  if (deltaBase === 0) return { ...base, notes };
  // The option legs are paid first: the delta legs see each venue's collateral less what they take.
  const optionsTake = new CollateralReservation();
  optionsTake.commit(
    { legs: [], transfers: [], optionCollateralUsd: Object.fromEntries(fitted.takenUsd) },
    [],
  );
  const venues = inputs.venues.map((v) => {
    const takenUsd = fitted.takenUsd.get(v.venue) ?? 0;
    if (!(takenUsd > 0)) return v;
    notes.push(
      `${v.venue}: option legs take $${takenUsd.toFixed(2)} of its $${v.freeCollateralUsd.toFixed(2)} free collateral; the delta legs get the rest`,
    );
    return { ...v, freeCollateralUsd: optionsTake.freeUsd(v.venue, v.freeCollateralUsd) };
  });
  const routeOpts: RouteOptions = opts.collateralSources
    ? { ...opts, collateralSources: optionsTake.sources(opts.collateralSources) }
    : opts;
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
    venues,
    routeOpts,
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
