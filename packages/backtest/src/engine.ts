import type { PolicyConfig } from '@xhedge/config';
import { DAYS_PER_YEAR, ManualClock, MS_PER_YEAR, NumericError } from '@xhedge/core';
import type { BridgeEndpoint, PaperBridge, RoutingBridgeCost } from '@xhedge/crosschain';
import {
  createRng,
  MAX_HESTON_KAPPA_DT,
  PathEngine,
  type ProcessSpec,
  SimError,
  hestonSubsteps as simHestonSubsteps,
} from '@xhedge/sim';
import {
  type BookGrid,
  type BookSeries,
  createBookGrid,
  type EngineOption,
  priceBookPath,
} from './book-grid.ts';
import {
  assertMarginSettings,
  COLLATERAL_ASSET,
  collateralModelled,
  type EngineVenue,
  type GasCurve,
  gasCurves,
  liquidationPenaltyFraction,
  maintenanceMarginFraction,
  routeCheapest,
  routeLive,
  tradeCost,
} from './costs.ts';
import { BacktestCollateralError, BacktestInputError } from './errors.ts';
import { type DecisionMode, deciderFor, type HedgeState } from './hedge-rules.ts';

export type { EngineOption } from './book-grid.ts';

/** Where spot paths come from. */
export type EngineProcess =
  | {
      kind: 'simulated';
      /** A @xhedge/sim process (gbm, jump, heston, regime). */
      spec: ProcessSpec;
      /** Real-world drift, decimal per year. */
      drift: number;
      /** Realized (process) vol, decimal; 0 gives the deterministic path S0·e^{μt}. */
      vol: number;
    }
  | {
      kind: 'replay';
      /** Historical prices on a regular grid of bars (gaps held at the last price: index = time). */
      prices: Float64Array;
      /** Bars per engine step. */
      barsPerStep: number;
    };

/** Everything one policy run needs; plain data so it can be posted to a worker thread. */
export interface EngineJob {
  options: EngineOption[];
  spot0: number;
  /** The hedger's pricing vol, decimal. */
  vol: number;
  /** `fixed`: mark at `vol` throughout; `process`: mark at the process's instantaneous vol (vega P&L). */
  volMark: 'fixed' | 'process';
  rate: number;
  process: EngineProcess;
  steps: number;
  stepYears: number;
  paths: number;
  seed: number;
  policy: PolicyConfig;
  /**
   * Hedge venues (and collateral-only accounts). When any declares `collateralUsd`, margin is modelled
   * per venue and per path and the live router may move collateral across chains over a paper
   * LayerZero bridge on the path's clock; the legs that need it trade at the step it is delivered. A
   * venue whose equity falls below the maintenance margin of its hedge is then liquidated (see
   * {@link EngineVenue.maintenanceMarginFraction}).
   */
  venues: EngineVenue[];
  unwindAtEnd: boolean;
  /** Underlying symbol (labels decisions). */
  underlying: string;
  /** `strategy`: the live HedgeStrategy class; `kernel`: the fast equivalent; `auto`: kernel when it supports the policy. */
  decisions: DecisionMode | 'auto';
  /**
   * `live`: every trade goes through the live router (split across venues); `cheapest` (fast): a trade
   * first reduces opposite positions on any venue, the rest goes to the venue with the lowest all-in cost.
   * Both price each venue's funding over the live router's holding period (`ROUTING_HOLDING_HOURS` of costs.ts, 24 h).
   */
  routing: 'live' | 'cheapest';
}

/** Per-path outputs, one Float64Array row each (field-major in {@link PathBatch.data}). */
export const PATH_FIELDS = [
  'pnlUsd',
  'feesUsd',
  'slippageUsd',
  'gasUsd',
  'fundingUsd',
  'deltaUsd',
  'gammaUsd',
  'thetaUsd',
  'vegaUsd',
  'residualUsd',
  'trades',
  'turnoverUsd',
  'bridgeUsd',
  'transfers',
  /** Hedges closed by a venue's liquidation (0 unless collateral is modelled). */
  'liquidations',
  /** Liquidation penalties paid, USD (the close's spread and impact are in slippageUsd). */
  'liquidationUsd',
] as const;
export type PathField = (typeof PATH_FIELDS)[number];
const F: Readonly<Record<PathField, number>> = Object.fromEntries(
  PATH_FIELDS.map((f, i) => [f, i]),
) as Record<PathField, number>;

