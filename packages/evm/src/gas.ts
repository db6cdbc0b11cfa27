import { type Clock, Dec, systemClock, type Urgency, XhedgeError } from '@xhedge/core';
import { RateLimitError } from '@xhedge/venue';
import { type Address, size as byteSize, formatGwei, type Hex, type PublicClient, parseAbi } from 'viem';
import { L1_FEE_IN_GAS, type L1DataFeeKind } from './chains.ts';

/** EIP-1559 fees for the next transaction, wei. */
export interface FeeQuote {
  baseFeePerGas: bigint;
  maxFeePerGas: bigint;
  maxPriorityFeePerGas: bigint;
}

export interface FeeOptions {
  /** Headroom on the base fee for the next blocks. @defaultValue 2 (viem's default multiplier) */
  baseFeeMultiplier?: number;
  /** Priority fee floor, wei. @defaultValue 0 */
  minPriorityFeeWei?: bigint;
}

/**
 * Reads EIP-1559 fees from the node: base fee of the latest block and the priority fee from
 * `eth_maxPriorityFeePerGas` (falling back to the `eth_feeHistory` median of the last blocks).
 */
export async function readFees(client: PublicClient, opts: FeeOptions = {}): Promise<FeeQuote> {
  const block = await client.getBlock({ blockTag: 'latest' });
  const baseFeePerGas = block.baseFeePerGas ?? 0n;
  let priority: bigint;
  try {
    priority = await client.estimateMaxPriorityFeePerGas();
  } catch {
    const hist = await client.getFeeHistory({ blockCount: 5, rewardPercentiles: [50] });
    const rewards = (hist.reward ?? []).map((r) => r[0] ?? 0n).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    priority = rewards[Math.floor(rewards.length / 2)] ?? 0n;
  }
  const floor = opts.minPriorityFeeWei ?? 0n;
  const maxPriorityFeePerGas = priority > floor ? priority : floor;
  const mult = BigInt(Math.round((opts.baseFeeMultiplier ?? 2) * 100));
  return {
    baseFeePerGas,
    maxPriorityFeePerGas,
    maxFeePerGas: (baseFeePerGas * mult) / 100n + maxPriorityFeePerGas,
  };
}

/** Fees at least `bumpBps` above the previous ones (replacement rules: ≥ +10% on most nodes; we use 12.5%). */
export function bumpFees(prev: FeeQuote, current: FeeQuote, bumpBps = 1250n): FeeQuote {
  const bump = (v: bigint) => (v * (10_000n + bumpBps) + 9_999n) / 10_000n;
  const maxPriorityFeePerGas = maxBig(current.maxPriorityFeePerGas, bump(prev.maxPriorityFeePerGas));
  return {
    baseFeePerGas: current.baseFeePerGas,
    maxPriorityFeePerGas,
    maxFeePerGas: maxBig(maxBig(current.maxFeePerGas, bump(prev.maxFeePerGas)), maxPriorityFeePerGas),
  };
}

/** Math.max for bigints. */
function maxBig(a: bigint, b: bigint): bigint {
  return a >= b ? a : b;
}

/** Math.min for bigints. */
function minBig(a: bigint, b: bigint): bigint {
  return a <= b ? a : b;
}

/** Estimates the L1 data fee (wei) an L2 charges on top of L2 gas for a transaction's bytes. */
export interface L1DataFeeModel {
  readonly kind: L1DataFeeKind;
  estimateWei(tx: { to: Address; data: Hex; serialized: Hex }): Promise<bigint>;
}

export const OP_GAS_PRICE_ORACLE: Address = '0x420000000000000000000000000000000000000F';
export const ARB_NODE_INTERFACE: Address = '0x00000000000000000000000000000000000000C8';
const opAbi = parseAbi(['function getL1Fee(bytes _data) view returns (uint256)']);
const arbAbi = parseAbi([
  'function gasEstimateL1Component(address to, bool contractCreation, bytes data) payable returns (uint64 gasEstimateForL1, uint256 baseFee, uint256 l1BaseFeeEstimate)',
]);

export interface L1DataFeeModelOptions {
  /** For `fixed-per-byte` (local chains): wei charged per byte of the serialized transaction. @defaultValue 16 gwei·16 = 256 gwei (≈ an L2 at 16 gas/byte and 16 gwei L1) */
  weiPerByte?: bigint;
  /** Override the predeploy/precompile address (tests install a stand-in there). */
  address?: Address;
}

