import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isVenueError, NotConfirmedError, type VenueError } from '@xhedge/venue';
import { type Address, custom, type Hex, http, parseTransaction } from 'viem';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ANVIL_DEV_KEYS } from './anvil.ts';
import { ensureAllowance } from './approvals.ts';
import { createEvmContext, type EvmContext } from './clients.ts';
import { rpc } from './deploy.ts';
import { type LocalTestChain, startLocalTestChain } from './testing.ts';
import { type SignedTxInfo, TxSender } from './tx.ts';

let chain: LocalTestChain;

/**
 * A context on the test chain whose requests go through `request` first; `forward` passes one to anvil
 * unchanged (the node as a real RPC answers it).
 */
function interceptedContext(
  request: (
    method: string,
    params: unknown,
    forward: () => Promise<unknown>,
    direct: { request: (a: { method: string; params?: unknown }) => Promise<unknown> },
  ) => Promise<unknown>,
): EvmContext {
  const direct = http(chain.anvil.rpcUrl)({ retryCount: 0 });
  const anvil = direct as unknown as {
    request: (a: { method: string; params?: unknown }) => Promise<unknown>;
  };
  return createEvmContext({
    venue: 'test-evm',
    chain: 'evm:31337',
    rpcUrls: [chain.anvil.rpcUrl],
    privateKey: ANVIL_DEV_KEYS[0],
    transport: custom(
      {
        request: ({ method, params }) =>
          request(method, params, () => anvil.request({ method, params }), anvil),
      },
      { retryCount: 0 },
    ),
    pollingIntervalMs: 50,
  });
}
let ctx: EvmContext;
let payee: Address;

beforeAll(async () => {
  chain = await startLocalTestChain('test-evm');
  ctx = chain.ctxFor(ANVIL_DEV_KEYS[0]);
  payee = chain.ctxFor(ANVIL_DEV_KEYS[1]).account.address;
  await chain.snapshot();
});
afterAll(async () => {
  await chain?.stop();
});
beforeEach(() => chain.fresh());

const transfer = () => ({ to: payee, data: '0x' as Hex, value: 1n });

