import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { ManualClock } from '@xhedge/core';
import {
  decodePacket,
  executorOptions,
  memoryTransferStore,
  TransferTracker,
  toBytes32,
} from '@xhedge/crosschain';
import {
  type Abi,
  createPublicClient,
  createWalletClient,
  decodeEventLog,
  defineChain,
  type Hex,
  http,
  type PublicClient,
  parseAbi,
  type WalletClient,
} from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SOURCES } from './contracts.ts';
import { type Artifact, compile } from './solidity.ts';

// anvil's first default account (public test key).
const KEY = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';
const account = privateKeyToAccount(KEY);
const EID_A = 40101;
const EID_B = 40102;

function anvilBinary(): string {
  const store = join(import.meta.dirname, '../../../node_modules/.pnpm');
  const dir = readdirSync(store).find((d) => d.startsWith('@foundry-rs+anvil-linux-amd64@'));
  if (!dir) throw new Error('anvil binary not installed');
  return join(store, dir, 'node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil');
}
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

interface Chain {
  proc: ChildProcess;
  pub: PublicClient;
  wallet: WalletClient;
  chainId: number;
}
async function startAnvil(chainId: number): Promise<Chain> {
  const port = await freePort();
  const proc = spawn(anvilBinary(), ['--port', String(port), '--chain-id', String(chainId), '--silent'], {
    stdio: 'ignore',
  });
  const chain = defineChain({
    id: chainId,
    name: `anvil-${chainId}`,
    nativeCurrency: { name: 'ETH', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [`http://127.0.0.1:${port}`] } },
  });
  const pub = createPublicClient({ chain, transport: http(), cacheTime: 0 });
  for (let i = 0; i < 100; i++) {
    try {
      await pub.getChainId();
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const wallet = createWalletClient({ chain, transport: http(), account });
  return { proc, pub, wallet, chainId };
}

async function deploy(c: Chain, art: Artifact, args: readonly unknown[]): Promise<Hex> {
  const hash = await c.wallet.deployContract({
    abi: art.abi as Abi,
    bytecode: art.bytecode,
    args,
    account,
    chain: c.wallet.chain,
  });
  const r = await c.pub.waitForTransactionReceipt({ hash });
  if (!r.contractAddress) throw new Error('deploy failed');
  return r.contractAddress;
}
async function send(
  c: Chain,
  address: Hex,
  abi: Abi,
  functionName: string,
  args: readonly unknown[],
  value?: bigint,
) {
  const hash = await c.wallet.writeContract({
    address,
    abi,
    functionName,
    args,
    account,
    chain: c.wallet.chain,
    ...(value === undefined ? {} : { value }),
  });
  const r = await c.pub.waitForTransactionReceipt({ hash });
  if (r.status !== 'success') throw new Error(`${functionName} reverted`);
  return r;
}

const endpointAbi = parseAbi([
  'function registerLibrary(address lib)',
  'function setDefaultSendLibrary(uint32 eid, address lib)',
  'function setDefaultReceiveLibrary(uint32 eid, address lib, uint256 gracePeriod)',
  'function lzReceive((uint32 srcEid, bytes32 sender, uint64 nonce) origin, address receiver, bytes32 guid, bytes message, bytes extraData) payable',
  'event PacketSent(bytes encodedPayload, bytes options, address sendLibrary)',
  'event PacketVerified((uint32 srcEid, bytes32 sender, uint64 nonce) origin, address receiver, bytes32 payloadHash)',
  'event PacketDelivered((uint32 srcEid, bytes32 sender, uint64 nonce) origin, address receiver)',
]);
const libAbi = parseAbi(['function validatePacket(bytes packetBytes)']);
const oftAbi = parseAbi([
  'function mint(address to, uint256 amount)',
  'function setPeer(uint32 eid, bytes32 peer)',
  'function balanceOf(address) view returns (uint256)',
  'function quoteSend((uint32 dstEid, bytes32 to, uint256 amountLD, uint256 minAmountLD, bytes extraOptions, bytes composeMsg, bytes oftCmd) sendParam, bool payInLzToken) view returns ((uint256 nativeFee, uint256 lzTokenFee))',
  'function send((uint32 dstEid, bytes32 to, uint256 amountLD, uint256 minAmountLD, bytes extraOptions, bytes composeMsg, bytes oftCmd) sendParam, (uint256 nativeFee, uint256 lzTokenFee) fee, address refundAddress) payable returns ((bytes32 guid, uint64 nonce, (uint256 nativeFee, uint256 lzTokenFee) fee), (uint256 amountSentLD, uint256 amountReceivedLD))',
]);

describe('LayerZero v2 on two local EVM chains (EndpointV2 + SimpleMessageLib + OFT)', () => {
  let a: Chain;
  let b: Chain;
  let arts: Record<string, Artifact>;
  const wired: { endpointA?: Hex; endpointB?: Hex; libB?: Hex; oftA?: Hex; oftB?: Hex } = {};

  beforeAll(async () => {
    arts = compile(SOURCES);
    [a, b] = await Promise.all([startAnvil(31337), startAnvil(31338)]);
    const need = (n: string): Artifact => {
      const x = arts[n];
      if (!x) throw new Error(`${n} not compiled`);
      return x;
    };
    for (const [c, eid, peerEid] of [
      [a, EID_A, EID_B],
      [b, EID_B, EID_A],
    ] as const) {
      const endpoint = await deploy(c, need('LocalEndpointV2'), [eid, account.address]);
      const lib = await deploy(c, need('LocalMessageLib'), [endpoint, account.address]);
      await send(c, endpoint, endpointAbi, 'registerLibrary', [lib]);
      await send(c, endpoint, endpointAbi, 'setDefaultSendLibrary', [peerEid, lib]);
      await send(c, endpoint, endpointAbi, 'setDefaultReceiveLibrary', [peerEid, lib, 0n]);
      const oft = await deploy(c, need('XhedgeUsd'), [endpoint, account.address]);
      if (c === a) Object.assign(wired, { endpointA: endpoint, oftA: oft });
      else Object.assign(wired, { endpointB: endpoint, libB: lib, oftB: oft });
    }
    if (!wired.oftA || !wired.oftB) throw new Error('not wired');
    await send(a, wired.oftA, oftAbi, 'setPeer', [EID_B, toBytes32(wired.oftB)]);
    await send(b, wired.oftB, oftAbi, 'setPeer', [EID_A, toBytes32(wired.oftA)]);
  }, 90_000);

  afterAll(() => {
    a?.proc.kill('SIGKILL');
    b?.proc.kill('SIGKILL');
  });

  it('sends an OFT from chain A, verifies as DVN and delivers as executor on chain B, tracked sent → verified → delivered', async () => {
    const { oftA, oftB, endpointA, endpointB, libB } = wired;
    if (!oftA || !oftB || !endpointA || !endpointB || !libB) throw new Error('not wired');
    const receiver = '0x000000000000000000000000000000000000bEEF' as const;
    const amount = 25_000_000_000n; // 25,000.000000 xUSD (6 decimals)
    await send(a, oftA, oftAbi, 'mint', [account.address, amount]);
    const sendParam = {
      dstEid: EID_B,
      to: toBytes32(receiver),
      amountLD: amount,
      minAmountLD: amount,
      extraOptions: executorOptions(200_000),
      composeMsg: '0x',
      oftCmd: '0x',
    } as const;
    const fee = await a.pub.readContract({
      address: oftA,
      abi: oftAbi,
      functionName: 'quoteSend',
      args: [sendParam, false],
    });
    expect(fee.nativeFee).toBe(100n); // SimpleMessageLib's flat fee

    const clock = new ManualClock(0);
    const tracker = new TransferTracker({ store: memoryTransferStore(), clock });
    await tracker.create({
      transferId: 'xfer_evm_1',
      kind: 'oft-send',
      srcChain: 'evm:31337',
      dstChain: 'evm:31338',
      srcEid: EID_A,
      dstEid: EID_B,
      asset: 'USDC',
      amount: '25000',
      feeUsd: 0,
      expectedLatencyMs: 1000,
      timeoutMs: 60_000,
    });

    const sent = await send(a, oftA, oftAbi, 'send', [sendParam, fee, account.address], fee.nativeFee);
    const packetLog = sent.logs
      .filter((l) => l.address.toLowerCase() === endpointA.toLowerCase())
      .map((l) => {
        try {
          return decodeEventLog({ abi: endpointAbi, data: l.data, topics: l.topics });
        } catch {
          return undefined;
        }
      })
      .find((e) => e?.eventName === 'PacketSent');
    if (packetLog?.eventName !== 'PacketSent') throw new Error('no PacketSent');
    const packet = decodePacket(packetLog.args.encodedPayload);
    expect(packet).toMatchObject({ srcEid: EID_A, dstEid: EID_B, nonce: 1n });
    expect(packet.receiver.toLowerCase()).toBe(toBytes32(oftB).toLowerCase());
    await tracker.transition('xfer_evm_1', 'sent', {
      guid: packet.guid,
      nonce: packet.nonce.toString(),
      srcTxHash: sent.transactionHash,
    });
    expect(
      await b.pub.readContract({ address: oftB, abi: oftAbi, functionName: 'balanceOf', args: [receiver] }),
    ).toBe(0n);

    // DVN: hand the packet to chain B's message lib, which verifies it on the endpoint.
    const verified = await send(b, libB, libAbi, 'validatePacket', [packetLog.args.encodedPayload]);
    const vEvent = verified.logs
      .map((l) => {
        try {
          return decodeEventLog({ abi: endpointAbi, data: l.data, topics: l.topics });
        } catch {
          return undefined;
        }
      })
      .find((e) => e?.eventName === 'PacketVerified');
    expect(vEvent?.eventName).toBe('PacketVerified');
    clock.advance(400);
    await tracker.transition('xfer_evm_1', 'verified');

    // Executor: deliver with lzReceive; the OFT on B mints to the receiver.
    const origin = { srcEid: packet.srcEid, sender: packet.sender, nonce: packet.nonce };
    const delivered = await send(b, endpointB, endpointAbi, 'lzReceive', [
      origin,
      oftB,
      packet.guid,
      packet.message,
      '0x',
    ]);
    const dEvent = delivered.logs
      .map((l) => {
        try {
          return decodeEventLog({ abi: endpointAbi, data: l.data, topics: l.topics });
        } catch {
          return undefined;
        }
      })
      .find((e) => e?.eventName === 'PacketDelivered');
    expect(dEvent?.eventName).toBe('PacketDelivered');
    clock.advance(600);
    const rec = await tracker.transition('xfer_evm_1', 'delivered', { dstTxHash: delivered.transactionHash });
    expect(
      await b.pub.readContract({ address: oftB, abi: oftAbi, functionName: 'balanceOf', args: [receiver] }),
    ).toBe(amount);
    expect(
      await a.pub.readContract({
        address: oftA,
        abi: oftAbi,
        functionName: 'balanceOf',
        args: [account.address],
      }),
    ).toBe(0n);
    expect(rec.history.map((h) => h.state)).toEqual(['planned', 'sent', 'verified', 'delivered']);
    expect(rec.guid).toBe(packet.guid);
    // Replaying the same packet is refused by the endpoint (already delivered).
    await expect(
      send(b, endpointB, endpointAbi, 'lzReceive', [origin, oftB, packet.guid, packet.message, '0x']),
    ).rejects.toThrow();
  });
});
