import { canTransition, type HedgeIntent, OrderStatus, TERMINAL_ORDER_STATUSES } from '@xhedge/core';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DatabaseHandle, openDatabase } from './database.ts';
import { IllegalTransitionError } from './errors.ts';
import { Ledger } from './ledger.ts';

/** Model of one order: its status and how many transitions the ledger should have recorded. */
interface Model {
  status: OrderStatus;
  events: number;
}
interface Real {
  ledger: Ledger;
  clientOrderId: string;
}

class TransitionCommand implements fc.AsyncCommand<Model, Real> {
  constructor(readonly to: OrderStatus) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const from = m.status;
    const allowed = canTransition(from, this.to);
    const replay = from === this.to && this.to !== 'partially-filled';
    try {
      const res = await r.ledger.transition(r.clientOrderId, this.to, { actor: 'prop' });
      expect(allowed || replay).toBe(true);
      expect(res.changed).toBe(!replay);
      if (!replay) {
        m.status = this.to;
        m.events += 1;
      }
    } catch (err) {
      expect(err).toBeInstanceOf(IllegalTransitionError);
      expect(allowed || replay).toBe(false);
    }
    const got = await r.ledger.getOrder(r.clientOrderId);
    expect(got?.status).toBe(m.status);
    expect((await r.ledger.orderEvents(r.clientOrderId)).length).toBe(m.events);
    if (TERMINAL_ORDER_STATUSES.has(m.status)) {
      // a terminal order never moves again, whatever is asked
      for (const s of OrderStatus.options) expect(canTransition(m.status, s)).toBe(false);
    }
  }
  toString(): string {
    return `→${this.to}`;
  }
}

describe('order state machine in the ledger (fast-check model-based)', () => {
  let h: DatabaseHandle;
  let ledger: Ledger;
  let n = 0;
  beforeAll(async () => {
    h = await openDatabase();
    ledger = new Ledger(h);
  });
  afterAll(async () => {
    await h.close();
  });

  it('accepts exactly the transitions of ORDER_TRANSITIONS, keeps history, never leaves a terminal state', async () => {
    const commands = OrderStatus.options.map((s) => fc.constant(new TransitionCommand(s)));
    await fc.assert(
      fc.asyncProperty(fc.commands(commands, { maxCommands: 25 }), async (cmds) => {
        n += 1;
        const id = `int_${String(n).padStart(24, '0')}`;
        const clientOrderId = `xh-prop-${n}`;
        const intent: HedgeIntent = {
          id,
          planId: 'plan_prop',
          underlying: 'BTC',
          venue: 'paper',
          chain: 'evm:1',
          instrument: 'BTC-USD:PERP',
          side: 'sell',
          sizeBase: '0.1',
          orderType: 'market',
          referencePriceUsd: 60_000,
          reduceOnly: false,
          urgency: 'normal',
          reason: 'property test',
          createdAtMs: n,
          dependsOn: [],
        };
        await ledger.recordIntent(intent, { clientOrderId, actor: 'prop' });
        await fc.asyncModelRun(
          () => ({ model: { status: 'planned' as OrderStatus, events: 1 }, real: { ledger, clientOrderId } }),
          cmds,
        );
      }),
      { numRuns: 40, seed: 20_251_124 },
    );
  });
});
