import { type Clock, systemClock, type Urgency, XhedgeError } from '@xhedge/core';
import { InvalidOrderError } from '@xhedge/venue';
import { type Address, encodeFunctionData, erc20Abi } from 'viem';
import { toVenueError } from './errors.ts';
import type { TxSender } from './tx.ts';

/**
 * How much to approve when an allowance is short:
 * - `exact`: exactly what this trade needs (one approval per trade);
 * - `capped`: up to `capAmount` at once (fewer approvals), never more, and never more than the spend cap
 *   still allows ({@link reserveAndApprove}). Unlimited approvals are not offered.
 */
export type ApprovalPolicy = { mode: 'exact' } | { mode: 'capped'; capAmount: bigint };

/**
 * Makes sure `spender` may pull `amount` of `token`; approves within the policy when it may not. A capped
 * approval is at most `maxApproval` too (what a spend cap still allows: {@link reserveAndApprove}), and
 * an `amount` above either bound is refused (`InvalidOrderError`).
 */
export async function ensureAllowance(
  sender: TxSender,
  p: {
    token: Address;
    spender: Address;
    amount: bigint;
    policy: ApprovalPolicy;
    /** The most any approval may be, base units. @defaultValue no bound beyond the policy's */
    maxApproval?: bigint;
    urgency?: Urgency;
    clientOrderId?: string;
    /**
     * The approval is for a risk-reducing order: it may be signed up to the fee cap with no room for a
     * replacement under it (`SendOptions.allowUnreplaceableUnderCap`). @defaultValue false
     */
    allowUnreplaceableUnderCap?: boolean;
  },
): Promise<{ approved: bigint | null }> {
  let current: bigint;
  try {
    current = await sender.ctx.publicClient.readContract({
      address: p.token,
      abi: erc20Abi,
      functionName: 'allowance',
      args: [sender.address, p.spender],
    });
  } catch (err) {
    // A raw viem error carries the RPC URL (API key) and the request body: map and scrub it.
    throw toVenueError(err, {
      venue: sender.ctx.venue,
      secrets: sender.ctx.secrets,
      ...(p.clientOrderId !== undefined ? { clientOrderId: p.clientOrderId } : {}),
    });
  }
  if (current >= p.amount) return { approved: null };
  const refuse = (message: string) =>
    new InvalidOrderError({
      venue: sender.ctx.venue,
      message,
      ...(p.clientOrderId !== undefined ? { clientOrderId: p.clientOrderId } : {}),
    });
  if (p.maxApproval !== undefined && p.amount > p.maxApproval) {
    throw refuse(`needs an allowance of ${p.amount}, above the ${p.maxApproval} the spend cap still allows`);
  }
  let target = p.amount;
  if (p.policy.mode === 'capped') {
    if (p.amount > p.policy.capAmount) {
      throw refuse(`needs an allowance of ${p.amount}, above the approval cap ${p.policy.capAmount}`);
    }
    target = p.policy.capAmount;
    if (p.maxApproval !== undefined && target > p.maxApproval) target = p.maxApproval;
  }
  await sender.send(
    {
      to: p.token,
      data: encodeFunctionData({ abi: erc20Abi, functionName: 'approve', args: [p.spender, target] }),
    },
    {
      urgency: p.urgency ?? 'normal',
      ...(p.clientOrderId !== undefined ? { clientOrderId: p.clientOrderId } : {}),
      ...(p.allowUnreplaceableUnderCap === true ? { allowUnreplaceableUnderCap: true } : {}),
    },
  );
  return { approved: target };
}

/**
 * A spend as persisted on its order record (JSON-safe), so the window survives a restart.
 * - `reserved`: counted; the order's transaction may have been broadcast and its fate is not known yet
 *   (a timed-out, outcome-unknown order stays here and keeps counting);
 * - `committed`: counted; the transaction was mined successfully, the tokens left the wallet (an order
 *   cancelled later, whose collateral came back, stays committed: the window counts outflows);
 * - `released`: not counted; certainly nothing was or will be spent (refused before broadcast, rejected
 *   by the node, mined but reverted, or its nonce taken by the adapter's own recorded cancel).
 */
