import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ComputeBudgetProgram,
  PublicKey,
  TransactionInstruction,
  TransactionMessage,
  VersionedTransaction,
} from '@solana/web3.js';
import { ManualClock, Order, Position } from '@xhedge/core';
import { InvalidOrderError, NotConfirmedError, type OrderRequest, VenueError } from '@xhedge/venue';
import { describe, expect, it } from 'vitest';
import { DRIFT_PROGRAM_ERROR, runDriftProgram } from '../test/drift-program.ts';
import { type DriftFixture, driftFixture, SOL_PRICE_USD } from '../test/fixture.ts';
import { driftLimitPrice, fundingRatePerHour } from './adapter.ts';
import { encodePerpMarketAccount, encodeStateAccount, type PerpMarketInit } from './encode.ts';
import { driftPda } from './instructions.ts';
import {
  CANCEL_ORDER_BY_USER_ID_DISCRIMINATOR,
  PERP_MARKET,
  PLACE_AND_TAKE_PERP_ORDER_DISCRIMINATOR,
  PLACE_PERP_ORDER_DISCRIMINATOR,
  POSITION_FLAG,
  USER_STATUS,
} from './layout.ts';
import {
  fileUserOrderIdStore,
  memoryUserOrderIdStore,
  UserOrderIdMap,
  UserOrderIdsExhaustedError,
} from './order-ids.ts';
import { signatureOf } from './send.ts';

const ORDER = {
  instrument: 'SOL-USD:PERP',
  side: 'buy',
  orderType: 'limit',
  sizeBase: '1.5',
  limitPriceUsd: '181.23456',
} as const;

