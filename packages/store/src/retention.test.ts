import { type HedgeIntent, ManualClock, ValidationError } from '@xhedge/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from './database.ts';
import { Ledger } from './ledger.ts';
import { SnapshotRetention, snapshotRetentionOptions } from './retention.ts';
import { closeTestDb, testBackends } from './test-backends.ts';

const backends = await testBackends();

const DAY = 86_400_000;
const MIN = 60_000;
/** The run clock's now: bucket-aligned, far from 0. */
const NOW = 1_000 * DAY;

interface Row {
  seq: number;
  asOfMs: number;
}

function intent(n: number, createdAtMs: number): HedgeIntent {
  return {
    id: `int_${String(n).padStart(24, '0')}`,
    planId: `plan_${n}`,
    underlying: 'ETH',
    venue: 'gmx',
    chain: 'evm:42161',
    instrument: 'ETH-USD:PERP',
    side: 'buy',
    sizeBase: '1.5',
    orderType: 'market',
    referencePriceUsd: 3000,
    reduceOnly: false,
    urgency: 'normal',
    reason: 'delta drifted',
    createdAtMs,
    dependsOn: [],
  };
}

/**
 * The rows a pass must keep, worked out here independently of the SQL: every row at or after
 * `fullBeforeMs`; the newest by seq; the last by (asOfMs, seq); the newest row at or before each intent's
 * time; and in [retainBeforeMs, fullBeforeMs) the last of each bucket.
 */
function expectedKept(
  rows: readonly Row[],
  intentsAtMs: readonly number[],
  o: { fullBeforeMs: number; retainBeforeMs: number; everyMs: number },
): number[] {
  const sorted = [...rows].sort((a, b) => a.asOfMs - b.asOfMs || a.seq - b.seq);
  const maxSeq = Math.max(...rows.map((r) => r.seq));
  const keep = (r: Row, next: Row | undefined): boolean => {
    if (r.asOfMs >= o.fullBeforeMs || r.seq === maxSeq || !next) return true;
    if (intentsAtMs.some((t) => t >= r.asOfMs && t < next.asOfMs)) return true;
    if (r.asOfMs < o.retainBeforeMs) return false;
    return next.asOfMs >= (Math.floor(r.asOfMs / o.everyMs) + 1) * o.everyMs;
  };
  const kept = sorted.filter((r, i) => keep(r, sorted[i + 1])).map((r) => r.seq);
  return kept.sort((a, b) => a - b);
}

async function insertRows(ledger: Ledger, rows: readonly Row[]): Promise<void> {
  for (let i = 0; i < rows.length; i += 500)
    await ledger.db
      .insertInto('risk_snapshots')
      .values(
        rows
          .slice(i, i + 500)
          .map((r) => ({ seq: r.seq, as_of_ms: r.asOfMs, snapshot: JSON.stringify({ seq: r.seq }) })),
      )
      .execute();
}

async function seqs(ledger: Ledger): Promise<number[]> {
  const rows = await ledger.db.selectFrom('risk_snapshots').select('seq').orderBy('seq').execute();
  return rows.map((r) => Number(r.seq));
}

/**
 * Snapshots every 5 s in four clusters: 2 minutes one day ago (full resolution), 3 minutes 30 days ago
 * and 2 minutes 89 days ago (downsampled), 2 minutes 100 days ago (past retention); two snapshots with
 * the same time at the end of a bucket 30 days ago; intents 30 and 100 days ago (between two snapshots).
 */
function scenario(): { rows: Row[]; intentsAtMs: number[] } {
  const rows: Row[] = [];
  let seq = 1000;
  const cluster = (startMs: number, minutes: number) => {
    for (let t = startMs; t < startMs + minutes * MIN; t += 5000) rows.push({ seq: ++seq, asOfMs: t });
  };
  cluster(NOW - 100 * DAY, 2);
  cluster(NOW - 89 * DAY, 2);
  cluster(NOW - 30 * DAY, 3);
  // a tie at the end of the 30-day cluster's second minute: the higher seq is the last of the bucket
  rows.push({ seq: ++seq, asOfMs: NOW - 30 * DAY + 2 * MIN - 5000 });
  cluster(NOW - 7 * DAY + 5000, 1);
  cluster(NOW - DAY, 2);
  return {
    rows,
    intentsAtMs: [NOW - 30 * DAY + 17_002, NOW - 100 * DAY + 61_000],
  };
}

