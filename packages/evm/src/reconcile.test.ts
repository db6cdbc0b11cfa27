import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ManualClock } from '@xhedge/core';
import { NotConfirmedError } from '@xhedge/venue';
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

  const counter = (ctx: EvmContext) =>
    ctx.publicClient.readContract({ address: reverter, abi: abi(), functionName: 'counter' });

  it('a speed-up sent by another process is found by reading blocks, and the order resolved from it', async () => {
    const ctx = contextOn(anvil.rpcUrl, ANVIL_DEV_KEYS[0]);
    const store = new MemoryOrderStore<OnChainOrderRecord>();
    const caps = newCaps(store);
    const clock = new ManualClock(Date.now());
    const r = await timedOutOrder(ctx, store, caps, clock, 'sped', bump(reverter));
    const original = r.txHash as Hex;
    const nonce = r.nonce as number;
    // Another process (a wallet's "speed up") re-sends the same call at the nonce with higher fees.
    const elsewhere = new TxSender({
      ctx: contextOn(anvil.rpcUrl, ANVIL_DEV_KEYS[0]),
      receiptTimeoutMs: 5_000,
    });
    const speedUp = await minedWhenSigned(ctx, (onSigned) =>
      elsewhere.replace({ hash: original, nonce, request: bump(reverter) }, 'speed-up', { onSigned }),
    );
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
    const ctx = contextOn(anvil.rpcUrl, ANVIL_DEV_KEYS[0]);
    const store = new MemoryOrderStore<OnChainOrderRecord>();
    const caps = newCaps(store);
    const clock = new ManualClock(Date.now());
    const r = await timedOutOrder(ctx, store, caps, clock, 'far', bump(reverter));
    const nonce = r.nonce as number;
    const elsewhere = new TxSender({
      ctx: contextOn(anvil.rpcUrl, ANVIL_DEV_KEYS[0]),
      receiptTimeoutMs: 5_000,
    });
    await minedWhenSigned(ctx, (onSigned) =>
      elsewhere.replace({ hash: r.txHash as Hex, nonce, request: bump(reverter) }, 'speed-up', { onSigned }),
    );
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
