import { decodeRevert } from '@xhedge/evm';
import { type Address, type Hex, type Log, pad, parseEventLogs } from 'viem';
import { eventEmitterAbi, gmxErrorAbi } from './abi.ts';

/** The key → value items of one `EventUtils.EventLogData` (single items only; array items are skipped). */
export interface GmxEventItems {
  address: Map<string, Address>;
  uint: Map<string, bigint>;
  int: Map<string, bigint>;
  bool: Map<string, boolean>;
  bytes32: Map<string, Hex>;
  bytes: Map<string, Hex>;
  string: Map<string, string>;
}

/** One EventLog/EventLog1/EventLog2 of the GMX EventEmitter, decoded. */
export interface GmxEvent {
  /** e.g. `OrderCreated`, `OrderExecuted`, `OrderCancelled`, `PositionIncrease`. */
  eventName: string;
  /** Indexed topic1 (order key for Order* events, account for Position* events), if any. */
  topic1?: Hex;
  /** Indexed topic2 (the account for Order* events), if any. */
  topic2?: Hex;
  items: GmxEventItems;
  transactionHash: Hex | null;
  blockNumber: bigint | null;
}

type RawEventLogData = {
  addressItems: { items: readonly { key: string; value: Address }[] };
  uintItems: { items: readonly { key: string; value: bigint }[] };
  intItems: { items: readonly { key: string; value: bigint }[] };
  boolItems: { items: readonly { key: string; value: boolean }[] };
  bytes32Items: { items: readonly { key: string; value: Hex }[] };
  bytesItems: { items: readonly { key: string; value: Hex }[] };
  stringItems: { items: readonly { key: string; value: string }[] };
};

const toMap = <T>(items: readonly { key: string; value: T }[]) => new Map(items.map((i) => [i.key, i.value]));

/** The single (non-array) items of an EventLogData, by kind and key. */
export function eventItems(d: RawEventLogData): GmxEventItems {
  return {
    address: toMap(d.addressItems.items),
    uint: toMap(d.uintItems.items),
    int: toMap(d.intItems.items),
    bool: toMap(d.boolItems.items),
    bytes32: toMap(d.bytes32Items.items),
    bytes: toMap(d.bytesItems.items),
    string: toMap(d.stringItems.items),
  };
}

/**
 * Decodes the EventEmitter's logs among `logs` (others, and logs from any address but `eventEmitter`,
 * are ignored: anyone can emit an event named EventLog2). `names` keeps only those event names.
 */
export function parseGmxEvents(logs: Log[], eventEmitter: Address, names?: readonly string[]): GmxEvent[] {
  const emitter = eventEmitter.toLowerCase();
  const own = logs.filter((l) => l.address.toLowerCase() === emitter);
  const out: GmxEvent[] = [];
  for (const ev of parseEventLogs({ abi: eventEmitterAbi, logs: own, strict: true })) {
    if (names && !names.includes(ev.args.eventName)) continue;
    const e: GmxEvent = {
      eventName: ev.args.eventName,
      items: eventItems(ev.args.eventData),
      transactionHash: ev.transactionHash,
      blockNumber: ev.blockNumber,
    };
    if (ev.eventName === 'EventLog1' || ev.eventName === 'EventLog2') e.topic1 = ev.args.topic1;
    if (ev.eventName === 'EventLog2') e.topic2 = ev.args.topic2;
    out.push(e);
  }
  return out;
}

/** An account as GMX indexes it in a topic (`Cast.toBytes32(address)`: left-padded to 32 bytes). */
export function accountTopic(account: Address): Hex {
  return pad(account.toLowerCase() as Hex, { size: 32 });
}

/**
 * The key of `account`'s order created in a transaction, from its receipt logs: topic1 of the
 * EventEmitter's `OrderCreated` EventLog2 whose topic2 is the account (OrderEventUtils.emitOrderCreated).
 */
export function createdOrderKey(logs: Log[], eventEmitter: Address, account: Address): Hex | undefined {
  return createdOrder(logs, eventEmitter, account)?.key;
}

/**
 * {@link createdOrderKey} with the order's `executionFee` item (wei; undefined when the event has none),
 * as OrderEventUtils.emitOrderCreated reports it.
 */
