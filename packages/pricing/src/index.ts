export { type BsmInput, black76, bsm, type OptionGreeks, type OptionKind, PricingInputError } from './bsm.ts';
export { normCdf, normPdf } from './normal.ts';
