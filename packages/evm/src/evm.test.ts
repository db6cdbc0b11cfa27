import * as nodeFs from 'node:fs';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ManualClock } from '@xhedge/core';
import {
  InvalidOrderError,
  NonceError,
  NotConfirmedError,
  RateLimitError,
  RevertedError,
  VenueNetworkError,
} from '@xhedge/venue';
import { type Address, custom, encodeFunctionData, erc20Abi, fallback, type Hex, http } from 'viem';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ANVIL_DEV_KEYS } from './anvil.ts';
import { ensureAllowance, reserveAndApprove, SpendCaps } from './approvals.ts';
import { createEvmContext, type EvmContext, evmContextFromVenueConfig } from './clients.ts';
import { deployContract, rpc } from './deploy.ts';
import { bumpFees, GasPolicy, l1DataFeeModel, OP_GAS_PRICE_ORACLE } from './gas.ts';
import {
  applySentTxStatus,
  type OnChainOrderRecord,
  type RecordedSendDeps,
  replaceByNonce,
  sendRecorded,
  venueErrorMapper,
} from './onchain-orders.ts';
import { redact } from './secrets.ts';
import { type CompiledContract, compileSolidity, EVM_TEST_CONTRACTS_URL } from './solc.ts';
import { JsonFileOrderStore, MemoryOrderStore, type OrderStoreFs } from './store.ts';
import { everythingIn, type LocalTestChain, startFaultyRpc, startLocalTestChain } from './testing.ts';
import { TxSender } from './tx.ts';

let chain: LocalTestChain;
let ctx: EvmContext;
let other: EvmContext;
let contracts: Record<string, CompiledContract>;
let reverter: Address;
let token: Address;

const ctxFor = (key: Hex) => chain.ctxFor(key);

beforeAll(async () => {
  chain = await startLocalTestChain('test-evm');
  ctx = ctxFor(ANVIL_DEV_KEYS[0]);
  other = ctxFor(ANVIL_DEV_KEYS[1]);
  contracts = compileSolidity({ 'TestToken.sol': EVM_TEST_CONTRACTS_URL });
  reverter = await deployContract(ctx, contracts.Reverter!);
  token = await deployContract(ctx, contracts.TestToken!, ['USD Coin', 'USDC', 6]);
  await chain.snapshot();
});
afterAll(async () => {
  await chain?.stop();
});
beforeEach(() => chain.fresh());

