import { AssetSymbol, isUsdLike } from '@xhedge/core';
import { AddressParam as Address, DecimalParam as Decimal } from '@xhedge/evm';
import { z } from 'zod';

/** `params` of a `gmx` venue in the operator profile (contract addresses and knobs; no secrets). */
export const GmxVenueParams = z
  .object({
    exchangeRouter: Address,
    /**
     * The Router contract: `ExchangeRouter.sendTokens` pulls collateral through its `pluginTransfer`,
     * so the ERC-20 approval goes here (Arbitrum: the `Router` deployment, not the ExchangeRouter).
     */
    router: Address,
    /** The EventEmitter: OrderCreated/OrderExecuted/OrderCancelled come from it as EventLog1/EventLog2. */
    eventEmitter: Address,
    /** The DataStore (here it also plays OrderVault and OrderHandler). */
    dataStore: Address,
    orderVault: Address,
    reader: Address,
    /**
     * The ReferralStorage `Reader.getAccountPositionInfoList` takes (it reads the account's referral
     * code for fee discounts). With the zero address GMX's `ReferralUtils.getReferralInfo` applies no
     * discount, which only changes the closing fee, and equity does not count that. Arbitrum's is
     * 0xe6fab3f0c7199b0d34d7fbe83394fc0e0d06e99d (gmx-synthetics `config/overwrite.ts`). The local
     * contract does not read it. @defaultValue the zero address
     */
    referralStorage: Address.optional(),
    /**
     * The Oracle whose `getPrimaryPrice(token)` gives prices when `pricesUrl` is not set (local chains:
     * the local contract's test oracle; on real GMX prices are signed off-chain by oracle keepers and
     * the Oracle holds them only during an execution, so set `pricesUrl` there).
     */
    oracle: Address,
    /**
     * GMX oracle keeper tickers endpoint, e.g. https://arbitrum-api.gmxinfra.io/prices/tickers. When
     * set, marks, quotes, orders' acceptable prices and the `MarketPrices` given to the Reader come
     * from it (min/max in GMX units, the age from its `updatedAt`), not from `oracle`.
     */
    pricesUrl: z.url({ protocol: /^https?$/ }).optional(),
    /**
     * GMX oracle keeper token list, e.g. https://arbitrum-api.gmxinfra.io/tokens: the symbol and
     * decimals of every index token, synthetic ones included, read once when the markets are loaded
     * (`indexTokens` entries win). @defaultValue with `pricesUrl` ending in `/prices/tickers`, the same
     * origin's `/tokens`; else none
     */
    tokensUrl: z.url({ protocol: /^https?$/ }).optional(),
    /**
     * Symbol and decimals of index tokens that have no ERC-20 contract to ask: GMX's synthetic index
     * tokens (on Arbitrum e.g. BTC 0x47904963fc8b2340414262125aF798B9655E58Cd, 8 decimals; the list
     * is gmx-interface's `sdk/src/configs/tokens.ts`, `isSynthetic`). Other index tokens are read
     * with `symbol()`/`decimals()`. A market whose index token is neither here nor readable is not
     * listed. @defaultValue none
     */
    indexTokens: z
      .array(
        z
          .object({
            address: Address,
            /** The underlying's symbol, e.g. BTC. */
            symbol: z.string().regex(/^[A-Z0-9]{2,12}$/, 'expected an upper-case symbol like BTC'),
            decimals: z.number().int().min(0).max(36),
          })
          .strict(),
      )
      .default([]),
    /**
     * The market traded for an instrument when several share its index token (on Arbitrum ETH-USD has
     * WETH-USDC, WETH-WETH and others), by market token address, e.g. `{ "ETH-USD:PERP": "0x70d9..." }`.
     * @defaultValue the first such market `Reader.getMarkets` lists
     */
    marketFor: z.record(z.string(), Address).default({}),
    /** Collateral token (USDC-like); not named `...Token` so the config's secret scan does not flag it. */
    collateralAsset: Address,
    /**
     * The collateral token's decimals. They are always read from the token (`decimals()`, once, at
     * the first call that needs them); when set here too, the two must agree, or every such call fails
     * with a `VENUE_MISCONFIGURED` error naming both. Amounts in collateral units (`spendCapPerDay`,
     * `approvalCap`, collateral posted, fees) are converted with them. @defaultValue the token's
     */
    collateralDecimals: z.number().int().min(0).max(30).optional(),
    /**
     * The USD asset the collateral token is (USD, USDC, USDT or DAI, as `@xhedge/core`'s `isUsdLike`
     * knows them), named so in balances, settlement currencies and `capabilities.collateral` instead of
     * the token's own `symbol()`, which is then not read. The operator's statement that a unit of this
     * token is 1 USD of that asset: the adapter counts it so (collateral posted, margin, fees), so set it
     * only for a USD stablecoin whose symbol the adapter does not map itself (see the README: `USDC.e`,
     * `USDbC`, `USDT0`, `USD₮0` and the like are mapped without it). Anything not USD-like is refused.
     * @defaultValue the token's `symbol()`, mapped to its USD asset
     */
    collateralSymbol: AssetSymbol.refine(isUsdLike, {
      error: (i) =>
        `params.collateralSymbol ${JSON.stringify(i.input)} is not a USD stablecoin: expected one of USD, USDC, USDT, DAI (the adapter counts a collateral unit as 1 USD)`,
    }).optional(),
    /** Wrapped native token used for the execution fee. */
    wnt: Address,
    /** Collateral posted per unit of notional is 1/leverage. @defaultValue 2 */
    leverage: z.number().positive().max(50).default(2),
    /** Slippage bound when the order has no limit price, bps from the oracle price. @defaultValue 50 */
    maxSlippageBps: z.number().positive().max(5000).default(50),
    /**
     * Floor of the execution fee sent with an order, wei. The fee sent is the larger of this and GMX's
     * minimum for the order (GasUtils.validateExecutionFee: the DataStore's gas settings × the gas
     * price bound of the order transaction); GMX refunds what the execution does not use.
     * @defaultValue 0.0003 ETH
     */
    executionFeeWei: Decimal.default('300000000000000'),
    /**
     * Headroom of the execution fee over GMX's minimum at the order's own fee cap: the fee sent covers
     * `gas limit × this × (2 × base fee + priority fee)`. GMX checks the fee against the gas price of
     * the transaction that creates the order (`executionFee ≥ gas limit × tx.gasprice`), and a speed-up
     * (`TxSender.replace`, the same call re-signed at ≥ 12.5 % higher fees) carries the fee of the
     * original: without headroom it reverts `InsufficientExecutionFee`. 2 covers five speed-ups at steady
     * fees, or a base fee that rises to about 4× (tips ignored, as on Arbitrum) before one is mined. Not
     * a cost: GMX refunds what the keeper's execution does not use (quotes count the fee without it).
     * With `maxFeePerGasGwei` the fee sent is also never more than `gas limit × the cap`: no transaction
     * that can create the order (the first send or any replacement) pays more per gas than the cap.
     * @defaultValue 2
     */
    executionFeeHeadroom: z.number().min(1).max(10).default(2),
    /** Gas limit used to price an order transaction in quotes. @defaultValue 900000 */
    orderGasLimit: z.number().int().positive().default(900_000),
    /** Typical keeper delay, for quotes' expected latency. @defaultValue 2000 */
    expectedKeeperDelayMs: z.number().int().nonnegative().default(2000),
    /**
     * Approvals: `exact` per order or `capped` up to `approvalCap` (collateral units, decimal), and never
     * more than `spendCapPerDay` still allows (the order's collateral plus what the day has left after it).
     */
    approval: z.enum(['exact', 'capped']).default('exact'),
    approvalCap: Decimal.optional(),
    /** Most collateral the adapter may send per day, in collateral units (decimal). @defaultValue 1000000 */
    spendCapPerDay: Decimal.default('1000000'),
    minSizeBase: Decimal.default('0.0001'),
    sizeStepBase: Decimal.default('0.0001'),
    /** ETH price used to value gas when no ETH market is listed. @defaultValue 3000 */
    gasAssetUsd: z.number().positive().default(3000),
    /** Seconds to wait for a receipt before the outcome is unknown. @defaultValue 30 */
    receiptTimeoutSeconds: z.number().positive().default(30),
    /** Base fee cap for non-urgent hedges, gwei (Infinity when omitted). */
    maxBaseFeeGwei: z.number().positive().optional(),
    /**
     * Hard cap on any transaction's `maxFeePerGas`, gwei (a finite number > 0): no transaction of the
     * venue (order, cancel, approval, replacement; urgent or not) is signed with more. A send that needs
     * more (a base fee above it) is not sent: a retryable `RateLimitError` naming the fee and the cap; a
     * speed-up or cancel by replacement that needs more (12.5 % over the fee cap it replaces) is refused
     * the same way and the original stays the transaction the order tracks. With a cap, an order's
     * execution fee is at most its gas limit × the cap (see `executionFeeHeadroom`). @defaultValue no cap
     */
    maxFeePerGasGwei: z.number().positive().optional(),
    /** Folder for the client order id mapping file. @defaultValue the profile's dataDir */
    dataDir: z.string().optional(),
  })
  .strict();
export type GmxVenueParams = z.output<typeof GmxVenueParams>;
export type GmxVenueParamsInput = z.input<typeof GmxVenueParams>;