/** Results of paths [start, end): `data[f * count + i]` is field f of path start + i. */
export interface PathBatch {
  start: number;
  count: number;
  data: Float64Array;
}

export function batchField(b: PathBatch, field: PathField): Float64Array {
  const f = F[field];
  return b.data.subarray(f * b.count, (f + 1) * b.count);
}

/** Book value at the start, USD (premium received when negative): the same on every path. */
export function initialBookValue(job: Pick<EngineJob, 'options' | 'spot0' | 'vol' | 'rate'>): number {
  const grid = createBookGrid(job.options, 0, 0, job.rate);
  return priceBookPath(grid, Float64Array.of(job.spot0), Float64Array.of(job.vol)).valueUsd[0] as number;
}

/** Replay windows: evenly spread start bars so every path is a different stretch of history. */
export function replayStart(job: EngineJob, pathIndex: number): number {
  if (job.process.kind !== 'replay') return 0;
  const need = job.steps * job.process.barsPerStep;
  const room = job.process.prices.length - 1 - need;
  if (room < 0)
    throw new BacktestInputError(`replay history has ${job.process.prices.length} bars; ${need + 1} needed`);
  return job.paths > 1 ? Math.round((pathIndex * room) / (job.paths - 1)) : 0;
}

/** Most simulated sub-steps of one path (a Heston process at a high kappa over a long horizon). */
export const MAX_PATH_SUBSTEPS = 10_000_000;

/**
 * Simulated sub-steps per engine step of a Heston process with mean-reversion `kappaPerYear`: the sim's
 * own (`@xhedge/sim`'s `hestonSubsteps`: a step with kappa·dt above {@link MAX_HESTON_KAPPA_DT} runs as
 * equal Euler sub-steps, the engine still sees one price and one vol per step). Throws
 * BacktestInputError naming kappa and the step when the whole path would need more than
 * {@link MAX_PATH_SUBSTEPS} of them, so a plan is refused before any path runs.
 */
export function hestonSubsteps(kappaPerYear: number, stepYears: number, steps: number): number {
  let perStep: number;
  try {
    perStep = simHestonSubsteps(kappaPerYear, stepYears);
  } catch (err) {
    if (err instanceof SimError) throw new BacktestInputError(err.shortMessage, { kappaPerYear, stepYears });
    throw err;
  }
  const kappaDt = kappaPerYear * stepYears;
  if (perStep * steps > MAX_PATH_SUBSTEPS)
    throw new BacktestInputError(
      `Heston kappa ${kappaPerYear} per year on steps of ${Number(stepYears.toPrecision(6))} years (kappa·dt ${Number(kappaDt.toPrecision(4))}) needs ${perStep} sub-steps per step to keep kappa·dt at most ${MAX_HESTON_KAPPA_DT} (the variance's Euler step is unstable above 1); ${steps} steps are ${perStep * steps} sub-steps, at most ${MAX_PATH_SUBSTEPS}; lower kappa or the horizon`,
      { kappaPerYear, stepYears, steps, perStep },
    );
  return perStep;
}

/**
 * One path's spots and marking vols at the steps' ends (steps + 1 each), as the engine prices and hedges
 * them. Deterministic in (seed, pathIndex); for audits and tests.
 */
export function pathMarket(job: EngineJob, pathIndex: number): { spots: Float64Array; vols: Float64Array } {
  const spots = new Float64Array(job.steps + 1);
  const vols = new Float64Array(job.steps + 1);
  fillPath(job, pathIndex, spots, vols);
  return { spots, vols };
}

