import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ManualClock, XhedgeError } from '@xhedge/core';
import { NonceError, NotConfirmedError, RateLimitError } from '@xhedge/venue';
import { type Address, encodeFunctionData, type Hex, parseGwei, type TransactionReceipt } from 'viem';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ANVIL_DEV_KEYS, type AnvilInstance, startAnvil } from './anvil.ts';
import { SpendCaps } from './approvals.ts';
import { createEvmContext, type EvmContext } from './clients.ts';
import { deployContract, rpc } from './deploy.ts';
import { GasPolicy } from './gas.ts';
import {
  applySentTxStatus,
  type OnChainOrderRecord,
  recordedNonceTxs,
  replaceByNonce,
  sendRecorded,
  speedUpByNonce,
  venueErrorMapper,
} from './onchain-orders.ts';
import { type CompiledContract, compileSolidity, EVM_TEST_CONTRACTS_URL } from './solc.ts';
import { JsonFileOrderStore } from './store.ts';
import { type LocalTestChain, startLocalTestChain } from './testing.ts';
import { TxSender } from './tx.ts';

// Every transaction sent at an order's nonce (the order's, speed-ups, cancels) is kept on its record with
// its fees before it is broadcast, so that a replacement by another process, or this one after a restart,
// outbids the latest one in the pool (a node refuses less as "replacement transaction underpriced" and the
// nonce stays stuck), and so that whichever of them is mined decides the order. Real anvil, automine off,
// the record in a JSON file that each "process" opens with its own store and sender.

let contracts: Record<string, CompiledContract>;
const abi = () => contracts.Reverter!.abi;
const TOKEN = `0x${'ef'.repeat(20)}` as Address;
const KEY = ANVIL_DEV_KEYS[0];

const bump = (reverter: Address) => ({
  to: reverter,
  data: encodeFunctionData({ abi: abi(), functionName: 'bump' }),
});

/** A fresh order record (as an adapter's newOrderRecord makes it). */
function newRecord(cid: string, nowMs: number): OnChainOrderRecord {
  return {
    clientOrderId: cid,
    instrument: 'ETH-USD:PERP',
    side: 'buy',
    sizeBase: '1',
    reduceOnly: false,
    orderType: 'market',
    status: 'queued',
    filledSizeBase: '0',
    createdAtMs: nowMs,
    updatedAtMs: nowMs,
  };
}

const tmpFile = () => path.join(mkdtempSync(path.join(tmpdir(), 'xhedge-nonce-txs-')), 'orders.json');

/**
 * A JSON file store that notes, for each transaction a put adds to `nonceTxs`, whether the node already
 * knew it at that moment (it must not: the record is written before the broadcast).
 */
class WriteAheadWatch extends JsonFileOrderStore<OnChainOrderRecord> {
  readonly firstPut = new Map<string, { kind: string; knownToNode: boolean }>();
  constructor(
    file: string,
    private readonly ctx: EvmContext,
  ) {
    super(file);
  }
  override async put(id: string, record: OnChainOrderRecord): Promise<void> {
    const last = record.nonceTxs?.at(-1);
    if (last && !this.firstPut.has(last.hash)) {
      const knownToNode = await this.ctx.publicClient.getTransaction({ hash: last.hash }).then(
        () => true,
        () => false,
      );
      this.firstPut.set(last.hash, { kind: last.kind, knownToNode });
    }
    return super.put(id, record);
  }
}

/** The store each "process" holds over a file: the next process on the file replaces it. */
const openStores = new Map<string, WriteAheadWatch>();

/**
 * One "process": its own context (clients), sender, store over `file`, clock, spend caps. The previous
 * process on `file` is gone (its store closed): one writer per order store file.
 */
