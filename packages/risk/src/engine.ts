import {
  type Balance,
  type Clock,
  type FundingRate,
  type InstrumentMeta,
  type Mark,
  MS_PER_YEAR,
  NumericError,
  XhedgeError,
  yearFraction,
} from '@xhedge/core';
import {
  type BsmBatchInput,
  bsmBatch,
  type GreeksBatchOutput,
  greeksBatchOutput,
  PricingInputError,
} from '@xhedge/pricing';
import type { VenueGreeks } from '@xhedge/venue';
import {
  BookIndex,
  KIND_FUTURE,
  KIND_OPTION,
  KIND_PERP,
  type RiskBook,
  type RiskFill,
  type RiskPosition,
  settlementMayBePaid,
  type Units,
} from './book.ts';
import {
  GREEK_FIELDS,
  type GreeksDivergence,
  type GreekTotals,
  RISK_SNAPSHOT_VERSION,
  type RiskSnapshot,
  type ScenarioGrid,
  type StaleInput,
  type StaleInputKind,
  type UnderlyingRisk,
} from './snapshot.ts';
import {
  DEFAULT_EXPIRY_BUCKETS_DAYS,
  expiryBucketLabel,
  type UnderlyingMarket,
  unitGreeks,
} from './unit-greeks.ts';

export type { RiskBook, RiskFill, RiskPosition } from './book.ts';

export interface RiskEngineOptions {
  clock: Clock;
  /** Inputs older than this are listed as stale. @defaultValue 30_000 */
  staleAfterMs?: number;
  /** Per-kind overrides of `staleAfterMs` (positions and balances move less often than marks). */
  staleAfterMsByKind?: Partial<Record<StaleInputKind, number>>;
  /** Most stale inputs listed one by one in a snapshot (the rest are counted). @defaultValue 200 */
  maxStaleListed?: number;
  /**
   * Tolerance for venue-published Greeks versus ours (per unit): flagged when
   * |local − venue| > max(absolute[greek], relative × max(|local|, |venue|)).
   * @defaultValue relative 0.05; absolute delta 0.01, gamma 0, vegaPerVolPoint 0.5, thetaPerDay 0.5
   */
  greeksTolerance?: {
    relative?: number;
    absolute?: Partial<Record<GreeksDivergence['greek'], number>>;
  };
  /**
   * Spot shocks (percent) and vol shocks (vol points, added to each option's IV) of the scenario grid.
   * A shocked IV is never below {@link MIN_SCENARIO_VOL_DECIMAL}: an option whose IV a shock takes lower
   * is priced at that floor, and the snapshot's warnings say which shocks did so, for how many options.
   */
  scenario?: { spotShocksPct?: readonly number[]; volShocksPts?: readonly number[] };
  /** Vega tenor buckets (days). @defaultValue [7, 30, 90, 180] */
  expiryBucketsDays?: readonly number[];
  /** Wrapped or bridged coins counted as their underlying. @defaultValue WETH→ETH, WBTC→BTC, CBBTC→BTC, WSOL→SOL */
  assetAliases?: Readonly<Record<string, string>>;
}

export interface SnapshotOptions {
  /** Compute the full-revaluation scenario grid (costlier: prices each option 3×13 times). @defaultValue true */
  scenarios?: boolean;
}

export const DEFAULT_SPOT_SHOCKS_PCT: readonly number[] = [-30, -20, -10, -5, -2, -1, 0, 1, 2, 5, 10, 20, 30];
export const DEFAULT_VOL_SHOCKS_PTS: readonly number[] = [-10, 0, 10];
/**
 * Least IV the scenario grid prices an option at, decimal (0.01 = 1 vol point): an option whose IV a
 * vol shock takes below it (−50 points on a 40% IV: −10%) is priced at this floor instead (BSM has no
 * price at a vol of 0 or less), and the snapshot's warnings say so.
 */
export const MIN_SCENARIO_VOL_DECIMAL = 0.01;

const G = GREEK_FIELDS.length;
const F_DELTA = 0;
const F_DELTA_USD = 1;
const F_NET_COIN = 2;
const F_GAMMA = 3;
const F_GAMMA1 = 4;
const F_VEGA = 5;
const F_THETA = 6;
const F_RHO = 7;
const F_VANNA = 8;
const F_VALUE = 9;
const F_FUNDING = 10;

export const DEFAULT_ASSET_ALIASES: Readonly<Record<string, string>> = {
  WETH: 'ETH',
  WBTC: 'BTC',
  CBBTC: 'BTC',
  WSOL: 'SOL',
};

/**
 * Builds {@link RiskSnapshot}s of one book across venues and chains.
 *
 * Work is split so that a tick where only marks, spots or a few positions change is cheap: the book's
 * structure is cached (instruments parsed once, positions grouped into lots of instrument × venue ×
 * chain, marks and funding linked to array slots) and kept up to date in place by {@link setBook} (a diff
 * against the cached book), {@link upsertPositions}, {@link applyFill} and {@link upsertBalances}, which
 * touch only the positions they change; {@link snapshot} then prices each held instrument once and walks
 * the lots' struct-of-arrays, accumulating into flat Float64Arrays per underlying × venue and × chain.
 *
 * Pricing: one model for every venue (BSM on spot, per-instrument IV from the mean of the venues' mark
 * IVs, the fresh ones when any is fresh, overridden by the market's `ivByInstrument`, else the
 * underlying's flat vol).
 */
/**
 * The largest implied vol the engine takes, decimal (10 = 1000%): no venue quotes more, and a percentage
 * given for a decimal (55 for 0.55) lands above it. A mark IV past it is left out of the mean, an override
 * past it is not used, and a market vol past it is refused, each saying so.
 */
export const MAX_IV_DECIMAL = 10;

/** Most non-finite venue Greeks named one by one in a snapshot's warning, per venue (the rest are counted). */
const MAX_INVALID_GREEKS_LISTED = 10;

export class RiskEngine {
  readonly #clock: Clock;
  readonly #staleAfterMs: number;
  readonly #staleByKind: Partial<Record<StaleInputKind, number>>;
  readonly #maxStale: number;
  readonly #relTol: number;
  readonly #absTol: Record<GreeksDivergence['greek'], number>;
  readonly #spotShocks: readonly number[];
  readonly #volShocks: readonly number[];
  readonly #buckets: readonly number[];

