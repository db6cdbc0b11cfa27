import { randomBytes } from 'node:crypto';
import { LimitsConfig } from '@xhedge/config';
import { type HedgeIntent, ManualClock } from '@xhedge/core';
import type { TransferExecutor } from '@xhedge/crosschain';
import {
  clientOrderIdFor,
  ExecutionService,
  LeaderLease,
  orderQueueName,
  producerMarked,
} from '@xhedge/execution';
import { controlStack, freePort, machineRedisOrEmbedded } from '@xhedge/execution/testing';
import { Ledger, openDatabase } from '@xhedge/store';
import { type Job, Queue } from 'bullmq';
import { describe, expect, it, vi } from 'vitest';
import { startTransferJobs, TransferFlows, transferDeliveredAtMs } from './transfers.ts';

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

  it('is undefined when a transfer landed past its deadline: the stale hedge is aged from its planning', async () => {
    // deadline 900 000: a delivery at 1 800 000 (30 min after planning) refreshes nothing
    const late = delivered('xfer-late', 1_800_000);
    expect(await transferDeliveredAtMs(jobWithChildren({ 'q:late': late }))).toBeUndefined();
    // nor does a timely sibling make it look fresh
    expect(
      await transferDeliveredAtMs(jobWithChildren({ 'q:a': delivered('xfer-a', 125_000), 'q:late': late })),
    ).toBeUndefined();
    // one that timed out (alerted) and then landed is late, whatever its deadline field says
    const timedOut = delivered('xfer-to', 200_000);
    timedOut.history.splice(2, 0, { state: 'timed-out', atMs: 190_000 });
    expect(await transferDeliveredAtMs(jobWithChildren({ 'q:to': timedOut }))).toBeUndefined();
    // on the deadline itself it is still in time
    expect(await transferDeliveredAtMs(jobWithChildren({ 'q:d': delivered('xfer-d', 900_000) }))).toBe(
      900_000,
    );
  });

  it('is undefined for a job without transfer children (its age counts from planning)', async () => {
    expect(await transferDeliveredAtMs(jobWithChildren({}))).toBeUndefined();
    expect(await transferDeliveredAtMs(jobWithChildren({ 'q:x': { ok: true } }))).toBeUndefined();
  });
});

/** A USDC move from gmx-arb to drift-sol for plan `plan_<n>`. */
const transferFor = (n: string) => ({
  id: `xfer_${n}`,
  planId: `plan_${n}`,
  fromVenue: 'gmx-arb',
  fromChain: 'evm:42161',
  toVenue: 'drift-sol',
  toChain: 'solana:mainnet-beta',
  asset: 'USDC',
  amount: '1000',
  feeUsd: 0.5,
  expectedLatencyMs: 60_000,
});

/** A SOL perp buy at 180 on `venue`. */
const solLeg = (
  o: Pick<HedgeIntent, 'id' | 'planId' | 'venue' | 'sizeBase' | 'dependsOn' | 'createdAtMs'>,
): HedgeIntent => ({
  ...o,
  underlying: 'SOL',
  chain: o.venue === 'drift-sol' ? 'solana:mainnet-beta' : 'evm:42161',
  instrument: 'SOL-USD:PERP',
  side: 'buy',
  orderType: 'market',
  referencePriceUsd: 180,
  reduceOnly: false,
  urgency: 'normal',
  reason: 'test',
});

/**
 * What TransferFlows runs on: the machine's Redis (a prefix of its own), a PGlite ledger, the controls,
 * an execution service, the orchestrator's lease and the flows. `close` leaves nothing of the prefix
 * behind in the shared Redis.
 */
async function transferStack(
  limits: Record<string, unknown>,
  service: Partial<ConstructorParameters<typeof ExecutionService>[0]> = {},
) {
  const redis = await machineRedisOrEmbedded('transfers test');
  const cmd = redis.client();
  const prefix = `xhtf${randomBytes(4).toString('hex')}`;
  const ledger = new Ledger(await openDatabase());
  const clock = new ManualClock(Date.now());
  const { base } = await controlStack({
    redis,
    cmd,
    prefix,
    ledger,
    limits: LimitsConfig.parse(limits),
    clock,
  });
  const svc = new ExecutionService({ ...base, ...service });
  const lease = new LeaderLease({ redis: cmd, prefix, name: 'orchestrator' });
  const flows = new TransferFlows({ connection: redis.options, queuePrefix: prefix, ledger, service: svc });
  return {
    redis,
    cmd,
    prefix,
    ledger,
    clock,
    service: svc,
    lease,
    flows,
    async close() {
      await flows.close();
      await svc.close();
      await lease.stop();
      const keys = await cmd.keys(`${prefix}:*`);
      if (keys.length > 0) await cmd.del(...keys);
      cmd.disconnect();
      await redis.close();
    },
  };
}