const abi = () => contracts.Reverter!.abi;
const call = (fn: string, args: unknown[] = []) => ({
  to: reverter,
  data: encodeFunctionData({ abi: abi(), functionName: fn, args } as never),
});
/** Runs a send with automine off and mines one block once its transaction is in the mempool. */
async function mineWhenSigned<T>(
  run: (onSigned: (i: { hash: Hex }) => void) => Promise<T>,
  beforeMine?: () => Promise<unknown>,
): Promise<T> {
  let hash: Hex | undefined;
  const p = run((i) => {
    hash = i.hash;
  });
  const miner = (async () => {
    for (let i = 0; i < 200 && !hash; i++) await new Promise((r) => setTimeout(r, 10));
    if (!hash) return;
    await waitInMempool(hash);
    await beforeMine?.();
    await rpc(ctx.publicClient, 'evm_mine');
  })();
  const [res] = await Promise.all([p, miner]);
  return res;
}
async function waitInMempool(hash: Hex) {
  for (let i = 0; i < 100; i++) {
    const tx = await ctx.publicClient.getTransaction({ hash }).catch(() => null);
    if (tx) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('tx never reached the mempool');
}

/** A 1 ETH market buy as an adapter stores it before sending (`queued`), at `atMs`. */
function queuedRecord(clientOrderId: string, atMs: number): OnChainOrderRecord {
  return {
    clientOrderId,
    instrument: 'ETH-USD:PERP',
    side: 'buy',
    sizeBase: '1',
    reduceOnly: false,
    orderType: 'market',
    status: 'queued',
    filledSizeBase: '0',
    createdAtMs: atMs,
    updatedAtMs: atMs,
  };
}

describe('TxSender on anvil', () => {
  it('sends, writes the hash ahead of broadcast and confirms', async () => {
    const sender = new TxSender({ ctx, abi: abi() });
    const signed: Hex[] = [];
    const sent = await sender.send(call('bump'), { onSigned: (i) => void signed.push(i.hash) });
    expect(signed).toEqual([sent.hash]);
    expect(sent.receipt.status).toBe('success');
    expect((await sender.status(sent.hash)).state).toBe('mined');
  });

  it('decodes a revert in simulation as not-sent with the custom error and its args', async () => {
    const sender = new TxSender({ ctx, abi: abi() });
    const err = await sender.send(call('failWithCustom', [7n])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RevertedError);
    expect((err as RevertedError).outcome).toBe('not-sent');
    expect((err as RevertedError).reason).toBe('CustomFailure(7, custom failure)');
    const err2 = await sender.send(call('failWithString')).catch((e: unknown) => e);
    expect((err2 as RevertedError).reason).toBe('plain failure');
  });

  it('decodes a mined revert (state moved between simulation and inclusion) as rejected', async () => {
    const sender = new TxSender({ ctx, abi: abi() });
    await rpc(ctx.publicClient, 'evm_setAutomine', [false]);
    // The state moves between simulation and inclusion (another transaction got in first).
    const p = mineWhenSigned(
      (onSigned) => sender.send(call('bumpIfCounterIs', [0n]), { onSigned }),
      () => rpc(ctx.publicClient, 'anvil_setStorageAt', [reverter, '0x0', `0x${'5'.padStart(64, '0')}`]),
    ).catch((e: unknown) => e);
    const err = await p;
    expect(err).toBeInstanceOf(RevertedError);
    expect((err as RevertedError).outcome).toBe('rejected');
    expect((err as RevertedError).reason).toBe('counter moved');
  });

  it('a mined revert whose replay fails for the RPC is rejected with its reason unknown, not the network failure as reason', async () => {
    const sender = new TxSender({ ctx, abi: abi() });
    await rpc(ctx.publicClient, 'evm_setAutomine', [false]);
    const mined = (await mineWhenSigned(
      (onSigned) => sender.send(call('bumpIfCounterIs', [0n]), { onSigned }),
      () => rpc(ctx.publicClient, 'anvil_setStorageAt', [reverter, '0x0', `0x${'5'.padStart(64, '0')}`]),
    ).catch((e: unknown) => e)) as RevertedError;
    expect(mined.reason).toBe('counter moved');
    const receipt = await ctx.publicClient.getTransactionReceipt({ hash: mined.details.txHash as Hex });
    expect(receipt.status).toBe('reverted');
    const faulty = await startFaultyRpc(chain.anvil.rpcUrl);
    try {
      const viaFaulty = new TxSender({
        ctx: createEvmContext({
          venue: 'test-evm',
          chain: 'evm:31337',
          rpcUrls: [faulty.url],
          privateKey: ANVIL_DEV_KEYS[0],
          pollingIntervalMs: 50,
          requestTimeoutMs: 300,
        }),
        abi: abi(),
        // a classifier that would call any reason it is given a stale oracle
        classify: () => 'stale-oracle',
      });
      // The trace and the replay fail (HTTP 500), or only the replay's transaction lookup does.
      for (const methods of [
        ['debug_traceTransaction', 'eth_call'],
        ['debug_traceTransaction', 'eth_getTransactionByHash'],
      ]) {
        faulty.fail('500', methods);
        const err = await viaFaulty.revertError(receipt, 'rev-1');
        faulty.fail(undefined);
        const what = methods.join(', ');
        // The receipt proves the revert: final, nothing happened. Its reason was not read.
        expect(err, what).toBeInstanceOf(RevertedError);
        expect(err.outcome, what).toBe('rejected');
        expect((err as RevertedError).reason, what).toBeUndefined();
        expect(err.details.reasonRead, what).toBe(false);
        expect(err.shortMessage, what).not.toMatch(/reverted: HTTP request failed/);
        expect(err.shortMessage, what).toMatch(/reason is unknown/);
        expect(err.clientOrderId, what).toBe('rev-1');
        for (const secret of faulty.secrets) expect(everythingIn(err), what).not.toContain(secret);
      }
      // With the RPC answering, the same sender reads the reason.
      expect(((await viaFaulty.revertError(receipt)) as RevertedError).code).toBe('VENUE_STALE_ORACLE');
    } finally {
      await faulty.close();
    }
  });

  it('times out as NotConfirmedError (outcome unknown), blocks a second send, then reconciles by hash', async () => {
    const sender = new TxSender({ ctx, abi: abi(), receiptTimeoutMs: 300 });
    await rpc(ctx.publicClient, 'evm_setAutomine', [false]);
    const err = await sender.send(call('bump')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotConfirmedError);
    expect((err as NotConfirmedError).outcome).toBe('unknown');
    const hash = (err as NotConfirmedError).details?.txHash as Hex;
    expect((await sender.status(hash)).state).toBe('pending');
    // One pending transaction per account: a second one is refused, not queued behind a gap.
    const second = await sender.send(call('bump')).catch((e: unknown) => e);
    expect(second).toBeInstanceOf(NonceError);
    await rpc(ctx.publicClient, 'evm_mine');
    const st = await sender.status(hash);
    expect(st.state).toBe('mined');
  });

  it('after a restart, recovers from the chain nonce and cancels a pending transaction by replacement', async () => {
    const before = new TxSender({ ctx, abi: abi(), receiptTimeoutMs: 200 });
    await rpc(ctx.publicClient, 'evm_setAutomine', [false]);
    const err = (await before.send(call('bump')).catch((e: unknown) => e)) as NotConfirmedError;
    const hash = err.details?.txHash as Hex;
    const nonce = err.details?.nonce as number;
    // "Restart": a fresh context and sender with no memory of the transaction.
    const after = new TxSender({ ctx: ctxFor(ANVIL_DEV_KEYS[0]), abi: abi(), receiptTimeoutMs: 5_000 });
    expect(await after.nonces()).toEqual({ latest: nonce, pending: nonce + 1 });
    expect(await after.send(call('bump')).catch((e: unknown) => e)).toBeInstanceOf(NonceError);
    const cancel = await mineWhenSigned((onSigned) => after.replace({ hash, nonce }, 'cancel', { onSigned }));
    expect(cancel.nonce).toBe(nonce);
    const tx = await ctx.publicClient.getTransaction({ hash: cancel.hash });
    expect(tx.to?.toLowerCase()).toBe(ctx.account.address.toLowerCase());
    expect((await after.status(hash, nonce)).state).toBe('replaced');
    const counter = await ctx.publicClient.readContract({
      address: reverter,
      abi: abi(),
      functionName: 'counter',
    });
    expect(counter).toBe(0n);
  });

  it('a dropped transaction is unknown until its nonce is consumed by a cancel', async () => {
    const sender = new TxSender({ ctx, abi: abi(), receiptTimeoutMs: 200 });
    await rpc(ctx.publicClient, 'evm_setAutomine', [false]);
    const err = (await sender.send(call('bump')).catch((e: unknown) => e)) as NotConfirmedError;
    const hash = err.details?.txHash as Hex;
    const nonce = err.details?.nonce as number;
    await rpc(ctx.publicClient, 'anvil_dropTransaction', [hash]);
    expect((await sender.status(hash, nonce)).state).toBe('unknown');
    await mineWhenSigned((onSigned) =>
      sender.replace({ hash, nonce }, 'cancel', { onSigned, timeoutMs: 5000 }),
    );
    expect((await sender.status(hash, nonce)).state).toBe('replaced');
  });

  it('prices the all-in cost with an L1 data fee (per-byte estimate on anvil, OP Stack oracle via a stand-in)', async () => {
    const sender = new TxSender({
      ctx,
      abi: abi(),
      l1FeeModel: l1DataFeeModel('fixed-per-byte', ctx.publicClient, { weiPerByte: 1000n }),
    });
    const cost = await sender.estimateCost(call('bump'), 3000);
    expect(cost.l1DataWei).toBeGreaterThan(100n * 1000n);
    expect(cost.totalWei).toBe(cost.executionWei + cost.l1DataWei);
    expect(cost.totalUsd).toBeGreaterThan(0);
    const fake = await deployContract(ctx, contracts.FakeGasPriceOracle!);
    const code = await ctx.publicClient.getCode({ address: fake });
    await rpc(ctx.publicClient, 'anvil_setCode', [OP_GAS_PRICE_ORACLE, code]);
    const op = l1DataFeeModel('op-stack', ctx.publicClient);
    const data = call('bump').data;
    expect(await op.estimateWei({ to: reverter, data, serialized: data })).toBe(
      (4n + 68n) * 16n * 1_000_000_000n,
    );
  });

  it('approves exactly or up to a cap, never unlimited', async () => {
    const sender = new TxSender({ ctx, abi: abi() });
    const spender = other.account.address;
    const allowance = () =>
      ctx.publicClient.readContract({
        address: token,
        abi: erc20Abi,
        functionName: 'allowance',
        args: [ctx.account.address, spender],
      });
    expect(
      await ensureAllowance(sender, { token, spender, amount: 500n, policy: { mode: 'exact' } }),
    ).toEqual({ approved: 500n });
    expect(await allowance()).toBe(500n);
    expect(
      await ensureAllowance(sender, { token, spender, amount: 400n, policy: { mode: 'exact' } }),
    ).toEqual({ approved: null });
    await ensureAllowance(sender, {
      token,
      spender,
      amount: 900n,
      policy: { mode: 'capped', capAmount: 10_000n },
    });
    expect(await allowance()).toBe(10_000n);
    await expect(
      ensureAllowance(sender, {
        token,
        spender,
        amount: 20_000n,
        policy: { mode: 'capped', capAmount: 10_000n },
      }),
    ).rejects.toBeInstanceOf(InvalidOrderError);
  });

  it('a capped approval never approves more than the spend cap still allows', async () => {
    const sender = new TxSender({ ctx, abi: abi() });
    const allowance = (spender: Address) =>
      ctx.publicClient.readContract({
        address: token,
        abi: erc20Abi,
        functionName: 'allowance',
        args: [ctx.account.address, spender],
      });
    // 1 000 base units a day; approvals capped at 10 000
    const caps = new SpendCaps({ venue: 'test-evm', caps: { [token.toLowerCase()]: 1_000n } });
    const policy = { mode: 'capped', capAmount: 10_000n } as const;
    const first = other.account.address;
    const second = `0x${'11'.repeat(20)}` as Address;
    // Nothing spent yet: at most the day's cap (it approved the approval cap, 10 000, before).
    await reserveAndApprove(sender, caps, {
      token,
      spender: first,
      amount: 100n,
      policy,
      clientOrderId: 'a',
    });
    expect(await allowance(first)).toBe(1_000n);
    // 800 counted (this order's 100 and another's 700): this order's 100 and the 100 left, no more.
    await caps.reserve(token, 700n, 'b');
    await reserveAndApprove(sender, caps, {
      token,
      spender: second,
      amount: 100n,
      policy,
      clientOrderId: 'c',
    });
    expect(await caps.remaining(token)).toBe(100n);
    expect(await allowance(second)).toBe(200n);
    // ensureAllowance on its own takes the bound too, and refuses an amount above it
    await expect(
      ensureAllowance(sender, { token, spender: second, amount: 300n, policy, maxApproval: 250n }),
    ).rejects.toBeInstanceOf(InvalidOrderError);
    await ensureAllowance(sender, { token, spender: second, amount: 220n, policy, maxApproval: 250n });
    expect(await allowance(second)).toBe(250n);
  });

  it('sendRecorded stores the spend before broadcast and keeps it counted unless nothing can be spent', async () => {
    const store = new MemoryOrderStore<OnChainOrderRecord>();
    const caps = new SpendCaps({
      venue: 'test-evm',
      caps: { [token.toLowerCase()]: 10_000n },
      records: store,
    });
    const errors = venueErrorMapper('test-evm', abi(), ctx);
    const clock = new ManualClock(1_000);
    const deps = (sender: TxSender): RecordedSendDeps<OnChainOrderRecord> => ({
      sender,
      store,
      clock,
      wrap: (err, cid) => errors.wrap(err, cid),
    });
    const record = (cid: string) => queuedRecord(cid, clock.nowMs());
    const sender = new TxSender({ ctx, abi: abi(), receiptTimeoutMs: 300 });
    const stored = async (cid: string) => (await store.get(cid))?.spend?.state;

    // Mined: committed (the copy stored at signing says reserved: written before broadcast).
    const ok = record('ok');
    await sendRecorded(deps(sender), ok, call('bump'), await caps.reserve(token, 100n, 'ok'));
    expect(ok.spend).toEqual({
      token: token.toLowerCase(),
      amountBase: '100',
      atMs: expect.any(Number),
      state: 'committed',
    });
    expect(await stored('ok')).toBe('reserved');

    // Reverts in simulation (never signed): released.
    const sim = record('sim');
    const simErr = await sendRecorded(
      deps(sender),
      sim,
      call('failWithString'),
      await caps.reserve(token, 200n, 'sim'),
    ).catch((e: unknown) => e);
    expect((simErr as RevertedError).outcome).toBe('not-sent');
    expect(sim.spend?.state).toBe('released');
    expect(await store.get('sim')).toBeUndefined();
    expect(await caps.spent(token)).toBe(100n);

    // Mined but reverted: nothing left the wallet, released (and stored so).
    await rpc(ctx.publicClient, 'evm_setAutomine', [false]);
    const reverted = record('reverted');
    const spendR = await caps.reserve(token, 300n, 'reverted');
    const pending = sendRecorded(deps(sender), reverted, call('bumpIfCounterIs', [1n]), spendR).catch(
      (e: unknown) => e,
    );
    // The record reaches the store at signing; then the state moves before the block is mined.
    let hash: Hex | undefined;
    for (let i = 0; i < 200 && !hash; i++) {
      hash = (await store.get('reverted'))?.txHash;
      if (!hash) await new Promise((r) => setTimeout(r, 10));
    }
    expect(await stored('reverted')).toBe('reserved');
    await waitInMempool(hash as Hex);
    await rpc(ctx.publicClient, 'anvil_setStorageAt', [reverter, '0x0', `0x${'5'.padStart(64, '0')}`]);
    await rpc(ctx.publicClient, 'evm_mine');
    const revErr = await pending;
    expect((revErr as RevertedError).outcome).toBe('rejected');
    expect(await stored('reverted')).toBe('released');
    expect(await caps.spent(token)).toBe(100n);

    // Timed out: outcome unknown, it may still be mined: counted, also after a restart.
    const lost = record('lost');
    const lostErr = await sendRecorded(
      deps(sender),
      lost,
      call('bump'),
      await caps.reserve(token, 400n, 'lost'),
    ).catch((e: unknown) => e);
    expect(lostErr).toBeInstanceOf(NotConfirmedError);
    expect((await store.get('lost'))?.status).toBe('outcome-unknown');
    expect(await stored('lost')).toBe('reserved');
    const restarted = new SpendCaps({
      venue: 'test-evm',
      caps: { [token.toLowerCase()]: 10_000n },
      records: store,
    });
    expect(await restarted.spent(token)).toBe(500n); // 'ok' (reserved on disk: the caller stores the commit) + 'lost'
    await rpc(ctx.publicClient, 'evm_mine');
    const found = (await store.get('lost')) as OnChainOrderRecord;
    await applySentTxStatus(
      { sender, errors, clock, spendCaps: restarted },
      found,
      found.txHash as Hex,
      (r) => {
        r.status = 'filled';
      },
    );
    expect(found.spend?.state).toBe('committed');
    expect(await restarted.spent(token)).toBe(500n);

    // Timed out, dropped, and its nonce taken by our recorded cancel: it can never be mined, released.
    const cancelled = record('cancelled');
    const cErr = (await sendRecorded(
      deps(sender),
      cancelled,
      call('bump'),
      await restarted.reserve(token, 250n, 'cancelled'),
    ).catch((e: unknown) => e)) as NotConfirmedError;
    expect(cErr).toBeInstanceOf(NotConfirmedError);
    expect(await restarted.spent(token)).toBe(750n);
    await rpc(ctx.publicClient, 'anvil_dropTransaction', [cancelled.txHash]);
    await rpc(ctx.publicClient, 'evm_setAutomine', [true]);
    await replaceByNonce(new TxSender({ ctx, abi: abi(), receiptTimeoutMs: 5_000 }), store, cancelled, {
      hash: cancelled.txHash as Hex,
      nonce: cancelled.nonce as number,
    });
    await applySentTxStatus(
      { sender, errors, clock, spendCaps: restarted },
      cancelled,
      cancelled.txHash as Hex,
      () => {
        throw new Error('the cancelled transaction cannot have been mined');
      },
    );
    expect(cancelled.status).toBe('cancelled');
    expect(cancelled.spend?.state).toBe('released');
    expect(await restarted.spent(token)).toBe(500n);
  });

  it('a nonce taken by a re-signed copy of the order (a speed-up the record does not know) is resolved from that copy, not failed', async () => {
    const store = new MemoryOrderStore<OnChainOrderRecord>();
    const caps = new SpendCaps({
      venue: 'test-evm',
      caps: { [token.toLowerCase()]: 10_000n },
      records: store,
    });
    const errors = venueErrorMapper('test-evm', abi(), ctx);
    const clock = new ManualClock(1_000);
    const sender = new TxSender({ ctx, abi: abi(), receiptTimeoutMs: 300 });
    const deps = { sender, store, clock, wrap: (e: unknown, cid: string) => errors.wrap(e, cid) };
    const counter = () =>
      ctx.publicClient.readContract({ address: reverter, abi: abi(), functionName: 'counter' });
    await rpc(ctx.publicClient, 'evm_setAutomine', [false]);
    /** An order sent with no block mined: timed out, outcome unknown, its spend reserved. */
    const timedOut = async (cid: string) => {
      const r = queuedRecord(cid, clock.nowMs());
      const err = await sendRecorded(deps, r, call('bump'), await caps.reserve(token, 100n, cid)).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(NotConfirmedError);
      expect(r.status).toBe('outcome-unknown');
      return r;
    };
    const filled = (x: OnChainOrderRecord) => {
      x.status = 'filled';
    };

    // Sped up outside the record (TxSender.replace writes no order record; so does a wallet's "speed
    // up"): the copy at the same nonce executes the order.
    const sped = await timedOut('sped');
    const original = sped.txHash as Hex;
    const speedUp = await mineWhenSigned((onSigned) =>
      sender.replace({ hash: original, nonce: sped.nonce as number }, 'speed-up', {
        onSigned,
        timeoutMs: 5_000,
      }),
    );
    expect(speedUp.hash).not.toBe(original);
    // blocks after it: the copy is found by searching back, not just in the latest block
    await rpc(ctx.publicClient, 'anvil_mine', ['0x25']);
    expect(await counter()).toBe(1n);
    expect((await sender.status(original, sped.nonce)).state).toBe('replaced');
    const legacy = { ...sped, spend: { ...(sped.spend as NonNullable<OnChainOrderRecord['spend']>) } };
    delete legacy.txCallDigest;
    await applySentTxStatus({ sender, errors, clock, spendCaps: caps }, sped, original, filled);
    expect(sped.status).toBe('filled');
    expect(sped.txHash).toBe(speedUp.hash);
    expect(sped.spend?.state).toBe('committed');
    // A record written before the call digest was kept: the speed-up kept the gas limit, so the taker's
    // call signed with the record's nonce and fees is the record's hash: a copy (reconcile.test.ts has the
    // cases it cannot tell).
    await applySentTxStatus({ sender, errors, clock, spendCaps: caps }, legacy, original, filled);
    expect(legacy.status).toBe('filled');
    expect(legacy.txHash).toBe(speedUp.hash);

    // Another call took the nonce (a cancel not in the record): the order's transaction never mines.
    const lost = await timedOut('lost');
    const lostHash = lost.txHash as Hex;
    const cancel = await mineWhenSigned((onSigned) =>
      sender.replace({ hash: lostHash, nonce: lost.nonce as number }, 'cancel', {
        onSigned,
        timeoutMs: 5_000,
      }),
    );
    await applySentTxStatus({ sender, errors, clock, spendCaps: caps }, lost, lostHash, () => {
      throw new Error('a cancel is not the order');
    });
    expect(lost.status).toBe('failed');
    expect(lost.error).toContain(cancel.hash);
    // it can never spend: its reservation is given back (review: kept counted for a day)
    expect(lost.spend?.state).toBe('released');
    expect(lost.txHash).toBe(lostHash);
    expect(await counter()).toBe(1n);
  });

  it('a send whose first delivery mined but lost its answer is outcome unknown, not a final nonce refusal', async () => {
    // RPC A delivers the transaction (mined at once) and loses the response; the fallback re-sends the
    // same bytes to RPC B, which answers "nonce too low".
    const url = chain.anvil.rpcUrl;
    const direct = http(url)({ retryCount: 0 });
    let delivered = 0;
    const lossy = custom(
      {
        async request({ method, params }) {
          const res = await direct.request({ method, params });
          if (method === 'eth_sendRawTransaction') {
            delivered++;
            throw new Error('socket hang up (response lost)');
          }
          return res;
        },
      },
      { retryCount: 0 },
    );
    const faulty = createEvmContext({
      venue: 'test-evm',
      chain: 'evm:31337',
      rpcUrls: [url],
      privateKey: ANVIL_DEV_KEYS[0],
      transport: fallback([lossy, http(url, { retryCount: 0 })], { rank: false, retryCount: 0 }),
      pollingIntervalMs: 50,
    });
    const store = new MemoryOrderStore<OnChainOrderRecord>();
    const caps = new SpendCaps({
      venue: 'test-evm',
      caps: { [token.toLowerCase()]: 10_000n },
      records: store,
    });
    const errors = venueErrorMapper('test-evm', abi(), faulty);
    const clock = new ManualClock(1_000);
    const sender = new TxSender({ ctx: faulty, abi: abi(), receiptTimeoutMs: 2_000 });
    const r = queuedRecord('echo', clock.nowMs());
    const err = await sendRecorded(
      { sender, store, clock, wrap: (e, cid) => errors.wrap(e, cid) },
      r,
      call('bump'),
      await caps.reserve(token, 100n, 'echo'),
    ).catch((e: unknown) => e);
    expect(delivered).toBe(1);
    // RPC B answers "nonce too low" once the first delivery is mined, or, racing anvil's automine, finds
    // it still in the pool ("transaction already imported", -32003, a plain transport-level refusal).
    // Either way the answer comes after signing, so it proves nothing about the transaction: outcome
    // unknown, never a final not-sent.
    expect([NonceError, VenueNetworkError].some((c) => err instanceof c)).toBe(true);
    expect((err as NonceError | VenueNetworkError).outcome).toBe('unknown');
    // Not final: the spend stays counted and the record is reconciled by hash, which finds it mined.
    expect((await store.get('echo'))?.status).toBe('outcome-unknown');
    expect(r.spend?.state).toBe('reserved');
    expect(await caps.spent(token)).toBe(100n);
    await applySentTxStatus({ sender, errors, clock, spendCaps: caps }, r, r.txHash as Hex, (x) => {
      x.status = 'filled';
    });
    expect(r.status).toBe('filled');
    expect(r.spend?.state).toBe('committed');
    expect(
      await ctx.publicClient.readContract({ address: reverter, abi: abi(), functionName: 'counter' }),
    ).toBe(1n);
  });
});

describe('gas policy', () => {
  const fees = (gwei: number) => ({
    baseFeePerGas: BigInt(gwei) * 1_000_000_000n,
    maxFeePerGas: BigInt(gwei * 2) * 1_000_000_000n,
    maxPriorityFeePerGas: 1n,
  });
  it('waits while fees are high unless urgent, and gives up with a retryable not-sent error', async () => {
    const clock = new ManualClock(0);
    const policy = new GasPolicy({
      maxBaseFeeGwei: 50,
      maxWaitMs: 10_000,
      pollMs: 1000,
      clock,
      sleep: async (ms) => void clock.advance(ms),
    });
    const seq = [fees(80), fees(70), fees(40)];
    let i = 0;
    const got = await policy.waitForFees(async () => seq[Math.min(i++, 2)]!, 'normal', 'v');
    expect(got.baseFeePerGas).toBe(40_000_000_000n);
    expect(clock.nowMs()).toBe(2000);
    expect((await policy.waitForFees(async () => fees(500), 'urgent', 'v')).baseFeePerGas).toBe(
      500_000_000_000n,
    );
    const err = await policy.waitForFees(async () => fees(500), 'normal', 'v').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RateLimitError);
    expect((err as RateLimitError).outcome).toBe('not-sent');
  });
  it('bumps replacement fees by at least 12.5%', () => {
    const b = bumpFees(fees(10), fees(1));
    expect(b.maxFeePerGas).toBe(22_500_000_000n);
    expect(b.maxPriorityFeePerGas).toBe(2n);
  });
});

