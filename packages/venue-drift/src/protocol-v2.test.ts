import { createHash } from 'node:crypto';
import { Keypair, PublicKey } from '@solana/web3.js';
import { describe, expect, it } from 'vitest';
import {
  cancelOrderByUserIdInstruction,
  driftPda,
  encodeOrderParams,
  type OrderParams,
  placeAndTakePerpOrderInstruction,
  placePerpOrderInstruction,
} from './instructions.ts';
import {
  AMM_RESERVE_PRECISION,
  BASE_PRECISION,
  CANCEL_ORDER_BY_USER_ID_DISCRIMINATOR,
  CONTRACT_TYPE,
  FEE_ADJUSTMENT_MAX,
  FEE_DENOMINATOR,
  FEE_TIER,
  FUNDING_RATE_PRECISION,
  MARGIN_PRECISION,
  MARKET_STATUS,
  MARKET_TYPE,
  MAX_MAKER_REBATE_NUMERATOR,
  MAX_POSITIVE_UPNL_FOR_INITIAL_MARGIN,
  MAX_PREDICTION_MARKET_PRICE,
  MAX_TAKER_FEE_NUMERATOR,
  OPEN_ORDER_MARGIN_REQUIREMENT,
  ORDER,
  ORDER_PARAMS_BIT_IMMEDIATE_OR_CANCEL,
  ORDER_STATUS,
  ORDER_TYPE,
  PEG_PRECISION,
  PERP_MARKET,
  PERP_MARKET_DISCRIMINATOR,
  PERP_MARKET_SIZE,
  PERP_POSITION,
  PLACE_AND_TAKE_PERP_ORDER_DISCRIMINATOR,
  PLACE_PERP_ORDER_DISCRIMINATOR,
  POSITION_DIRECTION,
  POSITION_FLAG,
  POST_ONLY,
  PRICE_PRECISION,
  QUOTE_PRECISION,
  QUOTE_SPOT_MARKET_INDEX,
  SPOT_BALANCE_PRECISION,
  SPOT_IMF_PRECISION,
  SPOT_MARKET,
  SPOT_MARKET_DISCRIMINATOR,
  SPOT_MARKET_SIZE,
  SPOT_POSITION,
  SPOT_TOKEN_AMOUNT_DIVISOR,
  SPOT_WEIGHT_PRECISION,
  STATE,
  STATE_DISCRIMINATOR,
  STATE_SIZE,
  TRIGGER_CONDITION,
  USER,
  USER_DISCRIMINATOR,
  USER_SIZE,
  USER_STATS,
  USER_STATS_DISCRIMINATOR,
  USER_STATS_SIZE,
  USER_STATUS,
} from './layout.ts';

/**
 * Guard against drift from drift-labs/protocol-v2, read at 0ae3e3b (sdk v2.163.0-beta.0, program
 * v2.162.0; Anchor 0.29): every layout fact the adapter uses is recomputed here from the program's
 * own definitions, so an edited offset, a moved field or a new protocol release that changes a
 * struct fails this file rather than a transaction on chain.
 *
 * STRUCTS transcribes the field lists (name, Rust type, in declaration order) of the zero-copy
 * structs in programs/drift/src/state/{user,perp_market,spot_market,oracle}.rs, and of the borsh State
 * account (state.rs). `typeLayout` lays them out as `#[repr(C)]` does on the SBF target, where
 * u128/i128 align to 8, or packed as borsh serializes State. The transcription is itself
 * checked against numbers the program and SDK state independently: the `Size` constants, the
 * `MARKET_INDEX_OFFSET` constants and the SDK's memcmp filters (sdk/src/memcmp.ts).
 */

