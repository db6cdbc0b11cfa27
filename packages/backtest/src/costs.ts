import { toDecimalString } from '@xhedge/core';
import type { RoutingBridgeCost } from '@xhedge/crosschain';
import {
  type CollateralSource,
  type CollateralTransfer,
  DEFAULT_HOLDING_HOURS,
  type RouteVenue,
  routeDelta,
} from '@xhedge/routing';
import { createGasProcess } from '@xhedge/sim';
import type { HedgeQuote } from '@xhedge/venue';
import { BacktestInputError } from './errors.ts';

/** A venue's cost model in the engine's units (fractions of notional, USD). Structured-cloneable. */
export interface EngineVenue {
  id: string;
  chain: string;
  feeFraction: number;
  halfSpreadFraction: number;
  /** Impact as a fraction of notional per USD traded (cost = impact · notional²). */
  impactFractionPerUsd: number;
  gasMinUsd: number;
  gasMaxUsd: number;
  priorityFeeUsd: number;
  fundingRatePerHour: number;
  /** Takes hedges; false for a collateral account only (a treasury wallet or vault). @defaultValue true */
  hedges?: boolean;
  /**
   * Free USD-like collateral (USDC) on the venue at the start, USD. When any venue of a job sets it,
   * collateral is modelled per venue and per path (venues without it start at 0); otherwise margin is
   * unlimited.
   */
  collateralUsd?: number;
  /** Initial margin per USD of notional (0.1 = 10× leverage), when collateral is modelled. @defaultValue 0.1 */
  marginFraction?: number;
  /**
   * Maintenance margin per USD of notional, when collateral is modelled: when the venue's equity (its
   * collateral balance, perp P&L marked to the step's price included) falls below this fraction of the
   * open hedge's notional, the hedge on that venue is liquidated. 0 < value ≤ `marginFraction`.
   * @defaultValue half the venue's `marginFraction`: 0.05 at the default 0.1, the maintenance ratio of
   * Drift's SDK default perp market (5%); GMX v2 liquidates BTC and ETH positions below 0.5% of size and
   * most others below 1% (`minCollateralFactorForLiquidation`), so half is the cautious side for GMX
   */
  maintenanceMarginFraction?: number;
  /**
   * Penalty of a liquidation per USD of liquidated notional, charged to the venue's balance on top of
   * the close's spread and impact (it replaces the taker fee and gas, which the liquidator pays).
   * @defaultValue 0.01 (Drift's SDK default perp market: 1% insurance-fund liquidation fee; GMX v2:
   * 0.20% of position size on standard markets, 0.30% on single-token and synthetic ones, plus its close fee)
   */
  liquidationPenaltyFraction?: number;
}

/** Margin per USD of notional when a venue does not say. */
export const DEFAULT_MARGIN_FRACTION = 0.1;

/**
 * Liquidation penalty per USD of liquidated notional when a venue does not say. Sources: Drift
 * (drift-labs/protocol-v2 sdk/src/adminClient.ts `initializePerpMarket`: `ifLiquidatorFee = 10000` at
 * LIQUIDATION_FEE_PRECISION 1e6, i.e. 1%, with `marginRatioInitial = 2000`, `marginRatioMaintenance = 500`
 * at MARGIN_PRECISION 1e4); GMX v2 (gmx-io/gmx-synthetics config/markets.ts: `liquidationFeeFactor`
 * 0.20% in the base market config, 0.30% single-token and synthetic). 1% is the high end: a backtest
 * should not make thin margin look cheap.
 */
export const DEFAULT_LIQUIDATION_PENALTY_FRACTION = 0.01;

/** Initial margin per USD of notional of a venue (its own or {@link DEFAULT_MARGIN_FRACTION}). */
export function initialMarginFraction(v: EngineVenue): number {
  return v.marginFraction ?? DEFAULT_MARGIN_FRACTION;
}

/** Maintenance margin per USD of notional of a venue: its own, or half its initial margin fraction. */
export function maintenanceMarginFraction(v: EngineVenue): number {
  return v.maintenanceMarginFraction ?? initialMarginFraction(v) / 2;
}

