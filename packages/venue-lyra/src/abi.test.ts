import { compileSolidity, EVM_TEST_CONTRACTS_URL } from '@xhedge/evm';
import { type Abi, type AbiParameter, type Hex, toEventSelector, toFunctionSelector } from 'viem';
import { describe, expect, it } from 'vitest';
import { exchangeAdapterAbi, greekCacheAbi, optionMarketAbi, optionTokenAbi } from './abi.ts';
import { LYRA_CONTRACTS_URL, lyraLiteFixtureAbi } from './fixture.ts';

/** The ABI type of a parameter without names (tuples expanded), e.g. `(uint256,uint256[])`. */
function canonicalType(p: AbiParameter): string {
  if (!p.type.startsWith('tuple')) return p.type;
  const components = 'components' in p ? p.components : [];
  return `(${components.map(canonicalType).join(',')})${p.type.slice('tuple'.length)}`;
}

interface Shape {
  kind: 'function' | 'event' | 'error';
  /** Canonical signature, `name(types)`. */
  signature: string;
  /** Functions: `(types)` returned; events: the positions of indexed inputs. */
  rest: string;
}

/** Every function, event and error of an ABI, keyed `kind signature`. */
function shapes(abi: Abi): Map<string, Shape> {
  const out = new Map<string, Shape>();
  for (const item of abi) {
    if (item.type !== 'function' && item.type !== 'event' && item.type !== 'error') continue;
    const signature = `${item.name}(${item.inputs.map(canonicalType).join(',')})`;
    const rest =
      item.type === 'function'
        ? `(${item.outputs.map(canonicalType).join(',')})`
        : item.type === 'event'
          ? `indexed ${item.inputs.flatMap((p, i) => (p.indexed ? [i] : [])).join(',')}`
          : '';
    out.set(`${item.type} ${signature}`, { kind: item.type, signature, rest });
  }
  return out;
}

const selectorOf = (s: Pick<Shape, 'kind' | 'signature'>): Hex =>
  s.kind === 'event' ? toEventSelector(s.signature) : toFunctionSelector(s.signature);

// Lyra v1 Newport, derivexyz/v1-core @ ea9e36a ("Newport (#11)"), transcribed by hand from
// contracts/OptionMarket.sol, OptionToken.sol, OptionGreekCache.sol, OptionMarketPricer.sol (TradeResult, the
// trade-limit errors of updateCacheAndGetTradeResult; ExpectedNonZeroValue's NonZeroValues enum is a uint8),
// LiquidityPool.sol and ShortCollateral.sol (the errors a trade meets there: lockPutCollateral,
// lockCallCollateral, sendShortPremium, getLiquidity, _sendQuoteCollateral) and BaseExchangeAdapter.sol
// (PriceType → uint8); the selectors, return shapes and indexed inputs agree with the
// deployed ABIs in deployments/mainnet-arbi/lyra.realGMX.json at that commit. Selectors were computed with
// viem's toFunctionSelector / toEventSelector from the signature text.
const TRADE_INPUT = '(uint256,uint256,uint256,uint8,uint256,uint256,uint256,uint256,address)';
const TRADE_EVENT_DATA = '(uint256,uint256,uint256,uint8,uint8,uint256,uint256,bool,uint256,uint256,uint256)';
const TRADE_RESULT =
  '(uint256,uint256,uint256,uint256,(int256,int256,uint256,uint256,uint256,uint256),(uint256,uint256,uint256,uint256,uint256,uint256,uint256,uint256),uint256,uint256,uint256,uint256,uint256)';
const LIQUIDATION_EVENT_DATA = '(address,address,uint256,uint256,uint256,uint256,uint256,uint256)';
const OPTION_POSITION = '(uint256,uint256,uint8,uint256,uint256,uint8)';
const VOL_COMPONENTS = '(uint256,uint256,uint256)';
const COLLATERAL = '(uint256,uint256)';
const STRIKE_CACHE =
  '(uint256,uint256,uint256,uint256,(int256,int256,uint256,uint256,uint256),int256,int256,uint256)';

