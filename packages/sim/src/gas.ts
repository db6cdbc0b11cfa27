import { hashString } from './rng.ts';

export interface GasProcessOptions {
  seed: number;
  /** Distinguishes independent processes (one per chain). */
  label: string;
  /** Cheapest and dearest cost of one transaction, USD. */
  lowUsd: number;
  highUsd: number;
  /** How long gas stays roughly the same (knot spacing), ms. @defaultValue 300000 (5 minutes) */
  periodMs?: number;
}

/** Cost of one transaction in USD as a function of time. */
export interface GasProcess {
  usdAt(ms: number): number;
}

/**
 * A gas-cost process that is a pure function of (seed, label, time): smooth value noise between
 * knots, log-uniform between `lowUsd` and `highUsd`. Being a function of time (not of how often it is
 * sampled) keeps paper runs deterministic whatever the call pattern.
 */
export function createGasProcess(opts: GasProcessOptions): GasProcess {
  const period = opts.periodMs ?? 300_000;
  if (!(opts.lowUsd > 0 && opts.highUsd >= opts.lowUsd))
    throw new RangeError(`gas process ${opts.label}: need 0 < lowUsd <= highUsd`);
  const ratio = opts.highUsd / opts.lowUsd;
  const knot = (k: number): number => hashString(`${opts.label}:${k}`, opts.seed >>> 0) / 4294967296;
  return {
    usdAt(ms: number): number {
      const x = ms / period;
      const k = Math.floor(x);
      const f = x - k;
      const w = (1 - Math.cos(Math.PI * f)) / 2;
      const u = knot(k) * (1 - w) + knot(k + 1) * w;
      return opts.lowUsd * ratio ** u;
    },
  };
}
