import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Clock } from '@xhedge/core';
import {
  compileSolidity,
  deployContract,
  type EvmContext,
  MemoryOrderStore,
  rpc,
  TxSender,
} from '@xhedge/evm';
import { everythingIn, type LocalTestChain } from '@xhedge/evm/testing';
import {
  InvalidOrderError,
  NotSupportedError,
  RateLimitError,
  RevertedError,
  StaleOracleError,
  VenueHaltedError,
  VenueNetworkError,
} from '@xhedge/venue';
import {
  type Address,
  BaseError,
  decodeErrorResult,
  encodeFunctionData,
  getAddress,
  type Hex,
  parseAbi,
  toHex,
  zeroAddress,
} from 'viem';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { dataStoreAbi, exchangeRouterAbi, gmxErrorAbi, ORDER_TYPE, oracleAbi, readerAbi } from './abi.ts';
import { type GmxOrderRecord, GmxVenue } from './adapter.ts';
import { createOrderCallData } from './create-order.ts';
import type { GmxFixture } from './fixture.ts';
import { gmxFixtureAbi } from './fixture-abi.ts';
import type { GmxKeeper, GmxKeeperResult } from './keeper.ts';
import {
  accountOrderListKey,
  GMX_KEYS,
  isMarketDisabledKey,
  marketKey,
  marketSideKey,
  maxOpenInterestKey,
  minCollateralFactorKey,
  openInterestInTokensKey,
  openInterestKey,
  orderFeatureDisabledKey,
  poolAmountKey,
  positionFeeFactorKey,
  reserveFactorKey,
} from './keys.ts';
import type { GmxVenueParamsInput } from './params.ts';
import { readPositionInfos, startGmxTestChain } from './test-chain.ts';
import { usdToGmxPrice } from './units.ts';

// The reads the adapter makes as real GMX v2 exposes them (DataStore.getUint under Keys.sol keys,
// Reader.getAccountOrders, the oracle keeper's /prices/tickers), against the local contract.

let chain: LocalTestChain;
let deployer: EvmContext;
let trader: EvmContext;
let other: EvmContext;
let keeperCtx: EvmContext;
let fx: GmxFixture;
let keeper: GmxKeeper;
let keeperResults: GmxKeeperResult[];

/** 10^26: one basis point as a GMX factor (30 decimals). */
const BPS = 10n ** 26n;
const USD30 = 10n ** 30n;

beforeAll(async () => {
  const t = await startGmxTestChain('gmx-upstream', 2);
  ({ chain, deployer, fx, keeper, keeperResults, keeperCtx } = t);
  [trader, other] = t.traders as [EvmContext, EvmContext];
});
afterAll(async () => {
  await chain?.stop();
});
beforeEach(() => chain.fresh());

function venue(
  opts: {
    ctx?: EvmContext;
    store?: MemoryOrderStore<GmxOrderRecord>;
    params?: Partial<GmxVenueParamsInput>;
    clock?: Clock;
  } = {},
) {
  return new GmxVenue(
    'gmx-local',
    { ...fx.params, approval: 'capped', approvalCap: '1000000', receiptTimeoutSeconds: 1, ...opts.params },
    {
      ctx: opts.ctx ?? trader,
      store: opts.store ?? new MemoryOrderStore(),
      ...(opts.clock ? { clock: opts.clock } : {}),
    },
  );
}

const ethMarket = () => fx.marketTokens.ETH as Address;
const weth = () => fx.indexTokens.ETH?.address as Address;
const usdc = () => fx.params.collateralAsset;

const getUint = (key: Hex) =>
  trader.publicClient.readContract({
    address: fx.params.dataStore,
    abi: dataStoreAbi,
    functionName: 'getUint',
    args: [key],
  });

async function order(v: GmxVenue, cid: string, side: 'buy' | 'sell', sizeBase: string, execute = true) {
  const placed = await v.placeOrder({
    clientOrderId: cid,
    instrument: 'ETH-USD:PERP',
    side,
    orderType: 'market',
    sizeBase,
  });
  expect(placed.status).toBe('acknowledged');
  if (execute) {
    // as the keeper's loop would: a pass whose execution failed (logged by the test keeper) is run again
    for (let pass = 0; pass < 3; pass++) {
      await keeper.runOnce();
      if ((await v.getOrderByClientId(cid))?.status !== 'acknowledged') break;
    }
    expect((await v.getOrderByClientId(cid))?.status).toBe('filled');
  }
  return placed;
}

/**
 * multicall([sendWnt(fee), createOrder]) of the trader's 1,000 USD market decrease (long) in `market`
 * with USDC collateral and execution fee `fee`, as the adapter builds one.
 */
function decreaseOrderData(market: Address, fee: bigint): Hex {
  return encodeFunctionData({
    abi: exchangeRouterAbi,
    functionName: 'multicall',
    args: [
      [
        encodeFunctionData({
          abi: exchangeRouterAbi,
          functionName: 'sendWnt',
          args: [fx.params.orderVault, fee],
        }),
        createOrderCallData({
          account: trader.account.address,
          market,
          collateralToken: usdc(),
          sizeDeltaUsd: 1000n * USD30,
          acceptablePrice: 0n,
          executionFee: fee,
          orderType: ORDER_TYPE.MarketDecrease,
          isLong: true,
        }),
      ],
    ],
  });
}