export function createdOrder(
  logs: Log[],
  eventEmitter: Address,
  account: Address,
): { key: Hex; executionFeeWei: bigint | undefined } | undefined {
  const me = accountTopic(account);
  const created = parseGmxEvents(logs, eventEmitter, ['OrderCreated']).find(
    (e) => e.topic2?.toLowerCase() === me,
  );
  if (!created?.topic1) return undefined;
  return { key: created.topic1, executionFeeWei: created.items.uint.get('executionFee') };
}

/**
 * The execution fee refunded to `receiver` in a keeper's transaction, wei: the `refundFeeAmount` of the
 * EventEmitter's `ExecutionFeeRefund` EventLog1 events whose topic1 is the receiver
 * (GasUtils.emitExecutionFeeRefund), summed; 0 when there are none (the local contract's keeper keeps the
 * whole fee).
 */
export function executionFeeRefundWei(events: readonly GmxEvent[], receiver: Address): bigint {
  const me = accountTopic(receiver);
  let sum = 0n;
  for (const e of events)
    if (e.eventName === 'ExecutionFeeRefund' && e.topic1?.toLowerCase() === me)
      sum += e.items.uint.get('refundFeeAmount') ?? 0n;
  return sum;
}

/** A bytes32 item that must be there; names the event and key when it is not. */
export function requireBytes32(e: GmxEvent, key: string): Hex {
  const v = e.items.bytes32.get(key);
  if (v === undefined) throw new Error(`GMX ${e.eventName} event has no bytes32 item "${key}"`);
  return v;
}

/** A uint item that must be there; names the event and key when it is not. */
export function requireUint(e: GmxEvent, key: string): bigint {
  const v = e.items.uint.get(key);
  if (v === undefined) throw new Error(`GMX ${e.eventName} event has no uint item "${key}"`);
  return v;
}

/**
 * Why an order was cancelled, from its OrderCancelled (OrderEventUtils.emitOrderCancelled): the `reason`
 * string when there is one (`USER_INITIATED_CANCEL`, or a `require` message), else the custom error in
 * `reasonBytes` decoded, e.g. `OrderNotFulfillableAtAcceptablePrice(<price>, <acceptablePrice>)`: a keeper
 * cancelling for a custom error leaves `reason` empty (OrderHandler._handleOrderError takes it from
 * ErrorUtils.getRevertMessage, which reads only `Error(string)`). Data no known error matches is named
 * by its selector; an event with neither gives `cancelled`.
 */
export function orderCancelReason(e: GmxEvent): string {
  const reason = e.items.string.get('reason');
  if (reason) return reason;
  const bytes = e.items.bytes.get('reasonBytes');
  if (!bytes || bytes === '0x') return 'cancelled';
  return decodeRevert(bytes, gmxErrorAbi).reason;
}

/** What an execution transaction reports about one order's fill (PositionIncrease/Decrease, fees). */
export interface GmxOrderFill {
  /** Execution price, GMX units (USD per smallest token unit, 30 − decimals). */
  executionPrice: bigint;
  sizeDeltaUsd30: bigint;
  sizeDeltaInTokens: bigint;
  /** Position fee, collateral token units (0 when the transaction has no PositionFeesCollected for it). */
  positionFeeAmount: bigint;
}

/** The fill of order `orderKey` from its execution transaction's EventEmitter events, if it has one. */
export function orderFillFromEvents(events: readonly GmxEvent[], orderKey: Hex): GmxOrderFill | undefined {
  const k = orderKey.toLowerCase();
  const mine = (e: GmxEvent) => e.items.bytes32.get('orderKey')?.toLowerCase() === k;
  const pos = events.find(
    (e) => (e.eventName === 'PositionIncrease' || e.eventName === 'PositionDecrease') && mine(e),
  );
  if (!pos) return undefined;
  const fees = events.find((e) => e.eventName === 'PositionFeesCollected' && mine(e));
  return {
    executionPrice: requireUint(pos, 'executionPrice'),
    sizeDeltaUsd30: requireUint(pos, 'sizeDeltaUsd'),
    sizeDeltaInTokens: requireUint(pos, 'sizeDeltaInTokens'),
    positionFeeAmount: fees ? requireUint(fees, 'positionFeeAmount') : 0n,
  };
}
