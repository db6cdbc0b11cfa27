import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { instrumentMeta } from '@xhedge/core';
import {
  ANVIL_DEV_KEYS,
  createEvmContext,
  type EvmContext,
  ensureAllowance,
  JsonFileOrderStore,
  MemoryOrderStore,
  rpc,
  TxSender,
} from '@xhedge/evm';
import {
  everythingIn,
  type FaultyRpc,
  type LocalTestChain,
  rpcFaultProblems,
  startFaultyRpc,
  startLocalTestChain,
} from '@xhedge/evm/testing';
import {
  AcceptablePriceError,
  InvalidOrderError,
  NonceError,
  NotConfirmedError,
  RateLimitError,
  VenueError,
} from '@xhedge/venue';
import { runVenueConformance } from '@xhedge/venue/conformance';
import { custom, erc20Abi, formatUnits, getAddress, type Hex, http, keccak256 } from 'viem';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createLyraVenue, LYRA_CAPABILITIES, type LyraOrderRecord, LyraVenue } from './adapter.ts';
import { deployLyraFixture, type LyraFixture, lyraLiteFixtureAbi } from './fixture.ts';
import type { LyraVenueParamsInput } from './params.ts';

let chain: LocalTestChain;
let deployer: EvmContext;
let trader: EvmContext;
let fx: LyraFixture;
let call3500: string;
let put3000: string;

const ctxFor = (key: Hex) => chain.ctxFor(key);

beforeAll(async () => {
  chain = await startLocalTestChain('lyra-local');
  deployer = ctxFor(ANVIL_DEV_KEYS[0]);
  trader = ctxFor(ANVIL_DEV_KEYS[1]);
  fx = await deployLyraFixture(deployer, {
    markets: [
      {
        underlying: 'ETH',
        spotUsd: 3500,
        baseIv: 0.7,
        expiryDays: 30,
        strikes: [3000, 3500, 4000],
        skews: [1.1, 1, 0.95],
      },
    ],
    traders: [trader.account.address],
  });
  const market = fx.params.markets[0]!.optionMarket;
  await ensureAllowance(new TxSender({ ctx: trader }), {
    token: fx.params.quoteAsset,
    spender: market,
    amount: 10n ** 30n,
    policy: { mode: 'capped', capAmount: 10n ** 30n },
  });
  const ids = (await venue().loadMarkets()).map((m) => m.instrument.id);
  call3500 = ids.find((i) => i.endsWith(':3500:C')) ?? '';
  put3000 = ids.find((i) => i.endsWith(':3000:P')) ?? '';
  await chain.snapshot();
});
afterAll(async () => {
  await chain?.stop();
});

const freshChain = () => chain.fresh();

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

function venue(
  opts: {
    store?: MemoryOrderStore<LyraOrderRecord> | JsonFileOrderStore<LyraOrderRecord>;
    ctx?: EvmContext;
    receiptTimeoutSeconds?: number;
    spendCapPerDay?: string;
    maxFeePerGasGwei?: number;
    /** Without `quoteAllowanceSlot`: simulations see the trader's real allowance. */
    noAllowanceOverride?: boolean;
  } = {},
) {
  const { quoteAllowanceSlot, ...params } = fx.params;
  return new LyraVenue(
    'lyra-local',
    {
      ...params,
      ...(opts.noAllowanceOverride ? {} : { quoteAllowanceSlot }),
      approval: 'capped',
      approvalCap: '1000000000',
      receiptTimeoutSeconds: opts.receiptTimeoutSeconds ?? 1,
      ...(opts.spendCapPerDay !== undefined ? { spendCapPerDay: opts.spendCapPerDay } : {}),
      ...(opts.maxFeePerGasGwei !== undefined ? { maxFeePerGasGwei: opts.maxFeePerGasGwei } : {}),
    },
    { ctx: opts.ctx ?? trader, store: opts.store ?? new MemoryOrderStore() },
  );
}

runVenueConformance('lyra (anvil)', async () => {
  await freshChain();
  return {
    venue: venue(),
    instrument: call3500,
    size: '1',
    advance: async () => {
      await rpc(deployer.publicClient, 'evm_setAutomine', [true]);
    },
    makeTimeout: async () => {
      await rpc(deployer.publicClient, 'evm_setAutomine', [false]);
    },
    settleMs: 5_000,
    pollStepMs: 250,
  };
});

