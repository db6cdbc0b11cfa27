import { PublicKey } from '@solana/web3.js';
import { XhedgeError } from '@xhedge/core';
import {
  CONTRACT_TYPE,
  type DriftContractType,
  type DriftDirection,
  type DriftMarketStatus,
  type DriftMarketType,
  type DriftOrderStatus,
  type DriftOrderType,
  FEE_DENOMINATOR,
  FEE_TIER,
  MARKET_STATUS,
  MARKET_TYPE,
  MAX_MAKER_REBATE_NUMERATOR,
  MAX_TAKER_FEE_NUMERATOR,
  ORDER,
  ORDER_STATUS,
  ORDER_TYPE,
  PERP_MARKET,
  PERP_MARKET_DISCRIMINATOR,
  PERP_MARKET_SIZE,
  PERP_POSITION,
  POSITION_DIRECTION,
  POSITION_FLAG,
  SPOT_MARKET,
  SPOT_MARKET_DISCRIMINATOR,
  SPOT_MARKET_SIZE,
  SPOT_POSITION,
  STATE,
  STATE_DISCRIMINATOR,
  STATE_SIZE,
  USER,
  USER_DISCRIMINATOR,
  USER_SIZE,
} from './layout.ts';

/** An account's bytes do not match the Drift layout (wrong discriminator, short data, unknown enum). */
export class DriftDecodeError extends XhedgeError {
  override name = 'DriftDecodeError';
  constructor(what: string, reason: string) {
    super('DRIFT_DECODE', `cannot decode Drift ${what}: ${reason}`, { details: { what, reason } });
  }
}

export interface DriftPerpPosition {
  marketIndex: number;
  /** Signed, BASE_PRECISION (1e9). */
  baseAssetAmount: bigint;
  /** Signed, QUOTE_PRECISION (1e6). */
  quoteAssetAmount: bigint;
  quoteEntryAmount: bigint;
  quoteBreakEvenAmount: bigint;
  /** Base of open bid / ask orders, BASE_PRECISION. */
  openBids: bigint;
  openAsks: bigint;
  openOrders: number;
  /** FUNDING_RATE_PRECISION (1e9). */
  lastCumulativeFundingRate: bigint;
  /**
   * The collateral of an isolated position, SPOT_BALANCE_PRECISION (1e9), a deposit in the quote spot
   * market before its cumulative deposit interest; 0 for a cross-margin position. It is not in the
   * user's spot positions.
   */
  isolatedPositionScaledBalance: bigint;
  /** `position_flag` bits: isolated, being liquidated, bankrupt (see `POSITION_FLAG`). */
  positionFlag: number;
  /** Legacy LP shares, BASE_PRECISION. */
  lpShares: bigint;
  /** Custom initial margin ratio of this position, MARGIN_PRECISION (0: none). */
  maxMarginRatio: number;
}

export interface DriftSpotPosition {
  marketIndex: number;
  /** SPOT_BALANCE_PRECISION (1e9), before the cumulative interest factor. */
  scaledBalance: bigint;
  balanceType: 'deposit' | 'borrow';
  openOrders: number;
  /** Base of open spot bids / asks, in the token's precision. */
  openBids: bigint;
  openAsks: bigint;
}

export interface DriftOrder {
  slot: bigint;
  orderId: number;
  userOrderId: number;
  marketIndex: number;
  marketType: DriftMarketType;
  status: DriftOrderStatus;
  orderType: DriftOrderType;
  direction: DriftDirection;
  /** PRICE_PRECISION (1e6). */
  price: bigint;
  /** BASE_PRECISION (1e9). */
  baseAssetAmount: bigint;
  baseAssetAmountFilled: bigint;
  /** QUOTE_PRECISION (1e6). */
  quoteAssetAmountFilled: bigint;
  maxTs: bigint;
  reduceOnly: boolean;
  immediateOrCancel: boolean;
}

