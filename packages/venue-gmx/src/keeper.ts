import type { EvmContext } from '@xhedge/evm';
import type { Address, Hex } from 'viem';
import { dataStoreAbi } from './abi.ts';
import { orderCancelReason, orderFillFromEvents, parseGmxEvents, requireBytes32 } from './events.ts';
import { gmxFixtureAbi } from './fixture-abi.ts';
import { GMX_KEYS } from './keys.ts';

/** What one keeper execution did to an order, from the transaction's events. */
export interface GmxKeeperResult {
  key: Hex;
  txHash: Hex;
  /** `executed` (OrderExecuted) or `cancelled` (OrderCancelled, e.g. acceptable price breached). */
  outcome: 'executed' | 'cancelled';
  account: Address;
  /** Order size, USD with 30 decimals (executed orders). */
  sizeDeltaUsd30?: bigint;
  /** Execution price, GMX units (USD per smallest token unit, 30 − decimals) (executed orders). */
  executionPrice?: bigint;
  /**
   * Why (cancelled orders): OrderCancelled's `reason`, or its `reasonBytes` decoded, e.g.
   * `MaxOpenInterestExceeded(<openInterest>, <maxOpenInterest>)` (see {@link orderCancelReason}).
   */
  reason?: string;
}

export interface GmxKeeperOptions {
  /** The keeper's own account (allowed by the DataStore). */
  ctx: EvmContext;
  dataStore: Address;
  /** The EventEmitter whose OrderExecuted/OrderCancelled (EventLog2) the results are read from. */
  eventEmitter: Address;
  /** Poll interval of `start()`. @defaultValue 500 */
  intervalMs?: number;
  /** Called with every execution error (the loop keeps going). */
  onError?: (err: unknown) => void;
  /** Called after every order the keeper executed or cancelled, with what the chain reported. */
  onResult?: (result: GmxKeeperResult) => void;
}

/**
 * The keeper of the simplified GMX: executes every pending order at the oracle price (the contract
 * cancels those whose acceptable price is breached) through the local contract's own
 * `executeOrder(bytes32)` (fixture-abi.ts; upstream keepers call `OrderHandler.executeOrder` with signed
 * prices). `runOnce()` for deterministic tests, `start()` for a background loop (local chain script).
 */
export class GmxKeeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  constructor(private readonly opts: GmxKeeperOptions) {}

  /**
   * Executes the pending orders once (the first 100 of the DataStore's ORDER_LIST, read as GMX's
   * keepers do with `getBytes32ValuesAt`); returns the keys handled.
   */
  async runOnce(): Promise<Hex[]> {
    const { publicClient, walletClient } = this.opts.ctx;
    const keys = await publicClient.readContract({
      address: this.opts.dataStore,
      abi: dataStoreAbi,
      functionName: 'getBytes32ValuesAt',
      args: [GMX_KEYS.ORDER_LIST, 0n, 100n],
    });
    const done: Hex[] = [];
    for (const key of keys) {
      try {
        const hash = await walletClient.writeContract({
          address: this.opts.dataStore,
          abi: gmxFixtureAbi,
          functionName: 'executeOrder',
          args: [key],
        });
        const receipt = await publicClient.waitForTransactionReceipt({ hash });
        done.push(key);
        if (this.opts.onResult) {
          const events = parseGmxEvents(receipt.logs, this.opts.eventEmitter);
          for (const ev of events) {
            const account = ev.items.address.get('account');
            if (!account) continue;
            if (ev.eventName === 'OrderExecuted') {
              const k = requireBytes32(ev, 'key');
              const fill = orderFillFromEvents(events, k);
              this.opts.onResult({
                key: k,
                txHash: hash,
                outcome: 'executed',
                account,
                ...(fill ? { sizeDeltaUsd30: fill.sizeDeltaUsd30, executionPrice: fill.executionPrice } : {}),
              });
            } else if (ev.eventName === 'OrderCancelled')
              this.opts.onResult({
                key: requireBytes32(ev, 'key'),
                txHash: hash,
                outcome: 'cancelled',
                account,
                reason: orderCancelReason(ev),
              });
          }
        }
      } catch (err) {
        this.opts.onError?.(err);
      }
    }
    return done;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      if (this.running) return;
      this.running = this.runOnce()
        .catch((err: unknown) => this.opts.onError?.(err))
        .finally(() => {
          this.running = undefined;
        });
    }, this.opts.intervalMs ?? 500);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
