import { type Address, encodeAbiParameters, type Hex, keccak256 } from 'viem';

// DataStore keys as gmx-synthetics derives them (contracts/data/Keys.sol at
// a5c0c8835182cbd84e47dca04b971239311d2f1d): each constant is `keccak256(abi.encode("NAME"))`, each
// keyed value `keccak256(abi.encode(CONSTANT, ...args))`. The values are read with `DataStore.getUint`
// (switches with `getBool`, lists with `getBytes32ValuesAt`).

/** `keccak256(abi.encode(name))`: how Keys.sol (and gmx-synthetics' utils/hash.ts `hashString`) names a key. */
export function hashString(name: string): Hex {
  return keccak256(encodeAbiParameters([{ type: 'string' }], [name]));
}

/** The Keys.sol constants the adapter and the local contract read (names exactly as upstream, incl. the `_V2_1` suffix). */
export const GMX_KEYS = {
  ORDER_LIST: hashString('ORDER_LIST'),
  ACCOUNT_ORDER_LIST: hashString('ACCOUNT_ORDER_LIST'),
  ESTIMATED_GAS_FEE_BASE_AMOUNT_V2_1: hashString('ESTIMATED_GAS_FEE_BASE_AMOUNT_V2_1'),
  ESTIMATED_GAS_FEE_PER_ORACLE_PRICE: hashString('ESTIMATED_GAS_FEE_PER_ORACLE_PRICE'),
  ESTIMATED_GAS_FEE_MULTIPLIER_FACTOR: hashString('ESTIMATED_GAS_FEE_MULTIPLIER_FACTOR'),
  SINGLE_SWAP_GAS_LIMIT: hashString('SINGLE_SWAP_GAS_LIMIT'),
  INCREASE_ORDER_GAS_LIMIT: hashString('INCREASE_ORDER_GAS_LIMIT'),
  DECREASE_ORDER_GAS_LIMIT: hashString('DECREASE_ORDER_GAS_LIMIT'),
  POSITION_FEE_FACTOR: hashString('POSITION_FEE_FACTOR'),
  OPEN_INTEREST: hashString('OPEN_INTEREST'),
  MAX_OPEN_INTEREST: hashString('MAX_OPEN_INTEREST'),
  OPEN_INTEREST_IN_TOKENS: hashString('OPEN_INTEREST_IN_TOKENS'),
  POOL_AMOUNT: hashString('POOL_AMOUNT'),
  RESERVE_FACTOR: hashString('RESERVE_FACTOR'),
  OPEN_INTEREST_RESERVE_FACTOR: hashString('OPEN_INTEREST_RESERVE_FACTOR'),
  MIN_COLLATERAL_FACTOR: hashString('MIN_COLLATERAL_FACTOR'),
  /** Seconds before a market order may be cancelled (BaseHandler.validateRequestCancellation). */
  REQUEST_EXPIRATION_TIME: hashString('REQUEST_EXPIRATION_TIME'),
  /** Oldest a keeper's signed price may be (Oracle._validatePrices). */
  MAX_ORACLE_PRICE_AGE: hashString('MAX_ORACLE_PRICE_AGE'),
  // Funding and borrowing, as MarketUtils reads them for Reader.getMarketInfo (the adapter reads that
  // call's result, not these keys; the local contract's Reader computes it from them). Per market
  // ({@link marketKey}): the static model's FUNDING_FACTOR and FUNDING_EXPONENT_FACTOR, adaptive
  // funding's SAVED_FUNDING_FACTOR_PER_SECOND (DataStore.getInt, signed: > 0 when longs pay),
  // FUNDING_INCREASE/DECREASE_FACTOR_PER_SECOND, THRESHOLD_FOR_STABLE/DECREASE_FUNDING and
  // FUNDING_UPDATED_AT, the bounds MIN/MAX_FUNDING_FACTOR_PER_SECOND, and IS_MARKET_DISABLED (getBool).
  FUNDING_FACTOR: hashString('FUNDING_FACTOR'),
  FUNDING_EXPONENT_FACTOR: hashString('FUNDING_EXPONENT_FACTOR'),
  SAVED_FUNDING_FACTOR_PER_SECOND: hashString('SAVED_FUNDING_FACTOR_PER_SECOND'),
  FUNDING_INCREASE_FACTOR_PER_SECOND: hashString('FUNDING_INCREASE_FACTOR_PER_SECOND'),
  FUNDING_DECREASE_FACTOR_PER_SECOND: hashString('FUNDING_DECREASE_FACTOR_PER_SECOND'),
  MIN_FUNDING_FACTOR_PER_SECOND: hashString('MIN_FUNDING_FACTOR_PER_SECOND'),
  MAX_FUNDING_FACTOR_PER_SECOND: hashString('MAX_FUNDING_FACTOR_PER_SECOND'),
  THRESHOLD_FOR_STABLE_FUNDING: hashString('THRESHOLD_FOR_STABLE_FUNDING'),
  THRESHOLD_FOR_DECREASE_FUNDING: hashString('THRESHOLD_FOR_DECREASE_FUNDING'),
  FUNDING_UPDATED_AT: hashString('FUNDING_UPDATED_AT'),
  IS_MARKET_DISABLED: hashString('IS_MARKET_DISABLED'),
  // Per market and side ({@link marketSideKey}): the kink model's OPTIMAL_USAGE_FACTOR,
  // BASE_BORROWING_FACTOR and ABOVE_OPTIMAL_USAGE_BORROWING_FACTOR, else BORROWING_FACTOR and
  // BORROWING_EXPONENT_FACTOR.
  OPTIMAL_USAGE_FACTOR: hashString('OPTIMAL_USAGE_FACTOR'),
  BASE_BORROWING_FACTOR: hashString('BASE_BORROWING_FACTOR'),
  ABOVE_OPTIMAL_USAGE_BORROWING_FACTOR: hashString('ABOVE_OPTIMAL_USAGE_BORROWING_FACTOR'),
  BORROWING_FACTOR: hashString('BORROWING_FACTOR'),
  BORROWING_EXPONENT_FACTOR: hashString('BORROWING_EXPONENT_FACTOR'),
  // Global switches (DataStore.getBool).
  SKIP_BORROWING_FEE_FOR_SMALLER_SIDE: hashString('SKIP_BORROWING_FEE_FOR_SMALLER_SIDE'),
  USE_OPEN_INTEREST_IN_TOKENS_FOR_BALANCE: hashString('USE_OPEN_INTEREST_IN_TOKENS_FOR_BALANCE'),
  // Feature switches (DataStore.getBool, true = disabled), per handler and order type
  // ({@link orderFeatureDisabledKey}): OrderHandler.createOrder and OrderHandler._executeOrder check them
  // with FeatureUtils.validateFeature (DisabledFeature(key)).
  CREATE_ORDER_FEATURE_DISABLED: hashString('CREATE_ORDER_FEATURE_DISABLED'),
  EXECUTE_ORDER_FEATURE_DISABLED: hashString('EXECUTE_ORDER_FEATURE_DISABLED'),
} as const;

