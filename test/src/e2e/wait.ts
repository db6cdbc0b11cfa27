/**
 * Polls `fn` every `stepMs` until it returns a value; after `timeoutMs` throws `timed out waiting for
 * <what>`, with `context()` (e.g. the run's last log lines) appended.
 */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined>,
  o: { timeoutMs: number; stepMs?: number; context?: () => string },
): Promise<T> {
  const deadline = Date.now() + o.timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${o.context ? `; ${o.context()}` : ''}`);
    await new Promise((r) => setTimeout(r, o.stepMs ?? 250));
  }
}
