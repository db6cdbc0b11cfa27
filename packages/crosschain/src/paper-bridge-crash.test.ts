import { Dec, ManualClock, toDecimalString } from '@xhedge/core';
import { describe, expect, it } from 'vitest';
import { layerZeroCostModel } from './cost.ts';
import { type BridgeEndpoint, PaperBridge } from './paper-bridge.ts';
import { memoryTransferStore, type TransferRecord, type TransferStore, TransferTracker } from './tracker.ts';

/**
 * A process crash at every write of one transfer. The transfer records are kept (the store outlives the
 * process, as a persistent `TransferStore` would) and so are the venue balances; the bridge (and all it
 * keeps in memory) is thrown away at the crash, and a new bridge over the same store resends the same
 * transfer id and polls until the transfer settles.
 */

/** A paper endpoint with exact balances that counts its debits and credits. */
function venue(id: string, chain: 'evm:42161' | 'evm:10', start: Record<string, string>) {
  const balances = new Map(Object.entries(start).map(([a, v]) => [a, new Dec(v)]));
  const v = {
    id,
    chain,
    debits: 0,
    credits: 0,
    balance: (a: string) => (balances.get(a) ?? new Dec(0)).toFixed(),
    async debitBalance(asset: string, amount: string) {
      await Promise.resolve();
      const next = (balances.get(asset) ?? new Dec(0)).sub(amount);
      if (next.lt(0)) throw new Error(`cannot debit ${amount}`);
      balances.set(asset, next);
      v.debits += 1;
    },
    async creditBalance(asset: string, amount: string) {
      await Promise.resolve();
      balances.set(asset, (balances.get(asset) ?? new Dec(0)).add(amount));
      v.credits += 1;
    },
  } satisfies BridgeEndpoint & Record<string, unknown>;
  return v;
}

class Crash extends Error {
  override name = 'Crash';
}

/**
 * A kept store whose `crashAt`-th write (1-based, counted from now) kills the process: the write is lost
 * (`saved` false) or made (`saved` true, the process died before hearing back), and the caller throws
 * the bridge away.
 */
function crashingStore() {
  const inner = memoryTransferStore();
  let writes = 0;
  let crashAt: { n: number; saved: boolean } | undefined;
  const store = {
    get writes() {
      return writes;
    },
    crashAt(n: number, saved: boolean) {
      writes = 0;
      crashAt = { n, saved };
    },
    get: (id: string) => inner.get(id),
    list: () => inner.list(),
    async put(r: TransferRecord) {
      writes += 1;
      if (crashAt && writes === crashAt.n) {
        const { saved } = crashAt;
        crashAt = undefined;
        if (saved) await inner.put(r);
        throw new Crash(`crash at write ${writes} (${r.state}${saved ? ', saved' : ''})`);
      }
      await inner.put(r);
    },
  } satisfies TransferStore & Record<string, unknown>;
  return store;
}

const req = { transferId: 'x_crash', fromVenue: 'arb', toVenue: 'op', asset: 'USDC', amount: '100' };

function bridgeOver(store: TransferStore, clock: ManualClock, venues: readonly BridgeEndpoint[]) {
  return new PaperBridge({
    clock,
    venues,
    costModel: layerZeroCostModel(),
    tracker: new TransferTracker({ store, clock }),
  });
}

/** Runs one transfer through send and delivery; returns whether the process crashed on the way. */
async function lifecycle(bridge: PaperBridge, clock: ManualClock): Promise<boolean> {
  try {
    const sent = await bridge.send(req);
    clock.advance(sent.expectedLatencyMs);
    await bridge.poll();
    return false;
  } catch (err) {
    if (err instanceof Crash) return true;
    throw err;
  }
}

/** The writes one transfer makes from send to delivery, without a crash. */
async function writesOfOneTransfer(): Promise<number> {
  const clock = new ManualClock(0);
  const store = crashingStore();
  const bridge = bridgeOver(store, clock, [
    venue('arb', 'evm:42161', { USDC: '1000' }),
    venue('op', 'evm:10', {}),
  ]);
  expect(await lifecycle(bridge, clock)).toBe(false);
  expect((await bridge.tracker.get(req.transferId))?.state).toBe('delivered');
  return store.writes;
}

