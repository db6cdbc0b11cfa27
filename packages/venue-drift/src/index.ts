export {
  ammAveragePrice,
  type DriftMarketConfig,
  DriftOrderRecordPrunedError,
  type DriftSigner,
  DriftVenue,
  type DriftVenueOptions,
  fundingRatePerHour,
  keypairSigner,
} from './adapter.ts';
export {
  DriftDecodeError,
  type DriftOrder,
  type DriftPerpMarket,
  type DriftPerpPosition,
  type DriftSpotMarket,
  type DriftSpotPosition,
  type DriftUser,
  decodePerpMarket,
  decodeSpotMarket,
  decodeUser,
} from './decode.ts';
export {
  encodePerpMarketAccount,
  encodeSpotMarketAccount,
  encodeStateAccount,
  encodeUserAccount,
  encodeUserStatsAccount,
  type PerpMarketInit,
  type SpotMarketInit,
  type UserAccountInit,
} from './encode.ts';
export {
  type CreateDriftVenueDeps,
  createDriftVenue,
  DRIFT_PROGRAM_ID,
  DriftSecretError,
  type DriftSecretRef,
  type DriftVenueConfigLike,
  DriftVenueParams,
  type DriftVenueParamsInput,
  parseSolanaSecretKey,
  redactingRpc,
} from './factory.ts';
export { LAMPORTS_PER_SIGNATURE, type SolanaFeeInput, solanaFeeLamports } from './fees.ts';
export {
  cancelOrderByUserIdInstruction,
  type DriftOrderAccounts,
  driftPda,
  driftRemainingAccounts,
  encodeOrderParams,
  type OrderParams,
  type PerpMarketRef,
  placeAndTakePerpOrderInstruction,
  placePerpOrderInstruction,
  type SpotMarketRef,
} from './instructions.ts';
export {
  BASE_PRECISION,
  FUNDING_RATE_PRECISION,
  PERP_MARKET_SIZE,
  PLACE_AND_TAKE_PERP_ORDER_DISCRIMINATOR,
  PLACE_PERP_ORDER_DISCRIMINATOR,
  POSITION_FLAG,
  PRICE_PRECISION,
  QUOTE_PRECISION,
  USER_SIZE,
  USER_STATUS,
} from './layout.ts';
export {
  fileUserOrderIdStore,
  MAX_USER_ORDER_ID,
  memoryUserOrderIdStore,
  type PrunedEntry,
  type PrunedOrder,
  UserOrderIdMap,
  type UserOrderIdMapOptions,
  UserOrderIdRecord,
  type UserOrderIdStore,
  UserOrderIdsExhaustedError,
} from './order-ids.ts';
export {
  DRIFT_PROGRAM_ERRORS,
  type DriftErrorKind,
  type DriftProgramError,
  decodeDriftProgramError,
  describeTransactionError,
  type LandedFailure,
  landedFailureError,
} from './program-errors.ts';
export {
  type AccountReadOptions,
  type ConfirmationLevel,
  connectionRpc,
  MinContextSlotNotReachedError,
  type SignatureStatus,
  type SolanaRpc,
} from './rpc.ts';
export {
  type SendAndConfirmOptions,
  type SendAndConfirmResult,
  sendAndConfirm,
  signatureOf,
} from './send.ts';
