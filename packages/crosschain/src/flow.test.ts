import { randomBytes } from 'node:crypto';
import { ManualClock } from '@xhedge/core';
import { connectRedis, type RedisEndpoint } from '@xhedge/execution';
import { freePort } from '@xhedge/execution/testing';
import { FlowProducer, Job, type JobsOptions, Queue, Worker } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { layerZeroCostModel } from './cost.ts';
import { startTransferWorker, transferThenHedgeFlow } from './flow.ts';
import { type BridgeEndpoint, PaperBridge } from './paper-bridge.ts';
import { redisForTests } from './test-redis.ts';
import { memoryTransferStore, TransferTracker } from './tracker.ts';

// Both Redis paths run here: the machine's (or the embedded fallback on a fresh machine), and the
// embedded js-redis-server forced, so the fallback is exercised on every machine.
const backends: [string, () => Promise<RedisEndpoint>][] = [
  ['machine Redis, embedded fallback', () => redisForTests('crosschain flow')],
  ['embedded js-redis-server', () => connectRedis()],
];

describe.each(backends)('transfer-then-hedge BullMQ flow (%s)', (_label, open) => {
  let redis: RedisEndpoint;
  let connection: RedisEndpoint['options'];
  const prefix = `xh-flow-${randomBytes(4).toString('hex')}`;
  const closers: (() => Promise<unknown>)[] = [];
  beforeAll(async () => {
    redis = await open();
    connection = redis.options;
  });
  afterAll(async () => {
    for (const c of closers.reverse()) await c();
    const cmd = redis.client();
    const keys = await cmd.keys(`${prefix}:*`);
    if (keys.length) await cmd.del(...keys);
    cmd.disconnect();
    await redis.close();
  });

  it('runs the hedge only after the collateral transfer is delivered', async () => {
    const clock = new ManualClock(0);
    const usdc = new Map<string, number>([
      ['gmx-arb', 100_000],
      ['drift-sol', 0],
    ]);
    const venue = (id: string, chain: 'evm:42161' | 'solana:mainnet-beta'): BridgeEndpoint => ({
      id,
      chain,
      debitBalance: async (_a, amt) => usdc.set(id, (usdc.get(id) ?? 0) - Number(amt)),
      creditBalance: async (_a, amt) => usdc.set(id, (usdc.get(id) ?? 0) + Number(amt)),
    });
    const tracker = new TransferTracker({ store: memoryTransferStore(), clock });
    const bridge = new PaperBridge({
      clock,
      venues: [venue('gmx-arb', 'evm:42161'), venue('drift-sol', 'solana:mainnet-beta')],
      costModel: layerZeroCostModel(),
      tracker,
    });
    const transferWorker = startTransferWorker({
      executor: bridge,
      connection,
      prefix,
      queueName: 'transfers',
      recheckMs: 20,
    });
    closers.push(() => transferWorker.close());
    const hedgeSaw: number[] = [];
    const done = new Promise<void>((resolve) => {
      const hedgeWorker = new Worker(
        'hedges',
        async (_job: Job) => {
          hedgeSaw.push(usdc.get('drift-sol') ?? 0);
          resolve();
          return 'hedged';
        },
        { connection, prefix },
      );
      closers.push(() => hedgeWorker.close());
    });
    const flows = new FlowProducer({ connection, prefix });
    closers.push(() => flows.close());
    await flows.add(
      transferThenHedgeFlow({
        transfer: {
          transferId: 'xfer_flow_1',
          fromVenue: 'gmx-arb',
          toVenue: 'drift-sol',
          asset: 'USDC',
          amount: '30000',
        },
        hedge: { queueName: 'hedges', name: 'hedge', jobId: 'int_flow_1', data: { venue: 'drift-sol' } },
        transferQueue: 'transfers',
        prefix,
      }),
    );
    // The transfer is in flight: the hedge must not have run.
    for (let i = 0; i < 50 && (await tracker.get('xfer_flow_1'))?.state !== 'sent'; i++)
      await new Promise((r) => setTimeout(r, 20));
    expect((await tracker.get('xfer_flow_1'))?.state).toBe('sent');
    await new Promise((r) => setTimeout(r, 200));
    expect(hedgeSaw).toEqual([]);
    // Simulated time passes: the next re-check delivers, the child completes, the hedge runs.
    clock.advance(10 * 60_000);
    await done;
    expect(hedgeSaw).toEqual([30_000]);
    expect((await tracker.get('xfer_flow_1'))?.state).toBe('delivered');
    // the finished transfer job is kept as long as the order jobs, then removed (it stayed for ever)
    const transfers = new Queue('transfers', { connection, prefix });
    closers.push(() => transfers.close());
    const child = await Job.fromId(transfers, 'xfer_flow_1');
    expect(child?.opts).toMatchObject({
      removeOnComplete: { age: 7 * 24 * 3600 },
      removeOnFail: { age: 30 * 24 * 3600 },
    });
  });

  /**
   * A transfer-then-hedge flow (gmx-arb → drift-sol USDC) on queues of its own, run by a transfer worker
   * that records what onFailed hears and a hedge worker that counts its runs (it must never run).
   */
  async function failingTransferFlow(
    bridge: PaperBridge,
    o: { suffix: string; transferId: string; amount: string; hedgeJobId: string; hedgeOpts?: JobsOptions },
  ) {
    const failures: { parentJobId: string | undefined; state: string | undefined }[] = [];
    const transferWorker = startTransferWorker({
      executor: bridge,
      connection,
      prefix,
      queueName: `transfers-${o.suffix}`,
      recheckMs: 20,
      onFailed: async (f) => {
        failures.push({ parentJobId: f.parentJobId, state: f.record?.state });
      },
    });
    closers.push(() => transferWorker.close());
    let runs = 0;
    const hedgeWorker = new Worker(
      `hedges-${o.suffix}`,
      async () => {
        runs += 1;
      },
      { connection, prefix },
    );
    closers.push(() => hedgeWorker.close());
    const flows = new FlowProducer({ connection, prefix });
    closers.push(() => flows.close());
    const node = await flows.add(
      transferThenHedgeFlow({
        transfer: {
          transferId: o.transferId,
          fromVenue: 'gmx-arb',
          toVenue: 'drift-sol',
          asset: 'USDC',
          amount: o.amount,
        },
        hedge: {
          queueName: `hedges-${o.suffix}`,
          name: 'hedge',
          jobId: o.hedgeJobId,
          data: {},
          ...(o.hedgeOpts ? { opts: o.hedgeOpts } : {}),
        },
        transferQueue: `transfers-${o.suffix}`,
        prefix,
      }),
    );
    return { failures, hedgeRuns: () => runs, node };
  }

  it('fails the hedge when its transfer fails, after telling onFailed which hedge it was', async () => {
    const clock = new ManualClock(0);
    const empty: BridgeEndpoint = {
      id: 'gmx-arb',
      chain: 'evm:42161',
      debitBalance: async () => {
        throw new Error('no free USDC');
      },
      creditBalance: async () => undefined,
    };
    const sol: BridgeEndpoint = { ...empty, id: 'drift-sol', chain: 'solana:mainnet-beta' };
    const tracker = new TransferTracker({ store: memoryTransferStore(), clock });
    const bridge = new PaperBridge({ clock, venues: [empty, sol], costModel: layerZeroCostModel(), tracker });
    const { failures, hedgeRuns, node } = await failingTransferFlow(bridge, {
      suffix: 'f',
      transferId: 'xfer_fail_1',
      amount: '10',
      hedgeJobId: 'int_fail_1',
      hedgeOpts: { attempts: 5 },
    });
    expect(node.job.opts).toMatchObject({ jobId: 'int_fail_1', attempts: 5 });
    for (let i = 0; i < 200 && (await node.job.getState()) !== 'failed'; i++)
      await new Promise((r) => setTimeout(r, 25));
    expect(await node.job.getState()).toBe('failed');
    expect(failures).toEqual([{ parentJobId: 'int_fail_1', state: 'failed' }]);
    expect((await tracker.get('xfer_fail_1'))?.error).toContain('no free USDC');
    expect(hedgeRuns()).toBe(0);
  });

  it("redacts a failed record's error (a URL's credentials) in onFailed and the job's failure", async () => {
    const clock = new ManualClock(0);
    const arb: BridgeEndpoint = {
      id: 'gmx-arb',
      chain: 'evm:42161',
      debitBalance: async () => undefined,
      creditBalance: async () => undefined,
    };
    const sol: BridgeEndpoint = { ...arb, id: 'drift-sol', chain: 'solana:mainnet-beta' };
    const tracker = new TransferTracker({ store: memoryTransferStore(), clock });
    const bridge = new PaperBridge({ clock, venues: [arb, sol], costModel: layerZeroCostModel(), tracker });
    // a failed record as another executor (or an earlier version) wrote it, the driver's message as is
    await tracker.create({
      transferId: 'xfer_secret_1',
      kind: 'oft-send',
      srcChain: 'evm:42161',
      dstChain: 'solana:mainnet-beta',
      srcEid: 30110,
      dstEid: 30168,
      asset: 'USDC',
      amount: '10',
      fromVenue: 'gmx-arb',
      toVenue: 'drift-sol',
      feeUsd: 0.5,
      expectedLatencyMs: 60_000,
      timeoutMs: 180_000,
    });
    await tracker.transition('xfer_secret_1', 'failed', {
      error: 'debit failed: POST https://trader:hunter2pass@rpc.example.com/ refused',
    });
    const errors: string[] = [];
    const transferWorker = startTransferWorker({
      executor: bridge,
      connection,
      prefix,
      queueName: 'transfers-r',
      recheckMs: 20,
      onFailed: async (f) => {
        errors.push(f.error);
      },
    });
    closers.push(() => transferWorker.close());
    const flows = new FlowProducer({ connection, prefix });
    closers.push(() => flows.close());
    const node = await flows.add(
      transferThenHedgeFlow({
        transfer: {
          transferId: 'xfer_secret_1',
          fromVenue: 'gmx-arb',
          toVenue: 'drift-sol',
          asset: 'USDC',
          amount: '10',
        },
        hedge: { queueName: 'hedges-r', name: 'hedge', jobId: 'int_secret_1', data: {} },
        transferQueue: 'transfers-r',
        prefix,
      }),
    );
    const child = node.children?.[0]?.job;
    for (let i = 0; i < 200 && (await child?.getState()) !== 'failed'; i++)
      await new Promise((r) => setTimeout(r, 25));
    expect(await child?.getState()).toBe('failed');
    const queue = new Queue('transfers-r', { connection, prefix });
    closers.push(() => queue.close());
    const failedReason = (await queue.getJob('xfer_secret_1'))?.failedReason;
    expect(errors).toHaveLength(1);
    for (const text of [errors[0], failedReason]) {
      expect(text).toContain('https://[redacted]@rpc.example.com/');
      expect(text).not.toContain('hunter2pass');
    }
  });

  it('a send that throws without a failed record still tells onFailed, once, on the last attempt', async () => {
    const clock = new ManualClock(0);
    const arb: BridgeEndpoint = {
      id: 'gmx-arb',
      chain: 'evm:42161',
      debitBalance: async () => undefined,
      creditBalance: async () => undefined,
    };
    const tracker = new TransferTracker({ store: memoryTransferStore(), clock });
    const bridge = new PaperBridge({ clock, venues: [arb], costModel: layerZeroCostModel(), tracker });
    const failures: { parentJobId: string | undefined; record: unknown; error: string }[] = [];
    const transferWorker = startTransferWorker({
      executor: bridge,
      connection,
      prefix,
      queueName: 'transfers-t',
      recheckMs: 20,
      onFailed: async (f) => {
        failures.push({ parentJobId: f.parentJobId, record: f.record, error: f.error });
      },
    });
    closers.push(() => transferWorker.close());
    let hedgeRuns = 0;
    const hedgeWorker = new Worker(
      'hedges-t',
      async () => {
        hedgeRuns += 1;
      },
      { connection, prefix },
    );
    closers.push(() => hedgeWorker.close());
    const flows = new FlowProducer({ connection, prefix });
    closers.push(() => flows.close());
    const node = await flows.add(
      transferThenHedgeFlow({
        // a venue the bridge does not know: send throws (BRIDGE_UNKNOWN_VENUE) before any record
        transfer: {
          transferId: 'xfer_throw_1',
          fromVenue: 'gmx-arb',
          toVenue: 'nowhere',
          asset: 'USDC',
          amount: '10',
        },
        hedge: { queueName: 'hedges-t', name: 'hedge', jobId: 'int_throw_1', data: {} },
        transferQueue: 'transfers-t',
        prefix,
      }),
    );
    // three attempts, 1 s then 2 s of backoff
    for (let i = 0; i < 400 && (await node.job.getState()) !== 'failed'; i++)
      await new Promise((r) => setTimeout(r, 25));
    expect(await node.job.getState()).toBe('failed');
    const child = node.children?.[0]?.job;
    expect(await child?.getState()).toBe('failed');
    expect(failures).toEqual([
      {
        parentJobId: 'int_throw_1',
        record: undefined,
        error: expect.stringMatching(/does not know venue nowhere/),
      },
    ]);
    expect(await tracker.get('xfer_throw_1')).toBeUndefined();
    expect(hedgeRuns).toBe(0);
  });

  it('a transfer left planned past its deadline fails its hedge and moves nothing', async () => {
    const clock = new ManualClock(0);
    const usdc = new Map<string, number>([
      ['gmx-arb', 1000],
      ['drift-sol', 0],
    ]);
    const venue = (id: string, chain: 'evm:42161' | 'solana:mainnet-beta'): BridgeEndpoint => ({
      id,
      chain,
      debitBalance: async (_a, amt) => usdc.set(id, (usdc.get(id) ?? 0) - Number(amt)),
      creditBalance: async (_a, amt) => usdc.set(id, (usdc.get(id) ?? 0) + Number(amt)),
    });
    const tracker = new TransferTracker({ store: memoryTransferStore(), clock });
    const bridge = new PaperBridge({
      clock,
      venues: [venue('gmx-arb', 'evm:42161'), venue('drift-sol', 'solana:mainnet-beta')],
      costModel: layerZeroCostModel(),
      tracker,
    });
    // the record a send created before a crash, its debit never made
    await tracker.create({
      transferId: 'xfer_stale_1',
      kind: 'oft-send',
      srcChain: 'evm:42161',
      dstChain: 'solana:mainnet-beta',
      srcEid: 30110,
      dstEid: 30168,
      asset: 'USDC',
      amount: '100',
      fromVenue: 'gmx-arb',
      toVenue: 'drift-sol',
      feeUsd: 0.5,
      expectedLatencyMs: 60_000,
      timeoutMs: 180_000,
    });
    clock.advance(10 * 60_000);
    const { failures, hedgeRuns, node } = await failingTransferFlow(bridge, {
      suffix: 's',
      transferId: 'xfer_stale_1',
      amount: '100',
      hedgeJobId: 'int_stale_1',
    });
    for (let i = 0; i < 200 && (await node.job.getState()) !== 'failed'; i++)
      await new Promise((r) => setTimeout(r, 25));
    expect(await node.job.getState()).toBe('failed');
    expect(failures).toEqual([{ parentJobId: 'int_stale_1', state: 'failed' }]);
    expect((await tracker.get('xfer_stale_1'))?.history.map((h) => h.state)).toEqual([
      'planned',
      'timed-out',
      'failed',
    ]);
    expect([usdc.get('gmx-arb'), usdc.get('drift-sol')]).toEqual([1000, 0]);
    expect(hedgeRuns()).toBe(0);
  });
  it('a transfer left `sent` but not debited (a crash, or a write saved and reported failed) is sent again by the worker, and delivered', async () => {
    const clock = new ManualClock(0);
    const usdc = new Map<string, number>([
      ['gmx-arb', 1000],
      ['drift-sol', 0],
    ]);
    const venue = (id: string, chain: 'evm:42161' | 'solana:mainnet-beta'): BridgeEndpoint => ({
      id,
      chain,
      debitBalance: async (_a, amt) => usdc.set(id, (usdc.get(id) ?? 0) - Number(amt)),
      creditBalance: async (_a, amt) => usdc.set(id, (usdc.get(id) ?? 0) + Number(amt)),
    });
    const store = memoryTransferStore();
    const tracker = new TransferTracker({ store, clock });
    // what a send wrote before a crash: `sent`, its debit still pending (never made)
    await tracker.create({
      transferId: 'xfer_pending_1',
      kind: 'oft-send',
      srcChain: 'evm:42161',
      dstChain: 'solana:mainnet-beta',
      srcEid: 30110,
      dstEid: 30168,
      asset: 'USDC',
      amount: '100',
      fromVenue: 'gmx-arb',
      toVenue: 'drift-sol',
      feeUsd: 0.5,
      expectedLatencyMs: 60_000,
      timeoutMs: 180_000,
    });
    await tracker.transition('xfer_pending_1', 'sent', {
      guid: `0x${'ab'.repeat(32)}`,
      nonce: '1',
      debitPending: true,
    });
    // the process that comes back: a new bridge over the kept store
    const bridge = new PaperBridge({
      clock,
      venues: [venue('gmx-arb', 'evm:42161'), venue('drift-sol', 'solana:mainnet-beta')],
      costModel: layerZeroCostModel(),
      tracker: new TransferTracker({ store, clock }),
    });
    const { failures, hedgeRuns, node } = await failingTransferFlow(bridge, {
      suffix: 'p',
      transferId: 'xfer_pending_1',
      amount: '100',
      hedgeJobId: 'int_pending_1',
    });
    // the worker sends it again, which debits it (it used to wait on it: the bridge delivers nothing it
    // has not debited, so nothing moved and the transfer failed at its deadline with its hedge)
    for (let i = 0; i < 80 && (await tracker.get('xfer_pending_1'))?.debitPending; i++)
      await new Promise((r) => setTimeout(r, 25));
    expect((await tracker.get('xfer_pending_1'))?.debitPending).toBeUndefined();
    expect(usdc.get('gmx-arb')).toBe(1000 - 100.5);
    clock.advance(60_000);
    for (let i = 0; i < 200 && hedgeRuns() === 0; i++) await new Promise((r) => setTimeout(r, 25));
    expect(hedgeRuns()).toBe(1);
    expect(await node.job.getState()).not.toBe('failed');
    expect(failures).toEqual([]);
    expect((await tracker.get('xfer_pending_1'))?.state).toBe('delivered');
    expect([usdc.get('gmx-arb'), usdc.get('drift-sol')]).toEqual([1000 - 100.5, 100]);
  });

  it('a transfer whose debit a crashed process began is not debited again by the worker: it fails its hedge as unknown', async () => {
    const clock = new ManualClock(0);
    // the crashed process debited 100 + 0.5 fee, then died before it cleared `debitPending`
    const usdc = new Map<string, number>([
      ['gmx-arb', 1000 - 100.5],
      ['drift-sol', 0],
    ]);
    let debits = 0;
    const venue = (id: string, chain: 'evm:42161' | 'solana:mainnet-beta'): BridgeEndpoint => ({
      id,
      chain,
      debitBalance: async (_a, amt) => {
        debits += 1;
        usdc.set(id, (usdc.get(id) ?? 0) - Number(amt));
      },
      creditBalance: async (_a, amt) => usdc.set(id, (usdc.get(id) ?? 0) + Number(amt)),
    });
    const store = memoryTransferStore();
    const tracker = new TransferTracker({ store, clock });
    await tracker.create({
      transferId: 'xfer_begun_1',
      kind: 'oft-send',
      srcChain: 'evm:42161',
      dstChain: 'solana:mainnet-beta',
      srcEid: 30110,
      dstEid: 30168,
      asset: 'USDC',
      amount: '100',
      fromVenue: 'gmx-arb',
      toVenue: 'drift-sol',
      feeUsd: 0.5,
      expectedLatencyMs: 60_000,
      timeoutMs: 180_000,
    });
    await tracker.transition('xfer_begun_1', 'sent', {
      guid: `0x${'cd'.repeat(32)}`,
      nonce: '1',
      debitPending: true,
    });
    await tracker.update('xfer_begun_1', { debitBegunAtMs: 0 });
    const bridge = new PaperBridge({
      clock,
      venues: [venue('gmx-arb', 'evm:42161'), venue('drift-sol', 'solana:mainnet-beta')],
      costModel: layerZeroCostModel(),
      tracker: new TransferTracker({ store, clock }),
    });
    const { failures, hedgeRuns, node } = await failingTransferFlow(bridge, {
      suffix: 'b',
      transferId: 'xfer_begun_1',
      amount: '100',
      hedgeJobId: 'int_begun_1',
    });
    for (let i = 0; i < 200 && (await node.job.getState()) !== 'failed'; i++)
      await new Promise((r) => setTimeout(r, 25));
    expect(failures).toEqual([{ parentJobId: 'int_begun_1', state: 'failed' }]);
    expect(await tracker.get('xfer_begun_1')).toMatchObject({
      state: 'failed',
      error: expect.stringMatching(/debit of 100\.5 USDC on gmx-arb unknown/),
    });
    clock.advance(600_000);
    await bridge.poll();
    expect(hedgeRuns()).toBe(0);
    expect(await node.job.getState()).toBe('failed');
    expect([debits, usdc.get('gmx-arb'), usdc.get('drift-sol')]).toEqual([0, 1000 - 100.5, 0]);
  });
});

