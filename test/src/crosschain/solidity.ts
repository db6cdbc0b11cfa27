import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);

interface SolcOutput {
  errors?: { severity: string; formattedMessage: string }[];
  contracts: Record<string, Record<string, { abi: unknown[]; evm: { bytecode: { object: string } } }>>;
}

/** Where each source unit was read from, so imports resolve next to the importing package (pnpm layout). */
const origin = new Map<string, string>();

function packageRoot(name: string, fromDir: string): string | undefined {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return realpathSync(candidate);
    if (dirname(dir) === dir) return undefined;
  }
}

function resolveImport(path: string): { contents: string } | { error: string } {
  const parts = path.split('/');
  const name = path.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? '');
  const rest = parts.slice(name.split('/').length).join('/');
  // Resolve from the package that holds the importer first (its peers are its siblings), then from here.
  const tried = [
    ...new Set([...origin.values()].map((f) => dirname(f))),
    dirname(new URL(import.meta.url).pathname),
  ];
  for (const from of tried) {
    const root = packageRoot(name, from);
    if (root && existsSync(join(root, rest))) {
      const file = join(root, rest);
      origin.set(path, file);
      return { contents: patchForOz5(path, readFileSync(file, 'utf8')) };
    }
  }
  return { error: `not found: ${path}` };
}

/**
 * EndpointV2 and SimpleMessageLib were written against OpenZeppelin 4's argument-less `Ownable()`,
 * while OApp/OFT need OpenZeppelin 5 (`Ownable(initialOwner)`); one compilation can hold only one
 * OpenZeppelin. Under 5 those two contracts cannot be concrete, so they are compiled as abstract
 * and deployed through thin subclasses that pass `Ownable(owner)` (contracts.ts). No logic changes.
 */
function patchForOz5(path: string, source: string): string {
  if (path.endsWith('/contracts/EndpointV2.sol'))
    return source.replace('\ncontract EndpointV2 is', '\nabstract contract EndpointV2 is');
  if (path.endsWith('/messagelib/SimpleMessageLib.sol'))
    return source.replace('\ncontract SimpleMessageLib is', '\nabstract contract SimpleMessageLib is');
  return source;
}

export interface Artifact {
  abi: readonly unknown[];
  bytecode: `0x${string}`;
}

/**
 * Compiles `sources` (unit name → Solidity) with solc-js, resolving `@layerzerolabs/...` and
 * `@openzeppelin/...` imports from node_modules. Returns artifacts keyed by contract name.
 */
export function compile(sources: Record<string, string>): Record<string, Artifact> {
  const solc = require('solc') as {
    compile(input: string, opts: { import: (p: string) => unknown }): string;
  };
  const input = {
    language: 'Solidity',
    sources: Object.fromEntries(Object.entries(sources).map(([k, v]) => [k, { content: v }])),
    settings: {
      optimizer: { enabled: true, runs: 200 },
      viaIR: false,
      evmVersion: 'cancun',
      outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
    },
  };
  const out = JSON.parse(solc.compile(JSON.stringify(input), { import: resolveImport })) as SolcOutput;
  const errors = (out.errors ?? []).filter((e) => e.severity === 'error');
  if (errors.length > 0) throw new Error(errors.map((e) => e.formattedMessage).join('\n'));
  const result: Record<string, Artifact> = {};
  for (const file of Object.values(out.contracts)) {
    for (const [name, c] of Object.entries(file)) {
      if (c.evm.bytecode.object) result[name] = { abi: c.abi, bytecode: `0x${c.evm.bytecode.object}` };
    }
  }
  return result;
}
