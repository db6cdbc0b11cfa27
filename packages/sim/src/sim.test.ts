import { readFileSync } from 'node:fs';
import { AcceleratedClock, ManualClock, MS_PER_DAY, MS_PER_HOUR } from '@xhedge/core';
import { describe, expect, it } from 'vitest';
import { SimError } from './errors.ts';
import { createGasProcess } from './gas.ts';
import { createMarketFromConfig, createMarketSimulator } from './market.ts';
import { realizedVol, simulatePaths, summarizePaths } from './paths.ts';
import { PathEngine } from './processes.ts';
import { parsePriceCsv } from './replay.ts';
import { createRng } from './rng.ts';
import { DEFAULT_SURFACE, VolSurfaceState } from './surface.ts';

const CSV = new URL('../data/btc-usd-1h.csv', import.meta.url);
const series = parsePriceCsv(readFileSync(CSV, 'utf8'));

describe('rng', () => {
  it('is a pure function of the seed, with standard normals', () => {
    const a = createRng(7);
    const b = createRng(7);
    const c = createRng(8);
    const xs = Array.from({ length: 5 }, () => a.next());
    expect(Array.from({ length: 5 }, () => b.next())).toEqual(xs);
    expect(Array.from({ length: 5 }, () => c.next())).not.toEqual(xs);
    const r = createRng(1);
    let s = 0;
    let s2 = 0;
    const n = 100_000;
    for (let i = 0; i < n; i++) {
      const z = r.normal();
      s += z;
      s2 += z * z;
    }
    expect(Math.abs(s / n)).toBeLessThan(4 / Math.sqrt(n));
    expect(Math.abs(s2 / n - 1)).toBeLessThan(4 * Math.sqrt(2 / n));
    expect(createRng(3).fork('x').next()).toBe(createRng(3).fork('x').next());
    expect(createRng(3).fork('x').next()).not.toBe(createRng(3).fork('y').next());
  });
});

