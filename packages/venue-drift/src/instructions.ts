import { type AccountMeta, PublicKey, TransactionInstruction } from '@solana/web3.js';
import {
  CANCEL_ORDER_BY_USER_ID_DISCRIMINATOR,
  type DriftDirection,
  type DriftMarketType,
  type DriftOrderType,
  type DriftPostOnly,
  MARKET_TYPE,
  ORDER_PARAMS_BIT_IMMEDIATE_OR_CANCEL,
  ORDER_TYPE,
  PLACE_AND_TAKE_PERP_ORDER_DISCRIMINATOR,
  PLACE_PERP_ORDER_DISCRIMINATOR,
  POSITION_DIRECTION,
  POST_ONLY,
  TRIGGER_CONDITION,
} from './layout.ts';

/** Drift's `OrderParams` (programs/drift/src/state/order_params.rs), fixed-point integers. */
export interface OrderParams {
  orderType: DriftOrderType;
  marketType: DriftMarketType;
  direction: DriftDirection;
  /** 0 means "none" on Drift; the adapter uses 1..255. */
  userOrderId: number;
  /** BASE_PRECISION (1e9). */
  baseAssetAmount: bigint;
  /** PRICE_PRECISION (1e6); 0 for a market order without a limit. */
  price: bigint;
  marketIndex: number;
  reduceOnly: boolean;
  postOnly: DriftPostOnly;
  /** Sets bit_flags `ImmediateOrCancel`; only `place_and_take_perp_order` accepts it. */
  immediateOrCancel: boolean;
  /** Unix seconds after which the order expires. */
  maxTs?: bigint;
  triggerPrice?: bigint;
  triggerCondition?: (typeof TRIGGER_CONDITION)[number];
  oraclePriceOffset?: number;
  auctionDuration?: number;
  auctionStartPrice?: bigint;
  auctionEndPrice?: bigint;
}

class BorshWriter {
  readonly #parts: Buffer[] = [];
  u8(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 255) throw new RangeError(`u8 out of range: ${v}`);
    this.#parts.push(Buffer.from([v]));
    return this;
  }
  bool(v: boolean): this {
    return this.u8(v ? 1 : 0);
  }
  u16(v: number): this {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(v);
    this.#parts.push(b);
    return this;
  }
  i32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    this.#parts.push(b);
    return this;
  }
  u64(v: bigint): this {
    if (v < 0n || v > 0xffff_ffff_ffff_ffffn) throw new RangeError(`u64 out of range: ${v}`);
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(v);
    this.#parts.push(b);
    return this;
  }
  i64(v: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigInt64LE(v);
    this.#parts.push(b);
    return this;
  }
  option<T>(v: T | undefined, write: (w: this, v: T) => void): this {
    if (v === undefined) return this.u8(0);
    this.u8(1);
    write(this, v);
    return this;
  }
  bytes(): Buffer {
    return Buffer.concat(this.#parts);
  }
}

/** Borsh encoding of OrderParams, field by field in declaration order. */
export function encodeOrderParams(p: OrderParams): Buffer {
  return new BorshWriter()
    .u8(ORDER_TYPE.indexOf(p.orderType))
    .u8(MARKET_TYPE.indexOf(p.marketType))
    .u8(POSITION_DIRECTION.indexOf(p.direction))
    .u8(p.userOrderId)
    .u64(p.baseAssetAmount)
    .u64(p.price)
    .u16(p.marketIndex)
    .bool(p.reduceOnly)
    .u8(POST_ONLY.indexOf(p.postOnly))
    .u8(p.immediateOrCancel ? ORDER_PARAMS_BIT_IMMEDIATE_OR_CANCEL : 0)
    .option(p.maxTs, (w, v) => w.i64(v))
    .option(p.triggerPrice, (w, v) => w.u64(v))
    .u8(TRIGGER_CONDITION.indexOf(p.triggerCondition ?? 'above'))
    .option(p.oraclePriceOffset, (w, v) => w.i32(v))
    .option(p.auctionDuration, (w, v) => w.u8(v))
    .option(p.auctionStartPrice, (w, v) => w.i64(v))
    .option(p.auctionEndPrice, (w, v) => w.i64(v))
    .bytes();
}

