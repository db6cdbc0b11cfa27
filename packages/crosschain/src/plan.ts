import {
  type Balance,
  type ChainId,
  Dec,
  deterministicId,
  type HedgeIntent,
  XhedgeError,
} from '@xhedge/core';
import { decodeAbiParameters, encodeAbiParameters, type Hex, parseAbiParameters } from 'viem';
import type { BridgeCostModel } from './cost.ts';

export interface CollateralNeed {
  /** The plan the hedge belongs to; with venue and asset it makes the transfer id deterministic. */
  planId: string;
  venue: string;
  chain: ChainId;
  asset: string;
  /** Collateral the hedge needs on `venue`, units of `asset`. */
  requiredAmount: number;
}

export interface TransferPlan {
  transferId: string;
  kind: 'oft-send';
  fromVenue: string;
  toVenue: string;
  srcChain: ChainId;
  dstChain: ChainId;
  asset: string;
  /** Exact amount to move (shortfall plus buffer, rounded up to cents). */
  amount: string;
  feeUsd: number;
  latencyMs: number;
}

export class InsufficientCollateralError extends XhedgeError {
  override name = 'InsufficientCollateralError';
}

export interface PlanTransferOptions {
  need: CollateralNeed;
  balances: readonly Balance[];
  costModel: BridgeCostModel;
  /** Extra moved above the shortfall, as a fraction. @defaultValue 0.1 */
  bufferFraction?: number;
  /** Amount each source venue keeps untouched, units of the asset. @defaultValue 0 */
  reserveAmount?: number;
}

/**
 * When the venue routing picked is short of collateral, picks the cheapest venue holding enough of
 * the same asset on another chain and plans an OFT send of shortfall × (1 + buffer). Returns null when
 * nothing needs to move. Throws InsufficientCollateralError when no venue can cover it.
 */
export function planCollateralTransfer(o: PlanTransferOptions): TransferPlan | null {
  const { need } = o;
  const free = (b: Balance) => b.available ?? b.amount;
  const have = o.balances
    .filter((b) => b.venue === need.venue && b.asset === need.asset)
    .reduce((s, b) => s + free(b), 0);
  const shortfall = need.requiredAmount - have;
  if (!(shortfall > 0)) return null;
  const amount = new Dec(shortfall).mul(1 + (o.bufferFraction ?? 0.1)).toDecimalPlaces(2, Dec.ROUND_UP);
  const reserve = o.reserveAmount ?? 0;
  const candidates = o.balances
    .filter((b) => b.venue !== need.venue && b.asset === need.asset && free(b) - reserve >= amount.toNumber())
    .map((b) => ({
      b,
      cost: o.costModel.estimate({
        srcChain: b.chain,
        dstChain: need.chain,
        asset: need.asset,
        amount: amount.toNumber(),
      }),
    }))
    .sort((x, y) => x.cost.feeUsd - y.cost.feeUsd || x.cost.latencyMs - y.cost.latencyMs);
  const best = candidates[0];
  if (!best)
    throw new InsufficientCollateralError(
      'INSUFFICIENT_COLLATERAL',
      `no venue can move ${amount.toFixed()} ${need.asset} to ${need.venue}`,
      {
        details: { need, shortfall },
      },
    );
  return {
    transferId: deterministicId('xfer', need.planId, need.venue, need.asset),
    kind: 'oft-send',
    fromVenue: best.b.venue,
    toVenue: need.venue,
    srcChain: best.b.chain,
    dstChain: need.chain,
    asset: need.asset,
    amount: amount.toFixed(),
    feeUsd: best.cost.feeUsd,
    latencyMs: best.cost.latencyMs,
  };
}

const HEDGE_INSTRUCTION = parseAbiParameters(
  'string intentId, string venue, string instrument, uint8 side, string sizeBase, string limitPriceUsd, bool reduceOnly',
);

/**
 * The OApp message that asks an executor on the destination chain to place a hedge there, for when
 * collateral already sits on that chain and only the instruction must travel. ABI-encoded; decimals
 * stay exact strings.
 */
export function encodeHedgeInstruction(
  i: Pick<HedgeIntent, 'id' | 'venue' | 'instrument' | 'side' | 'sizeBase' | 'limitPriceUsd' | 'reduceOnly'>,
): Hex {
  return encodeAbiParameters(HEDGE_INSTRUCTION, [
    i.id,
    i.venue,
    i.instrument,
    i.side === 'buy' ? 0 : 1,
    i.sizeBase,
    i.limitPriceUsd ?? '',
    i.reduceOnly,
  ]);
}

export function decodeHedgeInstruction(message: Hex): {
  id: string;
  venue: string;
  instrument: string;
  side: 'buy' | 'sell';
  sizeBase: string;
  limitPriceUsd?: string;
  reduceOnly: boolean;
} {
  const [id, venue, instrument, side, sizeBase, limit, reduceOnly] = decodeAbiParameters(
    HEDGE_INSTRUCTION,
    message,
  );
  return {
    id,
    venue,
    instrument,
    side: side === 0 ? 'buy' : 'sell',
    sizeBase,
    ...(limit === '' ? {} : { limitPriceUsd: limit }),
    reduceOnly,
  };
}