  #seq = 0;
  #markets: (UnderlyingMarket | undefined)[] = [];
  #venueGreeks = new Map<string, VenueGreeks[]>();
  readonly #book: BookIndex;
  /** Struct-of-arrays buffers for pricing every live option of a snapshot in one batch (grown as needed). */
  #batch = new OptionBatch(0);
  /** The same for the scenario grid's revaluations. */
  #grid = new OptionBatch(0);

  constructor(opts: RiskEngineOptions) {
    this.#clock = opts.clock;
    this.#staleAfterMs = opts.staleAfterMs ?? 30_000;
    this.#staleByKind = opts.staleAfterMsByKind ?? {};
    this.#maxStale = opts.maxStaleListed ?? 200;
    this.#relTol = opts.greeksTolerance?.relative ?? 0.05;
    this.#absTol = {
      delta: 0.01,
      gamma: 0,
      vegaPerVolPoint: 0.5,
      thetaPerDay: 0.5,
      ...opts.greeksTolerance?.absolute,
    };
    this.#spotShocks = opts.scenario?.spotShocksPct ?? DEFAULT_SPOT_SHOCKS_PCT;
    this.#volShocks = opts.scenario?.volShocksPts ?? DEFAULT_VOL_SHOCKS_PTS;
    // checked here, once: a spot shock of −100% or below (spot 0 or negative) failed every snapshot later
    for (const [i, x] of this.#spotShocks.entries())
      if (!(Number.isFinite(x) && x > -100))
        throw new XhedgeError(
          'VALIDATION',
          `scenario.spotShocksPct[${i}] is ${x}: a spot shock is a finite percentage above -100`,
        );
    for (const [i, x] of this.#volShocks.entries())
      if (!Number.isFinite(x))
        throw new XhedgeError(
          'VALIDATION',
          `scenario.volShocksPts[${i}] is ${x}: a vol shock is a finite number of vol points`,
        );
    this.#buckets = opts.expiryBucketsDays ?? DEFAULT_EXPIRY_BUCKETS_DAYS;
    this.#book = new BookIndex(opts.assetAliases ?? DEFAULT_ASSET_ALIASES);
  }

  /** Sequence number of the last snapshot (0 before the first). */
  get seq(): number {
    return this.#seq;
  }

  /** Sets spot, flat vol and rate of an underlying (a mark-only change: no rebuild). */
  setMarket(underlying: string, market: UnderlyingMarket): void {
    if (!(market.spotUsd > 0) || !Number.isFinite(market.spotUsd))
      throw new NumericError(`spot of ${underlying}`, market.spotUsd);
    if (!(market.volDecimal > 0) || !Number.isFinite(market.volDecimal))
      throw new NumericError(`vol of ${underlying}`, market.volDecimal);
    // A NaN rate priced a perp-only book into a snapshot whose rateDecimal was NaN (its own schema
    // refuses it), and a NaN time was listed as stale by NaN ms: both refused here, where they come in.
    if (market.rateDecimal !== undefined && !Number.isFinite(market.rateDecimal))
      throw new NumericError(`rate of ${underlying}`, market.rateDecimal);
    if (!(Number.isFinite(market.asOfMs) && market.asOfMs >= 0))
      throw new XhedgeError(
        'VALIDATION',
        `time of the ${underlying} market is ${market.asOfMs}: ms since epoch expected`,
        { details: { underlying, asOfMs: market.asOfMs } },
      );
    if (market.volDecimal > MAX_IV_DECIMAL)
      throw new XhedgeError(
        'VALIDATION',
        `vol of ${underlying} is ${market.volDecimal}: a decimal vol is expected (0.55 = 55%), at most ${MAX_IV_DECIMAL}`,
        { details: { underlying, volDecimal: market.volDecimal } },
      );
    for (const [date, px] of Object.entries(market.settlementPricesUsd ?? {}))
      if (!(px > 0) || !Number.isFinite(px))
        throw new NumericError(`settlement price of ${underlying} ${date}`, px);
    const u = this.#book.underlying(underlying);
    this.#markets[u] = market;
  }

  /**
   * Makes the book equal to `book`: positions, balances, funding and instrument metadata. Calling it
   * every tick with the full lists is fine: with the same `markets` as before (none, or the same array)
   * it diffs against the cached book and touches only the positions whose size or time changed. New
   * `markets` rebuild the cached structure (marks and funding already known are kept).
   */
  setBook(book: RiskBook): void {
    this.#book.setBook(book);
  }

  /**
   * Replaces the positions at the (venue, chain, instrument, settlement) keys given and leaves every
   * other one as it is; several positions under one key are summed, and a zero size closes the
   * position. New instruments, venues and chains are added in place.
   */
  upsertPositions(positions: readonly RiskPosition[]): void {
    this.#book.upsertPositions(positions);
  }

  /** Adds a fill (`side × sizeBase`) to the position it trades; a position that reaches zero is closed. */
  applyFill(fill: RiskFill): void {
    this.#book.applyFill(fill);
  }

  /** Replaces the balances at the (venue, chain, asset) keys given, adding new ones; others are kept. */
  upsertBalances(balances: readonly Balance[]): void {
    this.#book.upsertBalances(balances);
  }

  /** Records marks (price, IV, time). Marks of instruments not held are ignored. Mark-only: no rebuild. */
  updateMarks(marks: readonly Mark[]): void {
    const s = this.#book.marks;
    for (const m of marks) {
      const i = s.index.get(`${m.venue}|${m.instrument}`);
      if (i === undefined) continue;
      s.value[i] = m.markPriceUsd;
      s.iv[i] = m.ivDecimal ?? Number.NaN;
      s.asOfMs[i] = m.asOfMs;
    }
  }

  /** Records funding rates (per hour, + = longs pay). Mark-only: no rebuild. */
  updateFunding(rates: readonly FundingRate[]): void {
    for (const f of rates) this.#book.applyFunding(f);
  }

  /**
   * Greeks a venue publishes, compared with ours in each snapshot while younger than the `venue-greeks`
   * staleness limit (older ones are listed as stale and not compared). Replaces that venue's previous
   * set; an empty list forgets it.
   * An entry whose time is not ms since epoch is refused (it was listed as stale by NaN ms, which the
   * snapshot's schema refuses); a Greek that is not a finite number is the snapshot's to report (see
   * `snapshot`'s warnings), so the venue's other Greeks are still compared.
   */
  setVenueGreeks(venue: string, greeks: readonly VenueGreeks[]): void {
    for (const g of greeks)
      if (!(Number.isFinite(g.asOfMs) && g.asOfMs >= 0))
        throw new XhedgeError(
          'VALIDATION',
          `time of the ${venue} Greeks of ${g.instrument} is ${g.asOfMs}: ms since epoch expected`,
          { details: { venue, instrument: g.instrument, asOfMs: g.asOfMs } },
        );
    this.#venueGreeks.set(venue, [...greeks]);
  }

  /** Prices the book now and returns the next snapshot (seq + 1). */
  snapshot(opts: SnapshotOptions = {}): RiskSnapshot {
    const nowMs = this.#clock.nowMs();
    const warnings: string[] = [];
    const book = this.#book;
    const units = book.units;
    const lots = book.lots;
    const marks = book.marks;
    const U = book.underlyings.length;
    const V = book.venues.length;
    const C = book.chains.length;
    const nUnits = units.n;
    const { venueUsed, chainUsed } = book.used();

    // Per-instrument IV: mean of the venues' mark IVs. One past MAX_IV_DECIMAL is no vol a venue quotes
    // (a percentage given for a decimal, 55 for 0.55, would price every option near its intrinsic-free
    // ceiling and move the book's delta): left out, with a warning. A mark IV older than the mark
    // staleness limit counts only where no venue gives a fresh one: averaged in with the fresh ones, an
    // hour-old IV of a venue whose reads fail moved every venue's price of the instrument, silently.
    const ivSum = new Float64Array(nUnits);
    const ivN = new Float64Array(nUnits);
    const staleIvSum = new Float64Array(nUnits);
    const staleIvN = new Float64Array(nUnits);
    const markLimitMs = this.#staleByKind.mark ?? this.#staleAfterMs;
    let implausible = 0;
    let implausibleExample = '';
    for (let i = 0; i < marks.venue.length; i++) {
      const iv = marks.iv[i] ?? Number.NaN;
      if (iv > MAX_IV_DECIMAL && (marks.refs[i] ?? 0) > 0) {
        implausible++;
        implausibleExample ||= `${iv} for ${marks.instrument[i] ?? '?'} at ${marks.venue[i] ?? '?'}`;
        continue;
      }
      if (iv > 0 && (marks.refs[i] ?? 0) > 0) {
        const unit = marks.unit[i] ?? 0;
        const stale = !(nowMs - (marks.asOfMs[i] ?? Number.NaN) <= markLimitMs);
        const sum = stale ? staleIvSum : ivSum;
        const n = stale ? staleIvN : ivN;
        sum[unit] = (sum[unit] ?? 0) + iv;
        n[unit] = (n[unit] ?? 0) + 1;
      }
    }
    let staleLeftOut = 0;
    let staleLeftOutExample = '';
    let staleOnly = 0;
    let staleOnlyExample = '';
    const priced = new Uint8Array(nUnits);
    if (this.#batch.capacity < nUnits) this.#batch = new OptionBatch(nUnits);
    const batch = this.#batch;
    batch.reset();
    const missingMarket = new Set<number>();
    /** Settlement prices of the expired instruments held, per underlying, as the market gave them. */
    const settledAt: Record<string, number>[] = [];
    const noSmile = new Map<number, { count: number; why: string }>();
    for (let k = 0; k < nUnits; k++) {
      units.netSize[k] = 0;
      units.netVega[k] = 0;
      // Instruments no longer held stay cached (cheap to re-add) but are not priced.
      if (!units.refs[k]) continue;
      const u = units.underlying[k] ?? 0;
      const mkt = this.#markets[u];
      if (!mkt) {
        missingMarket.add(u);
        continue;
      }
      const meta = units.meta[k] as InstrumentMeta;
      const id = units.ids[k] as string;
      const n = ivN[k] ?? 0;
      const override = mkt.ivByInstrument?.[id];
      const overrideOk = override !== undefined && override > 0 && override <= MAX_IV_DECIMAL;
      if (override !== undefined && !overrideOk)
        warnings.push(
          `the IV given for ${id} (${override}) is not a decimal vol in (0, ${MAX_IV_DECIMAL}]: left out, its marks or the smile price it`,
        );
      const nStale = staleIvN[k] ?? 0;
      if (!overrideOk && nStale > 0) {
        if (n > 0) {
          staleLeftOut += nStale;
          staleLeftOutExample ||= staleIvExample(marks, k, nowMs, markLimitMs);
        } else {
          staleOnly++;
          staleOnlyExample ||= id;
        }
      }
      const vol = overrideOk
        ? override
        : n > 0
          ? (ivSum[k] ?? 0) / n
          : nStale > 0
            ? (staleIvSum[k] ?? 0) / nStale
            : this.#smileVol(mkt, meta, nowMs, u, noSmile);
      units.tenorYears[k] =
        meta.expiryMs === undefined ? 0 : Math.max((meta.expiryMs - nowMs) / MS_PER_YEAR, 0);
      units.vol[k] = vol;
      units.expired[k] = 0;
      units.settledCoin[k] = 0;
      priced[k] = 1;
      // Live options are priced below, all in one batch (no allocation per option).
      if (meta.kind === 'option' && meta.expiryMs !== undefined && meta.expiryMs > nowMs) {
        batch.add(
          k,
          meta.optionType === 'call' ? 1 : -1,
          mkt.spotUsd,
          meta.strike ?? 0,
          yearFraction(nowMs, meta.expiryMs),
          vol,
          mkt.rateDecimal ?? 0,
        );
        continue;
      }
      // Options get here only once past their expiry (live ones went to the batch above); dated futures
      // past theirs have no Greeks either (unitGreeks): their P&L was fixed at the settlement price.
      const future = meta.kind === 'future';
      const expired =
        meta.kind === 'option' || (future && meta.expiryMs !== undefined && meta.expiryMs <= nowMs);
      const date = units.expiryDate[k] ?? '';
      const settleUsd = expired ? mkt.settlementPricesUsd?.[date] : undefined;
      const g = unitGreeks(meta, mkt.spotUsd, vol, mkt.rateDecimal ?? 0, nowMs, settleUsd);
      units.expired[k] = expired ? 1 : 0;
      units.settlementUsd[k] = expired ? (settleUsd ?? mkt.spotUsd) : 0;
      units.settledCoin[k] = g.settledCoinPerUnit;
      if (settleUsd !== undefined) {
        const known = settledAt[u] ?? {};
        settledAt[u] = known;
        known[date] = settleUsd;
      }
      units.price[k] = g.priceUsd;
      units.delta[k] = g.delta;
      units.gamma[k] = g.gamma;
      units.vega[k] = g.vegaPerVolPoint;
      units.theta[k] = g.thetaPerDay;
      units.rho[k] = g.rhoPer1Pct;
      units.vanna[k] = g.vannaPerVolPoint;
      units.netCoinInverse[k] = g.netDeltaCoinInverse;
      if (expired && !future)
        warnings.push(
          settleUsd === undefined
            ? `${id} has expired and its settlement price is not known: valued at intrinsic at spot ` +
                `${mkt.spotUsd}, no delta (a coin-settled one: its coin payoff)`
            : `${id} has expired: valued at its payoff at the settlement price ${settleUsd}, ` +
                'no delta (a coin-settled one: its coin payoff)',
        );
      else if (expired)
        warnings.push(
          settleUsd === undefined
            ? `${id} has expired and its settlement price is not known: its P&L is settled at spot ` +
                `${mkt.spotUsd}, no delta (an inverse one: its coin P&L)`
            : `${id} has expired: its P&L is settled at the settlement price ${settleUsd}, ` +
                'no delta (an inverse one: its coin P&L)',
        );
    }
    batch.price(units);
    if (implausible > 0)
      warnings.push(
        `${implausible} mark IV(s) above ${MAX_IV_DECIMAL} (a percentage for a decimal?) left out, e.g. ${implausibleExample}`,
      );
    if (staleLeftOut > 0)
      warnings.push(
        `${staleLeftOut} stale mark IV(s) left out (older than ${markLimitMs} ms, where another venue's is fresh), e.g. ${staleLeftOutExample}`,
      );
    if (staleOnly > 0)
      warnings.push(
        `${staleOnly} option(s) priced from stale mark IVs only (no venue's is younger than ${markLimitMs} ms), e.g. ${staleOnlyExample}`,
      );
    for (const u of missingMarket)
      warnings.push(`no market (spot, vol) for ${book.underlyings[u]}: its positions are not priced`);
    for (const [u, x] of noSmile)
      warnings.push(
        `vol surface of ${book.underlyings[u]} gave no vol for ${x.count} option(s) (${x.why}): flat vol used`,
      );

    const accV = new Float64Array(U * V * G);
    const accC = new Float64Array(U * C * G);
    const gw = new Float64Array(U);
    const gwT = new Float64Array(U);
    const linDelta = new Float64Array(U);
    const optDelta = new Float64Array(U);
    const optFloor = new Float64Array(U);
    const optCeiling = new Float64Array(U);
    const fundingRate = book.funding.value;
    for (let l = 0; l < lots.n; l++) {
      const k = lots.unit[l] ?? 0;
      if (!priced[k] || !lots.live[l]) continue;
      const u = units.underlying[k] ?? 0;
      const mkt = this.#markets[u] as UnderlyingMarket;
      const S = mkt.spotUsd;
      const kind = units.kind[k];
      const unitDelta = units.delta[k] ?? 0;
      const expired = units.expired[k] === 1;
      const inverse = lots.inverse[l] === 1;
      // What one unit trades at by the model: a perp at spot, a live future at its forward S·e^{rT}
      // (= S × its unit delta). A USD face (inverse contracts) is face / that price coins now, the size
      // funding is paid on; an expired future has no price to convert at and pays no funding.
      const modelPriceUsd = kind === KIND_FUTURE && !expired ? S * unitDelta : S;
      const faceUsd = lots.faceUsd[l] ?? 0;
      const size = (lots.sizeBase[l] ?? 0) + (faceUsd === 0 || expired ? 0 : faceUsd / modelPriceUsd);
      // An expired option pays a fixed amount of its settlement currency: USD carries no delta, coin
      // (coin-settled) is delta like a coin balance, worth its amount at spot. An expired future likewise
      // settled its P&L: in USD (linear) no delta; in coin (inverse) that coin, delta like a coin balance.
      // A live coin-settled perp or future is delta by the coin its P&L is in (book's addPosition), not
      // by what its face is worth now: the two differ by the coin P&L accrued, which no balance holds.
      const settledCoin =
        expired && inverse ? this.#settledCoin(l, k, size, this.#markUsd(l, S), S, nowMs, warnings) : 0;
      const d = expired
        ? settledCoin
        : inverse && (kind === KIND_PERP || kind === KIND_FUTURE)
          ? this.#liveCoin(l, this.#markUsd(l, modelPriceUsd), warnings)
          : size * unitDelta;
      const gm = size * (units.gamma[k] ?? 0);
      const vg = size * (units.vega[k] ?? 0);
      const price = units.price[k] ?? 0;
      const fs = lots.funding[l] ?? -1;
      const funding = fs >= 0 ? -size * S * (fundingRate[fs] ?? 0) : 0;
      const netCoin =
        kind === KIND_OPTION && inverse ? (expired ? 0 : size * (units.netCoinInverse[k] ?? 0)) : d;
      // Futures are worth nothing here, settled or not: their P&L is bookEquity's (unrealizedUsd).
      const value = kind !== KIND_OPTION ? 0 : expired && inverse ? settledCoin * S : size * price;
      const ov = (u * V + (lots.venue[l] ?? 0)) * G;
      const oc = (u * C + (lots.chain[l] ?? 0)) * G;
      acc2(accV, ov, accC, oc, F_DELTA, d);
      acc2(accV, ov, accC, oc, F_DELTA_USD, d * S);
      acc2(accV, ov, accC, oc, F_NET_COIN, netCoin);
      acc2(accV, ov, accC, oc, F_GAMMA, gm);
      acc2(accV, ov, accC, oc, F_GAMMA1, gm * S * S * 0.01);
      acc2(accV, ov, accC, oc, F_VEGA, vg);
      acc2(accV, ov, accC, oc, F_THETA, size * (units.theta[k] ?? 0));
      acc2(accV, ov, accC, oc, F_RHO, size * (units.rho[k] ?? 0));
      acc2(accV, ov, accC, oc, F_VANNA, size * (units.vanna[k] ?? 0));
      acc2(accV, ov, accC, oc, F_VALUE, value);
      acc2(accV, ov, accC, oc, F_FUNDING, funding);
      if (kind === KIND_OPTION && !expired) {
        units.netSize[k] = (units.netSize[k] ?? 0) + size;
        units.netVega[k] = (units.netVega[k] ?? 0) + vg;
        const ag = Math.abs(gm);
        gw[u] = (gw[u] ?? 0) + ag;
        gwT[u] = (gwT[u] ?? 0) + ag * (units.tenorYears[k] ?? 0);
        optDelta[u] = (optDelta[u] ?? 0) + d;
        // Per unit a call's delta lies in (0, 1), a put's in (−1, 0); the size's sign flips the range.
        const one = units.meta[k]?.optionType === 'call' ? size : -size;
        if (one < 0) optFloor[u] = (optFloor[u] ?? 0) + one;
        else optCeiling[u] = (optCeiling[u] ?? 0) + one;
      } else linDelta[u] = (linDelta[u] ?? 0) + d;
    }
    const bl = book.balances;
    for (let i = 0; i < bl.n; i++) {
      const u = bl.underlying[i] ?? 0;
      const mkt = this.#markets[u];
      if (!mkt) continue;
      const S = mkt.spotUsd;
      const a = bl.amount[i] ?? 0;
      const ov = (u * V + (bl.venue[i] ?? 0)) * G;
      const oc = (u * C + (bl.chain[i] ?? 0)) * G;
      acc2(accV, ov, accC, oc, F_DELTA, a);
      acc2(accV, ov, accC, oc, F_DELTA_USD, a * S);
      acc2(accV, ov, accC, oc, F_NET_COIN, a);
      acc2(accV, ov, accC, oc, F_VALUE, a * S);
      linDelta[u] = (linDelta[u] ?? 0) + a;
    }

    // Vega by expiry date and tenor bucket, per underlying.
    const vegaByExpiry: Record<string, number>[] = [];
    const vegaByBucket: Record<string, number>[] = [];
    for (let k = 0; k < nUnits; k++) {
      if (!priced[k] || units.kind[k] !== KIND_OPTION) continue;
      const u = units.underlying[k] ?? 0;
      const expiryMs = units.meta[k]?.expiryMs ?? nowMs;
      const byE = vegaByExpiry[u] ?? {};
      const byB = vegaByBucket[u] ?? {};
      vegaByExpiry[u] = byE;
      vegaByBucket[u] = byB;
      const e = units.expiryDate[k] ?? '';
      const b = expiryBucketLabel(expiryMs, nowMs, this.#buckets);
      byE[e] = (byE[e] ?? 0) + (units.netVega[k] ?? 0);
      byB[b] = (byB[b] ?? 0) + (units.netVega[k] ?? 0);
    }

    const underlyings: Record<string, UnderlyingRisk> = {};
    for (let u = 0; u < U; u++) {
      const mkt = this.#markets[u];
      const name = book.underlyings[u] as string;
      const hasBook = (book.positionCount[u] ?? 0) > 0 || book.hasBalance(u);
      if (!mkt || !hasBook) continue;
      const totals = new Float64Array(G);
      const byVenue: Record<string, GreekTotals> = {};
      for (let v = 0; v < V; v++) {
        if (!venueUsed[u * V + v]) continue;
        const o = (u * V + v) * G;
        for (let f = 0; f < G; f++) totals[f] = (totals[f] ?? 0) + (accV[o + f] ?? 0);
        byVenue[book.venues[v] as string] = toTotals(accV, o);
      }
      const byChain: Record<string, GreekTotals> = {};
      for (let c = 0; c < C; c++) {
        if (!chainUsed[u * C + c]) continue;
        byChain[book.chains[c] as string] = toTotals(accC, (u * C + c) * G);
      }
      const gsum = gw[u] ?? 0;
      const risk: UnderlyingRisk = {
        underlying: name,
        spotUsd: mkt.spotUsd,
        volDecimal: mkt.volDecimal,
        rateDecimal: mkt.rateDecimal ?? 0,
        ...toTotals(totals, 0),
        gammaWeightedTenorYears: gsum > 0 ? (gwT[u] ?? 0) / gsum : 0,
        optionDeltaBase: optDelta[u] ?? 0,
        optionDeltaFloorBase: optFloor[u] ?? 0,
        optionDeltaCeilingBase: optCeiling[u] ?? 0,
        positionCount: book.positionCount[u] ?? 0,
        vegaByExpiry: vegaByExpiry[u] ?? {},
        vegaByBucket: vegaByBucket[u] ?? {},
        byVenue,
        byChain,
      };
      const settled = settledAt[u];
      if (settled) risk.settlementPricesUsd = settled;
      if (opts.scenarios !== false)
        risk.scenarios = this.#scenarios(u, mkt, linDelta[u] ?? 0, nowMs, warnings);
      for (const f of GREEK_FIELDS) {
        if (!Number.isFinite(risk[f])) throw new NumericError(`${name} ${f}`, risk[f]);
      }
      for (const f of ['optionDeltaBase', 'optionDeltaFloorBase', 'optionDeltaCeilingBase'] as const) {
        const x = risk[f] ?? Number.NaN;
        if (!Number.isFinite(x)) throw new NumericError(`${name} ${f}`, x);
      }
      underlyings[name] = risk;
    }

    const { stale, staleCount } = this.#staleness(nowMs);
    this.#seq += 1;
    return {
      version: RISK_SNAPSHOT_VERSION,
      seq: this.#seq,
      asOfMs: nowMs,
      underlyings,
      stale,
      staleCount,
      divergences: this.#divergences(priced, nowMs, warnings),
      warnings,
    };
  }

  /** The venue's mark of what lot `l` holds, USD, when it gave a positive one; else `fallbackUsd`. */
  #markUsd(l: number, fallbackUsd: number): number {
    const marks = this.#book.marks;
    const m = this.#book.lots.mark[l] ?? -1;
    const px = m >= 0 && (marks.asOfMs[m] ?? -1) >= 0 ? (marks.value[m] ?? 0) : 0;
    return px > 0 ? px : fallbackUsd;
  }

  /**
   * Delta of a live coin-settled (inverse) perp or future lot, coin (see book's `addPosition`): the coin
   * its positions' faces bought at entry, and what the venue states in USD (faces whose P&L it settles
   * apart, and that P&L, `unsettledPnlUsd`) at its mark. bookEquity values the same positions at their
   * coin P&L × spot, whose derivative in spot this is. Positions without an entry price are taken as
   * entered at the mark (no coin P&L yet), and the snapshot says so.
   */
  #liveCoin(l: number, markUsd: number, warnings: string[]): number {
    const book = this.#book;
    const lots = book.lots;
    const id = book.units.ids[lots.unit[l] ?? 0] as string;
    const venue = book.venues[lots.venue[l] ?? 0];
    const guessed = lots.enteredAtMark[l] ?? 0;
    if (guessed > 0)
      warnings.push(
        `${id} on ${venue}: ${guessed} coin-settled position(s) without an entry price: delta takes them ` +
          `as entered at the mark ${markUsd} (no coin P&L accrued), which may be off by the P&L they hold`,
      );
    const coin = (lots.coinBase[l] ?? 0) + ((lots.atMarkUsd[l] ?? 0) + (lots.unsettledUsd[l] ?? 0)) / markUsd;
    if (!Number.isFinite(coin)) throw new NumericError(`delta of ${id} on ${venue}`, coin);
    return coin;
  }

  /**
   * Coin an expired coin-settled (inverse) lot settled into, delta like a coin balance. An option's is its
   * size × the coin a unit pays. A future's, at settlement price P: over its positions, Σ size at entry ×
   * (1 − entry / P) = entryBase − entryNotionalUsd / P (for a USD face F entered at E, F × (1/E − 1/P),
   * the inverse P&L), except for positions with `unsettledPnlUsd`, whose coin still owed is that at the
   * venue's mark (0 once paid). Its USD value, this × spot, is what bookEquity counts. Positions without
   * an entry price cannot be settled: they count nothing, and the snapshot says so.
   *
   * Counted once: when the venue's balance of the coin may already hold it (book's
   * `settlementMayBePaid`: the position reported before the expiry, the balance after it), that balance
   * counts it and the lot counts nothing, and the snapshot says so.
   */
  #settledCoin(
    l: number,
    k: number,
    size: number,
    markUsd: number,
    spotUsd: number,
    nowMs: number,
    warnings: string[],
  ): number {
    const book = this.#book;
    const lots = book.lots;
    const units = book.units;
    const id = units.ids[k] as string;
    const venue = book.venues[lots.venue[l] ?? 0];
    const u = units.underlying[k] ?? 0;
    const balanceAsOfMs = book.coinBalanceAsOfMs(u, lots.venue[l] ?? 0, lots.chain[l] ?? 0);
    const expiryMs = units.meta[k]?.expiryMs ?? nowMs;
    if (settlementMayBePaid(lots.oldestAsOfMs[l] ?? -1, expiryMs, balanceAsOfMs)) {
      warnings.push(
        `${id} on ${venue} was last reported before its expiry and the venue's ${book.underlyings[u]} ` +
          'balance after it: what it settled into is counted from that balance alone (it may be paid in)',
      );
      return 0;
    }
    if (units.kind[k] === KIND_OPTION) return size * (units.settledCoin[k] ?? 0);
    const missing = lots.withoutEntry[l] ?? 0;
    if (missing > 0)
      warnings.push(
        `${id} on ${venue} has expired with ${missing} position(s) or ` +
          'fill(s) without an entry price: their settled coin P&L is not counted in delta',
      );
    const settlementUsd = units.settlementUsd[k] ?? spotUsd;
    const coin =
      (lots.entryBase[l] ?? 0) -
      (lots.entryNotionalUsd[l] ?? 0) / settlementUsd +
      (lots.unsettledUsd[l] ?? 0) / markUsd;
    if (!Number.isFinite(coin)) throw new NumericError(`settled coin P&L of ${id}`, coin);
    return coin;
  }

