import { randomBytes } from 'node:crypto';
import type { VenueConfig } from '@xhedge/config';
import { XhedgeError } from '@xhedge/core';
import { Registry } from 'prom-client';
import { type Actor, type ApiPorts, applyVenueUpdate, checkVenueUpdate, type Policies } from '../ports.ts';
import type {
  AuditEntryView,
  BookMarkView,
  BreakerView,
  HedgeJobView,
  HedgePlanView,
  KillSwitchView,
  PositionBreakView,
  RiskSnapshotView,
} from '../schemas.ts';
import { FileTokenStore } from '../tokens.ts';
import { checkIfMatch, configVersion, type LastChange } from '../versions.ts';

/**
 * In-memory ports for the API's own unit tests: they hold what the API reads and record what it changes,
 * and implement no risk, execution or venue logic.
 */
export interface MemoryPorts extends ApiPorts {
  tokens: FileTokenStore;
  auditLog: AuditEntryView[];
  publish(s: RiskSnapshotView): void;
}

export function memoryPorts(opts: {
  venues: VenueConfig[];
  policy: Policies;
  adminToken: string;
}): MemoryPorts {
  const snapshots: RiskSnapshotView[] = [];
  const listeners = new Set<(s: RiskSnapshotView) => void>();
  const venues = new Map(opts.venues.map((v) => [v.id, v]));
  let policy = opts.policy;
  const kills: KillSwitchView[] = [{ scope: 'global', engaged: false }];
  const breakers: BreakerView[] = [{ name: 'venue:gmx-arb', state: 'closed' }];
  // as the planner left it: marked at 1,000,000, the newest equity 990,000
  const positionBreaks: PositionBreakView[] = [
    {
      venue: 'gmx-arb',
      instrument: 'ETH-USD:PERP',
      venueSizeBase: 2.5,
      expectedSizeBase: '2',
      diffBase: 0.5,
      sinceMs: 1_000,
      openedAtMs: 61_000,
    },
  ];
  const mark: BookMarkView = {
    markUsd: 1_000_000,
    lastEquityUsd: 990_000,
    lossSinceMarkUsd: 10_000,
    maxLossSinceMarkUsd: 50_000,
  };
  const plans: HedgePlanView[] = [
    {
      planId: 'plan_1',
      underlying: 'BTC',
      createdAtMs: 1,
      reason: 'delta drift',
      legs: [{ id: 'int_1', venue: 'gmx-arb', instrument: 'BTC-USD:PERP', side: 'buy', sizeBase: '0.5' }],
    },
  ];
  const jobs: HedgeJobView[] = [
    {
      id: 'int_1',
      planId: 'plan_1',
      underlying: 'BTC',
      venue: 'gmx-arb',
      instrument: 'BTC-USD:PERP',
      side: 'buy',
      sizeBase: '0.5',
      status: 'queued',
      attempts: 0,
      updatedAtMs: 1,
    },
  ];
  const auditLog: AuditEntryView[] = [];
  // versions as the Redis store makes them: keyed by this run's own key; who changed what, by version
  const versionKey = randomBytes(16).toString('hex');
  const changes = new Map<string, LastChange>();
  const changed = (field: string, value: unknown, a: Actor, action: string) =>
    changes.set(field, { version: configVersion(value, versionKey), by: a.name, atMs: Date.now(), action });
  const notFound = (what: string) => new XhedgeError('NOT_FOUND', `${what} not found`);
  const kill = (scope: KillSwitchView['scope'], target: string | undefined): KillSwitchView => {
    let k = kills.find((x) => x.scope === scope && x.target === target);
    if (!k) {
      k = target === undefined ? { scope, engaged: false } : { scope, target, engaged: false };
      kills.push(k);
    }
    return k;
  };
  const breaker = (name: string) => {
    const b = breakers.find((x) => x.name === name);
    if (!b) throw notFound(`breaker ${name}`);
    return b;
  };
  return {
    auditLog,
    publish(s) {
      snapshots.push(s);
      for (const l of listeners) l(s);
    },
    readiness: async () => ({
      ready: snapshots.length > 0,
      checks: [{ name: 'snapshot', ok: snapshots.length > 0 }],
    }),
    risk: {
      latest: async () => snapshots.at(-1),
      history: async (r) =>
        snapshots
          .filter(
            (s) =>
              (r.fromMs === undefined || s.asOfMs >= r.fromMs) &&
              (r.toMs === undefined || s.asOfMs <= r.toMs),
          )
          .slice(0, r.limit),
      slice: async (by, key) => {
        const s = snapshots.at(-1);
        if (!s || by !== 'underlying' || !s.underlyings[key]) return undefined;
        return { by, key, seq: s.seq, asOfMs: s.asOfMs, underlyings: { [key]: s.underlyings[key] } };
      },
      scenarioGrid: async (q) => ({
        underlying: q.underlying,
        asOfMs: 0,
        spotShocksPct: q.spotShocksPct,
        volShocksPts: q.volShocksPts,
        pnlUsd: q.volShocksPts.map(() => q.spotShocksPct.map(() => 0)),
      }),
      subscribe: (fn) => {
        listeners.add(fn);
        return () => listeners.delete(fn);
      },
    },
    hedges: {
      listPlans: async (r) => plans.slice(0, r.limit),
      getPlan: async (id) => plans.find((p) => p.planId === id),
      listJobs: async (q) =>
        jobs
          .filter(
            (j) =>
              (q.status === undefined || (q.status as readonly string[]).includes(j.status)) &&
              (q.planId === undefined || j.planId === q.planId) &&
              (q.venue === undefined || j.venue === q.venue) &&
              (q.underlying === undefined || j.underlying === q.underlying),
          )
          .slice(0, q.limit),
      getJob: async (id) => jobs.find((j) => j.id === id),
      cancelJob: async (id) => {
        const j = jobs.find((x) => x.id === id);
        if (!j) throw notFound(`job ${id}`);
        if (j.status === 'cancelled') throw new XhedgeError('CONFLICT', `job ${id} is already cancelled`);
        j.status = 'cancelled';
        return j;
      },
    },
    controls: {
      killSwitches: async () => kills,
      // as execution's KillSwitch: an engage never loosens what is engaged unless told to replace it
      tripKillSwitch: async (q, a) => {
        const k = kill(q.scope, q.target);
        const previous = k.engaged
          ? {
              by: k.by ?? '',
              reason: k.reason ?? '',
              sinceMs: k.sinceMs ?? 0,
              allowRiskReducing: k.allowRiskReducing ?? false,
            }
          : undefined;
        const change = !previous
          ? 'engaged'
          : q.replace
            ? 'replaced'
            : previous.allowRiskReducing && !q.allowRiskReducing
              ? 'tightened'
              : 'kept';
        if (change !== 'kept')
          Object.assign(k, {
            engaged: true,
            reason: q.reason,
            by: a.name,
            sinceMs: Date.now(),
            allowRiskReducing: q.allowRiskReducing,
          });
        return { ...k, change, ...(previous ? { previous } : {}) };
      },
      resetKillSwitch: async (q, a) => {
        const k = Object.assign(kill(q.scope, q.target), { engaged: false, reason: q.reason, by: a.name });
        delete k.allowRiskReducing;
        delete k.sinceMs;
        return k;
      },
      breakers: async () => breakers,
      targets: async () => ({
        venues: [...venues.keys()],
        underlyings: ['BTC', 'ETH'],
        breakers: breakers.map((b) => b.name),
      }),
      tripBreaker: async (n, reason) =>
        Object.assign(breaker(n), { state: 'open' as const, reason, sinceMs: Date.now() }),
      // as execution's BreakerBoard: told the trip it closes, a newer one in force stays (409)
      resetBreaker: async (n, reason, _a, o = {}) => {
        const b = breaker(n);
        if (o.openedAtMs !== undefined && b.state !== 'closed' && b.sinceMs !== o.openedAtMs)
          throw new XhedgeError(
            'BREAKER_RESET_CONFLICT',
            `breaker ${n} NOT reset: a newer trip is in force`,
            {
              details: {
                breaker: n,
                state: b.state,
                reason: b.reason ?? '',
                ...(b.sinceMs !== undefined ? { openedAtMs: b.sinceMs } : {}),
                expectedOpenedAtMs: o.openedAtMs,
              },
            },
          );
        const r = Object.assign(b, { state: 'closed' as const, reason });
        delete r.sinceMs;
        return r;
      },
      bookMark: async () => ({ ...mark }),
      setBookMark: async (q, a) => {
        const at = q.equityUsd ?? mark.lastEquityUsd;
        if (at === undefined) delete mark.markUsd;
        else Object.assign(mark, { markUsd: at, markedBy: `operator:${a.name}`, reason: q.reason });
        if (mark.markUsd !== undefined && mark.lastEquityUsd !== undefined)
          mark.lossSinceMarkUsd = mark.markUsd - mark.lastEquityUsd;
        return { ...mark };
      },
      positionBreaks: async () => positionBreaks,
      acknowledgePositionBreak: async (q, a) => {
        const i = positionBreaks.findIndex((b) => b.venue === q.venue && b.instrument === q.instrument);
        if (i < 0 && !venues.has(q.venue)) throw notFound(`drop-copy baseline of ${q.venue}/${q.instrument}`);
        if (i >= 0) positionBreaks.splice(i, 1);
        auditLog.push({
          id: `aud_${auditLog.length + 1}`,
          atMs: auditLog.length,
          actor: a.name,
          action: 'position-break.acknowledge',
          target: `${q.venue}/${q.instrument}`,
          details: { reason: q.reason },
        });
        return { venue: q.venue, instrument: q.instrument, breakOpen: i >= 0 };
      },
    },
    venues: {
      list: async () => [...venues.values()],
      get: async (id) => venues.get(id),
      versionOf: async (v) => configVersion(v, versionKey),
      add: async (v, a) => {
        if (venues.has(v.id)) throw new XhedgeError('CONFLICT', `venue ${v.id} exists`);
        venues.set(v.id, v);
        changed(`venue:${v.id}`, v, a, 'venue.add');
        return v;
      },
      update: async (id, v, a, cond) => {
        const prev = venues.get(id);
        if (!prev) throw notFound(`venue ${id}`);
        checkVenueUpdate(prev, configVersion(prev, versionKey), v, cond, changes.get(`venue:${id}`));
        const next = applyVenueUpdate(prev, v);
        venues.set(id, next);
        changed(`venue:${id}`, next, a, 'venue.update');
        return { before: prev, after: next };
      },
      disable: async (id, a) => {
        const v = venues.get(id);
        if (!v) throw notFound(`venue ${id}`);
        const next = { ...v, enabled: false };
        venues.set(id, next);
        changed(`venue:${id}`, next, a, 'venue.disable');
        return next;
      },
    },
    policy: {
      get: async () => policy,
      versionOf: async (p) => configVersion(p, versionKey),
      update: async (next: Policies, a: Actor, ifMatch) => {
        const before = policy;
        checkIfMatch('policy', configVersion(before, versionKey), ifMatch, changes.get('policy'));
        policy = next;
        changed('policy', next, a, 'policy.update');
        return { before, after: policy };
      },
    },
    pnl: {
      attribution: async (q) => ({ fromMs: q.fromMs, toMs: q.toMs, totalUsd: 0, byUnderlying: {} }),
    },
    audit: {
      record: async (e) => {
        auditLog.push({ id: `aud_${auditLog.length + 1}`, atMs: auditLog.length, ...e });
      },
      list: async (r) => auditLog.slice(0, r.limit),
    },
    tokens: new FileTokenStore({ envAdminToken: opts.adminToken }),
    metrics: new Registry(),
  };
}
