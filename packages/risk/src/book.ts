import {
  type Balance,
  type FundingRate,
  type InstrumentMeta,
  instrumentMeta,
  isUsdLike,
  msToExpiryDate,
  type Position,
  ValidationError,
} from '@xhedge/core';

/**
 * A position as the risk engine takes it: the core {@link Position}, optionally in venue contracts.
 * When `contracts` is given it wins over `sizeBase`: linear contracts (and options) become
 * `contracts × contractSize` underlying units; inverse perps and dated futures are USD contracts
 * (Deribit BTC-PERPETUAL and BTC futures: 10 USD each, the instrument's `contractValueUsd`) that keep a
 * fixed USD face value. An inverse perp or future in contracts whose instrument has no
 * `contractValueUsd` is refused: `contractSize` would read each 10 USD contract as a whole coin.
 *
 * An inverse perp or future given in `sizeBase` is the coin its face bought at entry (face / entry): its
 * coin P&L is then `sizeBase × (1 − entry / mark)`, exactly as for the face. How the book counts their
 * P&L against the balances is {@link addPosition}'s; `entryPriceUsd` and `unsettledPnlUsd` are kept
 * (summed per key) for it.
 */
export type RiskPosition = Position & { contracts?: number };

/** Everything structural about the book. */
export interface RiskBook {
  positions: readonly RiskPosition[];
  /** Balances: a balance in a volatile coin is delta in that coin's underlying. */
  balances?: readonly Balance[];
  funding?: readonly FundingRate[];
  /** Instrument metadata per venue (contract sizes, settlement, face values), e.g. from `loadMarkets`. */
  markets?: readonly { venue: string; instrument: InstrumentMeta }[];
}

/**
 * A fill applied to the book ({@link Fill} of @xhedge/core plus where it sits): adds `side × sizeBase`
 * to the position at (venue, chain, instrument, settlement).
 */
export interface RiskFill {
  venue: string;
  chain: string;
  instrument: string;
  side: 'buy' | 'sell';
  /** Positive, underlying units (a decimal string as fills carry it, or a number). */
  sizeBase: string | number;
  /** When the fill happened; becomes the position's as-of time. */
  tsMs: number;
  settlementCurrency?: string;
}

export const KIND_PERP = 0;
export const KIND_FUTURE = 2;
export const KIND_OPTION = 3;
const KIND_CODE: Record<InstrumentMeta['kind'], number> = {
  perp: KIND_PERP,
  spot: 1,
  future: KIND_FUTURE,
  option: KIND_OPTION,
};

/** Inverse perps and futures are sized in USD face when in contracts (see {@link RiskPosition}). */
function isUsdFaceContract(meta: InstrumentMeta): boolean {
  return meta.inverse && (meta.kind === 'perp' || meta.kind === 'future');
}

/** What one position holds: underlying units, or a USD face (inverse perps and futures in contracts). */
export interface HeldSize {
  sizeBase: number;
  faceUsd: number;
}

/**
 * Sizes one position as {@link RiskPosition} says, into `out` (returned): `contracts` when given, else
 * `sizeBase`. The one conversion the book and `bookEquity` share, so a position in contracts is the
 * same size for the Greeks and for the P&L. Throws a ValidationError for contracts of an inverse perp or
 * future whose instrument has no `contractValueUsd` (their size in coin is unknown).
 */
export function heldSize(p: RiskPosition, meta: InstrumentMeta, out: HeldSize): HeldSize {
  out.sizeBase = 0;
  out.faceUsd = 0;
  if (p.contracts === undefined) out.sizeBase = p.sizeBase;
  else if (!isUsdFaceContract(meta)) out.sizeBase = p.contracts * meta.contractSize;
  else if (meta.contractValueUsd !== undefined) out.faceUsd = p.contracts * meta.contractValueUsd;
  else
    throw new ValidationError(`position ${p.venue} ${p.instrument}`, [
      {
        path: 'contracts',
        message:
          `${p.contracts} contracts of an inverse ${meta.kind} whose instrument has no contractValueUsd: ` +
          'its size in coin is unknown (pass the venue instrument with contractValueUsd in markets, or sizeBase)',
      },
    ]);
  return out;
}

/**
 * A position's size at its entry, underlying units: `sizeBase`, plus the coins its USD face bought at
 * the entry price (face / entry: an inverse contract's P&L is face × (1/entry − 1/price) coins). Its
 * P&L at a price is then `baseAtEntry × (price − entry)` USD for a linear one, and `baseAtEntry × (1 −
 * entry / price)` coins for an inverse one (whose USD value at spot is what the book counts, see
 * {@link addPosition}). Undefined without an entry price, or with a face and an entry that is not a
 * positive price (a non-finite entry is none).
 */
export function baseAtEntry(
  sizeBase: number,
  faceUsd: number,
  entryPriceUsd: number | undefined,
): number | undefined {
  if (entryPriceUsd === undefined || !Number.isFinite(entryPriceUsd)) return undefined;
  if (faceUsd === 0) return sizeBase;
  return entryPriceUsd > 0 ? sizeBase + faceUsd / entryPriceUsd : undefined;
}

/**
 * The metadata a position is sized with: its venue's instrument from `markets` (keyed
 * `venue|instrument id`), else parsed from the id with the position's settlement currency.
 */
export function positionMeta(
  byVenue: ReadonlyMap<string, InstrumentMeta> | undefined,
  p: Pick<RiskPosition, 'venue' | 'instrument' | 'settlementCurrency'>,
): InstrumentMeta {
  return (
    byVenue?.get(`${p.venue}|${p.instrument}`) ??
    instrumentMeta(
      p.instrument,
      p.settlementCurrency === undefined ? {} : { settlementCurrency: p.settlementCurrency },
    )
  );
}

