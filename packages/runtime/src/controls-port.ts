import {
  type Actor,
  ApiError,
  type BreakerView,
  type ControlsPort,
  type ControlTargets,
  type KillSwitchView,
  type PositionBreakView,
} from '@xhedge/api';
import { XhedgeError } from '@xhedge/core';
import {
  acknowledgePositionBreak,
  type BreakerBoard,
  type BreakerStatus,
  breakerNames,
  type KillEngagement,
  type KillEngageResult,
  type KillScope,
  type KillSwitch,
} from '@xhedge/execution';
import type { AuditEntry, Ledger } from '@xhedge/store';
import { maskedError } from './masked-error.ts';

function scopeOf(q: { scope: KillSwitchView['scope']; target?: string }): KillScope {
  return (q.scope === 'global' ? 'global' : `${q.scope}:${q.target ?? ''}`) as KillScope;
}

function killView(e: KillEngagement): KillSwitchView {
  const [scope, target] =
    e.scope === 'global' ? ['global' as const, undefined] : (e.scope.split(':') as [string, string]);
  const v: KillSwitchView = {
    scope: scope as KillSwitchView['scope'],
    engaged: true,
    reason: e.reason,
    by: e.actor,
    sinceMs: e.engagedAtMs,
    allowRiskReducing: e.allowRiskReducing,
  };
  if (target !== undefined) v.target = target;
  return v;
}

/**
 * An engage's answer: the engagement in force (a reduce-only request over a full stop answers the full
 * stop), what the call did (`change`: `kept` says the request did not loosen it) and what it replaced.
 */
function engageView(r: KillEngageResult): KillSwitchView {
  const v = killView(r);
  v.change = r.change;
  if (r.previous)
    v.previous = {
      by: r.previous.actor,
      reason: r.previous.reason,
      sinceMs: r.previous.engagedAtMs,
      allowRiskReducing: r.previous.allowRiskReducing,
    };
  return v;
}

function breakerView(b: BreakerStatus): BreakerView {
  const v: BreakerView = { name: b.name, state: b.state };
  if (b.reason) v.reason = b.reason;
  if (b.openedAtMs !== undefined) v.sinceMs = b.openedAtMs;
  return v;
}

const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

function breakView(e: AuditEntry): PositionBreakView {
  const d = e.details;
  const [venue = '', instrument = ''] = (e.subject ?? '/').split('/');
  return {
    venue: typeof d.venue === 'string' ? d.venue : venue,
    instrument: typeof d.instrument === 'string' ? d.instrument : instrument,
    venueSizeBase: num(d.venueSizeBase),
    expectedSizeBase: typeof d.expectedSizeBase === 'string' ? d.expectedSizeBase : '0',
    diffBase: num(d.diffBase),
    sinceMs: num(d.sinceMs) || e.atMs,
    openedAtMs: e.atMs,
  };
}

/** Where the port tells of a change in force that the ledger did not record (pino's `error` fits). */
export interface ControlsPortLog {
  error(obj: Record<string, unknown>, msg: string): void;
}

/** An audit entry as the ledger takes it, for whoever records one by hand. */
interface Entry {
  actor: string;
  action: string;
  subject: string;
  details: Record<string, unknown>;
}

/**
 * A change this port made that is in force, though the ledger write after it failed: the API's 500
 * AUDIT_UNRECORDED, as its routes answer a change whose own audit entry failed (`details.applied` true,
 * `details.result` the answer the change would have had): never the driver's error, a bare 500 INTERNAL
 * that reads as "not done" and invites the operator to do it again. The entry is logged with the error
 * masked (no credentials of the ledger's URL), for whoever records it by hand.
 */
function unrecorded(
  log: ControlsPortLog | undefined,
  what: string,
  entry: Entry,
  err: unknown,
  result: unknown,
): ApiError {
  try {
    log?.error(
      { audit: entry, err: maskedError(err) },
      `${what} (in force), but the audit ledger did not record it: record this entry by hand`,
    );
  } catch {
    // the answer still says it is in force
  }
  return new ApiError(
    'AUDIT_UNRECORDED',
    `${what} (in force), but the audit ledger did not record it; do not repeat it`,
    {
      details: {
        applied: true,
        recorded: false,
        action: entry.action,
        target: entry.subject,
        ...(result !== undefined ? { result } : {}),
      },
    },
  );
}

/**
 * Codes of a change refused before it is made (bad input, unknown name, a newer engagement or trip than
 * the one the operator saw): never in force by it, passed on as they are.
 */
const REFUSALS = new Set([
  'VALIDATION',
  'CONFIG_INVALID',
  'INSTRUMENT_ID_INVALID',
  'NUMERIC',
  'NOT_FOUND',
  'CONFLICT',
  'UNAUTHORIZED',
  'FORBIDDEN',
  'RATE_LIMITED',
  // a release that found a newer engagement, a reset told a trip that found a newer one: nothing changed
  // (a read-back could see another operator's release or reset since, not this call's)
  'KILL_SWITCH_RELEASE_CONFLICT',
  'BREAKER_RESET_CONFLICT',
]);
const refused = (err: unknown) =>
  err instanceof RangeError || (err instanceof XhedgeError && REFUSALS.has(err.code));

