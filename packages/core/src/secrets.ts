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

/**
 * `text` (an error message, a log line) with every credential it may carry masked: what {@link redact}
 * masks, and the userinfo of a URL of any scheme up to its last `@` (`postgres://user:p@ss@db` — a raw
 * `@` in a password left `@ss@db` before), secret-named query parameters (`?password=`, `&sslpassword=`,
 * `?apikey=`) and secret-named `key=value` settings (`password=…` in a connection string). The one
 * masking of the runtime's and the API's logs.
 */
export function maskCredentials(text: string): string {
  return redact(text)
    .replace(/([a-z][a-z0-9+.-]*:\/\/)[^\s/?#]*@/gi, '$1[redacted]@')
    .replace(/([?&;][^=&;#\s]*(?:pass|pwd|secret|token|key)[^=&;#\s]*=)[^&;#\s"']+/gi, '$1[redacted]')
    .replace(
      /(\b[\w.-]*(?:password|passwd|passphrase|pwd|secret|token|api[-_]?key|private[-_]?key)[\w.-]*\s*=\s*)("[^"]*"|'[^']*'|[^\s&;,"']+)/gi,
      '$1[redacted]',
    );
}

/**
 * `value` with every string in it passed through {@link maskCredentials} (arrays and plain objects
 * walked, at most `depth` levels; deeper ones left out): the fields of an error already made a record.
 */
export function maskCredentialsDeep(value: unknown, depth = 6): unknown {
  if (typeof value === 'string') return maskCredentials(value);
  if (value === null || typeof value !== 'object') return value;
  if (depth <= 0) return '[nested too deep]';
  if (Array.isArray(value)) return value.map((v) => maskCredentialsDeep(v, depth - 1));
  return Object.fromEntries(
    Object.entries(value as Record<string, unknown>).map(([k, v]) => [
      k,
      // a field named as a secret (`password`, `apiKey`, `privateKey`) is masked whatever it holds
      SECRET_FIELD_RE.test(k) && (typeof v === 'string' || typeof v === 'number')
        ? '[redacted]'
        : maskCredentialsDeep(v, depth - 1),
    ]),
  );
}

/** A field name that says it holds a secret. */
const SECRET_FIELD_RE =
  /(password|passwd|passphrase|secret|private.?key|mnemonic|seed.?phrase|api.?key|(auth|access|api|bearer|refresh|session).?token)/i;

/**
 * The frames of `err`'s stack (`    at …` lines), without its first line, which repeats the raw message
 * (credentials and all): what a log may keep of a stack. '' for anything that is not an Error with one.
 */
export function stackFrames(err: unknown): string {
  if (!(err instanceof Error) || typeof err.stack !== 'string') return '';
  return err.stack
    .split('\n')
    .filter((l) => /^\s+at /.test(l))
    .join('\n');
}
