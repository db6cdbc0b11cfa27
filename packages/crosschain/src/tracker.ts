import { ChainId, type Clock, DecimalString, EntityId, parseOrThrow, XhedgeError } from '@xhedge/core';
import { z } from 'zod';

export const TransferState = z.enum(['planned', 'sent', 'verified', 'delivered', 'failed', 'timed-out']);
export type TransferState = z.infer<typeof TransferState>;

const Hex32 = z.string().regex(/^0x[0-9a-fA-F]{64}$/, 'expected a 0x-prefixed bytes32');

/** One cross-chain message (a collateral move or an executor instruction), as operators see it. */
export const TransferRecord = z.object({
  transferId: EntityId,
  kind: z.enum(['oft-send', 'oapp-message']),
  srcChain: ChainId,
  dstChain: ChainId,
  srcEid: z.number().int().positive(),
  dstEid: z.number().int().positive(),
  asset: z.string().min(1),
  /** Exact amount in units of the asset. */
  amount: DecimalString,
  fromVenue: z.string().optional(),
  toVenue: z.string().optional(),
  guid: Hex32.optional(),
  nonce: z.string().regex(/^\d+$/).optional(),
  srcTxHash: z.string().optional(),
  dstTxHash: z.string().optional(),
  feeUsd: z.number().finite().nonnegative(),
  expectedLatencyMs: z.number().finite().nonnegative(),
  state: TransferState,
  createdAtMs: z.number().int().nonnegative(),
  /** After this instant an undelivered message is `timed-out` (and alerts), though it may still arrive. */
  deadlineMs: z.number().int().nonnegative(),
  history: z.array(
    z.object({ state: TransferState, atMs: z.number().int().nonnegative(), note: z.string().optional() }),
  ),
  error: z.string().optional(),
  /**
   * Paper bridge: when it began crediting the destination (run-clock ms). Written before the credit and
   * cleared when the credit is refused, so a poll after a failed store write or a crash finds it and
   * does not credit again.
   */
  creditBegunAtMs: z.number().int().nonnegative().optional(),
  /**
   * Paper bridge: written with `sent`, before the source is debited, and removed once the debit is made.
   * A record carrying it is never credited. Without `debitBegunAtMs` its debit was never begun (a crash,
   * or a store that saved `sent` and still reported an error), so the next send of that transfer debits
   * it; with it, see there. Records without it were debited.
   */
  debitPending: z.literal(true).optional(),
  /**
   * Paper bridge: when it began debiting the source (run-clock ms). Written after `sent` and before the
   * debit, removed with `debitPending` once the debit is made. `debitPending` without it: the debit was
   * never begun, a later send makes it. With it, in a process that did not write it (a restart): the
   * debit may or may not have been made, and is never made again.
   */
  debitBegunAtMs: z.number().int().nonnegative().optional(),
});
export type TransferRecord = z.infer<typeof TransferRecord>;

/**
 * Where tracker records live (memory, or a file: `openFileTransferStore`); records are validated on the
 * way in and out. A store a paper bridge writes has one writer: shared by two processes, each bridge
 * would debit a transfer's source (see `openFileTransferStore`, which refuses a second process).
 */
export interface TransferStore {
  get(transferId: string): Promise<unknown>;
  put(record: TransferRecord): Promise<void>;
  list(): Promise<unknown[]>;
}

export function memoryTransferStore(): TransferStore {
  const m = new Map<string, TransferRecord>();
  return {
    get: async (id) => (m.has(id) ? structuredClone(m.get(id)) : undefined),
    put: async (r) => {
      m.set(r.transferId, structuredClone(r));
    },
    list: async () => [...m.values()].map((r) => structuredClone(r)),
  };
}

/**
 * Allowed moves. A timed-out message can still be verified or delivered late: that is recorded. A
 * `planned` one past its deadline (a crash before it was sent) times out too, and then is never sent:
 * `timed-out` has no way back to `sent`, and one that was never sent cannot be verified or delivered.
 */
const TRANSITIONS: Readonly<Record<TransferState, readonly TransferState[]>> = {
  planned: ['sent', 'failed', 'timed-out'],
  sent: ['verified', 'delivered', 'failed', 'timed-out'],
  verified: ['delivered', 'failed', 'timed-out'],
  'timed-out': ['verified', 'delivered', 'failed'],
  delivered: [],
  failed: [],
};

export class TransferTransitionError extends XhedgeError {
  override name = 'TransferTransitionError';
  constructor(transferId: string, from: TransferState, to: TransferState) {
    super('TRANSFER_TRANSITION', `transfer ${transferId} cannot go from ${from} to ${to}`, {
      details: { transferId, from, to },
    });
  }
}

export class TransferNotFoundError extends XhedgeError {
  override name = 'TransferNotFoundError';
  constructor(key: string) {
    super('NOT_FOUND', `no transfer ${key}`, { details: { key } });
  }
}

/** Whether the message ever left its source (it went through `sent`); a timed-out one may not have. */
export function wasSent(record: Pick<TransferRecord, 'history'>): boolean {
  return record.history.some((h) => h.state === 'sent');
}

export type TransferListener = (record: TransferRecord, previous: TransferState | undefined) => void;

export type NewTransfer = Omit<TransferRecord, 'state' | 'createdAtMs' | 'deadlineMs' | 'history'> & {
  /** Time allowed from creation to delivery, ms. */
  timeoutMs: number;
};

