import { MAX_SEED } from '@xhedge/core';
import {
  MAX_ABS_DRIFT_PER_YEAR,
  MAX_JUMPS_PER_YEAR,
  MAX_KAPPA_PER_YEAR,
  MAX_LOG_JUMP,
  MAX_SPOT_USD,
  MAX_STRESSED_VOL_MULTIPLIER,
  MAX_VOL_DECIMAL,
  MAX_VOL_OF_VOL,
  MIN_SPOT_USD,
  type ProcessSpec,
  SimError,
  simulatePaths,
  summarizePaths,
} from '@xhedge/sim';
import type { Command } from 'commander';
import { CliUsageError, EXIT_OK, parseNumberOption } from '../cli-error.ts';
import { type CliIo, formatTable } from '../io.ts';

/** Largest paths × steps one run may simulate (keeps a typo from pinning a shared machine). */
const MAX_POINTS = 20_000_000;

interface SimulateOptions {
  process: string;
  spot: string;
  vol: string;
  drift: string;
  days: string;
  stepsPerDay: string;
  paths: string;
  seed: string;
  jumpIntensity?: string;
  jumpMean?: string;
  jumpStd?: string;
  kappa?: string;
  volOfVol?: string;
  rho?: string;
  longRunVol?: string;
  stressedMult?: string;
  calmToStressed?: string;
  stressedToCalm?: string;
  json?: boolean;
}

const PROCESS_FLAGS: Record<string, readonly (keyof SimulateOptions)[]> = {
  gbm: [],
  jump: ['jumpIntensity', 'jumpMean', 'jumpStd'],
  heston: ['kappa', 'volOfVol', 'rho', 'longRunVol'],
  regime: ['stressedMult', 'calmToStressed', 'stressedToCalm'],
};

const kebab = (k: string) => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

function buildProcess(o: SimulateOptions): ProcessSpec {
  const allowed = PROCESS_FLAGS[o.process];
  if (!allowed)
    throw new CliUsageError(
      `--process must be one of ${Object.keys(PROCESS_FLAGS).join(', ')}, got "${o.process}"`,
    );
  for (const [proc, flags] of Object.entries(PROCESS_FLAGS)) {
    if (proc === o.process) continue;
    for (const f of flags)
      if (o[f] !== undefined && !allowed.includes(f))
        throw new CliUsageError(`--${kebab(f)} applies to --process ${proc}, not ${o.process}`);
  }
  const num = (k: keyof SimulateOptions, opts: Parameters<typeof parseNumberOption>[2] = {}) => {
    const raw = o[k];
    return typeof raw === 'string' ? parseNumberOption(kebab(k), raw, opts) : undefined;
  };
  const put = <T extends object>(target: T, key: string, v: number | undefined): T => {
    if (v !== undefined) (target as Record<string, number>)[key] = v;
    return target;
  };
  switch (o.process) {
    case 'jump': {
      const p = { kind: 'jump' as const };
      put(p, 'intensityPerYear', num('jumpIntensity', { min: 0, max: MAX_JUMPS_PER_YEAR }));
      put(p, 'meanLogJump', num('jumpMean', { min: -MAX_LOG_JUMP, max: MAX_LOG_JUMP }));
      put(p, 'stdLogJump', num('jumpStd', { min: 0, max: MAX_LOG_JUMP }));
      return p;
    }
    case 'heston': {
      const p = { kind: 'heston' as const };
      put(p, 'kappa', num('kappa', { positive: true, max: MAX_KAPPA_PER_YEAR }));
      put(p, 'volOfVol', num('volOfVol', { min: 0, max: MAX_VOL_OF_VOL }));
      const rho = num('rho');
      if (rho !== undefined && (rho < -1 || rho > 1))
        throw new CliUsageError(`--rho must be in [-1, 1], got ${rho}`);
      put(p, 'rho', rho);
      const lr = num('longRunVol', { positive: true, max: MAX_VOL_DECIMAL });
      put(p, 'thetaVar', lr === undefined ? undefined : lr * lr);
      return p;
    }
    case 'regime': {
      const p = { kind: 'regime' as const };
      put(
        p,
        'stressedVolMultiplier',
        num('stressedMult', { positive: true, max: MAX_STRESSED_VOL_MULTIPLIER }),
      );
      put(p, 'calmToStressedPerYear', num('calmToStressed', { min: 0 }));
      put(p, 'stressedToCalmPerYear', num('stressedToCalm', { min: 0 }));
      return p;
    }
    default:
      return { kind: 'gbm' };
  }
}

