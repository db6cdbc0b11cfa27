import { z } from 'zod';

/** A 0x-prefixed 20-byte address in venue `params`, typed for viem. */
export const AddressParam = z
  .string()
  .regex(/^0x[0-9a-fA-F]{40}$/, 'expected a 0x address')
  .transform((v) => v as `0x${string}`);

/** A non-negative decimal in venue `params` (string or number), kept as an exact decimal string. */
export const DecimalParam = z
  .union([z.string().regex(/^[0-9]+(\.[0-9]+)?$/), z.number().nonnegative()])
  .transform(String);
