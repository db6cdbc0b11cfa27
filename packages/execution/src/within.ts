/**
 * `p`, or what `late()` gives (or throws) when `p` has not settled within `ms`. `p` itself cannot be
 * stopped: it is left to settle alone, and the timer is cleared either way.
 */
export async function within<T, L>(p: Promise<T>, ms: number, late: () => L): Promise<T | L> {
  let timer: NodeJS.Timeout | undefined;
  const lateP = new Promise<L>((resolve, reject) => {
    timer = setTimeout(() => {
      try {
        resolve(late());
      } catch (err) {
        reject(err);
      }
    }, ms);
  });
  try {
    return await Promise.race([p, lateP]);
  } finally {
    clearTimeout(timer);
  }
}
