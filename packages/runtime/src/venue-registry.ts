import type { VenueConfig } from '@xhedge/config';
import { canonicalJson, type Position } from '@xhedge/core';
import { closeRedisClient } from '@xhedge/execution';
import { InvalidOrderError, type OrderRequest, type VenueAdapter } from '@xhedge/venue';
import type { Redis } from 'ioredis';
import { maskedError } from './masked-error.ts';

/** What the registry needs from the process's order workers (execution's `WorkerPool` fits). */
export interface VenueWorkers {
  readonly venueIds: readonly string[];
  venue(id: string): VenueAdapter | undefined;
  addVenue(id: string, adapter: VenueAdapter): Promise<unknown>;
  replaceVenue(id: string, next: (current: VenueAdapter) => Promise<VenueAdapter>): Promise<VenueAdapter>;
}

export type RegistryLog = (
  level: 'info' | 'warn' | 'error',
  msg: string,
  data?: Record<string, unknown>,
) => void;

export interface VenueRegistryOptions {
  /**
   * Builds a venue's adapter from its config. `previous` is the adapter it replaces after a params
   * change (a paper venue carries its book over). Throws on what the operator must fix.
   */
  build: (config: VenueConfig, previous?: VenueAdapter) => Promise<VenueAdapter> | VenueAdapter;
  /** The venue configs in force (the shared config store). */
  current: () => Promise<VenueConfig[]>;
  /**
   * How many orders are working at the venue now (sent, acknowledged, partially filled, outcome
   * unknown): a params change waits until there are none, since only the adapter that sent an order
   * is sure to find it again.
   */
  workingOrders: (venueId: string) => Promise<number>;
  log: RegistryLog;
  /** Adapters built at start, with the configs they were built from. */
  initial?: readonly { config: VenueConfig; adapter: VenueAdapter }[];
  /**
   * How long a disabled venue may keep a sync, or an order's pre-trade check, waiting, wall ms. A sync
   * waits this long for the builds of the disabled venues it adds (all at once, alongside its other
   * work); one still building after that goes on in the background, and a later sync takes its adapter
   * (until then its positions are not in the book: a disabled venue holds no hedge). A position read
   * of a disabled venue for the pre-trade checks (`forExecution`) that takes longer counts as failed.
   * Enabled venues' builds are waited for, as before (their hedging is held until they run).
   * @defaultValue 10000
   */
  disabledWaitMs?: number;
}

/** What one `sync` did, by venue id. */
export interface SyncReport {
  /** New adapters (venues added, enabled or disabled, and venues whose earlier builds failed). */
  added: string[];
  /** Adapters rebuilt for new params. */
  replaced: string[];
  /** Params changes waiting for the venue's working orders to end. */
  deferred: string[];
  /**
   * Builds that failed (retried at the next sync), order workers that did not start (likewise), and
   * builds of disabled venues still under way after `disabledWaitMs` (a later sync takes the adapter).
   */
  failed: string[];
  /** Changes of kind or chain, which no running adapter can take. */
  refused: string[];
}

function emptyReport(): SyncReport {
  return { added: [], replaced: [], deferred: [], failed: [], refused: [] };
}

interface Entry {
  config: VenueConfig;
  /** The config without `enabled`, canonical: what the adapter was built from. */
  key: string;
  adapter: VenueAdapter;
}

/** A build's outcome: the adapter, or what it threw. */
type Built = { adapter: VenueAdapter } | { err: unknown };

/** A build still under way after a sync stopped waiting for it (a disabled venue's). */
interface Building {
  /** `adapterKey` of the config it builds from. */
  key: string;
  promise: Promise<Built>;
  /** Set once it ends. */
  done?: Built;
}

/** What decides the adapter: everything but `enabled` (enabling and disabling keep the adapter). */
function adapterKey(v: VenueConfig): string {
  const { enabled: _enabled, ...rest } = v;
  return canonicalJson(rest);
}

/** An error's message as a log line may hold it: credentials masked (an RPC URL's key, a password). */
function message(err: unknown): string {
  return maskedError(err).message;
}

