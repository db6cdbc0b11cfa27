import { randomUUID } from 'node:crypto';
import { type BreakersConfig, ReduceOnlyPassesConfig } from '@xhedge/config';
import { type Clock, type HedgeIntent, median, parseOrThrow, systemClock, XhedgeError } from '@xhedge/core';
import type { Ledger } from '@xhedge/store';
import type { Redis } from 'ioredis';
import type { z } from 'zod';
import { keysFor } from './keys.ts';
import type { BreakerState, ExecutionMetrics } from './metrics.ts';

export type { BreakerState };

type BreakersCfg = z.infer<typeof BreakersConfig>;

export interface BreakerStatus {
  name: string;
  state: BreakerState;
  reason?: string;
  openedAtMs?: number;
  cooldownMs?: number;
}

export type BreakerGate =
  | {
      allowed: true /** Half-open trials this caller holds; report each with `reportTrial`. */;
      trials: Trial[];
    }
  | { allowed: false; breaker: string; state: BreakerState; reason: string };

export interface Trial {
  breaker: string;
  token: string;
}

/** What an operator reset did: the state it closed from, and the trip it closed (when not closed). */
export interface BreakerReset {
  name: string;
  from: BreakerState;
  closed?: { openedAtMs?: number; reason: string };
}

/**
 * A reset asked to close the trip that opened at `expectedOpenedAtMs` found a newer one in force (the
 * breaker tripped again since the caller looked): nothing changed. Code `BREAKER_RESET_CONFLICT`, a
 * conflict (HTTP 409): read the breaker again and decide on the trip in force.
 */
export class BreakerResetConflictError extends XhedgeError {
  override name = 'BreakerResetConflictError';
  /** The breaker as it is, with the trip in force. */
  readonly breaker: BreakerStatus;
  constructor(inForce: BreakerStatus, expectedOpenedAtMs: number) {
    const at = (ms: number | undefined) =>
      ms === undefined ? 'an unknown time' : new Date(ms).toISOString();
    super(
      'BREAKER_RESET_CONFLICT',
      `breaker ${inForce.name} NOT reset: it is ${inForce.state} since ${at(inForce.openedAtMs)} ("${(inForce.reason ?? '').slice(0, 200)}"), a newer trip than the one opened at ${at(expectedOpenedAtMs)}`,
      {
        details: {
          breaker: inForce.name,
          state: inForce.state,
          reason: inForce.reason ?? '',
          ...(inForce.openedAtMs !== undefined ? { openedAtMs: inForce.openedAtMs } : {}),
          expectedOpenedAtMs,
        },
        metaMessages: ['read the breaker again, and reset it once you have decided on the trip in force'],
      },
    );
    this.breaker = inForce;
  }
}

/**
 * The market breakers by kind, the second part of their name (`market:<kind>[:<underlying>]`): the ones a
 * reduce-only policy (`BreakerBoardOptions.reduceOnlyPasses`) can name.
 */
export const MARKET_BREAKER_KINDS = [
  'loss',
  'slippage',
  'price-shock',
  'price-dispersion',
  'stale-mark',
  'iv-shock',
  'skew-shock',
] as const;
export type MarketBreakerKind = (typeof MARKET_BREAKER_KINDS)[number];

/**
 * Whether a reduce-only order (`HedgeIntent.reduceOnly`: it can only shrink the position it trades at its
 * venue, taken as risk-reducing as the kill switch's `allowRiskReducing` takes it) goes past a market
 * breaker of this kind that is open or half-open, by default. The order then still passes every other
 * gate: the kill switch, the other breakers, and every pre-trade control (its limit price against its
 * reference price, and with market data wired in the venue's fresh mark against it and the expected
 * slippage on a fresh quote; notional; windows). The pass takes no half-open trial and moves no
 * breaker to half-open: a reduce-only order that went through says nothing about whether the breaker's
 * cause is gone (a loss breaker must not close because a reduce order filled), so the trial stays for
 * the next order that is not reduce-only. Every pass is in the gate's verdict, counted in
 * `xhedge_breaker_reduce_only_passes_total` and, for a send, audited as `breaker.reduce-only-pass`.
 *
 * Venue breakers (`venue:<id>`: errors, timeouts, latency of the venue itself) and chain breakers
 * (`chain:<id>`: the chain halted) block reduce-only orders too, and no policy changes that: the venue or
 * chain is what is broken, so a reduce-only order sent there is as likely to be lost, or to land late at a
 * price from before the halt, as any other, and it adds to the confusion a reconciliation must sort out.
 *
 * The defaults, by kind:
 * - `loss` (loss since the mark past `maxLossSinceMarkUsd`): passes. The breaker is a P&L limit, not a
 *   doubt about prices or plumbing: blocking reduce-only orders freezes the book at its worst while the
 *   loss grows, which is the very thing the breaker is for. The kill switch's `allowRiskReducing` makes
 *   the same call.
 * - `slippage` (our fills came in worse than their reference by more than `maxHedgeSlippageBps`): passes.
 *   Expensive liquidity, not a wrong price (stale and diverging prices have breakers of their own); each
 *   reduce-only order's cost stays bounded by its own limit price (and the `max-slippage` control on a
 *   fresh quote), and keeping the exposure because hedging it proved costly is the worse risk.
 * - `price-shock` (the underlying moved `priceShockPct` within its window): blocks. The gate prices an
 *   order against the reference price its intent was planned at (from before the move, for an intent
 *   queued before it) and against the venue's mark only when market data is wired in; a jump that size is
 *   also what a bad print looks like before the dispersion breaker sees it; and the planner plans again at
 *   the new price within a tick. An operator whose reduce orders are small against the venues' depth may
 *   let them through.
 * - `price-dispersion`, `stale-mark` (the reference price itself is in doubt): blocks. A reduce-only
 *   order's price band and limit price are computed from that price, so the gate could not tell a fair
 *   price from a wrong one.
 * - `iv-shock`, `skew-shock` (the vol surface option orders are priced from just jumped; they guard option
 *   orders only): blocks. The option's limit price comes from that surface, and vega hedges can wait.
 */
export const REDUCE_ONLY_PASSES: Readonly<Record<MarketBreakerKind, boolean>> = {
  loss: true,
  slippage: true,
  'price-shock': false,
  'price-dispersion': false,
  'stale-mark': false,
  'iv-shock': false,
  'skew-shock': false,
};

/** The options' reduce-only policy: market breaker kinds only (a venue or chain breaker is refused by name). */
export const ReduceOnlyPasses = ReduceOnlyPassesConfig;

/** A reduce-only order the gate let past a market breaker that was not closed (see `REDUCE_ONLY_PASSES`). */
export interface ReduceOnlyPass {
  breaker: string;
  /** The breaker's state when the order went past it. */
  state: 'open' | 'half-open';
  /** Why the breaker opened. */
  reason: string;
}

/** The market breaker kind of a breaker name, or undefined for a venue or chain breaker (or another name). */
export function marketBreakerKind(name: string): MarketBreakerKind | undefined {
  const [scope, kind] = name.split(':');
  if (scope !== 'market') return undefined;
  return MARKET_BREAKER_KINDS.find((k) => k === kind);
}

