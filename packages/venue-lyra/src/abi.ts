import { parseAbi } from 'viem';

// The ABI subset of Lyra v1 "Newport" that hedging needs, transcribed by hand from derivexyz/v1-core
// (commit ea9e36a "Newport (#11)") in the real names, signatures and struct field orders; abi.test.ts pins
// every selector. Each ABI below holds only items of the real contract it is named after (errors also those
// that contract's calls bubble up). Set-up functions that exist only in our local contracts
// (contracts/LyraV1Lite.sol) are in `lyraLiteFixtureAbi` (fixture.ts), never here.
const structs = [
  // OptionMarket
  'struct TradeInputParameters { uint256 strikeId; uint256 positionId; uint256 iterations; uint8 optionType; uint256 amount; uint256 setCollateralTo; uint256 minTotalCost; uint256 maxTotalCost; address referrer; }',
  'struct Result { uint256 positionId; uint256 totalCost; uint256 totalFee; }',
  'struct Strike { uint256 id; uint256 strikePrice; uint256 skew; uint256 longCall; uint256 shortCallBase; uint256 shortCallQuote; uint256 longPut; uint256 shortPut; uint256 boardId; }',
  'struct OptionBoard { uint256 id; uint256 expiry; uint256 iv; bool frozen; uint256[] strikeIds; }',
  'struct TradeEventData { uint256 strikeId; uint256 expiry; uint256 strikePrice; uint8 optionType; uint8 tradeDirection; uint256 amount; uint256 setCollateralTo; bool isForceClose; uint256 spotPrice; uint256 reservedFee; uint256 totalCost; }',
  'struct LiquidationEventData { address rewardBeneficiary; address caller; uint256 returnCollateral; uint256 lpPremiums; uint256 lpFee; uint256 liquidatorFee; uint256 smFee; uint256 insolventAmount; }',
  // OptionMarketPricer (carried by OptionMarket's Trade event, one TradeResult per iteration; VolComponents by
  // its VolSkewOrBaseIvOutsideOfTradingBounds error)
  'struct VolComponents { uint256 vol; uint256 baseIv; uint256 skew; }',
  'struct VegaUtilFeeComponents { int256 preTradeAmmNetStdVega; int256 postTradeAmmNetStdVega; uint256 vegaUtil; uint256 volTraded; uint256 NAV; uint256 vegaUtilFee; }',
  'struct VarianceFeeComponents { uint256 varianceFeeCoefficient; uint256 vega; uint256 vegaCoefficient; uint256 skew; uint256 skewCoefficient; uint256 ivVariance; uint256 ivVarianceCoefficient; uint256 varianceFee; }',
  'struct TradeResult { uint256 amount; uint256 premium; uint256 optionPriceFee; uint256 spotPriceFee; VegaUtilFeeComponents vegaUtilFee; VarianceFeeComponents varianceFee; uint256 totalFee; uint256 totalCost; uint256 volTraded; uint256 newBaseIv; uint256 newSkew; }',
  // LiquidityPool (carried by its LockingMoreQuoteThanIsFree error)
  'struct Collateral { uint256 quote; uint256 base; }',
  // OptionToken
  'struct OptionPosition { uint256 positionId; uint256 strikeId; uint8 optionType; uint256 amount; uint256 collateral; uint8 state; }',
  // OptionGreekCache
  'struct StrikeGreeks { int256 callDelta; int256 putDelta; uint256 stdVega; uint256 callPrice; uint256 putPrice; }',
  'struct StrikeCache { uint256 id; uint256 boardId; uint256 strikePrice; uint256 skew; StrikeGreeks greeks; int256 callExposure; int256 putExposure; uint256 skewVariance; }',
  'struct GreekCacheParameters { uint256 maxStrikesPerBoard; uint256 acceptableSpotPricePercentMove; uint256 staleUpdateDuration; uint256 varianceIvGWAVPeriod; uint256 varianceSkewGWAVPeriod; uint256 optionValueIvGWAVPeriod; uint256 optionValueSkewGWAVPeriod; uint256 gwavSkewFloor; uint256 gwavSkewCap; }',
] as const;

