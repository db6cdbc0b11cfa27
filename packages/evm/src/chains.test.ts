import type { ChainId } from '@xhedge/core';
import {
  type Address,
  custom,
  encodeAbiParameters,
  type Hex,
  http,
  parseAbiParameters,
  type Transport,
} from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANVIL_DEV_KEYS, type AnvilInstance, startAnvil } from './anvil.ts';
import { evmChainProfile } from './chains.ts';
import { createEvmContext, type EvmContext } from './clients.ts';
import { deployContract, rpc } from './deploy.ts';
import { ChainIdMismatchError } from './errors.ts';
import { ARB_NODE_INTERFACE, OP_GAS_PRICE_ORACLE, readFees } from './gas.ts';
import { venueErrorMapper } from './onchain-orders.ts';
import { compileSolidity, EVM_TEST_CONTRACTS_URL } from './solc.ts';
import { TxSender } from './tx.ts';

const anvils: Record<string, AnvilInstance> = {};
const payee: Address = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8';
const transfer = { to: payee, data: '0x12345678' as Hex, value: 1n };

beforeAll(async () => {
  const ids = { arbitrum: 42161, base: 8453, mainnet: 1, other: 1337 };
  await Promise.all(
    Object.entries(ids).map(async ([name, chainId]) => {
      anvils[name] = await startAnvil({ chainId });
    }),
  );
});
afterAll(async () => {
  await Promise.all(Object.values(anvils).map((a) => a.stop()));
});

function ctxOn(anvil: AnvilInstance, chain: ChainId, transport?: Transport): EvmContext {
  return createEvmContext({
    venue: 'test-evm',
    chain,
    rpcUrls: [anvil.rpcUrl],
    privateKey: ANVIL_DEV_KEYS[0],
    pollingIntervalMs: 50,
    ...(transport ? { transport } : {}),
  });
}

/** Base + priority fee: what `txCost` prices gas at (no block is mined between this read and the quote). */
async function pricePerGas(ctx: EvmContext): Promise<bigint> {
  const f = await readFees(ctx.publicClient);
  return f.baseFeePerGas + f.maxPriorityFeePerGas;
}

describe('chain families', () => {
  it('classifies the L1 data fee of each supported chain', () => {
    const kind = (c: ChainId) => evmChainProfile(c).l1DataFee;
    for (const c of ['evm:42161', 'evm:421614', 'evm:42170'] as const) expect(kind(c), c).toBe('arbitrum');
    for (const c of ['evm:10', 'evm:8453', 'evm:11155420', 'evm:84532'] as const) {
      expect(kind(c), c).toBe('op-stack');
    }
    expect(kind('evm:1')).toBe('none');
    expect(kind('evm:31337')).toBe('fixed-per-byte');
    expect(evmChainProfile('evm:8453').chain.id).toBe(8453);
  });
});

describe('estimateCost per chain family', () => {
  it('Arbitrum: the gas estimate already includes the L1 component, so it is not added again', async () => {
    // An Arbitrum node: eth_estimateGas includes the L1 posting cost as gas, and NodeInterface
    // (0xC8) reports that part (gasEstimateL1Component).
    const l1Gas = 50_000n;
    const l2BaseFee = 1_000_000_000n;
    const direct = http(anvils.arbitrum!.rpcUrl)({ retryCount: 0 });
    const arb = custom(
      {
        async request({ method, params }) {
          if (method === 'eth_estimateGas') {
            const l2 = BigInt((await direct.request({ method, params })) as Hex);
            return `0x${(l2 + l1Gas).toString(16)}`;
          }
          const call = (params as [{ to?: string }] | undefined)?.[0];
          if (method === 'eth_call' && call?.to?.toLowerCase() === ARB_NODE_INTERFACE.toLowerCase()) {
            return encodeAbiParameters(parseAbiParameters('uint64, uint256, uint256'), [
              l1Gas,
              l2BaseFee,
              30_000_000_000n,
            ]);
          }
          return direct.request({ method, params });
        },
      },
      { retryCount: 0 },
    );
    const ctx = ctxOn(anvils.arbitrum!, 'evm:42161', arb);
    const sender = new TxSender({ ctx });
    expect(sender.l1FeeModel.kind).toBe('arbitrum');
    const price = await pricePerGas(ctx);
    const l2Gas = await http(anvils.arbitrum!.rpcUrl)({ retryCount: 0 }).request({
      method: 'eth_estimateGas',
      params: [{ from: ctx.account.address, to: payee, data: transfer.data, value: '0x1' }],
    });
    const cost = await sender.estimateCost(transfer, 3000);
    expect(cost.gasLimit).toBe(BigInt(l2Gas as Hex) + l1Gas);
    // All-in cost = the (L1-inclusive) gas at the gas price; the L1 part is a share of it, not extra.
    expect(cost.totalWei).toBe(cost.gasLimit * price);
    expect(cost.l1DataWei).toBe(l1Gas * l2BaseFee);
    expect(cost.executionWei).toBe(cost.totalWei - cost.l1DataWei);
    // A caller's gas limit is Arbitrum gas too (receipts' gasUsed include the L1 part): same rule.
    const fixed = await sender.estimateCost(transfer, 3000, 600_000n);
    expect(fixed.totalWei).toBe(600_000n * price);
    expect(fixed.executionWei + fixed.l1DataWei).toBe(fixed.totalWei);
  });

  it('OP Stack (Base): the L1 fee from GasPriceOracle.getL1Fee is added on top of gas', async () => {
    const ctx = ctxOn(anvils.base!, 'evm:8453');
    const contracts = compileSolidity({ 'TestToken.sol': EVM_TEST_CONTRACTS_URL });
    const fake = await deployContract(ctx, contracts.FakeGasPriceOracle!);
    const code = await ctx.publicClient.getCode({ address: fake });
    await rpc(ctx.publicClient, 'anvil_setCode', [OP_GAS_PRICE_ORACLE, code]);
    const sender = new TxSender({ ctx });
    expect(sender.l1FeeModel.kind).toBe('op-stack');
    const price = await pricePerGas(ctx);
    const cost = await sender.estimateCost(transfer, 3000);
    expect(cost.executionWei).toBe(cost.gasLimit * price);
    expect(cost.l1DataWei).toBeGreaterThan(68n * 16n * 1_000_000_000n);
    expect(cost.totalWei).toBe(cost.executionWei + cost.l1DataWei);
  });

  it('Ethereum L1: no L1 data fee', async () => {
    const ctx = ctxOn(anvils.mainnet!, 'evm:1');
    const sender = new TxSender({ ctx });
    expect(sender.l1FeeModel.kind).toBe('none');
    const price = await pricePerGas(ctx);
    const cost = await sender.estimateCost(transfer, 3000);
    expect(cost.l1DataWei).toBe(0n);
    expect(cost.totalWei).toBe(cost.gasLimit * price);
  });
});