describe('lyra adapter specifics', () => {
  beforeEach(freshChain);

  it('reports the board settlement price (boardToPriceAtExpiry) once the board is settled, nothing before', async () => {
    const v = venue();
    await v.placeOrder({
      clientOrderId: 'held-to-expiry',
      instrument: call3500,
      side: 'buy',
      orderType: 'market',
      sizeBase: '1',
    });
    expect(await v.fetchSettlementPrices([call3500, put3000])).toEqual([]); // live
    const expiryMs = instrumentMeta(call3500).expiryMs ?? 0;
    await rpc(deployer.publicClient, 'evm_setNextBlockTimestamp', [expiryMs / 1000 + 60]);
    await rpc(deployer.publicClient, 'evm_mine', []);
    expect(await v.fetchSettlementPrices([call3500])).toEqual([]); // expired, board not settled: no guess
    await fx.setSpot('ETH', 3612.5);
    await fx.settleBoard('ETH');
    const got = await v.fetchSettlementPrices([call3500, call3500, put3000, 'ETH-USD:PERP', 'not an id']);
    // every strike of a settled board the account holds a position on is answered, at the board's price
    expect(got.sort((a, b) => a.instrument.localeCompare(b.instrument))).toEqual(
      [
        { instrument: put3000, priceUsd: '3612.5', fixedAtMs: expiryMs },
        { instrument: call3500, priceUsd: '3612.5', fixedAtMs: expiryMs },
      ].sort((a, b) => a.instrument.localeCompare(b.instrument)),
    );
    // a fixed price never changes
    await fx.setSpot('ETH', 3000);
    expect((await v.fetchSettlementPrices([call3500]))[0]?.priceUsd).toBe('3612.5');
  });

  it('reports the settlement price of a board it saw listed, also one the account holds nothing on (a dry run simulates positions there)', async () => {
    const v = venue();
    await v.loadMarkets(); // the board is listed: seen
    const expiryMs = instrumentMeta(call3500).expiryMs ?? 0;
    await rpc(deployer.publicClient, 'evm_setNextBlockTimestamp', [expiryMs / 1000 + 60]);
    await rpc(deployer.publicClient, 'evm_mine', []);
    await fx.setSpot('ETH', 3612.5);
    await fx.settleBoard('ETH'); // settled: off the live boards
    expect(await v.fetchPositions()).toEqual([]);
    expect(await v.fetchSettlementPrices([put3000])).toEqual([
      { instrument: put3000, priceUsd: '3612.5', fixedAtMs: expiryMs },
    ]);
    // a process that never saw it listed cannot find it
    expect(await venue().fetchSettlementPrices([put3000])).toEqual([]);
  });

  it('after a restart, reports the settlement price of a board settled and paid out while it was down (found from its own orders)', async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'xhedge-lyra-')), 'orders.json');
    const s1 = new JsonFileOrderStore<LyraOrderRecord>(file);
    const v1 = venue({ store: s1 });
    const o = await v1.placeOrder({
      clientOrderId: 'restart-long',
      instrument: call3500,
      side: 'buy',
      orderType: 'market',
      sizeBase: '1',
    });
    expect(o.status).toBe('filled');
    const positionId = BigInt((await storedRecord<LyraOrderRecord>(file, 'restart-long'))?.positionId ?? '0');
    expect(positionId).toBeGreaterThan(0n);
    // The adapter is down: the board expires, is settled and the position paid out (its token burned).
    const expiryMs = instrumentMeta(call3500).expiryMs ?? 0;
    await rpc(deployer.publicClient, 'evm_setNextBlockTimestamp', [expiryMs / 1000 + 60]);
    await rpc(deployer.publicClient, 'evm_mine', []);
    await fx.setSpot('ETH', 3612.5);
    await fx.settleBoard('ETH');
    await fx.settleOptions('ETH', [positionId]);
    // Restarted over the same order file: the board is off the live list and the account holds nothing on it.
    s1.close(); // restarted: the old store closed (one writer per file), the new one reads the file
    const v2 = venue({ store: new JsonFileOrderStore(file) });
    expect(await v2.fetchPositions()).toEqual([]);
    const got = await v2.fetchSettlementPrices([call3500, put3000]);
    expect(got.sort((a, b) => a.instrument.localeCompare(b.instrument))).toEqual(
      [
        { instrument: call3500, priceUsd: '3612.5', fixedAtMs: expiryMs },
        { instrument: put3000, priceUsd: '3612.5', fixedAtMs: expiryMs },
      ].sort((a, b) => a.instrument.localeCompare(b.instrument)),
    );
  });

  it('the same client order id placed twice at once trades once', async () => {
    const v = venue();
    const req = {
      clientOrderId: 'dup-at-once',
      instrument: call3500,
      side: 'buy',
      orderType: 'market',
      sizeBase: '1',
    } as const;
    const [a, b] = await Promise.allSettled([v.placeOrder(req), v.placeOrder({ ...req })]);
    expect(a.status === 'fulfilled' ? a.value.status : a.reason).toBe('filled');
    expect(b.status === 'fulfilled' ? b.value.venueOrderId : b.reason).toBe(
      a.status === 'fulfilled' ? a.value.venueOrderId : undefined,
    );
    expect((await v.fetchPositions()).map((p) => [p.instrument, p.sizeBase])).toEqual([[call3500, 1]]);
    expect(await v.fetchFills({ clientOrderId: 'dup-at-once' })).toHaveLength(1);
  });

  it('maxFeePerGasGwei: a trade whose base fee is above the cap is refused, not sent; under a cap it fills', async () => {
    await freshChain();
    const block = await trader.publicClient.getBlock({ blockTag: 'latest' });
    const baseFeeWei = block.baseFeePerGas ?? 0n;
    expect(baseFeeWei).toBeGreaterThan(1n);
    const order = (clientOrderId: string) => ({
      clientOrderId,
      instrument: call3500,
      side: 'buy' as const,
      orderType: 'market' as const,
      sizeBase: '1',
    });
    // the cap half the base fee: nothing is signed
    const low = venue({ maxFeePerGasGwei: Number(baseFeeWei / 2n) / 1e9 });
    const err = await low.placeOrder(order('cap-low')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RateLimitError);
    expect((err as RateLimitError).outcome).toBe('not-sent');
    expect((err as RateLimitError).message).toContain('maxFeePerGasGwei');
    expect(await low.fetchPositions()).toEqual([]);
    // ten times the base fee: it trades, its transaction signed at most at the cap
    const high = venue({ maxFeePerGasGwei: Number(baseFeeWei * 10n) / 1e9 });
    const filled = await high.placeOrder(order('cap-high'));
    expect(filled.status).toBe('filled');
    const tx = await trader.publicClient.getTransaction({ hash: filled.venueOrderId as Hex });
    expect(tx.maxFeePerGas).toBeLessThanOrEqual(baseFeeWei * 10n);
  });

  it('a limit price that is not positive is an InvalidOrderError naming it, nothing sent', async () => {
    const v = venue();
    const cases = [
      ['neg-buy', 'buy', '-1'],
      ['neg-buy-far', 'buy', '-1000'],
      ['zero-sell', 'sell', '0'],
    ] as const;
    for (const [clientOrderId, side, limitPriceUsd] of cases) {
      const err = await v
        .placeOrder({
          clientOrderId,
          instrument: call3500,
          side,
          orderType: 'limit',
          sizeBase: '1',
          limitPriceUsd,
        })
        .catch((e: unknown) => e);
      expect(err, `${side} at ${limitPriceUsd}`).toBeInstanceOf(InvalidOrderError);
      expect((err as InvalidOrderError).message).toContain(`limitPriceUsd ${limitPriceUsd}`);
      expect((err as InvalidOrderError).clientOrderId).toBe(clientOrderId);
      expect(await v.getOrderByClientId(clientOrderId)).toBeNull();
    }
    expect(await v.fetchPositions()).toEqual([]);
  });

  it('a 6-decimal quote token (Newport USDC): the spend cap and the approval are in token units, rounded up as Lyra pulls them', async () => {
    const fx6 = await deployLyraFixture(deployer, {
      markets: [{ underlying: 'ETH', spotUsd: 3500, baseIv: 0.7, expiryDays: 30, strikes: [3500] }],
      traders: [trader.account.address],
      traderQuote: 10_000,
      quoteDecimals: 6,
    });
    const store = new MemoryOrderStore<LyraOrderRecord>();
    // 1000 USDC a day; exact approvals (what the order may pull, no more)
    const v = new LyraVenue(
      'lyra-usdc6',
      { ...fx6.params, approval: 'exact', spendCapPerDay: '1000', receiptTimeoutSeconds: 5 },
      { ctx: trader, store },
    );
    const call = (await v.loadMarkets()).map((m) => m.instrument.id).find((i) => i.endsWith(':3500:C')) ?? '';
    const usdcUnits = () =>
      trader.publicClient.readContract({
        address: fx6.params.quoteAsset,
        abi: erc20Abi,
        functionName: 'balanceOf',
        args: [trader.account.address],
      });
    const before = await usdcUnits();
    const o = await v.placeOrder({
      clientOrderId: 'usdc6-buy',
      instrument: call,
      side: 'buy',
      orderType: 'limit',
      sizeBase: '1',
      limitPriceUsd: '400',
    });
    expect(o.status).toBe('filled');
    const [fill] = await v.fetchFills({ clientOrderId: 'usdc6-buy' });
    const paid = before - (await usdcUnits());
    // what left the wallet is premium + fee, in 6-decimal units
    expect(Number(paid) / 1e6).toBeCloseTo(Number(fill?.priceUsd) + (fill?.feeUsd ?? Number.NaN), 5);
    // the bound reserved and approved: 400 + the fee (~1.75), in 6-decimal units, not 18
    const spend = BigInt((await store.get('usdc6-buy'))?.spend?.amountBase ?? '0');
    expect(spend).toBeGreaterThan(400n * 10n ** 6n);
    expect(spend).toBeLessThan(402n * 10n ** 6n);
    const left = await trader.publicClient.readContract({
      address: fx6.params.quoteAsset,
      abi: erc20Abi,
      functionName: 'allowance',
      args: [trader.account.address, fx6.params.markets[0]?.optionMarket as Hex],
    });
    expect(left + paid).toBe(spend);
    expect((await v.fetchBalances()).find((b) => b.asset === 'USDC')?.amount).toBeCloseTo(
      Number(before - paid) / 1e6,
      6,
    );
  });

  it('keeps ACTIVE positions on an expired board (instrument, size, collateral) until settleOptions pays them', async () => {
    const store = new MemoryOrderStore<LyraOrderRecord>();
    const v = venue({ store });
    const trade = (clientOrderId: string, instrument: string, side: 'buy' | 'sell', sizeBase: string) =>
      v.placeOrder({ clientOrderId, instrument, side, orderType: 'market', sizeBase });
    expect((await trade('exp-long', call3500, 'buy', '1')).status).toBe('filled');
    expect((await trade('exp-short', put3000, 'sell', '2')).status).toBe('filled');
    const book = async () =>
      (await v.fetchPositions())
        .map((p) => ({ instrument: p.instrument, sizeBase: p.sizeBase, marginUsd: p.marginUsd }))
        .sort((a, b) => a.instrument.localeCompare(b.instrument));
    const live = await book();
    expect(live).toEqual(
      [
        { instrument: call3500, sizeBase: 1, marginUsd: undefined },
        { instrument: put3000, sizeBase: -2, marginUsd: 2 * 3000 * 1.2 },
      ].sort((a, b) => a.instrument.localeCompare(b.instrument)),
    );

    const expiryMs = instrumentMeta(call3500).expiryMs ?? 0;
    await rpc(deployer.publicClient, 'evm_setNextBlockTimestamp', [expiryMs / 1000 + 60]);
    await rpc(deployer.publicClient, 'evm_mine', []);
    // Expired, board not settled (Lyra still lists it live): nothing trades, the positions stay.
    expect(await v.loadMarkets()).toEqual([]);
    expect(await book()).toEqual(live);
    // Board settled (off the live list): the positions stay, at the expired instruments, until paid.
    await fx.setSpot('ETH', 3612.5);
    await fx.settleBoard('ETH');
    expect(await book()).toEqual(live);
    expect((await v.fetchSettlementPrices([call3500]))[0]?.priceUsd).toBe('3612.5');

    const usdc = async () => (await v.fetchBalances()).find((b) => b.asset === 'USDC')?.amount ?? Number.NaN;
    const before = await usdc();
    const ids = await Promise.all(
      ['exp-long', 'exp-short'].map(async (cid) => BigInt((await store.get(cid))?.positionId ?? '0')),
    );
    await fx.settleOptions('ETH', ids);
    expect(await v.fetchPositions()).toEqual([]);
    // What left the book arrived in the wallet: the call's payoff and the put's collateral (it expired out of the money).
    expect((await usdc()) - before).toBeCloseTo(3612.5 - 3500 + 2 * 3000 * 1.2, 6);
  });

  // A base-collateralised short call's collateral (a WETH balance, not marginUsd): base-collateral.test.ts.

  it('maps boards and strikes to canonical option ids at 08:00 UTC expiries', async () => {
    const ms = await venue().loadMarkets();
    expect(ms).toHaveLength(6);
    expect(call3500).toMatch(/^ETH-USD:OPT:[0-9]{8}:3500:C$/);
    const m = ms.find((x) => x.instrument.id === call3500);
    expect(new Date(m?.instrument.expiryMs ?? 0).getUTCHours()).toBe(8);
    expect(m?.instrument.optionType).toBe('call');
    // Marked at the exchange adapter's REFERENCE price (its min/max prices are for trades); Lyra quotes no
    // spread on chain, so no bid/ask.
    const [mark] = await venue().fetchMarks([call3500]);
    expect(mark?.indexPriceUsd).toBe(3500);
    expect(mark?.bidUsd).toBeUndefined();
    expect(mark?.askUsd).toBeUndefined();
  });

  it('reports AMM Greeks in project units and agrees with local BSM, flagging divergence after a stale cache', async () => {
    const v = venue();
    const [g] = await v.fetchGreeks([call3500]);
    expect(g?.greeks.delta).toBeGreaterThan(0.5);
    expect(g?.greeks.delta).toBeLessThan(0.6);
    expect(g?.greeks.ivDecimal).toBeCloseTo(0.7, 9);
    expect(g?.greeks.vegaPerVolPoint).toBeGreaterThan(1);
    expect(g?.greeks.gamma).toBeGreaterThan(0);
    const cmp = await v.compareGreeks();
    expect(cmp).toHaveLength(6);
    expect(cmp.every((c) => !c.diverged)).toBe(true);
    // Spot moves 10 % but the cache is not refreshed: the AMM's Greeks are now stale and diverge.
    const m = fx.params.markets[0]!;
    await deployer.walletClient.writeContract({
      address: m.exchangeAdapter,
      abi: lyraLiteFixtureAbi,
      functionName: 'setSpotPrice',
      args: [m.optionMarket, 3850n * 10n ** 18n],
    });
    const stale = await v.compareGreeks([call3500]);
    expect(stale[0]?.diverged).toBe(true);
    await fx.setSpot('ETH', 3850);
    expect((await v.compareGreeks([call3500]))[0]?.diverged).toBe(false);
  });

  it('sells by opening a collateralized short and buys it back; the pool net delta mirrors the trader', async () => {
    const v = venue();
    const usdc = async () => (await v.fetchBalances()).find((b) => b.asset === 'USDC')?.amount ?? Number.NaN;
    const before = await usdc();
    const sold = await v.placeOrder({
      clientOrderId: 'short-put',
      instrument: put3000,
      side: 'sell',
      orderType: 'market',
      sizeBase: '2',
    });
    expect(sold.status).toBe('filled');
    const short = (await v.fetchPositions()).find((p) => p.instrument === put3000);
    expect(short?.sizeBase).toBe(-2);
    // the collateral left the wallet for the option market: the position carries it, so the book's
    // equity (wallet + margin) moved by the premium received only
    expect(short?.marginUsd).toBeGreaterThan(0);
    const [fill] = await v.fetchFills({ clientOrderId: 'short-put' });
    // the whole fee (the pricer's tradeResults, 5 bps of spot notional here), not the Trade event's
    // reservedFee (only the DAO's share)
    expect(fill?.feeUsd).toBeCloseTo(2 * 3500 * 0.0005, 9);
    const received = Number(fill?.priceUsd) * Number(fill?.sizeBase) - (fill?.feeUsd ?? Number.NaN);
    expect((await usdc()) + (short?.marginUsd ?? 0) - before).toBeCloseTo(received, 6);
    const pool = await v.fetchPoolNetDelta();
    const [g] = await v.fetchGreeks([put3000]);
    // The trader is short 2 puts (delta +2·|putDelta|), the pool is long them.
    expect(pool.ETH).toBeCloseTo(2 * (g?.greeks.delta ?? 0), 9);
    await v.placeOrder({
      clientOrderId: 'cover-put',
      instrument: put3000,
      side: 'buy',
      orderType: 'market',
      sizeBase: '2',
    });
    expect(await v.fetchPositions()).toEqual([]);
    await expect(
      v.placeOrder({
        clientOrderId: 'ro-1',
        instrument: put3000,
        side: 'buy',
        orderType: 'market',
        sizeBase: '1',
        reduceOnly: true,
      }),
    ).rejects.toBeInstanceOf(InvalidOrderError);
  });

  it('quotes the collateral a sell would post (getMinCollateral × the 1.2 buffer, less what the short holds), and the order posts it', async () => {
    const v = venue();
    const position = async (instrument: string) =>
      (await v.fetchPositions()).find((p) => p.instrument === instrument);
    const quote = (instrument: string, side: 'buy' | 'sell', sizeBase: string) =>
      v.quoteHedge({ instrument, side, sizeBase });
    const sell = (clientOrderId: string, instrument: string, sizeBase: string) =>
      v.placeOrder({ clientOrderId, instrument, side: 'sell', orderType: 'market', sizeBase });
    // A short put's minimum is strike × amount: 2 × 3000 × 1.2.
    const q1 = await quote(put3000, 'sell', '2');
    expect(q1.lockedCollateralUsd).toBeCloseTo(2 * 3000 * 1.2, 6);
    expect(q1.totalCostUsd).toBeCloseTo(q1.feeUsd + q1.impactUsd + q1.gasUsd, 9); // not a cost
    expect((await sell('lc-put-1', put3000, '2')).status).toBe('filled');
    expect((await position(put3000))?.marginUsd).toBeCloseTo(q1.lockedCollateralUsd ?? Number.NaN, 6);
    // Adding 1 to the short: the target is 3 × 3000 × 1.2, of which 7200 is already held.
    const q2 = await quote(put3000, 'sell', '1');
    expect(q2.lockedCollateralUsd).toBeCloseTo(3 * 3000 * 1.2 - 2 * 3000 * 1.2, 6);
    expect((await sell('lc-put-2', put3000, '1')).status).toBe('filled');
    expect((await position(put3000))?.marginUsd).toBeCloseTo(
      (q1.lockedCollateralUsd ?? Number.NaN) + (q2.lockedCollateralUsd ?? Number.NaN),
      6,
    );
    // A short call (quote-collateralised) needs 150 % of spot: 1 × 3500 × 1.5 × 1.2.
    expect((await quote(call3500, 'sell', '1')).lockedCollateralUsd).toBeCloseTo(3500 * 1.5 * 1.2, 6);
    // Buying locks nothing; nor does selling a long the account holds.
    expect((await quote(call3500, 'buy', '1')).lockedCollateralUsd).toBe(0);
    await v.placeOrder({
      clientOrderId: 'lc-long',
      instrument: call3500,
      side: 'buy',
      orderType: 'market',
      sizeBase: '1',
    });
    expect((await quote(call3500, 'sell', '1')).lockedCollateralUsd).toBe(0);
  });

  it('a partial buy-back keeps the rest of the short collateralized (Lyra sets collateral to setCollateralTo)', async () => {
    const store = new MemoryOrderStore<LyraOrderRecord>();
    const v = venue({ store });
    const trade = (clientOrderId: string, instrument: string, side: 'buy' | 'sell', sizeBase: string) =>
      v.placeOrder({ clientOrderId, instrument, side, orderType: 'market', sizeBase });
    const position = async (instrument: string) =>
      (await v.fetchPositions()).find((p) => p.instrument === instrument);
    expect((await trade('pb-short', put3000, 'sell', '3')).status).toBe('filled');
    expect((await position(put3000))?.marginUsd).toBeCloseTo(3 * 3000 * 1.2, 6);
    // 1 of 3 bought back: the 2 left hold their minimum (strike × amount) × the 1.2 buffer.
    expect((await trade('pb-buy-1', put3000, 'buy', '1')).status).toBe('filled');
    expect(await position(put3000)).toMatchObject({ sizeBase: -2 });
    expect((await position(put3000))?.marginUsd).toBeCloseTo(2 * 3000 * 1.2, 6);
    // The rest bought back: a full close passes 0 and gets all collateral back.
    expect((await trade('pb-buy-2', put3000, 'buy', '2')).status).toBe('filled');
    expect(await position(put3000)).toBeUndefined();

    // Short calls need 150 % of spot: after spot doubles, the 2 left need more than the 3 held.
    expect((await trade('pc-short', call3500, 'sell', '3')).status).toBe('filled');
    expect((await position(call3500))?.marginUsd).toBeCloseTo(3 * 3500 * 1.5 * 1.2, 6);
    try {
      await fx.setSpot('ETH', 7000);
      expect((await trade('pc-buy-1', call3500, 'buy', '1')).status).toBe('filled');
      expect(await position(call3500)).toMatchObject({ sizeBase: -2 });
      expect((await position(call3500))?.marginUsd).toBeCloseTo(2 * 7000 * 1.5 * 1.2, 6);
      // What it may pull counts the 6300 of collateral added on top of the buy's cost bound.
      const added = (2n * 7000n * 15n * 12n - 3n * 3500n * 15n * 12n) * 10n ** 16n;
      expect(BigInt((await store.get('pc-buy-1'))?.spend?.amountBase ?? '0')).toBeGreaterThan(added);
    } finally {
      await fx.setSpot('ETH', 3500);
    }
  });

  it('a limit price below the AMM cost reverts as AcceptablePriceError (TotalCostOutsideOfSpecifiedBounds), nothing recorded as sent', async () => {
    const v = venue();
    const q = await v.quoteHedge({ instrument: call3500, side: 'buy', sizeBase: '1' });
    const err = await v
      .placeOrder({
        clientOrderId: 'tight-1',
        instrument: call3500,
        side: 'buy',
        orderType: 'limit',
        sizeBase: '1',
        limitPriceUsd: (q.expectedPriceUsd * 0.9).toFixed(6),
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AcceptablePriceError);
    expect((err as AcceptablePriceError).outcome).toBe('not-sent');
    expect((err as AcceptablePriceError).details?.errorName).toBe('TotalCostOutsideOfSpecifiedBounds');
    expect(await v.getOrderByClientId('tight-1')).toBeNull();
  });

  it('a limit bounds the premium per unit (the fill price), the fee apart: a buy 10 bps over the quote fills on an option whose fee is large', async () => {
    // Lyra bounds premium + fee (OptionMarketPricer.getTradeResult); the put's fee (5 bps of spot
    // notional) is over 1 % of its premium, far more than the 10 bps of slippage a router allows here.
    const v = venue();
    const q = await v.quoteHedge({ instrument: put3000, side: 'buy', sizeBase: '1' });
    expect(q.feeUsd / q.expectedPriceUsd).toBeGreaterThan(0.01);
    const limitPriceUsd = (q.expectedPriceUsd * 1.001).toFixed(6);
    const o = await v.placeOrder({
      clientOrderId: 'fee-buy',
      instrument: put3000,
      side: 'buy',
      orderType: 'limit',
      sizeBase: '1',
      limitPriceUsd,
    });
    expect(o.status).toBe('filled');
    // The quote stated what the order was charged: its price per unit and, apart, its fee.
    const [fill] = await v.fetchFills({ clientOrderId: 'fee-buy' });
    expect(Number(fill?.priceUsd)).toBeCloseTo(q.expectedPriceUsd, 9);
    expect(Number(fill?.priceUsd)).toBeLessThanOrEqual(Number(limitPriceUsd));
    expect(fill?.feeUsd).toBeCloseTo(q.feeUsd, 9);
    // The bound is on the price, exactly: 10 bps under the quote no longer passes, fee or not.
    const under = await v
      .placeOrder({
        clientOrderId: 'fee-buy-under',
        instrument: put3000,
        side: 'buy',
        orderType: 'limit',
        sizeBase: '1',
        limitPriceUsd: (
          (await v.quoteHedge({ instrument: put3000, side: 'buy', sizeBase: '1' })).expectedPriceUsd * 0.999
        ).toFixed(6),
      })
      .catch((e: unknown) => e);
    expect(under).toBeInstanceOf(AcceptablePriceError);
  });

  it('a first limit buy fills without quoteAllowanceSlot: its simulation, short of the allowance the order approves afterwards, falls back to the limit alone', async () => {
    const q = await venue().quoteHedge({ instrument: call3500, side: 'buy', sizeBase: '1' });
    // a trader that never approved the market
    const hash = await trader.walletClient.writeContract({
      address: fx.params.quoteAsset,
      abi: erc20Abi,
      functionName: 'approve',
      args: [fx.params.markets[0]?.optionMarket as Hex, 0n],
    });
    await trader.publicClient.waitForTransactionReceipt({ hash });
    const v = venue({ noAllowanceOverride: true });
    // the eth_call a quote makes reverts on the allowance
    await expect(v.quoteHedge({ instrument: call3500, side: 'buy', sizeBase: '1' })).rejects.toThrow(
      /ERC20InsufficientAllowance/,
    );
    const limitPriceUsd = (q.expectedPriceUsd * 1.05).toFixed(6); // the fee fits in the 5 %
    const o = await v.placeOrder({
      clientOrderId: 'first-buy',
      instrument: call3500,
      side: 'buy',
      orderType: 'limit',
      sizeBase: '1',
      limitPriceUsd,
    });
    expect(o.status).toBe('filled');
    const [fill] = await v.fetchFills({ clientOrderId: 'first-buy' });
    expect(Number(fill?.priceUsd) + (fill?.feeUsd ?? 0)).toBeLessThanOrEqual(Number(limitPriceUsd));
  });

  it('a sell limit 10 bps under the quote fills on an option whose fee is large; 10 bps over it does not', async () => {
    const v = venue();
    const sell = async (clientOrderId: string, factor: number) => {
      const q = await v.quoteHedge({ instrument: put3000, side: 'sell', sizeBase: '1' });
      expect(q.feeUsd / q.expectedPriceUsd).toBeGreaterThan(0.01);
      const limitPriceUsd = (q.expectedPriceUsd * factor).toFixed(6);
      const o = await v
        .placeOrder({
          clientOrderId,
          instrument: put3000,
          side: 'sell',
          orderType: 'limit',
          sizeBase: '1',
          limitPriceUsd,
        })
        .catch((e: unknown) => e);
      return { q, o, limitPriceUsd };
    };
    const over = await sell('fee-sell-over', 1.001);
    expect(over.o).toBeInstanceOf(AcceptablePriceError);
    const ok = await sell('fee-sell', 0.999);
    expect((ok.o as { status?: string }).status).toBe('filled');
    const [fill] = await v.fetchFills({ clientOrderId: 'fee-sell' });
    expect(Number(fill?.priceUsd)).toBeCloseTo(ok.q.expectedPriceUsd, 9);
    expect(Number(fill?.priceUsd)).toBeGreaterThanOrEqual(Number(ok.limitPriceUsd));
    expect(fill?.feeUsd).toBeCloseTo(ok.q.feeUsd, 9);
  });

  it("decodes the pricer's trade-limit reverts (TradingCutoffReached, TradeDeltaOutOfRange) as orders not to repeat", async () => {
    const v = venue();
    const call4000 = call3500.replace(':3500:C', ':4000:C');
    const buy = (clientOrderId: string, instrument: string) =>
      v.placeOrder({ clientOrderId, instrument, side: 'buy', orderType: 'market', sizeBase: '1' });
    const refusal = async (p: Promise<unknown>) => {
      const err = await p.catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidOrderError);
      expect((err as InvalidOrderError).retryable).toBe(false);
      expect((err as InvalidOrderError).outcome).toBe('not-sent');
      return err as InvalidOrderError;
    };
    // The board expires in about 30 days; a 31-day cutoff puts it past its trading cutoff.
    await fx.setTradeLimits('ETH', { tradingCutoffSec: 31 * 86_400, minDelta: 0 });
    const market = fx.params.markets[0]!.optionMarket;
    const cutoffQuote = await refusal(v.quoteHedge({ instrument: call3500, side: 'buy', sizeBase: '1' }));
    expect(cutoffQuote.details?.errorName).toBe('TradingCutoffReached');
    const cutoff = await refusal(buy('cutoff-1', call3500));
    expect(cutoff.message).toMatch(
      new RegExp(
        `reverted: TradingCutoffReached\\(${market}, ${31 * 86_400}, ${(instrumentMeta(call3500).expiryMs ?? 0) / 1000}, [0-9]+\\)`,
        'i',
      ),
    );
    expect(await v.getOrderByClientId('cutoff-1')).toBeNull();
    // Call deltas within [0.3, 0.7] only: the 4000 call (delta ≈ 0.27) is refused, the 3500 one trades.
    await fx.setTradeLimits('ETH', { tradingCutoffSec: 0, minDelta: 0.3 });
    const [g] = await v.fetchGreeks([call4000]);
    const delta = await refusal(buy('delta-1', call4000));
    expect(delta.details?.errorName).toBe('TradeDeltaOutOfRange');
    expect(delta.details?.args).toEqual([
      getAddress(market),
      (BigInt(Math.round((g?.greeks.delta ?? Number.NaN) * 1e6)) * 10n ** 12n).toString(),
      (3n * 10n ** 17n).toString(),
      (7n * 10n ** 17n).toString(),
    ]);
    expect((await buy('delta-2', call3500)).status).toBe('filled');
  });

  it("the pool lacking free liquidity (LiquidityPool's LockingMoreQuoteThanIsFree, SendPremiumNotEnoughCollateral) refuses the size, not sent, named in human units; a smaller size fits", async () => {
    const v = venue();
    const market = getAddress(fx.params.markets[0]!.optionMarket);
    const call4000 = call3500.replace(':3500:C', ':4000:C');
    const refusal = async (p: Promise<unknown>, errorName: string) => {
      const err = await p.catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidOrderError);
      expect((err as InvalidOrderError).retryable).toBe(false);
      expect((err as InvalidOrderError).outcome).toBe('not-sent');
      expect((err as InvalidOrderError).details?.errorName).toBe(errorName);
      return err as InvalidOrderError;
    };
    // 5000 USDC of pool liquidity; a long put 3000 locks 3000 of it (strike × size), leaving 2000 free.
    await fx.setPoolLiquidity('ETH', 5000);
    const put = await v.placeOrder({
      clientOrderId: 'pool-put',
      instrument: put3000,
      side: 'buy',
      orderType: 'market',
      sizeBase: '1',
    });
    expect(put.status).toBe('filled');
    // A long call 3500 locks spot × size = 3500 USDC: more than the 2000 free.
    const locking = `LockingMoreQuoteThanIsFree(thrower ${market}, quoteToLock 3500 USDC, freeLiquidity 2000 USDC, lockedCollateral {quote 3000 USDC, base 0 ETH})`;
    const quoted = await refusal(
      v.quoteHedge({ instrument: call3500, side: 'buy', sizeBase: '1' }),
      'LockingMoreQuoteThanIsFree',
    );
    expect(quoted.message).toContain(`lyra-local: reverted: ${locking}: `);
    const big = await refusal(
      v.placeOrder({
        clientOrderId: 'pool-call',
        instrument: call3500,
        side: 'buy',
        orderType: 'market',
        sizeBase: '1',
      }),
      'LockingMoreQuoteThanIsFree',
    );
    expect(big.clientOrderId).toBe('pool-call');
    expect(big.message).toBe(
      `lyra-local: reverted: ${locking}: the liquidity pool's free liquidity cannot take the collateral this trade ` +
        "locks (quoteToLock × the pool's collateral scaling factor > freeLiquidity); a smaller size may fit",
    );
    expect((big.details?.args as string[] | undefined)?.slice(0, 3)).toEqual([
      market,
      (3500n * 10n ** 18n).toString(),
      (2000n * 10n ** 18n).toString(),
    ]);
    expect(await v.getOrderByClientId('pool-call')).toBeNull();
    // Half the size locks 1750: it fits.
    const half = await v.placeOrder({
      clientOrderId: 'pool-call-half',
      instrument: call3500,
      side: 'buy',
      orderType: 'market',
      sizeBase: '0.5',
    });
    expect(half.status).toBe('filled');
    // 1 USDC left free (3000 + 1750 locked of 4751): a short call 4000 is paid more than that in premium.
    await fx.setPoolLiquidity('ETH', 4751);
    const sale = await refusal(
      v.placeOrder({
        clientOrderId: 'pool-sell',
        instrument: call4000,
        side: 'sell',
        orderType: 'market',
        sizeBase: '1',
      }),
      'SendPremiumNotEnoughCollateral',
    );
    const [, premiumE18, reservedFeeE18, freeE18] = (sale.details?.args ?? []) as string[];
    expect(freeE18).toBe((10n ** 18n).toString());
    expect(BigInt(premiumE18 ?? '0') + BigInt(reservedFeeE18 ?? '0')).toBeGreaterThan(10n ** 18n);
    expect(sale.message).toBe(
      `lyra-local: reverted: SendPremiumNotEnoughCollateral(thrower ${market}, premium ${formatUnits(BigInt(premiumE18 ?? ''), 18)} USDC, ` +
        `reservedFee ${formatUnits(BigInt(reservedFeeE18 ?? ''), 18)} USDC, freeLiquidity 1 USDC): the liquidity pool's free ` +
        "liquidity cannot pay this sale's premium and reserved fee (premium + reservedFee > freeLiquidity); a smaller size may fit",
    );
    expect(await v.getOrderByClientId('pool-sell')).toBeNull();
    const halfMore = await refusal(
      v.placeOrder({
        clientOrderId: 'pool-call-2',
        instrument: call3500,
        side: 'buy',
        orderType: 'market',
        sizeBase: '0.5',
      }),
      'LockingMoreQuoteThanIsFree',
    );
    expect(halfMore.message).toContain(
      'quoteToLock 1750 USDC, freeLiquidity 1 USDC, lockedCollateral {quote 3000 USDC, base 0.5 ETH}',
    );
    // Closing the long put frees its 3000 (3001 free): the same half call now fits.
    const closed = await v.placeOrder({
      clientOrderId: 'pool-put-close',
      instrument: put3000,
      side: 'sell',
      orderType: 'market',
      sizeBase: '1',
    });
    expect(closed.status).toBe('filled');
    const again = await v.placeOrder({
      clientOrderId: 'pool-call-3',
      instrument: call3500,
      side: 'buy',
      orderType: 'market',
      sizeBase: '0.5',
    });
    expect(again.status).toBe('filled');
  });

  it('after a restart with a pending trade: the mapping is read from disk, new trades wait, the pending one is cancelled by nonce', async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'xhedge-lyra-')), 'orders.json');
    const s1 = new JsonFileOrderStore<LyraOrderRecord>(file);
    const v1 = venue({ store: s1 });
    await rpc(deployer.publicClient, 'evm_setAutomine', [false]);
    const err = await v1
      .placeOrder({
        clientOrderId: 'pend-1',
        instrument: call3500,
        side: 'buy',
        orderType: 'market',
        sizeBase: '1',
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotConfirmedError);
    s1.close(); // restarted: the old store closed (one writer per file), the new one reads the file
    const v2 = venue({
      store: new JsonFileOrderStore(file),
      ctx: ctxFor(ANVIL_DEV_KEYS[1]),
      receiptTimeoutSeconds: 5,
    });
    expect((await v2.getOrderByClientId('pend-1'))?.status).toBe('outcome-unknown');
    const spendOf = async (cid: string) => (await storedRecord<LyraOrderRecord>(file, cid))?.spend?.state;
    // Recorded before broadcast; the outcome is unknown, so it counts.
    expect(await spendOf('pend-1')).toBe('reserved');
    expect(
      await v2
        .placeOrder({
          clientOrderId: 'pend-2',
          instrument: call3500,
          side: 'buy',
          orderType: 'market',
          sizeBase: '1',
        })
        .catch((e: unknown) => e),
    ).toBeInstanceOf(NonceError);
    const hash = (err as NotConfirmedError).details?.txHash as Hex;
    await rpc(deployer.publicClient, 'anvil_dropTransaction', [hash]);
    await rpc(deployer.publicClient, 'evm_setAutomine', [true]);
    expect((await v2.cancelOrder('pend-1')).status).toBe('cancelled');
    // Its nonce went to the cancel: nothing can be pulled any more.
    expect(await spendOf('pend-1')).toBe('released');
    expect(await v2.fetchPositions()).toEqual([]);
    expect(
      (
        await v2.placeOrder({
          clientOrderId: 'pend-2',
          instrument: call3500,
          side: 'buy',
          orderType: 'market',
          sizeBase: '1',
        })
      ).status,
    ).toBe('filled');
    expect(await spendOf('pend-2')).toBe('committed');
  });

  it('a cancel that loses its nonce to the trade it cancels answers with the fill (the chain decides)', async () => {
    // A context of the trader that keeps what it broadcasts and notes what viem has read back by hash.
    const direct = http(chain.anvil.rpcUrl)({ retryCount: 0 }) as unknown as {
      request: (a: { method: string; params?: unknown }) => Promise<unknown>;
    };
    const raws: Hex[] = [];
    const seen = new Set<string>();
    const watched = createEvmContext({
      venue: 'lyra-local',
      chain: 'evm:31337',
      rpcUrls: [],
      privateKey: ANVIL_DEV_KEYS[1],
      pollingIntervalMs: 50,
      transport: custom(
        {
          async request({ method, params }) {
            if (method === 'eth_sendRawTransaction') raws.push((params as [Hex])[0]);
            const res = await direct.request({ method, params });
            if (method === 'eth_getTransactionByHash' && res)
              seen.add(String((params as [Hex])[0]).toLowerCase());
            return res;
          },
        },
        { retryCount: 0 },
      ),
    });
    const until = async <T>(read: () => T | undefined, what: string): Promise<T> => {
      for (let i = 0; i < 500; i++) {
        const v = read();
        if (v !== undefined) return v;
        await new Promise((r) => setTimeout(r, 10));
      }
      throw new Error(`timed out waiting for ${what}`);
    };
    const store = new MemoryOrderStore<LyraOrderRecord>();
    await rpc(deployer.publicClient, 'evm_setAutomine', [false]);
    const err = await venue({ store, ctx: watched })
      .placeOrder({
        clientOrderId: 'race-1',
        instrument: call3500,
        side: 'buy',
        orderType: 'market',
        sizeBase: '1',
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotConfirmedError);
    const trade = raws.at(-1) as Hex;
    const sentBefore = raws.length;
    const cancelling = venue({ store, ctx: watched, receiptTimeoutSeconds: 10 })
      .cancelOrder('race-1')
      .catch((e: unknown) => e);
    const cancelHash = keccak256(await until(() => raws[sentBefore], 'the cancel to be broadcast'));
    await until(() => (seen.has(cancelHash) ? true : undefined), 'the wait to see the cancel');
    // Another node still had the trade and mines it: the cancel's nonce is taken by the trade itself.
    await rpc(deployer.publicClient, 'anvil_dropTransaction', [cancelHash]);
    await rpc(deployer.publicClient, 'eth_sendRawTransaction', [trade]);
    await rpc(deployer.publicClient, 'evm_mine', []);
    const res = await cancelling;
    expect((res as { status?: string }).status, String(res)).toBe('filled');
    expect((await store.get('race-1'))?.status).toBe('filled');
  });

  it('a trade sped up outside its record (a re-signed copy at its nonce) is filled from that copy, not failed', async () => {
    const store = new MemoryOrderStore<LyraOrderRecord>();
    const v = venue({ store });
    await rpc(deployer.publicClient, 'evm_setAutomine', [false]);
    const err = await v
      .placeOrder({
        clientOrderId: 'sped-1',
        instrument: call3500,
        side: 'buy',
        orderType: 'market',
        sizeBase: '1',
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotConfirmedError);
    const sent = (await store.get('sped-1')) as LyraOrderRecord;
    let speedUp: Hex | undefined;
    const speeding = v.sender.replace({ hash: sent.txHash as Hex, nonce: sent.nonce as number }, 'speed-up', {
      timeoutMs: 10_000,
      onSigned: (i) => {
        speedUp = i.hash;
      },
    });
    for (
      let i = 0;
      i < 500 &&
      !(speedUp && (await trader.publicClient.getTransaction({ hash: speedUp }).catch(() => null)));
      i++
    )
      await new Promise((r) => setTimeout(r, 10));
    await rpc(deployer.publicClient, 'evm_mine', []);
    expect((await speeding).hash).toBe(speedUp);
    // The order's own hash is gone and its nonce used: the copy that took it bought the call.
    const o = await v.getOrderByClientId('sped-1');
    expect(o?.status).toBe('filled');
    expect(o?.venueOrderId).toBe(speedUp);
    expect(o?.filledSizeBase).toBe('1');
    expect((await v.fetchPositions()).map((p) => [p.instrument, p.sizeBase])).toEqual([[call3500, 1]]);
    expect((await store.get('sped-1'))?.spend?.state).toBe('committed');
  });

  it("a cancel that fails, then the chain read after it fails too, throws the cancel's error (the read's as context)", async () => {
    const faulty = await startFaultyRpc(chain.anvil.rpcUrl);
    try {
      const store = new MemoryOrderStore<LyraOrderRecord>();
      await rpc(deployer.publicClient, 'evm_setAutomine', [false]);
      const err = await venue({ store })
        .placeOrder({
          clientOrderId: 'cf-1',
          instrument: call3500,
          side: 'buy',
          orderType: 'market',
          sizeBase: '1',
        })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NotConfirmedError);
      // The RPC goes down as the cancel is broadcast: the cancel's fate is unknown (its bytes may have
      // left), and the read that follows it fails.
      const rpcTransport = http(faulty.url, { retryCount: 0 })({});
      const v = venue({
        store,
        ctx: createEvmContext({
          venue: 'lyra-local',
          chain: 'evm:31337',
          rpcUrls: [faulty.url],
          privateKey: ANVIL_DEV_KEYS[1],
          pollingIntervalMs: 50,
          transport: custom(
            {
              request: ({ method, params }) => {
                if (method === 'eth_sendRawTransaction') faulty.fail('500');
                return rpcTransport.request({ method, params });
              },
            },
            { retryCount: 0 },
          ),
        }),
      });
      const cancelErr = (await v.cancelOrder('cf-1').catch((e: unknown) => e)) as VenueError;
      faulty.fail(undefined);
      const cancelHash = (await store.get('cf-1'))?.cancelTxHash;
      expect(cancelHash).toBeDefined();
      expect(cancelErr).toBeInstanceOf(VenueError);
      // the cancel's error: its transaction and an unknown outcome, not the read's "not sent"
      expect(cancelErr.outcome, String(cancelErr)).toBe('unknown');
      expect(cancelErr.details.txHash).toBe(cancelHash);
      expect(cancelErr.clientOrderId).toBe('cf-1');
      expect(cancelErr.details.reconcileErrorCode).toBe('VENUE_NETWORK');
      expect(String(cancelErr.details.reconcileError)).toMatch(/HTTP request failed/);
      for (const secret of faulty.secrets) expect(everythingIn(cancelErr)).not.toContain(secret);
    } finally {
      faulty.fail(undefined);
      await faulty.close();
    }
  });

  it('spend cap: concurrent buys cannot pass it together, and a restart still counts the day', async () => {
    // A limit buy pulls at most limit × size plus its fee: 401.75 per call bought, against a cap of 700 a day.
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'xhedge-lyra-')), 'orders.json');
    const s1 = new JsonFileOrderStore<LyraOrderRecord>(file);
    const v1 = venue({ store: s1, spendCapPerDay: '700' });
    const buy = (v: LyraVenue, cid: string, sizeBase: string) =>
      v.placeOrder({
        clientOrderId: cid,
        instrument: call3500,
        side: 'buy',
        orderType: 'limit',
        sizeBase,
        limitPriceUsd: '400',
      });
    const results = await Promise.allSettled([buy(v1, 'cap-a', '1'), buy(v1, 'cap-b', '1')]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(refused).toHaveLength(1);
    const err = refused[0]?.reason as InvalidOrderError;
    expect(err).toBeInstanceOf(InvalidOrderError);
    expect(err.message).toMatch(/spend cap exceeded .* > cap 700000000000000000000 /);

    s1.close(); // restarted: the old store closed (one writer per file), the new one reads the file
    const v2 = venue({
      store: new JsonFileOrderStore(file),
      ctx: ctxFor(ANVIL_DEV_KEYS[1]),
      spendCapPerDay: '700',
    });
    await expect(buy(v2, 'cap-c', '1')).rejects.toThrow(/spend cap exceeded/);
    expect((await buy(v2, 'cap-d', '0.5')).status).toBe('filled');
  });

  it('createLyraVenue builds the venue from an operator venue config', async () => {
    const v = createLyraVenue(
      {
        id: 'lyra-local',
        chain: 'evm:31337',
        endpoints: { rpc: [chain.anvil.rpcUrl] },
        credentials: { privateKey: { env: 'XHEDGE_TEST_KEY' } },
        params: { ...fx.params },
      },
      { secrets: { env: { XHEDGE_TEST_KEY: ANVIL_DEV_KEYS[1] } }, store: new MemoryOrderStore() },
    );
    expect((await v.health()).ok).toBe(true);
    expect(v.capabilities.venueGreeks).toBe(true);
  });

  it('states as its collateral the quote asset its params name, the asset its balances are in', async () => {
    // a Lyra market quoted in sUSD (Optimism): the dry run locks and the planner reads collateral by this name
    const v = createLyraVenue(
      {
        id: 'lyra-susd',
        chain: 'evm:31337',
        endpoints: { rpc: [chain.anvil.rpcUrl] },
        credentials: { privateKey: { env: 'XHEDGE_TEST_KEY' } },
        params: { ...fx.params, quoteSymbol: 'sUSD' },
      },
      { secrets: { env: { XHEDGE_TEST_KEY: ANVIL_DEV_KEYS[1] } }, store: new MemoryOrderStore() },
    );
    expect(v.capabilities.collateral).toEqual(['sUSD']);
    expect((await v.fetchBalances()).map((b) => b.asset)).toContain('sUSD');
    // the shared defaults are left alone
    expect(LYRA_CAPABILITIES.collateral).toEqual(['USDC']);
  });

  it('close(): a venue rebuilt for new params opens beside the old one (the registry builds the new one first); the order file is released when the last of them closes; a store passed in stays open', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'xhedge-lyra-close-'));
    const lockFile = path.join(dataDir, 'lyra-local-orders.json.lock');
    const config = (params: Partial<LyraVenueParamsInput>) => ({
      id: 'lyra-local',
      chain: 'evm:31337' as const,
      endpoints: { rpc: [chain.anvil.rpcUrl] },
      credentials: { privateKey: { env: 'XHEDGE_TEST_KEY' } },
      params: { ...fx.params, ...params },
    });
    const deps = { secrets: { env: { XHEDGE_TEST_KEY: ANVIL_DEV_KEYS[1] } }, dataDir };
    const old = createLyraVenue(config({}), deps);
    const rebuilt = createLyraVenue(config({ receiptTimeoutSeconds: 7 }), deps);
    expect(JSON.parse(readFileSync(lockFile, 'utf8'))).toMatchObject({ pid: process.pid });
    await old.close();
    await old.close(); // idempotent: the rebuilt one keeps the file
    await expect(old.getOrderByClientId('cid-1')).rejects.toMatchObject({ code: 'ORDER_STORE_CLOSED' });
    expect(existsSync(lockFile)).toBe(true);
    expect(await rebuilt.getOrderByClientId('cid-1')).toBeNull();
    await rebuilt.close();
    expect(existsSync(lockFile)).toBe(false);
    const given = new JsonFileOrderStore<LyraOrderRecord>(path.join(dataDir, 'given.json'));
    await createLyraVenue(config({}), { ...deps, store: given }).close();
    expect(await given.list()).toEqual([]);
    given.close();
  });
});

