import { SimError } from './errors.ts';

/**
 * Lower-triangular Cholesky factor L of a correlation matrix (L·Lᵀ = C), so correlated normals are
 * L·ε. Throws {@link SimError} when the matrix is not positive definite (inconsistent correlations).
 */
export function cholesky(matrix: readonly (readonly number[])[]): number[][] {
  const n = matrix.length;
  const l: number[][] = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let sum = matrix[i]?.[j] ?? Number.NaN;
      for (let k = 0; k < j; k++) sum -= (l[i]?.[k] ?? 0) * (l[j]?.[k] ?? 0);
      if (i === j) {
        if (!(sum > 1e-12)) {
          throw new SimError('correlation matrix is not positive definite (inconsistent correlations)', {
            row: i,
          });
        }
        (l[i] as number[])[j] = Math.sqrt(sum);
      } else {
        (l[i] as number[])[j] = sum / (l[j]?.[j] ?? Number.NaN);
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
