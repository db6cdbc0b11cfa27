import type { Redis } from 'ioredis';
import type { BreakerBoard } from './breakers.ts';
import { keysFor } from './keys.ts';
import type { KillEngagement, KillSwitch } from './kill-switch.ts';

/**
 * The control state of a deployment (kill switch engagements, open breakers) lives in Redis, and the
 * ledger keeps its durable record. When Redis loses data, that state is put back from the ledger, and
 * until it has been, no order may pass: the order gate requires the `controlState` key, which only a
 * completed restore writes. A Redis that comes back empty therefore stops trading (fail-closed) for
 * the moment until the next restore, instead of trading with every kill switch released and every
 * breaker closed.
 *
 * (A Redis that lost only its last second of writes keeps the key: an engagement lost that way is put
 * back by the next periodic restore, a window of at most `intervalMs`.)
 */
export interface ControlStateParts {
  redis: Redis;
  /** Key prefix of the deployment (the kill switch's and the breakers'). */
  prefix: string;
  killSwitch: KillSwitch;
  breakers: BreakerBoard;
}

export interface RestoredControlState {
  killSwitch: KillEngagement[];
  breakers: string[];
}

/** Restores the kill switch and the open breakers from the ledger, then marks the state complete. */
export async function restoreControlState(
  p: ControlStateParts,
  o: { actor: string },
): Promise<RestoredControlState> {
  const killSwitch = await p.killSwitch.restore(o);
  const breakers = await p.breakers.restoreOpen(o);
  await p.redis.set(keysFor(p.prefix).controlState, String(Date.now()));
  return { killSwitch, breakers };
}

/**
 * Restores at once, then every `intervalMs` (one run at a time; a failed run is reported and retried
 * at the next interval). `stop` ends the loop and waits for a run under way.
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
  let running: Promise<void> | undefined;
  const once = () =>
    restoreControlState(p, { actor: o.actor }).then((x) => {
      if (x.killSwitch.length > 0 || x.breakers.length > 0) o.onRestored?.(x);
      return x;
    });
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
  // the first run's failure goes to whoever awaits `first`
  const first = once();
  track(first, false);
  const timer = setInterval(() => {
    if (!running) track(once(), true);
  }, o.intervalMs ?? 5000);
  timer.unref();
  return {
    first,
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
