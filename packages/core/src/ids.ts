import { z } from 'zod';

/** An asset or underlying symbol: `BTC`, `ETH`, `SOL`, `USD`, `USDC`. Upper case letters and digits. */
export const AssetSymbol = z
  .string()
  .regex(/^[A-Z][A-Z0-9]{1,9}$/, 'expected an upper-case asset symbol such as BTC, ETH or USDC');
export type AssetSymbol = z.infer<typeof AssetSymbol>;

/** The symbol of an underlying whose Greeks are aggregated (`BTC`). */
export const Underlying = AssetSymbol;
export type Underlying = AssetSymbol;

/**
 * Chains, CAIP-2 style: `evm:<chainId>`, `solana:<cluster>`, or `offchain` for CEXs and paper venues
 * without a chain. Well-known chains have metadata in {@link CHAINS}.
 */
export const ChainId = z
  .string()
  .regex(
    /^(evm:[1-9][0-9]{0,11}|solana:(mainnet-beta|devnet|testnet|localnet)|offchain)$/,
    'expected evm:<chain id> (evm:1, evm:42161, evm:10), solana:<cluster> (solana:mainnet-beta) or offchain',
  );
export type ChainId = z.infer<typeof ChainId>;

export interface ChainInfo {
  id: ChainId;
  name: string;
  family: 'evm' | 'solana' | 'offchain';
  /** Typical block or slot time. */
  blockTimeMs: number;
  /** The asset gas is paid in. */
  gasAsset: AssetSymbol | null;
  /** Typical all-in cost of one hedge transaction in USD, [low, high] (the mission's table). */
  typicalTxCostUsd: readonly [number, number];
}

export const CHAINS: Readonly<Record<string, ChainInfo>> = {
  'evm:1': {
    id: 'evm:1',
    name: 'Ethereum',
    family: 'evm',
    blockTimeMs: 12_000,
    gasAsset: 'ETH',
    typicalTxCostUsd: [5, 50],
  },
  'evm:42161': {
    id: 'evm:42161',
    name: 'Arbitrum One',
    family: 'evm',
    blockTimeMs: 250,
    gasAsset: 'ETH',
    typicalTxCostUsd: [0.01, 0.5],
  },
  'evm:10': {
    id: 'evm:10',
    name: 'Optimism',
    family: 'evm',
    blockTimeMs: 2_000,
    gasAsset: 'ETH',
    typicalTxCostUsd: [0.01, 0.5],
  },
  'evm:31337': {
    id: 'evm:31337',
    name: 'Local EVM (anvil)',
    family: 'evm',
    blockTimeMs: 1_000,
    gasAsset: 'ETH',
    typicalTxCostUsd: [0, 0.01],
  },
  'solana:mainnet-beta': {
    id: 'solana:mainnet-beta',
    name: 'Solana',
    family: 'solana',
    blockTimeMs: 400,
    gasAsset: 'SOL',
    typicalTxCostUsd: [0.0005, 0.01],
  },
  offchain: {
    id: 'offchain',
    name: 'Off-chain',
    family: 'offchain',
    blockTimeMs: 0,
    gasAsset: null,
    typicalTxCostUsd: [0, 0],
  },
};

export function chainInfo(chain: ChainId): ChainInfo | undefined {
  return CHAINS[chain];
}

/** Operator-chosen venue id: lower-case slug, `lyra-arb`, `gmx-arb`, `drift-sol`. */
export const VenueId = z
  .string()
  .regex(/^[a-z][a-z0-9-]{1,39}$/, 'expected a lower-case slug such as lyra-arb (letters, digits, dashes)');
export type VenueId = z.infer<typeof VenueId>;

/** Ids of intents, plans, orders: safe as BullMQ job ids (no `:`, not all digits) and in URLs. */
export const EntityId = z
  .string()
  .regex(
    /^[A-Za-z][A-Za-z0-9_-]{2,127}$/,
    'expected an id of 3 to 128 letters, digits, _ and -, starting with a letter',
  );
export type EntityId = z.infer<typeof EntityId>;
