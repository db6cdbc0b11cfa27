import path from 'node:path';
import {
  type Balance,
  type Clock,
  Dec,
  type Fill,
  type Order,
  type OrderStatus,
  TERMINAL_ORDER_STATUSES,
  XhedgeError,
} from '@xhedge/core';
import {
  InvalidOrderError,
  NonceError,
  type OrderRequest,
  type VenueError,
  type VenueHealth,
} from '@xhedge/venue';
import { type Abi, type Address, erc20Abi, type Hex, type TransactionReceipt } from 'viem';
import type { z } from 'zod';
import type { RecordedSpend, SpendCaps, SpendReservation } from './approvals.ts';
import { type EvmContext, type EvmVenueConfigLike, evmContextFromVenueConfig } from './clients.ts';
import {
  HistoricalStateUnavailableError,
  type NonceScan,
  type RevertClassifier,
  toVenueError,
} from './errors.ts';
import { GasPolicy } from './gas.ts';
import type { SecretSources } from './secrets.ts';
import { JsonFileOrderStore, type OrderRecordStore } from './store.ts';
import {
  type KnownAtNonce,
  type MinedAtNonce,
  type SendOptions,
  type SentTx,
  type SignedTxInfo,
  type TxRequest,
  TxSender,
  txCallDigest,
} from './tx.ts';

/**
 * The fields every on-chain adapter persists per client order id (JSON-safe: bigints as strings).
 * Venues extend it with their own references (order key, position id).
 */
export interface OnChainOrderRecord {
  clientOrderId: string;
  instrument: string;
  side: 'buy' | 'sell';
  sizeBase: string;
  limitPriceUsd?: string;
  reduceOnly: boolean;
  orderType: 'market' | 'limit' | 'ioc';
  status: OrderStatus;
  txHash?: Hex;
  nonce?: number;
  maxFeePerGas?: string;
  maxPriorityFeePerGas?: string;
  /**
   * {@link txCallDigest} of the order's transaction (set before broadcast): tells a re-signed copy of it
   * (a speed-up at its nonce, unknown to this record) from another transaction that took the nonce.
   */
  txCallDigest?: Hex;
  /** Hash of the latest nonce-replacement cancel, when one was sent (every one is in `nonceTxs`). */
  cancelTxHash?: Hex;
  /**
   * Every transaction signed at the order's nonce, oldest first: the order's own, its speed-ups, its
   * cancels, by any process, each added with its hash and fees before it is broadcast (write-ahead). A
   * replacement outbids the highest fees here ({@link replaceByNonce}, {@link speedUpByNonce}), and the one
   * that is mined decides the order ({@link applySentTxStatus}). Absent on records written before it was
   * kept: {@link recordedNonceTxs} reads those from `txHash` (with the record's fees) and `cancelTxHash`.
   */
  nonceTxs?: RecordedNonceTx[];
  filledSizeBase: string;
  avgFillPriceUsd?: string;
  /** The venue's trading fee, USD (the fill's `feeUsd`). */
  feeUsd?: number;
  /**
   * What the order cost in gas and execution fees, USD (the fill's `gasUsd`), when the adapter records it.
   * @defaultValue 0
   */
  gasUsd?: number;
  error?: string;
  /** What the order may pull from the wallet against the venue's spend cap (set before broadcast). */
  spend?: RecordedSpend;
  /**
   * A block scan for the transaction that took the order's nonce that found nothing (see
   * {@link applySentTxStatus}): what it read, so that later reconciles do not read it again.
   * Absent on records written before it was kept (they scan anew).
   */
  nonceScan?: RecordedNonceScan;
  createdAtMs: number;
  updatedAtMs: number;
}

/** A transaction signed at an order's nonce, as its record keeps it (`nonceTxs`; JSON-safe). */
export interface RecordedNonceTx {
  /**
   * `original`: the order's own transaction; `speed-up`: its call re-signed with higher fees; `cancel`: a
   * 0-value self-transfer that takes the nonce so that the order never executes.
   */
  kind: 'original' | 'speed-up' | 'cancel';
  hash: Hex;
  /**
   * Its fees, wei, as decimal strings. Absent only on a cancel carried over from a record written before
   * they were kept (`cancelTxHash`): a replacement then asks the node for them.
   */
  maxFeePerGas?: string;
  maxPriorityFeePerGas?: string;
  /** Its gas limit, decimal string. */
  gasLimit?: string;
  /** When it was signed (ms since epoch); absent on entries carried over from older records. */
  signedAtMs?: number;
  /**
   * Whether a speed-up or cancel of it (12.5 % more on both fees) fit under the gas policy's fee cap it
   * was signed under (`SignedTxInfo.replaceableUnderCap`): false for a first send signed up to the cap
   * (allowed for risk-reducing orders only, `allowUnreplaceableUnderCap`) and for a replacement at or
   * near the cap. Kept so that a process that did not sign it (after a restart, another worker) knows
   * too ({@link unreplaceableNonceTxs}). Absent on entries written before it was kept: unknown, read as
   * replaceable (true), as they were before; a replacement still decides from the fees and the current
   * cap, and is refused with `stuckAtCap` when none fits. A value other than a boolean is read the same.
   */
  replaceableUnderCap?: boolean;
}

