import { resolveSecret, SecretError, type SecretRefLike, type SecretSources } from '@xhedge/core';
import type { Hex } from 'viem';

// Secrets by reference are chain-agnostic (the Solana venue reads them too): they live in @xhedge/core.
export { resolveSecret, SecretError, type SecretRefLike, type SecretSources };

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

/**
 * Replaces every occurrence of the given secrets (and anything that looks like a 32-byte private key
 * or a URL's inline credentials / API key path) in a text. Applied to every error message the EVM
 * layer builds from RPC errors, which echo request bodies and URLs.
 */
export function redact(text: string, secrets: readonly string[] = []): string {
  let out = text;
  for (const s of secrets) {
    if (s.length >= 6) {
      out = out.split(s).join('[redacted]');
      if (s.startsWith('0x')) out = out.split(s.slice(2)).join('[redacted]');
    }
  }
  return out
    .replace(/0x[0-9a-fA-F]{64}(?![0-9a-fA-F])/g, (m, offset: number, all: string) =>
      // 32-byte hex is also a tx hash or a topic; only redact when labelled as a key.
      /key|secret/i.test(all.slice(Math.max(0, offset - 24), offset)) ? '[redacted]' : m,
    )
    .replace(/(https?:\/\/)[^/@\s]+@/gi, '$1[redacted]@')
    .replace(/(https?:\/\/[^\s/]+\/(?:v[0-9]+\/)?)[A-Za-z0-9_-]{20,}/g, '$1[redacted]');
}
