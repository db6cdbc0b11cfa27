import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Connection } from '@solana/web3.js';
import { NotConfirmedError, type OrderRequest, VenueError, VenueTimeoutError } from '@xhedge/venue';
import bs58 from 'bs58';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type DriftFixture, driftFixture } from '../test/fixture.ts';
import { type DriftRpcServer, startDriftRpcServer } from '../test/rpc-server.ts';
import type { DriftVenue } from './adapter.ts';
import { createDriftVenue, type DriftVenueConfigLike } from './factory.ts';
import { connectionRpc, RpcTimeoutError, timeoutFetch } from './rpc.ts';
import { CONFIRM_MAX_WAIT_MS } from './send.ts';

const ORDER: Omit<OrderRequest, 'clientOrderId'> = {
  instrument: 'SOL-USD:PERP',
  side: 'buy',
  orderType: 'market',
  sizeBase: '1.5',
  reduceOnly: false,
};

/** A provider URL with a key in its path and in its query, as hosted RPC providers give them. */
const KEYED_PATH = '/v2/SECRETpathTOKEN0123456789abcdef?api-key=SECRETqueryKEY42';

/** Settles `p`, or fails after `ms` (a request without its own time limit would hang the test). */
async function within<T>(p: Promise<T>, ms: number): Promise<{ value?: T; error?: unknown; ms: number }> {
  const t0 = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still pending after ${ms} ms: no time limit`)), ms);
  });
  try {
    const value = await Promise.race([p, guard]);
    return { value, ms: performance.now() - t0 };
  } catch (error) {
    if (error instanceof Error && error.message.startsWith('still pending')) throw error;
    return { error, ms: performance.now() - t0 };
  } finally {
    clearTimeout(timer);
  }
}

/** Every text an operator or a log could see of an error: messages, stacks, details, down the causes. */
function everyText(err: unknown): string {
  const out: string[] = [];
  for (let e = err, i = 0; e instanceof Error && i < 10; e = e.cause, i++) {
    out.push(e.message, e.stack ?? '');
    if (e instanceof VenueError) out.push(JSON.stringify(e.details), JSON.stringify(e.toJSON()));
  }
  return out.join('\n');
}

async function waitFor(cond: () => boolean, ms = 2000): Promise<boolean> {
  const until = Date.now() + ms;
  while (!cond() && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  return cond();
}

let f: DriftFixture;
let server: DriftRpcServer;
let dir: string;

beforeEach(async () => {
  f = await driftFixture();
  server = await startDriftRpcServer(f.rpc);
  dir = await mkdtemp(join(tmpdir(), 'drift-rpc-timeout-'));
});
afterEach(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

function venueOver(rpcUrl: string, params: Record<string, unknown> = {}, dataDir = dir): DriftVenue {
  const entry = {
    id: 'drift-sol',
    chain: 'solana:mainnet-beta',
    endpoints: { rpc: [rpcUrl] },
    credentials: { signer: { env: 'DRIFT_KEY' } },
    params: {
      programId: f.programId.toBase58(),
      markets: [{ instrument: 'SOL-USD:PERP', marketIndex: 0 }],
      ...params,
    },
  } satisfies DriftVenueConfigLike;
  return createDriftVenue(entry, {
    secrets: { env: { DRIFT_KEY: bs58.encode(f.authority.secretKey) } },
    dataDir,
    clock: f.clock,
    // confirmation polls move the local chain on instead of waiting
    sleep: async (ms) => {
      f.clock.advance(ms);
      f.rpc.advance(1);
    },
  });
}

describe('params.rpcTimeoutMs: every Solana RPC request has a time limit of its own', () => {
  it('a read from a node that never answers fails as VenueTimeoutError (retryable, not sent) within the limit, naming the limit and never the URL, and closes the socket', async () => {
    server.hang.add('getAccountInfo');
    const venue = venueOver(`${server.url}${KEYED_PATH}`, { rpcTimeoutMs: 200 });
    const r = await within(venue.fetchPositions(), 5000);
    expect(r.error).toBeInstanceOf(VenueTimeoutError);
    expect(r.error).toMatchObject({
      code: 'VENUE_TIMEOUT',
      retryable: true,
      outcome: 'not-sent',
      venue: 'drift-sol',
      details: { rpcMethod: 'getAccountInfo', rpcTimeoutMs: 200 },
    });
    expect((r.error as Error).message).toMatch(
      /reading User account failed: Solana RPC getAccountInfo got no answer within 200 ms \(params\.rpcTimeoutMs\)/,
    );
    expect((r.error as Error).cause).toBeInstanceOf(RpcTimeoutError);
    expect(r.ms).toBeGreaterThanOrEqual(150);
    expect(r.ms).toBeLessThan(3000);
    const text = everyText(r.error);
    expect(text).not.toContain('SECRET');
    expect(text).not.toContain('/v2/');
    expect(server.hungRequests).toBe(1);
    // The aborted request's connection is closed, not left open for ever.
    expect(await waitFor(() => server.hungSocketsOpen === 0)).toBe(true);
  });

  it('a node that answers in time works as before (short limit, and the 10 s default)', async () => {
    const quick = venueOver(server.url, { rpcTimeoutMs: 1000 });
    const [pos] = await quick.fetchPositions();
    expect(pos).toMatchObject({ instrument: 'SOL-USD:PERP', sizeBase: 2.5 });
    expect((await quick.health()).ok).toBe(true);
    // its own data dir: `quick` holds the venue's order id file (one writer per file)
    const dflt = venueOver(server.url, {}, join(dir, 'dflt'));
    expect((await dflt.fetchBalances())[0]?.amount).toBeCloseTo(1050, 9);
  });

  it('an order send that times out is outcome unknown (never not-sent), and the order is then found on chain by its client id', async () => {
    // The node takes the transaction (it lands) and never answers the send.
    server.hang.add('sendTransaction');
    f.emulate((run) => {
      f.setUser({
        perpPositions: [{ marketIndex: 0, baseAssetAmount: 2_500_000_000n, openOrders: 1 }],
        orders: [
          {
            status: 'open',
            userOrderId: run.userOrderId,
            orderId: 91,
            slot: BigInt(f.rpc.slot()),
            marketIndex: 0,
            direction: 'long',
            baseAssetAmount: 1_500_000_000n,
          },
        ],
      });
    });
    const venue = venueOver(`${server.url}${KEYED_PATH}`, { rpcTimeoutMs: 300 });
    const r = await within(venue.placeOrder({ clientOrderId: 'hedge-to-1', ...ORDER }), 8000);
    expect(f.rpc.sends).toBe(1);
    expect(r.error).toBeInstanceOf(VenueTimeoutError);
    // The worker resolves `unknown` by getOrderByClientId; `not-sent` would send it again.
    expect(r.error).toMatchObject({
      code: 'VENUE_TIMEOUT',
      outcome: 'unknown',
      retryable: true,
      clientOrderId: 'hedge-to-1',
      details: { rpcMethod: 'sendTransaction', rpcTimeoutMs: 300, signature: expect.any(String) },
    });
    expect((r.error as Error).message).toMatch(
      /sending transaction \w+ failed: Solana RPC sendTransaction got no answer within 300 ms \(params\.rpcTimeoutMs\)/,
    );
    expect(everyText(r.error)).not.toContain('SECRET');
    // The record (signature, expiry height) was kept: the lookup asks the chain and finds the order.
    expect(await venue.getOrderByClientId('hedge-to-1')).toMatchObject({
      status: 'acknowledged',
      venueOrderId: '91',
    });
    // A repeat of the send resolves it too, and sends nothing.
    expect(await venue.placeOrder({ clientOrderId: 'hedge-to-1', ...ORDER })).toMatchObject({
      status: 'acknowledged',
    });
    expect(f.rpc.sends).toBe(1);
  });

  it('a status read timing out after the send is outcome unknown too', async () => {
    f.emulate();
    const venue = venueOver(server.url, { rpcTimeoutMs: 200 });
    // The send is answered; the first confirmation poll is not.
    server.hang.add('getSignatureStatuses');
    const r = await within(venue.placeOrder({ clientOrderId: 'hedge-to-2', ...ORDER }), 8000);
    expect(f.rpc.sends).toBe(1);
    expect(r.error).toBeInstanceOf(VenueTimeoutError);
    expect(r.error).toMatchObject({
      outcome: 'unknown',
      clientOrderId: 'hedge-to-2',
      details: { rpcMethod: 'getSignatureStatuses' },
    });
    expect((r.error as Error).message).toMatch(/was sent, but reading its status failed: Solana RPC/);
    // A repeat of the send while the node still hangs: the same, and nothing is sent again.
    const repeat = await within(venue.placeOrder({ clientOrderId: 'hedge-to-2', ...ORDER }), 5000);
    expect(repeat.error).toBeInstanceOf(VenueTimeoutError);
    expect(repeat.error).toMatchObject({ outcome: 'unknown', clientOrderId: 'hedge-to-2' });
    expect((repeat.error as Error).message).toMatch(
      /went out, but reading its outcome failed: Solana RPC getSignatureStatuses got no answer within 200 ms \(params\.rpcTimeoutMs\)/,
    );
    expect(f.rpc.sends).toBe(1);
    // A lookup while the node still hangs: retryable, the order not given up.
    const again = await within(venue.getOrderByClientId('hedge-to-2'), 5000);
    expect(again.error).toBeInstanceOf(VenueTimeoutError);
    server.hang.clear();
    expect(await venue.getOrderByClientId('hedge-to-2')).not.toBeNull();
  });

  it('names a bad rpcTimeoutMs', () => {
    for (const bad of [0, -5, 1.5, 50, 120_001, '1000']) {
      expect(() => venueOver(server.url, { rpcTimeoutMs: bad })).toThrow(/rpcTimeoutMs/);
    }
  });
});

describe('timeoutFetch', () => {
  let raw: Server;
  let url: string;
  const held: ServerResponse[] = [];
  beforeEach(async () => {
    raw = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => {
        body += c.toString('utf8');
      });
      req.on('end', () => {
        if (req.url === '/stall-body') {
          // headers and half a body, then nothing
          res.writeHead(200, { 'content-type': 'application/json' });
          res.write('{"jsonrpc":"2.0","id":');
          held.push(res);
          return;
        }
        const id = (JSON.parse(body || '{}') as { id?: unknown }).id ?? null;
        res.writeHead(200, { 'content-type': 'application/json', 'x-answer': 'yes' });
        res.end(JSON.stringify({ jsonrpc: '2.0', id, result: 7 }));
      });
    });
    await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(raw.address() as AddressInfo).port}`;
  });
  afterEach(async () => {
    raw.closeAllConnections();
    await new Promise((r) => raw.close(r));
  });

  it('cuts off an answer whose body stalls after the headers', async () => {
    const fetch = timeoutFetch({ timeoutMs: 200 });
    const r = await within(
      fetch(`${url}/stall-body`, {
        method: 'POST',
        body: '{"jsonrpc":"2.0","id":1,"method":"getBlockHeight"}',
      }),
      5000,
    );
    expect(r.error).toBeInstanceOf(RpcTimeoutError);
    expect(r.error).toMatchObject({ method: 'getBlockHeight', timeoutMs: 200 });
    // through web3.js: the same error reaches the caller
    const rpc = connectionRpc(new Connection(`${url}/stall-body`, { fetch }));
    const viaConnection = await within(rpc.getBlockHeight(), 5000);
    expect(viaConnection.error).toBeInstanceOf(RpcTimeoutError);
  });

  it('hands an answer that comes in time back unchanged', async () => {
    const res = await timeoutFetch({ timeoutMs: 1000 })(url, { method: 'POST', body: '{"id":"a"}' });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-answer')).toBe('yes');
    expect(await res.json()).toEqual({ jsonrpc: '2.0', id: 'a', result: 7 });
    expect(
      await connectionRpc(new Connection(url, { fetch: timeoutFetch({ timeoutMs: 1000 }) })).getBlockHeight(),
    ).toBe(7);
  });

  it('refuses a limit that is not a positive integer', () => {
    for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY])
      expect(() => timeoutFetch({ timeoutMs: bad })).toThrow(RangeError);
  });
});

describe('confirmation is bounded in time', () => {
  it('a node whose block height has stopped is polled until CONFIRM_MAX_WAIT_MS, then outcome unknown', async () => {
    const stalled = await f.rpc.getBlockHeight();
    f.rpc.getBlockHeight = async () => stalled;
    f.rpc.dropNext(100_000);
    let polls = 0;
    const venue = f.withSleep(async (ms) => {
      f.clock.advance(ms);
      if (++polls > 5000) throw new Error('still polling a stalled node');
    });
    const err = await venue.placeOrder({ clientOrderId: 'hedge-stall-1', ...ORDER }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotConfirmedError);
    expect(err).toMatchObject({ outcome: 'unknown', retryable: true, clientOrderId: 'hedge-stall-1' });
    expect((err as Error).message).toMatch(/not confirmed within 120000 ms of sending/);
    expect(polls).toBe(CONFIRM_MAX_WAIT_MS / 400);
    // still a live record: the lookup says "sent", not "never sent"
    expect((await venue.getOrderByClientId('hedge-stall-1'))?.status).toBe('sent');
  });
});
