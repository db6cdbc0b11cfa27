import { PoliciesConfig, SecretRef, VENUE_KIND_FAMILY, VenueConfig } from '@xhedge/config';
import { namesForMessage, Underlying, VenueId } from '@xhedge/core';
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { actorOf, bearerToken } from './auth.ts';
import { ApiError, safeError } from './errors.ts';
import type { ApiPorts, ControlsPort, ControlTargets, Policies, TimeRange } from './ports.ts';
import {
  AuditEntryView,
  BookMarkView,
  BreakerView,
  ChainParam,
  EmptyQuery,
  EpochMs,
  ErrorResponse,
  HedgeJobView,
  HedgePlanView,
  IdParam,
  JobsQuery,
  KillScope,
  KillSwitchView,
  NameParam,
  PnlView,
  PositionBreakView,
  ReadinessView,
  Reason,
  RiskSliceView,
  RiskSnapshotView,
  Role,
  ScenarioGridView,
  TimeRangeQuery,
  TokenView,
  UnderlyingParam,
  VenueParam,
  VenueView,
} from './schemas.ts';
import { etag, type IfMatch } from './versions.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The 200 answer carries the resource's version as the `ETag` header (documented in the OpenAPI). */
    etag?: string;
  }
}

/** A key whose value, given inline as a string or number, is taken for a secret. */
const SECRET_KEY_RE = /(private.?key|secret|mnemonic|seed.?phrase|password|passphrase|api.?key|token)/i;
/**
 * A key whose value is a secret whatever its shape: a list of them (`privateKeys: ['0x…']`), an object
 * around one (`apiSecret: {value: …}`). A bare `token` is not one here: in adapter settings it names
 * ERC-20 tokens (`indexTokens: [{address, symbol, decimals}]`), whose entries are checked key by key.
 */
const SECRET_CONTAINER_RE =
  /(private.?key|secret|mnemonic|seed.?phrase|password|passphrase|api.?key|(auth|access|api|bearer|refresh|session).?token)/i;

/** A key naming a URL (`tokensUrl`, `rpcUrls`): its value is checked as a URL, not taken for a secret. */
const URL_KEY_RE = /urls?$/i;

/**
 * Whether `value` under `key` is a URL setting (`tokensUrl: https://…`): a URL under a key naming one,
 * outside a secret. Such a value is a URL whatever key it holds (an endpoint's key is part of its URL,
 * as an RPC URL's may be): shown by its origin alone (see {@link shown}), as the config file takes it.
 */
function urlSetting(key: string | number, value: unknown, secret: boolean): value is string {
  return (
    !secret &&
    typeof key === 'string' &&
    URL_KEY_RE.test(key) &&
    typeof value === 'string' &&
    /^[a-z][a-z0-9+.-]*:\/\//i.test(value)
  );
}

/** How deep a venue's `params` may nest: adapter settings are a few levels deep, not thousands. */
const MAX_PARAMS_DEPTH = 16;

/** What stands for the part of a URL that may hold a key, in what the API shows. */
const MASK = '[redacted]';
const MASKED_MESSAGE = `a URL as the API shows it (${MASK}); give the whole URL, or {env: VAR_NAME} when it holds a key`;
const INLINE_MESSAGE = 'inline secret not allowed; use credentials {env: VAR_NAME}';

/**
 * Whether the value of `key`, found under a secret (`secret` true) or not, is itself a secret: a string
 * or a number under a secret-looking key or anywhere under a secret container (`scalar`), or an array or
 * object under a secret container name, every value in which then is (`container`). A reference
 * (`{env: VAR_NAME}`, `{keyFile: path}`) is never one: it names where the secret is.
 */
function secretShape(
  key: string | number,
  value: unknown,
  secret: boolean,
): 'scalar' | 'container' | 'reference' | undefined {
  const named = (re: RegExp) => secret || (typeof key === 'string' && re.test(key));
  // a URL under a key that says so (GMX's `tokensUrl`) is a URL, shown masked like any other, not a
  // `token` given inline (it was refused, so a GMX venue from the config file could not be edited)
  if (urlSetting(key, value, secret)) return undefined;
  if (typeof value === 'string' || typeof value === 'number')
    return named(SECRET_KEY_RE) ? 'scalar' : undefined;
  if (value === null || typeof value !== 'object' || !named(SECRET_CONTAINER_RE)) return undefined;
  return SecretRef.safeParse(value).success ? 'reference' : 'container';
}

/**
 * What is wrong in a venue's `params`, walked without recursion (a body nested thousands of levels deep
 * must be refused, not overflow the stack): inline secrets (a string or number under a secret-looking
 * key, or anywhere inside a list or object under one: `privateKeys[0]`, `signers[0].privateKey`,
 * `apiSecret.value`), each named by its path, never its value; URLs masked as the API shows them; and
 * the first place nested deeper than {@link MAX_PARAMS_DEPTH}, which is not walked further.
 */
function paramsIssues(params: Record<string, unknown>): { path: (string | number)[]; message: string }[] {
  const out: { path: (string | number)[]; message: string }[] = [];
  let tooDeep = false;
  const stack: { value: unknown; path: (string | number)[]; secret: boolean }[] = [
    { value: params, path: ['params'], secret: false },
  ];
  while (stack.length > 0) {
    const { value, path, secret } = stack.pop() as (typeof stack)[number];
    if (value === null || typeof value !== 'object') continue;
    const entries = (Array.isArray(value) ? [...value.entries()] : Object.entries(value)).map(
      ([k, v]: [string | number, unknown]) => ({ k, v, shape: secretShape(k, v, secret) }),
    );
    if (entries.length === 0) continue;
    // params itself is level 0
    if (path.length - 1 >= MAX_PARAMS_DEPTH) {
      if (!tooDeep)
        out.push({
          path,
          message: `nested deeper than ${MAX_PARAMS_DEPTH} levels; params are adapter settings`,
        });
      tooDeep = true;
      continue;
    }
    for (const { k } of entries.filter((e) => e.shape === 'scalar'))
      out.push({ path: [...path, k], message: INLINE_MESSAGE });
    for (const { k } of entries.filter(
      (e) => e.shape === undefined && typeof e.v === 'string' && e.v.includes(MASK),
    ))
      out.push({ path: [...path, k], message: MASKED_MESSAGE });
    // pushed last to first: walked in the order of the body
    for (const { k, v, shape } of entries
      .filter((e) => e.shape !== 'scalar' && e.shape !== 'reference')
      .reverse())
      stack.push({ value: v, path: [...path, k], secret: shape === 'container' });
  }
  return out;
}

