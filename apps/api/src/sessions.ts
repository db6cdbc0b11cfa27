import { randomBytes } from 'node:crypto';
import { type Clock, systemClock } from '@xhedge/core';
import { ApiError } from './errors.ts';
import type { Actor } from './ports.ts';
import { sha256Hex } from './tokens.ts';

/** Name of the browser-session cookie. */
export const SESSION_COOKIE = 'xh_session';

/**
 * Where browser sessions live, keyed by the sha256 (hex) of the session id: the clear id is never
 * given to a store. Each session holds the id of the bearer token that opened it and expires `ttlMs`
 * after it was made. Errors (store unreachable) are thrown, never answered as "no session".
 */
export interface SessionStore {
  /** Stores a session for `ttlMs`; an existing session under the same hash is replaced. */
  create(idSha256: string, tokenId: string, ttlMs: number): Promise<void>;
  /** The token id of a live session, or undefined (unknown, ended or expired). */
  get(idSha256: string): Promise<string | undefined>;
  /** Ends a session; unknown hashes are ignored. */
  delete(idSha256: string): Promise<void>;
}

/** Sessions in this process's memory: lost on restart and unknown to other API replicas. */
export class MemorySessionStore implements SessionStore {
  readonly #byHash = new Map<string, { tokenId: string; expiresAtMs: number }>();
  readonly #clock: Clock;

  constructor(opts: { clock?: Clock } = {}) {
    this.#clock = opts.clock ?? systemClock;
  }

  async create(idSha256: string, tokenId: string, ttlMs: number): Promise<void> {
    const now = this.#clock.nowMs();
    for (const [k, s] of this.#byHash) if (s.expiresAtMs <= now) this.#byHash.delete(k);
    this.#byHash.set(idSha256, { tokenId, expiresAtMs: now + ttlMs });
  }

  async get(idSha256: string): Promise<string | undefined> {
    const s = this.#byHash.get(idSha256);
    if (!s) return undefined;
    if (s.expiresAtMs <= this.#clock.nowMs()) {
      this.#byHash.delete(idSha256);
      return undefined;
    }
    return s.tokenId;
  }

  async delete(idSha256: string): Promise<void> {
    this.#byHash.delete(idSha256);
  }

  /** Sessions held, expired ones not yet swept included. */
  get size(): number {
    return this.#byHash.size;
  }
}

/** The few commands {@link RedisSessionStore} uses; an ioredis `Redis` client has them. */
export interface SessionRedis {
  set(key: string, value: string, px: 'PX', ttlMs: number): Promise<unknown>;
  get(key: string): Promise<string | null>;
  del(key: string): Promise<number>;
}

/**
 * Sessions in Redis, shared by every API replica on that Redis and kept across API restarts: key
 * `<prefix>:session:<sha256 of the id>`, value the token id, expiry by Redis (`SET … PX ttl`). Each
 * command is given `timeoutMs`; a command that fails or takes longer throws (the API answers 503).
 */
export class RedisSessionStore implements SessionStore {
  readonly #redis: SessionRedis;
  readonly #prefix: string;
  readonly #timeoutMs: number;

