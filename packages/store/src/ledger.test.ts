import { type Fill, type HedgeIntent, ManualClock, ValidationError } from '@xhedge/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from './database.ts';
import { FencedOutError, IllegalTransitionError, LedgerConflictError } from './errors.ts';
import { Ledger, newestRecordedMs } from './ledger.ts';
import { migrate } from './migrations.ts';
import { closeTestDb, testBackends } from './test-backends.ts';

const backends = await testBackends();

function intent(n: number, over: Partial<HedgeIntent> = {}): HedgeIntent {
  return {
    id: `int_${String(n).padStart(24, '0')}`,
    planId: 'plan_1',
    underlying: 'ETH',
    venue: 'gmx',
    chain: 'evm:42161',
    instrument: 'ETH-USD:PERP',
    side: 'buy',
    sizeBase: '1.5',
    orderType: 'market',
    referencePriceUsd: 3000,
    reduceOnly: false,
    urgency: 'normal',
    reason: 'delta drifted',
    createdAtMs: 1_000 + n,
    dependsOn: [],
    ...over,
  };
}

/** A buy fill of order xh-1 on gmx's ETH perp; `f` gives its id, size, price, costs and time. */
function fillOf(f: Pick<Fill, 'fillId' | 'sizeBase' | 'priceUsd' | 'feeUsd' | 'gasUsd' | 'tsMs'>): Fill {
  return { clientOrderId: 'xh-1', venue: 'gmx', instrument: 'ETH-USD:PERP', side: 'buy', ...f };
}