/**
 * Runs a change whose ledger writes come after it is in force (Redis first, so a ledger outage never
 * delays a brake). When it fails, `holds` reads back whether the change is in force all the same and,
 * when it is, gives the answer it would have had: the failure is then {@link unrecorded}. When it is
 * not in force, or cannot be read, the failure is the change's own (not applied).
 */
async function inForceOrThrow<T>(
  change: () => Promise<T>,
  holds: () => Promise<T | undefined>,
  o: { log: ControlsPortLog | undefined; what: (r: T) => string; entry: (r: T) => Entry },
): Promise<T> {
  try {
    return await change();
  } catch (err) {
    if (refused(err)) throw err;
    let r: T | undefined;
    try {
      r = await holds();
    } catch {
      throw err;
    }
    if (r === undefined) throw err;
    throw unrecorded(o.log, o.what(r), o.entry(r), err, r);
  }
}

/**
 * `ledger` as it is, telling `onDone` once each of `methods` has resolved through it: which writes of a
 * function that takes the ledger went through before it failed.
 */
function watched(
  ledger: Ledger,
  methods: readonly (keyof Ledger)[],
  onDone: (m: keyof Ledger) => void,
): Ledger {
  return new Proxy(ledger, {
    get(target, prop) {
      const v: unknown = Reflect.get(target, prop, target);
      if (typeof v !== 'function') return v;
      const f = v as (...args: unknown[]) => unknown;
      if (!methods.includes(prop as keyof Ledger)) return f.bind(target);
      return async (...args: unknown[]) => {
        const r = await f.apply(target, args);
        onDone(prop as keyof Ledger);
        return r;
      };
    },
  });
}

const operator = (actor: Actor) => `operator:${actor.name}`;

/**
 * The API's controls port over the Redis-held kill switch and breaker board of execution (and the
 * board's book mark, which writes its own `book-mark.set` audit entry). The kill switch writes its own
 * audit entry (`kill-switch.engage` / `kill-switch.release`, actor `operator:<token name>`), so the API
 * writes none of its own for it: one change, one entry.
 *
 * A change made here (a breaker opened or closed, a kill switch released, the book marked, a position
 * break acknowledged) whose ledger write fails once it is in force answers the API's 500
 * AUDIT_UNRECORDED (`details.applied` true, `details.result` the answer it would have had), logged on
 * `log`; it was the driver's error, a bare 500 INTERNAL that read as "not done". An engage whose ledger
 * write fails answers execution's 500 KILL_SWITCH_UNRECORDED (`details.engaged` true), as before.
 */