export interface DriftUser {
  authority: PublicKey;
  delegate: PublicKey;
  name: string;
  subAccountId: number;
  status: number;
  nextOrderId: number;
  lastActiveSlot: bigint;
  /** The user's custom initial margin ratio, MARGIN_PRECISION (0: none); the program uses it when above a market's. */
  maxMarginRatio: number;
  /**
   * Only the slots in use: those the program does not count as available (`PerpPosition::is_available`:
   * base, open orders or open bids/asks, unsettled quote, isolated collateral, a liquidation flag), and
   * slots holding LP shares, which the SDK also counts. The margin calculation reads the market of
   * every one of them, so an order transaction must carry those markets.
   */
  perpPositions: DriftPerpPosition[];
  spotPositions: DriftSpotPosition[];
  /**
   * Orders whose status is not `init` (an empty slot). A filled or cancelled order keeps its slot, its
   * status (`filled` / `canceled`) and its fill amounts until a later order takes that slot (the program
   * puts a new order in the first slot that is not open).
   */
  orders: DriftOrder[];
}

export interface DriftPerpMarket {
  pubkey: PublicKey;
  marketIndex: number;
  name: string;
  status: DriftMarketStatus;
  oracle: PublicKey;
  /** PRICE_PRECISION. The program's last read of its oracle. */
  lastOraclePrice: bigint;
  lastOracleConf: bigint;
  lastOraclePriceTwap: bigint;
  lastOraclePriceTwapTs: bigint;
  /** AMM_RESERVE_PRECISION (1e9). */
  baseAssetReserve: bigint;
  quoteAssetReserve: bigint;
  sqrtK: bigint;
  /** PEG_PRECISION (1e6). */
  pegMultiplier: bigint;
  /** Quote per base per funding period, FUNDING_RATE_PRECISION (1e9). */
  lastFundingRate: bigint;
  /**
   * Funding paid per base since the market opened, FUNDING_RATE_PRECISION; a position owes the change
   * since its `lastCumulativeFundingRate` (longs against the long rate, shorts against the short one).
   */
  cumulativeFundingRateLong: bigint;
  cumulativeFundingRateShort: bigint;
  lastFundingRateTs: bigint;
  /** Seconds. */
  fundingPeriod: bigint;
  lastMarkPriceTwap: bigint;
  lastUpdateSlot: bigint;
  /** BASE_PRECISION. */
  orderStepSize: bigint;
  /** PRICE_PRECISION. */
  orderTickSize: bigint;
  /** BASE_PRECISION. */
  minOrderSize: bigint;
  /** Signed base of all longs / shorts, BASE_PRECISION. */
  baseAssetAmountLong: bigint;
  baseAssetAmountShort: bigint;
  maxOpenInterest: bigint;
  /** MARGIN_PRECISION (1e4). */
  marginRatioInitial: number;
  marginRatioMaintenance: number;
  /** Size premium on the margin ratio, SPOT_IMF_PRECISION (1e6); 0: none. */
  imfFactor: number;
  /** Weight of positive unrealized P&L for initial margin, SPOT_WEIGHT_PRECISION (1e4). */
  unrealizedPnlInitialAssetWeight: number;
  /** Size discount on that weight for large positive P&L, SPOT_IMF_PRECISION; 0: none. */
  unrealizedPnlImfFactor: number;
  /** QUOTE_PRECISION; 0: no imbalance discount. */
  unrealizedPnlMaxImbalance: bigint;
  /** AMM totals the program's net user P&L reads (`calculate_net_user_pnl`): BASE_PRECISION, QUOTE_PRECISION. */
  baseAssetAmountWithAmm: bigint;
  baseAssetAmountWithUnsettledLp: bigint;
  ammQuoteAssetAmount: bigint;
  quoteAssetAmountWithUnsettledLp: bigint;
  netUnsettledFundingPnl: bigint;
  /** PRICE_PRECISION; the valuation price once the market is in settlement. */
  expiryPrice: bigint;
  contractType: DriftContractType;
  quoteSpotMarketIndex: number;
  /**
   * Percent by which the market scales every fee (protocol-v2 `fee_adjustment`, i16): −100 (no fee)
   * ..= +100 (double), 0 for none.
   */
  feeAdjustment: number;
}

