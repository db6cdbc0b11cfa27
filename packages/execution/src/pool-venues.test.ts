import { systemClock } from '@xhedge/core';
import { createMarketSimulator } from '@xhedge/sim';
import type { VenueAdapter } from '@xhedge/venue';
import { createPaperVenue, type PaperVenue } from '@xhedge/venue-paper';
import type { Worker } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientOrderIdFor } from './ids.ts';
import { countingVenue, type Env, makeEnv, until } from './test-env.ts';

const TERMINAL = ['filled', 'cancelled', 'rejected', 'failed'];

/** A paper venue with its own market; `gate` holds every request while `held`. */
function paperVenue(
  id: string,
  kind: 'paper-drift' | 'paper-gmx',
  params: Record<string, unknown> = {},
): { venue: PaperVenue; hold(): void; release(): void; waiting(): number } {
  const market = createMarketSimulator({
    underlyings: { ETH: { spot: 3500, vol: 0.6 } },
    seed: 3,
    clock: systemClock,
  });
  let held: Promise<void> | undefined;
  let open = () => {};
  let waiting = 0;
  const venue = createPaperVenue({
    id,
    kind,
    chain: kind === 'paper-gmx' ? 'evm:42161' : 'solana:mainnet-beta',
    market,
    params: { latencyMs: 1, ...params },
    sleep: async () => {
      if (!held) return;
      waiting++;
      await held;
      waiting--;
    },
  });
  venue.seedBalance('USDC', 1e8);
  return {
    venue,
    hold() {
      held = new Promise((r) => {
        open = r;
      });
    },
    release() {
      held = undefined;
      open();
    },
    waiting: () => waiting,
  };
}

describe('venues added to and swapped in a running worker pool', () => {
  let env: Env;
  let added: Worker | undefined;
  beforeAll(async () => {
    env = await makeEnv({ workers: { pollBudgetMs: 20_000 } });
  });
  afterAll(async () => {
    await env?.close();
  });

  const final = (cid: string) =>
    until(async () => {
      const o = await env.ledger.getOrder(cid);
      return o && TERMINAL.includes(o.status) ? o : undefined;
    });

  it('a worker added for a new venue processes that venue queue', async () => {
    const { venue: pv2 } = paperVenue('pv2', 'paper-drift');
    const { venue, placed } = countingVenue(pv2);
    expect(env.pool.venueIds).toEqual(['pv']);
    added = await env.pool.addVenue('pv2', venue);
    expect(env.pool.venueIds).toEqual(['pv', 'pv2']);
    expect(env.pool.workers).toContain(added);
    expect(env.pool.venue('pv2')).toBe(venue);
    const leg = env.intent(1, { venue: 'pv2' });
    await env.service.submitPlan({ planId: leg.planId, legs: [leg] });
    const o = await final(clientOrderIdFor(leg.id));
    expect(o.status).toBe('filled');
    expect(placed).toEqual([o.clientOrderId]);
    expect((await pv2.fetchPositions()).map((p) => [p.instrument, p.sizeBase])).toEqual([
      ['ETH-USD:PERP', 0.5],
    ]);
    // adding it twice, or under another id, is refused
    await expect(env.pool.addVenue('pv2', venue)).rejects.toThrow(/runs venue pv2 already/);
    await expect(env.pool.addVenue('pv9', venue)).rejects.toThrow(/adapter pv2 given for venue pv9/);
  });

  it('replaceVenue waits for the job running on the old adapter, then new jobs use the new one', async () => {
    const old = paperVenue('pv3', 'paper-drift');
    await env.pool.addVenue('pv3', old.venue);
    old.hold();
    const first = env.intent(2, { venue: 'pv3' });
    await env.service.submitPlan({ planId: first.planId, legs: [first] });
    const q = env.service.queue('pv3');
    // the job is running, stuck inside a request to the old venue (BullMQ's `active` alone comes
    // before the processor picked its adapter)
    await until(async () => ((await (await q.getJob(first.id))?.getState()) === 'active' ? true : undefined));
    await until(async () => (old.waiting() > 0 ? true : undefined));
    const next = paperVenue('pv3', 'paper-drift');
    const counted = countingVenue(next.venue);
    let swapped = false;
    const swap = env.pool.replaceVenue('pv3', counted.venue).then((prev) => {
      swapped = true;
      return prev;
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(swapped).toBe(false); // still held: the old adapter is in use
    old.release();
    const prev = await swap;
    expect(prev).toBe(old.venue);
    // by the time the swap went through, the job on the old adapter had finished
    expect((await env.ledger.getOrder(clientOrderIdFor(first.id)))?.status).toBe('filled');
    expect(env.pool.venue('pv3')).toBe(counted.venue);
    const second = env.intent(3, { venue: 'pv3' });
    await env.service.submitPlan({ planId: second.planId, legs: [second] });
    expect((await final(clientOrderIdFor(second.id))).status).toBe('filled');
    expect(counted.placed).toEqual([clientOrderIdFor(second.id)]);
    expect((await old.venue.fetchPositions()).map((p) => p.sizeBase)).toEqual([0.5]);
    // a function may keep the adapter in use
    expect(await env.pool.replaceVenue('pv3', async (cur) => cur)).toBe(counted.venue);
    expect(env.pool.venue('pv3')).toBe(counted.venue);
    await expect(env.pool.replaceVenue('nope', counted.venue)).rejects.toThrow(/has no venue nope/);
  });

  it('the kill switch reaches the working orders of an added venue', async () => {
    const { venue } = paperVenue('pv4', 'paper-gmx', { keeperDelayMs: 2500 });
    await env.pool.addVenue('pv4', venue);
    const leg = env.intent(4, { venue: 'pv4', chain: 'evm:42161' });
    await env.service.submitPlan({ planId: leg.planId, legs: [leg] });
    const cid = clientOrderIdFor(leg.id);
    await until(async () => ((await env.ledger.getOrder(cid))?.status === 'acknowledged' ? true : undefined));
    await env.killSwitch.engage('venue:pv4', { actor: 'risk-owner:test', reason: 'drill' });
    const o = await final(cid);
    expect(o.status).toBe('cancelled');
    expect((await venue.getOrderByClientId(cid))?.status).toBe('cancelled');
    const ev = await env.ledger.listKillSwitchEvents({ scope: 'venue:pv4' });
    expect(ev.find((e) => e.action === 'cancel-working')?.details).toMatchObject({
      venue: 'pv4',
      cancelled: 1,
    });
    await env.killSwitch.release('venue:pv4', { actor: 'risk-owner:test', reason: 'drill over' });
  });

  it('removeVenue closes that worker; close() closes the added ones and refuses new venues', async () => {
    const removed = await env.pool.removeVenue('pv4');
    expect(removed?.id).toBe('pv4');
    expect(env.pool.venueIds).toEqual(['pv', 'pv2', 'pv3']);
    expect(await env.pool.removeVenue('pv4')).toBeUndefined();
    expect(added?.isRunning()).toBe(true);
    await env.pool.close();
    expect(added?.isRunning()).toBe(false);
    expect(env.pool.workers.every((w) => !w.isRunning())).toBe(true);
    const { venue } = paperVenue('pv5', 'paper-drift');
    await expect(env.pool.addVenue('pv5', venue as VenueAdapter)).rejects.toThrow(/is closed/);
  });
});
