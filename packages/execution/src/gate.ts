import { randomUUID } from 'node:crypto';
import { type Clock, type HedgeIntent, systemClock } from '@xhedge/core';
import type { Redis } from 'ioredis';
import { type BreakerBoard, breakersFor, type Trial } from './breakers.ts';
import { REDIS_EPOCH_FN } from './control-state.ts';
import { type ControlContext, type ControlName, type PreTradeControls, WINDOW_FN } from './controls.ts';
import { keysFor } from './keys.ts';
import { type KillScope, KillSwitch } from './kill-switch.ts';
import { evalScript } from './script.ts';

// Every Redis-side gate of one order in one atomic script (one round trip): kill switch, breakers
// (taking the half-open trial tokens when sending), then the window controls with their reservation.
// Nothing is reserved and no trial is taken unless every gate passes.
// KEYS: [1] kill hash, [2..7] window keys, then nb breaker hashes, then nb trial keys, then the
//       control-state key.
// ARGV: [1] now, [2] nb, [3] takeTrial, [4] trial token, [5] trial ttl ms, [6] reduceOnly,
//       [7..9] kill scopes, [10..22] window args, [23] control state required.
// Returns {verdict, detail, extra, moved[, trials]}; moved/trials are 1-based breaker indexes.
// Verdict 'state-lost': no control state restored on this Redis server (see control-state.ts).
const GATE = `${WINDOW_FN}${REDIS_EPOCH_FN}
local now, nb = tonumber(ARGV[1]), tonumber(ARGV[2])
local takeTrial = ARGV[3] == '1'
if ARGV[23] == '1' and redis.call('GET', KEYS[8 + 2 * nb]) ~= redis_epoch() then return {'state-lost', '', '', {}} end
for i = 7, 9 do
  local v = redis.call('HGET', KEYS[1], ARGV[i])
  if v then
    local ok, e = pcall(cjson.decode, v)
    if not (ok and e.allowRiskReducing == true and ARGV[6] == '1') then return {'kill-switch', ARGV[i], v, {}} end
  end
end
local moved, trials, blocked = {}, {}, nil
for j = 1, nb do
  local bk, tk = KEYS[7 + j], KEYS[7 + nb + j]
  local h = redis.call('HMGET', bk, 'state', 'openedAt', 'cooldownMs', 'reason')
  local st = h[1] or 'closed'
  if st == 'open' then
    if now < tonumber(h[2] or '0') + tonumber(h[3] or '0') then
      if not blocked then blocked = {j, 'open', h[4] or ''} end
    elseif takeTrial then
      redis.call('HSET', bk, 'state', 'half-open')
      moved[#moved + 1] = j
      st = 'half-open'
    end
  end
  if st == 'half-open' and takeTrial then
    if redis.call('EXISTS', tk) == 1 then
      if not blocked then blocked = {j, 'half-open', h[4] or ''} end
    else
      trials[#trials + 1] = j
    end
  end
end
if blocked then return {'breaker', tostring(blocked[1]), blocked[2] .. '|' .. blocked[3], moved} end
local A = {}
for i = 1, 13 do A[i] = ARGV[9 + i] end
local r = window({KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]}, A)
if r[1] ~= 'ok' then return {r[1], r[2], '', moved} end
for _, j in ipairs(trials) do redis.call('SET', KEYS[7 + nb + j], ARGV[4], 'PX', ARGV[5]) end
return {'ok', '', '', moved, trials}`;

export type GateResult =
  | { ok: true /** Half-open trials held; report each to the breaker board. */; trials: Trial[] }
  | { ok: false; control: ControlName; reason: string };

/**
 * The order gate: kill switch → breakers → pre-trade controls, the pure per-order checks in process
 * and every Redis-side check in one script. Used before queueing (`takeTrial: false`: a half-open
 * breaker lets the order queue) and right before sending (`takeTrial: true`: exactly one order goes
 * as the half-open trial). The three parts must share one Redis key prefix; the script runs on the
 * controls' client.
 */
