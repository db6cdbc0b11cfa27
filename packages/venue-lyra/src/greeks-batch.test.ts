import { createRequire } from 'node:module';
import {
  canonicalStrike,
  Dec,
  formatInstrumentId,
  MS_PER_DAY,
  msToExpiryDate,
  yearFraction,
} from '@xhedge/core';
import { ANVIL_DEV_KEYS, createEvmContext, type EvmContext, MemoryOrderStore, rpc } from '@xhedge/evm';
import { type LocalTestChain, startLocalTestChain } from '@xhedge/evm/testing';
import { bsm } from '@xhedge/pricing';
import { RevertedError, type VenueGreeks } from '@xhedge/venue';
import { type Address, custom, type Hex, http, multicall3Abi } from 'viem';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { exchangeAdapterAbi, greekCacheAbi, optionMarketAbi, PRICE_TYPE } from './abi.ts';
import { type LyraOrderRecord, LyraVenue } from './adapter.ts';
import { deployLyraFixture, type LyraFixture } from './fixture.ts';

// fetchGreeks (asked every tick by the runtime for the live options held) against the local Lyra v1
// contracts on anvil: a book of 40 options on several boards of two markets, two boards on one UTC date
// and an expired board among them, read in a constant number of round trips and answered to the last
// unit as the per-option reads answer it.

let chain: LocalTestChain;
let deployer: EvmContext;
let fx: LyraFixture;
/** Every live option id, in listing order (markets, boards by id, strikes, call then put). */
let liveIds: string[];
/** The call on the board that expired (listed until settled, no longer traded). */
let expiredCall: string;
/** The 3500 call both ETH boards of the first date give: board 1's. */
let sharedCall: string;

const NOW_MS = 1_800_000_000_000;
const clock = { nowMs: () => NOW_MS };

beforeAll(async () => {
  chain = await startLocalTestChain('lyra-greeks');
  deployer = chain.ctxFor(ANVIL_DEV_KEYS[0]);
  fx = await deployLyraFixture(deployer, {
    markets: [
      {
        underlying: 'ETH',
        spotUsd: 3500,
        baseIv: 0.7,
        expiryDays: 30,
        strikes: [2500, 2750, 3000, 3250, 3500, 3750, 4000, 4250],
        skews: [1.2, 1.15, 1.1, 1.05, 1, 0.98, 0.95, 0.93],
      },
      {
        underlying: 'BTC',
        spotUsd: 65_000,
        baseIv: 0.6,
        expiryDays: 20,
        strikes: [55_000, 60_000, 65_000, 70_000, 75_000, 80_000],
      },
    ],
    traders: [],
  });
  const chainMs = Number((await deployer.publicClient.getBlock()).timestamp) * 1000;
  const board1 = await deployer.publicClient.readContract({
    address: fx.params.markets[0]!.optionMarket,
    abi: optionMarketAbi,
    functionName: 'getOptionBoard',
    args: [1n],
  });
  const board1ExpiryMs = Number(board1.expiry) * 1000;
  // a second board on board 1's UTC date, 12 hours later: its 3500 strike gives board 1's id
  await fx.createBoard('ETH', {
    expiryMs: board1ExpiryMs + 12 * 3_600_000,
    baseIv: 1.2,
    strikes: [3500, 3700, 5000],
  });
  await fx.createBoard('ETH', {
    expiryMs: board1ExpiryMs + 14 * MS_PER_DAY,
    baseIv: 0.8,
    strikes: [3000, 3600, 4200, 4800],
    skews: [1.1, 1, 0.97, 0.94],
  });
  // a board that expires in two hours, then three hours pass: still in getLiveBoards until settled
  const soonMs = Math.floor(chainMs / 1000) * 1000 + 2 * 3_600_000;
  await fx.createBoard('ETH', { expiryMs: soonMs, baseIv: 0.9, strikes: [3300] });
  expiredCall = `ETH-USD:OPT:${msToExpiryDate(soonMs)}:3300:C`;
  await rpc(deployer.publicClient, 'evm_increaseTime', [3 * 3600]);
  await rpc(deployer.publicClient, 'evm_mine', []);
  await fx.updateGreeks();
  sharedCall = `ETH-USD:OPT:${msToExpiryDate(board1ExpiryMs)}:3500:C`;
  liveIds = (await venue().loadMarkets()).map((m) => m.instrument.id);
  await chain.snapshot();
});
afterAll(async () => {
  await chain?.stop();
});
beforeEach(() => chain.fresh());

