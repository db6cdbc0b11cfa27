import { PoliciesConfig, VENUE_KIND_FAMILY, VenueConfig } from '@xhedge/config';
import { namesForMessage, Underlying, VenueId } from '@xhedge/core';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { actorOf, bearerToken } from './auth.ts';
import { ApiError } from './errors.ts';
import type { Actor, ApiPorts, ControlsPort, ControlTargets, TimeRange } from './ports.ts';
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

const SECRET_KEY_RE = /(private.?key|secret|mnemonic|seed.?phrase|password|passphrase|api.?key|token)/i;

/** How deep a venue's `params` may nest: adapter settings are a few levels deep, not thousands. */
const MAX_PARAMS_DEPTH = 16;

/** What stands for the part of a URL that may hold a key, in what the API shows. */
const MASK = '[redacted]';
const MASKED_MESSAGE = `a URL as the API shows it (${MASK}); give the whole URL, or {env: VAR_NAME} when it holds a key`;

/**
 * What is wrong in a venue's `params`, walked without recursion (a body nested thousands of levels deep
 * must be refused, not overflow the stack): keys that look like a secret with an inline value, URLs
 * masked as the API shows them, and the first place nested deeper than {@link MAX_PARAMS_DEPTH}, which
 * is not walked further.
 */
function paramsIssues(params: Record<string, unknown>): { path: (string | number)[]; message: string }[] {
  const out: { path: (string | number)[]; message: string }[] = [];
  let tooDeep = false;
  const inline = ([k, v]: [string | number, unknown]) =>
    typeof k === 'string' && SECRET_KEY_RE.test(k) && (typeof v === 'string' || typeof v === 'number');
  const masked = ([, v]: [string | number, unknown]) => typeof v === 'string' && v.includes(MASK);
  const stack: { value: unknown; path: (string | number)[] }[] = [{ value: params, path: ['params'] }];
  while (stack.length > 0) {
    const { value, path } = stack.pop() as { value: unknown; path: (string | number)[] };
    if (value === null || typeof value !== 'object') continue;
    const entries: [string | number, unknown][] = Array.isArray(value)
      ? [...value.entries()]
      : Object.entries(value);
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
    for (const [k] of entries.filter(inline))
      out.push({ path: [...path, k], message: 'inline secret not allowed; use credentials {env: VAR_NAME}' });
    for (const [k] of entries.filter((e) => !inline(e) && masked(e)))
      out.push({ path: [...path, k], message: MASKED_MESSAGE });
    // pushed last to first: walked in the order of the body
    for (const [k, v] of entries.filter((e) => !inline(e)).reverse())
      stack.push({ value: v, path: [...path, k] });
  }
  return out;
}

/** The checks a venue gets from the config file's parent: chain family, no inline secrets. */
function venueChecks(
  v: Pick<VenueConfig, 'kind' | 'chain' | 'endpoints' | 'params'>,
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
    ...(v.endpoints.rpc ?? []).map((u, i): [(string | number)[], unknown] => [['endpoints', 'rpc', i], u]),
    [['endpoints', 'ws'], v.endpoints.ws],
  ];
  for (const [path, url] of urls)
    if (typeof url === 'string' && url.includes(MASK))
      ctx.addIssue({ code: 'custom', path, message: MASKED_MESSAGE });
  for (const { path, message } of paramsIssues(v.params)) ctx.addIssue({ code: 'custom', path, message });
}

/** A venue as the config file takes it, plus the checks the file gets from its parent (chain family, no inline secrets). */
export const VenueBody = VenueConfig.superRefine(venueChecks);

/**
 * A venue's replacement: as `VenueBody`, but `enabled` left out keeps the venue's current state (a
 * params change must not switch back on a venue an operator disabled).
 */
export const VenueUpdateBody = VenueConfig.extend({
  enabled: z.boolean().optional().describe('left out: the venue stays enabled or disabled as it is'),
}).superRefine(venueChecks);

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

/** `value` with every string in it as {@link shown}. */
function shownDeep(value: unknown): unknown {
  if (typeof value === 'string') return shown(value);
  if (Array.isArray(value)) return value.map(shownDeep);
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, shownDeep(v)]));
  return value;
}

/**
 * A venue as the API shows it: credential references left out (their names only), and inline URLs in
 * endpoints and params by their origin when they could hold a key (a viewer must not read an RPC
 * provider's key or a keyed price endpoint; they are given whole, or by {env}, when the venue is added).
 */
