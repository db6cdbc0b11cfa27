import { Dec, TERMINAL_ORDER_STATUSES } from '@xhedge/core';
import { isVenueError, type OrderRequest } from '@xhedge/venue';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { PaperVenueKind } from './create.ts';
import { testVenue } from './testkit.ts';

const INSTRUMENT: Record<PaperVenueKind, string> = {
  'paper-gmx': 'ETH-USD:PERP',
  'paper-drift': 'ETH-USD:PERP',
  'paper-spot-amm': 'ETH-USDC:SPOT',
  'paper-lyra': '',
};

type Op =
  | {
      op: 'place';
      id: number;
      side: 'buy' | 'sell';
      lots: number;
      limitOffset: number | null;
      reduceOnly: boolean;
    }
  | { op: 'advance'; ms: number }
  | { op: 'cancel'; id: number }
  | { op: 'timeout' }
  | { op: 'partial' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    op: fc.constant('place' as const),
    id: fc.integer({ min: 0, max: 7 }),
    side: fc.constantFrom('buy' as const, 'sell' as const),
    lots: fc.integer({ min: 1, max: 40 }),
    limitOffset: fc.option(fc.double({ min: -0.02, max: 0.02, noNaN: true })),
    reduceOnly: fc.boolean(),
  }),
  fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 5_000 }) }),
  fc.record({ op: fc.constant('cancel' as const), id: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ op: fc.constant('timeout' as const) }),
  fc.record({ op: fc.constant('partial' as const) }),
);

describe('paper venue invariants under random order flow', () => {
  it.each(['paper-gmx', 'paper-drift', 'paper-spot-amm'] as const)(
    '%s: positions equal the sum of fills, orders never overfill, only typed errors',
    async (kind) => {
      await fc.assert(
        fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 40 }), async (ops) => {
          const { venue, advance, market } = testVenue(kind);
          const instrument = INSTRUMENT[kind];
          const [m] = (await venue.loadMarkets()).filter((x) => x.instrument.id === instrument);
          const step = new Dec(m?.sizeStepBase ?? '0.001');
          const seen = new Set<string>();
          for (const o of ops) {
            try {
              if (o.op === 'advance') await advance(o.ms);
              else if (o.op === 'timeout') venue.faults.timeoutNext({ fillDelayMs: 1500 });
              else if (o.op === 'partial') venue.faults.partialFillNext({ fraction: 0.5 });
              else if (o.op === 'cancel') await venue.cancelOrder(`m${o.id}`);
              else {
                const req: OrderRequest = {
                  clientOrderId: `m${o.id}`,
                  instrument,
                  side: o.side,
                  orderType: o.limitOffset === null ? 'market' : 'limit',
                  sizeBase: step.mul(o.lots * 10).toFixed(),
                  reduceOnly: o.reduceOnly,
                };
                if (o.limitOffset !== null)
                  req.limitPriceUsd = (market.spot('ETH') * (1 + o.limitOffset)).toFixed(2);
                await venue.placeOrder(req);
                seen.add(req.clientOrderId);
              }
            } catch (err) {
              // Every failure is a typed venue error (never a TypeError or a NaN).
              if (!isVenueError(err)) throw err;
            }
          }
          await advance(10_000);
          const fills = await venue.fetchFills();
          let net = new Dec(0);
          for (const f of fills) net = net.add(f.side === 'buy' ? f.sizeBase : `-${f.sizeBase}`);
          const pos = (await venue.fetchPositions()).find((p) => p.instrument === instrument)?.sizeBase ?? 0;
          expect(pos).toBeCloseTo(net.toNumber(), 9);
          for (const id of seen) {
            const order = await venue.getOrderByClientId(id);
            if (!order) continue;
            const sum = fills
              .filter((f) => f.clientOrderId === id)
              .reduce((a, f) => a.add(f.sizeBase), new Dec(0));
            expect(sum.eq(order.filledSizeBase)).toBe(true);
            expect(sum.lte(order.sizeBase)).toBe(true);
            if (order.status === 'filled') expect(sum.eq(order.sizeBase)).toBe(true);
            if (order.status === 'rejected') expect(sum.isZero()).toBe(true);
            if (order.status !== 'acknowledged') expect(TERMINAL_ORDER_STATUSES.has(order.status)).toBe(true);
          }
          for (const b of await venue.fetchBalances()) expect(Number.isFinite(b.amount)).toBe(true);
        }),
        { numRuns: 40, seed: 42 },
      );
    },
  );
});