describe('chain id of the RPC', () => {
  const secret = 'k3y-0f-th3-rpc-pr0v1d3r';
  const expectMismatch = (err: unknown, rpcChainId: number) => {
    expect(err, String(err)).toBeInstanceOf(ChainIdMismatchError);
    const e = err as ChainIdMismatchError;
    expect(e.code).toBe('VENUE_MISCONFIGURED');
    expect(e.outcome).toBe('not-sent');
    expect(e.retryable).toBe(false);
    expect(e.message).toContain('test-evm');
    expect(e.message).toContain('31337');
    expect(e.message).toContain(String(rpcChainId));
    expect(`${e.message} ${JSON.stringify(e.details)}`).not.toContain(secret);
    expect(e.message).not.toContain('127.0.0.1');
  };

  it('refuses to send or read through an RPC of another chain, naming venue and ids but not the URL', async () => {
    const other = anvils.other!;
    const ctx = createEvmContext({
      venue: 'test-evm',
      chain: 'evm:31337',
      rpcUrls: [`${other.rpcUrl}/?apikey=${secret}`],
      privateKey: ANVIL_DEV_KEYS[0],
      pollingIntervalMs: 50,
    });
    const sender = new TxSender({ ctx });
    expectMismatch(await sender.send(transfer).catch((e: unknown) => e), 1337);
    // Reads: the adapters' mapped reads and the bare client (viem wraps it; the cause is the mismatch).
    const errors = venueErrorMapper('test-evm', [], ctx);
    expectMismatch(
      await errors.read(() => ctx.publicClient.getBalance({ address: payee })).catch((e: unknown) => e),
      1337,
    );
    expectMismatch(
      errors.wrap(
        await ctx.publicClient
          .readContract({
            address: payee,
            abi: [{ type: 'function', name: 'x', inputs: [], outputs: [], stateMutability: 'view' }],
            functionName: 'x',
          })
          .catch((e: unknown) => e),
      ),
      1337,
    );
    // Nothing reached the other chain.
    const direct = createEvmContext({
      venue: 'test-evm',
      chain: 'evm:1337',
      rpcUrls: [other.rpcUrl],
      privateKey: ANVIL_DEV_KEYS[0],
    });
    expect(await direct.publicClient.getTransactionCount({ address: direct.account.address })).toBe(0);
  });

  it('checks every fallback RPC before using it, and a wrong one fails rather than being skipped', async () => {
    const ctx = createEvmContext({
      venue: 'test-evm',
      chain: 'evm:31337',
      // The first is down; the fallback serves chain 1337.
      rpcUrls: ['http://127.0.0.1:1', `${anvils.other!.rpcUrl}/?apikey=${secret}`],
      privateKey: ANVIL_DEV_KEYS[0],
      requestTimeoutMs: 2_000,
    });
    const err = await ctx.publicClient.getBlockNumber().catch((e: unknown) => e);
    const mapped = venueErrorMapper('test-evm', [], ctx).wrap(err);
    expectMismatch(mapped, 1337);
    expect(mapped.details).toMatchObject({ rpcIndex: 1 });
  });

  it('asks the chain id once per RPC, before its first request, shared by the public and wallet clients', async () => {
    const direct = http(anvils.mainnet!.rpcUrl)({ retryCount: 0 });
    const methods: string[] = [];
    const counting = custom(
      {
        request({ method, params }) {
          methods.push(method);
          return direct.request({ method, params });
        },
      },
      { retryCount: 0 },
    );
    const ctx = ctxOn(anvils.mainnet!, 'evm:1', counting);
    await ctx.publicClient.getBlockNumber();
    await ctx.publicClient.getBalance({ address: payee });
    await ctx.walletClient.request({
      method: 'eth_estimateGas',
      params: [{ from: ctx.account.address, to: payee }],
    });
    expect(methods[0]).toBe('eth_chainId');
    expect(methods.filter((m) => m === 'eth_chainId')).toHaveLength(1);
    expect(methods).toContain('eth_getBalance');
    expect(methods).toContain('eth_estimateGas');
  });
});
