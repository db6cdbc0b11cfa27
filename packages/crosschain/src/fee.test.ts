import { Dec, ManualClock } from '@xhedge/core';
import { describe, expect, it } from 'vitest';
import { bridgeFeeInAsset } from './cost.ts';
import { type BridgeEndpoint, PaperBridge, type PaperBridgeOptions } from './paper-bridge.ts';
import { InsufficientCollateralError, planCollateralTransfer } from './plan.ts';
import { memoryTransferStore, TransferTracker } from './tracker.ts';

/** A paper endpoint with exact balances that keeps every amount it was asked to debit or credit. */
function venue(id: string, chain: 'evm:42161' | 'evm:10', start: Record<string, string>) {
  const balances = new Map(Object.entries(start).map(([a, v]) => [a, new Dec(v)]));
  const v = {
    id,
    chain,
    debited: [] as string[],
    credited: [] as string[],
    balance: (a: string) => (balances.get(a) ?? new Dec(0)).toFixed(),
    async debitBalance(asset: string, amount: string) {
      const next = (balances.get(asset) ?? new Dec(0)).sub(amount);
      if (next.lt(0)) throw new Error(`cannot debit ${amount}`);
      balances.set(asset, next);
      v.debited.push(amount);
    },
    async creditBalance(asset: string, amount: string) {
      balances.set(asset, (balances.get(asset) ?? new Dec(0)).add(amount));
      v.credited.push(amount);
    },
  } satisfies BridgeEndpoint & Record<string, unknown>;
  return v;
}

/** Seven decimals: finer than a USDC unit (6). */
const FEE_USD = 0.1234567;
const costModel = { estimate: () => ({ feeUsd: FEE_USD, latencyMs: 60_000 }) };

function bridgeOf(venues: BridgeEndpoint[], clock: ManualClock, o: Partial<PaperBridgeOptions> = {}) {
  return new PaperBridge({
    clock,
    venues,
    costModel,
    tracker: new TransferTracker({ store: memoryTransferStore(), clock }),
    ...o,
  });
}

describe('the bridge fee is debited at the asset’s own decimals, rounded up', () => {
  it('a fee of 0.1234567 USD is 0.123457 USDC: the debit has 6 decimals, never fewer units than the fee', async () => {
    const clock = new ManualClock(0);
    const arb = venue('arb', 'evm:42161', { USDC: '1000' });
    const op = venue('op', 'evm:10', {});
    const bridge = bridgeOf([arb, op], clock);
    const sent = await bridge.send({
      transferId: 'x_fee',
      fromVenue: 'arb',
      toVenue: 'op',
      asset: 'USDC',
      amount: '100',
    });
    clock.advance(sent.expectedLatencyMs);
    await bridge.poll();
    expect((await bridge.tracker.get('x_fee'))?.state).toBe('delivered');
    // 12 decimals debited 100.1234567 USDC: a seventh decimal no USDC balance has
    expect(arb.debited).toEqual(['100.123457']);
    expect(arb.balance('USDC')).toBe('899.876543');
    // the destination gets the amount, never more than left the source
    expect(op.credited).toEqual(['100']);
    expect(new Dec(op.balance('USDC')).lte(new Dec(1000).sub(arb.balance('USDC')))).toBe(true);
  });

  it('rounds up at each asset’s decimals (DAI 18, a USDC given 18 on its chain) and drops float noise', () => {
    expect(bridgeFeeInAsset(FEE_USD, 'USDC')).toBe('0.123457');
    expect(bridgeFeeInAsset(0.1234561, 'USDT')).toBe('0.123457');
    expect(bridgeFeeInAsset(FEE_USD, 'DAI')).toBe('0.1234567');
    expect(bridgeFeeInAsset(FEE_USD, 'USDC', { USDC: 18 })).toBe('0.1234567');
    expect(bridgeFeeInAsset(0.1 + 0.2, 'USDC')).toBe('0.3');
    expect(bridgeFeeInAsset(0, 'USDC')).toBe('0');
    expect(() => bridgeFeeInAsset(Number.NaN, 'USDC')).toThrow(/bridge fee.*not a finite number/);
    expect(() => bridgeFeeInAsset(-1, 'USDC')).toThrow(/must not be negative/);
    expect(() => bridgeFeeInAsset(1, 'USDX')).toThrow(/no decimals known for USDX/);
  });

  it('a bridge refuses bad asset decimals when built, naming the asset', () => {
    const clock = new ManualClock(0);
    expect(() => bridgeOf([], clock, { assetDecimals: { USDC: 6.5 } })).toThrow(
      /decimals 6.5 of USDC must be a whole number/,
    );
    expect(() => bridgeOf([], clock, { assetDecimals: { USDC: 18 } })).not.toThrow();
  });

  it('the planner counts the fee as the bridge debits it: 110.1234567 USDC cannot fund 110 + 0.123457', () => {
    const plan = (held: number) =>
      planCollateralTransfer({
        need: { planId: 'p_fee', venue: 'op', chain: 'evm:10', asset: 'USDC', requiredAmount: 100 },
        balances: [{ venue: 'arb', chain: 'evm:42161', asset: 'USDC', amount: held, asOfMs: 0 }],
        costModel,
      });
    // the float fee let this source through, and the bridge's debit of 110.123457 was then refused
    expect(() => plan(110.1234567)).toThrow(InsufficientCollateralError);
    expect(plan(110.123457)).toMatchObject({ fromVenue: 'arb', amount: '110' });
  });
});
