import { ManualClock, XhedgeError } from '@xhedge/core';
import { NonceError, NotConfirmedError, RateLimitError } from '@xhedge/venue';
import { type Address, encodeFunctionData, type Hex, parseGwei } from 'viem';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ANVIL_DEV_KEYS } from './anvil.ts';
import { SpendCaps } from './approvals.ts';
import type { EvmContext } from './clients.ts';
import { deployContract, rpc } from './deploy.ts';
import { FeeCapError, GasPolicy, readFees } from './gas.ts';
import {
  applySentTxStatus,
  createVenueTxSender,
  type OnChainOrderRecord,
  replaceByNonce,
  sendRecorded,
  venueErrorMapper,
} from './onchain-orders.ts';
import { type CompiledContract, compileSolidity, EVM_TEST_CONTRACTS_URL } from './solc.ts';
import { MemoryOrderStore } from './store.ts';
import { type LocalTestChain, startLocalTestChain } from './testing.ts';
import { type SignedTxInfo, TxSender } from './tx.ts';

// The hard fee cap (GasPolicy maxFeePerGasGwei) on a real anvil node: first sends (at most 8/9 of the cap,
// so that one replacement fits under it, while the base fee allows; else up to the cap, not replaceable
// under it), replacements (up to the cap), and what an order record tracks when a replacement is refused.

let chain: LocalTestChain;
let ctx: EvmContext;
let contracts: Record<string, CompiledContract>;
let reverter: Address;
const TOKEN = `0x${'cd'.repeat(20)}` as Address;

beforeAll(async () => {
  chain = await startLocalTestChain('test-evm');
  ctx = chain.ctxFor(ANVIL_DEV_KEYS[0]);
  contracts = compileSolidity({ 'TestToken.sol': EVM_TEST_CONTRACTS_URL });
  reverter = await deployContract(ctx, contracts.Reverter!);
  await chain.snapshot();
});
afterAll(async () => {
  await chain?.stop();
});
beforeEach(() => chain.fresh());

const abi = () => contracts.Reverter!.abi;
const bump = () => ({ to: reverter, data: encodeFunctionData({ abi: abi(), functionName: 'bump' }) });
const counter = () =>
  ctx.publicClient.readContract({ address: reverter, abi: abi(), functionName: 'counter' });
const capped = (gwei: number, receiptTimeoutMs = 5_000) =>
  new TxSender({ ctx, abi: abi(), receiptTimeoutMs, gasPolicy: new GasPolicy({ maxFeePerGasGwei: gwei }) });

/** ⌊cap × 8 / 9⌋: the most a first send's maxFeePerGas may be under a cap of `gwei`. */
const firstSendCeiling = (gwei: string) => (parseGwei(gwei) * 8n) / 9n;

/** Makes the latest block's base fee `wei` (the next block's is set, then one is mined). */
async function setBaseFee(wei: bigint) {
  await rpc(ctx.publicClient, 'anvil_setNextBlockBaseFeePerGas', [`0x${wei.toString(16)}`]);
  await rpc(ctx.publicClient, 'evm_mine');
  expect((await ctx.publicClient.getBlock()).baseFeePerGas).toBe(wei);
}

