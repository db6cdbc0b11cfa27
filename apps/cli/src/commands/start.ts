import { ConfigError, formatProblem, loadConfigFile } from '@xhedge/config';
import { RUN_ROLES, type RunRole, startRun } from '@xhedge/runtime';
import type { Command } from 'commander';
import { CliUsageError, EXIT_INVALID, EXIT_OK, parseNumberOption } from '../cli-error.ts';
import type { CliIo } from '../io.ts';

export const DEFAULT_PROFILE = 'configs/profiles/paper.yaml';

interface StartOptions {
  config: string;
  role: string;
  port?: string;
  metricsPort?: string;
  dryRun?: boolean;
}

/** Where `onStopSignal` listens and how it exits (the process's own by default; tests pass theirs). */
export interface StopSignalHost {
  on(signal: 'SIGINT' | 'SIGTERM', listener: (signal: string) => void): unknown;
  exit(code: number): void;
  nowMs(): number;
}

const PROCESS_HOST: StopSignalHost = {
  on: (sig, l) => process.on(sig, l),
  exit: (code) => process.exit(code),
  nowMs: () => Date.now(),
};

/** Repeats of a signal within this long of the first are the same Ctrl-C, relayed (see below). */
export const SIGNAL_REPEAT_MS = 1000;

/**
 * Resolves at the first SIGINT or SIGTERM (with the signal's name). The handlers stay installed for
 * the rest of the process, so a repeat of the signal while shutting down does not kill the process
 * half-way, and one after `done()` (the stop is complete; the process is exiting) changes nothing:
 * with the handlers gone, a late copy of the signal (tsx relays it to the process it runs) killed a
 * process that had stopped cleanly, exit 130 instead of 0.
 *
 * A second signal more than {@link SIGNAL_REPEAT_MS} after the first is the operator's own: the
 * shutdown is stuck (a venue call or the ledger not answering) and they want out. The process exits
 * at once, 130 (SIGINT) or 143 (SIGTERM), as `kill -9` would leave it: an order job still active is
 * failed as stalled by BullMQ (`maxStalledCount: 0`) and resolved by the reconciler by its client order
 * id, never re-sent blindly; the chaos proof (`pnpm test:chaos`) kills workers mid-order this way.
 */
export function onStopSignal(
  io: CliIo,
  host: StopSignalHost = PROCESS_HOST,
): { signal: Promise<string>; done: () => void } {
  let first: ((sig: string) => void) | undefined;
  const signal = new Promise<string>((resolve) => (first = resolve));
  let firstAtMs: number | undefined;
  let stopped = false;
  const on = (sig: string) => {
    if (stopped) return;
    const now = host.nowMs();
    // `pnpm start` wraps node in pnpm and tsx, which forward the terminal's Ctrl-C that they received
    // too: repeats within a second are that same Ctrl-C.
    if (firstAtMs !== undefined && now - firstAtMs > SIGNAL_REPEAT_MS) {
      io.err(
        `xhedge: ${sig} again during shutdown: exiting now without finishing it; an order job still active is failed as stalled and resolved by its client order id by the reconciler (of another worker, or of this one when it starts again), never re-sent blindly`,
      );
      host.exit(sig === 'SIGTERM' ? 143 : 130);
      return;
    }
    firstAtMs ??= now;
    first?.(sig);
  };
  host.on('SIGINT', on);
  host.on('SIGTERM', on);
  return {
    signal,
    done: () => {
      stopped = true;
    },
  };
}

/**
 * `xhedge start`: runs xhedge with a profile (orchestrator, workers and API in one process by default,
 * or one role), on REDIS_URL / DATABASE_URL when set, else on an embedded Redis and PGlite, until
 * Ctrl-C; then shuts down gracefully.
 */
export function registerStart(program: Command, io: CliIo, setExit: (code: number) => void): void {
  program
    .command('start')
    .description('run xhedge with a profile (default: the paper profile) until Ctrl-C')
    .option('--config <file>', 'operator profile', DEFAULT_PROFILE)
    .option('--role <role>', `which part to run: ${RUN_ROLES.join(' | ')}`, 'all')
    .option(
      '--port <port>',
      'API port (default: XHEDGE_PORT, else the profile, else 8780; 0 = any free port)',
    )
    .option(
      '--metrics-port <port>',
      "worker/orchestrator roles: serve this process's Prometheus metrics on this port (default: XHEDGE_METRICS_PORT, else none; 0 = any free port)",
    )
    .option(
      '--dry-run',
      'read the real venues but send them no order: each fills at the venue quote, in xhedge only',
    )
    .action(async (opts: StartOptions) => {
      if (!(RUN_ROLES as readonly string[]).includes(opts.role))
        throw new CliUsageError(`--role must be one of ${RUN_ROLES.join(', ')}, got "${opts.role}"`);
      const portRaw = opts.port ?? process.env.XHEDGE_PORT;
      const port =
        portRaw !== undefined && portRaw !== ''
          ? parseNumberOption(opts.port !== undefined ? 'port' : 'port (XHEDGE_PORT)', portRaw, {
              integer: true,
              min: 0,
              max: 65535,
            })
          : undefined;
      if (opts.metricsPort !== undefined && (opts.role === 'all' || opts.role === 'api'))
        throw new CliUsageError(
          `--metrics-port is for --role worker or orchestrator; role ${opts.role} serves /metrics on the API port`,
        );
      // XHEDGE_METRICS_PORT may be set for a whole deployment: the roles with the API ignore it
      const metricsRaw =
        opts.role === 'all' || opts.role === 'api'
          ? undefined
          : (opts.metricsPort ?? process.env.XHEDGE_METRICS_PORT);
      const metricsPort =
        metricsRaw !== undefined && metricsRaw !== ''
          ? parseNumberOption(
              opts.metricsPort !== undefined ? 'metrics-port' : 'metrics-port (XHEDGE_METRICS_PORT)',
              metricsRaw,
              { integer: true, min: 0, max: 65535 },
            )
          : undefined;
      let config: ReturnType<typeof loadConfigFile>;
      try {
        config = loadConfigFile(opts.config);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        io.err(`invalid config ${opts.config}: ${err.problems.length} problem(s)`);
        for (const p of err.problems) io.err(`  ${formatProblem(p)}`);
        setExit(EXIT_INVALID);
        return;
      }
      const run = await startRun({
        config,
        role: opts.role as RunRole,
        env: process.env,
        ...(port !== undefined ? { port } : {}),
        ...(metricsPort !== undefined ? { metricsPort } : {}),
        ...(opts.dryRun ? { dryRun: true } : {}),
      });
      for (const line of run.describe()) io.out(line);
      const stop = onStopSignal(io);
      const sig = await stop.signal;
      io.out(`xhedge: ${sig} received, shutting down`);
      try {
        await run.stop();
      } finally {
        stop.done();
      }
      io.out('xhedge: stopped cleanly');
      setExit(EXIT_OK);
    });
}
