import { type HedgeIntent, isUsdLike, type OrderType, toDecimalString } from '@xhedge/core';
import type { RoutingBridgeCost } from '@xhedge/crosschain';
import {
  type CollateralReservation,
  type CollateralSource,
  type OptionMarket,
  planDecision,
  type QuoteTarget,
  quoteVenues,
  type RouteVenue,
  routedDeltaBase,
} from '@xhedge/routing';
import type { HedgeDecision } from '@xhedge/strategy';
import type { MarketInfo, VenueAdapter } from '@xhedge/venue';
import type { PlanForExecution, RoutePlan } from './planner.ts';

export interface RouterOptions {
  /** Limit price distance from the expected price, bps (the profile's `limits.maxSlippageBps`). */
  maxSlippageBps: number;
  log: (level: 'info' | 'warn', msg: string, data?: Record<string, unknown>) => void;
  /**
   * Price and delay of moving collateral between chains (`routingBridgeCost(layerZeroCostModel())` of
   * @xhedge/crosschain for the paper bridge). Without it collateral stays where it is.
   */
  bridge?: RoutingBridgeCost;
  /**
   * Venues collateral can be moved from and to (the transfer executor's endpoints). A venue outside
   * this set is neither a collateral source nor funded by a move. @defaultValue none
   */
  transferable?: ReadonlySet<string>;
  /**
   * Longest collateral move worth planning, ms of run time: the hedge waiting for it is sent that much
   * after its decision, and execution refuses decisions older than `limits.staleAfterMs`. Moves slower
   * than this are not offered to routing. @defaultValue no limit
   */
  maxTransferLatencyMs?: number;
}

/**
 * The order type a venue takes for a leg. Routing plans every delta leg as `ioc` (fill now or never,
 * with a worst price) and option legs as `limit`; venues that do not list that type get the nearest one
 * with the same bound: `market` with the leg's limit price as the slippage bound (GMX's
 * `acceptablePrice`, an AMM's max cost), else a marketable `limit`. The limit price always stays on the
 * leg, so no venue ever gets an unbounded order.
 */
export function orderTypeFor(wanted: OrderType, supported: readonly OrderType[]): OrderType {
  if (supported.includes(wanted)) return wanted;
  const fallbacks: Record<OrderType, readonly OrderType[]> = {
    ioc: ['market', 'limit'],
    limit: ['ioc', 'market'],
    market: ['ioc', 'limit'],
  };
  const t = fallbacks[wanted].find((x) => supported.includes(x));
  if (!t) throw new RangeError(`venue takes none of ${supported.join(', ')} for a ${wanted} leg`);
  return t;
}

/** Legs with their order types fitted to each venue's `capabilities.orderTypes` (see {@link orderTypeFor}). */
export function fitOrderTypes(
  legs: readonly HedgeIntent[],
  venues: ReadonlyMap<string, Pick<VenueAdapter, 'capabilities'>>,
): HedgeIntent[] {
  return legs.map((l) => {
    const v = venues.get(l.venue);
    if (!v) return l;
    const orderType = orderTypeFor(l.orderType, v.capabilities.orderTypes);
    return orderType === l.orderType ? l : { ...l, orderType };
  });
}

/**
 * Initial margin per USD of notional by instrument kind: perps at 10×, spot fully paid. For perps and
 * futures this is the policy's leverage ceiling, a floor on margin: see {@link marginFractionOf}.
 */
const MARGIN_FRACTION = { perp: 0.1, future: 0.1, spot: 1, option: 1 } as const;

/**
 * Initial margin per USD of notional routing sizes a leg in `market` by: the larger of the kind's
 * default and what the venue requires there (`initialMarginFraction`). Never less than the default,
 * which is a policy ceiling on leverage: a venue allowing 50× does not make the hedger take it. Never
 * less than the venue requires: sized at 10% on a market that asks 20%, a leg is rejected for margin
 * (or fills only to sit near liquidation) once the venue's free collateral binds.
 */
