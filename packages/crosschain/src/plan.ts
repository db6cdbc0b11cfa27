import {
  assertFinite,
  type Balance,
  type ChainId,
  Dec,
  DecimalString,
  deterministicId,
  type HedgeIntent,
  isUsdLike,
  toDecimalString,
  XhedgeError,
} from '@xhedge/core';
import { decodeAbiParameters, encodeAbiParameters, type Hex, parseAbiParameters } from 'viem';
import { type BridgeCostModel, bridgeFeeInAsset } from './cost.ts';

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
  /**
   * Exact amount to move: shortfall plus buffer, rounded up to cents for a USD-like asset and to the
   * OFT's shared decimals for any other (what the bridge moves without dust).
   */
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
  /**
   * Whether the bridge takes its USD fee from the source in the asset when the asset is USD-like, as
   * PaperBridge's `chargeFeeInAsset` does (then a source must hold the amount plus that fee above its
   * reserve). @defaultValue true (PaperBridge's default)
   */
  chargeFeeInAsset?: boolean;
  /** Decimals of the asset the fee is taken in, as PaperBridge's `assetDecimals`. */
  assetDecimals?: Readonly<Record<string, number>>;
  /**
   * The OFT's shared decimals (PaperBridge's `sharedDecimals`): a non-USD amount is rounded up to them,
   * so the bridge removes no dust from it. @defaultValue 6
   */
  sharedDecimals?: number;
}

/**
 * When the venue routing picked is short of collateral, picks the cheapest venue holding enough of
 * the same asset on another chain and plans an OFT send of shortfall × (1 + buffer). Returns null when
 * nothing needs to move. Throws InsufficientCollateralError when no venue can cover it. "Enough" counts
 * the fee the bridge debits with the amount (a USD-like asset, `chargeFeeInAsset`): a source holding the
 * amount alone was picked, and its debit refused (or taken out of its reserve).
 */
