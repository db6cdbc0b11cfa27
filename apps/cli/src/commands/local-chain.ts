import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadConfigFile } from '@xhedge/config';
import { MAX_SEED } from '@xhedge/core';
import { ANVIL_DEV_KEYS, createEvmContext, MemoryOrderStore, startAnvil } from '@xhedge/evm';
import {
  deployGmxFixture,
  type GmxContractAddresses,
  GmxKeeper,
  type GmxKeeperResult,
} from '@xhedge/venue-gmx';
import { deployLyraFixture, type LyraFixture, LyraVenue } from '@xhedge/venue-lyra';
import type { Command } from 'commander';
import { CliUsageError, parseNumberOption } from '../cli-error.ts';
import type { CliIo } from '../io.ts';

/** The RPC port configs/profiles/local-chains.yaml points at. */
export const LOCAL_CHAIN_DEFAULT_PORT = 8545;
/** The profile that hedges the local chain. */
const LOCAL_CHAINS_PROFILE = 'configs/profiles/local-chains.yaml';

export interface LocalChainOptions {
  /** RPC port on 127.0.0.1; a free port when omitted. */
  port?: number;
  /** GMX keeper poll interval, ms. @defaultValue 1000 */
  keeperIntervalMs?: number;
  /** Seconds between simulated price moves (0 = prices stay put). @defaultValue 0 */
  priceStepSeconds?: number;
  /** Annualized vol of the simulated price moves, decimal. @defaultValue 0.8 */
  vol?: number;
  /**
   * Market time per wall-clock time of the price walk: each step moves prices as far as `speed` ×
   * `priceStepSeconds` of market time would (so hedges come within minutes, not hours). @defaultValue 1
   */
  speed?: number;
  /** Seed of the price walk. @defaultValue 1 */
  seed?: number;
  /** Sell 10 ETH and 1 BTC at-the-money calls from the hedging account, so there is a book. @defaultValue true */
  seedBook?: boolean;
  /** Where `local-chain.json` (the addresses) is written; not written when omitted. */
  dataDir?: string;
  /** Progress lines (deploys, keeper executions, price moves, errors). @defaultValue silent */
  io?: Pick<CliIo, 'out' | 'err'>;
}

/** Addresses and accounts of a running local chain (what `local-chain.json` holds). */
export interface LocalChainInfo {
  rpcUrl: string;
  chain: 'evm:31337';
  /** `params` of a `lyra` venue. */
  lyra: LyraFixture['params'];
  /** `params` of a `gmx` venue. */
  gmx: GmxContractAddresses;
  /** Anvil dev account 1: holds the seeded book and hedges (XHEDGE_LOCAL_KEY). */
  hedgingAccount: `0x${string}`;
  /** Anvil dev account 2: the GMX keeper. */
  keeper: `0x${string}`;
}

export interface LocalChain {
  info: LocalChainInfo;
  /** Pid of the anvil process. */
  anvilPid: number;
  /** Private key of the hedging account (anvil's public dev key 1; local chains only). */
  hedgingKey: `0x${string}`;
  /** Every order the keeper executed or cancelled so far, oldest first. */
  readonly keeperResults: readonly GmxKeeperResult[];
  /** Stops the price walk, the keeper, then anvil. Idempotent. */
  stop(): Promise<void>;
}

const SPOTS_USD: Record<string, number> = { ETH: 3500, BTC: 95_000 };