function processOn(ctx: EvmContext, file: string, o: { cap?: number; nonceScanMaxBlocks?: number } = {}) {
  openStores.get(file)?.close();
  const store = new WriteAheadWatch(file, ctx);
  openStores.set(file, store);
  const clock = new ManualClock(Date.now());
  const sender = new TxSender({
    ctx,
    abi: abi(),
    receiptTimeoutMs: 300,
    ...(o.nonceScanMaxBlocks !== undefined ? { nonceScanMaxBlocks: o.nonceScanMaxBlocks } : {}),
    ...(o.cap !== undefined ? { gasPolicy: new GasPolicy({ maxFeePerGasGwei: o.cap }) } : {}),
  });
  const errors = venueErrorMapper('test-evm', abi(), ctx);
  const caps = new SpendCaps({ venue: 'test-evm', caps: { [TOKEN]: 10_000n }, records: store });
  return { ctx, store, clock, sender, errors, caps };
}
type Proc = ReturnType<typeof processOn>;

/** Sends `cid`'s order transaction with automine off: it times out (outcome unknown), recorded. */
async function stuckOrder(p: Proc, cid: string, reverter: Address): Promise<OnChainOrderRecord> {
  const r = newRecord(cid, p.clock.nowMs());
  const err = await sendRecorded(
    { sender: p.sender, store: p.store, clock: p.clock, wrap: (e, c) => p.errors.wrap(e, c) },
    r,
    bump(reverter),
    await p.caps.reserve(TOKEN, 100n, cid),
  ).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(NotConfirmedError);
  return r;
}

/** What the node's pool holds for the account at `nonce` (hash and fees), if anything. */
async function poolAt(ctx: EvmContext, nonce: number) {
  const pool = await rpc<{
    pending: Record<string, Record<string, { hash: Hex; maxFeePerGas: Hex; maxPriorityFeePerGas: Hex }>>;
  }>(ctx.publicClient, 'txpool_content');
  const tx = pool.pending[ctx.account.address.toLowerCase()]?.[String(nonce)];
  return tx
    ? {
        hash: tx.hash,
        maxFeePerGas: BigInt(tx.maxFeePerGas),
        maxPriorityFeePerGas: BigInt(tx.maxPriorityFeePerGas),
      }
    : undefined;
}

/** A 12.5 % bump of `wei`, rounded up (what a replacement pays at least). */
const bumped = (wei: bigint) => (wei * 1125n + 999n) / 1000n;

/** The record as it is on disk (read from the file: the process holding the store goes on). */
async function onDisk(file: string, cid: string): Promise<OnChainOrderRecord> {
  return (JSON.parse(readFileSync(file, 'utf8')) as Record<string, OnChainOrderRecord>)[
    cid
  ] as OnChainOrderRecord;
}

/** Resolves the record in a fresh process from the chain; a fill is an error here unless `filled`. */
async function resolveFresh(
  ctx: EvmContext,
  file: string,
  cid: string,
  o: { nonceScanMaxBlocks?: number } = {},
) {
  const p = processOn(ctx, file, o);
  const r = (await p.store.get(cid)) as OnChainOrderRecord;
  const receipts: TransactionReceipt[] = [];
  await applySentTxStatus(
    { sender: p.sender, errors: p.errors, clock: p.clock, spendCaps: p.caps },
    r,
    r.txHash as Hex,
    (x, receipt) => {
      receipts.push(receipt);
      x.status = 'filled';
      x.filledSizeBase = x.sizeBase;
    },
  );
  return { r, receipts, caps: p.caps };
}

beforeAll(() => {
  contracts = compileSolidity({ 'TestToken.sol': EVM_TEST_CONTRACTS_URL });
});

