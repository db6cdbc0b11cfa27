import { createHash } from 'node:crypto';
import { type ChainId, type Clock, Dec, deterministicId, isUsdLike, redact, XhedgeError } from '@xhedge/core';
import { assetDecimalsOf, type BridgeCostModel, bridgeFeeInAsset, layerZeroCostModel } from './cost.ts';
import { lzEid, packetGuid } from './lz.ts';
import { isPositiveDecimal } from './plan.ts';
import {
  memoryTransferStore,
  type TransferRecord,
  type TransferStore,
  TransferTracker,
  wasSent,
} from './tracker.ts';

/** What the paper bridge needs from a paper venue (PaperVenue from @xhedge/venue-paper fits). */
export interface BridgeEndpoint {
  readonly id: string;
  readonly chain: ChainId;
  debitBalance(asset: string, amount: string): Promise<unknown>;
  creditBalance(asset: string, amount: string): Promise<unknown>;
}

export interface TransferRequest {
  /** Deterministic id (a BullMQ job id); sending the same id twice moves collateral once. */
  transferId: string;
  fromVenue: string;
  toVenue: string;
  asset: string;
  /**
   * Exact, positive, units of the asset. Like an OFT, the bridge moves it truncated to the shared
   * decimals; the dust stays at the source and the record carries the amount that moves.
   */
  amount: string;
}

/** Something that moves collateral between venues and reports progress: PaperBridge, or a chain bridge. */
export interface TransferExecutor {
  send(req: TransferRequest): Promise<TransferRecord>;
  /** Advances the transfer (reads chains, delivers due paper messages) and returns its record. */
  status(transferId: string): Promise<TransferRecord | undefined>;
}

export interface PaperBridgeOptions {
  clock: Clock;
  venues: readonly BridgeEndpoint[];
  costModel: BridgeCostModel;
  tracker: TransferTracker;
  /** Endpoint ids for chains outside the mainnet table. */
  eids?: Readonly<Record<string, number>>;
  /** Share of the latency after which the message counts as verified. @defaultValue 0.6 */
  verifyFraction?: number;
  /** Deadline = this × expected latency. @defaultValue 3 */
  timeoutMultiple?: number;
  /**
   * Debit the USD fee from the source balance when the asset is USD-like: at the asset's own decimals,
   * rounded up (`bridgeFeeInAsset`). @defaultValue true
   */
  chargeFeeInAsset?: boolean;
  /**
   * Decimals of an asset the fee is taken in, where they differ from `USD_LIKE_DECIMALS` (USDC, USDT 6,
   * DAI 18), e.g. `{ USDC: 18 }` on BNB Chain. Checked when the bridge is built.
   */
  assetDecimals?: Readonly<Record<string, number>>;
  /**
   * The OFT's shared decimals: amounts cross in these (a uint64 on the wire) and the digits beyond are
   * dust that stays at the source (OFTCore `_removeDust`). @defaultValue 6 (OFTCore's default)
   */
  sharedDecimals?: number;
}

/** OFT amounts travel as uint64 in shared decimals (OFTCore `_toSD` reverts above this). */
const MAX_AMOUNT_SD = 2n ** 64n - 1n;

export class BridgeError extends XhedgeError {
  override name = 'BridgeError';
}

/**
 * A simulated LayerZero OFT bridge between paper venues. `send` records the transfer `sent` and then
 * debits the source (the OFT burns or locks on send), so a retry never debits twice; the message is verified after `verifyFraction` of the modelled latency and
 * delivered (the destination credited) after all of it, on the injected Clock. `poll()` (or
 * `status`) performs what is due, so the bridge is deterministic under a ManualClock and needs no timers.
 */
