import { createHash } from 'node:crypto';
import {
  canonicalStrike,
  Dec,
  EXPIRY_HOUR_UTC,
  formatInstrumentId,
  type InstrumentMeta,
  instrumentMeta,
  type Mark,
  MS_PER_DAY,
  MS_PER_HOUR,
  MS_PER_YEAR,
  msToExpiryDate,
  type Side,
  toDecimalString,
} from '@xhedge/core';
import { bsm, type OptionGreeks } from '@xhedge/pricing';
import type { GasProcess } from '@xhedge/sim';
import type {
  MarketInfo,
  OptionChainEntry,
  SettlementPrice,
  VenueCapabilities,
  VenueGreeks,
} from '@xhedge/venue';
import { z } from 'zod';
import {
  chainGasProcess,
  type ExecQuote,
  type OrderRecord,
  PaperVenueBase,
  type PaperVenueContext,
} from './base.ts';
import { COMMON_PARAMS, PerUnderlying, parseParams } from './params.ts';

export const LyraParams = z
  .object({
    /** Spot fee per unit traded, fraction of spot. @defaultValue 0.0003 */
    spotFeeFraction: z.number().nonnegative().default(0.0003),
    /** Option fee, fraction of the option price. @defaultValue 0.01 */
    optionFeeFraction: z.number().nonnegative().default(0.01),
    /** Vega fee: USD per unit per vol point of vega. @defaultValue 0.3 */
    vegaFeeCoefficient: z.number().nonnegative().default(0.3),
    /** IV moved per unit traded (the trade walks the skew), decimal vol per unit. @defaultValue BTC 0.002, ETH 0.0001, SOL 0.00002 */
    ivImpactPerUnit: PerUnderlying.default({ BTC: 0.002, ETH: 0.0001, SOL: 0.00002 }),
    /** A trade leaves the board's IV moved by its impact; the move halves over this many hours. @defaultValue 12 */
    ivImpactHalfLifeHours: z.number().positive().default(12),
    /** Strike spacing per underlying, USD. @defaultValue BTC 1000, ETH 50, SOL 5 */
    strikeStepUsd: PerUnderlying.default({ BTC: 1000, ETH: 50, SOL: 5 }),
    /** Strikes as multiples of spot at listing. */
    moneyness: z.array(z.number().positive()).default([0.7, 0.8, 0.9, 0.95, 1, 1.05, 1.1, 1.2, 1.3]),
    /** Weekly boards listed ahead. @defaultValue 4 */
    weeklyBoards: z.number().int().nonnegative().default(4),
    /** Monthly boards (last Friday) listed ahead. @defaultValue 3 */
    monthlyBoards: z.number().int().nonnegative().default(3),
    /** Collateral for a short option, fraction of spot per unit. @defaultValue 0.2 */
    shortMarginFraction: z.number().nonnegative().default(0.2),
    /**
     * How long after its expiry an expired position is paid out and leaves the account, ms (Lyra's
     * keepers settle a board, then its positions, some time after the expiry). Until then the position
     * is still listed, marked at its payoff at the settlement price fixed at the expiry. @defaultValue 0
     */
    settlementDelayMs: z.number().int().nonnegative().default(0),
    ...COMMON_PARAMS,
    /** Extra instruments to list (e.g. the book's). */
    instruments: z.array(z.string()).default([]),
  })
  .strict();
export type LyraParams = z.input<typeof LyraParams>;

type D = InstanceType<typeof Dec>;

function fridaysAfter(ms: number, weeks: number): number[] {
  const out: number[] = [];
  const d = new Date(ms);
  let t = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), EXPIRY_HOUR_UTC);
  while (new Date(t).getUTCDay() !== 5 || t <= ms + MS_PER_DAY) t += MS_PER_DAY;
  for (let i = 0; i < weeks; i++) out.push(t + i * 7 * MS_PER_DAY);
  return out;
}
function lastFridays(ms: number, months: number): number[] {
  const out: number[] = [];
  const d = new Date(ms);
  for (let m = 1; out.length < months && m < months + 3; m++) {
    let t = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + m + 1, 0, EXPIRY_HOUR_UTC);
    while (new Date(t).getUTCDay() !== 5) t -= MS_PER_DAY;
    if (t > ms + MS_PER_DAY) out.push(t);
  }
  return out;
}

