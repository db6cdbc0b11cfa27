import { randomUUID } from 'node:crypto';
import { type Clock, type HedgeIntent, systemClock } from '@xhedge/core';
import type { Redis } from 'ioredis';
import { type BreakerBoard, breakersFor, type ReduceOnlyPass, type Trial } from './breakers.ts';
import { REDIS_EPOCH_FN } from './control-state.ts';
import { type ControlContext, type ControlName, type PreTradeControls, WINDOW_FN } from './controls.ts';
import { keysFor } from './keys.ts';
import { type KillScope, KillSwitch } from './kill-switch.ts';
import { evalScript } from './script.ts';
import { parseSendClaim, SEND_CLAIM_TTL_MS, type SendClaim } from './send-claim.ts';

// Every Redis-side gate of one order in one atomic script (one round trip): kill switch, breakers
// (taking the half-open trial tokens when sending), then the window controls with their reservation.
// Nothing is reserved and no trial is taken unless every gate passes. Right before a send, the same
// script takes the order's send claim (see `SendClaim`): a claim already there wins over everything
// (verdict 'held'), else the claim records this run's decision, to send or to cancel.
// A reduce-only order goes past an open or half-open breaker whose reduce-only flag is '1' (see
// `REDUCE_ONLY_PASSES`) where another order would be blocked or would take the half-open trial: it
// takes no trial and moves no breaker to half-open (the trial stays for an order that is not
// reduce-only), and each such pass is reported as 'j|state|reason'.
// KEYS: [1] kill hash, [2..7] window keys, then nb breaker hashes, then nb trial keys, then the
//       control-state key, then (claiming) the send-claim key.
// ARGV: [1] now, [2] nb, [3] takeTrial, [4] trial token, [5] trial ttl ms, [6] reduceOnly,
//       [7..9] kill scopes, [10..22] window args 1-13, [23] control state required, [24] claim ('1'/'0'),
//       [25] the per-order checks passed ('1'/'0'), [26] claimant, [27] claim ttl ms,
//       [28] the breakers' reduce-only flags, one '1'/'0' per breaker, [29..31] window args 14-16.
// Returns {verdict, detail, extra, moved[, trials, passed]}; moved/trials are 1-based breaker indexes,
// passed the reduce-only passes ('ok' only).
// Verdict 'state-lost': no control state restored on this Redis server (see control-state.ts);
// 'held': the claim was taken before (detail: its value).
const GATE = `${WINDOW_FN}${REDIS_EPOCH_FN}
local now, nb = tonumber(ARGV[1]), tonumber(ARGV[2])
local takeTrial = ARGV[3] == '1'
local claimKey = KEYS[9 + 2 * nb]
if ARGV[23] == '1' and redis.call('GET', KEYS[8 + 2 * nb]) ~= redis_epoch() then return {'state-lost', '', '', {}} end
if ARGV[24] == '1' then
  local held = redis.call('GET', claimKey)
  if held then return {'held', held, '', {}} end
end
local function gate()
  for i = 7, 9 do
    local v = redis.call('HGET', KEYS[1], ARGV[i])
    if v then
      local ok, e = pcall(cjson.decode, v)
      if not (ok and e.allowRiskReducing == true and ARGV[6] == '1') then return {'kill-switch', ARGV[i], v, {}} end
    end
  end
  local moved, trials, passed, blocked = {}, {}, {}, nil
  for j = 1, nb do
    local bk, tk = KEYS[7 + j], KEYS[7 + nb + j]
    local h = redis.call('HMGET', bk, 'state', 'openedAt', 'cooldownMs', 'reason')
    local st = h[1] or 'closed'
    local ro = ARGV[6] == '1' and string.sub(ARGV[28], j, j) == '1'
    if st == 'open' then
      if now < tonumber(h[2] or '0') + tonumber(h[3] or '0') then
        if ro then passed[#passed + 1] = j .. '|open|' .. (h[4] or '')
        elseif not blocked then blocked = {j, 'open', h[4] or ''} end
      elseif takeTrial then
        if ro then passed[#passed + 1] = j .. '|open|' .. (h[4] or '')
        else
          redis.call('HSET', bk, 'state', 'half-open')
          moved[#moved + 1] = j
          st = 'half-open'
        end
      end
    end
    if st == 'half-open' and takeTrial then
      if ro then passed[#passed + 1] = j .. '|half-open|' .. (h[4] or '')
      elseif redis.call('EXISTS', tk) == 1 then
        if not blocked then blocked = {j, 'half-open', h[4] or ''} end
      else
        trials[#trials + 1] = j
      end
    end
  end
  if blocked then return {'breaker', tostring(blocked[1]), blocked[2] .. '|' .. blocked[3], moved} end
  local A = {}
  for i = 1, 13 do A[i] = ARGV[9 + i] end
  for i = 14, 16 do A[i] = ARGV[15 + i] end
  local r = window({KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]}, A)
  if r[1] ~= 'ok' then return {r[1], r[2], '', moved} end
  for _, j in ipairs(trials) do redis.call('SET', KEYS[7 + nb + j], ARGV[4], 'PX', ARGV[5]) end
  return {'ok', '', '', moved, trials, passed}
end
local r = gate()
if ARGV[24] == '1' then
  local kind = (r[1] == 'ok' and ARGV[25] == '1') and 'send' or 'blocked'
  redis.call('SET', claimKey, kind .. '|' .. ARGV[1] .. '|' .. ARGV[26], 'PX', ARGV[27])
end
return r`;

