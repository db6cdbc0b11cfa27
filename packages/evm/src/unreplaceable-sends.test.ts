import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ManualClock } from '@xhedge/core';
import { NotConfirmedError, RateLimitError } from '@xhedge/venue';
import { type Address, encodeFunctionData, type Hex, parseGwei } from 'viem';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ANVIL_DEV_KEYS } from './anvil.ts';
import { SpendCaps } from './approvals.ts';
import type { EvmContext } from './clients.ts';
import { deployContract, rpc } from './deploy.ts';
import { FeeCapError, GasPolicy } from './gas.ts';
import {
  applySentTxStatus,
  type OnChainOrderRecord,
  recordedNonceTxs,
  replaceByNonce,
  sendRecorded,
  unreplaceableNonceTxs,
  venueErrorMapper,
} from './onchain-orders.ts';
import { type CompiledContract, compileSolidity, EVM_TEST_CONTRACTS_URL } from './solc.ts';
import { JsonFileOrderStore } from './store.ts';
import { type LocalTestChain, startLocalTestChain } from './testing.ts';
import { TxSender } from './tx.ts';

// A first send signed up to the fee cap (the base fee between about 79 % and 89 % of the cap: the next
// block's can be above 8/9 of the cap, not above the cap) leaves no room for a replacement under the cap:
// if the base fee then rises past it, the kill switch's cancel is refused (`stuckAtCap`) and the account's
// other sends wait behind its nonce. Such a send goes only when the caller allows it (risk-reducing
// orders), and the order record keeps, per transaction at the nonce, whether it was replaceable under the
// cap. Real anvil; records in a JSON file each "process" opens with its own store and sender.

let chain: LocalTestChain;
let ctx: EvmContext;
let contracts: Record<string, CompiledContract>;
let reverter: Address;
const TOKEN = `0x${'ab'.repeat(20)}` as Address;

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
const tmpFile = () => path.join(mkdtempSync(path.join(tmpdir(), 'xhedge-unreplaceable-')), 'orders.json');

/** Makes the latest block's base fee `wei` (the next block's is set, then one is mined). */
async function setBaseFee(wei: bigint) {
  await rpc(ctx.publicClient, 'anvil_setNextBlockBaseFeePerGas', [`0x${wei.toString(16)}`]);
  await rpc(ctx.publicClient, 'evm_mine');
  expect((await ctx.publicClient.getBlock()).baseFeePerGas).toBe(wei);
}

function newRecord(cid: string, reduceOnly: boolean, nowMs: number): OnChainOrderRecord {
  return {
    clientOrderId: cid,
    instrument: 'ETH-USD:PERP',
    side: 'sell',
    sizeBase: '1',
    reduceOnly,
    orderType: 'market',
    status: 'queued',
    filledSizeBase: '0',
    createdAtMs: nowMs,
    updatedAtMs: nowMs,
  };
}

/** The store each "process" holds over a file: the next process on the file replaces it. */
const openStores = new Map<string, JsonFileOrderStore<OnChainOrderRecord>>();

/**
 * One "process": its own sender (fee cap `cap` gwei), store over `file`, clock, spend caps. The previous
 * process on `file` is gone (its store closed): one writer per order store file.
 */
function processOn(file: string, cap: number) {
  openStores.get(file)?.close();
  const store = new JsonFileOrderStore<OnChainOrderRecord>(file);
  openStores.set(file, store);
  const clock = new ManualClock(Date.now());
  const sender = new TxSender({
    ctx,
    abi: abi(),
    receiptTimeoutMs: 300,
    gasPolicy: new GasPolicy({ maxFeePerGasGwei: cap }),
  });
  const errors = venueErrorMapper('test-evm', abi(), ctx);
  const caps = new SpendCaps({ venue: 'test-evm', caps: { [TOKEN]: 10_000n }, records: store });
  const deps = { sender, store, clock, wrap: (e: unknown, cid: string) => errors.wrap(e, cid) };
  return { store, clock, sender, errors, caps, deps };
}

