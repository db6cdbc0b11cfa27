import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Connection, Keypair, PublicKey } from '@solana/web3.js';
import { XhedgeError } from '@xhedge/core';
import bs58 from 'bs58';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ZodError } from 'zod';
import { type DriftFixture, driftFixture, SOL_PRICE_USD } from '../test/fixture.ts';
import { type DriftRpcServer, startDriftRpcServer } from '../test/rpc-server.ts';
import { encodePerpMarketAccount } from './encode.ts';
import { createDriftVenue, DRIFT_PROGRAM_ID, type DriftVenueConfigLike, redactingRpc } from './factory.ts';
import { driftPda } from './instructions.ts';
import { connectionRpc, MinContextSlotNotReachedError } from './rpc.ts';

let f: DriftFixture;
let server: DriftRpcServer;
let dir: string;
let secretB58: string;

beforeEach(async () => {
  f = await driftFixture();
  server = await startDriftRpcServer(f.rpc);
  dir = await mkdtemp(join(tmpdir(), 'drift-factory-'));
  secretB58 = bs58.encode(f.authority.secretKey);
});
afterEach(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

function entry(over: Partial<DriftVenueConfigLike> = {}, params: Record<string, unknown> = {}) {
  return {
    id: 'drift-sol',
    chain: 'solana:mainnet-beta',
    endpoints: { rpc: [server.url] },
    credentials: { signer: { env: 'DRIFT_KEY' } },
    params: {
      programId: f.programId.toBase58(),
      markets: [{ instrument: 'SOL-USD:PERP', marketIndex: 0 }],
      ...params,
    },
    ...over,
  } satisfies DriftVenueConfigLike;
}

/** What the runtime shows the operator for a factory error (venues.ts `configured`). */
function shown(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof ZodError)
      return err.issues.map((i) => `params.${i.path.join('.')}: ${i.message}`).join('; ');
    if (err instanceof XhedgeError) {
      // neither the message nor the structured details nor a cause may carry the key
      return [err.message, JSON.stringify(err.details), String(err.cause ?? '')].join(' | ');
    }
    throw err;
  }
  throw new Error('expected the factory to fail');
}

