// `pnpm test:chaos`: kill -9 of worker processes mid-order, Redis killed and restarted while jobs are
// active, Redis restarted empty under an engaged kill switch, venue timeouts whose orders fill later,
// the network to a venue cut (orders that land with their answer lost, requests that never leave,
// every read failing), two orchestrators at once, a breaker tripping.
// Last line: `chaos: trials=N duplicates=D lost=L`; exit 1 unless D = L = 0.
import { type ChildProcess, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { deterministicId, systemClock, TERMINAL_ORDER_STATUSES } from '@xhedge/core';
import {
  clientOrderIdFor,
  connectRedis,
  DropCopy,
  keepControlStateRestored,
  LeaderLease,
  Orchestrator,
  Reconciler,
  startWorkers,
} from '@xhedge/execution';
import { hasRedisServer, type OwnRedis, spawnRedisServer } from '@xhedge/execution/testing';
import { createMarketSimulator } from '@xhedge/sim';
import { Ledger, openDatabase } from '@xhedge/store';
import { type VenueAdapter, VenueNetworkError } from '@xhedge/venue';
import { createPaperVenue, type PaperVenue } from '@xhedge/venue-paper';
import { Redis } from 'ioredis';
import pg from 'pg';
import { intentFor, newPrefix, parts } from './common.ts';
import { serveVenue } from './ipc-venue.ts';
import type { OrchestratorChildMessage } from './orchestrator-child.ts';

export interface Tally {
  name: string;
  trials: number;
  duplicates: number;
  lost: number;
  skipped?: string;
}

const QUICK = process.env.CHAOS_QUICK === '1';
const PG_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function paperVenue(seed: number): PaperVenue {
  const market = createMarketSimulator({
    underlyings: { ETH: { spot: 3500, vol: 0.6 } },
    seed,
    clock: systemClock,
  });
  const v = createPaperVenue({ id: 'pv', kind: 'paper-drift', chain: 'solana:mainnet-beta', market });
  v.seedBalance('USDC', 1e9);
  return v;
}

/** Wraps a venue: a placeOrder for a client id the venue already holds is a duplicate. */
function guarded(v: PaperVenue) {
  const stats = { duplicates: 0, placed: [] as { cid: string; atMs: number }[] };
  const onPlace = async (cid: string) => {
    stats.placed.push({ cid, atMs: Date.now() });
    if (await v.getOrderByClientId(cid).catch(() => null)) stats.duplicates += 1;
  };
  const venue = new Proxy(v, {
    get(t, prop, r) {
      const val = Reflect.get(t, prop, r);
      if (prop === 'placeOrder') {
        return async (req: { clientOrderId: string }) => {
          await onPlace(req.clientOrderId);
          return t.placeOrder(req as never);
        };
      }
      return typeof val === 'function' ? val.bind(t) : val;
    },
  }) as VenueAdapter;
  return { venue, stats, onPlace };
}

/**
 * Intents not terminal, or whose ledger status disagrees with the venue; and, position-wide, the
 * drop-copy check (the product's own): the venue started flat, so what it holds now must be every fill
 * the ledger recorded on it. A fill the ledger does not know (or knows twice) counts as lost.
 */
async function lostOf(ledger: Ledger, venue: VenueAdapter, intentIds: readonly string[]): Promise<number> {
  let lost = 0;
  for (const id of intentIds) {
    const o = await ledger.getOrderByIntent(id);
    const vo = await venue.getOrderByClientId(clientOrderIdFor(id)).catch(() => undefined);
    // each loss is named (intent, ledger, venue, the ledger's last events): a rare one is diagnosable
    const tell = async (why: string) => {
      const events = o ? (await ledger.orderEvents(o.clientOrderId)).slice(-4) : [];
      console.log(
        `    lost: ${id} ${why}: ledger ${o?.status ?? 'missing'}${o?.error ? ` (${o.error.slice(0, 160)})` : ''}, venue ${vo?.status ?? 'none'}; last events ${events.map((e) => `${e.fromStatus ?? '∅'}→${e.toStatus}${e.note ? ` [${e.note.slice(0, 80)}]` : ''}`).join(', ')}`,
      );
    };
    if (!o || !TERMINAL_ORDER_STATUSES.has(o.status)) {
      await tell('not ended');
      lost += 1;
      continue;
    }
    const venueFilled = vo?.status === 'filled';
    if (venueFilled !== (o.status === 'filled')) {
      await tell('ledger and venue disagree');
      lost += 1;
    }
  }
  const instruments = await ledger.instrumentsTraded(venue.id);
  for (const instrument of instruments)
    await ledger.setPositionBaseline({
      venue: venue.id,
      instrument,
      sizeBase: '0',
      atMs: 0,
      actor: 'chaos',
      reason: 'the venue started flat',
    });
  const checks = await new DropCopy({ ledger, graceMs: 0, settleMs: 0 }).check(
    venue.id,
    await venue.fetchPositions(),
    Date.now(),
  );
  for (const c of checks)
    if (c.state !== 'ok') {
      console.log(
        `    drop copy: ${venue.id} ${c.instrument} ${c.state}: venue ${c.venueSizeBase}, ledger ${c.expectedSizeBase ?? '?'}`,
      );
      lost += 1;
    }
  return lost;
}

async function settle(ledger: Ledger, ids: readonly string[], timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    let open = 0;
    for (const id of ids) {
      const o = await ledger.getOrderByIntent(id);
      if (!o || !TERMINAL_ORDER_STATUSES.has(o.status)) open += 1;
    }
    if (open === 0) return;
    await sleep(200);
  }
}