describe.each(backends)('Ledger on $name', ({ open }) => {
  let h: DatabaseHandle;
  let ledger: Ledger;
  const clock = new ManualClock(10_000);
  beforeAll(async () => {
    h = await open();
    ledger = new Ledger(h, { clock });
  });
  afterAll(async () => {
    await closeTestDb(h);
  });

  it('migrations are versioned and idempotent', async () => {
    expect(await migrate(h.db)).toEqual([]);
    const rows = await h.db.selectFrom('xhedge_migrations').select('version').execute();
    expect(rows.map((r) => r.version)).toEqual([1, 2, 3, 4, 5]);
  });

  it('records an intent once, with a planned order and its first event', async () => {
    const a = await ledger.recordIntent(intent(1), { clientOrderId: 'xh-1', actor: 'orchestrator:a' });
    expect(a.created).toBe(true);
    expect(a.order.status).toBe('planned');
    const b = await ledger.recordIntent(intent(1), { clientOrderId: 'xh-1', actor: 'orchestrator:a' });
    expect(b.created).toBe(false);
    await expect(
      ledger.recordIntent(intent(1, { sizeBase: '2' }), { clientOrderId: 'xh-1', actor: 'orchestrator:a' }),
    ).rejects.toBeInstanceOf(LedgerConflictError);
    // what is sent must match too: a replay with another limit, order type or reduce-only is a conflict
    for (const [field, over] of [
      ['limitPriceUsd', { limitPriceUsd: '3100' }],
      ['orderType', { orderType: 'limit' }],
      ['reduceOnly', { reduceOnly: true }],
    ] as const) {
      await expect(
        ledger.recordIntent(intent(1, over), { clientOrderId: 'xh-1', actor: 'orchestrator:a' }),
      ).rejects.toMatchObject({ details: { field } });
      await expect(
        ledger.recordPlan([{ intent: intent(1, over), clientOrderId: 'xh-1', status: 'queued' }], {
          actor: 'a',
        }),
      ).rejects.toMatchObject({ details: { field } });
    }
    // the same size written otherwise is the same intent
    expect(
      (
        await ledger.recordIntent(intent(1, { sizeBase: '1.50' }), {
          clientOrderId: 'xh-1',
          actor: 'orchestrator:a',
        })
      ).created,
    ).toBe(false);
    const events = await ledger.orderEvents('xh-1');
    expect(events.map((e) => e.toStatus)).toEqual(['planned']);
    const got = await ledger.getIntent(intent(1).id);
    expect(got?.status).toBe('planned');
    expect(got?.dependsOn).toEqual([]);
  });

  it('enforces the order state machine and keeps the history', async () => {
    await ledger.transition('xh-1', 'queued', { actor: 'orchestrator:a' });
    await expect(ledger.transition('xh-1', 'filled', { actor: 'w' })).rejects.toBeInstanceOf(
      IllegalTransitionError,
    );
    clock.advance(5);
    const s = await ledger.transition('xh-1', 'sent', { actor: 'worker:1' });
    expect(s.order.sendAttempts).toBe(1);
    expect(s.order.lastSendAtMs).toBe(10_005);
    const again = await ledger.transition('xh-1', 'sent', { actor: 'worker:2' });
    expect(again.changed).toBe(false);
    expect(await ledger.claimResend('xh-1', 1, { actor: 'worker:1', note: 'not at venue' })).toBe(true);
    expect(await ledger.claimResend('xh-1', 1, { actor: 'worker:2', note: 'not at venue' })).toBe(false);
    await ledger.transition('xh-1', 'partially-filled', { actor: 'w', patch: { filledSizeBase: '0.5' } });
    await ledger.transition('xh-1', 'partially-filled', { actor: 'w', patch: { filledSizeBase: '1' } });
    const f = await ledger.transition('xh-1', 'filled', {
      actor: 'w',
      patch: { filledSizeBase: '1.5', avgFillPriceUsd: '3001.5', venueOrderId: 'v-9' },
    });
    expect(f.order).toMatchObject({
      status: 'filled',
      filledSizeBase: '1.5',
      venueOrderId: 'v-9',
      sendAttempts: 2,
    });
    const kinds = (await ledger.orderEvents('xh-1')).map((e) => `${e.kind}:${e.toStatus}`);
    expect(kinds).toEqual([
      'transition:planned',
      'transition:queued',
      'transition:sent',
      'resend:sent',
      'transition:partially-filled',
      'update:partially-filled',
      'transition:filled',
    ]);
    await expect(ledger.transition('xh-1', 'cancelled', { actor: 'w' })).rejects.toBeInstanceOf(
      IllegalTransitionError,
    );
  });

  it('serializes concurrent transitions: exactly one of many racing writers moves queued → sent', async () => {
    await ledger.recordIntent(intent(2), { clientOrderId: 'xh-2', actor: 'o' });
    await ledger.transition('xh-2', 'queued', { actor: 'o' });
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) => ledger.transition('xh-2', 'sent', { actor: `worker:${i}` })),
    );
    expect(results.filter((r) => r.changed)).toHaveLength(1);
    expect((await ledger.getOrder('xh-2'))?.sendAttempts).toBe(1);
  });

  it('fences out an older lease token in the same transaction as the insert', async () => {
    await ledger.recordIntent(intent(3), {
      clientOrderId: 'xh-3',
      actor: 'o',
      fence: { leaseName: 'orch', token: 5 },
    });
    await expect(
      ledger.recordIntent(intent(4), {
        clientOrderId: 'xh-4',
        actor: 'o',
        fence: { leaseName: 'orch', token: 4 },
      }),
    ).rejects.toBeInstanceOf(FencedOutError);
    expect(await ledger.getIntent(intent(4).id)).toBeUndefined();
    expect(await ledger.fencingToken('orch')).toBe(5);
    await ledger.recordIntent(intent(5), {
      clientOrderId: 'xh-5',
      actor: 'o',
      fence: { leaseName: 'orch', token: 6 },
    });
    expect((await ledger.getIntent(intent(5).id))?.fencingToken).toBe(6);
  });

  it('a new leader fences the old one out when it takes the lease, before it plans anything (regression: the fence moved only with a plan)', async () => {
    const lease = 'orch-takeover';
    const plan = (n: number, token: number) =>
      ledger.recordPlan(
        [{ intent: intent(n, { planId: `plan_${n}` }), clientOrderId: `xh-${n}`, status: 'queued' }],
        {
          actor: `orchestrator:${token}`,
          fence: { leaseName: lease, token },
        },
      );
    // leader A plans under token 7
    await plan(901, 7);
    expect(await ledger.fencingToken(lease)).toBe(7);
    // B takes the lease with token 8 and writes the fence; it plans nothing
    await ledger.advanceFencing(lease, 8);
    expect(await ledger.fencingToken(lease)).toBe(8);
    // A, paused mid-tick, commits late: refused, nothing of its plan recorded
    await expect(plan(902, 7)).rejects.toBeInstanceOf(FencedOutError);
    expect(await ledger.getIntent(intent(902).id)).toBeUndefined();
    await expect(
      ledger.recordIntent(intent(903), {
        clientOrderId: 'xh-903',
        actor: 'o',
        fence: { leaseName: lease, token: 7 },
      }),
    ).rejects.toBeInstanceOf(FencedOutError);
    // B's own token again changes nothing; B plans under it
    await ledger.advanceFencing(lease, 8);
    await plan(904, 8);
    // an older token never moves it back
    await expect(ledger.advanceFencing(lease, 7)).rejects.toBeInstanceOf(FencedOutError);
    expect(await ledger.fencingToken(lease)).toBe(8);
    // a lease never fenced before starts at the token given
    await ledger.advanceFencing('orch-fresh', 3);
    expect(await ledger.fencingToken('orch-fresh')).toBe(3);
    // bad input is named
    for (const bad of [0, -1, 1.5, Number.NaN])
      await expect(ledger.advanceFencing(lease, bad)).rejects.toThrow(/token: must be a whole number ≥ 1/);
    await expect(ledger.advanceFencing('', 9)).rejects.toThrow(/leaseName: must be a non-empty string/);
    expect(await ledger.fencingToken(lease)).toBe(8);
  });

  it('answers the API queries: time range, underlying, venue, status', async () => {
    await ledger.recordIntent(intent(6, { underlying: 'BTC', instrument: 'BTC-USD:PERP', venue: 'drift' }), {
      clientOrderId: 'xh-6',
      actor: 'o',
    });
    expect((await ledger.listIntents({ underlying: 'BTC' })).map((i) => i.id)).toEqual([intent(6).id]);
    expect((await ledger.listOrders({ venue: 'drift' })).map((o) => o.clientOrderId)).toEqual(['xh-6']);
    expect((await ledger.listOrders({ status: 'filled' })).map((o) => o.clientOrderId)).toEqual(['xh-1']);
    expect((await ledger.listIntents({ status: ['planned'] })).length).toBeGreaterThanOrEqual(2);
    expect((await ledger.listIntents({ fromMs: 1_003, toMs: 1_006 })).map((i) => i.createdAtMs)).toEqual([
      1_005, 1_003,
    ]);
    expect((await ledger.listIntents({ planId: 'plan_1', limit: 2 })).length).toBe(2);
    expect(await ledger.orderStatusCounts({ venue: 'drift' })).toEqual({ planned: 1 });
    // an empty status list selects nothing (it is not an SQL error, nor every row)
    expect(await ledger.listOrders({ status: [] })).toEqual([]);
    expect(await ledger.listIntents({ status: [] })).toEqual([]);
  });

  it('lists all orders past any page size, each once, newest first; and the underlyings with working orders', async () => {
    // ties on the creation time (one plan, one clock reading) and two times: the cursor needs both keys
    const leg = (n: number, underlying = 'SOL') => ({
      intent: intent(700 + n, {
        planId: 'plan_700',
        createdAtMs: underlying === 'SOL' ? 1_700_000_000_000 : 1_700_000_000_005,
        venue: 'pager',
        underlying,
        instrument: `${underlying}-USD:PERP`,
      }),
      clientOrderId: `xh-7${String(n).padStart(2, '0')}`,
      status: 'queued' as const,
    });
    await ledger.recordPlan(
      [0, 1, 2, 3].map((n) => leg(n)),
      { actor: 'o' },
    );
    clock.advance(5);
    await ledger.recordPlan(
      [4, 5, 6].map((n) => leg(n, 'AVAX')),
      { actor: 'o' },
    );
    const all = await ledger.listOrders({ venue: 'pager', limit: 100 });
    expect(all).toHaveLength(7);
    for (const pageSize of [1, 2, 3, 7, 5000])
      expect(await ledger.listAllOrders({ venue: 'pager' }, { pageSize }), `page ${pageSize}`).toEqual(all);
    expect(await ledger.listAllOrders({ venue: 'pager', status: [] })).toEqual([]);
    // intents alike, on (created time, id): 4 at one time and 3 at another, every page size
    const intents = await ledger.listIntents({ venue: 'pager', limit: 100 });
    expect(intents).toHaveLength(7);
    expect(new Set(intents.map((i) => i.createdAtMs)).size).toBe(2);
    for (const pageSize of [1, 2, 3, 4, 7, 5000])
      expect(await ledger.listAllIntents({ venue: 'pager' }, { pageSize }), `page ${pageSize}`).toEqual(
        intents,
      );
    expect(await ledger.listAllIntents({ venue: 'pager', status: [] })).toEqual([]);
    const working = await ledger.underlyingsWithOrders(['queued']);
    expect(working.has('SOL') && working.has('AVAX')).toBe(true);
    await ledger.transition('xh-704', 'cancelled', { actor: 'o' });
    await ledger.transition('xh-705', 'cancelled', { actor: 'o' });
    await ledger.transition('xh-706', 'cancelled', { actor: 'o' });
    expect((await ledger.underlyingsWithOrders('queued')).has('AVAX')).toBe(false);
    expect(await ledger.underlyingsWithOrders([])).toEqual(new Set());
    // narrowed by venue and by times: what changed since, of any status
    const at = clock.nowMs();
    clock.advance(10);
    await ledger.transition('xh-700', 'cancelled', { actor: 'o' });
    expect(await ledger.underlyingsWithOrders(undefined, { venue: 'pager', updatedFromMs: at + 1 })).toEqual(
      new Set(['SOL']),
    );
    expect(await ledger.underlyingsWithOrders(undefined, { venue: 'nowhere', updatedFromMs: 0 })).toEqual(
      new Set(),
    );
    expect(
      await ledger.underlyingsWithOrders(undefined, {
        venue: 'pager',
        createdFromMs: at + 1,
        updatedFromMs: 0,
      }),
    ).toEqual(new Set());
  });

  it('lists orders with their plan id in one query, with the filters and order of listOrders', async () => {
    await ledger.recordIntent(intent(7, { planId: 'plan_7', venue: 'drift', instrument: 'ETH-USD:PERP' }), {
      clientOrderId: 'xh-7',
      actor: 'o',
    });
    const queries = [
      {},
      { venue: 'drift' },
      { planId: 'plan_7' },
      { status: ['planned' as const, 'filled' as const], limit: 3 },
      { underlying: 'BTC' },
      { fromMs: 1_000, toMs: 1_000 },
    ];
    for (const q of queries) {
      const plain = await ledger.listOrders(q);
      const withPlan = await ledger.listOrdersWithPlan(q);
      expect(
        withPlan.map(({ planId: _, ...o }) => o),
        JSON.stringify(q),
      ).toEqual(plain);
      for (const o of withPlan)
        expect(o.planId, o.clientOrderId).toBe((await ledger.getIntent(o.intentId))?.planId);
    }
    expect(
      (await ledger.listOrdersWithPlan({ planId: 'plan_7' })).map((o) => [o.clientOrderId, o.planId]),
    ).toEqual([['xh-7', 'plan_7']]);
    expect(await ledger.listOrdersWithPlan({ status: [] })).toEqual([]);
  });

  it('records fills once and lists them', async () => {
    const fill = fillOf({
      fillId: 'f1',
      sizeBase: '1.5',
      priceUsd: '3001.5',
      feeUsd: 2.7,
      gasUsd: 0.1,
      tsMs: 20_000,
    });
    expect(await ledger.recordFill(fill)).toBe(true);
    expect(await ledger.recordFill(fill)).toBe(false);
    expect(await ledger.listFills({ underlying: 'ETH' })).toEqual([fill]);
    expect(await ledger.listFills({ underlying: 'BTC' })).toEqual([]);
  });

  it('a fill id recorded before: the same fill is a no-op, a different one a conflict naming its fields', async () => {
    const fill = {
      ...fillOf({
        fillId: 'f-re',
        sizeBase: '1.5',
        priceUsd: '3001.5',
        feeUsd: 2.7,
        gasUsd: 0.1,
        tsMs: 20_002,
      }),
      clientOrderId: 'xh-9',
    };
    expect(await ledger.recordFill(fill)).toBe(true);
    // the same decimals written otherwise, and another time, are the same fill
    expect(await ledger.recordFill({ ...fill, sizeBase: '1.50', priceUsd: '3001.500', tsMs: 20_010 })).toBe(
      false,
    );
    for (const [fields, over] of [
      [['sizeBase'], { sizeBase: '1.6' }],
      [['priceUsd'], { priceUsd: '3001.49' }],
      [['feeUsd'], { feeUsd: 2.8 }],
      [['gasUsd'], { gasUsd: 0 }],
      [['side'], { side: 'sell' }],
      [['clientOrderId'], { clientOrderId: 'xh-2' }],
      [['instrument'], { instrument: 'BTC-USD:PERP' }],
      [['side', 'sizeBase', 'priceUsd'], { side: 'sell', sizeBase: '0.5', priceUsd: '2990' }],
    ] as const) {
      const err = await ledger.recordFill({ ...fill, ...over }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, JSON.stringify(over)).toBeInstanceOf(LedgerConflictError);
      const c = err as LedgerConflictError;
      expect(c.code).toBe('CONFLICT');
      expect(c.fields).toEqual(fields);
      expect(c.shortMessage).toBe(`fill f-re was recorded before with a different ${fields.join(', ')}`);
      expect(c.details).toMatchObject({
        what: 'fill',
        id: 'f-re',
        venue: 'gmx',
        recorded: Object.fromEntries(fields.map((f) => [f, fill[f]])),
        reported: Object.fromEntries(fields.map((f) => [f, { ...fill, ...over }[f]])),
      });
    }
    // the row recorded first stays
    expect(await ledger.listFills({ clientOrderId: 'xh-9' })).toEqual([fill]);
  });

  it('refuses a fill with a NaN or infinite fee, or a size or price that is not an exact decimal', async () => {
    const fill = fillOf({
      fillId: 'f-bad',
      sizeBase: '0.5',
      priceUsd: '3000',
      feeUsd: 1,
      gasUsd: 0,
      tsMs: 20_001,
    });
    for (const bad of [
      { feeUsd: Number.NaN },
      { gasUsd: Number.POSITIVE_INFINITY },
      { sizeBase: '1e-7' },
      { priceUsd: 'NaN' },
    ]) {
      await expect(ledger.recordFill({ ...fill, ...bad }), JSON.stringify(bad)).rejects.toBeInstanceOf(
        ValidationError,
      );
    }
    expect((await ledger.listFills({ clientOrderId: 'xh-1' })).map((f) => f.fillId)).toEqual(['f1']);
  });

  it('fill progress never goes back: a stale lower filled size is not written; patch decimals are checked', async () => {
    await ledger.recordPlan(
      [{ intent: intent(601, { planId: 'plan_601' }), clientOrderId: 'xh-601', status: 'queued' }],
      {
        actor: 'o',
      },
    );
    await ledger.transition('xh-601', 'sent', { actor: 'w' });
    await ledger.transition('xh-601', 'partially-filled', {
      actor: 'run-b',
      patch: { filledSizeBase: '1.0' },
    });
    // a racing run of the same job, with an older venue read, writes after the newer one
    const stale = await ledger.transition('xh-601', 'partially-filled', {
      actor: 'run-a',
      patch: { filledSizeBase: '0.5', avgFillPriceUsd: '2990' },
    });
    expect(stale.changed).toBe(false);
    expect(await ledger.getOrder('xh-601')).toMatchObject({ filledSizeBase: '1.0' });
    expect((await ledger.orderEvents('xh-601')).map((e) => e.actor)).toEqual(['o', 'o', 'w', 'run-b']);
    // progress is still recorded
    const more = await ledger.transition('xh-601', 'partially-filled', {
      actor: 'run-b',
      patch: { filledSizeBase: '1.25' },
    });
    expect(more).toMatchObject({ changed: true, order: { filledSizeBase: '1.25' } });
    await expect(
      ledger.transition('xh-601', 'partially-filled', { actor: 'w', patch: { filledSizeBase: 'NaN' } }),
    ).rejects.toBeInstanceOf(ValidationError);
    await expect(
      ledger.transition('xh-601', 'filled', {
        actor: 'w',
        patch: { filledSizeBase: '1.5', avgFillPriceUsd: '' },
      }),
    ).rejects.toBeInstanceOf(ValidationError);
    expect(await ledger.getOrder('xh-601')).toMatchObject({
      status: 'partially-filled',
      filledSizeBase: '1.25',
    });
  });

  it('filters breaker events by exact venue and underlying, never by a name that only starts or ends alike', async () => {
    const at = 50_000;
    for (const breaker of [
      'venue:dx',
      'venue:dx-arb',
      'venue:d_x',
      'chain:evm:1',
      'market:loss:SOL',
      'market:loss:WSOL',
      'market:loss:S_L',
    ])
      await ledger.recordBreakerEvent({
        breaker,
        fromState: 'closed',
        toState: 'open',
        reason: 'r',
        details: {},
        atMs: at,
      });
    const names = async (q: { venue?: string; underlying?: string }) =>
      (await ledger.listBreakerEvents({ ...q, fromMs: at, toMs: at + 1 })).map((e) => e.breaker).sort();
    expect(await names({ venue: 'dx' })).toEqual(['venue:dx']);
    expect(await names({ venue: 'd_x' })).toEqual(['venue:d_x']);
    expect(await names({ underlying: 'SOL' })).toEqual(['market:loss:SOL']);
    expect(await names({ underlying: 'S_L' })).toEqual(['market:loss:S_L']);
  });

  it('keeps breaker, kill-switch and audit events, and risk snapshots', async () => {
    await ledger.recordBreakerEvent({
      breaker: 'venue:gmx',
      fromState: 'closed',
      toState: 'open',
      reason: 'error rate 60% ≥ 50%',
      details: { errors: 6, total: 10 },
    });
    await ledger.recordKillSwitchEvent({
      scope: 'venue:gmx',
      action: 'engage',
      actor: 'operator:ana',
      reason: 'drill',
      allowRiskReducing: true,
      details: {},
    });
    await ledger.audit({ actor: 'operator:ana', action: 'kill-switch.engage', subject: 'venue:gmx' });
    expect((await ledger.listBreakerEvents({ venue: 'gmx' }))[0]).toMatchObject({
      toState: 'open',
      details: { errors: 6 },
    });
    expect((await ledger.listKillSwitchEvents({ venue: 'gmx' }))[0]?.allowRiskReducing).toBe(true);
    expect((await ledger.listAudit({ actor: 'operator:ana' }))[0]?.subject).toBe('venue:gmx');
    expect(await ledger.recordRiskSnapshot({ seq: 1, asOfMs: 100, snapshot: { v: 1, delta: 2 } })).toBe(true);
    expect(await ledger.recordRiskSnapshot({ seq: 1, asOfMs: 100, snapshot: { v: 1, delta: 9 } })).toBe(
      false,
    );
    await ledger.recordRiskSnapshot({ seq: 2, asOfMs: 200, snapshot: { v: 1, delta: 3 } });
    expect(await ledger.latestRiskSnapshot()).toEqual({ seq: 2, asOfMs: 200, snapshot: { v: 1, delta: 3 } });
    expect((await ledger.riskSnapshotHistory({ fromMs: 0, toMs: 150 })).map((s) => s.seq)).toEqual([1]);
  });

  it('killSwitchStates: the latest engage or release per scope, cancel-working ignored', async () => {
    // the previous test engaged venue:gmx; here: global engaged then released then engaged again,
    // underlying:ETH engaged then released, venue:gmx gets a later cancel-working only.
    const ev = (scope: string, action: 'engage' | 'release' | 'cancel-working', reason: string) =>
      ledger.recordKillSwitchEvent({
        scope,
        action,
        actor: 'operator:ana',
        reason,
        allowRiskReducing: action === 'engage' && scope === 'global',
        details: action === 'engage' ? { eventId: `ev-${scope}-${reason}` } : {},
      });
    await ev('global', 'engage', 'first');
    await ev('underlying:ETH', 'engage', 'drill');
    await ev('global', 'release', 'over');
    await ev('underlying:ETH', 'release', 'over');
    clock.advance(7);
    await ev('global', 'engage', 'second');
    await ev('venue:gmx', 'cancel-working', 'kill switch engaged');
    await ev('global', 'cancel-working', 'kill switch engaged');
    const states = await ledger.killSwitchStates();
    expect(states.map((s) => [s.scope, s.action, s.reason])).toEqual([
      ['global', 'engage', 'second'],
      ['underlying:ETH', 'release', 'over'],
      ['venue:gmx', 'engage', 'drill'],
    ]);
    expect(states[0]).toMatchObject({
      actor: 'operator:ana',
      allowRiskReducing: true,
      atMs: clock.nowMs(),
      details: { eventId: 'ev-global-second' },
    });
  });

  it('breakerStates: the latest event of every breaker', async () => {
    const before = new Map((await ledger.breakerStates()).map((b) => [b.breaker, b.id]));
    const ev = (breaker: string, fromState: string, toState: string, reason: string) =>
      ledger.recordBreakerEvent({ breaker, fromState, toState, reason, details: { cooldownMs: 1000 } });
    await ev('bs:a', 'closed', 'open', 'errors');
    await ev('bs:b', 'closed', 'open', 'shock');
    await ev('bs:a', 'open', 'half-open', 'cooldown elapsed');
    await ev('bs:a', 'half-open', 'closed', 'trial ok');
    await ev('bs:b', 'open', 'half-open', 'cooldown elapsed');
    await ev('bs:b', 'half-open', 'open', 'trial failed');
    const states = (await ledger.breakerStates()).filter((b) => !before.has(b.breaker));
    expect(states.map((b) => [b.breaker, b.toState, b.reason])).toEqual([
      ['bs:a', 'closed', 'trial ok'],
      ['bs:b', 'open', 'trial failed'],
    ]);
    expect(states[1]?.details).toEqual({ cooldownMs: 1000 });
  });

  it('records a whole plan in one statement: queued or cancelled, events, duplicates, conflicts, fence', async () => {
    const a = intent(301, { planId: 'plan_301' });
    const b = intent(302, { planId: 'plan_301', side: 'sell' });
    const res = await ledger.recordPlan(
      [
        { intent: a, clientOrderId: 'xh-301', status: 'queued' },
        { intent: b, clientOrderId: 'xh-302', status: 'cancelled', error: 'blocked by kill-switch: drill' },
      ],
      { actor: 'orchestrator:p', fence: { leaseName: 'plan-lease', token: 4 }, durable: false },
    );
    expect(res.map((r) => [r.created, r.order.status])).toEqual([
      [true, 'queued'],
      [true, 'cancelled'],
    ]);
    expect((await ledger.orderEvents('xh-301')).map((e) => [e.fromStatus, e.toStatus])).toEqual([
      [null, 'planned'],
      ['planned', 'queued'],
    ]);
    expect((await ledger.getOrder('xh-302'))?.error).toMatch(/kill-switch/);
    expect((await ledger.getIntent(a.id))?.fencingToken).toBe(4);
    const again = await ledger.recordPlan([{ intent: a, clientOrderId: 'xh-301', status: 'queued' }], {
      actor: 'orchestrator:p',
    });
    expect(again[0]).toMatchObject({ created: false, order: { status: 'queued' } });
    await expect(
      ledger.recordPlan([{ intent: { ...a, sizeBase: '9' }, clientOrderId: 'xh-301', status: 'queued' }], {
        actor: 'orchestrator:p',
      }),
    ).rejects.toBeInstanceOf(LedgerConflictError);
    const c = intent(303, { planId: 'plan_303' });
    await expect(
      ledger.recordPlan([{ intent: c, clientOrderId: 'xh-303', status: 'queued' }], {
        actor: 'orchestrator:old',
        fence: { leaseName: 'plan-lease', token: 3 },
      }),
    ).rejects.toBeInstanceOf(FencedOutError);
    expect(await ledger.getIntent(c.id)).toBeUndefined();
  });

  it('recordSend is a compare-and-set: exactly one of many racing records wins, at the send time given', async () => {
    const d = intent(311, { planId: 'plan_311' });
    await ledger.recordPlan([{ intent: d, clientOrderId: 'xh-311', status: 'queued' }], { actor: 'o' });
    const wins = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        ledger.recordSend('xh-311', { actor: `w${i}`, atMs: 1_700_000_000_123 + i }),
      ),
    );
    const won = wins.filter((w) => w !== undefined);
    expect(won).toHaveLength(1);
    expect(won[0]).toMatchObject({ status: 'sent', sendAttempts: 1 });
    expect(won[0]?.lastSendAtMs).toBeGreaterThanOrEqual(1_700_000_000_123);
    expect(await ledger.recordSend('xh-311', { actor: 'late', atMs: 1 })).toBeUndefined();
    const events = await ledger.orderEvents('xh-311');
    expect(events.map((e) => e.toStatus)).toEqual(['planned', 'queued', 'sent']);
    expect(events[2]?.atMs).toBe(won[0]?.lastSendAtMs);
  });

  it('lists the orders a send-claim restore claims: every queued one, and every one recorded since a time', async () => {
    const q = intent(321, { planId: 'plan_321' });
    const s = intent(322, { planId: 'plan_322' });
    await ledger.recordPlan(
      [
        { intent: q, clientOrderId: 'xh-321', status: 'queued' },
        { intent: s, clientOrderId: 'xh-322', status: 'queued' },
      ],
      { actor: 'o' },
    );
    await ledger.recordSend('xh-322', { actor: 'w', atMs: Date.now() });
    const since = (ms: number) => ledger.clientOrderIdsToClaim({ createdSinceMs: ms });
    expect(await since(0)).toEqual(expect.arrayContaining(['xh-321', 'xh-322']));
    // recorded before the time: only the one still queued
    const later = await since(Number.MAX_SAFE_INTEGER);
    expect(later).toContain('xh-321');
    expect(later).not.toContain('xh-322');
  });

  it('keeps drop-copy baselines per venue and instrument, and finds the orders that explain a position', async () => {
    await ledger.setPositionBaseline({
      venue: 'dc',
      instrument: 'ETH-USD:PERP',
      sizeBase: '1.25',
      atMs: 50_000,
      actor: 'drop-copy',
      reason: 'first quiet read',
    });
    await ledger.setPositionBaseline({
      venue: 'dc',
      instrument: 'ETH-USD:PERP',
      sizeBase: null,
      atMs: 60_000,
      actor: 'alice',
      reason: 'acknowledged',
    });
    await ledger.setPositionBaseline({
      venue: 'other',
      instrument: 'BTC-USD:PERP',
      sizeBase: '-0.5',
      atMs: 50_000,
      actor: 'drop-copy',
      reason: 'first quiet read',
    });
    expect(await ledger.positionBaselines('dc')).toEqual([
      { venue: 'dc', instrument: 'ETH-USD:PERP', atMs: 60_000, actor: 'alice', reason: 'acknowledged' },
    ]);
    expect((await ledger.positionBaselines()).map((b) => b.sizeBase)).toEqual([undefined, '-0.5']);
    await expect(
      ledger.setPositionBaseline({ venue: 'dc', instrument: 'X', sizeBase: '1e3', actor: 'a', reason: 'r' }),
    ).rejects.toThrow(/position baseline sizeBase/);

    // three orders on venue dc: an old filled one, an old one still working, a new one
    const mk = async (n: number, createdAtMs: number) => {
      await ledger.recordPlan(
        [
          {
            intent: intent(n, { planId: `plan_${n}`, venue: 'dc', createdAtMs }),
            clientOrderId: `xh-${n}`,
            status: 'queued',
          },
        ],
        { actor: 'o' },
      );
    };
    clock.set(20_000);
    await mk(401, 20_000);
    await ledger.transition('xh-401', 'sent', { actor: 'w' });
    await ledger.transition('xh-401', 'filled', { actor: 'w', patch: { filledSizeBase: '1.5' } });
    await mk(402, 20_000);
    clock.set(70_000);
    await mk(403, 70_000);
    await ledger.transition('xh-403', 'cancelled', { actor: 'w' });
    const ids = (o: { clientOrderId: string }[]) => o.map((x) => x.clientOrderId);
    // created since 60 s: 403; still open: 402; 401 changed long before
    expect(
      ids(await ledger.ordersForPositionCheck('dc', { createdFromMs: 60_000, updatedAfterMs: 65_000 })),
    ).toEqual(['xh-402', 'xh-403']);
    // changed after 15 s: 401 as well
    expect(
      ids(await ledger.ordersForPositionCheck('dc', { createdFromMs: 60_000, updatedAfterMs: 15_000 })),
    ).toEqual(['xh-401', 'xh-402', 'xh-403']);
    expect(await ledger.instrumentsTraded('dc')).toEqual(['ETH-USD:PERP']);
    expect(await ledger.instrumentsTraded('nowhere')).toEqual([]);
  });

  it('lists the position breaks no resolution followed', async () => {
    await ledger.audit({
      actor: 'drop-copy',
      action: 'position-break',
      subject: 'dc/ETH-USD:PERP',
      details: { diffBase: 1 },
    });
    await ledger.audit({
      actor: 'drop-copy',
      action: 'position-break',
      subject: 'dc/BTC-USD:PERP',
      details: { diffBase: 2 },
    });
    await ledger.audit({ actor: 'drop-copy', action: 'position-break-resolved', subject: 'dc/BTC-USD:PERP' });
    const open = await ledger.openPositionBreaks();
    expect(open.map((b) => [b.subject, b.details.diffBase])).toEqual([['dc/ETH-USD:PERP', 1]]);
  });

  it('transition with `from`: writes only from those states; otherwise nothing changes and the result says unmet', async () => {
    const legs = [501, 502, 503].map((n) => ({
      intent: intent(n, { planId: `plan_${n}`, venue: 'pre' }),
      clientOrderId: `xh-${n}`,
      status: 'queued' as const,
    }));
    await ledger.recordPlan(legs, { actor: 'o' });
    const unsent = ['planned', 'queued'] as const;
    // a queued order: the precondition holds, the cancel is written
    const a = await ledger.transition('xh-501', 'cancelled', {
      actor: 'op',
      from: unsent,
      patch: { error: 'x' },
    });
    expect(a).toMatchObject({ changed: true, order: { status: 'cancelled', error: 'x' } });
    expect(a.unmet).toBeUndefined();
    // an order a worker has sent meanwhile: nothing written, no state machine error, unmet
    await ledger.transition('xh-502', 'sent', { actor: 'w' });
    await ledger.transition('xh-502', 'acknowledged', { actor: 'w', patch: { venueOrderId: 'v-1' } });
    const before = await ledger.orderEvents('xh-502');
    const b = await ledger.transition('xh-502', 'cancelled', {
      actor: 'op',
      from: unsent,
      patch: { error: 'y' },
    });
    expect(b).toMatchObject({
      changed: false,
      unmet: true,
      order: { status: 'acknowledged', venueOrderId: 'v-1' },
    });
    expect(await ledger.getOrder('xh-502')).toMatchObject({ status: 'acknowledged' });
    expect((await ledger.getOrder('xh-502'))?.error).toBeUndefined();
    expect(await ledger.orderEvents('xh-502')).toEqual(before);
    // a terminal order the state machine could not cancel: unmet as well, not an IllegalTransitionError
    await ledger.transition('xh-503', 'sent', { actor: 'w' });
    await ledger.transition('xh-503', 'filled', { actor: 'w', patch: { filledSizeBase: '1.5' } });
    expect(await ledger.transition('xh-503', 'cancelled', { actor: 'op', from: unsent })).toMatchObject({
      changed: false,
      unmet: true,
      order: { status: 'filled' },
    });
    // an order already in `to` is a replay, whatever `from` says
    const again = await ledger.transition('xh-501', 'cancelled', { actor: 'op', from: unsent });
    expect(again.changed).toBe(false);
    expect(again.unmet).toBeUndefined();
    // racing: of a conditional cancel and a send, whichever comes second finds the other's state
    await ledger.recordPlan(
      [
        {
          intent: intent(504, { planId: 'plan_504', venue: 'pre' }),
          clientOrderId: 'xh-504',
          status: 'queued',
        },
      ],
      { actor: 'o' },
    );
    const [c, s] = await Promise.all([
      ledger.transition('xh-504', 'cancelled', { actor: 'op', from: unsent }),
      ledger.recordSend('xh-504', { actor: 'w', atMs: 1 }),
    ]);
    const final = await ledger.getOrder('xh-504');
    if (s) expect([c.unmet, final?.status]).toEqual([true, 'sent']);
    else expect([c.changed, final?.status]).toEqual([true, 'cancelled']);
  });
});

