import { Keypair } from '@solana/web3.js';
import { ManualClock } from '@xhedge/core';
import { describe, expect, it } from 'vitest';
import { layerZeroCostModel, routingBridgeCost } from './cost.ts';
import { decodePacket, executorOptions, lzEid, packetGuid, toBytes32 } from './lz.ts';
import { type BridgeEndpoint, createPaperBridgeForVenues, PaperBridge } from './paper-bridge.ts';
import {
  decodeHedgeInstruction,
  encodeHedgeInstruction,
  InsufficientCollateralError,
  planCollateralTransfer,
} from './plan.ts';
import { memoryTransferStore, TransferTracker, TransferTransitionError } from './tracker.ts';

function paperVenue(id: string, chain: 'evm:42161' | 'solana:mainnet-beta', usdc: number) {
  const balances = new Map<string, number>([['USDC', usdc]]);
  const v: BridgeEndpoint & { balance(a: string): number } = {
    id,
    chain,
    balance: (a) => balances.get(a) ?? 0,
    async debitBalance(asset, amount) {
      const next = (balances.get(asset) ?? 0) - Number(amount);
      if (next < 0) throw new Error(`cannot debit ${amount}`);
      balances.set(asset, next);
    },
    async creditBalance(asset, amount) {
      balances.set(asset, (balances.get(asset) ?? 0) + Number(amount));
    },
  };
  return v;
}

describe('LayerZero helpers', () => {
  it('encodes addresses as bytes32 for EVM and Solana', () => {
    expect(toBytes32('0x00000000000000000000000000000000000000aB')).toBe(`0x${'0'.repeat(62)}ab`);
    const sol = Keypair.generate().publicKey;
    expect(toBytes32(sol.toBase58())).toBe(`0x${sol.toBuffer().toString('hex')}`);
  });

  it('builds type-3 executor options with the lzReceive gas', () => {
    // 0x0003 | worker 1 (executor) | size 17 | type 1 (lzReceive) | uint128 gas 200000 = 0x030d40
    expect(executorOptions(200_000)).toBe('0x00030100110100000000000000000000000000030d40');
  });

  it('maps chains to endpoint ids and computes packet GUIDs', () => {
    expect(lzEid('evm:42161')).toBe(30110);
    expect(lzEid('solana:mainnet-beta')).toBe(30168);
    expect(() => lzEid('evm:31337')).toThrow(/no LayerZero endpoint id/);
    expect(lzEid('evm:31337', { 'evm:31337': 40001 })).toBe(40001);
    const g1 = packetGuid({
      nonce: 1n,
      srcEid: 30110,
      sender: '0x1111111111111111111111111111111111111111',
      dstEid: 30168,
      receiver: Keypair.generate().publicKey.toBase58(),
    });
    expect(g1).toMatch(/^0x[0-9a-f]{64}$/);
    expect(
      packetGuid({
        nonce: 2n,
        srcEid: 30110,
        sender: '0x1111111111111111111111111111111111111111',
        dstEid: 30101,
        receiver: '0x2222222222222222222222222222222222222222',
      }),
    ).not.toBe(g1);
  });

  it('decodes a packet with the codec (header fields, guid, message)', () => {
    const sender = `0x${'0'.repeat(24)}${'11'.repeat(20)}`;
    const receiver = `0x${'0'.repeat(24)}${'22'.repeat(20)}`;
    const guid = packetGuid({
      nonce: 7n,
      srcEid: 30110,
      sender: `0x${'11'.repeat(20)}`,
      dstEid: 30101,
      receiver: `0x${'22'.repeat(20)}`,
    });
    const hex =
      `0x01${(7).toString(16).padStart(16, '0')}${(30110).toString(16).padStart(8, '0')}${sender.slice(2)}${(30101).toString(16).padStart(8, '0')}${receiver.slice(2)}${guid.slice(2)}cafe` as const;
    const p = decodePacket(hex);
    expect(p).toMatchObject({ nonce: 7n, srcEid: 30110, dstEid: 30101, guid, message: '0xcafe' });
    expect(p.sender.toLowerCase()).toBe(sender);
  });

  it('round-trips the OApp hedge instruction', () => {
    const m = encodeHedgeInstruction({
      id: 'int_abc',
      venue: 'drift-sol',
      instrument: 'SOL-USD:PERP',
      side: 'sell',
      sizeBase: '12.5',
      reduceOnly: false,
    });
    expect(decodeHedgeInstruction(m)).toEqual({
      id: 'int_abc',
      venue: 'drift-sol',
      instrument: 'SOL-USD:PERP',
      side: 'sell',
      sizeBase: '12.5',
      reduceOnly: false,
    });
  });
});

