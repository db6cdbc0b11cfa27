import { ConfigError, formatProblem, loadConfigFile, summarizeConfig } from '@xhedge/config';
import type { Command } from 'commander';
import { EXIT_INVALID, EXIT_OK } from '../cli-error.ts';
import type { CliIo } from '../io.ts';

/** `xhedge config check <file>`: exit 0 with a one-line summary, or exit 2 listing every problem. */
export function runConfigCheck(file: string, io: CliIo, opts: { json?: boolean } = {}): number {
  try {
    const cfg = loadConfigFile(file);
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
