import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  ANVIL_DEV_KEYS,
  createEvmContext,
  type EvmContext,
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
} from '@xhedge/evm/testing';
import {
  InsufficientFundsError,
  InvalidOrderError,
  NonceError,
  NotConfirmedError,
  RevertedError,
  VenueError,
} from '@xhedge/venue';
import { runVenueConformance } from '@xhedge/venue/conformance';
import {
  custom,
  encodeAbiParameters,
  encodeFunctionData,
  erc20Abi,
  getAddress,
  type Hex,
  http,
  keccak256,
  parseAbi,
  parseAbiParameters,
  parseEther,
  toFunctionSelector,
  zeroAddress,
} from 'viem';
import { generatePrivateKey } from 'viem/accounts';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { exchangeRouterAbi, gmxErrorAbi, ORDER_TYPE, readerAbi } from './abi.ts';
import { createGmxVenue, type GmxOrderRecord, GmxVenue } from './adapter.ts';
import { createOrderCallData } from './create-order.ts';
import { parseGmxEvents } from './events.ts';
import type { GmxFixture } from './fixture.ts';
import { gmxFixtureAbi } from './fixture-abi.ts';
import type { GmxKeeper, GmxKeeperResult } from './keeper.ts';
import type { GmxVenueParamsInput } from './params.ts';
import { readPositionInfos, startGmxTestChain } from './test-chain.ts';
import { usd30, usdToGmxPrice } from './units.ts';

let chain: LocalTestChain;
let deployer: EvmContext;
let trader: EvmContext;
let fx: GmxFixture;
let keeper: GmxKeeper;
let keeperResults: GmxKeeperResult[];

const ctxFor = (key: Hex) => chain.ctxFor(key);

beforeAll(async () => {
  const t = await startGmxTestChain('gmx-local');
  ({ chain, deployer, fx, keeper, keeperResults } = t);
  trader = t.traders[0] as EvmContext;
});
afterAll(async () => {
  await chain?.stop();
});

const freshChain = () => chain.fresh();

function venue(
  opts: {
    store?: MemoryOrderStore<GmxOrderRecord> | JsonFileOrderStore<GmxOrderRecord>;
    ctx?: EvmContext;
    receiptTimeoutSeconds?: number;
    spendCapPerDay?: string;
    /** @defaultValue capped at 1 000 000 USDC */
    approval?: 'exact' | 'capped';
    /** Settings over the fixture's. */
    params?: Partial<GmxVenueParamsInput>;
  } = {},
) {
  const approval = opts.approval ?? 'capped';
  return new GmxVenue(
    'gmx-local',
    {
      ...fx.params,
      approval,
      ...(approval === 'capped' ? { approvalCap: '1000000' } : {}),
      receiptTimeoutSeconds: opts.receiptTimeoutSeconds ?? 1,
      ...(opts.spendCapPerDay !== undefined ? { spendCapPerDay: opts.spendCapPerDay } : {}),
      ...opts.params,
    },
    { ctx: opts.ctx ?? trader, store: opts.store ?? new MemoryOrderStore() },
  );
}

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

/** Simulated time for the suite: mine what is pending and let the keeper execute. */
async function advance() {
  await rpc(deployer.publicClient, 'evm_setAutomine', [true]);
  // Turning automine back on does not promise that what waits in the mempool is mined before the
  // keeper reads the orders (a flake: the order stayed acknowledged); mine it explicitly.
  await rpc(deployer.publicClient, 'evm_mine', []);
  await keeper.runOnce();
}

runVenueConformance('gmx (anvil)', async () => {
  await freshChain();
  return {
    venue: venue(),
    instrument: 'BTC-USD:PERP',
    size: '0.01',
    advance,
    makeTimeout: async () => {
      // Blocks stop being mined: the order transaction reaches the mempool but its receipt times out.
      await rpc(deployer.publicClient, 'evm_setAutomine', [false]);
    },
    settleMs: 10_000,
    pollStepMs: 250,
  };
});

