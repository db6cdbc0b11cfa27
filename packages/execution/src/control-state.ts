import type { Ledger } from '@xhedge/store';
import type { Redis } from 'ioredis';
import type { BreakerBoard } from './breakers.ts';
import type { PreTradeControls } from './controls.ts';
import { keysFor } from './keys.ts';
import type { KillEngagement, KillSwitch } from './kill-switch.ts';
import type { ExecutionMetrics } from './metrics.ts';
import { evalScript } from './script.ts';
import { SendClaims } from './send-claim.ts';

/**
 * Lua: `redis_epoch()`, the identity of the Redis server process of the moment: its `run_id`, which
 * is new at every restart and differs between a master and the replica a failover promotes. (An
 * embedded js-redis-server reports none: it lives and dies with the process that uses it, so a
 * constant stands in.)
 */
export const REDIS_EPOCH_FN = `
local function redis_epoch()
  return string.match(redis.call('INFO', 'server'), 'run_id:(%x+)') or 'no-run-id'
end
`;

// KEYS: [1] control-state key. Returns {epoch, 1 if the state was restored on this server else 0}.
const EPOCH = `${REDIS_EPOCH_FN}
local e = redis_epoch()
return {e, redis.call('GET', KEYS[1]) == e and 1 or 0}`;

// KEYS: [1] control-state key. ARGV: [1] the epoch the restore started on. Marks the state restored
// for that epoch, unless the server changed under the restore (0).
const MARK_RESTORED = `${REDIS_EPOCH_FN}
if redis_epoch() ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1`;

/** The epoch (see {@link REDIS_EPOCH_FN}) of the Redis server `redis` talks to now. */
export async function redisEpoch(redis: Redis): Promise<string> {
  return (await epochOf(redis, 'none'))[0];
}

/**
 * Whether the control state of the deployment under `prefix` was restored on the Redis server `redis`
 * talks to now (as the order gate requires it): false on a server that lost its data and has not been
 * restored since, whose send claims may be missing.
 */
export async function controlStateRestored(redis: Redis, prefix: string): Promise<boolean> {
  return (await epochOf(redis, prefix))[1];
}

async function epochOf(redis: Redis, prefix: string): Promise<[epoch: string, restored: boolean]> {
  const [e, r] = (await evalScript(redis, EPOCH, [keysFor(prefix).controlState], [])) as [string, number];
  return [String(e), Number(r) === 1];
}

/**
 * The control state of a deployment (kill switch engagements, open breakers, the pre-trade windows)
 * lives in Redis, and the ledger keeps its durable record. When Redis loses data, that state is put
 * back from the ledger, and until it has been, no order may pass: the order gate requires the
 * `controlState` key to hold the epoch of the Redis server of the moment (its `run_id`), which only a
 * completed restore on that server writes. So trading stops (fail-closed) until a restore has run,
 * instead of going on with whatever the server lost (kill switch engagements, open breakers), after:
 * - a restart without persistence (everything gone, the key too);
 * - a restart from AOF or RDB that lost the last writes (the key survives, but with the old epoch);
 * - a failover to a replica that had not received the last writes (replication is asynchronous; the
 *   replica has its own `run_id`).
 * The send claims (see `SendClaim`) are part of that state: on a server that lost data, every order
 * the ledger has `queued` and every order of the last `CLAIM_RETAIN_MS` is claimed as `restored` (see
 * `SendClaims.restore`): a queued one may have been sent under a claim that is gone, so its next run
 * asks the venue before anything is sent; the others' runs read the ledger, never the missing claim.
 */
export interface ControlStateParts {
  redis: Redis;
  /** Key prefix of the deployment (the kill switch's and the breakers'). */
  prefix: string;
  killSwitch: KillSwitch;
  breakers: BreakerBoard;
  /** The ledger, for the orders whose send claims a data loss may have taken. */
  ledger: Ledger;
  /**
   * The pre-trade controls: after a data loss, their windows (hedge notional, executions, live orders)
   * are put back from the ledger's orders (`PreTradeControls.restore`). Without them, those windows
   * start empty on a server that lost them.
   */
  controls?: PreTradeControls | undefined;
  /** `xhedge_control_state_restored_timestamp_seconds` is set at each completed restore. */
  metrics?: ExecutionMetrics | undefined;
}

export interface RestoredControlState {
  killSwitch: KillEngagement[];
  breakers: string[];
  /** Client order ids claimed as `restored` (only when the server had lost its state). */
  sendClaims: string[];
  /** Orders put back into the pre-trade windows (only when the server had lost its state). */
  reservations: number;
}