describe.each(backends)('config documents on $name', ({ open }) => {
  it('keep the highest revision: an older value written late never replaces a newer one', async () => {
    const h = await open();
    try {
      const ledger = new Ledger(h, { clock: new ManualClock(1_000) });
      expect(await ledger.configDocument('venues')).toBeUndefined();
      const w = (revision: number, value: unknown) =>
        ledger.writeConfigDocument({
          name: 'venues',
          valueJson: JSON.stringify(value),
          revision,
          actor: 'alice',
          action: 'venue.disable',
        });
      expect((await w(0, [{ id: 'a', enabled: true }])).written).toBe(true);
      expect((await w(2, [{ id: 'a', enabled: false }])).written).toBe(true);
      // revision 1 arrives after 2 (two changes at once), and 2 again (a retry): neither is written
      const late = await w(1, [{ id: 'a', enabled: true }]);
      expect(late).toMatchObject({ written: false, current: { revision: 2 } });
      expect((await w(2, [{ id: 'b' }])).written).toBe(false);
      expect(await ledger.configDocument('venues')).toEqual({
        name: 'venues',
        valueJson: JSON.stringify([{ id: 'a', enabled: false }]),
        revision: 2,
        actor: 'alice',
        action: 'venue.disable',
        atMs: 1_000,
      });
      // many at once, out of order: the highest stays
      await Promise.all([7, 3, 9, 4, 8, 5].map((r) => w(r, { r })));
      expect(await ledger.configDocument('venues')).toMatchObject({ revision: 9, valueJson: '{"r":9}' });
      expect(await ledger.configDocument('policy')).toBeUndefined();
    } finally {
      await closeTestDb(h);
    }
  });

  it('with a base revision: written on the row at the base or below it, refused above it', async () => {
    const h = await open();
    try {
      const ledger = new Ledger(h, { clock: new ManualClock(1_000) });
      const w = (revision: number, baseRevision: number, value: unknown) =>
        ledger.writeConfigDocument({
          name: 'venues',
          valueJson: JSON.stringify(value),
          revision,
          baseRevision,
          actor: 'alice',
          action: 'venue.disable',
        });
      // no row: written
      expect((await w(10, 0, { r: 10 })).written).toBe(true);
      // made on the ledger's newest (10): written
      expect((await w(20, 10, { r: 20 })).written).toBe(true);
      // made on 10 again (Redis rolled back to 10 and the ledger not read first): refused, though higher
      const stale = await w(30, 10, { r: 30 });
      expect(stale).toMatchObject({ written: false, current: { revision: 20, valueJson: '{"r":20}' } });
      // two at once: 40 (on 20) and 50 (on 40); 50's write arrives first: written (40 has not landed),
      // then 40's is refused (the ledger holds 50, made on top of it)
      expect((await w(50, 40, { r: 50 })).written).toBe(true);
      expect(await w(40, 20, { r: 40 })).toMatchObject({ written: false, current: { revision: 50 } });
      // a retry of the same write: refused
      expect((await w(50, 40, { r: 50 })).written).toBe(false);
      expect(await ledger.configDocument('venues')).toMatchObject({ revision: 50, valueJson: '{"r":50}' });
      // many at once on the same base: one is written
      const many = await Promise.all([61, 62, 63, 64].map((r) => w(r, 50, { r })));
      expect(many.filter((x) => x.written)).toHaveLength(1);
      // a base that is not below the revision: refused naming it
      await expect(w(70, 70, {})).rejects.toThrow(
        /baseRevision: must be a whole number ≥ 0 below revision 70/,
      );
    } finally {
      await closeTestDb(h);
    }
  });

  it('refuses what it cannot store, naming the field and never the value', async () => {
    const h = await open();
    try {
      const ledger = new Ledger(h);
      const bad = ledger.writeConfigDocument({
        name: 'venues',
        valueJson: '{"rpc":"https://host/secret-key"',
        revision: -1,
        actor: 'a',
        action: 'x',
      });
      await expect(bad).rejects.toBeInstanceOf(ValidationError);
      const err = (await bad.catch((e: unknown) => e)) as ValidationError;
      expect(err.message).toMatch(/revision: must be a whole number/);
      expect(JSON.stringify(err.issues)).toMatch(/valueJson/);
      expect(`${err.message}${JSON.stringify(err)}`).not.toMatch(/secret-key/);
    } finally {
      await closeTestDb(h);
    }
  });
});

