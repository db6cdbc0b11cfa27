import { readFileSync } from 'node:fs';
import { isXhedgeError } from '@xhedge/core';
import { Command, CommanderError } from 'commander';
import { CliUsageError, EXIT_FAILURE, EXIT_INVALID, EXIT_OK } from './cli-error.ts';
import { COMMANDS } from './commands/index.ts';
import { type CliIo, processIo } from './io.ts';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

/** Runs the CLI in-process and returns the exit code (tests call this directly). */
export async function runCli(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  let exitCode = EXIT_OK;
  const program = new Command()
    .name('xhedge')
    .description('Cross-chain dynamic-hedging orchestrator for crypto options books')
    .version(pkg.version, '-v, --version')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .showHelpAfterError('(run with --help for usage)');
  for (const register of COMMANDS) register(program, io, (c) => (exitCode = c));
  for (const cmd of program.commands) cmd.exitOverride();
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (
        err.code === 'commander.helpDisplayed' ||
        err.code === 'commander.version' ||
        err.code === 'commander.help'
      )
        return EXIT_OK;
      return EXIT_INVALID;
    }
    if (err instanceof CliUsageError) {
      io.err(`error: ${err.message}`);
      return EXIT_INVALID;
    }
    if (isXhedgeError(err) && (err.code === 'VALIDATION' || err.code === 'CONFIG_INVALID')) {
      io.err(`error: ${err.message}`);
      return EXIT_INVALID;
    }
    // a known failure (a backend that does not answer, a switch engaged but not recorded): its own words
    if (isXhedgeError(err) && (err.code === 'UNAVAILABLE' || err.code === 'KILL_SWITCH_UNRECORDED')) {
      io.err(`error: ${err.message}`);
      return EXIT_FAILURE;
    }
    io.err(
      `xhedge: unexpected failure: ${isXhedgeError(err) ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
    );
    return EXIT_FAILURE;
  }
}
