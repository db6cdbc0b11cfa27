import { createHash } from 'node:crypto';
import {
  chainInfo,
  Dec,
  type FundingRate,
  instrumentMeta,
  type Mark,
  MS_PER_HOUR,
  type Side,
  toDecimalString,
} from '@xhedge/core';
import type { GasProcess } from '@xhedge/sim';
import type { MarketInfo, VenueCapabilities } from '@xhedge/venue';
import { z } from 'zod';
import { chainGasProcess, type ExecQuote, PaperVenueBase, type PaperVenueContext } from './base.ts';
import { COMMON_PARAMS, parseParams, sizeStep } from './params.ts';

/** Parameters of a GMX-v2-style paper venue (config `params`; every field optional). */
export const GmxParams = z
  .object({
    /** Delay before the keeper executes an order, ms of market time. @defaultValue 1500 */
    keeperDelayMs: z.number().int().nonnegative().default(1500),
    /** Position fee when the trade reduces the long/short imbalance, bps. @defaultValue 4 */
    positionFeeBalancingBps: z.number().nonnegative().default(4),
    /** Position fee when it increases the imbalance, bps. @defaultValue 6 */
    positionFeeUnbalancingBps: z.number().nonnegative().default(6),
    /** Price impact factor: impactUsd = factor × (nextImbalance² − imbalance²), per USD. @defaultValue 5e-10 */
    priceImpactFactorPerUsd: z.number().nonnegative().default(5e-10),
    /** Borrow rate per hour at full utilization of a side's cap, decimal. @defaultValue 0.00003 */
    borrowRatePerHourAtCap: z.number().nonnegative().default(0.00003),
    /** Funding per hour at full imbalance, decimal (longs pay when longs dominate). @defaultValue 0.00002 */
    fundingRatePerHourAtFullImbalance: z.number().nonnegative().default(0.00002),
    /** Keeper execution fee on top of L2 gas, USD. @defaultValue 0.05 */
    executionFeeUsd: z.number().nonnegative().default(0.05),
    /** Other traders' open interest per side, USD. @defaultValue long 30M, short 27M */
    othersLongOiUsd: z.number().nonnegative().default(30_000_000),
    othersShortOiUsd: z.number().nonnegative().default(27_000_000),
    /** Open-interest cap per side, USD. @defaultValue 50M */
    maxOpenInterestUsd: z.number().positive().default(50_000_000),
    /**
     * Largest leverage: a position locks notional / maxLeverage of collateral, listed as the markets'
     * `initialMarginFraction`. At least 1 (no perp asks more margin than notional). @defaultValue 50
     */
    maxLeverage: z.number().min(1).finite().default(50),
    ...COMMON_PARAMS,
  })
  .strict();
export type GmxParams = z.input<typeof GmxParams>;

type D = InstanceType<typeof Dec>;

/**
 * GMX-v2-style perps on Arbitrum: oracle-priced, price impact on the open-interest imbalance, 4/6 bps
 * position fee (balancing/unbalancing), borrow and funding fees accruing hourly-rate continuously, a
 * keeper that executes orders after a delay and cancels them when the acceptable price is breached or
 * an open-interest cap would be exceeded. No client order id of its own: the adapter keeps the
 * mapping client id → order key (bytes32).
 */
export class PaperGmxVenue extends PaperVenueBase {
  readonly kind = 'paper-gmx';
  readonly capabilities: VenueCapabilities = {
    products: ['perp'],
    venueGreeks: false,
    liquidityModel: 'oracle',
    executionMode: 'async-keeper',
    orderTypes: ['market', 'limit'],
    reduceOnly: true,
    cancel: true,
    clientOrderId: 'none',
    fundingIntervalHours: 1,
    collateral: ['USDC'],
    inverseSettlement: false,
    gasAsset: 'ETH',
  };
  protected readonly oraclePriced = true;
  readonly params: z.output<typeof GmxParams>;
  readonly #gas: GasProcess;
  readonly #instruments: string[];
  #lastAccrualMs: number;

  constructor(ctx: PaperVenueContext, params: unknown = {}) {
    super(ctx);
    this.params = parseParams(ctx.id, GmxParams, params);
    this.requestLatencyMs = this.params.latencyMs;
    this.#gas = chainGasProcess(ctx, [0.01, 0.5]);
    const unds = this.params.underlyings ?? ctx.market.underlyings;
    this.#instruments = unds.filter((u) => ctx.market.hasUnderlying(u)).map((u) => `${u}-USD:PERP`);
    this.#lastAccrualMs = ctx.market.nowMs();
  }

  /** The venue's order key for a client order id (what the real adapter persists). */
  orderKeyOf(clientOrderId: string): string | undefined {
    return this.orders.get(clientOrderId)?.venueOrderId;
  }

  protected allocateVenueOrderId(clientOrderId: string, seq: number): string {
    const h = createHash('sha256').update(`${this.id}|${clientOrderId}|${seq}`).digest('hex');
    return `0x${h}`;
  }

  protected override keeperDelayMs(): number {
    return this.params.keeperDelayMs;
  }
  protected override expectedLatencyMs(): number {
    return this.requestLatencyMs + this.params.keeperDelayMs + (chainInfo(this.chain)?.blockTimeMs ?? 0);
  }
  protected override defaultLateFillMs(): number {
    return this.params.keeperDelayMs;
  }

