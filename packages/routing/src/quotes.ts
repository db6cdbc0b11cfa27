import type { Side } from '@xhedge/core';
import { roundToStep, toDecimalString } from '@xhedge/core';
import type { HedgeQuote, VenueAdapter } from '@xhedge/venue';
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
 * adapter's capabilities after its quotes (GMX names its collateral token once it has read it).
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
      const reducibleBase =
        venue.positionBase * (req.side === 'buy' ? 1 : -1) < 0 ? Math.abs(venue.positionBase) : 0;
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
