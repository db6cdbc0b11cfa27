import { randomBytes } from 'node:crypto';
import { type HedgeIntent, ManualClock, MS_PER_DAY, MS_PER_HOUR } from '@xhedge/core';
import { RiskEngine } from '@xhedge/risk';
import { type DatabaseHandle, Ledger, openDatabase, postgresReachable, TEST_PG_URL } from '@xhedge/store';
import { afterEach, describe, expect, it } from 'vitest';
import { pnlPort } from './ledger-ports.ts';

const open: Ledger[] = [];
const schemas: DatabaseHandle[] = [];
afterEach(async () => {
  // a throwaway Postgres schema is dropped while its pool is still open
  for (const h of schemas.splice(0)) await h.dropSchema();
  for (const l of open.splice(0)) await l.close();
});

/** PGlite (what a run uses with no setup), and the test Postgres in a throwaway schema when it answers. */
const pgOk = await postgresReachable();
if (!pgOk) console.warn(`[ledger-ports tests] Postgres at ${TEST_PG_URL} not reachable: PGlite only`);
const databases: [string, () => Promise<DatabaseHandle>][] = [
  ['pglite', () => openDatabase({})],
  ...(pgOk
    ? [
        [
          'postgres',
          async () => {
            const h = await openDatabase({
              url: TEST_PG_URL,
              schema: `t_${randomBytes(6).toString('hex')}`,
              poolSize: 4,
            });
            schemas.push(h);
            return h;
          },
        ] as [string, () => Promise<DatabaseHandle>],
      ]
    : []),
];

async function ledgerOn(db: () => Promise<DatabaseHandle>): Promise<Ledger> {
  const l = new Ledger(await db());
  open.push(l);
  return l;
}

/** A hedge fill on record with the intent it filled (underlying BTC, planned at `referencePriceUsd`). */
async function recordFill(
  led: Ledger,
  id: string,
  f: {
    tsMs: number;
    side: 'buy' | 'sell';
    sizeBase: string;
    priceUsd: string;
    referencePriceUsd: number;
    feeUsd: number;
    gasUsd: number;
  },
): Promise<void> {
  const leg: HedgeIntent = {
    id: `int_${id.padEnd(24, 'x')}`,
    planId: `plan_${id}`,
    underlying: 'BTC',
    venue: 'gmx-arb',
    chain: 'evm:42161',
    instrument: 'BTC-USD:PERP',
    side: f.side,
    sizeBase: f.sizeBase,
    orderType: 'market',
    referencePriceUsd: f.referencePriceUsd,
    reduceOnly: false,
    urgency: 'normal',
    reason: 'delta drifted',
    createdAtMs: f.tsMs,
    dependsOn: [],
  };
  await led.recordPlan([{ intent: leg, clientOrderId: `xh-${id}`, status: 'queued' }], { actor: 'o' });
  await led.recordFill({
    fillId: `f-${id}`,
    clientOrderId: `xh-${id}`,
    venue: 'gmx-arb',
    instrument: 'BTC-USD:PERP',
    side: f.side,
    sizeBase: f.sizeBase,
    priceUsd: f.priceUsd,
    feeUsd: f.feeUsd,
    gasUsd: f.gasUsd,
    tsMs: f.tsMs,
  });
}

// The auditor's book: short 10 ATM BTC calls with a day left, BTC 100,000, vol 60%, rate 0.
const EXPIRY = Date.UTC(2026, 2, 2, 8);
const T0 = EXPIRY - MS_PER_DAY;
const CALL = 'BTC-USD:OPT:20260302:100000:C';

/** The risk engine's snapshots of the short calls, hourly for 30 days, with the book's equity (premium in cash). */
async function storeShortCalls(led: Ledger): Promise<number> {
  const clock = new ManualClock(T0);
  const engine = new RiskEngine({ clock });
  engine.setBook({
    positions: [{ venue: 'lyra-arb', chain: 'evm:42161', instrument: CALL, sizeBase: -10, asOfMs: T0 }],
  });
  let premiumUsd = 0;
  for (let h = 0; h <= 30 * 24; h++) {
    const at = T0 + h * MS_PER_HOUR;
    clock.set(at);
    engine.setMarket('BTC', { spotUsd: 100_000, volDecimal: 0.6, rateDecimal: 0, asOfMs: at });
    const s = engine.snapshot({ scenarios: false });
    const value = s.underlyings.BTC?.valueUsd ?? Number.NaN;
    if (h === 0) premiumUsd = -value;
    await led.recordRiskSnapshot({
      seq: s.seq,
      asOfMs: at,
      snapshot: { ...s, bookEquityUsd: premiumUsd + value },
    });
  }
  return premiumUsd;
}

