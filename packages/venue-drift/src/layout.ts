import { createHash } from 'node:crypto';

/**
 * Drift v2 account layouts (drift-labs/protocol-v2, programs/drift/src/state/user.rs, perp_market.rs,
 * spot_market.rs, state.rs). Accounts are Anchor 0.29 zero-copy `#[repr(C)]` structs preceded by an
 * 8-byte Anchor discriminator, so offsets follow C alignment, not borsh packing (State alone is a borsh
 * account, see {@link STATE}); on the SBF target u128/i128 align to 8 (with 16 the program's own size
 * constants below would not hold). Offsets include the discriminator. `src/protocol-v2.test.ts`
 * recomputes every offset here from the Rust field lists and checks them against the program's
 * constants (User 4376 bytes, PerpMarket 1216 with market_index at 1160, SpotMarket 776 with
 * market_index at 684, UserStats 240, State 992) and the SDK's memcmp offsets.
 */

/** Fixed-point scales of the Drift program. */
export const PRICE_PRECISION = 1_000_000n;
export const BASE_PRECISION = 1_000_000_000n;
export const QUOTE_PRECISION = 1_000_000n;
export const FUNDING_RATE_PRECISION = 1_000_000_000n;
export const PEG_PRECISION = 1_000_000n;
export const AMM_RESERVE_PRECISION = 1_000_000_000n;
export const SPOT_BALANCE_PRECISION = 1_000_000_000n;
/**
 * MARGIN_PRECISION (protocol-v2 `math/constants.rs`): margin ratios are parts of 1e4, so a
 * `margin_ratio_initial` of 2000 is 20% of notional. The program keeps a perp market's ratios within
 * MIN_MARGIN_RATIO (125, 80×) ..= MAX_MARGIN_RATIO (= MARGIN_PRECISION, 1×) (`validation/margin.rs`).
 */
export const MARGIN_PRECISION = 10_000;
/**
 * Margin-calculation constants of protocol-v2 `math/constants.rs`, as the free-collateral computation
 * (`src/margin.ts`) uses them: SPOT_WEIGHT_PRECISION (asset weights, = MARGIN_PRECISION), SPOT_IMF_PRECISION
 * (imf factors), OPEN_ORDER_MARGIN_REQUIREMENT (QUOTE_PRECISION / 100: 0.01 USDC per open order),
 * MAX_POSITIVE_UPNL_FOR_INITIAL_MARGIN (100 USDC: the most positive P&L one perp position adds to
 * collateral for initial margin) and MAX_PREDICTION_MARKET_PRICE (a prediction market's price ceiling, 1).
 */
export const SPOT_WEIGHT_PRECISION = 10_000n;
export const SPOT_IMF_PRECISION = 1_000_000n;
export const OPEN_ORDER_MARGIN_REQUIREMENT = 10_000n;
export const MAX_POSITIVE_UPNL_FOR_INITIAL_MARGIN = 100_000_000n;
export const MAX_PREDICTION_MARKET_PRICE = 1_000_000n;

/** Anchor discriminator: first 8 bytes of sha256("<namespace>:<name>"). */
export function anchorDiscriminator(namespace: 'account' | 'global', name: string): Buffer {
  return createHash('sha256').update(`${namespace}:${name}`).digest().subarray(0, 8);
}

export const USER_DISCRIMINATOR = anchorDiscriminator('account', 'User');
export const PERP_MARKET_DISCRIMINATOR = anchorDiscriminator('account', 'PerpMarket');
export const USER_STATS_DISCRIMINATOR = anchorDiscriminator('account', 'UserStats');
export const STATE_DISCRIMINATOR = anchorDiscriminator('account', 'State');
export const PLACE_PERP_ORDER_DISCRIMINATOR = anchorDiscriminator('global', 'place_perp_order');
export const PLACE_AND_TAKE_PERP_ORDER_DISCRIMINATOR = anchorDiscriminator(
  'global',
  'place_and_take_perp_order',
);
export const CANCEL_ORDER_BY_USER_ID_DISCRIMINATOR = anchorDiscriminator('global', 'cancel_order_by_user_id');

export const USER_SIZE = 4376;
export const PERP_MARKET_SIZE = 1216;
export const USER_STATS_SIZE = 240;
export const STATE_SIZE = 992;

/**
 * State offsets the adapter reads: the perp fee tiers (`State.perp_fee_structure.fee_tiers`, 10 × FeeTier).
 * Unlike the zero-copy accounts above, State is a borsh `#[account]` (the program loads it as
 * `Account<State>`): fields packed in declaration order, no alignment padding. Five Pubkeys (admin,
 * whitelist_mint, discount_mint, signer, srm_vault) precede `perp_fee_structure`, whose first field is
 * `fee_tiers`: 8 + 5 × 32 = 168.
 */
export const STATE = {
  perpFeeTiers: 168,
  feeTierSize: 32,
  feeTierCount: 10,
} as const;