const NONCE_TX_KINDS: ReadonlySet<string> = new Set(['original', 'speed-up', 'cancel']);
const TX_HASH = /^0x[0-9a-fA-F]{64}$/;

/**
 * The transactions signed at a record's nonce: its `nonceTxs`, and what a record written before they were
 * kept names instead (or besides): the order's transaction (`txHash`, with the record's `maxFeePerGas` and
 * `maxPriorityFeePerGas`) first, its cancel (`cancelTxHash`, fees unknown) last. Entries are returned as
 * stored, malformed ones included (see {@link replaceByNonce} and {@link applySentTxStatus} for how those
 * are treated).
 */
export function recordedNonceTxs(r: OnChainOrderRecord): RecordedNonceTx[] {
  const list: RecordedNonceTx[] = Array.isArray(r.nonceTxs) ? [...r.nonceTxs] : [];
  const has = (hash: string) =>
    list.some((t) => typeof t?.hash === 'string' && t.hash.toLowerCase() === hash.toLowerCase());
  if (typeof r.txHash === 'string' && !has(r.txHash)) {
    list.unshift({
      kind: 'original',
      hash: r.txHash,
      ...(r.maxFeePerGas !== undefined ? { maxFeePerGas: r.maxFeePerGas } : {}),
      ...(r.maxPriorityFeePerGas !== undefined ? { maxPriorityFeePerGas: r.maxPriorityFeePerGas } : {}),
    });
  }
  if (typeof r.cancelTxHash === 'string' && !has(r.cancelTxHash)) {
    list.push({ kind: 'cancel', hash: r.cancelTxHash });
  }
  return list;
}

/** The entry of `nonceTxs` for a transaction just signed (before its broadcast). */
function nonceTxEntry(kind: RecordedNonceTx['kind'], info: SignedTxInfo): RecordedNonceTx {
  return {
    kind,
    hash: info.hash,
    maxFeePerGas: info.maxFeePerGas.toString(),
    maxPriorityFeePerGas: info.maxPriorityFeePerGas.toString(),
    gasLimit: info.gasLimit.toString(),
    signedAtMs: info.signedAtMs,
    replaceableUnderCap: info.replaceableUnderCap,
  };
}

/**
 * The transactions recorded at `r`'s nonce ({@link recordedNonceTxs}) that were stated not replaceable
 * under the fee cap they were signed under (`replaceableUnderCap` false): while one of them holds the
 * nonce, no speed-up or cancel of it fits under that cap (the kill switch's cancel is refused with
 * `stuckAtCap`). Entries without the flag (older records) are not among them (unknown, read as replaceable).
 */
export function unreplaceableNonceTxs(r: OnChainOrderRecord): RecordedNonceTx[] {
  return recordedNonceTxs(r).filter(
    (t) => t !== null && typeof t === 'object' && t.replaceableUnderCap === false,
  );
}

/**
 * What a replacement of `r`'s transaction must outbid: every transaction recorded at its nonce, with its
 * fees (without, for a cancel carried over from an older record: the sender asks the node). A malformed
 * entry refuses the replacement (not sent), naming the order and the entry: outbidding less than what
 * is in the pool is refused by the node anyway, and leaves the nonce stuck.
 */
function knownAtNonceOf(venue: string, r: OnChainOrderRecord, nonce: number): KnownAtNonce[] {
  const bad = (what: string) =>
    new NonceError({
      venue,
      clientOrderId: r.clientOrderId,
      retryable: false,
      message: `cannot replace the transaction of order ${r.clientOrderId} at nonce ${nonce}: ${what}; not sent (fix the order record or reconcile by hand)`,
    });
  return recordedNonceTxs(r).map((t, i) => {
    const at = `its record's nonceTxs[${i}]`;
    if (t === null || typeof t !== 'object') throw bad(`${at} is not an object`);
    if (typeof t.hash !== 'string' || !TX_HASH.test(t.hash)) {
      throw bad(`${at}.hash ${JSON.stringify(t.hash)} is not a transaction hash`);
    }
    if (!NONCE_TX_KINDS.has(t.kind))
      throw bad(`${at}.kind ${JSON.stringify(t.kind)} is not original, speed-up or cancel`);
    const fee = (key: 'maxFeePerGas' | 'maxPriorityFeePerGas') => {
      const v = t[key];
      if (v === undefined) return undefined;
      if (typeof v !== 'string' || !BASE_UNITS.test(v)) {
        throw bad(`${at}.${key} ${JSON.stringify(v)} is not a whole number of wei`);
      }
      return BigInt(v);
    };
    const maxFeePerGas = fee('maxFeePerGas');
    const maxPriorityFeePerGas = fee('maxPriorityFeePerGas');
    if ((maxFeePerGas === undefined) !== (maxPriorityFeePerGas === undefined)) {
      throw bad(`${at} has one of maxFeePerGas and maxPriorityFeePerGas without the other`);
    }
    return {
      hash: t.hash,
      ...(maxFeePerGas !== undefined ? { maxFeePerGas } : {}),
      ...(maxPriorityFeePerGas !== undefined ? { maxPriorityFeePerGas } : {}),
    };
  });
}

/** A {@link NonceScan} kept on an order record, with when it ran and how many lookups it took. */
export interface RecordedNonceScan extends NonceScan {
  /** When the last lookup ended (ms since epoch). */
  atMs: number;
  /** Lookups that found nothing so far. */
  attempts: number;
}

