import { describe, expect, it } from 'vitest';
import { formatLogLine, prettyLogDestination } from './log-format.ts';

describe('log lines for people', () => {
  it('prints time, level, message and the fields that say something', () => {
    const at = new Date(2026, 0, 5, 9, 7, 3).getTime();
    const line = JSON.stringify({
      level: 40,
      time: at,
      pid: 1,
      hostname: 'h',
      msg: 'reading venue gmx-local failed',
      venue: 'gmx-local',
      err: { message: 'HTTP request failed.', stack: 'x' },
      blocked: [],
      notes: ['a', 'b'],
    });
    expect(formatLogLine(line)).toBe(
      '09:07:03 WARN  reading venue gmx-local failed  venue=gmx-local err=HTTP request failed. notes=a; b',
    );
  });

  it('passes lines that are not JSON through, and splits chunks into lines', () => {
    expect(formatLogLine('plain text')).toBe('plain text');
    const out: string[] = [];
    const d = prettyLogDestination({ write: (s: string) => out.push(s) });
    d.write(
      `${JSON.stringify({ level: 30, time: 0, msg: 'a' })}\n${JSON.stringify({ level: 50, time: 0, msg: 'b' })}\n`,
    );
    expect(out.map((l) => l.slice(9))).toEqual(['INFO  a\n', 'ERROR b\n']);
  });
});