/** Field lists of the zero-copy structs (name, Rust type). Enums are `repr(u8)`-sized (1 byte). */
const STRUCTS: Record<string, [string, string][]> = {
  HistoricalOracleData: [
    ['last_oracle_price', 'i64'],
    ['last_oracle_conf', 'u64'],
    ['last_oracle_delay', 'i64'],
    ['last_oracle_price_twap', 'i64'],
    ['last_oracle_price_twap_5min', 'i64'],
    ['last_oracle_price_twap_ts', 'i64'],
  ],
  HistoricalIndexData: [
    ['last_index_bid_price', 'u64'],
    ['last_index_ask_price', 'u64'],
    ['last_index_price_twap', 'u64'],
    ['last_index_price_twap_5min', 'u64'],
    ['last_index_price_twap_ts', 'i64'],
  ],
  PoolBalance: [
    ['scaled_balance', 'u128'],
    ['market_index', 'u16'],
    ['padding', '[u8;6]'],
  ],
  InsuranceClaim: [
    ['revenue_withdraw_since_last_settle', 'i64'],
    ['max_revenue_withdraw_per_period', 'u64'],
    ['quote_max_insurance', 'u64'],
    ['quote_settled_insurance', 'u64'],
    ['last_revenue_withdraw_ts', 'i64'],
  ],
  InsuranceFund: [
    ['vault', 'Pubkey'],
    ['total_shares', 'u128'],
    ['user_shares', 'u128'],
    ['shares_base', 'u128'],
    ['unstaking_period', 'i64'],
    ['last_revenue_settle_ts', 'i64'],
    ['revenue_settle_period', 'i64'],
    ['total_factor', 'u32'],
    ['user_factor', 'u32'],
  ],
  AMM: [
    ['oracle', 'Pubkey'],
    ['historical_oracle_data', 'HistoricalOracleData'],
    ['base_asset_amount_per_lp', 'i128'],
    ['quote_asset_amount_per_lp', 'i128'],
    ['fee_pool', 'PoolBalance'],
    ['base_asset_reserve', 'u128'],
    ['quote_asset_reserve', 'u128'],
    ['concentration_coef', 'u128'],
    ['min_base_asset_reserve', 'u128'],
    ['max_base_asset_reserve', 'u128'],
    ['sqrt_k', 'u128'],
    ['peg_multiplier', 'u128'],
    ['terminal_quote_asset_reserve', 'u128'],
    ['base_asset_amount_long', 'i128'],
    ['base_asset_amount_short', 'i128'],
    ['base_asset_amount_with_amm', 'i128'],
    ['base_asset_amount_with_unsettled_lp', 'i128'],
    ['max_open_interest', 'u128'],
    ['quote_asset_amount', 'i128'],
    ['quote_entry_amount_long', 'i128'],
    ['quote_entry_amount_short', 'i128'],
    ['quote_break_even_amount_long', 'i128'],
    ['quote_break_even_amount_short', 'i128'],
    ['user_lp_shares', 'u128'],
    ['last_funding_rate', 'i64'],
    ['last_funding_rate_long', 'i64'],
    ['last_funding_rate_short', 'i64'],
    ['last_24h_avg_funding_rate', 'i64'],
    ['total_fee', 'i128'],
    ['total_mm_fee', 'i128'],
    ['total_exchange_fee', 'u128'],
    ['total_fee_minus_distributions', 'i128'],
    ['total_fee_withdrawn', 'u128'],
    ['total_liquidation_fee', 'u128'],
    ['cumulative_funding_rate_long', 'i128'],
    ['cumulative_funding_rate_short', 'i128'],
    ['total_social_loss', 'u128'],
    ['ask_base_asset_reserve', 'u128'],
    ['ask_quote_asset_reserve', 'u128'],
    ['bid_base_asset_reserve', 'u128'],
    ['bid_quote_asset_reserve', 'u128'],
    ['last_oracle_normalised_price', 'i64'],
    ['last_oracle_reserve_price_spread_pct', 'i64'],
    ['last_bid_price_twap', 'u64'],
    ['last_ask_price_twap', 'u64'],
    ['last_mark_price_twap', 'u64'],
    ['last_mark_price_twap_5min', 'u64'],
    ['last_update_slot', 'u64'],
    ['last_oracle_conf_pct', 'u64'],
    ['net_revenue_since_last_funding', 'i64'],
    ['last_funding_rate_ts', 'i64'],
    ['funding_period', 'i64'],
    ['order_step_size', 'u64'],
    ['order_tick_size', 'u64'],
    ['min_order_size', 'u64'],
    ['mm_oracle_slot', 'u64'],
    ['volume_24h', 'u64'],
    ['long_intensity_volume', 'u64'],
    ['short_intensity_volume', 'u64'],
    ['last_trade_ts', 'i64'],
    ['mark_std', 'u64'],
    ['oracle_std', 'u64'],
    ['last_mark_price_twap_ts', 'i64'],
    ['base_spread', 'u32'],
    ['max_spread', 'u32'],
    ['long_spread', 'u32'],
    ['short_spread', 'u32'],
    ['mm_oracle_price', 'i64'],
    ['max_fill_reserve_fraction', 'u16'],
    ['max_slippage_ratio', 'u16'],
    ['curve_update_intensity', 'u8'],
    ['amm_jit_intensity', 'u8'],
    ['oracle_source', 'OracleSource'],
    ['last_oracle_valid', 'bool'],
    ['target_base_asset_amount_per_lp', 'i32'],
    ['per_lp_base', 'i8'],
    ['oracle_low_risk_slot_delay_override', 'i8'],
    ['amm_spread_adjustment', 'i8'],
    ['oracle_slot_delay_override', 'i8'],
    ['mm_oracle_sequence_id', 'u64'],
    ['net_unsettled_funding_pnl', 'i64'],
    ['quote_asset_amount_with_unsettled_lp', 'i64'],
    ['reference_price_offset', 'i32'],
    ['amm_inventory_spread_adjustment', 'i8'],
    ['reference_price_offset_deadband_pct', 'u8'],
    ['padding', '[u8;2]'],
    ['last_funding_oracle_twap', 'i64'],
  ],
  PerpMarket: [
    ['pubkey', 'Pubkey'],
    ['amm', 'AMM'],
    ['pnl_pool', 'PoolBalance'],
    ['name', '[u8;32]'],
    ['insurance_claim', 'InsuranceClaim'],
    ['unrealized_pnl_max_imbalance', 'u64'],
    ['expiry_ts', 'i64'],
    ['expiry_price', 'i64'],
    ['next_fill_record_id', 'u64'],
    ['next_funding_rate_record_id', 'u64'],
    ['next_curve_record_id', 'u64'],
    ['imf_factor', 'u32'],
    ['unrealized_pnl_imf_factor', 'u32'],
    ['liquidator_fee', 'u32'],
    ['if_liquidation_fee', 'u32'],
    ['margin_ratio_initial', 'u32'],
    ['margin_ratio_maintenance', 'u32'],
    ['unrealized_pnl_initial_asset_weight', 'u32'],
    ['unrealized_pnl_maintenance_asset_weight', 'u32'],
    ['number_of_users_with_base', 'u32'],
    ['number_of_users', 'u32'],
    ['market_index', 'u16'],
    ['status', 'MarketStatus'],
    ['contract_type', 'ContractType'],
    ['contract_tier', 'ContractTier'],
    ['paused_operations', 'u8'],
    ['quote_spot_market_index', 'u16'],
    ['fee_adjustment', 'i16'],
    ['fuel_boost_position', 'u8'],
    ['fuel_boost_taker', 'u8'],
    ['fuel_boost_maker', 'u8'],
    ['pool_id', 'u8'],
    ['high_leverage_margin_ratio_initial', 'u16'],
    ['high_leverage_margin_ratio_maintenance', 'u16'],
    ['protected_maker_limit_price_divisor', 'u8'],
    ['protected_maker_dynamic_divisor', 'u8'],
    ['lp_fee_transfer_scalar', 'u8'],
    ['lp_status', 'u8'],
    ['lp_paused_operations', 'u8'],
    ['lp_exchange_fee_excluscion_scalar', 'u8'],
    ['last_fill_price', 'u64'],
    ['lp_pool_id', 'u8'],
    ['market_config', 'u8'],
    ['padding', '[u8;22]'],
  ],
  SpotMarket: [
    ['pubkey', 'Pubkey'],
    ['oracle', 'Pubkey'],
    ['mint', 'Pubkey'],
    ['vault', 'Pubkey'],
    ['name', '[u8;32]'],
    ['historical_oracle_data', 'HistoricalOracleData'],
    ['historical_index_data', 'HistoricalIndexData'],
    ['revenue_pool', 'PoolBalance'],
    ['spot_fee_pool', 'PoolBalance'],
    ['insurance_fund', 'InsuranceFund'],
    ['total_spot_fee', 'u128'],
    ['deposit_balance', 'u128'],
    ['borrow_balance', 'u128'],
    ['cumulative_deposit_interest', 'u128'],
    ['cumulative_borrow_interest', 'u128'],
    ['total_social_loss', 'u128'],
    ['total_quote_social_loss', 'u128'],
    ['withdraw_guard_threshold', 'u64'],
    ['max_token_deposits', 'u64'],
    ['deposit_token_twap', 'u64'],
    ['borrow_token_twap', 'u64'],
    ['utilization_twap', 'u64'],
    ['last_interest_ts', 'u64'],
    ['last_twap_ts', 'u64'],
    ['expiry_ts', 'i64'],
    ['order_step_size', 'u64'],
    ['order_tick_size', 'u64'],
    ['min_order_size', 'u64'],
    ['max_position_size', 'u64'],
    ['next_fill_record_id', 'u64'],
    ['next_deposit_record_id', 'u64'],
    ['initial_asset_weight', 'u32'],
    ['maintenance_asset_weight', 'u32'],
    ['initial_liability_weight', 'u32'],
    ['maintenance_liability_weight', 'u32'],
    ['imf_factor', 'u32'],
    ['liquidator_fee', 'u32'],
    ['if_liquidation_fee', 'u32'],
    ['optimal_utilization', 'u32'],
    ['optimal_borrow_rate', 'u32'],
    ['max_borrow_rate', 'u32'],
    ['decimals', 'u32'],
    ['market_index', 'u16'],
    ['orders_enabled', 'bool'],
    ['oracle_source', 'OracleSource'],
    ['status', 'MarketStatus'],
    ['asset_tier', 'AssetTier'],
    ['paused_operations', 'u8'],
    ['if_paused_operations', 'u8'],
    ['fee_adjustment', 'i16'],
    ['max_token_borrows_fraction', 'u16'],
    ['flash_loan_amount', 'u64'],
    ['flash_loan_initial_token_amount', 'u64'],
    ['total_swap_fee', 'u64'],
    ['scale_initial_asset_weight_start', 'u64'],
    ['min_borrow_rate', 'u8'],
    ['fuel_boost_deposits', 'u8'],
    ['fuel_boost_borrows', 'u8'],
    ['fuel_boost_taker', 'u8'],
    ['fuel_boost_maker', 'u8'],
    ['fuel_boost_insurance', 'u8'],
    ['token_program_flag', 'u8'],
    ['pool_id', 'u8'],
    ['padding', '[u8;40]'],
  ],
  SpotPosition: [
    ['scaled_balance', 'u64'],
    ['open_bids', 'i64'],
    ['open_asks', 'i64'],
    ['cumulative_deposits', 'i64'],
    ['market_index', 'u16'],
    ['balance_type', 'SpotBalanceType'],
    ['open_orders', 'u8'],
    ['padding', '[u8;4]'],
  ],
  PerpPosition: [
    ['last_cumulative_funding_rate', 'i64'],
    ['base_asset_amount', 'i64'],
    ['quote_asset_amount', 'i64'],
    ['quote_break_even_amount', 'i64'],
    ['quote_entry_amount', 'i64'],
    ['open_bids', 'i64'],
    ['open_asks', 'i64'],
    ['settled_pnl', 'i64'],
    ['lp_shares', 'u64'],
    ['isolated_position_scaled_balance', 'u64'],
    ['last_quote_asset_amount_per_lp', 'i64'],
    ['padding', '[u8;2]'],
    ['max_margin_ratio', 'u16'],
    ['market_index', 'u16'],
    ['open_orders', 'u8'],
    ['position_flag', 'u8'],
  ],
  Order: [
    ['slot', 'u64'],
    ['price', 'u64'],
    ['base_asset_amount', 'u64'],
    ['base_asset_amount_filled', 'u64'],
    ['quote_asset_amount_filled', 'u64'],
    ['trigger_price', 'u64'],
    ['auction_start_price', 'i64'],
    ['auction_end_price', 'i64'],
    ['max_ts', 'i64'],
    ['oracle_price_offset', 'i32'],
    ['order_id', 'u32'],
    ['market_index', 'u16'],
    ['status', 'OrderStatus'],
    ['order_type', 'OrderType'],
    ['market_type', 'MarketType'],
    ['user_order_id', 'u8'],
    ['existing_position_direction', 'PositionDirection'],
    ['direction', 'PositionDirection'],
    ['reduce_only', 'bool'],
    ['post_only', 'bool'],
    ['immediate_or_cancel', 'bool'],
    ['trigger_condition', 'OrderTriggerCondition'],
    ['auction_duration', 'u8'],
    ['posted_slot_tail', 'u8'],
    ['bit_flags', 'u8'],
    ['padding', '[u8;1]'],
  ],
  User: [
    ['authority', 'Pubkey'],
    ['delegate', 'Pubkey'],
    ['name', '[u8;32]'],
    ['spot_positions', '[SpotPosition;8]'],
    ['perp_positions', '[PerpPosition;8]'],
    ['orders', '[Order;32]'],
    ['last_add_perp_lp_shares_ts', 'i64'],
    ['total_deposits', 'u64'],
    ['total_withdraws', 'u64'],
    ['total_social_loss', 'u64'],
    ['settled_perp_pnl', 'i64'],
    ['cumulative_spot_fees', 'i64'],
    ['cumulative_perp_funding', 'i64'],
    ['liquidation_margin_freed', 'u64'],
    ['last_active_slot', 'u64'],
    ['next_order_id', 'u32'],
    ['max_margin_ratio', 'u32'],
    ['next_liquidation_id', 'u16'],
    ['sub_account_id', 'u16'],
    ['status', 'u8'],
    ['is_margin_trading_enabled', 'bool'],
    ['idle', 'bool'],
    ['open_orders', 'u8'],
    ['has_open_order', 'bool'],
    ['open_auctions', 'u8'],
    ['has_open_auction', 'bool'],
    ['margin_mode', 'MarginMode'],
    ['pool_id', 'u8'],
    ['padding1', '[u8;3]'],
    ['last_fuel_bonus_update_ts', 'u32'],
    ['padding', '[u8;12]'],
  ],
  UserFees: [
    ['total_fee_paid', 'u64'],
    ['total_fee_rebate', 'u64'],
    ['total_token_discount', 'u64'],
    ['total_referee_discount', 'u64'],
    ['total_referrer_reward', 'u64'],
    ['current_epoch_referrer_reward', 'u64'],
  ],
  UserStats: [
    ['authority', 'Pubkey'],
    ['referrer', 'Pubkey'],
    ['fees', 'UserFees'],
    ['next_epoch_ts', 'i64'],
    ['maker_volume_30d', 'u64'],
    ['taker_volume_30d', 'u64'],
    ['filler_volume_30d', 'u64'],
    ['last_maker_volume_30d_ts', 'i64'],
    ['last_taker_volume_30d_ts', 'i64'],
    ['last_filler_volume_30d_ts', 'i64'],
    ['if_staked_quote_asset_amount', 'u64'],
    ['number_of_sub_accounts', 'u16'],
    ['number_of_sub_accounts_created', 'u16'],
    ['referrer_status', 'u8'],
    ['disable_update_perp_bid_ask_twap', 'u8'],
    ['paused_operations', 'u8'],
    ['fuel_overflow_status', 'u8'],
    ['fuel_insurance', 'u32'],
    ['fuel_deposits', 'u32'],
    ['fuel_borrows', 'u32'],
    ['fuel_positions', 'u32'],
    ['fuel_taker', 'u32'],
    ['fuel_maker', 'u32'],
    ['if_staked_gov_token_amount', 'u64'],
    ['last_fuel_if_bonus_update_ts', 'u32'],
    ['padding', '[u8;12]'],
  ],
  // state.rs: State is a borsh `#[account]` (Account<State>), laid out packed (`typeLayout(t, true)`)
  State: [
    ['admin', 'Pubkey'],
    ['whitelist_mint', 'Pubkey'],
    ['discount_mint', 'Pubkey'],
    ['signer', 'Pubkey'],
    ['srm_vault', 'Pubkey'],
    ['perp_fee_structure', 'FeeStructure'],
    ['spot_fee_structure', 'FeeStructure'],
    ['oracle_guard_rails', 'OracleGuardRails'],
    ['number_of_authorities', 'u64'],
    ['number_of_sub_accounts', 'u64'],
    ['lp_cooldown_time', 'u64'],
    ['liquidation_margin_buffer_ratio', 'u32'],
    ['settlement_duration', 'u16'],
    ['number_of_markets', 'u16'],
    ['number_of_spot_markets', 'u16'],
    ['signer_nonce', 'u8'],
    ['min_perp_auction_duration', 'u8'],
    ['default_market_order_time_in_force', 'u8'],
    ['default_spot_auction_duration', 'u8'],
    ['exchange_status', 'u8'],
    ['liquidation_duration', 'u8'],
    ['initial_pct_to_liquidate', 'u16'],
    ['max_number_of_sub_accounts', 'u16'],
    ['max_initialize_user_fee', 'u16'],
    ['feature_bit_flags', 'u8'],
    ['lp_pool_feature_bit_flags', 'u8'],
    ['padding', '[u8;8]'],
  ],
  FeeStructure: [
    ['fee_tiers', '[FeeTier;10]'],
    ['filler_reward_structure', 'OrderFillerRewardStructure'],
    ['referrer_reward_epoch_upper_bound', 'u64'],
    ['flat_filler_fee', 'u64'],
  ],
  FeeTier: [
    ['fee_numerator', 'u32'],
    ['fee_denominator', 'u32'],
    ['maker_rebate_numerator', 'u32'],
    ['maker_rebate_denominator', 'u32'],
    ['referrer_reward_numerator', 'u32'],
    ['referrer_reward_denominator', 'u32'],
    ['referee_fee_numerator', 'u32'],
    ['referee_fee_denominator', 'u32'],
  ],
  OrderFillerRewardStructure: [
    ['reward_numerator', 'u32'],
    ['reward_denominator', 'u32'],
    ['time_based_reward_lower_bound', 'u128'],
  ],
  OracleGuardRails: [
    ['price_divergence', 'PriceDivergenceGuardRails'],
    ['validity', 'ValidityGuardRails'],
  ],
  PriceDivergenceGuardRails: [
    ['mark_oracle_percent_divergence', 'u64'],
    ['oracle_twap_5min_percent_divergence', 'u64'],
  ],
  ValidityGuardRails: [
    ['slots_before_stale_for_amm', 'i64'],
    ['slots_before_stale_for_margin', 'i64'],
    ['confidence_interval_max_size', 'u64'],
    ['too_volatile_ratio', 'i64'],
  ],
};

