import type { Command } from 'commander';
import type { CliIo } from '../io.ts';
import { registerBacktest } from './backtest.ts';
import { registerConfig } from './config-check.ts';
import { registerDryRun } from './dry-run.ts';
import { registerGreeks } from './greeks.ts';
import { registerKillSwitch } from './kill-switch.ts';
import { registerLocalChain } from './local-chain.ts';
import { registerPositions } from './positions.ts';
import { registerRisk } from './risk.ts';
import { registerSimulate } from './simulate.ts';
import { registerStart } from './start.ts';

type Register = (program: Command, io: CliIo, setExit: (code: number) => void) => void;

/** Every subcommand; add one line per command module. */
export const COMMANDS: readonly Register[] = [
  registerStart,
  registerConfig,
  registerBacktest,
  registerRisk,
  registerSimulate,
  registerLocalChain,
  registerGreeks,
  registerKillSwitch,
  registerDryRun,
  registerPositions,
];
