import { capFor, type LimitsConfig } from '@xhedge/config';
import {
  type Clock,
  type HedgeIntent,
  OPEN_ORDER_STATUSES,
  parseInstrumentId,
  systemClock,
  TERMINAL_ORDER_STATUSES,
} from '@xhedge/core';
import type { Ledger } from '@xhedge/store';
import type { Redis } from 'ioredis';
import type { z } from 'zod';
import { keysFor } from './keys.ts';

type Limits = z.infer<typeof LimitsConfig>;

export type ControlName =
  | 'max-order-notional'
  | 'window-notional-underlying'
  | 'window-notional-venue'
  | 'price-band'
  | 'stale-data'
  | 'crossed-market'
  | 'max-slippage'
  | 'position-limit'
  | 'venue-exposure'
  | 'total-exposure'
  | 'net-delta'
  | 'repeated-execution'
  | 'self-cross'
  | 'kill-switch'
  | 'breaker';

export type ControlResult = { ok: true } | { ok: false; control: ControlName; reason: string };

/** Fresh market facts for the checks. Absent fields skip the checks that need them. */
export interface ControlContext {
  /**
   * Current mark of the instrument, USD per unit, and its time; with the venue's best bid and ask when
   * it quotes them (a crossed quote, bid above ask, blocks the order: `crossed-market`).
   */
  mark?: { priceUsd: number; asOfMs: number; bidUsd?: number; askUsd?: number };
  /**
   * The source reads marks, and the order's venue gave none for its instrument (left it out of its
   * answer): the order is blocked as `stale-data`, as a mark infinitely old would be, reduce-only or
   * not (the mark is what the price band, the crossed-quote and the age checks need, and a reduce-only
   * order is priced from it too; see `REDUCE_ONLY_PASSES` on `stale-mark`). Without it, an absent
   * `mark` means no market-data source reads marks, and those checks are skipped.
   */
  markMissing?: true;
  /**
   * Current signed position in the underlying across venues, linear instruments only (perps, futures,
   * spot), underlying units: what `limits.maxPositionBase` caps. Option orders do not move it.
   */
  positionBase?: number;
  /** Expected average execution price from a quote, USD per unit. */
  expectedPriceUsd?: number;
  /**
   * What the order's venue holds (linear instruments): its signed position in the order's instrument,
   * underlying units, and the notional of its other positions there, USD (→ venue-exposure check).
   */
  venueExposure?: { instrumentSizeBase: number; otherNotionalUsd: number };
  /** The same across every venue: the order venue's position in the instrument, all other positions' notional. */
  totalExposure?: { instrumentSizeBase: number; otherNotionalUsd: number };
  /**
   * When a leg that waited for dependencies (legs it depends on, a collateral transfer) could go:
   * the time the last of them completed, run-clock ms. The decision-age check measures from the later
   * of this and the intent's `createdAtMs`, so a leg is not cancelled for the time it spent waiting
   * for a slow bridge; the mark's own age and the price band against the intent's reference price
   * still guard against a market that moved meanwhile.
   */
  decisionAsOfMs?: number;
}

/**
 * A plan's effect on the book's net delta, as the planner saw the book when it decided (the input of the
 * `net-delta` check). Delta in underlying units, USD numéraire: options at their delta, perps, futures
 * and spot at ±size.
 */
export interface PlanNetDelta {
  underlying: string;
  /** The book's net delta before the plan. */
  bookDeltaBase: number;
  /** What the plan's legs add together, signed. */
  planDeltaBase: number;
  /** Spot the delta is valued at, USD per unit. */
  spotUsd: number;
}

/** Facts the checks need, from the venues or a market-data service. */
export interface MarketDataSource {
  context(intent: HedgeIntent): Promise<ControlContext>;
  /** Called after an order on `venue` traded, so cached positions are refetched. */
  invalidatePositions?(venue: string): void;
}

