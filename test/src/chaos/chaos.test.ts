import { describe, expect, it } from 'vitest';
import {
  breakerTrip,
  lateFills,
  leaderKilled,
  networkCut,
  redisLosesKillSwitch,
  twoOrchestrators,
} from './run.ts';

// The short in-process subset; `pnpm test:chaos` runs everything, including kill -9 of worker
// processes (50 trials) and a Redis killed and restarted mid-run.
describe('chaos (quick subset)', () => {
  it('venue timeouts whose orders fill later: no duplicate, nothing lost', async () => {
    expect(await lateFills(5)).toMatchObject({ duplicates: 0, lost: 0 });
  }, 60_000);
  it('the network to the venue cut: answers lost are looked up, never re-sent; nothing lost', async () => {
    const t = await networkCut(6);
    expect(t).toMatchObject({ duplicates: 0, lost: 0 });
    // the cut met an order in flight (otherwise the scenario proved nothing)
    expect(t.cut.landedUnanswered).toBeGreaterThanOrEqual(1);
  }, 60_000);
  it('the network to the venue cut with the venue breaker live: no duplicate, nothing lost', async () => {
    const t = await networkCut(6, { breaker: true });
    expect(t).toMatchObject({ duplicates: 0, lost: 0 });
    expect(t.cut.landedUnanswered).toBeGreaterThanOrEqual(1);
  }, 60_000);
  it('a tripped breaker: no order reaches the venue after the trip', async () => {
    expect(await breakerTrip(6)).toMatchObject({ duplicates: 0, lost: 0 });
  }, 60_000);
  it('two orchestrators: exactly one plans per token, the standby takes over', async () => {
    const t = await twoOrchestrators(1500);
    expect(t).toMatchObject({ duplicates: 0, lost: 0 });
    expect(t.trials).toBeGreaterThanOrEqual(2);
  }, 60_000);
  it('orchestrator processes: the late write of a paused leader is fenced; a SIGKILLed leader is replaced after the TTL', async () => {
    const t = await leaderKilled(1000);
    if (t.skipped) console.warn(`[chaos] ${t.name} skipped: ${t.skipped}`);
    expect(t).toMatchObject({ duplicates: 0, lost: 0 });
    if (!t.skipped) expect(t.trials).toBeGreaterThanOrEqual(3);
  }, 90_000);
  it.each(['wiped', 'rolled back'] as const)(
    'Redis %s under an engaged kill switch: no order reaches the venue',
    async (how) => {
      const t = await redisLosesKillSwitch(4, how);
      if (t.skipped) console.warn(`[chaos] ${t.name} skipped: ${t.skipped}`);
      expect(t).toMatchObject({ duplicates: 0, lost: 0 });
      if (!t.skipped) expect(t.trials).toBe(8);
    },
    60_000,
  );
});
