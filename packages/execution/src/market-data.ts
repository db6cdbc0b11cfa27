import {
  type Clock,
  type HedgeIntent,
  type Mark,
  type Position,
  parseInstrumentId,
  systemClock,
} from '@xhedge/core';
import type { VenueAdapter } from '@xhedge/venue';
import type { BreakerBoard } from './breakers.ts';
import type { ControlContext, MarketDataSource } from './controls.ts';

export interface VenueMarketDataOptions {
  /** The venues, by id (an order's mark comes from its own venue; positions from all of them). */
  venues: ReadonlyMap<string, VenueAdapter> | readonly VenueAdapter[];
  clock?: Clock;
  /**
   * How long a fetched mark is reused, ms. Staleness is judged by the mark's own `asOfMs`, so the
   * cache can only make a mark look older, never fresher. @defaultValue 250
   */
  markCacheMs?: number;
  /** How long fetched positions are reused, ms. @defaultValue 1000 */
  positionCacheMs?: number;
  /** Ask the venue for a quote (`quoteHedge`) so the max-slippage check runs. @defaultValue true */
  quotes?: boolean;
  /** When given, marks older than the breakers' `staleMarkMs` trip `market:stale-mark:<underlying>`. */
  breakers?: BreakerBoard;
}

interface Cached<T> {
  atMs: number;
  value: Promise<T>;
}

/**
 * Market facts for the pre-trade controls, read from the venue adapters: the order's mark on its
 * venue (→ stale-data and price-band checks), the position in the underlying across venues
 * (→ position limit; linear instruments only: perps, futures and spot, in underlying units) and the
 * venue's quote for the order (→ max slippage). Fetches are cached briefly and shared by concurrent
 * callers. When a venue fails, the last mark it gave is used (its age keeps growing, so the stale
 * check blocks in time); with none, the error propagates and the order waits (queue: the plan fails;
 * send: the job retries with backoff).
 */
export class VenueMarketData implements MarketDataSource {
  readonly #venues: ReadonlyMap<string, VenueAdapter>;
  readonly #clock: Clock;
  readonly #markMs: number;
  readonly #posMs: number;
  readonly #quotes: boolean;
  readonly #breakers: BreakerBoard | undefined;
  readonly #marks = new Map<string, Cached<Mark | undefined>>();
  readonly #lastMark = new Map<string, Mark>();
  readonly #positions = new Map<string, Cached<Position[]>>();

  constructor(o: VenueMarketDataOptions) {
    this.#venues =
      o.venues instanceof Map
        ? (o.venues as ReadonlyMap<string, VenueAdapter>)
        : new Map((o.venues as readonly VenueAdapter[]).map((v) => [v.id, v]));
    this.#clock = o.clock ?? systemClock;
    this.#markMs = o.markCacheMs ?? 250;
    this.#posMs = o.positionCacheMs ?? 1000;
    this.#quotes = o.quotes ?? true;
    this.#breakers = o.breakers;
  }

  async context(intent: HedgeIntent): Promise<ControlContext> {
    const venue = this.#venues.get(intent.venue);
    if (!venue) return {};
    const [mark, positionBase, expectedPriceUsd] = await Promise.all([
      this.mark(venue, intent.instrument),
      this.positionBase(intent.underlying),
      this.#quotes
        ? venue
            .quoteHedge({
              instrument: intent.instrument,
              side: intent.side,
              sizeBase: intent.sizeBase,
              reduceOnly: intent.reduceOnly,
            })
            .then((q) => q.expectedPriceUsd)
        : undefined,
    ]);
    const ctx: ControlContext = {};
    if (mark) {
      ctx.mark = { priceUsd: mark.markPriceUsd, asOfMs: mark.asOfMs };
      const ageMs = this.#clock.nowMs() - mark.asOfMs;
      if (this.#breakers && ageMs > this.#breakers.config.market.staleMarkMs)
        await this.#breakers.observeMarkAge(intent.underlying, ageMs);
    }
    if (positionBase !== undefined) ctx.positionBase = positionBase;
    if (expectedPriceUsd !== undefined) ctx.expectedPriceUsd = expectedPriceUsd;
    return ctx;
  }

  /** The venue's mark for an instrument (cached for `markCacheMs`). */
  async mark(venue: VenueAdapter, instrument: string): Promise<Mark | undefined> {
    const key = `${venue.id}|${instrument}`;
    const now = this.#clock.nowMs();
    let c = this.#marks.get(key);
    if (!c || now - c.atMs > this.#markMs) {
      const value = venue.fetchMarks([instrument]).then(
        (ms) => {
          const m = ms.find((x) => x.instrument === instrument);
          if (m) this.#lastMark.set(key, m);
          return m;
        },
        (err: unknown) => {
          this.#marks.delete(key);
          const last = this.#lastMark.get(key);
          if (last) return last;
          throw err;
        },
      );
      c = { atMs: now, value };
      this.#marks.set(key, c);
    }
    return c.value;
  }

  /** Signed position in the underlying across every venue, linear instruments, underlying units. */
  async positionBase(underlying: string): Promise<number | undefined> {
    const all = await Promise.all([...this.#venues.values()].map((v) => this.#positionsOf(v)));
    let sum = 0;
    for (const p of all.flat()) {
      const id = parseInstrumentId(p.instrument);
      if (id.base === underlying && id.kind !== 'option') sum += p.sizeBase;
    }
    return sum;
  }

  #positionsOf(venue: VenueAdapter): Promise<Position[]> {
    const now = this.#clock.nowMs();
    let c = this.#positions.get(venue.id);
    if (!c || now - c.atMs > this.#posMs) {
      const value = venue.fetchPositions().catch((err: unknown) => {
        this.#positions.delete(venue.id);
        throw err;
      });
      c = { atMs: now, value };
      this.#positions.set(venue.id, c);
    }
    return c.value;
  }

  /** Drops cached positions (after a fill, so the next check sees it). */
  invalidatePositions(venueId?: string): void {
    if (venueId) this.#positions.delete(venueId);
    else this.#positions.clear();
  }
}