/**
 * Names of the breakers guarding one order. An option order is also stopped by its underlying's
 * implied-vol and skew shocks (vega hedges wait out a vol shock; delta hedges must not).
 */
export function breakersFor(o: {
  venue: string;
  chain: string;
  underlying: string;
  instrument?: string;
}): string[] {
  return [
    `venue:${o.venue}`,
    `chain:${o.chain}`,
    `market:price-shock:${o.underlying}`,
    `market:price-dispersion:${o.underlying}`,
    `market:slippage:${o.underlying}`,
    `market:stale-mark:${o.underlying}`,
    'market:loss',
    ...(o.instrument?.includes(':OPT:')
      ? [`market:iv-shock:${o.underlying}`, `market:skew-shock:${o.underlying}`]
      : []),
  ];
}

/**
 * Every breaker an order of a run with these venues and underlyings can consult (`breakersFor` over each
 * venue and underlying, option orders included), sorted: the names a manual trip may use.
 */
export function breakerNames(o: {
  venues: readonly { id: string; chain: string }[];
  underlyings: readonly string[];
}): string[] {
  const names = new Set<string>(['market:loss']);
  for (const v of o.venues)
    for (const u of o.underlyings)
      for (const n of breakersFor({
        venue: v.id,
        chain: v.chain,
        underlying: u,
        instrument: `${u}-USD:OPT:`,
      }))
        names.add(n);
  if (o.underlyings.length === 0)
    for (const v of o.venues) names.add(`venue:${v.id}`).add(`chain:${v.chain}`);
  return [...names].sort();
}

// Every script that opens or closes a breaker counts the change in its hash's \`rev\` (HINCRBY, in the
// same step) and returns it: the revision of the state it left. Half-open is no change of its own (it
// keeps the revision of the trip it came from; the order gate's script moves it too). \`#settle\` takes a
// higher revision than the one a process recorded as proof that the state Redis holds came after it.

/** How strict a state is: an order passes a closed breaker, one trial a half-open one, none an open one. */
const STRICTNESS: Record<BreakerState, number> = { closed: 0, 'half-open': 1, open: 2 };

// Returns {transitioned(0/1), from, to, rev} — trips when not already open.
const TRIP = `
local st = redis.call('HGET', KEYS[1], 'state') or 'closed'
if st == 'open' then return {0, st, st, 0} end
redis.call('HSET', KEYS[1], 'state', 'open', 'openedAt', ARGV[1], 'reason', ARGV[2], 'cooldownMs', ARGV[3])
local rev = redis.call('HINCRBY', KEYS[1], 'rev', 1)
redis.call('DEL', KEYS[2])
redis.call('SADD', KEYS[3], ARGV[4])
return {1, st, 'open', rev}`;

// Gate: {verdict, transitioned, reason, rev}. verdict: closed | trial | blocked-open | blocked-half-open
const ACQUIRE = `
local st = redis.call('HGET', KEYS[1], 'state')
if not st or st == 'closed' then return {'closed', 0, ''} end
local reason = redis.call('HGET', KEYS[1], 'reason') or ''
local moved = 0
if st == 'open' then
  local openedAt = tonumber(redis.call('HGET', KEYS[1], 'openedAt') or '0')
  local cd = tonumber(redis.call('HGET', KEYS[1], 'cooldownMs') or '0')
  if tonumber(ARGV[1]) < openedAt + cd then return {'blocked-open', 0, reason} end
  redis.call('HSET', KEYS[1], 'state', 'half-open')
  moved = 1
end
local rev = tonumber(redis.call('HGET', KEYS[1], 'rev') or '0') or 0
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then return {'trial', moved, reason, rev} end
return {'blocked-half-open', moved, reason, rev}`;

// Reports a half-open trial: success closes, failure re-opens. {transitioned, from, to, rev}
// KEYS: [1] breaker hash, [2] trial token, [3] [4] the venue's call and error windows (a venue breaker
// that closes starts from a clean window, in the same step: a call recorded in between must not re-trip
// it on the failures that opened it). ARGV: token, '1' success, now, reason, '1' clear the windows.
const REPORT = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return {0, '', ''} end
redis.call('DEL', KEYS[2])
local st = redis.call('HGET', KEYS[1], 'state') or 'closed'
if st ~= 'half-open' then return {0, st, st} end
if ARGV[2] == '1' then
  redis.call('HSET', KEYS[1], 'state', 'closed', 'reason', '')
  if ARGV[5] == '1' then redis.call('DEL', KEYS[3], KEYS[4]) end
  return {1, st, 'closed', redis.call('HINCRBY', KEYS[1], 'rev', 1)}
end
redis.call('HSET', KEYS[1], 'state', 'open', 'openedAt', ARGV[3], 'reason', ARGV[4])
return {1, st, 'open', redis.call('HINCRBY', KEYS[1], 'rev', 1)}`;

// Venue call outcome into rolling windows; trips the venue breaker, in the same step, when the error
// share is too high (a decision taken here and acted on later could open a breaker an operator closed
// meanwhile, or one that went half-open). {tripped(0/1), total, errors, from, reason, rev}
// KEYS: [1] calls, [2] errors, [3] the venue breaker's hash, [4] its trial token, [5] the breaker index.
// ARGV: [1] now, [2] window ms, [3] sample id, [4] '1' failed, [5] min requests, [6] error rate %,
// [7] cooldown ms, [8] breaker name. A half-open breaker is never tripped from the window: its trial
// decides (`reportTrial`), and the window still holds the failures that opened it. An open one stays as it is.
const VENUE_CALL = `
local now = tonumber(ARGV[1])
local from = now - tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[3])
if ARGV[4] == '1' then redis.call('ZADD', KEYS[2], now, ARGV[3]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. from)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. from)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
local total = redis.call('ZCARD', KEYS[1])
local errs = redis.call('ZCARD', KEYS[2])
local st = redis.call('HGET', KEYS[3], 'state') or 'closed'
if st ~= 'closed' then return {0, total, errs, st, '', 0} end
if total >= tonumber(ARGV[5]) and errs * 100 >= tonumber(ARGV[6]) * total then
  local reason = 'failure rate ' .. math.floor(errs * 100 / total + 0.5) .. '% ≥ ' .. ARGV[6] .. '%'
  redis.call('HSET', KEYS[3], 'state', 'open', 'openedAt', ARGV[1], 'reason', reason, 'cooldownMs', ARGV[7])
  local rev = redis.call('HINCRBY', KEYS[3], 'rev', 1)
  redis.call('DEL', KEYS[4])
  redis.call('SADD', KEYS[5], ARGV[8])
  return {1, total, errs, st, reason, rev}