/** The checks a venue gets from the config file's parent: chain family, no inline secrets. */
function venueChecks(
  v: Pick<VenueConfig, 'kind' | 'chain' | 'params'> & { endpoints?: VenueConfig['endpoints'] | undefined },
  ctx: z.RefinementCtx,
): void {
  const family = VENUE_KIND_FAMILY[v.kind];
  if (!v.chain.startsWith(`${family}:`))
    ctx.addIssue({
      code: 'custom',
      path: ['chain'],
      message: `a ${v.kind} venue runs on a ${family} chain, not ${v.chain}`,
    });
  // a view sent back: the venue would run on the masked URLs
  const urls: [(string | number)[], unknown][] = [
    ...(v.endpoints?.rpc ?? []).map((u, i): [(string | number)[], unknown] => [['endpoints', 'rpc', i], u]),
    [['endpoints', 'ws'], v.endpoints?.ws],
  ];
  for (const [path, url] of urls)
    if (typeof url === 'string' && url.includes(MASK))
      ctx.addIssue({ code: 'custom', path, message: MASKED_MESSAGE });
  for (const { path, message } of paramsIssues(v.params)) ctx.addIssue({ code: 'custom', path, message });
}

/** A venue as the config file takes it, plus the checks the file gets from its parent (chain family, no inline secrets). */
export const VenueBody = VenueConfig.superRefine(venueChecks);

/** The version a change was made from, in the body: what GET gave (`version`), as `If-Match` would. */
const VersionField = z
  .string()
  .min(1)
  .max(128)
  .optional()
  .describe(
    'the version this change was made from (the "version" of the GET it was read with; or send it as ' +
      'If-Match): refused with 412 PRECONDITION_FAILED when the stored config is no longer that version. ' +
      'Left out (and no If-Match): the change is unconditional',
  );

/**
 * A venue's replacement: as `VenueBody`, but `enabled` left out keeps the venue's current state (a
 * params change must not switch back on a venue an operator disabled), and the version it was made from.
 */
export const VenueUpdateBody = VenueConfig.extend({
  enabled: z
    .boolean()
    .optional()
    .describe(
      'left out: the venue stays enabled or disabled as it is. false disables it (no version needed); true on a ' +
        'disabled venue only with the version read (If-Match or "version"), or If-Match: *; else 428 PRECONDITION_REQUIRED',
    ),
  credentials: VenueConfig.shape.credentials
    .unwrap()
    .optional()
    .describe('left out: the venue keeps its credentials (never shown); {} clears them'),
  endpoints: VenueConfig.shape.endpoints
    .unwrap()
    .optional()
    .describe('left out: the venue keeps its endpoints (a keyed RPC URL is shown redacted); {} clears them'),
  version: VersionField,
}).superRefine(venueChecks);

/** The policy document as GET /v1/policy shows it: the config file's `policy` section and its version. */
const PolicyView = PoliciesConfig.extend({
  version: z
    .string()
    .describe(
      'the version of the policy document as stored, also the ETag header of GET /v1/policy; send it back ' +
        '(If-Match or "version") so a PUT is refused with 412 if the policy changed since it was read',
    ),
});
/** A policy replacement: the document, and optionally the version it was made from. */
const PolicyBody = PoliciesConfig.extend({ version: VersionField });

/** `If-Match` as a route takes it (other headers pass through untouched). */
const IfMatchHeaders = z.looseObject({
  'if-match': z
    .string()
    .max(1024)
    .optional()
    .describe(
      'the ETag (version) this change was made from, as the GET gave it ("…"; a list of them, or * for "whatever ' +
        'the version"): refused with 412 PRECONDITION_FAILED, naming the version now and who changed it, when ' +
        'the stored config is no longer that version',
    ),
});

/** 400 naming the field, as a validation error. */
function invalid(field: string, message: string): ApiError {
  return new ApiError('VALIDATION', `${field}: ${message}`, { details: { issues: [{ field, message }] } });
}

/**
 * The precondition of a change: `If-Match` (RFC 9110: `*`, or a list of strong entity tags; a bare
 * version is taken too) and the body's `version`, which must agree when both are given. Undefined: none
 * (an unconditional change).
 */
function precondition(header: string | undefined, bodyVersion: string | undefined): IfMatch | undefined {
  let fromHeader: IfMatch | undefined;
  if (header !== undefined && header.trim() !== '') {
    const h = header.trim();
    if (h === '*') fromHeader = '*';
    else {
      const tags = h.split(',').map((t) => t.trim());
      const versions: string[] = [];
      for (const t of tags) {
        const m = /^"([^"]+)"$/.exec(t) ?? /^([A-Za-z0-9_.-]+)$/.exec(t);
        if (!m?.[1])
          throw invalid(
            'headers.if-match',
            t.startsWith('W/')
              ? 'a weak entity tag never matches (If-Match compares strongly): send the ETag as GET gave it'
              : `expected "<version>" as the ETag of the GET (a comma-separated list of them, or *), got ${JSON.stringify(t.slice(0, 80))}`,
          );
        versions.push(m[1]);
      }
      fromHeader = versions;
    }
  }
  if (bodyVersion === undefined) return fromHeader;
  if (
    fromHeader !== undefined &&
    (fromHeader === '*' || fromHeader.length !== 1 || fromHeader[0] !== bodyVersion)
  )
    throw invalid(
      'body.version',
      `must be the version If-Match names (${fromHeader === '*' ? '*' : fromHeader.join(', ')}) when both are given`,
    );
  return [bodyVersion];
}

/** What the audit entry of a change says of its precondition. */
function preconditionOf(ifMatch: IfMatch | undefined): 'version' | 'any' | 'none' {
  return ifMatch === undefined ? 'none' : ifMatch === '*' ? 'any' : 'version';
}

/** Sets the `ETag` of an answer to `version`. */
function withEtag<T>(reply: FastifyReply, version: string, body: T): T {
  reply.header('etag', etag(version));
  return body;
}

/**
 * A string as the API shows it: a URL whose userinfo, path, query or fragment could hold an API key
 * (`https://arb-mainnet.g.alchemy.com/v2/<key>`, `…/prices/tickers?apikey=…`) by its origin alone,
 * `https://host/[redacted]`, as the EVM layer names RPC URLs in errors; anything else as it is.
 */
function shown(value: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return value;
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    return MASK;
  }
  const keyed =
    u.username !== '' || u.password !== '' || u.pathname.length > 1 || u.search !== '' || u.hash !== '';
  return keyed ? `${u.protocol}//${u.host}/${MASK}` : value;
}

/**
 * `value` with every string in it as {@link shown}, and every secret in it (as {@link paramsIssues}
 * finds them: a venue from the config file or stored before that check) as {@link MASK}.
 */
function shownDeep(value: unknown, secret = false): unknown {
  if (secret && (typeof value === 'string' || typeof value === 'number')) return MASK;
  if (typeof value === 'string') return shown(value);
  const child = (k: string | number, v: unknown) => {
    const shape = secretShape(k, v, secret);
    return shownDeep(v, shape === 'scalar' || shape === 'container');
  };
  if (Array.isArray(value)) return value.map((v, i) => child(i, v));
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, child(k, v)]));
  return value;
}

/**
 * A venue as the API shows it: credential references left out (their names only), and inline URLs in
 * endpoints and params by their origin when they could hold a key (a viewer must not read an RPC
 * provider's key or a keyed price endpoint; they are given whole, or by {env}, when the venue is added).
 */
