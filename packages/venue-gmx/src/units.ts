import { Dec } from '@xhedge/core';

/** GMX prices: USD per smallest unit of the token, 30 decimals → USD per whole token. */
export function gmxPriceToUsd(price: bigint, tokenDecimals: number): number {
  return new Dec(price.toString()).div(new Dec(10).pow(30 - tokenDecimals)).toNumber();
}

export function usdToGmxPrice(usd: number | string, tokenDecimals: number): bigint {
  return BigInt(new Dec(usd).mul(new Dec(10).pow(30 - tokenDecimals)).toFixed(0, Dec.ROUND_HALF_UP));
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
