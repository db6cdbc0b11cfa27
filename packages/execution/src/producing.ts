import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { type Keys, keysFor } from './keys.ts';
import { evalScript } from './script.ts';

/**
 * Marks each order (KEYS, one per client order id) as the holder's for ARGV[2] ms, unless another
 * producer's live mark has it (ARGV[1]: the holder's value). Also puts back a mark Redis lost.
 */
const HOLD = `
for _, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if not v or v == ARGV[1] then redis.call('SET', k, ARGV[1], 'PX', ARGV[2]) end
end
return 1`;

/** Removes the marks (KEYS) that still hold the holder's value (ARGV[1]). */
const DROP = `
local n = 0
for _, k in ipairs(KEYS) do
  if redis.call('GET', k) == ARGV[1] then n = n + redis.call('DEL', k) end
end
return n`;

export interface ProducerMarksOptions {
  redis: Redis;
  prefix: string;
  /** Names the producer in the marks' values (the ledger actor). */
  holder: string;
  /** See `ExecutionServiceOptions.producerMarkAfterMs`. @defaultValue 1000 */
  markAfterMs?: number | undefined;
  /** See `ExecutionServiceOptions.producerMarkTtlMs`. @defaultValue 10000 */
  ttlMs?: number | undefined;
  /** See `ExecutionServiceOptions.producerMarkMaxMs`. @defaultValue 60000 */
  maxHoldMs?: number | undefined;
}

/**
 * Producer marks: a producer between its ledger write of orders and the add of their jobs says so in
 * Redis, one key per order, so the reconciler does not take its orders for orphans (recorded, no job,
 * producer gone; see `Reconciler.#orphan`) while it works, however long that takes (a slow gate read, a
 * leg behind a collateral transfer). A mark is a lease: renewed every third of its TTL while the work
 * runs and dropped when it ends, it lapses on its own when the producer dies, and the reconciler then
 * cancels the orders as before.
 *
 * Renewals stop `maxHoldMs` after the work began: a producer still at work then is taken as hung, and
 * its orders as orphans once the marks lapse.
 *
 * Marking is lazy: nothing is written unless the work is still running after `markAfterMs`, so a plan
 * queued at once (the hot path: decision → venue is benchmarked) costs no Redis call for it. That is
 * safe as long as `markAfterMs` stays well under the reconciler's `orphanGraceMs`: before the grace has
 * passed the reconciler cancels nothing anyway.
 */
export class ProducerMarks {
  readonly #redis: Redis;
  readonly #keys: Keys;
  readonly #holder: string;
  readonly #markAfterMs: number;
  readonly #ttlMs: number;
  readonly #maxHoldMs: number;

  constructor(o: ProducerMarksOptions) {
    const markAfterMs = o.markAfterMs ?? 1000;
    const ttlMs = o.ttlMs ?? 10_000;
    if (!Number.isInteger(markAfterMs) || markAfterMs < 0)
      throw new RangeError(
        `producerMarkAfterMs must be a whole number of ms, at least 0; got ${markAfterMs}`,
      );
    // PX takes whole milliseconds; a renewal every third of the TTL needs a few to be meaningful
    if (!Number.isInteger(ttlMs) || ttlMs < 30)
      throw new RangeError(`producerMarkTtlMs must be a whole number of ms, at least 30; got ${ttlMs}`);
    const maxHoldMs = o.maxHoldMs ?? 60_000;
    if (!Number.isInteger(maxHoldMs) || maxHoldMs < markAfterMs)
      throw new RangeError(
        `producerMarkMaxMs must be a whole number of ms, at least producerMarkAfterMs (${markAfterMs}); got ${maxHoldMs}`,
      );
    this.#redis = o.redis;
    this.#keys = keysFor(o.prefix);
    this.#holder = o.holder;
    this.#markAfterMs = markAfterMs;
    this.#ttlMs = ttlMs;
    this.#maxHoldMs = maxHoldMs;
  }

  /**
   * Runs `work` (the producer's steps from its ledger write of these orders to the add of their jobs)
   * with the orders marked from `markAfterMs` on, and drops the marks once it ended, resolved or not
   * (when it failed before the add, the orders are orphans and the reconciler may cancel them).
   */
  async hold<T>(clientOrderIds: readonly string[], work: () => Promise<T>): Promise<T> {
    if (clientOrderIds.length === 0) return work();
    // the keys and the value are made only when marking: the hot path makes nothing but a timer
    let keys: string[] = [];
    let value: string | undefined;
    let marking: Promise<unknown> | undefined;
    let timer: NodeJS.Timeout;
    const startedMs = performance.now();
    const mark = () => {
      // A producer at work this long is hung (a call that never answers): its marks lapse, and the
      // reconciler cancels its orders, which the planner would otherwise count in flight for ever.
      if (performance.now() - startedMs > this.#maxHoldMs) return;
      if (value === undefined) {
        keys = clientOrderIds.map((id) => this.#keys.producing(id));
        value = `${this.#holder}|${randomUUID()}`;
      }
      // A mark that cannot be written (Redis unreachable) is tried again at the next renewal; the
      // producer's own ledger-to-queue steps fail on that Redis too.
      marking = evalScript(this.#redis, HOLD, keys, [value, this.#ttlMs]).catch(() => undefined);
      timer = setTimeout(mark, Math.floor(this.#ttlMs / 3));
      timer.unref();
    };
    timer = setTimeout(mark, this.#markAfterMs);
    timer.unref();
    try {
      return await work();
    } finally {
      clearTimeout(timer);
      if (value !== undefined) {
        // after the mark under way, so it cannot land after the drop; a drop that fails leaves marks
        // that lapse after their TTL (the reconciler waits that much longer for a real orphan)
        await marking;
        await evalScript(this.#redis, DROP, keys, [value]).catch(() => 0);
      }
    }
  }
}

/** Whether a producer's live mark says it is still adding this order's job (see `ProducerMarks`). */
export async function producerMarked(redis: Redis, prefix: string, clientOrderId: string): Promise<boolean> {
  return (await redis.exists(keysFor(prefix).producing(clientOrderId))) === 1;
}
