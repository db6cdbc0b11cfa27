import type { Clock } from '@xhedge/core';
import { MS_PER_YEAR } from '@xhedge/core';
import { SimError } from './errors.ts';
import {
  PathEngine,
  type ProcessSpec,
  type Regime,
  type StepResult,
  type UnderlyingSpec,
} from './processes.ts';
import { type ReplaySeries, readPriceCsvFile } from './replay.ts';
import { createRng, type Rng } from './rng.ts';
import { DEFAULT_SURFACE, type SurfaceParams, VolSurfaceState } from './surface.ts';

export interface MarketSimulatorOptions {
  /** Simulated underlyings keyed by symbol (BTC, ETH, SOL). */
  underlyings: Readonly<Record<string, UnderlyingSpec>>;
  /** Pairwise correlations keyed `A/B`, e.g. `{ 'BTC/ETH': 0.8 }`. */
  correlations?: Readonly<Record<string, number>>;
  /** @defaultValue `{ kind: 'gbm' }` */
  process?: ProcessSpec;
  seed: number;
  /** Time source the market follows on {@link PaperMarket.sync} (ManualClock, AcceleratedClock, systemClock). */
  clock: Clock;
  /** Market time of the initial prices. @defaultValue clock.nowMs() */
  startMs?: number;
  /** Fixed simulation step, ms of market time. Paths depend only on seed and step, not on call timing. @defaultValue 1000 */
  stepMs?: number;
  /** Historical series that drive some underlyings instead of the process (replay starts at the series' first row). */
  replay?: Readonly<Record<string, ReplaySeries>>;
  surface?: Partial<SurfaceParams>;
}

export interface UnderlyingState {
  spotUsd: number;
  /** Short-dated ATM implied vol, decimal. */
  atmVol: number;
  /** The process's instantaneous vol, decimal. */
  instantVol: number;
  /** True when the price is held (replay gap or past the end of the series). */
  stale: boolean;
  /** Market time of the newest real price (equals `asOfMs` unless replay data is stale). */
  priceAsOfMs: number;
}

export interface MarketSnapshot {
  asOfMs: number;
  regime: Regime;
  underlyings: Record<string, UnderlyingState>;
}

/**
 * The simulated market every paper venue of one run shares: spot per underlying, a moving IV surface,
 * and market time. It advances in fixed steps up to the clock's time whenever anyone calls `sync()`
 * (paper venues do on every request), so a ManualClock steps it exactly and an AcceleratedClock runs
 * it 24/7 faster than real time.
 */
export interface PaperMarket {
  readonly underlyings: readonly string[];
  readonly clock: Clock;
  readonly seed: number;
  readonly stepMs: number;
  /** Market time of the current prices. */
  nowMs(): number;
  /** Advances to the clock's time; returns the market time. */
  sync(): number;
  /** Advances to `ms` (never backwards). */
  advanceTo(ms: number): void;
  hasUnderlying(symbol: string): boolean;
  spot(symbol: string): number;
  atmVol(symbol: string): number;
  /** Implied vol for a strike and expiry instant, decimal. */
  iv(symbol: string, strike: number, expiryMs: number): number;
  regime(): Regime;
  state(symbol: string): UnderlyingState;
  snapshot(): MarketSnapshot;
  /** A deterministic random stream for a consumer (a venue's flow, funding noise...), by label. */
  rng(label: string): Rng;
  /** Listeners called after every step (for consumers that accrue per step). Returns an unsubscribe. */
  onStep(listener: (step: Readonly<StepResult>, market: PaperMarket) => void): () => void;
}

class MarketSimulator implements PaperMarket {
  readonly underlyings: readonly string[];
  readonly clock: Clock;
  readonly seed: number;
  readonly stepMs: number;
  readonly #engine: PathEngine;
  readonly #surfaces: VolSurfaceState[];
  readonly #index = new Map<string, number>();
  readonly #replay: (ReplaySeries | undefined)[];
  readonly #startMs: number;
  readonly #root: Rng;
  readonly #listeners = new Set<(s: Readonly<StepResult>, m: PaperMarket) => void>();
  readonly #stale: boolean[];
  readonly #priceAsOf: number[];
  #nowMs: number;
  #scratch: StepResult | undefined;