describe('replacements of a stuck nonce across processes (the record keeps every transaction and its fees)', () => {
  let chain: LocalTestChain;
  let reverter: Address;
  beforeAll(async () => {
    chain = await startLocalTestChain('test-evm');
    reverter = await deployContract(chain.ctxFor(KEY), contracts.Reverter!);
    await chain.snapshot();
  });
  afterAll(async () => {
    await chain?.stop();
  });
  beforeEach(async () => {
    await chain.fresh();
    await rpc(chain.ctxFor(KEY).publicClient, 'evm_setAutomine', [false]);
  });
  const counter = () =>
    chain.ctxFor(KEY).publicClient.readContract({ address: reverter, abi: abi(), functionName: 'counter' });

  it("a restarted process's cancel outbids the earlier cancel in the pool (not refused as underpriced), and the order resolves as cancelled", async () => {
    const file = tmpFile();
    // Process A: the order's transaction, stuck; then the adapter's cancelOrder, stuck too.
    const a = processOn(chain.ctxFor(KEY), file);
    const r = await stuckOrder(a, 'x-1', reverter);
    const nonce = r.nonce as number;
    const original = await poolAt(a.ctx, nonce);
    expect(original?.hash).toBe(r.txHash);
    expect(
      await replaceByNonce(a.sender, a.store, r, { hash: r.txHash as Hex, nonce }).catch((e) => e),
    ).toBeInstanceOf(NotConfirmedError);
    const cancelA = await poolAt(a.ctx, nonce);
    expect(cancelA?.hash).toBe(r.cancelTxHash);
    expect(cancelA?.maxFeePerGas).toBeGreaterThan(original?.maxFeePerGas as bigint);

    // Process B (a restart): a new store over the same file and a sender that signed nothing.
    const b = processOn(chain.ctxFor(KEY), file);
    const rb = (await b.store.get('x-1')) as OnChainOrderRecord;
    const err = await replaceByNonce(b.sender, b.store, rb, { hash: rb.txHash as Hex, nonce }).catch(
      (e) => e,
    );
    // accepted by the node (only the receipt is missing: nothing is mined), not "underpriced"
    expect(err).toBeInstanceOf(NotConfirmedError);
    const cancelB = await poolAt(b.ctx, nonce);
    expect(cancelB?.hash).toBe(rb.cancelTxHash);
    expect(cancelB?.hash).not.toBe(cancelA?.hash);
    expect(cancelB?.maxFeePerGas).toBeGreaterThanOrEqual(bumped(cancelA?.maxFeePerGas as bigint));
    expect(cancelB?.maxPriorityFeePerGas).toBeGreaterThanOrEqual(
      bumped(cancelA?.maxPriorityFeePerGas as bigint),
    );

    // On disk: every transaction at the nonce with the fees it went out with, each written before the node
    // knew it.
    const stored = await onDisk(file, 'x-1');
    expect(stored.nonceTxs?.map((t) => [t.kind, t.hash, t.maxFeePerGas, t.maxPriorityFeePerGas])).toEqual(
      [original, cancelA, cancelB].map((t, i) => [
        i === 0 ? 'original' : 'cancel',
        t?.hash,
        t?.maxFeePerGas.toString(),
        t?.maxPriorityFeePerGas.toString(),
      ]),
    );
    expect([...a.store.firstPut.values(), ...b.store.firstPut.values()]).toEqual([
      { kind: 'original', knownToNode: false },
      { kind: 'cancel', knownToNode: false },
      { kind: 'cancel', knownToNode: false },
    ]);

    await rpc(b.ctx.publicClient, 'evm_mine');
    const { r: done } = await resolveFresh(chain.ctxFor(KEY), file, 'x-1');
    expect(done).toMatchObject({ status: 'cancelled', cancelTxHash: cancelB?.hash, filledSizeBase: '0' });
    expect(done.spend?.state).toBe('released');
    expect(await counter()).toBe(0n);
  });

  it("a speed-up is recorded with its fees; a restarted process's cancel outbids it, and the order is cancelled, not filled", async () => {
    const file = tmpFile();
    const a = processOn(chain.ctxFor(KEY), file);
    const r = await stuckOrder(a, 'x-2', reverter);
    const nonce = r.nonce as number;
    const sped = await speedUpByNonce(a.sender, a.store, r, { hash: r.txHash as Hex, nonce }).catch((e) => e);
    expect(sped).toBeInstanceOf(NotConfirmedError);
    const speedUp = await poolAt(a.ctx, nonce);
    expect(speedUp?.hash).not.toBe(r.txHash);
    expect((await onDisk(file, 'x-2')).nonceTxs?.map((t) => [t.kind, t.hash, t.maxFeePerGas])).toEqual([
      ['original', r.txHash, r.maxFeePerGas],
      ['speed-up', speedUp?.hash, speedUp?.maxFeePerGas.toString()],
    ]);
    // the record still tracks the order's transaction; the speed-up is one of its transactions
    expect(r.txHash).not.toBe(speedUp?.hash);

    const b = processOn(chain.ctxFor(KEY), file);
    const rb = (await b.store.get('x-2')) as OnChainOrderRecord;
    expect(
      await replaceByNonce(b.sender, b.store, rb, { hash: rb.txHash as Hex, nonce }).catch((e) => e),
    ).toBeInstanceOf(NotConfirmedError);
    const cancel = await poolAt(b.ctx, nonce);
    expect(cancel?.hash).toBe(rb.cancelTxHash);
    expect(cancel?.maxFeePerGas).toBeGreaterThanOrEqual(bumped(speedUp?.maxFeePerGas as bigint));
    expect(cancel?.maxPriorityFeePerGas).toBeGreaterThanOrEqual(
      bumped(speedUp?.maxPriorityFeePerGas as bigint),
    );

    await rpc(b.ctx.publicClient, 'evm_mine');
    const { r: done, receipts } = await resolveFresh(chain.ctxFor(KEY), file, 'x-2');
    expect(receipts).toEqual([]);
    expect(done).toMatchObject({ status: 'cancelled', cancelTxHash: cancel?.hash, filledSizeBase: '0' });
    expect(done.spend?.state).toBe('released');
    expect(await counter()).toBe(0n);
  });

  it('a restarted process cannot replace a cancel already at the cap: refused before signing, naming that cancel; nothing stored, the pool unchanged', async () => {
    // base fee 0.1 gwei, cap 0.8 gwei: the order goes at the first-send ceiling (0.711 gwei), the cancel at
    // the cap; nothing can outbid it under the cap.
    await rpc(chain.ctxFor(KEY).publicClient, 'anvil_setNextBlockBaseFeePerGas', [
      `0x${parseGwei('0.1').toString(16)}`,
    ]);
    await rpc(chain.ctxFor(KEY).publicClient, 'evm_mine');
    const file = tmpFile();
    const a = processOn(chain.ctxFor(KEY), file, { cap: 0.8 });
    const r = await stuckOrder(a, 'x-3', reverter);
    const nonce = r.nonce as number;
    expect(
      await replaceByNonce(a.sender, a.store, r, { hash: r.txHash as Hex, nonce }).catch((e) => e),
    ).toBeInstanceOf(NotConfirmedError);
    const cancelA = await poolAt(a.ctx, nonce);
    expect(cancelA?.maxFeePerGas).toBe(parseGwei('0.8'));
    const before = readFileSync(file, 'utf8');

    const b = processOn(chain.ctxFor(KEY), file, { cap: 0.8 });
    const rb = (await b.store.get('x-3')) as OnChainOrderRecord;
    for (const attempt of [
      () => replaceByNonce(b.sender, b.store, rb, { hash: rb.txHash as Hex, nonce }),
      () => speedUpByNonce(b.sender, b.store, rb, { hash: rb.txHash as Hex, nonce }, bump(reverter)),
    ]) {
      const err = await attempt().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RateLimitError);
      const e = err as RateLimitError;
      expect(e.outcome).toBe('not-sent');
      expect(e.message).toContain(
        `(12.5 % over the fee cap of ${cancelA?.hash}, the highest sent at that nonce that the node has: 0.8 gwei) needs a maxFeePerGas of 0.9 gwei, above the cap maxFeePerGasGwei 0.8 gwei; not sent: the transaction at that nonce (${cancelA?.hash}) already has a fee cap of 0.8 gwei, above 8/9 of the cap`,
      );
      expect(e.message).toMatch(
        /cannot be replaced again under the cap .*it can be included while the base fee is at most 0\.8 gwei .*and is reconciled by hash; to replace it, raise maxFeePerGasGwei to at least 0\.9 gwei$/,
      );
      expect(e.details).toMatchObject({
        replacesTxHash: cancelA?.hash,
        replacesMaxFeePerGasGwei: '0.8',
        stuckAtCap: true,
        nonce,
      });
    }
    expect(readFileSync(file, 'utf8')).toBe(before);
    expect(rb.cancelTxHash).toBe(cancelA?.hash);
    expect(await poolAt(b.ctx, nonce)).toEqual(cancelA);

    // The cancel mines (the base fee is under the cap): the order is cancelled.
    await rpc(b.ctx.publicClient, 'evm_mine');
    const { r: done } = await resolveFresh(chain.ctxFor(KEY), file, 'x-3');
    expect(done).toMatchObject({ status: 'cancelled', cancelTxHash: cancelA?.hash });
    expect(await counter()).toBe(0n);
  });

  it('a record written before the fees of a cancel were kept still loads; a restarted cancel outbids that cancel (its fees read from the node)', async () => {
    const file = tmpFile();
    const a = processOn(chain.ctxFor(KEY), file);
    const r = await stuckOrder(a, 'x-4', reverter);
    const nonce = r.nonce as number;
    // The earlier version's cancelOrder: only the cancel's hash reached the record.
    let legacyCancel: Hex | undefined;
    const err = await a.sender
      .replace({ hash: r.txHash as Hex, nonce }, 'cancel', {
        onSigned: (i) => {
          legacyCancel = i.hash;
        },
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotConfirmedError);
    const cancelA = await poolAt(a.ctx, nonce);
    expect(cancelA?.hash).toBe(legacyCancel);
    const { nonceTxs: _dropped, ...legacy } = r;
    writeFileSync(file, JSON.stringify({ 'x-4': { ...legacy, cancelTxHash: legacyCancel } }, null, 1));

    const b = processOn(chain.ctxFor(KEY), file);
    const rb = (await b.store.get('x-4')) as OnChainOrderRecord;
    expect(rb.nonceTxs).toBeUndefined();
    const loaded = structuredClone(rb);
    expect(
      await replaceByNonce(b.sender, b.store, rb, { hash: rb.txHash as Hex, nonce }).catch((e) => e),
    ).toBeInstanceOf(NotConfirmedError);
    // the old record was read as what it names: the order's transaction with the record's fees, the
    // cancel without fees
    expect(recordedNonceTxs(loaded)).toEqual([
      {
        kind: 'original',
        hash: r.txHash,
        maxFeePerGas: r.maxFeePerGas,
        maxPriorityFeePerGas: r.maxPriorityFeePerGas,
      },
      { kind: 'cancel', hash: legacyCancel },
    ]);
    const cancelB = await poolAt(b.ctx, nonce);
    expect(cancelB?.hash).toBe(rb.cancelTxHash);
    expect(cancelB?.maxFeePerGas).toBeGreaterThanOrEqual(bumped(cancelA?.maxFeePerGas as bigint));
    // the first write carries the old entries over
    expect((await onDisk(file, 'x-4')).nonceTxs?.map((t) => [t.kind, t.hash, t.maxFeePerGas])).toEqual([
      ['original', r.txHash, r.maxFeePerGas],
      ['cancel', legacyCancel, undefined],
      ['cancel', cancelB?.hash, cancelB?.maxFeePerGas.toString()],
    ]);

    await rpc(b.ctx.publicClient, 'evm_mine');
    const { r: done } = await resolveFresh(chain.ctxFor(KEY), file, 'x-4');
    expect(done).toMatchObject({ status: 'cancelled', cancelTxHash: cancelB?.hash });
    expect(done.spend?.state).toBe('released');
  });

  it('an earlier cancel of the order that is mined (another node kept it, not the later one) resolves the order as cancelled by that cancel, not as failed or filled', async () => {
    const file = tmpFile();
    const a = processOn(chain.ctxFor(KEY), file);
    const r = await stuckOrder(a, 'x-5', reverter);
    const nonce = r.nonce as number;
    await replaceByNonce(a.sender, a.store, r, { hash: r.txHash as Hex, nonce }).catch(() => undefined);
    const first = r.cancelTxHash as Hex;
    const raw = await rpc<Hex>(a.ctx.publicClient, 'eth_getRawTransactionByHash', [first]);
    // cancelOrder again (the first one timed out): a second cancel replaces the first in the pool
    await replaceByNonce(a.sender, a.store, r, { hash: r.txHash as Hex, nonce }).catch(() => undefined);
    const second = r.cancelTxHash as Hex;
    expect(second).not.toBe(first);
    expect((await poolAt(a.ctx, nonce))?.hash).toBe(second);
    // The newer cancel never makes it into a block; the older one does (as from another node's pool).
    await rpc(a.ctx.publicClient, 'anvil_dropTransaction', [second]);
    await rpc(a.ctx.publicClient, 'eth_sendRawTransaction', [raw]);
    await rpc(a.ctx.publicClient, 'evm_mine');
    expect((await a.ctx.publicClient.getTransactionReceipt({ hash: first })).status).toBe('success');

    const { r: done, receipts } = await resolveFresh(chain.ctxFor(KEY), file, 'x-5');
    expect(receipts).toEqual([]);
    expect(done).toMatchObject({ status: 'cancelled', cancelTxHash: first, txHash: r.txHash });
    expect(done.error).toContain(first);
    expect(done.spend?.state).toBe('released');
    expect(await counter()).toBe(0n);
  });

  it('a malformed transaction entry on the record refuses a replacement (not sent), naming the order and the entry', async () => {
    const file = tmpFile();
    const a = processOn(chain.ctxFor(KEY), file);
    const r = await stuckOrder(a, 'x-6', reverter);
    const nonce = r.nonce as number;
    const pool = await poolAt(a.ctx, nonce);
    const cases: [unknown, RegExp][] = [
      [
        { kind: 'cancel', hash: `0x${'12'.repeat(32)}`, maxFeePerGas: '1e9', maxPriorityFeePerGas: '1' },
        /nonceTxs\[1\]\.maxFeePerGas "1e9" is not a whole number of wei/,
      ],
      [
        { kind: 'cancel', hash: `0x${'12'.repeat(32)}`, maxFeePerGas: '5' },
        /nonceTxs\[1\] has one of maxFeePerGas and maxPriorityFeePerGas without the other/,
      ],
      [
        { kind: 'cancel', hash: 'nope', maxFeePerGas: '5', maxPriorityFeePerGas: '1' },
        /nonceTxs\[1\]\.hash "nope" is not a transaction hash/,
      ],
      [
        { kind: 'bump', hash: `0x${'12'.repeat(32)}` },
        /nonceTxs\[1\]\.kind "bump" is not original, speed-up or cancel/,
      ],
      [null, /nonceTxs\[1\] is not an object/],
    ];
    for (const [entry, message] of cases) {
      const bad = { ...r, nonceTxs: [...(r.nonceTxs ?? []), entry] } as OnChainOrderRecord;
      const err = await replaceByNonce(a.sender, a.store, bad, { hash: r.txHash as Hex, nonce }).catch(
        (e) => e,
      );
      expect(err, JSON.stringify(entry)).toBeInstanceOf(NonceError);
      expect((err as NonceError).outcome).toBe('not-sent');
      expect((err as NonceError).retryable).toBe(false);
      expect((err as NonceError).message).toMatch(
        /cannot replace the transaction of order x-6 at nonce \d+: its record's/,
      );
      expect((err as NonceError).message).toMatch(message);
      expect(bad.cancelTxHash).toBeUndefined();
    }
    expect(await poolAt(a.ctx, nonce)).toEqual(pool);
    // A speed-up of another call is not the order's: refused.
    const other = { to: reverter, data: encodeFunctionData({ abi: abi(), functionName: 'counter' }) };
    await expect(
      speedUpByNonce(a.sender, a.store, r, { hash: r.txHash as Hex, nonce }, other),
    ).rejects.toThrow(XhedgeError);
    await expect(
      speedUpByNonce(a.sender, a.store, r, { hash: r.txHash as Hex, nonce }, other),
    ).rejects.toThrow(/the request given is not the order's call/);
    expect(await poolAt(a.ctx, nonce)).toEqual(pool);
  });

  it('a cancel recorded but never broadcast (a crash after its write-ahead) is not outbid: under the cap, a restarted cancel replaces the original', async () => {
    // base fee 0.1 gwei, cap 0.8 gwei: the order goes at the first-send ceiling (0.711 gwei); the cancel
    // recorded at the cap never reaches the node. Outbidding it would need 0.9 gwei, above the cap.
    await rpc(chain.ctxFor(KEY).publicClient, 'anvil_setNextBlockBaseFeePerGas', [
      `0x${parseGwei('0.1').toString(16)}`,
    ]);
    await rpc(chain.ctxFor(KEY).publicClient, 'evm_mine');
    // (that block may hold what an earlier test left in the pool)
    const counted = await counter();
    const file = tmpFile();
    const a = processOn(chain.ctxFor(KEY), file, { cap: 0.8 });
    const r = await stuckOrder(a, 'x-7', reverter);
    const nonce = r.nonce as number;
    const original = await poolAt(a.ctx, nonce);
    expect(original?.hash).toBe(r.txHash);
    const put = a.store.put.bind(a.store);
    a.store.put = async (id, rec) => {
      await put(id, rec);
      if (rec.nonceTxs?.at(-1)?.kind === 'cancel') throw new Error('simulated crash before the broadcast');
    };
    await expect(replaceByNonce(a.sender, a.store, r, { hash: r.txHash as Hex, nonce })).rejects.toThrow(
      /simulated crash/,
    );
    const phantom = r.cancelTxHash as Hex;
    expect(await poolAt(a.ctx, nonce)).toEqual(original);
    expect((await onDisk(file, 'x-7')).nonceTxs?.map((t) => [t.kind, t.hash, t.maxFeePerGas])).toEqual([
      ['original', r.txHash, original?.maxFeePerGas.toString()],
      ['cancel', phantom, parseGwei('0.8').toString()],
    ]);

    // Process B (a restart): its cancel is taken by the node and replaces the original.
    const b = processOn(chain.ctxFor(KEY), file, { cap: 0.8 });
    const rb = (await b.store.get('x-7')) as OnChainOrderRecord;
    const err = await replaceByNonce(b.sender, b.store, rb, { hash: rb.txHash as Hex, nonce }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(NotConfirmedError);
    const cancelB = await poolAt(b.ctx, nonce);
    expect(cancelB?.hash).toBe(rb.cancelTxHash);
    expect(cancelB?.maxFeePerGas).toBeGreaterThanOrEqual(bumped(original?.maxFeePerGas as bigint));
    expect(cancelB?.maxFeePerGas).toBeLessThanOrEqual(parseGwei('0.8'));
    // (the same bytes as the cancel that never went out, when signed at the same fees: deterministic)

    await rpc(b.ctx.publicClient, 'evm_mine');
    const { r: done } = await resolveFresh(chain.ctxFor(KEY), file, 'x-7');
    expect(done).toMatchObject({ status: 'cancelled', cancelTxHash: cancelB?.hash, filledSizeBase: '0' });
    expect(await counter()).toBe(counted);
  });

  it("writers holding copies of one record do not drop each other's transactions: two cancels at once, then a reconcile that read the record before them", async () => {
    const file = tmpFile();
    const a = processOn(chain.ctxFor(KEY), file);
    const r = await stuckOrder(a, 'x-8', reverter);
    const nonce = r.nonce as number;
    const stale = (await a.store.get('x-8')) as OnChainOrderRecord;
    const r1 = (await a.store.get('x-8')) as OnChainOrderRecord;
    const r2 = (await a.store.get('x-8')) as OnChainOrderRecord;
    const results = await Promise.allSettled([
      replaceByNonce(a.sender, a.store, r1, { hash: r1.txHash as Hex, nonce }),
      replaceByNonce(a.sender, a.store, r2, { hash: r2.txHash as Hex, nonce }),
    ]);
    for (const x of results) {
      expect(x.status === 'rejected' ? x.reason : undefined).toBeInstanceOf(NotConfirmedError);
    }
    const [first, second] = [r1.cancelTxHash, r2.cancelTxHash];
    expect(new Set([first, second, r.txHash]).size).toBe(3);
    // every transaction at the nonce, in the order it was written (each before its broadcast)
    const expected = [...a.store.firstPut.entries()].map(([hash, t]) => [t.kind, hash]);
    expect(expected[0]).toEqual(['original', r.txHash]);
    expect(
      expected.slice(1).map(([kind, hash]) => [kind, new Set([first, second]).has(hash as Hex)]),
    ).toEqual([
      ['cancel', true],
      ['cancel', true],
    ]);
    // the later cancel replaced the earlier one in the pool
    const pooled = (await poolAt(a.ctx, nonce))?.hash;
    expect(pooled).toBe(expected[2]?.[1]);
    const onDiskNow = await onDisk(file, 'x-8');
    expect(onDiskNow.nonceTxs?.map((t) => [t.kind, t.hash])).toEqual(expected);
    expect(onDiskNow.cancelTxHash).toBe(pooled);

    // A reconcile that read the record before either cancel writes it back: both stay, and the record
    // still names the later cancel.
    stale.updatedAtMs += 1;
    stale.error = 'reconciled: not mined yet';
    await a.store.put('x-8', stale);
    const after = await onDisk(file, 'x-8');
    expect(after.nonceTxs?.map((t) => [t.kind, t.hash])).toEqual(expected);
    expect(after.cancelTxHash).toBe(pooled);
    expect(after.error).toBe('reconciled: not mined yet');

    // A restarted process outbids the one in the pool (the later cancel), and it resolves as cancelled.
    const b = processOn(chain.ctxFor(KEY), file);
    const rb = (await b.store.get('x-8')) as OnChainOrderRecord;
    expect(
      await replaceByNonce(b.sender, b.store, rb, { hash: rb.txHash as Hex, nonce }).catch((e) => e),
    ).toBeInstanceOf(NotConfirmedError);
    expect((await poolAt(b.ctx, nonce))?.hash).toBe(rb.cancelTxHash);
    await rpc(b.ctx.publicClient, 'evm_mine');
    const { r: done } = await resolveFresh(chain.ctxFor(KEY), file, 'x-8');
    expect(done).toMatchObject({ status: 'cancelled', cancelTxHash: rb.cancelTxHash });
    expect(await counter()).toBe(0n);
  });
});

describe('a node that keeps no old state (anvil --prune-history)', () => {
  let anvil: AnvilInstance;
  let reverter: Address;
  const ctxOn = () =>
    createEvmContext({
      venue: 'test-evm',
      chain: 'evm:31337',
      rpcUrls: [anvil.rpcUrl],
      privateKey: KEY,
      pollingIntervalMs: 50,
    });
  beforeAll(async () => {
    anvil = await startAnvil({ args: ['--prune-history', '8'] });
    reverter = await deployContract(ctxOn(), contracts.Reverter!);
    await rpc(ctxOn().publicClient, 'evm_setAutomine', [false]);
  });
  afterAll(async () => {
    await anvil?.stop();
  });

  it("a restarted process resolves the order from its recorded speed-up's receipt: no state needed, no block scan", async () => {
    const file = tmpFile();
    const a = processOn(ctxOn(), file);
    const r = await stuckOrder(a, 'p-1', reverter);
    const nonce = r.nonce as number;
    expect(
      await speedUpByNonce(a.sender, a.store, r, { hash: r.txHash as Hex, nonce }).catch((e) => e),
    ).toBeInstanceOf(NotConfirmedError);
    const speedUp = (await poolAt(a.ctx, nonce))?.hash as Hex;
    await rpc(a.ctx.publicClient, 'evm_mine');
    await rpc(a.ctx.publicClient, 'anvil_mine', ['0x40']);
    // the state of the block that used the nonce is gone; a restarted process may not scan blocks
    const { r: done, receipts } = await resolveFresh(ctxOn(), file, 'p-1', { nonceScanMaxBlocks: 0 });
    expect(done.status).toBe('filled');
    expect(done.txHash).toBe(speedUp);
    expect(receipts.map((x) => x.transactionHash)).toEqual([speedUp]);
    expect(done.spend?.state).toBe('committed');
  });
});