/** Liquidation penalty per USD of liquidated notional of a venue (its own or the default, 1%). */
export function liquidationPenaltyFraction(v: EngineVenue): number {
  return v.liquidationPenaltyFraction ?? DEFAULT_LIQUIDATION_PENALTY_FRACTION;
}

/**
 * Checks the margin settings of job venues built without the file schema (which checks the same):
 * 0 < margin ≤ 1, 0 < maintenance ≤ margin, 0 ≤ penalty < 1. Throws naming the venue and the field.
 */
export function assertMarginSettings(venues: readonly EngineVenue[]): void {
  for (const v of venues) {
    const im = initialMarginFraction(v);
    if (!(im > 0 && im <= 1))
      throw new BacktestInputError(`venue ${v.id}: marginFraction must be in (0, 1], got ${im}`, {
        venue: v.id,
        field: 'marginFraction',
      });
    const mm = maintenanceMarginFraction(v);
    if (!(mm > 0 && mm <= im))
      throw new BacktestInputError(
        `venue ${v.id}: maintenanceMarginFraction must be above 0 and at most marginFraction (${im}), got ${mm}`,
        { venue: v.id, field: 'maintenanceMarginFraction' },
      );
    const pen = liquidationPenaltyFraction(v);
    if (!(pen >= 0 && pen < 1))
      throw new BacktestInputError(
        `venue ${v.id}: liquidationPenaltyFraction must be in [0, 1), got ${pen}`,
        {
          venue: v.id,
          field: 'liquidationPenaltyFraction',
        },
      );
  }
}

/** The collateral asset the backtester moves between venues. */
export const COLLATERAL_ASSET = 'USDC';

/** True when the job's venues declare collateral (then margin and bridging are simulated). */
export function collateralModelled(venues: readonly EngineVenue[]): boolean {
  return venues.some((v) => v.collateralUsd !== undefined);
}

/** Cost of one trade, USD, split the way P&L attribution reports it. */
export interface TradeCost {
  feeUsd: number;
  slippageUsd: number;
  gasUsd: number;
}

/** Gas cost per transaction of each venue over time on one path (pure function of seed, venue, path, time). */
export type GasCurve = (ms: number) => number;

export function gasCurves(venues: readonly EngineVenue[], seed: number, pathIndex: number): GasCurve[] {
  return venues.map((v) => {
    if (v.gasMaxUsd <= 0) return () => v.priorityFeeUsd;
    if (v.gasMinUsd === v.gasMaxUsd) return () => v.gasMinUsd + v.priorityFeeUsd;
    const p = createGasProcess({
      seed,
      label: `${v.id}:path:${pathIndex}`,
      lowUsd: Math.max(v.gasMinUsd, 1e-9),
      highUsd: v.gasMaxUsd,
    });
    return (ms) => p.usdAt(ms) + v.priorityFeeUsd;
  });
}

export function tradeCost(v: EngineVenue, notionalUsd: number, gasUsd: number): TradeCost {
  const n = Math.abs(notionalUsd);
  return {
    feeUsd: v.feeFraction * n,
    slippageUsd: (v.halfSpreadFraction + v.impactFractionPerUsd * n) * n,
    gasUsd,
  };
}

/**
 * Hours of holding the routers price funding over: what the live router asks every venue to quote its
 * funding carry for (`DEFAULT_HOLDING_HOURS` of @xhedge/routing, 24; the runtime does not set it).
 */
export const ROUTING_HOLDING_HOURS = DEFAULT_HOLDING_HOURS;

/**
 * Funding a trade of `signedNotionalUsd` (+ buys, − sells) pays on venue `v` over `holdingHours`, USD,
 * signed as the live router's quotes sign it: + = a cost. With a positive rate longs pay: a buy pays
 * it, a sell earns it (or stops paying it, when it closes a long). The rate is the one the engine
 * charges the position every step (`fundingRatePerHour`, known when the trade is decided).
 */
