import type { ChainId } from '@xhedge/core';
import {
  type Account,
  BaseError,
  type Chain,
  createPublicClient,
  createWalletClient,
  fallback,
  type Hex,
  hexToNumber,
  http,
  type PublicClient,
  shouldThrow,
  type Transport,
  type WalletClient,
} from 'viem';
import { type PrivateKeyAccount, privateKeyToAccount } from 'viem/accounts';
import { type EvmChainProfile, evmChainProfile } from './chains.ts';
import { ChainIdMismatchError, findChainIdMismatch } from './errors.ts';
import { rpcUrlRedactor } from './rpc-redact.ts';
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
  /**
   * Values to scrub from any message: the RPC URLs, which may embed API keys, in each form and each part of
   * their userinfo, path and query ({@link rpcUrlRedactor}). The key never leaves the account object.
   */
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

/**
 * Wraps a transport so that, before its first request, it asks the RPC for `eth_chainId` and refuses
 * (with {@link ChainIdMismatchError}) to serve anything if that is not `expectedId`: EIP-155 protects
 * signatures, but reads from the wrong chain would look valid. The state lives outside the transport
 * factory, so it holds across the clients of a context (and fallback's per-request instantiation): a
 * match is checked once, a mismatch is remembered, a failed check (RPC down) is tried again next time.
 */
function chainIdChecked(
  inner: Transport,
  check: { venue: string; expectedId: number; rpcIndex?: number },
): Transport {
  let verified = false;
  let mismatch: ChainIdMismatchError | undefined;
  let inFlight: Promise<void> | undefined;
  return (params) => {
    const t = inner(params);
    // viem's error handling reads viem-shaped errors (string `details`): hand it one, the mismatch as cause.
    const refuse = (m: ChainIdMismatchError) => new BaseError(m.shortMessage, { cause: m });
    const verify = (): Promise<void> => {
      if (verified) return Promise.resolve();
      if (mismatch) return Promise.reject(refuse(mismatch));
      inFlight ??= (async () => {
        try {
          const raw: unknown = await t.request({ method: 'eth_chainId' });
          const rpcChainId = typeof raw === 'number' ? raw : hexToNumber(raw as `0x${string}`);
          if (rpcChainId !== check.expectedId) {
            mismatch = new ChainIdMismatchError({
              venue: check.venue,
              configuredChainId: check.expectedId,
              rpcChainId,
              ...(check.rpcIndex !== undefined ? { rpcIndex: check.rpcIndex } : {}),
            });
            throw refuse(mismatch);
          }
          verified = true;
        } finally {
          inFlight = undefined;
        }
      })();
      return inFlight;
    };
    const request = (async (args: Parameters<typeof t.request>[0], options?: unknown) => {
      await verify();
      return t.request(args, options as never);
    }) as typeof t.request;
    return { ...t, request };
  };
}

/** The URLs of an instantiated transport (viem's http transport keeps its own; fallback its transports'). */
function transportUrls(value: unknown, depth = 0): string[] {
  if (typeof value !== 'object' || value === null || depth > 4) return [];
  const v = value as { url?: unknown; transports?: unknown };
  const own = typeof v.url === 'string' ? [v.url] : [];
  const inner = Array.isArray(v.transports)
    ? v.transports.flatMap((t: unknown) => transportUrls((t as { value?: unknown } | null)?.value, depth + 1))
    : [];
  return [...own, ...inner];
}

/**
 * Wraps a transport so that nothing it rejects with names its RPC URL: viem's request errors carry the
 * URL (an API key in its path, query or userinfo) in their message, stack, `url`, `details` (a provider's
 * error page may echo it) and `metaMessages`, and so does everything built on them. Each rejection is
 * scrubbed in place ({@link rpcUrlRedactor}: `urls` and the URLs the transport itself holds), keeping
 * its class, code and data, so viem's retries, fallback and error mapping see it as before. Defence in
 * depth under the call sites' `toVenueError`: a read that a future call site forgets to map still
 * cannot leak the key.
 */
function urlScrubbed(inner: Transport, urls: readonly string[]): Transport {
  return (params) => {
    const t = inner(params);
    const redactor = rpcUrlRedactor([...urls, ...transportUrls(t.value)]);
    const request = (async (args: Parameters<typeof t.request>[0], options?: unknown) => {
      try {
        return await t.request(args, options as never);
      } catch (err) {
        throw redactor.error(err);
      }
    }) as typeof t.request;
    return { ...t, request };
  };
}

/**
 * Public and wallet clients with RPC fallbacks and `cacheTime: 0` (fresh block numbers, nonces). Each
 * RPC (or the injected transport) is checked to serve `opts.chain` before its first use; on a mismatch
 * every request fails with {@link ChainIdMismatchError} (not moved on to the next fallback RPC).
 */
export function createEvmContext(opts: CreateEvmContextOptions): EvmContext {
  const profile = evmChainProfile(opts.chain);
  const timeout = opts.requestTimeoutMs ?? 10_000;
  const checked = (t: Transport, rpcIndex?: number) =>
    chainIdChecked(t, {
      venue: opts.venue,
      expectedId: profile.chain.id,
      ...(rpcIndex !== undefined ? { rpcIndex } : {}),
    });
  const transport = urlScrubbed(
    opts.transport
      ? checked(opts.transport)
      : opts.rpcUrls.length === 1
        ? checked(http(opts.rpcUrls[0], { timeout, retryCount: 1 }), 0)
        : fallback(
            opts.rpcUrls.map((u, i) => checked(http(u, { timeout, retryCount: 1 }), i)),
            {
              rank: false,
              retryCount: 1,
              shouldThrow: (err) => findChainIdMismatch(err) !== undefined || Boolean(shouldThrow(err)),
            },
          ),
    opts.rpcUrls,
  );
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
    secrets: [...new Set([...opts.rpcUrls, ...rpcUrlRedactor(opts.rpcUrls).secrets])],
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
