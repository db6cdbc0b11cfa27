export {
  exchangeAdapterAbi,
  greekCacheAbi,
  OPTION_TYPE,
  optionMarketAbi,
  optionTokenAbi,
  POSITION_STATE,
  PRICE_TYPE,
  TRADE_DIRECTION,
} from './abi.ts';
export {
  baseCollateralSymbol,
  type CreateLyraVenueDeps,
  classifyLyraRevert,
  createLyraVenue,
  describeLyraRevert,
  type GreekComparison,
  LYRA_CAPABILITIES,
  type LyraOrderRecord,
  type LyraRevertUnits,
  LyraVenue,
  type LyraVenueDeps,
  lyraRevertClassifier,
} from './adapter.ts';
export {
  deployLyraFixture,
  LYRA_CONTRACTS_URL,
  type LyraFixture,
  type LyraFixtureMarket,
  lyraLiteFixtureAbi,
} from './fixture.ts';
export { LyraMarketParams, LyraVenueParams, type LyraVenueParamsInput } from './params.ts';