// Rolling-window notional (per underlying and per venue), repeated-execution count, self-cross and the
// position limit with the orders in flight, checked and reserved atomically. An intent is reserved
// once (idempotent per intent id: a re-check before send or after a retry never counts it twice).
// Notional windows are sorted sets of `<id>|<notionalUsd>` with a running total per set (field
// `#total|<key>` of the notional hash), so a check costs O(expired members), not O(members). A Lua
// function so the combined order gate (gate.ts) runs the same code in its one script. K: the six keys
// of `windowKeys`; A: the 16 values of `windowArgs`. Returns {'ok', ''} or {control, detail}.
// Position limit: a live intent (the self-cross set) on a linear instrument keeps its signed size in
// field `#pos|<id>` of the side-info hash until it ends; the positions the venues report do not hold
// it yet (a partly filled one counts whole until it ends: the safe side). The order is checked against
// the reported position plus the live intents on its own side (those on the other side may still
// fail, so they make no room), by the rule `checkOrder` applies to the position alone.
export const WINDOW_FN = `
local function window(K, A)
  local id, now = A[1], tonumber(A[2])
  local function trimNotional(z, windowMs)
    local old = redis.call('ZRANGEBYSCORE', z, '-inf', '(' .. (now - windowMs))
    for _, m in ipairs(old) do
      redis.call('ZREM', z, m)
      redis.call('HINCRBYFLOAT', K[3], '#total|' .. z, -tonumber(string.match(m, '|([^|]*)$') or '0'))
      local mid = string.match(m, '^([^|]*)|')
      if mid and redis.call('HGET', K[3], mid) then redis.call('HDEL', K[3], mid) end
    end
    -- an empty window restarts its total at zero (no float drift carried over)
    if redis.call('ZCARD', z) == 0 then redis.call('HDEL', K[3], '#total|' .. z) end
  end
  local function trim(z, windowMs)
    local old = redis.call('ZRANGEBYSCORE', z, '-inf', '(' .. (now - windowMs))
    for _, m in ipairs(old) do redis.call('ZREM', z, m) end
    return old
  end
  local mine = redis.call('HGET', K[3], id)
  local function sum(z)
    local s = tonumber(redis.call('HGET', K[3], '#total|' .. z) or '0')
    if mine and redis.call('ZSCORE', z, id .. '|' .. mine) then s = s - tonumber(mine) end
    return s
  end
  local win = tonumber(A[3])
  trimNotional(K[1], win)
  trimNotional(K[2], win)
  mine = redis.call('HGET', K[3], id)
  local notional = tonumber(A[4])
  local maxWin = tonumber(A[5])
  local su = sum(K[1]) + notional
  if su > maxWin then return {'window-notional-underlying', tostring(su)} end
  local sv = sum(K[2]) + notional
  if sv > maxWin then return {'window-notional-venue', tostring(sv)} end
  trim(K[4], tonumber(A[6]))
  local n = redis.call('ZCARD', K[4])
  if redis.call('ZSCORE', K[4], id) then n = n - 1 end
  if n + 1 > tonumber(A[7]) then return {'repeated-execution', tostring(n + 1)} end
  -- self-cross: another intent still live (reserved, not settled) on the other side of the same
  -- underlying, on a different venue, from a different plan
  for _, m in ipairs(trim(K[5], tonumber(A[8]))) do redis.call('HDEL', K[6], m, '#pos|' .. m) end
  for _, m in ipairs(redis.call('ZRANGE', K[5], 0, -1)) do
    if m ~= id then
      local info = redis.call('HGET', K[6], m)
      if info then
        local side, venue, plan = string.match(info, '^([^|]+)|([^|]*)|(.*)$')
        if side ~= A[10] and venue ~= A[13] and plan ~= A[11] then return {'self-cross', m} end
      end
    end
  end
  local pos, cap, size = tonumber(A[14]), tonumber(A[15]), tonumber(A[16])
  if pos and cap and size and size ~= 0 then
    local before = pos
    for _, m in ipairs(redis.call('ZRANGE', K[5], 0, -1)) do
      local q = m ~= id and tonumber(redis.call('HGET', K[6], '#pos|' .. m) or '') or nil
      if q and q * size > 0 then before = before + q end
    end
    local after = before + size
    if math.abs(after) > cap and math.abs(after) > math.abs(before) then
      return {'position-limit', tostring(after)}
    end
  end
  if A[12] == '1' then
    if not mine then
      local member = id .. '|' .. A[4]
      redis.call('ZADD', K[1], now, member)
      redis.call('ZADD', K[2], now, member)
      redis.call('HINCRBYFLOAT', K[3], '#total|' .. K[1], notional)
      redis.call('HINCRBYFLOAT', K[3], '#total|' .. K[2], notional)
      redis.call('HSET', K[3], id, A[4])
    end
    redis.call('ZADD', K[4], 'NX', now, id)
    redis.call('ZADD', K[5], 'NX', now, id)
    redis.call('HSET', K[6], id, A[9])
    if size then redis.call('HSET', K[6], '#pos|' .. id, A[16]) end
  end
  return {'ok', ''}
end
`;
const WINDOW_CHECK = `${WINDOW_FN}\nreturn window(KEYS, ARGV)`;

