import { parseAbi } from 'viem';

// The ABI subset of gmx-synthetics (v2) the adapter uses. The structs it sends or decodes have the real
// shapes of gmx-io/gmx-synthetics `main` at commit a5c0c8835182cbd84e47dca04b971239311d2f1d (2026-03-13):
// - CreateOrderParams*: contracts/order/IBaseOrderUtils.sol (incl. the trailing `bytes32[] dataList`)
// - OrderProps/Order*: contracts/order/Order.sol (`Order.Props`, as `Reader.getOrder` returns it)
// - PositionProps/Position*: contracts/position/Position.sol (incl. `int256 pendingImpactAmount`)
// - MarketProps: contracts/market/Market.sol
// - PriceProps: contracts/price/Price.sol; MarketPrices: `MarketUtils.MarketPrices` (contracts/market/MarketUtils.sol)
// - PositionInfo: `ReaderPositionUtils.PositionInfo` (contracts/reader/ReaderPositionUtils.sol), with
//   PositionFees and its parts from contracts/pricing/PositionPricingUtils.sol and ExecutionPriceResult
//   from contracts/reader/ReaderPricingUtils.sol
// - OrderInfo: `ReaderUtils.OrderInfo` (contracts/reader/ReaderUtils.sol), what Reader.getAccountOrders returns
// Function signatures of ExchangeRouter (multicall, sendWnt, sendTokens, createOrder, cancelOrder),
// Reader (getMarkets, getAccountPositions, getAccountPositionInfoList, getOrder, getAccountOrders) and
// DataStore (getUint, setUint, getBytes32Count, getBytes32ValuesAt: contracts/data/DataStore.sol) are
// the real ones too (contracts/reader/Reader.sol; the Reader and DataStore selectors also match
// deployments/arbitrum/Reader.json and DataStore.json). The keys read with getUint are in keys.ts. The
// rest is the local contract's own (contracts/GmxV2Lite.sol): the keeper entry point
// `executeOrder(bytes32)` (upstream OrderHandler.executeOrder also takes signed oracle prices), the
// Oracle's `getPrimaryPrice`/`setPrices` and several error shapes (e.g. the real
// `Unauthorized(address, string)`). Events are the real EventEmitter's (see `eventEmitterAbi`).
const structs = [
  'struct CreateOrderParamsAddresses { address receiver; address cancellationReceiver; address callbackContract; address uiFeeReceiver; address market; address initialCollateralToken; address[] swapPath; }',
  'struct CreateOrderParamsNumbers { uint256 sizeDeltaUsd; uint256 initialCollateralDeltaAmount; uint256 triggerPrice; uint256 acceptablePrice; uint256 executionFee; uint256 callbackGasLimit; uint256 minOutputAmount; uint256 validFromTime; }',
  'struct CreateOrderParams { CreateOrderParamsAddresses addresses; CreateOrderParamsNumbers numbers; uint8 orderType; uint8 decreasePositionSwapType; bool isLong; bool shouldUnwrapNativeToken; bool autoCancel; bytes32 referralCode; bytes32[] dataList; }',
  'struct MarketProps { address marketToken; address indexToken; address longToken; address shortToken; }',
  'struct PositionAddresses { address account; address market; address collateralToken; }',
  'struct PositionNumbers { uint256 sizeInUsd; uint256 sizeInTokens; uint256 collateralAmount; int256 pendingImpactAmount; uint256 borrowingFactor; uint256 fundingFeeAmountPerSize; uint256 longTokenClaimableFundingAmountPerSize; uint256 shortTokenClaimableFundingAmountPerSize; uint256 increasedAtTime; uint256 decreasedAtTime; }',
  'struct PositionFlags { bool isLong; }',
  'struct PositionProps { PositionAddresses addresses; PositionNumbers numbers; PositionFlags flags; }',
  'struct OrderAddresses { address account; address receiver; address cancellationReceiver; address callbackContract; address uiFeeReceiver; address market; address initialCollateralToken; address[] swapPath; }',
  'struct OrderNumbers { uint8 orderType; uint8 decreasePositionSwapType; uint256 sizeDeltaUsd; uint256 initialCollateralDeltaAmount; uint256 triggerPrice; uint256 acceptablePrice; uint256 executionFee; uint256 callbackGasLimit; uint256 minOutputAmount; uint256 updatedAtTime; uint256 validFromTime; uint256 srcChainId; }',
  'struct OrderFlags { bool isLong; bool shouldUnwrapNativeToken; bool isFrozen; bool autoCancel; }',
  'struct OrderProps { OrderAddresses addresses; OrderNumbers numbers; OrderFlags flags; bytes32[] _dataList; }',
  'struct PriceProps { uint256 min; uint256 max; }',
  'struct MarketPrices { PriceProps indexTokenPrice; PriceProps longTokenPrice; PriceProps shortTokenPrice; }',
  'struct PositionReferralFees { bytes32 referralCode; address affiliate; address trader; uint256 totalRebateFactor; uint256 affiliateRewardFactor; uint256 adjustedAffiliateRewardFactor; uint256 traderDiscountFactor; uint256 totalRebateAmount; uint256 traderDiscountAmount; uint256 affiliateRewardAmount; }',
  'struct PositionProFees { uint256 traderTier; uint256 traderDiscountFactor; uint256 traderDiscountAmount; }',
  'struct PositionFundingFees { uint256 fundingFeeAmount; uint256 claimableLongTokenAmount; uint256 claimableShortTokenAmount; uint256 latestFundingFeeAmountPerSize; uint256 latestLongTokenClaimableFundingAmountPerSize; uint256 latestShortTokenClaimableFundingAmountPerSize; }',
  'struct PositionBorrowingFees { uint256 borrowingFeeUsd; uint256 borrowingFeeAmount; uint256 borrowingFeeReceiverFactor; uint256 borrowingFeeAmountForFeeReceiver; }',
  'struct PositionUiFees { address uiFeeReceiver; uint256 uiFeeReceiverFactor; uint256 uiFeeAmount; }',
  'struct PositionLiquidationFees { uint256 liquidationFeeUsd; uint256 liquidationFeeAmount; uint256 liquidationFeeReceiverFactor; uint256 liquidationFeeAmountForFeeReceiver; }',
  'struct PositionFees { PositionReferralFees referral; PositionProFees pro; PositionFundingFees funding; PositionBorrowingFees borrowing; PositionUiFees ui; PositionLiquidationFees liquidation; PriceProps collateralTokenPrice; uint256 positionFeeFactor; uint256 protocolFeeAmount; uint256 positionFeeReceiverFactor; uint256 feeReceiverAmount; uint256 feeAmountForPool; uint256 positionFeeAmountForPool; uint256 positionFeeAmount; uint256 totalCostAmountExcludingFunding; uint256 totalCostAmount; uint256 totalDiscountAmount; }',
  'struct ExecutionPriceResult { int256 priceImpactUsd; uint256 executionPrice; bool balanceWasImproved; int256 proportionalPendingImpactUsd; int256 totalImpactUsd; uint256 priceImpactDiffUsd; }',
  'struct PositionInfo { bytes32 positionKey; PositionProps position; PositionFees fees; ExecutionPriceResult executionPriceResult; int256 basePnlUsd; int256 uncappedBasePnlUsd; int256 pnlAfterPriceImpactUsd; }',
  'struct OrderInfo { bytes32 orderKey; OrderProps order; }',
] as const;

