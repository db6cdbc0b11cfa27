import {
  compileSolidity,
  deployContract,
  EVM_TEST_CONTRACTS_URL,
  type EvmContext,
  MemoryOrderStore,
  rpc,
  sendFixtureTransaction,
} from '@xhedge/evm';
import type { LocalTestChain } from '@xhedge/evm/testing';
import { InvalidOrderError, NotConfirmedError, RateLimitError, VenueError } from '@xhedge/venue';
import { type Address, encodeFunctionData, erc20Abi, type Hex, parseGwei } from 'viem';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type GmxOrderRecord, GmxVenue, usdCollateralSymbol } from './adapter.ts';
import type { GmxFixture } from './fixture.ts';
import { gmxFixtureAbi } from './fixture-abi.ts';
import type { GmxKeeper } from './keeper.ts';
import { GmxVenueParams, type GmxVenueParamsInput } from './params.ts';
import { startGmxTestChain } from './test-chain.ts';
import { usdToGmxPrice } from './units.ts';

// The fee cap (maxFeePerGasGwei) and the execution fee, collateral tokens of any decimals, and the gas a
// fill reports, on a real anvil node with the local GMX contracts.

let chain: LocalTestChain;
let deployer: EvmContext;
let trader: EvmContext;
let fx: GmxFixture;
let keeper: GmxKeeper;

beforeAll(async () => {
  const t = await startGmxTestChain('gmx-fees-units');
  ({ chain, deployer, fx, keeper } = t);
  trader = t.traders[0] as EvmContext;
});
afterAll(async () => {
  await chain?.stop();
});
beforeEach(() => chain.fresh());

function venue(params: Partial<GmxVenueParamsInput>, store = new MemoryOrderStore<GmxOrderRecord>()) {
  return new GmxVenue(
    'gmx-local',
    { ...fx.params, approval: 'capped', approvalCap: '1000000', receiptTimeoutSeconds: 1, ...params },
    { ctx: trader, store },
  );
}

const buy = (clientOrderId: string, sizeBase: string) => ({
  clientOrderId,
  instrument: 'ETH-USD:PERP',
  side: 'buy' as const,
  orderType: 'market' as const,
  sizeBase,
});

/** Makes the latest block's base fee `wei` (the next block's is set, then one is mined). */
async function setBaseFee(wei: bigint) {
  await rpc(deployer.publicClient, 'anvil_setNextBlockBaseFeePerGas', [`0x${wei.toString(16)}`]);
  await rpc(deployer.publicClient, 'evm_mine');
  expect((await deployer.publicClient.getBlock()).baseFeePerGas).toBe(wei);
}

/** GMX's gas limit for an order's execution at the fixture's settings: 600 000 + 3 × 250 000 + 3 000 000. */
const EXECUTION_GAS = 4_350_000n;

