import {
  AcceptablePriceError,
  InsufficientFundsError,
  InvalidOrderError,
  NonceError,
  NotConfirmedError,
  type OrderOutcome,
  RevertedError,
  StaleOracleError,
  VenueError,
  VenueNetworkError,
  VenueTimeoutError,
} from '@xhedge/venue';
import { type Abi, BaseError, decodeErrorResult, type Hex } from 'viem';
import { redact } from './secrets.ts';

/** A decoded revert: the Solidity error name and its arguments (`Error(string)` gives `reason`). */
export interface DecodedRevert {
  errorName: string;
  args: readonly unknown[];
  /** Human-readable: the string of `Error(string)` or `Name(arg, ...)`. */
  reason: string;
  data: Hex | undefined;
}

/**
 * A venue's RPC serves another chain than the one configured: every read (positions, prices,
 * allowances) would come from the wrong chain. A configuration error (code `VENUE_MISCONFIGURED`), never
 * retried, nothing sent. Names the venue and both chain ids, and the RPC only by its position in
 * `endpoints.rpc` (its URL may hold an API key).
 */
export class ChainIdMismatchError extends VenueError {
  override name = 'ChainIdMismatchError';
  readonly configuredChainId: number;
  readonly rpcChainId: number;
  constructor(p: {
    venue: string;
    configuredChainId: number;
    rpcChainId: number;
    /** Position of the RPC in the venue's `endpoints.rpc` (0-based), when the context built the transports. */
    rpcIndex?: number;
  }) {
    const which = p.rpcIndex === undefined ? 'the RPC' : `RPC endpoints.rpc[${p.rpcIndex}]`;
    super('VENUE_MISCONFIGURED', {
      venue: p.venue,
      message: `${which} serves chain id ${p.rpcChainId}, but the venue is configured for chain id ${p.configuredChainId}; fix the venue's chain or endpoints.rpc`,
      outcome: 'not-sent',
      retryable: false,
      details: {
        configuredChainId: p.configuredChainId,
        rpcChainId: p.rpcChainId,
        ...(p.rpcIndex !== undefined ? { rpcIndex: p.rpcIndex } : {}),
      },
    });
    this.configuredChainId = p.configuredChainId;
    this.rpcChainId = p.rpcChainId;
  }
}

/** The {@link ChainIdMismatchError} in an error's cause chain (viem wraps what a transport throws). */
export function findChainIdMismatch(err: unknown): ChainIdMismatchError | undefined {
  let cur: unknown = err;
  for (let depth = 0; cur && depth < 12; depth++) {
    if (cur instanceof ChainIdMismatchError) return cur;
    cur = typeof cur === 'object' ? (cur as { cause?: unknown }).cause : undefined;
  }
  return undefined;
}

/**
 * What nodes answer when asked about state they no longer keep (a full node, not an archive node: the
 * state of an older block was pruned), each client in its own words:
 * - geth and its forks (op-geth, nitro, bor), hash scheme: `missing trie node <hash> (path ) state 0x<root> is not available, not found`;
 * - geth, path scheme: `historical state <root> is not available`, `state 0x<root> is not available`,
 *   and for traces `historical state not available in path scheme yet`;
 * - geth, a block the node does not have: `header not found` (for a recent block, a node of a load-balanced
 *   RPC lagging the others: {@link isHeaderNotFound}, which `TxSender.minedAtNonce` asks again);
 * - Erigon 3: `old data not available due to pruning`;
 * - Nethermind: `No state available for block <number> (<hash>)`;
 * - reth: `state at block #<number> is pruned`;
 * - Besu: `World state unavailable`;
 * - anvil `--prune-history`: `BlockOutOfRangeError: block height is <head> but requested was <number>`.
 */