/**
 * What a position key or lot sums over its positions ({@link addPosition}): the sizes, and what the
 * coin-settled (inverse) perps and futures among them hold outside the balances. Every field is summed
 * for every position; the engine reads the coin ones for inverse lots only.
 */
export interface PositionSums {
  /** Underlying units (linear contracts converted; inverse ones in base units: coin at entry). */
  sizeBase: number;
  /** USD face of the inverse perps and futures given in contracts. */
  faceUsd: number;
  /**
   * Σ size at entry ({@link baseAtEntry}) of the positions with an entry price and no `unsettledPnlUsd`,
   * underlying units, and Σ that size × its entry price, USD: what an expired inverse future settled
   * into is `entryBase − entryNotionalUsd / settlement price` coins.
   */
  entryBase: number;
  entryNotionalUsd: number;
  /** Positions (and fills) with a size and neither an entry price nor `unsettledPnlUsd`. */
  withoutEntry: number;
  /** Inverse, live: coin counted as is in the delta (size at entry, or a size in base units as given). */
  coinBase: number;
  /** Inverse, live: USD face counted in the delta at the mark of each tick (face / mark coins). */
  atMarkUsd: number;
  /** Σ `unsettledPnlUsd`, USD at the venue's mark: coin-settled, the coin still outside the balances. */
  unsettledUsd: number;
  /**
   * Inverse: positions whose coin P&L is unknown, taken as entered at the mark (none accrued): a face
   * with neither an entry price nor `unsettledPnlUsd`, or a size in base units with `unsettledPnlUsd`
   * and no entry price (the face it bought is unknown).
   */
  enteredAtMark: number;
}

/** {@link PositionSums} of a key, with its oldest report and how many positions it sums. */
type Sums = PositionSums & { asOfMs: number; entries: number };

function clearSums(s: Sums, asOfMs: number): Sums {
  s.sizeBase = 0;
  s.faceUsd = 0;
  s.entryBase = 0;
  s.entryNotionalUsd = 0;
  s.withoutEntry = 0;
  s.coinBase = 0;
  s.atMarkUsd = 0;
  s.unsettledUsd = 0;
  s.enteredAtMark = 0;
  s.asOfMs = asOfMs;
  s.entries = 0;
  return s;
}

function copySums(to: Sums, from: Sums): void {
  to.sizeBase = from.sizeBase;
  to.faceUsd = from.faceUsd;
  to.entryBase = from.entryBase;
  to.entryNotionalUsd = from.entryNotionalUsd;
  to.withoutEntry = from.withoutEntry;
  to.coinBase = from.coinBase;
  to.atMarkUsd = from.atMarkUsd;
  to.unsettledUsd = from.unsettledUsd;
  to.enteredAtMark = from.enteredAtMark;
  to.asOfMs = from.asOfMs;
  to.entries = from.entries;
}

function sameSums(a: Sums, b: Sums): boolean {
  return (
    a.sizeBase === b.sizeBase &&
    a.faceUsd === b.faceUsd &&
    a.entryBase === b.entryBase &&
    a.entryNotionalUsd === b.entryNotionalUsd &&
    a.withoutEntry === b.withoutEntry &&
    a.coinBase === b.coinBase &&
    a.atMarkUsd === b.atMarkUsd &&
    a.unsettledUsd === b.unsettledUsd &&
    a.enteredAtMark === b.enteredAtMark &&
    a.asOfMs === b.asOfMs &&
    a.entries === b.entries
  );
}

/** Empty sums as of `asOfMs`. */
function zeroSums(asOfMs: number): Sums {
  return {
    sizeBase: 0,
    faceUsd: 0,
    entryBase: 0,
    entryNotionalUsd: 0,
    withoutEntry: 0,
    coinBase: 0,
    atMarkUsd: 0,
    unsettledUsd: 0,
    enteredAtMark: 0,
    asOfMs,
    entries: 0,
  };
}

/** Nothing held: no size, no face, no P&L the venue still holds outside the balances. */
function holdsNothing(s: PositionSums): boolean {
  return s.sizeBase === 0 && s.faceUsd === 0 && s.unsettledUsd === 0;
}

/**
 * Adds one position to `to`. Where the P&L of a perp or future is, as the venue contract has it
 * (`Position.unsettledPnlUsd`, `Balance`): a balance holds what the venue has paid out, a position what
 * it has not. A position with `unsettledPnlUsd` states the part of its P&L still outside the balances
 * (the rest has been paid in: Deribit settles each session, Drift on `settle_pnl`); one without it holds
 * all of its P&L since entry (those venues pay it in on closing only, and the balance has none of it).
 *
 * For a linear perp or future that P&L is USD, whose delta is the size's. For a coin-settled (inverse)
 * one it is coin, face × (1/entry − 1/mark), worth its amount at spot like a coin balance: the position
 * is worth `face/entry × spot − face × spot/mark` USD, whose derivative in spot is face / entry (mark and
 * spot moving together, perp or future), so its delta is the coin its face bought at entry, not the
 * face / spot it is worth now: those differ by the coin P&L accrued so far, which no balance holds. With
 * `unsettledPnlUsd` U at the mark, the coin outside the balances is U / mark and the delta (face + U) /
 * mark (= face / the price it last settled at); without an entry price and U, the coin P&L is unknown
 * and taken as none (face / mark, counted in `enteredAtMark`).
 */
