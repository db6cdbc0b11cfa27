// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

// A simplified Lyra v1 "Newport" options AMM for local chains. Every function, event, error and struct the
// adapter uses has the name, signature and field order of derivexyz/v1-core (Newport, ea9e36a), on the
// contract that declares it there: OptionMarket (openPosition/closePosition with TradeInputParameters and
// Result, getLiveBoards/getOptionBoard/getBoardStrikes/getStrike, boardToPriceAtExpiry,
// getSettlementParameters, baseAsset, settleExpiredBoard, event Trade with its TradeResult[] and
// LiquidationEventData), OptionToken
// (getOwnerPositions/getOptionPosition, event PositionUpdated), OptionGreekCache (getStrikeCache,
// getGlobalNetDelta, getGreekCacheParams, getIvGWAV/getSkewGWAV, getMinCollateral) and the exchange
// adapter (getSpotPriceForMarket). Functions marked "lite only" exist for test set-up and are not in the
// adapter's ABI (see lyraLiteFixtureAbi in src/fixture.ts). Economics are simplified: the greek cache holds
// per-strike prices and Greeks pushed by an updater (the real one computes Black-Scholes on chain at a
// GWAV vol), GWAVs are the current values; a trade pays that price widened by a spread and a linear size
// impact, plus a fee on spot notional, in one iteration; of the pricer's trade limits only the trading
// cutoff and the delta range are checked (off until set); collateral and pool funds both sit in the
// OptionMarket (no LiquidityPool or ShortCollateral contracts), which checks the LiquidityPool's free
// liquidity as v1-core does (unlimited until set). 18-decimal fixed point; the quote token may have other
// decimals: as v1-core (ConvertDecimals), amounts are converted at the transfer, rounded up when pulled from
// the trader and down when paid out.

interface IERC20Lite {
    function transfer(address to, uint256 amount) external returns (bool);
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
    function decimals() external view returns (uint8);
}

interface IOptionMarket {
    enum OptionType {
        LONG_CALL,
        LONG_PUT,
        SHORT_CALL_BASE,
        SHORT_CALL_QUOTE,
        SHORT_PUT_QUOTE
    }
    enum TradeDirection {
        OPEN,
        CLOSE,
        LIQUIDATE
    }
    struct TradeInputParameters {
        uint256 strikeId;
        uint256 positionId;
        uint256 iterations;
        OptionType optionType;
        uint256 amount;
        uint256 setCollateralTo;
        uint256 minTotalCost;
        uint256 maxTotalCost;
        address referrer;
    }
    struct Result {
        uint256 positionId;
        uint256 totalCost;
        uint256 totalFee;
    }
    struct Strike {
        uint256 id;
        uint256 strikePrice;
        uint256 skew;
        uint256 longCall;
        uint256 shortCallBase;
        uint256 shortCallQuote;
        uint256 longPut;
        uint256 shortPut;
        uint256 boardId;
    }
    struct OptionBoard {
        uint256 id;
        uint256 expiry;
        uint256 iv;
        bool frozen;
        uint256[] strikeIds;
    }
    struct TradeEventData {
        uint256 strikeId;
        uint256 expiry;
        uint256 strikePrice;
        OptionType optionType;
        TradeDirection tradeDirection;
        uint256 amount;
        uint256 setCollateralTo;
        bool isForceClose;
        uint256 spotPrice;
        uint256 reservedFee;
        uint256 totalCost;
    }
    struct LiquidationEventData {
        address rewardBeneficiary;
        address caller;
        uint256 returnCollateral;
        uint256 lpPremiums;
        uint256 lpFee;
        uint256 liquidatorFee;
        uint256 smFee;
        uint256 insolventAmount;
    }
}

/// The structs of v1-core's OptionMarketPricer that the Trade event carries (one TradeResult per iteration).
interface IOptionMarketPricer {
    struct VegaUtilFeeComponents {
        int256 preTradeAmmNetStdVega;
        int256 postTradeAmmNetStdVega;
        uint256 vegaUtil;
        uint256 volTraded;
        uint256 NAV;
        uint256 vegaUtilFee;
    }
    struct VarianceFeeComponents {
        uint256 varianceFeeCoefficient;
        uint256 vega;
        uint256 vegaCoefficient;
        uint256 skew;
        uint256 skewCoefficient;
        uint256 ivVariance;
        uint256 ivVarianceCoefficient;
        uint256 varianceFee;
    }
    struct TradeResult {
        uint256 amount;
        uint256 premium;
        uint256 optionPriceFee;
        uint256 spotPriceFee;
        VegaUtilFeeComponents vegaUtilFee;
        VarianceFeeComponents varianceFee;
        uint256 totalFee;
        uint256 totalCost;
        uint256 volTraded;
        uint256 newBaseIv;
        uint256 newSkew;
    }
}

/// The struct of v1-core's LiquidityPool that its LockingMoreQuoteThanIsFree error carries.
interface ILiquidityPool {
    struct Collateral {
        // puts sold by the pool × strike, quote
        uint256 quote;
        // calls sold by the pool, base
        uint256 base;
    }
}

interface IOptionToken {
    enum PositionState {
        EMPTY,
        ACTIVE,
        CLOSED,
        LIQUIDATED,
        SETTLED,
        MERGED
    }
    enum PositionUpdatedType {
        OPENED,
        ADJUSTED,
        CLOSED,
        SPLIT_FROM,
        SPLIT_INTO,
        MERGED,
        MERGED_INTO,
        SETTLED,
        LIQUIDATED,
        TRANSFER
    }
    struct OptionPosition {
        uint256 positionId;
        uint256 strikeId;
        IOptionMarket.OptionType optionType;
        uint256 amount;
        uint256 collateral;
        PositionState state;
    }
    struct PositionWithOwner {
        uint256 positionId;
        uint256 strikeId;
        IOptionMarket.OptionType optionType;
        uint256 amount;
        uint256 collateral;
        PositionState state;
        address owner;
    }
}

