import { decodeRevert, revertToVenueError } from '@xhedge/evm';
import { InvalidOrderError, RevertedError, type VenueError } from '@xhedge/venue';
import { encodeErrorResult, getAddress } from 'viem';
import { describe, expect, it } from 'vitest';
import { OPTION_TYPE, optionMarketAbi, POSITION_STATE } from './abi.ts';
import { classifyLyraRevert, type LyraRevertUnits, lyraRevertClassifier } from './adapter.ts';

const POOL = getAddress('0x1111111111111111111111111111111111111111');
const SHORT_COLLATERAL = getAddress('0x2222222222222222222222222222222222222222');
const TOKEN = getAddress('0x3333333333333333333333333333333333333333');
const E18 = 10n ** 18n;

/**
 * What the adapter makes of revert data from a simulation (outcome `not-sent`): the bytes the real error
 * encodes to, decoded with the adapter's ABI and classified by its classifier, as `toVenueError` does.
 */
function venueErrorFor(
  data: `0x${string}`,
  units: LyraRevertUnits = { quoteSymbol: 'USDC', quoteDecimals: 18 },
): VenueError {
  return revertToVenueError(decodeRevert(data, optionMarketAbi), {
    venue: 'lyra-x',
    abi: optionMarketAbi,
    classify: lyraRevertClassifier(units),
    clientOrderId: 'c-1',
    revertOutcome: 'not-sent',
  });
}