describe('createDriftVenue (a drift venue from a profile entry)', () => {
  it('reads the account over JSON-RPC HTTP with the signer from an env var, and quotes gas at the SOL market price', async () => {
    const venue = createDriftVenue(entry(), {
      secrets: { env: { DRIFT_KEY: secretB58 } },
      dataDir: dir,
      clock: f.clock,
    });
    expect(venue.userAccount.equals(driftPda.user(f.programId, f.authority.publicKey, 0))).toBe(true);
    const [pos] = await venue.fetchPositions();
    expect(pos).toMatchObject({
      venue: 'drift-sol',
      instrument: 'SOL-USD:PERP',
      sizeBase: 2.5,
      entryPriceUsd: 180,
    });
    const [bal] = await venue.fetchBalances();
    expect(bal?.amount).toBeCloseTo(1050, 9);
    const q = await venue.quoteHedge({
      instrument: 'SOL-USD:PERP',
      side: 'sell',
      sizeBase: '2.5',
      holdingHours: 1,
    });
    // one signature + 300k CU at 10,000 µlamports = 8000 lamports, at the SOL-PERP oracle price (180)
    expect(q.gasUsd).toBeCloseTo((8000 / 1e9) * SOL_PRICE_USD, 12);
    expect(server.calls.get('getAccountInfo')).toBeGreaterThan(0);
    expect(server.sendTransactionCalls).toBe(0);
    expect(server.unsupported).toEqual([]);
  });

  it('connectionRpc reads an account no older than minContextSlot, and says when the node is behind it', async () => {
    const rpc = connectionRpc(new Connection(server.url, 'confirmed'));
    const user = driftPda.user(f.programId, f.authority.publicKey, 0);
    const slot = f.rpc.slot();
    expect((await rpc.getAccountData(user, { minContextSlot: slot }))?.length).toBeGreaterThan(0);
    const behind = await rpc.getAccountData(user, { minContextSlot: slot + 5 }).catch((e: unknown) => e);
    expect(behind).toBeInstanceOf(MinContextSlotNotReachedError);
    expect((behind as MinContextSlotNotReachedError).minContextSlot).toBe(slot + 5);
  });

  it('takes a solana-keygen JSON key file and subAccountId, and keeps the order-id map under dataDir', async () => {
    const keyFile = join(dir, 'id.json');
    await writeFile(keyFile, JSON.stringify(Array.from(f.authority.secretKey)));
    const record = {
      clientOrderId: 'hedge-1',
      userOrderId: 7,
      marketIndex: 0,
      instrument: 'SOL-USD:PERP',
      side: 'sell',
      orderType: 'market',
      sizeBase: '1',
      reduceOnly: false,
      state: 'released',
      baseBeforeRaw: '0',
      createdAtMs: 1,
      updatedAtMs: 2,
      final: {
        clientOrderId: 'hedge-1',
        intentId: 'hedge-1',
        venue: 'drift-sub',
        venueOrderId: 'u7',
        instrument: 'SOL-USD:PERP',
        side: 'sell',
        orderType: 'market',
        sizeBase: '1',
        reduceOnly: false,
        status: 'filled',
        filledSizeBase: '1',
        createdAtMs: 1,
        updatedAtMs: 2,
      },
    };
    const data = join(dir, 'venues');
    const mapFile = join(data, 'drift-sub-drift-order-ids.json');
    await mkdir(data);
    await writeFile(mapFile, JSON.stringify([record]));
    const venue = createDriftVenue(
      entry({ id: 'drift-sub', credentials: { signer: { keyFile } } }, { subAccountId: 3 }),
      { dataDir: data, clock: f.clock },
    );
    expect(venue.userAccount.equals(driftPda.user(f.programId, f.authority.publicKey, 3))).toBe(true);
    expect(await venue.getOrderByClientId('hedge-1')).toMatchObject({ status: 'filled', venueOrderId: 'u7' });
    expect(await venue.getOrderByClientId('other')).toBeNull();
    expect(JSON.parse(await readFile(mapFile, 'utf8'))).toHaveLength(1);
  });

  it('close(): a venue rebuilt for new params opens beside the old one (the registry builds the new one first); the id file is released when the last of them closes; a map passed in stays open', async () => {
    const lockFile = join(dir, 'drift-sol-drift-order-ids.json.lock');
    const deps = { secrets: { env: { DRIFT_KEY: secretB58 } }, dataDir: dir, clock: f.clock };
    const old = createDriftVenue(entry(), deps);
    const rebuilt = createDriftVenue(entry({}, { orderTtlSeconds: 30 }), deps);
    expect(JSON.parse(readFileSync(lockFile, 'utf8'))).toMatchObject({ pid: process.pid });
    await old.close();
    await old.close(); // idempotent: the rebuilt one keeps the file
    await expect(old.getOrderByClientId('hedge-1')).rejects.toMatchObject({ code: 'DRIFT_ORDER_IDS_CLOSED' });
    expect(existsSync(lockFile)).toBe(true);
    expect(await rebuilt.getOrderByClientId('hedge-1')).toBeNull();
    await rebuilt.close();
    expect(existsSync(lockFile)).toBe(false);
    // a venue over a map it was given (not one it opened) leaves it open
    await f.venue.close();
    expect(f.orderIds.records()).toEqual([]);
  });

  it('defaults the program id to Drift mainnet', () => {
    const venue = createDriftVenue(entry({}, { programId: undefined }), {
      secrets: { env: { DRIFT_KEY: secretB58 } },
      dataDir: dir,
    });
    const expected = driftPda.user(new PublicKey(DRIFT_PROGRAM_ID), f.authority.publicKey, 0);
    expect(venue.userAccount.equals(expected)).toBe(true);
  });

  it('fails a quote clearly when the SOL price market has no oracle price, rather than pricing gas at NaN', async () => {
    f.svm.setAccount(driftPda.perpMarket(f.programId, 1), {
      lamports: 1_000_000_000,
      data: encodePerpMarketAccount({
        marketIndex: 1,
        name: 'SOL-DEAD',
        status: 'active',
        oracle: f.oracle,
        lastOraclePrice: 0n,
      }),
      owner: f.programId,
      executable: false,
      rentEpoch: 0,
    });
    const venue = createDriftVenue(entry({}, { solPriceMarketIndex: 1 }), {
      secrets: { env: { DRIFT_KEY: secretB58 } },
      dataDir: dir,
      clock: f.clock,
    });
    const err = await venue
      .quoteHedge({ instrument: 'SOL-USD:PERP', side: 'buy', sizeBase: '1', holdingHours: 1 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(XhedgeError);
    expect((err as XhedgeError).code).toBe('DRIFT_SOL_PRICE_UNKNOWN');
    expect((err as XhedgeError).message).toMatch(/perp market 1 \(params\.solPriceMarketIndex\)/);
  });

  it('still builds a venue whose params set takerFeeBps (the fee is read from State), warning that it is ignored', () => {
    const warnings: string[] = [];
    const v = createDriftVenue(entry({}, { takerFeeBps: 10 }), {
      secrets: { env: { DRIFT_KEY: secretB58 } },
      dataDir: dir,
      warn: (m) => warnings.push(m),
    });
    expect(v.id).toBe(entry().id);
    expect(warnings).toEqual([
      expect.stringMatching(
        /params\.takerFeeBps \(10\) is ignored: the taker fee is read from the Drift program's State account/,
      ),
    ]);
  });

  it('names each bad param', () => {
    const secrets = { secrets: { env: { DRIFT_KEY: secretB58 } }, dataDir: dir };
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ markets: [] }, /params\.markets: list at least one perp market/],
      [{ markets: undefined }, /params\.markets:/],
      [{ programId: 'not-a-key' }, /params\.programId: expected a base58 Solana address/],
      [{ subAccountId: -1 }, /params\.subAccountId:/],
      [{ markets: [{ instrument: 'sol-usd', marketIndex: 0 }] }, /params\.markets\.0\.instrument:/],
      [
        { markets: [{ instrument: 'SOL-USD:SPOT', marketIndex: 0 }] },
        /params\.markets\.0\.instrument: Drift markets here are perps/,
      ],
      [{ markets: [{ instrument: 'SOL-USD:PERP', marketIndex: 70000 }] }, /params\.markets\.0\.marketIndex:/],
      [
        {
          markets: [
            { instrument: 'SOL-USD:PERP', marketIndex: 0 },
            { instrument: 'SOL-USD:PERP', marketIndex: 1 },
          ],
        },
        /params\.markets\.1\.instrument: SOL-USD:PERP is listed twice/,
      ],
      [
        { markets: [{ instrument: 'BTC-USD:PERP', marketIndex: 0 }] },
        /params\.solPriceMarketIndex: market 0 is BTC-USD:PERP/,
      ],
      [{ computeUnitLimit: 2_000_000 }, /params\.computeUnitLimit:/],
      [{ computeUnitPriceMicroLamports: 1.5 }, /params\.computeUnitPriceMicroLamports:/],
      [{ takerFeeBps: -1 }, /params\.takerFeeBps:/],
      [{ orderTtlSeconds: 0 }, /params\.orderTtlSeconds:/],
      [{ commitment: 'recent' }, /params\.commitment:/],
      [{ rpcTimeoutMs: 0 }, /params\.rpcTimeoutMs:/],
      [{ rpcTimeoutMs: 2500.5 }, /params\.rpcTimeoutMs:/],
      [{ rpcTimeoutMs: 600_000 }, /params\.rpcTimeoutMs:/],
      [{ takerFee: 5 }, /params\.: Unrecognized key: "takerFee"/],
    ];
    for (const [params, want] of cases)
      expect(shown(() => createDriftVenue(entry({}, params), secrets))).toMatch(want);
  });

  it('names a missing or malformed signer and endpoint, and never shows the key', () => {
    const other = Keypair.generate();
    const json = JSON.stringify(Array.from(f.authority.secretKey));
    const half = bs58.encode(f.authority.secretKey.slice(0, 32));
    // the secret half of one key with the public half of another: 64 bytes, but not a keypair
    const mismatched = bs58.encode(
      Uint8Array.from([...f.authority.secretKey.slice(0, 32), ...other.publicKey.toBytes()]),
    );
    const cases: [Partial<DriftVenueConfigLike>, Record<string, string>, RegExp, string?][] = [
      [{ credentials: {} }, {}, /venue drift-sol has no credentials\.signer/],
      [{}, {}, /credentials\.signer: environment variable DRIFT_KEY is not set/],
      [
        { credentials: { signer: { keyFile: join(dir, 'missing.json') } } },
        {},
        /credentials\.signer: key file .*missing\.json cannot be read/,
      ],
      [
        {},
        { DRIFT_KEY: half },
        /credentials\.signer \(environment variable DRIFT_KEY\) decodes to 32 bytes, expected a 64-byte secret key/,
        half,
      ],
      [
        {},
        { DRIFT_KEY: `${secretB58}0OIl` },
        /credentials\.signer \(environment variable DRIFT_KEY\) is neither base58 nor/,
        secretB58,
      ],
      [{}, { DRIFT_KEY: json.slice(0, -1) }, /is not valid JSON/, json.slice(1, 40)],
      [
        {},
        { DRIFT_KEY: `[${json.slice(1, -1).split(',').slice(1).join(',')}]` },
        /is not a JSON array of 64 bytes/,
        json.slice(5, 40),
      ],
      [{}, { DRIFT_KEY: mismatched }, /is not a valid ed25519 secret key/, mismatched],
      [{ endpoints: {} }, { DRIFT_KEY: secretB58 }, /venue drift-sol has no endpoints\.rpc/],
      [
        { endpoints: { rpc: [{ env: 'DRIFT_RPC' }] } },
        { DRIFT_KEY: secretB58 },
        /endpoints\.rpc\[0\]: environment variable DRIFT_RPC is not set/,
      ],
    ];
    for (const [over, env, want, secret] of cases) {
      const text = shown(() => createDriftVenue(entry(over), { secrets: { env }, dataDir: dir }));
      expect(text).toMatch(want);
      expect(text).not.toContain(secretB58);
      if (secret) expect(text).not.toContain(secret);
    }
  });
});