function u16le(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
}

/** Program-derived addresses, with the seeds the Drift program uses. */
export const driftPda = {
  state: (programId: PublicKey): PublicKey =>
    PublicKey.findProgramAddressSync([Buffer.from('drift_state')], programId)[0],
  user: (programId: PublicKey, authority: PublicKey, subAccountId = 0): PublicKey =>
    PublicKey.findProgramAddressSync(
      [Buffer.from('user'), authority.toBuffer(), u16le(subAccountId)],
      programId,
    )[0],
  /** One per authority, shared by its sub-accounts. */
  userStats: (programId: PublicKey, authority: PublicKey): PublicKey =>
    PublicKey.findProgramAddressSync([Buffer.from('user_stats'), authority.toBuffer()], programId)[0],
  perpMarket: (programId: PublicKey, marketIndex: number): PublicKey =>
    PublicKey.findProgramAddressSync([Buffer.from('perp_market'), u16le(marketIndex)], programId)[0],
  spotMarket: (programId: PublicKey, marketIndex: number): PublicKey =>
    PublicKey.findProgramAddressSync([Buffer.from('spot_market'), u16le(marketIndex)], programId)[0],
};

/** A perp market an instruction must carry, with the oracle its PerpMarket account names (`amm.oracle`). */
export interface PerpMarketRef {
  marketIndex: number;
  oracle: PublicKey;
  /** The program writes it (the market of a `place_and_take` fill). @defaultValue false */
  writable?: boolean;
}

/** A spot market an instruction must carry, with its oracle (`PublicKey.default`: none, price 1). */
export interface SpotMarketRef {
  marketIndex: number;
  oracle: PublicKey;
}

/**
 * The remaining accounts protocol-v2's `load_maps` reads, in its order: oracles, then spot markets,
 * then perp markets (each loader stops at the first account that is not its kind, so an account out
 * of place is never loaded). Each account appears once; a market is writable if any reference asks
 * so. A spot market whose oracle is `PublicKey.default` takes no oracle account: the program prices it
 * at 1 (`OracleMap::should_get_quote_asset_price_data`).
 */
export function driftRemainingAccounts(
  programId: PublicKey,
  markets: { perp: readonly PerpMarketRef[]; spot: readonly SpotMarketRef[] },
): AccountMeta[] {
  const oracles = new Map<string, AccountMeta>();
  const addOracle = (oracle: PublicKey) => {
    if (!oracle.equals(PublicKey.default) && !oracles.has(oracle.toBase58()))
      oracles.set(oracle.toBase58(), { pubkey: oracle, isSigner: false, isWritable: false });
  };
  // Oracles: the perp markets' first, then the spot markets' (the order inside a group is free).
  for (const p of markets.perp) addOracle(p.oracle);
  for (const s of markets.spot) addOracle(s.oracle);
  const spot = new Map<number, AccountMeta>();
  for (const s of markets.spot) {
    if (!spot.has(s.marketIndex))
      spot.set(s.marketIndex, {
        pubkey: driftPda.spotMarket(programId, s.marketIndex),
        isSigner: false,
        isWritable: false,
      });
  }
  const perp = new Map<number, AccountMeta>();
  for (const p of markets.perp) {
    const seen = perp.get(p.marketIndex);
    if (seen) seen.isWritable ||= p.writable === true;
    else
      perp.set(p.marketIndex, {
        pubkey: driftPda.perpMarket(programId, p.marketIndex),
        isSigner: false,
        isWritable: p.writable === true,
      });
  }
  return [...oracles.values(), ...spot.values(), ...perp.values()];
}