describe('keys: the local contract derives them as gmx-synthetics Keys.sol does', () => {
  it('agrees with Solidity evaluating upstream expressions', async () => {
    // contracts/data/Keys.sol @ a5c0c883 (constants and the keyed functions), evaluated by the EVM.
    const probeSource = `// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;
contract KeysProbe {
    function constants() external pure returns (bytes32[18] memory k) {
        k[0] = keccak256(abi.encode("ORDER_LIST"));
        k[1] = keccak256(abi.encode("ACCOUNT_ORDER_LIST"));
        k[2] = keccak256(abi.encode("ESTIMATED_GAS_FEE_BASE_AMOUNT_V2_1"));
        k[3] = keccak256(abi.encode("ESTIMATED_GAS_FEE_PER_ORACLE_PRICE"));
        k[4] = keccak256(abi.encode("ESTIMATED_GAS_FEE_MULTIPLIER_FACTOR"));
        k[5] = keccak256(abi.encode("SINGLE_SWAP_GAS_LIMIT"));
        k[6] = keccak256(abi.encode("INCREASE_ORDER_GAS_LIMIT"));
        k[7] = keccak256(abi.encode("DECREASE_ORDER_GAS_LIMIT"));
        k[8] = keccak256(abi.encode("POSITION_FEE_FACTOR"));
        k[9] = keccak256(abi.encode("OPEN_INTEREST"));
        k[10] = keccak256(abi.encode("MAX_OPEN_INTEREST"));
        k[11] = keccak256(abi.encode("OPEN_INTEREST_IN_TOKENS"));
        k[12] = keccak256(abi.encode("POOL_AMOUNT"));
        k[13] = keccak256(abi.encode("RESERVE_FACTOR"));
        k[14] = keccak256(abi.encode("OPEN_INTEREST_RESERVE_FACTOR"));
        k[15] = keccak256(abi.encode("MIN_COLLATERAL_FACTOR"));
        k[16] = keccak256(abi.encode("REQUEST_EXPIRATION_TIME"));
        k[17] = keccak256(abi.encode("MAX_ORACLE_PRICE_AGE"));
    }
    function openInterestKey(address market, address collateralToken, bool isLong) external pure returns (bytes32) {
        return keccak256(abi.encode(keccak256(abi.encode("OPEN_INTEREST")), market, collateralToken, isLong));
    }
    function maxOpenInterestKey(address market, bool isLong) external pure returns (bytes32) {
        return keccak256(abi.encode(keccak256(abi.encode("MAX_OPEN_INTEREST")), market, isLong));
    }
    function openInterestInTokensKey(address market, address collateralToken, bool isLong) external pure returns (bytes32) {
        return keccak256(abi.encode(keccak256(abi.encode("OPEN_INTEREST_IN_TOKENS")), market, collateralToken, isLong));
    }
    function poolAmountKey(address market, address token) external pure returns (bytes32) {
        return keccak256(abi.encode(keccak256(abi.encode("POOL_AMOUNT")), market, token));
    }
    function reserveFactorKey(address market, bool isLong) external pure returns (bytes32) {
        return keccak256(abi.encode(keccak256(abi.encode("RESERVE_FACTOR")), market, isLong));
    }
    function openInterestReserveFactorKey(address market, bool isLong) external pure returns (bytes32) {
        return keccak256(abi.encode(keccak256(abi.encode("OPEN_INTEREST_RESERVE_FACTOR")), market, isLong));
    }
    function positionFeeFactorKey(address market, bool balanceWasImproved) external pure returns (bytes32) {
        return keccak256(abi.encode(keccak256(abi.encode("POSITION_FEE_FACTOR")), market, balanceWasImproved));
    }
    function accountOrderListKey(address account) external pure returns (bytes32) {
        return keccak256(abi.encode(keccak256(abi.encode("ACCOUNT_ORDER_LIST")), account));
    }
    function minCollateralFactorKey(address market) external pure returns (bytes32) {
        return keccak256(abi.encode(keccak256(abi.encode("MIN_COLLATERAL_FACTOR")), market));
    }
    function fundingConstants() external pure returns (bytes32[18] memory k) {
        k[0] = keccak256(abi.encode("FUNDING_FACTOR"));
        k[1] = keccak256(abi.encode("FUNDING_EXPONENT_FACTOR"));
        k[2] = keccak256(abi.encode("SAVED_FUNDING_FACTOR_PER_SECOND"));
        k[3] = keccak256(abi.encode("FUNDING_INCREASE_FACTOR_PER_SECOND"));
        k[4] = keccak256(abi.encode("FUNDING_DECREASE_FACTOR_PER_SECOND"));
        k[5] = keccak256(abi.encode("MIN_FUNDING_FACTOR_PER_SECOND"));
        k[6] = keccak256(abi.encode("MAX_FUNDING_FACTOR_PER_SECOND"));
        k[7] = keccak256(abi.encode("THRESHOLD_FOR_STABLE_FUNDING"));
        k[8] = keccak256(abi.encode("THRESHOLD_FOR_DECREASE_FUNDING"));
        k[9] = keccak256(abi.encode("FUNDING_UPDATED_AT"));
        k[10] = keccak256(abi.encode("IS_MARKET_DISABLED"));
        k[11] = keccak256(abi.encode("OPTIMAL_USAGE_FACTOR"));
        k[12] = keccak256(abi.encode("BASE_BORROWING_FACTOR"));
        k[13] = keccak256(abi.encode("ABOVE_OPTIMAL_USAGE_BORROWING_FACTOR"));
        k[14] = keccak256(abi.encode("BORROWING_FACTOR"));
        k[15] = keccak256(abi.encode("BORROWING_EXPONENT_FACTOR"));
        k[16] = keccak256(abi.encode("SKIP_BORROWING_FEE_FOR_SMALLER_SIDE"));
        k[17] = keccak256(abi.encode("USE_OPEN_INTEREST_IN_TOKENS_FOR_BALANCE"));
    }
    function savedFundingFactorPerSecondKey(address market) external pure returns (bytes32) {
        return keccak256(abi.encode(keccak256(abi.encode("SAVED_FUNDING_FACTOR_PER_SECOND")), market));
    }
    function borrowingFactorKey(address market, bool isLong) external pure returns (bytes32) {
        return keccak256(abi.encode(keccak256(abi.encode("BORROWING_FACTOR")), market, isLong));
    }
    function isMarketDisabledKey(address market) external pure returns (bytes32) {
        return keccak256(abi.encode(keccak256(abi.encode("IS_MARKET_DISABLED")), market));
    }
    function createOrderFeatureDisabledKey(address module, uint256 orderType) external pure returns (bytes32) {
        return keccak256(abi.encode(keccak256(abi.encode("CREATE_ORDER_FEATURE_DISABLED")), module, orderType));
    }
    function executeOrderFeatureDisabledKey(address module, uint256 orderType) external pure returns (bytes32) {
        return keccak256(abi.encode(keccak256(abi.encode("EXECUTE_ORDER_FEATURE_DISABLED")), module, orderType));
    }
}`;
    const probe = compileSolidity({ 'KeysProbe.sol': probeSource }).KeysProbe;
    if (!probe) throw new Error('KeysProbe did not compile');
    const address = await deployContract(deployer, probe);
    const abi = parseAbi([
      'function constants() pure returns (bytes32[18])',
      'function openInterestInTokensKey(address, address, bool) pure returns (bytes32)',
      'function poolAmountKey(address, address) pure returns (bytes32)',
      'function reserveFactorKey(address, bool) pure returns (bytes32)',
      'function openInterestReserveFactorKey(address, bool) pure returns (bytes32)',
      'function openInterestKey(address, address, bool) pure returns (bytes32)',
      'function maxOpenInterestKey(address, bool) pure returns (bytes32)',
      'function positionFeeFactorKey(address, bool) pure returns (bytes32)',
      'function accountOrderListKey(address) pure returns (bytes32)',
      'function minCollateralFactorKey(address) pure returns (bytes32)',
      'function fundingConstants() pure returns (bytes32[18])',
      'function savedFundingFactorPerSecondKey(address) pure returns (bytes32)',
      'function borrowingFactorKey(address, bool) pure returns (bytes32)',
      'function isMarketDisabledKey(address) pure returns (bytes32)',
      'function createOrderFeatureDisabledKey(address, uint256) pure returns (bytes32)',
      'function executeOrderFeatureDisabledKey(address, uint256) pure returns (bytes32)',
    ]);
    const read = trader.publicClient.readContract;
    expect(await read({ address, abi, functionName: 'constants' })).toEqual([
      GMX_KEYS.ORDER_LIST,
      GMX_KEYS.ACCOUNT_ORDER_LIST,
      GMX_KEYS.ESTIMATED_GAS_FEE_BASE_AMOUNT_V2_1,
      GMX_KEYS.ESTIMATED_GAS_FEE_PER_ORACLE_PRICE,
      GMX_KEYS.ESTIMATED_GAS_FEE_MULTIPLIER_FACTOR,
      GMX_KEYS.SINGLE_SWAP_GAS_LIMIT,
      GMX_KEYS.INCREASE_ORDER_GAS_LIMIT,
      GMX_KEYS.DECREASE_ORDER_GAS_LIMIT,
      GMX_KEYS.POSITION_FEE_FACTOR,
      GMX_KEYS.OPEN_INTEREST,
      GMX_KEYS.MAX_OPEN_INTEREST,
      GMX_KEYS.OPEN_INTEREST_IN_TOKENS,
      GMX_KEYS.POOL_AMOUNT,
      GMX_KEYS.RESERVE_FACTOR,
      GMX_KEYS.OPEN_INTEREST_RESERVE_FACTOR,
      GMX_KEYS.MIN_COLLATERAL_FACTOR,
      GMX_KEYS.REQUEST_EXPIRATION_TIME,
      GMX_KEYS.MAX_ORACLE_PRICE_AGE,
    ]);
    expect(await read({ address, abi, functionName: 'poolAmountKey', args: [ethMarket(), weth()] })).toBe(
      poolAmountKey(ethMarket(), weth()),
    );
    for (const isLong of [true, false]) {
      expect(
        await read({ address, abi, functionName: 'openInterestKey', args: [ethMarket(), usdc(), isLong] }),
      ).toBe(openInterestKey(ethMarket(), usdc(), isLong));
      expect(
        await read({ address, abi, functionName: 'maxOpenInterestKey', args: [ethMarket(), isLong] }),
      ).toBe(maxOpenInterestKey(ethMarket(), isLong));
      expect(
        await read({ address, abi, functionName: 'positionFeeFactorKey', args: [ethMarket(), isLong] }),
      ).toBe(positionFeeFactorKey(ethMarket(), isLong));
      expect(
        await read({
          address,
          abi,
          functionName: 'openInterestInTokensKey',
          args: [ethMarket(), usdc(), isLong],
        }),
      ).toBe(openInterestInTokensKey(ethMarket(), usdc(), isLong));
      expect(
        await read({ address, abi, functionName: 'reserveFactorKey', args: [ethMarket(), isLong] }),
      ).toBe(reserveFactorKey(ethMarket(), isLong, 'reserve'));
      expect(
        await read({
          address,
          abi,
          functionName: 'openInterestReserveFactorKey',
          args: [ethMarket(), isLong],
        }),
      ).toBe(reserveFactorKey(ethMarket(), isLong, 'open-interest'));
    }
    expect(
      await read({ address, abi, functionName: 'accountOrderListKey', args: [trader.account.address] }),
    ).toBe(accountOrderListKey(trader.account.address));
    expect(await read({ address, abi, functionName: 'minCollateralFactorKey', args: [ethMarket()] })).toBe(
      minCollateralFactorKey(ethMarket()),
    );
    const funding = await read({ address, abi, functionName: 'fundingConstants' });
    expect(funding).toEqual([
      GMX_KEYS.FUNDING_FACTOR,
      GMX_KEYS.FUNDING_EXPONENT_FACTOR,
      GMX_KEYS.SAVED_FUNDING_FACTOR_PER_SECOND,
      GMX_KEYS.FUNDING_INCREASE_FACTOR_PER_SECOND,
      GMX_KEYS.FUNDING_DECREASE_FACTOR_PER_SECOND,
      GMX_KEYS.MIN_FUNDING_FACTOR_PER_SECOND,
      GMX_KEYS.MAX_FUNDING_FACTOR_PER_SECOND,
      GMX_KEYS.THRESHOLD_FOR_STABLE_FUNDING,
      GMX_KEYS.THRESHOLD_FOR_DECREASE_FUNDING,
      GMX_KEYS.FUNDING_UPDATED_AT,
      GMX_KEYS.IS_MARKET_DISABLED,
      GMX_KEYS.OPTIMAL_USAGE_FACTOR,
      GMX_KEYS.BASE_BORROWING_FACTOR,
      GMX_KEYS.ABOVE_OPTIMAL_USAGE_BORROWING_FACTOR,
      GMX_KEYS.BORROWING_FACTOR,
      GMX_KEYS.BORROWING_EXPONENT_FACTOR,
      GMX_KEYS.SKIP_BORROWING_FEE_FOR_SMALLER_SIDE,
      GMX_KEYS.USE_OPEN_INTEREST_IN_TOKENS_FOR_BALANCE,
    ]);
    expect(
      await read({ address, abi, functionName: 'savedFundingFactorPerSecondKey', args: [ethMarket()] }),
    ).toBe(marketKey(GMX_KEYS.SAVED_FUNDING_FACTOR_PER_SECOND, ethMarket()));
    for (const isLong of [true, false])
      expect(
        await read({ address, abi, functionName: 'borrowingFactorKey', args: [ethMarket(), isLong] }),
      ).toBe(marketSideKey(GMX_KEYS.BORROWING_FACTOR, ethMarket(), isLong));
    expect(await read({ address, abi, functionName: 'isMarketDisabledKey', args: [ethMarket()] })).toBe(
      isMarketDisabledKey(ethMarket()),
    );
    // Keys.create/executeOrderFeatureDisabledKey(OrderHandler, uint256(orderType)), as OrderHandler
    // .createOrder and _executeOrder key them (address(this)).
    const handler = fx.params.dataStore;
    for (const t of [ORDER_TYPE.MarketIncrease, ORDER_TYPE.MarketDecrease]) {
      expect(
        await read({
          address,
          abi,
          functionName: 'createOrderFeatureDisabledKey',
          args: [handler, BigInt(t)],
        }),
      ).toBe(orderFeatureDisabledKey('create', handler, t));
      expect(
        await read({
          address,
          abi,
          functionName: 'executeOrderFeatureDisabledKey',
          args: [handler, BigInt(t)],
        }),
      ).toBe(orderFeatureDisabledKey('execute', handler, t));
    }
    // The local DataStore holds its configuration under those keys.
    expect(await getUint(maxOpenInterestKey(ethMarket(), true))).toBe(100_000n * USD30);
    expect(await getUint(positionFeeFactorKey(ethMarket(), false))).toBe(5n * BPS);
    expect(await getUint(GMX_KEYS.INCREASE_ORDER_GAS_LIMIT)).toBe(3_000_000n);
  });
});

