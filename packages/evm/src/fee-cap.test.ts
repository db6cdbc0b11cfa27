import { ManualClock, XhedgeError } from '@xhedge/core';
import { NotConfirmedError, RateLimitError } from '@xhedge/venue';
import { type Address, encodeFunctionData, type Hex, parseGwei } from 'viem';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ANVIL_DEV_KEYS } from './anvil.ts';
import { SpendCaps } from './approvals.ts';
import type { EvmContext } from './clients.ts';
import { deployContract, rpc } from './deploy.ts';
import { GasPolicy, readFees } from './gas.ts';
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

// The hard fee cap (GasPolicy maxFeePerGasGwei) on a real anvil node: first sends, replacements, and what
// an order record tracks when a replacement is refused.

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

  it('a first send is signed at most at the cap, its tip at most its fee cap (tips dominating, as on anvil)', async () => {
    await setBaseFee(parseGwei('0.1'));
    const uncapped = await readFees(ctx.publicClient);
    // anvil's tip (1 gwei) is above the cap: both the fee cap and the tip must come down to it
    expect(uncapped.maxPriorityFeePerGas).toBeGreaterThan(parseGwei('0.5'));
    const signed: SignedTxInfo[] = [];
    const sent = await capped(0.5).send(bump(), { onSigned: (i) => void signed.push(i) });
    expect(sent.receipt.status).toBe('success');
    const tx = await ctx.publicClient.getTransaction({ hash: sent.hash });
    expect(tx.maxFeePerGas).toBe(parseGwei('0.5'));
    expect(tx.maxPriorityFeePerGas).toBe(parseGwei('0.5'));
    expect(signed[0]).toMatchObject({
      maxFeePerGas: parseGwei('0.5'),
      maxPriorityFeePerGas: parseGwei('0.5'),
    });
    expect(sent.receipt.effectiveGasPrice).toBeLessThanOrEqual(parseGwei('0.5'));
    // a cap above what the sender would sign with changes nothing
    const loose = await capped(1000).send(bump());
    const looseTx = await ctx.publicClient.getTransaction({ hash: loose.hash });
    expect(looseTx.maxFeePerGas).toBeLessThan(parseGwei('1000'));
    expect(looseTx.maxPriorityFeePerGas).toBe(uncapped.maxPriorityFeePerGas);
    expect(await counter()).toBe(2n);
  });

  it.each(['normal', 'urgent'] as const)(
    'a first send (%s) whose base fee is above the cap is not sent: a retryable not-sent error naming both in gwei',
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
        /needs a maxFeePerGas of 2 gwei, above the cap maxFeePerGasGwei 1\.5 gwei/,
      );
      expect(signed).toBe(false);
      expect(await sender.nonces()).toEqual(before);
      expect(await counter()).toBe(0n);
    },
  );

  it('a replacement that would need more than the cap is not sent, and the record keeps tracking the original', async () => {
    const store = new MemoryOrderStore<OnChainOrderRecord>();
    const caps = new SpendCaps({ venue: 'test-evm', caps: { [TOKEN]: 10_000n }, records: store });
    const clock = new ManualClock(1_000);
    const errors = venueErrorMapper('test-evm', abi(), ctx);
    await setBaseFee(parseGwei('0.1'));
    // the first send is signed at the cap (anvil's 1 gwei tip is above it): any replacement needs 12.5 % more
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
    expect(r).toMatchObject({ status: 'outcome-unknown', maxFeePerGas: parseGwei('0.8').toString() });
    const storedBefore = structuredClone(await store.get('capped-1'));

    // The cancel by nonce replacement (an adapter's cancelOrder of an unmined order): refused before signing.
    const cancel = await replaceByNonce(sender, store, r, { hash: original, nonce: r.nonce as number }).catch(
      (e: unknown) => e,
    );
    expect(cancel).toBeInstanceOf(RateLimitError);
    expect((cancel as RateLimitError).outcome).toBe('not-sent');
    expect((cancel as RateLimitError).message).toMatch(
      /a cancel of 0x[0-9a-f]{64} at nonce \d+ \(12\.5 % over its fee cap of 0\.8 gwei\) needs a maxFeePerGas of 0\.9 gwei, above the cap maxFeePerGasGwei 0\.8 gwei/,
    );
    // A speed-up (any process's sender with the cap): refused the same way.
    const speedUp = await sender
      .replace({ hash: original, nonce: r.nonce as number }, 'speed-up', { timeoutMs: 500 })
      .catch((e: unknown) => e);
    expect(speedUp).toBeInstanceOf(RateLimitError);
    // Nothing was signed or stored: the record names no cancel, and only the original is in the pool.
    expect(r.cancelTxHash).toBeUndefined();
    expect(await store.get('capped-1')).toEqual(storedBefore);
    expect(await sender.nonces()).toEqual({ latest: r.nonce as number, pending: (r.nonce as number) + 1 });
    expect((await sender.status(original, r.nonce)).state).toBe('pending');

    // The original mines: the record resolves from it, as if no replacement had been tried.
    await rpc(ctx.publicClient, 'evm_mine');
    await applySentTxStatus({ sender, errors, clock, spendCaps: caps }, r, original, (x) => {
      x.status = 'filled';
    });
    expect(r).toMatchObject({ status: 'filled', txHash: original });
    expect(r.spend?.state).toBe('committed');
    expect(await counter()).toBe(1n);
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