/**
 * Regression (a Redis outage drill): the transfer worker had no 'error' listener, so BullMQ wrote each
 * refused connection to console.error, beside the run's logger (16 lines in 10 s).
 */
describe("startTransferWorker: the worker's own errors (Redis refusing connections)", () => {
  const executor = {
    send: async () => {
      throw new Error('not called');
    },
    status: async () => undefined,
  };
  /** A worker on a port nothing listens on; closed without waiting on the Redis it never reaches. */
  const workerOnDeadRedis = async (onError?: (err: Error) => void) => {
    const port = await freePort();
    const w = startTransferWorker({
      executor,
      connection: { host: '127.0.0.1', port, maxRetriesPerRequest: null },
      queueName: 'transfers',
      ...(onError ? { onError } : {}),
    });
    return {
      close: () => Promise.race([w.close(true).catch(() => {}), new Promise((r) => setTimeout(r, 1_000))]),
    };
  };

  it('reach onError, never console.error', async () => {
    const printed = vi.spyOn(console, 'error').mockImplementation(() => {});
    const errors: Error[] = [];
    const w = await workerOnDeadRedis((err) => errors.push(err));
    try {
      for (let i = 0; i < 200 && errors.length < 2; i++) await new Promise((r) => setTimeout(r, 25));
      expect(errors.length).toBeGreaterThanOrEqual(2);
      expect(errors[0]?.message).toMatch(/ECONNREFUSED/);
      expect(printed).not.toHaveBeenCalled();
    } finally {
      await w.close();
      printed.mockRestore();
    }
  });

  it('without onError: still nothing on console.error (the worker always has a listener)', async () => {
    const printed = vi.spyOn(console, 'error').mockImplementation(() => {});
    const w = await workerOnDeadRedis();
    try {
      await new Promise((r) => setTimeout(r, 1_500));
      expect(printed).not.toHaveBeenCalled();
    } finally {
      await w.close();
      printed.mockRestore();
    }
  });
});