describe('funding and borrowing: Reader.getMarketInfo (nextFunding, borrowingFactorPerSecondFor*), as MarketUtils charges them', () => {
  const K = GMX_KEYS;
  const ONE = USD30; // 10^30: 1 as a GMX factor
  const eth30 = { min: usdToGmxPrice(3500, 18), max: usdToGmxPrice(3500, 18) };
  const usdc30 = { min: 10n ** 24n, max: 10n ** 24n };
  const marketInfo = (market = ethMarket()) =>
    trader.publicClient.readContract({
      address: fx.params.reader,
      abi: readerAbi,
      functionName: 'getMarketInfo',
      args: [
        fx.params.dataStore,
        { indexTokenPrice: eth30, longTokenPrice: eth30, shortTokenPrice: usdc30 },
        market,
      ],
    });
  /** USD over `hours` of a 30-decimal factor per second on `usd` of size, exactly as a decimal. */
  const carry = (factorPerSecond: bigint, usd: number, hours = 24) =>
    Number(factorPerSecond * 3600n * BigInt(hours) * BigInt(usd)) / 1e30;

  /**
   * Longs 10 500 USD (the trader, 3 ETH), shorts 3 500 USD (the other trader, 1 ETH); pools of 100 ETH
   * (350 000 USD) and 350 000 USDC; static funding: FUNDING_FACTOR 2 × 10^-8 × the skew (7 000 / 14 000)
   * = 10^-8 per second, longs paying; borrowing BORROWING_FACTOR × reserved / pool: longs 10^-6 ×
   * 10 500 / 350 000 = 3 × 10^-8 per second, shorts 2 × 10^-6 × 3 500 / 350 000 = 2 × 10^-8.
   */
  async function skewedMarket() {
    await fx.setUint(poolAmountKey(ethMarket(), weth()), 100n * 10n ** 18n);
    await fx.setUint(poolAmountKey(ethMarket(), usdc()), 350_000n * 10n ** 6n);
    await order(venue(), 'fund-long', 'buy', '3');
    const otherVenue = venue({ ctx: other });
    await order(otherVenue, 'fund-short', 'sell', '1');
    await fx.setUint(marketKey(K.FUNDING_FACTOR, ethMarket()), 2n * 10n ** 22n);
    await fx.setUint(marketKey(K.FUNDING_EXPONENT_FACTOR, ethMarket()), ONE);
    await fx.setUint(marketKey(K.MAX_FUNDING_FACTOR_PER_SECOND, ethMarket()), 10n ** 25n);
    for (const [isLong, factor] of [
      [true, 10n ** 24n],
      [false, 2n * 10n ** 24n],
    ] as const) {
      await fx.setUint(marketSideKey(K.BORROWING_FACTOR, ethMarket(), isLong), factor);
      await fx.setUint(marketSideKey(K.BORROWING_EXPONENT_FACTOR, ethMarket(), isLong), ONE);
    }
    return otherVenue;
  }

  it('the local Reader answers getMarketInfo as upstream computes it (static and adaptive funding, both borrowing models)', async () => {
    // no open interest: no funding, no borrowing (the market itself in the answer)
    let info = await marketInfo();
    expect(info.market.marketToken).toBe(getAddress(ethMarket()));
    expect(info.nextFunding).toMatchObject({ longsPayShorts: false, fundingFactorPerSecond: 0n });
    expect([info.borrowingFactorPerSecondForLongs, info.borrowingFactorPerSecondForShorts]).toEqual([0n, 0n]);
    await skewedMarket();
    info = await marketInfo();
    expect(info.nextFunding).toMatchObject({
      longsPayShorts: true,
      fundingFactorPerSecond: 10n ** 22n,
      nextSavedFundingFactorPerSecond: 0n,
    });
    expect(info.borrowingFactorPerSecondForLongs).toBe(3n * 10n ** 22n);
    expect(info.borrowingFactorPerSecondForShorts).toBe(2n * 10n ** 22n);
    expect(info.isDisabled).toBe(false);
    // capped by MAX_FUNDING_FACTOR_PER_SECOND
    await fx.setUint(marketKey(K.MAX_FUNDING_FACTOR_PER_SECOND, ethMarket()), 4n * 10n ** 21n);
    expect((await marketInfo()).nextFunding.fundingFactorPerSecond).toBe(4n * 10n ** 21n);
    // adaptive funding: SAVED_FUNDING_FACTOR_PER_SECOND (signed, < 0: shorts pay) moves each second
    // since FUNDING_UPDATED_AT by FUNDING_INCREASE_FACTOR_PER_SECOND × the skew factor, toward the
    // larger side paying (the longs here)
    await fx.setUint(marketKey(K.MAX_FUNDING_FACTOR_PER_SECOND, ethMarket()), 10n ** 25n);
    await fx.setUint(marketKey(K.FUNDING_INCREASE_FACTOR_PER_SECOND, ethMarket()), 10n ** 19n);
    await fx.setInt(marketKey(K.SAVED_FUNDING_FACTOR_PER_SECOND, ethMarket()), -5n * 10n ** 21n);
    info = await marketInfo(); // FUNDING_UPDATED_AT unset: 0 s, the saved factor as it is
    expect(info.nextFunding).toMatchObject({
      longsPayShorts: false,
      fundingFactorPerSecond: 5n * 10n ** 21n,
      nextSavedFundingFactorPerSecond: -5n * 10n ** 21n,
    });
    const block = await trader.publicClient.getBlock();
    await fx.setUint(marketKey(K.FUNDING_UPDATED_AT, ethMarket()), block.timestamp - 500n);
    info = await marketInfo();
    // + applyFactor(0.5 × 10^30, 10^19) = 5 × 10^18 for each of the ~500 s
    const next = info.nextFunding.nextSavedFundingFactorPerSecond;
    const moved = next + 5n * 10n ** 21n;
    expect(moved % (5n * 10n ** 18n)).toBe(0n);
    expect(Number(moved / (5n * 10n ** 18n))).toBeGreaterThanOrEqual(500);
    expect(Number(moved / (5n * 10n ** 18n))).toBeLessThan(510);
    expect(info.nextFunding).toMatchObject({ longsPayShorts: false, fundingFactorPerSecond: -next });
    // kink borrowing for shorts: usage 3 500 / (350 000 × 0.5 OPEN_INTEREST_RESERVE_FACTOR) = 0.02 over
    // an optimal 0.01: base 10^-6 × 0.02 + (5 × 10^-6 − 10^-6) × 0.01 / 0.99
    await fx.setUint(reserveFactorKey(ethMarket(), false, 'open-interest'), ONE / 2n);
    await fx.setUint(marketSideKey(K.OPTIMAL_USAGE_FACTOR, ethMarket(), false), ONE / 100n);
    await fx.setUint(marketSideKey(K.BASE_BORROWING_FACTOR, ethMarket(), false), 10n ** 24n);
    await fx.setUint(
      marketSideKey(K.ABOVE_OPTIMAL_USAGE_BORROWING_FACTOR, ethMarket(), false),
      5n * 10n ** 24n,
    );
    const usage = ONE / 50n;
    expect((await marketInfo()).borrowingFactorPerSecondForShorts).toBe(
      (usage * 10n ** 24n) / ONE + (4n * 10n ** 24n * (usage - ONE / 100n)) / (ONE - ONE / 100n),
    );
    // SKIP_BORROWING_FEE_FOR_SMALLER_SIDE: the shorts (3 500 < 10 500) pay none; IS_MARKET_DISABLED
    await fx.setBool(K.SKIP_BORROWING_FEE_FOR_SMALLER_SIDE, true);
    await fx.setBool(marketKey(K.IS_MARKET_DISABLED, ethMarket()), true);
    info = await marketInfo();
    expect(info.borrowingFactorPerSecondForShorts).toBe(0n);
    expect(info.borrowingFactorPerSecondForLongs).toBe(3n * 10n ** 22n);
    expect(info.isDisabled).toBe(true);
    // an unknown market: an empty answer, as MarketStoreUtils.get gives
    expect((await marketInfo(getAddress(`0x${randomBytes(20).toString('hex')}`))).market.marketToken).toBe(
      zeroAddress,
    );
  });

  it("fetchFundingRate with nothing held: the market's funding, the paying side's rate per hour, + when longs pay, − when shorts do", async () => {
    const v = venue({ ctx: keeperCtx }); // an account with no positions
    // no open interest on one side: GMX moves no funding
    expect((await v.fetchFundingRate('ETH-USD:PERP')).ratePerHour).toBe(0);
    await skewedMarket();
    const rate = await v.fetchFundingRate('ETH-USD:PERP');
    const block = await trader.publicClient.getBlock();
    // 10^-8 per second × 3 600
    expect(rate).toEqual({
      venue: 'gmx-local',
      instrument: 'ETH-USD:PERP',
      ratePerHour: 0.000036,
      asOfMs: Number(block.timestamp) * 1000,
    });
    // adaptive funding with shorts paying 5 × 10^-9 per second
    await fx.setUint(marketKey(K.FUNDING_INCREASE_FACTOR_PER_SECOND, ethMarket()), 10n ** 19n);
    await fx.setInt(marketKey(K.SAVED_FUNDING_FACTOR_PER_SECOND, ethMarket()), -5n * 10n ** 21n);
    expect((await v.fetchFundingRate('ETH-USD:PERP')).ratePerHour).toBe(-0.000018);
    // the rate of the market traded for the instrument; an unlisted one is refused
    expect((await v.fetchFundingRate('BTC-USD:PERP')).ratePerHour).toBe(0);
    await expect(v.fetchFundingRate('DOGE-USD:PERP')).rejects.toBeInstanceOf(InvalidOrderError);
    // declared: funding accrues by the second
    expect(v.capabilities.fundingIntervalHours).toBe(1 / 3600);
  });

  it("fetchFundingRate of a held position: funding plus the borrowing of the side held, so the book's carry is what GMX charges", async () => {
    const otherVenue = await skewedMarket(); // the trader long 3 ETH, the other trader short 1 ETH
    const v = venue();
    // the long: 10^-8 funding + 3 × 10^-8 borrowing per second, × 3 600 (funding alone: 0.000036)
    expect((await v.fetchFundingRate('ETH-USD:PERP')).ratePerHour).toBe(0.000144);
    // the short: 2 × 10^-8 borrowing less the 10^-8 funding it is credited: a cost, so −size × rate < 0
    expect((await otherVenue.fetchFundingRate('ETH-USD:PERP')).ratePerHour).toBe(-0.000036);
    // the book's funding P&L per hour (−size × spot × rate) is what the long pays by the second:
    // 10 500 USD × 4 × 10^-8 × 3 600 = 1.512 USD an hour
    expect(-3 * 3500 * (await v.fetchFundingRate('ETH-USD:PERP')).ratePerHour).toBeCloseTo(-1.512, 12);
    // shorts paying (adaptive, 5 × 10^-9): the long pays its 3 × 10^-8 borrowing less that credit, the
    // short its 2 × 10^-8 plus that funding: 2.5 × 10^-8 each
    await fx.setUint(marketKey(K.FUNDING_INCREASE_FACTOR_PER_SECOND, ethMarket()), 10n ** 19n);
    await fx.setInt(marketKey(K.SAVED_FUNDING_FACTOR_PER_SECOND, ethMarket()), -5n * 10n ** 21n);
    expect((await v.fetchFundingRate('ETH-USD:PERP')).ratePerHour).toBe(0.00009);
    expect((await otherVenue.fetchFundingRate('ETH-USD:PERP')).ratePerHour).toBe(-0.00009);
    // no position in BTC: its market's funding (none)
    expect((await v.fetchFundingRate('BTC-USD:PERP')).ratePerHour).toBe(0);
  });

  it('fetchFundingRate with a long and a short held apart (a sell past the long): both sides pay, folded into the net size; equal sizes have no rate', async () => {
    await skewedMarket();
    const v = venue();
    await order(v, 'fund-flip', 'sell', '5'); // opens a short of 5 beside the long of 3: net −2
    const [pos] = await v.fetchPositions();
    expect(pos?.sizeBase).toBe(-2);
    const info = await marketInfo();
    const F = info.nextFunding.longsPayShorts
      ? info.nextFunding.fundingFactorPerSecond
      : -info.nextFunding.fundingFactorPerSecond;
    const long = F + info.borrowingFactorPerSecondForLongs;
    const short = -F + info.borrowingFactorPerSecondForShorts;
    expect(info.borrowingFactorPerSecondForLongs).toBeGreaterThan(0n);
    expect(info.borrowingFactorPerSecondForShorts).toBeGreaterThan(0n);
    // per hour: the long's 3 and the short's 5 over the net −2
    const costPerHour30 = (3n * long + 5n * short) * 3600n;
    const rate = (await v.fetchFundingRate('ETH-USD:PERP')).ratePerHour;
    expect(rate).toBeCloseTo(-Number(costPerHour30) / 2 / 1e30, 18);
    // the book's carry of the net −2 is what both positions pay
    expect(-(-2) * 3500 * rate).toBeCloseTo((-Number(costPerHour30) * 3500) / 1e30, 9);
    // a buy of 2 reduces the short to 3: long 3 and short 3, net 0, both still paying borrowing
    await order(v, 'fund-even', 'buy', '2');
    expect((await v.fetchPositions())[0]?.sizeBase).toBe(0);
    const err = await v.fetchFundingRate('ETH-USD:PERP').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotSupportedError);
    expect((err as Error).message).toMatch(/holds 3 long and 3 short of ETH-USD:PERP.*net size of 0/);
  });

  it("quotes carry the side's funding and borrowing over holdingHours: a buy the long side, a sell the short side", async () => {
    const v = await skewedMarket(); // the other trader's, short 1 ETH
    const quote = (side: 'buy' | 'sell', sizeBase: string, holdingHours?: number) =>
      v.quoteHedge({
        instrument: 'ETH-USD:PERP',
        side,
        sizeBase,
        ...(holdingHours !== undefined ? { holdingHours } : {}),
      });
    // buy 2 ETH (more than the short: a long of 7 000 USD): longs pay 10^-8 funding + 3 × 10^-8 borrowing
    let q = await quote('buy', '2');
    expect(q.fundingCarryUsd).toBeCloseTo(carry(10n ** 22n + 3n * 10n ** 22n, 7000), 9); // 24.192
    expect(q.totalCostUsd).toBeCloseTo(q.feeUsd + q.impactUsd + q.gasUsd + q.fundingCarryUsd, 9);
    // over the request's holding time
    expect((await quote('buy', '2', 1)).fundingCarryUsd).toBeCloseTo(carry(4n * 10n ** 22n, 7000, 1), 9);
    expect((await quote('buy', '2', 0)).fundingCarryUsd).toBe(0);
    // sell 1 ETH (a short of 3 500): short borrowing 2 × 10^-8 less the funding shorts receive, the
    // longs' 10 500 × 10^-8 spread over 3 500 + 3 500 of shorts: 1.5 × 10^-8
    q = await quote('sell', '1');
    expect(q.fundingCarryUsd).toBeCloseTo(carry(2n * 10n ** 22n - 15n * 10n ** 21n, 3500), 9); // 1.512
    // sell 2 ETH: the shorts would be as large as the longs (funding turns round): no credit
    q = await quote('sell', '2');
    expect(q.fundingCarryUsd).toBeCloseTo(carry(2n * 10n ** 22n, 7000), 9); // 12.096
    // a buy of 0.5 ETH by the short holder reduces its short: it stops paying the shorts' borrowing
    // and stops receiving their funding (10 500 × 10^-8 / 3 500 = 3 × 10^-8): a net loss of 10^-8
    q = await quote('buy', '0.5');
    expect(q.fundingCarryUsd).toBeCloseTo(carry(3n * 10n ** 22n - 2n * 10n ** 22n, 1750), 9); // 1.512
    // shorts paying (adaptive, 5 × 10^-9): a sell pays it on top of its borrowing; a buy gets no
    // credit (the longs are already the larger side) and pays its borrowing only
    await fx.setUint(marketKey(K.FUNDING_INCREASE_FACTOR_PER_SECOND, ethMarket()), 10n ** 19n);
    await fx.setInt(marketKey(K.SAVED_FUNDING_FACTOR_PER_SECOND, ethMarket()), -5n * 10n ** 21n);
    expect((await quote('sell', '1')).fundingCarryUsd).toBeCloseTo(
      carry(5n * 10n ** 21n + 2n * 10n ** 22n, 3500),
      9,
    ); // 7.56
    expect((await quote('buy', '2')).fundingCarryUsd).toBeCloseTo(carry(3n * 10n ** 22n, 7000), 9);
  });
});

