import { parseAbi } from 'viem';

// The ABI subset of gmx-synthetics (v2) the adapter uses. The structs it sends or decodes have the real
// shapes of gmx-io/gmx-synthetics `main` at commit a5c0c8835182cbd84e47dca04b971239311d2f1d (2026-03-13):
// - CreateOrderParams*: contracts/order/IBaseOrderUtils.sol (incl. the trailing `bytes32[] dataList`)
// - OrderProps/Order*: contracts/order/Order.sol (`Order.Props`, as `Reader.getOrder` returns it)
// - PositionProps/Position*: contracts/position/Position.sol (incl. `int256 pendingImpactAmount`)
// - MarketProps: contracts/market/Market.sol
// Function signatures of ExchangeRouter (multicall, sendWnt, sendTokens, createOrder, cancelOrder) and
// Reader (getMarkets, getAccountPositions, getOrder) are the real ones too. The rest is the local
// contract's own (contracts/GmxV2Lite.sol): Reader.getOpenInterest, the DataStore views and keeper entry
// point, the Order* events (real GMX emits EventEmitter.EventLog1/EventLog2 with a generic
// EventLogData instead) and several error shapes (e.g. the real `Unauthorized(address, string)`).
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
  'function getOrder(address dataStore, bytes32 key) view returns (OrderProps)',
  'function getOpenInterest(address dataStore, address market) view returns (uint256 longUsd, uint256 shortUsd, uint256 maxLongUsd, uint256 maxShortUsd)',
]);

export const dataStoreAbi = parseAbi([
  ...structs,
  'function minExecutionFee() view returns (uint256)',
  'function positionFeeBps() view returns (uint256)',
  'function getOrderCount() view returns (uint256)',
  'function getOrderKeys(uint256 start, uint256 end) view returns (bytes32[])',
  'function executeOrder(bytes32 key)',
  'event OrderCreated(bytes32 indexed key, address indexed account, address indexed market, uint8 orderType, bool isLong, uint256 sizeDeltaUsd, uint256 acceptablePrice, uint256 executionFee)',
  'event OrderExecuted(bytes32 indexed key, address indexed account, uint256 executionPrice, uint256 sizeDeltaUsd, uint256 sizeDeltaInTokens, uint256 positionFeeAmount)',
  'event OrderCancelled(bytes32 indexed key, address indexed account, string reason, bytes reasonBytes)',
  'error Unauthorized(address caller)',
  'error InsufficientExecutionFee(uint256 minExecutionFee, uint256 executionFee)',
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

export const oracleAbi = parseAbi([
  'function setPrices(address token, uint256 minPrice, uint256 maxPrice)',
  'function getPrimaryPrice(address token) view returns (uint256 min, uint256 max, uint256 updatedAt)',
]);

/** Everything the adapter may see revert, for decoding. */
export const gmxErrorAbi = [...dataStoreAbi, ...exchangeRouterAbi];

export const ORDER_TYPE = { MarketIncrease: 2, MarketDecrease: 4 } as const;