  #underlying(instrument: string): string {
    return instrument.split('-')[0] ?? '';
  }

  /** Open interest per side in USD, including this account's position. */
  openInterestUsd(instrument: string, extraSigned: D = new Dec(0)): { long: number; short: number } {
    const spot = this.market.spot(this.#underlying(instrument));
    const pos = this.positionSize(instrument).add(extraSigned).toNumber();
    return {
      long: this.params.othersLongOiUsd + Math.max(pos, 0) * spot,
      short: this.params.othersShortOiUsd + Math.max(-pos, 0) * spot,
    };
  }

  protected marketInfos(): MarketInfo[] {
    return this.#instruments.map((id) => {
      const u = this.#underlying(id);
      const spot = this.market.spot(u);
      const oi = this.openInterestUsd(id);
      const step = sizeStep(u);
      const room = (usd: number) =>
        toDecimalString(Math.max(0, Math.floor(usd / spot / Number(step)) * Number(step)), 8);
      return {
        instrument: instrumentMeta(id),
        venueSymbol: `${u}/USD [W${u}-USDC]`,
        minSizeBase: step,
        sizeStepBase: step,
        priceTickUsd: '0.01',
        openInterestRoomBase: {
          long: room(this.params.maxOpenInterestUsd - oi.long),
          short: room(this.params.maxOpenInterestUsd - oi.short),
        },
        // what marginPerUnitUsd locks per USD of notional
        initialMarginFraction: 1 / this.params.maxLeverage,
        active: true,
      };
    });
  }

  protected execQuote(instrument: string, side: Side, size: D): ExecQuote {
    const u = this.#underlying(instrument);
    const oracle = this.market.spot(u);
    const signed = side === 'buy' ? size : size.neg();
    const before = this.openInterestUsd(instrument);
    const after = this.openInterestUsd(instrument, signed);
    const d0 = Math.abs(before.long - before.short);
    const d1 = Math.abs(after.long - after.short);
    const notional = size.toNumber() * oracle;
    const impactUsd = this.params.priceImpactFactorPerUsd * (d1 * d1 - d0 * d0);
    const balancing = d1 < d0;
    const feeBps = balancing ? this.params.positionFeeBalancingBps : this.params.positionFeeUnbalancingBps;
    const perUnit = impactUsd / size.toNumber();
    const avg = side === 'buy' ? oracle + perUnit : oracle - perUnit;
    const q: ExecQuote = {
      referencePriceUsd: oracle,
      avgPriceUsd: avg,
      feeUsd: (notional * feeBps) / 10_000,
      impactUsd,
      executableSize: size,
    };
    const cap = this.params.maxOpenInterestUsd;
    const sideAfter = side === 'buy' ? after.long : after.short;
    const sideBefore = side === 'buy' ? before.long : before.short;
    if (sideAfter > cap && sideAfter > sideBefore) {
      const roomBase = Math.max(0, (cap - sideBefore) / oracle);
      const step = Number(sizeStep(u));
      q.executableSize = Dec.min(size, new Dec(toDecimalString(Math.floor(roomBase / step) * step, 8)));
      q.capReason = `open-interest cap of ${cap} USD on the ${side === 'buy' ? 'long' : 'short'} side`;
    }
    return q;
  }

  fundingRatePerHour(instrument: string): number {
    const oi = this.openInterestUsd(instrument);
    const total = oi.long + oi.short;
    return total > 0 ? (this.params.fundingRatePerHourAtFullImbalance * (oi.long - oi.short)) / total : 0;
  }
  borrowRatePerHour(instrument: string, long: boolean): number {
    const oi = this.openInterestUsd(instrument);
    return (
      this.params.borrowRatePerHourAtCap * ((long ? oi.long : oi.short) / this.params.maxOpenInterestUsd)
    );
  }

  protected override fundingCarryUsd(instrument: string, side: Side, size: D, hours: number): number {
    const notional = size.toNumber() * this.market.spot(this.#underlying(instrument));
    const long = side === 'buy';
    const funding = this.fundingRatePerHour(instrument) * (long ? 1 : -1);
    return notional * hours * (funding + this.borrowRatePerHour(instrument, long));
  }

  async fetchFundingRate(instrument: string): Promise<FundingRate> {
    await this.enter();
    this.marketOrThrow(instrument);
    return {
      venue: this.id,
      instrument,
      ratePerHour: this.fundingRatePerHour(instrument),
      asOfMs: this.now(),
    };
  }

  protected override accrue(nowMs: number): void {
    const hours = (nowMs - this.#lastAccrualMs) / MS_PER_HOUR;
    this.#lastAccrualMs = nowMs;
    if (hours <= 0) return;
    let cost = 0;
    for (const [inst, p] of this.positions) {
      if (p.size.isZero()) continue;
      const long = p.size.isPos();
      const notional = p.size.abs().toNumber() * this.market.spot(this.#underlying(inst));
      cost +=
        notional *
        hours *
        (this.borrowRatePerHour(inst, long) + this.fundingRatePerHour(inst) * (long ? 1 : -1));
    }
    if (cost !== 0) this.addCash(-cost);
  }

  protected markOf(instrument: string): Mark {
    const spot = this.market.spot(this.#underlying(instrument));
    return { venue: this.id, instrument, markPriceUsd: spot, indexPriceUsd: spot, asOfMs: this.now() };
  }
  protected gasUsdNow(): number {
    return this.#gas.usdAt(this.now()) + this.params.executionFeeUsd;
  }
  protected settlement(): 'margin' {
    return 'margin';
  }
  protected marginPerUnitUsd(instrument: string): number {
    return this.market.spot(this.#underlying(instrument)) / this.params.maxLeverage;
  }
}