/**
 * One perp fee tier of the State account (protocol-v2 `FeeTier`), as the fractions the program
 * applies: a taker pays ceil(quote × takerFeeNumerator / takerFeeDenominator) of a fill's quote amount,
 * a maker is paid floor(quote × makerRebateNumerator / makerRebateDenominator). FEE_DENOMINATOR
 * (1e5) is the program's denominator: 100 / 100000 = 10 bps.
 */
export interface DriftFeeTier {
  takerFeeNumerator: number;
  takerFeeDenominator: number;
  makerRebateNumerator: number;
  makerRebateDenominator: number;
}

/** What the adapter reads of the program's State account. */
export interface DriftState {
  /**
   * `perp_fee_structure.fee_tiers`, all 10. The program picks a user's tier from its 30-day volume and
   * governance stake (`determine_perp_fee_tier`); tier 0 is an account with neither, the highest fee.
   */
  perpFeeTiers: DriftFeeTier[];
}

function u128(buf: Buffer, off: number): bigint {
  return buf.readBigUInt64LE(off) + (buf.readBigUInt64LE(off + 8) << 64n);
}
function i128(buf: Buffer, off: number): bigint {
  return buf.readBigUInt64LE(off) + (buf.readBigInt64LE(off + 8) << 64n);
}
function enumAt<T extends readonly string[]>(values: T, index: number, what: string): T[number] {
  const v = values[index];
  if (v === undefined) throw new DriftDecodeError(what, `enum index ${index} out of range`);
  return v;
}
function fixedString(buf: Buffer, off: number): string {
  return buf
    .subarray(off, off + 32)
    .toString('utf8')
    .replace(/[\0 ]+$/, '');
}
function checkHeader(data: Uint8Array, disc: Buffer, size: number, what: string): Buffer {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (buf.length < size) throw new DriftDecodeError(what, `expected ${size} bytes, got ${buf.length}`);
  if (!buf.subarray(0, 8).equals(disc)) throw new DriftDecodeError(what, 'discriminator mismatch');
  return buf;
}

/**
 * Whether a perp position slot is in use: protocol-v2 `PerpPosition::is_available` negated (base, open
 * orders, open bids/asks, quote with no base, isolated collateral, being liquidated or bankrupt), or
 * LP shares (the SDK's `positionIsAvailable` also checks them). Erring towards "in use" only adds a
 * market to an order transaction; missing one makes the program fail it.
 */
function perpPositionInUse(p: DriftPerpPosition): boolean {
  return (
    p.baseAssetAmount !== 0n ||
    p.openOrders !== 0 ||
    p.openBids !== 0n ||
    p.openAsks !== 0n ||
    p.quoteAssetAmount !== 0n ||
    p.isolatedPositionScaledBalance !== 0n ||
    p.lpShares !== 0n ||
    (p.positionFlag & (POSITION_FLAG.beingLiquidated | POSITION_FLAG.bankrupt)) !== 0
  );
}

