import { Keypair } from '@solana/web3.js';
import { Dec, ManualClock } from '@xhedge/core';
import { encodeAbiParameters, parseAbiParameters } from 'viem';
import { describe, expect, it } from 'vitest';
import { layerZeroCostModel } from './cost.ts';
import { decodePacket, executorOptions, packetGuid, toBytes32 } from './lz.ts';
import { type BridgeEndpoint, PaperBridge } from './paper-bridge.ts';
import { decodeHedgeInstruction, encodeHedgeInstruction, planCollateralTransfer } from './plan.ts';
import {
  memoryTransferStore,
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
