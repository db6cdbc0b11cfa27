import { Socket } from 'node:net';
import { loadConfigFile } from '@xhedge/config';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { RiskPort } from './ports.ts';
import type { RiskSnapshotView } from './schemas.ts';
import { buildApiServer, REDACT_PATHS } from './server.ts';
import { type MemoryPorts, memoryPorts } from './testing/memory-ports.ts';

const cfg = loadConfigFile(new URL('../../../configs/profiles/paper.yaml', import.meta.url).pathname);
const ADMIN = 'admin-token-for-unit-tests-0123456789';
const snap = (seq: number, extra: Record<string, unknown> = {}): RiskSnapshotView => ({
  seq,
  asOfMs: seq * 1_000,
  underlyings: {},
  ...extra,
});

/** A server over memory ports whose risk port is `risk(own)`, logging into `lines`, and a viewer token. */
async function server(
  risk: (own: MemoryPorts) => RiskPort,
  opts: { streamBacklogBytes?: number; logger?: false } = {},
): Promise<{ srv: FastifyInstance; own: MemoryPorts; viewer: string; lines: string[] }> {
  const own = memoryPorts({ venues: cfg.venues, policy: cfg.policy, adminToken: ADMIN });
  const system = { tokenId: 'x', name: 'test', role: 'admin' as const };
  const viewer = (await own.tokens.create({ name: 'sse', role: 'viewer' }, system)).token;
  const lines: string[] = [];
  const srv = await buildApiServer({
    ports: { ...own, risk: risk(own) },
    logger:
      opts.logger ??
      pino(
        { level: 'info', redact: { paths: REDACT_PATHS, censor: '[redacted]' } },
        { write: (line: string) => void lines.push(line) },
      ),
    heartbeatMs: 20,
    ...(opts.streamBacklogBytes !== undefined ? { streamBacklogBytes: opts.streamBacklogBytes } : {}),
  });
  return { srv, own, viewer, lines };
}

/** What the process let escape while `fn` ran (unhandled rejections, uncaught exceptions). */
async function escapes(fn: () => Promise<void>): Promise<unknown[]> {
  const seen: unknown[] = [];
  const on = (err: unknown) => void seen.push(err);
  process.on('unhandledRejection', on);
  process.on('uncaughtException', on);
  try {
    await fn();
    await new Promise((r) => setTimeout(r, 50));
  } finally {
    process.off('unhandledRejection', on);
    process.off('uncaughtException', on);
  }
  return seen;
}

