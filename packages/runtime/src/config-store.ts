import { randomBytes } from 'node:crypto';
import {
  type Actor,
  applyVenueUpdate,
  checkIfMatch,
  checkVenueUpdate,
  configVersion,
  type LastChange,
  type Policies,
  type PolicyPort,
  type VenuesPort,
} from '@xhedge/api';
import { PoliciesConfig, VenueConfig, type XhedgeConfig } from '@xhedge/config';
import { ValidationError, XhedgeError } from '@xhedge/core';
import { keepRestoring } from '@xhedge/execution';
import type { ConfigDocument, Ledger } from '@xhedge/store';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { checkVenueParams } from './venues.ts';

/** Tries of a change before it gives up to others writing the same key at the same time. */
const CAS_ATTEMPTS = 20;
/** Longest wait before a try after a lost compare-and-set, ms (each wait is random up to 2^try ms, capped). */
const CAS_BACKOFF_CAP_MS = 50;

/**
 * SET KEYS[1] ARGV[3] if the key is as read: absent (ARGV[1] = 'absent') or holding ARGV[2]; with it,
 * who made the change (ARGV[5]) under field ARGV[4] of the hash KEYS[2], and the document's next revision
 * (field ARGV[6] of the hash KEYS[3]) with who made it (field ARGV[6]:last), in the same step. The next
 * revision is max(current + 1, ARGV[7] = now in ms): a Redis that lost or rolled back the document never
 * gives a revision again that an earlier change used (the ledger may hold it with another value). The
 * revision the change was made on goes to field ARGV[6]:base, and the revision it belongs to to
 * ARGV[6]:base-of (a release that keeps no base moves the revision without it: that base is then stale).
 * Returns {new revision, base}, or 0 when the key was not as read. Revisions are ms-sized: stored with
 * %d (a Lua number is a double; tostring would write 1.7e+12).
 */
const SET_IF_UNCHANGED = `
local cur = redis.call('GET', KEYS[1])
if (ARGV[1] == 'absent' and cur == false) or (ARGV[1] == 'present' and cur == ARGV[2]) then
  local base = tonumber(redis.call('HGET', KEYS[3], ARGV[6]) or '0')
  local rev = math.max(base + 1, tonumber(ARGV[7]))
  redis.call('SET', KEYS[1], ARGV[3])
  redis.call('HSET', KEYS[2], ARGV[4], ARGV[5])
  redis.call('HSET', KEYS[3], ARGV[6], string.format('%d', rev), ARGV[6] .. ':last', ARGV[5],
    ARGV[6] .. ':base', string.format('%d', base), ARGV[6] .. ':base-of', string.format('%d', rev))
  return {rev, base}
end
return 0`;

/**
 * Puts a document back (from the ledger's copy, or the profile's at the first start of a fresh ledger):
 * SET KEYS[1] ARGV[2] with revision ARGV[3] (field ARGV[1] of the hash KEYS[2]) when the key is absent
 * or its revision is lower (a Redis rolled back, or a replica that lagged); else nothing, so restorers
 * racing each other and a change agree. A document without a revision counts as revision 0 (written by
 * a release that kept none). Who made that revision (ARGV[4]) goes to field ARGV[1]:last. Returns 1 when
 * it wrote.
 */
const RESTORE_IF_BEHIND = `
local cur = redis.call('GET', KEYS[1])
local rev = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if cur == false or rev < tonumber(ARGV[3]) then
  redis.call('SET', KEYS[1], ARGV[2])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
  redis.call('HSET', KEYS[2], ARGV[1] .. ':last', ARGV[4])
  return 1
end
return 0`;

/**
 * Undoes a change made on an old copy: the ledger's copy ARGV[2] (its revision ARGV[5], who made it
 * ARGV[6]) goes back into KEYS[1] at a revision above both, max(ARGV[3] + 1, ARGV[4] = now in ms,
 * ARGV[5] + 1), made on the ledger's (ARGV[1]:base), only if the document is still at revision ARGV[3]
 * (compare-and-set: a change made since is not overwritten). The revision undone goes to ARGV[1]:undone,
 * so the change's own ledger write, arriving late, reports it undone. Returns the new revision, or 0 when
 * the document is at another revision.
 */
const UNDO_IF_AT = `
local rev = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if redis.call('EXISTS', KEYS[1]) == 1 and rev == tonumber(ARGV[3]) then
  local new = math.max(rev + 1, tonumber(ARGV[4]), tonumber(ARGV[5]) + 1)
  redis.call('SET', KEYS[1], ARGV[2])
  redis.call('HSET', KEYS[2], ARGV[1], string.format('%d', new), ARGV[1] .. ':last', ARGV[6],
    ARGV[1] .. ':base', ARGV[5], ARGV[1] .. ':base-of', string.format('%d', new),
    ARGV[1] .. ':undone', string.format('%d', rev))
  return new
end
return 0`;

