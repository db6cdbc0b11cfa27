import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import fastifyRateLimit from '@fastify/rate-limit';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import type { Queue } from 'bullmq';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import {
  jsonSchemaTransform,
  jsonSchemaTransformObject,
  serializerCompiler,
  validatorCompiler,
} from 'fastify-type-provider-zod';
import { bearerToken, checkAccess, installAuth } from './auth.ts';
import { ApiError, frameworkErrorHandler, installErrorHandling, loggedError } from './errors.ts';
import type { ApiPorts } from './ports.ts';
import { registerRoutes } from './routes.ts';
import { registerSessionRoutes } from './session-routes.ts';
import { BrowserSessions, SessionStoreError } from './sessions.ts';
import { registerSnapshotStream } from './stream.ts';
import { sha256Hex } from './tokens.ts';

/** Log paths that may hold secrets: censored by pino before anything is written. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  '*.token',
  '*.password',
  '*.privateKey',
  '*.apiKey',
  '*.secret',
  '*.credentials',
  'body.token',
];

/**
 * Longest path parameter the router takes, characters as sent; longer is 414 URI_TOO_LONG. Ids and
 * breaker names are at most 128 characters (EntityId, NameParam): the router's own default of 100 refused valid
 * ones. The rest leaves room for percent-encoding.
 */
export const MAX_PATH_PARAM_LENGTH = 256;

export interface ApiServerOptions {
  ports: ApiPorts;
  /** A pino logger (give it {@link REDACT_PATHS}), or false for none. @defaultValue pino at info, secrets redacted */
  logger?: FastifyBaseLogger | false;
  /** Requests per minute per token (or per address without one). @defaultValue 600 */
  rateLimitPerMinute?: number;
  /** Largest request body, bytes. @defaultValue 256 KiB */
  bodyLimitBytes?: number;
  /** SSE heartbeat period, ms. @defaultValue 15000 */
  heartbeatMs?: number;
  /**
   * Bytes an SSE client may leave unread before its stream is ended (it stopped reading: the server
   * would otherwise buffer every snapshot for it). @defaultValue 8 MiB
   */
  streamBacklogBytes?: number;
  /** Public URL base shown in the OpenAPI document's servers list. */
  publicUrl?: string;
  /**
   * Browser sessions (cookie for SSE and Bull Board). Give them a `RedisSessionStore` when several API
   * replicas serve one deployment or sessions must outlive a restart.
   * @defaultValue 8-hour sessions in this process's memory
   */
  sessions?: BrowserSessions;
  /** Mark the session cookie `Secure`. @defaultValue when the request came over https */
  secureCookies?: boolean;
}

/**
 * Builds the operator API (not yet listening): versioned routes under /v1 with zod schemas, the generated
 * OpenAPI document at /docs/json and Swagger UI at /docs, Prometheus text at /metrics, Bull Board at
 * /admin/queues, bearer-token roles, rate limiting and one JSON error shape.
 */