/**
 * `keccak256(abi.encode(name, market))`: Keys.sol's per-market keys whose constant is `name`
 * (fundingFactorKey, fundingExponentFactorKey, savedFundingFactorPerSecondKey,
 * fundingIncreaseFactorPerSecondKey, fundingDecreaseFactorPerSecondKey, min/maxFundingFactorPerSecondKey,
 * thresholdForStableFundingKey, thresholdForDecreaseFundingKey, fundingUpdatedAtKey, isMarketDisabledKey).
 */
export function marketKey(name: Hex, market: Address): Hex {
  return keccak256(encodeAbiParameters([{ type: 'bytes32' }, { type: 'address' }], [name, market]));
}

/**
 * Keys.isMarketDisabledKey(market) (DataStore.getBool): MarketUtils.validateEnabledMarket reverts
 * `DisabledMarket(market)` when it is set. Upstream checks it when any position order is created
 * (OrderUtils.createOrder → validatePositionMarket, increases and decreases alike) and executed
 * (BaseOrderHandler's getEnabledMarket), so nothing trades in a disabled market, closing included.
 * `Reader.getMarketInfo` reports it as `isDisabled`.
 */
export function isMarketDisabledKey(market: Address): Hex {
  return marketKey(GMX_KEYS.IS_MARKET_DISABLED, market);
}

/**
 * Keys.createOrderFeatureDisabledKey / executeOrderFeatureDisabledKey(module, orderType):
 * `keccak256(abi.encode(CONSTANT, module, uint256(orderType)))` (DataStore.getBool, true = disabled), where
 * `module` is the OrderHandler (`address(this)` in OrderHandler.createOrder / _executeOrder; the
 * ExchangeRouter's `orderHandler()`) and `orderType` the position of `Order.OrderType` (2 MarketIncrease,
 * 4 MarketDecrease). A disabled creation reverts `DisabledFeature(key)` in the creating transaction; a
 * disabled execution reverts the keeper's call and the order waits (OrderHandler._handleOrderError).
 */
