import type { ChainId } from '@xhedge/core';
import {
  type Account,
  type Chain,
  createPublicClient,
  createWalletClient,
  fallback,
  type Hex,
  http,
  type PublicClient,
  type Transport,
  type WalletClient,
} from 'viem';
import { type PrivateKeyAccount, privateKeyToAccount } from 'viem/accounts';
import { type EvmChainProfile, evmChainProfile } from './chains.ts';
import {
  resolvePrivateKey,
  resolveSecret,
  SecretError,
  type SecretRefLike,
  type SecretSources,
} from './secrets.ts';

/** The parts of an operator venue config (`@xhedge/config` VenueConfig) the EVM layer reads. */
export interface EvmVenueConfigLike {
  id: string;
  chain: ChainId;
  endpoints?: { rpc?: readonly (string | { env: string })[] | undefined };
  credentials?: Readonly<Record<string, SecretRefLike>>;
  params?: Readonly<Record<string, unknown>>;
}

/** Clients for one account on one chain. */
export interface EvmContext {
  venue: string;
  chainId: ChainId;
  profile: EvmChainProfile;
  chain: Chain;
  publicClient: PublicClient;
  walletClient: WalletClient<Transport, Chain, Account>;
  account: PrivateKeyAccount;
  /** Values to scrub from any message (RPC URLs, which may embed API keys). The key never leaves the account object. */
  secrets: readonly string[];
}

export interface CreateEvmContextOptions {
  venue: string;
  chain: ChainId;
  /** RPC URLs, tried in order by viem's fallback transport (the next one on failure). */
  rpcUrls: readonly string[];
  privateKey: Hex;
  /** Injected transport (tests); replaces `rpcUrls`. */
  transport?: Transport;
  /** Per-request timeout. @defaultValue 10000 */
  requestTimeoutMs?: number;
  /** Receipt polling interval. @defaultValue 250 */
  pollingIntervalMs?: number;
}

/** Public and wallet clients with RPC fallbacks and `cacheTime: 0` (fresh block numbers, nonces). */
export function createEvmContext(opts: CreateEvmContextOptions): EvmContext {
  const profile = evmChainProfile(opts.chain);
  const timeout = opts.requestTimeoutMs ?? 10_000;
  const transport =
    opts.transport ??
    (opts.rpcUrls.length === 1
      ? http(opts.rpcUrls[0], { timeout, retryCount: 1 })
      : fallback(
          opts.rpcUrls.map((u) => http(u, { timeout, retryCount: 1 })),
          { rank: false, retryCount: 1 },
        ));
  const pollingInterval = opts.pollingIntervalMs ?? 250;
  const account = privateKeyToAccount(opts.privateKey);
  const publicClient = createPublicClient({ chain: profile.chain, transport, cacheTime: 0, pollingInterval });
  const walletClient = createWalletClient({
    chain: profile.chain,
    transport,
    account,
    cacheTime: 0,
    pollingInterval,
  });
  return {
    venue: opts.venue,
    chainId: opts.chain,
    profile,
    chain: profile.chain,
    publicClient: publicClient as PublicClient,
    walletClient,
    account,
    secrets: [...opts.rpcUrls],
  };
}

/**
 * Builds the EVM context of a venue from its operator config: RPC URLs (inline or `{env}`) and the
 * `privateKey` credential (`{env}` or `{keyFile}`). Throws {@link SecretError} naming only the reference.
 */
export function evmContextFromVenueConfig(
  venue: EvmVenueConfigLike,
  sources: SecretSources = {},
  overrides: Partial<
    Pick<CreateEvmContextOptions, 'transport' | 'requestTimeoutMs' | 'pollingIntervalMs'>
  > = {},
): EvmContext {
  const rpc = venue.endpoints?.rpc ?? [];
  if (rpc.length === 0 && !overrides.transport) {
    throw new SecretError(`venue ${venue.id} has no endpoints.rpc`, { venue: venue.id });
  }
  const rpcUrls = rpc.map((r) => (typeof r === 'string' ? r : resolveSecret(r, sources)));
  const keyRef = venue.credentials?.privateKey;
  if (!keyRef) throw new SecretError(`venue ${venue.id} has no credentials.privateKey`, { venue: venue.id });
  return createEvmContext({
    venue: venue.id,
    chain: venue.chain,
    rpcUrls,
    privateKey: resolvePrivateKey(keyRef, sources),
    ...overrides,
  });
}