  constructor(opts: { redis: SessionRedis; prefix: string; timeoutMs?: number }) {
    if (opts.prefix === '') throw new RangeError('RedisSessionStore: prefix must not be empty');
    this.#redis = opts.redis;
    this.#prefix = opts.prefix;
    this.#timeoutMs = opts.timeoutMs ?? 2_000;
    if (!Number.isInteger(this.#timeoutMs) || this.#timeoutMs <= 0)
      throw new RangeError(
        `RedisSessionStore: timeoutMs must be a positive integer of ms, got ${opts.timeoutMs}`,
      );
  }

  /** The Redis key of a session hash (exposed for operators and tests). */
  keyOf(idSha256: string): string {
    return `${this.#prefix}:session:${idSha256}`;
  }

  async create(idSha256: string, tokenId: string, ttlMs: number): Promise<void> {
    await this.#run('SET', this.#redis.set(this.keyOf(idSha256), tokenId, 'PX', ttlMs));
  }

  async get(idSha256: string): Promise<string | undefined> {
    const v = await this.#run('GET', this.#redis.get(this.keyOf(idSha256)));
    return typeof v === 'string' && v !== '' ? v : undefined;
  }

  async delete(idSha256: string): Promise<void> {
    await this.#run('DEL', this.#redis.del(this.keyOf(idSha256)));
  }

  /** The command's answer, or a throw naming the command only (never its key or value). */
  async #run<T>(command: string, p: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`Redis ${command} took longer than ${this.#timeoutMs} ms`)),
        this.#timeoutMs,
      );
    });
    try {
      return await Promise.race([p, timeout]);
    } catch (e) {
      p.catch(() => {}); // a late failure after the timeout is not an unhandled rejection
      const why = e instanceof Error ? e.message : String(e);
      throw new Error(`session store: Redis ${command} failed: ${why}`);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Session ids this API makes: `xs_` + 32 random bytes, base64url (43 characters). */
const SESSION_ID = /^xs_[A-Za-z0-9_-]{43}$/;

/**
 * Read-only browser sessions for what a browser cannot reach with a bearer header: `EventSource` on
 * the snapshot stream and Bull Board's pages. A caller with a bearer token asks for one
 * (`POST /v1/session`) and gets an HttpOnly, SameSite=Strict cookie; the cookie is accepted on those
 * GET routes only, never on the API's other routes (so it cannot be used to change anything). Only the
 * session id's sha256 is stored, in the {@link SessionStore} given: {@link RedisSessionStore} shares
 * sessions between API replicas and keeps them across restarts; the default
 * {@link MemorySessionStore} keeps them in this process only. A session lives `ttlMs` and follows its
 * token: revoked token, dead session; the role is the token's current one. When the store cannot be
 * reached, every method throws {@link SessionStoreError} (503 `NOT_READY`): no session is ever taken as
 * valid without the store's word.
 */
export class BrowserSessions {
  readonly #store: SessionStore;
  readonly #clock: Clock;
  readonly #random: (n: number) => Buffer;
  readonly ttlMs: number;

  constructor(
    opts: { ttlMs?: number; clock?: Clock; random?: (n: number) => Buffer; store?: SessionStore } = {},
  ) {
    this.ttlMs = opts.ttlMs ?? 8 * 3_600_000;
    if (!Number.isInteger(this.ttlMs) || this.ttlMs <= 0)
      throw new RangeError(`BrowserSessions: ttlMs must be a positive integer of ms, got ${opts.ttlMs}`);
    this.#clock = opts.clock ?? systemClock;
    this.#random = opts.random ?? randomBytes;
    this.#store = opts.store ?? new MemorySessionStore({ clock: this.#clock });
  }

  /** A new session for the caller; the clear id exists only in this answer (and the cookie). */
  async create(actor: Actor): Promise<{ id: string; expiresAtMs: number }> {
    const id = `xs_${this.#random(32).toString('base64url')}`;
    const expiresAtMs = this.#clock.nowMs() + this.ttlMs;
    await this.#guard('open', this.#store.create(sha256Hex(id), actor.tokenId, this.ttlMs));
    return { id, expiresAtMs };
  }

  /** The token id behind a live session, or undefined (malformed, unknown, ended or expired id). */
  async tokenOf(id: string): Promise<string | undefined> {
    if (!SESSION_ID.test(id)) return undefined;
    return this.#guard('check', this.#store.get(sha256Hex(id)));
  }

  /** Ends a session (logout) for every replica sharing the store; unknown ids are ignored. */
  async end(id: string): Promise<void> {
    if (!SESSION_ID.test(id)) return;
    await this.#guard('end', this.#store.delete(sha256Hex(id)));
  }

  async #guard<T>(what: string, p: Promise<T>): Promise<T> {
    try {
      return await p;
    } catch (e) {
      throw new SessionStoreError(what, e);
    }
  }
}

/**
 * 503 `NOT_READY`: the session store could not be reached, so no session is taken as valid. The answer
 * says only that; the store's own error (never holding the session id) is the `cause`, for the log.
 */
export class SessionStoreError extends ApiError {
  override name = 'SessionStoreError';
  constructor(what: string, cause: unknown) {
    super(
      'NOT_READY',
      `cannot ${what} the browser session: the session store is unreachable; retry later, or use the bearer header`,
      { cause },
    );
  }
}

/** The value of one cookie in a `Cookie` header, or undefined. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (typeof header !== 'string') return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim() || undefined;
  }
  return undefined;
}

/** The GET routes that accept the session cookie (read-only views a browser opens directly). */
export const BROWSER_ROUTES = ['GET /v1/risk/stream', 'GET /admin/queues'] as const;
