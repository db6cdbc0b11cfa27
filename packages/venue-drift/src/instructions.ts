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
  perpMarket: (programId: PublicKey, marketIndex: number): PublicKey =>
    PublicKey.findProgramAddressSync([Buffer.from('perp_market'), u16le(marketIndex)], programId)[0],
  spotMarket: (programId: PublicKey, marketIndex: number): PublicKey =>
    PublicKey.findProgramAddressSync([Buffer.from('spot_market'), u16le(marketIndex)], programId)[0],
};

export interface PlacePerpOrderAccounts {
  programId: PublicKey;
  user: PublicKey;
  authority: PublicKey;
  /** The perp market's oracle (read by the program). */
  oracle: PublicKey;
  /** Quote spot market index (USDC = 0). */
  quoteSpotMarketIndex: number;
}

/** The remaining accounts Drift reads for a perp order: oracles, then spot markets, then perp markets. */
function remainingAccounts(a: PlacePerpOrderAccounts, marketIndex: number): AccountMeta[] {
  return [
    { pubkey: a.oracle, isSigner: false, isWritable: false },
    { pubkey: driftPda.spotMarket(a.programId, a.quoteSpotMarketIndex), isSigner: false, isWritable: false },
    { pubkey: driftPda.perpMarket(a.programId, marketIndex), isSigner: false, isWritable: false },
  ];
}

/** `place_perp_order(params: OrderParams)`; accounts: state, user (mut), authority (signer). */
export function placePerpOrderInstruction(
  a: PlacePerpOrderAccounts,
  params: OrderParams,
): TransactionInstruction {
  return new TransactionInstruction({
    programId: a.programId,
    keys: [
      { pubkey: driftPda.state(a.programId), isSigner: false, isWritable: false },
      { pubkey: a.user, isSigner: false, isWritable: true },
      { pubkey: a.authority, isSigner: true, isWritable: false },
      ...remainingAccounts(a, params.marketIndex),
    ],
    data: Buffer.concat([PLACE_PERP_ORDER_DISCRIMINATOR, encodeOrderParams(params)]),
  });
}

/** `cancel_order_by_user_id(user_order_id: u8)`. */
export function cancelOrderByUserIdInstruction(
  a: PlacePerpOrderAccounts,
  marketIndex: number,
  userOrderId: number,
): TransactionInstruction {
  return new TransactionInstruction({
    programId: a.programId,
    keys: [
      { pubkey: driftPda.state(a.programId), isSigner: false, isWritable: false },
      { pubkey: a.user, isSigner: false, isWritable: true },
      { pubkey: a.authority, isSigner: true, isWritable: false },
      ...remainingAccounts(a, marketIndex),
    ],
    data: Buffer.concat([CANCEL_ORDER_BY_USER_ID_DISCRIMINATOR, Buffer.from([userOrderId])]),
  });
}