function marginFractionOf(market: Pick<MarketInfo, 'instrument' | 'initialMarginFraction'>): number {
  return Math.max(MARGIN_FRACTION[market.instrument.kind], market.initialMarginFraction ?? 0);
}

/**
 * Routing for the loop: finds each venue's perp (else spot) market for the underlying, quotes the
 * hedge there and lets `@xhedge/routing` pick and split, with the decision's option (vega) trades as
 * legs first: their premium and fees, and the collateral a sell's quote says its venue locks
 * (`lockedCollateralUsd`), are paid from their venues' free collateral (a leg it cannot pay for is cut or
 * dropped; a venue whose balances cannot be read pays for none) and the delta legs are routed on what is
 * left. The venues are quoted for the delta the plan routes (`routedDeltaBase`): the delta trade, or for a
 * vega-only decision outside its delta band the delta offsetting its option legs. A delta leg past its
 * venue's opposite position is budgeted at least the collateral the venue's quotes say such an order
 * posts (`quoteVenues` reads `lockedCollateralUsd` into `openCollateralUsdPerUnit`): GMX opens it beside that
 * position and posts on its whole size, not only on the part past it. When a
 * bridge is given, every transferable venue's free USD-like collateral is a source, and a venue short
 * of margin can be funded by a move when that is cheaper all-in (the plan then has `transfers`, and the
 * legs that need them list them in `dependsOn`). Given the round's `reservation`, collateral that earlier
 * plans of the round committed is taken off the balances read, and this plan's is added to it. Order
 * types are fitted to each venue's capabilities.
 */
