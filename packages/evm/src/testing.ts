import type { Hex } from 'viem';
import { ANVIL_DEV_KEYS, type AnvilInstance, startAnvil } from './anvil.ts';
import { createEvmContext, type EvmContext } from './clients.ts';
import { revertTo, rpc, snapshot } from './deploy.ts';

/** A throwaway anvil chain for tests, with contexts per dev key and snapshot/revert between tests. */
export interface LocalTestChain {
  anvil: AnvilInstance;
  /** A context signing with `key` (fast 50 ms polling). */
  ctxFor(key: Hex): EvmContext;
  /** Takes the baseline that {@link LocalTestChain.fresh} returns to (call after deploying fixtures). */
  snapshot(): Promise<void>;
  /** Back to the baseline with automine on; re-snapshots, since anvil consumes a snapshot on revert. */
  fresh(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts anvil and returns a {@link LocalTestChain}; `venue` labels the contexts (and their errors). */
export async function startLocalTestChain(venue: string): Promise<LocalTestChain> {
  const anvil = await startAnvil();
  const ctxFor = (key: Hex) =>
    createEvmContext({
      venue,
      chain: 'evm:31337',
      rpcUrls: [anvil.rpcUrl],
      privateKey: key,
      pollingIntervalMs: 50,
    });
  const client = ctxFor(ANVIL_DEV_KEYS[0]).publicClient;
  let snap: Hex | undefined;
  return {
    anvil,
    ctxFor,
    async snapshot() {
      snap = await snapshot(client);
    },
    async fresh() {
      if (snap === undefined) throw new Error('LocalTestChain.fresh() before snapshot()');
      await revertTo(client, snap);
      snap = await snapshot(client);
      await rpc(client, 'evm_setAutomine', [true]);
    },
    stop: () => anvil.stop(),
  };
}
