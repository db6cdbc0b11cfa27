import type { Side } from '@xhedge/core';
import { roundToStep, toDecimalString } from '@xhedge/core';
import type { HedgeQuote, VenueAdapter } from '@xhedge/venue';
import { reducesAt, reducibleBaseOf } from './collateral.ts';
import type { RouteVenue } from './route.ts';

/**
 * Hours of holding a hedge's funding carry is quoted for when the request leaves it out (the live router's:
 * the runtime does not set it); the backtest ranks venues over the same.
 */
export const DEFAULT_HOLDING_HOURS = 24;

/**
 * A venue to quote: its adapter plus everything {@link RouteVenue} needs except the quotes. The adapter's
 * `capabilities.collateral`, when it has capabilities, stands for `collateralAssets` left out.
 */
export type QuoteTarget = Omit<RouteVenue, 'quotes'> & {
  adapter: Pick<VenueAdapter, 'quoteHedge'> & Partial<Pick<VenueAdapter, 'capabilities'>>;
};

/**
 * Asks each adapter for the all-in cost of the hedge at the full size and at a quarter of it (two
 * points let the router tell spread from impact), and, where the venue holds a position the hedge
 * reduces that is smaller than both, at that position's size too (at most three quotes a venue): a
 * reducing order's funding carry can have the other sign than an opening one's (GMX: a decrease stops
 * the carry the position pays, an increase of the other side pays its own), and the router takes each
 * leg's carry from a quote of its kind. A venue that fails to quote is left out with a note,
 * never failing the whole plan; one whose larger quote fails while a smaller one succeeds is capped at
 * the largest size it quoted (an AMM refuses a size past its reserve: the router would otherwise
 * extrapolate the small quote to a size the venue said it cannot price). Venues are quoted
 * concurrently, each venue's sizes one after the other. A venue's collateral assets are read from its
 * adapter's capabilities after its quotes (GMX names its collateral token once it has read it). A venue
 * whose quotes state the collateral an order past its position posts (`lockedCollateralUsd`) gets it per
 * unit as `openCollateralUsdPerUnit` ({@link openCollateralUsdPerUnitFrom}), unless its target sets one.
 */
export async function quoteVenues(
  targets: readonly QuoteTarget[],
  req: { side: Side; sizeBase: number; holdingHours?: number; reduceOnly?: boolean },
): Promise<{ venues: RouteVenue[]; notes: string[] }> {
  const notes: string[] = [];
  const results = await Promise.all(
    targets.map(async ({ adapter, ...venue }): Promise<RouteVenue | null> => {
      const quotes: HedgeQuote[] = [];
      let failedBase = Number.NEGATIVE_INFINITY;
      let quotedBase = Number.NEGATIVE_INFINITY;
      const sizes = [req.sizeBase, req.sizeBase / 4];
      const reducibleBase = reducibleBaseOf(venue, req.side);
      // Both sizes open past the position: quote the reducing order too, floored to the step below (a
      // reducing size under the venue minimum is no order the router can send).
      if (reducibleBase > 0 && reducibleBase < req.sizeBase / 4 && reducibleBase >= venue.minSizeBase)
        sizes.push(reducibleBase);
      for (const size of sizes) {
        const step = venue.sizeStepBase > 0 ? venue.sizeStepBase : 1e-8;
        let rounded = size;
        try {
          // in decimals: 0.7 / 0.1 is 6.999… in floats, and a float floor asked for 0.6 (inside the
          // try: a step finer than 1e-12 fails this venue's quote, not every venue's)
          rounded = Math.max(
            Number(roundToStep(toDecimalString(size, 12), toDecimalString(step, 12))),
            venue.minSizeBase,
          );
          quotes.push(
            await adapter.quoteHedge({
              instrument: venue.instrument,
              side: req.side,
              sizeBase: toDecimalString(rounded, 12),
              reduceOnly: req.reduceOnly ?? false,
              holdingHours: req.holdingHours ?? DEFAULT_HOLDING_HOURS,
            }),
          );
          quotedBase = Math.max(quotedBase, rounded);
        } catch (err) {
          failedBase = Math.max(failedBase, rounded);
          notes.push(
            `${venue.venue}: quote for ${rounded} failed (${err instanceof Error ? err.message : String(err)})`,
          );
        }
      }
      if (!quotes.length) return null;
      const routed: RouteVenue = { ...venue, quotes };
      if (routed.openCollateralUsdPerUnit === undefined) {
        let openPerUnitUsd: number | undefined;
        try {
          openPerUnitUsd = openCollateralUsdPerUnitFrom(quotes, reducibleBase, venue.venue);
        } catch (err) {
          // its legs' collateral cannot be counted: left out, as a venue that fails to quote
          notes.push(`${err instanceof Error ? err.message : String(err)}; left out`);
          return null;
        }
        if (openPerUnitUsd !== undefined) routed.openCollateralUsdPerUnit = openPerUnitUsd;
      }
      const collateral = adapter.capabilities?.collateral;
      if (routed.collateralAssets === undefined && collateral !== undefined)
        routed.collateralAssets = [...collateral];
      if (failedBase > quotedBase && !(quotedBase >= (venue.maxOrderSizeBase ?? Number.POSITIVE_INFINITY))) {
        routed.maxOrderSizeBase = quotedBase;
        notes.push(`${venue.venue}: capped at ${quotedBase}, the largest size it quoted`);
      }
      return routed;
    }),
  );
  return { venues: results.filter((v): v is RouteVenue => v !== null), notes };
}

/**
 * Collateral the venue posts per underlying unit of an order's whole size, USD, for an order that does
 * not only reduce its position: the most any of `quotes` for such an order (requested size past
 * `reducibleBase`, as the venue decides it) states it locks, `lockedCollateralUsd` / executable size.
 * Per unit, not per USD of notional: the amount is what the venue posts at its own price (GMX: its max
 * price for a long, its min for a short), which routing must not rescale to the decision's reference
 * price (a spot under GMX's price would shrink it and size the leg past the wallet). GMX states the
 * collateral of the whole size there (it opens the order beside the opposite position); a venue that
 * nets would state that of the part past the position, which this over-counts for a smaller leg, never
 * under-counts. Undefined when no such quote states a positive amount; a stated amount that is not a
 * finite number ≥ 0 is refused by name.
 */
export function openCollateralUsdPerUnitFrom(
  quotes: readonly HedgeQuote[],
  reducibleBase: number,
  venue: string,
): number | undefined {
  let out: number | undefined;
  for (const q of quotes) {
    const lockedUsd = q.lockedCollateralUsd;
    if (lockedUsd === undefined) continue;
    if (!(Number.isFinite(lockedUsd) && lockedUsd >= 0))
      throw new RangeError(
        `${venue}: quote for ${q.requestedSizeBase} states lockedCollateralUsd ${String(lockedUsd)}, not a finite amount >= 0`,
      );
    const executableBase = Number(q.executableSizeBase);
    if (reducesAt(reducibleBase, Number(q.requestedSizeBase)) || !(executableBase > 0) || !(lockedUsd > 0))
      continue;
    const perUnitUsd = lockedUsd / executableBase;
    if (!Number.isFinite(perUnitUsd))
      throw new RangeError(
        `${venue}: quote for ${q.requestedSizeBase} gives no collateral per unit (executable ${q.executableSizeBase})`,
      );
    out = Math.max(out ?? 0, perUnitUsd);
  }
  return out;
}
