import type { VenueConfig } from '@xhedge/config';
import { closeRedisClient } from '@xhedge/execution';
import type { VenueAdapter } from '@xhedge/venue';
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
}

/** What one `sync` did, by venue id. */
export interface SyncReport {
  /** New adapters (venues added, or enabled for the first time). */
  added: string[];
  /** Adapters rebuilt for new params. */
  replaced: string[];
  /** Params changes waiting for the venue's working orders to end. */
  deferred: string[];
  /** Builds that failed (retried at the next sync). */
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

/** JSON with object keys sorted, so the same config always gives the same text. */
function canonical(x: unknown): string {
  if (Array.isArray(x)) return `[${x.map(canonical).join(',')}]`;
  if (x !== null && typeof x === 'object')
    return `{${Object.entries(x)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`)
      .join(',')}}`;
  return JSON.stringify(x);
}

/** What decides the adapter: everything but `enabled` (enabling and disabling keep the adapter). */
function adapterKey(v: VenueConfig): string {
  const { enabled: _enabled, ...rest } = v;
  return canonical(rest);
}

/** An error's message as a log line may hold it: credentials masked (an RPC URL's key, a password). */
function message(err: unknown): string {
  return maskedError(err).message;
}

/**
 * The venue adapters of a running process, kept in line with the venue configs operators change
 * through the API (the shared config store). Each `sync` diffs the stored configs against the
 * adapters it runs:
 * - a venue added, or enabled without an adapter yet: its adapter is built (and a worker started for
 *   it when the process has workers);
 * - params (or endpoints, credentials) changed: the adapter is rebuilt and swapped once the venue has
 *   no working order and no job runs on the old one; the old one is closed after the swap;
 * - disabled: the adapter stays, so risk still reads the venue's positions (routing leaves disabled
 *   venues out, see `TickPlanner`);
 * - a build that fails is logged with the venue id (credentials masked) and tried again at the next
 *   sync; the run goes on, and the planner, which finds the venue enabled with no adapter, holds its
 *   hedging as for a venue it cannot read (`buildFailure` says why).
 * Syncs run one at a time (the planner's tick, the poll and the pub/sub nudge share one queue).
 */
export class VenueRegistry {
  readonly #o: VenueRegistryOptions;
  readonly #entries = new Map<string, Entry>();
  readonly #byId = new Map<string, VenueAdapter>();
  #order: string[] = [];
  #workers: VenueWorkers | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  /**
   * Enabled venues with no adapter, and the error of their last build (or worker start) that failed:
   * the planner holds their hedging as for a venue it cannot read (`buildFailure`).
   */
  readonly #notBuilt = new Map<string, unknown>();
  /** Last problem logged per venue, so a failure repeated every sync is logged once. */
  readonly #reported = new Map<string, string>();
  #timer: NodeJS.Timeout | undefined;
  #subscriber: Redis | undefined;
  #stopped = false;
  #closed = false;
  #nudged = false;
  /** Syncs queued or running. */
  #pending = 0;

  constructor(o: VenueRegistryOptions) {
    this.#o = o;
    for (const { config, adapter } of o.initial ?? []) this.#put(config, adapter);
  }

  /** The adapters by venue id (a live map: it follows every sync). */
  get byId(): ReadonlyMap<string, VenueAdapter> {
    return this.#byId;
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
   * Why an enabled venue has no adapter: the error of its last build (or worker start) that failed, as
   * thrown (mask it before it is shown); undefined when it has an adapter, is not enabled, or no build of
   * it failed yet. For the planner's log (`TickPlannerOptions.notRunning`).
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
    this.#notBuilt.delete(config.id);
    if (!this.#order.includes(config.id)) this.#order.push(config.id);
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
   * Starts the process's workers on the adapters of now (`start` gets them) and keeps them in line
   * from then on: later syncs add workers for new venues and swap adapters through the pool.
   */
  attachWorkers<W extends VenueWorkers>(
    start: (venues: ReadonlyMap<string, VenueAdapter>) => Promise<W>,
  ): Promise<W> {
    return this.#serial(async () => {
      const workers = await start(new Map(this.#byId));
      this.#workers = workers;
      return workers;
    });
  }

  /**
   * Brings the adapters in line with the venue configs (`configs`, else the store's). Never throws for
   * one venue's trouble: that is logged and in the report, and the next sync tries again.
   */
  sync(configs?: readonly VenueConfig[]): Promise<SyncReport> {
    return this.#serial(() => this.#sync(configs));
  }

  /**
   * `sync`, unless one is underway (which applies the changes anyway): then it resolves at once with
   * nothing done, so a caller on a timer (the planner's tick) never waits for a swap that waits for
   * the venue's jobs.
   */
  syncIfIdle(configs?: readonly VenueConfig[]): Promise<SyncReport> {
    if (this.#pending > 0) return Promise.resolve(emptyReport());
    return this.sync(configs);
  }

  async #sync(given?: readonly VenueConfig[]): Promise<SyncReport> {
    const report = emptyReport();
    if (this.#closed || this.#stopped) return report;
    const configs = given ?? (await this.#o.current());
    this.#order = configs.map((c) => c.id);
    for (const id of this.#notBuilt.keys())
      if (!configs.some((c) => c.id === id && c.enabled)) this.#notBuilt.delete(id);
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
      if (adapterKey(c) === e.key) {
        if (c.enabled !== e.config.enabled)
          this.#o.log('info', `venue ${c.id} ${c.enabled ? 'enabled' : 'disabled'}`, { venue: c.id });
        e.config = c;
        continue;
      }
      await this.#replace(e, c, report);
    }
    return report;
  }

  async #add(c: VenueConfig, report: SyncReport): Promise<void> {
    let adapter: VenueAdapter;
    try {
      adapter = await this.#o.build(c);
      if (adapter.id !== c.id) {
        await this.#close(adapter);
        throw new Error(`the adapter built for venue ${c.id} calls itself ${adapter.id}`);
      }
    } catch (err) {
      const why = message(err);
      // config errors name the venue already
      const what = why.startsWith(`venue ${c.id}`) ? why : `venue ${c.id} (${c.kind} on ${c.chain}): ${why}`;
      this.#report(c.id, 'error', `${what} (not built; tried again at every sync)`);
      this.#notBuilt.set(c.id, err);
      report.failed.push(c.id);
      return;
    }
    try {
      // the worker first: once the venue is visible, routing may send it orders
      if (this.#workers?.venue(c.id)) {
        const stale = await this.#workers.replaceVenue(c.id, async () => adapter);
        if (stale !== adapter) await this.#close(stale);
      } else if (this.#workers) await this.#workers.addVenue(c.id, adapter);
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
    const swap = async (current: VenueAdapter): Promise<VenueAdapter> => {
      if (await waiting()) return current;
      try {
        const next = await this.#o.build(c, current);
        if (next.id !== id) {
          await this.#close(next);
          throw new Error(`the adapter built for venue ${id} calls itself ${next.id}`);
        }
        outcome = 'replaced';
        built = next;
        return next;
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
   * change on `channel`. The subscriber is this registry's own connection (`stop` quits it).
   */
  async start(o: { pollMs: number; subscriber?: Redis; channel?: string }): Promise<void> {
    if (this.#timer || this.#stopped) return;
    const tick = async () => {
      if (this.#stopped) return;
      await this.sync().catch((err: unknown) =>
        this.#o.log('warn', 'reading the venue configs failed; trying again', { err: message(err) }),
      );
      if (!this.#stopped) this.#timer = setTimeout(tick, o.pollMs);
    };
    this.#timer = setTimeout(tick, o.pollMs);
    if (o.subscriber && o.channel) {
      const sub = o.subscriber;
      this.#subscriber = sub;
      sub.on('error', () => {}); // ioredis reconnects; the poll covers what a lost nudge would have said
      sub.on('message', (ch: string) => {
        if (ch !== o.channel || this.#nudged || this.#stopped) return;
        this.#nudged = true;
        void this.#serial(async () => {
          this.#nudged = false;
          return this.#sync();
        }).catch((err: unknown) =>
          this.#o.log('warn', 'reading the venue configs failed; trying again', { err: message(err) }),
        );
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
      await Promise.all([...this.#byId.values()].map((a) => this.#close(a)));
    });
  }
}