/** Offsets inside one FeeTier (eight u32: fee, maker rebate, referrer reward, referee fee, each numerator then denominator). */
export const FEE_TIER = {
  feeNumerator: 0,
  feeDenominator: 4,
  makerRebateNumerator: 8,
  makerRebateDenominator: 12,
} as const;

/**
 * protocol-v2 `FEE_DENOMINATOR` (`math/constants.rs`, 10 × ONE_BPS_DENOMINATOR): fee fractions are
 * numerator / denominator, 10 / 100000 = 1 bps. `validate_fee_tier` keeps every tier's taker fee at
 * numerator ≤ 300 over a denominator ≥ FEE_DENOMINATOR (≤ 30 bps) and its maker rebate at
 * numerator ≤ 30 (≤ 3 bps); a State outside that is not the account this adapter decodes.
 */
export const FEE_DENOMINATOR = 100_000;
export const MAX_TAKER_FEE_NUMERATOR = 300;
export const MAX_MAKER_REBATE_NUMERATOR = 30;
/**
 * protocol-v2 `FEE_ADJUSTMENT_MAX`: a perp market's `fee_adjustment` (i16, percent) scales its fees,
 * −100 (free) ..= +100 (double).
 */
export const FEE_ADJUSTMENT_MAX = 100;

/** UserStats offsets the adapter's fixtures need (`is_stats_for_user` compares the authority). */
export const USER_STATS = { authority: 8 } as const;

/** protocol-v2 `QUOTE_SPOT_MARKET_INDEX` (USDC): the SDK adds it for spot positions with open orders. */
export const QUOTE_SPOT_MARKET_INDEX = 0;

export const USER = {
  authority: 8,
  delegate: 40,
  name: 72,
  spotPositions: 104,
  spotPositionSize: 40,
  spotPositionCount: 8,
  perpPositions: 424,
  perpPositionSize: 96,
  perpPositionCount: 8,
  orders: 1192,
  orderSize: 96,
  orderCount: 32,
  lastActiveSlot: 4328,
  nextOrderId: 4336,
  /** u32, MARGIN_PRECISION: the user's custom initial margin ratio (0: none), applied when above a market's. */
  maxMarginRatio: 4340,
  subAccountId: 4346,
  status: 4348,
  openOrders: 4351,
} as const;

/** Offsets inside one SpotPosition (40 bytes). */
export const SPOT_POSITION = {
  scaledBalance: 0,
  openBids: 8,
  openAsks: 16,
  marketIndex: 32,
  balanceType: 34,
  openOrders: 35,
} as const;

/** Offsets inside one PerpPosition (96 bytes). */
export const PERP_POSITION = {
  lastCumulativeFundingRate: 0,
  baseAssetAmount: 8,
  quoteAssetAmount: 16,
  quoteBreakEvenAmount: 24,
  quoteEntryAmount: 32,
  openBids: 40,
  openAsks: 48,
  settledPnl: 56,
  /** u64, BASE_PRECISION: legacy LP shares; the SDK still counts a slot holding them as in use. */
  lpShares: 64,
  /** u64, SPOT_BALANCE_PRECISION, in the quote spot market (deposit): an isolated position's own collateral. */
  isolatedPositionScaledBalance: 72,
  /** u16, MARGIN_PRECISION: a custom initial margin ratio for this position (0: none). */
  maxMarginRatio: 90,
  marketIndex: 92,
  openOrders: 94,
  /** u8 bit set ({@link POSITION_FLAG}). */
  positionFlag: 95,
} as const;

/** `User.status` bits (protocol-v2 `UserStatus`; 0 = active). */
export const USER_STATUS = {
  beingLiquidated: 0b00001,
  bankrupt: 0b00010,
  reduceOnly: 0b00100,
} as const;

/** `PerpPosition.position_flag` bits (protocol-v2 `PositionFlag`, since the isolated-position release of 2026-01). */
export const POSITION_FLAG = {
  isolated: 0b001,
  beingLiquidated: 0b010,
  bankrupt: 0b100,
} as const;

/** Offsets inside one Order (96 bytes). */
export const ORDER = {
  slot: 0,
  price: 8,
  baseAssetAmount: 16,
  baseAssetAmountFilled: 24,
  quoteAssetAmountFilled: 32,
  triggerPrice: 40,
  maxTs: 64,
  oraclePriceOffset: 72,
  orderId: 76,
  marketIndex: 80,
  status: 82,
  orderType: 83,
  marketType: 84,
  userOrderId: 85,
  direction: 87,
  reduceOnly: 88,
  postOnly: 89,
  immediateOrCancel: 90,
} as const;