const RELEASE = `
local id = ARGV[1]
local r = redis.call('HGET', KEYS[3], id)
if r then
  local m = id .. '|' .. r
  for i = 1, 2 do
    if redis.call('ZREM', KEYS[i], m) == 1 then redis.call('HINCRBYFLOAT', KEYS[3], '#total|' .. KEYS[i], -tonumber(r)) end
  end
  redis.call('HDEL', KEYS[3], id)
end
redis.call('ZREM', KEYS[4], id); redis.call('ZREM', KEYS[5], id); redis.call('HDEL', KEYS[6], id, '#pos|' .. id)
return 1`;

// An order the ledger holds, put back into the windows after Redis lost them (`restore`): its notional
// and execution at the time it was recorded, unless the intent is reserved already, and, while it is
// live, its self-cross and position entries. KEYS: windowKeys. ARGV: [1] id, [2] recorded at, [3]
// notional, [4] live ('1'/'0'), [5] self-cross info, [6] signed linear size or '', [7] now.
const RESTORE = `
local id = ARGV[1]
if not redis.call('HGET', KEYS[3], id) then
  local member = id .. '|' .. ARGV[3]
  for i = 1, 2 do
    redis.call('ZADD', KEYS[i], ARGV[2], member)
    redis.call('HINCRBYFLOAT', KEYS[3], '#total|' .. KEYS[i], ARGV[3])
  end
  redis.call('HSET', KEYS[3], id, ARGV[3])
end
redis.call('ZADD', KEYS[4], 'NX', ARGV[2], id)
if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[5], 'NX', ARGV[7], id)
  redis.call('HSET', KEYS[6], id, ARGV[5])
  if ARGV[6] ~= '' then redis.call('HSET', KEYS[6], '#pos|' .. id, ARGV[6]) end
end
return 1`;

// The intent is no longer live (it ended): it stops counting for the self-cross check only.
const SETTLE = `redis.call('ZREM', KEYS[1], ARGV[1]); redis.call('HDEL', KEYS[2], ARGV[1], '#pos|' .. ARGV[1]); return 1`;

export interface PreTradeControlsOptions {
  redis: Redis;
  prefix: string;
  limits: Limits;
  clock?: Clock;
  /**
   * Longest time an intent counts as live for the self-cross check when nobody settles it (a crashed
   * worker), ms. Normally an intent stops being live when its order ends (`settle` / `release`).
   * @defaultValue 60000
   */
  selfCrossWindowMs?: number;
}

/**
 * Pre-trade controls (SEC 15c3-5 style), run before a job is queued and again right before the
 * order is sent. Per-order checks are pure; window checks (notional per underlying and per venue,
 * repeated executions, self-cross) run in one Lua script so every process sees and reserves the same
 * totals atomically.
 *
 * Self-cross rule: an intent is blocked when another intent on the opposite side of the same
 * underlying is live at the same time (reserved and not yet ended) on a different venue and belongs
 * to a different plan. Same-venue opposite orders are left to the venue (they net in one account, and
 * order books apply their own self-trade prevention); legs of one plan may cross on purpose (moving a
 * hedge from one venue to another). Ended intents stop counting at once (`settle`, `release`).
 */
export class PreTradeControls {
  /** Redis key prefix (shared with the breakers and the kill switch of one deployment). */
  readonly prefix: string;
  readonly #redis: Redis;
  readonly #keys: ReturnType<typeof keysFor>;
  readonly #limits: Limits;
  readonly #clock: Clock;
  readonly #selfCrossWindowMs: number;