  /** IV of an option without venue IV: the market's smile at its strike and expiry, else the flat vol. */
  #smileVol(
    mkt: UnderlyingMarket,
    meta: InstrumentMeta,
    nowMs: number,
    u: number,
    failures: Map<number, { count: number; why: string }>,
  ): number {
    const smile = mkt.volSurface;
    if (!smile || meta.kind !== 'option' || meta.strike === undefined || meta.expiryMs === undefined)
      return mkt.volDecimal;
    if (meta.expiryMs <= nowMs) return mkt.volDecimal;
    let why: string;
    try {
      const v = smile.vol(meta.strike, meta.expiryMs);
      if (v > 0 && Number.isFinite(v)) return v;
      why = `vol ${v}`;
    } catch (err) {
      why = err instanceof Error ? err.message : String(err);
    }
    const f = failures.get(u);
    if (f) f.count++;
    else failures.set(u, { count: 1, why });
    return mkt.volDecimal;
  }

  /**
   * Full revaluation: options repriced at each shocked spot and vol, linear exposure times the move.
   * Live options go through the batch pricer, one kernel call per grid cell. Expired options are not
   * repriced: their payoff is fixed (`netSize` leaves them out), and a coin-settled one's coin is in
   * `linearDelta`. So are expired futures': a linear one's settled USD P&L does not move at all, an
   * inverse one's coin is in `linearDelta`. A shocked IV below {@link MIN_SCENARIO_VOL_DECIMAL} is priced
   * at that floor; `warnings` get one line naming the shocks that hit it, how many options, and one.
   */
  #scenarios(
    u: number,
    mkt: UnderlyingMarket,
    linearDelta: number,
    nowMs: number,
    warnings: string[],
  ): ScenarioGrid {
    const units = this.#book.units;
    const S = mkt.spotUsd;
    const r = mkt.rateDecimal ?? 0;
    const pnl = this.#volShocks.map(() => this.#spotShocks.map((x) => linearDelta * S * (x / 100)));
    const live: number[] = [];
    for (let k = 0; k < units.n; k++) {
      if (units.underlying[k] !== u || units.kind[k] !== KIND_OPTION) continue;
      if ((units.netSize[k] ?? 0) === 0 || units.expired[k]) continue;
      live.push(k);
    }
    if (live.length === 0)
      return { spotShocksPct: [...this.#spotShocks], volShocksPts: [...this.#volShocks], pnlUsd: pnl };
    if (this.#grid.capacity < live.length) this.#grid = new OptionBatch(live.length);
    const g = this.#grid;
    const shockedVol = new Float64Array(live.length);
    const floored: string[] = [];
    let flooredExample = '';
    this.#volShocks.forEach((dv, i) => {
      const row = pnl[i] as number[];
      let atFloor = 0;
      for (let n = 0; n < live.length; n++) {
        const k = live[n] as number;
        const volDecimal = units.vol[k] ?? mkt.volDecimal;
        const shocked = volDecimal + dv / 100;
        if (shocked < MIN_SCENARIO_VOL_DECIMAL) {
          atFloor++;
          flooredExample ||= `${units.ids[k] ?? '?'} IV ${volDecimal} ${dv} pts → ${MIN_SCENARIO_VOL_DECIMAL}`;
        }
        shockedVol[n] = Math.max(shocked, MIN_SCENARIO_VOL_DECIMAL);
      }
      if (atFloor > 0) floored.push(`${dv} pts (${atFloor} option(s))`);
      this.#spotShocks.forEach((x, j) => {
        g.reset();
        for (let n = 0; n < live.length; n++) {
          const k = live[n] as number;
          const meta = units.meta[k] as InstrumentMeta;
          g.add(
            k,
            meta.optionType === 'call' ? 1 : -1,
            S * (1 + x / 100),
            meta.strike ?? 0,
            yearFraction(nowMs, meta.expiryMs ?? nowMs),
            shockedVol[n] as number,
            r,
          );
        }
        row[j] =
          (row[j] ?? 0) +
          g.pnl(
            (k) => units.netSize[k] ?? 0,
            (k) => units.price[k] ?? 0,
            units.ids,
          );
      });
    });
    if (floored.length > 0)
      warnings.push(
        `scenario grid of ${this.#book.underlyings[u]}: vol shock(s) ${floored.join(', ')} took IVs below ` +
          `${MIN_SCENARIO_VOL_DECIMAL}, priced at that floor instead (a smaller shock than the row says), ` +
          `e.g. ${flooredExample}`,
      );
    return { spotShocksPct: [...this.#spotShocks], volShocksPts: [...this.#volShocks], pnlUsd: pnl };
  }

  #staleness(nowMs: number): { stale: StaleInput[]; staleCount: number } {
    const stale: StaleInput[] = [];
    let count = 0;
    const limit = (kind: StaleInputKind) => this.#staleByKind[kind] ?? this.#staleAfterMs;
    const check = (kind: StaleInputKind, key: string, asOfMs: number, venue?: string) => {
      if (asOfMs < 0) return;
      const ageMs = nowMs - asOfMs;
      const over = ageMs - limit(kind);
      if (over <= 0) return;
      count++;
      if (stale.length < this.#maxStale) {
        const s: StaleInput = { kind, key, asOfMs, ageMs, staleByMs: over };
        if (venue !== undefined) s.venue = venue;
        stale.push(s);
      }
    };
    const book = this.#book;
    this.#markets.forEach((m, u) => {
      if (m) check('market', book.underlyings[u] as string, m.asOfMs);
    });
    const lots = book.lots;
    for (let l = 0; l < lots.n; l++)
      if (lots.live[l])
        check(
          'position',
          book.units.ids[lots.unit[l] ?? 0] as string,
          lots.oldestAsOfMs[l] ?? -1,
          book.venues[lots.venue[l] ?? 0],
        );
    for (const [kind, s] of [
      ['mark', book.marks],
      ['funding', book.funding],
    ] as const) {
      for (let i = 0; i < s.venue.length; i++)
        if ((s.refs[i] ?? 0) > 0) check(kind, s.instrument[i] as string, s.asOfMs[i] ?? -1, s.venue[i]);
    }
    const bl = book.balances;
    for (let i = 0; i < bl.n; i++)
      check('balance', bl.asset[i] as string, bl.asOfMs[i] ?? -1, book.venues[bl.venue[i] ?? 0]);
    for (const [venue, list] of this.#venueGreeks)
      for (const g of list) check('venue-greeks', g.instrument, g.asOfMs, venue);
    return { stale, staleCount: count };
  }

  /**
   * Venue Greeks of the instruments priced that differ from ours beyond tolerance. A venue Greek that is
   * not a finite number (NaN, ±Infinity, missing) cannot be compared: |local − NaN| > tol is false, so it
   * passed as agreeing. It is left out of the list (whose values are finite numbers) and named in
   * `warnings` instead, one line per venue: instrument and Greek.
   *
   * Venue Greeks older than the `venue-greeks` staleness limit are not compared either: they are of a
   * spot and vol gone by (a venue whose reads fail keeps its last set here), and held against today's
   * model they flagged a divergence that was only time, or hid one. They are listed as stale, and
   * `warnings` say, one line per venue, how many were left out of the comparison.
   */
  #divergences(priced: Uint8Array, nowMs: number, warnings: string[]): GreeksDivergence[] {
    const out: GreeksDivergence[] = [];
    const units = this.#book.units;
    const limitMs = this.#staleByKind['venue-greeks'] ?? this.#staleAfterMs;
    for (const [venue, list] of this.#venueGreeks) {
      let invalid = 0;
      const examples: string[] = [];
      let stale = 0;
      let staleExample = '';
      for (const vg of list) {
        const k = this.#book.unitIndex.get(vg.instrument);
        if (k === undefined || !priced[k]) continue;
        if (!(nowMs - vg.asOfMs <= limitMs)) {
          stale++;
          staleExample ||= `${vg.instrument} (${nowMs - vg.asOfMs} ms old)`;
          continue;
        }
        const pairs: [GreeksDivergence['greek'], number, number][] = [
          ['delta', units.delta[k] ?? 0, vg.greeks.delta],
          ['gamma', units.gamma[k] ?? 0, vg.greeks.gamma],
          ['vegaPerVolPoint', units.vega[k] ?? 0, vg.greeks.vegaPerVolPoint],
          ['thetaPerDay', units.theta[k] ?? 0, vg.greeks.thetaPerDay],
        ];
        for (const [greek, local, venueValue] of pairs) {
          if (!Number.isFinite(venueValue)) {
            invalid++;
            if (examples.length < MAX_INVALID_GREEKS_LISTED)
              examples.push(`${greek} ${String(venueValue)} for ${vg.instrument}`);
            continue;
          }
          const absDiff = Math.abs(local - venueValue);
          const tolerance = Math.max(
            this.#absTol[greek],
            this.#relTol * Math.max(Math.abs(local), Math.abs(venueValue)),
          );
          if (absDiff > tolerance)
            out.push({
              venue,
              instrument: vg.instrument,
              greek,
              local,
              venueValue,
              absDiff,
              tolerance,
              convention: vg.convention,
            });
        }
      }
      if (invalid > 0)
        warnings.push(
          `${venue} published ${invalid} Greek(s) that are not finite numbers for instruments held: ` +
            `invalid, not compared with the model: ${examples.join(', ')}` +
            (invalid > examples.length ? `, and ${invalid - examples.length} more` : ''),
        );
      if (stale > 0)
        warnings.push(
          `${venue} Greeks of ${stale} instrument(s) held are older than ${limitMs} ms: not compared ` +
            `with the model (listed as stale), e.g. ${staleExample}`,
        );
    }
    return out;
  }
}

