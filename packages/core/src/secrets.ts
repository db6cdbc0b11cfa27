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
