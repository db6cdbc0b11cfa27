import { readFileSync } from 'node:fs';
import { XhedgeError } from '@xhedge/core';
import type { Hex } from 'viem';

/** A secret by reference (the operator config's SecretRef shape): env var name or key file path. */
export type SecretRefLike = { env: string } | { keyFile: string };

/** A secret could not be loaded; the message names the reference, never the value. */
export class SecretError extends XhedgeError {
  override name = 'SecretError';
  constructor(message: string, details: Record<string, unknown>) {
    super('SECRET', message, { details });
  }
}

export interface SecretSources {
  env?: Readonly<Record<string, string | undefined>>;
  readFile?: (path: string) => string;
}

/** Reads a secret from its env var or key file (trimmed). Throws {@link SecretError} naming only the reference. */
export function resolveSecret(ref: SecretRefLike, sources: SecretSources = {}): string {
  if ('env' in ref) {
    const value = (sources.env ?? process.env)[ref.env];
    if (value === undefined || value.trim() === '') {
      throw new SecretError(`environment variable ${ref.env} is not set`, { env: ref.env });
    }
    return value.trim();
  }
  try {
    return (sources.readFile ?? ((p) => readFileSync(p, 'utf8')))(ref.keyFile).trim();
  } catch (err) {
    throw new SecretError(`key file ${ref.keyFile} cannot be read`, {
      keyFile: ref.keyFile,
      reason: err instanceof Error ? ((err as NodeJS.ErrnoException).code ?? 'unreadable') : 'unreadable',
    });
  }
}

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
