import { compileSolidity, EVM_TEST_CONTRACTS_URL } from '@xhedge/evm';
import {
  type Abi,
  type AbiEvent,
  type AbiFunction,
  type AbiParameter,
  type Hex,
  parseAbi,
  toEventSelector,
  toFunctionSelector,
} from 'viem';
import { describe, expect, it } from 'vitest';
import {
  dataStoreAbi,
  eventEmitterAbi,
  exchangeRouterAbi,
  gmxErrorAbi,
  ORDER_TYPE,
  oracleAbi,
  readerAbi,
  upstreamErrorAbi,
} from './abi.ts';
import { GMX_CONTRACTS_URL } from './fixture.ts';
import { gmxFixtureAbi } from './fixture-abi.ts';

/** The ABI type of a parameter without names (tuples expanded), e.g. `(address,uint256[])[]`. */
function canonicalType(p: AbiParameter): string {
  if (!p.type.startsWith('tuple')) return p.type;
  const components = 'components' in p ? p.components : [];
  return `(${components.map(canonicalType).join(',')})${p.type.slice('tuple'.length)}`;
}

/** Name, input and output types (events: which inputs are indexed) of every function, event and error. */
function shapes(abi: Abi): Map<string, string> {
  const out = new Map<string, string>();
  for (const item of abi) {
    if (item.type === 'function') {
      const ins = item.inputs.map(canonicalType).join(',');
      const outs = item.outputs.map(canonicalType).join(',');
      out.set(`function ${item.name}`, `(${ins}) returns (${outs})`);
    } else if (item.type === 'event') {
      const ins = item.inputs.map((p) => `${canonicalType(p)}${p.indexed ? ' indexed' : ''}`).join(',');
      out.set(`event ${item.name}`, `(${ins})`);
    } else if (item.type === 'error') {
      out.set(`error ${item.name}`, `(${item.inputs.map(canonicalType).join(',')})`);
    }
  }
  return out;
}

/** The ABI of one contract of GmxV2Lite.sol, compiled as the test chain deploys it. */
function compiledAbi(name: string): Abi {
  const c = compileSolidity({ 'GmxV2Lite.sol': GMX_CONTRACTS_URL, 'TestToken.sol': EVM_TEST_CONTRACTS_URL })[
    name
  ];
  if (!c) throw new Error(`contract ${name} missing from the compiled output`);
  return c.abi as Abi;
}

// The structs of gmx-io/gmx-synthetics main @ a5c0c8835182cbd84e47dca04b971239311d2f1d, transcribed by
// hand (field types in upstream's order, tuples expanded):
// contracts/order/IBaseOrderUtils.sol CreateOrderParams (enums are uint8 in the ABI).
const CREATE_ORDER_PARAMS =
  '((address,address,address,address,address,address,address[]),(uint256,uint256,uint256,uint256,uint256,uint256,uint256,uint256),uint8,uint8,bool,bool,bool,bytes32,bytes32[])';
// contracts/position/Position.sol Props (Numbers has int256 pendingImpactAmount after collateralAmount).
const POSITION_PROPS =
  '((address,address,address),(uint256,uint256,uint256,int256,uint256,uint256,uint256,uint256,uint256,uint256),(bool))';
// contracts/order/Order.sol Props.
const ORDER_PROPS =
  '((address,address,address,address,address,address,address,address[]),(uint8,uint8,uint256,uint256,uint256,uint256,uint256,uint256,uint256,uint256,uint256,uint256),(bool,bool,bool,bool),bytes32[])';
// contracts/market/Market.sol Props.
const MARKET_PROPS = '(address,address,address,address)';
// contracts/market/MarketUtils.sol MarketPrices: index, long and short token Price.Props (min, max).
const MARKET_PRICES = '((uint256,uint256),(uint256,uint256),(uint256,uint256))';
// contracts/pricing/PositionPricingUtils.sol PositionFees: referral, pro, funding, borrowing, ui and
// liquidation parts, collateralTokenPrice, then ten uint256 from positionFeeFactor to totalDiscountAmount.
const POSITION_FEES =
  '((bytes32,address,address,uint256,uint256,uint256,uint256,uint256,uint256,uint256),(uint256,uint256,uint256),(uint256,uint256,uint256,uint256,uint256,uint256),(uint256,uint256,uint256,uint256),(address,uint256,uint256),(uint256,uint256,uint256,uint256),(uint256,uint256),uint256,uint256,uint256,uint256,uint256,uint256,uint256,uint256,uint256,uint256)';