end
return {0, total, errs, st, '', 0}`;

// Operator reset: closes the breaker in one step with reading it, so the state it records as closed is
// the one it closed. KEYS: [1] breaker hash, [2] trial token, [3] [4] the venue's windows. ARGV: [1] the
// openedAt the caller saw ('' for any), [2] '1' clear the windows. Returns {'conflict' | 'closed',
// from, openedAt, reason, cooldownMs, rev}: 'conflict' (nothing changed) when ARGV[1] is given and the
// breaker is not closed and opened at another time (a newer trip than the one the caller decided on).
const RESET = `
local h = redis.call('HMGET', KEYS[1], 'state', 'openedAt', 'reason', 'cooldownMs')
local st = h[1] or 'closed'
if ARGV[1] ~= '' and st ~= 'closed' and tonumber(h[2] or '') ~= tonumber(ARGV[1]) then
  return {'conflict', st, h[2] or '', h[3] or '', h[4] or '', 0}
end
redis.call('HSET', KEYS[1], 'state', 'closed', 'reason', '')
redis.call('DEL', KEYS[2])
local rev = 0
if st ~= 'closed' then
  rev = redis.call('HINCRBY', KEYS[1], 'rev', 1)
  if ARGV[2] == '1' then redis.call('DEL', KEYS[3], KEYS[4]) end
end
return {'closed', st, h[2] or '', h[3] or '', h[4] or '', rev}`;

// Samples over a window; returns {min, max} as strings. ARGV: [1] now, [2] window ms, [3] sample id,
// [4] value, [5] '1' when only positive values are samples (prices). Lua's tonumber reads 'nan' and
// 'inf': a value that is not a finite number (or not positive when asked) is never added, and one
// already in the window is skipped (a NaN would stick as the min or max, a 0 makes the range unmeasurable).
const PRICE = `
local positive = ARGV[5] == '1'
local function sample(p)
  return p ~= nil and p == p and p > -math.huge and p < math.huge and (p > 0 or not positive)
end
local now = tonumber(ARGV[1])
if sample(tonumber(ARGV[4])) then redis.call('ZADD', KEYS[1], now, ARGV[3] .. '|' .. ARGV[4]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[2])))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local lo, hi = nil, nil
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local p = tonumber(string.match(m, '|(.+)$'))
  if sample(p) then
    if lo == nil or p < lo then lo = p end
    if hi == nil or p > hi then hi = p end
  end
end
return {tostring(lo), tostring(hi)}`;

// A breaker the ledger last saw open, put back only if Redis holds nothing for it (never over a state
// written since, such as an operator's reset), or, on a server that lost data (ARGV[5] '1'), holds it
// closed: the trip was among the writes lost. KEYS: [1] breaker hash, [2] index. ARGV: openedAt,
// reason, cooldownMs, name, lost. Returns 1 when restored.
const RESTORE_OPEN = `
if redis.call('EXISTS', KEYS[1]) == 1 then
  if ARGV[5] ~= '1' or (redis.call('HGET', KEYS[1], 'state') or 'closed') ~= 'closed' then return 0 end
end
redis.call('HSET', KEYS[1], 'state', 'open', 'openedAt', ARGV[1], 'reason', ARGV[2], 'cooldownMs', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'rev', 1)
redis.call('SADD', KEYS[2], ARGV[4])
return 1`;

// Book equity observed: records it as the newest; marks the book at it when no mark is set.
// KEYS: [1] mark hash. ARGV: [1] equity, [2] now, [3] actor. Returns {marked(0/1), markUsd}.
const OBSERVE_EQUITY = `
redis.call('HSET', KEYS[1], 'lastEquityUsd', ARGV[1], 'lastAtMs', ARGV[2])
local m = redis.call('HGET', KEYS[1], 'markUsd')
if m then return {0, m} end
redis.call('HSET', KEYS[1], 'markUsd', ARGV[1], 'markedAtMs', ARGV[2], 'markedBy', ARGV[3],
  'reason', 'first equity observed without a mark')
return {1, ARGV[1]}`;

// Operator mark at the newest observed equity (or cleared, so the next observation marks).
// KEYS: [1] mark hash. ARGV: [1] now, [2] actor, [3] reason. Returns {markUsd or '', previous or ''}.
const MARK_AT_LAST = `
local prev = redis.call('HGET', KEYS[1], 'markUsd') or ''
local last = redis.call('HGET', KEYS[1], 'lastEquityUsd')
if not last then
  redis.call('HDEL', KEYS[1], 'markUsd', 'markedAtMs', 'markedBy', 'reason')
  return {'', prev}
end
redis.call('HSET', KEYS[1], 'markUsd', last, 'markedAtMs', ARGV[1], 'markedBy', ARGV[2], 'reason', ARGV[3])
return {last, prev}`;

/**
 * The book's mark: the equity the loss-since-mark breaker (`market:loss`) measures from, and the
 * newest equity observed. Held in Redis, so every process (the planner that observes, the API where an
 * operator re-marks) sees one.
 */
export interface BookMark {
  /** The equity at the mark, USD; absent until the first observation (or after a clear). */
  markUsd?: number;
  markedAtMs?: number;
  /** Who set it: `operator:<name>`, or the planner's actor for the automatic first mark. */
  markedBy?: string;
  reason?: string;
  /** The newest equity observed, USD, and when. */
  lastEquityUsd?: number;
  lastAtMs?: number;
  /** markUsd − lastEquityUsd: positive is a loss. */
  lossSinceMarkUsd?: number;
  /** The breaker's threshold, USD; absent when the loss breaker is off. */
  maxLossSinceMarkUsd?: number;
}

export interface BreakerBoardOptions {
  redis: Redis;
  /** Redis key prefix shared by every process of one deployment. */
  prefix: string;
  config: BreakersCfg;
  ledger?: Ledger;
  metrics?: ExecutionMetrics;
  clock?: Clock;
  /** How long a half-open trial holds its token before another may try, ms. @defaultValue 30000 */
  trialTtlMs?: number;
  /**
   * By market breaker kind, whether a reduce-only order goes past such a breaker while it is open or
   * half-open (`true`) or is blocked like any other (`false`). Kinds left out keep their default; venue
   * and chain breakers cannot be named (they always block). See `REDUCE_ONLY_PASSES` for the defaults and
   * why. @defaultValue `config.reduceOnlyPasses` (the profile's `breakers.reduceOnlyPasses`), else
   * REDUCE_ONLY_PASSES
   */
  reduceOnlyPasses?: Partial<Record<MarketBreakerKind, boolean>> | undefined;
}

/**
 * Circuit breakers whose state lives in Redis, so every worker and orchestrator process sees one
 * state. closed → open on a trip; open → half-open lazily once the cooldown has passed; in half-open
 * exactly one caller at a time gets the trial token (SET NX PX); its success closes, its failure
 * re-opens. Every transition is written to the ledger and counted in the metrics by the process
 * that caused it (transitions are decided inside Lua, each reading and writing the state in one step,
 * so exactly one process sees each, from the state it really left); a transition whose event may have
 * landed after a later one's is restated (see `#settle`).
 */
export class BreakerBoard {
  /** Redis key prefix (shared with the controls and the kill switch of one deployment). */
  readonly prefix: string;
  readonly #redis: Redis;
  readonly #keys: ReturnType<typeof keysFor>;
  readonly #cfg: BreakersCfg;
  readonly #ledger: Ledger | undefined;
  readonly #metrics: ExecutionMetrics | undefined;
  readonly #clock: Clock;
  readonly #trialTtlMs: number;
  readonly #reduceOnly: Readonly<Record<MarketBreakerKind, boolean>>;