function venue(ctx: EvmContext = deployer, extra: { multicall3?: Address } = {}) {
  return new LyraVenue(
    'lyra-greeks',
    { ...fx.params, ...extra },
    { ctx, store: new MemoryOrderStore<LyraOrderRecord>(), clock },
  );
}

/**
 * A context on the anvil chain whose every JSON-RPC request (one HTTP round trip each: no batching) is
 * noted, with an `eth_call`'s target, after `delayMs` (a slow L2 RPC).
 */
function countingContext(delayMs = 0) {
  const direct = http(chain.anvil.rpcUrl)({ retryCount: 0 }) as unknown as {
    request: (a: { method: string; params?: unknown }) => Promise<unknown>;
  };
  const requests: { method: string; to: string | undefined }[] = [];
  const ctx = createEvmContext({
    venue: 'lyra-greeks',
    chain: 'evm:31337',
    rpcUrls: [],
    privateKey: ANVIL_DEV_KEYS[1],
    transport: custom(
      {
        async request({ method, params }) {
          const to = method === 'eth_call' ? (params as [{ to?: string }])[0]?.to?.toLowerCase() : undefined;
          requests.push({ method, to });
          if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
          return direct.request({ method, params });
        },
      },
      { retryCount: 0 },
    ),
  });
  return { ctx, requests };
}

const fromE18 = (v: bigint) => Number(new Dec(v.toString()).div(1e18).toString());
const ascending = (a: bigint, b: bigint) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The answer of `fetchGreeks(instruments)` as the adapter gave it before its reads were batched: boards
 * and strikes one read at a time, then per option its strike cache, the greek cache's GWAV periods, the
 * reference spot and the latest block, then the board's iv GWAV and the strike's skew GWAV; the same
 * units and conventions (18 decimals as numbers, stdVega / √(30 / whole days ≥ 7), local BSM at GWAV iv
 * × GWAV skew for gamma, theta and rho).
 */