/**
 * The L1 data fee model for a chain kind:
 * - `op-stack`: `GasPriceOracle.getL1Fee(serializedTx)` at the 0x420…0F predeploy;
 * - `arbitrum`: `NodeInterface.gasEstimateL1Component(to, false, data)` → L1 gas × L2 base fee;
 * - `fixed-per-byte`: a configured estimate (anvil has no L1);
 * - `none`: Ethereum L1.
 */
export function l1DataFeeModel(
  kind: L1DataFeeKind,
  client: PublicClient,
  opts: L1DataFeeModelOptions = {},
): L1DataFeeModel {
  switch (kind) {
    case 'none':
      return { kind, estimateWei: async () => 0n };
    case 'fixed-per-byte': {
      const perByte = opts.weiPerByte ?? 256_000_000_000n;
      return { kind, estimateWei: async ({ serialized }) => BigInt(byteSize(serialized)) * perByte };
    }
    case 'op-stack':
      return {
        kind,
        estimateWei: ({ serialized }) =>
          client.readContract({
            address: opts.address ?? OP_GAS_PRICE_ORACLE,
            abi: opAbi,
            functionName: 'getL1Fee',
            args: [serialized],
          }),
      };
    case 'arbitrum':
      return {
        kind,
        estimateWei: async ({ to, data }) => {
          const { result } = await client.simulateContract({
            address: opts.address ?? ARB_NODE_INTERFACE,
            abi: arbAbi,
            functionName: 'gasEstimateL1Component',
            args: [to, false, data],
          });
          const [gasForL1, baseFee] = result;
          return BigInt(gasForL1) * baseFee;
        },
      };
  }
}

/** The all-in cost of one transaction: L2 execution gas plus the L1 data fee (`totalWei = executionWei + l1DataWei`). */
export interface TxCost {
  gasLimit: bigint;
  /** L2 execution; on a chain whose gas includes the L1 part (Arbitrum), the gas cost minus that part. */
  executionWei: bigint;
  l1DataWei: bigint;
  totalWei: bigint;
  /** `totalWei` in USD at `gasAssetUsd` (ETH price); float, for routing comparisons. */
  totalUsd: number;
}

/**
 * Cost at the expected price (base + priority), not the max fee cap, which is only a bound. The L1 data
 * fee is added on top of gas unless the chain family's gas already includes it ({@link L1_FEE_IN_GAS},
 * Arbitrum): then the total is gas × price and `l1DataWei` is the share of it that pays for L1 data.
 */
export function txCost(p: {
  gasLimit: bigint;
  fees: FeeQuote;
  l1DataWei: bigint;
  gasAssetUsd: number;
  /** The chain family of the L1 fee. @defaultValue an L1 fee charged on top of gas (OP Stack) */
  l1DataFeeKind?: L1DataFeeKind;
}): TxCost {
  if (!Number.isFinite(p.gasAssetUsd) || p.gasAssetUsd < 0) {
    throw new XhedgeError('NUMERIC', `gasAssetUsd must be a finite USD price >= 0, got ${p.gasAssetUsd}`, {
      details: { gasAssetUsd: String(p.gasAssetUsd) },
    });
  }
  const gasWei = p.gasLimit * (p.fees.baseFeePerGas + p.fees.maxPriorityFeePerGas);
  const inGas = p.l1DataFeeKind !== undefined && L1_FEE_IN_GAS[p.l1DataFeeKind];
  const l1DataWei = inGas && p.l1DataWei > gasWei ? gasWei : p.l1DataWei;
  const executionWei = inGas ? gasWei - l1DataWei : gasWei;
  const totalWei = executionWei + l1DataWei;
  return {
    gasLimit: p.gasLimit,
    executionWei,
    l1DataWei,
    totalWei,
    totalUsd: (Number(totalWei) / 1e18) * p.gasAssetUsd,
  };
}

