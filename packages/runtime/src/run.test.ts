import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, VenueConfig, type XhedgeConfig } from '@xhedge/config';
import { DRIFT_PROGRAM_ID } from '@xhedge/venue-drift';
import { driftDryRunProfile, driftFixture, startDriftRpcServer } from '@xhedge/venue-drift/testing';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { type Run, startRun } from './run.ts';

// biome-ignore lint/suspicious/noExplicitAny: error bodies are read loosely
type Loose = any;
const PAPER = readFileSync(new URL('../../../configs/profiles/paper.yaml', import.meta.url), 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'xhedge-run-'));
const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
  rmSync(dir, { recursive: true, force: true });
});

/** A run (embedded Redis, PGlite in a folder of its own) whose log lines are kept, debug ones too. */
async function started(config: XhedgeConfig, env: Record<string, string>) {
  const lines: { msg?: string; part?: string }[] = [];
  const run: Run = await startRun({
    config,
    env: { XHEDGE_API_TOKEN: randomBytes(32).toString('hex'), ...env },
    port: 0,
    dataDir: join(dir, `data-${randomBytes(4).toString('hex')}`),
    logger: pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) }),
  });
  cleanup.push(() => run.stop());
  return { run, lines };
}

/**
 * The paper profile's gmx-arb (paper) beside a real `drift` venue (Solana JSON-RPC over litesvm holding
 * Drift's accounts) in a dry run: a mixed book.
 */
async function mixedProfile(): Promise<{ config: XhedgeConfig; env: Record<string, string> }> {
  const f = await driftFixture({ nowMs: Date.now() });
  const server = await startDriftRpcServer(f.rpc);
  cleanup.push(() => server.close());
  const drift = parseConfig(
    driftDryRunProfile({
      name: 'mixed',
      dataDir: join(dir, 'unused'),
      rpcUrl: server.url,
      programId: f.programId.toBase58(),
    }),
    'drift.yaml',
  );
  const paper = parseConfig(PAPER, 'paper.yaml');
  const config: XhedgeConfig = {
    ...paper,
    name: `mixed-${randomBytes(4).toString('hex')}`,
    dryRun: true,
    venues: [...paper.venues.filter((v) => v.id === 'gmx-arb'), ...drift.venues],
    book: {
      ...paper.book,
      positions: paper.book.positions.filter((p) => p.venue === 'gmx-arb'),
      balances: paper.book.balances.filter((b) => b.venue === 'gmx-arb'),
    },
  };
  return { config, env: { XHEDGE_DRIFT_KEY: JSON.stringify(Array.from(f.authority.secretKey)) } };
}