describe('min collateral factor: DataStore.getUint(MIN_COLLATERAL_FACTOR key), as MarketUtils.getMinCollateralFactor', () => {
  // 20×: the operator's leverage asks 5% of the size; a market's factor (with 25% headroom for the fees
  // GMX takes out of the collateral first) asks more only when raised
  const lev20 = () => venue({ params: { leverage: 20 } });
  const ethInfo = async (v = lev20()) =>
    (await v.loadMarkets()).find((m) => m.instrument.id === 'ETH-USD:PERP');

  it("lists each traded market's collateral per USD of size: 1/leverage, or its factor with headroom when that is more, exactly", async () => {
    // unset on the local chain (0): GMX asks no share of the size; the leverage decides
    expect(await getUint(minCollateralFactorKey(ethMarket()))).toBe(0n);
    const eth = await ethInfo();
    expect(eth).toMatchObject({ active: true, initialMarginFraction: 0.05 });
    // 4× at most, as a market listed with a raised factor (30 decimals): 0.25 × 1.25
    await fx.setUint(minCollateralFactorKey(ethMarket()), 25n * 10n ** 28n);
    const markets = await lev20().loadMarkets();
    expect(markets.find((m) => m.instrument.id === 'ETH-USD:PERP')).toMatchObject({
      active: true,
      initialMarginFraction: 0.3125,
    });
    // keyed by market: the other markets keep theirs (unset: the leverage's 5%)
    const others = markets.filter((m) => m.instrument.id !== 'ETH-USD:PERP');
    expect(others.length).toBeGreaterThan(0);
    for (const m of others) expect(m.initialMarginFraction).toBe(0.05);
    // a factor below what the leverage posts changes nothing
    await fx.setUint(minCollateralFactorKey(ethMarket()), 3n * 10n ** 27n); // 0.3%
    expect((await ethInfo())?.initialMarginFraction).toBe(0.05);
    // decimal arithmetic: 0.0448 × 1.25 = 0.056 (in floats 0.056000000000000001 or worse is possible)
    await fx.setUint(minCollateralFactorKey(ethMarket()), 448n * 10n ** 26n);
    expect((await ethInfo())?.initialMarginFraction).toBe(0.056);
    await fx.setUint(minCollateralFactorKey(ethMarket()), 8n * 10n ** 29n); // 0.8 × 1.25 = 1×
    expect((await ethInfo())?.initialMarginFraction).toBe(1);
  });

  it('lists a market asking more collateral than its size as inactive, so routing leaves it', async () => {
    await fx.setUint(minCollateralFactorKey(ethMarket()), 10n ** 30n); // 1× the size, 1.25× with headroom
    const eth = await ethInfo();
    expect(eth?.active).toBe(false);
    expect(eth).not.toHaveProperty('initialMarginFraction');
  });

  it('an increase posts that collateral: the factor with headroom where it is above 1/leverage', async () => {
    await fx.setUint(minCollateralFactorKey(ethMarket()), 6n * 10n ** 29n); // 0.6 × 1.25 = 0.75 > 1/2
    const store = new MemoryOrderStore<GmxOrderRecord>();
    const v = venue({ store });
    expect((await ethInfo(v))?.initialMarginFraction).toBe(0.75);
    await order(v, 'mcf-1', 'buy', '0.1'); // 350 USD of size at 3 500
    // 0.75 × 350 = 262.5 USDC posted (1/leverage would have posted 175, below what GMX requires)
    expect((await store.get('mcf-1'))?.spend?.amountBase).toBe('262500000');
  });
});

describe('open interest: DataStore.getUint(OPEN_INTEREST keys), as MarketUtils.getOpenInterest', () => {
  it('books each position under its collateral token and caps quotes at MAX_OPEN_INTEREST − open interest', async () => {
    const v = venue();
    await order(v, 'oi-1', 'buy', '2'); // 7 000 USD long, USDC collateral
    expect(await getUint(openInterestKey(ethMarket(), usdc(), true))).toBe(7000n * USD30);
    expect(await getUint(openInterestKey(ethMarket(), weth(), true))).toBe(0n);
    expect(await getUint(openInterestKey(ethMarket(), usdc(), false))).toBe(0n);
    // Room for a long: (100 000 − 7 000) / 3 500 ETH.
    let q = await v.quoteHedge({ instrument: 'ETH-USD:PERP', side: 'buy', sizeBase: '100' });
    expect(Number(q.executableSizeBase)).toBeCloseTo(93_000 / 3500, 9);
    expect(q.capReason).toMatch(/open interest cap/);
    // A lower cap set in the DataStore is what the quote reads.
    await fx.setUint(maxOpenInterestKey(ethMarket(), true), 10_500n * USD30);
    q = await v.quoteHedge({ instrument: 'ETH-USD:PERP', side: 'buy', sizeBase: '100' });
    expect(Number(q.executableSizeBase)).toBeCloseTo(1, 9);
    // The short side has its own cap and open interest (none).
    q = await v.quoteHedge({ instrument: 'ETH-USD:PERP', side: 'sell', sizeBase: '100' });
    expect(Number(q.executableSizeBase)).toBeCloseTo(100_000 / 3500, 9);
    // The keeper cancels what passes the cap, as MarketUtils.validateOpenInterest reverts.
    await order(v, 'oi-2', 'buy', '2', false);
    await keeper.runOnce();
    // 7 000 + 7 000 USD against the 10 500 cap, decoded from OrderCancelled's reasonBytes.
    expect(keeperResults.at(-1)).toMatchObject({
      outcome: 'cancelled',
      reason: `MaxOpenInterestExceeded(${14_000n * USD30}, ${10_500n * USD30})`,
    });
    // Closing books it out again.
    await order(v, 'oi-3', 'sell', '2');
    expect(await getUint(openInterestKey(ethMarket(), usdc(), true))).toBe(0n);
  });
});

