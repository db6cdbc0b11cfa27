import type { Job } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { transferDeliveredAtMs } from './transfers.ts';

function jobWithChildren(values: Record<string, unknown>): Job {
  return { getChildrenValues: async () => values } as unknown as Job;
}

const delivered = (id: string, atMs: number) => ({
  transferId: id,
  kind: 'oft-send',
  fromVenue: 'lyra-arb',
  toVenue: 'drift-sol',
  srcChain: 'evm:42161',
  dstChain: 'solana:mainnet-beta',
  srcEid: 30110,
  dstEid: 30168,
  asset: 'USDC',
  amount: '1000',
  feeUsd: 0.5,
  expectedLatencyMs: 60_000,
  state: 'delivered',
  createdAtMs: 1_000,
  deadlineMs: 900_000,
  history: [
    { state: 'planned', atMs: 1_000 },
    { state: 'sent', atMs: 2_000 },
    { state: 'delivered', atMs },
  ],
});

describe('transferDeliveredAtMs (decision age of a funded hedge)', () => {
  it('is the latest delivery time among the delivered transfer children', async () => {
    expect(
      await transferDeliveredAtMs(
        jobWithChildren({ 'q:a': delivered('xfer-a', 125_000), 'q:b': delivered('xfer-b', 99_000) }),
      ),
    ).toBe(125_000);
  });

  it('is undefined for a job without transfer children (its age counts from planning)', async () => {
    expect(await transferDeliveredAtMs(jobWithChildren({}))).toBeUndefined();
    expect(await transferDeliveredAtMs(jobWithChildren({ 'q:x': { ok: true } }))).toBeUndefined();
  });
});
