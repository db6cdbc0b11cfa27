import {
  ConfigError,
  type ConfigProblem,
  formatProblem,
  loadConfigFile,
  summarizeConfig,
  type XhedgeConfig,
} from '@xhedge/config';
import { ValidationError } from '@xhedge/core';
import { checkVenueParams } from '@xhedge/runtime';
import type { Command } from 'commander';
import { EXIT_INVALID, EXIT_OK } from '../cli-error.ts';
import type { CliIo } from '../io.ts';

/**
 * The venue params the runtime would refuse (the check its venue adapters and the venues API make),
 * as config problems with their path in the file: `venues[2].params.keeperDelayMs`. Every venue is
 * checked, disabled ones too: enabling one later must not be what reveals a bad param.
 */
export function venueParamProblems(cfg: XhedgeConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  cfg.venues.forEach((venue, i) => {
    try {
      checkVenueParams(venue);
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      for (const issue of err.issues) {
        const problem: ConfigProblem = {
          path: `venues[${i}]${issue.path ? `.${issue.path}` : ''}`,
          message: `${issue.message} (venue ${venue.id}, kind ${venue.kind})`,
        };
        if (/unrecognized key/i.test(issue.message)) problem.hint = 'remove the key or check its spelling';
        problems.push(problem);
      }
    }
  });
  return problems;
}

/** Loads a config file and checks what the runtime checks beyond the schema; throws ConfigError. */
function loadChecked(file: string): XhedgeConfig {
  const cfg = loadConfigFile(file);
  const problems = venueParamProblems(cfg);
  if (problems.length > 0) throw new ConfigError(file, problems);
  return cfg;
}

/** `xhedge config check <file>`: exit 0 with a one-line summary, or exit 2 listing every problem. */
export function runConfigCheck(file: string, io: CliIo, opts: { json?: boolean } = {}): number {
  try {
    const cfg = loadChecked(file);
    io.out(
      opts.json
        ? JSON.stringify({ ok: true, file, name: cfg.name, summary: summarizeConfig(cfg) })
        : `ok ${file}: ${summarizeConfig(cfg)}`,
    );
    return EXIT_OK;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    if (opts.json) io.out(JSON.stringify({ ok: false, file, problems: err.problems }));
    else {
      io.err(`invalid config ${file}: ${err.problems.length} problem${err.problems.length === 1 ? '' : 's'}`);
      for (const p of err.problems) io.err(`  ${formatProblem(p)}`);
    }
    return EXIT_INVALID;
  }
}

export function registerConfig(program: Command, io: CliIo, setExit: (code: number) => void): void {
  const config = program.command('config').description('operator configuration tools');
  config
    .command('check')
    .description('validate a config file; exit 0 if valid, 2 listing every problem if not')
    .argument('<file>', 'YAML config file, e.g. configs/profiles/paper.yaml')
    .option('--json', 'machine-readable output')
    .action((file: string, opts: { json?: boolean }) => setExit(runConfigCheck(file, io, opts)));
}