  constructor(o: PreTradeControlsOptions) {
    this.prefix = o.prefix;
    this.#redis = o.redis;
    this.#keys = keysFor(o.prefix);
    this.#limits = o.limits;
    this.#clock = o.clock ?? systemClock;
    this.#selfCrossWindowMs = o.selfCrossWindowMs ?? 60_000;
  }

  /** The Redis client the checks run on (the combined gate script runs there too). */
  get redis(): Redis {
    return this.#redis;
  }

  /**
   * Per-order checks, no I/O. Every number a check reads must be finite (a NaN compares false, so the
   * check it feeds would pass): one that is not blocks the order under that check, naming it. The
   * order's notional is its size × its own instrument's price (the mark, else the reference): for an
   * option leg that is its premium, so `maxOrderNotionalUsd` and the window caps bound the cash an
   * option leg moves, not the underlying exposure it adds (its delta is capped per plan by `net-delta`,
   * `checkNetDelta`). Option orders do not move the linear position `maxPositionBase` caps.
   */
  checkOrder(intent: HedgeIntent, ctx: ControlContext): ControlResult {
    const L = this.#limits;
    const size = Number(intent.sizeBase);
    const ref = intent.referencePriceUsd;
    const mark = ctx.mark;
    if (!(size > 0 && Number.isFinite(size)))
      return fail('max-order-notional', `bad size ${intent.sizeBase}`);
    if (!(ref > 0 && Number.isFinite(ref)))
      return fail(
        'price-band',
        `reference price ${ref} of ${intent.instrument} is not a positive finite number`,
      );
    if (mark && !(mark.priceUsd > 0 && Number.isFinite(mark.priceUsd)))
      return fail(
        'price-band',
        `${intent.venue} mark of ${intent.instrument} is not a positive finite number: ${mark.priceUsd}`,
      );
    const notional = size * (mark?.priceUsd ?? ref);
    if (!(notional <= L.maxOrderNotionalUsd)) {
      return fail('max-order-notional', `notional ${notional.toFixed(2)} USD > ${L.maxOrderNotionalUsd} USD`);
    }
    const now = this.#clock.nowMs();
    if (ctx.decisionAsOfMs !== undefined && !Number.isFinite(ctx.decisionAsOfMs))
      return fail('stale-data', `time the dependencies completed is not a number: ${ctx.decisionAsOfMs}`);
    const waited = ctx.decisionAsOfMs !== undefined && ctx.decisionAsOfMs > intent.createdAtMs;
    const decisionAge = now - (waited ? (ctx.decisionAsOfMs as number) : intent.createdAtMs);
    if (!(decisionAge <= L.staleAfterMs))
      return fail(
        'stale-data',
        Number.isFinite(decisionAge)
          ? `decision is ${decisionAge} ms old${waited ? ' since its dependencies completed' : ''} > ${L.staleAfterMs} ms`
          : `decision time ${intent.createdAtMs} of the intent is not a number`,
      );
    if (mark) {
      const { bidUsd: bid, askUsd: ask } = mark;
      if ((bid !== undefined && !Number.isFinite(bid)) || (ask !== undefined && !Number.isFinite(ask)))
        return fail(
          'crossed-market',
          `${intent.venue} quotes ${intent.instrument} with a bid or ask that is not a number: bid ${bid}, ask ${ask}`,
        );
      if (bid !== undefined && ask !== undefined && bid > ask)
        return fail(
          'crossed-market',
          `${intent.venue} quotes ${intent.instrument} crossed: bid ${bid} > ask ${ask}; its prices are not to be traded on`,
        );
      const age = now - mark.asOfMs;
      if (!(age <= L.staleAfterMs))
        return fail(
          'stale-data',
          Number.isFinite(age)
            ? `mark is ${age} ms old > ${L.staleAfterMs} ms`
            : `${intent.venue} mark time of ${intent.instrument} is not a number: ${mark.asOfMs}`,
        );
      const moveBps = (Math.abs(mark.priceUsd - ref) / ref) * 10_000;
      if (moveBps > L.priceBandBps) {
        return fail('price-band', `mark ${mark.priceUsd} is ${moveBps.toFixed(1)} bps from reference ${ref}`);
      }
    } else if (ctx.markMissing) {
      return fail(
        'stale-data',
        `${intent.venue} gave no mark for ${intent.instrument}: its age, price band and quote cannot be checked`,
      );
    }
    if (intent.limitPriceUsd !== undefined) {
      const lim = Number(intent.limitPriceUsd);
      const bandBps = (Math.abs(lim - ref) / ref) * 10_000;
      if (!(bandBps <= L.priceBandBps)) {
        return fail(
          'price-band',
          `limit ${intent.limitPriceUsd} is ${bandBps.toFixed(1)} bps from reference ${ref}`,
        );
      }
    }
    const expected = ctx.expectedPriceUsd;
    if (expected !== undefined) {
      if (!(expected > 0 && Number.isFinite(expected)))
        return fail(
          'max-slippage',
          `${intent.venue} expected price of ${intent.instrument} is not a positive finite number: ${expected}`,
        );
      const adverse = intent.side === 'buy' ? expected - ref : ref - expected;
      const slipBps = (adverse / ref) * 10_000;
      if (slipBps > L.maxSlippageBps) {
        return fail('max-slippage', `expected slippage ${slipBps.toFixed(1)} bps > ${L.maxSlippageBps} bps`);
      }
    }
    // options move neither the linear position nor the linear notional the exposure caps count
    const linear = movesLinearPosition(intent.instrument);
    const signedSize = intent.side === 'buy' ? size : -size;
    const maxPos = L.maxPositionBase[intent.underlying];
    if (linear && maxPos !== undefined && ctx.positionBase !== undefined) {
      if (!Number.isFinite(ctx.positionBase))
        return fail(
          'position-limit',
          `position in ${intent.underlying} is not a number: ${ctx.positionBase}`,
        );
      const after = ctx.positionBase + signedSize;
      if (Math.abs(after) > maxPos && Math.abs(after) > Math.abs(ctx.positionBase)) {
        return fail('position-limit', `position would be ${after} > ±${maxPos} ${intent.underlying}`);
      }
    }
    if (!linear) return { ok: true };
    // notional caps: the order's instrument at the mark (else the reference) plus everything else held
    const px = mark?.priceUsd ?? ref;
    const venueCap = capFor(L.maxVenueNotionalUsd, intent.venue);
    const onVenue = exposureOver(ctx.venueExposure, signedSize, px, venueCap);
    if (onVenue !== undefined)
      return fail(
        'venue-exposure',
        Number.isNaN(onVenue)
          ? `what ${intent.venue} holds is not a number: ${ctx.venueExposure?.instrumentSizeBase} ${intent.instrument}, other positions ${ctx.venueExposure?.otherNotionalUsd} USD`
          : `notional on ${intent.venue} would be ${onVenue.toFixed(2)} USD > ${venueCap} USD (its other positions ${ctx.venueExposure?.otherNotionalUsd.toFixed(2)} USD)`,
      );
    const total = exposureOver(ctx.totalExposure, signedSize, px, L.maxTotalNotionalUsd);
    if (total !== undefined)
      return fail(
        'total-exposure',
        Number.isNaN(total)
          ? `what the venues hold is not a number: ${ctx.totalExposure?.instrumentSizeBase} ${intent.instrument} on ${intent.venue}, other positions ${ctx.totalExposure?.otherNotionalUsd} USD`
          : `notional across venues would be ${total.toFixed(2)} USD > ${L.maxTotalNotionalUsd} USD`,
      );
    return { ok: true };
  }

