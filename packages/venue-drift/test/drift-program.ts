/**
 * FIXTURE ONLY, not protocol code: a stand-in for the checks drift-labs/protocol-v2 (programs/drift)
 * makes before an instruction of the adapter would run, because litesvm cannot run the Drift program
 * here (README). It is written from the program's sources, not from the adapter, so a transaction the
 * adapter builds wrongly fails here as it would on chain:
 *
 * - the instruction, by its Anchor discriminator (`place_perp_order`, `place_and_take_perp_order`,
 *   `cancel_order_by_user_id`), and its named accounts in IDL order with Anchor's checks: State, User
 *   and UserStats loaded by owner and discriminator, `mut` accounts writable, the authority a signer,
 *   `can_sign_for_user` (authority or delegate), `is_stats_for_user`;
 * - OrderParams read in IDL field order, then the handlers' refusals: IOC in `place_perp_order`
 *   (`InvalidOrderIOC`), post-only in `place_and_take_perp_order`, a `user_order_id` an open order
 *   already uses;
 * - the remaining accounts loaded as `load_maps` loads them: oracles, then spot markets, then perp
 *   markets, each loader stopping at the first account not of its kind, and the mutability the
 *   handler asks (`place_and_take` writes the order's perp market);
 * - what the handler then reads: the order's perp market and oracle and, for the margin check
 *   `place_perp_order` always runs, every perp position in use (`PerpPosition::is_available` negated,
 *   the order's own market included) with its market, oracle, quote spot market and that market's
 *   oracle, and every spot position in use with its market and oracle; for a cancel, the first order
 *   slot with that user order id (none: a no-op; not open: `OrderNotOpen`) and its market and oracle.
 *   An oracle of `Pubkey::default()` needs no account (the quote-asset price).
 *
 * The program takes an account as an oracle by its owner (`EXTERNAL_ORACLE_PROGRAM_IDS`); the
 * fixture's oracle accounts are owned by {@link FIXTURE_ORACLE_OWNER}, standing for those programs.
 * What an instruction that passes does to the accounts stays with each test (it writes the User).
 */
import { createHash } from 'node:crypto';
import { PublicKey, type VersionedTransaction } from '@solana/web3.js';
import type { LiteSVM } from 'litesvm';
import {
  ORDER,
  PERP_MARKET,
  PERP_POSITION,
  SPOT_MARKET,
  SPOT_POSITION,
  USER,
  USER_STATS,
} from '../src/layout.ts';

/** Owner of the fixture's oracle accounts: stands for Pyth / Switchboard / Pyth Lazer program ids. */
export const FIXTURE_ORACLE_OWNER = new PublicKey(
  createHash('sha256').update('xhedge fixture oracle owner').digest(),
);

/** The Anchor 0.29 and protocol-v2 error codes this stand-in reports (IDL `errors`, Anchor `ErrorCode`). */
export const DRIFT_PROGRAM_ERROR = {
  InstructionFallbackNotFound: 101,
  InstructionDidNotDeserialize: 102,
  ConstraintMut: 2000,
  ConstraintRaw: 2003,
  AccountDiscriminatorMismatch: 3002,
  AccountNotEnoughKeys: 3005,
  AccountOwnedByWrongProgram: 3007,
  AccountNotSigner: 3010,
  AccountNotInitialized: 3012,
  OracleNotFound: 6036,
  InvalidOrderIOC: 6050,
  InvalidOrderPostOnly: 6051,
  OrderNotOpen: 6062,
  UserOrderIdAlreadyInUse: 6071,
  PerpMarketNotFound: 6078,
  MarketWrongMutability: 6081,
  SpotMarketNotFound: 6087,
} as const;
export type DriftProgramErrorName = keyof typeof DRIFT_PROGRAM_ERROR;

/** OrderParams as the program reads them (IDL field order; enums as their indexes). */
export interface FixtureOrderParams {
  orderType: number;
  marketType: number;
  direction: number;
  userOrderId: number;
  baseAssetAmount: bigint;
  price: bigint;
  marketIndex: number;
  reduceOnly: boolean;
  postOnly: number;
  bitFlags: number;
  maxTs: bigint | null;
}

export type DriftProgramResult =
  | {
      ok: true;
      instruction: 'place_perp_order' | 'place_and_take_perp_order' | 'cancel_order_by_user_id';
      params?: FixtureOrderParams;
      userOrderId: number;
      /** A cancel of an id no slot holds: the program returns Ok and changes nothing. */
      noop?: boolean;
    }
  | { ok: false; error: DriftProgramErrorName; message: string; err: unknown };

const disc = (name: string): Buffer => createHash('sha256').update(name).digest().subarray(0, 8);

