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
import { type ControlContext, type MarketDataSource, movesLinearPosition } from './controls.ts';

export interface VenueMarketDataOptions {
  /** The venues, by id (an order's mark comes from its own venue; positions from all of them). */
  venues: ReadonlyMap<string, VenueAdapter> | readonly VenueAdapter[];
  clock?: Clock;
  /**
   * How long a fetched mark is reused, ms. Staleness is judged by the mark's own `asOfMs`, so the
   * cache can only make a mark look older, never fresher. @defaultValue 250
   */
  markCacheMs?: number;
  /**
   * How long fetched positions are reused, ms. Past that and up to 5× that, the cached positions are
   * still served while a refresh runs in the background (so an order does not wait for a venue's
   * position read); older ones are waited for. @defaultValue 1000
   */
  positionCacheMs?: number;
  /** Ask the venue for a quote (`quoteHedge`) so the max-slippage check runs. @defaultValue true */
  quotes?: boolean;
  /**
   * How long a quote for the same venue, instrument, side, size and reduce-only flag is reused, ms (the
   * check before queueing and the one before sending, in one process, ask for the same quote moments
   * apart; on a chain each is an RPC call). Our own fills on a venue drop its quotes. @defaultValue 250
   */
  quoteCacheMs?: number;
  /** When given, marks older than the breakers' `staleMarkMs` trip `market:stale-mark:<underlying>`. */
  breakers?: BreakerBoard;
  /**
   * Whether orders on a venue need its exposure (`limits.maxVenueNotionalUsd` caps it): then the
   * context carries what the venue holds, its other positions valued at their marks. @defaultValue never
   */
  venueExposure?: (venue: string) => boolean;
  /** Whether orders need what every venue holds (`limits.maxTotalNotionalUsd`). @defaultValue false */
  totalExposure?: boolean;
}

/**
 * Gross notional of the linear holdings among `positions` (perps, futures and spot with a size; options
 * are not counted): |size| × the mark `markOf` gives, else × the entry price, USD. A holding with
 * neither goes to `unvalued` (the caps throw there: they must not under-count); without it, it is left
 * out (a metric). The one rule for what the notional caps and `xhedge_venue_notional_usd` count.
 */
export function linearNotionalUsd(
  positions: readonly Position[],
  markOf: (instrument: string) => number | undefined,
  unvalued?: (p: Position) => void,
): number {
  let sum = 0;
  for (const p of positions) {
    if (!isLinearHolding(p)) continue;
    const px = markOf(p.instrument) ?? p.entryPriceUsd;
    if (px !== undefined && Number.isFinite(px)) sum += Math.abs(p.sizeBase) * px;
    else unvalued?.(p);
  }
  return sum;
}

/** A position the notional caps count: a perp, future or spot holding with a size. */
function isLinearHolding(p: Position): boolean {
  if (p.sizeBase === 0) return false;
  try {
    return parseInstrumentId(p.instrument).kind !== 'option';
  } catch {
    return true; // ids are checked at the adapter boundary; an odd one is counted rather than missed
  }
}

/** A venue's (or every venue's) holding as the exposure caps read it. */
type Exposure = { instrumentSizeBase: number; otherNotionalUsd: number };

interface Cached<T> {
  atMs: number;
  value: Promise<T>;
  /** A background refresh is under way. */
  refreshing?: boolean;
}

/**
 * Market facts for the pre-trade controls, read from the venue adapters: the order's mark on its
 * venue (→ stale-data and price-band checks; a venue that leaves the instrument out of its marks
 * blocks the order as stale-data, `ControlContext.markMissing`), the position in the underlying across
 * venues (→ position limit; linear instruments only: perps, futures and spot, in underlying units) and the
 * venue's quote for the order (→ max slippage). Fetches are cached briefly and shared by concurrent
 * callers. When a venue fails, the last mark it gave is used (its age keeps growing, so the stale
 * check blocks in time); with none, the error propagates and the order waits (queue: the plan fails;
 * send: the job retries with backoff).
 */
/** What an order that moves no linear position needs of the exposure caps: nothing. */
const NO_EXPOSURE: { venueExposure?: Exposure; totalExposure?: Exposure } = {};