export type GateResult =
  | {
      ok: true;
      /** Half-open trials held; report each to the breaker board. */
      trials: Trial[];
      /** Breakers not closed that this reduce-only order went past by their policy (see `REDUCE_ONLY_PASSES`). */
      passes: ReduceOnlyPass[];
    }
  | { ok: false; control: ControlName; reason: string };

/** The gate right before a send, with the order's send claim (`OrderGate.checkToSend`). */
export type SendGateResult =
  /**
   * Every gate passed and this run holds the send claim, taken at `atMs`: send now. `passes`: breakers
   * not closed that this reduce-only order went past by their policy.
   */
  | { kind: 'send'; atMs: number; trials: Trial[]; passes: ReduceOnlyPass[] }
  /** A gate said no; this run holds the claim (as `blocked`) and cancels the order. */
  | { kind: 'blocked'; control: ControlName; reason: string }
  /** The claim was taken before (another run, or a restore): reconcile, never send. */
  | { kind: 'held'; claim: SendClaim }
  /** Redis holds no restored control state: nothing was decided or taken; try again after the restore. */
  | { kind: 'state-lost'; reason: string };

const STATE_LOST =
  'Redis holds no restored control state (kill switch, breakers): the server restarted, failed over or lost its data, and the state has not been restored from the ledger on it yet; orders wait for the restore';