  /**
   * The plan check, no I/O: refuses a plan that would leave the book's net delta on its underlying
   * beyond `limits.maxNetDeltaUsd` (by underlying, else `*`) and further from zero than it is. A plan that
   * brings the delta closer to zero passes even when the book stays beyond the cap, so the hedge that
   * mends a breach is never the one refused. Non-finite inputs are refused, never passed.
   */
  checkNetDelta(nd: PlanNetDelta): ControlResult {
    const cap = capFor(this.#limits.maxNetDeltaUsd, nd.underlying);
    if (cap === undefined) return { ok: true };
    const { bookDeltaBase: book, planDeltaBase: plan, spotUsd: spot } = nd;
    if (!Number.isFinite(book) || !Number.isFinite(plan) || !(spot > 0 && Number.isFinite(spot)))
      return fail(
        'net-delta',
        `cannot value the plan's net delta on ${nd.underlying}: book ${book}, plan ${plan}, spot ${spot}`,
      );
    const beforeUsd = book * spot;
    const afterUsd = (book + plan) * spot;
    if (Math.abs(afterUsd) > cap && Math.abs(afterUsd) > Math.abs(beforeUsd))
      return fail(
        'net-delta',
        `net delta on ${nd.underlying} would be ${afterUsd.toFixed(2)} USD > ±${cap} USD (book ${beforeUsd.toFixed(2)} USD, the plan adds ${plan} ${nd.underlying})`,
      );
    return { ok: true };
  }

  /**
   * All checks; with `reserve`, the intent's notional and execution are counted in the windows
   * (idempotent per intent id).
   */
  async check(intent: HedgeIntent, ctx: ControlContext, o: { reserve: boolean }): Promise<ControlResult> {
    const r = this.checkOrder(intent, ctx);
    if (!r.ok) return r;
    const [verdict, detail] = (await this.#redis.eval(
      WINDOW_CHECK,
      6,
      ...this.windowKeys(intent),
      ...this.windowArgs(intent, ctx, o.reserve),
    )) as [string, string];
    return this.windowResult(intent, verdict, detail);
  }

