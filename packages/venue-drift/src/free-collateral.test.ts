import { Balance } from '@xhedge/core';
import { describe, expect, it } from 'vitest';
import { type DriftFixture, driftFixture } from '../test/fixture.ts';
import type { DriftPerpPosition } from './decode.ts';
import { encodePerpMarketAccount, type PerpMarketInit } from './encode.ts';
import { driftPda } from './instructions.ts';
import { PERP_MARKET, POSITION_FLAG, USER_STATUS } from './layout.ts';

/**
 * `fetchBalances().available` is Drift's cross-margin free collateral for a risk-increasing order
 * (src/margin.ts), read from accounts written into litesvm. The account of the audit: 20,000 USDC (the
 * deposit index set to 1 here), long 1 BTC bought at 60,000 in BTC-PERP (perp market 1, not one of the
 * venue's configured instruments: every position in use counts), 10% initial margin, positive P&L at
 * an initial asset weight of 0.8.
 */
const USDC = 1_000_000n; // QUOTE_PRECISION
const BTC = 1_000_000_000n; // BASE_PRECISION
const LONG_1_BTC: Partial<DriftPerpPosition> = {
  marketIndex: 1,
  baseAssetAmount: BTC,
  quoteEntryAmount: -60_000n * USDC,
  quoteAssetAmount: -60_000n * USDC,
};

async function auditAccount(): Promise<DriftFixture> {
  const f = await driftFixture();
  f.putSpotMarket({
    marketIndex: 0,
    name: 'USDC',
    decimals: 6,
    cumulativeDepositInterest: 10_000_000_000n, // 1.0 (SPOT_CUMULATIVE_INTEREST_PRECISION)
    cumulativeBorrowInterest: 10_000_000_000n,
    oracle: f.usdcOracle,
  });
  putBtcMarket(f);
  setAccount(f, 20_000n, [LONG_1_BTC]);
  return f;
}

/** BTC-PERP (market 1): 60,000, 10% / 5% margin, positive P&L at 0.8; `fundingLong` its cumulative long rate. */
function putBtcMarket(f: DriftFixture, over: Partial<PerpMarketInit> & { fundingLong?: bigint } = {}): void {
  const { fundingLong = 0n, ...rest } = over;
  const data = encodePerpMarketAccount({
    marketIndex: 1,
    name: 'BTC-PERP',
    oracle: f.oracle,
    lastOraclePrice: 60_000n * USDC,
    marginRatioInitial: 1000,
    marginRatioMaintenance: 500,
    unrealizedPnlInitialAssetWeight: 8000,
    ...rest,
  });
  data.writeBigUInt64LE(BigInt.asUintN(64, fundingLong), PERP_MARKET.cumulativeFundingRateLong);
  data.writeBigInt64LE(BigInt.asIntN(64, fundingLong >> 64n), PERP_MARKET.cumulativeFundingRateLong + 8);
  f.svm.setAccount(driftPda.perpMarket(f.programId, 1), {
    lamports: Number(f.svm.minimumBalanceForRentExemption(BigInt(data.length))),
    data,
    owner: f.programId,
    executable: false,
    rentEpoch: 0,
  });
}

/** The User: `depositUsdc` in spot market 0 (index 1.0), these perp positions. */
function setAccount(
  f: DriftFixture,
  depositUsdc: bigint,
  perpPositions: Partial<DriftPerpPosition>[],
  more: Omit<Parameters<DriftFixture['setUser']>[0], 'perpPositions'> = {},
): void {
  f.setUser({
    spotPositions: [{ marketIndex: 0, scaledBalance: depositUsdc * 1_000_000_000n, balanceType: 'deposit' }],
    perpPositions,
    ...more,
  });
}

async function usdc(f: DriftFixture): Promise<Balance> {
  const [b, ...rest] = await f.venue.fetchBalances();
  expect(rest).toEqual([]);
  if (!b) throw new Error('no balance');
  expect(Balance.parse(b)).toEqual(b);
  return b;
}

