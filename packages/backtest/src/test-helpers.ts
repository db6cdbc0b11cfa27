import { ValidationError } from '@xhedge/core';
import { expect } from 'vitest';
import { planFromFile } from './backtest.ts';
import { type EngineJob, type PathBatch, runPaths } from './engine.ts';
import { parseBacktestFile } from './spec.ts';

/** The problems a backtest file is refused for, one `path: message` per line (tests only). */
export function specProblems(text: string): string {
  try {
    parseBacktestFile(text);
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return (err as ValidationError).issues.map((i) => `${i.path}: ${i.message}`).join('\n');
  }
  throw new Error('expected a validation error');
}

/** One fill the engine reported (tests only). */
export interface SeenFill {
  venue: string;
  sizeBase: number;
  step: number;
}

/**
 * Runs one path of a backtest file's first policy over a replay of `prices` (one bar per step), and
 * returns the fills it made and the path's batch (tests only).
 */
export async function replayFills(
  file: string,
  prices: readonly number[],
): Promise<{ fills: SeenFill[]; batch: PathBatch }> {
  const plan = planFromFile(parseBacktestFile(file), '.');
  const job: EngineJob = {
    ...plan.base,
    paths: 1,
    process: { kind: 'replay', prices: Float64Array.from(prices), barsPerStep: 1 },
    policy: (plan.policies[0] as { policy: EngineJob['policy'] }).policy,
  };
  const fills: SeenFill[] = [];
  const batch = await runPaths(job, 0, 1, {
    onEvent: (e) => {
      if (e.type === 'fill') fills.push({ venue: e.venue, sizeBase: e.sizeBase, step: e.step });
    },
  });
  return { fills, batch };
}
