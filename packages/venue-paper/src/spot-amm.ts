import { createHash } from 'node:crypto';
import { type Dec, instrumentMeta, type Mark, type Side } from '@xhedge/core';
import type { GasProcess } from '@xhedge/sim';
import type { MarketInfo, VenueCapabilities } from '@xhedge/venue';
import { z } from 'zod';
import { chainGasProcess, type ExecQuote, PaperVenueBase, type PaperVenueContext } from './base.ts';
import { COMMON_PARAMS, PerUnderlying, parseParams, sizeStep } from './params.ts';

export const SpotAmmParams = z
  .object({
    /** Pool fee, bps. @defaultValue 30 */
    feeBps: z.number().nonnegative().default(30),
    /** Pool value per underlying (both sides), USD. @defaultValue BTC 200M, ETH 300M, SOL 50M, others 20M */
    poolTvlUsd: PerUnderlying.default({ BTC: 200_000_000, ETH: 300_000_000, SOL: 50_000_000 }),
    /** Gas per swap, USD range; defaults to the chain's typical cost ($5–50 on Ethereum). */
    gasLowUsd: z.number().positive().optional(),
    gasHighUsd: z.number().positive().optional(),
    ...COMMON_PARAMS,
  })
  .strict();
export type SpotAmmParams = z.input<typeof SpotAmmParams>;

type D = InstanceType<typeof Dec>;

/**
 * A constant-product (x·y = k) spot AMM on Ethereum L1, pools `<COIN>-USDC:SPOT`. Arbitrageurs keep
 * the pool price at the simulated spot between trades (k is kept); a trade moves along the curve and
 * pays the pool fee; every swap costs $5–50 of gas from a gas process. Spot holdings are reported as
 * positions (long only: selling more than held is refused).
 */
export class PaperSpotAmmVenue extends PaperVenueBase {
  readonly kind = 'paper-spot-amm';
  readonly capabilities: VenueCapabilities = {
    products: ['spot'],
    venueGreeks: false,
    liquidityModel: 'amm',
    executionMode: 'tx-confirmed',
    orderTypes: ['market', 'limit'],
    reduceOnly: false,
    cancel: false,
    clientOrderId: 'none',
    fundingIntervalHours: null,
    collateral: ['USDC'],
    inverseSettlement: false,
    gasAsset: 'ETH',
  };
  protected readonly oraclePriced = false;
  readonly params: z.output<typeof SpotAmmParams>;
  readonly #gas: GasProcess;
  readonly #instruments: string[];

  constructor(ctx: PaperVenueContext, params: unknown = {}) {
    super(ctx);
    this.params = parseParams(ctx.id, SpotAmmParams, params);
    this.requestLatencyMs = this.params.latencyMs;
    this.#gas = chainGasProcess(ctx, [5, 50], { low: this.params.gasLowUsd, high: this.params.gasHighUsd });
    const unds = this.params.underlyings ?? ctx.market.underlyings;
    this.#instruments = unds.filter((u) => ctx.market.hasUnderlying(u)).map((u) => `${u}-USDC:SPOT`);
  }

  #underlying(instrument: string): string {
    return instrument.split('-')[0] ?? '';
  }

  /** Pool reserves at the current spot: x (coin) and y (USDC) with x·y = k and y/x = spot. */
  reserves(instrument: string): { x: number; y: number } {
    const u = this.#underlying(instrument);
    const spot = this.market.spot(u);
    const tvl = this.params.poolTvlUsd[u] ?? 20_000_000;
    return { x: tvl / 2 / spot, y: tvl / 2 };
  }

  protected allocateVenueOrderId(clientOrderId: string, seq: number): string {
    return `0x${createHash('sha256').update(`${this.id}|tx|${clientOrderId}|${seq}`).digest('hex')}`;
  }

  protected marketInfos(): MarketInfo[] {
    return this.#instruments.map((id) => {
      const u = this.#underlying(id);
      const { x } = this.reserves(id);
      const step = sizeStep(u);
      return {
        instrument: instrumentMeta(id),
        venueSymbol: `W${u}/USDC-${this.params.feeBps}bps`,
        minSizeBase: step,
        sizeStepBase: step,
        priceTickUsd: u === 'SOL' ? '0.0001' : '0.01',
        // A swap may take at most a tenth of the pool.
        maxOrderSizeBase: (Math.floor((x * 0.1) / Number(step)) * Number(step)).toFixed(
          step.split('.')[1]?.length ?? 0,
        ),
        active: true,
      };
    });
  }

  protected execQuote(instrument: string, side: Side, size: D): ExecQuote {
    const { x, y } = this.reserves(instrument);
    const spot = y / x;
    const fee = this.params.feeBps / 10_000;
    const dx = size.toNumber();
    const k = x * y;
    let usd: number;
    if (side === 'buy') {
      // USDC in (net of fee) so that dx coins come out.
      usd = (k / (x - dx) - y) / (1 - fee);
    } else {
      usd = y - k / (x + dx * (1 - fee));
    }
    const avg = usd / dx;
    const feeUsd = Math.abs(usd) * fee;
    // Price excluding the fee: the curve's impact alone; the fee is reported separately.
    const avgExFee = side === 'buy' ? (usd - feeUsd) / dx : (usd + feeUsd) / dx;
    return {
      referencePriceUsd: spot,
      avgPriceUsd: avgExFee,
      feeUsd,
      impactUsd: Math.abs(avgExFee - spot) * dx,
      executableSize: size,
      ...(avg <= 0 ? { capReason: 'pool exhausted' } : {}),
    };
  }

  protected markOf(instrument: string): Mark {
    const spot = this.market.spot(this.#underlying(instrument));
    return { venue: this.id, instrument, markPriceUsd: spot, indexPriceUsd: spot, asOfMs: this.now() };
  }
  protected gasUsdNow(): number {
    return this.#gas.usdAt(this.now());
  }
  protected settlement(): 'premium' {
    return 'premium';
  }
  protected marginPerUnitUsd(): number {
    return 0;
  }
}