/**
 * The order gate: kill switch → breakers → pre-trade controls, the pure per-order checks in process
 * and every Redis-side check in one script. A reduce-only order passes an engaged kill switch that
 * allows risk-reducing orders, and an open or half-open market breaker whose reduce-only policy lets it
 * (`BreakerBoard.reduceOnlyPasses`, see `REDUCE_ONLY_PASSES`) without taking its half-open trial; each
 * such breaker pass is in the verdict (`passes`) and counted in the metrics, by phase. Used before queueing (`takeTrial: false`: a half-open
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
  readonly #reduceOnlyEnforced: ((venue: string) => boolean) | undefined;

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
    /**
     * Whether a venue enforces reduce-only orders (`capabilities.reduceOnly`). When given, an order
     * flagged reduce-only on a venue that does not is judged as any other (the venue would take it as it
     * is, so the flag is only the planner's word): no pass of a kill switch allowing risk-reducing
     * orders, nor of a breaker letting reduce-only orders by. @defaultValue the flag is taken as it is
     */
    reduceOnlyEnforced?: ((venue: string) => boolean) | undefined;
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
    this.#reduceOnlyEnforced = o.reduceOnlyEnforced;
  }

  /** The gates before queueing (no claim): a half-open breaker lets the order queue without a trial. */
  async check(
    intent: HedgeIntent,
    ctx: ControlContext,
    o: { takeTrial: boolean; reserve: boolean },
  ): Promise<GateResult> {
    const r = await this.#run(intent, ctx, o);
    if (r.kind === 'send') return { ok: true, trials: r.trials, passes: r.passes };
    if (r.kind === 'blocked') return { ok: false, control: r.control, reason: r.reason };
    if (r.kind === 'state-lost') return { ok: false, control: 'kill-switch', reason: r.reason };
    throw new Error('order gate: a claim was reported without being asked for');
  }

  /**
   * The gates right before a send, taking the order's send claim in the same script: the half-open
   * trial, the window reservation and the claim, or nothing of them. Always requires restored control
   * state (a server that lost its data may have lost claims too).
   */
  checkToSend(
    intent: HedgeIntent,
    ctx: ControlContext,
    claim: { clientOrderId: string; by: string },
  ): Promise<SendGateResult> {
    return this.#run(intent, ctx, { takeTrial: true, reserve: true, claim });
  }

  async #run(
    flagged: HedgeIntent,
    ctx: ControlContext,
    o: { takeTrial: boolean; reserve: boolean; claim?: { clientOrderId: string; by: string } },
  ): Promise<SendGateResult> {
    const enforced = this.#reduceOnlyEnforced;
    const intent =
      flagged.reduceOnly && enforced && !enforced(flagged.venue)
        ? { ...flagged, reduceOnly: false }
        : flagged;
    const pure = this.#controls.checkOrder(intent, ctx);
    const names = breakersFor(intent);
    const bk = this.#breakers.gateKeys(names);
    const scopes = ['global', `venue:${intent.venue}`, `underlying:${intent.underlying}`];
    const token = randomUUID();
    const nowMs = Math.floor(this.#clock.nowMs());
    // a failed per-order check still runs the kill/breaker gates but reserves nothing
    const windowArgs = this.#controls.windowArgs(intent, ctx, o.reserve && pure.ok);
    const keys = [
      this.#kill.stateKey,
      ...this.#controls.windowKeys(intent),
      ...bk.state,
      ...bk.trial,
      this.#stateKey,
    ];
    if (o.claim) keys.push(this.#sendClaimKey(o.claim.clientOrderId));
    const [verdict, detail, extra, moved, trials, passed] = (await evalScript(this.#redis, GATE, keys, [
      nowMs,
      names.length,
      o.takeTrial ? '1' : '0',
      token,
      this.#breakers.trialTtlMs,
      intent.reduceOnly ? '1' : '0',
      ...scopes,
      ...windowArgs.slice(0, 13),
      this.#requireState || o.claim ? '1' : '0',
      o.claim ? '1' : '0',
      pure.ok ? '1' : '0',
      o.claim?.by ?? '',
      SEND_CLAIM_TTL_MS,
      bk.reduceOnly,
      ...windowArgs.slice(13),
    ])) as [string, string, string, number[], number[] | undefined, string[] | undefined];
    for (const j of moved) {
      const name = names[j - 1];
      if (name) await this.#breakers.recordTransition(name, 'open', 'half-open', 'cooldown elapsed');
    }
    if (verdict === 'state-lost') return { kind: 'state-lost', reason: STATE_LOST };
    if (verdict === 'held')
      return { kind: 'held', claim: parseSendClaim(detail, o.claim?.clientOrderId ?? intent.id) };
    const stop = switchOrBreaker(verdict, detail, extra, names);
    if (stop) return { kind: 'blocked', ...stop };
    if (!pure.ok) {
      for (const j of trials ?? []) {
        const name = names[j - 1];
        if (name) await this.#breakers.abandonTrial({ breaker: name, token });
      }
      return { kind: 'blocked', control: pure.control, reason: pure.reason };
    }
    const r = this.#controls.windowResult(intent, verdict, detail);
    if (!r.ok) return { kind: 'blocked', control: r.control, reason: r.reason };
    const passes = (passed ?? []).flatMap((p) => {
      const [j, state, ...why] = p.split('|');
      const name = names[Number(j) - 1];
      return name && (state === 'open' || state === 'half-open')
        ? [{ breaker: name, state, reason: why.join('|') } satisfies ReduceOnlyPass]
        : [];
    });
    this.#breakers.countReduceOnlyPasses(passes, o.takeTrial ? 'send' : 'queue');
    return {
      kind: 'send',
      atMs: nowMs,
      trials: (trials ?? []).flatMap((j) => {
        const name = names[j - 1];
        return name ? [{ breaker: name, token }] : [];
      }),
      passes,
    };
  }

  #sendClaimKey(clientOrderId: string): string {
    return keysFor(this.#controls.prefix).sendClaim(clientOrderId);
  }
}

/** The kill-switch or breaker verdict of a gate script as a control and its reason (else undefined). */
function switchOrBreaker(
  verdict: string,
  detail: string,
  extra: string,
  names: readonly string[],
): { control: ControlName; reason: string } | undefined {
  if (verdict === 'kill-switch') {
    const e = KillSwitch.engagementOf(detail as KillScope, extra);
    return { control: 'kill-switch', reason: `${e.scope}: ${e.reason}` };
  }
  if (verdict === 'breaker') {
    const [state, ...why] = extra.split('|');
    return { control: 'breaker', reason: `${names[Number(detail) - 1]} ${state}: ${why.join('|') || state}` };
  }
  return undefined;
}
