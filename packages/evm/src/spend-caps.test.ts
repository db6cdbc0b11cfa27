import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ManualClock, XhedgeError } from '@xhedge/core';
import { InvalidOrderError } from '@xhedge/venue';
import fc from 'fast-check';
import type { Address } from 'viem';
import { describe, expect, it } from 'vitest';
import { type RecordedSpend, SpendCaps, type SpendRecordSource, type SpendReservation } from './approvals.ts';
import { JsonFileOrderStore, MemoryOrderStore } from './store.ts';

const TOKEN = `0x${'ab'.repeat(20)}` as Address;
const UNCAPPED = `0x${'cd'.repeat(20)}` as Address;

interface Rec {
  clientOrderId: string;
  spend?: RecordedSpend;
}

function makeCaps(
  o: { cap?: bigint; clock?: ManualClock; records?: SpendRecordSource; windowMs?: number } = {},
) {
  return new SpendCaps({
    venue: 'v',
    caps: { [TOKEN]: o.cap ?? 1000n },
    windowMs: o.windowMs ?? 1000,
    clock: o.clock ?? new ManualClock(0),
    ...(o.records ? { records: o.records } : {}),
  });
}

/** A store whose list() answers only after other work had a chance to run (a slow disk). */
function slowSource(records: Rec[]): SpendRecordSource {
  return {
    list: () => new Promise((resolve) => setTimeout(() => resolve(structuredClone(records)), 20)),
  };
}

/** Persists a reservation on its record, as an adapter does before broadcast. */
async function putSpend(store: MemoryOrderStore<Rec> | JsonFileOrderStore<Rec>, r: SpendReservation) {
  await store.put(r.clientOrderId, { clientOrderId: r.clientOrderId, spend: r.recorded() });
}

