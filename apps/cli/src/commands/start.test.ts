import { describe, expect, it } from 'vitest';
import { captureIo } from '../testing.ts';
import { onStopSignal, SIGNAL_REPEAT_MS, type StopSignalHost } from './start.ts';

/** A stand-in for the process: signals are delivered by `send`, exits are recorded. */
function fakeHost() {
  const listeners = new Map<string, Set<(sig: string) => void>>();
  const exits: number[] = [];
  let now = 1_000_000;
  const host: StopSignalHost = {
    on: (sig, l) => listeners.set(sig, (listeners.get(sig) ?? new Set()).add(l)),
    exit: (code) => exits.push(code),
    nowMs: () => now,
  };
  return {
    host,
    exits,
    advance: (ms: number) => {
      now += ms;
    },
    send: (sig: 'SIGINT' | 'SIGTERM') => {
      for (const l of listeners.get(sig) ?? []) l(sig);
    },
  };
}

describe('xhedge start: stop signals', () => {
  it('the first signal starts the graceful stop; a relayed repeat within a second changes nothing', async () => {
    const io = captureIo();
    const h = fakeHost();
    const stop = onStopSignal(io, h.host);
    h.send('SIGINT');
    await expect(stop.signal).resolves.toBe('SIGINT');
    h.advance(SIGNAL_REPEAT_MS - 1);
    h.send('SIGINT');
    expect(h.exits).toEqual([]);
    expect(io.stderr).toBe('');
  });

  it('a second signal after a second exits at once (130 for SIGINT, 143 for SIGTERM), saying what becomes of active orders', async () => {
    for (const [sig, code] of [
      ['SIGINT', 130],
      ['SIGTERM', 143],
    ] as const) {
      const io = captureIo();
      const h = fakeHost();
      const stop = onStopSignal(io, h.host);
      h.send('SIGTERM');
      await stop.signal;
      h.advance(SIGNAL_REPEAT_MS + 1);
      h.send(sig);
      expect(h.exits).toEqual([code]);
      expect(io.stderr).toMatch(new RegExp(`${sig} again during shutdown: exiting now`));
      expect(io.stderr).toMatch(/failed as stalled and resolved by its client order id/);
    }
  });

  it('a signal after the stop completed (done) neither exits nor prints', async () => {
    const io = captureIo();
    const h = fakeHost();
    const stop = onStopSignal(io, h.host);
    h.send('SIGINT');
    await stop.signal;
    stop.done();
    h.advance(5_000);
    h.send('SIGINT');
    expect(h.exits).toEqual([]);
    expect(io.stderr).toBe('');
  });
});