describe('routing cost and planning', () => {
  it("gives routing its bridge function: the model's fee and latency, null for an unknown chain", () => {
    const model = layerZeroCostModel();
    const bridge = routingBridgeCost(model);
    const direct = model.estimate({
      srcChain: 'evm:42161',
      dstChain: 'solana:mainnet-beta',
      asset: 'USDC',
      amount: 2000,
    });
    expect(bridge('evm:42161', 'solana:mainnet-beta', 2000)).toEqual(direct);
    expect(direct.feeUsd).toBeGreaterThan(0.6);
    expect(bridge('evm:42161', 'evm:42161', 2000)).toEqual({ feeUsd: 0, latencyMs: 0 });
    expect(bridge('evm:42161', 'cosmos:dydx', 2000)).toBeNull();
    expect(() => bridge('evm:42161', 'evm:1', Number.NaN)).toThrow(/bridge amount/);
  });

  it('asks the model about the asset routing names, its default asset when none is given', () => {
    const asked: string[] = [];
    const bridge = routingBridgeCost(
      {
        estimate(q) {
          asked.push(q.asset);
          return { feeUsd: q.asset === 'USDT' ? 2 : 1, latencyMs: 1000 };
        },
      },
      'USDC',
    );
    expect(bridge('evm:42161', 'evm:1', 100, 'USDT')?.feeUsd).toBe(2);
    expect(bridge('evm:42161', 'evm:1', 100)?.feeUsd).toBe(1);
    expect(asked).toEqual(['USDT', 'USDC']);
  });

  it('prices a bridge by chain pair: fee in USD and latency in ms', () => {
    const m = layerZeroCostModel();
    const a = m.estimate({
      srcChain: 'evm:42161',
      dstChain: 'solana:mainnet-beta',
      asset: 'USDC',
      amount: 1000,
    });
    const b = m.estimate({ srcChain: 'evm:1', dstChain: 'solana:mainnet-beta', asset: 'USDC', amount: 1000 });
    expect(a.feeUsd).toBeGreaterThan(0.6);
    expect(b.feeUsd).toBeGreaterThan(a.feeUsd); // L1 gas
    expect(b.latencyMs).toBeGreaterThan(a.latencyMs); // 12 s blocks × 15 confirmations
    expect(m.estimate({ srcChain: 'evm:42161', dstChain: 'evm:42161', asset: 'USDC', amount: 5 })).toEqual({
      feeUsd: 0,
      latencyMs: 0,
    });
    expect(() =>
      m.estimate({ srcChain: 'evm:1', dstChain: 'evm:10', asset: 'USDC', amount: Number.NaN }),
    ).toThrow();
  });

  it('plans an OFT send from the cheapest venue with enough free collateral', () => {
    const asOfMs = 0;
    const balances = [
      { venue: 'drift-sol', chain: 'solana:mainnet-beta', asset: 'USDC', amount: 1000, asOfMs },
      { venue: 'uni-eth', chain: 'evm:1', asset: 'USDC', amount: 900_000, asOfMs },
      { venue: 'gmx-arb', chain: 'evm:42161', asset: 'USDC', amount: 900_000, available: 800_000, asOfMs },
    ] as const;
    const plan = planCollateralTransfer({
      need: {
        planId: 'plan_1',
        venue: 'drift-sol',
        chain: 'solana:mainnet-beta',
        asset: 'USDC',
        requiredAmount: 51_000,
      },
      balances,
      costModel: layerZeroCostModel(),
    });
    expect(plan).toMatchObject({
      fromVenue: 'gmx-arb',
      toVenue: 'drift-sol',
      amount: '55000',
      srcChain: 'evm:42161',
      kind: 'oft-send',
    });
    expect(plan?.transferId).toMatch(/^xfer_[0-9a-f]{24}$/);
    expect(
      planCollateralTransfer({
        need: {
          planId: 'p',
          venue: 'drift-sol',
          chain: 'solana:mainnet-beta',
          asset: 'USDC',
          requiredAmount: 999,
        },
        balances,
        costModel: layerZeroCostModel(),
      }),
    ).toBeNull();
    expect(() =>
      planCollateralTransfer({
        need: {
          planId: 'p',
          venue: 'drift-sol',
          chain: 'solana:mainnet-beta',
          asset: 'USDC',
          requiredAmount: 5e6,
        },
        balances,
        costModel: layerZeroCostModel(),
      }),
    ).toThrow(InsufficientCollateralError);
  });
});