/**
 * Lyra-v1-style options AMM on an L2: boards (expiries) with strikes listed at start, prices from the
 * simulated IV surface with Black-Scholes, fees = spot fee + option-price fee + vega fee, IV walked by
 * the trade size (price worsens with size) and left moved on the board afterwards (decaying), Greeks
 * published. Trades fill or revert in one
 * transaction (no cancel). Each board's settlement price is fixed at its expiry: the spot at the
 * market's first step at or after it (`fetchSettlementPrices` reports it from then on). Expired
 * positions are paid in cash at their payoff at that price, `settlementDelayMs` after the expiry.
 */
export class PaperLyraVenue extends PaperVenueBase {
  readonly kind = 'paper-lyra';
  readonly capabilities: VenueCapabilities = {
    products: ['option'],
    venueGreeks: true,
    liquidityModel: 'amm',
    executionMode: 'tx-confirmed',
    orderTypes: ['market', 'limit'],
    reduceOnly: true,
    cancel: false,
    clientOrderId: 'none',
    fundingIntervalHours: null,
    collateral: ['USDC'],
    inverseSettlement: false,
    gasAsset: 'ETH',
  };
  protected readonly oraclePriced = true;
  readonly params: z.output<typeof LyraParams>;
  readonly #gas: GasProcess;
  readonly #listed = new Map<string, InstrumentMeta>();
  /** IV left on each board (underlying and expiry) by past trades, and when it was last updated. */
  readonly #boardShift = new Map<string, { iv: number; atMs: number }>();
  /**
   * Settlement prices fixed so far, by board (`underlying:expiryMs`): USD, exact (the price expired
   * positions are paid at), and the market time they were fixed at.
   */
  readonly #settled = new Map<string, { priceUsd: D; fixedAtMs: number }>();
  /** Expiries of listed boards not reached yet, ascending: the market's step listener fixes their prices. */
  readonly #unfixedExpiries: number[] = [];
  readonly #stopFixing: () => void;