  constructor(opts: MarketSimulatorOptions) {
    this.clock = opts.clock;
    this.seed = opts.seed;
    this.stepMs = opts.stepMs ?? 1000;
    if (!(this.stepMs >= 1) || !Number.isInteger(this.stepMs))
      throw new SimError(`stepMs ${this.stepMs} must be a whole number of ms >= 1`);
    this.#root = createRng(opts.seed);
    const specs: Record<string, UnderlyingSpec> = {};
    for (const [k, v] of Object.entries(opts.underlyings)) {
      const series = opts.replay?.[k];
      specs[k] = series ? { ...v, spot: series.prices[0] as number } : v;
    }
    for (const k of Object.keys(opts.replay ?? {}))
      if (!(k in specs)) throw new SimError(`replay series for ${k}, which is not a simulated underlying`);
    const engineOpts: ConstructorParameters<typeof PathEngine>[0] = {
      underlyings: specs,
      rng: this.#root.fork('paths'),
    };
    if (opts.correlations) engineOpts.correlations = opts.correlations;
    if (opts.process) engineOpts.process = opts.process;
    this.#engine = new PathEngine(engineOpts);
    this.underlyings = this.#engine.names;
    this.underlyings.forEach((u, i) => {
      this.#index.set(u, i);
    });
    const params = { ...DEFAULT_SURFACE, ...opts.surface };
    this.#surfaces = this.underlyings.map((_, i) => new VolSurfaceState(this.#engine.baseVol(i), params));
    this.#replay = this.underlyings.map((u) => opts.replay?.[u]);
    this.#startMs = opts.startMs ?? opts.clock.nowMs();
    this.#nowMs = this.#startMs;
    this.#stale = this.underlyings.map(() => false);
    this.#priceAsOf = this.underlyings.map(() => this.#startMs);
  }