/**
 * Tracks each message: planned → sent → verified → delivered, with a deadline per message after
 * which it shows as `timed-out`. Every change is written to the store before listeners hear of it.
 */
export class TransferTracker {
  readonly #store: TransferStore;
  readonly #clock: Clock;
  readonly #listeners = new Set<TransferListener>();

  constructor(o: { store: TransferStore; clock: Clock }) {
    this.#store = o.store;
    this.#clock = o.clock;
  }

  onChange(fn: TransferListener): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  async get(transferId: string): Promise<TransferRecord | undefined> {
    const raw = await this.#store.get(transferId);
    return raw === undefined ? undefined : parseOrThrow(TransferRecord, raw, 'stored transfer record');
  }

  async list(filter: { state?: TransferState } = {}): Promise<TransferRecord[]> {
    const all = (await this.#store.list()).map((r) =>
      parseOrThrow(TransferRecord, r, 'stored transfer record'),
    );
    return all
      .filter((r) => filter.state === undefined || r.state === filter.state)
      .sort((a, b) => a.createdAtMs - b.createdAtMs);
  }

  async byGuid(guid: string): Promise<TransferRecord | undefined> {
    return (await this.list()).find((r) => r.guid?.toLowerCase() === guid.toLowerCase());
  }

  /** Creates the record in `planned`; returns the existing one when the id is known (idempotent). */
  async create(t: NewTransfer): Promise<TransferRecord> {
    const existing = await this.get(t.transferId);
    if (existing) return existing;
    const now = this.#clock.nowMs();
    const { timeoutMs, ...rest } = t;
    const rec = parseOrThrow(
      TransferRecord,
      {
        ...rest,
        state: 'planned',
        createdAtMs: now,
        deadlineMs: now + Math.max(0, Math.round(timeoutMs)),
        history: [{ state: 'planned', atMs: now }],
      },
      'transfer record',
    );
    await this.#store.put(rec);
    this.#emit(rec, undefined);
    return rec;
  }

  /** Moves a transfer to `to`, merging `patch` (guid, nonce, tx hashes, error). */
  async transition(
    transferId: string,
    to: TransferState,
    patch: Partial<
      Pick<TransferRecord, 'guid' | 'nonce' | 'srcTxHash' | 'dstTxHash' | 'error' | 'debitPending'>
    > = {},
    note?: string,
  ): Promise<TransferRecord> {
    const rec = await this.get(transferId);
    if (!rec) throw new TransferNotFoundError(transferId);
    if (rec.state === to) return rec;
    if (
      !TRANSITIONS[rec.state].includes(to) ||
      (rec.state === 'timed-out' && to !== 'failed' && !wasSent(rec))
    )
      throw new TransferTransitionError(transferId, rec.state, to);
    const atMs = this.#clock.nowMs();
    const next = parseOrThrow(
      TransferRecord,
      {
        ...rec,
        ...patch,
        state: to,
        history: [...rec.history, { state: to, atMs, ...(note === undefined ? {} : { note }) }],
      },
      'transfer record',
    );
    await this.#store.put(next);
    this.#emit(next, rec.state);
    return next;
  }

  /**
   * Writes `patch` to a transfer without moving its state (no history entry, no listener call):
   * bookkeeping such as the paper bridge's credit marker. `null` removes a field.
   */
  async update(
    transferId: string,
    patch: { creditBegunAtMs?: number | null; debitPending?: true | null; debitBegunAtMs?: number | null },
  ): Promise<TransferRecord> {
    const rec = await this.get(transferId);
    if (!rec) throw new TransferNotFoundError(transferId);
    const next: Record<string, unknown> = { ...rec };
    for (const [k, v] of Object.entries(patch)) {
      if (v === null) delete next[k];
      else if (v !== undefined) next[k] = v;
    }
    const parsed = parseOrThrow(TransferRecord, next, 'transfer record');
    await this.#store.put(parsed);
    return parsed;
  }

  /**
   * Marks every undelivered message past its deadline as timed-out (only `transferId`'s when given);
   * returns them. That includes a `planned` one never sent (a crash between its record and its send):
   * it alerts like the others, and is never sent afterwards.
   */
  async checkTimeouts(transferId?: string): Promise<TransferRecord[]> {
    const now = this.#clock.nowMs();
    const out: TransferRecord[] = [];
    const records = transferId === undefined ? await this.list() : [await this.get(transferId)];
    for (const r of records) {
      if (
        r !== undefined &&
        (r.state === 'planned' || r.state === 'sent' || r.state === 'verified') &&
        now > r.deadlineMs
      ) {
        out.push(
          await this.transition(
            r.transferId,
            'timed-out',
            {},
            `not ${r.state === 'planned' ? 'sent' : 'delivered'} ${now - r.deadlineMs} ms after its deadline`,
          ),
        );
      }
    }
    return out;
  }

  /** Counts per state, for dashboards and alerts. */
  async summary(): Promise<Record<TransferState, number>> {
    const s: Record<TransferState, number> = {
      planned: 0,
      sent: 0,
      verified: 0,
      delivered: 0,
      failed: 0,
      'timed-out': 0,
    };
    for (const r of await this.list()) s[r.state] += 1;
    return s;
  }

  #emit(rec: TransferRecord, previous: TransferState | undefined): void {
    for (const fn of this.#listeners) fn(rec, previous);
  }
}
