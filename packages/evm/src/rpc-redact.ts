import { XhedgeError } from '@xhedge/core';
import { redact } from './secrets.ts';

/** Parts of an RPC URL shorter than this are not scrubbed from free text (as `redact` does for secrets). */
const MIN_PART_LENGTH = 6;

/** Keeps RPC URLs (an API key in the userinfo, path or query) out of texts and errors. */
export interface RpcUrlRedactor {
  /**
   * What `redact` (and so `toVenueError`) must scrub: every form of each URL (as configured, as
   * `new URL` writes it, without its credentials as viem names it) and each part of its userinfo, path
   * and query at least 6 characters long, longest first.
   */
  readonly secrets: readonly string[];
  /** `s` with each form of a URL replaced by its origin and `/[redacted]`, and each secret part by `[redacted]`. */
  text(s: string): string;
  /**
   * Scrubs `err` in place with {@link RpcUrlRedactor.text}: every string own property (message, stack,
   * shortMessage, details, url, …), the strings of arrays (metaMessages) and of the plain objects and
   * errors it holds, through its cause chain; its class, code and revert data (hex strings) stay. The
   * project's own errors (XhedgeError) never hold a URL and are left as they are. Returns `err`.
   */
  error<E>(err: E): E;
}

interface UrlForms {
  /** Whole-URL forms, each with what replaces it. */
  whole: [string, string][];
  parts: string[];
}

function formsOf(raw: string): UrlForms {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return { whole: [], parts: raw.length >= MIN_PART_LENGTH ? [raw] : [] };
  }
  const origin = `${u.protocol}//${u.host}`;
  const secret =
    u.username !== '' || u.password !== '' || u.pathname.length > 1 || u.search !== '' || u.hash !== '';
  if (!secret) return { whole: [], parts: [] };
  const bare = new URL(u.href);
  bare.username = '';
  bare.password = '';
  const label = `${origin}/[redacted]`;
  const whole = new Set([raw, u.href, bare.href]);
  for (const w of [...whole]) if (w.endsWith('/')) whole.add(w.slice(0, -1));
  whole.delete(origin);
  const parts = new Set<string>();
  const add = (p: string) => {
    for (const v of [p, safeDecode(p)]) if (v.length >= MIN_PART_LENGTH) parts.add(v);
  };
  add(u.username);
  add(u.password);
  if (u.username || u.password) add(`${u.username}:${u.password}`);
  if (u.pathname.length > 1) {
    add(u.pathname);
    add(`${u.pathname}${u.search}`);
    for (const seg of u.pathname.split('/')) add(seg);
  }
  if (u.search) {
    add(u.search.slice(1));
    for (const pair of u.search.slice(1).split('&')) {
      add(pair);
      add(pair.slice(pair.indexOf('=') + 1));
    }
  }
  if (u.hash) add(u.hash.slice(1));
  return { whole: [...whole].map((w) => [w, label]), parts: [...parts] };
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

const byLengthDesc = (a: string, b: string) => b.length - a.length;

/** A redactor for the given RPC URLs (see {@link RpcUrlRedactor}). */
export function rpcUrlRedactor(urls: readonly string[]): RpcUrlRedactor {
  const whole: [string, string][] = [];
  const parts = new Set<string>();
  for (const url of urls) {
    const f = formsOf(url);
    whole.push(...f.whole);
    for (const p of f.parts) parts.add(p);
  }
  whole.sort((a, b) => byLengthDesc(a[0], b[0]));
  const partList = [...parts].sort(byLengthDesc);
  const text = (s: string): string => {
    let out = s;
    for (const [w, label] of whole) if (out.includes(w)) out = out.split(w).join(label);
    for (const p of partList) if (out.includes(p)) out = out.split(p).join('[redacted]');
    return redact(out);
  };
  const scrub = (v: string) => (/^0x[0-9a-fA-F]*$/.test(v) ? v : text(v));
  const error = <E>(err: E): E => {
    const seen = new Set<object>();
    const visit = (o: object, depth: number): void => {
      if (depth > 12 || seen.has(o) || o instanceof XhedgeError) return;
      seen.add(o);
      for (const key of Object.getOwnPropertyNames(o)) {
        let v: unknown;
        try {
          v = (o as Record<string, unknown>)[key];
        } catch {
          continue;
        }
        if (typeof v === 'string') {
          const s = scrub(v);
          if (s !== v) setProperty(o, key, s);
        } else if (Array.isArray(v)) {
          const a = v.map((x: unknown) => (typeof x === 'string' ? scrub(x) : x));
          if (a.some((x, i) => x !== v[i])) setProperty(o, key, a);
          for (const x of a) if (isScrubbable(x)) visit(x, depth + 1);
        } else if (isScrubbable(v)) {
          visit(v, depth + 1);
        }
      }
    };
    if (isScrubbable(err)) visit(err, 0);
    return err;
  };
  return { secrets: [...whole.map(([w]) => w), ...partList].sort(byLengthDesc), text, error };
}

/** Errors and plain data objects (a JSON-RPC error body), not class instances such as Headers or signals. */
function isScrubbable(v: unknown): v is object {
  if (typeof v !== 'object' || v === null) return false;
  if (v instanceof Error) return true;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** Sets an own property, also one that is read-only or an accessor (a stack), where the object allows it. */
function setProperty(o: object, key: string, value: unknown): void {
  try {
    (o as Record<string, unknown>)[key] = value;
  } catch {
    // read-only: defined below
  }
  if ((o as Record<string, unknown>)[key] === value) return;
  try {
    const enumerable = Object.getOwnPropertyDescriptor(o, key)?.enumerable ?? false;
    Object.defineProperty(o, key, { value, writable: true, configurable: true, enumerable });
  } catch {
    // a frozen object keeps its value
  }
}