async function reachable(url: string): Promise<boolean> {
  if (url.startsWith('redis')) {
    const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    try {
      await r.connect();
      return (await r.ping()) === 'PONG';
    } catch {
      return false;
    } finally {
      r.disconnect();
    }
  }
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
  try {
    await c.connect();
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => {});
  }
}

// ---- 1. kill -9 of worker processes mid-order --------------------------------------------------
export async function killWorkers(trials: number): Promise<Tally> {
  const name = 'kill -9 worker';
  if (!(await reachable(PG_URL)))
    return {
      name,
      trials: 0,
      duplicates: 0,
      lost: 0,
      skipped: `no Postgres at ${PG_URL} (worker processes need a shared ledger)`,
    };
  const redisUrl = (await reachable(REDIS_URL)) ? REDIS_URL : undefined;
  const redis = await connectRedis({ url: redisUrl });
  const schema = `chaos_${randomBytes(4).toString('hex')}`;
  const db = await openDatabase({ url: PG_URL, schema, poolSize: 4 });
  const ledger = new Ledger(db);
  const prefix = newPrefix('k');
  const cmd = redis.client();
  const p = await parts({ cmd, prefix, ledger, connection: redis.options });
  const paper = paperVenue(11);
  paper.faults.latencyMs = 300;
  const g = guarded(paper);
  const rec = new Reconciler({
    service: p.service,
    ledger,
    redis: cmd,
    prefix,
    minAgeMs: 1000,
    intervalMs: 500,
  });
  rec.start();
  const childPath = fileURLToPath(new URL('./worker-child.ts', import.meta.url));
  const spawnChild = () =>
    new Promise<ChildProcess>((resolve, reject) => {
      const c = fork(childPath, [], {
        execArgv: ['--import', 'tsx'],
        env: {
          ...process.env,
          CHAOS_REDIS_URL: redis.url,
          CHAOS_PREFIX: prefix,
          CHAOS_PG_URL: PG_URL,
          CHAOS_PG_SCHEMA: schema,
          CHAOS_CAPS: JSON.stringify(paper.capabilities),
        },
        stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      });
      serveVenue(c, paper, g.onPlace);
      c.once('message', () => resolve(c));
      c.once('error', reject);
    });
  const ids: string[] = [];
  let spare = spawnChild();
  let live = await spare;
  live.send({ go: true });
  spare = spawnChild();
  let seed = 12345;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
  try {
    for (let i = 0; i < trials; i++) {
      const leg = intentFor(prefix, i, 3500);
      ids.push(leg.id);
      await p.service.submitPlan({ planId: leg.planId, legs: [leg] });
      const cid = clientOrderIdFor(leg.id);
      const end = Date.now() + 10_000;
      while (Date.now() < end && (await ledger.getOrder(cid))?.status === 'queued') await sleep(10);
      await sleep(Math.floor(rnd() * 250)); // before, during or after the venue call
      const dead = live;
      await new Promise<void>((r) => {
        dead.once('exit', () => r());
        dead.kill('SIGKILL');
      });
      live = await spare;
      live.send({ go: true });
      spare = spawnChild();
    }
    await settle(ledger, ids, 60_000);
    return { name, trials, duplicates: g.stats.duplicates, lost: await lostOf(ledger, paper, ids) };
  } finally {
    rec.stop();
    live.kill('SIGKILL');
    (await spare).kill('SIGKILL');
    await p.service.close();
    const keys = await cmd.keys(`${prefix}:*`);
    if (keys.length) await cmd.del(...keys);
    cmd.disconnect();
    await redis.close();
    await db.dropSchema();
    await ledger.close();
    await paper.close?.();
  }
}

