import { ChainId, EntityId, OrderStatus, TERMINAL_ORDER_STATUSES, Underlying, VenueId } from '@xhedge/core';
import { z } from 'zod';

/**
 * What the API returns. Views are deliberately loose objects (`z.looseObject`): the named fields are
 * guaranteed and documented, and the run may add more (the risk engine's full snapshot) without the API
 * changing. Request schemas are strict: an unknown field or query parameter is a 400 naming it.
 */

export const ErrorResponse = z
  .object({
    error: z.object({
      code: z.string().describe('stable machine code, e.g. VALIDATION, NOT_FOUND, FORBIDDEN'),
      message: z.string(),
      details: z.record(z.string(), z.unknown()),
    }),
  })
  .meta({ id: 'Error' });

/**
 * Token roles, each allowed what the ones before it are: `viewer` reads; `risk` (the risk owner) also
 * pulls the brakes (kill switch, breakers, the book mark, acknowledging a position break) without being
 * able to change venues, policy or hedges; `operator` changes them; `admin` manages tokens.
 */
export const Role = z.enum(['viewer', 'risk', 'operator', 'admin']);
export type Role = z.infer<typeof Role>;

/** Greeks of a book slice in project units (see @xhedge/core Greeks). */
export const GreeksView = z.looseObject({
  delta: z.number(),
  deltaUsd: z.number(),
  gamma: z.number(),
  vegaPerVolPoint: z.number(),
  thetaPerDay: z.number(),
});
export type GreeksView = z.infer<typeof GreeksView>;

export const RiskSnapshotView = z
  .looseObject({
    seq: z.number().int().nonnegative(),
    asOfMs: z.number(),
    /** Book Greeks per underlying. */
    underlyings: z.record(z.string(), GreeksView),
  })
  .meta({ id: 'RiskSnapshot' });
export type RiskSnapshotView = z.infer<typeof RiskSnapshotView>;

export const SliceBy = z.enum(['underlying', 'venue', 'chain']);
export type SliceBy = z.infer<typeof SliceBy>;

export const RiskSliceView = z
  .looseObject({
    by: SliceBy,
    key: z.string(),
    seq: z.number().int().nonnegative(),
    asOfMs: z.number(),
    /** Greeks of the slice per underlying (a venue or chain can hold several). */
    underlyings: z.record(z.string(), GreeksView),
  })
  .meta({ id: 'RiskSlice' });
export type RiskSliceView = z.infer<typeof RiskSliceView>;

export const ScenarioGridView = z
  .looseObject({
    underlying: z.string(),
    asOfMs: z.number(),
    spotShocksPct: z.array(z.number()),
    volShocksPts: z.array(z.number()),
    /** P&L in USD, rows = vol shocks, columns = spot shocks. */
    pnlUsd: z.array(z.array(z.number())),
  })
  .meta({ id: 'ScenarioGrid' });
export type ScenarioGridView = z.infer<typeof ScenarioGridView>;

export const HedgeLegView = z.looseObject({
  id: z.string(),
  venue: z.string(),
  instrument: z.string(),
  side: z.enum(['buy', 'sell']),
  sizeBase: z.string(),
});

export const HedgePlanView = z
  .looseObject({
    planId: z.string(),
    underlying: z.string(),
    createdAtMs: z.number(),
    reason: z.string(),
    legs: z.array(HedgeLegView),
  })
  .meta({ id: 'HedgePlan' });
export type HedgePlanView = z.infer<typeof HedgePlanView>;

export const JobStatus = z.union([OrderStatus, z.enum(['blocked', 'waiting', 'active', 'completed'])]);

export const HedgeJobView = z
  .looseObject({
    id: z.string().describe('the intent id, which is also the BullMQ job id'),
    planId: z.string(),
    venue: z.string(),
    instrument: z.string(),
    side: z.enum(['buy', 'sell']),
    sizeBase: z.string(),
    status: z.string(),
    attempts: z.number().int().nonnegative(),
    /** What happened, in words (filled 0.5 @ 95010, rejected: insufficient funds, ...). */
    outcome: z.string().optional(),
    filledSizeBase: z.string().optional(),
    avgFillPriceUsd: z.string().optional(),
    costUsd: z.number().optional(),
    updatedAtMs: z.number(),
  })
  .meta({ id: 'HedgeJob' });
export type HedgeJobView = z.infer<typeof HedgeJobView>;

export const KillScope = z.enum(['global', 'venue', 'underlying']);
export type KillScope = z.infer<typeof KillScope>;

