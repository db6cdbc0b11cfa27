import { describe, expect, it } from 'vitest';
import {
  AcceptablePriceError,
  InvalidOrderError,
  NotConfirmedError,
  RateLimitError,
  VenueError,
  VenueNetworkError,
  VenueTimeoutError,
} from './errors.ts';

describe('venue error tree', () => {
  it('each error says what is known about the order and whether to retry', () => {
    const cases: [VenueError, string, boolean][] = [
      [new VenueNetworkError({ venue: 'v', message: 'connect refused' }), 'not-sent', true],
      [new VenueTimeoutError({ venue: 'v', message: 'no answer in 5s' }), 'unknown', true],
      [new RateLimitError({ venue: 'v', message: '429', retryAfterMs: 1000 }), 'not-sent', true],
      [new InvalidOrderError({ venue: 'v', message: 'size below minimum' }), 'rejected', false],
      [new NotConfirmedError({ venue: 'v', message: 'blockhash expired' }), 'unknown', true],
      [new AcceptablePriceError({ venue: 'v', message: 'price moved' }), 'rejected', true],
    ];
    for (const [err, outcome, retryable] of cases) {
      expect(err).toBeInstanceOf(VenueError);
      expect(err.outcome).toBe(outcome);
      expect(err.retryable).toBe(retryable);
      expect(err.code).toMatch(/^VENUE_/);
      expect(err.message).toMatch(/^v: /);
    }
  });
  it('a network error that may have landed can say so', () => {
    const e = new VenueNetworkError({
      venue: 'v',
      message: 'reset after write',
      outcome: 'unknown',
      clientOrderId: 'c1',
    });
    expect(e.outcome).toBe('unknown');
    expect(e.details).toMatchObject({ clientOrderId: 'c1' });
  });
});
