import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { actorOf, bearerToken } from './auth.ts';
import { ApiError } from './errors.ts';
import { EmptyQuery, ErrorResponse } from './schemas.ts';
import { BROWSER_ROUTES, type BrowserSessions, cookieValue, SESSION_COOKIE } from './sessions.ts';

/**
 * `POST /v1/session` (a bearer token of any role; sets the cookie) and `DELETE /v1/session` (public:
 * ends the session the cookie names, if any, on every replica sharing the session store, and clears the
 * cookie). Both answer 503 when the session store cannot be reached.
 */
export function registerSessionRoutes(
  root: FastifyInstance,
  sessions: BrowserSessions,
  opts: { secureCookies?: boolean | undefined } = {},
): void {
  const app = root.withTypeProvider<ZodTypeProvider>();
  const cookie = (req: FastifyRequest, value: string, maxAgeS: number) =>
    [
      `${SESSION_COOKIE}=${value}`,
      'Path=/',
      'HttpOnly',
      'SameSite=Strict',
      `Max-Age=${maxAgeS}`,
      ...((opts.secureCookies ?? req.protocol === 'https') ? ['Secure'] : []),
    ].join('; ');
  app.post(
    '/v1/session',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['tokens'],
        summary:
          'A read-only browser session: sets an HttpOnly cookie that EventSource on /v1/risk/stream and Bull Board at /admin/queues accept (no other route does)',
        querystring: EmptyQuery,
        response: {
          201: z.object({
            cookie: z.literal(SESSION_COOKIE),
            expiresAtMs: z.number(),
            accepts: z.array(z.string()),
          }),
          400: ErrorResponse,
          401: ErrorResponse,
          403: ErrorResponse,
          429: ErrorResponse,
          503: ErrorResponse,
        },
      },
    },
    async (req, reply) => {
      if (!bearerToken(req))
        throw new ApiError('UNAUTHORIZED', 'a browser session is opened with a bearer token, not a cookie');
      const s = await sessions.create(actorOf(req));
      reply.header('set-cookie', cookie(req, s.id, Math.floor(sessions.ttlMs / 1000)));
      return reply.code(201).send({
        cookie: SESSION_COOKIE,
        expiresAtMs: s.expiresAtMs,
        accepts: [...BROWSER_ROUTES],
      });
    },
  );
  app.delete(
    '/v1/session',
    {
      config: { access: 'public' },
      schema: {
        tags: ['tokens'],
        summary: 'Ends the browser session of the cookie sent, if any, and clears the cookie',
        querystring: EmptyQuery,
        response: { 204: z.null(), 400: ErrorResponse, 429: ErrorResponse, 503: ErrorResponse },
      },
    },
    async (req, reply) => {
      const id = cookieValue(req.headers.cookie, SESSION_COOKIE);
      // Ended in the store first: when the store cannot be reached the answer is 503 and the cookie stays,
      // so the browser can retry the logout instead of leaving a live session it no longer names.
      if (id) await sessions.end(id);
      reply.header('set-cookie', cookie(req, '', 0));
      return reply.code(204).send(null);
    },
  );
}
