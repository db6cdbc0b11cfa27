import { type Balance, type InstrumentMeta, isUsdLike, type Mark, msToExpiryDate } from '@xhedge/core';
import {
  baseAtEntry,
  type HeldSize,
  heldSize,
  positionMeta,
  type RiskBook,
  type RiskPosition,
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
   * expiry at its settlement price instead of the mark.
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
   * without its entry price, inverse contracts whose instrument has no `contractValueUsd`). When not
   * empty, `equityUsd` leaves them out and is not comparable with a mark taken when they were valued. A
   * perp or future with `unsettledPnlUsd` needs no market.
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
 * of what is open (the paper venues), so the position and the balance never hold the same dollar.
 * Inverse (coin-settled) perps and futures are valued by their size in coin: size × (mark − entry),
 * the USD value of their coin P&L at the mark.
 *
 * Positions are sized as the risk engine sizes them ({@link heldSize}): `contracts`, when given, win
 * over `sizeBase` (linear ones × the instrument's `contractSize`; inverse perps and futures are a USD
 * face, `contracts × contractValueUsd`, whose size in coin for the P&L is face / entry, as an inverse
 * contract's P&L is face × (1/entry − 1/mark) coins). The instruments come from `markets` as given to the
 * engine, else from the ids; a position that cannot be sized is listed in `unvalued`.
 *
 * A future past its expiry has settled: its P&L is fixed at the settlement price the snapshot gives
 * (`settlementPricesUsd`; else spot, as the engine took it and warned), not at the venue's mark of an
 * instrument that no longer trades. Linear, that is a USD amount that no longer moves; inverse, a coin
 * amount, size × (settlement − entry) / settlement, worth its amount at spot: the convention the engine
 * counts its delta by, so equity moves with spot exactly as the snapshot's delta says.
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
    const linear = kind === 'perp' || kind === 'future';
    if (linear && p.unsettledPnlUsd !== undefined) {
      unrealizedUsd += p.unsettledPnlUsd;
      continue;
    }
    if (closed) continue;
    try {
      heldSize(p, meta, size);
    } catch {
      unvalued.push(`${p.venue}:${p.instrument}`); // inverse contracts without a face value
      continue;
    }
    const risk = snapshot.underlyings[meta.underlying];
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
    const expiryMs = kind === 'future' ? meta.expiryMs : undefined;
    if (expiryMs === undefined || expiryMs > snapshot.asOfMs) {
      unrealizedUsd += entryBase * ((markOf.get(`${p.venue}|${p.instrument}`) ?? risk.spotUsd) - entry);
      continue;
    }
    const settleUsd = risk.settlementPricesUsd?.[msToExpiryDate(expiryMs)] ?? risk.spotUsd;
    // Settled: linear in USD, fixed; inverse in coin, (settle − entry) / settle per coin, worth it at spot.
    unrealizedUsd += meta.inverse
      ? ((entryBase * (settleUsd - entry)) / settleUsd) * risk.spotUsd
      : entryBase * (settleUsd - entry);
  }
  const equityUsd = cashUsd + modelValueUsd + spotUsd + unrealizedUsd + marginUsd + inTransitUsd;
  if (!Number.isFinite(equityUsd))
    throw new RangeError(
      `book equity is not finite (cash ${cashUsd}, model value ${modelValueUsd}, spot ${spotUsd}, unrealized ${unrealizedUsd}, margin ${marginUsd}, in transit ${inTransitUsd})`,
    );
  return { equityUsd, cashUsd, modelValueUsd, spotUsd, unrealizedUsd, marginUsd, inTransitUsd, unvalued };
}
