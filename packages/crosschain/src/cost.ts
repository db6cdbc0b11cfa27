import {
  assertFinite,
  ChainId,
  chainInfo,
  Dec,
  type DecimalString,
  NumericError,
  toDecimalString,
  XhedgeError,
} from '@xhedge/core';

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

/**
 * A bridge price as `@xhedge/routing` takes it (`RouteOptions.bridge`): null when there is no route.
 * `asset` is the collateral to move (the source venue's); without it, the adapter's default asset.
 */
export type RoutingBridgeCost = (
  fromChain: string,
  toChain: string,
  amountUsd: number,
  asset?: string,
) => BridgeCost | null;

/**
 * Adapts a {@link BridgeCostModel} to routing's function form, for USD-like collateral (routing sizes
 * the move in USD): the asset routing names, else `defaultAsset`. Chains outside the ChainId form give
 * null (no route): routing then skips that source instead of failing the plan.
 */
export function routingBridgeCost(model: BridgeCostModel, defaultAsset = 'USDC'): RoutingBridgeCost {
  return (fromChain, toChain, amountUsd, asset = defaultAsset) => {
    const src = ChainId.safeParse(fromChain);
    const dst = ChainId.safeParse(toChain);
    if (!src.success || !dst.success) return null;
    return model.estimate({ srcChain: src.data, dstChain: dst.data, asset, amount: amountUsd });
  };
}

/**
 * Decimals of the USD-like assets a bridge fee may be taken in, as their tokens have them on most chains:
 * USDC and USDT 6, DAI 18. `USD` (a paper venue's cash) is read as a 6-decimal stablecoin. A chain where a
 * token has others (BNB Chain's USDC and USDT have 18) is given through the `assetDecimals` option.
 */
export const USD_LIKE_DECIMALS: Readonly<Record<string, number>> = { USDC: 6, USDT: 6, DAI: 18, USD: 6 };

export class BridgeFeeError extends XhedgeError {
  override name = 'BridgeFeeError';
}

/**
 * The decimals of `asset`: `assetDecimals` first, then {@link USD_LIKE_DECIMALS}. An asset in neither, or
 * a count that is not a whole number from 0 to 18, is refused by name: a fee debited at a guessed
 * precision was the bug this replaces (12 decimals, below a USDC unit).
 */
export function assetDecimalsOf(asset: string, assetDecimals?: Readonly<Record<string, number>>): number {
  const d = Object.hasOwn(assetDecimals ?? {}, asset) ? assetDecimals?.[asset] : USD_LIKE_DECIMALS[asset];
  if (d === undefined)
    throw new BridgeFeeError(
      'BRIDGE_ASSET_DECIMALS',
      `no decimals known for ${asset}: give them in assetDecimals (e.g. { ${asset}: 6 })`,
      { details: { asset } },
    );
  if (!(Number.isInteger(d) && d >= 0 && d <= 18))
    throw new BridgeFeeError(
      'BRIDGE_ASSET_DECIMALS',
      `decimals ${String(d)} of ${asset} must be a whole number from 0 to 18`,
      { details: { asset, decimals: String(d) } },
    );
  return d;
}

/**
 * A bridge's USD fee as the exact amount of the USD-like `asset` its sender is debited: at the asset's
 * own decimals ({@link assetDecimalsOf}), rounded up, so the sender is never charged less than the fee
 * (0.1234567 USD is 0.123457 USDC). The float fee's noise is dropped first (read at 12 decimals), or
 * 0.1 + 0.2 would cost 0.300001. A NaN, infinite or negative fee is refused.
 */
export function bridgeFeeInAsset(
  feeUsd: number,
  asset: string,
  assetDecimals?: Readonly<Record<string, number>>,
): DecimalString {
  assertFinite('bridge fee (USD)', feeUsd, { asset });
  if (feeUsd < 0)
    throw new BridgeFeeError('BRIDGE_NEGATIVE_FEE', `bridge fee ${feeUsd} USD must not be negative`, {
      details: { asset, feeUsd },
    });
  const decimals = assetDecimalsOf(asset, assetDecimals);
  return new Dec(toDecimalString(feeUsd, 12)).toDecimalPlaces(decimals, Dec.ROUND_UP).toFixed();
}
