import { type Clock, systemClock, type Urgency, XhedgeError } from '@xhedge/core';
import { NonceError, NotConfirmedError, RevertedError } from '@xhedge/venue';
import {
  type Abi,
  type Address,
  BaseError,
  encodeAbiParameters,
  formatGwei,
  type Hex,
  keccak256,
  type Transaction,
  type TransactionReceipt,
  type TransactionSerializable,
} from 'viem';
import type { EvmContext } from './clients.ts';
import {
  decodeRevert,
  findRevertData,
  HistoricalStateUnavailableError,
  isHeaderNotFound,
  isHistoricalStateUnavailable,
  isRevert,
  type NonceScan,
  type RevertClassifier,
  revertToVenueError,
  toVenueError,
} from './errors.ts';
import {
  bumpFees,
  type FeeQuote,
  GasPolicy,
  type L1DataFeeModel,
  l1DataFeeModel,
  readFees,
  type TxCost,
  txCost,
} from './gas.ts';
import { redact } from './secrets.ts';

export interface TxRequest {
  to: Address;
  data: Hex;
  /** Native value, wei. */
  value?: bigint;
}

/**
 * A digest of what a request does (target, calldata, value), not of how it was signed: a re-signed copy
 * of it (a speed-up at the same nonce with higher fees) has the same digest, any other call another.
 */
export function txCallDigest(req: TxRequest): Hex {
  return keccak256(
    encodeAbiParameters(
      [{ type: 'address' }, { type: 'bytes' }, { type: 'uint256' }],
      [req.to.toLowerCase() as Address, req.data.toLowerCase() as Hex, req.value ?? 0n],
    ),
  );
}

/** The mined transaction of an account at a nonce, as {@link TxSender.minedAtNonce} finds it. */
export interface MinedAtNonce {
  hash: Hex;
  /** Its call; `to` is null for a contract creation. */
  to: Address | null;
  data: Hex;
  value: bigint;
  /** Its gas limit. */
  gas: bigint;
  receipt: TransactionReceipt;
}

/** What {@link TxSender.minedAtNonce} may use besides the chain's state. */
export interface MinedAtNonceOptions {
  /**
   * Hashes signed at the nonce (the order's transaction, its speed-ups, its cancel): their receipts are
   * read first, by hash, which needs no historical state. Those this sender signed itself are added.
   */
  knownHashes?: readonly Hex[];
  /**
   * A time (ms since epoch) when the nonce was still unused, such as the order record's creation: a block
   * scan starts at the first block from {@link NONCE_SCAN_CLOCK_SLACK_MS} before it. @defaultValue genesis
   */
  notBeforeMs?: number;
  /**
   * What an earlier lookup of this nonce read without finding it (its
   * {@link HistoricalStateUnavailableError}'s `scan`, kept with the order record): those blocks are not
   * read again.
   */
  previousScan?: NonceScan;
}

/** Allowance for clock skew and block timestamps lagging when a nonce scan starts from a time. */
export const NONCE_SCAN_CLOCK_SLACK_MS = 5 * 60_000;
/** Blocks fetched at once by a nonce scan. */
const NONCE_SCAN_BATCH = 8;
/**
 * A `header not found` for a block this close to the head is a lagging node of a load-balanced RPC, not
 * pruned state (nodes keep at least this many recent states).
 */
export const HEADER_NOT_FOUND_RECENT_BLOCKS = 128n;
/** How many times a recent block's state is asked for while the node answers `header not found`. */
const HEADER_NOT_FOUND_TRIES = 3;
/** Wait before asking again (times the attempt). */
const HEADER_NOT_FOUND_RETRY_MS = 250;

/** How many signed transactions a sender keeps in memory (see `TxSender.signed`). */
export const MAX_SIGNED_KEPT = 10_000;

/** What is known about a signed transaction; persisted by callers before it is broadcast. */
export interface SignedTxInfo {
  hash: Hex;
  nonce: number;
  maxFeePerGas: bigint;
  maxPriorityFeePerGas: bigint;
  gasLimit: bigint;
  signedAtMs: number;
  /**
   * Whether a speed-up or cancel of it (12.5 % more on both fees) fits under the gas policy's fee cap:
   * false for a first send signed up to the cap because the base fee left no room for a replacement
   * ({@link GasPolicy.capFirstSendFees}) and for a replacement at or near the cap; always true without a cap.
   */
  replaceableUnderCap: boolean;
}

/**
 * A transaction known to have been sent at a nonce (the order's, a speed-up, a cancel), with its fees when
 * they are known; see {@link TxSender.replace}.
 */
export interface KnownAtNonce {
  hash: Hex;
  /** wei */
  maxFeePerGas?: bigint;
  /** wei */
  maxPriorityFeePerGas?: bigint;
}

export interface SendOptions {
  urgency?: Urgency;
  clientOrderId?: string;
  /**
   * Called with the hash after signing and before broadcasting (write-ahead): persist it, so that after
   * a crash or timeout the transaction can be found by hash instead of being sent again.
   */
  onSigned?: (info: SignedTxInfo) => Promise<void> | void;
  /** How long to wait for the receipt. @defaultValue the sender's `receiptTimeoutMs` */
  timeoutMs?: number;
  /**
   * A first send ({@link TxSender.send}) may be signed up to the gas policy's fee cap when the base fee
   * leaves no room under it for a replacement (`SignedTxInfo.replaceableUnderCap` false): if the base fee
   * then rises past its fee cap, it holds the account's nonce and no speed-up or cancel of it (the kill
   * switch's included) fits under the cap. Set only for a risk-reducing send (a reduce-only order, a close),
   * for which going now is worth that; any other such send is refused before signing (`FeeCapError`,
   * retryable, `details.replaceableUnderCap` false). Replacements ({@link TxSender.replace}) ignore it: they
   * may always go up to the cap. @defaultValue false
   */
  allowUnreplaceableUnderCap?: boolean;
}

export interface SentTx {
  hash: Hex;
  nonce: number;
  receipt: TransactionReceipt;
}

/** Where a transaction stands on chain. */
export type TxStatus =
  | { state: 'mined'; receipt: TransactionReceipt }
  | { state: 'pending'; nonce: number }
  /** Not known to the node and its nonce is already used by another transaction: it will never mine. */
  | { state: 'replaced'; nonce: number }
  /** Not known to the node and its nonce is still free: dropped or never broadcast, could still appear. */
  | { state: 'unknown' };

