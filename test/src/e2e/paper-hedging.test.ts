import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, type XhedgeConfig } from '@xhedge/config';
import { type Run, startRun } from '@xhedge/runtime';
import type { LedgerIntent } from '@xhedge/store';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { withTestPolicy } from './test-policy.ts';

/**
 * How the run hedges on the paper profile, watched through its ledger: orders in flight gate new
 * hedges (never two plans of one underlying working at once), buy/sell flips only follow market moves
 * that carry the book across its band, and a venue short of margin is funded through the paper bridge
 * before its hedge runs (one BullMQ flow: transfer, then hedge).
 */
const PAPER = readFileSync(new URL('../../../configs/profiles/paper.yaml', import.meta.url), 'utf8');
const dirs: string[] = [];
const runs: Run[] = [];

afterAll(async () => {
  for (const r of runs) await r.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function config(
  name: string,
  edit: (c: XhedgeConfig) => void = () => {},
  profile: string = PAPER,
): XhedgeConfig {
  const dir = mkdtempSync(join(tmpdir(), `xhedge-${name}-`));
  dirs.push(dir);
  const c = parseConfig(
    profile
      .replace(/^name: .*$/m, `name: ${name}-${process.pid}`)
      .replace(/^dataDir: .*$/m, `dataDir: ${join(dir, 'data')}`),
    `${name}.yaml`,
  );
  edit(c);
  return c;
}

async function start(c: XhedgeConfig): Promise<Run> {
  const run = await startRun({ config: c, env: {}, port: 0, logger: pino({ level: 'silent' }) });
  runs.push(run);
  return run;
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 40_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const TERMINAL = new Set(['filled', 'cancelled', 'rejected', 'failed']);

describe('paper profile at 60× with narrow test bands (15+ simulated minutes)', () => {
  it('never has two plans of one underlying working at once, and flips side only after a market move', async () => {
    // Its own narrow bands: how often the demo profile trades is not this test's business.
    const run = await start(config('pingpong', undefined, withTestPolicy(PAPER)));
    const t0 = run.clock.nowMs();
    // At least 15 simulated minutes and enough plans to compare. Wall time is only a generous cap: on a
    // loaded machine fewer ticks fit in a simulated minute (the market clock runs on regardless).
    await until(
      '15 simulated minutes and more than two intents',
      async () =>
        run.clock.nowMs() - t0 > 15 * 60_000 && (await run.ledger.listIntents({ limit: 3 })).length > 2
          ? true
          : undefined,
      150_000,
    );
    // One more of the orchestrator's own ticks. Calling plan() here raced it: the orchestrator's next tick
    // overtook the test's and it failed with TickSupersededError (a clean-clone run under load).
    const before = run.planner?.lastSnapshot;
    await until('one more planner tick', async () =>
      run.planner?.lastSnapshot !== before ? true : undefined,
    );
    const intents = (await run.ledger.listIntents({ limit: 5000 })).reverse();
    expect(intents.length).toBeGreaterThan(2);
    // The drop-copy check followed every instrument we hedged with and found nothing unexplained.
    expect(await run.ledger.openPositionBreaks()).toEqual([]);
    expect((await run.ledger.listAudit({ action: 'position-break' })).length).toBe(0);
    // (every pair hedged two simulated minutes before now, so a quiet read has come since)
    const hedged = new Set(
      intents
        .filter((i) => i.createdAtMs < run.clock.nowMs() - 120_000)
        .map((i) => `${i.venue}/${i.instrument}`),
    );
    expect(hedged.size).toBeGreaterThan(0);
    const baselines = new Set(
      (await run.ledger.positionBaselines()).map((b) => `${b.venue}/${b.instrument}`),
    );
    expect([...hedged].filter((k) => !baselines.has(k))).toEqual([]);
    // Order lifetimes from the ledger's state changes.
    const life = new Map<string, { from: number; to: number; status: string }>();
    for (const i of intents) {
      const order = await run.ledger.getOrderByIntent(i.id);
      const ev = order ? await run.ledger.orderEvents(order.clientOrderId) : [];
      const end = ev.find((e) => TERMINAL.has(e.toStatus));
      life.set(i.id, {
        from: i.createdAtMs,
        to: end?.atMs ?? Number.POSITIVE_INFINITY,
        status: order?.status ?? 'missing',
      });
    }
    for (const u of new Set(intents.map((i) => i.underlying))) {
      const mine = intents.filter((i) => i.underlying === u);
      // 1. No duplicate hedge while one is pending: a new plan starts only after every order of the
      // earlier plans ended.
      for (let k = 1; k < mine.length; k++) {
        const cur = mine[k] as LedgerIntent;
        for (const prev of mine.slice(0, k)) {
          if (prev.planId === cur.planId) continue;
          const p = life.get(prev.id);
          expect(
            p && p.to <= cur.createdAtMs,
            `${u}: ${cur.id} planned while ${prev.id} (${p?.status}) was working`,
          ).toBe(true);
        }
      }
      // 2. No ping-pong: an executed hedge followed by an opposite one needs the market to have moved the
      // book's delta by at least one band half-width in between (|Γ|·|ΔS| ≥ H).
      const executed = mine.filter(
        (i) => life.get(i.id)?.status === 'filled' && !i.instrument.includes(':OPT:'),
      );
      const snap = run.planner?.lastSnapshot?.underlyings[u];
      if (!snap) continue;
      for (let k = 1; k < executed.length; k++) {
        const a = executed[k - 1] as LedgerIntent;
        const b = executed[k] as LedgerIntent;
        if (a.side === b.side) continue;
        // The band the strategy used for the second hedge, from its reason ("outside the ±0.5363 ... band").
        const band = Number(/±([0-9.]+)/.exec(b.reason)?.[1]);
        expect(band, b.reason).toBeGreaterThan(0);
        const moved = Math.abs(snap.gamma) * Math.abs(b.referencePriceUsd - a.referencePriceUsd);
        // After a hedge to the target (band) or the band edge (WW), only a move carrying the delta across
        // at least one half-width can ask for the opposite side (10% slack for time and vol drift).
        expect(
          moved,
          `${u}: ${a.side} at ${a.referencePriceUsd} then ${b.side} at ${b.referencePriceUsd} (Γ ${snap.gamma}, band ±${band})`,
        ).toBeGreaterThanOrEqual(0.9 * band);
      }
    }
  }, 200_000);
});

describe('cross-chain collateral on the paper bridge', () => {
  it('funds drift-sol from lyra-arb first, and the hedge runs after the delivery', async () => {
    // Only the Solana perp venue can hedge, and it holds almost no collateral; USDC sits on Arbitrum.
    const run = await start(
      config('xchain', (c) => {
        const keep = ['lyra-arb', 'drift-sol'];
        c.venues = c.venues.filter((v) => keep.includes(v.id));
        c.book.positions = c.book.positions.filter(
          (p) => keep.includes(p.venue) && !p.instrument.startsWith('ETH-USD:PERP'),
        );
        c.book.balances = c.book.balances.map((b) => (b.venue === 'drift-sol' ? { ...b, amount: 50 } : b));
        c.book.balances = c.book.balances.filter((b) => keep.includes(b.venue));
      }),
    );
    const delivered = await until('a delivered transfer', async () => {
      const list = (await run.bridge?.tracker.list()) ?? [];
      return list.find((t) => t.state === 'delivered');
    });
    expect(delivered.fromVenue).toBe('lyra-arb');
    expect(delivered.toVenue).toBe('drift-sol');
    expect(delivered.srcChain).toBe('evm:42161');
    expect(delivered.dstChain).toBe('solana:mainnet-beta');
    const deliveredAt = delivered.history.find((h) => h.state === 'delivered')?.atMs ?? 0;
    const sentAt = delivered.history.find((h) => h.state === 'sent')?.atMs ?? 0;
    expect(deliveredAt - sentAt).toBeGreaterThan(0);
    // The hedge that needed it: queued with a note naming the transfer, sent only after the delivery.
    const hedge = await until('the funded hedge filled', async () => {
      for (const o of await run.ledger.listOrders({ venue: 'drift-sol', limit: 100 })) {
        const ev = await run.ledger.orderEvents(o.clientOrderId);
        const q = ev.find((e) => e.toStatus === 'queued' && (e.note ?? '').includes(delivered.transferId));
        if (q && o.status === 'filled') return { o, ev };
      }
      return undefined;
    });
    const sent = hedge.ev.find((e) => e.toStatus === 'sent');
    expect(sent?.atMs).toBeGreaterThanOrEqual(deliveredAt);
    // The collateral is on the destination venue now.
    const drift = run.venues.find((v) => v.id === 'drift-sol');
    const usdc = (await drift?.fetchBalances())?.find((b) => b.asset === 'USDC');
    expect(usdc?.amount ?? 0).toBeGreaterThan(50);
  }, 90_000);
});

describe('drop-copy check in a run', () => {
  it('a restart of a paper profile on the same ledger takes new baselines: its fresh venues are no position break', async () => {
    // the shipped paper profile as `pnpm start` runs it, twice on one data folder (its ledger)
    const c = config('restart');
    const firstFill = (run: Run, sinceMs: number) =>
      until('a hedge filled', async () =>
        (await run.ledger.listOrders({ status: 'filled', limit: 100 })).find((o) => o.createdAtMs >= sinceMs),
      );
    const first = await start(c);
    const o1 = await firstFill(first, 0);
    // the fill is baselined at a quiet read after it
    await until('the first run baselined its fill', async () =>
      (await first.ledger.positionBaselines(o1.venue)).some(
        (b) => b.instrument === o1.instrument && b.sizeBase !== undefined && b.atMs > o1.createdAtMs,
      )
        ? true
        : undefined,
    );
    await first.stop();
    runs.splice(runs.indexOf(first), 1);
    // the paper venues start again from the profile (another market path: a stale baseline could agree
    // with the same first hedge by chance)
    const market = c.market;
    if (!market) throw new Error('the paper profile has a market');
    const second = await start({ ...c, market: { ...market, seed: market.seed + 1 } });
    const o2 = await firstFill(second, second.clock.nowMs());
    // the drop copy's reads past the fill and its grace: a stale baseline opens a break by then
    await new Promise((r) => setTimeout(r, 10_000));
    expect(await second.ledger.openPositionBreaks(), `after ${o2.clientOrderId}`).toEqual([]);
    expect((await second.ledger.listAudit({ action: 'position-break' })).length).toBe(0);
  }, 120_000);

  it('an order that reaches a venue outside the ledger opens a position break, halts that venue, and an operator acknowledgement closes it', async () => {
    const run = await start(
      config(
        'dropcopy',
        (c) => {
          c.dropCopy = {
            ...c.dropCopy,
            graceSeconds: 30,
            settleSeconds: 5,
            intervalSeconds: 0,
            onBreak: 'halt-venue',
          };
        },
        withTestPolicy(PAPER),
      ),
    );
    const api = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${run.apiUrl}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${run.admin?.token}`,
          ...(body ? { 'content-type': 'application/json' } : {}),
        },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      return { status: res.status, json: (await res.json()) as Record<string, unknown> };
    };
    // a perp we hedged with, filled, and baselined by the check
    const { venue, instrument } = await until('a baselined perp hedge', async () => {
      for (const o of await run.ledger.listOrders({ status: 'filled', limit: 100 })) {
        if (!o.instrument.endsWith(':PERP')) continue;
        const b = await run.ledger.positionBaselines(o.venue);
        if (b.some((x) => x.instrument === o.instrument && x.sizeBase !== undefined))
          return { venue: o.venue, instrument: o.instrument };
      }
      return undefined;
    });
    expect((await api('GET', '/v1/positions/breaks')).json.breaks).toEqual([]);
    // a duplicate of some earlier order, sent by something that is not xhedge
    const adapter = run.venues.find((v) => v.id === venue);
    await adapter?.placeOrder({
      clientOrderId: 'not-ours-1',
      instrument,
      side: 'buy',
      sizeBase: '0.7',
      orderType: 'market',
    });
    const brk = await until('the break on the API', async () => {
      const r = await api('GET', '/v1/positions/breaks');
      return (r.json.breaks as { venue: string; instrument: string; diffBase: number }[]).find(
        (b) => b.venue === venue && b.instrument === instrument,
      );
    });
    expect(brk.diffBase).toBeCloseTo(0.7, 6);
    // halt-venue: its kill switch engaged by the check, risk-reducing orders still allowed
    const kill = (await run.killSwitch.engaged()).find((k) => k.scope === `venue:${venue}`);
    expect(kill).toMatchObject({ actor: 'drop-copy', allowRiskReducing: true });
    const metrics = await fetch(`${run.apiUrl}/metrics`, {
      headers: { authorization: `Bearer ${run.admin?.token}` },
    });
    expect(await metrics.text()).toMatch(
      new RegExp(
        `xhedge_position_break\\{venue="${venue}",instrument="${instrument.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"\\} 1`,
      ),
    );
    // the operator explains it: a new baseline at the next quiet read, and the break closes
    const ack = await api('POST', '/v1/positions/breaks/acknowledge', {
      venue,
      instrument,
      reason: 'a test order from outside xhedge',
    });
    expect(ack).toMatchObject({ status: 200, json: { venue, instrument, breakOpen: true } });
    expect(
      (
        await api('POST', '/v1/positions/breaks/acknowledge', {
          venue,
          instrument: 'DOGE-USD:PERP',
          reason: 'never traded',
        })
      ).status,
    ).toBe(404);
    await until('the break closed', async () => {
      const open = (await api('GET', '/v1/positions/breaks')).json.breaks as unknown[];
      return open.length === 0 ? true : undefined;
    });
    const resolved = await run.ledger.listAudit({ action: 'position-break-resolved' });
    expect(resolved[0]?.details).toMatchObject({
      how: 'acknowledged',
      by: expect.stringMatching(/^operator:/),
    });
  }, 120_000);
});