export function decodeUser(data: Uint8Array): DriftUser {
  const buf = checkHeader(data, USER_DISCRIMINATOR, USER_SIZE, 'User');
  const perpPositions: DriftPerpPosition[] = [];
  for (let i = 0; i < USER.perpPositionCount; i++) {
    const o = USER.perpPositions + i * USER.perpPositionSize;
    const p: DriftPerpPosition = {
      marketIndex: buf.readUInt16LE(o + PERP_POSITION.marketIndex),
      baseAssetAmount: buf.readBigInt64LE(o + PERP_POSITION.baseAssetAmount),
      quoteAssetAmount: buf.readBigInt64LE(o + PERP_POSITION.quoteAssetAmount),
      quoteEntryAmount: buf.readBigInt64LE(o + PERP_POSITION.quoteEntryAmount),
      quoteBreakEvenAmount: buf.readBigInt64LE(o + PERP_POSITION.quoteBreakEvenAmount),
      openBids: buf.readBigInt64LE(o + PERP_POSITION.openBids),
      openAsks: buf.readBigInt64LE(o + PERP_POSITION.openAsks),
      openOrders: buf.readUInt8(o + PERP_POSITION.openOrders),
      lastCumulativeFundingRate: buf.readBigInt64LE(o + PERP_POSITION.lastCumulativeFundingRate),
      isolatedPositionScaledBalance: buf.readBigUInt64LE(o + PERP_POSITION.isolatedPositionScaledBalance),
      positionFlag: buf.readUInt8(o + PERP_POSITION.positionFlag),
      lpShares: buf.readBigUInt64LE(o + PERP_POSITION.lpShares),
      maxMarginRatio: buf.readUInt16LE(o + PERP_POSITION.maxMarginRatio),
    };
    if (perpPositionInUse(p)) perpPositions.push(p);
  }
  const spotPositions: DriftSpotPosition[] = [];
  for (let i = 0; i < USER.spotPositionCount; i++) {
    const o = USER.spotPositions + i * USER.spotPositionSize;
    const scaledBalance = buf.readBigUInt64LE(o + SPOT_POSITION.scaledBalance);
    const openOrders = buf.readUInt8(o + SPOT_POSITION.openOrders);
    if (scaledBalance === 0n && openOrders === 0) continue;
    spotPositions.push({
      marketIndex: buf.readUInt16LE(o + SPOT_POSITION.marketIndex),
      scaledBalance,
      balanceType: buf.readUInt8(o + SPOT_POSITION.balanceType) === 0 ? 'deposit' : 'borrow',
      openOrders,
      openBids: buf.readBigInt64LE(o + SPOT_POSITION.openBids),
      openAsks: buf.readBigInt64LE(o + SPOT_POSITION.openAsks),
    });
  }
  const orders: DriftOrder[] = [];
  for (let i = 0; i < USER.orderCount; i++) {
    const o = USER.orders + i * USER.orderSize;
    const status = enumAt(ORDER_STATUS, buf.readUInt8(o + ORDER.status), 'Order.status');
    if (status === 'init') continue;
    orders.push({
      slot: buf.readBigUInt64LE(o + ORDER.slot),
      orderId: buf.readUInt32LE(o + ORDER.orderId),
      userOrderId: buf.readUInt8(o + ORDER.userOrderId),
      marketIndex: buf.readUInt16LE(o + ORDER.marketIndex),
      marketType: enumAt(MARKET_TYPE, buf.readUInt8(o + ORDER.marketType), 'Order.market_type'),
      status,
      orderType: enumAt(ORDER_TYPE, buf.readUInt8(o + ORDER.orderType), 'Order.order_type'),
      direction: enumAt(POSITION_DIRECTION, buf.readUInt8(o + ORDER.direction), 'Order.direction'),
      price: buf.readBigUInt64LE(o + ORDER.price),
      baseAssetAmount: buf.readBigUInt64LE(o + ORDER.baseAssetAmount),
      baseAssetAmountFilled: buf.readBigUInt64LE(o + ORDER.baseAssetAmountFilled),
      quoteAssetAmountFilled: buf.readBigUInt64LE(o + ORDER.quoteAssetAmountFilled),
      maxTs: buf.readBigInt64LE(o + ORDER.maxTs),
      reduceOnly: buf.readUInt8(o + ORDER.reduceOnly) !== 0,
      immediateOrCancel: buf.readUInt8(o + ORDER.immediateOrCancel) !== 0,
    });
  }
  return {
    authority: new PublicKey(buf.subarray(USER.authority, USER.authority + 32)),
    delegate: new PublicKey(buf.subarray(USER.delegate, USER.delegate + 32)),
    name: fixedString(buf, USER.name),
    subAccountId: buf.readUInt16LE(USER.subAccountId),
    status: buf.readUInt8(USER.status),
    nextOrderId: buf.readUInt32LE(USER.nextOrderId),
    lastActiveSlot: buf.readBigUInt64LE(USER.lastActiveSlot),
    maxMarginRatio: buf.readUInt32LE(USER.maxMarginRatio),
    perpPositions,
    spotPositions,
    orders,
  };
}

