import {
  canonicalStrike,
  Dec,
  formatInstrumentId,
  instrumentMeta,
  MS_PER_DAY,
  msToExpiryDate,
  type Position,
} from '@xhedge/core';
import {
  ANVIL_DEV_KEYS,
  createEvmContext,
  type EvmContext,
  MemoryOrderStore,
  newOrderRecord,
  rpc,
  venueErrorMapper,
} from '@xhedge/evm';
import { type LocalTestChain, startLocalTestChain } from '@xhedge/evm/testing';
import { RevertedError, type SettlementPrice } from '@xhedge/venue';
import { type Address, custom, type Hex, http } from 'viem';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { OPTION_TYPE, optionMarketAbi, optionTokenAbi } from './abi.ts';
import { baseCollateralSymbol, type LyraOrderRecord, LyraVenue } from './adapter.ts';
import { ReadBatch, readBatch } from './batch.ts';
import { deployLyraFixture, type LyraFixture, lyraLiteFixtureAbi } from './fixture.ts';

// fetchPositions and fetchBalances (read every tick by the runtime) and fetchSettlementPrices against the
// local Lyra v1 contracts on anvil: books of 20 and 40 positions on seven boards of two markets (two live
// boards on one UTC date, two expired boards on another, one of them settled, an expired board not
// settled), read in a constant number of requests and answered as the per-position reads answer them.

let chain: LocalTestChain;
let deployer: EvmContext;
let fx: LyraFixture;
/** Holders of the first 20 and of all 40 positions. */
const HOLDER_20 = ANVIL_DEV_KEYS[1];
const HOLDER_40 = ANVIL_DEV_KEYS[2];
/** ETH boards 4 and 5: expired on one UTC date (4 settled in the snapshot, 5 not); each lists a 3400 strike. */
const SETTLED_BOARD = 4n;
const LATER_BOARD = 5n;
/** Every board of each market, in listing order, with its strikes (ids and prices). */
let boardsOf: Map<
  string,
  { boardId: bigint; expiryMs: number; strikes: { id: bigint; priceE18: bigint }[] }[]
>;

const NOW_MS = 1_800_000_000_000;
const clock = { nowMs: () => NOW_MS };
const E18 = 10n ** 18n;

const market = (underlying: string) => {
  const m = fx.params.markets.find((x) => x.underlying === underlying);
  if (!m) throw new Error(`no ${underlying} market`);
  return m;
};

async function readBoards(): Promise<typeof boardsOf> {
  const c = deployer.publicClient;
  const out: typeof boardsOf = new Map();
  for (const m of fx.params.markets) {
    const boards = [];
    for (let id = 1n; ; id++) {
      const b = await c.readContract({
        address: m.optionMarket,
        abi: optionMarketAbi,
        functionName: 'getOptionBoard',
        args: [id],
      });
      if (b.id !== id) break;
      const strikes = [];
      for (const s of b.strikeIds) {
        const st = await c.readContract({
          address: m.optionMarket,
          abi: optionMarketAbi,
          functionName: 'getStrike',
          args: [s],
        });
        strikes.push({ id: s, priceE18: st.strikePrice });
      }
      boards.push({ boardId: id, expiryMs: Number(b.expiry) * 1000, strikes });
    }
    out.set(m.underlying, boards);
  }
  return out;
}

/** The i-th of the 40 positions: strikes of every board in turn, each option type, odd amounts to the wei. */
function positionSpec(i: number, strikes: { underlying: string; strikeId: bigint }[]) {
  const s = strikes[(i * 7) % strikes.length] as { underlying: string; strikeId: bigint };
  const types = [
    OPTION_TYPE.LONG_CALL,
    OPTION_TYPE.SHORT_PUT_QUOTE,
    OPTION_TYPE.LONG_PUT,
    OPTION_TYPE.SHORT_CALL_QUOTE,
    OPTION_TYPE.SHORT_CALL_BASE,
  ];
  const optionType = types[i % types.length] as number;
  const amount = (BigInt((i % 7) + 1) * E18) / 4n + BigInt(i) * 1_000_003n;
  const collateral =
    optionType === OPTION_TYPE.SHORT_CALL_BASE
      ? amount + 7n
      : optionType === OPTION_TYPE.SHORT_CALL_QUOTE || optionType === OPTION_TYPE.SHORT_PUT_QUOTE
        ? 1_000n * E18 + BigInt(i) * 999_999_999n
        : 0n;
  return { underlying: s.underlying, strikeId: s.strikeId, optionType, amount, collateral };
}

