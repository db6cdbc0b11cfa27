import { Keypair } from '@solana/web3.js';
import { Dec, ManualClock, toDecimalString } from '@xhedge/core';
import { encodeAbiParameters, parseAbiParameters } from 'viem';
import { describe, expect, it } from 'vitest';
import { layerZeroCostModel } from './cost.ts';
import { decodePacket, executorOptions, packetGuid, toBytes32 } from './lz.ts';
import { type BridgeEndpoint, PaperBridge } from './paper-bridge.ts';
import {
  decodeHedgeInstruction,
  encodeHedgeInstruction,
  InsufficientCollateralError,
  planCollateralTransfer,
} from './plan.ts';
import {
  memoryTransferStore,
  type TransferRecord,
  type TransferStore,
  TransferTracker,
  TransferTransitionError,
} from './tracker.ts';

/** A paper endpoint with exact balances, an async hop per call (like a venue), and a halt switch. */
function exactVenue(
  id: string,
  chain: 'evm:42161' | 'evm:10' | 'solana:mainnet-beta',
  start: Record<string, string>,
) {
  const balances = new Map(Object.entries(start).map(([a, v]) => [a, new Dec(v)]));
  const v = {
    id,
    chain,
    halted: false,
    debits: 0,
    credits: 0,
    balance: (a: string) => (balances.get(a) ?? new Dec(0)).toFixed(),
    async debitBalance(asset: string, amount: string) {
      await Promise.resolve();
      if (v.halted) throw new Error(`${id} halted`);
      const next = (balances.get(asset) ?? new Dec(0)).sub(amount);
      if (next.lt(0)) throw new Error(`cannot debit ${amount}`);
      balances.set(asset, next);
      v.debits += 1;
    },
    async creditBalance(asset: string, amount: string) {
      await Promise.resolve();
      if (v.halted) throw new Error(`${id} halted`);
      balances.set(asset, (balances.get(asset) ?? new Dec(0)).add(amount));
      v.credits += 1;
    },
  } satisfies BridgeEndpoint & Record<string, unknown>;
  return v;
}

/** The record a send creates before its debit, left `planned` as a crash right after it would. */
function plannedRecord(transferId: string, amount: string) {
  return {
    transferId,
    kind: 'oft-send' as const,
    srcChain: 'evm:42161' as const,
    dstChain: 'evm:10' as const,
    srcEid: 30110,
    dstEid: 30111,
    asset: 'WETH',
    amount,
    fromVenue: 'arb',
    toVenue: 'op',
    feeUsd: 0.5,
    expectedLatencyMs: 60_000,
    timeoutMs: 180_000,
  };
}

function bridgeOf(
  venues: readonly BridgeEndpoint[],
  clock: ManualClock,
  store: TransferStore = memoryTransferStore(),
) {
  const tracker = new TransferTracker({ store, clock });
  return new PaperBridge({ clock, venues, costModel: layerZeroCostModel(), tracker });
}

/**
 * The memory store with an outage: after `failNext(when)`, the first `put` of a record `when` matches
 * throws (nothing written), once; every other call goes through.
 */
function flakyStore() {
  const inner = memoryTransferStore();
  let when: ((r: TransferRecord) => boolean) | undefined;
  const store = {
    failed: 0,
    failNext(w: (r: TransferRecord) => boolean) {
      when = w;
    },
    get: (id: string) => inner.get(id),
    list: () => inner.list(),
    async put(r: TransferRecord) {
      if (when?.(r)) {
        when = undefined;
        store.failed += 1;
        throw new Error(`store write of ${r.transferId} (${r.state}) failed`);
      }
      await inner.put(r);
    },
  } satisfies TransferStore & Record<string, unknown>;
  return store;
}