describe('Drift fetchBalances: available is the free collateral for a risk-increasing order', () => {
  it('no positions: available is the whole deposit', async () => {
    const f = await auditAccount();
    setAccount(f, 20_000n, []);
    expect(await usdc(f)).toMatchObject({ asset: 'USDC', amount: 20_000, available: 20_000 });
    // the fixture's own deposit: 1000 scaled × 1.05 deposit interest
    const g = await driftFixture();
    g.setUser({});
    expect(await usdc(g)).toMatchObject({ amount: 1050, available: 1050 });
  });

  it('a deposit and an open long: deposit + weighted P&L − initial margin (the audit: 14,000 free of 20,000, not 20,000)', async () => {
    const f = await auditAccount();
    expect(await usdc(f)).toMatchObject({ amount: 20_000, available: 14_000 });
    expect(await f.venue.freeCollateral()).toEqual({
      totalCollateralQuote: 20_000n * USDC,
      initialMarginQuote: 6_000n * USDC, // 1 × 60,000 × 1000 / 10,000
      freeQuote: 14_000n * USDC,
    });
    // a gain counts at the initial asset weight: 20,000 + 0.8 × 50 − 6,005
    putBtcMarket(f, { lastOraclePrice: 60_050n * USDC });
    expect((await usdc(f)).available).toBe(14_035);
    // a loss counts in full: 20,000 − 1,000 − 5,900
    putBtcMarket(f, { lastOraclePrice: 59_000n * USDC });
    expect((await usdc(f)).available).toBe(13_100);
    // a gain adds 100 USDC at most per position (MAX_POSITIVE_UPNL_FOR_INITIAL_MARGIN): 20,000 + 100 − 6,100
    putBtcMarket(f, { lastOraclePrice: 61_000n * USDC });
    expect((await usdc(f)).available).toBe(14_000);
    // funding owed since the position last settled it: the long rate rose 12.5 USDC per BTC
    putBtcMarket(f, { fundingLong: 12_500_000_000n });
    expect((await usdc(f)).available).toBe(13_987.5);
    // users' net P&L (4,000) above the market's max imbalance (1,000) scales the weight: 0.8 × 1/4
    putBtcMarket(f, {
      lastOraclePrice: 60_050n * USDC,
      unrealizedPnlMaxImbalance: 1_000n * USDC,
      ammQuoteAssetAmount: 4_000n * USDC,
    });
    expect((await usdc(f)).available).toBe(14_005); // 20,000 + 0.2 × 50 − 6,005
  });

  it('initial margin past the deposit: available is 0, never negative', async () => {
    const f = await auditAccount();
    setAccount(f, 500n, [LONG_1_BTC]);
    expect(await usdc(f)).toMatchObject({ amount: 500, available: 0 });
    const parts = await f.venue.freeCollateral();
    expect(parts).toMatchObject({ totalCollateralQuote: 500n * USDC, initialMarginQuote: 6_000n * USDC });
    expect(parts.freeQuote).toBe(0n);
    // a loss larger than the deposit
    setAccount(f, 20_000n, [{ ...LONG_1_BTC, quoteAssetAmount: -90_000n * USDC }]);
    expect((await usdc(f)).available).toBe(0);
    // a USDC borrow: amount negative, nothing free
    f.setUser({ spotPositions: [{ marketIndex: 0, scaledBalance: 200n * BTC, balanceType: 'borrow' }] });
    expect(await usdc(f)).toMatchObject({ amount: -200, available: 0 });
  });

  it('requires what the program requires: worst case of open orders, 0.01 per order, the IMF size premium, custom ratios', async () => {
    const f = await auditAccount();
    // a working bid for 1 more BTC: the worst case is long 2, plus 0.01 for the open order
    setAccount(f, 20_000n, [{ ...LONG_1_BTC, openBids: BTC, openOrders: 1 }]);
    expect((await usdc(f)).available).toBe(7_999.99);
    // imf_factor 5000 on 100 BTC: 0.8 × 1000 + √(1e12 + 1) × 5000 / 1e7 = 1300, above 1000
    putBtcMarket(f, { imfFactor: 5000 });
    setAccount(f, 1_000_000n, [
      { ...LONG_1_BTC, baseAssetAmount: 100n * BTC, quoteAssetAmount: -6_000_000n * USDC },
    ]);
    expect((await usdc(f)).available).toBe(220_000); // 1,000,000 − 6,000,000 × 0.13
    putBtcMarket(f);
    // the user's custom max_margin_ratio (20%), then the position's own (25%), when above the market's
    setAccount(f, 20_000n, [LONG_1_BTC], { maxMarginRatio: 2000 });
    expect((await usdc(f)).available).toBe(8_000);
    setAccount(f, 20_000n, [{ ...LONG_1_BTC, maxMarginRatio: 2500 }], { maxMarginRatio: 2000 });
    expect((await usdc(f)).available).toBe(5_000);
  });

  it('what it cannot value, or what makes the program refuse a risk-increasing order, gives 0', async () => {
    const f = await auditAccount();
    const deposit = { marketIndex: 0, scaledBalance: 20_000n * BTC, balanceType: 'deposit' as const };
    // another spot market's deposit counts 0 (its price and asset weight are not read) ...
    f.setUser({
      spotPositions: [deposit, { marketIndex: 1, scaledBalance: 5n * BTC, balanceType: 'deposit' }],
      perpPositions: [LONG_1_BTC],
    });
    expect((await usdc(f)).available).toBe(14_000);
    // ... and its borrow, a liability not valued here, leaves nothing free
    f.setUser({
      spotPositions: [deposit, { marketIndex: 1, scaledBalance: 5n * BTC, balanceType: 'borrow' }],
      perpPositions: [LONG_1_BTC],
    });
    expect((await usdc(f)).available).toBe(0);
    expect((await f.venue.freeCollateral()).zeroReason).toMatch(/spot market 1 holds a borrow/);
    for (const status of [USER_STATUS.beingLiquidated, USER_STATUS.reduceOnly]) {
      setAccount(f, 20_000n, [LONG_1_BTC], { status });
      expect((await usdc(f)).available).toBe(0);
    }
    // an isolated position keeps its collateral and margin out of cross ...
    const isolated = {
      ...LONG_1_BTC,
      positionFlag: POSITION_FLAG.isolated,
      isolatedPositionScaledBalance: 3_500n * BTC, // 3,500 USDC ≥ 5% maintenance of 60,000
    };
    setAccount(f, 20_000n, [isolated]);
    expect((await usdc(f)).available).toBe(20_000);
    // ... but under its maintenance margin the program refuses the cross order too
    setAccount(f, 20_000n, [{ ...isolated, isolatedPositionScaledBalance: 2_999n * BTC }]);
    expect((await usdc(f)).available).toBe(0);
    // a position whose market has no price cannot be valued
    putBtcMarket(f, { lastOraclePrice: 0n });
    setAccount(f, 20_000n, [LONG_1_BTC]);
    expect((await usdc(f)).available).toBe(0);
  });
});