describe('gmx adapter specifics', () => {
  beforeEach(freshChain);

  /** A new account with ETH for gas and `usdc` of collateral, and no allowance to anything. */
  async function freshTraderWithoutApprovals(usdc: bigint): Promise<EvmContext> {
    const ctx = ctxFor(generatePrivateKey());
    await rpc(deployer.publicClient, 'anvil_setBalance', [
      ctx.account.address,
      `0x${parseEther('10').toString(16)}`,
    ]);
    const hash = await deployer.walletClient.sendTransaction({
      to: fx.params.collateralAsset,
      data: encodeFunctionData({
        abi: parseAbi(['function mint(address to, uint256 amount)']),
        functionName: 'mint',
        args: [ctx.account.address, usdc],
      }),
    });
    expect((await deployer.publicClient.waitForTransactionReceipt({ hash })).status).toBe('success');
    return ctx;
  }

  const allowanceOf = (ctx: EvmContext, spender: Hex) =>
    ctx.publicClient.readContract({
      address: fx.params.collateralAsset,
      abi: erc20Abi,
      functionName: 'allowance',
      args: [ctx.account.address, spender],
    });

  it.each([
    // capped: approves the cap once (1 000 000 USDC), the order pulls its collateral out of it.
    { approval: 'capped' as const, after: (collateral: bigint) => 1_000_000_000_000n - collateral },
    // exact: approves exactly the collateral, which the order pulls: nothing is left standing.
    { approval: 'exact' as const, after: () => 0n },
  ])(
    'a fresh account with no approvals: the adapter approves the Router ($approval), never the ExchangeRouter',
    async ({ approval, after }) => {
      const fresh = await freshTraderWithoutApprovals(10_000_000_000n);
      expect(await allowanceOf(fresh, fx.params.router)).toBe(0n);
      expect(await allowanceOf(fresh, fx.params.exchangeRouter)).toBe(0n);
      const store = new MemoryOrderStore<GmxOrderRecord>();
      const v = venue({ ctx: fresh, store, approval });
      const placed = await v.placeOrder({
        clientOrderId: `fresh-${approval}`,
        instrument: 'ETH-USD:PERP',
        side: 'buy',
        orderType: 'market',
        sizeBase: '0.1',
      });
      expect(placed.status).toBe('acknowledged');
      await keeper.runOnce();
      expect(keeperResults.at(-1)).toMatchObject({
        key: placed.venueOrderId,
        outcome: 'executed',
        account: fresh.account.address,
      });
      expect((await v.getOrderByClientId(`fresh-${approval}`))?.status).toBe('filled');
      const [pos] = await v.fetchPositions();
      expect(pos).toMatchObject({ instrument: 'ETH-USD:PERP', sizeBase: 0.1 });
      // 0.1 ETH × 3 500 USD / leverage 2 = 175 USDC, pulled from the wallet through Router.pluginTransfer.
      const collateral = 175_000_000n;
      expect((await store.get(`fresh-${approval}`))?.spend?.amountBase).toBe(collateral.toString());
      expect(await allowanceOf(fresh, fx.params.router)).toBe(after(collateral));
      expect(await allowanceOf(fresh, fx.params.exchangeRouter)).toBe(0n);
    },
  );

  it('an order transaction that succeeded without an OrderCreated event the adapter can read is outcome-unknown, not rejected', async () => {
    // a wrong eventEmitter setting: the order exists on chain, the adapter cannot find its key
    const v = venue({ params: { eventEmitter: '0x000000000000000000000000000000000000dEaD' } });
    const placed = await v.placeOrder({
      clientOrderId: 'no-event-1',
      instrument: 'BTC-USD:PERP',
      side: 'buy',
      orderType: 'market',
      sizeBase: '0.1',
    });
    // 'rejected' told execution nothing traded, and the planner hedged again beside a live order
    expect(placed.status).toBe('outcome-unknown');
    expect(placed.error).toMatch(/no OrderCreated event/);
    expect((await v.getOrderByClientId('no-event-1'))?.status).toBe('outcome-unknown');
  });

  it('the same client order id placed twice at once sends one order transaction', async () => {
    const store = new MemoryOrderStore<GmxOrderRecord>();
    const v = venue({ store });
    const req = {
      clientOrderId: 'dup-at-once',
      instrument: 'BTC-USD:PERP',
      side: 'buy' as const,
      orderType: 'market' as const,
      sizeBase: '0.1',
    };
    const createdCount = async () =>
      parseGmxEvents(
        await trader.publicClient.getLogs({ address: fx.params.eventEmitter, fromBlock: 0n }),
        fx.params.eventEmitter,
        ['OrderCreated'],
      ).length;
    const before = await createdCount();
    const [a, b] = await Promise.all([v.placeOrder(req), v.placeOrder(req)]);
    expect(a.venueOrderId).toBe(b.venueOrderId);
    expect((await createdCount()) - before).toBe(1);
  });

  it('the keeper cancels an order whose acceptable price the oracle breached; collateral comes back', async () => {
    const store = new MemoryOrderStore<GmxOrderRecord>();
    const v = venue({ store });
    const usdcBefore = (await v.fetchBalances()).find((b) => b.asset === 'USDC')?.amount ?? 0;
    const placed = await v.placeOrder({
      clientOrderId: 'breach-1',
      instrument: 'BTC-USD:PERP',
      side: 'buy',
      orderType: 'market',
      sizeBase: '0.5',
    });
    expect(placed.status).toBe('acknowledged');
    expect(placed.venueOrderId).toMatch(/^0x[0-9a-f]{64}$/);
    await fx.setPrice('BTC', 95_000 * 1.02); // above the 50 bps acceptable price of a buy
    await keeper.runOnce();
    const o = await v.getOrderByClientId('breach-1');
    expect(o?.status).toBe('cancelled');
    // As upstream's OrderHandler._handleOrderError: no reason string, the custom error in reasonBytes.
    const [cancelled] = parseGmxEvents(
      await trader.publicClient.getLogs({ address: fx.params.eventEmitter, fromBlock: 0n }),
      fx.params.eventEmitter,
      ['OrderCancelled'],
    );
    expect(cancelled?.items.string.get('reason')).toBe('');
    // The adapter and the keeper decode it: the price paid (max) and the order's acceptable price.
    const why = `OrderNotFulfillableAtAcceptablePrice(${usdToGmxPrice(95_000 * 1.02, 8)}, ${(usdToGmxPrice(95_000, 8) * 10_050n) / 10_000n})`;
    expect(cancelled?.items.bytes.get('reasonBytes')?.slice(0, 10)).toBe(
      toFunctionSelector('OrderNotFulfillableAtAcceptablePrice(uint256,uint256)'),
    );
    // What the keeper reports from the receipt's events.
    expect(keeperResults.at(-1)).toMatchObject({
      key: placed.venueOrderId,
      outcome: 'cancelled',
      account: trader.account.address,
      reason: why,
    });
    expect(o?.error).toBe(why);
    expect(o?.filledSizeBase).toBe('0');
    expect(await v.fetchPositions()).toEqual([]);
    const usdcAfter = (await v.fetchBalances()).find((b) => b.asset === 'USDC')?.amount ?? 0;
    expect(usdcAfter).toBeCloseTo(usdcBefore, 6);
    // The collateral left the wallet when the order was created: it stays counted against the daily cap.
    expect((await store.get('breach-1'))?.spend).toMatchObject({
      token: fx.params.collateralAsset.toLowerCase(),
      amountBase: '23750000000', // 0.5 BTC × 95 000 USD / leverage 2, in 6-decimal units
      state: 'committed',
    });
  });

  it('fills at the oracle price, nets long and short, and reports USD-30 sizes in base units', async () => {
    const v = venue();
    await v.placeOrder({
      clientOrderId: 'long-1',
      instrument: 'ETH-USD:PERP',
      side: 'buy',
      orderType: 'market',
      sizeBase: '2',
    });
    await keeper.runOnce();
    const filled = await v.getOrderByClientId('long-1');
    expect(filled?.status).toBe('filled');
    expect(keeperResults.at(-1)).toMatchObject({
      key: filled?.venueOrderId,
      outcome: 'executed',
      sizeDeltaUsd30: 7000n * 10n ** 30n,
    });
    expect(Number(filled?.avgFillPriceUsd)).toBeCloseTo(3500, 6);
    await fx.setPrice('ETH', 3600);
    await v.placeOrder({
      clientOrderId: 'sell-1',
      instrument: 'ETH-USD:PERP',
      side: 'sell',
      orderType: 'market',
      sizeBase: '0.5',
    });
    await keeper.runOnce();
    const pos = await v.fetchPositions();
    expect(pos).toHaveLength(1);
    expect(pos[0]?.sizeBase).toBeCloseTo(1.5, 12);
    expect(pos[0]?.entryPriceUsd).toBeCloseTo(3500, 6);
    const fills = await v.fetchFills();
    expect(fills.map((f) => [f.clientOrderId, f.side, f.sizeBase])).toEqual([
      ['long-1', 'buy', '2'],
      ['sell-1', 'sell', '0.5'],
    ]);
    expect(fills[0]?.feeUsd).toBeCloseTo(3500 * 2 * 0.0005, 6);
  });

  it('decodes Reader.getOrder and getAccountPositions in the gmx-synthetics layout (pendingImpactAmount 0)', async () => {
    const v = venue();
    const placed = await v.placeOrder({
      clientOrderId: 'layout-1',
      instrument: 'ETH-USD:PERP',
      side: 'buy',
      orderType: 'market',
      sizeBase: '2',
    });
    const key = placed.venueOrderId as Hex;
    const read = { address: fx.params.reader, abi: readerAbi } as const;
    const order = await trader.publicClient.readContract({
      ...read,
      functionName: 'getOrder',
      args: [fx.params.dataStore, key],
    });
    // Every field decoded at its own offset: a struct shifted by one field would misplace these.
    expect(order.addresses).toMatchObject({
      account: trader.account.address,
      receiver: trader.account.address,
      cancellationReceiver: trader.account.address,
      callbackContract: zeroAddress,
      uiFeeReceiver: zeroAddress,
      initialCollateralToken: getAddress(fx.params.collateralAsset),
      swapPath: [],
    });
    expect(order.numbers).toMatchObject({
      orderType: ORDER_TYPE.MarketIncrease,
      decreasePositionSwapType: 0,
      sizeDeltaUsd: 7000n * 10n ** 30n,
      initialCollateralDeltaAmount: 3_500_000_000n, // 7 000 USD / leverage 2, as the vault received it
      triggerPrice: 0n,
      callbackGasLimit: 0n,
      minOutputAmount: 0n,
      validFromTime: 0n,
      srcChainId: BigInt(await trader.publicClient.getChainId()),
    });
    expect(order.numbers.updatedAtTime).toBeGreaterThan(0n);
    expect(order.flags).toEqual({
      isLong: true,
      shouldUnwrapNativeToken: false,
      isFrozen: false,
      autoCancel: false,
    });
    expect(order._dataList).toEqual([]);
    await keeper.runOnce();
    const executed = keeperResults.at(-1);
    expect(executed).toMatchObject({ key, outcome: 'executed' });
    const receipt = await trader.publicClient.getTransactionReceipt({ hash: executed?.txHash as Hex });
    const block = await trader.publicClient.getBlock({ blockNumber: receipt.blockNumber });
    const positions = await trader.publicClient.readContract({
      ...read,
      functionName: 'getAccountPositions',
      args: [fx.params.dataStore, trader.account.address, 0n, 10n],
    });
    expect(positions).toHaveLength(1);
    expect(positions[0]?.addresses).toEqual({
      account: trader.account.address,
      market: getAddress(
        (await v.loadMarkets()).find((m) => m.instrument.id === 'ETH-USD:PERP')?.venueSymbol ?? '',
      ),
      collateralToken: getAddress(fx.params.collateralAsset),
    });
    expect(positions[0]?.numbers).toEqual({
      sizeInUsd: 7000n * 10n ** 30n,
      sizeInTokens: 2n * 10n ** 18n,
      collateralAmount: 3_496_500_000n, // less the 3.5 USD position fee
      pendingImpactAmount: 0n,
      borrowingFactor: 0n,
      fundingFeeAmountPerSize: 0n,
      longTokenClaimableFundingAmountPerSize: 0n,
      shortTokenClaimableFundingAmountPerSize: 0n,
      increasedAtTime: block.timestamp,
      decreasedAtTime: 0n,
    });
    expect(positions[0]?.flags).toEqual({ isLong: true });
    // Gone from the order list once executed: Reader.getOrder returns the zero struct.
    const gone = await trader.publicClient.readContract({
      ...read,
      functionName: 'getOrder',
      args: [fx.params.dataStore, key],
    });
    expect(gone.addresses.account).toBe(zeroAddress);
    expect((await v.getOrderByClientId('layout-1'))?.status).toBe('filled');
  });

  /** What book equity counts of this venue: wallet USDC + collateral in positions + their P&L. */
  async function equityParts(v: GmxVenue) {
    const walletUsd = (await v.fetchBalances()).find((b) => b.asset === 'USDC')?.amount ?? 0;
    const positions = await v.fetchPositions();
    const marginUsd = positions.reduce((a, p) => a + (p.marginUsd ?? 0), 0);
    const pnlUsd = positions.reduce((a, p) => a + (p.unsettledPnlUsd ?? 0), 0);
    return { walletUsd, marginUsd, pnlUsd, positions, equityUsd: walletUsd + marginUsd + pnlUsd };
  }

  it('reports the collateral sent into a position as marginUsd: opening costs equity only the fee', async () => {
    const v = venue();
    const before = await equityParts(v);
    expect(before.positions).toEqual([]);
    await v.placeOrder({
      clientOrderId: 'margin-1',
      instrument: 'ETH-USD:PERP',
      side: 'buy',
      orderType: 'market',
      sizeBase: '2',
    });
    await keeper.runOnce();
    const feeUsd = (await v.fetchFills()).reduce((a, f) => a + f.feeUsd, 0);
    expect(feeUsd).toBeCloseTo(7000 * 0.0005, 9);
    const after = await equityParts(v);
    // 2 ETH at 3 500 with leverage 2: 3 500 USDC left the wallet into the position, less the fee.
    const collateralUsd = 3500;
    expect(after.walletUsd).toBeCloseTo(before.walletUsd - collateralUsd, 6);
    expect(after.positions).toHaveLength(1);
    expect(after.positions[0]).toMatchObject({
      instrument: 'ETH-USD:PERP',
      sizeBase: 2,
      entryPriceUsd: 3500,
    });
    expect(after.marginUsd).toBeCloseTo(collateralUsd - feeUsd, 9);
    expect(after.pnlUsd).toBe(0);
    expect(after.equityUsd).toBeCloseTo(before.equityUsd - feeUsd, 6);
    // Marked up 100: the P&L moves equity, the margin stays.
    await fx.setPrice('ETH', 3600);
    const up = await equityParts(v);
    expect(up.pnlUsd).toBeCloseTo(200, 9);
    expect(up.marginUsd).toBe(after.marginUsd);
    expect(up.equityUsd).toBeCloseTo(before.equityUsd - feeUsd + 200, 6);
    // Closing brings collateral + P&L − the closing fee back into the wallet; nothing is counted twice.
    await v.placeOrder({
      clientOrderId: 'margin-2',
      instrument: 'ETH-USD:PERP',
      side: 'sell',
      orderType: 'market',
      sizeBase: '2',
    });
    await keeper.runOnce();
    const closed = await equityParts(v);
    const fees = (await v.fetchFills()).reduce((a, f) => a + f.feeUsd, 0);
    expect(closed.positions).toEqual([]);
    expect(closed.walletUsd).toBeCloseTo(before.walletUsd - fees + 200, 6);
  });

  it('with a long and a short open in one market: P&L by side, margin of both, and size 0 when they cancel', async () => {
    const v = venue();
    const before = await equityParts(v);
    const order = async (cid: string, side: 'buy' | 'sell', sizeBase: string) => {
      await v.placeOrder({
        clientOrderId: cid,
        instrument: 'ETH-USD:PERP',
        side,
        orderType: 'market',
        sizeBase,
      });
      await keeper.runOnce();
      expect((await v.getOrderByClientId(cid))?.status).toBe('filled');
    };
    await order('both-1', 'sell', '0.5'); // short 0.5 at 3 500 (sold for 1 750)
    await fx.setPrice('ETH', 3600);
    await order('both-2', 'buy', '1'); // the short does not cover 1: a long 1 at 3 600 opens beside it
    let parts = await equityParts(v);
    expect(parts.positions).toHaveLength(1);
    expect(parts.positions[0]?.sizeBase).toBeCloseTo(0.5, 12);
    // long 1 × 3600 − 3600 = 0, short 1750 − 0.5 × 3600 = −50; the net view would say
    // (3600 − (1750 + 3600) / 1.5) × 0.5 = +16.67.
    expect(parts.pnlUsd).toBeCloseTo(-50, 9);
    expect(parts.positions[0]?.entryPriceUsd).toBeCloseTo(5350 / 1.5, 9);
    await fx.setPrice('ETH', 3400);
    await order('both-3', 'sell', '0.5'); // reduces the long to 0.5: long and short cancel
    parts = await equityParts(v);
    expect(parts.positions).toHaveLength(1);
    expect(parts.positions[0]).toMatchObject({ instrument: 'ETH-USD:PERP', sizeBase: 0 });
    // At 3 400: long 0.5 × 3400 − 1800 = −100, short 1750 − 0.5 × 3400 = +50.
    expect(parts.pnlUsd).toBeCloseTo(-50, 9);
    const fees = (await v.fetchFills()).reduce((a, f) => a + f.feeUsd, 0);
    expect(fees).toBeCloseTo((1750 + 3600 + 1800) * 0.0005, 9);
    // Collateral: short 875 − 0.875; long 1 800 − 1.8, then the half sold realized −100 and paid 0.9
    // into the position's collateral (the wallet got nothing back).
    expect(parts.marginUsd).toBeCloseTo(875 - 0.875 + (1800 - 1.8 - 100 - 0.9), 6);
    // Trading P&L: long bought 1 at 3 600, marked or sold at 3 400 (−200); short sold at 3 500 (+50).
    expect(parts.equityUsd).toBeCloseTo(before.equityUsd - fees - 200 + 50, 6);
  });

  it("a sell past the long opens a short of its whole size beside it: the quote's lockedCollateralUsd is the collateral of all of it, what the order pulls", async () => {
    const store = new MemoryOrderStore<GmxOrderRecord>();
    const v = venue({ store });
    const quote = (side: 'buy' | 'sell', sizeBase: string) =>
      v.quoteHedge({ instrument: 'ETH-USD:PERP', side, sizeBase });
    // nothing held: a buy of 1 ETH at 3 500 with leverage 2 posts 1 750 USDC
    expect((await quote('buy', '1')).lockedCollateralUsd).toBe(1750);
    await v.placeOrder({
      clientOrderId: 'lock-long',
      instrument: 'ETH-USD:PERP',
      side: 'buy',
      orderType: 'market',
      sizeBase: '2',
    });
    await keeper.runOnce();
    expect((await v.getOrderByClientId('lock-long'))?.status).toBe('filled');
    // a sell within the 2 ETH long decreases it: nothing posted
    expect((await quote('sell', '2')).lockedCollateralUsd).toBe(0);
    // a sell of 5 does not close the long and open 3: GMX opens a short of 5 beside it, and the order
    // posts 5 × 3 500 × 0.5 = 8 750 USDC (a netting venue would need 3 × 3 500 × 0.5 = 5 250)
    const flip = await quote('sell', '5');
    expect(flip.executableSizeBase).toBe('5');
    expect(flip.lockedCollateralUsd).toBe(8750);
    const before = await equityParts(v);
    await v.placeOrder({
      clientOrderId: 'lock-flip',
      instrument: 'ETH-USD:PERP',
      side: 'sell',
      orderType: 'market',
      sizeBase: '5',
    });
    // what left the wallet is what the quote said, to the unit
    expect((await store.get('lock-flip'))?.spend?.amountBase).toBe('8750000000');
    const [working] = await v.fetchWorkingOrders();
    expect(working).toMatchObject({ orderType: ORDER_TYPE.MarketIncrease, isLong: false });
    await keeper.runOnce();
    expect((await v.getOrderByClientId('lock-flip'))?.status).toBe('filled');
    const after = await equityParts(v);
    expect(after.walletUsd).toBeCloseTo(before.walletUsd - (flip.lockedCollateralUsd ?? 0), 6);
    // net −3, both positions open, each holding its collateral (less its fee)
    expect(after.positions[0]?.sizeBase).toBe(-3);
    expect(after.marginUsd).toBeCloseTo(3500 - 3.5 + 8750 - 17_500 * 0.0005, 6);
    // the long stays open: a sell of 2 more still decreases it, posting nothing
    expect((await quote('sell', '2')).lockedCollateralUsd).toBe(0);
  });

  /** The ETH-USD:PERP market token. */
  const ethMarket = async () =>
    (await venue().loadMarkets()).find((m) => m.instrument.id === 'ETH-USD:PERP')?.venueSymbol as Hex;

  /**
   * Opens a long in the ETH market for the trader with `amount` of `token` as collateral, straight
   * through the ExchangeRouter (a position opened outside the adapter), and lets the keeper execute it.
   */
  async function openEthLongWithCollateral(token: Hex, amount: bigint, sizeUsd30: bigint) {
    const send = async (to: Hex, data: Hex, value = 0n) => {
      const hash = await trader.walletClient.sendTransaction({ to, data, value });
      expect((await trader.publicClient.waitForTransactionReceipt({ hash })).status).toBe('success');
    };
    const tokenAbi = parseAbi([
      'function mint(address to, uint256 amount)',
      'function approve(address spender, uint256 amount) returns (bool)',
    ]);
    await send(
      token,
      encodeFunctionData({ abi: tokenAbi, functionName: 'mint', args: [trader.account.address, amount] }),
    );
    await send(
      token,
      encodeFunctionData({ abi: tokenAbi, functionName: 'approve', args: [fx.params.router, amount] }),
    );
    // Enough for GMX's minimum (4.35 M gas × the transaction's gas price) at a few gwei.
    const fee = parseEther('0.05');
    const calls = [
      encodeFunctionData({
        abi: exchangeRouterAbi,
        functionName: 'sendWnt',
        args: [fx.params.orderVault, fee],
      }),
      encodeFunctionData({
        abi: exchangeRouterAbi,
        functionName: 'sendTokens',
        args: [token, fx.params.orderVault, amount],
      }),
      createOrderCallData({
        account: trader.account.address,
        market: await ethMarket(),
        collateralToken: token,
        sizeDeltaUsd: sizeUsd30,
        acceptablePrice: usdToGmxPrice(3600, 18),
        executionFee: fee,
        orderType: ORDER_TYPE.MarketIncrease,
        isLong: true,
      }),
    ];
    await send(
      fx.params.exchangeRouter,
      encodeFunctionData({ abi: exchangeRouterAbi, functionName: 'multicall', args: [calls] }),
      fee,
    );
    await keeper.runOnce();
    expect(keeperResults.at(-1)).toMatchObject({ outcome: 'executed', account: trader.account.address });
  }

  it('a hedge against a position with other collateral (opened outside the adapter) is not sent as a decrease of a USDC position that does not exist', async () => {
    // A 2 ETH long with WETH-index collateral; the adapter trades USDC-collateral positions only.
    await openEthLongWithCollateral(fx.indexTokens.ETH?.address as Hex, 10n ** 18n, 7000n * 10n ** 30n);
    const v = venue();
    // Quoted as what placeOrder sends: an increase of a short (open-interest room, not unlimited).
    const q = await v.quoteHedge({ instrument: 'ETH-USD:PERP', side: 'sell', sizeBase: '0.5' });
    expect(q.capReason).toBeUndefined();
    expect(q.gasUsd).toBeGreaterThan(0);
    const placed = await v.placeOrder({
      clientOrderId: 'other-coll-1',
      instrument: 'ETH-USD:PERP',
      side: 'sell',
      orderType: 'market',
      sizeBase: '0.5',
    });
    const [working] = await v.fetchWorkingOrders();
    // It was a MarketDecrease of the (empty) USDC long: the keeper could never execute it.
    expect(working).toMatchObject({
      orderKey: placed.venueOrderId,
      orderType: ORDER_TYPE.MarketIncrease,
      isLong: false,
    });
    await keeper.runOnce();
    expect((await v.getOrderByClientId('other-coll-1'))?.status).toBe('filled');
    const [pos] = await v.fetchPositions();
    expect(pos?.sizeBase).toBe(1.5);
  });

  it('values collateral other than USDC (a position opened outside the adapter) at its oracle min price', async () => {
    // 1 WETH-index token of collateral for a 2 ETH long at 3 500.
    await openEthLongWithCollateral(fx.indexTokens.ETH?.address as Hex, 10n ** 18n, 7000n * 10n ** 30n);
    const v = venue();
    let [pos] = await v.fetchPositions();
    // The fee (7 000 × 5 bps = 3.5 USD = 0.001 WETH) came out of the collateral: 0.999 WETH × 3 500.
    expect(pos).toMatchObject({ instrument: 'ETH-USD:PERP', sizeBase: 2, unsettledPnlUsd: 0 });
    expect(pos?.marginUsd).toBeCloseTo(0.999 * 3500, 9);
    await fx.setPrice('ETH', 3600);
    [pos] = await v.fetchPositions();
    expect(pos?.marginUsd).toBeCloseTo(0.999 * 3600, 9);
    expect(pos?.unsettledPnlUsd).toBeCloseTo(200, 9);
  });

  /** gmx-synthetics Position.getPositionKey: keccak256(abi.encode(account, market, collateralToken, isLong)). */
  const positionKey = (market: Hex, collateralToken: Hex, isLong: boolean) =>
    keccak256(
      encodeAbiParameters(parseAbiParameters('address, address, address, bool'), [
        trader.account.address,
        market,
        collateralToken,
        isLong,
      ]),
    );

  /** The adapter's 2 ETH long at 3 500 (7 000 USD, 3 500 USDC collateral less the 3.5 USDC fee). */
  async function openTwoEthLong(v: GmxVenue, cid: string) {
    await v.placeOrder({
      clientOrderId: cid,
      instrument: 'ETH-USD:PERP',
      side: 'buy',
      orderType: 'market',
      sizeBase: '2',
    });
    await keeper.runOnce();
    expect((await v.getOrderByClientId(cid))?.status).toBe('filled');
    return positionKey(await ethMarket(), fx.params.collateralAsset, true);
  }

  it('counts pending price impact, pending borrowing and funding fees and earned funding (Reader.getAccountPositionInfoList)', async () => {
    const v = venue();
    const key = await openTwoEthLong(v, 'pending-1');
    // min 3 600, max 3 601: GMX values a long's P&L at the min: 2 × 3 600 − 7 000 = 200.
    await fx.setPrice('ETH', 3600, 3601);
    let [pos] = await v.fetchPositions();
    expect(pos).toMatchObject({
      instrument: 'ETH-USD:PERP',
      sizeBase: 2,
      unsettledPnlUsd: 200,
      marginUsd: 3496.5,
    });
    const pendingImpactAmount = -2n * 10n ** 15n; // −0.002 ETH held back from the increase
    await fx.setPositionPendingValues(key, {
      pendingImpactAmount,
      borrowingFeeUsd30: usd30('12.345678'),
      fundingFeeAmount: 3_200_000n, // 3.2 USDC
      claimableLongTokenAmount: 5n * 10n ** 14n, // 0.0005 WETH earned
      claimableShortTokenAmount: 250_000n, // 0.25 USDC earned
    });
    [pos] = await v.fetchPositions();
    // 200 − 0.002 × 3 601 (a negative impact at the max) − 12.345678 − 3.2 + 0.0005 × 3 600 + 0.25.
    expect(pos?.unsettledPnlUsd).toBe(179.302322);
    expect(pos).toMatchObject({ sizeBase: 2, marginUsd: 3496.5, entryPriceUsd: 3500 });
    // A positive pending impact counts at the min: 200 + 7.2 − 12.345678 − 3.2 + 1.8 + 0.25.
    await fx.setPositionPendingValues(key, {
      pendingImpactAmount: -pendingImpactAmount,
      borrowingFeeUsd30: usd30('12.345678'),
      fundingFeeAmount: 3_200_000n,
      claimableLongTokenAmount: 5n * 10n ** 14n,
      claimableShortTokenAmount: 250_000n,
    });
    [pos] = await v.fetchPositions();
    expect(pos?.unsettledPnlUsd).toBe(193.704322);

    // What the local Reader returns, decoded at the upstream offsets.
    const eth = { min: usdToGmxPrice(3600, 18), max: usdToGmxPrice(3601, 18) };
    const usdc = { min: usdToGmxPrice(1, 6), max: usdToGmxPrice(1, 6) };
    const infos = await readPositionInfos(trader, fx, await ethMarket(), {
      index: eth,
      long: eth,
      short: usdc,
    });
    expect(infos).toHaveLength(1);
    const info = infos[0];
    expect(info?.positionKey).toBe(key);
    expect(info?.position.numbers).toMatchObject({
      sizeInUsd: 7000n * 10n ** 30n,
      sizeInTokens: 2n * 10n ** 18n,
      collateralAmount: 3_496_500_000n,
      pendingImpactAmount: -pendingImpactAmount,
    });
    expect(info?.basePnlUsd).toBe(200n * 10n ** 30n);
    expect(info?.uncappedBasePnlUsd).toBe(200n * 10n ** 30n);
    // Upstream's pnlAfterPriceImpactUsd is basePnlUsd + the impact of the close itself (0 here), not the pending one.
    expect(info?.pnlAfterPriceImpactUsd).toBe(200n * 10n ** 30n);
    expect(info?.executionPriceResult).toEqual({
      priceImpactUsd: 0n,
      executionPrice: eth.min,
      // Closing the only open interest of the market (long 7 000, short 0) brings the sides closer.
      balanceWasImproved: true,
      proportionalPendingImpactUsd: -pendingImpactAmount * eth.min,
      totalImpactUsd: -pendingImpactAmount * eth.min,
      priceImpactDiffUsd: 0n,
    });
    expect(info?.fees.borrowing).toEqual({
      borrowingFeeUsd: usd30('12.345678'),
      borrowingFeeAmount: 12_345_678n,
      borrowingFeeReceiverFactor: 0n,
      borrowingFeeAmountForFeeReceiver: 0n,
    });
    expect(info?.fees.funding).toMatchObject({
      fundingFeeAmount: 3_200_000n,
      claimableLongTokenAmount: 5n * 10n ** 14n,
      claimableShortTokenAmount: 250_000n,
    });
    expect(info?.fees.collateralTokenPrice).toEqual(usdc);
    expect(info?.fees.positionFeeFactor).toBe(5n * 10n ** 26n); // 5 bps as a 30-decimal factor
    // The closing fee (7 000 × 5 bps) is in totalCostAmount; equity leaves it out (an exit cost).
    expect(info?.fees.positionFeeAmount).toBe(3_500_000n);
    expect(info?.fees.totalCostAmountExcludingFunding).toBe(3_500_000n + 12_345_678n);
    expect(info?.fees.totalCostAmount).toBe(3_500_000n + 12_345_678n + 3_200_000n);
  });

  it('decreases settle what equity counted: only the closing fee leaves equity, half and then all', async () => {
    const v = venue();
    const key = await openTwoEthLong(v, 'settle-1');
    await fx.setPrice('ETH', 3600, 3601);
    await fx.setPositionPendingValues(key, {
      pendingImpactAmount: -2n * 10n ** 15n,
      borrowingFeeUsd30: usd30('12.345678'),
      fundingFeeAmount: 3_200_000n,
    });
    const before = await equityParts(v);
    // 200 − 7.202 − 12.345678 − 3.2
    expect(before.pnlUsd).toBe(177.252322);
    expect(before.marginUsd).toBe(3496.5);
    const sell = async (cid: string, sizeBase: string) => {
      await v.placeOrder({
        clientOrderId: cid,
        instrument: 'ETH-USD:PERP',
        side: 'sell',
        orderType: 'market',
        sizeBase,
      });
      await keeper.runOnce();
      expect((await v.getOrderByClientId(cid))?.status).toBe('filled');
    };
    const readPositions = () =>
      trader.publicClient.readContract({
        address: fx.params.reader,
        abi: readerAbi,
        functionName: 'getAccountPositions',
        args: [fx.params.dataStore, trader.account.address, 0n, 10n],
      });
    // Half: sold at the min (3 600); the half's P&L (100) and pending impact (−3.601) and all the fees
    // (15.545678) settle into the collateral, less the closing fee 3 500 × 5 bps = 1.75.
    await sell('settle-2', '1');
    const half = await equityParts(v);
    expect(half.walletUsd).toBe(before.walletUsd);
    expect((await readPositions())[0]?.numbers.pendingImpactAmount).toBe(-(10n ** 15n));
    // 3 496.5 + 100 − 3.601 − 15.545678 − 1.75
    expect(half.marginUsd).toBe(3575.603322);
    // The other half: 1 × 3 600 − 3 500 − 0.001 × 3 601, no fees pending any more.
    expect(half.pnlUsd).toBe(96.399);
    expect(half.equityUsd).toBeCloseTo(before.equityUsd - 1.75, 6);
    // All: the wallet gets margin + unsettled P&L − the closing fee; the position is removed, as on GMX.
    await sell('settle-3', '1');
    const after = await equityParts(v);
    expect(after.positions).toEqual([]);
    expect(await readPositions()).toEqual([]);
    expect(after.walletUsd).toBeCloseTo(half.walletUsd + half.marginUsd + half.pnlUsd - 1.75, 6);
    expect(after.equityUsd).toBeCloseTo(before.equityUsd - 3.5, 6);
  });

  it.each([
    ['long', 'buy', 'sell'],
    ['short', 'sell', 'buy'],
  ] as const)(
    'reduces a %s built at two prices by exactly the size asked (GMX rounds a long share of tokens up, a short one down)',
    async (_, open, reduce) => {
      const v = venue();
      const place = async (cid: string, side: 'buy' | 'sell', sizeBase: string) => {
        await v.placeOrder({
          clientOrderId: cid,
          instrument: 'BTC-USD:PERP',
          side,
          orderType: 'market',
          sizeBase,
        });
        await keeper.runOnce();
        expect((await v.getOrderByClientId(cid))?.status).toBe('filled');
      };
      // 0.1 at 95 000 and 0.2 at 96 000: 28 700 USD for 0.3 BTC, not a whole number of USD-30 units
      // per token unit, so the pro-rata size of 0.01 BTC has to be rounded the way GMX rounds it back.
      await place(`${open}-a`, open, '0.1');
      await fx.setPrice('BTC', 96_000);
      await place(`${open}-b`, open, '0.2');
      await place(`${open}-c`, reduce, '0.01');
      const [fill] = await v.fetchFills({ clientOrderId: `${open}-c` });
      // it was 0.01000001 for the long: one token unit more than asked
      expect(fill?.sizeBase).toBe('0.01');
      const [pos] = await v.fetchPositions();
      expect(pos?.sizeBase).toBe(open === 'buy' ? 0.29 : -0.29);
    },
  );

  it('fails loudly, naming the market, when Reader.getAccountPositionInfoList cannot value a position', async () => {
    const v = venue();
    await openTwoEthLong(v, 'loud-1');
    expect(await v.fetchPositions()).toHaveLength(1);
    // WBTC collateral in the ETH market: not one of its tokens, so GMX's Reader has no price for it.
    await openEthLongWithCollateral(fx.indexTokens.BTC?.address as Hex, 10n ** 7n, 7000n * 10n ** 30n);
    const err = await v.fetchPositions().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RevertedError);
    expect((err as Error).message).toMatch(
      /getAccountPositionInfoList failed for the positions in ETH-USD:PERP/,
    );
    expect((err as Error).message).toMatch(/UnableToGetCachedTokenPrice/);
  });

  it('reports the fill price exactly as the execution price (USD per smallest unit × 10^30), no float on the way', async () => {
    // Oracle prices carry many digits (Chainlink Data Streams: 18 decimals of USD): BTC has 22 here.
    await fx.setPrice('BTC', '95123.4567890123456789012');
    const v = venue();
    await v.placeOrder({
      clientOrderId: 'px-1',
      instrument: 'BTC-USD:PERP',
      side: 'buy',
      orderType: 'market',
      sizeBase: '0.1',
    });
    await keeper.runOnce();
    // it was 95123.45678901235 (a double's 17 digits)
    expect((await v.getOrderByClientId('px-1'))?.avgFillPriceUsd).toBe('95123.4567890123456789012');
    expect((await v.fetchFills())[0]?.priceUsd).toBe('95123.4567890123456789012');
  });

  it('rounds an acceptable price never past the bound asked: a buy down, a sell up', async () => {
    const v = venue();
    const place = (clientOrderId: string, side: 'buy' | 'sell', limitPriceUsd?: string) =>
      v.placeOrder({
        clientOrderId,
        instrument: 'ETH-USD:PERP',
        side,
        orderType: limitPriceUsd === undefined ? 'market' : 'limit',
        sizeBase: '0.1',
        ...(limitPriceUsd === undefined ? {} : { limitPriceUsd }),
      });
    // ETH has 18 decimals: one GMX price unit is 10^-12 USD, so these limits fall between two units.
    const buy = await place('ap-buy', 'buy', '3600.0000000000005');
    const sell = await place('ap-sell', 'sell', '3400.0000000000004');
    // The oracle at 3 500 + 1 unit: a sell's 50 bps below it is 3 482.500000000000995.
    await fx.setPrice('ETH', '3500.000000000001');
    const slipped = await place('ap-slip', 'sell');
    const acceptable = new Map(
      (await v.fetchWorkingOrders()).map((w) => [w.orderKey, w.acceptablePrice] as const),
    );
    // they were 3 600.000000000001 (above the buyer's limit), 3 400.000000000000 and 3 482.500000000000
    // (below the sellers' bounds), rounded half up and down
    expect(acceptable.get(buy.venueOrderId as Hex)).toBe(3_600_000_000_000_000n);
    expect(acceptable.get(sell.venueOrderId as Hex)).toBe(3_400_000_000_000_001n);
    expect(acceptable.get(slipped.venueOrderId as Hex)).toBe(3_482_500_000_000_001n);
  });

  it.each(['0', '-1'])('refuses a limit price of %s with InvalidOrderError, sending nothing', async (bad) => {
    const store = new MemoryOrderStore<GmxOrderRecord>();
    const v = venue({ store });
    const err = await v
      .placeOrder({
        clientOrderId: 'ap-bad',
        instrument: 'ETH-USD:PERP',
        side: 'sell',
        orderType: 'limit',
        sizeBase: '0.1',
        limitPriceUsd: bad,
      })
      .catch((e: unknown) => e);
    // 0 was a sell at any price; -1 a viem encoding error (not a venue error)
    expect(err).toBeInstanceOf(InvalidOrderError);
    expect((err as InvalidOrderError).message).toContain(`limitPriceUsd ${bad} must be greater than 0`);
    expect(await store.list()).toEqual([]);
    expect(await v.fetchWorkingOrders()).toEqual([]);
  });

  it('looks for execution events from the block that created the order, not from genesis', async () => {
    for (let i = 0; i < 5; i++) await rpc(deployer.publicClient, 'evm_mine', []);
    const fromBlocks: (bigint | undefined)[] = [];
    const publicClient = new Proxy(trader.publicClient, {
      get(target, prop, recv) {
        const val = Reflect.get(target, prop, recv);
        if (prop !== 'getContractEvents' || typeof val !== 'function') return val;
        return (args: { fromBlock?: bigint }) => {
          fromBlocks.push(args.fromBlock);
          return val.call(target, args);
        };
      },
    });
    const store = new MemoryOrderStore<GmxOrderRecord>();
    const v = venue({ ctx: { ...trader, publicClient }, store });
    await v.placeOrder({
      clientOrderId: 'scan-1',
      instrument: 'ETH-USD:PERP',
      side: 'buy',
      orderType: 'market',
      sizeBase: '0.1',
    });
    const rec = await store.get('scan-1');
    const tx = await trader.publicClient.getTransactionReceipt({ hash: rec?.txHash as Hex });
    expect(rec?.orderBlock).toBe(tx.blockNumber.toString());
    expect(tx.blockNumber).toBeGreaterThan(5n);
    await keeper.runOnce();
    expect((await v.getOrderByClientId('scan-1'))?.status).toBe('filled');
    expect(fromBlocks.length).toBeGreaterThan(0);
    expect(fromBlocks.every((b) => b === tx.blockNumber)).toBe(true);
  });

  it('caps the executable size of a quote at the open-interest room and prices gas plus the execution fee', async () => {
    const v = venue();
    const q = await v.quoteHedge({ instrument: 'ETH-USD:PERP', side: 'buy', sizeBase: '100' });
    expect(Number(q.executableSizeBase)).toBeCloseTo(100_000 / 3500, 9);
    expect(q.capReason).toMatch(/open interest/);
    expect(q.gasUsd).toBeGreaterThan(0.0003 * 3500 * 0.99);
  });

  it('decodes reverts: missing collateral is InsufficientFundsError (not sent); a non-keeper executing is RevertedError', async () => {
    const poor = ctxFor(ANVIL_DEV_KEYS[3]);
    const v = venue({ ctx: poor });
    const err = await v
      .placeOrder({
        clientOrderId: 'poor-1',
        instrument: 'BTC-USD:PERP',
        side: 'buy',
        orderType: 'market',
        sizeBase: '0.1',
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InsufficientFundsError);
    expect((err as InsufficientFundsError).outcome).toBe('not-sent');
    expect(await v.getOrderByClientId('poor-1')).toBeNull();
    const sender = new TxSender({ ctx: poor, abi: gmxErrorAbi });
    const key = `0x${'11'.repeat(32)}` as Hex;
    const rev = await sender
      .send({
        to: fx.params.dataStore,
        data: encodeFunctionData({ abi: gmxFixtureAbi, functionName: 'executeOrder', args: [key] }),
      })
      .catch((e: unknown) => e);
    expect(rev).toBeInstanceOf(RevertedError);
    // Upstream's Unauthorized(msgSender, role) with RoleModule's role name.
    expect((rev as RevertedError).reason).toBe(`Unauthorized(${poor.account.address}, ORDER_KEEPER)`);
  });

  /**
   * A context of `key` on the test chain that records the hashes it broadcasts and those viem has read
   * back by hash (the receipt wait has then seen the transaction: it can tell when another takes its nonce).
   */
  function watchedCtx(key: Hex) {
    const direct = http(chain.anvil.rpcUrl)({ retryCount: 0 }) as unknown as {
      request: (a: { method: string; params?: unknown }) => Promise<unknown>;
    };
    const broadcast: Hex[] = [];
    const seen = new Set<string>();
    const ctx = createEvmContext({
      venue: 'gmx-local',
      chain: 'evm:31337',
      rpcUrls: [],
      privateKey: key,
      pollingIntervalMs: 50,
      transport: custom(
        {
          async request({ method, params }) {
            if (method === 'eth_sendRawTransaction') broadcast.push(keccak256((params as [Hex])[0]));
            const res = await direct.request({ method, params });
            if (method === 'eth_getTransactionByHash' && res)
              seen.add(String((params as [Hex])[0]).toLowerCase());
            return res;
          },
        },
        { retryCount: 0 },
      ),
    });
    return { ctx, broadcast, seen };
  }

  async function until<T>(read: () => T | undefined | Promise<T | undefined>, what: string): Promise<T> {
    for (let i = 0; i < 500; i++) {
      const v = await read();
      if (v !== undefined) return v;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`timed out waiting for ${what}`);
  }

  it.each([
    {
      // another process of the account sped up the same cancel: the order is cancelled
      competitor: 'the same cancel, sped up' as const,
      expected: 'cancelled',
    },
    {
      // another transaction of the account took the nonce: the order still waits for a keeper
      competitor: 'a self-transfer' as const,
      expected: 'acknowledged',
    },
  ])(
    'a cancel whose nonce another transaction takes ($competitor) answers with what the chain says of the order',
    async ({ competitor, expected }) => {
      const w = watchedCtx(ANVIL_DEV_KEYS[1]);
      const store = new MemoryOrderStore<GmxOrderRecord>();
      const v = venue({ ctx: w.ctx, store, receiptTimeoutSeconds: 10 });
      const placed = await v.placeOrder({
        clientOrderId: 'race-1',
        instrument: 'BTC-USD:PERP',
        side: 'buy',
        orderType: 'market',
        sizeBase: '0.1',
      });
      expect(placed.status).toBe('acknowledged');
      const key = placed.venueOrderId as Hex;
      await rpc(deployer.publicClient, 'evm_setAutomine', [false]);
      const sentBefore = w.broadcast.length;
      const cancelling = v.cancelOrder('race-1').then(
        (o) => ({ ok: true as const, o }),
        (e: unknown) => ({ ok: false as const, e }),
      );
      const cancelHash = await until(() => w.broadcast[sentBefore], 'the cancel to be broadcast');
      await until(
        () => (w.seen.has(cancelHash.toLowerCase()) ? true : undefined),
        'the wait to see the cancel',
      );
      // Another process of the same account takes the nonce with higher fees (the same gas: the sped-up
      // cancel does what the adapter's would).
      const mine = await trader.publicClient.getTransaction({ hash: cancelHash });
      const theirs = await trader.walletClient.sendTransaction({
        ...(competitor === 'a self-transfer'
          ? { to: trader.account.address, value: 0n }
          : {
              to: fx.params.exchangeRouter,
              data: encodeFunctionData({ abi: exchangeRouterAbi, functionName: 'cancelOrder', args: [key] }),
            }),
        nonce: mine.nonce,
        gas: mine.gas,
        maxFeePerGas: (mine.maxFeePerGas ?? 0n) * 2n,
        maxPriorityFeePerGas: (mine.maxPriorityFeePerGas ?? 0n) * 2n,
      });
      await until(
        () =>
          trader.publicClient.getTransaction({ hash: theirs }).then(
            () => true,
            () => undefined,
          ),
        'the competing transaction in the mempool',
      );
      await rpc(deployer.publicClient, 'evm_mine', []);
      expect((await trader.publicClient.getTransactionReceipt({ hash: theirs })).status).toBe('success');
      const res = await cancelling;
      if (expected === 'cancelled') {
        // The chain has the order cancelled: that is the answer, not the cancel's lost nonce.
        expect(res.ok, res.ok ? '' : String(res.e)).toBe(true);
        expect(res.ok && res.o.status).toBe('cancelled');
        expect(res.ok && res.o.error).toBe('USER_INITIATED_CANCEL');
        expect((await store.get('race-1'))?.status).toBe('cancelled');
      } else {
        // Still waiting for a keeper: the cancel did not happen, the caller learns so and may ask again.
        expect(res.ok).toBe(false);
        expect(res.ok || res.e).toBeInstanceOf(NotConfirmedError);
        expect(res.ok || (res.e as NotConfirmedError).details).toMatchObject({
          txHash: cancelHash,
          replacedBy: theirs,
        });
        expect((await store.get('race-1'))?.status).toBe('acknowledged');
        await rpc(deployer.publicClient, 'evm_setAutomine', [true]);
        expect((await v.cancelOrder('race-1')).status).toBe('cancelled');
      }
    },
  );

  it('after a restart: recovers the order mapping from disk, refuses to send past a pending nonce, and cancels by nonce replacement', async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'xhedge-gmx-')), 'orders.json');
    const s1 = new JsonFileOrderStore<GmxOrderRecord>(file);
    const v1 = venue({ store: s1 });
    await rpc(deployer.publicClient, 'evm_setAutomine', [false]);
    const err = await v1
      .placeOrder({
        clientOrderId: 'lost-1',
        instrument: 'BTC-USD:PERP',
        side: 'buy',
        orderType: 'market',
        sizeBase: '0.1',
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotConfirmedError);
    const hash = (err as NotConfirmedError).details?.txHash as Hex;
    await rpc(deployer.publicClient, 'anvil_dropTransaction', [hash]);

    // Restart: new clients, new adapter, the same mapping file (the old store closed: one writer per file).
    s1.close();
    const v2 = venue({
      store: new JsonFileOrderStore(file),
      ctx: ctxFor(ANVIL_DEV_KEYS[1]),
      receiptTimeoutSeconds: 5,
    });
    const found = await v2.getOrderByClientId('lost-1');
    expect(found?.status).toBe('outcome-unknown');
    expect(found?.venueOrderId).toBe(hash);
    await rpc(deployer.publicClient, 'evm_setAutomine', [true]);
    const cancelled = await v2.cancelOrder('lost-1');
    expect(cancelled.status).toBe('cancelled');
    // The cancel took its nonce: the lost order can never spend its collateral, so its spend is released.
    expect((await storedRecord<GmxOrderRecord>(file, 'lost-1'))?.spend?.state).toBe('released');
    // The nonce is consumed by the cancel: the lost order can never appear; a new one goes out next.
    const next = await v2.placeOrder({
      clientOrderId: 'after-1',
      instrument: 'BTC-USD:PERP',
      side: 'buy',
      orderType: 'market',
      sizeBase: '0.1',
    });
    expect(next.status).toBe('acknowledged');
    expect((await v2.getOrderByClientId('lost-1'))?.status).toBe('cancelled');
  });

  it('an order sped up outside its record (a re-signed copy at its nonce) is created by that copy and fills, not failed', async () => {
    const store = new MemoryOrderStore<GmxOrderRecord>();
    // GMX wants the execution fee to cover the keeper's gas at the transaction's own gas price; here a
    // floor far above it (the default headroom is tested below).
    const v = new GmxVenue(
      'gmx-local',
      {
        ...fx.params,
        approval: 'capped',
        approvalCap: '1000000',
        receiptTimeoutSeconds: 1,
        executionFeeWei: '20000000000000000',
      },
      { ctx: trader, store },
    );
    await rpc(deployer.publicClient, 'evm_setAutomine', [false]);
    const err = await v
      .placeOrder({
        clientOrderId: 'sped-1',
        instrument: 'BTC-USD:PERP',
        side: 'buy',
        orderType: 'market',
        sizeBase: '0.1',
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotConfirmedError);
    const sent = (await store.get('sped-1')) as GmxOrderRecord;
    let speedUp: Hex | undefined;
    const speeding = v.sender.replace({ hash: sent.txHash as Hex, nonce: sent.nonce as number }, 'speed-up', {
      timeoutMs: 10_000,
      onSigned: (i) => {
        speedUp = i.hash;
      },
    });
    const inPool = async () =>
      speedUp !== undefined &&
      (await trader.publicClient.getTransaction({ hash: speedUp }).catch(() => null)) !== null;
    for (let i = 0; i < 500 && !(await inPool()); i++) await new Promise((r) => setTimeout(r, 10));
    await rpc(deployer.publicClient, 'evm_mine', []);
    expect((await speeding).hash).toBe(speedUp);
    // The copy created the order: it waits for the keeper, then fills.
    expect((await v.getOrderByClientId('sped-1'))?.status).toBe('acknowledged');
    expect((await store.get('sped-1'))?.txHash).toBe(speedUp);
    await advance();
    expect((await v.getOrderByClientId('sped-1'))?.status).toBe('filled');
    expect((await v.fetchPositions()).map((p) => [p.instrument, p.sizeBase])).toEqual([
      ['BTC-USD:PERP', 0.1],
    ]);
  });

  it('a speed-up of an order transaction creates the order: the execution fee covers its higher gas price', async () => {
    // GMX checks executionFee ≥ gas limit × tx.gasprice against the transaction that creates the order;
    // a speed-up re-sends the same call (the same fee) at ≥ 12.5 % higher fees. The default floor
    // (0.0003 ETH) is far below the minimum here (4.35 M gas × ~1 gwei), so the fee is the adapter's own.
    const store = new MemoryOrderStore<GmxOrderRecord>();
    const v = venue({ store });
    await rpc(deployer.publicClient, 'evm_setAutomine', [false]);
    const err = await v
      .placeOrder({
        clientOrderId: 'bump-1',
        instrument: 'BTC-USD:PERP',
        side: 'buy',
        orderType: 'market',
        sizeBase: '0.1',
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotConfirmedError);
    const sent = (await store.get('bump-1')) as GmxOrderRecord;
    let speedUp: Hex | undefined;
    const speeding = v.sender
      .replace({ hash: sent.txHash as Hex, nonce: sent.nonce as number }, 'speed-up', {
        timeoutMs: 10_000,
        onSigned: (i) => {
          speedUp = i.hash;
        },
      })
      .catch((e: unknown) => e);
    const inPool = async () =>
      speedUp !== undefined &&
      (await trader.publicClient.getTransaction({ hash: speedUp }).catch(() => null)) !== null;
    for (let i = 0; i < 500 && !(await inPool()); i++) await new Promise((r) => setTimeout(r, 10));
    await rpc(deployer.publicClient, 'evm_mine', []);
    const result = await speeding;
    // It reverted InsufficientExecutionFee(gas limit × its gas price, the original's minimum) before.
    expect(result instanceof Error ? result.message : 'mined').toBe('mined');
    const receipt = await trader.publicClient.getTransactionReceipt({ hash: speedUp as Hex });
    expect(receipt.status).toBe('success');
    // Its gas price is above the fee cap the minimum was computed at (the original's).
    expect(receipt.effectiveGasPrice).toBeGreaterThan(BigInt(sent.maxFeePerGas as string));
    // The fee sent: the DataStore gas limit (600 000 + 3 × 250 000 + 3 000 000) × the fee cap × 2.
    const [working] = await v.fetchWorkingOrders();
    expect(working?.executionFeeWei).toBe(2n * 4_350_000n * BigInt(sent.maxFeePerGas as string));
    expect(working?.executionFeeWei).toBeGreaterThanOrEqual(4_350_000n * receipt.effectiveGasPrice);
    expect((await v.getOrderByClientId('bump-1'))?.status).toBe('acknowledged');
    await advance();
    expect((await v.getOrderByClientId('bump-1'))?.status).toBe('filled');
  });

  it("a cancel that fails, then the chain read after it fails too, throws the cancel's error (the read's as context)", async () => {
    const faulty = await startFaultyRpc(chain.anvil.rpcUrl);
    try {
      const store = new MemoryOrderStore<GmxOrderRecord>();
      const placed = await venue({ store }).placeOrder({
        clientOrderId: 'cf-1',
        instrument: 'BTC-USD:PERP',
        side: 'buy',
        orderType: 'market',
        sizeBase: '0.1',
      });
      expect(placed.status).toBe('acknowledged');
      // The RPC goes down as the cancel (ExchangeRouter.cancelOrder) is broadcast: the cancel's fate is
      // unknown (its bytes may have left), and the order read that follows it fails.
      const rpcTransport = http(faulty.url, { retryCount: 0 })({});
      const v = venue({
        store,
        ctx: createEvmContext({
          venue: 'gmx-local',
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
      expect(cancelErr).toBeInstanceOf(VenueError);
      // the cancel's error: its transaction and an unknown outcome, not the read's "not sent"
      expect(cancelErr.outcome, String(cancelErr)).toBe('unknown');
      expect(cancelErr.details.txHash).toMatch(/^0x[0-9a-f]{64}$/);
      expect(cancelErr.clientOrderId).toBe('cf-1');
      expect(cancelErr.details.reconcileErrorCode).toBe('VENUE_NETWORK');
      expect(String(cancelErr.details.reconcileError)).toMatch(/HTTP request failed/);
      for (const secret of faulty.secrets) expect(everythingIn(cancelErr)).not.toContain(secret);
      // nothing reached the chain: the order still waits for the keeper
      expect((await venue({ store }).getOrderByClientId('cf-1'))?.status).toBe('acknowledged');
    } finally {
      faulty.fail(undefined);
      await faulty.close();
    }
  });

  it('refuses a new order while an earlier one is pending after a restart (no nonce gap, no double send)', async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'xhedge-gmx-')), 'orders.json');
    const s1 = new JsonFileOrderStore<GmxOrderRecord>(file);
    const v1 = venue({ store: s1 });
    await rpc(deployer.publicClient, 'evm_setAutomine', [false]);
    await v1
      .placeOrder({
        clientOrderId: 'slow-1',
        instrument: 'BTC-USD:PERP',
        side: 'buy',
        orderType: 'market',
        sizeBase: '0.1',
      })
      .catch(() => undefined);
    // Restart: the old process is gone, its store closed (one writer per file): the new one reads the file.
    s1.close();
    const v2 = venue({ store: new JsonFileOrderStore(file), ctx: ctxFor(ANVIL_DEV_KEYS[1]) });
    const err = await v2
      .placeOrder({
        clientOrderId: 'slow-2',
        instrument: 'BTC-USD:PERP',
        side: 'buy',
        orderType: 'market',
        sizeBase: '0.1',
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NonceError);
    expect(await v2.getOrderByClientId('slow-2')).toBeNull();
    // The same id again is not resent: it is reconciled to the pending transaction.
    const again = await v2.placeOrder({
      clientOrderId: 'slow-1',
      instrument: 'BTC-USD:PERP',
      side: 'buy',
      orderType: 'market',
      sizeBase: '0.1',
    });
    expect(again.status).toBe('outcome-unknown');
    await advance();
    expect((await v2.getOrderByClientId('slow-1'))?.status).toBe('filled');
  });

  it('two orders placed at once whose collateral together exceeds the daily cap: exactly one is refused', async () => {
    // 0.1 ETH at 3 500 USD with leverage 2 takes ~175 USDC of collateral; two take ~350 > 300.
    const store = new MemoryOrderStore<GmxOrderRecord>();
    const v = venue({ store, spendCapPerDay: '300' });
    const order = (cid: string) =>
      v.placeOrder({
        clientOrderId: cid,
        instrument: 'ETH-USD:PERP',
        side: 'buy',
        orderType: 'market',
        sizeBase: '0.1',
      });
    const results = await Promise.allSettled([order('cap-a'), order('cap-b')]);
    const placed = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(placed).toHaveLength(1);
    expect(refused).toHaveLength(1);
    const err = refused[0]?.reason as InvalidOrderError;
    expect(err).toBeInstanceOf(InvalidOrderError);
    expect(err.message).toMatch(
      /spend cap exceeded for 0x[0-9a-fA-F]{40}: \d+ already spent or reserved \+ \d+ > cap 300000000 /,
    );
    // The refused one never reached the chain or the store.
    expect(await store.list()).toHaveLength(1);
    expect(await v.getOrderByClientId(err.clientOrderId as string)).toBeNull();
  });

  it('after a restart, the spends of the day are rebuilt from the order file: an order past the cap is still refused', async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'xhedge-gmx-')), 'orders.json');
    const s1 = new JsonFileOrderStore<GmxOrderRecord>(file);
    const v1 = venue({ store: s1, spendCapPerDay: '300' });
    const first = await v1.placeOrder({
      clientOrderId: 'day-1',
      instrument: 'ETH-USD:PERP',
      side: 'buy',
      orderType: 'market',
      sizeBase: '0.1',
    });
    expect(first.status).toBe('acknowledged');

    // Restart: a new adapter (new clients) over the same order file (the old store closed: one writer per file).
    s1.close();
    const v2 = venue({
      store: new JsonFileOrderStore(file),
      ctx: ctxFor(ANVIL_DEV_KEYS[1]),
      spendCapPerDay: '300',
    });
    const err = await v2
      .placeOrder({
        clientOrderId: 'day-2',
        instrument: 'ETH-USD:PERP',
        side: 'buy',
        orderType: 'market',
        sizeBase: '0.1',
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidOrderError);
    expect((err as InvalidOrderError).message).toMatch(/spend cap exceeded .* > cap 300000000 /);
    expect(await v2.getOrderByClientId('day-2')).toBeNull();
    // What still fits under the cap goes through (~87.5 USDC more).
    const small = await v2.placeOrder({
      clientOrderId: 'day-3',
      instrument: 'ETH-USD:PERP',
      side: 'buy',
      orderType: 'market',
      sizeBase: '0.05',
    });
    expect(small.status).toBe('acknowledged');
  });

  it('createGmxVenue builds the venue from an operator venue config with the key from env', async () => {
    const v = createGmxVenue(
      {
        id: 'gmx-local',
        chain: 'evm:31337',
        endpoints: { rpc: [chain.anvil.rpcUrl] },
        credentials: { privateKey: { env: 'XHEDGE_TEST_KEY' } },
        params: { ...fx.params },
      },
      { secrets: { env: { XHEDGE_TEST_KEY: ANVIL_DEV_KEYS[1] } }, store: new MemoryOrderStore() },
    );
    expect((await v.loadMarkets()).map((m) => m.instrument.id).sort()).toEqual([
      'BTC-USD:PERP',
      'ETH-USD:PERP',
    ]);
    expect(v.capabilities.clientOrderId).toBe('none');
  });

  it('close(): a venue rebuilt for new params opens beside the old one (the registry builds the new one first); the order file is released when the last of them closes; a store passed in stays open', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'xhedge-gmx-close-'));
    const lockFile = path.join(dataDir, 'gmx-local-orders.json.lock');
    const config = (params: Partial<GmxVenueParamsInput>) => ({
      id: 'gmx-local',
      chain: 'evm:31337' as const,
      endpoints: { rpc: [chain.anvil.rpcUrl] },
      credentials: { privateKey: { env: 'XHEDGE_TEST_KEY' } },
      params: { ...fx.params, ...params },
    });
    const deps = { secrets: { env: { XHEDGE_TEST_KEY: ANVIL_DEV_KEYS[1] } }, dataDir };
    const old = createGmxVenue(config({}), deps);
    const rebuilt = createGmxVenue(config({ receiptTimeoutSeconds: 7 }), deps);
    expect(JSON.parse(readFileSync(lockFile, 'utf8'))).toMatchObject({ pid: process.pid });
    await old.close();
    await old.close(); // idempotent: the rebuilt one keeps the file
    await expect(old.getOrderByClientId('cid-1')).rejects.toMatchObject({ code: 'ORDER_STORE_CLOSED' });
    expect(existsSync(lockFile)).toBe(true);
    expect(await rebuilt.getOrderByClientId('cid-1')).toBeNull();
    await rebuilt.close();
    expect(existsSync(lockFile)).toBe(false);
    const given = new JsonFileOrderStore<GmxOrderRecord>(path.join(dataDir, 'given.json'));
    await createGmxVenue(config({}), { ...deps, store: given }).close();
    expect(await given.list()).toEqual([]);
    given.close();
  });
});

