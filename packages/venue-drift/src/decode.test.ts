import { Keypair } from '@solana/web3.js';
import { describe, expect, it } from 'vitest';
import { DriftDecodeError, decodePerpMarket, decodeSpotMarket, decodeUser } from './decode.ts';
import { encodePerpMarketAccount, encodeSpotMarketAccount, encodeUserAccount } from './encode.ts';
import { encodeOrderParams } from './instructions.ts';
import {
  PERP_MARKET,
  PERP_MARKET_DISCRIMINATOR,
  PERP_MARKET_SIZE,
  PLACE_PERP_ORDER_DISCRIMINATOR,
  POSITION_FLAG,
  USER_DISCRIMINATOR,
  USER_SIZE,
} from './layout.ts';

describe('Drift layouts', () => {
  it('uses the discriminators of the Drift IDL', () => {
    // Values from Anchor's sha256 namespace scheme, as published for Drift v2.
    expect([...USER_DISCRIMINATOR]).toEqual([159, 117, 95, 227, 239, 151, 58, 236]);
    expect([...PERP_MARKET_DISCRIMINATOR]).toEqual([10, 223, 12, 44, 107, 245, 55, 247]);
    expect([...PLACE_PERP_ORDER_DISCRIMINATOR]).toEqual([69, 161, 93, 202, 120, 126, 76, 185]);
  });

  it('decodes a User account: perp positions, spot balances and open orders', () => {
    const authority = Keypair.generate().publicKey;
    const data = encodeUserAccount({
      authority,
      subAccountId: 3,
      perpPositions: [
        {
          marketIndex: 0,
          baseAssetAmount: -1_250_000_000n,
          quoteAssetAmount: 225_000_000n,
          openOrders: 1,
          openAsks: -500_000_000n,
        },
        {},
        { marketIndex: 2, baseAssetAmount: 7_000_000_000n },
      ],
      orders: [
        {
          status: 'open',
          userOrderId: 17,
          orderId: 42,
          marketIndex: 0,
          direction: 'short',
          orderType: 'limit',
          price: 181_500_000n,
          baseAssetAmount: 500_000_000n,
          baseAssetAmountFilled: 100_000_000n,
          reduceOnly: true,
        },
        { status: 'init' },
      ],
    });
    expect(data.length).toBe(USER_SIZE);
    const u = decodeUser(data);
    expect(u.authority.equals(authority)).toBe(true);
    expect(u.subAccountId).toBe(3);
    expect(u.perpPositions.map((p) => [p.marketIndex, p.baseAssetAmount, p.openOrders])).toEqual([
      [0, -1_250_000_000n, 1],
      [2, 7_000_000_000n, 0],
    ]);
    expect(u.perpPositions[0]?.openAsks).toBe(-500_000_000n);
    expect(u.orders).toHaveLength(1);
    expect(u.orders[0]).toMatchObject({
      userOrderId: 17,
      orderId: 42,
      direction: 'short',
      orderType: 'limit',
      price: 181_500_000n,
      baseAssetAmountFilled: 100_000_000n,
      reduceOnly: true,
      status: 'open',
    });
  });

  it('decodes an isolated position: its collateral at byte 72 of the PerpPosition, its flags at byte 95', () => {
    // protocol-v2 state/user.rs (isolated positions, #1757): nine 8-byte fields precede
    // isolated_position_scaled_balance (8 × 9 = 72); padding [u8; 2], max_margin_ratio u16,
    // market_index u16 and open_orders u8 put position_flag at 95 of the 96 bytes.
    const data = encodeUserAccount({ authority: Keypair.generate().publicKey, perpPositions: [{}, {}] });
    const slot = 424 + 96; // the second PerpPosition slot of the User account
    data.writeBigUInt64LE(123_456_789_000n, slot + 72);
    data.writeUInt16LE(4, slot + 92);
    data.writeUInt8(0b011, slot + 95); // isolated, being liquidated
    const [p, ...rest] = decodeUser(data).perpPositions;
    expect(rest).toEqual([]);
    // size 0 and no P&L, but its collateral is still there: the position is kept
    expect(p).toMatchObject({
      marketIndex: 4,
      baseAssetAmount: 0n,
      isolatedPositionScaledBalance: 123_456_789_000n,
      positionFlag: 0b011,
    });
  });

  it('keeps every perp slot the program does not count as available (its market goes into order transactions)', () => {
    // PerpPosition::is_available is false with open bids/asks alone, or with a liquidation flag alone;
    // the SDK also counts LP shares. Slot 4 is empty.
    const data = encodeUserAccount({
      authority: Keypair.generate().publicKey,
      perpPositions: [
        { marketIndex: 1, openBids: 2_000_000_000n },
        { marketIndex: 2, positionFlag: POSITION_FLAG.beingLiquidated },
        { marketIndex: 3, lpShares: 5n },
        { marketIndex: 4, positionFlag: POSITION_FLAG.isolated },
      ],
    });
    expect(decodeUser(data).perpPositions.map((p) => p.marketIndex)).toEqual([1, 2, 3]);
  });

  it("decodes a SpotMarket's pubkey and oracle, the oracle an order transaction must carry", () => {
    const pubkey = Keypair.generate().publicKey;
    const oracle = Keypair.generate().publicKey;
    const data = encodeSpotMarketAccount({
      pubkey,
      oracle,
      marketIndex: 0,
      name: 'USDC',
      decimals: 6,
      cumulativeDepositInterest: 10_000_000_000n,
    });
    // spot_market.rs: pubkey, oracle, mint, vault (32 bytes each) after the discriminator
    expect(data.subarray(40, 72).equals(oracle.toBuffer())).toBe(true);
    const m = decodeSpotMarket(data);
    expect(m.pubkey.equals(pubkey)).toBe(true);
    expect(m.oracle.equals(oracle)).toBe(true);
    expect(decodeSpotMarket(encodeSpotMarketAccount({ ...m, name: 'USDC' })).oracle.equals(oracle)).toBe(
      true,
    );
  });

  it('decodes a PerpMarket account: reserves, oracle, funding and order rules', () => {
    const data = encodePerpMarketAccount({
      marketIndex: 7,
      name: 'ETH-PERP',
      status: 'reduceOnly',
      baseAssetReserve: (1n << 70n) + 5n,
      quoteAssetReserve: 123n,
      pegMultiplier: 3_500_000_000n,
      lastOraclePrice: 3_500_123_456n,
      lastFundingRate: -2_000_000n,
      orderStepSize: 1_000_000n,
      minOrderSize: 10_000_000n,
      orderTickSize: 10_000n,
      baseAssetAmountShort: -(1n << 66n),
      marginRatioInitial: 2000,
      marginRatioMaintenance: 1000,
    });
    expect(data.length).toBe(PERP_MARKET_SIZE);
    // The program's own constant: MARKET_INDEX_OFFSET = 1160.
    expect(PERP_MARKET.marketIndex).toBe(1160);
    expect(data.readUInt16LE(1160)).toBe(7);
    // perp_market.rs: margin_ratio_initial is the first of the six u32s just before market_index
    // (initial, maintenance, the two unrealized-pnl asset weights, number_of_users_with_base, number_of_users).
    expect(PERP_MARKET.marginRatioInitial).toBe(1160 - 6 * 4);
    expect(data.readUInt32LE(1136)).toBe(2000);
    const m = decodePerpMarket(data);
    expect(m).toMatchObject({
      marketIndex: 7,
      name: 'ETH-PERP',
      status: 'reduceOnly',
      lastOraclePrice: 3_500_123_456n,
      lastFundingRate: -2_000_000n,
      orderStepSize: 1_000_000n,
      minOrderSize: 10_000_000n,
      orderTickSize: 10_000n,
      marginRatioInitial: 2000,
      marginRatioMaintenance: 1000,
    });
    expect(m.baseAssetReserve).toBe((1n << 70n) + 5n);
    expect(m.baseAssetAmountShort).toBe(-(1n << 66n));
  });

  it('refuses bytes that are not the account it is asked to decode', () => {
    const market = encodePerpMarketAccount({ marketIndex: 0 });
    expect(() => decodeUser(Buffer.concat([market, Buffer.alloc(USER_SIZE)]))).toThrow(DriftDecodeError);
    expect(() => decodePerpMarket(market.subarray(0, 1000))).toThrow(/expected 1216 bytes/);
  });

  it('borsh-encodes OrderParams field by field (IDL order)', () => {
    const bytes = encodeOrderParams({
      orderType: 'limit',
      marketType: 'perp',
      direction: 'short',
      userOrderId: 9,
      baseAssetAmount: 1_500_000_000n,
      price: 181_000_000n,
      marketIndex: 4,
      reduceOnly: true,
      postOnly: 'none',
      immediateOrCancel: true,
      maxTs: 1_767_000_000n,
    });
    const expected = Buffer.alloc(0);
    const parts = [
      Buffer.from([1, 1, 1, 9]),
      u64(1_500_000_000n),
      u64(181_000_000n),
      Buffer.from([4, 0]),
      Buffer.from([1, 0, 1]), // reduce_only, post_only None, bit_flags IOC
      Buffer.from([1]),
      i64(1_767_000_000n), // max_ts Some
      Buffer.from([0]), // trigger_price None
      Buffer.from([0]), // trigger_condition Above
      Buffer.from([0, 0, 0, 0]), // oracle offset, auction duration/start/end None
    ];
    expect(bytes.equals(Buffer.concat([expected, ...parts]))).toBe(true);
  });
});

function u64(v: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return b;
}
function i64(v: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64LE(v);
  return b;
}
