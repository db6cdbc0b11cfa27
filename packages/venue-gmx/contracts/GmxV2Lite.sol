// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

// A simplified GMX v2 (gmx-synthetics) for local chains. The ABI keeps the real shapes where the
// adapter touches them (ExchangeRouter.multicall/sendWnt/sendTokens/createOrder/cancelOrder,
// IBaseOrderUtils.CreateOrderParams, Order.Props, Position.Props, Market.Props, prices as USD per
// smallest token unit with 30 decimals), as of gmx-io/gmx-synthetics main at
// a5c0c8835182cbd84e47dca04b971239311d2f1d; the economics are simplified: oracle-priced fills, a
// position fee factor per market (balance improved or not, as upstream), no price impact, borrowing or funding of its own (a test may set a position's
// pendingImpactAmount, pending borrowing/funding fees and claimable funding with
// GmxCore.setPositionPendingValues; position updates then settle them as GMX does; the current funding
// and borrowing rates Reader.getMarketInfo reports are computed from the DataStore's keys as upstream
// computes them, but positions do not accrue them), no swaps (swapPath
// and dataList are stored, not acted on), no callbacks. Reader.getAccountPositionInfoList returns the
// real ReaderPositionUtils.PositionInfo shape with this contract's values. One contract plays DataStore,
// OrderVault and OrderHandler. Its configuration and bookkeeping live, as upstream, under the keys of
// contracts/data/Keys.sol and are read with `getUint(bytes32)` (open interest, max open interest,
// position fee factors, the execution-fee gas settings, funding and borrowing factors), `getInt` and
// `getBool` (SAVED_FUNDING_FACTOR_PER_SECOND, the borrowing and balance switches, IS_MARKET_DISABLED,
// CREATE_ORDER_FEATURE_DISABLED) and
// `getBytes32ValuesAt(bytes32, start, end)`
// (ORDER_LIST, ACCOUNT_ORDER_LIST); createOrder checks the execution fee with GasUtils'
// adjustGasLimitForEstimate formula against tx.gasprice, as upstream, and (in ExchangeRouter.createOrder,
// for the core's size) the order type's CREATE_ORDER_FEATURE_DISABLED switch (DisabledFeature) and the
// market's IS_MARKET_DISABLED (DisabledMarket); the keeper does not check them when executing. Events go out, as on real GMX, through a separate EventEmitter as
// EventLog1/EventLog2 with an EventUtils.EventLogData payload (same topics and item keys as
// contracts/order/OrderEventUtils.sol and contracts/position/PositionEventUtils.sol, fewer items).
// Tokens are pulled by a Router's pluginTransfer (approve the Router), as in contracts/router/Router.sol.
// The Oracle serves upstream's getters (getPrimaryPrice returning Price.Props and reverting
// EmptyPrimaryPrice when unset, maxTimestamp); prices are set by the owner with upstream's
// setPrimaryPrice (a CONTROLLER's call upstream). Every revert uses an error of contracts/error/Errors.sol
// with its real parameters (e.g. `Unauthorized(address msgSender, string role)` with upstream's role
// names), raised where upstream raises it: ExchangeRouter.cancelOrder checks the order's account
// (EmptyOrder, Unauthorized "account for cancelOrder") and, as OrderHandler.cancelOrder does for market
// orders, REQUEST_EXPIRATION_TIME (RequestNotYetCancellable; 0 here unless a test sets it, 300 s in
// upstream's config/general.ts). A keeper's cancellation reports a custom error as upstream's
// OrderHandler._handleOrderError does: `reason` "" and the error in `reasonBytes`.
// Fixture-only, not upstream (src/fixture-abi.ts lists them): the set-up functions (setUint, setInt and
// setBool with upstream's signatures but the owner's, setRouter, addMarket,
// setKeeper, setController, setPlugin, setPositionPendingValues, syncBalance) and the keeper entry point
// GmxCore.executeOrder(bytes32) (upstream: OrderHandler.executeOrder(key, OracleUtils.SetPricesParams)
// with signed prices, whose age Oracle._validatePrices checks against MAX_ORACLE_PRICE_AGE as
// Oracle.getValidatedPrice does here).

interface IERC20Lite {
    function transfer(address to, uint256 amount) external returns (bool);
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
    function balanceOf(address who) external view returns (uint256);
    function deposit() external payable;
}

library Order {
    enum OrderType {
        MarketSwap,
        LimitSwap,
        MarketIncrease,
        LimitIncrease,
        MarketDecrease,
        LimitDecrease,
        StopLossDecrease,
        Liquidation,
        StopIncrease
    }
    enum DecreasePositionSwapType {
        NoSwap,
        SwapPnlTokenToCollateralToken,
        SwapCollateralTokenToPnlToken
    }
    // Same fields and order as gmx-synthetics contracts/order/Order.sol.
    struct Props {
        Addresses addresses;
        Numbers numbers;
        Flags flags;
        bytes32[] _dataList;
    }
    struct Addresses {
        address account;
        address receiver;
        address cancellationReceiver;
        address callbackContract;
        address uiFeeReceiver;
        address market;
        address initialCollateralToken;
        address[] swapPath;
    }
    struct Numbers {
        OrderType orderType;
        DecreasePositionSwapType decreasePositionSwapType;
        uint256 sizeDeltaUsd;
        uint256 initialCollateralDeltaAmount;
        uint256 triggerPrice;
        uint256 acceptablePrice;
        uint256 executionFee;
        uint256 callbackGasLimit;
        uint256 minOutputAmount;
        uint256 updatedAtTime;
        uint256 validFromTime;
        uint256 srcChainId;
    }
    struct Flags {
        bool isLong;
        bool shouldUnwrapNativeToken;
        bool isFrozen;
        bool autoCancel;
    }
}

library Market {
    struct Props {
        address marketToken;
        address indexToken;
        address longToken;
        address shortToken;
    }
}

library Position {
    struct Addresses {
        address account;
        address market;
        address collateralToken;
    }
    struct Numbers {
        uint256 sizeInUsd;
        uint256 sizeInTokens;
        uint256 collateralAmount;
        // Price impact of increases held back until a decrease (index token units, signed). This
        // contract has no price impact: 0 unless a test sets it (GmxCore.setPositionPendingValues);
        // decreases realize it pro rata, as GMX does.
        int256 pendingImpactAmount;
        uint256 borrowingFactor;
        uint256 fundingFeeAmountPerSize;
        uint256 longTokenClaimableFundingAmountPerSize;
        uint256 shortTokenClaimableFundingAmountPerSize;
        uint256 increasedAtTime;
        uint256 decreasedAtTime;
    }
    struct Flags {
        bool isLong;
    }
    struct Props {
        Addresses addresses;
        Numbers numbers;
        Flags flags;
    }
}

// gmx-synthetics contracts/price/Price.sol.
library Price {
    struct Props {
        uint256 min;
        uint256 max;
    }
}

// gmx-synthetics contracts/market/MarketUtils.sol (the structs only), same fields and order.
library MarketUtils {
    struct MarketPrices {
        Price.Props indexTokenPrice;
        Price.Props longTokenPrice;
        Price.Props shortTokenPrice;
    }
    struct CollateralType {
        uint256 longToken;
        uint256 shortToken;
    }
    struct PositionType {
        CollateralType long;
        CollateralType short;
    }
    struct GetNextFundingAmountPerSizeResult {
        bool longsPayShorts;
        uint256 fundingFactorPerSecond;
        int256 nextSavedFundingFactorPerSecond;
        PositionType fundingFeeAmountPerSizeDelta;
        PositionType claimableFundingAmountPerSizeDelta;
    }
}

// gmx-synthetics contracts/pricing/PositionPricingUtils.sol (the structs only), same fields and order.
library PositionPricingUtils {
    struct PositionFees {
        PositionReferralFees referral;
        PositionProFees pro;
        PositionFundingFees funding;
        PositionBorrowingFees borrowing;
        PositionUiFees ui;
        PositionLiquidationFees liquidation;
        Price.Props collateralTokenPrice;
        uint256 positionFeeFactor;
        uint256 protocolFeeAmount;
        uint256 positionFeeReceiverFactor;
        uint256 feeReceiverAmount;
        uint256 feeAmountForPool;
        uint256 positionFeeAmountForPool;
        uint256 positionFeeAmount;
        uint256 totalCostAmountExcludingFunding;
        uint256 totalCostAmount;
        uint256 totalDiscountAmount;
    }
    struct PositionProFees {
        uint256 traderTier;
        uint256 traderDiscountFactor;
        uint256 traderDiscountAmount;
    }
    struct PositionLiquidationFees {
        uint256 liquidationFeeUsd;
        uint256 liquidationFeeAmount;
        uint256 liquidationFeeReceiverFactor;
        uint256 liquidationFeeAmountForFeeReceiver;
    }
    struct PositionReferralFees {
        bytes32 referralCode;
        address affiliate;
        address trader;
        uint256 totalRebateFactor;
        uint256 affiliateRewardFactor;
        uint256 adjustedAffiliateRewardFactor;
        uint256 traderDiscountFactor;
        uint256 totalRebateAmount;
        uint256 traderDiscountAmount;
        uint256 affiliateRewardAmount;
    }
    struct PositionBorrowingFees {
        uint256 borrowingFeeUsd;
        uint256 borrowingFeeAmount;
        uint256 borrowingFeeReceiverFactor;
        uint256 borrowingFeeAmountForFeeReceiver;
    }
    struct PositionFundingFees {
        uint256 fundingFeeAmount;
        uint256 claimableLongTokenAmount;
        uint256 claimableShortTokenAmount;
        uint256 latestFundingFeeAmountPerSize;
        uint256 latestLongTokenClaimableFundingAmountPerSize;
        uint256 latestShortTokenClaimableFundingAmountPerSize;
    }
    struct PositionUiFees {
        address uiFeeReceiver;
        uint256 uiFeeReceiverFactor;
        uint256 uiFeeAmount;
    }
}

// gmx-synthetics contracts/reader/ReaderPricingUtils.sol (the struct only).
library ReaderPricingUtils {
    struct ExecutionPriceResult {
        int256 priceImpactUsd;
        uint256 executionPrice;
        bool balanceWasImproved;
        int256 proportionalPendingImpactUsd;
        int256 totalImpactUsd;
        uint256 priceImpactDiffUsd;
    }
}

// gmx-synthetics contracts/reader/ReaderPositionUtils.sol (the struct only).
library ReaderPositionUtils {
    struct PositionInfo {
        bytes32 positionKey;
        Position.Props position;
        PositionPricingUtils.PositionFees fees;
        ReaderPricingUtils.ExecutionPriceResult executionPriceResult;
        int256 basePnlUsd;
        int256 uncappedBasePnlUsd;
        int256 pnlAfterPriceImpactUsd;
    }
}

