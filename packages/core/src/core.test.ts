import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { AcceleratedClock, ManualClock } from './clock.ts';
import { assertFinite, isDatabaseUnavailable, NumericError, ValidationError, XhedgeError } from './errors.ts';
import { deterministicId } from './id-gen.ts';
import { ChainId, EntityId, VenueId } from './ids.ts';
import { canTransition, ORDER_TRANSITIONS, OrderStatus, TERMINAL_ORDER_STATUSES } from './model.ts';
import { maskCredentials, maskCredentialsDeep, redact } from './secrets.ts';
import { MS_PER_YEAR, median, roundToStep, toDecimalString, yearFraction } from './units.ts';
import { formatPath, parseOrThrow } from './zod-issues.ts';

describe('errors', () => {
  it('carries code, short message, details and cause; walk finds the root', () => {
    const root = new Error('socket hang up');
    const err = new XhedgeError('VENUE_NETWORK', 'venue unreachable', {
      details: { venue: 'gmx-arb' },
      cause: root,
    });
    expect(err.code).toBe('VENUE_NETWORK');
    expect(err.shortMessage).toBe('venue unreachable');
    expect(err.details).toEqual({ venue: 'gmx-arb' });
    expect(err.walk()).toBe(root);
    expect(err.walk((e) => e instanceof XhedgeError)).toBe(err);
    expect(JSON.parse(JSON.stringify(err))).toEqual({
      code: 'VENUE_NETWORK',
      message: 'venue unreachable',
      details: { venue: 'gmx-arb' },
    });
  });
  it('assertFinite refuses NaN and infinities', () => {
    expect(assertFinite('x', 1.5)).toBe(1.5);
    expect(() => assertFinite('delta', Number.NaN)).toThrow(NumericError);
    expect(() => assertFinite('delta', Number.POSITIVE_INFINITY)).toThrow(/delta is not a finite number/);
  });
  it('parseOrThrow lists every issue by path', () => {
    const schema = z.object({ venues: z.array(z.object({ chain: ChainId, id: VenueId })) });
    try {
      parseOrThrow(
        schema,
        {
          venues: [
            { chain: 'evm:1', id: 'ok-id' },
            { chain: 'eth', id: 'X' },
          ],
        },
        'config',
      );
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ValidationError);
      const paths = (err as ValidationError).issues.map((i) => i.path);
      expect(paths).toEqual(['venues[1].chain', 'venues[1].id']);
    }
    expect(formatPath(['a', 0, 'b', 2])).toBe('a[0].b[2]');
  });
});

/**
 * Regression (a Redis outage drill): the API answered 500 INTERNAL instead of 503 NOT_READY while Redis
 * was down or read-only, as ioredis's errors carry no code. These mirror redis-errors' classes (their
 * `name` is the constructor's); the real ones, from a real redis-server, are in apps/api's
 * redis-outage.test.ts (core does not depend on ioredis).
 */
describe('isDatabaseUnavailable: Redis', () => {
  class RedisError extends Error {
    override get name() {
      return this.constructor.name;
    }
  }
  class ReplyError extends RedisError {}
  class AbortError extends RedisError {}
  class MaxRetriesPerRequestError extends AbortError {}

  it('is true for ioredis giving up on a connection and for a server that cannot take the command now', () => {
    for (const err of [
      new MaxRetriesPerRequestError('Reached the max retries per request limit (which is 3).'),
      new Error('Connection is closed.'),
      new Error("Stream isn't writeable and enableOfflineQueue options is false"),
      new Error('Command timed out'),
      new AbortError('Command aborted due to connection close'),
      new ReplyError("READONLY You can't write against a read only replica."),
      new ReplyError('LOADING Redis is loading the dataset in memory'),
      new ReplyError("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."),
      new ReplyError("OOM command not allowed when used memory > 'maxmemory'."),
      new XhedgeError('INTERNAL', 'kill switch read failed', { cause: new Error('Connection is closed.') }),
    ])
      expect(isDatabaseUnavailable(err), `${err.name}: ${err.message}`).toBe(true);
  });

  it('is false for a wrong command, a script error, or an error that merely mentions a closed connection', () => {
    for (const err of [
      new ReplyError("ERR unknown command 'NOSUCH', with args beginning with: "),
      new ReplyError('NOSCRIPT No matching script. Please use EVAL.'),
      new ReplyError('WRONGTYPE Operation against a key holding the wrong kind of value'),
      new ReplyError('ERR user_script:1: Script attempted to access nonexistent global variable'),
      new ReplyError('READONLYISH not a reply prefix'),
      new Error("READONLY You can't write against a read only replica."), // not a server reply
      new Error('Connection is closed by the venue'),
      new Error('the order book is closed'),
      new Error('Connection is closed'), // not ioredis's exact message
      new DOMException('This operation was aborted', 'AbortError'),
      new AbortError('aborted by the caller'),
      new RedisError('Reached the max retries'),
    ])
      expect(isDatabaseUnavailable(err), `${err.name}: ${err.message}`).toBe(false);
  });
});