// contracts/reader/ReaderPricingUtils.sol ExecutionPriceResult.
const EXECUTION_PRICE_RESULT = '(int256,uint256,bool,int256,int256,uint256)';
// contracts/reader/ReaderPositionUtils.sol PositionInfo: positionKey, position, fees,
// executionPriceResult, basePnlUsd, uncappedBasePnlUsd, pnlAfterPriceImpactUsd.
const POSITION_INFO = `(bytes32,${POSITION_PROPS},${POSITION_FEES},${EXECUTION_PRICE_RESULT},int256,int256,int256)`;
// contracts/market/MarketUtils.sol PositionType: (long, short) CollateralType, each (longToken, shortToken).
const POSITION_TYPE = '((uint256,uint256),(uint256,uint256))';
// contracts/reader/ReaderUtils.sol MarketInfo: market, borrowingFactorPerSecondForLongs/ForShorts,
// baseFunding (fundingFeeAmountPerSize, claimableFundingAmountPerSize), nextFunding
// (MarketUtils.GetNextFundingAmountPerSizeResult: longsPayShorts, fundingFactorPerSecond,
// nextSavedFundingFactorPerSecond, the two per-size deltas), virtualInventory, isDisabled.
const MARKET_INFO = `(${MARKET_PROPS},uint256,uint256,(${POSITION_TYPE},${POSITION_TYPE}),(bool,uint256,int256,${POSITION_TYPE},${POSITION_TYPE}),(uint256,uint256,int256),bool)`;

// The guard: every function, event and error abi.ts declares, as gmx-io/gmx-synthetics main @
// a5c0c8835182cbd84e47dca04b971239311d2f1d declares it, transcribed from upstream's text (parameter
// types, tuples expanded: what the selector is computed from), with the selector or topic pinned: for
// functions and events the one of the Arbitrum deployment's ABI at that commit
// (deployments/arbitrum/<Contract>.json), for errors of contracts/error/Errors.sol. A renamed item, a
// parameter added, dropped, retyped or moved, a struct field out of place, or an item added to abi.ts
// without its upstream signature fails here.
type UpstreamItem = { item: string; returns?: string; indexed?: number[]; selector: Hex };
// contracts/event/EventUtils.sol EventLogData: address, uint, int, bool, bytes32, bytes and string items,
// each (KeyValue[] items, ArrayKeyValue[] arrayItems).
const EVENT_LOG_DATA =
  '(((string,address)[],(string,address[])[]),((string,uint256)[],(string,uint256[])[]),((string,int256)[],(string,int256[])[]),((string,bool)[],(string,bool[])[]),((string,bytes32)[],(string,bytes32[])[]),((string,bytes)[],(string,bytes[])[]),((string,string)[],(string,string[])[]))';

const UPSTREAM: Record<
  'ExchangeRouter' | 'Reader' | 'DataStore' | 'Oracle' | 'EventEmitter',
  UpstreamItem[]