const ENUMS = new Set([
  'OrderStatus',
  'OrderType',
  'MarketType',
  'PositionDirection',
  'OrderTriggerCondition',
  'SpotBalanceType',
  'MarketStatus',
  'ContractType',
  'ContractTier',
  'OracleSource',
  'MarginMode',
  'AssetTier',
  'bool',
]);
const PRIMITIVES: Record<string, { size: number; align: number }> = {
  u8: { size: 1, align: 1 },
  i8: { size: 1, align: 1 },
  u16: { size: 2, align: 2 },
  i16: { size: 2, align: 2 },
  u32: { size: 4, align: 4 },
  i32: { size: 4, align: 4 },
  u64: { size: 8, align: 8 },
  i64: { size: 8, align: 8 },
  // SBF: 16 bytes at 8-byte alignment (with 16 the Size constants below would not hold)
  u128: { size: 16, align: 8 },
  i128: { size: 16, align: 8 },
  Pubkey: { size: 32, align: 1 },
};

/** `packed`: borsh (an `#[account]` that is not zero-copy): no alignment, fields back to back. */
function typeLayout(t: string, packed = false): { size: number; align: number } {
  const prim = PRIMITIVES[t];
  if (prim) return packed ? { size: prim.size, align: 1 } : prim;
  if (ENUMS.has(t)) return { size: 1, align: 1 };
  const arr = /^\[(.+);(\d+)\]$/.exec(t);
  if (arr?.[1] && arr[2]) {
    const el = typeLayout(arr[1], packed);
    return { size: el.size * Number(arr[2]), align: el.align };
  }
  const fields = STRUCTS[t];
  if (!fields) throw new Error(`no layout for ${t}`);
  let off = 0;
  let align = 1;
  for (const [, ft] of fields) {
    const l = typeLayout(ft, packed);
    off = Math.ceil(off / l.align) * l.align + l.size;
    align = Math.max(align, l.align);
  }
  return { size: Math.ceil(off / align) * align, align };
}