export function venueView(v: VenueConfig, version: string): VenueView {
  return {
    id: v.id,
    kind: v.kind,
    chain: v.chain,
    enabled: v.enabled,
    endpoints: shownDeep(v.endpoints) as VenueView['endpoints'],
    params: shownDeep(v.params) as VenueView['params'],
    credentialNames: Object.keys(v.credentials).sort(),
    version,
  };
}

function range(q: { fromMs?: number | undefined; toMs?: number | undefined; limit: number }): TimeRange {
  if (q.fromMs !== undefined && q.toMs !== undefined && q.fromMs > q.toMs)
    throw new ApiError('VALIDATION', 'querystring.fromMs: must not be after toMs', {
      details: { issues: [{ field: 'querystring.fromMs', message: 'must not be after toMs' }] },
    });
  const r: TimeRange = { limit: q.limit };
  if (q.fromMs !== undefined) r.fromMs = q.fromMs;
  if (q.toMs !== undefined) r.toMs = q.toMs;
  return r;
}

function found<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new ApiError('NOT_FOUND', `${what} not found`);
  return v;
}

const errors = {
  400: ErrorResponse,
  401: ErrorResponse,
  403: ErrorResponse,
  404: ErrorResponse,
  409: ErrorResponse,
  429: ErrorResponse,
};
/** The 412 answer of a conditional change (`If-Match`, a body's `version`). */
const PRECONDITION_FAILED = ErrorResponse.describe(
  'PRECONDITION_FAILED: If-Match (or the body\'s "version") names a version the stored config no longer has; ' +
    'nothing changed. details: version (now), expected, and changedBy, changedAtMs, change when recorded. ' +
    'Read it again and make the change on what it is now',
);
/** The 409 of a release or reset that found a newer engagement or trip than the caller saw. */
const RELEASE_CONFLICT = ErrorResponse.describe(
  'KILL_SWITCH_RELEASE_CONFLICT: the scope was engaged again after this release read it; nothing was released ' +
    'and the newer engagement stays in force (details: scope, eventId, actor, reason, allowRiskReducing, ' +
    'engagedAtMs). Read it again and release it if it should go. Other changes: CONFLICT',
);
const RESET_CONFLICT = ErrorResponse.describe(
  'BREAKER_RESET_CONFLICT: openedAtMs names a trip that is no longer the one in force (the breaker tripped ' +
    'again); nothing changed, the breaker stays open (details: breaker, state, reason, openedAtMs of the trip in ' +
    'force, expectedOpenedAtMs). Read it again and decide on the trip in force',
);
/**
 * The answers of a route that changes something: as {@link errors}, and the 500 AUDIT_UNRECORDED of a
 * change applied whose audit entry failed (see `registerRoutes`' `audit`).
 */
const changeErrors = {
  ...errors,
  500: ErrorResponse.describe(
    'AUDIT_UNRECORDED: the change WAS applied and is in force (details.applied true, details.result the answer it ' +
      'would have had), but the audit ledger did not record it; do not repeat it. INTERNAL: anything else',
  ),
};
/** What a change route says of its audit entry, in its OpenAPI description. */
const AUDITED =
  'Audited with who made it. If the change is applied but its audit entry then fails (the ledger is down), the ' +
  'answer is 500 AUDIT_UNRECORDED saying it is in force (details.result: what this route would have answered): ' +
  'do not repeat it.';
const KillBody = z.strictObject({
  scope: KillScope,
  /** Venue id for scope venue, underlying symbol for scope underlying; absent for global. */
  target: z.string().min(1).max(64).optional(),
  reason: Reason,
});
/** A trip: as a release, and whether reduce-only orders still pass (the CLI's `--allow-risk-reducing`). */
const KillTripBody = KillBody.extend({
  allowRiskReducing: z
    .boolean()
    .default(false)
    .describe(
      'true: reduce-only orders in the scope still pass (a book can still shrink its risk); every other ' +
        "order is stopped. As the CLI's --allow-risk-reducing; left out: false, every order is stopped",
    ),
  replace: z
    .boolean()
    .optional()
    .describe('loosen an engaged full stop to reduce-only; without it an engage never loosens'),
});
const ReasonBody = z.strictObject({ reason: Reason });
/** A breaker reset: why, and optionally the trip it closes (the breaker's sinceMs as GET /v1/controls showed it). */
const BreakerResetBody = ReasonBody.extend({
  openedAtMs: z
    .number()
    .int()
    .nonnegative()
    .optional()
    .describe(
      "close only the trip opened at this time, as GET /v1/controls showed it (the breaker's sinceMs); " +
        '409 if a newer trip is in force',
    ),
});
const AckBody = z.strictObject({ venue: VenueId, instrument: z.string().min(1).max(128), reason: Reason });
const MarkBody = z.strictObject({
  /** Mark at this equity, USD; absent: at the newest equity the planner observed. */
  equityUsd: z
    .number()
    .finite()
    .min(-1e15, { error: 'expected USD from -1e15 to 1e15' })
    .max(1e15, { error: 'expected USD from -1e15 to 1e15' })
    .optional(),
  force: z
    .boolean()
    .optional()
    .describe(
      "true: mark at equityUsd even when it is farther from the newest equity than the loss breaker's limit " +
        '(breakers.market.maxLossSinceMarkUsd); recorded in the audit as forced. Only with equityUsd',
    ),
  reason: Reason,
});
const TokenBody = z.strictObject({ name: z.string().trim().min(1).max(80), role: Role });
const RoleBody = z.strictObject({ role: Role });
const ShockList = (min: number, max: number, dflt: number[]) =>
  z
    .string()
    .regex(/^-?\d+(\.\d+)?(,-?\d+(\.\d+)?){0,40}$/, 'expected comma-separated numbers, e.g. -10,-5,0,5,10')
    .transform((s) => s.split(',').map(Number))
    .pipe(
      z.array(
        z
          .number({ error: `expected numbers from ${min} to ${max}` })
          .min(min, { error: `expected numbers from ${min} to ${max}` })
          .max(max, { error: `expected numbers from ${min} to ${max}` }),
      ),
    )
    .optional()
    .transform((v) => v ?? dflt);

/** Checks that a kill-switch target fits its scope; the field is named in the error. */
function killTarget(b: z.infer<typeof KillBody>): { scope: KillScope; target?: string; reason: string } {
  const bad = (message: string) =>
    new ApiError('VALIDATION', `body.target: ${message}`, {
      details: { issues: [{ field: 'body.target', message }] },
    });
  if (b.scope === 'global') {
    if (b.target !== undefined) throw bad('a global kill switch has no target');
    return { scope: b.scope, reason: b.reason };
  }
  if (b.target === undefined) throw bad(`a ${b.scope} kill switch needs a target`);
  const schema = b.scope === 'venue' ? VenueId : Underlying;
  if (!schema.safeParse(b.target).success) throw bad(`not a valid ${b.scope} id`);
  return { scope: b.scope, target: b.target, reason: b.reason };
}

