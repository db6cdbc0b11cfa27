import { EXPIRY_HOUR_UTC, MS_PER_DAY, yearFraction } from '@xhedge/core';
import { compileSolidity, deployContract, EVM_TEST_CONTRACTS_URL, type EvmContext } from '@xhedge/evm';
import { bsm } from '@xhedge/pricing';
import { type Address, encodeFunctionData, parseAbi } from 'viem';
import { exchangeAdapterAbi, greekCacheAbi, optionMarketAbi } from './abi.ts';

/** Sources of the simplified Lyra v1 contracts (for local chains and tests). */
export const LYRA_CONTRACTS_URL = new URL('../contracts/LyraV1Lite.sol', import.meta.url);

export interface LyraFixtureMarket {
  underlying: string;
  spotUsd: number;
  /** Board base IV, decimal. */
  baseIv: number;
  /** Days to the board's expiry (rounded to 08:00 UTC). */
  expiryDays: number;
  strikes: number[];
  /** Per-strike skew multipliers. @defaultValue 1 for every strike */
  skews?: number[];
}

export interface LyraFixture {
  /** The `params` a `lyra` venue needs. */
  params: {
    quoteAsset: Address;
    quoteAllowanceSlot: number;
    markets: {
      underlying: string;
      optionMarket: Address;
      optionPositions: Address;
      greekCache: Address;
      exchangeAdapter: Address;
    }[];
  };
  /** Sets spot and pushes fresh prices and Greeks (the greek-cache updater's job). */
  setSpot(underlying: string, spotUsd: number): Promise<void>;
  /** Recomputes and pushes the cache at the current spot and chain time. */
  updateGreeks(): Promise<void>;
  /** Settles the market's board (`settleExpiredBoard`, after its expiry): its price is the spot now. */
  settleBoard(underlying: string): Promise<void>;
}

const e18 = (x: number) => BigInt(Math.round(x * 1e6)) * 1_000_000_000_000n;
const tokenAbi = parseAbi(['function mint(address to, uint256 amount)', 'function init(address market)']);

/**
 * Deploys the simplified Lyra v1 on a local chain from `deployer`: a quote token (USDC, 18 decimals),
 * per market an ExchangeAdapter (spot), OptionToken, OptionGreekCache and OptionMarket with one board,
 * the cache filled with Black-Scholes prices and Greeks at iv × skew, the pool funded, traders funded.
 */