export interface RecordedSpend {
  /** Token address, lower case. */
  token: string;
  /** Most the order may pull from the wallet, token base units, decimal string. */
  amountBase: string;
  /** When it was reserved (ms since epoch); it counts until `atMs + windowMs`. */
  atMs: number;
  state: 'reserved' | 'committed' | 'released';
}

/** Where {@link SpendCaps} rebuilds its window from: the venue's durable order records. */
export interface SpendRecordSource {
  list(): Promise<readonly { clientOrderId: string; spend?: RecordedSpend | undefined }[]>;
}

export interface SpendCapOptions {
  venue: string;
  /** Most a venue may spend per window, by token address (lower case), in token base units. */
  caps: Readonly<Record<string, bigint>>;
  /** @defaultValue 86400000 (a day) */
  windowMs?: number;
  clock?: Clock;
  /**
   * The venue's order record store: on first use the window is rebuilt from the spends recorded on its
   * records (not released, reserved within the window). @defaultValue none (the window starts empty)
   */
  records?: SpendRecordSource;
}

interface SpendEntry {
  clientOrderId: string;
  token: string;
  amount: bigint;
  atMs: number;
  state: RecordedSpend['state'];
}

/** A spend held against the cap by one order; settle it with `commit` or `release`. */
export class SpendReservation {
  /** @internal created by {@link SpendCaps.reserve} only */
  constructor(
    private readonly entry: SpendEntry,
    private readonly venue: string,
  ) {}

  get clientOrderId(): string {
    return this.entry.clientOrderId;
  }
  get amountBase(): bigint {
    return this.entry.amount;
  }
  get state(): RecordedSpend['state'] {
    return this.entry.state;
  }

  /** The form to store on the order record (before broadcast). */
  recorded(): RecordedSpend {
    return {
      token: this.entry.token,
      amountBase: this.entry.amount.toString(),
      atMs: this.entry.atMs,
      state: this.entry.state,
    };
  }

  /** The transaction was mined: the spend stays counted for the rest of its window. */
  commit(): void {
    settleEntry(this.entry, 'committed', this.venue);
  }

  /** Nothing was or will be spent: the amount goes back to the window. */
  release(): void {
    settleEntry(this.entry, 'released', this.venue);
  }
}

function settleEntry(e: SpendEntry, to: 'committed' | 'released', venue: string): void {
  if (e.state === to) return;
  if (e.state !== 'reserved') {
    // A committed spend left the wallet; a released one was certainly never made: neither can flip.
    throw new XhedgeError(
      'CONFLICT',
      `${venue}: the spend of order ${e.clientOrderId} is ${e.state}, it cannot become ${to}`,
      {
        details: { venue, clientOrderId: e.clientOrderId, state: e.state },
      },
    );
  }
  e.state = to;
}

const ADDRESS = /^0x[0-9a-fA-F]{40}$/;
const BASE_UNITS = /^[0-9]+$/;

/**
 * Per-venue spend caps: what the adapter may pull from the wallet per token in a rolling window, so a
 * bug or a bad price can drain at most the cap. Tokens without a cap are refused (explicit is safer).
 *
 * {@link reserve} checks and holds the amount in one synchronous step (after the one-time rebuild), so
 * orders running concurrently can never pass the check together and exceed the cap. A reservation counts
 * until it is released; what counts as spent is money that left or may leave the wallet (see
 * {@link RecordedSpend}). Adapters store `reservation.recorded()` on the order record before broadcast and
 * pass the store as `records`, so a restarted process rebuilds the window instead of starting from zero.
 */
export class SpendCaps {
  private entries: SpendEntry[] = [];
  private readonly windowMs: number;
  private readonly clock: Clock;
  private loaded: Promise<void> | undefined;

