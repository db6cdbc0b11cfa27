import { PublicKey } from '@solana/web3.js';
import type {
  DriftFeeTier,
  DriftOrder,
  DriftPerpMarket,
  DriftPerpPosition,
  DriftSpotMarket,
  DriftSpotPosition,
} from './decode.ts';
import {
  CONTRACT_TYPE,
  FEE_DENOMINATOR,
  FEE_TIER,
  MARKET_STATUS,
  MARKET_TYPE,
  ORDER,
  ORDER_STATUS,
  ORDER_TYPE,
  PERP_MARKET,
  PERP_MARKET_DISCRIMINATOR,
  PERP_MARKET_SIZE,
  PERP_POSITION,
  POSITION_DIRECTION,
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
  USER_STATS,
  USER_STATS_DISCRIMINATOR,
  USER_STATS_SIZE,
} from './layout.ts';

/**
 * Writers of Drift account bytes, the inverse of decode.ts. They exist to inject program accounts
 * into a local SVM (litesvm) and to build fixtures: the local SVM cannot run the Drift program, so
 * the state it would have written is written here, at the same offsets.
 */
export interface UserAccountInit {
  authority: PublicKey;
  delegate?: PublicKey;
  name?: string;
  subAccountId?: number;
  nextOrderId?: number;
  /** `User.status` bits (USER_STATUS). */
  status?: number;
  /** Custom initial margin ratio, MARGIN_PRECISION. */
  maxMarginRatio?: number;
  perpPositions?: readonly Partial<DriftPerpPosition>[];
  spotPositions?: readonly Partial<DriftSpotPosition>[];
  orders?: readonly Partial<DriftOrder>[];
}

function writeU128(buf: Buffer, off: number, v: bigint): void {
  buf.writeBigUInt64LE(v & 0xffff_ffff_ffff_ffffn, off);
  buf.writeBigUInt64LE(v >> 64n, off + 8);
}
function writeI128(buf: Buffer, off: number, v: bigint): void {
  buf.writeBigUInt64LE(BigInt.asUintN(64, v), off);
  buf.writeBigInt64LE(BigInt.asIntN(64, v >> 64n), off + 8);
}
function writeName(buf: Buffer, off: number, name: string): void {
  buf.fill(0x20, off, off + 32);
  buf.write(name.slice(0, 32), off, 'utf8');
}
function idx(values: readonly string[], v: string): number {
  const i = values.indexOf(v);
  if (i < 0) throw new RangeError(`unknown Drift enum value ${v}`);
  return i;
}