export interface GasPolicyOptions {
  /** Above this base fee (gwei) a normal hedge waits. @defaultValue Infinity (never waits) */
  maxBaseFeeGwei?: number;
  /**
   * Hard cap on `maxFeePerGas`, gwei (a finite number > 0): no transaction is signed with a higher fee
   * cap, first send or replacement, urgent or not. A first send keeps room under it for one replacement
   * (12.5 % more) while the base fee allows: at or below ⌊cap × 8 / 9⌋ (the first-send ceiling) while the
   * next block's base fee cannot be above that, else up to the cap itself (not replaceable under it) only
   * when the send allows it (`allowUnreplaceableUnderCap`: risk-reducing orders) and otherwise not sent,
   * and not sent when the next block's base fee can be above the cap ({@link GasPolicy.capFirstSendFees}); a
   * replacement may go up to the cap ({@link GasPolicy.capFees}). @defaultValue no cap
   */
  maxFeePerGasGwei?: number;
  /** How long a normal hedge may wait for fees to fall before giving up. @defaultValue 60000 */
  maxWaitMs?: number;
  /** Poll interval while waiting. @defaultValue 2000 */
  pollMs?: number;
  clock?: Clock;
  /** Injected for tests; defaults to a real timer. */
  sleep?: (ms: number) => Promise<void>;
}

/**
 * The highest base fee the block after one with `latestWei` can have: EIP-1559 moves it by at most
 * 12.5 % a block (`⌈latest × 9 / 8⌉`).
 */
export function nextBaseFeeCeilingWei(latestWei: bigint): bigint {
  return (latestWei * 9n + 7n) / 8n;
}

/**
 * Waits while the base fee is above `maxBaseFeeGwei` unless the hedge is urgent (an urgent hedge — drift
 * past the urgency multiple — pays up to the fee cap). When fees stay high past `maxWaitMs`, throws a
 * {@link RateLimitError} (not sent, retryable, `retryAfterMs`), so the job is retried later rather than paying.
 *
 * `maxFeePerGasGwei` is a hard ceiling on what any transaction may pay per gas, urgent or not, first send
 * or replacement. A node takes a replacement (speed-up or cancel) only at higher fees (10 % on geth; 12.5 %
 * is paid), so under the cap this sender can replace a transaction only while its fee cap is at most
 * 8/9 of the cap:
 * - a first send ({@link capFirstSendFees}) is signed with a `maxFeePerGas` of at most the first-send
 *   ceiling ⌊cap × 8 / 9⌋ (the priority fee at most that too) while the next block's base fee (the latest
 *   × 1.125) cannot be above that ceiling, so that one replacement of it fits under the cap; when it can,
 *   but cannot be above the cap, it is signed up to the cap itself only when the send says so
 *   (`allowUnreplaceableUnderCap`, which the adapters set for risk-reducing orders only): then it can
 *   be included under the cap, though no replacement of it fits under the cap ({@link replaceableUnderCap}
 *   false), and if the base fee rises past it it holds the account's nonce with no cancel possible under
 *   the cap; any other send is refused there, not sent ({@link FeeCapError}, `details.replaceableUnderCap`
 *   false); when the next block's base fee can be above the cap it is refused, not sent ({@link FeeCapError},
 *   naming the base fee it waits for and the cap that would send it), since it could be stuck from the start;
 * - a replacement ({@link capFees}) may go up to the cap itself; a transaction at the nonce already within
 *   12.5 % of the cap cannot be replaced again under it: refused, not sent ({@link FeeCapError} with
 *   `stuckAtCap`), naming the base fee up to which it can be included and the cap that would replace it.
 */
