import { type Balance, instrumentMeta, ManualClock } from '@xhedge/core';
import {
  ANVIL_DEV_KEYS,
  type EvmContext,
  ensureAllowance,
  MemoryOrderStore,
  rpc,
  TxSender,
} from '@xhedge/evm';
import { type LocalTestChain, startLocalTestChain } from '@xhedge/evm/testing';
import { bookEquity, RiskEngine } from '@xhedge/risk';
import { erc20Abi, maxUint256 } from 'viem';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { OPTION_TYPE, optionMarketAbi, optionTokenAbi } from './abi.ts';
import { LYRA_CAPABILITIES, LyraVenue } from './adapter.ts';
import { deployLyraFixture, type LyraFixture, lyraLiteFixtureAbi } from './fixture.ts';

// Base-collateralised short calls (SHORT_CALL_BASE, opened by another front end on the account): their
// collateral is coin, reported as a balance of the base asset, so the risk engine counts it as delta
// and values it at spot once; the book's delta is then the derivative of its equity. Through settlement the
// base the position gets back stays in that balance (locked, then in the wallet's base token) until it is
// moved out of the wallet.

/** The audit's repro: spot $3,000, vol 0.6, a board 90 days out (a short 3500 call's delta is about −0.35). */
const SPOT_USD = 3000;
const VOL = 0.6;
const E18 = 10n ** 18n;

let chain: LocalTestChain;
let deployer: EvmContext;
let trader: EvmContext;
let fx: LyraFixture;
let call3000: string;
let call3500: string;

beforeAll(async () => {
  chain = await startLocalTestChain('lyra-base-collateral');
  deployer = chain.ctxFor(ANVIL_DEV_KEYS[0]);
  trader = chain.ctxFor(ANVIL_DEV_KEYS[1]);
  fx = await deployLyraFixture(deployer, {
    markets: [
      { underlying: 'ETH', spotUsd: SPOT_USD, baseIv: VOL, expiryDays: 90, strikes: [3000, 3500] },
      // WBTC has 8 decimals (Lyra's amounts stay 18-decimal)
      { underlying: 'BTC', spotUsd: 65_000, baseIv: VOL, expiryDays: 90, strikes: [70_000], baseDecimals: 8 },
    ],
    traders: [trader.account.address],
  });
  await ensureAllowance(new TxSender({ ctx: trader }), {
    token: fx.params.quoteAsset,
    spender: fx.params.markets[0]!.optionMarket,
    amount: 10n ** 30n,
    policy: { mode: 'capped', capAmount: 10n ** 30n },
  });
  const ids = (await venue().loadMarkets()).map((m) => m.instrument.id);
  call3000 = ids.find((i) => i.endsWith(':3000:C')) ?? '';
  call3500 = ids.find((i) => i.endsWith(':3500:C')) ?? '';
  await chain.snapshot();
});
afterAll(async () => {
  await chain?.stop();
});
beforeEach(() => chain.fresh());

const venue = () =>
  new LyraVenue(
    'lyra-base',
    { ...fx.params, approval: 'capped', approvalCap: '1000000000' },
    {
      ctx: trader,
      store: new MemoryOrderStore(),
    },
  );
const market = (underlying = 'ETH') => {
  const m = fx.params.markets.find((x) => x.underlying === underlying);
  if (!m) throw new Error(`no ${underlying} market`);
  return m;
};

/**
 * A base-collateralised short call of the trader, written on the OptionToken as another front end
 * would have opened it (the lite OptionMarket opens none); its position id. Strike ids: ETH 1 is the
 * 3000, 2 the 3500; BTC 1 the 70000.
 */
async function shortCallBase(strikeId: bigint, amount: bigint, collateral: bigint, underlying = 'ETH') {
  const hash = await deployer.walletClient.writeContract({
    address: market(underlying).optionPositions,
    abi: lyraLiteFixtureAbi,
    functionName: 'liteWritePosition',
    args: [
      trader.account.address,
      { positionId: 0n, strikeId, optionType: OPTION_TYPE.SHORT_CALL_BASE, amount, collateral, state: 1 },
    ],
  });
  expect((await deployer.publicClient.waitForTransactionReceipt({ hash })).status).toBe('success');
  const ps = await trader.publicClient.readContract({
    address: market(underlying).optionPositions,
    abi: optionTokenAbi,
    functionName: 'getOwnerPositions',
    args: [trader.account.address],
  });
  // the OptionToken lists an owner's positions in the order they were written: the last is this one
  return ps.at(-1)?.positionId ?? 0n;
}

/** A quote-collateralised short call opened straight on the OptionMarket, as another front end would. */
async function shortCallQuote(strikeId: bigint, amount: bigint, setCollateralTo: bigint) {
  const hash = await trader.walletClient.writeContract({
    address: market().optionMarket,
    abi: optionMarketAbi,
    functionName: 'openPosition',
    args: [
      {
        strikeId,
        positionId: 0n,
        iterations: 1n,
        optionType: OPTION_TYPE.SHORT_CALL_QUOTE,
        amount,
        setCollateralTo,
        minTotalCost: 0n,
        maxTotalCost: maxUint256,
        referrer: '0x0000000000000000000000000000000000000000',
      },
    ],
  });
  expect((await trader.publicClient.waitForTransactionReceipt({ hash })).status).toBe('success');
}

