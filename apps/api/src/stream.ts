import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { safeError } from './errors.ts';
import type { ApiPorts } from './ports.ts';
import { EmptyQuery, ErrorResponse } from './schemas.ts';

/**
 * `GET /v1/risk/stream`: server-sent events, one `snapshot` event per new risk snapshot (the newest one
 * first, on connect), and a comment line every `heartbeatMs` so proxies keep the connection open. A
 * client that stops reading (a laptop asleep, a half-open connection) is let go once more than
 * `maxBacklogBytes` wait for it, instead of the process buffering every snapshot for it; EventSource
 * reconnects and gets the newest snapshot first. If that first read, the subscription (a snapshot bus
 * closed or refusing) or a snapshot's serialisation fails, the stream sends one `event: error` naming
 * the step that failed (`{code: 'INTERNAL', message}`: no error text, no stack) and closes, so the client
 * reconnects instead of waiting on a silent stream; the error is logged with keys and URL credentials
 * masked. Nothing escapes to the bus that calls the stream's listener, nor to the process.
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
      // Nothing this handler runs may throw out of it or out of a callback it hands over (the bus's
      // listener, the heartbeat, the response's events): the 200 is already sent, so every failure ends
      // here, as one `event: error` and the stream closed (EventSource reconnects), logged as safeError.
      let unsubscribe: (() => void) | undefined;
      let heartbeat: NodeJS.Timeout | undefined;
      let stopped = false;
      // The client may leave at any await (the auth hook's, the first read below): its 'close' is
      // heard from here on, and a stream whose client is gone subscribes to nothing.
      let gone = res.destroyed;
      const unsubscribeNow = () => {
        const off = unsubscribe;
        unsubscribe = undefined;
        try {
          off?.();
        } catch (err) {
          req.log.warn({ err: safeError(err) }, 'risk stream: unsubscribing from snapshots failed');
        }
      };
      /** Releases what the stream holds (heartbeat, subscription) and ends the response. */
      const stop = () => {
        stopped = true;
        open.delete(stop);
        if (heartbeat) clearInterval(heartbeat);
        unsubscribeNow();
        if (!res.writableEnded && !res.destroyed) res.end();
      };
      res.on('close', () => {
        gone = true;
        stop();
      });
      // A write the socket refuses (reset, or after the end) is emitted here; unheard, it would be an
      // uncaught exception.
      res.on('error', (err) => {
        req.log.warn({ err: safeError(err) }, 'risk stream: the response failed; stream closed');
        stop();
      });
      const writable = () => !stopped && !gone && !res.writableEnded && !res.destroyed;
      const write = (chunk: string) => {
        if (!writable()) return;
        res.write(chunk);
        // what the client has not taken yet (this response's buffer and its socket's)
        if (res.writableLength > maxBacklogBytes) res.destroy();
      };
      /** `what` failed: logged without secrets or stack, told to the client in one error event, closed. */
      const fail = (what: string, err: unknown) => {
        req.log.error({ err: safeError(err) }, `risk stream: ${what}; stream closed`);
        try {
          write(
            `event: error\ndata: ${JSON.stringify({ code: 'INTERNAL', message: `${what}; reconnect` })}\n\n`,
          );
        } catch {
          // the connection is gone: nothing more to tell it
        }
        stop();
      };
      const send = (data: unknown) => {
        if (!writable()) return;
        let chunk: string;
        try {
          const seq = (data as { seq?: unknown } | null)?.seq;
          chunk = `${typeof seq === 'number' ? `id: ${seq}\n` : ''}event: snapshot\ndata: ${JSON.stringify(data)}\n\n`;
        } catch (err) {
          fail('a risk snapshot could not be serialised', err);
          return;
        }
        try {
          write(chunk);
        } catch (err) {
          req.log.warn({ err: safeError(err) }, 'risk stream: writing to the client failed; stream closed');
          stop();
        }
      };
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      let latest: unknown;
      try {
        latest = await ports.risk.latest();
      } catch (err) {
        fail('reading the newest risk snapshot failed', err);
        return;
      }
      if (!writable()) return stop();
      if (latest) send(latest);
      if (!writable()) return stop();
      open.add(stop);
      try {
        unsubscribe = ports.risk.subscribe(send);
      } catch (err) {
        fail('subscribing to new risk snapshots failed', err);
        return;
      }
      // a bus that calls the listener at once may have had it fail, or the client left meanwhile
      if (stopped) return unsubscribeNow();
      heartbeat = setInterval(() => {
        try {
          write(': keep-alive\n\n');
        } catch (err) {
          req.log.warn({ err: safeError(err) }, 'risk stream: writing to the client failed; stream closed');
          stop();
        }
      }, heartbeatMs);
      heartbeat.unref();
    },
  );
}
