import {
  type Balance,
  type ChainId,
  type Clock,
  canonicalStrike,
  Dec,
  EXPIRY_HOUR_UTC,
  expiryDateToMs,
  type Fill,
  formatInstrumentId,
  instrumentMeta,
  type Mark,
  msToExpiryDate,
  type Order,
  type Position,
  parseInstrumentId,
  systemClock,
  TERMINAL_ORDER_STATUSES,
  yearFraction,
} from '@xhedge/core';
import {
  afterFailedCancel,
  applySentTxStatus,
  assertOrderBasics,
  type CreateOnChainVenueDeps,
  createVenueTxSender,
  type DecodedRevert,
  defaultOrderStore,
  type EvmContext,
  type EvmVenueConfigLike,
  fillsFromRecords,
  newOrderRecord,
  type OnChainOrderRecord,
  OneAtATime,
  type OrderRecordStore,
  onChainVenueFromConfig,
  orderFromRecord,
  parseVenueRequest,
  type RevertClass,
  type RevertClassifier,
  replaceByNonce,
  reserveAndApprove,
  SpendCaps,
  sendRecorded,
  type TxSender,
  toVenueError,
  unreachableHealth,
  type VenueErrorMapper,
  venueErrorMapper,
} from '@xhedge/evm';
import { bsm } from '@xhedge/pricing';
import {
  type HedgeQuote,
  InvalidOrderError,
  type MarketInfo,
  OrderNotFoundError,
  OrderRequest,
  QuoteRequest,
  RevertedError,
  type SettlementPrice,
  type VenueAdapter,
  type VenueCapabilities,
  type VenueGreeks,
  type VenueHealth,
} from '@xhedge/venue';
import {
  type Address,
  type ContractFunctionReturnType,
  decodeFunctionResult,
  encodeAbiParameters,
  encodeFunctionData,
  erc20Abi,
  formatUnits,
  type Hex,
  keccak256,
  maxUint256,
  parseEventLogs,
  type TransactionReceipt,
} from 'viem';
import {
  exchangeAdapterAbi,
  greekCacheAbi,
  OPTION_TYPE,
  optionMarketAbi,
  optionTokenAbi,
  POSITION_STATE,
  PRICE_TYPE,
} from './abi.ts';
import { type Read, ReadBatch, readBatch } from './batch.ts';
import { LyraVenueParams, type LyraVenueParamsInput } from './params.ts';

/** What the adapter persists per client order id (JSON-safe). */
export interface LyraOrderRecord extends OnChainOrderRecord {
  positionId?: string;
}

type LyraMarket = LyraVenueParams['markets'][number];

interface StrikeEntry {
  info: MarketInfo;
  market: LyraMarket;
  strikeId: bigint;
  boardId: bigint;
  /** The board's expiry, exact (any time of day): what the adapter's Greeks and `info.instrument.expiryMs` take. */
  expiryMs: number;
  /** The board expires at the instant its id stands for (08:00 UTC on its date, {@link idExpiryMs}). */
  onHour: boolean;
  strike: number;
  /** Strike price as the chain holds it (quote per base, 18 decimals). */
  strikePriceE18: bigint;
  isCall: boolean;
}

/** An open position of the account (OptionToken, ACTIVE) with its strike and board, live or expired. */
interface HeldPosition {
  market: LyraMarket;
  positionId: bigint;
  strikeId: bigint;
  optionType: number;
  amount: bigint;
  collateral: bigint;
  boardId: bigint;
  expiryMs: number;
  /** Canonical option id (`ETH-USD:OPT:YYYYMMDD:STRIKE:C`), also for an expired board. */
  instrument: string;
  /**
   * A base-collateralised short call (SHORT_CALL_BASE) on a settled board: the base (18 decimals) that
   * `ShortCollateral.settleOptions` returns to the owner, collateral − strikeToBaseReturned × amount (0 when
   * that is negative: the pool bears the shortfall). Undefined for every other position.
   */
  baseBackE18?: bigint;
}

/**
 * The instant an expiry date's instrument ids stand for (`@xhedge/core`: 08:00 UTC on the date): the id of
 * an option on a board expiring at `expiryMs` holds its UTC date only, and the rest of xhedge (the risk
 * engine's time to expiry, the planner's settlement asks) reads the expiry from the id.
 */
function idExpiryMs(expiryMs: number): number {
  const ms = expiryDateToMs(msToExpiryDate(expiryMs));
  if (typeof ms === 'string') throw new RangeError(`board expiry ${expiryMs} ms: ${ms}`);
  return ms;
}

/**
 * What `ShortCollateral.settleOptions` returns to the owner of a base-collateralised short call (v1-core
 * _sendShortCallBaseProceeds): its collateral less `strikeToBaseReturned` × amount (DecimalMath, rounded
 * down), nothing when the collateral does not cover it. 18 decimals.
 */
function baseReturnedE18(collateral: bigint, amount: bigint, strikeToBaseReturned: bigint): bigint {
  const owed = (strikeToBaseReturned * amount) / 10n ** 18n;
  return collateral > owed ? collateral - owed : 0n;
}

/** A position as the OptionToken lists it (ACTIVE, with an amount), before its strike and board are read. */
type OwnedPosition = Omit<HeldPosition, 'boardId' | 'expiryMs' | 'instrument' | 'baseBackE18'>;

const isLongType = (t: number) => t === OPTION_TYPE.LONG_CALL || t === OPTION_TYPE.LONG_PUT;
const isCallType = (t: number) =>
  t === OPTION_TYPE.LONG_CALL || t === OPTION_TYPE.SHORT_CALL_QUOTE || t === OPTION_TYPE.SHORT_CALL_BASE;

/**
 * Vega per vol point from Lyra v1's cached `stdVega` (BlackScholes._standardVega: vega per 1.0 of vol ×
 * √(30 / days to expiry) / 100, the days whole and at least 7), at the given time to expiry.
 */
function vegaPerVolPointFromStdVega(stdVega: number, secondsToExpiry: number): number {
  const days = Math.floor(Math.max(secondsToExpiry, 7 * 86_400) / 86_400);
  return stdVega / Math.sqrt(30 / days);
}

/** AMM Greeks next to local Black-Scholes at the AMM's own vol, spot and time. */
export interface GreekComparison {
  instrument: string;
  ammDelta: number;
  localDelta: number;
  ammVegaPerVolPoint: number;
  localVegaPerVolPoint: number;
  ammPriceUsd: number;
  localPriceUsd: number;
  /** Largest relative difference among delta, vega and price (absolute for |delta| < 0.01). */
  maxRelDiff: number;
  diverged: boolean;
}

/**
 * Reverts of a trade the same order would hit again, whatever the price: the strike, board or position
 * cannot take it (InvalidStrikeId, a frozen, expired or settled board, a zero amount or iteration, an
 * invalid position or one the account does not own, a full close that sets collateral), or the pricer's
 * trade limits refuse it (OptionMarketPricer.updateCacheAndGetTradeResult: the board is inside its trading
 * cutoff before expiry, the strike's call delta is outside [minDelta, 1 − minDelta], or the trade would
 * move vol, base iv or skew past the AMM's bounds; these change only as time, spot or the board's vol
 * move, or with a smaller size), or the venue cannot take the trade now ({@link VENUE_CANNOT_TAKE_REVERTS}).
 */
const INVALID_ORDER_REVERTS: ReadonlySet<string> = new Set([
  'InvalidStrikeId',
  'BoardIsFrozen',
  'BoardExpired',
  'BoardAlreadySettled',
  'ExpectedNonZeroValue',
  'TradeIterationsHasRemainder',
  'CannotOpenZeroAmount',
  'CannotClosePositionZero',
  'CannotAdjustInvalidPosition',
  'OnlyOwnerCanAdjustPosition',
  'FullyClosingWithNonZeroSetCollateral',
  'TradingCutoffReached',
  'TradeDeltaOutOfRange',
  'VolSkewOrBaseIvOutsideOfTradingBounds',
]);

/**
 * Reverts of the venue's own contracts that cannot take the trade now, whatever the account holds: the
 * LiquidityPool's free liquidity is short of the collateral a long locks (LockingMoreQuoteThanIsFree) or of
 * the premium and fee a short is paid (SendPremiumNotEnoughCollateral; for these two a smaller size may
 * fit), its pool hedger cannot take a trade that adds to the pool's delta (UnableToHedgeDelta: the
 * hedger's canHedge looks at the gap between its expected and current hedge and its venue's depth, not at
 * the trade's size; it clears when the hedger's keeper re-hedges, and a trade reducing the pool's delta
 * passes), its assets are below its settlements and queued deposits (NegativeTotalAssetValue, every trade
 * whatever its size), or the ShortCollateral holds less quote than the trade takes out of it
 * (OutOfQuoteCollateralForTransfer). The order as it is would fail again until the pool changes (deposits,
 * trades, re-hedges, settlement): invalid orders, not repeated.
 */
const VENUE_CANNOT_TAKE_REVERTS: ReadonlySet<string> = new Set([
  'LockingMoreQuoteThanIsFree',
  'SendPremiumNotEnoughCollateral',
  'UnableToHedgeDelta',
  'NegativeTotalAssetValue',
  'OutOfQuoteCollateralForTransfer',
]);

/**
 * What a Lyra revert means for the caller: the total cost outside the order's bounds is a price that
 * moved (retryable at a new price); a quote balance below the amount is missing funds;
 * {@link INVALID_ORDER_REVERTS}, {@link VENUE_CANNOT_TAKE_REVERTS} and OptionToken's
 * AdjustmentResultsInMinimumCollateralNotBeingMet are orders not to repeat as they are; anything else is a
 * plain revert. AdjustmentResultsInMinimumCollateralNotBeingMet (OptionToken.adjustPosition) compares the
 * order's own `setCollateralTo` with the minimum at the trade's min/max spot and never looks at the wallet:
 * the target the adapter set (the minimum × `shortCollateralBuffer`) is stale or too small after a spot
 * move, not missing funds; the next order recomputes it. The adapter classifies through
 * {@link lyraRevertClassifier}, which also words the message.
 */
export function classifyLyraRevert(r: DecodedRevert): RevertClass | undefined {
  if (r.errorName === 'TotalCostOutsideOfSpecifiedBounds') return 'acceptable-price';
  if (r.errorName === 'ERC20InsufficientBalance') return 'insufficient-funds';
  return INVALID_ORDER_REVERTS.has(r.errorName) ||
    VENUE_CANNOT_TAKE_REVERTS.has(r.errorName) ||
    r.errorName === 'AdjustmentResultsInMinimumCollateralNotBeingMet'
    ? 'invalid-order'
    : undefined;
}

/** The units {@link describeLyraRevert} writes amounts in. */
export interface LyraRevertUnits {
  /** Symbol of the quote asset (premiums, collateral, pool liquidity), e.g. `USDC`. */
  quoteSymbol: string;
  /**
   * Decimals of the quote token: the ShortCollateral's balances are in them. Lyra's own amounts
   * (LiquidityPool, OptionToken, prices) are 18-decimal whatever the token.
   */
  quoteDecimals: number;
  /**
   * Symbol of the underlying (base) asset, e.g. `ETH`, when the revert is known to come from one market:
   * base amounts then read `0.5 ETH`; without it, `0.5 of the underlying`.
   */
  baseSymbol?: string;
}

const OPTION_TYPE_NAME = new Map<number, string>(Object.entries(OPTION_TYPE).map(([k, v]) => [v, k]));
const POSITION_STATE_NAME = new Map<number, string>(Object.entries(POSITION_STATE).map(([k, v]) => [v, k]));

/** The integer a decoded argument must be; throws (caught by describeLyraRevert) when it is not. */
function revertInt(v: unknown): bigint {
  if (typeof v !== 'bigint') throw new TypeError('not an integer');
  return v;
}
/** An enum (uint8, decoded as a number) a decoded argument must be; throws when it is not. */
function revertEnum(v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new TypeError('not an enum value');
  return v;
}
/** A field of a decoded struct argument; throws (caught by describeLyraRevert) when it has none. */
function revertField(v: unknown, key: string): unknown {
  if (typeof v !== 'object' || v === null || !(key in v)) throw new TypeError(`no ${key}`);
  return (v as Record<string, unknown>)[key];
}

