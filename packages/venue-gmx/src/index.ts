export {
  dataStoreAbi,
  eventEmitterAbi,
  exchangeRouterAbi,
  gmxErrorAbi,
  ORDER_TYPE,
  oracleAbi,
  readerAbi,
  tokenErrorAbi,
  upstreamErrorAbi,
} from './abi.ts';
export {
  type CreateGmxVenueDeps,
  createGmxVenue,
  GMX_CAPABILITIES,
  type GmxOrderRecord,
  GmxVenue,
  type GmxVenueDeps,
  type GmxWorkingOrder,
} from './adapter.ts';
export {
  accountTopic,
  createdOrder,
  createdOrderKey,
  eventItems,
  executionFeeRefundWei,
  type GmxEvent,
  type GmxEventItems,
  type GmxOrderFill,
  orderCancelReason,
  orderFillFromEvents,
  parseGmxEvents,
} from './events.ts';
export {
  deployGmxFixture,
  GMX_CONTRACTS_URL,
  GMX_FIXTURE_EXECUTION_GAS,
  type GmxContractAddresses,
  type GmxFixture,
  type GmxFixtureExecutionGas,
  type GmxFixtureMarket,
} from './fixture.ts';
export { gmxFixtureAbi } from './fixture-abi.ts';
export {
  carryFactorPerSecond30,
  carryUsd,
  fundingRatePerHour,
  type GmxHeldSide,
  type GmxMarketRates,
  type GmxOpenInterestUsd30,
  heldCarryRatePerHour,
  heldSideFactorPerSecond30,
} from './funding.ts';
export { GmxKeeper, type GmxKeeperOptions, type GmxKeeperResult } from './keeper.ts';
export {
  accountOrderListKey,
  applyFactor,
  balanceWasImproved,
  FLOAT_PRECISION,
  GMX_KEYS,
  type GmxExecutionGasSettings,
  hashString,
  isMarketDisabledKey,
  marketKey,
  marketSideKey,
  maxOpenInterestKey,
  openInterestKey,
  orderExecutionGasLimit,
  orderFeatureDisabledKey,
  positionFeeFactorKey,
} from './keys.ts';
export { GmxVenueParams, type GmxVenueParamsInput } from './params.ts';
export {
  endpointLabel,
  fetchGmxTickers,
  GmxTicker,
  GmxTickersResponse,
  type GmxTokenPrice,
  parseGmxTickers,
} from './prices.ts';
export { fromUsd30, gmxPriceToUsd, usd30, usdToGmxPrice } from './units.ts';