/** What a runtime keeps of a venue's balances: the wallet's gas money is not the book's (planner's isGasMoney). */
const bookBalances = (bs: Balance[]) =>
  bs.filter((b) => b.asset !== LYRA_CAPABILITIES.gasAsset || LYRA_CAPABILITIES.collateral.includes(b.asset));

describe('lyra: base-collateralised short calls', () => {
  it('report their collateral as a balance of the base asset, exact, locked, and not in marginUsd; quote shorts keep marginUsd', async () => {
    // 2 short 3500 calls holding 2 ETH, 0.1 short 3000 call holding 0.123456789012345678 ETH (base), and
    // 1 short 3500 call holding 5000 USDC (quote) on the same strike as the first
    await shortCallBase(2n, 2n * E18, 2n * E18);
    await shortCallBase(1n, E18 / 10n, 123_456_789_012_345_678n);
    await shortCallQuote(2n, E18, 5000n * E18);
    const v = venue();
    const positions = await v.fetchPositions();
    expect(positions.map((p) => [p.instrument, p.sizeBase, p.marginUsd]).sort()).toEqual(
      [
        // the quote short's collateral alone (the 2 ETH is no longer $6,000 in it)
        [call3500, -3, 5000],
        [call3000, -0.1, undefined],
      ].sort(),
    );
    const balances = await v.fetchBalances();
    // WETH (the ERC-20 Lyra holds), not ETH: that name is the wallet's native gas money
    const locked = balances.filter((b) => b.asset === 'WETH');
    expect(locked).toHaveLength(1);
    expect(locked[0]).toMatchObject({
      venue: 'lyra-base',
      amount: Number('2.123456789012345678'),
      available: 0,
    });
    // apart from the wallet's native gas ETH and its USDC, which are reported as before
    expect(balances.filter((b) => b.asset === 'ETH')).toHaveLength(1);
    expect(balances.filter((b) => b.asset === 'USDC')).toHaveLength(1);
    // coin, not USD: spot moves neither the balance nor the quote short's margin
    await fx.setSpot('ETH', 3300);
    expect((await v.fetchBalances()).find((b) => b.asset === 'WETH')?.amount).toBe(
      Number('2.123456789012345678'),
    );
    expect((await v.fetchPositions()).find((p) => p.instrument === call3500)?.marginUsd).toBe(5000);
  });

  it("the risk engine's delta of the book is the derivative of its equity (2 short 3500 calls on 2 ETH at $3,000)", async () => {
    await shortCallBase(2n, 2n * E18, 2n * E18);
    const v = venue();
    const clock = new ManualClock(Date.now());
    /** Spot set on chain, the adapter read, the snapshot and equity built as a runtime's tick does. */
    const valueAt = async (spotUsd: number) => {
      await fx.setSpot('ETH', spotUsd);
      const positions = await v.fetchPositions();
      const balances = bookBalances(await v.fetchBalances());
      const marks = await v.fetchMarks(positions.map((p) => p.instrument));
      const engine = new RiskEngine({ clock, staleAfterMs: 3_600_000 });
      engine.setMarket('ETH', { spotUsd, volDecimal: VOL, rateDecimal: 0, asOfMs: clock.nowMs() });
      engine.setBook({ positions, balances });
      engine.updateMarks(marks);
      const snap = engine.snapshot({ scenarios: false });
      return { snap, equity: bookEquity(snap, { positions, balances, marks }) };
    };
    const h = 1;
    const up = await valueAt(SPOT_USD + h);
    const down = await valueAt(SPOT_USD - h);
    const here = await valueAt(SPOT_USD);
    expect(here.equity.unvalued).toEqual([]);
    expect(up.equity.unvalued).toEqual([]);
    const slope = (up.equity.equityUsd - down.equity.equityUsd) / (2 * h);
    const eth = here.snap.underlyings.ETH;
    const optionDelta = eth?.optionDeltaBase ?? Number.NaN;
    // the two short calls' delta is about −0.70; with the 2 ETH held, the book is long about 1.30
    expect(optionDelta).toBeGreaterThan(-0.8);
    expect(optionDelta).toBeLessThan(-0.6);
    expect(eth?.delta).toBeCloseTo(2 + optionDelta, 9);
    expect(slope).toBeCloseTo(eth?.delta ?? Number.NaN, 4);
    // the coin is counted once: as coin in the model value, not again as margin
    expect(here.equity.marginUsd).toBe(0);
  });
});

