import { readFileSync } from 'node:fs';
import { formatPath, XhedgeError } from '@xhedge/core';
import { type Document, isNode, LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { SecretRef, VENUE_KINDS, XhedgeConfig } from './schema.ts';

export interface ConfigProblem {
  /** Dotted path in the file: `venues[1].chain`; empty for the whole file. */
  path: string;
  message: string;
  /** 1-based line where the YAML parser places the value (or its parent when it is missing). */
  line?: number;
  hint?: string;
}

/** The config file is unreadable or invalid; `problems` lists every one found. Never contains secret values. */
export class ConfigError extends XhedgeError {
  override name = 'ConfigError';
  readonly file: string;
  readonly problems: readonly ConfigProblem[];
  constructor(file: string, problems: readonly ConfigProblem[]) {
    super('CONFIG_INVALID', `${file}: ${problems.length} problem${problems.length === 1 ? '' : 's'}`, {
      details: { file, problems },
      metaMessages: problems.map(formatProblem),
    });
    this.file = file;
    this.problems = problems;
  }
}

export function formatProblem(p: ConfigProblem): string {
  const where = p.line !== undefined ? ` (line ${p.line})` : '';
  return `${p.path || '<root>'}${where}: ${p.message}${p.hint ? `\n    hint: ${p.hint}` : ''}`;
}

/** A key whose value, given inline as a string or number, is taken for a secret. */
const SECRET_KEY_RE = /(private.?key|secret|mnemonic|seed.?phrase|password|passphrase|api.?key|token)/i;
/**
 * A key whose value is a secret whatever its shape: every string or number in a list or object under it
 * (`privateKeys: ['0x…']`, `apiSecret: {value: …}`) is one. A bare `token` is not one: in adapter
 * settings it names ERC-20 tokens (GMX's `indexTokens: [{address, symbol, decimals}]`), whose entries are
 * checked key by key. The same rule as the API's for venues it is given.
 */
const SECRET_CONTAINER_RE =
  /(private.?key|secret|mnemonic|seed.?phrase|password|passphrase|api.?key|(auth|access|api|bearer|refresh|session).?token)/i;
/** A key naming a URL (`pricesUrl`, `tokensUrl`, `rpcUrls`): when it holds URLs they are checked as URLs. */
const URL_KEY_RE = /urls?$/i;

function isUrl(value: unknown): value is string {
  if (typeof value !== 'string' || !/^[a-z][a-z0-9+.-]*:\/\/\S+$/i.test(value)) return false;
  try {
    new URL(value);
    return true;
  } catch {
    return false;
  }
}

type ParamsFinding = { path: (string | number)[]; message: string; hint: string };

const INLINE_SECRET: Omit<ParamsFinding, 'path'> = {
  message: 'inline secret not allowed (the value is not shown)',
  hint: 'move it to credentials as {env: VAR_NAME} or {keyFile: path}',
};

/**
 * Inline secrets and credentials in URLs anywhere under a venue's `params`, each by its path, never its
 * value: a string or number under a secret-looking key, or anywhere inside a list or object under a
 * secret container name (`privateKeys[0]`, `apiSecret.value`, `accounts[0].apiKey[0]`); a reference
 * (`{env: VAR_NAME}`, `{keyFile: path}`) is not one. A URL (or list of them) under a key ending in
 * `Url`/`Urls` is not taken for a secret by its key's name (`tokensUrl`): it is refused only when it
 * holds a credential (`user:pass@`, `?password=`). Walked without recursion.
 */
function findInlineSecrets(params: unknown, path: (string | number)[]): ParamsFinding[] {
  const out: ParamsFinding[] = [];
  const stack: { value: unknown; path: (string | number)[]; secret: boolean }[] = [
    { value: params, path, secret: false },
  ];
  while (stack.length > 0) {
    const { value, path: at, secret } = stack.pop() as (typeof stack)[number];
    if (value === null || typeof value !== 'object') continue;
    const entries: [string | number, unknown][] = Array.isArray(value)
      ? [...value.entries()]
      : Object.entries(value);
    const next: typeof stack = [];
    for (const [k, v] of entries) {
      const p = [...at, k];
      const scalar = typeof v === 'string' || typeof v === 'number';
      if (!secret && typeof k === 'string' && URL_KEY_RE.test(k)) {
        const urls: [(string | number)[], string][] | undefined = isUrl(v)
          ? [[p, v]]
          : Array.isArray(v) && v.length > 0 && v.every(isUrl)
            ? v.map((u, i): [(string | number)[], string] => [[...p, i], u])
            : undefined;
        // a URL setting (GMX's tokensUrl, pricesUrl): a URL, whatever key it may hold (an RPC or price
        // endpoint's key is part of its URL), masked wherever it is shown (the API's views, the logs)
        if (urls) continue;
      }
      const named = (re: RegExp) => secret || (typeof k === 'string' && re.test(k));
      if (scalar) {
        if (!named(SECRET_KEY_RE)) continue;
        const urlKey = !secret && typeof k === 'string' && URL_KEY_RE.test(k);
        out.push({
          path: p,
          message: INLINE_SECRET.message,
          hint: urlKey
            ? `${INLINE_SECRET.hint}; a key ending in Url is taken for a URL only when it holds one (scheme://host/…)`
            : INLINE_SECRET.hint,
        });
      } else if (v !== null && typeof v === 'object') {
        const container = named(SECRET_CONTAINER_RE);
        if (container && SecretRef.safeParse(v).success) continue;
        next.push({ value: v, path: p, secret: container });
      }
    }
    // pushed last to first: walked in the order of the file
    stack.push(...next.reverse());
  }
  return out;
}

function lineOf(doc: Document, counter: LineCounter, path: readonly PropertyKey[]): number | undefined {
  for (let n = path.length; n >= 0; n--) {
    const node = doc.getIn(path.slice(0, n) as (string | number)[], true);
    if (isNode(node) && node.range) return counter.linePos(node.range[0]).line;
  }
  return undefined;
}

function hintFor(issue: z.core.$ZodIssue): string | undefined {
  const last = issue.path[issue.path.length - 1];
  if (last === 'kind' && issue.path[0] === 'venues') return `valid kinds: ${VENUE_KINDS.join(', ')}`;
  if (last === 'chain') return 'chains look like evm:1, evm:42161, evm:10, solana:mainnet-beta or offchain';
  if (last === 'instrument') return 'instrument ids look like BTC-USD:PERP or BTC-USD:OPT:20261225:100000:C';
  if (issue.code === 'unrecognized_keys') return 'remove the key or check its spelling';
  if (issue.code === 'invalid_type' && issue.message.includes('received undefined'))
    return 'this field is required';
  if (issue.message.includes('secret'))
    return 'put the value in an environment variable and write {env: VAR_NAME}';
  return undefined;
}

/** Parses and validates config text. Throws ConfigError listing every problem with path, line and hint. */
export function parseConfig(text: string, file = '<config>'): XhedgeConfig {
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.map((e) => ({
        path: '',
        message: `YAML syntax: ${e.message.split('\n')[0]}`,
        line: counter.linePos(e.pos[0]).line,
        hint: 'check indentation, colons and quotes on that line',
      })),
    );
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    // The yaml library throws a bare ReferenceError when aliases expand past maxAliasCount.
    if (!(err instanceof ReferenceError)) throw err;
    throw new ConfigError(file, [
      {
        path: '',
        message: 'YAML aliases expand too far (over 100 alias uses; an alias bomb?)',
        hint: 'write the values out or use fewer *alias references',
      },
    ]);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(file, [
      { path: '', message: 'the file must hold a YAML mapping (key: value lines)', line: 1 },
    ]);
  }
  const problems: ConfigProblem[] = [];
  const venues = (raw as { venues?: unknown }).venues;
  if (Array.isArray(venues)) {
    venues.forEach((v, i) => {
      if (v === null || typeof v !== 'object') return;
      for (const { path, message, hint } of findInlineSecrets((v as { params?: unknown }).params, [
        'venues',
        i,
        'params',
      ])) {
        const problem: ConfigProblem = { path: formatPath(path), message, hint };
        const line = lineOf(doc, counter, path);
        if (line !== undefined) problem.line = line;
        problems.push(problem);
      }
    });
  }
  const res = XhedgeConfig.safeParse(raw);
  if (!res.success) {
    for (const issue of res.error.issues) {
      const problem: ConfigProblem = { path: formatPath(issue.path), message: issue.message };
      const line = lineOf(doc, counter, issue.path);
      if (line !== undefined) problem.line = line;
      const hint = hintFor(issue);
      if (hint !== undefined) problem.hint = hint;
      problems.push(problem);
    }
  }
  if (problems.length > 0 || !res.success) throw new ConfigError(file, problems);
  return res.data;
}

/** Reads and validates a config file. */
export function loadConfigFile(file: string): XhedgeConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(file, [
      { path: '', message: code === 'ENOENT' ? 'file not found' : `cannot read file (${code ?? 'error'})` },
    ]);
  }
  return parseConfig(text, file);
}

/** One line describing a valid config, for logs and the CLI. Contains no secrets. */
export function summarizeConfig(cfg: XhedgeConfig): string {
  const chains = new Set(cfg.venues.map((v) => v.chain));
  const secretCount = cfg.venues.reduce((n, v) => n + Object.keys(v.credentials).length, 0);
  return (
    `${cfg.name}: ${cfg.underlyings.length} underlyings (${cfg.underlyings.map((u) => u.symbol).join(', ')}), ` +
    `${cfg.venues.length} venues on ${chains.size} chains, ${cfg.book.positions.length} positions, ` +
    `policy ${cfg.policy.default.kind}, ${secretCount} credential refs, ` +
    `redis ${cfg.redis?.url ? 'external' : 'embedded'}, database ${cfg.database?.url ? 'external' : 'embedded'}` +
    (cfg.dryRun ? ', DRY RUN (no order reaches a real venue)' : '')
  );
}