describe('a run with paper and real venues', () => {
  it('does not clear the book mark at start (regression: any paper venue cleared it, so every restart forgot the loss since it)', async () => {
    const { config, env } = await mixedProfile();
    const { run } = await started(config, env);
    expect(run.venues.map((v) => v.id).sort()).toEqual(['drift-sol', 'gmx-arb']);
    expect(await run.ledger.listAudit({ action: 'book-mark.clear' })).toEqual([]);
  }, 60_000);

  it('keeps real time: paper venues beside a real one do not speed the clock up (regression: one paper venue put the real venues on the 60× clock)', async () => {
    const { config, env } = await mixedProfile();
    const { run, lines } = await started(config, env);
    const before = run.clock.nowMs() - Date.now();
    await new Promise((r) => setTimeout(r, 300));
    const after = run.clock.nowMs() - Date.now();
    // at 60× the simulated clock would have run ~17.7 s ahead in 300 ms
    expect(Math.abs(after - before)).toBeLessThan(100);
    expect(
      lines.some((l) => /simulated market runs at real time \(1×\), not market\.speed 60×/.test(l.msg ?? '')),
    ).toBe(true);
  }, 60_000);

  it('an all-paper run (60×) refuses a real venue added through the API, before it is stored', async () => {
    const config = parseConfig(PAPER, 'paper.yaml');
    const token = randomBytes(32).toString('hex');
    const { run } = await started(
      { ...config, name: `paper-${randomBytes(4).toString('hex')}` },
      { XHEDGE_API_TOKEN: token },
    );
    const real = parseConfig(
      driftDryRunProfile({
        name: 'r',
        dataDir: join(dir, 'unused'),
        rpcUrl: 'http://127.0.0.1:9',
        programId: DRIFT_PROGRAM_ID,
      }),
      'drift.yaml',
    ).venues[0] as VenueConfig;
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const res = await fetch(`${run.apiUrl}/v1/venues`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ ...real, id: 'drift-real' }),
    });
    const body = (await res.json()) as { error: { message: string } };
    expect(res.status).toBe(400);
    expect(body.error.message).toMatch(
      /venue drift-real \(drift\) is real, but this run's clock is the simulated market's, 60× real time/,
    );
    const list = (await (await fetch(`${run.apiUrl}/v1/venues`, { headers })).json()) as { id: string }[];
    expect(list.map((v) => v.id)).not.toContain('drift-real');
  }, 60_000);

  it('a paper run restarted on its ledger starts its clock after the newest row (regression: the last run stamped rows ahead of the wall clock, which blocked hedging until the clock caught up)', async () => {
    const config = { ...parseConfig(PAPER, 'paper.yaml'), name: `restart-${randomBytes(4).toString('hex')}` };
    const dataDir = join(dir, `restart-${randomBytes(4).toString('hex')}`);
    const env = { XHEDGE_API_TOKEN: randomBytes(32).toString('hex') };
    const first = await startRun({ config, env, port: 0, dataDir, logger: pino({ level: 'silent' }) });
    // ten wall minutes of a 60× run stamp rows ten hours ahead
    const aheadMs = Date.now() + 10 * 3_600_000;
    await first.ledger.recordRiskSnapshot({ seq: 1e12, asOfMs: aheadMs, snapshot: {} });
    await first.stop();
    const second = await startRun({ config, env, port: 0, dataDir, logger: pino({ level: 'silent' }) });
    expect(second.clock.nowMs()).toBeGreaterThan(aheadMs);
    await second.stop();
    // a real-time run (a real venue in the profile) on that ledger is refused, naming the gap
    const mixed = await mixedProfile();
    await expect(
      startRun({
        config: mixed.config,
        env: { ...env, ...mixed.env },
        port: 0,
        dataDir,
        logger: pino({ level: 'silent' }),
      }),
    ).rejects.toThrow(/h ahead of this run's real-time clock: it was written by a simulated/);
  }, 120_000);

  it('an all-paper run still starts its mark afresh; a venue cap naming no venue is said at start', async () => {
    const config = parseConfig(PAPER, 'paper.yaml');
    const limits = { ...config.limits, maxVenueNotionalUsd: { 'gmx-arbitrum': 1000, '*': 5_000_000 } };
    const { run, lines } = await started(
      { ...config, limits, name: `paper-${randomBytes(4).toString('hex')}` },
      {},
    );
    expect(await run.ledger.listAudit({ action: 'book-mark.clear' })).toHaveLength(1);
    expect(lines.map((l) => l.msg)).toContain(
      'limits.maxVenueNotionalUsd names no venue of this run: gmx-arbitrum; those caps apply to nothing until a venue with that id is added (a typo leaves the venue under the * cap or none)',
    );
  }, 60_000);
});

