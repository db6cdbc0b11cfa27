import * as nodeFs from 'node:fs';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { OrderStatus } from '@xhedge/core';
import { describe, expect, it } from 'vitest';
import { fillsFromRecords, type OnChainOrderRecord } from './onchain-orders.ts';
import { JsonFileOrderStore, type OrderStoreFs } from './store.ts';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 0, 1);
const hash = (n: number, salt: number) => `0x${(n * 7919 + salt).toString(16).padStart(64, '0')}` as const;

/** A record of about 1.1 KB, like a GMX/Lyra order that was sent and replaced once. */
function rec(cid: string, n: number, status: OrderStatus, updatedAtMs: number): OnChainOrderRecord {
  return {
    clientOrderId: cid,
    instrument: 'ETH-USD:PERP',
    side: n % 2 ? 'buy' : 'sell',
    sizeBase: '0.125',
    reduceOnly: false,
    orderType: 'market',
    status,
    txHash: hash(n, 1),
    nonce: n,
    maxFeePerGas: '2000000000',
    maxPriorityFeePerGas: '1000000',
    txCallDigest: hash(n, 2),
    nonceTxs: [
      {
        kind: 'original',
        hash: hash(n, 1),
        maxFeePerGas: '2000000000',
        maxPriorityFeePerGas: '1000000',
        gasLimit: '900000',
        signedAtMs: updatedAtMs - 5000,
        replaceableUnderCap: true,
      },
      {
        kind: 'speed-up',
        hash: hash(n, 3),
        maxFeePerGas: '2250000000',
        maxPriorityFeePerGas: '1125000',
        gasLimit: '900000',
        signedAtMs: updatedAtMs - 2000,
        replaceableUnderCap: true,
      },
    ],
    filledSizeBase: status === 'filled' ? '0.125' : '0',
    ...(status === 'filled' ? { avgFillPriceUsd: '3123.45', feeUsd: 0.39, gasUsd: 0.02 } : {}),
    spend: {
      token: '0xaf88d065e77c8cC2239327C5EDb3A432268e5831',
      amountBase: '400000000',
      atMs: updatedAtMs - 6000,
      state: 'committed',
    },
    createdAtMs: updatedAtMs - 6000,
    updatedAtMs,
  };
}

const tmpFile = () => path.join(mkdtempSync(path.join(tmpdir(), 'xhedge-compact-')), 'gmx-orders.json');
const archiveOf = (file: string) => file.replace(/\.json$/, '.archive.jsonl');
/** Writes `records` as the store (before compaction existed) wrote them. */
function writeOldFile(file: string, records: OnChainOrderRecord[]): void {
  writeFileSync(file, JSON.stringify(Object.fromEntries(records.map((r) => [r.clientOrderId, r])), null, 1));
}
const archiveLines = (file: string) =>
  readFileSync(archiveOf(file), 'utf8')
    .split('\n')
    .filter((l) => l.length > 0);