export interface DriftOrderAccounts {
  programId: PublicKey;
  user: PublicKey;
  authority: PublicKey;
  /**
   * From {@link driftRemainingAccounts}: every market (and its oracle) the program reads. For an order
   * that is the order's perp market and, for the margin check `place_perp_order` always runs, the
   * market of every perp and spot position in use, each perp market's quote spot market, and their
   * oracles. A missing one fails the transaction (`PerpMarketNotFound`, `SpotMarketNotFound`,
   * `OracleNotFound`).
   */
  remainingAccounts: readonly AccountMeta[];
}

/**
 * `place_perp_order(params: OrderParams)`; accounts (IDL `PlaceOrder`): state, user (mut), authority
 * (signer), then the remaining accounts. Refuses IOC params: the program rejects them here
 * (`InvalidOrderIOC`); use {@link placeAndTakePerpOrderInstruction}.
 */
export function placePerpOrderInstruction(
  a: DriftOrderAccounts,
  params: OrderParams,
): TransactionInstruction {
  if (params.immediateOrCancel)
    throw new RangeError(
      'place_perp_order refuses immediate_or_cancel (InvalidOrderIOC): use place_and_take_perp_order',
    );
  return new TransactionInstruction({
    programId: a.programId,
    keys: [
      { pubkey: driftPda.state(a.programId), isSigner: false, isWritable: false },
      { pubkey: a.user, isSigner: false, isWritable: true },
      { pubkey: a.authority, isSigner: true, isWritable: false },
      ...a.remainingAccounts,
    ],
    data: Buffer.concat([PLACE_PERP_ORDER_DISCRIMINATOR, encodeOrderParams(params)]),
  });
}

/**
 * `place_and_take_perp_order(params: OrderParams, success_condition: Option<u32>)`; accounts (IDL
 * `PlaceAndTake`): state, user (mut), user_stats (mut), authority (signer), then the remaining
 * accounts, the order's perp market writable (the program requires it: `MarketWrongMutability`). The
 * order is filled against the AMM in the same instruction; with the IOC bit what is left is cancelled.
 * `success_condition` is left None (no maker accounts, no auction-duration override).
 */
export function placeAndTakePerpOrderInstruction(
  a: DriftOrderAccounts,
  params: OrderParams,
): TransactionInstruction {
  if (params.postOnly !== 'none')
    throw new RangeError('place_and_take_perp_order refuses post_only (InvalidOrderPostOnly)');
  return new TransactionInstruction({
    programId: a.programId,
    keys: [
      { pubkey: driftPda.state(a.programId), isSigner: false, isWritable: false },
      { pubkey: a.user, isSigner: false, isWritable: true },
      { pubkey: driftPda.userStats(a.programId, a.authority), isSigner: false, isWritable: true },
      { pubkey: a.authority, isSigner: true, isWritable: false },
      ...a.remainingAccounts,
    ],
    // success_condition: Option<u32> = None
    data: Buffer.concat([
      PLACE_AND_TAKE_PERP_ORDER_DISCRIMINATOR,
      encodeOrderParams(params),
      Buffer.from([0]),
    ]),
  });
}

/**
 * `cancel_order_by_user_id(user_order_id: u8)`; accounts (IDL `CancelOrder`): state, user (mut),
 * authority (signer), then the remaining accounts (the order's perp market and its oracle at least:
 * the cancel record carries the oracle price). The program cancels the first order slot holding that
 * id: an id it cannot find is a no-op, an id whose slot is filled or cancelled fails (`OrderNotOpen`).
 */
export function cancelOrderByUserIdInstruction(
  a: DriftOrderAccounts,
  userOrderId: number,
): TransactionInstruction {
  return new TransactionInstruction({
    programId: a.programId,
    keys: [
      { pubkey: driftPda.state(a.programId), isSigner: false, isWritable: false },
      { pubkey: a.user, isSigner: false, isWritable: true },
      { pubkey: a.authority, isSigner: true, isWritable: false },
      ...a.remainingAccounts,
    ],
    data: Buffer.concat([CANCEL_ORDER_BY_USER_ID_DISCRIMINATOR, Buffer.from([userOrderId])]),
  });
}
