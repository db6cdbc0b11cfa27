import {
  compileSolidity,
  deployContract,
  EVM_TEST_CONTRACTS_URL,
  type EvmContext,
  sendFixtureTransaction,
} from '@xhedge/evm';
import { type Address, encodeFunctionData, type Hex } from 'viem';
import { gmxFixtureAbi } from './fixture-abi.ts';
import { FLOAT_PRECISION, poolAmountKey, reserveFactorKey } from './keys.ts';
import { toUnits, usdToGmxPrice } from './units.ts';

/** Sources of the simplified GMX v2 contracts (for local chains and tests). */
export const GMX_CONTRACTS_URL = new URL('../contracts/GmxV2Lite.sol', import.meta.url);

export interface GmxFixtureMarket {
  /** Underlying symbol, e.g. BTC (the index token is W<symbol>). */
  symbol: string;
  decimals: number;
  priceUsd: number;
  /** Open interest cap per side, USD. @defaultValue 50,000,000 */
  maxOpenInterestUsd?: number;
}

/** Addresses of a deployed GMX-style system: the `params` a `gmx` venue needs. */
export interface GmxContractAddresses {
  exchangeRouter: Address;
  /** The Router whose `pluginTransfer` pulls collateral: the ERC-20 approval goes to it. */
  router: Address;
  /** The EventEmitter the order and position events (EventLog1/EventLog2) come from. */
  eventEmitter: Address;
  dataStore: Address;
  orderVault: Address;
  reader: Address;
  oracle: Address;
  collateralAsset: Address;
  wnt: Address;
}

/**
 * The execution-fee settings the local DataStore starts with (gmx-synthetics config/general.ts at
 * a5c0c883: the default estimatedGasFeeBaseAmount 600 000, estimatedGasPerOraclePrice 250 000,
 * estimatedGasFeeMultiplierFactor 1× and Arbitrum's increase/decreaseOrderGasLimit 3 000 000).
 */
export interface GmxFixtureExecutionGas {
  estimatedGasFeeBaseAmount: bigint;
  estimatedGasPerOraclePrice: bigint;
  /** 30 decimals. */
  estimatedGasFeeMultiplierFactor: bigint;
  increaseOrderGasLimit: bigint;
  decreaseOrderGasLimit: bigint;
}

export const GMX_FIXTURE_EXECUTION_GAS: GmxFixtureExecutionGas = {
  estimatedGasFeeBaseAmount: 600_000n,
  estimatedGasPerOraclePrice: 250_000n,
  estimatedGasFeeMultiplierFactor: FLOAT_PRECISION,
  increaseOrderGasLimit: 3_000_000n,
  decreaseOrderGasLimit: 3_000_000n,
};

export interface GmxFixture {
  params: GmxContractAddresses;
  indexTokens: Record<string, { address: Address; decimals: number }>;
  /** The market token of each underlying, e.g. `marketTokens.ETH`. */
  marketTokens: Record<string, Address>;
  /** `DataStore.setUint(key, value)` as the owner (config keys of keys.ts). */
  setUint(key: Hex, value: bigint): Promise<void>;
  /** `DataStore.setInt(key, value)` as the owner (e.g. SAVED_FUNDING_FACTOR_PER_SECOND, signed). */
  setInt(key: Hex, value: bigint): Promise<void>;
  /** `DataStore.setBool(key, value)` as the owner (e.g. SKIP_BORROWING_FEE_FOR_SMALLER_SIDE). */
  setBool(key: Hex, value: boolean): Promise<void>;
  /**
   * Lists one more market as the owner (50 M USD open interest cap, 5 bps fees, pools of 10^24 long
   * token units and 1 B USDC, reserve factors 1): e.g. a second market
   * of an index token, a synthetic index token with no contract, or a swap-only market (index 0x0).
   */
  addMarket(m: {
    marketToken: Address;
    indexToken: Address;
    longToken: Address;
    shortToken: Address;
  }): Promise<void>;
  /** Sets the oracle price of an underlying: min `priceUsd`, max `maxPriceUsd` (default: spread 0). */
  setPrice(symbol: string, priceUsd: number | string, maxPriceUsd?: number | string): Promise<void>;
  /**
   * Sets what a position accrued that the local contract does not model (owner only; settled by the
   * position's next increase or decrease): its `pendingImpactAmount` (index token units, signed), the
   * pending borrowing fee (USD, 30 decimals), funding fee (collateral token units) and claimable
   * funding (long/short token units) that `Reader.getAccountPositionInfoList` reports.
   */
  setPositionPendingValues(
    positionKey: Hex,
    v: {
      pendingImpactAmount?: bigint;
      borrowingFeeUsd30?: bigint;
      fundingFeeAmount?: bigint;
      claimableLongTokenAmount?: bigint;
      claimableShortTokenAmount?: bigint;
    },
  ): Promise<void>;
}

