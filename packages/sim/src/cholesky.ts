import { SimError } from './errors.ts';

/**
 * Largest |pivot| of the factorization taken as zero: a correlation matrix with a pair at ±1 (or any
 * underlying an exact combination of others) is singular, and its pivot comes out 0 give or take rounding
 * (~1e-16 per term). Above it a pivot is factored as before; below its negative, the matrix is invalid.
 */
export const CHOLESKY_ZERO_PIVOT = 1e-12;

/**
 * Lower-triangular Cholesky factor L of a correlation matrix (L·Lᵀ = C), so correlated normals are
 * L·ε. Positive semi-definite matrices are factored: a zero pivot (within {@link CHOLESKY_ZERO_PIVOT}),
 * e.g. from a correlation of ±1, gives a zero column, so that underlying's draw is exactly a combination
 * of the earlier ones. Throws {@link SimError} naming the pair whose correlation the others make
 * impossible when the matrix is not positive semi-definite. `names` label the rows (default `#0`, `#1`…);
 * `what` names the matrix in the error.
 */
export function cholesky(
  matrix: readonly (readonly number[])[],
  names?: readonly string[],
  what = 'correlation matrix',
): number[][] {
  const n = matrix.length;
  const l: number[][] = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  const name = (i: number): string => names?.[i] ?? `#${i}`;
  // Correlation k/i (k < i) is impossible given those among underlyings 0..k and i: named with them.
  const refuse = (i: number, k: number): SimError => {
    const pair = `${name(k)}/${name(i)}`;
    const rho = matrix[i]?.[k];
    const given: string[] = [];
    for (const b of [...Array.from({ length: k + 1 }, (_, x) => x), i])
      for (let a = 0; a < b && a <= k; a++)
        if (!(a === k && b === i)) given.push(`${name(a)}/${name(b)} ${matrix[b]?.[a]}`);
    return new SimError(
      `${what} is not positive semi-definite (inconsistent correlations): ${pair} ${rho} is impossible together with ${given.join(', ')}; no set of returns has them all`,
      { row: i, column: k, pair, correlation: rho },
    );
  };
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let sum = matrix[i]?.[j] ?? Number.NaN;
      if (i === j) {
        // The pivot falls as each earlier column is taken off: the column that takes it clearly below 0
        // is the pair (k, i) the earlier correlations make impossible.
        for (let k = 0; k < j; k++) {
          sum -= (l[i]?.[k] ?? 0) * (l[j]?.[k] ?? 0);
          if (sum < -CHOLESKY_ZERO_PIVOT) throw refuse(i, k);
        }
        if (Number.isNaN(sum)) throw new SimError(`${what}: row ${name(i)} is not a number`, { row: i });
        (l[i] as number[])[j] = sum > CHOLESKY_ZERO_PIVOT ? Math.sqrt(sum) : 0;
      } else {
        for (let k = 0; k < j; k++) sum -= (l[i]?.[k] ?? 0) * (l[j]?.[k] ?? 0);
        const pivot = l[j]?.[j] ?? Number.NaN;
        if (pivot > 0) (l[i] as number[])[j] = sum / pivot;
        else {
          // Underlying j is an exact combination of the earlier ones (zero pivot): i's remaining
          // covariance with it must vanish as well — at most √CHOLESKY_ZERO_PIVOT, what a pivot taken
          // as zero allows (Cauchy–Schwarz) — and the column is 0.
          if (!(Math.abs(sum) <= Math.sqrt(CHOLESKY_ZERO_PIVOT))) throw refuse(i, j);
          (l[i] as number[])[j] = 0;
        }
      }
    }
  }
  return l;
}

/**
 * Builds the correlation matrix for `names` from pairwise entries keyed `A/B` (either order);
 * missing pairs are 0.
 */
export function correlationMatrix(
  names: readonly string[],
  pairs: Readonly<Record<string, number>>,
): number[][] {
  const known = new Set(names);
  for (const [key, rho] of Object.entries(pairs)) {
    const parts = key.split('/');
    const [a, b] = parts;
    if (parts.length !== 2 || a === undefined || b === undefined || !known.has(a) || !known.has(b)) {
      throw new SimError(`correlation "${key}" names an underlying that is not simulated`, { key });
    }
    if (a === b) throw new SimError(`correlation "${key}" pairs an underlying with itself`, { key });
    // Both orders given: the matrix would take A/B above the diagonal and B/A below it, and the factor
    // reads only one triangle, so one of the two numbers would be dropped without a word.
    if (Object.hasOwn(pairs, `${b}/${a}`))
      throw new SimError(`correlation of ${a} and ${b} is given twice ("${a}/${b}" and "${b}/${a}")`, {
        key,
      });
    if (!(rho >= -1 && rho <= 1)) throw new SimError(`correlation "${key}" = ${rho} is outside [-1, 1]`);
  }
  return names.map((a, i) =>
    names.map((b, j) => {
      if (i === j) return 1;
      return pairs[`${a}/${b}`] ?? pairs[`${b}/${a}`] ?? 0;
    }),
  );
}