export const KillSwitchView = z
  .looseObject({
    scope: KillScope,
    /** Venue id or underlying symbol; absent for global. */
    target: z.string().optional(),
    engaged: z.boolean(),
    reason: z.string().optional(),
    by: z.string().optional(),
    sinceMs: z.number().optional(),
    /** Engaged with reduce-only orders still let through. */
    allowRiskReducing: z
      .boolean()
      .optional()
      .describe('engaged: reduce-only orders in the scope still pass (false: every order is stopped)'),
    /** What a trip did (its answer only); the fields above are the engagement in force after it. */
    change: z
      .enum(['engaged', 'tightened', 'kept', 'replaced'])
      .optional()
      .describe(
        'a trip only: what it did. engaged: nothing was engaged; tightened: a reduce-only engagement became a ' +
          'full stop; kept: the engagement in force was as strict or stricter and stays (its who, why and ' +
          'setting; a reduce-only request did not loosen a full stop); replaced: replace was asked for',
      ),
    /** The engagement in force before the trip, when the scope was engaged. */
    previous: z
      .object({
        by: z.string(),
        reason: z.string(),
        sinceMs: z.number(),
        allowRiskReducing: z.boolean(),
      })
      .optional()
      .describe('a trip only: the engagement in force before it, when the scope was engaged'),
  })
  .meta({ id: 'KillSwitch' });
export type KillSwitchView = z.infer<typeof KillSwitchView>;

export const BreakerView = z
  .looseObject({
    name: z.string(),
    state: z.enum(['closed', 'open', 'half-open']),
    reason: z.string().optional(),
    sinceMs: z.number().optional(),
  })
  .meta({ id: 'Breaker' });
export type BreakerView = z.infer<typeof BreakerView>;

export const BookMarkView = z
  .looseObject({
    /** The equity the loss is measured from, USD; absent until the first tick observes the book. */
    markUsd: z.number().optional(),
    markedAtMs: z.number().optional(),
    markedBy: z.string().optional(),
    reason: z.string().optional(),
    /** The newest book equity observed by the planner, USD, and when. */
    lastEquityUsd: z.number().optional(),
    lastAtMs: z.number().optional(),
    /** markUsd − lastEquityUsd: positive is a loss. */
    lossSinceMarkUsd: z.number().optional(),
    /** The `market:loss` breaker trips past this; absent when that breaker is off. */
    maxLossSinceMarkUsd: z.number().optional(),
  })
  .meta({ id: 'BookMark' });
export type BookMarkView = z.infer<typeof BookMarkView>;

/** A position break the drop-copy check has open: the venue holds what our ledger cannot explain. */
export const PositionBreakView = z.looseObject({
  venue: z.string(),
  instrument: z.string(),
  /** The venue's position when the break opened, underlying units. */
  venueSizeBase: z.number(),
  /** The baseline plus our own fills since, exact decimal. */
  expectedSizeBase: z.string(),
  /** Venue minus expected, underlying units. */
  diffBase: z.number(),
  /** When the difference was first seen, and when it became a break. */
  sinceMs: z.number(),
  openedAtMs: z.number(),
});
export type PositionBreakView = z.infer<typeof PositionBreakView>;

export const PnlView = z
  .looseObject({
    fromMs: z.number(),
    toMs: z.number(),
    totalUsd: z.number(),
    /** Attribution per underlying: delta, gamma, vega, theta, funding, fees, residual, USD. */
    byUnderlying: z.record(z.string(), z.record(z.string(), z.number())),
  })
  .meta({ id: 'PnlAttribution' });
export type PnlView = z.infer<typeof PnlView>;

export const AuditEntryView = z
  .looseObject({
    id: z.string(),
    atMs: z.number(),
    actor: z.string(),
    action: z.string(),
    target: z.string(),
    details: z.record(z.string(), z.unknown()),
  })
  .meta({ id: 'AuditEntry' });
export type AuditEntryView = z.infer<typeof AuditEntryView>;

/** A venue as the API shows it: the config without credential references (write-only). */
export const VenueView = z
  .object({
    id: z.string(),
    kind: z.string(),
    chain: z.string(),
    enabled: z.boolean(),
    endpoints: z.record(z.string(), z.unknown()),
    params: z.record(z.string(), z.unknown()),
    /** Names of the credentials configured (privateKey, apiKey); their references are never returned. */
    credentialNames: z.array(z.string()),
    version: z
      .string()
      .describe(
        'the version of the venue config as stored (credentials and full URLs included): GET /v1/venues/{id} ' +
          'gives it as the ETag header too; send it back (If-Match or "version" in the body) so an update is ' +
          'refused with 412 if the venue changed since it was read',
      ),
  })
  .meta({ id: 'Venue' });