describe.each(databases)('P&L attribution over the ledger (%s)', (_name, db) => {
  it("the auditor's repro: 30 days over a short call with a day left earns at most its premium in theta", async () => {
    const led = await ledgerOn(db);
    const premiumUsd = await storeShortCalls(led);
    expect(premiumUsd).toBeCloseTo(12_528, -1);
    const range = { fromMs: T0, toMs: T0 + 30 * MS_PER_DAY };
    // every one of the 721 snapshots; the first one's θ over 30 days said 187,911 USD
    const all = await pnlPort(led, { maxIntervals: 720 }).attribution(range);
    const theta = all.byUnderlying.BTC?.thetaUsd ?? Number.NaN;
    expect(theta).toBeLessThanOrEqual(premiumUsd);
    expect(theta).toBeGreaterThan(0.85 * premiumUsd);
    expect(all).toMatchObject({ snapshots: 721, intervals: 720, sampled: false, fromSeq: 1, toSeq: 721 });
    // equity rose by the premium (spot at the strike: the calls expire worthless); the rest is residual
    expect(all.actualUsd).toBeCloseTo(premiumUsd, 6);
    expect(all.unexplainedUsd).toBeCloseTo(premiumUsd - all.totalUsd, 9);

    // sampled to 24 steps of 30 h: the expiry, 24 h in, gets the snapshots either side of it
    const sampled = await pnlPort(led, { maxIntervals: 24, samplingBudgetMs: 60_000 }).attribution(range);
    expect(sampled.sampled).toBe(true);
    expect(sampled.snapshots).toBe(24 + 1 + 2);
    expect(sampled.sampling).toMatch(/each option expiry/);
    const t = sampled.byUnderlying.BTC?.thetaUsd ?? Number.NaN;
    expect(t).toBeLessThanOrEqual(premiumUsd);
    // 23 h at the first θ, then the last hour's θ for its hour: 0.48 + 0.10 of the premium
    expect(t).toBeGreaterThan(0.5 * premiumUsd);
    expect(sampled.unexplainedUsd).toBeCloseTo(premiumUsd - sampled.totalUsd, 9);
  });

  it('sums the intervals between every snapshot of the range, each from its own Greeks, with its fills', async () => {
    const led = await ledgerOn(db);
    const H = MS_PER_HOUR;
    const t0 = Date.UTC(2026, 4, 1);
    const btc = (
      spotUsd: number,
      volDecimal: number,
      delta: number,
      gamma: number,
      vegaPerVolPoint: number,
      thetaPerDay: number,
      fundingUsdPerHour: number,
    ) => ({
      spotUsd,
      volDecimal,
      delta,
      gamma,
      vegaPerVolPoint,
      thetaPerDay,
      fundingUsdPerHour,
      vegaByExpiry: {},
    });
    const snaps = [
      { at: 0, btc: btc(100, 0.5, 2, 0.1, 10, -24, -1), equity: 1000 },
      { at: 6 * H, btc: btc(102, 0.52, 1, 0.05, 8, -12, 2) },
      { at: 12 * H, btc: btc(99, 0.5, -1, 0.2, 5, -48, 0) },
      { at: 24 * H, btc: btc(100, 0.55, 0, 0, 0, 0, 0), equity: 1005 },
    ];
    for (const [i, s] of snaps.entries())
      await led.recordRiskSnapshot({
        seq: i + 1,
        asOfMs: t0 + s.at,
        snapshot: {
          seq: i + 1,
          asOfMs: t0 + s.at,
          underlyings: { BTC: s.btc },
          ...(s.equity !== undefined ? { bookEquityUsd: s.equity } : {}),
        },
      });
    const fill = { side: 'buy' as const, sizeBase: '1', referencePriceUsd: 102, feeUsd: 0.3 };
    await recordFill(led, 'a', { ...fill, priceUsd: '102.5', gasUsd: 0.1, tsMs: t0 + 7 * H });
    await recordFill(led, 'b', { ...fill, priceUsd: '102', gasUsd: 0, tsMs: t0 + 24 * H });

    const pnl = await pnlPort(led).attribution({ fromMs: t0, toMs: t0 + 24 * H });
    // by hand, interval by interval (6 h, 6 h, 12 h):
    //   delta 2·2 + 1·(−3) + (−1)·1 = 0;  gamma ½·0.1·4 + ½·0.05·9 + ½·0.2·1 = 0.525
    //   theta −24/4 − 12/4 − 48/2 = −33;  vega 10·2 + 8·(−2) + 5·5 = 29;  funding −6 + 12 + 0 = 6
    //   fees −0.6, slippage −0.5 (bought 0.5 above plan), gas −0.1
    const explained = 0.525 - 33 + 29 + 6 - 0.6 - 0.5 - 0.1;
    const b = pnl.byUnderlying.BTC;
    expect(b?.deltaUsd).toBeCloseTo(0, 9);
    expect(b?.gammaUsd).toBeCloseTo(0.525, 9);
    expect(b?.thetaUsd).toBeCloseTo(-33, 9);
    expect(b?.vegaUsd).toBeCloseTo(29, 9);
    expect(b?.fundingUsd).toBeCloseTo(6, 9);
    expect(b?.feesUsd).toBeCloseTo(-0.6, 9);
    expect(b?.slippageUsd).toBeCloseTo(-0.5, 9);
    expect(b?.gasUsd).toBeCloseTo(-0.1, 9);
    expect(pnl.totalUsd).toBeCloseTo(explained, 9);
    expect(b?.intervals).toBe(3);
    expect(pnl).toMatchObject({ snapshots: 4, intervals: 3, sampled: false, fromSeq: 1, toSeq: 4 });
    // the residual: the book equity's change from the first snapshot to the last, minus the explained
    expect(pnl.actualUsd).toBe(5);
    expect(pnl.unexplainedUsd).toBeCloseTo(5 - explained, 9);
    expect(pnl.residual).toMatch(/actual change of the book equity/);

    // one underlying: book equity is not split by underlying, so no residual, said so
    const one = await pnlPort(led).attribution({ fromMs: t0, toMs: t0 + 24 * H, underlying: 'BTC' });
    expect(one.totalUsd).toBeCloseTo(explained, 9);
    expect(one.unexplainedUsd).toBeUndefined();
    expect(one.residual).toMatch(/not known for one underlying/);
    // without equity at an end: explained, no residual, and why
    const part = await pnlPort(led).attribution({ fromMs: t0, toMs: t0 + 12 * H });
    expect(part.intervals).toBe(2);
    expect(part.unexplainedUsd).toBeUndefined();
    expect(part.residual).toMatch(/no book equity .* seq 3/);
  });

  it('a long range reads a bounded sample of its snapshots; delta P&L still adds up to the whole move', async () => {
    const led = await ledgerOn(db);
    // 5,000 snapshots 5 s apart (the paper profile's rate); BTC long 1, spot up 1 cent a snapshot
    const n = 5000;
    const t0 = Date.UTC(2026, 4, 1);
    for (let from = 1; from <= n; from += 1000) {
      const rows = [];
      for (let seq = from; seq < Math.min(from + 1000, n + 1); seq++) {
        const snapshot = {
          seq,
          asOfMs: t0 + seq * 5_000,
          underlyings: {
            BTC: {
              spotUsd: 100 + seq * 0.01,
              volDecimal: 0.5,
              delta: 1,
              gamma: 0,
              vegaPerVolPoint: 0,
              thetaPerDay: 0,
              fundingUsdPerHour: 0,
            },
          },
        };
        rows.push({ seq, as_of_ms: snapshot.asOfMs, snapshot: JSON.stringify(snapshot) });
      }
      await led.db.insertInto('risk_snapshots').values(rows).execute();
    }
    const pnl = await pnlPort(led, { maxIntervals: 50, samplingBudgetMs: 60_000 }).attribution({
      fromMs: t0,
      toMs: t0 + (n + 1) * 5_000,
    });
    expect(pnl.sampled).toBe(true);
    expect(pnl.snapshots).toBe(51);
    expect([pnl.fromSeq, pnl.toSeq]).toEqual([1, n]);
    expect(pnl.byUnderlying.BTC?.deltaUsd).toBeCloseTo((n - 1) * 0.01, 9);
    // out of time before a single step: the first and last only, said so, still whole
    const rushed = await pnlPort(led, { maxIntervals: 50, samplingBudgetMs: 1e-6 }).attribution({
      fromMs: t0,
      toMs: t0 + (n + 1) * 5_000,
    });
    expect(rushed.snapshots).toBe(2);
    expect(rushed.sampling).toMatch(/budget: 0 of the 49 step starts read/);
    expect(rushed.byUnderlying.BTC?.deltaUsd).toBeCloseTo((n - 1) * 0.01, 9);
  });

  it('nothing to attribute with no snapshot or one in the range: zeros and a note, no NaN', async () => {
    const led = await ledgerOn(db);
    const t0 = Date.UTC(2026, 4, 1);
    const port = pnlPort(led);
    const none = await port.attribution({ fromMs: t0, toMs: t0 + MS_PER_DAY });
    expect(none).toMatchObject({ totalUsd: 0, byUnderlying: {}, intervals: 0, fromSeq: null, toSeq: null });
    expect(none.note).toBe('nothing to attribute: no risk snapshot between fromMs and toMs');
    await led.recordRiskSnapshot({
      seq: 7,
      asOfMs: t0 + 1000,
      snapshot: {
        seq: 7,
        asOfMs: t0 + 1000,
        underlyings: {
          BTC: {
            spotUsd: 1,
            volDecimal: 1,
            delta: 1,
            gamma: 0,
            vegaPerVolPoint: 0,
            thetaPerDay: 5,
            fundingUsdPerHour: 0,
          },
        },
        bookEquityUsd: 10,
      },
    });
    const single = await port.attribution({ fromMs: t0, toMs: t0 + MS_PER_DAY });
    expect(single).toMatchObject({
      totalUsd: 0,
      byUnderlying: {},
      intervals: 0,
      snapshots: 1,
      fromSeq: 7,
      toSeq: 7,
    });
    expect(single.note).toMatch(/^nothing to attribute: one risk snapshot \(seq 7\)/);
    for (const v of [none, single])
      for (const [k, x] of Object.entries(v))
        if (typeof x === 'number') expect(Number.isFinite(x), k).toBe(true);
    await expect(port.attribution({ fromMs: t0 + 1, toMs: t0 })).rejects.toMatchObject({
      code: 'VALIDATION',
    });
  });
});
