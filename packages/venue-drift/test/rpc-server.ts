import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PublicKey } from '@solana/web3.js';
import type { LiteSvmRpc } from './litesvm-rpc.ts';

/**
 * The Solana JSON-RPC methods `connectionRpc` (src/rpc.ts) calls through a web3.js `Connection`, served
 * over HTTP from an in-process litesvm, so a venue built from a profile URL (`endpoints.rpc`) reads the
 * same injected accounts the adapter tests use. Responses have the shapes web3.js 1.98 checks with its
 * superstruct schemas (`jsonRpcResultAndContext`, `AccountInfoResult`, `SignatureStatusResponse`).
 * Any other method is answered with JSON-RPC error -32601 and recorded in `unsupported`. Methods in
 * `hang` are carried out and never answered (a hung node, for request time limits).
 */
export interface DriftRpcServer {
  url: string;
  /** Calls per method, in arrival order of first use. */
  calls: Map<string, number>;
  /** `sendTransaction` calls received (a dry run must make none). */
  readonly sendTransactionCalls: number;
  /** Methods asked for that this server does not implement. */
  unsupported: string[];
  /**
   * Methods whose requests are carried out (a `sendTransaction` lands) but never answered: the socket
   * stays open until the client gives up (a hung node). Mutable.
   */
  hang: Set<string>;
  /** Requests held unanswered by {@link hang} so far. */
  readonly hungRequests: number;
  /** Connections of hung requests still open (the client has not given up on them). */
  readonly hungSocketsOpen: number;
  close(): Promise<void>;
}

type Params = unknown[];

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Starts the server on a free port of 127.0.0.1. */
export async function startDriftRpcServer(
  rpc: LiteSvmRpc,
  opts: { hang?: Iterable<string> } = {},
): Promise<DriftRpcServer> {
  const hang = new Set(opts.hang ?? []);
  let hungRequests = 0;
  let hungSocketsOpen = 0;
  const calls = new Map<string, number>();
  const unsupported: string[] = [];
  const context = () => ({ slot: rpc.slot() });

  const methods: Record<string, (params: Params) => Promise<unknown>> = {
    async getAccountInfo([address, config]) {
      const encoding = (config as { encoding?: string } | undefined)?.encoding;
      if (encoding !== 'base64')
        throw new RpcError(-32602, `only base64 encoding is served, not ${encoding}`);
      const minContextSlot = (config as { minContextSlot?: number } | undefined)?.minContextSlot;
      if (minContextSlot !== undefined && rpc.slot() < minContextSlot)
        throw new RpcError(-32016, 'Minimum context slot has not been reached');
      const acc = rpc.svm.getAccount(new PublicKey(String(address)));
      const value = acc
        ? {
            data: [Buffer.from(acc.data).toString('base64'), 'base64'],
            executable: acc.executable,
            lamports: Number(acc.lamports),
            owner: acc.owner.toBase58(),
            rentEpoch: Number(acc.rentEpoch),
            space: acc.data.length,
          }
        : null;
      return { context: context(), value };
    },
    async getLatestBlockhash() {
      return { context: context(), value: await rpc.getLatestBlockhash() };
    },
    async getBlockHeight() {
      return rpc.getBlockHeight();
    },
    async sendTransaction([encoded, config]) {
      const encoding = (config as { encoding?: string } | undefined)?.encoding;
      if (encoding !== 'base64') throw new RpcError(-32602, 'only base64-encoded transactions are served');
      return rpc.sendRawTransaction(Buffer.from(String(encoded), 'base64'));
    },
    async getSignatureStatuses([signatures]) {
      const list = Array.isArray(signatures) ? signatures.map(String) : [];
      const value = await Promise.all(
        list.map(async (s) => {
          const st = await rpc.getSignatureStatus(s);
          return st
            ? {
                slot: st.slot,
                confirmations: st.confirmationStatus === 'finalized' ? null : 0,
                err: st.err ?? null,
                status: st.err ? { Err: st.err } : { Ok: null },
                confirmationStatus: st.confirmationStatus ?? undefined,
              }
            : null;
        }),
      );
      return { context: context(), value };
    },
  };

  const answer = async (body: unknown): Promise<unknown> => {
    const { id, method, params } = (body ?? {}) as { id?: unknown; method?: unknown; params?: unknown };
    const name = String(method);
    calls.set(name, (calls.get(name) ?? 0) + 1);
    const fn = methods[name];
    if (!fn) {
      unsupported.push(name);
      return { jsonrpc: '2.0', id, error: { code: -32601, message: `Method not found: ${name}` } };
    }
    try {
      return { jsonrpc: '2.0', id, result: await fn(Array.isArray(params) ? params : []) };
    } catch (err) {
      const code = err instanceof RpcError ? err.code : -32603;
      return {
        jsonrpc: '2.0',
        id,
        error: { code, message: err instanceof Error ? err.message : String(err) },
      };
    }
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      let out: unknown;
      try {
        const body: unknown = JSON.parse(await readBody(req));
        out = Array.isArray(body) ? await Promise.all(body.map(answer)) : await answer(body);
        const asked = (Array.isArray(body) ? body : [body]).map((b) =>
          String((b as { method?: unknown })?.method),
        );
        if (asked.some((m) => hang.has(m))) {
          hungRequests += 1;
          if (!req.socket.destroyed) {
            hungSocketsOpen += 1;
            req.socket.once('close', () => {
              hungSocketsOpen -= 1;
            });
          }
          return; // done, never answered
        }
      } catch {
        out = { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } };
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(out));
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    get sendTransactionCalls() {
      return calls.get('sendTransaction') ?? 0;
    },
    unsupported,
    hang,
    get hungRequests() {
      return hungRequests;
    },
    get hungSocketsOpen() {
      return hungSocketsOpen;
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}

class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}
