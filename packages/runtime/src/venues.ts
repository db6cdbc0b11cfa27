import { join } from 'node:path';
import type { VenueConfig, VenueKind, XhedgeConfig } from '@xhedge/config';
import { type Clock, formatPath, ValidationError, XhedgeError } from '@xhedge/core';
import { createMarketFromConfig, type PaperMarket } from '@xhedge/sim';
import type { VenueAdapter } from '@xhedge/venue';
import { createDriftVenue, DriftVenueParams } from '@xhedge/venue-drift';
import { createGmxVenue, GmxVenueParams } from '@xhedge/venue-gmx';
import { createLyraVenue, LyraVenueParams } from '@xhedge/venue-lyra';
import {
  createPaperVenues,
  DriftParams,
  GmxParams,
  LyraParams,
  PAPER_VENUE_KINDS,
  type PaperVenue,
  ShadowVenue,
  SpotAmmParams,
} from '@xhedge/venue-paper';
import type { ShadowStore } from '@xhedge/venue-paper/shadow-store';
import { ZodError, type z } from 'zod';

/** Each venue kind's params schema: what its adapter parses when it is built. */
const PARAMS_SCHEMA: Partial<Record<VenueKind, z.ZodType>> = {
  'paper-lyra': LyraParams,
  'paper-gmx': GmxParams,
  'paper-drift': DriftParams,
  'paper-spot-amm': SpotAmmParams,
  gmx: GmxVenueParams,
  lyra: LyraVenueParams,
  drift: DriftVenueParams,
};

/**
 * The params check the venue's adapter makes when it is built, without building it: a
 * `ValidationError` naming each bad field (`params.takerFeeBps`, typos as unrecognized keys), so an
 * operator adding or changing a venue over the API hears of it at once, not from the server log.
 */
export function checkVenueParams(v: Pick<VenueConfig, 'id' | 'kind' | 'params'>): void {
  const schema = PARAMS_SCHEMA[v.kind];
  if (!schema) return;
  const res = schema.safeParse(v.params ?? {});
  if (res.success) return;
  throw new ValidationError(
    `venue ${v.id} (${v.kind})`,
    res.error.issues.map((i) => ({ path: formatPath(['params', ...i.path]), message: i.message })),
  );
}

/** The venues of one run: paper ones on the simulated market, and adapters to real chains. */
export interface RunVenues {
  /** All enabled venues, in profile order. */
  all: VenueAdapter[];
  /** The paper venues (endpoints of the paper bridge). */
  paper: PaperVenue[];
  /** The simulated market the paper venues price from (none without paper venues). */
  market: PaperMarket | undefined;
}

export interface BuildVenuesOptions {
  config: XhedgeConfig;
  clock: Clock;
  /** Where env-referenced secrets (RPC URLs, keys) are read. */
  env: Readonly<Record<string, string | undefined>>;
  /** The run's data folder; real adapters keep their client-id → order mappings under `venues/`. */
  dataDir: string;
  /**
   * In a dry run, where each real venue's simulated state is kept (the run's Redis, shared by every
   * process of the deployment and kept over restarts). @defaultValue this process's memory
   */
  shadowStore?: (venue: string) => ShadowStore;
  /**
   * The speed of the run's simulated clock when it runs faster than real time (an all-paper run): a
   * real venue cannot be built on it (its expiries, limits and staleness would run that much too fast).
   */
  simulatedSpeed?: number;
}

/** True when the profile has a venue kind that runs on the simulated market. */
export function hasPaperVenues(config: XhedgeConfig): boolean {
  return config.venues.some((v) => v.enabled && v.kind.startsWith('paper-'));
}

/**
 * An adapter from its profile entry. Its factory fails on what the operator must fix (a key env var
 * not set, bad params): that becomes a config error naming the venue, which the CLI prints as such.
 */
function configured(v: VenueConfig, make: () => VenueAdapter): VenueAdapter {
  try {
    return make();
  } catch (err) {
    if (!(err instanceof XhedgeError) && !(err instanceof ZodError)) throw err;
    const why =
      err instanceof ZodError
        ? err.issues.map((i) => `params.${i.path.join('.')}: ${i.message}`).join('; ')
        : err.shortMessage;
    throw new XhedgeError('CONFIG_INVALID', `venue ${v.id} (${v.kind} on ${v.chain}): ${why}`, {
      details: { venue: v.id, kind: v.kind },
      cause: err,
    });
  }
}

/** A real venue's adapter; in a dry run, wrapped so that its orders are simulated, never sent. */
/**
 * The error for a real venue in a run whose clock is the simulated market's, `speed`× real time (a run
 * started with paper venues only): put it in the profile, whose real venues make the run keep real time.
 */
export function realOnSimulatedClock(v: Pick<VenueConfig, 'id' | 'kind'>, speed: number): XhedgeError {
  return new XhedgeError(
    'CONFIG_INVALID',
    `venue ${v.id} (${v.kind}) is real, but this run's clock is the simulated market's, ${speed}× real time (it started with paper venues only): its options would expire, its limits reset and its marks go stale ${speed}× too fast; add it to the profile and restart (a profile with a real venue runs at real time)`,
    { details: { venue: v.id, kind: v.kind, speed } },
  );
}