interface IOptionGreekCache {
    struct StrikeGreeks {
        int256 callDelta;
        int256 putDelta;
        uint256 stdVega;
        uint256 callPrice;
        uint256 putPrice;
    }
    struct StrikeCache {
        uint256 id;
        uint256 boardId;
        uint256 strikePrice;
        uint256 skew;
        StrikeGreeks greeks;
        int256 callExposure;
        int256 putExposure;
        uint256 skewVariance;
    }
    struct GreekCacheParameters {
        uint256 maxStrikesPerBoard;
        uint256 acceptableSpotPricePercentMove;
        uint256 staleUpdateDuration;
        uint256 varianceIvGWAVPeriod;
        uint256 varianceSkewGWAVPeriod;
        uint256 optionValueIvGWAVPeriod;
        uint256 optionValueSkewGWAVPeriod;
        uint256 gwavSkewFloor;
        uint256 gwavSkewCap;
    }
}

/// Spot price per market (the Newport GMXAdapter's role, v1-core BaseExchangeAdapter's ABI), set by the owner in tests.
contract ExchangeAdapter {
    address public immutable owner;
    mapping(address => uint256) internal spot;
    error Unauthorized(address caller);

    constructor() {
        owner = msg.sender;
    }

    /// Lite only (the real adapters read Chainlink/GMX/Synthetix feeds).
    function setSpotPrice(address optionMarket, uint256 price) external {
        if (msg.sender != owner) revert Unauthorized(msg.sender);
        spot[optionMarket] = price;
    }

    /// pricing: BaseExchangeAdapter.PriceType (0 MIN_PRICE, 1 MAX_PRICE, 2 REFERENCE, 3 FORCE_MIN, 4 FORCE_MAX).
    /// The real adapters widen the min and max prices around the reference by feed spreads and swap fees;
    /// the lite one by a fixed 0.1 %.
    function getSpotPriceForMarket(address optionMarket, uint8 pricing) external view returns (uint256) {
        uint256 p = spot[optionMarket];
        if (pricing == 0 || pricing == 3) return p * 999 / 1000;
        if (pricing == 1 || pricing == 4) return p * 1001 / 1000;
        return p;
    }

    /// The price a board settles at (the real adapters read it as of `expiry`; the lite one has only now).
    function getSettlementPriceForMarket(address optionMarket, uint256 expiry) external view returns (uint256) {
        expiry;
        return spot[optionMarket];
    }
}

contract OptionToken is IOptionToken {
    address public immutable owner;
    address public optionMarket;
    uint256 public nextId = 1;
    mapping(uint256 => OptionPosition) internal positions;
    mapping(uint256 => address) public ownerOf;
    mapping(address => uint256[]) internal ownerPositionIds;

    event PositionUpdated(
        uint256 indexed positionId,
        address indexed owner,
        PositionUpdatedType indexed updatedType,
        OptionPosition position,
        uint256 timestamp
    );

    error Unauthorized(address caller);

    constructor() {
        owner = msg.sender;
    }

    function init(address market) external {
        if (msg.sender != owner || optionMarket != address(0)) revert Unauthorized(msg.sender);
        optionMarket = market;
    }

    function write(address account, OptionPosition memory p, PositionUpdatedType t) external returns (uint256 id) {
        if (msg.sender != optionMarket) revert Unauthorized(msg.sender);
        id = p.positionId;
        if (id == 0) {
            id = nextId++;
            p.positionId = id;
            ownerOf[id] = account;
            ownerPositionIds[account].push(id);
        }
        positions[id] = p;
        emit PositionUpdated(id, account, t, p, block.timestamp);
    }

    /// Test set-up only (not in v1-core): the deployer writes a position for `account` as another front end
    /// would have opened it (a base-collateralised short call, which the lite OptionMarket does not open).
    function liteWritePosition(address account, OptionPosition memory p) external returns (uint256 id) {
        if (msg.sender != owner) revert Unauthorized(msg.sender);
        id = nextId++;
        p.positionId = id;
        ownerOf[id] = account;
        ownerPositionIds[account].push(id);
        positions[id] = p;
        emit PositionUpdated(id, account, PositionUpdatedType.OPENED, p, block.timestamp);
    }

    function getOptionPosition(uint256 positionId) external view returns (OptionPosition memory) {
        return positions[positionId];
    }

    /// Positions an owner holds. v1-core returns the owner's ERC-721 tokens, and burns a token when its
    /// position is closed, settled, liquidated or merged: what is left is ACTIVE, as here.
    function getOwnerPositions(address target) external view returns (OptionPosition[] memory out) {
        uint256[] storage ids = ownerPositionIds[target];
        uint256 n = 0;
        for (uint256 i = 0; i < ids.length; i++) if (positions[ids[i]].state == PositionState.ACTIVE) n++;
        out = new OptionPosition[](n);
        uint256 j = 0;
        for (uint256 i = 0; i < ids.length; i++) {
            if (positions[ids[i]].state == PositionState.ACTIVE) out[j++] = positions[ids[i]];
        }
    }
}