export function fundingCarryUsd(
  v: EngineVenue,
  signedNotionalUsd: number,
  holdingHours: number = ROUTING_HOLDING_HOURS,
): number {
  const carry = v.fundingRatePerHour * holdingHours * signedNotionalUsd;
  if (!Number.isFinite(carry))
    throw new BacktestInputError(
      `venue ${v.id}: funding carry is not a finite number (fundingRatePerHour ${v.fundingRatePerHour}, holding ${holdingHours} h, notional ${signedNotionalUsd} USD)`,
      { venue: v.id, field: 'fundingRatePerHour' },
    );
  return carry;
}

/**
 * Picks the venue with the lowest all-in cost (fee + spread + impact + gas now + funding carry over
 * {@link ROUTING_HOLDING_HOURS}, as the live router ranks venues) for a trade of `notionalUsd` (signed:
 * + buys, − sells; the carry's sign depends on it). Returns the venue index.
 */
export function cheapestVenue(
  venues: readonly EngineVenue[],
  gas: readonly GasCurve[],
  notionalUsd: number,
  ms: number,
): number {
  const n = Math.abs(notionalUsd);
  let best = 0;
  let bestCost = Number.POSITIVE_INFINITY;
  for (let i = 0; i < venues.length; i++) {
    const v = venues[i] as EngineVenue;
    if (v.hedges === false) continue;
    const c =
      (v.feeFraction + v.halfSpreadFraction + v.impactFractionPerUsd * n) * n +
      (gas[i] as GasCurve)(ms) +
      fundingCarryUsd(v, notionalUsd);
    if (c < bestCost) {
      bestCost = c;
      best = i;
    }
  }
  return best;
}

/**
 * All-in cost of trading `addUsd` more (unsigned) on a venue that already trades `plannedUsd` in the
 * same order, USD, funding carry over {@link ROUTING_HOLDING_HOURS} included (`sign`: +1 buys, −1 sells).
 */
function marginalCostUsd(
  v: EngineVenue,
  gasUsd: number,
  plannedUsd: number,
  addUsd: number,
  sign: 1 | -1,
): number {
  const linear = (v.feeFraction + v.halfSpreadFraction) * addUsd;
  const impact = v.impactFractionPerUsd * ((plannedUsd + addUsd) ** 2 - plannedUsd ** 2);
  // One order per venue: gas is paid by the first size planned on it.
  return linear + impact + (plannedUsd > 0 ? 0 : gasUsd) + fundingCarryUsd(v, sign * addUsd);
}

/** One leg of a trade routed by {@link routeCheapest}: venue index and signed size, underlying units. */
export interface CheapestLeg {
  venueIndex: number;
  sizeBase: number;
}

/**
 * Routes a hedge trade without the live router (`routing: cheapest`). The trade first reduces positions
 * of the opposite sign held on venues, cheapest per unit first, each at most to zero; only what is
 * left opens exposure, on the venue where it costs least (a venue already in the trade crosses through
 * zero in the same order, without a second gas). Costs are all-in as the live router ranks them: fee,
 * spread, impact, gas and the funding carry over {@link ROUTING_HOLDING_HOURS} (closing a long on a
 * venue where longs pay saves that funding, so it goes first). Opening on one venue against a position held on
 * another would leave a pair with no net delta that pays funding on both legs, ties up margin on both
 * and must be closed twice; with costs that do not change, reducing now costs no more than opening now
 * and closing both later. Without opposite positions this is one leg on {@link cheapestVenue}.
 * Deterministic: ties go to the lower venue index.
 */
