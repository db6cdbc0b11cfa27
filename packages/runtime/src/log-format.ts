/** pino's numeric levels → the labels printed. */
const LEVELS: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO ',
  40: 'WARN ',
  50: 'ERROR',
  60: 'FATAL',
};
/** Fields every pino line has, or that the line's head already shows. */
const SKIP = new Set(['level', 'time', 'pid', 'hostname', 'msg']);

function value(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (Array.isArray(v)) return v.length === 0 ? undefined : v.map((x) => value(x) ?? '').join('; ');
  if (typeof v === 'object') {
    const m = (v as { message?: unknown }).message;
    return typeof m === 'string' ? m : JSON.stringify(v);
  }
  return String(v);
}

/**
 * One pino JSON line as a line for people: `HH:MM:SS LEVEL message key=value …` (local time; empty
 * lists and pino's bookkeeping left out). Redaction has already happened: pino redacts before it
 * serializes. A line that is not JSON is returned as is.
 */
export function formatLogLine(line: string): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const t = typeof rec.time === 'number' ? new Date(rec.time) : new Date();
  const hh = [t.getHours(), t.getMinutes(), t.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
  const level = LEVELS[typeof rec.level === 'number' ? rec.level : 30] ?? 'INFO ';
  const extra: string[] = [];
  for (const [k, v] of Object.entries(rec)) {
    if (SKIP.has(k)) continue;
    const s = value(v);
    if (s !== undefined) extra.push(`${k}=${s}`);
  }
  return `${hh} ${level} ${String(rec.msg ?? '')}${extra.length > 0 ? `  ${extra.join(' ')}` : ''}`;
}

/** A pino destination that prints {@link formatLogLine} lines to `out` (a terminal). */
export function prettyLogDestination(out: { write(s: string): unknown }): { write(line: string): void } {
  return {
    write(chunk: string) {
      for (const line of chunk.split('\n')) if (line.trim() !== '') out.write(`${formatLogLine(line)}\n`);
    },
  };
}
