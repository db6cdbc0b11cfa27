import { FiniteNumber, TimestampMs } from '@xhedge/core';
import { z } from 'zod';

/** Version of the {@link RiskSnapshot} shape; bump on any breaking change so stored snapshots stay readable. */
export const RISK_SNAPSHOT_VERSION = 1 as const;

/**
 * Aggregated Greeks of a set of positions and balances (size applied), in the project's units:
 * - `delta` underlying units, USD numéraire; `deltaUsd` = delta × spot
 * - `netDeltaCoin`: delta with coin-settled option premiums counted in coin (Deribit's "net" delta:
 *   BS delta − option price in coin); equal to `delta` when the book holds no coin-settled options
 * - `gamma` per 1 USD move; `gamma1PctUsd` = Γ·S·(0.01·S), the USD delta change for a 1% move
 * - `vegaPerVolPoint` USD per 0.01 vol; `thetaPerDay` USD per calendar day; `rhoPer1Pct` USD per 0.01 rate
 * - `vannaPerVolPoint`: delta change per 0.01 vol (used for Leland-adjusted hedge ratios)
 * - `valueUsd`: model value of the options, futures' P&L vs. now is 0, perps 0, balances at spot
 * - `fundingUsdPerHour`: funding P&L per hour at current rates (negative = paying)
 */
export const GreekTotals = z.object({
  delta: FiniteNumber,
  deltaUsd: FiniteNumber,
  netDeltaCoin: FiniteNumber,
  gamma: FiniteNumber,
  gamma1PctUsd: FiniteNumber,
  vegaPerVolPoint: FiniteNumber,
  thetaPerDay: FiniteNumber,
  rhoPer1Pct: FiniteNumber,
  vannaPerVolPoint: FiniteNumber,
  valueUsd: FiniteNumber,
  fundingUsdPerHour: FiniteNumber,
});
export type GreekTotals = z.infer<typeof GreekTotals>;

/** Field order of {@link GreekTotals}; the engine accumulates into flat Float64Arrays in this order. */
export const GREEK_FIELDS = [
  'delta',
  'deltaUsd',
  'netDeltaCoin',
  'gamma',
  'gamma1PctUsd',
  'vegaPerVolPoint',
  'thetaPerDay',
  'rhoPer1Pct',
  'vannaPerVolPoint',
  'valueUsd',
  'fundingUsdPerHour',
] as const satisfies readonly (keyof GreekTotals)[];

/** Book P&L (USD, full revaluation) for each vol shock (rows) × spot shock (columns). */
export const ScenarioGrid = z.object({
  spotShocksPct: z.array(FiniteNumber),
  volShocksPts: z.array(FiniteNumber),
  /** `pnlUsd[i][j]`: vol shock i, spot shock j. */
  pnlUsd: z.array(z.array(FiniteNumber)),
});
export type ScenarioGrid = z.infer<typeof ScenarioGrid>;

