import type { XhedgeConfig } from '@xhedge/config';
import { type Clock, ValidationError } from '@xhedge/core';
import type { PaperMarket } from '@xhedge/sim';
import type { PaperVenue, PaperVenueContext } from './base.ts';
import { PaperDriftVenue } from './drift.ts';
import { PaperGmxVenue } from './gmx.ts';
import { PaperLyraVenue } from './lyra.ts';
import { PaperSpotAmmVenue } from './spot-amm.ts';

/** Venue kinds this package simulates. */
export type PaperVenueKind = 'paper-lyra' | 'paper-gmx' | 'paper-drift' | 'paper-spot-amm';
export const PAPER_VENUE_KINDS: readonly PaperVenueKind[] = [
  'paper-lyra',
  'paper-gmx',
  'paper-drift',
  'paper-spot-amm',
];

export interface CreatePaperVenueOptions extends PaperVenueContext {
  kind: PaperVenueKind;
  /** The venue's config `params` (fee, latency and liquidity overrides; see each venue's params schema). */
  params?: Record<string, unknown>;
}

/** Builds one paper venue. */
export function createPaperVenue(opts: CreatePaperVenueOptions): PaperVenue {
  const ctx: PaperVenueContext = { id: opts.id, chain: opts.chain, market: opts.market };
  if (opts.sleep) ctx.sleep = opts.sleep;
  switch (opts.kind) {
    case 'paper-lyra':
      return new PaperLyraVenue(ctx, opts.params);
    case 'paper-gmx':
      return new PaperGmxVenue(ctx, opts.params);
    case 'paper-drift':
      return new PaperDriftVenue(ctx, opts.params);
    case 'paper-spot-amm':
      return new PaperSpotAmmVenue(ctx, opts.params);
  }
}

export interface CreatePaperVenuesOptions {
  config: XhedgeConfig;
  /** The run's shared simulated market (it follows its own clock). */
  market: PaperMarket;
  /** The run's clock; the market must follow the same one. */
  clock: Clock;
  /** Waits for injected latency. @defaultValue a real `setTimeout` */
  sleep?: (ms: number) => Promise<void>;
}

/**
 * Builds a paper venue for every enabled `paper-*` venue of the config (real-chain kinds are skipped)
 * and, when `book.source` is `config`, seeds positions (entry at the current mark) and balances from
 * `config.book`.
 */
export function createPaperVenues(opts: CreatePaperVenuesOptions): PaperVenue[] {
  const { config, market } = opts;
  if (market.clock !== opts.clock)
    throw new ValidationError('paper venues', [
      { path: 'clock', message: 'the market must follow the same clock as the venues' },
    ]);
  market.sync();
  const out: PaperVenue[] = [];
  for (const v of config.venues) {
    if (!v.enabled || !(PAPER_VENUE_KINDS as readonly string[]).includes(v.kind)) continue;
    const kind = v.kind as PaperVenueKind;
    const params = { ...v.params };
    if (kind === 'paper-lyra') {
      const listed = config.book.positions.filter((p) => p.venue === v.id).map((p) => p.instrument);
      params.instruments = [...((params.instruments as string[] | undefined) ?? []), ...listed];
    }
    const venueOpts: CreatePaperVenueOptions = { id: v.id, kind, chain: v.chain, market, params };
    if (opts.sleep) venueOpts.sleep = opts.sleep;
    const venue = createPaperVenue(venueOpts);
    if (config.book.source === 'config') {
      for (const p of config.book.positions) if (p.venue === v.id) venue.seedPosition(p.instrument, p.size);
      for (const b of config.book.balances) if (b.venue === v.id) venue.seedBalance(b.asset, b.amount);
    }
    out.push(venue);
  }
  return out;
}
