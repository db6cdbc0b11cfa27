/** Solana's base fee per signature, lamports. */
export const LAMPORTS_PER_SIGNATURE = 5000n;
export const MICRO_LAMPORTS_PER_LAMPORT = 1_000_000n;

export interface SolanaFeeInput {
  signatures: number;
  /** ComputeBudget setComputeUnitPrice, micro-lamports per compute unit. */
  computeUnitPriceMicroLamports: bigint;
  /** ComputeBudget setComputeUnitLimit, compute units. */
  computeUnitLimit: number;
}

/**
 * Fee the payer is charged: 5000 lamports per signature plus the prioritization fee
 * ceil(CU price × CU limit / 1e6). The priority fee is charged on the requested limit, not on the
 * units consumed, so the limit should be sized to the instruction, not left at the 1.4M maximum.
 */
export function solanaFeeLamports(i: SolanaFeeInput): bigint {
  const base = LAMPORTS_PER_SIGNATURE * BigInt(i.signatures);
  const micro = i.computeUnitPriceMicroLamports * BigInt(i.computeUnitLimit);
  const priority = (micro + MICRO_LAMPORTS_PER_LAMPORT - 1n) / MICRO_LAMPORTS_PER_LAMPORT;
  return base + priority;
}