describe('Drift venue on litesvm (injected program accounts)', () => {
  it('reads markets, positions, balances, marks and funding from the accounts', async () => {
    const f = await driftFixture();
    const [market] = await f.venue.loadMarkets();
    expect(market).toMatchObject({
      venueSymbol: 'SOL-PERP',
      minSizeBase: '0.01',
      sizeStepBase: '0.01',
      priceTickUsd: '0.0001',
      initialMarginFraction: 0.1, // the fixture's margin_ratio_initial 1000
      active: true,
    });
    const [pos] = await f.venue.fetchPositions();
    expect(pos).toMatchObject({
      instrument: 'SOL-USD:PERP',
      sizeBase: 2.5,
      entryPriceUsd: 180,
      unsettledPnlUsd: 0, // 2.5 × 180 − 450
      chain: 'solana:mainnet-beta',
    });
    const [bal] = await f.venue.fetchBalances();
    expect(bal?.asset).toBe('USDC');
    expect(bal?.amount).toBeCloseTo(1050, 9); // 1000 scaled × 1.05 cumulative deposit interest
    // a borrow grows with the borrow index (1.12 here), not the deposit index
    f.setUser({
      spotPositions: [{ marketIndex: 0, scaledBalance: 200n * 1_000_000_000n, balanceType: 'borrow' }],
    });
    expect((await f.venue.fetchBalances())[0]?.amount).toBeCloseTo(-224, 9);
    const [mark] = await f.venue.fetchMarks();
    expect(mark?.markPriceUsd).toBe(180);
    const funding = await f.venue.fetchFundingRate('SOL-USD:PERP');
    expect(funding.ratePerHour).toBeCloseTo(0.0018 / 180, 12);
  });

  it("reports the PerpMarket's margin_ratio_initial (parts of 1e4) as the market's initial margin fraction", async () => {
    const f = await driftFixture();
    // 5× at most: the account bytes carry 2000 at margin_ratio_initial's offset (1136)
    f.setPerpMarket({ marginRatioInitial: 2000, marginRatioMaintenance: 1000 });
    expect((await f.venue.loadMarkets())[0]?.initialMarginFraction).toBe(0.2);
    // an odd ratio converts exactly, as the decimal 0.1234 parses
    f.setPerpMarket({ marginRatioInitial: 1234 });
    expect((await f.venue.loadMarkets())[0]?.initialMarginFraction).toBe(0.1234);
    f.setPerpMarket({ marginRatioInitial: 10_000 }); // MAX_MARGIN_RATIO: 1×
    expect((await f.venue.loadMarkets())[0]?.initialMarginFraction).toBe(1);
    // outside what validate_margin allows: the bytes are not the layout decoded, nothing is reported
    for (const marginRatioInitial of [0, 10_001]) {
      f.setPerpMarket({ marginRatioInitial });
      await expect(f.venue.loadMarkets()).rejects.toMatchObject({
        code: 'VENUE_NETWORK',
        message: expect.stringMatching(/margin_ratio_initial .* outside 1\.\.=10000/),
      });
    }
  });

  it('quotes against the constant-product AMM with fee, priority fee and funding carry', async () => {
    const f = await driftFixture();
    const buy = await f.venue.quoteHedge({
      instrument: 'SOL-USD:PERP',
      side: 'buy',
      sizeBase: '1000',
      holdingHours: 10,
    });
    const sell = await f.venue.quoteHedge({
      instrument: 'SOL-USD:PERP',
      side: 'sell',
      sizeBase: '1000',
      holdingHours: 10,
    });
    // x·y = k with x = y = 1e6: buying 1000 base costs 1000·y/(x-1000) per unit → 180 × 1e6/999000.
    expect(buy.expectedPriceUsd).toBeCloseTo((180 * 1e6) / 999_000, 6);
    expect(sell.expectedPriceUsd).toBeCloseTo((180 * 1e6) / 1_001_000, 6);
    expect(buy.impactUsd).toBeGreaterThan(0);
    // State's default tier 0 (10 bps) on the fill's quote amount, 1000 × 180.18018… = 180180.180181
    // USDC at 1e-6 (rounded up): ceil(180180180181 × 100 / 100000) = 180180181 µUSDC
    expect(buy.feeUsd).toBe(180.180181);
    expect(buy.gasUsd).toBeCloseTo((8000 / 1e9) * SOL_PRICE_USD, 12);
    expect(buy.fundingCarryUsd).toBeCloseTo(180_000 * (0.0018 / 180) * 10, 9);
    expect(sell.fundingCarryUsd).toBeCloseTo(-buy.fundingCarryUsd, 9);
  });

  it("charges the taker fee of the State account's perp fee tier 0 (7 bps here) in quotes and on fills, exactly", async () => {
    const f = await driftFixture();
    // a State whose tier 0 is 7 bps taker (70 / 100000) and 1.5 bps maker; tier 1 (unused) is cheaper
    f.setState({
      perpFeeTiers: [
        {
          takerFeeNumerator: 70,
          takerFeeDenominator: 100_000,
          makerRebateNumerator: 15,
          makerRebateDenominator: 100_000,
        },
        { takerFeeNumerator: 10, takerFeeDenominator: 100_000 },
      ],
    });
    expect(await f.venue.perpFeeTier()).toEqual({
      takerFeeNumerator: 70,
      takerFeeDenominator: 100_000,
      makerRebateNumerator: 15,
      makerRebateDenominator: 100_000,
    });
    const q = await f.venue.quoteHedge({
      instrument: 'SOL-USD:PERP',
      side: 'buy',
      sizeBase: '1000',
      holdingHours: 10,
    });
    // fill quote 1000 × 180e6/999000 = 180180.18018… USDC → 180180180181 µUSDC (rounded up);
    // ceil(180180180181 × 70 / 100000) = 126126127 µUSDC
    expect(q.feeUsd).toBe(126.126127);
    expect(q.totalCostUsd).toBeCloseTo(q.feeUsd + q.impactUsd + q.gasUsd + q.fundingCarryUsd, 9);
    // A fill played into the order slot (as a keeper's fill leaves it): the fee of its quote amount.
    // 1.5 SOL for 271.8 USDC: ceil(271800000 × 70 / 100000) = 190260 µUSDC; 271.800001 rounds up
    expect(await f.venue.takerFeeQuote(0, 271_800_000n)).toBe(190_260n);
    expect(await f.venue.takerFeeQuote(0, 271_800_001n)).toBe(190_261n);
    // the market's fee_adjustment scales it as calculate_taker_fee does: −50% cuts floor(fee / 2)
    f.setPerpMarket({ feeAdjustment: -50 });
    expect(await f.venue.takerFeeQuote(0, 271_800_001n)).toBe(190_261n - 95_130n);
    const halved = await f.venue.quoteHedge({ instrument: 'SOL-USD:PERP', side: 'buy', sizeBase: '1000' });
    expect(halved.feeUsd).toBe(63.063064); // 126126127 − 63063063
    f.setPerpMarket({ feeAdjustment: 0 });
  });

  it('keeps the fee tier read from State for feeTierMaxAgeMs, then reads it again', async () => {
    const f = await driftFixture();
    const tier = (takerFeeNumerator: number) => ({ perpFeeTiers: [{ takerFeeNumerator }] });
    const fee = async () =>
      (await f.venue.quoteHedge({ instrument: 'SOL-USD:PERP', side: 'sell', sizeBase: '10' })).feeUsd;
    f.setState(tier(70));
    // 10 × 180e6/(1e6 + 10) = 1799.98200018 USDC: ceil(1799982000.18 µUSDC) × 70 / 100000, rounded up
    expect(await fee()).toBe(1.259988);
    f.setState(tier(50)); // the admin moves tier 0 to 5 bps
    f.clock.advance(299_000);
    expect(await fee()).toBe(1.259988); // still the tier read 299 s ago
    f.clock.advance(2_000);
    expect(await fee()).toBe(0.899992); // ceil(1799982001 × 50 / 100000)
    // concurrent quotes share one State read
    f.clock.advance(301_000);
    let stateReads = 0;
    const state = driftPda.state(f.programId);
    const read = f.rpc.getAccountData.bind(f.rpc);
    f.rpc.getAccountData = async (address, opts) => {
      if (address.equals(state)) stateReads++;
      return read(address, opts);
    };
    await Promise.all([fee(), fee(), fee()]);
    expect(stateReads).toBe(1);
  });

  it('a State account that is missing or does not decode gives no quote: an error naming the account and what is wrong', async () => {
    const f = await driftFixture();
    const state = driftPda.state(f.programId).toBase58();
    const quote = () =>
      f.venue.quoteHedge({ instrument: 'SOL-USD:PERP', side: 'buy', sizeBase: '1' }).catch((e: unknown) => e);
    const good = encodeStateAccount();
    const zeroTiers = Buffer.from(good);
    zeroTiers.fill(0, 8 + 160); // the fee tiers and all after them zero: fee_denominator 0
    const otherAccount = Buffer.from(good);
    otherAccount[0] = (otherAccount[0] ?? 0) ^ 0xff;
    const tooRich = encodeStateAccount({ perpFeeTiers: [{ takerFeeNumerator: 1000 }] }); // 1%: > 30 bps
    const cases: [Uint8Array, RegExp][] = [
      [zeroTiers, /fee_tiers\[0\] taker fee 0\/0 is outside what the program accepts/],
      [otherAccount, /discriminator mismatch/],
      [good.subarray(0, 500), /expected 992 bytes, got 500/],
      [tooRich, /fee_tiers\[0\] taker fee 1000\/100000 is outside what the program accepts/],
    ];
    for (const [data, reason] of cases) {
      f.setState(data);
      f.clock.advance(301_000); // past the cached tier
      const err = await quote();
      expect(err).toBeInstanceOf(VenueError);
      expect(err).toMatchObject({ code: 'VENUE_NETWORK', outcome: 'not-sent', retryable: false });
      expect((err as VenueError).message).toContain(
        `State account (perp fee tiers) ${state} could not be decoded`,
      );
      expect((err as VenueError).message).toMatch(reason);
    }
    f.svm.setAccount(driftPda.state(f.programId), {
      lamports: 0,
      data: new Uint8Array(0),
      owner: PublicKey.default,
      executable: false,
      rentEpoch: 0,
    });
    const missing = await quote();
    expect(missing).toMatchObject({ code: 'VENUE_NETWORK', outcome: 'not-sent', retryable: true });
    expect((missing as VenueError).message).toContain(`State account (perp fee tiers) ${state} not found`);
    // a market fee_adjustment outside −100..=100 is not the layout either: no fee from it
    f.setState();
    f.setPerpMarket({ feeAdjustment: 101 });
    expect(await quote()).toMatchObject({
      code: 'VENUE_NETWORK',
      message: expect.stringMatching(/PerpMarket 0 fee_adjustment 101 is outside -100\.\.=100/),
    });
  });

  it("caps a risk-increasing quote at the market's max open interest, as place_perp_order checks it", async () => {
    const f = await driftFixture();
    const BASE = 1_000_000_000n;
    // longs 900 SOL, shorts 950 SOL, cap 1000 SOL: room for 100 long, 50 short
    f.setPerpMarket({
      maxOpenInterest: 1000n * BASE,
      baseAssetAmountLong: 900n * BASE,
      baseAssetAmountShort: -950n * BASE,
    });
    const q = (side: 'buy' | 'sell', sizeBase: string) =>
      f.venue.quoteHedge({ instrument: 'SOL-USD:PERP', side, sizeBase });
    const buy = await q('buy', '250');
    expect(buy).toMatchObject({ requestedSizeBase: '250', executableSizeBase: '100' });
    expect(buy.capReason).toMatch(/max open interest: room for 100 on the long side/);
    // costs are the executable size's: 10 bps of 100 × 180 × 1e6/(1e6 − 100) = 18001.800181 USDC
    expect(buy.feeUsd).toBe(18.001801);
    const sell = await q('sell', '250');
    expect(sell.executableSizeBase).toBe('50');
    expect((await q('buy', '60')).capReason).toBeUndefined();
    // the account short 200: a buy of up to 200 reduces it, under no cap
    f.setUser({ perpPositions: [{ marketIndex: 0, baseAssetAmount: -200n * BASE }] });
    const reduce = await q('buy', '200');
    expect(reduce.executableSizeBase).toBe('200');
    expect(reduce.capReason).toBeUndefined();
    // cap 0 is no cap
    f.setPerpMarket({ maxOpenInterest: 0n, baseAssetAmountLong: 900n * BASE });
    expect((await q('buy', '5000')).executableSizeBase).toBe('5000');
  });

  it('counts the orders already working and reduce-only as place_perp_order does (is_new_order_risk_increasing)', async () => {
    const f = await driftFixture();
    const BASE = 1_000_000_000n;
    // room for 100 long, 50 short
    f.setPerpMarket({
      maxOpenInterest: 1000n * BASE,
      baseAssetAmountLong: 900n * BASE,
      baseAssetAmountShort: -950n * BASE,
    });
    const q = (side: 'buy' | 'sell', sizeBase: string, reduceOnly = false) =>
      f.venue.quoteHedge({ instrument: 'SOL-USD:PERP', side, sizeBase, reduceOnly });
    // Short 200 with a buy of 150 already working: a buy of 200 makes open bids 350 > 200, risk
    // increasing, so the program checks it against the long room (100) and refuses it (MaxOpenInterest).
    f.setUser({ perpPositions: [{ marketIndex: 0, baseAssetAmount: -200n * BASE, openBids: 150n * BASE }] });
    const buy = await q('buy', '200');
    // Before: 200, no cap (the position alone said "reduces").
    expect(buy.executableSizeBase).toBe('100');
    expect(buy.capReason).toMatch(
      /max open interest: room for 100 on the long side, 50 reduces the position/,
    );
    // 50 only reduces (open bids 150 + 50 ≤ 200): not capped
    expect((await q('buy', '50')).capReason).toBeUndefined();
    // Long 200 with a sell of 180 working (open asks −180): a sell of 60 is risk increasing; room 50.
    f.setUser({ perpPositions: [{ marketIndex: 0, baseAssetAmount: 200n * BASE, openAsks: -180n * BASE }] });
    expect((await q('sell', '60')).executableSizeBase).toBe('50');
    // Short 300, no orders working: a buy of 250 only reduces (uncapped); one of 400 is risk increasing,
    // and 300 of it still go (no cap on what reduces: before, the room of 100)
    f.setUser({ perpPositions: [{ marketIndex: 0, baseAssetAmount: -300n * BASE }] });
    expect((await q('buy', '250')).executableSizeBase).toBe('250');
    expect((await q('buy', '400')).executableSizeBase).toBe('300');
    // Reduce-only is never risk increasing (no open-interest check) and fills no more than the position.
    f.setPerpMarket({
      maxOpenInterest: 1000n * BASE,
      baseAssetAmountLong: 1000n * BASE,
      baseAssetAmountShort: -1000n * BASE,
    });
    f.setUser({ perpPositions: [{ marketIndex: 0, baseAssetAmount: -200n * BASE, openBids: 150n * BASE }] });
    expect((await q('buy', '150', true)).executableSizeBase).toBe('150');
    const over = await q('buy', '250', true);
    expect(over.executableSizeBase).toBe('200');
    expect(over.capReason).toMatch(/reduce-only: the position to reduce is 200/);
  });

  it('builds a signed v0 transaction: compute budget, then place_perp_order with its accounts', async () => {
    const f = await driftFixture();
    f.emulate();
    await f.venue.placeOrder({ clientOrderId: 'hedge-build-1', ...ORDER });
    expect(f.programRuns.at(-1)).toMatchObject({ ok: true, instruction: 'place_perp_order' });
    const tx = f.rpc.lastTx;
    expect(tx).toBeDefined();
    if (!tx) return;
    const keys = tx.message.staticAccountKeys;
    const [limitIx, priceIx, driftIx] = tx.message.compiledInstructions;
    expect(keys[limitIx?.programIdIndex ?? -1]?.equals(ComputeBudgetProgram.programId)).toBe(true);
    expect(Buffer.from(limitIx?.data ?? []).readUInt32LE(1)).toBe(300_000);
    expect(Buffer.from(priceIx?.data ?? []).readBigUInt64LE(1)).toBe(10_000n);
    expect(keys[driftIx?.programIdIndex ?? -1]?.equals(f.programId)).toBe(true);
    const data = Buffer.from(driftIx?.data ?? []);
    expect(data.subarray(0, 8).equals(PLACE_PERP_ORDER_DISCRIMINATOR)).toBe(true);
    expect(data.readBigUInt64LE(12)).toBe(1_500_000_000n); // base
    expect(data.readBigUInt64LE(20)).toBe(181_234_500n); // buy limit rounded down to the 0.0001 tick
    const accounts = (driftIx?.accountKeyIndexes ?? []).map((i) => keys[i]?.toBase58());
    expect(accounts.slice(0, 3)).toEqual([
      driftPda.state(f.programId).toBase58(),
      f.venue.userAccount.toBase58(),
      f.authority.publicKey.toBase58(),
    ]);
    // load_maps order: oracles (SOL-PERP's, then USDC's: the spot market names one, as on mainnet),
    // spot markets, perp markets; none writable for place_perp_order
    expect(accounts.slice(3)).toEqual([
      f.oracle.toBase58(),
      f.usdcOracle.toBase58(),
      driftPda.spotMarket(f.programId, 0).toBase58(),
      driftPda.perpMarket(f.programId, 0).toBase58(),
    ]);
    // writable: the user, and the authority only as the fee payer; the markets and oracles are read
    const indexes = driftIx?.accountKeyIndexes ?? [];
    expect(indexes.map((i) => tx.message.isAccountWritable(i))).toEqual([
      false,
      true,
      true,
      false,
      false,
      false,
      false,
    ]);
    expect(tx.message.header.numRequiredSignatures).toBe(1);
    expect(signatureOf(tx)).toMatch(/^[1-9A-HJ-NP-Za-km-z]{80,90}$/);
  });

  it('places, acknowledges, then reads the fill and its average price from the order slot the program keeps', async () => {
    const f = await driftFixture();
    let landedSlot = 0n;
    const open = {
      status: 'open' as const,
      orderId: 77,
      marketIndex: 0,
      direction: 'long' as const,
      baseAssetAmount: 1_500_000_000n,
      price: 181_234_500n,
    };
    f.emulate((run) => {
      landedSlot = BigInt(f.rpc.slot()); // Order.slot: the slot the placing transaction ran in
      f.setUser({
        perpPositions: [
          { marketIndex: 0, baseAssetAmount: 2_500_000_000n, quoteEntryAmount: -450_000_000n, openOrders: 1 },
        ],
        orders: [{ ...open, userOrderId: run.userOrderId, slot: landedSlot }],
      });
    });
    const placed = await f.venue.placeOrder({ clientOrderId: 'hedge-fill-1', ...ORDER });
    expect(placed).toMatchObject({ status: 'acknowledged', venueOrderId: '77', filledSizeBase: '0' });
    expect(f.orderIds.get('hedge-fill-1')?.userOrderId).toBe(1);
    // Placing the same client order id again sends nothing new.
    const sends = f.rpc.sends;
    expect((await f.venue.placeOrder({ clientOrderId: 'hedge-fill-1', ...ORDER })).status).toBe(
      'acknowledged',
    );
    expect(f.rpc.sends).toBe(sends);
    // A keeper fills it: the program marks the slot filled and keeps its amounts (it is not cleared).
    f.setUser({
      perpPositions: [{ marketIndex: 0, baseAssetAmount: 4_000_000_000n, quoteEntryAmount: -721_850_000n }],
      orders: [
        {
          ...open,
          userOrderId: 1,
          slot: landedSlot,
          status: 'filled',
          baseAssetAmountFilled: 1_500_000_000n,
          quoteAssetAmountFilled: 271_800_000n,
        },
      ],
    });
    const filled = await f.venue.getOrderByClientId('hedge-fill-1');
    expect(filled).toMatchObject({
      status: 'filled',
      filledSizeBase: '1.5',
      avgFillPriceUsd: '181.2',
      venueOrderId: '77',
    });
    expect(f.orderIds.get('hedge-fill-1')?.state).toBe('released');
    // u8 1 is free again for the next order.
    await f.venue.placeOrder({ clientOrderId: 'hedge-fill-2', ...ORDER });
    expect(f.orderIds.get('hedge-fill-2')?.userOrderId).toBe(1);
  });

  it('a User read older than the landing slot (lagging replica) never finalises the order', async () => {
    const f = await driftFixture();
    // The replica serving the User account is stuck at this slot; the order lands a slot later.
    f.rpc.lagAccount(f.venue.userAccount);
    f.rpc.advance(1);
    const openOrder = (u8: number) => ({
      status: 'open' as const,
      userOrderId: u8,
      orderId: 78,
      marketIndex: 0,
      direction: 'long' as const,
      baseAssetAmount: 1_500_000_000n,
      price: 181_234_500n,
    });
    f.emulate((run) => {
      f.setUser({
        perpPositions: [{ marketIndex: 0, baseAssetAmount: 2_500_000_000n, quoteEntryAmount: -450_000_000n }],
        orders: [openOrder(run.userOrderId)],
      });
    });
    const placed = await f.venue.placeOrder({ clientOrderId: 'hedge-lag-1', ...ORDER });
    // Landed, but the User seen is from before it: not known yet, not "cancelled, 0 filled".
    expect(placed).toMatchObject({ status: 'sent', filledSizeBase: '0' });
    expect(f.orderIds.get('hedge-lag-1')?.state).toBe('live');
    f.rpc.catchUp();
    expect(await f.venue.getOrderByClientId('hedge-lag-1')).toMatchObject({
      status: 'acknowledged',
      venueOrderId: '78',
    });
  });

  it('an order landing between the User read and the status read is not finalised as cancelled', async () => {
    const f = await driftFixture();
    f.rpc.dropNext(1000);
    const crash = new Error('worker killed');
    const venue = f.withSleep(async () => {
      throw crash;
    });
    await expect(venue.placeOrder({ clientOrderId: 'hedge-race-1', ...ORDER })).rejects.toBe(crash);
    const rec = f.orderIds.get('hedge-race-1');
    const signature = rec?.signature ?? '';
    // The transaction lands right after the lookup has read the User account.
    const read = f.rpc.getAccountData.bind(f.rpc);
    let landed = false;
    f.rpc.getAccountData = async (address, opts) => {
      const data = await read(address, opts);
      if (!landed && address.equals(f.venue.userAccount)) {
        landed = true;
        f.setUser({
          perpPositions: [
            { marketIndex: 0, baseAssetAmount: 2_500_000_000n, quoteEntryAmount: -450_000_000n },
          ],
          orders: [
            {
              status: 'open',
              userOrderId: rec?.userOrderId ?? -1,
              orderId: 79,
              marketIndex: 0,
              direction: 'long',
              baseAssetAmount: 1_500_000_000n,
            },
          ],
        });
        f.rpc.land(signature);
      }
      return data;
    };
    expect((await venue.getOrderByClientId('hedge-race-1'))?.status).toBe('sent');
    expect(f.orderIds.get('hedge-race-1')?.state).toBe('live');
    expect(await venue.getOrderByClientId('hedge-race-1')).toMatchObject({
      status: 'acknowledged',
      venueOrderId: '79',
    });
  });

  it('blockhash expired before confirmation: outcome unknown, then resolved by user order id', async () => {
    const f = await driftFixture({ sleepBlocks: 40 });
    f.rpc.dropNext(1000);
    const err = await f.venue.placeOrder({ clientOrderId: 'hedge-exp-1', ...ORDER }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotConfirmedError);
    expect((err as NotConfirmedError).outcome).toBe('unknown');
    expect((err as NotConfirmedError).details).toMatchObject({ lastValidBlockHeight: expect.any(Number) });
    // It never landed and no longer can: the lookup says "not received", the id is free, a retry sends.
    expect(await f.venue.getOrderByClientId('hedge-exp-1')).toBeNull();
    expect(f.orderIds.get('hedge-exp-1')).toBeUndefined();

    // Second case: the transaction did land although this node never reported it.
    f.rpc.dropNext(1000);
    const err2 = await f.venue
      .placeOrder({ clientOrderId: 'hedge-exp-2', ...ORDER })
      .catch((e: unknown) => e);
    expect(err2).toBeInstanceOf(NotConfirmedError);
    const u8 = f.orderIds.get('hedge-exp-2')?.userOrderId ?? -1;
    f.setUser({
      orders: [
        {
          status: 'open',
          userOrderId: u8,
          orderId: 501,
          marketIndex: 0,
          baseAssetAmount: 1_500_000_000n,
          baseAssetAmountFilled: 500_000_000n,
          quoteAssetAmountFilled: 90_500_000n,
        },
      ],
    });
    const found = await f.venue.getOrderByClientId('hedge-exp-2');
    expect(found).toMatchObject({
      status: 'partially-filled',
      filledSizeBase: '0.5',
      avgFillPriceUsd: '181',
      venueOrderId: '501',
    });
  });

  it('a read failing after the order transaction went out says outcome unknown, never not-sent', async () => {
    const f = await driftFixture();
    let landed = false;
    f.emulate((run) => {
      landed = true;
      f.setUser({
        perpPositions: [{ marketIndex: 0, baseAssetAmount: 2_500_000_000n, openOrders: 1 }],
        orders: [
          {
            status: 'open',
            userOrderId: run.userOrderId,
            orderId: 88,
            slot: BigInt(f.rpc.slot()),
            marketIndex: 0,
            direction: 'long',
            baseAssetAmount: 1_500_000_000n,
          },
        ],
      });
    });
    // The node starts refusing User reads once the order has landed (rate limit, replica down).
    const read = f.rpc.getAccountData.bind(f.rpc);
    let refuse = true;
    f.rpc.getAccountData = async (address, opts) => {
      if (refuse && landed && address.equals(f.venue.userAccount)) throw new Error('429 Too Many Requests');
      return read(address, opts);
    };
    const err = await f.venue
      .placeOrder({ clientOrderId: 'hedge-read-1', ...ORDER })
      .catch((e: unknown) => e);
    expect(f.rpc.sends).toBe(1);
    // The order is on chain: a worker told `not-sent` would re-send it, or, blocked by a gate, record it
    // as cancelled ("the venue never had it") while it works.
    expect(err).toBeInstanceOf(VenueError);
    expect(err).toMatchObject({ outcome: 'unknown', retryable: true, clientOrderId: 'hedge-read-1' });
    // The same on a repeat of the send while the node still refuses, and nothing is sent twice.
    await expect(f.venue.placeOrder({ clientOrderId: 'hedge-read-1', ...ORDER })).rejects.toMatchObject({
      outcome: 'unknown',
    });
    expect(f.rpc.sends).toBe(1);
    refuse = false;
    expect(await f.venue.getOrderByClientId('hedge-read-1')).toMatchObject({
      status: 'acknowledged',
      venueOrderId: '88',
    });
  });

  it('an unconfirmed transaction whose blockhash is still valid is reported as sent, not missing', async () => {
    const f = await driftFixture();
    f.rpc.dropNext(1000);
    // The worker dies while confirming (the first poll's sleep throws).
    const crash = new Error('worker killed');
    const venue = f.withSleep(async () => {
      throw crash;
    });
    await expect(venue.placeOrder({ clientOrderId: 'hedge-pend-1', ...ORDER })).rejects.toBe(crash);
    const rec = f.orderIds.get('hedge-pend-1');
    expect(rec?.signature).toBeDefined();
    expect(rec?.lastValidBlockHeight).toBeGreaterThan(await f.rpc.getBlockHeight());
    expect((await venue.getOrderByClientId('hedge-pend-1'))?.status).toBe('sent');
    f.rpc.advance(151);
    expect(await venue.getOrderByClientId('hedge-pend-1')).toBeNull();
  });

  it('rejects sizes off the step and below the minimum before sending anything', async () => {
    const f = await driftFixture();
    await expect(
      f.venue.placeOrder({ clientOrderId: 'bad-1', ...ORDER, sizeBase: '0.005' }),
    ).rejects.toMatchObject({ code: 'VENUE_INVALID_ORDER', outcome: 'rejected' });
    await expect(
      f.venue.placeOrder({ clientOrderId: 'bad-2', ...ORDER, sizeBase: '1.234' }),
    ).rejects.toBeInstanceOf(VenueError);
    expect(f.rpc.sends).toBe(0);
  });

  it('refuses a bad limit price or size before a user order id is assigned or anything is sent', async () => {
    const f = await driftFixture();
    f.emulate();
    // Before: a negative price threw the encoder's RangeError after the u8 was assigned; a zero price
    // went out and the program refused it ("Limit order price == 0"), the fee paid.
    const bad: [string, Partial<OrderRequest>][] = [
      ['negative limit', { limitPriceUsd: '-181.2' }],
      ['zero limit', { limitPriceUsd: '0' }],
      ['buy limit rounding down to 0 on the 0.0001 tick', { limitPriceUsd: '0.00005' }],
      ['limit past u64 in PRICE_PRECISION', { limitPriceUsd: '18446744073710' }],
      ['negative bound on a market order', { orderType: 'market', limitPriceUsd: '-1' }],
      ['size past u64 in BASE_PRECISION', { sizeBase: '18446744074' }],
    ];
    const check = async (label: string, clientOrderId: string, over: Partial<OrderRequest>) => {
      const err = await f.venue.placeOrder({ clientOrderId, ...ORDER, ...over }).catch((e: unknown) => e);
      expect(err, label).toBeInstanceOf(InvalidOrderError);
      expect(err, label).toMatchObject({ outcome: 'rejected', retryable: false, clientOrderId });
      expect(f.orderIds.get(clientOrderId), label).toBeUndefined();
    };
    for (const [i, [label, over]] of bad.entries()) await check(label, `bad-px-${i}`, over);
    // A market stating no minimum size or step (0) still takes no size that is not positive.
    f.setPerpMarket({ minOrderSize: 0n, orderStepSize: 0n });
    for (const [i, sizeBase] of ['0', '-1.5'].entries())
      await check(`size ${sizeBase}`, `bad-size-${i}`, { orderType: 'market', sizeBase });
    expect(f.rpc.sends).toBe(0);
    expect(f.programRuns).toHaveLength(0);
    expect(f.orderIds.liveCount).toBe(0);
  });

  it('has no funding rate (an error, never 0) while the market has no positive oracle TWAP', async () => {
    const f = await driftFixture();
    const instrument = 'SOL-USD:PERP';
    for (const over of [{ lastOraclePriceTwap: -5n }, { lastOraclePriceTwap: 0n, lastOraclePrice: 0n }]) {
      f.setPerpMarket(over);
      expect(fundingRatePerHour(await f.venue.readPerpMarket(0))).toBeUndefined();
      await expect(f.venue.fetchFundingRate(instrument)).rejects.toMatchObject({
        code: 'VENUE_STALE_ORACLE',
        outcome: 'not-sent',
      });
    }
    // A quote's funding carry is not priced at 0 either.
    f.setPerpMarket({ lastOraclePriceTwap: -5n });
    await expect(f.venue.quoteHedge({ instrument, side: 'buy', sizeBase: '1' })).rejects.toMatchObject({
      code: 'VENUE_STALE_ORACLE',
    });
    // A TWAP not set yet (0) beside a positive last oracle price: the rate is per unit of that price.
    f.setPerpMarket({ lastOraclePriceTwap: 0n });
    expect((await f.venue.fetchFundingRate(instrument)).ratePerHour).toBeCloseTo(0.0018 / 180, 12);
  });

  it('a market with no positive oracle price gives no quote: a stale-oracle venue error (it was a ZodError)', async () => {
    const f = await driftFixture();
    f.setPerpMarket({ lastOraclePrice: 0n }); // its TWAP still positive: funding has a price, the quote none
    await expect(
      f.venue.quoteHedge({ instrument: 'SOL-USD:PERP', side: 'buy', sizeBase: '1' }),
    ).rejects.toMatchObject({ code: 'VENUE_STALE_ORACLE', outcome: 'not-sent' });
  });

  it('a market with no positive oracle price has no mark: a stale-oracle venue error, not a price of 0', async () => {
    const f = await driftFixture();
    for (const lastOraclePrice of [0n, -5_000_000n]) {
      f.setPerpMarket({ lastOraclePrice });
      // Before: markPriceUsd 0 (or −5) and indexPriceUsd the same, which the Mark schema refuses.
      await expect(f.venue.fetchMarks()).rejects.toMatchObject({ code: 'VENUE_STALE_ORACLE' });
    }
  });

  it('refuses an instrument mapped to a perp market that is not its own (wrong index, or a market in other units)', async () => {
    const f = await driftFixture();
    const misconfigured = { code: 'VENUE_MISCONFIGURED', outcome: 'not-sent', retryable: false };
    // SOL-USD:PERP at index 0, where the market is ETH-PERP: a wrong index in params.markets.
    f.setPerpMarket({ name: 'ETH-PERP' });
    // Before: ETH's price as SOL's mark, and SOL hedges sent to ETH-PERP.
    await expect(f.venue.fetchMarks()).rejects.toMatchObject(misconfigured);
    await expect(f.venue.loadMarkets()).rejects.toMatchObject(misconfigured);
    await expect(
      f.venue.quoteHedge({ instrument: 'SOL-USD:PERP', side: 'buy', sizeBase: '1' }),
    ).rejects.toMatchObject(misconfigured);
    f.emulate();
    await expect(f.venue.placeOrder({ clientOrderId: 'hedge-wrong-mkt', ...ORDER })).rejects.toMatchObject(
      misconfigured,
    );
    // A market trading 1M of the base per unit (1MBONK-PERP) is not the base's own either.
    f.setPerpMarket({ name: '1MSOL-PERP' });
    await expect(f.venue.fetchPositions()).rejects.toMatchObject(misconfigured);
    expect(f.rpc.sends).toBe(0);
    expect((await f.venue.health()).ok).toBe(false);
    f.setPerpMarket({ name: 'sol-perp' }); // the name's case does not matter
    expect((await f.venue.fetchMarks())[0]?.markPriceUsd).toBe(180);
  });

  it('an order transaction that lands failed names the Drift error and is classed by it (no margin, bad order, stale oracle, paused)', async () => {
    const f = await driftFixture();
    const cases = [
      [6003, 'InsufficientFundsError', 'VENUE_INSUFFICIENT_FUNDS', false, 'InsufficientCollateral (6003)'],
      [6264, 'StaleOracleError', 'VENUE_STALE_ORACLE', true, 'OracleStaleForMargin (6264)'],
      [6147, 'VenueHaltedError', 'VENUE_HALTED', true, 'MarketPlaceOrderPaused (6147)'],
      [6109, 'InvalidOrderError', 'VENUE_INVALID_ORDER', false, 'OrderBreachesOraclePriceLimits (6109)'],
      [6154, 'RevertedError', 'VENUE_REVERTED', true, 'MaxOpenInterest (6154)'],
      [6999, 'RevertedError', 'VENUE_REVERTED', false, 'Custom 6999 (6999)'],
    ] as const;
    for (const [i, [code, name, errorCode, retryable, what]] of cases.entries()) {
      // The program ran and failed: the transaction lands with the instruction's custom error.
      f.rpc.advance(1); // a new blockhash: the next order's bytes differ (it reuses the released u8)
      f.rpc.emulate = () => ({ err: { InstructionError: [2, { Custom: code }] } });
      const clientOrderId = `hedge-err-${i}`;
      const err = await f.venue.placeOrder({ clientOrderId, ...ORDER }).catch((e: unknown) => e);
      // Before: every one a RevertedError (VENUE_REVERTED, not retryable) with the raw JSON error.
      expect(err, what).toMatchObject({
        name,
        code: errorCode,
        outcome: 'rejected',
        retryable,
        clientOrderId,
        shortMessage: expect.stringContaining(`failed on chain: Drift ${what}`),
        details: { programErrorCode: code, instruction: 2 },
      });
      expect(await f.venue.getOrderByClientId(clientOrderId), what).toMatchObject({
        status: 'rejected',
        error: expect.stringContaining(what),
      });
    }
  });

  it('all 255 user order ids in use: a new order is not sent, rate limited and retryable (it was an unclassified error)', async () => {
    const f = await driftFixture();
    for (let i = 0; i < 255; i++)
      await f.orderIds.assign(
        {
          clientOrderId: `held-${i}`,
          marketIndex: 0,
          instrument: 'SOL-USD:PERP',
          side: 'buy',
          orderType: 'market',
          sizeBase: '1',
          reduceOnly: false,
          baseBeforeRaw: '0',
        },
        new Set(),
      );
    const sends = f.rpc.sends;
    await expect(f.venue.placeOrder({ clientOrderId: 'one-too-many', ...ORDER })).rejects.toMatchObject({
      code: 'VENUE_RATE_LIMIT',
      outcome: 'not-sent',
      retryable: true,
      clientOrderId: 'one-too-many',
    });
    expect(f.rpc.sends).toBe(sends);
  });

  it('a client id pruned from the id map answers with how its order ended (its tombstone), never unknown for ever; one never seen is null', async () => {
    const f = await driftFixture({ historyLimit: 1 });
    // hedge-old-1 works, then fills 1.5 at 181.2: read from its slot, its record released.
    const { landedSlot, u8 } = await placeWorkingLong(f, 'hedge-old-1', 91);
    f.setUser({
      perpPositions: [{ marketIndex: 0, baseAssetAmount: 4_000_000_000n, quoteEntryAmount: -721_800_000n }],
      orders: [
        {
          status: 'filled',
          userOrderId: u8,
          orderId: 91,
          slot: landedSlot,
          marketIndex: 0,
          direction: 'long',
          baseAssetAmount: 1_500_000_000n,
          baseAssetAmountFilled: 1_500_000_000n,
          quoteAssetAmountFilled: 271_800_000n,
        },
      ],
    });
    const asEnded = {
      clientOrderId: 'hedge-old-1',
      venue: 'drift-sol',
      instrument: 'SOL-USD:PERP',
      side: 'buy',
      orderType: 'limit',
      sizeBase: '1.5',
      limitPriceUsd: ORDER.limitPriceUsd,
      reduceOnly: false,
      status: 'filled',
      filledSizeBase: '1.5',
      avgFillPriceUsd: '181.2',
      venueOrderId: '91',
    };
    expect(await f.venue.getOrderByClientId('hedge-old-1')).toMatchObject(asEnded);
    // A later order ends (the program takes it, nothing fills): hedge-old-1's record is pruned.
    f.clock.advance(1000);
    f.rpc.advance(1);
    f.emulate();
    expect((await f.venue.placeOrder({ clientOrderId: 'hedge-old-2', ...ORDER })).status).toBe('cancelled');
    expect(f.orderIds.get('hedge-old-1')).toBeUndefined(); // pruned: only one released record is kept
    expect(f.orderIds.isPruned('hedge-old-1')).toBe(true);
    const sends = f.rpc.sends;
    // Before: DriftOrderRecordPrunedError (outcome unknown) on every lookup, for ever: the worker's
    // reconciler never resolved the order. Now: the order as it ended, the same after a restart.
    const found = await f.venue.getOrderByClientId('hedge-old-1');
    expect(found).toMatchObject(asEnded);
    expect(Order.parse(found)).toEqual(found);
    // Placing it again sends nothing (it would fill the hedge twice); cancelling it has nothing to do.
    expect(await f.venue.placeOrder({ clientOrderId: 'hedge-old-1', ...ORDER })).toMatchObject(asEnded);
    expect(await f.venue.cancelOrder('hedge-old-1')).toMatchObject(asEnded);
    expect(f.rpc.sends).toBe(sends);
    const restarted = await UserOrderIdMap.open({ store: f.store, clock: f.clock });
    expect(restarted.pruned('hedge-old-1')).toMatchObject({
      status: 'filled',
      filledSizeBase: '1.5',
      avgFillPriceUsd: '181.2',
    });
    expect(await f.venue.getOrderByClientId('hedge-never-sent')).toBeNull();
    expect((await f.venue.getOrderByClientId('hedge-old-2'))?.status).toBe('cancelled');
  });

  it("a bare tombstone (an earlier build's: only the id's hash) still reads as outcome unknown, never null", async () => {
    const key = createHash('sha256').update('hedge-legacy-1').digest('base64url').slice(0, 16);
    const store = memoryUserOrderIdStore();
    await store.save([{ pruned: [key] }]);
    const f = await driftFixture({ store });
    expect(f.orderIds.isPruned('hedge-legacy-1')).toBe(true);
    const unknown = { code: 'VENUE_ORDER_NOT_FOUND', outcome: 'unknown', retryable: false };
    await expect(f.venue.getOrderByClientId('hedge-legacy-1')).rejects.toMatchObject(unknown);
    await expect(f.venue.placeOrder({ clientOrderId: 'hedge-legacy-1', ...ORDER })).rejects.toMatchObject(
      unknown,
    );
    expect(f.rpc.sends).toBe(0);
  });
});