contract OptionGreekCache is IOptionGreekCache {
    uint256 internal constant UNIT = 1e18;
    /// Collateral asked of short calls per unit, as a multiple of spot (1.5e18 = 150%); the real cache
    /// prices the short at a shocked spot and vol instead.
    uint256 internal constant SHORT_CALL_COLLATERAL_RATIO = 1.5e18;

    address public immutable owner;
    address public optionMarket;
    mapping(uint256 => StrikeCache) internal strikes;
    uint256[] internal strikeIds;
    mapping(uint256 => uint256) internal boardIv;

    error Unauthorized(address caller);

    constructor() {
        owner = msg.sender;
    }

    function init(address market) external {
        if (msg.sender != owner || optionMarket != address(0)) revert Unauthorized(msg.sender);
        optionMarket = market;
    }

    function addStrike(uint256 strikeId, uint256 boardId, uint256 strikePrice, uint256 skew) external {
        if (msg.sender != optionMarket) revert Unauthorized(msg.sender);
        StrikeCache storage s = strikes[strikeId];
        s.id = strikeId;
        s.boardId = boardId;
        s.strikePrice = strikePrice;
        s.skew = skew;
        strikeIds.push(strikeId);
    }

    function setBoardIv(uint256 boardId, uint256 iv) external {
        if (msg.sender != optionMarket) revert Unauthorized(msg.sender);
        boardIv[boardId] = iv;
    }

    /// Lite only: the updater (owner) pushes prices and Greeks computed off chain at the board iv × skew
    /// (v1-core's updateBoardCachedGreeks computes them on chain).
    function setStrikeGreeks(uint256[] calldata ids, StrikeGreeks[] calldata greeks) external {
        if (msg.sender != owner) revert Unauthorized(msg.sender);
        for (uint256 i = 0; i < ids.length; i++) strikes[ids[i]].greeks = greeks[i];
    }

    function recordTrade(uint256 strikeId, bool isCall, int256 userAmountDelta) external {
        if (msg.sender != optionMarket) revert Unauthorized(msg.sender);
        if (isCall) strikes[strikeId].callExposure += userAmountDelta;
        else strikes[strikeId].putExposure += userAmountDelta;
    }

    function getStrikeCache(uint256 strikeId) external view returns (StrikeCache memory) {
        return strikes[strikeId];
    }

    /// As v1-core: the net delta of the exposures, which are what traders hold (long − short), so this is
    /// the traders' net delta, the amount the pool hedger buys; the pool's own option delta is its opposite.
    /// Base units, 18 decimals.
    function getGlobalNetDelta() external view returns (int256 net) {
        for (uint256 i = 0; i < strikeIds.length; i++) {
            StrikeCache storage s = strikes[strikeIds[i]];
            net += (s.callExposure * s.greeks.callDelta + s.putExposure * s.greeks.putDelta) / 1e18;
        }
    }

    /// GWAV periods and limits (lite values; only the two optionValue periods mean anything here).
    function getGreekCacheParams() external pure returns (GreekCacheParameters memory p) {
        p.maxStrikesPerBoard = 30;
        p.acceptableSpotPricePercentMove = 0.05e18;
        p.staleUpdateDuration = 1 days;
        p.varianceIvGWAVPeriod = 1 days;
        p.varianceSkewGWAVPeriod = 1 days;
        p.optionValueIvGWAVPeriod = 1 days;
        p.optionValueSkewGWAVPeriod = 1 days;
        p.gwavSkewFloor = 0.5e18;
        p.gwavSkewCap = 2e18;
    }

    /// The board's base iv averaged over `secondsAgo` (lite: no averaging, the current one).
    function getIvGWAV(uint256 boardId, uint256 secondsAgo) external view returns (uint256) {
        secondsAgo;
        return boardIv[boardId];
    }

    /// The strike's skew averaged over `secondsAgo` (lite: no averaging, the current one).
    function getSkewGWAV(uint256 strikeId, uint256 secondsAgo) external view returns (uint256) {
        secondsAgo;
        return strikes[strikeId].skew;
    }

    /// Minimum collateral in quote units for a short of `amount` (18 decimals). v1-core's signature; lite
    /// rule: a put needs strike × amount, a quote-collateralized call 150 % of spot × amount.
    function getMinCollateral(
        IOptionMarket.OptionType optionType,
        uint256 strikePrice,
        uint256 expiry,
        uint256 spotPrice,
        uint256 amount
    ) external pure returns (uint256) {
        expiry;
        if (optionType == IOptionMarket.OptionType.SHORT_PUT_QUOTE) return strikePrice * amount / UNIT;
        if (optionType == IOptionMarket.OptionType.SHORT_CALL_QUOTE) {
            return spotPrice * amount / UNIT * SHORT_CALL_COLLATERAL_RATIO / UNIT;
        }
        return 0;
    }
}