describe('maxFeePerGasGwei on GMX', () => {
  it('is a params field: a finite number of gwei > 0, or refused naming it', () => {
    for (const bad of [0, -1, Number.POSITIVE_INFINITY, Number.NaN, '5']) {
      const r = GmxVenueParams.safeParse({ ...fx.params, maxFeePerGasGwei: bad });
      expect(r.success).toBe(false);
      expect(r.error?.issues.map((i) => i.path.join('.'))).toEqual(['maxFeePerGasGwei']);
    }
    expect(venue({ maxFeePerGasGwei: 2.5 }).sender.gasPolicy.maxFeePerGasWei).toBe(parseGwei('2.5'));
    expect(venue({}).sender.gasPolicy.maxFeePerGasWei).toBeUndefined();
  });

  it('the execution fee is the headroom over the capped fee, never gas limit × a generous cap; a speed-up within it creates the order; the fill reports its gas', async () => {
    await setBaseFee(parseGwei('0.1'));
    const store = new MemoryOrderStore<GmxOrderRecord>();
    // a generous cap (1000 gwei, thousands of times the fees): the order deposits the headroom (2 ×) over
    // its fee cap, not gas limit × the cap (which made a wallet funded for normal fees fail every send)
    const v = venue({ maxFeePerGasGwei: 1000 }, store);
    await rpc(deployer.publicClient, 'evm_setAutomine', [false]);
    const err = await v.placeOrder(buy('capped-1', '0.1')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotConfirmedError);
    const sent = (await store.get('capped-1')) as GmxOrderRecord;
    const original = await trader.publicClient.getTransaction({ hash: sent.txHash as Hex });
    expect(original.maxFeePerGas).toBeLessThan(parseGwei('5'));
    expect(original.value).toBe(EXECUTION_GAS * 2n * (original.maxFeePerGas as bigint));

    // The base fee rises past the original's fee cap (1.2 gwei: the block goes by without the order): a
    // speed-up pays more per gas (1.25 + a 1.125 gwei tip), within the headroom it deposited (2.4 gwei)
    await setBaseFee(parseGwei('1.25'));
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
    expect(result instanceof Error ? result.message : 'mined').toBe('mined');
    const receipt = await trader.publicClient.getTransactionReceipt({ hash: speedUp as Hex });
    expect(receipt.status).toBe('success');
    expect(receipt.effectiveGasPrice).toBeGreaterThan(original.maxFeePerGas as bigint);
    expect(receipt.effectiveGasPrice).toBeLessThanOrEqual(2n * (original.maxFeePerGas as bigint));
    expect((await v.getOrderByClientId('capped-1'))?.status).toBe('acknowledged');

    await rpc(deployer.publicClient, 'evm_setAutomine', [true]);
    await rpc(deployer.publicClient, 'evm_mine', []);
    await keeper.runOnce();
    expect((await v.getOrderByClientId('capped-1'))?.status).toBe('filled');
    // The fill's gas: the speed-up's gas and the execution fee (the local keeper keeps all of it), at
    // the ETH market's price (3 500).
    const [fill] = await v.fetchFills({ clientOrderId: 'capped-1' });
    const wei = receipt.gasUsed * receipt.effectiveGasPrice + (original.value as bigint);
    expect(fill?.gasUsd).toBeCloseTo((Number(wei) / 1e18) * 3500, 9);
    expect(fill?.feeUsd).toBeCloseTo(350 * 0.0005, 12);
  });

  it('an order whose base fee is above the cap is not sent: a retryable not-sent error, nothing recorded', async () => {
    await setBaseFee(parseGwei('6'));
    const store = new MemoryOrderStore<GmxOrderRecord>();
    const v = venue({ maxFeePerGasGwei: 5, spendCapPerDay: '175' }, store);
    const err = await v.placeOrder(buy('high-1', '0.1')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RateLimitError);
    expect((err as RateLimitError).outcome).toBe('not-sent');
    expect((err as RateLimitError).message).toMatch(
      /needs a maxFeePerGas of 6\.75 gwei .*above the first-send ceiling 4\.444444444 gwei \(8\/9 of the cap maxFeePerGasGwei 5 gwei/,
    );
    expect(await store.get('high-1')).toBeUndefined();
    // its collateral was given back to the day's cap (175 USDC): the same order fits once fees fall
    await setBaseFee(parseGwei('1'));
    expect((await v.placeOrder(buy('high-2', '0.1'))).status).toBe('acknowledged');
  });
});

describe('collateral decimals come from the token', () => {
  /**
   * An 18-decimal dollar stablecoin priced at 1 USD, 10 000 of it with the trader, and an ETH market
   * whose short token it is (GMX takes only a market's long or short token as collateral): the venue
   * trades that market (`marketFor`).
   */
  async function eighteenDecimalDollar(): Promise<{ dai: Address; marketFor: Record<string, Address> }> {
    const c = compileSolidity({ 'TestToken.sol': EVM_TEST_CONTRACTS_URL });
    const dai = await deployContract(deployer, c.TestToken!, ['Dai Stablecoin', 'DAI', 18]);
    const gm = await deployContract(deployer, c.TestToken!, ['GMX Market ETH/USD [WETH-DAI]', 'GM', 18]);
    const weth = fx.indexTokens.ETH?.address as Address;
    await fx.addMarket({ marketToken: gm, indexToken: weth, longToken: weth, shortToken: dai });
    const one = usdToGmxPrice(1, 18);
    await sendFixtureTransaction(
      deployer,
      fx.params.oracle,
      encodeFunctionData({
        abi: gmxFixtureAbi,
        functionName: 'setPrimaryPrice',
        args: [dai, { min: one, max: one }],
      }),
    );
    await sendFixtureTransaction(
      deployer,
      dai,
      encodeFunctionData({
        abi: gmxFixtureAbi,
        functionName: 'mint',
        args: [trader.account.address, 10_000n * 10n ** 18n],
      }),
    );
    return { dai, marketFor: { 'ETH-USD:PERP': gm } };
  }

  const balanceOf = (token: Address) =>
    trader.publicClient.readContract({
      address: token,
      abi: erc20Abi,
      functionName: 'balanceOf',
      args: [trader.account.address],
    });

  it('an 18-decimal collateral is posted, capped, approved, valued and reported in its own units', async () => {
    const { dai, marketFor } = await eighteenDecimalDollar();
    const store = new MemoryOrderStore<GmxOrderRecord>();
    const v = venue({ collateralAsset: dai, marketFor, approval: 'exact', spendCapPerDay: '1000' }, store);
    expect((await v.fetchBalances())[0]).toMatchObject({ amount: 10_000, available: 10_000 });
    // 0.1 ETH × 3 500 / leverage 2 = 175 DAI, exactly, in 18 decimals
    const placed = await v.placeOrder(buy('dai-1', '0.1'));
    expect(placed.status).toBe('acknowledged');
    const collateral = 175n * 10n ** 18n;
    expect((await store.get('dai-1'))?.spend?.amountBase).toBe(collateral.toString());
    expect(await balanceOf(dai)).toBe(10_000n * 10n ** 18n - collateral);
    await keeper.runOnce();
    expect((await v.getOrderByClientId('dai-1'))?.status).toBe('filled');
    const [fill] = await v.fetchFills();
    // 350 USD × 5 bps, taken in DAI
    expect(fill?.feeUsd).toBeCloseTo(0.175, 12);
    expect(fill?.gasUsd).toBeGreaterThan(0);
    const [pos] = await v.fetchPositions();
    expect(pos).toMatchObject({ instrument: 'ETH-USD:PERP', sizeBase: 0.1 });
    expect(pos?.marginUsd).toBeCloseTo(175 - 0.175, 9);
    expect((await v.fetchBalances())[0]?.amount).toBe(9_825);
    // The day's cap is 1 000 DAI: 175 + 875 more is past it.
    const over = await v.placeOrder(buy('dai-2', '0.5')).catch((e: unknown) => e);
    expect(over).toBeInstanceOf(InvalidOrderError);
    expect((over as InvalidOrderError).message).toContain(
      `${collateral} already spent or reserved + ${875n * 10n ** 18n} > cap ${1000n * 10n ** 18n}`,
    );
  });

  it('params.collateralDecimals is checked against the token: a mismatch is VENUE_MISCONFIGURED naming both', async () => {
    const { dai, marketFor } = await eighteenDecimalDollar();
    const wrong = venue({ collateralAsset: dai, marketFor, collateralDecimals: 6 });
    for (const call of [() => wrong.fetchBalances(), () => wrong.placeOrder(buy('dai-x', '0.1'))]) {
      const err = await call().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(VenueError);
      expect((err as VenueError).code).toBe('VENUE_MISCONFIGURED');
      expect((err as VenueError).message).toContain(
        `params.collateralDecimals is 6, but the collateral token ${dai} has 18 decimals`,
      );
    }
    expect(await balanceOf(dai)).toBe(10_000n * 10n ** 18n);
    const right = venue({ collateralAsset: dai, marketFor, collateralDecimals: 18 });
    expect((await right.fetchBalances())[0]?.amount).toBe(10_000);
    for (const bad of [31, 1.5, -1])
      expect(GmxVenueParams.safeParse({ ...fx.params, collateralDecimals: bad }).success).toBe(false);
  });

  it('balances, positions, markets and capabilities name the collateral by its token, not USDC', async () => {
    const { dai, marketFor } = await eighteenDecimalDollar();
    const v = venue({ collateralAsset: dai, marketFor });
    expect((await v.fetchBalances()).map((b) => [b.asset, b.amount])).toEqual([
      ['DAI', 10_000],
      ['ETH', expect.any(Number)],
    ]);
    expect(v.capabilities.collateral).toEqual(['DAI']);
    const eth = (await v.loadMarkets()).find((m) => m.instrument.id === 'ETH-USD:PERP');
    expect(eth?.instrument).toMatchObject({ settlementCurrency: 'DAI', inverse: false });
    expect((await v.placeOrder(buy('dai-name', '0.1'))).status).toBe('acknowledged');
    await keeper.runOnce();
    expect((await v.getOrderByClientId('dai-name'))?.status).toBe('filled');
    expect(await v.fetchPositions()).toMatchObject([
      { instrument: 'ETH-USD:PERP', settlementCurrency: 'DAI' },
    ]);
    // the fixture's USDC is named USDC, as its token says
    const usdc = venue({});
    expect((await usdc.fetchBalances())[0]?.asset).toBe('USDC');
    expect(usdc.capabilities.collateral).toEqual(['USDC']);
  });

  it('a collateral token with no symbol(), one that is no asset symbol, or one that is not a USD stablecoin is VENUE_MISCONFIGURED naming it; nothing is sent', async () => {
    const c = compileSolidity({
      'TestToken.sol': EVM_TEST_CONTRACTS_URL,
      'NoSymbol.sol': `// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;
/// An ERC-20 without symbol() (optional in EIP-20).
contract NoSymbol {
    function decimals() external pure returns (uint8) { return 6; }
    function balanceOf(address) external pure returns (uint256) { return 0; }
}`,
    });
    const token = (symbol: string) => deployContract(deployer, c.TestToken!, ['Some Dollar', symbol, 6]);
    const cases: [Address, string][] = [
      [await deployContract(deployer, c.NoSymbol!), 'answers no ERC-20 symbol()'],
      [await token('USDC.f'), 'has the symbol "USDC.f", no USD stablecoin symbol the adapter knows'],
      [await token(''), 'has the symbol "", no USD stablecoin symbol the adapter knows'],
      [await token(' USDC'), 'has the symbol " USDC", no USD stablecoin symbol the adapter knows'],
      [await token('USDX'), 'is USDX, not a USD stablecoin'],
      [fx.params.wnt, 'is WETH, not a USD stablecoin'],
    ];
    const nonce = await trader.publicClient.getTransactionCount({ address: trader.account.address });
    for (const [collateralAsset, why] of cases) {
      const v = venue({ collateralAsset, approval: 'exact' });
      for (const call of [
        () => v.fetchBalances(),
        () => v.loadMarkets(),
        () => v.placeOrder(buy(`bad-${collateralAsset}`, '0.1')),
      ]) {
        const err = await call().catch((e: unknown) => e);
        expect(err, why).toBeInstanceOf(VenueError);
        expect((err as VenueError).code).toBe('VENUE_MISCONFIGURED');
        expect((err as VenueError).retryable).toBe(false);
        expect((err as VenueError).message).toContain(`the collateral token ${collateralAsset}`);
        expect((err as VenueError).message).toContain(why);
        expect((err as VenueError).message).toContain(
          'if the token is a USD stablecoin, set params.collateralSymbol',
        );
      }
    }
    expect(await trader.publicClient.getTransactionCount({ address: trader.account.address })).toBe(nonce);
  });
});

describe('the collateral is named by its USD asset: known stablecoin variants, or params.collateralSymbol', () => {
  /**
   * A 6-decimal token with the symbol `symbol`, priced at 1 USD, 10 000 of it with the trader, and an ETH
   * market whose short token it is (the venue trades that market, `marketFor`).
   */
  async function dollar(symbol: string): Promise<{ token: Address; marketFor: Record<string, Address> }> {
    const c = compileSolidity({ 'TestToken.sol': EVM_TEST_CONTRACTS_URL });
    const token = await deployContract(deployer, c.TestToken!, ['Some Dollar', symbol, 6]);
    const gm = await deployContract(deployer, c.TestToken!, [
      `GMX Market ETH/USD [WETH-${symbol}]`,
      'GM',
      18,
    ]);
    const weth = fx.indexTokens.ETH?.address as Address;
    await fx.addMarket({ marketToken: gm, indexToken: weth, longToken: weth, shortToken: token });
    const one = usdToGmxPrice(1, 6);
    await sendFixtureTransaction(
      deployer,
      fx.params.oracle,
      encodeFunctionData({
        abi: gmxFixtureAbi,
        functionName: 'setPrimaryPrice',
        args: [token, { min: one, max: one }],
      }),
    );
    await sendFixtureTransaction(
      deployer,
      token,
      encodeFunctionData({
        abi: gmxFixtureAbi,
        functionName: 'mint',
        args: [trader.account.address, 10_000n * 10n ** 6n],
      }),
    );
    return { token, marketFor: { 'ETH-USD:PERP': gm } };
  }

  it('maps the documented variants, in any case, and nothing else', () => {
    for (const [symbol, asset] of [
      ['USDC.e', 'USDC'],
      ['usdc.e', 'USDC'],
      ['USDbC', 'USDC'],
      ['usdc', 'USDC'],
      ['USDT0', 'USDT'],
      ['usdt0', 'USDT'],
      ['USD₮0', 'USDT'],
      ['usd₮0', 'USDT'],
      ['USDT.e', 'USDT'],
      ['DAI.e', 'DAI'],
      ['DAI', 'DAI'],
      ['USD', 'USD'],
    ])
      expect(usdCollateralSymbol(symbol as string), symbol).toBe(asset);
    for (const symbol of ['WETH', 'USDX', 'USDC ', 'USDC.f', 'USDⅭ', '', 'axlUSDC', 'USDe'])
      expect(usdCollateralSymbol(symbol), symbol).toBeUndefined();
  });

  it('a USDC.e collateral is read, traded, reduced and reported as USDC', async () => {
    const { token, marketFor } = await dollar('USDC.e');
    const v = venue({ collateralAsset: token, marketFor });
    expect((await v.fetchBalances())[0]).toMatchObject({ asset: 'USDC', amount: 10_000 });
    expect(v.capabilities.collateral).toEqual(['USDC']);
    const eth = (await v.loadMarkets()).find((m) => m.instrument.id === 'ETH-USD:PERP');
    expect(eth?.instrument).toMatchObject({ settlementCurrency: 'USDC' });
    const q = await v.quoteHedge({ instrument: 'ETH-USD:PERP', side: 'buy', sizeBase: '0.1' });
    expect(q.executableSizeBase).toBe('0.1');
    expect((await v.placeOrder(buy('usdce-1', '0.1'))).status).toBe('acknowledged');
    await keeper.runOnce();
    expect((await v.getOrderByClientId('usdce-1'))?.status).toBe('filled');
    expect(await v.fetchPositions()).toMatchObject([
      { instrument: 'ETH-USD:PERP', sizeBase: 0.1, settlementCurrency: 'USDC' },
    ]);
    const reduce = { ...buy('usdce-2', '0.1'), side: 'sell' as const, reduceOnly: true };
    expect((await v.placeOrder(reduce)).status).toBe('acknowledged');
    await keeper.runOnce();
    expect((await v.getOrderByClientId('usdce-2'))?.status).toBe('filled');
    expect(await v.fetchPositions()).toEqual([]);
  });

  it('USD₮0, USDT0 and USDbC tokens are USDT, USDT and USDC', async () => {
    for (const [symbol, asset] of [
      ['USD₮0', 'USDT'],
      ['USDT0', 'USDT'],
      ['USDbC', 'USDC'],
    ] as const) {
      const { token, marketFor } = await dollar(symbol);
      const v = venue({ collateralAsset: token, marketFor });
      expect((await v.fetchBalances())[0], symbol).toMatchObject({ asset, amount: 10_000 });
      expect(v.capabilities.collateral).toEqual([asset]);
      expect(await v.fetchPositions()).toEqual([]);
    }
  });

  it('params.collateralSymbol names the collateral (its symbol() is not read); a value that is not a USD asset is refused naming it', async () => {
    const { token, marketFor } = await dollar('XYZ');
    expect(
      (await venue({ collateralAsset: token, marketFor })
        .fetchBalances()
        .catch((e: unknown) => e)) as VenueError,
    ).toMatchObject({
      code: 'VENUE_MISCONFIGURED',
    });
    const v = venue({ collateralAsset: token, marketFor, collateralSymbol: 'USDT' });
    expect((await v.fetchBalances())[0]).toMatchObject({ asset: 'USDT', amount: 10_000 });
    expect(v.capabilities.collateral).toEqual(['USDT']);
    // a token without symbol() is named too: it is not asked
    const noSymbol = await deployContract(
      deployer,
      compileSolidity({
        'NoSymbol.sol': `// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;
contract NoSymbol {
    function decimals() external pure returns (uint8) { return 6; }
    function balanceOf(address) external pure returns (uint256) { return 7e6; }
}`,
      }).NoSymbol!,
    );
    expect(
      (await venue({ collateralAsset: noSymbol, collateralSymbol: 'USDC' }).fetchBalances())[0],
    ).toMatchObject({
      asset: 'USDC',
      amount: 7,
    });
    // the operator's statement wins over the token's own symbol, even a known one
    const usdc = venue({ collateralSymbol: 'DAI' });
    expect((await usdc.fetchBalances())[0]?.asset).toBe('DAI');
    for (const bad of ['WETH', 'ETH', 'usdc', 'USDC.e', '']) {
      const parsed = GmxVenueParams.safeParse({ ...fx.params, collateralSymbol: bad });
      expect(parsed.success, bad).toBe(false);
      expect(parsed.error?.issues[0]?.path, bad).toEqual(['collateralSymbol']);
    }
    expect(
      GmxVenueParams.safeParse({ ...fx.params, collateralSymbol: 'WETH' }).error?.issues[0]?.message,
    ).toBe(
      'params.collateralSymbol "WETH" is not a USD stablecoin: expected one of USD, USDC, USDT, DAI (the adapter counts a collateral unit as 1 USD)',
    );
    expect(() => venue({ collateralSymbol: 'ETH' })).toThrow(
      /params\.collateralSymbol \\"ETH\\" is not a USD stablecoin/,
    );
  });
});