  /** The Redis keys of the window checks for this intent (for the combined gate script). */
  windowKeys(intent: Pick<HedgeIntent, 'underlying' | 'venue'>): string[] {
    const k = this.#keys;
    return [
      k.ctlUnderlying(intent.underlying),
      k.ctlVenue(intent.venue),
      k.ctlNotional,
      k.ctlExec(intent.underlying),
      k.ctlSide(intent.underlying),
      k.ctlSideInfo,
    ];
  }

  /**
   * The arguments of the window checks (`WINDOW_FN`'s `A`), in order: 13, then the position limit's 3
   * (the position, the cap and the order's signed size; '' for what does not apply).
   */
  windowArgs(intent: HedgeIntent, ctx: ControlContext, reserve: boolean): (string | number)[] {
    const L = this.#limits;
    const notional = Number(intent.sizeBase) * (ctx.mark?.priceUsd ?? intent.referencePriceUsd);
    // options do not move the linear position the limit caps (`ControlContext.positionBase`)
    const sizeBase = Number(intent.sizeBase) * (intent.side === 'buy' ? 1 : -1);
    const linear = movesLinearPosition(intent.instrument) && Number.isFinite(sizeBase);
    const maxPos = L.maxPositionBase[intent.underlying];
    const pos = ctx.positionBase;
    const checked = linear && maxPos !== undefined && pos !== undefined && Number.isFinite(pos);
    return [
      intent.id,
      this.#clock.nowMs(),
      L.windowSeconds * 1000,
      notional,
      L.maxHedgeNotionalPerWindowUsd,
      L.repeatedExecution.windowSeconds * 1000,
      L.repeatedExecution.maxExecutions,
      this.#selfCrossWindowMs,
      `${intent.side}|${intent.venue}|${intent.planId}`,
      intent.side,
      intent.planId,
      reserve ? '1' : '0',
      intent.venue,
      checked ? pos : '',
      checked ? maxPos : '',
      linear ? sizeBase : '',
    ];
  }

  /** The verdict of the window script as a control result. */
  windowResult(intent: HedgeIntent, verdict: string, detail: string): ControlResult {
    if (verdict === 'ok') return { ok: true };
    const L = this.#limits;
    const control = verdict as ControlName;
    const reason =
      control === 'self-cross'
        ? `opposite-side intent ${detail} on ${intent.underlying} is live on another venue`
        : control === 'position-limit'
          ? `position would be ${detail} ${intent.underlying} > ±${L.maxPositionBase[intent.underlying]} ${intent.underlying} with the same-side orders in flight`
          : control === 'repeated-execution'
            ? `${detail} executions on ${intent.underlying} within ${L.repeatedExecution.windowSeconds}s > ${L.repeatedExecution.maxExecutions}`
            : `${Number(detail).toFixed(2)} USD in ${L.windowSeconds}s > ${L.maxHedgeNotionalPerWindowUsd} USD`;
    return fail(control, reason);
  }

  /** The intent ended having traded: it keeps its window notional and execution count, but is no longer live. */
  async settle(intent: Pick<HedgeIntent, 'id' | 'underlying'>): Promise<void> {
    const k = this.#keys;
    await this.#redis.eval(SETTLE, 2, k.ctlSide(intent.underlying), k.ctlSideInfo, intent.id);
  }