/**
 * The venue adapters of a running process, kept in line with the venue configs operators change
 * through the API (the shared config store). Each `sync` diffs the stored configs against the
 * adapters it runs:
 * - a venue added, enabled or disabled, or one whose earlier build failed: its adapter is built (and a
 *   worker started for it when the process has workers). A disabled venue is built too, read-only: its
 *   positions and balances are part of the book (a disabled venue routes no new hedges; what it holds
 *   still carries risk), its worker follows (and the kill switch cancels) orders working there, and
 *   no new order is sent there (see `forExecution`);
 * - params (or endpoints, credentials) changed: the adapter is rebuilt and swapped once the venue has
 *   no working order and no job runs on the old one; the old one is closed after the swap;
 * - disabled or enabled: the adapter stays (routing leaves disabled venues out, see `TickPlanner`;
 *   the workers refuse new orders to them);
 * - a build that fails is logged with the venue id (credentials masked) and tried again at every
 *   sync; the run goes on. The planner, which finds the venue with no adapter, holds its hedging when
 *   it is enabled (as for a venue it cannot read), and only says so when it is disabled (its positions
 *   are not in the book; `buildFailure` says why). A disabled venue's build is waited for at most
 *   `disabledWaitMs`, so a slow one does not hold a sync (nor the start) back.
 * Syncs run one at a time (the planner's tick, the poll and the pub/sub nudge share one queue). The
 * enabled flags do not wait in that queue: every tick, poll and nudge applies them to the order views
 * at once (`forExecution`), so a disable takes effect in every process (a worker-only one too) while a
 * sync waits on another venue (a swap waiting for its jobs, a hung build), and so does an enable of a
 * venue that is built.
 */
export class VenueRegistry {
  readonly #o: VenueRegistryOptions;
  readonly #disabledWaitMs: number;
  readonly #entries = new Map<string, Entry>();
  readonly #byId = new Map<string, VenueAdapter>();
  /** The adapters as the workers and pre-trade checks get them (`forExecution`), by venue id. */
  readonly #forExecution = new Map<string, VenueAdapter>();
  /** Each adapter's view for execution (`#view`), and back. */
  readonly #views = new WeakMap<VenueAdapter, VenueAdapter>();
  readonly #targets = new WeakMap<VenueAdapter, VenueAdapter>();
  /**
   * Whether each venue is enabled in the newest configs read (by a sync, or at once by a tick, poll or
   * nudge: `#applyFlags`), else the start's; absent: not configured.
   */
  readonly #enabled = new Map<string, boolean>();
  /** Reads of the configs for the flags, numbered as they start (`#applyFlags`). */
  #flagsSeq = 0;
  /** The number of the read whose flags `#enabled` holds: an older read that ends later is dropped. */
  #flagsApplied = 0;
  /** The poll's or nudge's read of the flags under way (`#refreshFlags`), and whether to read again after it. */
  #flagsRead: Promise<void> | undefined;
  #flagsAgain = false;
  #order: string[] = [];
  #workers: VenueWorkers | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  /**
   * Configured venues with no adapter, and the error of their last build (or worker start) that failed,
   * or of a disabled venue's build still under way: the planner holds an enabled one's hedging as for
   * a venue it cannot read, and names a disabled one in its warnings (`buildFailure`).
   */
  readonly #notBuilt = new Map<string, unknown>();
  /** Disabled venues' builds that a sync stopped waiting for (`disabledWaitMs`), by venue id. */
  readonly #building = new Map<string, Building>();
  /** Disabled venues whose last position read for the pre-trade checks failed (logged once per streak). */
  readonly #unreadForChecks = new Set<string>();
  /** Each disabled venue's last positions read for the pre-trade checks (what a failing read returns). */
  readonly #lastPositions = new Map<string, Position[]>();
  /** Last problem logged per venue, so a failure repeated every sync is logged once. */
  readonly #reported = new Map<string, string>();
  #timer: NodeJS.Timeout | undefined;
  #subscriber: Redis | undefined;
  #stopped = false;
  #closed = false;
  /** A sync of the poll or the nudge is queued and has not started (it reads the configs when it starts). */
  #syncQueued = false;
  /** Syncs queued or running. */
  #pending = 0;

  constructor(o: VenueRegistryOptions) {
    this.#o = o;
    this.#disabledWaitMs = o.disabledWaitMs ?? 10_000;
    for (const { config, adapter } of o.initial ?? []) {
      this.#enabled.set(config.id, config.enabled);
      this.#put(config, adapter);
    }
  }

  /** The adapters by venue id, enabled or not (a live map: it follows every sync). */
  get byId(): ReadonlyMap<string, VenueAdapter> {
    return this.#byId;
  }