export function encodeUserAccount(init: UserAccountInit): Buffer {
  const buf = Buffer.alloc(USER_SIZE);
  USER_DISCRIMINATOR.copy(buf, 0);
  init.authority.toBuffer().copy(buf, USER.authority);
  (init.delegate ?? PublicKey.default).toBuffer().copy(buf, USER.delegate);
  writeName(buf, USER.name, init.name ?? 'Main Account');
  buf.writeUInt16LE(init.subAccountId ?? 0, USER.subAccountId);
  buf.writeUInt8(init.status ?? 0, USER.status);
  buf.writeUInt32LE(init.nextOrderId ?? 1, USER.nextOrderId);
  buf.writeUInt32LE(init.maxMarginRatio ?? 0, USER.maxMarginRatio);
  (init.spotPositions ?? []).slice(0, USER.spotPositionCount).forEach((s, i) => {
    const o = USER.spotPositions + i * USER.spotPositionSize;
    buf.writeBigUInt64LE(s.scaledBalance ?? 0n, o + SPOT_POSITION.scaledBalance);
    buf.writeUInt16LE(s.marketIndex ?? 0, o + SPOT_POSITION.marketIndex);
    buf.writeUInt8(s.balanceType === 'borrow' ? 1 : 0, o + SPOT_POSITION.balanceType);
    buf.writeUInt8(s.openOrders ?? 0, o + SPOT_POSITION.openOrders);
    buf.writeBigInt64LE(s.openBids ?? 0n, o + SPOT_POSITION.openBids);
    buf.writeBigInt64LE(s.openAsks ?? 0n, o + SPOT_POSITION.openAsks);
  });
  (init.perpPositions ?? []).slice(0, USER.perpPositionCount).forEach((p, i) => {
    const o = USER.perpPositions + i * USER.perpPositionSize;
    buf.writeBigInt64LE(p.lastCumulativeFundingRate ?? 0n, o + PERP_POSITION.lastCumulativeFundingRate);
    buf.writeBigInt64LE(p.baseAssetAmount ?? 0n, o + PERP_POSITION.baseAssetAmount);
    buf.writeBigInt64LE(p.quoteAssetAmount ?? 0n, o + PERP_POSITION.quoteAssetAmount);
    buf.writeBigInt64LE(p.quoteBreakEvenAmount ?? 0n, o + PERP_POSITION.quoteBreakEvenAmount);
    buf.writeBigInt64LE(p.quoteEntryAmount ?? 0n, o + PERP_POSITION.quoteEntryAmount);
    buf.writeBigInt64LE(p.openBids ?? 0n, o + PERP_POSITION.openBids);
    buf.writeBigInt64LE(p.openAsks ?? 0n, o + PERP_POSITION.openAsks);
    buf.writeUInt16LE(p.marketIndex ?? 0, o + PERP_POSITION.marketIndex);
    buf.writeUInt8(p.openOrders ?? 0, o + PERP_POSITION.openOrders);
    buf.writeBigUInt64LE(
      p.isolatedPositionScaledBalance ?? 0n,
      o + PERP_POSITION.isolatedPositionScaledBalance,
    );
    buf.writeUInt8(p.positionFlag ?? 0, o + PERP_POSITION.positionFlag);
    buf.writeBigUInt64LE(p.lpShares ?? 0n, o + PERP_POSITION.lpShares);
    buf.writeUInt16LE(p.maxMarginRatio ?? 0, o + PERP_POSITION.maxMarginRatio);
  });
  (init.orders ?? []).slice(0, USER.orderCount).forEach((ord, i) => {
    const o = USER.orders + i * USER.orderSize;
    buf.writeBigUInt64LE(ord.slot ?? 0n, o + ORDER.slot);
    buf.writeBigUInt64LE(ord.price ?? 0n, o + ORDER.price);
    buf.writeBigUInt64LE(ord.baseAssetAmount ?? 0n, o + ORDER.baseAssetAmount);
    buf.writeBigUInt64LE(ord.baseAssetAmountFilled ?? 0n, o + ORDER.baseAssetAmountFilled);
    buf.writeBigUInt64LE(ord.quoteAssetAmountFilled ?? 0n, o + ORDER.quoteAssetAmountFilled);
    buf.writeBigInt64LE(ord.maxTs ?? 0n, o + ORDER.maxTs);
    buf.writeUInt32LE(ord.orderId ?? i + 1, o + ORDER.orderId);
    buf.writeUInt16LE(ord.marketIndex ?? 0, o + ORDER.marketIndex);
    buf.writeUInt8(idx(ORDER_STATUS, ord.status ?? 'open'), o + ORDER.status);
    buf.writeUInt8(idx(ORDER_TYPE, ord.orderType ?? 'limit'), o + ORDER.orderType);
    buf.writeUInt8(idx(MARKET_TYPE, ord.marketType ?? 'perp'), o + ORDER.marketType);
    buf.writeUInt8(ord.userOrderId ?? 0, o + ORDER.userOrderId);
    buf.writeUInt8(idx(POSITION_DIRECTION, ord.direction ?? 'long'), o + ORDER.direction);
    buf.writeUInt8(ord.reduceOnly ? 1 : 0, o + ORDER.reduceOnly);
    buf.writeUInt8(ord.immediateOrCancel ? 1 : 0, o + ORDER.immediateOrCancel);
  });
  return buf;
}

export type PerpMarketInit = Partial<DriftPerpMarket> & { marketIndex: number };