describe('paper bridge: a failed store write or a crash moves collateral once', () => {
  const req = { transferId: 'x_once', fromVenue: 'arb', toVenue: 'op', asset: 'USDC', amount: '100' };
  /** 1000 USDC at arb, none at op, a bridge over a flaky store. */
  function setup() {
    const clock = new ManualClock(0);
    const arb = exactVenue('arb', 'evm:42161', { USDC: '1000' });
    const op = exactVenue('op', 'evm:10', {});
    const store = flakyStore();
    return { clock, arb, op, store, bridge: bridgeOf([arb, op], clock, store) };
  }
  /** What the source holds after one debit of `rec` (amount + its USD fee, USDC being USD-like). */
  const afterOneDebit = (rec: TransferRecord) =>
    new Dec(1000).sub(rec.amount).sub(toDecimalString(rec.feeUsd, 12)).toFixed();

  it('the `sent` write fails once: the retry debits once (source 1000 − 100 − fee, not − 200)', async () => {
    const { clock, arb, op, store, bridge } = setup();
    store.failNext((r) => r.state === 'sent');
    await expect(bridge.send(req)).rejects.toThrow(/store write of x_once \(sent\) failed/);
    expect((await bridge.tracker.get('x_once'))?.state).toBe('planned');
    expect(arb.debits).toBe(0);
    const sent = await bridge.send(req);
    expect(sent.state).toBe('sent');
    expect([arb.debits, arb.balance('USDC')]).toEqual([1, afterOneDebit(sent)]);
    clock.advance(sent.expectedLatencyMs);
    await bridge.poll();
    expect([op.credits, op.balance('USDC'), (await bridge.tracker.get('x_once'))?.state]).toEqual([
      1,
      '100',
      'delivered',
    ]);
  });

  it('a refused debit whose `failed` write fails stays uncredited and is failed by the next send or poll', async () => {
    const { clock, arb, op, store, bridge } = setup();
    arb.halted = true;
    store.failNext((r) => r.state === 'failed');
    await expect(bridge.send(req)).rejects.toThrow(/store write of x_once \(failed\) failed/);
    // `sent` in the store (written before the debit), nothing debited
    const stuck = await bridge.tracker.get('x_once');
    expect(stuck?.state).toBe('sent');
    arb.halted = false;
    clock.advance((stuck?.expectedLatencyMs ?? 0) + 1);
    expect(await bridge.poll()).toEqual([]);
    const failed = await bridge.tracker.get('x_once');
    expect(failed?.state).toBe('failed');
    expect(failed?.error).toMatch(/debit on arb failed: Error: arb halted/);
    // the worker's retry finds it failed: no debit, no credit, ever
    expect((await bridge.send(req)).state).toBe('failed');
    clock.advance(3_600_000);
    await bridge.poll();
    expect([arb.debits, arb.balance('USDC'), op.credits, op.balance('USDC')]).toEqual([0, '1000', 0, '0']);
  });

  it('a debit beyond the balance names the amount and the fee it debits', async () => {
    const { arb, bridge } = setup();
    const err = await bridge.send({ ...req, amount: '999.9' }).catch((e: unknown) => e);
    const fee = toDecimalString((await bridge.tracker.get('x_once'))?.feeUsd ?? Number.NaN, 12);
    expect(err).toMatchObject({ code: 'BRIDGE_DEBIT_FAILED' });
    expect((err as Error).message).toContain(
      `cannot debit ${new Dec('999.9').add(fee).toFixed()} USDC (amount 999.9 + fee ${new Dec(fee).toFixed()}) from arb`,
    );
    expect(arb.balance('USDC')).toBe('1000');
  });

  it('the `delivered` write fails once: the next poll delivers without crediting again', async () => {
    const { clock, op, store, bridge } = setup();
    const sent = await bridge.send(req);
    clock.advance(sent.expectedLatencyMs);
    store.failNext((r) => r.state === 'delivered');
    await expect(bridge.poll()).rejects.toThrow(/store write of x_once \(delivered\) failed/);
    expect(op.balance('USDC')).toBe('100');
    expect((await bridge.poll()).map((r) => r.transferId)).toEqual(['x_once']);
    expect([op.credits, op.balance('USDC')]).toEqual([1, '100']);
  });

  it('a crash between the credit and its `delivered` record: a new bridge over the store does not credit again, and says the credit is unknown', async () => {
    const { clock, arb, op, store, bridge } = setup();
    const sent = await bridge.send(req);
    clock.advance(sent.expectedLatencyMs);
    store.failNext((r) => r.state === 'delivered');
    await expect(bridge.poll()).rejects.toThrow(/failed/);
    // the process restarts: a new bridge over the same records and the same venues; it cannot tell a
    // credit made from one the crash cut off, so it fails the transfer for a reconciliation by hand
    const restarted = bridgeOf([arb, op], clock, store);
    const after = await restarted.status('x_once');
    expect(after).toMatchObject({
      state: 'failed',
      error: expect.stringMatching(/credit of 100 USDC on op unknown/),
    });
    await restarted.poll();
    expect([op.credits, op.balance('USDC'), arb.debits]).toEqual([1, '100', 1]);
  });

  it('the same bridge after a failed `delivered` write writes it at the next poll, crediting once', async () => {
    const { clock, arb, op, store, bridge } = setup();
    const sent = await bridge.send(req);
    clock.advance(sent.expectedLatencyMs);
    store.failNext((r) => r.state === 'delivered');
    await expect(bridge.poll()).rejects.toThrow(/failed/);
    expect((await bridge.poll()).map((r) => r.state)).toEqual(['delivered']);
    expect([op.credits, op.balance('USDC'), arb.debits]).toEqual([1, '100', 1]);
  });

  /** A store that saves the record and then reports a failure (a lost acknowledgement, a timeout after commit). */
  function savedButThrows(store: ReturnType<typeof flakyStore>, when: (r: TransferRecord) => boolean) {
    const put = store.put;
    let armed = true;
    store.put = async (r: TransferRecord) => {
      await put(r);
      if (armed && when(r)) {
        armed = false;
        throw new Error(`store write of ${r.transferId} (${r.state}) saved, but reported failed`);
      }
    };
  }

  it('a `sent` write saved but reported failed: the retry debits once, and nothing is credited before the debit', async () => {
    const { clock, arb, op, store, bridge } = setup();
    savedButThrows(store, (r) => r.state === 'sent' && r.debitPending === true);
    await expect(bridge.send(req)).rejects.toThrow(/saved, but reported failed/);
    expect(arb.debits).toBe(0);
    // a poll meanwhile credits nothing: the source was not debited
    clock.advance(60_000);
    expect(await bridge.poll()).toEqual([]);
    expect(op.credits).toBe(0);
    const again = await bridge.send(req);
    expect(again.debitPending).toBeUndefined();
    expect(arb.debits).toBe(1);
    clock.advance(again.expectedLatencyMs);
    await bridge.poll();
    expect((await bridge.status('x_once'))?.state).toBe('delivered');
    expect([arb.debits, op.credits, op.balance('USDC')]).toEqual([1, 1, '100']);
  });

  it('a credit mark saved but reported failed: the next poll credits once (the credit was still due here)', async () => {
    const { clock, arb, op, store, bridge } = setup();
    const sent = await bridge.send(req);
    clock.advance(sent.expectedLatencyMs);
    savedButThrows(store, (r) => r.creditBegunAtMs !== undefined);
    await expect(bridge.poll()).rejects.toThrow(/saved, but reported failed/);
    expect(op.credits).toBe(0);
    expect((await bridge.poll()).map((r) => r.state)).toEqual(['delivered']);
    expect([arb.debits, op.credits, op.balance('USDC')]).toEqual([1, 1, '100']);
  });

  it('a sent transfer never debited and never retried fails at its deadline, nothing moved', async () => {
    const { clock, arb, op, store, bridge } = setup();
    savedButThrows(store, (r) => r.state === 'sent' && r.debitPending === true);
    await expect(bridge.send(req)).rejects.toThrow(/saved, but reported failed/);
    const rec = await bridge.tracker.get('x_once');
    clock.set((rec?.deadlineMs ?? 0) + 1);
    await bridge.poll();
    expect(await bridge.tracker.get('x_once')).toMatchObject({
      state: 'failed',
      error: expect.stringMatching(/never debited/),
    });
    expect([arb.debits, op.credits]).toEqual([0, 0]);
  });

  it('a refused credit whose mark cannot be cleared is still credited, once, when the venue is back', async () => {
    const { clock, op, store, bridge } = setup();
    const sent = await bridge.send(req);
    clock.advance(sent.expectedLatencyMs);
    op.halted = true;
    // the write after the credit mark (its removal, the credit refused) fails
    let marked = false;
    store.failNext((r) => {
      if (r.creditBegunAtMs !== undefined) marked = true;
      return marked && r.creditBegunAtMs === undefined;
    });
    await expect(bridge.poll()).rejects.toThrow(/failed/);
    expect((await bridge.tracker.get('x_once'))?.creditBegunAtMs).toBeDefined();
    expect(await bridge.poll()).toEqual([]);
    expect((await bridge.tracker.get('x_once'))?.creditBegunAtMs).toBeUndefined();
    op.halted = false;
    expect((await bridge.poll()).map((r) => r.transferId)).toEqual(['x_once']);
    await bridge.poll();
    expect([store.failed, op.credits, op.balance('USDC')]).toEqual([1, 1, '100']);
  });
});