export class OrderGate {
  readonly #controls: PreTradeControls;
  readonly #breakers: BreakerBoard;
  readonly #kill: KillSwitch;
  readonly #redis: Redis;
  readonly #clock: Clock;
  readonly #stateKey: string;
  readonly #requireState: boolean;

  constructor(o: {
    controls: PreTradeControls;
    breakers: BreakerBoard;
    killSwitch: KillSwitch;
    clock?: Clock | undefined;
    /**
     * Refuse every order while Redis holds no restored control state (`restoreControlState` has not
     * run since Redis last lost its data). @defaultValue true when the kill switch has a ledger to
     * restore from
     */
    requireControlState?: boolean | undefined;
  }) {
    if (o.controls.prefix !== o.breakers.prefix || o.controls.prefix !== o.killSwitch.prefix)
      throw new RangeError('controls, breakers and kill switch must share one Redis key prefix');
    this.#controls = o.controls;
    this.#breakers = o.breakers;
    this.#kill = o.killSwitch;
    this.#redis = o.controls.redis;
    this.#clock = o.clock ?? systemClock;
    this.#stateKey = keysFor(o.controls.prefix).controlState;
    this.#requireState = o.requireControlState ?? o.killSwitch.durable;
  }

  async check(
    intent: HedgeIntent,
    ctx: ControlContext,
    o: { takeTrial: boolean; reserve: boolean },
  ): Promise<GateResult> {
    const pure = this.#controls.checkOrder(intent, ctx);
    const names = breakersFor(intent);
    const bk = this.#breakers.gateKeys(names);
    const scopes = ['global', `venue:${intent.venue}`, `underlying:${intent.underlying}`];
    const token = randomUUID();
    const [verdict, detail, extra, moved, trials] = (await evalScript(
      this.#redis,
      GATE,
      [this.#kill.stateKey, ...this.#controls.windowKeys(intent), ...bk.state, ...bk.trial, this.#stateKey],
      [
        this.#clock.nowMs(),
        names.length,
        o.takeTrial ? '1' : '0',
        token,
        this.#breakers.trialTtlMs,
        intent.reduceOnly ? '1' : '0',
        ...scopes,
        // a failed per-order check still runs the kill/breaker gates but reserves nothing
        ...this.#controls.windowArgs(intent, ctx, o.reserve && pure.ok),
        this.#requireState ? '1' : '0',
      ],
    )) as [string, string, string, number[], number[] | undefined];
    for (const j of moved) {
      const name = names[j - 1];
      if (name) await this.#breakers.recordTransition(name, 'open', 'half-open', 'cooldown elapsed');
    }
    if (verdict === 'state-lost')
      return {
        ok: false,
        control: 'kill-switch',
        reason:
          'Redis holds no restored control state (kill switch, breakers): the server restarted, failed over or lost its data, and the state has not been restored from the ledger on it yet; orders wait for the restore',
      };
    if (verdict === 'kill-switch') {
      const e = KillSwitch.engagementOf(detail as KillScope, extra);
      return { ok: false, control: 'kill-switch', reason: `${e.scope}: ${e.reason}` };
    }
    if (verdict === 'breaker') {
      const [state, ...why] = extra.split('|');
      return {
        ok: false,
        control: 'breaker',
        reason: `${names[Number(detail) - 1]} ${state}: ${why.join('|') || state}`,
      };
    }
    if (!pure.ok) {
      for (const j of trials ?? []) {
        const name = names[j - 1];
        if (name) await this.#breakers.abandonTrial({ breaker: name, token });
      }
      return pure;
    }
    const r = this.#controls.windowResult(intent, verdict, detail);
    if (!r.ok) return r;
    return {
      ok: true,
      trials: (trials ?? []).flatMap((j) => {
        const name = names[j - 1];
        return name ? [{ breaker: name, token }] : [];
      }),
    };
  }
}
