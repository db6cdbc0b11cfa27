/**
 * Runs `close` once on the first SIGTERM or SIGINT, then exits (0 when it finished, 1 when it threw or
 * took longer than `graceMs`). A second signal exits at once. @returns a function removing the handlers.
 */
export function onShutdownSignals(
  close: (signal: NodeJS.Signals) => Promise<void>,
  opts: { graceMs?: number; exit?: (code: number) => void } = {},
): () => void {
  const exit = opts.exit ?? ((c: number) => process.exit(c));
  let closing = false;
  const handler = (signal: NodeJS.Signals) => {
    if (closing) return exit(1);
    closing = true;
    const timer = setTimeout(() => exit(1), opts.graceMs ?? 30_000);
    close(signal).then(
      () => {
        clearTimeout(timer);
        exit(0);
      },
      () => {
        clearTimeout(timer);
        exit(1);
      },
    );
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
  return () => {
    process.off('SIGTERM', handler);
    process.off('SIGINT', handler);
  };
}