/** `<iv> for <instrument> at <venue>` of the first stale mark IV of unit `k`, for a warning. */
function staleIvExample(marks: BookIndex['marks'], k: number, nowMs: number, limitMs: number): string {
  for (let i = 0; i < marks.venue.length; i++) {
    const iv = marks.iv[i] ?? Number.NaN;
    if (marks.unit[i] !== k || !(iv > 0 && iv <= MAX_IV_DECIMAL) || !((marks.refs[i] ?? 0) > 0)) continue;
    if (!(nowMs - (marks.asOfMs[i] ?? Number.NaN) <= limitMs))
      return `${iv} for ${marks.instrument[i] ?? '?'} at ${marks.venue[i] ?? '?'}`;
  }
  return '?';
}

function acc2(accV: Float64Array, ov: number, accC: Float64Array, oc: number, f: number, x: number): void {
  accV[ov + f] = (accV[ov + f] ?? 0) + x;
  accC[oc + f] = (accC[oc + f] ?? 0) + x;
}

function toTotals(a: Float64Array, o: number): GreekTotals {
  return {
    delta: a[o + F_DELTA] ?? 0,
    deltaUsd: a[o + F_DELTA_USD] ?? 0,
    netDeltaCoin: a[o + F_NET_COIN] ?? 0,
    gamma: a[o + F_GAMMA] ?? 0,
    gamma1PctUsd: a[o + F_GAMMA1] ?? 0,
    vegaPerVolPoint: a[o + F_VEGA] ?? 0,
    thetaPerDay: a[o + F_THETA] ?? 0,
    rhoPer1Pct: a[o + F_RHO] ?? 0,
    vannaPerVolPoint: a[o + F_VANNA] ?? 0,
    valueUsd: a[o + F_VALUE] ?? 0,
    fundingUsdPerHour: a[o + F_FUNDING] ?? 0,
  };
}