type Row = readonly [kind: Shape['kind'], declaredOn: string, signature: string, rest: string, selector: Hex];

const REAL: Record<'optionMarket' | 'optionToken' | 'greekCache' | 'exchangeAdapter', readonly Row[]> = {
  optionMarket: [
    ['function', 'OptionMarket', `openPosition(${TRADE_INPUT})`, '((uint256,uint256,uint256))', '0xd6c0bb44'],
    [
      'function',
      'OptionMarket',
      `closePosition(${TRADE_INPUT})`,
      '((uint256,uint256,uint256))',
      '0x3c8e7624',
    ],
    ['function', 'OptionMarket', 'getLiveBoards()', '(uint256[])', '0x7e7088eb'],
    [
      'function',
      'OptionMarket',
      'getOptionBoard(uint256)',
      '((uint256,uint256,uint256,bool,uint256[]))',
      '0x16a54f50',
    ],
    ['function', 'OptionMarket', 'getBoardStrikes(uint256)', '(uint256[])', '0x5d9d310c'],
    [
      'function',
      'OptionMarket',
      'getStrike(uint256)',
      '((uint256,uint256,uint256,uint256,uint256,uint256,uint256,uint256,uint256))',
      '0xa6063c05',
    ],
    [
      'function',
      'OptionMarket',
      'createOptionBoard(uint256,uint256,uint256[],uint256[],bool)',
      '(uint256)',
      '0x2dd0776b',
    ],
    ['function', 'OptionMarket', 'boardToPriceAtExpiry(uint256)', '(uint256)', '0xd1e9e811'],
    [
      'function',
      'OptionMarket',
      'getSettlementParameters(uint256)',
      '(uint256,uint256,uint256,uint256)',
      '0x1fdb6cbd',
    ],
    ['function', 'OptionMarket', 'baseAsset()', '(address)', '0xcdf456e1'],
    ['function', 'OptionMarket', 'settleExpiredBoard(uint256)', '()', '0x7c1de425'],
    [
      'event',
      'OptionMarket',
      `Trade(address,uint256,address,${TRADE_EVENT_DATA},${TRADE_RESULT}[],${LIQUIDATION_EVENT_DATA},uint256,uint256)`,
      'indexed 0,1,2',
      '0x764959e6c9e0019ca0e3d86f2bbf3995083059a4751009b16fcbfbd76e8992f4',
    ],
    ['error', 'OptionMarket', 'InvalidStrikeId(address,uint256)', '', '0xb2c8897c'],
    ['error', 'OptionMarket', 'BoardIsFrozen(address,uint256)', '', '0xea409ee4'],
    ['error', 'OptionMarket', 'BoardExpired(address,uint256,uint256,uint256)', '', '0x3f98da18'],
    ['error', 'OptionMarket', 'InvalidBoardId(address,uint256)', '', '0x1234dccd'],
    ['error', 'OptionMarket', 'BoardNotExpired(address,uint256)', '', '0x828a0404'],
    ['error', 'OptionMarket', 'BoardAlreadySettled(address,uint256)', '', '0xf2ebc7bf'],
    [
      'error',
      'OptionMarket',
      'TotalCostOutsideOfSpecifiedBounds(address,uint256,uint256,uint256)',
      '',
      '0x56e250f3',
    ],
    ['error', 'OptionMarket', 'ExpectedNonZeroValue(address,uint8)', '', '0x9c078bed'],
    [
      'error',
      'OptionMarket',
      'TradeIterationsHasRemainder(address,uint256,uint256,uint256,uint256)',
      '',
      '0x0f119a15',
    ],
    ['error', 'OptionMarket', 'QuoteTransferFailed(address,address,address,uint256)', '', '0x0f7ad8ce'],
    [
      'error',
      'OptionMarketPricer',
      'TradingCutoffReached(address,uint256,uint256,uint256)',
      '',
      '0xcb31f25c',
    ],
    [
      'error',
      'OptionMarketPricer',
      `VolSkewOrBaseIvOutsideOfTradingBounds(address,bool,${VOL_COMPONENTS},${VOL_COMPONENTS},${VOL_COMPONENTS})`,
      '',
      '0x1a360073',
    ],
    ['error', 'OptionMarketPricer', 'TradeDeltaOutOfRange(address,int256,int256,int256)', '', '0xd9373769'],
    ['error', 'OptionToken', 'CannotOpenZeroAmount(address)', '', '0x4965aa71'],
    ['error', 'OptionToken', 'CannotClosePositionZero(address)', '', '0x30386bed'],
    ['error', 'OptionToken', 'OnlyOwnerCanAdjustPosition(address,uint256,address,address)', '', '0xc744afae'],
    [
      'error',
      'OptionToken',
      'CannotAdjustInvalidPosition(address,uint256,bool,bool,bool,bool)',
      '',
      '0x5f854e4b',
    ],
    [
      'error',
      'OptionToken',
      'FullyClosingWithNonZeroSetCollateral(address,uint256,uint256)',
      '',
      '0xa6b45de0',
    ],
    [
      'error',
      'OptionToken',
      `AdjustmentResultsInMinimumCollateralNotBeingMet(address,${OPTION_POSITION},uint256)`,
      '',
      '0x1996462c',
    ],
    [
      'error',
      'LiquidityPool',
      `LockingMoreQuoteThanIsFree(address,uint256,uint256,${COLLATERAL})`,
      '',
      '0x63ccffe3',
    ],
    [
      'error',
      'LiquidityPool',
      'SendPremiumNotEnoughCollateral(address,uint256,uint256,uint256)',
      '',
      '0xf28e98bf',
    ],
    ['error', 'LiquidityPool', 'UnableToHedgeDelta(address,uint256,bool,uint256)', '', '0xbb34c4dc'],
    ['error', 'LiquidityPool', 'NegativeTotalAssetValue(address,int256)', '', '0x79a6f097'],
    [
      'error',
      'ShortCollateral',
      'OutOfQuoteCollateralForTransfer(address,uint256,uint256)',
      '',
      '0x96152ec7',
    ],
    // ERC-6093 (OpenZeppelin 5): the quote token's, not Lyra's.
    ['error', 'quote token', 'ERC20InsufficientBalance(address,uint256,uint256)', '', '0xe450d38c'],
    ['error', 'quote token', 'ERC20InsufficientAllowance(address,uint256,uint256)', '', '0xfb8f41b2'],
  ],
  optionToken: [
    ['function', 'OptionToken', 'getOwnerPositions(address)', `(${OPTION_POSITION}[])`, '0x845e1259'],
    ['function', 'OptionToken', 'getOptionPosition(uint256)', `(${OPTION_POSITION})`, '0x13ddc401'],
    [
      'event',
      'OptionToken',
      `PositionUpdated(uint256,address,uint8,${OPTION_POSITION},uint256)`,
      'indexed 0,1,2',
      '0xf9b31acb62d492321b0251319b98e9ec85be9c8d6ac5ff592a574c6d09c93466',
    ],
  ],
  greekCache: [
    ['function', 'OptionGreekCache', 'getStrikeCache(uint256)', `(${STRIKE_CACHE})`, '0x641c3736'],
    ['function', 'OptionGreekCache', 'getGlobalNetDelta()', '(int256)', '0x825df9b2'],
    [
      'function',
      'OptionGreekCache',
      'getGreekCacheParams()',
      '((uint256,uint256,uint256,uint256,uint256,uint256,uint256,uint256,uint256))',
      '0xf369f2ac',
    ],
    ['function', 'OptionGreekCache', 'getIvGWAV(uint256,uint256)', '(uint256)', '0xf3fd9b3d'],
    ['function', 'OptionGreekCache', 'getSkewGWAV(uint256,uint256)', '(uint256)', '0x7df71268'],
    [
      'function',
      'OptionGreekCache',
      'getMinCollateral(uint8,uint256,uint256,uint256,uint256)',
      '(uint256)',
      '0xa57ce682',
    ],
  ],
  exchangeAdapter: [
    ['function', 'BaseExchangeAdapter', 'getSpotPriceForMarket(address,uint8)', '(uint256)', '0x73cbfc69'],
  ],
};