export class PaperBridge implements TransferExecutor {
  readonly #o: PaperBridgeOptions;
  readonly #venues: Map<string, BridgeEndpoint>;
  /** Last outbound nonce per pathway (sender, srcEid, receiver, dstEid), as an endpoint keeps it. */
  readonly #nonces = new Map<string, bigint>();
  /**
   * Transfers whose debit the venue refused but whose `failed` record could not be written yet (error
   * to record, by id): `sent` in the store, nothing debited, so never credited.
   */
  readonly #undebited = new Map<string, string>();
  /**
   * Transfers whose credit marker (`creditBegunAtMs`) is stored but whose credit the venue refused and
   * the marker's removal failed: their credit is still to make.
   */
  readonly #uncredited = new Set<string>();
  /**
   * Transfers whose debit is due in this process: from before their debit mark (`debitBegunAtMs`) is
   * written until the debit is made or refused. A mark written but reported failed is still debited here.
   */
  readonly #debitDue = new Set<string>();
  /** Transfers this process debited whose `debitPending` mark is not cleared yet: never debited again. */
  readonly #debitedHere = new Set<string>();
  /** Transfers this process credited whose `delivered` record is not written yet. */
  readonly #creditedHere = new Set<string>();
  /** Sends and polls run one at a time (see {@link PaperBridge.#exclusive}). */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(o: PaperBridgeOptions) {
    // A NaN here failed late or not at all: sharedDecimals 6.5 threw decimal.js's "Invalid argument" at
    // each send, a NaN verifyFraction skipped `verified` silently, a NaN timeoutMultiple gave NaN deadlines.
    const bad = (name: string, value: unknown, want: string) =>
      new BridgeError('BRIDGE_BAD_OPTION', `paper bridge option ${name} ${String(value)} must be ${want}`, {
        details: { option: name, value: String(value) },
      });
    const { sharedDecimals, verifyFraction, timeoutMultiple } = o;
    if (
      sharedDecimals !== undefined &&
      !(Number.isInteger(sharedDecimals) && sharedDecimals >= 0 && sharedDecimals <= 18)
    )
      throw bad('sharedDecimals', sharedDecimals, 'a whole number from 0 to 18');
    if (verifyFraction !== undefined && !(verifyFraction >= 0 && verifyFraction <= 1))
      throw bad('verifyFraction', verifyFraction, 'a fraction from 0 to 1');
    if (timeoutMultiple !== undefined && !(Number.isFinite(timeoutMultiple) && timeoutMultiple > 0))
      throw bad('timeoutMultiple', timeoutMultiple, 'a finite number above 0');
    for (const asset of Object.keys(o.assetDecimals ?? {})) assetDecimalsOf(asset, o.assetDecimals);
    this.#o = o;
    this.#venues = new Map(o.venues.map((v) => [v.id, v]));
  }

