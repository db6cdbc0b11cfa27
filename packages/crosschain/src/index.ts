export {
  assetDecimalsOf,
  type BridgeCost,
  type BridgeCostModel,
  type BridgeCostQuery,
  BridgeFeeError,
  bridgeFeeInAsset,
  type LayerZeroCostModelOptions,
  layerZeroCostModel,
  type RoutingBridgeCost,
  routingBridgeCost,
  USD_LIKE_DECIMALS,
} from './cost.ts';
export {
  type FileTransferStore,
  openFileTransferStore,
  type TransferStoreHolder,
  TransferStoreLockedError,
} from './file-store.ts';
export {
  startTransferWorker,
  TRANSFER_QUEUE,
  type TransferFailure,
  type TransferThenHedgeFlow,
  type TransferWorkerOptions,
  transferThenHedgeFlow,
} from './flow.ts';
export {
  type DecodedPacket,
  decodePacket,
  executorOptions,
  LZ_EIDS,
  LzEncodingError,
  lzEid,
  packetGuid,
  toBytes32,
  UnknownLzChainError,
} from './lz.ts';
export {
  type BridgeEndpoint,
  BridgeError,
  createPaperBridgeForVenues,
  PaperBridge,
  type PaperBridgeForVenuesOptions,
  type PaperBridgeOptions,
  type TransferExecutor,
  type TransferRequest,
} from './paper-bridge.ts';
export {
  type CollateralNeed,
  decodeHedgeInstruction,
  encodeHedgeInstruction,
  HedgeInstructionError,
  InsufficientCollateralError,
  type PlanTransferOptions,
  planCollateralTransfer,
  type TransferPlan,
} from './plan.ts';
export {
  memoryTransferStore,
  type NewTransfer,
  TransferNotFoundError,
  TransferRecord,
  TransferState,
  type TransferStore,
  TransferTracker,
  TransferTransitionError,
  wasSent,
} from './tracker.ts';