/**
 * What the brakes may name, or undefined when the port cannot say now (its venue list unreadable): the
 * check is then skipped, never the brake. Engaging a name nobody uses stops nothing; a trip refused
 * with a 500 would leave a venue trading that the risk owner meant to stop.
 */
async function brakeTargets(
  controls: ControlsPort,
  log: FastifyBaseLogger,
): Promise<ControlTargets | undefined> {
  if (!controls.targets) return undefined;
  try {
    return await controls.targets();
  } catch (err) {
    log.warn(
      { cause: err instanceof Error ? err.message : String(err) },
      'the names the brakes may take cannot be read; the name is not checked',
    );
    return undefined;
  }
}

/**
 * Refuses a kill-switch change naming a venue or underlying the run does not know (when the port says
 * what it knows). A trip of one would stop nothing, and the operator would believe it had. A release of
 * one is refused only when nothing is engaged there either: it would release nothing, and a misspelt
 * release that answered 200 would hide that the switch meant is still engaged. Whatever is engaged
 * stays releasable (a venue removed from the config while its switch was engaged, or one engaged with
 * the CLI's --force). When the engaged scopes cannot be read, the release is not refused here.
 */
async function knownKillTarget(
  controls: ControlsPort,
  q: { scope: KillScope; target?: string },
  action: 'trip' | 'reset',
  log: FastifyBaseLogger,
): Promise<void> {
  if (q.scope === 'global' || q.target === undefined || !controls.targets) return;
  const t = await brakeTargets(controls, log);
  const known = t ? (q.scope === 'venue' ? t.venues : t.underlyings) : undefined;
  if (known?.includes(q.target)) return;
  const plural = q.scope === 'venue' ? 'venues' : 'underlyings';
  let message: string;
  if (action === 'trip') {
    // names unreadable: the check is skipped, never the brake
    if (!known) return;
    message = `no ${q.scope} ${q.target} in this run; the ${plural} are ${namesForMessage(known)}`;
  } else {
    let engaged: string[];
    try {
      engaged = (await controls.killSwitches())
        .filter((k) => k.engaged && k.scope === q.scope && k.target !== undefined)
        .map((k) => k.target as string);
    } catch {
      return;
    }
    if (engaged.includes(q.target)) return;
    message =
      `no kill switch engaged on ${q.scope} ${q.target}` +
      `${known ? `, and no ${q.scope} ${q.target} in this run` : ''}: releasing it would release nothing; ` +
      `the ${plural} engaged are ${namesForMessage(engaged)}` +
      `${known ? `; the ${plural} are ${namesForMessage(known)}` : ''}`;
  }
  throw new ApiError('VALIDATION', `body.target: ${message}`, {
    details: { issues: [{ field: 'body.target', message }] },
  });
}

/**
 * Refuses a breaker name no order consults (when the port says which they are): tripping it would stop
 * nothing. A release is refused only when the name is neither such a breaker nor one the board holds
 * (every breaker that has ever opened, open or not): it would close nothing, and a misspelt release
 * answered 200 would hide that the breaker meant is still open. A breaker the board holds stays
 * releasable whatever the config says now (its venue removed while it was open).
 */
async function knownBreaker(
  controls: ControlsPort,
  name: string,
  action: 'trip' | 'reset',
  log: FastifyBaseLogger,
): Promise<void> {
  if (!controls.targets) return;
  const t = await brakeTargets(controls, log);
  if (!t && action === 'trip') return;
  const breakers = t?.breakers ?? [];
  if (breakers.includes(name)) return;
  if (action === 'trip')
    throw new ApiError('NOT_FOUND', `no breaker ${name} guards any order of this run`, {
      details: { breaker: name, breakers: [...breakers] },
    });
  const held = (await controls.breakers()).map((b) => b.name);
  if (held.includes(name)) return;
  const names = [...new Set([...breakers, ...held])].sort();
  const why = t
    ? 'no order of this run consults it and it has never opened'
    : "it has never opened (the names this run's orders consult could not be read)";
  throw new ApiError(
    'NOT_FOUND',
    `no breaker ${name} to close: ${why}, so releasing it would close nothing; the breakers are ${namesForMessage(names)}`,
    { details: { breaker: name, breakers: names } },
  );
}