export function decodePerpMarket(data: Uint8Array): DriftPerpMarket {
  const buf = checkHeader(data, PERP_MARKET_DISCRIMINATOR, PERP_MARKET_SIZE, 'PerpMarket');
  const M = PERP_MARKET;
  return {
    pubkey: new PublicKey(buf.subarray(M.pubkey, M.pubkey + 32)),
    marketIndex: buf.readUInt16LE(M.marketIndex),
    name: fixedString(buf, M.name),
    status: enumAt(MARKET_STATUS, buf.readUInt8(M.status), 'PerpMarket.status'),
    oracle: new PublicKey(buf.subarray(M.oracle, M.oracle + 32)),
    lastOraclePrice: buf.readBigInt64LE(M.lastOraclePrice),
    lastOracleConf: buf.readBigUInt64LE(M.lastOracleConf),
    lastOraclePriceTwap: buf.readBigInt64LE(M.lastOraclePriceTwap),
    lastOraclePriceTwapTs: buf.readBigInt64LE(M.lastOraclePriceTwapTs),
    baseAssetReserve: u128(buf, M.baseAssetReserve),
    quoteAssetReserve: u128(buf, M.quoteAssetReserve),
    sqrtK: u128(buf, M.sqrtK),
    pegMultiplier: u128(buf, M.pegMultiplier),
    lastFundingRate: buf.readBigInt64LE(M.lastFundingRate),
    cumulativeFundingRateLong: i128(buf, M.cumulativeFundingRateLong),
    cumulativeFundingRateShort: i128(buf, M.cumulativeFundingRateShort),
    lastFundingRateTs: buf.readBigInt64LE(M.lastFundingRateTs),
    fundingPeriod: buf.readBigInt64LE(M.fundingPeriod),
    lastMarkPriceTwap: buf.readBigUInt64LE(M.lastMarkPriceTwap),
    lastUpdateSlot: buf.readBigUInt64LE(M.lastUpdateSlot),
    orderStepSize: buf.readBigUInt64LE(M.orderStepSize),
    orderTickSize: buf.readBigUInt64LE(M.orderTickSize),
    minOrderSize: buf.readBigUInt64LE(M.minOrderSize),
    baseAssetAmountLong: i128(buf, M.baseAssetAmountLong),
    baseAssetAmountShort: i128(buf, M.baseAssetAmountShort),
    maxOpenInterest: u128(buf, M.maxOpenInterest),
    marginRatioInitial: buf.readUInt32LE(M.marginRatioInitial),
    marginRatioMaintenance: buf.readUInt32LE(M.marginRatioMaintenance),
    imfFactor: buf.readUInt32LE(M.imfFactor),
    unrealizedPnlInitialAssetWeight: buf.readUInt32LE(M.unrealizedPnlInitialAssetWeight),
    unrealizedPnlImfFactor: buf.readUInt32LE(M.unrealizedPnlImfFactor),
    unrealizedPnlMaxImbalance: buf.readBigUInt64LE(M.unrealizedPnlMaxImbalance),
    baseAssetAmountWithAmm: i128(buf, M.baseAssetAmountWithAmm),
    baseAssetAmountWithUnsettledLp: i128(buf, M.baseAssetAmountWithUnsettledLp),
    ammQuoteAssetAmount: i128(buf, M.quoteAssetAmount),
    quoteAssetAmountWithUnsettledLp: buf.readBigInt64LE(M.quoteAssetAmountWithUnsettledLp),
    netUnsettledFundingPnl: buf.readBigInt64LE(M.netUnsettledFundingPnl),
    expiryPrice: buf.readBigInt64LE(M.expiryPrice),
    contractType: enumAt(CONTRACT_TYPE, buf.readUInt8(M.contractType), 'PerpMarket.contract_type'),
    quoteSpotMarketIndex: buf.readUInt16LE(M.quoteSpotMarketIndex),
    feeAdjustment: buf.readInt16LE(M.feeAdjustment),
  };
}