describe.each(backends)('newestRecordedMs on $name', ({ open }) => {
  it('is undefined for an empty ledger, then the newest time any row carries', async () => {
    const h = await open();
    try {
      expect(await newestRecordedMs(h)).toBeUndefined();
      const clock = new ManualClock(5_000);
      const ledger = new Ledger(h, { clock });
      await ledger.audit({ actor: 'operator:t', action: 'test' });
      expect(await newestRecordedMs(h)).toBe(5_000);
      // a risk snapshot stamped ahead of everything else (a simulated clock at 60×)
      await ledger.recordRiskSnapshot({ seq: 1, asOfMs: 7_200_000, snapshot: {} });
      clock.advance(1_000);
      await ledger.recordBreakerEvent({
        breaker: 'venue:x',
        fromState: 'closed',
        toState: 'open',
        reason: 't',
        details: {},
      });
      expect(await newestRecordedMs(h)).toBe(7_200_000);
      await ledger.recordKillSwitchEvent({
        scope: 'global',
        action: 'engage',
        actor: 'operator:t',
        reason: 't',
        allowRiskReducing: false,
        details: {},
        atMs: 9_000_000,
      });
      expect(await newestRecordedMs(h)).toBe(9_000_000);
    } finally {
      await closeTestDb(h);
    }
  });
});
