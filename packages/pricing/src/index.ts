export {
  type BsmBatchInput,
  bsmBatch,
  type GreeksBatchOutput,
  greeksBatchOutput,
  type ImpliedVolBatchInput,
  IV_STATUS,
  impliedVolBatch,
} from './batch.ts';
export {
  type BsmInput,
  black76,
  bsm,
  type OptionGreeks,
  type OptionKind,
  PricingInputError,
  timeToExpiryYears,
} from './bsm.ts';
export { type EverlastingGreeks, type EverlastingInput, everlastingOption } from './everlasting.ts';
export {
  blackImpliedVol,
  ImpliedVolError,
  type ImpliedVolInput,
  type ImpliedVolReason,
  impliedVol,
  normalisedImpliedStd,
} from './implied-vol.ts';
export { type InverseCoinGreeks, type InverseGreeks, type InverseInput, inverseOption } from './inverse.ts';
export { erfcx, normCdf, normPdf } from './normal.ts';
export { normalisedBlackOtm, undiscountedBlack } from './normalised-black.ts';
export { type CalendarViolation, type ExpiryQuotes, type SurfaceSlice, VolSurface } from './surface.ts';
export {
  type ButterflyCheck,
  checkButterfly,
  durrlemanG,
  fitSviSlice,
  type SmileFit,
  SmileFitError,
  type SmileQuote,
  type SviParams,
  sviTotalVariance,
} from './svi.ts';