describe('price processes', () => {
  it('GBM realized vol is within sampling error of the input', () => {
    const vol = 0.8;
    const set = simulatePaths({
      underlying: { spot: 100, vol },
      days: 30,
      stepsPerDay: 24,
      paths: 300,
      seed: 7,
    });
    const s = summarizePaths(set);
    const n = 30 * 24;
    // sd of one path's realized vol ≈ σ/√(2n); of the mean over paths, divided by √paths.
    const se = vol / Math.sqrt(2 * n) / Math.sqrt(300);
    expect(Math.abs(s.realizedVolMean - vol)).toBeLessThan(4 * se);
    expect(s.realizedVolStd).toBeGreaterThan((0.5 * vol) / Math.sqrt(2 * n));
    expect(s.realizedVolStd).toBeLessThan((1.5 * vol) / Math.sqrt(2 * n));
  });

  it('same seed, same paths; another seed, other paths', () => {
    const opts = {
      process: { kind: 'jump' as const },
      underlying: { spot: 100, vol: 0.5 },
      days: 5,
      stepsPerDay: 24,
      paths: 3,
    };
    const a = simulatePaths({ ...opts, seed: 11 });
    const b = simulatePaths({ ...opts, seed: 11 });
    const c = simulatePaths({ ...opts, seed: 12 });
    expect(a.prices).toEqual(b.prices);
    expect(a.prices[0]).not.toEqual(c.prices[0]);
  });

  it('jump frequency and size are as configured', () => {
    const lambda = 20;
    const set = simulatePaths({
      process: { kind: 'jump', intensityPerYear: lambda, meanLogJump: -0.05, stdLogJump: 0.04 },
      underlying: { spot: 100, vol: 0.3 },
      days: 365,
      stepsPerDay: 4,
      paths: 200,
      seed: 3,
    });
    const mean = summarizePaths(set).jumpsPerPathMean;
    expect(Math.abs(mean - lambda)).toBeLessThan(4 * Math.sqrt(lambda / 200));
    // Sizes: with almost no diffusion, a step with one jump returns the jump.
    const engine = new PathEngine({
      underlyings: { X: { spot: 100, vol: 0.0001 } },
      process: { kind: 'jump', intensityPerYear: 2000, meanLogJump: -0.05, stdLogJump: 0.04 },
      rng: createRng(5),
    });
    const sizes: number[] = [];
    for (let i = 0; i < 20_000; i++) {
      const r = engine.step(1 / 8760);
      if (r.jumps[0] === 1) sizes.push(r.logReturns[0] ?? 0);
    }
    expect(sizes.length).toBeGreaterThan(1000);
    const m = sizes.reduce((a, b) => a + b, 0) / sizes.length;
    const sd = Math.sqrt(sizes.reduce((a, b) => a + (b - m) ** 2, 0) / (sizes.length - 1));
    // The compensator shifts each step by λ(e^{m+s²/2}−1)·dt ≈ +0.011 at this extreme intensity.
    const comp = (-2000 * (Math.exp(-0.05 + 0.5 * 0.04 ** 2) - 1)) / 8760;
    expect(m).toBeCloseTo(-0.05 + comp, 2);
    expect(sd).toBeCloseTo(0.04, 2);
  });

  it('correlations of BTC, ETH and SOL returns are as configured', () => {
    const corr = { 'BTC/ETH': 0.8, 'BTC/SOL': 0.6, 'ETH/SOL': 0.7 };
    const engine = new PathEngine({
      underlyings: {
        BTC: { spot: 95_000, vol: 0.5 },
        ETH: { spot: 3_500, vol: 0.7 },
        SOL: { spot: 180, vol: 0.9 },
      },
      correlations: corr,
      rng: createRng(9),
    });
    const n = 20_000;
    const rs = [[], [], []] as number[][];
    for (let k = 0; k < n; k++) {
      const r = engine.step(1 / 8760);
      for (let i = 0; i < 3; i++) rs[i]?.push(r.logReturns[i] ?? 0);
    }
    const c = (a: number[], b: number[]) => {
      const ma = a.reduce((x, y) => x + y, 0) / n;
      const mb = b.reduce((x, y) => x + y, 0) / n;
      let sab = 0;
      let saa = 0;
      let sbb = 0;
      for (let i = 0; i < n; i++) {
        const da = (a[i] ?? 0) - ma;
        const db = (b[i] ?? 0) - mb;
        sab += da * db;
        saa += da * da;
        sbb += db * db;
      }
      return sab / Math.sqrt(saa * sbb);
    };
    const [btc = [], eth = [], sol = []] = rs;
    // se of a sample correlation ≈ (1−ρ²)/√n ≈ 0.005 here.
    expect(Math.abs(c(btc, eth) - 0.8)).toBeLessThan(0.03);
    expect(Math.abs(c(btc, sol) - 0.6)).toBeLessThan(0.03);
    expect(Math.abs(c(eth, sol) - 0.7)).toBeLessThan(0.03);
  });

  it('refuses inconsistent correlations', () => {
    expect(
      () =>
        new PathEngine({
          underlyings: { A: { spot: 1, vol: 0.5 }, B: { spot: 1, vol: 0.5 }, C: { spot: 1, vol: 0.5 } },
          correlations: { 'A/B': 0.9, 'A/C': 0.9, 'B/C': -0.9 },
          rng: createRng(1),
        }),
    ).toThrow(SimError);
  });

  it('refuses an indefinite correlation matrix naming the impossible pair and the pairs it contradicts', () => {
    const underlyings = { A: { spot: 1, vol: 0.5 }, B: { spot: 1, vol: 0.5 }, C: { spot: 1, vol: 0.5 } };
    expect(
      () =>
        new PathEngine({
          underlyings,
          correlations: { 'A/B': 0.9, 'A/C': 0.9, 'B/C': -0.9 },
          rng: createRng(1),
        }),
    ).toThrow(
      /^correlation matrix is not positive semi-definite \(inconsistent correlations\): B\/C -0\.9 is impossible together with A\/B 0\.9, A\/C 0\.9/,
    );
    // Singular and invalid: B is A, so B/C must equal A/C.
    expect(
      () =>
        new PathEngine({ underlyings, correlations: { 'A/B': 1, 'A/C': 0.5, 'B/C': 0 }, rng: createRng(1) }),
    ).toThrow(/B\/C 0 is impossible together with A\/B 1, A\/C 0\.5/);
  });

  it.each([1, -1])(
    'correlation %d of two underlyings gives identical (or negated) log returns, step by step',
    (rho) => {
      // Drift σ²/2 cancels the Itô term: a step's log return is σ·√dt·z exactly, so −1 negates it exactly.
      const u = { spot: 100, vol: 0.5, drift: 0.5 * 0.5 * 0.5 };
      const engine = new PathEngine({
        underlyings: { A: u, B: { ...u, spot: 3 } },
        correlations: { 'A/B': rho },
        rng: createRng(17),
      });
      let moved = 0;
      for (let k = 0; k < 2000; k++) {
        const r = engine.step(1 / 8760);
        const [a = Number.NaN, b = Number.NaN] = r.logReturns;
        expect(Number.isFinite(a)).toBe(true);
        expect(b).toBe(rho * a);
        if (a !== 0) moved++;
      }
      expect(moved).toBe(2000);
      expect(Math.log(engine.spot(1) / 3)).toBeCloseTo(rho * Math.log(engine.spot(0) / 100), 9);
    },
  );

  it('a stressed correlation of 1 moves two underlyings together; a pair at 1 beside a third is factored', () => {
    const engine = new PathEngine({
      underlyings: { A: { spot: 100, vol: 0.5 }, B: { spot: 100, vol: 0.5 } },
      process: {
        kind: 'regime',
        stressedCorrelation: 1,
        startStressed: true,
        stressedToCalmPerYear: 0,
        stressedJumpsPerYear: 0,
      },
      rng: createRng(3),
    });
    for (let k = 0; k < 500; k++) {
      const r = engine.step(1 / 8760);
      expect(r.regime).toBe('stressed');
      expect(Number.isFinite(r.logReturns[0])).toBe(true);
      expect(r.logReturns[1]).toBe(r.logReturns[0]);
    }
    const three = new PathEngine({
      underlyings: { A: { spot: 1, vol: 0.5 }, B: { spot: 1, vol: 0.5 }, C: { spot: 1, vol: 0.5 } },
      correlations: { 'A/B': 1, 'A/C': 0.5, 'B/C': 0.5 },
      rng: createRng(4),
    });
    const n = 20_000;
    let sac = 0;
    let saa = 0;
    let scc = 0;
    for (let k = 0; k < n; k++) {
      const r = three.step(1 / 8760);
      const [a = Number.NaN, b = Number.NaN, c = Number.NaN] = r.logReturns;
      expect(b).toBe(a);
      sac += a * c;
      saa += a * a;
      scc += c * c;
    }
    expect(Math.abs(sac / Math.sqrt(saa * scc) - 0.5)).toBeLessThan(0.03);
  });

  it('refuses a pair given in both orders (one number would be ignored) and keys that are not A/B', () => {
    const underlyings = { A: { spot: 1, vol: 0.5 }, B: { spot: 1, vol: 0.5 } };
    expect(
      () => new PathEngine({ underlyings, correlations: { 'A/B': 0.8, 'B/A': 0.2 }, rng: createRng(1) }),
    ).toThrow(/given twice/);
    expect(() => new PathEngine({ underlyings, correlations: { 'A/B/C': 0.5 }, rng: createRng(1) })).toThrow(
      SimError,
    );
  });

  it('regime switching spends the configured share of time stressed, with higher vol there', () => {
    const engine = new PathEngine({
      underlyings: { X: { spot: 100, vol: 0.4 } },
      process: {
        kind: 'regime',
        calmToStressedPerYear: 100,
        stressedToCalmPerYear: 300,
        stressedVolMultiplier: 3,
        stressedJumpsPerYear: 0,
      },
      rng: createRng(4),
    });
    const dt = 1 / 8760;
    let stressed = 0;
    const calmR: number[] = [];
    const stressR: number[] = [];
    const n = 2 * 8760;
    for (let k = 0; k < n; k++) {
      const r = engine.step(dt);
      if (r.regime === 'stressed') {
        stressed++;
        stressR.push(r.logReturns[0] ?? 0);
      } else calmR.push(r.logReturns[0] ?? 0);
    }
    expect(Math.abs(stressed / n - 0.25)).toBeLessThan(0.06);
    const vol = (xs: number[]) => Math.sqrt(xs.reduce((a, b) => a + b * b, 0) / xs.length / dt);
    expect(vol(calmR)).toBeCloseTo(0.4, 1);
    expect(vol(stressR) / vol(calmR)).toBeGreaterThan(2.5);
    expect(vol(stressR) / vol(calmR)).toBeLessThan(3.5);
  });

  it('Heston variance mean-reverts around its long-run level', () => {
    const s = summarizePaths(
      simulatePaths({
        process: { kind: 'heston', kappa: 4, volOfVol: 0.6, rho: -0.6 },
        underlying: { spot: 100, vol: 0.6 },
        days: 365,
        stepsPerDay: 24,
        paths: 40,
        seed: 2,
      }),
    );
    expect(s.realizedVolMean).toBeGreaterThan(0.45);
    expect(s.realizedVolMean).toBeLessThan(0.7);
    // Stochastic vol spreads realized vol across paths far more than GBM's sampling error (≈0.005).
    expect(s.realizedVolStd).toBeGreaterThan(0.03);
  });

  it('refuses a horizon that is not a whole number of steps, naming the nearest whole ones', () => {
    const base = { underlying: { spot: 100, vol: 0.8 }, paths: 2, seed: 1 };
    // 10.5 hourly steps: rounded, it ran 11 hours.
    expect(() => simulatePaths({ ...base, days: 0.4375, stepsPerDay: 24 })).toThrow(
      /^days 0\.4375 × stepsPerDay 24 is 10\.5 steps, not a whole number; .*: 0\.4166666667 days \(10 steps\) or 0\.4583333333 days \(11 steps\)$/,
    );
    expect(() => simulatePaths({ ...base, days: 2.4, stepsPerDay: 1 })).toThrow(
      /is 2\.4 steps, not a whole number; .*: 2 days \(2 steps\) or 3 days \(3 steps\)$/,
    );
    expect(() => simulatePaths({ ...base, days: 0.01, stepsPerDay: 24 })).toThrow(
      /is 0\.24 steps, not a whole number; .*: 0\.04166666667 days \(1 step\)$/,
    );
    // Whole up to the float residue of 0.1 day × 10 steps per day; the result states the horizon run.
    const tenth = simulatePaths({ ...base, days: 0.1, stepsPerDay: 10 });
    expect([tenth.steps, tenth.horizonDays, tenth.prices[0]?.length]).toEqual([1, 0.1, 2]);
    const month = simulatePaths({ ...base, days: 30, stepsPerDay: 24 });
    expect([month.steps, month.horizonDays, month.dtYears]).toEqual([720, 30, 1 / (24 * 365)]);
  });

  it('realizedVol rejects too-short series', () => {
    expect(() => realizedVol([100], 1 / 365)).toThrow(SimError);
  });
});