  nowMs(): number {
    return this.#nowMs;
  }
  sync(): number {
    this.advanceTo(this.clock.nowMs());
    return this.#nowMs;
  }
  advanceTo(ms: number): void {
    const dtYears = this.stepMs / MS_PER_YEAR;
    while (this.#nowMs + this.stepMs <= ms) {
      const prev = this.underlyings.map((_, i) => this.#engine.spot(i));
      this.#scratch = this.#engine.step(dtYears, this.#scratch);
      this.#nowMs += this.stepMs;
      const step = this.#scratch;
      const stressed = step.regime === 'stressed';
      for (let i = 0; i < this.underlyings.length; i++) {
        const series = this.#replay[i];
        if (series) {
          const px = series.priceAt(series.startMs + (this.#nowMs - this.#startMs));
          this.#engine.setSpot(i, px.priceUsd);
          step.logReturns[i] = Math.log(px.priceUsd / (prev[i] as number));
          this.#stale[i] = px.stale;
          this.#priceAsOf[i] = this.#startMs + (px.asOfMs - series.startMs);
        } else this.#priceAsOf[i] = this.#nowMs;
        (this.#surfaces[i] as VolSurfaceState).update(
          step.logReturns[i] ?? 0,
          dtYears,
          this.#engine.instantVol(i),
          stressed,
        );
      }
      for (const l of this.#listeners) l(step, this);
    }
  }
  #i(symbol: string): number {
    const i = this.#index.get(symbol);
    if (i === undefined)
      throw new SimError(`${symbol} is not simulated (have ${this.underlyings.join(', ')})`, { symbol });
    return i;
  }
  hasUnderlying(symbol: string): boolean {
    return this.#index.has(symbol);
  }
  spot(symbol: string): number {
    return this.#engine.spot(this.#i(symbol));
  }
  atmVol(symbol: string): number {
    return (this.#surfaces[this.#i(symbol)] as VolSurfaceState).atmVol();
  }
  iv(symbol: string, strike: number, expiryMs: number): number {
    const i = this.#i(symbol);
    const t = (expiryMs - this.#nowMs) / MS_PER_YEAR;
    return (this.#surfaces[i] as VolSurfaceState).iv(this.#engine.spot(i), strike, t);
  }
  regime(): Regime {
    return this.#engine.regime;
  }
  state(symbol: string): UnderlyingState {
    const i = this.#i(symbol);
    return {
      spotUsd: this.#engine.spot(i),
      atmVol: (this.#surfaces[i] as VolSurfaceState).atmVol(),
      instantVol: this.#engine.instantVol(i),
      stale: this.#stale[i] ?? false,
      priceAsOfMs: this.#priceAsOf[i] ?? this.#nowMs,
    };
  }
  snapshot(): MarketSnapshot {
    const underlyings: Record<string, UnderlyingState> = {};
    for (const u of this.underlyings) underlyings[u] = this.state(u);
    return { asOfMs: this.#nowMs, regime: this.#engine.regime, underlyings };
  }
  rng(label: string): Rng {
    return this.#root.fork(`consumer:${label}`);
  }
  onStep(listener: (s: Readonly<StepResult>, m: PaperMarket) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }
}

/** Creates the shared simulated market of a run. */
export function createMarketSimulator(opts: MarketSimulatorOptions): PaperMarket {
  return new MarketSimulator(opts);
}

/** Starting spot and vol used for well-known underlyings a config does not describe. */
export const DEFAULT_UNDERLYINGS: Readonly<Record<string, { spot: number; vol: number }>> = {
  BTC: { spot: 95_000, vol: 0.55 },
  ETH: { spot: 3_500, vol: 0.7 },
  SOL: { spot: 180, vol: 0.9 },
};

/** The `market` section of an operator config (structurally the same as @xhedge/config's MarketConfig). */
export interface MarketConfigLike {
  seed: number;
  process: 'gbm' | 'jump' | 'heston' | 'regime' | 'replay';
  /** Not used here: the caller builds the run's clock from it (`new AcceleratedClock({ startMs, speed })`). */
  speed: number;
  underlyings: Readonly<Record<string, { spot: number; vol: number; drift?: number }>>;
  correlations: Readonly<Record<string, number>>;
  replayCsv?: string | undefined;
}

/**
 * Builds the market from a config's `market` section for the given underlyings. Underlyings missing
 * from the section get {@link DEFAULT_UNDERLYINGS} (or spot 100, vol 0.8). `process: replay` drives
 * one underlying from `replayCsv` (the one whose symbol starts the file name, else the first) and
 * simulates the others with GBM; `loadReplay` reads the file (default: from disk, relative to the cwd).
 */
export function createMarketFromConfig(opts: {
  market: MarketConfigLike | undefined;
  underlyings: readonly string[];
  clock: Clock;
  startMs?: number;
  stepMs?: number;
  loadReplay?: (path: string) => ReplaySeries;
}): PaperMarket {
  const m = opts.market;
  const specs: Record<string, UnderlyingSpec> = {};
  for (const u of opts.underlyings) {
    const given = m?.underlyings[u];
    specs[u] = given ?? DEFAULT_UNDERLYINGS[u] ?? { spot: 100, vol: 0.8 };
  }
  const sim: MarketSimulatorOptions = {
    underlyings: specs,
    correlations: Object.fromEntries(
      Object.entries(m?.correlations ?? {}).filter(([k]) => k.split('/').every((s) => s in specs)),
    ),
    seed: m?.seed ?? 1,
    clock: opts.clock,
  };
  if (opts.startMs !== undefined) sim.startMs = opts.startMs;
  if (opts.stepMs !== undefined) sim.stepMs = opts.stepMs;
  const kind = m?.process ?? 'gbm';
  if (kind === 'replay') {
    if (!m?.replayCsv) throw new SimError('market.process is replay but market.replayCsv is not set');
    const file = m.replayCsv.split('/').pop()?.toUpperCase() ?? '';
    const target = opts.underlyings.find((u) => file.startsWith(u)) ?? opts.underlyings[0];
    if (target === undefined) throw new SimError('no underlying to replay');
    sim.replay = { [target]: (opts.loadReplay ?? readPriceCsvFile)(m.replayCsv) };
  } else sim.process = { kind };
  return createMarketSimulator(sim);
}
