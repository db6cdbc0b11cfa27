import {
  Dec,
  type FundingRate,
  instrumentMeta,
  type Mark,
  MS_PER_HOUR,
  type Side,
  toDecimalString,
} from '@xhedge/core';
import { createGasProcess, createRng, type GasProcess, hashString } from '@xhedge/sim';
import { InvalidOrderError, type MarketInfo, type OrderBook, type VenueCapabilities } from '@xhedge/venue';
import { z } from 'zod';
import { type ExecQuote, type OrderRecord, PaperVenueBase, type PaperVenueContext } from './base.ts';
import { COMMON_PARAMS, PerUnderlying, parseParams, sizeStep } from './params.ts';

export const DriftParams = z
  .object({
    /** Taker fee, bps. @defaultValue 10 */
    takerFeeBps: z.number().default(10),
    /** Maker fee, bps (negative = rebate). @defaultValue -0.25 */
    makerFeeBps: z.number().default(-0.25),
    /** Half the bid/ask spread at the top of the book, bps. @defaultValue 2 */
    halfSpreadBps: z.number().nonnegative().default(2),
    /** Price step between book levels, bps. @defaultValue 1.5 */
    levelStepBps: z.number().positive().default(1.5),
    /** Book levels per side. @defaultValue 25 */
    levels: z.number().int().positive().max(500).default(25),
    /** Depth per level per underlying, USD. @defaultValue BTC 400k, ETH 300k, SOL 150k, others 100k */
    depthPerLevelUsd: PerUnderlying.default({ BTC: 400_000, ETH: 300_000, SOL: 150_000 }),
    /** Mean and sd of the hourly funding rate, decimal per hour (+ = longs pay). @defaultValue 0.00001 / 0.00002 */
    fundingMeanPerHour: z.number().default(0.00001),
    fundingSdPerHour: z.number().nonnegative().default(0.00002),
    /** Compute-unit limit of an order transaction. @defaultValue 200000 */
    computeUnits: z.number().int().positive().default(200_000),
    /** Priority fee range, micro-lamports per compute unit. @defaultValue 1000 to 500000 */
    priorityFeeMinMicroLamports: z.number().positive().default(1_000),
    priorityFeeMaxMicroLamports: z.number().positive().default(500_000),
    /**
     * Largest leverage: a position locks notional / maxLeverage of collateral, listed as the markets'
     * `initialMarginFraction`. At least 1 (no perp asks more margin than notional). @defaultValue 20
     */
    maxLeverage: z.number().min(1).finite().default(20),
    ...COMMON_PARAMS,
  })
  .strict();
export type DriftParams = z.input<typeof DriftParams>;

type D = InstanceType<typeof Dec>;
const LAMPORTS_PER_SOL = 1e9;
const BASE_FEE_LAMPORTS = 5000;

/**
 * Drift-style perps on Solana: a synthetic order book around the oracle (depth-based slippage), 10 bps
 * taker fee, hourly funding settled on the hour, a priority fee on every transaction, limit orders
 * that rest until the market reaches them, and a u8 user order id (1–255, unique among open orders)
 * mapped from the orchestrator's client order id.
 */
export class PaperDriftVenue extends PaperVenueBase {
  readonly kind = 'paper-drift';
  readonly capabilities: VenueCapabilities = {
    products: ['perp'],
    venueGreeks: false,
    liquidityModel: 'orderbook',
    executionMode: 'tx-confirmed',
    orderTypes: ['market', 'limit', 'ioc'],
    reduceOnly: true,
    cancel: true,
    clientOrderId: 'u8',
    fundingIntervalHours: 1,
    collateral: ['USDC'],
    inverseSettlement: false,
    gasAsset: 'SOL',
  };
  protected readonly oraclePriced = true;
  readonly params: z.output<typeof DriftParams>;
  readonly #instruments: string[];
  readonly #priority: GasProcess;
  readonly #userOrderIds = new Map<string, number>();
  #orderIdCounter = 0;
  #lastFundingHour: number;

