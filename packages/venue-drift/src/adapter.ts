import {
  type AccountMeta,
  ComputeBudgetProgram,
  type Keypair,
  type PublicKey,
  TransactionMessage,
  VersionedTransaction,
} from '@solana/web3.js';
import {
  type Balance,
  type ChainId,
  type Clock,
  Dec,
  type Fill,
  type FundingRate,
  instrumentMeta,
  type Mark,
  MS_PER_HOUR,
  type Order,
  type Position,
  parseInstrumentId,
} from '@xhedge/core';
import {
  HedgeQuote,
  InvalidOrderError,
  type MarketInfo,
  NotSupportedError,
  OrderNotFoundError,
  OrderRequest,
  QuoteRequest,
  RateLimitError,
  StaleOracleError,
  type VenueAdapter,
  type VenueCapabilities,
  VenueError,
  VenueHaltedError,
  type VenueHealth,
  VenueNetworkError,
} from '@xhedge/venue';
import {
  DriftDecodeError,
  type DriftFeeTier,
  type DriftOrder,
  type DriftPerpMarket,
  type DriftPerpPosition,
  type DriftSpotMarket,
  type DriftUser,
  decodePerpMarket,
  decodeSpotMarket,
  decodeState,
  decodeUser,
} from './decode.ts';
import { driftTakerFeeQuote, solanaFeeLamports } from './fees.ts';
import {
  cancelOrderByUserIdInstruction,
  type DriftOrderAccounts,
  driftPda,
  driftRemainingAccounts,
  type OrderParams,
  type PerpMarketRef,
  placeAndTakePerpOrderInstruction,
  placePerpOrderInstruction,
  type SpotMarketRef,
} from './instructions.ts';
import {
  AMM_RESERVE_PRECISION,
  BASE_PRECISION,
  FEE_ADJUSTMENT_MAX,
  MARGIN_PRECISION,
  PEG_PRECISION,
  POSITION_FLAG,
  PRICE_PRECISION,
  QUOTE_PRECISION,
  QUOTE_SPOT_MARKET_INDEX,
  SPOT_TOKEN_AMOUNT_DIVISOR,
  USER_STATUS,
} from './layout.ts';
import { accruedFundingQuote, type DriftFreeCollateral, driftFreeCollateral } from './margin.ts';
import { type UserOrderIdMap, type UserOrderIdRecord, UserOrderIdsExhaustedError } from './order-ids.ts';
import { describeTransactionError } from './program-errors.ts';
import {
  type AccountReadOptions,
  type ConfirmationLevel,
  findRpcTimeout,
  MinContextSlotNotReachedError,
  reached,
  type SolanaRpc,
} from './rpc.ts';
import { rpcFailure, sendAndConfirm, signatureOf } from './send.ts';

type FillEvidence = NonNullable<UserOrderIdRecord['fillEvidence']>;
/** An order's fill range (BASE_PRECISION), the orders that keep it open, and what it came from. */
interface FillBounds {
  min: bigint;
  max: bigint;
  others: string[];
  evidence: FillEvidence;
}
const sideSign = (side: 'buy' | 'sell') => (side === 'buy' ? 1n : -1n);

/** Signs transactions; the adapter never sees a secret key. */
export interface DriftSigner {
  publicKey: PublicKey;
  signTransaction(tx: VersionedTransaction): Promise<VersionedTransaction>;
}

/** A signer over an in-memory keypair (key files, tests). */
export function keypairSigner(keypair: Keypair): DriftSigner {
  return {
    publicKey: keypair.publicKey,
    async signTransaction(tx) {
      tx.sign([keypair]);
      return tx;
    },
  };
}

export interface DriftMarketConfig {
  marketIndex: number;
  /** Canonical instrument id, `SOL-USD:PERP`. */
  instrument: string;
}

export interface DriftVenueOptions {
  id: string;
  /** @defaultValue 'solana:mainnet-beta' */
  chain?: ChainId;
  programId: PublicKey;
  signer: DriftSigner;
  /** @defaultValue 0 */
  subAccountId?: number;
  rpc: SolanaRpc;
  markets: readonly DriftMarketConfig[];
  /** Quote (collateral) spot market index; USDC is 0 on Drift. @defaultValue 0 */
  quoteSpotMarketIndex?: number;
  /** Collateral asset symbol of the quote spot market. @defaultValue 'USDC' */
  quoteAsset?: string;
  orderIds: UserOrderIdMap;
  /**
   * The venue opened `orderIds` (the profile factory does): its `close` closes them (releasing the id
   * file for a venue rebuilt or stopped). A map passed in otherwise stays open. @defaultValue false
   */
  closeOrderIds?: boolean;
  clock: Clock;
  /** Commitment at which an order counts as sent. @defaultValue 'confirmed' */
  commitment?: ConfirmationLevel;
  /** Priority fee: ComputeBudget unit price, micro-lamports. @defaultValue 10000n */
  computeUnitPriceMicroLamports?: bigint;
  /** ComputeBudget unit limit for one order transaction. @defaultValue 300000 */
  computeUnitLimit?: number;
  /**
   * How long the perp fee tier read from the program's State account is reused before a quote reads it
   * again, clock ms. @defaultValue 300000
   */
  feeTierMaxAgeMs?: number;
  /** USD per SOL, to express the transaction fee in USD. */
  solPriceUsd: () => number;
  /** Order validity for limit orders, seconds after placement (sets max_ts). @defaultValue 60 */
  orderTtlSeconds?: number;
  sleep?: (ms: number) => Promise<void>;
  /** Poll interval while confirming, ms. @defaultValue 400 */
  pollMs?: number;
  /** Expected placement-to-fill latency reported in quotes, ms. @defaultValue 2000 */
  expectedLatencyMs?: number;
}

const FIXED_DP = { base: 9, price: 6, quote: 6 } as const;
/** OrderParams' base_asset_amount and price are u64. */
const U64_MAX = 0xffff_ffff_ffff_ffffn;

/** A base size (at most 9 decimals, as the id map's records hold them) in BASE_PRECISION. */
function baseRaw(sizeBase: string): bigint {
  return scaleDecimal(sizeBase, FIXED_DP.base, 'floor');
}
function fromFixed(v: bigint, decimals: number): string {
  return new Dec(v.toString()).div(new Dec(10).pow(decimals)).toFixed();
}
/**
 * `v` × 10^decimals as an integer, rounded as `rounding` says, exactly: the digits are shifted, not
 * multiplied (a decimal.js product rounds to 40 significant digits first, which can cross a tick).
 */
function scaleDecimal(v: string, decimals: number, rounding: 'floor' | 'ceil'): bigint {
  const fixed = new Dec(v).toFixed(decimals, rounding === 'floor' ? Dec.ROUND_FLOOR : Dec.ROUND_CEIL);
  return BigInt(fixed.replace('.', ''));
}
function toFixed(v: string, decimals: number, what: string, venue: string, clientOrderId: string): bigint {
  if (new Dec(v).decimalPlaces() > decimals)
    throw new InvalidOrderError({
      venue,
      clientOrderId,
      message: `${what} ${v} has more than ${decimals} decimals`,
    });
  return scaleDecimal(v, decimals, 'floor'); // exact: it has no more decimals
}

/**
 * A client order id this venue did send, whose record the id map has since pruned from its bounded
 * history (only ended orders' records are pruned) with a tombstone holding no terminal state (one an
 * earlier build wrote, which kept only a hash of the id): how it ended cannot be read back by client
 * id. Outcome unknown and not retryable: a `null` ("never at the venue") would have the worker send it
 * again, or record a filled order as never sent. A tombstone with the terminal state answers instead.
 */
export class DriftOrderRecordPrunedError extends VenueError {
  override name = 'DriftOrderRecordPrunedError';
  constructor(venue: string, clientOrderId: string) {
    super('VENUE_ORDER_NOT_FOUND', {
      venue,
      clientOrderId,
      message: `order ${clientOrderId} was sent and has ended, but its record has been pruned from the user order id map: its outcome cannot be read back by client id`,
      outcome: 'unknown',
      retryable: false,
    });
  }
}

/**
 * A Drift v2-style perps venue on Solana: reads the User and PerpMarket accounts, places market and
 * limit orders with `place_perp_order` and IOC orders with `place_and_take_perp_order` (the program
 * refuses IOC in `place_perp_order`), in a v0 transaction carrying a compute-budget priority fee, and
 * maps the orchestrator's client order ids to Drift's u8 `user_order_id` through a durable map.
 *
 * Order outcome: a confirmed transaction means the order reached the program. An open order is read
 * from the User account. A filled or cancelled order keeps its slot (status, base and quote filled)
 * until a later order takes that slot, so it is found there by user order id, market, direction and
 * the slot its transaction landed in, with its average price; before each new order (which takes the
 * first slot not open) the ended orders of ours still in their slots are recorded. Only when a slot
 * was taken anyway (by another client of the account, or an order ending while ours was being placed)
 * is the fill size inferred from the change of the perp position since the order was sent (average
 * price unset), net of what the other orders of ours on the market can have filled meanwhile: when
 * that leaves a range, the least is reported, marked as an estimate in `error` (see `#fillBounds`),
 * never another order's fill as this one's.
 */