export interface TxSenderOptions {
  ctx: EvmContext;
  /** ABI of the venue's contracts, for decoding custom errors. */
  abi?: Abi;
  classify?: RevertClassifier;
  gasPolicy?: GasPolicy;
  l1FeeModel?: L1DataFeeModel;
  /** @defaultValue 30000 */
  receiptTimeoutMs?: number;
  /** Gas limit headroom over the estimate. @defaultValue 1.2 */
  gasLimitMultiplier?: number;
  /**
   * Most blocks {@link TxSender.minedAtNonce} reads one by one when the RPC no longer has the state to
   * search by (a full node, not an archive node). @defaultValue 10000
   */
  nonceScanMaxBlocks?: number;
  /**
   * How long one {@link TxSender.minedAtNonce} may go on reading blocks (it reads at least one batch):
   * past it, the lookup stops and says how far it got (`HistoricalStateUnavailableError.scan`), for the
   * next one to go on from there; an order path is not held for minutes. @defaultValue 20000
   */
  nonceScanDeadlineMs?: number;
  clock?: Clock;
}

/**
 * Sends transactions for one account on one chain, one at a time:
 * - the nonce comes from the chain (`latest` count); if the chain's `pending` count is higher, a transaction
 *   (ours, possibly from before a restart) is still pending and sending is refused with a NonceError until
 *   it is mined or replaced — so there are never nonce gaps or two hedges in flight;
 * - every transaction is simulated (estimateGas) first: reverts surface as not-sent venue errors;
 * - fees never go above the gas policy's hard cap (`maxFeePerGasGwei`), and a first send leaves room under
 *   it for one replacement while the base fee allows: it is signed at most at ⌊cap × 8 / 9⌋ while the
 *   next block's base fee cannot be above that, else up to the cap only with
 *   `SendOptions.allowUnreplaceableUnderCap` (then no replacement of it fits under the cap:
 *   `SignedTxInfo.replaceableUnderCap` false) and refused before signing without it, and refused before signing when the next block's
 *   base fee can be above the cap ({@link GasPolicy.capFirstSendFees}); a speed-up or cancel may go up to
 *   the cap, and one that needs more is refused before signing ({@link GasPolicy.capFees}; `FeeCapError`,
 *   a `RateLimitError`, not sent);
 * - the hash is handed to `onSigned` before broadcast (write-ahead), so a timeout is reconciled by hash
 *   ({@link status}) rather than resent;
 * - once signed, a failed broadcast is outcome unknown unless the node decoded a revert: a "nonce too low"
 *   can answer a re-send of bytes an earlier attempt (retry, fallback RPC) already got mined;
 * - a receipt that does not arrive in time is a NotConfirmedError (outcome unknown); a mined revert is
 *   replayed at its block to decode the reason (rejected either way; a failed replay names no reason).
 * One process per account: the lock is in-process (run a single writer per key).
 */
export class TxSender {
  readonly ctx: EvmContext;
  readonly gasPolicy: GasPolicy;
  readonly l1FeeModel: L1DataFeeModel;
  private readonly abi: Abi;
  private readonly classify: RevertClassifier | undefined;
  private readonly receiptTimeoutMs: number;
  private readonly gasMultiplierPct: bigint;
  private readonly nonceScanMaxBlocks: bigint;
  private readonly nonceScanDeadlineMs: number;
  private readonly clock: Clock;
  private lock: Promise<unknown> = Promise.resolve();
  /**
   * Transactions this process signed, by hash (for replacement and the nonce lookups), the newest
   * {@link MAX_SIGNED_KEPT}: a process that runs for months does not keep every one (the oldest are
   * long mined or replaced; a record still unresolved names its own hashes, `knownHashes`).
   */
  private readonly signed = new Map<Hex, { request: TxRequest; info: SignedTxInfo }>();

  constructor(opts: TxSenderOptions) {
    this.ctx = opts.ctx;
    this.abi = opts.abi ?? [];
    this.classify = opts.classify;
    this.gasPolicy = opts.gasPolicy ?? new GasPolicy();
    this.l1FeeModel = opts.l1FeeModel ?? l1DataFeeModel(opts.ctx.profile.l1DataFee, opts.ctx.publicClient);
    this.receiptTimeoutMs = opts.receiptTimeoutMs ?? 30_000;
    this.gasMultiplierPct = BigInt(Math.round((opts.gasLimitMultiplier ?? 1.2) * 100));
    const scan = opts.nonceScanMaxBlocks ?? 10_000;
    if (!Number.isSafeInteger(scan) || scan < 0) {
      throw new XhedgeError(
        'CONFIG_INVALID',
        `${opts.ctx.venue}: nonceScanMaxBlocks must be a whole number >= 0, got ${scan}`,
      );
    }
    this.nonceScanMaxBlocks = BigInt(scan);
    const deadline = opts.nonceScanDeadlineMs ?? 20_000;
    if (!Number.isFinite(deadline) || deadline < 0) {
      throw new XhedgeError(
        'CONFIG_INVALID',
        `${opts.ctx.venue}: nonceScanDeadlineMs must be a number of milliseconds >= 0, got ${deadline}`,
      );
    }
    this.nonceScanDeadlineMs = deadline;
    this.clock = opts.clock ?? systemClock;
  }

  get address(): Address {
    return this.ctx.account.address;
  }

  private errCtx(clientOrderId: string | undefined, extra: Record<string, unknown> = {}) {
    return {
      venue: this.ctx.venue,
      abi: this.abi,
      ...(this.classify ? { classify: this.classify } : {}),
      ...(clientOrderId !== undefined ? { clientOrderId } : {}),
      secrets: this.ctx.secrets,
      details: extra,
    };
  }