const ADAPTER_ABIS = {
  optionMarket: optionMarketAbi,
  optionToken: optionTokenAbi,
  greekCache: greekCacheAbi,
  exchangeAdapter: exchangeAdapterAbi,
} as const;

/** Which contract of LyraV1Lite.sol stands in for each real one. */
const LITE_CONTRACT = {
  optionMarket: 'OptionMarket',
  optionToken: 'OptionToken',
  greekCache: 'OptionGreekCache',
  exchangeAdapter: 'ExchangeAdapter',
} as const;

function liteAbi(name: string): Abi {
  const c = compileSolidity({
    'LyraV1Lite.sol': LYRA_CONTRACTS_URL,
    'TestToken.sol': EVM_TEST_CONTRACTS_URL,
  })[name];
  if (!c) throw new Error(`contract ${name} missing from the compiled output`);
  return c.abi as Abi;
}

const names = Object.keys(ADAPTER_ABIS) as (keyof typeof ADAPTER_ABIS)[];

describe('lyra ABI against the real Lyra v1 Newport contracts', () => {
  it('the table of real signatures and selectors is consistent (a typo in either breaks it)', () => {
    for (const [kind, , signature, , selector] of Object.values(REAL).flat()) {
      expect(selectorOf({ kind, signature }), signature).toBe(selector);
    }
  });

  it.each(names)('%s ABI holds exactly the real items, with the real selectors and return shapes', (name) => {
    const mine = [...shapes(ADAPTER_ABIS[name]).values()].map((s) => ({
      item: `${s.kind} ${s.signature} ${s.rest}`.trim(),
      selector: selectorOf(s),
    }));
    const real = REAL[name].map(([kind, , signature, rest, selector]) => ({
      item: `${kind} ${signature} ${rest}`.trim(),
      selector,
    }));
    const byItem = (a: { item: string }, b: { item: string }) => a.item.localeCompare(b.item);
    // Nothing missing, nothing extra (a renamed or lite-only function fails here), same selectors.
    expect(mine.sort(byItem)).toEqual(real.sort(byItem));
  });

  it('reads boards with getOptionBoard (getBoard is no OptionMarket function) and decodes the real Trade', () => {
    const market = shapes(optionMarketAbi);
    expect(market.has('function getOptionBoard(uint256)')).toBe(true);
    expect([...market.values()].some((s) => s.signature.startsWith('getBoard('))).toBe(false);
    // Trade carries tradeResults, liquidation and longScaleFactor; TradeEventData has no isOpen/isLiquidation.
    const trade = [...market.values()].find((s) => s.kind === 'event' && s.signature.startsWith('Trade('));
    expect(trade && selectorOf(trade)).toBe(
      '0x764959e6c9e0019ca0e3d86f2bbf3995083059a4751009b16fcbfbd76e8992f4',
    );
  });

  it.each(names)(
    'the lite %s implements every function and event of the adapter ABI in the same shape',
    (name) => {
      const local = shapes(liteAbi(LITE_CONTRACT[name]));
      for (const [key, s] of shapes(ADAPTER_ABIS[name])) {
        // errors may be declared on another contract (OptionToken's bubble up through OptionMarket)
        if (s.kind === 'error' && !local.has(key)) continue;
        expect(local.get(key), `${key} missing from the lite ${LITE_CONTRACT[name]}`).toEqual(s);
      }
    },
  );

  it('the fixture-only ABI holds nothing of the real contracts (set-up stays out of the adapter)', () => {
    const real = new Set(
      Object.values(REAL).flatMap((rows) => rows.map(([kind, , sig]) => `${kind} ${sig}`)),
    );
    const realNames = new Set(
      Object.values(REAL).flatMap((rows) => rows.map(([, , sig]) => sig.split('(')[0])),
    );
    for (const s of shapes(lyraLiteFixtureAbi).values()) {
      expect(real.has(`${s.kind} ${s.signature}`), s.signature).toBe(false);
      expect(realNames.has(s.signature.split('(')[0]), s.signature).toBe(false);
    }
  });
});