/** Each market's pool, USD: large enough that the reserve caps bind only where a test lowers them. */
const POOL_USD = 1_000_000_000n;
/** A market's POOL_AMOUNT of its long (index) token and of USDC: POOL_USD of each at its price. */
const poolOf = (m: { priceUsd: number; decimals: number }): [bigint, bigint] => [
  (POOL_USD * 10n ** BigInt(m.decimals)) / BigInt(Math.max(1, Math.ceil(m.priceUsd))),
  POOL_USD * 10n ** 6n,
];

/**
 * Deploys the simplified GMX v2 on a local chain from `deployer`: USDC (6 dec), WETH as WNT, one index
 * token and market per entry (long token = the index token, short token = USDC), an EventEmitter and a
 * Router (approvals) as on real GMX, an oracle set to the given prices, the DataStore/handler funded
 * with USDC liquidity, `keepers` allowed to execute, and `traders` funded with USDC. The DataStore
 * starts with the execution-fee settings `executionGas` (default {@link GMX_FIXTURE_EXECUTION_GAS}), each
 * market's MAX_OPEN_INTEREST, its pool (1 B USD of the index token and of USDC, reserve factors 1) and its
 * POSITION_FEE_FACTOR: `positionFeeBps` (default 5) for changes
 * that do not improve the long/short balance, `positionFeeBpsBalanceImproved` (default the same) for
 * those that do. The transactions are the same in number and order whatever the options, so the
 * addresses stay those of configs/profiles/local-chains.yaml.
 */