  /**
   * Keeps a working order's intent live for the self-cross check: its entry lapses `selfCrossWindowMs`
   * after it was last kept (a bound meant for intents nobody settles, a crashed worker's), and a resting
   * limit order lives longer than that. The run that finds the order working calls it; an entry already
   * gone is not brought back.
   */
  async keepLive(intent: Pick<HedgeIntent, 'id' | 'underlying'>): Promise<void> {
    await this.#redis.zadd(this.#keys.ctlSide(intent.underlying), 'XX', this.#clock.nowMs(), intent.id);
  }

  /**
   * After Redis lost its data (see control-state.ts): puts back from the ledger what the windows held,
   * so the restored server does not start a fresh window (a second window's notional and executions
   * on top of what went out). Every order recorded within the longer of the two windows that traded or
   * is not over counts its notional (size × reference price) and execution at the time it was
   * recorded; every order not over is live again (self-cross, position in flight). An intent Redis
   * still holds is not counted twice. Returns how many orders were put back.
   */
  async restore(ledger: Ledger): Promise<number> {
    const L = this.#limits;
    const now = this.#clock.nowMs();
    const horizonMs = Math.max(L.windowSeconds, L.repeatedExecution.windowSeconds) * 1000;
    const orders = new Map(
      [
        ...(await ledger.listAllOrders({ fromMs: now - horizonMs })),
        ...(await ledger.listAllOrders({ status: OPEN_ORDER_STATUSES })),
      ].map((x) => [x.clientOrderId, x]),
    );
    let n = 0;
    for (const order of orders.values()) {
      const live = !TERMINAL_ORDER_STATUSES.has(order.status);
      if (!live && order.status !== 'filled' && !(Number(order.filledSizeBase) > 0)) continue;
      const intent = await ledger.getIntent(order.intentId);
      if (!intent) continue;
      const args = this.windowArgs(intent, {}, true);
      await this.#redis.eval(
        RESTORE,
        6,
        ...this.windowKeys(intent),
        intent.id,
        order.createdAtMs,
        Number(intent.sizeBase) * intent.referencePriceUsd,
        live ? '1' : '0',
        args[8] as string,
        args[15] as string | number,
        now,
      );
      n += 1;
    }
    return n;
  }

  /** Gives back an intent's reservation (it was blocked, rejected or failed without filling). */
  async release(intent: Pick<HedgeIntent, 'id' | 'underlying' | 'venue'>): Promise<void> {
    const k = this.#keys;
    await this.#redis.eval(
      RELEASE,
      6,
      k.ctlUnderlying(intent.underlying),
      k.ctlVenue(intent.venue),
      k.ctlNotional,
      k.ctlExec(intent.underlying),
      k.ctlSide(intent.underlying),
      k.ctlSideInfo,
      intent.id,
    );
  }
}

/**
 * The notional held after an order of `signedSizeBase` at `pxUsd` when it grows its instrument's
 * position and ends above `cap`; NaN when what is held is not a number (refused, never compared);
 * else undefined.
 */
function exposureOver(
  e: { instrumentSizeBase: number; otherNotionalUsd: number } | undefined,
  signedSizeBase: number,
  pxUsd: number,
  cap: number | undefined,
): number | undefined {
  if (cap === undefined || !e) return undefined;
  const next = e.instrumentSizeBase + signedSizeBase;
  const after = e.otherNotionalUsd + Math.abs(next) * pxUsd;
  if (!Number.isFinite(after)) return Number.NaN;
  return after > cap && Math.abs(next) > Math.abs(e.instrumentSizeBase) ? after : undefined;
}

/** Whether an order in this instrument moves the linear position (perps, futures, spot; not options). */
export function movesLinearPosition(instrument: string): boolean {
  // only a canonical option id has an ':OPT:' field: every other id is linear or malformed (counted)
  // either way, without the parse's allocations on the hot path
  if (!instrument.includes(':OPT:')) return true;
  try {
    return parseInstrumentId(instrument).kind !== 'option';
  } catch {
    return true; // ids are checked at the boundary; an odd one is counted rather than missed
  }
}

function fail(control: ControlName, reason: string): ControlResult {
  return { ok: false, control, reason };
}