describe('redactingRpc', () => {
  it('takes an RPC key out of error messages, stacks and causes, keeping the error class', async () => {
    class FetchError extends Error {}
    const url = 'https://mainnet.example-rpc.com/?api-key=0123456789abcdefSECRET';
    const inner = new FetchError(`request to ${url} failed, reason: connect ECONNREFUSED`);
    const outer = new TypeError(`failed to get info about account: ${inner.message}`, { cause: inner });
    const rpc = redactingRpc({
      getAccountData: async () => {
        throw outer;
      },
      getLatestBlockhash: async () => ({ blockhash: 'x', lastValidBlockHeight: 1 }),
      getBlockHeight: async () => 7,
      sendRawTransaction: async () => 'sig',
      getSignatureStatus: async () => null,
    });
    expect(await rpc.getBlockHeight()).toBe(7);
    const err = await rpc.getAccountData(Keypair.generate().publicKey).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TypeError);
    expect((err as Error).cause).toBeInstanceOf(FetchError);
    for (const text of [
      (err as Error).message,
      (err as Error).stack,
      ((err as Error).cause as Error).message,
    ])
      expect(text).not.toContain('SECRET');
    expect((err as Error).message).toContain('https://mainnet.example-rpc.com/?api-key=[redacted] failed');
  });

  it("keeps the error when a cause's message cannot be assigned (fetch's AbortError, a DOMException)", async () => {
    const abort = new DOMException('aborted at https://rpc.example.com/?api-key=SECRET123456', 'AbortError');
    const thrown = new Error('request timed out', { cause: abort });
    const rpc = redactingRpc({
      getAccountData: async () => null,
      getLatestBlockhash: async () => ({ blockhash: 'x', lastValidBlockHeight: 1 }),
      getBlockHeight: async () => {
        throw thrown;
      },
      sendRawTransaction: async () => 'sig',
      getSignatureStatus: async () => null,
    });
    // Before: "Cannot set property message of [object DOMException] which has only a getter" replaced it.
    const err = await rpc.getBlockHeight().catch((e: unknown) => e);
    expect(err).toBe(thrown);
    expect((err as Error).cause).toBe(abort);
    expect(abort.message).toBe('aborted at https://rpc.example.com/?api-key=[redacted]');
  });
});