export async function deployGmxFixture(
  deployer: EvmContext,
  opts: {
    markets: GmxFixtureMarket[];
    keepers: Address[];
    traders: Address[];
    traderUsdc?: number;
    executionGas?: Partial<GmxFixtureExecutionGas>;
    positionFeeBps?: number;
    positionFeeBpsBalanceImproved?: number;
  },
): Promise<GmxFixture> {
  // optimized for size: the core is near the 24 KiB code size limit
  const c = compileSolidity(
    { 'GmxV2Lite.sol': GMX_CONTRACTS_URL, 'TestToken.sol': EVM_TEST_CONTRACTS_URL },
    { optimizerRuns: 1 },
  );
  const get = (n: string) => {
    const x = c[n];
    if (!x) throw new Error(`contract ${n} missing from the compiled output`);
    return x;
  };
  // with room over the node's estimate: a keeper's or a price set's concurrent write can make a set-up
  // call dearer by the time it is mined (the GMX fixture's rare setPrice revert, out of gas)
  const send = (to: Address, data: `0x${string}`) => sendFixtureTransaction(deployer, to, data);
  const usdc = await deployContract(deployer, get('TestToken'), ['USD Coin', 'USDC', 6]);
  const wnt = await deployContract(deployer, get('TestToken'), ['Wrapped Ether', 'WETH', 18]);
  const oracle = await deployContract(deployer, get('Oracle'));
  const gas = { ...GMX_FIXTURE_EXECUTION_GAS, ...opts.executionGas };
  const core = await deployContract(deployer, get('GmxCore'), [
    wnt,
    oracle,
    gas.estimatedGasFeeBaseAmount,
    gas.estimatedGasPerOraclePrice,
    gas.estimatedGasFeeMultiplierFactor,
    gas.increaseOrderGasLimit,
    gas.decreaseOrderGasLimit,
  ]);
  // bps → a 30-decimal factor.
  const bpsFactor = (bps: number) => BigInt(Math.round(bps * 1e4)) * 10n ** 22n;
  const feeNotImproved = bpsFactor(opts.positionFeeBps ?? 5);
  const feeImproved = bpsFactor(opts.positionFeeBpsBalanceImproved ?? opts.positionFeeBps ?? 5);
  const eventEmitter = await deployContract(deployer, get('EventEmitter'));
  const tokenRouter = await deployContract(deployer, get('Router'));
  const router = await deployContract(deployer, get('ExchangeRouter'), [core, wnt, tokenRouter]);
  const reader = await deployContract(deployer, get('Reader'));
  await send(core, encodeFunctionData({ abi: gmxFixtureAbi, functionName: 'setRouter', args: [router] }));
  await send(
    core,
    encodeFunctionData({ abi: gmxFixtureAbi, functionName: 'setEventEmitter', args: [eventEmitter] }),
  );
  await send(
    eventEmitter,
    encodeFunctionData({ abi: gmxFixtureAbi, functionName: 'setController', args: [core, true] }),
  );
  await send(
    tokenRouter,
    encodeFunctionData({ abi: gmxFixtureAbi, functionName: 'setPlugin', args: [router, true] }),
  );
  for (const k of opts.keepers)
    await send(core, encodeFunctionData({ abi: gmxFixtureAbi, functionName: 'setKeeper', args: [k, true] }));
  // Oracle.setPrimaryPrice (the owner's here, a CONTROLLER's upstream).
  const setPrices = (token: Address, p: bigint, max = p) =>
    send(
      oracle,
      encodeFunctionData({
        abi: gmxFixtureAbi,
        functionName: 'setPrimaryPrice',
        args: [token, { min: p, max }],
      }),
    );
  await setPrices(usdc, usdToGmxPrice(1, 6));
  const indexTokens: GmxFixture['indexTokens'] = {};
  const marketTokens: GmxFixture['marketTokens'] = {};
  for (const m of opts.markets) {
    const index = await deployContract(deployer, get('TestToken'), [
      `Wrapped ${m.symbol}`,
      `W${m.symbol}`,
      m.decimals,
    ]);
    const gm = await deployContract(deployer, get('TestToken'), [`GMX Market ${m.symbol}/USD`, 'GM', 18]);
    const maxOi = toUnits(m.maxOpenInterestUsd ?? 50_000_000, 30);
    await send(
      core,
      encodeFunctionData({
        abi: gmxFixtureAbi,
        functionName: 'addMarket',
        args: [gm, index, index, usdc, maxOi, feeImproved, feeNotImproved],
      }),
    );
    await setPrices(index, usdToGmxPrice(m.priceUsd, m.decimals));
    indexTokens[m.symbol] = { address: index, decimals: m.decimals };
    marketTokens[m.symbol] = gm;
  }
  await send(
    usdc,
    encodeFunctionData({ abi: gmxFixtureAbi, functionName: 'mint', args: [core, toUnits(100_000_000, 6)] }),
  );
  await send(core, encodeFunctionData({ abi: gmxFixtureAbi, functionName: 'syncBalance', args: [usdc] }));
  for (const t of opts.traders) {
    await send(
      usdc,
      encodeFunctionData({
        abi: gmxFixtureAbi,
        functionName: 'mint',
        args: [t, toUnits(opts.traderUsdc ?? 10_000_000, 6)],
      }),
    );
  }
  // Each market's pool and reserve factors (after every deployment: the addresses do not move).
  const setUint = (key: Hex, value: bigint) =>
    send(core, encodeFunctionData({ abi: gmxFixtureAbi, functionName: 'setUint', args: [key, value] }));
  const setPool = async (
    market: Address,
    longToken: Address,
    shortToken: Address,
    [long, short]: [bigint, bigint],
  ) => {
    await setUint(poolAmountKey(market, longToken), long);
    if (shortToken.toLowerCase() !== longToken.toLowerCase())
      await setUint(poolAmountKey(market, shortToken), short);
    for (const isLong of [true, false])
      for (const kind of ['reserve', 'open-interest'] as const)
        await setUint(reserveFactorKey(market, isLong, kind), FLOAT_PRECISION);
  };
  for (const m of opts.markets) {
    const index = indexTokens[m.symbol]?.address as Address;
    await setPool(marketTokens[m.symbol] as Address, index, usdc, poolOf(m));
  }
  return {
    params: {
      exchangeRouter: router,
      router: tokenRouter,
      eventEmitter,
      dataStore: core,
      orderVault: core,
      reader,
      oracle,
      collateralAsset: usdc,
      wnt,
    },
    indexTokens,
    marketTokens,
    addMarket: async (m) => {
      await send(
        core,
        encodeFunctionData({
          abi: gmxFixtureAbi,
          functionName: 'addMarket',
          args: [
            m.marketToken,
            m.indexToken,
            m.longToken,
            m.shortToken,
            toUnits(50_000_000, 30),
            5n * 10n ** 26n,
            5n * 10n ** 26n,
          ],
        }),
      );
      await setPool(m.marketToken, m.longToken, m.shortToken, [10n ** 24n, POOL_USD * 10n ** 6n]);
    },
    setUint,
    setInt: (key, value) =>
      send(core, encodeFunctionData({ abi: gmxFixtureAbi, functionName: 'setInt', args: [key, value] })),
    setBool: (key, value) =>
      send(core, encodeFunctionData({ abi: gmxFixtureAbi, functionName: 'setBool', args: [key, value] })),
    setPrice: async (symbol, priceUsd, maxPriceUsd) => {
      const t = indexTokens[symbol];
      if (!t) throw new Error(`no market for ${symbol}`);
      await setPrices(
        t.address,
        usdToGmxPrice(priceUsd, t.decimals),
        usdToGmxPrice(maxPriceUsd ?? priceUsd, t.decimals),
      );
    },
    setPositionPendingValues: (positionKey, v) =>
      send(
        core,
        encodeFunctionData({
          abi: gmxFixtureAbi,
          functionName: 'setPositionPendingValues',
          args: [
            positionKey,
            v.pendingImpactAmount ?? 0n,
            v.borrowingFeeUsd30 ?? 0n,
            v.fundingFeeAmount ?? 0n,
            v.claimableLongTokenAmount ?? 0n,
            v.claimableShortTokenAmount ?? 0n,
          ],
        }),
      ),
  };
}