> = {
  // contracts/router/ExchangeRouter.sol, BaseRouter.sol, utils/PayableMulticall.sol
  ExchangeRouter: [
    // `IOrderHandler public immutable orderHandler` (an address in the ABI)
    { item: 'function orderHandler()', returns: '(address)', selector: '0xb5848305' },
    { item: 'function multicall(bytes[])', returns: '(bytes[])', selector: '0xac9650d8' },
    { item: 'function sendWnt(address,uint256)', returns: '()', selector: '0x7d39aaf1' },
    { item: 'function sendTokens(address,address,uint256)', returns: '()', selector: '0xe6d66ac8' },
    { item: `function createOrder(${CREATE_ORDER_PARAMS})`, returns: '(bytes32)', selector: '0xf59c48eb' },
    { item: 'function cancelOrder(bytes32)', returns: '()', selector: '0x7489ec23' },
  ],
  // contracts/reader/Reader.sol
  Reader: [
    {
      item: 'function getMarkets(address,uint256,uint256)',
      returns: `(${MARKET_PROPS}[])`,
      selector: '0xce3264bf',
    },
    {
      item: 'function getAccountPositions(address,address,uint256,uint256)',
      returns: `(${POSITION_PROPS}[])`,
      selector: '0x77cfb162',
    },
    {
      // (DataStore, IReferralStorage, account, markets, marketPrices, uiFeeReceiver, start, end)
      item: `function getAccountPositionInfoList(address,address,address,address[],${MARKET_PRICES}[],address,uint256,uint256)`,
      returns: `(${POSITION_INFO}[])`,
      selector: '0xb05e0ea0',
    },
    { item: 'function getOrder(address,bytes32)', returns: `(${ORDER_PROPS})`, selector: '0x49651b6a' },
    {
      item: 'function getAccountOrders(address,address,uint256,uint256)',
      // ReaderUtils.OrderInfo[]: (orderKey, Order.Props)
      returns: `((bytes32,${ORDER_PROPS})[])`,
      selector: '0x42a6f8d3',
    },
    {
      // (DataStore, MarketUtils.MarketPrices, marketKey)
      item: `function getMarketInfo(address,${MARKET_PRICES},address)`,
      returns: `(${MARKET_INFO})`,
      selector: '0x847bb469',
    },
  ],
  // contracts/data/DataStore.sol
  DataStore: [
    { item: 'function getUint(bytes32)', returns: '(uint256)', selector: '0xbd02d0f5' },
    { item: 'function getBool(bytes32)', returns: '(bool)', selector: '0x7ae1cfca' },
    { item: 'function getBytes32Count(bytes32)', returns: '(uint256)', selector: '0xf3903b9f' },
    {
      item: 'function getBytes32ValuesAt(bytes32,uint256,uint256)',
      returns: '(bytes32[])',
      selector: '0xf069052a',
    },
  ],
  // contracts/oracle/Oracle.sol
  Oracle: [
    { item: 'function getPrimaryPrice(address)', returns: '((uint256,uint256))', selector: '0x5dcf7194' },
    { item: 'function maxTimestamp()', returns: '(uint256)', selector: '0x71604245' },
  ],
  // contracts/event/EventEmitter.sol: topic0 of each event; `eventNameHash` and the topics indexed.
  EventEmitter: [
    {
      item: `event EventLog(address,string,string,${EVENT_LOG_DATA})`,
      indexed: [2],
      selector: '0x7e3bde2ba7aca4a8499608ca57f3b0c1c1c93ace63ffd3741a9fab204146fc9a',
    },
    {
      item: `event EventLog1(address,string,string,bytes32,${EVENT_LOG_DATA})`,
      indexed: [2, 3],
      selector: '0x137a44067c8961cd7e1d876f4754a5a3a75989b4552f1843fc69c3b372def160',
    },
    {
      item: `event EventLog2(address,string,string,bytes32,bytes32,${EVENT_LOG_DATA})`,
      indexed: [2, 3, 4],
      selector: '0x468a25a7ba624ceea6e540ad6f49171b52495b648417ae91bca21676d8a24dc5',
    },
  ],
};