  /** The fee debited with a transfer's amount: in the asset, at its decimals, rounded up; else none. */
  #feeInAsset(rec: Pick<TransferRecord, 'asset' | 'feeUsd'>): Dec {
    return (this.#o.chargeFeeInAsset ?? true) && isUsdLike(rec.asset)
      ? new Dec(bridgeFeeInAsset(rec.feeUsd, rec.asset, this.#o.assetDecimals))
      : new Dec(0);
  }

  get tracker(): TransferTracker {
    return this.#o.tracker;
  }

  /** The ids of the venues it connects. */
  get venueIds(): string[] {
    return [...this.#venues.keys()];
  }

  /**
   * Connects one more venue (a paper venue added while the run goes). Its chain must have a LayerZero
   * endpoint id (checked now, not at the first send); an id the bridge has already is refused.
   */
  addVenue(v: BridgeEndpoint): void {
    if (this.#venues.has(v.id))
      throw new BridgeError('BRIDGE_DUPLICATE_VENUE', `paper bridge connects venue ${v.id} already`, {
        details: { venue: v.id },
      });
    lzEid(v.chain, this.#o.eids);
    this.#venues.set(v.id, v);
  }

  #venue(id: string): BridgeEndpoint {
    const v = this.#venues.get(id);
    if (!v)
      throw new BridgeError('BRIDGE_UNKNOWN_VENUE', `paper bridge does not know venue ${id}`, {
        details: { venue: id },
      });
    return v;
  }

  /**
   * Sends and polls take turns. Two sends of one id both found no record and both debited the source
   * (one credit: the rest lost); two polls both found a due message `sent` and both credited it. The
   * BullMQ worker runs one job at a time, but a backtest, a second worker or a direct caller need not.
   */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  send(req: TransferRequest): Promise<TransferRecord> {
    return this.#exclusive(() => this.#send(req));
  }

  async #send(req: TransferRequest): Promise<TransferRecord> {
    let known = await this.#o.tracker.get(req.transferId);
    const from = this.#venue(req.fromVenue);
    const to = this.#venue(req.toVenue);
    if (!isPositiveDecimal(req.amount))
      throw new BridgeError('BRIDGE_BAD_AMOUNT', `transfer amount ${req.amount} must be a positive decimal`, {
        details: { transferId: req.transferId, amount: req.amount },
      });
    // What an OFT moves: the amount without its dust, which must still be at least one shared unit and
    // fit the uint64 of the message. Debit and credit both use this exact amount.
    const sharedDecimals = this.#o.sharedDecimals ?? 6;
    const amount = new Dec(req.amount).toDecimalPlaces(sharedDecimals, Dec.ROUND_DOWN);
    const amountSD = BigInt(amount.mul(new Dec(10).pow(sharedDecimals)).toFixed(0));
    if (amountSD === 0n || amountSD > MAX_AMOUNT_SD)
      throw new BridgeError(
        'BRIDGE_BAD_AMOUNT',
        `transfer amount ${req.amount} is ${amountSD === 0n ? 'below one unit' : 'beyond the uint64'} of the OFT's ${sharedDecimals} shared decimals`,
        { details: { transferId: req.transferId, amount: req.amount, sharedDecimals } },
      );
    // Idempotent on the id for the same move; the same id asking for another move is refused, not
    // answered with the record of the first (the caller would wait on a transfer it did not ask for).
    if (
      known &&
      (known.fromVenue !== from.id ||
        known.toVenue !== to.id ||
        known.asset !== req.asset ||
        !new Dec(known.amount).eq(amount))
    )
      throw new BridgeError(
        'BRIDGE_ID_REUSED',
        `transfer ${req.transferId} is already planned as ${known.amount} ${known.asset} ${known.fromVenue} → ${known.toVenue}`,
        { details: { transferId: req.transferId } },
      );
    // A record left `planned` (a crash before its send) is sent now, unless its deadline has passed: then
    // it times out (and alerts) here as in checkTimeouts, and a message that timed out before it was sent
    // is never sent. Its hedge was planned for then; it fails instead, and no collateral moves.
    if (known?.state === 'planned' && this.#o.clock.nowMs() > known.deadlineMs)
      known = (await this.#o.tracker.checkTimeouts(known.transferId))[0] ?? known;
    if (known?.state === 'timed-out' && !wasSent(known))
      return this.#o.tracker.transition(known.transferId, 'failed', {
        error: 'timed out before it was sent: not sent after its deadline',
      });
    // A debit whose `failed` record could not be written (see below): that write again, never a send.
    if (known && this.#undebited.has(known.transferId)) return this.#failUndebited(known.transferId);
    // `sent` written but its debit never made (a crash, or a store that saved it and still threw): the
    // debit now, once; `debitPending` is what says so (see TransferRecord). One whose debit an earlier
    // process began (`debitBegunAtMs`) fails as unknown there instead: it may have been made.
    if (known?.debitPending && known.state !== 'failed' && known.state !== 'delivered')
      return this.#debit(known, from);
    if (known && known.state !== 'planned') return known;
    const cost = this.#o.costModel.estimate({
      srcChain: from.chain,
      dstChain: to.chain,
      asset: req.asset,
      amount: amount.toNumber(),
    });
    // refused here (unknown decimals, a NaN fee), before anything is written, not at the debit
    this.#feeInAsset({ asset: req.asset, feeUsd: cost.feeUsd });
    const srcEid = lzEid(from.chain, this.#o.eids);
    const dstEid = lzEid(to.chain, this.#o.eids);
    const rec =
      known ??
      (await this.#o.tracker.create({
        transferId: req.transferId,
        kind: 'oft-send',
        srcChain: from.chain,
        dstChain: to.chain,
        srcEid,
        dstEid,
        asset: req.asset,
        amount: amount.toFixed(),
        fromVenue: from.id,
        toVenue: to.id,
        feeUsd: cost.feeUsd,
        expectedLatencyMs: cost.latencyMs,
        timeoutMs: Math.max(cost.latencyMs * (this.#o.timeoutMultiple ?? 3), 1000),
      }));
    // `sent` (nonce, GUID, `debitPending`) is written BEFORE the debit: a record still `planned` has
    // debited nothing, so a retry after a failed write (or a crash) sends it once more and debits once.
    // Debiting first left the record `planned` when the `sent` write failed, and the retry debited again
    // (1000 − 2 × 100). A `sent` record still marked `debitPending` (its debit not begun) is debited by
    // the next send (and never credited before); a debit the venue refuses moves the record on to `failed`.
    const sender = pseudoAddress(from.id);
    const receiver = pseudoAddress(to.id);
    const nonce = await this.#nextNonce(srcEid, from.id, dstEid, to.id);
    const guid = packetGuid({ nonce, srcEid, sender, dstEid, receiver });
    const sent = await this.#o.tracker.transition(rec.transferId, 'sent', {
      guid,
      nonce: nonce.toString(),
      srcTxHash: deterministicId('papertx', req.transferId),
      debitPending: true,
    });
    return this.#debit(sent, from);
  }

  /**
   * Debits the source of a `sent` transfer still marked `debitPending` (amount plus the fee its record
   * states, when the fee is taken in the asset), then clears the mark. This process remembers the debit
   * until the mark is cleared, so a failed clearing never debits twice here.
   *
   * The debit is marked in the record (`debitBegunAtMs`) BEFORE it is made, like the credit: without
   * that mark a restart found `debitPending` after a crash between the debit and the clearing of
   * `debitPending` (or a clearing whose write failed) and debited the source a second time (1000 − 2 ×
   * 100.x, one credit). A mark this process did not write (a restart) leaves the debit unknown: the
   * transfer fails, loudly, for the source to be reconciled by hand, never debited again nor credited. A
   * record `sent` without the mark (a crash before it) was never debited and is debited now, once.
   */
  async #debit(rec: TransferRecord, from: BridgeEndpoint): Promise<TransferRecord> {
    if (!this.#debitedHere.has(rec.transferId)) {
      const amount = new Dec(rec.amount);
      // at the asset's decimals, rounded up: 12 decimals debited 100.1234567 USDC, below a USDC unit
      const fee = this.#feeInAsset(rec);
      const total = amount.add(fee);
      if (rec.debitBegunAtMs !== undefined && !this.#debitDue.has(rec.transferId))
        return this.#o.tracker.transition(rec.transferId, 'failed', {
          error: debitUnknown(rec, from.id, total.toFixed()),
        });
      this.#debitDue.add(rec.transferId);
      if (rec.debitBegunAtMs === undefined)
        await this.#o.tracker.update(rec.transferId, { debitBegunAtMs: this.#o.clock.nowMs() });
      try {
        await from.debitBalance(rec.asset, total.toFixed());
      } catch (cause) {
        this.#debitDue.delete(rec.transferId);
        const error = redact(`debit on ${from.id} failed: ${String(cause)}`);
        this.#undebited.set(rec.transferId, error);
        await this.#failUndebited(rec.transferId);
        throw new BridgeError(
          'BRIDGE_DEBIT_FAILED',
          `cannot debit ${total.toFixed()} ${rec.asset} (amount ${amount.toFixed()} + fee ${fee.toFixed()}) from ${from.id}`,
          {
            cause,
            details: { transferId: rec.transferId, amount: amount.toFixed(), fee: fee.toFixed() },
          },
        );
      }
      this.#debitDue.delete(rec.transferId);
      this.#debitedHere.add(rec.transferId);
    }
    const done = await this.#o.tracker.update(rec.transferId, { debitPending: null, debitBegunAtMs: null });
    this.#debitedHere.delete(rec.transferId);
    return done;
  }