describe('TransferFlows: the plan checks hold for the legs behind a transfer', () => {
  it('a plan the net-delta check refuses: the direct leg and the funded leg are both cancelled, no job is added', async () => {
    const st = await transferStack({
      maxOrderNotionalUsd: 1e6,
      maxHedgeNotionalPerWindowUsd: 1e8,
      maxNetDeltaUsd: { SOL: 1800 }, // 10 SOL at 180
    });
    try {
      expect(await st.lease.tick()).toBeDefined();
      const transfer = transferFor('tf1');
      const leg = (n: number, venue: string, dependsOn: string[]) =>
        solLeg({
          id: `int_tf${n}`,
          planId: transfer.planId,
          venue,
          sizeBase: '4',
          dependsOn,
          createdAtMs: st.clock.nowMs(),
        });
      const legs = [leg(1, 'gmx-arb', []), leg(2, 'drift-sol', [transfer.id])];
      // book +5 SOL, the plan adds +8: 13 × 180 = 2340 USD > 1800
      const res = await st.flows.submit(
        {
          planId: transfer.planId,
          underlying: 'SOL',
          reason: 'test',
          legs,
          transfers: [transfer],
          netDelta: { underlying: 'SOL', bookDeltaBase: 5, planDeltaBase: 8, spotUsd: 180 },
        },
        st.lease,
      );
      expect(res.map((r) => [r.intentId, r.outcome, r.control])).toEqual([
        ['int_tf1', 'blocked', 'net-delta'],
        ['int_tf2', 'blocked', 'net-delta'],
      ]);
      for (const l of legs)
        expect((await st.ledger.getOrder(clientOrderIdFor(l.id)))?.status).toBe('cancelled');
      for (const venue of ['gmx-arb', 'drift-sol']) {
        const q = new Queue(orderQueueName(venue), { connection: st.redis.options, prefix: st.prefix });
        expect(await q.getJobCountByTypes('waiting', 'waiting-children', 'prioritized', 'delayed')).toBe(0);
        await q.close();
      }
    } finally {
      await st.close();
    }
  });
});

describe('TransferFlows: a leg behind a transfer is marked while its producer works', () => {
  it('its producer mark stands from the ledger write to the flow add, so the reconciler does not take it for an orphan', async () => {
    const st = await transferStack(
      { maxOrderNotionalUsd: 1e6, maxHedgeNotionalPerWindowUsd: 1e8 },
      { producerMarkAfterMs: 20 },
    );
    const check = st.service.preQueueCheck.bind(st.service);
    const markedDuringCheck: boolean[] = [];
    // a pre-queue check slower than the mark's delay (its market-data read, say)
    st.service.preQueueCheck = async (intent) => {
      await new Promise((r) => setTimeout(r, 150));
      markedDuringCheck.push(await producerMarked(st.cmd, st.prefix, clientOrderIdFor(intent.id)));
      return check(intent);
    };
    try {
      expect(await st.lease.tick()).toBeDefined();
      const transfer = transferFor('tm1');
      const leg = solLeg({
        id: 'int_tm1',
        planId: transfer.planId,
        venue: 'drift-sol',
        sizeBase: '4',
        dependsOn: [transfer.id],
        createdAtMs: st.clock.nowMs(),
      });
      const res = await st.flows.submit(
        { planId: transfer.planId, underlying: 'SOL', reason: 'test', legs: [leg], transfers: [transfer] },
        st.lease,
      );
      expect(res.map((r) => r.outcome)).toEqual(['queued']);
      expect(markedDuringCheck).toEqual([true]);
      // dropped once the flow is added
      expect(await producerMarked(st.cmd, st.prefix, clientOrderIdFor(leg.id))).toBe(false);
      const q = new Queue(orderQueueName('drift-sol'), { connection: st.redis.options, prefix: st.prefix });
      expect(await (await q.getJob(leg.id))?.getState()).toBe('waiting-children');
      await q.close();
    } finally {
      await st.close();
    }
  });
});