/** Wait after a lookup cut short by its deadline before the next one goes on with the scan. */
export const NONCE_SCAN_CONTINUE_AFTER_MS = 60_000;
/** Longest wait between lookups of a nonce whose scan read its whole range. */
export const NONCE_SCAN_MAX_BACKOFF_MS = 3_600_000;

/**
 * When the next lookup of a recorded scan may run: a scan cut short by its deadline goes on after
 * {@link NONCE_SCAN_CONTINUE_AFTER_MS}; one that read its range (it will find nothing more on the same RPC;
 * the lookup only checks whether the RPC has the state now) after 2^(attempts - 1) minutes, at most
 * {@link NONCE_SCAN_MAX_BACKOFF_MS}.
 */
export function nextNonceScanAtMs(scan: RecordedNonceScan): number {
  if (scan.reason === 'deadline') return scan.atMs + NONCE_SCAN_CONTINUE_AFTER_MS;
  const exp = Math.min(Math.max(scan.attempts - 1, 0), 6);
  return scan.atMs + Math.min(NONCE_SCAN_MAX_BACKOFF_MS, 60_000 * 2 ** exp);
}

const SCAN_REASONS: ReadonlySet<string> = new Set(['not-found', 'scan-limit', 'deadline']);
const BLOCK_NUMBER = /^[0-9]+$/;

/**
 * The record's scan of `nonce`, when it is one (a record edited by hand or from another version with a
 * bad one scans anew, which is only slower).
 */
function recordedNonceScan(r: OnChainOrderRecord, nonce: number): RecordedNonceScan | undefined {
  const s = r.nonceScan;
  if (!s || typeof s !== 'object' || s.nonce !== nonce) return undefined;
  const blocks = [s.scannedFromBlock, s.scannedToBlock, s.mayBeToBlock];
  if (!blocks.every((b) => typeof b === 'string' && BLOCK_NUMBER.test(b))) return undefined;
  if (BigInt(s.scannedToBlock) < BigInt(s.scannedFromBlock) - 1n) return undefined;
  if (!SCAN_REASONS.has(s.reason) || !Number.isFinite(s.atMs)) return undefined;
  if (!Number.isSafeInteger(s.attempts) || s.attempts < 0) return undefined;
  return s;
}

/** An order request after validation (defaults applied). */
type ParsedOrderRequest = z.output<typeof OrderRequest>;

/** The default durable store: `<dataDir>/<venueId>-orders.json` (dataDir defaults to `.xhedge`). */
export function defaultOrderStore<T>(dataDir: string | undefined, venueId: string): OrderRecordStore<T> {
  return new JsonFileOrderStore<T>(path.join(dataDir ?? '.xhedge', `${venueId}-orders.json`));
}

/** Rejects orders below the venue minimum and non-market orders without a limit price. */
export function assertOrderBasics(venue: string, req: ParsedOrderRequest, minSizeBase: string): void {
  if (new Dec(req.sizeBase).lt(minSizeBase)) {
    throw new InvalidOrderError({
      venue,
      clientOrderId: req.clientOrderId,
      message: `size ${req.sizeBase} is below the minimum ${minSizeBase}`,
    });
  }
  if (req.orderType !== 'market' && req.limitPriceUsd === undefined) {
    throw new InvalidOrderError({
      venue,
      clientOrderId: req.clientOrderId,
      message: `${req.orderType} orders need limitPriceUsd`,
    });
  }
}

/** A fresh `queued` record for a validated order request. */
export function newOrderRecord(req: ParsedOrderRequest, nowMs: number): OnChainOrderRecord {
  const record: OnChainOrderRecord = {
    clientOrderId: req.clientOrderId,
    instrument: req.instrument,
    side: req.side,
    sizeBase: req.sizeBase,
    reduceOnly: req.reduceOnly,
    orderType: req.orderType,
    status: 'queued',
    filledSizeBase: '0',
    createdAtMs: nowMs,
    updatedAtMs: nowMs,
  };
  if (req.limitPriceUsd !== undefined) record.limitPriceUsd = req.limitPriceUsd;
  return record;
}

/** The contract's `Order` view of a record; `venueOrderId` is the venue's own reference when it has one. */
export function orderFromRecord(
  venue: string,
  r: OnChainOrderRecord,
  venueOrderId: string | undefined,
): Order {
  const o: Order = {
    clientOrderId: r.clientOrderId,
    // Client order ids that are not valid entity ids get a prefix that makes them one.
    intentId: /^[A-Za-z][A-Za-z0-9_-]{2,}$/.test(r.clientOrderId) ? r.clientOrderId : `o-${r.clientOrderId}`,
    venue,
    instrument: r.instrument,
    side: r.side,
    orderType: r.orderType,
    sizeBase: r.sizeBase,
    reduceOnly: r.reduceOnly,
    status: r.status,
    filledSizeBase: r.filledSizeBase,
    createdAtMs: r.createdAtMs,
    updatedAtMs: r.updatedAtMs,
  };
  if (venueOrderId) o.venueOrderId = venueOrderId;
  if (r.limitPriceUsd !== undefined) o.limitPriceUsd = r.limitPriceUsd;
  if (r.avgFillPriceUsd !== undefined) o.avgFillPriceUsd = r.avgFillPriceUsd;
  if (r.error !== undefined) o.error = r.error;
  return o;
}