export const exchangeRouterAbi = parseAbi([
  ...structs,
  'function multicall(bytes[] data) payable returns (bytes[] results)',
  'function sendWnt(address receiver, uint256 amount) payable',
  'function sendTokens(address token, address receiver, uint256 amount) payable',
  'function createOrder(CreateOrderParams params) payable returns (bytes32)',
  'function cancelOrder(bytes32 key) payable',
]);

export const readerAbi = parseAbi([
  ...structs,
  'function getMarkets(address dataStore, uint256 start, uint256 end) view returns (MarketProps[])',
  'function getAccountPositions(address dataStore, address account, uint256 start, uint256 end) view returns (PositionProps[])',
  'function getAccountPositionInfoList(address dataStore, address referralStorage, address account, address[] markets, MarketPrices[] marketPrices, address uiFeeReceiver, uint256 start, uint256 end) view returns (PositionInfo[])',
  'function getOrder(address dataStore, bytes32 key) view returns (OrderProps)',
  'function getAccountOrders(address dataStore, address account, uint256 start, uint256 end) view returns (OrderInfo[])',
  // gmx-synthetics contracts/error/Errors.sol, as getAccountPositionInfoList reverts (and EmptyPosition).
  'error EmptyMarketPrice(address market)',
  'error UnableToGetCachedTokenPrice(address token, address market)',
]);