describe('ids and chains', () => {
  it.each(['evm:1', 'evm:42161', 'evm:10', 'solana:mainnet-beta', 'offchain'])('accepts chain %s', (c) => {
    expect(ChainId.safeParse(c).success).toBe(true);
  });
  it.each(['ethereum', 'evm:', 'evm:0', 'evm:abc', 'solana:moon', 'EVM:1'])('rejects chain %s', (c) => {
    expect(ChainId.safeParse(c).success).toBe(false);
  });
  it('deterministic ids are stable, distinct, and safe as BullMQ job ids', () => {
    const a = deterministicId('int', 'plan1', 0);
    expect(a).toBe(deterministicId('int', 'plan1', 0));
    expect(a).not.toBe(deterministicId('int', 'plan1', 1));
    expect(deterministicId('int', 'ab', 'c')).not.toBe(deterministicId('int', 'a', 'bc'));
    expect(a).toMatch(/^int_[0-9a-f]{24}$/);
    expect(a.includes(':')).toBe(false);
    expect(EntityId.safeParse(a).success).toBe(true);
  });
  it('an id too short or with a colon is refused, the message saying what an id is', () => {
    for (const bad of ['x', 'ab', 'int:1', '1abc']) {
      const r = EntityId.safeParse(bad);
      expect(r.success).toBe(false);
      expect(r.error?.issues[0]?.message).toBe(
        'expected an id of 3 to 128 letters, digits, _ and -, starting with a letter',
      );
    }
  });
});

describe('units', () => {
  it('year fraction is ACT/365 calendar time', () => {
    expect(yearFraction(0, MS_PER_YEAR)).toBe(1);
    expect(yearFraction(Date.UTC(2026, 0, 1), Date.UTC(2026, 0, 2))).toBeCloseTo(1 / 365, 15);
  });
  it('exact decimals round half-even and refuse NaN', () => {
    expect(toDecimalString(0.125, 2)).toBe('0.12');
    expect(toDecimalString(0.135, 2)).toBe('0.14');
    expect(toDecimalString(-0.0001, 2)).toBe('0');
    expect(() => toDecimalString(Number.NaN, 2)).toThrow(NumericError);
    expect(roundToStep('1.2345', '0.001')).toBe('1.234');
    expect(roundToStep('-1.2345', '0.01')).toBe('-1.23');
    expect(roundToStep('0.0004', '0.001')).toBe('0');
  });
});

describe('clocks', () => {
  it('manual clock moves only when told, never backwards', () => {
    const c = new ManualClock(1000);
    expect(c.nowMs()).toBe(1000);
    c.advance(500);
    expect(c.nowMs()).toBe(1500);
    expect(() => c.advance(-1)).toThrow(RangeError);
  });
  it('accelerated clock runs speed × wall time', () => {
    let wall = 0;
    const c = new AcceleratedClock({ startMs: 1_000_000, speed: 3600, wall: () => wall });
    wall = 1000;
    expect(c.nowMs()).toBe(1_000_000 + 3_600_000);
  });
});