/** How {@link sendRecorded} sends. */
export interface RecordedSendOptions {
  /**
   * The order reduces risk (reduce-only, or it closes or reduces a position): it may be signed up to the
   * fee cap with no room for a replacement under it (see `SendOptions.allowUnreplaceableUnderCap`); the
   * record's `nonceTxs` entry says so (`replaceableUnderCap` false). @defaultValue false: such a send is
   * refused before signing (`FeeCapError`, nothing recorded as sent)
   */
  allowUnreplaceableUnderCap?: boolean;
}

/** What {@link sendRecorded} needs from its adapter. */
export interface RecordedSendDeps<T extends OnChainOrderRecord> {
  sender: TxSender;
  store: OrderRecordStore<T>;
  clock: Clock;
  /** Maps a thrown error into the venue error tree. */
  wrap: (err: unknown, clientOrderId: string) => VenueError;
}

/**
 * Sends an order transaction with a write-ahead record: the record (status `sent`, tx hash, nonce,
 * fees, whether a replacement of it fits under the fee cap (`nonceTxs[].replaceableUnderCap`), and the
 * `spend` reserved against the spend cap) is stored before the transaction can exist. A send that would
 * leave no room under the fee cap for a replacement goes only with `opts.allowUnreplaceableUnderCap`
 * (risk-reducing orders); else it is refused before signing, nothing stored.
 * On failure after signing, the record becomes `outcome-unknown` or `rejected`; the mapped venue error is
 * thrown either way. The spend is committed once the transaction is mined, released when it certainly
 * never will be (failed before signing, or an error whose outcome is not `unknown`: a revert decoded at
 * broadcast, mined and reverted), and otherwise stays reserved and counted — including a node's refusal
 * after signing ("nonce too low"), which may answer a re-send of a delivery that already mined.
 */
export async function sendRecorded<T extends OnChainOrderRecord>(
  deps: RecordedSendDeps<T>,
  record: T,
  tx: TxRequest,
  spend?: SpendReservation,
  opts: RecordedSendOptions = {},
): Promise<TransactionReceipt> {
  const cid = record.clientOrderId;
  if (spend) {
    if (spend.clientOrderId !== cid) {
      throw new XhedgeError(
        'INTERNAL',
        `spend reserved for order ${spend.clientOrderId} passed with order ${cid}`,
      );
    }
    record.spend = spend.recorded();
  }
  record.txCallDigest = txCallDigest(tx);
  try {
    const sent = await deps.sender.send(tx, {
      clientOrderId: cid,
      ...(opts.allowUnreplaceableUnderCap === true ? { allowUnreplaceableUnderCap: true } : {}),
      onSigned: async (info) => {
        Object.assign(record, {
          status: 'sent',
          txHash: info.hash,
          nonce: info.nonce,
          maxFeePerGas: info.maxFeePerGas.toString(),
          maxPriorityFeePerGas: info.maxPriorityFeePerGas.toString(),
          // the transactions at this nonce start with this one (an earlier attempt's were at another)
          nonceTxs: [nonceTxEntry('original', info)],
          updatedAtMs: deps.clock.nowMs(),
        });
        delete record.cancelTxHash;
        await deps.store.put(cid, record);
      },
    });
    if (spend) {
      spend.commit();
      record.spend = spend.recorded();
    }
    return sent.receipt;
  } catch (err) {
    const e = deps.wrap(err, cid);
    if (spend && (!record.txHash || e.outcome !== 'unknown')) {
      spend.release();
      record.spend = spend.recorded();
    }
    if (record.txHash) {
      record.status = e.outcome === 'unknown' ? 'outcome-unknown' : 'rejected';
      record.error = e.shortMessage;
      record.updatedAtMs = deps.clock.nowMs();
      await deps.store.put(cid, record);
    }
    throw e;
  }
}

/**
 * Cancels a not-yet-mined order transaction by occupying its nonce with a 0-value self-transfer. Its fees
 * outbid the highest of every transaction recorded at the nonce (`nonceTxs`: the order's, its speed-ups,
 * earlier cancels, by this process or another before a restart), not only the order's: the node holds the
 * latest replacement and refuses less as underpriced. The cancel's hash and fees are added to `r`'s
 * `nonceTxs` (in place; `cancelTxHash` names it) and stored as soon as it is signed, before it is
 * broadcast. Refused before signing (nothing stored): over the fee cap (`FeeCapError`, a `RateLimitError`,
 * naming the transaction it would have to outbid), or a malformed `nonceTxs` entry (`NonceError`, naming it).
 */
export async function replaceByNonce<T extends OnChainOrderRecord>(
  sender: TxSender,
  store: OrderRecordStore<T>,
  r: T,
  pending: { hash: Hex; nonce: number },
): Promise<void> {
  await replaceRecorded(sender, store, r, pending, 'cancel');
}

/**
 * Speeds up a not-yet-mined order transaction: its call (`request`, else the one this sender signed it
 * with) re-signed at its nonce, outbidding every transaction recorded there as {@link replaceByNonce} does,
 * and recorded the same way (added to `r`'s `nonceTxs` and stored before broadcast). A `request` that is
 * not the order's call (its {@link txCallDigest} differs from the record's) is refused: that would be
 * another transaction, not the order's. Returns the speed-up once mined; the record is resolved from it
 * by {@link applySentTxStatus}.
 */