export function createRouter(opts: RouterOptions): RoutePlan {
  // per adapter: a venue rebuilt with new params is a new adapter and lists its markets again
  const markets = new WeakMap<VenueAdapter, MarketInfo[]>();
  const marketsOf = async (v: VenueAdapter): Promise<MarketInfo[]> => {
    let m = markets.get(v);
    if (!m) {
      m = await v.loadMarkets();
      markets.set(v, m);
    }
    return m;
  };
  const transferable = opts.transferable ?? new Set<string>();
  return async (
    decision: HedgeDecision,
    given: readonly VenueAdapter[],
    reservation?: CollateralReservation,
  ): Promise<PlanForExecution | undefined> => {
    if (decision.action !== 'hedge') return undefined;
    // What planDecision will route: a vega-only decision has no delta trade (side null) but may still
    // need a leg offsetting its option legs' delta, and routing can only place it on venues quoted here.
    const deltaBase = routedDeltaBase(decision);
    const hasDelta = deltaBase !== 0;
    if (!hasDelta && decision.vegaTrades.length === 0) return undefined;
    const targets: QuoteTarget[] = [];
    const sources: CollateralSource[] = [];
    // Free USD-like collateral per venue, less what earlier plans of the round committed: the option legs
    // pay their premium from it before the delta legs are routed on the rest.
    const optionFreeCollateralUsd: Record<string, number> = {};
    // A venue that takes none of the order types legs are planned as would make `fitOrderTypes` throw
    // after routing, failing the tick for every underlying: it is left out here instead (its option
    // legs dropped: none of its collateral pays for them).
    const venues = given.filter((v) => {
      try {
        orderTypeFor('ioc', v.capabilities.orderTypes);
        return true;
      } catch (err) {
        optionFreeCollateralUsd[v.id] = 0;
        opts.log('warn', `venue ${v.id} left out of routing`, {
          err: err instanceof Error ? err.message : String(err),
        });
        return false;
      }
    });
    await Promise.all(
      venues.map(async (adapter) => {
        try {
          const balances = await adapter.fetchBalances();
          // What the venue margins with (read after the balances: GMX names its token once it has read
          // it): a USD-like balance in another asset is no free collateral there (a wallet's USDT on a
          // USDC-margined venue), and routing sized orders on it that the venue refused, tick after tick.
          const accepted = new Set(adapter.capabilities.collateral);
          const margin = (asset: string) => isUsdLike(asset) && accepted.has(asset);
          if (opts.bridge && transferable.has(adapter.id)) {
            for (const b of balances.filter((x) => isUsdLike(x.asset))) {
              const free = b.available ?? b.amount;
              if (free > 0)
                sources.push({ venue: adapter.id, chain: adapter.chain, asset: b.asset, availableUsd: free });
            }
          }
          const readUsd = balances
            .filter((b) => margin(b.asset))
            .reduce((s, b) => s + (b.available ?? b.amount), 0);
          const freeCollateralUsd = reservation ? reservation.freeUsd(adapter.id, readUsd) : readUsd;
          optionFreeCollateralUsd[adapter.id] = freeCollateralUsd;
          if (!hasDelta) return;
          const list = (await marketsOf(adapter)).filter(
            (m) =>
              m.active && m.instrument.underlying === decision.underlying && m.instrument.kind !== 'option',
          );
          const market =
            list.find((m) => m.instrument.kind === 'perp') ?? list.find((m) => m.instrument.kind === 'spot');
          if (!market) return;
          const positions = await adapter.fetchPositions();
          const positionBase = positions
            .filter((p) => p.instrument === market.instrument.id)
            .reduce((s, p) => s + p.sizeBase, 0);
          const t: QuoteTarget = {
            adapter,
            venue: adapter.id,
            chain: adapter.chain,
            instrument: market.instrument.id,
            minSizeBase: Number(market.minSizeBase),
            sizeStepBase: Number(market.sizeStepBase),
            priceTickUsd: Number(market.priceTickUsd),
            positionBase,
            freeCollateralUsd,
            marginFraction: marginFractionOf(market),
          };
          if (market.maxOrderSizeBase !== undefined) t.maxOrderSizeBase = Number(market.maxOrderSizeBase);
          targets.push(t);
        } catch (err) {
          // Balances not read: its option legs get none of its collateral (cut, with the delta they
          // would have added). Left out of the map, routing took them as unchecked and sent them whole.
          if (!(adapter.id in optionFreeCollateralUsd)) optionFreeCollateralUsd[adapter.id] = 0;
          opts.log('warn', `venue ${adapter.id} left out of routing`, {
            err: err instanceof Error ? err.message : String(err),
          });
        }
      }),
    );
    let quoted: RouteVenue[] = [];
    if (hasDelta) {
      if (targets.length === 0 && decision.vegaTrades.length === 0) return undefined;
      targets.sort((a, b) => a.venue.localeCompare(b.venue));
      const q = await quoteVenues(targets, {
        side: deltaBase > 0 ? 'buy' : 'sell',
        sizeBase: Math.abs(deltaBase),
      });
      if (q.notes.length > 0) opts.log('info', 'routing notes', { notes: q.notes });
      quoted = q.venues;
    }
    sources.sort((a, b) => a.venue.localeCompare(b.venue) || a.asset.localeCompare(b.asset));
    const transferableSources = sources.filter((s) => transferable.has(s.venue));
    const optionTickUsd: Record<string, number> = {};
    const optionMarkets: Record<string, OptionMarket> = {};
    // A venue whose markets cannot be read pays for none of its option legs (they are dropped, with the
    // delta they would have added, as when its balances are not read); thrown from here, it failed the
    // tick for every underlying.
    const unlisted = new Set<string>();
    for (const t of decision.vegaTrades) {
      const v = venues.find((x) => x.id === t.venue);
      if (!v || unlisted.has(v.id)) continue;
      let m: MarketInfo | undefined;
      try {
        m = (await marketsOf(v)).find((x) => x.instrument.id === t.instrument);
      } catch (err) {
        unlisted.add(v.id);
        optionFreeCollateralUsd[v.id] = 0;
        opts.log('warn', `venue ${v.id} left out of the option legs: its markets cannot be read`, {
          err: err instanceof Error ? err.message : String(err),
        });
        continue;
      }
      if (!m) continue;
      optionTickUsd[`${t.venue}|${t.instrument}`] = Number(m.priceTickUsd);
      optionMarkets[`${t.venue}|${t.instrument}`] = {
        minSizeBase: Number(m.minSizeBase),
        sizeStepBase: Number(m.sizeStepBase),
      };
    }
    // Option legs are priced at what the venue quotes for their size (an AMM's price moves with size
    // and carries fees well beyond the mark), so their limit is a slippage bound around that price.
    const vegaTrades = await Promise.all(
      decision.vegaTrades.map(async (t) => {
        const v = venues.find((x) => x.id === t.venue);
        if (!v || unlisted.has(v.id)) return t;
        try {
          const q = await v.quoteHedge({
            instrument: t.instrument,
            side: t.side,
            sizeBase: toDecimalString(t.sizeBase, 12),
            holdingHours: 0,
          });
          // The fee is paid from the venue's collateral with the premium (see PlanInputs.optionMarkets),
          // and a sell locks the collateral its quote states there too. Per unit at the quoted size: a leg
          // cut to fit is taken to lock in proportion, which holds while the venue's minimum scales with the
          // amount (not below a static floor such as Lyra's minStaticQuoteCollateral).
          const market = optionMarkets[`${t.venue}|${t.instrument}`];
          const quotedBase = Number(q.executableSizeBase);
          if (market && quotedBase > 0) {
            market.feeUsdPerUnit = q.feeUsd / quotedBase;
            if (t.side === 'sell' && q.lockedCollateralUsd !== undefined)
              market.shortCollateralUsdPerUnit = q.lockedCollateralUsd / quotedBase;
          }
          return { ...t, priceUsd: q.expectedPriceUsd };
        } catch (err) {
          opts.log('warn', `option quote on ${t.venue} failed; the leg is priced at the mark`, {
            instrument: t.instrument,
            err: err instanceof Error ? err.message : String(err),
          });
          return t;
        }
      }),
    );
    const bridge = opts.bridge;
    const plan = planDecision(
      { ...decision, vegaTrades },
      {
        venues: quoted,
        optionTickUsd,
        optionFreeCollateralUsd,
        optionMarkets,
        options: {
          // Moves only between venues the transfer executor serves; without a bridge none is planned.
          bridge: (from, to, amountUsd, asset) => {
            if (!bridge) return from === to ? { feeUsd: 0, latencyMs: 0 } : null;
            const b = bridge(from, to, amountUsd, asset);
            return b && b.latencyMs <= (opts.maxTransferLatencyMs ?? Number.POSITIVE_INFINITY) ? b : null;
          },
          collateralSources: reservation ? reservation.sources(transferableSources) : transferableSources,
          maxSlippageBps: opts.maxSlippageBps,
        },
      },
    );
    if (!plan || plan.legs.length === 0) return undefined;
    // A move can only fund a venue the executor can credit.
    if (plan.transfers.some((t) => !transferable.has(t.toVenue))) {
      opts.log('warn', 'plan needs a collateral move to a venue the bridge cannot reach; skipped', {
        planId: plan.planId,
      });
      return undefined;
    }
    const legs = fitOrderTypes(plan.legs, new Map(venues.map((v) => [v.id, v])));
    // The plan goes out: later plans of the round see the collateral it takes (its delta legs' margin,
    // its option legs' premium and fees, the moves out of a venue).
    reservation?.commit(plan, quoted);
    // A shortfall under the coarsest size step of the venues is the rounding of sizes to those steps,
    // not a venue that could not take the hedge.
    const stepBase = Math.max(0, ...targets.map((t) => t.sizeStepBase));
    const notes = plan.notes.filter((n) => !(n.startsWith('shortfall ') && plan.shortfallBase < stepBase));
    if (notes.length > 0) opts.log('info', 'plan notes', { planId: plan.planId, notes });
    return {
      planId: plan.planId,
      underlying: plan.underlying,
      reason: decision.reason,
      legs,
      transfers: plan.transfers,
    };
  };
}