describe('LayerZero encodings refuse what they would mis-encode', () => {
  it('toBytes32 refuses a hex that is not 20 or 32 bytes and a base58 that is not 32 bytes', () => {
    // LayerZero's addressToBytes32 left-pads any hex: a truncated address names someone else.
    expect(() => toBytes32(`0x${'11'.repeat(19)}`)).toThrow(/neither a 20-byte EVM address/);
    expect(() => toBytes32(`0x${'11'.repeat(21)}`)).toThrow(/neither a 20-byte EVM address/);
    expect(() => toBytes32('0x123')).toThrow(/neither a 20-byte EVM address/);
    // An EVM address missing its 0x, without a 0 digit, is valid base58 of 29 bytes.
    expect(() => toBytes32('ab'.repeat(20))).toThrow(/not a 32-byte base58/);
    expect(toBytes32(`0x${'11'.repeat(32)}`)).toBe(`0x${'11'.repeat(32)}`);
    const sol = Keypair.generate().publicKey;
    expect(toBytes32(sol.toBase58())).toBe(`0x${sol.toBuffer().toString('hex')}`);
  });

  it('executorOptions refuses a negative gas or native drop (packed as 2^128 − 1)', () => {
    expect(() => executorOptions(-1)).toThrow(/lzReceive gas -1/);
    expect(() => executorOptions(200_000, -1n)).toThrow(/native drop -1/);
    expect(() => executorOptions(1.5)).toThrow(/lzReceive gas 1.5/);
    // gas 200000 | value 1 wei: option size 33 (type byte + two uint128)
    expect(executorOptions(200_000n, 1n)).toBe(`0x000301002101${'0'.repeat(26)}030d40${'0'.repeat(31)}1`);
  });

  it('executorOptions refuses zero lzReceive gas (the executor reverts Executor_ZeroLzReceiveGasProvided)', () => {
    for (const gas of [0, 0n])
      expect(() => executorOptions(gas)).toThrow(
        expect.objectContaining({ code: 'LZ_BAD_OPTION', message: expect.stringMatching(/lzReceive gas 0/) }),
      );
    expect(() => executorOptions(0, 1n)).toThrow(/Executor_ZeroLzReceiveGasProvided/);
    // one gas is the least it takes: type 1 | uint128 gas 1
    expect(executorOptions(1)).toBe(`0x00030100110100000000000000000000000000000001`);
  });

  it('decodePacket refuses a truncated, malformed or non-v1 packet', () => {
    const whole = `0x01${'00'.repeat(112)}` as const;
    expect(decodePacket(whole).message).toBe('0x');
    expect(() => decodePacket(`0x01${'00'.repeat(90)}`)).toThrow(/91 bytes/);
    expect(() => decodePacket(`${whole}a` as const)).toThrow(/malformed hex/);
    expect(() => decodePacket(`0x01${'00'.repeat(111)}zz`)).toThrow(/malformed hex/);
    expect(() => decodePacket(`0x02${'00'.repeat(112)}`)).toThrow(/version 2/);
  });

  it('packetGuid refuses a nonce outside uint64 (−1 hashed as 2^64 − 1)', () => {
    const path = {
      srcEid: 30110,
      sender: `0x${'11'.repeat(20)}`,
      dstEid: 30101,
      receiver: `0x${'22'.repeat(20)}`,
    };
    expect(() => packetGuid({ ...path, nonce: -1n })).toThrow(/nonce -1/);
    expect(() => packetGuid({ ...path, nonce: 2n ** 64n })).toThrow(/nonce/);
    expect(packetGuid({ ...path, nonce: 2n ** 64n - 1n })).toMatch(/^0x[0-9a-f]{64}$/);
  });
});