export function planCollateralTransfer(o: PlanTransferOptions): TransferPlan | null {
  const { need } = o;
  // A NaN anywhere here made the shortfall NaN, and `!(NaN > 0)` answered "nothing to move": the hedge
  // went ahead unfunded. A negative buffer or reserve would move less than the shortfall or dip below
  // the reserve. Bad numbers are refused instead.
  assertFinite('required collateral', need.requiredAmount, { venue: need.venue, asset: need.asset });
  const buffer = assertFinite('transfer buffer fraction', o.bufferFraction ?? 0.1);
  const reserve = assertFinite('source reserve', o.reserveAmount ?? 0);
  if (buffer < 0 || reserve < 0)
    throw new RangeError(`buffer fraction (${buffer}) and reserve (${reserve}) must not be negative`);
  const free = (b: Balance) => b.available ?? b.amount;
  const have = o.balances
    .filter((b) => b.venue === need.venue && b.asset === need.asset)
    .reduce((s, b) => s + assertFinite('free collateral', free(b), { venue: b.venue, asset: b.asset }), 0);
  const shortfall = need.requiredAmount - have;
  if (!(shortfall > 0)) return null;
  // Cents are the step of a USD-like asset only: a coin rounded up to 0.01 moved 0.01 WBTC (~1000 USD)
  // for a 0.00055 shortfall, and refused a source holding 0.004 as short of it.
  const sharedDecimals = o.sharedDecimals ?? 6;
  if (!Number.isInteger(sharedDecimals) || sharedDecimals < 0 || sharedDecimals > 18)
    throw new RangeError(`shared decimals ${sharedDecimals} must be a whole number from 0 to 18`);
  const step = isUsdLike(need.asset) ? Math.min(2, sharedDecimals) : sharedDecimals;
  // the float difference's noise (1.3 − 1 = 0.30000000000000004) is dropped before rounding up, or it
  // added a whole step (0.330001 WETH for 0.33)
  const amount = new Dec(toDecimalString(shortfall, 12))
    .mul(new Dec(1).add(toDecimalString(buffer, 12)))
    .toDecimalPlaces(step, Dec.ROUND_UP);
  // a shortfall that was float noise (0.1 + 0.2 needed, 0.3 held) is none: no transfer of 0
  if (!amount.gt(0)) return null;
  const feeInAsset = (o.chargeFeeInAsset ?? true) && isUsdLike(need.asset);
  const candidates = o.balances
    // a source whose balance is unreadable (NaN) is no source; the comparisons below are false for it
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
    // the fee as the bridge debits it (at the asset's decimals, rounded up): the float fee let a source
    // holding 110.1234567 USDC for a fee of 0.1234567 through, whose debit of 110.123457 is refused
    .filter(
      ({ b, cost }) =>
        !feeInAsset ||
        free(b) - reserve >=
          amount
            .add(
              bridgeFeeInAsset(
                assertFinite('bridge fee', cost.feeUsd, { from: b.venue, to: need.venue }),
                need.asset,
                o.assetDecimals,
              ),
            )
            .toNumber(),
    )
    .sort((x, y) => x.cost.feeUsd - y.cost.feeUsd || x.cost.latencyMs - y.cost.latencyMs);
  const best = candidates[0];
  if (!best)
    throw new InsufficientCollateralError(
      'INSUFFICIENT_COLLATERAL',
      `no venue can move ${amount.toFixed()} ${need.asset}${feeInAsset ? ' (plus its bridge fee)' : ''} to ${need.venue}`,
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
 * A plain decimal string above zero. (core's PositiveDecimalString runs its `> 0` refinement even when
 * the format check failed, and decimal.js throws on "abc" there.)
 */
export function isPositiveDecimal(s: string): boolean {
  return DecimalString.safeParse(s).success && new Dec(s).gt(0);
}

export class HedgeInstructionError extends XhedgeError {
  override name = 'HedgeInstructionError';
}

/** uint8 side on the wire; any other byte is refused, not read as a sell. */
const SIDE_CODE = { buy: 0, sell: 1 } as const;

function checkInstruction(i: {
  id: string;
  side: unknown;
  sizeBase: string;
  limitPriceUsd?: string | undefined;
}): void {
  const bad = (why: string) =>
    new HedgeInstructionError('HEDGE_INSTRUCTION_INVALID', `hedge instruction ${i.id}: ${why}`, {
      details: { id: i.id, side: String(i.side), sizeBase: i.sizeBase, limitPriceUsd: i.limitPriceUsd },
    });
  if (i.side !== 'buy' && i.side !== 'sell') throw bad(`side ${String(i.side)} is neither buy nor sell`);
  if (!isPositiveDecimal(i.sizeBase)) throw bad(`size ${i.sizeBase} is not a positive decimal`);
  if (i.limitPriceUsd !== undefined && !isPositiveDecimal(i.limitPriceUsd))
    throw bad(`limit price ${i.limitPriceUsd} is not a positive decimal`);
}

/**
 * The OApp message that asks an executor on the destination chain to place a hedge there, for when
 * collateral already sits on that chain and only the instruction must travel. ABI-encoded; decimals
 * stay exact strings.
 * A side other than buy/sell, or a size or limit that is not a positive decimal, is refused.
 */
export function encodeHedgeInstruction(
  i: Pick<HedgeIntent, 'id' | 'venue' | 'instrument' | 'side' | 'sizeBase' | 'limitPriceUsd' | 'reduceOnly'>,
): Hex {
  checkInstruction(i);
  return encodeAbiParameters(HEDGE_INSTRUCTION, [
    i.id,
    i.venue,
    i.instrument,
    SIDE_CODE[i.side],
    i.sizeBase,
    i.limitPriceUsd ?? '',
    i.reduceOnly,
  ]);
}

/**
 * Decodes and checks a hedge instruction: a side byte other than 0/1 (it read as a sell, a hedge in the
 * wrong direction) or a size or limit that is not a positive decimal throws HedgeInstructionError.
 */
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
  const sideName = side === SIDE_CODE.buy ? 'buy' : side === SIDE_CODE.sell ? 'sell' : undefined;
  const limitPriceUsd = limit === '' ? undefined : limit;
  checkInstruction({ id, side: sideName ?? side, sizeBase, limitPriceUsd });
  return {
    id,
    venue,
    instrument,
    side: sideName as 'buy' | 'sell',
    sizeBase,
    ...(limitPriceUsd === undefined ? {} : { limitPriceUsd }),
    reduceOnly,
  };
}
