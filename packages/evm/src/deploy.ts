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