/**
 * In-process execution on a given Redis, with a PGlite ledger. `wrapVenue` puts a fault layer between
 * the workers and the (guarded) paper venue; the audit (`lostOf`, `g.stats`) still sees the venue itself.
 */
async function inProcess(
  redisUrl: string | undefined,
  tag: string,
  breakers?: object,
  restoreEveryMs = 500,
  wrapVenue?: (v: VenueAdapter) => VenueAdapter,
) {
  const redis = await connectRedis({ url: redisUrl });
  const ledger = new Ledger(await openDatabase());
  const prefix = newPrefix(tag);
  const cmd = redis.client();
  const p = await parts({
    cmd,
    prefix,
    ledger,
    connection: redis.options,
    ...(breakers ? { breakers } : {}),
  });
  const paper = paperVenue(21);
  const g = guarded(paper);
  const subscriber = redis.client();
  const pool = await startWorkers({
    ...p,
    venues: new Map([['pv', wrapVenue ? wrapVenue(g.venue) : g.venue]]),
    subscriber,
    sendDeadlineMs: 1500,
    pollIntervalMs: 50,
    pollBudgetMs: 1500,
    settings: { lockDuration: 1500, stalledInterval: 500 },
  });
  const rec = new Reconciler({
    service: p.service,
    ledger,
    redis: cmd,
    prefix,
    minAgeMs: 1000,
    intervalMs: 500,
  });
  rec.start();
  // as in a run: the control state comes back from the ledger whenever Redis lost it
  const restorer = keepControlStateRestored(
    { redis: cmd, prefix, killSwitch: p.killSwitch, breakers: p.breakers, ledger },
    { actor: 'chaos', intervalMs: restoreEveryMs },
  );
  await restorer.first;
  return {
    ...p,
    redis,
    ledger,
    prefix,
    cmd,
    paper,
    g,
    async close() {
      await restorer.stop();
      rec.stop();
      await pool.close(true);
      await p.service.close();
      subscriber.disconnect();
      const keys = await cmd.keys(`${prefix}:*`).catch(() => [] as string[]);
      if (keys.length) await cmd.del(...keys);
      cmd.disconnect();
      await redis.close();
      await ledger.close();
      await paper.close?.();
    },
  };
}

/** A redis-server of the scenario's own (no persistence: a restart comes back empty), or why not. */
async function ownRedis(args: string[] = []): Promise<OwnRedis | { skipped: string }> {
  if (!hasRedisServer()) return { skipped: 'redis-server binary not found' };
  return spawnRedisServer(args.length ? args : ['--appendonly', 'no']);
}

// ---- 2. Redis killed and restarted while jobs are active ---------------------------------------
export async function redisRestart(n: number): Promise<Tally> {
  const name = 'redis restart';
  const server = await ownRedis();
  if ('skipped' in server) return { name, trials: 0, duplicates: 0, lost: 0, skipped: server.skipped };
  const env = await inProcess(server.url, 'r');
  env.paper.faults.latencyMs = 200;
  const ids: string[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const leg = intentFor(env.prefix, i, 3500);
      ids.push(leg.id);
      await env.service.submitPlan({ planId: leg.planId, legs: [leg] });
    }
    await sleep(250); // jobs active at the venue
    await server.kill();
    await sleep(1000);
    await server.start(); // empty: every queued job is gone; the ledger re-drives them
    await settle(env.ledger, ids, 45_000);
    return {
      name,
      trials: n,
      duplicates: env.g.stats.duplicates,
      lost: await lostOf(env.ledger, env.paper, ids),
    };
  } finally {
    await env.close();
    server.stop();
  }
}

// ---- 2b. Redis loses the kill switch while it is engaged: no order may trade --------------------
/**
 * The global kill switch is engaged (Redis and ledger), then Redis comes back without it:
 * - `wiped`: restarted empty (no persistence): every key is gone, the control-state mark too;
 * - `rolled back`: restarted from its AOF, which lost the engagement (as `appendfsync everysec` loses
 *   up to a second of writes on a crash; here the engagement is deleted before a kill -9 under
 *   `appendfsync always`, so what the AOF holds is exact): everything else survives, the control-state
 *   mark of the previous server process among it.
 * Orders go in at once after the restart (before the periodic restore) and again after it.
 */