export class DriftVenue implements VenueAdapter {
  readonly id: string;
  readonly kind = 'drift';
  readonly chain: ChainId;
  readonly capabilities: VenueCapabilities = {
    products: ['perp'],
    venueGreeks: false,
    liquidityModel: 'amm',
    executionMode: 'tx-confirmed',
    orderTypes: ['market', 'limit', 'ioc'],
    reduceOnly: true,
    cancel: true,
    clientOrderId: 'u8',
    fundingIntervalHours: 1,
    collateral: ['USDC'],
    inverseSettlement: false,
    gasAsset: 'SOL',
  };
  readonly #o: DriftVenueOptions;
  readonly #user: PublicKey;
  readonly #commitment: ConfirmationLevel;
  readonly #sleep: (ms: number) => Promise<void>;
  /** The last perp fee tier 0 read from State, and when (clock ms). */
  #feeTier: { tier: DriftFeeTier; readAtMs: number } | undefined;
  /** A State read under way, shared by the quotes that wait for it. */
  #feeTierRead: Promise<DriftFeeTier> | undefined;
  #closed = false;

  constructor(o: DriftVenueOptions) {
    this.#o = o;
    this.id = o.id;
    this.chain = o.chain ?? 'solana:mainnet-beta';
    this.#user = driftPda.user(o.programId, o.signer.publicKey, o.subAccountId ?? 0);
    this.#commitment = o.commitment ?? 'confirmed';
    this.#sleep = o.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.capabilities.collateral = [o.quoteAsset ?? 'USDC'];
  }

  /**
   * Closes the order id map when the venue opened it ({@link DriftVenueOptions.closeOrderIds}): its file
   * is released once no other venue of this process uses it. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#o.closeOrderIds) await this.#o.orderIds.close();
  }

  /** The User account this venue trades from. */
  get userAccount(): PublicKey {
    return this.#user;
  }

  /** Lamports the payer is charged per order transaction (one signature + priority fee). */
  orderFeeLamports(): bigint {
    return solanaFeeLamports({
      signatures: 1,
      computeUnitPriceMicroLamports: this.#o.computeUnitPriceMicroLamports ?? 10_000n,
      computeUnitLimit: this.#o.computeUnitLimit ?? 300_000,
    });
  }