describe('pool reserve: POOL_AMOUNT × RESERVE_FACTOR and OPEN_INTEREST_RESERVE_FACTOR, as MarketUtils.validateReserve', () => {
  it('caps quotes at what each side may still reserve, and the keeper cancels an increase past it', async () => {
    const v = venue();
    const factor = (pct: number) => (BigInt(pct) * USD30) / 100n;
    const buy = () => v.quoteHedge({ instrument: 'ETH-USD:PERP', side: 'buy', sizeBase: '100' });
    // Longs reserve the pool's long token (WETH): 20 WETH at 3 500 = 70 000 USD, × 0.5 → 35 000 USD = 10 ETH.
    await fx.setUint(poolAmountKey(ethMarket(), weth()), 20n * 10n ** 18n);
    await fx.setUint(reserveFactorKey(ethMarket(), true, 'reserve'), factor(50));
    await fx.setUint(reserveFactorKey(ethMarket(), true, 'open-interest'), factor(80));
    let q = await buy();
    expect(Number(q.executableSizeBase)).toBeCloseTo(10, 9);
    expect(q.capReason).toMatch(/pool reserve cap/);
    // What longs hold is reserved in index tokens (OPEN_INTEREST_IN_TOKENS), at the index max price.
    await order(v, 'rs-1', 'buy', '4');
    expect(await getUint(openInterestInTokensKey(ethMarket(), usdc(), true))).toBe(4n * 10n ** 18n);
    expect(Number((await buy()).executableSizeBase)).toBeCloseTo(6, 9);
    await fx.setPrice('ETH', 3500, 4375); // the same 4 ETH now reserve 17 500 of the 35 000 USD
    expect(Number((await buy()).executableSizeBase)).toBeCloseTo(17_500 / 4375, 9);
    await fx.setPrice('ETH', 3500);
    // The smaller factor binds: OPEN_INTEREST_RESERVE_FACTOR 0.3 → 21 000 USD = 6 ETH in all, 2 left.
    await fx.setUint(reserveFactorKey(ethMarket(), true, 'open-interest'), factor(30));
    q = await buy();
    expect(Number(q.executableSizeBase)).toBeCloseTo(2, 9);
    // Past it, the keeper cancels as validateOpenInterestReserve reverts; at the quoted size it fills.
    await order(v, 'rs-2', 'buy', '3', false);
    await keeper.runOnce();
    expect(keeperResults.at(-1)).toMatchObject({
      outcome: 'cancelled',
      reason: expect.stringMatching(/^InsufficientReserveForOpenInterest\(\d+, \d+\)$/),
    });
    await fx.setUint(reserveFactorKey(ethMarket(), true, 'reserve'), factor(20)); // 14 000 USD < 21 000
    await order(v, 'rs-3', 'buy', '1', false);
    await keeper.runOnce();
    expect(keeperResults.at(-1)).toMatchObject({
      outcome: 'cancelled',
      reason: expect.stringMatching(/^InsufficientReserve\(\d+, \d+\)$/),
    });
    await fx.setUint(reserveFactorKey(ethMarket(), true, 'reserve'), factor(50));
    await order(v, 'rs-4', 'buy', q.executableSizeBase);
    expect(keeperResults.at(-1)).toMatchObject({ outcome: 'executed' });
    expect(Number((await buy()).executableSizeBase)).toBeCloseTo(0, 9);
    // Shorts reserve the short token (USDC) pool against their open interest in USD: 50 000 × 0.5 = 7.142857 ETH.
    await fx.setUint(poolAmountKey(ethMarket(), usdc()), 50_000n * 10n ** 6n);
    await fx.setUint(reserveFactorKey(ethMarket(), false, 'reserve'), factor(50));
    q = await v.quoteHedge({ instrument: 'ETH-USD:PERP', side: 'sell', sizeBase: '100' });
    expect(Number(q.executableSizeBase)).toBeCloseTo(25_000 / 3500, 9);
    expect(q.capReason).toMatch(/pool reserve cap.*short side/);
    // A sell no larger than the 6 ETH long reduces it (a decrease, as placeOrder sends it): under no cap.
    const reduce = await v.quoteHedge({ instrument: 'ETH-USD:PERP', side: 'sell', sizeBase: '5' });
    expect(reduce.executableSizeBase).toBe('5');
    expect(reduce.capReason).toBeUndefined();
    // A larger one opens a short of its full size: the short side's reserve caps it.
    const flip = await v.quoteHedge({ instrument: 'ETH-USD:PERP', side: 'sell', sizeBase: '8' });
    expect(Number(flip.executableSizeBase)).toBeCloseTo(25_000 / 3500, 9);
  });
});

describe('position fee: POSITION_FEE_FACTOR by market and balanceWasImproved', () => {
  it('quotes, charges and reports the factor for whether the change brings long and short closer', async () => {
    await fx.setUint(positionFeeFactorKey(ethMarket(), true), 4n * BPS);
    await fx.setUint(positionFeeFactorKey(ethMarket(), false), 6n * BPS);
    const v = venue();
    // No open interest: a long of 1 ETH (3 500 USD) widens the gap → 6 bps = 2.1 USD.
    let q = await v.quoteHedge({ instrument: 'ETH-USD:PERP', side: 'buy', sizeBase: '1' });
    expect(q.feeUsd).toBe(2.1);
    await order(v, 'fee-1', 'buy', '1');
    let fills = await v.fetchFills();
    expect(fills.at(-1)?.feeUsd).toBe(2.1);
    // Long 3 500, short 0: selling 1 ETH (closing the long, or a short in the quote) narrows it → 4 bps.
    q = await v.quoteHedge({ instrument: 'ETH-USD:PERP', side: 'sell', sizeBase: '1' });
    expect(q.feeUsd).toBe(1.4);
    // The Reader's closing fee for the whole long uses the same factor.
    const eth = { min: usdToGmxPrice(3500, 18), max: usdToGmxPrice(3500, 18) };
    const usdcPrice = { min: 10n ** 24n, max: 10n ** 24n };
    const [info] = await readPositionInfos(trader, fx, ethMarket(), {
      index: eth,
      long: eth,
      short: usdcPrice,
    });
    expect(info?.fees.positionFeeFactor).toBe(4n * BPS);
    expect(info?.fees.positionFeeAmount).toBe(1_400_000n);
    expect(info?.executionPriceResult.balanceWasImproved).toBe(true);
    await order(v, 'fee-2', 'sell', '1');
    fills = await v.fetchFills();
    expect(fills.at(-1)?.feeUsd).toBe(1.4);
  });
});

describe('execution fee: GasUtils.adjustGasLimitForEstimate × gas price, checked as validateExecutionFee', () => {
  /** Fixes the latest block's base fee (what the adapter prices gas at) and returns it. */
  async function setBaseFee(wei: bigint): Promise<bigint> {
    await rpc(deployer.publicClient, 'anvil_setNextBlockBaseFeePerGas', [toHex(wei)]);
    await rpc(deployer.publicClient, 'evm_mine', []);
    const block = await trader.publicClient.getBlock({ blockTag: 'latest' });
    expect(block.baseFeePerGas).toBe(wei);
    return wei;
  }

  const orderOf = (key: Hex) =>
    trader.publicClient.readContract({
      address: fx.params.reader,
      abi: readerAbi,
      functionName: 'getOrder',
      args: [fx.params.dataStore, key],
    });

  it('sends the DataStore gas limit × the signed fee cap (2 × base fee + priority fee), above a low floor', async () => {
    const store = new MemoryOrderStore<GmxOrderRecord>();
    const v = venue({ store, params: { executionFeeWei: '1' } });
    const priority = await trader.publicClient.estimateMaxPriorityFeePerGas();
    let base = await setBaseFee(3_000_000_000n);
    const placed = await order(v, 'xf-1', 'buy', '0.1', false);
    // ESTIMATED_GAS_FEE_BASE_AMOUNT_V2_1 600 000 + 3 oracle prices × 250 000 + INCREASE_ORDER_GAS_LIMIT
    // 3 000 000 × 1 (the fixture's config/general.ts values).
    const increaseGas = 600_000n + 3n * 250_000n + 3_000_000n;
    const o = await orderOf(placed.venueOrderId as Hex);
    // × params.executionFeeHeadroom (default 2), so a speed-up of the transaction is covered too.
    expect(o.numbers.executionFee).toBe(2n * increaseGas * (2n * base + priority));
    // What the contract asked of this transaction: at most that.
    const rec = await trader.publicClient.getTransactionReceipt({
      hash: (await store.get('xf-1'))?.txHash as Hex,
    });
    expect(increaseGas * rec.effectiveGasPrice).toBeLessThanOrEqual(o.numbers.executionFee);
    await keeper.runOnce();
    // A decrease is priced with DECREASE_ORDER_GAS_LIMIT.
    await fx.setUint(GMX_KEYS.DECREASE_ORDER_GAS_LIMIT, 1_000_000n);
    base = await setBaseFee(2_000_000_000n);
    const closing = await order(v, 'xf-2', 'sell', '0.1', false);
    expect((await orderOf(closing.venueOrderId as Hex)).numbers.executionFee).toBe(
      2n * (600_000n + 3n * 250_000n + 1_000_000n) * (2n * base + priority),
    );
    // The configured floor wins when it is higher.
    await keeper.runOnce();
    const rich = venue({ params: { executionFeeWei: '50000000000000000' } });
    const big = await order(rich, 'xf-3', 'buy', '0.1', false);
    expect((await orderOf(big.venueOrderId as Hex)).numbers.executionFee).toBe(50_000_000_000_000_000n);
  });

  it('the local contract refuses a fee below gas limit × tx.gasprice with InsufficientExecutionFee', async () => {
    await setBaseFee(1_000_000_000n);
    const gasPrice = 5_000_000_000n;
    await fx.setUint(GMX_KEYS.DECREASE_ORDER_GAS_LIMIT, 1_500_000n);
    const minimum = (600_000n + 3n * 250_000n + 1_500_000n) * gasPrice;
    const call = (fee: bigint) =>
      trader.publicClient.call({
        account: trader.account,
        to: fx.params.exchangeRouter,
        gasPrice,
        value: fee,
        data: decreaseOrderData(ethMarket(), fee),
      });
    const err = await call(minimum - 1n).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BaseError);
    const raw = (err as BaseError).walk(
      (e) => typeof (e as { data?: unknown }).data === 'string',
    ) as unknown as { data: Hex } | undefined;
    expect(decodeErrorResult({ abi: gmxErrorAbi, data: raw?.data as Hex })).toMatchObject({
      errorName: 'InsufficientExecutionFee',
      args: [minimum, minimum - 1n],
    });
    await expect(call(minimum)).resolves.toBeDefined();
  });
});

