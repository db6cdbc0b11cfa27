import { describe, expect, it } from 'vitest';
import { bsmBatch, greeksBatchOutput, impliedVolBatch } from './batch.ts';
import { bsm, PricingInputError } from './bsm.ts';

const outputs = (n: number) => greeksBatchOutput(n, true);
type GreeksOutput = ReturnType<typeof outputs>;

describe('bsmBatch (struct of arrays)', () => {
  it('matches the scalar API option by option, with per-option rate and carry', () => {
    const n = 500;
    let seed = 1;
    const rnd = () => {
      seed = (seed * 16807) % 2147483647;
      return seed / 2147483647;
    };
    const input = {
      callPut: new Float64Array(n),
      spot: new Float64Array(n),
      strike: new Float64Array(n),
      timeYears: new Float64Array(n),
      vol: new Float64Array(n),
      rate: new Float64Array(n),
      carry: new Float64Array(n),
    };
    for (let i = 0; i < n; i++) {
      input.callPut[i] = rnd() < 0.5 ? 1 : -1;
      input.spot[i] = 50_000 + 30_000 * rnd();
      input.strike[i] = (input.spot[i] as number) * Math.exp(rnd() - 0.5);
      input.timeYears[i] = 1 / 8760 + 3 * rnd();
      input.vol[i] = 0.05 + 2 * rnd();
      input.rate[i] = 0.1 * rnd() - 0.02;
      input.carry[i] = 0.05 * rnd();
    }
    const out = outputs(n);
    bsmBatch(input, out);
    for (let i = 0; i < n; i++) {
      const g = bsm({
        type: input.callPut[i] === 1 ? 'call' : 'put',
        spot: input.spot[i] as number,
        strike: input.strike[i] as number,
        timeYears: input.timeYears[i] as number,
        vol: input.vol[i] as number,
        rate: input.rate[i] as number,
        carry: input.carry[i] as number,
      });
      const S = input.spot[i] as number;
      expect(Math.abs((out.price[i] as number) - g.price)).toBeLessThan(1e-11 * S);
      expect(out.delta[i]).toBeCloseTo(g.delta, 13);
      expect(Math.abs((out.gamma[i] as number) - g.gamma)).toBeLessThanOrEqual(1e-10 * g.gamma + 1e-300);
      expect(Math.abs((out.vegaPerVolPoint[i] as number) - g.vegaPerVolPoint)).toBeLessThan(1e-12 * S);
      expect(Math.abs((out.thetaPerDay[i] as number) - g.thetaPerDay)).toBeLessThan(1e-11 * S);
      expect(Math.abs((out.rhoPer1Pct[i] as number) - g.rhoPer1Pct)).toBeLessThan(1e-11 * S);
      expect(Math.abs((out.vannaPerVolPoint[i] as number) - g.vannaPerVolPoint)).toBeLessThan(1e-12);
      expect(Math.abs((out.volgaPerVolPoint[i] as number) - g.volgaPerVolPoint)).toBeLessThan(1e-10 * S);
    }
  });

  it('rejects a bad entry with a typed error naming the index', () => {
    const one = (v: number) => Float64Array.from([100, v]);
    const input = {
      callPut: Float64Array.from([1, 1]),
      spot: one(100),
      strike: one(100),
      timeYears: one(1),
      vol: one(-0.2),
    };
    expect(() => bsmBatch(input, outputs(2))).toThrow(PricingInputError);
    expect(() => bsmBatch(input, outputs(2))).toThrow(/vol\[1\]/);
  });

  it('refuses finite inputs whose Greeks overflow a double, as bsm does, never writing NaN', () => {
    const two = (a: number, b: number) => Float64Array.from([a, b]);
    const base = {
      callPut: two(1, -1),
      spot: two(100, 100),
      strike: two(100, 100),
      timeYears: two(1, 1),
      vol: two(0.5, 0.5),
    };
    for (const bad of [{ rate: two(0, -800) }, { vol: two(0.5, 5e-324) }, { carry: two(0, -1e308) }]) {
      expect(() => bsmBatch({ ...base, ...bad }, outputs(2)), JSON.stringify(Object.keys(bad))).toThrow(
        /option\[1\].*out of the range a double can price/,
      );
    }
    const out = outputs(2);
    bsmBatch(base, out);
    expect([...out.price].every(Number.isFinite)).toBe(true);
  });
});

describe('array lengths', () => {
  const two = (a: number, b: number) => Float64Array.from([a, b]);
  const base = {
    callPut: two(1, -1),
    spot: two(100, 100),
    strike: two(90, 110),
    timeYears: two(1, 1),
    vol: two(0.5, 0.5),
  };

  it('bsmBatch refuses an array shorter than the batch before pricing, naming it and both lengths', () => {
    // a one-entry rate read undefined for option 1, reported as `rate/carry[1] = non-finite`
    const cases: [object, GreeksOutput, RegExp][] = [
      [
        { rate: Float64Array.from([0.03]) },
        outputs(2),
        /^rate\.length = 1: shorter than the batch's n = 2 \(spot\.length\)/,
      ],
      [
        { carry: new Float64Array(0) },
        outputs(2),
        /^carry\.length = 0: shorter than the batch's n = 2 \(spot\.length\)/,
      ],
      [
        { strike: Float64Array.from([90]) },
        outputs(2),
        /^strike\.length = 1: shorter than the batch's n = 2/,
      ],
      // a short optional output dropped its writes past the end without a word
      [
        {},
        { ...outputs(2), vannaPerVolPoint: new Float64Array(1) },
        /^out\.vannaPerVolPoint\.length = 1: shorter/,
      ],
      [
        {},
        { ...outputs(2), volgaPerVolPoint: new Float64Array(1) },
        /^out\.volgaPerVolPoint\.length = 1: shorter/,
      ],
    ];
    for (const [over, out, message] of cases) {
      expect(() => bsmBatch({ ...base, ...over }, out), String(message)).toThrow(PricingInputError);
      expect(() => bsmBatch({ ...base, ...over }, out), String(message)).toThrow(message);
      expect([...out.price], 'nothing priced').toEqual([0, 0]);
    }
    // an explicit n may be shorter than the arrays, never longer
    const out = outputs(2);
    bsmBatch({ ...base, rate: Float64Array.from([0.03]) }, out, 1);
    expect(out.price[0]).toBeGreaterThan(0);
    expect(() => bsmBatch(base, outputs(3), 3)).toThrow(
      /^callPut\.length = 2: shorter than the batch's n = 3 \(passed\)/,
    );
    expect(() => bsmBatch(base, outputs(2), 1.5)).toThrow(/^n = 1\.5: must be a whole number/);
  });

  it('impliedVolBatch refuses a short input or output array the same way', () => {
    const input = {
      callPut: two(1, -1),
      forward: two(100, 100),
      strike: two(90, 110),
      timeYears: two(1, 1),
      price: two(20, 20),
    };
    const vol = new Float64Array(2);
    const status = new Uint8Array(2);
    expect(() => impliedVolBatch({ ...input, rate: Float64Array.from([0.03]) }, vol, status)).toThrow(
      /^rate\.length = 1: shorter than the batch's n = 2 \(forward\.length\)/,
    );
    // a short status array lost the second status (and a short outVol the second vol) silently
    expect(() => impliedVolBatch(input, vol, new Uint8Array(1))).toThrow(/^status\.length = 1: shorter/);
    expect(() => impliedVolBatch(input, new Float64Array(1), status)).toThrow(/^outVol\.length = 1: shorter/);
    expect(impliedVolBatch(input, vol, status)).toBe(0);
  });
});
