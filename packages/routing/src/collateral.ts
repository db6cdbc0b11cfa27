import { assertFinite, Dec, type Side, toDecimalString } from '@xhedge/core';
import type { HedgePlan } from './plan.ts';
import type { CollateralSource, RouteVenue } from './venues.ts';

/** What {@link legMarginUsd} and {@link collateralUse} need of a venue. */
export type MarginVenue = Pick<
  RouteVenue,
  'venue' | 'instrument' | 'positionBase' | 'marginFraction' | 'openCollateralUsdPerUnit'
>;

/** What {@link legMarginUsd} and {@link maxSizeForMarginUsd} need of a venue. */
type LegMarginVenue = Pick<RouteVenue, 'positionBase' | 'marginFraction' | 'openCollateralUsdPerUnit'>;

/** Size of the venue's position a `side` order reduces (the opposite position), underlying units; 0 if none. */
export function reducibleBaseOf(v: Pick<RouteVenue, 'positionBase'>, side: Side): number {
  return v.positionBase * (side === 'buy' ? 1 : -1) < 0 ? Math.abs(v.positionBase) : 0;
}

/** Whether an order of `sizeBase` only reduces a position of which `reducibleBase` is reducible. */
export function reducesAt(reducibleBase: number, sizeBase: number): boolean {
  return reducibleBase > 0 && sizeBase <= reducibleBase + 1e-12;
}

/**
 * The venue's {@link RouteVenue.openCollateralUsdPerUnit}, checked (0 when absent): a NaN would pass
 * every margin comparison.
 */
export function openCollateralUsdPerUnitOf(v: Pick<RouteVenue, 'openCollateralUsdPerUnit'>): number {
  const perUnitUsd = v.openCollateralUsdPerUnit;
  if (perUnitUsd === undefined) return 0;
  if (!Number.isFinite(perUnitUsd) || perUnitUsd < 0)
    throw new RangeError(`openCollateralUsdPerUnit must be a finite number >= 0, got ${String(perUnitUsd)}`);
  return perUnitUsd;
}

/**
 * Collateral a delta leg needs on its venue, USD: 0 for a leg that only reduces the venue's position
 * (no larger than the opposite position); else size × `referencePriceUsd` × the venue's margin fraction
 * for the part of the size that opens or grows a position (a venue that nets takes the rest off the
 * opposite position), and never less than the whole size × `openCollateralUsdPerUnit`, what the venue
 * states such an order posts per unit at its own price (a venue that keeps a market's long and short
 * apart, GMX v2, opens the whole size beside the opposite position: holding 2 long, a sell of 5 posts
 * collateral for 5, not 3; and it posts at its price, not at the decision's). The rule routing sizes
 * legs and collateral moves by; {@link maxSizeForMarginUsd} is its inverse.
 */
export function legMarginUsd(
  v: LegMarginVenue,
  side: Side,
  sizeBase: number,
  referencePriceUsd: number,
): number {
  const reducibleBase = reducibleBaseOf(v, side);
  const pastUsd = Math.max(0, sizeBase - reducibleBase) * referencePriceUsd * v.marginFraction;
  const openPerUnitUsd = openCollateralUsdPerUnitOf(v);
  if (openPerUnitUsd === 0 || reducesAt(reducibleBase, sizeBase)) return pastUsd;
  return Math.max(pastUsd, sizeBase * openPerUnitUsd);
}

/**
 * The largest leg size whose {@link legMarginUsd} is within `budgetUsd`, underlying units (every smaller
 * size fits too): at least the size that only reduces the venue's position; past it, the size whose
 * margin on the part past the position, and whose collateral posted on the whole size, both fit.
 * Infinity when nothing bounds it (the venue asks no margin).
 */