// gmx-synthetics contracts/data/Keys.sol: the keys this contract uses, derived the same way.
library Keys {
    bytes32 internal constant ORDER_LIST = keccak256(abi.encode("ORDER_LIST"));
    bytes32 internal constant ACCOUNT_ORDER_LIST = keccak256(abi.encode("ACCOUNT_ORDER_LIST"));
    bytes32 internal constant ESTIMATED_GAS_FEE_BASE_AMOUNT_V2_1 = keccak256(abi.encode("ESTIMATED_GAS_FEE_BASE_AMOUNT_V2_1"));
    bytes32 internal constant ESTIMATED_GAS_FEE_PER_ORACLE_PRICE = keccak256(abi.encode("ESTIMATED_GAS_FEE_PER_ORACLE_PRICE"));
    bytes32 internal constant ESTIMATED_GAS_FEE_MULTIPLIER_FACTOR = keccak256(abi.encode("ESTIMATED_GAS_FEE_MULTIPLIER_FACTOR"));
    bytes32 internal constant SINGLE_SWAP_GAS_LIMIT = keccak256(abi.encode("SINGLE_SWAP_GAS_LIMIT"));
    bytes32 internal constant INCREASE_ORDER_GAS_LIMIT = keccak256(abi.encode("INCREASE_ORDER_GAS_LIMIT"));
    bytes32 internal constant DECREASE_ORDER_GAS_LIMIT = keccak256(abi.encode("DECREASE_ORDER_GAS_LIMIT"));
    bytes32 internal constant POSITION_FEE_FACTOR = keccak256(abi.encode("POSITION_FEE_FACTOR"));
    bytes32 internal constant OPEN_INTEREST = keccak256(abi.encode("OPEN_INTEREST"));
    bytes32 internal constant MAX_OPEN_INTEREST = keccak256(abi.encode("MAX_OPEN_INTEREST"));
    bytes32 internal constant OPEN_INTEREST_IN_TOKENS = keccak256(abi.encode("OPEN_INTEREST_IN_TOKENS"));
    bytes32 internal constant POOL_AMOUNT = keccak256(abi.encode("POOL_AMOUNT"));
    bytes32 internal constant RESERVE_FACTOR = keccak256(abi.encode("RESERVE_FACTOR"));
    bytes32 internal constant OPEN_INTEREST_RESERVE_FACTOR = keccak256(abi.encode("OPEN_INTEREST_RESERVE_FACTOR"));
    bytes32 internal constant REQUEST_EXPIRATION_TIME = keccak256(abi.encode("REQUEST_EXPIRATION_TIME"));
    bytes32 internal constant MAX_ORACLE_PRICE_AGE = keccak256(abi.encode("MAX_ORACLE_PRICE_AGE"));
    // Funding and borrowing (read by Reader.getMarketInfo). Per market: keccak256(abi.encode(NAME, market)).
    bytes32 internal constant FUNDING_FACTOR = keccak256(abi.encode("FUNDING_FACTOR"));
    bytes32 internal constant FUNDING_EXPONENT_FACTOR = keccak256(abi.encode("FUNDING_EXPONENT_FACTOR"));
    bytes32 internal constant SAVED_FUNDING_FACTOR_PER_SECOND = keccak256(abi.encode("SAVED_FUNDING_FACTOR_PER_SECOND"));
    bytes32 internal constant FUNDING_INCREASE_FACTOR_PER_SECOND = keccak256(abi.encode("FUNDING_INCREASE_FACTOR_PER_SECOND"));
    bytes32 internal constant FUNDING_DECREASE_FACTOR_PER_SECOND = keccak256(abi.encode("FUNDING_DECREASE_FACTOR_PER_SECOND"));
    bytes32 internal constant MIN_FUNDING_FACTOR_PER_SECOND = keccak256(abi.encode("MIN_FUNDING_FACTOR_PER_SECOND"));
    bytes32 internal constant MAX_FUNDING_FACTOR_PER_SECOND = keccak256(abi.encode("MAX_FUNDING_FACTOR_PER_SECOND"));
    bytes32 internal constant THRESHOLD_FOR_STABLE_FUNDING = keccak256(abi.encode("THRESHOLD_FOR_STABLE_FUNDING"));
    bytes32 internal constant THRESHOLD_FOR_DECREASE_FUNDING = keccak256(abi.encode("THRESHOLD_FOR_DECREASE_FUNDING"));
    bytes32 internal constant FUNDING_UPDATED_AT = keccak256(abi.encode("FUNDING_UPDATED_AT"));
    bytes32 internal constant IS_MARKET_DISABLED = keccak256(abi.encode("IS_MARKET_DISABLED"));
    // Per market and side: keccak256(abi.encode(NAME, market, isLong)).
    bytes32 internal constant OPTIMAL_USAGE_FACTOR = keccak256(abi.encode("OPTIMAL_USAGE_FACTOR"));
    bytes32 internal constant BASE_BORROWING_FACTOR = keccak256(abi.encode("BASE_BORROWING_FACTOR"));
    bytes32 internal constant ABOVE_OPTIMAL_USAGE_BORROWING_FACTOR = keccak256(abi.encode("ABOVE_OPTIMAL_USAGE_BORROWING_FACTOR"));
    bytes32 internal constant BORROWING_FACTOR = keccak256(abi.encode("BORROWING_FACTOR"));
    bytes32 internal constant BORROWING_EXPONENT_FACTOR = keccak256(abi.encode("BORROWING_EXPONENT_FACTOR"));
    // Global bools (DataStore.getBool).
    bytes32 internal constant SKIP_BORROWING_FEE_FOR_SMALLER_SIDE = keccak256(abi.encode("SKIP_BORROWING_FEE_FOR_SMALLER_SIDE"));
    bytes32 internal constant USE_OPEN_INTEREST_IN_TOKENS_FOR_BALANCE = keccak256(abi.encode("USE_OPEN_INTEREST_IN_TOKENS_FOR_BALANCE"));
    // Feature switches (DataStore.getBool, true = disabled): keccak256(abi.encode(NAME, module, orderType)).
    bytes32 internal constant CREATE_ORDER_FEATURE_DISABLED = keccak256(abi.encode("CREATE_ORDER_FEATURE_DISABLED"));

    /// fundingFactorKey, fundingExponentFactorKey, savedFundingFactorPerSecondKey, ..., fundingUpdatedAtKey,
    /// isMarketDisabledKey: `name` is the constant.
    function marketKey(bytes32 name, address market) internal pure returns (bytes32) {
        return keccak256(abi.encode(name, market));
    }

    /// optimalUsageFactorKey, baseBorrowingFactorKey, aboveOptimalUsageBorrowingFactorKey,
    /// borrowingFactorKey, borrowingExponentFactorKey: `name` is the constant.
    function marketSideKey(bytes32 name, address market, bool isLong) internal pure returns (bytes32) {
        return keccak256(abi.encode(name, market, isLong));
    }

    function accountOrderListKey(address account) internal pure returns (bytes32) {
        return keccak256(abi.encode(ACCOUNT_ORDER_LIST, account));
    }

    function positionFeeFactorKey(address market, bool balanceWasImproved) internal pure returns (bytes32) {
        return keccak256(abi.encode(POSITION_FEE_FACTOR, market, balanceWasImproved));
    }

    function openInterestKey(address market, address collateralToken, bool isLong) internal pure returns (bytes32) {
        return keccak256(abi.encode(OPEN_INTEREST, market, collateralToken, isLong));
    }

    function maxOpenInterestKey(address market, bool isLong) internal pure returns (bytes32) {
        return keccak256(abi.encode(MAX_OPEN_INTEREST, market, isLong));
    }

    function openInterestInTokensKey(address market, address collateralToken, bool isLong) internal pure returns (bytes32) {
        return keccak256(abi.encode(OPEN_INTEREST_IN_TOKENS, market, collateralToken, isLong));
    }

    function poolAmountKey(address market, address token) internal pure returns (bytes32) {
        return keccak256(abi.encode(POOL_AMOUNT, market, token));
    }

    function reserveFactorKey(address market, bool isLong) internal pure returns (bytes32) {
        return keccak256(abi.encode(RESERVE_FACTOR, market, isLong));
    }

    function openInterestReserveFactorKey(address market, bool isLong) internal pure returns (bytes32) {
        return keccak256(abi.encode(OPEN_INTEREST_RESERVE_FACTOR, market, isLong));
    }
}

/// What this contract reads of the DataStore from outside (the Reader): upstream's getters.
interface IDataStoreUint {
    function getUint(bytes32 key) external view returns (uint256);
}

/// The DataStore's signed and boolean values (DataStore.getInt, getBool), as Reader.getMarketInfo reads them.
interface IDataStoreLite is IDataStoreUint {
    function getInt(bytes32 key) external view returns (int256);
    function getBool(bytes32 key) external view returns (bool);
}

/// gmx-synthetics MarketUtils.getOpenInterest / getPoolDivisor and PositionPricingUtils'
/// balanceWasImproved (nextDiffUsd < initialDiffUsd), over the DataStore's uint keys.
library LiteMarketUtils {
    /// 10^30: GMX factors (Precision.FLOAT_PRECISION).
    uint256 internal constant FLOAT_PRECISION = 1e30;

    /// Precision.applyFactor.
    function applyFactor(uint256 value, uint256 factor) internal pure returns (uint256) {
        return value * factor / FLOAT_PRECISION;
    }

    /// Open interest of one side (USD, 30 decimals): the long- and short-token-collateral keys, halved
    /// when both are the same token.
    function openInterest(IDataStoreUint ds, Market.Props memory m, bool isLong) internal view returns (uint256) {
        uint256 divisor = m.longToken == m.shortToken ? 2 : 1;
        return ds.getUint(Keys.openInterestKey(m.marketToken, m.longToken, isLong)) / divisor
            + ds.getUint(Keys.openInterestKey(m.marketToken, m.shortToken, isLong)) / divisor;
    }

    /// Whether changing `isLong` open interest by `sizeDeltaUsd` (up when `isIncrease`) brings long and
    /// short closer, which picks the position fee factor (Keys.positionFeeFactorKey).
    function balanceWasImproved(uint256 longOi, uint256 shortOi, bool isLong, uint256 sizeDeltaUsd, bool isIncrease)
        internal
        pure
        returns (bool)
    {
        uint256 nextLong = longOi;
        uint256 nextShort = shortOi;
        if (isLong) nextLong = isIncrease ? longOi + sizeDeltaUsd : longOi - sizeDeltaUsd;
        else nextShort = isIncrease ? shortOi + sizeDeltaUsd : shortOi - sizeDeltaUsd;
        return _diff(nextLong, nextShort) < _diff(longOi, shortOi);
    }

    /// The position fee factor (30 decimals) of a change of `sizeDeltaUsd` on the `isLong` side.
    function positionFeeFactor(IDataStoreUint ds, Market.Props memory m, bool isLong, uint256 sizeDeltaUsd, bool isIncrease)
        internal
        view
        returns (uint256 factor, bool improved)
    {
        improved = balanceWasImproved(openInterest(ds, m, true), openInterest(ds, m, false), isLong, sizeDeltaUsd, isIncrease);
        factor = ds.getUint(Keys.positionFeeFactorKey(m.marketToken, improved));
    }

    function _diff(uint256 a, uint256 b) private pure returns (uint256) {
        return a > b ? a - b : b - a;
    }
}

// gmx-synthetics contracts/reader/ReaderUtils.sol (the structs only): what Reader.getAccountOrders and
// Reader.getMarketInfo return.
library ReaderUtils {
    struct OrderInfo {
        bytes32 orderKey;
        Order.Props order;
    }
    struct VirtualInventory {
        uint256 virtualPoolAmountForLongToken;
        uint256 virtualPoolAmountForShortToken;
        int256 virtualInventoryForPositions;
    }
    struct BaseFundingValues {
        MarketUtils.PositionType fundingFeeAmountPerSize;
        MarketUtils.PositionType claimableFundingAmountPerSize;
    }
    struct MarketInfo {
        Market.Props market;
        uint256 borrowingFactorPerSecondForLongs;
        uint256 borrowingFactorPerSecondForShorts;
        BaseFundingValues baseFunding;
        MarketUtils.GetNextFundingAmountPerSizeResult nextFunding;
        VirtualInventory virtualInventory;
        bool isDisabled;
    }
}

interface IBaseOrderUtils {
    struct CreateOrderParamsAddresses {
        address receiver;
        address cancellationReceiver;
        address callbackContract;
        address uiFeeReceiver;
        address market;
        address initialCollateralToken;
        address[] swapPath;
    }
    struct CreateOrderParamsNumbers {
        uint256 sizeDeltaUsd;
        uint256 initialCollateralDeltaAmount;
        uint256 triggerPrice;
        uint256 acceptablePrice;
        uint256 executionFee;
        uint256 callbackGasLimit;
        uint256 minOutputAmount;
        uint256 validFromTime;
    }
    struct CreateOrderParams {
        CreateOrderParamsAddresses addresses;
        CreateOrderParamsNumbers numbers;
        Order.OrderType orderType;
        Order.DecreasePositionSwapType decreasePositionSwapType;
        bool isLong;
        bool shouldUnwrapNativeToken;
        bool autoCancel;
        bytes32 referralCode;
        bytes32[] dataList;
    }
}

/// Same struct shapes as gmx-synthetics contracts/event/EventUtils.sol.
library EventUtils {
    struct EventLogData {
        AddressItems addressItems;
        UintItems uintItems;
        IntItems intItems;
        BoolItems boolItems;
        Bytes32Items bytes32Items;
        BytesItems bytesItems;
        StringItems stringItems;
    }
    struct AddressItems { AddressKeyValue[] items; AddressArrayKeyValue[] arrayItems; }
    struct UintItems { UintKeyValue[] items; UintArrayKeyValue[] arrayItems; }
    struct IntItems { IntKeyValue[] items; IntArrayKeyValue[] arrayItems; }
    struct BoolItems { BoolKeyValue[] items; BoolArrayKeyValue[] arrayItems; }
    struct Bytes32Items { Bytes32KeyValue[] items; Bytes32ArrayKeyValue[] arrayItems; }
    struct BytesItems { BytesKeyValue[] items; BytesArrayKeyValue[] arrayItems; }
    struct StringItems { StringKeyValue[] items; StringArrayKeyValue[] arrayItems; }
    struct AddressKeyValue { string key; address value; }
    struct AddressArrayKeyValue { string key; address[] value; }
    struct UintKeyValue { string key; uint256 value; }
    struct UintArrayKeyValue { string key; uint256[] value; }
    struct IntKeyValue { string key; int256 value; }
    struct IntArrayKeyValue { string key; int256[] value; }
    struct BoolKeyValue { string key; bool value; }
    struct BoolArrayKeyValue { string key; bool[] value; }
    struct Bytes32KeyValue { string key; bytes32 value; }
    struct Bytes32ArrayKeyValue { string key; bytes32[] value; }
    struct BytesKeyValue { string key; bytes value; }
    struct BytesArrayKeyValue { string key; bytes[] value; }
    struct StringKeyValue { string key; string value; }
    struct StringArrayKeyValue { string key; string[] value; }
}