export class VenueMarketData implements MarketDataSource {
  readonly #venues: ReadonlyMap<string, VenueAdapter>;
  readonly #clock: Clock;
  readonly #markMs: number;
  readonly #posMs: number;
  readonly #quotes: boolean;
  readonly #breakers: BreakerBoard | undefined;
  readonly #venueExposure: ((venue: string) => boolean) | undefined;
  readonly #totalExposure: boolean;
  readonly #marks = new Map<string, Cached<Mark | undefined>>();
  readonly #lastMark = new Map<string, Mark>();
  readonly #positions = new Map<string, Cached<Position[]>>();
  readonly #quoteMs: number;
  readonly #quoteCache = new Map<string, Cached<number>>();

  constructor(o: VenueMarketDataOptions) {
    this.#venues =
      o.venues instanceof Map
        ? (o.venues as ReadonlyMap<string, VenueAdapter>)
        : new Map((o.venues as readonly VenueAdapter[]).map((v) => [v.id, v]));
    this.#clock = o.clock ?? systemClock;
    this.#markMs = o.markCacheMs ?? 250;
    this.#posMs = o.positionCacheMs ?? 1000;
    this.#quotes = o.quotes ?? true;
    this.#quoteMs = o.quoteCacheMs ?? 250;
    this.#breakers = o.breakers;
    this.#venueExposure = o.venueExposure;
    this.#totalExposure = o.totalExposure ?? false;
  }

