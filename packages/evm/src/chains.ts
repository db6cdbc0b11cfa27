import type { ChainId } from '@xhedge/core';
import { XhedgeError } from '@xhedge/core';
import { type Chain, defineChain } from 'viem';
import { arbitrum, foundry, mainnet, optimism } from 'viem/chains';

/** How a chain charges for L1 data (the all-in cost of a transaction on an L2). */
export type L1DataFeeKind = 'none' | 'op-stack' | 'arbitrum' | 'fixed-per-byte';

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
  'evm:10': { chain: optimism, l1DataFee: 'op-stack' },
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
