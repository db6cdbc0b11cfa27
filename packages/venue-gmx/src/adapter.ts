import {
  AssetSymbol,
  type Balance,
  type ChainId,
  type Clock,
  Dec,
  type Fill,
  type FundingRate,
  instrumentMeta,
  type Mark,
  type Order,
  type Position,
  systemClock,
  TERMINAL_ORDER_STATUSES,
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
  type RecordedSendDeps,
  type RevertClass,
  readFees,
  replaceByNonce,
  reserveAndApprove,
  SpendCaps,
  sendRecorded,
  type TxSender,
  unreachableHealth,
  type VenueErrorMapper,
  venueErrorMapper,
  walletBalances,
} from '@xhedge/evm';
import {
  type HedgeQuote,
  InvalidOrderError,
  type MarketInfo,
  NotSupportedError,
  OrderNotFoundError,
  OrderRequest,
  QuoteRequest,
  StaleOracleError,
  type VenueAdapter,
  type VenueCapabilities,
  VenueError,
  VenueHaltedError,
  type VenueHealth,
} from '@xhedge/venue';
import {
  type Address,
  encodeFunctionData,
  erc20Abi,
  type Hex,
  type TransactionReceipt,
  zeroAddress,
} from 'viem';
import {
  dataStoreAbi,
  eventEmitterAbi,
  exchangeRouterAbi,
  gmxErrorAbi,
  ORDER_TYPE,
  oracleAbi,
  readerAbi,
} from './abi.ts';
import { createOrderCallData } from './create-order.ts';
import {
  createdOrder,
  executionFeeRefundWei,
  type GmxEvent,
  orderCancelReason,
  orderFillFromEvents,
  parseGmxEvents,
} from './events.ts';
import {
  carryFactorPerSecond30,
  carryUsd,
  fundingRatePerHour,
  type GmxHeldSide,
  type GmxMarketRates,
  heldCarryRatePerHour,
} from './funding.ts';
import {
  applyFactor,
  balanceWasImproved,
  FLOAT_PRECISION,
  GMX_KEYS,
  isMarketDisabledKey,
  maxOpenInterestKey,
  minCollateralFactorKey,
  openInterestInTokensKey,
  openInterestKey,
  orderExecutionGasLimit,
  orderFeatureDisabledKey,
  poolAmountKey,
  positionFeeFactorKey,
  reserveFactorKey,
} from './keys.ts';
import { GmxVenueParams, type GmxVenueParamsInput } from './params.ts';
import { collateralUsd30, unsettledPnlUsd30 } from './position-value.ts';
import { endpointLabel, fetchGmxTickers, fetchGmxTokens, type GmxTokenPrice } from './prices.ts';
import {
  fromUnits,
  fromUsd30,
  gmxPriceToUsd,
  gmxPriceToUsdDecimal,
  toUnits,
  usd30,
  usdToGmxPrice,
} from './units.ts';

/** What the adapter persists per client order id (JSON-safe: bigints as strings). */
export interface GmxOrderRecord extends OnChainOrderRecord {
  /** The GMX order key, once the creating transaction is mined. */
  orderKey?: Hex;
  /**
   * Block of the creating transaction (decimal string, as the record is JSON): execution and cancel
   * events are searched from there on, never from genesis (an unbounded log scan on a real chain).
   */
  orderBlock?: string;
  /**
   * What the creating transaction cost in gas, wei (decimal string): gas used × its effective gas price,
   * plus the L1 data fee a receipt reports on top (OP Stack; on Arbitrum the gas includes it).
   */
  createGasWei?: string;
  /** The execution fee the order was created with (OrderCreated's `executionFee`), wei (decimal string). */
  executionFeeWei?: string;
}

interface MarketEntry {
  info: MarketInfo;
  /**
   * Collateral an increase posts per USD of size (see `collateralFraction`); also the market's
   * `info.initialMarginFraction`, the free collateral routing must find for it.
   */
  collateralFraction: Dec;
  marketToken: Address;
  indexToken: Address;
  longToken: Address;
  shortToken: Address;
  decimals: number;
  symbol: string;
}

export interface GmxVenueDeps {
  ctx: EvmContext;
  /** Durable client order id → order key mapping. @defaultValue a JSON file under params.dataDir */
  store?: OrderRecordStore<GmxOrderRecord>;
  clock?: Clock;
  /** HTTP client for `params.pricesUrl`. @defaultValue the global fetch */
  fetch?: typeof fetch;
}

/** An order of the account still waiting for a keeper, as `Reader.getAccountOrders` reports it. */
export interface GmxWorkingOrder {
  orderKey: Hex;
  /** The client order id, when this adapter's order store knows the key. */
  clientOrderId?: string;
  /** The listed instrument of its market, when listed. */
  instrument?: string;
  market: Address;
  /** `Order.OrderType` (2 MarketIncrease, 4 MarketDecrease, …). */
  orderType: number;
  isLong: boolean;
  /** USD, 30 decimals. */
  sizeDeltaUsd30: bigint;
  /** GMX units (USD per smallest index token unit, 30 decimals). */
  acceptablePrice: bigint;
  executionFeeWei: bigint;
  updatedAtMs: number;
}

/** How long a `params.pricesUrl` request may take. */
const PRICES_TIMEOUT_MS = 10_000;

/**
 * What every GMX venue offers. `collateral` is a placeholder: each venue's `capabilities` name its
 * collateral token by `params.collateralSymbol` or the USD asset of the token's own `symbol()` once that
 * is read (the first call that needs the collateral: markets, balances, positions, orders, fills).
 */
export const GMX_CAPABILITIES: VenueCapabilities = {
  products: ['perp'],
  venueGreeks: false,
  liquidityModel: 'oracle',
  executionMode: 'async-keeper',
  orderTypes: ['market', 'limit'],
  reduceOnly: true,
  cancel: true,
  clientOrderId: 'none',
  // Funding and borrowing accrue by the second (factors per second) and settle on each position change.
  fundingIntervalHours: 1 / 3600,
  collateral: ['USDC'],
  inverseSettlement: false,
  gasAsset: 'ETH',
};

/**
 * The collateral token as the adapter counts it: its decimals, its symbol (what balances, positions and
 * markets name it) and the spend caps in its units.
 */
interface CollateralUnits {
  decimals: number;
  symbol: AssetSymbol;
  spendCaps: SpendCaps;
}

/**
 * Token symbols of USD stablecoins that are no core asset symbol or not the canonical one, by upper-cased
 * symbol, and the USD asset each is: bridged USDC (`USDC.e` on Arbitrum, Avalanche and others; `USDbC`
 * on Base), Tether's USDT0 (`USDT0`, and `USD₮0` as Arbitrum's USDT reports itself after the USDT0
 * migration; `USD₮` too) and bridged `USDT.e`/`DAI.e` (Avalanche). The canonical symbols themselves
 * (USD, USDC, USDT, DAI) in any case are mapped too (`usdc` is USDC).
 */
const USD_SYMBOL_VARIANTS: ReadonlyMap<string, AssetSymbol> = new Map([
  ['USD', 'USD'],
  ['USDC', 'USDC'],
  ['USDT', 'USDT'],
  ['DAI', 'DAI'],
  ['USDC.E', 'USDC'],
  ['USDBC', 'USDC'],
  ['USDT0', 'USDT'],
  ['USD₮0', 'USDT'],
  ['USD₮', 'USDT'],
  ['USDT.E', 'USDT'],
  ['DAI.E', 'DAI'],
]);

/**
 * The USD asset a collateral token's `symbol()` names ({@link USD_SYMBOL_VARIANTS}: `USDC.e` and `USDbC`
 * are USDC, `USD₮0` and `USDT0` USDT), or undefined when it is none of them (then only
 * `params.collateralSymbol` can name it). Exact match after upper-casing: no trimming, no look-alikes.
 */
export function usdCollateralSymbol(tokenSymbol: string): AssetSymbol | undefined {
  return USD_SYMBOL_VARIANTS.get(tokenSymbol.toUpperCase());
}

/** An untrusted string from a token contract, safe to quote in a message (JSON-escaped, at most 40 characters). */
function quoted(text: string): string {
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);
}

/** The two order types the adapter creates, by name (messages) and `Order.OrderType` position. */
function orderTypeOf(increase: boolean): { name: 'MarketIncrease' | 'MarketDecrease'; value: number } {
  return increase
    ? { name: 'MarketIncrease', value: ORDER_TYPE.MarketIncrease }
    : { name: 'MarketDecrease', value: ORDER_TYPE.MarketDecrease };
}

/**
 * The collateral an increase of `sizeDeltaUsd30` (USD, 30 decimals) posts, in token base units:
 * `sizeDeltaUsd30 × fraction` rounded up to a USD-30 unit, then to a token unit (bigint arithmetic from
 * there: no float on the way, whatever the token's decimals).
 */
function collateralUnitsFor(sizeDeltaUsd30: bigint, fraction: Dec, decimals: number): bigint {
  const usd30 = BigInt(new Dec(sizeDeltaUsd30.toString()).mul(fraction).toFixed(0, Dec.ROUND_UP));
  const scale = 10n ** 30n;
  return (usd30 * 10n ** BigInt(decimals) + scale - 1n) / scale;
}

/** A `VenueError` subclass constructor (they all take these parameters; `reason`: RevertedError's). */
type VenueErrorClass = new (p: {
  venue: string;
  message: string;
  outcome: VenueError['outcome'];
  retryable: boolean;
  details?: Record<string, unknown>;
  reason?: string;
  cause?: unknown;
}) => VenueError;

/**
 * A position as `Reader.getAccountPositions` (and `PositionInfo.position`) returns it: the fields the
 * adapter reads. Its `numbers.pendingImpactAmount` (gmx-synthetics ≥ v2.2, signed, index token units:
 * the price impact of the increases, held back and settled pro rata on decreases) is not priced here:
 * equity takes its USD value from `Reader.getAccountPositionInfoList`
 * (`executionPriceResult.proportionalPendingImpactUsd`, see {@link GmxVenue.fetchPositions}).
 */
interface RawGmxPosition {
  addresses: { market: Address; collateralToken: Address };
  numbers: { sizeInUsd: bigint; sizeInTokens: bigint; collateralAmount: bigint };
  flags: { isLong: boolean };
}

/**
 * Headroom over GMX's MIN_COLLATERAL_FACTOR in the collateral an increase posts: GMX takes the position
 * fee (and price impact) out of the collateral before it checks the minimum, so posting exactly the
 * minimum gets the order cancelled by the keeper.
 */
const MIN_COLLATERAL_HEADROOM = 1.25;

/**
 * The collateral an increase posts per USD of size, and the market's `initialMarginFraction`: the
 * larger of 1/`params.leverage` (the operator's leverage) and the market's MIN_COLLATERAL_FACTOR (30
 * decimals, exact: 10^28 → 0.01) with headroom for fees. GMX cancels an increase that leaves the
 * position's collateral, after fees, below that factor of its size (PositionUtils.validatePosition, "min
 * collateral for leverage"); 0 is an unset key (GMX then asks only MIN_COLLATERAL_USD). Reported as
 * what the adapter will post, not the bare factor: routing sizes a leg to the free collateral that
 * fraction needs, so an order never pulls more than routing budgeted. A fraction above 1 (more
 * collateral than notional) cannot be carried: the market is listed inactive, so routing leaves it.
 */
