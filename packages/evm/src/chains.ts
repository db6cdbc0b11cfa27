import type { ChainId } from '@xhedge/core';
import { XhedgeError } from '@xhedge/core';
import { type Chain, defineChain } from 'viem';
import {
  arbitrum,
  arbitrumNova,
  arbitrumSepolia,
  base,
  baseSepolia,
  foundry,
  mainnet,
  optimism,
  optimismSepolia,
} from 'viem/chains';

/** How a chain charges for L1 data (the all-in cost of a transaction on an L2). */
export type L1DataFeeKind = 'none' | 'op-stack' | 'arbitrum' | 'fixed-per-byte';

/**
 * Whether a chain family's gas (`eth_estimateGas`, receipts' `gasUsed`, so any gas limit sized from them)
 * already pays for the L1 data, per family:
 * - `arbitrum`: yes. ArbOS charges the L1 posting cost as extra L2 gas; `NodeInterface.gasEstimateL1Component`
 *   only tells how much of the estimate it is. Adding it again double-counts.
 * - `op-stack`: no. The L1 fee (`GasPriceOracle.getL1Fee`) is charged on top of gas × price.
 * - `fixed-per-byte` (local chains, modelled like an OP Stack chain): no.
 * - `none` (Ethereum L1): there is no L1 data fee.
 */
export const L1_FEE_IN_GAS: Readonly<Record<L1DataFeeKind, boolean>> = {
  none: false,
  'op-stack': false,
  arbitrum: true,
  'fixed-per-byte': false,
};

export interface EvmChainProfile {
  chain: Chain;
  l1DataFee: L1DataFeeKind;
}

export class UnsupportedChainError extends XhedgeError {
  override name = 'UnsupportedChainError';
  constructor(chain: string) {
    super('EVM_UNSUPPORTED_CHAIN', `no EVM profile for chain ${chain}`, { details: { chain } });
  }
}

const PROFILES: Record<string, EvmChainProfile> = {
  'evm:1': { chain: mainnet, l1DataFee: 'none' },
  'evm:42161': { chain: arbitrum, l1DataFee: 'arbitrum' },
  'evm:42170': { chain: arbitrumNova, l1DataFee: 'arbitrum' },
  'evm:421614': { chain: arbitrumSepolia, l1DataFee: 'arbitrum' },
  'evm:10': { chain: optimism, l1DataFee: 'op-stack' },
  'evm:11155420': { chain: optimismSepolia, l1DataFee: 'op-stack' },
  'evm:8453': { chain: base, l1DataFee: 'op-stack' },
  'evm:84532': { chain: baseSepolia, l1DataFee: 'op-stack' },
  // anvil has no L1: the data fee is a configurable per-byte estimate so costs look like an L2's.
  'evm:31337': { chain: foundry, l1DataFee: 'fixed-per-byte' },
};

/** The viem chain and L1 data fee model for a canonical chain id (`evm:42161`). */
export function evmChainProfile(chain: ChainId): EvmChainProfile {
  const known = PROFILES[chain];
  if (known) return known;
  const m = /^evm:([0-9]+)$/.exec(chain);
  if (!m) throw new UnsupportedChainError(chain);
  const id = Number(m[1]);
  return {
    chain: defineChain({
      id,
      name: `evm-${id}`,
      nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
      rpcUrls: { default: { http: [] } },
    }),
    l1DataFee: 'none',
  };
}