/** Offset (from the struct's start) and type of a dotted field path, `amm.historical_oracle_data.last_oracle_price`. */
function fieldAt(struct: string, path: string, packed = false): { offset: number; type: string } {
  let offset = 0;
  let type = struct;
  for (const name of path.split('.')) {
    const fields = STRUCTS[type];
    if (!fields) throw new Error(`${type} has no fields (path ${path})`);
    let off = 0;
    let found: { offset: number; type: string } | undefined;
    for (const [fn, ft] of fields) {
      const l = typeLayout(ft, packed);
      off = Math.ceil(off / l.align) * l.align;
      if (fn === name) found = { offset: off, type: ft };
      off += l.size;
    }
    if (!found) throw new Error(`${type} has no field ${name}`);
    offset += found.offset;
    type = found.type;
  }
  return { offset, type };
}

/** Anchor 0.29 account: 8-byte discriminator, then the struct. */
const accountOffset = (struct: string, path: string) => 8 + fieldAt(struct, path).offset;
const disc = (preimage: string) => [...createHash('sha256').update(preimage).digest().subarray(0, 8)];

describe('protocol-v2 layouts: the transcription matches what the program and SDK state', () => {
  it("account sizes are the program's Size constants (8-byte discriminator included)", () => {
    expect(8 + typeLayout('User').size).toBe(4376); // impl Size for User
    expect(8 + typeLayout('UserStats').size).toBe(240); // impl Size for UserStats
    expect(8 + typeLayout('PerpMarket').size).toBe(1216); // impl Size for PerpMarket
    expect(8 + typeLayout('SpotMarket').size).toBe(776); // impl Size for SpotMarket
    // nested zero-copy structs the adapter indexes into
    expect(typeLayout('SpotPosition').size).toBe(40);
    expect(typeLayout('PerpPosition').size).toBe(96);
    expect(typeLayout('Order').size).toBe(96);
    expect(typeLayout('AMM').size).toBe(936);
    expect(8 + typeLayout('State', true).size).toBe(992); // impl Size for State (borsh)
  });

  it("market_index sits where the program's MARKET_INDEX_OFFSET says", () => {
    expect(accountOffset('PerpMarket', 'market_index')).toBe(1160);
    expect(accountOffset('SpotMarket', 'market_index')).toBe(684);
  });

  it("the SDK's memcmp filters (sdk/src/memcmp.ts) land on the fields they name", () => {
    expect(accountOffset('User', 'name')).toBe(72); // getUserWithName
    expect(accountOffset('User', 'idle')).toBe(4350); // getNonIdleUserFilter
    expect(accountOffset('User', 'has_open_order')).toBe(4352); // getUserWithOrderFilter
    expect(accountOffset('User', 'has_open_auction')).toBe(4354); // getUserWithAuctionFilter
    expect(accountOffset('User', 'pool_id')).toBe(4356); // getUsersWithPoolId
    expect(accountOffset('UserStats', 'referrer_status')).toBe(188); // getUserStatsIsReferredFilter
  });
});