describe("Lyra's LiquidityPool, ShortCollateral and OptionToken reverts, decoded and classified", () => {
  it('LockingMoreQuoteThanIsFree: the pool cannot lock the collateral of a long: an order not to repeat, in human units', () => {
    const data = encodeErrorResult({
      abi: optionMarketAbi,
      errorName: 'LockingMoreQuoteThanIsFree',
      args: [POOL, 350_025n * 10n ** 16n, 1_000n * E18 + 1n, { quote: 3_000n * E18, base: 25n * 10n ** 17n }],
    });
    const err = venueErrorFor(data);
    expect(err).toBeInstanceOf(InvalidOrderError);
    expect(err.retryable).toBe(false);
    expect(err.outcome).toBe('not-sent');
    expect(err.clientOrderId).toBe('c-1');
    expect(err.details?.errorName).toBe('LockingMoreQuoteThanIsFree');
    expect(err.message).toBe(
      `lyra-x: reverted: LockingMoreQuoteThanIsFree(thrower ${POOL}, quoteToLock 3500.25 USDC, ` +
        'freeLiquidity 1000.000000000000000001 USDC, lockedCollateral {quote 3000 USDC, base 2.5 of the underlying}): ' +
        "the liquidity pool's free liquidity cannot take the collateral this trade locks (quoteToLock × the " +
        "pool's collateral scaling factor > freeLiquidity); a smaller size may fit",
    );
    // with the market known, the pool's locked base reads in the underlying's symbol
    expect(
      venueErrorFor(data, { quoteSymbol: 'USDC', quoteDecimals: 18, baseSymbol: 'ETH' }).message,
    ).toContain('lockedCollateral {quote 3000 USDC, base 2.5 ETH}): ');
  });

  it('SendPremiumNotEnoughCollateral: the pool cannot pay a sale its premium: an order not to repeat', () => {
    const err = venueErrorFor(
      encodeErrorResult({
        abi: optionMarketAbi,
        errorName: 'SendPremiumNotEnoughCollateral',
        args: [POOL, 12_345n * 10n ** 15n, 5n * 10n ** 16n, 10n * E18],
      }),
    );
    expect(err).toBeInstanceOf(InvalidOrderError);
    expect(err.retryable).toBe(false);
    expect(err.outcome).toBe('not-sent');
    expect(err.message).toBe(
      `lyra-x: reverted: SendPremiumNotEnoughCollateral(thrower ${POOL}, premium 12.345 USDC, reservedFee 0.05 USDC, ` +
        "freeLiquidity 10 USDC): the liquidity pool's free liquidity cannot pay this sale's premium and reserved " +
        'fee (premium + reservedFee > freeLiquidity); a smaller size may fit',
    );
  });

  it("UnableToHedgeDelta: the pool's hedger is behind or lacks depth, whatever the size: an order not to repeat", () => {
    const err = venueErrorFor(
      encodeErrorResult({
        abi: optionMarketAbi,
        errorName: 'UnableToHedgeDelta',
        args: [POOL, 75n * 10n ** 16n, true, 7n],
      }),
    );
    expect(err).toBeInstanceOf(InvalidOrderError);
    expect(err.retryable).toBe(false);
    expect(err.outcome).toBe('not-sent');
    expect(err.message).toBe(
      `lyra-x: reverted: UnableToHedgeDelta(thrower ${POOL}, amountOptions 0.75, increasesDelta true, strikeId 7): ` +
        "the pool's hedger cannot take more delta now: it is behind (its keeper has not re-hedged) or its venue " +
        "lacks depth; this clears when it re-hedges, and a trade reducing the pool's delta passes",
    );
    expect(err.message).not.toContain('smaller size');
  });

  it('NegativeTotalAssetValue: the pool takes no trade (a negative 18-decimal amount): an order not to repeat', () => {
    const err = venueErrorFor(
      encodeErrorResult({
        abi: optionMarketAbi,
        errorName: 'NegativeTotalAssetValue',
        args: [POOL, -125n * 10n ** 17n],
      }),
    );
    expect(err).toBeInstanceOf(InvalidOrderError);
    expect(err.retryable).toBe(false);
    expect(err.outcome).toBe('not-sent');
    expect(err.message).toBe(
      `lyra-x: reverted: NegativeTotalAssetValue(thrower ${POOL}, totalAssetValue -12.5 USDC): the liquidity ` +
        "pool's assets are below its outstanding settlements and queued deposits; it takes no trade, of any size, until " +
        'that changes',
    );
    expect(err.message).not.toContain('smaller size');
  });

  it("OutOfQuoteCollateralForTransfer: the ShortCollateral's shortfall, in the quote token's own decimals, is the venue's, not missing funds", () => {
    const data = encodeErrorResult({
      abi: optionMarketAbi,
      errorName: 'OutOfQuoteCollateralForTransfer',
      args: [SHORT_COLLATERAL, 1_500_000n, 2_000_000_001n],
    });
    const err = venueErrorFor(data, { quoteSymbol: 'USDC', quoteDecimals: 6 });
    expect(err).toBeInstanceOf(InvalidOrderError);
    expect(err.retryable).toBe(false);
    expect(err.outcome).toBe('not-sent');
    expect(err.message).toBe(
      `lyra-x: reverted: OutOfQuoteCollateralForTransfer(thrower ${SHORT_COLLATERAL}, balance 1.5 USDC, amount ` +
        "2000.000001 USDC): the venue's ShortCollateral holds less quote than this trade takes out of it (a " +
        "short's collateral or buy-back premium); the venue's shortfall, not the account's",
    );
    // An 18-decimal quote token (sUSD) reads the same integers in its own decimals.
    expect(venueErrorFor(data, { quoteSymbol: 'sUSD', quoteDecimals: 18 }).message).toContain(
      'balance 0.0000000000015 sUSD, amount 0.000000002000000001 sUSD',
    );
  });

  it("AdjustmentResultsInMinimumCollateralNotBeingMet: the order's own collateral target is under the minimum at the trade's spot (not the wallet's funds): an order not to repeat", () => {
    const err = venueErrorFor(
      encodeErrorResult({
        abi: optionMarketAbi,
        errorName: 'AdjustmentResultsInMinimumCollateralNotBeingMet',
        args: [
          POOL,
          {
            positionId: 9n,
            strikeId: 2n,
            optionType: OPTION_TYPE.SHORT_PUT_QUOTE,
            amount: 15n * 10n ** 17n,
            collateral: 2_400n * E18,
            state: POSITION_STATE.ACTIVE,
          },
          35_125n * 10n ** 17n,
        ],
      }),
    );
    expect(err).toBeInstanceOf(InvalidOrderError);
    expect(err.retryable).toBe(false);
    expect(err.outcome).toBe('not-sent');
    expect(err.details?.errorName).toBe('AdjustmentResultsInMinimumCollateralNotBeingMet');
    expect(err.message).toBe(
      `lyra-x: reverted: AdjustmentResultsInMinimumCollateralNotBeingMet(thrower ${POOL}, position {positionId 9, ` +
        'strikeId 2, optionType SHORT_PUT_QUOTE, amount 1.5, collateral 2400 USDC, state ACTIVE}, spotPrice ' +
        "3512.5 USDC): the collateral target set for this short is under the minimum at the trade's spot; the " +
        'next order recomputes it (raise shortCollateralBuffer if it repeats)',
    );
    // a base-collateralised short call holds its collateral in the underlying
    const baseCall = venueErrorFor(
      encodeErrorResult({
        abi: optionMarketAbi,
        errorName: 'AdjustmentResultsInMinimumCollateralNotBeingMet',
        args: [
          POOL,
          {
            positionId: 10n,
            strikeId: 3n,
            optionType: OPTION_TYPE.SHORT_CALL_BASE,
            amount: 2n * E18,
            collateral: 15n * 10n ** 17n,
            state: POSITION_STATE.ACTIVE,
          },
          3_500n * E18,
        ],
      }),
      { quoteSymbol: 'USDC', quoteDecimals: 18, baseSymbol: 'ETH' },
    );
    expect(baseCall).toBeInstanceOf(InvalidOrderError);
    expect(baseCall.message).toContain(
      'optionType SHORT_CALL_BASE, amount 2, collateral 1.5 ETH, state ACTIVE}, spotPrice 3500 USDC)',
    );
  });

  it("OptionToken's own-position errors (not the account's, a full close with collateral) are orders not to repeat; their text stands", () => {
    const notOwner = venueErrorFor(
      encodeErrorResult({
        abi: optionMarketAbi,
        errorName: 'OnlyOwnerCanAdjustPosition',
        args: [POOL, 4n, TOKEN, SHORT_COLLATERAL],
      }),
    );
    expect(notOwner).toBeInstanceOf(InvalidOrderError);
    expect(notOwner.message).toBe(
      `lyra-x: reverted: OnlyOwnerCanAdjustPosition(${POOL}, 4, ${TOKEN}, ${SHORT_COLLATERAL})`,
    );
    const fullClose = venueErrorFor(
      encodeErrorResult({
        abi: optionMarketAbi,
        errorName: 'FullyClosingWithNonZeroSetCollateral',
        args: [POOL, 4n, E18],
      }),
    );
    expect(fullClose).toBeInstanceOf(InvalidOrderError);
    expect(fullClose.retryable).toBe(false);
  });

  it('a revert of the right name whose arguments are not of the real shape keeps its decoded text and class', () => {
    const r = {
      errorName: 'LockingMoreQuoteThanIsFree',
      args: [POOL, 'x'],
      reason: 'as decoded',
      data: undefined,
    };
    expect(lyraRevertClassifier({ quoteSymbol: 'USDC', quoteDecimals: 18 })(r)).toBe('invalid-order');
    expect(r.reason).toBe('as decoded');
    expect(classifyLyraRevert({ ...r, errorName: 'SomethingElse' })).toBeUndefined();
    // an error the ABI does not hold stays a plain revert, named by its selector
    const unknown = venueErrorFor('0xdeadbeef');
    expect(unknown.constructor).toBe(RevertedError);
    expect(unknown.message).toBe('lyra-x: reverted: unrecognized revert data 0xdeadbeef');
  });
});