export function controlsPort(
  kill: KillSwitch,
  breakers: BreakerBoard,
  ledger: Ledger,
  /** The run's venues (every one, enabled or not) and underlyings: what a trip may name. */
  known?: () => Promise<{ venues: readonly { id: string; chain: string }[]; underlyings: readonly string[] }>,
  /** Where a change in force that the ledger did not record is logged. @defaultValue none */
  log?: ControlsPortLog,
): ControlsPort {
  /** A breaker change: in force when the board holds the breaker in `state`. */
  const breakerChange = (
    name: string,
    reason: string,
    actor: Actor,
    action: 'trip' | 'reset',
    change: () => Promise<unknown>,
  ): Promise<BreakerView> => {
    const state = action === 'trip' ? 'open' : 'closed';
    return inForceOrThrow(
      async () => {
        await change();
        return breakerView(await breakers.status(name));
      },
      async () => {
        const b = await breakers.status(name);
        return b.state === state ? breakerView(b) : undefined;
      },
      {
        log,
        what: () => `breaker ${name} ${action === 'trip' ? 'opened' : 'closed'}`,
        // the entry the API writes after the port (`breaker.<action>`); the board's own breaker
        // event, which its restore after a Redis loss reads, may be missing too
        entry: () => ({
          actor: actor.name,
          action: `breaker.${action}`,
          subject: name,
          details: { reason, role: actor.role },
        }),
      },
    );
  };
  return {
    auditsKillSwitch: true,
    ...(known
      ? {
          targets: async (): Promise<ControlTargets> => {
            const k = await known();
            return {
              venues: k.venues.map((v) => v.id),
              underlyings: [...k.underlyings],
              breakers: breakerNames(k),
            };
          },
        }
      : {}),
    killSwitches: async () => {
      const engaged = (await kill.engaged()).map(killView);
      return engaged.some((k) => k.scope === 'global')
        ? engaged
        : [{ scope: 'global', engaged: false }, ...engaged];
    },
    tripKillSwitch: async (q, actor) =>
      engageView(
        await kill.engage(scopeOf(q), {
          actor: operator(actor),
          reason: q.reason,
          ...(q.allowRiskReducing !== undefined ? { allowRiskReducing: q.allowRiskReducing } : {}),
          ...(q.replace ? { replace: true } : {}),
        }),
      ),
    resetKillSwitch: async (q, actor) => {
      const scope = scopeOf(q);
      const v: KillSwitchView = { scope: q.scope, engaged: false, reason: q.reason, by: operator(actor) };
      if (q.target !== undefined) v.target = q.target;
      // the ledger's release event goes first (a failure there leaves it engaged), then Redis, then the
      // audit entry: released with the audit failed is in force. Only a scope engaged before the call is
      // released by it (one that was not is no release to record by hand).
      const wasEngaged = await kill
        .engaged()
        .then((all) => all.some((e) => e.scope === scope))
        .catch(() => false);
      return inForceOrThrow(
        async () => {
          await kill.release(scope, { actor: operator(actor), reason: q.reason });
          return v;
        },
        async () => (!wasEngaged || (await kill.engaged()).some((e) => e.scope === scope) ? undefined : v),
        {
          log,
          what: () => `kill switch ${scope} released`,
          entry: () => ({
            actor: operator(actor),
            action: 'kill-switch.release',
            subject: scope,
            details: { reason: q.reason },
          }),
        },
      );
    },
    breakers: async () => (await breakers.list()).map(breakerView),
    tripBreaker: (name, reason, actor) =>
      breakerChange(name, reason, actor, 'trip', () =>
        breakers.trip(name, reason, { actor: operator(actor) }),
      ),
    resetBreaker: (name, reason, actor, o = {}) =>
      breakerChange(name, reason, actor, 'reset', () =>
        breakers.reset(
          name,
          operator(actor),
          reason,
          o.openedAtMs !== undefined ? { ifOpenedAtMs: o.openedAtMs } : {},
        ),
      ),
    positionBreaks: async () =>
      (await ledger.openPositionBreaks()).map(breakView).sort((a, b) => a.openedAtMs - b.openedAtMs),
    acknowledgePositionBreak: async (q, actor) => {
      // the new-baseline request is the change; the audit entry and the read of open breaks follow it
      const done = new Set<keyof Ledger>();
      try {
        return await acknowledgePositionBreak(
          watched(ledger, ['setPositionBaseline', 'audit'], (m) => done.add(m)),
          { ...q, actor: operator(actor) },
        );
      } catch (err) {
        if (!done.has('setPositionBaseline') || done.has('audit')) throw err;
        const subject = `${q.venue}/${q.instrument}`;
        const breakOpen = await ledger
          .openPositionBreaks()
          .then((open) => open.some((e) => e.subject === subject))
          .catch(() => undefined);
        throw unrecorded(
          log,
          `position ${subject} acknowledged (a new baseline at the next quiet read)`,
          {
            actor: operator(actor),
            action: 'position-break.acknowledge',
            subject,
            details: { reason: q.reason },
          },
          err,
          { venue: q.venue, instrument: q.instrument, ...(breakOpen !== undefined ? { breakOpen } : {}) },
        );
      }
    },
    auditsBookMark: true,
    bookMark: async () => ({ ...(await breakers.bookMark()) }),
    setBookMark: async (q, actor) => {
      const by = operator(actor);
      // the mark as it was: a mark read back unchanged (the same operator and reason as an earlier one,
      // the write refused) is not this call's
      const before = await breakers.bookMark().catch(() => undefined);
      return inForceOrThrow(
        async () => ({
          ...(await breakers.setMark({
            ...(q.equityUsd !== undefined ? { equityUsd: q.equityUsd } : {}),
            actor: by,
            reason: q.reason,
          })),
        }),
        async () => {
          const m = await breakers.bookMark();
          // marked by this operator for this reason (at the equity asked), or pending the first equity
          const marked =
            before !== undefined &&
            m.markedAtMs !== undefined &&
            m.markedAtMs !== before.markedAtMs &&
            m.markedBy === by &&
            m.reason === q.reason &&
            (q.equityUsd === undefined || m.markUsd === q.equityUsd);
          const pending =
            q.equityUsd === undefined && m.lastEquityUsd === undefined && m.markUsd === undefined;
          return marked || pending ? { ...m } : undefined;
        },
        {
          log,
          what: (m) =>
            m.markUsd !== undefined
              ? `book marked at ${m.markUsd} USD`
              : 'book mark set to the next equity observed',
          // as the board writes it
          entry: (m) => ({
            actor: by,
            action: 'book-mark.set',
            subject: 'book',
            details: {
              ...(m.markUsd === undefined
                ? { pending: 'marks at the next equity observed' }
                : { markUsd: m.markUsd }),
              reason: q.reason,
            },
          }),
        },
      );
    },
  };
}
