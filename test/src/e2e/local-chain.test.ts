import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type LocalChain, startLocalChain } from '@xhedge/cli';
import { parseConfig, type XhedgeConfig } from '@xhedge/config';
import { type Run, startRun } from '@xhedge/runtime';
import type { LedgerOrder } from '@xhedge/store';
import { parseGmxEvents, readerAbi } from '@xhedge/venue-gmx';
import { pino } from 'pino';
import { createPublicClient, erc20Abi, http } from 'viem';
import { afterAll, describe, expect, it } from 'vitest';
import { waitFor } from './wait.ts';

/**
 * `pnpm start --config configs/profiles/local-chains.yaml` against `xhedge local-chain up`, in one test:
 * the same chain startup (anvil, both contract systems, the seeded book of short calls, the GMX keeper),
 * on a free port, and the real profile with its RPC and addresses rewritten to that chain. The hedge
 * must show up twice: filled in xhedge's ledger, and as OrderExecuted events and GMX positions on chain.
 * Prices stay put (no walk), so the book and the hedge are the same on every run.
 */
const PROFILE = readFileSync(new URL('../../../configs/profiles/local-chains.yaml', import.meta.url), 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'xhedge-local-chain-'));
let chain: LocalChain | undefined;
let run: Run | undefined;
const logs: string[] = [];