export const UnderlyingRisk = GreekTotals.extend({
  underlying: z.string(),
  spotUsd: FiniteNumber.positive(),
  volDecimal: FiniteNumber.positive(),
  rateDecimal: FiniteNumber,
  /** |Γ|-weighted time to expiry of the options, years (0 without options): Whalley–Wilmott discounting. */
  gammaWeightedTenorYears: FiniteNumber.nonnegative(),
  /**
   * Delta of the live (unexpired) options alone, size applied, underlying units: the part of `delta`
   * that moves with vol. Optional only so snapshots stored before it, and books built by hand (the
   * backtester), still parse; the engine always sets it, with the two bounds below.
   */
  optionDeltaBase: FiniteNumber.optional(),
  /**
   * Least and greatest delta the live options can have at any spot, vol or time, underlying units: a
   * call's delta per unit lies in (0, 1) and a put's in (−1, 0), so the floor is −(long puts + short
   * calls) and the ceiling long calls + short puts. The strategy keeps vol-adjusted deltas inside them,
   * and ceiling − floor (the options' gross size) bounds how far their delta can move at all.
   */
  optionDeltaFloorBase: FiniteNumber.optional(),
  optionDeltaCeilingBase: FiniteNumber.optional(),
  /**
   * Settlement prices, USD by expiry date YYYYMMDD, of the expired options and futures held, as the
   * market gave them (`UnderlyingMarket.settlementPricesUsd`); those not known were taken at spot and
   * are absent (see `warnings`). `bookEquity` settles an expired future's P&L at the same price, so
   * that it moves with spot exactly as the engine's delta says. Absent when nothing held has expired.
   */
  settlementPricesUsd: z.record(z.string(), FiniteNumber.positive()).optional(),
  positionCount: z.number().int().nonnegative(),
  /** Vega per vol point by expiry date (YYYYMMDD). */
  vegaByExpiry: z.record(z.string(), FiniteNumber),
  /** Vega per vol point by tenor bucket (`0-7d`, `7-30d`, ..., `180d+`). */
  vegaByBucket: z.record(z.string(), FiniteNumber),
  byVenue: z.record(z.string(), GreekTotals),
  byChain: z.record(z.string(), GreekTotals),
  scenarios: ScenarioGrid.optional(),
});
export type UnderlyingRisk = z.infer<typeof UnderlyingRisk>;

export const StaleInputKind = z.enum(['position', 'mark', 'funding', 'balance', 'market', 'venue-greeks']);
export type StaleInputKind = z.infer<typeof StaleInputKind>;

export const StaleInput = z.object({
  kind: StaleInputKind,
  /** Venue, when the input belongs to one. */
  venue: z.string().optional(),
  /** Instrument, asset or underlying the input describes. */
  key: z.string(),
  asOfMs: TimestampMs,
  ageMs: FiniteNumber.nonnegative(),
  /** How far past its allowed age the input is. */
  staleByMs: FiniteNumber.nonnegative(),
});
export type StaleInput = z.infer<typeof StaleInput>;

export const GreeksDivergence = z.object({
  venue: z.string(),
  instrument: z.string(),
  greek: z.enum(['delta', 'gamma', 'vegaPerVolPoint', 'thetaPerDay']),
  /** Per unit of underlying, our model. */
  local: FiniteNumber,
  /** Per unit of underlying, as the venue publishes it (normalized). */
  venueValue: FiniteNumber,
  absDiff: FiniteNumber.nonnegative(),
  tolerance: FiniteNumber.nonnegative(),
  convention: z.string(),
});
export type GreeksDivergence = z.infer<typeof GreeksDivergence>;

/** One versioned, serializable picture of the book's risk. `seq` increases by one per snapshot of an engine. */
export const RiskSnapshot = z.object({
  version: z.literal(RISK_SNAPSHOT_VERSION),
  seq: z.number().int().nonnegative(),
  /** The engine clock's time when the snapshot was taken. */
  asOfMs: TimestampMs,
  underlyings: z.record(z.string(), UnderlyingRisk),
  stale: z.array(StaleInput),
  /** Stale inputs in total (the list is capped). */
  staleCount: z.number().int().nonnegative(),
  /** Venue Greeks (fresh ones only: stale ones are in `stale`) beyond tolerance from the model's. */
  divergences: z.array(GreeksDivergence),
  /** Inputs the engine could not use, in words (unknown underlying, missing market, expired option). */
  warnings: z.array(z.string()),
  /**
   * The book's equity, USD (risk's `bookEquity`: cash, positions at their marks, options at the model,
   * collateral on its way), set by the planner when every venue was read, everything held was valued and
   * no order was working; absent otherwise. P&L attribution takes a range's actual P&L from it.
   */
  bookEquityUsd: FiniteNumber.optional(),
});
export type RiskSnapshot = z.infer<typeof RiskSnapshot>;