/** `Name(arg value, …): meaning` from the decoded args; throws on args not of the real error's shape. */
function lyraRevertText(r: DecodedRevert, u: LyraRevertUnits): string | undefined {
  const a = r.args;
  /** An 18-decimal fixed-point amount (contracts, base) as an exact decimal. */
  const e18 = (v: unknown) => formatUnits(revertInt(v), 18);
  /** An 18-decimal quote amount (Lyra's own accounting), with its unit. */
  const quote18 = (v: unknown) => `${e18(v)} ${u.quoteSymbol}`;
  /** A quote amount in the token's own decimals, with its unit. */
  const quoteNative = (v: unknown) => `${formatUnits(revertInt(v), u.quoteDecimals)} ${u.quoteSymbol}`;
  /** An 18-decimal base amount (the underlying), with its symbol when known. */
  const base18 = (v: unknown) => `${e18(v)} ${u.baseSymbol ?? 'of the underlying'}`;
  const thrower = `thrower ${String(a[0])}`;
  switch (r.errorName) {
    case 'LockingMoreQuoteThanIsFree': {
      const locked = a[3];
      return (
        `LockingMoreQuoteThanIsFree(${thrower}, quoteToLock ${quote18(a[1])}, freeLiquidity ${quote18(a[2])}, ` +
        `lockedCollateral {quote ${quote18(revertField(locked, 'quote'))}, base ${base18(revertField(locked, 'base'))}}): ` +
        "the liquidity pool's free liquidity cannot take the collateral this trade locks (quoteToLock × the " +
        "pool's collateral scaling factor > freeLiquidity); a smaller size may fit"
      );
    }
    case 'SendPremiumNotEnoughCollateral':
      return (
        `SendPremiumNotEnoughCollateral(${thrower}, premium ${quote18(a[1])}, reservedFee ${quote18(a[2])}, ` +
        `freeLiquidity ${quote18(a[3])}): the liquidity pool's free liquidity cannot pay this sale's premium ` +
        'and reserved fee (premium + reservedFee > freeLiquidity); a smaller size may fit'
      );
    case 'UnableToHedgeDelta':
      return (
        `UnableToHedgeDelta(${thrower}, amountOptions ${e18(a[1])}, increasesDelta ${String(a[2])}, ` +
        `strikeId ${revertInt(a[3])}): the pool's hedger cannot take more delta now: it is behind (its keeper ` +
        'has not re-hedged) or its venue lacks depth; this clears when it re-hedges, and a trade reducing the ' +
        "pool's delta passes"
      );
    case 'NegativeTotalAssetValue':
      return (
        `NegativeTotalAssetValue(${thrower}, totalAssetValue ${quote18(a[1])}): the liquidity pool's assets ` +
        'are below its outstanding settlements and queued deposits; it takes no trade, of any size, until that changes'
      );
    case 'OutOfQuoteCollateralForTransfer':
      return (
        `OutOfQuoteCollateralForTransfer(${thrower}, balance ${quoteNative(a[1])}, amount ${quoteNative(a[2])}): ` +
        "the venue's ShortCollateral holds less quote than this trade takes out of it (a short's collateral " +
        "or buy-back premium); the venue's shortfall, not the account's"
      );
    case 'AdjustmentResultsInMinimumCollateralNotBeingMet': {
      const p = a[1];
      const optionType = revertEnum(revertField(p, 'optionType'));
      const state = revertEnum(revertField(p, 'state'));
      // a base-collateralised short call holds its collateral in the underlying, every other short in quote
      const collateral = revertField(p, 'collateral');
      const collateralText =
        optionType === OPTION_TYPE.SHORT_CALL_BASE ? base18(collateral) : quote18(collateral);
      return (
        `AdjustmentResultsInMinimumCollateralNotBeingMet(${thrower}, position {positionId ` +
        `${revertInt(revertField(p, 'positionId'))}, strikeId ${revertInt(revertField(p, 'strikeId'))}, ` +
        `optionType ${OPTION_TYPE_NAME.get(optionType) ?? optionType}, amount ${e18(revertField(p, 'amount'))}, ` +
        `collateral ${collateralText}, state ${POSITION_STATE_NAME.get(state) ?? state}}, ` +
        `spotPrice ${quote18(a[2])}): the collateral target set for this short is under the minimum at the ` +
        "trade's spot; the next order recomputes it (raise shortCollateralBuffer if it repeats)"
      );
    }
    default:
      return undefined;
  }
}

/**
 * The message of a Lyra revert of the pool, the ShortCollateral or a short's collateral
 * ({@link VENUE_CANNOT_TAKE_REVERTS}, AdjustmentResultsInMinimumCollateralNotBeingMet): its name and
 * arguments by name, amounts in human units (18-decimal quote and base as exact decimals with their unit,
 * the ShortCollateral's balances in the quote token's decimals) and what it means. `undefined` for any
 * other revert, or one whose arguments are not of the real error's shape (its decoded text stands).
 */
export function describeLyraRevert(r: DecodedRevert, units: LyraRevertUnits): string | undefined {
  try {
    return lyraRevertText(r, units);
  } catch {
    return undefined;
  }
}

/**
 * The classifier the adapter gives `@xhedge/evm` (its simulations and transaction sender):
 * {@link classifyLyraRevert}'s class, with the revert's `reason` (what evm words the venue error's message
 * from, after classifying) replaced by {@link describeLyraRevert}'s text where it has one.
 */
export function lyraRevertClassifier(units: LyraRevertUnits): RevertClassifier {
  return (r) => {
    const text = describeLyraRevert(r, units);
    if (text !== undefined) r.reason = text;
    return classifyLyraRevert(r);
  };
}

export const LYRA_CAPABILITIES: VenueCapabilities = {
  products: ['option'],
  venueGreeks: true,
  liquidityModel: 'amm',
  executionMode: 'tx-confirmed',
  orderTypes: ['market', 'limit'],
  reduceOnly: true,
  // Trades fill or revert in their transaction; only an unconfirmed transaction can be cancelled (by nonce replacement).
  cancel: false,
  clientOrderId: 'none',
  fundingIntervalHours: null,
  collateral: ['USDC'],
  inverseSettlement: false,
  gasAsset: 'ETH',
};

const UNIT = 10n ** 18n;
const fromE18 = (v: bigint) => Number(new Dec(v.toString()).div(1e18).toString());
const ceilDiv = (a: bigint, b: bigint) => (a + b - 1n) / b;

/**
 * The asset a market's base-collateralised short calls lock their collateral in, as
 * {@link LyraVenue.fetchBalances} names it: the underlying (`BTC`), except where that is the chain's gas
 * asset (`ETH`), whose ERC-20 Lyra holds is the wrapped coin: `WETH`. The wallet's native `ETH` is
 * reported under `ETH` as gas money (a runtime leaves it out of the book, and a risk book keys balances
 * by venue, chain and asset), so the locked coin must not share its name. `@xhedge/risk` counts `WETH`
 * as ETH (its default asset aliases).
 */
export function baseCollateralSymbol(underlying: string): string {
  return underlying === LYRA_CAPABILITIES.gasAsset ? `W${underlying}` : underlying;
}

/** Ascending order of integers (board ids: the order a market listed its boards in, v1-core numbers them from 1). */
const ascending = (a: bigint, b: bigint) => (a < b ? -1 : a > b ? 1 : 0);
const toE18 = (v: string | number, rounding: 'down' | 'up' = 'down') =>
  BigInt(new Dec(v).mul(1e18).toFixed(0, rounding === 'up' ? Dec.ROUND_UP : Dec.ROUND_DOWN));

/**
 * An 18-decimal quote amount (Lyra's own accounting: costs, collateral) in the quote token's base units,
 * rounded up as Lyra pulls it from the trader (ConvertDecimals.convertFrom18AndRoundUp at each transfer).
 */
function quoteUnitsUp(amountE18: bigint, quoteDecimals: number): bigint {
  if (quoteDecimals >= 18) return amountE18 * 10n ** BigInt(quoteDecimals - 18);
  return ceilDiv(amountE18, 10n ** BigInt(18 - quoteDecimals));
}

type StrikeCache = ContractFunctionReturnType<typeof greekCacheAbi, 'view', 'getStrikeCache'>;
type GreekCacheParams = ContractFunctionReturnType<typeof greekCacheAbi, 'view', 'getGreekCacheParams'>;

/** A strike's AMM view in project units: its cached price and Greeks, GWAV vol, reference spot, chain time. */
interface AmmView {
  priceUsd: number;
  delta: number;
  vegaPerVolPoint: number;
  /** GWAV iv × GWAV skew, decimal; undefined when either is 0. */
  ivDecimal: number | undefined;
  spot: number;
  /** The latest block's time, ms (the Greeks' time to expiry is counted from it). */
  chainMs: number;
}

/** The AMM view of strike entry `e` from its reads (18-decimal chain values, the block's time in ms). */
function ammViewOf(
  e: StrikeEntry,
  r: { cache: StrikeCache; ivGwav: bigint; skewGwav: bigint; spotE18: bigint; chainMs: number },
): AmmView {
  const g = r.cache.greeks;
  return {
    priceUsd: fromE18(e.isCall ? g.callPrice : g.putPrice),
    delta: fromE18(e.isCall ? g.callDelta : g.putDelta),
    vegaPerVolPoint: vegaPerVolPointFromStdVega(fromE18(g.stdVega), (e.expiryMs - r.chainMs) / 1000),
    ivDecimal: fromE18(r.ivGwav) * fromE18(r.skewGwav) || undefined,
    spot: fromE18(r.spotE18),
    chainMs: r.chainMs,
  };
}

type OptionStrike = ContractFunctionReturnType<typeof optionMarketAbi, 'view', 'getStrike'>;
type OptionBoard = ContractFunctionReturnType<typeof optionMarketAbi, 'view', 'getOptionBoard'>;
type OptionPosition = ContractFunctionReturnType<typeof optionTokenAbi, 'view', 'getOptionPosition'>;

/** ` for a, b, c, d, … (n)`: the items a read is for, as its error names them (none: nothing). */
function forItems(items: readonly string[]): string {
  if (items.length === 0) return '';
  return ` for ${items.slice(0, 4).join(', ')}${items.length > 4 ? `, … (${items.length})` : ''}`;
}

/** A read's answer kept by a {@link StrikeBoardLookup}: its value, or the error taking it threw. */
type Kept<T> = { ok: true; value: T } | { ok: false; error: unknown };

/**
 * Strikes and boards of the OptionMarkets for one call, each read once however many positions or boards
 * need it (a lookup lives for one call: boards are settled over time). {@link addStrikes} and
 * {@link addBoards} put those not read yet (or whose read failed) into a {@link ReadBatch} and answer what
 * keeps their results once it is read; {@link strike} and {@link board} then answer them, throwing the
 * read's failure (a lazy read's) when it failed.
 */
class StrikeBoardLookup {
  readonly #strikes = new Map<string, Kept<OptionStrike>>();
  readonly #boards = new Map<string, Kept<OptionBoard>>();

  /** Adds the reads of `wanted` not answered yet, each once, naming what it is for; answers the keeper of their results. */
  #add<W extends { market: LyraMarket; for?: string }, T>(
    kept: Map<string, Kept<T>>,
    wanted: Iterable<W>,
    key: (w: W) => string,
    add: (w: W, forText: string) => Read<T>,
  ): (results: readonly unknown[]) => void {
    const pending = new Map<string, { w: W; for: string[] }>();
    for (const w of wanted) {
      const k = key(w);
      if (kept.get(k)?.ok) continue;
      let p = pending.get(k);
      if (!p) {
        p = { w, for: [] };
        pending.set(k, p);
      }
      if (w.for !== undefined && !p.for.includes(w.for)) p.for.push(w.for);
    }
    const reads = [...pending].map(([k, p]) => [k, add(p.w, forItems(p.for))] as const);
    return (results) => {
      for (const [k, read] of reads) {
        try {
          kept.set(k, { ok: true, value: read(results) });
        } catch (error) {
          kept.set(k, { ok: false, error });
        }
      }
    };
  }

  addStrikes(
    batch: ReadBatch,
    wanted: Iterable<{ market: LyraMarket; strikeId: bigint; for?: string }>,
    opts: { lazy?: boolean } = {},
  ): (results: readonly unknown[]) => void {
    return this.#add(
      this.#strikes,
      wanted,
      (w) => `${w.market.optionMarket}|${w.strikeId}`,
      (w, forText) =>
        batch.add(
          {
            address: w.market.optionMarket,
            abi: optionMarketAbi,
            functionName: 'getStrike',
            args: [w.strikeId],
          },
          `getStrike(${w.strikeId}) of the ${w.market.underlying} market${forText}`,
          opts,
        ),
    );
  }

  addBoards(
    batch: ReadBatch,
    wanted: Iterable<{ market: LyraMarket; boardId: bigint; for?: string }>,
    opts: { lazy?: boolean } = {},
  ): (results: readonly unknown[]) => void {
    return this.#add(
      this.#boards,
      wanted,
      (w) => `${w.market.optionMarket}|${w.boardId}`,
      (w, forText) =>
        batch.add(
          {
            address: w.market.optionMarket,
            abi: optionMarketAbi,
            functionName: 'getOptionBoard',
            args: [w.boardId],
          },
          `getOptionBoard(${w.boardId}) of the ${w.market.underlying} market${forText}`,
          opts,
        ),
    );
  }

  static #take<T>(kept: Kept<T> | undefined, what: string): T {
    if (!kept) throw new RangeError(`${what} was not read`);
    if (!kept.ok) throw kept.error;
    return kept.value;
  }

  strike(m: LyraMarket, strikeId: bigint): OptionStrike {
    return StrikeBoardLookup.#take(
      this.#strikes.get(`${m.optionMarket}|${strikeId}`),
      `strike ${strikeId} of the ${m.underlying} market`,
    );
  }

  board(m: LyraMarket, boardId: bigint): OptionBoard {
    return StrikeBoardLookup.#take(
      this.#boards.get(`${m.optionMarket}|${boardId}`),
      `board ${boardId} of the ${m.underlying} market`,
    );
  }
}

