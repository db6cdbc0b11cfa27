import { randomBytes } from 'node:crypto';
import { BreakersConfig, LimitsConfig } from '@xhedge/config';
import { deterministicId, type HedgeIntent } from '@xhedge/core';
import {
  BreakerBoard,
  type ConnectionOptions,
  ExecutionService,
  KillSwitch,
  PreTradeControls,
  restoreControlState,
} from '@xhedge/execution';
import type { Ledger } from '@xhedge/store';
import type { Redis } from 'ioredis';

export const LIMITS = LimitsConfig.parse({
  maxOrderNotionalUsd: 1e7,
  maxHedgeNotionalPerWindowUsd: 1e12,
  staleAfterMs: 600_000,
  repeatedExecution: { maxExecutions: 100_000, windowSeconds: 60 },
});
export const BREAKERS = BreakersConfig.parse({ venue: { minRequests: 1_000_000 } });

export function newPrefix(tag: string): string {
  return `xhc${tag}${randomBytes(3).toString('hex')}`;
}

/**
 * The execution parts shared by the parent and worker children of one run, with the control state
 * restored from the ledger (what a run does at start: the order gate refuses every order before).
 */
export async function parts(o: {
  cmd: Redis;
  prefix: string;
  ledger: Ledger;
  connection: ConnectionOptions;
  breakers?: object;
}) {
  const controls = new PreTradeControls({
    redis: o.cmd,
    prefix: o.prefix,
    limits: LIMITS,
    selfCrossWindowMs: 1,
  });
  const breakers = new BreakerBoard({
    redis: o.cmd,
    prefix: o.prefix,
    config: BreakersConfig.parse(o.breakers ?? { venue: { minRequests: 1_000_000 } }),
    ledger: o.ledger,
  });
  const killSwitch = new KillSwitch({ redis: o.cmd, prefix: o.prefix, ledger: o.ledger });
  const base = {
    connection: o.connection,
    queuePrefix: o.prefix,
    ledger: o.ledger,
    controls,
    breakers,
    killSwitch,
  };
  await restoreControlState(
    { redis: o.cmd, prefix: o.prefix, killSwitch, breakers, ledger: o.ledger },
    { actor: 'chaos' },
  );
  return { ...base, service: new ExecutionService(base) };
}

export function intentFor(
  prefix: string,
  n: number,
  spot: number,
  over: Partial<HedgeIntent> = {},
): HedgeIntent {
  return {
    id: deterministicId('int', prefix, n),
    planId: deterministicId('plan', prefix, n),
    underlying: 'ETH',
    venue: 'pv',
    chain: 'solana:mainnet-beta',
    instrument: 'ETH-USD:PERP',
    // one direction: opposite sides from different plans in one window are (rightly) blocked as self-cross
    side: 'buy',
    sizeBase: '0.1',
    orderType: 'market',
    referencePriceUsd: spot,
    reduceOnly: false,
    urgency: n % 5 === 0 ? 'urgent' : 'normal',
    reason: 'chaos trial',
    createdAtMs: Date.now(),
    dependsOn: [],
    ...over,
  };
}
