import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { inspect } from 'node:util';
import { isVenueError } from '@xhedge/venue';
import type { Hex } from 'viem';
import { ANVIL_DEV_KEYS, type AnvilInstance, startAnvil } from './anvil.ts';
import { createEvmContext, type EvmContext } from './clients.ts';
import { revertTo, rpc, snapshot } from './deploy.ts';

/** A throwaway anvil chain for tests, with contexts per dev key and snapshot/revert between tests. */
export interface LocalTestChain {
  anvil: AnvilInstance;
  /** A context signing with `key` (fast 50 ms polling). */
  ctxFor(key: Hex): EvmContext;
  /** Takes the baseline that {@link LocalTestChain.fresh} returns to (call after deploying fixtures). */
  snapshot(): Promise<void>;
  /** Back to the baseline with automine on; re-snapshots, since anvil consumes a snapshot on revert. */
  fresh(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts anvil and returns a {@link LocalTestChain}; `venue` labels the contexts (and their errors). */
export async function startLocalTestChain(venue: string): Promise<LocalTestChain> {
  const anvil = await startAnvil();
  const ctxFor = (key: Hex) =>
    createEvmContext({
      venue,
      chain: 'evm:31337',
      rpcUrls: [anvil.rpcUrl],
      privateKey: key,
      pollingIntervalMs: 50,
    });
  const client = ctxFor(ANVIL_DEV_KEYS[0]).publicClient;
  let snap: Hex | undefined;
  return {
    anvil,
    ctxFor,
    async snapshot() {
      snap = await snapshot(client);
    },
    async fresh() {
      if (snap === undefined) throw new Error('LocalTestChain.fresh() before snapshot()');
      await revertTo(client, snap);
      snap = await snapshot(client);
      await rpc(client, 'evm_setAutomine', [true]);
    },
    stop: () => anvil.stop(),
  };
}

/** How {@link FaultyRpc} fails a request: HTTP 500 (echoing the path and query), no answer, or a closed connection. */
export type RpcFault = '500' | 'hang' | 'close';

/** A real HTTP JSON-RPC endpoint in front of a node, reached by a URL that holds secrets, failing on demand. */
export interface FaultyRpc {
  /** `http://<user>:<password>@127.0.0.1:<port>/v2/<path token>?apikey=<query token>`. */
  url: string;
  /** The secret parts of `url` (password, path token, query token, user), none of which may reach an error. */
  secrets: readonly string[];
  /**
   * From now on fails the requests of `methods` (every method but `eth_chainId` when omitted) as `fault`;
   * `undefined` forwards everything to the node again.
   */
  fail(fault: RpcFault | undefined, methods?: readonly string[]): void;
  close(): Promise<void>;
}

/** Starts a {@link FaultyRpc} in front of `upstream` (an anvil URL) on a free loopback port. */
export async function startFaultyRpc(upstream: string): Promise<FaultyRpc> {
  const secrets = ['operat0r-user', 'Passw0rdSecret', 'PathT0kenSecret', 'QueryT0kenSecret'] as const;
  let fault: RpcFault | undefined;
  let failing: ReadonlySet<string> | undefined;
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => {
      body += c.toString();
    });
    req.on('end', async () => {
      const method = (JSON.parse(body) as { method?: string }).method ?? '';
      const fails = fault !== undefined && (failing ? failing.has(method) : method !== 'eth_chainId');
      if (fails && fault === 'hang') return;
      if (fails && fault === 'close') {
        req.socket.destroy();
        return;
      }
      if (fails) {
        // Some providers' error pages echo the request line: the secrets come back in the body.
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`upstream failed for ${req.url}`);
        return;
      }
      try {
        const up = await fetch(upstream, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
        });
        res.writeHead(up.status, { 'content-type': 'application/json' }).end(await up.text());
      } catch {
        res.writeHead(502).end();
      }
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const [user, password, pathToken, queryToken] = secrets;
  return {
    url: `http://${user}:${password}@127.0.0.1:${port}/v2/${pathToken}?apikey=${queryToken}`,
    secrets,
    fail(f, methods) {
      fault = f;
      failing = methods ? new Set(methods) : undefined;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * Everything an error can show: `String()`, `JSON.stringify`, `util.inspect`, and for it and every error
 * or object in its cause chain the message, stack and every own property (enumerable or not).
 */
export function everythingIn(err: unknown): string {
  const json = (v: unknown) => {
    try {
      return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x)) ?? '';
    } catch {
      return '';
    }
  };
  const out = [String(err), json(err), inspect(err, { depth: 12 })];
  let cur: unknown = err;
  for (let depth = 0; cur !== null && typeof cur === 'object' && depth < 20; depth++) {
    for (const key of Object.getOwnPropertyNames(cur)) {
      const v = (cur as Record<string, unknown>)[key];
      out.push(`${key}: ${typeof v === 'string' ? v : json(v)}`);
    }
    out.push(String(cur), json(cur));
    cur = (cur as { cause?: unknown }).cause;
  }
  return out.join('\n');
}

/**
 * What is wrong with an adapter's answers while `faulty` fails as `fault`: each of `calls` must fail as
 * a retryable venue error (`VENUE_TIMEOUT` for a hang, else `VENUE_NETWORK`) naming none of the RPC
 * URL's secrets, and `health()` must say not ok without them either. Empty when all is right.
 */
export async function rpcFaultProblems(
  faulty: FaultyRpc,
  fault: RpcFault,
  calls: readonly (readonly [string, () => Promise<unknown>])[],
  health: () => Promise<{ ok: boolean }>,
): Promise<string[]> {
  const problems: string[] = [];
  const leaks = (what: string, text: string) => {
    for (const s of faulty.secrets) if (text.includes(s)) problems.push(`${what}: names a secret: ${text}`);
  };
  faulty.fail(fault);
  try {
    for (const [what, call] of calls) {
      const err = await call().then(
        () => new Error(`${what} did not fail`),
        (e: unknown) => e,
      );
      if (!isVenueError(err)) {
        problems.push(`${what}: not a venue error: ${String(err)}`);
        continue;
      }
      const code = fault === 'hang' ? 'VENUE_TIMEOUT' : 'VENUE_NETWORK';
      if (err.code !== code) problems.push(`${what}: code ${err.code}, expected ${code}`);
      if (!err.retryable) problems.push(`${what}: not retryable`);
      leaks(what, everythingIn(err));
    }
    const h = await health();
    if (h.ok) problems.push('health: ok while the RPC fails');
    leaks('health', JSON.stringify(h));
  } finally {
    faulty.fail(undefined);
  }
  return problems;
}