function applyCollateralFraction(e: MarketEntry, factor: bigint, leverage: number): void {
  const min = new Dec(factor.toString()).div(FLOAT_PRECISION.toString()).mul(MIN_COLLATERAL_HEADROOM);
  const byLeverage = new Dec(1).div(leverage);
  e.collateralFraction = Dec.max(min, byLeverage);
  if (e.collateralFraction.gt(1)) {
    e.info.active = false;
    return;
  }
  e.info.initialMarginFraction = e.collateralFraction.toNumber();
}

/** GMX's own test for a position slot that holds nothing (`PositionUtils.validateNonEmptyPosition`). */
function isEmptyPosition(p: RawGmxPosition): boolean {
  return p.numbers.sizeInUsd === 0n && p.numbers.sizeInTokens === 0n && p.numbers.collateralAmount === 0n;
}

/**
 * GMX v2-style perps over viem. Orders go through `ExchangeRouter.multicall([sendWnt, sendTokens,
 * createOrder])` and are executed later by a keeper at the oracle price (acknowledged → filled, or
 * cancelled when `acceptablePrice` is breached). The venue has no client order id: the adapter writes
 * the mapping client order id → tx hash → order key to a durable store before broadcasting and
 * reconciles from it after a timeout or restart. Buying reduces an open short first (when it covers
 * the size), else increases a long by the whole size beside the short (GMX keeps a market's long and
 * short apart, so the increase posts collateral for all of it: a quote's `lockedCollateralUsd`); selling
 * mirrors it. Positions are reported net per market, with
 * the collateral (`marginUsd`) and the P&L by side (`unsettledPnlUsd`) that book equity needs.
 */
/**
 * The venue error class of a decoded revert: gmx-synthetics Errors.sol names (abi.ts upstreamErrorAbi),
 * and the collateral token's own shortfall, a custom error (OpenZeppelin 5's ERC20InsufficientBalance)
 * or, as Arbitrum's native USDC (Circle's FiatToken) reverts, the string "ERC20: transfer amount exceeds
 * balance". Unlisted ones stay RevertedError.
 */
export function classifyGmxRevert(r: Pick<DecodedRevert, 'errorName' | 'reason'>): RevertClass | undefined {
  switch (r.errorName) {
    case 'OrderNotFulfillableAtAcceptablePrice':
      return 'acceptable-price';
    case 'ERC20InsufficientBalance':
      return 'insufficient-funds';
    case 'Error':
      return /transfer amount exceeds balance/i.test(r.reason) ? 'insufficient-funds' : undefined;
    case 'MaxPriceAgeExceeded':
    case 'EmptyPrimaryPrice':
      return 'stale-oracle';
    case 'EmptyOrder':
    case 'EmptyMarket':
    case 'DisabledMarket':
    case 'InvalidPositionMarket':
    case 'EmptyPosition':
      return 'invalid-order';
    default:
      return undefined;
  }
}

export class GmxVenue implements VenueAdapter {
  readonly kind = 'gmx';
  #capabilities: VenueCapabilities = GMX_CAPABILITIES;
  /** {@link GMX_CAPABILITIES}, with `collateral` the collateral token's symbol once it is read. */
  get capabilities(): VenueCapabilities {
    return this.#capabilities;
  }
  readonly chain: ChainId;
  readonly sender: TxSender;
  private readonly ctx: EvmContext;
  private readonly p: GmxVenueParams;
  private readonly store: OrderRecordStore<GmxOrderRecord>;
  /** The store this adapter opened (no `deps.store`): its `close` closes it. */
  readonly #openedStore: OrderRecordStore<GmxOrderRecord> | undefined;
  #closed = false;
  private readonly clock: Clock;
  private readonly errors: VenueErrorMapper;
  private readonly fetchImpl: typeof fetch | undefined;
  private markets: Map<string, MarketEntry> | undefined;
  /**
   * Every listed market whose index token is known, by lowercase market token, with the instrument it
   * is a perp of: positions are valued in all of them (the account may hold several markets of one
   * index, e.g. ETH/USD [WETH-USDC] and [WETH-WETH]), though only one per instrument is traded.
   */
  private valued = new Map<string, { id: string; entry: MarketEntry }>();