  /**
   * The adapters as execution must get them, by venue id (a live map: it follows every sync): for the
   * order workers (`attachWorkers` hands them these) and the pre-trade checks (`VenueMarketData`). Each
   * is a view of the venue's adapter that follows its enabled flag in the configs of the last sync:
   * - while the venue is disabled, `placeOrder` refuses (an `InvalidOrderError`, outcome `rejected`:
   *   nothing was sent, the order ends rejected), so no worker ever sends an order there; following
   *   and cancelling orders working there go on (`getOrderByClientId`, `cancelOrder`, `fetchFills`);
   * - while it is disabled, a position read that fails or takes longer than `disabledWaitMs` counts as
   *   holding nothing (logged once per streak), so a broken disabled venue never holds an order check
   *   (the exposure checks read every venue's positions); an enabled venue's read fails as before.
   */
  get forExecution(): ReadonlyMap<string, VenueAdapter> {
    return this.#forExecution;
  }

  get(id: string): VenueAdapter | undefined {
    return this.#byId.get(id);
  }

  /** Every adapter, enabled or not, in the order of the stored configs. */
  adapters(): VenueAdapter[] {
    const listed = this.#order.filter((id) => this.#byId.has(id));
    const rest = [...this.#byId.keys()].filter((id) => !listed.includes(id));
    return [...listed, ...rest].map((id) => this.#byId.get(id) as VenueAdapter);
  }

  /**
   * Why a configured venue has no adapter: the error of its last build (or worker start) that failed,
   * as thrown (mask it before it is shown), or, for a disabled venue, that its build is still under
   * way; undefined when it has an adapter, is no longer configured, or no build of it failed yet. For
   * the planner's log (`TickPlannerOptions.notRunning`).
   */
  buildFailure(id: string): unknown {
    return this.#notBuilt.get(id);
  }

  /** The config an adapter runs with. */
  configOf(id: string): VenueConfig | undefined {
    return this.#entries.get(id)?.config;
  }

  #put(config: VenueConfig, adapter: VenueAdapter): void {
    this.#entries.set(config.id, { config, key: adapterKey(config), adapter });
    this.#byId.set(config.id, adapter);
    this.#forExecution.set(config.id, this.#view(adapter));
    this.#notBuilt.delete(config.id);
    if (!this.#order.includes(config.id)) this.#order.push(config.id);
  }

  /** The adapter behind a view of `#view` (or the adapter itself). */
  #target(a: VenueAdapter): VenueAdapter {
    return this.#targets.get(a) ?? a;
  }

  /** `adapter` as execution gets it (see `forExecution`); one view per adapter. */
  #view(adapter: VenueAdapter): VenueAdapter {
    const known = this.#views.get(adapter);
    if (known) return known;
    const id = adapter.id;
    const disabled = () => this.#enabled.get(id) !== true;
    const placeOrder = async (req: OrderRequest) => {
      if (disabled())
        throw new InvalidOrderError({
          venue: id,
          clientOrderId: req.clientOrderId,
          message:
            'the venue is disabled: no new order is sent there (refused before sending; its working orders are still followed)',
        });
      return adapter.placeOrder(req);
    };
    const fetchPositions = async (): Promise<Position[]> => {
      if (!disabled()) return adapter.fetchPositions();
      let timer: NodeJS.Timeout | undefined;
      try {
        const positions = await Promise.race([
          adapter.fetchPositions(),
          new Promise<never>((_, reject) => {
            timer = setTimeout(
              () => reject(new Error(`no answer in ${this.#disabledWaitMs} ms`)),
              this.#disabledWaitMs,
            );
          }),
        ]);
        this.#lastPositions.set(id, positions);
        if (this.#unreadForChecks.delete(id))
          this.#o.log('info', `disabled venue ${id}: its positions are read again for the order checks`, {
            venue: id,
          });
        return positions;
      } catch (err) {
        if (!this.#unreadForChecks.has(id)) {
          this.#unreadForChecks.add(id);
          this.#o.log(
            'warn',
            `disabled venue ${id}: reading its positions for the order checks failed; its last read counts there (none if never read) until it is read again`,
            { venue: id, err: message(err) },
          );
        }
        // no new order changes a disabled venue's positions: its last read is still the best estimate
        return this.#lastPositions.get(id) ?? [];
      } finally {
        clearTimeout(timer);
      }
    };
    const view = new Proxy(adapter, {
      get: (target, prop) => {
        if (prop === 'placeOrder') return placeOrder;
        if (prop === 'fetchPositions') return fetchPositions;
        const value: unknown = Reflect.get(target, prop, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    this.#views.set(adapter, view);
    this.#targets.set(view, adapter);
    return view;
  }

  /** Runs `fn` after every sync queued before it, and before any queued after. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    this.#pending++;
    const run = this.#queue.then(fn).finally(() => {
      this.#pending--;
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Starts the process's workers on the adapters of now, enabled or not, as execution gets them
   * (`forExecution`: a disabled venue's takes no new order), and keeps them in line from then on:
   * later syncs add workers for new venues and swap adapters through the pool.
   */
  attachWorkers<W extends VenueWorkers>(
    start: (venues: ReadonlyMap<string, VenueAdapter>) => Promise<W>,
  ): Promise<W> {
    return this.#serial(async () => {
      const workers = await start(new Map(this.#forExecution));
      this.#workers = workers;
      return workers;
    });
  }

  /**
   * Brings the adapters in line with the venue configs (`configs`, else the store's). Never throws for
   * one venue's trouble: that is logged and in the report, and the next sync tries again. Queued behind
   * a sync underway, it applies the enabled flags at once (see `forExecution`).
   */
  sync(configs?: readonly VenueConfig[]): Promise<SyncReport> {
    // configs handed over were read before now: their flags are numbered now, not when the sync runs
    const seq = configs ? ++this.#flagsSeq : undefined;
    // one queued behind another sync applies the flags at once (that one may wait for long)
    if (this.#pending > 0) void this.#followFlags(configs).catch(() => undefined);
    return this.#serial(() => this.#sync(configs, seq));
  }

  /**
   * `sync`, unless one is underway (which applies the changes anyway): then it resolves at once with
   * nothing done, so a caller on a timer (the planner's tick) never waits for a swap that waits for
   * the venue's jobs.
   */
  syncIfIdle(configs?: readonly VenueConfig[]): Promise<SyncReport> {
    if (this.#pending > 0) return this.#followFlags(configs).then(emptyReport);
    return this.sync(configs);
  }

  /**
   * The order views' enabled flags from `configs` (else the store's) at once, without the rest of a sync:
   * while a sync waits (a venue's build, a swap waiting for its jobs), a venue disabled meanwhile must
   * take no new order, and one enabled meanwhile is routed to by the planner, and its orders must not be
   * refused as if it were still disabled. A read of the store that fails leaves the flags as they are
   * (the next sync applies them).
   */
  async #followFlags(configs?: readonly VenueConfig[]): Promise<void> {
    const seq = ++this.#flagsSeq;
    let now: readonly VenueConfig[];
    try {
      now = configs ?? (await this.#o.current());
    } catch {
      return;
    }
    this.#applyFlags(seq, now);
  }

  /**
   * `#followFlags` from the store for the poll and the nudge, one read at a time: one asked for while a
   * read is under way (which may have started before the change it announces) reads again after it.
   */
  #refreshFlags(): Promise<void> {
    if (this.#flagsRead) {
      this.#flagsAgain = true;
      return this.#flagsRead;
    }
    const read = async () => {
      do {
        this.#flagsAgain = false;
        await this.#followFlags();
      } while (this.#flagsAgain && !this.#stopped);
    };
    const run = read().finally(() => {
      this.#flagsRead = undefined;
    });
    this.#flagsRead = run;
    return run;
  }

  /**
   * The order views follow the enabled flags of `configs`, read by read `seq` (numbered as it started),
   * unless a read that started later applied already (reads run side by side: a sync's, the poll's, the
   * nudge's, the tick's; an older one ending last must not undo a newer disable or enable). A built
   * venue whose flag changes is logged.
   */
  #applyFlags(seq: number, configs: readonly VenueConfig[]): void {
    if (seq < this.#flagsApplied) return;
    this.#flagsApplied = seq;
    const before = new Map(this.#enabled);
    this.#enabled.clear();
    for (const c of configs) this.#enabled.set(c.id, c.enabled);
    for (const c of configs)
      if (this.#entries.has(c.id) && before.has(c.id) && before.get(c.id) !== c.enabled)
        this.#o.log('info', `venue ${c.id} ${c.enabled ? 'enabled' : 'disabled'}`, { venue: c.id });
  }

  async #sync(given?: readonly VenueConfig[], givenSeq?: number): Promise<SyncReport> {
    const report = emptyReport();
    if (this.#closed || this.#stopped) return report;
    const seq = givenSeq ?? ++this.#flagsSeq;
    const configs = given ?? (await this.#o.current());
    this.#order = configs.map((c) => c.id);
    // the order views follow the flags at once (an order checked while this sync builds sees them)
    this.#applyFlags(seq, configs);
    const configured = new Set(this.#order);
    for (const id of this.#notBuilt.keys()) if (!configured.has(id)) this.#notBuilt.delete(id);
    // Disabled venues to add are built alongside the rest of the sync, and waited for at most
    // `disabledWaitMs` from now: a slow one holds neither this sync nor the start back for longer.
    // A build an earlier sync waited for already is not waited for again: it is taken once it ends.
    const waitUntil = Date.now() + this.#disabledWaitMs;
    const disabled = configs
      .filter((c) => !c.enabled && !this.#entries.has(c.id))
      .map((c) => {
        const before = this.#building.get(c.id)?.key === adapterKey(c);
        return { c, built: this.#buildOf(c), until: before ? 0 : waitUntil };
      });
    for (const c of configs) {
      const e = this.#entries.get(c.id);
      if (!e) {
        if (c.enabled) await this.#add(c, report);
        continue;
      }
      if (e.config.kind !== c.kind || e.config.chain !== c.chain) {
        this.#report(
          c.id,
          'warn',
          `venue ${c.id}: the stored config is ${c.kind} on ${c.chain}, this process runs ${e.config.kind} on ${e.config.chain}; kind and chain cannot change while running (add a new venue)`,
        );
        report.refused.push(c.id);
        continue;
      }
      // enabling or disabling applied already (`#applyFlags`, logged there)
      if (adapterKey(c) === e.key) e.config = c;
      else await this.#replace(e, c, report);
      // a worker that did not start with the adapter (see `#addDisabled`) is tried again
      if (!(await this.#startWorker(c.id))) report.failed.push(c.id);
    }
    await Promise.all(disabled.map(({ c, built, until }) => this.#addDisabled(c, built, until, report)));
    return report;
  }

  /**
   * A build of `c`: the one a sync stopped waiting for when it builds the same config (a config since
   * changed: that one's adapter is closed when it ends), else a new one. Never rejects.
   */
  #buildOf(c: VenueConfig): Building {
    const key = adapterKey(c);
    const under = this.#building.get(c.id);
    if (under?.key === key) return under;
    this.#building.delete(c.id);
    if (under) void under.promise.then((b) => ('adapter' in b ? this.#close(b.adapter) : undefined));
    const building: Building = {
      key,
      promise: (async (): Promise<Built> => {
        try {
          const adapter = await this.#o.build(c);
          if (adapter.id !== c.id) {
            await this.#close(adapter);
            throw new Error(`the adapter built for venue ${c.id} calls itself ${adapter.id}`);
          }
          return { adapter };
        } catch (err) {
          return { err };
        }
      })(),
    };
    void building.promise.then((b) => {
      building.done = b;
    });
    return building;
  }

  /** The build error's log line: config errors name the venue already. */
  #buildError(c: VenueConfig, err: unknown): string {
    const why = message(err);
    return why.startsWith(`venue ${c.id}`) ? why : `venue ${c.id} (${c.kind} on ${c.chain}): ${why}`;
  }

  async #add(c: VenueConfig, report: SyncReport): Promise<void> {
    // an enabled venue's build is waited for (its hedging is held until it runs), also one a sync
    // started while it was disabled
    const building = this.#buildOf(c);
    this.#building.delete(c.id);
    const built = await building.promise;
    if ('err' in built) {
      this.#report(c.id, 'error', `${this.#buildError(c, built.err)} (not built; tried again at every sync)`);
      this.#notBuilt.set(c.id, built.err);
      report.failed.push(c.id);
      return;
    }
    const { adapter } = built;
    const view = this.#view(adapter);
    try {
      // the worker first: once the venue is visible, routing may send it orders
      if (this.#workers?.venue(c.id)) {
        const stale = this.#target(await this.#workers.replaceVenue(c.id, async () => view));
        if (stale !== adapter) await this.#close(stale);
      } else if (this.#workers) await this.#workers.addVenue(c.id, view);
    } catch (err) {
      await this.#close(adapter);
      this.#report(
        c.id,
        'error',
        `venue ${c.id}: starting its order worker failed; retrying: ${message(err)}`,
      );
      this.#notBuilt.set(c.id, err);
      report.failed.push(c.id);
      return;
    }
    this.#put(c, adapter);
    this.#reported.delete(c.id);
    report.added.push(c.id);
    this.#o.log('info', `venue ${c.id} (${c.kind} on ${c.chain}) is live`, { venue: c.id });
  }

  /**
   * A disabled venue's adapter, built read-only: waited for until `waitUntil` (wall ms), after which
   * its build goes on and a later sync takes it. A build that fails, or is still under way, is logged
   * once and tried again at every sync; the planner says the venue is not read, and holds nothing for
   * it (operators disable a broken venue to let hedging go on).
   */
  async #addDisabled(
    c: VenueConfig,
    building: Building,
    waitUntil: number,
    report: SyncReport,
  ): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const built =
      building.done ??
      (await Promise.race([
        building.promise,
        new Promise<undefined>((resolve) => {
          timer = setTimeout(() => resolve(undefined), Math.max(0, waitUntil - Date.now()));
        }),
      ]).finally(() => clearTimeout(timer)));
    if (!built) {
      this.#building.set(c.id, building);
      const err = new Error(
        `its build has not finished after ${this.#disabledWaitMs} ms; it goes on, and a later sync takes its adapter`,
      );
      this.#notBuilt.set(c.id, err);
      this.#report(
        c.id,
        'warn',
        `disabled venue ${c.id} (${c.kind} on ${c.chain}) is not built yet, so its positions are not in the book: ${err.message}`,
      );
      report.failed.push(c.id);
      return;
    }
    this.#building.delete(c.id);
    if ('err' in built) {
      this.#report(
        c.id,
        'error',
        `${this.#buildError(c, built.err)} (disabled venue not built, so its positions are not in the book; it holds no hedge; tried again at every sync)`,
      );
      this.#notBuilt.set(c.id, built.err);
      report.failed.push(c.id);
      return;
    }
    this.#put(c, built.adapter);
    this.#reported.delete(c.id);
    report.added.push(c.id);
    this.#o.log(
      'info',
      `venue ${c.id} (${c.kind} on ${c.chain}) is disabled: built read-only (its positions are in the book; no order is sent there)`,
      { venue: c.id },
    );
    // its worker follows the orders working there (from before it was disabled) and takes no new one;
    // one that does not start is tried again at every sync, the adapter is read meanwhile
    if (!(await this.#startWorker(c.id))) report.failed.push(c.id);
  }

  /** Starts the order worker of a venue that has an adapter and no worker yet; false when that fails (logged). */
  async #startWorker(id: string): Promise<boolean> {
    const workers = this.#workers;
    const adapter = this.#byId.get(id);
    if (!workers || !adapter || workers.venue(id)) return true;
    try {
      await workers.addVenue(id, this.#view(adapter));
    } catch (err) {
      this.#report(id, 'error', `venue ${id}: starting its order worker failed; retrying: ${message(err)}`);
      return false;
    }
    if (this.#reported.get(id)?.startsWith(`venue ${id}: starting its order worker failed`)) {
      this.#reported.delete(id);
      this.#o.log('info', `venue ${id}: its order worker started`, { venue: id });
    }
    return true;
  }

  async #replace(e: Entry, c: VenueConfig, report: SyncReport): Promise<void> {
    const id = c.id;
    // set by `swap` (a closure, so the compiler must not narrow them to their first values)
    let outcome = 'failed' as 'replaced' | 'deferred' | 'failed';
    let built = undefined as VenueAdapter | undefined;
    const waiting = async (): Promise<boolean> => {
      const working = await this.#o.workingOrders(id);
      if (working === 0) return false;
      outcome = 'deferred';
      this.#report(
        id,
        'info',
        `venue ${id}: its new params wait until its working orders end (the adapter that sent an order keeps it until then)`,
        { working },
      );
      return true;
    };
    // runs while no order job of this process uses the venue's adapter (the pool holds them back)
    // `current` is the pool's view of the adapter (see `forExecution`): the build gets the adapter
    const swap = async (current: VenueAdapter): Promise<VenueAdapter> => {
      if (await waiting()) return current;
      try {
        const next = await this.#o.build(c, this.#target(current));
        if (next.id !== id) {
          await this.#close(next);
          throw new Error(`the adapter built for venue ${id} calls itself ${next.id}`);
        }
        outcome = 'replaced';
        built = next;
        return this.#view(next);
      } catch (err) {
        outcome = 'failed';
        this.#report(
          id,
          'error',
          `venue ${id}: rebuilding it with its new params failed; it keeps running with the old ones and retries: ${message(err)}`,
        );
        return current;
      }
    };
    const prev = e.adapter;
    try {
      // asked first without holding the venue's jobs back, then again while they are held
      if (!(await waiting())) {
        if (this.#workers?.venue(id)) await this.#workers.replaceVenue(id, swap);
        else await swap(prev);
      }
    } catch (err) {
      if (built) await this.#close(built);
      this.#report(id, 'error', `venue ${id}: swapping its adapter failed; retrying: ${message(err)}`);
      report.failed.push(id);
      return;
    }
    if (outcome !== 'replaced' || !built) {
      // the adapter keeps its config; only enabling or disabling applies now
      e.config = { ...e.config, enabled: c.enabled };
      report[outcome === 'deferred' ? 'deferred' : 'failed'].push(id);
      return;
    }
    this.#put(c, built);
    this.#reported.delete(id);
    report.replaced.push(id);
    this.#o.log('info', `venue ${id} runs with its new params`, { venue: id });
    await this.#close(prev);
  }

  /** Logs a venue's problem once (again only when it changes). */
  #report(
    id: string,
    level: 'info' | 'warn' | 'error',
    msg: string,
    data: Record<string, unknown> = {},
  ): void {
    if (this.#reported.get(id) === msg) return;
    this.#reported.set(id, msg);
    this.#o.log(level, msg, { venue: id, ...data });
  }

  async #close(a: VenueAdapter): Promise<void> {
    try {
      await a.close?.();
    } catch (err) {
      this.#o.log('warn', `closing an adapter of venue ${a.id} failed`, { venue: a.id, err: message(err) });
    }
  }

  /**
   * Syncs every `pollMs` (wall time) and, with a subscriber, at once when the config store announces a
   * change on `channel`. The subscriber is this registry's own connection (`stop` quits it). Each poll
   * and nudge applies the enabled flags at once, outside the sync queue (`#refreshFlags`), and queues a
   * sync unless one is queued already (not yet started: it reads the configs when it starts); the poll
   * goes on while a sync waits (a swap waiting for the venue's jobs), so its flags still apply.
   */
  async start(o: { pollMs: number; subscriber?: Redis; channel?: string }): Promise<void> {
    if (this.#timer || this.#stopped) return;
    const follow = () => {
      if (this.#stopped) return;
      // behind a sync underway, the flags apply at once (with none, the sync queued here applies them)
      if (this.#pending > 0) void this.#refreshFlags().catch(() => undefined); // a failed read: the next one
      if (this.#syncQueued) return;
      this.#syncQueued = true;
      void this.#serial(async () => {
        this.#syncQueued = false;
        return this.#sync();
      }).catch((err: unknown) =>
        this.#o.log('warn', 'reading the venue configs failed; trying again', { err: message(err) }),
      );
    };
    const tick = () => {
      follow();
      if (!this.#stopped) this.#timer = setTimeout(tick, o.pollMs);
    };
    this.#timer = setTimeout(tick, o.pollMs);
    if (o.subscriber && o.channel) {
      const sub = o.subscriber;
      this.#subscriber = sub;
      sub.on('error', () => {}); // ioredis reconnects; the poll covers what a lost nudge would have said
      sub.on('message', (ch: string) => {
        if (ch === o.channel) follow();
      });
      await sub.subscribe(o.channel);
    }
  }

  /** Stops polling and listening, and waits for a sync underway. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    // bounded: a subscriber cut off from Redis would hold QUIT, and the run's shutdown, for ever
    if (this.#subscriber) await closeRedisClient(this.#subscriber);
    await this.#queue;
  }

  /** Stops, then closes every adapter. */
  async close(): Promise<void> {
    await this.stop();
    await this.#serial(async () => {
      this.#closed = true;
      // builds still under way: their adapters are closed when they end
      for (const b of this.#building.values())
        void b.promise.then((x) => ('adapter' in x ? this.#close(x.adapter) : undefined));
      this.#building.clear();
      await Promise.all([...this.#byId.values()].map((a) => this.#close(a)));
    });
  }
}
