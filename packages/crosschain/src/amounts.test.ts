import { ManualClock } from '@xhedge/core';
import { describe, expect, it } from 'vitest';
import { layerZeroCostModel } from './cost.ts';
import { type BridgeEndpoint, PaperBridge } from './paper-bridge.ts';
import { planCollateralTransfer } from './plan.ts';
import { memoryTransferStore, TransferTracker } from './tracker.ts';

describe('collateral planning rounds the amount in the asset’s own steps', () => {
  const costModel = { estimate: () => ({ feeUsd: 1, latencyMs: 60_000 }) };

  it('a coin shortfall is rounded up to the shared decimals, not to cents', () => {
    // 0.0005 WBTC short, 10% buffer: 0.00055 to move; cents made it 0.01 (18×) and refused a source of 0.004
    const plan = planCollateralTransfer({
      need: { planId: 'p_btc', venue: 'op', chain: 'evm:10', asset: 'WBTC', requiredAmount: 0.0005 },
      balances: [{ venue: 'arb', chain: 'evm:42161', asset: 'WBTC', amount: 0.004, asOfMs: 0 }],
      costModel,
    });
    expect(plan).toMatchObject({ fromVenue: 'arb', amount: '0.00055' });
    // below one shared unit it still moves one unit, never nothing
    expect(
      planCollateralTransfer({
        need: { planId: 'p_btc2', venue: 'op', chain: 'evm:10', asset: 'WBTC', requiredAmount: 1e-9 },
        balances: [{ venue: 'arb', chain: 'evm:42161', asset: 'WBTC', amount: 1, asOfMs: 0 }],
        costModel,
      })?.amount,
    ).toBe('0.000001');
  });

  it('float noise in the shortfall does not add a step', () => {
    // 1.3 − 1 is 0.30000000000000004 in floats: 0.34 WETH (cents) was planned for 0.33, 0.330001 at 6 dp
    const plan = planCollateralTransfer({
      need: { planId: 'p_eth', venue: 'op', chain: 'evm:10', asset: 'WETH', requiredAmount: 1.3 },
      balances: [
        { venue: 'op', chain: 'evm:10', asset: 'WETH', amount: 1, asOfMs: 0 },
        { venue: 'arb', chain: 'evm:42161', asset: 'WETH', amount: 10, asOfMs: 0 },
      ],
      costModel,
    });
    expect(plan?.amount).toBe('0.33');
    // a USD-like asset keeps its cents: 0.30000000000000004 × 1.1 was 0.34
    const usd = planCollateralTransfer({
      need: { planId: 'p_usd', venue: 'op', chain: 'evm:10', asset: 'USDC', requiredAmount: 1.3 },
      balances: [
        { venue: 'op', chain: 'evm:10', asset: 'USDC', amount: 1, asOfMs: 0 },
        { venue: 'arb', chain: 'evm:42161', asset: 'USDC', amount: 100, asOfMs: 0 },
      ],
      costModel,
    });
    expect(usd?.amount).toBe('0.33');
    // a shortfall that is float noise alone plans nothing (it planned a transfer of "0")
    const none = planCollateralTransfer({
      need: { planId: 'p_noise', venue: 'op', chain: 'evm:10', asset: 'USDC', requiredAmount: 0.1 + 0.2 },
      balances: [
        { venue: 'op', chain: 'evm:10', asset: 'USDC', amount: 0.3, asOfMs: 0 },
        { venue: 'arb', chain: 'evm:42161', asset: 'USDC', amount: 100, asOfMs: 0 },
      ],
      costModel,
    });
    expect(none).toBeNull();
  });

  it('refuses shared decimals that are not a whole number from 0 to 18', () => {
    for (const sharedDecimals of [6.5, -1, Number.NaN, 19])
      expect(() =>
        planCollateralTransfer({
          need: { planId: 'p', venue: 'op', chain: 'evm:10', asset: 'WETH', requiredAmount: 1 },
          balances: [{ venue: 'arb', chain: 'evm:42161', asset: 'WETH', amount: 10, asOfMs: 0 }],
          costModel,
          sharedDecimals,
        }),
      ).toThrow(/shared decimals/);
  });
});

describe('paper bridge options', () => {
  const venues: BridgeEndpoint[] = [
    { id: 'arb', chain: 'evm:42161', debitBalance: async () => 0, creditBalance: async () => 0 },
  ];
  const make = (o: { sharedDecimals?: number; verifyFraction?: number; timeoutMultiple?: number }) => {
    const clock = new ManualClock(0);
    return new PaperBridge({
      clock,
      venues,
      costModel: layerZeroCostModel(),
      tracker: new TransferTracker({ store: memoryTransferStore(), clock }),
      ...o,
    });
  };

  it('refuses a NaN or out-of-range option when built, naming it', () => {
    for (const [o, name] of [
      [{ sharedDecimals: 6.5 }, 'sharedDecimals'],
      [{ sharedDecimals: Number.NaN }, 'sharedDecimals'],
      [{ verifyFraction: Number.NaN }, 'verifyFraction'],
      [{ verifyFraction: 1.5 }, 'verifyFraction'],
      [{ timeoutMultiple: Number.NaN }, 'timeoutMultiple'],
      [{ timeoutMultiple: 0 }, 'timeoutMultiple'],
    ] as const)
      expect(() => make(o)).toThrow(
        expect.objectContaining({
          code: 'BRIDGE_BAD_OPTION',
          message: expect.stringContaining(`option ${name}`),
        }),
      );
    expect(() => make({ sharedDecimals: 8, verifyFraction: 0.5, timeoutMultiple: 2 })).not.toThrow();
  });
});
