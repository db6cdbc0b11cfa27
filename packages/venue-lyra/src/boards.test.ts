import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { instrumentMeta, MS_PER_DAY, msToExpiryDate } from '@xhedge/core';
import {
  ANVIL_DEV_KEYS,
  type EvmContext,
  ensureAllowance,
  JsonFileOrderStore,
  MemoryOrderStore,
  rpc,
  TxSender,
} from '@xhedge/evm';
import { type LocalTestChain, startLocalTestChain } from '@xhedge/evm/testing';
import { checkSettlementPrice, InvalidOrderError } from '@xhedge/venue';
import { maxUint256 } from 'viem';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { OPTION_TYPE, optionMarketAbi, optionTokenAbi } from './abi.ts';
import { type LyraOrderRecord, LyraVenue } from './adapter.ts';
import { deployLyraFixture, type LyraFixture } from './fixture.ts';

// Boards listed over time, several positions of one type on a strike, several boards on one date: the
// adapter against the local Lyra v1 contracts on anvil.

let chain: LocalTestChain;
let deployer: EvmContext;
let trader: EvmContext;
let fx: LyraFixture;
/** The fixture's one board: its expiry (08:00 UTC) and its 3500 call (strike id 2). */
let board1ExpiryMs: number;
let call3500: string;

beforeAll(async () => {
  chain = await startLocalTestChain('lyra-boards');
  deployer = chain.ctxFor(ANVIL_DEV_KEYS[0]);
  trader = chain.ctxFor(ANVIL_DEV_KEYS[1]);
  fx = await deployLyraFixture(deployer, {
    markets: [{ underlying: 'ETH', spotUsd: 3500, baseIv: 0.7, expiryDays: 30, strikes: [3000, 3500, 4000] }],
    traders: [trader.account.address],
  });
  await ensureAllowance(new TxSender({ ctx: trader }), {
    token: fx.params.quoteAsset,
    spender: fx.params.markets[0]!.optionMarket,
    amount: 10n ** 30n,
    policy: { mode: 'capped', capAmount: 10n ** 30n },
  });
  const ids = (await venue().loadMarkets()).map((m) => m.instrument.id);
  call3500 = ids.find((i) => i.endsWith(':3500:C')) ?? '';
  board1ExpiryMs = instrumentMeta(call3500).expiryMs ?? 0;
  await chain.snapshot();
});
afterAll(async () => {
  await chain?.stop();
});
beforeEach(() => chain.fresh());

function venue(
  store: MemoryOrderStore<LyraOrderRecord> | JsonFileOrderStore<LyraOrderRecord> = new MemoryOrderStore(),
) {
  return new LyraVenue(
    'lyra-boards',
    { ...fx.params, approval: 'capped', approvalCap: '1000000000', receiptTimeoutSeconds: 5 },
    { ctx: trader, store },
  );
}

const market = () => fx.params.markets[0]!;

/** The trader's ACTIVE positions as the OptionToken holds them. */
async function chainPositions() {
  const ps = await trader.publicClient.readContract({
    address: market().optionPositions,
    abi: optionTokenAbi,
    functionName: 'getOwnerPositions',
    args: [trader.account.address],
  });
  return ps
    .filter((p) => p.state === 1)
    .map((p) => ({
      positionId: p.positionId,
      strikeId: p.strikeId,
      optionType: p.optionType,
      amount: p.amount,
    }));
}

/** Opens a new position (positionId 0) straight on the OptionMarket, as another front end of the account would. */
async function openElsewhere(strikeId: bigint, optionType: number, amount: bigint, setCollateralTo = 0n) {
  const hash = await trader.walletClient.writeContract({
    address: market().optionMarket,
    abi: optionMarketAbi,
    functionName: 'openPosition',
    args: [
      {
        strikeId,
        positionId: 0n,
        iterations: 1n,
        optionType,
        amount,
        setCollateralTo,
        minTotalCost: 0n,
        maxTotalCost: maxUint256,
        referrer: '0x0000000000000000000000000000000000000000',
      },
    ],
  });
  const r = await trader.publicClient.waitForTransactionReceipt({ hash });
  expect(r.status).toBe('success');
}

const E18 = 10n ** 18n;