/**
 * A new revision for a document (field ARGV[1] of the hash KEYS[2]) whose value KEYS[1] is still ARGV[2]
 * at revision ARGV[3] (a revision field absent counts as 0): a change made without a revision. The new
 * revision is max(ARGV[3] + 1, ARGV[4] = now in ms), made on ARGV[3] (ARGV[1]:base). Returns it, or 0 when
 * the document changed meanwhile.
 */
const BUMP_IF_SAME = `
local cur = redis.call('GET', KEYS[1])
local rev = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if cur == ARGV[2] and rev == tonumber(ARGV[3]) then
  local new = math.max(rev + 1, tonumber(ARGV[4]))
  redis.call('HSET', KEYS[2], ARGV[1], string.format('%d', new), ARGV[1] .. ':base', string.format('%d', rev),
    ARGV[1] .. ':base-of', string.format('%d', new))
  return new
end
return 0`;

/** The documents kept in the store (Redis) and, durably, in the ledger. */
export type ConfigDocumentName = 'venues' | 'policy';
const DOCUMENTS: readonly ConfigDocumentName[] = ['venues', 'policy'];

/** What the store needs of the ledger: its durable copy of each document. */
export type ConfigLedger = Pick<Ledger, 'configDocument' | 'writeConfigDocument'>;

/** What one {@link SharedConfigStore.restore} did to one document (no values: they may hold secrets). */
export interface ConfigRestore {
  document: ConfigDocumentName;
  /**
   * `restored`: Redis lacked it or held an older revision; the ledger's copy was put back.
   * `seeded`: neither had it (a fresh ledger and Redis): the profile's was written to both.
   * `recorded`: Redis held a revision the ledger lacked (a change whose ledger write failed or did not
   * run); it was written to the ledger.
   * `conflict`: Redis held a change made on a copy older than the ledger's newest (Redis lost or rolled
   * back the document and the ledger could not be read before the change): recorded, it would have dropped
   * what the ledger holds, so it was undone: the ledger's copy is back in Redis, at a revision above it.
   * An operator's change was lost: log it as an error (no values).
   */
  outcome: 'restored' | 'seeded' | 'recorded' | 'conflict';
  /** The revision Redis had before (absent: no document), and the one in force after. */
  redisRevision?: number;
  revision: number;
}

/** A document as Redis holds it (see {@link SharedConfigStore}). */
interface RedisCopy {
  raw: string | null;
  /** 0 when absent (a release that kept none). */
  revision: number;
  /** Who made the revision (`<document>:last`), as stored. */
  last: string | null;
  /** The revision the change at `revision` was made on; absent when not recorded for this revision. */
  base?: number;
  /** The last revision undone (made on an old copy), if any. */
  undone?: number;
}