/** OptionMarket (one per underlying): boards, strikes, trades, board settlement. */
export const optionMarketAbi = parseAbi([
  ...structs,
  'function openPosition(TradeInputParameters params) returns (Result)',
  'function closePosition(TradeInputParameters params) returns (Result)',
  // Boards stay listed here after their expiry until settleExpiredBoard takes them off.
  'function getLiveBoards() view returns (uint256[])',
  'function getOptionBoard(uint256 boardId) view returns (OptionBoard)',
  'function getBoardStrikes(uint256 boardId) view returns (uint256[])',
  'function getStrike(uint256 strikeId) view returns (Strike)',
  // Owner only (the fixture lists boards with it).
  'function createOptionBoard(uint256 expiry, uint256 baseIV, uint256[] strikePrices, uint256[] skews, bool frozen) returns (uint256)',
  // The board's settlement price (quote per base, 18 decimals), 0 until `settleExpiredBoard` ran after its expiry.
  'function boardToPriceAtExpiry(uint256 boardId) view returns (uint256)',
  // Per strike: its price, its board's settlement price (0 until settled), the base per option a
  // base-collateralised short call owes the pool at settlement (set by settleExpiredBoard, 18 decimals;
  // ShortCollateral.settleOptions returns collateral − it × amount to the owner) and the longs' scale factor.
  'function getSettlementParameters(uint256 strikeId) view returns (uint256 strikePrice, uint256 priceAtExpiry, uint256 strikeToBaseReturned, uint256 longScaleFactor)',
  // The underlying's ERC-20 (WETH, WBTC): base-collateralised short calls lock it, settlement returns it.
  'function baseAsset() view returns (address)',
  'function settleExpiredBoard(uint256 boardId)',
  // `trade.reservedFee` is only the DAO's share of the fee (feePortionReserved); what the trader paid in
  // fees is the sum of `tradeResults[].totalFee` (= Result.totalFee).
  'event Trade(address indexed trader, uint256 indexed positionId, address indexed referrer, TradeEventData trade, TradeResult[] tradeResults, LiquidationEventData liquidation, uint256 longScaleFactor, uint256 timestamp)',
  'error InvalidStrikeId(address thrower, uint256 strikeId)',
  'error BoardIsFrozen(address thrower, uint256 boardId)',
  'error BoardExpired(address thrower, uint256 boardId, uint256 boardExpiry, uint256 currentTime)',
  'error InvalidBoardId(address thrower, uint256 boardId)',
  'error BoardNotExpired(address thrower, uint256 boardId)',
  'error BoardAlreadySettled(address thrower, uint256 boardId)',
  'error TotalCostOutsideOfSpecifiedBounds(address thrower, uint256 totalCost, uint256 minCost, uint256 maxCost)',
  // valueType is OptionMarket.NonZeroValues (BASE_IV, SKEW, STRIKE_PRICE, ITERATIONS, STRIKE_ID); a trade
  // throws it for strike id 0 or 0 iterations.
  'error ExpectedNonZeroValue(address thrower, uint8 valueType)',
  // An amount under `iterations` (in 18-decimal units) splits into empty iterations.
  'error TradeIterationsHasRemainder(address thrower, uint256 iterations, uint256 expectedAmount, uint256 tradeAmount, uint256 totalAmount)',
  // A quote token that returns false from transferFrom (one that reverts throws its own error).
  'error QuoteTransferFailed(address thrower, address from, address to, uint256 amount)',
  // OptionMarketPricer's trade limits, thrown from updateCacheAndGetTradeResult inside every iteration of a
  // trade (its force-close errors only on forceClosePosition and liquidations, which the adapter never calls).
  'error TradingCutoffReached(address thrower, uint256 tradingCutoff, uint256 boardExpiry, uint256 currentTime)',
  'error VolSkewOrBaseIvOutsideOfTradingBounds(address thrower, bool isBuy, VolComponents currentVol, VolComponents newVol, VolComponents tradeBounds)',
  'error TradeDeltaOutOfRange(address thrower, int256 strikeCallDelta, int256 minDelta, int256 maxDelta)',
  // OptionToken's, thrown from OptionToken.adjustPosition inside a trade.
  'error CannotOpenZeroAmount(address thrower)',
  'error CannotClosePositionZero(address thrower)',
  'error OnlyOwnerCanAdjustPosition(address thrower, uint256 positionId, address trader, address owner)',
  'error CannotAdjustInvalidPosition(address thrower, uint256 positionId, bool invalidPositionId, bool positionInactive, bool strikeMismatch, bool optionTypeMismatch)',
  'error FullyClosingWithNonZeroSetCollateral(address thrower, uint256 positionId, uint256 setCollateralTo)',
  'error AdjustmentResultsInMinimumCollateralNotBeingMet(address thrower, OptionPosition position, uint256 spotPrice)',
  // LiquidityPool's, thrown inside a trade: getLiquidity (every trade, from _composeTrade) throws
  // NegativeTotalAssetValue; opening a long locks collateral (lockPutCollateral, lockCallCollateral) and
  // opening a short pays its premium (sendShortPremium) out of the pool's free liquidity, and both ask the
  // pool hedger whether it can hedge the trade's delta. Amounts are 18-decimal quote (quoteToLock, premium,
  // freeLiquidity, totalAssetValue), Collateral.base 18-decimal base, amountOptions 18-decimal contracts.
  'error LockingMoreQuoteThanIsFree(address thrower, uint256 quoteToLock, uint256 freeLiquidity, Collateral lockedCollateral)',
  'error SendPremiumNotEnoughCollateral(address thrower, uint256 premium, uint256 reservedFee, uint256 freeLiquidity)',
  'error UnableToHedgeDelta(address thrower, uint256 amountOptions, bool increasesDelta, uint256 strikeId)',
  'error NegativeTotalAssetValue(address thrower, int256 totalAssetValue)',
  // ShortCollateral's, thrown when a trade takes quote out of it (closing a quote-collateralized short,
  // lowering a short's collateral); balance and amount are in the quote token's own decimals. (Its
  // QuoteTransferFailed, and the LiquidityPool's, have OptionMarket's signature above.)
  'error OutOfQuoteCollateralForTransfer(address thrower, uint256 balance, uint256 amount)',
  // The quote token's (ERC-6093, as OpenZeppelin 5 tokens revert), not Lyra's.
  'error ERC20InsufficientBalance(address sender, uint256 balance, uint256 needed)',
  'error ERC20InsufficientAllowance(address spender, uint256 allowance, uint256 needed)',
]);

