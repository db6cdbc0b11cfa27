// An orchestrator process for the chaos suite: a LeaderLease and an Orchestrator planning one leg per
// tick into the shared Postgres ledger and Redis queues. The parent pauses (SIGSTOP), resumes and
// kills (SIGKILL) it. `stall` holds its next ledger write until `release`, so the parent can pause it
// between the lease check and the fenced write (a GC pause or a partition at the worst moment).
import { deterministicId } from '@xhedge/core';
import { LeaderLease, Orchestrator, redisOptionsFromUrl } from '@xhedge/execution';
import { FencedOutError, Ledger, openDatabase } from '@xhedge/store';
import { Redis } from 'ioredis';
import { intentFor, parts } from './common.ts';

export type OrchestratorChildMessage =
  | { kind: 'ready'; holder: string }
  | { kind: 'planned'; holder: string; token: number; intentId: string }
  | { kind: 'stalled'; holder: string; token: number | undefined }
  | { kind: 'fenced'; holder: string; token: number; current: number }
  | { kind: 'error'; holder: string; message: string };

const env = process.env;
const holder = env.CHAOS_HOLDER as string;
const prefix = env.CHAOS_PREFIX as string;
const ttlMs = Number(env.CHAOS_TTL_MS ?? 1000);
const db = await openDatabase({
  url: env.CHAOS_PG_URL,
  schema: env.CHAOS_PG_SCHEMA,
  migrate: false,
  poolSize: 3,
});
const real = new Ledger(db);
const connection = redisOptionsFromUrl(env.CHAOS_REDIS_URL as string);
const cmd = new Redis(connection as object);
cmd.on('error', () => {});
const send = (m: OrchestratorChildMessage) => process.send?.(m);

let stall: { armed: boolean; release?: () => void } = { armed: false };
const ledger = new Proxy(real, {
  get(t, prop, r) {
    const v = Reflect.get(t, prop, r);
    if (prop === 'recordPlan' && typeof v === 'function') {
      return async (...args: unknown[]) => {
        if (stall.armed) {
          stall.armed = false;
          await new Promise<void>((resolve) => {
            stall.release = resolve;
            send({ kind: 'stalled', holder, token: lease.token });
          });
        }
        return v.apply(t, args);
      };
    }
    return typeof v === 'function' ? v.bind(t) : v;
  },
}) as Ledger;
process.on('message', (m: { cmd: 'stall' | 'release' }) => {
  if (m.cmd === 'stall') stall = { armed: true };
  if (m.cmd === 'release') stall.release?.();
});

const p = await parts({ cmd, prefix, ledger, connection });
const lease = new LeaderLease({
  redis: cmd,
  prefix,
  name: 'orch',
  ttlMs,
  holderId: holder,
  tokenFloor: () => real.fencingToken('orch'),
});
let n = 0;
const base = holder === 'a' ? 100_000 : 200_000;
const orchestrator = new Orchestrator({
  lease,
  service: p.service,
  intervalMs: 100,
  plan: async ({ token }) => {
    n += 1;
    const leg = intentFor(prefix, base + n, 3500, {
      planId: deterministicId('plan', prefix, holder, token, n),
      reason: `chaos orchestrator ${holder} token ${token}`,
    });
    return [{ planId: leg.planId, legs: [leg] }];
  },
  onPlanned: (_plan, legs, token) => {
    for (const l of legs)
      if (l.outcome === 'queued') send({ kind: 'planned', holder, token, intentId: l.intentId });
  },
  onError: (err) => {
    if (err instanceof FencedOutError) {
      const d = err.details as { token: number; current: number };
      send({ kind: 'fenced', holder, token: d.token, current: d.current });
    } else send({ kind: 'error', holder, message: err instanceof Error ? err.message : String(err) });
  },
});
orchestrator.start();
send({ kind: 'ready', holder });
