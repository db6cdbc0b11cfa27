import { redact } from '@xhedge/core';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ApiPorts } from './ports.ts';
import { EmptyQuery, ErrorResponse } from './schemas.ts';

/** An error for the log: name, code and message with URL credentials and keys masked, no stack. */
function safeError(err: unknown): { name: string; code?: string; message: string } {
  const e = err instanceof Error ? err : new Error(String(err));
  const code = (e as { code?: unknown }).code;
  const message = redact(e.message).replace(/([a-z][a-z0-9+.-]*:\/\/)[^/@\s]+@/gi, '$1[redacted]@');
  return { name: e.name, ...(typeof code === 'string' ? { code } : {}), message };
}

/**
 * `GET /v1/risk/stream`: server-sent events, one `snapshot` event per new risk snapshot (the newest one
 * first, on connect), and a comment line every `heartbeatMs` so proxies keep the connection open. A
 * client that stops reading (a laptop asleep, a half-open connection) is let go once more than
 * `maxBacklogBytes` wait for it, instead of the process buffering every snapshot for it; EventSource
 * reconnects and gets the newest snapshot first. If that first read fails, the stream sends one
 * `event: error` (no detail) and closes, so the client reconnects instead of waiting on a silent stream.
 */
export function registerSnapshotStream(
  root: FastifyInstance,
  ports: ApiPorts,
  heartbeatMs: number,
  maxBacklogBytes: number,
): void {
  const open = new Set<() => void>();
  root.addHook('preClose', async () => {
    for (const end of [...open]) end();
  });
  root.withTypeProvider<ZodTypeProvider>().get(
    '/v1/risk/stream',
    {
      config: { access: 'viewer', browser: true },
      schema: {
        tags: ['risk'],
        summary:
          'Server-sent events: `event: snapshot` with each new risk snapshot as JSON (bearer header, or the browser-session cookie of POST /v1/session for EventSource)',
        querystring: EmptyQuery,
        response: {
          200: z.string().describe('text/event-stream'),
          400: ErrorResponse,
          401: ErrorResponse,
          403: ErrorResponse,
          503: ErrorResponse.describe(
            'the browser-session store (Redis) is unreachable: use the bearer header',
          ),
        },
      },
    },
    async (req, reply) => {
      reply.hijack();
      const res = reply.raw;
      // The client may leave at any await (the auth hook's, the first read below): its 'close' is
      // heard from here on, and a stream whose client is gone subscribes to nothing.
      let end: (() => void) | undefined;
      let gone = res.destroyed;
      res.on('close', () => {
        gone = true;
        end?.();
      });
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      const write = (chunk: string) => {
        if (res.destroyed) return;
        res.write(chunk);
        // what the client has not taken yet (this response's buffer and its socket's)
        if (res.writableLength > maxBacklogBytes) res.destroy();
      };
      const send = (data: unknown) => {
        const seq = (data as { seq?: unknown }).seq;
        write(
          `${typeof seq === 'number' ? `id: ${seq}\n` : ''}event: snapshot\ndata: ${JSON.stringify(data)}\n\n`,
        );
      };
      let latest: unknown;
      try {
        latest = await ports.risk.latest();
      } catch (err) {
        // The 200 is already sent: say so in the stream and close it; EventSource reconnects.
        req.log.error(
          { err: safeError(err) },
          'risk stream: reading the newest snapshot failed; stream closed',
        );
        if (!gone && !res.destroyed) {
          res.write(
            `event: error\ndata: ${JSON.stringify({ code: 'INTERNAL', message: 'risk snapshot unavailable; reconnect' })}\n\n`,
          );
          res.end();
        }
        return;
      }
      if (gone) return;
      if (latest) send(latest);
      const unsubscribe = ports.risk.subscribe(send);
      const heartbeat = setInterval(() => write(': keep-alive\n\n'), heartbeatMs);
      heartbeat.unref();
      const stop = () => {
        clearInterval(heartbeat);
        unsubscribe();
        open.delete(stop);
        if (!res.writableEnded && !res.destroyed) res.end();
      };
      end = stop;
      open.add(stop);
    },
  );
}