describe('order state machine table', () => {
  it('terminal states have no way out and every state is reachable from planned', () => {
    for (const s of TERMINAL_ORDER_STATUSES) expect(ORDER_TRANSITIONS[s]).toEqual([]);
    const seen = new Set<string>(['planned']);
    const queue = ['planned'] as OrderStatus[];
    while (queue.length) {
      const s = queue.shift()!;
      for (const t of ORDER_TRANSITIONS[s]) {
        if (!seen.has(t)) {
          seen.add(t);
          queue.push(t);
        }
      }
    }
    expect([...seen].sort()).toEqual([...OrderStatus.options].sort());
    expect(canTransition('filled', 'sent')).toBe(false);
    expect(canTransition('outcome-unknown', 'filled')).toBe(true);
  });
});

describe('redact', () => {
  it('removes keys from RPC URLs: inline credentials, path tokens and api-key query parameters', () => {
    const text =
      'request to https://user:pw@rpc.example.com/x failed; https://eth.example.com/v2/abcdefghijklmnopqrstuvwxyz012345; ' +
      'https://sol.example.com/?api-key=K3Y-0123456789&cluster=mainnet; wss://x.example.com/?token=T0K3N99';
    const out = redact(text);
    for (const secret of ['user:pw', 'abcdefghijklmnopqrstuvwxyz012345', 'K3Y-0123456789', 'T0K3N99'])
      expect(out).not.toContain(secret);
    expect(out).toContain('https://sol.example.com/?api-key=[redacted]&cluster=mainnet');
    expect(redact('value 0xSECRETVALUE here', ['0xSECRETVALUE'])).toBe('value [redacted] here');
  });
});

describe('maskCredentials', () => {
  it('masks a URL userinfo of any scheme to its last @, secret query parameters and key=value settings', () => {
    expect(maskCredentials('connect postgres://user:p@ss@db:5432/x failed')).toBe(
      'connect postgres://[redacted]@db:5432/x failed',
    );
    expect(maskCredentials('rediss://:r3dis@cache:6380/0 and mysql://a:b@h')).toBe(
      'rediss://[redacted]@cache:6380/0 and mysql://[redacted]@h',
    );
    expect(maskCredentials('db?sslpassword=k3y&x=1 host=h password=hunter2 user=u')).toBe(
      'db?sslpassword=[redacted]&x=1 host=h password=[redacted] user=u',
    );
    // nothing but the credentials: a plain URL and an address stay
    expect(maskCredentials('https://api.example.com/v1 ops@example.com')).toBe(
      'https://api.example.com/v1 ops@example.com',
    );
  });

  it('walks the fields of a record, strings only, to a bounded depth', () => {
    expect(
      maskCredentialsDeep({
        message: 'x',
        details: { url: 'postgres://u:pw@h/db', n: 1 },
        list: ['password=p'],
      }),
    ).toEqual({
      message: 'x',
      details: { url: 'postgres://[redacted]@h/db', n: 1 },
      list: ['password=[redacted]'],
    });
    expect(maskCredentialsDeep({ a: { b: 'c' } }, 1)).toEqual({ a: '[nested too deep]' });
    // a field named as a secret is masked whatever it holds
    expect(maskCredentialsDeep({ config: { password: 'x', apiKey: 12345, host: 'h' } })).toEqual({
      config: { password: '[redacted]', apiKey: '[redacted]', host: 'h' },
    });
  });
});

describe('median', () => {
  it('the middle value, the mean of the middle two for an even count, none when empty; the input untouched', () => {
    const xs = [3, 1, 2];
    expect(median(xs)).toBe(2);
    expect(xs).toEqual([3, 1, 2]);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([7])).toBe(7);
    expect(median([])).toBeUndefined();
  });
});

describe('canonicalJson', () => {
  it('gives equal content equal text, whatever the key order; undefined members left out, as JSON writes them', async () => {
    const { canonicalJson } = await import('./canonical-json.ts');
    expect(canonicalJson({ b: 1, a: { d: [1, undefined], c: 'x' }, e: undefined })).toBe(
      '{"a":{"c":"x","d":[1,null]},"b":1}',
    );
    expect(canonicalJson({ a: { c: 'x', d: [1, null] }, b: 1 })).toBe(
      canonicalJson({ b: 1, a: { d: [1, null], c: 'x' } }),
    );
    expect(canonicalJson(undefined)).toBe('null');
  });
});
