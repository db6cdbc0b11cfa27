import { DAYS_PER_YEAR } from '@xhedge/core';
import { PricingInputError } from './bsm.ts';
import { blackImpliedVolCore, coreReason, type ImpliedVolReason } from './implied-vol.ts';
import { normCdfWithExp } from './normal.ts';

/**
 * Struct-of-arrays inputs for Black-Scholes-Merton on many options at once. All arrays have the same
 * length n. `callPut` is +1 for a call and −1 for a put. `rate`/`carry` are one number for all options or
 * one per option (continuously compounded decimals, default 0).
 */
export interface BsmBatchInput {
  callPut: Float64Array;
  spot: Float64Array;
  strike: Float64Array;
  timeYears: Float64Array;
  vol: Float64Array;
  rate?: Float64Array | number;
  carry?: Float64Array | number;
}

/**
 * Preallocated outputs (length ≥ n), same units as `OptionGreeks`. Vanna and volga are written only when
 * their arrays are given.
 */
export interface GreeksBatchOutput {
  price: Float64Array;
  delta: Float64Array;
  gamma: Float64Array;
  vegaPerVolPoint: Float64Array;
  thetaPerDay: Float64Array;
  rhoPer1Pct: Float64Array;
  vannaPerVolPoint?: Float64Array;
  volgaPerVolPoint?: Float64Array;
}

/** Zeroed output arrays for `n` options: price and the Greeks, with vanna (and volga when asked). */
export function greeksBatchOutput(n: number): GreeksBatchOutput & { vannaPerVolPoint: Float64Array };
export function greeksBatchOutput(n: number, withVolga: true): Required<GreeksBatchOutput>;
export function greeksBatchOutput(n: number, withVolga = false): GreeksBatchOutput {
  const f = () => new Float64Array(n);
  return {
    price: f(),
    delta: f(),
    gamma: f(),
    vegaPerVolPoint: f(),
    thetaPerDay: f(),
    rhoPer1Pct: f(),
    vannaPerVolPoint: f(),
    ...(withVolga ? { volgaPerVolPoint: f() } : {}),
  };
}

/**
 * Refuses a batch whose arrays cannot hold `n` entries, naming the first such array and both lengths:
 * checked once per call. A short input array read `undefined` past its end (reported per option as a
 * bad or "non-finite" entry it never had), and a short output array dropped the writes past its end
 * without a word (typed arrays ignore them).
 */
function checkBatchLengths(
  n: number,
  nFrom: string,
  arrays: readonly (readonly [string, { readonly length: number } | number | undefined])[],
): void {
  if (!(Number.isInteger(n) && n >= 0))
    throw new PricingInputError('n', n, 'must be a whole number of options, 0 or more');
  for (const [name, a] of arrays)
    if (typeof a === 'object' && a.length < n)
      throw new PricingInputError(
        `${name}.length`,
        a.length,
        `shorter than the batch's n = ${n} (${nFrom}): every array needs at least n entries`,
      );
}

const INV_SQRT_2PI = 0.3989422804014327;
const INV_DAYS_PER_YEAR = 1 / DAYS_PER_YEAR;

function badInput(i: number, input: BsmBatchInput): never {
  const fields = ['callPut', 'spot', 'strike', 'timeYears', 'vol'] as const;
  for (const f of fields) {
    const v = input[f][i];
    const ok =
      f === 'callPut' ? v === 1 || v === -1 : v !== undefined && v > 0 && v < Number.POSITIVE_INFINITY;
    if (!ok)
      throw new PricingInputError(
        `${f}[${i}]`,
        v,
        f === 'callPut' ? 'must be +1 (call) or -1 (put)' : 'must be positive and finite',
      );
  }
  throw new PricingInputError(`rate/carry[${i}]`, 'non-finite', 'must be finite');
}

/**
 * Prices and Greeks for n options into `out`, with no allocation per option. Invalid inputs throw
 * `PricingInputError` naming the index (nothing is returned as NaN); so does an array (input, per-option
 * `rate`/`carry`, or output) shorter than n, naming the array and both lengths, before any option is
 * priced. Accuracy is that of the closed-form
 * Greeks (~1e-14 absolute per unit of spot); use `bsm` for prices far out of the money where relative
 * accuracy matters (implied-vol round trips).
 */