/** What {@link OptionBatch.price} writes: the book's per-instrument arrays. */
type UnitArrays = Pick<
  Units,
  'ids' | 'price' | 'delta' | 'gamma' | 'vega' | 'theta' | 'rho' | 'vanna' | 'netCoinInverse'
>;

/**
 * Live options of one snapshot priced together with pricing's `bsmBatch` (BSM on spot with rate r, as
 * `unitGreeks`): inputs gathered per instrument, one kernel call, results written back to the book's
 * per-instrument arrays. The coin net delta of a coin-settled option is BS delta − price/spot.
 */
class OptionBatch {
  readonly capacity: number;
  n = 0;
  readonly #unit: Int32Array;
  readonly #in: BsmBatchInput & { rate: Float64Array };
  readonly #out: GreeksBatchOutput & { vannaPerVolPoint: Float64Array };

  constructor(capacity: number) {
    this.capacity = capacity;
    const f = () => new Float64Array(capacity);
    this.#unit = new Int32Array(capacity);
    this.#in = { callPut: f(), spot: f(), strike: f(), timeYears: f(), vol: f(), rate: f() };
    this.#out = greeksBatchOutput(capacity);
  }

  reset(): void {
    this.n = 0;
  }

  /** The kernel over the batch; a bad input is an error naming the instrument, not the batch slot. */
  #run(ids: readonly (string | undefined)[]): void {
    try {
      bsmBatch(this.#in, this.#out, this.n);
    } catch (err) {
      const m = err instanceof PricingInputError ? /^(\w+)\[(\d+)\]/.exec(String(err.details?.field)) : null;
      const k = m ? this.#unit[Number(m[2])] : undefined;
      if (!m || k === undefined) throw err;
      throw new PricingInputError(
        `${ids[k] ?? `instrument #${k}`} ${m[1]}`,
        (err as PricingInputError).details?.value,
        'must be positive and finite',
      );
    }
  }