describe('startTransferJobs: a transfer whose executor throws', () => {
  it('cancels the waiting hedge and logs it, though no failed record exists', async () => {
    const st = await transferStack({ maxOrderNotionalUsd: 1e6, maxHedgeNotionalPerWindowUsd: 1e8 });
    const logs: { level: string; msg: string; data?: Record<string, unknown> }[] = [];
    // no record ever: the store behind it is down
    const executor: TransferExecutor = {
      send: async () => {
        throw new Error('transfer store unreachable');
      },
      status: async () => undefined,
    };
    const worker = startTransferJobs({
      executor,
      connection: st.redis.options,
      queuePrefix: st.prefix,
      ledger: st.ledger,
      service: st.service,
      recheckMs: 20,
      log: (level, msg, data) => logs.push({ level, msg, ...(data ? { data } : {}) }),
    });
    try {
      expect(await st.lease.tick()).toBeDefined();
      const transfer = transferFor('tf2');
      const intent = solLeg({
        id: 'int_tf3',
        planId: transfer.planId,
        venue: 'drift-sol',
        sizeBase: '1',
        dependsOn: [transfer.id],
        createdAtMs: st.clock.nowMs(),
      });
      const res = await st.flows.submit(
        { planId: transfer.planId, underlying: 'SOL', reason: 'test', legs: [intent], transfers: [transfer] },
        st.lease,
      );
      expect(res.map((r) => [r.intentId, r.outcome])).toEqual([['int_tf3', 'queued']]);
      const clientOrderId = clientOrderIdFor(intent.id);
      // three attempts (1 s, then 2 s of backoff), then the hedge is cancelled
      for (let i = 0; i < 400 && (await st.ledger.getOrder(clientOrderId))?.status !== 'cancelled'; i++)
        await new Promise((r) => setTimeout(r, 25));
      expect((await st.ledger.getOrder(clientOrderId))?.status).toBe('cancelled');
      expect(logs).toEqual([
        {
          level: 'error',
          msg: 'collateral transfer xfer_tf2 failed',
          data: {
            error: 'transfer store unreachable',
            hedge: 'int_tf3',
            state: 'unknown (the executor threw)',
          },
        },
      ]);
    } finally {
      await worker.close();
      await st.close();
    }
  });
});

/**
 * Regression (a Redis outage drill): the transfer worker had no 'error' listener, so BullMQ wrote each
 * refused connection to console.error, outside the run's logger (16 lines in 10 s).
 */
describe("startTransferJobs: the worker's own errors (Redis refusing connections)", () => {
  const executor: TransferExecutor = {
    send: async () => {
      throw new Error('not called');
    },
    status: async () => undefined,
  };
  /** The worker on a port nothing listens on (no ledger or service is reached: no job ever runs). */
  const onDeadRedis = async (o: { nowMs?: () => number } = {}) => {
    const logs: { level: string; msg: string; data?: Record<string, unknown> }[] = [];
    const worker = startTransferJobs({
      executor,
      connection: { host: '127.0.0.1', port: await freePort(), maxRetriesPerRequest: null },
      queuePrefix: `xh-tw-${randomBytes(3).toString('hex')}`,
      ledger: undefined as unknown as Ledger,
      service: undefined as unknown as ExecutionService,
      log: (level, msg, data) => logs.push({ level, msg, ...(data ? { data } : {}) }),
      ...o,
    });
    let emitted = 0;
    worker.on('error', () => emitted++);
    return {
      worker,
      logs,
      emitted: () => emitted,
      close: () =>
        Promise.race([worker.close(true).catch(() => {}), new Promise((r) => setTimeout(r, 1_000))]),
    };
  };

  it("reach the run's logger, once for a streak of refused connections, never console.error", async () => {
    const printed = vi.spyOn(console, 'error').mockImplementation(() => {});
    const w = await onDeadRedis();
    try {
      for (let i = 0; i < 200 && w.emitted() < 3; i++) await new Promise((r) => setTimeout(r, 25));
      expect(w.emitted()).toBeGreaterThanOrEqual(3);
      expect(w.logs).toEqual([
        {
          level: 'warn',
          msg: 'transfer worker error (its Redis connection, most often: BullMQ reconnects and goes on by itself)',
          data: { error: expect.stringMatching(/ECONNREFUSED/), name: 'Error' },
        },
      ]);
      expect(printed).not.toHaveBeenCalled();
    } finally {
      await w.close();
      printed.mockRestore();
    }
  });

  it('a long streak: one line counting the errors not logged every 30 s; a quiet 30 s starts a new streak', async () => {
    let now = 1_000_000;
    const w = await onDeadRedis({ nowMs: () => now });
    try {
      const emit = (msg: string) => w.worker.emit('error', new Error(msg));
      emit('connect ECONNREFUSED 127.0.0.1:1');
      now += 10_000;
      emit('Connection is closed.');
      now += 19_000;
      emit('connect ECONNREFUSED 127.0.0.1:1');
      expect(w.logs.map((l) => l.msg)).toEqual([expect.stringMatching(/^transfer worker error/)]);
      now += 2_000; // 31 s since the line
      emit('connect ECONNREFUSED 127.0.0.1:1');
      expect(w.logs).toHaveLength(2);
      expect(w.logs[1]?.msg).toMatch(/^transfer worker: still failing, \d+ more errors$/);
      expect(w.logs[1]?.data).toMatchObject({
        sinceMs: 1_000_000,
        error: 'connect ECONNREFUSED 127.0.0.1:1',
      });
      emit('connect ECONNREFUSED 127.0.0.1:1'); // right after a line: counted, not logged
      expect(w.logs).toHaveLength(2);
      now += 31_000; // quiet for 31 s: a new streak
      emit('connect ECONNREFUSED 127.0.0.1:1');
      expect(w.logs).toHaveLength(3);
      expect(w.logs[2]?.msg).toMatch(/^transfer worker error/);
    } finally {
      await w.close();
    }
  });
});