/** `xhedge simulate`: simulate many paths of one price process and print summary statistics. */
export function runSimulate(o: SimulateOptions, io: CliIo): number {
  const process = buildProcess(o);
  const vol = parseNumberOption('vol', o.vol, { positive: true });
  if (vol > MAX_VOL_DECIMAL)
    throw new CliUsageError(`--vol is a decimal (0.8 = 80%), at most ${MAX_VOL_DECIMAL}, got ${o.vol}`);
  const spot = parseNumberOption('spot', o.spot, { min: MIN_SPOT_USD, max: MAX_SPOT_USD });
  const drift = parseNumberOption('drift', o.drift, {
    min: -MAX_ABS_DRIFT_PER_YEAR,
    max: MAX_ABS_DRIFT_PER_YEAR,
  });
  const days = parseNumberOption('days', o.days, { positive: true });
  const stepsPerDay = parseNumberOption('steps-per-day', o.stepsPerDay, { positive: true, integer: true });
  const paths = parseNumberOption('paths', o.paths, { positive: true, integer: true });
  const seed = parseNumberOption('seed', o.seed, { integer: true, min: 0, max: MAX_SEED });
  const steps = Math.round(days * stepsPerDay);
  if (steps < 2) throw new CliUsageError('--days × --steps-per-day must give at least 2 steps');
  if (steps * paths > MAX_POINTS)
    throw new CliUsageError(
      `--paths × steps (--days × --steps-per-day) = ${paths} × ${steps} is above the limit of ${MAX_POINTS}`,
    );
  let summary: ReturnType<typeof summarizePaths>;
  try {
    summary = summarizePaths(
      simulatePaths({ process, underlying: { spot, vol, drift }, days, stepsPerDay, paths, seed }),
    );
  } catch (err) {
    if (err instanceof SimError) throw new CliUsageError(err.shortMessage);
    throw err;
  }
  const input = { process, spot, vol, drift, days, stepsPerDay, paths, seed };
  if (o.json) io.out(JSON.stringify({ input, ...summary }));
  else {
    io.out(`${o.process}: ${paths} paths × ${steps} steps, vol ${vol}, seed ${seed}`);
    io.out(formatTable(Object.entries(summary).map(([k, v]) => [k, v])));
  }
  return EXIT_OK;
}

export function registerSimulate(program: Command, io: CliIo, setExit: (code: number) => void): void {
  program
    .command('simulate')
    .description('simulate price paths (gbm, jump, heston, regime) and print summary statistics')
    .option('--process <kind>', 'gbm | jump | heston | regime', 'gbm')
    .option('--spot <usd>', 'starting price, USD', '100')
    .option('--vol <decimal>', 'annualized vol, decimal (0.8 = 80%)', '0.8')
    .option('--drift <decimal>', 'annualized drift, decimal', '0')
    .option('--days <n>', 'horizon, calendar days', '30')
    .option('--steps-per-day <n>', 'time steps per day (24 = hourly)', '24')
    .option('--paths <n>', 'number of paths', '1000')
    .option('--seed <n>', 'random seed', '1')
    .option('--jump-intensity <perYear>', 'jump: expected jumps per year (default 12)')
    .option('--jump-mean <log>', 'jump: mean log jump size (default -0.03)')
    .option('--jump-std <log>', 'jump: sd of log jump size (default 0.06)')
    .option('--kappa <perYear>', 'heston: mean-reversion speed of variance (default 3)')
    .option('--vol-of-vol <x>', 'heston: vol of variance (default 0.8)')
    .option('--rho <x>', 'heston: spot/variance correlation (default -0.5)')
    .option('--long-run-vol <decimal>', 'heston: long-run vol (default --vol)')
    .option('--stressed-mult <x>', 'regime: vol multiplier when stressed (default 2.5)')
    .option('--calm-to-stressed <perYear>', 'regime: switches into stress per year (default 6)')
    .option('--stressed-to-calm <perYear>', 'regime: switches out of stress per year (default 52)')
    .option('--json', 'machine-readable output')
    .action((opts: SimulateOptions) => setExit(runSimulate(opts, io)));
}
