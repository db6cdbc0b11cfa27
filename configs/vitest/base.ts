import { defineConfig } from 'vitest/config';

/** Shared vitest preset: every package's tests write a JSON report that `pnpm test` sums up. */
export const baseVitestConfig = defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    reporters: ['default', ['json', { outputFile: '.vitest/results.json' }]],
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