/** The Drift instruction's accounts (named ones, then remaining) with their flags. */
/**
 * Places ORDER as `clientOrderId`, the program answering with a 1.5 SOL long working as order `orderId`
 * beside a +2.5 SOL position: the slot the order landed in, and its u8 user order id.
 */
async function placeWorkingLong(
  f: DriftFixture,
  clientOrderId: string,
  orderId: number,
): Promise<{ landedSlot: bigint; u8: number }> {
  let landedSlot = 0n;
  f.emulate((run) => {
    landedSlot = BigInt(f.rpc.slot());
    f.setUser({
      perpPositions: [
        { marketIndex: 0, baseAssetAmount: 2_500_000_000n, quoteEntryAmount: -450_000_000n, openOrders: 1 },
      ],
      orders: [
        {
          status: 'open',
          userOrderId: run.userOrderId,
          orderId,
          slot: landedSlot,
          marketIndex: 0,
          direction: 'long',
          baseAssetAmount: 1_500_000_000n,
        },
      ],
    });
  });
  await f.venue.placeOrder({ clientOrderId, ...ORDER });
  return { landedSlot, u8: f.orderIds.get(clientOrderId)?.userOrderId ?? -1 };
}

function driftAccounts(f: DriftFixture, tx: VersionedTransaction) {
  const keys = tx.message.staticAccountKeys;
  const ix = tx.message.compiledInstructions.find((i) => keys[i.programIdIndex]?.equals(f.programId));
  return {
    data: Buffer.from(ix?.data ?? []),
    metas: (ix?.accountKeyIndexes ?? []).map((i) => ({
      key: keys[i]?.toBase58(),
      writable: tx.message.isAccountWritable(i),
      signer: tx.message.isAccountSigner(i),
    })),
  };
}

