import { EXPIRY_HOUR_UTC, MS_PER_DAY, yearFraction } from '@xhedge/core';
import {
  compileSolidity,
  deployContract,
  EVM_TEST_CONTRACTS_URL,
  type EvmContext,
  sendFixtureTransaction,
} from '@xhedge/evm';
import { bsm } from '@xhedge/pricing';
import { type Address, encodeFunctionData, parseAbi } from 'viem';
import { optionMarketAbi } from './abi.ts';

/** Sources of the simplified Lyra v1 contracts (for local chains and tests). */
export const LYRA_CONTRACTS_URL = new URL('../contracts/LyraV1Lite.sol', import.meta.url);

/**
 * Functions and errors that exist only in our local contracts (LyraV1Lite.sol), for test set-up: the real
 * Lyra v1 computes Greeks on chain, reads spot from price feeds and prices fees in the OptionMarketPricer.
 * The adapter never calls them (its ABI, abi.ts, holds only the real contracts' items).
 */
export const lyraLiteFixtureAbi = parseAbi([
  'struct StrikeGreeks { int256 callDelta; int256 putDelta; uint256 stdVega; uint256 callPrice; uint256 putPrice; }',
  // OptionToken and OptionGreekCache: wire to their OptionMarket once.
  'function init(address market)',
  // OptionToken: the deployer writes a position for an account as another front end would have opened it.
  'struct OptionPosition { uint256 positionId; uint256 strikeId; uint8 optionType; uint256 amount; uint256 collateral; uint8 state; }',
  'function liteWritePosition(address account, OptionPosition p) returns (uint256 id)',
  // ExchangeAdapter: the owner sets spot (18 decimals).
  'function setSpotPrice(address optionMarket, uint256 price)',
  // OptionGreekCache: the owner pushes prices and Greeks (stdVega in Lyra's standardised convention).
  'function setStrikeGreeks(uint256[] ids, StrikeGreeks[] greeks)',
  // OptionMarket: the lite pricing spread each side, 18 decimals.
  'function spreadRate() view returns (uint256)',
  // OptionMarket: two of the pricer's trade limits (tradingCutoff seconds, minDelta 18 decimals); 0 is off.
  'function setLiteTradeLimits(uint256 tradingCutoff, int256 minDelta)',
  // OptionMarket: the LiquidityPool's quote for collateral and premiums, 18 decimals (unlimited until set).
  'function setLitePoolLiquidity(uint256 poolQuote)',
  // OptionMarket: v1-core's staticBaseSettlementFee (OptionMarketParameters), 18 decimals; 0 until set.
  'function setLiteBaseSettlementFee(uint256 fee)',
  // OptionMarket: stands in for v1-core's ShortCollateral.settleOptions (same signature; the lite keeps
  // collateral in the OptionMarket): pays positions of a settled board and marks them SETTLED.
  'function settleOptions(uint256[] positionIds)',
  'error Unauthorized(address caller)',
  'error ShortBaseNotSupported(address thrower)',
  'error StrikeGreeksMissing(address thrower, uint256 strikeId)',
  'error PositionNotActive(address thrower, uint256 positionId)',
]);

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
  /**
   * Decimals of the market's base token (the underlying's ERC-20, `W<underlying>`: what base-collateralised
   * short calls lock and settlement returns). @defaultValue 18
   */
  baseDecimals?: number;
}