export function encodePerpMarketAccount(init: PerpMarketInit): Buffer {
  const buf = Buffer.alloc(PERP_MARKET_SIZE);
  const M = PERP_MARKET;
  PERP_MARKET_DISCRIMINATOR.copy(buf, 0);
  (init.pubkey ?? PublicKey.default).toBuffer().copy(buf, M.pubkey);
  (init.oracle ?? PublicKey.default).toBuffer().copy(buf, M.oracle);
  buf.writeBigInt64LE(init.lastOraclePrice ?? 0n, M.lastOraclePrice);
  buf.writeBigUInt64LE(init.lastOracleConf ?? 0n, M.lastOracleConf);
  buf.writeBigInt64LE(init.lastOraclePriceTwap ?? init.lastOraclePrice ?? 0n, M.lastOraclePriceTwap);
  buf.writeBigInt64LE(init.lastOraclePriceTwapTs ?? 0n, M.lastOraclePriceTwapTs);
  writeU128(buf, M.baseAssetReserve, init.baseAssetReserve ?? 0n);
  writeU128(buf, M.quoteAssetReserve, init.quoteAssetReserve ?? 0n);
  writeU128(buf, M.sqrtK, init.sqrtK ?? 0n);
  writeU128(buf, M.pegMultiplier, init.pegMultiplier ?? 0n);
  writeI128(buf, M.baseAssetAmountLong, init.baseAssetAmountLong ?? 0n);
  writeI128(buf, M.baseAssetAmountShort, init.baseAssetAmountShort ?? 0n);
  writeU128(buf, M.maxOpenInterest, init.maxOpenInterest ?? 0n);
  buf.writeBigInt64LE(init.lastFundingRate ?? 0n, M.lastFundingRate);
  buf.writeBigInt64LE(init.lastFundingRateTs ?? 0n, M.lastFundingRateTs);
  buf.writeBigInt64LE(init.fundingPeriod ?? 3600n, M.fundingPeriod);
  buf.writeBigUInt64LE(init.lastMarkPriceTwap ?? 0n, M.lastMarkPriceTwap);
  buf.writeBigUInt64LE(init.lastUpdateSlot ?? 0n, M.lastUpdateSlot);
  buf.writeBigUInt64LE(init.orderStepSize ?? 0n, M.orderStepSize);
  buf.writeBigUInt64LE(init.orderTickSize ?? 0n, M.orderTickSize);
  buf.writeBigUInt64LE(init.minOrderSize ?? 0n, M.minOrderSize);
  writeName(buf, M.name, init.name ?? '');
  buf.writeUInt32LE(init.marginRatioInitial ?? 0, M.marginRatioInitial);
  buf.writeUInt32LE(init.marginRatioMaintenance ?? 0, M.marginRatioMaintenance);
  buf.writeUInt32LE(init.imfFactor ?? 0, M.imfFactor);
  buf.writeUInt32LE(init.unrealizedPnlInitialAssetWeight ?? 0, M.unrealizedPnlInitialAssetWeight);
  buf.writeUInt32LE(init.unrealizedPnlImfFactor ?? 0, M.unrealizedPnlImfFactor);
  buf.writeBigUInt64LE(init.unrealizedPnlMaxImbalance ?? 0n, M.unrealizedPnlMaxImbalance);
  writeI128(buf, M.baseAssetAmountWithAmm, init.baseAssetAmountWithAmm ?? 0n);
  writeI128(buf, M.baseAssetAmountWithUnsettledLp, init.baseAssetAmountWithUnsettledLp ?? 0n);
  writeI128(buf, M.quoteAssetAmount, init.ammQuoteAssetAmount ?? 0n);
  buf.writeBigInt64LE(init.quoteAssetAmountWithUnsettledLp ?? 0n, M.quoteAssetAmountWithUnsettledLp);
  buf.writeBigInt64LE(init.netUnsettledFundingPnl ?? 0n, M.netUnsettledFundingPnl);
  buf.writeBigInt64LE(init.expiryPrice ?? 0n, M.expiryPrice);
  buf.writeUInt8(idx(CONTRACT_TYPE, init.contractType ?? 'perpetual'), M.contractType);
  buf.writeUInt16LE(init.marketIndex, M.marketIndex);
  buf.writeUInt8(idx(MARKET_STATUS, init.status ?? 'active'), M.status);
  buf.writeUInt16LE(init.quoteSpotMarketIndex ?? 0, M.quoteSpotMarketIndex);
  buf.writeInt16LE(init.feeAdjustment ?? 0, M.feeAdjustment);
  return buf;
}