describe('risk stream: failures after the 200 are told in the stream, never thrown', () => {
  it('a snapshot bus that refuses the subscription: one error event naming it, the stream closed, the server still serving', async () => {
    let heartbeats = 0;
    const { srv, own, viewer, lines } = await server((own) => ({
      ...own.risk,
      subscribe: () => {
        throw new Error('snapshot bus closed (redis://xh:s3cretPw99@10.9.8.7:6379/?password=hunter22)');
      },
    }));
    own.publish(snap(1));
    try {
      const address = await srv.listen({ port: 0, host: '127.0.0.1' });
      const seen = await escapes(async () => {
        const res = await fetch(`${address}/v1/risk/stream`, {
          headers: { authorization: `Bearer ${viewer}` },
          signal: AbortSignal.timeout(3_000),
        });
        expect(res.status).toBe(200);
        const text = await res.text(); // resolves only once the server ends the stream
        heartbeats = text.split(': keep-alive').length - 1;
        expect(text).toMatch(/^id: 1\nevent: snapshot\ndata: \{.*\}\n\nevent: error\ndata: (\{.*\})\n\n$/);
        const data = JSON.parse(/event: error\ndata: (.*)\n/.exec(text)?.[1] ?? '{}');
        expect(data).toEqual({
          code: 'INTERNAL',
          message: 'subscribing to new risk snapshots failed; reconnect',
        });
        expect(text).not.toMatch(/s3cretPw99|hunter22|10\.9\.8\.7|at Object/);
      });
      expect(seen).toEqual([]);
      expect(heartbeats).toBe(0);
      const log = lines.join('\n');
      expect(log).toContain('risk stream: subscribing to new risk snapshots failed; stream closed');
      expect(log).toContain('snapshot bus closed');
      expect(log).not.toMatch(/s3cretPw99|hunter22|"stack":"[^"]/);
      // the process serves on, and the failed stream holds nothing that keeps close() waiting
      const health = await fetch(`${address}/v1/health`);
      expect(health.status).toBe(200);
    } finally {
      await srv.close();
    }
  });

  it('a snapshot that cannot be serialised: nothing thrown into the bus, one error event, closed, unsubscribed', async () => {
    let live = 0;
    const { srv, own, viewer, lines } = await server((own) => ({
      ...own.risk,
      subscribe: (fn) => {
        live++;
        const off = own.risk.subscribe(fn);
        return () => {
          live--;
          off();
        };
      },
    }));
    try {
      const address = await srv.listen({ port: 0, host: '127.0.0.1' });
      const res = await fetch(`${address}/v1/risk/stream`, {
        headers: { authorization: `Bearer ${viewer}` },
        signal: AbortSignal.timeout(3_000),
      });
      expect(res.status).toBe(200);
      for (let i = 0; live === 0 && i < 200; i++) await new Promise((r) => setTimeout(r, 10));
      expect(live).toBe(1);
      const seen = await escapes(async () => {
        // the memory bus, like any plain emitter, lets a listener's throw through to the publisher
        expect(() => own.publish(snap(2, { notional: 10n }))).not.toThrow();
        const text = await res.text();
        expect(text).toMatch(
          /event: error\ndata: \{"code":"INTERNAL","message":"a risk snapshot could not be serialised; reconnect"\}\n\n$/,
        );
      });
      expect(seen).toEqual([]);
      expect(live).toBe(0);
      expect(lines.join('\n')).toContain(
        'risk stream: a risk snapshot could not be serialised; stream closed',
      );
      // later snapshots reach nobody and throw nowhere
      expect(() => own.publish(snap(3, { notional: 10n }))).not.toThrow();
    } finally {
      await srv.close();
    }
  });

  it('a bus that calls the listener after its stream ended (unsubscribe a no-op): nothing is written after the end, nothing escapes', async () => {
    let listener: ((s: RiskSnapshotView) => void) | undefined;
    const { srv, own, viewer } = await server(
      (own) => ({
        ...own.risk,
        subscribe: (fn) => {
          listener = fn;
          own.risk.subscribe(fn);
          return () => {}; // a closed bus forgets nothing
        },
      }),
      // no logger: nothing else listens for the response's errors
      { streamBacklogBytes: 256 * 1024 * 1024, logger: false },
    );
    own.publish(snap(1));
    // Runs after the stream's own preClose hook has ended the response, with the stalled client's
    // backlog still unsent: the response is ended but not yet destroyed.
    srv.addHook('preClose', async () => {
      listener?.(snap(99, { pad: 'y'.repeat(1024) }));
    });
    const sock = new Socket();
    try {
      await srv.listen({ port: 0, host: '127.0.0.1' });
      const { port } = srv.server.address() as { port: number };
      await new Promise<void>((r) => sock.connect(port, '127.0.0.1', r));
      sock.on('error', () => {});
      sock.write(`GET /v1/risk/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${viewer}\r\n\r\n`);
      for (let i = 0; listener === undefined && i < 200; i++) await new Promise((r) => setTimeout(r, 10));
      expect(listener).toBeDefined();
      sock.pause(); // the client reads nothing more: what the server writes stays buffered
      const pad = 'x'.repeat(1024 * 1024);
      for (let seq = 2; seq <= 12; seq++) own.publish(snap(seq, { pad }));
      const seen = await escapes(async () => {
        await srv.close();
      });
      expect(seen).toEqual([]);
    } finally {
      sock.destroy();
      await srv.close();
    }
  });
});
