import type { Side } from '@xhedge/core';
import { roundToStep, toDecimalString } from '@xhedge/core';
import type { HedgeQuote, VenueAdapter } from '@xhedge/venue';
import type { RouteVenue } from './route.ts';

/**
 * Hours of holding a hedge's funding carry is quoted for when the request leaves it out (the live router's:
 * the runtime does not set it); the backtest ranks venues over the same.
 */
export const DEFAULT_HOLDING_HOURS = 24;

/** A venue to quote: its adapter plus everything {@link RouteVenue} needs except the quotes. */
export type QuoteTarget = Omit<RouteVenue, 'quotes'> & { adapter: Pick<VenueAdapter, 'quoteHedge'> };

/**
 * Asks each adapter for the all-in cost of the hedge at the full size and at a quarter of it (two
 * points let the router tell spread from impact). A venue that fails to quote is left out with a note,
 * never failing the whole plan; one whose larger quote fails while a smaller one succeeds is capped at
 * the largest size it quoted (an AMM refuses a size past its reserve: the router would otherwise
 * extrapolate the small quote to a size the venue said it cannot price). Quotes run concurrently.
 */
export async function quoteVenues(
  targets: readonly QuoteTarget[],
  req: { side: Side; sizeBase: number; holdingHours?: number; reduceOnly?: boolean },
): Promise<{ venues: RouteVenue[]; notes: string[] }> {
  const notes: string[] = [];
  const sizes = [req.sizeBase, req.sizeBase / 4];
  const results = await Promise.all(
    targets.map(async ({ adapter, ...venue }): Promise<RouteVenue | null> => {
      const quotes: HedgeQuote[] = [];
      let failedBase = Number.NEGATIVE_INFINITY;
      let quotedBase = Number.NEGATIVE_INFINITY;
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
      if (failedBase > quotedBase && !(quotedBase >= (venue.maxOrderSizeBase ?? Number.POSITIVE_INFINITY))) {
        routed.maxOrderSizeBase = quotedBase;
        notes.push(`${venue.venue}: capped at ${quotedBase}, the largest size it quoted`);
      }
      return routed;
    }),
  );
  return { venues: results.filter((v): v is RouteVenue => v !== null), notes };
}
