import { randomUUID } from 'node:crypto';
import {
  type Clock,
  canTransition,
  type Fill,
  type HedgeIntent,
  type Order,
  type OrderStatus,
  parseOrThrow,
  redact,
  systemClock,
  TERMINAL_ORDER_STATUSES,
} from '@xhedge/core';
import { isLedgerUnavailable, type Ledger, LedgerConflictError, type LedgerOrder } from '@xhedge/store';
import { isVenueError, type VenueAdapter } from '@xhedge/venue';
import { DelayedError, type Job, UnrecoverableError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { BreakerBoard, ReduceOnlyPass, Trial } from './breakers.ts';
import type { ControlContext, MarketDataSource, PreTradeControls } from './controls.ts';
import { type GateResult, OrderGate, type SendGateResult } from './gate.ts';
import {
  type CancelClaim,
  type KillEngagement,
  KillEvent,
  type KillSwitch,
  scopeCovers,
} from './kill-switch.ts';
import type { ExecutionMetrics } from './metrics.ts';
import {
  OrderJobData,
  type OrderJobResult,
  type OrderWorkerSettings,
  orderQueueName,
  orderWorkerOptions,
} from './queue.ts';
import type { ConnectionOptions } from './redis.ts';
import { FAST_SEND_WINDOW_MS, type SendClaim, SendClaims } from './send-claim.ts';
import { within } from './within.ts';

/** Order worker errors in one streak are summed up in a log line at most this often, ms. */
const WORKER_ERROR_SUMMARY_MS = 30_000;

export interface StartWorkersOptions {
  /** BullMQ connection options (each worker owns its connections). */
  connection: ConnectionOptions;
  queuePrefix: string;
  /** The venues this process executes on at start; one worker per venue queue (more with `addVenue`). */
  venues: ReadonlyMap<string, VenueAdapter>;
  ledger: Ledger;
  controls: PreTradeControls;
  breakers: BreakerBoard;
  killSwitch: KillSwitch;
  /** A Redis client for the kill-switch subscription (closed by `close()`). */
  subscriber: Redis;
  marketData?: MarketDataSource;
  metrics?: ExecutionMetrics;
  clock?: Clock;
  settings?: OrderWorkerSettings;
  /**
   * After this long since a send, a venue that does not know the client order id never received it
   * (before that, the request may still be in flight, so "not found" proves nothing), ms. Must exceed
   * the venue's request timeout and the worst keeper/confirmation delay before an order is visible.
   * @defaultValue 30000
   */
  sendDeadlineMs?: number;
  /** How long one job run polls a working order before handing the job back as delayed, ms. @defaultValue 5000 */
  pollBudgetMs?: number;
  /** Polling period for working orders, ms. @defaultValue 200 */
  pollIntervalMs?: number;
  /**
   * A run that failed because the ledger could not be reached or answer (`isLedgerUnavailable`: the
   * database down, restarting, dropping connections, timing out) hands its job back as delayed this long,
   * ms, using up none of its attempts: the job runs again soon after the ledger is back, however long
   * the outage, instead of waiting out an exponential backoff (minutes after a few failures) or failing
   * for good once its attempts are spent. @defaultValue 1000
   */
  ledgerRetryMs?: number;
  /**
   * How long one job's runs are handed back that way in one outage (runs failing on the ledger with no
   * more than a few `ledgerRetryMs` between them), wall ms: after it, a failure on the ledger takes the
   * job's own retries with their backoff, and after those the job fails (loud: the run logs it, the
   * reconciler resumes its order), so an error taken for the ledger's that is not does not loop unseen.
   * The handing back is counted (`xhedge_order_ledger_retries_total`; an alert fires on it).
   * @defaultValue 900000 (15 min)
   */
  ledgerRetryForMs?: number;
  /**
   * A kill switch's cancel pass for working orders that failed or did not finish at some venue is tried
   * again this long after, ms, doubling at each further failure (at most `killCancelRetryMaxMs`
   * apart, `KILL_RETRY_ATTEMPTS` times), while the switch stays engaged.
   * @defaultValue 1000
   */
  killCancelRetryMs?: number;
  /** The longest wait between two retries of a kill switch's cancel pass, ms. @defaultValue 30000 */
  killCancelRetryMaxMs?: number;
  /**
   * How long a kill switch's cancel pass waits for one venue cancel, ms: one that does not answer (a
   * hung RPC) counts as failed, so the pass ends, gives its claim back and is retried, rather than
   * holding the venue's claim, renewed, for ever while later orders stay working.
   * @defaultValue 30000
   */
  killCancelTimeoutMs?: number;
  /** Name in the ledger and BullMQ. @defaultValue `worker:<random>` */
  workerId?: string;
  /**
   * Where the pool reports what it skipped or retries on its own (the start-up cancel replay's failed
   * reads of the kill switch, an engagement entry that does not parse) and its BullMQ workers' errors
   * (Redis unreachable: once per streak, then a count every 30 s). @defaultValue none
   */
  log?: (level: 'info' | 'warn' | 'error', msg: string, data?: Record<string, unknown>) => void;
  /**
   * For an order job that waited for BullMQ flow children (e.g. the collateral transfer of a
   * transfer-then-hedge flow): when its last child completed, run-clock ms, or undefined when it had
   * none. The decision-age control then measures from that moment (see `ControlContext.decisionAsOfMs`).
   * Legs waiting on other ledger orders (`dependsOn`) are measured from their fills without it.
   * @defaultValue none (age measured from the intent's `createdAtMs`)
   */
  dependencyReadyAtMs?: (job: Job<OrderJobData, OrderJobResult>) => Promise<number | undefined>;
  /**
   * Called with every worker the pool opens, at start and by `addVenue`, before it takes jobs (to
   * listen to its `completed` and `failed` events).
   */
  onWorker?: (worker: Worker<OrderJobData, OrderJobResult>, venue: string) => void;
}

export interface WorkerPool {
  /** The pool's workers now, one per venue queue (`addVenue` adds one, `removeVenue` takes one away). */
  readonly workers: readonly Worker[];
  readonly workerId: string;
  /** The venues with a worker now. */
  readonly venueIds: readonly string[];
  /** The adapter a venue's jobs run on now. */
  venue(id: string): VenueAdapter | undefined;
  /**
   * Starts a worker for a venue the pool does not run yet (a venue added while the process runs). It is
   * covered by the kill-switch listener and closed by `close()` like the others. Throws when the pool
   * has the venue already (use `replaceVenue`) or is closed.
   */
  addVenue(id: string, adapter: VenueAdapter): Promise<Worker>;
  /**
   * Swaps a venue's adapter while no job uses it: new jobs of the venue wait, jobs running on the
   * current adapter finish their run first, then `next` (an adapter, or a function of the current one
   * that may return that same one to keep it) takes over. Resolves with the adapter that was in use
   * (the caller closes it when it was replaced). Throws when the pool has no worker for the venue.
   */
  replaceVenue(
    id: string,
    next: VenueAdapter | ((current: VenueAdapter) => Promise<VenueAdapter>),
  ): Promise<VenueAdapter>;
  /**
   * Closes the venue's worker (its active jobs finish first; queued ones stay in the queue) and drops
   * its adapter, which is returned for the caller to close. Undefined when the pool had no such venue.
   */
  removeVenue(id: string): Promise<VenueAdapter | undefined>;
  /**
   * Stops taking jobs and waits for active ones to finish (each ends in a ledger state the next run
   * reconciles from). With `force`, active jobs are abandoned: their locks expire, they fail as
   * stalled and the reconciler re-drives them through the venue check. A kill switch's cancel pass
   * under way (on an announcement, at start, a retry) ends before this resolves: gracefully it gets a
   * cancel lease to finish, by `force` (or past that lease) it is aborted and gives its claim back.
   */
  close(force?: boolean): Promise<void>;
}

/** After a run failed other than at the venue (the ledger may be down), runs read the ledger first for this long, ms. */
const DOUBT_MS = 30_000;

/**
 * Retries of a kill switch's cancel pass that failed, per announcement: with the default delays (1 s
 * doubling to 30 s), about ten minutes of tries, longer than a venue may refuse a cancel for (GMX refuses
 * to cancel a market order younger than its REQUEST_EXPIRATION_TIME, 300 s, while its keeper is down).
 * Past them, the runs of the orders' jobs still cancel (see `#reconcile`), and a new announcement (a
 * restore, an operator engaging again) starts over. Looking again at a venue whose claim another
 * process's pass holds uses up none (see `#cancelPasses`).
 */
const KILL_RETRY_ATTEMPTS = 24;
/**
 * How many leases a cancel pass keeps its claim for, at most: its venue cancels time out
 * (`killCancelTimeoutMs`), so a pass still running after that many (5 minutes by default) is stuck, and
 * its claim is left to lapse for another process to take the pass over.
 */
const KILL_PASS_RENEW_LEASES = 10;

const WORKING: readonly OrderStatus[] = ['sent', 'acknowledged', 'partially-filled', 'outcome-unknown'];

class Blocked extends UnrecoverableError {}

/**
 * A working order as the kill switch's cancels and checks judge it: a reduce-only flag counts only on a
 * venue that enforces it (`capabilities.reduceOnly`), as in the order gate (`reduceOnlyEnforced`).
 * Elsewhere the venue takes the order as it is, so one flagged reduce-only could grow the position past
 * an engaged kill switch allowing risk-reducing orders: it is judged as any other order.
 */
function asEnforced<T extends { reduceOnly: boolean }>(venue: VenueAdapter | undefined, o: T): T {
  return o.reduceOnly && venue?.capabilities.reduceOnly !== true ? { ...o, reduceOnly: false } : o;
}

/**
 * Which jobs run on which venue adapter, so an adapter can be swapped while none of its jobs runs:
 * `enter` waits while a swap of the venue is underway, `exclusive` waits until the venue's running
 * jobs left and holds new ones back while it runs.
 */
class VenueUse {
  readonly #active = new Map<string, number>();
  readonly #idle = new Map<string, (() => void)[]>();
  readonly #swapping = new Map<string, Promise<void>>();

  async enter(venue: string): Promise<void> {
    for (let s = this.#swapping.get(venue); s; s = this.#swapping.get(venue)) await s;
    this.#active.set(venue, (this.#active.get(venue) ?? 0) + 1);
  }

  leave(venue: string): void {
    const n = (this.#active.get(venue) ?? 1) - 1;
    if (n > 0) {
      this.#active.set(venue, n);
      return;
    }
    this.#active.delete(venue);
    for (const wake of this.#idle.get(venue)?.splice(0) ?? []) wake();
  }

  async exclusive<T>(venue: string, fn: () => Promise<T>): Promise<T> {
    for (let s = this.#swapping.get(venue); s; s = this.#swapping.get(venue)) await s;
    let release = () => {};
    this.#swapping.set(
      venue,
      new Promise<void>((r) => {
        release = r;
      }),
    );
    try {
      if ((this.#active.get(venue) ?? 0) > 0) {
        await new Promise<void>((r) => {
          const waiting = this.#idle.get(venue) ?? [];
          waiting.push(r);
          this.#idle.set(venue, waiting);
        });
      }
      return await fn();
    } finally {
      this.#swapping.delete(venue);
      release();
    }
  }
}

/**
 * How long undoing a start that failed waits for each part it closes (a worker, the subscription, the
 * kill switch's cancel passes), and how long `close()` waits for the unsubscribe, ms: a part that does
 * not close within it (a subscriber whose connection is down queues the unsubscribe) is left behind
 * rather than holding the caller's error, or the shutdown, back for ever.
 */
const START_UNDO_MS = 5_000;

/**
 * Starts one BullMQ worker per venue queue, with the order processor and the kill-switch listener.
 * Venues can be added, swapped and removed while the pool runs (`addVenue`, `replaceVenue`, `removeVenue`).
 * A start that fails part way (a worker that cannot connect, `onWorker` throwing, the subscription
 * refused) closes what it had started, in reverse order, each part by force and best effort, and then
 * rejects with the error that stopped it (never one of the undo's): no worker, connection, timer,
 * listener or subscription of a pool the caller never got outlives the call. The subscriber itself is
 * the caller's to close, as after `close()`.
 */
export async function startWorkers(o: StartWorkersOptions): Promise<WorkerPool> {
  const workerId = o.workerId ?? `worker:${randomUUID().slice(0, 8)}`;
  const venues = new Map(o.venues);
  // Each venue's fill-conflict counter exists from the start, at 0: a counter series born at 1 by its
  // first conflict has no earlier sample, and the alert's increase() would never see that conflict.
  const countFrom0 = (venue: string) => o.metrics?.fillConflicts.inc({ venue }, 0);
  for (const v of venues.keys()) countFrom0(v);
  const workers = new Map<string, Worker<OrderJobData, OrderJobResult>>();
  const use = new VenueUse();
  const p = new OrderProcessor(o, workerId, venues, use);
  let closed = false;
  // A worker is opened without running (it connects, but takes no job) and run once its start cannot
  // fail any more: a BullMQ worker running on a connection that failed (refused credentials, a server
  // gone with no reconnecting) retries its fetch in a loop that never yields to I/O or timers, so a
  // start that failed could not even close it, and the process would hang.
  let errStreak: { lastAtMs: number; loggedAtMs: number; more: number } | undefined;
  const workerErrors = (venue: string, err: Error) => {
    const now = Date.now();
    // credentials in a connection URL never reach the log
    const msg = redact((err?.message ?? String(err)).split('\n')[0]?.slice(0, 300) ?? '');
    if (!errStreak || now - errStreak.lastAtMs > WORKER_ERROR_SUMMARY_MS) {
      errStreak = { lastAtMs: now, loggedAtMs: now, more: 0 };
      o.log?.('warn', `order worker for ${venue}: ${msg}`, { venue, err: msg });
      return;
    }
    errStreak.lastAtMs = now;
    errStreak.more++;
    if (now - errStreak.loggedAtMs >= WORKER_ERROR_SUMMARY_MS) {
      o.log?.('warn', `order workers still failing: ${errStreak.more} more errors, the last: ${msg}`, {
        venue,
        more: errStreak.more,
        err: msg,
      });
      errStreak.loggedAtMs = now;
      errStreak.more = 0;
    }
  };
  const open = (venue: string) => {
    const w = new Worker<OrderJobData, OrderJobResult>(
      orderQueueName(venue),
      (job, token, signal) => p.process(job, token, signal),
      {
        connection: o.connection,
        prefix: o.queuePrefix,
        name: workerId,
        ...orderWorkerOptions(o.settings),
        autorun: false,
      },
    );
    // A worker without an 'error' listener would crash the process on a Redis hiccup. Its errors (a
    // connection refused while Redis is down, every retry of it) are logged once per streak, then at most
    // a line every 30 s saying how many more came (`log`).
    w.on('error', (err) => workerErrors(venue, err));
    // in the map before `onWorker` runs: a start or `addVenue` that fails after this closes it
    workers.set(venue, w);
    o.onWorker?.(w, venue);
    return w;
  };
  const onMessage = (_ch: string, msg: string) => {
    let ev: KillEvent;
    try {
      ev = KillEvent.parse(JSON.parse(msg));
    } catch {
      return;
    }
    if (ev.action !== 'engage') {
      // a release ends the retries of its scope's cancel pass at once (each retry also asks the switch)
      p.dropKillRetry(ev.scope);
      return;
    }
    // the workers and venues of the moment the switch engaged, including ones added since the start
    p.onKill(ev, [...workers.values()]);
  };
  // The start-up replay of the cancel passes of the switches engaged (see below): each entry on its own
  // (one that does not parse is logged and skipped, the others run); a read that fails is tried again
  // `killCancelRetryMs` later, doubling up to `killCancelRetryMaxMs`, until it reads or the pool closes.
  let replayTimer: NodeJS.Timeout | undefined;
  const replayKills = async (attempt: number): Promise<void> => {
    replayTimer = undefined;
    if (closed) return;
    let read: Awaited<ReturnType<KillSwitch['engagedEach']>>;
    try {
      read = await o.killSwitch.engagedEach();
    } catch (err) {
      if (closed) return;
      const delayMs = Math.min(
        (o.killCancelRetryMs ?? 1000) * 2 ** Math.min(attempt, 20),
        o.killCancelRetryMaxMs ?? 30_000,
      );
      if (attempt === 0)
        o.log?.('warn', 'reading the kill switch for the start-up cancel pass failed; trying again', {
          err: err instanceof Error ? err.message : String(err),
          retryInMs: delayMs,
        });
      replayTimer = setTimeout(() => void replayKills(attempt + 1), delayMs);
      replayTimer.unref();
      return;
    }
    if (attempt > 0)
      o.log?.('info', 'kill switch read for the start-up cancel pass', { attempts: attempt + 1 });
    for (const bad of read.unreadable)
      o.log?.('error', `kill switch entry ${bad.scope} does not read: no start-up cancel pass for it`, bad);
    for (const e of read.engaged)
      p.onKill(
        { action: 'engage', scope: e.scope, eventId: e.eventId, allowRiskReducing: e.allowRiskReducing },
        [...workers.values()],
      );
  };
  const stopReplay = () => {
    if (replayTimer) clearTimeout(replayTimer);
    replayTimer = undefined;
  };
  // What the start did so far, undone newest first when a later step throws.
  const undo: (() => Promise<unknown>)[] = [];
  try {
    for (const venue of venues.keys()) {
      try {
        open(venue);
      } finally {
        // the worker `open` created before it threw (in `onWorker`) is closed too
        const w = workers.get(venue);
        if (w) undo.push(() => w.close(true));
      }
    }
    // the cancel passes an announcement (from here on) or the start-up replay (below) begins, and
    // their retry timers, stop after the listener is gone
    undo.push(() => p.stopKillPasses(true));
    o.subscriber.on('message', onMessage);
    undo.push(async () => o.subscriber.off('message', onMessage));
    // pushed before the call: a subscribe that fails may still have reached the server
    undo.push(() => o.subscriber.unsubscribe(o.killSwitch.channel));
    await o.subscriber.subscribe(o.killSwitch.channel);
    await Promise.all([...workers.values()].map((w) => w.waitUntilReady()));
    // A switch engaged before this pool started (announced while no process ran, or this process died
    // in the middle of its cancel pass and restarted alone): its cancel pass runs now, as on the
    // announcement. A venue whose pass finished is passed over (its claim says done); one a dead
    // process's claim still holds is looked at again once that claim lapsed.
    // A read that fails (Redis down, a hiccup) is tried again, backing off, while the pool runs.
    await replayKills(0);
    // last, once nothing can fail any more (see `open`)
    for (const w of workers.values()) run(w);
  } catch (err) {
    closed = true;
    stopReplay();
    await undoAll(undo);
    throw err;
  }
  return {
    get workers() {
      return [...workers.values()];
    },
    workerId,
    get venueIds() {
      return [...workers.keys()];
    },
    venue: (id) => venues.get(id),
    async addVenue(id, adapter) {
      if (closed) throw new Error(`worker pool ${workerId} is closed; cannot add venue ${id}`);
      if (workers.has(id) || venues.has(id))
        throw new Error(`worker pool ${workerId} runs venue ${id} already; replace its adapter instead`);
      if (adapter.id !== id) throw new Error(`adapter ${adapter.id} given for venue ${id}`);
      venues.set(id, adapter);
      countFrom0(id);
      try {
        const w = open(id);
        await w.waitUntilReady();
        run(w);
        return w;
      } catch (err) {
        // nothing of the venue stays: its worker (if `open` got that far) is closed, and the venue
        // can be added again
        const w = workers.get(id);
        workers.delete(id);
        venues.delete(id);
        if (w) await undoAll([() => w.close(true)]);
        throw err;
      }
    },
    async replaceVenue(id, next) {
      if (!venues.has(id)) throw new Error(`worker pool ${workerId} has no venue ${id}`);
      return use.exclusive(id, async () => {
        const current = venues.get(id);
        if (!current) throw new Error(`worker pool ${workerId} has no venue ${id}`);
        const adapter = typeof next === 'function' ? await next(current) : next;
        if (adapter.id !== id) throw new Error(`adapter ${adapter.id} given for venue ${id}`);
        venues.set(id, adapter);
        return current;
      });
    },
    async removeVenue(id) {
      const w = workers.get(id);
      workers.delete(id);
      await w?.close();
      const adapter = venues.get(id);
      venues.delete(id);
      return adapter;
    },
    async close(force = false) {
      closed = true;
      stopReplay();
      // forced: the kill switch's cancel passes under way stop now and give their claims back
      if (force) p.abortKillPasses();
      // the workers stop taking jobs at once; kill-switch events still reach the jobs they finish
      await Promise.all([...workers.values()].map((w) => w.close(force)));
      o.subscriber.off('message', onMessage);
      // bounded: a subscriber whose connection is down (reconnecting) queues the unsubscribe and would
      // hold the close, and the process's shutdown, for ever; the caller closes the subscriber anyway
      await within(
        o.subscriber.unsubscribe().catch(() => {}),
        START_UNDO_MS,
        () => undefined,
      );
      // no cancel pass outlives the pool (its Redis and ledger are closed after it) and no retry is
      // left behind; see `stopKillPasses`
      await p.stopKillPasses(force);
    },
  };
}

/**
 * The order processor. Every run starts from the send claim and the ledger state, never from the
 * job's history:
 * - a first send of an order queued moments ago (`#mayFastSend`): the checks right before send and
 *   the send claim in one Redis script, and the send at once; anything but "send" reads the ledger
 *   and goes on as below;
 * - queued: the checks right before send (kill switch, breakers with a half-open trial, controls with
 *   fresh marks) and the order's send claim in one Redis script (of any number of runs, one takes
 *   it), then the send, with the ledger's `queued → sent` written while the venue call is in flight;
 *   a claim found taken means another run (or the restore after a Redis data loss) may have sent it:
 *   the send is recorded as at the claim's time and the venue is asked;
 * - sent / outcome-unknown / acknowledged / partially-filled: ask the venue (`getOrderByClientId`)
 *   first; re-send only when the venue proves it never got the order (not found after the send
 *   deadline, or a `not-sent` error), claimed by compare-and-set on the attempt count in the ledger.
 * The worker's gate always requires restored control state: a Redis that lost data may have lost
 * claims, and until the restore has claimed every queued order and every order of the last
 * `CLAIM_RETAIN_MS`, nothing is sent.
 */
class OrderProcessor {
  readonly #o: StartWorkersOptions;
  readonly #id: string;
  readonly #clock: Clock;
  readonly #deadlineMs: number;
  readonly #pollBudgetMs: number;
  readonly #pollMs: number;
  readonly #active = new Map<string, HedgeIntent>();
  /** `venue/fillId` of the fill conflicts this process has audited (each is audited once, not every poll). */
  readonly #fillConflicts = new Set<string>();
  readonly #gate: OrderGate;
  /** The pool's adapters by venue id (live: venues come and go while the pool runs). */
  readonly #venues: ReadonlyMap<string, VenueAdapter>;
  readonly #use: VenueUse;
  readonly #claims: SendClaims;
  /** Until then (run clock, ms) every run reads the ledger before its gates: a run failed of late. */
  #doubtUntilMs = 0;
  readonly #ledgerRetryMs: number;
  readonly #ledgerRetryForMs: number;
  readonly #killRetryMs: number;
  readonly #killRetryMaxMs: number;
  readonly #killCancelTimeoutMs: number;
  /**
   * The retry waiting for a kill switch's cancel pass, by scope: one per scope, of its latest
   * announcement (a newer one of the scope replaces it, its release drops it).
   */
  readonly #killRetries = new Map<string, { eventId: string; timer: NodeJS.Timeout }>();
  /**
   * Cancel passes under way: an announcement's, the start-up one's and retries (`stopKillPasses`
   * waits for them or aborts them).
   */
  readonly #killPasses = new Set<Promise<void>>();
  /** Aborted when the pool closes by force, or a graceful close's wait for the passes ran out. */
  readonly #killAbort = new AbortController();
  /** The pool closes: no cancel pass starts and no retry is scheduled any more. */
  #killRetriesStopped = false;

  constructor(o: StartWorkersOptions, id: string, venues: ReadonlyMap<string, VenueAdapter>, use: VenueUse) {
    this.#o = o;
    this.#venues = venues;
    this.#use = use;
    this.#gate = new OrderGate({
      controls: o.controls,
      breakers: o.breakers,
      killSwitch: o.killSwitch,
      clock: o.clock,
      // the venues of the moment (the map follows added and swapped ones)
      reduceOnlyEnforced: (venue) => venues.get(venue)?.capabilities.reduceOnly === true,
    });
    this.#claims = new SendClaims(o.controls.redis, o.controls.prefix);
    this.#id = id;
    this.#clock = o.clock ?? systemClock;
    this.#deadlineMs = o.sendDeadlineMs ?? 30_000;
    this.#pollBudgetMs = o.pollBudgetMs ?? 5_000;
    this.#pollMs = o.pollIntervalMs ?? 200;
    this.#ledgerRetryMs = o.ledgerRetryMs ?? 1000;
    this.#ledgerRetryForMs = o.ledgerRetryForMs ?? 15 * 60_000;
    this.#killRetryMs = o.killCancelRetryMs ?? 1000;
    this.#killRetryMaxMs = o.killCancelRetryMaxMs ?? 30_000;
    this.#killCancelTimeoutMs = o.killCancelTimeoutMs ?? 30_000;
  }

  async process(
    job: Job<OrderJobData, OrderJobResult>,
    token?: string,
    signal?: AbortSignal,
  ): Promise<OrderJobResult> {
    let data: OrderJobData;
    try {
      data = parseOrThrow(OrderJobData, job.data, `order job ${job.id}`);
    } catch (err) {
      // a job nobody can run as it stands: failed at once (retries would not change it), by name
      throw new UnrecoverableError(`${errorMessage(err)}; not sent`);
    }
    const { intent, clientOrderId } = data;
    // one adapter per run: a swap of the venue's adapter waits for this run, and this run for a swap
    await this.#use.enter(intent.venue);
    this.#active.set(clientOrderId, intent);
    try {
      return await this.#run(job, data, token, signal);
    } catch (err) {
      // the venue's refusals and errors, and the ends the run chose, say nothing about the ledger
      if (!(err instanceof UnrecoverableError || err instanceof DelayedError || isVenueError(err))) {
        this.#doubtUntilMs = this.#clock.nowMs() + DOUBT_MS;
        // the ledger is out (not the order): run again shortly, on no attempt, unless the run was stopped
        // or this outage has lasted past ledgerRetryForMs for this job
        if (isLedgerUnavailable(err) && !signal?.aborted) {
          const now = Date.now();
          const prev = data.ledgerDown;
          // failures further apart than a few waits are another outage
          const sinceMs = prev && now - prev.lastMs <= 5 * this.#ledgerRetryMs + 5_000 ? prev.sinceMs : now;
          if (now - sinceMs < this.#ledgerRetryForMs) {
            this.#o.metrics?.ledgerRetries.inc();
            await job.updateData({ ...data, ledgerDown: { sinceMs, lastMs: now } }).catch(() => undefined);
            await this.#later(job, token, this.#ledgerRetryMs);
          }
        }
      }
      throw err;
    } finally {
      this.#active.delete(clientOrderId);
      this.#use.leave(intent.venue);
    }
  }

  async #run(
    job: Job,
    data: OrderJobData,
    token: string | undefined,
    signal?: AbortSignal,
  ): Promise<OrderJobResult> {
    const { intent, clientOrderId } = data;
    const { ledger } = this.#o;
    const venue = this.#venues.get(intent.venue);
    if (!venue) throw new Error(`no adapter for venue ${intent.venue} in ${this.#id}`);
    // Fast path, a first send of an order the producer queued moments ago (see `#mayFastSend`): the
    // gates with the send claim, one Redis call, and at once the send, with the ledger's record of it
    // in flight alongside. For such an order the claim alone decides: a run that sent it holds it, and
    // a cancel from outside took it as blocked first. Any other answer of the gate, and every other
    // run, reads the ledger.
    let gate: SendGateResult | undefined;
    if (this.#mayFastSend(data)) {
      gate = await this.#sendGate(job, intent, clientOrderId, signal, { fast: true });
      if (gate.kind === 'send') return this.#sendAndFollow(job, data, venue, gate, token, signal);
    }
    let order = await ledger.getOrder(clientOrderId);
    if (gate?.kind === 'blocked' && order?.status !== 'queued') {
      // the claim just taken (as blocked) is for an order the ledger has past `queued` (or not at
      // all): it is given back and the ledger's state decides
      await this.#claims.giveBack(clientOrderId, this.#id);
      gate = undefined;
    }
    if (!order) order = await this.#restoreLostIntent(data);
    if (TERMINAL_ORDER_STATUSES.has(order.status)) return this.#finish(intent, order);
    let depsFilledAtMs: number | undefined;
    for (const dep of intent.dependsOn) {
      const d = await ledger.getOrderByIntent(dep);
      if (d?.status !== 'filled') {
        // claimed as blocked first; a run holding its send claim wins (the order is reconciled below)
        if (!(await this.#claims.block(clientOrderId, this.#id))) {
          order = await this.#cancel(order, `dependency ${dep} is ${d?.status ?? 'missing'}`);
          return this.#finish(intent, order);
        }
        break;
      }
      depsFilledAtMs = Math.max(depsFilledAtMs ?? d.updatedAtMs, d.updatedAtMs);
    }
    if (order.status === 'planned') order = (await this.#tx(order, 'queued')).order;
    if (order.status === 'queued') {
      gate ??= await this.#sendGate(job, intent, clientOrderId, signal, { depsFilledAtMs });
      switch (gate.kind) {
        case 'send':
          return this.#sendAndFollow(job, data, venue, gate, token, signal);
        case 'blocked':
          this.#o.metrics?.controlBlocks.inc({ control: gate.control, phase: 'send' });
          order = await this.#cancel(order, `blocked by ${gate.control}: ${gate.reason}`);
          await this.#claims.retain(clientOrderId);
          return this.#finish(intent, order);
        case 'state-lost':
          // nothing decided, nothing taken: the order waits for the restore (a lost claim comes back)
          return this.#later(job, token, 1000);
        case 'held':
          if (gate.claim.kind === 'blocked') {
            order = await this.#cancel(order, `blocked by an earlier run (${gate.claim.by}); never sent`);
            await this.#claims.retain(clientOrderId);
            return this.#finish(intent, order);
          }
          // another run (or the restore after a Redis data loss) claimed it and may have sent it:
          // the ledger records that send, and the venue is asked before anything else
          order = await this.#recordHeld(clientOrderId, gate.claim);
          break;
      }
    }
    return this.#reconcile(job, data, venue, order, token, signal);
  }

  /** A first send this run holds the claim for, and then the order to its end or the job handed back. */
  async #sendAndFollow(
    job: Job,
    data: OrderJobData,
    venue: VenueAdapter,
    gate: Extract<SendGateResult, { kind: 'send' }>,
    token: string | undefined,
    signal?: AbortSignal,
  ): Promise<OrderJobResult> {
    const recorded = this.#recordSend(data.clientOrderId, gate.atMs);
    const order = await this.#send(job, data, venue, recorded, gate);
    if (TERMINAL_ORDER_STATUSES.has(order.status)) return this.#finish(data.intent, order);
    return this.#reconcile(job, data, venue, order, token, signal);
  }

  /**
   * Whether a run may send on its send claim alone, without reading the ledger first: a first send
   * (no dependencies, no `not-sent` answer to resolve) of an order the producer queued right after
   * the ledger recorded it `queued` (`queuedAtMs`), less than `FAST_SEND_WINDOW_MS` ago, while no run
   * of this process failed of late (a ledger that is down is found before a send, not after). For such
   * an order, no claim means it was neither sent nor cancelled: a send or a cancel claims it first,
   * a recorded claim is kept `CLAIM_RETAIN_MS`, far longer than the window, and after Redis lost its
   * data the restore claims every order of that span (`SendClaims.restore`) before any gate passes.
   * Such a job has no flow children either (a flow node with children is a leg with dependencies).
   */
  #mayFastSend(data: OrderJobData): boolean {
    if (data.queuedAtMs === undefined) return false;
    if (data.intent.dependsOn.length > 0 || data.notSentAttempt !== undefined) return false;
    const now = this.#clock.nowMs();
    return now >= this.#doubtUntilMs && Math.abs(now - data.queuedAtMs) < FAST_SEND_WINDOW_MS;
  }

  /**
   * The ledger has no such order although its job exists: a crash of the database server lost the
   * unflushed plan record. With no send claim, no run sent it: it is refused (the planner plans
   * again). With one, a run may have sent it: the intent is put back from the job's copy, so the send
   * is recorded and reconciled like any other.
   */
  async #restoreLostIntent(data: OrderJobData): Promise<LedgerOrder> {
    const { intent, clientOrderId } = data;
    const claim = await this.#claims.read(clientOrderId);
    if (!claim || claim.kind === 'blocked')
      throw new UnrecoverableError(`intent ${intent.id} is not in the ledger; refusing to send`);
    const [r] = await this.#o.ledger.recordPlan([{ intent, clientOrderId, status: 'queued' }], {
      actor: this.#id,
    });
    if (!r) throw new Error(`intent ${intent.id} could not be put back in the ledger`);
    await this.#o.ledger.audit({
      actor: this.#id,
      action: 'intent.restore',
      subject: intent.id,
      details: { clientOrderId, claim: claim.kind, claimedBy: claim.by, claimedAtMs: claim.atMs },
    });
    return r.order;
  }

  /**
   * The ledger's record of a send (`queued → sent`, at `atMs`): this run's, written while the venue
   * call is in flight, or the one a held claim stands for (with `note`). Resolves with the order as
   * the ledger has it once written (recorded already by another run: as it stands), and keeps the
   * claim `CLAIM_RETAIN_MS` more (long past the fast-send window), then lets it go. A failure of this
   * run's record surfaces after the venue call: the job is retried, and its next run finds the claim
   * held and records the send then.
   */
  async #recordSend(clientOrderId: string, atMs: number, note?: string): Promise<LedgerOrder> {
    const { ledger } = this.#o;
    const order =
      (await ledger.recordSend(clientOrderId, { actor: this.#id, atMs, ...(note ? { note } : {}) })) ??
      (await ledger.getOrder(clientOrderId));
    if (!order) throw new Error(`order ${clientOrderId} vanished from the ledger while being sent`);
    await this.#claims.retain(clientOrderId);
    return order;
  }

  /** Records the send a held claim stands for, as at its time. */
  #recordHeld(clientOrderId: string, claim: SendClaim): Promise<LedgerOrder> {
    return this.#recordSend(
      clientOrderId,
      claim.atMs,
      claim.kind === 'restored'
        ? `restored claim (${claim.by}): Redis lost its data while the order was queued; it may have been sent before`
        : `claimed by ${claim.by}, which did not record the send`,
    );
  }

  /**
   * The market data and the dependency times of a job, for the controls. `noChildren`: the job is known
   * to have no flow children (a fast send's), so `dependencyReadyAtMs` is not asked (a Redis read).
   */
  async #controlContext(
    job: Job,
    intent: HedgeIntent,
    o: { depsFilledAtMs?: number | undefined; noChildren?: boolean } = {},
  ): Promise<ControlContext> {
    const { depsFilledAtMs } = o;
    const [market, childrenDoneAtMs] = await Promise.all([
      this.#o.marketData?.context(intent),
      o.noChildren ? undefined : this.#o.dependencyReadyAtMs?.(job),
    ]);
    const ctx: ControlContext = { ...market };
    const readyAt = [depsFilledAtMs, childrenDoneAtMs].filter((t): t is number => t !== undefined);
    if (readyAt.length > 0) ctx.decisionAsOfMs = Math.max(...readyAt);
    return ctx;
  }

  /**
   * Every gate right before a first send, with the send claim (see `OrderGate.checkToSend`). `fast`: a
   * fast send's job, which has no flow children (see `#mayFastSend`).
   */
  async #sendGate(
    job: Job,
    intent: HedgeIntent,
    clientOrderId: string,
    signal?: AbortSignal,
    o: { depsFilledAtMs?: number | undefined; fast?: boolean } = {},
  ): Promise<SendGateResult> {
    const aborted = (): SendGateResult => ({
      kind: 'blocked',
      control: 'kill-switch',
      reason: String(signal?.reason ?? 'job aborted'),
    });
    if (signal?.aborted) return aborted();
    const ctx = await this.#controlContext(job, intent, {
      depsFilledAtMs: o.depsFilledAtMs,
      noChildren: o.fast === true,
    });
    const r = await this.#gate.checkToSend(intent, ctx, {
      clientOrderId,
      by: this.#id,
    });
    if (r.kind === 'send' && signal?.aborted) {
      // the claim says send; it must say blocked before the order is cancelled
      await this.#claims.markBlocked(clientOrderId, this.#id);
      for (const t of r.trials) await this.#o.breakers.abandonTrial(t);
      return aborted();
    }
    return r;
  }

  /**
   * The gates before a re-send (the ledger's `claimResend` guards that one). `depsFilledAtMs`: when
   * its last dependency filled, as for a first send (the decision-age control measures from it).
   */
  async #preSend(
    job: Job,
    intent: HedgeIntent,
    signal?: AbortSignal,
    depsFilledAtMs?: number,
  ): Promise<GateResult> {
    if (signal?.aborted)
      return { ok: false, control: 'kill-switch', reason: String(signal.reason ?? 'job aborted') };
    const ctx = await this.#controlContext(job, intent, { depsFilledAtMs });
    const r = await this.#gate.check(intent, ctx, {
      takeTrial: true,
      reserve: true,
    });
    if (r.ok && signal?.aborted) {
      for (const t of r.trials) await this.#o.breakers.abandonTrial(t);
      return { ok: false, control: 'kill-switch', reason: String(signal.reason ?? 'job aborted') };
    }
    return r;
  }

  /**
   * One placeOrder call and what it means for the ledger. `recorded` is the ledger's record of the
   * send, in flight alongside the venue call (a first send) or written before it (a re-send); it is
   * awaited before the venue's answer is applied, so the ledger's events stay in order. The gate's
   * half-open trials are reported with the venue's answer; its reduce-only passes of open breakers
   * are audited (`breaker.reduce-only-pass`) alongside the venue call too, and awaited after it.
   */
  async #send(
    job: Job,
    data: OrderJobData,
    venue: VenueAdapter,
    recorded: Promise<LedgerOrder>,
    gate: { trials: Trial[]; passes: ReduceOnlyPass[] },
    resend = false,
  ) {
    const { intent, clientOrderId } = data;
    const { trials } = gate;
    // awaited after the venue call: a failure must not go unhandled meanwhile
    recorded.catch(() => {});
    // The gate counted the passes in the metrics already; an audit row that cannot be written does not
    // fail the job of an order that went out (a retry would not write it again: the claim is held).
    const audited =
      gate.passes.length > 0
        ? this.#o.breakers
            .auditReduceOnlyPasses(gate.passes, { actor: this.#id, clientOrderId, intent, resend })
            .catch(() => {})
        : undefined;
    // the half-open trials stay this order's until their report, however long the venue takes
    // (held at most twice the send deadline, and at least ten token lifetimes, 5 min by default: a
    // Solana send waits out its blockhash, 60-90 s; a call that never returns lets the trial go after that)
    const releaseTrials = this.#o.breakers.holdTrials(trials, {
      maxHoldMs: Math.max(2 * this.#deadlineMs, 10 * this.#o.breakers.trialTtlMs),
    });
    try {
      const t0 = performance.now();
      let vo: Order;
      try {
        vo = await venue.placeOrder({
          clientOrderId,
          instrument: intent.instrument,
          side: intent.side,
          orderType: intent.orderType,
          sizeBase: intent.sizeBase,
          ...(intent.limitPriceUsd !== undefined ? { limitPriceUsd: intent.limitPriceUsd } : {}),
          reduceOnly: intent.reduceOnly,
        });
      } catch (err) {
        const latencyMs = performance.now() - t0;
        await audited;
        const ve = isVenueError(err) ? err : undefined;
        // a rejection is the venue working correctly (our order was refused): not a health failure
        await this.#o.breakers.recordVenueCall(intent.venue, {
          ok: ve?.outcome === 'rejected',
          timedOut: ve?.code === 'VENUE_TIMEOUT',
          latencyMs,
        });
        // A rejection refused this order only: no evidence that a breaker's cause persists (re-opening
        // it for a full cooldown, a day for market:loss) nor that it is gone. The trial is handed back
        // unused, so the next order takes it.
        for (const tr of trials) {
          if (ve?.outcome === 'rejected') await this.#o.breakers.abandonTrial(tr);
          else await this.#o.breakers.reportTrial(tr, false, ve?.shortMessage ?? 'send failed');
        }
        const order = await recorded;
        const msg = errorMessage(err);
        if (ve?.outcome === 'rejected') return (await this.#tx(order, 'rejected', { error: msg })).order;
        if (ve?.outcome === 'not-sent') {
          if (!ve.retryable) return (await this.#tx(order, 'failed', { error: msg })).order;
          await job.updateData({ ...data, notSentAttempt: order.sendAttempts });
          throw err;
        }
        // unknown (timeout, unconfirmed, keeper pending) or not a venue error: we cannot tell, so resolve first
        return (await this.#tx(order, 'outcome-unknown', { error: msg })).order;
      }
      const latencyMs = performance.now() - t0;
      await audited;
      this.#o.metrics?.sendSeconds.observe({ venue: intent.venue }, latencyMs / 1000);
      await this.#o.breakers.recordVenueCall(intent.venue, { ok: true, latencyMs });
      for (const tr of trials) await this.#o.breakers.reportTrial(tr, true);
      return this.#apply(intent, await recorded, vo, venue);
    } finally {
      releaseTrials();
    }
  }

  async #reconcile(
    job: Job,
    data: OrderJobData,
    venue: VenueAdapter,
    start: LedgerOrder,
    token: string | undefined,
    signal?: AbortSignal,
  ): Promise<OrderJobResult> {
    const { intent, clientOrderId } = data;
    let order = start;
    const until = Date.now() + this.#pollBudgetMs;
    let cancelAsked = false;
    let keptLive = false;
    for (;;) {
      if (TERMINAL_ORDER_STATUSES.has(order.status)) return this.#finish(intent, order);
      // the venue said `not-sent` for this very attempt: nothing to look up (and a halted venue could not answer)
      const knownNotSent = order.status === 'sent' && data.notSentAttempt === order.sendAttempts;
      const vo = knownNotSent ? null : await this.#lookup(intent.venue, venue, clientOrderId);
      if (vo) {
        order = await this.#apply(intent, order, vo, venue);
        this.#o.metrics?.reconciliations.inc({ result: 'found' });
        if (TERMINAL_ORDER_STATUSES.has(order.status)) return this.#finish(intent, order);
        // still working: it stays live for the self-cross check (once per run; a run comes every few s)
        if (!keptLive) {
          keptLive = true;
          await this.#o.controls.keepLive(intent).catch(() => {});
        }
        // once per run: a cancel that failed is asked again by the job's next run, not every poll
        if (
          !cancelAsked &&
          venue.capabilities.cancel &&
          (signal?.aborted || (await this.#killBlocks(intent)))
        ) {
          cancelAsked = true;
          await venue.cancelOrder(clientOrderId).catch(() => undefined);
        }
      } else {
        const sinceSend = this.#clock.nowMs() - (order.lastSendAtMs ?? 0);
        const provenNotSent = data.notSentAttempt === order.sendAttempts || sinceSend >= this.#deadlineMs;
        if (provenNotSent) {
          this.#o.metrics?.reconciliations.inc({ result: 'not-at-venue' });
          if (order.status === 'sent') {
            // Its dependencies first: this run may come here without `#run` having seen them filled (a
            // run that found the send claim held, e.g. by the restore after a Redis data loss, goes on
            // to reconcile whatever they are). A leg whose dependency did not fill is never sent.
            const deps = await this.#dependencies(intent);
            if (deps.kind === 'ended') {
              const r = await this.#o.ledger.transition(clientOrderId, 'cancelled', {
                actor: this.#id,
                from: ['sent'],
                patch: {
                  error: `dependency ${deps.dep} ${deps.status === 'missing' ? 'is missing' : `ended ${deps.status}`} (not re-sent; the venue never had it)`,
                },
              });
              // another run moved it meanwhile (`unmet`): what the ledger has now decides
              order = r.order;
              continue;
            }
            if (deps.kind === 'working') return this.#later(job, token, 1000);
            // the right to re-send first (of racing runs, one wins), then the gates, then at once the
            // send: nothing waits between the gates and the venue
            const claimed = await this.#o.ledger.claimResend(clientOrderId, order.sendAttempts, {
              actor: this.#id,
              note: 'venue does not have the order after the send deadline',
            });
            if (!claimed) return this.#later(job, token, 1000);
            const gate = await this.#preSend(job, intent, signal, deps.filledAtMs);
            if (!gate.ok) {
              order = await this.#cancel(
                await this.#current(clientOrderId),
                `blocked by ${gate.control}: ${gate.reason} (not re-sent; the venue never had it)`,
              );
              return this.#finish(intent, order);
            }
            order = await this.#send(job, data, venue, this.#current(clientOrderId), gate, true);
            continue;
          }
          // outcome-unknown / acknowledged but unknown to the venue: it never executed
          const via =
            order.status === 'outcome-unknown' ? order : (await this.#tx(order, 'outcome-unknown')).order;
          order = (await this.#tx(via, 'failed', { error: 'venue has no order with this client id' })).order;
          return this.#finish(intent, order);
        }
        // may still be in flight: look again after the deadline
        if (Date.now() + this.#pollMs > until)
          return this.#later(job, token, this.#deadlineMs - sinceSend + 50);
      }
      if (Date.now() + this.#pollMs > until) return this.#later(job, token, 1000);
      await sleep(this.#pollMs);
      order = (await this.#o.ledger.getOrder(clientOrderId)) as LedgerOrder;
    }
  }

  /**
   * Whether an engaged kill switch blocks this working order (reduce-only passes where allowed). The
   * abort signal reaches only the runs active when the announcement arrived; a lost announcement, a
   * cancel pass that failed, and the job's later runs are covered by asking the switch itself. A read
   * that fails is not known to block: the next poll asks again.
   */
  async #killBlocks(intent: HedgeIntent): Promise<boolean> {
    const judged = asEnforced(this.#venues.get(intent.venue), intent);
    return (await this.#o.killSwitch.blocking(judged).catch(() => undefined)) !== undefined;
  }

  /**
   * Where the ledger orders an intent depends on (`dependsOn`) stand: every one `filled` (with the
   * time the last one did, if any), one that `ended` without filling (or is not in the ledger: nothing
   * will fill it), or else one still `working`. An ended one wins over a working one: the leg is
   * cancelled at once rather than after the wait. `filled` is terminal, so a `filled` answer stays true.
   */
  async #dependencies(
    intent: HedgeIntent,
  ): Promise<
    | { kind: 'filled'; filledAtMs?: number }
    | { kind: 'ended'; dep: string; status: OrderStatus | 'missing' }
    | { kind: 'working'; dep: string; status: OrderStatus }
  > {
    let filledAtMs: number | undefined;
    let working: { kind: 'working'; dep: string; status: OrderStatus } | undefined;
    for (const dep of intent.dependsOn) {
      const d = await this.#o.ledger.getOrderByIntent(dep);
      if (!d) return { kind: 'ended', dep, status: 'missing' };
      if (d.status === 'filled') filledAtMs = Math.max(filledAtMs ?? d.updatedAtMs, d.updatedAtMs);
      else if (TERMINAL_ORDER_STATUSES.has(d.status)) return { kind: 'ended', dep, status: d.status };
      else working ??= { kind: 'working', dep, status: d.status };
    }
    if (working) return working;
    return filledAtMs === undefined ? { kind: 'filled' } : { kind: 'filled', filledAtMs };
  }

  /** The order as the ledger has it now (it must be there). */
  async #current(clientOrderId: string): Promise<LedgerOrder> {
    const order = await this.#o.ledger.getOrder(clientOrderId);
    if (!order) throw new Error(`order ${clientOrderId} vanished from the ledger`);
    return order;
  }

  /**
   * `getOrderByClientId`, counted by the venue breaker like a send (a lookup is a venue call too):
   * answers as well as failures, or a few lookup timeouts among many good polls would read as a
   * failure rate of 100%. "Not found" is an answer.
   */
  async #lookup(venueId: string, venue: VenueAdapter, clientOrderId: string): Promise<Order | null> {
    const t0 = performance.now();
    let vo: Order | null;
    try {
      vo = await venue.getOrderByClientId(clientOrderId);
    } catch (err) {
      const ve = isVenueError(err) ? err : undefined;
      await this.#o.breakers.recordVenueCall(venueId, {
        ok: ve?.outcome === 'rejected',
        timedOut: ve?.code === 'VENUE_TIMEOUT',
        latencyMs: performance.now() - t0,
      });
      throw err;
    }
    await this.#o.breakers.recordVenueCall(venueId, { ok: true, latencyMs: performance.now() - t0 });
    return vo;
  }

  /** Hands the job back as delayed (does not use up an attempt). */
  async #later(job: Job, token: string | undefined, delayMs: number): Promise<never> {
    await job.moveToDelayed(Date.now() + Math.max(50, delayMs), token);
    throw new DelayedError();
  }

  /** Brings the ledger to the venue's view of the order, and records its fills. */
  async #apply(intent: HedgeIntent, cur: LedgerOrder, vo: Order, venue: VenueAdapter): Promise<LedgerOrder> {
    let target: OrderStatus = vo.status;
    if (target === 'planned' || target === 'queued' || target === 'sent') target = 'acknowledged';
    const patch = {
      filledSizeBase: vo.filledSizeBase,
      ...(vo.venueOrderId ? { venueOrderId: vo.venueOrderId } : {}),
      ...(vo.avgFillPriceUsd ? { avgFillPriceUsd: vo.avgFillPriceUsd } : {}),
      ...(vo.error ? { error: vo.error } : {}),
    };
    // The fills go in before the status that says they happened: a reader (the API, the drop-copy
    // check) never sees a filled order without its fills. An order cancelled after a partial fill
    // keeps its fills too. recordFill is idempotent per venue fill id.
    const traded = (st: OrderStatus) => st === 'filled' || st === 'partially-filled';
    if (traded(target) || traded(cur.status) || Number(vo.filledSizeBase) > 0) {
      for (const f of await this.#fills(venue, cur.clientOrderId))
        if (f.clientOrderId === cur.clientOrderId) await this.#recordFill(f);
    }
    let order = cur;
    if (
      target !== cur.status ||
      (target === 'partially-filled' && vo.filledSizeBase !== cur.filledSizeBase)
    ) {
      if (canTransition(cur.status, target)) order = (await this.#tx(cur, target, patch)).order;
      else if (canTransition(cur.status, 'outcome-unknown') && canTransition('outcome-unknown', target)) {
        const mid = (await this.#tx(cur, 'outcome-unknown')).order;
        order = (await this.#tx(mid, target, patch)).order;
      }
    }
    if (traded(order.status)) {
      this.#o.marketData?.invalidatePositions?.(intent.venue);
      const avg = Number(order.avgFillPriceUsd);
      if (Number.isFinite(avg) && avg > 0) {
        const adverse =
          intent.side === 'buy' ? avg - intent.referencePriceUsd : intent.referencePriceUsd - avg;
        await this.#o.breakers.observeSlippage(
          intent.underlying,
          (adverse / intent.referencePriceUsd) * 10_000,
          {
            clientOrderId: order.clientOrderId,
          },
        );
      }
    }
    return order;
  }

  /**
   * The venue's fills of an order. A venue that cannot list fills (Drift without an event indexer says
   * `VENUE_NOT_SUPPORTED`) gives none: the order's own filled size and average price stand in the
   * ledger, no fill row is invented, and the job is not failed for it.
   */
  async #fills(venue: VenueAdapter, clientOrderId: string): Promise<Fill[]> {
    try {
      return await venue.fetchFills({ clientOrderId });
    } catch (err) {
      if (isVenueError(err) && err.code === 'VENUE_NOT_SUPPORTED') return [];
      throw err;
    }
  }

  /**
   * Records a venue's fill. One whose id the ledger holds with other content (a venue's bug, a fill id
   * reused) is a `LedgerConflictError`: the ledger keeps its first row, the conflict is audited (once
   * per process, with both values) and counted (`xhedge_fill_conflicts_total`, alerted), and the
   * order's other fills and its status still go in. Throwing instead failed the job on every retry and
   * left the order unfinished for ever. The drop-copy check compares the venue's position either way.
   */
  async #recordFill(f: Fill): Promise<void> {
    try {
      await this.#o.ledger.recordFill(f);
    } catch (err) {
      if (!(err instanceof LedgerConflictError)) throw err;
      const key = `${f.venue}/${f.fillId}`;
      if (this.#fillConflicts.has(key)) return;
      await this.#o.ledger.audit({
        actor: this.#id,
        action: 'fill.conflict',
        subject: key,
        details: { clientOrderId: f.clientOrderId, message: err.message, ...err.details },
      });
      if (this.#fillConflicts.size >= 10_000) this.#fillConflicts.clear();
      this.#fillConflicts.add(key);
      this.#o.metrics?.fillConflicts.inc({ venue: f.venue });
    }
  }

  async #cancel(order: LedgerOrder, reason: string): Promise<LedgerOrder> {
    return (await this.#tx(order, 'cancelled', { error: reason })).order;
  }

  #tx(order: LedgerOrder, to: OrderStatus, patch?: { error?: string }) {
    return this.#o.ledger.transition(order.clientOrderId, to, {
      actor: this.#id,
      ...(patch ? { patch } : {}),
    });
  }

  async #finish(intent: HedgeIntent, order: LedgerOrder): Promise<OrderJobResult> {
    this.#o.metrics?.orders.inc({ venue: intent.venue, status: order.status });
    if (order.status === 'filled') {
      await this.#o.controls.settle(intent);
      return {
        status: 'filled',
        filledSizeBase: order.filledSizeBase,
        ...(order.avgFillPriceUsd ? { avgFillPriceUsd: order.avgFillPriceUsd } : {}),
      };
    }
    if (Number(order.filledSizeBase) === 0) await this.#o.controls.release(intent);
    else await this.#o.controls.settle(intent);
    throw new Blocked(
      `order ${order.clientOrderId} ended ${order.status}${order.error ? `: ${order.error}` : ''}`,
    );
  }

  /**
   * Kill switch engaged: abort matching active jobs here, and cancel working orders at our venues (one
   * process per event and venue, by `claimCancel`). Each venue's pass stands alone: one that did not
   * finish (the claim could not be taken, the ledger failed to list or record, a cancel threw) gives
   * its claim back so another attempt at the event can take it, and the other venues go on. Such a
   * pass is tried again on a timer while the switch stays engaged (`#scheduleKillRetry`): an order's
   * own run asks for its cancel once per run only, and an announcement may not come again. The pass
   * runs in the background, tracked for the pool's close (`stopKillPasses`); once the pool closes,
   * none starts. What failed is dropped here: the retry is what acts on it.
   */
  onKill(ev: KillEvent, workers: readonly Worker[]): void {
    for (const intent of this.#active.values()) {
      if (!scopeCovers(ev.scope, intent)) continue;
      if (ev.allowRiskReducing && asEnforced(this.#venues.get(intent.venue), intent).reduceOnly) continue;
      for (const w of workers) w.cancelJob(intent.id, `kill switch ${ev.scope}`);
    }
    this.#trackKillPass(() => this.#cancelPasses(ev, 0));
  }

  /** Runs a cancel pass in the background, tracked in `#killPasses`; none once the pool closes. */
  #trackKillPass(pass: () => Promise<void>): void {
    if (this.#killRetriesStopped) return;
    const run: Promise<void> = pass()
      .catch((err: unknown) => this.#logKillFailure(err))
      .finally(() => this.#killPasses.delete(run));
    this.#killPasses.add(run);
  }

  /**
   * A cancel pass that failed (it is retried on its timer, and recorded in the ledger with its first
   * error): logged, at error level when a cancel was refused because the transaction holding the order's
   * nonce is at the fee cap (`details.stuckAtCap`: no cancel fits under the cap however often it is
   * retried, and the account's later sends wait behind it: an operator must raise the cap or wait for the
   * base fee), else as a warning.
   */
  #logKillFailure(err: unknown): void {
    const stuck = findStuckAtCap(err);
    const msg = err instanceof Error ? err.message : String(err);
    if (stuck)
      this.#o.log?.(
        'error',
        `${msg}: a cancel is refused at the fee cap (the transaction at the order's nonce cannot be replaced under it): ${errorMessage(stuck)}`,
        { details: (stuck as { details?: unknown }).details },
      );
    else this.#o.log?.('warn', msg, { err: msg });
  }

  /**
   * The cancel pass of an engagement at each of our venues that can cancel (see `onKill`). `attempt`: 0
   * for the announcement's own pass, then the retry's number. A venue's pass holds its claim as a lease,
   * renewed while it runs (`#underClaim`), and marks it done once it finished, so a retry passes over
   * it. A venue whose claim another pass holds is that pass's to finish, but it is looked at again after
   * a lease (a retry that uses up no attempt): had that pass's process died, its claim has lapsed by
   * then and this process takes the pass over.
   */
  async #cancelPasses(ev: KillEvent, attempt: number): Promise<void> {
    const ks = this.#o.killSwitch;
    const failures: unknown[] = [];
    const finishing: Promise<unknown>[] = [];
    let heldElsewhere = false;
    for (const [venueId, venue] of [...this.#venues]) {
      // the pool closes by force: no further claim is taken (one taken below goes back, see there)
      if (this.#killAbort.signal.aborted) break;
      if (!venue.capabilities.cancel) continue;
      let claim: CancelClaim;
      try {
        claim = await ks.claimCancel(ev.eventId, venueId, this.#id);
      } catch (err) {
        failures.push(err);
        continue;
      }
      if (claim === 'running') heldElsewhere = true;
      if (claim !== 'taken') continue;
      try {
        await this.#underClaim(ev.eventId, venueId, () => this.#cancelWorking(ev, venueId, venue));
      } catch (err) {
        failures.push(err);
        // nothing said this venue's orders are all cancelled: the claim must not stop the next attempt
        await ks.giveBackCancel(ev.eventId, venueId, this.#id).catch(() => {});
        continue;
      }
      // Not awaited before the next venue's pass, which need not wait for it. Not counted as a failure
      // when it cannot be written: the claim then lapses after its lease and another attempt repeats a
      // pass that finds nothing left to cancel, which does no harm.
      finishing.push(ks.finishCancel(ev.eventId, venueId, this.#id).catch(() => false));
    }
    await Promise.all(finishing);
    if (failures.length > 0) {
      this.#scheduleKillRetry(ev, attempt + 1);
      throw new AggregateError(
        failures,
        `kill switch ${ev.scope} (event ${ev.eventId}): the cancel pass failed at ${failures.length} venue(s) in ${this.#id}${attempt > 0 ? ` (retry ${attempt})` : ''}`,
      );
    }
    if (heldElsewhere) this.#scheduleKillRetry(ev, attempt, ks.cancelLeaseMs);
    else this.#dropKillRetry(ev.scope, ev.eventId);
  }

  /**
   * Runs a venue's cancel pass under this process's claim, renewing it every third of its lease, so a
   * pass longer than the lease (a slow venue, many orders) keeps it while a dead process's lapses. A
   * renewal that fails or finds the claim gone (this process stalled past the lease, and another may
   * have taken the pass over) does not stop the pass: a cancel sent twice does no harm, one not sent
   * leaves an order working. Renewals stop after `KILL_PASS_RENEW_LEASES` leases: a pass that long is
   * stuck.
   */
  async #underClaim(eventId: string, venueId: string, pass: () => Promise<void>): Promise<void> {
    const ks = this.#o.killSwitch;
    const untilMs = performance.now() + KILL_PASS_RENEW_LEASES * ks.cancelLeaseMs;
    const renew = setInterval(
      () => {
        // a pass this long is stuck (a ledger call that never answers): its claim lapses for another
        if (performance.now() > untilMs) clearInterval(renew);
        else void ks.renewCancel(eventId, venueId, this.#id).catch(() => false);
      },
      Math.floor(ks.cancelLeaseMs / 3),
    );
    renew.unref();
    try {
      await pass();
    } finally {
      clearInterval(renew);
    }
  }

  /**
   * Tries the cancel pass of `ev` again after a backoff (`killCancelRetryMs`, doubled at each attempt,
   * at most `killCancelRetryMaxMs`), up to `KILL_RETRY_ATTEMPTS` times, or after `delayMs` when given
   * (a venue whose claim another pass held is looked at again, at the same attempt). It replaces a retry
   * waiting for an earlier announcement of the scope: the latest engagement is the one to finish.
   */
  #scheduleKillRetry(ev: KillEvent, attempt: number, delayMs?: number): void {
    if (this.#killRetriesStopped || attempt > KILL_RETRY_ATTEMPTS) return;
    const waitMs = delayMs ?? Math.min(this.#killRetryMs * 2 ** (attempt - 1), this.#killRetryMaxMs);
    this.#dropKillRetry(ev.scope);
    const timer = setTimeout(() => {
      this.#killRetries.delete(ev.scope);
      this.#trackKillPass(() => this.#retryKill(ev, attempt));
    }, waitMs);
    // a process with nothing else to do does not stay up for it (`stopKillPasses` clears it anyway)
    timer.unref();
    this.#killRetries.set(ev.scope, { eventId: ev.eventId, timer });
  }

  /**
   * One retry of a cancel pass, only while the engagement announced by `ev` stands: a release (whose
   * announcement may be lost too) or a newer engagement of the scope ends the retries. A switch that
   * cannot be read is not known to be released: the retry goes on and fails, and the next is scheduled.
   */
  async #retryKill(ev: KillEvent, attempt: number): Promise<void> {
    if (this.#killRetriesStopped) return;
    let engagement: KillEngagement | undefined;
    try {
      engagement = (await this.#o.killSwitch.engaged()).find((e) => e.scope === ev.scope);
    } catch {
      this.#scheduleKillRetry(ev, attempt + 1);
      return;
    }
    // a restore announces the engagement it put back under `<eventId>:restore:<id>`
    if (
      !engagement ||
      !(ev.eventId === engagement.eventId || ev.eventId.startsWith(`${engagement.eventId}:restore:`))
    )
      return;
    await this.#cancelPasses(ev, attempt);
  }

  /** Drops the retry waiting for `scope`'s cancel pass (only the one of `eventId` when given). */
  #dropKillRetry(scope: string, eventId?: string): void {
    const r = this.#killRetries.get(scope);
    if (!r || (eventId !== undefined && r.eventId !== eventId)) return;
    clearTimeout(r.timer);
    this.#killRetries.delete(scope);
  }

  /** A scope was released: its cancel pass is not tried again. */
  dropKillRetry(scope: string): void {
    this.#dropKillRetry(scope);
  }

  /**
   * The pool closes: no cancel pass starts and no retry is scheduled any more, none waits, and the
   * passes under way end before the pool's connections close. Gracefully, a pass gets one cancel lease
   * (`KillSwitch.cancelLeaseMs`) to finish; one still running then is aborted like all of them by
   * `force`: it stops at its next step and gives its claim back at once, so another process takes the
   * pass over without waiting a lease. (Had this process died instead, its claim would lapse after a
   * lease: a longer wait gains nothing.) Waiting for the aborted ones is bounded by a lease too: a give
   * back that cannot reach Redis in that time leaves the claim to lapse.
   */
  async stopKillPasses(force: boolean): Promise<void> {
    if (!force) {
      this.#stopKillRetries();
      await this.#killPassesEnded();
    }
    this.abortKillPasses();
    await this.#killPassesEnded();
  }

  /** Aborts the cancel passes under way (they give their claims back), and starts none any more. */
  abortKillPasses(): void {
    this.#stopKillRetries();
    this.#killAbort.abort();
  }

  #stopKillRetries(): void {
    this.#killRetriesStopped = true;
    for (const scope of [...this.#killRetries.keys()]) this.#dropKillRetry(scope);
  }

  /** Until the cancel passes under way ended, at most a cancel lease. */
  async #killPassesEnded(): Promise<void> {
    if (this.#killPasses.size === 0) return;
    await within(Promise.all(this.#killPasses), this.#o.killSwitch.cancelLeaseMs, () => {});
  }

  /**
   * `p`, unless the cancel passes are aborted first (the pool closes): then it rejects at once, and
   * `p` is left to settle alone (its rejection handled here).
   */
  #unlessAborted<T>(p: Promise<T>): Promise<T> {
    const signal = this.#killAbort.signal;
    return new Promise<T>((resolve, reject) => {
      const onAbort = () =>
        reject(new Error(`kill switch cancel pass aborted: worker pool ${this.#id} is closing`));
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
      p.then(
        (v) => {
          signal.removeEventListener('abort', onAbort);
          resolve(v);
        },
        (err) => {
          signal.removeEventListener('abort', onAbort);
          reject(err);
        },
      );
    });
  }

  /**
   * Cancels the working orders of one venue the engagement covers, and records the pass. Throws when
   * a cancel failed (after the record, which counts them), so the caller gives the claim back. Also,
   * at once, when the pool closes under it (`#unlessAborted`): the pass did not finish, and the process
   * that takes the claim over makes and records it whole (a record already on its way when the abort
   * came may still land: the pass is then recorded twice, an audit row more, nothing sent twice).
   */
  async #cancelWorking(ev: KillEvent, venueId: string, venue: VenueAdapter): Promise<void> {
    const working = await this.#unlessAborted(
      this.#o.ledger.listAllOrders({ venue: venueId, status: WORKING }),
    );
    let cancelled = 0;
    const failed: { clientOrderId: string; error: unknown }[] = [];
    for (const w of working) {
      if (!scopeCovers(ev.scope, w)) continue;
      if (ev.allowRiskReducing && asEnforced(venue, w).reduceOnly) continue;
      if (this.#killAbort.signal.aborted) break;
      try {
        const ms = this.#killCancelTimeoutMs;
        const vo = await this.#unlessAborted(
          within(venue.cancelOrder(w.clientOrderId), ms, () => {
            throw new Error(`cancel of ${w.clientOrderId} at ${venueId}: no answer within ${ms} ms`);
          }),
        );
        if (vo.status === 'cancelled') cancelled += 1;
      } catch (error) {
        // a timeout or an adapter's plain Error alike: this order may still be working
        failed.push({ clientOrderId: w.clientOrderId, error });
      }
    }
    if (this.#killAbort.signal.aborted)
      throw new Error(`kill switch cancel pass aborted: worker pool ${this.#id} is closing`);
    const first = failed[0];
    const firstMsg = first ? errorMessage(first.error) : undefined;
    await this.#unlessAborted(
      this.#o.killSwitch.recordCancelWorking(ev.scope, this.#id, {
        venue: venueId,
        eventId: ev.eventId,
        working: working.length,
        cancelled,
        ...(first ? { failed: failed.length, firstError: `${first.clientOrderId}: ${firstMsg}` } : {}),
      }),
    );
    if (first)
      throw new Error(
        `kill switch ${ev.scope}: ${failed.length} cancel(s) at ${venueId} failed (first ${first.clientOrderId}: ${firstMsg})`,
        { cause: first.error },
      );
  }
}

/** Starts a worker's job loop (opened with `autorun: false`); a loop that fails is the worker's `error`, as BullMQ's autorun does. */
function run(w: Worker): void {
  w.run().catch((err: unknown) => w.emit('error', err instanceof Error ? err : new Error(String(err))));
}

/**
 * Runs the undo steps of a start that failed, newest first, each on its own: one that throws or does not
 * finish within `START_UNDO_MS` is passed over (what it held is left behind), and the others still run.
 * Never throws: the caller rethrows the error that stopped the start.
 */
async function undoAll(steps: readonly (() => Promise<unknown>)[]): Promise<void> {
  for (const step of [...steps].reverse()) {
    try {
      await within(step(), START_UNDO_MS, () => undefined);
    } catch {
      // best effort: the start's own error is what the caller gets
    }
  }
}

/** The error (in `err`, its causes or an AggregateError's errors) that says `details.stuckAtCap`. */
function findStuckAtCap(err: unknown, depth = 0): Error | undefined {
  if (!(err instanceof Error) || depth > 8) return undefined;
  if ((err as { details?: { stuckAtCap?: unknown } }).details?.stuckAtCap === true) return err;
  if (err instanceof AggregateError)
    for (const e of err.errors) {
      const found = findStuckAtCap(e, depth + 1);
      if (found) return found;
    }
  return findStuckAtCap((err as { cause?: unknown }).cause, depth + 1);
}

/** An error's message, for records and logs (a venue error's short one). */
function errorMessage(err: unknown): string {
  if (isVenueError(err)) return err.shortMessage;
  return err instanceof Error ? err.message : String(err);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
