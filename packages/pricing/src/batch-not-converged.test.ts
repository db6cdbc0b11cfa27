import { describe, expect, it, vi } from 'vitest';
import { IV_STATUS, impliedVolBatch } from './batch.ts';
import { ImpliedVolError, impliedVol } from './implied-vol.ts';
import { normCdf } from './normal.ts';

/**
 * The implied-vol search converges for every price a double can express (it was fuzzed on millions), so
 * a solve that does not converge is forced here: for one strike (forward 100, strike 150) the normalised
 * Black pricer answers 0 for every σ√T, a price that never reaches the quote. The search, the core and
 * the batch around it are the real ones.
 */
const STUCK_X = -Math.abs(Math.log(100 / 150));
vi.mock('./normalised-black.ts', async (importOriginal) => {
  const real = await importOriginal<typeof import('./normalised-black.ts')>();
  return {
    ...real,
    normalisedBlackOtm(x: number, s: number): number {
      if (x !== STUCK_X) return real.normalisedBlackOtm(x, s);
      real.lastOtm.complement = -1;
      real.lastOtm.vega = 0;
      return 0;
    },
  };
});

/** Black-76 call on forward 100, 6 months, 70% vol, in closed form (the pricer is stuck at strike 150). */
function price(strike: number): number {
  const s = 0.7 * Math.sqrt(0.5);
  const d1 = Math.log(100 / strike) / s + s / 2;
  return 100 * normCdf(d1) - strike * normCdf(d1 - s);
}

describe('an implied-vol solve that does not converge', () => {
  it('is one element marked not-converged in a batch, not a throw that loses the batch', () => {
    const p = (strike: number) => price(strike);
    const vol = new Float64Array(3);
    const status = new Uint8Array(3);
    // it threw ImpliedVolError('not-converged') out of impliedVolBatch, and the other two were lost
    const failures = impliedVolBatch(
      {
        callPut: Float64Array.from([1, 1, 1]),
        forward: Float64Array.from([100, 100, 100]),
        strike: Float64Array.from([110, 150, 90]),
        timeYears: Float64Array.from([0.5, 0.5, 0.5]),
        price: Float64Array.from([p(110), p(150), p(90)]),
      },
      vol,
      status,
    );
    expect(failures).toBe(1);
    expect([...status]).toEqual([IV_STATUS.ok, IV_STATUS['not-converged'], IV_STATUS.ok]);
    expect(vol[0]).toBeCloseTo(0.7, 12);
    expect(vol[1]).toBeNaN();
    expect(vol[2]).toBeCloseTo(0.7, 12);
  });

  it('is an ImpliedVolError with reason not-converged from the scalar API, naming the inputs', () => {
    const input = {
      model: 'black76',
      type: 'call',
      forward: 100,
      strike: 150,
      timeYears: 0.5,
      price: price(150),
    } as const;
    expect(() => impliedVol(input)).toThrow(ImpliedVolError);
    try {
      impliedVol(input);
    } catch (err) {
      expect((err as ImpliedVolError).reason).toBe('not-converged');
      expect((err as ImpliedVolError).shortMessage).toMatch(
        /^implied vol of the call did not converge \(forward 100, strike 150, timeYears 0\.5, price /,
      );
    }
  });
});