describe('working orders: Reader.getAccountOrders (ReaderUtils.OrderInfo[])', () => {
  it("lists the account's orders with their keys and client ids until a keeper takes them", async () => {
    const store = new MemoryOrderStore<GmxOrderRecord>();
    const v = venue({ store });
    const a = await order(v, 'wo-1', 'buy', '0.1', false);
    const b = await order(v, 'wo-2', 'sell', '0.2', false);
    // Another account's order is in ORDER_LIST but not in this account's list.
    await order(venue({ ctx: other }), 'wo-other', 'buy', '0.1', false);
    const count = await trader.publicClient.readContract({
      address: fx.params.dataStore,
      abi: dataStoreAbi,
      functionName: 'getBytes32Count',
      args: [GMX_KEYS.ORDER_LIST],
    });
    expect(count).toBe(3n);
    const working = await v.fetchWorkingOrders();
    expect(working.map((w) => [w.orderKey, w.clientOrderId, w.instrument, w.orderType, w.isLong])).toEqual([
      [a.venueOrderId, 'wo-1', 'ETH-USD:PERP', ORDER_TYPE.MarketIncrease, true],
      [b.venueOrderId, 'wo-2', 'ETH-USD:PERP', ORDER_TYPE.MarketIncrease, false],
    ]);
    // Decoded at the right offsets: the same as Reader.getOrder of each key.
    for (const w of working) {
      const o = await trader.publicClient.readContract({
        address: fx.params.reader,
        abi: readerAbi,
        functionName: 'getOrder',
        args: [fx.params.dataStore, w.orderKey],
      });
      expect(w.market).toBe(getAddress(ethMarket()));
      expect(w.sizeDeltaUsd30).toBe(o.numbers.sizeDeltaUsd);
      expect(w.acceptablePrice).toBe(o.numbers.acceptablePrice);
      expect(w.executionFeeWei).toBe(o.numbers.executionFee);
      expect(w.updatedAtMs).toBe(Number(o.numbers.updatedAtTime) * 1000);
    }
    expect(working[0]?.sizeDeltaUsd30).toBe(350n * USD30);
    // An order this adapter's store does not know is still listed, without a client id.
    expect((await venue().fetchWorkingOrders()).map((w) => w.clientOrderId)).toEqual([undefined, undefined]);
    await keeper.runOnce();
    expect(await v.fetchWorkingOrders()).toEqual([]);
  });
});

