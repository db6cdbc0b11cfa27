import { addressToBytes32, calculateGuid, Options, PacketV1Codec } from '@layerzerolabs/lz-v2-utilities';
import { type ChainId, XhedgeError } from '@xhedge/core';
import { bytesToHex, type Hex, isHex } from 'viem';

/** LayerZero v2 endpoint ids of the chains xhedge knows (mainnet eids, 30xxx). */
export const LZ_EIDS: Readonly<Record<string, number>> = {
  'evm:1': 30101,
  'evm:42161': 30110,
  'evm:10': 30111,
  'solana:mainnet-beta': 30168,
};

export class UnknownLzChainError extends XhedgeError {
  override name = 'UnknownLzChainError';
  constructor(chain: string) {
    super('LZ_UNKNOWN_CHAIN', `no LayerZero endpoint id for chain ${chain}`, { details: { chain } });
  }
}

/** The endpoint id of `chain`; `overrides` adds local or test chains (anvil). */
export function lzEid(chain: ChainId, overrides: Readonly<Record<string, number>> = {}): number {
  const eid = overrides[chain] ?? LZ_EIDS[chain];
  if (eid === undefined) throw new UnknownLzChainError(chain);
  return eid;
}

export class LzEncodingError extends XhedgeError {
  override name = 'LzEncodingError';
}

/**
 * An EVM (0x, 20 bytes) or Solana (base58, 32 bytes) address, or a value already 0x-bytes32, as
 * LayerZero's bytes32. Anything else is refused: LayerZero's `addressToBytes32` left-pads any hex up to
 * 32 bytes (a 19-byte typo becomes another, valid-looking address) and decodes any 32–44 character
 * base58 string (an EVM address missing its 0x, with no `0` digit, reads as base58) — either way the
 * OFT `to` or the peer would name an address nobody controls.
 */
export function toBytes32(address: string): Hex {
  if (address.startsWith('0x')) {
    if (!isHex(address, { strict: true }) || (address.length !== 42 && address.length !== 66))
      throw new LzEncodingError('LZ_BAD_ADDRESS', `${address} is neither a 20-byte EVM address nor bytes32`, {
        details: { address },
      });
    return bytesToHex(addressToBytes32(address));
  }
  let bytes: Uint8Array | undefined;
  try {
    bytes = addressToBytes32(address);
  } catch {
    bytes = undefined;
  }
  if (bytes?.length !== 32)
    throw new LzEncodingError('LZ_BAD_ADDRESS', `${address} is not a 32-byte base58 (Solana) address`, {
      details: { address },
    });
  return bytesToHex(bytes);
}

/**
 * Type-3 executor options asking the executor to call `lzReceive` with `gasLimit` gas (and
 * `nativeDropWei` of native value) on the destination. `gasLimit` is a uint128 of at least 1.
 */
export function executorOptions(gasLimit: number | bigint, nativeDropWei: bigint = 0n): Hex {
  // The library packs with ethers' `pack`, which writes a negative uint128 as its two's complement:
  // -1 gas became 2^128 − 1 gas (and a negative drop 2^128 − 1 wei), a quote nobody can pay.
  const gas =
    typeof gasLimit === 'bigint' ? gasLimit : Number.isSafeInteger(gasLimit) ? BigInt(gasLimit) : -1n;
  if (gas < 0n || gas >= 2n ** 128n)
    throw new LzEncodingError('LZ_BAD_OPTION', `lzReceive gas ${String(gasLimit)} is not a uint128 integer`, {
      details: { gasLimit: String(gasLimit) },
    });
  // The executor's fee library reverts a quote (and so the send) that asks for no lzReceive gas
  // (ExecutorFeeLib: `Executor_ZeroLzReceiveGasProvided`): refused here, where the mistake is made.
  if (gas === 0n)
    throw new LzEncodingError(
      'LZ_BAD_OPTION',
      'lzReceive gas 0: the executor refuses options without lzReceive gas (Executor_ZeroLzReceiveGasProvided); give the gas the receiver needs',
      { details: { gasLimit: '0' } },
    );
  if (nativeDropWei < 0n || nativeDropWei >= 2n ** 128n)
    throw new LzEncodingError('LZ_BAD_OPTION', `native drop ${nativeDropWei} wei is not a uint128`, {
      details: { nativeDropWei: String(nativeDropWei) },
    });
  return Options.newOptions().addExecutorLzReceiveOption(gasLimit, nativeDropWei).toHex() as Hex;
}

export interface DecodedPacket {
  nonce: bigint;
  srcEid: number;
  sender: Hex;
  dstEid: number;
  receiver: Hex;
  guid: Hex;
  message: Hex;
  /** keccak of the packet header: what DVNs sign and verify. */
  headerHash: Hex;
  /** keccak(guid ‖ message): the payload hash committed on the destination. */
  payloadHash: Hex;
  header: Hex;
}

/** Header (81 bytes) + GUID (32): the shortest v1 packet, one with an empty message. */
const PACKET_V1_MIN_BYTES = 113;

/**
 * Decodes an encoded packet (as emitted by EndpointV2's PacketSent) with LayerZero's PacketV1Codec.
 * Refuses what is not a whole v1 packet: the codec reads through Node's Buffer, which stops at the first
 * non-hex character or odd digit and slices short buffers quietly (a truncated packet gave a 10-byte
 * "guid" and an empty message), and it reads any version byte with the v1 layout.
 */
export function decodePacket(encoded: Hex | Uint8Array): DecodedPacket {
  const hex = typeof encoded === 'string' ? encoded : bytesToHex(encoded);
  const bytes = isHex(hex, { strict: true }) && hex.length % 2 === 0 ? (hex.length - 2) / 2 : -1;
  if (bytes < PACKET_V1_MIN_BYTES)
    throw new LzEncodingError(
      'LZ_BAD_PACKET',
      `not an encoded packet: ${bytes < 0 ? 'malformed hex' : `${bytes} bytes, a v1 packet has at least ${PACKET_V1_MIN_BYTES}`}`,
    );
  const c = PacketV1Codec.from(hex);
  if (c.version() !== 1)
    throw new LzEncodingError('LZ_BAD_PACKET', `packet version ${c.version()} is not 1`, {
      details: { version: c.version() },
    });
  return {
    nonce: BigInt(c.nonce()),
    srcEid: c.srcEid(),
    sender: c.sender() as Hex,
    dstEid: c.dstEid(),
    receiver: c.receiver() as Hex,
    guid: c.guid() as Hex,
    message: c.message() as Hex,
    headerHash: c.headerHash() as Hex,
    payloadHash: c.payloadHash() as Hex,
    header: c.header() as Hex,
  };
}

/** The GUID EndpointV2 assigns: keccak256(nonce, srcEid, sender, dstEid, receiver). */
export function packetGuid(p: {
  nonce: bigint;
  srcEid: number;
  sender: string;
  dstEid: number;
  receiver: string;
}): Hex {
  // ethers' pack wraps a negative nonce to its two's complement, like any uint it packs
  if (p.nonce < 1n || p.nonce >= 2n ** 64n)
    throw new LzEncodingError('LZ_BAD_NONCE', `nonce ${p.nonce} is not a uint64 ≥ 1`, {
      details: { nonce: String(p.nonce) },
    });
  return calculateGuid({
    version: 1,
    nonce: p.nonce.toString(),
    srcEid: p.srcEid,
    sender: toBytes32(p.sender),
    dstEid: p.dstEid,
    receiver: toBytes32(p.receiver),
  }) as Hex;
}
