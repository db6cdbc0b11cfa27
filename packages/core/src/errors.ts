/**
 * One error base for the whole project. Every concrete error is a named subclass with a stable
 * string `code` that callers (the API, the CLI, the queue) can switch on; `shortMessage` is one
 * human sentence, `details` is structured context that must never contain secrets.
 */
export type ErrorCode =
  | 'VALIDATION'
  | 'CONFIG_INVALID'
  | 'INSTRUMENT_ID_INVALID'
  | 'NUMERIC'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'RATE_LIMITED'
  | 'INTERNAL'
  | (string & {});

export interface XhedgeErrorOptions {
  /** Structured context (ids, paths, values). Never secrets. */
  details?: Record<string, unknown>;
  /** Extra human lines shown under the message (hints, what to try). */
  metaMessages?: readonly string[];
  cause?: unknown;
}

export class XhedgeError extends Error {
  override name = 'XhedgeError';
  readonly code: ErrorCode;
  readonly shortMessage: string;
  readonly details: Readonly<Record<string, unknown>>;
  readonly metaMessages: readonly string[];

  constructor(code: ErrorCode, shortMessage: string, options: XhedgeErrorOptions = {}) {
    const lines = [shortMessage, ...(options.metaMessages ?? [])];
    super(lines.join('\n'), options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.shortMessage = shortMessage;
    this.details = options.details ?? {};
    this.metaMessages = options.metaMessages ?? [];
  }

  /** Walks the cause chain; returns the first error for which `fn` is true, or the deepest cause. */
  walk(fn?: (err: unknown) => boolean): unknown {
    let current: unknown = this;
    const seen = new Set<unknown>();
    while (current !== undefined && current !== null && !seen.has(current)) {
      if (fn?.(current)) return current;
      seen.add(current);
      const next: unknown = (current as { cause?: unknown }).cause;
      if (next === undefined || next === null) return fn ? undefined : current;
      current = next;
    }
    return fn ? undefined : current;
  }

  toJSON(): { code: ErrorCode; message: string; details: Readonly<Record<string, unknown>> } {
    return { code: this.code, message: this.shortMessage, details: this.details };
  }
}

export class ValidationError extends XhedgeError {
  override name = 'ValidationError';
  /** Each problem with the dotted path of the field it concerns (`venues[1].chain`). */
  readonly issues: readonly { path: string; message: string }[];
  constructor(
    what: string,
    issues: readonly { path: string; message: string }[],
    options: XhedgeErrorOptions = {},
  ) {
    const first = issues[0];
    const summary = first
      ? `${what}: ${first.path ? `${first.path}: ` : ''}${first.message}${issues.length > 1 ? ` (+${issues.length - 1} more)` : ''}`
      : `${what} is invalid`;
    super('VALIDATION', summary, {
      ...options,
      details: { ...options.details, issues },
      metaMessages: [
        ...issues.slice(1).map((i) => `${i.path ? `${i.path}: ` : ''}${i.message}`),
        ...(options.metaMessages ?? []),
      ],
    });
    this.issues = issues;
  }
}

export class InstrumentIdError extends XhedgeError {
  override name = 'InstrumentIdError';
  constructor(id: string, reason: string) {
    super('INSTRUMENT_ID_INVALID', `invalid instrument id "${id}": ${reason}`, {
      details: { id, reason },
      metaMessages: [
        'expected BASE-QUOTE:PERP, BASE-QUOTE:SPOT, BASE-QUOTE:FUT:YYYYMMDD or BASE-QUOTE:OPT:YYYYMMDD:STRIKE:C|P',
      ],
    });
  }
}

/** A numeric result that is not a finite number: raised instead of ever returning NaN. */
export class NumericError extends XhedgeError {
  override name = 'NumericError';
  constructor(what: string, value: number, details: Record<string, unknown> = {}) {
    super('NUMERIC', `${what} is not a finite number (${value})`, { details: { what, value, ...details } });
  }
}

/** Throws NumericError unless `value` is finite; returns it otherwise. */
export function assertFinite(what: string, value: number, details?: Record<string, unknown>): number {
  if (!Number.isFinite(value)) throw new NumericError(what, value, details);
  return value;
}

export function isXhedgeError(err: unknown): err is XhedgeError {
  return err instanceof XhedgeError;
}

/**
 * A list of names for an error message: the first `max`, then how many more (`a, b and 3 more`), or
 * `(none)`. The messages that refuse an unknown name list the known ones with it.
 */
export function namesForMessage(names: readonly string[], max = 12): string {
  if (names.length === 0) return '(none)';
  const shown = names.slice(0, max).join(', ');
  return names.length > max ? `${shown} and ${names.length - max} more` : shown;
}

/** Node socket errors of a database server that cannot be reached or dropped the connection. */
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ENOTFOUND',
]);