const HISTORICAL_STATE_UNAVAILABLE: readonly RegExp[] = [
  /missing trie node/i,
  /historical state (?:[0-9a-fx]+ )?(?:is )?not available/i,
  /\bstate 0x[0-9a-f]+ is not available/i,
  /header not found/i,
  /old data not available due to pruning/i,
  /no state available for block/i,
  /state at block #?[0-9]+ is pruned/i,
  /world state unavailable/i,
  /BlockOutOfRangeError/,
];

/**
 * Whether an RPC error (anywhere in its cause chain: message, viem's `shortMessage` and `details`) is the
 * node saying it has no state for the block asked about ({@link HISTORICAL_STATE_UNAVAILABLE}): asking
 * the same node again will not help, unlike a transport failure.
 */
export function isHistoricalStateUnavailable(err: unknown): boolean {
  let cur: unknown = err;
  for (let depth = 0; cur && typeof cur === 'object' && depth < 12; depth++) {
    const e = cur as { message?: unknown; shortMessage?: unknown; details?: unknown };
    for (const text of [e.message, e.shortMessage, e.details]) {
      if (typeof text === 'string' && HISTORICAL_STATE_UNAVAILABLE.some((re) => re.test(text))) return true;
    }
    cur = (cur as { cause?: unknown }).cause;
  }
  return false;
}

/**
 * Whether an RPC error (anywhere in its cause chain) is geth's `header not found`: the node answering has
 * no such block. Also what a load-balanced RPC answers for a block its other nodes just mined (the node
 * asked lags by a block or two), so for a recent block it is a passing failure, not pruned state.
 */
export function isHeaderNotFound(err: unknown): boolean {
  let cur: unknown = err;
  for (let depth = 0; cur && typeof cur === 'object' && depth < 12; depth++) {
    const e = cur as { message?: unknown; shortMessage?: unknown; details?: unknown };
    for (const text of [e.message, e.shortMessage, e.details]) {
      if (typeof text === 'string' && /header not found/i.test(text)) return true;
    }
    cur = (cur as { cause?: unknown }).cause;
  }
  return false;
}

/**
 * How far a block scan for the transaction at a nonce got without finding it (`TxSender.minedAtNonce`),
 * JSON-safe (block numbers as decimal strings): persisted with an order record, so that a later lookup
 * reads only the blocks not read yet, and none once the range is done.
 */
export interface NonceScan {
  nonce: number;
  /** The first block read. */
  scannedFromBlock: string;
  /** The last block read (`scannedFromBlock` - 1 when none was). */
  scannedToBlock: string;
  /**
   * The last block the transaction can be in: the account's transaction count was already past the nonce
   * there (read from the chain's state), so later blocks cannot hold it.
   */
  mayBeToBlock: string;
  /**
   * Why the scan stopped: `not-found` every block up to `mayBeToBlock` was read (final); `scan-limit` it
   * read the sender's `nonceScanMaxBlocks` (final for that bound); `deadline` the lookup ran out of time
   * (`nonceScanDeadlineMs`) and the next one goes on from `scannedToBlock` + 1.
   */
  reason: 'not-found' | 'scan-limit' | 'deadline';
}

/**
 * Which transaction used a nonce could not be found: it is none of the hashes known for it, the RPC no
 * longer keeps the state of the blocks where it would be (not an archive node), and the block scan that
 * needs no state did not reach it. Outcome unknown, like {@link NotConfirmedError}, but not retryable
 * (unless the scan only ran out of time, `scan.reason` `deadline`): the same RPC will not answer differently (an archive RPC in `endpoints.rpc` or a reconciliation by hand
 * will). `details.reason` is `historical-state-unavailable`; `scan` says what the scan read (to be passed
 * back to the next lookup, which then does not read those blocks again).
 */
export class HistoricalStateUnavailableError extends NotConfirmedError {
  override name = 'HistoricalStateUnavailableError';
  readonly scan: NonceScan | undefined;
  constructor(p: {
    venue: string;
    message: string;
    details?: Record<string, unknown>;
    scan?: NonceScan;
    /** Only a scan stopped by its deadline (it goes on next time). @defaultValue false */
    retryable?: boolean;
  }) {
    super({
      venue: p.venue,
      message: p.message,
      retryable: p.retryable ?? false,
      details: { reason: 'historical-state-unavailable', ...p.details },
    });
    this.scan = p.scan;
  }
}