export async function deployLyraFixture(
  deployer: EvmContext,
  opts: {
    markets: LyraFixtureMarket[];
    traders: Address[];
    traderQuote?: number;
    spreadRate?: number;
    impactPerUnit?: number;
    spotFeeRate?: number;
  },
): Promise<LyraFixture> {
  const c = compileSolidity({
    'LyraV1Lite.sol': LYRA_CONTRACTS_URL,
    'TestToken.sol': EVM_TEST_CONTRACTS_URL,
  });
  const get = (n: string) => {
    const x = c[n];
    if (!x) throw new Error(`contract ${n} missing from the compiled output`);
    return x;
  };
  const send = async (to: Address, data: `0x${string}`) => {
    const hash = await deployer.walletClient.sendTransaction({ to, data });
    const r = await deployer.publicClient.waitForTransactionReceipt({ hash });
    if (r.status !== 'success') throw new Error(`fixture transaction to ${to} reverted`);
  };
  const quote = await deployContract(deployer, get('TestToken'), ['USD Coin', 'USDC', 18]);
  const block = await deployer.publicClient.getBlock();
  const nowMs = Number(block.timestamp) * 1000;
  const state: {
    m: LyraFixtureMarket;
    addrs: LyraFixture['params']['markets'][number];
    boardId: bigint;
    expiryMs: number;
    spot: number;
  }[] = [];
  for (const m of opts.markets) {
    const adapter = await deployContract(deployer, get('ExchangeAdapter'));
    const token = await deployContract(deployer, get('OptionToken'));
    const cache = await deployContract(deployer, get('OptionGreekCache'));
    const market = await deployContract(deployer, get('OptionMarket'), [
      quote,
      token,
      cache,
      adapter,
      e18(opts.spreadRate ?? 0.01),
      e18(opts.impactPerUnit ?? 0.001),
      e18(opts.spotFeeRate ?? 0.0005),
    ]);
    await send(token, encodeFunctionData({ abi: tokenAbi, functionName: 'init', args: [market] }));
    await send(cache, encodeFunctionData({ abi: tokenAbi, functionName: 'init', args: [market] }));
    await send(
      adapter,
      encodeFunctionData({
        abi: exchangeAdapterAbi,
        functionName: 'setSpotPrice',
        args: [market, e18(m.spotUsd)],
      }),
    );
    const day = new Date(nowMs + m.expiryDays * MS_PER_DAY);
    const expiryMs = Date.UTC(day.getUTCFullYear(), day.getUTCMonth(), day.getUTCDate(), EXPIRY_HOUR_UTC);
    const skews = m.skews ?? m.strikes.map(() => 1);
    await send(
      market,
      encodeFunctionData({
        abi: optionMarketAbi,
        functionName: 'createOptionBoard',
        args: [BigInt(expiryMs / 1000), e18(m.baseIv), m.strikes.map(e18), skews.map(e18), false],
      }),
    );
    await send(
      quote,
      encodeFunctionData({ abi: tokenAbi, functionName: 'mint', args: [market, e18(100_000_000)] }),
    );
    state.push({
      m,
      addrs: {
        underlying: m.underlying,
        optionMarket: market,
        optionPositions: token,
        greekCache: cache,
        exchangeAdapter: adapter,
      },
      boardId: BigInt(state.length + 1),
      expiryMs,
      spot: m.spotUsd,
    });
  }
  for (const t of opts.traders)
    await send(
      quote,
      encodeFunctionData({
        abi: tokenAbi,
        functionName: 'mint',
        args: [t, e18(opts.traderQuote ?? 10_000_000)],
      }),
    );

  const updateGreeks = async () => {
    const b = await deployer.publicClient.getBlock();
    const t = Number(b.timestamp) * 1000;
    for (const s of state) {
      const skews = s.m.skews ?? s.m.strikes.map(() => 1);
      const greeks = s.m.strikes.map((k, i) => {
        const vol = s.m.baseIv * (skews[i] ?? 1);
        const timeYears = Math.max(yearFraction(t, s.expiryMs), 1e-9);
        const call = bsm({ type: 'call', spot: s.spot, strike: k, timeYears, vol });
        const put = bsm({ type: 'put', spot: s.spot, strike: k, timeYears, vol });
        // Lyra's stdVega is per 1.0 of vol; ours is per 0.01.
        return {
          callDelta: e18(call.delta),
          putDelta: e18(put.delta),
          stdVega: e18(call.vegaPerVolPoint * 100),
          callPrice: e18(call.price),
          putPrice: e18(put.price),
        };
      });
      // Strike ids are global per market and start at 1 in board order.
      const ids = s.m.strikes.map((_k, i) => BigInt(i + 1));
      await send(
        s.addrs.greekCache,
        encodeFunctionData({ abi: greekCacheAbi, functionName: 'setStrikeGreeks', args: [ids, greeks] }),
      );
    }
  };
  await updateGreeks();
  return {
    params: { quoteAsset: quote, quoteAllowanceSlot: 1, markets: state.map((s) => s.addrs) },
    updateGreeks,
    settleBoard: async (underlying) => {
      const s = state.find((x) => x.m.underlying === underlying);
      if (!s) throw new Error(`no market for ${underlying}`);
      await send(
        s.addrs.optionMarket,
        encodeFunctionData({ abi: optionMarketAbi, functionName: 'settleExpiredBoard', args: [s.boardId] }),
      );
    },
    setSpot: async (underlying, spotUsd) => {
      const s = state.find((x) => x.m.underlying === underlying);
      if (!s) throw new Error(`no market for ${underlying}`);
      s.spot = spotUsd;
      await send(
        s.addrs.exchangeAdapter,
        encodeFunctionData({
          abi: exchangeAdapterAbi,
          functionName: 'setSpotPrice',
          args: [s.addrs.optionMarket, e18(spotUsd)],
        }),
      );
      await updateGreeks();
    },
  };
}
