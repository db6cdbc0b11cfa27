import {
  type Balance,
  type InstrumentMeta,
  isUsdLike,
  type Mark,
  msToExpiryDate,
  yearFraction,
} from '@xhedge/core';
import {
  baseAtEntry,
  type HeldSize,
  heldSize,
  positionMeta,
  type RiskBook,
  type RiskPosition,
  settlementMayBePaid,
} from './book.ts';
import { DEFAULT_ASSET_ALIASES } from './engine.ts';
import type { RiskSnapshot } from './snapshot.ts';

/** The book's mark-to-market value, USD, as the loss-since-mark breaker watches it. */
export interface BookEquity {
  /** Everything below, summed. */
  equityUsd: number;
  /** USD-like balances (USDC, USDT, DAI, USD) at par. */
  cashUsd: number;
  /** Options at the risk model's value and volatile-coin balances at spot (the snapshot's `valueUsd`). */
  modelValueUsd: number;
  /** Spot holdings reported as positions, at the venue's mark (else spot). */
  spotUsd: number;
  /**
   * Perps and futures: P&L not yet in a balance, the venue's `unsettledPnlUsd` when it reports one
   * (closed positions whose P&L is unsettled included), else (mark − entry) × size; a future past its
   * expiry at its settlement price instead of the mark. Coin-settled ones: their coin P&L × spot.
   */
  unrealizedUsd: number;
  /**
   * Collateral locked in positions that the balances do not report (isolated margin, GMX position
   * collateral): the positions' `marginUsd`, any kind, size 0 included.
   */
  marginUsd: number;
  /** Collateral on its way between venues (a bridge transfer sent, not yet delivered), USD. */
  inTransitUsd: number;
  /**
   * What could not be valued (an instrument or asset with no market in the snapshot, a perp or future
   * without its entry price, inverse contracts whose instrument has no `contractValueUsd`, an expired
   * coin-settled future or option whose coin may already be in the venue's balance: reported before its
   * expiry, the balance after it). When not empty, `equityUsd` leaves them out and is not comparable with
   * a mark taken when they were valued. A linear perp or future with `unsettledPnlUsd` needs no market.
   */
  unvalued: string[];
}

/**
 * Mark-to-market equity of a book: cash + options and coins (from the risk snapshot) + spot holdings +
 * the unsettled P&L of perps and futures + collateral locked in positions + collateral in transit
 * between venues.
 *
 * Collateral locked in a position (`marginUsd`: GMX moves it from the wallet into the position, so the
 * wallet balance drops by it on opening) is added back, so opening a position is not a loss.
 *
 * Perp and future P&L: a venue that settles P&L into the collateral balance apart from closing (Drift's
 * `settle_pnl` moves it out of the position while the entry stays) reports `unsettledPnlUsd`, the part
 * still outside the balances, and that is what counts, also for a closed position (size 0) whose P&L
 * is not settled yet. A venue that keeps a long and a short in one market apart (GMX) reports there
 * the P&L of each side summed, as (mark − entry) × net size is wrong when both are open. Otherwise
 * (mark − entry) × size: those venues realize P&L into the balance only on closing and keep the entry
 * of what is open (the paper venues), so the position and the balance never hold the same dollar. A
 * live future without a mark is taken at the model's forward, spot × e^{rT}, as the engine prices it.
 *
 * Inverse (coin-settled) perps and futures: their P&L is coin, and that coin is worth its amount at spot
 * like a coin balance: size at entry × (1 − entry / mark) coins (a USD face F entered at E: F × (1/E −
 * 1/mark)), × spot; with `unsettledPnlUsd`, the coin still outside the balances is that USD at the mark,
 * × spot. The snapshot's delta for them (book's `addPosition`) is the derivative of this in spot, so
 * equity moves with spot as the snapshot's delta says.
 *
 * Positions are sized as the risk engine sizes them ({@link heldSize}): `contracts`, when given, win
 * over `sizeBase` (linear ones × the instrument's `contractSize`; inverse perps and futures are a USD
 * face, `contracts × contractValueUsd`, whose size in coin for the P&L is face / entry). The instruments
 * come from `markets` as given to the engine, else from the ids; a position that cannot be sized is
 * listed in `unvalued`.
 *
 * A future past its expiry has settled: its P&L is fixed at the settlement price the snapshot gives
 * (`settlementPricesUsd`; else spot, as the engine took it and warned), not at the venue's mark of an
 * instrument that no longer trades. Linear, that is a USD amount that no longer moves; inverse, a coin
 * amount, size × (settlement − entry) / settlement, worth its amount at spot: the convention the engine
 * counts its delta by. It is counted once: when the venue's balance of that coin may already hold it
 * (book's `settlementMayBePaid`), the engine counts it from the balance alone and equity lists the
 * position in `unvalued` (the same for an expired coin-settled option, whose value is the snapshot's).
 *
 * `positions`, `balances`, `marks` (and `markets`) are the inputs the snapshot was built from (gas money
 * left out).
 */