/** Fills `spots` (and `vols`) for one path. Deterministic in (seed, pathIndex). */
function fillPath(job: EngineJob, pathIndex: number, spots: Float64Array, vols: Float64Array): void {
  const p = job.process;
  const n = job.steps;
  vols.fill(job.vol);
  if (p.kind === 'replay') {
    const start = replayStart(job, pathIndex);
    const base = p.prices[start] as number;
    for (let k = 0; k <= n; k++)
      spots[k] = (job.spot0 * (p.prices[start + k * p.barsPerStep] as number)) / base;
    return;
  }
  if (p.vol === 0) {
    // The deterministic path is GBM's limit only: a jump, Heston or regime process at vol 0 would lose
    // its jumps, variance or stress without a word (every policy hedging a riskless path).
    if (p.spec.kind !== 'gbm')
      throw new BacktestInputError(
        `a ${p.spec.kind} process needs a realized vol above 0 (market.realizedVol, or market.vol when it is not set); vol 0 is simulated only for gbm`,
        { process: p.spec.kind },
      );
    for (let k = 0; k <= n; k++) {
      const s = job.spot0 * Math.exp(p.drift * k * job.stepYears);
      if (!(s > 0 && s < Number.POSITIVE_INFINITY))
        throw new BacktestInputError(
          `spot ${job.spot0} at drift ${p.drift} per year leaves the range of a double after ${Number((k * job.stepYears).toPrecision(4))} years (vol 0); lower the drift or the horizon`,
          { spot0: job.spot0, drift: p.drift },
        );
      spots[k] = s;
    }
    return;
  }
  try {
    const engine = new PathEngine({
      underlyings: { X: { spot: job.spot0, vol: p.vol, drift: p.drift } },
      process: p.spec,
      rng: createRng(job.seed).fork(`path:${pathIndex}`),
    });
    const mark = job.volMark === 'process';
    // a Heston step the sim takes as sub-steps: their total over the path bounded before any is drawn
    const sim = engine.process;
    if (sim.kind === 'heston') hestonSubsteps(sim.kappa, job.stepYears, n);
    spots[0] = job.spot0;
    if (mark) vols[0] = engine.instantVol(0);
    for (let k = 1; k <= n; k++) {
      engine.step(job.stepYears);
      spots[k] = engine.spot(0);
      if (mark) vols[k] = engine.instantVol(0);
    }
  } catch (err) {
    // The job's own parameters the simulator refused (or a path they drove out of a double's range).
    if (err instanceof SimError) throw new BacktestInputError(`path ${pathIndex}: ${err.shortMessage}`);
    throw err;
  }
}

/** What happened on a path, for audits and tests (in-thread runs only: callbacks do not cross threads). */
export type EngineEvent =
  | {
      type: 'transfer-sent';
      path: number;
      step: number;
      transferId: string;
      fromVenue: string;
      toVenue: string;
      amountUsd: number;
      feeUsd: number;
    }
  | { type: 'transfer-delivered'; path: number; step: number; transferId: string }
  | {
      type: 'fill';
      path: number;
      step: number;
      venue: string;
      sizeBase: number;
      /** The transfer this leg waited for. */
      afterTransfer?: string;
    }
  | {
      /** The venue's hedge was closed by its liquidation at the step's price, before the step's decision. */
      type: 'liquidation';
      path: number;
      step: number;
      venue: string;
      /** Signed size of the closing trade, underlying units (minus the position). */
      sizeBase: number;
      spotUsd: number;
      /** The venue's equity (collateral balance, perp P&L included) that fell short, USD. */
      equityUsd: number;
      /** Maintenance margin of the position at the step's price, USD. */
      maintenanceUsd: number;
      penaltyUsd: number;
      /** Spread and impact of the close, USD. */
      slippageUsd: number;
    };

export interface RunPathsOptions {
  /** Called with the number of paths finished since the last call (every 64 paths and at the end). */
  onPaths?: (done: number) => void;
  /** Every transfer and fill, in order. */
  onEvent?: (e: EngineEvent) => void;
}