describe('disabled venues at start', () => {
  it('are built read-only and read into the book; one that cannot be built (its key env var not set) neither fails the start nor holds hedging, and is named in the warnings', async () => {
    const paper = parseConfig(PAPER, 'paper.yaml');
    const broken = VenueConfig.parse({
      id: 'drift-broken',
      kind: 'drift',
      chain: 'solana:mainnet-beta',
      enabled: false,
      endpoints: { rpc: ['https://alice:hunter2@rpc.example/'] },
      credentials: { signer: { env: 'XHEDGE_BROKEN_KEY' } },
      params: {
        programId: '11111111111111111111111111111111',
        markets: [{ instrument: 'SOL-USD:PERP', marketIndex: 0 }],
      },
    });
    const config: XhedgeConfig = {
      ...paper,
      name: `disabled-${randomBytes(4).toString('hex')}`,
      venues: [...paper.venues.map((v) => (v.id === 'drift-sol' ? { ...v, enabled: false } : v)), broken],
    };
    const { run, lines } = await started(config, {});
    expect(run.venues.map((v) => v.id).sort()).toEqual(['drift-sol', 'gmx-arb', 'lyra-arb', 'uni-eth']);
    const until = Date.now() + 30_000;
    while (!run.planner?.lastSnapshot && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    const snap = run.planner?.lastSnapshot;
    expect(snap?.underlyings.ETH?.byVenue['drift-sol']?.delta).toBeCloseTo(40, 6);
    expect(snap?.warnings).toContain(
      'disabled venue drift-broken not read (its adapter is not built): its positions are not in the book until it runs (it holds no hedge: it is disabled)',
    );
    // nothing is held for it (an enabled venue it could not build would hold every underlying)
    expect(snap?.warnings.join('\n')).not.toMatch(/no hedge for/);
    const built = lines.filter((l) => /drift-broken.*disabled venue not built/.test(l.msg ?? ''));
    expect(built).toHaveLength(1);
    expect(built[0]?.msg).toMatch(/XHEDGE_BROKEN_KEY/);
    expect(JSON.stringify(lines)).not.toContain('hunter2');
  }, 60_000);
});

describe('shutdown order', () => {
  it('stops planning right after the API, before the workers (regression: it planned on while they drained)', async () => {
    const config = parseConfig(PAPER, 'paper.yaml');
    const { run, lines } = await started({ ...config, name: `stop-${randomBytes(4).toString('hex')}` }, {});
    await run.stop();
    const closed = lines.filter((l) => l.msg === 'closing').map((l) => l.part);
    expect(closed.slice(0, 2)).toEqual(['api', 'orchestrator']);
    expect(closed.indexOf('orchestrator')).toBeLessThan(closed.indexOf('workers'));
  }, 60_000);
});

describe('operator changes through the API when the ledger fails after them', () => {
  it('a book mark and a position acknowledgement in force answer 500 AUDIT_UNRECORDED (details.applied), not a bare 500 INTERNAL', async () => {
    const config = parseConfig(PAPER, 'paper.yaml');
    const token = randomBytes(32).toString('hex');
    const { run, lines } = await started(
      { ...config, name: `unrec-${randomBytes(4).toString('hex')}` },
      { XHEDGE_API_TOKEN: token },
    );
    const post = async (path: string, body: unknown) => {
      const res = await fetch(`${run.apiUrl}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as { error: Record<string, Loose> } };
    };
    await run.ledger.setPositionBaseline({
      venue: 'gmx-arb',
      instrument: 'BTC-USD:PERP',
      sizeBase: '0',
      actor: 'drop-copy',
      reason: 'quiet read',
    });
    // the ledger refuses audit entries from now on (a real database error)
    await run.ledger.db.schema.alterTable('audit').renameTo('audit_down').execute();
    const mark = await post('/v1/risk/mark', { equityUsd: 123_456, reason: 'new day', force: true });
    expect(mark.status).toBe(500);
    expect(mark.body.error.code).toBe('AUDIT_UNRECORDED');
    expect(mark.body.error.message).toMatch(/book marked at 123456 USD \(in force\)/);
    expect(mark.body.error.details).toMatchObject({ applied: true, result: { markUsd: 123_456 } });
    const ack = await post('/v1/positions/breaks/acknowledge', {
      venue: 'gmx-arb',
      instrument: 'BTC-USD:PERP',
      reason: 'explained',
    });
    expect(ack.status).toBe(500);
    expect(ack.body.error.code).toBe('AUDIT_UNRECORDED');
    expect(ack.body.error.details).toMatchObject({ applied: true, target: 'gmx-arb/BTC-USD:PERP' });
    expect(lines.filter((l) => /record this entry by hand/.test(l.msg ?? ''))).toHaveLength(2);
    await run.ledger.db.schema.alterTable('audit_down').renameTo('audit').execute();
  }, 60_000);
});

describe('planning deadlines', () => {
  it('refuses a venue read deadline not below the tick watchdog, naming both', async () => {
    const config = parseConfig(PAPER, 'paper.yaml');
    await expect(
      startRun({
        config,
        env: {},
        port: 0,
        dataDir: join(dir, 'unused-deadlines'),
        venueReadTimeoutMs: 60_000,
      }),
    ).rejects.toThrow('venueReadTimeoutMs 60000 must be below tickTimeoutMs 60000');
    await expect(
      startRun({ config, env: {}, port: 0, dataDir: join(dir, 'unused-deadlines'), tickTimeoutMs: 5000 }),
    ).rejects.toThrow('venueReadTimeoutMs 10000 must be below tickTimeoutMs 5000');
  });

  it('refuses a venue tick budget not below the tick watchdog', async () => {
    const config = parseConfig(PAPER, 'paper.yaml');
    const dataDir = join(dir, 'unused-deadlines');
    await expect(startRun({ config, env: {}, port: 0, dataDir, venueTickBudgetMs: 60_000 })).rejects.toThrow(
      'venueTickBudgetMs 60000 must be below tickTimeoutMs 60000',
    );
  });
});

describe('planning ticks that fail', () => {
  it('are counted on xhedge_planner_tick_failures_total (failures after the snapshot keep its seq moving, so only this counter shows them); the leader says so on xhedge_leader', async () => {
    const config = parseConfig(PAPER, 'paper.yaml');
    const token = randomBytes(32).toString('hex');
    const { run } = await started(
      { ...config, name: `tickfail-${randomBytes(4).toString('hex')}` },
      { XHEDGE_API_TOKEN: token },
    );
    const failures = async () => {
      const res = await fetch(`${run.apiUrl}/metrics`, { headers: { authorization: `Bearer ${token}` } });
      const m = /^xhedge_planner_tick_failures_total (\d+)/m.exec(await res.text());
      return m ? Number(m[1]) : undefined;
    };
    expect(await failures()).toBe(0);
    // the run's planner holds the lease: said on xhedge_leader, and the taking counted
    const metric = async (name: string) => {
      const res = await fetch(`${run.apiUrl}/metrics`, { headers: { authorization: `Bearer ${token}` } });
      const m = new RegExp(`^${name} (\\d+)`, 'm').exec(await res.text());
      return m ? Number(m[1]) : undefined;
    };
    const leadBy = Date.now() + 20_000;
    while ((await metric('xhedge_leader')) !== 1 && Date.now() < leadBy)
      await new Promise((r) => setTimeout(r, 200));
    expect(await metric('xhedge_leader')).toBe(1);
    expect(await metric('xhedge_leader_acquisitions_total')).toBe(1);
    // every tick reads the newest snapshot first: with its table gone (a real database error) each fails
    await run.ledger.db.schema.alterTable('risk_snapshots').renameTo('risk_snapshots_down').execute();
    try {
      const deadline = Date.now() + 30_000;
      while (((await failures()) ?? 0) < 2 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 200));
      expect(await failures()).toBeGreaterThanOrEqual(2);
    } finally {
      await run.ledger.db.schema.alterTable('risk_snapshots_down').renameTo('risk_snapshots').execute();
    }
  }, 60_000);
});