export async function buildApiServer(opts: ApiServerOptions): Promise<FastifyInstance> {
  const { ports } = opts;
  const logging =
    opts.logger === undefined
      ? {
          logger: {
            level: 'info',
            redact: { paths: REDACT_PATHS, censor: '[redacted]' },
            serializers: { err: loggedError },
          },
        }
      : opts.logger === false
        ? { logger: false }
        : { loggerInstance: opts.logger };
  const app = Fastify({
    ...logging,
    bodyLimit: opts.bodyLimitBytes ?? 256 * 1024,
    return503OnClosing: true,
    frameworkErrors: frameworkErrorHandler,
    routerOptions: { maxParamLength: MAX_PATH_PARAM_LENGTH },
    forceCloseConnections: true,
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  installErrorHandling(app);

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'xhedge operator API',
        description:
          'Risk snapshots, hedges, breakers and kill switch, venues, policy and P&L of a running xhedge. ' +
          'Authenticate with `Authorization: Bearer <token>`; roles viewer < operator < admin. For a browser, ' +
          '`POST /v1/session` sets a read-only cookie that the SSE stream and Bull Board accept. Every error is ' +
          '`{error: {code, message, details}}`.',
        version: '1.0.0',
      },
      servers: opts.publicUrl ? [{ url: opts.publicUrl }] : [],
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    hideUntagged: true,
    transform: (input) => {
      const out = jsonSchemaTransform(input);
      // a route whose answer carries its resource's version (config.etag): the header, documented
      const etag = input.route.config?.etag;
      const response = (out.schema as { response?: Record<string, object> }).response;
      const ok = response?.['200'] ?? response?.['201'];
      if (etag && response && ok)
        response[response['200'] ? '200' : '201'] = {
          ...ok,
          headers: { ETag: { type: 'string', description: `"<version>": ${etag}` } },
        };
      return out;
    },
    // the schemas routes name by id (Venue, Error, ...): without it their $refs pointed at nothing
    transformObject: jsonSchemaTransformObject,
  });
  await app.register(fastifySwaggerUi, { routePrefix: '/docs' });

  await app.register(fastifyRateLimit, {
    // not per route (route hooks run after the auth hook, which answers a wrong token before any count)
    global: false,
    max: opts.rateLimitPerMinute ?? 600,
    timeWindow: 60_000,
    // Per valid token (hashed, so the limiter's keys hold no secret), else per address: a made-up token
    // gets no budget of its own, so guessing is limited like calling without one.
    keyGenerator: async (req) => {
      const t = bearerToken(req);
      return t && (await ports.tokens.verify(t)) ? `t:${sha256Hex(t)}` : `ip:${req.ip}`;
    },
    errorResponseBuilder: (_req, ctx) =>
      new ApiError(
        'RATE_LIMITED',
        `rate limit of ${ctx.max} requests per minute exceeded; retry in ${ctx.after}`,
      ),
  });
  // Counted before authentication: every request, answered 401 or not.
  const limit = app.rateLimit();
  app.addHook('onRequest', async (req, reply) => limit.call(app, req, reply));

  const sessions = opts.sessions ?? new BrowserSessions();
  installAuth(app, ports.tokens, sessions);
  // The answer to the client says only "unreachable"; the store's error (never the session id) is logged.
  app.addHook('onError', async (req, _reply, err) => {
    if (err instanceof SessionStoreError)
      req.log.warn(
        { cause: err.cause instanceof Error ? err.cause.message : String(err.cause) },
        'browser-session store unreachable',
      );
  });
  registerRoutes(app, ports);
  registerSessionRoutes(app, sessions, { secureCookies: opts.secureCookies });
  registerSnapshotStream(app, ports, opts.heartbeatMs ?? 15_000, opts.streamBacklogBytes ?? 8 * 1024 * 1024);

  app.get('/metrics', { config: { access: 'viewer' }, schema: { hide: true } }, async (_req, reply) => {
    reply.header('content-type', ports.metrics.contentType);
    return ports.metrics.metrics();
  });

  if (ports.queues) {
    const queues = ports.queues;
    await app.register(async (board) => {
      // Read-only: retrying or removing jobs by hand would bypass the audit ledger and the controls.
      const adapter = new FastifyAdapter();
      const shown = new Set<Queue>();
      const { addQueue } = createBullBoard({ queues: [], serverAdapter: adapter });
      // The port's list grows when operators add venues while the run goes: the board follows it.
      const follow = () => {
        for (const q of queues) {
          if (shown.has(q)) continue;
          shown.add(q);
          addQueue(new BullMQAdapter(q, { readOnlyMode: true }));
        }
      };
      follow();
      // A browser opens it directly: the session cookie of POST /v1/session is accepted here too.
      board.addHook('onRequest', async (req) => {
        await checkAccess(ports.tokens, req, 'viewer', sessions);
        follow();
      });
      adapter.setBasePath('/admin/queues');
      await board.register(adapter.registerPlugin(), { prefix: '/admin/queues' });
    });
  }
  return app;
}