  constructor(
    readonly id: string,
    params: GmxVenueParamsInput,
    deps: GmxVenueDeps,
  ) {
    this.p = GmxVenueParams.parse(params);
    this.ctx = deps.ctx;
    this.chain = deps.ctx.chainId;
    this.clock = deps.clock ?? systemClock;
    this.errors = venueErrorMapper(id, gmxErrorAbi, deps.ctx);
    this.fetchImpl = deps.fetch;
    this.sender = createVenueTxSender({
      ctx: deps.ctx,
      abi: gmxErrorAbi,
      classify: classifyGmxRevert,
      maxBaseFeeGwei: this.p.maxBaseFeeGwei,
      maxFeePerGasGwei: this.p.maxFeePerGasGwei,
      receiptTimeoutSeconds: this.p.receiptTimeoutSeconds,
      clock: this.clock,
    });
    // opened last: nothing after it can fail and leave the file locked
    this.store = deps.store ?? defaultOrderStore(this.p.dataDir, id);
    this.#openedStore = deps.store ? undefined : this.store;
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

  #collateral: Promise<CollateralUnits> | undefined;

  /**
   * The collateral token's decimals and symbol, read from the token once (`decimals()`, `symbol()`, in
   * one round; not kept on failure, the next call asks again), the decimals checked against
   * `params.collateralDecimals` when that is set, and the spend caps in those units (`spendCapPerDay`).
   * The symbol is `params.collateralSymbol` when that is set (the token's `symbol()` is then not read),
   * else the USD asset the token's `symbol()` names ({@link usdCollateralSymbol}: USD, USDC, USDT, DAI in
   * any case, and known variants such as `USDC.e`, `USDbC`, `USDT0`, `USD₮0`).
   * A `VENUE_MISCONFIGURED` error names the token when its decimals disagree with the params or are
   * more than 30 (GMX's USD unit), when it answers no `symbol()` (a failed read that is not the
   * network's), and when its symbol is no USD stablecoin the adapter knows (the message says to set
   * `params.collateralSymbol` if it is one): the adapter counts a collateral unit as 1 USD (the
   * collateral an increase posts for its USD size, `marginUsd`, a fill's fee), which for any other token
   * would be wrong by its price. Every read fails with it too (markets, balances, positions), on
   * purpose: the runtime then holds the venue's underlyings rather than hedge on a book it cannot count.
   */
  private collateral(): Promise<CollateralUnits> {
    if (!this.#collateral) {
      this.#collateral = this.readCollateral().catch((err: unknown) => {
        this.#collateral = undefined;
        throw err;
      });
    }
    return this.#collateral;
  }

  private async readCollateral(): Promise<CollateralUnits> {
    const token = this.p.collateralAsset;
    const c = this.ctx.publicClient;
    const named = this.p.collateralSymbol;
    const [read, symbolRead] = await Promise.all([
      this.errors.read(() => c.readContract({ address: token, abi: erc20Abi, functionName: 'decimals' })),
      // params.collateralSymbol names the token: its own symbol() is not asked
      named !== undefined
        ? undefined
        : this.errors
            .read(() => c.readContract({ address: token, abi: erc20Abi, functionName: 'symbol' }))
            .catch((err: unknown) => {
              // a network failure stays what it is (retryable); anything else is the token's answer
              if (err instanceof VenueError && err.retryable) throw err;
              const short = err instanceof VenueError ? err.shortMessage : String(err);
              const why = short.startsWith(`${this.id}: `) ? short.slice(this.id.length + 2) : short;
              throw new VenueError('VENUE_MISCONFIGURED', {
                venue: this.id,
                message: `the collateral token ${token} (params.collateralAsset) answers no ERC-20 symbol(), so its balance cannot be named; if the token is a USD stablecoin, set params.collateralSymbol to the USD asset it is (USD, USDC, USDT, DAI): ${why}`,
                outcome: 'not-sent',
                retryable: false,
                details: { collateralAsset: token },
                cause: err,
              });
            }),
    ]);
    const decimals = Number(read);
    const configured = this.p.collateralDecimals;
    // undefined when the token's symbol is no USD stablecoin the adapter knows
    const symbol = named ?? (symbolRead === undefined ? undefined : usdCollateralSymbol(symbolRead));
    const unnamed = (what: string) =>
      `the collateral token ${token} ${what}: the adapter counts a collateral unit as 1 USD (the collateral an order posts, margin, fees), so it takes only a USD stablecoin (USD, USDC, USDT, DAI, or a known variant such as USDC.e, USDbC, USDT0, USD₮0); if the token is a USD stablecoin, set params.collateralSymbol to the USD asset it is`;
    const wrong =
      configured !== undefined && configured !== decimals
        ? `params.collateralDecimals is ${configured}, but the collateral token ${token} has ${decimals} decimals`
        : !Number.isInteger(decimals) || decimals < 0 || decimals > 30
          ? `the collateral token ${token} has ${read} decimals; GMX amounts need 0 to 30`
          : symbol === undefined
            ? unnamed(
                AssetSymbol.safeParse(symbolRead).success
                  ? `is ${symbolRead}, not a USD stablecoin`
                  : `has the symbol ${quoted(symbolRead ?? '')}, no USD stablecoin symbol the adapter knows`,
              )
            : undefined;
    if (wrong !== undefined || symbol === undefined)
      throw new VenueError('VENUE_MISCONFIGURED', {
        venue: this.id,
        message: wrong ?? `the collateral token ${token} has no asset symbol`,
        outcome: 'not-sent',
        retryable: false,
        details: {
          collateralAsset: token,
          tokenDecimals: decimals,
          ...(symbolRead !== undefined ? { tokenSymbol: quoted(symbolRead) } : {}),
          ...(named !== undefined ? { collateralSymbol: named } : {}),
          ...(configured !== undefined ? { collateralDecimals: configured } : {}),
        },
      });
    const spendCaps = new SpendCaps({
      venue: this.id,
      caps: { [token.toLowerCase()]: toUnits(this.p.spendCapPerDay, decimals) },
      clock: this.clock,
      // The window is rebuilt from the spends recorded on the order records (survives a restart).
      records: this.store,
    });
    this.#capabilities = { ...GMX_CAPABILITIES, collateral: [symbol] };
    return { decimals, symbol, spendCaps };
  }

  private get account(): Address {
    return this.ctx.account.address;
  }

  async loadMarkets(): Promise<MarketInfo[]> {
    return [...(await this.marketMap()).values()].map((m) => m.info);
  }

  private async marketMap(): Promise<Map<string, MarketEntry>> {
    if (this.markets) return this.markets;
    const c = this.ctx.publicClient;
    // the collateral's symbol is the markets' settlement currency (read once, beside the list)
    const [list, { symbol: settlementCurrency }] = await Promise.all([
      this.errors.read(() =>
        c.readContract({
          address: this.p.reader,
          abi: readerAbi,
          functionName: 'getMarkets',
          args: [this.p.dataStore, 0n, 200n],
        }),
      ),
      this.collateral(),
    ]);
    const map = new Map<string, MarketEntry>();
    const valued = new Map<string, { id: string; entry: MarketEntry }>();
    const known = new Map<string, { symbol: string; decimals: number }>();
    // the keepers' token list first (one request instead of three reads per market), the operator's entries win
    const tokensUrl = this.tokensUrl;
    if (tokensUrl)
      for (const t of await fetchGmxTokens(tokensUrl, this.endpointOptions))
        known.set(t.address.toLowerCase(), t);
    for (const t of this.p.indexTokens) known.set(t.address.toLowerCase(), t);
    const pinned = new Map(Object.entries(this.p.marketFor).map(([id, a]) => [id, a.toLowerCase()]));
    this.unlistedMarkets = [];
    for (const m of list) {
      // swap-only markets have no index token: nothing to hedge with
      if (m.indexToken === zeroAddress) continue;
      const meta = known.get(m.indexToken.toLowerCase()) ?? (await this.tokenMeta(m.indexToken));
      if (!meta) {
        this.unlistedMarkets.push({ marketToken: m.marketToken, indexToken: m.indexToken });
        continue;
      }
      // Index tokens are wrapped coins (WBTC, WETH); the underlying drops the W.
      const symbol = /^W[A-Z0-9]{2,}$/.test(meta.symbol) ? meta.symbol.slice(1) : meta.symbol;
      // a symbol no instrument id can carry (tBTC, USDC.e): named, not listed
      if (!/^[A-Z][A-Z0-9]{1,9}$/.test(symbol)) {
        this.unlistedMarkets.push({ marketToken: m.marketToken, indexToken: m.indexToken });
        continue;
      }
      const decimals = meta.decimals;
      const id = `${symbol}-USD:PERP`;
      const pin = pinned.get(id);
      const entry: MarketEntry = {
        marketToken: m.marketToken,
        indexToken: m.indexToken,
        longToken: m.longToken,
        shortToken: m.shortToken,
        decimals,
        symbol,
        // until the traded markets' factors are read below
        collateralFraction: new Dec(1).div(this.p.leverage),
        info: {
          instrument: instrumentMeta(id, { settlementCurrency }),
          venueSymbol: m.marketToken,
          minSizeBase: this.p.minSizeBase,
          sizeStepBase: this.p.sizeStepBase,
          priceTickUsd: '0.01',
          active: true,
        },
      };
      valued.set(m.marketToken.toLowerCase(), { id, entry });
      // one market per instrument is traded: the pinned one, else the first listed
      if (pin ? m.marketToken.toLowerCase() !== pin : map.has(id)) continue;
      map.set(id, entry);
    }
    for (const [id, a] of pinned)
      if (!map.has(id))
        throw new Error(
          `${this.id}: params.marketFor names market ${a} for ${id}, but Reader.getMarkets lists no such market with that index token`,
        );
    // Read once with the markets (they are kept for the adapter's life), never per quote.
    const traded = [...map.values()];
    const factors = await this.dataStoreUints(traded.map((e) => minCollateralFactorKey(e.marketToken)));
    for (const [i, e] of traded.entries()) applyCollateralFraction(e, factors[i] ?? 0n, this.p.leverage);
    this.valued = valued;
    this.markets = map;
    return map;
  }

  /**
   * Markets `loadMarkets` could not list: their index token is in neither the keepers' token list
   * (`tokensUrl`) nor `params.indexTokens` and has no `symbol()`/`decimals()` (GMX's synthetic tokens),
   * or its symbol cannot name an instrument (e.g. `tBTC`). Filled by the first market read.
   */
  unlistedMarkets: { marketToken: Address; indexToken: Address }[] = [];

  /** How the oracle keepers' HTTP endpoints (prices, tokens) are asked. */
  private get endpointOptions(): { venue: string; timeoutMs: number; fetchImpl?: typeof fetch } {
    return {
      venue: this.id,
      timeoutMs: PRICES_TIMEOUT_MS,
      ...(this.fetchImpl ? { fetchImpl: this.fetchImpl } : {}),
    };
  }

  /** `params.tokensUrl`, else `pricesUrl`'s origin's `/tokens` when it is a `/prices/tickers` endpoint. */
  private get tokensUrl(): string | undefined {
    if (this.p.tokensUrl) return this.p.tokensUrl;
    const prices = this.p.pricesUrl;
    return prices && /\/prices\/tickers\/?$/.test(prices)
      ? prices.replace(/\/prices\/tickers\/?$/, '/tokens')
      : undefined;
  }

  /** An index token's ERC-20 symbol and decimals, or undefined when it has no such contract. */
  private async tokenMeta(token: Address): Promise<{ symbol: string; decimals: number } | undefined> {
    const c = this.ctx.publicClient;
    const code = await this.errors.read(() => c.getCode({ address: token }));
    if (!code || code === '0x') return undefined;
    const [symbol, decimals] = await this.errors.read(() =>
      Promise.all([
        c.readContract({ address: token, abi: erc20Abi, functionName: 'symbol' }),
        c.readContract({ address: token, abi: erc20Abi, functionName: 'decimals' }),
      ]),
    );
    return { symbol, decimals };
  }

  private async market(instrument: string, clientOrderId?: string): Promise<MarketEntry> {
    const m = (await this.marketMap()).get(instrument);
    if (!m) {
      throw new InvalidOrderError({
        venue: this.id,
        message: `instrument ${instrument} is not listed`,
        ...(clientOrderId ? { clientOrderId } : {}),
      });
    }
    return m;
  }

  /** Where prices come from, for messages (the endpoint by its label: its URL may hold a key). */
  private get priceSource(): string {
    return this.p.pricesUrl
      ? `the GMX prices endpoint ${endpointLabel(this.p.pricesUrl)}`
      : `Oracle.getPrimaryPrice of ${this.p.oracle}`;
  }

  /** The price of the market's index token (GMX units). */
  private async indexPrice(id: string, m: MarketEntry): Promise<GmxTokenPrice> {
    const prices = await this.tokenPrices([{ token: m.indexToken, what: `the index token of ${id}` }]);
    return prices.get(m.indexToken.toLowerCase()) as GmxTokenPrice;
  }

  /**
   * Prices (GMX units: USD per smallest token unit, 30 decimals) of `tokens`, by lowercase address:
   * from `params.pricesUrl` (one request; not tied to a block) when set, else from
   * `Oracle.getPrimaryPrice` per token at `blockNumber`, all as of the Oracle's `maxTimestamp` (the
   * newest price it holds; it keeps no time per token). Throws `StaleOracleError` naming the token and
   * `what` it is when one has no price (absent from the endpoint; `EmptyPrimaryPrice` from the Oracle,
   * which is every token of a real GMX Oracle outside a keeper's execution).
   */
  private async tokenPrices(
    tokens: readonly { token: Address; what: string }[],
    blockNumber?: bigint,
  ): Promise<Map<string, GmxTokenPrice>> {
    let prices: Map<string, GmxTokenPrice>;
    if (this.p.pricesUrl) {
      prices = await fetchGmxTickers(this.p.pricesUrl, this.endpointOptions);
    } else {
      const unique = new Map(tokens.map((t) => [t.token.toLowerCase(), t.token] as const));
      const at = blockNumber !== undefined ? { blockNumber } : {};
      const [read, maxTimestamp] = await Promise.all([
        Promise.all(
          [...unique.values()].map((token) =>
            this.errors
              .read(() =>
                this.ctx.publicClient.readContract({
                  address: this.p.oracle,
                  abi: oracleAbi,
                  functionName: 'getPrimaryPrice',
                  args: [token],
                  ...at,
                }),
              )
              // No price is a revert upstream: left out here, named as missing below.
              .catch((err: unknown) => {
                if (err instanceof VenueError && err.details?.errorName === 'EmptyPrimaryPrice')
                  return undefined;
                throw err;
              }),
          ),
        ),
        this.errors.read(() =>
          this.ctx.publicClient.readContract({
            address: this.p.oracle,
            abi: oracleAbi,
            functionName: 'maxTimestamp',
            ...at,
          }),
        ),
      ]);
      const updatedAtMs = Number(maxTimestamp) * 1000;
      prices = new Map();
      for (const [i, key] of [...unique.keys()].entries()) {
        const p = read[i];
        if (p) prices.set(key, { min: p.min, max: p.max, updatedAtMs });
      }
    }
    for (const t of tokens) {
      const p = prices.get(t.token.toLowerCase());
      if (!p || p.min === 0n || p.max < p.min)
        throw new StaleOracleError({
          venue: this.id,
          message: `${this.priceSource} has no price for ${t.what} (${t.token})`,
          details: { token: t.token },
        });
    }
    return prices;
  }

  async fetchMarks(instruments?: readonly string[]): Promise<Mark[]> {
    const map = await this.marketMap();
    const chosen = [...map].filter(([id]) => !instruments || instruments.includes(id));
    const prices = await this.tokenPrices(
      chosen.map(([id, m]) => ({ token: m.indexToken, what: `the index token of ${id}` })),
    );
    const out: Mark[] = [];
    for (const [id, m] of chosen) {
      const p = prices.get(m.indexToken.toLowerCase()) as GmxTokenPrice;
      const bid = gmxPriceToUsd(p.min, m.decimals);
      const ask = gmxPriceToUsd(p.max, m.decimals);
      out.push({
        venue: this.id,
        instrument: id,
        markPriceUsd: (bid + ask) / 2,
        indexPriceUsd: (bid + ask) / 2,
        bidUsd: bid,
        askUsd: ask,
        asOfMs: p.updatedAtMs,
      });
    }
    return out;
  }

  private async rawPositions(blockNumber?: bigint) {
    return this.errors.read(() =>
      this.ctx.publicClient.readContract({
        address: this.p.reader,
        abi: readerAbi,
        functionName: 'getAccountPositions',
        args: [this.p.dataStore, this.account, 0n, 200n],
        ...(blockNumber !== undefined ? { blockNumber } : {}),
      }),
    );
  }

  /**
   * Positions net per instrument (size and entry as risk and routing use them: long − short, entry
   * averaged over both sides), each with what equity needs, by side: `marginUsd`, the collateral of
   * the market's positions (it left the wallet, so `fetchBalances` no longer shows it), and
   * `unsettledPnlUsd`, what the positions earned or owe beyond it, summed (see
   * {@link unsettledPnlUsd30}): GMX's own P&L (`basePnlUsd`: long at the index min price, short at the
   * max, capped by the pool) + the pending price impact (`pendingImpactAmount` in USD) − the pending
   * borrowing and funding fees + the funding earned, all from `Reader.getAccountPositionInfoList` at
   * the prices of the market's index, long and short tokens. Exit costs (closing fee, impact of
   * the close) are not counted. A market whose long and short cancel is reported with size 0 so equity
   * still counts it.
   *
   * Everything on chain is read at one block; prices come from `params.pricesUrl` when set (its
   * latest), else from the oracle at that block. Positions in every market of an index token count
   * (the account may hold several; only one per instrument is traded, see `params.marketFor`), netted
   * into one position per instrument. Throws when a position is in a market whose index token is
   * unknown (not listed by {@link loadMarkets}, nor as a market of a listed instrument), when a market with positions has no price for one of its
   * tokens (`StaleOracleError` naming it), and when the position-info read fails (an error of the same
   * kind, naming the markets): equity then fails loudly instead of being computed from part of the
   * value.
   */
  async fetchPositions(): Promise<Position[]> {
    await this.marketMap();
    // Not viem's cached block number: a read right after a fill must see it.
    const blockNumber = await this.errors.read(() => this.ctx.publicClient.getBlockNumber({ cacheTime: 0 }));
    const raw = await this.rawPositions(blockNumber);
    const now = this.clock.nowMs();
    const sameMarket = (a: Address, m: MarketEntry) => a.toLowerCase() === m.marketToken.toLowerCase();
    const held = [...this.valued.values()]
      .filter(({ entry: m }) => raw.some((p) => sameMarket(p.addresses.market, m) && !isEmptyPosition(p)))
      .map(({ id, entry }) => [id, entry] as const);
    const unlisted = raw.find(
      (p) => !isEmptyPosition(p) && !this.valued.has(p.addresses.market.toLowerCase()),
    );
    if (unlisted)
      throw new Error(
        `${this.id}: the account has a position in market ${unlisted.addresses.market}, which is not among the listed markets, so it cannot be valued${
          this.unlistedMarkets.some(
            (u) => u.marketToken.toLowerCase() === unlisted.addresses.market.toLowerCase(),
          )
            ? ' (its index token has no symbol() or decimals(): add it to params.indexTokens)'
            : ' (Reader.getMarkets does not list it)'
        }`,
      );
    if (held.length === 0) return [];
    const { decimals: collateralDecimals, symbol: collateralSymbol } = await this.collateral();
    const prices = await this.tokenPrices(
      held.flatMap(([id, m]) =>
        this.marketTokens(id, m, 'where the account has positions whose P&L needs it'),
      ),
      blockNumber,
    );
    const priceOf = (token: Address) => {
      const p = prices.get(token.toLowerCase()) as GmxTokenPrice;
      return { min: p.min, max: p.max };
    };
    const marketPrices = held.map(([, m]) => ({
      indexTokenPrice: priceOf(m.indexToken),
      longTokenPrice: priceOf(m.longToken),
      shortTokenPrice: priceOf(m.shortToken),
    }));
    const markets = held.map(([, m]) => m.marketToken);
    let infos: Awaited<ReturnType<typeof this.positionInfos>>;
    try {
      infos = await this.positionInfos(markets, marketPrices, blockNumber);
    } catch (err) {
      const e = this.errors.wrap(err);
      const names = held.map(([id, m]) => `${id} (${m.marketToken})`).join(', ');
      const why = e.shortMessage.startsWith(`${this.id}: `)
        ? e.shortMessage.slice(this.id.length + 2)
        : e.shortMessage;
      // The same kind of error (a revert stays a revert, a network failure stays retryable).
      const Ctor = e.constructor as VenueErrorClass;
      throw new Ctor({
        venue: this.id,
        message: `Reader.getAccountPositionInfoList failed for the positions in ${names}, so they cannot be valued: ${why}`,
        outcome: e.outcome,
        retryable: e.retryable,
        details: { ...e.details, markets },
        ...('reason' in e && typeof e.reason === 'string' ? { reason: e.reason } : {}),
        cause: e,
      });
    }
    // one position per instrument: every market of its index netted (sizes, P&L and margin summed,
    // entry averaged over the gross size of all of them)
    const byId = new Map<string, MarketEntry[]>();
    for (const [id, m] of held) byId.set(id, [...(byId.get(id) ?? []), m]);
    const out: Position[] = [];
    for (const [id, ms] of byId) {
      let sizeBase = 0;
      let grossBase = 0;
      let usd = 0n;
      let pnlUsd30 = 0n;
      let marginUsd30 = 0n;
      for (const m of ms) {
        const mine = infos.filter(
          (i) => sameMarket(i.position.addresses.market, m) && !isEmptyPosition(i.position),
        );
        let tokens = 0n;
        let grossTokens = 0n;
        for (const info of mine) {
          const p = info.position;
          grossTokens += p.numbers.sizeInTokens;
          if (p.numbers.sizeInTokens !== 0n) {
            tokens += p.flags.isLong ? p.numbers.sizeInTokens : -p.numbers.sizeInTokens;
            usd += p.numbers.sizeInUsd;
          }
          const side = `${p.flags.isLong ? 'long' : 'short'} ${id} position's`;
          const value = (token: Address, what: string) => (amount: bigint) =>
            this.tokenValueUsd30(token, amount, prices, `${side} ${what}`, collateralDecimals);
          marginUsd30 += value(p.addresses.collateralToken, 'collateral token')(p.numbers.collateralAmount);
          pnlUsd30 += unsettledPnlUsd30(
            {
              basePnlUsd: info.basePnlUsd,
              pendingImpactUsd: info.executionPriceResult.proportionalPendingImpactUsd,
              borrowingFeeAmount: info.fees.borrowing.borrowingFeeAmount,
              fundingFeeAmount: info.fees.funding.fundingFeeAmount,
              claimableLongTokenAmount: info.fees.funding.claimableLongTokenAmount,
              claimableShortTokenAmount: info.fees.funding.claimableShortTokenAmount,
            },
            {
              collateral: value(p.addresses.collateralToken, 'collateral token'),
              longToken: value(m.longToken, 'claimable funding (long token)'),
              shortToken: value(m.shortToken, 'claimable funding (short token)'),
            },
          );
        }
        sizeBase += Number(fromUnits(tokens, m.decimals));
        grossBase += Number(fromUnits(grossTokens, m.decimals));
      }
      const pos: Position = {
        venue: this.id,
        chain: this.chain,
        instrument: id,
        sizeBase,
        unsettledPnlUsd: fromUsd30(pnlUsd30),
        marginUsd: fromUsd30(marginUsd30),
        settlementCurrency: collateralSymbol,
        asOfMs: now,
      };
      if (grossBase > 0) pos.entryPriceUsd = fromUsd30(usd) / grossBase;
      out.push(pos);
    }
    return out;
  }

  /** `Reader.getAccountPositionInfoList` of the account (no UI fee receiver), at `blockNumber`. */
  private positionInfos(
    markets: Address[],
    marketPrices: {
      indexTokenPrice: { min: bigint; max: bigint };
      longTokenPrice: { min: bigint; max: bigint };
      shortTokenPrice: { min: bigint; max: bigint };
    }[],
    blockNumber: bigint,
  ) {
    return this.ctx.publicClient.readContract({
      address: this.p.reader,
      abi: readerAbi,
      functionName: 'getAccountPositionInfoList',
      args: [
        this.p.dataStore,
        this.p.referralStorage ?? zeroAddress,
        this.account,
        markets,
        marketPrices,
        zeroAddress,
        0n,
        200n,
      ],
      blockNumber,
    });
  }

  /**
   * A token amount in USD with 30 decimals, valued as equity counts the position's collateral: the
   * adapter's collateral (a USD stablecoin, see {@link collateral}; `collateralDecimals`, its token's)
   * at par, as equity counts the wallet's balance of it; any other token at the
   * min price (as GMX values collateral) in `prices` (by lowercase address: the prices of the market's
   * index, long and short tokens, the only tokens GMX's Reader accepts as collateral). Throws, naming
   * `what`, when such a token has no price there.
   */
  private tokenValueUsd30(
    token: Address,
    amount: bigint,
    prices: Map<string, { min: bigint; max: bigint }>,
    what: string,
    collateralDecimals: number,
  ): bigint {
    if (amount === 0n) return 0n;
    if (token.toLowerCase() === this.p.collateralAsset.toLowerCase())
      return amount * 10n ** BigInt(30 - collateralDecimals);
    const min = prices.get(token.toLowerCase())?.min ?? 0n;
    if (min === 0n)
      throw new Error(`${this.id}: the ${what} ${token} has no price, so the position cannot be valued`);
    return collateralUsd30(amount, min);
  }

  /**
   * The wallet's collateral token, named by its own `symbol()` (see {@link collateral}), all of it
   * available, and its ETH.
   */
  async fetchBalances(): Promise<Balance[]> {
    const { decimals, symbol } = await this.collateral();
    return walletBalances(this.ctx, this.errors, {
      venue: this.id,
      chain: this.chain,
      token: this.p.collateralAsset,
      decimals,
      symbol,
      now: () => this.clock.nowMs(),
    });
  }

  async fetchFills(opts: { sinceMs?: number; clientOrderId?: string } = {}): Promise<Fill[]> {
    return fillsFromRecords(
      this.id,
      this.store,
      (r) => this.reconcile(r),
      (r) => r.orderKey ?? r.txHash,
      opts,
    );
  }

  private async ethUsd(): Promise<number> {
    const eth = (await this.marketMap()).get('ETH-USD:PERP');
    if (!eth) return this.p.gasAssetUsd;
    const p = await this.indexPrice('ETH-USD:PERP', eth);
    return gmxPriceToUsd(p.max, eth.decimals);
  }

  /** `DataStore.getUint` of `keys`, all at one block. */
  private async dataStoreUints(keys: readonly Hex[], blockNumber?: bigint): Promise<bigint[]> {
    return this.errors.read(() =>
      Promise.all(
        keys.map((key) =>
          this.ctx.publicClient.readContract({
            address: this.p.dataStore,
            abi: dataStoreAbi,
            functionName: 'getUint',
            args: [key],
            ...(blockNumber !== undefined ? { blockNumber } : {}),
          }),
        ),
      ),
    );
  }

  /** `DataStore.getBool` of `keys`, all at one block. */
  private async dataStoreBools(keys: readonly Hex[], blockNumber?: bigint): Promise<boolean[]> {
    return this.errors.read(() =>
      Promise.all(
        keys.map((key) =>
          this.ctx.publicClient.readContract({
            address: this.p.dataStore,
            abi: dataStoreAbi,
            functionName: 'getBool',
            args: [key],
            ...(blockNumber !== undefined ? { blockNumber } : {}),
          }),
        ),
      ),
    );
  }

  #orderHandler: Promise<Address> | undefined;

  /**
   * The OrderHandler the ExchangeRouter hands orders to (`ExchangeRouter.orderHandler()`, an immutable:
   * read once, not kept on failure): GMX keys its order feature switches by it.
   */
  private orderHandler(): Promise<Address> {
    if (!this.#orderHandler) {
      this.#orderHandler = this.errors
        .read(() =>
          this.ctx.publicClient.readContract({
            address: this.p.exchangeRouter,
            abi: exchangeRouterAbi,
            functionName: 'orderHandler',
          }),
        )
        .catch((err: unknown) => {
          this.#orderHandler = undefined;
          throw err;
        });
    }
    return this.#orderHandler;
  }

  /**
   * Refuses, with a `VenueHaltedError` (not sent, retryable: GMX's operators switch these back) naming
   * the market, the order type and the DataStore switch, an order GMX would not take now in market `m`
   * (instrument `id`): an increase (MarketIncrease) or a decrease (MarketDecrease) as `increase` says,
   * with the switches at `blockNumber` (the latest when omitted):
   * - IS_MARKET_DISABLED of the market (`marketDisabled`, when the caller has it from
   *   `Reader.getMarketInfo`; else read here): upstream reverts `DisabledMarket` when any position order
   *   is created in it (OrderUtils.createOrder → MarketUtils.validatePositionMarket) and when one is
   *   executed (BaseOrderHandler, `getEnabledMarket`), so decreases and reduce-only orders are refused
   *   as increases are: GMX would revert them too;
   * - CREATE_ORDER_FEATURE_DISABLED of the OrderHandler and the order type: OrderHandler.createOrder
   *   reverts `DisabledFeature`, the creating transaction would revert;
   * - EXECUTE_ORDER_FEATURE_DISABLED of the OrderHandler and the order type: the order would be
   *   created and then wait, its collateral held, until GMX switches execution back (the keeper's call
   *   reverts `DisabledFeature` and OrderHandler._handleOrderError neither cancels nor freezes a market
   *   order for it), to fill at whatever the price is then: no hedge now.
   * The switches are per order type: an increase switched off leaves decreases, and the other way round.
   */
  private async refuseIfUnavailable(
    id: string,
    m: MarketEntry,
    o: { increase: boolean; marketDisabled?: boolean; blockNumber?: bigint; clientOrderId?: string },
  ): Promise<void> {
    const type = orderTypeOf(o.increase);
    const halted = (message: string, details: Record<string, unknown>) =>
      new VenueHaltedError({
        venue: this.id,
        message,
        ...(o.clientOrderId !== undefined ? { clientOrderId: o.clientOrderId } : {}),
        details: { instrument: id, market: m.marketToken, orderType: type.name, ...details },
      });
    const marketDisabledError = () =>
      halted(
        `market ${m.marketToken} of ${id} is disabled on GMX (DataStore IS_MARKET_DISABLED): it takes no orders, increases and decreases alike`,
        { switch: 'IS_MARKET_DISABLED', key: isMarketDisabledKey(m.marketToken) },
      );
    if (o.marketDisabled === true) throw marketDisabledError();
    const handler = await this.orderHandler();
    const keys = {
      create: orderFeatureDisabledKey('create', handler, type.value),
      execute: orderFeatureDisabledKey('execute', handler, type.value),
    };
    const [create, execute, market] = await this.dataStoreBools(
      [
        keys.create,
        keys.execute,
        ...(o.marketDisabled === undefined ? [isMarketDisabledKey(m.marketToken)] : []),
      ],
      o.blockNumber,
    );
    if (market === true) throw marketDisabledError();
    for (const [feature, off] of [
      ['create', create],
      ['execute', execute],
    ] as const) {
      if (!off) continue;
      const name = feature === 'create' ? 'CREATE_ORDER_FEATURE_DISABLED' : 'EXECUTE_ORDER_FEATURE_DISABLED';
      throw halted(
        `GMX has ${feature === 'create' ? 'creating' : 'executing'} ${type.name} orders switched off (DataStore ${name} of the OrderHandler ${handler}): ${o.increase ? 'an increase' : 'a decrease'} of ${id} (market ${m.marketToken}) cannot be ${feature === 'create' ? 'created' : 'executed'} now`,
        { switch: name, key: keys[feature], orderHandler: handler },
      );
    }
  }

  /**
   * The market's open interest and caps per side, as GMX reads them, all at one block:
   * MarketUtils.getOpenInterest (USD, 30 decimals: the OPEN_INTEREST keys of the long- and
   * short-token collateral, each halved when both tokens are the same) and MAX_OPEN_INTEREST; the
   * longs' open interest in index-token units (OPEN_INTEREST_IN_TOKENS, the same way), each side's
   * POOL_AMOUNT (halved likewise) and the smaller of its RESERVE_FACTOR and
   * OPEN_INTEREST_RESERVE_FACTOR (an increase must pass both, MarketUtils.validateReserve and
   * validateOpenInterestReserve).
   */
  private async openInterest(m: MarketEntry, blockNumber: bigint) {
    const market = m.marketToken;
    const keys = {
      longL: openInterestKey(market, m.longToken, true),
      longS: openInterestKey(market, m.shortToken, true),
      shortL: openInterestKey(market, m.longToken, false),
      shortS: openInterestKey(market, m.shortToken, false),
      maxLong: maxOpenInterestKey(market, true),
      maxShort: maxOpenInterestKey(market, false),
      tokL: openInterestInTokensKey(market, m.longToken, true),
      tokS: openInterestInTokensKey(market, m.shortToken, true),
      poolL: poolAmountKey(market, m.longToken),
      poolS: poolAmountKey(market, m.shortToken),
      rfL: reserveFactorKey(market, true, 'reserve'),
      oirfL: reserveFactorKey(market, true, 'open-interest'),
      rfS: reserveFactorKey(market, false, 'reserve'),
      oirfS: reserveFactorKey(market, false, 'open-interest'),
    };
    const values = await this.dataStoreUints(Object.values(keys), blockNumber);
    const {
      longL,
      longS,
      shortL,
      shortS,
      maxLong,
      maxShort,
      tokL,
      tokS,
      poolL,
      poolS,
      rfL,
      oirfL,
      rfS,
      oirfS,
    } = Object.fromEntries(Object.keys(keys).map((k, i) => [k, values[i] ?? 0n])) as Record<
      keyof typeof keys,
      bigint
    >;
    const divisor = m.longToken.toLowerCase() === m.shortToken.toLowerCase() ? 2n : 1n;
    const min = (a: bigint, b: bigint) => (a < b ? a : b);
    return {
      longUsd30: longL / divisor + longS / divisor,
      shortUsd30: shortL / divisor + shortS / divisor,
      maxLongUsd30: maxLong,
      maxShortUsd30: maxShort,
      longTokens: tokL / divisor + tokS / divisor,
      longPoolAmount: poolL / divisor,
      shortPoolAmount: poolS / divisor,
      longReserveFactor: min(rfL, oirfL),
      shortReserveFactor: min(rfS, oirfS),
    };
  }

  /**
   * GMX's funding and borrowing of market `m` (instrument `id`) as of `blockNumber`:
   * `Reader.getMarketInfo(dataStore, prices, market)` (`nextFunding.longsPayShorts`,
   * `nextFunding.fundingFactorPerSecond`, `borrowingFactorPerSecondForLongs/ForShorts`, 30-decimal factors
   * per second of position size) with `prices` of the market's index, long and short tokens (see
   * {@link tokenPrices}). The Reader computes them as positions are charged (the funding model the market
   * is configured with, adaptive or static, and the borrowing model, kink or exponent); the adapter does
   * not redo that arithmetic. A Reader that answers for another market (an empty one: it does not know
   * the market) is a `VENUE_MISCONFIGURED` error naming both. With them, `isDisabled`: the market's
   * IS_MARKET_DISABLED (ReaderUtils.getMarketInfo reads it), which quotes refuse on.
   */
  private async marketRates(
    id: string,
    m: MarketEntry,
    prices: Map<string, GmxTokenPrice>,
    blockNumber: bigint,
  ): Promise<GmxMarketRates & { isDisabled: boolean }> {
    const priceOf = (token: Address) => {
      const p = prices.get(token.toLowerCase()) as GmxTokenPrice;
      return { min: p.min, max: p.max };
    };
    const info = await this.errors.read(() =>
      this.ctx.publicClient.readContract({
        address: this.p.reader,
        abi: readerAbi,
        functionName: 'getMarketInfo',
        args: [
          this.p.dataStore,
          {
            indexTokenPrice: priceOf(m.indexToken),
            longTokenPrice: priceOf(m.longToken),
            shortTokenPrice: priceOf(m.shortToken),
          },
          m.marketToken,
        ],
        blockNumber,
      }),
    );
    if (info.market.marketToken.toLowerCase() !== m.marketToken.toLowerCase())
      throw new VenueError('VENUE_MISCONFIGURED', {
        venue: this.id,
        message: `Reader.getMarketInfo of ${this.p.reader} answered for market ${info.market.marketToken}, not ${m.marketToken} (${id}): check the reader and dataStore settings`,
        outcome: 'not-sent',
        retryable: false,
        details: { reader: this.p.reader, market: m.marketToken, answered: info.market.marketToken },
      });
    return {
      longsPayShorts: info.nextFunding.longsPayShorts,
      fundingFactorPerSecond: info.nextFunding.fundingFactorPerSecond,
      borrowingFactorPerSecondForLongs: info.borrowingFactorPerSecondForLongs,
      borrowingFactorPerSecondForShorts: info.borrowingFactorPerSecondForShorts,
      isDisabled: info.isDisabled,
    };
  }

  /** The index, long and short tokens of market `m` for {@link tokenPrices}, named for messages. */
  private marketTokens(id: string, m: MarketEntry, why: string): { token: Address; what: string }[] {
    return (
      [
        ['index', m.indexToken],
        ['long', m.longToken],
        ['short', m.shortToken],
      ] as const
    ).map(([role, token]) => ({ token, what: `the ${role} token of ${id}, ${why},` }));
  }

  /**
   * The carry rate of `instrument` now, per hour as a fraction of notional, + = longs pay
   * (`FundingRate.ratePerHour`, which the book applies to the account's net size there: funding P&L per
   * hour = −size × spot × rate), at the latest block: funding and borrowing both.
   *
   * - The account holds positions in a market of the instrument (`Reader.getAccountPositions`, every
   *   market of its index and every collateral, as {@link fetchPositions} nets them): the rate that makes
   *   its net size carry what those positions pay, {@link heldCarryRatePerHour} of each position's size
   *   and its market's `Reader.getMarketInfo` (`nextFunding`, `borrowingFactorPerSecondForLongs/
   *   ForShorts`, 30-decimal factors per second of size): a long alone pays the funding factor signed
   *   as longs pay plus the longs' borrowing, a short alone the shorts' borrowing less that funding.
   *   Both sides held (GMX keeps them apart, each paying its borrowing) are folded into the one rate; a
   *   long and a short of equal size that cost something have a net size of 0 no rate can carry: a
   *   `NotSupportedError` naming them (the book then leaves the carry out, and says so).
   * - Nothing held: the market's funding rate (the traded market's, {@link fundingRatePerHour}: what
   *   the paying side pays, no borrowing; the book multiplies it by a size of 0).
   *
   * Funding credits are read at the paying side's rate (see {@link fundingRatePerHour}). `asOfMs` is the
   * time of the block read. An unlisted instrument is an `InvalidOrderError`; a market token without a
   * price a `StaleOracleError` naming it.
   */
  async fetchFundingRate(instrument: string): Promise<FundingRate> {
    const m = await this.market(instrument);
    const block = await this.errors.read(() =>
      this.ctx.publicClient.getBlock({ blockTag: 'latest', includeTransactions: false }),
    );
    if (block.number === null)
      throw new VenueError('VENUE_NETWORK', {
        venue: this.id,
        message: 'the latest block has no number',
        outcome: 'not-sent',
        retryable: true,
      });
    const blockNumber = block.number;
    // the account's positions in the instrument's markets (the traded one and any other of its index)
    const held = (await this.rawPositions(blockNumber)).flatMap((p) => {
      const v = this.valued.get(p.addresses.market.toLowerCase());
      return v && v.id === instrument && p.numbers.sizeInTokens > 0n ? [{ p, entry: v.entry }] : [];
    });
    const markets = new Map<string, MarketEntry>([[m.marketToken.toLowerCase(), m]]);
    for (const { entry } of held) markets.set(entry.marketToken.toLowerCase(), entry);
    const prices = await this.tokenPrices(
      [...markets.values()].flatMap((e) =>
        this.marketTokens(instrument, e, 'which funding and borrowing are read with'),
      ),
      blockNumber,
    );
    const rates = new Map(
      await Promise.all(
        [...markets].map(
          async ([key, e]) => [key, await this.marketRates(instrument, e, prices, blockNumber)] as const,
        ),
      ),
    );
    const sides: GmxHeldSide[] = held.map(({ p, entry }) => ({
      isLong: p.flags.isLong,
      sizeBase: fromUnits(p.numbers.sizeInTokens, entry.decimals),
      rates: rates.get(entry.marketToken.toLowerCase()) as GmxMarketRates,
    }));
    const ratePerHour =
      sides.length === 0
        ? fundingRatePerHour(rates.get(m.marketToken.toLowerCase()) as GmxMarketRates)
        : heldCarryRatePerHour(sides);
    if (ratePerHour === undefined) {
      const sum = (isLong: boolean) =>
        sides.filter((x) => x.isLong === isLong).reduce((a, x) => a.add(x.sizeBase), new Dec(0));
      throw new NotSupportedError({
        venue: this.id,
        message: `the account holds ${sum(true).toFixed()} long and ${sum(false).toFixed()} short of ${instrument} on GMX (kept apart, each paying its borrowing): their funding and borrowing cannot be stated as a rate on a net size of 0`,
        retryable: true,
        details: { instrument, longBase: sum(true).toFixed(), shortBase: sum(false).toFixed() },
      });
    }
    return {
      venue: this.id,
      instrument,
      ratePerHour,
      asOfMs: Number(block.timestamp) * 1000,
    };
  }

  /**
   * Room left on one side under the reserve caps, underlying units: what the side may reserve (its
   * pool at the pool token's min price × the smaller reserve factor) less what it reserves now (longs:
   * open interest in tokens at the index max price; shorts: open interest in USD), as
   * MarketUtils.getReservedUsd counts an increase.
   */
  private reserveRoomBase(
    m: MarketEntry,
    oi: Awaited<ReturnType<GmxVenue['openInterest']>>,
    isLong: boolean,
    prices: { index: GmxTokenPrice; pool: GmxTokenPrice },
    execUsd: number,
  ): number {
    const poolUsd30 = (isLong ? oi.longPoolAmount : oi.shortPoolAmount) * prices.pool.min;
    const maxReserved30 = applyFactor(poolUsd30, isLong ? oi.longReserveFactor : oi.shortReserveFactor);
    const reserved30 = isLong ? oi.longTokens * prices.index.max : oi.shortUsd30;
    const left30 = maxReserved30 > reserved30 ? maxReserved30 - reserved30 : 0n;
    if (isLong) return prices.index.max > 0n ? Number(fromUnits(left30 / prices.index.max, m.decimals)) : 0;
    return fromUsd30(left30) / execUsd;
  }

  /**
   * The execution fee to send with an order, wei: the larger of `params.executionFeeWei` (a floor)
   * and GMX's minimum, {@link orderExecutionGasLimit} (the DataStore's ESTIMATED_GAS_FEE_* and
   * INCREASE/DECREASE_ORDER_GAS_LIMIT settings) × a gas price the order transaction's own cannot
   * exceed unless the base fee doubles before it is mined: the fee cap the sender signs with
   * (`readFees`: 2 × the latest base fee + the priority fee). GMX checks `executionFee ≥ gas limit ×
   * tx.gasprice` (GasUtils.validateExecutionFee) and refunds what the execution does not use.
   *
   * `forOrder`: the fee an order is sent with, that minimum × `params.executionFeeHeadroom` (rounded
   * up): the check runs against whichever transaction creates the order, and a speed-up of it (the
   * same call data, so the same fee, at ≥ 12.5 % higher fees) has a higher gas price than the one the
   * minimum was read for. Without headroom every speed-up reverted `InsufficientExecutionFee`. Quotes
   * price the minimum: GMX refunds what the execution does not use.
   *
   * With the sender's fee cap (`params.maxFeePerGasGwei`) the order transaction is signed at most at
   * the cap, so the minimum is at the capped fee cap; and no transaction that can create the order, the
   * first send or any replacement (`TxSender.replace` refuses one above the cap), has a gas price above
   * the cap: so the fee is never more than gas limit × the cap, which passes GMX's check for every one
   * of them, and no more than the headroom asks either (a generous cap would otherwise make every order
   * deposit many times its fee).
   */
  private async executionFeeWei(increase: boolean, forOrder: boolean): Promise<bigint> {
    const k = GMX_KEYS;
    const [settings, fees] = await Promise.all([
      this.dataStoreUints([
        k.ESTIMATED_GAS_FEE_BASE_AMOUNT_V2_1,
        k.ESTIMATED_GAS_FEE_PER_ORACLE_PRICE,
        k.ESTIMATED_GAS_FEE_MULTIPLIER_FACTOR,
        k.SINGLE_SWAP_GAS_LIMIT,
        k.INCREASE_ORDER_GAS_LIMIT,
        k.DECREASE_ORDER_GAS_LIMIT,
      ]),
      this.errors.read(() => readFees(this.ctx.publicClient)),
    ]);
    const [base, perOraclePrice, multiplier, singleSwap, increaseLimit, decreaseLimit] = settings as [
      bigint,
      bigint,
      bigint,
      bigint,
      bigint,
      bigint,
    ];
    const gasLimit = orderExecutionGasLimit(
      {
        estimatedGasFeeBaseAmount: base,
        estimatedGasPerOraclePrice: perOraclePrice,
        estimatedGasFeeMultiplierFactor: multiplier,
        singleSwapGasLimit: singleSwap,
        increaseOrderGasLimit: increaseLimit,
        decreaseOrderGasLimit: decreaseLimit,
      },
      { increase },
    );
    const cap = this.sender.gasPolicy.maxFeePerGasWei;
    const minimum = gasLimit * (cap !== undefined && cap < fees.maxFeePerGas ? cap : fees.maxFeePerGas);
    const withHeadroom = BigInt(
      new Dec(minimum.toString()).mul(this.p.executionFeeHeadroom).toFixed(0, Dec.ROUND_UP),
    );
    // under a cap, never more than gas limit × the cap (no creating transaction pays more per gas), and
    // never more than the headroom asks: a cap set as a generous ceiling (100× the usual fees) made every
    // order deposit 100× its fee, and a wallet funded for normal fees failed the send
    const wanted = !forOrder
      ? minimum
      : cap !== undefined && gasLimit * cap < withHeadroom
        ? gasLimit * cap
        : withHeadroom;
    const floor = BigInt(this.p.executionFeeWei);
    return floor > wanted ? floor : wanted;
  }

  async quoteHedge(input: QuoteRequest): Promise<HedgeQuote> {
    const req = parseVenueRequest(QuoteRequest, input, this.id);
    const m = await this.market(req.instrument);
    const isLong = req.side === 'buy';
    const blockNumber = await this.errors.read(() => this.ctx.publicClient.getBlockNumber({ cacheTime: 0 }));
    const poolToken = isLong ? m.longToken : m.shortToken;
    const pricesRead = this.tokenPrices(
      [
        { token: m.indexToken, what: `the index token of ${req.instrument}` },
        {
          token: poolToken,
          what: `the ${isLong ? 'long' : 'short'} token of ${req.instrument}, whose pool caps positions,`,
        },
        // Reader.getMarketInfo (funding and borrowing) takes the other one's price too
        {
          token: isLong ? m.shortToken : m.longToken,
          what: `the ${isLong ? 'short' : 'long'} token of ${req.instrument}, which funding is read with,`,
        },
      ],
      blockNumber,
    );
    const [tokenPrices, oi, raw, rates, { decimals: collateralDecimals }] = await Promise.all([
      pricesRead,
      this.openInterest(m, blockNumber),
      this.rawPositions(blockNumber),
      pricesRead.then((p) => this.marketRates(req.instrument, m, p, blockNumber)),
      this.collateral(),
    ]);
    const price = tokenPrices.get(m.indexToken.toLowerCase()) as GmxTokenPrice;
    // As placeOrder decides: a hedge no larger than the opposite position reduces it (a decrease, under
    // no open-interest or reserve cap); otherwise it increases its own side by the whole size, beside the
    // opposite position (GMX keeps a market's long and short apart; nothing of it is closed).
    const sizeTokens = toUnits(req.sizeBase, m.decimals);
    const decrease = raw.some(
      (p) =>
        this.isTradedPosition(p, m) &&
        p.flags.isLong === !isLong &&
        p.numbers.sizeInTokens > 0n &&
        p.numbers.sizeInTokens >= sizeTokens,
    );
    const sideIsLong = decrease ? !isLong : isLong;
    const ref = gmxPriceToUsd((price.min + price.max) / 2n, m.decimals);
    const exec = gmxPriceToUsd(isLong ? price.max : price.min, m.decimals);
    const cap = isLong ? oi.maxLongUsd30 : oi.maxShortUsd30;
    const used = isLong ? oi.longUsd30 : oi.shortUsd30;
    const oiRoom = fromUsd30(cap > used ? cap - used : 0n) / exec;
    const reserveRoom = this.reserveRoomBase(
      m,
      oi,
      isLong,
      { index: price, pool: tokenPrices.get(poolToken.toLowerCase()) as GmxTokenPrice },
      exec,
    );
    const requested = Number(req.sizeBase);
    const executable = decrease ? requested : Math.max(0, Math.min(requested, oiRoom, reserveRoom));
    const notional = executable * exec;
    // The position fee factor GMX applies: POSITION_FEE_FACTOR for whether this change brings the
    // market's long and short open interest closer (PositionPricingUtils.getPositionFeesAfterReferral).
    const sizeDeltaUsd30 = usd30(notional);
    const improved = balanceWasImproved(oi, { isLong: sideIsLong, sizeDeltaUsd30, increase: !decrease });
    // A market or an order type GMX has switched off is refused, not quoted (routing would send the
    // order there): IS_MARKET_DISABLED came with getMarketInfo, the feature switches are read beside the
    // fee factor (no round trip of their own).
    const [[feeFactor]] = await Promise.all([
      this.dataStoreUints([positionFeeFactorKey(m.marketToken, improved)], blockNumber) as Promise<[bigint]>,
      this.refuseIfUnavailable(req.instrument, m, {
        increase: !decrease,
        marketDisabled: rates.isDisabled,
        blockNumber,
      }),
    ]);
    const feeUsd = fromUsd30(applyFactor(sizeDeltaUsd30, feeFactor));
    const ethUsd = await this.ethUsd();
    const execFeeWei = await this.executionFeeWei(!decrease, false);
    const sample = this.orderCalldata(m, {
      isLong: sideIsLong,
      increase: !decrease,
      sizeDeltaUsd: usd30(notional),
      acceptablePrice: price.max,
      collateral: 1n,
      executionFeeWei: execFeeWei,
    });
    const txCost = await this.sender
      .estimateCost(
        { to: this.p.exchangeRouter, data: sample, value: execFeeWei },
        ethUsd,
        BigInt(this.p.orderGasLimit),
      )
      .catch((err: unknown) => {
        throw this.errors.wrap(err);
      });
    const gasUsd = txCost.totalUsd + (Number(execFeeWei) / 1e18) * ethUsd;
    const impactUsd = Math.abs(exec - ref) * executable;
    // Funding and borrowing over the holding time for the side the order changes (see carryFactorPerSecond30).
    const fundingCarryUsd = carryUsd(
      carryFactorPerSecond30(rates, oi, { isLong: sideIsLong, increase: !decrease, sizeDeltaUsd30 }),
      sizeDeltaUsd30,
      req.holdingHours,
    );
    const executableSizeBase = new Dec(executable).toFixed();
    // What placeOrder pulls from the wallet into the position for this size: an increase posts the
    // collateral of its whole size (its USD size at the price placeOrder sizes it at × the collateral
    // fraction, rounded up as placeOrder rounds it), also when it is a sell past a long (or a buy past a
    // short), which GMX opens beside that position; a decrease posts none.
    const lockedCollateralUsd = decrease
      ? 0
      : Number(
          fromUnits(
            collateralUnitsFor(
              toUnits(executableSizeBase, m.decimals) * (isLong ? price.max : price.min),
              m.collateralFraction,
              collateralDecimals,
            ),
            collateralDecimals,
          ),
        );
    const quote: HedgeQuote = {
      venue: this.id,
      instrument: req.instrument,
      side: req.side,
      requestedSizeBase: req.sizeBase,
      executableSizeBase,
      referencePriceUsd: ref,
      expectedPriceUsd: exec,
      feeUsd,
      impactUsd,
      gasUsd,
      fundingCarryUsd,
      totalCostUsd: feeUsd + impactUsd + gasUsd + fundingCarryUsd,
      lockedCollateralUsd,
      expectedLatencyMs: this.p.expectedKeeperDelayMs,
      asOfMs: this.clock.nowMs(),
    };
    if (executable < requested)
      quote.capReason = `${reserveRoom < oiRoom ? 'pool reserve cap (reserve factors × pool)' : 'open interest cap'}: room for ${executable} ${m.symbol} on the ${isLong ? 'long' : 'short'} side`;
    return quote;
  }

  /**
   * Whether `p` is a position the adapter's orders change: in the traded market `m` with
   * `params.collateralAsset` as its collateral. GMX keys a position by (account, market, collateral
   * token, side) and the adapter's orders name that collateral, so a decrease of a position with other
   * collateral (opened outside the adapter) would be a decrease of an empty position: never executed.
   */
  private isTradedPosition(p: RawGmxPosition, m: MarketEntry): boolean {
    return (
      p.addresses.market.toLowerCase() === m.marketToken.toLowerCase() &&
      p.addresses.collateralToken.toLowerCase() === this.p.collateralAsset.toLowerCase()
    );
  }

  private orderCalldata(
    m: MarketEntry,
    o: {
      isLong: boolean;
      increase: boolean;
      sizeDeltaUsd: bigint;
      acceptablePrice: bigint;
      collateral: bigint;
      executionFeeWei: bigint;
    },
  ): Hex {
    const calls: Hex[] = [
      encodeFunctionData({
        abi: exchangeRouterAbi,
        functionName: 'sendWnt',
        args: [this.p.orderVault, o.executionFeeWei],
      }),
    ];
    if (o.increase) {
      calls.push(
        encodeFunctionData({
          abi: exchangeRouterAbi,
          functionName: 'sendTokens',
          args: [this.p.collateralAsset, this.p.orderVault, o.collateral],
        }),
      );
    }
    calls.push(
      createOrderCallData({
        account: this.account,
        market: m.marketToken,
        collateralToken: this.p.collateralAsset,
        sizeDeltaUsd: o.sizeDeltaUsd,
        acceptablePrice: o.acceptablePrice,
        executionFee: o.executionFeeWei,
        orderType: o.increase ? ORDER_TYPE.MarketIncrease : ORDER_TYPE.MarketDecrease,
        isLong: o.isLong,
      }),
    );
    return encodeFunctionData({ abi: exchangeRouterAbi, functionName: 'multicall', args: [calls] });
  }

  /**
   * Placements under way, by client order id: a second `placeOrder` with the id waits for the first and
   * then finds its record, rather than sending a second order transaction while the first (approving,
   * signing, not yet recorded) is in flight.
   */
  readonly #placing = new OneAtATime();

  async placeOrder(input: OrderRequest): Promise<Order> {
    const cid = String((input as { clientOrderId?: unknown }).clientOrderId ?? '');
    return this.#placing.run(cid, () => this.placeOnce(input));
  }

  private async placeOnce(input: OrderRequest): Promise<Order> {
    const req = parseVenueRequest(OrderRequest, input, this.id);
    const cid = req.clientOrderId;
    const existing = await this.store.get(cid);
    if (existing) return this.toOrder(await this.reconcile(existing));
    const m = await this.market(req.instrument, cid);
    assertOrderBasics(this.id, req, this.p.minSizeBase);
    // A bound at or below 0 is no price (a negative one cannot even be encoded as a uint256).
    if (req.limitPriceUsd !== undefined && !new Dec(req.limitPriceUsd).gt(0))
      throw new InvalidOrderError({
        venue: this.id,
        clientOrderId: cid,
        message: `limitPriceUsd ${req.limitPriceUsd} must be greater than 0`,
      });
    const price = await this.indexPrice(req.instrument, m);
    const sizeTokens = toUnits(req.sizeBase, m.decimals);
    const raw = await this.rawPositions();
    const side = (isLong: boolean) =>
      raw.find(
        (p) => this.isTradedPosition(p, m) && p.flags.isLong === isLong && p.numbers.sizeInTokens > 0n,
      );
    const buying = req.side === 'buy';
    const opposite = side(!buying);
    let isLong: boolean;
    let increase: boolean;
    let sizeDeltaUsd: bigint;
    if (opposite && opposite.numbers.sizeInTokens >= sizeTokens) {
      // Reduce the opposite position by exactly `sizeTokens` (its USD size pro rata).
      isLong = !buying;
      increase = false;
      // GMX takes sizeInTokens × sizeDeltaUsd / sizeInUsd of the position's tokens, rounded up for a
      // long and down for a short (PositionUtils.getPositionPnlUsd): the USD size is rounded the other
      // way (down for a long, up for a short), so that comes out at exactly `sizeTokens` (one token unit
      // more was closed on a long whenever the division was not exact).
      const num = opposite.numbers.sizeInUsd * sizeTokens;
      const den = opposite.numbers.sizeInTokens;
      sizeDeltaUsd = opposite.flags.isLong ? num / den : (num + den - 1n) / den;
    } else if (req.reduceOnly) {
      throw new InvalidOrderError({
        venue: this.id,
        clientOrderId: cid,
        message: `reduce-only ${req.side} of ${req.sizeBase} is larger than the open ${buying ? 'short' : 'long'} position`,
      });
    } else {
      isLong = buying;
      increase = true;
      sizeDeltaUsd = sizeTokens * (buying ? price.max : price.min);
    }
    // Buying pays at most acceptablePrice; selling receives at least it. Rounded to a GMX price unit
    // toward the inside of the bound: a buy's down, a sell's up (never a worse price than asked).
    const ref = buying ? price.max : price.min;
    const slip = BigInt(Math.round(this.p.maxSlippageBps));
    const acceptablePrice =
      req.limitPriceUsd !== undefined
        ? usdToGmxPrice(req.limitPriceUsd, m.decimals, buying ? 'down' : 'up')
        : buying
          ? (ref * (10_000n + slip)) / 10_000n
          : (ref * (10_000n - slip) + 9_999n) / 10_000n;
    // Nothing is approved, reserved or sent for an order GMX would revert (a disabled market, order
    // creation switched off) or leave unexecuted (execution switched off): see refuseIfUnavailable.
    const [executionFeeWei, { decimals: collateralDecimals, spendCaps }] = await Promise.all([
      this.executionFeeWei(increase, true),
      this.collateral(),
      this.refuseIfUnavailable(req.instrument, m, { increase, clientOrderId: cid }),
    ]);
    const collateral = increase
      ? collateralUnitsFor(sizeDeltaUsd, m.collateralFraction, collateralDecimals)
      : 0n;
    const data = this.orderCalldata(m, {
      isLong,
      increase,
      sizeDeltaUsd,
      acceptablePrice,
      collateral,
      executionFeeWei,
    });
    const record: GmxOrderRecord = newOrderRecord(req, this.clock.nowMs());
    // Held from here (check and reserve in one step) and recorded on the order before broadcast.
    const spend = await reserveAndApprove(this.sender, spendCaps, {
      token: this.p.collateralAsset,
      // ExchangeRouter.sendTokens pulls through Router.pluginTransfer: the Router is the spender.
      spender: this.p.router,
      amount: collateral,
      policy:
        this.p.approval === 'capped' && this.p.approvalCap !== undefined
          ? { mode: 'capped', capAmount: toUnits(this.p.approvalCap, collateralDecimals) }
          : { mode: 'exact' },
      clientOrderId: cid,
      // a decrease (reduce-only, or closing part of the opposite position) reduces risk: it may go up to
      // the fee cap without room for a replacement under it; an increase is refused there (retried later)
      ...(increase ? {} : { allowUnreplaceableUnderCap: true }),
    });
    const receipt = await sendRecorded(
      this.recordedSendDeps(),
      record,
      { to: this.p.exchangeRouter, data, value: executionFeeWei },
      spend,
      { allowUnreplaceableUnderCap: !increase },
    );
    this.applyCreateReceipt(record, receipt);
    await this.store.put(cid, record);
    return this.toOrder(record);
  }

  private applyCreateReceipt(record: GmxOrderRecord, receipt: TransactionReceipt): void {
    const created =
      receipt.status === 'success'
        ? createdOrder(receipt.logs, this.p.eventEmitter, this.account)
        : undefined;
    const key = created?.key;
    record.updatedAtMs = this.clock.nowMs();
    // what the order's transaction (or the copy that took its nonce) cost, whatever came of it
    const l1Fee = (receipt as { l1Fee?: bigint | null }).l1Fee ?? 0n;
    record.createGasWei = (receipt.gasUsed * receipt.effectiveGasPrice + l1Fee).toString();
    if (created?.executionFeeWei !== undefined) record.executionFeeWei = created.executionFeeWei.toString();
    if (!key && receipt.status === 'success') {
      // The transaction went through, so the order may well exist (a wrong eventEmitter setting, an
      // upgraded emitter): unknown, never 'rejected', which told execution nothing traded and let the
      // planner hedge again beside a live order.
      record.status = 'outcome-unknown';
      record.error = `order creation succeeded (${receipt.transactionHash}) but emitted no OrderCreated event from the EventEmitter ${this.p.eventEmitter} for this account: check the eventEmitter setting; the order may exist`;
      return;
    }
    if (!key) {
      record.status = 'rejected';
      record.error = 'order creation reverted';
      return;
    }
    record.orderKey = key;
    record.orderBlock = receipt.blockNumber.toString();
    record.status = 'acknowledged';
  }

  /** The EventEmitter's EventLog2 events of order `key` (topic1 = key) from `fromBlock` on. */
  private async orderEvents(key: Hex, fromBlock: bigint): Promise<GmxEvent[]> {
    const logs = await this.errors.read(() =>
      this.ctx.publicClient.getContractEvents({
        address: this.p.eventEmitter,
        abi: eventEmitterAbi,
        eventName: 'EventLog2',
        args: { topic1: key },
        fromBlock,
      }),
    );
    return parseGmxEvents(logs, this.p.eventEmitter, ['OrderExecuted', 'OrderCancelled']);
  }

  /** Applies an OrderExecuted: the fill comes from the execution transaction's position events. */
  private async applyExecuted(r: GmxOrderRecord, key: Hex, ev: GmxEvent): Promise<void> {
    const m = await this.market(r.instrument);
    const hash = ev.transactionHash;
    if (!hash) throw new Error(`${this.id}: OrderExecuted of ${key} has no transaction hash`);
    const receipt = await this.errors.read(() => this.ctx.publicClient.getTransactionReceipt({ hash }));
    const fill = orderFillFromEvents(parseGmxEvents(receipt.logs, this.p.eventEmitter), key);
    if (!fill)
      throw new Error(
        `${this.id}: order ${key} executed in ${hash} without a PositionIncrease/PositionDecrease event for it`,
      );
    r.status = 'filled';
    r.filledSizeBase = fromUnits(fill.sizeDeltaInTokens, m.decimals);
    r.avgFillPriceUsd = gmxPriceToUsdDecimal(fill.executionPrice, m.decimals);
    // the position fee, taken in the collateral (a USD stablecoin, see collateral()): USD at par
    r.feeUsd = Number(fromUnits(fill.positionFeeAmount, (await this.collateral()).decimals));
    r.gasUsd = await this.orderGasUsd(r, receipt);
  }

  /**
   * What a filled order cost in gas, USD (its fill's `gasUsd`): the creating transaction's gas
   * (`createGasWei`) and the execution fee the keeper kept (`executionFeeWei` less the
   * `ExecutionFeeRefund` to the account in the execution transaction `execution`; the local contract's
   * keeper keeps it all), at the ETH price now (`params.gasAssetUsd` when it cannot be read: the fill is
   * not held back for a price). A record without them (written before they were kept) counts 0 for each.
   */
  private async orderGasUsd(r: GmxOrderRecord, execution: TransactionReceipt): Promise<number> {
    const wei = (v: string | undefined) => (v !== undefined && /^[0-9]+$/.test(v) ? BigInt(v) : 0n);
    const fee = wei(r.executionFeeWei);
    const refund = executionFeeRefundWei(parseGmxEvents(execution.logs, this.p.eventEmitter), this.account);
    const totalWei = wei(r.createGasWei) + (refund < fee ? fee - refund : 0n);
    const ethUsd = await this.ethUsd().catch(() => this.p.gasAssetUsd);
    return new Dec(totalWei.toString()).div(new Dec(10).pow(18)).mul(ethUsd).toNumber();
  }

  /** Brings a record up to date from the chain (tx receipt, order existence, execution/cancel events). */
  private async reconcile(record: GmxOrderRecord): Promise<GmxOrderRecord> {
    if (TERMINAL_ORDER_STATUSES.has(record.status)) return record;
    const r = { ...record };
    if (!r.orderKey) {
      if (!r.txHash) return r;
      await applySentTxStatus(
        {
          sender: this.sender,
          errors: this.errors,
          clock: this.clock,
          spendCaps: (await this.collateral()).spendCaps,
        },
        r,
        r.txHash,
        (x, receipt) => this.applyCreateReceipt(x, receipt),
      );
      // No order key: not created (cancelled, reverted, replaced) or not known yet.
      if (!r.orderKey) {
        await this.store.put(r.clientOrderId, r);
        return r;
      }
    }
    const key = r.orderKey as Hex;
    const order = await this.errors.read(() =>
      this.ctx.publicClient.readContract({
        address: this.p.reader,
        abi: readerAbi,
        functionName: 'getOrder',
        args: [this.p.dataStore, key],
      }),
    );
    if (order.addresses.account !== zeroAddress) {
      r.status = 'acknowledged';
    } else {
      // events come at or after the block that created the order (older records: from genesis)
      const events = await this.orderEvents(key, BigInt(r.orderBlock ?? 0));
      const ex = events.find((e) => e.eventName === 'OrderExecuted');
      const ca = events.find((e) => e.eventName === 'OrderCancelled');
      if (ex) {
        await this.applyExecuted(r, key, ex);
      } else if (ca) {
        r.status = 'cancelled';
        r.error = orderCancelReason(ca);
      } else {
        r.status = 'outcome-unknown';
      }
    }
    r.updatedAtMs = this.clock.nowMs();
    await this.store.put(r.clientOrderId, r);
    return r;
  }

  private recordedSendDeps(): RecordedSendDeps<GmxOrderRecord> {
    return {
      sender: this.sender,
      store: this.store,
      clock: this.clock,
      wrap: (err, cid) => this.errors.wrap(err, cid),
    };
  }

  private toOrder(r: GmxOrderRecord): Order {
    return orderFromRecord(this.id, r, r.orderKey ?? r.txHash);
  }

  async getOrderByClientId(clientOrderId: string): Promise<Order | null> {
    const r = await this.store.get(clientOrderId);
    if (!r) return null;
    return this.toOrder(await this.reconcile(r));
  }

  async cancelOrder(clientOrderId: string): Promise<Order> {
    const r0 = await this.store.get(clientOrderId);
    if (!r0)
      throw new OrderNotFoundError({ venue: this.id, clientOrderId, message: `no order ${clientOrderId}` });
    const r = await this.reconcile(r0);
    if (TERMINAL_ORDER_STATUSES.has(r.status)) return this.toOrder(r);
    try {
      if (r.orderKey) {
        await this.sender.send(
          {
            to: this.p.exchangeRouter,
            data: encodeFunctionData({
              abi: exchangeRouterAbi,
              functionName: 'cancelOrder',
              args: [r.orderKey],
            }),
          },
          // a cancel stops an order from executing (the kill switch's cancel pass among others): it may go
          // up to the fee cap without room for a replacement, rather than wait while the keeper may run it
          { clientOrderId, urgency: 'urgent', allowUnreplaceableUnderCap: true },
        );
      } else if (r.txHash && r.nonce !== undefined) {
        // Not mined yet: occupy its nonce with a 0-value self-transfer so it can never be.
        await replaceByNonce(this.sender, this.store, r, { hash: r.txHash, nonce: r.nonce });
      }
    } catch (err) {
      // The chain decides, as in Lyra: the order may have executed (the cancel raced the keeper), or been
      // cancelled by another transaction that took the cancel's nonce (NotConfirmedError with
      // `replacedBy`: a speed-up, another process of the account). A final state is the answer; an order
      // still working gets the cancel's error (a replaced cancel will never be mined: ask again), and so
      // does one whose read failed (the read's failure in its details).
      return this.toOrder(await afterFailedCancel(this.errors, err, clientOrderId, () => this.reconcile(r)));
    }
    return this.toOrder(await this.reconcile(r));
  }

  /**
   * The account's orders waiting for a keeper, from `Reader.getAccountOrders` (its ACCOUNT_ORDER_LIST,
   * paged), each with the client order id when this adapter's order store has its key.
   */
  async fetchWorkingOrders(): Promise<GmxWorkingOrder[]> {
    const map = await this.marketMap();
    const byKey = new Map(
      (await this.store.list())
        .filter((r) => r.orderKey !== undefined)
        .map((r) => [(r.orderKey as string).toLowerCase(), r.clientOrderId] as const),
    );
    const PAGE = 100n;
    const out: GmxWorkingOrder[] = [];
    for (let start = 0n; ; start += PAGE) {
      const page = await this.errors.read(() =>
        this.ctx.publicClient.readContract({
          address: this.p.reader,
          abi: readerAbi,
          functionName: 'getAccountOrders',
          args: [this.p.dataStore, this.account, start, start + PAGE],
        }),
      );
      for (const { orderKey, order } of page) {
        const cid = byKey.get(orderKey.toLowerCase());
        const instrument = [...map].find(
          ([, m]) => m.marketToken.toLowerCase() === order.addresses.market.toLowerCase(),
        )?.[0];
        out.push({
          orderKey,
          ...(cid !== undefined ? { clientOrderId: cid } : {}),
          ...(instrument !== undefined ? { instrument } : {}),
          market: order.addresses.market,
          orderType: order.numbers.orderType,
          isLong: order.flags.isLong,
          sizeDeltaUsd30: order.numbers.sizeDeltaUsd,
          acceptablePrice: order.numbers.acceptablePrice,
          executionFeeWei: order.numbers.executionFee,
          updatedAtMs: Number(order.numbers.updatedAtTime) * 1000,
        });
      }
      if (BigInt(page.length) < PAGE) break;
    }
    return out;
  }

  /**
   * Reachability and data age: the age of the newest mark, against the latest block's time when
   * prices come from the chain's oracle, against the clock when they come from `params.pricesUrl`.
   */
  async health(): Promise<VenueHealth> {
    const t0 = this.clock.nowMs();
    try {
      const block = await this.ctx.publicClient.getBlock({ blockTag: 'latest' });
      const marks = await this.fetchMarks();
      const newest = Math.max(0, ...marks.map((m) => m.asOfMs));
      const nowMs = this.p.pricesUrl ? this.clock.nowMs() : Number(block.timestamp) * 1000;
      return {
        ok: true,
        latencyMs: this.clock.nowMs() - t0,
        halted: false,
        dataAgeMs: Math.max(0, nowMs - newest),
        details: { blockNumber: block.number?.toString() },
      };
    } catch (err) {
      return unreachableHealth(this.clock.nowMs() - t0, this.errors.wrap(err));
    }
  }
}

/** Options of {@link createGmxVenue} beyond the venue config. */
export type CreateGmxVenueDeps = CreateOnChainVenueDeps<GmxOrderRecord>;

/** Builds a `gmx` venue from its operator config (kind `gmx`; params: {@link GmxVenueParams}). */
export function createGmxVenue(venue: EvmVenueConfigLike, deps: CreateGmxVenueDeps = {}): GmxVenue {
  return onChainVenueFromConfig<GmxVenueParamsInput, GmxOrderRecord, GmxVenue>(
    venue,
    deps,
    (id, params, d) => new GmxVenue(id, params, d),
  );
}