export class GasPolicy {
  readonly maxBaseFeeWei: bigint | undefined;
  /** The hard cap on `maxFeePerGas`, wei; undefined: no cap. */
  readonly maxFeePerGasWei: bigint | undefined;
  /**
   * The highest `maxFeePerGas` a first send is signed with while it keeps room for one replacement, wei:
   * ⌊cap × 8 / 9⌋, so that a replacement 12.5 % above it is still at most the cap; undefined: no cap. It
   * is also the highest latest base fee at which a first send is sent at all (then up to the cap).
   */
  readonly firstSendMaxFeePerGasWei: bigint | undefined;
  private readonly maxWaitMs: number;
  private readonly pollMs: number;
  private readonly clock: Clock;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(opts: GasPolicyOptions = {}) {
    const cap = opts.maxBaseFeeGwei;
    // NaN would read as "no cap" below, silently dropping the limit: refused, as is a negative cap.
    if (cap !== undefined && (Number.isNaN(cap) || cap < 0)) {
      throw new XhedgeError('CONFIG_INVALID', `maxBaseFeeGwei must be a number of gwei >= 0, got ${cap}`, {
        details: { maxBaseFeeGwei: String(cap) },
      });
    }
    this.maxBaseFeeWei =
      cap === undefined || cap === Number.POSITIVE_INFINITY ? undefined : BigInt(Math.round(cap * 1e9));
    const feeCap: unknown = opts.maxFeePerGasGwei;
    if (feeCap !== undefined) {
      // No cap is written by leaving it out: Infinity, NaN, 0 or a negative number is a mistake, refused.
      const wei =
        typeof feeCap === 'number' && Number.isFinite(feeCap) && feeCap > 0
          ? BigInt(new Dec(feeCap).mul(1e9).toFixed(0, Dec.ROUND_DOWN))
          : 0n;
      if (wei <= 0n) {
        throw new XhedgeError(
          'CONFIG_INVALID',
          `maxFeePerGasGwei must be a finite number of gwei > 0 (at least 1 wei), got ${String(feeCap)}`,
          { details: { maxFeePerGasGwei: String(feeCap) } },
        );
      }
      this.maxFeePerGasWei = wei;
      this.firstSendMaxFeePerGasWei = (wei * 8n) / 9n;
    }
    this.maxWaitMs = opts.maxWaitMs ?? 60_000;
    this.pollMs = opts.pollMs ?? 2_000;
    this.clock = opts.clock ?? systemClock;
    this.sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  }

  /** Whether fees are acceptable now for this urgency. */
  acceptable(fees: FeeQuote, urgency: Urgency): boolean {
    return (
      urgency === 'urgent' || this.maxBaseFeeWei === undefined || fees.baseFeePerGas <= this.maxBaseFeeWei
    );
  }

  /** Returns acceptable fees, polling `read` while they are too high; throws RateLimitError after `maxWaitMs`. */
  async waitForFees(read: () => Promise<FeeQuote>, urgency: Urgency, venue: string): Promise<FeeQuote> {
    const start = this.clock.nowMs();
    for (;;) {
      const fees = await read();
      if (this.acceptable(fees, urgency)) return fees;
      if (this.clock.nowMs() - start >= this.maxWaitMs) {
        throw new RateLimitError({
          venue,
          message: `base fee ${fees.baseFeePerGas} wei is above the policy cap ${this.maxBaseFeeWei} wei; not urgent, waited ${this.maxWaitMs} ms`,
          retryAfterMs: this.pollMs,
          details: { baseFeeWei: fees.baseFeePerGas.toString(), capWei: String(this.maxBaseFeeWei) },
        });
      }
      await this.sleep(this.pollMs);
    }
  }

  /**
   * Whether a transaction signed with `maxFeePerGasWei` can be replaced (sped up or cancelled: 12.5 % more
   * on both fees) under the fee cap; always without a cap.
   */
  replaceableUnderCap(maxFeePerGasWei: bigint): boolean {
    return this.maxFeePerGasWei === undefined || bumpFeeCap(maxFeePerGasWei) <= this.maxFeePerGasWei;
  }

  /**
   * The most a first send's `maxFeePerGas` may be at a latest base fee of `baseFeeWei`: the first-send
   * ceiling while the next block's base fee cannot be above it (room for one replacement), else the cap.
   */
  private firstSendCeilingAt(baseFeeWei: bigint): bigint | undefined {
    const ceiling = this.firstSendMaxFeePerGasWei;
    if (ceiling === undefined) return undefined;
    return nextBaseFeeCeilingWei(baseFeeWei) <= ceiling ? ceiling : this.maxFeePerGasWei;
  }