  private withLock<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => undefined);
    return run;
  }

  /** Nonces: `latest` (next to mine) and `pending` (including the mempool). RPC failures are venue errors. */
  async nonces(): Promise<{ latest: number; pending: number }> {
    const c = this.ctx.publicClient;
    try {
      const [latest, pending] = await Promise.all([
        c.getTransactionCount({ address: this.address, blockTag: 'latest' }),
        c.getTransactionCount({ address: this.address, blockTag: 'pending' }),
      ]);
      return { latest, pending };
    } catch (err) {
      throw toVenueError(err, this.errCtx(undefined));
    }
  }

  /** eth_call as this account; reverts become not-sent venue errors. */
  async simulate(req: TxRequest, clientOrderId?: string): Promise<Hex | undefined> {
    try {
      const { data } = await this.ctx.publicClient.call({
        account: this.address,
        to: req.to,
        data: req.data,
        ...(req.value !== undefined ? { value: req.value } : {}),
      });
      return data;
    } catch (err) {
      throw toVenueError(err, { ...this.errCtx(clientOrderId), revertOutcome: 'not-sent' });
    }
  }

  /**
   * Gas estimate (simulates; reverts become not-sent venue errors), on the `latest` state: what a
   * transaction of this account runs on, since a send waits until nothing of it is pending and a
   * replacement takes the pending one's place. (Left to the node, viem fills in the pending nonce and
   * some nodes, anvil among them, then simulate after the pending transaction being replaced: a speed-up
   * of a call whose first run costs more, a first storage write, got too little gas and reverted.)
   */
  async estimateGas(req: TxRequest, clientOrderId?: string): Promise<bigint> {
    try {
      return await this.ctx.publicClient.estimateGas({
        account: this.address,
        to: req.to,
        data: req.data,
        ...(req.value !== undefined ? { value: req.value } : {}),
        blockTag: 'latest',
      });
    } catch (err) {
      throw toVenueError(err, { ...this.errCtx(clientOrderId), revertOutcome: 'not-sent' });
    }
  }

  /**
   * The all-in cost of a request now: L2 gas at current fees plus the L1 data fee, counted once per the
   * chain family ({@link txCost}): added on OP Stack chains, already inside the gas on Arbitrum (where
   * `gasLimit`, like the node's estimate, is Arbitrum gas including the L1 part).
   */
  async estimateCost(req: TxRequest, gasAssetUsd: number, gasLimit?: bigint): Promise<TxCost> {
    let fees: FeeQuote;
    try {
      // what a transaction sent now would be signed with: never above the first-send ceiling
      fees = this.gasPolicy.clampFees(await readFees(this.ctx.publicClient), 'first-send');
    } catch (err) {
      throw toVenueError(err, this.errCtx(undefined));
    }
    const gas = gasLimit ?? (await this.estimateGas(req));
    const serialized = await this.ctx.account.signTransaction({
      chainId: this.ctx.chain.id,
      type: 'eip1559',
      to: req.to,
      data: req.data,
      value: req.value ?? 0n,
      nonce: 0,
      gas,
      maxFeePerGas: fees.maxFeePerGas,
      maxPriorityFeePerGas: fees.maxPriorityFeePerGas,
    });
    let l1DataWei: bigint;
    try {
      l1DataWei = await this.l1FeeModel.estimateWei({ to: req.to, data: req.data, serialized });
    } catch (err) {
      // The L1 fee read is a call to the chain's oracle: its revert is not the request's (not-sent either way).
      throw toVenueError(err, { ...this.errCtx(undefined), revertOutcome: 'not-sent' });
    }
    return txCost({ gasLimit: gas, fees, l1DataWei, gasAssetUsd, l1DataFeeKind: this.l1FeeModel.kind });
  }

  /** Signs, persists (onSigned), broadcasts and waits for the receipt. See the class doc for the error cases. */
  async send(req: TxRequest, opts: SendOptions = {}): Promise<SentTx> {
    const info = await this.withLock(() => this.broadcast(req, opts));
    return { hash: info.hash, nonce: info.nonce, receipt: await this.waitFor(info, opts) };
  }

  private async broadcast(req: TxRequest, opts: SendOptions): Promise<SignedTxInfo> {
    const cid = opts.clientOrderId;
    let n: { latest: number; pending: number };
    try {
      n = await this.nonces();
    } catch (err) {
      throw toVenueError(err, this.errCtx(cid));
    }
    if (n.pending > n.latest) {
      throw new NonceError({
        venue: this.ctx.venue,
        message: `a transaction is pending at nonce ${n.latest} (${n.pending - n.latest} in the mempool); reconcile, speed it up or cancel it before sending another`,
        ...(cid !== undefined ? { clientOrderId: cid } : {}),
        details: { latestNonce: n.latest, pendingNonce: n.pending },
      });
    }
    let fees: FeeQuote;
    try {
      fees = await this.gasPolicy.waitForFees(
        () => readFees(this.ctx.publicClient),
        opts.urgency ?? 'normal',
        this.ctx.venue,
      );
    } catch (err) {
      // A raw viem error carries the RPC URL (API key) and the request body: map and scrub it.
      throw toVenueError(err, this.errCtx(cid));
    }
    // Under the first-send ceiling (8/9 of the hard fee cap, room for one replacement) while the base fee
    // allows, else under the cap itself (no room for a replacement: only with allowUnreplaceableUnderCap),
    // urgent or not: a next block's base fee that can be above the cap is refused here, before anything is
    // signed, and so is a send the caller did not allow to go without room for a replacement.
    fees = this.gasPolicy.capFirstSendFees(fees, {
      venue: this.ctx.venue,
      clientOrderId: cid,
      allowUnreplaceableUnderCap: opts.allowUnreplaceableUnderCap,
    });
    const gas = ((await this.estimateGas(req, cid)) * this.gasMultiplierPct) / 100n;
    return this.signAndBroadcast(req, n.latest, gas, fees, opts);
  }

  private async signAndBroadcast(
    req: TxRequest,
    nonce: number,
    gas: bigint,
    fees: FeeQuote,
    opts: SendOptions,
  ): Promise<SignedTxInfo> {
    const cid = opts.clientOrderId;
    const tx: TransactionSerializable = {
      chainId: this.ctx.chain.id,
      type: 'eip1559',
      to: req.to,
      data: req.data,
      value: req.value ?? 0n,
      nonce,
      gas,
      maxFeePerGas: fees.maxFeePerGas,
      maxPriorityFeePerGas: fees.maxPriorityFeePerGas,
    };
    const serialized = await this.ctx.account.signTransaction(tx);
    const info: SignedTxInfo = {
      hash: keccak256(serialized),
      nonce,
      maxFeePerGas: fees.maxFeePerGas,
      maxPriorityFeePerGas: fees.maxPriorityFeePerGas,
      gasLimit: gas,
      signedAtMs: this.clock.nowMs(),
      replaceableUnderCap: this.gasPolicy.replaceableUnderCap(fees.maxFeePerGas),
    };
    await opts.onSigned?.(info);
    this.signed.set(info.hash, { request: req, info });
    if (this.signed.size > MAX_SIGNED_KEPT) {
      const oldest = this.signed.keys().next().value;
      if (oldest !== undefined) this.signed.delete(oldest);
    }
    try {
      await this.ctx.publicClient.sendRawTransaction({ serializedTransaction: serialized });
    } catch (err) {
      // Only a decoded revert is final here; anything else (a lost response, or "nonce too low" from a
      // node answering a re-send of bytes an earlier attempt delivered) leaves the outcome unknown.
      throw toVenueError(err, { ...this.errCtx(cid, { txHash: info.hash, nonce }), afterSigning: true });
    }
    return info;
  }

  private async waitFor(info: SignedTxInfo, opts: SendOptions): Promise<TransactionReceipt> {
    const cid = opts.clientOrderId;
    let receipt: TransactionReceipt;
    try {
      receipt = await this.ctx.publicClient.waitForTransactionReceipt({
        hash: info.hash,
        timeout: opts.timeoutMs ?? this.receiptTimeoutMs,
      });
    } catch (err) {
      const timeout =
        err instanceof BaseError &&
        err.walk((e) => (e as { name?: string }).name === 'WaitForTransactionReceiptTimeoutError');
      throw new NotConfirmedError({
        venue: this.ctx.venue,
        message: timeout
          ? `transaction ${info.hash} not confirmed within ${opts.timeoutMs ?? this.receiptTimeoutMs} ms; outcome unknown, reconcile by hash`
          : `lost track of transaction ${info.hash}; outcome unknown, reconcile by hash`,
        ...(cid !== undefined ? { clientOrderId: cid } : {}),
        details: { txHash: info.hash, nonce: info.nonce },
      });
    }
    if (receipt.transactionHash.toLowerCase() !== info.hash.toLowerCase()) {
      // viem resolves with the receipt of a transaction that took the nonce (a cancel, a speed-up, a
      // send by another process): that is not this transaction's outcome, which only reconciling can tell.
      throw new NotConfirmedError({
        venue: this.ctx.venue,
        message: `transaction ${info.hash} was replaced at nonce ${info.nonce} by ${receipt.transactionHash}; it will not be mined, reconcile by hash`,
        ...(cid !== undefined ? { clientOrderId: cid } : {}),
        details: { txHash: info.hash, nonce: info.nonce, replacedBy: receipt.transactionHash },
      });
    }
    if (receipt.status === 'reverted') throw await this.revertError(receipt, cid);
    return receipt;
  }

  /**
   * Replays a mined, reverted transaction at its block to decode why it reverted. Always a rejected
   * venue error (the receipt proves it did nothing); when the replay itself fails (RPC down, state gone)
   * the reason is left unknown (`details.reasonRead: false`), never taken from the replay's failure.
   */
  async revertError(receipt: TransactionReceipt, clientOrderId?: string) {
    const c = this.ctx.publicClient;
    let data: Hex | undefined;
    let message = 'execution reverted';
    // Prefer a trace of the transaction itself (sees the state left by earlier transactions in its block).
    try {
      const trace = (await c.request({
        method: 'debug_traceTransaction' as 'eth_chainId',
        params: [receipt.transactionHash, { tracer: 'callTracer' }] as never,
      })) as { output?: Hex; revertReason?: string } | null;
      if (trace?.output && trace.output.length >= 10) {
        return revertToVenueError(decodeRevert(trace.output, this.abi, trace.revertReason ?? message), {
          ...this.errCtx(clientOrderId, {
            txHash: receipt.transactionHash,
            blockNumber: receipt.blockNumber.toString(),
          }),
          revertOutcome: 'rejected',
        });
      }
    } catch {
      // Nodes without the debug namespace: fall back to replaying on the parent block's state.
    }
    try {
      const tx = await c.getTransaction({ hash: receipt.transactionHash });
      await c.call({
        account: tx.from,
        to: tx.to ?? undefined,
        data: tx.input,
        value: tx.value,
        gas: tx.gas,
        blockNumber: receipt.blockNumber - 1n,
      });
      // The replay on the parent state passed: the revert depended on a transaction earlier in the block.
      message = 'reverted in its block (state changed by an earlier transaction in the same block)';
    } catch (err) {
      data = findRevertData(err);
      if (data === undefined && !isRevert(err)) {
        // The replay did not run (the RPC failed, a node without the parent block's state): the receipt
        // proves the revert, so the outcome is final (rejected: it did nothing), but no reason was read,
        // and none is claimed or classified (an "HTTP request failed." is not why it reverted).
        const why =
          err instanceof BaseError ? err.shortMessage : err instanceof Error ? err.message : String(err);
        return new RevertedError({
          venue: this.ctx.venue,
          message: redact(
            `reverted (receipt of ${receipt.transactionHash}); its reason is unknown: replaying it failed: ${why}`,
            this.ctx.secrets,
          ),
          ...(clientOrderId !== undefined ? { clientOrderId } : {}),
          details: {
            errorName: 'unknown',
            args: [],
            reasonRead: false,
            txHash: receipt.transactionHash,
            blockNumber: receipt.blockNumber.toString(),
          },
        });
      }
      if (err instanceof BaseError) message = err.shortMessage;
    }
    return revertToVenueError(decodeRevert(data, this.abi, message), {
      ...this.errCtx(clientOrderId, {
        txHash: receipt.transactionHash,
        blockNumber: receipt.blockNumber.toString(),
      }),
      revertOutcome: 'rejected',
    });
  }

  /** Where a transaction stands (used to reconcile an unknown outcome). */
  async status(hash: Hex, nonce?: number): Promise<TxStatus> {
    const c = this.ctx.publicClient;
    // A read that fails says nothing about a transaction that was signed and may be out: outcome
    // unknown, never not-sent (a caller would send the order again, or record it as never sent).
    const afterSend = { ...this.errCtx(undefined, { txHash: hash }), afterSigning: true };
    try {
      const receipt = await c.getTransactionReceipt({ hash });
      return { state: 'mined', receipt };
    } catch (err) {
      if (
        !(
          err instanceof BaseError &&
          err.walk((e) => (e as { name?: string }).name === 'TransactionReceiptNotFoundError')
        )
      ) {
        throw toVenueError(err, afterSend);
      }
    }
    try {
      const tx = await c.getTransaction({ hash });
      return { state: 'pending', nonce: tx.nonce };
    } catch (err) {
      if (
        !(
          err instanceof BaseError &&
          err.walk((e) => (e as { name?: string }).name === 'TransactionNotFoundError')
        )
      ) {
        throw toVenueError(err, afterSend);
      }
    }
    if (nonce !== undefined) {
      let latest: number;
      try {
        latest = await c.getTransactionCount({ address: this.address, blockTag: 'latest' });
      } catch (err) {
        throw toVenueError(err, afterSend);
      }
      if (latest > nonce) {
        // The nonce was used, maybe by this very transaction, mined after the lookups above (a node
        // without a mempool view answers "not found" for a pending one): only a receipt read now tells.
        try {
          return { state: 'mined', receipt: await c.getTransactionReceipt({ hash }) };
        } catch (err) {
          if (
            !(
              err instanceof BaseError &&
              err.walk((e) => (e as { name?: string }).name === 'TransactionReceiptNotFoundError')
            )
          ) {
            throw toVenueError(err, afterSend);
          }
        }
        return { state: 'replaced', nonce };
      }
    }
    return { state: 'unknown' };
  }

  /**
   * The transaction of this account mined at `nonce` (whichever took it: the one sent, a speed-up, a
   * cancel, another process's), or undefined while the nonce is unused. Found, in this order:
   * 1. by hash: the receipt of one of `opts.knownHashes` or of a transaction this sender signed at the
   *    nonce (a receipt read needs no historical state);
   * 2. by state, without an index: the block where the account's transaction count passed `nonce`,
   *    searched back from the latest block (steps doubling, then halving, so a recent one costs a few reads
   *    of recent state), then that block's transactions. A `header not found` for a block among the last
   *    {@link HEADER_NOT_FOUND_RECENT_BLOCKS} is a node lagging behind the one that gave the head (a
   *    load-balanced RPC), not pruned state: asked again a few times, then a venue error (outcome unknown);
   * 3. when the RPC no longer has the state of the blocks searched (a full node, not an archive node:
   *    {@link isHistoricalStateUnavailable}), by reading blocks one by one, from the first block at
   *    `opts.notBeforeMs` (less {@link NONCE_SCAN_CLOCK_SLACK_MS}) to the last block known to be after it,
   *    at most `nonceScanMaxBlocks` of them, for at most `nonceScanDeadlineMs`; not found there, a
   *    {@link HistoricalStateUnavailableError} (outcome unknown) whose `scan` says what was read.
   * With `opts.previousScan` (an earlier lookup's `scan`), the blocks it read are not read again: the scan
   * goes on after its last block, up to the last block the transaction may be in and the scan's bound,
   * and when nothing is left to read the error comes without any block read. (The state at the scan's
   * first block is read first: an RPC that has it now, an archive node, is searched by state instead.)
   * Other RPC failures are venue errors (outcome unknown).
   */
  async minedAtNonce(nonce: number, opts: MinedAtNonceOptions = {}): Promise<MinedAtNonce | undefined> {
    const c = this.ctx.publicClient;
    const me = this.address.toLowerCase();
    const deadlineAtMs = this.clock.nowMs() + this.nonceScanDeadlineMs;
    const prior =
      opts.previousScan === undefined ? undefined : priorScan(this.ctx.venue, nonce, opts.previousScan);
    try {
      const known = new Set<string>((opts.knownHashes ?? []).map((h) => h.toLowerCase()));
      for (const { info } of this.signed.values()) {
        if (info.nonce === nonce) known.add(info.hash.toLowerCase());
      }
      for (const hash of known) {
        const receipt = await this.receiptIfMined(hash as Hex);
        if (!receipt || receipt.from.toLowerCase() !== me) continue;
        const tx = await c.getTransaction({ hash: receipt.transactionHash });
        if (tx.nonce === nonce) return minedOf(tx, receipt);
      }
      const head = await c.getBlockNumber();
      // The account's count at a block, undefined when the node no longer keeps that block's state.
      const countAt = async (blockNumber: bigint) => {
        for (let attempt = 1; ; attempt++) {
          try {
            return await c.getTransactionCount({ address: this.address, blockNumber });
          } catch (err) {
            if (!isHistoricalStateUnavailable(err)) throw err;
            // A block the chain just made that the node asked does not have yet (a load-balanced RPC
            // whose nodes lag each other): a passing failure, not pruned state.
            if (isHeaderNotFound(err) && blockNumber + HEADER_NOT_FOUND_RECENT_BLOCKS > head) {
              if (attempt >= HEADER_NOT_FOUND_TRIES) throw err;
              await new Promise((r) => setTimeout(r, HEADER_NOT_FOUND_RETRY_MS * attempt));
              continue;
            }
            return undefined;
          }
        }
      };
      // Invariant: count(hi) > nonce; count(lo) <= nonce (lo = -1: before genesis).
      let hi = head;
      const atHead = await countAt(hi);
      if (atHead === undefined) throw new Error(`the RPC has no state at its latest block ${hi}`);
      if (atHead <= nonce) return undefined;
      let lo = -1n;
      let stateGone = false;
      if (prior) {
        // Does the node have the state where the earlier scan started (an archive RPC added since)?
        const atStart = await countAt(prior.from);
        if (atStart === undefined) stateGone = true;
        else if (atStart <= nonce) lo = prior.from;
        else if (prior.from < hi) hi = prior.from;
      }
      for (let step = 1n; !stateGone && lo === -1n && hi - step >= 0n; step *= 2n) {
        const probe = hi - step;
        const count = await countAt(probe);
        if (count === undefined) stateGone = true;
        else if (count > nonce) hi = probe;
        else lo = probe;
      }
      while (!stateGone && hi - lo > 1n) {
        const mid = (hi + lo) / 2n;
        const count = await countAt(mid);
        if (count === undefined) stateGone = true;
        else if (count > nonce) hi = mid;
        else lo = mid;
      }
      if (stateGone) {
        if (prior) {
          // Go on where the earlier scan stopped; its blocks are not read again.
          const mayBeTo = minBig(prior.mayBeTo, hi);
          return await this.scanForNonce(nonce, prior.from, prior.to + 1n, mayBeTo, deadlineAtMs);
        }
        let start = lo + 1n;
        const notBeforeMs = opts.notBeforeMs;
        if (notBeforeMs !== undefined && Number.isFinite(notBeforeMs)) {
          const floor = await this.firstBlockAtOrAfter(
            BigInt(Math.floor(notBeforeMs - NONCE_SCAN_CLOCK_SLACK_MS)),
            start,
            hi,
          );
          if (floor > start) start = floor;
        }
        return await this.scanForNonce(nonce, start, start, hi, deadlineAtMs);
      }
      const block = await c.getBlock({ blockNumber: hi, includeTransactions: true });
      const tx = block.transactions.find((t) => t.from.toLowerCase() === me && t.nonce === nonce);
      // Not there: the chain moved under the search (a reorg); the caller asks again later.
      if (!tx) return undefined;
      return minedOf(tx, await c.getTransactionReceipt({ hash: tx.hash }));
    } catch (err) {
      if (err instanceof HistoricalStateUnavailableError) throw err;
      // asked about a nonce an order's transaction was signed for: outcome unknown, as in status()
      throw toVenueError(err, { ...this.errCtx(undefined, { nonce }), afterSigning: true });
    }
  }

  /**
   * The receipt of `hash` (a transaction signed for an order: its own, a speed-up, a cancel), or undefined
   * while it has none. A failed read is a venue error whose outcome is unknown, as in {@link status}.
   */
  async receiptOf(hash: Hex): Promise<TransactionReceipt | undefined> {
    try {
      return await this.receiptIfMined(hash);
    } catch (err) {
      throw toVenueError(err, { ...this.errCtx(undefined, { txHash: hash }), afterSigning: true });
    }
  }

  /** The receipt of `hash`, or undefined while it has none. */
  private async receiptIfMined(hash: Hex): Promise<TransactionReceipt | undefined> {
    try {
      return await this.ctx.publicClient.getTransactionReceipt({ hash });
    } catch (err) {
      if (isNamed(err, 'TransactionReceiptNotFoundError')) return undefined;
      throw err;
    }
  }

  /**
   * {@link minedAtNonce} without state: this account's transaction at `nonce` in the blocks of a scan that
   * starts at `origin` and may reach `mayBeTo` (the account's count was past the nonce there), read from
   * `next` (blocks before it were read by an earlier lookup) in batches, up to `origin` +
   * `nonceScanMaxBlocks` - 1, and, after the first batch, while `deadlineAtMs` has not passed.
   */
  private async scanForNonce(
    nonce: number,
    origin: bigint,
    next: bigint,
    mayBeTo: bigint,
    deadlineAtMs: number,
  ): Promise<MinedAtNonce> {
    const c = this.ctx.publicClient;
    const me = this.address.toLowerCase();
    const bound = origin + this.nonceScanMaxBlocks - 1n;
    const last = minBig(bound, mayBeTo);
    let readTo = next - 1n;
    let outOfTime = false;
    for (let b = next; b <= last; b += BigInt(NONCE_SCAN_BATCH)) {
      // at least one batch per lookup, so that lookups cut short still get through the range
      if (b > next && this.clock.nowMs() >= deadlineAtMs) {
        outOfTime = true;
        break;
      }
      const numbers: bigint[] = [];
      for (let n = b; n <= last && n < b + BigInt(NONCE_SCAN_BATCH); n++) numbers.push(n);
      const blocks = await Promise.all(
        numbers.map((blockNumber) => c.getBlock({ blockNumber, includeTransactions: true })),
      );
      for (const block of blocks) {
        const tx = block.transactions.find((t) => t.from.toLowerCase() === me && t.nonce === nonce);
        if (tx) return minedOf(tx, await c.getTransactionReceipt({ hash: tx.hash }));
      }
      readTo = numbers[numbers.length - 1] as bigint;
    }
    const scan: NonceScan = {
      nonce,
      scannedFromBlock: origin.toString(),
      scannedToBlock: readTo.toString(),
      mayBeToBlock: mayBeTo.toString(),
      reason: outOfTime ? 'deadline' : readTo >= mayBeTo ? 'not-found' : 'scan-limit',
    };
    const scanned = readTo >= origin ? `blocks ${origin}..${readTo}` : 'no block';
    const mayBe = mayBeTo >= origin ? mayBeTo - origin + 1n : 0n;
    const lead = `nonce ${nonce} was used by a transaction that is none of the known hashes; the RPC no longer has the state to find its block (not an archive node), and it is not in ${scanned}`;
    const tail = 'outcome unknown: add an archive RPC or reconcile by hand';
    const message =
      scan.reason === 'deadline'
        ? `${lead}, read so far of the ${mayBe} blocks it may be in (to ${mayBeTo}); the lookup stopped at its time limit (${this.nonceScanDeadlineMs} ms) and goes on from block ${readTo + 1n} next time; outcome unknown for now`
        : scan.reason === 'scan-limit'
          ? `${lead}, the first ${this.nonceScanMaxBlocks} of the ${mayBe} blocks it may be in (to ${mayBeTo}); ${tail}`
          : `${lead}, every block it may be in from the order's time on (the chain reorganised, or it was mined before the scan's start); ${tail}`;
    throw new HistoricalStateUnavailableError({
      venue: this.ctx.venue,
      message,
      // a scan cut short by its deadline goes on next time; one that read its range will find nothing more
      retryable: scan.reason === 'deadline',
      details: {
        nonce,
        scannedFrom: scan.scannedFromBlock,
        scannedTo: scan.scannedToBlock,
        mayBeTo: scan.mayBeToBlock,
        scanStopped: scan.reason,
      },
      scan,
    });
  }

  /** The first block in `lo`..`hi` whose timestamp is at or after `ms` (hi when none is): headers only. */
  private async firstBlockAtOrAfter(ms: bigint, lo: bigint, hi: bigint): Promise<bigint> {
    const c = this.ctx.publicClient;
    const atOrAfter = async (blockNumber: bigint) =>
      (await c.getBlock({ blockNumber })).timestamp * 1000n >= ms;
    if (lo >= hi || (await atOrAfter(lo))) return lo;
    // Invariant: block lo is before ms; block hi is at or after it (or the last one to scan).
    while (hi - lo > 1n) {
      const mid = (lo + hi) / 2n;
      if (await atOrAfter(mid)) hi = mid;
      else lo = mid;
    }
    return hi;
  }

  /**
   * Whether this account signing `tx` (EIP-1559, no access list, as {@link send} and {@link replace} sign)
   * gives the transaction `hash`: then the transaction `hash` was exactly that call at that nonce, gas and
   * fees. Signing is deterministic (RFC 6979), so this tells a re-signed copy of a call from another call
   * when only the hash of the original is known.
   */
  async signsAs(
    hash: Hex,
    tx: TxRequest & { nonce: number; gas: bigint; maxFeePerGas: bigint; maxPriorityFeePerGas: bigint },
  ): Promise<boolean> {
    const serialized = await this.ctx.account.signTransaction({
      chainId: this.ctx.chain.id,
      type: 'eip1559',
      to: tx.to,
      data: tx.data,
      value: tx.value ?? 0n,
      nonce: tx.nonce,
      gas: tx.gas,
      maxFeePerGas: tx.maxFeePerGas,
      maxPriorityFeePerGas: tx.maxPriorityFeePerGas,
    });
    return keccak256(serialized).toLowerCase() === hash.toLowerCase();
  }

  /**
   * The highest fees at `original.nonce` that a replacement must outbid (each part the highest of any
   * transaction there, the node's replacement rule being on both), with the hash of the transaction with
   * the highest fee cap; undefined when none is known. See {@link replace} for where they come from. A
   * transaction other than `original` that would set either part is looked up at the node first (highest
   * first, only while it would raise the bar above the next one): one the node does not know is not in its
   * pool (its broadcast failed, or the process stopped between recording it and broadcasting it), so it is
   * not outbid, and is returned in `notAtNode`. Beating it is never needed: the node would take the
   * replacement, and whichever of them mines takes the nonce (a cancel that mines cancels the order).
   * `original` itself is taken to be at the node unless `lookUpOriginal` (then it is looked up like the others).
   */
  private async highestFeesAtNonce(
    original: {
      hash: Hex;
      nonce: number;
      maxFeePerGas?: bigint;
      maxPriorityFeePerGas?: bigint;
      sentAtNonce?: readonly KnownAtNonce[];
    },
    clientOrderId: string | undefined,
    lookUpOriginal = false,
  ): Promise<{ top: Required<KnownAtNonce> | undefined; notAtNode: Hex[] }> {
    const fees = new Map<string, Required<KnownAtNonce>>();
    const unknown = new Map<string, Hex>();
    // Transactions the node is known to have (or that need no look-up: the one the record tracks).
    const atNode = new Set<string>(lookUpOriginal ? [] : [original.hash.toLowerCase()]);
    const add = (k: KnownAtNonce) => {
      const key = k.hash.toLowerCase();
      if (k.maxFeePerGas === undefined || k.maxPriorityFeePerGas === undefined) {
        if (!fees.has(key)) unknown.set(key, k.hash);
        return;
      }
      unknown.delete(key);
      const had = fees.get(key);
      fees.set(key, {
        hash: k.hash,
        maxFeePerGas: maxBig(had?.maxFeePerGas ?? 0n, k.maxFeePerGas),
        maxPriorityFeePerGas: maxBig(had?.maxPriorityFeePerGas ?? 0n, k.maxPriorityFeePerGas),
      });
    };
    /** The transaction `hash` as the node has it at this nonce from this account; undefined: it has none. */
    const atNonce = async (hash: Hex): Promise<Transaction | undefined> => {
      let tx: Transaction;
      try {
        tx = await this.ctx.publicClient.getTransaction({ hash });
      } catch (err) {
        if (isNamed(err, 'TransactionNotFoundError')) return undefined;
        // the node could not be asked: nothing is signed on a guess either way
        throw toVenueError(err, this.errCtx(clientOrderId, { txHash: hash, nonce: original.nonce }));
      }
      if (tx.nonce !== original.nonce || tx.from.toLowerCase() !== this.address.toLowerCase())
        return undefined;
      return tx;
    };
    for (const { info } of this.signed.values()) if (info.nonce === original.nonce) add(info);
    add(original);
    for (const k of original.sentAtNonce ?? []) add(k);
    // Hashes without fees (the original when no fees are given, a record's cancel written before its
    // fees were kept): what the node has of them. One it does not know is not in its pool either.
    for (const hash of unknown.values()) {
      const tx = await atNonce(hash);
      if (tx === undefined) continue;
      atNode.add(hash.toLowerCase());
      add({
        hash,
        maxFeePerGas: tx.maxFeePerGas ?? tx.gasPrice ?? 0n,
        maxPriorityFeePerGas: tx.maxPriorityFeePerGas ?? tx.gasPrice ?? 0n,
      });
    }
    const notAtNode: Hex[] = [];
    const kept = async (f: Required<KnownAtNonce>): Promise<boolean> => {
      if (atNode.has(f.hash.toLowerCase())) return true;
      if ((await atNonce(f.hash)) !== undefined) {
        atNode.add(f.hash.toLowerCase());
        return true;
      }
      notAtNode.push(f.hash);
      return false;
    };
    // The fee cap: the highest the node has, highest first (the one the record tracks needs no look-up).
    const byFee = [...fees.values()].sort((a, b) => cmpBig(b.maxFeePerGas, a.maxFeePerGas));
    let top: Required<KnownAtNonce> | undefined;
    let i = 0;
    for (; i < byFee.length && top === undefined; i++)
      if (await kept(byFee[i] as Required<KnownAtNonce>)) top = byFee[i];
    if (top === undefined) return { top: undefined, notAtNode };
    // The tip: the highest of those left the node has, looked up only while one would raise it.
    let tip = top.maxPriorityFeePerGas;
    const byTip = byFee.slice(i).sort((a, b) => cmpBig(b.maxPriorityFeePerGas, a.maxPriorityFeePerGas));
    for (const f of byTip) {
      if (f.maxPriorityFeePerGas <= tip) break;
      if (await kept(f)) {
        tip = f.maxPriorityFeePerGas;
        break;
      }
    }
    return { top: { ...top, maxPriorityFeePerGas: tip }, notAtNode };
  }

  /**
   * Replaces a pending (or dropped) transaction at the same nonce with fees ≥ 12.5 % higher than the
   * highest known at that nonce: `original`'s, those of every transaction in `original.sentAtNonce` (what
   * the order's record says was sent there: the order's transaction, its speed-ups and cancels, by any
   * process), and those of every transaction this sender signed there; a hash whose fees are not given
   * (a record written before they were kept) is looked up at the node, and left out when the node does
   * not know it (then it is not in its pool either). So is any other than `original` that would set the
   * bar: one recorded but never accepted by the node (a failed broadcast, a crash between the record's
   * write and the broadcast) is not outbid, and the refusal over the cap names the one the node has. The
   * node holds the latest replacement, not the
   * original: bumping from less is refused as underpriced, on every try. `speed-up` re-sends the same
   * call, `cancel` sends 0 wei to self. Returns the new transaction after it is mined (or
   * NotConfirmedError). Once the replacement is mined the original can never be. Never above the gas
   * policy's fee cap (`maxFeePerGasGwei`), up to which a replacement may go (a first send signed at most
   * at 8/9 of it, as it is while the base fee allows, can always be replaced once while the base fee is at
   * most the cap): a replacement
   * that would need more is a `FeeCapError` (a `RateLimitError`, not sent) before anything is signed, so
   * nothing changes at the nonce and the transaction there stays the one its record tracks. A transaction
   * at the nonce whose fee cap is above 8/9 of the cap (replaced at or near it, or a first send signed up to it when
   * the base fee left no room) cannot be replaced again under it; the refusal says so (`stuckAtCap`),
   * naming it, the base fee up to which it can be included and the cap that would replace it. Before refusing
   * for `original` itself (taken to be in the node's pool otherwise), the node is asked for it: one it
   * does not have (dropped, as a node may drop one whose fee cap a block's base fee passed) is not
   * outbid, so a nonce it no longer holds can still be cancelled under the cap (a copy of its signed bytes
   * could be broadcast again by anyone).
   */
  async replace(
    original: {
      hash: Hex;
      nonce: number;
      request?: TxRequest;
      maxFeePerGas?: bigint;
      maxPriorityFeePerGas?: bigint;
      /** Every transaction known to have been sent at the nonce (see above). */
      sentAtNonce?: readonly KnownAtNonce[];
    },
    mode: 'speed-up' | 'cancel',
    opts: SendOptions = {},
  ): Promise<SentTx> {
    const info = await this.withLock(async () => {
      const known = this.signed.get(original.hash);
      let { top: prev, notAtNode } = await this.highestFeesAtNonce(original, opts.clientOrderId);
      if (
        prev !== undefined &&
        prev.hash.toLowerCase() === original.hash.toLowerCase() &&
        !this.gasPolicy.replaceableUnderCap(prev.maxFeePerGas)
      ) {
        // `original` sets a bar no replacement can clear under the cap: refuse only if the node has it.
        ({ top: prev, notAtNode } = await this.highestFeesAtNonce(original, opts.clientOrderId, true));
      }
      const prevFees: FeeQuote | undefined =
        prev === undefined
          ? undefined
          : {
              baseFeePerGas: 0n,
              maxFeePerGas: prev.maxFeePerGas,
              maxPriorityFeePerGas: prev.maxPriorityFeePerGas,
            };
      let current: FeeQuote;
      try {
        current = await readFees(this.ctx.publicClient);
      } catch (err) {
        throw toVenueError(err, this.errCtx(opts.clientOrderId));
      }
      // Under the hard fee cap (not the first-send ceiling: a replacement may go up to the cap): it must
      // pay 12.5 % over the fee cap it replaces (the node refuses less as underpriced) and at least the
      // base fee; when that is above the cap nothing is signed, and the transaction at the nonce stays the
      // one its record tracks (no hash is handed to onSigned or kept).
      const fees = this.gasPolicy.capFees(
        prevFees ? bumpFees(prevFees, current) : bumpFees(current, current),
        {
          neededWei: prevFees
            ? maxBig(current.baseFeePerGas, bumpFees(prevFees, NO_FEES).maxFeePerGas)
            : current.baseFeePerGas,
          replacesMaxFeePerGasWei: prevFees?.maxFeePerGas,
          replacesTxHash: prev?.hash,
          nonce: original.nonce,
          what: `a ${mode} of ${original.hash} at nonce ${original.nonce}${
            prev === undefined
              ? ''
              : prev.hash.toLowerCase() === original.hash.toLowerCase()
                ? ` (12.5 % over its fee cap of ${formatGwei(prev.maxFeePerGas)} gwei)`
                : ` (12.5 % over the fee cap of ${prev.hash}, the highest sent at that nonce that the node has: ${formatGwei(prev.maxFeePerGas)} gwei)`
          }${
            notAtNode.length === 0
              ? ''
              : ` (not outbidding ${notAtNode.join(', ')}: recorded at that nonce, but unknown to the node, so not in its pool)`
          }`,
          venue: this.ctx.venue,
          clientOrderId: opts.clientOrderId,
        },
      );
      const request: TxRequest =
        mode === 'cancel'
          ? { to: this.address, data: '0x', value: 0n }
          : (original.request ??
            known?.request ??
            (() => {
              throw new NonceError({
                venue: this.ctx.venue,
                message: `cannot speed up ${original.hash}: its request is unknown to this process`,
              });
            })());
      // A cancel takes the node's estimate too: on Arbitrum it includes the L1 data cost, so a plain
      // transfer needs more than 21000 gas there and a fixed 21000 would be refused.
      const gas =
        mode === 'cancel'
          ? maxBig(
              21_000n,
              ((await this.estimateGas(request, opts.clientOrderId)) * this.gasMultiplierPct) / 100n,
            )
          : (known?.info.gasLimit ?? ((await this.estimateGas(request)) * this.gasMultiplierPct) / 100n);
      return this.signAndBroadcast(request, original.nonce, gas, fees, opts);
    });
    return { hash: info.hash, nonce: info.nonce, receipt: await this.waitFor(info, opts) };
  }
}