describe('config, secrets and store', () => {
  it('builds clients from a venue config with {env} and {keyFile}, and never echoes the key', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'xhedge-evm-'));
    const keyFile = path.join(dir, 'key');
    writeFileSync(keyFile, `${ANVIL_DEV_KEYS[1]}\n`);
    const base = {
      id: 'gmx-local',
      chain: 'evm:31337' as const,
      endpoints: { rpc: ['http://127.0.0.1:1', { env: 'RPC2' }] },
    };
    const a = evmContextFromVenueConfig(
      { ...base, credentials: { privateKey: { env: 'K' } } },
      { env: { K: ANVIL_DEV_KEYS[0], RPC2: 'http://127.0.0.1:2' } },
    );
    expect(a.account.address).toBe('0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266');
    const b = evmContextFromVenueConfig(
      { ...base, credentials: { privateKey: { keyFile } } },
      { env: { RPC2: 'http://127.0.0.1:2' } },
    );
    expect(b.account.address).toBe('0x70997970C51812dc3A010C7d01b50e0d17dc79C8');
    try {
      evmContextFromVenueConfig(
        { ...base, credentials: { privateKey: { env: 'K' } } },
        { env: { K: 'not-a-key-but-secret', RPC2: 'x' } },
      );
      expect.unreachable();
    } catch (err) {
      expect(
        JSON.stringify({ m: (err as Error).message, d: (err as { details?: unknown }).details }),
      ).not.toContain('not-a-key-but-secret');
    }
    expect(
      redact('POST https://user:pw@arb.example/v2/abcdefghijklmnopqrstuvwxyz123 key 0xabc', []),
    ).not.toMatch(/pw@|abcdefghijklmnop/);
    expect(redact(`failed with privateKey ${ANVIL_DEV_KEYS[0]}`, [ANVIL_DEV_KEYS[0]])).not.toContain(
      ANVIL_DEV_KEYS[0].slice(2),
    );
  });

  it('JsonFileOrderStore survives a restart (a new instance reads what the old one wrote)', async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'xhedge-store-')), 'orders.json');
    const s1 = new JsonFileOrderStore<{ txHash: string }>(file);
    await s1.put('c1', { txHash: '0x01' });
    s1.close(); // the old process is gone: one writer per file
    const s2 = new JsonFileOrderStore<{ txHash: string }>(file);
    expect(await s2.get('c1')).toEqual({ txHash: '0x01' });
    expect(await s2.list()).toHaveLength(1);
  });

  it('JsonFileOrderStore fsyncs the temp file before the rename and the directory after it', async () => {
    // What this proves: the calls are made, on the right files, in the durable order. It cannot prove
    // that the data survives a power loss (that is the kernel's and the disk's part).
    const dir = mkdtempSync(path.join(tmpdir(), 'xhedge-store-'));
    const file = path.join(dir, 'orders.json');
    const calls: string[] = [];
    const fdPaths = new Map<number, string>();
    const label = (p: unknown): string => {
      const s = typeof p === 'number' ? (fdPaths.get(p) ?? `fd${p}`) : String(p);
      return s === dir ? 'dir' : s === file ? 'file' : s.startsWith(`${file}.`) ? 'tmp' : s;
    };
    const fs: OrderStoreFs = {
      mkdirSync: nodeFs.mkdirSync,
      readFileSync: nodeFs.readFileSync,
      openSync: ((p: nodeFs.PathLike, flags: nodeFs.OpenMode) => {
        const fd = nodeFs.openSync(p, flags);
        fdPaths.set(fd, String(p));
        calls.push(`open ${label(p)}`);
        return fd;
      }) as typeof nodeFs.openSync,
      writeFileSync: ((f: number, d: string) => {
        calls.push(`write ${label(f)}`);
        nodeFs.writeFileSync(f, d);
      }) as typeof nodeFs.writeFileSync,
      fsyncSync: (fd) => {
        calls.push(`fsync ${label(fd)}`);
        nodeFs.fsyncSync(fd);
      },
      closeSync: (fd) => {
        calls.push(`close ${label(fd)}`);
        nodeFs.closeSync(fd);
      },
      renameSync: (a, b) => {
        calls.push(`rename ${label(a)} ${label(b)}`);
        nodeFs.renameSync(a, b);
      },
    };
    const store = new JsonFileOrderStore<{ txHash: string }>(file, { fs });
    await store.put('c1', { txHash: '0x01' });
    expect(calls).toEqual([
      'open tmp',
      'write tmp',
      'fsync tmp',
      'close tmp',
      'rename tmp file',
      'open dir',
      'fsync dir',
      'close dir',
    ]);
    // The file is complete and the temp file gone (and, once closed, the store's lock).
    store.close();
    expect(JSON.parse(nodeFs.readFileSync(file, 'utf8'))).toEqual({ c1: { txHash: '0x01' } });
    expect(nodeFs.readdirSync(dir)).toEqual(['orders.json']);
  });
});