describe('Heston variance at any kappa·dt', () => {
  // kappa 1000 per year, theta 0.64, v0 0.09 (vol 0.3), vol of variance 0.8: the Euler step alone swung
  // the mean variance between 0 and 2.5·theta at kappa·dt 2.7 (1.597 after the first step).
  const kappa = 1000;
  const theta = 0.64;
  const v0 = 0.09;
  const heston = { kind: 'heston' as const, kappa, thetaVar: theta, volOfVol: 0.8, rho: -0.5 };

  it.each([
    ['2.7 (daily steps)', 1 / 365],
    ['8', 0.008],
  ])(
    'kappa·dt %s: the mean variance follows theta + (v0 − theta)·e^(−kappa·t), bounded, never stuck at 0',
    (_, dt) => {
      const paths = 2000;
      const steps = 10;
      const sum = new Float64Array(steps + 1);
      const sumR2 = new Float64Array(steps + 1);
      let max = 0;
      let zeros = 0;
      const root = createRng(12);
      for (let p = 0; p < paths; p++) {
        const e = new PathEngine({
          underlyings: { X: { spot: 100, vol: Math.sqrt(v0) } },
          process: heston,
          rng: root.fork(`path:${p}`),
        });
        for (let k = 1; k <= steps; k++) {
          const r = e.step(dt);
          const v = e.instantVol(0) ** 2;
          expect(Number.isFinite(v) && Number.isFinite(r.logReturns[0])).toBe(true);
          sum[k] = (sum[k] ?? 0) + v;
          sumR2[k] = (sumR2[k] ?? 0) + (r.logReturns[0] ?? 0) ** 2;
          max = Math.max(max, v);
          if (v === 0) zeros++;
        }
      }
      for (let k = 1; k <= steps; k++) {
        const mean = (sum[k] ?? 0) / paths;
        const expected = theta + (v0 - theta) * Math.exp(-kappa * dt * k);
        expect(Math.abs(mean / expected - 1), `step ${k}: mean ${mean}, expected ${expected}`).toBeLessThan(
          0.03,
        );
      }
      // The stationary sd of the variance is √(theta·ξ²/(2·kappa)) ≈ 0.014: far below 1.5·theta.
      expect(max).toBeLessThan(1.5 * theta);
      expect(zeros).toBe(0);
      // The spot moves with the variance of the sub-steps: once the variance has settled, a step's
      // return has variance ≈ theta·dt (the Euler step's stuck-at-0 variance gave far less).
      let r2 = 0;
      for (let k = 3; k <= steps; k++) r2 += sumR2[k] ?? 0;
      expect(Math.abs(r2 / (paths * (steps - 2)) / (theta * dt) - 1)).toBeLessThan(0.05);
    },
  );

  it('a step above kappa·dt 0.1 is equal sub-steps of the same stream: as if stepped at kappa·dt ≤ 0.1', () => {
    // kappa·dt 2.74 → 28 sub-steps of kappa·dt 0.098. Two correlated underlyings, spot/variance rho −0.9.
    const opts = () => ({
      underlyings: { BTC: { spot: 95_000, vol: 0.3 }, ETH: { spot: 3_500, vol: 0.5 } },
      correlations: { 'BTC/ETH': 0.6 },
      process: { ...heston, rho: -0.9 },
      rng: createRng(99),
    });
    const whole = new PathEngine(opts());
    const fine = new PathEngine(opts());
    const dt = 1 / 365;
    for (let k = 0; k < 20; k++) {
      const r = whole.step(dt);
      const sum = [0, 0];
      for (let j = 0; j < 28; j++) {
        const f = fine.step(dt / 28);
        sum[0] = (sum[0] ?? 0) + (f.logReturns[0] ?? 0);
        sum[1] = (sum[1] ?? 0) + (f.logReturns[1] ?? 0);
      }
      for (let i = 0; i < 2; i++) {
        expect(whole.spot(i)).toBe(fine.spot(i));
        expect(whole.instantVol(i)).toBe(fine.instantVol(i));
        expect(r.logReturns[i]).toBe(sum[i]);
      }
      expect(r.dtYears).toBe(dt);
    }
  });

  it('refuses a step that would need more than a million sub-steps, naming kappa and dt, before moving', () => {
    const e = new PathEngine({
      underlyings: { X: { spot: 100, vol: 0.5 } },
      process: { kind: 'heston', kappa: 10_000 },
      rng: createRng(1),
    });
    expect(() => e.step(200)).toThrow(
      /^Heston kappa 10000 per year on a step of 200 years \(kappa·dt 2000000\) needs 20000000 sub-steps to keep kappa·dt at most 0\.1, above the limit of 1000000 per step/,
    );
    expect(e.spot(0)).toBe(100);
    expect(e.instantVol(0)).toBe(0.5);
    e.step(1 / 8760);
    expect(e.spot(0)).not.toBe(100);
  });

  it('kappa·dt at or below 0.1 steps exactly as before (values of the Euler step before sub-steps)', () => {
    const two = new PathEngine({
      underlyings: { BTC: { spot: 95_000, vol: 0.55, drift: 0.1 }, ETH: { spot: 3_500, vol: 0.7 } },
      correlations: { 'BTC/ETH': 0.7 },
      process: { kind: 'heston', kappa: 3, volOfVol: 0.8, rho: -0.6 },
      rng: createRng(21),
    });
    const rec: number[] = [];
    for (let k = 1; k <= 200; k++) {
      const r = two.step(1 / 8760);
      if (k === 1 || k === 200)
        rec.push(
          r.logReturns[0] ?? 0,
          r.logReturns[1] ?? 0,
          two.spot(0),
          two.spot(1),
          two.instantVol(0),
          two.instantVol(1),
        );
    }
    expect(rec).toEqual([
      0.005010812700378995, 0.0003805589945262726, 95477.2218426546, 3501.3322099570064, 0.5487832051700144,
      0.6975409596011601, -0.0031070953231228117, -0.0006121096972423863, 80626.92849039576,
      2742.1424453093077, 0.5499521642174432, 0.8002869079581735,
    ]);
    // kappa·dt exactly 0.1 (100 × 0.001): still one Euler step.
    const edge = new PathEngine({
      underlyings: { X: { spot: 100, vol: 0.8 } },
      process: { kind: 'heston', kappa: 100, volOfVol: 1.5, rho: -0.7, thetaVar: 0.36 },
      rng: createRng(5),
    });
    for (let k = 1; k <= 50; k++) edge.step(0.001);
    expect([edge.spot(0), edge.instantVol(0)]).toEqual([100.49422579417119, 0.5227530944545026]);
    const set = simulatePaths({
      process: { kind: 'heston', kappa: 20, volOfVol: 1 },
      underlying: { spot: 100, vol: 0.6 },
      days: 30,
      stepsPerDay: 1,
      paths: 3,
      seed: 8,
    });
    expect(set.prices.map((p) => p[30])).toEqual([103.25956035590332, 98.72276956580524, 108.4792007744744]);
  });
});

