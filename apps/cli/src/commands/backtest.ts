import {
  BacktestInputError,
  type BacktestPlan,
  type BacktestReport,
  createProgressBar,
  type FrontierCurve,
  loadBacktestFile,
  MAX_BACKTEST_PATHS,
  MAX_BACKTEST_USD,
  MAX_COST_BPS,
  MAX_EXPIRY_YEARS,
  MAX_RATE,
  MIN_RATE,
  planFromFile,
  planSingleOption,
  runBacktest,
  type SingleOptionInput,
  writeFrontier,
} from '@xhedge/backtest';
import { ValidationError } from '@xhedge/core';
import { MAX_ABS_DRIFT_PER_YEAR, MAX_SPOT_USD, MAX_VOL_DECIMAL, MIN_SPOT_USD } from '@xhedge/sim';
import type { Command } from 'commander';
import { CliUsageError, EXIT_INVALID, EXIT_OK, parseNumberOption } from '../cli-error.ts';
import { type CliIo, formatTable } from '../io.ts';

interface BacktestOptions {
  config?: string;
  frontier?: string;
  json?: boolean;
  workers?: string;
  type?: string;
  side?: string;
  spot?: string;
  strike?: string;
  expiryYears?: string;
  vol?: string;
  drift?: string;
  rate?: string;
  paths?: string;
  seed?: string;
  policy?: string;
  intervalDays?: string;
  bandDelta?: string;
  costBps?: string;
  gasUsd?: string;
  riskAversion?: string;
  stepDays?: string;
}

const POLICIES = ['interval', 'band', 'ww', 'leland'] as const;
const PRICE_USD = { min: MIN_SPOT_USD, max: MAX_SPOT_USD };

function required(opts: BacktestOptions, key: keyof BacktestOptions, flag: string): string {
  const v = opts[key];
  if (typeof v !== 'string')
    throw new CliUsageError(`--${flag} is required (or give --config <backtest.yaml>)`);
  return v;
}

function optionalNumber(
  raw: string | undefined,
  name: string,
  o: Parameters<typeof parseNumberOption>[2] = {},
) {
  return raw === undefined ? undefined : parseNumberOption(name, raw, o);
}

/** Builds the single-option plan from flags; every bad flag is a usage error (exit 2). */
export function planFromFlags(opts: BacktestOptions): BacktestPlan {
  const type = required(opts, 'type', 'type');
  if (type !== 'call' && type !== 'put') throw new CliUsageError(`--type must be call or put, got ${type}`);
  const side = required(opts, 'side', 'side');
  if (side !== 'long' && side !== 'short')
    throw new CliUsageError(`--side must be long or short, got ${side}`);
  const policy = required(opts, 'policy', 'policy');
  if (!(POLICIES as readonly string[]).includes(policy))
    throw new CliUsageError(`--policy must be one of ${POLICIES.join(', ')}, got ${policy}`);
  const input: SingleOptionInput = {
    type,
    side,
    spot: parseNumberOption('spot', required(opts, 'spot', 'spot'), PRICE_USD),
    strike: parseNumberOption('strike', required(opts, 'strike', 'strike'), PRICE_USD),
    expiryYears: parseNumberOption('expiry-years', required(opts, 'expiryYears', 'expiry-years'), {
      positive: true,
      max: MAX_EXPIRY_YEARS,
    }),
    vol: parseNumberOption('vol', required(opts, 'vol', 'vol'), { min: 0 }),
    paths: parseNumberOption('paths', opts.paths ?? '10000', {
      integer: true,
      min: 2,
      max: MAX_BACKTEST_PATHS,
    }),
    seed: parseNumberOption('seed', opts.seed ?? '1', { integer: true, min: 0 }),
    policy: policy as SingleOptionInput['policy'],
  };
  if (input.vol > MAX_VOL_DECIMAL)
    throw new CliUsageError(`--vol is a decimal (0.2 = 20%), at most ${MAX_VOL_DECIMAL}, got ${input.vol}`);
  const extra: Record<string, number | undefined> = {
    drift: optionalNumber(opts.drift, 'drift', {
      min: -MAX_ABS_DRIFT_PER_YEAR,
      max: MAX_ABS_DRIFT_PER_YEAR,
    }),
    rate: optionalNumber(opts.rate, 'rate', { min: MIN_RATE, max: MAX_RATE }),
    intervalDays: optionalNumber(opts.intervalDays, 'interval-days', { positive: true }),
    bandDelta: optionalNumber(opts.bandDelta, 'band-delta', { positive: true }),
    costBps: optionalNumber(opts.costBps, 'cost-bps', { min: 0, max: MAX_COST_BPS }),
    gasUsd: optionalNumber(opts.gasUsd, 'gas-usd', { min: 0, max: MAX_BACKTEST_USD }),
    riskAversion: optionalNumber(opts.riskAversion, 'risk-aversion', { positive: true }),
    stepDays: optionalNumber(opts.stepDays, 'step-days', { positive: true }),
  };
  // A flag of another policy would be accepted and ignored: the run would not be the one asked for.
  const onlyFor: [flag: string, value: number | undefined, policies: readonly string[]][] = [
    ['interval-days', extra.intervalDays, ['interval', 'leland']],
    ['band-delta', extra.bandDelta, ['band']],
  ];
  for (const [flag, value, policies] of onlyFor)
    if (value !== undefined && !policies.includes(input.policy))
      throw new CliUsageError(`--${flag} applies to --policy ${policies.join(' or ')}, not ${input.policy}`);
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) Object.assign(input, { [k]: v });
  if (input.stepDays !== undefined && input.stepDays > input.expiryYears * 365)
    throw new CliUsageError('--step-days is longer than the option’s life');
  return planSingleOption(input);
}