export function routeCheapest(
  venues: readonly EngineVenue[],
  gas: readonly GasCurve[],
  positions: Float64Array,
  deltaBase: number,
  spotUsd: number,
  ms: number,
): CheapestLeg[] {
  if (!(Number.isFinite(deltaBase) && deltaBase !== 0))
    throw new BacktestInputError(`hedge trade must be a finite non-zero size, got ${deltaBase}`);
  if (!(Number.isFinite(spotUsd) && spotUsd > 0))
    throw new BacktestInputError(`spot must be a finite positive price, got ${spotUsd}`);
  const sign: 1 | -1 = deltaBase > 0 ? 1 : -1;
  /** Size planned per venue in this trade, underlying units, unsigned. */
  const planned = new Float64Array(venues.length);
  /** Venues in the order they were planned: the legs' order. */
  const order: number[] = [];
  let left = Math.abs(deltaBase);
  // what float residue of the subtractions below leaves is no trade (it would open a dust position)
  const dust = Math.abs(deltaBase) * 1e-12;
  while (left > dust) {
    let best = -1;
    let bestTake = 0;
    let bestPerUnit = Number.POSITIVE_INFINITY;
    for (let i = 0; i < venues.length; i++) {
      const v = venues[i] as EngineVenue;
      const pos = positions[i] as number;
      if (v.hedges === false || pos * sign >= 0) continue;
      const take = Math.min(left, Math.abs(pos) - (planned[i] as number));
      if (!(take > 0)) continue;
      const perUnit = marginalCostUsd(v, (gas[i] as GasCurve)(ms), 0, take * spotUsd, sign) / take;
      if (perUnit < bestPerUnit) {
        bestPerUnit = perUnit;
        best = i;
        bestTake = take;
      }
    }
    if (best < 0) break;
    planned[best] = bestTake;
    order.push(best);
    left -= bestTake;
  }
  if (order.length === 0)
    return [{ venueIndex: cheapestVenue(venues, gas, deltaBase * spotUsd, ms), sizeBase: deltaBase }];
  if (left > dust) {
    let best = 0;
    let bestCost = Number.POSITIVE_INFINITY;
    for (let i = 0; i < venues.length; i++) {
      const v = venues[i] as EngineVenue;
      if (v.hedges === false) continue;
      const c = marginalCostUsd(
        v,
        (gas[i] as GasCurve)(ms),
        (planned[i] as number) * spotUsd,
        left * spotUsd,
        sign,
      );
      if (c < bestCost) {
        bestCost = c;
        best = i;
      }
    }
    if (planned[best] === 0) order.push(best);
    planned[best] = (planned[best] as number) + left;
  }
  return order.map((i) => ({ venueIndex: i, sizeBase: sign * (planned[i] as number) }));
}

/** One leg of a routed hedge: which venue, signed size (underlying units), the transfer it waits for. */
export interface RoutedLeg {
  venueIndex: number;
  sizeBase: number;
  /** Id of the collateral transfer that must be delivered before this leg may trade. */
  waitsFor: string | undefined;
}

/** What the live router planned for one hedge trade. */
export interface RoutedTrade {
  legs: RoutedLeg[];
  transfers: CollateralTransfer[];
}

/** What every quote of one hedge trade shares (see {@link quoteHedge}). */
export interface QuoteInput {
  instrument: string;
  side: 'buy' | 'sell';
  spotUsd: number;
  ms: number;
}

/**
 * The quote a venue's cost model gives the live router for `sizeBase` (underlying units, positive):
 * fee, spread and impact, gas, and the funding carry over {@link ROUTING_HOLDING_HOURS} at the rate the
 * engine charges the position (+ = a cost: a buy pays a positive rate, a sell earns it), as the live
 * venues quote it for the live router.
 */
export function quoteHedge(v: EngineVenue, q: QuoteInput, gasUsd: number, sizeBase: number): HedgeQuote {
  const { side, spotUsd } = q;
  const notional = sizeBase * spotUsd;
  const slipFraction = v.halfSpreadFraction + v.impactFractionPerUsd * notional;
  const feeUsd = v.feeFraction * notional;
  const carryUsd = fundingCarryUsd(v, side === 'buy' ? notional : -notional);
  return {
    venue: v.id,
    instrument: q.instrument,
    side,
    requestedSizeBase: toDecimalString(sizeBase, 12),
    executableSizeBase: toDecimalString(sizeBase, 12),
    referencePriceUsd: spotUsd,
    expectedPriceUsd: spotUsd * (side === 'buy' ? 1 + slipFraction : Math.max(1 - slipFraction, 1e-9)),
    feeUsd,
    impactUsd: slipFraction * notional,
    gasUsd,
    fundingCarryUsd: carryUsd,
    totalCostUsd: feeUsd + slipFraction * notional + gasUsd + carryUsd,
    expectedLatencyMs: 0,
    asOfMs: q.ms,
  };
}