/**
 * Restores the kill switch, the open breakers and (after a loss, with `controls`) the pre-trade windows
 * from the ledger, then marks the state complete for the Redis server it ran on. Throws, marking
 * nothing, when the server changed during the restore (what it wrote may be gone): the next run starts
 * over.
 */
export async function restoreControlState(
  p: ControlStateParts,
  o: { actor: string },
): Promise<RestoredControlState> {
  const [epoch, intact] = await epochOf(p.redis, p.prefix);
  const killSwitch = await p.killSwitch.restore(o);
  // on a server that lost data, a breaker it holds closed may have lost its trip
  const breakers = await p.breakers.restoreOpen({ actor: o.actor, serverLostData: !intact });
  // Only after a loss: on a server that kept its state, a queued order has its claim or none was taken.
  // (A loss during the restore fails the mark below, and the next run sees it.)
  const sendClaims = intact
    ? []
    : await new SendClaims(p.redis, p.prefix).restore(p.ledger, { actor: o.actor, nowMs: Date.now() });
  if (sendClaims.length > 0)
    await p.ledger.audit({
      actor: o.actor,
      action: 'send-claim.restore',
      details: { epoch, count: sendClaims.length, clientOrderIds: sendClaims.slice(0, 100) },
    });
  const reservations = intact || !p.controls ? 0 : await p.controls.restore(p.ledger);
  if (reservations > 0)
    await p.ledger.audit({
      actor: o.actor,
      action: 'pre-trade-windows.restore',
      details: { epoch, orders: reservations },
    });
  const k = keysFor(p.prefix);
  const marked = await evalScript(p.redis, MARK_RESTORED, [k.controlState], [epoch]);
  if (Number(marked) !== 1)
    throw new Error(
      `the Redis server changed (run_id ${epoch} is gone) while the control state was being restored; the restore runs again`,
    );
  p.metrics?.controlStateRestoredAt.set(Date.now() / 1000);
  return { killSwitch, breakers, sendClaims, reservations };
}

/**
 * Restores at once, then every `intervalMs` and as soon as the client reconnects (a reconnect often
 * means a restarted or failed-over server, whose gate stays shut until a restore). One run at a time;
 * a failed run is reported and retried at the next interval. `stop` ends the loop and waits for a run
 * under way.
 */
export function keepControlStateRestored(
  p: ControlStateParts,
  o: {
    actor: string;
    /** @defaultValue 5000 */
    intervalMs?: number;
    onRestored?: (r: RestoredControlState) => void;
    onError?: (err: unknown) => void;
  },
): { first: Promise<RestoredControlState>; stop(): Promise<void> } {
  return keepRestoring(
    p.redis,
    () =>
      restoreControlState(p, { actor: o.actor }).then((x) => {
        if (x.killSwitch.length > 0 || x.breakers.length > 0 || x.sendClaims.length > 0 || x.reservations > 0)
          o.onRestored?.(x);
        return x;
      }),
    o,
  );
}

/**
 * Runs `restore` at once (the returned `first`: its failure goes to whoever awaits it), then every
 * `intervalMs` and as soon as `redis` is ready again (a restarted or failed-over server may have lost or
 * rolled back what it restores), one run at a time; a later run's failure goes to `onError`, and the next
 * interval tries again. `stop` ends it and waits for a run under way.
 */
export function keepRestoring<T>(
  redis: Pick<Redis, 'on' | 'off'>,
  restore: () => Promise<T>,
  o: { /** @defaultValue 5000 */ intervalMs?: number; onError?: (err: unknown) => void },
): { first: Promise<T>; stop(): Promise<void> } {
  let running: Promise<void> | undefined;
  const track = (r: Promise<unknown>, report: boolean) => {
    running = r
      .then(
        () => {},
        (err) => {
          if (report) o.onError?.(err);
        },
      )
      .finally(() => {
        running = undefined;
      });
  };
  const first = restore();
  track(first, false);
  let stopped = false;
  const kick = () => {
    if (!running && !stopped) track(restore(), true);
  };
  const timer = setInterval(kick, o.intervalMs ?? 5000);
  timer.unref();
  redis.on('ready', kick);
  return {
    first,
    async stop() {
      stopped = true;
      clearInterval(timer);
      redis.off('ready', kick);
      await running;
    },
  };
}