export function bookEquity(
  snapshot: RiskSnapshot,
  inputs: {
    /** Core positions, or the engine's (in `contracts`). */
    positions: readonly RiskPosition[];
    balances: readonly Balance[];
    marks: readonly Mark[];
    /** Instrument metadata per venue (contract sizes and face values), as in the engine's `setBook`. */
    markets?: RiskBook['markets'];
  },
  opts: {
    /** Transfers debited at their source and not yet credited at their destination. */
    inTransit?: readonly { asset: string; amount: number }[];
    assetAliases?: Readonly<Record<string, string>>;
  } = {},
): BookEquity {
  const aliases = opts.assetAliases ?? DEFAULT_ASSET_ALIASES;
  const unvalued: string[] = [];
  let modelValueUsd = 0;
  for (const r of Object.values(snapshot.underlyings)) modelValueUsd += r.valueUsd;
  let cashUsd = 0;
  for (const b of inputs.balances) {
    const asset = aliases[b.asset] ?? b.asset;
    if (isUsdLike(asset)) cashUsd += b.amount;
    else if (!snapshot.underlyings[asset]) unvalued.push(`${b.venue}:${b.asset}`);
  }
  let inTransitUsd = 0;
  for (const t of opts.inTransit ?? []) {
    const asset = aliases[t.asset] ?? t.asset;
    const spot = snapshot.underlyings[asset]?.spotUsd;
    if (isUsdLike(asset)) inTransitUsd += t.amount;
    else if (spot !== undefined) inTransitUsd += t.amount * spot;
    else unvalued.push(`in-transit:${t.asset}`);
  }
  const markOf = new Map(inputs.marks.map((m) => [`${m.venue}|${m.instrument}`, m.markPriceUsd]));
  const metaByVenue = inputs.markets?.length
    ? new Map(inputs.markets.map((m) => [`${m.venue}|${m.instrument.id}`, m.instrument]))
    : undefined;
  const size: HeldSize = { sizeBase: 0, faceUsd: 0 };
  /** The price one unit trades at: the venue's mark, else the model's (a live future at its forward). */
  const priceOf = (p: RiskPosition, meta: InstrumentMeta, risk: { spotUsd: number; rateDecimal: number }) => {
    const mark = markOf.get(`${p.venue}|${p.instrument}`) ?? 0;
    if (mark > 0) return mark;
    const expiryMs = meta.kind === 'future' ? meta.expiryMs : undefined;
    if (expiryMs === undefined || expiryMs <= snapshot.asOfMs) return risk.spotUsd;
    return risk.spotUsd * Math.exp(risk.rateDecimal * yearFraction(snapshot.asOfMs, expiryMs));
  };
  let reportedAt: Map<string, number> | undefined;
  let coinBalanceAt: Map<string, number> | undefined;
  /** As the engine judges a lot: its oldest report, against the venue's newest balance of the coin. */
  const mayBePaid = (p: RiskPosition, meta: InstrumentMeta, expiryMs: number): boolean => {
    if (!reportedAt) {
      reportedAt = new Map();
      for (const q of inputs.positions) {
        const key = `${q.venue}|${q.chain}|${q.instrument}`;
        reportedAt.set(key, Math.min(reportedAt.get(key) ?? q.asOfMs, q.asOfMs));
      }
      coinBalanceAt = new Map();
      for (const b of inputs.balances) {
        const key = `${b.venue}|${b.chain}|${aliases[b.asset] ?? b.asset}`;
        coinBalanceAt.set(key, Math.max(coinBalanceAt.get(key) ?? b.asOfMs, b.asOfMs));
      }
    }
    return settlementMayBePaid(
      reportedAt.get(`${p.venue}|${p.chain}|${p.instrument}`) ?? p.asOfMs,
      expiryMs,
      coinBalanceAt?.get(`${p.venue}|${p.chain}|${meta.underlying}`),
    );
  };
  let spotUsd = 0;
  let unrealizedUsd = 0;
  let marginUsd = 0;
  for (const p of inputs.positions) {
    marginUsd += p.marginUsd ?? 0;
    const closed = (p.contracts ?? p.sizeBase) === 0;
    if (closed && p.unsettledPnlUsd === undefined) continue;
    let meta: InstrumentMeta;
    try {
      meta = positionMeta(metaByVenue, p);
    } catch {
      unvalued.push(`${p.venue}:${p.instrument}`);
      continue;
    }
    const kind = meta.kind;
    const perpOrFuture = kind === 'perp' || kind === 'future';
    const expiryMs = meta.expiryMs;
    const expired = kind !== 'perp' && expiryMs !== undefined && expiryMs <= snapshot.asOfMs;
    if (expired && meta.inverse && mayBePaid(p, meta, expiryMs)) {
      // Its coin is in the balance or not yet paid; the snapshot counted the balance alone.
      unvalued.push(`${p.venue}:${p.instrument}`);
      continue;
    }
    const risk = snapshot.underlyings[meta.underlying];
    if (perpOrFuture && p.unsettledPnlUsd !== undefined) {
      if (!meta.inverse) {
        unrealizedUsd += p.unsettledPnlUsd;
        continue;
      }
      if (!risk) {
        unvalued.push(`${p.venue}:${p.instrument}`);
        continue;
      }
      // Coin-settled: the coin still owed, stated in USD at the venue's mark, worth its amount at spot.
      unrealizedUsd += (p.unsettledPnlUsd / priceOf(p, meta, risk)) * risk.spotUsd;
      continue;
    }
    if (closed) continue;
    try {
      heldSize(p, meta, size);
    } catch {
      unvalued.push(`${p.venue}:${p.instrument}`); // inverse contracts without a face value
      continue;
    }
    if (!risk) {
      unvalued.push(`${p.venue}:${p.instrument}`);
      continue;
    }
    if (kind === 'option') continue; // in the snapshot's model value
    if (kind === 'spot') {
      spotUsd += size.sizeBase * (markOf.get(`${p.venue}|${p.instrument}`) ?? risk.spotUsd);
      continue;
    }
    const entry = p.entryPriceUsd;
    const entryBase = baseAtEntry(size.sizeBase, size.faceUsd, entry);
    if (entry === undefined || entryBase === undefined) {
      unvalued.push(`${p.venue}:${p.instrument}`);
      continue;
    }
    // Live at the price it trades at; settled at the settlement price. Linear: USD. Inverse: coin,
    // entryBase × (1 − entry / price), worth its amount at spot.
    const atUsd =
      !expired || expiryMs === undefined
        ? priceOf(p, meta, risk)
        : (risk.settlementPricesUsd?.[msToExpiryDate(expiryMs)] ?? risk.spotUsd);
    unrealizedUsd += meta.inverse
      ? (entryBase - (entryBase * entry) / atUsd) * risk.spotUsd
      : entryBase * (atUsd - entry);
  }
  const equityUsd = cashUsd + modelValueUsd + spotUsd + unrealizedUsd + marginUsd + inTransitUsd;
  if (!Number.isFinite(equityUsd))
    throw new RangeError(
      `book equity is not finite (cash ${cashUsd}, model value ${modelValueUsd}, spot ${spotUsd}, unrealized ${unrealizedUsd}, margin ${marginUsd}, in transit ${inTransitUsd})`,
    );
  return { equityUsd, cashUsd, modelValueUsd, spotUsd, unrealizedUsd, marginUsd, inTransitUsd, unvalued };
}