export function addPosition(
  to: PositionSums,
  sizeBase: number,
  faceUsd: number,
  entryPriceUsd: number | undefined,
  unsettledPnlUsd: number | undefined,
): void {
  to.sizeBase += sizeBase;
  to.faceUsd += faceUsd;
  if (unsettledPnlUsd !== undefined) {
    to.unsettledUsd += unsettledPnlUsd;
    to.atMarkUsd += faceUsd;
    if (sizeBase === 0) return;
    // A size in base units is the coin its face bought at entry: back to that face.
    const e = entryPriceUsd;
    if (e !== undefined && e > 0 && Number.isFinite(e)) to.atMarkUsd += sizeBase * e;
    else {
      to.coinBase += sizeBase;
      to.enteredAtMark++;
    }
    return;
  }
  if (sizeBase === 0 && faceUsd === 0) return;
  const base = baseAtEntry(sizeBase, faceUsd, entryPriceUsd);
  if (base === undefined) {
    to.withoutEntry++;
    to.coinBase += sizeBase;
    to.atMarkUsd += faceUsd;
    if (faceUsd !== 0) to.enteredAtMark++;
  } else {
    to.entryBase += base;
    to.entryNotionalUsd += base * (entryPriceUsd as number);
    to.coinBase += base;
  }
}

/**
 * Whether the coin an expired coin-settled future or option settled into may already be in the venue's
 * balance of that coin though the position still says it is owed: the venue reported the position
 * before the expiry, so that report cannot tell whether the venue has paid since, and the balance after
 * it, so the payment may be in it. The balance is then authoritative: the coin is counted from it alone,
 * and not from the position, until a report of the position from after the expiry says otherwise. A
 * position reported after the expiry, still listed with a size, is authoritative in turn: by the venue
 * contract its P&L is outside the balances (a venue that has paid reports the position closed, gone, or
 * with `unsettledPnlUsd` 0). What the book cannot see is a payment between two reads taken after the
 * expiry (the position read first, the balance after it): for that one read the coin counts twice.
 */
export function settlementMayBePaid(
  positionAsOfMs: number,
  expiryMs: number,
  coinBalanceAsOfMs: number | undefined,
): boolean {
  return positionAsOfMs < expiryMs && coinBalanceAsOfMs !== undefined && coinBalanceAsOfMs >= expiryMs;
}

/** Per distinct instrument: static data from the id, and this tick's per-unit Greeks. Arrays have spare capacity. */
export interface Units {
  n: number;
  ids: string[];
  meta: InstrumentMeta[];
  /** Expiry date (YYYYMMDD) of dated instruments, '' otherwise. */
  expiryDate: string[];
  kind: Int8Array;
  underlying: Int32Array;
  /** Live lots of this instrument; 0 = no longer held (not priced). */
  refs: Int32Array;
  price: Float64Array;
  delta: Float64Array;
  gamma: Float64Array;
  vega: Float64Array;
  theta: Float64Array;
  rho: Float64Array;
  vanna: Float64Array;
  tenorYears: Float64Array;
  /** IV used this tick, decimal. */
  vol: Float64Array;
  /** Coin net delta per unit were the option coin-settled (pricing's inverse model), this tick. */
  netCoinInverse: Float64Array;
  /** 1 for an option or dated future past its expiry this tick: a fixed payoff or P&L, no Greeks. */
  expired: Uint8Array;
  /** Expired ones: the price they settled at this tick, USD (the settlement price, else spot). */
  settlementUsd: Float64Array;
  /** Expired options: coin paid per unit were the option coin-settled (`UnitGreeks.settledCoinPerUnit`). */
  settledCoin: Float64Array;
  /** Net size per unit (options only; for the scenario grid). */
  netSize: Float64Array;
  /** Σ vega of the positions per unit, this tick. */
  netVega: Float64Array;
}

/** Positions aggregated by (instrument, venue, chain, inverse): the struct-of-arrays the tick loop walks. */
export interface Lots {
  n: number;
  unit: Int32Array;
  venue: Int32Array;
  chain: Int32Array;
  inverse: Uint8Array;
  /** The lot's {@link PositionSums}: Σ over its positions. */
  sizeBase: Float64Array;
  faceUsd: Float64Array;
  entryBase: Float64Array;
  entryNotionalUsd: Float64Array;
  withoutEntry: Int32Array;
  coinBase: Float64Array;
  atMarkUsd: Float64Array;
  unsettledUsd: Float64Array;
  enteredAtMark: Int32Array;
  oldestAsOfMs: Float64Array;
  funding: Int32Array;
  mark: Int32Array;
  /** 1 while at least one position makes up the lot. */
  live: Uint8Array;
}

export interface BalanceLots {
  n: number;
  underlying: Int32Array;
  venue: Int32Array;
  chain: Int32Array;
  amount: Float64Array;
  asOfMs: Float64Array;
  asset: string[];
}

/** Marks and funding by `venue|instrument`, in slots so updates are array writes. */
export interface Slots {
  index: Map<string, number>;
  venue: string[];
  instrument: string[];
  unit: number[];
  value: number[];
  iv: number[];
  asOfMs: number[];
  /** Live lots reading the slot; 0 = nothing held there any more (ignored, never stale). */
  refs: number[];
}

function emptySlots(): Slots {
  return { index: new Map(), venue: [], instrument: [], unit: [], value: [], iv: [], asOfMs: [], refs: [] };
}

function slotFor(slots: Slots, venue: string, instrument: string, unit: number): number {
  const key = `${venue}|${instrument}`;
  let i = slots.index.get(key);
  if (i === undefined) {
    i = slots.venue.length;
    slots.index.set(key, i);
    slots.venue.push(venue);
    slots.instrument.push(instrument);
    slots.unit.push(unit);
    slots.value.push(0);
    slots.iv.push(Number.NaN);
    slots.asOfMs.push(-1);
    slots.refs.push(0);
  }
  return i;
}

