import { ValidationError } from '@xhedge/core';
import { expect } from 'vitest';
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