  constructor(ctx: PaperVenueContext, params: unknown = {}) {
    super(ctx);
    this.params = parseParams(ctx.id, DriftParams, params);
    this.requestLatencyMs = this.params.latencyMs;
    const unds = this.params.underlyings ?? ctx.market.underlyings;
    this.#instruments = unds.filter((u) => ctx.market.hasUnderlying(u)).map((u) => `${u}-USD:PERP`);
    this.#priority = createGasProcess({
      seed: ctx.market.seed,
      label: `priority:${ctx.chain}`,
      lowUsd: this.params.priorityFeeMinMicroLamports,
      highUsd: this.params.priorityFeeMaxMicroLamports,
      periodMs: 60_000,
    });
    this.#lastFundingHour = Math.floor(ctx.market.nowMs() / MS_PER_HOUR);
  }

  /** The u8 user order id the venue knows this client order by (while it is open or after it filled). */
  userOrderIdOf(clientOrderId: string): number | undefined {
    return this.#userOrderIds.get(clientOrderId);
  }

  protected allocateVenueOrderId(clientOrderId: string): string {
    const inUse = new Set<number>();
    for (const rec of this.workingOrders()) {
      const uid = this.#userOrderIds.get(rec.clientOrderId);
      if (uid !== undefined) inUse.add(uid);
    }
    // Deterministic first choice from the client id, then the next free slot.
    const start = (hashString(clientOrderId) % 255) + 1;
    for (let k = 0; k < 255; k++) {
      const uid = ((start - 1 + k) % 255) + 1;
      if (!inUse.has(uid)) {
        this.#userOrderIds.set(clientOrderId, uid);
        this.#orderIdCounter += 1;
        return String(this.#orderIdCounter);
      }
    }
    throw new InvalidOrderError({
      venue: this.id,
      message: 'no free u8 user order id (255 open orders)',
      clientOrderId,
    });
  }

  #underlying(instrument: string): string {
    return instrument.split('-')[0] ?? '';
  }

  protected marketInfos(): MarketInfo[] {
    return this.#instruments.map((id, i) => {
      const u = this.#underlying(id);
      const step = sizeStep(u);
      return {
        instrument: instrumentMeta(id),
        venueSymbol: `${u}-PERP#${i}`,
        minSizeBase: step,
        sizeStepBase: step,
        priceTickUsd: u === 'SOL' ? '0.001' : '0.01',
        // what marginPerUnitUsd locks per USD of notional
        initialMarginFraction: 1 / this.params.maxLeverage,
        active: true,
      };
    });
  }

  #depthBase(u: string, price: number): number {
    return (this.params.depthPerLevelUsd[u] ?? 100_000) / price;
  }

  /** The synthetic book around the oracle. */
  async fetchOrderBook(instrument: string, depth = 10): Promise<OrderBook> {
    await this.enter();
    this.marketOrThrow(instrument);
    const u = this.#underlying(instrument);
    const mid = this.market.spot(u);
    const bids = [];
    const asks = [];
    for (let k = 0; k < Math.min(depth, this.params.levels); k++) {
      const off = (this.params.halfSpreadBps + k * this.params.levelStepBps) / 10_000;
      asks.push({ priceUsd: mid * (1 + off), sizeBase: this.#depthBase(u, mid) });
      bids.push({ priceUsd: mid * (1 - off), sizeBase: this.#depthBase(u, mid) });
    }
    return { instrument, bids, asks, asOfMs: this.now() };
  }

  /** Walks the book; `limit` stops at that price (ioc). */
  #walk(instrument: string, side: Side, size: number, limit?: number): { filled: number; avg: number } {
    const u = this.#underlying(instrument);
    const mid = this.market.spot(u);
    const per = this.#depthBase(u, mid);
    let left = size;
    let cost = 0;
    for (let k = 0; k < this.params.levels && left > 1e-15; k++) {
      const off = (this.params.halfSpreadBps + k * this.params.levelStepBps) / 10_000;
      const px = side === 'buy' ? mid * (1 + off) : mid * (1 - off);
      if (limit !== undefined && (side === 'buy' ? px > limit : px < limit)) break;
      const take = Math.min(left, per);
      cost += take * px;
      left -= take;
    }
    const filled = size - left;
    return { filled, avg: filled > 0 ? cost / filled : mid };
  }

  protected execQuote(instrument: string, side: Side, size: D): ExecQuote {
    const u = this.#underlying(instrument);
    const oracle = this.market.spot(u);
    const want = size.toNumber();
    const w = this.#walk(instrument, side, want);
    const step = Number(sizeStep(u));
    const exec =
      w.filled >= want - 1e-12 ? size : new Dec(toDecimalString(Math.floor(w.filled / step) * step, 8));
    const filled = exec.toNumber();
    const q: ExecQuote = {
      referencePriceUsd: oracle,
      avgPriceUsd: w.avg,
      feeUsd: (w.avg * filled * this.params.takerFeeBps) / 10_000,
      impactUsd: Math.abs(w.avg - oracle) * filled,
      executableSize: exec,
    };
    if (exec.lt(size))
      q.capReason = `book depth: ${exec.toFixed()} available within ${this.params.levels} levels`;
    return q;
  }

  protected override restsIfNotMarketable(rec: OrderRecord): boolean {
    if (rec.orderType !== 'limit' || rec.limit === undefined) return false;
    return this.restingFillPrice(rec) === undefined;
  }
  protected override restingFillPrice(rec: OrderRecord): number | undefined {
    if (rec.limit === undefined) return undefined;
    const mid = this.market.spot(this.#underlying(rec.instrument));
    const top = this.params.halfSpreadBps / 10_000;
    const limit = rec.limit.toNumber();
    if (rec.side === 'buy' && mid * (1 + top) <= limit) return limit;
    if (rec.side === 'sell' && mid * (1 - top) >= limit) return limit;
    return undefined;
  }
  protected override makerFeeUsd(_rec: OrderRecord, notionalUsd: number): number {
    return (notionalUsd * this.params.makerFeeBps) / 10_000;
  }

  /**
   * The funding rate of hour `hour` (an index of whole hours since the epoch; default the hour now), per
   * hour, + = longs pay: what `fetchFundingRate` reads during that hour, and what positions pay at its end.
   */
  fundingRatePerHour(instrument: string, hour = Math.floor(this.now() / MS_PER_HOUR)): number {
    const r = createRng(hashString(`${instrument}:${hour}`, this.market.seed));
    return this.params.fundingMeanPerHour + this.params.fundingSdPerHour * r.normal();
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

  protected override fundingCarryUsd(instrument: string, side: Side, size: D, hours: number): number {
    const notional = size.toNumber() * this.market.spot(this.#underlying(instrument));
    return notional * hours * this.params.fundingMeanPerHour * (side === 'buy' ? 1 : -1);
  }

  /**
   * Settles funding at each hour boundary crossed, at the rate of the hour it ends (the one
   * `fetchFundingRate` read during that hour); longs pay shorts when the rate is positive.
   */
  protected override accrue(nowMs: number): void {
    const hour = Math.floor(nowMs / MS_PER_HOUR);
    while (this.#lastFundingHour < hour) {
      const ended = this.#lastFundingHour;
      this.#lastFundingHour += 1;
      let pay = 0;
      for (const [inst, p] of this.positions) {
        if (p.size.isZero()) continue;
        pay +=
          p.size.toNumber() * this.market.spot(this.#underlying(inst)) * this.fundingRatePerHour(inst, ended);
      }
      if (pay !== 0) this.addCash(-pay);
    }
  }

  protected markOf(instrument: string): Mark {
    const spot = this.market.spot(this.#underlying(instrument));
    const half = this.params.halfSpreadBps / 10_000;
    return {
      venue: this.id,
      instrument,
      markPriceUsd: spot,
      indexPriceUsd: spot,
      bidUsd: spot * (1 - half),
      askUsd: spot * (1 + half),
      asOfMs: this.now(),
    };
  }

  /** 5000 lamports per signature plus compute-unit price × limit, in USD at the SOL price. */
  protected gasUsdNow(): number {
    const microLamportsPerCu = this.#priority.usdAt(this.now());
    const lamports = BASE_FEE_LAMPORTS + (microLamportsPerCu * this.params.computeUnits) / 1e6;
    const solUsd = this.market.hasUnderlying('SOL') ? this.market.spot('SOL') : 180;
    return (lamports / LAMPORTS_PER_SOL) * solUsd;
  }
  protected settlement(): 'margin' {
    return 'margin';
  }
  protected marginPerUnitUsd(instrument: string): number {
    return this.market.spot(this.#underlying(instrument)) / this.params.maxLeverage;
  }
}
