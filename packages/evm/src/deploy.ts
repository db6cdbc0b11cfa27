import type { Abi, Address, Hex, PublicClient } from 'viem';
import type { EvmContext } from './clients.ts';
import type { CompiledContract } from './solc.ts';

/** Deploys a compiled contract from the context's account and waits for its address (local chains, fixtures). */
export async function deployContract(
  ctx: Pick<EvmContext, 'walletClient' | 'publicClient'>,
  compiled: CompiledContract,
  args: readonly unknown[] = [],
): Promise<Address> {
  const hash = await ctx.walletClient.deployContract({
    abi: compiled.abi as Abi,
    bytecode: compiled.bytecode,
    args: args as unknown[],
  });
  const receipt = await ctx.publicClient.waitForTransactionReceipt({ hash });
  if (!receipt.contractAddress || receipt.status !== 'success') {
    throw new Error(`deployment ${hash} failed (${receipt.status})`);
  }
  return receipt.contractAddress;
}

/**
 * Sends a set-up call from the context's account (local chains, fixtures) and waits for it to succeed.
 * Its gas limit is twice the node's estimate: an estimate is exact for the state it ran on, and a
 * concurrent transaction (a keeper run, a price set in the same second) can make the call dearer by
 * the time it is mined, which would revert it out of gas. A revert names the block, the gas used
 * against the limit and the selector.
 */
export async function sendFixtureTransaction(
  ctx: Pick<EvmContext, 'walletClient' | 'publicClient'>,
  to: Address,
  data: Hex,
): Promise<void> {
  const account = ctx.walletClient.account;
  if (!account) throw new Error('sendFixtureTransaction: the wallet client has no account');
  const estimate = await ctx.publicClient.estimateGas({ account, to, data });
  const gas = estimate * 2n;
  const hash = await ctx.walletClient.sendTransaction({
    account,
    chain: ctx.walletClient.chain,
    to,
    data,
    gas,
  });
  const r = await ctx.publicClient.waitForTransactionReceipt({ hash });
  if (r.status !== 'success')
    throw new Error(
      `fixture transaction to ${to} reverted (block ${r.blockNumber}, gas used ${r.gasUsed} of ${gas}, selector ${data.slice(0, 10)})`,
    );
}

/** Sends a JSON-RPC method that viem has no typed action for (anvil_*, evm_*), returning its raw result. */
export function rpc<T = unknown>(
  client: PublicClient,
  method: string,
  params: readonly unknown[] = [],
): Promise<T> {
  return client.request({ method: method as 'eth_chainId', params: params as never }) as Promise<T>;
}

/** anvil/hardhat snapshot id, to revert between tests. */
export async function snapshot(client: PublicClient): Promise<Hex> {
  return rpc<Hex>(client, 'evm_snapshot');
}

/** Reverts to a snapshot; anvil consumes the id, so take a fresh one after. */
export async function revertTo(client: PublicClient, id: Hex): Promise<void> {
  const ok = await rpc<boolean>(client, 'evm_revert', [id]);
  if (!ok) throw new Error(`evm_revert(${id}) failed`);
}