export function orderFeatureDisabledKey(
  feature: 'create' | 'execute',
  orderHandler: Address,
  orderType: number,
): Hex {
  return keccak256(
    encodeAbiParameters(
      [{ type: 'bytes32' }, { type: 'address' }, { type: 'uint256' }],
      [
        feature === 'create'
          ? GMX_KEYS.CREATE_ORDER_FEATURE_DISABLED
          : GMX_KEYS.EXECUTE_ORDER_FEATURE_DISABLED,
        orderHandler,
        BigInt(orderType),
      ],
    ),
  );
}

/**
 * `keccak256(abi.encode(name, market, isLong))`: Keys.sol's per-market, per-side keys whose constant is
 * `name` (optimalUsageFactorKey, baseBorrowingFactorKey, aboveOptimalUsageBorrowingFactorKey,
 * borrowingFactorKey, borrowingExponentFactorKey).
 */
export function marketSideKey(name: Hex, market: Address, isLong: boolean): Hex {
  return keccak256(
    encodeAbiParameters([{ type: 'bytes32' }, { type: 'address' }, { type: 'bool' }], [name, market, isLong]),
  );
}

/** Keys.accountOrderListKey(account): the account's order keys (a bytes32 set). */
export function accountOrderListKey(account: Address): Hex {
  return keccak256(
    encodeAbiParameters([{ type: 'bytes32' }, { type: 'address' }], [GMX_KEYS.ACCOUNT_ORDER_LIST, account]),
  );
}

/**
 * Keys.openInterestKey(market, collateralToken, isLong): open interest in USD (30 decimals) of the
 * positions of one side with that collateral. MarketUtils.getOpenInterest(market, isLong) sums the
 * market's long-token and short-token keys, each divided by 2 when both tokens are the same.
 */
export function openInterestKey(market: Address, collateralToken: Address, isLong: boolean): Hex {
  return keccak256(
    encodeAbiParameters(
      [{ type: 'bytes32' }, { type: 'address' }, { type: 'address' }, { type: 'bool' }],
      [GMX_KEYS.OPEN_INTEREST, market, collateralToken, isLong],
    ),
  );
}

/**
 * Keys.openInterestInTokensKey(market, collateralToken, isLong): open interest in index-token units
 * of one side with that collateral (summed, each halved for a one-token market, as the USD keys).
 */
export function openInterestInTokensKey(market: Address, collateralToken: Address, isLong: boolean): Hex {
  return keccak256(
    encodeAbiParameters(
      [{ type: 'bytes32' }, { type: 'address' }, { type: 'address' }, { type: 'bool' }],
      [GMX_KEYS.OPEN_INTEREST_IN_TOKENS, market, collateralToken, isLong],
    ),
  );
}

/** Keys.poolAmountKey(market, token): the pool's amount of one of its tokens (halved by MarketUtils for a one-token market). */
export function poolAmountKey(market: Address, token: Address): Hex {
  return keccak256(
    encodeAbiParameters(
      [{ type: 'bytes32' }, { type: 'address' }, { type: 'address' }],
      [GMX_KEYS.POOL_AMOUNT, market, token],
    ),
  );
}

/**
 * Keys.reserveFactorKey / openInterestReserveFactorKey(market, isLong): the share of the side's pool
 * (30 decimals) that its positions may reserve; an increase must pass both
 * (MarketUtils.validateReserve and validateOpenInterestReserve).
 */
export function reserveFactorKey(market: Address, isLong: boolean, kind: 'reserve' | 'open-interest'): Hex {
  return keccak256(
    encodeAbiParameters(
      [{ type: 'bytes32' }, { type: 'address' }, { type: 'bool' }],
      [kind === 'reserve' ? GMX_KEYS.RESERVE_FACTOR : GMX_KEYS.OPEN_INTEREST_RESERVE_FACTOR, market, isLong],
    ),
  );
}

/** Keys.maxOpenInterestKey(market, isLong): the side's open-interest cap, USD (30 decimals). */
export function maxOpenInterestKey(market: Address, isLong: boolean): Hex {
  return keccak256(
    encodeAbiParameters(
      [{ type: 'bytes32' }, { type: 'address' }, { type: 'bool' }],
      [GMX_KEYS.MAX_OPEN_INTEREST, market, isLong],
    ),
  );
}

/**
 * Keys.positionFeeFactorKey(market, balanceWasImproved): the position fee factor (30 decimals) of a
 * change that brings the market's long and short open interest closer (`true`) or not.
 */
