import {
  type Address,
  encodeAbiParameters,
  getAddress,
  type Hex,
  keccak256,
  type Log,
  pad,
  parseAbiParameters,
  toEventSelector,
  toHex,
} from 'viem';
import { describe, expect, it } from 'vitest';
import { eventEmitterAbi } from './abi.ts';
import { createdOrderKey, orderCancelReason, orderFillFromEvents, parseGmxEvents } from './events.ts';

// gmx-io/gmx-synthetics @ a5c0c8835182cbd84e47dca04b971239311d2f1d, transcribed by hand from
// contracts/event/EventUtils.sol: EventLogData = (AddressItems, UintItems, IntItems, BoolItems,
// Bytes32Items, BytesItems, StringItems), each (KeyValue[] items, ArrayKeyValue[] arrayItems).
const items = (t: string) => `((string,${t})[],(string,${t}[])[])`;
const EVENT_LOG_DATA = `(${['address', 'uint256', 'int256', 'bool', 'bytes32', 'bytes', 'string'].map(items).join(',')})`;
// The topic0 of EventLog1/EventLog2 as Arbitrum's EventEmitter (0xC8ee91A5…) emits them.
const EVENT_LOG1_TOPIC = '0x137a44067c8961cd7e1d876f4754a5a3a75989b4552f1843fc69c3b372def160';
const EVENT_LOG2_TOPIC = '0x468a25a7ba624ceea6e540ad6f49171b52495b648417ae91bca21676d8a24dc5';

const EMITTER: Address = '0xc8ee91a54287db53897056e12d9819156d3822fb';
const ACCOUNT: Address = '0x70997970c51812dc3a010c7d01b50e0d17dc79c8';
const ORDER_KEY: Hex = `0x${'ab'.repeat(32)}`;
const MARKET: Address = '0x47c031236e19d024b42f8ae6780e44a573170703';

type KV<T> = [string, T][];
/** EventLogData values positionally (array items empty), as the unnamed tuple type encodes them. */
function logData(d: {
  address?: KV<Address>;
  uint?: KV<bigint>;
  bool?: KV<boolean>;
  bytes32?: KV<Hex>;
  bytes?: KV<Hex>;
  string?: KV<string>;
}) {
  return [
    [d.address ?? [], []],
    [d.uint ?? [], []],
    [[], []],
    [d.bool ?? [], []],
    [d.bytes32 ?? [], []],
    [d.bytes ?? [], []],
    [d.string ?? [], []],
  ] as const;
}

/** A log as the real EventEmitter writes it: topics [sig, keccak(eventName), topic1, (topic2)]. */
function realLog(eventName: string, topics: Hex[], data: ReturnType<typeof logData>, txHash: Hex): Log {
  const encoded = encodeAbiParameters(parseAbiParameters(`address, string, ${EVENT_LOG_DATA}`), [
    '0x0000000000000000000000000000000000000001',
    eventName,
    // biome-ignore lint/suspicious/noExplicitAny: positional tuple values for a hand-written type
    data as any,
  ]);
  const sig = topics.length === 2 ? EVENT_LOG2_TOPIC : EVENT_LOG1_TOPIC;
  return {
    address: EMITTER,
    topics: [sig, keccak256(toHex(eventName)), ...topics] as [Hex, ...Hex[]],
    data: encoded,
    blockNumber: 7n,
    blockHash: `0x${'01'.repeat(32)}`,
    transactionHash: txHash,
    transactionIndex: 0,
    logIndex: 0,
    removed: false,
  };
}

const accountTopic = pad(ACCOUNT, { size: 32 });