describe('SpendCaps', () => {
  it('concurrent reservations never exceed the cap together', async () => {
    const caps = makeCaps({ cap: 1000n });
    // 50 orders of 30 started at once, no await between them: 33 fit (990), 17 are refused.
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, (_, i) => caps.reserve(TOKEN, 30n, `o-${i}`)),
    );
    const ok = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(ok).toHaveLength(33);
    expect(refused).toHaveLength(17);
    for (const r of refused) {
      expect(r.reason).toBeInstanceOf(InvalidOrderError);
      expect((r.reason as InvalidOrderError).message).toMatch(/spend cap exceeded .* > cap 1000/);
    }
    expect(await caps.spent(TOKEN)).toBe(990n);
  });

  it('concurrent reservations racing the first-use rebuild count the stored spends too', async () => {
    const prior: Rec = {
      clientOrderId: 'before-restart',
      spend: { token: TOKEN, amountBase: '400', atMs: 0, state: 'committed' },
    };
    const caps = makeCaps({ cap: 1000n, records: slowSource([prior]) });
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => caps.reserve(TOKEN, 100n, `o-${i}`)),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(6);
    expect(await caps.spent(TOKEN)).toBe(1000n);
  });

  it('whatever the amounts, what is reserved concurrently stays within the cap and only overflows are refused', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.bigInt({ min: 1n, max: 500n }), { minLength: 1, maxLength: 40 }),
        fc.bigInt({ min: 0n, max: 2000n }),
        async (amounts, cap) => {
          const caps = makeCaps({ cap });
          const results = await Promise.allSettled(amounts.map((a, i) => caps.reserve(TOKEN, a, `o-${i}`)));
          // Reservations are granted in call order: each refused one would have overflowed at its turn.
          let sum = 0n;
          results.forEach((r, i) => {
            const a = amounts[i] as bigint;
            if (r.status === 'fulfilled') sum += a;
            else expect(sum + a).toBeGreaterThan(cap);
          });
          expect(sum).toBeLessThanOrEqual(cap);
          expect(await caps.spent(TOKEN)).toBe(sum);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('release gives the amount back; commit keeps it; a settled spend cannot flip', async () => {
    const caps = makeCaps({ cap: 1000n });
    const a = await caps.reserve(TOKEN, 600n, 'a');
    expect(a.recorded()).toEqual({ token: TOKEN, amountBase: '600', atMs: 0, state: 'reserved' });
    await expect(caps.reserve(TOKEN, 500n, 'b')).rejects.toThrow(/spend cap exceeded/);
    // A refused reservation holds nothing.
    expect(await caps.spent(TOKEN)).toBe(600n);
    a.release();
    a.release(); // idempotent
    expect(a.recorded().state).toBe('released');
    expect(await caps.spent(TOKEN)).toBe(0n);
    expect(() => a.commit()).toThrow(XhedgeError);
    const b = await caps.reserve(TOKEN, 500n, 'b');
    b.commit();
    expect(b.state).toBe('committed');
    expect(await caps.spent(TOKEN)).toBe(500n);
    // Money that left the wallet stays counted (e.g. a cancelled GMX order whose collateral came back).
    expect(() => b.release()).toThrow(/committed, it cannot become released/);
    expect(await caps.spent(TOKEN)).toBe(500n);
    await expect(caps.reserve(TOKEN, 501n, 'c')).rejects.toBeInstanceOf(InvalidOrderError);
    await caps.reserve(TOKEN, 500n, 'c');
    expect(await caps.spent(TOKEN)).toBe(1000n);
  });

  it('settle() resolves an order found in the store by its client order id', async () => {
    const caps = makeCaps({ cap: 1000n });
    const a = await caps.reserve(TOKEN, 300n, 'a');
    await caps.reserve(TOKEN, 200n, 'b');
    await caps.settle('a', 'released');
    expect(a.state).toBe('released');
    await caps.settle('b', 'committed');
    await caps.settle('b', 'released'); // only reserved spends are settled: committed stays
    expect(await caps.spent(TOKEN)).toBe(200n);
  });

  it('a spend leaves the rolling window windowMs after it was reserved', async () => {
    const clock = new ManualClock(10_000);
    const caps = makeCaps({ cap: 1000n, clock, windowMs: 1000 });
    (await caps.reserve(TOKEN, 600n, 'a')).commit();
    clock.advance(500);
    await caps.reserve(TOKEN, 300n, 'b'); // outcome unknown: counts as well
    clock.advance(499);
    await expect(caps.reserve(TOKEN, 200n, 'c')).rejects.toThrow(
      /900 already spent or reserved \+ 200 > cap 1000/,
    );
    clock.advance(1); // 'a' is now 1000 ms old: out of the window
    expect(await caps.spent(TOKEN)).toBe(300n);
    await caps.reserve(TOKEN, 700n, 'c');
    clock.advance(500); // 'b' out too
    expect(await caps.spent(TOKEN)).toBe(700n);
  });

  it('after a restart, rebuilds the window from the spends recorded on the order records', async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'xhedge-caps-')), 'orders.json');
    const clock = new ManualClock(100_000);
    const store1 = new JsonFileOrderStore<Rec>(file);
    const caps1 = makeCaps({ cap: 1000n, clock, records: store1, windowMs: 60_000 });
    const sent = await caps1.reserve(TOKEN, 400n, 'sent');
    await putSpend(store1, sent);
    sent.commit();
    await putSpend(store1, sent);
    const reverted = await caps1.reserve(TOKEN, 300n, 'reverted');
    await putSpend(store1, reverted);
    reverted.release();
    await putSpend(store1, reverted);
    clock.advance(1000);
    // Timed out: recorded before broadcast, never settled (the process died, or the outcome is unknown).
    await putSpend(store1, await caps1.reserve(TOKEN, 200n, 'unknown'));
    await store1.put('no-spend', { clientOrderId: 'no-spend' });
    await store1.put('yesterday', {
      clientOrderId: 'yesterday',
      spend: { token: TOKEN, amountBase: '999', atMs: clock.nowMs() - 60_000, state: 'committed' },
    });
    expect(await caps1.spent(TOKEN)).toBe(600n);

    // Restart: a new SpendCaps over a new store instance on the same file (the old one gone).
    store1.close();
    const caps2 = makeCaps({
      cap: 1000n,
      clock,
      records: new JsonFileOrderStore<Rec>(file),
      windowMs: 60_000,
    });
    expect(await caps2.spent(TOKEN)).toBe(600n);
    await expect(caps2.reserve(TOKEN, 401n, 'next')).rejects.toThrow(
      /600 already spent or reserved \+ 401 > cap 1000/,
    );
    // Reconciling the unknown one as reverted gives its 200 back.
    await caps2.settle('unknown', 'released');
    expect(await caps2.spent(TOKEN)).toBe(400n);
    await caps2.reserve(TOKEN, 600n, 'next');
    // The rebuilt spends leave the window like any other.
    clock.advance(59_000);
    expect(await caps2.spent(TOKEN)).toBe(600n);
  });

  it('refuses NaN, negative, fractional and garbage amounts, bad tokens and uncapped tokens with a clear error', async () => {
    const caps = makeCaps({ cap: 1000n });
    const bad: unknown[] = [Number.NaN, 5, -5n, 0n, '-1', '1.5', 'abc', '', ' 12', '1e3', null, undefined];
    for (const amount of bad) {
      const err = await caps.reserve(TOKEN, amount as bigint, 'x').catch((e: unknown) => e);
      expect(err, `amount ${String(amount)}`).toBeInstanceOf(InvalidOrderError);
      expect((err as InvalidOrderError).message).toMatch(
        /spend amount .* is not a positive whole number of token base units/,
      );
    }
    await expect(caps.reserve(TOKEN, Number.NaN as never, 'x')).rejects.toThrow('spend amount NaN of 0x');
    await expect(caps.reserve('garbage' as Address, 1n, 'x')).rejects.toThrow(
      /spend token garbage is not a 0x address/,
    );
    await expect(caps.reserve(UNCAPPED, 1n, 'x')).rejects.toThrow(/no spend cap configured for token/);
    await expect(caps.reserve(TOKEN, 1n, '')).rejects.toThrow(/needs the client order id/);
    // A decimal string of base units is fine; mixed-case token addresses count as the same token.
    await caps.reserve(TOKEN.toUpperCase().replace('0X', '0x') as Address, '250', 'y');
    expect(await caps.spent(TOKEN)).toBe(250n);
  });

  it('refuses to trade on a malformed recorded spend rather than guess the window', async () => {
    const store = new MemoryOrderStore<Rec>();
    await store.put('bad', {
      clientOrderId: 'bad',
      spend: { token: TOKEN, amountBase: 'NaN', atMs: 0, state: 'reserved' },
    });
    const caps = makeCaps({ records: store });
    await expect(caps.reserve(TOKEN, 1n, 'x')).rejects.toThrow(
      /cannot rebuild the spend window: order bad has a malformed recorded spend/,
    );
    // Not memoized: once the record is fixed, the next order goes through.
    await store.put('bad', {
      clientOrderId: 'bad',
      spend: { token: TOKEN, amountBase: '10', atMs: 0, state: 'reserved' },
    });
    await caps.reserve(TOKEN, 1n, 'x');
    expect(await caps.spent(TOKEN)).toBe(11n);
  });

  it('a corrupt order file refuses orders until it can be read', async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'xhedge-caps-')), 'orders.json');
    writeFileSync(file, '{ not json');
    const caps = makeCaps({ records: new JsonFileOrderStore<Rec>(file) });
    await expect(caps.reserve(TOKEN, 1n, 'x')).rejects.toThrow(`order store ${file} is not valid JSON`);
  });

  it('rejects bad options', () => {
    expect(() => makeCaps({ windowMs: Number.NaN })).toThrow(/windowMs must be positive, got NaN/);
    expect(() => makeCaps({ windowMs: -1 })).toThrow(/windowMs must be positive/);
    expect(() => makeCaps({ cap: -1n })).toThrow(
      /must be keyed by a lower-case token address and be a bigint >= 0/,
    );
    expect(() => new SpendCaps({ venue: 'v', caps: { [`0x${'AB'.repeat(20)}`]: 1n } })).toThrow(
      /lower-case token address/,
    );
  });
});
