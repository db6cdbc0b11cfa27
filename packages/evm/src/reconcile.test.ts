import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ManualClock } from '@xhedge/core';
import { NotConfirmedError, VenueError } from '@xhedge/venue';
import { type Address, custom, encodeFunctionData, type Hex, http, type TransactionReceipt } from 'viem';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ANVIL_DEV_KEYS, type AnvilInstance, startAnvil } from './anvil.ts';
import { type RecordedSpend, SpendCaps } from './approvals.ts';
import { createEvmContext, type EvmContext } from './clients.ts';
import { deployContract, rpc } from './deploy.ts';
import { HistoricalStateUnavailableError, isHistoricalStateUnavailable } from './errors.ts';
import { GasPolicy, txCost } from './gas.ts';
import {
  applySentTxStatus,
  nextNonceScanAtMs,
  type OnChainOrderRecord,
  replaceByNonce,
  sendRecorded,
  venueErrorMapper,
} from './onchain-orders.ts';
import { type CompiledContract, compileSolidity, EVM_TEST_CONTRACTS_URL } from './solc.ts';
import { JsonFileOrderStore, MemoryOrderStore } from './store.ts';
import { everythingIn, type LocalTestChain, startFaultyRpc, startLocalTestChain } from './testing.ts';
import { type SignedTxInfo, TxSender } from './tx.ts';

let contracts: Record<string, CompiledContract>;
const abi = () => contracts.Reverter!.abi;
const bump = (reverter: Address) => ({
  to: reverter,
  data: encodeFunctionData({ abi: abi(), functionName: 'bump' }),
});

const contextOn = (rpcUrl: string, key: Hex) =>
  createEvmContext({
    venue: 'test-evm',
    chain: 'evm:31337',
    rpcUrls: [rpcUrl],
    privateKey: key,
    pollingIntervalMs: 50,
  });

