/** Where a command writes; injected so commands are testable in-process. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  isTty: boolean;
}

export const processIo: CliIo = {
  out: (t) => process.stdout.write(t.endsWith('\n') ? t : `${t}\n`),
  err: (t) => process.stderr.write(t.endsWith('\n') ? t : `${t}\n`),
  isTty: Boolean(process.stdout.isTTY),
};

/**
 * A reader that stops early (`xhedge greeks … | head -3`, a `tee` killed before `start` stops) closes
 * the pipe: that ends the output, not the command. After an EPIPE the stream's writes go nowhere and
 * the command runs on to its end (a run still stops cleanly); any other stream error is rethrown.
 */
export function endOutputOnClosedPipe(stream: NodeJS.WriteStream | NodeJS.WritableStream): void {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    (stream as { write: (...a: unknown[]) => boolean }).write = () => true;
  });
}

/** Prints rows as an aligned text table. */
export function formatTable(rows: readonly (readonly (string | number)[])[]): string {
  const cells = rows.map((r) => r.map((c) => (typeof c === 'number' ? formatNumber(c) : c)));
  const widths: number[] = [];
  for (const r of cells) {
    r.forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 0, c.length);
    });
  }
  return cells
    .map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  '))
    .join('\n');
}

export function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (n !== 0 && (Math.abs(n) >= 1e9 || Math.abs(n) < 1e-4)) return n.toExponential(6);
  return Number(n.toPrecision(10)).toString();
}
