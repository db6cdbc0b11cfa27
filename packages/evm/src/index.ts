export {
  ANVIL_DEV_KEYS,
  AnvilError,
  type AnvilInstance,
  anvilBinaryPath,
  freePort,
  type StartAnvilOptions,
  startAnvil,
} from './anvil.ts';
export {
  type ApprovalPolicy,
  ensureAllowance,
  type RecordedSpend,
  reserveAndApprove,
  type SpendCapOptions,
  SpendCaps,
  type SpendRecordSource,
  type SpendReservation,
} from './approvals.ts';
export {
  type EvmChainProfile,
  evmChainProfile,
  L1_FEE_IN_GAS,
  type L1DataFeeKind,
  UnsupportedChainError,
} from './chains.ts';
export {
  type CreateEvmContextOptions,
  createEvmContext,
  type EvmContext,
  type EvmVenueConfigLike,
  evmContextFromVenueConfig,
} from './clients.ts';
export { deployContract, revertTo, rpc, sendFixtureTransaction, snapshot } from './deploy.ts';
export {
  ChainIdMismatchError,
  type DecodedRevert,
  decodeRevert,
  type ErrorContext,
  findChainIdMismatch,
  findRevertData,
  HistoricalStateUnavailableError,
  isHeaderNotFound,
  isHistoricalStateUnavailable,
  type NonceScan,
  type RevertClass,
  type RevertClassifier,
  revertToVenueError,
  toVenueError,
} from './errors.ts';
export {
  ARB_NODE_INTERFACE,
  bumpFees,
  type FeeOptions,
  type FeeQuote,
  GasPolicy,
  type GasPolicyOptions,
  type L1DataFeeModel,
  type L1DataFeeModelOptions,
  l1DataFeeModel,
  nextBaseFeeCeilingWei,
  OP_GAS_PRICE_ORACLE,
  readFees,
  type TxCost,
  txCost,
} from './gas.ts';
export {
  afterFailedCancel,
  applySentTxStatus,
  assertOrderBasics,
  type CreateOnChainVenueDeps,
  createVenueTxSender,
  defaultOrderStore,
  fillsFromRecords,
  NONCE_SCAN_CONTINUE_AFTER_MS,
  NONCE_SCAN_MAX_BACKOFF_MS,
  newOrderRecord,
  nextNonceScanAtMs,
  type OnChainOrderRecord,
  OneAtATime,
  onChainVenueFromConfig,
  orderFromRecord,
  type RecordedNonceScan,
  type RecordedNonceTx,
  type RecordedSendDeps,
  recordedNonceTxs,
  replaceByNonce,
  type SentTxStatusDeps,
  sendRecorded,
  speedUpByNonce,
  unreachableHealth,
  type VenueErrorMapper,
  type VenueTxSenderOptions,
  venueErrorMapper,
  walletBalances,
} from './onchain-orders.ts';
export { AddressParam, DecimalParam } from './params.ts';
export { parseVenueRequest } from './requests.ts';
export { type RpcUrlRedactor, rpcUrlRedactor } from './rpc-redact.ts';
export {
  redact,
  resolvePrivateKey,
  resolveSecret,
  SecretError,
  type SecretRefLike,
  type SecretSources,
} from './secrets.ts';
export {
  type CompiledContract,
  compileSolidity,
  EVM_TEST_CONTRACTS_URL,
  SolidityCompileError,
} from './solc.ts';
export {
  JsonFileOrderStore,
  MemoryOrderStore,
  mergeNonceTxsOnWrite,
  type OrderRecordStore,
  type OrderStoreFs,
} from './store.ts';
export {
  type KnownAtNonce,
  type MinedAtNonce,
  type MinedAtNonceOptions,
  NONCE_SCAN_CLOCK_SLACK_MS,
  type SendOptions,
  type SentTx,
  type SignedTxInfo,
  type TxRequest,
  TxSender,
  type TxSenderOptions,
  type TxStatus,
  txCallDigest,
} from './tx.ts';