export function bsmBatch(input: BsmBatchInput, out: GreeksBatchOutput, n = input.spot.length): void {
  const { callPut, spot, strike, timeYears, vol } = input;
  const rateArr = typeof input.rate === 'object' ? input.rate : undefined;
  const carryArr = typeof input.carry === 'object' ? input.carry : undefined;
  const rate0 = typeof input.rate === 'number' ? input.rate : 0;
  const carry0 = typeof input.carry === 'number' ? input.carry : 0;
  const { price, delta, gamma, vegaPerVolPoint, thetaPerDay, rhoPer1Pct } = out;
  const vannaOut = out.vannaPerVolPoint;
  const volgaOut = out.volgaPerVolPoint;
  checkBatchLengths(n, n === spot.length ? 'spot.length' : 'passed', [
    ['callPut', callPut],
    ['spot', spot],
    ['strike', strike],
    ['timeYears', timeYears],
    ['vol', vol],
    ['rate', input.rate],
    ['carry', input.carry],
    ['out.price', price],
    ['out.delta', delta],
    ['out.gamma', gamma],
    ['out.vegaPerVolPoint', vegaPerVolPoint],
    ['out.thetaPerDay', thetaPerDay],
    ['out.rhoPer1Pct', rhoPer1Pct],
    ['out.vannaPerVolPoint', vannaOut],
    ['out.volgaPerVolPoint', volgaOut],
  ]);
  for (let i = 0; i < n; i++) {
    const phi = callPut[i] as number;
    const S = spot[i] as number;
    const K = strike[i] as number;
    const T = timeYears[i] as number;
    const v = vol[i] as number;
    const r = rateArr ? (rateArr[i] as number) : rate0;
    const q = carryArr ? (carryArr[i] as number) : carry0;
    // One comparison chain rejects NaN, ≤ 0 and ±∞ in every input.
    if (
      !(
        S > 0 &&
        S < Number.POSITIVE_INFINITY &&
        K > 0 &&
        K < Number.POSITIVE_INFINITY &&
        T > 0 &&
        T < Number.POSITIVE_INFINITY &&
        v > 0 &&
        v < Number.POSITIVE_INFINITY &&
        (phi === 1 || phi === -1) &&
        r - r === 0 &&
        q - q === 0
      )
    )
      badInput(i, input);
    const sqrtT = Math.sqrt(T);
    const vSqrtT = v * sqrtT;
    const inv = 1 / vSqrtT; // one division reused below (d1, gamma, theta)
    // log(S/K) does not wait for the discount factors: the two transcendental chains run side by side
    const lnSK = Math.log(S / K);
    const dfR = r === 0 ? 1 : Math.exp(-r * T);
    const dfQ = q === 0 ? 1 : Math.exp(-q * T);
    const d1 = (lnSK + (r - q) * T) * inv + 0.5 * vSqrtT;
    const d2 = d1 - vSqrtT;
    const e1 = Math.exp(-0.5 * d1 * d1);
    const sq = S * dfQ;
    const kr = K * dfR;
    // φ(d2)/φ(d1) = S·e^{−qT}/(K·e^{−rT}); recompute only if e1 underflowed.
    const e2 = e1 > 0 ? (e1 * sq) / kr : Math.exp(-0.5 * d2 * d2);
    const n1 = normCdfWithExp(phi * d1, e1);
    const n2 = normCdfWithExp(phi * d2, e2);
    const pdf1 = INV_SQRT_2PI * e1;
    const sqPdf1 = sq * pdf1;
    const vega = sqPdf1 * sqrtT;
    price[i] = phi * (sq * n1 - kr * n2);
    delta[i] = phi * dfQ * n1;
    gamma[i] = (dfQ * pdf1 * inv) / S;
    vegaPerVolPoint[i] = vega * 0.01;
    // σ/(2√T) = ½·σ²·(1/(σ√T))
    thetaPerDay[i] = (-0.5 * sqPdf1 * v * v * inv - phi * (r * kr * n2 - q * sq * n1)) * INV_DAYS_PER_YEAR;
    rhoPer1Pct[i] = phi * kr * T * n2 * 0.01;
    if (vannaOut) vannaOut[i] = -dfQ * pdf1 * d2 * (0.01 / v);
    if (volgaOut) volgaOut[i] = ((vega * d1 * d2) / v) * 1e-4;
    // finite inputs can still overflow (a rate of -800, vol·√T underflowing to 0): one sum of the
    // outputs is NaN or infinite if any is, and then the option is refused as `bsm` refuses it
    const sum =
      (price[i] as number) +
      (delta[i] as number) +
      (gamma[i] as number) +
      vega +
      (thetaPerDay[i] as number) +
      (rhoPer1Pct[i] as number);
    if (!(sum - sum === 0) || (vannaOut && !((vannaOut[i] as number) - (vannaOut[i] as number) === 0)))
      throw new PricingInputError(
        `option[${i}]`,
        `spot ${S}, strike ${K}, timeYears ${T}, vol ${v}, rate ${r}, carry ${q}`,
        'out of the range a double can price: a Greek came out NaN or infinite',
      );
  }
}

