#!/usr/bin/env node
// Fails on import cycles: between workspace packages (package.json dependencies) and between source
// files inside each package (relative imports). Also refuses deep imports into another package's src.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');
const dirs = ['packages', 'apps'].flatMap((d) =>
  existsSync(join(root, d)) ? readdirSync(join(root, d)).map((n) => join(root, d, n)) : [],
);
if (existsSync(join(root, 'test', 'package.json'))) dirs.push(join(root, 'test'));
const pkgs = new Map();
for (const dir of dirs) {
  const pj = join(dir, 'package.json');
  if (!existsSync(pj)) continue;
  const p = JSON.parse(readFileSync(pj, 'utf8'));
  pkgs.set(p.name, {
    dir,
    deps: Object.keys({ ...p.dependencies, ...p.devDependencies }).filter((d) => d.startsWith('@xhedge/')),
  });
}

function findCycle(graph) {
  const state = new Map();
  const stack = [];
  for (const start of graph.keys()) {
    if (state.get(start)) continue;
    const visit = (n) => {
      state.set(n, 1);
      stack.push(n);
      for (const m of graph.get(n) ?? []) {
        if (!graph.has(m)) continue;
        if (state.get(m) === 1) return [...stack.slice(stack.indexOf(m)), m];
        if (!state.get(m)) {
          const c = visit(m);
          if (c) return c;
        }
      }
      stack.pop();
      state.set(n, 2);
      return null;
    };
    const c = visit(start);
    if (c) return c;
  }
  return null;
}

const problems = [];
const pkgCycle = findCycle(new Map([...pkgs].map(([n, p]) => [n, p.deps])));
if (pkgCycle) problems.push(`package cycle: ${pkgCycle.join(' -> ')}`);

const IMPORT_RE =
  /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;
let files = 0;
for (const [name, { dir }] of pkgs) {
  const graph = new Map();
  const walk = (d) => {
    for (const e of readdirSync(d)) {
      if (e === 'node_modules' || e.startsWith('.')) continue;
      const f = join(d, e);
      if (statSync(f).isDirectory()) walk(f);
      else if (/\.tsx?$/.test(e) && !/\.d\.ts$/.test(e)) {
        files++;
        const src = readFileSync(f, 'utf8');
        const deps = [];
        for (const m of src.matchAll(IMPORT_RE)) {
          const spec = m[1] ?? m[2];
          if (spec.startsWith('.')) deps.push(resolve(dirname(f), spec));
          else if (/^@xhedge\/[^/]+\/src\//.test(spec))
            problems.push(`${relative(root, f)}: deep import "${spec}" (use the package's index)`);
        }
        graph.set(f, deps);
      }
    }
  };
  walk(dir);
  // Type-only imports cannot cycle at run time but still tangle the design: count them too.
  const cycle = findCycle(graph);
  if (cycle) problems.push(`${name}: file cycle: ${cycle.map((f) => relative(root, f)).join(' -> ')}`);
}

if (problems.length) {
  for (const p of problems) console.error(`cycles: ${p}`);
  process.exit(1);
}
console.log(`cycles: none (${pkgs.size} packages, ${files} files)`);
