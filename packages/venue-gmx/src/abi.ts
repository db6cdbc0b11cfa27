import { parseAbi } from 'viem';

// The ABI subset of gmx-synthetics (v2) the adapter uses, as gmx-io/gmx-synthetics `main` at commit
// a5c0c8835182cbd84e47dca04b971239311d2f1d (2026-03-13) declares it; every function and event below is
// also in the ABI of that commit's Arbitrum deployment (deployments/arbitrum/<Contract>.json), and
// abi.test.ts pins each one's signature and selector. Only what real contracts serve is here: the local
// contract's set-up and keeper functions are in fixture-abi.ts.
// Structs (field order and types are the ABI encoding):
// - CreateOrderParams*: contracts/order/IBaseOrderUtils.sol (incl. the trailing `bytes32[] dataList`)
// - OrderProps/Order*: contracts/order/Order.sol (`Order.Props`, as `Reader.getOrder` returns it)
// - PositionProps/Position*: contracts/position/Position.sol (incl. `int256 pendingImpactAmount`)
// - MarketProps: contracts/market/Market.sol
// - PriceProps: contracts/price/Price.sol; MarketPrices: `MarketUtils.MarketPrices` (contracts/market/MarketUtils.sol)
// - PositionInfo: `ReaderPositionUtils.PositionInfo` (contracts/reader/ReaderPositionUtils.sol), with
//   PositionFees and its parts from contracts/pricing/PositionPricingUtils.sol and ExecutionPriceResult
//   from contracts/reader/ReaderPricingUtils.sol
// - OrderInfo: `ReaderUtils.OrderInfo` (contracts/reader/ReaderUtils.sol), what Reader.getAccountOrders returns
// - MarketInfo, BaseFundingValues, VirtualInventory: `ReaderUtils` (contracts/reader/ReaderUtils.sol), what
//   Reader.getMarketInfo returns; CollateralType, PositionType, GetNextFundingAmountPerSizeResult from
//   contracts/market/MarketUtils.sol
// The keys read with DataStore.getUint are in keys.ts.
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
  'struct CollateralType { uint256 longToken; uint256 shortToken; }',
  'struct PositionType { CollateralType long; CollateralType short; }',
  'struct BaseFundingValues { PositionType fundingFeeAmountPerSize; PositionType claimableFundingAmountPerSize; }',
  'struct GetNextFundingAmountPerSizeResult { bool longsPayShorts; uint256 fundingFactorPerSecond; int256 nextSavedFundingFactorPerSecond; PositionType fundingFeeAmountPerSizeDelta; PositionType claimableFundingAmountPerSizeDelta; }',
  'struct VirtualInventory { uint256 virtualPoolAmountForLongToken; uint256 virtualPoolAmountForShortToken; int256 virtualInventoryForPositions; }',
  'struct MarketInfo { MarketProps market; uint256 borrowingFactorPerSecondForLongs; uint256 borrowingFactorPerSecondForShorts; BaseFundingValues baseFunding; GetNextFundingAmountPerSizeResult nextFunding; VirtualInventory virtualInventory; bool isDisabled; }',
] as const;

/**
 * ExchangeRouter (contracts/router/ExchangeRouter.sol: createOrder, cancelOrder and the `orderHandler`
 * it forwards them to, a public immutable: the module the order feature switches are keyed by; sendWnt
 * and sendTokens from contracts/router/BaseRouter.sol; multicall from contracts/utils/PayableMulticall.sol,
 * which bubbles the failing call's revert data). Arbitrum: 0x1C3fa76e6E1088bCE750f23a5BFcffa1efEF6A41.
 */
export const exchangeRouterAbi = parseAbi([
  ...structs,
  'function orderHandler() view returns (address)',
  'function multicall(bytes[] data) payable returns (bytes[] results)',
  'function sendWnt(address receiver, uint256 amount) payable',
  'function sendTokens(address token, address receiver, uint256 amount) payable',
  'function createOrder(CreateOrderParams params) payable returns (bytes32)',
  'function cancelOrder(bytes32 key) payable',
]);

/** Reader (contracts/reader/Reader.sol). Arbitrum: 0x470fbC46bcC0f16532691Df360A07d8Bf5ee0789. */
export const readerAbi = parseAbi([
  ...structs,
  'function getMarkets(address dataStore, uint256 start, uint256 end) view returns (MarketProps[])',
  'function getAccountPositions(address dataStore, address account, uint256 start, uint256 end) view returns (PositionProps[])',
  'function getAccountPositionInfoList(address dataStore, address referralStorage, address account, address[] markets, MarketPrices[] marketPrices, address uiFeeReceiver, uint256 start, uint256 end) view returns (PositionInfo[])',
  'function getOrder(address dataStore, bytes32 key) view returns (OrderProps)',
  'function getAccountOrders(address dataStore, address account, uint256 start, uint256 end) view returns (OrderInfo[])',
  'function getMarketInfo(address dataStore, MarketPrices prices, address marketKey) view returns (MarketInfo)',
]);

/** DataStore (contracts/data/DataStore.sol), read only. Arbitrum: 0xFD70de6b91282D8017aA4E741e9Ae325CAb992d8. */
export const dataStoreAbi = parseAbi([
  'function getUint(bytes32 key) view returns (uint256)',
  'function getBool(bytes32 key) view returns (bool)',
  'function getBytes32Count(bytes32 setKey) view returns (uint256)',
  'function getBytes32ValuesAt(bytes32 setKey, uint256 start, uint256 end) view returns (bytes32[])',
]);