describe('tracker and paper bridge', () => {
  it('moves collateral: debit on send, verified, then credited on delivery after the modelled latency', async () => {
    const clock = new ManualClock(1_000_000);
    const arb = paperVenue('gmx-arb', 'evm:42161', 100_000);
    const sol = paperVenue('drift-sol', 'solana:mainnet-beta', 0);
    const tracker = new TransferTracker({ store: memoryTransferStore(), clock });
    const seen: string[] = [];
    tracker.onChange((r) => seen.push(r.state));
    const bridge = new PaperBridge({
      clock,
      venues: [arb, sol],
      costModel: layerZeroCostModel({ messagingFeeUsd: 1, overheadMs: 10_000 }),
      tracker,
    });
    const sent = await bridge.send({
      transferId: 'xfer_test_1',
      fromVenue: 'gmx-arb',
      toVenue: 'drift-sol',
      asset: 'USDC',
      amount: '25000',
    });
    expect(sent.state).toBe('sent');
    expect(sent.guid).toMatch(/^0x[0-9a-f]{64}$/);
    const fee = sent.feeUsd;
    expect(arb.balance('USDC')).toBeCloseTo(75_000 - fee, 9);
    // Idempotent: the same transfer id does not debit again.
    await bridge.send({
      transferId: 'xfer_test_1',
      fromVenue: 'gmx-arb',
      toVenue: 'drift-sol',
      asset: 'USDC',
      amount: '25000',
    });
    expect(arb.balance('USDC')).toBeCloseTo(75_000 - fee, 9);
    clock.advance(sent.expectedLatencyMs * 0.7);
    expect((await bridge.status('xfer_test_1'))?.state).toBe('verified');
    expect(sol.balance('USDC')).toBe(0);
    clock.advance(sent.expectedLatencyMs * 0.3);
    expect((await bridge.status('xfer_test_1'))?.state).toBe('delivered');
    expect(sol.balance('USDC')).toBe(25_000);
    expect(seen).toEqual(['planned', 'sent', 'verified', 'delivered']);
    expect(await tracker.summary()).toMatchObject({ delivered: 1, sent: 0 });
  });

  it('marks overdue messages timed-out for operators, and records a late delivery', async () => {
    const clock = new ManualClock(0);
    const tracker = new TransferTracker({ store: memoryTransferStore(), clock });
    await tracker.create({
      transferId: 'xfer_late_1',
      kind: 'oapp-message',
      srcChain: 'evm:42161',
      dstChain: 'evm:10',
      srcEid: 30110,
      dstEid: 30111,
      asset: 'USDC',
      amount: '1',
      feeUsd: 0.5,
      expectedLatencyMs: 1000,
      timeoutMs: 5000,
    });
    await tracker.transition('xfer_late_1', 'sent');
    await expect(tracker.transition('xfer_late_1', 'planned')).rejects.toBeInstanceOf(
      TransferTransitionError,
    );
    clock.advance(4000);
    expect(await tracker.checkTimeouts()).toHaveLength(0);
    clock.advance(2000);
    const [late] = await tracker.checkTimeouts();
    expect(late?.state).toBe('timed-out');
    expect(late?.history.at(-1)?.note).toMatch(/not delivered 1000 ms after its deadline/);
    const d = await tracker.transition('xfer_late_1', 'delivered');
    expect(d.history.map((h) => h.state)).toEqual(['planned', 'sent', 'timed-out', 'delivered']);
  });

  it('fails the transfer when the source cannot be debited', async () => {
    const clock = new ManualClock(0);
    const tracker = new TransferTracker({ store: memoryTransferStore(), clock });
    const bridge = new PaperBridge({
      clock,
      venues: [paperVenue('gmx-arb', 'evm:42161', 10), paperVenue('drift-sol', 'solana:mainnet-beta', 0)],
      costModel: layerZeroCostModel(),
      tracker,
    });
    await expect(
      bridge.send({
        transferId: 'xfer_poor_1',
        fromVenue: 'gmx-arb',
        toVenue: 'drift-sol',
        asset: 'USDC',
        amount: '500',
      }),
    ).rejects.toMatchObject({ code: 'BRIDGE_DEBIT_FAILED' });
    expect((await tracker.get('xfer_poor_1'))?.state).toBe('failed');
  });

  it('createPaperBridgeForVenues: every venue an endpoint, LayerZero-like fees, a tracker of its own', async () => {
    const clock = new ManualClock(5_000);
    const arb = paperVenue('gmx-arb', 'evm:42161', 1_000);
    const sol = paperVenue('drift-sol', 'solana:mainnet-beta', 0);
    const bridge = createPaperBridgeForVenues([arb, sol], clock);
    const sent = await bridge.send({
      transferId: 'xfer_factory_1',
      fromVenue: 'gmx-arb',
      toVenue: 'drift-sol',
      asset: 'USDC',
      amount: '400',
    });
    const expected = layerZeroCostModel().estimate({
      srcChain: 'evm:42161',
      dstChain: 'solana:mainnet-beta',
      asset: 'USDC',
      amount: 400,
    });
    expect(sent).toMatchObject({ state: 'sent', srcEid: 30110, dstEid: 30168, feeUsd: expected.feeUsd });
    expect(arb.balance('USDC')).toBeCloseTo(600 - expected.feeUsd, 9);
    expect(await bridge.poll()).toEqual([]);
    clock.advance(expected.latencyMs);
    const [delivered] = await bridge.poll();
    expect(delivered?.transferId).toBe('xfer_factory_1');
    expect(sol.balance('USDC')).toBe(400);
    expect(await bridge.tracker.summary()).toMatchObject({ delivered: 1 });
  });

  it('addVenue connects a venue added while running; a duplicate or a chain without an endpoint id is refused', async () => {
    const clock = new ManualClock(5_000);
    const arb = paperVenue('gmx-arb', 'evm:42161', 1_000);
    const bridge = createPaperBridgeForVenues([arb], clock);
    const late = paperVenue('drift-late', 'solana:mainnet-beta', 0);
    await expect(
      bridge.send({
        transferId: 'x_late_0',
        fromVenue: 'gmx-arb',
        toVenue: 'drift-late',
        asset: 'USDC',
        amount: '10',
      }),
    ).rejects.toMatchObject({ code: 'BRIDGE_UNKNOWN_VENUE' });
    bridge.addVenue(late);
    expect(bridge.venueIds).toEqual(['gmx-arb', 'drift-late']);
    const sent = await bridge.send({
      transferId: 'x_late_1',
      fromVenue: 'gmx-arb',
      toVenue: 'drift-late',
      asset: 'USDC',
      amount: '100',
    });
    clock.advance(sent.expectedLatencyMs);
    await bridge.poll();
    expect(late.balance('USDC')).toBe(100);
    expect(() => bridge.addVenue(late)).toThrow(/connects venue drift-late already/);
    expect(() => bridge.addVenue({ ...late, id: 'nowhere', chain: 'evm:999999' as 'evm:42161' })).toThrow(
      /evm:999999/,
    );
    expect(bridge.venueIds).toEqual(['gmx-arb', 'drift-late']);
  });
});