export async function speedUpByNonce<T extends OnChainOrderRecord>(
  sender: TxSender,
  store: OrderRecordStore<T>,
  r: T,
  pending: { hash: Hex; nonce: number },
  request?: TxRequest,
): Promise<SentTx> {
  if (request && r.txCallDigest !== undefined && txCallDigest(request) !== r.txCallDigest) {
    throw new XhedgeError(
      'INTERNAL',
      `cannot speed up order ${r.clientOrderId}: the request given is not the order's call (its digest differs from the record's txCallDigest)`,
      { details: { clientOrderId: r.clientOrderId } },
    );
  }
  return replaceRecorded(sender, store, r, pending, 'speed-up', request);
}

async function replaceRecorded<T extends OnChainOrderRecord>(
  sender: TxSender,
  store: OrderRecordStore<T>,
  r: T,
  pending: { hash: Hex; nonce: number },
  mode: 'speed-up' | 'cancel',
  request?: TxRequest,
): Promise<SentTx> {
  if (r.nonce !== undefined && r.nonce !== pending.nonce) {
    throw new XhedgeError(
      'INTERNAL',
      `order ${r.clientOrderId} is at nonce ${r.nonce}, asked to replace nonce ${pending.nonce}`,
      { details: { clientOrderId: r.clientOrderId } },
    );
  }
  const sentAtNonce = knownAtNonceOf(sender.ctx.venue, r, pending.nonce);
  const options: SendOptions = {
    clientOrderId: r.clientOrderId,
    urgency: 'urgent',
    onSigned: async (info) => {
      // write-ahead, as for the order's own transaction: once broadcast it may take the nonce, and a
      // later replacement (another process, after a restart) must outbid it
      r.nonceTxs = [...recordedNonceTxs(r), nonceTxEntry(mode, info)];
      if (mode === 'cancel') r.cancelTxHash = info.hash;
      await store.put(r.clientOrderId, r);
    },
  };
  return sender.replace({ ...pending, ...(request ? { request } : {}), sentAtNonce }, mode, options);
}

/**
 * What a cancel that failed answers: the chain decides first (`reconcile`, the order's record brought up
 * to date): a final state (filled, cancelled, ...) is returned, the cancel having lost a race or been
 * made moot. Otherwise the cancel's own error is thrown (mapped with `errors`), also when that read fails:
 * the cancel's error says what the cancel did (its outcome: an unknown one must not turn into the
 * read's `not-sent`), so the read's failure goes along as context, in its details
 * (`reconcileError`, `reconcileErrorCode`: scrubbed like any mapped error), never in its place.
 */
export async function afterFailedCancel<R extends OnChainOrderRecord>(
  errors: VenueErrorMapper,
  cancelError: unknown,
  clientOrderId: string,
  reconcile: () => Promise<R>,
): Promise<R> {
  const cancelErr = errors.wrap(cancelError, clientOrderId);
  let again: R;
  try {
    again = await reconcile();
  } catch (readError) {
    const readErr = errors.wrap(readError, clientOrderId);
    // `details` is readonly to readers; the error is ours until thrown, and keeps its class and outcome.
    (cancelErr as { details: Record<string, unknown> }).details = {
      ...cancelErr.details,
      reconcileError: readErr.shortMessage,
      reconcileErrorCode: readErr.code,
    };
    throw cancelErr;
  }
  if (TERMINAL_ORDER_STATUSES.has(again.status)) return again;
  throw cancelErr;
}

/** The health answer when the venue could not be read. */
export function unreachableHealth(latencyMs: number, error: VenueError): VenueHealth {
  return {
    ok: false,
    latencyMs,
    halted: false,
    dataAgeMs: Number.POSITIVE_INFINITY,
    details: { error: error.shortMessage },
  };
}

/** Venue knobs shared by on-chain adapters' {@link TxSender}. */
export interface VenueTxSenderOptions {
  ctx: EvmContext;
  /** ABI of the venue's contracts, for decoding custom errors. */
  abi: Abi;
  classify: RevertClassifier;
  /** Base fee cap for non-urgent hedges, gwei. @defaultValue no cap */
  maxBaseFeeGwei?: number | undefined;
  /**
   * Hard cap on any transaction's `maxFeePerGas`, gwei, first send or replacement, urgent or not; a first
   * send stays at most at 8/9 of it while the base fee allows, leaving room for one replacement, and goes
   * up to the cap (not replaceable under it) when the base fee leaves no room
   * ({@link GasPolicy.capFirstSendFees}, {@link GasPolicy.capFees}). @defaultValue no cap
   */
  maxFeePerGasGwei?: number | undefined;
  /** Seconds to wait for a receipt before the outcome is unknown. */
  receiptTimeoutSeconds: number;
  clock: Clock;
}

/**
 * The {@link TxSender} of an on-chain adapter: its ABI and revert classes, a gas policy (base fee wait,
 * fee cap), a receipt timeout.
 */
export function createVenueTxSender(o: VenueTxSenderOptions): TxSender {
  return new TxSender({
    ctx: o.ctx,
    abi: o.abi,
    classify: o.classify,
    gasPolicy: new GasPolicy({
      ...(o.maxBaseFeeGwei !== undefined ? { maxBaseFeeGwei: o.maxBaseFeeGwei } : {}),
      ...(o.maxFeePerGasGwei !== undefined ? { maxFeePerGasGwei: o.maxFeePerGasGwei } : {}),
      clock: o.clock,
    }),
    receiptTimeoutMs: o.receiptTimeoutSeconds * 1000,
    clock: o.clock,
  });
}