export const dataStoreAbi = parseAbi([
  ...structs,
  'function getUint(bytes32 key) view returns (uint256)',
  'function setUint(bytes32 key, uint256 value) returns (uint256)',
  'function getBytes32Count(bytes32 setKey) view returns (uint256)',
  'function getBytes32ValuesAt(bytes32 setKey, uint256 start, uint256 end) view returns (bytes32[])',
  // The local keeper's entry point (see above).
  'function executeOrder(bytes32 key)',
  'error Unauthorized(address caller)',
  // gmx-synthetics contracts/error/Errors.sol.
  'error InsufficientExecutionFee(uint256 minExecutionFee, uint256 executionFee)',
  'error InsufficientWntAmountForExecutionFee(uint256 wntAmount, uint256 executionFee)',
  'error EmptyOrder()',
  'error EmptyPosition()',
  'error OrderNotFound(bytes32 key)',
  'error UnsupportedOrderType(uint256 orderType)',
  'error InvalidMarket(address market)',
  'error OrderNotFulfillableAtAcceptablePrice(uint256 price, uint256 acceptablePrice)',
  'error MaxOpenInterestExceeded(uint256 openInterest, uint256 maxOpenInterest)',
  'error EmptyPrimaryPrice(address token)',
  'error StaleOraclePrice(address token, uint256 updatedAt)',
  'error ERC20InsufficientBalance(address sender, uint256 balance, uint256 needed)',
  'error ERC20InsufficientAllowance(address spender, uint256 allowance, uint256 needed)',
]);

/**
 * gmx-synthetics contracts/event/EventEmitter.sol (EventLog, EventLog1, EventLog2) with the payload
 * struct of contracts/event/EventUtils.sol, at the commit above. Orders: OrderCreated, OrderExecuted,
 * OrderCancelled are EventLog2 with topic1 = order key, topic2 = account (contracts/order/
 * OrderEventUtils.sol); PositionIncrease/PositionDecrease are EventLog1 with topic1 = account and
 * PositionFeesCollected EventLog1 with topic1 = market (contracts/position/PositionEventUtils.sol).
 */
export const eventEmitterAbi = parseAbi([
  'struct AddressKeyValue { string key; address value; }',
  'struct AddressArrayKeyValue { string key; address[] value; }',
  'struct UintKeyValue { string key; uint256 value; }',
  'struct UintArrayKeyValue { string key; uint256[] value; }',
  'struct IntKeyValue { string key; int256 value; }',
  'struct IntArrayKeyValue { string key; int256[] value; }',
  'struct BoolKeyValue { string key; bool value; }',
  'struct BoolArrayKeyValue { string key; bool[] value; }',
  'struct Bytes32KeyValue { string key; bytes32 value; }',
  'struct Bytes32ArrayKeyValue { string key; bytes32[] value; }',
  'struct BytesKeyValue { string key; bytes value; }',
  'struct BytesArrayKeyValue { string key; bytes[] value; }',
  'struct StringKeyValue { string key; string value; }',
  'struct StringArrayKeyValue { string key; string[] value; }',
  'struct AddressItems { AddressKeyValue[] items; AddressArrayKeyValue[] arrayItems; }',
  'struct UintItems { UintKeyValue[] items; UintArrayKeyValue[] arrayItems; }',
  'struct IntItems { IntKeyValue[] items; IntArrayKeyValue[] arrayItems; }',
  'struct BoolItems { BoolKeyValue[] items; BoolArrayKeyValue[] arrayItems; }',
  'struct Bytes32Items { Bytes32KeyValue[] items; Bytes32ArrayKeyValue[] arrayItems; }',
  'struct BytesItems { BytesKeyValue[] items; BytesArrayKeyValue[] arrayItems; }',
  'struct StringItems { StringKeyValue[] items; StringArrayKeyValue[] arrayItems; }',
  'struct EventLogData { AddressItems addressItems; UintItems uintItems; IntItems intItems; BoolItems boolItems; Bytes32Items bytes32Items; BytesItems bytesItems; StringItems stringItems; }',
  'event EventLog(address msgSender, string eventName, string indexed eventNameHash, EventLogData eventData)',
  'event EventLog1(address msgSender, string eventName, string indexed eventNameHash, bytes32 indexed topic1, EventLogData eventData)',
  'event EventLog2(address msgSender, string eventName, string indexed eventNameHash, bytes32 indexed topic1, bytes32 indexed topic2, EventLogData eventData)',
]);

export const oracleAbi = parseAbi([
  'function setPrices(address token, uint256 minPrice, uint256 maxPrice)',
  'function getPrimaryPrice(address token) view returns (uint256 min, uint256 max, uint256 updatedAt)',
]);

/** Everything the adapter may see revert, for decoding. */
export const gmxErrorAbi = [...dataStoreAbi, ...exchangeRouterAbi, ...readerAbi];

export const ORDER_TYPE = { MarketIncrease: 2, MarketDecrease: 4 } as const;