const short = (h: string) => `${h.slice(0, 10)}…`;
const firstLine = (e: unknown) => (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';

/**
 * Starts anvil, deploys the Lyra-style and GMX-style contracts from anvil's first dev account in a fixed
 * order (so the addresses are the same on every fresh chain and match configs/profiles/local-chains.yaml),
 * funds the hedging account (dev account 1), optionally sells some options with it so there is a book to
 * hedge, runs the GMX keeper, and moves prices on a seeded random walk. If a step fails, what was started
 * is stopped before the error is thrown.
 */
export async function startLocalChain(opts: LocalChainOptions = {}): Promise<LocalChain> {
  const io = opts.io ?? { out: () => {}, err: () => {} };
  const anvil = await startAnvil(opts.port !== undefined ? { port: opts.port } : {});
  let keeper: GmxKeeper | undefined;
  let timer: NodeJS.Timeout | undefined;
  let busy: Promise<void> | undefined;
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      if (timer) clearInterval(timer);
      await busy;
      await keeper?.stop();
      await anvil.stop();
    })();
    return stopped;
  };
  try {
    const ctx = (k: `0x${string}`) =>
      createEvmContext({
        venue: 'local',
        chain: 'evm:31337',
        rpcUrls: [anvil.rpcUrl],
        privateKey: k,
        pollingIntervalMs: 100,
      });
    const hedgingKey = ANVIL_DEV_KEYS[1];
    const deployer = ctx(ANVIL_DEV_KEYS[0]);
    const trader = ctx(hedgingKey);
    const keeperCtx = ctx(ANVIL_DEV_KEYS[2]);
    const spots = { ...SPOTS_USD };
    const lyra = await deployLyraFixture(deployer, {
      markets: [
        {
          underlying: 'ETH',
          spotUsd: SPOTS_USD.ETH ?? 3500,
          baseIv: 0.7,
          expiryDays: 30,
          strikes: [3000, 3500, 4000],
          skews: [1.1, 1, 0.95],
        },
        {
          underlying: 'BTC',
          spotUsd: SPOTS_USD.BTC ?? 95_000,
          baseIv: 0.55,
          expiryDays: 30,
          strikes: [90_000, 95_000, 100_000],
          skews: [1.08, 1, 0.96],
        },
      ],
      traders: [trader.account.address],
    });
    const gmx = await deployGmxFixture(deployer, {
      markets: [
        { symbol: 'BTC', decimals: 8, priceUsd: SPOTS_USD.BTC ?? 95_000 },
        { symbol: 'ETH', decimals: 18, priceUsd: SPOTS_USD.ETH ?? 3500 },
      ],
      keepers: [keeperCtx.account.address],
      traders: [trader.account.address],
    });
    const keeperResults: GmxKeeperResult[] = [];
    keeper = new GmxKeeper({
      ctx: keeperCtx,
      dataStore: gmx.params.dataStore,
      eventEmitter: gmx.params.eventEmitter,
      intervalMs: opts.keeperIntervalMs ?? 1000,
      onError: (e) => io.err(`keeper: ${firstLine(e)}`),
      onResult: (r) => {
        keeperResults.push(r);
        const usd = r.sizeDeltaUsd30 !== undefined ? Number(r.sizeDeltaUsd30 / 10n ** 24n) / 1e6 : undefined;
        io.out(
          r.outcome === 'executed'
            ? `keeper: executed GMX order ${short(r.key)} ($${usd?.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}) in tx ${r.txHash}`
            : `keeper: cancelled GMX order ${short(r.key)} (${r.reason ?? 'no reason'}) in tx ${r.txHash}`,
        );
      },
    });
    keeper.start();
    if (opts.seedBook ?? true) {
      const v = new LyraVenue(
        'lyra-local',
        { ...lyra.params },
        { ctx: trader, store: new MemoryOrderStore() },
      );
      const ids = (await v.loadMarkets()).map((m) => m.instrument.id);
      for (const [prefix, strike, size] of [
        ['ETH-USD', 3500, '10'],
        ['BTC-USD', 95_000, '1'],
      ] as const) {
        const id = ids.find((i) => i.startsWith(`${prefix}:OPT:`) && i.endsWith(`:${strike}:C`));
        if (!id) throw new Error(`local chain: no ${prefix} ${strike} call listed to seed the book`);
        await v.placeOrder({
          clientOrderId: `seed-${prefix}`,
          instrument: id,
          side: 'sell',
          orderType: 'market',
          sizeBase: size,
        });
        io.out(`seeded the book: sold ${size} ${id} on lyra-local from the hedging account`);
      }
    }
    const info: LocalChainInfo = {
      rpcUrl: anvil.rpcUrl,
      chain: 'evm:31337',
      lyra: lyra.params,
      gmx: gmx.params,
      hedgingAccount: trader.account.address,
      keeper: keeperCtx.account.address,
    };
    if (opts.dataDir !== undefined) {
      mkdirSync(opts.dataDir, { recursive: true });
      const file = path.join(opts.dataDir, 'local-chain.json');
      writeFileSync(file, `${JSON.stringify(info, null, 2)}\n`);
      io.out(`addresses written to ${file}`);
    }

    // Seeded random walk (GBM) of spot, applied to both venues' oracles; the greek cache follows.
    const walk = spotWalk(opts.seed ?? 1, opts.vol ?? 0.8);
    const stepSeconds = opts.priceStepSeconds ?? 0;
    const step = async () => {
      const dtYears = (stepSeconds * (opts.speed ?? 1)) / (365 * 86400);
      for (const u of Object.keys(spots)) {
        const s = walk(spots[u] ?? 1, dtYears);
        spots[u] = s;
        await gmx.setPrice(u, Number(s.toFixed(2)));
        await lyra.setSpot(u, Number(s.toFixed(2)));
      }
      io.out(
        `prices ${Object.entries(spots)
          .map(([k, v]) => `${k}=${v.toFixed(2)}`)
          .join(' ')}`,
      );
    };
    if (stepSeconds > 0)
      timer = setInterval(() => {
        if (busy) return;
        busy = step()
          .catch((e: unknown) => io.err(`price step: ${firstLine(e)}`))
          .finally(() => {
            busy = undefined;
          });
      }, stepSeconds * 1000);
    return { info, anvilPid: anvil.pid, hedgingKey, keeperResults, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * A seeded GBM step of spot: `next(spotUsd, dtYears)` is the spot `dtYears` later. The seed is any
 * whole number 0..2^32-1 (an LCG has no forbidden state: 0 starts a walk of its own).
 */
export function spotWalk(seed: number, vol: number): (spotUsd: number, dtYears: number) => number {
  let state = seed >>> 0;
  const rand = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return (state + 0.5) / 4294967296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(rand())) * Math.cos(2 * Math.PI * rand());
  return (spotUsd, dtYears) =>
    spotUsd * Math.exp(-0.5 * vol * vol * dtYears + vol * Math.sqrt(dtYears) * normal());
}

export function registerLocalChain(program: Command, io: CliIo, setExit: (code: number) => void): void {
  const lc = program
    .command('local-chain')
    .description('a local EVM chain with the Lyra-style and GMX-style venues (anvil)');
  lc.command('up')
    .description(
      'start anvil, deploy the contracts, run the keeper, print the addresses; Ctrl-C stops everything',
    )
    .option(
      '--port <n>',
      'RPC port (the local-chains profile expects 8545)',
      String(LOCAL_CHAIN_DEFAULT_PORT),
    )
    .option('--keeper-interval-ms <n>', 'GMX keeper poll interval', '1000')
    .option('--price-step-seconds <n>', 'seconds between simulated price moves (0 = off)', '5')
    .option('--vol <x>', 'annualized vol of the simulated moves, decimal', '0.8')
    .option('--speed <x>', 'market time per wall time of the price walk', '300')
    .option('--seed <n>', 'seed of the price walk', '1')
    .option('--no-seed-book', 'do not sell the starting options from the hedging account')
    .option('--data-dir <dir>', 'where local-chain.json is written', '.xhedge')
    .option(
      '--profile <file>',
      'the profile that hedges this chain (its dataDir is cleared)',
      LOCAL_CHAINS_PROFILE,
    )
    .option('--keep-run-data', "keep the profile's dataDir (ledger and order mappings of the previous chain)")
    .action(
      async (o: {
        port: string;
        keeperIntervalMs: string;
        priceStepSeconds: string;
        vol: string;
        speed: string;
        seed: string;
        seedBook: boolean;
        dataDir: string;
        profile: string;
        keepRunData?: boolean;
      }) => {
        const port = parseNumberOption('port', o.port, { integer: true, positive: true });
        if (port > 65_535) throw new CliUsageError(`--port must be at most 65535, got ${port}`);
        const opts: LocalChainOptions = {
          port,
          keeperIntervalMs: parseNumberOption('keeper-interval-ms', o.keeperIntervalMs, {
            integer: true,
            positive: true,
          }),
          priceStepSeconds: parseNumberOption('price-step-seconds', o.priceStepSeconds, { min: 0 }),
          vol: parseNumberOption('vol', o.vol, { positive: true }),
          speed: parseNumberOption('speed', o.speed, { positive: true }),
          seed: parseNumberOption('seed', o.seed, { integer: true, min: 0, max: MAX_SEED }),
          seedBook: o.seedBook,
          dataDir: o.dataDir,
          io,
        };
        // Each `up` is a fresh chain: the profile's ledger and GMX order mappings from an earlier chain
        // name orders and positions that no longer exist (and an order left in flight there would hold
        // its underlying forever), so they go unless asked to stay.
        if (!o.keepRunData && existsSync(o.profile)) {
          const profile = loadConfigFile(o.profile);
          const runData = profile.dataDir;
          // Only a profile that trades nothing but this chain has run data that dies with it.
          if (profile.venues.some((v) => v.chain !== 'evm:31337'))
            io.out(`not clearing ${runData}: ${o.profile} has venues off the local chain`);
          else if (existsSync(runData)) {
            rmSync(runData, { recursive: true, force: true });
            io.out(
              `cleared ${runData}: run data of ${o.profile} on the previous chain (--keep-run-data keeps it)`,
            );
          }
        }
        io.out(`starting anvil on 127.0.0.1:${port} and deploying the contracts…`);
        const chain = await startLocalChain(opts);
        const { info } = chain;
        const rows: [string, string][] = [
          ['RPC', `${info.rpcUrl} (chain evm:31337, anvil pid ${chain.anvilPid})`],
          ['hedging account', `${info.hedgingAccount} (anvil dev account 1)`],
          ['GMX keeper', `${info.keeper} (anvil dev account 2), every ${opts.keeperIntervalMs} ms`],
          ['lyra quote USDC', info.lyra.quoteAsset],
          ...info.lyra.markets.map((m): [string, string] => [`lyra ${m.underlying} market`, m.optionMarket]),
          ['gmx ExchangeRouter', info.gmx.exchangeRouter],
          ['gmx Reader', info.gmx.reader],
          ['gmx DataStore', info.gmx.dataStore],
          ['gmx Router (approvals)', info.gmx.router],
          ['gmx EventEmitter', info.gmx.eventEmitter],
        ];
        const w = Math.max(...rows.map((r) => r[0].length));
        io.out('local chain ready:');
        for (const [k, v] of rows) io.out(`  ${k.padEnd(w)}  ${v}`);
        io.out('');
        io.out('hedge it from another terminal (this is anvil’s public dev key 1, for local chains only):');
        io.out(`  export XHEDGE_LOCAL_KEY=${chain.hedgingKey}`);
        io.out('  pnpm start --config configs/profiles/local-chains.yaml');
        if (port !== LOCAL_CHAIN_DEFAULT_PORT)
          io.out(
            `  (the profile's RPC is http://127.0.0.1:${LOCAL_CHAIN_DEFAULT_PORT}: copy it and point endpoints.rpc at ${info.rpcUrl})`,
          );
        io.out(
          opts.priceStepSeconds
            ? `prices move every ${opts.priceStepSeconds} s (vol ${opts.vol} at ${opts.speed}× market time, seed ${opts.seed}); Ctrl-C stops everything`
            : 'prices stay put (--price-step-seconds 0); Ctrl-C stops everything',
        );
        await new Promise<void>((resolve) => {
          const done = () => resolve();
          process.once('SIGINT', done);
          process.once('SIGTERM', done);
        });
        io.out('stopping the keeper and anvil…');
        await chain.stop();
        io.out('local chain stopped');
        setExit(0);
      },
    );
}