export const PERP_MARKET = {
  pubkey: 8,
  // AMM starts at 40
  oracle: 40,
  lastOraclePrice: 72,
  lastOracleConf: 80,
  lastOracleDelay: 88,
  lastOraclePriceTwap: 96,
  lastOraclePriceTwapTs: 112,
  baseAssetReserve: 176,
  quoteAssetReserve: 192,
  sqrtK: 256,
  pegMultiplier: 272,
  baseAssetAmountLong: 304,
  baseAssetAmountShort: 320,
  /** i128, BASE_PRECISION: users' net base against the AMM (net user P&L, for the P&L imbalance). */
  baseAssetAmountWithAmm: 336,
  baseAssetAmountWithUnsettledLp: 352,
  maxOpenInterest: 368,
  /** i128, QUOTE_PRECISION: users' net quote (net user cost basis). */
  quoteAssetAmount: 384,
  lastFundingRate: 480,
  lastFundingRateLong: 488,
  lastFundingRateShort: 496,
  last24hAvgFundingRate: 504,
  cumulativeFundingRateLong: 608,
  cumulativeFundingRateShort: 624,
  lastMarkPriceTwap: 752,
  lastUpdateSlot: 768,
  lastFundingRateTs: 792,
  fundingPeriod: 800,
  orderStepSize: 808,
  orderTickSize: 816,
  minOrderSize: 824,
  baseSpread: 896,
  maxSpread: 900,
  /** i64, QUOTE_PRECISION: with `quoteAssetAmount`, the users' net cost basis. */
  netUnsettledFundingPnl: 944,
  quoteAssetAmountWithUnsettledLp: 952,
  name: 1000,
  /** u64, QUOTE_PRECISION: net user P&L beyond which positive P&L's initial asset weight is scaled down. */
  unrealizedPnlMaxImbalance: 1072,
  /** i64, PRICE_PRECISION: the price positions value at once the market is in settlement. */
  expiryPrice: 1088,
  /** u32, SPOT_IMF_PRECISION: the size premium on the margin ratio of large positions. */
  imfFactor: 1120,
  /** u32, SPOT_IMF_PRECISION: the size discount on the asset weight of large positive P&L. */
  unrealizedPnlImfFactor: 1124,
  marginRatioInitial: 1136,
  marginRatioMaintenance: 1140,
  /** u32, SPOT_WEIGHT_PRECISION: the weight positive unrealized P&L counts at for initial margin. */
  unrealizedPnlInitialAssetWeight: 1144,
  marketIndex: 1160,
  status: 1162,
  contractType: 1163,
  quoteSpotMarketIndex: 1166,
  feeAdjustment: 1168,
} as const;

/** Drift enums, in declaration order (borsh / repr(u8) index). */
export const ORDER_STATUS = ['init', 'open', 'filled', 'canceled'] as const;
export type DriftOrderStatus = (typeof ORDER_STATUS)[number];
export const ORDER_TYPE = ['market', 'limit', 'triggerMarket', 'triggerLimit', 'oracle'] as const;
export type DriftOrderType = (typeof ORDER_TYPE)[number];
export const MARKET_TYPE = ['spot', 'perp'] as const;
export type DriftMarketType = (typeof MARKET_TYPE)[number];
export const POSITION_DIRECTION = ['long', 'short'] as const;
export type DriftDirection = (typeof POSITION_DIRECTION)[number];
export const POST_ONLY = ['none', 'mustPostOnly', 'tryPostOnly', 'slide'] as const;
export type DriftPostOnly = (typeof POST_ONLY)[number];
export const TRIGGER_CONDITION = ['above', 'below', 'triggeredAbove', 'triggeredBelow'] as const;
export const MARKET_STATUS = [
  'initialized',
  'active',
  'fundingPaused',
  'ammPaused',
  'fillPaused',
  'withdrawPaused',
  'reduceOnly',
  'settlement',
  'delisted',
] as const;
export type DriftMarketStatus = (typeof MARKET_STATUS)[number];
export const CONTRACT_TYPE = ['perpetual', 'future', 'prediction'] as const;
export type DriftContractType = (typeof CONTRACT_TYPE)[number];

/**
 * OrderParams.bit_flags `ImmediateOrCancel`. `place_perp_order` refuses an order carrying it
 * (`InvalidOrderIOC`: "immediate_or_cancel order must be in place_and_make or place_and_take"), so an
 * IOC order goes through `place_and_take_perp_order`, which fills it in the same instruction and
 * cancels what is left.
 */
export const ORDER_PARAMS_BIT_IMMEDIATE_OR_CANCEL = 0b0000_0001;

export const SPOT_MARKET_DISCRIMINATOR = anchorDiscriminator('account', 'SpotMarket');
export const SPOT_MARKET_SIZE = 776;
/**
 * SpotMarket offsets the adapter needs: token amount = scaled_balance × cumulative interest / 1e19, with the
 * deposit index for a deposit and the borrow index (the u128 right after it) for a borrow.
 */
export const SPOT_MARKET = {
  pubkey: 8,
  /** The oracle the margin calculation reads for this market; Pubkey::default() for the quote-asset price 1. */
  oracle: 40,
  mint: 72,
  name: 136,
  cumulativeDepositInterest: 464,
  cumulativeBorrowInterest: 480,
  decimals: 680,
  marketIndex: 684,
} as const;
/** SPOT_CUMULATIVE_INTEREST_PRECISION (1e10) × SPOT_BALANCE_PRECISION (1e9). */
export const SPOT_TOKEN_AMOUNT_DIVISOR = 10n ** 19n;
