/**
 * Seeded pseudo-random numbers: xoshiro128** (32-bit state words, fast in JS) seeded through
 * splitmix32, with standard normals by the Marsaglia polar method. Every stream is a pure function of
 * its seed, so the same seed always gives the same paths.
 */
export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Standard normal N(0, 1). */
  normal(): number;
  /** Poisson-distributed count with mean `lambda` (small lambda: inverse transform). */
  poisson(lambda: number): number;
  /** An independent stream derived from this stream's seed and a label (stable across runs). */
  fork(label: string): Rng;
}

function splitmix32(state: number): () => number {
  let s = state >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** FNV-1a over a string: turns labels into 32-bit seeds. */
export function hashString(s: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

class Xoshiro128 implements Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;
  #spare: number | null = null;
  readonly #seed: number;

  constructor(seed: number) {
    this.#seed = seed >>> 0;
    const sm = splitmix32(this.#seed);
    this.#a = sm();
    this.#b = sm();
    this.#c = sm();
    this.#d = sm();
    // An all-zero state would stay zero forever.
    if ((this.#a | this.#b | this.#c | this.#d) === 0) this.#a = 1;
  }

  #nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.#b, 5), 7), 9) >>> 0;
    const t = this.#b << 9;
    this.#c ^= this.#a;
    this.#d ^= this.#b;
    this.#b ^= this.#c;
    this.#a ^= this.#d;
    this.#c ^= t;
    this.#d = rotl(this.#d, 11);
    return result;
  }

  next(): number {
    // 53 bits from two draws so tiny uniforms (jump arrivals) are resolved.
    const hi = this.#nextU32() >>> 5;
    const lo = this.#nextU32() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  normal(): number {
    if (this.#spare !== null) {
      const s = this.#spare;
      this.#spare = null;
      return s;
    }
    let u: number;
    let v: number;
    let s: number;
    do {
      u = 2 * this.next() - 1;
      v = 2 * this.next() - 1;
      s = u * u + v * v;
    } while (s >= 1 || s === 0);
    const m = Math.sqrt((-2 * Math.log(s)) / s);
    this.#spare = v * m;
    return u * m;
  }

  poisson(lambda: number): number {
    if (!(lambda >= 0) || !Number.isFinite(lambda)) throw new RangeError(`poisson: bad mean ${lambda}`);
    if (lambda === 0) return 0;
    if (lambda > 30) {
      // Large means only arise for extreme configs; a normal approximation keeps it O(1).
      return Math.max(0, Math.round(lambda + Math.sqrt(lambda) * this.normal()));
    }
    const l = Math.exp(-lambda);
    let k = 0;
    let p = this.next();
    while (p > l) {
      k++;
      p *= this.next();
    }
    return k;
  }

  fork(label: string): Rng {
    return new Xoshiro128(hashString(label, this.#seed ^ 0x5bd1e995));
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** A seeded generator; `seed` is any integer (taken modulo 2^32). */
export function createRng(seed: number): Rng {
  if (!Number.isInteger(seed)) throw new RangeError(`createRng: seed ${seed} must be an integer`);
  return new Xoshiro128(seed >>> 0);
}
