import { ChainId, chainInfo, NumericError } from '@xhedge/core';

export interface BridgeCostQuery {
  srcChain: ChainId;
  dstChain: ChainId;
  asset: string;
  /** Units of the asset to move. */
  amount: number;
}

export interface BridgeCost {
  /** All-in fee in USD: messaging (DVNs + executor), source gas, destination gas. */
  feeUsd: number;
  /** Expected time from send to delivery on the destination, ms. */
  latencyMs: number;
}

/** What routing calls to price moving collateral (fee + latency per chain pair and asset). */
export interface BridgeCostModel {
  estimate(q: BridgeCostQuery): BridgeCost;
}

export interface LayerZeroCostModelOptions {
  /** Fixed messaging fee (DVNs + executor) per message, USD. @defaultValue 0.6 */
  messagingFeeUsd?: number;
  /** Blocks the DVNs wait on the source before verifying, per chain. @defaultValue 20 for EVM L2s and Solana, 15 for Ethereum */
  confirmations?: Readonly<Record<string, number>>;
  /** Time DVNs and the executor add after finality, ms. @defaultValue 15000 */
  overheadMs?: number;
  /** Per-pair overrides, keyed `src>dst`. */
  overrides?: Readonly<Record<string, Partial<BridgeCost>>>;
}

/**
 * A LayerZero-like cost model: fee = messaging fee + typical transaction cost on both chains (the
 * chain table of @xhedge/core); latency = source block time × confirmations + overhead + one
 * destination block. Replace with quotes (`quoteSend`) where a chain is reachable.
 */
export function layerZeroCostModel(o: LayerZeroCostModelOptions = {}): BridgeCostModel {
  const messaging = o.messagingFeeUsd ?? 0.6;
  const overhead = o.overheadMs ?? 15_000;
  return {
    estimate(q) {
      if (!Number.isFinite(q.amount) || q.amount < 0) throw new NumericError('bridge amount', q.amount);
      if (q.srcChain === q.dstChain) return { feeUsd: 0, latencyMs: 0 };
      const src = chainInfo(q.srcChain);
      const dst = chainInfo(q.dstChain);
      const mid = (r: readonly [number, number] | undefined) => (r ? (r[0] + r[1]) / 2 : 0.5);
      const confs = o.confirmations?.[q.srcChain] ?? (q.srcChain === 'evm:1' ? 15 : 20);
      const base: BridgeCost = {
        feeUsd: messaging + mid(src?.typicalTxCostUsd) + mid(dst?.typicalTxCostUsd),
        latencyMs: (src?.blockTimeMs ?? 1000) * confs + overhead + (dst?.blockTimeMs ?? 1000),
      };
      return { ...base, ...o.overrides?.[`${q.srcChain}>${q.dstChain}`] };
    },
  };
}

/** A bridge price as `@xhedge/routing` takes it (`RouteOptions.bridge`): null when there is no route. */
export type RoutingBridgeCost = (fromChain: string, toChain: string, amountUsd: number) => BridgeCost | null;

/**
 * Adapts a {@link BridgeCostModel} to routing's function form, for a USD-like collateral `asset`
 * (routing sizes the move in USD). Chains outside the ChainId form give null (no route): routing
 * then skips that source instead of failing the plan.
 */
export function routingBridgeCost(model: BridgeCostModel, asset = 'USDC'): RoutingBridgeCost {
  return (fromChain, toChain, amountUsd) => {
    const src = ChainId.safeParse(fromChain);
    const dst = ChainId.safeParse(toChain);
    if (!src.success || !dst.success) return null;
    return model.estimate({ srcChain: src.data, dstChain: dst.data, asset, amount: amountUsd });
  };
}