/// The events of gmx-synthetics contracts/event/EventEmitter.sol (EventLog1/EventLog2), emitted for the
/// controllers the owner allows (here: the GmxCore).
contract EventEmitter {
    event EventLog1(
        address msgSender, string eventName, string indexed eventNameHash, bytes32 indexed topic1, EventUtils.EventLogData eventData
    );
    event EventLog2(
        address msgSender,
        string eventName,
        string indexed eventNameHash,
        bytes32 indexed topic1,
        bytes32 indexed topic2,
        EventUtils.EventLogData eventData
    );

    address public immutable owner;
    mapping(address => bool) public isController;

    // gmx-synthetics contracts/error/Errors.sol (RoleModule._validateRole).
    error Unauthorized(address msgSender, string role);

    constructor() {
        owner = msg.sender;
    }

    /// Fixture-only (upstream: the CONTROLLER role of the RoleStore).
    function setController(address controller, bool allowed) external {
        if (msg.sender != owner) revert Unauthorized(msg.sender, "CONTROLLER");
        isController[controller] = allowed;
    }

    function emitEventLog1(string memory eventName, bytes32 topic1, EventUtils.EventLogData memory eventData) external {
        if (!isController[msg.sender]) revert Unauthorized(msg.sender, "CONTROLLER");
        emit EventLog1(msg.sender, eventName, eventName, topic1, eventData);
    }

    function emitEventLog2(string memory eventName, bytes32 topic1, bytes32 topic2, EventUtils.EventLogData memory eventData)
        external
    {
        if (!isController[msg.sender]) revert Unauthorized(msg.sender, "CONTROLLER");
        emit EventLog2(msg.sender, eventName, eventName, topic1, topic2, eventData);
    }
}

/// Router (gmx-synthetics contracts/router/Router.sol): users approve it; only its plugins (the
/// ExchangeRouter) may move their tokens.
contract Router {
    address public immutable owner;
    mapping(address => bool) public isPlugin;

    // gmx-synthetics contracts/error/Errors.sol (RoleModule._validateRole).
    error Unauthorized(address msgSender, string role);

    constructor() {
        owner = msg.sender;
    }

    /// Fixture-only (upstream: the ROUTER_PLUGIN role of the RoleStore).
    function setPlugin(address plugin, bool allowed) external {
        if (msg.sender != owner) revert Unauthorized(msg.sender, "ROUTER_PLUGIN");
        isPlugin[plugin] = allowed;
    }

    function pluginTransfer(address token, address account, address receiver, uint256 amount) external {
        if (!isPlugin[msg.sender]) revert Unauthorized(msg.sender, "ROUTER_PLUGIN");
        require(IERC20Lite(token).transferFrom(account, receiver, amount), "TRANSFER_FAILED");
    }
}

/// Prices per token set by tests (upstream they are signed by oracle keepers and held only within an
/// execution), USD per smallest token unit with 30 decimals. The getters are gmx-synthetics
/// contracts/oracle/Oracle.sol's: `primaryPrices`, `getPrimaryPrice` (Price.Props; EmptyPrimaryPrice when
/// unset, zeros for the zero address) and `maxTimestamp` (here: when the newest price was set).
contract Oracle {
    mapping(address => Price.Props) public primaryPrices;
    uint256 public maxTimestamp;
    /// When each token's price was set (upstream: the signed price's own timestamp).
    mapping(address => uint256) internal priceTimestamps;
    address public immutable owner;

    // gmx-synthetics contracts/error/Errors.sol.
    error Unauthorized(address msgSender, string role);
    error EmptyPrimaryPrice(address token);
    error MaxPriceAgeExceeded(uint256 oracleTimestamp, uint256 currentTimestamp);

    constructor() {
        owner = msg.sender;
    }

    /// Upstream's signature (a CONTROLLER's call there); here the owner's, and it stamps the time.
    function setPrimaryPrice(address token, Price.Props memory price) external {
        if (msg.sender != owner) revert Unauthorized(msg.sender, "CONTROLLER");
        primaryPrices[token] = price;
        priceTimestamps[token] = block.timestamp;
        maxTimestamp = block.timestamp;
    }

    function getPrimaryPrice(address token) public view returns (Price.Props memory price) {
        if (token == address(0)) return price;
        price = primaryPrices[token];
        // Price.isEmpty
        if (price.min == 0 || price.max == 0) revert EmptyPrimaryPrice(token);
    }

    /// Fixture-only: the price a keeper execution uses, refused as Oracle._validatePrices refuses a signed
    /// price older than MAX_ORACLE_PRICE_AGE (`maxPriceAge`).
    function getValidatedPrice(address token, uint256 maxPriceAge) external view returns (Price.Props memory price) {
        price = getPrimaryPrice(token);
        uint256 at = priceTimestamps[token];
        if (at + maxPriceAge < block.timestamp) revert MaxPriceAgeExceeded(at, block.timestamp);
    }
}

/// What the reserve check reads of the core (its DataStore, orders, markets and oracle).
interface IGmxCoreView {
    function getUint(bytes32 key) external view returns (uint256);
    function getOrder(bytes32 key) external view returns (Order.Props memory);
    function getMarket(address marketToken) external view returns (Market.Props memory);
    function oracle() external view returns (Oracle);
}

/// gmx-synthetics MarketUtils.validateReserve and validateOpenInterestReserve of an increase order,
/// once its size is added, over the core's DataStore values. What the side reserves (getReservedUsd:
/// longs, open interest in index tokens at the index max price; shorts, open interest in USD) must
/// stay within the side's pool (POOL_AMOUNT of its token, halved for a one-token market, at the
/// token's min price: getPoolUsdWithoutPnl) times RESERVE_FACTOR, then OPEN_INTEREST_RESERVE_FACTOR.
/// A contract of its own because the core is at the 24 KiB code size limit.
contract GmxReserveCheck {
    /// Called by the core with the order's key and its execution price (the index max price for a
    /// long increase). Returns 0 when the increase fits, else 1 (InsufficientReserve) or 2
    /// (InsufficientReserveForOpenInterest) with the reserved and the largest reservable USD.
    function check(bytes32 key, uint256 price) external view returns (uint256, uint256, uint256) {
        IGmxCoreView core = IGmxCoreView(msg.sender);
        Order.Props memory o = core.getOrder(key);
        Market.Props memory m = core.getMarket(o.addresses.market);
        bool isLong = o.flags.isLong;
        uint256 poolUsd = _poolUsd(core, m, isLong);
        uint256 reservedUsd = _reservedUsdAfter(core, m, isLong, o.numbers.sizeDeltaUsd, price);
        uint256 maxReserved = LiteMarketUtils.applyFactor(poolUsd, core.getUint(Keys.reserveFactorKey(m.marketToken, isLong)));
        if (reservedUsd > maxReserved) return (1, reservedUsd, maxReserved);
        maxReserved =
            LiteMarketUtils.applyFactor(poolUsd, core.getUint(Keys.openInterestReserveFactorKey(m.marketToken, isLong)));
        if (reservedUsd > maxReserved) return (2, reservedUsd, maxReserved);
        return (0, reservedUsd, maxReserved);
    }

    function _poolUsd(IGmxCoreView core, Market.Props memory m, bool isLong) internal view returns (uint256) {
        uint256 divisor = m.longToken == m.shortToken ? 2 : 1;
        address token = isLong ? m.longToken : m.shortToken;
        return core.getUint(Keys.poolAmountKey(m.marketToken, token)) / divisor * core.oracle().getPrimaryPrice(token).min;
    }

    function _reservedUsdAfter(IGmxCoreView core, Market.Props memory m, bool isLong, uint256 sizeDeltaUsd, uint256 price)
        internal
        view
        returns (uint256)
    {
        if (!isLong) return LiteMarketUtils.openInterest(IDataStoreUint(address(core)), m, false) + sizeDeltaUsd;
        uint256 divisor = m.longToken == m.shortToken ? 2 : 1;
        uint256 tokens = core.getUint(Keys.openInterestInTokensKey(m.marketToken, m.longToken, true)) / divisor;
        tokens += core.getUint(Keys.openInterestInTokensKey(m.marketToken, m.shortToken, true)) / divisor;
        return (tokens + sizeDeltaUsd / price) * price;
    }
}