const money = (x: number) => Number(x.toPrecision(6));

function printReport(r: BacktestReport, io: CliIo): void {
  io.out(
    `${r.name}: ${r.paths} paths × ${r.steps} steps of ${money(r.stepHours)} h (horizon ${money(r.horizonDays)} d), seed ${r.seed}; ` +
      `book value ${money(r.bookValueUsd)} USD, BS price ${money(r.bsPriceUsd)} USD, γ ${r.riskAversion}/USD`,
  );
  io.out('');
  io.out(
    formatTable([
      [
        'policy',
        'mean P&L',
        'std P&L',
        'stdToPrice',
        'CVaR95',
        'entropic',
        'meanCost',
        'turnover',
        'trades',
        'transfers',
        'liquidations',
        'liq. paths',
      ],
      ...r.policies.map((p) => [
        p.name,
        money(p.meanPnlUsd),
        money(p.stdPnlUsd),
        p.stdToPrice === null ? 'n/a' : money(p.stdToPrice),
        money(p.cvar95Usd),
        money(p.entropicRiskUsd),
        money(p.meanCostUsd),
        money(p.turnoverUsd),
        money(p.trades),
        money(p.transfers),
        money(p.liquidations),
        `${(p.liquidatedPathShare * 100).toFixed(1)}%`,
      ]),
    ]),
  );
  io.out('');
  io.out('P&L attribution (mean per path, USD)');
  io.out(
    formatTable([
      [
        'policy',
        'delta',
        'gamma',
        'theta',
        'vega',
        'residual',
        'funding',
        'fees',
        'slippage',
        'gas',
        'bridge',
        'liquidation',
      ],
      ...r.policies.map((p) => {
        const a = p.attribution;
        return [
          p.name,
          ...[
            a.deltaUsd,
            a.gammaUsd,
            a.thetaUsd,
            a.vegaUsd,
            a.residualUsd,
            a.fundingUsd,
            a.feesUsd,
            a.slippageUsd,
            a.gasUsd,
            a.bridgeUsd,
            a.liquidationUsd,
          ].map(money),
        ];
      }),
    ]),
  );
}