  /**
   * `fees` as a first send may be signed with under the fee cap: `maxFeePerGas` lowered to the first-send
   * ceiling {@link firstSendMaxFeePerGasWei} (⌊cap × 8 / 9⌋; what is cut is headroom over the base fee,
   * which the transaction pays only if the base fee rises) while the next block's base fee (the latest ×
   * 1.125, rounded up) cannot be above it, so that a speed-up or cancel of it (12.5 % more) fits under the
   * cap; else lowered to the cap itself, when the next block's base fee cannot be above the cap — then no
   * replacement of it fits under the cap ({@link replaceableUnderCap}; the sender states it in
   * `SignedTxInfo.replaceableUnderCap`), so it goes only with `allowUnreplaceableUnderCap` (a risk-reducing
   * send); without it that is a {@link FeeCapError} (not sent, retryable, `details.replaceableUnderCap`
   * false) naming the base fee, the fee needed, what it would be signed with, the replacement that would
   * not fit under the cap, the base fee at which it goes with room, and the cap that would send it now with
   * room. `maxPriorityFeePerGas` is lowered to `maxFeePerGas`. Throws a
   * {@link FeeCapError} (not sent, retryable) when the next block's base fee can be above the cap (the
   * latest base fee above the first-send ceiling): the transaction could be stuck from the start; the
   * refusal names the fee needed, the first-send ceiling and the cap in gwei, the latest base fee up to which
   * it goes, and the cap that would send it now. The tip is clamped with or without a cap.
   */
  capFirstSendFees(
    fees: FeeQuote,
    p: {
      venue: string;
      clientOrderId?: string | undefined;
      /**
       * Whether the send may be signed up to the cap with no room for a replacement under it (see
       * `SendOptions.allowUnreplaceableUnderCap`). @defaultValue false: such a send is refused
       */
      allowUnreplaceableUnderCap?: boolean | undefined;
    },
  ): FeeQuote {
    const cap = this.maxFeePerGasWei;
    const ceiling = this.firstSendMaxFeePerGasWei;
    if (cap !== undefined && ceiling !== undefined) {
      const neededWei = nextBaseFeeCeilingWei(fees.baseFeePerGas);
      if (neededWei > cap) {
        // a cap whose first-send ceiling covers the need: ⌈needed × 9 / 8⌉
        const roomyCapWei = nextBaseFeeCeilingWei(neededWei);
        throw new FeeCapError({
          venue: p.venue,
          message: `a first send needs a maxFeePerGas of ${formatGwei(neededWei)} gwei (the next block's base fee can be 12.5 % above the latest's ${formatGwei(fees.baseFeePerGas)} gwei), above the first-send ceiling ${formatGwei(ceiling)} gwei (8/9 of the cap maxFeePerGasGwei ${formatGwei(cap)} gwei, which leaves room to replace it once under the cap) and above the cap itself; not sent: it goes once the latest base fee is at most ${formatGwei(ceiling)} gwei, or now with maxFeePerGasGwei raised to at least ${formatGwei(roomyCapWei)} gwei (room to replace it once), or to at least ${formatGwei(neededWei)} gwei for a risk-reducing send (allowUnreplaceableUnderCap: signed up to that cap, no room for a replacement)`,
          retryAfterMs: this.pollMs,
          ...(p.clientOrderId !== undefined ? { clientOrderId: p.clientOrderId } : {}),
          details: {
            neededMaxFeePerGasGwei: formatGwei(neededWei),
            firstSendMaxFeePerGasGwei: formatGwei(ceiling),
            maxFeePerGasGwei: formatGwei(cap),
            baseFeeGwei: formatGwei(fees.baseFeePerGas),
            sendsAtBaseFeeGwei: formatGwei(ceiling),
          },
        });
      }
      const clamped = this.clampFees(fees, 'first-send');
      if (!this.replaceableUnderCap(clamped.maxFeePerGas) && p.allowUnreplaceableUnderCap !== true) {
        // The base fee is in the band where the next block's can be above the first-send ceiling but
        // not above the cap: signed up to the cap, no speed-up or cancel of it would fit under the cap,
        // and if the base fee then rose past its fee cap it would hold the account's nonce with nothing
        // (the kill switch's cancel included) able to replace it. Only a risk-reducing send may go so.
        const replacementWei = bumpFeeCap(clamped.maxFeePerGas);
        const roomyCapWei = nextBaseFeeCeilingWei(neededWei);
        // the highest latest base fee whose next block's base fee is at most the first-send ceiling
        const roomAtBaseFeeWei = (ceiling * 8n) / 9n;
        throw new FeeCapError({
          venue: p.venue,
          message: `a first send needs a maxFeePerGas of ${formatGwei(neededWei)} gwei (the next block's base fee can be 12.5 % above the latest's ${formatGwei(fees.baseFeePerGas)} gwei), above the first-send ceiling ${formatGwei(ceiling)} gwei (8/9 of the cap maxFeePerGasGwei ${formatGwei(cap)} gwei); it would be signed with a maxFeePerGas of ${formatGwei(clamped.maxFeePerGas)} gwei, and a replacement of it (a speed-up or cancel, 12.5 % more: ${formatGwei(replacementWei)} gwei) would not fit under the cap, so if the base fee rose past it nothing could cancel it under the cap while it holds the account's nonce; not sent: only a risk-reducing send (allowUnreplaceableUnderCap) goes without room for a replacement; it goes once the latest base fee is at most ${formatGwei(roomAtBaseFeeWei)} gwei, or now with maxFeePerGasGwei raised to at least ${formatGwei(roomyCapWei)} gwei`,
          retryAfterMs: this.pollMs,
          ...(p.clientOrderId !== undefined ? { clientOrderId: p.clientOrderId } : {}),
          details: {
            replaceableUnderCap: false,
            neededMaxFeePerGasGwei: formatGwei(neededWei),
            signedMaxFeePerGasGwei: formatGwei(clamped.maxFeePerGas),
            replacementMaxFeePerGasGwei: formatGwei(replacementWei),
            firstSendMaxFeePerGasGwei: formatGwei(ceiling),
            maxFeePerGasGwei: formatGwei(cap),
            baseFeeGwei: formatGwei(fees.baseFeePerGas),
            sendsAtBaseFeeGwei: formatGwei(roomAtBaseFeeWei),
            roomyMaxFeePerGasGwei: formatGwei(roomyCapWei),
          },
        });
      }
      return clamped;
    }
    return this.clampFees(fees, 'first-send');
  }

