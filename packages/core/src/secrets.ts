import { readFileSync } from 'node:fs';
import { XhedgeError } from './errors.ts';

/** A secret by reference (the operator config's SecretRef shape): env var name or key file path. */
export type SecretRefLike = { env: string } | { keyFile: string };

/** A secret could not be loaded; the message names the reference, never the value. */
export class SecretError extends XhedgeError {
  override name = 'SecretError';
  constructor(message: string, details: Record<string, unknown>) {
    super('SECRET', message, { details });
  }
}

/** Where secrets are read: env vars (`process.env` by default) and key files (`readFileSync`). */
export interface SecretSources {
  env?: Readonly<Record<string, string | undefined>>;
  readFile?: (path: string) => string;
}

/**
 * Reads a secret from its env var or key file (trimmed). Throws {@link SecretError} naming only the
 * reference, prefixed with `what` (e.g. `credentials.signer`) when given.
 */
export function resolveSecret(ref: SecretRefLike, sources: SecretSources = {}, what?: string): string {
  const at = what ? `${what}: ` : '';
  if ('env' in ref) {
    const value = (sources.env ?? process.env)[ref.env];
    if (value === undefined || value.trim() === '') {
      throw new SecretError(`${at}environment variable ${ref.env} is not set`, { env: ref.env });
    }
    return value.trim();
  }
  try {
    return (sources.readFile ?? ((p) => readFileSync(p, 'utf8')))(ref.keyFile).trim();
  } catch (err) {
    throw new SecretError(`${at}key file ${ref.keyFile} cannot be read`, {
      keyFile: ref.keyFile,
      reason: err instanceof Error ? ((err as NodeJS.ErrnoException).code ?? 'unreadable') : 'unreadable',
    });
  }
}

/**
 * Replaces every occurrence of the given secrets (and anything that looks like a 32-byte private key
 * or a URL's inline credentials, API key path or API key query parameter) in a text. Applied to the
 * error messages the EVM layer and the Solana venue build from RPC errors, which echo request bodies
 * and URLs (an RPC provider's key often sits in its URL).
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
    .replace(/(https?:\/\/[^\s/]+\/(?:v[0-9]+\/)?)[A-Za-z0-9_-]{20,}/g, '$1[redacted]')
    .replace(/([?&](?:api[-_]?key|apikey|key|token|access[-_]?token|auth)=)[^&#\s"']+/gi, '$1[redacted]');
}