  constructor(o: BreakerBoardOptions) {
    this.prefix = o.prefix;
    this.#redis = o.redis;
    this.#keys = keysFor(o.prefix);
    this.#cfg = o.config;
    this.#ledger = o.ledger;
    this.#metrics = o.metrics;
    this.#clock = o.clock ?? systemClock;
    this.#trialTtlMs = o.trialTtlMs ?? 30_000;
    const policy = parseOrThrow(
      ReduceOnlyPasses,
      o.reduceOnlyPasses ?? o.config.reduceOnlyPasses ?? {},
      'breakers reduceOnlyPasses',
    );
    const merged: Record<MarketBreakerKind, boolean> = { ...REDUCE_ONLY_PASSES };
    for (const k of MARKET_BREAKER_KINDS) {
      const v = policy[k];
      if (v !== undefined) merged[k] = v;
    }
    this.#reduceOnly = merged;
  }

  get config(): BreakersCfg {
    return this.#cfg;
  }

  /** How long a half-open trial token is held, ms. */
  get trialTtlMs(): number {
    return this.#trialTtlMs;
  }

  /** The reduce-only policy in force, by market breaker kind (`REDUCE_ONLY_PASSES` with the options over it). */
  get reduceOnlyPolicy(): Readonly<Record<MarketBreakerKind, boolean>> {
    return this.#reduceOnly;
  }

  /** Whether a reduce-only order goes past this breaker while it is open or half-open (never a venue or chain one). */
  reduceOnlyPasses(name: string): boolean {
    const kind = marketBreakerKind(name);
    return kind !== undefined && this.#reduceOnly[kind];
  }

  /**
   * The state hashes and trial-token keys of these breakers, and their reduce-only policy as one flag
   * per breaker (`'1'` passes, `'0'` blocks; see `reduceOnlyPasses`), for the combined gate script.
   */
  gateKeys(names: readonly string[]): { state: string[]; trial: string[]; reduceOnly: string } {
    return {
      state: names.map((n) => this.#keys.breaker(n)),
      trial: names.map((n) => this.#keys.breakerTrial(n)),
      reduceOnly: names.map((n) => (this.reduceOnlyPasses(n) ? '1' : '0')).join(''),
    };
  }

  /**
   * Counts reduce-only passes of a gate verdict in the metrics (`phase`: the gate before queueing or
   * right before a send). The order gate calls it for every verdict that let an order through.
   */
  countReduceOnlyPasses(passes: readonly ReduceOnlyPass[], phase: 'queue' | 'send'): void {
    for (const p of passes) this.#metrics?.breakerReduceOnlyPasses.inc({ breaker: p.breaker, phase });
  }

  /**
   * Writes the reduce-only passes of an order sent past open breakers to the audit log: one
   * `breaker.reduce-only-pass` entry per breaker (subject: the breaker). Without a ledger, nothing.
   */
  async auditReduceOnlyPasses(
    passes: readonly ReduceOnlyPass[],
    o: {
      actor: string;
      clientOrderId: string;
      intent: Pick<HedgeIntent, 'id' | 'venue' | 'instrument' | 'side' | 'sizeBase'>;
      resend?: boolean;
    },
  ): Promise<void> {
    for (const p of passes)
      await this.#ledger?.audit({
        actor: o.actor,
        action: 'breaker.reduce-only-pass',
        subject: p.breaker,
        details: {
          state: p.state,
          reason: p.reason,
          clientOrderId: o.clientOrderId,
          intentId: o.intent.id,
          venue: o.intent.venue,
          instrument: o.intent.instrument,
          side: o.intent.side,
          sizeBase: o.intent.sizeBase,
          ...(o.resend ? { resend: true } : {}),
        },
      });
  }

  /**
   * Writes a transition that a script decided atomically elsewhere (the combined gate moving an
   * elapsed open breaker to half-open) to the ledger and the metrics.
   */
  recordTransition(name: string, from: BreakerState, to: BreakerState, reason: string): Promise<void> {
    return this.#transitioned(name, from, to, reason, {});
  }