describe.each(backends)('risk snapshot retention on $name', ({ open }) => {
  let h: DatabaseHandle;
  let ledger: Ledger;
  const clock = new ManualClock(NOW);
  beforeEach(async () => {
    h = await open();
    ledger = new Ledger(h, { clock });
  });
  afterEach(async () => {
    await closeTestDb(h);
  });

  async function seed(): Promise<{ rows: Row[]; intentsAtMs: number[] }> {
    const s = scenario();
    await insertRows(ledger, s.rows);
    for (const [i, t] of s.intentsAtMs.entries())
      await ledger.recordIntent(intent(i + 1, t), { clientOrderId: `xh-${i + 1}`, actor: 'test' });
    return s;
  }

  it('keeps everything younger than fullResolutionDays, the last of each minute up to retentionDays, the snapshot each plan was made from; deletes the rest', async () => {
    const { rows, intentsAtMs } = await seed();
    const r = await new SnapshotRetention({ ledger, clock, options: { pauseMs: 0 } }).run();
    expect(r).toMatchObject({ fullBeforeMs: NOW - 7 * DAY, retainBeforeMs: NOW - 90 * DAY, complete: true });
    const kept = await seqs(ledger);
    const want = expectedKept(rows, intentsAtMs, {
      fullBeforeMs: NOW - 7 * DAY,
      retainBeforeMs: NOW - 90 * DAY,
      everyMs: MIN,
    });
    expect(kept).toEqual(want);
    expect(r.deleted).toBe(rows.length - want.length);
    const at = (ms: number) => rows.filter((x) => x.asOfMs === ms).map((x) => x.seq);
    // full resolution: every one of the last 7 days (the 12 at 7 days less 5 s, 24 a day ago)
    const keptIn = (fromMs: number, toMs: number) =>
      rows.filter((x) => x.asOfMs >= fromMs && x.asOfMs < toMs && kept.includes(x.seq)).map((x) => x.seq);
    const allIn = (fromMs: number, toMs: number) =>
      rows.filter((x) => x.asOfMs >= fromMs && x.asOfMs < toMs).map((x) => x.seq);
    expect(keptIn(NOW - DAY, NOW)).toEqual(allIn(NOW - DAY, NOW));
    expect(keptIn(NOW - 7 * DAY, NOW - 6 * DAY)).toEqual(allIn(NOW - 7 * DAY, NOW - 6 * DAY));
    expect(allIn(NOW - 7 * DAY, NOW)).toHaveLength(36);
    // 30 days ago: the :55 of each minute (of the tie at the second one, the higher seq), and the one the
    // intent at :17.002 was planned from (:15); nothing else of the 37
    const d30 = NOW - 30 * DAY;
    const tie = at(d30 + 2 * MIN - 5000);
    expect(tie).toHaveLength(2);
    expect(keptIn(d30, d30 + DAY)).toEqual(
      [...at(d30 + 15_000), ...at(d30 + MIN - 5000), Math.max(...tie), ...at(d30 + 3 * MIN - 5000)].sort(
        (a, b) => a - b,
      ),
    );
    // 89 days ago: the last of each of the 2 minutes
    const d89 = NOW - 89 * DAY;
    expect(keptIn(d89, d89 + DAY)).toEqual([...at(d89 + MIN - 5000), ...at(d89 + 2 * MIN - 5000)]);
    // 100 days ago: only the one the intent at 1:01 was planned from (1:00)
    const d100 = NOW - 100 * DAY;
    expect(keptIn(d100, d100 + DAY)).toEqual(at(d100 + MIN));
    // a second pass finds nothing more to delete
    expect((await new SnapshotRetention({ ledger, clock, options: { pauseMs: 0 } }).run()).deleted).toBe(0);
    expect(await seqs(ledger)).toEqual(want);
  });

  it('in batches of 7 deletes the same rows, no statement more than 7, and ends', async () => {
    const { rows, intentsAtMs } = await seed();
    const r = await new SnapshotRetention({ ledger, clock, options: { batchSize: 7, pauseMs: 0 } }).run();
    const want = expectedKept(rows, intentsAtMs, {
      fullBeforeMs: NOW - 7 * DAY,
      retainBeforeMs: NOW - 90 * DAY,
      everyMs: MIN,
    });
    expect(await seqs(ledger)).toEqual(want);
    // every row older than the full-resolution span examined once: ⌈n / 7⌉ statements (+1 when n % 7 = 0)
    const older = rows.filter((x) => x.asOfMs < NOW - 7 * DAY).length;
    expect(r.examined).toBe(older);
    expect(r.statements).toBe(Math.floor(older / 7) + 1);
    expect(r.deleted).toBe(rows.length - want.length);
    // one statement on its own deletes at most its batch
    await insertRows(
      ledger,
      Array.from({ length: 30 }, (_, i) => ({ seq: 10 + i, asOfMs: NOW - 200 * DAY + i * 1000 })),
    );
    const one = await ledger.pruneRiskSnapshotsBatch({
      fullBeforeMs: NOW - 7 * DAY,
      retainBeforeMs: NOW - 90 * DAY,
      downsampleEveryMs: MIN,
      batchSize: 7,
    });
    expect(one).toEqual({ examined: 7, deleted: 7, next: { asOfMs: NOW - 200 * DAY + 6000, seq: 16 } });
  });

  it('never deletes the newest snapshot, however old, nor lets the sequence go back', async () => {
    // the run stopped for months: every snapshot is past retention
    const rows = Array.from({ length: 40 }, (_, i) => ({ seq: i + 1, asOfMs: NOW - 200 * DAY + i * 5000 }));
    await insertRows(ledger, rows);
    const r = await new SnapshotRetention({ ledger, clock, options: { batchSize: 3, pauseMs: 0 } }).run();
    expect(r.deleted).toBe(39);
    expect(await seqs(ledger)).toEqual([40]);
    expect((await ledger.latestRiskSnapshot())?.seq).toBe(40);
    // the greatest seq stays even when a clock that went back stamped it before others
    await insertRows(ledger, [
      { seq: 41, asOfMs: NOW - 150 * DAY },
      { seq: 42, asOfMs: NOW - 160 * DAY },
    ]);
    await new SnapshotRetention({ ledger, clock, options: { pauseMs: 0 } }).run();
    expect(await seqs(ledger)).toEqual([41, 42]);
  });

  it('a stop ends a pass between statements and starts no other', async () => {
    await insertRows(
      ledger,
      Array.from({ length: 50 }, (_, i) => ({ seq: i + 1, asOfMs: NOW - 200 * DAY + i * 5000 })),
    );
    const ret = new SnapshotRetention({ ledger, clock, options: { batchSize: 5, pauseMs: 60_000 } });
    const pass = ret.run();
    await new Promise((res) => setTimeout(res, 200));
    await ret.stop();
    const r = await pass;
    expect(r.complete).toBe(false);
    expect(r.statements).toBe(1);
    expect((await seqs(ledger)).length).toBe(45);
    ret.poke();
    await ret.stop();
    expect((await seqs(ledger)).length).toBe(45);
  });

  it('poke runs a pass at most once per interval, in the background', async () => {
    await insertRows(ledger, [
      { seq: 1, asOfMs: NOW - 200 * DAY },
      { seq: 2, asOfMs: NOW - 199 * DAY },
    ]);
    const results: number[] = [];
    const ret = new SnapshotRetention({
      ledger,
      clock,
      options: { pauseMs: 0, intervalMs: 3_600_000 },
      onResult: (r) => results.push(r.deleted),
    });
    ret.poke();
    ret.poke();
    await ret.stop();
    expect(results).toEqual([1]);
    expect(await seqs(ledger)).toEqual([2]);
  });

  it('history comes back with the same rows in the same order as by seq', async () => {
    const rows: Row[] = [];
    for (let i = 1; i <= 400; i++) rows.push({ seq: 5000 + i, asOfMs: NOW - 3 * DAY + i * 5000 });
    await insertRows(ledger, rows);
    const bySeq = async (q: { fromMs?: number; toMs?: number; limit: number; oldestFirst?: boolean }) => {
      let qb = ledger.db.selectFrom('risk_snapshots').selectAll();
      if (q.fromMs !== undefined) qb = qb.where('as_of_ms', '>=', q.fromMs);
      if (q.toMs !== undefined) qb = qb.where('as_of_ms', '<', q.toMs);
      const r = await qb
        .orderBy('seq', q.oldestFirst ? 'asc' : 'desc')
        .limit(q.limit)
        .execute();
      return r.map((x) => ({ seq: Number(x.seq), asOfMs: Number(x.as_of_ms), snapshot: x.snapshot }));
    };
    const from = NOW - 3 * DAY + 100 * 5000;
    for (const q of [
      { limit: 500 },
      { limit: 500, oldestFirst: true },
      { fromMs: from, toMs: from + 50 * 5000, limit: 500 },
      { fromMs: from, toMs: from + 50 * 5000, limit: 7, oldestFirst: true },
      { fromMs: from, toMs: from + 50 * 5000, limit: 1 },
      { fromMs: from + 1, limit: 3 },
      { toMs: from, limit: 1, oldestFirst: true },
    ]) {
      const got = await ledger.riskSnapshotHistory(q);
      expect(got.length).toBeGreaterThan(0);
      expect(got).toEqual(await bySeq(q));
    }
  });
});