describe('hedge instruction messages', () => {
  const abi = parseAbiParameters(
    'string intentId, string venue, string instrument, uint8 side, string sizeBase, string limitPriceUsd, bool reduceOnly',
  );
  it('refuses an unknown side byte instead of reading it as a sell', () => {
    const m = encodeAbiParameters(abi, ['int_x', 'drift-sol', 'SOL-USD:PERP', 2, '1', '', false]);
    expect(() => decodeHedgeInstruction(m)).toThrow(/side 2/);
    const buy = encodeAbiParameters(abi, ['int_x', 'drift-sol', 'SOL-USD:PERP', 0, '1', '150.5', true]);
    expect(decodeHedgeInstruction(buy)).toMatchObject({
      side: 'buy',
      limitPriceUsd: '150.5',
      reduceOnly: true,
    });
  });

  it('refuses a size or limit that is not a positive decimal, both ways', () => {
    for (const sizeBase of ['-5', '0', 'abc', '1e3'])
      expect(() =>
        decodeHedgeInstruction(
          encodeAbiParameters(abi, ['int_x', 'drift-sol', 'SOL-USD:PERP', 1, sizeBase, '', false]),
        ),
      ).toThrow(/not a positive decimal/);
    expect(() =>
      decodeHedgeInstruction(
        encodeAbiParameters(abi, ['int_x', 'drift-sol', 'SOL-USD:PERP', 1, '1', '-1', false]),
      ),
    ).toThrow(/limit price -1/);
    const intent = { id: 'int_y', venue: 'drift-sol', instrument: 'SOL-USD:PERP', reduceOnly: false };
    expect(() => encodeHedgeInstruction({ ...intent, side: 'sell', sizeBase: '-2' })).toThrow(/size -2/);
    expect(() => encodeHedgeInstruction({ ...intent, side: 'short' as 'sell', sizeBase: '2' })).toThrow(
      /side short/,
    );
  });
});