  /**
   * `fees` as a replacement (speed-up or cancel) may be signed with under the fee cap: `maxFeePerGas`
   * lowered to the cap itself, `maxPriorityFeePerGas` to `maxFeePerGas`. Throws a {@link FeeCapError}
   * (not sent, retryable, naming both in gwei and the cap that would let it go) when `neededWei`, the least
   * fee cap it can go with (12.5 % above `replacesMaxFeePerGasWei`, the highest fee cap at its nonce, and
   * at least the latest base fee), is above the cap. A transaction at the nonce whose fee cap is within
   * 12.5 % of the cap (already replaced at or near it, a first send signed when the base fee left no room
   * for a replacement, or one signed without this cap) cannot be replaced again under the cap whatever the
   * base fee: the refusal says so (`stuckAtCap`), naming it, the base fee up to which it can be included and
   * the cap that would replace it. The tip is clamped with or without a cap.
   */
  capFees(
    fees: FeeQuote,
    p: {
      neededWei: bigint;
      /** The highest `maxFeePerGas` signed at the nonce, when known. */
      replacesMaxFeePerGasWei?: bigint | undefined;
      /** The transaction with that fee cap, when known (named in the refusal). */
      replacesTxHash?: Hex | undefined;
      /** The nonce replaced (in the refusal's details). */
      nonce?: number | undefined;
      what: string;
      venue: string;
      clientOrderId?: string | undefined;
    },
  ): FeeQuote {
    const cap = this.maxFeePerGasWei;
    if (cap !== undefined && p.neededWei > cap) {
      const prev = p.replacesMaxFeePerGasWei;
      const stuckAtCap = prev !== undefined && !this.replaceableUnderCap(prev);
      const needed = formatGwei(p.neededWei);
      const why =
        prev !== undefined && stuckAtCap
          ? `: the transaction at that nonce${p.replacesTxHash ? ` (${p.replacesTxHash})` : ''} already has a fee cap of ${formatGwei(prev)} gwei, above 8/9 of the cap (replaced at or near the cap, sent when the base fee left no room for a replacement, or signed without this cap), so it cannot be replaced again under the cap (a node takes a speed-up or cancel only at higher fees; 12.5 % is paid); it can be included while the base fee is at most ${formatGwei(prev)} gwei (the latest is ${formatGwei(fees.baseFeePerGas)} gwei), and is reconciled by hash; to replace it, raise maxFeePerGasGwei to at least ${needed} gwei`
          : fees.baseFeePerGas > cap
            ? `: the latest base fee ${formatGwei(fees.baseFeePerGas)} gwei is above the cap, so no transaction under it can be included now; it goes once the base fee is at most the cap, or now with maxFeePerGasGwei raised to at least ${needed} gwei`
            : `; it goes with maxFeePerGasGwei raised to at least ${needed} gwei`;
      throw new FeeCapError({
        venue: p.venue,
        message: `${p.what} needs a maxFeePerGas of ${needed} gwei, above the cap maxFeePerGasGwei ${formatGwei(cap)} gwei; not sent${why}`,
        retryAfterMs: this.pollMs,
        stuckAtCap,
        ...(p.clientOrderId !== undefined ? { clientOrderId: p.clientOrderId } : {}),
        details: {
          neededMaxFeePerGasGwei: needed,
          maxFeePerGasGwei: formatGwei(cap),
          baseFeeGwei: formatGwei(fees.baseFeePerGas),
          ...(p.nonce !== undefined ? { nonce: p.nonce } : {}),
          ...(prev !== undefined ? { replacesMaxFeePerGasGwei: formatGwei(prev) } : {}),
          ...(p.replacesTxHash !== undefined ? { replacesTxHash: p.replacesTxHash } : {}),
        },
      });
    }
    return this.clampFees(fees, 'replacement');
  }