afterAll(async () => {
  await run?.stop();
  await chain?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** The profile on chain `c`; each `run` its own name and data folder (ledger, tokens). */
function profileFor(c: LocalChain, run = 'live'): XhedgeConfig {
  const config = parseConfig(
    PROFILE.replace(/^name: .*$/m, `name: local-chain-e2e-${run}-${process.pid}`)
      .replace(/^dataDir: .*$/m, `dataDir: ${join(dir, `data-${run}`)}`)
      // Ticks every second instead of every 5 s: same decisions, a shorter test.
      .replace(/^ {2}tickIntervalMs: .*$/m, '  tickIntervalMs: 1000'),
    'local-chains.yaml',
  );
  for (const v of config.venues) {
    v.endpoints.rpc = [c.info.rpcUrl];
    // Fresh chains get the same addresses (fixed deployer and order); take them from the chain anyway,
    // so a change in the deployment shows up as a failing hedge check rather than a silent mismatch.
    if (v.kind === 'lyra') v.params = { ...v.params, ...c.info.lyra };
    if (v.kind === 'gmx') v.params = { ...v.params, ...c.info.gmx };
  }
  return config;
}

const until = <T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number) =>
  waitFor(what, fn, { timeoutMs, context: () => `run log:\n${logs.slice(-30).join('\n')}` });

/** Waits for a snapshot of the run's book inside the profile's bands (ETH ±0.5, BTC ±0.05). */
const insideBands = (what: string) =>
  until(
    what,
    async () => {
      const s = run?.planner?.lastSnapshot;
      const eth = s?.underlyings.ETH?.delta;
      const btc = s?.underlyings.BTC?.delta;
      return eth !== undefined && btc !== undefined && Math.abs(eth) < 0.5 && Math.abs(btc) < 0.05
        ? true
        : undefined;
    },
    10_000,
  );

describe('the local-chains profile against `xhedge local-chain up`', () => {
  it('hedges the seeded short calls with GMX perps that the keeper executes on chain', async () => {
    chain = await startLocalChain({ keeperIntervalMs: 250, priceStepSeconds: 0 });
    const { info } = chain;
    expect(info.lyra.markets.map((m) => m.underlying).sort()).toEqual(['BTC', 'ETH']);
    const config = profileFor(chain);
    // a short settle, so the drop-copy check compares within the test's time
    config.dropCopy = { ...config.dropCopy, settleSeconds: 1, intervalSeconds: 0 };

    run = await startRun({
      config,
      env: { XHEDGE_LOCAL_KEY: chain.hedgingKey },
      port: 0,
      logger: pino({ level: 'info' }, { write: (line: string) => void logs.push(line.trimEnd()) }),
    });
    expect(run.venues.map((v) => v.id)).toEqual(['lyra-local', 'gmx-local']);
    // A local dev chain holds nothing of value: the admin token is generated as on paper.
    expect(run.admin?.source).toBe('generated');
    const apiUrl = run.apiUrl ?? '';
    await until(
      'readiness',
      async () => ((await fetch(`${apiUrl}/v1/ready`)).status === 200 ? true : undefined),
      20_000,
    );

    // The book, read from the chain: 10 short ETH calls and 1 short BTC call at the money.
    const book = await until('a snapshot', async () => run?.planner?.lastSnapshot, 10_000);
    const ethDelta0 = book.underlyings.ETH?.delta ?? Number.NaN;
    const btcDelta0 = book.underlyings.BTC?.delta ?? Number.NaN;
    // Short ATM calls: delta about −0.5 per option. The wallet's 10,000 ETH of gas is not book delta.
    expect(ethDelta0).toBeLessThan(-3);
    expect(ethDelta0).toBeGreaterThan(-7);
    expect(btcDelta0).toBeLessThan(-0.3);
    expect(btcDelta0).toBeGreaterThan(-0.7);

    // Both underlyings hedged with perps, filled in the ledger.
    const filled = await until(
      'both hedges filled in the ledger',
      async () => {
        const orders = (await run?.ledger.listOrders({ venue: 'gmx-local', limit: 50 })) ?? [];
        const done = orders.filter((o) => o.status === 'filled');
        const eth = done.find((o) => o.instrument === 'ETH-USD:PERP');
        const btc = done.find((o) => o.instrument === 'BTC-USD:PERP');
        return eth && btc ? { eth, btc, all: orders } : undefined;
      },
      45_000,
    );
    for (const o of [filled.eth, filled.btc]) {
      expect(o.side).toBe('buy');
      expect(o.filledSizeBase).toBe(o.sizeBase);
      expect(o.venueOrderId).toMatch(/^0x[0-9a-f]{64}$/);
      const fills = (await run.ledger.listFills({ clientOrderId: o.clientOrderId })) ?? [];
      expect(fills.reduce((s, f) => s + Number(f.sizeBase), 0)).toBeCloseTo(Number(o.sizeBase), 9);
    }
    // One hedge per underlying: nothing was sent twice while the keeper was executing.
    expect(filled.all.filter((o) => o.status !== 'filled').map((o) => `${o.instrument} ${o.status}`)).toEqual(
      [],
    );
    expect(Number(filled.eth.sizeBase)).toBeCloseTo(-ethDelta0, 1);
    expect(Number(filled.btc.sizeBase)).toBeCloseTo(-btcDelta0, 2);

    // The chain agrees: the EventEmitter's OrderExecuted events (EventLog2, topic1 = order key) carry the
    // ledger's order keys, and the hedging
    // account holds long positions of exactly the filled sizes.
    const client = createPublicClient({ transport: http(info.rpcUrl), cacheTime: 0 });
    const executed = parseGmxEvents(
      await client.getLogs({ address: info.gmx.eventEmitter, fromBlock: 0n }),
      info.gmx.eventEmitter,
      ['OrderExecuted'],
    );
    const keys = (o: LedgerOrder) => executed.filter((e) => e.topic1 === o.venueOrderId);
    for (const o of [filled.eth, filled.btc]) {
      expect(keys(o)).toHaveLength(1);
      expect(keys(o)[0]?.items.address.get('account')?.toLowerCase()).toBe(info.hedgingAccount.toLowerCase());
    }
    expect(
      chain.keeperResults
        .filter((r) => r.outcome === 'executed')
        .map((r) => r.key)
        .sort(),
    ).toEqual([filled.eth.venueOrderId, filled.btc.venueOrderId].sort());
    const positions = await client.readContract({
      address: info.gmx.reader,
      abi: readerAbi,
      functionName: 'getAccountPositions',
      args: [info.gmx.dataStore, info.hedgingAccount, 0n, 100n],
    });
    const markets = await client.readContract({
      address: info.gmx.reader,
      abi: readerAbi,
      functionName: 'getMarkets',
      args: [info.gmx.dataStore, 0n, 100n],
    });
    const onChain: Record<string, number> = {};
    for (const p of positions) {
      const m = markets.find((x) => x.marketToken.toLowerCase() === p.addresses.market.toLowerCase());
      if (!m) throw new Error(`position in unknown market ${p.addresses.market}`);
      const [symbol, decimals] = await Promise.all([
        client.readContract({ address: m.indexToken, abi: erc20Abi, functionName: 'symbol' }),
        client.readContract({ address: m.indexToken, abi: erc20Abi, functionName: 'decimals' }),
      ]);
      const size = Number(p.numbers.sizeInTokens) / 10 ** decimals;
      const u = symbol.replace(/^W/, '');
      onChain[u] = (onChain[u] ?? 0) + (p.flags.isLong ? size : -size);
    }
    expect(onChain.ETH).toBeCloseTo(Number(filled.eth.filledSizeBase), 9);
    expect(onChain.BTC).toBeCloseTo(Number(filled.btc.filledSizeBase), 9);

    // After the hedge the book is inside its bands (ETH ±0.5, BTC ±0.05) and nothing more is planned.
    await insideBands('a snapshot after the fills');
    expect((await run.ledger.listOrders({ limit: 50 })).length).toBe(filled.all.length);
    // The drop-copy check read the same sizes off the chain as our fills explain: each perp hedged is
    // baselined at its on-chain size, and no break was opened.
    const baselines = await until(
      'drop-copy baselines of both perps',
      async () => {
        const b = await run?.ledger.positionBaselines('gmx-local');
        return b && b.filter((x) => x.sizeBase !== undefined).length === 2 ? b : undefined;
      },
      20_000,
    );
    expect(Number(baselines.find((b) => b.instrument === 'ETH-USD:PERP')?.sizeBase)).toBeCloseTo(
      onChain.ETH ?? 0,
      9,
    );
    expect(Number(baselines.find((b) => b.instrument === 'BTC-USD:PERP')?.sizeBase)).toBeCloseTo(
      onChain.BTC ?? 0,
      9,
    );
    expect(await run.ledger.openPositionBreaks()).toEqual([]);

    // Everything stops: the runtime, then the keeper and anvil (its process gone).
    await run.stop();
    run = undefined;
    const pid = chain.anvilPid;
    await chain.stop();
    chain = undefined;
    expect(() => process.kill(pid, 0)).toThrow();
  }, 90_000);

  it('dry run: the same hedges fill in xhedge at the venue quotes, and not one transaction leaves the account', async () => {
    chain = await startLocalChain({ keeperIntervalMs: 250, priceStepSeconds: 0 });
    const { info } = chain;
    const client = createPublicClient({ transport: http(info.rpcUrl), cacheTime: 0 });
    const nonce0 = await client.getTransactionCount({ address: info.hedgingAccount });
    run = await startRun({
      config: profileFor(chain, 'dry'),
      dryRun: true,
      env: { XHEDGE_LOCAL_KEY: chain.hedgingKey },
      port: 0,
      logger: pino({ level: 'info' }, { write: (line: string) => void logs.push(line.trimEnd()) }),
    });
    expect(
      run.describe().some((l) => /DRY RUN {2}orders to lyra-local, gmx-local are simulated/.test(l)),
    ).toBe(true);
    const filled = await until(
      'both dry-run hedges filled in the ledger',
      async () => {
        const orders = (await run?.ledger.listOrders({ venue: 'gmx-local', limit: 50 })) ?? [];
        const done = orders.filter((o) => o.status === 'filled');
        const eth = done.find((o) => o.instrument === 'ETH-USD:PERP');
        const btc = done.find((o) => o.instrument === 'BTC-USD:PERP');
        return eth && btc ? { eth, btc } : undefined;
      },
      45_000,
    );
    for (const o of [filled.eth, filled.btc]) {
      expect(o.venueOrderId).toMatch(/^dry-\d+$/);
      expect(o.filledSizeBase).toBe(o.sizeBase);
    }
    // The simulated positions count: the book comes inside its bands and nothing more is planned.
    await insideBands('a snapshot inside the bands after the dry-run fills');
    const orders = await run.ledger.listOrders({ limit: 50 });
    expect(orders.map((o) => `${o.instrument} ${o.status}`).sort()).toEqual([
      'BTC-USD:PERP filled',
      'ETH-USD:PERP filled',
    ]);
    // The chain saw nothing: no transaction from the hedging account, no order, no position.
    expect(await client.getTransactionCount({ address: info.hedgingAccount })).toBe(nonce0);
    const created = parseGmxEvents(
      await client.getLogs({ address: info.gmx.eventEmitter, fromBlock: 0n }),
      info.gmx.eventEmitter,
      ['OrderCreated'],
    );
    expect(created).toEqual([]);
    const positions = await client.readContract({
      address: info.gmx.reader,
      abi: readerAbi,
      functionName: 'getAccountPositions',
      args: [info.gmx.dataStore, info.hedgingAccount, 0n, 100n],
    });
    expect(positions).toEqual([]);
    await run.stop();
    run = undefined;
    await chain.stop();
    chain = undefined;
  }, 90_000);
});