describe('collateral planning counts the fee the bridge takes from the source', () => {
  /** Fee by source chain: from Arbitrum 1 USD, from Solana 2 USD; latency alike. */
  const costModel = {
    estimate: (q: { srcChain: string }) => ({
      feeUsd: q.srcChain === 'evm:42161' ? 1 : 2,
      latencyMs: 60_000,
    }),
  };
  const need = {
    planId: 'p_fee',
    venue: 'op',
    chain: 'evm:10',
    asset: 'USDC',
    requiredAmount: 1000,
  } as const;

  it('a source holding the amount but not its fee is not picked: the plan can be sent', async () => {
    // 1000 short, 10% buffer: 1100 to move; arb is cheaper but holds 1100 exactly, not 1100 + 1
    const balances = [
      { venue: 'arb', chain: 'evm:42161', asset: 'USDC', amount: 1100, asOfMs: 0 },
      { venue: 'sol', chain: 'solana:mainnet-beta', asset: 'USDC', amount: 5000, asOfMs: 0 },
    ] as const;
    const plan = planCollateralTransfer({ need, balances, costModel });
    expect(plan).toMatchObject({ fromVenue: 'sol', amount: '1100', feeUsd: 2 });
    const clock = new ManualClock(0);
    const arb = exactVenue('arb', 'evm:42161', { USDC: '1100' });
    const sol = exactVenue('sol', 'solana:mainnet-beta', { USDC: '5000' });
    const op = exactVenue('op', 'evm:10', {});
    const tracker = new TransferTracker({ store: memoryTransferStore(), clock });
    const bridge = new PaperBridge({ clock, venues: [arb, sol, op], costModel, tracker });
    const p = plan as NonNullable<typeof plan>;
    const sent = await bridge.send({
      transferId: p.transferId,
      fromVenue: p.fromVenue,
      toVenue: 'op',
      asset: 'USDC',
      amount: p.amount,
    });
    expect(sent.state).toBe('sent');
  });

  it("the fee does not come out of the source's reserve; a fee paid apart (not in the asset) needs none", () => {
    const balances = [{ venue: 'arb', chain: 'evm:42161', asset: 'USDC', amount: 1150, asOfMs: 0 }] as const;
    expect(() => planCollateralTransfer({ need, balances, costModel, reserveAmount: 50 })).toThrow(
      InsufficientCollateralError,
    );
    expect(planCollateralTransfer({ need, balances, costModel, reserveAmount: 49 })).toMatchObject({
      fromVenue: 'arb',
    });
    expect(
      planCollateralTransfer({ need, balances, costModel, reserveAmount: 50, chargeFeeInAsset: false }),
    ).toMatchObject({ fromVenue: 'arb' });
    // WETH is not USD-like: the bridge takes no fee from it
    const weth = [{ venue: 'arb', chain: 'evm:42161', asset: 'WETH', amount: 1.1, asOfMs: 0 }] as const;
    expect(
      planCollateralTransfer({
        need: { ...need, asset: 'WETH', requiredAmount: 1 },
        balances: weth,
        costModel,
      }),
    ).toMatchObject({ fromVenue: 'arb', amount: '1.1' });
  });
});

