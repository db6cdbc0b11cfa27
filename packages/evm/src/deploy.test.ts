import { createPublicClient, createWalletClient, custom, type Hex, http, type PublicClient } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANVIL_DEV_KEYS, type AnvilInstance, startAnvil } from './anvil.ts';
import { rpc, sendFixtureTransaction } from './deploy.ts';

// A contract whose every call is `sstore(0, 1)`: cheap while slot 0 already holds 1 (a no-op write),
// about 20,000 gas dearer when it holds 0. Init code copies the 6-byte runtime and returns it.
const RUNTIME = '600160005500';
const INIT = `0x6006600c60003960066000f3${RUNTIME}` as Hex;
const SLOT0 = `0x${'0'.repeat(64)}` as Hex;
const word = (n: number) => `0x${n.toString(16).padStart(64, '0')}` as Hex;

let anvil: AnvilInstance;
let pub: PublicClient;
beforeAll(async () => {
  anvil = await startAnvil();
  pub = createPublicClient({ chain: foundry, transport: http(anvil.rpcUrl), pollingInterval: 50 });
});
afterAll(async () => {
  await anvil?.stop();
});

describe('sendFixtureTransaction', () => {
  it('a call made dearer between its estimate and its block (a concurrent write) still succeeds', async () => {
    const account = privateKeyToAccount(ANVIL_DEV_KEYS[0]);
    let target: Hex | undefined;
    // The node as a concurrent transaction would leave it: slot 0 cleared right when our transaction
    // reaches the node, after its gas was estimated on a slot that held 1.
    const transport = custom({
      async request({ method, params }) {
        if (method === 'eth_sendRawTransaction' && target)
          await rpc(pub, 'anvil_setStorageAt', [target, SLOT0, word(0)]);
        return pub.request({ method, params } as never);
      },
    });
    const wallet = createWalletClient({ account, chain: foundry, transport });
    const deployed = await pub.waitForTransactionReceipt({
      hash: await wallet.sendTransaction({ data: INIT }),
    });
    const at = deployed.contractAddress as Hex;
    const reset = () => rpc(pub, 'anvil_setStorageAt', [at, SLOT0, word(1)]);
    target = at;

    // the hazard: a plain send, with the node's exact estimate, runs out of gas
    await reset();
    const plain = await pub.waitForTransactionReceipt({
      hash: await wallet.sendTransaction({ to: at, data: '0x' }),
    });
    expect(plain.status).toBe('reverted');
    expect(plain.gasUsed).toBe((await pub.getTransaction({ hash: plain.transactionHash })).gas);

    // the fixture's send leaves room for it
    await reset();
    await sendFixtureTransaction({ walletClient: wallet as never, publicClient: pub as never }, at, '0x');
    expect(await pub.getStorageAt({ address: at, slot: SLOT0 })).toBe(word(1));
  });
});