beforeAll(async () => {
  chain = await startLocalTestChain('lyra-positions');
  deployer = chain.ctxFor(ANVIL_DEV_KEYS[0]);
  fx = await deployLyraFixture(deployer, {
    markets: [
      {
        underlying: 'ETH',
        spotUsd: 3500,
        baseIv: 0.7,
        expiryDays: 30,
        strikes: [2500, 2750, 3000, 3250, 3500, 3750, 4000, 4250],
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
  const c = deployer.publicClient;
  const chainMs = Number((await c.getBlock()).timestamp) * 1000;
  const board1 = await c.readContract({
    address: market('ETH').optionMarket,
    abi: optionMarketAbi,
    functionName: 'getOptionBoard',
    args: [1n],
  });
  const board1ExpiryMs = Number(board1.expiry) * 1000;
  // board 2: on board 1's UTC date, 12 hours later; its 3500 strike gives board 1's id
  await fx.createBoard('ETH', {
    expiryMs: board1ExpiryMs + 12 * 3_600_000,
    baseIv: 1.2,
    strikes: [3500, 3700, 5000],
  });
  // board 3: two weeks later
  await fx.createBoard('ETH', {
    expiryMs: board1ExpiryMs + 14 * MS_PER_DAY,
    baseIv: 0.8,
    strikes: [3000, 3600, 4200, 4800],
  });
  // boards 4 and 5 expire at 02:00 and 02:30 UTC of the next day (one date; each lists a 3400), BTC's
  // board 2 at 02:00 as well
  const soonMs = Math.ceil((chainMs + 3_600_000) / MS_PER_DAY) * MS_PER_DAY + 2 * 3_600_000;
  expect(await fx.createBoard('ETH', { expiryMs: soonMs, baseIv: 0.9, strikes: [3300, 3400] })).toBe(
    SETTLED_BOARD,
  );
  expect(
    await fx.createBoard('ETH', { expiryMs: soonMs + 1_800_000, baseIv: 0.9, strikes: [3400, 3500] }),
  ).toBe(LATER_BOARD);
  await fx.createBoard('BTC', { expiryMs: soonMs, baseIv: 0.7, strikes: [60_000] });
  boardsOf = await readBoards();
  const strikes = [...boardsOf].flatMap(([underlying, boards]) =>
    boards.flatMap((b) => b.strikes.map((s) => ({ underlying, strikeId: s.id }))),
  );
  expect(strikes).toHaveLength(26);
  // the positions, written on the OptionToken as other front ends of the accounts opened them
  for (const [key, n] of [
    [HOLDER_20, 20],
    [HOLDER_40, 40],
  ] as const) {
    const account = chain.ctxFor(key).account.address;
    for (let i = 0; i < n; i++) {
      const p = positionSpec(i, strikes);
      const hash = await deployer.walletClient.writeContract({
        address: market(p.underlying).optionPositions,
        abi: lyraLiteFixtureAbi,
        functionName: 'liteWritePosition',
        args: [account, { positionId: 0n, ...p, state: 1 }],
      });
      expect((await c.waitForTransactionReceipt({ hash })).status).toBe('success');
    }
  }
  // past boards 4 and 5 (and BTC's 2); board 4 is settled at 3380
  await rpc(c, 'evm_setNextBlockTimestamp', [(soonMs + 1_800_000) / 1000 + 3600]);
  await rpc(c, 'evm_mine', []);
  await fx.setSpot('ETH', 3380);
  await fx.settleBoard('ETH', SETTLED_BOARD);
  await chain.snapshot();
});
afterAll(async () => {
  await chain?.stop();
});
beforeEach(() => chain.fresh());

function venue(ctx: EvmContext, store = new MemoryOrderStore<LyraOrderRecord>()) {
  return new LyraVenue('lyra-positions', fx.params, { ctx, store, clock });
}

/**
 * A context of the holder on the anvil chain whose every JSON-RPC request (one HTTP round trip each: no
 * batching) is noted, after `delayMs` (a slow L2 RPC).
 */
function countingContext(key: Hex, delayMs = 0) {
  const direct = http(chain.anvil.rpcUrl)({ retryCount: 0 }) as unknown as {
    request: (a: { method: string; params?: unknown }) => Promise<unknown>;
  };
  const requests: string[] = [];
  const ctx = createEvmContext({
    venue: 'lyra-positions',
    chain: 'evm:31337',
    rpcUrls: [],
    privateKey: key,
    transport: custom(
      {
        async request({ method, params }) {
          requests.push(method);
          if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
          return direct.request({ method, params });
        },
      },
      { retryCount: 0 },
    ),
  });
  return { ctx, requests };
}

/** Requests made by `run` on `requests`. */
async function counted<T>(
  requests: string[],
  run: () => Promise<T>,
): Promise<{ answer: T; requests: string[] }> {
  const from = requests.length;
  const answer = await run();
  return { answer, requests: requests.slice(from) };
}

const fromE18 = (v: bigint) => Number(new Dec(v.toString()).div(1e18).toString());
const isCallType = (t: number) =>
  t === OPTION_TYPE.LONG_CALL || t === OPTION_TYPE.SHORT_CALL_QUOTE || t === OPTION_TYPE.SHORT_CALL_BASE;
const optionId = (underlying: string, expiryMs: number, strikePriceE18: bigint, isCall: boolean) =>
  formatInstrumentId({
    kind: 'option',
    base: underlying,
    quote: 'USD',
    expiryDate: msToExpiryDate(expiryMs),
    strike: canonicalStrike(new Dec(strikePriceE18.toString()).div(1e18).toFixed()),
    optionType: isCall ? 'call' : 'put',
  });

/** The account's ACTIVE positions with an amount, each with its strike and board read one at a time. */
async function perPositionHeld(account: Address) {
  const c = deployer.publicClient;
  const out = [];
  for (const m of fx.params.markets) {
    const ps = await c.readContract({
      address: m.optionPositions,
      abi: optionTokenAbi,
      functionName: 'getOwnerPositions',
      args: [account],
    });
    for (const p of ps) {
      if (p.state !== 1 || p.amount === 0n) continue;
      const s = await c.readContract({
        address: m.optionMarket,
        abi: optionMarketAbi,
        functionName: 'getStrike',
        args: [p.strikeId],
      });
      const b = await c.readContract({
        address: m.optionMarket,
        abi: optionMarketAbi,
        functionName: 'getOptionBoard',
        args: [s.boardId],
      });
      const expiryMs = Number(b.expiry) * 1000;
      out.push({
        ...p,
        underlying: m.underlying,
        boardId: s.boardId,
        instrument: optionId(m.underlying, expiryMs, s.strikePrice, isCallType(p.optionType)),
      });
    }
  }
  return out;
}

/**
 * `fetchPositions` as the adapter answered it reading one strike and one board at a time: net size per
 * option and the quote-collateralised shorts' collateral as `marginUsd` (base collateral left out).
 */
async function perPositionBook(account: Address): Promise<Position[]> {
  const by = new Map<string, { net: bigint; margin: bigint }>();
  for (const h of await perPositionHeld(account)) {
    const agg = by.get(h.instrument) ?? { net: 0n, margin: 0n };
    if (h.optionType === OPTION_TYPE.LONG_CALL || h.optionType === OPTION_TYPE.LONG_PUT) agg.net += h.amount;
    else {
      agg.net -= h.amount;
      if (h.optionType !== OPTION_TYPE.SHORT_CALL_BASE) agg.margin += h.collateral;
    }
    by.set(h.instrument, agg);
  }
  const out: Position[] = [];
  for (const [instrument, { net, margin }] of by) {
    if (net === 0n && margin === 0n) continue;
    const p: Position = {
      venue: 'lyra-positions',
      chain: 'evm:31337',
      instrument,
      sizeBase: fromE18(net),
      settlementCurrency: 'USDC',
      asOfMs: NOW_MS,
    };
    if (margin > 0n) p.marginUsd = fromE18(margin);
    out.push(p);
  }
  return out;
}

/**
 * Settlement prices as the per-board reads give them: every board of each market (markets in params
 * order, boards by id), its `boardToPriceAtExpiry`; an id is its date's first listed board's (in this
 * book the first listed of the boards an id's held positions are on, and of the boards expiring at the
 * id's instant, too), answered when that board is settled, fixed at the board's expiry or, for a board
 * expiring before it, at the id's 08:00 UTC (what the runtime checks the price against).
 */
async function perBoardSettlement(asked: readonly string[]): Promise<SettlementPrice[]> {
  const c = deployer.publicClient;
  const decided = new Set<string>();
  const out: SettlementPrice[] = [];
  for (const m of fx.params.markets) {
    for (const b of boardsOf.get(m.underlying) ?? []) {
      const price = await c.readContract({
        address: m.optionMarket,
        abi: optionMarketAbi,
        functionName: 'boardToPriceAtExpiry',
        args: [b.boardId],
      });
      for (const s of b.strikes) {
        for (const isCall of [true, false]) {
          const id = optionId(m.underlying, b.expiryMs, s.priceE18, isCall);
          if (decided.has(id)) continue;
          decided.add(id);
          if (price === 0n || !asked.includes(id)) continue;
          out.push({
            instrument: id,
            priceUsd: new Dec(price.toString()).div(1e18).toFixed(),
            fixedAtMs: Math.max(b.expiryMs, instrumentMeta(id).expiryMs ?? Number.NaN),
          });
        }
      }
    }
  }
  return out;
}

/** Every id of every board (a later board's shared ones too), with ids that are not Lyra's. */
function everyId(): string[] {
  const ids = new Set<string>();
  for (const [u, boards] of boardsOf)
    for (const b of boards)
      for (const s of b.strikes)
        for (const isCall of [true, false]) ids.add(optionId(u, b.expiryMs, s.priceE18, isCall));
  return [...ids, 'ETH-USD:PERP', 'not an id'];
}

const boardIds = (underlying: string, boardId: bigint) => {
  const b = boardsOf.get(underlying)?.find((x) => x.boardId === boardId);
  if (!b) throw new Error(`no board ${boardId}`);
  return b.strikes.flatMap((s) =>
    [true, false].map((isCall) => optionId(underlying, b.expiryMs, s.priceE18, isCall)),
  );
};

describe('lyra: positions, balances and settlement prices of a large book in a constant number of requests', () => {
  it('positions of 20 and of 40 are those of the per-position reads, exact, in at most 3 requests', async () => {
    for (const key of [HOLDER_20, HOLDER_40]) {
      const { ctx, requests } = countingContext(key);
      await ctx.publicClient.getChainId();
      const v = venue(ctx);
      const { answer, requests: made } = await counted(requests, () => v.fetchPositions());
      expect(answer).toEqual(await perPositionBook(ctx.account.address));
      // what the book is: positions on the settled board, on the later board of its date, on both live
      // boards of one date (the shared 3500 call counted under board 1's id), base-collateralised shorts
      const held = await perPositionHeld(ctx.account.address);
      expect(held).toHaveLength(key === HOLDER_20 ? 20 : 40);
      const eth = (b: bigint) => held.some((h) => h.underlying === 'ETH' && h.boardId === b);
      expect([1n, 2n, 3n, SETTLED_BOARD, LATER_BOARD].every(eth)).toBe(true);
      expect(held.some((h) => h.underlying === 'BTC')).toBe(true);
      expect(held.some((h) => h.optionType === OPTION_TYPE.SHORT_CALL_BASE)).toBe(true);
      // the account's positions in every market, their strikes, their boards
      expect(made.length, made.join(', ')).toBeLessThanOrEqual(3);
    }
  });

  it("balances lock the base shorts' collateral exactly, in at most 3 requests", async () => {
    const { ctx, requests } = countingContext(HOLDER_40);
    await ctx.publicClient.getChainId();
    const { answer, requests: made } = await counted(requests, () => venue(ctx).fetchBalances());
    const locked = new Map<string, bigint>();
    for (const h of await perPositionHeld(ctx.account.address))
      if (h.optionType === OPTION_TYPE.SHORT_CALL_BASE) {
        const asset = baseCollateralSymbol(h.underlying);
        locked.set(asset, (locked.get(asset) ?? 0n) + h.collateral);
      }
    expect(locked.size).toBe(2);
    expect(answer.filter((b) => b.asset !== 'USDC' && b.asset !== 'ETH')).toEqual(
      [...locked].map(([asset, c]) => ({
        venue: 'lyra-positions',
        chain: 'evm:31337',
        asset,
        amount: fromE18(c),
        available: 0,
        asOfMs: NOW_MS,
      })),
    );
    // the wallet's token and gas balances, the positions
    expect(made.length, made.join(', ')).toBeLessThanOrEqual(3);
  });

  it('settlement prices are those of the per-board reads (a shared id from its first board), in at most 5 requests', async () => {
    const asked = everyId();
    const settled = boardIds('ETH', SETTLED_BOARD);
    for (const key of [HOLDER_20, HOLDER_40]) {
      const { ctx, requests } = countingContext(key);
      const v = venue(ctx);
      await v.loadMarkets(); // the process saw the live boards listed
      const { answer, requests: made } = await counted(requests, () => v.fetchSettlementPrices(asked));
      expect(answer).toEqual(await perBoardSettlement(asked));
      // board 4's ids at its price, the 3400 board 5 also lists among them; nothing of board 5's own
      expect(answer.map((p) => p.instrument)).toEqual(settled);
      expect(answer.every((p) => p.priceUsd === '3380')).toBe(true);
      // positions (3), every board's price with the boards not read yet, their strikes
      expect(made.length, made.join(', ')).toBeLessThanOrEqual(5);
    }
    // board 5 settled too: its own 3500 is answered at its price, the shared 3400 still at board 4's
    await fx.setSpot('ETH', 3455.5);
    await fx.settleBoard('ETH', LATER_BOARD);
    const { ctx, requests } = countingContext(HOLDER_40);
    const v = venue(ctx);
    await v.loadMarkets();
    const { answer, requests: made } = await counted(requests, () => v.fetchSettlementPrices(asked));
    expect(answer).toEqual(await perBoardSettlement(asked));
    expect(answer.filter((p) => p.priceUsd === '3455.5').map((p) => p.instrument)).toEqual(
      boardIds('ETH', LATER_BOARD).filter((id) => !settled.includes(id)),
    );
    expect(made.length, made.join(', ')).toBeLessThanOrEqual(5);
  });

  it("a restarted adapter finds a board settled and paid out while it was down from its orders' positions, in at most 8 requests", async () => {
    const holder = chain.ctxFor(HOLDER_40).account.address;
    const held = await perPositionHeld(holder);
    // board 5 is settled too, and every position on boards 4 and 5 paid out: none left on their date
    await fx.settleBoard('ETH', LATER_BOARD);
    const onDate = held.filter(
      (h) => h.underlying === 'ETH' && (h.boardId === SETTLED_BOARD || h.boardId === LATER_BOARD),
    );
    await fx.settleOptions(
      'ETH',
      onDate.map((h) => h.positionId),
    );
    const onSettled = onDate.filter((h) => h.boardId === SETTLED_BOARD);
    expect(onSettled.length).toBeGreaterThanOrEqual(2);
    // the store of the adapter that traded them: a position id no market has first, then two of board 4's
    const store = new MemoryOrderStore<LyraOrderRecord>();
    const filled = async (cid: string, instrument: string, positionId: string) => {
      const r = newOrderRecord(
        {
          clientOrderId: cid,
          instrument,
          side: 'buy',
          orderType: 'market',
          sizeBase: '1',
          reduceOnly: false,
        },
        NOW_MS - MS_PER_DAY,
      ) as LyraOrderRecord;
      await store.put(cid, {
        ...r,
        status: 'filled',
        filledSizeBase: '1',
        avgFillPriceUsd: '10',
        positionId,
      });
    };
    const [first, second] = onSettled as [(typeof onSettled)[number], (typeof onSettled)[number]];
    await filled('unknown-position', first.instrument, '99999');
    await filled('first', first.instrument, first.positionId.toString());
    await filled('second', second.instrument, second.positionId.toString());
    const asked = [...boardIds('ETH', SETTLED_BOARD), ...boardIds('BTC', 2n), 'ETH-USD:PERP'];
    const { ctx, requests } = countingContext(HOLDER_40);
    await ctx.publicClient.getChainId();
    const { answer, requests: made } = await counted(requests, () =>
      venue(ctx, store).fetchSettlementPrices(asked),
    );
    expect(answer).toEqual(await perBoardSettlement(asked));
    expect(answer.map((p) => p.instrument)).toEqual(boardIds('ETH', SETTLED_BOARD));
    // positions (3), the orders' positions, strikes and boards (3), the prices, the strikes
    expect(made.length, made.join(', ')).toBeLessThanOrEqual(8);
  });

  it('a read that fails for some positions fails the call naming them, never a book without them', async () => {
    const btc = market('BTC');
    // the BTC OptionMarket now reverts every call (PUSH1 0 PUSH1 0 REVERT); its OptionToken still lists
    // the positions
    await rpc(deployer.publicClient, 'anvil_setCode', [btc.optionMarket, '0x60006000fd']);
    const v = venue(chain.ctxFor(HOLDER_40));
    const err = await v.fetchPositions().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RevertedError);
    expect((err as Error).message).toMatch(/getStrike\(\d+\) of the BTC market for position \d+/);
    const details = (err as RevertedError).details as { failedReads: string[]; failedCount: number };
    expect(details.failedCount).toBeGreaterThan(1);
    expect(details.failedReads.every((w) => w.includes('of the BTC market for position'))).toBe(true);
    // settlement prices need the positions' boards as well
    const settle = await v.fetchSettlementPrices(boardIds('ETH', SETTLED_BOARD)).catch((e: unknown) => e);
    expect(settle).toBeInstanceOf(RevertedError);
    expect((settle as Error).message).toContain('of the BTC market for position');
  });

  it('a lazy read that fails on its own fails only what takes its result, naming it; a plain one fails the batch', async () => {
    const btc = market('BTC');
    await rpc(deployer.publicClient, 'anvil_setCode', [btc.optionMarket, '0x60006000fd']);
    const ctx = chain.ctxFor(HOLDER_40);
    const deps = {
      venue: 'lyra-positions',
      ctx,
      errors: venueErrorMapper('lyra-positions', optionMarketAbi, ctx),
    };
    const strike = (m: ReturnType<typeof market>, b: ReadBatch, lazy: boolean) =>
      b.add(
        { address: m.optionMarket, abi: optionMarketAbi, functionName: 'getStrike', args: [1n] },
        `getStrike(1) of the ${m.underlying} market`,
        { lazy },
      );
    const lazyBatch = new ReadBatch();
    const eth = strike(market('ETH'), lazyBatch, true);
    const failing = strike(btc, lazyBatch, true);
    const results = await readBatch(deps, lazyBatch);
    expect(eth(results).strikePrice).toBe(2500n * E18);
    const err = (() => {
      try {
        failing(results);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(RevertedError);
    expect((err as Error).message).toMatch(/^lyra-positions: read getStrike\(1\) of the BTC market failed/);
    const plain = new ReadBatch();
    strike(market('ETH'), plain, false);
    strike(btc, plain, false);
    const whole = await readBatch(deps, plain).catch((e: unknown) => e);
    expect(whole).toBeInstanceOf(RevertedError);
    expect((whole as Error).message).toMatch(/^lyra-positions: read getStrike\(1\) of the BTC market failed/);
  });
});