  /**
   * Moves a transfer whose debit was refused from `sent` to `failed`. Until that write succeeds the id is
   * kept in memory: a send or a poll retries the write, and a poll never credits it.
   */
  async #failUndebited(transferId: string): Promise<TransferRecord> {
    const error = this.#undebited.get(transferId) ?? 'debit failed';
    const failed = await this.#o.tracker.transition(transferId, 'failed', { error });
    this.#undebited.delete(transferId);
    return failed;
  }

  /**
   * The next outbound nonce of a pathway, taken. An endpoint's nonce never repeats; an in-memory counter
   * restarted at 1 with the bridge, so over a kept store a new transfer took the GUID of an old one
   * (same nonce, same path): the first use of a pathway resumes from the tracker's records.
   */
  async #nextNonce(srcEid: number, fromVenue: string, dstEid: number, toVenue: string): Promise<bigint> {
    const pathway = JSON.stringify([srcEid, fromVenue, dstEid, toVenue]);
    let last = this.#nonces.get(pathway);
    if (last === undefined) {
      last = 0n;
      for (const r of await this.#o.tracker.list())
        if (
          r.nonce !== undefined &&
          r.srcEid === srcEid &&
          r.dstEid === dstEid &&
          r.fromVenue === fromVenue &&
          r.toVenue === toVenue &&
          BigInt(r.nonce) > last
        )
          last = BigInt(r.nonce);
    }
    // taken at once: a `sent` write that fails leaves a gap, which is harmless; reusing the number after a
    // write that failed but was saved would give two records one GUID
    const nonce = last + 1n;
    this.#nonces.set(pathway, nonce);
    return nonce;
  }

  async status(transferId: string): Promise<TransferRecord | undefined> {
    await this.poll();
    return this.#o.tracker.get(transferId);
  }

  /**
   * Verifies and delivers what is due now; marks overdue messages timed-out. Returns deliveries.
   * Each message stands alone: a destination that cannot be credited now (a halted paper venue) keeps
   * its message in flight, retried at the next poll and timed out at its deadline, while the others are
   * delivered. Records of venues this bridge does not connect (another executor's, an earlier run's)
   * are left alone.
   */
  poll(): Promise<TransferRecord[]> {
    return this.#exclusive(() => this.#poll());
  }

  async #poll(): Promise<TransferRecord[]> {
    const now = this.#o.clock.nowMs();
    const delivered: TransferRecord[] = [];
    const frac = this.#o.verifyFraction ?? 0.6;
    for (const r of await this.#o.tracker.list()) {
      if (r.state !== 'sent' && r.state !== 'verified' && r.state !== 'timed-out') continue;
      // timed out while `planned`: nothing left the source, nothing arrives
      if (!wasSent(r)) continue;
      if (this.#undebited.has(r.transferId)) {
        await this.#failUndebited(r.transferId);
        continue;
      }
      // written `sent` but not debited (yet): nothing left the source, so nothing arrives. Its send is
      // retried (which debits it); one never retried fails at its deadline, nothing moved. One whose debit
      // was begun by an earlier process (a crash after its mark) may have been debited: it fails unknown.
      if (r.debitPending && !this.#debitedHere.has(r.transferId)) {
        if (now > r.deadlineMs) {
          const unknown = r.debitBegunAtMs !== undefined && !this.#debitDue.has(r.transferId);
          await this.#o.tracker.transition(r.transferId, 'failed', {
            error: unknown
              ? debitUnknown(r, r.fromVenue ?? 'its source', undefined)
              : 'sent but never debited (a crash or a failed write before the debit): nothing moved',
          });
          this.#debitDue.delete(r.transferId);
        }
        continue;
      }
      if (r.debitPending) {
        await this.#o.tracker.update(r.transferId, { debitPending: null, debitBegunAtMs: null });
        this.#debitedHere.delete(r.transferId);
      }
      const to = r.kind === 'oft-send' && r.toVenue !== undefined ? this.#venues.get(r.toVenue) : undefined;
      if (!to) continue;
      const sentAt = r.history.find((h) => h.state === 'sent')?.atMs ?? r.createdAtMs;
      if (
        r.state !== 'verified' &&
        !r.history.some((h) => h.state === 'verified') &&
        now >= sentAt + r.expectedLatencyMs * frac
      ) {
        await this.#o.tracker.transition(r.transferId, 'verified');
      }
      if (now < sentAt + r.expectedLatencyMs) continue;
      // The credit is marked in the record BEFORE it is made, and a marked record is not credited again:
      // crediting first credited twice when the `delivered` write failed (or the process died) between
      // them. The credit is due in this process (`#uncredited`) from before its mark is written until it
      // is made, so a mark written but reported failed is still credited here, once. A credit the venue
      // refuses (a halted venue) clears the mark and is retried at the next poll. A mark this process did
      // not write and no credit it made (a crash in between) leaves the credit unknown: the transfer
      // fails, loudly, for the destination to be reconciled by hand, never credited a second time.
      if (r.creditBegunAtMs === undefined || this.#uncredited.has(r.transferId)) {
        this.#uncredited.add(r.transferId);
        if (r.creditBegunAtMs === undefined)
          await this.#o.tracker.update(r.transferId, { creditBegunAtMs: now });
        try {
          await to.creditBalance(r.asset, r.amount);
        } catch {
          await this.#o.tracker.update(r.transferId, { creditBegunAtMs: null });
          this.#uncredited.delete(r.transferId);
          continue;
        }
        this.#uncredited.delete(r.transferId);
        this.#creditedHere.add(r.transferId);
      } else if (!this.#creditedHere.has(r.transferId)) {
        await this.#o.tracker.transition(r.transferId, 'failed', {
          error: `credit of ${r.amount} ${r.asset} on ${to.id} unknown: its mark was written before a crash or a failed write; reconcile ${to.id} by hand`,
        });
        continue;
      }
      delivered.push(
        await this.#o.tracker.transition(r.transferId, 'delivered', {
          dstTxHash: deterministicId('papertx', r.transferId, 'dst'),
        }),
      );
      this.#creditedHere.delete(r.transferId);
    }
    await this.#o.tracker.checkTimeouts();
    return delivered;
  }
}

