import { Dec } from '@xhedge/core';

/** GMX prices: USD per smallest unit of the token, 30 decimals → USD per whole token. */
export function gmxPriceToUsd(price: bigint, tokenDecimals: number): number {
  return new Dec(price.toString()).div(new Dec(10).pow(30 - tokenDecimals)).toNumber();
}

/** {@link gmxPriceToUsd} as an exact decimal string (fill prices: no float on the way). */
export function gmxPriceToUsdDecimal(price: bigint, tokenDecimals: number): string {
  return new Dec(price.toString()).div(new Dec(10).pow(30 - tokenDecimals)).toFixed();
}

/**
 * USD per whole token → GMX price units (USD per smallest unit, 30 decimals). `rounding` for a value
 * between two units: a bound rounds toward the inside (a buy's most-to-pay `down`, a sell's
 * least-to-take `up`). @defaultValue half up
 */
export function usdToGmxPrice(
  usd: number | string,
  tokenDecimals: number,
  rounding: 'half-up' | 'down' | 'up' = 'half-up',
): bigint {
  const mode = rounding === 'down' ? Dec.ROUND_DOWN : rounding === 'up' ? Dec.ROUND_UP : Dec.ROUND_HALF_UP;
  return BigInt(new Dec(usd).mul(new Dec(10).pow(30 - tokenDecimals)).toFixed(0, mode));
}

/** USD with 30 decimals (sizeInUsd, sizeDeltaUsd). */
export function usd30(usd: number | string): bigint {
  return BigInt(new Dec(usd).mul(new Dec(10).pow(30)).toFixed(0, Dec.ROUND_HALF_UP));
}

export function fromUsd30(v: bigint): number {
  return new Dec(v.toString()).div(new Dec(10).pow(30)).toNumber();
}

/** Whole-unit decimal string → base units, rounding as asked. */
export function toUnits(amount: string | number, decimals: number, rounding: 'down' | 'up' = 'down'): bigint {
  return BigInt(
    new Dec(amount)
      .mul(new Dec(10).pow(decimals))
      .toFixed(0, rounding === 'up' ? Dec.ROUND_UP : Dec.ROUND_DOWN),
  );
}

export function fromUnits(v: bigint, decimals: number): string {
  return new Dec(v.toString()).div(new Dec(10).pow(decimals)).toFixed();
}