contract GmxCore {
    // gmx-synthetics contracts/error/Errors.sol, with upstream's parameters.
    error Unauthorized(address msgSender, string role);
    error InsufficientExecutionFee(uint256 minExecutionFee, uint256 executionFee);
    error InsufficientWntAmountForExecutionFee(uint256 wntAmount, uint256 executionFee);
    error EmptyOrder();
    error EmptyPosition();
    error EmptyMarket();
    error InvalidPositionMarket(address market);
    error UnsupportedOrderType(uint256 orderType);
    error OrderNotFulfillableAtAcceptablePrice(uint256 price, uint256 acceptablePrice);
    error MaxOpenInterestExceeded(uint256 openInterest, uint256 maxOpenInterest);
    error InsufficientReserve(uint256 reservedUsd, uint256 maxReservedUsd);
    error InsufficientReserveForOpenInterest(uint256 reservedUsd, uint256 maxReservedUsd);

    address public immutable owner;
    address public immutable wnt;
    Oracle public immutable oracle;
    /// Created by the constructor (no transaction of the deployer's: the other addresses stay put).
    GmxReserveCheck public immutable reserveCheck;
    address public router;
    /// Where the order and position events go (EventLog1/EventLog2), as on real GMX.
    EventEmitter public eventEmitter;
    mapping(address => bool) public isKeeper;

    /// DataStore.getUint/setUint: open interest, caps, fee factors and gas settings under Keys.sol keys.
    mapping(bytes32 => uint256) internal uintValues;
    /// DataStore.getInt/setInt and getBool/setBool (SAVED_FUNDING_FACTOR_PER_SECOND, the borrowing and
    /// balance switches, IS_MARKET_DISABLED): set by tests, read by Reader.getMarketInfo.
    mapping(bytes32 => int256) internal intValues;
    mapping(bytes32 => bool) internal boolValues;
    /// DataStore's bytes32 sets (EnumerableSet upstream): ORDER_LIST and each ACCOUNT_ORDER_LIST.
    mapping(bytes32 => bytes32[]) internal bytes32Sets;
    mapping(bytes32 => mapping(bytes32 => uint256)) internal bytes32SetIndexPlusOne;

    Market.Props[] internal markets;
    mapping(address => uint256) internal marketIndexPlusOne;

    mapping(bytes32 => Order.Props) internal orders;
    uint256 internal orderNonce;

    mapping(bytes32 => Position.Props) internal positions;
    mapping(address => bytes32[]) internal accountPositionKeys;
    mapping(bytes32 => uint256) internal positionIndexPlusOne;

    /// What real GMX accrues on a position and this contract does not: set by tests, settled (charged
    /// from collateral, claimable funding credited) by the position's next increase or decrease.
    struct PendingFees {
        uint256 borrowingFeeUsd; // USD, 30 decimals
        uint256 fundingFeeAmount; // collateral token units
        uint256 claimableLongTokenAmount; // long token units
        uint256 claimableShortTokenAmount; // short token units
    }
    mapping(bytes32 => PendingFees) internal pendingFees;
    /// Funding credited to an account by a position update (DataStore claimableFundingAmount), per
    /// market and token. There is no claim here.
    mapping(address => mapping(address => mapping(address => uint256))) public claimableFundingAmount;

    mapping(address => uint256) internal tokenBalances;

    /// The execution-fee settings GasUtils reads (gmx-synthetics config/general.ts names in brackets):
    /// ESTIMATED_GAS_FEE_BASE_AMOUNT_V2_1 [estimatedGasFeeBaseAmount], ESTIMATED_GAS_FEE_PER_ORACLE_PRICE
    /// [estimatedGasPerOraclePrice], ESTIMATED_GAS_FEE_MULTIPLIER_FACTOR [estimatedGasFeeMultiplierFactor,
    /// 30 decimals], INCREASE_ORDER_GAS_LIMIT and DECREASE_ORDER_GAS_LIMIT.
    constructor(
        address wnt_,
        Oracle oracle_,
        uint256 estimatedGasFeeBaseAmount,
        uint256 estimatedGasPerOraclePrice,
        uint256 estimatedGasFeeMultiplierFactor,
        uint256 increaseOrderGasLimit,
        uint256 decreaseOrderGasLimit
    ) {
        owner = msg.sender;
        wnt = wnt_;
        oracle = oracle_;
        reserveCheck = new GmxReserveCheck();
        // A keeper's prices may be an hour old (upstream's MAX_ORACLE_PRICE_AGE is per chain config).
        uintValues[Keys.MAX_ORACLE_PRICE_AGE] = 3600;
        uintValues[Keys.ESTIMATED_GAS_FEE_BASE_AMOUNT_V2_1] = estimatedGasFeeBaseAmount;
        uintValues[Keys.ESTIMATED_GAS_FEE_PER_ORACLE_PRICE] = estimatedGasPerOraclePrice;
        uintValues[Keys.ESTIMATED_GAS_FEE_MULTIPLIER_FACTOR] = estimatedGasFeeMultiplierFactor;
        uintValues[Keys.INCREASE_ORDER_GAS_LIMIT] = increaseOrderGasLimit;
        uintValues[Keys.DECREASE_ORDER_GAS_LIMIT] = decreaseOrderGasLimit;
    }

    // ---- DataStore (gmx-synthetics contracts/data/DataStore.sol signatures) ----
    function getUint(bytes32 key) external view returns (uint256) {
        return uintValues[key];
    }

    /// Upstream a controller sets config (onlyController); here the owner. Bookkeeping keys (open
    /// interest) are this contract's own to keep.
    function setUint(bytes32 key, uint256 value) external onlyOwner returns (uint256) {
        uintValues[key] = value;
        return value;
    }

    function getInt(bytes32 key) external view returns (int256) {
        return intValues[key];
    }

    function setInt(bytes32 key, int256 value) external onlyOwner returns (int256) {
        intValues[key] = value;
        return value;
    }

    function getBool(bytes32 key) external view returns (bool) {
        return boolValues[key];
    }

    function setBool(bytes32 key, bool value) external onlyOwner returns (bool) {
        boolValues[key] = value;
        return value;
    }

    function getBytes32Count(bytes32 setKey) external view returns (uint256) {
        return bytes32Sets[setKey].length;
    }

    function getBytes32ValuesAt(bytes32 setKey, uint256 start, uint256 end) external view returns (bytes32[] memory values) {
        bytes32[] storage all = bytes32Sets[setKey];
        if (end > all.length) end = all.length;
        if (start >= end) return new bytes32[](0);
        values = new bytes32[](end - start);
        for (uint256 i = start; i < end; i++) values[i - start] = all[i];
    }

    function _addBytes32(bytes32 setKey, bytes32 value) internal {
        if (bytes32SetIndexPlusOne[setKey][value] != 0) return;
        bytes32Sets[setKey].push(value);
        bytes32SetIndexPlusOne[setKey][value] = bytes32Sets[setKey].length;
    }

    function _removeBytes32(bytes32 setKey, bytes32 value) internal {
        if (bytes32SetIndexPlusOne[setKey][value] == 0) return;
        _swapPop(bytes32Sets[setKey], bytes32SetIndexPlusOne[setKey], value);
    }

    /// MarketUtils.getOpenInterest(dataStore, market, isLong) over this contract's own keys.
    function _openInterest(Market.Props memory m, bool isLong) internal view returns (uint256) {
        uint256 divisor = m.longToken == m.shortToken ? 2 : 1;
        return uintValues[Keys.openInterestKey(m.marketToken, m.longToken, isLong)] / divisor
            + uintValues[Keys.openInterestKey(m.marketToken, m.shortToken, isLong)] / divisor;
    }

    /// PositionPricingUtils: the fee factor of the market for a change that improves the long/short
    /// balance or not (Keys.positionFeeFactorKey), decided before the open interest moves.
    function _positionFeeFactor(Market.Props memory m, bool isLong, uint256 sizeDeltaUsd, bool isIncrease)
        internal
        view
        returns (uint256)
    {
        bool improved = LiteMarketUtils.balanceWasImproved(
            _openInterest(m, true), _openInterest(m, false), isLong, sizeDeltaUsd, isIncrease
        );
        return uintValues[Keys.positionFeeFactorKey(m.marketToken, improved)];
    }

    function _market(address marketToken) internal view returns (Market.Props memory) {
        return markets[marketIndexPlusOne[marketToken] - 1];
    }

    // A function, not inlined per use: the core is at the code size limit.
    modifier onlyOwner() {
        _onlyOwner();
        _;
    }

    /// Upstream DataStore.setUint and the set-up are a CONTROLLER's.
    function _onlyOwner() internal view {
        if (msg.sender != owner) revert Unauthorized(msg.sender, "CONTROLLER");
    }

    /// OrderHandler.createOrder / cancelOrder are a CONTROLLER's: the ExchangeRouter.
    function _onlyRouter() internal view {
        if (msg.sender != router) revert Unauthorized(msg.sender, "CONTROLLER");
    }

    function setRouter(address router_) external onlyOwner {
        router = router_;
    }

    function setEventEmitter(EventEmitter eventEmitter_) external onlyOwner {
        eventEmitter = eventEmitter_;
    }

    function setKeeper(address keeper, bool allowed) external onlyOwner {
        isKeeper[keeper] = allowed;
    }

    /// Lists a market with its MAX_OPEN_INTEREST (both sides, USD 30 decimals) and POSITION_FEE_FACTOR
    /// for changes that improve the long/short balance and for those that do not (30 decimals). Its
    /// pool (POOL_AMOUNT) and reserve factors are DataStore values set with setUint.
    function addMarket(
        address marketToken,
        address indexToken,
        address longToken,
        address shortToken,
        uint256 maxOiUsd,
        uint256 positionFeeFactorBalanceImproved,
        uint256 positionFeeFactorBalanceNotImproved
    ) external onlyOwner {
        markets.push(Market.Props(marketToken, indexToken, longToken, shortToken));
        marketIndexPlusOne[marketToken] = markets.length;
        uintValues[Keys.maxOpenInterestKey(marketToken, true)] = maxOiUsd;
        uintValues[Keys.maxOpenInterestKey(marketToken, false)] = maxOiUsd;
        uintValues[Keys.positionFeeFactorKey(marketToken, true)] = positionFeeFactorBalanceImproved;
        uintValues[Keys.positionFeeFactorKey(marketToken, false)] = positionFeeFactorBalanceNotImproved;
    }

    /// Test hook: what a position has accrued that this contract does not model. `pendingImpactAmount`
    /// replaces Position.Props.numbers.pendingImpactAmount (index token units, signed); the fees are
    /// what GMX's Reader reports as pending (borrowing in USD with 30 decimals, funding in collateral
    /// token units, claimable funding in long/short token units).
    function setPositionPendingValues(
        bytes32 positionKey,
        int256 pendingImpactAmount,
        uint256 borrowingFeeUsd,
        uint256 fundingFeeAmount,
        uint256 claimableLongTokenAmount,
        uint256 claimableShortTokenAmount
    ) external onlyOwner {
        Position.Props storage pos = positions[positionKey];
        if (pos.numbers.sizeInUsd == 0) revert EmptyPosition();
        pos.numbers.pendingImpactAmount = pendingImpactAmount;
        pendingFees[positionKey] =
            PendingFees(borrowingFeeUsd, fundingFeeAmount, claimableLongTokenAmount, claimableShortTokenAmount);
    }

    // ---- OrderVault ----
    function recordTransferIn(address token) internal returns (uint256) {
        uint256 prev = tokenBalances[token];
        uint256 next = IERC20Lite(token).balanceOf(address(this));
        tokenBalances[token] = next;
        return next - prev;
    }

    function transferOut(address token, address to, uint256 amount) internal {
        if (amount == 0) return;
        tokenBalances[token] -= amount;
        require(IERC20Lite(token).transfer(to, amount), "TRANSFER_FAILED");
    }

    /// Liquidity for paying out profits (tests fund the pool).
    function syncBalance(address token) external {
        tokenBalances[token] = IERC20Lite(token).balanceOf(address(this));
    }

    // ---- orders ----
    function createOrder(address account, IBaseOrderUtils.CreateOrderParams calldata p) external returns (bytes32 key) {
        _onlyRouter();
        // MarketUtils.validatePositionMarket: a listed market (EmptyMarket: MarketStoreUtils.get of an
        // unknown address is empty) with an index token (not swap-only).
        uint256 mi = marketIndexPlusOne[p.addresses.market];
        if (mi == 0) revert EmptyMarket();
        if (markets[mi - 1].indexToken == address(0)) revert InvalidPositionMarket(p.addresses.market);
        Order.OrderType t = p.orderType;
        if (t != Order.OrderType.MarketIncrease && t != Order.OrderType.MarketDecrease) {
            revert UnsupportedOrderType(uint256(t));
        }
        if (p.numbers.sizeDeltaUsd == 0) revert EmptyOrder();
        // OrderUtils.createOrder: the WNT received must cover the fee asked, and becomes the fee.
        uint256 wntIn = recordTransferIn(wnt);
        if (wntIn < p.numbers.executionFee) revert InsufficientWntAmountForExecutionFee(wntIn, p.numbers.executionFee);
        _validateExecutionFee(p, wntIn);
        uint256 collateralIn = 0;
        if (t == Order.OrderType.MarketIncrease) collateralIn = recordTransferIn(p.addresses.initialCollateralToken);
        key = keccak256(abi.encode(address(this), account, ++orderNonce));
        _storeOrder(
            orders[key],
            account,
            p,
            t == Order.OrderType.MarketIncrease ? collateralIn : p.numbers.initialCollateralDeltaAmount,
            wntIn
        );
        _addBytes32(Keys.ORDER_LIST, key);
        _addBytes32(Keys.accountOrderListKey(account), key);
        _emitOrderCreated(key, orders[key]);
    }

    /// GasUtils.validateExecutionFee: the fee must cover adjustGasLimitForEstimate(estimated gas limit,
    /// oracle price count) at tx.gasprice. The estimate is GasUtils.estimateExecuteIncreaseOrderGasLimit /
    /// estimateExecuteDecreaseOrderGasLimit (order gas limit + SINGLE_SWAP_GAS_LIMIT per swap, one more
    /// for a decrease that swaps its output, + callbackGasLimit); the price count is
    /// estimateOrderOraclePriceCount (3 + swaps).
    function _validateExecutionFee(IBaseOrderUtils.CreateOrderParams calldata p, uint256 executionFee) internal view {
        bool isIncrease = p.orderType == Order.OrderType.MarketIncrease;
        uint256 swaps = p.addresses.swapPath.length;
        if (!isIncrease && p.decreasePositionSwapType != Order.DecreasePositionSwapType.NoSwap) swaps += 1;
        uint256 estimated = uintValues[isIncrease ? Keys.INCREASE_ORDER_GAS_LIMIT : Keys.DECREASE_ORDER_GAS_LIMIT]
            + uintValues[Keys.SINGLE_SWAP_GAS_LIMIT] * swaps + p.numbers.callbackGasLimit;
        uint256 gasLimit = uintValues[Keys.ESTIMATED_GAS_FEE_BASE_AMOUNT_V2_1]
            + uintValues[Keys.ESTIMATED_GAS_FEE_PER_ORACLE_PRICE] * (3 + p.addresses.swapPath.length)
            + LiteMarketUtils.applyFactor(estimated, uintValues[Keys.ESTIMATED_GAS_FEE_MULTIPLIER_FACTOR]);
        uint256 minExecutionFee = gasLimit * tx.gasprice;
        if (executionFee < minExecutionFee) revert InsufficientExecutionFee(minExecutionFee, executionFee);
    }

    /// Writes an order as gmx-synthetics' OrderUtils.createOrder would (amounts as received by the vault).
    function _storeOrder(
        Order.Props storage o,
        address account,
        IBaseOrderUtils.CreateOrderParams calldata p,
        uint256 initialCollateralDeltaAmount,
        uint256 executionFee
    ) internal {
        o.addresses.account = account;
        o.addresses.receiver = p.addresses.receiver;
        o.addresses.cancellationReceiver =
            p.addresses.cancellationReceiver == address(0) ? account : p.addresses.cancellationReceiver;
        o.addresses.callbackContract = p.addresses.callbackContract;
        o.addresses.uiFeeReceiver = p.addresses.uiFeeReceiver;
        o.addresses.market = p.addresses.market;
        o.addresses.initialCollateralToken = p.addresses.initialCollateralToken;
        o.addresses.swapPath = p.addresses.swapPath;
        o.numbers.orderType = p.orderType;
        o.numbers.decreasePositionSwapType = p.decreasePositionSwapType;
        o.numbers.sizeDeltaUsd = p.numbers.sizeDeltaUsd;
        o.numbers.initialCollateralDeltaAmount = initialCollateralDeltaAmount;
        o.numbers.triggerPrice = p.numbers.triggerPrice;
        o.numbers.acceptablePrice = p.numbers.acceptablePrice;
        o.numbers.executionFee = executionFee;
        o.numbers.callbackGasLimit = p.numbers.callbackGasLimit;
        o.numbers.minOutputAmount = p.numbers.minOutputAmount;
        o.numbers.updatedAtTime = block.timestamp;
        o.numbers.validFromTime = p.numbers.validFromTime;
        o.numbers.srcChainId = block.chainid;
        o.flags.isLong = p.isLong;
        o.flags.shouldUnwrapNativeToken = p.shouldUnwrapNativeToken;
        o.flags.autoCancel = p.autoCancel;
        o._dataList = p.dataList;
    }

    /// OrderHandler.cancelOrder, called by the ExchangeRouter once it has checked the account and the
    /// request's age (ExchangeRouter.cancelOrder here).
    function cancelOrder(bytes32 key) external {
        _onlyRouter();
        Order.Props memory o = orders[key];
        _cancel(key, o, "USER_INITIATED_CANCEL", "", o.addresses.account);
    }

    /// Fixture-only keeper entry point (upstream OrderHandler.executeOrder(key, SetPricesParams)): fills at
    /// the oracle price or cancels when the acceptable price is breached.
    function executeOrder(bytes32 key) external {
        if (!isKeeper[msg.sender]) revert Unauthorized(msg.sender, "ORDER_KEEPER");
        Order.Props memory o = orders[key];
        // BaseOrderUtils.validateNonEmptyOrder
        if (o.addresses.account == address(0)) revert EmptyOrder();
        Market.Props memory m = markets[marketIndexPlusOne[o.addresses.market] - 1];
        Price.Props memory ip = oracle.getValidatedPrice(m.indexToken, uintValues[Keys.MAX_ORACLE_PRICE_AGE]);
        (uint256 minP, uint256 maxP) = (ip.min, ip.max);
        bool isIncrease = o.numbers.orderType == Order.OrderType.MarketIncrease;
        // Buying (long increase, short decrease) pays the max price; selling gets the min price.
        bool buying = isIncrease == o.flags.isLong;
        uint256 price = buying ? maxP : minP;
        bool ok = buying ? price <= o.numbers.acceptablePrice : price >= o.numbers.acceptablePrice;
        if (!ok) {
            _cancel(
                key,
                o,
                "",
                abi.encodeWithSelector(OrderNotFulfillableAtAcceptablePrice.selector, price, o.numbers.acceptablePrice),
                msg.sender
            );
            return;
        }
        if (isIncrease) {
            // MarketUtils.validateOpenInterest against MAX_OPEN_INTEREST.
            uint256 oi = _openInterest(m, o.flags.isLong) + o.numbers.sizeDeltaUsd;
            uint256 cap = uintValues[Keys.maxOpenInterestKey(o.addresses.market, o.flags.isLong)];
            if (oi > cap) {
                _cancel(key, o, "", abi.encodeWithSelector(MaxOpenInterestExceeded.selector, oi, cap), msg.sender);
                return;
            }
            if (_cancelledForReserve(key, o, price)) return;
            _increase(key, o, price);
        } else {
            _decrease(key, o, price, minP, maxP);
        }
        _removeOrder(key);
        _emitOrderExecuted(key, o.addresses.account);
        transferOut(wnt, msg.sender, o.numbers.executionFee);
    }

    /// OPEN_INTEREST (USD) and OPEN_INTEREST_IN_TOKENS of the order's side and collateral, up or down.
    function _bookOpenInterest(Order.Props memory o, uint256 usd, uint256 tokens, bool add) internal {
        bytes32 k = Keys.openInterestKey(o.addresses.market, o.addresses.initialCollateralToken, o.flags.isLong);
        bytes32 kt = Keys.openInterestInTokensKey(o.addresses.market, o.addresses.initialCollateralToken, o.flags.isLong);
        if (add) {
            uintValues[k] += usd;
            uintValues[kt] += tokens;
        } else {
            uintValues[k] -= usd;
            uintValues[kt] -= tokens;
        }
    }

    /// Cancels the increase, as its execution reverts upstream, when the reserve check refuses it.
    function _cancelledForReserve(bytes32 key, Order.Props memory o, uint256 price) internal returns (bool) {
        (uint256 failed, uint256 reservedUsd, uint256 maxReservedUsd) = reserveCheck.check(key, price);
        if (failed == 0) return false;
        _cancel(
            key,
            o,
            "",
            abi.encodeWithSelector(
                failed == 1 ? InsufficientReserve.selector : InsufficientReserveForOpenInterest.selector,
                reservedUsd,
                maxReservedUsd
            ),
            msg.sender
        );
        return true;
    }

    /// The min price (EmptyPrimaryPrice from the Oracle when it has none).
    function _collateralPrice(address token) internal view returns (uint256) {
        return oracle.getPrimaryPrice(token).min;
    }

    function _positionKey(address account, address market, address collateralToken, bool isLong)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(account, market, collateralToken, isLong));
    }

    function _increase(bytes32 key, Order.Props memory o, uint256 price) internal {
        bytes32 pk =
            _positionKey(o.addresses.account, o.addresses.market, o.addresses.initialCollateralToken, o.flags.isLong);
        Position.Props storage pos = positions[pk];
        if (positionIndexPlusOne[pk] == 0) {
            accountPositionKeys[o.addresses.account].push(pk);
            positionIndexPlusOne[pk] = accountPositionKeys[o.addresses.account].length;
        }
        pos.addresses =
            Position.Addresses(o.addresses.account, o.addresses.market, o.addresses.initialCollateralToken);
        pos.flags.isLong = o.flags.isLong;
        uint256 tokens = o.numbers.sizeDeltaUsd / price;
        uint256 cp = _collateralPrice(o.addresses.initialCollateralToken);
        uint256 feeFactor = _positionFeeFactor(_market(o.addresses.market), o.flags.isLong, o.numbers.sizeDeltaUsd, true);
        uint256 feeAmount = LiteMarketUtils.applyFactor(o.numbers.sizeDeltaUsd, feeFactor) / cp;
        // Borrowing and funding accrued so far are charged on every update, as GMX does.
        uint256 pendingFeeAmount = _settlePendingFees(pk, o, cp);
        uint256 collateral = pos.numbers.collateralAmount + o.numbers.initialCollateralDeltaAmount;
        if (feeAmount > collateral) feeAmount = collateral;
        collateral -= feeAmount;
        pos.numbers.collateralAmount = pendingFeeAmount > collateral ? 0 : collateral - pendingFeeAmount;
        pos.numbers.sizeInUsd += o.numbers.sizeDeltaUsd;
        pos.numbers.sizeInTokens += tokens;
        pos.numbers.increasedAtTime = block.timestamp;
        _bookOpenInterest(o, o.numbers.sizeDeltaUsd, tokens, true);
        _emitPositionChange("PositionIncrease", key, pk, o, price, o.numbers.sizeDeltaUsd, tokens);
        _emitPositionFees(key, pk, o, o.numbers.sizeDeltaUsd, feeAmount, true);
    }

    function _decrease(bytes32 key, Order.Props memory o, uint256 price, uint256 minP, uint256 maxP) internal {
        bytes32 pk =
            _positionKey(o.addresses.account, o.addresses.market, o.addresses.initialCollateralToken, o.flags.isLong);
        Position.Props storage pos = positions[pk];
        uint256 size = pos.numbers.sizeInUsd;
        if (size == 0) revert EmptyPosition();
        uint256 sizeDelta = o.numbers.sizeDeltaUsd > size ? size : o.numbers.sizeDeltaUsd;
        // What the position accrued: the pending impact of the part closed and all pending fees.
        int256 accruedUsd = _realizePendingImpact(pos, sizeDelta, minP, maxP) - int256(_settlePendingFeesUsd(pk, o));
        uint256 feeUsd = LiteMarketUtils.applyFactor(
            sizeDelta, _positionFeeFactor(_market(o.addresses.market), o.flags.isLong, sizeDelta, false)
        );
        _closePart(key, pk, o, price, sizeDelta, accruedUsd, feeUsd);
    }

    function _closePart(
        bytes32 key,
        bytes32 pk,
        Order.Props memory o,
        uint256 price,
        uint256 sizeDelta,
        int256 accruedUsd,
        uint256 feeUsd
    ) internal {
        Position.Props storage pos = positions[pk];
        // PositionUtils.getPositionPnlUsd: a long's share of its tokens rounds up, a short's down
        uint256 tokens = pos.numbers.sizeInTokens * sizeDelta / pos.numbers.sizeInUsd;
        if (o.flags.isLong && tokens * pos.numbers.sizeInUsd < pos.numbers.sizeInTokens * sizeDelta) tokens += 1;
        uint256 cp = _collateralPrice(o.addresses.initialCollateralToken);
        uint256 collateralAfter =
            _collateralAfterDecrease(pos, o.flags.isLong, sizeDelta, tokens * price, cp, accruedUsd - int256(feeUsd));
        pos.numbers.sizeInUsd -= sizeDelta;
        pos.numbers.sizeInTokens -= tokens;
        pos.numbers.decreasedAtTime = block.timestamp;
        _bookOpenInterest(o, sizeDelta, tokens, false);
        uint256 payout = collateralAfter;
        if (pos.numbers.sizeInUsd != 0 && o.numbers.initialCollateralDeltaAmount < collateralAfter) {
            payout = o.numbers.initialCollateralDeltaAmount;
        }
        pos.numbers.collateralAmount = collateralAfter - payout;
        transferOut(
            o.addresses.initialCollateralToken,
            o.addresses.receiver == address(0) ? o.addresses.account : o.addresses.receiver,
            payout
        );
        _emitPositionChange("PositionDecrease", key, pk, o, price, sizeDelta, tokens);
        _emitPositionFees(key, pk, o, sizeDelta, feeUsd / cp, false);
        // A closed position is removed, as gmx-synthetics' PositionStoreUtils.remove does.
        if (pos.numbers.sizeInUsd == 0) _removePosition(pk, o.addresses.account);
    }

    /// {_settlePendingFees} in USD (the fee amount at the collateral's min price).
    function _settlePendingFeesUsd(bytes32 pk, Order.Props memory o) internal returns (uint256) {
        uint256 cp = _collateralPrice(o.addresses.initialCollateralToken);
        return _settlePendingFees(pk, o, cp) * cp;
    }

    /// Collateral left after realizing the PnL and `accruedUsd` (which includes the position fee) of a
    /// decrease (floored at zero).
    function _collateralAfterDecrease(
        Position.Props storage pos,
        bool isLong,
        uint256 sizeDelta,
        uint256 value,
        uint256 cp,
        int256 accruedUsd
    ) internal view returns (uint256) {
        int256 pnlUsd = isLong ? int256(value) - int256(sizeDelta) : int256(sizeDelta) - int256(value);
        int256 collateralUsd = int256(pos.numbers.collateralAmount * cp) + pnlUsd + accruedUsd;
        return collateralUsd > 0 ? uint256(collateralUsd) / cp : 0;
    }

    /// The pending price impact of `sizeDelta` of the position (pro rata, rounded away from zero when
    /// negative), in USD: positive impact at the min price, negative at the max, as gmx-synthetics'
    /// ReaderPricingUtils._getProportionalPendingImpactValues; taken off the position's pending amount.
    function _realizePendingImpact(Position.Props storage pos, uint256 sizeDelta, uint256 minP, uint256 maxP)
        internal
        returns (int256)
    {
        int256 amount = _proportionalImpactAmount(pos.numbers.pendingImpactAmount, sizeDelta, pos.numbers.sizeInUsd);
        pos.numbers.pendingImpactAmount -= amount;
        return amount * int256(amount > 0 ? minP : maxP);
    }

    /// `pendingImpactAmount × sizeDeltaUsd / sizeInUsd`, rounded up in magnitude when negative
    /// (gmx-synthetics Precision.mulDiv with roundUpMagnitude = amount < 0).
    function _proportionalImpactAmount(int256 pendingImpactAmount, uint256 sizeDeltaUsd, uint256 sizeInUsd)
        internal
        pure
        returns (int256)
    {
        if (pendingImpactAmount >= 0) return int256(uint256(pendingImpactAmount) * sizeDeltaUsd / sizeInUsd);
        uint256 n = uint256(-pendingImpactAmount) * sizeDeltaUsd;
        return -int256((n + sizeInUsd - 1) / sizeInUsd);
    }

    /// Charges what the position accrued (returns the fee in collateral token units: the borrowing fee
    /// at the collateral's min price, rounded down, plus the funding fee) and credits its claimable
    /// funding to the account, as a GMX position update does; the pending values are then 0.
    function _settlePendingFees(bytes32 pk, Order.Props memory o, uint256 cp) internal returns (uint256) {
        PendingFees memory f = pendingFees[pk];
        delete pendingFees[pk];
        Market.Props memory m = markets[marketIndexPlusOne[o.addresses.market] - 1];
        claimableFundingAmount[m.marketToken][m.longToken][o.addresses.account] += f.claimableLongTokenAmount;
        claimableFundingAmount[m.marketToken][m.shortToken][o.addresses.account] += f.claimableShortTokenAmount;
        return f.borrowingFeeUsd / cp + f.fundingFeeAmount;
    }

    function _removePosition(bytes32 pk, address account) internal {
        _swapPop(accountPositionKeys[account], positionIndexPlusOne, pk);
        delete positions[pk];
        delete pendingFees[pk];
    }

    /// Removes `key` from `keys` (order not kept): the last key takes its slot. `indexPlusOne` maps a
    /// key to its 1-based slot and is kept in step.
    function _swapPop(bytes32[] storage keys, mapping(bytes32 => uint256) storage indexPlusOne, bytes32 key)
        internal
    {
        uint256 idx = indexPlusOne[key];
        uint256 last = keys.length;
        if (idx != last) {
            bytes32 moved = keys[last - 1];
            keys[idx - 1] = moved;
            indexPlusOne[moved] = idx;
        }
        keys.pop();
        delete indexPlusOne[key];
    }

    function _cancel(bytes32 key, Order.Props memory o, string memory reason, bytes memory reasonBytes, address feeTo)
        internal
    {
        _removeOrder(key);
        if (o.numbers.orderType == Order.OrderType.MarketIncrease) {
            transferOut(
                o.addresses.initialCollateralToken,
                o.addresses.cancellationReceiver,
                o.numbers.initialCollateralDeltaAmount
            );
        }
        transferOut(wnt, feeTo, o.numbers.executionFee);
        _emitOrderCancelled(key, o.addresses.account, reason, reasonBytes);
    }

    // ---- events, shaped as gmx-synthetics' OrderEventUtils / PositionEventUtils (a subset of the items) ----
    function _accountTopic(address account) internal pure returns (bytes32) {
        return bytes32(uint256(uint160(account))); // Cast.toBytes32
    }

    function _keyItems(string memory name, bytes32 value) internal pure returns (EventUtils.Bytes32KeyValue[] memory a) {
        a = new EventUtils.Bytes32KeyValue[](1);
        a[0] = EventUtils.Bytes32KeyValue(name, value);
    }

    function _accountItems(address account) internal pure returns (EventUtils.AddressKeyValue[] memory a) {
        a = new EventUtils.AddressKeyValue[](1);
        a[0] = EventUtils.AddressKeyValue("account", account);
    }

    /// OrderCreated: EventLog2(topic1 = key, topic2 = account).
    function _emitOrderCreated(bytes32 key, Order.Props storage o) internal {
        EventUtils.EventLogData memory d;
        d.addressItems.items = new EventUtils.AddressKeyValue[](3);
        d.addressItems.items[0] = EventUtils.AddressKeyValue("account", o.addresses.account);
        d.addressItems.items[1] = EventUtils.AddressKeyValue("market", o.addresses.market);
        d.addressItems.items[2] = EventUtils.AddressKeyValue("initialCollateralToken", o.addresses.initialCollateralToken);
        d.uintItems.items = new EventUtils.UintKeyValue[](5);
        d.uintItems.items[0] = EventUtils.UintKeyValue("orderType", uint256(o.numbers.orderType));
        d.uintItems.items[1] = EventUtils.UintKeyValue("sizeDeltaUsd", o.numbers.sizeDeltaUsd);
        d.uintItems.items[2] = EventUtils.UintKeyValue("initialCollateralDeltaAmount", o.numbers.initialCollateralDeltaAmount);
        d.uintItems.items[3] = EventUtils.UintKeyValue("acceptablePrice", o.numbers.acceptablePrice);
        d.uintItems.items[4] = EventUtils.UintKeyValue("executionFee", o.numbers.executionFee);
        d.boolItems.items = new EventUtils.BoolKeyValue[](1);
        d.boolItems.items[0] = EventUtils.BoolKeyValue("isLong", o.flags.isLong);
        d.bytes32Items.items = _keyItems("key", key);
        eventEmitter.emitEventLog2("OrderCreated", key, _accountTopic(o.addresses.account), d);
    }

    /// OrderExecuted: EventLog2(topic1 = key, topic2 = account); items key, account, secondaryOrderType.
    function _emitOrderExecuted(bytes32 key, address account) internal {
        EventUtils.EventLogData memory d;
        d.bytes32Items.items = _keyItems("key", key);
        d.addressItems.items = _accountItems(account);
        d.uintItems.items = new EventUtils.UintKeyValue[](1);
        d.uintItems.items[0] = EventUtils.UintKeyValue("secondaryOrderType", 0);
        eventEmitter.emitEventLog2("OrderExecuted", key, _accountTopic(account), d);
    }

    /// OrderCancelled: EventLog2(topic1 = key, topic2 = account); items key, account, reason, reasonBytes.
    function _emitOrderCancelled(bytes32 key, address account, string memory reason, bytes memory reasonBytes) internal {
        EventUtils.EventLogData memory d;
        d.bytes32Items.items = _keyItems("key", key);
        d.addressItems.items = _accountItems(account);
        d.stringItems.items = new EventUtils.StringKeyValue[](1);
        d.stringItems.items[0] = EventUtils.StringKeyValue("reason", reason);
        d.bytesItems.items = new EventUtils.BytesKeyValue[](1);
        d.bytesItems.items[0] = EventUtils.BytesKeyValue("reasonBytes", reasonBytes);
        eventEmitter.emitEventLog2("OrderCancelled", key, _accountTopic(account), d);
    }

    /// PositionIncrease / PositionDecrease: EventLog1(topic1 = account).
    function _emitPositionChange(
        string memory name,
        bytes32 orderKey,
        bytes32 positionKey,
        Order.Props memory o,
        uint256 price,
        uint256 sizeDeltaUsd,
        uint256 sizeDeltaInTokens
    ) internal {
        EventUtils.EventLogData memory d;
        d.addressItems.items = new EventUtils.AddressKeyValue[](3);
        d.addressItems.items[0] = EventUtils.AddressKeyValue("account", o.addresses.account);
        d.addressItems.items[1] = EventUtils.AddressKeyValue("market", o.addresses.market);
        d.addressItems.items[2] = EventUtils.AddressKeyValue("collateralToken", o.addresses.initialCollateralToken);
        d.uintItems.items = new EventUtils.UintKeyValue[](4);
        d.uintItems.items[0] = EventUtils.UintKeyValue("executionPrice", price);
        d.uintItems.items[1] = EventUtils.UintKeyValue("sizeDeltaUsd", sizeDeltaUsd);
        d.uintItems.items[2] = EventUtils.UintKeyValue("sizeDeltaInTokens", sizeDeltaInTokens);
        d.uintItems.items[3] = EventUtils.UintKeyValue("orderType", uint256(o.numbers.orderType));
        d.boolItems.items = new EventUtils.BoolKeyValue[](1);
        d.boolItems.items[0] = EventUtils.BoolKeyValue("isLong", o.flags.isLong);
        d.bytes32Items.items = new EventUtils.Bytes32KeyValue[](2);
        d.bytes32Items.items[0] = EventUtils.Bytes32KeyValue("orderKey", orderKey);
        d.bytes32Items.items[1] = EventUtils.Bytes32KeyValue("positionKey", positionKey);
        eventEmitter.emitEventLog1(name, _accountTopic(o.addresses.account), d);
    }

    /// PositionFeesCollected: EventLog1(topic1 = market); positionFeeAmount in collateral token units.
    function _emitPositionFees(
        bytes32 orderKey,
        bytes32 positionKey,
        Order.Props memory o,
        uint256 tradeSizeUsd,
        uint256 positionFeeAmount,
        bool isIncrease
    ) internal {
        EventUtils.EventLogData memory d;
        d.bytes32Items.items = new EventUtils.Bytes32KeyValue[](2);
        d.bytes32Items.items[0] = EventUtils.Bytes32KeyValue("orderKey", orderKey);
        d.bytes32Items.items[1] = EventUtils.Bytes32KeyValue("positionKey", positionKey);
        d.addressItems.items = new EventUtils.AddressKeyValue[](2);
        d.addressItems.items[0] = EventUtils.AddressKeyValue("market", o.addresses.market);
        d.addressItems.items[1] = EventUtils.AddressKeyValue("collateralToken", o.addresses.initialCollateralToken);
        d.uintItems.items = new EventUtils.UintKeyValue[](2);
        d.uintItems.items[0] = EventUtils.UintKeyValue("tradeSizeUsd", tradeSizeUsd);
        d.uintItems.items[1] = EventUtils.UintKeyValue("positionFeeAmount", positionFeeAmount);
        d.boolItems.items = new EventUtils.BoolKeyValue[](1);
        d.boolItems.items[0] = EventUtils.BoolKeyValue("isIncrease", isIncrease);
        eventEmitter.emitEventLog1("PositionFeesCollected", bytes32(uint256(uint160(o.addresses.market))), d);
    }

    function _removeOrder(bytes32 key) internal {
        _removeBytes32(Keys.ORDER_LIST, key);
        _removeBytes32(Keys.accountOrderListKey(orders[key].addresses.account), key);
        delete orders[key];
    }

    // ---- views (read through Reader) ----
    function getOrder(bytes32 key) external view returns (Order.Props memory) {
        return orders[key];
    }

    function getMarketCount() external view returns (uint256) {
        return markets.length;
    }

    function getMarketAt(uint256 i) external view returns (Market.Props memory) {
        return markets[i];
    }

    function getAccountPositionKeys(address account) external view returns (bytes32[] memory) {
        return accountPositionKeys[account];
    }

    function getPosition(bytes32 key) external view returns (Position.Props memory) {
        return positions[key];
    }

    function getPositionPendingFees(bytes32 key) external view returns (PendingFees memory) {
        return pendingFees[key];
    }

    function getMarket(address marketToken) external view returns (Market.Props memory) {
        uint256 i = marketIndexPlusOne[marketToken];
        if (i == 0) revert EmptyMarket();
        return markets[i - 1];
    }
}