/** Full jitter before try `attempt` + 1: processes that lost the same race do not collide again in step. */
function backoff(attempt: number): Promise<void> {
  const ms = Math.random() * Math.min(CAS_BACKOFF_CAP_MS, 2 ** attempt);
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A {@link LastChange} as stored, or undefined when absent or not one. */
function lastChange(raw: string | null | undefined): LastChange | undefined {
  if (!raw) return undefined;
  try {
    const v = JSON.parse(raw) as Partial<LastChange>;
    return typeof v.version === 'string' &&
      typeof v.by === 'string' &&
      typeof v.atMs === 'number' &&
      typeof v.action === 'string'
      ? { version: v.version, by: v.by, atMs: v.atMs, action: v.action }
      : undefined;
  } catch {
    return undefined;
  }
}

/** Who made a document's revision, as `<document>:last` holds it (fields absent when not recorded). */
function lastMeta(raw: string | null): { by?: string; atMs?: number; action?: string } {
  if (!raw) return {};
  try {
    const v = JSON.parse(raw) as { by?: unknown; atMs?: unknown; action?: unknown };
    return {
      ...(typeof v.by === 'string' && v.by !== '' ? { by: v.by } : {}),
      ...(typeof v.atMs === 'number' && Number.isSafeInteger(v.atMs) ? { atMs: v.atMs } : {}),
      ...(typeof v.action === 'string' && v.action !== '' ? { action: v.action } : {}),
    };
  } catch {
    return {};
  }
}

/**
 * The parts of the profile operators change at run time (venues, policy), kept in Redis so every
 * process of a run sees one version: the API writes, the orchestrator reads at each tick and the
 * venue registry of each orchestrator and worker applies venue changes (`venuesChannel`).
 * Each venue and the policy document have a version (`configVersion`, keyed by `<prefix>:config:version-key`)
 * that a conditional change names; who last changed each is kept with it (`<prefix>:config:changes`), written
 * in the same step as the change, so a refused change can say who made the one it lost to.
 *
 * Durable copy (with `ledger`): Redis is the shared, fast copy; the ledger (`config_documents`) the durable
 * one. Each document has a revision in Redis (`<prefix>:config:revisions`), set with every change in the
 * same compare-and-set as the value: above the one before and at least the time in ms, so a Redis that lost
 * or rolled back the document never gives a revision again that the ledger holds with another value; the
 * revision the change was made on is kept with it (`<document>:base`). The change is then written to the
 * ledger, only if the ledger's newest is that base (or older: changes written out of order never put an
 * older value over a newer one) before it is reported done. A change made on a copy older than the
 * ledger's newest (Redis rolled back before it and the ledger could not be read first) is undone: the
 * ledger's copy goes back into Redis above it, and the caller gets CONFLICT (or {@link restore} undoes
 * it: outcome `conflict`). A change Redis took and the ledger did not is reported as an error saying it is in force
 * but not yet durable (`AUDIT_UNRECORDED`, `details.durable: false`); {@link restore} writes it to the
 * ledger later (every 5 s in a run), as does the next change. {@link restore} (at `init`, when a read finds a
 * document absent, before each change, periodically and on reconnect with {@link keepRestored}) puts the
 * ledger's copy back into a Redis that lost it or holds an older revision (reset, restart without AOF,
 * rollback, failover to a replica that lagged). The profile seeds a document only when neither Redis nor
 * the ledger has it (the first start of a fresh ledger); after that the stored copy wins over the profile
 * file. Without `ledger` (read-only tools) the store is Redis only, as before: an absent document reads as
 * the profile's.
 */
export class SharedConfigStore {
  readonly #redis: Redis;
  readonly #ledger: ConfigLedger | undefined;
  readonly #keys: Record<ConfigDocumentName, string>;
  /** Hash: each document's revision (`venues`, `policy`) and who made it (`<document>:last`). */
  readonly #revisionsKey: string;
  /** Hash: who last changed each venue (`venue:<id>`) and the policy (`policy`), with the version it left. */
  readonly #changesKey: string;
  /** The key of the run's config versions (see `configVersion`), shared by its processes. */
  readonly #versionKeyKey: string;
  readonly #config: XhedgeConfig;
  /**
   * Pub/sub channel told after every venue change (add, update, disable), so the processes running
   * venues apply it at once instead of at their next poll.
   */
  readonly venuesChannel: string;

  constructor(opts: {
    redis: Redis;
    prefix: string;
    config: XhedgeConfig;
    ledger?: ConfigLedger | undefined;
  }) {
    this.#redis = opts.redis;
    this.#ledger = opts.ledger;
    this.#keys = { venues: `${opts.prefix}:config:venues`, policy: `${opts.prefix}:config:policy` };
    this.venuesChannel = `${opts.prefix}:config:venues:changed`;
    this.#revisionsKey = `${opts.prefix}:config:revisions`;
    this.#changesKey = `${opts.prefix}:config:changes`;
    this.#versionKeyKey = `${opts.prefix}:config:version-key`;
    this.#config = opts.config;
  }

  /** Puts both documents in Redis (from the ledger, else the profile) and makes the version key. */
  async init(): Promise<ConfigRestore[]> {
    let done: ConfigRestore[] = [];
    if (this.#ledger) done = await this.restore();
    else {
      await this.#redis.set(this.#keys.venues, JSON.stringify(this.#config.venues), 'NX');
      await this.#redis.set(this.#keys.policy, JSON.stringify(this.#config.policy), 'NX');
    }
    await this.#versionKey();
    return done;
  }

  /** The profile's copy of a document (what a fresh ledger and Redis start from). */
  #profile(doc: ConfigDocumentName): unknown {
    return doc === 'venues' ? this.#config.venues : this.#config.policy;
  }

  /** Checks a stored copy parses as the document, naming only paths (the value may hold secrets). */
  #check(doc: ConfigDocumentName, json: string, where: string): void {
    let value: unknown;
    try {
      value = JSON.parse(json);
    } catch {
      throw new XhedgeError('CONFIG_INVALID', `${where} copy of ${doc} is not JSON; it was not restored`);
    }
    const r = (doc === 'venues' ? z.array(VenueConfig) : PoliciesConfig).safeParse(value);
    if (!r.success)
      throw new ValidationError(
        `${where} copy of ${doc} (not restored)`,
        r.error.issues.map((i) => ({ path: i.path.join('.'), message: i.code })),
      );
  }

  /**
   * Brings Redis and the ledger in line for each document: Redis lacking it or holding an older revision
   * gets the ledger's copy (compare-and-set on the revision: concurrent restorers and changes agree);
   * neither having it, both get the profile's (revision 0); Redis holding a revision the ledger lacks,
   * the ledger gets Redis's (a change whose ledger write failed). Venue restores nudge `venuesChannel`.
   * Needs the ledger (throws without); throws when the ledger or Redis cannot be read. Returns what it
   * changed (no values).
   */
  async restore(docs: readonly ConfigDocumentName[] = DOCUMENTS): Promise<ConfigRestore[]> {
    const out: ConfigRestore[] = [];
    for (const doc of docs) {
      const r = await this.#restoreOne(doc);
      if (r) out.push(r);
    }
    if (out.some((r) => r.document === 'venues' && r.outcome !== 'recorded'))
      await this.#redis.publish(this.venuesChannel, '*').catch(() => 0);
    return out;
  }

  /** A document as Redis holds it, value and revision fields read in one step (MULTI). */
  async #readRedis(doc: ConfigDocumentName): Promise<RedisCopy> {
    // read apart, a change between them paired a value with the next revision, and the ledger took the old
    // value at the new revision
    const res = await this.#redis
      .multi()
      .get(this.#keys[doc])
      .hmget(this.#revisionsKey, doc, `${doc}:last`, `${doc}:base`, `${doc}:base-of`, `${doc}:undone`)
      .exec();
    if (!res) throw new XhedgeError('INTERNAL', `reading the ${doc} and their revision was aborted`);
    const [[e1, raw], [e2, fields]] = res as [
      [Error | null, string | null],
      [Error | null, (string | null)[]],
    ];
    if (e1) throw e1;
    if (e2) throw e2;
    const [rev, last, base, baseOf, undone] = fields;
    const revision = rev == null ? 0 : Number(rev);
    // the base counts only for the revision it was written with (a release keeping none moves the revision
    // without it)
    const made = base != null && baseOf != null && Number(baseOf) === revision ? Number(base) : undefined;
    return {
      raw: raw ?? null,
      revision,
      last: last ?? null,
      ...(made !== undefined && Number.isSafeInteger(made) ? { base: made } : {}),
      ...(undone != null ? { undone: Number(undone) } : {}),
    };
  }

  /**
   * Undoes the change at `revision` in Redis (made on a copy older than the ledger's `stored`): the ledger's
   * copy goes back at a revision above both (compare-and-set on `revision`), then to the ledger at that
   * revision (made on the ledger's). Returns the new revision, or undefined when Redis is at another
   * revision by now (nothing undone here). A failing ledger write leaves it to the next {@link restore}
   * (Redis's copy is then the ledger's value, made on the ledger's revision: it is recorded).
   */
  async #undo(
    doc: ConfigDocumentName,
    revision: number,
    stored: ConfigDocument,
  ): Promise<number | undefined> {
    const ledger = this.#ledger;
    if (!ledger) return undefined;
    this.#check(doc, stored.valueJson, 'the ledger');
    const last = JSON.stringify({ by: stored.actor, atMs: stored.atMs, action: stored.action });
    const undone = Number(
      await this.#redis.eval(
        UNDO_IF_AT,
        2,
        this.#keys[doc],
        this.#revisionsKey,
        doc,
        stored.valueJson,
        String(revision),
        String(Date.now()),
        String(stored.revision),
        last,
      ),
    );
    if (!(undone > 0)) return undefined;
    await ledger
      .writeConfigDocument({
        name: doc,
        valueJson: stored.valueJson,
        revision: undone,
        baseRevision: stored.revision,
        actor: stored.actor,
        action: stored.action,
        atMs: stored.atMs,
      })
      .catch(() => undefined);
    return undone;
  }

  async #restoreOne(doc: ConfigDocumentName): Promise<ConfigRestore | undefined> {
    const ledger = this.#ledger;
    if (!ledger) throw new XhedgeError('INTERNAL', 'this config store has no ledger to restore from');
    const key = this.#keys[doc];
    const stored = await ledger.configDocument(doc);
    const before = await this.#readRedis(doc);
    let outcome: ConfigRestore['outcome'] | undefined;
    if (stored && (before.raw === null || before.revision < stored.revision)) {
      this.#check(doc, stored.valueJson, 'the ledger');
      const last = JSON.stringify({ by: stored.actor, atMs: stored.atMs, action: stored.action });
      const put = await this.#redis.eval(
        RESTORE_IF_BEHIND,
        2,
        key,
        this.#revisionsKey,
        doc,
        stored.valueJson,
        String(stored.revision),
        last,
      );
      if (put === 1) outcome = 'restored';
    } else if (!stored && before.raw === null) {
      // the first start of a fresh ledger (and Redis): the profile's, at revision 0
      const last = JSON.stringify({ by: 'profile', atMs: Date.now(), action: 'seed' });
      const put = await this.#redis.eval(
        RESTORE_IF_BEHIND,
        2,
        key,
        this.#revisionsKey,
        doc,
        JSON.stringify(this.#profile(doc)),
        '0',
        last,
      );
      if (put === 1) outcome = 'seeded';
    }
    // Redis ahead of the ledger (or the ledger without a copy): the ledger gets Redis's
    let now = await this.#readRedis(doc);
    // Redis holding another value at the ledger's revision was changed without a revision (an older
    // release's API or CLI during a rolling deploy or after a rollback, a hand edit): that change is the
    // newer one, so it gets a new revision (only if the value is still the one read), made on the ledger's,
    // and the ledger takes it. Left as it was, a later Redis loss put the ledger's older copy back: a venue
    // an operator disabled through an old replica came back enabled. (This release's changes never reuse a
    // revision: only a write keeping none gets here.)
    if (
      stored &&
      now.raw !== null &&
      now.revision === stored.revision &&
      now.raw !== stored.valueJson &&
      outcome === undefined
    ) {
      const bumped = await this.#redis.eval(
        BUMP_IF_SAME,
        2,
        key,
        this.#revisionsKey,
        doc,
        now.raw,
        String(now.revision),
        String(Date.now()),
      );
      if (Number(bumped) > 0) now = await this.#readRedis(doc);
    }
    if (
      stored &&
      outcome === undefined &&
      now.raw !== null &&
      now.revision > stored.revision &&
      now.base !== undefined &&
      now.base < stored.revision
    ) {
      // Redis's change was made on a copy older than the ledger's newest (Redis lost or rolled back the
      // document, and the ledger could not be read before the change): recorded, it would drop what the
      // ledger holds (a venue disabled since enabled again). Undone: the ledger's copy back above it. (A
      // base above the ledger's revision is a change made on one whose ledger write has not landed, or
      // failed: recorded below, as the ledger's write rule does.)
      const undone = await this.#undo(doc, now.revision, stored);
      if (undone === undefined) return undefined; // changed meanwhile: the next restore looks again
      return {
        document: doc,
        outcome: 'conflict',
        redisRevision: now.revision,
        revision: undone,
      };
    }
    if (now.raw !== null && (!stored || now.revision > stored.revision)) {
      const meta = lastMeta(now.last);
      const w = await ledger.writeConfigDocument({
        name: doc,
        valueJson: now.raw,
        revision: now.revision,
        ...(now.base !== undefined ? { baseRevision: now.base } : {}),
        actor: meta.by ?? 'run',
        action: meta.action ?? (outcome === 'seeded' ? 'seed' : 'sync'),
        ...(meta.atMs !== undefined ? { atMs: meta.atMs } : {}),
      });
      if (w.written && outcome === undefined) outcome = 'recorded';
    }
    if (outcome === undefined) return undefined;
    return {
      document: doc,
      outcome,
      ...(before.raw !== null ? { redisRevision: before.revision } : {}),
      revision: now.revision,
    };
  }

  /**
   * {@link restore} at once (the returned `first`), then every `intervalMs` and as soon as the Redis
   * client reconnects (a restarted or failed-over server may have lost or rolled back the documents),
   * one run at a time, as the control state is kept restored. A failed run goes to `onError` and is
   * retried at the next interval. `stop` ends it and waits for a run under way.
   */
  keepRestored(o: {
    /** @defaultValue 5000 */
    intervalMs?: number;
    onRestored?: (r: ConfigRestore[]) => void;
    onError?: (err: unknown) => void;
  }): { first: Promise<ConfigRestore[]>; stop(): Promise<void> } {
    return keepRestoring(
      this.#redis,
      () =>
        this.restore().then((r) => {
          if (r.length > 0) o.onRestored?.(r);
          return r;
        }),
      o,
    );
  }

  /**
   * The key versions are made with: random, made once per deployment and kept in its Redis, so every
   * process gives the same content the same version. Read each time (one GET): a Redis reset makes a new
   * one, and a process holding the old would answer other versions than its peers.
   */
  async #versionKey(): Promise<string> {
    const key = await this.#redis.get(this.#versionKeyKey);
    if (key !== null) return key;
    await this.#redis.set(this.#versionKeyKey, randomBytes(32).toString('hex'), 'NX');
    const made = await this.#redis.get(this.#versionKeyKey);
    if (made === null) throw new XhedgeError('INTERNAL', `${this.#versionKeyKey} vanished as it was written`);
    return made;
  }

  /**
   * The stored document as Redis holds it. Absent (a Redis reset, a restart without persistence): put
   * back from the ledger's copy first ({@link restore}), never the profile's while the ledger holds one;
   * when the ledger cannot be read then, the read fails (a venue an operator disabled is not enabled
   * again by falling back to the profile).
   */
  async #read(doc: ConfigDocumentName): Promise<string | null> {
    const raw = await this.#redis.get(this.#keys[doc]);
    if (raw !== null || !this.#ledger) return raw;
    try {
      await this.restore([doc]);
    } catch (err) {
      throw new XhedgeError(
        'NOT_READY',
        `the run's ${doc} are missing in Redis and could not be restored from the ledger; nothing falls back to the profile`,
        { cause: err, details: { document: doc } },
      );
    }
    const again = await this.#redis.get(this.#keys[doc]);
    if (again === null)
      throw new XhedgeError('NOT_READY', `the run's ${doc} vanished from Redis again as they were restored`, {
        details: { document: doc },
      });
    return again;
  }

  async venues(): Promise<VenueConfig[]> {
    const raw = await this.#read('venues');
    if (raw === null) return this.#config.venues;
    return z.array(VenueConfig).parse(JSON.parse(raw));
  }

  async policy(): Promise<Policies> {
    const raw = await this.#read('policy');
    if (raw === null) return this.#config.policy;
    return PoliciesConfig.parse(JSON.parse(raw));
  }

  /**
   * One change of document `doc` (the venue list, the policy), atomic against every other (in this process
   * or another): `edit` makes the value to write (`write`) from the value read, written only if nobody wrote
   * it meanwhile (compare-and-set in one script, with the record of who made it and the document's next
   * revision), else read and edited again after a random wait. `edit` sees the version key and the record
   * of who last changed `field`, so a version check it makes (`If-Match`) holds for the value it writes.
   * Without it, two changes at once each wrote back what they had read, and one undid the other (a disable
   * lost to a concurrent update kept hedging on the venue).
   *
   * With a ledger: first {@link restore} (a Redis that lost or rolled back the document gets the ledger's
   * copy, so the change is made on top of it and its revision is above the ledger's); after the Redis write,
   * `onWritten` (the venue nudge), then the ledger write, before the change is reported done. See
   * {@link #durable} for a ledger write that fails.
   */
  async #change<V, T>(q: {
    doc: ConfigDocumentName;
    read: (raw: string | null) => V;
    field: string;
    what: string;
    action: string;
    actor: Actor;
    /** `write`: the whole value to store; `after`: the config the change is about, whose version it records. */
    edit: (
      value: V,
      ctx: { versionKey: string; last: LastChange | undefined },
    ) => { result: T; write: V; after: unknown };
    onWritten?: () => Promise<void>;
  }): Promise<T> {
    const key = this.#keys[q.doc];
    // a ledger that cannot be read does not stop a change Redis can take (a disable must go through): it
    // is then reported as not durable (#durable), unless Redis lacks the document too (below)
    let unrestored: unknown;
    if (this.#ledger) await this.restore([q.doc]).catch((err: unknown) => (unrestored = err));
    for (let attempt = 1; attempt <= CAS_ATTEMPTS; attempt++) {
      const versionKey = await this.#versionKey();
      const [raw, lastRaw] = await Promise.all([
        this.#redis.get(key),
        this.#redis.hget(this.#changesKey, q.field),
      ]);
      if (raw === null && this.#ledger) {
        // absent (lost again since the restore above, or that restore failed): never edit the profile's
        // copy over the ledger's
        if (unrestored !== undefined)
          throw new XhedgeError(
            'NOT_READY',
            `${q.what}: the run's ${q.doc} are missing in Redis and the ledger could not be read to restore them; nothing changed`,
            { cause: unrestored, details: { document: q.doc } },
          );
        await this.restore([q.doc]).catch((err: unknown) => (unrestored = err));
        continue;
      }
      const value = q.read(raw);
      const { result, write, after } = q.edit(value, { versionKey, last: lastChange(lastRaw) });
      const text = JSON.stringify(write);
      const change: LastChange = {
        version: configVersion(after, versionKey),
        by: q.actor.name,
        atMs: Date.now(),
        action: q.action,
      };
      const set = (await this.#redis.eval(
        SET_IF_UNCHANGED,
        3,
        key,
        this.#changesKey,
        this.#revisionsKey,
        raw === null ? 'absent' : 'present',
        raw ?? '',
        text,
        q.field,
        JSON.stringify(change),
        q.doc,
        String(change.atMs),
      )) as [number, number] | 0;
      if (Array.isArray(set)) {
        const [revision, base] = set.map(Number) as [number, number];
        await q.onWritten?.();
        await this.#durable(q, text, { revision, base, unverified: unrestored }, change);
        return result;
      }
      if (attempt < CAS_ATTEMPTS) await backoff(attempt);
    }
    throw new XhedgeError(
      'CONFLICT',
      `${q.what} changed ${CAS_ATTEMPTS} times while this change was made; try again`,
      { details: { target: q.what } },
    );
  }

  /**
   * Writes a change Redis took (revision `at.revision`, made on `at.base`, value `text`) to the ledger, on
   * the condition that the ledger holds the revision it was made on (or none, or an older one: see
   * `writeConfigDocument`). The value is never in an error (it may hold a keyed RPC URL).
   *
   * The ledger write fails: the change is in force (every process reads Redis) but a Redis reset before the
   * ledger has it would undo it: `AUDIT_UNRECORDED` (HTTP 500) saying so, `details.applied` true and
   * `details.durable` false; the caller must not repeat it; the next {@link restore} (every 5 s in a run)
   * or change writes it. When the ledger could not be read before the change either (`at.unverified`),
   * the error says the change may yet be undone: whether Redis held the newest copy is unknown.
   *
   * The ledger refuses it: it holds a revision above the base. Above this change's revision with Redis at
   * or above it: a change made on top of this one (two at once) landed first, fine, unless a
   * {@link restore} undid this one meanwhile. Else the change was made on a copy older than the ledger's
   * newest (Redis lost or rolled back the document before it, and the ledger could not be read first):
   * recorded, it would drop what the ledger holds, so it is undone (the ledger's copy back in Redis above
   * it, compare-and-set on its revision, and in the ledger at that revision) and the caller gets CONFLICT.
   */
  async #durable(
    q: { doc: ConfigDocumentName; what: string; action: string },
    text: string,
    at: { revision: number; base: number; unverified: unknown },
    change: LastChange,
  ): Promise<void> {
    const ledger = this.#ledger;
    if (!ledger) return;
    const { revision, base } = at;
    let w: Awaited<ReturnType<ConfigLedger['writeConfigDocument']>>;
    try {
      w = await ledger.writeConfigDocument({
        name: q.doc,
        valueJson: text,
        revision,
        baseRevision: base,
        actor: change.by,
        action: change.action,
        atMs: change.atMs,
      });
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      const unverified = at.unverified !== undefined;
      throw new XhedgeError(
        'AUDIT_UNRECORDED',
        `${q.what}: ${q.action} is in force (Redis has it, every process applies it) but is not yet durable: the ledger did not record it${typeof code === 'string' ? ` (${code})` : ''}; ${
          unverified
            ? `the ledger could not be read before the change either, so whether Redis held the newest ${q.doc} is unknown: if Redis lost or rolled them back, the run undoes this change once the ledger answers (logged as a conflict), else it writes it to the ledger. Do not repeat it now; read the ${q.doc} again once the ledger answers. A Redis reset before then would undo it too`
            : 'do not repeat it, the run writes it to the ledger within seconds once the ledger answers (or with the next change), and a Redis reset before then would undo it'
        }. Its audit entry is not recorded either`,
        {
          cause: err,
          details: {
            applied: true,
            durable: false,
            recorded: false,
            ...(unverified ? { verified: false } : {}),
            action: q.action,
            target: q.what,
            document: q.doc,
            revision,
          },
        },
      );
    }
    if (w.written || (w.current.revision === revision && w.current.valueJson === text)) return;
    const ledgerRevision = w.current.revision;
    if (ledgerRevision > revision) {
      const now = await this.#readRedis(q.doc);
      if (now.undone === revision) throw this.#undone(q, at, ledgerRevision);
      // a newer change, made on top of this one, whose ledger write arrived first
      if (now.revision >= ledgerRevision) return;
    }
    // made on a copy older than the ledger's newest: undone here (compare-and-set on this change's revision),
    // or, when Redis moved on meanwhile, by a restore (a change made on top of this one is made on the old
    // copy too)
    const undone = await this.#undo(q.doc, revision, w.current).catch(() => undefined);
    if (undone === undefined) await this.restore([q.doc]).catch(() => []);
    else if (q.doc === 'venues') await this.#redis.publish(this.venuesChannel, '*').catch(() => 0);
    throw this.#undone(q, at, undone ?? ledgerRevision);
  }

  /** The CONFLICT for a change made on an old copy and undone (the ledger's copy at `inForce`). */
  #undone(
    q: { doc: ConfigDocumentName; what: string; action: string },
    at: { revision: number; base: number },
    inForce: number,
  ): XhedgeError {
    return new XhedgeError(
      'CONFLICT',
      `${q.what}: ${q.action} was made on an old copy of the ${q.doc} (Redis lost or rolled them back, and the ledger could not be read before the change to put its copy back) and has been undone: the ledger's copy is in force (revision ${inForce}); read the ${q.doc} again and make the change again if still needed`,
      {
        details: {
          applied: false,
          target: q.what,
          document: q.doc,
          revision: at.revision,
          baseRevision: at.base,
          inForceRevision: inForce,
        },
      },
    );
  }

  /** One venue change (see {@link #change}); the processes running venues are told once it is written. */
  async #changeVenues<T>(
    id: string,
    action: string,
    actor: Actor,
    edit: (
      list: VenueConfig[],
      ctx: { versionKey: string; last: LastChange | undefined },
    ) => { result: T; after: VenueConfig },
  ): Promise<T> {
    return this.#change({
      doc: 'venues',
      read: (raw) =>
        raw === null ? structuredClone(this.#config.venues) : z.array(VenueConfig).parse(JSON.parse(raw)),
      field: `venue:${id}`,
      what: `venue ${id}: the venue list`,
      action,
      actor,
      edit: (list, ctx) => ({ ...edit(list, ctx), write: list }),
      // a nudge only, sent once Redis has it (in force even if the ledger write then fails): a process that
      // misses it still sees the change at its next poll
      onWritten: async () => {
        await this.#redis.publish(this.venuesChannel, id).catch(() => 0);
      },
    });
  }

  /** The API's venue port over this store. */
  venuesPort(): VenuesPort {
    return {
      list: () => this.venues(),
      get: async (id) => (await this.venues()).find((v) => v.id === id),
      versionOf: async (v) => configVersion(v, await this.#versionKey()),
      add: async (venue: VenueConfig, actor: Actor) => {
        checkVenueParams(venue);
        return this.#changeVenues(venue.id, 'venue.add', actor, (list) => {
          if (list.some((v) => v.id === venue.id))
            throw new XhedgeError('CONFLICT', `venue ${venue.id} exists; update it instead`, {
              details: { id: venue.id },
            });
          list.push(venue);
          return { result: venue, after: venue };
        });
      },
      update: async (id, venue, actor, cond) =>
        this.#changeVenues(id, 'venue.update', actor, (list, { versionKey, last }) => {
          const i = list.findIndex((v) => v.id === id);
          const prev = list[i];
          if (!prev) throw new XhedgeError('NOT_FOUND', `no venue ${id}`, { details: { id } });
          // the version as stored now, in the compare-and-set that writes: a change made since the
          // caller's read is refused (412), never overwritten
          checkVenueUpdate(prev, configVersion(prev, versionKey), venue, cond, last);
          // Kind and chain decide which adapter runs; changing them is a new venue, not an update.
          if (prev.kind !== venue.kind || prev.chain !== venue.chain)
            throw new XhedgeError('CONFLICT', `venue ${id}: kind and chain cannot change; add a new venue`);
          checkVenueParams(venue);
          const next: VenueConfig = applyVenueUpdate(prev, venue);
          list[i] = next;
          return { result: { before: prev, after: next }, after: next };
        }),
      disable: async (id, actor) =>
        this.#changeVenues(id, 'venue.disable', actor, (list) => {
          const v = list.find((x) => x.id === id);
          if (!v) throw new XhedgeError('NOT_FOUND', `no venue ${id}`, { details: { id } });
          v.enabled = false;
          return { result: v, after: v };
        }),
    };
  }

  /** The API's policy port over this store. */
  policyPort(): PolicyPort {
    return {
      get: () => this.policy(),
      versionOf: async (p) => configVersion(p, await this.#versionKey()),
      update: async (next, actor, ifMatch) => {
        const symbols = new Set(this.#config.underlyings.map((u) => u.symbol));
        const unknown = Object.keys(next.perUnderlying).filter((u) => !symbols.has(u));
        if (unknown.length > 0)
          throw new ValidationError(
            'policy',
            unknown.map((u) => ({
              path: `body.perUnderlying.${u}`,
              message: `underlying ${u} is not in this run`,
            })),
          );
        return this.#change({
          doc: 'policy',
          read: (raw) => (raw === null ? this.#config.policy : PoliciesConfig.parse(JSON.parse(raw))),
          field: 'policy',
          what: 'policy',
          action: 'policy.update',
          actor,
          // the whole document is replaced, but only if it is still the version the caller read
          edit: (before: Policies, { versionKey, last }) => {
            checkIfMatch('policy', configVersion(before, versionKey), ifMatch, last);
            return { result: { before, after: next }, write: next, after: next };
          },
        });
      },
    };
  }
}
