import { type Clock, systemClock, type Urgency } from '@xhedge/core';
import { InvalidOrderError } from '@xhedge/venue';
import { type Address, encodeFunctionData, erc20Abi } from 'viem';
import type { TxSender } from './tx.ts';

/**
 * How much to approve when an allowance is short:
 * - `exact`: exactly what this trade needs (one approval per trade);
 * - `capped`: up to `capAmount` at once (fewer approvals), never more. Unlimited approvals are not offered.
 */
export type ApprovalPolicy = { mode: 'exact' } | { mode: 'capped'; capAmount: bigint };

/** Makes sure `spender` may pull `amount` of `token`; approves within the policy when it may not. */
export async function ensureAllowance(
  sender: TxSender,
  p: {
    token: Address;
    spender: Address;
    amount: bigint;
    policy: ApprovalPolicy;
    urgency?: Urgency;
    clientOrderId?: string;
  },
): Promise<{ approved: bigint | null }> {
  const current = await sender.ctx.publicClient.readContract({
    address: p.token,
    abi: erc20Abi,
    functionName: 'allowance',
    args: [sender.address, p.spender],
  });
  if (current >= p.amount) return { approved: null };
  let target = p.amount;
  if (p.policy.mode === 'capped') {
    if (p.amount > p.policy.capAmount) {
      throw new InvalidOrderError({
        venue: sender.ctx.venue,
        message: `needs an allowance of ${p.amount}, above the approval cap ${p.policy.capAmount}`,
        ...(p.clientOrderId !== undefined ? { clientOrderId: p.clientOrderId } : {}),
      });
    }
    target = p.policy.capAmount;
  }
  await sender.send(
    {
      to: p.token,
      data: encodeFunctionData({ abi: erc20Abi, functionName: 'approve', args: [p.spender, target] }),
    },
    {
      urgency: p.urgency ?? 'normal',
      ...(p.clientOrderId !== undefined ? { clientOrderId: p.clientOrderId } : {}),
    },
  );
  return { approved: target };
}

export interface SpendCapOptions {
  venue: string;
  /** Most a venue may spend per window, by token address (lower case), in token base units. */
  caps: Readonly<Record<string, bigint>>;
  /** @defaultValue 86400000 (a day) */
  windowMs?: number;
  clock?: Clock;
}

/**
 * Per-venue spend caps: what the adapter may pull from the wallet per token in a rolling window, so a
 * bug or a bad price can drain at most the cap. Tokens without a cap are refused (explicit is safer).
 */
export class SpendCaps {
  private readonly spends: { token: string; amount: bigint; atMs: number }[] = [];
  private readonly windowMs: number;
  private readonly clock: Clock;
  constructor(private readonly opts: SpendCapOptions) {
    this.windowMs = opts.windowMs ?? 86_400_000;
    this.clock = opts.clock ?? systemClock;
  }

  /** Spent in the current window. */
  spent(token: Address): bigint {
    const since = this.clock.nowMs() - this.windowMs;
    const t = token.toLowerCase();
    return this.spends.filter((s) => s.token === t && s.atMs > since).reduce((a, s) => a + s.amount, 0n);
  }

  /** Throws InvalidOrderError (rejected, not retried) when `amount` would exceed the cap. */
  check(token: Address, amount: bigint, clientOrderId?: string): void {
    const cap = this.opts.caps[token.toLowerCase()];
    const after = this.spent(token) + amount;
    if (cap === undefined || after > cap) {
      throw new InvalidOrderError({
        venue: this.opts.venue,
        message:
          cap === undefined
            ? `no spend cap configured for token ${token}`
            : `spend cap exceeded for ${token}: ${after} > ${cap} in the window`,
        ...(clientOrderId !== undefined ? { clientOrderId } : {}),
        details: { token, amount: amount.toString(), cap: cap?.toString() },
      });
    }
  }

  record(token: Address, amount: bigint): void {
    this.spends.push({ token: token.toLowerCase(), amount, atMs: this.clock.nowMs() });
  }
}