// contracts/error/Errors.sol
const UPSTREAM_ERRORS: UpstreamItem[] = [
  { item: 'error Unauthorized(address,string)', selector: '0xa35b150b' },
  { item: 'error EmptyOrder()', selector: '0x16307797' },
  { item: 'error RequestNotYetCancellable(uint256,uint256,string)', selector: '0xe8266438' },
  { item: 'error DisabledFeature(bytes32)', selector: '0xdd70e0c9' },
  { item: 'error InsufficientWntAmountForExecutionFee(uint256,uint256)', selector: '0x3a78cd7e' },
  { item: 'error InsufficientExecutionFee(uint256,uint256)', selector: '0x5dac504d' },
  { item: 'error EmptyMarket()', selector: '0x05fbc1ae' },
  { item: 'error DisabledMarket(address)', selector: '0x09f8c937' },
  { item: 'error InvalidPositionMarket(address)', selector: '0x182e30e3' },
  { item: 'error UnsupportedOrderType(uint256)', selector: '0x3784f834' },
  { item: 'error OrderNotFulfillableAtAcceptablePrice(uint256,uint256)', selector: '0xe09ad0e9' },
  { item: 'error MaxOpenInterestExceeded(uint256,uint256)', selector: '0x2bf127cf' },
  { item: 'error InsufficientReserve(uint256,uint256)', selector: '0x315276c9' },
  { item: 'error InsufficientReserveForOpenInterest(uint256,uint256)', selector: '0xb98c6179' },
  { item: 'error EmptyPosition()', selector: '0x4dfbbff3' },
  { item: 'error EmptyPrimaryPrice(address)', selector: '0xcd64a025' },
  { item: 'error MaxPriceAgeExceeded(uint256,uint256)', selector: '0x2b6e7c3f' },
  { item: 'error EmptyMarketPrice(address)', selector: '0xeb1947dd' },
  { item: 'error UnableToGetCachedTokenPrice(address,address)', selector: '0xbe4729a2' },
  { item: 'error UnableToGetBorrowingFactorEmptyPoolUsd()', selector: '0x6afad778' },
  { item: 'error UnableToGetFundingFactorEmptyOpenInterest()', selector: '0x11423d95' },
];

const REAL_ABIS = {
  ExchangeRouter: exchangeRouterAbi,
  Reader: readerAbi,
  DataStore: dataStoreAbi,
  Oracle: oracleAbi,
  EventEmitter: eventEmitterAbi,
} as const;

/** `function name(types)` / `event name(types)` / `error name(types)`: the text a selector hashes. */
function signature(item: AbiFunction | AbiEvent | Extract<Abi[number], { type: 'error' }>): string {
  return `${item.type} ${item.name}(${item.inputs.map(canonicalType).join(',')})`;
}

/** An ABI's functions, events and errors as the table writes them (selectors computed by viem). */
function rows(abi: Abi): UpstreamItem[] {
  const out: UpstreamItem[] = [];
  for (const item of abi) {
    if (item.type === 'function')
      out.push({
        item: signature(item),
        returns: `(${item.outputs.map(canonicalType).join(',')})`,
        selector: toFunctionSelector(item),
      });
    else if (item.type === 'event')
      out.push({
        item: signature(item),
        indexed: item.inputs.flatMap((p, i) => (p.indexed ? [i] : [])),
        selector: toEventSelector(item),
      });
    else if (item.type === 'error')
      out.push({
        item: signature(item),
        selector: toFunctionSelector(signature(item).slice('error '.length)),
      });
  }
  return out.sort((a, b) => a.item.localeCompare(b.item));
}

const sorted = (xs: UpstreamItem[]) => [...xs].sort((a, b) => a.item.localeCompare(b.item));

describe('guard: abi.ts is upstream gmx-synthetics, item by item', () => {
  it.each(Object.keys(UPSTREAM) as (keyof typeof UPSTREAM)[])(
    '%s: exactly the upstream functions/events, with their parameter and return types and selectors',
    (contract) => {
      expect(rows(REAL_ABIS[contract])).toEqual(sorted(UPSTREAM[contract]));
    },
  );

  it("errors: exactly upstream Errors.sol signatures (plus the collateral token's own)", () => {
    expect(rows(upstreamErrorAbi)).toEqual(sorted(UPSTREAM_ERRORS));
    expect(rows(gmxErrorAbi)).toEqual(
      sorted([
        ...UPSTREAM_ERRORS,
        // OpenZeppelin 5 IERC20Errors (the local TestToken), not GMX's
        { item: 'error ERC20InsufficientBalance(address,uint256,uint256)', selector: '0xe450d38c' },
        { item: 'error ERC20InsufficientAllowance(address,uint256,uint256)', selector: '0xfb8f41b2' },
      ]),
    );
  });

  it('the pinned selectors and topics are those of the signature text (viem), so the table is self-consistent', () => {
    for (const r of [...Object.values(UPSTREAM).flat(), ...UPSTREAM_ERRORS]) {
      const [kind, text] = r.item.split(' ', 2) as [string, string];
      expect(kind === 'event' ? toEventSelector(text) : toFunctionSelector(text), r.item).toBe(r.selector);
    }
  });

  it('ORDER_TYPE is the position of Order.OrderType (MarketSwap, LimitSwap, MarketIncrease, LimitIncrease, MarketDecrease, …)', () => {
    expect(ORDER_TYPE).toEqual({ MarketIncrease: 2, MarketDecrease: 4 });
  });
});