describe('protocol-v2 layouts: every offset the adapter reads or writes', () => {
  const sizes: [string, number, number][] = [
    ['User', USER_SIZE, 4376],
    ['UserStats', USER_STATS_SIZE, 240],
    ['PerpMarket', PERP_MARKET_SIZE, 1216],
    ['SpotMarket', SPOT_MARKET_SIZE, 776],
    ['State', STATE_SIZE, 992], // impl Size for State (state.rs); the adapter only writes it in fixtures
  ];
  it.each(sizes)('%s is %i bytes', (_name, adapter, real) => expect(adapter).toBe(real));

  it('User: header fields and the position / order arrays', () => {
    const fields: Record<string, [string, string]> = {
      authority: ['authority', 'Pubkey'],
      delegate: ['delegate', 'Pubkey'],
      name: ['name', '[u8;32]'],
      spotPositions: ['spot_positions', '[SpotPosition;8]'],
      perpPositions: ['perp_positions', '[PerpPosition;8]'],
      orders: ['orders', '[Order;32]'],
      lastActiveSlot: ['last_active_slot', 'u64'],
      nextOrderId: ['next_order_id', 'u32'],
      maxMarginRatio: ['max_margin_ratio', 'u32'],
      subAccountId: ['sub_account_id', 'u16'],
      status: ['status', 'u8'],
      openOrders: ['open_orders', 'u8'],
    };
    const arrays = { spotPosition: 'SpotPosition', perpPosition: 'PerpPosition', order: 'Order' } as const;
    // every entry of USER is either a field above or an array's element size / count below
    expect(Object.keys(USER).sort()).toEqual(
      [...Object.keys(fields), ...Object.keys(arrays).flatMap((k) => [`${k}Size`, `${k}Count`])].sort(),
    );
    for (const [key, [field, type]] of Object.entries(fields))
      expect({ key, offset: USER[key as keyof typeof USER], type }).toEqual({
        key,
        offset: accountOffset('User', field),
        type: fieldAt('User', field).type,
      });
    const count = (field: string) => Number(/;(\d+)\]$/.exec(fieldAt('User', field).type)?.[1]);
    expect([USER.spotPositionSize, USER.spotPositionCount]).toEqual([
      typeLayout('SpotPosition').size,
      count('spot_positions'),
    ]);
    expect([USER.perpPositionSize, USER.perpPositionCount]).toEqual([
      typeLayout('PerpPosition').size,
      count('perp_positions'),
    ]);
    expect([USER.orderSize, USER.orderCount]).toEqual([typeLayout('Order').size, count('orders')]);
  });

  const inner: [string, Record<string, number>, Record<string, [string, string]>][] = [
    [
      'SpotPosition',
      SPOT_POSITION,
      {
        scaledBalance: ['scaled_balance', 'u64'],
        openBids: ['open_bids', 'i64'],
        openAsks: ['open_asks', 'i64'],
        marketIndex: ['market_index', 'u16'],
        balanceType: ['balance_type', 'SpotBalanceType'],
        openOrders: ['open_orders', 'u8'],
      },
    ],
    [
      'PerpPosition',
      PERP_POSITION,
      {
        lastCumulativeFundingRate: ['last_cumulative_funding_rate', 'i64'],
        baseAssetAmount: ['base_asset_amount', 'i64'],
        quoteAssetAmount: ['quote_asset_amount', 'i64'],
        quoteBreakEvenAmount: ['quote_break_even_amount', 'i64'],
        quoteEntryAmount: ['quote_entry_amount', 'i64'],
        openBids: ['open_bids', 'i64'],
        openAsks: ['open_asks', 'i64'],
        settledPnl: ['settled_pnl', 'i64'],
        lpShares: ['lp_shares', 'u64'],
        isolatedPositionScaledBalance: ['isolated_position_scaled_balance', 'u64'],
        maxMarginRatio: ['max_margin_ratio', 'u16'],
        marketIndex: ['market_index', 'u16'],
        openOrders: ['open_orders', 'u8'],
        positionFlag: ['position_flag', 'u8'],
      },
    ],
    [
      'Order',
      ORDER,
      {
        slot: ['slot', 'u64'],
        price: ['price', 'u64'],
        baseAssetAmount: ['base_asset_amount', 'u64'],
        baseAssetAmountFilled: ['base_asset_amount_filled', 'u64'],
        quoteAssetAmountFilled: ['quote_asset_amount_filled', 'u64'],
        triggerPrice: ['trigger_price', 'u64'],
        maxTs: ['max_ts', 'i64'],
        oraclePriceOffset: ['oracle_price_offset', 'i32'],
        orderId: ['order_id', 'u32'],
        marketIndex: ['market_index', 'u16'],
        status: ['status', 'OrderStatus'],
        orderType: ['order_type', 'OrderType'],
        marketType: ['market_type', 'MarketType'],
        userOrderId: ['user_order_id', 'u8'],
        direction: ['direction', 'PositionDirection'],
        reduceOnly: ['reduce_only', 'bool'],
        postOnly: ['post_only', 'bool'],
        immediateOrCancel: ['immediate_or_cancel', 'bool'],
      },
    ],
  ];
  it.each(inner)('%s: every offset, at the Rust field and type it stands for', (struct, adapter, table) => {
    // the table covers every entry the adapter has, no more, no less
    expect(Object.keys(adapter).sort()).toEqual(Object.keys(table).sort());
    for (const [key, [field, type]] of Object.entries(table))
      expect({ key, offset: adapter[key], type }).toEqual({ key, ...fieldAt(struct, field) });
  });

  it('PerpMarket (AMM included): every offset, at the Rust field and type it stands for', () => {
    const table: Record<keyof typeof PERP_MARKET, [string, string]> = {
      pubkey: ['pubkey', 'Pubkey'],
      oracle: ['amm.oracle', 'Pubkey'],
      lastOraclePrice: ['amm.historical_oracle_data.last_oracle_price', 'i64'],
      lastOracleConf: ['amm.historical_oracle_data.last_oracle_conf', 'u64'],
      lastOracleDelay: ['amm.historical_oracle_data.last_oracle_delay', 'i64'],
      lastOraclePriceTwap: ['amm.historical_oracle_data.last_oracle_price_twap', 'i64'],
      lastOraclePriceTwapTs: ['amm.historical_oracle_data.last_oracle_price_twap_ts', 'i64'],
      baseAssetReserve: ['amm.base_asset_reserve', 'u128'],
      quoteAssetReserve: ['amm.quote_asset_reserve', 'u128'],
      sqrtK: ['amm.sqrt_k', 'u128'],
      pegMultiplier: ['amm.peg_multiplier', 'u128'],
      baseAssetAmountLong: ['amm.base_asset_amount_long', 'i128'],
      baseAssetAmountShort: ['amm.base_asset_amount_short', 'i128'],
      baseAssetAmountWithAmm: ['amm.base_asset_amount_with_amm', 'i128'],
      baseAssetAmountWithUnsettledLp: ['amm.base_asset_amount_with_unsettled_lp', 'i128'],
      maxOpenInterest: ['amm.max_open_interest', 'u128'],
      quoteAssetAmount: ['amm.quote_asset_amount', 'i128'],
      lastFundingRate: ['amm.last_funding_rate', 'i64'],
      lastFundingRateLong: ['amm.last_funding_rate_long', 'i64'],
      lastFundingRateShort: ['amm.last_funding_rate_short', 'i64'],
      last24hAvgFundingRate: ['amm.last_24h_avg_funding_rate', 'i64'],
      cumulativeFundingRateLong: ['amm.cumulative_funding_rate_long', 'i128'],
      cumulativeFundingRateShort: ['amm.cumulative_funding_rate_short', 'i128'],
      lastMarkPriceTwap: ['amm.last_mark_price_twap', 'u64'],
      lastUpdateSlot: ['amm.last_update_slot', 'u64'],
      lastFundingRateTs: ['amm.last_funding_rate_ts', 'i64'],
      fundingPeriod: ['amm.funding_period', 'i64'],
      orderStepSize: ['amm.order_step_size', 'u64'],
      orderTickSize: ['amm.order_tick_size', 'u64'],
      minOrderSize: ['amm.min_order_size', 'u64'],
      baseSpread: ['amm.base_spread', 'u32'],
      maxSpread: ['amm.max_spread', 'u32'],
      netUnsettledFundingPnl: ['amm.net_unsettled_funding_pnl', 'i64'],
      quoteAssetAmountWithUnsettledLp: ['amm.quote_asset_amount_with_unsettled_lp', 'i64'],
      name: ['name', '[u8;32]'],
      unrealizedPnlMaxImbalance: ['unrealized_pnl_max_imbalance', 'u64'],
      expiryPrice: ['expiry_price', 'i64'],
      imfFactor: ['imf_factor', 'u32'],
      unrealizedPnlImfFactor: ['unrealized_pnl_imf_factor', 'u32'],
      marginRatioInitial: ['margin_ratio_initial', 'u32'],
      marginRatioMaintenance: ['margin_ratio_maintenance', 'u32'],
      unrealizedPnlInitialAssetWeight: ['unrealized_pnl_initial_asset_weight', 'u32'],
      marketIndex: ['market_index', 'u16'],
      status: ['status', 'MarketStatus'],
      contractType: ['contract_type', 'ContractType'],
      quoteSpotMarketIndex: ['quote_spot_market_index', 'u16'],
      feeAdjustment: ['fee_adjustment', 'i16'],
    };
    for (const [key, [path, type]] of Object.entries(table))
      expect({ key, offset: PERP_MARKET[key as keyof typeof PERP_MARKET], type }).toEqual({
        key,
        offset: accountOffset('PerpMarket', path),
        type: fieldAt('PerpMarket', path).type,
      });
  });

  it('State (borsh, packed): the perp fee tiers and the FeeTier fields the adapter reads', () => {
    const tiers = fieldAt('State', 'perp_fee_structure.fee_tiers', true);
    expect(tiers.type).toBe('[FeeTier;10]');
    expect(STATE).toEqual({
      perpFeeTiers: 8 + tiers.offset,
      feeTierSize: typeLayout('FeeTier', true).size,
      feeTierCount: 10,
    });
    const table: Record<keyof typeof FEE_TIER, [string, string]> = {
      feeNumerator: ['fee_numerator', 'u32'],
      feeDenominator: ['fee_denominator', 'u32'],
      makerRebateNumerator: ['maker_rebate_numerator', 'u32'],
      makerRebateDenominator: ['maker_rebate_denominator', 'u32'],
    };
    for (const [key, [field, type]] of Object.entries(table))
      expect({ key, offset: FEE_TIER[key as keyof typeof FEE_TIER], type }).toEqual({
        key,
        ...fieldAt('FeeTier', field, true),
      });
    // the five Pubkeys before it end at 160, a multiple of FeeStructure's alignment: a repr(C) reading
    // would find the tiers at the same place (the borsh one is what the program serializes)
    expect(fieldAt('State', 'perp_fee_structure.fee_tiers').offset).toBe(tiers.offset);
  });

  it('SpotMarket and UserStats: every offset, at the Rust field and type it stands for', () => {
    const spot: Record<keyof typeof SPOT_MARKET, [string, string]> = {
      pubkey: ['pubkey', 'Pubkey'],
      oracle: ['oracle', 'Pubkey'],
      mint: ['mint', 'Pubkey'],
      name: ['name', '[u8;32]'],
      cumulativeDepositInterest: ['cumulative_deposit_interest', 'u128'],
      cumulativeBorrowInterest: ['cumulative_borrow_interest', 'u128'],
      decimals: ['decimals', 'u32'],
      marketIndex: ['market_index', 'u16'],
    };
    for (const [key, [path, type]] of Object.entries(spot))
      expect({ key, offset: SPOT_MARKET[key as keyof typeof SPOT_MARKET], type }).toEqual({
        key,
        offset: accountOffset('SpotMarket', path),
        type: fieldAt('SpotMarket', path).type,
      });
    expect(USER_STATS.authority).toBe(accountOffset('UserStats', 'authority'));
  });
});

