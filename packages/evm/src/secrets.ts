import { redact, resolveSecret, SecretError, type SecretRefLike, type SecretSources } from '@xhedge/core';
import type { Hex } from 'viem';

// Secrets by reference are chain-agnostic (the Solana venue reads them too): they live in @xhedge/core.
export { redact, resolveSecret, SecretError, type SecretRefLike, type SecretSources };

/** Resolves a private key reference and checks its shape (32 bytes hex, 0x optional). */
export function resolvePrivateKey(ref: SecretRefLike, sources: SecretSources = {}): Hex {
  const raw = resolveSecret(ref, sources);
  const hex = raw.startsWith('0x') ? raw : `0x${raw}`;
  if (!/^0x[0-9a-fA-F]{64}$/.test(hex)) {
    throw new SecretError('the private key is not 32 bytes of hex', {
      ref: 'env' in ref ? { env: ref.env } : { keyFile: ref.keyFile },
    });
  }
  return hex as Hex;
}
