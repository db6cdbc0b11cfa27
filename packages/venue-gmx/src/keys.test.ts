import { type Address, concat, type Hex, keccak256, pad, toHex } from 'viem';
import { describe, expect, it } from 'vitest';
import {
  accountOrderListKey,
  balanceWasImproved,
  GMX_KEYS,
  hashString,
  isMarketDisabledKey,
  marketKey,
  marketSideKey,
  maxOpenInterestKey,
  minCollateralFactorKey,
  openInterestKey,
  orderExecutionGasLimit,
  orderFeatureDisabledKey,
  positionFeeFactorKey,
} from './keys.ts';
import { parseGmxTickers } from './prices.ts';
import { gmxPriceToUsd } from './units.ts';

// abi.encode of static values is their 32-byte words back to back: built here by hand (not with
// encodeAbiParameters, which keys.ts uses), so a wrong argument order or type in keys.ts shows.
const word = {
  address: (a: Address) => pad(a.toLowerCase() as Hex, { size: 32 }),
  bool: (b: boolean) => pad(toHex(b ? 1 : 0), { size: 32 }),
  uint: (n: number) => pad(toHex(n), { size: 32 }),
};

const MARKET = '0x70d95587d40A2caf56bd97485aB3Eec10Bee6336' as Address; // Arbitrum ETH/USD [WETH-USDC]
const WETH = '0x82aF49447D8a07e3bd95BD0d56f35241523fBab1' as Address;
const USDC = '0xaf88d065e77c8cC2239327C5EDb3A432268e5831' as Address;
const HANDLER = '0x63492B775e30a9E6b4b4761c12605EB9d071d5e9' as Address; // Arbitrum OrderHandler @ a5c0c883