export interface LyraFixture {
  /** The `params` a `lyra` venue needs. */
  params: {
    quoteAsset: Address;
    /** The quote token's decimals (Lyra's own amounts stay 18-decimal whatever they are). */
    quoteDecimals: number;
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
  /**
   * Sets the market's trade limits as v1-core's OptionMarketPricer checks them: no trade within
   * `tradingCutoffSec` of the expiry (TradingCutoffReached), none on a strike whose call delta is outside
   * [minDelta, 1 − minDelta] (TradeDeltaOutOfRange). 0 turns a limit off (the default).
   */
  setTradeLimits(underlying: string, limits: { tradingCutoffSec: number; minDelta: number }): Promise<void>;
  /**
   * Sets the market's pool liquidity (quote, decimal), unlimited until set: its free liquidity is this less
   * the collateral locked for the longs it sold (puts × strike, calls × spot), which v1-core's LiquidityPool
   * checks when a trade opens a long (LockingMoreQuoteThanIsFree) or pays a short its premium and the
   * reserved fee (SendPremiumNotEnoughCollateral). Premiums paid to the pool do not add to it.
   */
  setPoolLiquidity(underlying: string, quote: number): Promise<void>;
  /**
   * Lists a further board on the market (`createOptionBoard`, as the market's owner does over time),
   * expiring at `expiryMs` (whole seconds), and pushes its strikes' prices and Greeks into the cache (kept
   * fresh by {@link updateGreeks} from then on). Returns the board id.
   */
  createBoard(
    underlying: string,
    board: { expiryMs: number; baseIv: number; strikes: number[]; skews?: number[] },
  ): Promise<bigint>;
  /**
   * Settles a board of the market (`settleExpiredBoard`, after its expiry): its price is the spot now.
   * @defaultValue the market's first board
   */
  settleBoard(underlying: string, boardId?: bigint): Promise<void>;
  /**
   * Settles positions of the market's settled board (what a keeper does with v1-core's
   * `ShortCollateral.settleOptions`): longs get their payoff, quote shorts their collateral less it, base
   * short calls their collateral less the base they owe, in the market's base token.
   */
  settleOptions(underlying: string, positionIds: readonly bigint[]): Promise<void>;
  /** Sets v1-core's `staticBaseSettlementFee` of the market (decimal, 0.01 = 1%), used by the next board settlement. */
  setBaseSettlementFee(underlying: string, fee: number): Promise<void>;
}

const e18 = (x: number) => BigInt(Math.round(x * 1e6)) * 1_000_000_000_000n;
/** An 18-decimal chain amount as a number (set-up values carry at most 6 decimals). */
const fromE18 = (x: bigint) => Number(x) / 1e18;
/** A quote amount in the token's own units (`decimals`), from a number with at most 6 decimals. */
const tokenUnits = (x: number, decimals: number) =>
  (BigInt(Math.round(x * 1e6)) * 10n ** BigInt(decimals)) / 1_000_000n;
const tokenAbi = parseAbi(['function mint(address to, uint256 amount)']);

/**
 * Lyra v1's cached `stdVega` (BlackScholes._standardVega): vega per 1.0 of vol × √(30 / days to expiry) / 100,
 * the days whole and at least 7. From our vega per vol point (vega per 1.0 / 100).
 */
function standardVega(vegaPerVolPoint: number, secondsToExpiry: number): number {
  const days = Math.floor(Math.max(secondsToExpiry, 7 * 86_400) / 86_400);
  return vegaPerVolPoint * Math.sqrt(30 / days);
}

/**
 * Deploys the simplified Lyra v1 on a local chain from `deployer`: a quote token (USDC, `quoteDecimals`,
 * 18 unless set: Newport's Arbitrum USDC has 6; the contracts convert at each transfer as v1-core does),
 * per market a base token (`W<underlying>`, `baseDecimals`), an ExchangeAdapter (spot), OptionToken,
 * OptionGreekCache and OptionMarket with one board, the cache filled with Black-Scholes prices and Greeks
 * at iv × skew, the pool funded (quote, and base for the base collateral it returns at settlement),
 * traders funded (quote).
 */
export async function deployLyraFixture(
  deployer: EvmContext,
  opts: {
    markets: LyraFixtureMarket[];
    traders: Address[];
    traderQuote?: number;
    /** @defaultValue 18 */
    quoteDecimals?: number;
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
  // with room over the node's estimate: a keeper's or a price set's concurrent write can make a set-up
  // call dearer by the time it is mined (the GMX fixture's rare setPrice revert, out of gas)
  const send = (to: Address, data: `0x${string}`) => sendFixtureTransaction(deployer, to, data);
  const quoteDecimals = opts.quoteDecimals ?? 18;
  const quote = await deployContract(deployer, get('TestToken'), ['USD Coin', 'USDC', quoteDecimals]);
  const block = await deployer.publicClient.getBlock();
  const nowMs = Number(block.timestamp) * 1000;
  const state: {
    m: LyraFixtureMarket;
    addrs: LyraFixture['params']['markets'][number];
    spot: number;
  }[] = [];
  for (const m of opts.markets) {
    const baseDecimals = m.baseDecimals ?? 18;
    const base = await deployContract(deployer, get('TestToken'), [
      `Wrapped ${m.underlying}`,
      `W${m.underlying}`,
      baseDecimals,
    ]);
    const adapter = await deployContract(deployer, get('ExchangeAdapter'));
    const token = await deployContract(deployer, get('OptionToken'));
    const cache = await deployContract(deployer, get('OptionGreekCache'));
    const market = await deployContract(deployer, get('OptionMarket'), [
      quote,
      base,
      token,
      cache,
      adapter,
      e18(opts.spreadRate ?? 0.01),
      e18(opts.impactPerUnit ?? 0.001),
      e18(opts.spotFeeRate ?? 0.0005),
    ]);
    await send(token, encodeFunctionData({ abi: lyraLiteFixtureAbi, functionName: 'init', args: [market] }));
    await send(cache, encodeFunctionData({ abi: lyraLiteFixtureAbi, functionName: 'init', args: [market] }));
    await send(
      adapter,
      encodeFunctionData({
        abi: lyraLiteFixtureAbi,
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
      encodeFunctionData({
        abi: tokenAbi,
        functionName: 'mint',
        args: [market, tokenUnits(100_000_000, quoteDecimals)],
      }),
    );
    // the base collateral of base short calls written with liteWritePosition, returned at settlement
    await send(
      base,
      encodeFunctionData({
        abi: tokenAbi,
        functionName: 'mint',
        args: [market, tokenUnits(1_000_000, baseDecimals)],
      }),
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
      spot: m.spotUsd,
    });
  }
  for (const t of opts.traders)
    await send(
      quote,
      encodeFunctionData({
        abi: tokenAbi,
        functionName: 'mint',
        args: [t, tokenUnits(opts.traderQuote ?? 10_000_000, quoteDecimals)],
      }),
    );

  /** The market's boards, settled ones included (ids run from 1; an id past the last reads as id 0). */
  const boardsOf = async (optionMarket: Address) => {
    const out = [];
    for (let id = 1n; ; id++) {
      const b = await deployer.publicClient.readContract({
        address: optionMarket,
        abi: optionMarketAbi,
        functionName: 'getOptionBoard',
        args: [id],
      });
      if (b.id !== id) return out;
      out.push(b);
    }
  };
  const updateGreeks = async () => {
    const b = await deployer.publicClient.getBlock();
    const t = Number(b.timestamp) * 1000;
    for (const s of state) {
      const ids: bigint[] = [];
      const greeks: {
        callDelta: bigint;
        putDelta: bigint;
        stdVega: bigint;
        callPrice: bigint;
        putPrice: bigint;
      }[] = [];
      // Every board of the market as the chain holds it (boards listed since, or gone with a snapshot revert).
      for (const b of await boardsOf(s.addrs.optionMarket)) {
        const expiryMs = Number(b.expiry) * 1000;
        for (const strikeId of b.strikeIds) {
          const st = await deployer.publicClient.readContract({
            address: s.addrs.optionMarket,
            abi: optionMarketAbi,
            functionName: 'getStrike',
            args: [strikeId],
          });
          const vol = fromE18(b.iv) * fromE18(st.skew);
          const strike = fromE18(st.strikePrice);
          const timeYears = Math.max(yearFraction(t, expiryMs), 1e-9);
          const call = bsm({ type: 'call', spot: s.spot, strike, timeYears, vol });
          const put = bsm({ type: 'put', spot: s.spot, strike, timeYears, vol });
          ids.push(strikeId);
          greeks.push({
            callDelta: e18(call.delta),
            putDelta: e18(put.delta),
            stdVega: e18(standardVega(call.vegaPerVolPoint, (expiryMs - t) / 1000)),
            callPrice: e18(call.price),
            putPrice: e18(put.price),
          });
        }
      }
      await send(
        s.addrs.greekCache,
        encodeFunctionData({ abi: lyraLiteFixtureAbi, functionName: 'setStrikeGreeks', args: [ids, greeks] }),
      );
    }
  };
  const marketOf = (underlying: string) => {
    const s = state.find((x) => x.m.underlying === underlying);
    if (!s) throw new Error(`no market for ${underlying}`);
    return s;
  };
  await updateGreeks();
  return {
    params: { quoteAsset: quote, quoteDecimals, quoteAllowanceSlot: 1, markets: state.map((s) => s.addrs) },
    updateGreeks,
    createBoard: async (underlying, board) => {
      const s = marketOf(underlying);
      if (!(Number.isInteger(board.expiryMs / 1000) && board.expiryMs > 0))
        throw new RangeError(`expiryMs must be a positive whole second, got ${board.expiryMs}`);
      const skews = board.skews ?? board.strikes.map(() => 1);
      if (skews.length !== board.strikes.length)
        throw new RangeError(`${skews.length} skews for ${board.strikes.length} strikes`);
      const boardId = BigInt((await boardsOf(s.addrs.optionMarket)).length + 1);
      await send(
        s.addrs.optionMarket,
        encodeFunctionData({
          abi: optionMarketAbi,
          functionName: 'createOptionBoard',
          args: [
            BigInt(board.expiryMs / 1000),
            e18(board.baseIv),
            board.strikes.map(e18),
            skews.map(e18),
            false,
          ],
        }),
      );
      await updateGreeks();
      return boardId;
    },
    settleBoard: async (underlying, boardId = 1n) => {
      const s = marketOf(underlying);
      await send(
        s.addrs.optionMarket,
        encodeFunctionData({ abi: optionMarketAbi, functionName: 'settleExpiredBoard', args: [boardId] }),
      );
    },
    setTradeLimits: async (underlying, limits) => {
      const s = state.find((x) => x.m.underlying === underlying);
      if (!s) throw new Error(`no market for ${underlying}`);
      if (!Number.isInteger(limits.tradingCutoffSec) || limits.tradingCutoffSec < 0)
        throw new RangeError(
          `tradingCutoffSec must be a whole number of seconds >= 0, got ${limits.tradingCutoffSec}`,
        );
      if (!(limits.minDelta >= 0 && limits.minDelta <= 0.5))
        throw new RangeError(`minDelta must be within [0, 0.5], got ${limits.minDelta}`);
      await send(
        s.addrs.optionMarket,
        encodeFunctionData({
          abi: lyraLiteFixtureAbi,
          functionName: 'setLiteTradeLimits',
          args: [BigInt(limits.tradingCutoffSec), e18(limits.minDelta)],
        }),
      );
    },
    setPoolLiquidity: async (underlying, quote) => {
      const s = state.find((x) => x.m.underlying === underlying);
      if (!s) throw new Error(`no market for ${underlying}`);
      if (!(Number.isFinite(quote) && quote >= 0))
        throw new RangeError(`pool liquidity must be a finite quote amount >= 0, got ${quote}`);
      await send(
        s.addrs.optionMarket,
        encodeFunctionData({
          abi: lyraLiteFixtureAbi,
          functionName: 'setLitePoolLiquidity',
          args: [e18(quote)],
        }),
      );
    },
    settleOptions: async (underlying, positionIds) => {
      const s = state.find((x) => x.m.underlying === underlying);
      if (!s) throw new Error(`no market for ${underlying}`);
      await send(
        s.addrs.optionMarket,
        encodeFunctionData({
          abi: lyraLiteFixtureAbi,
          functionName: 'settleOptions',
          args: [[...positionIds]],
        }),
      );
    },
    setBaseSettlementFee: async (underlying, fee) => {
      const s = marketOf(underlying);
      if (!(fee >= 0 && fee < 1)) throw new RangeError(`fee must be within [0, 1), got ${fee}`);
      await send(
        s.addrs.optionMarket,
        encodeFunctionData({
          abi: lyraLiteFixtureAbi,
          functionName: 'setLiteBaseSettlementFee',
          args: [e18(fee)],
        }),
      );
    },
    setSpot: async (underlying, spotUsd) => {
      const s = state.find((x) => x.m.underlying === underlying);
      if (!s) throw new Error(`no market for ${underlying}`);
      s.spot = spotUsd;
      await send(
        s.addrs.exchangeAdapter,
        encodeFunctionData({
          abi: lyraLiteFixtureAbi,
          functionName: 'setSpotPrice',
          args: [s.addrs.optionMarket, e18(spotUsd)],
        }),
      );
      await updateGreeks();
    },
  };
}
