import type { Command } from 'commander';
import type { CliIo } from '../io.ts';
import { runConfigCheck } from './config-check.ts';

export const DEFAULT_PROFILE = 'configs/profiles/paper.yaml';

/**
 * `xhedge start`: until the all-in-one run lands (orchestrator, workers and API), it validates the
 * profile and says so.
 */
export function registerStart(program: Command, io: CliIo, setExit: (code: number) => void): void {
  program
    .command('start')
    .description('run xhedge with a profile (default: the paper profile)')
    .option('--config <file>', 'operator profile', DEFAULT_PROFILE)
    .action((opts: { config: string }) => {
      const code = runConfigCheck(opts.config, io);
      if (code === 0)
        io.out(
          'xhedge start: config valid. The orchestrator, workers and API are not wired in yet; nothing else was started.',
        );
      setExit(code);
    });
}
