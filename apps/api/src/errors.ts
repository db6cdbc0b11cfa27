import {
  isDatabaseUnavailable,
  isXhedgeError,
  maskCredentials,
  maskCredentialsDeep,
  stackFrames,
  XhedgeError,
  type XhedgeErrorOptions,
} from '@xhedge/core';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';

/** Stable error codes of the HTTP API and their status. Clients switch on `code`, never on the message. */
export const API_ERROR_STATUS = {
  VALIDATION: 400,
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  CONFLICT: 409,
  /** A conditional change (`If-Match`, a body's `version`) whose version is no longer the stored one. */
  PRECONDITION_FAILED: 412,
  PAYLOAD_TOO_LARGE: 413,
  URI_TOO_LONG: 414,
  UNSUPPORTED_MEDIA_TYPE: 415,
  /** A change that is taken only with the version it was made from (`If-Match`), sent without. */
  PRECONDITION_REQUIRED: 428,
  RATE_LIMITED: 429,
  NOT_READY: 503,
  INTERNAL: 500,
  /**
   * A change was applied and is in force, but the audit ledger did not record it: `details.applied` is
   * true and `details.result` the answer the route would have given. Do not repeat the change.
   */
  AUDIT_UNRECORDED: 500,
} as const;
export type ApiErrorCode = keyof typeof API_ERROR_STATUS;

/**
 * An error as the log may hold it: name, code and message, with keys (core's `redact`), URL credentials
 * of any scheme and secret-named query parameters (`?password=`, `?sslpassword=`, `?token=`) masked; no
 * stack and no cause (a driver's error can carry its connection settings there).
 */
export function safeError(err: unknown): { name: string; code?: string; message: string } {
  const e = err instanceof Error ? err : new Error(String(err));
  const code = (e as { code?: unknown }).code;
  const message = maskCredentials(e.message);
  return { name: e.name, ...(typeof code === 'string' ? { code } : {}), message };
}

/**
 * An error as the API's logs hold it: {@link safeError}'s name, code and masked message, and the frames of
 * its stack (not its first line, which repeats the raw message). Also the `err` serializer of the API's
 * default logger, so Fastify's own `{ err }` lines are masked the same way; an `err` that is already a
 * plain record (`{ err: safeError(e) }`) keeps its fields, its message masked again.
 */
export function loggedError(err: unknown): {
  type: string;
  message: string;
  stack: string;
  [key: string]: unknown;
} {
  if (!(err instanceof Error) && err !== null && typeof err === 'object') {
    const rec = err as Record<string, unknown>;
    if (typeof rec.message === 'string')
      return {
        ...(maskCredentialsDeep(rec) as Record<string, unknown>),
        type: String(rec.name ?? 'Error'),
        message: safeError(rec.message).message,
        stack: '',
      };
  }
  const safe = safeError(err);
  return { ...safe, type: safe.name, stack: stackFrames(err) };
}

/** An error the API answers with as is: `{error: {code, message, details}}` with the code's status. */
export class ApiError extends XhedgeError {
  override name = 'ApiError';
  readonly statusCode: number;
  constructor(code: ApiErrorCode, message: string, options: XhedgeErrorOptions = {}) {
    super(code, message, options);
    this.statusCode = API_ERROR_STATUS[code];
  }
}

/** The one JSON shape of every error answer. */
export interface ErrorBody {
  error: { code: string; message: string; details: Record<string, unknown> };
}

function body(code: string, message: string, details: Record<string, unknown> = {}): ErrorBody {
  return { error: { code, message, details } };
}

interface ZodIssueLike {
  instancePath: string;
  message: string;
  keyword: string;
}

/** `/legs/0/venue` in the body → `body.legs[0].venue`. */
function fieldPath(context: string | undefined, instancePath: string): string {
  let out = context ?? '';
  for (const part of instancePath.split('/').filter((p) => p !== '')) {
    out += /^\d+$/.test(part) ? `[${part}]` : out === '' ? part : `.${part}`;
  }
  return out || 'request';
}