/** Each of the book's underlyings' delta as the risk engine reads the venue (a runtime's tick, at the spots given). */
async function bookDelta(v: LyraVenue, spots: Record<string, number>): Promise<Record<string, number>> {
  const clock = new ManualClock(Date.now());
  const positions = await v.fetchPositions();
  const balances = bookBalances(await v.fetchBalances());
  const engine = new RiskEngine({ clock, staleAfterMs: 3_600_000 });
  for (const [u, spotUsd] of Object.entries(spots))
    engine.setMarket(u, { spotUsd, volDecimal: VOL, rateDecimal: 0, asOfMs: clock.nowMs() });
  engine.setBook({ positions, balances });
  engine.updateMarks(await v.fetchMarks(positions.map((p) => p.instrument)));
  const snap = engine.snapshot({ scenarios: false });
  return Object.fromEntries(Object.keys(spots).map((u) => [u, snap.underlyings[u]?.delta ?? Number.NaN]));
}

describe('lyra: base collateral through settlement', () => {
  it('a covered call settled in the money: the base it gets back stays in the book (locked, then in the wallet) until it is moved out', async () => {
    const v = venue();
    // 2 short 3500 calls on 2 ETH; the market keeps a 1% base settlement fee (v1-core staticBaseSettlementFee)
    const positionId = await shortCallBase(2n, 2n * E18, 2n * E18);
    await fx.setBaseSettlementFee('ETH', 0.01);
    const weth = async () => (await v.fetchBalances()).filter((b) => b.asset === 'WETH');
    expect(await weth()).toMatchObject([{ amount: 2, available: 0 }]);
    // expired and settled at 4000: the pool takes (4000 − 3500) / 4000 / 0.99 ETH per call
    const expiryMs = instrumentMeta(call3500).expiryMs ?? 0;
    await rpc(deployer.publicClient, 'evm_setNextBlockTimestamp', [expiryMs / 1000 + 60]);
    await fx.setSpot('ETH', 4000);
    await fx.settleBoard('ETH');
    const ratio = (((500n * E18 * E18) / (4000n * E18)) * E18) / (E18 - E18 / 100n);
    const back = 2n * E18 - (ratio * 2n * E18) / E18;
    expect(back).toBe(1_747_474_747_474_747_476n);
    const backEth = Number('1.747474747474747476');
    // not paid yet: what comes back is still locked; the call is no longer an option (its payoff is taken)
    expect(await weth()).toMatchObject([{ amount: backEth, available: 0 }]);
    expect(await v.fetchPositions()).toEqual([]);
    const delta = (await bookDelta(v, { ETH: 4000 })).ETH;
    expect(delta).toBeCloseTo(backEth, 12);
    // a keeper settles it: the base lands in the wallet, and the book holds the same ETH, now available
    await fx.settleOptions('ETH', [positionId]);
    const wallet = await trader.publicClient.readContract({
      address: await trader.publicClient.readContract({
        address: market().optionMarket,
        abi: optionMarketAbi,
        functionName: 'baseAsset',
      }),
      abi: erc20Abi,
      functionName: 'balanceOf',
      args: [trader.account.address],
    });
    expect(wallet).toBe(back);
    expect(await weth()).toMatchObject([{ venue: 'lyra-base', amount: backEth, available: backEth }]);
    expect((await bookDelta(v, { ETH: 4000 })).ETH).toBeCloseTo(delta ?? Number.NaN, 12);
    // moved out of the wallet: no longer the venue's
    const wethToken = await trader.publicClient.readContract({
      address: market().optionMarket,
      abi: optionMarketAbi,
      functionName: 'baseAsset',
    });
    const hash = await trader.walletClient.writeContract({
      address: wethToken,
      abi: erc20Abi,
      functionName: 'transfer',
      args: [deployer.account.address, back],
    });
    expect((await trader.publicClient.waitForTransactionReceipt({ hash })).status).toBe('success');
    expect(await weth()).toEqual([]);
  });

  it('a base token of 8 decimals (WBTC): the collateral is exact in Lyra’s 18 until paid, then what the wallet holds', async () => {
    const v = venue();
    // out of the money at settlement: all of it comes back, cut to the token's 8 decimals
    const positionId = await shortCallBase(1n, E18 / 2n, 123_456_789_012_345_678n, 'BTC');
    const btc = async () => (await v.fetchBalances()).filter((b) => b.asset === 'BTC');
    expect(await btc()).toMatchObject([{ amount: Number('0.123456789012345678'), available: 0 }]);
    const expiryMs =
      instrumentMeta(
        (await v.loadMarkets()).find((m) => m.instrument.underlying === 'BTC')?.instrument.id ?? '',
      ).expiryMs ?? 0;
    await rpc(deployer.publicClient, 'evm_setNextBlockTimestamp', [expiryMs / 1000 + 60]);
    await fx.setSpot('BTC', 60_000);
    await fx.settleBoard('BTC');
    expect(await btc()).toMatchObject([{ amount: Number('0.123456789012345678'), available: 0 }]);
    await fx.settleOptions('BTC', [positionId]);
    expect(await btc()).toMatchObject([{ amount: 0.12345678, available: 0.12345678 }]);
    expect(await v.fetchPositions()).toEqual([]);
    expect((await bookDelta(v, { BTC: 60_000 })).BTC).toBeCloseTo(0.12345678, 12);
  });
});
