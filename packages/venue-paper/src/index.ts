export {
  COLLATERAL,
  type ExecQuote,
  type PaperVenue,
  PaperVenueBase,
  type PaperVenueContext,
} from './base.ts';
export {
  type CreatePaperVenueOptions,
  type CreatePaperVenuesOptions,
  createPaperVenue,
  createPaperVenues,
  PAPER_VENUE_KINDS,
  type PaperVenueKind,
} from './create.ts';
export { DriftParams, PaperDriftVenue } from './drift.ts';
export { FaultInjector, type InjectedRejection } from './faults.ts';
export { GmxParams, PaperGmxVenue } from './gmx.ts';
export { LyraParams, PaperLyraVenue } from './lyra.ts';
export { ShadowVenue } from './shadow.ts';
export {
  MemoryShadowStore,
  RedisShadowStore,
  type ShadowState,
  type ShadowStore,
} from './shadow-store.ts';
export { PaperSpotAmmVenue, SpotAmmParams } from './spot-amm.ts';