export type SpotMarketInit = Omit<DriftSpotMarket, 'cumulativeBorrowInterest' | 'pubkey' | 'oracle'> & {
  cumulativeBorrowInterest?: bigint;
  pubkey?: PublicKey;
  /** @defaultValue PublicKey.default (the quote-asset price, no oracle account) */
  oracle?: PublicKey;
};

export function encodeSpotMarketAccount(init: SpotMarketInit): Buffer {
  const buf = Buffer.alloc(SPOT_MARKET_SIZE);
  SPOT_MARKET_DISCRIMINATOR.copy(buf, 0);
  (init.pubkey ?? PublicKey.default).toBuffer().copy(buf, SPOT_MARKET.pubkey);
  (init.oracle ?? PublicKey.default).toBuffer().copy(buf, SPOT_MARKET.oracle);
  writeName(buf, SPOT_MARKET.name, init.name);
  writeU128(buf, SPOT_MARKET.cumulativeDepositInterest, init.cumulativeDepositInterest);
  writeU128(
    buf,
    SPOT_MARKET.cumulativeBorrowInterest,
    init.cumulativeBorrowInterest ?? init.cumulativeDepositInterest,
  );
  buf.writeUInt32LE(init.decimals, SPOT_MARKET.decimals);
  buf.writeUInt16LE(init.marketIndex, SPOT_MARKET.marketIndex);
  return buf;
}

/**
 * A UserStats account (240 bytes) with only its authority set: `place_and_take_perp_order` loads it
 * and checks `user_stats.authority == user.authority` (`is_stats_for_user`).
 */
export function encodeUserStatsAccount(authority: PublicKey): Buffer {
  const buf = Buffer.alloc(USER_STATS_SIZE);
  USER_STATS_DISCRIMINATOR.copy(buf, 0);
  authority.toBuffer().copy(buf, USER_STATS.authority);
  return buf;
}

/**
 * protocol-v2 `FeeStructure::perps_default()` tier 0: 10 bps taker (100 / FEE_DENOMINATOR), 2 bps maker
 * rebate. Its tiers 1..9 differ, but the adapter reads tier 0 only.
 */
export const DEFAULT_PERP_FEE_TIER: DriftFeeTier = {
  takerFeeNumerator: 100,
  takerFeeDenominator: FEE_DENOMINATOR,
  makerRebateNumerator: 20,
  makerRebateDenominator: FEE_DENOMINATOR,
};

export interface StateAccountInit {
  /**
   * `perp_fee_structure.fee_tiers` from tier 0 on; tiers not given are zero fees over FEE_DENOMINATOR
   * (`FeeTier::default()`). @defaultValue [DEFAULT_PERP_FEE_TIER]
   */
  perpFeeTiers?: readonly Partial<DriftFeeTier>[];
}

/**
 * The program's State account (992 bytes, borsh: see `STATE`): the perp fee tiers set, every other
 * field zero. Every instruction loads it; the adapter reads its perp fee tier 0.
 */
export function encodeStateAccount(init: StateAccountInit = {}): Buffer {
  const buf = Buffer.alloc(STATE_SIZE);
  STATE_DISCRIMINATOR.copy(buf, 0);
  const tiers = init.perpFeeTiers ?? [DEFAULT_PERP_FEE_TIER];
  for (let i = 0; i < STATE.feeTierCount; i++) {
    const t = tiers[i] ?? {};
    const o = STATE.perpFeeTiers + i * STATE.feeTierSize;
    buf.writeUInt32LE(t.takerFeeNumerator ?? 0, o + FEE_TIER.feeNumerator);
    buf.writeUInt32LE(t.takerFeeDenominator ?? FEE_DENOMINATOR, o + FEE_TIER.feeDenominator);
    buf.writeUInt32LE(t.makerRebateNumerator ?? 0, o + FEE_TIER.makerRebateNumerator);
    buf.writeUInt32LE(t.makerRebateDenominator ?? FEE_DENOMINATOR, o + FEE_TIER.makerRebateDenominator);
  }
  return buf;
}
