/**
 * Redis key names. `prefix` should carry a hash tag (`{xhedge}`) on Redis Cluster so the keys a Lua
 * script touches share one slot.
 */
export function keysFor(prefix: string) {
  return {
    breaker: (name: string) => `${prefix}:breaker:${name}`,
    breakerTrial: (name: string) => `${prefix}:breaker-trial:${name}`,
    breakerIndex: `${prefix}:breakers`,
    venueCalls: (venue: string) => `${prefix}:venue-calls:${venue}`,
    venueErrors: (venue: string) => `${prefix}:venue-errors:${venue}`,
    prices: (underlying: string) => `${prefix}:prices:${underlying}`,
    ivs: (underlying: string) => `${prefix}:ivs:${underlying}`,
    skews: (underlying: string) => `${prefix}:skews:${underlying}`,
    bookMark: `${prefix}:book-mark`,
    controlState: `${prefix}:control-state`,
    kill: `${prefix}:kill`,
    killChannel: `${prefix}:kill-events`,
    killCancelLock: (eventId: string, venue: string) => `${prefix}:kill-cancel:${eventId}:${venue}`,
    lease: (name: string) => `${prefix}:lease:${name}`,
    leaseToken: (name: string) => `${prefix}:lease-token:${name}`,
    ctlUnderlying: (u: string) => `${prefix}:ctl:notional-u:${u}`,
    ctlVenue: (v: string) => `${prefix}:ctl:notional-v:${v}`,
    ctlNotional: `${prefix}:ctl:notional`,
    ctlExec: (u: string) => `${prefix}:ctl:exec:${u}`,
    ctlSide: (u: string) => `${prefix}:ctl:side:${u}`,
    ctlSideInfo: `${prefix}:ctl:side-info`,
    reconcileLock: `${prefix}:reconcile-lock`,
    sendClaim: (clientOrderId: string) => `${prefix}:send-claim:${clientOrderId}`,
    /** A producer's mark: it is between its ledger write of the order and its job add (`ProducerMarks`). */
    producing: (clientOrderId: string) => `${prefix}:producing:${clientOrderId}`,
  };
}
export type Keys = ReturnType<typeof keysFor>;