/**
 * A record as stored in `file`, read through a store closed at once: a store left open would keep the
 * file open in this process, and a "restarted" store would share it instead of reading the file.
 */
async function storedRecord<T>(file: string, clientOrderId: string): Promise<T | undefined> {
  const s = new JsonFileOrderStore<T>(file);
  try {
    return await s.get(clientOrderId);
  } finally {
    s.close();
  }
}

describe('lyra: boards listed after a restart', () => {
  it('a restarted adapter quotes and trades a board listed while it was down that the account never traded', async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'xhedge-lyra-boards-')), 'orders.json');
    const s1 = new JsonFileOrderStore<LyraOrderRecord>(file);
    const v1 = venue(s1);
    expect(
      (
        await v1.placeOrder({
          clientOrderId: 'before-restart',
          instrument: call3500,
          side: 'buy',
          orderType: 'market',
          sizeBase: '1',
        })
      ).status,
    ).toBe('filled');
    // While the adapter is down, the market lists a new board two weeks after the first.
    const expiry2Ms = board1ExpiryMs + 14 * MS_PER_DAY;
    await fx.createBoard('ETH', { expiryMs: expiry2Ms, baseIv: 0.8, strikes: [3200, 3800] });
    const call3800 = `ETH-USD:OPT:${msToExpiryDate(expiry2Ms)}:3800:C`;

    s1.close(); // restarted: the old store closed (one writer per file), the new one reads the file
    const v2 = venue(new JsonFileOrderStore(file));
    const q = await v2.quoteHedge({ instrument: call3800, side: 'buy', sizeBase: '1' });
    expect(q.expectedPriceUsd).toBeGreaterThan(0);
    const [mark] = await v2.fetchMarks([call3800]);
    expect(mark?.markPriceUsd).toBeGreaterThan(0);
    const o = await v2.placeOrder({
      clientOrderId: 'new-board',
      instrument: call3800,
      side: 'buy',
      orderType: 'market',
      sizeBase: '1',
    });
    expect(o.status).toBe('filled');
    const book = (await v2.fetchPositions()).map((p) => [p.instrument, p.sizeBase]).sort();
    expect(book).toEqual([
      [call3500, 1],
      [call3800, 1],
    ]);
  });
});

