import {
  Dec,
  DecimalString,
  deterministicId,
  EntityId,
  FiniteNumber,
  HedgeIntent,
  type Side,
  TimestampMs,
  toDecimalString,
  Urgency,
} from '@xhedge/core';
import { z } from 'zod';

/** Cost breakdown of one leg, USD (positive = cost). */
export const LegCost = z.object({
  intentId: EntityId,
  venue: z.string(),
  chain: z.string(),
  instrument: z.string(),
  sizeBase: FiniteNumber.nonnegative(),
  feeUsd: FiniteNumber,
  /** Spread plus price impact for this size. */
  impactUsd: FiniteNumber,
  /** Gas or execution fee. */
  gasUsd: FiniteNumber,
  /** Funding over the expected holding time (negative when it earns). */
  fundingCarryUsd: FiniteNumber,
  /** Fee of moving collateral to this venue first. */
  bridgeFeeUsd: FiniteNumber,
  /** Price put on waiting for that collateral (latency × delay cost). */
  delayCostUsd: FiniteNumber,
  totalCostUsd: FiniteNumber,
  expectedLatencyMs: FiniteNumber.nonnegative(),
});
export type LegCost = z.infer<typeof LegCost>;

/** Collateral that must move before a leg can be sent; the leg lists this id in `dependsOn`. */
export const CollateralTransfer = z.object({
  id: EntityId,
  planId: EntityId,
  fromVenue: z.string(),
  fromChain: z.string(),
  toVenue: z.string(),
  toChain: z.string(),
  asset: z.string(),
  /** Amount to move, in units of `asset` (USD-like collateral). */
  amount: DecimalString,
  feeUsd: FiniteNumber.nonnegative(),
  expectedLatencyMs: FiniteNumber.nonnegative(),
});
export type CollateralTransfer = z.infer<typeof CollateralTransfer>;

/** What execution runs: transfers first, then legs (each waits for its `dependsOn`). */
export const HedgePlan = z.object({
  planId: EntityId,
  underlying: z.string(),
  createdAtMs: TimestampMs,
  reason: z.string(),
  urgency: Urgency,
  legs: z.array(HedgeIntent),
  legCosts: z.array(LegCost),
  transfers: z.array(CollateralTransfer),
  /** Signed delta requested by the decision and what the legs deliver, underlying units. */
  requestedDeltaBase: FiniteNumber,
  plannedDeltaBase: FiniteNumber,
  /** Part of the request no venue could take now (caps, liquidity, collateral). */
  shortfallBase: FiniteNumber.nonnegative(),
  totalCostUsd: FiniteNumber,
  /**
   * Free collateral the option (vega) legs take on each venue, USD, by venue: a buy's premium at its
   * limit price plus its fee, a sell's fee plus the collateral its venue locks for it where stated (the
   * premium a sell receives is not counted: it arrives only with the fill). Taken off the venue's free
   * collateral before the delta legs are routed; absent when the plan has no option legs.
   */
  optionCollateralUsd: z.record(z.string(), FiniteNumber.nonnegative()).optional(),
  /** How the router got there, in words (caps hit, venues skipped, splits). */
  notes: z.array(z.string()),
});
export type HedgePlan = z.infer<typeof HedgePlan>;

export function intentId(planId: string, index: number, venue: string, instrument: string): string {
  return deterministicId('hi', planId, index, venue, instrument);
}

export function transferId(planId: string, toVenue: string): string {
  return deterministicId('xfer', planId, toVenue);
}

/**
 * Limit price: expected price moved against us by `slippageBps`, rounded to the tick inside that bound
 * (a buy down, a sell up), in decimals: a 0.125 tick lands on 100.125, not 100.13, and 100.3 on a 0.1
 * tick stays 100.3 (100.3 / 0.1 is 1002.999… in floats).
 */
export function limitPrice(
  side: Side,
  expectedPriceUsd: number,
  slippageBps: number,
  tickUsd?: number,
): string {
  // in decimals too: 64000 × 1.005 is 64319.99999999999 in floats, a tick below the bound of 64320
  const move = new Dec(toDecimalString(slippageBps, 12)).div(10_000);
  const raw = new Dec(toDecimalString(expectedPriceUsd, 12)).mul(
    side === 'buy' ? move.plus(1) : new Dec(1).minus(move),
  );
  if (!tickUsd || tickUsd <= 0) return toDecimalString(raw, 8);
  const tick = new Dec(toDecimalString(tickUsd, 12));
  if (tick.isZero()) return toDecimalString(raw, 12); // a tick finer than 1e-12 USD: no rounding to it
  const ticks = raw.div(tick).toDecimalPlaces(0, side === 'buy' ? Dec.ROUND_FLOOR : Dec.ROUND_CEIL);
  const out = ticks.mul(tick).toFixed();
  return out === '-0' ? '0' : out;
}