contract OptionMarket is IOptionMarket, IOptionMarketPricer, ILiquidityPool {
    uint256 internal constant UNIT = 1e18;
    /// Share of the fee reserved for the DAO, reported as the Trade event's reservedFee
    /// (v1-core OptionMarketParameters.feePortionReserved; the lite keeps all fees in the market).
    uint256 internal constant FEE_PORTION_RESERVED = 0.2e18;

    address public immutable owner;
    IERC20Lite public immutable quoteAsset;
    /// The quote token's decimals (v1-core reads quoteAsset.decimals() at each transfer).
    uint8 internal immutable quoteDecimals;
    /// As v1-core: the underlying's token, which base-collateralised short calls lock (held here: the lite
    /// has no ShortCollateral) and settleOptions returns to their owners.
    IERC20Lite public immutable baseAsset;
    uint8 internal immutable baseDecimals;
    OptionToken public immutable optionToken;
    OptionGreekCache public immutable greekCache;
    ExchangeAdapter public immutable exchangeAdapter;

    /// Lite only (v1-core prices fees in the OptionMarketPricer): spread on the cached price each side,
    /// 18 decimals (0.01e18 = 1%).
    uint256 public spreadRate;
    /// Extra price impact per unit traded, 18 decimals of the price per 1e18 amount.
    uint256 public impactPerUnit;
    /// Fee as a fraction of spot notional, 18 decimals (0.0005e18 = 5 bps).
    uint256 public spotFeeRate;
    /// Two of v1-core OptionMarketPricer's TradeLimitParameters (tradingCutoff, seconds; minDelta, 18
    /// decimals), checked as its updateCacheAndGetTradeResult does; 0 (the default) checks nothing.
    uint256 internal tradingCutoff;
    int256 internal minDelta;
    /// Lite only: the LiquidityPool's quote for option collateral and premiums before what it has locked
    /// (v1-core: its quote balance less outstanding settlements, queued deposits, pending hedge liquidity
    /// and queued withdrawals), 18 decimals; premiums do not move it. Unlimited until set.
    uint256 internal poolQuote = type(uint256).max;
    /// As v1-core LiquidityPool.lockedCollateral: what the pool locked for the longs it sold (puts ×
    /// strike in quote, calls in base), freed when they are closed or their board settles.
    Collateral internal lockedCollateral;

    uint256 internal nextBoardId = 1;
    uint256 internal nextStrikeId = 1;
    mapping(uint256 => OptionBoard) internal boards;
    uint256[] internal boardIds;
    mapping(uint256 => Strike) internal strikes;
    /// Spot fixed for a board by settleExpiredBoard (v1-core's public mapping); 0 until then.
    mapping(uint256 => uint256) public boardToPriceAtExpiry;
    /// As v1-core: per strike of a settled board, the base per option a base-collateralised short call
    /// owes the pool ((price - strike) / price / (1 - staticBaseSettlementFee), at most 1), 18 decimals.
    mapping(uint256 => uint256) internal strikeToBaseReturnedRatio;
    /// As v1-core OptionMarketParameters.staticBaseSettlementFee, 18 decimals; 0 until set (lite only setter).
    uint256 internal staticBaseSettlementFee;

    event BoardCreated(uint256 indexed boardId, uint256 expiry, uint256 baseIv, bool frozen);
    event StrikeAdded(uint256 indexed boardId, uint256 indexed strikeId, uint256 strikePrice, uint256 skew);
    event Trade(
        address indexed trader,
        uint256 indexed positionId,
        address indexed referrer,
        TradeEventData trade,
        TradeResult[] tradeResults,
        LiquidationEventData liquidation,
        uint256 longScaleFactor,
        uint256 timestamp
    );

    error Unauthorized(address caller);
    error InvalidStrikeId(address thrower, uint256 strikeId);
    error BoardIsFrozen(address thrower, uint256 boardId);
    error BoardExpired(address thrower, uint256 boardId, uint256 boardExpiry, uint256 currentTime);
    error TotalCostOutsideOfSpecifiedBounds(address thrower, uint256 totalCost, uint256 minCost, uint256 maxCost);
    error InvalidBoardId(address thrower, uint256 boardId);
    error BoardNotExpired(address thrower, uint256 boardId);
    error BoardAlreadySettled(address thrower, uint256 boardId);
    // v1-core throws these from OptionToken.adjustPosition, inside the OptionMarket's trade.
    error CannotOpenZeroAmount(address thrower);
    error OnlyOwnerCanAdjustPosition(address thrower, uint256 positionId, address trader, address owner);
    error CannotAdjustInvalidPosition(address thrower, uint256 positionId, bool invalidPositionId, bool positionInactive, bool strikeMismatch, bool optionTypeMismatch);
    error FullyClosingWithNonZeroSetCollateral(address thrower, uint256 positionId, uint256 setCollateralTo);
    error AdjustmentResultsInMinimumCollateralNotBeingMet(address thrower, IOptionToken.OptionPosition position, uint256 spotPrice);
    // v1-core ShortCollateral's, thrown by settleOptions.
    error BoardMustBeSettled(address thrower, IOptionToken.PositionWithOwner position);
    // v1-core LiquidityPool's, thrown inside the OptionMarket's trade (lockPutCollateral,
    // lockCallCollateral, sendShortPremium).
    error LockingMoreQuoteThanIsFree(address thrower, uint256 quoteToLock, uint256 freeLiquidity, Collateral lockedCollateral);
    error SendPremiumNotEnoughCollateral(address thrower, uint256 premium, uint256 reservedFee, uint256 freeLiquidity);
    // v1-core OptionMarketPricer's trade limits, thrown inside the OptionMarket's trade.
    error TradingCutoffReached(address thrower, uint256 tradingCutoff, uint256 boardExpiry, uint256 currentTime);
    error TradeDeltaOutOfRange(address thrower, int256 strikeCallDelta, int256 minDelta, int256 maxDelta);
    // Lite only.
    error ShortBaseNotSupported(address thrower);
    error StrikeGreeksMissing(address thrower, uint256 strikeId);
    error PositionNotActive(address thrower, uint256 positionId);

    constructor(
        IERC20Lite quote,
        IERC20Lite base,
        OptionToken token,
        OptionGreekCache cache,
        ExchangeAdapter adapter,
        uint256 spreadRate_,
        uint256 impactPerUnit_,
        uint256 spotFeeRate_
    ) {
        owner = msg.sender;
        quoteAsset = quote;
        quoteDecimals = quote.decimals();
        baseAsset = base;
        baseDecimals = base.decimals();
        optionToken = token;
        greekCache = cache;
        exchangeAdapter = adapter;
        spreadRate = spreadRate_;
        impactPerUnit = impactPerUnit_;
        spotFeeRate = spotFeeRate_;
    }

    function createOptionBoard(uint256 expiry, uint256 baseIV, uint256[] calldata strikePrices, uint256[] calldata skews, bool frozen)
        external
        returns (uint256 boardId)
    {
        if (msg.sender != owner) revert Unauthorized(msg.sender);
        boardId = nextBoardId++;
        OptionBoard storage b = boards[boardId];
        b.id = boardId;
        b.expiry = expiry;
        b.iv = baseIV;
        b.frozen = frozen;
        boardIds.push(boardId);
        greekCache.setBoardIv(boardId, baseIV);
        emit BoardCreated(boardId, expiry, baseIV, frozen);
        for (uint256 i = 0; i < strikePrices.length; i++) {
            uint256 sid = nextStrikeId++;
            strikes[sid] = Strike(sid, strikePrices[i], skews[i], 0, 0, 0, 0, 0, boardId);
            b.strikeIds.push(sid);
            greekCache.addStrike(sid, boardId, strikePrices[i], skews[i]);
            emit StrikeAdded(boardId, sid, strikePrices[i], skews[i]);
        }
    }

    /// Lite only (v1-core: the LiquidityPool's quote, moved by deposits, withdrawals, trades and hedging).
    function setLitePoolLiquidity(uint256 poolQuote_) external {
        if (msg.sender != owner) revert Unauthorized(msg.sender);
        poolQuote = poolQuote_;
    }

    /// Lite only (v1-core: OptionMarketPricer.setTradeLimitParams, all of TradeLimitParameters).
    function setLiteTradeLimits(uint256 tradingCutoff_, int256 minDelta_) external {
        if (msg.sender != owner) revert Unauthorized(msg.sender);
        tradingCutoff = tradingCutoff_;
        minDelta = minDelta_;
    }

    /// Lite only (v1-core: OptionMarket.setOptionMarketParams, its staticBaseSettlementFee).
    function setLiteBaseSettlementFee(uint256 fee) external {
        if (msg.sender != owner) revert Unauthorized(msg.sender);
        staticBaseSettlementFee = fee;
    }

    function setBoardFrozen(uint256 boardId, bool frozen) external {
        if (msg.sender != owner) revert Unauthorized(msg.sender);
        boards[boardId].frozen = frozen;
    }

    /// As v1-core: anyone may settle a board once expired, fixing its price (the exchange adapter's
    /// settlement price) and taking it off the live boards. Simplified: no pool or collateral accounting;
    /// positions are paid by settleOptions.
    function settleExpiredBoard(uint256 boardId) external {
        OptionBoard storage b = boards[boardId];
        if (boardId == 0 || b.id != boardId) revert InvalidBoardId(address(this), boardId);
        if (block.timestamp < b.expiry) revert BoardNotExpired(address(this), boardId);
        if (boardToPriceAtExpiry[boardId] != 0) revert BoardAlreadySettled(address(this), boardId);
        uint256 price = exchangeAdapter.getSettlementPriceForMarket(address(this), b.expiry);
        boardToPriceAtExpiry[boardId] = price;
        // As v1-core (LiquidityPool.boardSettlement): the collateral locked for the board's longs is freed.
        for (uint256 i = 0; i < b.strikeIds.length; i++) {
            Strike storage st = strikes[b.strikeIds[i]];
            _freeCollateral(st.longPut * st.strikePrice / UNIT, st.longCall);
            // As v1-core _settleExpiredBoard: the base per option an in-the-money base short owes the pool.
            if (price > st.strikePrice) {
                uint256 ratio = (price - st.strikePrice) * UNIT / price * UNIT / (UNIT - staticBaseSettlementFee);
                strikeToBaseReturnedRatio[st.id] = ratio > UNIT ? UNIT : ratio;
            }
        }
    }

    /// As v1-core: a strike's price, its board's settlement price (0 until settled), the base ratio a
    /// base-collateralised short call owes at settlement and the longs' scale factor (lite: always 1).
    function getSettlementParameters(uint256 strikeId)
        external
        view
        returns (uint256 strikePrice, uint256 priceAtExpiry, uint256 strikeToBaseReturned, uint256 longScaleFactor)
    {
        return (
            strikes[strikeId].strikePrice,
            boardToPriceAtExpiry[strikes[strikeId].boardId],
            strikeToBaseReturnedRatio[strikeId],
            UNIT
        );
    }

    /// Lite only: v1-core's ShortCollateral.settleOptions (same signature), here because the lite keeps
    /// collateral and pool funds in this contract. Anyone may settle positions of a settled board: a long
    /// gets its payoff at the board's price, a quote-collateralised short its collateral less that payoff
    /// (quote), a base-collateralised short call its collateral less strikeToBaseReturnedRatio × amount
    /// (base, as v1-core _sendShortCallBaseProceeds; nothing when that is more than the collateral); the
    /// position becomes SETTLED (v1-core burns its token) and leaves its owner's positions.
    function settleOptions(uint256[] calldata positionIds) external {
        for (uint256 i = 0; i < positionIds.length; i++) {
            IOptionToken.OptionPosition memory pos = optionToken.getOptionPosition(positionIds[i]);
            address holder = optionToken.ownerOf(positionIds[i]);
            if (pos.state != IOptionToken.PositionState.ACTIVE) revert PositionNotActive(address(this), positionIds[i]);
            Strike storage st = strikes[pos.strikeId];
            uint256 price = boardToPriceAtExpiry[st.boardId];
            if (price == 0) {
                revert BoardMustBeSettled(
                    address(this),
                    IOptionToken.PositionWithOwner(
                        pos.positionId, pos.strikeId, pos.optionType, pos.amount, pos.collateral, pos.state, holder
                    )
                );
            }
            uint256 intrinsic;
            if (_isCall(pos.optionType)) intrinsic = price > st.strikePrice ? price - st.strikePrice : 0;
            else intrinsic = st.strikePrice > price ? st.strikePrice - price : 0;
            uint256 payoff = intrinsic * pos.amount / UNIT;
            pos.state = IOptionToken.PositionState.SETTLED;
            optionToken.write(holder, pos, IOptionToken.PositionUpdatedType.SETTLED);
            if (pos.optionType == OptionType.SHORT_CALL_BASE) {
                uint256 owed = strikeToBaseReturnedRatio[pos.strikeId] * pos.amount / UNIT;
                uint256 back = pos.collateral > owed ? pos.collateral - owed : 0;
                // as v1-core ConvertDecimals.convertFrom18 (rounded down)
                uint256 units = baseDecimals >= 18 ? back * 10 ** (baseDecimals - 18) : back / 10 ** (18 - baseDecimals);
                if (units > 0) require(baseAsset.transfer(holder, units), "TRANSFER_FAILED");
                continue;
            }
            uint256 pay;
            if (_isLong(pos.optionType)) pay = payoff;
            else pay = pos.collateral > payoff ? pos.collateral - payoff : 0;
            if (pay > 0) require(quoteAsset.transfer(holder, _from18Down(pay)), "TRANSFER_FAILED");
        }
    }

    /// As v1-core: boards stay live until settleExpiredBoard, also after their expiry.
    function getLiveBoards() external view returns (uint256[] memory live) {
        uint256 n = 0;
        for (uint256 i = 0; i < boardIds.length; i++) if (boardToPriceAtExpiry[boardIds[i]] == 0) n++;
        live = new uint256[](n);
        uint256 j = 0;
        for (uint256 i = 0; i < boardIds.length; i++) {
            if (boardToPriceAtExpiry[boardIds[i]] == 0) live[j++] = boardIds[i];
        }
    }

    function getOptionBoard(uint256 boardId) external view returns (OptionBoard memory) {
        return boards[boardId];
    }

    function getBoardStrikes(uint256 boardId) external view returns (uint256[] memory) {
        return boards[boardId].strikeIds;
    }

    function getStrike(uint256 strikeId) external view returns (Strike memory) {
        return strikes[strikeId];
    }

    function getStrikeAndExpiry(uint256 strikeId) external view returns (uint256 strikePrice, uint256 expiry) {
        Strike storage s = strikes[strikeId];
        return (s.strikePrice, boards[s.boardId].expiry);
    }

    function openPosition(TradeInputParameters memory params) external returns (Result memory) {
        return _trade(params, true);
    }

    function closePosition(TradeInputParameters memory params) external returns (Result memory) {
        return _trade(params, false);
    }

    function _isLong(OptionType t) internal pure returns (bool) {
        return t == OptionType.LONG_CALL || t == OptionType.LONG_PUT;
    }

    function _isCall(OptionType t) internal pure returns (bool) {
        return t == OptionType.LONG_CALL || t == OptionType.SHORT_CALL_BASE || t == OptionType.SHORT_CALL_QUOTE;
    }

    struct TradeState {
        Strike strike;
        uint256 expiry;
        uint256 iv;
        uint256 spot;
        bool isOpen;
        bool isLong;
        bool isCall;
        bool isBuy;
        uint256 premium;
        uint256 fee;
        uint256 totalCost;
        uint256 collateralIn;
        uint256 collateralOut;
        IOptionToken.OptionPosition pos;
    }

    function _trade(TradeInputParameters memory p, bool isOpen) internal returns (Result memory r) {
        if (p.optionType == OptionType.SHORT_CALL_BASE) revert ShortBaseNotSupported(address(this));
        if (p.amount == 0) revert CannotOpenZeroAmount(address(this));
        TradeState memory s;
        s.isOpen = isOpen;
        s.isLong = _isLong(p.optionType);
        s.isCall = _isCall(p.optionType);
        // Opening a long or closing a short buys from the AMM.
        s.isBuy = isOpen == s.isLong;
        _loadMarket(p, s);
        _loadPosition(p, s);
        _price(p, s);
        _collateral(p, s);
        _routePool(p, s);
        r.positionId = _writePosition(p, s);
        r.totalCost = s.totalCost;
        r.totalFee = s.fee;
        greekCache.recordTrade(p.strikeId, s.isCall, s.isBuy ? int256(p.amount) : -int256(p.amount));
        _updateStrikeOi(p.strikeId, p.optionType, isOpen, p.amount);
        _settleCash(s);
        _emitTrade(p, s, r.positionId);
    }

    function _loadMarket(TradeInputParameters memory p, TradeState memory s) internal view {
        s.strike = strikes[p.strikeId];
        if (s.strike.id == 0) revert InvalidStrikeId(address(this), p.strikeId);
        OptionBoard storage b = boards[s.strike.boardId];
        if (b.frozen) revert BoardIsFrozen(address(this), b.id);
        if (b.expiry <= block.timestamp) revert BoardExpired(address(this), b.id, b.expiry, block.timestamp);
        s.expiry = b.expiry;
        s.iv = b.iv;
        // v1-core asks for the min or max price by trade direction; the lite trades at the reference price.
        s.spot = exchangeAdapter.getSpotPriceForMarket(address(this), 2);
    }

    function _loadPosition(TradeInputParameters memory p, TradeState memory s) internal view {
        if (p.positionId != 0) {
            s.pos = optionToken.getOptionPosition(p.positionId);
            address posOwner = optionToken.ownerOf(p.positionId);
            if (posOwner != msg.sender) {
                revert OnlyOwnerCanAdjustPosition(address(this), p.positionId, msg.sender, posOwner);
            }
            bool inactive = s.pos.state != IOptionToken.PositionState.ACTIVE;
            bool strikeMismatch = s.pos.strikeId != p.strikeId;
            bool typeMismatch = s.pos.optionType != p.optionType;
            if (inactive || strikeMismatch || typeMismatch) {
                revert CannotAdjustInvalidPosition(address(this), p.positionId, false, inactive, strikeMismatch, typeMismatch);
            }
        } else {
            if (!s.isOpen) revert CannotAdjustInvalidPosition(address(this), 0, true, false, false, false);
            s.pos = IOptionToken.OptionPosition(0, p.strikeId, p.optionType, 0, 0, IOptionToken.PositionState.ACTIVE);
        }
        if (!s.isOpen && p.amount > s.pos.amount) {
            revert CannotAdjustInvalidPosition(address(this), p.positionId, false, false, false, false);
        }
    }

    function _price(TradeInputParameters memory p, TradeState memory s) internal view {
        // As v1-core's pricer (not force closes, which the lite has not): no trade within tradingCutoff of
        // the expiry, and none on a strike whose call delta is outside [minDelta, 1 - minDelta].
        if (block.timestamp + tradingCutoff > s.expiry) {
            revert TradingCutoffReached(address(this), tradingCutoff, s.expiry, block.timestamp);
        }
        IOptionGreekCache.StrikeCache memory c = greekCache.getStrikeCache(p.strikeId);
        int256 callDelta = c.greeks.callDelta;
        if (callDelta < minDelta || callDelta > int256(UNIT) - minDelta) {
            revert TradeDeltaOutOfRange(address(this), callDelta, minDelta, int256(UNIT) - minDelta);
        }
        uint256 base = s.isCall ? c.greeks.callPrice : c.greeks.putPrice;
        if (base == 0) revert StrikeGreeksMissing(address(this), p.strikeId);
        uint256 widen = spreadRate + impactPerUnit * p.amount / UNIT;
        uint256 unitPrice;
        if (s.isBuy) unitPrice = base * (UNIT + widen) / UNIT;
        else unitPrice = widen >= UNIT ? 0 : base * (UNIT - widen) / UNIT;
        s.premium = unitPrice * p.amount / UNIT;
        s.fee = s.spot * p.amount / UNIT * spotFeeRate / UNIT;
        // As v1-core's pricer: a sale's fee is capped at its premium.
        if (!s.isBuy && s.fee > s.premium) s.fee = s.premium;
        s.totalCost = s.isBuy ? s.premium + s.fee : s.premium - s.fee;
        if (s.totalCost < p.minTotalCost || s.totalCost > p.maxTotalCost) {
            revert TotalCostOutsideOfSpecifiedBounds(address(this), s.totalCost, p.minTotalCost, p.maxTotalCost);
        }
    }

    function _collateral(TradeInputParameters memory p, TradeState memory s) internal view {
        uint256 newAmount = s.isOpen ? s.pos.amount + p.amount : s.pos.amount - p.amount;
        if (!s.isLong) {
            if (newAmount == 0) {
                if (p.setCollateralTo != 0) {
                    revert FullyClosingWithNonZeroSetCollateral(address(this), p.positionId, p.setCollateralTo);
                }
                s.collateralOut = s.pos.collateral;
            } else {
                // As v1-core OptionToken.adjustPosition: any trade that leaves a short open, opening or
                // closing, sets its collateral to setCollateralTo (0 is only for a full close).
                uint256 target = p.setCollateralTo;
                uint256 minC = greekCache.getMinCollateral(p.optionType, s.strike.strikePrice, s.expiry, s.spot, newAmount);
                if (target > s.pos.collateral) s.collateralIn = target - s.pos.collateral;
                else s.collateralOut = s.pos.collateral - target;
                s.pos.collateral = target;
                if (target < minC) {
                    s.pos.amount = newAmount;
                    revert AdjustmentResultsInMinimumCollateralNotBeingMet(address(this), s.pos, s.spot);
                }
            }
        }
        s.pos.amount = newAmount;
    }

    /// As v1-core LiquidityPool.getLiquidity's freeLiquidity, with both collateral scaling factors 1: the
    /// pool's quote less what it has locked (calls valued at `spot`).
    function _freeLiquidity(uint256 spot) internal view returns (uint256) {
        uint256 reserved = lockedCollateral.quote + lockedCollateral.base * spot / UNIT;
        return poolQuote > reserved ? poolQuote - reserved : 0;
    }

    function _freeCollateral(uint256 quoteAmount, uint256 baseAmount) internal {
        lockedCollateral.quote -= quoteAmount > lockedCollateral.quote ? lockedCollateral.quote : quoteAmount;
        lockedCollateral.base -= baseAmount > lockedCollateral.base ? lockedCollateral.base : baseAmount;
    }

    /// As v1-core OptionMarket._routeLPFundsOnOpen/_routeLPFundsOnClose into the LiquidityPool: opening a
    /// long locks collateral out of the free liquidity (a put strike × amount in quote, a call its amount in
    /// base, valued at spot), opening a short pays its premium and the reserved fee out of it; closing a
    /// long frees its collateral. (The lite keeps the cash in this contract: only the accounting is here;
    /// and it checks the cost bounds before this, v1-core after.)
    function _routePool(TradeInputParameters memory p, TradeState memory s) internal {
        if (s.isOpen && s.isLong) {
            uint256 free = _freeLiquidity(s.spot);
            uint256 quoteToLock = p.amount * (s.isCall ? s.spot : s.strike.strikePrice) / UNIT;
            if (quoteToLock > free) revert LockingMoreQuoteThanIsFree(address(this), quoteToLock, free, lockedCollateral);
            if (s.isCall) lockedCollateral.base += p.amount;
            else lockedCollateral.quote += quoteToLock;
        } else if (s.isOpen) {
            uint256 free = _freeLiquidity(s.spot);
            uint256 reservedFee = s.fee * FEE_PORTION_RESERVED / UNIT;
            if (s.totalCost + reservedFee > free) {
                revert SendPremiumNotEnoughCollateral(address(this), s.totalCost, reservedFee, free);
            }
        } else if (s.isLong) {
            if (s.isCall) _freeCollateral(0, p.amount);
            else _freeCollateral(p.amount * s.strike.strikePrice / UNIT, 0);
        }
    }

    function _writePosition(TradeInputParameters memory p, TradeState memory s) internal returns (uint256) {
        IOptionToken.PositionUpdatedType ut = IOptionToken.PositionUpdatedType.ADJUSTED;
        if (p.positionId == 0) ut = IOptionToken.PositionUpdatedType.OPENED;
        if (s.pos.amount == 0) {
            s.pos.state = IOptionToken.PositionState.CLOSED;
            s.pos.collateral = 0;
            ut = IOptionToken.PositionUpdatedType.CLOSED;
        }
        return optionToken.write(msg.sender, s.pos, ut);
    }

    /// Buyer pays totalCost, seller receives it; collateral moves on top; one net transfer.
    function _settleCash(TradeState memory s) internal {
        uint256 pullIn = s.collateralIn + (s.isBuy ? s.totalCost : 0);
        uint256 payOut = s.collateralOut + (s.isBuy ? 0 : s.totalCost);
        if (pullIn > payOut) {
            require(quoteAsset.transferFrom(msg.sender, address(this), _from18Up(pullIn - payOut)), "TRANSFER_FAILED");
        } else if (payOut > pullIn) {
            require(quoteAsset.transfer(msg.sender, _from18Down(payOut - pullIn)), "TRANSFER_FAILED");
        }
    }

    /// An 18-decimal quote amount in the token's units, rounded up (v1-core ConvertDecimals.convertFrom18AndRoundUp,
    /// what it pulls from a trader).
    function _from18Up(uint256 amount) internal view returns (uint256) {
        if (quoteDecimals >= 18) return amount * 10 ** (quoteDecimals - 18);
        uint256 f = 10 ** (18 - quoteDecimals);
        return (amount + f - 1) / f;
    }

    /// An 18-decimal quote amount in the token's units, rounded down (what it pays out).
    function _from18Down(uint256 amount) internal view returns (uint256) {
        if (quoteDecimals >= 18) return amount * 10 ** (quoteDecimals - 18);
        return amount / 10 ** (18 - quoteDecimals);
    }

    function _emitTrade(TradeInputParameters memory p, TradeState memory s, uint256 positionId) internal {
        TradeEventData memory e;
        e.strikeId = p.strikeId;
        e.expiry = s.expiry;
        e.strikePrice = s.strike.strikePrice;
        e.optionType = p.optionType;
        e.tradeDirection = s.isOpen ? TradeDirection.OPEN : TradeDirection.CLOSE;
        e.amount = p.amount;
        e.setCollateralTo = p.setCollateralTo;
        e.spotPrice = s.spot;
        e.reservedFee = s.fee * FEE_PORTION_RESERVED / UNIT;
        e.totalCost = s.totalCost;
        // One iteration; the lite fee is all spot-price fee, and a trade moves neither iv nor skew.
        TradeResult[] memory results = new TradeResult[](1);
        results[0].amount = p.amount;
        results[0].premium = s.premium;
        results[0].spotPriceFee = s.fee;
        results[0].totalFee = s.fee;
        results[0].totalCost = s.totalCost;
        results[0].volTraded = s.iv * s.strike.skew / UNIT;
        results[0].newBaseIv = s.iv;
        results[0].newSkew = s.strike.skew;
        LiquidationEventData memory noLiquidation;
        emit Trade(msg.sender, positionId, p.referrer, e, results, noLiquidation, UNIT, block.timestamp);
    }

    function _updateStrikeOi(uint256 strikeId, OptionType t, bool isOpen, uint256 amount) internal {
        Strike storage st = strikes[strikeId];
        if (t == OptionType.LONG_CALL) st.longCall = isOpen ? st.longCall + amount : st.longCall - amount;
        else if (t == OptionType.LONG_PUT) st.longPut = isOpen ? st.longPut + amount : st.longPut - amount;
        else if (t == OptionType.SHORT_CALL_QUOTE) st.shortCallQuote = isOpen ? st.shortCallQuote + amount : st.shortCallQuote - amount;
        else if (t == OptionType.SHORT_PUT_QUOTE) st.shortPut = isOpen ? st.shortPut + amount : st.shortPut - amount;
    }
}
