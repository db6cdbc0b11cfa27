import { type Address, encodeFunctionData, type Hex, zeroAddress } from 'viem';
import { exchangeRouterAbi, type ORDER_TYPE } from './abi.ts';

/**
 * `ExchangeRouter.createOrder` call data for a market order of `account` (receiver and cancellation
 * receiver too), in gmx-synthetics' `CreateOrderParams` shape: no callback, no UI fee, no swap, no
 * referral code, no trigger.
 */
export function createOrderCallData(o: {
  account: Address;
  market: Address;
  collateralToken: Address;
  sizeDeltaUsd: bigint;
  acceptablePrice: bigint;
  executionFee: bigint;
  orderType: (typeof ORDER_TYPE)['MarketIncrease' | 'MarketDecrease'];
  isLong: boolean;
}): Hex {
  return encodeFunctionData({
    abi: exchangeRouterAbi,
    functionName: 'createOrder',
    args: [
      {
        addresses: {
          receiver: o.account,
          cancellationReceiver: o.account,
          callbackContract: zeroAddress,
          uiFeeReceiver: zeroAddress,
          market: o.market,
          initialCollateralToken: o.collateralToken,
          swapPath: [],
        },
        numbers: {
          sizeDeltaUsd: o.sizeDeltaUsd,
          initialCollateralDeltaAmount: 0n,
          triggerPrice: 0n,
          acceptablePrice: o.acceptablePrice,
          executionFee: o.executionFee,
          callbackGasLimit: 0n,
          minOutputAmount: 0n,
          validFromTime: 0n,
        },
        orderType: o.orderType,
        decreasePositionSwapType: 0,
        isLong: o.isLong,
        shouldUnwrapNativeToken: false,
        autoCancel: false,
        referralCode: `0x${'0'.repeat(64)}`,
        dataList: [],
      },
    ],
  });
}
