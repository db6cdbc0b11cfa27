import { XhedgeError } from '@xhedge/core';

/**
 * What is known about an order after an error:
 * - `not-sent`: it never reached the venue; safe to retry with the same client order id.
 * - `rejected`: the venue saw it and refused it; nothing will fill.
 * - `unknown`: it may or may not exist (timeout, unconfirmed transaction, keeper pending). Resolve by
 *   `getOrderByClientId` before anything is retried.
 */
export type OrderOutcome = 'not-sent' | 'rejected' | 'unknown';

export type VenueErrorCode =
  | 'VENUE_NETWORK'
  | 'VENUE_TIMEOUT'
  | 'VENUE_RATE_LIMIT'
  | 'VENUE_AUTH'
  | 'VENUE_INSUFFICIENT_FUNDS'
  | 'VENUE_INVALID_ORDER'
  | 'VENUE_NOT_SUPPORTED'
  | 'VENUE_REVERTED'
  | 'VENUE_NOT_CONFIRMED'
  | 'VENUE_ACCEPTABLE_PRICE'
  | 'VENUE_STALE_ORACLE'
  | 'VENUE_NONCE'
  | 'VENUE_HALTED'
  | 'VENUE_ORDER_NOT_FOUND'
  /** The venue's configuration does not match what its endpoint serves (another chain id, say). */
  | 'VENUE_MISCONFIGURED';

export interface VenueErrorParams {
  venue: string;
  message: string;
  outcome: OrderOutcome;
  retryable: boolean;
  clientOrderId?: string;
  details?: Record<string, unknown>;
  cause?: unknown;
}

/** Base of the venue error tree (CCXT-like, plus on-chain cases). */
export class VenueError extends XhedgeError {
  override name = 'VenueError';
  readonly venue: string;
  readonly outcome: OrderOutcome;
  readonly retryable: boolean;
  readonly clientOrderId: string | undefined;
  constructor(code: VenueErrorCode, p: VenueErrorParams) {
    super(code, `${p.venue}: ${p.message}`, {
      details: {
        venue: p.venue,
        outcome: p.outcome,
        retryable: p.retryable,
        clientOrderId: p.clientOrderId,
        ...p.details,
      },
      cause: p.cause,
    });
    this.venue = p.venue;
    this.outcome = p.outcome;
    this.retryable = p.retryable;
    this.clientOrderId = p.clientOrderId;
  }
}

type Params = Omit<VenueErrorParams, 'outcome' | 'retryable'> &
  Partial<Pick<VenueErrorParams, 'outcome' | 'retryable'>>;

/** Could not reach the venue. Default: not sent, retryable. Pass `outcome: 'unknown'` when the request may have landed. */
export class VenueNetworkError extends VenueError {
  override name = 'VenueNetworkError';
  constructor(p: Params) {
    super('VENUE_NETWORK', { outcome: 'not-sent', retryable: true, ...p });
  }
}
/** The request was sent and no answer came in time: outcome unknown, reconcile before retrying. */
export class VenueTimeoutError extends VenueError {
  override name = 'VenueTimeoutError';
  constructor(p: Params) {
    super('VENUE_TIMEOUT', { outcome: 'unknown', retryable: true, ...p });
  }
}
export class RateLimitError extends VenueError {
  override name = 'RateLimitError';
  readonly retryAfterMs: number | undefined;
  constructor(p: Params & { retryAfterMs?: number }) {
    super('VENUE_RATE_LIMIT', { outcome: 'not-sent', retryable: true, ...p });
    this.retryAfterMs = p.retryAfterMs;
  }
}
export class AuthError extends VenueError {
  override name = 'AuthError';
  constructor(p: Params) {
    super('VENUE_AUTH', { outcome: 'not-sent', retryable: false, ...p });
  }
}
export class InsufficientFundsError extends VenueError {
  override name = 'InsufficientFundsError';
  constructor(p: Params) {
    super('VENUE_INSUFFICIENT_FUNDS', { outcome: 'rejected', retryable: false, ...p });
  }
}
/** The order itself is wrong (size below minimum, unknown instrument, reduce-only would grow). Never retried. */
export class InvalidOrderError extends VenueError {
  override name = 'InvalidOrderError';
  constructor(p: Params) {
    super('VENUE_INVALID_ORDER', { outcome: 'rejected', retryable: false, ...p });
  }
}
export class NotSupportedError extends VenueError {
  override name = 'NotSupportedError';
  constructor(p: Params) {
    super('VENUE_NOT_SUPPORTED', { outcome: 'not-sent', retryable: false, ...p });
  }
}
/** An on-chain transaction reverted: it was mined and did nothing. */
export class RevertedError extends VenueError {
  override name = 'RevertedError';
  readonly reason: string | undefined;
  constructor(p: Params & { reason?: string }) {
    super('VENUE_REVERTED', { outcome: 'rejected', retryable: false, ...p });
    this.reason = p.reason;
  }
}
/** Sent but not confirmed (dropped, still pending, blockhash expired): outcome unknown. */
export class NotConfirmedError extends VenueError {
  override name = 'NotConfirmedError';
  constructor(p: Params) {
    super('VENUE_NOT_CONFIRMED', { outcome: 'unknown', retryable: true, ...p });
  }
}
/** The slippage bound (`acceptablePrice`, `minOut`) was not met; the market moved. Retry after re-quoting. */
export class AcceptablePriceError extends VenueError {
  override name = 'AcceptablePriceError';
  constructor(p: Params) {
    super('VENUE_ACCEPTABLE_PRICE', { outcome: 'rejected', retryable: true, ...p });
  }
}
export class StaleOracleError extends VenueError {
  override name = 'StaleOracleError';
  constructor(p: Params) {
    super('VENUE_STALE_ORACLE', { outcome: 'rejected', retryable: true, ...p });
  }
}
export class NonceError extends VenueError {
  override name = 'NonceError';
  constructor(p: Params) {
    super('VENUE_NONCE', { outcome: 'not-sent', retryable: true, ...p });
  }
}
/** The venue or its chain is halted (no blocks, trading paused). */
export class VenueHaltedError extends VenueError {
  override name = 'VenueHaltedError';
  constructor(p: Params) {
    super('VENUE_HALTED', { outcome: 'not-sent', retryable: true, ...p });
  }
}
export class OrderNotFoundError extends VenueError {
  override name = 'OrderNotFoundError';
  constructor(p: Params) {
    super('VENUE_ORDER_NOT_FOUND', { outcome: 'rejected', retryable: false, ...p });
  }
}

export function isVenueError(err: unknown): err is VenueError {
  return err instanceof VenueError;
}
