/** Injectable time source so simulations and tests are deterministic. */
export interface Clock {
  /** Milliseconds since the epoch, UTC. */
  nowMs(): number;
}

export const systemClock: Clock = { nowMs: () => Date.now() };

/** A clock that only moves when told to: for tests and accelerated simulation. */
export class ManualClock implements Clock {
  #ms: number;
  constructor(startMs = 0) {
    this.#ms = startMs;
  }
  nowMs(): number {
    return this.#ms;
  }
  set(ms: number): void {
    if (!Number.isFinite(ms)) throw new RangeError(`ManualClock.set: ${ms} is not finite`);
    this.#ms = ms;
  }
  advance(ms: number): number {
    if (!Number.isFinite(ms) || ms < 0)
      throw new RangeError(`ManualClock.advance: ${ms} must be finite and >= 0`);
    this.#ms += ms;
    return this.#ms;
  }
}

/**
 * A clock running `speed` times faster than the wall clock from `startMs` (24/7 simulation at
 * e.g. 3600× turns an hour of market into a second).
 */
export class AcceleratedClock implements Clock {
  readonly #wallStart: number;
  readonly #simStart: number;
  readonly #speed: number;
  readonly #wall: () => number;
  constructor(opts: { startMs: number; speed: number; wall?: () => number }) {
    if (!(opts.speed > 0)) throw new RangeError(`AcceleratedClock: speed ${opts.speed} must be > 0`);
    this.#wall = opts.wall ?? Date.now;
    this.#wallStart = this.#wall();
    this.#simStart = opts.startMs;
    this.#speed = opts.speed;
  }
  nowMs(): number {
    return Math.floor(this.#simStart + (this.#wall() - this.#wallStart) * this.#speed);
  }
}