async function perOptionGreeks(instruments: readonly string[]): Promise<VenueGreeks[]> {
  const c = deployer.publicClient;
  const chainSec = (await c.getBlock({ blockTag: 'latest' })).timestamp;
  const listed = new Set<string>();
  const out: VenueGreeks[] = [];
  for (const m of fx.params.markets) {
    const live = await c.readContract({
      address: m.optionMarket,
      abi: optionMarketAbi,
      functionName: 'getLiveBoards',
    });
    for (const boardId of [...live].sort(ascending)) {
      const board = await c.readContract({
        address: m.optionMarket,
        abi: optionMarketAbi,
        functionName: 'getOptionBoard',
        args: [boardId],
      });
      if (board.expiry <= chainSec) continue;
      const expiryMs = Number(board.expiry) * 1000;
      for (const strikeId of board.strikeIds) {
        const s = await c.readContract({
          address: m.optionMarket,
          abi: optionMarketAbi,
          functionName: 'getStrike',
          args: [strikeId],
        });
        const strike = canonicalStrike(new Dec(s.strikePrice.toString()).div(1e18).toFixed());
        for (const isCall of [true, false]) {
          const id = formatInstrumentId({
            kind: 'option',
            base: m.underlying,
            quote: 'USD',
            expiryDate: msToExpiryDate(expiryMs),
            strike,
            optionType: isCall ? 'call' : 'put',
          });
          if (listed.has(id)) continue;
          listed.add(id);
          if (!instruments.includes(id)) continue;
          const [cache, gwav, spotE18, block] = await Promise.all([
            c.readContract({
              address: m.greekCache,
              abi: greekCacheAbi,
              functionName: 'getStrikeCache',
              args: [strikeId],
            }),
            c.readContract({
              address: m.greekCache,
              abi: greekCacheAbi,
              functionName: 'getGreekCacheParams',
            }),
            c.readContract({
              address: m.exchangeAdapter,
              abi: exchangeAdapterAbi,
              functionName: 'getSpotPriceForMarket',
              args: [m.optionMarket, PRICE_TYPE.REFERENCE],
            }),
            c.getBlock({ blockTag: 'latest' }),
          ]);
          const [ivGwav, skewGwav] = await Promise.all([
            c.readContract({
              address: m.greekCache,
              abi: greekCacheAbi,
              functionName: 'getIvGWAV',
              args: [boardId, gwav.optionValueIvGWAVPeriod],
            }),
            c.readContract({
              address: m.greekCache,
              abi: greekCacheAbi,
              functionName: 'getSkewGWAV',
              args: [strikeId, gwav.optionValueSkewGWAVPeriod],
            }),
          ]);
          const g = cache.greeks;
          const chainMs = Number(block.timestamp) * 1000;
          const days = Math.floor(Math.max((expiryMs - chainMs) / 1000, 7 * 86_400) / 86_400);
          const iv = fromE18(ivGwav) * fromE18(skewGwav) || undefined;
          const timeYears = yearFraction(chainMs, expiryMs);
          const local =
            iv !== undefined && timeYears > 0
              ? bsm({
                  type: isCall ? 'call' : 'put',
                  spot: fromE18(spotE18),
                  strike: Number(strike),
                  timeYears,
                  vol: iv,
                  rate: 0,
                })
              : undefined;
          const greeks: VenueGreeks['greeks'] = {
            delta: fromE18(isCall ? g.callDelta : g.putDelta),
            gamma: local?.gamma ?? 0,
            vegaPerVolPoint: fromE18(g.stdVega) / Math.sqrt(30 / days),
            thetaPerDay: local?.thetaPerDay ?? 0,
            rhoPer1Pct: local?.rhoPer1Pct ?? 0,
          };
          if (iv !== undefined) greeks.ivDecimal = iv;
          out.push({
            instrument: id,
            greeks,
            convention:
              'lyra-v1 OptionGreekCache: delta per unit, stdVega / √(30 / days to expiry) per vol point (GWAV iv × GWAV skew); gamma/theta/rho local BSM',
            asOfMs: NOW_MS,
          });
        }
      }
    }
  }
  return out;
}

/** Requests made by `run` on `requests` (the context's first request, its chain id check, made before). */
async function counted<T>(
  requests: { method: string }[],
  run: () => Promise<T>,
): Promise<{ answer: T; requests: number; methods: string[] }> {
  const from = requests.length;
  const answer = await run();
  const methods = requests.slice(from).map((r) => r.method);
  return { answer, requests: methods.length, methods };
}

