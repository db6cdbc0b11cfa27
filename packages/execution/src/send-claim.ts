import type { Ledger } from '@xhedge/store';
import type { Redis } from 'ioredis';
import { keysFor } from './keys.ts';
import { evalScript } from './script.ts';

/**
 * The send claim: the guard against sending an order twice. It is one Redis key per client order id,
 * taken by the order gate's script right before a send, in the same atomic call as the kill-switch,
 * breaker and window checks (so it costs no round trip of its own). Of any number of runs of one order
 * (a job re-driven after a stall, a retry racing a slow run), exactly one takes it; the others find it
 * `held` and only reconcile with the venue. The claim records what its run decided:
 * - `send`: the run sends the order (at `atMs`);
 * - `blocked`: a gate said no, and the run cancels the order (it is never sent);
 * - `restored`: Redis lost its data while the ledger still had the order `queued`; a run may have
 *   sent it before the loss, so it is treated as sent at the moment of the restore (see
 *   `restoreSendClaims`), and the venue is asked before anything else is done.
 *
 * The ledger learns of the send in parallel with the venue call (`Ledger.recordSend`, `queued →
 * sent`, durable); once it has, the claim is kept `CLAIM_RETAIN_MS` more and then let go. For an order
 * queued less than `FAST_SEND_WINDOW_MS` ago the claim is the authority (a run sends on it without
 * reading the ledger): no claim means no run sent it and nobody cancelled it. So a Redis that lost
 * claims must not let a run send: the gate refuses every order on a Redis server whose control state
 * was not restored (the epoch check), and the restore claims every order the ledger has `queued`, and
 * every order of the last `CLAIM_RETAIN_MS`, whatever its state.
 */
export interface SendClaim {
  kind: 'send' | 'blocked' | 'restored';
  /** When the claim was taken (run clock), ms. For `restored`, the restore's time. */
  atMs: number;
  /** Who took it: a worker id, or the restore's actor. */
  by: string;
}

/** Claims outlive any plausible outage of the ledger that keeps a claimed order `queued` there. */
export const SEND_CLAIM_TTL_MS = 7 * 24 * 3600 * 1000;

/**
 * How long a claim stays once the ledger has recorded what it stood for (the order is past `queued`
 * there), and how far back the restore after a data loss claims orders. Far longer than
 * `FAST_SEND_WINDOW_MS`, with room for the clocks of the hosts to disagree.
 */
export const CLAIM_RETAIN_MS = 24 * 3600 * 1000;

/**
 * A run may send an order on its claim alone (no ledger read first) within this long of the order's
 * queueing (the worker's fast path); later runs read the ledger first.
 */
export const FAST_SEND_WINDOW_MS = 3600 * 1000;

/** The claim as stored (`kind|atMs|by`), as the gate script writes it. */
export function formatSendClaim(c: SendClaim): string {
  return `${c.kind}|${c.atMs}|${c.by}`;
}

/** Reads a stored claim; throws on anything else (a corrupt claim must stop the order, not pass it). */
export function parseSendClaim(raw: string, clientOrderId: string): SendClaim {
  const m = /^(send|blocked|restored)\|(\d+)\|(.*)$/s.exec(raw);
  if (!m) throw new Error(`send claim of order ${clientOrderId} is malformed: ${JSON.stringify(raw)}`);
  return { kind: m[1] as SendClaim['kind'], atMs: Number(m[2]), by: m[3] as string };
}

// KEYS: [1] claim. ARGV: [1] claimant. Deletes the claim when that claimant took it (send or blocked).
const GIVE_BACK = `
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local kind, by = string.match(v, '^(%a+)|%d+|(.*)$')
if (kind == 'send' or kind == 'blocked') and by == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

// KEYS: [1] claim. ARGV: [1] claimant, [2] now. A claimant's own send claim becomes blocked.
const MARK_BLOCKED = `
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local kind, by = string.match(v, '^(%a+)|%d+|(.*)$')
if kind == 'send' and by == ARGV[1] then
  redis.call('SET', KEYS[1], 'blocked|' .. ARGV[2] .. '|' .. ARGV[1], 'KEEPTTL')
  return 1