/** What a venue says a named revert means; unlisted reverts become {@link RevertedError}. */
export type RevertClass = 'acceptable-price' | 'insufficient-funds' | 'stale-oracle' | 'invalid-order';
export type RevertClassifier = (revert: DecodedRevert) => RevertClass | undefined;

export interface ErrorContext {
  venue: string;
  /** ABI used to decode custom errors (the venue's contracts). */
  abi?: Abi;
  classify?: RevertClassifier;
  clientOrderId?: string;
  /** Outcome when the error is a revert: `not-sent` for a simulation, `rejected` for a mined revert. */
  revertOutcome?: OrderOutcome;
  /**
   * The error came from broadcasting a transaction that is already signed (its hash handed out). Then
   * only a decoded revert is final: "nonce too low", "already known", "insufficient funds" or a transport
   * failure can all follow an earlier delivery of the same bytes (a retry or the fallback transport
   * re-sends after a lost response, and the first copy may be mined), so their outcome is `unknown`.
   */
  afterSigning?: boolean;
  /** Values to scrub from messages (keys, RPC URLs with API keys). */
  secrets?: readonly string[];
  details?: Record<string, unknown>;
}

function stringifyArg(v: unknown): string {
  return typeof v === 'bigint'
    ? v.toString()
    : typeof v === 'string'
      ? v
      : JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x));
}

/** Finds revert data (hex) anywhere in a viem error's cause chain. */
export function findRevertData(err: unknown): Hex | undefined {
  let cur: unknown = err;
  for (let depth = 0; cur && depth < 12; depth++) {
    if (typeof cur === 'object' && cur !== null) {
      const data = (cur as { data?: unknown }).data;
      if (typeof data === 'string' && /^0x[0-9a-fA-F]*$/.test(data) && data.length >= 10) return data as Hex;
      if (typeof data === 'object' && data !== null) {
        const inner = (data as { data?: unknown }).data;
        if (typeof inner === 'string' && /^0x[0-9a-fA-F]*$/.test(inner) && inner.length >= 10)
          return inner as Hex;
      }
      cur = (cur as { cause?: unknown }).cause;
    } else break;
  }
  return undefined;
}

/** Decodes revert data with the venue ABI (plus the built-in `Error(string)` / `Panic(uint256)`). */
export function decodeRevert(
  data: Hex | undefined,
  abi: Abi = [],
  fallbackMessage = 'execution reverted',
): DecodedRevert {
  if (!data || data === '0x') return { errorName: 'unknown', args: [], reason: fallbackMessage, data };
  try {
    const d = decodeErrorResult({ abi, data });
    const args = (d.args ?? []) as readonly unknown[];
    const reason =
      d.errorName === 'Error' && typeof args[0] === 'string'
        ? args[0]
        : `${d.errorName}(${args.map(stringifyArg).join(', ')})`;
    return { errorName: d.errorName, args, reason, data };
  } catch {
    return { errorName: 'unknown', args: [], reason: `unrecognized revert data ${data.slice(0, 10)}`, data };
  }
}

/** Whether a viem error (anywhere in its cause chain) is the node reporting a revert. */
export function isRevert(err: unknown): boolean {
  if (!(err instanceof BaseError)) return false;
  return Boolean(
    err.walk((e) => {
      const name = (e as { name?: string }).name ?? '';
      return (
        name === 'ContractFunctionRevertedError' ||
        name === 'ExecutionRevertedError' ||
        name === 'RawContractError' ||
        /execution reverted|revert/i.test((e as { shortMessage?: string }).shortMessage ?? '')
      );
    }),
  );
}

