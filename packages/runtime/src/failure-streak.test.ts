import { describe, expect, it } from 'vitest';
import { FailureStreak } from './failure-streak.ts';

function streak(summaryEveryMs = 30_000) {
  let now = 1_000_000;
  const lines: [string, string][] = [];
  const s = new FailureStreak({
    what: 'orchestrator tick',
    error: (_err, msg) => lines.push(['error', msg]),
    warn: (_d, msg) => lines.push(['warn', msg]),
    info: (_d, msg) => lines.push(['info', msg]),
    nowMs: () => now,
    summaryEveryMs,
  });
  return { s, lines, advance: (ms: number) => (now += ms) };
}

describe('FailureStreak (regression: a ledger outage logged the failing tick four times a second, each with its stack)', () => {
  it('logs the first failure, a summary every 30 s while it repeats, and one line when it ends', () => {
    const { s, lines, advance } = streak();
    const down = new Error('connect ECONNREFUSED 127.0.0.1:5432');
    for (let i = 0; i < 4 * 70; i++) {
      s.fail(down);
      advance(250);
    }
    expect(s.failing).toBe(true);
    s.ok();
    expect(s.failing).toBe(false);
    expect(lines.map(([level]) => level)).toEqual(['error', 'warn', 'warn', 'info']);
    expect(lines[1]?.[1]).toMatch(/^orchestrator tick still failing: 120 more the same way \(121 since /);
    expect(lines[3]?.[1]).toBe('orchestrator tick succeeds again after 280 failures over 70 s');
    s.ok(); // no streak: nothing
    expect(lines).toHaveLength(4);
  });

  it('the same failure with other numbers or ids in its message is the same streak (one error line, then summaries)', () => {
    const { s, lines, advance } = streak();
    for (let i = 0; i < 4 * 40; i++) {
      s.fail(
        new Error(`planner tick ${46 + i} was overtaken by tick ${47 + i}: no answer within ${5000 + i} ms`),
      );
      advance(250);
    }
    expect(lines.map(([level]) => level)).toEqual(['error', 'warn']);
    s.fail(new Error('connect ECONNREFUSED 127.0.0.1:5432'));
    expect(lines.map(([level]) => level)).toEqual(['error', 'warn', 'error']);
  });

  it('a different failure is logged at once, with its error', () => {
    const { s, lines, advance } = streak();
    s.fail(new Error('connect ECONNREFUSED 127.0.0.1:5432'));
    advance(250);
    s.fail(new Error('connect ECONNREFUSED 127.0.0.1:5432'));
    s.fail(new Error('the database system is starting up'));
    expect(lines).toEqual([
      ['error', 'orchestrator tick failed'],
      ['error', 'orchestrator tick failed differently'],
    ]);
  });

  it('refuses a summary period that is no number of ms', () => {
    expect(() => streak(Number.NaN)).toThrow(/summaryEveryMs must be a finite number/);
  });
});