describe('protocol-v2 instruction use, checked by the fixture program stand-in (test/drift-program.ts)', () => {
  it('carries every market and oracle the margin check reads: positions in other markets, spot balances, USDC oracle', async () => {
    const f = await driftFixture();
    // An ETH-PERP position (market 2) and a SOL spot deposit (spot market 1), each with its own oracle.
    const ethOracle = f.putPerpMarket({ marketIndex: 2, name: 'ETH-PERP', status: 'active' });
    const solSpotOracle = f.putSpotMarket({
      marketIndex: 1,
      name: 'SOL',
      decimals: 9,
      cumulativeDepositInterest: 10_000_000_000n,
    });
    f.setUser({
      spotPositions: [
        { marketIndex: 0, scaledBalance: 1000n * 1_000_000_000n, balanceType: 'deposit' },
        { marketIndex: 1, scaledBalance: 3n * 1_000_000_000n, balanceType: 'deposit' },
      ],
      perpPositions: [{ marketIndex: 2, baseAssetAmount: -1_000_000_000n, quoteAssetAmount: 3_500_000_000n }],
    });
    f.emulate();
    const placed = await f.venue.placeOrder({
      clientOrderId: 'hedge-margin-1',
      ...ORDER,
      orderType: 'market',
    });
    expect(f.programRuns.at(-1)).toMatchObject({ ok: true, instruction: 'place_perp_order' });
    expect(placed.status).not.toBe('rejected');
    const tx = f.rpc.lastTx;
    if (!tx) throw new Error('nothing sent');
    const remaining = driftAccounts(f, tx).metas.slice(3);
    expect(remaining.map((m) => m.key)).toEqual([
      f.oracle.toBase58(), // SOL-PERP (the order's market)
      ethOracle.toBase58(), // ETH-PERP (the open short)
      f.usdcOracle.toBase58(), // USDC, every perp market's quote spot market
      solSpotOracle.toBase58(), // SOL spot (the deposit)
      driftPda.spotMarket(f.programId, 0).toBase58(),
      driftPda.spotMarket(f.programId, 1).toBase58(),
      driftPda.perpMarket(f.programId, 0).toBase58(),
      driftPda.perpMarket(f.programId, 2).toBase58(),
    ]);
    expect(remaining.every((m) => !m.writable && !m.signer)).toBe(true);
  });

  it('the fixture program refuses an order transaction missing a market or oracle the program reads', async () => {
    const f = await driftFixture();
    f.emulate();
    await f.venue.placeOrder({ clientOrderId: 'hedge-miss-1', ...ORDER });
    const tx = f.rpc.lastTx;
    if (!tx) throw new Error('nothing sent');
    // The same transaction without the USDC oracle account: the margin check cannot price the deposit.
    const { metas } = driftAccounts(f, tx);
    const without = (key: string) => {
      const ix = new TransactionInstruction({
        programId: f.programId,
        keys: metas
          .filter((m) => m.key !== key)
          .map((m) => ({ pubkey: new PublicKey(m.key ?? ''), isSigner: m.signer, isWritable: m.writable })),
        data: driftAccounts(f, tx).data,
      });
      const msg = new TransactionMessage({
        payerKey: f.authority.publicKey,
        recentBlockhash: tx.message.recentBlockhash,
        instructions: [ix],
      }).compileToV0Message();
      return runDriftProgram(f.svm, f.programId, new VersionedTransaction(msg));
    };
    expect(without(f.usdcOracle.toBase58())).toMatchObject({ ok: false, error: 'OracleNotFound' });
    expect(without(driftPda.spotMarket(f.programId, 0).toBase58())).toMatchObject({
      ok: false,
      error: 'SpotMarketNotFound',
    });
    expect(without(driftPda.perpMarket(f.programId, 0).toBase58())).toMatchObject({
      ok: false,
      error: 'PerpMarketNotFound',
    });
  });

  it('sends an IOC order as place_and_take_perp_order (place_perp_order refuses IOC) and reads its fill from the slot', async () => {
    const f = await driftFixture();
    f.emulate((run) => {
      // place_and_take fills 1.0 of the 1.5 against the AMM at 181.1 and cancels the rest (IOC).
      f.setUser({
        perpPositions: [{ marketIndex: 0, baseAssetAmount: 3_500_000_000n, quoteEntryAmount: -631_100_000n }],
        orders: [
          {
            status: 'canceled',
            userOrderId: run.userOrderId,
            orderId: 90,
            slot: BigInt(f.rpc.slot()),
            marketIndex: 0,
            direction: 'long',
            baseAssetAmount: 1_500_000_000n,
            baseAssetAmountFilled: 1_000_000_000n,
            quoteAssetAmountFilled: 181_100_000n,
            price: 181_234_500n,
            immediateOrCancel: true,
          },
        ],
      });
    });
    const order = await f.venue.placeOrder({ clientOrderId: 'hedge-ioc-1', ...ORDER, orderType: 'ioc' });
    expect(f.programRuns.at(-1)).toMatchObject({
      ok: true,
      instruction: 'place_and_take_perp_order',
      params: { bitFlags: 1, postOnly: 0, orderType: 1 },
    });
    expect(order).toMatchObject({
      status: 'cancelled',
      filledSizeBase: '1',
      avgFillPriceUsd: '181.1',
      venueOrderId: '90',
    });
    const tx = f.rpc.lastTx;
    if (!tx) throw new Error('nothing sent');
    const { data, metas } = driftAccounts(f, tx);
    expect(data.subarray(0, 8).equals(PLACE_AND_TAKE_PERP_ORDER_DISCRIMINATOR)).toBe(true);
    expect(data.at(-1)).toBe(0); // success_condition: None
    expect(metas.slice(0, 4)).toEqual([
      { key: driftPda.state(f.programId).toBase58(), writable: false, signer: false },
      { key: f.venue.userAccount.toBase58(), writable: true, signer: false },
      {
        key: driftPda.userStats(f.programId, f.authority.publicKey).toBase58(),
        writable: true,
        signer: false,
      },
      // writable only as the transaction's fee payer
      { key: f.authority.publicKey.toBase58(), writable: true, signer: true },
    ]);
    // the order's perp market is written by the fill
    expect(metas.find((m) => m.key === driftPda.perpMarket(f.programId, 0).toBase58())?.writable).toBe(true);
  });

  it('reads an ended order from its own slot even when the position moved for other reasons', async () => {
    const f = await driftFixture();
    const { landedSlot, u8 } = await placeWorkingLong(f, 'hedge-slot-1', 81);
    // It expired after 0.5 filled at 180.5, while a liquidation-transfer added 2 SOL to the position:
    // the position says +2.5, the slot says 0.5 and cancelled.
    f.setUser({
      perpPositions: [{ marketIndex: 0, baseAssetAmount: 5_000_000_000n, quoteEntryAmount: -900_000_000n }],
      orders: [
        {
          status: 'canceled',
          userOrderId: u8,
          orderId: 81,
          slot: landedSlot,
          marketIndex: 0,
          direction: 'long',
          baseAssetAmount: 1_500_000_000n,
          baseAssetAmountFilled: 500_000_000n,
          quoteAssetAmountFilled: 90_250_000n,
        },
      ],
    });
    expect(await f.venue.getOrderByClientId('hedge-slot-1')).toMatchObject({
      status: 'cancelled',
      filledSizeBase: '0.5',
      avgFillPriceUsd: '180.5',
    });
  });

  it('falls back to the position change when a later order took the slot, or the slot is an older order with the same u8', async () => {
    const f = await driftFixture();
    f.rpc.advance(10);
    const { landedSlot, u8 } = await placeWorkingLong(f, 'hedge-reuse-1', 82);
    // The slot now holds a filled order with the same u8 from another (earlier) slot: not this order.
    f.setUser({
      perpPositions: [{ marketIndex: 0, baseAssetAmount: 4_000_000_000n, quoteEntryAmount: -721_800_000n }],
      orders: [
        {
          status: 'filled',
          userOrderId: u8,
          orderId: 12,
          slot: landedSlot - 1n,
          marketIndex: 0,
          direction: 'long',
          baseAssetAmount: 1_000_000_000n,
          baseAssetAmountFilled: 1_000_000_000n,
          quoteAssetAmountFilled: 170_000_000n,
        },
      ],
    });
    const found = await f.venue.getOrderByClientId('hedge-reuse-1');
    expect(found).toMatchObject({ status: 'filled', filledSizeBase: '1.5' });
    expect(found).not.toHaveProperty('avgFillPriceUsd');
  });

  it('an ended order of ours is recorded from its slot before a new order takes that slot (it kept its average price)', async () => {
    const f = await driftFixture();
    const { landedSlot, u8 } = await placeWorkingLong(f, 'hedge-seq-1', 85);
    // It fills at 181.2; nobody asks before the next order goes out.
    const filledA = {
      status: 'filled' as const,
      userOrderId: u8,
      orderId: 85,
      slot: landedSlot,
      marketIndex: 0,
      direction: 'long' as const,
      baseAssetAmount: 1_500_000_000n,
      baseAssetAmountFilled: 1_500_000_000n,
      quoteAssetAmountFilled: 271_800_000n,
    };
    const position = { marketIndex: 0, baseAssetAmount: 4_000_000_000n, quoteEntryAmount: -721_800_000n };
    f.setUser({ perpPositions: [position], orders: [filledA] });
    f.rpc.advance(1);
    // The program puts the next order in the first slot that is not open: hedge-seq-1's.
    f.emulate((run) => {
      f.setUser({
        perpPositions: [{ ...position, openOrders: 1 }],
        orders: [
          {
            status: 'open',
            userOrderId: run.userOrderId,
            orderId: 86,
            slot: BigInt(f.rpc.slot()),
            marketIndex: 0,
            direction: 'short',
            baseAssetAmount: 1_000_000_000n,
          },
        ],
      });
    });
    await f.venue.placeOrder({ clientOrderId: 'hedge-seq-2', ...ORDER, side: 'sell', sizeBase: '1' });
    // Before: its slot gone, the fill was inferred from the position change, without its average price.
    expect(await f.venue.getOrderByClientId('hedge-seq-1')).toMatchObject({
      status: 'filled',
      filledSizeBase: '1.5',
      avgFillPriceUsd: '181.2',
      venueOrderId: '85',
    });
  });

  it("two orders in flight on one market, their slots taken: one order's fill is never given to the other", async () => {
    const f = await driftFixture();
    // The program leaves each order working; the User account collects them.
    const working: NonNullable<Parameters<DriftFixture['setUser']>[0]['orders']> = [];
    f.emulate((run) => {
      working.push({
        status: 'open',
        userOrderId: run.userOrderId,
        orderId: 300 + run.userOrderId,
        slot: BigInt(f.rpc.slot()),
        marketIndex: 0,
        direction: 'long',
        baseAssetAmount: 1_500_000_000n,
      });
      f.setUser({
        perpPositions: [{ marketIndex: 0, baseAssetAmount: 2_500_000_000n, openOrders: working.length }],
        orders: working,
      });
    });
    const place = async (clientOrderId: string) => {
      await f.venue.placeOrder({ clientOrderId, ...ORDER });
      f.clock.advance(1000);
      f.rpc.advance(1);
    };
    // Slots taken by orders another client of the account placed later (nothing of ours).
    const foreign = [150, 151].map((userOrderId) => ({
      status: 'open' as const,
      userOrderId,
      orderId: 400 + userOrderId,
      slot: BigInt(f.rpc.slot() + 50),
      marketIndex: 0,
      direction: 'short' as const,
      baseAssetAmount: 10_000_000n,
    }));

    // Both slots gone: hedge-two-a filled 1.5 and hedge-two-b expired with nothing, or the other way
    // round; the position (+1.5) cannot tell which.
    await place('hedge-two-a');
    await place('hedge-two-b');
    f.setUser({ perpPositions: [{ marketIndex: 0, baseAssetAmount: 4_000_000_000n }], orders: foreign });
    const b = await f.venue.getOrderByClientId('hedge-two-b');
    // Before: { status: 'filled', filledSizeBase: '1.5' }, hedge-two-a's fill, as if proven. Then:
    // 'cancelled' with the least (0), terminal: the hedge placed again although it may have filled.
    // Now: not terminal, the range in its error and record, which stays live (not pruned, its u8 kept).
    expect(b).toMatchObject({
      status: 'outcome-unknown',
      filledSizeBase: '0',
      error: expect.stringMatching(/unresolved.* 0 to 1\.5 base .*hedge-two-a/),
    });
    expect(f.orderIds.get('hedge-two-b')).toMatchObject({
      state: 'live',
      filledBoundsBase: { min: '0', max: '1.5' },
    });
    expect(f.orderIds.get('hedge-two-b')).not.toHaveProperty('final');
    expect(await f.venue.getOrderByClientId('hedge-two-a')).toMatchObject({
      status: 'outcome-unknown',
      filledSizeBase: '0',
      error: expect.stringMatching(/unresolved.* 0 to 1\.5 base .*hedge-two-b/),
    });
    // Nothing to cancel (it has ended), and placing it again sends nothing: the same answer.
    const sends = f.rpc.sends;
    expect(await f.venue.cancelOrder('hedge-two-a')).toMatchObject({ status: 'outcome-unknown' });
    expect(await f.venue.placeOrder({ clientOrderId: 'hedge-two-a', ...ORDER })).toMatchObject({
      status: 'outcome-unknown',
    });
    expect(f.rpc.sends).toBe(sends);
    await expect(f.venue.fetchFills({ clientOrderId: 'hedge-two-a' })).rejects.toMatchObject({
      code: 'VENUE_NOT_SUPPORTED',
    });

    // The later order's end is known (its slot is still there): the earlier one's part is proven.
    working.length = 0;
    f.clock.advance(1000);
    f.setUser({ perpPositions: [{ marketIndex: 0, baseAssetAmount: 2_500_000_000n }], orders: foreign });
    await place('hedge-two-c');
    await place('hedge-two-d');
    const d = f.orderIds.get('hedge-two-d');
    f.setUser({
      perpPositions: [{ marketIndex: 0, baseAssetAmount: 4_000_000_000n }],
      orders: [
        foreign[0] ?? {},
        {
          status: 'filled',
          userOrderId: d?.userOrderId ?? -1,
          orderId: 9,
          slot: BigInt(d?.landedSlot ?? -1),
          marketIndex: 0,
          direction: 'long',
          baseAssetAmount: 1_500_000_000n,
          baseAssetAmountFilled: 1_500_000_000n,
          quoteAssetAmountFilled: 271_500_000n,
        },
      ],
    });
    // Before: hedge-two-c { status: 'filled', filledSizeBase: '1.5' }, hedge-two-d's fill.
    const c = await f.venue.getOrderByClientId('hedge-two-c');
    expect(c).toMatchObject({ status: 'cancelled', filledSizeBase: '0' });
    expect(c).not.toHaveProperty('error');
    expect(await f.venue.getOrderByClientId('hedge-two-d')).toMatchObject({
      status: 'filled',
      filledSizeBase: '1.5',
      avgFillPriceUsd: '181',
    });
    // The earlier pair is still unresolved, its range kept from what was known when it ended (the
    // position has moved since, for reasons the adapter does not see: it is not read again).
    expect(await f.venue.getOrderByClientId('hedge-two-b')).toMatchObject({
      status: 'outcome-unknown',
      error: expect.stringMatching(/ 0 to 1\.5 base /),
    });
  });

  it("a fill range closes once the other order's fill is known: outcome unknown until then, never the least as terminal", async () => {
    const f = await driftFixture();
    const { u8 } = await placeWorkingLong(f, 'hedge-rng-e', 87);
    f.clock.advance(1000);
    f.rpc.advance(1);
    // hedge-rng-g goes out but is not seen to land (the worker dies while confirming).
    f.rpc.dropNext(1000);
    const crash = new Error('worker killed');
    const dying = f.withSleep(async () => {
      throw crash;
    });
    await expect(dying.placeOrder({ clientOrderId: 'hedge-rng-g', ...ORDER })).rejects.toBe(crash);
    expect(f.orderIds.get('hedge-rng-g')?.userOrderId).not.toBe(u8);
    // The position +1.5; hedge-rng-e's slot taken by another client of the account. hedge-rng-g may
    // have landed and filled: the position cannot tell which of the two filled.
    f.clock.advance(1000);
    f.setUser({
      perpPositions: [{ marketIndex: 0, baseAssetAmount: 4_000_000_000n }],
      orders: [
        {
          status: 'open',
          userOrderId: 150,
          orderId: 450,
          slot: BigInt(f.rpc.slot() + 50),
          marketIndex: 0,
          direction: 'short',
          baseAssetAmount: 10_000_000n,
        },
      ],
    });
    // Before: { status: 'cancelled', filledSizeBase: '0' } (the least), terminal: a hedge placed again.
    expect(await f.venue.getOrderByClientId('hedge-rng-e')).toMatchObject({
      status: 'outcome-unknown',
      filledSizeBase: '0',
      error: expect.stringMatching(/ 0 to 1\.5 base .*hedge-rng-g/),
    });
    // hedge-rng-g never landed and no longer can: forgotten. hedge-rng-e's fill is then proven.
    f.rpc.advance(151);
    expect(await f.venue.getOrderByClientId('hedge-rng-g')).toBeNull();
    const e = await f.venue.getOrderByClientId('hedge-rng-e');
    expect(e).toMatchObject({ status: 'filled', filledSizeBase: '1.5' });
    expect(e).not.toHaveProperty('error');
    expect(f.orderIds.get('hedge-rng-e')).toMatchObject({ state: 'released', final: { status: 'filled' } });
    expect(f.orderIds.get('hedge-rng-e')).not.toHaveProperty('filledBoundsBase');
  });

  it("an order ended by the time the next order's position was read is not counted against that order's fill", async () => {
    const f = await driftFixture();
    const { landedSlot, u8 } = await placeWorkingLong(f, 'hedge-seen-a', 85);
    // hedge-seen-a fills 1.5 (position 2.5 → 4); nobody asks.
    f.setUser({
      perpPositions: [{ marketIndex: 0, baseAssetAmount: 4_000_000_000n }],
      orders: [
        {
          status: 'filled',
          userOrderId: u8,
          orderId: 85,
          slot: landedSlot,
          marketIndex: 0,
          direction: 'long',
          baseAssetAmount: 1_500_000_000n,
          baseAssetAmountFilled: 1_500_000_000n,
          quoteAssetAmountFilled: 271_800_000n,
        },
      ],
    });
    f.clock.advance(1000);
    f.rpc.advance(1);
    // hedge-seen-b goes into hedge-seen-a's slot: its position before (4) already holds a's fill, and
    // a's end is recorded from that same read.
    f.emulate((run) => {
      f.setUser({
        perpPositions: [{ marketIndex: 0, baseAssetAmount: 4_000_000_000n, openOrders: 1 }],
        orders: [
          {
            status: 'open',
            userOrderId: run.userOrderId,
            orderId: 86,
            slot: BigInt(f.rpc.slot()),
            marketIndex: 0,
            direction: 'long',
            baseAssetAmount: 1_500_000_000n,
          },
        ],
      });
    });
    await f.venue.placeOrder({ clientOrderId: 'hedge-seen-b', ...ORDER });
    f.clock.advance(1000);
    // hedge-seen-b fills 1.5 (position 5.5), then another client's order takes its slot.
    f.setUser({
      perpPositions: [{ marketIndex: 0, baseAssetAmount: 5_500_000_000n }],
      orders: [
        {
          status: 'open',
          userOrderId: 150,
          orderId: 999,
          slot: BigInt(f.rpc.slot() + 50),
          marketIndex: 0,
          direction: 'short',
          baseAssetAmount: 10_000_000n,
        },
      ],
    });
    // Before: { status: 'cancelled', filledSizeBase: '0' } with an estimate error (a's fill counted
    // again as [0, 1.5]); at 30f82de it was filled 1.5, as it is.
    const b = await f.venue.getOrderByClientId('hedge-seen-b');
    expect(b).toMatchObject({ status: 'filled', filledSizeBase: '1.5' });
    expect(b).not.toHaveProperty('error');
    expect(f.orderIds.get('hedge-seen-a')).toMatchObject({
      state: 'released',
      endInPositionOf: 'hedge-seen-b',
    });
    expect(await f.venue.getOrderByClientId('hedge-seen-a')).toMatchObject({
      status: 'filled',
      filledSizeBase: '1.5',
      avgFillPriceUsd: '181.2',
    });
  });

  it('saves the id map once before the order transaction goes out and once for its outcome', async () => {
    const inner = memoryUserOrderIdStore();
    const saved: { sends: number; entries: unknown[] }[] = [];
    let f: DriftFixture | undefined;
    const store = {
      load: () => inner.load(),
      save: async (entries: Parameters<typeof inner.save>[0]) => {
        saved.push({ sends: f?.rpc.sends ?? 0, entries: structuredClone([...entries]) });
        await inner.save(entries);
      },
    };
    f = await driftFixture({ store });
    const { landedSlot, u8 } = await placeWorkingLong(f, 'hedge-save-a', 85);
    expect(saved.map((s) => s.sends)).toEqual([0, 1]);
    // The record with its signature was on disk before the send.
    expect(saved[0]?.entries).toEqual([
      expect.objectContaining({
        clientOrderId: 'hedge-save-a',
        state: 'live',
        signature: expect.any(String),
      }),
    ]);
    f.setUser({
      perpPositions: [{ marketIndex: 0, baseAssetAmount: 4_000_000_000n }],
      orders: [
        {
          status: 'filled',
          userOrderId: u8,
          orderId: 85,
          slot: landedSlot,
          marketIndex: 0,
          direction: 'long',
          baseAssetAmount: 1_500_000_000n,
          baseAssetAmountFilled: 1_500_000_000n,
          quoteAssetAmountFilled: 271_800_000n,
        },
      ],
    });
    f.rpc.advance(1);
    f.emulate();
    saved.length = 0;
    // Before: a save for hedge-save-a's end, one for the new record, one for its signature, one after.
    await f.venue.placeOrder({ clientOrderId: 'hedge-save-b', ...ORDER });
    expect(saved.map((s) => s.sends)).toEqual([1, 2]);
    // hedge-save-a's end, recorded as hedge-save-b took its slot, went out in that first save.
    expect(saved[0]?.entries).toEqual([
      expect.objectContaining({ clientOrderId: 'hedge-save-a', state: 'released', final: expect.anything() }),
      expect.objectContaining({
        clientOrderId: 'hedge-save-b',
        state: 'live',
        signature: expect.any(String),
      }),
    ]);
  });

  it('cancels with cancel_order_by_user_id; an order filled before the cancel lands is reported filled, not a failed cancel', async () => {
    const f = await driftFixture();
    let landedSlot = 0n;
    const open = (u8: number) => ({
      status: 'open' as const,
      userOrderId: u8,
      orderId: 83,
      slot: landedSlot,
      marketIndex: 0,
      direction: 'long' as const,
      baseAssetAmount: 1_500_000_000n,
      price: 181_234_500n,
    });
    const position = { marketIndex: 0, baseAssetAmount: 2_500_000_000n, quoteEntryAmount: -450_000_000n };
    f.emulate((run) => {
      landedSlot = BigInt(f.rpc.slot());
      f.setUser({ perpPositions: [{ ...position, openOrders: 1 }], orders: [open(run.userOrderId)] });
    });
    await f.venue.placeOrder({ clientOrderId: 'hedge-cxl-1', ...ORDER });
    await f.venue.placeOrder({ clientOrderId: 'hedge-cxl-2', ...ORDER, side: 'sell' });
    const u8 = f.orderIds.get('hedge-cxl-1')?.userOrderId ?? -1;

    // A working order: the program cancels it (status canceled, slot kept).
    f.setUser({ perpPositions: [{ ...position, openOrders: 1 }], orders: [open(u8)] });
    f.emulate((run) => {
      expect(run).toMatchObject({ instruction: 'cancel_order_by_user_id', userOrderId: u8 });
      f.setUser({ perpPositions: [position], orders: [{ ...open(u8), status: 'canceled' }] });
    });
    expect(await f.venue.cancelOrder('hedge-cxl-1')).toMatchObject({
      status: 'cancelled',
      filledSizeBase: '0',
    });
    const tx = f.rpc.lastTx;
    if (!tx) throw new Error('nothing sent');
    const { data, metas } = driftAccounts(f, tx);
    expect(data.subarray(0, 8).equals(CANCEL_ORDER_BY_USER_ID_DISCRIMINATOR)).toBe(true);
    expect([...data.subarray(8)]).toEqual([u8]);
    expect(metas.slice(0, 3).map((m) => [m.writable, m.signer])).toEqual([
      [false, false],
      [true, false],
      [true, true], // the authority, writable as the fee payer
    ]);

    // The second order fills while the cancel is in flight: the program fails it (OrderNotOpen).
    const u8b = f.orderIds.get('hedge-cxl-2')?.userOrderId ?? -1;
    const sellOpen = { ...open(u8b), orderId: 84, direction: 'short' as const };
    f.setUser({ perpPositions: [{ ...position, openOrders: 1 }], orders: [sellOpen] });
    f.rpc.emulate = (cancelTx) => {
      f.setUser({
        perpPositions: [{ ...position, baseAssetAmount: 1_000_000_000n }],
        orders: [
          {
            ...sellOpen,
            status: 'filled',
            baseAssetAmountFilled: 1_500_000_000n,
            quoteAssetAmountFilled: 271_500_000n,
          },
        ],
      });
      const run = runDriftProgram(f.svm, f.programId, cancelTx);
      expect(run).toMatchObject({ ok: false, error: 'OrderNotOpen' });
      return run.ok ? true : { err: run.err };
    };
    expect(await f.venue.cancelOrder('hedge-cxl-2')).toMatchObject({
      status: 'filled',
      filledSizeBase: '1.5',
      avgFillPriceUsd: '181',
    });
    expect(DRIFT_PROGRAM_ERROR.OrderNotOpen).toBe(6062);
  });
});