/** Runs paths [start, end) of a job in this thread. Deterministic in (job, path index) only. */
export async function runPaths(
  job: EngineJob,
  start: number,
  end: number,
  opts: RunPathsOptions = {},
): Promise<PathBatch> {
  if (!job.venues.some((v) => v.hedges !== false))
    throw new BacktestInputError('no venue takes hedges (every venue has hedges: false)');
  if (collateralModelled(job.venues) && job.routing !== 'live')
    throw new BacktestInputError('collateral is modelled only with live routing (routing: live)');
  if (collateralModelled(job.venues)) assertMarginSettings(job.venues);
  const count = end - start;
  const data = new Float64Array(PATH_FIELDS.length * count);
  const spots = new Float64Array(job.steps + 1);
  const vols = new Float64Array(job.steps + 1);
  const grid = createBookGrid(job.options, job.steps, job.stepYears, job.rate);
  // Loaded only when needed: @xhedge/crosschain brings bullmq and viem (~0.8 s per worker thread).
  const bridging = collateralModelled(job.venues) ? await loadBridging() : null;
  let reported = 0;
  for (let i = 0; i < count; i++) {
    fillPath(job, start + i, spots, vols);
    await simulateOne(job, grid, bridging, start + i, spots, vols, data, i, count, opts.onEvent);
    if (opts.onPaths && (i + 1 - reported >= 64 || i + 1 === count)) {
      opts.onPaths(i + 1 - reported);
      reported = i + 1;
    }
  }
  return { start, count, data };
}

/** The cross-chain parts the engine uses when collateral is modelled. */
interface Bridging {
  /** Fee and latency the router prices a move at: the LayerZero-like model the paper bridge charges. */
  bridgeCost: RoutingBridgeCost;
  createBridge: (endpoints: readonly BridgeEndpoint[], clock: ManualClock) => PaperBridge;
  isBridgeError: (err: unknown) => boolean;
}

async function loadBridging(): Promise<Bridging> {
  const xc = await import('@xhedge/crosschain');
  return {
    bridgeCost: xc.routingBridgeCost(xc.layerZeroCostModel(), COLLATERAL_ASSET),
    createBridge: (endpoints, clock) => xc.createPaperBridgeForVenues(endpoints, clock),
    isBridgeError: (err) => err instanceof xc.BridgeError,
  };
}

/** A hedge leg planned behind a collateral transfer: it trades at the step the transfer is delivered. */
interface WaitingLeg {
  transferId: string;
  venueIndex: number;
  sizeBase: number;
}

/**
 * The path's collateral, one USD balance per venue, and a paper LayerZero bridge between the venues on
 * the path's own clock. Perp P&L, funding, fees, slippage and liquidation penalties settle into the
 * venue's balance; gas is paid in the chain's gas asset and does not touch it.
 */
interface PathCollateral {
  balanceUsd: Float64Array;
  /** Maintenance margin per USD of notional, per venue. */
  maintenanceFraction: Float64Array;
  /** Liquidation penalty per USD of liquidated notional, per venue. */
  penaltyFraction: Float64Array;
  bridgeCost: RoutingBridgeCost;
  isBridgeError: (err: unknown) => boolean;
  clock: ManualClock;
  bridge: PaperBridge;
  waiting: WaitingLeg[];
}

function pathCollateral(venues: readonly EngineVenue[], bridging: Bridging): PathCollateral {
  const balanceUsd = Float64Array.from(venues, (v) => v.collateralUsd ?? 0);
  const clock = new ManualClock(0);
  const endpoints: BridgeEndpoint[] = venues.map((v, i) => ({
    id: v.id,
    chain: v.chain,
    async debitBalance(asset, amount) {
      const usd = Number(amount);
      if (asset !== COLLATERAL_ASSET || !(usd <= (balanceUsd[i] as number) + 1e-9))
        throw new BacktestCollateralError(
          `${v.id} holds ${balanceUsd[i]} ${COLLATERAL_ASSET}; ${amount} needed`,
          {
            venue: v.id,
          },
        );
      balanceUsd[i] = (balanceUsd[i] as number) - usd;
      return undefined;
    },
    async creditBalance(_asset, amount) {
      balanceUsd[i] = (balanceUsd[i] as number) + Number(amount);
      return undefined;
    },
  }));
  return {
    balanceUsd,
    maintenanceFraction: Float64Array.from(venues, maintenanceMarginFraction),
    penaltyFraction: Float64Array.from(venues, liquidationPenaltyFraction),
    bridgeCost: bridging.bridgeCost,
    isBridgeError: bridging.isBridgeError,
    clock,
    bridge: bridging.createBridge(endpoints, clock),
    waiting: [],
  };
}