describe('inputs a double cannot simulate', () => {
  const engine = (underlying: Record<string, unknown>, process?: Record<string, unknown>) =>
    new PathEngine({
      underlyings: { X: { spot: 100, vol: 0.8, ...underlying } as never },
      ...(process ? { process: process as never } : {}),
      rng: createRng(1),
    });

  it.each([
    [{ drift: 1e300 }, undefined, /underlying X: drift is a decimal per year, at most 100, got 1e\+300/],
    [{ drift: -1e300 }, undefined, /drift is a decimal per year, at least -100, got -1e\+300/],
    [{ spot: 1e308 }, undefined, /spot is USD, at most 1000000000000, got 1e\+308/],
    [{ spot: 1e-320 }, undefined, /spot is USD, at least 1e-12, got 1e-320/],
    [{ vol: 1e300 }, undefined, /vol is a decimal \(0\.8 = 80%\), at most 5, got 1e\+300/],
    [
      {},
      { kind: 'jump', intensityPerYear: 1e300 },
      /bad process: intensityPerYear is at most 100000, got 1e\+300/,
    ],
    [{}, { kind: 'jump', meanLogJump: 1000 }, /meanLogJump is a log size, at most 5, got 1000/],
    [{}, { kind: 'jump', stdLogJump: 1000 }, /stdLogJump is a log size, at most 5, got 1000/],
    [{}, { kind: 'heston', kappa: 1e300 }, /kappa is per year, at most 10000/],
    [{}, { kind: 'heston', volOfVol: 1e300 }, /volOfVol is at most 20/],
    [{}, { kind: 'heston', thetaVar: 1e300 }, /thetaVar is a variance, at most 25/],
    [{}, { kind: 'regime', stressedVolMultiplier: 1e300 }, /stressedVolMultiplier is at most 20/],
    [{}, { kind: 'regime', stressedJumpsPerYear: 1e300 }, /stressedJumpsPerYear is at most 100000/],
  ])('refuses %j %j by name at construction', (underlying, process, message) => {
    expect(() => engine(underlying, process)).toThrow(SimError);
    expect(() => engine(underlying, process)).toThrow(message);
  });

  it('a path driven past the range of a double is an error naming the inputs, never an Infinity or 0 price', () => {
    // Within bounds, but e^(100·7.1) overflows: 10 years of daily steps cannot be simulated.
    for (const drift of [100, -100])
      expect(() =>
        simulatePaths({
          underlying: { spot: 100, vol: 0.8, drift },
          days: 3650,
          stepsPerDay: 1,
          paths: 2,
          seed: 1,
        }),
      ).toThrow(
        new RegExp(
          `underlying X: the simulated price left the range of a double after 7\\.\\d+ years .*spot 100, drift ${drift}, vol 0\\.8, process gbm`,
        ),
      );
    // Huge jumps at the largest rate: the compensator underflows the price at once.
    expect(() =>
      simulatePaths({
        process: { kind: 'jump', intensityPerYear: 100_000, meanLogJump: 5, stdLogJump: 5 },
        underlying: { spot: 100, vol: 0.8 },
        days: 1,
        stepsPerDay: 24,
        paths: 1,
        seed: 1,
      }),
    ).toThrow(
      /left the range of a double .*process jump \(intensityPerYear 100000, meanLogJump 5, stdLogJump 5\)/,
    );
  });

  it('the bounds themselves simulate finite statistics', () => {
    const s = summarizePaths(
      simulatePaths({
        process: { kind: 'heston', kappa: 10_000, volOfVol: 20, thetaVar: 25 },
        underlying: { spot: 1e12, vol: 5, drift: 100 },
        days: 30,
        stepsPerDay: 24,
        paths: 5,
        seed: 3,
      }),
    );
    for (const [k, v] of Object.entries(s)) expect([k, Number.isFinite(v)]).toEqual([k, true]);
  });

  it('refuses a path set too large to hold before allocating it', () => {
    expect(() =>
      simulatePaths({ underlying: { spot: 100, vol: 0.8 }, days: 30, stepsPerDay: 24, paths: 1e12, seed: 1 }),
    ).toThrow(/paths × \(steps \+ 1\) = 1000000000000 × 721 prices is above the limit of 100000000/);
  });
});