/// ExchangeRouter: the user entry point. multicall delegatecalls into itself so msg.sender and
/// msg.value stay the user's, as in gmx-synthetics.
contract ExchangeRouter {
    GmxCore public immutable dataStore;
    /// The OrderHandler createOrder and cancelOrder go to (upstream's public immutable): the core, which
    /// plays it. The order feature switches are keyed by it.
    address public immutable orderHandler;
    address public immutable wnt;
    /// Pulls the user's tokens (the user approves it, not this contract).
    Router public immutable router;

    // gmx-synthetics contracts/error/Errors.sol.
    error EmptyOrder();
    error Unauthorized(address msgSender, string role);
    error RequestNotYetCancellable(uint256 requestAge, uint256 requestExpirationAge, string requestType);
    error DisabledFeature(bytes32 key);
    error DisabledMarket(address market);

    constructor(GmxCore core_, address wnt_, Router router_) {
        dataStore = core_;
        orderHandler = address(core_);
        wnt = wnt_;
        router = router_;
    }

    function multicall(bytes[] calldata data) external payable returns (bytes[] memory results) {
        results = new bytes[](data.length);
        for (uint256 i = 0; i < data.length; i++) {
            (bool ok, bytes memory res) = address(this).delegatecall(data[i]);
            if (!ok) {
                // Bubble the inner revert data unchanged so callers can decode custom errors.
                assembly {
                    revert(add(res, 32), mload(res))
                }
            }
            results[i] = res;
        }
    }

    function sendWnt(address receiver, uint256 amount) external payable {
        IERC20Lite(wnt).deposit{value: amount}();
        require(IERC20Lite(wnt).transfer(receiver, amount), "TRANSFER_FAILED");
    }

    function sendTokens(address token, address receiver, uint256 amount) external payable {
        router.pluginTransfer(token, msg.sender, receiver, amount);
    }

    /// Checked here, not in the core (at the code size limit), before the order is created, as upstream
    /// checks them in the creating transaction: OrderHandler.createOrder's FeatureUtils.validateFeature of
    /// Keys.createOrderFeatureDisabledKey(orderHandler, orderType) (DisabledFeature), and
    /// OrderUtils.createOrder's MarketUtils.validatePositionMarket → validateEnabledMarket of
    /// Keys.isMarketDisabledKey(market) (DisabledMarket), for increases and decreases alike.
    function createOrder(IBaseOrderUtils.CreateOrderParams calldata params) external payable returns (bytes32) {
        bytes32 feature =
            keccak256(abi.encode(Keys.CREATE_ORDER_FEATURE_DISABLED, orderHandler, uint256(params.orderType)));
        if (dataStore.getBool(feature)) revert DisabledFeature(feature);
        address market = params.addresses.market;
        if (dataStore.getBool(Keys.marketKey(Keys.IS_MARKET_DISABLED, market))) revert DisabledMarket(market);
        return dataStore.createOrder(msg.sender, params);
    }

    /// ExchangeRouter.cancelOrder (the account's own order only), then OrderHandler.cancelOrder's
    /// BaseHandler.validateRequestCancellation: a market order only REQUEST_EXPIRATION_TIME after it was
    /// last updated.
    function cancelOrder(bytes32 key) external payable {
        Order.Props memory o = dataStore.getOrder(key);
        if (o.addresses.account == address(0)) revert EmptyOrder();
        if (o.addresses.account != msg.sender) revert Unauthorized(msg.sender, "account for cancelOrder");
        // Only market orders are created here.
        uint256 expiration = dataStore.getUint(Keys.REQUEST_EXPIRATION_TIME);
        uint256 age = block.timestamp - o.numbers.updatedAtTime;
        if (age < expiration) revert RequestNotYetCancellable(age, expiration, "Order");
        dataStore.cancelOrder(key);
    }
}