export function registerRoutes(root: FastifyInstance, ports: ApiPorts): void {
  const app = root.withTypeProvider<ZodTypeProvider>();
  /**
   * Writes the audit entry of a change the port has just applied. When the ledger refuses it, the change
   * stays in force (it is not undone: a kill switch or a disabled venue must not come back on because the
   * ledger is down), the entry is logged for whoever records it by hand (no secrets: the error as
   * {@link safeError}, the entry holds none), and the answer is 500 AUDIT_UNRECORDED: "`applied`, in
   * force, but the audit ledger did not record it; do not repeat it", with `details.applied` true and
   * `details.result` the answer the route would have given. Never a bare 500 INTERNAL, which reads as
   * "not done" and invites the operator to do it again.
   */
  const audit = async (
    req: FastifyRequest,
    change: { action: string; target: string; details?: Record<string, unknown> },
    applied: { what: string; result?: unknown },
  ): Promise<void> => {
    const actor = actorOf(req);
    const entry = {
      actor: actor.name,
      action: change.action,
      target: change.target,
      details: { ...change.details, role: actor.role },
    };
    try {
      await ports.audit.record(entry);
    } catch (err) {
      throw unrecorded(req, entry, err, applied);
    }
  };
  const unrecorded = (
    req: FastifyRequest,
    entry: { actor: string; action: string; target: string; details: Record<string, unknown> },
    err: unknown,
    applied: { what: string; result?: unknown },
  ): ApiError => {
    req.log.error(
      { audit: entry, err: safeError(err) },
      `${applied.what} (in force), but the audit ledger did not record it: record this entry by hand`,
    );
    return new ApiError(
      'AUDIT_UNRECORDED',
      `${applied.what} (in force), but the audit ledger did not record it; do not repeat it`,
      {
        details: {
          applied: true,
          recorded: false,
          action: entry.action,
          target: entry.target,
          ...(applied.result !== undefined ? { result: applied.result } : {}),
        },
      },
    );
  };

  /**
   * Why a mark at `equityUsd` is refused without `force`: farther from the book's newest equity than the
   * loss breaker's limit, so it would trip `market:loss` at once (above) or move its trigger by more than
   * the limit (below: an equity entered in thousands made a $0.5M limit trip at ~$6.75M of loss).
   * Undefined when it is within the limit, or when there is nothing to compare with (no equity observed
   * yet, or no loss breaker).
   */
  const markTooFar = async (
    equityUsd: number,
  ): Promise<{ error: ApiError; details: Record<string, number> } | undefined> => {
    const m = await ports.controls.bookMark();
    const last = m.lastEquityUsd;
    const limit = m.maxLossSinceMarkUsd;
    if (last === undefined || limit === undefined || !Number.isFinite(last) || !Number.isFinite(limit))
      return undefined;
    const differenceUsd = equityUsd - last;
    if (Math.abs(differenceUsd) <= limit) return undefined;
    const usd = (v: number) => `${Number(v.toFixed(2))} USD`;
    const message =
      `${usd(equityUsd)} is ${usd(Math.abs(differenceUsd))} ${differenceUsd < 0 ? 'below' : 'above'} the book's ` +
      `newest equity ${usd(last)}, more than the market:loss breaker's limit ${usd(limit)} ` +
      '(breakers.market.maxLossSinceMarkUsd): check the value and its unit, or send "force": true to mark there anyway';
    const details = {
      equityUsd,
      lastEquityUsd: last,
      differenceUsd: Number(differenceUsd.toFixed(2)),
      maxLossSinceMarkUsd: limit,
    };
    return {
      details,
      error: new ApiError('VALIDATION', `body.equityUsd: ${message}`, {
        details: { issues: [{ field: 'body.equityUsd', message }], ...details },
      }),
    };
  };

  // ---- health
  app.get(
    '/v1/health',
    {
      config: { access: 'public' },
      schema: {
        tags: ['health'],
        summary: 'Liveness: the process answers',
        querystring: EmptyQuery,
        response: { 200: z.object({ status: z.literal('ok'), uptimeS: z.number() }), 400: ErrorResponse },
      },
    },
    async () => ({ status: 'ok' as const, uptimeS: Math.round(process.uptime()) }),
  );
  app.get(
    '/v1/ready',
    {
      config: { access: 'public' },
      schema: {
        tags: ['health'],
        summary: 'Readiness: Redis, database, venues and the first snapshot are there (503 until then)',
        description:
          'Needs no token: then each check gives only its name and ok (which component is not ready). ' +
          'With a valid bearer token of any role each check also carries its detail (server versions and ' +
          'settings, error text).',
        querystring: EmptyQuery,
        response: { 200: ReadinessView, 400: ErrorResponse, 503: ReadinessView },
      },
    },
    async (req, reply) => {
      const r = await ports.readiness();
      const code = r.ready ? 200 : 503;
      const token = bearerToken(req);
      const actor = token ? await ports.tokens.verify(token).catch(() => undefined) : undefined;
      if (actor) return reply.code(code).send(r);
      // Details may name internal hosts, the Redis version and settings: only for a token holder.
      return reply
        .code(code)
        .send({ ready: r.ready, checks: r.checks.map((c) => ({ name: c.name, ok: c.ok })) });
    },
  );

  // ---- venues
  const viewOf = async (v: VenueConfig) => venueView(v, await ports.venues.versionOf(v));
  app.get(
    '/v1/venues',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['venues'],
        summary: 'List venues, each with its version',
        querystring: EmptyQuery,
        response: { 200: z.array(VenueView), ...errors },
      },
    },
    async () => Promise.all((await ports.venues.list()).map(viewOf)),
  );
  app.get(
    '/v1/venues/:id',
    {
      config: {
        access: 'viewer',
        etag: "the venue's version, as its `version` (quoted): send it as If-Match",
      },
      schema: {
        tags: ['venues'],
        summary: 'One venue, with its version (`version`, and the ETag header)',
        params: VenueParam,
        querystring: EmptyQuery,
        response: { 200: VenueView, ...errors },
      },
    },
    async (req, reply) => {
      const view = await viewOf(found(await ports.venues.get(req.params.id), `venue ${req.params.id}`));
      return withEtag(reply, view.version, view);
    },
  );
  app.post(
    '/v1/venues',
    {
      config: { access: 'operator', etag: "the new venue's version" },
      schema: {
        tags: ['venues'],
        summary:
          'Add a venue; running processes use it within about a second, no restart (validated like the config file; credentials by {env} or {keyFile} only, never returned)',
        querystring: EmptyQuery,
        description: AUDITED,
        body: VenueBody,
        response: { 201: VenueView, ...changeErrors },
      },
    },
    async (req, reply) => {
      const v = await ports.venues.add(req.body, actorOf(req));
      const view = await viewOf(v);
      await audit(
        req,
        { action: 'venue.add', target: v.id, details: { kind: v.kind, chain: v.chain, after: view } },
        { what: `venue ${v.id} added`, result: view },
      );
      reply.header('etag', etag(view.version));
      return reply.code(201).send(view);
    },
  );
  app.put(
    '/v1/venues/:id',
    {
      config: { access: 'operator', etag: "the venue's version after the update" },
      schema: {
        tags: ['venues'],
        summary:
          'Replace a venue config (the id in the body must match the path; kind and chain cannot change; enabled, credentials and endpoints left out stay as they are); applied live, new params once the venue has no working orders',
        params: VenueParam,
        querystring: EmptyQuery,
        headers: IfMatchHeaders,
        description:
          'Conditional: send the version the change was made from (If-Match: "<version>" as the ETag of GET ' +
          '/v1/venues/{id} gave it, or "version" in the body, as the GET body has it): when the venue changed since ' +
          '(another operator disabled it, changed its params), nothing changes and the answer is 412 ' +
          'PRECONDITION_FAILED naming its version now and who changed it; read it again. The check and the write ' +
          'are one compare-and-set. Without a version the update is unconditional (for scripts): it replaces ' +
          'the params, endpoints and credentials it gives whatever changed since its read (last writer wins), but ' +
          'it cannot switch a disabled venue on: a body with "enabled": true for a disabled venue is 428 ' +
          'PRECONDITION_REQUIRED (If-Match: * to do it whatever the version); switching it off needs no version. The answer and its ETag carry the ' +
          `new version. The audit entry records the venue before and after, as the API shows venues (credential names only, keyed URLs redacted). ${AUDITED}`,
        body: VenueUpdateBody,
        response: {
          200: VenueView,
          ...changeErrors,
          412: PRECONDITION_FAILED,
          428: ErrorResponse.describe(
            'PRECONDITION_REQUIRED: an update without If-Match or "version" that would enable a disabled ' +
              'venue; nothing changed. details: version, enabled (as stored), changedBy when recorded',
          ),
        },
      },
    },
    async (req, reply) => {
      if (req.body.id !== req.params.id) throw invalid('body.id', 'must equal the id in the path');
      const { version, ...update } = req.body;
      const ifMatch = precondition(req.headers['if-match'], version);
      const { before, after } = await ports.venues.update(req.params.id, update, actorOf(req), {
        ifMatch,
        enabledNeedsVersion: true,
      });
      const [was, view] = await Promise.all([viewOf(before), viewOf(after)]);
      await audit(
        req,
        {
          action: 'venue.update',
          target: after.id,
          details: {
            kind: after.kind,
            chain: after.chain,
            enabled: after.enabled,
            precondition: preconditionOf(ifMatch),
            before: was,
            after: view,
          },
        },
        { what: `venue ${after.id} updated`, result: view },
      );
      return withEtag(reply, view.version, view);
    },
  );
  app.post(
    '/v1/venues/:id/disable',
    {
      config: { access: 'operator', etag: "the venue's version after the change" },
      schema: {
        tags: ['venues'],
        summary: 'Disable a venue: no new hedges are routed to it; risk keeps reading its positions',
        description: `Needs no version: stopping a venue is never refused for a change made meanwhile. ${AUDITED}`,
        params: VenueParam,
        querystring: EmptyQuery,
        body: ReasonBody,
        response: { 200: VenueView, ...changeErrors },
      },
    },
    async (req, reply) => {
      const v = await ports.venues.disable(req.params.id, actorOf(req));
      const view = await viewOf(v);
      await audit(
        req,
        { action: 'venue.disable', target: v.id, details: { reason: req.body.reason } },
        { what: `venue ${v.id} disabled`, result: view },
      );
      return withEtag(reply, view.version, view);
    },
  );

  // ---- risk
  app.get(
    '/v1/risk/snapshot',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['risk'],
        summary: 'The newest risk snapshot',
        querystring: EmptyQuery,
        response: { 200: RiskSnapshotView, ...errors },
      },
    },
    async () => found(await ports.risk.latest(), 'risk snapshot (no tick yet)'),
  );
  app.get(
    '/v1/risk/history',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['risk'],
        summary: 'Snapshots over a time range, oldest first',
        querystring: TimeRangeQuery,
        response: { 200: z.array(RiskSnapshotView), ...errors },
      },
    },
    async (req) => ports.risk.history(range(req.query)),
  );
  for (const [by, params, key] of [
    ['underlying', UnderlyingParam, 'underlying'],
    ['venue', VenueParam, 'id'],
    ['chain', ChainParam, 'chain'],
  ] as const) {
    const url =
      by === 'underlying'
        ? '/v1/risk/underlyings/:underlying'
        : by === 'venue'
          ? '/v1/risk/venues/:id'
          : '/v1/risk/chains/:chain';
    app.get(
      url,
      {
        config: { access: 'viewer' },
        schema: {
          tags: ['risk'],
          summary: `The newest snapshot restricted to one ${by}`,
          params,
          querystring: EmptyQuery,
          response: { 200: RiskSliceView, ...errors },
        },
      },
      async (req) => {
        const k = (req.params as Record<string, string>)[key] ?? '';
        return found(await ports.risk.slice(by, k), `${by} ${k} in the newest snapshot`);
      },
    );
  }
  app.get(
    '/v1/risk/scenarios',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['risk'],
        summary: 'Scenario grid: book P&L under spot (%) × vol (points) shocks',
        querystring: z.strictObject({
          underlying: Underlying,
          spotShocksPct: ShockList(-90, 500, [-20, -10, -5, 0, 5, 10, 20]).describe(
            'comma-separated, percent',
          ),
          volShocksPts: ShockList(-100, 300, [-10, 0, 10]).describe('comma-separated, vol points'),
        }),
        response: { 200: ScenarioGridView, ...errors },
      },
    },
    async (req) => ports.risk.scenarioGrid(req.query),
  );

  // ---- hedges
  app.get(
    '/v1/hedges/plans',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['hedges'],
        summary: 'Hedge plans, newest last',
        querystring: TimeRangeQuery,
        response: { 200: z.array(HedgePlanView), ...errors },
      },
    },
    async (req) => ports.hedges.listPlans(range(req.query)),
  );
  app.get(
    '/v1/hedges/plans/:id',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['hedges'],
        summary: 'One plan',
        params: IdParam,
        querystring: EmptyQuery,
        response: { 200: HedgePlanView, ...errors },
      },
    },
    async (req) => found(await ports.hedges.getPlan(req.params.id), `plan ${req.params.id}`),
  );
  app.get(
    '/v1/hedges/jobs',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['hedges'],
        summary:
          'Hedge jobs (one per leg) with status, attempts and outcome, newest first; by status, plan, venue, underlying and when queued',
        querystring: JobsQuery,
        response: { 200: z.array(HedgeJobView), ...errors },
      },
    },
    async (req) => {
      const { status, planId, venue, underlying } = req.query;
      return ports.hedges.listJobs({
        ...range(req.query),
        ...(status !== undefined ? { status } : {}),
        ...(planId !== undefined ? { planId } : {}),
        ...(venue !== undefined ? { venue } : {}),
        ...(underlying !== undefined ? { underlying } : {}),
      });
    },
  );
  app.get(
    '/v1/hedges/jobs/:id',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['hedges'],
        summary: 'One job',
        params: IdParam,
        querystring: EmptyQuery,
        response: { 200: HedgeJobView, ...errors },
      },
    },
    async (req) => found(await ports.hedges.getJob(req.params.id), `job ${req.params.id}`),
  );
  app.post(
    '/v1/hedges/jobs/:id/cancel',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['hedges'],
        summary: 'Cancel a job (409 when it already reached a final status)',
        description: AUDITED,
        params: IdParam,
        querystring: EmptyQuery,
        body: ReasonBody,
        response: { 200: HedgeJobView, ...changeErrors },
      },
    },
    async (req) => {
      const job = await ports.hedges.cancelJob(req.params.id, actorOf(req));
      await audit(
        req,
        {
          action: 'hedge.cancel',
          target: req.params.id,
          details: { reason: req.body.reason, status: job.status },
        },
        { what: `job ${req.params.id} cancelled (status ${job.status})`, result: job },
      );
      return job;
    },
  );

  // ---- breakers and kill switch
  app.get(
    '/v1/controls',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['controls'],
        summary: 'Kill switches and circuit breakers',
        querystring: EmptyQuery,
        response: {
          200: z.object({ killSwitches: z.array(KillSwitchView), breakers: z.array(BreakerView) }),
          ...errors,
        },
      },
    },
    async () => ({
      killSwitches: await ports.controls.killSwitches(),
      breakers: await ports.controls.breakers(),
    }),
  );
  for (const action of ['trip', 'reset'] as const) {
    app.post(
      `/v1/kill-switch/${action}`,
      {
        config: { access: 'risk' },
        schema: {
          tags: ['controls'],
          summary:
            action === 'trip'
              ? 'Engage a kill switch (global, per venue or per underlying): no new order is sent (with allowRiskReducing, none but reduce-only ones)'
              : 'Release a kill switch',
          description:
            (action === 'trip'
              ? 'A venue or underlying this run does not know is refused (400 naming the ones it knows): it would stop nothing. '
              : 'Whatever is engaged can be released. A venue or underlying this run does not know, with nothing engaged on it, ' +
                'is refused (400 naming the ones engaged and known): it would release nothing. ') +
            (action === 'trip'
              ? 'An engage never loosens what is engaged: a reduce-only request over a full stop answers 200 with ' +
                'change "kept" and the full stop in force (allowRiskReducing false); replace: true loosens it. '
              : 'A release removes only the engagement it read: one engaged after that stays, and the answer is 409 ' +
                'KILL_SWITCH_RELEASE_CONFLICT naming it. ') +
            `${AUDITED} A kill switch that writes its own ledger records (the runtime's) answers a failed ` +
            'ledger write after the engage with 500 KILL_SWITCH_UNRECORDED, saying it IS engaged.',
          querystring: EmptyQuery,
          body: action === 'trip' ? KillTripBody : KillBody,
          response: {
            200: KillSwitchView,
            ...changeErrors,
            ...(action === 'reset' ? { 409: RELEASE_CONFLICT } : {}),
          },
        },
      },
      async (req) => {
        const actor = actorOf(req);
        const q = killTarget(req.body);
        await knownKillTarget(ports.controls, q, action, req.log);
        const allowRiskReducing = 'allowRiskReducing' in req.body && req.body.allowRiskReducing === true;
        const replace = 'replace' in req.body && req.body.replace === true;
        const r =
          action === 'trip'
            ? await ports.controls.tripKillSwitch(
                { ...q, allowRiskReducing, ...(replace ? { replace } : {}) },
                actor,
              )
            : await ports.controls.resetKillSwitch(q, actor);
        if (!ports.controls.auditsKillSwitch) {
          const target = q.target ? `${q.scope}:${q.target}` : q.scope;
          await audit(
            req,
            {
              action: `kill-switch.${action}`,
              target,
              details: {
                reason: q.reason,
                ...(action === 'trip' ? { allowRiskReducing, ...(replace ? { replace } : {}) } : {}),
              },
            },
            { what: `kill switch ${target} ${action === 'trip' ? 'ENGAGED' : 'released'}`, result: r },
          );
        }
        return r;
      },
    );
    app.post(
      `/v1/breakers/:name/${action}`,
      {
        config: { access: 'risk' },
        schema: {
          tags: ['controls'],
          summary: action === 'trip' ? 'Open a circuit breaker by hand' : 'Close a circuit breaker',
          description:
            (action === 'trip'
              ? 'A breaker no order of this run consults is refused (404 naming the ones that are): it would stop nothing. '
              : 'Every breaker that has ever opened can be closed, whatever the config says now. A name that is neither ' +
                'one the orders consult nor ever opened is refused (404 naming the breakers): it would close nothing. ' +
                'With openedAtMs it closes only that trip: a newer one in force is 409 BREAKER_RESET_CONFLICT, nothing changed. ') +
            AUDITED,
          params: NameParam,
          querystring: EmptyQuery,
          body: action === 'trip' ? ReasonBody : BreakerResetBody,
          response: {
            200: BreakerView,
            ...changeErrors,
            ...(action === 'reset' ? { 409: RESET_CONFLICT } : {}),
          },
        },
      },
      async (req) => {
        const actor = actorOf(req);
        await knownBreaker(ports.controls, req.params.name, action, req.log);
        // the trip a reset closes, as the operator saw it (trip bodies have none)
        const { openedAtMs } = req.body as z.infer<typeof BreakerResetBody>;
        const r =
          action === 'trip'
            ? await ports.controls.tripBreaker(req.params.name, req.body.reason, actor)
            : await ports.controls.resetBreaker(
                req.params.name,
                req.body.reason,
                actor,
                openedAtMs !== undefined ? { openedAtMs } : {},
              );
        await audit(
          req,
          {
            action: `breaker.${action}`,
            target: req.params.name,
            details: {
              reason: req.body.reason,
              ...(openedAtMs !== undefined ? { openedAtMs } : {}),
            },
          },
          { what: `breaker ${req.params.name} ${action === 'trip' ? 'opened' : 'closed'}`, result: r },
        );
        return r;
      },
    );
  }

  // ---- drop-copy: venue positions against the ledger
  app.get(
    '/v1/positions/breaks',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['controls'],
        summary: "Position breaks: a venue's position the ledger's baseline and our own fills cannot explain",
        querystring: EmptyQuery,
        response: { 200: z.object({ breaks: z.array(PositionBreakView) }), ...errors },
      },
    },
    async () => ({ breaks: await ports.controls.positionBreaks() }),
  );
  app.post(
    '/v1/positions/breaks/acknowledge',
    {
      config: { access: 'risk' },
      schema: {
        tags: ['controls'],
        summary:
          "Acknowledge a venue's position as it is: the drop-copy check takes a new baseline at its next quiet read",
        querystring: EmptyQuery,
        description: AUDITED,
        body: AckBody,
        response: {
          200: z.object({ venue: z.string(), instrument: z.string(), breakOpen: z.boolean() }),
          ...changeErrors,
        },
      },
    },
    async (req) => ports.controls.acknowledgePositionBreak(req.body, actorOf(req)),
  );

  // ---- the book's mark (loss-since-mark breaker)
  app.get(
    '/v1/risk/mark',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['controls'],
        summary: 'The book mark the loss-since-mark breaker measures from, the newest equity and the loss',
        querystring: EmptyQuery,
        response: { 200: BookMarkView, ...errors },
      },
    },
    async () => ports.controls.bookMark(),
  );
  app.post(
    '/v1/risk/mark',
    {
      config: { access: 'risk' },
      schema: {
        tags: ['controls'],
        summary:
          'Mark the book: at equityUsd, or at the newest equity observed. Does not close a tripped market:loss breaker',
        description:
          "An equityUsd farther from the newest equity than the loss breaker's limit " +
          '(breakers.market.maxLossSinceMarkUsd) is refused, 400 naming the newest equity and the difference (a ' +
          'value in the wrong unit would trip market:loss at once, or move its trigger by more than the limit), ' +
          'unless the body says "force": true; a forced mark is audited as forced. With no equity observed yet, ' +
          `or no loss breaker, any equityUsd is taken. ${AUDITED}`,
        querystring: EmptyQuery,
        body: MarkBody,
        response: { 200: BookMarkView, ...changeErrors },
      },
    },
    async (req) => {
      const actor = actorOf(req);
      const q: { equityUsd?: number; reason: string } = { reason: req.body.reason };
      if (req.body.equityUsd !== undefined) q.equityUsd = req.body.equityUsd;
      if (req.body.force !== undefined && q.equityUsd === undefined) {
        const message = 'only with equityUsd: a mark at the newest equity is never refused';
        throw new ApiError('VALIDATION', `body.force: ${message}`, {
          details: { issues: [{ field: 'body.force', message }] },
        });
      }
      const forced = q.equityUsd === undefined ? undefined : await markTooFar(q.equityUsd);
      if (forced && req.body.force !== true) throw forced.error;
      const r = await ports.controls.setBookMark(q, actor);
      const what = `book marked at ${r.markUsd ?? 'no equity yet'} USD${forced ? ' (forced)' : ''}`;
      if (!ports.controls.auditsBookMark)
        await audit(
          req,
          {
            action: 'book-mark.set',
            target: 'book',
            details: { ...q, ...(forced ? { forced: true, ...forced.details } : {}) },
          },
          { what, result: r },
        );
      // the port wrote the mark's own entry: the override is recorded beside it
      else if (forced)
        await audit(
          req,
          {
            action: 'book-mark.forced',
            target: 'book',
            details: { equityUsd: q.equityUsd, reason: q.reason, forced: true, ...forced.details },
          },
          { what, result: r },
        );
      return r;
    },
  );

  // ---- P&L, policy, audit
  app.get(
    '/v1/pnl',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['pnl'],
        summary: 'P&L attribution (delta, gamma, vega, theta, funding, fees, residual) over a time range',
        querystring: z.strictObject({
          fromMs: EpochMs(),
          toMs: EpochMs(),
          underlying: Underlying.optional(),
        }),
        response: { 200: PnlView, ...errors },
      },
    },
    async (req) => {
      const r = range({ fromMs: req.query.fromMs, toMs: req.query.toMs, limit: 1 });
      const q: { fromMs: number; toMs: number; underlying?: string } = {
        fromMs: r.fromMs ?? 0,
        toMs: r.toMs ?? 0,
      };
      if (req.query.underlying !== undefined) q.underlying = req.query.underlying;
      return ports.pnl.attribution(q);
    },
  );
  const policyView = async (p: Policies) => ({ ...p, version: await ports.policy.versionOf(p) });
  app.get(
    '/v1/policy',
    {
      config: { access: 'viewer', etag: "the policy document's version, as its `version` (quoted)" },
      schema: {
        tags: ['policy'],
        summary: 'Hedge policy parameters in force, with their version (`version`, and the ETag header)',
        querystring: EmptyQuery,
        response: { 200: PolicyView, ...errors },
      },
    },
    async (_req, reply) => {
      const view = await policyView(await ports.policy.get());
      return withEtag(reply, view.version, view);
    },
  );
  app.put(
    '/v1/policy',
    {
      config: { access: 'operator', etag: "the policy document's version after the change" },
      schema: {
        tags: ['policy'],
        summary:
          'Replace the hedge policy parameters (validated like the config file); the next tick uses them',
        description:
          'Conditional: send the version the document was read at (If-Match: "<version>" as the ETag of GET ' +
          '/v1/policy gave it, or "version" in the body, as the GET body has it): when the policy changed since ' +
          '(another operator tightened an underlying), nothing changes and the answer is 412 PRECONDITION_FAILED ' +
          'naming its version now and who changed it; read it again and re-apply your change. The check and the ' +
          'write are one compare-and-set. Without a version the PUT is unconditional (for scripts): it ' +
          'replaces the whole document, undoing any change made since the caller read it. The answer and its ETag ' +
          `carry the new version; the audit entry records the document before and after. ${AUDITED}`,
        querystring: EmptyQuery,
        headers: IfMatchHeaders,
        body: PolicyBody,
        response: { 200: PolicyView, ...changeErrors, 412: PRECONDITION_FAILED },
      },
    },
    async (req, reply) => {
      const { version, ...doc } = req.body;
      const ifMatch = precondition(req.headers['if-match'], version);
      const { before, after } = await ports.policy.update(doc, actorOf(req), ifMatch);
      const [was, view] = await Promise.all([policyView(before), policyView(after)]);
      await audit(
        req,
        {
          action: 'policy.update',
          target: 'policy',
          details: { precondition: preconditionOf(ifMatch), before: was, after: view },
        },
        { what: 'hedge policy updated', result: view },
      );
      return withEtag(reply, view.version, view);
    },
  );
  app.get(
    '/v1/audit',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['audit'],
        summary: 'The audit trail of changes, oldest first',
        querystring: TimeRangeQuery,
        response: { 200: z.array(AuditEntryView), ...errors },
      },
    },
    async (req) => ports.audit.list(range(req.query)),
  );

  // ---- tokens and roles (admin)
  app.get(
    '/v1/tokens',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['tokens'],
        summary: 'API tokens (never their values)',
        querystring: EmptyQuery,
        response: { 200: z.array(TokenView), ...errors },
      },
    },
    async () => ports.tokens.list(),
  );
  app.post(
    '/v1/tokens',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['tokens'],
        summary: 'Create a token; its value is in this answer only',
        description:
          'Audited with who made it. A token the audit ledger cannot record is revoked again at once (no ' +
          'credential exists without its audit entry, and its value would be lost with an error answer): 503 ' +
          'NOT_READY, nothing created, retry once the ledger answers. If that revoke fails too: 500 ' +
          'AUDIT_UNRECORDED naming the token id (never its value); revoke it.',
        querystring: EmptyQuery,
        body: TokenBody,
        response: {
          201: z.object({ token: z.string(), info: TokenView }),
          ...changeErrors,
          503: ErrorResponse.describe(
            'NOT_READY: the audit ledger cannot record a new token; none was created',
          ),
        },
      },
    },
    async (req, reply) => {
      const actor = actorOf(req);
      const { token, view } = await ports.tokens.create(req.body, actor);
      const entry = {
        actor: actor.name,
        action: 'token.create',
        target: view.id,
        details: { name: view.name, grantedRole: view.role, role: actor.role },
      };
      try {
        await ports.audit.record(entry);
      } catch (err) {
        req.log.error(
          { audit: entry, err: safeError(err) },
          `token ${view.id} created, but the audit ledger did not record it: revoking it again`,
        );
        try {
          await ports.tokens.revoke(view.id, actor);
        } catch (revokeErr) {
          throw unrecorded(req, entry, revokeErr, {
            what: `token ${view.id} created and revoking it again failed; its value is not shown: revoke it`,
            result: view,
          });
        }
        throw new ApiError(
          'NOT_READY',
          'no token created: the audit ledger did not record it, so it was revoked again; retry once the ledger answers',
          { details: { applied: false, recorded: false, action: 'token.create' } },
        );
      }
      return reply.code(201).send({ token, info: view });
    },
  );
  app.put(
    '/v1/tokens/:id/role',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['tokens'],
        summary: "Change a token's role",
        description: AUDITED,
        params: IdParam,
        querystring: EmptyQuery,
        body: RoleBody,
        response: { 200: TokenView, ...changeErrors },
      },
    },
    async (req) => {
      const v = await ports.tokens.setRole(req.params.id, req.body.role, actorOf(req));
      await audit(
        req,
        { action: 'token.role', target: v.id, details: { grantedRole: v.role } },
        { what: `token ${v.id} given the ${v.role} role`, result: v },
      );
      return v;
    },
  );
  app.delete(
    '/v1/tokens/:id',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['tokens'],
        summary: 'Revoke a token',
        description: AUDITED,
        params: IdParam,
        querystring: EmptyQuery,
        response: { 204: z.null(), ...changeErrors },
      },
    },
    async (req, reply) => {
      await ports.tokens.revoke(req.params.id, actorOf(req));
      await audit(
        req,
        { action: 'token.revoke', target: req.params.id },
        { what: `token ${req.params.id} revoked` },
      );
      return reply.code(204).send(null);
    },
  );
}
