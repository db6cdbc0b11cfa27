import type { DriftFeeTier } from './decode.ts';
import { FEE_ADJUSTMENT_MAX } from './layout.ts';

/** Solana's base fee per signature, lamports. */
export const LAMPORTS_PER_SIGNATURE = 5000n;
export const MICRO_LAMPORTS_PER_LAMPORT = 1_000_000n;

export interface SolanaFeeInput {
  signatures: number;
  /** ComputeBudget setComputeUnitPrice, micro-lamports per compute unit. */
  computeUnitPriceMicroLamports: bigint;
  /** ComputeBudget setComputeUnitLimit, compute units. */
  computeUnitLimit: number;
}

/**
 * Fee the payer is charged: 5000 lamports per signature plus the prioritization fee
 * ceil(CU price × CU limit / 1e6). The priority fee is charged on the requested limit, not on the
 * units consumed, so the limit should be sized to the instruction, not left at the 1.4M maximum.
 */
export function solanaFeeLamports(i: SolanaFeeInput): bigint {
  const base = LAMPORTS_PER_SIGNATURE * BigInt(i.signatures);
  const micro = i.computeUnitPriceMicroLamports * BigInt(i.computeUnitLimit);
  const priority = (micro + MICRO_LAMPORTS_PER_LAMPORT - 1n) / MICRO_LAMPORTS_PER_LAMPORT;
  return base + priority;
}

const ADJ_MAX = BigInt(FEE_ADJUSTMENT_MAX);

function checkFeeInputs(fillQuote: bigint, numerator: number, denominator: number, adj: number): void {
  if (fillQuote < 0n) throw new RangeError(`fill quote amount ${fillQuote} must not be negative`);
  if (!Number.isInteger(numerator) || numerator < 0 || !Number.isInteger(denominator) || denominator <= 0)
    throw new RangeError(
      `fee fraction ${numerator}/${denominator} must be a non-negative integer over a positive one`,
    );
  if (!Number.isInteger(adj) || Math.abs(adj) > FEE_ADJUSTMENT_MAX)
    throw new RangeError(
      `fee_adjustment ${adj} must be an integer percent in -${FEE_ADJUSTMENT_MAX}..=${FEE_ADJUSTMENT_MAX}`,
    );
}

/**
 * The taker fee protocol-v2 charges on one fill (`calculate_taker_fee`), in QUOTE_PRECISION units
 * (1e-6 USDC), from the fill's quote amount in the same units: ceil(quote × numerator / denominator),
 * then the market's `fee_adjustment` percent: a cut of floor(fee × |adj| / 100) when negative, an
 * addition of ceil(fee × adj / 100) when positive. Integers throughout, as the program computes it.
 * The program charges each fulfillment separately, so over an order filled in n parts the fee can
 * exceed this of the order's total quote by up to n − 1 units.
 */
export function driftTakerFeeQuote(fillQuote: bigint, tier: DriftFeeTier, feeAdjustmentPct: number): bigint {
  checkFeeInputs(fillQuote, tier.takerFeeNumerator, tier.takerFeeDenominator, feeAdjustmentPct);
  const den = BigInt(tier.takerFeeDenominator);
  const fee = (fillQuote * BigInt(tier.takerFeeNumerator) + den - 1n) / den;
  const adj = BigInt(feeAdjustmentPct);
  if (adj < 0n) return fee - (fee * -adj) / ADJ_MAX;
  if (adj > 0n) return fee + (fee * adj + ADJ_MAX - 1n) / ADJ_MAX;
  return fee;
}

/**
 * The rebate protocol-v2 pays a maker on one fill (`calculate_maker_rebate`), QUOTE_PRECISION units:
 * floor(quote × numerator / denominator), then the market's `fee_adjustment`: a cut of
 * ceil(rebate × |adj| / 100) when negative, an addition of floor(rebate × adj / 100) when positive.
 */
export function driftMakerRebateQuote(
  fillQuote: bigint,
  tier: DriftFeeTier,
  feeAdjustmentPct: number,
): bigint {
  checkFeeInputs(fillQuote, tier.makerRebateNumerator, tier.makerRebateDenominator, feeAdjustmentPct);
  const rebate = (fillQuote * BigInt(tier.makerRebateNumerator)) / BigInt(tier.makerRebateDenominator);
  const adj = BigInt(feeAdjustmentPct);
  if (adj < 0n) return rebate - (rebate * -adj + ADJ_MAX - 1n) / ADJ_MAX;
  if (adj > 0n) return rebate + (rebate * adj) / ADJ_MAX;
  return rebate;
}
