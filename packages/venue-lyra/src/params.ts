import { AddressParam as Address, DecimalParam as Decimal } from '@xhedge/evm';
import { z } from 'zod';

/** One Lyra option market (one per underlying) with its companion contracts. */
export const LyraMarketParams = z
  .object({
    underlying: z.string().regex(/^[A-Z][A-Z0-9]{1,9}$/),
    optionMarket: Address,
    /** The OptionToken contract (positions); named so the config's secret scan does not mistake it for a credential. */
    optionPositions: Address,
    greekCache: Address,
    exchangeAdapter: Address,
  })
  .strict();

/** `params` of a `lyra` venue in the operator profile (contract addresses and knobs; no secrets). */
export const LyraVenueParams = z
  .object({
    markets: z.array(LyraMarketParams).min(1),
    /** The quote asset (sUSD/USDC-like) premiums and collateral are paid in. */
    quoteAsset: Address,
    quoteSymbol: z.string().default('USDC'),
    /** @defaultValue 18 (Lyra v1 works in 18-decimal quote units) */
    quoteDecimals: z.number().int().min(0).max(36).default(18),
    /** Storage slot of the quote token's allowance mapping, to simulate trades before approving (eth_call state override). */
    quoteAllowanceSlot: z.number().int().nonnegative().optional(),
    /** Slippage bound on the simulated total cost when an order has no limit price, bps. @defaultValue 100 */
    maxSlippageBps: z.number().positive().max(5000).default(100),
    /** Collateral posted on short options, as a multiple of the AMM's minimum. @defaultValue 1.2 */
    shortCollateralBuffer: z.number().min(1).default(1.2),
    /** Lyra's pricing iterations per trade. @defaultValue 1 */
    iterations: z.number().int().positive().default(1),
    /** Risk-free rate for local pricing, decimal. @defaultValue 0 */
    rate: z.number().default(0),
    /** Relative divergence between AMM and local Greeks that is flagged. @defaultValue 0.05 */
    greekTolerance: z.number().positive().default(0.05),
    approval: z.enum(['exact', 'capped']).default('exact'),
    approvalCap: Decimal.optional(),
    /** Most quote asset the adapter may pull per day (premium plus collateral), decimal. @defaultValue 1000000 */
    spendCapPerDay: Decimal.default('1000000'),
    minSizeBase: Decimal.default('0.01'),
    sizeStepBase: Decimal.default('0.01'),
    /** Gas limit used to price a trade in quotes. @defaultValue 600000 */
    tradeGasLimit: z.number().int().positive().default(600_000),
    gasAssetUsd: z.number().positive().default(3000),
    receiptTimeoutSeconds: z.number().positive().default(30),
    maxBaseFeeGwei: z.number().positive().optional(),
    /**
     * Hard cap on any transaction's maxFeePerGas, gwei: no send or replacement, urgent or not, is signed
     * above it; one that needs more is refused, not sent (@xhedge/evm GasPolicy). @defaultValue no cap
     */
    maxFeePerGasGwei: z.number().positive().optional(),
    dataDir: z.string().optional(),
    /**
     * The chain's Multicall3, which batches the adapter's view reads (boards, strikes, Greeks: a few
     * round trips per call, whatever the book's size). @defaultValue the one viem's chain config names
     * (Arbitrum, Optimism, Base, …), else a deployless Multicall3 inside each `eth_call`
     */
    multicall3: Address.optional(),
  })
  .strict();
export type LyraVenueParams = z.output<typeof LyraVenueParams>;
export type LyraVenueParamsInput = z.input<typeof LyraVenueParams>;