describe('protocol-v2 names: discriminators, enums, seeds, instructions, precisions', () => {
  it('account and instruction discriminators are sha256("<namespace>:<name>")[..8] of the real names', () => {
    const table: [Buffer, string, number[]][] = [
      [USER_DISCRIMINATOR, 'account:User', [159, 117, 95, 227, 239, 151, 58, 236]],
      [USER_STATS_DISCRIMINATOR, 'account:UserStats', [176, 223, 136, 27, 122, 79, 32, 227]],
      [PERP_MARKET_DISCRIMINATOR, 'account:PerpMarket', [10, 223, 12, 44, 107, 245, 55, 247]],
      [SPOT_MARKET_DISCRIMINATOR, 'account:SpotMarket', [100, 177, 8, 107, 168, 65, 65, 39]],
      [STATE_DISCRIMINATOR, 'account:State', [216, 146, 107, 94, 104, 75, 182, 177]],
      [PLACE_PERP_ORDER_DISCRIMINATOR, 'global:place_perp_order', [69, 161, 93, 202, 120, 126, 76, 185]],
      [
        PLACE_AND_TAKE_PERP_ORDER_DISCRIMINATOR,
        'global:place_and_take_perp_order',
        [213, 51, 1, 187, 108, 220, 230, 224],
      ],
      [
        CANCEL_ORDER_BY_USER_ID_DISCRIMINATOR,
        'global:cancel_order_by_user_id',
        [107, 211, 250, 133, 18, 37, 57, 100],
      ],
    ];
    for (const [adapter, preimage, bytes] of table) {
      expect({ preimage, bytes: [...adapter] }).toEqual({ preimage, bytes: disc(preimage) });
      expect({ preimage, bytes: [...adapter] }).toEqual({ preimage, bytes });
    }
  });

  it("enums are in the program's declaration order (borsh / repr(u8) index)", () => {
    expect(ORDER_STATUS).toEqual(['init', 'open', 'filled', 'canceled']);
    expect(ORDER_TYPE).toEqual(['market', 'limit', 'triggerMarket', 'triggerLimit', 'oracle']);
    expect(MARKET_TYPE).toEqual(['spot', 'perp']);
    expect(POSITION_DIRECTION).toEqual(['long', 'short']);
    expect(POST_ONLY).toEqual(['none', 'mustPostOnly', 'tryPostOnly', 'slide']);
    expect(TRIGGER_CONDITION).toEqual(['above', 'below', 'triggeredAbove', 'triggeredBelow']);
    expect(MARKET_STATUS).toEqual([
      'initialized',
      'active',
      'fundingPaused',
      'ammPaused',
      'fillPaused',
      'withdrawPaused',
      'reduceOnly',
      'settlement',
      'delisted',
    ]);
    expect(CONTRACT_TYPE).toEqual(['perpetual', 'future', 'prediction']); // perp_market.rs ContractType
    expect(USER_STATUS).toEqual({ beingLiquidated: 1, bankrupt: 2, reduceOnly: 4 });
    expect(POSITION_FLAG).toEqual({ isolated: 1, beingLiquidated: 2, bankrupt: 4 });
    expect(ORDER_PARAMS_BIT_IMMEDIATE_OR_CANCEL).toBe(1); // OrderParamsBitFlag::ImmediateOrCancel
    expect(QUOTE_SPOT_MARKET_INDEX).toBe(0);
  });

  it('precisions are those of math/constants.rs', () => {
    expect(PRICE_PRECISION).toBe(10n ** 6n);
    expect(QUOTE_PRECISION).toBe(10n ** 6n);
    expect(BASE_PRECISION).toBe(10n ** 9n); // = AMM_RESERVE_PRECISION
    expect(AMM_RESERVE_PRECISION).toBe(10n ** 9n);
    expect(PEG_PRECISION).toBe(10n ** 6n);
    expect(FUNDING_RATE_PRECISION).toBe(10n ** 9n); // PRICE_PRECISION × FUNDING_RATE_BUFFER (1e3)
    expect(SPOT_BALANCE_PRECISION).toBe(10n ** 9n);
    expect(SPOT_TOKEN_AMOUNT_DIVISOR).toBe(10n ** 19n); // SPOT_CUMULATIVE_INTEREST_PRECISION 1e10 × 1e9
    expect(MARGIN_PRECISION).toBe(10_000);
    // the margin calculation's (src/margin.ts)
    expect(SPOT_WEIGHT_PRECISION).toBe(10_000n); // = MARGIN_PRECISION
    expect(SPOT_IMF_PRECISION).toBe(10n ** 6n); // = PERCENTAGE_PRECISION
    expect(OPEN_ORDER_MARGIN_REQUIREMENT).toBe(QUOTE_PRECISION / 100n);
    expect(MAX_POSITIVE_UPNL_FOR_INITIAL_MARGIN).toBe(100n * QUOTE_PRECISION);
    expect(MAX_PREDICTION_MARKET_PRICE).toBe(PRICE_PRECISION);
    expect(FEE_DENOMINATOR).toBe(100_000); // 10 × ONE_BPS_DENOMINATOR (1e4)
    expect(FEE_ADJUSTMENT_MAX).toBe(100);
    // validate_fee_tier (validation/fee_structure.rs): taker ≤ 300 (30 bps), maker rebate ≤ 30 (3 bps)
    expect([MAX_TAKER_FEE_NUMERATOR, MAX_MAKER_REBATE_NUMERATOR]).toEqual([300, 30]);
  });

  it("PDAs use the program's seeds", () => {
    const programId = Keypair.generate().publicKey;
    const authority = Keypair.generate().publicKey;
    const pda = (...seeds: Buffer[]) => PublicKey.findProgramAddressSync(seeds, programId)[0];
    const u16 = (n: number) => Buffer.from([n & 0xff, n >> 8]);
    expect(driftPda.state(programId)).toEqual(pda(Buffer.from('drift_state')));
    expect(driftPda.user(programId, authority, 258)).toEqual(
      pda(Buffer.from('user'), authority.toBuffer(), u16(258)),
    );
    expect(driftPda.userStats(programId, authority)).toEqual(
      pda(Buffer.from('user_stats'), authority.toBuffer()),
    );
    expect(driftPda.perpMarket(programId, 513)).toEqual(pda(Buffer.from('perp_market'), u16(513)));
    expect(driftPda.spotMarket(programId, 1)).toEqual(pda(Buffer.from('spot_market'), u16(1)));
  });

  it("instructions take the IDL's accounts in order with its mut / signer flags, then the remaining accounts", () => {
    const programId = Keypair.generate().publicKey;
    const authority = Keypair.generate().publicKey;
    const user = driftPda.user(programId, authority, 0);
    const extra = { pubkey: Keypair.generate().publicKey, isSigner: false, isWritable: false };
    const a = { programId, user, authority, remainingAccounts: [extra] };
    const params: OrderParams = {
      orderType: 'limit',
      marketType: 'perp',
      direction: 'long',
      userOrderId: 5,
      baseAssetAmount: 1n,
      price: 1n,
      marketIndex: 0,
      reduceOnly: false,
      postOnly: 'none',
      immediateOrCancel: false,
    };
    // sdk/src/idl/drift.json (2.162.0): placePerpOrder / cancelOrderByUserId: state, user (mut),
    // authority (signer); placeAndTakePerpOrder: state, user (mut), userStats (mut), authority (signer)
    const flags = (keys: { pubkey: PublicKey; isSigner: boolean; isWritable: boolean }[]) =>
      keys.map((k) => [k.pubkey.toBase58(), k.isWritable, k.isSigner]);
    const state = driftPda.state(programId).toBase58();
    const tail = [[extra.pubkey.toBase58(), false, false]];
    expect(flags(placePerpOrderInstruction(a, params).keys)).toEqual([
      [state, false, false],
      [user.toBase58(), true, false],
      [authority.toBase58(), false, true],
      ...tail,
    ]);
    expect(flags(cancelOrderByUserIdInstruction(a, 5).keys)).toEqual([
      [state, false, false],
      [user.toBase58(), true, false],
      [authority.toBase58(), false, true],
      ...tail,
    ]);
    const ioc = { ...params, immediateOrCancel: true };
    expect(flags(placeAndTakePerpOrderInstruction(a, ioc).keys)).toEqual([
      [state, false, false],
      [user.toBase58(), true, false],
      [driftPda.userStats(programId, authority).toBase58(), true, false],
      [authority.toBase58(), false, true],
      ...tail,
    ]);
    // args: place_perp_order(params), place_and_take_perp_order(params, success_condition: Option<u32>),
    // cancel_order_by_user_id(user_order_id: u8)
    expect(placePerpOrderInstruction(a, params).data.subarray(8)).toEqual(encodeOrderParams(params));
    expect(placeAndTakePerpOrderInstruction(a, ioc).data.subarray(8)).toEqual(
      Buffer.concat([encodeOrderParams(ioc), Buffer.from([0])]),
    );
    expect([...cancelOrderByUserIdInstruction(a, 5).data.subarray(8)]).toEqual([5]);
    // place_perp_order refuses the IOC bit on chain (InvalidOrderIOC): the builder refuses it first
    expect(() => placePerpOrderInstruction(a, ioc)).toThrow(/InvalidOrderIOC/);
  });

  it("OrderParams is borsh in the IDL's field order and types", () => {
    // order_type, market_type, direction (u8 enums), user_order_id u8, base_asset_amount u64,
    // price u64, market_index u16, reduce_only bool, post_only enum, bit_flags u8, max_ts Option<i64>,
    // trigger_price Option<u64>, trigger_condition enum, oracle_price_offset Option<i32>,
    // auction_duration Option<u8>, auction_start_price Option<i64>, auction_end_price Option<i64>
    const bytes = encodeOrderParams({
      orderType: 'oracle',
      marketType: 'perp',
      direction: 'short',
      userOrderId: 255,
      baseAssetAmount: 0x0102030405060708n,
      price: 0x1112131415161718n,
      marketIndex: 0x2122,
      reduceOnly: true,
      postOnly: 'slide',
      immediateOrCancel: true,
      maxTs: -2n,
      triggerPrice: 9n,
      triggerCondition: 'triggeredBelow',
      oraclePriceOffset: -3,
      auctionDuration: 7,
      auctionStartPrice: -4n,
      auctionEndPrice: 5n,
    });
    const le = (n: bigint, size: number, signed = false) => {
      const b = Buffer.alloc(size);
      if (size === 8) signed ? b.writeBigInt64LE(n) : b.writeBigUInt64LE(n);
      else if (size === 4) b.writeInt32LE(Number(n));
      else b.writeUInt16LE(Number(n));
      return [...b];
    };
    const fields: number[][] = [
      [4, 1, 1], // order_type Oracle, market_type Perp, direction Short
      [255], // user_order_id
      le(0x0102030405060708n, 8), // base_asset_amount
      le(0x1112131415161718n, 8), // price
      le(0x2122n, 2), // market_index
      [1, 3, 1], // reduce_only, post_only Slide, bit_flags ImmediateOrCancel
      [1, ...le(-2n, 8, true)], // max_ts Some
      [1, ...le(9n, 8)], // trigger_price Some
      [3], // trigger_condition TriggeredBelow
      [1, ...le(-3n, 4, true)], // oracle_price_offset Some
      [1, 7], // auction_duration Some
      [1, ...le(-4n, 8, true)], // auction_start_price Some
      [1, ...le(5n, 8, true)], // auction_end_price Some
    ];
    expect([...bytes]).toEqual(fields.flat());
  });
});
