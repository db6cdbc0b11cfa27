import type { InstrumentMeta, Mark } from '@xhedge/core';
import { MAX_IV_DECIMAL, unitGreeks } from '@xhedge/risk';
import type { VegaCandidate } from './vega.ts';

/** A listed option as a venue's option chain gives it (structurally `OptionChainEntry` of @xhedge/venue). */
export interface ListedOption {
  instrument: InstrumentMeta;
  mark: Mark;
}

/**
 * Turns a venue's option chain into vega-solver candidates: per-unit Greeks from the same model as the
 * risk engine (mark IV, else `volDecimal`; like the engine, an IV that is not positive or is past
 * `MAX_IV_DECIMAL`, a percentage given for a decimal, is no IV), cost per unit = half the quoted spread
 * (or `defaultHalfSpreadBps` of spot without one) + `feeBps` of spot. Options of other underlyings,
 * expired or without a positive vega are left out.
 */
export function vegaCandidatesFromChain(p: {
  venue: string;
  chain: string;
  underlying: string;
  options: readonly ListedOption[];
  spotUsd: number;
  volDecimal: number;
  rateDecimal?: number;
  nowMs: number;
  /** Trading fee, bps of spot notional. */
  feeBps: number;
  /** Largest size per option, underlying units. */
  maxSizeBase: number;
  minSizeBase?: number;
  sizeStepBase?: number;
  /** Half spread assumed where the mark has no bid/ask, bps of spot. @defaultValue 20 */
  defaultHalfSpreadBps?: number;
}): VegaCandidate[] {
  const out: VegaCandidate[] = [];
  for (const { instrument: meta, mark } of p.options) {
    if (meta.kind !== 'option' || meta.underlying !== p.underlying) continue;
    if (meta.expiryMs === undefined || meta.expiryMs <= p.nowMs) continue;
    // At 55 for 55% a call priced with delta 1 and no vega: the solver bought it for nothing and the delta
    // hedge offset a delta the book (priced by the engine, which ignores that IV) never had.
    const iv = mark.ivDecimal;
    const volDecimal = iv !== undefined && iv > 0 && iv <= MAX_IV_DECIMAL ? iv : p.volDecimal;
    const g = unitGreeks(meta, p.spotUsd, volDecimal, p.rateDecimal ?? 0, p.nowMs);
    if (!(g.vegaPerVolPoint > 0)) continue;
    const halfSpread =
      mark.bidUsd !== undefined && mark.askUsd !== undefined && mark.askUsd >= mark.bidUsd
        ? (mark.askUsd - mark.bidUsd) / 2
        : (p.spotUsd * (p.defaultHalfSpreadBps ?? 20)) / 10_000;
    const c: VegaCandidate = {
      venue: p.venue,
      chain: p.chain,
      instrument: meta.id,
      vegaPerVolPoint: g.vegaPerVolPoint,
      delta: g.delta,
      priceUsd: mark.markPriceUsd > 0 ? mark.markPriceUsd : g.priceUsd,
      costPerUnitUsd: halfSpread + (p.spotUsd * p.feeBps) / 10_000,
      maxSizeBase: p.maxSizeBase,
    };
    if (p.minSizeBase !== undefined) c.minSizeBase = p.minSizeBase;
    if (p.sizeStepBase !== undefined) c.sizeStepBase = p.sizeStepBase;
    out.push(c);
  }
  return out;
}