describe('lyra: an RPC URL with an API key, the RPC failing', () => {
  let faulty: FaultyRpc;
  beforeAll(async () => {
    faulty = await startFaultyRpc(chain.anvil.rpcUrl);
  });
  afterAll(() => faulty?.close());

  it.each(['500', 'hang', 'close'] as const)(
    'every read and order path fails with a retryable venue error naming no part of the URL (%s)',
    async (fault) => {
      const store = new MemoryOrderStore<LyraOrderRecord>();
      const sent: LyraOrderRecord = {
        clientOrderId: 'leak-sent',
        instrument: call3500,
        side: 'buy',
        sizeBase: '1',
        reduceOnly: false,
        orderType: 'market',
        status: 'outcome-unknown',
        txHash: `0x${'ab'.repeat(32)}`,
        nonce: 0,
        filledSizeBase: '0',
        createdAtMs: 0,
        updatedAtMs: 0,
      };
      await store.put(sent.clientOrderId, sent);
      // Timeouts short enough for a test (the default is 10 s per request).
      const v = venue({
        store,
        receiptTimeoutSeconds: 2,
        ctx: createEvmContext({
          venue: 'lyra-local',
          chain: 'evm:31337',
          rpcUrls: [faulty.url],
          privateKey: ANVIL_DEV_KEYS[1],
          requestTimeoutMs: 300,
          pollingIntervalMs: 50,
        }),
      });
      const calls: [string, () => Promise<unknown>][] = [
        ['loadMarkets', () => v.loadMarkets()],
        ['fetchMarks', () => v.fetchMarks()],
        ['fetchGreeks', () => v.fetchGreeks()],
        ['compareGreeks', () => v.compareGreeks()],
        ['fetchPositions', () => v.fetchPositions()],
        ['fetchBalances', () => v.fetchBalances()],
        ['fetchSettlementPrices', () => v.fetchSettlementPrices([call3500])],
        ['fetchPoolNetDelta', () => v.fetchPoolNetDelta()],
        ['quoteHedge', () => v.quoteHedge({ instrument: call3500, side: 'buy', sizeBase: '1' })],
        [
          'placeOrder',
          () =>
            v.placeOrder({
              clientOrderId: 'leak-new',
              instrument: call3500,
              side: 'buy',
              orderType: 'market',
              sizeBase: '1',
            }),
        ],
        ['getOrderByClientId', () => v.getOrderByClientId('leak-sent')],
        ['cancelOrder', () => v.cancelOrder('leak-sent')],
        ['fetchFills', () => v.fetchFills()],
      ];
      expect(await rpcFaultProblems(faulty, fault, calls, () => v.health())).toEqual([]);
    },
  );
});