export async function redisLosesKillSwitch(n: number, how: 'wiped' | 'rolled back'): Promise<Tally> {
  const name = `redis ${how} under the kill switch`;
  const server = await ownRedis(
    how === 'rolled back' ? ['--appendonly', 'yes', '--appendfsync', 'always'] : [],
  );
  if ('skipped' in server) return { name, trials: 0, duplicates: 0, lost: 0, skipped: server.skipped };
  // a restore every 3 s (and one on reconnect): orders submitted right after the restart may come
  // before it, and then only the gate's control-state check stands between them and the venue
  const env = await inProcess(server.url, how === 'wiped' ? 'w' : 'b', undefined, 3000);
  const ids: string[] = [];
  const submit = async (i: number) => {
    const leg = intentFor(env.prefix, i, 3500);
    ids.push(leg.id);
    // Redis may still be coming back: a plan that cannot be submitted yet is submitted again
    for (let k = 0; ; k++) {
      try {
        return await env.service.submitPlan({ planId: leg.planId, legs: [leg] });
      } catch (err) {
        if (k >= 50) throw err;
        await sleep(100);
      }
    }
  };
  try {
    await env.killSwitch.engage('global', { actor: 'risk-owner:chaos', reason: 'incident' });
    const engagedAt = Date.now();
    if (how === 'rolled back') await env.cmd.hdel(env.killSwitch.stateKey, 'global'); // the lost write
    await server.kill();
    // wiped: empty; rolled back: the AOF's keys, without the engagement. The ledger still has it.
    await server.start();
    await sleep(300);
    // at once after the restart (before any restore can have run) and again after it
    for (let i = 0; i < n; i++) await submit(i);
    await sleep(3500);
    for (let i = n; i < 2 * n; i++) await submit(i);
    await settle(env.ledger, ids, 20_000);
    return {
      name,
      trials: 2 * n,
      // every order that reached the venue after the engagement is a breach
      duplicates: env.g.stats.placed.filter((x) => x.atMs >= engagedAt).length,
      lost: await lostOf(env.ledger, env.paper, ids),
    };
  } finally {
    await env.close();
    server.stop();
  }
}

// ---- 3. venue timeouts whose orders fill later -------------------------------------------------
export async function lateFills(n: number): Promise<Tally> {
  const env = await inProcess((await reachable(REDIS_URL)) ? REDIS_URL : undefined, 't');
  env.paper.faults.timeoutNext({ count: n, fillDelayMs: 300 });
  const ids: string[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const leg = intentFor(env.prefix, i, 3500);
      ids.push(leg.id);
      await env.service.submitPlan({ planId: leg.planId, legs: [leg] });
    }
    await settle(env.ledger, ids, 45_000);
    return {
      name: 'late fills',
      trials: n,
      duplicates: env.g.stats.duplicates,
      lost: await lostOf(env.ledger, env.paper, ids),
    };
  } finally {
    await env.close();
  }
}

// ---- 3b. the network to a venue cut ------------------------------------------------------------
/** Every adapter call besides placeOrder that goes over the network (reads, and cancels). */
const NETWORK_CALLS: ReadonlySet<PropertyKey> = new Set<keyof VenueAdapter>([
  'loadMarkets',
  'fetchPositions',
  'fetchBalances',
  'fetchMarks',
  'fetchFills',
  'fetchOrderBook',
  'fetchGreeks',
  'fetchOptionChain',
  'fetchFundingRate',
  'quoteHedge',
  'getOrderByClientId',
  'cancelOrder',
  'health',
]);

/** What a network cut did to the calls that met it. */
export interface CutStats {
  /** placeOrder calls that reached the venue and whose answer was lost (outcome unknown). */
  landedUnanswered: number;
  /** placeOrder calls that never left (not sent, retryable). */
  notSent: number;
  /** Other calls (lookups, fills, marks, health...) that failed. */
  callsFailed: number;
}

/**
 * A cut of the network between the workers and one venue, as a wrapper around its adapter. While the
 * window is open: every other placeOrder reaches the venue and then its answer is lost (a network error,
 * outcome `unknown`), the others never leave (network error, `not-sent`, retryable); every other network
 * call fails with a retryable network error. Before and after the window every call passes through.
 */
class NetworkCut {
  readonly stats: CutStats = { landedUnanswered: 0, notSent: 0, callsFailed: 0 };
  #fromMs = 0;
  #untilMs = 0;
  #places = 0;