/** Math.max for bigints. */
function maxBig(a: bigint, b: bigint): bigint {
  return a >= b ? a : b;
}

/** Zero fees: `bumpFees(prev, NO_FEES)` is the least a replacement of `prev` may pay. */
const NO_FEES: FeeQuote = { baseFeePerGas: 0n, maxFeePerGas: 0n, maxPriorityFeePerGas: 0n };

/** Ascending order of bigints (for sort). */
function cmpBig(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function minBig(a: bigint, b: bigint): bigint {
  return a <= b ? a : b;
}

/** Whether a viem error (anywhere in its cause chain) is named `name`. */
function isNamed(err: unknown, name: string): boolean {
  return err instanceof BaseError && Boolean(err.walk((e) => (e as { name?: string }).name === name));
}

/** A mined transaction and its receipt as {@link MinedAtNonce}. */
function minedOf(tx: Transaction, receipt: TransactionReceipt): MinedAtNonce {
  return { hash: tx.hash, to: tx.to ?? null, data: tx.input, value: tx.value, gas: tx.gas, receipt };
}

const BLOCK_NUMBER = /^[0-9]+$/;

/**
 * An earlier scan passed to {@link TxSender.minedAtNonce} as block numbers; a scan of another nonce or
 * with bad block numbers is refused (it would skip blocks never read).
 */
function priorScan(
  venue: string,
  nonce: number,
  scan: NonceScan,
): { from: bigint; to: bigint; mayBeTo: bigint } {
  const bad = (what: string) =>
    new XhedgeError('INTERNAL', `${venue}: the previousScan passed for nonce ${nonce} is unusable: ${what}`);
  if (scan.nonce !== nonce) throw bad(`it is a scan for nonce ${scan.nonce}`);
  for (const key of ['scannedFromBlock', 'scannedToBlock', 'mayBeToBlock'] as const) {
    if (typeof scan[key] !== 'string' || !BLOCK_NUMBER.test(scan[key])) {
      throw bad(`${key} ${JSON.stringify(scan[key])} is not a block number`);
    }
  }
  const from = BigInt(scan.scannedFromBlock);
  const to = BigInt(scan.scannedToBlock);
  if (to < from - 1n) throw bad(`scannedToBlock ${to} is before scannedFromBlock ${from}`);
  return { from, to, mayBeTo: BigInt(scan.mayBeToBlock) };
}