/**
 * What one position key (venue, chain, instrument, settlement) holds: the sums of the positions reported
 * under it (fills, which carry no price, count in `withoutEntry`), the oldest report, and in `entries`
 * how many positions were reported under it (they count in `positionCount`).
 */
interface Held extends Sums {
  venue: string;
  chain: string;
  instrument: string;
  settlementCurrency: string | undefined;
  lot: number;
  /** False once removed (a stale reference in the order cache must not take sizes). */
  alive: boolean;
  /** Scratch of one {@link BookIndex.setBook} diff: the call that last named this key, and its sums. */
  seen: { epoch: number } & Sums;
}

type Agg = Omit<Held, 'lot' | 'seen' | 'alive'>;

/** A key holding nothing yet, as of `asOfMs`. */
function emptyAgg(
  where: Pick<Agg, 'venue' | 'chain' | 'instrument'> & { settlementCurrency?: string | undefined },
  asOfMs: number,
): Agg {
  // one object, its sums set in place (no second object spread into it)
  const a = {
    venue: where.venue,
    chain: where.chain,
    instrument: where.instrument,
    settlementCurrency: where.settlementCurrency,
  } as Agg;
  clearSums(a, asOfMs);
  return a;
}

/**
 * Held positions by instrument → venue → chain → settlement, on the strings the positions carry: no key
 * strings are built per position per tick (hashing fresh concatenations dominated a 10,000-position diff).
 */
class HeldIndex {
  readonly #tree = new Map<string, Map<string, Map<string, Map<string, Held>>>>();
  readonly all = new Set<Held>();

  get(instrument: string, venue: string, chain: string, settle: string | undefined): Held | undefined {
    return this.#tree
      .get(instrument)
      ?.get(venue)
      ?.get(chain)
      ?.get(settle ?? '');
  }

  add(h: Held): void {
    let byVenue = this.#tree.get(h.instrument);
    if (!byVenue) {
      byVenue = new Map();
      this.#tree.set(h.instrument, byVenue);
    }
    let byChain = byVenue.get(h.venue);
    if (!byChain) {
      byChain = new Map();
      byVenue.set(h.venue, byChain);
    }
    let bySettle = byChain.get(h.chain);
    if (!bySettle) {
      bySettle = new Map();
      byChain.set(h.chain, bySettle);
    }
    bySettle.set(h.settlementCurrency ?? '', h);
    this.all.add(h);
  }

  delete(h: Held): void {
    const byVenue = this.#tree.get(h.instrument);
    const byChain = byVenue?.get(h.venue);
    const bySettle = byChain?.get(h.chain);
    bySettle?.delete(h.settlementCurrency ?? '');
    if (bySettle?.size === 0) byChain?.delete(h.chain);
    if (byChain?.size === 0) byVenue?.delete(h.venue);
    if (byVenue?.size === 0) this.#tree.delete(h.instrument);
    this.all.delete(h);
    h.alive = false;
  }
}

function grow<T extends Int8Array | Uint8Array | Int32Array | Float64Array>(a: T, min: number): T {
  if (a.length >= min) return a;
  const b = new (a.constructor as new (n: number) => T)(Math.max(min, a.length * 2, 16));
  b.set(a);
  return b;
}

/**
 * The engine's cached structure of the book, kept up to date in place: instruments parsed once into
 * units, positions grouped into lots, marks and funding linked to slots. Changes touch only the
 * positions they name (a lot's sums are recomputed from its few members, so nothing drifts); lots and
 * instruments that empty are kept as dead entries (skipped in the tick loop) and compacted away once
 * they outnumber the live ones. Internal to the risk package.
 */
export class BookIndex {
  underlyings: string[] = [];
  readonly underlyingIndex = new Map<string, number>();
  venues: string[] = [];
  readonly venueIndex = new Map<string, number>();
  chains: string[] = [];
  readonly chainIndex = new Map<string, number>();
  units = BookIndex.#allocUnits(0);
  unitIndex = new Map<string, number>();
  lots = BookIndex.#allocLots(0);
  balances = BookIndex.#allocBalances(0);
  marks = emptySlots();
  funding = emptySlots();
  positionCount: number[] = [];
  venueUsed = new Uint8Array(0);
  chainUsed = new Uint8Array(0);

  readonly #aliases: Readonly<Record<string, string>>;
  readonly #metaCache = new Map<string, Map<string, InstrumentMeta>>();
  #metaByVenue = new Map<string, InstrumentMeta>();
  #marketsRef: RiskBook['markets'] = undefined;
  #held = new HeldIndex();
  #epoch = 0;
  /** The key each position of the last setBook matched, by index: venues list positions in a stable order. */
  #order: (Held | undefined)[] = [];
  #members: Held[][] = [];
  /** Scratch of `#sumLot` (it runs per changed lot per tick: no object per call). */
  readonly #lotSums = zeroSums(Number.POSITIVE_INFINITY);
  #lotIndex: Map<number, number>[] = [];
  #balanceIndex = new Map<string, number>();
  #deadLots = 0;
  #usedDirty = true;
  /** Scratch of {@link heldSize} (no allocation per position). */
  readonly #size: HeldSize = { sizeBase: 0, faceUsd: 0 };

  constructor(aliases: Readonly<Record<string, string>>) {
    this.#aliases = aliases;
  }

  underlying(name: string): number {
    let u = this.underlyingIndex.get(name);
    if (u === undefined) {
      u = this.underlyings.length;
      this.underlyingIndex.set(name, u);
      this.underlyings.push(name);
      this.#usedDirty = true;
    }
    return u;
  }

