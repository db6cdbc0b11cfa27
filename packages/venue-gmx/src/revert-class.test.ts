import { decodeRevert } from '@xhedge/evm';
import { encodeErrorResult, parseAbi } from 'viem';
import { describe, expect, it } from 'vitest';
import { classifyGmxRevert } from './adapter.ts';

describe('classifyGmxRevert', () => {
  it("takes the collateral token's shortfall for insufficient funds, as a custom error or as Circle USDC's string", () => {
    // Arbitrum's native USDC (FiatToken) reverts with Error(string), not an ERC-6093 custom error
    const usdc = decodeRevert(
      encodeErrorResult({
        abi: parseAbi(['error Error(string)']),
        errorName: 'Error',
        args: ['ERC20: transfer amount exceeds balance'],
      }),
      [],
      'reverted',
    );
    expect(usdc.errorName).toBe('Error');
    expect(classifyGmxRevert(usdc)).toBe('insufficient-funds');
    expect(classifyGmxRevert({ errorName: 'ERC20InsufficientBalance', reason: '' })).toBe(
      'insufficient-funds',
    );
    // an allowance too small is not a shortfall of funds (the approval is at fault)
    expect(
      classifyGmxRevert({ errorName: 'Error', reason: 'ERC20: transfer amount exceeds allowance' }),
    ).toBeUndefined();
  });

  it('maps the gmx-synthetics errors it knows and leaves the others alone', () => {
    expect(classifyGmxRevert({ errorName: 'OrderNotFulfillableAtAcceptablePrice', reason: '' })).toBe(
      'acceptable-price',
    );
    expect(classifyGmxRevert({ errorName: 'MaxPriceAgeExceeded', reason: '' })).toBe('stale-oracle');
    expect(classifyGmxRevert({ errorName: 'EmptyMarket', reason: '' })).toBe('invalid-order');
    expect(classifyGmxRevert({ errorName: 'MaxOpenInterestExceeded', reason: '' })).toBeUndefined();
  });
});
