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
    const [a, b] = key.split('/');
    if (a === undefined || b === undefined || !known.has(a) || !known.has(b)) {
      throw new SimError(`correlation "${key}" names an underlying that is not simulated`, { key });
    }
    if (a === b) throw new SimError(`correlation "${key}" pairs an underlying with itself`, { key });
    if (!(rho >= -1 && rho <= 1)) throw new SimError(`correlation "${key}" = ${rho} is outside [-1, 1]`);
  }
  return names.map((a, i) =>
    names.map((b, j) => {
      if (i === j) return 1;
      return pairs[`${a}/${b}`] ?? pairs[`${b}/${a}`] ?? 0;
    }),
  );
}