/** The account's nonces as the node counts them, and what its pool holds. */
async function chainState() {
  const address = ctx.account.address;
  const [latest, pending, pool] = await Promise.all([
    ctx.publicClient.getTransactionCount({ address, blockTag: 'latest' }),
    ctx.publicClient.getTransactionCount({ address, blockTag: 'pending' }),
    rpc<{ pending: Hex; queued: Hex }>(ctx.publicClient, 'txpool_status'),
  ]);
  return { latest, pending, pool: { pending: Number(pool.pending), queued: Number(pool.queued) } };
}

describe('a send that would leave no room for a replacement under the fee cap', () => {
  it('is refused before signing unless the caller allows it: not sent, retryable, nothing broadcast or recorded, the nonce unchanged on chain', async () => {
    // cap 9 gwei (first-send ceiling 8 gwei); latest base fee 7.5 gwei: the next block's can be 8.4375 gwei,
    // so a first send would be signed at the cap (9 gwei), and a cancel of it would need 10.125 gwei.
    await setBaseFee(parseGwei('7.5'));
    const file = tmpFile();
    const p = processOn(file, 9);
    const before = await chainState();
    expect(before.pool).toEqual({ pending: 0, queued: 0 });
    let signed = false;
    const r = newRecord('band-open', false, p.clock.nowMs());
    const err = await sendRecorded(p.deps, r, bump(), await p.caps.reserve(TOKEN, 100n, 'band-open')).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(FeeCapError);
    expect(err).toBeInstanceOf(RateLimitError);
    const e = err as FeeCapError;
    expect(e.outcome).toBe('not-sent');
    expect(e.retryable).toBe(true);
    expect(e.stuckAtCap).toBe(false);
    expect(e.clientOrderId).toBe('band-open');
    expect(e.message).toBe(
      "test-evm: a first send needs a maxFeePerGas of 8.4375 gwei (the next block's base fee can be 12.5 % above the latest's 7.5 gwei), above the first-send ceiling 8 gwei (8/9 of the cap maxFeePerGasGwei 9 gwei); it would be signed with a maxFeePerGas of 9 gwei, and a replacement of it (a speed-up or cancel, 12.5 % more: 10.125 gwei) would not fit under the cap, so if the base fee rose past it nothing could cancel it under the cap while it holds the account's nonce; not sent: only a risk-reducing send (allowUnreplaceableUnderCap) goes without room for a replacement; it goes once the latest base fee is at most 7.111111111 gwei, or now with maxFeePerGasGwei raised to at least 9.4921875 gwei",
    );
    expect(e.details).toMatchObject({
      reason: 'fee-cap',
      replaceableUnderCap: false,
      baseFeeGwei: '7.5',
      neededMaxFeePerGasGwei: '8.4375',
      signedMaxFeePerGasGwei: '9',
      replacementMaxFeePerGasGwei: '10.125',
      maxFeePerGasGwei: '9',
      sendsAtBaseFeeGwei: '7.111111111',
      roomyMaxFeePerGasGwei: '9.4921875',
    });
    // nothing signed, recorded or broadcast; the hold on the spend cap is let go
    expect(r.txHash).toBeUndefined();
    expect(await p.store.get('band-open')).toBeUndefined();
    expect(await p.caps.remaining(TOKEN)).toBe(10_000n);
    expect(await chainState()).toEqual(before);
    // the sender itself, urgent or not, with the option left out or false: the same
    for (const opts of [{ urgency: 'urgent' as const }, { allowUnreplaceableUnderCap: false }]) {
      const again = await p.sender
        .send(bump(), {
          ...opts,
          onSigned: () => {
            signed = true;
          },
        })
        .catch((x: unknown) => x);
      expect(again).toBeInstanceOf(FeeCapError);
      expect((again as FeeCapError).details?.replaceableUnderCap).toBe(false);
    }
    expect(signed).toBe(false);
    expect(await chainState()).toEqual(before);
    expect(await counter()).toBe(0n);

    // The base fee it names (7.111111111 gwei): the same order goes, signed at the first-send ceiling, and
    // its record says a replacement of it fits under the cap.
    await setBaseFee(parseGwei('7.111111111'));
    const ok = newRecord('band-open', false, p.clock.nowMs());
    await sendRecorded(p.deps, ok, bump(), await p.caps.reserve(TOKEN, 100n, 'band-open'));
    expect(ok.nonceTxs).toEqual([
      expect.objectContaining({
        kind: 'original',
        maxFeePerGas: parseGwei('8').toString(),
        replaceableUnderCap: true,
      }),
    ]);
    expect(unreplaceableNonceTxs(ok)).toEqual([]);
    // and the cap it names sends it now, with room for a replacement
    await setBaseFee(parseGwei('7.5'));
    const roomy = processOn(file, 9.4921875);
    const r2 = newRecord('band-roomy', false, roomy.clock.nowMs());
    await sendRecorded(roomy.deps, r2, bump());
    expect(r2.nonceTxs?.[0]?.replaceableUnderCap).toBe(true);
    expect(await counter()).toBe(2n);
  });

  it('goes for a risk-reducing order that allows it; its record says it is not replaceable under the cap, also to another process that reloads it, whose cancel is refused as stuck at the cap at error level', async () => {
    await setBaseFee(parseGwei('7.5'));
    await rpc(ctx.publicClient, 'evm_setAutomine', [false]);
    const file = tmpFile();
    const a = processOn(file, 9);
    const before = await chainState();
    const r = newRecord('band-reduce', true, a.clock.nowMs());
    const sent = await sendRecorded(a.deps, r, bump(), await a.caps.reserve(TOKEN, 100n, 'band-reduce'), {
      allowUnreplaceableUnderCap: true,
    }).catch((e: unknown) => e);
    // broadcast (not mined: automine is off), signed at the cap
    expect(sent).toBeInstanceOf(NotConfirmedError);
    const hash = r.txHash as Hex;
    const nonce = r.nonce as number;
    expect(nonce).toBe(before.latest);
    expect(await chainState()).toMatchObject({ latest: nonce, pending: nonce + 1 });
    expect((await ctx.publicClient.getTransaction({ hash })).maxFeePerGas).toBe(parseGwei('9'));
    expect(r.nonceTxs).toEqual([
      expect.objectContaining({
        kind: 'original',
        hash,
        maxFeePerGas: parseGwei('9').toString(),
        replaceableUnderCap: false,
      }),
    ]);
    // in the file as written
    const raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, OnChainOrderRecord>;
    expect(raw['band-reduce']?.nonceTxs?.[0]?.replaceableUnderCap).toBe(false);

    // Another process (a restart, another worker) that signed nothing reloads the record: it knows.
    const b = processOn(file, 9);
    const loaded = (await b.store.get('band-reduce')) as OnChainOrderRecord;
    expect(loaded.nonceTxs?.[0]).toMatchObject({ hash, replaceableUnderCap: false });
    expect(unreplaceableNonceTxs(loaded).map((t) => t.hash)).toEqual([hash]);
    // Its cancel by nonce (the kill switch's) cannot fit under the cap: refused, logged at error level,
    // naming the nonce, the transaction there and the cap that would replace it.
    const refused = await replaceByNonce(b.sender, b.store, loaded, { hash, nonce }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(FeeCapError);
    const f = refused as FeeCapError;
    expect(f.stuckAtCap).toBe(true);
    expect(f.logLevel).toBe('error');
    expect(f.outcome).toBe('not-sent');
    expect(f.message).toContain(`a cancel of ${hash} at nonce ${nonce}`);
    expect(f.message).toContain(`the transaction at that nonce (${hash}) already has a fee cap of 9 gwei`);
    expect(f.message).toMatch(/to replace it, raise maxFeePerGasGwei to at least 10\.125 gwei$/);
    expect(f.details).toMatchObject({
      stuckAtCap: true,
      logLevel: 'error',
      nonce,
      replacesTxHash: hash,
      neededMaxFeePerGasGwei: '10.125',
      maxFeePerGasGwei: '9',
      clientOrderId: 'band-reduce',
    });
    // nothing more at the nonce
    expect(recordedNonceTxs((await b.store.get('band-reduce')) as OnChainOrderRecord)).toHaveLength(1);
    expect(await chainState()).toMatchObject({ latest: nonce, pending: nonce + 1 });
    // A refusal that is not stuck at the cap stays at warn level.
    expect(new FeeCapError({ venue: 'v', message: 'm' }).logLevel).toBe('warn');

    // It mines while the base fee is at most its fee cap: the record resolves from it.
    await rpc(ctx.publicClient, 'evm_mine');
    await applySentTxStatus(
      { sender: b.sender, errors: b.errors, clock: b.clock, spendCaps: b.caps },
      loaded,
      hash,
      (x) => {
        x.status = 'filled';
      },
    );
    expect(loaded.status).toBe('filled');
    expect(await counter()).toBe(1n);
  });

  it('an order record written before replaceableUnderCap was kept still loads: unknown, read as replaceable; its cancel goes under the cap and is recorded with the flag', async () => {
    await setBaseFee(parseGwei('0.1'));
    await rpc(ctx.publicClient, 'evm_setAutomine', [false]);
    const file = tmpFile();
    // cap 0.8 gwei: the order's transaction is signed at the first-send ceiling 0.711111111 gwei
    const a = processOn(file, 0.8);
    const r = newRecord('old-1', false, a.clock.nowMs());
    expect(await sendRecorded(a.deps, r, bump()).catch((e: unknown) => e)).toBeInstanceOf(NotConfirmedError);
    const hash = r.txHash as Hex;
    const nonce = r.nonce as number;
    // As an older version wrote it: no replaceableUnderCap on its nonceTxs; and a record of the oldest
    // shape (txHash and fees only, no nonceTxs) beside it.
    const raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, Record<string, unknown>>;
    const rec = raw['old-1'] as { nonceTxs: Record<string, unknown>[] };
    for (const t of rec.nonceTxs) delete t.replaceableUnderCap;
    raw['old-0'] = {
      ...newRecord('old-0', false, 1),
      status: 'outcome-unknown',
      txHash: `0x${'11'.repeat(32)}`,
      nonce: 999,
      maxFeePerGas: '1000',
      maxPriorityFeePerGas: '10',
    };
    writeFileSync(file, JSON.stringify(raw));

    const b = processOn(file, 0.8);
    expect((await b.store.list()).map((x) => x.clientOrderId).sort()).toEqual(['old-0', 'old-1']);
    const loaded = (await b.store.get('old-1')) as OnChainOrderRecord;
    expect(loaded.nonceTxs?.[0]).toMatchObject({ hash, kind: 'original' });
    expect(loaded.nonceTxs?.[0]?.replaceableUnderCap).toBeUndefined();
    expect(unreplaceableNonceTxs(loaded)).toEqual([]);
    const oldest = (await b.store.get('old-0')) as OnChainOrderRecord;
    expect(recordedNonceTxs(oldest)).toEqual([
      { kind: 'original', hash: `0x${'11'.repeat(32)}`, maxFeePerGas: '1000', maxPriorityFeePerGas: '10' },
    ]);
    expect(unreplaceableNonceTxs(oldest)).toEqual([]);

    // The cancel by nonce from the reloaded record: 12.5 % over 0.711111111 gwei fits under the cap (signed at
    // the cap), and its entry says no further replacement fits; the old entry is left as it was.
    const cancel = await replaceByNonce(b.sender, b.store, loaded, { hash, nonce }).catch((e: unknown) => e);
    expect(cancel).toBeInstanceOf(NotConfirmedError);
    const stored = (await b.store.get('old-1')) as OnChainOrderRecord;
    expect(stored.nonceTxs).toHaveLength(2);
    expect(stored.nonceTxs?.[0]?.replaceableUnderCap).toBeUndefined();
    expect(stored.nonceTxs?.[1]).toMatchObject({
      kind: 'cancel',
      hash: stored.cancelTxHash,
      maxFeePerGas: parseGwei('0.8').toString(),
      replaceableUnderCap: false,
    });
    expect(unreplaceableNonceTxs(stored).map((t) => t.kind)).toEqual(['cancel']);
    await rpc(ctx.publicClient, 'evm_mine');
    await applySentTxStatus(
      { sender: b.sender, errors: b.errors, clock: b.clock, spendCaps: b.caps },
      stored,
      hash,
      (x) => {
        x.status = 'filled';
      },
    );
    expect(stored.status).toBe('cancelled');
    expect(await counter()).toBe(0n);
  });
});