export interface PaperBridgeForVenuesOptions
  extends Partial<Omit<PaperBridgeOptions, 'clock' | 'venues' | 'tracker'>> {
  /**
   * Where transfer records live: `openFileTransferStore(file)` keeps them across restarts, for one process
   * at a time (the bridge's exactly-once needs a single writer). @defaultValue in memory (records of one
   * process run)
   */
  store?: TransferStore;
}

/**
 * The paper bridge of a run or a backtest, ready made: every paper venue (anything with `id`, `chain`,
 * `debitBalance`, `creditBalance`, e.g. the result of `createPaperVenues`) is an endpoint, fees and
 * latency follow {@link layerZeroCostModel} unless `costModel` says otherwise, and a tracker over
 * `store` (memory by default) records every message. Deliveries happen in `poll()`/`status()` on
 * `clock`, so the caller drives it: from `startTransferWorker`, or by calling `poll()` each tick.
 */
export function createPaperBridgeForVenues(
  venues: readonly BridgeEndpoint[],
  clock: Clock,
  options: PaperBridgeForVenuesOptions = {},
): PaperBridge {
  const { store, costModel, ...rest } = options;
  const tracker = new TransferTracker({ store: store ?? memoryTransferStore(), clock });
  return new PaperBridge({ ...rest, clock, venues, costModel: costModel ?? layerZeroCostModel(), tracker });
}

/** The error of a transfer whose debit a crash (or a lost write) left unknown. */
function debitUnknown(rec: TransferRecord, fromVenue: string, total: string | undefined): string {
  const what = total === undefined ? `${rec.amount} ${rec.asset} (and its fee)` : `${total} ${rec.asset}`;
  return `debit of ${what} on ${fromVenue} unknown: its mark was written before a crash or a failed write, and the debit is never made twice; nothing was credited; reconcile ${fromVenue} by hand`;
}

/** A stable 20-byte pseudo address for a paper venue, so paper GUIDs are computed like real ones. */
function pseudoAddress(venueId: string): string {
  return `0x${createHash('sha256').update(`xhedge-paper:${venueId}`).digest('hex').slice(0, 40)}`;
}