  #venue(name: string): number {
    let v = this.venueIndex.get(name);
    if (v === undefined) {
      v = this.venues.length;
      this.venueIndex.set(name, v);
      this.venues.push(name);
      this.#usedDirty = true;
    }
    return v;
  }

  #chain(name: string): number {
    let c = this.chainIndex.get(name);
    if (c === undefined) {
      c = this.chains.length;
      this.chainIndex.set(name, c);
      this.chains.push(name);
      this.#usedDirty = true;
    }
    return c;
  }

  /**
   * Makes the book equal to `book`. With the same instrument metadata as before (none, or the same
   * `markets` array) this is a diff: only positions whose key, size or time changed are touched.
   * Throws, leaving the book as it was, on a position it cannot size (see {@link RiskPosition}).
   */
  setBook(book: RiskBook): void {
    const markets = book.markets && book.markets.length > 0 ? book.markets : undefined;
    this.#checkContracts(book.positions, markets);
    const old = markets !== this.#marketsRef ? this.#reset(markets) : null;
    // Diff in place: sum this book's positions onto the held keys they name (stamped with this call's
    // epoch), then drop keys not named and update those whose sums changed. New keys are rare: grouped apart.
    const epoch = ++this.#epoch;
    const added: RiskPosition[] = [];
    const positions = book.positions;
    const order = this.#order;
    order.length = positions.length;
    for (let i = 0; i < positions.length; i++) {
      const p = positions[i] as RiskPosition;
      let h = order[i];
      if (
        !h?.alive ||
        h.instrument !== p.instrument ||
        h.venue !== p.venue ||
        h.chain !== p.chain ||
        h.settlementCurrency !== p.settlementCurrency
      ) {
        h = this.#held.get(p.instrument, p.venue, p.chain, p.settlementCurrency);
        order[i] = h;
      }
      if (!h) {
        added.push(p);
        continue;
      }
      const seen = h.seen;
      if (seen.epoch !== epoch) {
        seen.epoch = epoch;
        clearSums(seen, p.asOfMs);
      }
      this.#accumulate(seen, p);
    }
    for (const h of this.#held.all) {
      const seen = h.seen;
      if (seen.epoch !== epoch) this.#setHeld(h, null);
      else if (!sameSums(h, seen)) {
        const next = emptyAgg(h, seen.asOfMs);
        copySums(next, seen);
        this.#setHeld(h, next);
      }
    }
    for (const agg of this.#group(added)) this.#setHeld(agg, agg);
    if (old) {
      BookIndex.#carry(old.marks, this.marks);
      BookIndex.#carry(old.funding, this.funding);
    }
    for (const f of book.funding ?? []) this.applyFunding(f);
    this.#balanceIndex = new Map();
    this.balances = BookIndex.#allocBalances(0);
    this.upsertBalances(book.balances ?? []);
    this.#usedDirty = true;
    this.#compactIfSparse();
  }

  /**
   * Replaces the positions at the keys given (several under one key are summed); a zero size closes one,
   * unless it still has P&L outside the balances (`unsettledPnlUsd`: coin-settled, that coin is delta).
   */
  upsertPositions(positions: readonly RiskPosition[]): void {
    this.#checkContracts(positions, this.#marketsRef);
    for (const agg of this.#group(positions)) this.#setHeld(agg, holdsNothing(agg) ? null : agg);
    this.#compactIfSparse();
  }

  applyFill(fill: RiskFill): void {
    const size = typeof fill.sizeBase === 'string' ? Number(fill.sizeBase) : fill.sizeBase;
    if (!(size >= 0) || !Number.isFinite(size))
      throw new RangeError(`fill size ${fill.sizeBase} is not a size`);
    const settle = fill.settlementCurrency;
    const old = this.#held.get(fill.instrument, fill.venue, fill.chain, settle);
    const signed = fill.side === 'buy' ? size : -size;
    const sizeBase = (old?.sizeBase ?? 0) + signed;
    const faceUsd = old?.faceUsd ?? 0;
    // Decimal fills summed in float leave dust (0.1 + 0.2 − 0.3): below 1e-12 a position is closed.
    const closed = Math.abs(sizeBase) < 1e-12 && Math.abs(faceUsd) < 1e-9 && (old?.unsettledUsd ?? 0) === 0;
    const next = emptyAgg(fill, fill.tsMs);
    if (old) copySums(next, old);
    next.sizeBase = Math.abs(sizeBase) < 1e-12 ? 0 : sizeBase;
    // A fill carries no price: what it traded has no entry until the venue reports the position, and
    // counts as the size it is (for an inverse one, coin at an unknown entry).
    next.coinBase += signed;
    next.withoutEntry++;
    next.asOfMs = fill.tsMs;
    next.entries = old?.entries ?? 1;
    this.#setHeld(next, closed ? null : next);
    this.#compactIfSparse();
  }

  /** Replaces the balances at (venue, chain, asset) given, adding new ones; USD-like assets carry no delta. */
  upsertBalances(balances: readonly Balance[]): void {
    for (const b of balances) {
      const asset = this.#aliases[b.asset] ?? b.asset;
      if (isUsdLike(asset)) continue;
      const key = `${b.venue}|${b.chain}|${b.asset}`;
      let i = this.#balanceIndex.get(key);
      const bl = this.balances;
      if (i === undefined) {
        i = bl.n++;
        this.#balanceIndex.set(key, i);
        bl.underlying = grow(bl.underlying, bl.n);
        bl.venue = grow(bl.venue, bl.n);
        bl.chain = grow(bl.chain, bl.n);
        bl.amount = grow(bl.amount, bl.n);
        bl.asOfMs = grow(bl.asOfMs, bl.n);
        bl.underlying[i] = this.underlying(asset);
        bl.venue[i] = this.#venue(b.venue);
        bl.chain[i] = this.#chain(b.chain);
        bl.asset[i] = b.asset;
        this.#usedDirty = true;
      }
      bl.amount[i] = b.amount;
      bl.asOfMs[i] = b.asOfMs;
    }
  }

  applyFunding(f: FundingRate): void {
    const i = this.funding.index.get(`${f.venue}|${f.instrument}`);
    if (i === undefined) return;
    this.funding.value[i] = f.ratePerHour;
    this.funding.asOfMs[i] = f.asOfMs;
  }

  /** Which underlying × venue and underlying × chain cells hold something (recomputed after structural changes). */
  used(): { venueUsed: Uint8Array; chainUsed: Uint8Array } {
    const U = this.underlyings.length;
    const V = this.venues.length;
    const C = this.chains.length;
    if (this.#usedDirty || this.venueUsed.length !== U * V || this.chainUsed.length !== U * C) {
      this.venueUsed = new Uint8Array(U * V);
      this.chainUsed = new Uint8Array(U * C);
      const lots = this.lots;
      for (let l = 0; l < lots.n; l++) {
        if (!lots.live[l]) continue;
        const u = this.units.underlying[lots.unit[l] ?? 0] ?? 0;
        this.venueUsed[u * V + (lots.venue[l] ?? 0)] = 1;
        this.chainUsed[u * C + (lots.chain[l] ?? 0)] = 1;
      }
      const bl = this.balances;
      for (let i = 0; i < bl.n; i++) {
        const u = bl.underlying[i] ?? 0;
        this.venueUsed[u * V + (bl.venue[i] ?? 0)] = 1;
        this.chainUsed[u * C + (bl.chain[i] ?? 0)] = 1;
      }
      this.#usedDirty = false;
    }
    return { venueUsed: this.venueUsed, chainUsed: this.chainUsed };
  }

  hasBalance(u: number): boolean {
    const bl = this.balances;
    for (let i = 0; i < bl.n; i++) if (bl.underlying[i] === u) return true;
    return false;
  }

  /**
   * When a venue last reported, on a chain, its balance in the coin of underlying `u` (the newest of its
   * balances in that coin, wrapped ones included), or undefined when it reports none: what an expired
   * coin-settled instrument there pays into ({@link settlementMayBePaid}).
   */
  coinBalanceAsOfMs(u: number, venue: number, chain: number): number | undefined {
    const bl = this.balances;
    let newest: number | undefined;
    for (let i = 0; i < bl.n; i++) {
      if (bl.underlying[i] !== u || bl.venue[i] !== venue || bl.chain[i] !== chain) continue;
      const at = bl.asOfMs[i] ?? -1;
      if (newest === undefined || at > newest) newest = at;
    }
    return newest;
  }

  #metaFor(venue: string, instrument: string, settle: string | undefined): InstrumentMeta {
    const fromVenue =
      this.#metaByVenue.size > 0 ? this.#metaByVenue.get(`${venue}|${instrument}`) : undefined;
    if (fromVenue) return fromVenue;
    // Metadata parsed from ids is reused across rebuilds (bounded: instruments expire and get listed).
    if (this.#metaCache.size > 100_000) this.#metaCache.clear();
    let bySettle = this.#metaCache.get(instrument);
    if (!bySettle) {
      bySettle = new Map();
      this.#metaCache.set(instrument, bySettle);
    }
    let meta = bySettle.get(settle ?? '');
    if (!meta) {
      meta = instrumentMeta(instrument, settle === undefined ? {} : { settlementCurrency: settle });
      bySettle.set(settle ?? '', meta);
    }
    return meta;
  }

  /**
   * Refuses, before anything changes, a position in contracts of an inverse perp or future whose
   * instrument has no `contractValueUsd` (under `markets`, the metadata the book is about to use).
   */
  #checkContracts(positions: readonly RiskPosition[], markets: RiskBook['markets']): void {
    let byVenue: Map<string, InstrumentMeta> | undefined;
    const scratch = this.#size;
    for (const p of positions) {
      if (p.contracts === undefined) continue;
      let meta: InstrumentMeta;
      if (markets === this.#marketsRef) meta = this.#metaFor(p.venue, p.instrument, p.settlementCurrency);
      else {
        byVenue ??= new Map((markets ?? []).map((m) => [`${m.venue}|${m.instrument.id}`, m.instrument]));
        meta = positionMeta(byVenue, p);
      }
      heldSize(p, meta, scratch);
    }
  }

  /**
   * Adds a position (its size in underlying units, or USD face for inverse perps and futures in
   * contracts, see {@link addPosition}) to `to`. #checkContracts refused, before it got here, a position
   * {@link heldSize} cannot size.
   */
  #accumulate(to: Sums, p: RiskPosition): void {
    const size = this.#size;
    // Only contracts need the instrument: looking it up for every position would slow a large diff.
    if (p.contracts === undefined) {
      size.sizeBase = p.sizeBase;
      size.faceUsd = 0;
    } else heldSize(p, this.#metaFor(p.venue, p.instrument, p.settlementCurrency), size);
    addPosition(to, size.sizeBase, size.faceUsd, p.entryPriceUsd, p.unsettledPnlUsd);
    if (p.asOfMs < to.asOfMs) to.asOfMs = p.asOfMs;
    to.entries++;
  }

  /** Positions summed per (venue, chain, instrument, settlement) key. */
  #group(positions: readonly RiskPosition[]): Agg[] {
    const out = new Map<string, Agg>();
    for (const p of positions) {
      const settle = p.settlementCurrency;
      const key = `${p.venue}|${p.chain}|${p.instrument}|${settle ?? ''}`;
      let a = out.get(key);
      if (!a) {
        a = emptyAgg(p, p.asOfMs);
        out.set(key, a);
      }
      this.#accumulate(a, p);
    }
    return [...out.values()];
  }

  /** Sets (or with null removes) what the key `where` holds. */
  #setHeld(
    where: Pick<Agg, 'venue' | 'chain' | 'instrument' | 'settlementCurrency'>,
    next: Agg | null,
  ): void {
    const old = this.#held.get(where.instrument, where.venue, where.chain, where.settlementCurrency);
    if (!next) {
      if (!old) return;
      this.#held.delete(old);
      const members = this.#members[old.lot] ?? [];
      members.splice(members.indexOf(old), 1);
      this.#count(old.lot, -old.entries);
      if (members.length === 0) this.#setLive(old.lot, false);
      this.#sumLot(old.lot);
      return;
    }
    if (old) {
      this.#count(old.lot, next.entries - old.entries);
      copySums(old, next);
      this.#sumLot(old.lot);
      return;
    }
    const lot = this.#lotFor(next.venue, next.chain, next.instrument, next.settlementCurrency);
    const h: Held = {
      ...emptyAgg(next, next.asOfMs),
      lot,
      alive: true,
      seen: { epoch: 0, ...zeroSums(0) },
    };
    copySums(h, next);
    this.#held.add(h);
    const members = this.#members[lot] ?? [];
    this.#members[lot] = members;
    members.push(h);
    if (members.length === 1) this.#setLive(lot, true);
    this.#count(lot, h.entries);
    this.#sumLot(lot);
  }

  #count(lot: number, entries: number): void {
    const u = this.units.underlying[this.lots.unit[lot] ?? 0] ?? 0;
    this.positionCount[u] = (this.positionCount[u] ?? 0) + entries;
  }

  /** A lot's sums from its members (usually one): exact, no running-total drift. */
  #sumLot(l: number): void {
    const sum = clearSums(this.#lotSums, Number.POSITIVE_INFINITY);
    for (const h of this.#members[l] ?? []) {
      sum.sizeBase += h.sizeBase;
      sum.faceUsd += h.faceUsd;
      sum.entryBase += h.entryBase;
      sum.entryNotionalUsd += h.entryNotionalUsd;
      sum.withoutEntry += h.withoutEntry;
      sum.coinBase += h.coinBase;
      sum.atMarkUsd += h.atMarkUsd;
      sum.unsettledUsd += h.unsettledUsd;
      sum.enteredAtMark += h.enteredAtMark;
      sum.asOfMs = Math.min(sum.asOfMs, h.asOfMs);
    }
    const lots = this.lots;
    lots.sizeBase[l] = sum.sizeBase;
    lots.faceUsd[l] = sum.faceUsd;
    lots.entryBase[l] = sum.entryBase;
    lots.entryNotionalUsd[l] = sum.entryNotionalUsd;
    lots.withoutEntry[l] = sum.withoutEntry;
    lots.coinBase[l] = sum.coinBase;
    lots.atMarkUsd[l] = sum.atMarkUsd;
    lots.unsettledUsd[l] = sum.unsettledUsd;
    lots.enteredAtMark[l] = sum.enteredAtMark;
    lots.oldestAsOfMs[l] = Number.isFinite(sum.asOfMs) ? sum.asOfMs : -1;
  }

  #setLive(l: number, live: boolean): void {
    const lots = this.lots;
    if (Boolean(lots.live[l]) === live) return;
    const d = live ? 1 : -1;
    lots.live[l] = live ? 1 : 0;
    this.#deadLots -= d;
    const unit = lots.unit[l] ?? 0;
    this.units.refs[unit] = (this.units.refs[unit] ?? 0) + d;
    const m = lots.mark[l] ?? -1;
    if (m >= 0) this.marks.refs[m] = (this.marks.refs[m] ?? 0) + d;
    const f = lots.funding[l] ?? -1;
    if (f >= 0) this.funding.refs[f] = (this.funding.refs[f] ?? 0) + d;
    this.#usedDirty = true;
  }

  #lotFor(venue: string, chain: string, instrument: string, settle: string | undefined): number {
    const meta = this.#metaFor(venue, instrument, settle);
    let unit = this.unitIndex.get(instrument);
    if (unit === undefined) unit = this.#addUnit(instrument, meta);
    const v = this.#venue(venue);
    const c = this.#chain(chain);
    const inverse = meta.inverse ? 1 : 0;
    const key = (v * 4096 + c) * 2 + inverse;
    let byKey = this.#lotIndex[unit];
    if (!byKey) {
      byKey = new Map();
      this.#lotIndex[unit] = byKey;
    }
    let l = byKey.get(key);
    if (l !== undefined) return l;
    const lots = this.lots;
    l = lots.n++;
    if (lots.unit.length < lots.n) this.lots = BookIndex.#growLots(lots, lots.n);
    const g = this.lots;
    byKey.set(key, l);
    g.unit[l] = unit;
    g.venue[l] = v;
    g.chain[l] = c;
    g.inverse[l] = inverse;
    g.live[l] = 0;
    g.oldestAsOfMs[l] = -1;
    g.funding[l] = meta.kind === 'perp' ? slotFor(this.funding, venue, instrument, unit) : -1;
    g.mark[l] = slotFor(this.marks, venue, instrument, unit);
    this.#members[l] = [];
    this.#deadLots++;
    return l;
  }

  #addUnit(id: string, meta: InstrumentMeta): number {
    const k = this.units.n;
    if (this.units.kind.length <= k) this.units = BookIndex.#growUnits(this.units, k + 1);
    const units = this.units;
    units.n = k + 1;
    units.ids.push(id);
    units.meta.push(meta);
    units.expiryDate.push(meta.expiryMs === undefined ? '' : msToExpiryDate(meta.expiryMs));
    units.kind[k] = KIND_CODE[meta.kind];
    units.underlying[k] = this.underlying(meta.underlying);
    units.refs[k] = 0;
    this.unitIndex.set(id, k);
    return k;
  }

  /**
   * Drops the positions' structure and sets new metadata; returns the old mark and funding slots, to
   * carry their values over once the positions are back.
   */
  #reset(markets: RiskBook['markets']): { marks: Slots; funding: Slots } {
    const oldMarks = this.marks;
    const oldFunding = this.funding;
    this.marks = emptySlots();
    this.funding = emptySlots();
    this.units = BookIndex.#allocUnits(0);
    this.unitIndex = new Map();
    this.lots = BookIndex.#allocLots(0);
    this.#held = new HeldIndex();
    this.#order = [];
    this.#members = [];
    this.#lotIndex = [];
    this.#deadLots = 0;
    this.positionCount = [];
    this.#usedDirty = true;
    this.#marketsRef = markets;
    this.#metaByVenue = new Map();
    for (const m of markets ?? []) this.#metaByVenue.set(`${m.venue}|${m.instrument.id}`, m.instrument);
    return { marks: oldMarks, funding: oldFunding };
  }

  #compactIfSparse(): void {
    const live = this.lots.n - this.#deadLots;
    if (this.#deadLots < 256 || this.#deadLots <= live) return;
    const held = [...this.#held.all];
    const old = this.#reset(this.#marketsRef);
    for (const h of held) this.#setHeld(h, h);
    BookIndex.#carry(old.marks, this.marks);
    BookIndex.#carry(old.funding, this.funding);
  }

  static #carry(from: Slots, to: Slots): void {
    for (const [key, i] of from.index) {
      const j = to.index.get(key);
      if (j === undefined) continue;
      to.value[j] = from.value[i] ?? 0;
      to.iv[j] = from.iv[i] ?? Number.NaN;
      to.asOfMs[j] = from.asOfMs[i] ?? -1;
    }
  }

  static #allocUnits(n: number): Units {
    const f = () => new Float64Array(n);
    return {
      n: 0,
      ids: [],
      meta: [],
      expiryDate: [],
      kind: new Int8Array(n),
      underlying: new Int32Array(n),
      refs: new Int32Array(n),
      price: f(),
      delta: f(),
      gamma: f(),
      vega: f(),
      theta: f(),
      rho: f(),
      vanna: f(),
      tenorYears: f(),
      vol: f(),
      netCoinInverse: f(),
      expired: new Uint8Array(n),
      settlementUsd: f(),
      settledCoin: f(),
      netSize: f(),
      netVega: f(),
    };
  }

  static #growUnits(u: Units, min: number): Units {
    return {
      ...u,
      kind: grow(u.kind, min),
      underlying: grow(u.underlying, min),
      refs: grow(u.refs, min),
      price: grow(u.price, min),
      delta: grow(u.delta, min),
      gamma: grow(u.gamma, min),
      vega: grow(u.vega, min),
      theta: grow(u.theta, min),
      rho: grow(u.rho, min),
      vanna: grow(u.vanna, min),
      tenorYears: grow(u.tenorYears, min),
      vol: grow(u.vol, min),
      netCoinInverse: grow(u.netCoinInverse, min),
      expired: grow(u.expired, min),
      settlementUsd: grow(u.settlementUsd, min),
      settledCoin: grow(u.settledCoin, min),
      netSize: grow(u.netSize, min),
      netVega: grow(u.netVega, min),
    };
  }

  static #allocLots(n: number): Lots {
    return {
      n: 0,
      unit: new Int32Array(n),
      venue: new Int32Array(n),
      chain: new Int32Array(n),
      inverse: new Uint8Array(n),
      sizeBase: new Float64Array(n),
      faceUsd: new Float64Array(n),
      entryBase: new Float64Array(n),
      entryNotionalUsd: new Float64Array(n),
      withoutEntry: new Int32Array(n),
      coinBase: new Float64Array(n),
      atMarkUsd: new Float64Array(n),
      unsettledUsd: new Float64Array(n),
      enteredAtMark: new Int32Array(n),
      oldestAsOfMs: new Float64Array(n),
      funding: new Int32Array(n),
      mark: new Int32Array(n),
      live: new Uint8Array(n),
    };
  }

  static #growLots(l: Lots, min: number): Lots {
    return {
      n: l.n,
      unit: grow(l.unit, min),
      venue: grow(l.venue, min),
      chain: grow(l.chain, min),
      inverse: grow(l.inverse, min),
      sizeBase: grow(l.sizeBase, min),
      faceUsd: grow(l.faceUsd, min),
      entryBase: grow(l.entryBase, min),
      entryNotionalUsd: grow(l.entryNotionalUsd, min),
      withoutEntry: grow(l.withoutEntry, min),
      coinBase: grow(l.coinBase, min),
      atMarkUsd: grow(l.atMarkUsd, min),
      unsettledUsd: grow(l.unsettledUsd, min),
      enteredAtMark: grow(l.enteredAtMark, min),
      oldestAsOfMs: grow(l.oldestAsOfMs, min),
      funding: grow(l.funding, min),
      mark: grow(l.mark, min),
      live: grow(l.live, min),
    };
  }

  static #allocBalances(n: number): BalanceLots {
    return {
      n: 0,
      underlying: new Int32Array(n),
      venue: new Int32Array(n),
      chain: new Int32Array(n),
      amount: new Float64Array(n),
      asOfMs: new Float64Array(n),
      asset: [],
    };
  }
}