/**
 * The raw value of the query-string parameter a field is in (`querystring.spotShocksPct[1]` is in
 * `spotShocksPct`), undefined when the request has none.
 */
function queryValue(req: FastifyRequest, field: string): unknown {
  const key = /^querystring\.([^.[]+)/.exec(field)?.[1];
  const q = req.query;
  return key !== undefined && q !== null && typeof q === 'object' && Object.hasOwn(q, key)
    ? (q as Record<string, unknown>)[key]
    : undefined;
}

/** zod's "expected string, received undefined" for a field left out says what it is: required. */
function requiredOr(message: string): string {
  const m = /^Invalid input: expected (\w+), received undefined$/.exec(message);
  return m ? `required (${m[1]})` : message;
}

/**
 * What a route wants when its body is missing: "required: a JSON object with reason". The keys come
 * from the route's zod body schema (optional ones said so); a schema without keys gets the plain word.
 */
function missingBody(req: FastifyRequest): string {
  const schema = req.routeOptions?.schema?.body as
    | { shape?: Record<string, { safeParse?: (v: unknown) => { success: boolean } }> }
    | undefined;
  const shape = schema?.shape;
  if (!shape || typeof shape !== 'object') return 'required: a JSON object';
  const keys = Object.entries(shape);
  const optional = (v: (typeof keys)[number][1]) => v.safeParse?.(undefined).success === true;
  const need = keys.filter(([, v]) => !optional(v)).map(([k]) => k);
  const may = keys.filter(([, v]) => optional(v)).map(([k]) => k);
  const parts = [need.length ? need.join(', ') : '', may.length ? `optional ${may.join(', ')}` : ''];
  const list = parts.filter(Boolean).join('; ');
  return list ? `required: a JSON object with ${list}` : 'required: a JSON object';
}

/** Fastify's own client errors (bad JSON, wrong content type, body too large) mapped to stable codes. */
function fastifyClientCode(err: FastifyError, status: number): ApiErrorCode {
  if (status === 413) return 'PAYLOAD_TOO_LARGE';
  if (status === 414) return 'URI_TOO_LONG';
  if (status === 415) return 'UNSUPPORTED_MEDIA_TYPE';
  if (status === 404) return 'NOT_FOUND';
  if (status === 405) return 'METHOD_NOT_ALLOWED';
  if (status === 429) return 'RATE_LIMITED';
  if (err.code === 'FST_ERR_VALIDATION') return 'VALIDATION';
  return 'BAD_REQUEST';
}

/** Maps domain error codes from the ports (XhedgeError) to HTTP status; unknown codes are 500. */
const DOMAIN_STATUS: Readonly<Record<string, number>> = {
  VALIDATION: 400,
  CONFIG_INVALID: 400,
  INSTRUMENT_ID_INVALID: 400,
  NOT_FOUND: 404,
  CONFLICT: 409,
  // a release that found the scope engaged again after its read, a breaker reset told a trip (ifOpenedAtMs)
  // that found a newer one: nothing changed, the newer engagement or trip is in force (named in details)
  KILL_SWITCH_RELEASE_CONFLICT: 409,
  BREAKER_RESET_CONFLICT: 409,
  // a conditional change made from a version no longer stored; one that must be conditional, sent without
  PRECONDITION_FAILED: 412,
  PRECONDITION_REQUIRED: 428,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  RATE_LIMITED: 429,
  // engaged in Redis, the ledger write failed: a 5xx, and the message says the switch IS engaged
  KILL_SWITCH_UNRECORDED: 500,
  // Redis unavailable: recorded in the ledger, put in force by the restore once Redis answers; a 503 whose
  // message says so (the generic NOT_READY "try again" lost it, and engaging again records another)
  KILL_SWITCH_PENDING: 503,
  // a change in force whose audit entry failed (a port may raise it as a plain XhedgeError too)
  AUDIT_UNRECORDED: 500,
};

/**
 * Errors the router raises before any route runs (a URL it cannot decode, a path parameter longer than
 * its limit): same JSON shape, their own 4xx. Passed to Fastify as `frameworkErrors`.
 */
export function frameworkErrorHandler(err: FastifyError, _req: FastifyRequest, reply: FastifyReply): void {
  const status =
    typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500
      ? err.statusCode
      : 400;
  reply.code(status).send(body(fastifyClientCode(err, status), err.message));
}

/**
 * One error handler for the whole server: zod/fastify validation errors become 400 VALIDATION naming
 * each field, fastify's client errors keep their 4xx with a stable code, domain errors keep their code,
 * anything else is a logged 500 INTERNAL whose message says nothing about the inside.
 */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (hasZodFastifySchemaValidationErrors(err) || (err.validation && err.validation.length > 0)) {
      const issues = (err.validation as unknown as ZodIssueLike[]).map((i) => {
        const field = fieldPath(err.validationContext, i.instancePath);
        // no body at all: say what the route wants instead of "expected object, received null"
        if (field === 'body' && /expected object, received (null|undefined)/.test(i.message))
          return { field, message: missingBody(req) };
        const message = requiredOr(i.message);
        // a query parameter left out that is coerced (a number): required, not "expected …, received NaN";
        // one that was sent keeps its own message, whichever element of it is wrong
        if (message === i.message && field.startsWith('querystring.') && queryValue(req, field) === undefined)
          return {
            field,
            message: message.startsWith('expected ') ? `required: ${message.slice(9)}` : 'required',
          };
        return { field, message };
      });
      const first = issues[0];
      const message = first ? `${first.field}: ${first.message}` : 'the request is invalid';
      return reply.code(400).send(body('VALIDATION', message, { issues }));
    }
    // an empty JSON body on a route that wants one: what it wants (else fastify's own words below)
    if (err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' && req.routeOptions?.schema?.body) {
      const message = missingBody(req);
      return reply
        .code(400)
        .send(body('VALIDATION', `body: ${message}`, { issues: [{ field: 'body', message }] }));
    }
    if (err instanceof ApiError) {
      return reply.code(err.statusCode).send(body(err.code, err.shortMessage, { ...err.details }));
    }
    if (isXhedgeError(err)) {
      const status = DOMAIN_STATUS[err.code];
      if (status !== undefined) {
        const details: Record<string, unknown> = { ...err.details };
        // Domain validation (core ValidationError) names fields `path`; the API names them `field`.
        if (Array.isArray(details.issues))
          details.issues = (details.issues as { path?: unknown; field?: unknown; message?: unknown }[]).map(
            (i) => ({
              field: i.field ?? i.path,
              message: i.message,
            }),
          );
        return reply.code(status).send(body(err.code, err.shortMessage, details));
      }
    }
    // the ledger (or Redis) down, restarting or timing out (a port's read or write): a 503 to try again, not a 500
    if (isDatabaseUnavailable(err)) {
      req.log.warn({ err: loggedError(err) }, 'backing store unavailable');
      return reply
        .code(503)
        .send(
          body(
            'NOT_READY',
            'a backing store (the ledger database or Redis) cannot be reached or did not answer: try again once GET /v1/ready shows it ready',
          ),
        );
    }
    const status = typeof err.statusCode === 'number' ? err.statusCode : 500;
    if (status >= 400 && status < 500) {
      return reply.code(status).send(body(fastifyClientCode(err, status), err.message));
    }
    // the message as safeError has it (a driver's error carries its URL, password and all) and the
    // frames of the stack without its first line, which repeats the message
    req.log.error({ err: loggedError(err) }, 'unhandled error');
    return reply.code(500).send(body('INTERNAL', 'internal error; see the server log'));
  });
  app.setNotFoundHandler((req, reply) => {
    reply.code(404).send(body('NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`));
  });
}