async function until<T>(read: () => Promise<T | undefined> | T | undefined, what: string): Promise<T> {
  for (let i = 0; i < 300; i++) {
    const v = await read();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Runs a send (automine off) and mines one block once its transaction is in the node's pool. */
function minedWhenSigned<T>(ctx: EvmContext, run: (onSigned: (i: SignedTxInfo) => void) => Promise<T>) {
  let hash: Hex | undefined;
  const sending = run((i) => {
    hash = i.hash;
  });
  return minedOnce(ctx, sending, () => hash);
}

/** Mines one block once the transaction `hash()` names is in the node's pool; then awaits `sending`. */
async function minedOnce<T>(ctx: EvmContext, sending: Promise<T>, hash: () => Hex | undefined): Promise<T> {
  const signed = await until(hash, 'the transaction to be signed');
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

/** Sends `tx` for `r` with automine off: it times out (outcome unknown), its record and spend stored. */
async function timedOutOrder(
  ctx: EvmContext,
  store: MemoryOrderStore<OnChainOrderRecord>,
  caps: SpendCaps,
  clock: ManualClock,
  cid: string,
  tx: { to: Address; data: Hex },
): Promise<OnChainOrderRecord> {
  const errors = venueErrorMapper('test-evm', abi(), ctx);
  const sender = new TxSender({ ctx, abi: abi(), receiptTimeoutMs: 300 });
  const r: OnChainOrderRecord = {
    clientOrderId: cid,
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
  const err = await sendRecorded(
    { sender, store, clock, wrap: (e, c) => errors.wrap(e, c) },
    r,
    tx,
    await caps.reserve(TOKEN, 100n, cid),
  ).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(NotConfirmedError);
  expect(r.status).toBe('outcome-unknown');
  return r;
}

const TOKEN = `0x${'ab'.repeat(20)}` as Address;
const newCaps = (store: MemoryOrderStore<OnChainOrderRecord>) =>
  new SpendCaps({ venue: 'test-evm', caps: { [TOKEN]: 10_000n }, records: store });

/** The onMined of a test adapter: filled, from the receipt it is given (kept for the assertions). */
function filler(receipts: TransactionReceipt[]) {
  return (x: OnChainOrderRecord, receipt: TransactionReceipt) => {
    receipts.push(receipt);
    x.status = 'filled';
    x.filledSizeBase = x.sizeBase;
  };
}

/** One request a {@link countedOn} context made: the method and, for block reads, the block asked for. */
interface CountedCall {
  method: string;
  params: readonly unknown[];
}

/**
 * A context on `url` that records every request it makes; `fault` may answer one with an error instead
 * (as the node would).
 */
function countedOn(
  url: string,
  key: Hex,
  fault?: (method: string, params: readonly unknown[]) => Promise<Error | undefined>,
) {
  const direct = http(url)({ retryCount: 0 }) as unknown as {
    request: (a: { method: string; params?: unknown }) => Promise<unknown>;
  };
  const calls: CountedCall[] = [];
  const ctx = createEvmContext({
    venue: 'test-evm',
    chain: 'evm:31337',
    rpcUrls: [url],
    privateKey: key,
    pollingIntervalMs: 50,
    transport: custom(
      {
        async request({ method, params }) {
          const list = (params ?? []) as readonly unknown[];
          calls.push({ method, params: list });
          const err = await fault?.(method, list);
          if (err) throw err;
          return direct.request({ method, params });
        },
      },
      { retryCount: 0 },
    ),
  });
  /** The blocks read with their transactions (a nonce scan's reads), in order. */
  const blocksRead = () =>
    calls
      .filter((c) => c.method === 'eth_getBlockByNumber' && c.params[1] === true)
      .map((c) => BigInt(c.params[0] as Hex));
  return { ctx, calls, blocksRead, direct };
}

beforeAll(() => {
  contracts = compileSolidity({ 'TestToken.sol': EVM_TEST_CONTRACTS_URL });
});

describe('a node that keeps no old state (anvil --prune-history)', () => {
  let anvil: AnvilInstance;
  let reverter: Address;
  beforeAll(async () => {
    // 8 recent states in memory, none on disk: older blocks' state reads fail as on a pruned full node.
    anvil = await startAnvil({ args: ['--prune-history', '8'] });
    reverter = await deployContract(contextOn(anvil.rpcUrl, ANVIL_DEV_KEYS[3]), contracts.Reverter!);
  });
  afterAll(async () => {
    await anvil?.stop();
  });
  beforeEach(async () => {
    await rpc(contextOn(anvil.rpcUrl, ANVIL_DEV_KEYS[3]).publicClient, 'evm_setAutomine', [false]);
  });

  /**
   * An order sent on dev account `key` whose receipt timed out, then sped up by another process (the
   * same call at its nonce, higher fees) and mined. `mineBefore`: 64 blocks mined before the order.
   */
  async function spedUpElsewhere(key: number, id: string, o: { mineBefore?: boolean } = {}) {
    const ctx = contextOn(anvil.rpcUrl, ANVIL_DEV_KEYS[key] as Hex);
    const store = new MemoryOrderStore<OnChainOrderRecord>();
    const caps = newCaps(store);
    const clock = new ManualClock(Date.now());
    if (o.mineBefore) await rpc(ctx.publicClient, 'anvil_mine', ['0x40']);
    const r = await timedOutOrder(ctx, store, caps, clock, id, bump(reverter));
    const original = r.txHash as Hex;
    const nonce = r.nonce as number;
    const elsewhere = new TxSender({
      ctx: contextOn(anvil.rpcUrl, ANVIL_DEV_KEYS[key] as Hex),
      receiptTimeoutMs: 5_000,
    });
    const speedUp = await minedWhenSigned(ctx, (onSigned) =>
      elsewhere.replace({ hash: original, nonce, request: bump(reverter) }, 'speed-up', { onSigned }),
    );
    return { ctx, store, caps, clock, r, original, nonce, speedUp };
  }

  const counter = (ctx: EvmContext) =>
    ctx.publicClient.readContract({ address: reverter, abi: abi(), functionName: 'counter' });

  it('a speed-up sent by another process is found by reading blocks, and the order resolved from it', async () => {
    // Another process (a wallet's "speed up") re-sends the same call at the nonce with higher fees.
    const { ctx, caps, clock, r, original, nonce, speedUp } = await spedUpElsewhere(0, 'sped');
    await rpc(ctx.publicClient, 'anvil_mine', ['0x40']);
    // The node no longer has the state of the block that used the nonce.
    const old = await ctx.publicClient
      .getTransactionCount({ address: ctx.account.address, blockNumber: speedUp.receipt.blockNumber })
      .catch((e: unknown) => e);
    expect(isHistoricalStateUnavailable(old)).toBe(true);

    // A restarted process reconciles: it knows only the record.
    const restarted = new TxSender({ ctx: contextOn(anvil.rpcUrl, ANVIL_DEV_KEYS[0]), abi: abi() });
    expect((await restarted.status(original, nonce)).state).toBe('replaced');
    const receipts: TransactionReceipt[] = [];
    await applySentTxStatus(
      { sender: restarted, errors: venueErrorMapper('test-evm', abi(), ctx), clock, spendCaps: caps },
      r,
      original,
      filler(receipts),
    );
    expect(r.status).toBe('filled');
    expect(r.txHash).toBe(speedUp.hash);
    // the fill is read from the speed-up's receipt
    expect(receipts.map((x) => x.transactionHash)).toEqual([speedUp.hash]);
    expect(r.spend?.state).toBe('committed');
    expect(await counter(ctx)).toBe(1n);
  });

  it('a speed-up this process signed is found by its hash: no state read, no block scan', async () => {
    const ctx = contextOn(anvil.rpcUrl, ANVIL_DEV_KEYS[1]);
    const store = new MemoryOrderStore<OnChainOrderRecord>();
    const caps = newCaps(store);
    const clock = new ManualClock(Date.now());
    const errors = venueErrorMapper('test-evm', abi(), ctx);
    // no scan allowed: only the hashes can find it
    const sender = new TxSender({ ctx, abi: abi(), receiptTimeoutMs: 300, nonceScanMaxBlocks: 0 });
    const r: OnChainOrderRecord = {
      clientOrderId: 'own',
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
    const err = await sendRecorded(
      { sender, store, clock, wrap: (e, c) => errors.wrap(e, c) },
      r,
      bump(reverter),
      await caps.reserve(TOKEN, 100n, 'own'),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotConfirmedError);
    const speedUp = await minedWhenSigned(ctx, (onSigned) =>
      sender.replace({ hash: r.txHash as Hex, nonce: r.nonce as number }, 'speed-up', {
        onSigned,
        timeoutMs: 5_000,
      }),
    );
    await rpc(ctx.publicClient, 'anvil_mine', ['0x40']);
    const receipts: TransactionReceipt[] = [];
    await applySentTxStatus({ sender, errors, clock, spendCaps: caps }, r, r.txHash as Hex, filler(receipts));
    expect(r.status).toBe('filled');
    expect(r.txHash).toBe(speedUp.hash);
    expect(receipts.map((x) => x.transactionHash)).toEqual([speedUp.hash]);
    expect(r.spend?.state).toBe('committed');
  });

  it('another call that took the nonce (a cancel the record does not know) fails the order and releases its spend', async () => {
    const ctx = contextOn(anvil.rpcUrl, ANVIL_DEV_KEYS[2]);
    const store = new MemoryOrderStore<OnChainOrderRecord>();
    const caps = newCaps(store);
    const clock = new ManualClock(Date.now());
    const r = await timedOutOrder(ctx, store, caps, clock, 'gone', bump(reverter));
    const before = await counter(ctx);
    const elsewhere = new TxSender({
      ctx: contextOn(anvil.rpcUrl, ANVIL_DEV_KEYS[2]),
      receiptTimeoutMs: 5_000,
    });
    const cancel = await minedWhenSigned(ctx, (onSigned) =>
      elsewhere.replace({ hash: r.txHash as Hex, nonce: r.nonce as number }, 'cancel', { onSigned }),
    );
    await rpc(ctx.publicClient, 'anvil_mine', ['0x40']);
    const restarted = new TxSender({ ctx: contextOn(anvil.rpcUrl, ANVIL_DEV_KEYS[2]), abi: abi() });
    const original = r.txHash as Hex;
    await applySentTxStatus(
      { sender: restarted, errors: venueErrorMapper('test-evm', abi(), ctx), clock, spendCaps: caps },
      r,
      original,
      () => {
        throw new Error('a cancel is not the order');
      },
    );
    expect(r.status).toBe('failed');
    expect(r.error).toContain(cancel.hash);
    expect(r.txHash).toBe(original);
    expect(r.spend?.state).toBe('released');
    expect(await counter(ctx)).toBe(before);
  });

  it('what a bounded block scan cannot find stays outcome-unknown, saying why, with a distinct error that is not retryable', async () => {
    const { ctx, caps, clock, r, nonce } = await spedUpElsewhere(0, 'far');
    await rpc(ctx.publicClient, 'anvil_mine', ['0x40']);
    // Through an RPC URL holding an API key, with a scan of 3 blocks from the chain's start.
    const keyed = await startFaultyRpc(anvil.rpcUrl);
    try {
      const restarted = new TxSender({
        ctx: contextOn(keyed.url, ANVIL_DEV_KEYS[0]),
        abi: abi(),
        nonceScanMaxBlocks: 3,
      });
      const err = await restarted.minedAtNonce(nonce).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(HistoricalStateUnavailableError);
      const e = err as HistoricalStateUnavailableError;
      expect(e.code).toBe('VENUE_NOT_CONFIRMED');
      expect(e.outcome).toBe('unknown');
      expect(e.retryable).toBe(false);
      expect(e.details.reason).toBe('historical-state-unavailable');
      expect(e.shortMessage).toMatch(/not an archive node.*blocks 0\.\.2/);
      for (const s of keyed.secrets) expect(everythingIn(e)).not.toContain(s);

      // The record: unknown, with the reason, the spend still counted; the read does not fail as if the
      // RPC were down.
      await applySentTxStatus(
        {
          sender: restarted,
          errors: venueErrorMapper('test-evm', abi(), restarted.ctx),
          clock,
          spendCaps: caps,
        },
        r,
        r.txHash as Hex,
        () => {
          throw new Error('not found, cannot be filled');
        },
      );
      expect(r.status).toBe('outcome-unknown');
      expect(r.error).toMatch(/archive/);
      expect(r.spend?.state).toBe('reserved');
      expect(await caps.spent(TOKEN)).toBe(100n);
      for (const s of keyed.secrets) expect(r.error).not.toContain(s);
    } finally {
      await keyed.close();
    }
  });

  it('a scan that found nothing is kept on the record: later reconciles read none of its blocks again, and one allowed more goes on after its last block', async () => {
    // the order well past the blocks the scans below read before they reach it
    const {
      ctx,
      caps,
      clock,
      r: r0,
      original,
      nonce,
      speedUp,
    } = await spedUpElsewhere(1, 'kept', { mineBefore: true });
    await rpc(ctx.publicClient, 'anvil_mine', ['0x40']);
    // The record, as stored before a scan was ever kept on it (no nonceScan), from an order file; made
    // long before the chain started, so the scan starts at block 0, far from the speed-up.
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'xhedge-scan-')), 'orders.json');
    const orders = new JsonFileOrderStore<OnChainOrderRecord>(file);
    // read back from the file (the store holding it stays open: one writer per file)
    const fromDisk = () =>
      (JSON.parse(readFileSync(file, 'utf8')) as Record<string, OnChainOrderRecord>)
        .kept as OnChainOrderRecord;
    await orders.put('kept', { ...r0, createdAtMs: 0 });
    let r = fromDisk();
    expect('nonceScan' in r).toBe(false);

    const counted = countedOn(anvil.rpcUrl, ANVIL_DEV_KEYS[1]);
    const errors = venueErrorMapper('test-evm', abi(), counted.ctx);
    const reconcile = async (sender: TxSender) => {
      counted.calls.length = 0;
      await applySentTxStatus({ sender, errors, clock, spendCaps: caps }, r, original, (x, receipt) => {
        expect(receipt.transactionHash).toBe(speedUp.hash);
        x.status = 'filled';
      });
      // stored and read back as an adapter's next call would
      await orders.put('kept', r);
      r = fromDisk();
    };
    const small = new TxSender({ ctx: counted.ctx, abi: abi(), nonceScanMaxBlocks: 16 });

    // 1. The scan reads its 16 blocks and misses: outcome unknown, and what it read is kept.
    await reconcile(small);
    expect(counted.blocksRead()).toEqual(Array.from({ length: 16 }, (_, i) => BigInt(i)));
    expect(r.status).toBe('outcome-unknown');
    expect(r.error).toMatch(/not an archive node.*blocks 0\.\.15, the first 16 of/);
    const mayBeTo = BigInt(r.nonceScan?.mayBeToBlock as string);
    expect(mayBeTo).toBeGreaterThanOrEqual(speedUp.receipt.blockNumber);
    expect(r.nonceScan).toEqual({
      nonce,
      scannedFromBlock: '0',
      scannedToBlock: '15',
      mayBeToBlock: mayBeTo.toString(),
      reason: 'scan-limit',
      atMs: clock.nowMs(),
      attempts: 1,
    });
    expect(r.spend?.state).toBe('reserved');
    const error = r.error;

    // 2. At once again (the next fills check, the order path): no lookup at all, the record as it was.
    await reconcile(small);
    expect(counted.calls.filter((c) => c.method === 'eth_getBlockByNumber')).toEqual([]);
    expect(
      counted.calls.filter((c) => c.method === 'eth_getTransactionCount').map((c) => c.params[1]),
    ).toEqual(['latest']);
    expect(r.status).toBe('outcome-unknown');
    expect(r.error).toBe(error);
    expect(r.nonceScan?.attempts).toBe(1);

    // 3. After the backoff: the range is read to the sender's bound, so no block is read again.
    clock.set(nextNonceScanAtMs(r.nonceScan as NonNullable<OnChainOrderRecord['nonceScan']>));
    await reconcile(small);
    expect(counted.blocksRead()).toEqual([]);
    expect(counted.calls.length).toBeLessThan(10);
    expect(r.status).toBe('outcome-unknown');
    expect(r.error).toMatch(/blocks 0\.\.15, the first 16 of/);
    expect(r.nonceScan).toMatchObject({ scannedToBlock: '15', reason: 'scan-limit', attempts: 2 });
    expect(nextNonceScanAtMs(r.nonceScan as NonNullable<OnChainOrderRecord['nonceScan']>)).toBe(
      clock.nowMs() + 2 * 60_000,
    );

    // (A forced reconcile reads the range anew, and starts the backoff over.)
    counted.calls.length = 0;
    await applySentTxStatus(
      { sender: small, errors, clock, spendCaps: caps },
      r,
      original,
      () => {
        throw new Error('not in the range read');
      },
      { rescan: true },
    );
    expect(counted.blocksRead()).toEqual(Array.from({ length: 16 }, (_, i) => BigInt(i)));
    expect(r.nonceScan).toMatchObject({ scannedToBlock: '15', reason: 'scan-limit', attempts: 1 });

    // 4. A sender allowed more blocks, with no time to spare: one batch, after the blocks already read.
    clock.advance(60_000);
    const hurried = new TxSender({ ctx: counted.ctx, abi: abi(), nonceScanDeadlineMs: 0 });
    await reconcile(hurried);
    expect(counted.blocksRead()).toEqual(Array.from({ length: 8 }, (_, i) => BigInt(16 + i)));
    expect(r.status).toBe('outcome-unknown');
    expect(r.error).toMatch(/blocks 0\.\.23, read so far.*goes on from block 24 next time/);
    expect(r.nonceScan).toMatchObject({ scannedToBlock: '23', reason: 'deadline', attempts: 2 });
    await reconcile(hurried);
    expect(counted.blocksRead()).toEqual([]);

    // 5. A minute on, it goes on from block 24 and finds the speed-up: the order is resolved from it.
    clock.advance(60_000);
    await reconcile(new TxSender({ ctx: counted.ctx, abi: abi() }));
    const read = counted.blocksRead();
    expect(read[0]).toBe(24n);
    expect(read.at(-1)).toBeLessThanOrEqual(speedUp.receipt.blockNumber + 7n);
    expect(r.status).toBe('filled');
    expect(r.txHash).toBe(speedUp.hash);
    expect(r.nonceScan).toBeUndefined();
    expect(r.spend?.state).toBe('committed');
  });

  it('a lookup stopped by its deadline says how far it got, and the next one reads on from there', async () => {
    // the order well past the blocks the scans below read before they reach it
    const { ctx, nonce, speedUp } = await spedUpElsewhere(2, 'slow', {
      mineBefore: true,
    });
    await rpc(ctx.publicClient, 'anvil_mine', ['0x40']);
    // A clock that moves 1 s per reading (the start, then one before each batch after the first): a
    // deadline of 1.5 s is two batches.
    let ms = 0;
    const ticking = { nowMs: () => (ms += 1000) };
    const counted = countedOn(anvil.rpcUrl, ANVIL_DEV_KEYS[2]);
    const sender = new TxSender({ ctx: counted.ctx, abi: abi(), nonceScanDeadlineMs: 1_500, clock: ticking });
    const err = await sender.minedAtNonce(nonce).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HistoricalStateUnavailableError);
    const e = err as HistoricalStateUnavailableError;
    expect(counted.blocksRead()).toEqual(Array.from({ length: 16 }, (_, i) => BigInt(i)));
    expect(e.scan).toMatchObject({ nonce, scannedFromBlock: '0', scannedToBlock: '15', reason: 'deadline' });
    // it may go on: retryable, unlike a scan that read its range
    expect(e.retryable).toBe(true);
    counted.calls.length = 0;
    const found = await new TxSender({ ctx: counted.ctx, abi: abi() }).minedAtNonce(nonce, {
      previousScan: e.scan as NonNullable<typeof e.scan>,
    });
    expect(found?.hash).toBe(speedUp.hash);
    expect(counted.blocksRead()[0]).toBe(16n);
    // a scan of another nonce is not taken for this one's
    await expect(
      sender.minedAtNonce(nonce + 1, { previousScan: e.scan as NonNullable<typeof e.scan> }),
    ).rejects.toThrow(/previousScan.*nonce/);
  });

  it('`header not found` for a recent block is a lagging node of a load-balanced RPC: asked again, not taken for pruned state', async () => {
    const { ctx, caps, clock, r, original, speedUp } = await spedUpElsewhere(2, 'lag');
    // two blocks on: the node still has the state of the block that used the nonce
    await rpc(ctx.publicClient, 'anvil_mine', ['0x2']);
    // The node asked about blocks below the head lags: `header not found` (`failures` times).
    let failures = 0;
    const lagging = countedOn(anvil.rpcUrl, ANVIL_DEV_KEYS[2], async (method, params) => {
      const tag = params[1];
      if (method !== 'eth_getTransactionCount' || typeof tag !== 'string' || !tag.startsWith('0x')) return;
      const head = BigInt((await lagging.direct.request({ method: 'eth_blockNumber' })) as Hex);
      if (BigInt(tag) >= head || failures <= 0) return;
      failures--;
      return Object.assign(new Error('header not found'), { code: -32000 });
    });
    const errors = venueErrorMapper('test-evm', abi(), lagging.ctx);
    const sender = new TxSender({ ctx: lagging.ctx, abi: abi() });

    // For as long as it lasts: a passing failure (the read fails, the record is left as it was), no scan.
    failures = 1_000;
    const err = await applySentTxStatus({ sender, errors, clock, spendCaps: caps }, r, original, () => {
      throw new Error('not read');
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VenueError);
    expect(err).not.toBeInstanceOf(HistoricalStateUnavailableError);
    expect((err as VenueError).outcome).toBe('unknown');
    expect(lagging.blocksRead()).toEqual([]);
    expect(r.status).toBe('outcome-unknown');
    expect(r.nonceScan).toBeUndefined();

    // Once: asked again, and found by state (one block read, the one that used the nonce).
    failures = 1;
    lagging.calls.length = 0;
    const receipts: TransactionReceipt[] = [];
    await applySentTxStatus({ sender, errors, clock, spendCaps: caps }, r, original, filler(receipts));
    expect(failures).toBe(0);
    expect(lagging.blocksRead()).toEqual([speedUp.receipt.blockNumber]);
    expect(r.status).toBe('filled');
    expect(r.txHash).toBe(speedUp.hash);
  });
});

describe('on an archive chain', () => {
  let chain: LocalTestChain;
  let reverter: Address;
  beforeAll(async () => {
    chain = await startLocalTestChain('test-evm');
    reverter = await deployContract(chain.ctxFor(ANVIL_DEV_KEYS[3]), contracts.Reverter!);
    await chain.snapshot();
  });
  afterAll(async () => {
    await chain?.stop();
  });
  beforeEach(async () => {
    await chain.fresh();
    await rpc(chain.ctxFor(ANVIL_DEV_KEYS[3]).publicClient, 'evm_setAutomine', [false]);
  });

  /**
   * A context on the test chain that refuses state reads more than 4 blocks behind the head with
   * `error`, as a pruned node of that client does.
   */
  function prunedLike(error: { code: number; message: string }): EvmContext {
    const direct = http(chain.anvil.rpcUrl)({ retryCount: 0 }) as unknown as {
      request: (a: { method: string; params?: unknown }) => Promise<unknown>;
    };
    const stateReads: Record<string, number> = {
      eth_getTransactionCount: 1,
      eth_getBalance: 1,
      eth_getCode: 1,
      eth_call: 1,
      eth_getStorageAt: 2,
    };
    return createEvmContext({
      venue: 'test-evm',
      chain: 'evm:31337',
      rpcUrls: [chain.anvil.rpcUrl],
      privateKey: ANVIL_DEV_KEYS[0],
      pollingIntervalMs: 50,
      transport: custom(
        {
          async request({ method, params }) {
            const at = stateReads[method];
            const tag = at === undefined ? undefined : (params as unknown[])[at];
            if (typeof tag === 'string' && /^0x[0-9a-f]+$/i.test(tag)) {
              const head = BigInt((await direct.request({ method: 'eth_blockNumber' })) as Hex);
              if (BigInt(tag) < head - 4n)
                throw Object.assign(new Error(error.message), { code: error.code });
            }
            return direct.request({ method, params });
          },
        },
        { retryCount: 0 },
      ),
    });
  }

  // What each client answers for the state of a block it pruned (see errors.ts for the sources).
  const root = '1a3bddc494098bac19ef26e6506812caa12ca5cf036a13ef0eabde38beab5d21';
  const PRUNED_ANSWERS: [string, { code: number; message: string }][] = [
    [
      'geth (hash scheme)',
      {
        code: -32000,
        message: `missing trie node ${root} (path ) state 0x${root} is not available, not found`,
      },
    ],
    ['geth (path scheme)', { code: -32000, message: `historical state ${root} is not available` }],
    ['geth (path scheme, no history)', { code: -32000, message: `state 0x${root} is not available` }],
    ['Erigon 3', { code: -32000, message: 'old data not available due to pruning' }],
    ['Nethermind', { code: -32002, message: `No state available for block 17 (0x${root})` }],
    ['reth', { code: -32000, message: 'state at block #17 is pruned' }],
    ['Besu', { code: -32000, message: 'World state unavailable' }],
  ];

  it.each(PRUNED_ANSWERS)(
    '%s: a sped-up order is resolved without the pruned state',
    async (_client, answer) => {
      const ctx = chain.ctxFor(ANVIL_DEV_KEYS[0]);
      const store = new MemoryOrderStore<OnChainOrderRecord>();
      const caps = newCaps(store);
      const clock = new ManualClock(Date.now());
      const r = await timedOutOrder(ctx, store, caps, clock, 'sped', bump(reverter));
      const elsewhere = new TxSender({ ctx: chain.ctxFor(ANVIL_DEV_KEYS[0]), receiptTimeoutMs: 5_000 });
      const speedUp = await minedWhenSigned(ctx, (onSigned) =>
        elsewhere.replace(
          { hash: r.txHash as Hex, nonce: r.nonce as number, request: bump(reverter) },
          'speed-up',
          { onSigned },
        ),
      );
      await rpc(ctx.publicClient, 'anvil_mine', ['0x20']);
      const pruned = prunedLike(answer);
      const refused = await pruned.publicClient
        .getTransactionCount({ address: ctx.account.address, blockNumber: speedUp.receipt.blockNumber })
        .catch((e: unknown) => e);
      expect(isHistoricalStateUnavailable(refused)).toBe(true);
      const restarted = new TxSender({ ctx: pruned, abi: abi() });
      const receipts: TransactionReceipt[] = [];
      await applySentTxStatus(
        { sender: restarted, errors: venueErrorMapper('test-evm', abi(), pruned), clock, spendCaps: caps },
        r,
        r.txHash as Hex,
        filler(receipts),
      );
      expect(r.status).toBe('filled');
      expect(r.txHash).toBe(speedUp.hash);
      expect(receipts.map((x) => x.transactionHash)).toEqual([speedUp.hash]);
      expect(r.spend?.state).toBe('committed');
    },
  );

  it('a transport failure is not taken for pruned state', async () => {
    expect(isHistoricalStateUnavailable(new Error('fetch failed'))).toBe(false);
    expect(isHistoricalStateUnavailable(Object.assign(new Error('execution reverted'), { code: 3 }))).toBe(
      false,
    );
    const faulty = await startFaultyRpc(chain.anvil.rpcUrl);
    try {
      const ctx = contextOn(faulty.url, ANVIL_DEV_KEYS[0]);
      faulty.fail('500', ['eth_getTransactionCount']);
      const err = await ctx.publicClient
        .getTransactionCount({ address: ctx.account.address, blockNumber: 1n })
        .catch((e: unknown) => e);
      expect(isHistoricalStateUnavailable(err)).toBe(false);
    } finally {
      await faulty.close();
    }
  });

  describe('records written before the call digest was kept', () => {
    /**
     * An order sent the way the earlier version did (no call digest on the record), timed out, and
     * stored as that version wrote it, read back from the order file of a restarted process.
     */
    async function legacyOrder(cid: string, caps: SpendCaps, clock: ManualClock) {
      const ctx = chain.ctxFor(ANVIL_DEV_KEYS[0]);
      const sender = new TxSender({ ctx, abi: abi(), receiptTimeoutMs: 300 });
      const spend = await caps.reserve(TOKEN, 100n, cid);
      let signed: SignedTxInfo | undefined;
      const err = await sender
        .send(bump(reverter), {
          clientOrderId: cid,
          onSigned: (i) => {
            signed = i;
          },
        })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NotConfirmedError);
      const info = signed as SignedTxInfo;
      const file = path.join(mkdtempSync(path.join(tmpdir(), 'xhedge-legacy-')), 'orders.json');
      const asWritten = {
        [cid]: {
          clientOrderId: cid,
          instrument: 'ETH-USD:PERP',
          side: 'buy',
          sizeBase: '1',
          reduceOnly: false,
          orderType: 'market',
          status: 'outcome-unknown',
          txHash: info.hash,
          nonce: info.nonce,
          maxFeePerGas: info.maxFeePerGas.toString(),
          maxPriorityFeePerGas: info.maxPriorityFeePerGas.toString(),
          filledSizeBase: '0',
          error: `transaction ${info.hash} not confirmed within 300 ms; outcome unknown, reconcile by hash`,
          spend: spend.recorded() satisfies RecordedSpend,
          createdAtMs: clock.nowMs(),
          updatedAtMs: clock.nowMs(),
        },
      };
      writeFileSync(file, JSON.stringify(asWritten, null, 1));
      const r = (await new JsonFileOrderStore<OnChainOrderRecord>(file).get(cid)) as OnChainOrderRecord;
      expect(r.txCallDigest).toBeUndefined();
      return { r, sender, ctx };
    }

    it('a speed-up that kept the gas limit is recognised as the order (re-signing it gives the recorded hash)', async () => {
      const store = new MemoryOrderStore<OnChainOrderRecord>();
      const caps = newCaps(store);
      const clock = new ManualClock(Date.now());
      const { r, sender, ctx } = await legacyOrder('old-sped', caps, clock);
      // The earlier process sped it up (same call, same gas, higher fees), then stopped.
      const speedUp = await minedWhenSigned(ctx, (onSigned) =>
        sender.replace({ hash: r.txHash as Hex, nonce: r.nonce as number }, 'speed-up', {
          onSigned,
          timeoutMs: 5_000,
        }),
      );
      const restarted = new TxSender({ ctx: chain.ctxFor(ANVIL_DEV_KEYS[0]), abi: abi() });
      const receipts: TransactionReceipt[] = [];
      await applySentTxStatus(
        { sender: restarted, errors: venueErrorMapper('test-evm', abi(), ctx), clock, spendCaps: caps },
        r,
        r.txHash as Hex,
        filler(receipts),
      );
      expect(r.status).toBe('filled');
      expect(r.txHash).toBe(speedUp.hash);
      expect(receipts.map((x) => x.transactionHash)).toEqual([speedUp.hash]);
      expect(r.spend?.state).toBe('committed');
    });

    it('a cancel (a 0-value self-transfer) that took the nonce fails the order and releases its spend', async () => {
      const store = new MemoryOrderStore<OnChainOrderRecord>();
      const caps = newCaps(store);
      const clock = new ManualClock(Date.now());
      const { r, ctx } = await legacyOrder('old-cancelled', caps, clock);
      const elsewhere = new TxSender({ ctx: chain.ctxFor(ANVIL_DEV_KEYS[0]), receiptTimeoutMs: 5_000 });
      const cancel = await minedWhenSigned(ctx, (onSigned) =>
        elsewhere.replace({ hash: r.txHash as Hex, nonce: r.nonce as number }, 'cancel', { onSigned }),
      );
      const restarted = new TxSender({ ctx: chain.ctxFor(ANVIL_DEV_KEYS[0]), abi: abi() });
      await applySentTxStatus(
        { sender: restarted, errors: venueErrorMapper('test-evm', abi(), ctx), clock, spendCaps: caps },
        r,
        r.txHash as Hex,
        () => {
          throw new Error('a cancel is not the order');
        },
      );
      expect(r.status).toBe('failed');
      expect(r.error).toContain(cancel.hash);
      expect(r.spend?.state).toBe('released');
      expect(await caps.spent(TOKEN)).toBe(0n);
    });

    it('a copy re-sent with another gas limit cannot be told from another call: outcome-unknown, naming it', async () => {
      const store = new MemoryOrderStore<OnChainOrderRecord>();
      const caps = newCaps(store);
      const clock = new ManualClock(Date.now());
      const { r, ctx } = await legacyOrder('old-regassed', caps, clock);
      // A process that estimated the gas anew, with other headroom.
      const elsewhere = new TxSender({
        ctx: chain.ctxFor(ANVIL_DEV_KEYS[0]),
        receiptTimeoutMs: 5_000,
        gasLimitMultiplier: 1.5,
      });
      const copy = await minedWhenSigned(ctx, (onSigned) =>
        elsewhere.replace(
          { hash: r.txHash as Hex, nonce: r.nonce as number, request: bump(reverter) },
          'speed-up',
          { onSigned },
        ),
      );
      const restarted = new TxSender({ ctx: chain.ctxFor(ANVIL_DEV_KEYS[0]), abi: abi() });
      await applySentTxStatus(
        { sender: restarted, errors: venueErrorMapper('test-evm', abi(), ctx), clock, spendCaps: caps },
        r,
        r.txHash as Hex,
        () => {
          throw new Error('cannot tell, so not filled');
        },
      );
      expect(r.status).toBe('outcome-unknown');
      expect(r.error).toContain(copy.hash);
      expect(r.spend?.state).toBe('reserved');
    });
  });

  it('a speed-up by a process that did not sign the original gets gas for the state it runs on, not the state after the original', async () => {
    const ctx = chain.ctxFor(ANVIL_DEV_KEYS[0]);
    const sender = new TxSender({ ctx, abi: abi(), receiptTimeoutMs: 300 });
    // bump() from counter 0 writes a fresh storage slot (~20k gas more than from 1).
    const err = (await sender.send(bump(reverter)).catch((e: unknown) => e)) as NotConfirmedError;
    expect(err).toBeInstanceOf(NotConfirmedError);
    const restarted = new TxSender({
      ctx: chain.ctxFor(ANVIL_DEV_KEYS[0]),
      abi: abi(),
      receiptTimeoutMs: 5_000,
    });
    const speedUp = await minedWhenSigned(ctx, (onSigned) =>
      restarted.replace(
        { hash: err.details.txHash as Hex, nonce: err.details.nonce as number, request: bump(reverter) },
        'speed-up',
        { onSigned },
      ),
    );
    expect(speedUp.receipt.status).toBe('success');
    expect(
      await ctx.publicClient.readContract({ address: reverter, abi: abi(), functionName: 'counter' }),
    ).toBe(1n);
  });

  it('a cancel after speed-ups is priced above the last speed-up, not refused as underpriced on every try', async () => {
    const ctx = chain.ctxFor(ANVIL_DEV_KEYS[0]);
    const store = new MemoryOrderStore<OnChainOrderRecord>();
    const caps = newCaps(store);
    const clock = new ManualClock(Date.now());
    const errors = venueErrorMapper('test-evm', abi(), ctx);
    const sender = new TxSender({ ctx, abi: abi(), receiptTimeoutMs: 300 });
    const r: OnChainOrderRecord = {
      clientOrderId: 'stuck',
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
    const sent = await sendRecorded(
      { sender, store, clock, wrap: (e, c) => errors.wrap(e, c) },
      r,
      bump(reverter),
      await caps.reserve(TOKEN, 100n, 'stuck'),
    ).catch((e: unknown) => e);
    expect(sent).toBeInstanceOf(NotConfirmedError);
    const pending = { hash: r.txHash as Hex, nonce: r.nonce as number };
    // Two speed-ups at steady fees, both still in the pool when they time out.
    const fees: bigint[] = [];
    for (let i = 0; i < 2; i++) {
      const err = await sender
        .replace(pending, 'speed-up', {
          onSigned: (x) => void fees.push(x.maxFeePerGas),
        })
        .catch((e: unknown) => e);
      expect(err, `speed-up ${i + 1}`).toBeInstanceOf(NotConfirmedError);
    }
    expect(fees[1]).toBeGreaterThan(fees[0] as bigint);
    // The adapter's cancelOrder: occupy the order's nonce (it knows the original's hash and fees).
    // (replaceByNonce sets the cancel's hash on the record when it is signed)
    await minedOnce(ctx, replaceByNonce(sender, store, r, pending), () => r.cancelTxHash);
    const cancel = await ctx.publicClient.getTransaction({ hash: r.cancelTxHash as Hex });
    expect(cancel.maxFeePerGas).toBeGreaterThanOrEqual(((fees[1] as bigint) * 1125n) / 1000n);
    await applySentTxStatus({ sender, errors, clock, spendCaps: caps }, r, pending.hash, () => {
      throw new Error('cancelled, not filled');
    });
    expect(r.status).toBe('cancelled');
    expect(r.spend?.state).toBe('released');
  });
});

describe('bad numbers are refused, not carried as NaN', () => {
  it('a gas policy with a NaN or negative base fee cap is refused (NaN meant no cap at all)', () => {
    expect(() => new GasPolicy({ maxBaseFeeGwei: Number.NaN })).toThrow(/maxBaseFeeGwei/);
    expect(() => new GasPolicy({ maxBaseFeeGwei: -1 })).toThrow(/maxBaseFeeGwei/);
    expect(new GasPolicy({ maxBaseFeeGwei: Number.POSITIVE_INFINITY }).maxBaseFeeWei).toBeUndefined();
    expect(new GasPolicy({ maxBaseFeeGwei: 0.1 }).maxBaseFeeWei).toBe(100_000_000n);
  });

  it('a nonce scan bound that is not a whole number of blocks is refused', () => {
    const ctx = contextOn('http://127.0.0.1:1', ANVIL_DEV_KEYS[0]);
    for (const nonceScanMaxBlocks of [Number.NaN, -1, 2.5]) {
      expect(() => new TxSender({ ctx, nonceScanMaxBlocks }), String(nonceScanMaxBlocks)).toThrow(
        /nonceScanMaxBlocks/,
      );
    }
  });

  it('a transaction cost at a NaN or negative gas coin price is refused, not a NaN USD cost', () => {
    const fees = { baseFeePerGas: 1_000_000_000n, maxFeePerGas: 3_000_000_000n, maxPriorityFeePerGas: 1n };
    for (const gasAssetUsd of [Number.NaN, -1, Number.POSITIVE_INFINITY]) {
      expect(
        () => txCost({ gasLimit: 21_000n, fees, l1DataWei: 0n, gasAssetUsd }),
        String(gasAssetUsd),
      ).toThrow(/gasAssetUsd/);
    }
    expect(txCost({ gasLimit: 21_000n, fees, l1DataWei: 0n, gasAssetUsd: 2000 }).totalUsd).toBeCloseTo(
      21_000 * 1.000000001e-9 * 2000,
      12,
    );
  });
});