describe('historical replay', () => {
  it('finds the four gaps explicitly', () => {
    expect(series.prices.length).toBe(4612);
    expect(series.stepMs).toBe(MS_PER_HOUR);
    expect(series.gaps.map((g) => (g.toMs - g.fromMs) / MS_PER_HOUR)).toEqual([2, 25, 8, 25]);
    expect(series.gaps.map((g) => g.missingRows)).toEqual([1, 24, 7, 24]);
  });

  it('holds the last price inside a gap and flags it stale', () => {
    const g = series.gaps[1];
    if (!g) throw new Error('gap missing');
    const inside = series.priceAt(g.fromMs + 5 * MS_PER_HOUR);
    expect(inside.stale).toBe(true);
    expect(inside.asOfMs).toBe(g.fromMs);
    expect(inside.gap).toEqual(g);
    const normal = series.priceAt(series.startMs + 30 * 60_000);
    expect(normal.stale).toBe(false);
    expect(normal.priceUsd).toBe(series.prices[0]);
    expect(() => series.priceAt(series.startMs - 1)).toThrow(SimError);
  });

  it('lays the series on its regular grid, holding the last price through gaps', () => {
    const grid = series.regularPrices();
    // 4,612 rows plus the 1 + 24 + 7 + 24 hours missing inside the gaps.
    expect(grid.length).toBe(4612 + 56);
    expect((series.endMs - series.startMs) / MS_PER_HOUR + 1).toBe(grid.length);
    const g = series.gaps[1];
    if (!g) throw new Error('gap missing');
    const at = (ms: number): number => grid[(ms - series.startMs) / MS_PER_HOUR] as number;
    const held = series.priceAt(g.fromMs).priceUsd;
    for (let h = 0; h < 25; h++) expect(at(g.fromMs + h * MS_PER_HOUR)).toBe(held);
    expect(at(g.toMs)).toBe(series.priceAt(g.toMs).priceUsd);
    expect(grid[grid.length - 1]).toBe(series.prices[series.prices.length - 1]);
  });

  it('weighs returns across gaps by their time span (about 37% annualized)', () => {
    const tw = series.realizedVol();
    const skip = series.realizedVol({ gaps: 'skip' });
    expect(tw).toBeGreaterThan(0.33);
    expect(tw).toBeLessThan(0.41);
    expect(Math.abs(tw - skip)).toBeLessThan(0.02);
  });

  it('rejects malformed CSV with the line number', () => {
    expect(() =>
      parsePriceCsv('timestamp,price\n2025-01-01T00:00:00Z,100\n2025-01-01T01:00:00Z,-3\n'),
    ).toThrow(/line 3/);
    expect(() =>
      parsePriceCsv('timestamp,price\n2025-01-01T01:00:00Z,100\n2025-01-01T00:00:00Z,101\n'),
    ).toThrow(/increasing/);
  });

  it('refuses epoch seconds, which read as ms would replay 1000× too fast', () => {
    expect(() => parsePriceCsv('1735689600,100\n1735693200,101\n')).toThrow(/line 1: .*epoch seconds/);
    const ms = parsePriceCsv('1735689600000,100\n1735693200000,101\n');
    expect(ms.stepMs).toBe(MS_PER_HOUR);
  });

  it('reads timestamps without a zone as UTC, whatever the machine’s zone (no DST holes or fake gaps)', () => {
    // Hourly rows across the US spring-forward (2025-03-09) and fall-back (2025-11-02) nights.
    const hours = (day: string) =>
      ['00', '01', '02', '03', '04'].map((h, i) => `${day} ${h}:00:00,${100 + i}`).join('\n');
    const text = `timestamp,price\n${hours('2025-03-09')}\n${hours('2025-11-02').replaceAll(' ', 'T')}\n`;
    const tz = process.env.TZ;
    process.env.TZ = 'America/New_York';
    try {
      const s = parsePriceCsv(text);
      expect(s.timesMs[0]).toBe(Date.UTC(2025, 2, 9, 0));
      expect(s.timesMs[7]).toBe(Date.UTC(2025, 10, 2, 2));
      expect(s.stepMs).toBe(MS_PER_HOUR);
      // Only the real hole between the two nights.
      expect(s.gaps).toHaveLength(1);
    } finally {
      if (tz === undefined) delete process.env.TZ;
      else process.env.TZ = tz;
    }
  });

  it('flags a price held one full step past the last row as stale, as inside a gap', () => {
    expect(series.priceAt(series.endMs + series.stepMs - 1).stale).toBe(false);
    expect(series.priceAt(series.endMs + series.stepMs).stale).toBe(true);
  });

  it('drives a market underlying, stale inside gaps', () => {
    const clock = new ManualClock(series.startMs);
    const market = createMarketSimulator({
      underlyings: { BTC: { spot: 1, vol: 0.4 }, ETH: { spot: 3500, vol: 0.7 } },
      replay: { BTC: series },
      seed: 1,
      clock,
      stepMs: 60_000,
    });
    expect(market.spot('BTC')).toBeCloseTo(series.prices[0] ?? 0, 6);
    const g = series.gaps[0];
    if (!g) throw new Error('gap missing');
    clock.set(g.fromMs + 90 * 60_000);
    market.sync();
    const st = market.state('BTC');
    expect(st.stale).toBe(true);
    expect(st.priceAsOfMs).toBe(g.fromMs);
    clock.set(g.toMs + 60_000);
    market.sync();
    expect(market.state('BTC').stale).toBe(false);
    expect(market.spot('BTC')).toBeCloseTo(series.priceAt(g.toMs).priceUsd, 6);
  });
});