/**
 * The perp fee tiers of the State account (a borsh account: see `STATE`). Each tier is checked against
 * the bounds `validate_fee_tier` holds every tier the program accepts to (taker fee numerator ≤ 300 and
 * maker rebate numerator ≤ 30, each over a denominator ≥ FEE_DENOMINATOR): bytes outside them are not a
 * Drift State (a wrong program id, or a layout change), and are refused rather than read as a fee.
 */
export function decodeState(data: Uint8Array): DriftState {
  const buf = checkHeader(data, STATE_DISCRIMINATOR, STATE_SIZE, 'State');
  const perpFeeTiers: DriftFeeTier[] = [];
  for (let i = 0; i < STATE.feeTierCount; i++) {
    const o = STATE.perpFeeTiers + i * STATE.feeTierSize;
    const t: DriftFeeTier = {
      takerFeeNumerator: buf.readUInt32LE(o + FEE_TIER.feeNumerator),
      takerFeeDenominator: buf.readUInt32LE(o + FEE_TIER.feeDenominator),
      makerRebateNumerator: buf.readUInt32LE(o + FEE_TIER.makerRebateNumerator),
      makerRebateDenominator: buf.readUInt32LE(o + FEE_TIER.makerRebateDenominator),
    };
    const what = `perp_fee_structure.fee_tiers[${i}]`;
    if (t.takerFeeNumerator > MAX_TAKER_FEE_NUMERATOR || t.takerFeeDenominator < FEE_DENOMINATOR)
      throw new DriftDecodeError(
        'State',
        `${what} taker fee ${t.takerFeeNumerator}/${t.takerFeeDenominator} is outside what the program accepts (numerator ≤ ${MAX_TAKER_FEE_NUMERATOR}, denominator ≥ ${FEE_DENOMINATOR}): not a Drift State account of this layout`,
      );
    if (t.makerRebateNumerator > MAX_MAKER_REBATE_NUMERATOR || t.makerRebateDenominator < FEE_DENOMINATOR)
      throw new DriftDecodeError(
        'State',
        `${what} maker rebate ${t.makerRebateNumerator}/${t.makerRebateDenominator} is outside what the program accepts (numerator ≤ ${MAX_MAKER_REBATE_NUMERATOR}, denominator ≥ ${FEE_DENOMINATOR}): not a Drift State account of this layout`,
      );
    perpFeeTiers.push(t);
  }
  return { perpFeeTiers };
}

export interface DriftSpotMarket {
  pubkey: PublicKey;
  marketIndex: number;
  /**
   * The oracle the program reads to value this market's balances; `PublicKey.default` means the
   * quote-asset price of 1 and no oracle account (on mainnet even USDC has a real oracle).
   */
  oracle: PublicKey;
  name: string;
  decimals: number;
  /** SPOT_CUMULATIVE_INTEREST_PRECISION (1e10). */
  cumulativeDepositInterest: bigint;
  /** SPOT_CUMULATIVE_INTEREST_PRECISION (1e10): scales borrows as the deposit index scales deposits. */
  cumulativeBorrowInterest: bigint;
}

export function decodeSpotMarket(data: Uint8Array): DriftSpotMarket {
  const buf = checkHeader(data, SPOT_MARKET_DISCRIMINATOR, SPOT_MARKET_SIZE, 'SpotMarket');
  return {
    pubkey: new PublicKey(buf.subarray(SPOT_MARKET.pubkey, SPOT_MARKET.pubkey + 32)),
    oracle: new PublicKey(buf.subarray(SPOT_MARKET.oracle, SPOT_MARKET.oracle + 32)),
    marketIndex: buf.readUInt16LE(SPOT_MARKET.marketIndex),
    name: fixedString(buf, SPOT_MARKET.name),
    decimals: buf.readUInt32LE(SPOT_MARKET.decimals),
    cumulativeDepositInterest: u128(buf, SPOT_MARKET.cumulativeDepositInterest),
    cumulativeBorrowInterest: u128(buf, SPOT_MARKET.cumulativeBorrowInterest),
  };
}