async function simulateOne(
  job: EngineJob,
  grid: BookGrid,
  bridging: Bridging | null,
  pathIndex: number,
  spots: Float64Array,
  vols: Float64Array,
  data: Float64Array,
  row: number,
  count: number,
  onEvent: ((e: EngineEvent) => void) | undefined,
): Promise<void> {
  const { rate, stepYears: dt, venues } = job;
  const decider = deciderFor(job.policy, job.decisions, job.underlying);
  const book: BookSeries = priceBookPath(grid, spots, vols);
  const gas = gasCurves(venues, job.seed, pathIndex);
  const col = bridging ? pathCollateral(venues, bridging) : null;
  const hedgeByVenue = new Float64Array(venues.length);
  const growth = Math.exp(rate * dt);
  const dtHours = dt * DAYS_PER_YEAR * 24;
  // Whole-ms clock, so time gates compare exact integers (k · step).
  const stepMs = Math.round(dt * MS_PER_YEAR);
  let spot = spots[0] as number;
  let vol = vols[0] as number;
  let cash = -(book.valueUsd[0] as number);
  let hedge = 0;
  /** Size planned behind transfers not yet delivered (the decider counts it as hedged). */
  let waitingBase = 0;
  let fees = 0;
  let slip = 0;
  let gasUsd = 0;
  let bridgeUsd = 0;
  let transfers = 0;
  let funding = 0;
  let dPnl = 0;
  let gPnl = 0;
  let tPnl = 0;
  let vPnl = 0;
  let resid = 0;
  let trades = 0;
  let turnover = 0;
  let liquidations = 0;
  let liquidationUsd = 0;

  /**
   * A perp trade moves no notional: only its costs leave cash. The position's P&L settles into cash
   * step by step (below), as variation margin, so cash never holds a notional that would earn or pay
   * the risk-free rate on top of the funding that already prices the perp's carry.
   */
  const fill = (vi: number, q: number, ms: number, step: number, afterTransfer?: string): void => {
    const notional = q * spot;
    const c = tradeCost(venues[vi] as EngineVenue, notional, (gas[vi] as GasCurve)(ms));
    cash -= c.feeUsd + c.slippageUsd + c.gasUsd;
    if (col) col.balanceUsd[vi] = (col.balanceUsd[vi] as number) - c.feeUsd - c.slippageUsd;
    fees += c.feeUsd;
    slip += c.slippageUsd;
    gasUsd += c.gasUsd;
    hedgeByVenue[vi] = (hedgeByVenue[vi] as number) + q;
    hedge += q;
    trades++;
    turnover += Math.abs(notional);
    onEvent?.({
      type: 'fill',
      path: pathIndex,
      step,
      venue: (venues[vi] as EngineVenue).id,
      sizeBase: q,
      ...(afterTransfer ? { afterTransfer } : {}),
    });
  };
  const trade = async (q: number, ms: number, step: number): Promise<void> => {
    if (job.routing !== 'live') {
      for (const leg of routeCheapest(venues, gas, hedgeByVenue, q, spot, ms))
        fill(leg.venueIndex, leg.sizeBase, ms, step);
      decider.recordExecution(Math.abs(q * spot), ms);
      return;
    }
    const routed = routeLive({
      venues,
      gas,
      positions: hedgeByVenue,
      collateral: col,
      underlying: job.underlying,
      deltaBase: q,
      spotUsd: spot,
      ms,
      planId: `bt-${job.seed}-${pathIndex}-${step}`,
    });
    const sent = new Set<string>();
    if (col) {
      for (const t of routed.transfers) {
        try {
          const rec = await col.bridge.send({
            transferId: t.id,
            fromVenue: t.fromVenue,
            toVenue: t.toVenue,
            asset: t.asset,
            amount: t.amount,
          });
          sent.add(t.id);
          cash -= rec.feeUsd;
          bridgeUsd += rec.feeUsd;
          transfers++;
          onEvent?.({
            type: 'transfer-sent',
            path: pathIndex,
            step,
            transferId: t.id,
            fromVenue: t.fromVenue,
            toVenue: t.toVenue,
            amountUsd: Number(t.amount),
            feeUsd: rec.feeUsd,
          });
        } catch (err) {
          if (!col.isBridgeError(err)) throw err;
          // The source could not pay (its balance moved since routing): the legs behind this transfer
          // are dropped and the decider sees the drift again next step.
        }
      }
    }
    let tradedUsd = 0;
    for (const leg of routed.legs) {
      if (leg.waitsFor === undefined) {
        fill(leg.venueIndex, leg.sizeBase, ms, step);
        tradedUsd += Math.abs(leg.sizeBase * spot);
      } else if (col && sent.has(leg.waitsFor)) {
        col.waiting.push({ transferId: leg.waitsFor, venueIndex: leg.venueIndex, sizeBase: leg.sizeBase });
        waitingBase += leg.sizeBase;
        tradedUsd += Math.abs(leg.sizeBase * spot);
      }
    }
    if (tradedUsd > 0) decider.recordExecution(tradedUsd, ms);
  };
  /** Delivers due transfers at this step and trades the legs that waited for them. */
  const deliver = async (ms: number, step: number): Promise<void> => {
    if (!col || col.waiting.length === 0) return;
    col.clock.set(ms);
    for (const r of await col.bridge.poll()) {
      onEvent?.({ type: 'transfer-delivered', path: pathIndex, step, transferId: r.transferId });
      for (let j = 0; j < col.waiting.length; ) {
        const w = col.waiting[j] as WaitingLeg;
        if (w.transferId !== r.transferId) {
          j++;
          continue;
        }
        col.waiting.splice(j, 1);
        waitingBase -= w.sizeBase;
        fill(w.venueIndex, w.sizeBase, ms, step, w.transferId);
      }
    }
    // Float residue of adding and removing the same sizes.
    if (col.waiting.length === 0) waitingBase = 0;
  };

  /**
   * Liquidates, at this step's price, the hedge of every venue whose equity (its collateral balance,
   * into which perp P&L and funding settle every step) is below the maintenance margin of its position.
   * The close pays the venue's spread and impact and the liquidation penalty out of that balance (no
   * taker fee or gas: the liquidator pays those). A deficit left after the close stays on the venue's
   * balance (no insurance-fund bailout) until collateral is moved in. The decider sees the smaller hedge
   * at once, as the live system would after reconciling positions, and may re-hedge.
   */
  const liquidateUnderwater = (c: PathCollateral, step: number): void => {
    let closed = false;
    for (let v = 0; v < venues.length; v++) {
      const pos = hedgeByVenue[v] as number;
      if (pos === 0) continue;
      const notional = pos * spot;
      const absNotional = Math.abs(notional);
      const equityUsd = c.balanceUsd[v] as number;
      const maintenanceUsd = absNotional * (c.maintenanceFraction[v] as number);
      if (!(equityUsd < maintenanceUsd)) continue;
      const venue = venues[v] as EngineVenue;
      const slippageUsd = tradeCost(venue, notional, 0).slippageUsd;
      const penaltyUsd = absNotional * (c.penaltyFraction[v] as number);
      // The close moves no notional (the position's P&L has settled every step): only its costs.
      cash -= slippageUsd + penaltyUsd;
      c.balanceUsd[v] = equityUsd - slippageUsd - penaltyUsd;
      slip += slippageUsd;
      liquidationUsd += penaltyUsd;
      liquidations++;
      hedgeByVenue[v] = 0;
      closed = true;
      onEvent?.({
        type: 'liquidation',
        path: pathIndex,
        step,
        venue: venue.id,
        sizeBase: -pos,
        spotUsd: spot,
        equityUsd,
        maintenanceUsd,
        penaltyUsd,
        slippageUsd,
      });
    }
    if (closed) {
      // The hedge is what the venues hold (no residue of adding and removing the same sizes).
      hedge = 0;
      for (let v = 0; v < venues.length; v++) hedge += hedgeByVenue[v] as number;
    }
  };

  const state: HedgeState = {
    nowMs: 0,
    spotUsd: spot,
    hedgeBase: 0,
    bookDelta: 0,
    optionDeltaFloorBase: 0,
    optionDeltaCeilingBase: 0,
    bookGamma: 0,
    bookVannaPerVolPoint: 0,
    volDecimal: vol,
    rateDecimal: rate,
    gammaWeightedTenorYears: 0,
  };

  for (let k = 0; k < job.steps; k++) {
    const nowMs = k * stepMs;
    await deliver(nowMs, k);
    // P&L and funding of the last step have settled (and due collateral has landed): margin check.
    if (col && k > 0) liquidateUnderwater(col, k);
    state.nowMs = nowMs;
    state.spotUsd = spot;
    state.hedgeBase = hedge + waitingBase;
    state.bookDelta = book.delta[k] as number;
    // Which options are alive, hence their delta range, does not depend on the path: read off the grid.
    state.optionDeltaFloorBase = grid.optionDeltaFloorBase[k] as number;
    state.optionDeltaCeilingBase = grid.optionDeltaCeilingBase[k] as number;
    state.bookGamma = book.gamma[k] as number;
    state.bookVannaPerVolPoint = book.vannaPerVolPoint[k] as number;
    state.volDecimal = vol;
    state.gammaWeightedTenorYears = book.gammaTenorYears[k] as number;
    const q = decider.decide(state, k);
    if (q !== 0) await trade(q, nowMs, k);

    const spot1 = spots[k + 1] as number;
    const vol1 = vols[k + 1] as number;
    const dS = spot1 - spot;
    // Interest on the cash the book actually holds: premiums, payoffs, costs, settled perp P&L, funding.
    const interest = cash * (growth - 1);
    let carry = 0;
    let perpUsd = 0;
    for (let v = 0; v < venues.length; v++) {
      const pos = hedgeByVenue[v] as number;
      if (pos === 0) continue;
      const venueCarry = -pos * spot * (venues[v] as EngineVenue).fundingRatePerHour * dtHours;
      carry += venueCarry;
      perpUsd += pos * dS;
      // Perp P&L and funding settle into the venue's margin account.
      if (col) col.balanceUsd[v] = (col.balanceUsd[v] as number) + pos * dS + venueCarry;
    }
    cash += interest + carry + perpUsd;
    funding += interest + carry;

    const delta = book.delta[k] as number;
    const gamma = book.gamma[k] as number;
    const theta = book.thetaPerYear[k] as number;
    const vega = book.vegaPerVolPoint[k] as number;
    // Options expiring in this step pay their intrinsic into cash at the step's end (it earns interest
    // from then on); for attribution the payoff is the last change of their value.
    const settled = book.settledUsd[k + 1] as number;
    cash += settled;
    const dV = (book.valueUsd[k + 1] as number) + settled - (book.valueUsd[k] as number);
    const explained = delta * dS + 0.5 * gamma * dS * dS + theta * dt + vega * (vol1 - vol) * 100;
    dPnl += (delta + hedge) * dS;
    gPnl += 0.5 * gamma * dS * dS;
    tPnl += theta * dt;
    vPnl += vega * (vol1 - vol) * 100;
    resid += dV - explained;
    spot = spot1;
    vol = vol1;
  }
  // Transfers delivered by the end still let their legs trade before the unwind.
  await deliver(job.steps * stepMs, job.steps);
  if (col) liquidateUnderwater(col, job.steps);
  if (job.unwindAtEnd) {
    // Close on the venues that hold the hedge; each leg pays its own venue's costs. Per venue, not on
    // the net: +10 on one venue and −10 on another net to zero but are two positions to close.
    const ms = job.steps * stepMs;
    for (let v = 0; v < venues.length; v++) {
      const q = -(hedgeByVenue[v] as number);
      if (q === 0) continue;
      fill(v, q, ms, job.steps);
    }
  }
  // The hedge's P&L is in cash already (settled every step), whether or not it was closed.
  const pnl = cash + (book.valueUsd[job.steps] as number);
  if (!Number.isFinite(pnl)) throw new NumericError(`P&L of path ${pathIndex}`, pnl);
  const put = (f: PathField, x: number): void => {
    data[F[f] * count + row] = x;
  };
  put('pnlUsd', pnl);
  put('feesUsd', fees);
  put('slippageUsd', slip);
  put('gasUsd', gasUsd);
  put('fundingUsd', funding);
  put('deltaUsd', dPnl);
  put('gammaUsd', gPnl);
  put('thetaUsd', tPnl);
  put('vegaUsd', vPnl);
  put('residualUsd', resid);
  put('trades', trades);
  put('turnoverUsd', turnover);
  put('bridgeUsd', bridgeUsd);
  put('transfers', transfers);
  put('liquidations', liquidations);
  put('liquidationUsd', liquidationUsd);
}