describe('market simulator and vol surface', () => {
  const mk = (clock: ManualClock) =>
    createMarketSimulator({
      underlyings: { BTC: { spot: 95_000, vol: 0.55 }, ETH: { spot: 3_500, vol: 0.7 } },
      correlations: { 'BTC/ETH': 0.8 },
      process: { kind: 'regime' },
      seed: 42,
      clock,
    });

  it('paths depend only on seed and time, not on how often the market is synced', () => {
    const c1 = new ManualClock(0);
    const c2 = new ManualClock(0);
    const a = mk(c1);
    const b = mk(c2);
    c1.advance(MS_PER_HOUR);
    a.sync();
    for (let i = 0; i < 60; i++) {
      c2.advance(60_000);
      b.sync();
    }
    expect(a.snapshot()).toEqual(b.snapshot());
    expect(a.spot('BTC')).not.toBe(95_000);
    // Consumers get their own deterministic streams, independent of the path stream.
    expect(a.rng('flow:gmx').next()).toBe(b.rng('flow:gmx').next());
    expect(a.rng('flow:gmx').next()).not.toBe(a.rng('flow:drift').next());
  });

  it('follows an accelerated clock 24/7 and reports every step to listeners', () => {
    let wall = 1_000;
    const clock = new AcceleratedClock({ startMs: Date.UTC(2026, 0, 3), speed: 3600, wall: () => wall });
    const m = createMarketSimulator({
      underlyings: { BTC: { spot: 95_000, vol: 0.55 } },
      seed: 1,
      clock,
      stepMs: 60_000,
    });
    let steps = 0;
    const off = m.onStep(() => {
      steps++;
    });
    wall += 1_000; // one wall second = one market hour, on a Saturday: no sessions
    m.sync();
    expect(steps).toBe(60);
    expect(m.nowMs()).toBe(Date.UTC(2026, 0, 3, 1));
    off();
    wall += 1_000;
    m.sync();
    expect(steps).toBe(60);
  });

  it('publishes a skewed surface that decays to the long-run level with expiry', () => {
    const clock = new ManualClock(0);
    const m = mk(clock);
    const spot = m.spot('BTC');
    const exp = 30 * MS_PER_DAY;
    expect(m.iv('BTC', spot * 0.8, exp)).toBeGreaterThan(m.iv('BTC', spot, exp));
    expect(m.iv('BTC', spot * 1.2, exp)).toBeLessThan(m.iv('BTC', spot * 0.8, exp));
    expect(m.iv('BTC', spot, 365 * MS_PER_DAY)).toBeCloseTo(0.55, 1);
    expect(() => m.spot('DOGE')).toThrow(SimError);
  });

  it('ATM vol rises after a sharp drop and relaxes afterwards', () => {
    const s = new VolSurfaceState(0.5, DEFAULT_SURFACE);
    const dt = 1 / 8760;
    const before = s.atmVol();
    s.update(Math.log(0.9), dt, 0.5, false);
    const after = s.atmVol();
    expect(after - before).toBeGreaterThan(0.05);
    for (let i = 0; i < 24 * 14; i++) s.update(0, dt, 0.5, false);
    expect(s.atmVol()).toBeLessThan(after);
    // A stressed regime lifts the level (higher instantaneous vol) and steepens the skew.
    const calmSkew = s.iv(100, 80, 30 / 365) - s.iv(100, 120, 30 / 365);
    const calmAtm = s.atmVol();
    s.update(0, dt, 1.2, true);
    expect(s.atmVol()).toBeGreaterThan(calmAtm + 0.2);
    expect(s.iv(100, 80, 30 / 365) - s.iv(100, 120, 30 / 365)).toBeGreaterThan(calmSkew);
  });

  it('builds from the config market section, including replay', () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const m = createMarketFromConfig({
      market: {
        seed: 3,
        process: 'jump',
        speed: 60,
        underlyings: { BTC: { spot: 90_000, vol: 0.5 } },
        correlations: { 'BTC/ETH': 0.8, 'BTC/XRP': 0.5 },
      },
      underlyings: ['BTC', 'ETH'],
      clock,
    });
    expect(m.spot('BTC')).toBe(90_000);
    expect(m.spot('ETH')).toBe(3_500);
    const r = createMarketFromConfig({
      market: {
        seed: 3,
        process: 'replay',
        speed: 60,
        underlyings: {},
        correlations: {},
        replayCsv: 'data/btc-usd-1h.csv',
      },
      underlyings: ['ETH', 'BTC'],
      clock,
      loadReplay: () => series,
    });
    expect(r.spot('BTC')).toBeCloseTo(series.prices[0] ?? 0, 6);
    expect(() =>
      createMarketFromConfig({
        market: {
          seed: 3,
          process: 'replay',
          speed: 60,
          underlyings: {},
          correlations: {},
          replayCsv: '/nonexistent/x.csv',
        },
        underlyings: ['BTC'],
        clock,
      }),
    ).toThrow(/cannot read replay CSV/);
  });
});

describe('gas process', () => {
  it('stays within its range, moves over time, and is a function of time only', () => {
    const g = createGasProcess({ seed: 1, label: 'gas:evm:1', lowUsd: 5, highUsd: 50 });
    const h = createGasProcess({ seed: 1, label: 'gas:evm:1', lowUsd: 5, highUsd: 50 });
    const xs = Array.from({ length: 500 }, (_, i) => g.usdAt(i * 60_000));
    for (const x of xs) {
      expect(x).toBeGreaterThanOrEqual(5);
      expect(x).toBeLessThanOrEqual(50);
    }
    expect(Math.max(...xs) / Math.min(...xs)).toBeGreaterThan(2);
    expect(h.usdAt(123_456)).toBe(g.usdAt(123_456));
  });
});