/** OptionToken (ERC-721 positions). */
export const optionTokenAbi = parseAbi([
  ...structs,
  // The owner's tokens; a closed, settled, liquidated or merged position's token is burned.
  'function getOwnerPositions(address target) view returns (OptionPosition[])',
  'function getOptionPosition(uint256 positionId) view returns (OptionPosition)',
  'event PositionUpdated(uint256 indexed positionId, address indexed owner, uint8 indexed updatedType, OptionPosition position, uint256 timestamp)',
]);

/** OptionGreekCache: cached prices and Greeks, GWAV vols, minimum collateral. */
export const greekCacheAbi = parseAbi([
  ...structs,
  'function getStrikeCache(uint256 strikeId) view returns (StrikeCache)',
  // The traders' net delta (exposures are long − short of users): what the pool hedger buys.
  'function getGlobalNetDelta() view returns (int256)',
  'function getGreekCacheParams() view returns (GreekCacheParameters)',
  'function getIvGWAV(uint256 boardId, uint256 secondsAgo) view returns (uint256)',
  'function getSkewGWAV(uint256 strikeId, uint256 secondsAgo) view returns (uint256)',
  'function getMinCollateral(uint8 optionType, uint256 strikePrice, uint256 expiry, uint256 spotPrice, uint256 amount) view returns (uint256)',
]);

/** The market's exchange adapter (BaseExchangeAdapter: GMXAdapter, SNXPerpV2Adapter). */
export const exchangeAdapterAbi = parseAbi([
  'function getSpotPriceForMarket(address optionMarket, uint8 pricing) view returns (uint256)',
]);

/** Lyra v1 OptionMarket.OptionType. */
export const OPTION_TYPE = {
  LONG_CALL: 0,
  LONG_PUT: 1,
  SHORT_CALL_BASE: 2,
  SHORT_CALL_QUOTE: 3,
  SHORT_PUT_QUOTE: 4,
} as const;

/** Lyra v1 OptionMarket.TradeDirection. */
export const TRADE_DIRECTION = { OPEN: 0, CLOSE: 1, LIQUIDATE: 2 } as const;

/** Lyra v1 OptionToken.PositionState. */
export const POSITION_STATE = {
  EMPTY: 0,
  ACTIVE: 1,
  CLOSED: 2,
  LIQUIDATED: 3,
  SETTLED: 4,
  MERGED: 5,
} as const;

/** Lyra v1 BaseExchangeAdapter.PriceType (MIN_PRICE may revert on a real adapter; REFERENCE is the plain price). */
export const PRICE_TYPE = { MIN_PRICE: 0, MAX_PRICE: 1, REFERENCE: 2, FORCE_MIN: 3, FORCE_MAX: 4 } as const;