describe('lyra: several positions of one type on one strike', () => {
  it('a reduce-only sell closes from a long that covers it, not the first one listed', async () => {
    const v = venue();
    // two LONG_CALL positions on the 3500 call (strike id 2): 1 then 3, opened apart
    await openElsewhere(2n, OPTION_TYPE.LONG_CALL, 1n * E18);
    await openElsewhere(2n, OPTION_TYPE.LONG_CALL, 3n * E18);
    expect((await chainPositions()).map((p) => p.amount)).toEqual([1n * E18, 3n * E18]);
    expect((await v.fetchPositions()).map((p) => [p.instrument, p.sizeBase])).toEqual([[call3500, 4]]);

    // Selling 2 closes 2 of the 3: no new short, nothing locked.
    const q = await v.quoteHedge({ instrument: call3500, side: 'sell', sizeBase: '2', reduceOnly: true });
    expect(q.lockedCollateralUsd).toBe(0);
    const o = await v.placeOrder({
      clientOrderId: 'close-2',
      instrument: call3500,
      side: 'sell',
      orderType: 'market',
      sizeBase: '2',
      reduceOnly: true,
    });
    expect(o.status).toBe('filled');
    expect((await chainPositions()).map((p) => [p.optionType, p.amount])).toEqual([
      [OPTION_TYPE.LONG_CALL, 1n * E18],
      [OPTION_TYPE.LONG_CALL, 1n * E18],
    ]);
    expect((await v.fetchPositions()).map((p) => [p.instrument, p.sizeBase])).toEqual([[call3500, 2]]);

    // Selling 1 closes a position of exactly 1 (the smallest that covers it) in full.
    await v.placeOrder({
      clientOrderId: 'close-1',
      instrument: call3500,
      side: 'sell',
      orderType: 'market',
      sizeBase: '1',
      reduceOnly: true,
    });
    expect((await chainPositions()).map((p) => p.amount)).toEqual([1n * E18]);
  });

  it('a reduce-only order larger than every one position (Lyra closes one per trade) is refused, naming them', async () => {
    const v = venue();
    await openElsewhere(2n, OPTION_TYPE.LONG_CALL, 1n * E18);
    await openElsewhere(2n, OPTION_TYPE.LONG_CALL, 3n * E18);
    const err = await v
      .placeOrder({
        clientOrderId: 'close-4',
        instrument: call3500,
        side: 'sell',
        orderType: 'market',
        sizeBase: '4',
        reduceOnly: true,
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidOrderError);
    expect((err as Error).message).toMatch(/largest open long position is 3 of 4 in 2 positions/);
    expect((await chainPositions()).map((p) => p.amount)).toEqual([1n * E18, 3n * E18]);
  });

  it('a buy-back closes from a short that covers it, keeping that short collateralised', async () => {
    const v = venue();
    // two SHORT_PUT_QUOTE positions on the 3000 put (strike id 1): 1 and 2, each with strike × amount × 1.5
    await openElsewhere(1n, OPTION_TYPE.SHORT_PUT_QUOTE, 1n * E18, 4500n * E18);
    await openElsewhere(1n, OPTION_TYPE.SHORT_PUT_QUOTE, 2n * E18, 9000n * E18);
    const put3000 = call3500.replace(':3500:C', ':3000:P');
    const o = await v.placeOrder({
      clientOrderId: 'cover-2',
      instrument: put3000,
      side: 'buy',
      orderType: 'market',
      sizeBase: '2',
      reduceOnly: true,
    });
    expect(o.status).toBe('filled');
    expect((await chainPositions()).map((p) => p.amount)).toEqual([1n * E18]);
    const [p] = await v.fetchPositions();
    expect(p).toMatchObject({ instrument: put3000, sizeBase: -1, marginUsd: 4500 });
  });
});

describe('lyra: two boards expiring on one UTC date', () => {
  it('an id both boards would give names the first listed: listed, marked, traded and settled from it alone; the later board, at 20:00, takes no new position', async () => {
    const v = venue();
    await v.loadMarkets();
    const [before] = await v.fetchMarks([call3500]);
    // A second board on the first one's date, 12 hours later, at a higher vol: its 3500 strike gives the
    // same id as the first board's; its 4500 strike is its own.
    const expiry2Ms = board1ExpiryMs + 12 * 3_600_000;
    expect(msToExpiryDate(expiry2Ms)).toBe(msToExpiryDate(board1ExpiryMs));
    const board2 = await fx.createBoard('ETH', { expiryMs: expiry2Ms, baseIv: 1.2, strikes: [3500, 4500] });
    const call4500 = call3500.replace(':3500:C', ':4500:C');

    const listed = await v.loadMarkets();
    expect(listed.map((m) => m.instrument.id).sort()).toEqual(
      ['3000:C', '3000:P', '3500:C', '3500:P', '4000:C', '4000:P', '4500:C', '4500:P']
        .map((k) => call3500.replace('3500:C', k))
        .sort(),
    );
    // the first board's strike (id 2), the second board's 4500 (its strike id 5)
    const om = market().optionMarket;
    expect(listed.find((m) => m.instrument.id === call3500)?.venueSymbol).toBe(`${om}:2:C`);
    expect(listed.find((m) => m.instrument.id === call4500)?.venueSymbol).toBe(`${om}:5:C`);
    // each with its own board's expiry, to the second: the id holds the date only
    expect(listed.find((m) => m.instrument.id === call3500)?.instrument.expiryMs).toBe(board1ExpiryMs);
    expect(listed.find((m) => m.instrument.id === call4500)?.instrument.expiryMs).toBe(expiry2Ms);
    // the first board's mark (the second board, at vol 1.2 against 0.7, would price it about 200 USD above);
    // not to the last digit: creating the board moves the chain's clock a second or two, and the option's
    // time value with it (277.164279 vs 277.164225 seen under load)
    expect((await v.fetchMarks([call3500]))[0]?.markPriceUsd).toBeCloseTo(before?.markPriceUsd as number, 1);
    const buy = (clientOrderId: string, instrument: string) =>
      v.placeOrder({ clientOrderId, instrument, side: 'buy', orderType: 'market', sizeBase: '1' });
    expect((await buy('shared-id', call3500)).status).toBe('filled');
    // the 20:00 board is quoted to close only: the book takes ETH-USD:OPT:<date>:4500:C to expire at 08:00
    const refused = await buy('own-id', call4500).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(InvalidOrderError);
    expect((refused as Error).message).toContain(
      `board ${board2}, which expires at ${new Date(expiry2Ms).toISOString()}, not at ${new Date(board1ExpiryMs).toISOString()}`,
    );
    const quoteRefused = await v
      .quoteHedge({ instrument: call4500, side: 'buy', sizeBase: '1' })
      .catch((e: unknown) => e);
    expect(quoteRefused).toBeInstanceOf(InvalidOrderError);
    expect(await v.getOrderByClientId('own-id')).toBeNull();
    // a position on it opened elsewhere is closed through the adapter
    await openElsewhere(5n, OPTION_TYPE.LONG_CALL, 1n * E18);
    expect(
      (await v.quoteHedge({ instrument: call4500, side: 'sell', sizeBase: '1', reduceOnly: true }))
        .expectedPriceUsd,
    ).toBeGreaterThan(0);
    const close = await v.placeOrder({
      clientOrderId: 'close-4500',
      instrument: call4500,
      side: 'sell',
      orderType: 'market',
      sizeBase: '1',
      reduceOnly: true,
    });
    expect(close.status).toBe('filled');
    expect((await chainPositions()).map((p) => p.strikeId)).toEqual([2n]);

    // Both expire; the later board is settled first: its price is not the first board's.
    await rpc(deployer.publicClient, 'evm_setNextBlockTimestamp', [expiry2Ms / 1000 + 60]);
    try {
      await fx.setSpot('ETH', 3700);
      await fx.settleBoard('ETH', board2);
      expect(await v.fetchSettlementPrices([call3500, call4500])).toEqual([
        { instrument: call4500, priceUsd: '3700', fixedAtMs: expiry2Ms },
      ]);
      await fx.setSpot('ETH', 3612.5);
      await fx.settleBoard('ETH', 1n);
      expect(await v.fetchSettlementPrices([call3500])).toEqual([
        { instrument: call3500, priceUsd: '3612.5', fixedAtMs: board1ExpiryMs },
      ]);
    } finally {
      await fx.setSpot('ETH', 3500);
    }
  });

  it('an id two boards list names the one expiring at its 08:00 UTC instant, even when the other was listed first', async () => {
    const v = venue();
    // two weeks on: a board at 20:00 listed first, then one at 08:00 on the same date, both with a 3800
    const dayMs = board1ExpiryMs + 14 * MS_PER_DAY;
    const late = await fx.createBoard('ETH', {
      expiryMs: dayMs + 12 * 3_600_000,
      baseIv: 1.2,
      strikes: [3800],
    });
    const onHour = await fx.createBoard('ETH', { expiryMs: dayMs, baseIv: 0.8, strikes: [3800, 4200] });
    expect(late).toBeLessThan(onHour);
    const call3800 = `ETH-USD:OPT:${msToExpiryDate(dayMs)}:3800:C`;
    const listed = await v.loadMarkets();
    const m = listed.find((x) => x.instrument.id === call3800);
    // strikes 4 (the 20:00 board's 3800) and 5 (the 08:00 board's)
    expect(m?.venueSymbol).toBe(`${market().optionMarket}:5:C`);
    expect(m?.instrument.expiryMs).toBe(dayMs);
    const o = await v.placeOrder({
      clientOrderId: 'on-hour',
      instrument: call3800,
      side: 'buy',
      orderType: 'market',
      sizeBase: '1',
    });
    expect(o.status).toBe('filled');
    expect((await chainPositions()).map((p) => p.strikeId)).toEqual([5n]);
  });

  it('a board expiring before 08:00 UTC has a settlement price the runtime takes (fixed at or after the id’s expiry)', async () => {
    const v = venue();
    // 03:00 UTC, three weeks on
    const earlyMs = board1ExpiryMs + 21 * MS_PER_DAY - 5 * 3_600_000;
    const early = await fx.createBoard('ETH', { expiryMs: earlyMs, baseIv: 0.9, strikes: [3400] });
    const put3400 = `ETH-USD:OPT:${msToExpiryDate(earlyMs)}:3400:P`;
    const listed = await v.loadMarkets();
    expect(listed.find((x) => x.instrument.id === put3400)?.instrument.expiryMs).toBe(earlyMs);
    const idMs = instrumentMeta(put3400).expiryMs ?? 0;
    expect(idMs - earlyMs).toBe(5 * 3_600_000);
    await rpc(deployer.publicClient, 'evm_setNextBlockTimestamp', [idMs / 1000 + 60]);
    try {
      await fx.setSpot('ETH', 3350);
      await fx.settleBoard('ETH', early);
      const got = await v.fetchSettlementPrices([put3400]);
      expect(got).toEqual([{ instrument: put3400, priceUsd: '3350', fixedAtMs: idMs }]);
      // as the runtime's planner checks each answer where it enters
      expect(checkSettlementPrice(got[0], new Set([put3400]))).toMatchObject({ entry: got[0] });
    } finally {
      await fx.setSpot('ETH', 3500);
    }
  });

  it('after a restart, each id of two boards on one date is answered at its own board’s price (from the orders on it)', async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'xhedge-lyra-boards-')), 'orders.json');
    const s1 = new JsonFileOrderStore<LyraOrderRecord>(file);
    const v1 = venue(s1);
    // a second board at the first one's very instant: both take new positions; its 3500 is the first's id
    const board2 = await fx.createBoard('ETH', {
      expiryMs: board1ExpiryMs,
      baseIv: 1.2,
      strikes: [3500, 4500],
    });
    const call4500 = call3500.replace(':3500:C', ':4500:C');
    const buy = (clientOrderId: string, instrument: string) =>
      v1.placeOrder({ clientOrderId, instrument, side: 'buy', orderType: 'market', sizeBase: '1' });
    // the store's first order on the date is on board 2
    expect((await buy('on-board-2', call4500)).status).toBe('filled');
    expect((await buy('on-board-1', call3500)).status).toBe('filled');
    const [onBoard1, onBoard2] = (await Promise.all(
      ['on-board-1', 'on-board-2'].map(async (cid) =>
        BigInt((await storedRecord<LyraOrderRecord>(file, cid))?.positionId ?? '0'),
      ),
    )) as [bigint, bigint];
    expect((await chainPositions()).map((p) => [p.positionId, p.strikeId])).toEqual([
      [onBoard2, 5n],
      [onBoard1, 2n],
    ]);
    // Down: both expire and are settled at different prices; board 1's position is paid out.
    await rpc(deployer.publicClient, 'evm_setNextBlockTimestamp', [board1ExpiryMs / 1000 + 60]);
    try {
      await fx.setSpot('ETH', 3700);
      await fx.settleBoard('ETH', board2);
      await fx.setSpot('ETH', 3612.5);
      await fx.settleBoard('ETH', 1n);
      await fx.settleOptions('ETH', [onBoard1]);
      const expected = [
        { instrument: call3500, priceUsd: '3612.5', fixedAtMs: board1ExpiryMs },
        { instrument: call4500, priceUsd: '3700', fixedAtMs: board1ExpiryMs },
      ];
      const byId = (ps: { instrument: string }[]) =>
        [...ps].sort((a, b) => a.instrument.localeCompare(b.instrument));
      // restarted, board 2's position still held: call3500 is board 1's (its order's), not board 2's 3500
      s1.close(); // restarted: the old store closed (one writer per file), the new one reads the file
      const s2 = new JsonFileOrderStore<LyraOrderRecord>(file);
      const v2 = venue(s2);
      expect((await v2.fetchPositions()).map((p) => [p.instrument, p.sizeBase])).toEqual([[call4500, 1]]);
      expect(byId(await v2.fetchSettlementPrices([call3500, call4500]))).toEqual(byId(expected));
      // board 2's position paid out as well: each id from the order on its own board
      await fx.settleOptions('ETH', [onBoard2]);
      s2.close(); // restarted again
      const v3 = venue(new JsonFileOrderStore(file));
      expect(await v3.fetchPositions()).toEqual([]);
      expect(byId(await v3.fetchSettlementPrices([call3500, call4500]))).toEqual(byId(expected));
    } finally {
      await fx.setSpot('ETH', 3500);
    }
  });
});
