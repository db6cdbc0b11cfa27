export {
  dataStoreAbi,
  eventEmitterAbi,
  exchangeRouterAbi,
  gmxErrorAbi,
  ORDER_TYPE,
  oracleAbi,
  readerAbi,
} from './abi.ts';
export {
  type CreateGmxVenueDeps,
  createGmxVenue,
  GMX_CAPABILITIES,
  type GmxOrderRecord,
  GmxVenue,
  type GmxVenueDeps,
} from './adapter.ts';
export {
  accountTopic,
  createdOrderKey,
  eventItems,
  type GmxEvent,
  type GmxEventItems,
  type GmxOrderFill,
  orderFillFromEvents,
  parseGmxEvents,
} from './events.ts';
export {
  deployGmxFixture,
  GMX_CONTRACTS_URL,
  type GmxContractAddresses,
  type GmxFixture,
  type GmxFixtureMarket,
} from './fixture.ts';
export { GmxKeeper, type GmxKeeperOptions, type GmxKeeperResult } from './keeper.ts';
export { GmxVenueParams, type GmxVenueParamsInput } from './params.ts';
export { fromUsd30, gmxPriceToUsd, usd30, usdToGmxPrice } from './units.ts';