describe('GMX DataStore keys (gmx-synthetics contracts/data/Keys.sol @ a5c0c883)', () => {
  it('derives the constants as keccak256(abi.encode("NAME")), pinned', () => {
    // The names are upstream's (Keys.sol lines 99-101, 181, 215-219, 245-247, 255, 262, 287, 306, 318); the hashes
    // are pinned so a renamed or mistyped name fails here.
    expect(GMX_KEYS).toEqual({
      ORDER_LIST: '0x86f7cfd5d8f8404e5145c91bebb8484657420159dabd0753d6a59f3de3f7b8c1',
      ACCOUNT_ORDER_LIST: '0xd008ab8798caa94b11c12ebc5bce5104c343552f5375d1bf3870b4b4a6e8d562',
      ESTIMATED_GAS_FEE_BASE_AMOUNT_V2_1:
        '0x39288f227e5db9a793e9f4afb15aa22b77dbb7e410ffc973c816a19a6ed921cd',
      ESTIMATED_GAS_FEE_PER_ORACLE_PRICE:
        '0xf95915378e4358fb5f51ae0fd75853a15a29a978eb14b73d5c5b7d69d3b9fccc',
      ESTIMATED_GAS_FEE_MULTIPLIER_FACTOR:
        '0xce135f2a886cf6d862269f215b1e64498fa09cb04f90b771b163399df2a82b81',
      SINGLE_SWAP_GAS_LIMIT: '0x3be28fb346f7abc4a956a16d3739c8c4bfcca9385988c64bf86cdd16638c1f81',
      INCREASE_ORDER_GAS_LIMIT: '0x983e0a7f5307213e84497f2543331fe5e404db14ddf98f98dc956e0ee3ab6875',
      DECREASE_ORDER_GAS_LIMIT: '0xfce7a3444b72c2d30987163c1f2e6c00cffa03bf0b6ca2f077e8db006b4cae8b',
      POSITION_FEE_FACTOR: '0x3999256650a6ebfea3dfbd4d56990f4d9048943a0e38ea6aabfc65122556c342',
      OPEN_INTEREST: '0x4259c04608de5df0fa0e375507d66e8ffc81773c9f3dd501a181cbb349ae4fe0',
      MAX_OPEN_INTEREST: '0x00468cb3aa9036ff00a31f90887485d87e1ee0299e9c1e1a838fe5110c4fbafb',
      OPEN_INTEREST_IN_TOKENS: '0xc577a5cb08b8e2126f9b9796b8c85ef9d1b5047a5ff670fc18802878f0bfd2f8',
      // the same value as integrations reading Arbitrum's DataStore use for POOL_AMOUNT
      POOL_AMOUNT: '0x8d6d2afbc2bb1e17cb89b72f19b266a410f6ee8f890812b98b609d4bbf135960',
      RESERVE_FACTOR: '0xeb6dbcc031d84cf5bcdec21aafd7b4ea59618b0863960405767329a7ad41889a',
      OPEN_INTEREST_RESERVE_FACTOR: '0xfb0e1c66a0f6d31a6b27a57ad9f57c3a0afb198688ed6d5930c60914530f220a',
      // the same value as integrations configuring GMX markets use for MIN_COLLATERAL_FACTOR
      MIN_COLLATERAL_FACTOR: '0x9fc265ee9783e670a7a731141f58b59bca5a260ba3eb3f893412fb613dc559f7',
      // Keys.sol lines 255 and 181: what the local contract reads for cancellation and price age
      REQUEST_EXPIRATION_TIME: '0xf664ba0f4e5389df44705cd100171228b74c4f050a9f00bd873e95d25c49a273',
      MAX_ORACLE_PRICE_AGE: '0x2498be75403c532695a52aa481268f4d166a68f0d7468b5a879e2beb6ec70062',
      // Keys.sol lines 110, 372-394 and 410-420: funding and borrowing (what Reader.getMarketInfo reads);
      // FUNDING_FACTOR and FUNDING_EXPONENT_FACTOR as integrations configuring GMX markets use them
      FUNDING_FACTOR: '0x8d25c5b55501c0bb1657a27730a272059c9a87bbf03ea76434f679bfef179e73',
      FUNDING_EXPONENT_FACTOR: '0x769527e09152c8f6c2369c579559e9b754b40a814f8d7aca18ab79ffef6c3a02',
      SAVED_FUNDING_FACTOR_PER_SECOND: '0xf63fea608b7053f75017cdb08ea8cedc1dc27ba6c7e693da824eb04a2ebc0729',
      FUNDING_INCREASE_FACTOR_PER_SECOND:
        '0xf107e6afaae3407c99cd46b4f6b09eab1eb038afa0327733a30098b8781f5019',
      FUNDING_DECREASE_FACTOR_PER_SECOND:
        '0xeab049d89d71d8196c610801d3de2720496d1313dd5f0fdd4c5e6be3752d51a7',
      MIN_FUNDING_FACTOR_PER_SECOND: '0x368afb51b32c3d33dfca82b9cf2acb7189260668d74581e720aba5782e57cd14',
      MAX_FUNDING_FACTOR_PER_SECOND: '0xbeb1b2c6c23ef59c950f3194c435435cc060a612328d7b143074e6309e18e282',
      THRESHOLD_FOR_STABLE_FUNDING: '0x183bdff2eb59d396a4199bf4641673c64ce0e2a6229c72f8a07dccbe95d57d11',
      THRESHOLD_FOR_DECREASE_FUNDING: '0x6eca37816aa74c2687a4153398ea1ad6d8174b8118dbb94527279eb35673ef30',
      FUNDING_UPDATED_AT: '0xb5ddf508060c27de8692c76ee937ac1c56cb8c1fb7431f074d2a0eb00b863ee6',
      IS_MARKET_DISABLED: '0x5c27e8a9fa01145fb01eb80b81db2eab7e57bc33d109d6a64315239a65ce4d36',
      OPTIMAL_USAGE_FACTOR: '0xe6f533d0e6465526dc1f2ce029bfd519c4732e82e2774257b4d744f4601b0170',
      BASE_BORROWING_FACTOR: '0x4b577b54505b207509b4801875038658b5a30a983be8e0ecaa07b480f3e519cf',
      ABOVE_OPTIMAL_USAGE_BORROWING_FACTOR:
        '0x0697a21ae9a968612a7097b30b07df7630eaf35000c3e78ca63f17fd64c2266d',
      BORROWING_FACTOR: '0xa38d85dceca084ba5b76ea9a3020c5536fb5cf7455ef13366c4f4ad20d24b3c2',
      BORROWING_EXPONENT_FACTOR: '0x44e07d838924516f5b9c562ffc22db10a563a3f687178102325f6c448f2fa35d',
      SKIP_BORROWING_FEE_FOR_SMALLER_SIDE:
        '0x6b11e342f6958fd7970dd58c6f71142d5edf77c480f9322a8e9c96b6cc7f7888',
      USE_OPEN_INTEREST_IN_TOKENS_FOR_BALANCE:
        '0x75a3957e02e4119004dc68ed9253860288ddffa3fa2751cb5855a7eb30175c8e',
      // Keys.sol lines 156 and 158: order creation and execution switches (per OrderHandler and order type)
      CREATE_ORDER_FEATURE_DISABLED: '0xdf83d07880c6c9da5b08e099b2210859db7182f98d9293f12e8552c7674ccbe6',
      EXECUTE_ORDER_FEATURE_DISABLED: '0xfeecf7f710a5550b87d68f152c61d5fa51b623a46b6f640b617fdce98319659f',
    });
    // abi.encode(string): offset 0x20, length, the bytes right-padded.
    const name = 'OPEN_INTEREST';
    const manual = keccak256(
      concat([
        pad(toHex(32), { size: 32 }),
        pad(toHex(name.length), { size: 32 }),
        pad(toHex(name), { size: 32, dir: 'right' }),
      ]),
    );
    expect(hashString(name)).toBe(manual);
    expect(GMX_KEYS.OPEN_INTEREST).toBe(manual);
  });

  it('keys values as keccak256(abi.encode(CONSTANT, ...args)) in upstream argument order', () => {
    for (const isLong of [true, false]) {
      expect(openInterestKey(MARKET, USDC, isLong)).toBe(
        keccak256(
          concat([GMX_KEYS.OPEN_INTEREST, word.address(MARKET), word.address(USDC), word.bool(isLong)]),
        ),
      );
      expect(maxOpenInterestKey(MARKET, isLong)).toBe(
        keccak256(concat([GMX_KEYS.MAX_OPEN_INTEREST, word.address(MARKET), word.bool(isLong)])),
      );
      expect(positionFeeFactorKey(MARKET, isLong)).toBe(
        keccak256(concat([GMX_KEYS.POSITION_FEE_FACTOR, word.address(MARKET), word.bool(isLong)])),
      );
    }
    expect(accountOrderListKey(WETH)).toBe(
      keccak256(concat([GMX_KEYS.ACCOUNT_ORDER_LIST, word.address(WETH)])),
    );
    expect(minCollateralFactorKey(MARKET)).toBe(
      keccak256(concat([GMX_KEYS.MIN_COLLATERAL_FACTOR, word.address(MARKET)])),
    );
    // Keys.fundingFactorKey(market) and the like; Keys.borrowingFactorKey(market, isLong) and the like.
    expect(marketKey(GMX_KEYS.FUNDING_FACTOR, MARKET)).toBe(
      keccak256(concat([GMX_KEYS.FUNDING_FACTOR, word.address(MARKET)])),
    );
    for (const isLong of [true, false])
      expect(marketSideKey(GMX_KEYS.BORROWING_FACTOR, MARKET, isLong)).toBe(
        keccak256(concat([GMX_KEYS.BORROWING_FACTOR, word.address(MARKET), word.bool(isLong)])),
      );
    // Keys.isMarketDisabledKey(market); Keys.create/executeOrderFeatureDisabledKey(module, uint256 orderType)
    // (module: the OrderHandler; orderType 2 MarketIncrease, 4 MarketDecrease).
    expect(isMarketDisabledKey(MARKET)).toBe(
      keccak256(concat([GMX_KEYS.IS_MARKET_DISABLED, word.address(MARKET)])),
    );
    for (const orderType of [2, 4]) {
      expect(orderFeatureDisabledKey('create', HANDLER, orderType)).toBe(
        keccak256(
          concat([GMX_KEYS.CREATE_ORDER_FEATURE_DISABLED, word.address(HANDLER), word.uint(orderType)]),
        ),
      );
      expect(orderFeatureDisabledKey('execute', HANDLER, orderType)).toBe(
        keccak256(
          concat([GMX_KEYS.EXECUTE_ORDER_FEATURE_DISABLED, word.address(HANDLER), word.uint(orderType)]),
        ),
      );
    }
    expect(orderFeatureDisabledKey('create', HANDLER, 2)).not.toBe(
      orderFeatureDisabledKey('create', HANDLER, 4),
    );
    // Every argument matters: long/short and the collateral token give other keys.
    expect(openInterestKey(MARKET, USDC, true)).not.toBe(openInterestKey(MARKET, WETH, true));
    expect(openInterestKey(MARKET, USDC, true)).not.toBe(openInterestKey(MARKET, USDC, false));
  });

  it('prices the execution gas as GasUtils.adjustGasLimitForEstimate of the order estimate', () => {
    // config/general.ts defaults and Arbitrum's order gas limits.
    const s = {
      estimatedGasFeeBaseAmount: 600_000n,
      estimatedGasPerOraclePrice: 250_000n,
      estimatedGasFeeMultiplierFactor: 10n ** 30n,
      singleSwapGasLimit: 1_000_000n,
      increaseOrderGasLimit: 3_000_000n,
      decreaseOrderGasLimit: 2_000_000n,
    };
    // base + 3 oracle prices × 250 000 + the order limit × 1.
    expect(orderExecutionGasLimit(s, { increase: true })).toBe(600_000n + 750_000n + 3_000_000n);
    expect(orderExecutionGasLimit(s, { increase: false })).toBe(600_000n + 750_000n + 2_000_000n);
    // A swap: one more oracle price and SINGLE_SWAP_GAS_LIMIT; a callback adds its gas limit.
    expect(orderExecutionGasLimit(s, { increase: true, swapPathLength: 1, callbackGasLimit: 7n })).toBe(
      600_000n + 4n * 250_000n + 3_000_000n + 1_000_000n + 7n,
    );
    // A decrease that swaps its output: one more swap, no more oracle prices.
    expect(orderExecutionGasLimit(s, { increase: false, decreaseSwapsOutput: true })).toBe(
      600_000n + 750_000n + 2_000_000n + 1_000_000n,
    );
    // The multiplier (30 decimals) scales the estimate only: 1.5×.
    expect(
      orderExecutionGasLimit({ ...s, estimatedGasFeeMultiplierFactor: 15n * 10n ** 29n }, { increase: true }),
    ).toBe(600_000n + 750_000n + 4_500_000n);
  });

  it('decides balanceWasImproved as nextDiffUsd < initialDiffUsd', () => {
    const usd = (n: number) => BigInt(n) * 10n ** 30n;
    const oi = { longUsd30: usd(1000), shortUsd30: usd(400) };
    expect(balanceWasImproved(oi, { isLong: false, sizeDeltaUsd30: usd(500), increase: true })).toBe(true);
    expect(balanceWasImproved(oi, { isLong: false, sizeDeltaUsd30: usd(1300), increase: true })).toBe(false);
    expect(balanceWasImproved(oi, { isLong: true, sizeDeltaUsd30: usd(1), increase: true })).toBe(false);
    expect(balanceWasImproved(oi, { isLong: true, sizeDeltaUsd30: usd(600), increase: false })).toBe(true);
    // Balanced: any increase worsens it.
    const flat = { longUsd30: 0n, shortUsd30: 0n };
    expect(balanceWasImproved(flat, { isLong: true, sizeDeltaUsd30: usd(1), increase: true })).toBe(false);
  });
});

