import { ManualClock } from '@xhedge/core';
import { RiskEngine } from '@xhedge/risk';
import { Ledger, openDatabase } from '@xhedge/store';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOG_SERIALIZERS, maskedError } from './masked-error.ts';
import { SnapshotBus } from './snapshot-bus.ts';

let ledger: Ledger;
beforeAll(async () => {
  ledger = new Ledger(await openDatabase({}));
});
afterAll(async () => ledger.close());

function engine() {
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const e = new RiskEngine({ clock });
  e.setMarket('BTC', { spotUsd: 95_000, volDecimal: 0.55, asOfMs: clock.nowMs() });
  e.setBook({
    positions: [
      {
        venue: 'gmx-arb',
        chain: 'evm:42161',
        instrument: 'BTC-USD:PERP',
        sizeBase: 2,
        asOfMs: clock.nowMs(),
      },
    ],
  });
  return { e, clock };
}

describe('snapshot bus listeners', () => {
  it('tells of a failing listener once, masked, and still feeds the others and the publisher', async () => {
    const logged: { obj: Record<string, unknown>; msg: string }[] = [];
    const bus = new SnapshotBus(ledger, {
      persistEveryMs: 0,
      log: { warn: (obj, msg) => void logged.push({ obj, msg }) },
    });
    const { e, clock } = engine();
    const seen: number[] = [];
    bus.subscribe(() => {
      throw new Error(
        'stream write failed: postgres://xhedge:hunter2@db.internal:5432/ledger?sslpassword=p4ss',
      );
    });
    bus.subscribe((s) => seen.push(s.seq));
    bus.subscribe(() => {
      // not an Error: a string with a secret setting in it
      throw 'redis AUTH password=s3cr3t-pw refused';
    });
    const first = e.snapshot();
    await bus.publish(first);
    clock.advance(1000);
    const second = e.snapshot();
    await bus.publish(second);
    expect(seen).toEqual([first.seq, second.seq]);
    // each failing listener once, on the first snapshot it failed (not again on the second)
    expect(logged).toHaveLength(2);
    expect(logged.map((l) => l.obj.seq)).toEqual([first.seq, first.seq]);
    for (const l of logged) expect(l.msg).toMatch(/listener failed/);
    expect(logged[0]?.obj.err).toMatchObject({
      name: 'Error',
      message: expect.stringContaining(
        'postgres://[redacted]@db.internal:5432/ledger?sslpassword=[redacted]',
      ),
    });
    expect(logged[1]?.obj.err).toMatchObject({
      name: 'string',
      message: 'redis AUTH password=[redacted] refused',
    });
    const all = JSON.stringify(logged);
    for (const secret of ['hunter2', 'p4ss', 's3cr3t-pw']) expect(all).not.toContain(secret);
    // the newest snapshot is served and was written to the ledger
    expect((await bus.latest())?.seq).toBe(second.seq);
    expect((await ledger.latestRiskSnapshot())?.seq).toBe(second.seq);
  });

  it('a listener failing on every snapshot is logged when it starts failing and when it recovers, with the failures not logged counted (regression: a line per snapshot)', async () => {
    const lines: { level: string; obj: Record<string, unknown>; msg: string }[] = [];
    const bus = new SnapshotBus(ledger, {
      persistEveryMs: 60_000,
      log: {
        warn: (obj, msg) => void lines.push({ level: 'warn', obj, msg }),
        info: (obj, msg) => void lines.push({ level: 'info', obj, msg }),
      },
    });
    const { e, clock } = engine();
    let broken = true;
    const seen: number[] = [];
    bus.subscribe((s) => {
      if (broken) throw new Error('write EPIPE to https://admin:t0ps3cret@sse.internal/stream');
      seen.push(s.seq);
    });
    const publish = async (n: number) => {
      const seqs: number[] = [];
      for (let i = 0; i < n; i++) {
        clock.advance(1000);
        const s = e.snapshot({ scenarios: false });
        seqs.push(s.seq);
        await bus.publish(s);
      }
      return seqs;
    };
    const failedOn = await publish(5);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 'warn',
      obj: {
        seq: failedOn[0],
        err: { name: 'Error', message: 'write EPIPE to https://[redacted]@sse.internal/stream' },
      },
    });
    expect(lines[0]?.msg).toMatch(/listener failed/);
    broken = false;
    const [back] = await publish(3);
    expect(seen).toHaveLength(3);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toEqual({
      level: 'info',
      obj: { seq: back, failedSinceSeq: failedOn[0], failures: 5, suppressed: 4 },
      msg: 'a risk snapshot listener works again after 5 failed snapshot(s), 4 of those failures not logged',
    });
    // a new streak is logged again, once
    broken = true;
    await publish(2);
    expect(lines.map((l) => l.level)).toEqual(['warn', 'info', 'warn']);
    expect(JSON.stringify(lines)).not.toContain('t0ps3cret');
  });

  it('a listener unsubscribed while failing ends its streak with its count; without an info log, warn says it', async () => {
    const lines: { obj: Record<string, unknown>; msg: string }[] = [];
    const bus = new SnapshotBus(ledger, {
      persistEveryMs: 60_000,
      log: { warn: (obj, msg) => void lines.push({ obj, msg }) },
    });
    const { e, clock } = engine();
    const off = bus.subscribe(() => {
      throw new Error('closed');
    });
    const first = e.snapshot({ scenarios: false });
    await bus.publish(first);
    clock.advance(1000);
    await bus.publish(e.snapshot({ scenarios: false }));
    off();
    off();
    clock.advance(1000);
    await bus.publish(e.snapshot({ scenarios: false }));
    expect(lines.map((l) => l.msg)).toEqual([
      expect.stringMatching(/listener failed/),
      'a failing risk snapshot listener unsubscribed after 2 failed snapshot(s), 1 of those failures not logged',
    ]);
    expect(lines[1]?.obj).toEqual({ failedSinceSeq: first.seq, failures: 2, suppressed: 1 });
  });

  it('a log that throws stops neither the other listeners nor the publisher', async () => {
    const bus = new SnapshotBus(ledger, {
      persistEveryMs: 0,
      log: {
        warn: () => {
          throw new Error('log sink closed');
        },
      },
    });
    const seen: number[] = [];
    bus.subscribe(() => {
      throw new Error('boom');
    });
    bus.subscribe((s) => seen.push(s.seq));
    const s = engine().e.snapshot();
    await expect(bus.publish(s)).resolves.toBeUndefined();
    expect(seen).toEqual([s.seq]);
  });
});