/** Messages of the Postgres driver for a connection that ended under it (they carry no code). */
const DROPPED = /^Connection terminated|^Client has encountered a connection error|^Connection ended/;

/**
 * ioredis's own errors for a command that met no connection (they carry no code): the connection closed
 * for good, an offline queue that is off, and a command timeout (`commandTimeout`). Whole messages, not
 * words in them: an error that merely mentions "closed" is no outage.
 */
const REDIS_NO_CONNECTION = new Set([
  'Connection is closed.',
  "Stream isn't writeable and enableOfflineQueue options is false",
  'Command timed out',
]);

/**
 * Redis server replies (ioredis `ReplyError`) of a server that cannot take the command now but may
 * later: a read-only replica (a failover under way), still loading its data, a replica whose master is
 * down, out of memory under noeviction. `ERR`, `NOSCRIPT`, `WRONGTYPE` and the like are wrong commands.
 */
const REDIS_UNAVAILABLE_REPLY = /^(READONLY|LOADING|MASTERDOWN|OOM) /;

/** Whether `e` (one link of a cause chain) is ioredis saying Redis could not be reached or take the command. */
function isRedisUnavailable(e: object): boolean {
  if (!(e instanceof Error)) return false;
  switch (e.name) {
    // the client gave up retrying the command while disconnected (maxRetriesPerRequest)
    case 'MaxRetriesPerRequestError':
      return true;
    // redis-errors' AbortError, for a command in flight when the connection closed (the DOM's
    // AbortError, an aborted fetch, has this name too: hence the message)
    case 'AbortError':
      return e.message.startsWith('Command aborted due to connection close');
    case 'ReplyError':
      return REDIS_UNAVAILABLE_REPLY.test(e.message);
    case 'Error':
      return REDIS_NO_CONNECTION.has(e.message);
    default:
      return false;
  }
}

/**
 * Whether `err` says a database (the ledger's) could not be reached or answered (it is down, restarting,
 * refusing connections, or dropped the connection), not that a statement was wrong: such an operation
 * may succeed unchanged once the database is back. True for the codes `DB_TIMEOUT` (the store's timeouts, except a statement the server
 * cancelled at its `statement_timeout`: a held lock or a slow plan, which running it again does not change)
 * and `DB_CONNECTION_LOST`, Node's socket errors (ECONNREFUSED, ECONNRESET, ...; also inside an
 * `AggregateError`, as a host with several addresses fails), Postgres SQLSTATE class 08 (connection
 * exception), 57P01–57P03 (the server shutting down or starting), 53300 (too many connections), and the
 * driver's "Connection terminated" messages; the error's `cause` chain is followed. Also Redis (ioredis)
 * that cannot be reached or cannot take the command now: `MaxRetriesPerRequestError`, "Connection is
 * closed.", "Stream isn't writeable ...", "Command timed out", an `AbortError` of a command the closing
 * connection aborted, and the replies `READONLY` (a replica: failover), `LOADING`, `MASTERDOWN` and `OOM`;
 * not `ERR`, `NOSCRIPT`, `WRONGTYPE` or a script's error (`isLedgerUnavailable` of the store is this
 * function, so an order run failing on such a Redis error is handed back like one failing on the ledger).
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && typeof e === 'object' && depth < 8; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') {
      // a statement the server cancelled at its statement_timeout (a held lock, a slow plan) is no outage:
      // running it again changes nothing
      if (code === 'DB_TIMEOUT') return (e as { what?: unknown }).what !== 'statement';
      if (code === 'DB_CONNECTION_LOST' || UNREACHABLE_CODES.has(code)) return true;
      if (/^08[0-9A-Z]{3}$/.test(code) || /^57P0[123]$/.test(code) || code === '53300') return true;
    }
    if (e instanceof AggregateError && e.errors.some((x) => isDatabaseUnavailable(x))) return true;
    if (e instanceof Error && DROPPED.test(e.message)) return true;
    if (isRedisUnavailable(e)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}
