import type {
  BreakerView,
  ControlsPort,
  ControlTargets,
  KillSwitchView,
  PositionBreakView,
} from '@xhedge/api';
import {
  acknowledgePositionBreak,
  type BreakerBoard,
  type BreakerStatus,
  breakerNames,
  type KillEngagement,
  type KillScope,
  type KillSwitch,
} from '@xhedge/execution';
import type { AuditEntry, Ledger } from '@xhedge/store';

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

/**
 * The API's controls port over the Redis-held kill switch and breaker board of execution (and the
 * board's book mark, which writes its own `book-mark.set` audit entry). The kill switch writes its own audit entry (`kill-switch.engage` / `kill-switch.release`, actor
 * `operator:<token name>`), so the API writes none of its own for it: one change, one entry.
 */
export function controlsPort(
  kill: KillSwitch,
  breakers: BreakerBoard,
  ledger: Ledger,
  /** The run's venues (every one, enabled or not) and underlyings: what a trip may name. */
  known?: () => Promise<{ venues: readonly { id: string; chain: string }[]; underlyings: readonly string[] }>,
): ControlsPort {
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
      killView(await kill.engage(scopeOf(q), { actor: `operator:${actor.name}`, reason: q.reason })),
    resetKillSwitch: async (q, actor) => {
      await kill.release(scopeOf(q), { actor: `operator:${actor.name}`, reason: q.reason });
      const v: KillSwitchView = {
        scope: q.scope,
        engaged: false,
        reason: q.reason,
        by: `operator:${actor.name}`,
      };
      if (q.target !== undefined) v.target = q.target;
      return v;
    },
    breakers: async () => (await breakers.list()).map(breakerView),
    tripBreaker: async (name, reason, actor) => {
      await breakers.trip(name, reason, { actor: `operator:${actor.name}` });
      return breakerView(await breakers.status(name));
    },
    resetBreaker: async (name, reason, actor) => {
      await breakers.reset(name, `operator:${actor.name}`, reason);
      return breakerView(await breakers.status(name));
    },
    positionBreaks: async () =>
      (await ledger.openPositionBreaks()).map(breakView).sort((a, b) => a.openedAtMs - b.openedAtMs),
    acknowledgePositionBreak: (q, actor) =>
      acknowledgePositionBreak(ledger, { ...q, actor: `operator:${actor.name}` }),
    auditsBookMark: true,
    bookMark: async () => ({ ...(await breakers.bookMark()) }),
    setBookMark: async (q, actor) => ({
      ...(await breakers.setMark({
        ...(q.equityUsd !== undefined ? { equityUsd: q.equityUsd } : {}),
        actor: `operator:${actor.name}`,
        reason: q.reason,
      })),
    }),
  };
}