export interface LyraVenueDeps {
  ctx: EvmContext;
  store?: OrderRecordStore<LyraOrderRecord>;
  clock?: Clock;
}

/**
 * Lyra v1 (Newport)-style options AMM over viem. Boards and strikes map to canonical option ids
 * (`ETH-USD:OPT:YYYYMMDD:STRIKE:C`); positions come from the OptionToken, Greeks from the
 * OptionGreekCache (compared with local Black-Scholes by {@link compareGreeks}); quotes simulate the
 * trade with eth_call; trades open/close positions within min/max total cost bounds and fill in their
 * transaction. The AMM has no client order id: the mapping client order id → tx hash → position is
 * written to a durable store before broadcast and reconciled from the chain after a timeout or restart.
 * Buying closes a short that covers the size, else opens/adds a long; selling mirrors it (shorts are
 * cash-collateralized in the quote asset).
 */
export class LyraVenue implements VenueAdapter {
  readonly kind = 'lyra';
  /** {@link LYRA_CAPABILITIES}, with the collateral named as the params name the quote asset (`quoteSymbol`). */
  readonly capabilities: VenueCapabilities;
  readonly chain: ChainId;
  readonly sender: TxSender;
  private readonly ctx: EvmContext;
  private readonly p: LyraVenueParams;
  private readonly store: OrderRecordStore<LyraOrderRecord>;
  /** The store this adapter opened (no `deps.store`): its `close` closes it. */
  readonly #openedStore: OrderRecordStore<LyraOrderRecord> | undefined;
  #closed = false;
  private readonly clock: Clock;
  private readonly spendCaps: SpendCaps;
  private readonly errors: VenueErrorMapper;
  /**
   * Classifies and words this venue's reverts (quote symbol and decimals from its params; the underlying's
   * symbol when the venue has one market). A simulation classifies with its own market's (`classifyByUnderlying`).
   */
  private readonly classify: RevertClassifier;
  /** Per underlying: the classifier of a revert known to come from that market (base amounts in its symbol). */
  private readonly classifyByUnderlying = new Map<string, RevertClassifier>();

  constructor(
    readonly id: string,
    params: LyraVenueParamsInput,
    deps: LyraVenueDeps,
  ) {
    this.p = LyraVenueParams.parse(params);
    this.ctx = deps.ctx;
    this.chain = deps.ctx.chainId;
    this.clock = deps.clock ?? systemClock;
    this.errors = venueErrorMapper(id, optionMarketAbi, deps.ctx);
    const only = this.p.markets.length === 1 ? this.p.markets[0] : undefined;
    this.capabilities = { ...LYRA_CAPABILITIES, collateral: [this.p.quoteSymbol] };
    this.classify = lyraRevertClassifier({
      quoteSymbol: this.p.quoteSymbol,
      quoteDecimals: this.p.quoteDecimals,
      ...(only ? { baseSymbol: only.underlying } : {}),
    });
    for (const m of this.p.markets) {
      this.classifyByUnderlying.set(
        m.underlying,
        lyraRevertClassifier({
          quoteSymbol: this.p.quoteSymbol,
          quoteDecimals: this.p.quoteDecimals,
          baseSymbol: m.underlying,
        }),
      );
    }
    this.sender = createVenueTxSender({
      ctx: deps.ctx,
      abi: optionMarketAbi,
      classify: this.classify,
      maxBaseFeeGwei: this.p.maxBaseFeeGwei,
      maxFeePerGasGwei: this.p.maxFeePerGasGwei,
      receiptTimeoutSeconds: this.p.receiptTimeoutSeconds,
      clock: this.clock,
    });
    // opened last: a failure after it closes it again, not leaving the file locked
    this.store = deps.store ?? defaultOrderStore(this.p.dataDir, id);
    this.#openedStore = deps.store ? undefined : this.store;
    try {
      this.spendCaps = new SpendCaps({
        venue: id,
        caps: {
          [this.p.quoteAsset.toLowerCase()]: BigInt(
            new Dec(this.p.spendCapPerDay).mul(new Dec(10).pow(this.p.quoteDecimals)).toFixed(0),
          ),
        },
        clock: this.clock,
        // The window is rebuilt from the spends recorded on the order records (survives a restart).
        records: this.store,
      });
    } catch (err) {
      try {
        void Promise.resolve(this.#openedStore?.close?.()).catch(() => undefined);
      } catch {
        // the build's own error is the one to report
      }
      throw err;
    }
  }

  /**
   * Closes the order store the adapter opened ({@link defaultOrderStore}: the file's lock is released
   * once no other adapter of this process has it open); a store passed in `deps.store` is the caller's
   * and stays open. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#openedStore?.close?.();
  }

  private get account(): Address {
    return this.ctx.account.address;
  }

  /**
   * Boards seen listed by this adapter (`strikes`), by `underlying|YYYYMMDD`: a settled board leaves
   * `getLiveBoards`, and one the account holds no position on could not be found again for its
   * settlement price (a dry run's simulated position on it, say). Boards listed before this process
   * started and settled since are not known.
   */
  readonly #boardsSeen = new Map<
    string,
    Map<string, { market: LyraMarket; boardId: bigint; expiryMs: number }>
  >();

  #rememberBoard(market: LyraMarket, boardId: bigint, expiryMs: number): void {
    const key = `${market.underlying}|${msToExpiryDate(expiryMs)}`;
    let boards = this.#boardsSeen.get(key);
    if (!boards) {
      boards = new Map();
      this.#boardsSeen.set(key, boards);
    }
    boards.set(`${market.optionMarket}|${boardId}`, { market, boardId, expiryMs });
  }