export function maxSizeForMarginUsd(
  v: LegMarginVenue,
  side: Side,
  budgetUsd: number,
  referencePriceUsd: number,
): number {
  const reducibleBase = reducibleBaseOf(v, side);
  const budget = Math.max(0, budgetUsd);
  const pastPerUnitUsd = referencePriceUsd * v.marginFraction;
  const openPerUnitUsd = openCollateralUsdPerUnitOf(v);
  let sizeBase = pastPerUnitUsd > 0 ? reducibleBase + budget / pastPerUnitUsd : Number.POSITIVE_INFINITY;
  if (openPerUnitUsd > 0) sizeBase = Math.min(sizeBase, budget / openPerUnitUsd);
  return Math.max(reducibleBase, sizeBase);
}

/**
 * The most a bridge fee of `feeUsd` debits from its source, USD: the fee rounded up to 1e-6, the unit of
 * the coarsest USD-like collateral (USDC, USDT: 6 decimals; DAI: 18). The bridge takes its fee in the
 * moved asset at that asset's decimals, rounded up (`bridgeFeeInAsset` of @xhedge/crosschain), so a source
 * counted at the float fee could be planned a unit short: its debit is refused and the hedge waits in
 * vain. The float's noise is dropped first (read at 12 decimals), so 1.11 stays 1.11.
 */
export function bridgeFeeDebitUsd(feeUsd: number): number {
  assertFinite('bridge fee (USD)', feeUsd);
  return new Dec(toDecimalString(feeUsd, 12)).toDecimalPlaces(6, Dec.ROUND_UP).toNumber();
}

/** What one plan draws on one venue's collateral, USD. */
export interface VenueCollateralUse {
  /** Initial margin the plan's delta legs on the venue need. */
  marginUsd: number;
  /** What the plan's option legs on the venue take: premium, fees, short collateral (`optionCollateralUsd`). */
  optionUsd: number;
  /** Collateral the plan's transfers move to the venue. */
  movedInUsd: number;
  /** Collateral the plan's transfers move out of the venue. */
  movedOutUsd: number;
  /**
   * Bridge fees of the plan's transfers out of the venue as debited ({@link bridgeFeeDebitUsd}): the bridge
   * debits them from it with the move.
   */
  bridgeFeeOutUsd: number;
}

/**
 * Per venue, the margin a plan's delta legs need there, what its option legs take there (the plan's
 * `optionCollateralUsd`) and the collateral its transfers move in and out (and the bridge fees the moves out pay there). A feasible plan
 * has, on every venue, margin + option legs' take ≤ free collateral + moved in − moved out − fees out. Delta legs on a venue
 * missing from `venues`, or on another instrument than its delta instrument, are left out of the margin.
 */
export function collateralUse(
  plan: Pick<HedgePlan, 'legs' | 'transfers' | 'optionCollateralUsd'>,
  venues: readonly MarginVenue[],
): Map<string, VenueCollateralUse> {
  const out = new Map<string, VenueCollateralUse>();
  const of = (venue: string): VenueCollateralUse => {
    let u = out.get(venue);
    if (!u) {
      u = { marginUsd: 0, optionUsd: 0, movedInUsd: 0, movedOutUsd: 0, bridgeFeeOutUsd: 0 };
      out.set(venue, u);
    }
    return u;
  };
  for (const leg of plan.legs) {
    const v = venues.find((x) => x.venue === leg.venue && x.instrument === leg.instrument);
    if (!v) continue;
    const sizeBase = assertFinite(`leg ${leg.id} size`, Number(leg.sizeBase));
    of(leg.venue).marginUsd += legMarginUsd(v, leg.side, sizeBase, leg.referencePriceUsd);
  }
  for (const [venue, usd] of Object.entries(plan.optionCollateralUsd ?? {}))
    of(venue).optionUsd += assertFinite(`optionCollateralUsd.${venue}`, usd);
  for (const t of plan.transfers) {
    const amountUsd = assertFinite(`transfer ${t.id} amount`, Number(t.amount));
    of(t.toVenue).movedInUsd += amountUsd;
    of(t.fromVenue).movedOutUsd += amountUsd;
    of(t.fromVenue).bridgeFeeOutUsd += bridgeFeeDebitUsd(assertFinite(`transfer ${t.id} fee`, t.feeUsd));
  }
  return out;
}