  /**
   * A read of the node other than an account's, its failure as a venue error (a timeout as
   * `VenueTimeoutError`), outcome `not-sent` like {@link #read}'s: a caller for whom the order may
   * have gone out makes it `unknown` ({@link #resolveSent}).
   */
  async #rpcRead<T>(what: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (cause) {
      throw rpcFailure({ venue: this.id, message: `reading ${what} failed`, outcome: 'not-sent', cause });
    }
  }

  async #read<T>(
    address: PublicKey,
    what: string,
    decode: (d: Uint8Array) => T,
    opts?: AccountReadOptions,
  ): Promise<T> {
    let data: Uint8Array | null;
    try {
      data = await this.#o.rpc.getAccountData(address, opts);
    } catch (cause) {
      // Not a failure: the node is behind the asked slot; the caller decides what "not yet" means.
      if (cause instanceof MinContextSlotNotReachedError) throw cause;
      throw rpcFailure({ venue: this.id, message: `reading ${what} failed`, outcome: 'not-sent', cause });
    }
    if (!data)
      throw new VenueNetworkError({ venue: this.id, message: `${what} ${address.toBase58()} not found` });
    try {
      return decode(data);
    } catch (cause) {
      const reason =
        cause instanceof DriftDecodeError
          ? String(cause.details.reason)
          : cause instanceof Error
            ? cause.message
            : String(cause);
      throw new VenueError('VENUE_NETWORK', {
        venue: this.id,
        message: `${what} ${address.toBase58()} could not be decoded: ${reason}`,
        outcome: 'not-sent',
        retryable: false,
        details: { account: address.toBase58() },
        cause,
      });
    }
  }

  readUser(): Promise<DriftUser> {
    return this.#read(this.#user, 'User account', decodeUser);
  }
  readPerpMarket(marketIndex: number): Promise<DriftPerpMarket> {
    return this.#read(
      driftPda.perpMarket(this.#o.programId, marketIndex),
      `PerpMarket ${marketIndex}`,
      decodePerpMarket,
    );
  }

  /**
   * The perp fee tier this account pays as a taker, from the program's State account
   * (`perp_fee_structure.fee_tiers[0]`): the tier `determine_perp_fee_tier` gives an account with under
   * $2M of 30-day volume and no governance stake, and the highest fee of the structure, so a busier or
   * staking account pays at most this. Kept for `feeTierMaxAgeMs` (the admin changes it rarely) and read
   * again after; concurrent callers share one read. A State account that is missing, unreadable or not
   * of the layout decoded (fractions outside what the program accepts) fails the call, naming the
   * account and what was wrong: there is no fallback rate, since a guess would misprice every hedge and
   * a State that does not decode means the program id or the layout is not what this adapter assumes.
   * A failed refresh fails too, rather than serving the previous tier past its age.
   */
  async perpFeeTier(): Promise<DriftFeeTier> {
    const cached = this.#feeTier;
    if (cached && this.#o.clock.nowMs() - cached.readAtMs <= (this.#o.feeTierMaxAgeMs ?? 300_000))
      return cached.tier;
    if (!this.#feeTierRead) {
      const address = driftPda.state(this.#o.programId);
      const readAtMs = this.#o.clock.nowMs();
      this.#feeTierRead = this.#read(address, 'State account (perp fee tiers)', decodeState)
        .then((state) => {
          const tier = state.perpFeeTiers[0];
          // decodeState returns all 10 tiers; guards the index for the type checker
          if (!tier) throw new Error('State has no perp fee tier 0');
          this.#feeTier = { tier, readAtMs };
          return tier;
        })
        .finally(() => {
          this.#feeTierRead = undefined;
        });
    }
    return this.#feeTierRead;
  }

  /**
   * The taker fee the program charges on a fill of `fillQuote` (QUOTE_PRECISION, 1e-6 USDC) in perp
   * market `marketIndex`, in the same units: perp fee tier 0 of the State account, then the market's
   * `fee_adjustment` ({@link driftTakerFeeQuote}). For an order, `quoteAssetAmountFilled` of its slot;
   * the program charges each fulfillment separately, so several parts can cost a unit or so more.
   */
  async takerFeeQuote(marketIndex: number, fillQuote: bigint): Promise<bigint> {
    const [tier, pm] = await Promise.all([this.perpFeeTier(), this.readPerpMarket(marketIndex)]);
    return driftTakerFeeQuote(fillQuote, tier, this.#feeAdjustment(pm));
  }

  /**
   * The market's `fee_adjustment`, checked to be in the −100..=100 the program keeps it in: outside,
   * the bytes are not the layout decoded, and no fee is computed from them.
   */
  #feeAdjustment(pm: DriftPerpMarket): number {
    if (Math.abs(pm.feeAdjustment) > FEE_ADJUSTMENT_MAX)
      throw new VenueError('VENUE_NETWORK', {
        venue: this.id,
        message: `PerpMarket ${pm.marketIndex} fee_adjustment ${pm.feeAdjustment} is outside -${FEE_ADJUSTMENT_MAX}..=${FEE_ADJUSTMENT_MAX}: the account layout does not match`,
        outcome: 'not-sent',
        retryable: false,
        details: { marketIndex: pm.marketIndex, feeAdjustment: pm.feeAdjustment },
      });
    return pm.feeAdjustment;
  }

  #readSpotMarket(marketIndex: number): Promise<DriftSpotMarket> {
    return this.#read(
      driftPda.spotMarket(this.#o.programId, marketIndex),
      `SpotMarket ${marketIndex}`,
      decodeSpotMarket,
    );
  }

  #market(instrument: string): DriftMarketConfig {
    const m = this.#o.markets.find((x) => x.instrument === instrument);
    if (!m) throw new InvalidOrderError({ venue: this.id, message: `unknown instrument ${instrument}` });
    return m;
  }
  #marketByIndex(index: number): DriftMarketConfig | undefined {
    return this.#o.markets.find((x) => x.marketIndex === index);
  }

  /**
   * The PerpMarket a configured instrument maps to, checked to be that instrument's: Drift names a
   * perp `<BASE>-PERP`, and a market in other units carries them in its name (`1MBONK-PERP` trades
   * millions of BONK per unit of base). A wrong index in `params.markets`, or `BONK-USD:PERP` mapped
   * to 1MBONK-PERP, would otherwise price, size and hedge another asset (or 1e6× the size) silently.
   */
  async #configuredMarket(m: DriftMarketConfig): Promise<DriftPerpMarket> {
    const pm = await this.readPerpMarket(m.marketIndex);
    const expected = `${parseInstrumentId(m.instrument).base}-PERP`;
    if (pm.name.toUpperCase() !== expected)
      throw new VenueError('VENUE_MISCONFIGURED', {
        venue: this.id,
        message: `params.markets maps ${m.instrument} to perp market ${m.marketIndex}, which is ${JSON.stringify(pm.name)}, not ${expected}: a wrong market index, or a market in other units`,
        outcome: 'not-sent',
        retryable: false,
        details: { instrument: m.instrument, marketIndex: m.marketIndex, marketName: pm.name },
      });
    return pm;
  }

  async loadMarkets(): Promise<MarketInfo[]> {
    const out: MarketInfo[] = [];
    for (const m of this.#o.markets) {
      const pm = await this.#configuredMarket(m);
      out.push({
        instrument: instrumentMeta(m.instrument),
        venueSymbol: pm.name || String(m.marketIndex),
        minSizeBase: fromFixed(pm.minOrderSize, FIXED_DP.base),
        sizeStepBase: fromFixed(pm.orderStepSize, FIXED_DP.base),
        priceTickUsd: fromFixed(pm.orderTickSize, FIXED_DP.price),
        initialMarginFraction: this.#initialMarginFraction(pm),
        active: pm.status === 'active',
      });
    }
    return out;
  }

  /**
   * The market's `margin_ratio_initial` as a fraction of notional (MARGIN_PRECISION: 2000 → 0.2): the
   * initial margin `place_perp_order` requires of a risk-increasing order (protocol-v2
   * `PerpMarket::get_margin_ratio`, `MarginRequirementType::Initial`). It is the least the program
   * asks: a large position pays more through the market's `imf_factor` size premium, and an account
   * may have set a higher custom margin ratio; high-leverage mode, which can ask less, is not used here.
   * The program keeps the ratio in 125..=10000 (`validate_margin`), so a value outside (0, 10000] means
   * the account does not have the layout this adapter decodes: refused, never reported as a margin.
   */
  #initialMarginFraction(pm: DriftPerpMarket): number {
    const ratio = pm.marginRatioInitial;
    if (!(ratio > 0 && ratio <= MARGIN_PRECISION))
      throw new VenueError('VENUE_NETWORK', {
        venue: this.id,
        message: `PerpMarket ${pm.marketIndex} margin_ratio_initial ${ratio} is outside 1..=${MARGIN_PRECISION}: the account layout does not match`,
        outcome: 'not-sent',
        retryable: false,
        details: { marketIndex: pm.marketIndex, marginRatioInitial: ratio },
      });
    return new Dec(ratio).div(MARGIN_PRECISION).toNumber();
  }

  /**
   * Open perp positions, and closed ones whose P&L is not settled yet (size 0). Each carries
   * `unsettledPnlUsd`, the P&L still in the position rather than in the USDC deposit `fetchBalances`
   * reads: Drift's `settle_pnl` moves P&L out of `quote_asset_amount` into the deposit without touching
   * the entry, so (mark − entry) × size would count a settled part twice. Valued at the perp market's
   * last oracle price, the price `fetchMarks` reports.
   *
   * An isolated position (protocol-v2 since 2026-01) holds its own collateral, a USDC deposit that is
   * not among the user's spot positions and so not in `fetchBalances`: it is reported as `marginUsd`
   * (scaled balance × the quote spot market's cumulative deposit interest, as `get_token_amount`
   * values it), also while the position is closed and its collateral not yet transferred back.
   */
  async fetchPositions(): Promise<Position[]> {
    const user = await this.readUser();
    const asOfMs = this.#o.clock.nowMs();
    const markets = new Map<number, DriftPerpMarket>();
    const out: Position[] = [];
    let depositIndex: bigint | undefined;
    for (const p of user.perpPositions) {
      const m = this.#marketByIndex(p.marketIndex);
      if (
        !m ||
        (p.baseAssetAmount === 0n && p.quoteAssetAmount === 0n && p.isolatedPositionScaledBalance === 0n)
      )
        continue;
      let pm = markets.get(p.marketIndex);
      if (!pm) {
        pm = await this.#configuredMarket(m);
        markets.set(p.marketIndex, pm);
      }
      const pnlQuote = unsettledPnlQuote(p, pm);
      const pos: Position = {
        venue: this.id,
        chain: this.chain,
        instrument: m.instrument,
        sizeBase: Number(fromFixed(p.baseAssetAmount, FIXED_DP.base)),
        settlementCurrency: this.capabilities.collateral[0] ?? 'USDC',
        asOfMs,
      };
      if (p.baseAssetAmount !== 0n)
        pos.entryPriceUsd = new Dec(fromFixed(p.quoteEntryAmount, FIXED_DP.quote))
          .abs()
          .div(new Dec(fromFixed(p.baseAssetAmount, FIXED_DP.base)).abs())
          .toNumber();
      if (pnlQuote !== undefined) pos.unsettledPnlUsd = Number(fromFixed(pnlQuote, FIXED_DP.quote));
      if (p.isolatedPositionScaledBalance !== 0n) {
        depositIndex ??= (await this.#quoteSpotMarket()).cumulativeDepositInterest;
        pos.marginUsd = new Dec((p.isolatedPositionScaledBalance * depositIndex).toString())
          .div(SPOT_TOKEN_AMOUNT_DIVISOR.toString())
          .toNumber();
      }
      out.push(pos);
    }
    return out;
  }

  /** The quote (USDC) spot market: cross-margin deposits and isolated positions' collateral live in it. */
  #quoteSpotMarket(): Promise<DriftSpotMarket> {
    return this.#readSpotMarket(this.#o.quoteSpotMarketIndex ?? 0);
  }

  /**
   * The quote (USDC) balance: `amount` is the deposit at its cumulative interest (negative for a
   * borrow); `available` is the part free for a risk-increasing order, Drift's cross-margin free
   * collateral at initial margin ({@link freeCollateral}), at most the deposit (free collateral beyond
   * it would be unsettled P&L, which cannot be moved) and never below 0.
   */
  async fetchBalances(): Promise<Balance[]> {
    const user = await this.readUser();
    const quoteIndex = this.#o.quoteSpotMarketIndex ?? 0;
    const spot = await this.#quoteSpotMarket();
    const pos = user.spotPositions.find((s) => s.marketIndex === quoteIndex);
    // a deposit grows with the deposit index, a borrow with the borrow index
    const index =
      pos?.balanceType === 'borrow' ? spot.cumulativeBorrowInterest : spot.cumulativeDepositInterest;
    const raw = pos ? pos.scaledBalance * index : 0n;
    const amount = new Dec(raw.toString()).div(SPOT_TOKEN_AMOUNT_DIVISOR.toString()).toNumber();
    const margin = await this.#freeCollateral(user, spot);
    // the deposit floored to QUOTE_PRECISION: `available` never exceeds `amount`
    const depositQuote =
      pos && pos.balanceType === 'deposit' ? raw / (SPOT_TOKEN_AMOUNT_DIVISOR / QUOTE_PRECISION) : 0n;
    const availableQuote = margin.freeQuote < depositQuote ? margin.freeQuote : depositQuote;
    return [
      {
        venue: this.id,
        chain: this.chain,
        asset: this.capabilities.collateral[0] ?? 'USDC',
        amount: pos?.balanceType === 'borrow' ? -amount : amount,
        available: Number(fromFixed(availableQuote, FIXED_DP.quote)),
        asOfMs: this.#o.clock.nowMs(),
      },
    ];
  }

  /**
   * Cross-margin free collateral for a risk-increasing perp order, QUOTE_PRECISION, with its parts:
   * the USDC deposit (net of a USDC borrow) plus the perp positions' unrealized P&L as the program
   * weights it for initial margin, less their initial margin requirement (`src/margin.ts`
   * {@link driftFreeCollateral} says what is counted and what is left out, always on the side that does
   * not overstate it). Reads the User account, spot market 0 and the PerpMarket of every perp position
   * in use, configured instrument or not.
   */
  async freeCollateral(): Promise<DriftFreeCollateral> {
    const quoteIndex = this.#o.quoteSpotMarketIndex ?? 0;
    const [user, spot] = await Promise.all([this.readUser(), this.#readSpotMarket(quoteIndex)]);
    return this.#freeCollateral(user, spot);
  }

  async #freeCollateral(user: DriftUser, configuredQuote: DriftSpotMarket): Promise<DriftFreeCollateral> {
    const quoteSpotMarket =
      configuredQuote.marketIndex === QUOTE_SPOT_MARKET_INDEX
        ? configuredQuote
        : await this.#readSpotMarket(QUOTE_SPOT_MARKET_INDEX);
    const indexes = [...new Set(user.perpPositions.map((p) => p.marketIndex))];
    const perpMarkets = new Map<number, DriftPerpMarket>();
    for (const m of await Promise.all(indexes.map((i) => this.readPerpMarket(i))))
      perpMarkets.set(m.marketIndex, m);
    try {
      return driftFreeCollateral({ user, perpMarkets, quoteSpotMarket });
    } catch (cause) {
      // accounts outside the layout's bounds (spot decimals past 19, a PerpMarket at another
      // market's address): no free collateral to report
      throw new VenueError('VENUE_NETWORK', {
        venue: this.id,
        message: `free collateral could not be computed: ${cause instanceof Error ? cause.message : String(cause)}`,
        outcome: 'not-sent',
        retryable: false,
        cause,
      });
    }
  }

  async fetchMarks(instruments?: readonly string[]): Promise<Mark[]> {
    const list = instruments ? instruments.map((i) => this.#market(i)) : this.#o.markets;
    const out: Mark[] = [];
    for (const m of list) {
      const pm = await this.#configuredMarket(m);
      // A price that is not positive is no mark (the schema's index price must be positive): 0 or a
      // negative i64 passed on would read as a real price to every check that compares against it.
      if (pm.lastOraclePrice <= 0n)
        throw new StaleOracleError({
          venue: this.id,
          message: `PerpMarket ${pm.marketIndex} has no positive oracle price (${pm.lastOraclePrice}): no mark for ${m.instrument}`,
          outcome: 'not-sent',
          details: { marketIndex: pm.marketIndex },
        });
      const oracle = Number(fromFixed(pm.lastOraclePrice, FIXED_DP.price));
      out.push({
        venue: this.id,
        instrument: m.instrument,
        markPriceUsd: oracle,
        indexPriceUsd: oracle,
        asOfMs: Number(pm.lastOraclePriceTwapTs) * 1000,
      });
    }
    return out;
  }

  /** Drift's last funding rate is quote per base per funding period, FUNDING_RATE_PRECISION. */
  async fetchFundingRate(instrument: string): Promise<FundingRate> {
    const m = this.#market(instrument);
    const pm = await this.#configuredMarket(m);
    return {
      venue: this.id,
      instrument,
      ratePerHour: this.#fundingRatePerHour(pm),
      asOfMs: Number(pm.lastFundingRateTs) * 1000,
    };
  }

  /** {@link fundingRatePerHour}, or a StaleOracleError when the market has no price to express it by. */
  #fundingRatePerHour(pm: DriftPerpMarket): number {
    const rate = fundingRatePerHour(pm);
    if (rate === undefined)
      throw new StaleOracleError({
        venue: this.id,
        message: `PerpMarket ${pm.marketIndex} has no positive oracle price TWAP (${pm.lastOraclePriceTwap}; last price ${pm.lastOraclePrice}): its funding rate per unit of price is unknown`,
        outcome: 'not-sent',
        details: { marketIndex: pm.marketIndex },
      });
    return rate;
  }

  async quoteHedge(input: QuoteRequest): Promise<HedgeQuote> {
    const parsed = QuoteRequest.safeParse(input);
    if (!parsed.success)
      throw new InvalidOrderError({ venue: this.id, message: `bad quote request: ${parsed.error.message}` });
    const req = parsed.data;
    const m = this.#market(req.instrument);
    const [pm, user, feeTier] = await Promise.all([
      this.#configuredMarket(m),
      this.readUser(),
      this.perpFeeTier(),
    ]);
    const requested = new Dec(req.sizeBase);
    if (requested.lte(0)) throw new InvalidOrderError({ venue: this.id, message: 'size must be positive' });
    // place_perp_order refuses a risk-increasing order past amm.max_open_interest (0: no cap): longs
    // |base_asset_amount_long + order| ≤ max, shorts |base_asset_amount_short − order| ≤ max. Risk
    // increasing is protocol-v2's `is_new_order_risk_increasing`: never for reduce-only; a long when the
    // account is not short, or when its open bids plus the order exceed the short (a short likewise,
    // open asks against the long), so the orders already working count as well as the position.
    const pos = user.perpPositions.find((p) => p.marketIndex === m.marketIndex);
    const held = pos?.baseAssetAmount ?? 0n;
    const orderBase = scaleDecimal(requested.toFixed(), FIXED_DP.base, 'floor');
    // the largest order that only reduces the opposite position, net of the orders working on its side
    const reducible =
      req.side === 'buy'
        ? held < 0n
          ? -held - (pos?.openBids ?? 0n)
          : 0n
        : held > 0n
          ? held + (pos?.openAsks ?? 0n) // open asks are ≤ 0
          : 0n;
    let sizeRaw = orderBase;
    let capReason: string | undefined;
    if (req.reduceOnly) {
      // a reduce-only order fills no more than the opposite position
      const opposite = req.side === 'buy' ? (held < 0n ? -held : 0n) : held > 0n ? held : 0n;
      if (opposite < orderBase) {
        sizeRaw = opposite;
        capReason = `reduce-only: the position to reduce is ${fromFixed(opposite, FIXED_DP.base)}`;
      }
    } else if (pm.maxOpenInterest > 0n && orderBase > reducible) {
      const side = req.side === 'buy' ? pm.baseAssetAmountLong : -pm.baseAssetAmountShort;
      const room = pm.maxOpenInterest > side ? pm.maxOpenInterest - side : 0n;
      if (room < orderBase) {
        sizeRaw = room > reducible ? room : reducible;
        capReason = `max open interest: room for ${fromFixed(room, FIXED_DP.base)} on the ${req.side === 'buy' ? 'long' : 'short'} side${reducible > 0n ? `, ${fromFixed(reducible, FIXED_DP.base)} reduces the position` : ''}`;
      }
    }
    const size = new Dec(fromFixed(sizeRaw, FIXED_DP.base));
    const oracle = Number(fromFixed(pm.lastOraclePrice, FIXED_DP.price));
    // no price to quote at: a venue error (not sent), not the quote schema's own refusal of a 0 price
    if (!(oracle > 0))
      throw new StaleOracleError({
        venue: this.id,
        message: `PerpMarket ${pm.marketIndex} has no positive oracle price (${pm.lastOraclePrice}): nothing to quote ${req.instrument} at`,
        outcome: 'not-sent',
        details: { marketIndex: pm.marketIndex },
      });
    const avg = size.gt(0) ? ammAveragePrice(pm, req.side, size) : oracle;
    const notional = size.toNumber() * oracle;
    const impactUsd = (req.side === 'buy' ? avg - oracle : oracle - avg) * size.toNumber();
    // the taker fee as the program charges it on the fill's quote amount (size × expected price, to
    // the 1e-6 USDC above): State's perp fee tier 0 and the market's fee_adjustment, in integers
    const fillQuote = scaleDecimal(new Dec(avg).mul(size).toFixed(), FIXED_DP.quote, 'ceil');
    const feeUsd = Number(
      fromFixed(driftTakerFeeQuote(fillQuote, feeTier, this.#feeAdjustment(pm)), FIXED_DP.quote),
    );
    const gasUsd = (Number(this.orderFeeLamports()) / 1e9) * this.#o.solPriceUsd();
    const fundingCarryUsd =
      this.#fundingRatePerHour(pm) * req.holdingHours * notional * (req.side === 'buy' ? 1 : -1);
    return HedgeQuote.parse({
      venue: this.id,
      instrument: req.instrument,
      side: req.side,
      requestedSizeBase: req.sizeBase,
      executableSizeBase: size.toFixed(),
      referencePriceUsd: oracle,
      expectedPriceUsd: avg,
      feeUsd,
      impactUsd,
      gasUsd,
      fundingCarryUsd,
      totalCostUsd: feeUsd + impactUsd + gasUsd + fundingCarryUsd,
      expectedLatencyMs: this.#o.expectedLatencyMs ?? 2000,
      asOfMs: this.#o.clock.nowMs(),
      ...(capReason ? { capReason } : {}),
    });
  }

  /**
   * The remaining accounts of an order or cancel on `marketIndex`, gathered as the Drift SDK's
   * `getRemainingAccounts` does: that perp market, the market of every perp position in use (the
   * margin check `place_perp_order` always runs reads each of them), each perp market's quote spot
   * market, the market of every spot position in use (plus the quote market when it has open orders),
   * and the oracle each of these markets names. `writable` marks the order's market for
   * `place_and_take_perp_order`, which fills against it.
   */
  async #remainingAccounts(user: DriftUser, marketIndex: number, writable: boolean): Promise<AccountMeta[]> {
    const perp: PerpMarketRef[] = [];
    const spotIndexes: number[] = [];
    for (const index of new Set([marketIndex, ...user.perpPositions.map((p) => p.marketIndex)])) {
      const pm = await this.readPerpMarket(index);
      perp.push({ marketIndex: index, oracle: pm.oracle, writable: writable && index === marketIndex });
      spotIndexes.push(pm.quoteSpotMarketIndex);
    }
    for (const s of user.spotPositions) {
      spotIndexes.push(s.marketIndex);
      if (s.openBids !== 0n || s.openAsks !== 0n) spotIndexes.push(QUOTE_SPOT_MARKET_INDEX);
    }
    const spot: SpotMarketRef[] = [];
    for (const index of new Set(spotIndexes))
      spot.push({ marketIndex: index, oracle: (await this.#readSpotMarket(index)).oracle });
    return driftRemainingAccounts(this.#o.programId, { perp, spot });
  }

  /**
   * Builds and signs the order transaction (v0, compute budget first): `place_perp_order` for market
   * and limit orders, `place_and_take_perp_order` for IOC, `cancel_order_by_user_id` for a cancel.
   * `user` is the User account the remaining accounts are gathered from (read when not given).
   * Exposed for inspection.
   */
  async buildOrderTransaction(
    ixs: OrderParams | { cancelUserOrderId: number; marketIndex: number },
    user?: DriftUser,
  ): Promise<{ tx: VersionedTransaction; lastValidBlockHeight: number }> {
    const cancel = 'cancelUserOrderId' in ixs;
    const ioc = !cancel && ixs.immediateOrCancel;
    const accounts: DriftOrderAccounts = {
      programId: this.#o.programId,
      user: this.#user,
      authority: this.#o.signer.publicKey,
      remainingAccounts: await this.#remainingAccounts(user ?? (await this.readUser()), ixs.marketIndex, ioc),
    };
    const ix = cancel
      ? cancelOrderByUserIdInstruction(accounts, ixs.cancelUserOrderId)
      : ioc
        ? placeAndTakePerpOrderInstruction(accounts, ixs)
        : placePerpOrderInstruction(accounts, ixs);
    let bh: { blockhash: string; lastValidBlockHeight: number };
    try {
      bh = await this.#o.rpc.getLatestBlockhash();
    } catch (cause) {
      throw rpcFailure({ venue: this.id, message: 'getLatestBlockhash failed', outcome: 'not-sent', cause });
    }
    const message = new TransactionMessage({
      payerKey: this.#o.signer.publicKey,
      recentBlockhash: bh.blockhash,
      instructions: [
        ComputeBudgetProgram.setComputeUnitLimit({ units: this.#o.computeUnitLimit ?? 300_000 }),
        ComputeBudgetProgram.setComputeUnitPrice({
          microLamports: this.#o.computeUnitPriceMicroLamports ?? 10_000n,
        }),
        ix,
      ],
    }).compileToV0Message();
    const tx = await this.#o.signer.signTransaction(new VersionedTransaction(message));
    return { tx, lastValidBlockHeight: bh.lastValidBlockHeight };
  }

  async placeOrder(input: OrderRequest): Promise<Order> {
    const parsed = OrderRequest.safeParse(input);
    if (!parsed.success)
      throw new InvalidOrderError({ venue: this.id, message: `bad order: ${parsed.error.message}` });
    const req = parsed.data;
    const existing = this.#o.orderIds.get(req.clientOrderId);
    // Sent before and its record pruned since: that order, as it ended; sending it again could fill
    // the hedge twice.
    if (!existing) {
      const pruned = this.#prunedOrder(req.clientOrderId);
      if (pruned) return pruned;
    }
    if (existing) {
      const found = await (existing.signature === undefined
        ? this.#resolve(existing)
        : this.#resolveSent(existing));
      if (found) return found;
    }
    const m = this.#market(req.instrument);
    const pm = await this.#configuredMarket(m);
    if (pm.status !== 'active' && pm.status !== 'reduceOnly')
      throw new VenueHaltedError({
        venue: this.id,
        clientOrderId: req.clientOrderId,
        message: `market ${pm.name} is ${pm.status}`,
      });
    // A size or price the program or the u64 encoder would refuse is refused here, before a u8 is
    // assigned and before anything is sent (a transaction the program refuses still pays its fee).
    const invalid = (message: string) =>
      new InvalidOrderError({ venue: this.id, clientOrderId: req.clientOrderId, message });
    const base = toFixed(req.sizeBase, FIXED_DP.base, 'size', this.id, req.clientOrderId);
    if (base <= 0n || base > U64_MAX) throw invalid(`size ${req.sizeBase} must be positive and fit a u64`);
    if (base < pm.minOrderSize || (pm.orderStepSize > 0n && base % pm.orderStepSize !== 0n))
      throw invalid(
        `size ${req.sizeBase} must be ≥ ${fromFixed(pm.minOrderSize, 9)} and a multiple of ${fromFixed(pm.orderStepSize, 9)}`,
      );
    if ((req.orderType === 'limit' || req.orderType === 'ioc') && req.limitPriceUsd === undefined)
      throw invalid(`${req.orderType} order needs limitPriceUsd`);
    let price = 0n; // a market order without a bound: the program's auction decides
    if (req.limitPriceUsd !== undefined) {
      if (new Dec(req.limitPriceUsd).lte(0))
        throw invalid(`limitPriceUsd ${req.limitPriceUsd} must be positive`);
      price = driftLimitPrice(req.limitPriceUsd, pm.orderTickSize, req.side);
      // A buy rounds down to the tick: a bound below one tick becomes 0, which the program refuses.
      if (price <= 0n || price > U64_MAX)
        throw invalid(
          `limitPriceUsd ${req.limitPriceUsd} is ${fromFixed(price, FIXED_DP.price)} on the ${fromFixed(pm.orderTickSize, FIXED_DP.price)} tick (a buy rounds down, a sell up): it must be positive and fit a u64`,
        );
    }
    const baseBeforeAtMs = this.#o.clock.nowMs();
    const user = await this.readUser();
    // The new order takes the first slot not open: an ended order of ours still there is recorded first,
    // as in this order's position before. Saved with this order's record, before the send (a crash
    // before then leaves their slots as they are).
    await this.#settleEnded(user, { endInPositionOf: req.clientOrderId, save: false });
    const busy = new Set(user.orders.filter((o) => o.status === 'open').map((o) => o.userOrderId));
    const before = user.perpPositions.find((p) => p.marketIndex === m.marketIndex)?.baseAssetAmount ?? 0n;
    const rec = await this.#assignUserOrderId(
      {
        clientOrderId: req.clientOrderId,
        marketIndex: m.marketIndex,
        instrument: req.instrument,
        side: req.side,
        orderType: req.orderType,
        sizeBase: req.sizeBase,
        ...(req.limitPriceUsd === undefined ? {} : { limitPriceUsd: req.limitPriceUsd }),
        reduceOnly: req.reduceOnly,
        baseBeforeRaw: before.toString(),
        baseBeforeAtMs,
      },
      busy,
    );
    // Not saved yet: nothing is sent on it until the signature is (one save, below). A crash before
    // then loses a record that reached nobody.
    const params: OrderParams = {
      orderType: req.orderType === 'market' ? 'market' : 'limit',
      marketType: 'perp',
      direction: req.side === 'buy' ? 'long' : 'short',
      userOrderId: rec.userOrderId,
      baseAssetAmount: base,
      price,
      marketIndex: m.marketIndex,
      reduceOnly: req.reduceOnly,
      postOnly: 'none',
      immediateOrCancel: req.orderType === 'ioc',
      ...(req.orderType === 'limit'
        ? { maxTs: BigInt(Math.floor(this.#o.clock.nowMs() / 1000) + (this.#o.orderTtlSeconds ?? 60)) }
        : {}),
    };
    const { tx, lastValidBlockHeight } = await this.buildOrderTransaction(params, user);
    // The record, its signature and expiry height are durable before the bytes leave (this save writes
    // them with the ends recorded above): a crash after sending still leaves enough to find out what
    // happened.
    const signature = signatureOf(tx);
    await this.#o.orderIds.update(req.clientOrderId, { signature, lastValidBlockHeight });
    try {
      await this.#confirm(tx, lastValidBlockHeight, req.clientOrderId);
    } catch (err) {
      if (err instanceof VenueError && err.outcome === 'rejected') {
        await this.#o.orderIds.release(
          req.clientOrderId,
          this.#order(rec, { status: 'rejected', error: err.shortMessage }),
        );
      }
      throw err;
    }
    const placed = await this.#resolveSent(this.#o.orderIds.get(req.clientOrderId) ?? rec);
    if (!placed)
      throw new VenueError('VENUE_NOT_CONFIRMED', {
        venue: this.id,
        message: 'confirmed order not found',
        outcome: 'unknown',
        retryable: true,
        clientOrderId: req.clientOrderId,
      });
    return placed;
  }

  /** Sends a signed order or cancel transaction and waits for it at this venue's commitment. */
  #confirm(
    tx: Parameters<typeof sendAndConfirm>[0]['tx'],
    lastValidBlockHeight: number,
    clientOrderId: string,
  ) {
    return sendAndConfirm({
      rpc: this.#o.rpc,
      tx,
      lastValidBlockHeight,
      commitment: this.#commitment,
      venue: this.id,
      clientOrderId,
      sleep: this.#sleep,
      nowMs: () => this.#o.clock.nowMs(),
      ...(this.#o.pollMs === undefined ? {} : { pollMs: this.#o.pollMs }),
    });
  }

  /**
   * The order, or null when this venue never sent it. A client id whose record the id map pruned (it
   * ended long ago) is answered from its tombstone: the order as it ended (see {@link UserOrderIdMap}),
   * bounded; past that bound an id reads as never sent again. A bare tombstone (an earlier build's)
   * throws {@link DriftOrderRecordPrunedError} (outcome unknown).
   */
  async getOrderByClientId(clientOrderId: string): Promise<Order | null> {
    const rec = this.#o.orderIds.get(clientOrderId);
    if (rec) return this.#resolve(rec);
    return this.#prunedOrder(clientOrderId) ?? null;
  }

  /**
   * A pruned client id's order, as its tombstone recorded it when it ended; undefined when the id was
   * not pruned. Throws {@link DriftOrderRecordPrunedError} for a tombstone without a terminal state.
   */
  #prunedOrder(clientOrderId: string): Order | undefined {
    const p = this.#o.orderIds.pruned(clientOrderId);
    if (p === undefined) return undefined;
    if (p === null) throw new DriftOrderRecordPrunedError(this.id, clientOrderId);
    return { clientOrderId, intentId: clientOrderId, venue: this.id, ...p };
  }

  async cancelOrder(clientOrderId: string): Promise<Order> {
    const rec = this.#o.orderIds.get(clientOrderId);
    if (!rec) {
      // pruned: it ended long ago, and that is the answer (nothing to cancel)
      const pruned = this.#prunedOrder(clientOrderId);
      if (pruned) return pruned;
      throw new OrderNotFoundError({ venue: this.id, clientOrderId, message: 'unknown client order id' });
    }
    const current = await this.#resolve(rec);
    if (!current)
      throw new OrderNotFoundError({
        venue: this.id,
        clientOrderId,
        message: 'order never reached the venue',
      });
    if (current.status !== 'acknowledged' && current.status !== 'partially-filled') return current;
    const { tx, lastValidBlockHeight } = await this.buildOrderTransaction({
      cancelUserOrderId: rec.userOrderId,
      marketIndex: rec.marketIndex,
    });
    try {
      await this.#confirm(tx, lastValidBlockHeight, clientOrderId);
    } catch (err) {
      // cancel_order_by_user_id fails (OrderNotOpen) when the order was filled or cancelled after the
      // read above: its slot then says how it ended, and that is the answer, not a failed cancel.
      if (err instanceof VenueError && err.outcome === 'rejected') {
        const ended = await this.#resolve(rec);
        if (ended && (ended.status === 'filled' || ended.status === 'cancelled')) return ended;
      }
      throw err;
    }
    const after = await this.#resolve(rec);
    return after ?? current;
  }

  async fetchFills(opts?: { sinceMs?: number; clientOrderId?: string }): Promise<Fill[]> {
    // Drift's fill events (OrderActionRecord) are emitted in fillers' transactions; without an event
    // indexer the adapter exposes none rather than inventing prices.
    const id = opts?.clientOrderId;
    if (id !== undefined && !this.#o.orderIds.get(id) && !this.#o.orderIds.isPruned(id)) return [];
    throw new NotSupportedError({ venue: this.id, message: 'fill history needs a Drift event indexer' });
  }

  async health(): Promise<VenueHealth> {
    const t0 = Date.now();
    try {
      await this.#o.rpc.getBlockHeight();
      const first = this.#o.markets[0];
      const pm = first ? await this.#configuredMarket(first) : undefined;
      const liquidation = await this.#liquidation();
      return {
        ok: true,
        latencyMs: Date.now() - t0,
        halted: pm !== undefined && pm.status !== 'active',
        dataAgeMs: pm ? Math.max(0, this.#o.clock.nowMs() - Number(pm.lastOraclePriceTwapTs) * 1000) : 0,
        ...(liquidation ? { liquidation } : {}),
      };
    } catch (err) {
      return {
        ok: false,
        latencyMs: Date.now() - t0,
        halted: false,
        dataAgeMs: Number.POSITIVE_INFINITY,
        details: { error: String(err) },
      };
    }
  }

  /**
   * Whether Drift is liquidating the account: the User's `status` bits (protocol-v2 `UserStatus`:
   * BeingLiquidated 0b01, Bankrupt 0b10) for cross margin, each isolated position's `position_flag`
   * (BeingLiquidated, Bankrupt) for those. A User account that does not exist yet is not at risk.
   */
  async #liquidation(): Promise<VenueHealth['liquidation']> {
    const data = await this.#o.rpc.getAccountData(this.#user);
    if (!data) return undefined;
    const user = decodeUser(data);
    const flags = user.perpPositions.map((p) => p.positionFlag);
    if ((user.status & USER_STATUS.bankrupt) !== 0 || flags.some((f) => (f & POSITION_FLAG.bankrupt) !== 0))
      return 'bankrupt';
    if (
      (user.status & USER_STATUS.beingLiquidated) !== 0 ||
      flags.some((f) => (f & POSITION_FLAG.beingLiquidated) !== 0)
    )
      return 'being-liquidated';
    return undefined;
  }

  #order(rec: UserOrderIdRecord, patch: Partial<Order> & Pick<Order, 'status'>): Order {
    return {
      clientOrderId: rec.clientOrderId,
      intentId: rec.clientOrderId,
      venue: this.id,
      venueOrderId: `u${rec.userOrderId}`,
      instrument: rec.instrument,
      side: rec.side,
      orderType: rec.orderType,
      sizeBase: rec.sizeBase,
      ...(rec.limitPriceUsd === undefined ? {} : { limitPriceUsd: rec.limitPriceUsd }),
      reduceOnly: rec.reduceOnly,
      filledSizeBase: '0',
      createdAtMs: rec.createdAtMs,
      updatedAtMs: this.#o.clock.nowMs(),
      ...patch,
    };
  }

  /**
   * The order as its Drift slot says: open (acknowledged / partially filled), or ended (`filled`, or
   * `canceled` with what filled before, reported as cancelled). Average price = quote ÷ base filled.
   */
  #fromDrift(rec: UserOrderIdRecord, o: DriftOrder): Order {
    const filled = o.baseAssetAmountFilled;
    const avg =
      filled > 0n
        ? {
            avgFillPriceUsd: new Dec(fromFixed(o.quoteAssetAmountFilled, 6))
              .div(fromFixed(filled, 9))
              .toFixed(),
          }
        : {};
    return this.#order(rec, {
      venueOrderId: String(o.orderId),
      status:
        o.status === 'open'
          ? filled === 0n
            ? 'acknowledged'
            : filled >= o.baseAssetAmount
              ? 'filled'
              : 'partially-filled'
          : o.status === 'filled' || filled >= o.baseAssetAmount
            ? 'filled'
            : 'cancelled',
      filledSizeBase: fromFixed(filled, FIXED_DP.base),
      ...avg,
    });
  }

  /**
   * A u8 user order id for a new order. All 255 in use (open orders, or live records) is the venue's
   * limit on open orders: a `RateLimitError` (not sent, retryable: ids free up as orders end), not the
   * map's own error, which the worker took for an unknown outcome.
   */
  async #assignUserOrderId(
    rec: Parameters<UserOrderIdMap['assign']>[0],
    busy: ReadonlySet<number>,
  ): Promise<UserOrderIdRecord> {
    try {
      return await this.#o.orderIds.assign(rec, busy, { save: false });
    } catch (err) {
      if (!(err instanceof UserOrderIdsExhaustedError)) throw err;
      throw new RateLimitError({
        venue: this.id,
        clientOrderId: rec.clientOrderId,
        message: `${err.shortMessage}: wait for open orders to end, or cancel some`,
        details: err.details,
        cause: err,
      });
    }
  }

  /**
   * {@link #resolve} for an order whose transaction may have gone out: a read that fails then says
   * nothing about the order, so its error has outcome unknown. A `not-sent` would have the caller send
   * the order again, or, with a gate closed meanwhile, record it as never at the venue while it works.
   */
  async #resolveSent(rec: UserOrderIdRecord): Promise<Order | null> {
    try {
      return await this.#resolve(rec);
    } catch (err) {
      if (!(err instanceof VenueError && err.outcome === 'not-sent')) throw err;
      // A read that timed out stays a VenueTimeoutError (its message naming the limit).
      const timedOut = findRpcTimeout(err) !== undefined;
      throw rpcFailure({
        venue: this.id,
        clientOrderId: rec.clientOrderId,
        message: `order transaction ${rec.signature ?? ''} went out, but reading its outcome failed${timedOut ? '' : ' (see cause)'}`,
        outcome: 'unknown',
        details: { signature: rec.signature },
        cause: err,
      });
    }
  }

  /**
   * Records the end of every live order of ours whose ended slot `user` still shows (matched by user
   * order id, market, direction and landing slot), before a new order or a later read loses it: the
   * program puts a new order in the first slot that is not open. Resolving them one by one as they
   * end keeps their exact fill and average price; inferring one from the position change afterwards
   * cannot tell its fill from another order's on the same market. `endInPositionOf`: the order whose
   * position before `user` is (its fill counts for none of these).
   */
  async #settleEnded(user: DriftUser, opts?: { endInPositionOf?: string; save?: boolean }): Promise<void> {
    for (const r of this.#o.orderIds.records()) {
      if (r.state !== 'live' || r.landedSlot === undefined || r.signature === undefined) continue;
      if (r.filledBoundsBase) continue; // ended already, its slot gone
      const ended = user.orders.find(
        (o) =>
          o.userOrderId === r.userOrderId &&
          o.marketIndex === r.marketIndex &&
          o.marketType === 'perp' &&
          o.direction === (r.side === 'buy' ? 'long' : 'short') &&
          o.slot === BigInt(r.landedSlot ?? -1) &&
          (o.status === 'filled' || o.status === 'canceled'),
      );
      if (ended) await this.#o.orderIds.release(r.clientOrderId, this.#fromDrift(r, ended), opts);
    }
  }

  /**
   * The range of base (BASE_PRECISION, 0..size) `rec` can have filled, from its market's position
   * change since it was sent: that change is its fill plus what every other order of ours on the
   * market filled in the same time. Another order's part is exact when its fill is known (its slot
   * open now, or its end recorded) and all of it came after `rec`'s position read (it was sent
   * later); otherwise anywhere from 0 to what it filled (or its size). An order ended before that read
   * is in the position already: known ended before the read began, or seen ended by that read itself
   * (`endInPositionOf`). Equal bounds: the fill is proven; `others` names the orders that make the
   * range wider, `evidence` keeps what the range was worked out from (see
   * {@link UserOrderIdRecord}). Trades outside this adapter (another client of the account, a
   * liquidation) are not seen.
   */
  #fillBounds(rec: UserOrderIdRecord, user: DriftUser): FillBounds {
    const position = user.perpPositions.find((p) => p.marketIndex === rec.marketIndex)?.baseAssetAmount ?? 0n;
    const readAtMs = rec.baseBeforeAtMs ?? rec.createdAtMs;
    let net = position - BigInt(rec.baseBeforeRaw);
    const terms: FillEvidence['others'] = [];
    for (const x of this.#o.orderIds.records()) {
      if (x.clientOrderId === rec.clientOrderId || x.marketIndex !== rec.marketIndex) continue;
      if (x.signature === undefined) continue; // not sent yet
      // its fill is in baseBefore
      const endedAtMs = x.endedAtMs ?? (x.state === 'released' ? x.updatedAtMs : undefined);
      if (endedAtMs !== undefined && endedAtMs < readAtMs) continue;
      if (x.state === 'released' && x.endInPositionOf === rec.clientOrderId) continue;
      const [fMin, fMax] = this.#filledRange(x, user);
      if (fMax === 0n) continue;
      const after = x.baseBeforeAtMs !== undefined && x.baseBeforeAtMs > readAtMs;
      if (after && fMin === fMax) {
        net -= sideSign(x.side) * fMin;
        continue;
      }
      const ended = x.state === 'released' || x.filledBoundsBase !== undefined;
      terms.push({
        clientOrderId: x.clientOrderId,
        side: x.side,
        sizeBase: x.sizeBase,
        lowerKnown: after && ended,
      });
    }
    return this.#boundsFrom(rec, { netRaw: net.toString(), others: terms }, user);
  }

  /** `rec`'s fill range from `evidence`, the other orders' parts as far as known now. */
  #boundsFrom(rec: UserOrderIdRecord, evidence: FillEvidence, user: DriftUser): FillBounds {
    // Σ sign × part of the other orders, between lo and hi
    let lo = 0n;
    let hi = 0n;
    const others: string[] = [];
    for (const t of evidence.others) {
      const x = this.#o.orderIds.get(t.clientOrderId);
      const pruned = x ? undefined : this.#o.orderIds.pruned(t.clientOrderId);
      // No record and no tombstone: it never landed (forgotten), as absent from the map means. A bare
      // tombstone (an earlier build's) says nothing: anything up to its size.
      const [fMin, fMax]: [bigint, bigint] = x
        ? this.#filledRange(x, user)
        : pruned
          ? [baseRaw(pruned.filledSizeBase), baseRaw(pruned.filledSizeBase)]
          : pruned === null
            ? [0n, baseRaw(t.sizeBase)]
            : [0n, 0n];
      if (fMax === 0n) continue;
      const cMin = t.lowerKnown ? fMin : 0n;
      if (cMin !== fMax) others.push(t.clientOrderId);
      if (t.side === 'buy') {
        lo += cMin;
        hi += fMax;
      } else {
        lo -= fMax;
        hi -= cMin;
      }
    }
    const net = BigInt(evidence.netRaw);
    const size = baseRaw(rec.sizeBase);
    const clamp = (v: bigint) => (v < 0n ? 0n : v > size ? size : v);
    // rec's signed fill is net minus the others' part: [net − hi, net − lo]
    const [min, max] =
      rec.side === 'buy' ? [clamp(net - hi), clamp(net - lo)] : [clamp(lo - net), clamp(hi - net)];
    return { min, max, others, evidence };
  }

  /**
   * An ended order whose slot is gone, its fill from the position change ({@link #fillBounds}), within
   * `rec.filledBoundsBase` when an earlier read left a range (a range only narrows). Proven (equal
   * bounds): recorded as filled or cancelled. A range: the order is not finalised — it may have filled
   * anywhere in it, and a terminal status with the least would have the hedge placed again — but
   * reported outcome unknown, its record kept live with the range, until a later read (the other
   * orders' fills known) closes it.
   */
  async #settleFromPosition(rec: UserOrderIdRecord, user: DriftUser, landedSlot: number): Promise<Order> {
    await this.#settleEnded(user);
    const b = rec.fillEvidence ? this.#boundsFrom(rec, rec.fillEvidence, user) : this.#fillBounds(rec, user);
    let { min, max } = b;
    const stored = rec.filledBoundsBase;
    if (stored) {
      const [sMin, sMax] = [baseRaw(stored.min), baseRaw(stored.max)];
      // a range only narrows (disjoint cannot happen from the same evidence: the stored one stands)
      if (min <= sMax && max >= sMin) {
        if (sMin > min) min = sMin;
        if (sMax < max) max = sMax;
      } else [min, max] = [sMin, sMax];
    }
    if (min === max) {
      const final = this.#order(rec, {
        status: min >= baseRaw(rec.sizeBase) ? 'filled' : 'cancelled',
        filledSizeBase: fromFixed(min, FIXED_DP.base),
      });
      await this.#o.orderIds.release(rec.clientOrderId, final);
      return final;
    }
    const range = { min: fromFixed(min, FIXED_DP.base), max: fromFixed(max, FIXED_DP.base) };
    if (!stored)
      await this.#o.orderIds.update(rec.clientOrderId, {
        filledBoundsBase: range,
        fillEvidence: b.evidence,
        endedAtMs: this.#o.clock.nowMs(),
        landedSlot,
      });
    else if (stored.min !== range.min || stored.max !== range.max)
      await this.#o.orderIds.update(rec.clientOrderId, { filledBoundsBase: range });
    return this.#order(rec, {
      status: 'outcome-unknown',
      filledSizeBase: range.min,
      error: `fill unresolved: the order has ended, and the position change since it was sent allows ${range.min} to ${range.max} base for it, other orders on market ${rec.marketIndex} being in flight (${b.others.join(', ')}); outcome unknown until their fills are known (a fill indexer would tell)`,
    });
  }

  /** {@link #settleFromPosition} again for an ended order whose fill an earlier read left in a range. */
  async #resolveRange(rec: UserOrderIdRecord): Promise<Order> {
    const landedSlot = rec.landedSlot ?? 0;
    let user: DriftUser;
    try {
      user = await this.#read(this.#user, 'User account', decodeUser, { minContextSlot: landedSlot });
    } catch (err) {
      if (!(err instanceof MinContextSlotNotReachedError)) throw err;
      const range = rec.filledBoundsBase ?? { min: '0', max: rec.sizeBase };
      return this.#order(rec, {
        status: 'outcome-unknown',
        filledSizeBase: range.min,
        error: `fill unresolved: ${range.min} to ${range.max} base (the node is behind the order's slot)`,
      });
    }
    return this.#settleFromPosition(rec, user, landedSlot);
  }

  /** What another order of ours has filled, as far as known: [least, most], BASE_PRECISION. */
  #filledRange(x: UserOrderIdRecord, user: DriftUser): [bigint, bigint] {
    // ended with its fill in a range (live: unresolved; released: the previous build's estimate)
    if (x.filledBoundsBase) return [baseRaw(x.filledBoundsBase.min), baseRaw(x.filledBoundsBase.max)];
    if (x.state === 'released') {
      const f = baseRaw(x.final?.filledSizeBase ?? x.sizeBase);
      return x.final ? [f, f] : [0n, f];
    }
    const open = user.orders.find(
      (o) => o.userOrderId === x.userOrderId && o.marketIndex === x.marketIndex && o.status === 'open',
    );
    if (open) return [open.baseAssetAmountFilled, open.baseAssetAmountFilled];
    return [0n, baseRaw(x.sizeBase)];
  }

  /**
   * What is known about a mapped order now; null when its transaction can never land. The signature
   * status is read first and the User no older than the landing slot: a snapshot from before the
   * order landed (read too early, or served by a lagging replica) would lack it, and would finalise a
   * live order as cancelled with nothing filled.
   */
  async #resolve(rec: UserOrderIdRecord): Promise<Order | null> {
    if (rec.final) return rec.final;
    if (rec.filledBoundsBase) return this.#resolveRange(rec);
    const sig = rec.signature;
    const status =
      sig === undefined
        ? null
        : await this.#rpcRead('signature status', () => this.#o.rpc.getSignatureStatus(sig));
    if (status?.err) {
      const final = this.#order(rec, {
        status: 'rejected',
        error: `transaction failed: ${describeTransactionError(status.err)}`,
      });
      await this.#o.orderIds.release(rec.clientOrderId, final);
      return final;
    }
    let user: DriftUser;
    try {
      user = await this.#read(
        this.#user,
        'User account',
        decodeUser,
        status ? { minContextSlot: status.slot } : undefined,
      );
    } catch (err) {
      // The node has not caught up with the landing slot: not known yet, ask again later.
      if (err instanceof MinContextSlotNotReachedError) return this.#order(rec, { status: 'sent' });
      throw err;
    }
    const open = user.orders.find(
      (o) => o.userOrderId === rec.userOrderId && o.marketIndex === rec.marketIndex && o.status === 'open',
    );
    if (open) {
      // Its landing slot, so that its slot can be told from another order's once it ends.
      if (
        status &&
        reached(status.confirmationStatus, this.#commitment) &&
        rec.landedSlot === undefined &&
        this.#o.orderIds.get(rec.clientOrderId)?.state === 'live'
      )
        await this.#o.orderIds.update(rec.clientOrderId, { landedSlot: status.slot });
      return this.#fromDrift(rec, open);
    }
    if (sig === undefined || rec.lastValidBlockHeight === undefined) {
      await this.#o.orderIds.forget(rec.clientOrderId);
      return null;
    }
    if (status && reached(status.confirmationStatus, this.#commitment)) {
      // The ended order's own slot, if no later order has taken it: Order.slot is the slot the placing
      // transaction ran in, which tells it from an earlier order that used the same u8.
      const ended = user.orders.find(
        (o) =>
          o.userOrderId === rec.userOrderId &&
          o.marketIndex === rec.marketIndex &&
          o.marketType === 'perp' &&
          o.direction === (rec.side === 'buy' ? 'long' : 'short') &&
          o.slot === BigInt(status.slot) &&
          (o.status === 'filled' || o.status === 'canceled'),
      );
      if (ended) {
        const final = this.#fromDrift(rec, ended);
        await this.#o.orderIds.release(rec.clientOrderId, final);
        return final;
      }
      // The slot was reused: infer the fill from the position change (no average price), net of what
      // the other orders on the market can have filled meanwhile (their ended slots in this snapshot
      // recorded first).
      return this.#settleFromPosition(rec, user, status.slot);
    }
    if (
      status === null &&
      (await this.#rpcRead('block height', () => this.#o.rpc.getBlockHeight())) > rec.lastValidBlockHeight
    ) {
      // Expired now, but it may have landed after the status read above (just before expiry): once
      // expired it can no longer land, so a second "not found" is final.
      if ((await this.#rpcRead('signature status', () => this.#o.rpc.getSignatureStatus(sig))) === null) {
        await this.#o.orderIds.forget(rec.clientOrderId);
        return null;
      }
      return this.#order(rec, { status: 'sent' });
    }
    return this.#order(rec, { status: 'sent' });
  }
}

/**
 * A limit price in PRICE_PRECISION (1e-6 USD) on the market's tick, never worse than asked: a buy's
 * (the most it pays) rounds down, a sell's (the least it takes) up — at both steps, since flooring a
 * sell to 1e-6 first can land on a tick below the asked minimum.
 */
export function driftLimitPrice(limitPriceUsd: string, tickRaw: bigint, side: 'buy' | 'sell'): bigint {
  const raw = scaleDecimal(limitPriceUsd, FIXED_DP.price, side === 'buy' ? 'floor' : 'ceil');
  if (tickRaw <= 0n) return raw;
  const down = (raw / tickRaw) * tickRaw;
  return side === 'buy' || down === raw ? down : down + tickRaw;
}

/**
 * A perp position's P&L not yet settled into the quote deposit, QUOTE_PRECISION, the way Drift's margin
 * system counts it: base × oracle + `quote_asset_amount` (entry cost, fees, settled funding, minus
 * what `settle_pnl` already moved out), plus the funding accrued since the position's last funding
 * settlement. Integer steps as the program does them (division truncates toward zero). A closed
 * position is its `quote_asset_amount` alone. Undefined for an open position when the market's oracle
 * price is not positive (it cannot be valued).
 */
export function unsettledPnlQuote(p: DriftPerpPosition, pm: DriftPerpMarket): bigint | undefined {
  if (p.baseAssetAmount === 0n) return p.quoteAssetAmount;
  if (pm.lastOraclePrice <= 0n) return undefined;
  const baseValueQuote = (p.baseAssetAmount * pm.lastOraclePrice) / BASE_PRECISION;
  return baseValueQuote + p.quoteAssetAmount + accruedFundingQuote(p, pm);
}

export { accruedFundingQuote } from './margin.ts';

/**
 * Hourly funding as a fraction of price, positive when longs pay: the last rate (quote per base) over
 * the oracle price TWAP, or over the last oracle price while the TWAP is unset (0). Undefined when that
 * price is not positive: the rate cannot be expressed, and 0 would be a rate the venue never stated.
 */
export function fundingRatePerHour(pm: DriftPerpMarket): number | undefined {
  const priceRaw = pm.lastOraclePriceTwap !== 0n ? pm.lastOraclePriceTwap : pm.lastOraclePrice;
  if (priceRaw <= 0n) return undefined;
  const twap = Number(priceRaw) / Number(PRICE_PRECISION);
  const perPeriod = Number(pm.lastFundingRate) / 1e9 / twap;
  const periodHours = Number(pm.fundingPeriod > 0n ? pm.fundingPeriod : 3600n) / (MS_PER_HOUR / 1000);
  return perPeriod / periodHours;
}

/**
 * Average price for `size` against the constant-product AMM (x·y = k, quote scaled by the peg):
 * a buy removes base from the pool. Reserves and size in 1e9, peg in 1e6 → USD per base.
 */
export function ammAveragePrice(
  pm: DriftPerpMarket,
  side: 'buy' | 'sell',
  size: InstanceType<typeof Dec>,
): number {
  const x = new Dec(pm.baseAssetReserve.toString());
  const y = new Dec(pm.quoteAssetReserve.toString());
  const dx = size.mul(BASE_PRECISION.toString());
  if (x.lte(0) || y.lte(0)) return Number(pm.lastOraclePrice) / Number(PRICE_PRECISION);
  const k = x.mul(y);
  const newX = side === 'buy' ? x.sub(dx) : x.add(dx);
  if (newX.lte(0))
    throw new InvalidOrderError({
      venue: 'drift',
      message: `size ${size.toFixed()} exceeds the AMM's base reserve`,
    });
  const dy = k.div(newX).sub(y).abs();
  const quoteUsd = dy
    .mul(pm.pegMultiplier.toString())
    .div(PEG_PRECISION.toString())
    .div(AMM_RESERVE_PRECISION.toString());
  return quoteUsd.div(size).toNumber();
}
