// Test support: an anvil chain with the local GMX contracts, a keeper and approved traders.
import { ANVIL_DEV_KEYS, type EvmContext, ensureAllowance, TxSender } from '@xhedge/evm';
import { type LocalTestChain, startLocalTestChain } from '@xhedge/evm/testing';
import { type Address, zeroAddress } from 'viem';
import { readerAbi } from './abi.ts';
import { deployGmxFixture, type GmxFixture } from './fixture.ts';
import { GmxKeeper, type GmxKeeperResult } from './keeper.ts';

export interface GmxTestChain {
  chain: LocalTestChain;
  deployer: EvmContext;
  /** Funded with USDC, each with a standing capped approval of the Router. */
  traders: EvmContext[];
  keeperCtx: EvmContext;
  fx: GmxFixture;
  keeper: GmxKeeper;
  /** What the keeper did, in order. */
  keeperResults: GmxKeeperResult[];
}

/**
 * Starts anvil (`name` for its logs) with the local GMX v2 contracts (BTC at 95,000; ETH at 3,500 with
 * a 100,000 USD open-interest cap), a keeper (dev key 2), and `traderCount` traders (dev keys 1, 3, ...)
 * approved up to 1,000,000 USDC, then snapshots the chain so each test can start from it (`chain.fresh()`).
 */
export async function startGmxTestChain(name: string, traderCount = 1): Promise<GmxTestChain> {
  const chain = await startLocalTestChain(name);
  try {
    return await setUp(chain, traderCount);
  } catch (err) {
    // the caller never gets the chain to stop: do not leave anvil running
    await chain.stop().catch(() => {});
    throw err;
  }
}

async function setUp(chain: LocalTestChain, traderCount: number): Promise<GmxTestChain> {
  const deployer = chain.ctxFor(ANVIL_DEV_KEYS[0]);
  const keeperCtx = chain.ctxFor(ANVIL_DEV_KEYS[2]);
  const traderKeys = [ANVIL_DEV_KEYS[1], ...ANVIL_DEV_KEYS.slice(3)].slice(0, traderCount);
  const traders = traderKeys.map((k) => chain.ctxFor(k));
  const fx = await deployGmxFixture(deployer, {
    markets: [
      { symbol: 'BTC', decimals: 8, priceUsd: 95_000 },
      { symbol: 'ETH', decimals: 18, priceUsd: 3_500, maxOpenInterestUsd: 100_000 },
    ],
    keepers: [keeperCtx.account.address],
    traders: traders.map((t) => t.account.address),
  });
  const keeperResults: GmxKeeperResult[] = [];
  const keeper = new GmxKeeper({
    ctx: keeperCtx,
    dataStore: fx.params.dataStore,
    eventEmitter: fx.params.eventEmitter,
    onResult: (r) => keeperResults.push(r),
    onError: (err) =>
      console.warn(
        '[gmx test keeper] execution failed:',
        err instanceof Error ? err.message.split('\n')[0] : err,
      ),
  });
  // A standing, bounded approval taken before the snapshot (capped policy), so tests start approved.
  for (const ctx of traders)
    await ensureAllowance(new TxSender({ ctx }), {
      token: fx.params.collateralAsset,
      spender: fx.params.router,
      amount: 1_000_000_000_000n,
      policy: { mode: 'capped', capAmount: 1_000_000_000_000n },
    });
  await chain.snapshot();
  return { chain, deployer, traders, keeperCtx, fx, keeper, keeperResults };
}

type GmxPrice = { min: bigint; max: bigint };

/**
 * `Reader.getAccountPositionInfoList` of `ctx`'s account in one market (no referral storage, no UI fee
 * receiver, the first 10 positions), at the given index, long and short token prices: what the tests
 * decode at upstream's offsets.
 */
export function readPositionInfos(
  ctx: EvmContext,
  fx: GmxFixture,
  market: Address,
  prices: { index: GmxPrice; long: GmxPrice; short: GmxPrice },
) {
  return ctx.publicClient.readContract({
    address: fx.params.reader,
    abi: readerAbi,
    functionName: 'getAccountPositionInfoList',
    args: [
      fx.params.dataStore,
      zeroAddress,
      ctx.account.address,
      [market],
      [{ indexTokenPrice: prices.index, longTokenPrice: prices.long, shortTokenPrice: prices.short }],
      zeroAddress,
      0n,
      10n,
    ],
  });
}