/**
 * Collateral committed by the plans already made in one planning round (one tick: a plan per
 * underlying), so that later plans in the round do not count it again. Every plan of a round is routed
 * on balances read before any of them executes: without this, two underlyings' hedges can each spend
 * the same venue's free collateral, and the second leg (or transfer) fails for margin. Make one per
 * round; {@link CollateralReservation.commit} each plan that goes out.
 */
export class CollateralReservation {
  /** USD committed per venue: its legs' margin and the moves out of it with their bridge fees. */
  readonly #venueUsd = new Map<string, number>();
  /** USD moved out per source (venue and asset), bridge fees included. */
  readonly #movedUsd = new Map<string, number>();

  /** Free collateral left on `venue` out of `freeUsd` read there, USD (never negative). */
  freeUsd(venue: string, freeUsd: number): number {
    return Math.max(0, freeUsd - (this.#venueUsd.get(venue) ?? 0));
  }

  /**
   * The sources as read, less what earlier plans committed: each gives at most what it held less what
   * was moved out of it, and the sources of one venue together at most the venue's total less what was
   * committed there (a leg's margin is not drawn from one asset in particular, so it is taken from the
   * venue's sources in their given order). Sources left with nothing are dropped.
   */
  sources(list: readonly CollateralSource[]): CollateralSource[] {
    const venueLeftUsd = new Map<string, number>();
    for (const s of list) venueLeftUsd.set(s.venue, (venueLeftUsd.get(s.venue) ?? 0) + s.availableUsd);
    for (const [venue, totalUsd] of venueLeftUsd) venueLeftUsd.set(venue, this.freeUsd(venue, totalUsd));
    const out: CollateralSource[] = [];
    for (const s of list) {
      const ownLeftUsd = s.availableUsd - (this.#movedUsd.get(sourceKey(s.venue, s.asset)) ?? 0);
      const availableUsd = Math.min(ownLeftUsd, venueLeftUsd.get(s.venue) ?? 0);
      if (!(availableUsd > 0)) continue;
      venueLeftUsd.set(s.venue, (venueLeftUsd.get(s.venue) ?? 0) - availableUsd);
      out.push({ ...s, availableUsd });
    }
    return out;
  }

  /**
   * Records what `plan` commits, from the venues it was routed on (their free collateral as routing saw
   * it, before the plan's option legs took theirs): on each venue its delta legs' margin, what its option
   * legs take there, and the moves out of it with their bridge fees. A venue a move funds commits all of the free collateral
   * routing saw there: the move was sized as the leg's margin (and buffer) less what the option legs
   * left of that collateral, so the legs together count on all of it.
   */
  commit(
    plan: Pick<HedgePlan, 'legs' | 'transfers' | 'optionCollateralUsd'>,
    venues: readonly (MarginVenue & Pick<RouteVenue, 'freeCollateralUsd'>)[],
  ): void {
    for (const [venue, use] of collateralUse(plan, venues)) {
      const freeUsd = venues.find((v) => v.venue === venue)?.freeCollateralUsd ?? 0;
      const ownUsd = use.movedInUsd > 0 ? Math.max(freeUsd, use.optionUsd) : use.marginUsd + use.optionUsd;
      this.#venueUsd.set(
        venue,
        (this.#venueUsd.get(venue) ?? 0) + ownUsd + use.movedOutUsd + use.bridgeFeeOutUsd,
      );
    }
    for (const t of plan.transfers) {
      const key = sourceKey(t.fromVenue, t.asset);
      this.#movedUsd.set(
        key,
        (this.#movedUsd.get(key) ?? 0) + Number(t.amount) + bridgeFeeDebitUsd(t.feeUsd),
      );
    }
  }
}

function sourceKey(venue: string, asset: string): string {
  return `${venue}|${asset}`;
}