describe('gmx: an RPC URL with an API key, the RPC failing', () => {
  let faulty: FaultyRpc;
  beforeAll(async () => {
    faulty = await startFaultyRpc(chain.anvil.rpcUrl);
  });
  afterAll(() => faulty?.close());

  it.each(['500', 'hang', 'close'] as const)(
    'every read and order path fails with a retryable venue error naming no part of the URL (%s)',
    async (fault) => {
      const store = new MemoryOrderStore<GmxOrderRecord>();
      const sent: GmxOrderRecord = {
        clientOrderId: 'leak-sent',
        instrument: 'BTC-USD:PERP',
        side: 'buy',
        sizeBase: '0.1',
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
      const keyed = { ...sent, clientOrderId: 'leak-keyed', status: 'acknowledged' as const };
      await store.put(keyed.clientOrderId, { ...keyed, orderKey: `0x${'cd'.repeat(32)}`, orderBlock: '1' });
      // Timeouts short enough for a test (the default is 10 s per request).
      const make = () =>
        new GmxVenue(
          'gmx-local',
          { ...fx.params, receiptTimeoutSeconds: 2 },
          {
            ctx: createEvmContext({
              venue: 'gmx-local',
              chain: 'evm:31337',
              rpcUrls: [faulty.url],
              privateKey: ANVIL_DEV_KEYS[1],
              requestTimeoutMs: 300,
              pollingIntervalMs: 50,
            }),
            store,
          },
        );
      const cold = make();
      const v = make();
      await v.loadMarkets(); // markets kept: the later reads fail past them
      const order = {
        clientOrderId: 'leak-new',
        instrument: 'BTC-USD:PERP',
        side: 'buy' as const,
        orderType: 'market' as const,
        sizeBase: '0.1',
      };
      const calls: [string, () => Promise<unknown>][] = [
        ['loadMarkets', () => cold.loadMarkets()],
        ['fetchMarks', () => v.fetchMarks()],
        ['fetchPositions', () => v.fetchPositions()],
        ['fetchBalances', () => v.fetchBalances()],
        ['fetchWorkingOrders', () => v.fetchWorkingOrders()],
        ['quoteHedge', () => v.quoteHedge({ instrument: 'BTC-USD:PERP', side: 'buy', sizeBase: '0.1' })],
        ['placeOrder', () => v.placeOrder(order)],
        ['getOrderByClientId (sent)', () => v.getOrderByClientId('leak-sent')],
        ['getOrderByClientId (keyed)', () => v.getOrderByClientId('leak-keyed')],
        ['cancelOrder (sent)', () => v.cancelOrder('leak-sent')],
        ['cancelOrder (keyed)', () => v.cancelOrder('leak-keyed')],
        ['fetchFills', () => v.fetchFills()],
      ];
      expect(await rpcFaultProblems(faulty, fault, calls, () => v.health())).toEqual([]);
    },
  );
});
