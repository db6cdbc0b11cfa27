#!/usr/bin/env node
// `pnpm test`: cycle check, lint, typecheck, then every package's tests through turbo; last, one
// line `tests: N passed, N failed` summed from each package's vitest JSON report.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');
const env = {
  ...process.env,
  TURBO_TELEMETRY_DISABLED: '1',
  DO_NOT_TRACK: '1',
  FORCE_COLOR: process.env.FORCE_COLOR ?? '0',
};
const pkgDirs = ['packages', 'apps'].flatMap((d) =>
  existsSync(join(root, d)) ? readdirSync(join(root, d)).map((n) => join(root, d, n)) : [],
);
pkgDirs.push(join(root, 'test'));
for (const d of pkgDirs) rmSync(join(d, '.vitest'), { recursive: true, force: true });

function step(name, cmd, args) {
  console.log(`\n== ${name}: ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env });
  if (r.status !== 0) {
    console.error(`\n== ${name} failed (exit ${r.status ?? r.signal})`);
    return false;
  }
  return true;
}

let ok = step('cycles', 'node', ['scripts/check-cycles.mjs']);
ok = step('lint', 'pnpm', ['exec', 'biome', 'ci', '.']) && ok;
ok =
  step('typecheck', 'pnpm', [
    'exec',
    'turbo',
    'run',
    'typecheck',
    '--concurrency=2',
    '--output-logs=errors-only',
  ]) && ok;
const testsOk = step('tests', 'pnpm', ['exec', 'turbo', 'run', 'test', '--concurrency=1', '--continue']);
ok = testsOk && ok;

let passed = 0;
let failed = 0;
let skipped = 0;
const perPackage = [];
const failures = [];
for (const d of pkgDirs) {
  const f = join(d, '.vitest', 'results.json');
  if (!existsSync(f)) continue;
  const r = JSON.parse(readFileSync(f, 'utf8'));
  passed += r.numPassedTests;
  failed += r.numFailedTests;
  skipped += r.numPendingTests + (r.numTodoTests ?? 0);
  perPackage.push(`${d.slice(root.length + 1)} ${r.numPassedTests}/${r.numTotalTests}`);
  for (const file of r.testResults ?? []) {
    const failedTests = (file.assertionResults ?? []).filter((a) => a.status === 'failed');
    // A file that failed outside any test (an import error, a hook) has no failed assertion.
    if (failedTests.length === 0 && file.status === 'failed')
      failures.push({ where: file.name.slice(root.length + 1), message: file.message ?? '' });
    for (const a of failedTests)
      failures.push({
        where: `${file.name.slice(root.length + 1)} > ${a.fullName}`,
        message: (a.failureMessages ?? []).join('\n'),
      });
  }
}
// Failures last, short, so that the tail of a long log (all a CI page may keep) names them.
for (const f of failures) {
  console.log(`\n== failed: ${f.where}`);
  const lines = f.message.split('\n').filter((l) => l.trim() !== '');
  console.log(lines.slice(0, 12).join('\n'));
}
console.log(`\n== per package: ${perPackage.join(', ')}`);
if (!ok && failed === 0) failed = 1; // a failed lint/typecheck/cycle step counts as a failure
console.log(`tests: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(ok ? 0 : 1);