describe('JsonFileOrderStore compaction', () => {
  it('archives 10k old final records, keeps non-final ones however old, and answers get() from the archive', async () => {
    const file = tmpFile();
    const old = NOW - 40 * DAY;
    const finals: OnChainOrderRecord[] = [];
    const statuses: OrderStatus[] = ['filled', 'cancelled', 'rejected', 'failed'];
    for (let i = 0; i < 10_000; i++) finals.push(rec(`old-${i}`, i, statuses[i % 4] as OrderStatus, old + i));
    const stuck = rec('stuck-nonce', 20_001, 'outcome-unknown', NOW - 400 * DAY);
    const sent = rec('sent-long-ago', 20_002, 'sent', NOW - 400 * DAY);
    const recent = rec('recent-filled', 20_003, 'filled', NOW - 29 * DAY);
    writeOldFile(file, [...finals, stuck, sent, recent]);
    const before = statSync(file).size;

    const store = new JsonFileOrderStore<OnChainOrderRecord>(file, { nowMs: () => NOW });
    await store.put('new-1', rec('new-1', 30_000, 'queued', NOW));

    const after = statSync(file).size;
    expect(after).toBeLessThan(before / 5);
    expect(archiveLines(file)).toHaveLength(10_000);
    const live = (await store.list()).map((r) => r.clientOrderId).sort();
    expect(live).toEqual(['new-1', 'recent-filled', 'sent-long-ago', 'stuck-nonce']);

    // a fresh store (a restart) answers the same: archived ids from the archive, in full
    store.close();
    const reopened = new JsonFileOrderStore<OnChainOrderRecord>(file, { nowMs: () => NOW });
    expect(await reopened.get('old-4242')).toEqual(finals[4242]);
    expect(await reopened.get('old-0')).toEqual(finals[0]);
    expect(await reopened.get('stuck-nonce')).toEqual(stuck);
    expect((await reopened.list()).map((r) => r.clientOrderId).sort()).toEqual(live);
    // the live file holds a tombstone for each archived id
    const onDisk = JSON.parse(readFileSync(file, 'utf8'));
    expect(onDisk['old-7']).toEqual({
      clientOrderId: 'old-7',
      status: 'failed',
      updatedAtMs: old + 7,
      archivedAtMs: NOW,
    });
  }, 60_000);

  it('an archived client order id is still found, so it is never taken for a new order', async () => {
    const file = tmpFile();
    const filled = rec('reused', 1, 'filled', NOW - 40 * DAY);
    writeOldFile(file, [filled]);
    const store = new JsonFileOrderStore<OnChainOrderRecord>(file, { nowMs: () => NOW });
    expect(await store.compact()).toEqual({ archived: 1 });
    expect(await store.list()).toEqual([]);
    // the adapters refuse a reused id by finding its record (`placeOrder`: `store.get(cid)` → that order)
    expect(await store.get('reused')).toEqual(filled);
    // and its fill is still reported by id (the execution worker asks `fetchFills({ clientOrderId })`)
    const fills = await fillsFromRecords(
      'gmx',
      store,
      async (r) => r,
      (r) => r.txHash,
      { clientOrderId: 'reused' },
    );
    expect(fills).toMatchObject([{ clientOrderId: 'reused', sizeBase: '0.125', priceUsd: '3123.45' }]);
    // a put of an archived id merges over the archived record (a transaction recorded at its nonce is
    // kept) and makes it live again
    const again = structuredClone(filled);
    again.nonceTxs = [again.nonceTxs?.[0] as NonNullable<OnChainOrderRecord['nonceTxs']>[number]];
    again.updatedAtMs = NOW;
    await store.put('reused', again);
    expect((await store.list()).map((r) => r.clientOrderId)).toEqual(['reused']);
    store.close();
    const back = await new JsonFileOrderStore<OnChainOrderRecord>(file, { nowMs: () => NOW }).get('reused');
    expect(back?.nonceTxs?.map((t) => t.hash)).toEqual(filled.nonceTxs?.map((t) => t.hash));
  });

  it('keeps a filled option order live until its expiry is past the retention, and a recent spend', async () => {
    const file = tmpFile();
    const option = {
      ...rec('lyra-opt', 1, 'filled', NOW - 60 * DAY),
      instrument: 'ETH-USD:OPT:20251220:3000:C',
    };
    const optionExpired = {
      ...rec('lyra-opt-old', 2, 'filled', NOW - 90 * DAY),
      instrument: 'ETH-USD:OPT:20251120:3000:C',
    };
    const spentLater = rec('spent-later', 3, 'rejected', NOW - 40 * DAY);
    spentLater.spend = { ...(spentLater.spend as NonNullable<typeof spentLater.spend>), atMs: NOW - DAY };
    writeOldFile(file, [option, optionExpired, spentLater]);
    const store = new JsonFileOrderStore<OnChainOrderRecord>(file, { nowMs: () => NOW });
    expect(await store.compact()).toEqual({ archived: 1 });
    expect((await store.list()).map((r) => r.clientOrderId).sort()).toEqual(['lyra-opt', 'spent-later']);
  });

  it('compacts on put at most once per compactEveryMs', async () => {
    const file = tmpFile();
    let now = NOW;
    const store = new JsonFileOrderStore<OnChainOrderRecord>(file, {
      nowMs: () => now,
      finishedRetentionMs: 10 * DAY,
      compactEveryMs: 3_600_000,
    });
    await store.put('a', rec('a', 1, 'filled', NOW - 11 * DAY));
    expect(await store.list()).toEqual([]); // the first put looks (and archives what it just wrote)
    await store.put('b', rec('b', 2, 'cancelled', NOW - 11 * DAY));
    now += 3_599_999;
    await store.put('c', rec('c', 3, 'sent', NOW));
    expect((await store.list()).map((r) => r.clientOrderId).sort()).toEqual(['b', 'c']);
    now += 1;
    await store.put('c', rec('c', 3, 'sent', NOW));
    expect((await store.list()).map((r) => r.clientOrderId)).toEqual(['c']);
    expect(archiveLines(file).map((l) => JSON.parse(l).id)).toEqual(['a', 'b']);
  });

  it('a crash between the archive append and the live rewrite loses and duplicates nothing', async () => {
    const file = tmpFile();
    const finals = Array.from({ length: 50 }, (_, i) => rec(`f-${i}`, i, 'filled', NOW - 40 * DAY));
    const open = rec('open', 99, 'sent', NOW - 40 * DAY);
    writeOldFile(file, [...finals, open]);
    // the live rewrite's rename fails once: the archive was appended and fsynced, the live file is the old one
    let failRename = true;
    const fs: OrderStoreFs = {
      ...nodeFs,
      renameSync: (a, b) => {
        if (failRename) {
          failRename = false;
          throw Object.assign(new Error('simulated crash before the rename'), { code: 'EIO' });
        }
        nodeFs.renameSync(a, b);
      },
    };
    const crashing = new JsonFileOrderStore<OnChainOrderRecord>(file, { fs, nowMs: () => NOW });
    await expect(crashing.put('new', rec('new', 100, 'queued', NOW))).rejects.toThrow(/simulated crash/);
    expect(archiveLines(file)).toHaveLength(50);

    // after the restart: every record once, all live (the live file is the one from before)
    crashing.close();
    const restarted = new JsonFileOrderStore<OnChainOrderRecord>(file, { nowMs: () => NOW });
    const listed = (await restarted.list()).map((r) => r.clientOrderId);
    expect(listed).toHaveLength(51);
    expect(new Set(listed).size).toBe(51);
    expect(await restarted.get('f-7')).toEqual(finals[7]);

    // a line torn by a second crash mid-append is ended and skipped by the next append
    nodeFs.appendFileSync(archiveOf(file), '{"id":"f-1","archivedAtMs":1,"rec');
    await restarted.put('new', rec('new', 100, 'queued', NOW));
    expect((await restarted.list()).map((r) => r.clientOrderId).sort()).toEqual(['new', 'open']);
    restarted.close();
    const again = new JsonFileOrderStore<OnChainOrderRecord>(file, { nowMs: () => NOW });
    for (const [i, r] of finals.entries()) expect(await again.get(`f-${i}`)).toEqual(r);
    expect((await again.list()).map((r) => r.clientOrderId).sort()).toEqual(['new', 'open']);
  });

  it('loads a file written before compaction unchanged (records without the newer fields)', async () => {
    const file = tmpFile();
    // as an early adapter wrote it: no nonceTxs, no spend, no txCallDigest, a cancel by hash only
    const early = {
      'early-1': {
        clientOrderId: 'early-1',
        instrument: 'ETH-USD:PERP',
        side: 'buy',
        sizeBase: '1',
        reduceOnly: false,
        orderType: 'market',
        status: 'sent',
        txHash: hash(1, 1),
        nonce: 3,
        cancelTxHash: hash(1, 9),
        filledSizeBase: '0',
        createdAtMs: NOW - 400 * DAY,
        updatedAtMs: NOW - 400 * DAY,
      },
      'early-2': { txHash: '0x02' },
    };
    writeFileSync(file, JSON.stringify(early, null, 1));
    const store = new JsonFileOrderStore<Record<string, unknown>>(file, { nowMs: () => NOW });
    expect(await store.get('early-1')).toEqual(early['early-1']);
    expect(await store.get('early-2')).toEqual(early['early-2']);
    await store.put('x', { txHash: '0x03' });
    const reread = JSON.parse(readFileSync(file, 'utf8'));
    expect(reread).toEqual({ ...early, x: { txHash: '0x03' } });
    expect(nodeFs.existsSync(archiveOf(file))).toBe(false);
  });

  it('refuses a retention or interval that is not a number of milliseconds, naming it', () => {
    expect(() => new JsonFileOrderStore(tmpFile(), { finishedRetentionMs: Number.NaN })).toThrow(
      /finishedRetentionMs NaN/,
    );
    expect(() => new JsonFileOrderStore(tmpFile(), { finishedRetentionMs: 0 })).toThrow(
      /finishedRetentionMs 0/,
    );
    expect(() => new JsonFileOrderStore(tmpFile(), { compactEveryMs: -1 })).toThrow(/compactEveryMs -1/);
  });
});