describe('the local contracts (contracts/GmxV2Lite.sol) serve the upstream shapes', () => {
  it.each([
    ['ExchangeRouter', exchangeRouterAbi],
    ['Reader', readerAbi],
    ['GmxCore', dataStoreAbi],
    // what the local Reader reads of the DataStore for getMarketInfo (upstream DataStore.sol getters)
    [
      'GmxCore',
      parseAbi([
        'function getInt(bytes32) view returns (int256)',
        'function getBool(bytes32) view returns (bool)',
      ]),
    ],
    ['Oracle', oracleAbi],
  ] as const)('%s has every function abi.ts calls on it, with the same shape', (name, abi) => {
    const mine = shapes(abi);
    const local = shapes(compiledAbi(name));
    for (const k of [...mine.keys()].filter((x) => x.startsWith('function ')))
      expect(`${k}${local.get(k)}`).toBe(`${k}${mine.get(k)}`);
  });

  it('the local EventEmitter emits EventLog1/EventLog2 exactly as abi.ts (the real shapes) decodes them', () => {
    const mine = shapes(eventEmitterAbi);
    const local = shapes(compiledAbi('EventEmitter'));
    for (const k of ['event EventLog1', 'event EventLog2']) {
      expect(local.get(k)).toBeDefined();
      expect(`${k}${local.get(k)}`).toBe(`${k}${mine.get(k)}`);
    }
  });

  it('raises only upstream errors (each in gmxErrorAbi with its upstream parameters)', () => {
    const known = shapes(gmxErrorAbi);
    const raised = new Set<string>();
    for (const name of ['GmxCore', 'ExchangeRouter', 'Reader', 'Oracle', 'EventEmitter', 'Router']) {
      for (const [k, v] of shapes(compiledAbi(name))) {
        if (!k.startsWith('error ')) continue;
        raised.add(k);
        expect(`${k}${v}`, `${name} declares ${k}`).toBe(`${k}${known.get(k)}`);
      }
    }
    expect(raised.size).toBeGreaterThan(10);
  });

  it('keeps its set-up and keeper functions in fixture-abi.ts, apart from the upstream ABIs', () => {
    const fixture = shapes(gmxFixtureAbi);
    const upstream = new Set(Object.values(REAL_ABIS).flatMap((abi) => [...shapes(abi).keys()]));
    expect([...fixture.keys()].filter((k) => upstream.has(k))).toEqual([]);
    // Each is served by one of the local contracts, with the same shape.
    const local = new Map<string, string>();
    for (const name of ['GmxCore', 'Oracle', 'EventEmitter', 'Router', 'TestToken'])
      for (const [k, v] of shapes(compiledAbi(name))) local.set(k, v);
    for (const [k, v] of fixture) expect(`${k}${local.get(k)}`).toBe(`${k}${v}`);
    // The four with upstream's signatures (a CONTROLLER's calls there): DataStore.setUint, setInt,
    // setBool, Oracle.setPrimaryPrice.
    const selector = (name: string) => {
      const f = gmxFixtureAbi.find((x) => x.type === 'function' && x.name === name);
      if (f?.type !== 'function') throw new Error(`${name} missing from the fixture ABI`);
      return toFunctionSelector(f);
    };
    expect(selector('setUint')).toBe('0xe2a4853a');
    expect(selector('setInt')).toBe('0x3e49bed0');
    expect(selector('setBool')).toBe('0xabfdcced');
    expect(selector('setPrimaryPrice')).toBe('0x47cba33d');
  });
});
