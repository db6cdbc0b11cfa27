import { maskCredentials, maskCredentialsDeep, stackFrames } from '@xhedge/core';

/** Longest message kept: a driver's error can echo a whole query or request body. */
const MAX_MESSAGE_CHARS = 1000;

/**
 * An error as a log line may hold it: name, code and message, with keys masked (core's `redact`), the
 * credentials of a URL of any scheme (`postgres://user:pass@`, `redis://:pass@`), secret-named query
 * parameters (`?password=`, `?sslpassword=`, `&token=`) and secret-named `key=value` settings
 * (`password=…` in a connection string); no stack and no cause (a driver's error can carry its
 * connection settings there). Anything thrown, not only an Error.
 */
export function maskedError(err: unknown): { name: string; code?: string; message: string } {
  const e = err instanceof Error ? err : undefined;
  const raw = e ? e.message : typeof err === 'string' ? err : safeString(err);
  const message = maskCredentials(raw);
  const code = (e as { code?: unknown } | undefined)?.code;
  return {
    name: e ? e.name : typeof err,
    ...(typeof code === 'string' ? { code } : {}),
    message: message.length > MAX_MESSAGE_CHARS ? `${message.slice(0, MAX_MESSAGE_CHARS)}…` : message,
  };
}

function safeString(v: unknown): string {
  try {
    return String(v);
  } catch {
    return 'a value that cannot be shown';
  }
}

/**
 * pino's serializers of a run's logs: every `{ err }` a line carries is {@link maskedError}'s, with the
 * frames of its stack (not its first line, which repeats the raw message). pino's own kept the message as
 * thrown: a driver's `postgres://user:password@host` in "reconciler sweep failed" reached the log. An
 * `err` that is already a plain record (`{ err: maskedError(e) }`, the API's own) keeps its fields, its
 * message masked again (it would otherwise print as "[object Object]").
 */
export const LOG_SERIALIZERS = {
  err: (err: unknown): Record<string, unknown> => {
    if (!(err instanceof Error) && err !== null && typeof err === 'object') {
      const rec = err as Record<string, unknown>;
      if (typeof rec.message === 'string')
        return {
          ...(maskCredentialsDeep(rec) as Record<string, unknown>),
          message: maskedError(rec.message).message,
        };
    }
    const frames = stackFrames(err);
    return { ...maskedError(err), ...(frames ? { stack: frames } : {}) };
  },
};