async function until<T>(read: () => Promise<T | undefined> | T | undefined, what: string): Promise<T> {
  for (let i = 0; i < 300; i++) {
    const v = await read();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const inMempool = (hash: Hex) =>
  until(
    () =>
      ctx.publicClient.getTransaction({ hash }).then(
        () => true,
        () => undefined,
      ),
    `${hash} in the mempool`,
  );

describe('TxSender safety', () => {
  it('status: a transaction mined right after a mempool-less node missed it is mined, not replaced', async () => {
    await rpc(ctx.publicClient, 'evm_setAutomine', [false]);
    const sender = new TxSender({ ctx, receiptTimeoutMs: 200 });
    const err = (await sender.send(transfer()).catch((e: unknown) => e)) as NotConfirmedError;
    expect(err).toBeInstanceOf(NotConfirmedError);
    const hash = err.details?.txHash as Hex;
    const nonce = err.details?.nonce as number;
    // A node that does not see the pending transaction (an Arbitrum full node has no mempool; a
    // load-balanced or fallback RPC may not have it) answers "not found"; the block with it comes next.
    let mined = false;
    const blind = interceptedContext(async (method, _params, forward, anvil) => {
      if (method === 'eth_getTransactionByHash' && !mined) {
        mined = true;
        await anvil.request({ method: 'evm_mine' });
        return null;
      }
      return forward();
    });
    const st = await new TxSender({ ctx: blind }).status(hash, nonce);
    expect(mined).toBe(true);
    // It was our transaction that took the nonce: "replaced" would mark the order failed and re-hedge it.
    expect(st.state).toBe('mined');
  });

  it('a send whose nonce is taken by another transaction does not return that one as its receipt', async () => {
    await rpc(ctx.publicClient, 'evm_setAutomine', [false]);
    const sender = new TxSender({ ctx, receiptTimeoutMs: 5_000 });
    let signed: SignedTxInfo | undefined;
    const sending = sender
      .send(transfer(), {
        onSigned: (i) => {
          signed = i;
        },
      })
      .catch((e: unknown) => e);
    const original = await until(() => signed, 'the send to be signed');
    await inMempool(original.hash);
    let cancelHash: Hex | undefined;
    const cancelling = sender.replace({ hash: original.hash, nonce: original.nonce }, 'cancel', {
      onSigned: (i) => {
        cancelHash = i.hash;
      },
    });
    await inMempool(await until(() => cancelHash, 'the cancel to be signed'));
    await rpc(ctx.publicClient, 'evm_mine');
    const cancel = await cancelling;
    expect(cancel.receipt.transactionHash).toBe(cancel.hash);
    const res = await sending;
    // The original was never mined: it must not come back as a success carrying the cancel's receipt.
    expect(res).toBeInstanceOf(NotConfirmedError);
    expect((res as NotConfirmedError).outcome).toBe('unknown');
    expect((res as NotConfirmedError).details).toMatchObject({
      txHash: original.hash,
      replacedBy: cancel.hash,
    });
  });

  it('a cancel on a chain whose gas estimate includes the L1 cost (Arbitrum) uses the estimate, not 21000', async () => {
    // An Arbitrum node folds the L1 data cost into gas: eth_estimateGas answers more than 21000 for a
    // plain transfer, and a transaction with less gas than that is refused as "intrinsic gas too low".
    const l1Gas = 40_000n;
    const arbLike = interceptedContext(async (method, params, forward) => {
      if (method === 'eth_estimateGas') return `0x${(BigInt((await forward()) as Hex) + l1Gas).toString(16)}`;
      if (method === 'eth_sendRawTransaction') {
        const tx = parseTransaction((params as [Hex])[0]);
        if ((tx.gas ?? 0n) < 21_000n + l1Gas)
          throw Object.assign(new Error('intrinsic gas too low'), { code: -32000 });
      }
      return forward();
    });
    await rpc(ctx.publicClient, 'evm_setAutomine', [false]);
    const sender = new TxSender({ ctx: arbLike, receiptTimeoutMs: 200 });
    const stuck = (await sender.send(transfer()).catch((e: unknown) => e)) as NotConfirmedError;
    expect(stuck).toBeInstanceOf(NotConfirmedError);
    const hash = stuck.details?.txHash as Hex;
    const nonce = stuck.details?.nonce as number;
    let cancelHash: Hex | undefined;
    let settled = false;
    const cancelling = sender
      .replace({ hash, nonce }, 'cancel', {
        timeoutMs: 5_000,
        onSigned: (i) => {
          cancelHash = i.hash;
        },
      })
      .finally(() => {
        settled = true;
      });
    // Mine once the cancel is in the mempool (unless the node refused it).
    await until(async () => {
      if (settled) return true;
      if (!cancelHash) return undefined;
      return (await ctx.publicClient.getTransaction({ hash: cancelHash }).catch(() => null))
        ? true
        : undefined;
    }, 'the cancel to reach the mempool or fail');
    if (!settled) await rpc(ctx.publicClient, 'evm_mine');
    const cancel = await cancelling;
    expect(cancel.receipt.status).toBe('success');
    const tx = await ctx.publicClient.getTransaction({ hash: cancel.hash });
    expect(tx.to?.toLowerCase()).toBe(ctx.account.address.toLowerCase());
    // The node's estimate for the self-transfer with the sender's usual 1.2x headroom.
    expect(tx.gas).toBe(((21_000n + l1Gas) * 120n) / 100n);
    expect((await sender.status(hash, nonce)).state).toBe('replaced');
  });

  it('a cancel never goes below 21000 gas, whatever the node estimates', async () => {
    const low = interceptedContext((method, _params, forward) =>
      method === 'eth_estimateGas' ? Promise.resolve('0x1') : forward(),
    );
    const sender = new TxSender({ ctx: low, receiptTimeoutMs: 5_000 });
    const nonce = await ctx.publicClient.getTransactionCount({ address: ctx.account.address });
    const cancel = await sender.replace({ hash: `0x${'22'.repeat(32)}`, nonce }, 'cancel');
    expect((await ctx.publicClient.getTransaction({ hash: cancel.hash })).gas).toBe(21_000n);
  });

  it('RPC failures before signing are venue errors without the RPC URL (its API key)', async () => {
    const secret = 'k3y-0f-th3-rpc-pr0v1d3r';
    let failing: string | undefined;
    const server: Server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => {
        body += c.toString();
      });
      req.on('end', async () => {
        const msg = JSON.parse(body) as { method: string };
        if (msg.method === failing) {
          res.writeHead(502).end('bad gateway');
          return;
        }
        const up = await fetch(chain.anvil.rpcUrl, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
        });
        res.writeHead(up.status, { 'content-type': 'application/json' }).end(await up.text());
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/rpc/${secret}`;
      const proxied = createEvmContext({
        venue: 'test-evm',
        chain: 'evm:31337',
        rpcUrls: [url],
        privateKey: ANVIL_DEV_KEYS[0],
        pollingIntervalMs: 50,
        requestTimeoutMs: 2_000,
      });
      const sender = new TxSender({ ctx: proxied });
      const check = (err: unknown, what: string) => {
        expect(isVenueError(err), `${what}: ${String(err)}`).toBe(true);
        const e = err as VenueError;
        expect(e.outcome, what).toBe('not-sent');
        const text = `${e.message} ${e.shortMessage} ${JSON.stringify(e.details ?? {})} ${String(e.cause ?? '')}`;
        expect(text, what).not.toContain(secret);
      };
      // The allowance read of an approval (reserveAndApprove, before an order is sent).
      failing = 'eth_call';
      check(
        await ensureAllowance(sender, {
          token: payee,
          spender: payee,
          amount: 1n,
          policy: { mode: 'exact' },
        }).catch((e: unknown) => e),
        'allowance read',
      );
      // The fee read of a send and of a replacement.
      failing = 'eth_getBlockByNumber';
      check(await sender.send(transfer()).catch((e: unknown) => e), 'send fees');
      check(
        await sender.replace({ hash: `0x${'11'.repeat(32)}`, nonce: 0 }, 'cancel').catch((e: unknown) => e),
        'replace fees',
      );
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