describe('paper bridge: a crash at any write of a transfer, then a restart over the kept store', () => {
  it('never debits the source twice, never credits twice or without a debit, and settles every transfer', async () => {
    const writes = await writesOfOneTransfer();
    expect(writes).toBeGreaterThanOrEqual(5);
    const outcomes: string[] = [];
    for (let n = 1; n <= writes; n++)
      for (const saved of [false, true]) {
        const clock = new ManualClock(0);
        const arb = venue('arb', 'evm:42161', { USDC: '1000' });
        const op = venue('op', 'evm:10', {});
        const store = crashingStore();
        store.crashAt(n, saved);
        expect(await lifecycle(bridgeOver(store, clock, [arb, op]), clock)).toBe(true);
        // the process comes back: a new bridge, the same records, the same venues; the worker resends
        const restarted = bridgeOver(store, clock, [arb, op]);
        await restarted.send(req).catch(() => undefined);
        clock.advance(600_000);
        await restarted.poll();
        const rec = (await restarted.tracker.get(req.transferId)) as TransferRecord;
        clock.set(rec.deadlineMs + 1);
        await restarted.poll();
        const final = (await restarted.tracker.get(req.transferId)) as TransferRecord;
        const at = `crash at write ${n}${saved ? ' (saved)' : ''}`;
        outcomes.push(`${at}: ${final.state} debits ${arb.debits} credits ${op.credits}`);
        expect(arb.debits, at).toBeLessThanOrEqual(1);
        expect(op.credits, at).toBeLessThanOrEqual(arb.debits);
        expect(['delivered', 'failed'], at).toContain(final.state);
        if (final.state === 'delivered') {
          const fee = toDecimalString(final.feeUsd, 12);
          expect([arb.balance('USDC'), op.balance('USDC')], at).toEqual([
            new Dec(1000).sub(100).sub(fee).toFixed(),
            '100',
          ]);
        } else if (/nothing moved/.test(final.error ?? '')) {
          expect([arb.debits, op.credits], at).toEqual([0, 0]);
        } else {
          // what a crash left unknown is said, naming the venue to reconcile
          expect(final.error, at).toMatch(/unknown: .*reconcile (arb|op) by hand/);
        }
      }
    // a crash before the debit is begun finishes the transfer instead of failing it
    expect(outcomes.filter((o) => o.includes('delivered debits 1 credits 1')).length).toBeGreaterThan(0);
  });

  it('a crash between the debit and the clearing of `debitPending`: the restart does not debit again', async () => {
    const clock = new ManualClock(0);
    const arb = venue('arb', 'evm:42161', { USDC: '1000' });
    const op = venue('op', 'evm:10', {});
    const store = memoryTransferStore();
    // the write that clears `debitPending` after the debit is lost with the process
    const dying: TransferStore = {
      get: (id) => store.get(id),
      list: () => store.list(),
      async put(r) {
        if (r.state === 'sent' && r.debitPending === undefined) throw new Crash('crash after the debit');
        await store.put(r);
      },
    };
    await expect(bridgeOver(dying, clock, [arb, op]).send(req)).rejects.toBeInstanceOf(Crash);
    expect(arb.debits).toBe(1);
    const afterDebit = arb.balance('USDC');
    const restarted = bridgeOver(store, clock, [arb, op]);
    const again = await restarted.send(req);
    expect(arb.debits).toBe(1);
    expect(arb.balance('USDC')).toBe(afterDebit);
    expect(again).toMatchObject({
      state: 'failed',
      error: expect.stringMatching(/debit of 101\.11 USDC on arb unknown: .*reconcile arb by hand/),
    });
    clock.advance(3_600_000);
    await restarted.poll();
    expect([arb.debits, op.credits]).toEqual([1, 0]);
  });

  it('a restart that only polls fails a transfer whose debit was begun as unknown at its deadline, not as "nothing moved"', async () => {
    const clock = new ManualClock(0);
    const arb = venue('arb', 'evm:42161', { USDC: '1000' });
    const op = venue('op', 'evm:10', {});
    const store = memoryTransferStore();
    const dying: TransferStore = {
      get: (id) => store.get(id),
      list: () => store.list(),
      async put(r) {
        if (r.state === 'sent' && r.debitPending === undefined) throw new Crash('crash after the debit');
        await store.put(r);
      },
    };
    await expect(bridgeOver(dying, clock, [arb, op]).send(req)).rejects.toBeInstanceOf(Crash);
    const restarted = bridgeOver(store, clock, [arb, op]);
    const rec = (await restarted.tracker.get(req.transferId)) as TransferRecord;
    clock.set(rec.deadlineMs + 1);
    await restarted.poll();
    expect(await restarted.tracker.get(req.transferId)).toMatchObject({
      state: 'failed',
      error: expect.stringMatching(/debit of 100 USDC \(and its fee\) on arb unknown/),
    });
    expect([arb.debits, op.credits]).toEqual([1, 0]);
  });

  it('a restart finding `sent` whose debit was never begun debits it once and delivers it', async () => {
    const clock = new ManualClock(0);
    const arb = venue('arb', 'evm:42161', { USDC: '1000' });
    const op = venue('op', 'evm:10', {});
    const store = memoryTransferStore();
    // the write after `sent` (the debit's mark) is lost with the process: the debit never began
    const dying: TransferStore = {
      get: (id) => store.get(id),
      list: () => store.list(),
      async put(r) {
        if (r.debitBegunAtMs !== undefined) throw new Crash('crash before the debit');
        await store.put(r);
      },
    };
    await expect(bridgeOver(dying, clock, [arb, op]).send(req)).rejects.toBeInstanceOf(Crash);
    expect(arb.debits).toBe(0);
    const restarted = bridgeOver(store, clock, [arb, op]);
    const sent = await restarted.send(req);
    expect(sent).toMatchObject({ state: 'sent' });
    expect(sent.debitPending).toBeUndefined();
    clock.advance(sent.expectedLatencyMs);
    await restarted.poll();
    expect((await restarted.tracker.get(req.transferId))?.state).toBe('delivered');
    expect([arb.debits, op.credits, op.balance('USDC')]).toEqual([1, 1, '100']);
  });
});