  constructor(ctx: PaperVenueContext, params: unknown = {}) {
    super(ctx);
    this.params = parseParams(ctx.id, LyraParams, params);
    this.requestLatencyMs = this.params.latencyMs;
    this.#gas = chainGasProcess(ctx, [0.01, 0.5]);
    const now = ctx.market.nowMs();
    const unds = (this.params.underlyings ?? ['BTC', 'ETH']).filter((u) => ctx.market.hasUnderlying(u));
    const expiries = [
      ...new Set([
        ...fridaysAfter(now, this.params.weeklyBoards),
        ...lastFridays(now, this.params.monthlyBoards),
      ]),
    ].sort((a, b) => a - b);
    for (const u of unds) {
      const spot = ctx.market.spot(u);
      const step = this.params.strikeStepUsd[u] ?? 1;
      for (const exp of expiries) {
        for (const m of this.params.moneyness) {
          const k = Math.max(step, Math.round((spot * m) / step) * step);
          for (const optionType of ['call', 'put'] as const)
            this.#list(
              formatInstrumentId({
                kind: 'option',
                base: u,
                quote: 'USD',
                expiryDate: msToExpiryDate(exp),
                strike: canonicalStrike(k),
                optionType,
              }),
            );
        }
      }
    }
    for (const id of this.params.instruments) this.#list(id);
    // Prices are fixed on the market's steps, not on this venue's requests: the first reader after an
    // expiry syncs the shared market past it, so a price taken at the next request would be a later one.
    this.#stopFixing = ctx.market.onStep((_step, market) => this.#fixDue(market.nowMs()));
  }

  #list(id: string): void {
    const meta = instrumentMeta(id);
    if (meta.kind !== 'option' || !this.market.hasUnderlying(meta.underlying)) return;
    this.#listed.set(id, meta);
    const exp = meta.expiryMs ?? 0;
    // A board listed after its expiry gets no price here (none was seen at the expiry); see #settlementOf.
    if (exp > this.market.nowMs() && !this.#unfixedExpiries.includes(exp)) {
      const at = this.#unfixedExpiries.findIndex((x) => x > exp);
      this.#unfixedExpiries.splice(at < 0 ? this.#unfixedExpiries.length : at, 0, exp);
    }
  }

  /** Fixes the settlement price of every board whose expiry market time `nowMs` has reached. */
  #fixDue(nowMs: number): void {
    while ((this.#unfixedExpiries[0] ?? Number.POSITIVE_INFINITY) <= nowMs) {
      const exp = this.#unfixedExpiries.shift() as number;
      for (const meta of this.#listed.values())
        if (meta.expiryMs === exp) this.#settlementOf(meta.underlying, exp, nowMs);
    }
  }

  /**
   * The board's settlement price, fixed now at spot when it is not yet: at the expiry's market step
   * (#fixDue), or, for a board listed only after its expiry, when a position on it is paid out.
   */
  #settlementOf(underlying: string, expiryMs: number, nowMs: number): D {
    const key = `${underlying}:${expiryMs}`;
    let s = this.#settled.get(key);
    if (!s) {
      s = { priceUsd: new Dec(toDecimalString(this.market.spot(underlying), 8)), fixedAtMs: nowMs };
      this.#settled.set(key, s);
    }
    return s.priceUsd;
  }

  /** An expired option's payoff per unit at a settlement price, USD. */
  #payoff(meta: InstrumentMeta, settleUsd: D): D {
    const k = new Dec(toDecimalString(meta.strike ?? 0, 8));
    const intrinsic = meta.optionType === 'put' ? k.sub(settleUsd) : settleUsd.sub(k);
    return Dec.max(intrinsic, 0);
  }

  #expired(meta: InstrumentMeta): boolean {
    return (meta.expiryMs ?? Number.POSITIVE_INFINITY) <= this.now();
  }
  /** Lists an instrument (e.g. one of the config book's positions) on this AMM. */
  listInstrument(id: string): void {
    this.#list(id);
  }

  /** Boards (expiry instants) currently listed, per underlying. */
  boards(underlying: string): number[] {
    return [
      ...new Set(
        [...this.#listed.values()].filter((m) => m.underlying === underlying).map((m) => m.expiryMs ?? 0),
      ),
    ].sort((a, b) => a - b);
  }

  protected allocateVenueOrderId(clientOrderId: string, seq: number): string {
    return `0x${createHash('sha256').update(`${this.id}|tx|${clientOrderId}|${seq}`).digest('hex')}`;
  }

  protected marketInfos(): MarketInfo[] {
    const now = this.now();
    return [...this.#listed.values()].map((meta) => ({
      instrument: meta,
      venueSymbol: `${meta.underlying}/board-${msToExpiryDate(meta.expiryMs ?? 0)}/strike-${meta.strike ?? 0}/${meta.optionType === 'call' ? 'C' : 'P'}`,
      minSizeBase: meta.underlying === 'BTC' ? '0.01' : '0.1',
      sizeStepBase: meta.underlying === 'BTC' ? '0.01' : '0.1',
      priceTickUsd: '0.01',
      active: (meta.expiryMs ?? 0) > now,
    }));
  }

  #meta(instrument: string): InstrumentMeta {
    const m = this.#listed.get(instrument);
    if (!m) throw new Error(`not listed: ${instrument}`);
    return m;
  }

  /** Black-Scholes price and Greeks at the surface IV shifted by `ivShift`. */
  #price(
    meta: InstrumentMeta,
    ivShift = 0,
  ): { iv: number; g: OptionGreeks; spot: number; timeYears: number } {
    const spot = this.market.spot(meta.underlying);
    const timeYears = Math.max(((meta.expiryMs ?? 0) - this.now()) / MS_PER_YEAR, 1 / (365 * 24 * 60));
    const base = this.market.iv(meta.underlying, meta.strike ?? spot, meta.expiryMs ?? 0);
    const iv = Math.max(0.01, base + this.boardIvShift(meta.underlying, meta.expiryMs ?? 0) + ivShift);
    const g = bsm({ type: meta.optionType ?? 'call', spot, strike: meta.strike ?? spot, timeYears, vol: iv });
    return { iv, g, spot, timeYears };
  }

  /** IV the AMM's board carries from past trades (positive after net buying), decimal, as of the last request. */
  boardIvShift(underlying: string, expiryMs: number): number {
    const b = this.#boardShift.get(`${underlying}:${expiryMs}`);
    if (!b) return 0;
    const hours = (this.now() - b.atMs) / MS_PER_HOUR;
    return b.iv * 2 ** (-hours / this.params.ivImpactHalfLifeHours);
  }

  /** Books the fill, then leaves the trade's IV impact on its board (Lyra moves the board's base IV). */
  protected override applyFill(rec: OrderRecord, size: D, price: D, feeUsd: number, gasUsd: number): void {
    super.applyFill(rec, size, price, feeUsd, gasUsd);
    const meta = this.#meta(rec.instrument);
    const impact = (this.params.ivImpactPerUnit[meta.underlying] ?? 0.0001) * size.toNumber();
    const key = `${meta.underlying}:${meta.expiryMs ?? 0}`;
    const now = this.boardIvShift(meta.underlying, meta.expiryMs ?? 0);
    this.#boardShift.set(key, { iv: now + (rec.side === 'buy' ? impact : -impact), atMs: this.now() });
  }

  #feePerUnit(spot: number, price: number, vegaPerVolPoint: number): number {
    return (
      this.params.spotFeeFraction * spot +
      this.params.optionFeeFraction * price +
      this.params.vegaFeeCoefficient * vegaPerVolPoint
    );
  }

  protected execQuote(instrument: string, side: Side, size: D): ExecQuote {
    const meta = this.#meta(instrument);
    const mid = this.#price(meta);
    const n = size.toNumber();
    const impact = (this.params.ivImpactPerUnit[meta.underlying] ?? 0.0001) * n;
    const walked = this.#price(meta, side === 'buy' ? impact / 2 : -impact / 2);
    const fee = this.#feePerUnit(mid.spot, walked.g.price, mid.g.vegaPerVolPoint) * n;
    return {
      referencePriceUsd: Math.max(mid.g.price, 0.01),
      avgPriceUsd: Math.max(walked.g.price, 0.01),
      feeUsd: fee,
      impactUsd: Math.abs(walked.g.price - mid.g.price) * n,
      executableSize: size,
    };
  }

  protected markOf(instrument: string): Mark {
    const meta = this.#meta(instrument);
    if (this.#expired(meta)) {
      // No model price past the expiry: what it pays, at the settlement price (spot until one is fixed).
      const spot = this.market.spot(meta.underlying);
      const fixed = this.#settled.get(`${meta.underlying}:${meta.expiryMs ?? 0}`)?.priceUsd;
      const payoff = this.#payoff(meta, fixed ?? new Dec(toDecimalString(spot, 8))).toNumber();
      return {
        venue: this.id,
        instrument,
        markPriceUsd: payoff,
        indexPriceUsd: spot,
        bidUsd: payoff,
        askUsd: payoff,
        asOfMs: this.now(),
      };
    }
    const { iv, g, spot } = this.#price(meta);
    const fee = this.#feePerUnit(spot, g.price, g.vegaPerVolPoint);
    return {
      venue: this.id,
      instrument,
      markPriceUsd: Math.max(g.price, 0),
      indexPriceUsd: spot,
      ivDecimal: iv,
      bidUsd: Math.max(g.price - fee, 0),
      askUsd: g.price + fee,
      asOfMs: this.now(),
    };
  }

  #greeks(instrument: string): VenueGreeks {
    const meta = this.#meta(instrument);
    const { iv, g } = this.#price(meta);
    return {
      instrument,
      greeks: {
        delta: g.delta,
        gamma: g.gamma,
        vegaPerVolPoint: g.vegaPerVolPoint,
        thetaPerDay: g.thetaPerDay,
        rhoPer1Pct: g.rhoPer1Pct,
        vannaPerVolPoint: g.vannaPerVolPoint,
        volgaPerVolPoint: g.volgaPerVolPoint,
        ivDecimal: iv,
      },
      convention:
        'black-scholes on spot, r = 0, per unit of underlying; vega USD per vol point; theta USD per calendar day',
      asOfMs: this.now(),
    };
  }

  async fetchGreeks(instruments?: readonly string[]): Promise<VenueGreeks[]> {
    await this.enter();
    const ids =
      instruments ??
      this.marketInfos()
        .filter((m) => m.active)
        .map((m) => m.instrument.id);
    return ids.map((id) => {
      this.marketOrThrow(id);
      return this.#greeks(id);
    });
  }

  async fetchOptionChain(underlying: string): Promise<OptionChainEntry[]> {
    await this.enter();
    return this.marketInfos()
      .filter((m) => m.active && m.instrument.underlying === underlying)
      .map((m) => ({
        instrument: m.instrument,
        mark: this.markOf(m.instrument.id),
        greeks: this.#greeks(m.instrument.id),
      }));
  }

  /**
   * Settlement prices of the given options whose board has reached its expiry here; live, unknown or
   * not-yet-fixed ones are absent.
   */
  async fetchSettlementPrices(instruments: readonly string[]): Promise<SettlementPrice[]> {
    await this.enter();
    const out: SettlementPrice[] = [];
    for (const id of new Set(instruments)) {
      const meta = this.#listed.get(id);
      const s = meta && this.#settled.get(`${meta.underlying}:${meta.expiryMs ?? 0}`);
      if (s) out.push({ instrument: id, priceUsd: s.priceUsd.toFixed(), fixedAtMs: s.fixedAtMs });
    }
    return out;
  }

  /** Pays expired positions in cash at their payoff at the settlement price, `settlementDelayMs` after the expiry. */
  protected override accrue(nowMs: number): void {
    for (const [id, p] of this.positions) {
      const meta = this.#listed.get(id);
      const exp = meta?.expiryMs;
      if (!meta || exp === undefined || p.size.isZero() || exp + this.params.settlementDelayMs > nowMs)
        continue;
      this.addCash(p.size.mul(this.#payoff(meta, this.#settlementOf(meta.underlying, exp, nowMs))));
      this.positions.set(id, { size: new Dec(0), entryUsd: 0 });
    }
  }

  /** Stops fixing settlement prices on the market's steps (the venue is replaced or shut down). */
  async close(): Promise<void> {
    this.#stopFixing();
  }

  protected gasUsdNow(): number {
    return this.#gas.usdAt(this.now());
  }
  protected settlement(): 'premium' {
    return 'premium';
  }
  protected marginPerUnitUsd(instrument: string, size: D): number {
    if (!size.isNeg()) return 0;
    return this.params.shortMarginFraction * this.market.spot(this.#meta(instrument).underlying);
  }
  /**
   * What the fill would add to the margin the account locks here (`marginUsedUsd`, which the free
   * balance excludes): `shortMarginFraction` × spot on the units it grows the short by. 0 for a buy, or
   * a sell the long it holds covers.
   */
  protected override lockedCollateralUsd(instrument: string, side: Side, size: D): number {
    const before = this.positionSize(instrument);
    return this.marginAddedUsd(instrument, before, before.add(side === 'buy' ? size : size.neg()));
  }
}