/// Reader: stateless views taking the DataStore address first, as in gmx-synthetics.
contract Reader {
    // gmx-synthetics contracts/error/Errors.sol.
    error EmptyPosition();
    error EmptyMarketPrice(address market);
    error UnableToGetCachedTokenPrice(address token, address market);
    error UnableToGetBorrowingFactorEmptyPoolUsd();
    error UnableToGetFundingFactorEmptyOpenInterest();

    uint256 internal constant FLOAT_PRECISION = 1e30;

    /// gmx-synthetics Reader.getMarketInfo (ReaderUtils.getMarketInfo) at `prices`, computed from the
    /// DataStore's keys as upstream computes it:
    /// - borrowingFactorPerSecondForLongs/ForShorts: MarketUtils.getBorrowingFactorPerSecond (reserved USD
    ///   over the side's pool: the kink model when OPTIMAL_USAGE_FACTOR is set, else BORROWING_FACTOR ×
    ///   reserved^BORROWING_EXPONENT_FACTOR / pool; 0 for the smaller side under
    ///   SKIP_BORROWING_FEE_FOR_SMALLER_SIDE);
    /// - nextFunding's longsPayShorts, fundingFactorPerSecond and nextSavedFundingFactorPerSecond:
    ///   MarketUtils.getNextFundingAmountPerSize / getNextFundingFactorPerSecond (none while either side
    ///   has no open interest; the static FUNDING_FACTOR model, or adaptive funding from
    ///   SAVED_FUNDING_FACTOR_PER_SECOND over the seconds since FUNDING_UPDATED_AT when
    ///   FUNDING_INCREASE_FACTOR_PER_SECOND is set; bounded by MIN/MAX_FUNDING_FACTOR_PER_SECOND);
    /// - isDisabled: IS_MARKET_DISABLED.
    /// Not modelled (0 here): baseFunding and nextFunding's per-size deltas (this contract keeps no
    /// funding per size), virtualInventory. Exponent factors other than 1 (10^30) and 0 (unset) revert.
    /// An unknown market gives an empty MarketInfo, as upstream's MarketStoreUtils.get does.
    function getMarketInfo(GmxCore dataStore, MarketUtils.MarketPrices memory prices, address marketKey)
        external
        view
        returns (ReaderUtils.MarketInfo memory info)
    {
        try dataStore.getMarket(marketKey) returns (Market.Props memory m) {
            info.market = m;
        } catch {
            return info;
        }
        IDataStoreLite ds = IDataStoreLite(address(dataStore));
        info.borrowingFactorPerSecondForLongs = _borrowingFactorPerSecond(ds, info.market, prices, true);
        info.borrowingFactorPerSecondForShorts = _borrowingFactorPerSecond(ds, info.market, prices, false);
        info.nextFunding = _nextFunding(ds, info.market, prices);
        info.isDisabled = ds.getBool(Keys.marketKey(Keys.IS_MARKET_DISABLED, marketKey));
    }

    /// Precision.applyExponentFactor for the exponents modelled: below 1 (10^30) is 0, exponent 1 the
    /// value itself, exponent 0 (x^0) 1.
    function _applyExponentFactor(uint256 floatValue, uint256 exponentFactor) internal pure returns (uint256) {
        if (floatValue < FLOAT_PRECISION) return 0;
        if (exponentFactor == FLOAT_PRECISION) return floatValue;
        require(exponentFactor == 0, "GmxV2Lite: exponent factors other than 0 and 1 are not modelled");
        return FLOAT_PRECISION;
    }

    /// Precision.toFactor (rounded down).
    function _toFactor(uint256 value, uint256 divisor) internal pure returns (uint256) {
        if (value == 0) return 0;
        return value * FLOAT_PRECISION / divisor;
    }

    /// MarketUtils.getOpenInterestInTokens (both collateral tokens, each halved for a one-token market).
    function _openInterestInTokens(IDataStoreLite ds, Market.Props memory m, bool isLong) internal view returns (uint256) {
        uint256 divisor = m.longToken == m.shortToken ? 2 : 1;
        return ds.getUint(Keys.openInterestInTokensKey(m.marketToken, m.longToken, isLong)) / divisor
            + ds.getUint(Keys.openInterestInTokensKey(m.marketToken, m.shortToken, isLong)) / divisor;
    }

    /// MarketUtils.getOpenInterestForBalance: in USD, or in tokens at the index mid price when
    /// USE_OPEN_INTEREST_IN_TOKENS_FOR_BALANCE is set.
    function _openInterestForBalance(IDataStoreLite ds, Market.Props memory m, uint256 indexMidPrice, bool isLong)
        internal
        view
        returns (uint256)
    {
        if (ds.getBool(Keys.USE_OPEN_INTEREST_IN_TOKENS_FOR_BALANCE)) {
            return _openInterestInTokens(ds, m, isLong) * indexMidPrice;
        }
        return LiteMarketUtils.openInterest(ds, m, isLong);
    }

    /// MarketUtils.getBorrowingFactorPerSecond.
    function _borrowingFactorPerSecond(
        IDataStoreLite ds,
        Market.Props memory m,
        MarketUtils.MarketPrices memory prices,
        bool isLong
    ) internal view returns (uint256) {
        // getReservedUsd: longs, open interest in tokens at the index max price; shorts, open interest in USD
        uint256 reservedUsd = isLong
            ? _openInterestInTokens(ds, m, true) * prices.indexTokenPrice.max
            : LiteMarketUtils.openInterest(ds, m, false);
        if (reservedUsd == 0) return 0;
        if (ds.getBool(Keys.SKIP_BORROWING_FEE_FOR_SMALLER_SIDE)) {
            uint256 mid = (prices.indexTokenPrice.min + prices.indexTokenPrice.max) / 2;
            uint256 longOi = _openInterestForBalance(ds, m, mid, true);
            uint256 shortOi = _openInterestForBalance(ds, m, mid, false);
            if (isLong && longOi < shortOi) return 0;
            if (!isLong && shortOi < longOi) return 0;
        }
        // getPoolUsdWithoutPnl(maximize false): the side's POOL_AMOUNT (halved for a one-token market) at its min price
        uint256 divisor = m.longToken == m.shortToken ? 2 : 1;
        uint256 poolUsd = ds.getUint(Keys.poolAmountKey(m.marketToken, isLong ? m.longToken : m.shortToken)) / divisor
            * (isLong ? prices.longTokenPrice.min : prices.shortTokenPrice.min);
        if (poolUsd == 0) revert UnableToGetBorrowingFactorEmptyPoolUsd();
        uint256 optimalUsageFactor = ds.getUint(Keys.marketSideKey(Keys.OPTIMAL_USAGE_FACTOR, m.marketToken, isLong));
        if (optimalUsageFactor != 0) return _kinkBorrowingFactor(ds, m, isLong, reservedUsd, poolUsd, optimalUsageFactor);
        uint256 reservedAfterExponent = _applyExponentFactor(
            reservedUsd, ds.getUint(Keys.marketSideKey(Keys.BORROWING_EXPONENT_FACTOR, m.marketToken, isLong))
        );
        return LiteMarketUtils.applyFactor(
            _toFactor(reservedAfterExponent, poolUsd),
            ds.getUint(Keys.marketSideKey(Keys.BORROWING_FACTOR, m.marketToken, isLong))
        );
    }

    /// MarketUtils.getKinkBorrowingFactor: usage (reserved over pool × OPEN_INTEREST_RESERVE_FACTOR) ×
    /// BASE_BORROWING_FACTOR, plus the excess over OPTIMAL_USAGE_FACTOR at the ABOVE_OPTIMAL_USAGE
    /// factor's surplus.
    function _kinkBorrowingFactor(
        IDataStoreLite ds,
        Market.Props memory m,
        bool isLong,
        uint256 reservedUsd,
        uint256 poolUsd,
        uint256 optimalUsageFactor
    ) internal view returns (uint256) {
        uint256 maxReservedUsd =
            LiteMarketUtils.applyFactor(poolUsd, ds.getUint(Keys.openInterestReserveFactorKey(m.marketToken, isLong)));
        uint256 usageFactor = _toFactor(reservedUsd, maxReservedUsd);
        uint256 base = ds.getUint(Keys.marketSideKey(Keys.BASE_BORROWING_FACTOR, m.marketToken, isLong));
        uint256 perSecond = LiteMarketUtils.applyFactor(usageFactor, base);
        if (usageFactor > optimalUsageFactor && FLOAT_PRECISION > optimalUsageFactor) {
            uint256 above =
                ds.getUint(Keys.marketSideKey(Keys.ABOVE_OPTIMAL_USAGE_BORROWING_FACTOR, m.marketToken, isLong));
            uint256 additional = above > base ? above - base : 0;
            perSecond += additional * (usageFactor - optimalUsageFactor) / (FLOAT_PRECISION - optimalUsageFactor);
        }
        return perSecond;
    }

    /// MarketUtils.getNextFundingAmountPerSize without the per-size deltas: nothing while either side
    /// has no open interest, else getNextFundingFactorPerSecond over the seconds since FUNDING_UPDATED_AT.
    function _nextFunding(IDataStoreLite ds, Market.Props memory m, MarketUtils.MarketPrices memory prices)
        internal
        view
        returns (MarketUtils.GetNextFundingAmountPerSizeResult memory r)
    {
        if (LiteMarketUtils.openInterest(ds, m, true) == 0 || LiteMarketUtils.openInterest(ds, m, false) == 0) return r;
        uint256 updatedAt = ds.getUint(Keys.marketKey(Keys.FUNDING_UPDATED_AT, m.marketToken));
        (r.fundingFactorPerSecond, r.longsPayShorts, r.nextSavedFundingFactorPerSecond) = _nextFundingFactorPerSecond(
            ds,
            m,
            (prices.indexTokenPrice.min + prices.indexTokenPrice.max) / 2,
            updatedAt == 0 ? 0 : block.timestamp - updatedAt
        );
    }

    struct FundingCache {
        uint256 longOi;
        uint256 shortOi;
        uint256 diffUsd;
        uint256 increaseFactor;
        uint256 diffFactor;
        uint256 maxFactor;
        int256 saved;
        int256 nextSaved;
        // MarketUtils.FundingRateChangeType: 0 NoChange, 1 Increase, 2 Decrease
        uint256 change;
    }

    /// MarketUtils.getNextFundingFactorPerSecond: (fundingFactorPerSecond, longsPayShorts,
    /// nextSavedFundingFactorPerSecond).
    function _nextFundingFactorPerSecond(IDataStoreLite ds, Market.Props memory m, uint256 indexMid, uint256 duration)
        internal
        view
        returns (uint256, bool, int256)
    {
        FundingCache memory c;
        address market = m.marketToken;
        c.longOi = _openInterestForBalance(ds, m, indexMid, true);
        c.shortOi = _openInterestForBalance(ds, m, indexMid, false);
        c.diffUsd = c.longOi > c.shortOi ? c.longOi - c.shortOi : c.shortOi - c.longOi;
        c.increaseFactor = ds.getUint(Keys.marketKey(Keys.FUNDING_INCREASE_FACTOR_PER_SECOND, market));
        if (c.diffUsd == 0 && c.increaseFactor == 0) return (0, true, 0);
        if (c.longOi + c.shortOi == 0) revert UnableToGetFundingFactorEmptyOpenInterest();
        c.diffFactor = _toFactor(
            _applyExponentFactor(c.diffUsd, ds.getUint(Keys.marketKey(Keys.FUNDING_EXPONENT_FACTOR, market))),
            c.longOi + c.shortOi
        );
        c.maxFactor = ds.getUint(Keys.marketKey(Keys.MAX_FUNDING_FACTOR_PER_SECOND, market));
        if (c.increaseFactor == 0) {
            uint256 f =
                LiteMarketUtils.applyFactor(c.diffFactor, ds.getUint(Keys.marketKey(Keys.FUNDING_FACTOR, market)));
            return (f > c.maxFactor ? c.maxFactor : f, c.longOi > c.shortOi, 0);
        }
        // adaptive funding: SAVED_FUNDING_FACTOR_PER_SECOND > 0 when longs pay
        c.saved = ds.getInt(Keys.marketKey(Keys.SAVED_FUNDING_FACTOR_PER_SECOND, market));
        c.nextSaved = c.saved;
        if ((c.saved > 0 && c.longOi > c.shortOi) || (c.saved < 0 && c.shortOi > c.longOi)) {
            if (c.diffFactor > ds.getUint(Keys.marketKey(Keys.THRESHOLD_FOR_STABLE_FUNDING, market))) c.change = 1;
            else if (c.diffFactor < ds.getUint(Keys.marketKey(Keys.THRESHOLD_FOR_DECREASE_FUNDING, market))) c.change = 2;
        } else {
            c.change = 1;
        }
        if (c.change == 1) {
            int256 increase = int256(LiteMarketUtils.applyFactor(c.diffFactor, c.increaseFactor)) * int256(duration);
            c.nextSaved = c.saved + (c.longOi < c.shortOi ? -increase : increase);
        }
        uint256 magnitude = _abs(c.saved);
        if (c.change == 2 && magnitude != 0) {
            uint256 decrease = ds.getUint(Keys.marketKey(Keys.FUNDING_DECREASE_FACTOR_PER_SECOND, market)) * duration;
            int256 sign = c.saved > 0 ? int256(1) : int256(-1);
            c.nextSaved = magnitude <= decrease ? sign : int256(magnitude - decrease) * sign;
        }
        c.nextSaved = _boundMagnitude(c.nextSaved, 0, c.maxFactor);
        int256 withMin = _boundMagnitude(
            c.nextSaved, ds.getUint(Keys.marketKey(Keys.MIN_FUNDING_FACTOR_PER_SECOND, market)), c.maxFactor
        );
        return (_abs(withMin), withMin > 0, c.nextSaved);
    }

    function _abs(int256 x) internal pure returns (uint256) {
        return uint256(x >= 0 ? x : -x);
    }

    /// Calc.boundMagnitude: |value| clamped to [min, max], the sign kept (0 counts as positive).
    function _boundMagnitude(int256 value, uint256 min, uint256 max) internal pure returns (int256) {
        uint256 magnitude = _abs(value);
        if (magnitude < min) magnitude = min;
        if (magnitude > max) magnitude = max;
        return value < 0 ? -int256(magnitude) : int256(magnitude);
    }

    /// gmx-synthetics Reader.getAccountPositionInfoList (contracts/reader/ReaderPositionUtils.sol): each
    /// position of `account` (its keys `start`..`end`) valued as if closed in full at the prices given
    /// for its market (reverts EmptyMarketPrice when its market is not in `markets`). The values are
    /// this contract's: P&L at the price that minimizes it (no pool cap, so basePnlUsd ==
    /// uncappedBasePnlUsd); no price impact of the close itself (priceImpactUsd 0, so
    /// pnlAfterPriceImpactUsd == basePnlUsd, as upstream it leaves the pending impact out); the pending
    /// impact in full (executionPriceResult.proportionalPendingImpactUsd == totalImpactUsd, uncapped);
    /// the closing fee (positionFeeAmount, at the market's POSITION_FEE_FACTOR for whether closing the
    /// whole position improves the long/short balance, also reported as
    /// executionPriceResult.balanceWasImproved) and the pending borrowing and funding fees and claimable
    /// funding a test set (GmxCore.setPositionPendingValues). No referral or UI fees, no fee split
    /// (their fields are 0; `referralStorage` is not read).
    function getAccountPositionInfoList(
        GmxCore dataStore,
        address referralStorage,
        address account,
        address[] memory markets,
        MarketUtils.MarketPrices[] memory marketPrices,
        address uiFeeReceiver,
        uint256 start,
        uint256 end
    ) external view returns (ReaderPositionUtils.PositionInfo[] memory out) {
        referralStorage;
        bytes32[] memory keys = dataStore.getAccountPositionKeys(account);
        if (end > keys.length) end = keys.length;
        if (start >= end) return new ReaderPositionUtils.PositionInfo[](0);
        out = new ReaderPositionUtils.PositionInfo[](end - start);
        for (uint256 i = start; i < end; i++) {
            Position.Props memory p = dataStore.getPosition(keys[i]);
            out[i - start] =
                _positionInfo(dataStore, keys[i], p, _pricesOf(markets, marketPrices, p.addresses.market), uiFeeReceiver);
        }
    }

    function _pricesOf(address[] memory markets, MarketUtils.MarketPrices[] memory prices, address market)
        internal
        pure
        returns (MarketUtils.MarketPrices memory)
    {
        for (uint256 i = 0; i < markets.length; i++) {
            if (markets[i] == market) return prices[i];
        }
        revert EmptyMarketPrice(market);
    }

    /// MarketUtils.getCachedTokenPrice.
    function _cachedTokenPrice(address token, Market.Props memory m, MarketUtils.MarketPrices memory prices)
        internal
        pure
        returns (Price.Props memory)
    {
        if (token == m.longToken) return prices.longTokenPrice;
        if (token == m.shortToken) return prices.shortTokenPrice;
        if (token == m.indexToken) return prices.indexTokenPrice;
        revert UnableToGetCachedTokenPrice(token, m.marketToken);
    }

    function _positionInfo(
        GmxCore dataStore,
        bytes32 key,
        Position.Props memory p,
        MarketUtils.MarketPrices memory prices,
        address uiFeeReceiver
    ) internal view returns (ReaderPositionUtils.PositionInfo memory info) {
        if (p.addresses.account == address(0)) revert EmptyPosition();
        info.positionKey = key;
        info.position = p;
        Market.Props memory m = dataStore.getMarket(p.addresses.market);
        (uint256 feeFactor, bool improved) = LiteMarketUtils.positionFeeFactor(
            IDataStoreUint(address(dataStore)), m, p.flags.isLong, p.numbers.sizeInUsd, false
        );
        info.executionPriceResult.balanceWasImproved = improved;
        info.fees =
            _fees(dataStore, key, p, _cachedTokenPrice(p.addresses.collateralToken, m, prices), feeFactor, uiFeeReceiver);
        // PositionUtils.getPositionPnlUsd of the whole position: long at the min price, short at the max.
        uint256 pnlPrice = p.flags.isLong ? prices.indexTokenPrice.min : prices.indexTokenPrice.max;
        int256 value = int256(p.numbers.sizeInTokens * pnlPrice);
        int256 size = int256(p.numbers.sizeInUsd);
        info.basePnlUsd = p.flags.isLong ? value - size : size - value;
        info.uncappedBasePnlUsd = info.basePnlUsd;
        info.executionPriceResult.executionPrice = pnlPrice;
        // ReaderPricingUtils._getProportionalPendingImpactValues for the whole size: positive impact at
        // the min price, negative at the max.
        int256 impact = p.numbers.pendingImpactAmount;
        info.executionPriceResult.proportionalPendingImpactUsd =
            impact * int256(impact > 0 ? prices.indexTokenPrice.min : prices.indexTokenPrice.max);
        info.executionPriceResult.totalImpactUsd = info.executionPriceResult.proportionalPendingImpactUsd;
        info.pnlAfterPriceImpactUsd = info.executionPriceResult.priceImpactUsd + info.basePnlUsd;
    }

    /// The fees of closing the whole position (PositionPricingUtils.getPositionFees with the pending
    /// borrowing and funding values), amounts in collateral token units at the collateral's min price.
    function _fees(
        GmxCore dataStore,
        bytes32 key,
        Position.Props memory p,
        Price.Props memory collateralPrice,
        uint256 positionFeeFactor,
        address uiFeeReceiver
    ) internal view returns (PositionPricingUtils.PositionFees memory f) {
        GmxCore.PendingFees memory pending = dataStore.getPositionPendingFees(key);
        f.collateralTokenPrice = collateralPrice;
        f.positionFeeFactor = positionFeeFactor;
        // PositionPricingUtils.getPositionFeesAfterReferral: applyFactor(sizeDeltaUsd, factor) / collateral min price.
        f.positionFeeAmount = LiteMarketUtils.applyFactor(p.numbers.sizeInUsd, positionFeeFactor) / collateralPrice.min;
        f.borrowing.borrowingFeeUsd = pending.borrowingFeeUsd;
        f.borrowing.borrowingFeeAmount = pending.borrowingFeeUsd / collateralPrice.min;
        f.funding.fundingFeeAmount = pending.fundingFeeAmount;
        f.funding.claimableLongTokenAmount = pending.claimableLongTokenAmount;
        f.funding.claimableShortTokenAmount = pending.claimableShortTokenAmount;
        f.ui.uiFeeReceiver = uiFeeReceiver;
        f.totalCostAmountExcludingFunding = f.positionFeeAmount + f.borrowing.borrowingFeeAmount;
        f.totalCostAmount = f.totalCostAmountExcludingFunding + f.funding.fundingFeeAmount;
    }

    function getMarkets(GmxCore dataStore, uint256 start, uint256 end) external view returns (Market.Props[] memory out) {
        uint256 n = dataStore.getMarketCount();
        if (end > n) end = n;
        if (start >= end) return new Market.Props[](0);
        out = new Market.Props[](end - start);
        for (uint256 i = start; i < end; i++) out[i - start] = dataStore.getMarketAt(i);
    }

    function getAccountPositions(GmxCore dataStore, address account, uint256 start, uint256 end)
        external
        view
        returns (Position.Props[] memory out)
    {
        bytes32[] memory keys = dataStore.getAccountPositionKeys(account);
        if (end > keys.length) end = keys.length;
        if (start >= end) return new Position.Props[](0);
        out = new Position.Props[](end - start);
        for (uint256 i = start; i < end; i++) out[i - start] = dataStore.getPosition(keys[i]);
    }

    function getOrder(GmxCore dataStore, bytes32 key) external view returns (Order.Props memory) {
        return dataStore.getOrder(key);
    }

    /// gmx-synthetics Reader.getAccountOrders (ReaderUtils.getAccountOrders): the account's orders at
    /// positions `start`..`end` of its ACCOUNT_ORDER_LIST, each with its key.
    function getAccountOrders(GmxCore dataStore, address account, uint256 start, uint256 end)
        external
        view
        returns (ReaderUtils.OrderInfo[] memory out)
    {
        bytes32[] memory keys = dataStore.getBytes32ValuesAt(Keys.accountOrderListKey(account), start, end);
        out = new ReaderUtils.OrderInfo[](keys.length);
        for (uint256 i = 0; i < keys.length; i++) out[i] = ReaderUtils.OrderInfo(keys[i], dataStore.getOrder(keys[i]));
    }
}