describe('collateral planning refuses bad numbers', () => {
  const balances = [
    { venue: 'drift-sol', chain: 'solana:mainnet-beta', asset: 'USDC', amount: 1000, asOfMs: 0 },
    { venue: 'gmx-arb', chain: 'evm:42161', asset: 'USDC', amount: 900_000, asOfMs: 0 },
  ] as const;
  const need = { planId: 'p', venue: 'drift-sol', chain: 'solana:mainnet-beta', asset: 'USDC' } as const;
  const costModel = layerZeroCostModel();

  it('a NaN need or balance throws instead of meaning "nothing to move"', () => {
    expect(() =>
      planCollateralTransfer({ need: { ...need, requiredAmount: Number.NaN }, balances, costModel }),
    ).toThrow(/required collateral/);
    expect(() =>
      planCollateralTransfer({
        need: { ...need, requiredAmount: 5000 },
        balances: [{ ...balances[0], amount: Number.NaN }, balances[1]],
        costModel,
      }),
    ).toThrow(/free collateral/);
  });

  it('a negative buffer or reserve throws instead of moving less than the shortfall', () => {
    expect(() =>
      planCollateralTransfer({
        need: { ...need, requiredAmount: 5000 },
        balances,
        costModel,
        bufferFraction: -0.5,
      }),
    ).toThrow(/must not be negative/);
    expect(() =>
      planCollateralTransfer({
        need: { ...need, requiredAmount: 5000 },
        balances,
        costModel,
        reserveAmount: -1,
      }),
    ).toThrow(/must not be negative/);
  });
});