  constructor(private readonly opts: SpendCapOptions) {
    this.windowMs = opts.windowMs ?? 86_400_000;
    this.clock = opts.clock ?? systemClock;
    if (!Number.isFinite(this.windowMs) || this.windowMs <= 0) {
      throw new XhedgeError(
        'CONFIG_INVALID',
        `${opts.venue}: spend cap windowMs must be positive, got ${this.windowMs}`,
      );
    }
    for (const [token, cap] of Object.entries(opts.caps)) {
      if (!ADDRESS.test(token) || token !== token.toLowerCase() || typeof cap !== 'bigint' || cap < 0n) {
        throw new XhedgeError(
          'CONFIG_INVALID',
          `${opts.venue}: spend cap for ${token} must be keyed by a lower-case token address and be a bigint >= 0 of base units`,
        );
      }
    }
  }

  /** Spent or reserved in the current window, token base units. */
  async spent(token: Address): Promise<bigint> {
    await this.ensureLoaded();
    return this.counted(token.toLowerCase());
  }

  /**
   * What the token's cap still allows in the current window (cap − spent or reserved, at least 0), token
   * base units; undefined for a token without a cap.
   */
  async remaining(token: Address): Promise<bigint | undefined> {
    await this.ensureLoaded();
    const t = token.toLowerCase();
    const cap = this.opts.caps[t];
    if (cap === undefined) return undefined;
    const spent = this.counted(t);
    return cap > spent ? cap - spent : 0n;
  }

  /**
   * Holds `amount` (token base units: a positive bigint or decimal string) for order `clientOrderId`, or
   * throws InvalidOrderError (rejected, not retried) when it would exceed the token's cap, the token has
   * no cap, or the amount is not a positive whole number of base units.
   */
  async reserve(token: Address, amount: bigint | string, clientOrderId: string): Promise<SpendReservation> {
    const parsed = this.parseAmount(token, amount, clientOrderId);
    await this.ensureLoaded();
    // From here to the push nothing awaits: check and reserve are one step for concurrent callers.
    const t = token.toLowerCase();
    const cap = this.opts.caps[t];
    if (cap === undefined) {
      throw this.refuse(clientOrderId, `no spend cap configured for token ${token}`, { token });
    }
    this.prune();
    const spent = this.counted(t);
    if (spent + parsed > cap) {
      throw this.refuse(
        clientOrderId,
        `spend cap exceeded for ${token}: ${spent} already spent or reserved + ${parsed} > cap ${cap} (base units per ${this.windowMs} ms window)`,
        { token, amountBase: parsed.toString(), spentBase: spent.toString(), capBase: cap.toString() },
      );
    }
    const entry: SpendEntry = {
      clientOrderId,
      token: t,
      amount: parsed,
      atMs: this.clock.nowMs(),
      state: 'reserved',
    };
    this.entries.push(entry);
    return new SpendReservation(entry, this.opts.venue);
  }

  /**
   * Settles the spends of an order found in the store (after a timeout or a restart) once its
   * transaction's fate is known: `committed` when it was mined, `released` when it certainly never will be.
   */
  async settle(clientOrderId: string, to: 'committed' | 'released'): Promise<void> {
    await this.ensureLoaded();
    for (const e of this.entries) {
      if (e.clientOrderId === clientOrderId && e.state === 'reserved') settleEntry(e, to, this.opts.venue);
    }
  }

  private counted(token: string): bigint {
    const since = this.clock.nowMs() - this.windowMs;
    let sum = 0n;
    for (const e of this.entries)
      if (e.token === token && e.state !== 'released' && e.atMs > since) sum += e.amount;
    return sum;
  }

  private prune(): void {
    const since = this.clock.nowMs() - this.windowMs;
    this.entries = this.entries.filter((e) => e.atMs > since && e.state !== 'released');
  }