/** `xhedge backtest`: compares hedging policies over simulated or replayed paths. */
export async function runBacktestCommand(opts: BacktestOptions, io: CliIo): Promise<number> {
  const workers = optionalNumber(opts.workers, 'workers', { integer: true, min: 1 });
  let plan: BacktestPlan;
  try {
    if (opts.config) {
      const file = loadBacktestFile(opts.config);
      plan = planFromFile(file, file.baseDir);
    } else {
      if (opts.frontier)
        throw new CliUsageError('--frontier needs --config <backtest.yaml> (its frontier: sweeps)');
      plan = planFromFlags(opts);
    }
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    if (opts.json) io.out(JSON.stringify({ ok: false, problems: err.issues }));
    else {
      io.err(`invalid backtest${opts.config ? ` ${opts.config}` : ''}: ${err.issues.length} problem(s)`);
      for (const i of err.issues) io.err(`  ${i.path || '<root>'}: ${i.message}`);
    }
    return EXIT_INVALID;
  }
  if (opts.frontier && plan.sweeps.length === 0)
    throw new CliUsageError(
      `${opts.config} has no frontier: sweeps to draw (add frontier: [{policy, param, values}])`,
    );
  const bar = createProgressBar({
    write: (s) => process.stderr.write(s),
    isTty: io.isTty && Boolean(process.stderr.isTTY),
  });
  let run: Awaited<ReturnType<typeof runBacktest>>;
  try {
    run = await runBacktest(plan, {
      ...(workers !== undefined ? { workers } : {}),
      frontier: Boolean(opts.frontier),
      onProgress: (d, t) => bar.update(d, t),
    });
  } catch (err) {
    // inputs within their bounds that still cannot run (a drift compounding past a double over the horizon)
    if (err instanceof BacktestInputError) throw new CliUsageError(err.shortMessage);
    throw err;
  } finally {
    bar.finish();
  }
  const { report, frontier } = run;
  let files: ReturnType<typeof writeFrontier> | undefined;
  if (opts.frontier) files = writeFrontier(frontier, opts.frontier, `Efficient frontier: ${report.name}`);
  if (opts.json) {
    const out: { report: BacktestReport; frontier?: { curves: FrontierCurve[]; files: typeof files } } = {
      report,
    };
    if (opts.frontier) out.frontier = { curves: frontier, files };
    io.out(JSON.stringify(out));
  } else {
    printReport(report, io);
    if (files) io.out(`\nfrontier: ${files.svgPath}, ${files.pngPath}, ${files.jsonPath}`);
  }
  return EXIT_OK;
}

export function registerBacktest(program: Command, io: CliIo, setExit: (code: number) => void): void {
  program
    .command('backtest')
    .description(
      'compare hedging policies on simulated or historical paths (single option flags, or --config)',
    )
    .option('--config <file>', 'backtest YAML (book, process or CSV replay, venues, policies, sweeps)')
    .option(
      '--frontier <dir>',
      'with --config: sweep the policies and write frontier.svg/.png/.json into <dir>',
    )
    .option('--type <call|put>', 'option type')
    .option('--side <long|short>', 'position side')
    .option('--spot <usd>', 'initial spot')
    .option('--strike <usd>', 'strike')
    .option('--expiry-years <years>', 'time to expiry, years')
    .option('--vol <decimal>', 'volatility (pricing and realized), decimal')
    .option('--drift <decimal>', 'real-world drift per year (default 0)')
    .option('--rate <decimal>', 'risk-free rate (default 0)')
    .option('--paths <n>', 'number of paths (default 10000)')
    .option('--seed <n>', 'seed (default 1)')
    .option('--policy <kind>', `hedge policy: ${POLICIES.join(' | ')}`)
    .option('--interval-days <days>', 'interval/leland: rebalancing interval (default 1)')
    .option('--band-delta <delta>', 'band: half-width, underlying units (default 0.05)')
    .option('--cost-bps <bps>', 'proportional cost per trade (default 0)')
    .option('--gas-usd <usd>', 'fixed cost per trade (default 0)')
    .option('--risk-aversion <gamma>', 'γ per USD for ww and the entropic risk (default 1)')
    .option('--step-days <days>', 'simulation step (default: the interval; 0.25 for band/ww)')
    .option('--workers <n>', 'worker threads (default: all cores)')
    .option('--json', 'machine-readable output')
    .action(async (opts: BacktestOptions) => setExit(await runBacktestCommand(opts, io)));
}