describe('publishing', () => {
  it('never goes back to an older snapshot: a late publish of an overtaken tick is dropped (review)', async () => {
    const bus = new SnapshotBus(ledger, { persistEveryMs: 0 });
    const { e } = engine();
    const older = e.snapshot();
    const newer = e.snapshot();
    const seen: number[] = [];
    bus.subscribe((s) => seen.push(s.seq));
    await bus.publish(newer);
    await bus.publish(older);
    expect(seen).toEqual([newer.seq]);
    expect((await bus.latest())?.seq).toBe(newer.seq);
  });
});

describe('following the ledger (an API without an orchestrator in its process)', () => {
  /** Waits until `ok()` holds, polling every 5 ms, for at most 2 s. */
  async function until(ok: () => boolean): Promise<void> {
    for (const end = Date.now() + 2000; !ok(); ) {
      if (Date.now() > end) throw new Error('timed out waiting');
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /**
   * A real ledger whose `latestRiskSnapshot` reads are answered by the test: each read waits in `reads`
   * until the test resolves it (a slow or hung ledger, as the bus sees one).
   */
  async function heldLedger() {
    const real = new Ledger(await openDatabase({}));
    type Rec = Awaited<ReturnType<Ledger['latestRiskSnapshot']>>;
    const reads: ((r: Rec) => void)[] = [];
    const held = new Proxy(real, {
      get(target, prop) {
        if (prop === 'latestRiskSnapshot') return () => new Promise<Rec>((r) => reads.push(r));
        const x = Reflect.get(target, prop, target);
        return typeof x === 'function' ? x.bind(target) : x;
      },
    });
    return { real, held, reads };
  }

  it('polls one at a time: a ledger that does not answer gets one read, not one per interval (regression: they piled up on the pool)', async () => {
    const { real, held, reads } = await heldLedger();
    const bus = new SnapshotBus(held);
    const errors: unknown[] = [];
    try {
      bus.follow(5, (err) => errors.push(err));
      await until(() => reads.length === 1);
      await new Promise((r) => setTimeout(r, 150)); // some 30 intervals with the read unanswered
      expect(reads).toHaveLength(1);
      // once it answers, polling goes on
      reads[0]?.(undefined);
      await until(() => reads.length === 2);
      expect(errors).toEqual([]);
    } finally {
      bus.close();
      await real.close();
    }
  });

  it('takes only a higher seq: a late answer never replaces a newer snapshot (regression: emitted 22, 23, 2, 24)', async () => {
    const { real, held, reads } = await heldLedger();
    const { e } = engine();
    const at = async (seq: number) => {
      await real.recordRiskSnapshot({ seq, asOfMs: seq, snapshot: { ...e.snapshot(), seq } });
      return real.latestRiskSnapshot();
    };
    // what the ledger said at three moments: seq 2, then 23, then 24
    const [two, twentyThree, twentyFour] = [await at(2), await at(23), await at(24)];
    const bus = new SnapshotBus(held);
    const seen: number[] = [];
    bus.subscribe((s) => seen.push(s.seq));
    try {
      bus.follow(5, () => {});
      // the answers arrive in this order: 23, then the late 2, then 24 (and 24 again)
      for (const r of [twentyThree, two, twentyFour, twentyFour]) {
        const n = reads.length;
        await until(() => reads.length > n);
        reads[n]?.(r);
      }
      await until(() => reads.length > 4);
      expect(seen).toEqual([23, 24]);
      expect((await bus.latest())?.seq).toBe(24);
    } finally {
      bus.close();
      await real.close();
    }
  });
});

describe('maskedError', () => {
  it('masks URL credentials of any scheme, secret query parameters and secret settings; keeps name and code', () => {
    const err = Object.assign(
      new Error(
        'connect failed: rediss://:r3dispw@cache:6380/0 and https://u:p@rpc.example/v2/abc?apikey=k3y host=db password=pgpw user=x',
      ),
      { code: 'ECONNREFUSED' },
    );
    const m = maskedError(err);
    expect(m).toEqual({
      name: 'Error',
      code: 'ECONNREFUSED',
      message:
        'connect failed: rediss://[redacted]@cache:6380/0 and https://[redacted]@rpc.example/v2/abc?apikey=[redacted] host=db password=[redacted] user=x',
    });
    expect(maskedError({ toString: () => 'token=t0k3n' }).message).toBe('token=[redacted]');
    expect(maskedError('x'.repeat(5000)).message.length).toBeLessThanOrEqual(1001);
  });

  it("is what a run's log writes of an { err }: masked, with the stack's frames and not its raw first line", () => {
    const lines: string[] = [];
    const log = pino({ serializers: LOG_SERIALIZERS }, { write: (l: string) => void lines.push(l) });
    log.error(
      { err: new Error('connect postgres://xh:pgS3cret@db:5432/x failed') },
      'reconciler sweep failed',
    );
    const line = JSON.parse(lines[0] as string) as { err: { message: string; stack?: string } };
    expect(line.err.message).toBe('connect postgres://[redacted]@db:5432/x failed');
    expect(line.err.stack).toMatch(/^\s+at /);
    expect(lines[0]).not.toContain('pgS3cret');
    // an err already made a record (the API's, maskedError's) keeps its fields, masked again
    log.warn({ err: { name: 'Error', code: 'E1', message: 'at redis://:pw@h:1' } }, 'x');
    expect(JSON.parse(lines[1] as string).err).toEqual({
      name: 'Error',
      code: 'E1',
      message: 'at redis://[redacted]@h:1',
    });
  });
});