  private parseAmount(token: Address, amount: unknown, clientOrderId: string): bigint {
    if (typeof token !== 'string' || !ADDRESS.test(token)) {
      throw this.refuse(clientOrderId, `spend token ${String(token)} is not a 0x address`, {});
    }
    if (typeof clientOrderId !== 'string' || clientOrderId.length === 0) {
      throw this.refuse(undefined, 'a spend reservation needs the client order id it is for', {});
    }
    const value =
      typeof amount === 'bigint'
        ? amount
        : typeof amount === 'string' && BASE_UNITS.test(amount)
          ? BigInt(amount)
          : undefined;
    if (value === undefined || value <= 0n) {
      throw this.refuse(
        clientOrderId,
        `spend amount ${typeof amount === 'string' ? JSON.stringify(amount) : String(amount)} of ${token} is not a positive whole number of token base units (bigint or decimal string)`,
        { token },
      );
    }
    return value;
  }

  private refuse(clientOrderId: string | undefined, message: string, details: Record<string, unknown>) {
    return new InvalidOrderError({
      venue: this.opts.venue,
      message,
      ...(clientOrderId !== undefined ? { clientOrderId } : {}),
      details,
    });
  }

  private ensureLoaded(): Promise<void> {
    if (!this.loaded) {
      this.loaded = this.rebuild().catch((err: unknown) => {
        // Not memoized on failure: the next order tries again (and is refused until the store reads).
        this.loaded = undefined;
        throw err;
      });
    }
    return this.loaded;
  }

  /** Reads the spends recorded on the store's records that still count. */
  private async rebuild(): Promise<void> {
    const source = this.opts.records;
    if (!source) return;
    const since = this.clock.nowMs() - this.windowMs;
    const rebuilt: SpendEntry[] = [];
    for (const r of await source.list()) {
      const s = r.spend;
      if (s === undefined) continue;
      const ok =
        typeof s === 'object' &&
        s !== null &&
        typeof s.token === 'string' &&
        ADDRESS.test(s.token) &&
        typeof s.amountBase === 'string' &&
        BASE_UNITS.test(s.amountBase) &&
        Number.isFinite(s.atMs) &&
        (s.state === 'reserved' || s.state === 'committed' || s.state === 'released');
      if (!ok) {
        throw this.refuse(
          undefined,
          `cannot rebuild the spend window: order ${r.clientOrderId} has a malformed recorded spend ${JSON.stringify(s)}`,
          { clientOrderId: r.clientOrderId },
        );
      }
      if (s.state === 'released' || s.atMs <= since) continue;
      rebuilt.push({
        clientOrderId: r.clientOrderId,
        token: s.token.toLowerCase(),
        amount: BigInt(s.amountBase),
        atMs: s.atMs,
        state: s.state,
      });
    }
    // Reservations wait for the rebuild, so nothing was reserved in memory before it.
    this.entries = rebuilt.concat(this.entries);
  }
}

/**
 * The spend side of an order that pulls `amount` of `token`: holds it under the spend cap, then makes
 * sure `spender` may pull it (approving within `policy`). A capped approval never goes past what the
 * spend cap allows: this order's `amount` plus what the window has left after it (an allowance above that
 * would let the spender pull more than the cap lets leave the wallet). When the approval fails nothing of
 * the order was signed, so the hold is released before the error propagates. Returns the reservation for
 * `sendRecorded` (undefined when `amount` is 0: nothing leaves the wallet).
 */
export async function reserveAndApprove(
  sender: TxSender,
  caps: SpendCaps,
  p: {
    token: Address;
    spender: Address;
    amount: bigint;
    policy: ApprovalPolicy;
    clientOrderId: string;
    /** The order reduces risk: its approval may go without room for a replacement under the fee cap. */
    allowUnreplaceableUnderCap?: boolean;
  },
): Promise<SpendReservation | undefined> {
  if (p.amount <= 0n) return undefined;
  const spend = await caps.reserve(p.token, p.amount, p.clientOrderId);
  try {
    // reserved above, so the token has a cap and this order's amount is counted in it
    const left = (await caps.remaining(p.token)) ?? 0n;
    await ensureAllowance(sender, { ...p, maxApproval: p.amount + left });
  } catch (err) {
    spend.release();
    throw err;
  }
  return spend;
}
