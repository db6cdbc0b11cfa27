import { formatPath, ValidationError } from '@xhedge/core';
import { z } from 'zod';

/** Parses a venue's `params` from config with a zod schema; unknown keys (typos) are refused. */
export function parseParams<T extends z.ZodType>(venue: string, schema: T, raw: unknown): z.output<T> {
  const res = schema.safeParse(raw ?? {});
  if (!res.success) {
    throw new ValidationError(
      `params of paper venue ${venue}`,
      res.error.issues.map((i) => ({ path: formatPath(i.path), message: i.message })),
    );
  }
  return res.data;
}

export const PerUnderlying = z.record(z.string(), z.number().positive().finite());

/** Size rules per underlying (min size = step). */
export const SIZE_STEP: Readonly<Record<string, string>> = { BTC: '0.0001', ETH: '0.001', SOL: '0.01' };
export function sizeStep(underlying: string): string {
  return SIZE_STEP[underlying] ?? '0.01';
}

/** Parameters every paper venue takes. */
export const COMMON_PARAMS = {
  /** Underlyings listed. @defaultValue every simulated underlying (Lyra: BTC and ETH) */
  underlyings: z.array(z.string()).optional(),
  /** Latency added to every request, ms (awaited through the venue's `sleep`). @defaultValue 0 */
  latencyMs: z.number().nonnegative().finite().default(0),
};