  /** Opens the cut from `fromMs` until `untilMs` (epoch ms); a call is cut when it starts inside. */
  schedule(fromMs: number, untilMs: number): void {
    if (!(untilMs > fromMs)) throw new RangeError(`cut window ${fromMs}..${untilMs} is empty`);
    this.#fromMs = fromMs;
    this.#untilMs = untilMs;
  }

  #isCut(): boolean {
    const now = Date.now();
    return now >= this.#fromMs && now < this.#untilMs;
  }

  #error(venue: string, what: string, outcome: 'unknown' | 'not-sent', clientOrderId?: string) {
    return new VenueNetworkError({
      venue,
      message: `${what}: connection reset (injected network cut)`,
      outcome,
      retryable: true,
      ...(clientOrderId ? { clientOrderId } : {}),
    });
  }

  wrap(inner: VenueAdapter): VenueAdapter {
    return new Proxy(inner, {
      get: (t, prop, r) => {
        const val = Reflect.get(t, prop, r);
        if (typeof val !== 'function') return val;
        if (prop === 'placeOrder') {
          return async (req: Parameters<VenueAdapter['placeOrder']>[0]) => {
            if (!this.#isCut()) return t.placeOrder(req);
            if (this.#places++ % 2 === 0) {
              // the order lands; whatever the venue answered never comes back
              await t.placeOrder(req).catch(() => undefined);
              this.stats.landedUnanswered += 1;
              throw this.#error(t.id, 'placeOrder', 'unknown', req.clientOrderId);
            }
            this.stats.notSent += 1;
            throw this.#error(t.id, 'placeOrder', 'not-sent', req.clientOrderId);
          };
        }
        if (NETWORK_CALLS.has(prop)) {
          return async (...args: unknown[]) => {
            if (!this.#isCut()) return val.apply(t, args);
            this.stats.callsFailed += 1;
            throw this.#error(t.id, String(prop), 'not-sent');
          };
        }
        return val.bind(t);
      },
    });
  }
}

/**
 * The venue breaker of the `breaker: true` run: the default error rate and minimum of calls, with the
 * window and cooldown scaled to the cut (60 s / 30 s in production against outages of minutes), so it
 * trips during the cut, re-opens on a failed half-open trial, and is closed again soon after the cut.
 */
const CUT_BREAKERS = { venue: { minRequests: 5, errorRatePct: 50, windowSeconds: 2, cooldownSeconds: 1 } };

/**
 * Plans sent before, during and right after a cut of the network to the venue (`CUT_MS`): orders whose
 * answer was lost must be looked up, not re-sent, once the venue answers again; orders that never left
 * are sent again. Without `breaker` the venue breaker never trips, so every send in the window meets
 * the cut; with it (`CUT_BREAKERS`) the breaker trips on the cut's errors and blocks part of the sends
 * (those orders end cancelled, never sent), as it would in a run.
 */
export async function networkCut(
  n: number,
  o: { breaker?: boolean } = {},
): Promise<Tally & { cut: CutStats }> {
  const CUT_MS = 1500;
  const cut = new NetworkCut();
  const env = await inProcess(
    (await reachable(REDIS_URL)) ? REDIS_URL : undefined,
    'n',
    o.breaker ? CUT_BREAKERS : undefined,
    500,
    (v) => cut.wrap(v),
  );
  const ids: string[] = [];
  try {
    // submissions spread over twice the cut: a quarter before it, half during, a quarter after
    const spacingMs = (2 * CUT_MS) / n;
    const t0 = Date.now();
    const fromMs = t0 + CUT_MS / 2;
    cut.schedule(fromMs, fromMs + CUT_MS);
    const when = { before: 0, during: 0, after: 0 };
    for (let i = 0; i < n; i++) {
      const atMs = t0 + i * spacingMs;
      if (atMs > Date.now()) await sleep(atMs - Date.now());
      const now = Date.now();
      when[now < fromMs ? 'before' : now < fromMs + CUT_MS ? 'during' : 'after'] += 1;
      const leg = intentFor(env.prefix, i, 3500);
      ids.push(leg.id);
      await env.service.submitPlan({ planId: leg.planId, legs: [leg] });
    }
    await settle(env.ledger, ids, 45_000);
    const ended = new Map<string, number>();
    for (const id of ids) {
      const s = (await env.ledger.getOrderByIntent(id))?.status ?? 'missing';
      ended.set(s, (ended.get(s) ?? 0) + 1);
    }
    const trips = (await env.ledger.listBreakerEvents({ breaker: 'venue:pv' })).filter(
      (e) => e.toState === 'open',
    ).length;
    console.log(
      `    (submitted ${when.before} before / ${when.during} during / ${when.after} after a ${CUT_MS} ms cut; ` +
        `in it placeOrder landed unanswered=${cut.stats.landedUnanswered} not sent=${cut.stats.notSent}, ` +
        `other calls failed=${cut.stats.callsFailed}; venue breaker opened ${trips}×; ended ` +
        `${[...ended].map(([s, k]) => `${s}=${k}`).join(' ')})`,
    );
    return {
      name: `network cut to a venue${o.breaker ? ' (venue breaker live)' : ''}`,
      trials: n,
      duplicates: env.g.stats.duplicates,
      lost: await lostOf(env.ledger, env.paper, ids),
      cut: { ...cut.stats },
    };
  } finally {
    await env.close();
  }
}

// ---- 4. two orchestrators at once --------------------------------------------------------------
export async function twoOrchestrators(ms: number): Promise<Tally> {
  const env = await inProcess((await reachable(REDIS_URL)) ? REDIS_URL : undefined, 'o');
  const ticks: { who: string; token: number; atMs: number }[] = [];
  let n = 0;
  const mk = (who: string) => {
    const lease = new LeaderLease({
      redis: env.cmd,
      prefix: env.prefix,
      name: 'orch',
      ttlMs: 600,
      holderId: who,
      tokenFloor: () => env.ledger.fencingToken('orch'),
    });
    return new Orchestrator({
      lease,
      service: env.service,
      intervalMs: 50,
      plan: async ({ token }) => {
        const leg = intentFor(env.prefix, 10_000 + n++, 3500, {
          planId: deterministicId('plan', env.prefix, who, token, n),
        });
        ticks.push({ who, token, atMs: Date.now() });
        return [{ planId: leg.planId, legs: [leg] }];
      },
    });
  };
  const a = mk('a');
  const b = mk('b');
  try {
    a.start();
    b.start();
    await sleep(ms / 2);
    await a.stop(); // the leader goes away; the standby must take over
    await sleep(ms / 2);
    await b.stop();
    const intents = (await env.ledger.listIntents({ limit: 5000 })).sort(
      (x, y) => x.recordedAtMs - y.recordedAtMs,
    );
    let doubles = 0;
    for (let i = 1; i < intents.length; i++) {
      if ((intents[i]?.fencingToken ?? 0) < (intents[i - 1]?.fencingToken ?? 0)) doubles += 1;
    }
    // within one token, exactly one holder planned
    const holders = new Map<number, Set<string>>();
    for (const t of ticks) holders.set(t.token, (holders.get(t.token) ?? new Set()).add(t.who));
    for (const s of holders.values()) if (s.size > 1) doubles += 1;
    const who = new Set(ticks.map((t) => t.who));
    const lost = who.size === 2 ? 0 : 1; // the standby never took over
    await settle(
      env.ledger,
      intents.map((i) => i.id),
      30_000,
    );
    return {
      name: 'two orchestrators',
      trials: holders.size,
      duplicates: doubles + env.g.stats.duplicates,
      lost,
    };
  } finally {
    await env.close();
  }
}

// ---- 4b. two orchestrator processes: a paused leader is fenced, a killed leader is replaced ------
export async function leaderKilled(ttlMs: number): Promise<Tally> {
  const name = 'orchestrator SIGSTOP/SIGKILL';
  if (!(await reachable(PG_URL)))
    return {
      name,
      trials: 0,
      duplicates: 0,
      lost: 0,
      skipped: `no Postgres at ${PG_URL} (orchestrator processes need a shared ledger)`,
    };
  const redisUrl = (await reachable(REDIS_URL)) ? REDIS_URL : undefined;
  const redis = await connectRedis({ url: redisUrl });
  const schema = `chaos_${randomBytes(4).toString('hex')}`;
  const db = await openDatabase({ url: PG_URL, schema, poolSize: 4 });
  const ledger = new Ledger(db);
  const prefix = newPrefix('l');
  const cmd = redis.client();
  const p = await parts({ cmd, prefix, ledger, connection: redis.options });
  const paper = paperVenue(31);
  const g = guarded(paper);
  const subscriber = redis.client();
  const pool = await startWorkers({
    ...p,
    venues: new Map([['pv', g.venue]]),
    subscriber,
    sendDeadlineMs: 1500,
    pollIntervalMs: 50,
    pollBudgetMs: 1500,
  });
  const rec = new Reconciler({
    service: p.service,
    ledger,
    redis: cmd,
    prefix,
    minAgeMs: 1000,
    intervalMs: 500,
  });
  rec.start();
  const events: (OrchestratorChildMessage & { atMs: number })[] = [];
  const childPath = fileURLToPath(new URL('./orchestrator-child.ts', import.meta.url));
  const children = new Map<string, ChildProcess>();
  const spawnChild = (holder: string) => {
    const c = fork(childPath, [], {
      execArgv: ['--import', 'tsx'],
      env: {
        ...process.env,
        CHAOS_REDIS_URL: redis.url,
        CHAOS_PREFIX: prefix,
        CHAOS_PG_URL: PG_URL,
        CHAOS_PG_SCHEMA: schema,
        CHAOS_HOLDER: holder,
        CHAOS_TTL_MS: String(ttlMs),
      },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    c.on('message', (m: OrchestratorChildMessage) => events.push({ ...m, atMs: Date.now() }));
    children.set(holder, c);
    return c;
  };
  const waitFor = async <T>(pick: () => T | undefined, timeoutMs: number): Promise<T | undefined> => {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const v = pick();
      if (v !== undefined) return v;
      if (Date.now() > end) return undefined;
      await sleep(20);
    }
  };
  type Planned = Extract<OrchestratorChildMessage, { kind: 'planned' }> & { atMs: number };
  const planned = () => events.filter((e): e is Planned => e.kind === 'planned');
  let duplicates = 0;
  let lost = 0;
  try {
    spawnChild('a');
    spawnChild('b');
    const first = await waitFor(() => planned()[0], 30_000);
    if (!first) throw new Error('no orchestrator became leader');
    const leader1 = first.holder;
    const standby = leader1 === 'a' ? 'b' : 'a';
    const c1 = children.get(leader1) as ChildProcess;
    await sleep(800); // it plans a few ticks
    // phase 1: the leader is paused between its lease check and its fenced ledger write
    c1.send({ cmd: 'stall' });
    const stalled = await waitFor(() => events.find((e) => e.kind === 'stalled'), 10_000);
    if (stalled?.kind !== 'stalled') throw new Error('the leader never reached its ledger write');
    c1.kill('SIGSTOP');
    const taken = await waitFor(
      () => planned().find((e) => e.holder === standby && e.token > (stalled.token ?? 0)),
      ttlMs * 5 + 5_000,
    );
    if (!taken) lost += 1; // the standby never took over
    c1.kill('SIGCONT');
    c1.send({ cmd: 'release' });
    const fenced = await waitFor(
      () => events.find((e) => e.kind === 'fenced' && e.holder === leader1),
      10_000,
    );
    // the late write must be refused by the fencing token; anything else is a plan by two leaders
    if (!fenced) duplicates += 1;
    await sleep(800);
    // phase 2: the new leader is killed outright (no lease release); the old one takes over after the TTL
    const c2 = children.get(standby) as ChildProcess;
    const lastToken = Math.max(...planned().map((e) => e.token));
    const killedAt = Date.now();
    await new Promise<void>((r) => {
      c2.once('exit', () => r());
      c2.kill('SIGKILL');
    });
    const back = await waitFor(
      () => planned().find((e) => e.holder === leader1 && e.token > lastToken),
      ttlMs * 5 + 5_000,
    );
    if (!back) lost += 1;
    else if (back.atMs - killedAt < ttlMs / 2) duplicates += 1; // took over before the dead lease expired
    await sleep(500);
    for (const c of children.values()) c.kill('SIGKILL');
    // audit: one holder per token, tokens never go back in ledger order, every intent executed once
    const intents = (await ledger.listIntents({ limit: 5000 })).sort(
      (x, y) => x.recordedAtMs - y.recordedAtMs,
    );
    const holders = new Map<number, Set<string>>();
    for (const i of intents) {
      const who = /orchestrator (\w+) token/.exec(i.reason)?.[1] ?? '?';
      const t = i.fencingToken ?? 0;
      holders.set(t, (holders.get(t) ?? new Set()).add(who));
    }
    for (const s of holders.values()) if (s.size > 1) duplicates += 1;
    for (let i = 1; i < intents.length; i++) {
      if ((intents[i]?.fencingToken ?? 0) < (intents[i - 1]?.fencingToken ?? 0)) duplicates += 1;
    }
    const ids = intents.map((i) => i.id);
    await settle(ledger, ids, 30_000);
    duplicates += g.stats.duplicates;
    lost += await lostOf(ledger, paper, ids);
    console.log(
      `    (${intents.length} plans under ${holders.size} tokens; takeover after SIGKILL in ${back ? back.atMs - killedAt : '∞'} ms, lease TTL ${ttlMs} ms; late write ${fenced ? 'fenced' : 'NOT fenced'})`,
    );
    return { name, trials: holders.size, duplicates, lost };
  } finally {
    for (const c of children.values()) c.kill('SIGKILL');
    rec.stop();
    await pool.close(true);
    await p.service.close();
    subscriber.disconnect();
    const keys = await cmd.keys(`${prefix}:*`);
    if (keys.length) await cmd.del(...keys);
    cmd.disconnect();
    await redis.close();
    await db.dropSchema();
    await ledger.close();
    await paper.close?.();
  }
}

// ---- 5. a breaker tripping: no order sent after the trip ---------------------------------------
// "After the trip" is decided by when each send was decided, not by when it reached the venue: the
// trip is recorded by another order's failure, so an order whose gate passed just before it (in
// Redis, where both are decided) can reach the venue a few microseconds after the trip's record, on
// the other side of a millisecond. A send's decision time is in the ledger: the `sent` event is at
// its send claim's time (taken as its gate started), a re-send's `resend` event at its claim of the
// re-send (before its gate). A send decided after the trip was recorded is a failure.
export async function breakerTrip(n: number): Promise<Tally> {
  const env = await inProcess((await reachable(REDIS_URL)) ? REDIS_URL : undefined, 'b', {
    venue: { minRequests: 3, errorRatePct: 50, cooldownSeconds: 600 },
  });
  env.paper.faults.halt();
  const ids: string[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const leg = intentFor(env.prefix, i, 3500);
      ids.push(leg.id);
      await env.service.submitPlan({ planId: leg.planId, legs: [leg] });
    }
    await settle(env.ledger, ids, 45_000);
    env.paper.faults.resume(); // so the audit below can ask the venue
    const trip = (await env.ledger.listBreakerEvents({ breaker: 'venue:pv' })).find(
      (e) => e.toState === 'open',
    );
    let after = trip ? 0 : n;
    let lateGapMs = 0;
    for (const x of trip ? env.g.stats.placed.filter((p) => p.atMs > trip.atMs) : []) {
      const decided = (await env.ledger.orderEvents(x.cid))
        .filter((e) => e.toStatus === 'sent' && e.atMs <= x.atMs)
        .map((e) => e.atMs);
      const at = decided.length > 0 ? Math.max(...decided) : Number.POSITIVE_INFINITY;
      if (!trip || at > trip.atMs) after += 1;
      else lateGapMs = Math.max(lateGapMs, x.atMs - at);
    }
    if (lateGapMs > 0)
      console.log(
        `    (a send decided before the trip reached the venue after it; decision → venue ${lateGapMs} ms)`,
      );
    return {
      name: 'breaker trip',
      trials: n,
      duplicates: after,
      lost: await lostOf(env.ledger, env.paper, ids),
    };
  } finally {
    await env.close();
  }
}

export async function runChaos(quick: boolean): Promise<Tally[]> {
  const out: Tally[] = [];
  const report = (t: Tally) => {
    out.push(t);
    console.log(
      t.skipped
        ? `  ${t.name}: SKIPPED (${t.skipped})`
        : `  ${t.name}: trials=${t.trials} duplicates=${t.duplicates} lost=${t.lost}`,
    );
  };
  report(await lateFills(quick ? 5 : 20));
  report(await networkCut(quick ? 6 : 20));
  report(await networkCut(quick ? 6 : 20, { breaker: true }));
  report(await breakerTrip(quick ? 6 : 12));
  report(await twoOrchestrators(quick ? 1500 : 4000));
  report(await leaderKilled(1000));
  report(await redisRestart(quick ? 8 : 20));
  report(await redisLosesKillSwitch(quick ? 5 : 15, 'wiped'));
  report(await redisLosesKillSwitch(quick ? 5 : 15, 'rolled back'));
  report(await killWorkers(quick ? 5 : 50));
  return out;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const t0 = Date.now();
  const res = await runChaos(QUICK);
  const sum = (k: 'trials' | 'duplicates' | 'lost') => res.reduce((s, t) => s + t[k], 0);
  console.log(`  (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  console.log(`chaos: trials=${sum('trials')} duplicates=${sum('duplicates')} lost=${sum('lost')}`);
  process.exit(sum('duplicates') === 0 && sum('lost') === 0 ? 0 : 1);
}