  async context(intent: HedgeIntent): Promise<ControlContext> {
    const venue = this.#venues.get(intent.venue);
    if (!venue) return {};
    // an option order moves neither the linear position nor the notional the exposure caps count
    // (`PreTradeControls.checkOrder`): no venue's positions are read for it
    const linear = movesLinearPosition(intent.instrument);
    const [mark, positionBase, expectedPriceUsd, exposure] = await Promise.all([
      this.mark(venue, intent.instrument),
      linear ? this.positionBase(intent.underlying) : undefined,
      this.#quotes ? this.#expectedPrice(venue, intent) : undefined,
      linear ? this.#exposures(venue, intent.instrument) : NO_EXPOSURE,
    ]);
    const { venueExposure, totalExposure } = exposure;
    const ctx: ControlContext = {};
    if (mark) {
      ctx.mark = {
        priceUsd: mark.markPriceUsd,
        asOfMs: mark.asOfMs,
        ...(mark.bidUsd !== undefined ? { bidUsd: mark.bidUsd } : {}),
        ...(mark.askUsd !== undefined ? { askUsd: mark.askUsd } : {}),
      };
      const ageMs = this.#clock.nowMs() - mark.asOfMs;
      if (this.#breakers && ageMs > this.#breakers.config.market.staleMarkMs)
        await this.#breakers.observeMarkAge(intent.underlying, ageMs);
    } else ctx.markMissing = true; // the venue left the instrument out: the order is not priced blind
    if (positionBase !== undefined) ctx.positionBase = positionBase;
    if (expectedPriceUsd !== undefined) ctx.expectedPriceUsd = expectedPriceUsd;
    if (venueExposure) ctx.venueExposure = venueExposure;
    if (totalExposure) ctx.totalExposure = totalExposure;
    return ctx;
  }

  /**
   * What the exposure caps need, each venue valued once: the order venue's (when it has a cap) and,
   * with a total cap, the same over every venue (the order venue's position in `instrument`, all else
   * as notional).
   */
  async #exposures(
    venue: VenueAdapter,
    instrument: string,
  ): Promise<{ venueExposure?: Exposure; totalExposure?: Exposure }> {
    const wantVenue = this.#venueExposure?.(venue.id) ?? false;
    if (!wantVenue && !this.#totalExposure) return {};
    const venues = this.#totalExposure ? [...this.#venues.values()] : [venue];
    const parts = await Promise.all(
      venues.map((v) => this.#exposure(v, v.id === venue.id ? instrument : '')),
    );
    const own = parts[venues.indexOf(venue)] as Exposure;
    return {
      ...(wantVenue ? { venueExposure: own } : {}),
      ...(this.#totalExposure
        ? {
            totalExposure: {
              instrumentSizeBase: own.instrumentSizeBase,
              otherNotionalUsd: parts.reduce((a, e) => a + e.otherNotionalUsd, 0),
            },
          }
        : {}),
    };
  }

  /**
   * The venue's signed position in `instrument` and the notional of its other linear positions, each
   * at its mark there (else its entry price); throws naming a position it cannot value.
   */
  async #exposure(venue: VenueAdapter, instrument: string): Promise<Exposure> {
    const linear = (await this.#positionsOf(venue)).filter(isLinearHolding);
    let instrumentSizeBase = 0;
    const others = linear.filter((p) => {
      if (p.instrument !== instrument) return true;
      instrumentSizeBase += p.sizeBase;
      return false;
    });
    const marks = new Map(
      await Promise.all(
        others.map(
          async (p) =>
            [
              p.instrument,
              (await this.mark(venue, p.instrument).catch(() => undefined))?.markPriceUsd,
            ] as const,
        ),
      ),
    );
    const otherNotionalUsd = linearNotionalUsd(
      others,
      (i) => marks.get(i),
      (p) => {
        throw new Error(
          `${venue.id}: the ${p.instrument} position has no mark or entry price to value its exposure`,
        );
      },
    );
    return { instrumentSizeBase, otherNotionalUsd };
  }

  /** The venue's expected fill price for the order (its quote, cached for `quoteCacheMs`). */
  #expectedPrice(venue: VenueAdapter, intent: HedgeIntent): Promise<number> {
    const key = `${venue.id}|${intent.instrument}|${intent.side}|${intent.sizeBase}|${intent.reduceOnly}`;
    const now = this.#clock.nowMs();
    const c = this.#quoteCache.get(key);
    if (c && now - c.atMs <= this.#quoteMs) return c.value;
    if (this.#quoteCache.size >= 1000) {
      for (const [k, v] of this.#quoteCache) if (now - v.atMs > this.#quoteMs) this.#quoteCache.delete(k);
    }
    const entry: Cached<number> = {
      atMs: now,
      value: venue
        .quoteHedge({
          instrument: intent.instrument,
          side: intent.side,
          sizeBase: intent.sizeBase,
          reduceOnly: intent.reduceOnly,
        })
        .then(
          (q) => q.expectedPriceUsd,
          (err: unknown) => {
            if (this.#quoteCache.get(key) === entry) this.#quoteCache.delete(key);
            throw err;
          },
        ),
    };
    this.#quoteCache.set(key, entry);
    return entry.value;
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
    const c = this.#positions.get(venue.id);
    if (!c || now - c.atMs > 5 * this.#posMs) return this.#fetchPositions(venue, now).value;
    if (now - c.atMs > this.#posMs && !c.refreshing) {
      // serve these while newer ones are read; they replace them only when the read succeeds
      c.refreshing = true;
      venue.fetchPositions().then(
        (ps) => {
          if (this.#positions.get(venue.id) === c)
            this.#positions.set(venue.id, { atMs: now, value: Promise.resolve(ps) });
        },
        () => {
          c.refreshing = false;
        },
      );
    }
    return c.value;
  }

  #fetchPositions(venue: VenueAdapter, now: number): Cached<Position[]> {
    const c: Cached<Position[]> = {
      atMs: now,
      value: venue.fetchPositions().catch((err: unknown) => {
        if (this.#positions.get(venue.id) === c) this.#positions.delete(venue.id);
        throw err;
      }),
    };
    this.#positions.set(venue.id, c);
    return c;
  }

  /**
   * Our own fill changed a venue's positions: they are read again at once, in the background, and
   * every check from now on waits for that read (never the positions from before the fill); the
   * venue's cached quotes are dropped. Without a venue id, every venue's.
   */
  invalidatePositions(venueId?: string): void {
    const now = this.#clock.nowMs();
    // a fill moves the venue's quotes too (impact, open interest)
    for (const k of this.#quoteCache.keys())
      if (venueId === undefined || k.startsWith(`${venueId}|`)) this.#quoteCache.delete(k);
    for (const [id, v] of this.#venues) {
      if (venueId !== undefined && id !== venueId) continue;
      // the read's failure reaches whoever awaits it; nobody may be waiting yet
      this.#fetchPositions(v, now).value.catch(() => {});
    }
    if (venueId !== undefined && !this.#venues.has(venueId)) this.#positions.delete(venueId);
  }
}
