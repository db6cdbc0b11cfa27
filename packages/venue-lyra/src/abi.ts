import { parseAbi } from 'viem';

// The ABI subset of Lyra v1 "Newport" (derivexyz/v1-core) that hedging needs, in the real shapes.
const structs = [
  'struct TradeInputParameters { uint256 strikeId; uint256 positionId; uint256 iterations; uint8 optionType; uint256 amount; uint256 setCollateralTo; uint256 minTotalCost; uint256 maxTotalCost; address referrer; }',
  'struct Result { uint256 positionId; uint256 totalCost; uint256 totalFee; }',
  'struct Strike { uint256 id; uint256 strikePrice; uint256 skew; uint256 longCall; uint256 shortCallBase; uint256 shortCallQuote; uint256 longPut; uint256 shortPut; uint256 boardId; }',
  'struct OptionBoard { uint256 id; uint256 expiry; uint256 iv; bool frozen; uint256[] strikeIds; }',
  'struct TradeEventData { uint256 strikeId; uint256 expiry; uint256 strikePrice; uint8 optionType; uint8 tradeDirection; uint256 amount; uint256 setCollateralTo; bool isOpen; bool isLiquidation; bool isForceClose; uint256 spotPrice; uint256 reservedFee; uint256 totalCost; }',
  'struct OptionPosition { uint256 positionId; uint256 strikeId; uint8 optionType; uint256 amount; uint256 collateral; uint8 state; }',
  'struct StrikeGreeks { int256 callDelta; int256 putDelta; uint256 stdVega; uint256 callPrice; uint256 putPrice; }',
  'struct StrikeCache { uint256 id; uint256 boardId; uint256 strikePrice; uint256 skew; StrikeGreeks greeks; int256 callExposure; int256 putExposure; uint256 skewVariance; }',
] as const;

export const optionMarketAbi = parseAbi([
  ...structs,
  'function openPosition(TradeInputParameters params) returns (Result)',
  'function closePosition(TradeInputParameters params) returns (Result)',
  'function getLiveBoards() view returns (uint256[])',
  'function getBoard(uint256 boardId) view returns (OptionBoard)',
  'function getBoardStrikes(uint256 boardId) view returns (uint256[])',
  'function getStrike(uint256 strikeId) view returns (Strike)',
  'function getMinCollateral(uint8 optionType, uint256 strikeId, uint256 amount) view returns (uint256)',
  'function spreadRate() view returns (uint256)',
  'function createOptionBoard(uint256 expiry, uint256 baseIV, uint256[] strikePrices, uint256[] skews, bool frozen) returns (uint256)',
  // The board's settlement price (quote per base, 18 decimals), 0 until `settleExpiredBoard` ran after its expiry.
  'function boardToPriceAtExpiry(uint256 boardId) view returns (uint256)',
  'function settleExpiredBoard(uint256 boardId)',
  'event Trade(address indexed trader, uint256 indexed positionId, address indexed referrer, TradeEventData trade, uint256 timestamp)',
  'error InvalidStrikeId(address thrower, uint256 strikeId)',
  'error BoardIsFrozen(address thrower, uint256 boardId)',
  'error BoardExpired(address thrower, uint256 boardId, uint256 boardExpiry, uint256 currentTime)',
  'error InvalidBoardId(address thrower, uint256 boardId)',
  'error BoardNotExpired(address thrower, uint256 boardId)',
  'error BoardAlreadySettled(address thrower, uint256 boardId)',
  'error ZeroAmount(address thrower)',
  'error TotalCostOutsideOfSpecifiedBounds(address thrower, uint256 totalCost, uint256 minCost, uint256 maxCost)',
  'error OnlyOwnerCanAdjustPosition(address thrower, uint256 positionId, address trader, address owner)',
  'error CannotAdjustInvalidPosition(address thrower, uint256 positionId, bool invalidPositionId, bool positionInactive, bool strikeMismatch, bool optionTypeMismatch)',
  'error FullyClosingWithNonZeroSetCollateral(address thrower, uint256 positionId, uint256 setCollateralTo)',
  'error AdjustmentResultsInMinimumCollateralNotBeingMet(address thrower, uint256 collateral, uint256 minCollateral)',
  'error ShortBaseNotSupported(address thrower)',
  'error StrikeGreeksMissing(address thrower, uint256 strikeId)',
  'error ERC20InsufficientBalance(address sender, uint256 balance, uint256 needed)',
  'error ERC20InsufficientAllowance(address spender, uint256 allowance, uint256 needed)',
]);

export const optionTokenAbi = parseAbi([
  ...structs,
  'function getOwnerPositions(address target) view returns (OptionPosition[])',
  'function getOptionPosition(uint256 positionId) view returns (OptionPosition)',
  'event PositionUpdated(uint256 indexed positionId, address indexed owner, uint8 indexed updatedType, OptionPosition position, uint256 timestamp)',
]);

export const greekCacheAbi = parseAbi([
  ...structs,
  'function getStrikeCache(uint256 strikeId) view returns (StrikeCache)',
  'function getGlobalNetDelta() view returns (int256)',
  'function boardIv(uint256 boardId) view returns (uint256)',
  'function setStrikeGreeks(uint256[] ids, StrikeGreeks[] greeks)',
]);

export const exchangeAdapterAbi = parseAbi([
  'function getSpotPriceForMarket(address optionMarket, uint8 pricing) view returns (uint256)',
  'function setSpotPrice(address optionMarket, uint256 price)',
]);

/** Lyra v1 OptionType. */
export const OPTION_TYPE = {
  LONG_CALL: 0,
  LONG_PUT: 1,
  SHORT_CALL_BASE: 2,
  SHORT_CALL_QUOTE: 3,
  SHORT_PUT_QUOTE: 4,
} as const;
