import { compileSolidity, EVM_TEST_CONTRACTS_URL } from '@xhedge/evm';
import { type Abi, type AbiParameter, toFunctionSelector } from 'viem';
import { describe, expect, it } from 'vitest';
import { dataStoreAbi, eventEmitterAbi, exchangeRouterAbi, readerAbi } from './abi.ts';
import { GMX_CONTRACTS_URL } from './fixture.ts';

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

// gmx-io/gmx-synthetics main @ a5c0c8835182cbd84e47dca04b971239311d2f1d, transcribed by hand:
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

describe('gmx ABI shapes', () => {
  it('sends and reads the structs in the current gmx-synthetics layout', () => {
    const router = shapes(exchangeRouterAbi);
    const reader = shapes(readerAbi);
    expect(router.get('function createOrder')).toBe(`(${CREATE_ORDER_PARAMS}) returns (bytes32)`);
    expect(reader.get('function getAccountPositions')).toBe(
      `(address,address,uint256,uint256) returns (${POSITION_PROPS}[])`,
    );
    expect(reader.get('function getOrder')).toBe(`(address,bytes32) returns (${ORDER_PROPS})`);
    expect(reader.get('function getMarkets')).toBe(`(address,uint256,uint256) returns (${MARKET_PROPS}[])`);
    // contracts/reader/Reader.sol: (DataStore, IReferralStorage, account, markets, marketPrices,
    // uiFeeReceiver, start, end).
    expect(reader.get('function getAccountPositionInfoList')).toBe(
      `(address,address,address,address[],${MARKET_PRICES}[],address,uint256,uint256) returns (${POSITION_INFO}[])`,
    );
    // The selector of that signature in the ABI of the Arbitrum Reader deployment
    // (deployments/arbitrum/Reader.json, 0x470fbC46bcC0f16532691Df360A07d8Bf5ee0789, at the same commit).
    const info = readerAbi.find((x) => x.type === 'function' && x.name === 'getAccountPositionInfoList');
    if (info?.type !== 'function') throw new Error('getAccountPositionInfoList missing from the ABI');
    expect(toFunctionSelector(info)).toBe('0xb05e0ea0');
    // What a real ExchangeRouter dispatches on (its selector for the current struct is 0xf59c48eb).
    const createOrder = exchangeRouterAbi.find((x) => x.type === 'function' && x.name === 'createOrder');
    if (createOrder?.type !== 'function') throw new Error('createOrder missing from the ABI');
    expect(toFunctionSelector(createOrder)).toBe('0xf59c48eb');
    // contracts/reader/Reader.sol getAccountOrders returns ReaderUtils.OrderInfo[] (orderKey, Order.Props).
    expect(reader.get('function getAccountOrders')).toBe(
      `(address,address,uint256,uint256) returns ((bytes32,${ORDER_PROPS})[])`,
    );
    // Selectors of the Arbitrum deployments' ABIs (deployments/arbitrum/Reader.json and DataStore.json,
    // 0xFD70de6b91282D8017aA4E741e9Ae325CAb992d8, at the same commit).
    const selector = (abi: Abi, name: string) => {
      const f = abi.find((x) => x.type === 'function' && x.name === name);
      if (f?.type !== 'function') throw new Error(`${name} missing from the ABI`);
      return toFunctionSelector(f);
    };
    expect(selector(readerAbi, 'getAccountOrders')).toBe('0x42a6f8d3');
    expect(selector(dataStoreAbi, 'getUint')).toBe('0xbd02d0f5');
    expect(selector(dataStoreAbi, 'getBytes32ValuesAt')).toBe('0xf069052a');
    expect(selector(dataStoreAbi, 'getBytes32Count')).toBe('0xf3903b9f');
  });

  it.each([
    ['ExchangeRouter', exchangeRouterAbi],
    ['Reader', readerAbi],
    ['GmxCore', dataStoreAbi],
  ] as const)('abi.ts agrees with the local %s contract on every item both declare', (name, abi) => {
    const mine = shapes(abi);
    const local = shapes(compiledAbi(name));
    const shared = [...mine.keys()].filter((k) => local.has(k));
    // Every function the adapter calls on that contract exists there (errors may come from others).
    const missing = [...mine.keys()].filter((k) => !k.startsWith('error ') && !local.has(k));
    expect(missing).toEqual([]);
    expect(shared.length).toBeGreaterThan(2);
    for (const k of shared) expect(`${k}${local.get(k)}`).toBe(`${k}${mine.get(k)}`);
  });

  it('the local EventEmitter emits EventLog1/EventLog2 exactly as abi.ts (the real shapes) decodes them', () => {
    const mine = shapes(eventEmitterAbi);
    const local = shapes(compiledAbi('EventEmitter'));
    for (const k of ['event EventLog1', 'event EventLog2']) {
      expect(local.get(k)).toBeDefined();
      expect(`${k}${local.get(k)}`).toBe(`${k}${mine.get(k)}`);
    }
  });
});
