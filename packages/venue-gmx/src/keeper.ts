import type { EvmContext } from '@xhedge/evm';
import { type Address, type Hex, parseEventLogs } from 'viem';
import { dataStoreAbi } from './abi.ts';

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
  /** The contract's reason (cancelled orders). */
  reason?: string;
}

export interface GmxKeeperOptions {
  /** The keeper's own account (allowed by the DataStore). */
  ctx: EvmContext;
  dataStore: Address;
  /** Poll interval of `start()`. @defaultValue 500 */
  intervalMs?: number;
  /** Called with every execution error (the loop keeps going). */
  onError?: (err: unknown) => void;
  /** Called after every order the keeper executed or cancelled, with what the chain reported. */
  onResult?: (result: GmxKeeperResult) => void;
}

/**
 * The keeper of the simplified GMX: executes every pending order at the oracle price (the contract
 * cancels those whose acceptable price is breached). `runOnce()` for deterministic tests, `start()`
 * for a background loop (local chain script).
 */
export class GmxKeeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  constructor(private readonly opts: GmxKeeperOptions) {}

  /** Executes all pending orders once; returns the keys handled. */
  async runOnce(): Promise<Hex[]> {
    const { publicClient, walletClient } = this.opts.ctx;
    const keys = await publicClient.readContract({
      address: this.opts.dataStore,
      abi: dataStoreAbi,
      functionName: 'getOrderKeys',
      args: [0n, 100n],
    });
    const done: Hex[] = [];
    for (const key of keys) {
      try {
        const hash = await walletClient.writeContract({
          address: this.opts.dataStore,
          abi: dataStoreAbi,
          functionName: 'executeOrder',
          args: [key],
        });
        const receipt = await publicClient.waitForTransactionReceipt({ hash });
        done.push(key);
        if (this.opts.onResult) {
          for (const ev of parseEventLogs({ abi: dataStoreAbi, logs: receipt.logs })) {
            if (ev.eventName === 'OrderExecuted')
              this.opts.onResult({
                key: ev.args.key,
                txHash: hash,
                outcome: 'executed',
                account: ev.args.account,
                sizeDeltaUsd30: ev.args.sizeDeltaUsd,
                executionPrice: ev.args.executionPrice,
              });
            else if (ev.eventName === 'OrderCancelled')
              this.opts.onResult({
                key: ev.args.key,
                txHash: hash,
                outcome: 'cancelled',
                account: ev.args.account,
                reason: ev.args.reason,
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
