import { createHmac } from 'node:crypto';
import { canonicalJson, XhedgeError } from '@xhedge/core';

/**
 * Versions of the configs operators change through the API (each venue's, the policy document), the
 * way HTTP conditional requests and Kubernetes' resourceVersion use them: a read gives the version, a
 * change may say which version it was made from (`If-Match`), and is refused with 412 when the stored
 * config is no longer that version, so two operators editing from the same read cannot silently undo
 * each other.
 */

/**
 * The version of a stored config: HMAC-SHA256 of its canonical JSON (keys sorted), first 128 bits in
 * hex. It changes with any change of the config (credential references and endpoints included, which the
 * API never shows), and is the same in every process given the same `key`. Keyed so that a version shown
 * to a viewer is no oracle for a secret the config holds: with a plain hash, a config whose only unknown
 * is a short password in an RPC URL could be checked against guesses offline.
 */
export function configVersion(value: unknown, key: string): string {
  return createHmac('sha256', key).update(canonicalJson(value)).digest('hex').slice(0, 32);
}

/** A version as an HTTP entity tag (strong), as the `ETag` header carries it. */
export function etag(version: string): string {
  return `"${version}"`;
}

/**
 * What a change requires of the stored config's version: one of these versions (`If-Match: "v1", "v2"`,
 * or the body's `version`), or `'*'`: the config exists, whatever its version (an explicit "overwrite
 * what is there"). Absent: an unconditional change.
 */
export type IfMatch = '*' | readonly string[];

/** Who last changed a config through the store, as the store recorded it with the change. */
export interface LastChange {
  /** The version the change left; the record describes the config only while it still has it. */
  version: string;
  by: string;
  atMs: number;
  /** `venue.update`, `venue.disable`, `policy.update`, ... */
  action: string;
}

/** "last changed by alice (venue.disable) at 2026-…", when `last` describes the version `current`. */
function changedBy(current: string, last: LastChange | undefined): { text: string; details: object } {
  if (!last || last.version !== current) return { text: 'who changed it is not recorded', details: {} };
  return {
    text: `last changed by ${last.by} (${last.action}) at ${new Date(last.atMs).toISOString()}`,
    details: { changedBy: last.by, changedAtMs: last.atMs, change: last.action },
  };
}

/**
 * Refuses a conditional change (412 PRECONDITION_FAILED) when the stored config `what` (`venue gmx-arb`,
 * `policy`) is no longer one of the versions `ifMatch` names, saying its version now and who changed it
 * when the store recorded it. Call it on the config as read inside the store's compare-and-set, so the
 * check and the write see the same version.
 */
export function checkIfMatch(
  what: string,
  current: string,
  ifMatch: IfMatch | undefined,
  last: LastChange | undefined,
): void {
  if (ifMatch === undefined || ifMatch === '*' || ifMatch.includes(current)) return;
  const who = changedBy(current, last);
  throw new XhedgeError(
    'PRECONDITION_FAILED',
    `${what} changed since version ${ifMatch.join(', ')} was read: it is now version ${current}, ${who.text}; ` +
      'read it again and make the change on what it is now',
    { details: { target: what, version: current, expected: [...ifMatch], ...who.details } },
  );
}

/**
 * Refuses (428 PRECONDITION_REQUIRED) an unconditional change that would switch a disabled venue on: an
 * operator's copy read before another disabled it would otherwise enable it again, silently. Sent with
 * the version read (`If-Match` or the body's `version`), or `If-Match: *`, it goes through. A change that
 * switches a venue off needs no version (stopping trading is never held up), nor does
 * `POST /v1/venues/{id}/disable`.
 */
export function checkEnabledChange(
  id: string,
  prev: { enabled: boolean },
  current: string,
  next: { enabled?: boolean | undefined },
  ifMatch: IfMatch | undefined,
  last: LastChange | undefined,
): void {
  if (ifMatch !== undefined || next.enabled !== true || prev.enabled) return;
  const who = changedBy(current, last);
  throw new XhedgeError(
    'PRECONDITION_REQUIRED',
    `venue ${id} is disabled (version ${current}, ${who.text}); an update that ` +
      'enables it must say which version it was made from: If-Match: "<version>" ' +
      `or "version" in the body, as GET /v1/venues/${id} gives it (If-Match: * to change it whatever the version; ` +
      'leave enabled out to keep it as it is)',
    { details: { target: `venue ${id}`, version: current, enabled: prev.enabled, ...who.details } },
  );
}