describe('GMX /prices/tickers answers', () => {
  // Three entries of the recorded Arbitrum answer in gmx-io/gmx-interface
  // sdk/src/test/fixtures/arbitrumTickers.json (commit a78e920e).
  const recorded = [
    {
      tokenAddress: '0x82aF49447D8a07e3bd95BD0d56f35241523fBab1',
      tokenSymbol: 'ETH',
      minPrice: '1739495434083952',
      maxPrice: '1739495434083952',
      updatedAt: 1783345314888,
      timestamp: 1783345314,
    },
    {
      tokenAddress: '0x47904963fc8b2340414262125aF798B9655E58Cd',
      tokenSymbol: 'BTC',
      minPrice: '615363870277724850000000000',
      maxPrice: '615363870277724850000000000',
      updatedAt: 1783345314888,
      timestamp: 1783345314,
    },
    {
      tokenAddress: '0xFd086bC7CD5C481DCC9C85ebE478A1C0b69FCbb9',
      tokenSymbol: 'USDT',
      minPrice: '998997672488724625000000',
      maxPrice: '999045890829574875000000',
      updatedAt: 1783345314888,
      timestamp: 1783345314,
    },
  ];

  it('reads the recorded Arbitrum answer exactly, prices in GMX units (USD per smallest unit × 10^30)', () => {
    const prices = parseGmxTickers(recorded, 'test');
    const eth = prices.get(WETH.toLowerCase());
    expect(eth).toEqual({ min: 1739495434083952n, max: 1739495434083952n, updatedAtMs: 1783345314888 });
    // Not rounded through a float on the way in.
    expect(prices.get('0x47904963fc8b2340414262125af798b9655e58cd')?.min).toBe(615363870277724850000000000n);
    // The unit: WETH has 18 decimals, BTC 8, USDT 6 → plausible USD per whole token.
    expect(gmxPriceToUsd(eth?.min as bigint, 18)).toBeCloseTo(1739.495434083952, 9);
    expect(
      gmxPriceToUsd(prices.get('0x47904963fc8b2340414262125af798b9655e58cd')?.min as bigint, 8),
    ).toBeCloseTo(61536.387, 3);
    expect(
      gmxPriceToUsd(prices.get('0xfd086bc7cd5c481dcc9c85ebe478a1c0b69fcbb9')?.max as bigint, 6),
    ).toBeCloseTo(0.99904589, 8);
  });

  it('takes the age from timestamp (seconds) when updatedAt (ms) is missing', () => {
    const { updatedAt: _, ...rest } = recorded[0] as (typeof recorded)[number];
    expect(parseGmxTickers([rest], 'test').get(WETH.toLowerCase())?.updatedAtMs).toBe(1783345314000);
  });

  it.each([
    ['a price as a JSON number', { minPrice: 1739 }, /0\.minPrice/],
    ['a decimal point in a price', { maxPrice: '1739.5' }, /0\.maxPrice: a non-negative integer string/],
    ['max below min', { maxPrice: '1' }, /maxPrice is below minPrice/],
    [
      'no time',
      { updatedAt: undefined, timestamp: undefined },
      /neither updatedAt \(ms\) nor timestamp \(s\)/,
    ],
    ['a bad address', { tokenAddress: '0x1234' }, /0\.tokenAddress: an address/],
  ])('refuses an answer with %s, naming the field', (_what, patch, message) => {
    const bad = { ...recorded[0], ...patch };
    expect(() => parseGmxTickers([bad], 'https://x.test/prices/tickers')).toThrow(message);
    expect(() => parseGmxTickers([bad], 'https://x.test/prices/tickers')).toThrow(/https:\/\/x\.test/);
  });

  it('refuses an answer that is not a list', () => {
    expect(() => parseGmxTickers({ error: 'down' }, 'u')).toThrow(/unexpected format: the answer/);
  });
});