/** Maps errors of one venue into the venue error tree (custom errors decoded with `abi`, secrets scrubbed). */
export interface VenueErrorMapper {
  wrap(err: unknown, clientOrderId?: string): VenueError;
  /** Runs a chain read, rethrowing its failure as a venue error. */
  read<T>(fn: () => Promise<T>): Promise<T>;
}

export function venueErrorMapper(venue: string, abi: Abi, ctx: EvmContext): VenueErrorMapper {
  const wrap = (err: unknown, clientOrderId?: string): VenueError =>
    toVenueError(err, {
      venue,
      abi,
      secrets: ctx.secrets,
      ...(clientOrderId !== undefined ? { clientOrderId } : {}),
    });
  return {
    wrap,
    async read(fn) {
      try {
        return await fn();
      } catch (err) {
        throw wrap(err);
      }
    },
  };
}

/** Options of an on-chain venue's `create…Venue` factory beyond the venue config. */
export interface CreateOnChainVenueDeps<R> {
  /** Where secrets come from (process env and files by default). */
  secrets?: SecretSources;
  /** Profile data folder for the order mapping file (unless params.dataDir is set). */
  dataDir?: string;
  store?: OrderRecordStore<R>;
  clock?: Clock;
}

/**
 * Builds an on-chain venue from its operator config: the EVM context from endpoints and credentials,
 * `params.dataDir` defaulted to the profile's, optional store and clock passed through.
 */
export function onChainVenueFromConfig<P extends { dataDir?: string | undefined }, R, V>(
  venue: EvmVenueConfigLike,
  deps: CreateOnChainVenueDeps<R>,
  construct: (
    id: string,
    params: P,
    deps: { ctx: EvmContext; store?: OrderRecordStore<R>; clock?: Clock },
  ) => V,
): V {
  const ctx = evmContextFromVenueConfig(venue, deps.secrets ?? {});
  const params = { ...(venue.params ?? {}) } as P;
  if (params.dataDir === undefined && deps.dataDir !== undefined) params.dataDir = deps.dataDir;
  return construct(venue.id, params, {
    ctx,
    ...(deps.store ? { store: deps.store } : {}),
    ...(deps.clock ? { clock: deps.clock } : {}),
  });
}

/** What {@link applySentTxStatus} reads the chain with. */
export interface SentTxStatusDeps {
  sender: TxSender;
  errors: VenueErrorMapper;
  clock: Clock;
  /** The venue's spend caps, settled with the record's spend. */
  spendCaps: SpendCaps;
}

/** Moves a record's reserved spend to `to`, on the record and in the window. */
async function settleRecordedSpend(
  caps: SpendCaps,
  r: OnChainOrderRecord,
  to: 'committed' | 'released',
): Promise<void> {
  if (r.spend?.state !== 'reserved') return;
  await caps.settle(r.clientOrderId, to);
  r.spend = { ...r.spend, state: to };
}

/**
 * Brings a sent (not yet settled) order record up to date from its transaction. Every transaction
 * recorded at its nonce (`nonceTxs`, {@link recordedNonceTxs}: the order's, its speed-ups, its cancels, by
 * any process) is looked up by hash first, which needs no historical state; whichever of them is mined
 * decides: a cancel → `cancelled` (the order never executed; `cancelTxHash` names that cancel), the order's
 * transaction or a speed-up → `onMined` for a successful receipt, `rejected` for a mined revert (the
 * mined one's hash becomes the record's `txHash`); else `outcome-unknown`. When another transaction took
 * the nonce, the chain says which ({@link TxSender.minedAtNonce}: by the recorded hashes, then by state,
 * or by reading blocks from the record's creation on a node that no longer has that state). A re-signed
 * copy of the order's call (a speed-up) is the order's transaction: its receipt decides as above, and its
 * hash becomes the record's; any other call means the order's never mined (`failed`). What is a copy:
 * - with the record's {@link txCallDigest}: the same digest;
 * - a record written before the digest was kept: a transaction that, signed with the record's nonce and
 *   fees and the taker's call and gas, has the record's hash ({@link TxSender.signsAs}: a speed-up that
 *   kept the gas limit, as {@link TxSender.replace} does in the process that sent the order); not a copy: a
 *   0-value self-transfer with no data, which does nothing whatever the order was; anything else cannot
 *   be told apart and stays `outcome-unknown`, naming the taker.
 * When the RPC cannot tell which transaction took the nonce (a {@link HistoricalStateUnavailableError}:
 * not an archive node, and the scan did not find it), the record stays `outcome-unknown` with that
 * error's message instead of the read failing as if the RPC were down, and keeps what the scan read
 * (`nonceScan`): a later reconcile does not look again before {@link nextNonceScanAtMs} (a scan cut short
 * by its deadline goes on after a minute, one that read its range is checked after a backoff of up to an
 * hour), and then reads only the blocks not read yet — none once the range is read: that answer stands
 * until the RPC has the state (an archive RPC) or `opts.rescan` asks for a scan from the start.
 * Mutates `r`; does not store it. The record's reserved spend is committed when the order's transaction
 * was mined, released when it reverted, a recorded cancel took its nonce or another call did; it stays
 * counted while the outcome is unknown. A `nonceTxs` entry without a well-formed hash is passed over.
 */
