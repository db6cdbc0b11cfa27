import type { EvmContext, VenueErrorMapper } from '@xhedge/evm';
import { RevertedError } from '@xhedge/venue';
import {
  type Abi,
  type Address,
  type ContractFunctionArgs,
  ContractFunctionExecutionError,
  type ContractFunctionName,
  type ContractFunctionParameters,
  type ContractFunctionReturnType,
} from 'viem';

type ViewMutability = 'view' | 'pure';

/** Takes one read's typed result from a batch's answer ({@link ReadBatch.add}). */
export type Read<T> = (results: readonly unknown[]) => T;

/**
 * Most calldata (bytes) one Multicall3 `aggregate3` carries; a larger batch is split into chunks of this
 * size that viem sends at once (one round trip, one request per chunk). At about 36 to 68 bytes per Lyra
 * view, a chunk holds 120 to 220 reads: a whole market's boards and strikes, kept well under a node's
 * `eth_call` gas cap (geth's and Nitro's default 50 M) even at tens of thousands of gas per read.
 */
export const MULTICALL_CHUNK_BYTES = 8_192;

/**
 * What a lazy read ({@link ReadBatch.add}) that failed on its own answers in the batch's results: taking it
 * throws `error`, a `RevertedError` naming the read.
 */
class FailedRead {
  constructor(readonly error: RevertedError) {}
}

/**
 * View calls to make together, each with what it is read for (named in the error when it fails). `add`
 * returns the call's typed result, to take from {@link readBatch}'s answer.
 */
export class ReadBatch {
  readonly calls: { call: ContractFunctionParameters & { address: Address }; what: string; lazy: boolean }[] =
    [];

  /**
   * Adds a read. A `lazy` one is read in case it is needed: its own failure (a revert, data that does not
   * decode) does not fail the batch, taking its result does (throws the `RevertedError` naming it), so a
   * call fails on exactly the reads it uses, as when it read them one at a time.
   */
  add<
    const abi extends Abi,
    functionName extends ContractFunctionName<abi, ViewMutability>,
    const args extends ContractFunctionArgs<abi, ViewMutability, functionName>,
  >(
    call: ContractFunctionParameters<abi, ViewMutability, functionName, args> & { address: Address },
    what: string,
    opts: { lazy?: boolean } = {},
  ): Read<ContractFunctionReturnType<abi, ViewMutability, functionName, args>> {
    const index =
      this.calls.push({
        call: call as ContractFunctionParameters & { address: Address },
        what,
        lazy: opts.lazy === true,
      }) - 1;
    return (results) => {
      if (index >= results.length) throw new RangeError(`no result for read ${index} (${what})`);
      const r = results[index];
      if (r instanceof FailedRead) throw r.error;
      return r as ContractFunctionReturnType<abi, ViewMutability, functionName, args>;
    };
  }
}

export interface ReadBatchDeps {
  venue: string;
  ctx: EvmContext;
  errors: VenueErrorMapper;
  /**
   * The chain's Multicall3. Unset: the one the viem chain config names (Ethereum, Arbitrum, Optimism, Base
   * and their testnets), else a deployless Multicall3 (its creation code run inside the `eth_call`, nothing
   * deployed: any node that answers an `eth_call` without `to`, anvil included).
   */
  multicall3?: Address | undefined;
}

/**
 * A read of a batch that the node answered for the batch as a whole: the call itself failed or its result
 * did not decode. viem answers every read of a chunk the node did not answer (network, timeout, wrong
 * chain) with that request's error, a failure of the `aggregate3` call itself.
 */
function isOwnFailure(err: unknown): boolean {
  return err instanceof ContractFunctionExecutionError && err.functionName !== 'aggregate3';
}

/**
 * Makes the batch's reads in Multicall3 `aggregate3` calls at the latest block (one request per
 * {@link MULTICALL_CHUNK_BYTES} of calldata, all sent at once): one round trip whatever the number of
 * reads. Answers every result in the batch's order, or throws; no read is ever left out:
 * - a chunk the node did not answer fails the whole batch with that request's error, mapped as any read's
 *   (`VenueNetworkError`, `VenueTimeoutError`, the chain id mismatch, …), lazy reads in it or not;
 * - reads that failed on their own (reverted, or answered data that does not decode) fail it with a
 *   `RevertedError` naming them (`what`, the first few; `details.failedReads`, up to 10, and
 *   `failedCount`) and the first one's reason; a lazy read that failed on its own fails only what takes
 *   its result ({@link ReadBatch.add}), with such an error naming it alone.
 */
export async function readBatch(deps: ReadBatchDeps, batch: ReadBatch): Promise<unknown[]> {
  if (batch.calls.length === 0) return [];
  const target = deps.multicall3
    ? { multicallAddress: deps.multicall3 }
    : deps.ctx.chain.contracts?.multicall3
      ? {}
      : { deployless: true };
  const answers = await deps.errors.read(() =>
    deps.ctx.publicClient.multicall({
      contracts: batch.calls.map((c) => c.call),
      allowFailure: true,
      batchSize: MULTICALL_CHUNK_BYTES,
      blockTag: 'latest',
      ...target,
    }),
  );
  if (answers.length !== batch.calls.length)
    throw new RangeError(`${answers.length} answers to a batch of ${batch.calls.length} reads`);
  const failed: { what: string; error: unknown }[] = [];
  const out: unknown[] = [];
  answers.forEach((a, i) => {
    const what = batch.calls[i]?.what ?? `read ${i}`;
    if (a.status === 'success') out.push(a.result);
    else if (batch.calls[i]?.lazy && isOwnFailure(a.error))
      out.push(new FailedRead(readsFailed(deps, [{ what, error: a.error }], batch.calls.length)));
    else {
      failed.push({ what, error: a.error });
      out.push(undefined);
    }
  });
  if (failed.length === 0) return out;
  const whole = failed.find((f) => !isOwnFailure(f.error));
  if (whole) throw deps.errors.wrap(whole.error);
  throw readsFailed(deps, failed, batch.calls.length);
}

/** The error of reads of a batch of `total` that failed on their own: names them, with the first one's reason. */
function readsFailed(
  deps: ReadBatchDeps,
  failed: readonly { what: string; error: unknown }[],
  total: number,
): RevertedError {
  const first = deps.errors.wrap(failed[0]?.error);
  const reason = first instanceof RevertedError && first.reason !== undefined ? first.reason : first.message;
  const named = failed.slice(0, 3).map((f) => f.what);
  return new RevertedError({
    venue: deps.venue,
    message:
      failed.length === 1
        ? `read ${named[0]} failed: ${reason}`
        : `${failed.length} of ${total} reads failed (${named.join('; ')}` +
          `${failed.length > named.length ? '; …' : ''}), the first: ${reason}`,
    reason,
    details: { failedReads: failed.slice(0, 10).map((f) => f.what), failedCount: failed.length },
    cause: first,
  });
}