async function until<T>(read: () => Promise<T | undefined> | T | undefined, what: string): Promise<T> {
  for (let i = 0; i < 300; i++) {
    const v = await read();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Mines one block once the transaction signed by `run` is in the pool, then awaits `run`. */
async function minedWhenSigned<T>(run: (onSigned: (i: SignedTxInfo) => void) => Promise<T>): Promise<T> {
  let hash: Hex | undefined;
  const sending = run((i) => {
    hash = i.hash;
  });
  const signed = await until(() => hash, 'the transaction to be signed');
  await until(
    () =>
      ctx.publicClient.getTransaction({ hash: signed }).then(
        () => true,
        () => undefined,
      ),
    'the transaction in the pool',
  );
  await rpc(ctx.publicClient, 'evm_mine');
  return sending;
}

describe('maxFeePerGasGwei: a hard cap on what any transaction pays per gas', () => {
  it('is refused unless it is a finite number of gwei > 0, naming the field', () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, 0, -1, 1e-12, '5' as unknown as number]) {
      expect(() => new GasPolicy({ maxFeePerGasGwei: bad })).toThrow(XhedgeError);
      expect(() => new GasPolicy({ maxFeePerGasGwei: bad })).toThrow(/maxFeePerGasGwei/);
    }
    expect(new GasPolicy({ maxFeePerGasGwei: 0.3 }).maxFeePerGasWei).toBe(300_000_000n);
    expect(new GasPolicy({ maxFeePerGasGwei: 250 }).maxFeePerGasWei).toBe(250_000_000_000n);
    expect(new GasPolicy().maxFeePerGasWei).toBeUndefined();
    // the adapters' sender takes it through
    const sender = createVenueTxSender({
      ctx,
      abi: abi(),
      classify: () => undefined,
      maxFeePerGasGwei: 7,
      receiptTimeoutSeconds: 1,
      clock: new ManualClock(0),
    });
    expect(sender.gasPolicy.maxFeePerGasWei).toBe(7_000_000_000n);
  });

  it('a first send is signed at most at the first-send ceiling (8/9 of the cap), its tip at most its fee cap (tips dominating, as on anvil)', async () => {
    await setBaseFee(parseGwei('0.1'));
    const uncapped = await readFees(ctx.publicClient);
    // anvil's tip (1 gwei) is above the cap: both the fee cap and the tip must come down to the ceiling
    expect(uncapped.maxPriorityFeePerGas).toBeGreaterThan(parseGwei('0.5'));
    const ceiling = firstSendCeiling('0.5');
    expect(ceiling).toBe(444_444_444n);
    const sender = capped(0.5);
    expect(sender.gasPolicy.firstSendMaxFeePerGasWei).toBe(ceiling);
    const signed: SignedTxInfo[] = [];
    const sent = await sender.send(bump(), { onSigned: (i) => void signed.push(i) });
    expect(sent.receipt.status).toBe('success');
    const tx = await ctx.publicClient.getTransaction({ hash: sent.hash });
    expect(tx.maxFeePerGas).toBe(ceiling);
    expect(tx.maxPriorityFeePerGas).toBe(ceiling);
    expect(signed[0]).toMatchObject({ maxFeePerGas: ceiling, maxPriorityFeePerGas: ceiling });
    expect(sent.receipt.effectiveGasPrice).toBeLessThanOrEqual(ceiling);
    // estimateCost prices what a send now would be signed with: the tip at most the ceiling
    const cost = await sender.estimateCost(bump(), 3000, 100_000n);
    expect(cost.executionWei).toBe(100_000n * ((await readFees(ctx.publicClient)).baseFeePerGas + ceiling));
    // a cap above what the sender would sign with changes nothing
    const loose = await capped(1000).send(bump());
    const looseTx = await ctx.publicClient.getTransaction({ hash: loose.hash });
    expect(looseTx.maxFeePerGas).toBeLessThan(parseGwei('1000'));
    expect(looseTx.maxPriorityFeePerGas).toBe(uncapped.maxPriorityFeePerGas);
    expect(await counter()).toBe(2n);
  });

  it.each(['normal', 'urgent'] as const)(
    'a first send (%s) whose base fee is above the cap is not sent: a retryable not-sent error naming the fee needed, the first-send ceiling and the cap in gwei',
    async (urgency) => {
      await setBaseFee(parseGwei('2'));
      const sender = capped(1.5);
      const before = await sender.nonces();
      let signed = false;
      const err = await sender
        .send(bump(), {
          urgency,
          clientOrderId: 'o-1',
          onSigned: () => {
            signed = true;
          },
        })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RateLimitError);
      expect((err as RateLimitError).outcome).toBe('not-sent');
      expect((err as RateLimitError).retryable).toBe(true);
      expect((err as RateLimitError).clientOrderId).toBe('o-1');
      expect((err as RateLimitError).message).toMatch(
        /needs a maxFeePerGas of 2\.25 gwei .*above the first-send ceiling 1\.333333333 gwei \(8\/9 of the cap maxFeePerGasGwei 1\.5 gwei/,
      );
      expect(signed).toBe(false);
      expect(await sender.nonces()).toEqual(before);
      expect(await counter()).toBe(0n);
    },
  );

  it("a risk-reducing first send whose next block's base fee can be above the first-send ceiling but not above the cap is sent up to the cap, stated not replaceable under it", async () => {
    // cap 9 gwei: first-send ceiling 8 gwei. A latest base fee of 7.5 gwei can be 8.4375 gwei next block:
    // above the ceiling, under the cap. A risk-reducing hedge (allowUnreplaceableUnderCap) goes, signed at
    // the cap (the sender wants 2 × 7.5 + 1).
    await setBaseFee(parseGwei('7.5'));
    const sender = capped(9);
    const signed: SignedTxInfo[] = [];
    const sent = await sender.send(bump(), {
      allowUnreplaceableUnderCap: true,
      onSigned: (i) => void signed.push(i),
    });
    expect(sent.receipt.status).toBe('success');
    const tx = await ctx.publicClient.getTransaction({ hash: sent.hash });
    expect(tx.maxFeePerGas).toBe(parseGwei('9'));
    expect(tx.maxPriorityFeePerGas).toBeLessThanOrEqual(parseGwei('9'));
    // no speed-up or cancel of it (12.5 % more: 10.125 gwei) fits under the cap, and the sender says so
    expect(signed[0]).toMatchObject({ maxFeePerGas: parseGwei('9'), replaceableUnderCap: false });
    expect(sender.gasPolicy.replaceableUnderCap(parseGwei('9'))).toBe(false);
    expect(await counter()).toBe(1n);
    // estimateCost prices what a send now would be signed with (the tip at most the cap)
    const cost = await sender.estimateCost(bump(), 3000, 100_000n);
    const fees = await readFees(ctx.publicClient);
    expect(cost.executionWei).toBe(100_000n * (fees.baseFeePerGas + fees.maxPriorityFeePerGas));

    // The boundary: a latest base fee of 8 gwei (8/9 of the cap) can be 9 gwei next block: sent at the cap.
    await setBaseFee(parseGwei('8'));
    const edge = await sender.send(bump(), { allowUnreplaceableUnderCap: true });
    expect((await ctx.publicClient.getTransaction({ hash: edge.hash })).maxFeePerGas).toBe(parseGwei('9'));
    expect(await counter()).toBe(2n);

    // 7.1 gwei can be 7.9875 gwei next block: under the ceiling, signed at the ceiling (not the cap), and
    // replaceable once under the cap
    await setBaseFee(parseGwei('7.1'));
    const low: SignedTxInfo[] = [];
    const roomy = await sender.send(bump(), { urgency: 'urgent', onSigned: (i) => void low.push(i) });
    expect((await ctx.publicClient.getTransaction({ hash: roomy.hash })).maxFeePerGas).toBe(parseGwei('8'));
    expect(low[0]).toMatchObject({ maxFeePerGas: parseGwei('8'), replaceableUnderCap: true });
    expect(await counter()).toBe(3n);
    // without a cap every transaction is replaceable
    const free: SignedTxInfo[] = [];
    await new TxSender({ ctx, abi: abi() }).send(bump(), { onSigned: (i) => void free.push(i) });
    expect(free[0]?.replaceableUnderCap).toBe(true);
  });

  it("a first send whose next block's base fee can be above the cap is not sent, saying which base fee it waits for and what cap would send it", async () => {
    // cap 9 gwei: a latest base fee of 8.5 gwei can be 9.5625 gwei next block, above the cap
    await setBaseFee(parseGwei('8.5'));
    const sender = capped(9);
    const before = await sender.nonces();
    let signed = false;
    const err = await sender
      .send(bump(), {
        urgency: 'urgent',
        clientOrderId: 'o-2',
        onSigned: () => {
          signed = true;
        },
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FeeCapError);
    expect(err).toBeInstanceOf(RateLimitError);
    expect((err as FeeCapError).code).toBe('VENUE_RATE_LIMIT');
    expect((err as FeeCapError).outcome).toBe('not-sent');
    expect((err as FeeCapError).retryable).toBe(true);
    expect((err as FeeCapError).stuckAtCap).toBe(false);
    expect((err as FeeCapError).message).toBe(
      "test-evm: a first send needs a maxFeePerGas of 9.5625 gwei (the next block's base fee can be 12.5 % above the latest's 8.5 gwei), above the first-send ceiling 8 gwei (8/9 of the cap maxFeePerGasGwei 9 gwei, which leaves room to replace it once under the cap) and above the cap itself; not sent: it goes once the latest base fee is at most 8 gwei, or now with maxFeePerGasGwei raised to at least 10.7578125 gwei (room to replace it once), or to at least 9.5625 gwei for a risk-reducing send (allowUnreplaceableUnderCap: signed up to that cap, no room for a replacement)",
    );
    expect((err as FeeCapError).details).toMatchObject({
      reason: 'fee-cap',
      neededMaxFeePerGasGwei: '9.5625',
      firstSendMaxFeePerGasGwei: '8',
      maxFeePerGasGwei: '9',
      sendsAtBaseFeeGwei: '8',
    });
    expect(signed).toBe(false);
    expect(await sender.nonces()).toEqual(before);
    expect(await counter()).toBe(0n);
    // the caps it names do what it says: 9.5625 gwei sends a risk-reducing one (at the cap, no room),
    // 10.7578125 gwei any, with room
    const at = await capped(9.5625).send(bump(), { urgency: 'urgent', allowUnreplaceableUnderCap: true });
    expect((await ctx.publicClient.getTransaction({ hash: at.hash })).maxFeePerGas).toBe(parseGwei('9.5625'));
    await setBaseFee(parseGwei('8.5'));
    const roomy: SignedTxInfo[] = [];
    await capped(10.7578125).send(bump(), { onSigned: (i) => void roomy.push(i) });
    expect(roomy[0]).toMatchObject({ replaceableUnderCap: true });
    expect(roomy[0]?.maxFeePerGas).toBeGreaterThanOrEqual(parseGwei('9.5625'));
    expect(await counter()).toBe(2n);
  });

  it('with the base fee above half the cap, a first send is signed at most at 8/9 of the cap, and a cancel of it is signed within the cap and frees the nonce', async () => {
    // cap 10 gwei, base fee 6 gwei: the sender wants 2 × 6 + 1 = 13 gwei; the first send gets 8.888888888
    await setBaseFee(parseGwei('6'));
    const sender = capped(10, 300);
    await rpc(ctx.publicClient, 'evm_setAutomine', [false]);
    const err = (await sender.send(bump()).catch((e: unknown) => e)) as NotConfirmedError;
    expect(err).toBeInstanceOf(NotConfirmedError);
    const hash = err.details?.txHash as Hex;
    const nonce = err.details?.nonce as number;
    const first = await ctx.publicClient.getTransaction({ hash });
    expect(first.maxFeePerGas).toBe(firstSendCeiling('10'));
    expect(first.maxPriorityFeePerGas).toBeLessThanOrEqual(firstSendCeiling('10'));
    expect(await sender.nonces()).toEqual({ latest: nonce, pending: nonce + 1 });
    // The next block's base fee rises past the original's fee cap, under the cap: it cannot be mined, its
    // nonce stays occupied (every later send from the wallet is refused), and it could execute later.
    // (Not mined here: anvil drops a transaction from its pool once a block's base fee is above its fee
    // cap, where a geth node keeps it.)
    await rpc(ctx.publicClient, 'anvil_setNextBlockBaseFeePerGas', [`0x${parseGwei('9.5').toString(16)}`]);
    expect((await sender.status(hash, nonce)).state).toBe('pending');
    expect(await sender.send(bump()).catch((e: unknown) => e)).toBeInstanceOf(NonceError);

    // The kill switch's cancel pass (a process that knows the order's fees from its record): the cancel
    // pays 12.5 % over the original, within the cap, takes the nonce, and the order never executes.
    const original = {
      hash,
      nonce,
      maxFeePerGas: first.maxFeePerGas as bigint,
      maxPriorityFeePerGas: first.maxPriorityFeePerGas as bigint,
    };
    const cancelled = await minedWhenSigned((onSigned) =>
      capped(10).replace(original, 'cancel', { onSigned, timeoutMs: 5_000 }),
    );
    expect(cancelled.receipt.status).toBe('success');
    const block = await ctx.publicClient.getBlock({ blockNumber: cancelled.receipt.blockNumber });
    expect(block.baseFeePerGas).toBe(parseGwei('9.5'));
    const cancel = await ctx.publicClient.getTransaction({ hash: cancelled.hash });
    expect(cancel.to?.toLowerCase()).toBe(ctx.account.address.toLowerCase());
    expect(cancel.maxFeePerGas).toBeLessThanOrEqual(parseGwei('10'));
    expect(cancel.maxFeePerGas).toBeGreaterThanOrEqual(((first.maxFeePerGas as bigint) * 1125n) / 1000n);
    expect(cancel.maxPriorityFeePerGas).toBeLessThanOrEqual(cancel.maxFeePerGas as bigint);
    expect((await sender.status(hash, nonce)).state).toBe('replaced');
    // The nonce is free: the next send from the wallet is no longer refused for it (at a 9.5 gwei base fee
    // only by the first-send ceiling), and goes through once the base fee allows.
    expect(await sender.nonces()).toEqual({ latest: nonce + 1, pending: nonce + 1 });
    expect(
      await capped(10)
        .send(bump())
        .catch((e: unknown) => e),
    ).toBeInstanceOf(RateLimitError);
    await rpc(ctx.publicClient, 'evm_setAutomine', [true]);
    await setBaseFee(parseGwei('6'));
    expect((await capped(10).send(bump())).receipt.status).toBe('success');
    expect(await counter()).toBe(1n);
  });

  it('a transaction already replaced at the cap cannot be replaced again: not sent, saying so, and the record keeps tracking what it tracked', async () => {
    const store = new MemoryOrderStore<OnChainOrderRecord>();
    const caps = new SpendCaps({ venue: 'test-evm', caps: { [TOKEN]: 10_000n }, records: store });
    const clock = new ManualClock(1_000);
    const errors = venueErrorMapper('test-evm', abi(), ctx);
    await setBaseFee(parseGwei('0.1'));
    // the first send is signed at the first-send ceiling (anvil's 1 gwei tip is above it)
    const sender = capped(0.8, 300);
    await rpc(ctx.publicClient, 'evm_setAutomine', [false]);
    const r: OnChainOrderRecord = {
      clientOrderId: 'capped-1',
      instrument: 'ETH-USD:PERP',
      side: 'buy',
      sizeBase: '1',
      reduceOnly: false,
      orderType: 'market',
      status: 'queued',
      filledSizeBase: '0',
      createdAtMs: clock.nowMs(),
      updatedAtMs: clock.nowMs(),
    };
    const deps = { sender, store, clock, wrap: (e: unknown, cid: string) => errors.wrap(e, cid) };
    const sent = await sendRecorded(deps, r, bump(), await caps.reserve(TOKEN, 100n, 'capped-1')).catch(
      (e: unknown) => e,
    );
    expect(sent).toBeInstanceOf(NotConfirmedError);
    const original = r.txHash as Hex;
    expect(r).toMatchObject({
      status: 'outcome-unknown',
      maxFeePerGas: firstSendCeiling('0.8').toString(),
    });

    // The cancel by nonce (an adapter's cancelOrder of an unmined order): 12.5 % over the original fits
    // under the cap, it is signed at the cap (not mined yet: automine is off).
    const cancel = await replaceByNonce(sender, store, r, { hash: original, nonce: r.nonce as number }).catch(
      (e: unknown) => e,
    );
    expect(cancel).toBeInstanceOf(NotConfirmedError);
    const cancelHash = r.cancelTxHash as Hex;
    expect(cancelHash).toMatch(/^0x[0-9a-f]{64}$/);
    expect((await ctx.publicClient.getTransaction({ hash: cancelHash })).maxFeePerGas).toBe(parseGwei('0.8'));
    const storedBefore = structuredClone(await store.get('capped-1'));

    // Another cancel would need 12.5 % over the cap: refused before signing, saying why, naming the nonce,
    // the transaction there, the base fee up to which it can be included, and the cap that would replace it.
    const again = await replaceByNonce(sender, store, r, { hash: original, nonce: r.nonce as number }).catch(
      (e: unknown) => e,
    );
    expect(again).toBeInstanceOf(FeeCapError);
    expect(again).toBeInstanceOf(RateLimitError);
    expect((again as FeeCapError).outcome).toBe('not-sent');
    expect((again as FeeCapError).stuckAtCap).toBe(true);
    // (it names the transaction it would have to outbid: the cancel, not the order's transaction)
    expect((again as FeeCapError).message).toBe(
      `test-evm: a cancel of ${original} at nonce ${r.nonce} (12.5 % over the fee cap of ${cancelHash}, the highest sent at that nonce that the node has: 0.8 gwei) needs a maxFeePerGas of 0.9 gwei, above the cap maxFeePerGasGwei 0.8 gwei; not sent: the transaction at that nonce (${cancelHash}) already has a fee cap of 0.8 gwei, above 8/9 of the cap (replaced at or near the cap, sent when the base fee left no room for a replacement, or signed without this cap), so it cannot be replaced again under the cap (a node takes a speed-up or cancel only at higher fees; 12.5 % is paid); it can be included while the base fee is at most 0.8 gwei (the latest is 0.1 gwei), and is reconciled by hash; to replace it, raise maxFeePerGasGwei to at least 0.9 gwei`,
    );
    expect((again as FeeCapError).details).toMatchObject({
      reason: 'fee-cap',
      stuckAtCap: true,
      nonce: r.nonce,
      replacesTxHash: cancelHash,
      replacesMaxFeePerGasGwei: '0.8',
      maxFeePerGasGwei: '0.8',
      neededMaxFeePerGasGwei: '0.9',
      clientOrderId: 'capped-1',
    });
    // A speed-up (any process's sender with the cap): refused the same way.
    const speedUp = await sender
      .replace({ hash: original, nonce: r.nonce as number }, 'speed-up', { timeoutMs: 500 })
      .catch((e: unknown) => e);
    expect(speedUp).toBeInstanceOf(FeeCapError);
    expect((speedUp as FeeCapError).stuckAtCap).toBe(true);
    expect((speedUp as FeeCapError).message).toMatch(/cannot be replaced again under the cap/);
    // Nothing was signed or stored: the record still names the first cancel, the only one in the pool.
    expect(r.cancelTxHash).toBe(cancelHash);
    expect(await store.get('capped-1')).toEqual(storedBefore);
    expect(await sender.nonces()).toEqual({ latest: r.nonce as number, pending: (r.nonce as number) + 1 });
    expect((await sender.status(cancelHash, r.nonce)).state).toBe('pending');

    // The cancel mines: the record resolves from it.
    await rpc(ctx.publicClient, 'evm_mine');
    await applySentTxStatus({ sender, errors, clock, spendCaps: caps }, r, original, (x) => {
      x.status = 'filled';
    });
    expect(r).toMatchObject({ status: 'cancelled', txHash: original, cancelTxHash: cancelHash });
    expect(r.spend?.state).toBe('released');
    expect(await counter()).toBe(0n);
  });

  it('a first send signed up to the cap cannot be cancelled under it while the node holds it, saying what cap would; the cap it names cancels it', async () => {
    // cap 9 gwei, base fee 7.5 gwei: sent at the cap (no room for a replacement), not mined
    await setBaseFee(parseGwei('7.5'));
    await rpc(ctx.publicClient, 'evm_setAutomine', [false]);
    const err = (await capped(9, 300)
      .send(bump(), { allowUnreplaceableUnderCap: true })
      .catch((e: unknown) => e)) as NotConfirmedError;
    expect(err).toBeInstanceOf(NotConfirmedError);
    const hash = err.details?.txHash as Hex;
    const nonce = err.details?.nonce as number;
    const first = await ctx.publicClient.getTransaction({ hash });
    expect(first.maxFeePerGas).toBe(parseGwei('9'));
    const original = {
      hash,
      nonce,
      maxFeePerGas: first.maxFeePerGas as bigint,
      maxPriorityFeePerGas: first.maxPriorityFeePerGas as bigint,
    };
    // the kill switch's cancel under the same cap (a new process: it knows the fees from the record)
    let signed = false;
    const refused = await capped(9)
      .replace(original, 'cancel', {
        clientOrderId: 'o-3',
        onSigned: () => {
          signed = true;
        },
      })
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(FeeCapError);
    expect((refused as FeeCapError).stuckAtCap).toBe(true);
    expect((refused as FeeCapError).message).toBe(
      `test-evm: a cancel of ${hash} at nonce ${nonce} (12.5 % over its fee cap of 9 gwei) needs a maxFeePerGas of 10.125 gwei, above the cap maxFeePerGasGwei 9 gwei; not sent: the transaction at that nonce (${hash}) already has a fee cap of 9 gwei, above 8/9 of the cap (replaced at or near the cap, sent when the base fee left no room for a replacement, or signed without this cap), so it cannot be replaced again under the cap (a node takes a speed-up or cancel only at higher fees; 12.5 % is paid); it can be included while the base fee is at most 9 gwei (the latest is 7.5 gwei), and is reconciled by hash; to replace it, raise maxFeePerGasGwei to at least 10.125 gwei`,
    );
    expect((refused as FeeCapError).details).toMatchObject({ nonce, replacesTxHash: hash, stuckAtCap: true });
    expect(signed).toBe(false);
    expect((await capped(9).status(hash, nonce)).state).toBe('pending');
    // the cap it names: the cancel goes, within it, and takes the nonce
    const cancelled = await minedWhenSigned((onSigned) =>
      capped(10.125).replace(original, 'cancel', { onSigned, timeoutMs: 5_000 }),
    );
    expect(cancelled.receipt.status).toBe('success');
    expect((await ctx.publicClient.getTransaction({ hash: cancelled.hash })).maxFeePerGas).toBe(
      parseGwei('10.125'),
    );
    expect((await capped(9).status(hash, nonce)).state).toBe('replaced');
    expect(await counter()).toBe(0n);
  });

  it("an order's first send at the cap that the node dropped (a block's base fee passed its fee cap) is cancelled under the cap, not refused as if it still held the nonce", async () => {
    const store = new MemoryOrderStore<OnChainOrderRecord>();
    const caps = new SpendCaps({ venue: 'test-evm', caps: { [TOKEN]: 10_000n }, records: store });
    const clock = new ManualClock(1_000);
    const errors = venueErrorMapper('test-evm', abi(), ctx);
    await setBaseFee(parseGwei('7.5'));
    const sender = capped(9, 300);
    await rpc(ctx.publicClient, 'evm_setAutomine', [false]);
    const r: OnChainOrderRecord = {
      clientOrderId: 'capped-2',
      instrument: 'ETH-USD:PERP',
      side: 'buy',
      sizeBase: '1',
      reduceOnly: false,
      orderType: 'market',
      status: 'queued',
      filledSizeBase: '0',
      createdAtMs: clock.nowMs(),
      updatedAtMs: clock.nowMs(),
    };
    const deps = { sender, store, clock, wrap: (e: unknown, cid: string) => errors.wrap(e, cid) };
    const sent = await sendRecorded(deps, r, bump(), await caps.reserve(TOKEN, 100n, 'capped-2'), {
      allowUnreplaceableUnderCap: true,
    }).catch((e: unknown) => e);
    expect(sent).toBeInstanceOf(NotConfirmedError);
    const original = r.txHash as Hex;
    const nonce = r.nonce as number;
    expect(r.maxFeePerGas).toBe(parseGwei('9').toString());
    // While the node holds it, no cancel fits under the cap.
    const held = await replaceByNonce(sender, store, r, { hash: original, nonce }).catch((e: unknown) => e);
    expect(held).toBeInstanceOf(FeeCapError);
    expect((held as FeeCapError).stuckAtCap).toBe(true);
    expect(r.cancelTxHash).toBeUndefined();
    // A block's base fee passes its fee cap: anvil drops it from its pool (the nonce is free again, but
    // its signed bytes can be broadcast again by anyone once the base fee falls).
    await setBaseFee(parseGwei('10'));
    await setBaseFee(parseGwei('7.5'));
    expect(await sender.nonces()).toEqual({ latest: nonce, pending: nonce });
    expect((await sender.status(original, nonce)).state).toBe('unknown');
    // The cancel asks the node for the order's transaction before refusing for it: not there, not
    // outbid; the cancel is signed under the cap, takes the nonce, and the order is cancelled.
    await rpc(ctx.publicClient, 'evm_setAutomine', [true]);
    await replaceByNonce(sender, store, r, { hash: original, nonce });
    const cancelHash = r.cancelTxHash as Hex;
    const cancel = await ctx.publicClient.getTransaction({ hash: cancelHash });
    expect(cancel.nonce).toBe(nonce);
    expect(cancel.maxFeePerGas).toBeLessThanOrEqual(parseGwei('9'));
    await applySentTxStatus({ sender, errors, clock, spendCaps: caps }, r, original, (x) => {
      x.status = 'filled';
    });
    expect(r).toMatchObject({ status: 'cancelled', txHash: original, cancelTxHash: cancelHash });
    expect(r.spend?.state).toBe('released');
    expect(await counter()).toBe(0n);
  });

  it('a replacement after the base fee rose is signed at the cap when the cap still covers it, and refused when it does not', async () => {
    await setBaseFee(parseGwei('0.1'));
    await rpc(ctx.publicClient, 'evm_setAutomine', [false]);
    // sent without a cap, not mined
    const uncapped = new TxSender({ ctx, abi: abi(), receiptTimeoutMs: 300 });
    const err = (await uncapped.send(bump()).catch((e: unknown) => e)) as NotConfirmedError;
    expect(err).toBeInstanceOf(NotConfirmedError);
    const hash = err.details?.txHash as Hex;
    const nonce = err.details?.nonce as number;
    const first = await ctx.publicClient.getTransaction({ hash });
    expect(first.maxFeePerGas).toBeLessThan(parseGwei('2'));
    // The base fee jumps past the original's fee cap: a block is mined without it (anvil drops it from
    // its pool; a replacement takes the nonce either way).
    await setBaseFee(parseGwei('10'));
    expect(['pending', 'unknown']).toContain((await uncapped.status(hash, nonce)).state);
    // as an adapter replaces from its record: the original's fees are known (a new process signed nothing)
    const original = {
      hash,
      nonce,
      request: bump(),
      maxFeePerGas: first.maxFeePerGas as bigint,
      maxPriorityFeePerGas: first.maxPriorityFeePerGas as bigint,
    };

    // A cap below the base fee: no replacement can be included, none is sent.
    const below = await capped(8)
      .replace(original, 'speed-up')
      .catch((e: unknown) => e);
    expect(below).toBeInstanceOf(RateLimitError);
    expect((below as RateLimitError).message).toMatch(
      /needs a maxFeePerGas of 10 gwei, above the cap maxFeePerGasGwei 8 gwei/,
    );

    // A cap above the base fee and the 12.5 % bump but below what the sender would pay (2 × 10 gwei + tip):
    // the speed-up is signed at the cap, and mines.
    const sped = await minedWhenSigned((onSigned) => capped(15).replace(original, 'speed-up', { onSigned }));
    expect(sped.receipt.status).toBe('success');
    const tx = await ctx.publicClient.getTransaction({ hash: sped.hash });
    expect(tx.maxFeePerGas).toBe(parseGwei('15'));
    expect(tx.maxPriorityFeePerGas).toBeLessThanOrEqual(parseGwei('15'));
    expect(tx.maxPriorityFeePerGas).toBeGreaterThanOrEqual(
      ((first.maxPriorityFeePerGas ?? 0n) * 1125n) / 1000n,
    );
    expect(await counter()).toBe(1n);
  });
});