  /**
   * `fees` with `maxFeePerGas` at most what a first send may be signed with at their base fee (the
   * first-send ceiling, or the cap once the next block's base fee can be above that ceiling; `first-send`)
   * or the cap (`replacement`), and the tip at most `maxFeePerGas` (no check of need).
   */
  clampFees(fees: FeeQuote, kind: 'first-send' | 'replacement'): FeeQuote {
    const ceiling =
      kind === 'first-send' ? this.firstSendCeilingAt(fees.baseFeePerGas) : this.maxFeePerGasWei;
    const maxFeePerGas = ceiling !== undefined && fees.maxFeePerGas > ceiling ? ceiling : fees.maxFeePerGas;
    const maxPriorityFeePerGas = minBig(fees.maxPriorityFeePerGas, maxFeePerGas);
    return { baseFeePerGas: fees.baseFeePerGas, maxFeePerGas, maxPriorityFeePerGas };
  }
}

/**
 * Not sent: the transaction would need a `maxFeePerGas` above the gas policy's hard cap
 * (`maxFeePerGasGwei`), which is never exceeded. A {@link RateLimitError} (code `VENUE_RATE_LIMIT`, not
 * sent, retryable: it can go once the base fee falls, or with the cap raised), `details.reason`
 * `fee-cap`; the message names the fee needed, the cap, and what the cap would have to be.
 * `stuckAtCap` (also in `details`): a replacement refused because the transaction at its nonce is
 * already above 8/9 of the cap, so no speed-up or cancel of it fits under the cap whatever the base
 * fee: retried under the same cap it never goes (the transaction there can be included while the base fee
 * is at most its fee cap); one for the operator to see. This package has no logger: such a refusal says
 * so in `logLevel` (also `details.logLevel`) `'error'` (else `'warn'`), its message naming the nonce, the
 * transaction there and the cap that would replace it (`details.nonce`, `details.replacesTxHash`,
 * `details.neededMaxFeePerGasGwei`), for whoever logs it to log at error level.
 */
export class FeeCapError extends RateLimitError {
  override name = 'FeeCapError';
  readonly stuckAtCap: boolean;
  /** The level to log it at: `error` for {@link stuckAtCap} (the nonce is held, nothing replaces it). */
  readonly logLevel: 'error' | 'warn';
  constructor(p: ConstructorParameters<typeof RateLimitError>[0] & { stuckAtCap?: boolean }) {
    const { stuckAtCap = false, ...rest } = p;
    const logLevel = stuckAtCap ? 'error' : 'warn';
    super({ ...rest, details: { reason: 'fee-cap', stuckAtCap, logLevel, ...rest.details } });
    this.stuckAtCap = stuckAtCap;
    this.logLevel = logLevel;
  }
}

/** The least fee cap that replaces one of `prevWei` ({@link bumpFees}' 12.5 %, rounded up). */
function bumpFeeCap(prevWei: bigint): bigint {
  return (prevWei * 11_250n + 9_999n) / 10_000n;
}