describe('GMX EventEmitter events', () => {
  it('the ABI has the real EventLog1/EventLog2 selectors', () => {
    const sel = (n: string) => {
      const ev = eventEmitterAbi.find((x) => x.type === 'event' && x.name === n);
      if (ev?.type !== 'event') throw new Error(`${n} missing`);
      return toEventSelector(ev);
    };
    expect(sel('EventLog1')).toBe(EVENT_LOG1_TOPIC);
    expect(sel('EventLog2')).toBe(EVENT_LOG2_TOPIC);
    expect(toEventSelector(`EventLog1(address,string,string,bytes32,${EVENT_LOG_DATA})`)).toBe(
      EVENT_LOG1_TOPIC,
    );
  });

  it('finds the order key of its own OrderCreated (EventLog2: topic1 = key, topic2 = account)', () => {
    const created = realLog(
      'OrderCreated',
      [ORDER_KEY, accountTopic],
      logData({
        address: [
          ['account', ACCOUNT],
          ['market', MARKET],
        ],
        uint: [['orderType', 2n]],
        bool: [['isLong', true]],
        bytes32: [['key', ORDER_KEY]],
      }),
      `0x${'02'.repeat(32)}`,
    );
    const other = { ...created, address: '0x0000000000000000000000000000000000000bad' as Address };
    expect(createdOrderKey([created], EMITTER, ACCOUNT)).toBe(ORDER_KEY);
    // Another account's order, or the same log from a contract that is not the EventEmitter: no key.
    expect(createdOrderKey([created], EMITTER, MARKET)).toBeUndefined();
    expect(createdOrderKey([other], EMITTER, ACCOUNT)).toBeUndefined();
    const [ev] = parseGmxEvents([created], EMITTER);
    expect(ev?.items.address.get('market')).toBe(getAddress(MARKET));
    expect(ev?.items.bytes32.get('key')).toBe(ORDER_KEY);
  });

  it('reads a fill from PositionIncrease (EventLog1, topic1 = account) and PositionFeesCollected', () => {
    const tx: Hex = `0x${'03'.repeat(32)}`;
    const inc = realLog(
      'PositionIncrease',
      [accountTopic],
      logData({
        address: [['account', ACCOUNT]],
        uint: [
          ['executionPrice', 3500n * 10n ** 12n],
          ['sizeDeltaUsd', 7000n * 10n ** 30n],
          ['sizeDeltaInTokens', 2n * 10n ** 18n],
        ],
        bytes32: [['orderKey', ORDER_KEY]],
      }),
      tx,
    );
    const fees = realLog(
      'PositionFeesCollected',
      [pad(MARKET, { size: 32 })],
      logData({ uint: [['positionFeeAmount', 3_500_000n]], bytes32: [['orderKey', ORDER_KEY]] }),
      tx,
    );
    const events = parseGmxEvents([inc, fees], EMITTER);
    expect(events.map((e) => e.topic1)).toEqual([accountTopic, pad(MARKET, { size: 32 })]);
    expect(orderFillFromEvents(events, ORDER_KEY)).toEqual({
      executionPrice: 3500n * 10n ** 12n,
      sizeDeltaUsd30: 7000n * 10n ** 30n,
      sizeDeltaInTokens: 2n * 10n ** 18n,
      positionFeeAmount: 3_500_000n,
    });
    expect(orderFillFromEvents(events, `0x${'cd'.repeat(32)}`)).toBeUndefined();
  });

  it('reads why an order was cancelled: the reason string, else the custom error of reasonBytes decoded', () => {
    const cancelled = (reason: string, reasonBytes: Hex) => {
      const [ev] = parseGmxEvents(
        [
          realLog(
            'OrderCancelled',
            [ORDER_KEY, accountTopic],
            logData({ string: [['reason', reason]], bytes: [['reasonBytes', reasonBytes]] }),
            `0x${'04'.repeat(32)}`,
          ),
        ],
        EMITTER,
      );
      if (!ev) throw new Error('no event parsed');
      return orderCancelReason(ev);
    };
    // A keeper's cancellation for a custom error (OrderHandler._handleOrderError): reason "", the error
    // in reasonBytes, selector 0xe09ad0e9 of Errors.sol OrderNotFulfillableAtAcceptablePrice(uint256,uint256).
    const breached = encodeAbiParameters(parseAbiParameters('uint256, uint256'), [3601n, 3600n]);
    expect(cancelled('', `0xe09ad0e9${breached.slice(2)}`)).toBe(
      'OrderNotFulfillableAtAcceptablePrice(3601, 3600)',
    );
    // The account's own cancel: Keys.USER_INITIATED_CANCEL, no bytes.
    expect(cancelled('USER_INITIATED_CANCEL', '0x')).toBe('USER_INITIATED_CANCEL');
    // An error abi.ts does not know is named by its selector; nothing at all is just "cancelled".
    expect(cancelled('', '0xdeadbeef')).toBe('unrecognized revert data 0xdeadbeef');
    expect(cancelled('', '0x')).toBe('cancelled');
  });
});