  /** Opens a breaker (idempotent). `cooldownMs` defaults to the venue cooldown. */
  async trip(name: string, reason: string, details: Record<string, unknown> = {}, cooldownMs?: number) {
    const now = this.#clock.nowMs();
    const cd = cooldownMs ?? this.#cfg.venue.cooldownSeconds * 1000;
    const [moved, from, , rev] = (await this.#redis.eval(
      TRIP,
      3,
      this.#keys.breaker(name),
      this.#keys.breakerTrial(name),
      this.#keys.breakerIndex,
      now,
      reason,
      cd,
      name,
    )) as [number, BreakerState, BreakerState, number];
    if (moved === 1)
      await this.#transitioned(
        name,
        from,
        'open',
        reason,
        { ...details, cooldownMs: cd, openedAtMs: now },
        rev,
      );
    return moved === 1;
  }

  /**
   * Puts back every breaker the ledger last saw `open` or `half-open` but Redis lost (a restart without
   * AOF, a failover): as `open` from the time it opened, with its cooldown (so one whose cooldown has
   * passed goes half-open at the next order, as it would have). A breaker Redis holds any state for is
   * left alone, except with `serverLostData` (the Redis server lost writes since the last restore: a
   * restart from an AOF or RDB missing the last ones, a failover to a replica that had not received
   * them): then one Redis holds `closed` is put back too. Its hash outlives a close, so a breaker that
   * had tripped and closed before keeps one, and a later trip that was lost leaves it `closed` while the
   * ledger, written after Redis, says open (the ledger records a close too, so its last word on a
   * breaker closed since is not `open`). Audited as `breaker.restore`; returns the names restored.
   * Without a ledger, none.
   */
  async restoreOpen(o: { actor: string; serverLostData?: boolean }): Promise<string[]> {
    if (!this.#ledger) return [];
    const restored: string[] = [];
    for (const ev of await this.#ledger.breakerStates()) {
      if (ev.toState !== 'open' && ev.toState !== 'half-open') continue;
      // the time it opened: this event for `open`, its open event for `half-open`
      const open =
        ev.toState === 'open'
          ? ev
          : ((await this.#ledger.listBreakerEvents({ breaker: ev.breaker, limit: 20 })).find(
              (e) => e.toState === 'open',
            ) ?? ev);
      const at = Number(open.details.openedAtMs);
      const openedAtMs = Number.isFinite(at) && at > 0 ? at : open.atMs;
      const cd = Number(open.details.cooldownMs);
      const cooldownMs = Number.isFinite(cd) && cd >= 0 ? cd : this.#cfg.venue.cooldownSeconds * 1000;
      const put = (await this.#redis.eval(
        RESTORE_OPEN,
        2,
        this.#keys.breaker(ev.breaker),
        this.#keys.breakerIndex,
        openedAtMs,
        ev.reason,
        cooldownMs,
        ev.breaker,
        o.serverLostData ? '1' : '0',
      )) as number;
      if (put !== 1) continue;
      restored.push(ev.breaker);
      this.#metrics?.breakerState.set({ breaker: ev.breaker }, 2);
      await this.#ledger.audit({
        actor: o.actor,
        action: 'breaker.restore',
        subject: ev.breaker,
        details: { reason: ev.reason, openedAtMs, cooldownMs, ledgerState: ev.toState },
      });
    }
    return restored;
  }

  /**
   * Operator reset: closes a breaker whatever its state, reading and closing it in one step (one
   * script), so the transition recorded (ledger, metrics) is from the state it really closed, with the
   * trip it closed (`closedOpenedAtMs`, `closedReason` in the event's details). A trip that lands
   * before that step is closed by it, and recorded so; one that lands after it opens the breaker again.
   * A half-open trial held meanwhile is void (its report finds its token gone). A venue breaker starts
   * from a clean window, in the same step.
   *
   * `ifOpenedAtMs`: close only the trip the operator decided on, the one that opened at that time (as
   * `status` shows it). A breaker that is open or half-open since another time (a newer trip) is left
   * as it is, and {@link BreakerResetConflictError} says which trip is in force. A closed breaker is
   * no conflict.
   * @returns the state it closed from, and the trip it closed when it was not closed
   */
  async reset(
    name: string,
    actor: string,
    reason: string,
    o: { ifOpenedAtMs?: number } = {},
  ): Promise<BreakerReset> {
    if (o.ifOpenedAtMs !== undefined && !Number.isFinite(o.ifOpenedAtMs))
      throw new RangeError(
        `breaker reset ${name}: ifOpenedAtMs must be a finite time in ms, got ${o.ifOpenedAtMs}`,
      );
    const venue = name.startsWith('venue:') ? name.slice('venue:'.length) : undefined;
    const res = (await this.#redis.eval(
      RESET,
      4,
      this.#keys.breaker(name),
      this.#keys.breakerTrial(name),
      // a breaker that is no venue's has no windows: its own keys stand in, never deleted
      venue === undefined ? this.#keys.breaker(name) : this.#keys.venueCalls(venue),
      venue === undefined ? this.#keys.breaker(name) : this.#keys.venueErrors(venue),
      o.ifOpenedAtMs === undefined ? '' : String(o.ifOpenedAtMs),
      venue === undefined ? '0' : '1',
    )) as [string, BreakerState, string, string, string, number];
    const [verdict, from, openedAt, tripReason, cooldown, rev] = res;
    const openedAtMs = openedAt === '' ? undefined : Number(openedAt);
    if (verdict === 'conflict') {
      const inForce: BreakerStatus = { name, state: from, reason: tripReason };
      if (openedAtMs !== undefined) inForce.openedAtMs = openedAtMs;
      if (cooldown !== '') inForce.cooldownMs = Number(cooldown);
      throw new BreakerResetConflictError(inForce, o.ifOpenedAtMs as number);
    }
    if (verdict !== 'closed')
      throw new Error(`breaker reset ${name}: unexpected script reply ${JSON.stringify(res)}`);
    if (from === 'closed') return { name, from };
    await this.#transitioned(
      name,
      from,
      'closed',
      reason,
      {
        actor,
        ...(openedAtMs !== undefined ? { closedOpenedAtMs: openedAtMs } : {}),
        closedReason: tripReason,
      },
      rev,
    );
    return {
      name,
      from,
      closed: { reason: tripReason, ...(openedAtMs !== undefined ? { openedAtMs } : {}) },
    };
  }

  /**
   * The gate right before an order is queued (`takeTrial: false`: half-open lets it queue) or sent
   * (`takeTrial: true`: half-open lets exactly one order through as the trial). The breakers alone, for
   * any order alike: the order gate (gate.ts) runs them in its own script, with the reduce-only policy.
   */
  async gate(names: readonly string[], opts: { takeTrial: boolean }): Promise<BreakerGate> {
    const trials: Trial[] = [];
    for (const name of names) {
      if (!opts.takeTrial) {
        const st = await this.status(name);
        if (st.state === 'open' && this.#clock.nowMs() < (st.openedAtMs ?? 0) + (st.cooldownMs ?? 0)) {
          return { allowed: false, breaker: name, state: 'open', reason: st.reason ?? '' };
        }
        continue;
      }
      const token = randomUUID();
      const [verdict, moved, reason, rev] = (await this.#redis.eval(
        ACQUIRE,
        2,
        this.#keys.breaker(name),
        this.#keys.breakerTrial(name),
        this.#clock.nowMs(),
        token,
        this.#trialTtlMs,
      )) as [string, number, string, number];
      if (moved === 1) await this.#transitioned(name, 'open', 'half-open', 'cooldown elapsed', {}, rev);
      if (verdict === 'trial') trials.push({ breaker: name, token });
      else if (verdict !== 'closed') {
        // hand back trials taken on earlier breakers: this order will not be sent
        for (const t of trials) await this.#redis.del(this.#keys.breakerTrial(t.breaker));
        return {
          allowed: false,
          breaker: name,
          state: verdict === 'blocked-open' ? 'open' : 'half-open',
          reason: reason || verdict,
        };
      }
    }
    return { allowed: true, trials };
  }

  /** Reports the outcome of a half-open trial: success closes the breaker, failure re-opens it. */
  async reportTrial(trial: Trial, success: boolean, reason = 'trial failed'): Promise<void> {
    const name = trial.breaker;
    const venue = name.startsWith('venue:') ? name.slice('venue:'.length) : undefined;
    const [moved, from, to, rev] = (await this.#redis.eval(
      REPORT,
      4,
      this.#keys.breaker(name),
      this.#keys.breakerTrial(name),
      // a breaker that is no venue's has no windows: its trial key stands in, never deleted here
      venue === undefined ? this.#keys.breakerTrial(name) : this.#keys.venueCalls(venue),
      venue === undefined ? this.#keys.breakerTrial(name) : this.#keys.venueErrors(venue),
      trial.token,
      success ? '1' : '0',
      this.#clock.nowMs(),
      reason,
      venue === undefined ? '0' : '1',
    )) as [number, BreakerState, BreakerState, number];
    if (moved === 1)
      await this.#transitioned(trial.breaker, from, to, success ? 'trial succeeded' : reason, {}, rev);
  }

  /** Gives a trial token back unused (the order was stopped by another check before it was sent). */
  async abandonTrial(trial: Trial): Promise<void> {
    await this.#redis.eval(
      "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
      1,
      this.#keys.breakerTrial(trial.breaker),
      trial.token,
    );
  }

  /**
   * Keeps half-open trial tokens held while their order is at the venue: every `trialTtlMs / 3` each
   * token this caller still holds gets a full `trialTtlMs` again (a token another caller holds now is
   * left alone). Without it, a send slower than `trialTtlMs` (a chain's confirmation, a keeper) lets
   * the token lapse and a second order goes as a trial while the first is still out. Returns the stop
   * function; renewals that fail are left to the token's own expiry (the next one tries again). Renewals
   * stop after `maxHoldMs` (a venue call that never returns does not hold the breaker for the life of
   * the process): the token then lapses `trialTtlMs` later. @defaultValue maxHoldMs 10 × trialTtlMs
   */
  holdTrials(trials: readonly Trial[], o: { maxHoldMs?: number } = {}): () => void {
    if (trials.length === 0) return () => {};
    const until = this.#clock.nowMs() + (o.maxHoldMs ?? 10 * this.#trialTtlMs);
    const renew = () => {
      if (this.#clock.nowMs() >= until) {
        clearInterval(timer);
        return;
      }
      for (const t of trials)
        this.#redis
          .eval(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0",
            1,
            this.#keys.breakerTrial(t.breaker),
            t.token,
            this.#trialTtlMs,
          )
          .catch(() => {});
    };
    const timer = setInterval(renew, Math.max(1, Math.floor(this.#trialTtlMs / 3)));
    timer.unref?.();
    return () => clearInterval(timer);
  }

  /**
   * One venue request's outcome. Errors, timeouts and calls slower than `latencyMs` count as
   * failures; the venue breaker trips when failures reach `errorRatePct` of at least `minRequests`
   * calls in the window. Not while it is half-open: its trial's report closes or re-opens it (the
   * trial order's own call, recorded before that report, would otherwise be one more sample beside the
   * failures that opened it, and re-open it however well the trial went).
   */
  async recordVenueCall(
    venue: string,
    o: { ok: boolean; timedOut?: boolean; latencyMs: number },
  ): Promise<void> {
    const v = this.#cfg.venue;
    const slow = o.latencyMs > v.latencyMs || o.latencyMs > v.timeoutMs;
    const failed = !o.ok || o.timedOut === true || slow;
    const now = this.#clock.nowMs();
    const name = `venue:${venue}`;
    const cd = v.cooldownSeconds * 1000;
    const [tripped, total, errs, from, reason, rev] = (await this.#redis.eval(
      VENUE_CALL,
      5,
      this.#keys.venueCalls(venue),
      this.#keys.venueErrors(venue),
      this.#keys.breaker(name),
      this.#keys.breakerTrial(name),
      this.#keys.breakerIndex,
      now,
      v.windowSeconds * 1000,
      `${now}:${randomUUID()}`,
      failed ? '1' : '0',
      v.minRequests,
      v.errorRatePct,
      cd,
      name,
    )) as [number, number, number, BreakerState, string, number];
    if (tripped === 1)
      await this.#transitioned(
        name,
        from,
        'open',
        reason,
        {
          total,
          failures: errs,
          lastTimedOut: o.timedOut === true,
          lastLatencyMs: o.latencyMs,
          cooldownMs: cd,
          openedAtMs: now,
        },
        rev,
      );
  }

  /**
   * Adds a sample to a rolling window in Redis (shared by every process) and returns its [min, max]
   * (NaN for an empty window). `positive`: only positive values are samples (prices).
   */
  async #rangeOver(
    key: string,
    windowSeconds: number,
    tsMs: number,
    value: number,
    positive = false,
  ): Promise<[number, number]> {
    const [lo, hi] = (await this.#redis.eval(
      PRICE,
      1,
      key,
      tsMs,
      windowSeconds * 1000,
      `${tsMs}:${randomUUID().slice(0, 8)}`,
      String(value),
      positive ? '1' : '0',
    )) as [string, string];
    return [Number(lo), Number(hi)];
  }

  /**
   * Price sample: trips `market:price-shock:<u>` when the range over the window exceeds `priceShockPct`.
   * @throws XhedgeError NUMERIC when the price is not a positive finite number (it is no sample: a NaN
   * in the window hid every move from the breaker, a 0 made the move unmeasurable)
   */
  async observePrice(underlying: string, priceUsd: number, tsMs = this.#clock.nowMs()): Promise<void> {
    if (!(priceUsd > 0 && Number.isFinite(priceUsd)))
      throw new XhedgeError(
        'NUMERIC',
        `${underlying} price sample must be a positive finite number of USD, got ${priceUsd}`,
        { details: { underlying, priceUsd } },
      );
    const m = this.#cfg.market;
    const [min, max] = await this.#rangeOver(
      this.#keys.prices(underlying),
      m.priceShockWindowSeconds,
      tsMs,
      priceUsd,
      true,
    );
    if (min > 0 && ((max - min) / min) * 100 >= m.priceShockPct) {
      await this.trip(
        `market:price-shock:${underlying}`,
        `price moved ${(((max - min) / min) * 100).toFixed(2)}% within ${m.priceShockWindowSeconds}s`,
        { minUsd: min, maxUsd: max },
        m.priceShockWindowSeconds * 1000,
      );
    }
  }

  /**
   * The venues' prices of one underlying at one time, USD by venue id: trips
   * `market:price-dispersion:<u>` when they spread wider than `maxPriceDispersionBps` of their median (a
   * wrong, stale or manipulated feed; the median the book is priced at is only as good as its inputs).
   * Fewer than two venues: nothing to compare. A price that is not positive and finite is left out and
   * named in the trip's details, never compared. Returns the spread, bps (0 with fewer than two prices).
   */
  async observeDispersion(
    underlying: string,
    pricesUsdByVenue: Readonly<Record<string, number>>,
  ): Promise<number> {
    const valid = Object.entries(pricesUsdByVenue).filter(([, p]) => p > 0 && Number.isFinite(p));
    if (valid.length < 2) return 0;
    valid.sort((a, b) => a[1] - b[1]);
    const mid = median(valid.map(([, p]) => p)) as number;
    const [loVenue, lo] = valid[0] as [string, number];
    const [hiVenue, hi] = valid[valid.length - 1] as [string, number];
    const spreadBps = ((hi - lo) / mid) * 10_000;
    const limit = this.#cfg.market.maxPriceDispersionBps;
    if (spreadBps >= limit) {
      const left = Object.keys(pricesUsdByVenue).filter((v) => !valid.some(([x]) => x === v));
      await this.trip(
        `market:price-dispersion:${underlying}`,
        `${underlying} prices spread ${spreadBps.toFixed(1)} bps ≥ ${limit} bps across venues: ${loVenue} ${lo}, ${hiVenue} ${hi} USD`,
        { pricesUsdByVenue, medianUsd: mid, ...(left.length ? { leftOut: left } : {}) },
      );
    }
    return spreadBps;
  }

  /**
   * Implied vol sample (decimal, e.g. the book's ATM vol each tick): trips `market:iv-shock:<u>` when
   * the range over `ivShockWindowSeconds` reaches `ivShockVolPoints` (one vol point = 0.01).
   */
  async observeIv(underlying: string, ivDecimal: number, tsMs = this.#clock.nowMs()): Promise<void> {
    if (!(ivDecimal > 0)) return;
    const m = this.#cfg.market;
    await this.#volPointShock(`market:iv-shock:${underlying}`, this.#keys.ivs(underlying), ivDecimal, tsMs, {
      what: 'implied vol',
      points: m.ivShockVolPoints,
      windowSeconds: m.ivShockWindowSeconds,
    });
  }

  /**
   * Skew sample (vol decimal: OTM puts' mean implied vol minus OTM calls', as the planner's `optionSkew`
   * measures it each tick): trips `market:skew-shock:<u>` when its range over `skewShockWindowSeconds`
   * reaches `skewShockVolPoints`.
   */
  async observeSkew(underlying: string, skewDecimal: number, tsMs = this.#clock.nowMs()): Promise<void> {
    const m = this.#cfg.market;
    await this.#volPointShock(
      `market:skew-shock:${underlying}`,
      this.#keys.skews(underlying),
      skewDecimal,
      tsMs,
      { what: 'skew', points: m.skewShockVolPoints, windowSeconds: m.skewShockWindowSeconds },
    );
  }

  /** A vol-decimal series in a rolling window: trips `breaker` when its range reaches `points` vol points. A value that is not finite is no sample. */
  async #volPointShock(
    breaker: string,
    key: string,
    valueDecimal: number,
    tsMs: number,
    o: { what: string; points: number; windowSeconds: number },
  ): Promise<void> {
    if (!Number.isFinite(valueDecimal)) return;
    const [lo, hi] = await this.#rangeOver(key, o.windowSeconds, tsMs, valueDecimal);
    const points = (hi - lo) * 100;
    if (points >= o.points)
      await this.trip(
        breaker,
        `${o.what} moved ${points.toFixed(1)} vol points within ${o.windowSeconds}s (${(lo * 100).toFixed(1)} to ${(hi * 100).toFixed(1)})`,
        { minDecimal: lo, maxDecimal: hi },
        o.windowSeconds * 1000,
      );
  }

  /** Realized hedge slippage vs the reference price, bps (positive = worse). */
  async observeSlippage(underlying: string, slippageBps: number, details: Record<string, unknown> = {}) {
    if (slippageBps > this.#cfg.market.maxHedgeSlippageBps) {
      await this.trip(
        `market:slippage:${underlying}`,
        `hedge slippage ${slippageBps.toFixed(1)} bps > ${this.#cfg.market.maxHedgeSlippageBps} bps`,
        details,
      );
    }
  }

  /**
   * Book equity, USD (risk's `bookEquity`, observed each planner tick): stored as the newest equity,
   * and measured against the mark; a loss beyond `maxLossSinceMarkUsd` trips `market:loss`. With no
   * mark yet, this equity becomes the mark (written to the audit log). Returns the loss since the mark.
   */
  async observeEquity(
    equityUsd: number,
    o: { atMs?: number; actor?: string } = {},
  ): Promise<{ markUsd: number; lossSinceMarkUsd: number; marked: boolean }> {
    if (!Number.isFinite(equityUsd)) throw new RangeError(`book equity must be finite, got ${equityUsd}`);
    const actor = o.actor ?? 'orchestrator';
    // Redis without a mark may have lost it (restart without AOF, failover): the ledger's mark wins
    // over marking afresh at today's equity, which would forget the loss so far (fail-open).
    if ((await this.#redis.hexists(this.#keys.bookMark, 'markUsd')) === 0) await this.#restoreMark();
    const [marked, mark] = (await this.#redis.eval(
      OBSERVE_EQUITY,
      1,
      this.#keys.bookMark,
      String(equityUsd),
      o.atMs ?? this.#clock.nowMs(),
      actor,
    )) as [number, string];
    const markUsd = Number(mark);
    if (marked === 1)
      await this.#ledger?.audit({
        actor,
        action: 'book-mark.set',
        subject: 'book',
        details: { markUsd, automatic: true, reason: 'first equity observed without a mark' },
      });
    const lossSinceMarkUsd = markUsd - equityUsd;
    this.#metrics?.bookEquityUsd.set(equityUsd);
    this.#metrics?.lossSinceMarkUsd.set(lossSinceMarkUsd);
    const limit = this.#cfg.market.maxLossSinceMarkUsd;
    if (limit !== undefined) this.#metrics?.lossLimitUsd.set(limit);
    await this.observeLossSinceMark(lossSinceMarkUsd);
    return { markUsd, lossSinceMarkUsd, marked: marked === 1 };
  }

  /**
   * Marks the book: at `equityUsd` when given, else at the newest equity observed (or, when none was
   * observed yet, at the next one). Written to the audit log. It does not close a tripped `market:loss`
   * breaker: the operator resets that one on its own, after deciding the loss is understood.
   */
  async setMark(o: { equityUsd?: number; actor: string; reason: string }): Promise<BookMark> {
    const now = this.#clock.nowMs();
    let markUsd: number | undefined;
    let previous: string;
    if (o.equityUsd !== undefined) {
      if (!Number.isFinite(o.equityUsd)) throw new RangeError(`equityUsd must be finite, got ${o.equityUsd}`);
      markUsd = o.equityUsd;
      previous = (await this.#redis.hget(this.#keys.bookMark, 'markUsd')) ?? '';
      await this.#redis.hset(this.#keys.bookMark, {
        markUsd: String(markUsd),
        markedAtMs: String(now),
        markedBy: o.actor,
        reason: o.reason,
      });
    } else {
      const [m, prev] = (await this.#redis.eval(
        MARK_AT_LAST,
        1,
        this.#keys.bookMark,
        now,
        o.actor,
        o.reason,
      )) as [string, string];
      if (m !== '') markUsd = Number(m);
      previous = prev;
    }
    await this.#ledger?.audit({
      actor: o.actor,
      action: 'book-mark.set',
      subject: 'book',
      details: {
        ...(markUsd === undefined ? { pending: 'marks at the next equity observed' } : { markUsd }),
        ...(previous !== '' ? { previousMarkUsd: Number(previous) } : {}),
        reason: o.reason,
      },
    });
    return this.bookMark();
  }

  /** Puts the ledger's last mark back into Redis (when the ledger's last word on it is a mark, not a clear). */
  async #restoreMark(): Promise<void> {
    if (!this.#ledger) return;
    const [set] = await this.#ledger.listAudit({ action: 'book-mark.set', limit: 1 });
    const [clear] = await this.#ledger.listAudit({ action: 'book-mark.clear', limit: 1 });
    if (!set || (clear && clear.id > set.id) || set.details.markUsd === undefined) return;
    const markUsd = Number(set.details.markUsd);
    if (!Number.isFinite(markUsd)) return;
    const reason = `restored from the ledger (marked by ${set.actor}: ${String(set.details.reason ?? '')})`;
    if ((await this.#redis.hsetnx(this.#keys.bookMark, 'markUsd', String(markUsd))) === 0) return;
    await this.#redis.hset(this.#keys.bookMark, {
      markedAtMs: String(set.atMs),
      markedBy: set.actor,
      reason,
    });
    await this.#ledger.audit({
      actor: 'breakers',
      action: 'book-mark.restore',
      subject: 'book',
      details: { markUsd, markedAtMs: set.atMs, markedBy: set.actor },
    });
  }

  /**
   * Forgets the mark and the newest equity (the next observation marks the book again), audited. For a
   * book that starts over: paper venues rebuilt from the profile on every start.
   */
  async clearMark(o: { actor: string; reason: string }): Promise<void> {
    const previous = await this.#redis.hget(this.#keys.bookMark, 'markUsd');
    await this.#redis.del(this.#keys.bookMark);
    // always audited: the ledger's last word decides whether a mark missing from Redis is restored
    await this.#ledger?.audit({
      actor: o.actor,
      action: 'book-mark.clear',
      subject: 'book',
      details: { ...(previous !== null ? { previousMarkUsd: Number(previous) } : {}), reason: o.reason },
    });
  }

  /** The mark, the newest equity and the loss between them. */
  async bookMark(): Promise<BookMark> {
    const h = await this.#redis.hgetall(this.#keys.bookMark);
    const m: BookMark = {};
    const num = (k: string) => (h[k] !== undefined && h[k] !== '' ? Number(h[k]) : undefined);
    const markUsd = num('markUsd');
    const lastEquityUsd = num('lastEquityUsd');
    if (markUsd !== undefined) {
      m.markUsd = markUsd;
      const at = num('markedAtMs');
      if (at !== undefined) m.markedAtMs = at;
      if (h.markedBy) m.markedBy = h.markedBy;
      if (h.reason) m.reason = h.reason;
    }
    if (lastEquityUsd !== undefined) {
      m.lastEquityUsd = lastEquityUsd;
      const at = num('lastAtMs');
      if (at !== undefined) m.lastAtMs = at;
    }
    if (markUsd !== undefined && lastEquityUsd !== undefined) m.lossSinceMarkUsd = markUsd - lastEquityUsd;
    const max = this.#cfg.market.maxLossSinceMarkUsd;
    if (max !== undefined) m.maxLossSinceMarkUsd = max;
    return m;
  }

  /** Loss since the operator's mark, USD (positive = loss). */
  async observeLossSinceMark(lossUsd: number): Promise<void> {
    const max = this.#cfg.market.maxLossSinceMarkUsd;
    if (max !== undefined && lossUsd > max) {
      await this.trip(
        'market:loss',
        `loss since mark ${lossUsd.toFixed(2)} USD > ${max} USD`,
        { lossUsd },
        86_400_000,
      );
    }
  }

  /** Age of the newest mark for an underlying, ms. */
  async observeMarkAge(underlying: string, ageMs: number): Promise<void> {
    if (ageMs > this.#cfg.market.staleMarkMs) {
      await this.trip(
        `market:stale-mark:${underlying}`,
        `marks ${ageMs} ms old > ${this.#cfg.market.staleMarkMs} ms`,
        {
          ageMs,
        },
      );
    }
  }

  /** Chain liveness from a venue's health probe. */
  async observeChain(chain: string, halted: boolean): Promise<void> {
    if (halted) await this.trip(`chain:${chain}`, 'chain halted (no blocks / trading paused)', {});
  }

  async status(name: string): Promise<BreakerStatus> {
    const h = await this.#redis.hgetall(this.#keys.breaker(name));
    const s: BreakerStatus = { name, state: (h.state as BreakerState | undefined) ?? 'closed' };
    if (h.reason) s.reason = h.reason;
    if (h.openedAt) s.openedAtMs = Number(h.openedAt);
    if (h.cooldownMs) s.cooldownMs = Number(h.cooldownMs);
    return s;
  }

  /**
   * Of `names`, those open and still cooling down now: an order they guard would be refused. One whose
   * cooldown has passed is not among them (its next order is the half-open trial that can close it), so
   * a router that avoids these never starves a breaker of its trial.
   */
  async coolingDown(names: readonly string[]): Promise<Set<string>> {
    const now = this.#clock.nowMs();
    const out = new Set<string>();
    for (const s of await Promise.all(names.map((n) => this.status(n)))) {
      if (s.state !== 'open') continue;
      if (s.openedAtMs === undefined || s.cooldownMs === undefined || now < s.openedAtMs + s.cooldownMs)
        out.add(s.name);
    }
    return out;
  }

  /** Every breaker that has ever tripped, with its current state. */
  async list(): Promise<BreakerStatus[]> {
    const names = (await this.#redis.smembers(this.#keys.breakerIndex)).sort();
    return Promise.all(names.map((n) => this.status(n)));
  }

  async #transitioned(
    name: string,
    from: BreakerState,
    to: BreakerState,
    reason: string,
    details: Record<string, unknown>,
    rev?: number,
  ): Promise<void> {
    // (A venue breaker that closes starts from a clean window: the failures that opened it would
    // otherwise re-trip it at its next call. The scripts that close it clear its windows in the same step.)
    this.#metrics?.breakerTransition(name, from, to);
    if (!this.#ledger) return;
    await this.#ledger.recordBreakerEvent({ breaker: name, fromState: from, toState: to, reason, details });
    // the transition is in force and recorded; the restatement only narrows a window (see #settle)
    await this.#settle(this.#ledger, name, to, rev).catch(() => {});
  }

  /**
   * Makes the ledger's last word on a breaker agree with Redis after this process recorded a transition
   * to `recorded` (at revision `rev` of its hash, see the scripts): the transitions are decided in Redis
   * in one order, but their ledger events are written afterwards by the processes that made them, and
   * may land in another (a reset's event after the event of a trip that followed it in Redis). While
   * Redis holds the breaker in another state, that state is written to the ledger again
   * (`details.restated`, with the trip's `openedAtMs` and `cooldownMs`), so `restoreOpen` after a loss
   * finds what Redis held. A stricter state (open over half-open over closed) is restated as it is; a
   * looser one only when the hash's revision is higher than the one recorded, which proves a change
   * made after ours (a reset after our trip). Otherwise Redis may have lost our change (a restart
   * missing the last writes, a failover) and holds an older state: a trip restated as closed after its
   * own open event would keep `restoreOpen({ serverLostData })` from putting it back, and trading
   * would resume. So, as a breaker Redis holds nothing for, it is left to the restore. A transition
   * recorded without its revision (the order gate's half-open) is never loosened. A few rounds at most.
   */
  async #settle(ledger: Ledger, name: string, recorded: BreakerState, rev?: number): Promise<void> {
    let last = recorded;
    let lastRev = rev !== undefined && Number.isFinite(rev) ? rev : Number.POSITIVE_INFINITY;
    for (let round = 0; round < 3; round++) {
      const h = await this.#redis.hgetall(this.#keys.breaker(name));
      const st = h.state as BreakerState | undefined;
      if (st === undefined || st === last || !Object.hasOwn(STRICTNESS, st)) return;
      const hRev = h.rev === undefined ? Number.NaN : Number(h.rev);
      const later = Number.isFinite(hRev) && hRev > lastRev;
      if (STRICTNESS[st] < STRICTNESS[last] && !later) return;
      const openedAtMs = Number(h.openedAt);
      const cooldownMs = Number(h.cooldownMs);
      await ledger.recordBreakerEvent({
        breaker: name,
        fromState: last,
        toState: st,
        reason: st === 'closed' ? 'closed (restated: recorded out of order)' : (h.reason ?? ''),
        details: {
          restated: true,
          ...(Number.isFinite(hRev) ? { rev: hRev } : {}),
          ...(st !== 'closed' && Number.isFinite(openedAtMs) ? { openedAtMs } : {}),
          ...(st !== 'closed' && Number.isFinite(cooldownMs) ? { cooldownMs } : {}),
        },
      });
      last = st;
      if (Number.isFinite(hRev)) lastRev = Math.max(lastRev, hRev);
    }
  }
}