export function venueView(v: VenueConfig): VenueView {
  return {
    id: v.id,
    kind: v.kind,
    chain: v.chain,
    enabled: v.enabled,
    endpoints: shownDeep(v.endpoints) as VenueView['endpoints'],
    params: shownDeep(v.params) as VenueView['params'],
    credentialNames: Object.keys(v.credentials).sort(),
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
const KillBody = z.strictObject({
  scope: KillScope,
  /** Venue id for scope venue, underlying symbol for scope underlying; absent for global. */
  target: z.string().min(1).max(64).optional(),
  reason: Reason,
});
const ReasonBody = z.strictObject({ reason: Reason });
const AckBody = z.strictObject({ venue: VenueId, instrument: z.string().min(1).max(128), reason: Reason });
const MarkBody = z.strictObject({
  /** Mark at this equity, USD; absent: at the newest equity the planner observed. */
  equityUsd: z
    .number()
    .finite()
    .min(-1e15, { error: 'expected USD from -1e15 to 1e15' })
    .max(1e15, { error: 'expected USD from -1e15 to 1e15' })
    .optional(),
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
 * Refuses a kill switch to trip on a venue or underlying the run does not know (when the port says
 * what it knows): engaged, it would stop nothing, and the operator would believe it had.
 */
async function knownKillTarget(
  controls: ControlsPort,
  q: { scope: KillScope; target?: string },
  log: FastifyBaseLogger,
): Promise<void> {
  if (q.scope === 'global' || q.target === undefined) return;
  const t = await brakeTargets(controls, log);
  if (!t) return;
  const known = q.scope === 'venue' ? t.venues : t.underlyings;
  if (known.includes(q.target)) return;
  const message = `no ${q.scope} ${q.target} in this run; the ${q.scope === 'venue' ? 'venues' : 'underlyings'} are ${namesForMessage(known)}`;
  throw new ApiError('VALIDATION', `body.target: ${message}`, {
    details: { issues: [{ field: 'body.target', message }] },
  });
}

/**
 * Refuses a breaker name no order consults (when the port says which they are): tripping it would stop
 * nothing. A reset is refused only when the name is neither such a breaker nor one the board holds open.
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
  if (action === 'reset' && (await controls.breakers()).some((b) => b.name === name)) return;
  throw new ApiError('NOT_FOUND', `no breaker ${name} guards any order of this run`, {
    details: { breaker: name, breakers: [...breakers] },
  });
}

export function registerRoutes(root: FastifyInstance, ports: ApiPorts): void {
  const app = root.withTypeProvider<ZodTypeProvider>();
  const audit = (actor: Actor, action: string, target: string, details: Record<string, unknown> = {}) =>
    ports.audit.record({ actor: actor.name, action, target, details: { ...details, role: actor.role } });

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
  app.get(
    '/v1/venues',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['venues'],
        summary: 'List venues',
        querystring: EmptyQuery,
        response: { 200: z.array(VenueView), ...errors },
      },
    },
    async () => (await ports.venues.list()).map(venueView),
  );
  app.get(
    '/v1/venues/:id',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['venues'],
        summary: 'One venue',
        params: VenueParam,
        querystring: EmptyQuery,
        response: { 200: VenueView, ...errors },
      },
    },
    async (req) => venueView(found(await ports.venues.get(req.params.id), `venue ${req.params.id}`)),
  );
  app.post(
    '/v1/venues',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['venues'],
        summary:
          'Add a venue; running processes use it within about a second, no restart (validated like the config file; credentials by {env} or {keyFile} only, never returned)',
        querystring: EmptyQuery,
        body: VenueBody,
        response: { 201: VenueView, ...errors },
      },
    },
    async (req, reply) => {
      const actor = actorOf(req);
      const v = await ports.venues.add(req.body, actor);
      await audit(actor, 'venue.add', v.id, { kind: v.kind, chain: v.chain });
      return reply.code(201).send(venueView(v));
    },
  );
  app.put(
    '/v1/venues/:id',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['venues'],
        summary:
          'Replace a venue config (the id in the body must match the path; kind and chain cannot change; enabled left out stays as it is); applied live, new params once the venue has no working orders',
        params: VenueParam,
        querystring: EmptyQuery,
        body: VenueUpdateBody,
        response: { 200: VenueView, ...errors },
      },
    },
    async (req) => {
      if (req.body.id !== req.params.id)
        throw new ApiError('VALIDATION', 'body.id: must equal the id in the path', {
          details: { issues: [{ field: 'body.id', message: 'must equal the id in the path' }] },
        });
      const actor = actorOf(req);
      const v = await ports.venues.update(req.params.id, req.body, actor);
      await audit(actor, 'venue.update', v.id, { kind: v.kind, chain: v.chain, enabled: v.enabled });
      return venueView(v);
    },
  );
  app.post(
    '/v1/venues/:id/disable',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['venues'],
        summary: 'Disable a venue: no new hedges are routed to it; risk keeps reading its positions',
        params: VenueParam,
        querystring: EmptyQuery,
        body: ReasonBody,
        response: { 200: VenueView, ...errors },
      },
    },
    async (req) => {
      const actor = actorOf(req);
      const v = await ports.venues.disable(req.params.id, actor);
      await audit(actor, 'venue.disable', v.id, { reason: req.body.reason });
      return venueView(v);
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
        params: IdParam,
        querystring: EmptyQuery,
        body: ReasonBody,
        response: { 200: HedgeJobView, ...errors },
      },
    },
    async (req) => {
      const actor = actorOf(req);
      const job = await ports.hedges.cancelJob(req.params.id, actor);
      await audit(actor, 'hedge.cancel', req.params.id, { reason: req.body.reason, status: job.status });
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
              ? 'Engage a kill switch (global, per venue or per underlying): no new order is sent'
              : 'Release a kill switch',
          querystring: EmptyQuery,
          body: KillBody,
          response: { 200: KillSwitchView, ...errors },
        },
      },
      async (req) => {
        const actor = actorOf(req);
        const q = killTarget(req.body);
        if (action === 'trip') await knownKillTarget(ports.controls, q, req.log);
        const r =
          action === 'trip'
            ? await ports.controls.tripKillSwitch(q, actor)
            : await ports.controls.resetKillSwitch(q, actor);
        if (!ports.controls.auditsKillSwitch)
          await audit(actor, `kill-switch.${action}`, q.target ? `${q.scope}:${q.target}` : q.scope, {
            reason: q.reason,
          });
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
          params: NameParam,
          querystring: EmptyQuery,
          body: ReasonBody,
          response: { 200: BreakerView, ...errors },
        },
      },
      async (req) => {
        const actor = actorOf(req);
        await knownBreaker(ports.controls, req.params.name, action, req.log);
        const r =
          action === 'trip'
            ? await ports.controls.tripBreaker(req.params.name, req.body.reason, actor)
            : await ports.controls.resetBreaker(req.params.name, req.body.reason, actor);
        await audit(actor, `breaker.${action}`, req.params.name, { reason: req.body.reason });
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
        body: AckBody,
        response: {
          200: z.object({ venue: z.string(), instrument: z.string(), breakOpen: z.boolean() }),
          ...errors,
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
        querystring: EmptyQuery,
        body: MarkBody,
        response: { 200: BookMarkView, ...errors },
      },
    },
    async (req) => {
      const actor = actorOf(req);
      const q: { equityUsd?: number; reason: string } = { reason: req.body.reason };
      if (req.body.equityUsd !== undefined) q.equityUsd = req.body.equityUsd;
      const r = await ports.controls.setBookMark(q, actor);
      if (!ports.controls.auditsBookMark) await audit(actor, 'book-mark.set', 'book', { ...q });
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
  app.get(
    '/v1/policy',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['policy'],
        summary: 'Hedge policy parameters in force',
        querystring: EmptyQuery,
        response: { 200: PoliciesConfig, ...errors },
      },
    },
    async () => ports.policy.get(),
  );
  app.put(
    '/v1/policy',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['policy'],
        summary:
          'Replace the hedge policy parameters (validated like the config file); the next tick uses them',
        querystring: EmptyQuery,
        body: PoliciesConfig,
        response: { 200: PoliciesConfig, ...errors },
      },
    },
    async (req) => {
      const actor = actorOf(req);
      const before = await ports.policy.get();
      const next = await ports.policy.update(req.body, actor);
      await audit(actor, 'policy.update', 'policy', { before, after: next });
      return next;
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
        querystring: EmptyQuery,
        body: TokenBody,
        response: { 201: z.object({ token: z.string(), info: TokenView }), ...errors },
      },
    },
    async (req, reply) => {
      const actor = actorOf(req);
      const { token, view } = await ports.tokens.create(req.body, actor);
      await audit(actor, 'token.create', view.id, { name: view.name, grantedRole: view.role });
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
        params: IdParam,
        querystring: EmptyQuery,
        body: RoleBody,
        response: { 200: TokenView, ...errors },
      },
    },
    async (req) => {
      const actor = actorOf(req);
      const v = await ports.tokens.setRole(req.params.id, req.body.role, actor);
      await audit(actor, 'token.role', v.id, { grantedRole: v.role });
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
        params: IdParam,
        querystring: EmptyQuery,
        response: { 204: z.null(), ...errors },
      },
    },
    async (req, reply) => {
      const actor = actorOf(req);
      await ports.tokens.revoke(req.params.id, actor);
      await audit(actor, 'token.revoke', req.params.id);
      return reply.code(204).send(null);
    },
  );
}