/**
 * Oracle (contracts/oracle/Oracle.sol). `getPrimaryPrice` returns `Price.Props` (min, max) and reverts
 * `EmptyPrimaryPrice(token)` for a token without a price; `maxTimestamp` is the newest timestamp of the
 * prices set. Upstream the Oracle holds prices only within an execution (keepers set signed prices and
 * clear them), so outside one every token reverts: on a real chain the adapter needs `params.pricesUrl`.
 * Arbitrum: 0x7F01614cA5198Ec979B1aAd1DAF0DE7e0a215BDF.
 */
export const oracleAbi = parseAbi([
  'struct PriceProps { uint256 min; uint256 max; }',
  'function getPrimaryPrice(address token) view returns (PriceProps)',
  'function maxTimestamp() view returns (uint256)',
]);

/**
 * The errors of contracts/error/Errors.sol that the calls above may revert with, or that a keeper's
 * OrderCancelled carries in `reasonBytes`, with upstream's parameters (the selector depends on them):
 * ExchangeRouter.cancelOrder / RoleModule (Unauthorized, EmptyOrder), BaseHandler
 * .validateRequestCancellation (RequestNotYetCancellable), FeatureUtils.validateFeature in
 * OrderHandler.createOrder (DisabledFeature), OrderUtils.createOrder and GasUtils
 * (InsufficientWntAmountForExecutionFee, InsufficientExecutionFee), MarketUtils.validatePositionMarket
 * (EmptyMarket, DisabledMarket, InvalidPositionMarket), order execution (UnsupportedOrderType,
 * OrderNotFulfillableAtAcceptablePrice, MaxOpenInterestExceeded, InsufficientReserve,
 * InsufficientReserveForOpenInterest, EmptyPosition), the Oracle (EmptyPrimaryPrice, MaxPriceAgeExceeded)
 * and Reader.getAccountPositionInfoList (EmptyMarketPrice, UnableToGetCachedTokenPrice, EmptyPosition), and
 * Reader.getMarketInfo (UnableToGetBorrowingFactorEmptyPoolUsd, UnableToGetFundingFactorEmptyOpenInterest).
 */
export const upstreamErrorAbi = parseAbi([
  'error Unauthorized(address msgSender, string role)',
  'error EmptyOrder()',
  'error RequestNotYetCancellable(uint256 requestAge, uint256 requestExpirationAge, string requestType)',
  'error DisabledFeature(bytes32 key)',
  'error InsufficientWntAmountForExecutionFee(uint256 wntAmount, uint256 executionFee)',
  'error InsufficientExecutionFee(uint256 minExecutionFee, uint256 executionFee)',
  'error EmptyMarket()',
  'error DisabledMarket(address market)',
  'error InvalidPositionMarket(address market)',
  'error UnsupportedOrderType(uint256 orderType)',
  'error OrderNotFulfillableAtAcceptablePrice(uint256 price, uint256 acceptablePrice)',
  'error MaxOpenInterestExceeded(uint256 openInterest, uint256 maxOpenInterest)',
  'error InsufficientReserve(uint256 reservedUsd, uint256 maxReservedUsd)',
  'error InsufficientReserveForOpenInterest(uint256 reservedUsd, uint256 maxReservedUsd)',
  'error EmptyPosition()',
  'error EmptyPrimaryPrice(address token)',
  'error MaxPriceAgeExceeded(uint256 oracleTimestamp, uint256 currentTimestamp)',
  'error EmptyMarketPrice(address market)',
  'error UnableToGetCachedTokenPrice(address token, address market)',
  'error UnableToGetBorrowingFactorEmptyPoolUsd()',
  'error UnableToGetFundingFactorEmptyOpenInterest()',
]);

/**
 * Not GMX's: the collateral token's own errors when `sendTokens` pulls more than the account holds or
 * approved (OpenZeppelin 5 `IERC20Errors`, as the local TestToken raises them; Arbitrum's USDC reverts
 * with `Error(string)` instead, which decodes without an ABI).
 */
export const tokenErrorAbi = parseAbi([
  'error ERC20InsufficientBalance(address sender, uint256 balance, uint256 needed)',
  'error ERC20InsufficientAllowance(address spender, uint256 allowance, uint256 needed)',
]);

/**
 * gmx-synthetics contracts/event/EventEmitter.sol (EventLog, EventLog1, EventLog2) with the payload
 * struct of contracts/event/EventUtils.sol, at the commit above. Orders: OrderCreated, OrderExecuted,
 * OrderCancelled are EventLog2 with topic1 = order key, topic2 = account (contracts/order/
 * OrderEventUtils.sol); PositionIncrease/PositionDecrease are EventLog1 with topic1 = account and
 * PositionFeesCollected EventLog1 with topic1 = market (contracts/position/PositionEventUtils.sol).
 * Arbitrum: 0xC8ee91A54287DB53897056e12D9819156D3822Fb.
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

/** Everything the adapter may see revert, for decoding. */
export const gmxErrorAbi = [...upstreamErrorAbi, ...tokenErrorAbi];

/** contracts/order/Order.sol `OrderType` (an enum: its position is the uint8 sent). */
export const ORDER_TYPE = { MarketIncrease: 2, MarketDecrease: 4 } as const;
