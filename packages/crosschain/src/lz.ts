import { addressToBytes32, calculateGuid, Options, PacketV1Codec } from '@layerzerolabs/lz-v2-utilities';
import { type ChainId, XhedgeError } from '@xhedge/core';
import { bytesToHex, type Hex } from 'viem';

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

/** An EVM (0x, 20 bytes) or Solana (base58, 32 bytes) address as LayerZero's bytes32. */
export function toBytes32(address: string): Hex {
  return bytesToHex(addressToBytes32(address));
}

/**
 * Type-3 executor options asking the executor to call `lzReceive` with `gasLimit` gas (and
 * `nativeDropWei` of native value) on the destination.
 */
export function executorOptions(gasLimit: number | bigint, nativeDropWei: bigint = 0n): Hex {
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

/** Decodes an encoded packet (as emitted by EndpointV2's PacketSent) with LayerZero's PacketV1Codec. */
export function decodePacket(encoded: Hex | Uint8Array): DecodedPacket {
  const c = PacketV1Codec.from(typeof encoded === 'string' ? encoded : bytesToHex(encoded));
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
  return calculateGuid({
    version: 1,
    nonce: p.nonce.toString(),
    srcEid: p.srcEid,
    sender: p.sender,
    dstEid: p.dstEid,
    receiver: p.receiver,
  }) as Hex;
}