/**
 * Struct-of-arrays inputs for implied vol under Black-76 (`forward`) with discounting at `rate`: the
 * undiscounted price is `price·e^{rT}`. For spot BSM pass forward = S·e^{(r−q)T}.
 */
export interface ImpliedVolBatchInput {
  callPut: Float64Array;
  forward: Float64Array;
  strike: Float64Array;
  timeYears: Float64Array;
  price: Float64Array;
  rate?: Float64Array | number;
}

/** Status codes written by `impliedVolBatch`, one per option. */
export const IV_STATUS: Readonly<Record<ImpliedVolReason | 'ok', number>> = {
  ok: 0,
  'below-intrinsic': 1,
  'no-time-value': 2,
  'above-maximum': 3,
  'invalid-input': 4,
  'not-converged': 5,
};

/**
 * Implied vols for n options into `outVol`. A price with no implied vol does not throw (one bad quote must
 * not sink a million): its `outVol` entry is NaN and `status[i]` says why (`IV_STATUS`), as the scalar
 * `impliedVol` would throw an `ImpliedVolError` with that `reason`, 'not-converged' included; the return
 * value is the number of such entries, so a caller cannot miss them. An array shorter than n is refused
 * up front with a `PricingInputError` naming it and both lengths.
 */
export function impliedVolBatch(
  input: ImpliedVolBatchInput,
  outVol: Float64Array,
  status: Uint8Array,
  n = input.forward.length,
): number {
  const { callPut, forward, strike, timeYears, price } = input;
  const rateArr = typeof input.rate === 'object' ? input.rate : undefined;
  const rate0 = typeof input.rate === 'number' ? input.rate : 0;
  checkBatchLengths(n, n === forward.length ? 'forward.length' : 'passed', [
    ['callPut', callPut],
    ['forward', forward],
    ['strike', strike],
    ['timeYears', timeYears],
    ['price', price],
    ['rate', input.rate],
    ['outVol', outVol],
    ['status', status],
  ]);
  let failures = 0;
  for (let i = 0; i < n; i++) {
    const T = timeYears[i] as number;
    const r = rateArr ? (rateArr[i] as number) : rate0;
    const phi = callPut[i];
    const p = price[i] as number;
    const vol =
      phi === 1 || phi === -1
        ? blackImpliedVolCore(
            phi === 1,
            forward[i] as number,
            strike[i] as number,
            T,
            r === 0 ? p : p * Math.exp(r * T),
          )
        : -1;
    if (vol >= 0) {
      outVol[i] = vol;
      status[i] = 0;
    } else {
      outVol[i] = Number.NaN;
      status[i] = IV_STATUS[coreReason(vol)];
      failures++;
    }
  }
  return failures;
}
