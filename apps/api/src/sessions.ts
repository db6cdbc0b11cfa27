import { randomBytes } from 'node:crypto';
import { type Clock, systemClock } from '@xhedge/core';
import type { Actor } from './ports.ts';
import { sha256Hex } from './tokens.ts';

/** Name of the browser-session cookie. */
export const SESSION_COOKIE = 'xh_session';

interface Session {
  tokenId: string;
  expiresAtMs: number;
}

/**
 * Read-only browser sessions for what a browser cannot reach with a bearer header: `EventSource` on
 * the snapshot stream and Bull Board's pages. A caller with a bearer token asks for one
 * (`POST /v1/session`) and gets an HttpOnly, SameSite=Strict cookie; the cookie is accepted on those
 * GET routes only, never on the API's other routes (so it cannot be used to change anything). Only the
 * session id's sha256 is kept, in this API process's memory: behind several API replicas, use sticky
 * sessions or the bearer header. A session lives `ttlMs` and follows its token: revoked token, dead
 * session; the role is the token's current one.
 */
export class BrowserSessions {
  readonly #byHash = new Map<string, Session>();
  readonly #clock: Clock;
  readonly #random: (n: number) => Buffer;
  readonly ttlMs: number;

  constructor(opts: { ttlMs?: number; clock?: Clock; random?: (n: number) => Buffer } = {}) {
    this.ttlMs = opts.ttlMs ?? 8 * 3_600_000;
    if (!Number.isInteger(this.ttlMs) || this.ttlMs <= 0)
      throw new RangeError(`BrowserSessions: ttlMs must be a positive integer of ms, got ${opts.ttlMs}`);
    this.#clock = opts.clock ?? systemClock;
    this.#random = opts.random ?? randomBytes;
  }

  /** A new session for the caller; the clear id exists only in this answer (and the cookie). */
  create(actor: Actor): { id: string; expiresAtMs: number } {
    this.#sweep();
    const id = `xs_${this.#random(32).toString('base64url')}`;
    const expiresAtMs = this.#clock.nowMs() + this.ttlMs;
    this.#byHash.set(sha256Hex(id), { tokenId: actor.tokenId, expiresAtMs });
    return { id, expiresAtMs };
  }

  /** The token id behind a live session, or undefined (unknown or expired). */
  tokenOf(id: string): string | undefined {
    const key = sha256Hex(id);
    const s = this.#byHash.get(key);
    if (!s) return undefined;
    if (s.expiresAtMs <= this.#clock.nowMs()) {
      this.#byHash.delete(key);
      return undefined;
    }
    return s.tokenId;
  }

  /** Ends a session (logout); unknown ids are ignored. */
  end(id: string): void {
    this.#byHash.delete(sha256Hex(id));
  }

  get size(): number {
    return this.#byHash.size;
  }

  #sweep(): void {
    const now = this.#clock.nowMs();
    for (const [k, s] of this.#byHash) if (s.expiresAtMs <= now) this.#byHash.delete(k);
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
