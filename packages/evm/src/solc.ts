import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { XhedgeError } from '@xhedge/core';
import type { Abi, Hex } from 'viem';

/** One compiled contract: its ABI and creation bytecode. */
export interface CompiledContract {
  abi: Abi;
  bytecode: Hex;
}

/** The Solidity sources did not compile; `details.errors` holds solc's messages. */
export class SolidityCompileError extends XhedgeError {
  override name = 'SolidityCompileError';
  constructor(errors: string[]) {
    super('SOLIDITY_COMPILE', `solc reported ${errors.length} error(s)`, {
      details: { errors },
      metaMessages: errors,
    });
  }
}

interface SolcOutput {
  errors?: { severity: string; formattedMessage: string }[];
  contracts?: Record<string, Record<string, { abi: Abi; evm: { bytecode: { object: string } } }>>;
}

const cache = new Map<string, Record<string, CompiledContract>>();

/**
 * Compiles Solidity sources with solc-js (0.8.x, optimizer on: `optimizerRuns`, default 200; fewer
 * runs give smaller code, for contracts near the 24 KiB limit) and returns every contract by name.
 * Output is cached in memory per process by the concatenated sources, so a test file compiling the
 * same fixtures twice pays once. `sources` maps a file name to its text or to a filesystem URL.
 */
export function compileSolidity(
  sources: Record<string, string | URL>,
  opts: { optimizerRuns?: number } = {},
): Record<string, CompiledContract> {
  const texts: Record<string, { content: string }> = {};
  for (const [name, src] of Object.entries(sources)) {
    texts[name] = { content: typeof src === 'string' ? src : readFileSync(src, 'utf8') };
  }
  const runs = opts.optimizerRuns ?? 200;
  const key = JSON.stringify({ texts, runs });
  const hit = cache.get(key);
  if (hit) return hit;
  const require = createRequire(import.meta.url);
  const solc = require('solc') as { compile(input: string): string };
  const input = {
    language: 'Solidity',
    sources: texts,
    settings: {
      optimizer: { enabled: true, runs },
      viaIR: false,
      evmVersion: 'cancun',
      outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
    },
  };
  const out = JSON.parse(solc.compile(JSON.stringify(input))) as SolcOutput;
  const errors = (out.errors ?? []).filter((e) => e.severity === 'error').map((e) => e.formattedMessage);
  if (errors.length > 0) throw new SolidityCompileError(errors);
  const result: Record<string, CompiledContract> = {};
  for (const file of Object.values(out.contracts ?? {})) {
    for (const [name, c] of Object.entries(file)) {
      result[name] = { abi: c.abi, bytecode: `0x${c.evm.bytecode.object}` };
    }
  }
  cache.set(key, result);
  return result;
}

/** Source of the shared test contracts (TestToken, Reverter, FakeGasPriceOracle). */
export const EVM_TEST_CONTRACTS_URL = new URL('../contracts/TestToken.sol', import.meta.url);
