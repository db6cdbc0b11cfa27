import { isVenueError, type VenueError } from '@xhedge/venue';
import { type Address, type Hex, RpcRequestError } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANVIL_DEV_KEYS } from './anvil.ts';
import { ensureAllowance } from './approvals.ts';
import { createEvmContext, type EvmContext } from './clients.ts';
import { rpc } from './deploy.ts';
import { toVenueError } from './errors.ts';
import { l1DataFeeModel } from './gas.ts';
import { venueErrorMapper, walletBalances } from './onchain-orders.ts';
import {
  everythingIn,
  type FaultyRpc,
  type LocalTestChain,
  type RpcFault,
  startFaultyRpc,
  startLocalTestChain,
} from './testing.ts';
import { TxSender } from './tx.ts';

let chain: LocalTestChain;
let faulty: FaultyRpc;
let ctx: EvmContext;
let payee: Address;

beforeAll(async () => {
  chain = await startLocalTestChain('test-evm');
  faulty = await startFaultyRpc(chain.anvil.rpcUrl);
  ctx = createEvmContext({
    venue: 'test-evm',
    chain: 'evm:31337',
    rpcUrls: [faulty.url],
    privateKey: ANVIL_DEV_KEYS[0],
    pollingIntervalMs: 50,
    requestTimeoutMs: 300,
  });
  payee = chain.ctxFor(ANVIL_DEV_KEYS[1]).account.address;
});
afterAll(async () => {
  await faulty?.close();
  await chain?.stop();
});

/** No part of the RPC URL's userinfo, path or query anywhere in the error or its cause chain. */
function expectNoSecrets(err: unknown, what: string): void {
  expect(err, what).toBeInstanceOf(Error);
  const text = everythingIn(err);
  for (const s of faulty.secrets) expect(text, `${what}: ${text}`).not.toContain(s);
}

/** A venue error whose code says what went wrong (retryable: the RPC may answer next time). */
function expectMapped(err: unknown, fault: RpcFault, what: string): void {
  expectNoSecrets(err, what);
  expect(isVenueError(err), `${what}: ${String(err)}`).toBe(true);
  const e = err as VenueError;
  expect(e.code, what).toBe(fault === 'hang' ? 'VENUE_TIMEOUT' : 'VENUE_NETWORK');
  expect(e.retryable, what).toBe(true);
}

const fail = async <T>(p: Promise<T>, what = ''): Promise<unknown> => {
  const r = await p.then(
    (v) => ({ ok: true as const, v }),
    (e: unknown) => ({ ok: false as const, e }),
  );
  if (r.ok) throw new Error(`${what}: expected a failure, got ${String(r.v)}`);
  return r.e;
};

const hash: Hex = `0x${'ab'.repeat(32)}`;

describe.each(['500', 'hang', 'close'] as const)(
  'an RPC URL with an API key, the RPC failing (%s)',
  (fault) => {
    it('the bare clients: viem errors of every kind of read and write carry no part of the URL', async () => {
      faulty.fail(fault);
      try {
        expectNoSecrets(await fail(ctx.publicClient.getBalance({ address: payee })), 'getBalance');
        expectNoSecrets(await fail(ctx.publicClient.getBlock({ blockTag: 'latest' })), 'getBlock');
        expectNoSecrets(
          await fail(ctx.publicClient.call({ account: ctx.account.address, to: payee, data: '0x' })),
          'call',
        );
        expectNoSecrets(
          await fail(ctx.walletClient.sendTransaction({ to: payee, value: 1n, gas: 21_000n })),
          'sendTransaction',
        );
        expectNoSecrets(await fail(rpc(ctx.publicClient, 'evm_mine')), 'rpc()');
      } finally {
        faulty.fail(undefined);
      }
    });

    it('TxSender and the shared helpers throw venue errors that keep their code and hide the URL', async () => {
      const sender = new TxSender({ ctx, receiptTimeoutMs: 2_000 });
      const errors = venueErrorMapper('test-evm', [], ctx);
      const cases: [string, readonly string[] | undefined, () => Promise<unknown>][] = [
        // status(): the receipt and transaction lookups answer "not found", the nonce read fails.
        ['status nonce read', ['eth_getTransactionCount'], () => sender.status(hash, 0)],
        ['status receipt read', undefined, () => sender.status(hash, 0)],
        ['nonces', undefined, () => sender.nonces()],
        ['minedAtNonce', undefined, () => sender.minedAtNonce(0)],
        // estimateCost: the fee reads, then the L1 fee read (an OP Stack oracle read).
        [
          'estimateCost fees',
          ['eth_getBlockByNumber'],
          () => sender.estimateCost({ to: payee, data: '0x' }, 3000, 21_000n),
        ],
        [
          'estimateCost priority fee',
          ['eth_maxPriorityFeePerGas', 'eth_gasPrice', 'eth_feeHistory'],
          () => sender.estimateCost({ to: payee, data: '0x' }, 3000, 21_000n),
        ],
        [
          'estimateCost L1 fee',
          ['eth_call'],
          () =>
            new TxSender({ ctx, l1FeeModel: l1DataFeeModel('op-stack', ctx.publicClient) }).estimateCost(
              { to: payee, data: '0x' },
              3000,
              21_000n,
            ),
        ],
        ['estimateCost gas', ['eth_estimateGas'], () => sender.estimateCost({ to: payee, data: '0x' }, 3000)],
        ['simulate', undefined, () => sender.simulate({ to: payee, data: '0x' })],
        ['send', undefined, () => sender.send({ to: payee, data: '0x', value: 1n })],
        ['replace', undefined, () => sender.replace({ hash, nonce: 0 }, 'cancel')],
        [
          'allowance',
          undefined,
          () =>
            ensureAllowance(sender, { token: payee, spender: payee, amount: 1n, policy: { mode: 'exact' } }),
        ],
        [
          'balances',
          undefined,
          () =>
            walletBalances(ctx, errors, {
              venue: 'test-evm',
              chain: 'evm:31337',
              token: payee,
              decimals: 6,
              symbol: 'USDC',
              now: () => 0,
            }),
        ],
      ];
      for (const [what, methods, run] of cases) {
        faulty.fail(fault, methods);
        try {
          const err = await fail(run(), what);
          expectMapped(err, fault, what);
          // reads about a signed transaction: a failure is outcome unknown, never not-sent (the worker
          // would send the order again, or record it as never at the venue)
          if (what.startsWith('status') || what === 'minedAtNonce')
            expect((err as VenueError).outcome, what).toBe('unknown');
        } finally {
          faulty.fail(undefined);
        }
      }
    });
  },
);

describe('call-site mapping', () => {
  it('scrubs the parts of the RPC URL a node echoes in its error, in any form', () => {
    const bare = new URL(faulty.url);
    bare.username = '';
    bare.password = '';
    // viem's http client names the URL without its credentials; a node's message may quote its path.
    const err = new RpcRequestError({
      body: { method: 'eth_sendRawTransaction' },
      error: { code: -32000, message: `nonce too low (${bare.pathname}${bare.search})` },
      url: bare.toString(),
    });
    const e = toVenueError(err, { venue: 'test-evm', secrets: ctx.secrets });
    expect(e.code).toBe('VENUE_NONCE');
    for (const s of faulty.secrets) expect(everythingIn(e)).not.toContain(s);
  });
});