describe('lyra: venue Greeks of a large book in a constant number of round trips', () => {
  it('lists the book the test is about: 40 live options on 4 boards of 2 markets, a shared id, an expired board', () => {
    expect(liveIds).toHaveLength(40);
    expect(liveIds).toContain(sharedCall);
    expect(liveIds).not.toContain(expiredCall);
    // ETH's first date (boards 1 and 2), ETH's later date, BTC's date
    expect(new Set(liveIds.map((id) => id.split(':').slice(0, 3).join(':'))).size).toBe(3);
  });

  it('answers 20 and 40 options as the per-option reads do, to the last unit, in at most 7 requests either way', async () => {
    const { ctx, requests } = countingContext();
    const v = venue(ctx);
    await ctx.publicClient.getChainId();
    const half = liveIds.filter((_, i) => i % 2 === 0);
    for (const book of [half, liveIds]) {
      // the runtime asks for the options held; an expired one (and one not listed at all) has no Greeks
      const asked = [...book, expiredCall, 'ETH-USD:OPT:20991231:1234:C'];
      const { answer, requests: n, methods } = await counted(requests, () => v.fetchGreeks(asked));
      expect(answer).toEqual(await perOptionGreeks(asked));
      expect(answer.map((g) => g.instrument)).toEqual(book);
      // boards and strikes: live boards ∥ latest block, boards, strikes; Greeks: caches ∥ block, GWAVs
      expect(n, methods.join(', ')).toBeLessThanOrEqual(7);
    }
    // all listed options, unasked
    expect(await v.fetchGreeks()).toEqual(await perOptionGreeks(liveIds));
  });

  it("a shared id's Greeks are its first board's (board 2's 3500 strike, at a higher vol, is not read for it)", async () => {
    const [g] = await venue().fetchGreeks([sharedCall]);
    expect(g?.greeks.ivDecimal).toBeCloseTo(0.7, 12);
    expect(await venue().fetchGreeks([sharedCall])).toEqual(await perOptionGreeks([sharedCall]));
  });

  it('marks and comparisons of the whole book take a constant number of requests too', async () => {
    const { ctx, requests } = countingContext();
    const v = venue(ctx);
    await ctx.publicClient.getChainId();
    const marks = await counted(requests, () => v.fetchMarks());
    expect(marks.answer).toHaveLength(40);
    expect(marks.requests, marks.methods.join(', ')).toBeLessThanOrEqual(7);
    const greeks = await v.fetchGreeks();
    marks.answer.forEach((m, i) => {
      expect(m.instrument).toBe(greeks[i]?.instrument);
      expect(m.ivDecimal).toBe(greeks[i]?.greeks.ivDecimal);
    });
    const cmp = await counted(requests, () => v.compareGreeks());
    expect(cmp.answer).toHaveLength(40);
    expect(cmp.answer.map((x) => x.ammDelta)).toEqual(greeks.map((g) => g.greeks.delta));
    expect(cmp.requests, cmp.methods.join(', ')).toBeLessThanOrEqual(7);
  });

  it("through the chain's deployed Multicall3 (params.multicall3) as through the deployless one", async () => {
    // viem's own copy of Multicall3's creation code (mds1/multicall), not exported from its entry points
    const { multicall3Bytecode } = createRequire(import.meta.url)(
      '../node_modules/viem/_cjs/constants/contracts.js',
    ) as { multicall3Bytecode: Hex };
    const hash = await deployer.walletClient.deployContract({
      abi: multicall3Abi,
      bytecode: multicall3Bytecode,
    });
    const deployed = (await deployer.publicClient.waitForTransactionReceipt({ hash })).contractAddress;
    if (!deployed) throw new Error('Multicall3 not deployed');
    const { ctx, requests } = countingContext();
    await ctx.publicClient.getChainId();
    const { answer, methods } = await counted(requests, () =>
      venue(ctx, { multicall3: deployed }).fetchGreeks(liveIds),
    );
    expect(answer).toEqual(await perOptionGreeks(liveIds));
    expect(methods.length).toBeLessThanOrEqual(7);
    const calls = requests.filter((r) => r.method === 'eth_call');
    expect(calls.length).toBeGreaterThan(0);
    expect(calls.every((r) => r.to === deployed.toLowerCase())).toBe(true);
  });

  it('a read that fails for some options fails the whole call naming them, never an answer without them', async () => {
    const btc = fx.params.markets[1]!;
    // the BTC greek cache now reverts every call (PUSH1 0 PUSH1 0 REVERT); the ETH market's reads pass
    await rpc(deployer.publicClient, 'anvil_setCode', [btc.greekCache, '0x60006000fd']);
    const v = venue();
    const err = await v.fetchGreeks(liveIds).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RevertedError);
    const btcIds = liveIds.filter((id) => id.startsWith('BTC-'));
    expect((err as Error).message).toContain('getGreekCacheParams of the BTC greek cache for');
    expect((err as Error).message).toContain(btcIds[0]);
    const details = (err as RevertedError).details as { failedReads: string[]; failedCount: number };
    // the market's GWAV periods and each of its 6 strike caches
    expect(details.failedCount).toBe(7);
    expect(details.failedReads.every((w) => w.includes('BTC-USD:OPT:'))).toBe(true);
    // the ETH options alone read nothing of the BTC cache
    const eth = liveIds.filter((id) => id.startsWith('ETH-'));
    expect(await v.fetchGreeks(eth)).toEqual(await perOptionGreeks(eth));
  });
});