end
return 0`;

// KEYS: [1] claim. ARGV: [1] the blocked claim's value, [2] ttl ms. A send or restored claim stays and is
// returned; else the order is (or already was) claimed as blocked: ''.
const BLOCK = `
local v = redis.call('GET', KEYS[1])
if v and (string.sub(v, 1, 5) == 'send|' or string.sub(v, 1, 9) == 'restored|') then return v end
if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
return ''`;

/** The send claims of one deployment (its Redis key prefix). */
export class SendClaims {
  readonly #redis: Redis;
  readonly #key: (clientOrderId: string) => string;

  constructor(redis: Redis, prefix: string) {
    this.#redis = redis;
    this.#key = keysFor(prefix).sendClaim;
  }

  /** The order's claim, if any. */
  async read(clientOrderId: string): Promise<SendClaim | undefined> {
    const raw = await this.#redis.get(this.#key(clientOrderId));
    return raw === null ? undefined : parseSendClaim(raw, clientOrderId);
  }

  /**
   * Keeps a claim the ledger has taken over (the order is past `queued` there, durably) for
   * `CLAIM_RETAIN_MS` more, then lets it go.
   */
  async retain(clientOrderId: string): Promise<void> {
    await this.#redis.pexpire(this.#key(clientOrderId), CLAIM_RETAIN_MS);
  }

  /** Drops the claim if `by` took it and nothing was sent on it (it was taken for nothing). */
  async giveBack(clientOrderId: string, by: string): Promise<boolean> {
    return Number(await evalScript(this.#redis, GIVE_BACK, [this.#key(clientOrderId)], [by])) === 1;
  }

  /**
   * Claims an order that is not to be sent (it is being cancelled outside its job's run: a failed
   * dependency, an operator, a failed collateral transfer) as blocked, so no run of it can send it
   * after the cancel was decided. Returns the send (or restored) claim a run holds instead, if any:
   * then the order may have been sent and must not be cancelled in the ledger.
   */
  async block(clientOrderId: string, by: string, nowMs = Date.now()): Promise<SendClaim | undefined> {
    const value = formatSendClaim({ kind: 'blocked', atMs: Math.floor(nowMs), by });
    const held = String(
      await evalScript(this.#redis, BLOCK, [this.#key(clientOrderId)], [value, SEND_CLAIM_TTL_MS]),
    );
    return held === '' ? undefined : parseSendClaim(held, clientOrderId);
  }

  /** Turns `by`'s own send claim into a blocked one (the run decided not to send after all). */
  async markBlocked(clientOrderId: string, by: string, nowMs = Date.now()): Promise<boolean> {
    return (
      Number(
        await evalScript(this.#redis, MARK_BLOCKED, [this.#key(clientOrderId)], [by, Math.floor(nowMs)]),
      ) === 1
    );
  }

  /**
   * After Redis lost its data: claims every order the ledger has `queued`, and every order it recorded
   * in the last `CLAIM_RETAIN_MS` whatever its state (`restored`, at `nowMs`), leaving a claim that
   * survived as it is. A queued one may have been claimed and sent before the loss, with the ledger
   * not yet told; its next run now asks the venue first and re-sends only when the venue proves it
   * never got it (not found after the send deadline, counted from now). The others had claims that may
   * be gone; a run of theirs now reads the ledger, which decides. Returns the client order ids claimed.
   */
  async restore(ledger: Ledger, o: { actor: string; nowMs: number }): Promise<string[]> {
    const ids = await ledger.clientOrderIdsToClaim({ createdSinceMs: o.nowMs - CLAIM_RETAIN_MS });
    const value = formatSendClaim({ kind: 'restored', atMs: Math.floor(o.nowMs), by: o.actor });
    const claimed: string[] = [];
    for (let i = 0; i < ids.length; i += 500) {
      const batch = ids.slice(i, i + 500);
      const m = this.#redis.multi();
      for (const id of batch) m.set(this.#key(id), value, 'PX', SEND_CLAIM_TTL_MS, 'NX');
      const res = (await m.exec()) ?? [];
      res.forEach(([err, r], j) => {
        if (err) throw err;
        if (r === 'OK') claimed.push(batch[j] as string);
      });
    }
    return claimed;
  }
}