export function positionFeeFactorKey(market: Address, balanceWasImproved: boolean): Hex {
  return keccak256(
    encodeAbiParameters(
      [{ type: 'bytes32' }, { type: 'address' }, { type: 'bool' }],
      [GMX_KEYS.POSITION_FEE_FACTOR, market, balanceWasImproved],
    ),
  );
}

/**
 * Keys.minCollateralFactorKey(market): the least collateral a position in the market may hold after
 * an increase, as a share of its size (30 decimals; 0.01 × 10^30 = 100× at most), read by
 * MarketUtils.getMinCollateralFactor for PositionUtils.validatePosition (and, with the open-interest
 * multiplier's factor when larger, willPositionCollateralBeSufficient).
 */
export function minCollateralFactorKey(market: Address): Hex {
  return keccak256(
    encodeAbiParameters([{ type: 'bytes32' }, { type: 'address' }], [GMX_KEYS.MIN_COLLATERAL_FACTOR, market]),
  );
}

/** Precision.FLOAT_PRECISION: GMX factors have 30 decimals. */
export const FLOAT_PRECISION = 10n ** 30n;

/** Precision.applyFactor(value, factor) for unsigned values (rounds down, as mulDiv does). */
export function applyFactor(value: bigint, factor: bigint): bigint {
  return (value * factor) / FLOAT_PRECISION;
}

/** The settings GasUtils.adjustGasLimitForEstimate and the order gas estimates read, by key. */
export interface GmxExecutionGasSettings {
  estimatedGasFeeBaseAmount: bigint;
  estimatedGasPerOraclePrice: bigint;
  /** 30 decimals (10^30 = 1×). */
  estimatedGasFeeMultiplierFactor: bigint;
  singleSwapGasLimit: bigint;
  increaseOrderGasLimit: bigint;
  decreaseOrderGasLimit: bigint;
}

/**
 * The gas limit GMX charges an order's execution fee for (GasUtils.validateExecutionFee requires
 * `executionFee ≥ this × tx.gasprice`): `adjustGasLimitForEstimate(estimate, 3 + swaps)` =
 * ESTIMATED_GAS_FEE_BASE_AMOUNT_V2_1 + ESTIMATED_GAS_FEE_PER_ORACLE_PRICE × (3 + swapPath length)
 * + applyFactor(estimate, ESTIMATED_GAS_FEE_MULTIPLIER_FACTOR), where the estimate is
 * `estimateExecuteIncreaseOrderGasLimit` (INCREASE_ORDER_GAS_LIMIT + SINGLE_SWAP_GAS_LIMIT × swaps +
 * callbackGasLimit) or `estimateExecuteDecreaseOrderGasLimit` (DECREASE_ORDER_GAS_LIMIT, one more
 * swap when the decrease swaps its output). The adapter's orders have no swaps and no callback.
 */
export function orderExecutionGasLimit(
  s: GmxExecutionGasSettings,
  o: {
    increase: boolean;
    swapPathLength?: number;
    decreaseSwapsOutput?: boolean;
    callbackGasLimit?: bigint;
  },
): bigint {
  const pathSwaps = BigInt(o.swapPathLength ?? 0);
  const swaps = pathSwaps + (!o.increase && o.decreaseSwapsOutput ? 1n : 0n);
  const estimate =
    (o.increase ? s.increaseOrderGasLimit : s.decreaseOrderGasLimit) +
    s.singleSwapGasLimit * swaps +
    (o.callbackGasLimit ?? 0n);
  const oraclePriceCount = 3n + pathSwaps;
  return (
    s.estimatedGasFeeBaseAmount +
    s.estimatedGasPerOraclePrice * oraclePriceCount +
    applyFactor(estimate, s.estimatedGasFeeMultiplierFactor)
  );
}

/**
 * PositionPricingUtils' `balanceWasImproved` (nextDiffUsd < initialDiffUsd) for a change of
 * `sizeDeltaUsd30` on one side: which POSITION_FEE_FACTOR applies.
 */
export function balanceWasImproved(
  oi: { longUsd30: bigint; shortUsd30: bigint },
  change: { isLong: boolean; sizeDeltaUsd30: bigint; increase: boolean },
): boolean {
  const d = change.increase ? change.sizeDeltaUsd30 : -change.sizeDeltaUsd30;
  const nextLong = change.isLong ? oi.longUsd30 + d : oi.longUsd30;
  const nextShort = change.isLong ? oi.shortUsd30 : oi.shortUsd30 + d;
  const abs = (x: bigint) => (x < 0n ? -x : x);
  return abs(nextLong - nextShort) < abs(oi.longUsd30 - oi.shortUsd30);
}