function walkName(err: unknown, names: readonly string[]): boolean {
  if (!(err instanceof BaseError)) return false;
  return Boolean(err.walk((e) => names.includes((e as { name?: string }).name ?? '')));
}

/** Builds the venue error for a decoded revert using the classifier. */
export function revertToVenueError(revert: DecodedRevert, ctx: ErrorContext, cause?: unknown): VenueError {
  const cls = ctx.classify?.(revert);
  const base = {
    venue: ctx.venue,
    message: redact(`reverted: ${revert.reason}`, ctx.secrets),
    ...(ctx.clientOrderId !== undefined ? { clientOrderId: ctx.clientOrderId } : {}),
    details: { errorName: revert.errorName, args: revert.args.map(stringifyArg), ...ctx.details },
    cause,
  };
  const outcome = ctx.revertOutcome ?? 'rejected';
  switch (cls) {
    case 'acceptable-price':
      return new AcceptablePriceError({ ...base, outcome });
    case 'insufficient-funds':
      return new InsufficientFundsError({ ...base, outcome });
    case 'stale-oracle':
      return new StaleOracleError({ ...base, outcome });
    case 'invalid-order':
      return new InvalidOrderError({ ...base, outcome });
    default:
      return new RevertedError({ ...base, outcome, reason: revert.reason });
  }
}

/**
 * Maps any error from viem or the node into the venue error tree, with secrets scrubbed:
 * reverts → RevertedError (or the classifier's class), funds → InsufficientFundsError, nonce problems →
 * NonceError, timeouts → VenueTimeoutError (outcome unknown), transport failures → VenueNetworkError.
 * Non-revert errors are `not-sent`, or `unknown` with {@link ErrorContext.afterSigning}.
 * VenueErrors pass through unchanged, and so does a {@link ChainIdMismatchError} viem wrapped.
 */
export function toVenueError(err: unknown, ctx: ErrorContext): VenueError {
  if (err instanceof VenueError) return err;
  const mismatch = findChainIdMismatch(err);
  if (mismatch) return mismatch;
  const short =
    err instanceof BaseError ? err.shortMessage : err instanceof Error ? err.message : String(err);
  const message = redact(short, ctx.secrets);
  // viem puts the node's own words (e.g. "nonce too low") in `details`; classify on both.
  const text = `${short} ${err instanceof BaseError ? err.details : ''}`;
  const common = {
    venue: ctx.venue,
    ...(ctx.clientOrderId !== undefined ? { clientOrderId: ctx.clientOrderId } : {}),
    ...(ctx.details ? { details: ctx.details } : {}),
  };
  // After signing, a refusal by the node answering now does not mean no node took the transaction.
  const refused = ctx.afterSigning
    ? {
        outcome: 'unknown' as const,
        hint: '; the signed transaction may still have been broadcast, reconcile by hash',
      }
    : { outcome: 'not-sent' as const, hint: '' };
  if (walkName(err, ['InsufficientFundsError']) || /insufficient funds/i.test(text)) {
    return new InsufficientFundsError({
      ...common,
      message: message + refused.hint,
      outcome: refused.outcome,
    });
  }
  if (
    walkName(err, ['NonceTooLowError', 'NonceTooHighError', 'NonceMaxValueError']) ||
    /nonce (too low|too high)|replacement transaction underpriced/i.test(text)
  ) {
    return new NonceError({
      ...common,
      message: redact(text, ctx.secrets) + refused.hint,
      outcome: refused.outcome,
    });
  }
  if (isRevert(err)) {
    return revertToVenueError(decodeRevert(findRevertData(err), ctx.abi, message), ctx, undefined);
  }
  if (walkName(err, ['TimeoutError', 'WaitForTransactionReceiptTimeoutError'])) {
    return new VenueTimeoutError({ ...common, message });
  }
  // A transport failure after the bytes left may still have reached the node.
  return new VenueNetworkError({ ...common, message: message + refused.hint, outcome: refused.outcome });
}