function realVenue(v: VenueConfig, o: BuildVenuesOptions): VenueAdapter {
  if (o.simulatedSpeed !== undefined && o.simulatedSpeed !== 1)
    throw realOnSimulatedClock(v, o.simulatedSpeed);
  const venue = realAdapter(v, o);
  if (!o.config.dryRun) return venue;
  return new ShadowVenue(venue, { clock: o.clock, ...(o.shadowStore ? { store: o.shadowStore(v.id) } : {}) });
}

function realAdapter(v: VenueConfig, o: BuildVenuesOptions): VenueAdapter {
  const deps = { secrets: { env: o.env }, dataDir: join(o.dataDir, 'venues'), clock: o.clock };
  switch (v.kind) {
    case 'lyra':
      return configured(v, () => createLyraVenue(v, deps));
    case 'gmx':
      return configured(v, () => createGmxVenue(v, deps));
    case 'drift':
      return configured(v, () => createDriftVenue(v, deps));
    default:
      throw new XhedgeError('CONFIG_INVALID', `venue ${v.id}: unknown real venue kind ${v.kind}`);
  }
}

/**
 * Builds every enabled venue of the profile: `paper-*` kinds on one simulated market that follows the
 * run's clock (`createPaperVenues`), `lyra` and `gmx` over their chains' RPC (`createLyraVenue`,
 * `createGmxVenue`) and `drift` over a Solana RPC (`createDriftVenue`), keys from the env vars or key
 * files the profile names; in a dry run the real ones are wrapped so that no order reaches them
 * (`ShadowVenue`). A venue that cannot be
 * built fails the start with an error that names it: a hedger that silently runs without one of its
 * venues would misread the book.
 */
export async function buildVenues(o: BuildVenuesOptions): Promise<RunVenues> {
  const { config, clock } = o;
  let market: PaperMarket | undefined;
  let paper: PaperVenue[] = [];
  if (hasPaperVenues(config)) {
    market = createMarketFromConfig({
      market: config.market,
      underlyings: config.underlyings.map((u) => u.symbol),
      clock,
    });
    paper = createPaperVenues({ config, market, clock });
  }
  const byId = new Map<string, VenueAdapter>(paper.map((v) => [v.id, v]));
  const all: VenueAdapter[] = [];
  try {
    for (const v of config.venues) {
      if (!v.enabled) continue;
      all.push(byId.get(v.id) ?? realVenue(v, o));
    }
  } catch (err) {
    await Promise.all([...new Set([...paper, ...all])].map((v) => v.close?.()));
    throw err;
  }
  return { all, paper, market };
}

export interface BuildVenueOptions extends BuildVenuesOptions {
  /** The run's simulated market (from `buildVenues`); paper venues cannot be built without one. */
  market: PaperMarket | undefined;
}

function isPaperKind(kind: string): boolean {
  return (PAPER_VENUE_KINDS as readonly string[]).includes(kind);
}

/**
 * One venue's adapter while the run goes (a venue added or enabled through the API, or rebuilt for new
 * params): a `paper-*` kind on the run's simulated market, seeded from the profile's book like at start
 * (a rebuild instead carries the `previous` paper venue's positions and balances over, entries at the
 * current mark; its order history stays with the old one), a real kind exactly as `buildVenues` does
 * (keys from the env vars or key files the config names). Throws a config error naming the venue.
 */
export async function buildVenue(
  v: VenueConfig,
  o: BuildVenueOptions,
  previous?: VenueAdapter,
): Promise<VenueAdapter> {
  if (!isPaperKind(v.kind)) return realVenue(v, o);
  const { market } = o;
  if (!market)
    throw new XhedgeError(
      'CONFIG_INVALID',
      `venue ${v.id} (${v.kind}): this run has no simulated market (it started without paper venues), so it cannot add a paper venue; restart with a paper venue in the profile`,
      { details: { venue: v.id, kind: v.kind } },
    );
  let book = o.config.book;
  if (previous) {
    const [positions, balances] = await Promise.all([previous.fetchPositions(), previous.fetchBalances()]);
    book = {
      source: 'config',
      positions: positions
        .filter((p) => p.sizeBase !== 0)
        .map((p) => ({ venue: v.id, instrument: p.instrument, size: p.sizeBase })),
      balances: balances
        .filter((b) => b.amount > 0)
        .map((b) => ({ venue: v.id, asset: b.asset, amount: b.amount })),
    };
  }
  const config: XhedgeConfig = { ...o.config, venues: [{ ...v, enabled: true }], book };
  return configured(v, () => {
    const [venue] = createPaperVenues({ config, market, clock: o.clock });
    if (!venue) throw new XhedgeError('CONFIG_INVALID', `venue ${v.id}: no paper venue was built`);
    return venue;
  });
}