const IX = {
  place_perp_order: disc('global:place_perp_order'),
  place_and_take_perp_order: disc('global:place_and_take_perp_order'),
  cancel_order_by_user_id: disc('global:cancel_order_by_user_id'),
} as const;
const ACCOUNT = {
  State: disc('account:State'),
  User: disc('account:User'),
  UserStats: disc('account:UserStats'),
  PerpMarket: disc('account:PerpMarket'),
  SpotMarket: disc('account:SpotMarket'),
} as const;
/** protocol-v2 `Size` constants. */
const SIZE = { State: 992, User: 4376, UserStats: 240, PerpMarket: 1216, SpotMarket: 776 } as const;

class Fail extends Error {
  constructor(
    readonly error: DriftProgramErrorName,
    message: string,
  ) {
    super(message);
  }
}
const fail = (error: DriftProgramErrorName, message: string): never => {
  throw new Fail(error, message);
};

interface Meta {
  pubkey: PublicKey;
  isSigner: boolean;
  isWritable: boolean;
}

/** A borsh reader that fails as Anchor's argument deserialisation does. */
class Reader {
  #off: number;
  constructor(
    readonly data: Buffer,
    off: number,
  ) {
    this.#off = off;
  }
  #need(n: number): number {
    if (this.#off + n > this.data.length)
      fail('InstructionDidNotDeserialize', 'instruction data ends inside its arguments');
    const at = this.#off;
    this.#off += n;
    return at;
  }
  u8(): number {
    return this.data.readUInt8(this.#need(1));
  }
  enumIndex(variants: number, what: string): number {
    const v = this.u8();
    if (v >= variants) fail('InstructionDidNotDeserialize', `${what}: no variant ${v}`);
    return v;
  }
  bool(what: string): boolean {
    return this.enumIndex(2, what) === 1;
  }
  u16(): number {
    return this.data.readUInt16LE(this.#need(2));
  }
  u32(): number {
    return this.data.readUInt32LE(this.#need(4));
  }
  i32(): number {
    return this.data.readInt32LE(this.#need(4));
  }
  u64(): bigint {
    return this.data.readBigUInt64LE(this.#need(8));
  }
  i64(): bigint {
    return this.data.readBigInt64LE(this.#need(8));
  }
  option<T>(read: () => T, what: string): T | null {
    return this.bool(`${what} option tag`) ? read() : null;
  }
}

function readOrderParams(r: Reader): FixtureOrderParams {
  const p: FixtureOrderParams = {
    orderType: r.enumIndex(5, 'order_type'),
    marketType: r.enumIndex(2, 'market_type'),
    direction: r.enumIndex(2, 'direction'),
    userOrderId: r.u8(),
    baseAssetAmount: r.u64(),
    price: r.u64(),
    marketIndex: r.u16(),
    reduceOnly: r.bool('reduce_only'),
    postOnly: r.enumIndex(4, 'post_only'),
    bitFlags: r.u8(),
    maxTs: r.option(() => r.i64(), 'max_ts'),
  };
  r.option(() => r.u64(), 'trigger_price');
  r.enumIndex(4, 'trigger_condition');
  r.option(() => r.i32(), 'oracle_price_offset');
  r.option(() => r.u8(), 'auction_duration');
  r.option(() => r.i64(), 'auction_start_price');
  r.option(() => r.i64(), 'auction_end_price');
  return p;
}

/** Anchor's load of an `Account` / `AccountLoader`: present, owned by the program, its discriminator. */
function loadAccount(svm: LiteSVM, programId: PublicKey, meta: Meta, kind: keyof typeof ACCOUNT): Buffer {
  const acc = svm.getAccount(meta.pubkey);
  if (!acc || acc.data.length === 0)
    return fail('AccountNotInitialized', `${kind} ${meta.pubkey.toBase58()}`);
  if (!new PublicKey(acc.owner).equals(programId))
    return fail('AccountOwnedByWrongProgram', `${kind} ${meta.pubkey.toBase58()}`);
  const data = Buffer.from(acc.data);
  if (data.length < SIZE[kind] || !data.subarray(0, 8).equals(ACCOUNT[kind]))
    return fail('AccountDiscriminatorMismatch', `${kind} ${meta.pubkey.toBase58()}`);
  return data;
}

interface Maps {
  oracles: Set<string>;
  spot: Map<number, Buffer>;
  perp: Map<number, Buffer>;
}

/** protocol-v2 `load_maps`: OracleMap::load, SpotMarketMap::load, PerpMarketMap::load, in that order. */
function loadMaps(svm: LiteSVM, programId: PublicKey, rest: Meta[], writablePerp: Set<number>): Maps {
  const maps: Maps = { oracles: new Set(), spot: new Map(), perp: new Map() };
  let i = 0;
  const data = (m: Meta | undefined) => {
    const acc = m ? svm.getAccount(m.pubkey) : null;
    return acc ? { owner: new PublicKey(acc.owner), data: Buffer.from(acc.data) } : undefined;
  };
  for (let a = data(rest[i]); a?.owner.equals(FIXTURE_ORACLE_OWNER); a = data(rest[++i]))
    maps.oracles.add(rest[i]?.pubkey.toBase58() ?? '');
  for (
    let a = data(rest[i]);
    a?.owner.equals(programId) &&
    a.data.length >= SIZE.SpotMarket &&
    a.data.subarray(0, 8).equals(ACCOUNT.SpotMarket);
    a = data(rest[++i])
  )
    maps.spot.set(a.data.readUInt16LE(SPOT_MARKET.marketIndex), a.data);
  for (
    let a = data(rest[i]);
    a?.owner.equals(programId) &&
    a.data.length >= SIZE.PerpMarket &&
    a.data.subarray(0, 8).equals(ACCOUNT.PerpMarket);
    a = data(rest[++i])
  ) {
    const index = a.data.readUInt16LE(PERP_MARKET.marketIndex);
    if (writablePerp.has(index) && !rest[i]?.isWritable)
      fail('MarketWrongMutability', `perp market ${index} must be writable`);
    maps.perp.set(index, a.data);
  }
  return maps;
}

function needOracle(maps: Maps, oracle: PublicKey, of: string): void {
  if (!oracle.equals(PublicKey.default) && !maps.oracles.has(oracle.toBase58()))
    fail('OracleNotFound', `oracle ${oracle.toBase58()} of ${of}`);
}
function needPerp(maps: Maps, index: number): Buffer {
  const pm = maps.perp.get(index) ?? fail('PerpMarketNotFound', `perp market ${index}`);
  needOracle(
    maps,
    new PublicKey(pm.subarray(PERP_MARKET.oracle, PERP_MARKET.oracle + 32)),
    `perp market ${index}`,
  );
  return pm;
}
function needSpot(maps: Maps, index: number): void {
  const sm = maps.spot.get(index) ?? fail('SpotMarketNotFound', `spot market ${index}`);
  needOracle(
    maps,
    new PublicKey(sm.subarray(SPOT_MARKET.oracle, SPOT_MARKET.oracle + 32)),
    `spot market ${index}`,
  );
}

/**
 * `calculate_margin_requirement_and_total_collateral_and_liability_info`'s reads: each spot position
 * in use (scaled balance or open orders), each perp position in use with its quote spot market. Read
 * from the User bytes with the program's own availability rules.
 */
function marginCheckReads(user: Buffer, maps: Maps, orderMarket: number): void {
  for (let i = 0; i < USER.spotPositionCount; i++) {
    const o = USER.spotPositions + i * USER.spotPositionSize;
    if (
      user.readBigUInt64LE(o + SPOT_POSITION.scaledBalance) === 0n &&
      user.readUInt8(o + SPOT_POSITION.openOrders) === 0
    )
      continue;
    needSpot(maps, user.readUInt16LE(o + SPOT_POSITION.marketIndex));
  }
  const markets = new Set([orderMarket]);
  for (let i = 0; i < USER.perpPositionCount; i++) {
    const o = USER.perpPositions + i * USER.perpPositionSize;
    const base = user.readBigInt64LE(o + PERP_POSITION.baseAssetAmount);
    const available =
      base === 0n &&
      user.readUInt8(o + PERP_POSITION.openOrders) === 0 &&
      user.readBigInt64LE(o + PERP_POSITION.openBids) === 0n &&
      user.readBigInt64LE(o + PERP_POSITION.openAsks) === 0n &&
      user.readBigInt64LE(o + PERP_POSITION.quoteAssetAmount) === 0n &&
      user.readBigUInt64LE(o + PERP_POSITION.isolatedPositionScaledBalance) === 0n &&
      (user.readUInt8(o + PERP_POSITION.positionFlag) & 0b110) === 0;
    if (!available) markets.add(user.readUInt16LE(o + PERP_POSITION.marketIndex));
  }
  for (const index of markets) {
    const pm = needPerp(maps, index);
    needSpot(maps, pm.readUInt16LE(PERP_MARKET.quoteSpotMarketIndex));
  }
}

/** Checks the transaction's Drift instruction as the program would; see the file comment. */
export function runDriftProgram(
  svm: LiteSVM,
  programId: PublicKey,
  tx: VersionedTransaction,
): DriftProgramResult {
  const msg = tx.message;
  const keys = msg.staticAccountKeys;
  const ixIndex = msg.compiledInstructions.findIndex((ix) => keys[ix.programIdIndex]?.equals(programId));
  const ix = msg.compiledInstructions[ixIndex];
  if (!ix) throw new Error('the transaction has no Drift instruction');
  const metas: Meta[] = ix.accountKeyIndexes.map((k) => ({
    pubkey: keys[k] ?? PublicKey.default,
    isSigner: msg.isAccountSigner(k),
    isWritable: msg.isAccountWritable(k),
  }));
  const data = Buffer.from(ix.data);
  try {
    const name = (Object.keys(IX) as (keyof typeof IX)[]).find((n) => data.subarray(0, 8).equals(IX[n]));
    if (!name) return fail('InstructionFallbackNotFound', 'unknown instruction discriminator');
    const named = name === 'place_and_take_perp_order' ? 4 : 3;
    if (metas.length < named) fail('AccountNotEnoughKeys', `${name} takes ${named} accounts`);
    const [stateMeta, userMeta] = metas as [Meta, Meta];
    const authorityMeta = metas[named - 1] as Meta;
    loadAccount(svm, programId, stateMeta, 'State');
    const user = loadAccount(svm, programId, userMeta, 'User');
    if (!userMeta.isWritable) fail('ConstraintMut', 'user');
    if (!authorityMeta.isSigner) fail('AccountNotSigner', 'authority');
    const owner = new PublicKey(user.subarray(USER.authority, USER.authority + 32));
    const delegate = new PublicKey(user.subarray(USER.delegate, USER.delegate + 32));
    if (!authorityMeta.pubkey.equals(owner) && !authorityMeta.pubkey.equals(delegate))
      fail('ConstraintRaw', 'can_sign_for_user');
    if (name === 'place_and_take_perp_order') {
      const statsMeta = metas[2] as Meta;
      const stats = loadAccount(svm, programId, statsMeta, 'UserStats');
      if (!statsMeta.isWritable) fail('ConstraintMut', 'user_stats');
      if (!new PublicKey(stats.subarray(USER_STATS.authority, USER_STATS.authority + 32)).equals(owner))
        fail('ConstraintRaw', 'is_stats_for_user');
    }
    const rest = metas.slice(named);
    const r = new Reader(data, 8);

    if (name === 'cancel_order_by_user_id') {
      const userOrderId = r.u8();
      const maps = loadMaps(svm, programId, rest, new Set());
      for (let i = 0; i < USER.orderCount; i++) {
        const o = USER.orders + i * USER.orderSize;
        if (user.readUInt8(o + ORDER.userOrderId) !== userOrderId) continue;
        if (user.readUInt8(o + ORDER.status) !== 1) fail('OrderNotOpen', `order slot ${i} is not open`);
        needPerp(maps, user.readUInt16LE(o + ORDER.marketIndex));
        return { ok: true, instruction: name, userOrderId };
      }
      return { ok: true, instruction: name, userOrderId, noop: true };
    }

    const params = readOrderParams(r);
    if (name === 'place_and_take_perp_order') r.option(() => r.u32(), 'success_condition');
    const ioc = (params.bitFlags & 0b1) !== 0;
    const maps = loadMaps(
      svm,
      programId,
      rest,
      name === 'place_and_take_perp_order' ? new Set([params.marketIndex]) : new Set(),
    );
    if (name === 'place_perp_order' && ioc)
      fail('InvalidOrderIOC', 'immediate_or_cancel order must be in place_and_make or place_and_take');
    if (name === 'place_and_take_perp_order' && params.postOnly !== 0)
      fail('InvalidOrderPostOnly', "post_only can't be used in place_and_take");
    needPerp(maps, params.marketIndex);
    if (params.userOrderId > 0)
      for (let i = 0; i < USER.orderCount; i++) {
        const o = USER.orders + i * USER.orderSize;
        if (
          user.readUInt8(o + ORDER.status) === 1 &&
          user.readUInt8(o + ORDER.userOrderId) === params.userOrderId
        )
          fail('UserOrderIdAlreadyInUse', `user_order_id ${params.userOrderId}`);
      }
    marginCheckReads(user, maps, params.marketIndex);
    return { ok: true, instruction: name, params, userOrderId: params.userOrderId };
  } catch (e) {
    if (!(e instanceof Fail)) throw e;
    return {
      ok: false,
      error: e.error,
      message: e.message,
      err: { InstructionError: [ixIndex, { Custom: DRIFT_PROGRAM_ERROR[e.error] }] },
    };
  }
}