  /** Reads a batch of views in Multicall3 calls (one round trip; see {@link readBatch}). */
  #readAll(batch: ReadBatch): Promise<unknown[]> {
    return readBatch(
      { venue: this.id, ctx: this.ctx, errors: this.errors, multicall3: this.p.multicall3 },
      batch,
    );
  }

  /**
   * Tradable boards and strikes, read fresh (boards are listed and expire over time). Lyra v1 keeps a board
   * in `getLiveBoards` after its expiry until `settleExpiredBoard`; such a board no longer trades and is
   * left out here (positions on it are still read, see {@link heldPositions}). Three batched reads
   * (live boards of every market with the latest block, the boards, their strikes), whatever the number
   * of boards and strikes. Each market's `instrument.expiryMs` is its board's expiry to the second, which
   * the id (a date) does not hold; an id several boards list names the one of them the id stands for
   * ({@link optionId}).
   */
  private async strikes(): Promise<Map<string, StrikeEntry>> {
    const c = this.ctx.publicClient;
    const out = new Map<string, StrikeEntry>();
    const liveBatch = new ReadBatch();
    const liveOf = this.p.markets.map((m) =>
      liveBatch.add(
        { address: m.optionMarket, abi: optionMarketAbi, functionName: 'getLiveBoards' },
        `getLiveBoards of the ${m.underlying} market`,
      ),
    );
    const [live, block] = await Promise.all([
      this.#readAll(liveBatch),
      this.errors.read(() => c.getBlock({ blockTag: 'latest' })),
    ]);
    const chainSec = block.timestamp;
    const boardBatch = new ReadBatch();
    // the first listed first: an id two boards on one date share names the first one (see optionId)
    const boards = this.p.markets.flatMap((m, i) =>
      [...(liveOf[i]?.(live) ?? [])].sort(ascending).map((boardId) => ({
        market: m,
        boardId,
        read: boardBatch.add(
          { address: m.optionMarket, abi: optionMarketAbi, functionName: 'getOptionBoard', args: [boardId] },
          `getOptionBoard(${boardId}) of the ${m.underlying} market`,
        ),
      })),
    );
    const boardResults = await this.#readAll(boardBatch);
    const strikeBatch = new ReadBatch();
    const strikes = [];
    for (const b of boards) {
      const board = b.read(boardResults);
      const expiryMs = Number(board.expiry) * 1000;
      this.#rememberBoard(b.market, b.boardId, expiryMs);
      if (board.expiry <= chainSec) continue; // expired, awaiting settlement
      for (const strikeId of board.strikeIds)
        strikes.push({
          ...b,
          frozen: board.frozen,
          expiryMs,
          strikeId,
          read: strikeBatch.add(
            {
              address: b.market.optionMarket,
              abi: optionMarketAbi,
              functionName: 'getStrike',
              args: [strikeId],
            },
            `getStrike(${strikeId}) of the ${b.market.underlying} market`,
          ),
        });
    }
    const strikeResults = await this.#readAll(strikeBatch);
    for (const { market: m, boardId, frozen, expiryMs, strikeId, read } of strikes) {
      const s = read(strikeResults);
      const strike = canonicalStrike(new Dec(s.strikePrice.toString()).div(1e18).toFixed());
      const onHour = expiryMs === idExpiryMs(expiryMs);
      for (const isCall of [true, false]) {
        const id = formatInstrumentId({
          kind: 'option',
          base: m.underlying,
          quote: 'USD',
          expiryDate: msToExpiryDate(expiryMs),
          strike,
          optionType: isCall ? 'call' : 'put',
        });
        // another board on the date lists it: the id names the one at its instant, else the first (optionId)
        const had = out.get(id);
        if (had && (had.onHour || !onHour)) continue;
        out.set(id, {
          market: m,
          strikeId,
          boardId,
          expiryMs,
          onHour,
          strike: Number(strike),
          strikePriceE18: s.strikePrice,
          isCall,
          info: {
            // the board's own expiry (any time of day), not the id's 08:00 UTC
            instrument: { ...instrumentMeta(id, { settlementCurrency: this.p.quoteSymbol }), expiryMs },
            venueSymbol: `${m.optionMarket}:${strikeId}:${isCall ? 'C' : 'P'}`,
            minSizeBase: this.p.minSizeBase,
            sizeStepBase: this.p.sizeStepBase,
            priceTickUsd: '0.000001',
            active: !frozen,
          },
        });
      }
    }
    return out;
  }

  private async strikeFor(instrument: string, clientOrderId?: string): Promise<StrikeEntry> {
    const e = (await this.strikes()).get(instrument);
    if (!e)
      throw new InvalidOrderError({
        venue: this.id,
        message: `instrument ${instrument} is not listed on a live board`,
        ...(clientOrderId ? { clientOrderId } : {}),
      });
    return e;
  }

  async loadMarkets(): Promise<MarketInfo[]> {
    return [...(await this.strikes()).values()].map((s) => s.info);
  }

  /** The market's reference spot (quote per base, 18 decimals); trades use the adapter's min/max prices. */
  private spotE18(m: LyraMarket): Promise<bigint> {
    return this.errors.read(() =>
      this.ctx.publicClient.readContract({
        address: m.exchangeAdapter,
        abi: exchangeAdapterAbi,
        functionName: 'getSpotPriceForMarket',
        args: [m.optionMarket, PRICE_TYPE.REFERENCE],
      }),
    );
  }

  /**
   * Cached price, Greeks and vol of strikes (AMM side), in the order given. The cache prices at the board's
   * GWAV iv × the strike's GWAV skew over the greek cache's option-value periods, read here the same way.
   * Two batched reads whatever the number of strikes ({@link readBatch}): each market's GWAV periods and
   * reference spot with each strike's cache (the latest block alongside), then each board's iv GWAV and
   * each strike's skew GWAV; a strike, board or market several entries share is read once. Every entry is
   * answered or the whole read throws (a read that failed is named, never left out).
   */
  private async ammViews(entries: readonly StrikeEntry[]): Promise<AmmView[]> {
    if (entries.length === 0) return [];
    const c = this.ctx.publicClient;
    const idsOf = new Map<string, string[]>();
    const named = (key: string, id: string) => {
      const ids = idsOf.get(key) ?? [];
      if (!ids.includes(id)) ids.push(id);
      idsOf.set(key, ids);
    };
    for (const e of entries) {
      const id = e.info.instrument.id;
      named(e.market.optionMarket, id);
      named(`${e.market.optionMarket}|b${e.boardId}`, id);
      named(`${e.market.optionMarket}|s${e.strikeId}`, id);
    }
    // what a read is for, named in the error when it fails: the instruments that need it
    const forIds = (key: string) => {
      const ids = idsOf.get(key) ?? [];
      return ` for ${ids.slice(0, 4).join(', ')}${ids.length > 4 ? `, … (${ids.length})` : ''}`;
    };
    const first = new ReadBatch();
    const markets = new Map<string, { params: Read<GreekCacheParams>; spot: Read<bigint> }>();
    const caches = new Map<string, Read<StrikeCache>>();
    for (const e of entries) {
      const m = e.market;
      if (!markets.has(m.optionMarket))
        markets.set(m.optionMarket, {
          params: first.add(
            { address: m.greekCache, abi: greekCacheAbi, functionName: 'getGreekCacheParams' },
            `getGreekCacheParams of the ${m.underlying} greek cache${forIds(m.optionMarket)}`,
          ),
          spot: first.add(
            {
              address: m.exchangeAdapter,
              abi: exchangeAdapterAbi,
              functionName: 'getSpotPriceForMarket',
              args: [m.optionMarket, PRICE_TYPE.REFERENCE],
            },
            `getSpotPriceForMarket of the ${m.underlying} market${forIds(m.optionMarket)}`,
          ),
        });
      const sk = `${m.optionMarket}|s${e.strikeId}`;
      if (!caches.has(sk))
        caches.set(
          sk,
          first.add(
            { address: m.greekCache, abi: greekCacheAbi, functionName: 'getStrikeCache', args: [e.strikeId] },
            `getStrikeCache(${e.strikeId})${forIds(sk)}`,
          ),
        );
    }
    const [r1, block] = await Promise.all([
      this.#readAll(first),
      this.errors.read(() => c.getBlock({ blockTag: 'latest' })),
    ]);
    const second = new ReadBatch();
    const ivs = new Map<string, Read<bigint>>();
    const skews = new Map<string, Read<bigint>>();
    for (const e of entries) {
      const m = e.market;
      const gwav = markets.get(m.optionMarket)?.params(r1);
      if (!gwav) throw new RangeError(`no greek cache params read for ${m.underlying}`);
      const bk = `${m.optionMarket}|b${e.boardId}`;
      if (!ivs.has(bk))
        ivs.set(
          bk,
          second.add(
            {
              address: m.greekCache,
              abi: greekCacheAbi,
              functionName: 'getIvGWAV',
              args: [e.boardId, gwav.optionValueIvGWAVPeriod],
            },
            `getIvGWAV(${e.boardId})${forIds(bk)}`,
          ),
        );
      const sk = `${m.optionMarket}|s${e.strikeId}`;
      if (!skews.has(sk))
        skews.set(
          sk,
          second.add(
            {
              address: m.greekCache,
              abi: greekCacheAbi,
              functionName: 'getSkewGWAV',
              args: [e.strikeId, gwav.optionValueSkewGWAVPeriod],
            },
            `getSkewGWAV(${e.strikeId})${forIds(sk)}`,
          ),
        );
    }
    const r2 = await this.#readAll(second);
    const chainMs = Number(block.timestamp) * 1000;
    return entries.map((e) => {
      const m = e.market.optionMarket;
      const spotE18 = markets.get(m)?.spot(r1);
      const cache = caches.get(`${m}|s${e.strikeId}`)?.(r1);
      const ivGwav = ivs.get(`${m}|b${e.boardId}`)?.(r2);
      const skewGwav = skews.get(`${m}|s${e.strikeId}`)?.(r2);
      if (spotE18 === undefined || !cache || ivGwav === undefined || skewGwav === undefined)
        throw new RangeError(`AMM reads of ${e.info.instrument.id} missing from the batch`);
      return ammViewOf(e, { cache, ivGwav, skewGwav, spotE18, chainMs });
    });
  }

  async fetchMarks(instruments?: readonly string[]): Promise<Mark[]> {
    const entries = this.#wanted(await this.strikes(), instruments);
    const views = await this.ammViews(entries.map(([, e]) => e));
    const out: Mark[] = [];
    entries.forEach(([id], i) => {
      const v = views[i] as AmmView;
      // No bid/ask: Lyra v1 quotes no spread on chain, its fees are priced per trade (OptionMarketPricer:
      // option-price, spot-price, vega-utilisation and variance fees); quoteHedge simulates a trade for them.
      const mark: Mark = {
        venue: this.id,
        instrument: id,
        markPriceUsd: v.priceUsd,
        indexPriceUsd: v.spot,
        asOfMs: this.clock.nowMs(),
      };
      if (v.ivDecimal !== undefined) mark.ivDecimal = v.ivDecimal;
      out.push(mark);
    });
    return out;
  }

  /** The listed strikes asked for (all when `instruments` is omitted), in listing order. */
  #wanted(
    all: Map<string, StrikeEntry>,
    instruments: readonly string[] | undefined,
  ): [string, StrikeEntry][] {
    const asked = instruments ? new Set(instruments) : undefined;
    return [...all].filter(([id]) => !asked || asked.has(id));
  }

  /**
   * AMM delta and vega from the greek cache; gamma, theta and rho (not cached by the AMM) from local BSM at
   * the AMM's vol. Only options on a live board before its expiry have Greeks: an instrument asked for that
   * is not listed there (expired, awaiting settlement or settled; unknown) is absent from the answer, as
   * for every call that reads the live boards.
   *
   * A constant number of round trips whatever the number of options (boards and strikes in three batched
   * reads, the Greeks in two; {@link ammViews}): the runtime asks every tick for those of the live options
   * held, within the venue's tick budget. A read of one option that fails fails the whole call (a
   * `RevertedError` naming the reads and the options they were for, or the request's own error), never an
   * answer without that option: the runtime then keeps the venue's last Greeks, compared until stale and
   * listed as stale after that, and logs the failure, whereas an answer without the option would replace
   * the venue's set and silently drop its comparison.
   */
  async fetchGreeks(instruments?: readonly string[]): Promise<VenueGreeks[]> {
    const entries = this.#wanted(await this.strikes(), instruments);
    const views = await this.ammViews(entries.map(([, e]) => e));
    const out: VenueGreeks[] = [];
    entries.forEach(([id, e], i) => {
      const v = views[i] as AmmView;
      const local = this.local(e, v);
      const greeks: VenueGreeks['greeks'] = {
        delta: v.delta,
        gamma: local?.gamma ?? 0,
        vegaPerVolPoint: v.vegaPerVolPoint,
        thetaPerDay: local?.thetaPerDay ?? 0,
        rhoPer1Pct: local?.rhoPer1Pct ?? 0,
      };
      if (v.ivDecimal !== undefined) greeks.ivDecimal = v.ivDecimal;
      out.push({
        instrument: id,
        greeks,
        convention:
          'lyra-v1 OptionGreekCache: delta per unit, stdVega / √(30 / days to expiry) per vol point (GWAV iv × GWAV skew); gamma/theta/rho local BSM',
        asOfMs: this.clock.nowMs(),
      });
    });
    return out;
  }

  private local(e: StrikeEntry, v: { spot: number; ivDecimal: number | undefined; chainMs: number }) {
    if (v.ivDecimal === undefined) return undefined;
    const timeYears = yearFraction(v.chainMs, e.expiryMs);
    if (!(timeYears > 0)) return undefined;
    return bsm({
      type: e.isCall ? 'call' : 'put',
      spot: v.spot,
      strike: e.strike,
      timeYears,
      vol: v.ivDecimal,
      rate: this.p.rate,
    });
  }

  /** Compares the AMM's cached Greeks and price with local Black-Scholes; flags divergence above `greekTolerance`. */
  async compareGreeks(instruments?: readonly string[]): Promise<GreekComparison[]> {
    const entries = this.#wanted(await this.strikes(), instruments);
    const views = await this.ammViews(entries.map(([, e]) => e));
    const out: GreekComparison[] = [];
    entries.forEach(([id, e], i) => {
      const v = views[i] as AmmView;
      const l = this.local(e, v);
      if (!l) return;
      const rel = (a: number, b: number, floor: number) => Math.abs(a - b) / Math.max(Math.abs(b), floor);
      const maxRelDiff = Math.max(
        rel(v.delta, l.delta, 0.01),
        rel(v.vegaPerVolPoint, l.vegaPerVolPoint, 1e-9),
        rel(v.priceUsd, l.price, 1e-9),
      );
      out.push({
        instrument: id,
        ammDelta: v.delta,
        localDelta: l.delta,
        ammVegaPerVolPoint: v.vegaPerVolPoint,
        localVegaPerVolPoint: l.vegaPerVolPoint,
        ammPriceUsd: v.priceUsd,
        localPriceUsd: l.price,
        maxRelDiff,
        diverged: maxRelDiff > this.p.greekTolerance,
      });
    });
    return out;
  }

  /**
   * The canonical option id of a strike of a market at an expiry: `BASE-USD:OPT:YYYYMMDD:STRIKE:C|P`, the
   * UTC date of the board's expiry (`@xhedge/core`'s grammar, which holds a date, no time and no board).
   * The rest of xhedge reads an option's expiry from its id, 08:00 UTC on the date ({@link idExpiryMs}: the
   * risk engine's time to expiry, the planner's settlement asks, one settlement price per date), so the
   * adapter opens positions only on boards expiring at that instant: one at another time of day is
   * listed with its exact `expiryMs`, quoted, marked and traded to close, but an order that would open or
   * add to a position on it is refused ({@link plan}); the book would take it to expire at 08:00.
   * Two boards of a market on one UTC date give a strike both list the same id: it names the one expiring
   * at the id's instant, else the first listed (lowest board id, as v1-core numbers boards). Boards that
   * take new positions on one date thus expire at one instant, and a shared id's board is decided by the
   * chain alone, whatever this process saw before. The other board's strike under that id is not listed
   * (its other strikes are, under their own ids); positions on it (opened elsewhere) count under the
   * shared id in `fetchPositions`, and `fetchSettlementPrices` answers an id at the price of the board the
   * account's positions under it are on (README: Instrument ids).
   */
  private optionId(m: LyraMarket, expiryMs: number, strikePriceE18: bigint, isCall: boolean): string {
    return formatInstrumentId({
      kind: 'option',
      base: m.underlying,
      quote: 'USD',
      expiryDate: msToExpiryDate(expiryMs),
      strike: canonicalStrike(new Dec(strikePriceE18.toString()).div(1e18).toFixed()),
      optionType: isCall ? 'call' : 'put',
    });
  }

  /**
   * The account's open positions with their strike and board, on live and expired boards alike: in Lyra v1
   * a position stays ACTIVE after its board expired (and after `settleExpiredBoard` took the board off the
   * live list) until `ShortCollateral.settleOptions` pays it, so it is found from the OptionToken
   * (→ strike → board), not from the live boards. Three batched reads whatever the number of positions
   * (every market's positions, their strikes, their boards; a strike or board several positions share is
   * read once; with the strikes, each base-collateralised short call's settlement parameters, for
   * {@link HeldPosition.baseBackE18}). A read that fails fails the call, naming the read and the positions
   * it was for: a position is never left out (the book's delta would move by it).
   */
  private async heldPositions(lookup = new StrikeBoardLookup()): Promise<HeldPosition[]> {
    const owned = await this.ownerPositions();
    const forPosition = (p: { positionId: bigint }) => `position ${p.positionId}`;
    const strikes = new ReadBatch();
    const keepStrikes = lookup.addStrikes(
      strikes,
      owned.map((p) => ({ market: p.market, strikeId: p.strikeId, for: forPosition(p) })),
    );
    const settlementOf = this.#addBaseSettlements(strikes, owned);
    const strikeResults = await this.#readAll(strikes);
    keepStrikes(strikeResults);
    const baseBack = settlementOf(strikeResults);
    const boards = new ReadBatch();
    const keepBoards = lookup.addBoards(
      boards,
      owned.map((p) => ({
        market: p.market,
        boardId: lookup.strike(p.market, p.strikeId).boardId,
        for: forPosition(p),
      })),
    );
    keepBoards(await this.#readAll(boards));
    return owned.map((p) => {
      const strike = lookup.strike(p.market, p.strikeId);
      const expiryMs = Number(lookup.board(p.market, strike.boardId).expiry) * 1000;
      const back = baseBack.get(p);
      return {
        ...p,
        boardId: strike.boardId,
        expiryMs,
        instrument: this.optionId(p.market, expiryMs, strike.strikePrice, isCallType(p.optionType)),
        ...(back === undefined ? {} : { baseBackE18: back }),
      };
    });
  }

  /**
   * Adds to `batch` the settlement parameters (`OptionMarket.getSettlementParameters`) of the strikes of the
   * base-collateralised short calls among `owned`, each strike once; answers, from the batch's results,
   * what settlement returns to each such position whose board is settled ({@link baseReturnedE18}).
   * Positions on a board not settled yet, and every other position, have no entry.
   */
  #addBaseSettlements<P extends OwnedPosition>(
    batch: ReadBatch,
    owned: readonly P[],
  ): (results: readonly unknown[]) => Map<P, bigint> {
    const reads = new Map<string, Read<readonly [bigint, bigint, bigint, bigint]>>();
    const shorts = owned.filter((p) => p.optionType === OPTION_TYPE.SHORT_CALL_BASE);
    for (const p of shorts) {
      const k = `${p.market.optionMarket}|${p.strikeId}`;
      if (reads.has(k)) continue;
      const of = shorts.filter((q) => q.market === p.market && q.strikeId === p.strikeId);
      reads.set(
        k,
        batch.add(
          {
            address: p.market.optionMarket,
            abi: optionMarketAbi,
            functionName: 'getSettlementParameters',
            args: [p.strikeId],
          },
          `getSettlementParameters(${p.strikeId}) of the ${p.market.underlying} market${forItems(of.map((q) => `position ${q.positionId}`))}`,
        ),
      );
    }
    return (results) => {
      const out = new Map<P, bigint>();
      for (const p of shorts) {
        const read = reads.get(`${p.market.optionMarket}|${p.strikeId}`);
        if (!read) throw new RangeError(`settlement parameters of strike ${p.strikeId} were not read`);
        const [, priceAtExpiry, strikeToBaseReturned] = read(results);
        if (priceAtExpiry !== 0n) out.set(p, baseReturnedE18(p.collateral, p.amount, strikeToBaseReturned));
      }
      return out;
    };
  }

  /**
   * Settlement prices of expired options. Lyra v1 fixes one price per board when the board is settled
   * (`settleExpiredBoard`, open to anyone once it has expired) and keeps it in
   * `OptionMarket.boardToPriceAtExpiry(boardId)`, 0 until then. The chain lists no settled boards
   * (`getLiveBoards` drops them), so the boards are found from the account's open positions (OptionToken
   * → strike → board, {@link heldPositions}), from the boards this adapter has seen listed (a board
   * is listed until it is settled, also after its expiry) and from the positions of the adapter's own
   * filled orders in its durable order store ({@link boardsOfOwnOrders}: a restarted adapter still finds
   * a board settled, and its positions paid out, while it was down): an instrument on no such board, on a
   * board not settled yet, or not a strike of its board is absent. The price is exact (18 decimals of the quote asset, taken as
   * USD). Lyra keeps no time with it: `fixedAtMs` is the board's expiry, or the instant the id stands for
   * (08:00 UTC on its date) when the board expired before it: the price was fixed by `settleExpiredBoard`
   * at or after the board's expiry, and xhedge takes the instrument's expiry, and checks a settlement price
   * against it, from the id.
   *
   * Where several boards on one date list an id's strike, the id is answered from the board the
   * account's positions under it are on (the positions it holds, else the positions its own orders on the
   * id traded), else from the board the id names in the listing ({@link optionId}: the one at the id's
   * instant, else the first listed); never from another board when that one is not settled. Each id is
   * decided on its own, from what the chain and the order store say, so a restarted adapter answers as
   * the one that saw every board listed.
   *
   * Batched reads whatever the number of positions, boards and strikes: three for the positions, up to
   * three for the own orders (none when the store holds no filled order on an id asked and not held), one
   * for every board's price with the boards not read yet, one for the strikes of the boards that answer.
   * A read the answer needs that fails fails the call, naming it.
   */
  async fetchSettlementPrices(instruments: readonly string[]): Promise<SettlementPrice[]> {
    // the option ids asked, with their date (`underlying|YYYYMMDD`) and the instant they stand for; ids
    // that do not parse are simply not answered
    const wanted = new Map<string, { expiry: string; idMs: number }>();
    for (const id of instruments) {
      try {
        const m = parseInstrumentId(id);
        if (m.kind === 'option') wanted.set(id, { expiry: `${m.base}|${m.expiryDate}`, idMs: m.expiryMs });
      } catch {}
    }
    if (wanted.size === 0) return [];
    const expiries = new Set([...wanted.values()].map((w) => w.expiry));
    const lookup = new StrikeBoardLookup();
    const out: SettlementPrice[] = [];
    type BoardRef = { market: LyraMarket; boardId: bigint; expiryMs: number };
    const keyOf = (b: BoardRef) => `${b.market.optionMarket}|${b.boardId}`;
    const dateOf = (b: BoardRef) => `${b.market.underlying}|${msToExpiryDate(b.expiryMs)}`;
    // the boards of those dates: those the account holds positions on, those its orders traded, those seen
    // listed; and per id asked, the boards the account's positions under it are on
    const boards = new Map<string, BoardRef>();
    const heldOn = new Map<string, Map<string, BoardRef>>();
    for (const h of await this.heldPositions(lookup)) {
      if (!expiries.has(dateOf(h))) continue;
      boards.set(keyOf(h), h);
      if (!wanted.has(h.instrument)) continue;
      const on = heldOn.get(h.instrument) ?? new Map<string, BoardRef>();
      on.set(keyOf(h), h);
      heldOn.set(h.instrument, on);
    }
    const tradedOn = await this.boardsOfOwnOrders(
      new Set([...wanted.keys()].filter((id) => !heldOn.has(id))),
      lookup,
    );
    for (const b of tradedOn.values()) boards.set(keyOf(b), b);
    for (const e of expiries) for (const [k, b] of this.#boardsSeen.get(e) ?? []) boards.set(k, b);
    const perDate = new Map<string, number>();
    for (const b of boards.values()) perDate.set(dateOf(b), (perDate.get(dateOf(b)) ?? 0) + 1);
    const marketIndex = (m: LyraMarket) => this.p.markets.indexOf(m);
    // the board an id names among several: the one at the id's instant, then markets in params order, then board id
    const onHour = (b: BoardRef) => (b.expiryMs === idExpiryMs(b.expiryMs) ? 0 : 1);
    const preferred = (a: BoardRef, b: BoardRef) =>
      onHour(a) - onHour(b) ||
      marketIndex(a.market) - marketIndex(b.market) ||
      ascending(a.boardId, b.boardId);
    const priceBatch = new ReadBatch();
    const ordered = [...boards.values()]
      .sort((a, b) => marketIndex(a.market) - marketIndex(b.market) || ascending(a.boardId, b.boardId))
      .map((b) => ({
        ...b,
        price: priceBatch.add(
          {
            address: b.market.optionMarket,
            abi: optionMarketAbi,
            functionName: 'boardToPriceAtExpiry',
            args: [b.boardId],
          },
          `boardToPriceAtExpiry(${b.boardId}) of the ${b.market.underlying} market`,
        ),
      }));
    // with the prices, the boards not read yet (seen listed): lazily, only a board that answers needs its own
    const keepBoards = lookup.addBoards(
      priceBatch,
      ordered.map((b) => ({ market: b.market, boardId: b.boardId })),
      { lazy: true },
    );
    const priceResults = await this.#readAll(priceBatch);
    keepBoards(priceResults);
    const priceOf = new Map(ordered.map((b) => [keyOf(b), b.price(priceResults)]));
    const answering = ordered
      // not settled yet: nothing to answer, unless another board on its date would answer its ids
      .filter((b) => priceOf.get(keyOf(b)) !== 0n || (perDate.get(dateOf(b)) ?? 0) >= 2);
    const strikeBatch = new ReadBatch();
    const keepStrikes = lookup.addStrikes(
      strikeBatch,
      answering.flatMap((b) =>
        lookup
          .board(b.market, b.boardId)
          .strikeIds.map((strikeId) => ({ market: b.market, strikeId, for: `board ${b.boardId}` })),
      ),
    );
    keepStrikes(await this.#readAll(strikeBatch));
    // every id of the answering boards, in listing order, with the boards that list it
    const listedOn = new Map<string, BoardRef[]>();
    const idsOf = answering.map((b) => {
      const ids = lookup.board(b.market, b.boardId).strikeIds.flatMap((strikeId) => {
        const s = lookup.strike(b.market, strikeId);
        return [true, false].map((isCall) => this.optionId(b.market, b.expiryMs, s.strikePrice, isCall));
      });
      for (const id of ids) listedOn.set(id, [...(listedOn.get(id) ?? []), b]);
      return { board: b, ids };
    });
    // the board an id is answered from: the account's positions' (held, else traded), else the listing's
    const boardOf = (id: string): BoardRef | undefined => {
      const traded = tradedOn.get(id);
      const from = [...(heldOn.get(id)?.values() ?? (traded ? [traded] : (listedOn.get(id) ?? [])))];
      return from.sort(preferred)[0];
    };
    for (const { board: b, ids } of idsOf) {
      const priceE18 = priceOf.get(keyOf(b)) ?? 0n;
      if (priceE18 === 0n) continue;
      const priceUsd = new Dec(priceE18.toString()).div(UNIT.toString()).toFixed();
      for (const id of ids) {
        const w = wanted.get(id);
        if (!w) continue;
        const named = boardOf(id);
        if (!named || keyOf(named) !== keyOf(b)) continue;
        wanted.delete(id);
        out.push({ instrument: id, priceUsd, fixedAtMs: Math.max(b.expiryMs, w.idMs) });
      }
    }
    return out;
  }

  /**
   * For each id of `ids`, the board the adapter's own filled orders on it traded, from their positions:
   * OptionToken keeps a position's strike after it is closed or settled (only its token is burned), so
   * the board is found after a restart even when it was settled and the position paid out meanwhile (off
   * the live boards, not among the account's positions). The first order in the store whose position is
   * on the order's instrument names the id's board; every id asked is looked up on its own (two boards on
   * one date are each found from the orders on them).
   *
   * The orders' positions, their strikes and their boards are read in three batches (none when no order
   * is left to read), then the orders are gone through in the store's order, as when each was read in
   * turn. The reads are lazy ({@link ReadBatch.add}): those of an order after its id's board was named
   * are not needed, and one that failed fails the call only when an order needs it.
   */
  private async boardsOfOwnOrders(
    ids: ReadonlySet<string>,
    lookup: StrikeBoardLookup,
  ): Promise<Map<string, { market: LyraMarket; boardId: bigint; expiryMs: number }>> {
    const out = new Map<string, { market: LyraMarket; boardId: bigint; expiryMs: number }>();
    const orders: { cid: string; instrument: string; positionId: bigint; base: string }[] = [];
    if (ids.size === 0) return out;
    for (const r of await this.store.list()) {
      const positionId = r.positionId;
      if (
        r.status !== 'filled' ||
        positionId === undefined ||
        !/^[1-9][0-9]*$/.test(positionId) ||
        !ids.has(r.instrument)
      )
        continue;
      let id: ReturnType<typeof parseInstrumentId>;
      try {
        id = parseInstrumentId(r.instrument);
      } catch {
        continue;
      }
      if (id.kind !== 'option') continue;
      orders.push({
        cid: r.clientOrderId,
        instrument: r.instrument,
        positionId: BigInt(positionId),
        base: id.base,
      });
    }
    if (orders.length === 0) return out;
    const marketsOf = (base: string) => this.p.markets.filter((m) => m.underlying === base);
    const positionKey = (m: LyraMarket, positionId: bigint) => `${m.optionPositions}|${positionId}`;
    // each position once (orders adding to one position share it), in every market of the underlying
    const asked = new Map<string, { market: LyraMarket; positionId: bigint; for: string[] }>();
    for (const o of orders)
      for (const m of marketsOf(o.base)) {
        const k = positionKey(m, o.positionId);
        const a = asked.get(k) ?? { market: m, positionId: o.positionId, for: [] };
        a.for.push(`order ${o.cid}`);
        asked.set(k, a);
      }
    const positionBatch = new ReadBatch();
    const positionReads = new Map<string, Read<OptionPosition>>();
    for (const [k, a] of asked)
      positionReads.set(
        k,
        positionBatch.add(
          {
            address: a.market.optionPositions,
            abi: optionTokenAbi,
            functionName: 'getOptionPosition',
            args: [a.positionId],
          },
          `getOptionPosition(${a.positionId}) of the ${a.market.underlying} market's OptionToken${forItems(a.for)}`,
          { lazy: true },
        ),
      );
    const positionResults = await this.#readAll(positionBatch);
    const position = (m: LyraMarket, positionId: bigint): OptionPosition => {
      const read = positionReads.get(positionKey(m, positionId));
      if (!read) throw new RangeError(`position ${positionId} of the ${m.underlying} market was not read`);
      return read(positionResults);
    };
    /** The result, or undefined when its read failed (a lazy read: it fails the call only where it is used). */
    const ifRead = <T>(take: () => T): T | undefined => {
      try {
        return take();
      } catch {
        return undefined;
      }
    };
    const located = [...asked.values()].flatMap((a) => {
      const p = ifRead(() => position(a.market, a.positionId));
      return p && p.positionId !== 0n && p.strikeId !== 0n
        ? [{ market: a.market, strikeId: p.strikeId, for: `position ${a.positionId}` }]
        : [];
    });
    const strikeBatch = new ReadBatch();
    const keepStrikes = lookup.addStrikes(strikeBatch, located, { lazy: true });
    keepStrikes(await this.#readAll(strikeBatch));
    const boardBatch = new ReadBatch();
    const keepBoards = lookup.addBoards(
      boardBatch,
      located.flatMap((l) => {
        const s = ifRead(() => lookup.strike(l.market, l.strikeId));
        return s ? [{ market: l.market, boardId: s.boardId, for: l.for }] : [];
      }),
      { lazy: true },
    );
    keepBoards(await this.#readAll(boardBatch));
    for (const o of orders) {
      if (out.has(o.instrument)) continue;
      for (const m of marketsOf(o.base)) {
        const p = position(m, o.positionId);
        if (p.positionId === 0n || p.strikeId === 0n) continue; // not a position of this market
        const strike = lookup.strike(m, p.strikeId);
        const board = lookup.board(m, strike.boardId);
        const expiryMs = Number(board.expiry) * 1000;
        // the order's instrument, on this market's board (not a position id of another market)
        if (this.optionId(m, expiryMs, strike.strikePrice, isCallType(p.optionType)) !== o.instrument)
          continue;
        out.set(o.instrument, { market: m, boardId: strike.boardId, expiryMs });
        break;
      }
    }
    return out;
  }

  /**
   * The AMM pool's own option delta per market, base units: the opposite of
   * `OptionGreekCache.getGlobalNetDelta`, which is the traders' net delta (the cache's exposures are what
   * users hold, long − short), i.e. the delta the pool hedger buys. Every market's in one batched read.
   */
  async fetchPoolNetDelta(): Promise<Record<string, number>> {
    const batch = new ReadBatch();
    const reads = this.p.markets.map((m) => ({
      underlying: m.underlying,
      read: batch.add(
        { address: m.greekCache, abi: greekCacheAbi, functionName: 'getGlobalNetDelta' },
        `getGlobalNetDelta of the ${m.underlying} greek cache`,
      ),
    }));
    const results = await this.#readAll(batch);
    const out: Record<string, number> = {};
    for (const { underlying, read } of reads) out[underlying] = fromE18(-read(results));
    return out;
  }

  /**
   * The account's ACTIVE positions with an amount (OptionToken), every market's in one batched read. A
   * real OptionToken burns a position's token once closed, settled, liquidated or merged, so it lists
   * only ACTIVE ones; the state is checked anyway, a settled position must never count.
   */
  private async ownerPositions(): Promise<OwnedPosition[]> {
    const batch = new ReadBatch();
    const read = this.#addOwnerPositions(batch);
    return read(await this.#readAll(batch));
  }

  /** Adds every market's `getOwnerPositions` to `batch`; answers the ACTIVE positions with an amount from its results. */
  #addOwnerPositions(batch: ReadBatch): (results: readonly unknown[]) => OwnedPosition[] {
    const reads = this.p.markets.map((m) => ({
      market: m,
      read: batch.add(
        {
          address: m.optionPositions,
          abi: optionTokenAbi,
          functionName: 'getOwnerPositions',
          args: [this.account],
        },
        `getOwnerPositions of the ${m.underlying} market's OptionToken`,
      ),
    }));
    return (results) => {
      const out: OwnedPosition[] = [];
      for (const { market: m, read } of reads) {
        for (const p of read(results)) {
          if (p.state !== POSITION_STATE.ACTIVE || p.amount === 0n) continue;
          out.push({
            market: m,
            positionId: p.positionId,
            strikeId: p.strikeId,
            optionType: p.optionType,
            amount: p.amount,
            collateral: p.collateral,
          });
        }
      }
      return out;
    };
  }

  /**
   * Net size and quote-collateralised shorts' collateral per option, on live boards and on expired boards
   * until the positions are settled ({@link heldPositions}): an expired long is worth its payoff at the
   * board's settlement price and a short's collateral is still locked, so neither may drop out of the
   * book before `ShortCollateral.settleOptions` pays them into the wallet.
   *
   * `marginUsd` is the collateral of the instrument's quote-collateralised shorts (SHORT_CALL_QUOTE,
   * SHORT_PUT_QUOTE), in quote units taken as USD. A base-collateralised short call's collateral
   * (SHORT_CALL_BASE) is coin, not USD: it is reported by {@link fetchBalances} as a balance of the base
   * asset, and is not in `marginUsd`, so the book counts it once, as coin (delta and value at spot). Once
   * its board is settled such a short is no longer an option at all: `settleExpiredBoard` has moved what
   * it owes (strikeToBaseReturned × amount of base) to the pool, and `settleOptions` will return the rest
   * of its collateral, whatever spot does. It is left out here and {@link fetchBalances} reports that
   * rest; kept, its expired short would count the payoff a second time (in USD, with no delta) against
   * the full collateral, and the book's delta would be long by the base it owes.
   *
   * Three batched requests whatever the number of positions ({@link heldPositions}); a read that fails
   * fails the call naming it and the positions it was for, never a book without them.
   */
  async fetchPositions(): Promise<Position[]> {
    const held = await this.heldPositions();
    const now = this.clock.nowMs();
    // per instrument: net size and quote shorts' collateral (18 decimals, held by Lyra, not the wallet)
    const byInstrument = new Map<string, { net: bigint; margin: bigint }>();
    for (const h of held) {
      // a base short on a settled board: only its base is left, a balance (fetchBalances)
      if (h.baseBackE18 !== undefined) continue;
      const agg = byInstrument.get(h.instrument) ?? { net: 0n, margin: 0n };
      if (isLongType(h.optionType)) agg.net += h.amount;
      else {
        agg.net -= h.amount;
        // base collateral is a coin balance (fetchBalances), never USD here
        if (h.optionType !== OPTION_TYPE.SHORT_CALL_BASE) agg.margin += h.collateral;
      }
      byInstrument.set(h.instrument, agg);
    }
    const out: Position[] = [];
    for (const [id, { net, margin }] of byInstrument) {
      if (net === 0n && margin === 0n) continue;
      const pos: Position = {
        venue: this.id,
        chain: this.chain,
        instrument: id,
        sizeBase: fromE18(net),
        settlementCurrency: this.p.quoteSymbol,
        asOfMs: now,
      };
      if (margin > 0n) pos.marginUsd = fromE18(margin);
      out.push(pos);
    }
    return out;
  }

  /**
   * Each market's base token (`OptionMarket.baseAsset`: WETH, WBTC) with its decimals, read once per
   * process (neither changes), by option market.
   */
  #baseTokens: Map<string, { token: Address; decimals: number }> | undefined;

  /**
   * The wallet's quote token (all available) and native gas `ETH`, and one balance per market's base asset
   * ({@link baseCollateralSymbol}): the base the account holds, wherever Lyra has it, until it is moved out
   * of the wallet. `amount` is the sum, exact from its decimals, of
   * - the wallet's balance of the market's base token (`available`): what `ShortCollateral.settleOptions`
   *   returns to a base-collateralised short call (SHORT_CALL_BASE) once its board is settled, and what
   *   lowering such a short's collateral sends back, lands there in that token;
   * - the collateral of each such short not settled yet (live and expired boards alike; 18 decimals, locked
   *   by Lyra, not available);
   * - for such a short whose board is settled but which `settleOptions` has not paid yet: the part of its
   *   collateral settlement returns (collateral − strikeToBaseReturned × amount, {@link baseReturnedE18};
   *   the rest went to the pool when the board settled). Its option leaves {@link fetchPositions}.
   *
   * Base that settlement pays out therefore moves from locked to the wallet within one balance and never
   * leaves the book (it did: the wallet's base token was not read, and the book's delta dropped by the
   * coin returned). The risk engine counts a coin balance as delta of its underlying and values it at
   * spot, so the book's delta and equity agree. A base asset neither in the wallet nor held by a position
   * has no balance.
   *
   * Three requests: every market's positions with the quote balance (and, the first time, each market's
   * base token), the native balance beside them, then each base token's balance (and, the first time,
   * its decimals) with the settlement parameters of the base shorts' strikes. A read that fails fails the
   * call naming it: a balance is never left out.
   */
  async fetchBalances(): Promise<Balance[]> {
    const first = new ReadBatch();
    const ownedOf = this.#addOwnerPositions(first);
    const quoteOf = first.add(
      { address: this.p.quoteAsset, abi: erc20Abi, functionName: 'balanceOf', args: [this.account] },
      `balanceOf the account in the quote token (${this.p.quoteSymbol})`,
    );
    const known = this.#baseTokens;
    const baseAssetOf = known
      ? undefined
      : this.p.markets.map((m) =>
          first.add(
            { address: m.optionMarket, abi: optionMarketAbi, functionName: 'baseAsset' },
            `baseAsset of the ${m.underlying} market`,
          ),
        );
    const [r1, wei] = await Promise.all([
      this.#readAll(first),
      this.errors.read(() => this.ctx.publicClient.getBalance({ address: this.account })),
    ]);
    const owned = ownedOf(r1);
    const quoteUnits = quoteOf(r1);
    // each market's base token, and each token once (markets of one underlying may share it)
    const tokenOf = new Map<LyraMarket, Address>();
    this.p.markets.forEach((m, i) => {
      const t = known ? known.get(m.optionMarket)?.token : baseAssetOf?.[i]?.(r1);
      if (t === undefined) throw new RangeError(`no base token read for the ${m.underlying} market`);
      tokenOf.set(m, t);
    });
    const tokens = new Map<string, { token: Address; symbol: string }>();
    for (const [m, token] of tokenOf)
      if (!tokens.has(token.toLowerCase()))
        tokens.set(token.toLowerCase(), { token, symbol: baseCollateralSymbol(m.underlying) });
    const second = new ReadBatch();
    const walletOf = new Map<string, { units: Read<bigint>; decimals: Read<number> | number }>();
    for (const [k, { token, symbol }] of tokens) {
      const cached = known && [...known.values()].find((x) => x.token.toLowerCase() === k)?.decimals;
      walletOf.set(k, {
        units: second.add(
          { address: token, abi: erc20Abi, functionName: 'balanceOf', args: [this.account] },
          `balanceOf the account in the base token ${token} (${symbol})`,
        ),
        decimals:
          cached ??
          second.add(
            { address: token, abi: erc20Abi, functionName: 'decimals' },
            `decimals of the base token ${token} (${symbol})`,
          ),
      });
    }
    const baseBackOf = this.#addBaseSettlements(second, owned);
    const r2 = await this.#readAll(second);
    const baseBack = baseBackOf(r2);
    const decimalsOf = new Map<string, number>();
    for (const [k, w] of walletOf)
      decimalsOf.set(k, typeof w.decimals === 'number' ? w.decimals : w.decimals(r2));
    if (!known)
      this.#baseTokens = new Map(
        [...tokenOf].map(([m, token]) => [
          m.optionMarket,
          { token, decimals: decimalsOf.get(token.toLowerCase()) as number },
        ]),
      );
    const asOfMs = this.clock.nowMs();
    // per asset, in market order: what the wallet holds, and what Lyra holds for the account (18 decimals)
    const byAsset = new Map<string, { wallet: Dec; locked: bigint }>();
    for (const [k, { symbol }] of tokens) {
      const units = walletOf.get(k)?.units(r2) ?? 0n;
      const amount = new Dec(units.toString()).div(new Dec(10).pow(decimalsOf.get(k) ?? 18));
      const agg = byAsset.get(symbol) ?? { wallet: new Dec(0), locked: 0n };
      byAsset.set(symbol, { ...agg, wallet: agg.wallet.add(amount) });
    }
    for (const p of owned) {
      if (p.optionType !== OPTION_TYPE.SHORT_CALL_BASE) continue;
      const asset = baseCollateralSymbol(p.market.underlying);
      const agg = byAsset.get(asset) ?? { wallet: new Dec(0), locked: 0n };
      byAsset.set(asset, { ...agg, locked: agg.locked + (baseBack.get(p) ?? p.collateral) });
    }
    const quote = Number(
      new Dec(quoteUnits.toString()).div(new Dec(10).pow(this.p.quoteDecimals)).toString(),
    );
    const out: Balance[] = [
      {
        venue: this.id,
        chain: this.chain,
        asset: this.p.quoteSymbol,
        amount: quote,
        available: quote,
        asOfMs,
      },
      {
        venue: this.id,
        chain: this.chain,
        asset: 'ETH',
        amount: Number(new Dec(wei.toString()).div(1e18).toString()),
        asOfMs,
      },
    ];
    for (const [asset, { wallet, locked }] of byAsset) {
      if (wallet.isZero() && locked === 0n) continue;
      out.push({
        venue: this.id,
        chain: this.chain,
        asset,
        amount: Number(wallet.add(new Dec(locked.toString()).div(1e18)).toString()),
        available: Number(wallet.toString()),
        asOfMs,
      });
    }
    return out;
  }

  async fetchFills(opts: { sinceMs?: number; clientOrderId?: string } = {}): Promise<Fill[]> {
    return fillsFromRecords(
      this.id,
      this.store,
      (r) => this.reconcile(r),
      (r) => r.txHash,
      opts,
    );
  }

  /**
   * Chooses open or close, option type and position for a trade (see the class doc). The account may hold
   * several positions of one type on the strike (opened by another front end, or merged elsewhere), and
   * one Lyra trade adjusts one position, never by more than its amount. So a trade closes from the
   * smallest position of the opposite type that covers its whole amount (a position of exactly that size
   * is closed in full; ties go to the lowest position id), and one that opens adds to the largest position
   * of its type (or opens one). A reduce-only order that no single position covers is refused, naming the
   * largest and the total: it would take one trade per position (split the order).
   */
  private async plan(
    e: StrikeEntry,
    side: 'buy' | 'sell',
    amount: bigint,
    reduceOnly: boolean,
    clientOrderId?: string,
  ) {
    const raw = (await this.ownerPositions()).filter(
      (p) => p.market.optionMarket === e.market.optionMarket && p.strikeId === e.strikeId,
    );
    const longType = e.isCall ? OPTION_TYPE.LONG_CALL : OPTION_TYPE.LONG_PUT;
    const shortType = e.isCall ? OPTION_TYPE.SHORT_CALL_QUOTE : OPTION_TYPE.SHORT_PUT_QUOTE;
    type Held = (typeof raw)[number];
    const byAmountThenId = (a: Held, b: Held) =>
      ascending(a.amount, b.amount) || ascending(a.positionId, b.positionId);
    const ofType = (t: number) => raw.filter((p) => p.optionType === t).sort(byAmountThenId);
    const longs = ofType(longType);
    const shorts = ofType(shortType);
    // the largest of a type (the lowest id among equals): what an opening trade adds to
    const largest = (ps: Held[]) => ps.find((p) => p.amount === ps.at(-1)?.amount);
    const long = largest(longs);
    const short = largest(shorts);
    const reducible = side === 'buy' ? shorts : longs;
    const reducing = reducible.find((p) => p.amount >= amount);
    if (reducing) {
      // Lyra v1 sets a short's collateral to setCollateralTo on every trade that leaves it open, closes
      // included (below the minimum reverts); 0 is only allowed, and required, for a full close.
      const rest = reducing.amount - amount;
      const setCollateralTo =
        side === 'buy' && rest > 0n ? await this.shortCollateralTarget(e, shortType, rest) : 0n;
      return {
        open: false,
        optionType: reducing.optionType,
        positionId: reducing.positionId,
        setCollateralTo,
        isBuy: side === 'buy',
        collateralIn: setCollateralTo > reducing.collateral ? setCollateralTo - reducing.collateral : 0n,
      } as const;
    }
    if (reduceOnly) {
      const kind = side === 'buy' ? 'short' : 'long';
      const size = (v: bigint) => formatUnits(v, 18);
      const total = reducible.reduce((n, p) => n + p.amount, 0n);
      const top = reducible[reducible.length - 1];
      const held =
        top === undefined
          ? `there is no open ${kind} position on this strike`
          : reducible.length === 1
            ? `the open ${kind} position is ${size(top.amount)}`
            : `the largest open ${kind} position is ${size(top.amount)} of ${size(total)} in ${reducible.length} ` +
              `positions, and a Lyra trade closes from one position${total >= amount ? ' (split the order)' : ''}`;
      throw new InvalidOrderError({
        venue: this.id,
        message: `reduce-only ${side} of ${size(amount)} is larger than it may close: ${held}`,
        ...(clientOrderId ? { clientOrderId } : {}),
      });
    }
    if (!e.onHour) {
      const id = e.info.instrument.id;
      throw new InvalidOrderError({
        venue: this.id,
        message:
          `${side} of ${formatUnits(amount, 18)} ${id} would open or add to a position on board ${e.boardId}, ` +
          `which expires at ${new Date(e.expiryMs).toISOString()}, not at ${new Date(idExpiryMs(e.expiryMs)).toISOString()} ` +
          `(${String(EXPIRY_HOUR_UTC).padStart(2, '0')}:00 UTC, the instant the id stands for: ids hold a date, no time); ` +
          'the book would price it to the wrong expiry, so only orders that close a position are sent on it',
        ...(clientOrderId ? { clientOrderId } : {}),
      });
    }
    if (side === 'buy')
      return {
        open: true,
        optionType: longType,
        positionId: long?.positionId ?? 0n,
        setCollateralTo: 0n,
        isBuy: true,
        collateralIn: 0n,
      } as const;
    const target = await this.shortCollateralTarget(e, shortType, (short?.amount ?? 0n) + amount);
    const collateralIn = target > (short?.collateral ?? 0n) ? target - (short?.collateral ?? 0n) : 0n;
    return {
      open: true,
      optionType: shortType,
      positionId: short?.positionId ?? 0n,
      setCollateralTo: target,
      isBuy: false,
      collateralIn,
    } as const;
  }

  /**
   * Collateral to hold for a short of `amount` (18 decimals): the greek cache's minimum at the reference
   * spot × the buffer (the trade checks it at the adapter's min or max price, which the buffer covers).
   */
  private async shortCollateralTarget(e: StrikeEntry, shortType: number, amount: bigint): Promise<bigint> {
    const spotE18 = await this.spotE18(e.market);
    const minC = await this.errors.read(() =>
      this.ctx.publicClient.readContract({
        address: e.market.greekCache,
        abi: greekCacheAbi,
        functionName: 'getMinCollateral',
        args: [shortType, e.strikePriceE18, BigInt(e.expiryMs / 1000), spotE18, amount],
      }),
    );
    return (minC * BigInt(Math.round(this.p.shortCollateralBuffer * 1000))) / 1000n;
  }

  private tradeData(
    e: StrikeEntry,
    plan: Awaited<ReturnType<LyraVenue['plan']>>,
    amount: bigint,
    minTotalCost: bigint,
    maxTotalCost: bigint,
  ): Hex {
    return encodeFunctionData({
      abi: optionMarketAbi,
      functionName: plan.open ? 'openPosition' : 'closePosition',
      args: [
        {
          strikeId: e.strikeId,
          positionId: plan.positionId,
          iterations: BigInt(this.p.iterations),
          optionType: plan.optionType,
          amount,
          setCollateralTo: plan.setCollateralTo,
          minTotalCost,
          maxTotalCost,
          referrer: '0x0000000000000000000000000000000000000000',
        },
      ],
    });
  }

  /** Simulates the trade (eth_call, allowance overridden when its slot is known) → total cost and fee, 18 decimals. */
  private async simulate(
    e: StrikeEntry,
    plan: Awaited<ReturnType<LyraVenue['plan']>>,
    amount: bigint,
    clientOrderId?: string,
  ) {
    const data = this.tradeData(e, plan, amount, 0n, maxUint256);
    const stateOverride =
      this.p.quoteAllowanceSlot === undefined
        ? undefined
        : [
            {
              address: this.p.quoteAsset,
              stateDiff: [
                {
                  slot: keccak256(
                    encodeAbiParameters(
                      [{ type: 'address' }, { type: 'bytes32' }],
                      [
                        e.market.optionMarket,
                        keccak256(
                          encodeAbiParameters(
                            [{ type: 'address' }, { type: 'uint256' }],
                            [this.account, BigInt(this.p.quoteAllowanceSlot)],
                          ),
                        ),
                      ],
                    ),
                  ),
                  value: `0x${'f'.repeat(64)}` as Hex,
                },
              ],
            },
          ];
    try {
      const { data: ret } = await this.ctx.publicClient.call({
        account: this.account,
        to: e.market.optionMarket,
        data,
        ...(stateOverride ? { stateOverride } : {}),
      });
      const r = decodeFunctionResult({
        abi: optionMarketAbi,
        functionName: plan.open ? 'openPosition' : 'closePosition',
        data: ret ?? '0x',
      });
      return { totalCost: r.totalCost, totalFee: r.totalFee };
    } catch (err) {
      throw toVenueError(err, {
        venue: this.id,
        abi: optionMarketAbi,
        classify: this.classifyByUnderlying.get(e.market.underlying) ?? this.classify,
        secrets: this.ctx.secrets,
        revertOutcome: 'not-sent',
        ...(clientOrderId ? { clientOrderId } : {}),
      });
    }
  }

  /**
   * Simulates the trade (eth_call) for its premium and fee. `expectedPriceUsd` is the premium per unit,
   * the price the fill will report and the one a limit price bounds; `feeUsd` is the fee charged apart
   * (paid on top of a buy's premium, taken off a sell's), so a limit at `expectedPriceUsd` passes in the
   * state quoted, whatever the fee (see `costBounds`). `lockedCollateralUsd` is the collateral the
   * order would post, from the same plan placeOrder sends: where the trade leaves a short open (a sell
   * opening or adding to one, a partial buy-back), its `setCollateralTo` (the greek cache's
   * `getMinCollateral` at the reference spot × `shortCollateralBuffer`) less what the short already holds,
   * never below 0; 0 otherwise (a long bought or sold, a short closed).
   */
  async quoteHedge(input: QuoteRequest): Promise<HedgeQuote> {
    const req = parseVenueRequest(QuoteRequest, input, this.id);
    const e = await this.strikeFor(req.instrument);
    const amount = toE18(req.sizeBase);
    const plan = await this.plan(e, req.side, amount, req.reduceOnly);
    const sim = await this.simulate(e, plan, amount);
    const [v] = await this.ammViews([e]);
    if (!v) throw new RangeError(`no AMM view of ${req.instrument}`);
    const size = fromE18(amount);
    const fee = fromE18(sim.totalFee);
    // Lyra's total cost is premium + fee on a buy, premium − fee on a sell (OptionMarketPricer.getTradeResult).
    const premium = plan.isBuy ? sim.totalCost - sim.totalFee : sim.totalCost + sim.totalFee;
    const expected = fromE18(premium) / size;
    const cost = await this.sender
      .estimateCost(
        { to: e.market.optionMarket, data: this.tradeData(e, plan, amount, 0n, maxUint256) },
        this.p.gasAssetUsd,
        BigInt(this.p.tradeGasLimit),
      )
      .catch((err: unknown) => {
        throw this.errors.wrap(err);
      });
    const impactUsd = Math.abs(expected - v.priceUsd) * size;
    return {
      venue: this.id,
      instrument: req.instrument,
      side: req.side,
      requestedSizeBase: req.sizeBase,
      executableSizeBase: req.sizeBase,
      referencePriceUsd: v.priceUsd,
      expectedPriceUsd: expected,
      feeUsd: fee,
      impactUsd,
      gasUsd: cost.totalUsd,
      fundingCarryUsd: 0,
      totalCostUsd: fee + impactUsd + cost.totalUsd,
      expectedLatencyMs: 2000,
      asOfMs: this.clock.nowMs(),
      // What placeOrder pulls for collateral on this plan (its spend cap counts the same amount).
      lockedCollateralUsd: fromE18(plan.collateralIn),
    };
  }

  /**
   * Lyra's slippage bounds (`minTotalCost`/`maxTotalCost`, 18 decimals) for a trade of `amount`.
   * OptionMarket checks them against the total cost, which is premium + fee on a buy and premium − fee
   * on a sell (OptionMarketPricer.getTradeResult); a limit price bounds the premium per unit, the price
   * the fill reports (the fee is apart, in `feeUsd`, as the quote states it). So the limit's premium is
   * widened by the fee the trade is charged, simulated at the latest block (`sim`): in that state the
   * trade passes exactly when its premium per unit is within the limit. The fee is fixed by the chain
   * only when the trade runs; should it fall between the simulation and the trade, a buy's premium may
   * exceed the limit (a sell's fall short of it) by that fall. Without a limit the simulated total cost
   * is moved by `maxSlippageBps`.
   */
  private costBounds(
    isBuy: boolean,
    amount: bigint,
    sim: { totalCost: bigint; totalFee: bigint },
    limitPriceUsd: string | undefined,
  ): { minTotalCost: bigint; maxTotalCost: bigint } {
    if (limitPriceUsd === undefined) {
      const slip = BigInt(Math.round(this.p.maxSlippageBps));
      return isBuy
        ? { minTotalCost: 0n, maxTotalCost: (sim.totalCost * (10_000n + slip)) / 10_000n }
        : { minTotalCost: (sim.totalCost * (10_000n - slip)) / 10_000n, maxTotalCost: maxUint256 };
    }
    // The premium at the limit, rounded toward the safe side (a buy's bound down, a sell's up).
    const perUnit = toE18(limitPriceUsd, isBuy ? 'down' : 'up');
    const premiumAtLimit = isBuy ? (perUnit * amount) / UNIT : ceilDiv(perUnit * amount, UNIT);
    if (isBuy) return { minTotalCost: 0n, maxTotalCost: premiumAtLimit + sim.totalFee };
    // A sale's total cost is never below 0 (the pricer cuts a fee above the premium to the premium, and
    // the simulated fee with it), so a limit at or under the fee bounds nothing more.
    const min = premiumAtLimit > sim.totalFee ? premiumAtLimit - sim.totalFee : 0n;
    return { minTotalCost: min, maxTotalCost: maxUint256 };
  }

  /**
   * The simulation `costBounds` takes the fee from. A limit order whose simulation reverts in a way no
   * classifier knows is bounded by its limit alone (fee 0: a tighter bound than the limit means, never a
   * looser one): without `quoteAllowanceSlot` to override the allowance, the eth_call of a first trade
   * reverts for want of the allowance this order approves only afterwards (the token's own error, which
   * the OptionMarket ABI may not decode). A revert classified (a trade limit, missing funds) or any
   * other failure is thrown: the order would fail the same way on chain.
   */
  private async simulateForBounds(
    e: StrikeEntry,
    plan: Awaited<ReturnType<LyraVenue['plan']>>,
    amount: bigint,
    clientOrderId: string,
    limitPriceUsd: string | undefined,
  ): Promise<{ totalCost: bigint; totalFee: bigint }> {
    try {
      return await this.simulate(e, plan, amount, clientOrderId);
    } catch (err) {
      if (limitPriceUsd === undefined || this.p.quoteAllowanceSlot !== undefined) throw err;
      if (!(err instanceof RevertedError) || err.constructor !== RevertedError) throw err;
      return { totalCost: 0n, totalFee: 0n };
    }
  }

  /**
   * Placements under way, by client order id: a second `placeOrder` with the id waits for the first and
   * then finds its record, rather than sending a second trade while the first (quoting, approving, not
   * yet recorded) is in flight.
   */
  readonly #placing = new OneAtATime();

  async placeOrder(input: OrderRequest): Promise<Order> {
    const req = parseVenueRequest(OrderRequest, input, this.id);
    return this.#placing.run(req.clientOrderId, () => this.placeOnce(req));
  }

  private async placeOnce(req: ReturnType<typeof OrderRequest.parse>): Promise<Order> {
    const cid = req.clientOrderId;
    const existing = await this.store.get(cid);
    if (existing) return this.toOrder(await this.reconcile(existing));
    const e = await this.strikeFor(req.instrument, cid);
    assertOrderBasics(this.id, req, this.p.minSizeBase);
    if (req.limitPriceUsd !== undefined && !new Dec(req.limitPriceUsd).gt(0)) {
      // a bound at or under 0 bounds nothing (a sell) or cannot be sent (a buy's maxTotalCost under 0)
      throw new InvalidOrderError({
        venue: this.id,
        clientOrderId: cid,
        message: `limitPriceUsd ${req.limitPriceUsd} must be greater than 0`,
      });
    }
    const amount = toE18(req.sizeBase);
    const plan = await this.plan(e, req.side, amount, req.reduceOnly, cid);
    const { minTotalCost, maxTotalCost } = this.costBounds(
      plan.isBuy,
      amount,
      await this.simulateForBounds(e, plan, amount, cid, req.limitPriceUsd),
      req.limitPriceUsd,
    );
    // A buy counts its bound (maxTotalCost), not its final cost: the most it may take; on top, the
    // collateral a short (opened, or partly bought back after the market moved) must add. Both are
    // 18-decimal in Lyra; the token moves in its own decimals, each transfer rounded up (a buy's premium
    // and fee go in two: one base unit more), and the spend cap and approval count token base units.
    const d = this.p.quoteDecimals;
    const pull =
      (plan.isBuy ? quoteUnitsUp(maxTotalCost, d) + (d < 18 ? 1n : 0n) : 0n) +
      (plan.collateralIn > 0n ? quoteUnitsUp(plan.collateralIn, d) : 0n);
    const data = this.tradeData(e, plan, amount, minTotalCost, maxTotalCost);
    const record: LyraOrderRecord = newOrderRecord(req, this.clock.nowMs());
    // Held from here (check and reserve in one step); recorded on the order before broadcast.
    const spend = await reserveAndApprove(this.sender, this.spendCaps, {
      token: this.p.quoteAsset,
      spender: e.market.optionMarket,
      amount: pull,
      policy:
        this.p.approval === 'capped' && this.p.approvalCap !== undefined
          ? {
              mode: 'capped',
              capAmount: BigInt(
                new Dec(this.p.approvalCap).mul(new Dec(10).pow(this.p.quoteDecimals)).toFixed(0),
              ),
            }
          : { mode: 'exact' },
      clientOrderId: cid,
      // a close (reduce-only, or a trade against an opposite position it covers) reduces risk: it may go
      // up to the fee cap without room for a replacement under it; an open is refused there (retried later)
      ...(plan.open ? {} : { allowUnreplaceableUnderCap: true }),
    });
    const receipt = await sendRecorded(
      {
        sender: this.sender,
        store: this.store,
        clock: this.clock,
        wrap: (err, id) => this.errors.wrap(err, id),
      },
      record,
      { to: e.market.optionMarket, data },
      spend,
      { allowUnreplaceableUnderCap: !plan.open },
    );
    this.applyReceipt(record, receipt);
    await this.store.put(cid, record);
    return this.toOrder(record);
  }

  private applyReceipt(r: LyraOrderRecord, receipt: TransactionReceipt): void {
    const trade = parseEventLogs({ abi: optionMarketAbi, logs: receipt.logs, eventName: 'Trade' })[0];
    r.updatedAtMs = this.clock.nowMs();
    if (receipt.status !== 'success' || !trade) {
      r.status = 'rejected';
      r.error = 'trade reverted';
      return;
    }
    const t = trade.args.trade;
    if (t.amount === 0n) {
      // only collateral moved (Lyra allows it); the adapter never sends such a trade
      r.status = 'rejected';
      r.error = 'trade filled no amount';
      return;
    }
    // Premium and fee from the pricer's results, one per iteration: `trade.reservedFee` is only the
    // DAO's share of the fee, not what the trader paid.
    let premium = 0n;
    let fee = 0n;
    for (const x of trade.args.tradeResults) {
      premium += x.premium;
      fee += x.totalFee;
    }
    r.status = 'filled';
    r.positionId = trade.args.positionId.toString();
    r.filledSizeBase = new Dec(t.amount.toString()).div(1e18).toFixed();
    r.avgFillPriceUsd = new Dec(premium.toString()).div(t.amount.toString()).toFixed();
    r.feeUsd = fromE18(fee);
  }

  private async reconcile(record: LyraOrderRecord): Promise<LyraOrderRecord> {
    if (TERMINAL_ORDER_STATUSES.has(record.status) || !record.txHash) return record;
    const r = { ...record };
    await applySentTxStatus(
      { sender: this.sender, errors: this.errors, clock: this.clock, spendCaps: this.spendCaps },
      r,
      record.txHash,
      (x, receipt) => this.applyReceipt(x, receipt),
    );
    r.updatedAtMs = this.clock.nowMs();
    await this.store.put(r.clientOrderId, r);
    return r;
  }

  private toOrder(r: LyraOrderRecord): Order {
    return orderFromRecord(this.id, r, r.txHash);
  }

  async getOrderByClientId(clientOrderId: string): Promise<Order | null> {
    const r = await this.store.get(clientOrderId);
    return r ? this.toOrder(await this.reconcile(r)) : null;
  }

  /** Only an unconfirmed trade can be cancelled: its nonce is taken by a 0-value self-transfer. */
  async cancelOrder(clientOrderId: string): Promise<Order> {
    const r0 = await this.store.get(clientOrderId);
    if (!r0)
      throw new OrderNotFoundError({ venue: this.id, clientOrderId, message: `no order ${clientOrderId}` });
    const r = await this.reconcile(r0);
    if (TERMINAL_ORDER_STATUSES.has(r.status) || !r.txHash || r.nonce === undefined) return this.toOrder(r);
    try {
      await replaceByNonce(this.sender, this.store, r, { hash: r.txHash, nonce: r.nonce });
    } catch (err) {
      // The trade may have been mined first (the cancel lost the race): the chain decides; a read that
      // fails leaves the cancel's error standing (the read's failure in its details).
      return this.toOrder(await afterFailedCancel(this.errors, err, clientOrderId, () => this.reconcile(r)));
    }
    return this.toOrder(await this.reconcile(r));
  }

  async health(): Promise<VenueHealth> {
    const t0 = this.clock.nowMs();
    try {
      const block = await this.ctx.publicClient.getBlock({ blockTag: 'latest' });
      const boards = await Promise.all(
        this.p.markets.map((m) =>
          this.ctx.publicClient.readContract({
            address: m.optionMarket,
            abi: optionMarketAbi,
            functionName: 'getLiveBoards',
          }),
        ),
      );
      return {
        ok: true,
        latencyMs: this.clock.nowMs() - t0,
        halted: boards.every((b) => b.length === 0),
        dataAgeMs: 0,
        details: { blockNumber: block.number?.toString() },
      };
    } catch (err) {
      return unreachableHealth(this.clock.nowMs() - t0, this.errors.wrap(err));
    }
  }
}

/** Options of {@link createLyraVenue} beyond the venue config. */
export type CreateLyraVenueDeps = CreateOnChainVenueDeps<LyraOrderRecord>;

/** Builds a `lyra` venue from its operator config (kind `lyra`; params: {@link LyraVenueParams}). */
export function createLyraVenue(venue: EvmVenueConfigLike, deps: CreateLyraVenueDeps = {}): LyraVenue {
  return onChainVenueFromConfig<LyraVenueParamsInput, LyraOrderRecord, LyraVenue>(
    venue,
    deps,
    (id, params, d) => new LyraVenue(id, params, d),
  );
}