  /** Σ size·(price − base) over the batch, after pricing it. */
  pnl(
    size: (unit: number) => number,
    base: (unit: number) => number,
    ids: readonly (string | undefined)[],
  ): number {
    if (this.n === 0) return 0;
    this.#run(ids);
    let sum = 0;
    for (let i = 0; i < this.n; i++) {
      const k = this.#unit[i] as number;
      sum += size(k) * ((this.#out.price[i] as number) - base(k));
    }
    return sum;
  }

  add(
    unit: number,
    callPut: 1 | -1,
    spot: number,
    strike: number,
    timeYears: number,
    vol: number,
    rate: number,
  ) {
    const i = this.n++;
    this.#unit[i] = unit;
    this.#in.callPut[i] = callPut;
    this.#in.spot[i] = spot;
    this.#in.strike[i] = strike;
    this.#in.timeYears[i] = timeYears;
    this.#in.vol[i] = vol;
    this.#in.rate[i] = rate;
  }

  price(units: UnitArrays): void {
    if (this.n === 0) return;
    this.#run(units.ids);
    const o = this.#out;
    for (let i = 0; i < this.n; i++) {
      const k = this.#unit[i] as number;
      const price = o.price[i] as number;
      const delta = o.delta[i] as number;
      units.price[k] = price;
      units.delta[k] = delta;
      units.gamma[k] = o.gamma[i] as number;
      units.vega[k] = o.vegaPerVolPoint[i] as number;
      units.theta[k] = o.thetaPerDay[i] as number;
      units.rho[k] = o.rhoPer1Pct[i] as number;
      units.vanna[k] = o.vannaPerVolPoint[i] as number;
      units.netCoinInverse[k] = delta - price / (this.#in.spot[i] as number);
    }
  }
}