describe('prices from the GMX oracle keeper endpoint (params.pricesUrl)', () => {
  let server: Server | undefined;
  afterEach(async () => {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server = undefined;
  });

  /**
   * Serves `/prices/tickers` in the documented format (gmx-interface sdk TickersResponse, the recorded
   * Arbitrum answer's fields) built at each request from the local oracle's prices of `tokens`, and
   * `/tokens` (GMX REST v2) listing them.
   * `mutate` can break the answer.
   */
  async function tickersServer(
    tokens: { address: Address; symbol: string; decimals: number }[],
    mutate: (entries: Record<string, unknown>[]) => unknown = (e) => e,
    status = 200,
  ): Promise<string> {
    const srv = createServer((req, res) => {
      void (async () => {
        if (req.url === '/tokens') {
          const list = tokens.map((t) => ({
            symbol: t.symbol,
            address: getAddress(t.address),
            decimals: t.decimals,
          }));
          res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ tokens: list }));
          return;
        }
        if (req.url !== '/prices/tickers') {
          res.writeHead(404).end();
          return;
        }
        // the Oracle keeps one time for all its prices: the newest (maxTimestamp)
        const at = await trader.publicClient.readContract({
          address: fx.params.oracle,
          abi: oracleAbi,
          functionName: 'maxTimestamp',
        });
        const entries = await Promise.all(
          tokens.map(async (t) => {
            const { min, max } = await trader.publicClient.readContract({
              address: fx.params.oracle,
              abi: oracleAbi,
              functionName: 'getPrimaryPrice',
              args: [t.address],
            });
            return {
              tokenAddress: getAddress(t.address),
              tokenSymbol: t.symbol,
              minPrice: min.toString(),
              maxPrice: max.toString(),
              updatedAt: Number(at) * 1000,
              timestamp: Number(at),
            };
          }),
        );
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(mutate(entries)));
      })();
    });
    server = srv;
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(srv.address() as AddressInfo).port}/prices/tickers`;
  }

  const allTokens = () => [
    { address: usdc(), symbol: 'USDC', decimals: 6 },
    {
      address: fx.indexTokens.BTC?.address as Address,
      symbol: 'BTC',
      decimals: fx.indexTokens.BTC?.decimals ?? 8,
    },
    { address: weth(), symbol: 'ETH', decimals: 18 },
  ];
  const clock: Clock = { nowMs: () => 2_000_000_000_000 };
  const withoutAsOf = <T extends { asOfMs: number }>(xs: T[]) => xs.map(({ asOfMs: _, ...x }) => x);

  it('gives exactly the marks, positions and quotes of the on-chain oracle path', async () => {
    const url = await tickersServer(allTokens());
    const onChain = venue({ clock });
    const http = venue({ clock, params: { pricesUrl: url } });
    await order(onChain, 'px-1', 'buy', '2');
    await fx.setPrice('ETH', '3600.123456789', '3601.5');
    await fx.setPrice('BTC', 96_000);
    const marks = await onChain.fetchMarks();
    expect(marks.map((m) => m.instrument).sort()).toEqual(['BTC-USD:PERP', 'ETH-USD:PERP']);
    // asOfMs too: the endpoint's updatedAt is the oracle's update time.
    expect(await http.fetchMarks()).toEqual(marks);
    expect(await http.fetchMarks(['ETH-USD:PERP'])).toEqual(
      marks.filter((m) => m.instrument === 'ETH-USD:PERP'),
    );
    const positions = await onChain.fetchPositions();
    expect(positions).toHaveLength(1);
    expect(positions[0]?.unsettledPnlUsd).toBeGreaterThan(0);
    expect(await http.fetchPositions()).toEqual(positions);
    const req = { instrument: 'ETH-USD:PERP', side: 'sell', sizeBase: '1.5' } as const;
    expect(withoutAsOf([await http.quoteHedge(req)])).toEqual(withoutAsOf([await onChain.quoteHedge(req)]));
    // Data age from the endpoint's time, against the clock.
    const eth = marks.find((m) => m.instrument === 'ETH-USD:PERP');
    const health = await http.health();
    expect(health.ok).toBe(true);
    expect(health.dataAgeMs).toBe(clock.nowMs() - Math.max(...marks.map((m) => m.asOfMs)));
    expect(eth?.asOfMs).toBeGreaterThan(0);
    // Orders take their acceptable price from it: a sell fills at the min.
    await order(http, 'px-2', 'sell', '0.5');
    const fill = (await http.fetchFills()).at(-1);
    expect(Number(fill?.priceUsd)).toBeCloseTo(3600.123456789, 6);
  });

  it('names the token the endpoint has no price for', async () => {
    const url = await tickersServer(allTokens().filter((t) => t.symbol !== 'ETH'));
    const http = venue({ params: { pricesUrl: url } });
    const err = await http.fetchMarks().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StaleOracleError);
    expect((err as Error).message).toContain(
      `has no price for the index token of ETH-USD:PERP (${getAddress(weth())})`,
    );
    // the endpoint by its origin: a URL's path or query may hold a key
    expect((err as Error).message).toContain(`${new URL(url).origin}/[redacted]`);
    // Positions need the market's long/short tokens too: the missing one is named.
    await order(venue(), 'px-3', 'buy', '1');
    const perr = await http.fetchPositions().catch((e: unknown) => e);
    expect(perr).toBeInstanceOf(StaleOracleError);
    expect((perr as Error).message).toMatch(
      /the index token of ETH-USD:PERP, where the account has positions/,
    );
  });

  it('refuses an answer in another format, and reports an unavailable endpoint as a retryable network error', async () => {
    const bad = await tickersServer(allTokens(), (e) =>
      e.map((x) => ({ ...x, minPrice: Number(x.minPrice as string) })),
    );
    const err = await venue({ params: { pricesUrl: bad } })
      .fetchMarks()
      .catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/unexpected format: 0\.minPrice/);
    await new Promise<void>((resolve) => server?.close(() => resolve()));
    const down = await tickersServer(allTokens(), (e) => e, 503);
    const err2 = await venue({ params: { pricesUrl: down } })
      .fetchMarks()
      .catch((e: unknown) => e);
    expect(err2).toBeInstanceOf(VenueNetworkError);
    expect((err2 as VenueNetworkError).retryable).toBe(true);
    expect((err2 as Error).message).toMatch(/answered HTTP 503/);
  });
});

describe('an oracle keeper endpoint URL with an API key (params.pricesUrl, tokensUrl)', () => {
  it('names it by its origin only: no part of its userinfo, path or query in any error or health answer', async () => {
    const secrets = ['operat0r-user', 'Passw0rdSecret', 'PathT0kenSecret', 'QueryT0kenSecret'];
    let answer: (url: string) => { status: number; body: string } = () => ({ status: 200, body: '[]' });
    const srv = createServer((req, res) => {
      const a = answer(req.url ?? '');
      res.writeHead(a.status, { 'content-type': 'application/json' }).end(a.body);
    });
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    const origin = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
    const keyed = (path: string) => `${origin}/v2/PathT0kenSecret/${path}?apikey=QueryT0kenSecret`;
    const label = `${origin}/[redacted]`;
    const problems: string[] = [];
    const check = async (
      what: string,
      call: () => Promise<unknown>,
      expected?: new (...a: never[]) => Error,
    ) => {
      const err = await call().then(
        () => new Error('did not fail'),
        (e: unknown) => e,
      );
      const text = everythingIn(err);
      for (const secret of secrets)
        if (text.includes(secret)) problems.push(`${what}: names ${secret}: ${String(err)}`);
      if (!String(err).includes(label))
        problems.push(`${what}: does not name the endpoint by ${label}: ${String(err)}`);
      if (expected && !(err instanceof expected))
        problems.push(`${what}: not a ${expected.name}: ${String(err)}`);
    };
    try {
      const prices = venue({ params: { pricesUrl: keyed('prices/tickers') } });
      answer = () => ({ status: 200, body: '[]' });
      await check('no price', () => prices.fetchMarks(), StaleOracleError);
      answer = () => ({ status: 200, body: JSON.stringify([{ tokenAddress: 'x' }]) });
      await check('unexpected format', () => prices.fetchMarks());
      // an answer that is not JSON, echoing the request (the parser quotes the start of the body)
      answer = (url) => ({ status: 200, body: `${url} upstream failed` });
      await check('not JSON', () => prices.fetchMarks());
      answer = () => ({ status: 503, body: '' });
      await check('HTTP 503', () => prices.fetchMarks(), VenueNetworkError);
      answer = () => ({ status: 429, body: '' });
      await check('HTTP 429', () => prices.fetchMarks(), RateLimitError);
      const health = await prices.health();
      if (health.ok) problems.push('health: ok while the endpoint fails');
      for (const secret of secrets)
        if (JSON.stringify(health).includes(secret)) problems.push(`health: names ${secret}`);
      answer = () => ({
        status: 200,
        body: JSON.stringify({ tokens: [{ symbol: 'X', address: 'x', decimals: 8 }] }),
      });
      await check('tokens list', () => venue({ params: { tokensUrl: keyed('tokens') } }).loadMarkets());
      // fetch refuses a URL with credentials, quoting it
      const withUser = keyed('prices/tickers').replace('http://', 'http://operat0r-user:Passw0rdSecret@');
      await check(
        'credentials',
        () => venue({ params: { pricesUrl: withUser } }).fetchMarks(),
        VenueNetworkError,
      );
    } finally {
      await new Promise<void>((resolve) => srv.close(() => resolve()));
    }
    await check(
      'unreachable',
      () => venue({ params: { pricesUrl: keyed('prices/tickers') } }).fetchMarks(),
      VenueNetworkError,
    );
    expect(problems).toEqual([]);
  });
});

describe('markets as Arbitrum lists them: synthetic index tokens, swap-only markets, several markets per index', () => {
  // gmx-interface sdk/src/configs/tokens.ts: Arbitrum's synthetic DOGE (8 decimals) has no contract.
  const SYNTHETIC_DOGE = '0xC4da4c24fd591125c3F47b340b6f4f76111883d8' as const;
  const marketToken = () => getAddress(`0x${randomBytes(20).toString('hex')}`);

  it('skips swap-only markets, lists a synthetic index token only from params.indexTokens, and names the gap', async () => {
    await fx.addMarket({
      marketToken: marketToken(),
      indexToken: zeroAddress,
      longToken: fx.params.wnt,
      shortToken: fx.params.collateralAsset,
    });
    const doge = marketToken();
    await fx.addMarket({
      marketToken: doge,
      indexToken: SYNTHETIC_DOGE,
      longToken: fx.params.wnt,
      shortToken: fx.params.collateralAsset,
    });
    const plain = venue();
    const ids = (await plain.loadMarkets()).map((m) => m.instrument.id).sort();
    expect(ids).toEqual(['BTC-USD:PERP', 'ETH-USD:PERP']);
    expect(plain.unlistedMarkets).toEqual([{ marketToken: doge, indexToken: getAddress(SYNTHETIC_DOGE) }]);
    const told = venue({
      params: { indexTokens: [{ address: SYNTHETIC_DOGE, symbol: 'DOGE', decimals: 8 }] },
    });
    const listed = await told.loadMarkets();
    expect(listed.map((m) => m.instrument.id).sort()).toEqual([
      'BTC-USD:PERP',
      'DOGE-USD:PERP',
      'ETH-USD:PERP',
    ]);
    expect(listed.find((m) => m.instrument.id === 'DOGE-USD:PERP')?.venueSymbol).toBe(doge);
    expect(told.unlistedMarkets).toEqual([]);
  });

  it("lists index tokens from the keepers' /tokens list (derived from pricesUrl), the operator's entries winning", async () => {
    const doge = marketToken();
    await fx.addMarket({
      marketToken: doge,
      indexToken: SYNTHETIC_DOGE,
      longToken: weth(),
      shortToken: usdc(),
    });
    const tbtc = marketToken();
    const TBTC = getAddress(`0x${randomBytes(20).toString('hex')}`);
    await fx.addMarket({ marketToken: tbtc, indexToken: TBTC, longToken: weth(), shortToken: usdc() });
    let body: unknown = {
      tokens: [
        // as Arbitrum's answer lists them: the wrapped coin under the coin's symbol, synthetics flagged
        { symbol: 'ETH', address: getAddress(weth()), decimals: 18 },
        { symbol: 'DOGE', address: SYNTHETIC_DOGE, decimals: 8, synthetic: true },
        { symbol: 'tBTC', address: TBTC, decimals: 18 },
      ],
    };
    const requests: string[] = [];
    const srv = createServer((req, res) => {
      requests.push(req.url ?? '');
      if (req.url !== '/tokens') return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    });
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    const origin = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
    try {
      const viaPrices = venue({ params: { pricesUrl: `${origin}/prices/tickers` } });
      const listed = await viaPrices.loadMarkets();
      expect(requests).toEqual(['/tokens']);
      expect(listed.map((m) => m.instrument.id).sort()).toEqual([
        'BTC-USD:PERP',
        'DOGE-USD:PERP',
        'ETH-USD:PERP',
      ]);
      // tBTC cannot name an instrument: named as unlisted, not guessed at
      expect(viaPrices.unlistedMarkets).toEqual([{ marketToken: tbtc, indexToken: TBTC }]);
      // an operator's entry wins over the list
      const told = venue({
        params: {
          tokensUrl: `${origin}/tokens`,
          indexTokens: [{ address: TBTC, symbol: 'TBTC', decimals: 18 }],
        },
      });
      expect((await told.loadMarkets()).map((m) => m.instrument.id)).toContain('TBTC-USD:PERP');
      // an answer in another format is refused, naming the entry and field
      body = { tokens: [{ symbol: 'DOGE', address: 'doge', decimals: 8 }] };
      await expect(venue({ params: { tokensUrl: `${origin}/tokens` } }).loadMarkets()).rejects.toThrow(
        /the GMX tokens endpoint http:\/\/127\.0\.0\.1:\d+\/\[redacted\] answered in an unexpected format: tokens\.0\.address: an address/,
      );
    } finally {
      await new Promise<void>((resolve) => srv.close(() => resolve()));
    }
    // unreachable: a retryable network error naming the endpoint
    await expect(venue({ params: { tokensUrl: `${origin}/tokens` } }).loadMarkets()).rejects.toThrow(
      /the GMX tokens endpoint .* did not answer/,
    );
  });

  it('trades the first market of an index token unless params.marketFor pins another', async () => {
    const eth = fx.indexTokens.ETH?.address as Address;
    const second = marketToken();
    await fx.addMarket({
      marketToken: second,
      indexToken: eth,
      longToken: eth,
      shortToken: fx.params.collateralAsset,
    });
    const first = (await venue().loadMarkets()).find((m) => m.instrument.id === 'ETH-USD:PERP');
    expect(first?.venueSymbol.toLowerCase()).toBe(fx.marketTokens.ETH?.toLowerCase());
    const pinned = (await venue({ params: { marketFor: { 'ETH-USD:PERP': second } } }).loadMarkets()).find(
      (m) => m.instrument.id === 'ETH-USD:PERP',
    );
    expect(pinned?.venueSymbol).toBe(second);
    await expect(
      venue({ params: { marketFor: { 'ETH-USD:PERP': marketToken() } } }).loadMarkets(),
    ).rejects.toThrow(
      /params\.marketFor names market 0x[0-9a-f]{40} for ETH-USD:PERP, but Reader\.getMarkets lists no such market/,
    );
  });

  it('values and nets positions in every market of an index, though it trades only one', async () => {
    const second = marketToken();
    await fx.addMarket({ marketToken: second, indexToken: weth(), longToken: weth(), shortToken: usdc() });
    // the same account, trading the second ETH market (as another tool or a human would)
    const pinned = venue({ params: { marketFor: { 'ETH-USD:PERP': second } } });
    await order(pinned, 'second-1', 'buy', '2');
    const plain = venue();
    const [only] = await plain.fetchPositions();
    expect(only).toMatchObject({ instrument: 'ETH-USD:PERP' });
    expect(only?.sizeBase).toBeCloseTo(2, 12);
    expect(only?.marginUsd).toBeGreaterThan(0);
    // a hedge in the traded market nets with it: one position, both markets' collateral and P&L
    await order(plain, 'first-1', 'sell', '0.5');
    const both = await plain.fetchPositions();
    expect(both).toHaveLength(1);
    expect(both[0]?.sizeBase).toBeCloseTo(1.5, 12);
    const [inSecond] = await pinned.fetchPositions();
    expect(inSecond?.sizeBase).toBe(both[0]?.sizeBase);
    expect(inSecond?.marginUsd).toBe(both[0]?.marginUsd);
    expect(both[0]?.marginUsd ?? 0).toBeGreaterThan(only?.marginUsd ?? 0);
    // the traded market is still the first: orders go there
    const traded = (await plain.loadMarkets()).find((m) => m.instrument.id === 'ETH-USD:PERP');
    expect(traded?.venueSymbol.toLowerCase()).toBe(ethMarket().toLowerCase());
  });
});

describe('Oracle reads as upstream Oracle.sol serves them (no params.pricesUrl)', () => {
  const SYNTHETIC_DOGE = '0xC4da4c24fd591125c3F47b340b6f4f76111883d8' as const;

  it('reads getPrimaryPrice as Price.Props and the age from maxTimestamp; a token with no price is a StaleOracleError', async () => {
    const primaryPrice = (token: Address) =>
      trader.publicClient.readContract({
        address: fx.params.oracle,
        abi: oracleAbi,
        functionName: 'getPrimaryPrice',
        args: [token],
      });
    await fx.setPrice('ETH', 3600, 3601);
    expect(await primaryPrice(weth())).toEqual({
      min: usdToGmxPrice(3600, 18),
      max: usdToGmxPrice(3601, 18),
    });
    const newest = await trader.publicClient.readContract({
      address: fx.params.oracle,
      abi: oracleAbi,
      functionName: 'maxTimestamp',
    });
    const marks = await venue().fetchMarks();
    expect(marks.find((m) => m.instrument === 'ETH-USD:PERP')).toMatchObject({ bidUsd: 3600, askUsd: 3601 });
    // One time for all: the Oracle keeps none per token.
    expect(marks.map((m) => m.asOfMs)).toEqual(marks.map(() => Number(newest) * 1000));
    // A listed market whose index token the Oracle has no price for: upstream reverts EmptyPrimaryPrice
    // (as every token outside a keeper's execution on a real chain), reported naming the token.
    const doge = getAddress(`0x${randomBytes(20).toString('hex')}`);
    await fx.addMarket({
      marketToken: doge,
      indexToken: SYNTHETIC_DOGE,
      longToken: weth(),
      shortToken: usdc(),
    });
    const raw = await primaryPrice(SYNTHETIC_DOGE).catch((e: unknown) => e);
    const data = (raw as BaseError).walk(
      (e) => typeof (e as { data?: unknown }).data === 'string',
    ) as unknown as {
      data: Hex;
    };
    expect(decodeErrorResult({ abi: gmxErrorAbi, data: data.data })).toMatchObject({
      errorName: 'EmptyPrimaryPrice',
      args: [getAddress(SYNTHETIC_DOGE)],
    });
    const v = venue({ params: { indexTokens: [{ address: SYNTHETIC_DOGE, symbol: 'DOGE', decimals: 8 }] } });
    const err = await v.fetchMarks(['DOGE-USD:PERP']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StaleOracleError);
    expect((err as Error).message).toContain(
      `Oracle.getPrimaryPrice of ${fx.params.oracle} has no price for the index token of DOGE-USD:PERP (${getAddress(SYNTHETIC_DOGE)})`,
    );
    expect(await v.fetchMarks(['ETH-USD:PERP'])).toHaveLength(1);
  });
});

describe('order errors as upstream raises them (Errors.sol names and parameters)', () => {
  /** multicall([sendWnt, createOrder]) of a decrease in `market`, as the adapter builds one. */
  const createIn = (market: Address) => {
    const fee = 10n ** 16n;
    return { to: fx.params.exchangeRouter, value: fee, data: decreaseOrderData(market, fee) };
  };

  it('createOrder in an unknown market is EmptyMarket, in a swap-only one InvalidPositionMarket: InvalidOrderError', async () => {
    const v = venue();
    const unknown = getAddress(`0x${randomBytes(20).toString('hex')}`);
    const e1 = await v.sender.send(createIn(unknown)).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(InvalidOrderError);
    expect((e1 as Error).message).toContain('reverted: EmptyMarket()');
    const swapOnly = getAddress(`0x${randomBytes(20).toString('hex')}`);
    await fx.addMarket({
      marketToken: swapOnly,
      indexToken: zeroAddress,
      longToken: weth(),
      shortToken: usdc(),
    });
    const e2 = await v.sender.send(createIn(swapOnly)).catch((e: unknown) => e);
    expect(e2).toBeInstanceOf(InvalidOrderError);
    expect((e2 as Error).message).toContain(`reverted: InvalidPositionMarket(${swapOnly})`);
  });

  it("cancelOrder: the account's own order only, a market order only REQUEST_EXPIRATION_TIME after it was made", async () => {
    await fx.setUint(GMX_KEYS.REQUEST_EXPIRATION_TIME, 300n); // upstream config/general.ts
    const v = venue();
    const placed = await order(v, 'cx-1', 'buy', '0.1', false);
    const key = placed.venueOrderId as Hex;
    const cancelFrom = (ctx: EvmContext, k: Hex) =>
      new TxSender({ ctx, abi: gmxErrorAbi })
        .send({
          to: fx.params.exchangeRouter,
          data: encodeFunctionData({ abi: exchangeRouterAbi, functionName: 'cancelOrder', args: [k] }),
        })
        .catch((e: unknown) => e);
    const theirs = await cancelFrom(other, key);
    expect(theirs).toBeInstanceOf(RevertedError);
    expect((theirs as RevertedError).reason).toBe(
      `Unauthorized(${other.account.address}, account for cancelOrder)`,
    );
    const none = await cancelFrom(trader, `0x${'12'.repeat(32)}`);
    expect((none as RevertedError).reason).toBe('EmptyOrder()');
    // Too early: refused with upstream's error (age, expiration, request type); the order still waits.
    const early = await v.cancelOrder('cx-1').catch((e: unknown) => e);
    expect(early).toBeInstanceOf(RevertedError);
    expect((early as RevertedError).reason).toMatch(/^RequestNotYetCancellable\(\d+, 300, Order\)$/);
    expect((await v.getOrderByClientId('cx-1'))?.status).toBe('acknowledged');
    await rpc(deployer.publicClient, 'evm_increaseTime', [300]);
    await rpc(deployer.publicClient, 'evm_mine', []);
    const cancelled = await v.cancelOrder('cx-1');
    expect(cancelled.status).toBe('cancelled');
    expect(cancelled.error).toBe('USER_INITIATED_CANCEL');
  });

  it('a keeper price older than MAX_ORACLE_PRICE_AGE is refused with MaxPriceAgeExceeded', async () => {
    const placed = await order(venue(), 'age-1', 'buy', '0.1', false);
    await fx.setUint(GMX_KEYS.MAX_ORACLE_PRICE_AGE, 60n);
    await rpc(deployer.publicClient, 'evm_increaseTime', [61]);
    await rpc(deployer.publicClient, 'evm_mine', []);
    const err = await new TxSender({ ctx: keeperCtx, abi: gmxErrorAbi })
      .send({
        to: fx.params.dataStore,
        data: encodeFunctionData({
          abi: gmxFixtureAbi,
          functionName: 'executeOrder',
          args: [placed.venueOrderId as Hex],
        }),
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RevertedError);
    // (the price's time, the block's time): more than the 60 s allowed apart
    const [, priced, now] =
      /^MaxPriceAgeExceeded\((\d+), (\d+)\)$/.exec((err as RevertedError).reason ?? '') ?? [];
    expect(Number(now) - Number(priced)).toBeGreaterThan(60);
  });
});

describe('a market or an order type GMX has switched off: IS_MARKET_DISABLED, CREATE/EXECUTE_ORDER_FEATURE_DISABLED', () => {
  /** The ETH market as the Reader lists it (checksummed), as messages name it. */
  const market = () => getAddress(ethMarket());
  const quote = (v: GmxVenue, side: 'buy' | 'sell', sizeBase: string) =>
    v.quoteHedge({ instrument: 'ETH-USD:PERP', side, sizeBase });

  /** Expects a VenueHaltedError (not sent, retryable) whose message has `text`. */
  async function refused(p: Promise<unknown>, text: string): Promise<VenueHaltedError> {
    const err = await p.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VenueHaltedError);
    expect((err as VenueHaltedError).outcome).toBe('not-sent');
    expect((err as VenueHaltedError).retryable).toBe(true);
    expect((err as Error).message).toContain(text);
    return err as VenueHaltedError;
  }

  const orderHandler = () =>
    trader.publicClient.readContract({
      address: fx.params.exchangeRouter,
      abi: exchangeRouterAbi,
      functionName: 'orderHandler',
    });

  /** With a 0.2 ETH short open: a buy of 0.1 decreases it (MarketDecrease), a sell or a buy of 0.5 increases. */
  const cases = [
    ['buy', '0.1', 'decrease'],
    ['sell', '0.1', 'increase'],
    ['buy', '0.5', 'increase'],
  ] as const;

  it('quotes in a disabled market are refused naming it, increases and decreases alike; cleared, it quotes as before', async () => {
    const v = venue();
    await order(v, 'dm-short', 'sell', '0.2');
    const before = await Promise.all(cases.map(([side, size]) => quote(v, side, size)));
    expect(before.map((q) => q.executableSizeBase)).toEqual(['0.1', '0.1', '0.5']);
    await fx.setBool(isMarketDisabledKey(ethMarket()), true);
    for (const [side, size] of cases) {
      const err = await refused(
        quote(v, side, size),
        `market ${market()} of ETH-USD:PERP is disabled on GMX (DataStore IS_MARKET_DISABLED)`,
      );
      expect(err.details).toMatchObject({
        instrument: 'ETH-USD:PERP',
        market: market(),
        switch: 'IS_MARKET_DISABLED',
        key: isMarketDisabledKey(ethMarket()),
      });
    }
    await fx.setBool(isMarketDisabledKey(ethMarket()), false);
    const after = await Promise.all(cases.map(([side, size]) => quote(v, side, size)));
    expect(after.map((q) => [q.executableSizeBase, q.feeUsd])).toEqual(
      before.map((q) => [q.executableSizeBase, q.feeUsd]),
    );
  });

  it('order creation or execution switched off for one order type refuses the quotes of that type only', async () => {
    const v = venue();
    await order(v, 'ft-short', 'sell', '0.2');
    const handler = await orderHandler();
    for (const feature of ['create', 'execute'] as const)
      for (const [offType, offName] of [
        [ORDER_TYPE.MarketIncrease, 'MarketIncrease'],
        [ORDER_TYPE.MarketDecrease, 'MarketDecrease'],
      ] as const) {
        const key = orderFeatureDisabledKey(feature, handler, offType);
        await fx.setBool(key, true);
        for (const [side, size, kind] of cases) {
          const off = (kind === 'increase') === (offType === ORDER_TYPE.MarketIncrease);
          if (!off) {
            expect((await quote(v, side, size)).executableSizeBase, `${feature} ${offName} off`).toBe(size);
            continue;
          }
          const err = await refused(
            quote(v, side, size),
            `GMX has ${feature === 'create' ? 'creating' : 'executing'} ${offName} orders switched off`,
          );
          expect(err.message).toContain(
            `${kind === 'increase' ? 'an increase' : 'a decrease'} of ETH-USD:PERP (market ${market()})`,
          );
          expect(err.details).toMatchObject({ orderType: offName, key, orderHandler: handler });
        }
        await fx.setBool(key, false);
      }
    expect((await quote(v, 'sell', '0.1')).executableSizeBase).toBe('0.1');
  });

  it('placeOrder sends nothing GMX would revert (no approval, no order, no record); once enabled the same id goes through', async () => {
    const store = new MemoryOrderStore<GmxOrderRecord>();
    // exact approvals: an order that got as far as approving would send a transaction
    const v = venue({ store, params: { approval: 'exact' } });
    const fee = 10n ** 16n;
    const createDecrease = () =>
      v.sender.send({ to: fx.params.exchangeRouter, value: fee, data: decreaseOrderData(ethMarket(), fee) });
    const nonce = () => trader.publicClient.getTransactionCount({ address: trader.account.address });
    const buy = {
      clientOrderId: 'dm-1',
      instrument: 'ETH-USD:PERP',
      side: 'buy',
      orderType: 'market',
      sizeBase: '0.1',
    } as const;

    await fx.setBool(isMarketDisabledKey(ethMarket()), true);
    const n0 = await nonce();
    await refused(v.placeOrder(buy), `market ${market()} of ETH-USD:PERP is disabled on GMX`);
    expect(await nonce()).toBe(n0);
    expect(await store.get('dm-1')).toBeUndefined();
    // what GMX does with such an order: createOrder reverts DisabledMarket (a decrease too)
    const reverted = await createDecrease().catch((e: unknown) => e);
    expect((reverted as Error).message).toContain(`DisabledMarket(${market()})`);
    await fx.setBool(isMarketDisabledKey(ethMarket()), false);

    const handler = await orderHandler();
    const createOff = orderFeatureDisabledKey('create', handler, ORDER_TYPE.MarketIncrease);
    await fx.setBool(createOff, true);
    await refused(v.placeOrder(buy), 'GMX has creating MarketIncrease orders switched off');
    expect(await nonce()).toBe(n0);
    const decreaseOff = orderFeatureDisabledKey('create', handler, ORDER_TYPE.MarketDecrease);
    await fx.setBool(decreaseOff, true);
    const featureReverted = await createDecrease().catch((e: unknown) => e);
    expect((featureReverted as Error).message).toContain(`DisabledFeature(${decreaseOff})`);
    await fx.setBool(createOff, false);
    await fx.setBool(decreaseOff, false);

    const placed = await v.placeOrder(buy);
    expect(placed.status).toBe('acknowledged');
    expect((await store.get('dm-1'))?.status).toBe('acknowledged');
  });
});