describe('paper bridge: OFT amounts, isolation, idempotency, nonces', () => {
  it('moves the amount truncated to the shared decimals; dust stays at the source, debit = credit', async () => {
    const clock = new ManualClock(0);
    const arb = exactVenue('arb', 'evm:42161', { WETH: '10' });
    const op = exactVenue('op', 'evm:10', {});
    const bridge = bridgeOf([arb, op], clock);
    const sent = await bridge.send({
      transferId: 'x_dust',
      fromVenue: 'arb',
      toVenue: 'op',
      asset: 'WETH',
      amount: '1.1234567891234567',
    });
    expect(sent.amount).toBe('1.123456');
    expect(arb.balance('WETH')).toBe('8.876544');
    clock.advance(sent.expectedLatencyMs);
    await bridge.poll();
    expect(op.balance('WETH')).toBe('1.123456');
    // below one shared unit (1e-6) nothing would cross: refused, nothing debited
    await expect(
      bridge.send({
        transferId: 'x_dust2',
        fromVenue: 'arb',
        toVenue: 'op',
        asset: 'WETH',
        amount: '0.0000009',
      }),
    ).rejects.toMatchObject({ code: 'BRIDGE_BAD_AMOUNT' });
    await expect(
      bridge.send({
        transferId: 'x_big',
        fromVenue: 'arb',
        toVenue: 'op',
        asset: 'WETH',
        amount: '20000000000000',
      }),
    ).rejects.toMatchObject({ code: 'BRIDGE_BAD_AMOUNT' });
    expect(arb.balance('WETH')).toBe('8.876544');
  });

  it('one destination that cannot be credited does not hold back the others, and it times out', async () => {
    const clock = new ManualClock(0);
    const arb = exactVenue('arb', 'evm:42161', { USDC: '10000' });
    const down = exactVenue('down', 'evm:10', {});
    const sol = exactVenue('sol', 'solana:mainnet-beta', {});
    const bridge = bridgeOf([arb, down, sol], clock);
    const toDown = await bridge.send({
      transferId: 'x_down',
      fromVenue: 'arb',
      toVenue: 'down',
      asset: 'USDC',
      amount: '100',
    });
    const toSol = await bridge.send({
      transferId: 'x_sol',
      fromVenue: 'arb',
      toVenue: 'sol',
      asset: 'USDC',
      amount: '200',
    });
    down.halted = true;
    clock.advance(Math.max(toDown.expectedLatencyMs, toSol.expectedLatencyMs));
    const delivered = await bridge.poll();
    expect(delivered.map((r) => r.transferId)).toEqual(['x_sol']);
    expect(sol.balance('USDC')).toBe('200');
    expect((await bridge.status('x_sol'))?.state).toBe('delivered');
    expect((await bridge.tracker.get('x_down'))?.state).toBe('verified');
    clock.advance(3 * toDown.expectedLatencyMs);
    await bridge.poll();
    expect((await bridge.tracker.get('x_down'))?.state).toBe('timed-out');
    down.halted = false;
    await bridge.poll();
    expect((await bridge.tracker.get('x_down'))?.state).toBe('delivered');
    expect(down.balance('USDC')).toBe('100');
  });

  it("leaves another executor's records in a shared tracker alone", async () => {
    const clock = new ManualClock(0);
    const tracker = new TransferTracker({ store: memoryTransferStore(), clock });
    const arb = exactVenue('arb', 'evm:42161', { USDC: '1000' });
    const sol = exactVenue('sol', 'solana:mainnet-beta', {});
    const bridge = new PaperBridge({ clock, venues: [arb, sol], costModel: layerZeroCostModel(), tracker });
    await tracker.create({
      transferId: 'x_msg',
      kind: 'oapp-message',
      srcChain: 'evm:42161',
      dstChain: 'evm:10',
      srcEid: 30110,
      dstEid: 30111,
      asset: 'USDC',
      amount: '0',
      feeUsd: 0.5,
      expectedLatencyMs: 1000,
      timeoutMs: 1_000_000,
    });
    await tracker.transition('x_msg', 'sent');
    const sent = await bridge.send({
      transferId: 'x_own',
      fromVenue: 'arb',
      toVenue: 'sol',
      asset: 'USDC',
      amount: '10',
    });
    clock.advance(sent.expectedLatencyMs);
    expect((await bridge.poll()).map((r) => r.transferId)).toEqual(['x_own']);
    expect((await tracker.get('x_msg'))?.state).toBe('sent');
  });

  it('concurrent sends of one id debit once', async () => {
    const clock = new ManualClock(0);
    const arb = exactVenue('arb', 'evm:42161', { WETH: '10' });
    const op = exactVenue('op', 'evm:10', {});
    const bridge = bridgeOf([arb, op], clock);
    const req = { transferId: 'x_twice', fromVenue: 'arb', toVenue: 'op', asset: 'WETH', amount: '1' };
    const [a, b] = await Promise.all([bridge.send(req), bridge.send(req)]);
    expect(arb.debits).toBe(1);
    expect(arb.balance('WETH')).toBe('9');
    expect(b.guid).toBe(a.guid);
  });

  it('concurrent polls credit a due message once', async () => {
    const clock = new ManualClock(0);
    const arb = exactVenue('arb', 'evm:42161', { WETH: '10' });
    const op = exactVenue('op', 'evm:10', {});
    const bridge = bridgeOf([arb, op], clock);
    const sent = await bridge.send({
      transferId: 'x_poll',
      fromVenue: 'arb',
      toVenue: 'op',
      asset: 'WETH',
      amount: '1',
    });
    clock.advance(sent.expectedLatencyMs);
    await Promise.all([bridge.poll(), bridge.poll(), bridge.status('x_poll')]);
    expect(op.credits).toBe(1);
    expect(op.balance('WETH')).toBe('1');
  });

  it('refuses a known transfer id asking for another move', async () => {
    const clock = new ManualClock(0);
    const arb = exactVenue('arb', 'evm:42161', { WETH: '10' });
    const op = exactVenue('op', 'evm:10', {});
    const bridge = bridgeOf([arb, op], clock);
    await bridge.send({ transferId: 'x_id', fromVenue: 'arb', toVenue: 'op', asset: 'WETH', amount: '1' });
    await expect(
      bridge.send({ transferId: 'x_id', fromVenue: 'arb', toVenue: 'op', asset: 'WETH', amount: '2' }),
    ).rejects.toMatchObject({ code: 'BRIDGE_ID_REUSED' });
    // the same move again (dust and all) is the same transfer
    expect(
      (
        await bridge.send({
          transferId: 'x_id',
          fromVenue: 'arb',
          toVenue: 'op',
          asset: 'WETH',
          amount: '1.0000001',
        })
      ).state,
    ).toBe('sent');
    expect(arb.balance('WETH')).toBe('9');
  });

  it('a transfer left planned (a crash before its debit) times out at its deadline, alerts, and never moves', async () => {
    const clock = new ManualClock(0);
    const arb = exactVenue('arb', 'evm:42161', { WETH: '10' });
    const op = exactVenue('op', 'evm:10', {});
    const bridge = bridgeOf([arb, op], clock);
    const seen: string[] = [];
    bridge.tracker.onChange((r, prev) => seen.push(`${prev ?? '-'}>${r.state}`));
    await bridge.tracker.create(plannedRecord('x_crash', '1'));
    clock.advance(180_000);
    expect(await bridge.tracker.checkTimeouts()).toEqual([]);
    clock.advance(1);
    const [late] = await bridge.tracker.checkTimeouts();
    expect(late).toMatchObject({ transferId: 'x_crash', state: 'timed-out' });
    expect(late?.history.at(-1)?.note).toMatch(/not sent 1 ms after its deadline/);
    expect(await bridge.tracker.summary()).toMatchObject({ planned: 0, 'timed-out': 1 });
    // never sent: it is never verified or delivered, by the bridge or by hand
    for (const to of ['sent', 'verified', 'delivered'] as const)
      await expect(bridge.tracker.transition('x_crash', to)).rejects.toBeInstanceOf(TransferTransitionError);
    expect(await bridge.poll()).toEqual([]);
    // the worker's resend of the id: refused for good, nothing debited
    const again = await bridge.send({
      transferId: 'x_crash',
      fromVenue: 'arb',
      toVenue: 'op',
      asset: 'WETH',
      amount: '1',
    });
    expect(again.state).toBe('failed');
    expect(again.error).toMatch(/timed out before it was sent/);
    clock.advance(3_600_000);
    expect(await bridge.poll()).toEqual([]);
    expect([arb.debits, op.credits, arb.balance('WETH'), op.balance('WETH')]).toEqual([0, 0, '10', '0']);
    expect(seen).toEqual(['->planned', 'planned>timed-out', 'timed-out>failed']);
  });

  it('a send finds a planned record past its deadline: timed out and failed there, not debited; one in time is sent', async () => {
    const clock = new ManualClock(0);
    const arb = exactVenue('arb', 'evm:42161', { WETH: '10' });
    const op = exactVenue('op', 'evm:10', {});
    const bridge = bridgeOf([arb, op], clock);
    await bridge.tracker.create(plannedRecord('x_stale', '1'));
    clock.advance(180_001);
    await bridge.tracker.create(plannedRecord('x_fresh', '2'));
    const req = { fromVenue: 'arb', toVenue: 'op', asset: 'WETH' };
    const stale = await bridge.send({ ...req, transferId: 'x_stale', amount: '1' });
    expect(stale.history.map((h) => h.state)).toEqual(['planned', 'timed-out', 'failed']);
    expect(arb.debits).toBe(0);
    expect((await bridge.send({ ...req, transferId: 'x_fresh', amount: '2' })).state).toBe('sent');
    expect([arb.debits, arb.balance('WETH')]).toEqual([1, '8']);
  });

  it('a bridge over a kept store resumes the pathway nonce: no GUID is issued twice', async () => {
    const clock = new ManualClock(0);
    const store = memoryTransferStore();
    const arb = exactVenue('arb', 'evm:42161', { WETH: '10' });
    const op = exactVenue('op', 'evm:10', {});
    const first = await bridgeOf([arb, op], clock, store).send({
      transferId: 'x_run1',
      fromVenue: 'arb',
      toVenue: 'op',
      asset: 'WETH',
      amount: '1',
    });
    // the process restarts: a new bridge over the same records
    const second = await bridgeOf([arb, op], clock, store).send({
      transferId: 'x_run2',
      fromVenue: 'arb',
      toVenue: 'op',
      asset: 'WETH',
      amount: '1',
    });
    expect([first.nonce, second.nonce]).toEqual(['1', '2']);
    expect(second.guid).not.toBe(first.guid);
  });
});
