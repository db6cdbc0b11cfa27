import { readFileSync } from 'node:fs';
import { parseConfig } from '@xhedge/config';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { startRun } from './run.ts';

describe('dry run', () => {
  it('refuses split roles: the simulated fills live in the process that places them', async () => {
    const config = parseConfig(
      `${readFileSync(new URL('../../../configs/profiles/paper.yaml', import.meta.url), 'utf8')}\ndryRun: true\n`,
      'paper.yaml',
    );
    for (const role of ['worker', 'orchestrator', 'api'] as const)
      await expect(
        startRun({
          config,
          role,
          env: { REDIS_URL: 'redis://127.0.0.1:1', DATABASE_URL: 'postgres://127.0.0.1:1/x' },
          logger: pino({ level: 'silent' }),
        }),
      ).rejects.toThrow(
        new RegExp(
          `a dry run simulates its fills inside one process: run it with --role all, not --role ${role}`,
        ),
      );
  });
});