/**
 * Rewrites the SOL-PERP market account with another oracle price and cumulative funding rates (the
 * encoder leaves the funding rates at zero; they are i128 at their layout offsets).
 */
function setPerpMarket(
  f: DriftFixture,
  init: Omit<PerpMarketInit, 'marketIndex'> & { fundingLong?: bigint; fundingShort?: bigint },
): void {
  const { fundingLong = 0n, fundingShort = 0n, ...rest } = init;
  const data = encodePerpMarketAccount({ marketIndex: 0, name: 'SOL-PERP', oracle: f.oracle, ...rest });
  for (const [off, v] of [
    [PERP_MARKET.cumulativeFundingRateLong, fundingLong],
    [PERP_MARKET.cumulativeFundingRateShort, fundingShort],
  ] as const) {
    data.writeBigUInt64LE(BigInt.asUintN(64, v), off);
    data.writeBigInt64LE(BigInt.asIntN(64, v >> 64n), off + 8);
  }
  f.svm.setAccount(driftPda.perpMarket(f.programId, 0), {
    lamports: Number(f.svm.minimumBalanceForRentExemption(BigInt(data.length))),
    data,
    owner: f.programId,
    executable: false,
    rentEpoch: 0,
  });
}

describe('Drift positions: P&L not yet settled into the USDC deposit', () => {
  it('open long: base × oracle + quote_asset_amount, and zero after settle_pnl while the entry stays', async () => {
    const f = await driftFixture();
    setPerpMarket(f, { lastOraclePrice: 176_543_200n });
    // 2.5 SOL bought at 180 (quote entry −450) plus 1.234567 USDC of fees in quote_asset_amount.
    const entry = { marketIndex: 0, baseAssetAmount: 2_500_000_000n, quoteEntryAmount: -450_000_000n };
    f.setUser({ perpPositions: [{ ...entry, quoteAssetAmount: -451_234_567n }] });
    const [pos] = await f.venue.fetchPositions();
    // 2.5 × 176.5432 − 451.234567 = 441.358 − 451.234567
    expect(pos).toMatchObject({ sizeBase: 2.5, entryPriceUsd: 180, unsettledPnlUsd: -9.876567 });
    // settle_pnl moves the −9.876567 into the deposit: quote_asset_amount −= pnl, entry untouched.
    f.setUser({ perpPositions: [{ ...entry, quoteAssetAmount: -451_234_567n + 9_876_567n }] });
    const [settled] = await f.venue.fetchPositions();
    expect(settled).toMatchObject({ sizeBase: 2.5, entryPriceUsd: 180, unsettledPnlUsd: 0 });
  });

  it('adds the funding accrued since the position last settled funding (short side rate for a short)', async () => {
    const f = await driftFixture();
    // The short cumulative rate rose 0.36 USD per SOL since the position's last funding settlement:
    // shorts receive 0.36 × 2.5 = 0.9. The long rate (ignored for a short) moved otherwise.
    setPerpMarket(f, {
      lastOraclePrice: 180_000_000n,
      fundingShort: 1_360_000_000n,
      fundingLong: 5_000_000_000n,
    });
    f.setUser({
      perpPositions: [
        {
          marketIndex: 0,
          baseAssetAmount: -2_500_000_000n,
          quoteEntryAmount: 450_000_000n,
          quoteAssetAmount: 450_000_000n,
          lastCumulativeFundingRate: 1_000_000_000n,
        },
      ],
    });
    const [pos] = await f.venue.fetchPositions();
    expect(pos).toMatchObject({ sizeBase: -2.5, entryPriceUsd: 180, unsettledPnlUsd: 0.9 });
  });

  it('an isolated position carries its own collateral as marginUsd (deposit interest applied), closed or open', async () => {
    const f = await driftFixture();
    setPerpMarket(f, { lastOraclePrice: 180_000_000n });
    f.setUser({
      spotPositions: [{ marketIndex: 0, scaledBalance: 1000n * 1_000_000_000n, balanceType: 'deposit' }],
      perpPositions: [
        {
          marketIndex: 0,
          baseAssetAmount: 2_500_000_000n,
          quoteEntryAmount: -450_000_000n,
          quoteAssetAmount: -450_000_000n,
          // 300.123456789 scaled × 1.05 cumulative deposit interest
          isolatedPositionScaledBalance: 300_123_456_789n,
          positionFlag: POSITION_FLAG.isolated,
        },
      ],
    });
    const [open] = await f.venue.fetchPositions();
    expect(open).toMatchObject({ sizeBase: 2.5, unsettledPnlUsd: 0 });
    expect(open?.marginUsd).toBeCloseTo(315.129629628, 9);
    // the cross-margin deposit is unchanged: the isolated collateral is not in it
    expect((await f.venue.fetchBalances())[0]?.amount).toBeCloseTo(1050, 9);
    // closed, P&L settled, collateral not yet moved back to cross: still counted, at size 0
    f.setUser({
      perpPositions: [
        {
          marketIndex: 0,
          isolatedPositionScaledBalance: 50n * 1_000_000_000n,
          positionFlag: POSITION_FLAG.isolated,
        },
      ],
    });
    const [closed, ...none] = await f.venue.fetchPositions();
    expect(none).toEqual([]);
    expect(closed).toMatchObject({ sizeBase: 0, unsettledPnlUsd: 0 });
    expect(closed?.marginUsd).toBeCloseTo(52.5, 9);
  });

  it('health says when Drift liquidates the account: cross margin (User.status) or an isolated position', async () => {
    const f = await driftFixture();
    expect((await f.venue.health()).liquidation).toBeUndefined();
    f.setUser({ status: USER_STATUS.beingLiquidated });
    expect(await f.venue.health()).toMatchObject({ ok: true, liquidation: 'being-liquidated' });
    f.setUser({ status: USER_STATUS.beingLiquidated | USER_STATUS.bankrupt });
    expect((await f.venue.health()).liquidation).toBe('bankrupt');
    // reduce-only is not a liquidation
    f.setUser({ status: USER_STATUS.reduceOnly });
    expect((await f.venue.health()).liquidation).toBeUndefined();
    f.setUser({
      perpPositions: [
        {
          marketIndex: 0,
          baseAssetAmount: 1_000_000_000n,
          isolatedPositionScaledBalance: 10n * 1_000_000_000n,
          positionFlag: POSITION_FLAG.isolated | POSITION_FLAG.beingLiquidated,
        },
      ],
    });
    expect((await f.venue.health()).liquidation).toBe('being-liquidated');
  });

  it('returns a closed position with unsettled P&L at size 0; empty slots and unknown markets stay out', async () => {
    const f = await driftFixture();
    f.setUser({
      perpPositions: [
        { marketIndex: 0, baseAssetAmount: 0n, quoteEntryAmount: 0n, quoteAssetAmount: -12_345_678n },
        { marketIndex: 0, baseAssetAmount: 0n, quoteAssetAmount: 0n, openOrders: 1 },
        { marketIndex: 7, baseAssetAmount: 1_000_000_000n, quoteAssetAmount: -50_000_000n },
      ],
    });
    const positions = await f.venue.fetchPositions();
    expect(positions).toHaveLength(1);
    expect(positions[0]).toMatchObject({
      instrument: 'SOL-USD:PERP',
      sizeBase: 0,
      unsettledPnlUsd: -12.345678,
    });
    expect(positions[0]).not.toHaveProperty('entryPriceUsd');
    expect(Position.parse(positions[0])).toEqual(positions[0]);
  });
});