/** Inputs of {@link routeLive}. */
export interface RouteLiveInput {
  venues: readonly EngineVenue[];
  gas: readonly GasCurve[];
  /** Hedge position per venue, underlying units. */
  positions: Float64Array;
  /**
   * Collateral per venue, USD, and the bridge price (`routingBridgeCost(layerZeroCostModel())` of
   * @xhedge/crosschain); null when collateral is not modelled (unlimited margin, no transfers).
   */
  collateral: { balanceUsd: Float64Array; bridgeCost: RoutingBridgeCost } | null;
  underlying: string;
  /** Signed hedge trade, underlying units. */
  deltaBase: number;
  spotUsd: number;
  ms: number;
  /** Unique per path and step: transfer ids derive from it, and the bridge sends an id only once. */
  planId: string;
}

/** Free margin of venue i: collateral less the initial margin of its open hedge, USD (never negative). */
function freeCollateralUsd(
  v: EngineVenue,
  collateralUsd: number,
  positionBase: number,
  spotUsd: number,
): number {
  const used = Math.abs(positionBase) * spotUsd * initialMarginFraction(v);
  return Math.max(0, collateralUsd - used);
}

/**
 * Routes a hedge trade with the live router (`routeDelta` of @xhedge/routing): each hedge venue quotes
 * the trade at two sizes from its cost model (so the router can separate spread from impact) with the
 * funding carry over {@link ROUTING_HOLDING_HOURS} at the rate the engine charges (as live venues quote
 * it: + = longs pay), and the router splits it across up to three venues at the lowest all-in cost. When collateral is modelled,
 * each venue offers its free margin, every venue with free margin is a collateral source, and a venue
 * short of margin can be funded across chains at the LayerZero-like bridge fee and latency
 * (`routingBridgeCost(layerZeroCostModel())` of @xhedge/crosschain); such legs wait for their transfer.
 */
export function routeLive(input: RouteLiveInput): RoutedTrade {
  const { venues, gas, positions, collateral, underlying, deltaBase, spotUsd, ms } = input;
  const collateralUsd = collateral?.balanceUsd;
  const side = deltaBase > 0 ? 'buy' : 'sell';
  const size = Math.abs(deltaBase);
  const q: QuoteInput = { instrument: `${underlying}-USD:PERP`, side, spotUsd, ms };
  const routeVenues: RouteVenue[] = [];
  const sources: CollateralSource[] = [];
  venues.forEach((v, i) => {
    const free = collateralUsd
      ? freeCollateralUsd(v, collateralUsd[i] as number, positions[i] as number, spotUsd)
      : 0;
    if (collateralUsd && free > 0)
      sources.push({ venue: v.id, chain: v.chain, asset: COLLATERAL_ASSET, availableUsd: free });
    if (v.hedges === false) return;
    const g = (gas[i] as GasCurve)(ms);
    routeVenues.push({
      venue: v.id,
      chain: v.chain,
      instrument: q.instrument,
      quotes: [quoteHedge(v, q, g, size), quoteHedge(v, q, g, 2 * size)],
      minSizeBase: 0,
      sizeStepBase: 1e-9,
      positionBase: positions[i] as number,
      freeCollateralUsd: free,
      // Margin 0 = unlimited: without a collateral model the router never plans a transfer.
      marginFraction: collateralUsd ? initialMarginFraction(v) : 0,
    });
  });
  const plan = routeDelta(
    {
      planId: input.planId,
      underlying,
      deltaBase,
      referencePriceUsd: spotUsd,
      urgency: 'normal',
      reason: '',
      createdAtMs: ms,
    },
    routeVenues,
    collateral ? { bridge: collateral.bridgeCost, collateralSources: sources } : { bridge: () => null },
  );
  const sign = deltaBase > 0 ? 1 : -1;
  return {
    legs: plan.legs.map((l) => ({
      venueIndex: venues.findIndex((v) => v.id === l.venue),
      sizeBase: sign * Number(l.sizeBase),
      waitsFor: l.dependsOn[0],
    })),
    transfers: plan.transfers,
  };
}