describe('snapshot retention options', () => {
  it('defaults: 7 days in full, one a minute to 90 days, a pass an hour', () => {
    expect(snapshotRetentionOptions()).toEqual({
      fullResolutionDays: 7,
      downsampleEveryMs: 60_000,
      retentionDays: 90,
      intervalMs: 3_600_000,
      batchSize: 2000,
      pauseMs: 100,
    });
  });

  it('a wrong option is named', () => {
    const issues = (o: Parameters<typeof snapshotRetentionOptions>[0]) => {
      try {
        snapshotRetentionOptions(o);
      } catch (err) {
        expect(err).toBeInstanceOf(ValidationError);
        return (err as ValidationError).issues.map((i) => `${i.path}: ${i.message}`);
      }
      throw new Error('expected the options to be refused');
    };
    expect(issues({ fullResolutionDays: 100, retentionDays: 30 })).toEqual([
      'fullResolutionDays: must not be above retentionDays (30), got 100',
    ]);
    expect(issues({ downsampleEveryMs: 10, batchSize: 0, retentionDays: Number.NaN })).toEqual([
      'retentionDays: must be a number of days from 1 to 36500, got NaN',
      'downsampleEveryMs: must be a whole number from 1000 to 86400000, got 10',
      'batchSize: must be a whole number from 1 to 100000, got 0',
    ]);
  });
});
