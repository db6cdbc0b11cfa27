#!/usr/bin/env node
// `pnpm bench`: runs every package's `bench` script (each prints its own table with a baseline
// measured in the same run). Benchmarks never run inside `pnpm test`.
import { spawnSync } from 'node:child_process';
import { dirname, resolve } from 'node:path';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');
const r = spawnSync('pnpm', ['exec', 'turbo', 'run', 'bench', '--concurrency=1', ...process.argv.slice(2)], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, TURBO_TELEMETRY_DISABLED: '1' },
});
process.exit(r.status ?? 1);