export type VenueView = z.infer<typeof VenueView>;

export const TokenView = z
  .object({
    id: z.string(),
    name: z.string(),
    role: Role,
    createdAtMs: z.number(),
    createdBy: z.string(),
  })
  .meta({ id: 'Token' });
export type TokenView = z.infer<typeof TokenView>;

export const ReadinessView = z.object({
  ready: z.boolean(),
  checks: z.array(
    z.object({
      name: z.string(),
      ok: z.boolean(),
      detail: z.string().optional().describe('only with a valid bearer token'),
    }),
  ),
});
export type ReadinessView = z.infer<typeof ReadinessView>;

// ---- request pieces

/** A whole number from `min` to `max`; `what` names it in an error. */
const WholeNumber = (min: number, max: number, what = 'a whole number') =>
  z
    .number({ error: `expected ${what}` })
    .int({ error: `expected ${what}` })
    .min(min, { error: `expected ${what}, at least ${min}` })
    .max(max, { error: `expected ${what}, at most ${max}` });

/**
 * A query-string value read as a number for `schema`. Only decimal digits are one: `z.coerce` would take
 * an empty value or a blank as 0 and `0x10`, `1e3`, ` 5 ` as numbers, answering a malformed request
 * instead of refusing it. Anything else becomes NaN so that the number's own error names the field
 * (and a parameter left out stays undefined: required, or its default).
 */
const FromQuery = <T extends z.ZodType>(schema: T) =>
  z.preprocess((v) => (typeof v === 'string' ? (/^-?\d+$/.test(v) ? Number(v) + 0 : Number.NaN) : v), schema);

/**
 * Epoch milliseconds in a query string. 0 is the start of time; a value below 1e11 (March 1973) other
 * than 0 can only be epoch seconds, and is refused naming that mistake, not read as a day in 1970.
 */
export const EpochMs = () =>
  FromQuery(
    WholeNumber(0, 8.64e15, 'milliseconds since the Unix epoch (a whole number)').refine(
      (v) => v === 0 || v >= 1e11,
      { error: 'expected milliseconds since the Unix epoch; this looks like seconds (multiply by 1000)' },
    ),
  );
/** Page size in a query string; the default sits inside so the OpenAPI document shows it. */
const Limit = (dflt: number) => FromQuery(WholeNumber(1, 5000).default(dflt));
export const TimeRangeQuery = z.strictObject({
  fromMs: EpochMs().optional(),
  toMs: EpochMs().optional(),
  limit: Limit(500),
});
export const EmptyQuery = z.strictObject({});

const OPEN_ORDER_STATUSES = OrderStatus.options.filter((st) => !TERMINAL_ORDER_STATUSES.has(st));
/**
 * Order statuses in a query string: a comma-separated list of statuses, `open` standing for every
 * status that is not final; each word not a status is named in the error.
 */
export const OrderStatusList = z
  .string()
  .describe(
    `comma-separated: open (${OPEN_ORDER_STATUSES.join(', ')}) or any of ${OrderStatus.options.join(', ')}`,
  )
  .transform((raw, ctx) => {
    const out = new Set<OrderStatus>();
    for (const word of raw.split(',').map((w) => w.trim())) {
      if (word === 'open') for (const st of OPEN_ORDER_STATUSES) out.add(st);
      else {
        const st = OrderStatus.safeParse(word);
        if (st.success) out.add(st.data);
        else {
          ctx.addIssue({
            code: 'custom',
            message: `${JSON.stringify(word)} is not an order status; expected open or any of ${OrderStatus.options.join(', ')}`,
          });
          return z.NEVER;
        }
      }
    }
    return [...out];
  });
/** The list of hedge jobs: every filter optional, all of them apply; times are when a job was queued. */
export const JobsQuery = TimeRangeQuery.extend({
  status: OrderStatusList.optional(),
  planId: EntityId.optional(),
  venue: VenueId.optional(),
  underlying: Underlying.optional(),
  limit: Limit(200),
});
export const IdParam = z.strictObject({ id: EntityId });
export const VenueParam = z.strictObject({ id: VenueId });
export const UnderlyingParam = z.strictObject({ underlying: Underlying });
export const ChainParam = z.strictObject({ chain: ChainId });
export const NameParam = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9:_.-]{1,128}$/, 'expected a breaker name'),
});
export const Reason = z.string().trim().min(3, 'say why, in at least 3 characters').max(500);