export async function applySentTxStatus<T extends OnChainOrderRecord>(
  deps: SentTxStatusDeps,
  r: T,
  txHash: Hex,
  onMined: (r: T, receipt: TransactionReceipt) => void,
  opts: { rescan?: boolean } = {},
): Promise<void> {
  const applyReceipt = async (receipt: TransactionReceipt) => {
    if (receipt.status === 'success') {
      onMined(r, receipt);
      await settleRecordedSpend(deps.spendCaps, r, 'committed');
    } else {
      r.status = 'rejected';
      r.error = (await deps.sender.revertError(receipt, r.clientOrderId)).shortMessage;
      r.updatedAtMs = deps.clock.nowMs();
      await settleRecordedSpend(deps.spendCaps, r, 'released');
    }
  };
  const cancelled = async (hash: Hex) => {
    r.status = 'cancelled';
    r.cancelTxHash = hash;
    r.error = `replaced by a cancel transaction at the same nonce (${hash})`;
    r.updatedAtMs = deps.clock.nowMs();
    await settleRecordedSpend(deps.spendCaps, r, 'released');
  };
  /** The order's transaction (its own or a speed-up) `hash` was mined: it decides. */
  const orderMined = async (hash: Hex, receipt: TransactionReceipt) => {
    r.txHash = hash;
    await applyReceipt(receipt);
  };
  // Every hash recorded at the nonce, with what it was; the one being reconciled is the order's.
  const recorded = new Map<string, { hash: Hex; kind: RecordedNonceTx['kind'] }>();
  for (const t of recordedNonceTxs(r)) {
    if (t === null || typeof t !== 'object' || typeof t.hash !== 'string' || !TX_HASH.test(t.hash)) continue;
    if (!NONCE_TX_KINDS.has(t.kind)) continue;
    recorded.set(t.hash.toLowerCase(), { hash: t.hash, kind: t.kind });
  }
  if (!recorded.has(txHash.toLowerCase()))
    recorded.set(txHash.toLowerCase(), { hash: txHash, kind: 'original' });
  const me = deps.sender.address.toLowerCase();
  // The replacements first (cancels, then speed-ups), by receipt: at most one transaction at the nonce
  // is ever mined, and a receipt read needs no historical state.
  const replacements = [...recorded.values()].filter((t) => t.hash.toLowerCase() !== txHash.toLowerCase());
  replacements.sort((a, b) => Number(b.kind === 'cancel') - Number(a.kind === 'cancel'));
  for (const t of replacements) {
    const receipt = await deps.sender.receiptOf(t.hash);
    if (!receipt || receipt.from.toLowerCase() !== me) continue;
    if (t.kind === 'cancel') return cancelled(t.hash);
    return orderMined(t.hash, receipt);
  }
  const st = await deps.errors.read(() => deps.sender.status(txHash, r.nonce));
  if (st.state === 'mined') {
    await applyReceipt(st.receipt);
  } else if (st.state === 'replaced') {
    const prior = opts.rescan ? undefined : recordedNonceScan(r, st.nonce);
    if (prior && deps.clock.nowMs() < nextNonceScanAtMs(prior)) {
      // Looked for lately and not found: every reconcile (fills, the order path) would read it all again.
      r.status = 'outcome-unknown';
      return;
    }
    let taker: MinedAtNonce | undefined;
    try {
      taker = await deps.errors.read(() =>
        deps.sender.minedAtNonce(st.nonce, {
          knownHashes: [...recorded.values()].map((t) => t.hash),
          notBeforeMs: r.createdAtMs,
          ...(prior ? { previousScan: prior } : {}),
        }),
      );
    } catch (err) {
      if (!(err instanceof HistoricalStateUnavailableError)) throw err;
      // Not a passing failure: the same RPC will not answer differently. Unknown, saying why.
      const now = deps.clock.nowMs();
      r.status = 'outcome-unknown';
      r.error = err.shortMessage;
      r.updatedAtMs = now;
      if (err.scan) r.nonceScan = { ...err.scan, atMs: now, attempts: (prior?.attempts ?? 0) + 1 };
      return;
    }
    delete r.nonceScan;
    if (!taker) {
      r.status = 'outcome-unknown';
      return;
    }
    // One of the recorded transactions (mined since the reads above): what it was decides.
    const mine = recorded.get(taker.hash.toLowerCase());
    if (mine?.kind === 'cancel') return cancelled(taker.hash);
    if (mine) return orderMined(taker.hash, taker.receipt);
    const copy = await isCopyOfOrder(deps.sender, r, txHash, taker);
    if (copy === true) {
      // A speed-up of the order: that transaction is the order's, and it may have executed it.
      await orderMined(taker.hash, taker.receipt);
    } else if (copy === undefined) {
      r.status = 'outcome-unknown';
      r.error = `its nonce was used by ${taker.hash}; the record keeps no digest of its call to tell whether that was a re-signed copy of it`;
      r.updatedAtMs = deps.clock.nowMs();
    } else {
      r.status = 'failed';
      r.error = `its nonce was used by another transaction (${taker.hash}, another call); it will never be mined`;
      r.updatedAtMs = deps.clock.nowMs();
      // certain now (the taker is another call): nothing of the order's can be spent
      await settleRecordedSpend(deps.spendCaps, r, 'released');
    }
  } else {
    r.status = 'outcome-unknown';
  }
}