describe('limit price to PRICE_PRECISION and the tick', () => {
  it('never rounds a sell below, or a buy above, the asked limit', () => {
    const tick = 100n; // 0.0001 USD
    // Flooring to 1e-6 first would give 100.1234, already on a tick, below the sell's minimum.
    expect(driftLimitPrice('100.12340078', tick, 'sell')).toBe(100_123_500n);
    expect(driftLimitPrice('100.12340078', tick, 'buy')).toBe(100_123_400n);
    expect(driftLimitPrice('100.12349999', tick, 'buy')).toBe(100_123_400n);
    // Exactly on a tick stays put on both sides.
    expect(driftLimitPrice('100.1234', tick, 'sell')).toBe(100_123_400n);
    expect(driftLimitPrice('100.1234', tick, 'buy')).toBe(100_123_400n);
    // No tick: only the 1e-6 step, still in the trader's favour.
    expect(driftLimitPrice('100.12340001', 0n, 'sell')).toBe(100_123_401n);
    expect(driftLimitPrice('100.12340099', 0n, 'buy')).toBe(100_123_400n);
  });

  it('is exact past 40 significant digits (decimal.js rounds products there), sizes too', async () => {
    // Before: × 1e6 rounded to 40 digits first, 101000000, a buy limit above the asked.
    expect(driftLimitPrice('100.9999999999999999999999999999999999999999999', 0n, 'buy')).toBe(100_999_999n);
    expect(driftLimitPrice('100.0000000000000000000000000000000000000000001', 0n, 'sell')).toBe(100_000_001n);
    // A 1/8 USD tick: on the tick, a buy down and a sell up.
    expect(driftLimitPrice('100.13', 125_000n, 'buy')).toBe(100_125_000n);
    expect(driftLimitPrice('100.13', 125_000n, 'sell')).toBe(100_250_000n);
    expect(driftLimitPrice('100.125', 125_000n, 'sell')).toBe(100_125_000n);
    const f = await driftFixture();
    // Before: taken as 1.5 (the product rounded to an integer) and sent.
    await expect(
      f.venue.placeOrder({
        clientOrderId: 'bad-size-digits',
        ...ORDER,
        sizeBase: '1.5000000000000000000000000000000000000000001',
      }),
    ).rejects.toMatchObject({ code: 'VENUE_INVALID_ORDER', message: expect.stringMatching(/9 decimals/) });
    expect(f.rpc.sends).toBe(0);
  });
});

