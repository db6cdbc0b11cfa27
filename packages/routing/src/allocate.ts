/**
 * Variable cost of one venue as the allocator sees it. Marginal cost of the q-th unit:
 * `a + 2·k·q`, plus `openUsdPerUnit` once q passes `reducible` (the part that opens or grows a position).
 * Convex by construction (k ≥ 0, the opening charge ≥ 0 comes after the reducible part).
 */
export interface CostCurve {
  /** Linear cost per unit (fee, spread, funding carry), USD per underlying unit. */
  a: number;
  /** Impact coefficient, USD per unit²: impact(q) = k·q². */
  k: number;
  /** Size that reduces an existing position, underlying units. */
  reducible: number;
  /** Ranking charge per unit past `reducible`, USD per underlying unit. */
  openUsdPerUnit: number;
  /** Most this venue takes, underlying units. */
  cap: number;
}

/** Units a curve takes at marginal price λ; `upper` includes the flat (k = 0) segment priced exactly λ. */
function takenAt(c: CostCurve, lam: number, upper: boolean): number {
  const r = Math.min(c.reducible, c.cap);
  const kink = c.a + 2 * c.k * r;
  const past = (x: number) => (upper ? lam >= x : lam > x);
  if (c.k > 0) {
    if (lam <= c.a) return 0;
    const q1 = (lam - c.a) / (2 * c.k);
    if (q1 <= r) return q1;
    if (lam <= kink + c.openUsdPerUnit) return r;
    return Math.min((lam - c.a - c.openUsdPerUnit) / (2 * c.k), c.cap);
  }
  if (past(c.a + c.openUsdPerUnit)) return c.cap;
  return past(c.a) ? r : 0;
}

/**
 * Least variable-cost split of `size` over convex cost curves: every venue used trades up to the same
 * marginal cost λ (KKT for a separable convex problem with caps). λ is found by bisection; the units
 * priced exactly at λ on flat segments (linear venues, or a kink) are shared in proportion to their
 * room, so identical venues get identical sizes. Fixed costs are not seen here: the router compares
 * venue subsets, each paying its own legs' fixed costs. Returns the size per curve (sums to
 * min(size, Σ caps)).
 */
export function allocateEqualMarginal(curves: readonly CostCurve[], size: number): number[] {
  const capTotal = curves.reduce((s, c) => s + Math.max(c.cap, 0), 0);
  if (size >= capTotal) return curves.map((c) => Math.max(c.cap, 0));
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (const c of curves) {
    lo = Math.min(lo, c.a);
    hi = Math.max(hi, c.a + 2 * c.k * c.cap + c.openUsdPerUnit);
  }
  lo -= 1;
  hi += 1;
  const total = (lam: number, upper: boolean) =>
    curves.reduce((s, c) => s + (c.cap > 0 ? takenAt(c, lam, upper) : 0), 0);
  // Invariant: total(lo, upper) < size ≤ total(hi, upper).
  for (let i = 0; i < 200; i++) {
    const mid = lo + (hi - lo) / 2;
    if (mid <= lo || mid >= hi) break;
    if (total(mid, true) >= size) hi = mid;
    else lo = mid;
  }
  const base = curves.map((c) => (c.cap > 0 ? takenAt(c, lo, false) : 0));
  const room = curves.map((c, i) => (c.cap > 0 ? Math.max(takenAt(c, hi, true) - (base[i] ?? 0), 0) : 0));
  const rest = size - base.reduce((s, x) => s + x, 0);
  const roomTotal = room.reduce((s, x) => s + x, 0);
  return base.map((b, i) => {
    const add = roomTotal > 0 ? (Math.max(rest, 0) * (room[i] ?? 0)) / roomTotal : 0;
    return Math.min(b + add, Math.max(curves[i]?.cap ?? 0, 0));
  });
}