const BASE_UNITS = /^[0-9]+$/;

/**
 * Whether `taker`, the transaction that took the nonce of the order's transaction `txHash`, is a re-signed
 * copy of the order's call; undefined when the record cannot tell (see {@link applySentTxStatus}).
 */
async function isCopyOfOrder(
  sender: TxSender,
  r: OnChainOrderRecord,
  txHash: Hex,
  taker: MinedAtNonce,
): Promise<boolean | undefined> {
  // The order's transaction always has a target (TxRequest.to): a contract creation is another call.
  if (taker.to === null) return false;
  const call = { to: taker.to, data: taker.data, value: taker.value };
  if (r.txCallDigest !== undefined) return txCallDigest(call) === r.txCallDigest;
  if (
    r.nonce !== undefined &&
    r.maxFeePerGas !== undefined &&
    r.maxPriorityFeePerGas !== undefined &&
    BASE_UNITS.test(r.maxFeePerGas) &&
    BASE_UNITS.test(r.maxPriorityFeePerGas) &&
    (await sender.signsAs(txHash, {
      ...call,
      nonce: r.nonce,
      gas: taker.gas,
      maxFeePerGas: BigInt(r.maxFeePerGas),
      maxPriorityFeePerGas: BigInt(r.maxPriorityFeePerGas),
    }))
  ) {
    return true;
  }
  // Does nothing (a cancel): whatever the order's call was, it did not run at this nonce.
  if (call.to.toLowerCase() === sender.address.toLowerCase() && call.value === 0n && call.data === '0x') {
    return false;
  }
  return undefined;
}

/**
 * The fills an on-chain adapter reports: one per filled record (a record not yet final is brought up
 * to date with `reconcile` first), oldest first. `fillKey` is the record's venue-side key (order key,
 * tx hash); the fill id is `<venue>-<key>`, falling back to the client order id.
 */
export async function fillsFromRecords<R extends OnChainOrderRecord>(
  venue: string,
  store: OrderRecordStore<R>,
  reconcile: (r: R) => Promise<R>,
  fillKey: (r: R) => string | undefined,
  opts: { sinceMs?: number; clientOrderId?: string } = {},
): Promise<Fill[]> {
  const records = opts.clientOrderId ? [await store.get(opts.clientOrderId)] : await store.list();
  const fills: Fill[] = [];
  for (const r0 of records) {
    if (!r0) continue;
    const r = TERMINAL_ORDER_STATUSES.has(r0.status) ? r0 : await reconcile(r0);
    if (r.status !== 'filled' || !r.avgFillPriceUsd) continue;
    if (opts.sinceMs !== undefined && r.updatedAtMs < opts.sinceMs) continue;
    fills.push({
      fillId: `${venue}-${fillKey(r) ?? r.clientOrderId}`,
      clientOrderId: r.clientOrderId,
      venue,
      instrument: r.instrument,
      side: r.side,
      sizeBase: r.filledSizeBase,
      priceUsd: r.avgFillPriceUsd,
      feeUsd: r.feeUsd ?? 0,
      gasUsd: r.gasUsd ?? 0,
      tsMs: r.updatedAtMs,
    });
  }
  return fills.sort((a, b) => a.tsMs - b.tsMs);
}

/**
 * An adapter account's balances: its collateral token (`symbol`, `decimals`), all of it available, and
 * the chain's gas coin (ETH), read in one round of calls.
 */
export async function walletBalances(
  ctx: EvmContext,
  errors: VenueErrorMapper,
  p: { venue: string; chain: string; token: Address; decimals: number; symbol: string; now: () => number },
): Promise<Balance[]> {
  const c = ctx.publicClient;
  const [units, wei] = await errors.read(() =>
    Promise.all([
      c.readContract({
        address: p.token,
        abi: erc20Abi,
        functionName: 'balanceOf',
        args: [ctx.account.address],
      }),
      c.getBalance({ address: ctx.account.address }),
    ]),
  );
  const asOfMs = p.now();
  const amount = Number(new Dec(units.toString()).div(new Dec(10).pow(p.decimals)).toString());
  const eth = Number(new Dec(wei.toString()).div(new Dec(10).pow(18)).toString());
  return [
    { venue: p.venue, chain: p.chain, asset: p.symbol, amount, available: amount, asOfMs },
    { venue: p.venue, chain: p.chain, asset: 'ETH', amount: eth, asOfMs },
  ];
}

/**
 * Runs calls keyed alike one after the other: a second call with a key waits for the first to end
 * (resolved or not) and then runs. The adapters place an order this way per client order id, so a second
 * `placeOrder` with the id finds the first one's record instead of sending a second order transaction
 * while the first (quoting, approving, signing, not yet recorded) is in flight. Keys are dropped once
 * their last call ends.
 */
export class OneAtATime {
  readonly #running = new Map<string, Promise<unknown>>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.#running.get(key);
    const run = (async () => {
      if (before) await before.catch(() => undefined);
      return fn();
    })();
    this.#running.set(key, run);
    return run.finally(() => {
      if (this.#running.get(key) === run) this.#running.delete(key);
    });
  }
}