describe('u8 user order id map', () => {
  const init = (id: string) => ({
    clientOrderId: id,
    marketIndex: 0,
    instrument: 'SOL-USD:PERP',
    side: 'buy' as const,
    orderType: 'market' as const,
    sizeBase: '1',
    reduceOnly: false,
    baseBeforeRaw: '0',
  });

  it('hands out 255 ids at most, skips ids busy on chain, and reuses released ones', async () => {
    const map = await UserOrderIdMap.open({ store: memoryUserOrderIdStore(), clock: new ManualClock(0) });
    const first = await map.assign(init('c-0'), new Set([1, 2]));
    expect(first.userOrderId).toBe(3);
    for (let i = 1; i < 253; i++) await map.assign(init(`c-${i}`), new Set([1, 2]));
    expect(map.liveCount).toBe(253);
    await expect(map.assign(init('c-over'), new Set([1, 2]))).rejects.toBeInstanceOf(
      UserOrderIdsExhaustedError,
    );
    expect((await map.assign(init('c-free'), new Set())).userOrderId).toBe(1);
    await map.release('c-7');
    const reused = await map.assign(init('c-new'), new Set([2]));
    expect(reused.userOrderId).toBe(map.get('c-7')?.userOrderId);
    // The old client id still answers from its own record, not from the new order.
    expect(map.get('c-7')?.state).toBe('released');
  });

  it('keeps a compact tombstone of each pruned record, bounded, across a restart', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'drift-ids-'));
    try {
      const path = join(dir, 'ids.json');
      const clock = new ManualClock(0);
      const opts = { store: fileUserOrderIdStore(path), clock, historyLimit: 2, prunedLimit: 3 };
      const map = await UserOrderIdMap.open(opts);
      for (let i = 0; i < 6; i++) {
        await map.assign(init(`h-${i}`), new Set());
        clock.advance(1);
        await map.release(`h-${i}`);
      }
      // h-4 and h-5 are kept; h-1..h-3 pruned with a tombstone; h-0's tombstone fell off the bound.
      const check = (m: UserOrderIdMap) => {
        expect(['h-0', 'h-1', 'h-2', 'h-3', 'h-4', 'h-5', 'never'].map((id) => m.isPruned(id))).toEqual([
          false,
          true,
          true,
          true,
          false,
          false,
          false,
        ]);
        expect(m.get('h-5')?.state).toBe('released');
        expect(m.get('h-3')).toBeUndefined();
      };
      check(map);
      await map.close(); // the restart: the old process is gone (one writer per file)
      check(await UserOrderIdMap.open({ ...opts, store: fileUserOrderIdStore(path) }));
      // On disk: the kept records, then one entry of 16-character keys (no client ids).
      const stored = JSON.parse(await readFile(path, 'utf8')) as unknown[];
      expect(stored).toHaveLength(3);
      expect(stored[2]).toEqual({ pruned: expect.arrayContaining([expect.stringMatching(/^[\w-]{16}$/)]) });
      expect((stored[2] as { pruned: string[] }).pruned).toHaveLength(3);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("a tombstone keeps the order's status and sizes, not its error text (it made most of the file)", async () => {
    const store = memoryUserOrderIdStore();
    const clock = new ManualClock(1_767_614_400_000);
    const map = await UserOrderIdMap.open({ store, clock, historyLimit: 1 });
    for (const id of ['t-1', 't-2']) {
      await map.assign({ ...init(id), sizeBase: '1.5' }, new Set());
      clock.advance(10);
      await map.release(id, {
        clientOrderId: id,
        intentId: id,
        venue: 'drift-sol',
        venueOrderId: '123456',
        instrument: 'SOL-USD:PERP',
        side: 'buy',
        orderType: 'market',
        sizeBase: '1.5',
        reduceOnly: false,
        status: 'rejected',
        filledSizeBase: '0',
        createdAtMs: clock.nowMs(),
        updatedAtMs: clock.nowMs(),
        error: `transaction failed: ${'x'.repeat(300)}`,
      });
    }
    expect(map.pruned('t-1')).toMatchObject({ status: 'rejected', filledSizeBase: '0', sizeBase: '1.5' });
    expect(map.pruned('t-1')).not.toHaveProperty('error');
    const [, entry] = store.snapshot() as [unknown, { pruned: unknown[][] }];
    // Before: 343 bytes, 200 of them error text.
    expect(JSON.stringify(entry.pruned[0]).length).toBeLessThan(130);
    // One an earlier build wrote with its error still reads, error and all.
    const old = [...(entry.pruned[0] ?? [])];
    old[13] = 'transaction failed: no margin';
    const reread = UserOrderIdMap.fromRecords({ store, clock }, [{ pruned: [old] }]);
    expect(reread.pruned('t-1')).toMatchObject({
      status: 'rejected',
      error: 'transaction failed: no margin',
    });
  });

  it('survives a restart through its file store', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'drift-ids-'));
    try {
      const path = join(dir, 'ids.json');
      const a = await UserOrderIdMap.open({ store: fileUserOrderIdStore(path), clock: new ManualClock(0) });
      await a.assign(init('p-1'), new Set());
      await a.update('p-1', { signature: 'sig', lastValidBlockHeight: 99 });
      await a.close(); // the old process is gone: one writer per file
      const b = await UserOrderIdMap.open({ store: fileUserOrderIdStore(path), clock: new ManualClock(0) });
      expect(b.get('p-1')).toMatchObject({
        userOrderId: 1,
        signature: 'sig',
        lastValidBlockHeight: 99,
        state: 'live',
      });
      expect((await b.assign(init('p-2'), new Set())).userOrderId).toBe(2);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('concurrent orders on one venue all go out over the file store, and a restart sees every one (was: ENOENT on rename)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'drift-ids-'));
    try {
      const path = join(dir, 'ids.json');
      const f = await driftFixture({ store: fileUserOrderIdStore(path) });
      // The program leaves each order working; the User account collects them.
      const working: Parameters<DriftFixture['setUser']>[0]['orders'] = [];
      f.emulate((run) => {
        working.push({
          status: 'open',
          userOrderId: run.userOrderId,
          orderId: 900 + run.userOrderId,
          slot: BigInt(f.rpc.slot()),
          marketIndex: 0,
          direction: 'long',
          baseAssetAmount: 1_500_000_000n,
        });
        f.setUser({
          perpPositions: [{ marketIndex: 0, baseAssetAmount: 2_500_000_000n, openOrders: working.length }],
          orders: working,
        });
      });
      // A worker runs 8 jobs at once per venue queue.
      const ids = Array.from({ length: 8 }, (_, i) => `hedge-conc-${i}`);
      const placed = await Promise.allSettled(
        ids.map((id) => f.venue.placeOrder({ clientOrderId: id, ...ORDER })),
      );
      expect(placed.map((p) => (p.status === 'fulfilled' ? p.value.status : String(p.reason)))).toEqual(
        ids.map(() => 'acknowledged'),
      );
      const u8s = ids.map((id) => f.orderIds.get(id)?.userOrderId);
      const signatures = ids.map((id) => f.orderIds.get(id)?.signature);
      expect(new Set(u8s).size).toBe(ids.length);
      // What a restarted process reads: every order with its u8 and signature.
      await f.orderIds.close(); // the old process is gone: one writer per file
      const after = await UserOrderIdMap.open({ store: fileUserOrderIdStore(path), clock: f.clock });
      for (const [i, id] of ids.entries())
        expect(after.get(id)).toMatchObject({
          userOrderId: u8s[i],
          signature: signatures[i],
          state: 'live',
        });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
