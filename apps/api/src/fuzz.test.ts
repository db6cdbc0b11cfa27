/**
 * Fuzzes the operator API from its own OpenAPI document (RISK-CONTROLS.md: "every malformed request gets a
 * 4xx, never a 5xx"). For every operation of `/docs/json`, authenticated with the least role the route
 * allows (so requests reach validation and the handler), fast-check sends requests built from the
 * operation's JSON schemas: valid-shaped ones with random values, and malformed ones (wrong types, missing
 * and extra fields, huge and NaN-like numbers, long and unicode strings, nulls, arrays for objects, deep
 * nesting, invalid JSON, wrong content types, bad path parameters and query strings, junk cookies).
 *
 * Every answer must be below 500; every 4xx the one error shape of errors.ts with a code whose status it
 * is, and a VALIDATION error must list its issues, each naming a field. Where the malformation is known
 * to be invalid, the answer must be a 400 naming that field (or the union or object that holds it).
 * No answer and no log line may hold a secret: the bearer tokens of the run (and their hashes), tokens
 * minted and session ids opened during the run (after the answer that created them), credential
 * references of a venue.
 *
 * The seed is fixed (in each test's name; override with XHEDGE_FUZZ_SEED) and fast-check prints seed and
 * path of a failure, so a failure reproduces. XHEDGE_FUZZ_RUNS sets the requests per operation.
 */
import { request as httpRequest } from 'node:http';
import { loadConfigFile } from '@xhedge/config';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { API_ERROR_STATUS } from './errors.ts';
import type { Role } from './schemas.ts';
import { buildApiServer, MAX_PATH_PARAM_LENGTH, REDACT_PATHS } from './server.ts';
import { type MemoryPorts, memoryPorts } from './testing/memory-ports.ts';
import { sha256Hex } from './tokens.ts';

/** Fixed seed so that a failure reproduces (fast-check prints it with the failing path). */
const SEED = Number(process.env.XHEDGE_FUZZ_SEED ?? 20_250_611);
/** Generated requests per operation (not counting shrinking after a failure). */
const RUNS = Number(process.env.XHEDGE_FUZZ_RUNS ?? 150);
/** An answer slower than this is a failure (a hung request), ms. */
const ANSWER_TIMEOUT_MS = 10_000;
/** The server's default `bodyLimit`, bytes. */
const BODY_LIMIT_BYTES = 256 * 1024;

const cfg = loadConfigFile(new URL('../../../configs/profiles/paper.yaml', import.meta.url).pathname);
const ADMIN = 'admin-token-for-fuzz-tests-0123456789';
/** Credential references of a venue the run holds: the API shows their names only, never these. */
const CANARY_ENV = 'XH_FUZZ_CANARY_KEY_ENV';
const CANARY_KEY_FILE = '/run/secrets/xh-fuzz-canary.key';

// ---------------------------------------------------------------------------------------------------
// The subset of JSON Schema the OpenAPI document uses, and arbitraries built from it

interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  propertyNames?: JsonSchema;
  items?: JsonSchema;
  minItems?: number;
  maxItems?: number;
  enum?: unknown[];
  const?: unknown;
  pattern?: string;
  format?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  description?: string;
}

type JsonType = 'null' | 'boolean' | 'number' | 'string' | 'array' | 'object';

/** A JSON text spliced into a body as is: numbers JSON.stringify cannot write (1e309, -0), deep nesting. */
class RawJson {
  constructor(
    readonly text: string,
    readonly type: JsonType,
    /** For numbers: whether JSON.parse gives a finite number. */
    readonly finite = true,
  ) {}
}

function jsonTypeOf(v: unknown): JsonType {
  if (v instanceof RawJson) return v.type;
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  const t = typeof v;
  if (t === 'boolean' || t === 'number' || t === 'string') return t;
  return 'object';
}

/** JSON text of a value that may hold {@link RawJson} pieces. */
function toJsonText(v: unknown): string {
  const raws: string[] = [];
  const text = JSON.stringify(v, (_key: string, x: unknown) =>
    x instanceof RawJson ? `\u0000raw${raws.push(x.text) - 1}\u0000` : x,
  );
  return text.replace(/"\\u0000raw(\d+)\\u0000"/g, (_m, i: string) => raws[Number(i)] ?? 'null');
}

const alternativesOf = (s: JsonSchema): JsonSchema[] | undefined => s.anyOf ?? s.oneOf;
/** The schema's alternatives, unions expanded (a schema without one is its own alternative). */
function flatten(s: JsonSchema): JsonSchema[] {
  const alts = alternativesOf(s);
  return alts ? alts.flatMap(flatten) : [s];
}
function typesOf(s: JsonSchema): string[] | undefined {
  return s.type === undefined ? undefined : Array.isArray(s.type) ? s.type : [s.type];
}

const SAFE_MAX = Number.MAX_SAFE_INTEGER;

function integerArb(s: JsonSchema): fc.Arbitrary<number> {
  const lo = Math.max(
    -SAFE_MAX,
    s.minimum ?? (s.exclusiveMinimum !== undefined ? Math.floor(s.exclusiveMinimum) + 1 : -SAFE_MAX),
  );
  const hi = Math.min(
    SAFE_MAX,
    s.maximum ?? (s.exclusiveMaximum !== undefined ? Math.ceil(s.exclusiveMaximum) - 1 : SAFE_MAX),
  );
  return fc.oneof(
    fc.constantFrom(lo, hi),
    fc.bigInt({ min: BigInt(lo), max: BigInt(Math.min(hi, lo + 10_000)) }).map(Number),
    fc.bigInt({ min: BigInt(lo), max: BigInt(hi) }).map(Number),
  );
}

function numberArb(s: JsonSchema): fc.Arbitrary<number> {
  const min = s.minimum ?? s.exclusiveMinimum;
  const max = s.maximum ?? s.exclusiveMaximum;
  const double = fc.double({
    noNaN: true,
    noDefaultInfinity: true,
    ...(min !== undefined ? { min, minExcluded: s.exclusiveMinimum !== undefined } : {}),
    ...(max !== undefined ? { max, maxExcluded: s.exclusiveMaximum !== undefined } : {}),
  });
  // readable amounts too, not only extreme doubles
  const lo = Math.max(-1_000_000, Math.ceil(min ?? -1_000_000));
  const hi = Math.min(1_000_000, Math.floor(max ?? 1_000_000));
  if (lo > hi) return double;
  const small = fc.integer({ min: lo, max: hi }).filter((n) => !rejectsValue(s, n));
  return fc.oneof(double, small);
}

function stringArb(s: JsonSchema): fc.Arbitrary<string> {
  const minLength = s.minLength ?? 0;
  const maxLength = Math.max(minLength, Math.min(s.maxLength ?? 40, 60));
  if (s.pattern !== undefined) {
    const re = new RegExp(s.pattern);
    return fc
      .stringMatching(re)
      .filter((x) => x.length >= minLength && (s.maxLength === undefined || x.length <= s.maxLength));
  }
  if (s.format === 'uri') return fc.webUrl();
  return fc.oneof(
    fc.string({ minLength, maxLength, unit: 'grapheme-ascii' }),
    fc.string({ minLength, maxLength, unit: 'grapheme' }),
    ...(s.maxLength !== undefined
      ? [fc.string({ minLength: s.maxLength, maxLength: s.maxLength, unit: 'grapheme-ascii' })]
      : []),
  );
}

function objectArb(s: JsonSchema, depth: number): fc.Arbitrary<Record<string, unknown>> {
  const props = s.properties ?? {};
  const shape: Record<string, fc.Arbitrary<unknown>> = {};
  for (const [k, v] of Object.entries(props)) shape[k] = schemaArb(v, depth + 1);
  const record = fc.record(shape, { requiredKeys: (s.required ?? []).filter((k) => k in props) });
  const extra = s.additionalProperties;
  if (extra === false || extra === undefined) return record as fc.Arbitrary<Record<string, unknown>>;
  const keys =
    s.propertyNames?.pattern !== undefined
      ? fc.stringMatching(new RegExp(s.propertyNames.pattern))
      : fc.string({ maxLength: 12 });
  const values = schemaArb(extra === true ? {} : extra, depth + 1);
  return fc
    .tuple(fc.dictionary(keys, values, { maxKeys: 3 }), record)
    .map(([more, named]) => ({ ...more, ...(named as Record<string, unknown>) }));
}

/** Values the schema accepts (as far as JSON Schema says; zod refinements beyond it are not modelled). */
function schemaArb(s: JsonSchema, depth = 0): fc.Arbitrary<unknown> {
  if (s.const !== undefined) return fc.constant(s.const);
  if (s.enum !== undefined) return fc.constantFrom(...s.enum);
  const alts = alternativesOf(s);
  if (alts) return fc.oneof(...alts.map((a) => schemaArb(a, depth)));
  const types = typesOf(s);
  if (types && types.length > 1) return fc.oneof(...types.map((t) => schemaArb({ ...s, type: t }, depth)));
  switch (types?.[0]) {
    case 'string':
      return stringArb(s);
    case 'integer':
      return integerArb(s);
    case 'number':
      return numberArb(s);
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'array': {
      const minLength = s.minItems ?? 0;
      return fc.array(schemaArb(s.items ?? {}, depth + 1), {
        minLength,
        maxLength: Math.max(minLength, Math.min(s.maxItems ?? 3, 3)),
      });
    }
    case 'object':
      return objectArb(s, depth);
    default:
      return fc.jsonValue({ maxDepth: Math.max(0, 2 - depth) });
  }
}

/** True when the schema certainly refuses `v` (type, enum, pattern, bounds); false when it may accept it. */
function rejectsValue(s: JsonSchema, v: unknown): boolean {
  const alts = alternativesOf(s);
  if (alts) return alts.every((a) => rejectsValue(a, v));
  const t = jsonTypeOf(v);
  const plain = v instanceof RawJson ? undefined : v;
  if (s.const !== undefined) return t !== 'object' && t !== 'array' && plain !== s.const;
  if (s.enum !== undefined) return t === 'object' || t === 'array' || !s.enum.includes(plain);
  const types = typesOf(s);
  if (!types) return false;
  const isInt = t === 'number' && (v instanceof RawJson ? false : Number.isInteger(v));
  if (!types.some((ty) => ty === t || (ty === 'integer' && t === 'number'))) return true;
  if (t === 'number') {
    if (v instanceof RawJson) return !v.finite;
    const n = v as number;
    if (!Number.isFinite(n)) return true;
    if (!types.includes('number') && !isInt) return true;
    if (s.minimum !== undefined && n < s.minimum) return true;
    if (s.maximum !== undefined && n > s.maximum) return true;
    if (s.exclusiveMinimum !== undefined && n <= s.exclusiveMinimum) return true;
    if (s.exclusiveMaximum !== undefined && n >= s.exclusiveMaximum) return true;
  }
  if (t === 'string' && s.pattern !== undefined && plain !== undefined)
    return !new RegExp(s.pattern).test(plain as string);
  return false;
}

/**
 * As {@link rejectsValue}, for a query-string value: a whole number is written in decimal digits (an
 * empty value, `0x10`, `1e3` or ` 5 ` is not one), then its bounds apply.
 */
function rejectsQueryValue(s: JsonSchema, raw: string): boolean {
  const types = typesOf(s) ?? [];
  if (types.includes('integer')) return !/^-?\d+$/.test(raw) || rejectsValue(s, Number(raw));
  if (types.includes('number')) return !/^-?\d+(\.\d+)?$/.test(raw) || rejectsValue(s, Number(raw));
  return rejectsValue(s, raw);
}

/** The object alternatives of `schemas` that `value` (an object) may belong to: keys allowed, enums matched. */
function branchesFor(schemas: JsonSchema[], value: Record<string, unknown>): JsonSchema[] {
  return schemas
    .flatMap(flatten)
    .filter((b) => (typesOf(b) ?? ['object']).includes('object'))
    .filter((b) =>
      Object.entries(value).every(([k, v]) => {
        const p = b.properties && Object.hasOwn(b.properties, k) ? b.properties[k] : undefined;
        if (p) return p.enum === undefined && p.const === undefined ? true : !rejectsValue(p, v);
        return b.additionalProperties !== false;
      }),
    );
}

function childSchemas(parents: JsonSchema[], parent: unknown, key: string | number): JsonSchema[] {
  if (typeof key === 'number')
    return parents.flatMap(flatten).flatMap((p) => (p.items !== undefined ? [p.items] : []));
  return branchesFor(parents, parent as Record<string, unknown>).flatMap((b) => {
    const p = b.properties && Object.hasOwn(b.properties, key) ? b.properties[key] : undefined;
    if (p) return [p];
    if (typeof b.additionalProperties === 'object') return [b.additionalProperties];
    return b.additionalProperties === false ? [] : [{}];
  });
}

type Segment = string | number;

/** A place in a body: its path, the schemas that may apply there, and the depth of its outermost union. */
interface Slot {
  path: Segment[];
  value: unknown;
  schemas: JsonSchema[];
  /** Depth (path length) of the outermost union at or above this place; zod may name the union instead. */
  unionDepth: number | undefined;
}

function slotsOf(value: unknown, schemas: JsonSchema[], path: Segment[], unionDepth?: number): Slot[] {
  const isUnion = schemas.some((s) => alternativesOf(s) !== undefined);
  const u = unionDepth ?? (isUnion ? path.length : undefined);
  const out: Slot[] = [{ path, value, schemas, unionDepth: u }];
  if (Array.isArray(value))
    value.forEach((v, i) => {
      out.push(...slotsOf(v, childSchemas(schemas, value, i), [...path, i], u));
    });
  else if (value !== null && typeof value === 'object' && !(value instanceof RawJson))
    for (const [k, v] of Object.entries(value))
      out.push(...slotsOf(v, childSchemas(schemas, value, k), [...path, k], u));
  return out;
}

/** `['body', 'legs', 0, 'venue']` → `body.legs[0].venue`, as errors.ts names fields. */
function fieldName(path: Segment[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? p : `.${p}`;
  return out;
}

/** The field names an error may give for `path`: itself, or an enclosing field down to `floor` deep. */
function namesFor(path: Segment[], floor: number): string[] {
  const out: string[] = [];
  for (let d = Math.min(floor, path.length); d <= path.length; d++) out.push(fieldName(path.slice(0, d)));
  return out;
}

function clone<T>(v: T): T {
  if (Array.isArray(v)) return v.map(clone) as T;
  if (v !== null && typeof v === 'object' && !(v instanceof RawJson)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) defineKey(out, k, clone(x));
    return out as T;
  }
  return v;
}
/** Sets an own key, `__proto__` included (an assignment would set the prototype instead). */
function defineKey(o: Record<string, unknown>, k: string, v: unknown): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}
function at(root: unknown, path: Segment[]): unknown {
  let cur = root;
  for (const p of path) cur = (cur as Record<Segment, unknown>)[p];
  return cur;
}

// ---------------------------------------------------------------------------------------------------
// Malformed values

const NASTY_STRINGS = [
  '',
  ' ',
  'NaN',
  'nan',
  'Infinity',
  '-Infinity',
  '1e309',
  '-1e309',
  '-0',
  '0',
  '-1',
  '0x10',
  '0b11',
  '1e3',
  '1.5',
  '.5',
  '5.',
  '1_000',
  ' 5 ',
  '9007199254740993',
  '99999999999999999999999999',
  '9'.repeat(400),
  '-00',
  '+5',
  '5 ',
  '1.0',
  '8.64e15',
  'null',
  'undefined',
  'true',
  '[]',
  '{}',
  '%00',
  '\u0000',
  'a\u0000b',
  '\uFEFF',
  '\u202Eevil',
  '\uD800',
  '💥',
  '𝕏𝔶𝔷',
  'Ω≈ç√∫',
  'ﷺ',
  'e\u0301',
  '../..',
  ':',
  '/',
  '%',
  '%2F',
  '\\',
  "' OR 1=1 --",
  '<script>alert(1)</script>',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a log4j-style lookup sent as a plain string
  '${jndi:ldap://x/a}',
  '{{7*7}}',
  '__proto__',
  'constructor',
  '\n',
  '\r\n',
  '\t',
  'x'.repeat(129),
  'x'.repeat(501),
  'é'.repeat(600),
  'x'.repeat(10_000),
  '😀'.repeat(3_000),
];

const deepArrays = (n: number) => new RawJson(`${'['.repeat(n)}${']'.repeat(n)}`, 'array');
const deepObjects = (n: number) => new RawJson(`${'{"a":'.repeat(n)}1${'}'.repeat(n)}`, 'object');
const RAW_VALUES = [
  new RawJson('1e309', 'number', false),
  new RawJson('-1e309', 'number', false),
  new RawJson('1E400', 'number', false),
  new RawJson('1e-400', 'number'),
  new RawJson('-0', 'number'),
  new RawJson('123456789012345678901234567890', 'number'),
  new RawJson('0.1e1', 'number'),
  deepArrays(20),
  deepArrays(5_000),
  deepArrays(50_000),
  deepObjects(5_000),
];

const NASTY_CONSTANTS: unknown[] = [
  null,
  true,
  false,
  0,
  1,
  -1,
  0.5,
  1e308,
  -1e308,
  5e-324,
  2 ** 53 + 2,
  -(2 ** 53) - 2,
  1e21,
  [],
  {},
  [null],
  [1, 'a'],
  { a: 1 },
  [[[]]],
  Array.from({ length: 1_000 }, (_, i) => i),
];

/** A JSON value of the wrong kind for most fields. */
const nastyJson: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...NASTY_CONSTANTS) },
  { weight: 4, arbitrary: fc.constantFrom(...NASTY_STRINGS) },
  { weight: 2, arbitrary: fc.constantFrom(...RAW_VALUES) },
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.double(),
  fc.integer(),
  fc.jsonValue({ maxDepth: 3 }),
);

/** A query or path value (decoded): NaN-like numbers, unicode, separators, long. */
const nastyText: fc.Arbitrary<string> = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom(...NASTY_STRINGS) },
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.string({ unit: 'grapheme', maxLength: 30 }),
  fc.double().map(String),
  fc.bigInt().map(String),
);

const INVALID_JSON_TEXTS = [
  '{',
  '}',
  '{"a":}',
  "{'a':1}",
  '[1,]',
  '{"reason":"x",}',
  'NaN',
  'Infinity',
  '-Infinity',
  'undefined',
  '{"a":1}{"b":2}',
  '{"a":1} x',
  '\u0000',
  '\uFEFF{}',
  ' ',
  '\n',
  '-',
  '01',
  '1e',
  '{"a":"\u0001"}',
  '{"a":"\\x41"}',
  '{"a":"\\u12"}',
  '{"reason": "x" /* c */}',
  'true false',
  `${'['.repeat(100_000)}`,
  `{"a":${'['.repeat(50_000)}`,
];

/** Content types no route takes a JSON body with (fastify answers 415, or 400 for text/plain). */
const NON_JSON_CONTENT_TYPES = [
  'text/plain',
  'text/plain; charset=utf-8',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=----xhfuzz',
  'application/xml',
  'application/octet-stream',
  'application/jsonx',
  'application/json-patch+json',
  'json',
  '*/*',
  'application/',
  '/json',
  ';',
  'text/html',
];
/** Spellings of JSON that may be taken as JSON: no expectation but the general ones. */
const JSONISH_CONTENT_TYPES = [
  'application/json; charset=utf-8',
  'APPLICATION/JSON',
  'Application/Json; Charset=UTF-8',
  'application/json ; charset=utf-8',
  'application/json; charset=utf-16',
  'application/json; charset=latin1',
  'application/json;',
  'application/json, text/plain',
];

/** Path pieces sent raw over a socket (inject's URL parser would normalize `..` and encodings). */
const RAW_PATH_PIECES = [
  ':',
  '/',
  '//',
  '%00',
  '%',
  '%2F',
  '%2f',
  '%zz',
  '..',
  '%2e%2e',
  '.',
  ';',
  '@',
  '%C0%AF',
  '%FF',
  '%E0%A4%A',
  '%ED%A0%80',
  '%25',
  '%3A',
  '~',
  '!',
  '$',
  "'",
  '(',
  ')',
  '*',
  '+',
  ',',
  '=',
  '%20',
  '%0A',
  '%0D%0A',
  '%u0041',
  'a%00b',
  'x'.repeat(101),
  '%F0%9F%92%A5',
  'BTC',
  'gmx-arb',
  '?',
  '?a=%',
  '#x',
  '\\',
];

/** Query-string pieces appended raw. */
const RAW_QUERY_PIECES = [
  '%',
  '%zz=1',
  'a=%E0%A4%A',
  '&&&',
  '=',
  '==',
  '=1',
  'a',
  'a=1=2',
  '__proto__=1',
  '__proto__[x]=1',
  'constructor=1',
  'constructor[prototype][x]=1',
  'toString=1',
  'hasOwnProperty=1',
  'a[]=1',
  'a[b]=1',
  'limit=1;limit=2',
  '%00=%00',
  '+=+',
  `a=${'x'.repeat(20_000)}`,
  Array.from({ length: 300 }, (_, i) => `k${i}=v`).join('&'),
];

const COOKIES = [
  'xh_session=',
  'xh_session=%E0%A4%A',
  `xh_session=xs_${'A'.repeat(43)}`,
  'xh_session',
  '=;=;',
  ';;;',
  'xh_session=a; xh_session=b',
  `xh_session=${'x'.repeat(8_000)}`,
  'xh_session="xs_"',
];
const PRINTABLE = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i));
const cookieArb = fc.oneof(
  fc.constantFrom(...COOKIES),
  fc.string({ unit: fc.constantFrom(...PRINTABLE), maxLength: 60 }).map((s) => s.trim()),
);

/** Lone surrogates made U+FFFD (encodeURIComponent throws on them); everything else as is. */
const wellFormed = (s: string) =>
  s.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
const encode = (s: string) => encodeURIComponent(wellFormed(s));

// ---------------------------------------------------------------------------------------------------
// Operations of the OpenAPI document and the requests made for them

interface Param {
  name: string;
  required: boolean;
  schema: JsonSchema;
}

interface Operation {
  method: string;
  path: string;
  params: Param[];
  query: Param[];
  body: JsonSchema | undefined;
  /** An answer that never ends (server-sent events): only requests it refuses are sent. */
  streaming: boolean;
  role: Role;
}

interface Expectation {
  /** The statuses allowed (any when absent). */
  status?: readonly number[];
  /** Statuses not allowed. */
  never?: readonly number[];
  /** A 400 must be VALIDATION with an issue naming one of these fields. */
  names?: string[];
  /** Fastify validates params, then body, then query: a body issue may come first (query cases). */
  bodyFirst?: boolean;
}

interface FuzzRequest {
  /** What was malformed, for the report. */
  kind: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  payload?: string | Buffer;
  /** Sent over a socket: a path inject's URL parser would normalize. */
  socket?: boolean;
  expect?: Expectation;
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** Values that name things the run has: path parameters reach the handler's found/not-found branches. */
const KNOWN: Record<string, string[]> = {
  id: ['gmx-arb', 'uni-eth', 'int_1', 'plan_1', 'env-admin', 'fuzz-canary'],
  underlying: ['BTC', 'ETH'],
  chain: ['evm:42161', 'evm:1'],
  name: ['venue:gmx-arb'],
};

function pathValueArb(p: Param): fc.Arbitrary<string> {
  const generated = (schemaArb(p.schema) as fc.Arbitrary<unknown>)
    .map(String)
    .filter((s) => s !== '' && s !== '.' && s !== '..' && encode(s).length <= MAX_PATH_PARAM_LENGTH);
  const known = (KNOWN[p.name] ?? []).filter((v) => !rejectsValue(p.schema, v));
  return known.length > 0 ? fc.oneof(fc.constantFrom(...known), generated) : generated;
}

type QueryPairs = [string, string][];

function validQueryArb(op: Operation): fc.Arbitrary<QueryPairs> {
  if (op.query.length === 0) return fc.constant([]);
  return fc
    .tuple(
      ...op.query.map((q) =>
        q.required
          ? schemaArb(q.schema).map((v) => [q.name, String(v)] as [string, string])
          : fc.option(
              schemaArb(q.schema).map((v) => [q.name, String(v)] as [string, string]),
              { nil: undefined, freq: 2 },
            ),
      ),
    )
    .map((given) => {
      const pairs = given
        .filter((p): p is [string, string] => p !== undefined)
        .map(([k, v]): [string, string] => [k, v]);
      // fromMs after toMs is refused by the handler; keep valid-shaped ranges ordered
      const from = pairs.find(([k]) => k === 'fromMs');
      const to = pairs.find(([k]) => k === 'toMs');
      if (from && to && Number(from[1]) > Number(to[1])) [from[1], to[1]] = [to[1], from[1]];
      return pairs;
    });
}

function validBodyArb(
  op: Operation,
  pathValues: fc.Arbitrary<Record<string, string>>,
): fc.Arbitrary<{ path: Record<string, string>; body: unknown }> {
  const schema = op.body;
  if (!schema) return pathValues.map((path) => ({ path, body: undefined }));
  return fc.tuple(pathValues, schemaArb(schema), fc.boolean()).map(([path, generated, same]) => {
    const body = clone(generated);
    // a body field named as a path parameter (PUT /v1/venues/{id}: body.id) often matches it
    if (same && body !== null && typeof body === 'object' && !Array.isArray(body))
      for (const p of op.params)
        if (schema.properties?.[p.name] !== undefined && path[p.name] !== undefined)
          defineKey(body as Record<string, unknown>, p.name, path[p.name]);
    return { path, body };
  });
}

function buildUrl(op: Operation, path: Record<string, string>, query: string, rawPath = false): string {
  const p = op.path.replace(/\{(\w+)\}/g, (_m, k: string) => {
    const v = path[k] ?? '';
    return rawPath ? v : encode(v);
  });
  return query === '' ? p : `${p}?${query}`;
}
const queryText = (pairs: QueryPairs) => pairs.map(([k, v]) => `${encode(k)}=${encode(v)}`).join('&');

/** Every request for one operation: valid-shaped, malformed body, query, path; a junk cookie sometimes. */
function requestArb(op: Operation, auth: Record<string, string>): fc.Arbitrary<FuzzRequest> {
  const method = op.method.toUpperCase();
  const pathValues: fc.Arbitrary<Record<string, string>> =
    op.params.length === 0
      ? fc.constant({})
      : fc.record(Object.fromEntries(op.params.map((p) => [p.name, pathValueArb(p)])));
  const validQuery = validQueryArb(op);
  const validBody = validBodyArb(op, pathValues);
  const json = { 'content-type': 'application/json' };
  const req = (
    kind: string,
    url: string,
    extra: Partial<FuzzRequest> & { headers?: Record<string, string> } = {},
  ): FuzzRequest => ({ kind, method, url, ...extra, headers: { ...auth, ...(extra.headers ?? {}) } });
  const withBody = (body: unknown) => (op.body ? { headers: json, payload: toJsonText(body) } : {});

  const cases: { arbitrary: fc.Arbitrary<FuzzRequest>; weight: number }[] = [];

  // ---- valid-shaped
  if (!op.streaming)
    cases.push({
      weight: 3,
      arbitrary: fc.tuple(validBody, validQuery).map(([b, q]) =>
        req('valid-shaped', buildUrl(op, b.path, queryText(q)), {
          ...withBody(b.body),
          // a request the schemas describe is never refused for its size or its content type
          expect: { never: [413, 414, 415] },
        }),
      ),
    });

  // ---- malformed bodies
  if (op.body && !op.streaming) {
    const schema = op.body;
    const bodyReq = (
      kind: string,
      b: { path: Record<string, string> },
      q: QueryPairs,
      extra: Partial<FuzzRequest>,
    ) => req(kind, buildUrl(op, b.path, queryText(q)), extra);
    const bodyCases = [
      // one field (at any depth) replaced by a value of the wrong kind
      fc.tuple(validBody, validQuery, fc.nat(), nastyJson).map(([b, q, i, nasty]) => {
        const slots = slotsOf(b.body, [schema], []).filter((s) => s.path.length > 0);
        const slot = slots[i % slots.length];
        if (!slot) return bodyReq('body:whole', b, q, { headers: json, payload: toJsonText(nasty) });
        const body = clone(b.body);
        const parent = at(body, slot.path.slice(0, -1)) as Record<Segment, unknown>;
        const key = slot.path.at(-1) as Segment;
        if (typeof key === 'string') defineKey(parent as Record<string, unknown>, key, nasty);
        else parent[key] = nasty;
        const sure = rejectsAll(slot.schemas, nasty);
        return bodyReq(`body:wrong-value ${fieldName(['body', ...slot.path])}`, b, q, {
          headers: json,
          payload: toJsonText(body),
          ...(sure
            ? {
                expect: {
                  status: [400],
                  names: namesFor(['body', ...slot.path], 1 + (slot.unionDepth ?? slot.path.length)),
                },
              }
            : {}),
        });
      }),
      // a required field left out
      fc.tuple(validBody, validQuery, fc.nat()).map(([b, q, i]) => {
        const drops = slotsOf(b.body, [schema], []).flatMap((s) => {
          const value = s.value;
          if (value === null || typeof value !== 'object' || Array.isArray(value)) return [];
          const branches = branchesFor(s.schemas, value as Record<string, unknown>);
          if (branches.length === 0) return [];
          return Object.keys(value)
            .filter((k) => branches.every((br) => br.required?.includes(k)))
            .map((k) => ({ slot: s, key: k }));
        });
        const drop = drops[i % Math.max(1, drops.length)];
        if (!drop) return bodyReq('body:valid-shaped', b, q, withBody(b.body));
        const body = clone(b.body);
        delete (at(body, drop.slot.path) as Record<string, unknown>)[drop.key];
        const field = ['body', ...drop.slot.path, drop.key];
        return bodyReq(`body:missing ${fieldName(field)}`, b, q, {
          headers: json,
          payload: toJsonText(body),
          expect: {
            status: [400],
            names: namesFor(field, 1 + (drop.slot.unionDepth ?? drop.slot.path.length + 1)),
          },
        });
      }),
      // an extra field in an object that takes none (or a prototype-polluting key anywhere)
      fc
        .tuple(
          validBody,
          validQuery,
          fc.nat(),
          fc.oneof(
            { weight: 4, arbitrary: fc.stringMatching(/^[a-zA-Z_][a-zA-Z0-9_]{0,15}$/) },
            fc.constantFrom('__proto__', 'constructor', 'prototype'),
          ),
          nastyJson,
        )
        .map(([b, q, i, key, value]) => {
          const objects = slotsOf(b.body, [schema], []).filter(
            (s) => s.value !== null && typeof s.value === 'object' && !Array.isArray(s.value),
          );
          const slot = objects[i % objects.length];
          if (!slot) return bodyReq('body:valid-shaped', b, q, withBody(b.body));
          const branches = branchesFor(slot.schemas, slot.value as Record<string, unknown>);
          const taken = branches.some((br) => br.properties && Object.hasOwn(br.properties, key));
          const strict = branches.length > 0 && branches.every((br) => br.additionalProperties === false);
          const body = clone(b.body);
          const polluting = key === '__proto__' || key === 'constructor';
          const target = at(body, slot.path) as Record<string, unknown>;
          defineKey(target, key, key === 'constructor' ? { prototype: { polluted: true } } : value);
          const field = ['body', ...slot.path];
          const expectation: Expectation | undefined = polluting
            ? { status: [400] }
            : strict && !taken
              ? { status: [400], names: namesFor(field, 1 + (slot.unionDepth ?? slot.path.length)) }
              : undefined;
          return bodyReq(`body:extra ${fieldName([...field, key])}`, b, q, {
            headers: json,
            payload: toJsonText(body),
            ...(expectation ? { expect: expectation } : {}),
          });
        }),
      // a field (at any depth) nested thousands of levels deep
      fc
        .tuple(
          validBody,
          validQuery,
          fc.nat(),
          fc.constantFrom(64, 1_000, 20_000, 60_000),
          fc.boolean(),
          fc.stringMatching(/^[a-z][a-zA-Z0-9]{0,7}$/),
        )
        .map(([b, q, i, depth, arrays, name]) => {
          const objects = slotsOf(b.body, [schema], []).filter(
            (s) => s.value !== null && typeof s.value === 'object' && !Array.isArray(s.value),
          );
          // objects that take any value (free-form settings) most often: there nesting is not refused by type
          const open = objects.filter((s) =>
            s.schemas
              .flatMap(flatten)
              .some((x) => x.additionalProperties !== false && x.properties === undefined),
          );
          const pool = open.length > 0 && i % 3 !== 2 ? open : objects;
          const slot = pool[i % pool.length];
          if (!slot) return bodyReq('body:valid-shaped', b, q, withBody(b.body));
          const keys = Object.keys(slot.value as object);
          const key = keys.length > 0 && i % 3 !== 0 ? (keys[i % keys.length] as string) : name;
          const body = clone(b.body);
          defineKey(
            at(body, slot.path) as Record<string, unknown>,
            key,
            arrays ? deepArrays(depth) : deepObjects(depth),
          );
          return bodyReq(`body:deep ${fieldName(['body', ...slot.path, key])} (${depth} levels)`, b, q, {
            headers: json,
            payload: toJsonText(body),
          });
        }),
      // the whole body of the wrong kind
      fc
        .tuple(
          validBody,
          validQuery,
          nastyJson.filter((v) => jsonTypeOf(v) !== 'object'),
        )
        .map(([b, q, nasty]) =>
          bodyReq('body:not-an-object', b, q, {
            headers: json,
            payload: toJsonText(nasty),
            expect: { status: [400], names: ['body'] },
          }),
        ),
      // not JSON at all
      fc
        .tuple(
          validBody,
          validQuery,
          fc.oneof(fc.constantFrom(...INVALID_JSON_TEXTS), fc.string({ unit: 'binary', maxLength: 60 })),
        )
        .map(([b, q, text]) => {
          let valid = true;
          try {
            JSON.parse(text);
          } catch {
            valid = false;
          }
          return bodyReq('body:invalid-json', b, q, {
            headers: json,
            payload: text,
            ...(valid || text.trim() === '' ? {} : { expect: { status: [400] } }),
          });
        }),
      // bytes that are not UTF-8
      fc.tuple(validBody, validQuery, fc.uint8Array({ minLength: 1, maxLength: 40 })).map(([b, q, bytes]) =>
        bodyReq('body:not-utf8', b, q, {
          headers: json,
          payload: Buffer.concat([Buffer.from('{"reason":"'), Buffer.from(bytes), Buffer.from('"}')]),
        }),
      ),
      // a JSON body under another content type, or none
      fc
        .tuple(
          validBody,
          validQuery,
          fc.oneof(
            { weight: 3, arbitrary: fc.constantFrom(...NON_JSON_CONTENT_TYPES) },
            fc.constantFrom(...JSONISH_CONTENT_TYPES),
            fc.constant(undefined),
          ),
        )
        .map(([b, q, type]) => {
          const jsonish = type !== undefined && JSONISH_CONTENT_TYPES.includes(type);
          return bodyReq(`body:content-type ${type ?? '(none)'}`, b, q, {
            headers: type === undefined ? {} : { 'content-type': type },
            payload: toJsonText(b.body),
            ...(jsonish ? {} : { expect: { status: [400, 415] } }),
          });
        }),
      // no body, or an empty one
      fc.tuple(validBody, validQuery, fc.boolean()).map(([b, q, typed]) =>
        bodyReq(typed ? 'body:empty' : 'body:none', b, q, {
          ...(typed ? { headers: json, payload: '' } : {}),
          expect: { status: [400], names: ['body'] },
        }),
      ),
    ];
    cases.push({ weight: 6, arbitrary: fc.oneof(...bodyCases) });
    // larger than the body limit
    cases.push({
      weight: 1,
      arbitrary: fc.tuple(validBody, validQuery).map(([b, q]) =>
        bodyReq('body:too-large', b, q, {
          headers: json,
          payload: toJsonText({ ...(b.body as object), reason: 'x'.repeat(BODY_LIMIT_BYTES) }),
          expect: { status: [413] },
        }),
      ),
    });
  } else if (method !== 'GET' && !op.streaming) {
    // a route without a body schema, sent one anyway
    cases.push({
      weight: 2,
      arbitrary: fc
        .tuple(
          pathValues,
          validQuery,
          fc.oneof(nastyJson.map(toJsonText), fc.constantFrom(...INVALID_JSON_TEXTS)),
          fc.option(fc.constantFrom(...NON_JSON_CONTENT_TYPES, 'application/json'), { nil: undefined }),
        )
        .map(([path, q, text, type]) =>
          req('body:unexpected', buildUrl(op, path, queryText(q)), {
            payload: text,
            headers: type === undefined ? {} : { 'content-type': type },
          }),
        ),
    });
  }

  // ---- malformed query strings
  const known = new Set(op.query.map((q) => q.name));
  const extraKey = fc.stringMatching(/^[a-zA-Z_][a-zA-Z0-9_]{0,11}$/).filter((k) => !known.has(k));
  const queryReq = (kind: string, path: Record<string, string>, body: unknown, q: string, e?: Expectation) =>
    req(kind, buildUrl(op, path, q), { ...withBody(body), ...(e ? { expect: e } : {}) });
  const queryCases: fc.Arbitrary<FuzzRequest>[] = [
    // an unknown parameter: every query schema is strict
    fc.tuple(validBody, validQuery, extraKey, nastyText).map(([b, q, k, v]) =>
      queryReq(`query:unknown ${k}`, b.path, b.body, queryText([...q, [k, v]]), {
        status: [400],
        names: ['querystring'],
        bodyFirst: true,
      }),
    ),
  ];
  if (!op.streaming) {
    queryCases.push(
      fc
        .tuple(
          validBody,
          validQuery,
          fc.array(fc.constantFrom(...RAW_QUERY_PIECES), { minLength: 1, maxLength: 3 }),
        )
        .map(([b, q, pieces]) =>
          queryReq('query:junk', b.path, b.body, [queryText(q), ...pieces].filter(Boolean).join('&')),
        ),
    );
    for (const p of op.query) {
      const named = { names: [`querystring.${p.name}`], bodyFirst: true };
      queryCases.push(
        // a NaN-like, huge, unicode or long value
        fc
          .tuple(validBody, validQuery, nastyText)
          .map(([b, q, v]) =>
            queryReq(
              `query:value ${p.name}`,
              b.path,
              b.body,
              queryText([...q.filter(([k]) => k !== p.name), [p.name, v]]),
              rejectsQueryValue(p.schema, wellFormed(v)) ? { status: [400], ...named } : undefined,
            ),
          ),
        // the parameter twice
        fc
          .tuple(validBody, validQuery, schemaArb(p.schema), nastyText)
          .map(([b, q, v, w]) =>
            queryReq(
              `query:repeated ${p.name}`,
              b.path,
              b.body,
              queryText([...q.filter(([k]) => k !== p.name), [p.name, String(v)], [p.name, w]]),
              { status: [400], ...named },
            ),
          ),
      );
      if (p.required)
        queryCases.push(
          fc
            .tuple(validBody, validQuery)
            .map(([b, q]) =>
              queryReq(
                `query:missing ${p.name}`,
                b.path,
                b.body,
                queryText(q.filter(([k]) => k !== p.name)),
                { status: [400], ...named },
              ),
            ),
        );
    }
  }
  cases.push({ weight: 3, arbitrary: fc.oneof(...queryCases) });

  // ---- malformed path parameters
  for (const p of op.params) {
    if (op.streaming) break;
    cases.push({
      weight: 2,
      arbitrary: fc.tuple(validBody, validQuery, nastyText).map(([b, q, v]) => {
        const path = { ...b.path, [p.name]: v };
        const sent = wellFormed(v);
        const routed = sent !== '' && sent !== '.' && sent !== '..';
        const tooLong = encode(sent).length > MAX_PATH_PARAM_LENGTH;
        const expectation: Expectation | undefined = !routed
          ? undefined
          : tooLong
            ? { status: [414] }
            : rejectsValue(p.schema, sent)
              ? { status: [400], names: [`params.${p.name}`] }
              : undefined;
        return req(`path:value ${p.name}`, buildUrl(op, path, queryText(q)), {
          ...withBody(b.body),
          ...(expectation ? { expect: expectation } : {}),
        });
      }),
    });
    cases.push({
      weight: 1,
      arbitrary: fc
        .tuple(
          validBody,
          validQuery,
          fc.array(fc.constantFrom(...RAW_PATH_PIECES), { minLength: 1, maxLength: 4 }),
        )
        .map(([b, q, pieces]) => {
          const path = { ...b.path, [p.name]: pieces.join('') };
          return req(`path:raw ${p.name}`, buildUrl(op, path, queryText(q), true), {
            ...withBody(b.body),
            socket: true,
          });
        }),
    });
  }

  return fc
    .tuple(fc.oneof(...cases), fc.option(cookieArb, { nil: undefined, freq: 6 }))
    .map(([r, cookie]) => {
      const out = cookie === undefined ? r : { ...r, headers: { ...r.headers, cookie } };
      // fast-check prints a failing request this way: long payloads cut
      return Object.defineProperty(out, fc.toStringMethod, { value: () => describeRequest(out) });
    });
}

const cut = (s: string, n = 300) => (s.length > n ? `${s.slice(0, n)}…(${s.length} chars)` : s);

/** A request as a failure report shows it (long parts cut). */
function describeRequest(r: FuzzRequest): string {
  const headers = { ...r.headers, authorization: '[token]' };
  const payload = r.payload === undefined ? '' : ` body ${cut(JSON.stringify(r.payload.toString()))}`;
  return `[${r.kind}] ${r.method} ${cut(r.url)} headers ${cut(JSON.stringify(headers))}${payload}${r.socket ? ' (socket)' : ''}`;
}

function rejectsAll(schemas: JsonSchema[], v: unknown): boolean {
  return schemas.length > 0 && schemas.every((s) => rejectsValue(s, v));
}

// ---------------------------------------------------------------------------------------------------
// The server under test

const tokens: Record<Role, string> = { viewer: '', risk: '', operator: '', admin: ADMIN };
/** Strings no answer and no log line may hold. */
const secrets = new Set<string>();
/** Log lines written since the last request (pino at info, secrets redacted as the server does). */
let logLines: string[] = [];
/** Requests that passed validation and reached the handler, by `METHOD url-pattern`. */
const handled = new Map<string, number>();
/** Per operation: role used, requests sent, statuses seen. */
const report = new Map<string, { role: Role; sent: number; statuses: Map<number, number> }>();
/** Venues the fuzz added (read back at the end). */
const created = new Set<string>();

function addSecret(s: string): void {
  secrets.add(s);
  secrets.add(sha256Hex(s));
}

// The server is built when the file loads: the tests are one per operation of its OpenAPI document.
const ports: MemoryPorts = memoryPorts({ venues: cfg.venues, policy: cfg.policy, adminToken: ADMIN });
const system = { tokenId: 'x', name: 'fuzz', role: 'admin' as const };
await ports.venues.add(
  {
    id: 'fuzz-canary',
    kind: 'gmx',
    chain: 'evm:42161',
    enabled: true,
    endpoints: {},
    credentials: { privateKey: { env: CANARY_ENV }, apiKey: { keyFile: CANARY_KEY_FILE } },
    params: {},
  },
  system,
);
const app: FastifyInstance = await buildApiServer({
  ports,
  logger: pino(
    { level: 'info', redact: { paths: REDACT_PATHS, censor: '[redacted]' } },
    { write: (line: string) => void logLines.push(line) },
  ),
  rateLimitPerMinute: 10_000_000,
});
app.addHook('preHandler', async (req) => {
  const key = `${req.method} ${req.routeOptions.url}`;
  handled.set(key, (handled.get(key) ?? 0) + 1);
});
tokens.viewer = (await ports.tokens.create({ name: 'v', role: 'viewer' }, system)).token;
tokens.risk = (await ports.tokens.create({ name: 'r', role: 'risk' }, system)).token;
tokens.operator = (await ports.tokens.create({ name: 'o', role: 'operator' }, system)).token;
for (const t of Object.values(tokens)) addSecret(t);
secrets.add(CANARY_ENV);
secrets.add(CANARY_KEY_FILE);
ports.publish({
  seq: 1,
  asOfMs: 1_000,
  underlyings: {
    BTC: { delta: 1.5, deltaUsd: 142_500, gamma: 0.001, vegaPerVolPoint: -900, thetaPerDay: 120 },
  },
});
const baseUrl = await app.listen({ port: 0, host: '127.0.0.1' });

afterAll(async () => {
  const rows = [...report.entries()].map(([op, r]) => {
    const statuses = [...r.statuses.entries()]
      .sort(([a], [b]) => a - b)
      .map(([s, n]) => `${s}×${n}`)
      .join(' ');
    const pattern = op.replace(/\{(\w+)\}/g, ':$1');
    return `  ${op.padEnd(42)} as ${r.role.padEnd(8)} ${String(r.sent).padStart(4)} sent, ${String(handled.get(pattern) ?? 0).padStart(3)} reached the handler; ${statuses}`;
  });
  const total = [...report.values()].reduce((n, r) => n + r.sent, 0);
  console.log(
    `API fuzz (seed ${SEED}, ${RUNS} runs per operation): ${report.size} operations, ${total} requests\n${rows.join('\n')}`,
  );
  await app.close();
});

async function viaInject(r: FuzzRequest): Promise<Answer> {
  const res = await app.inject({
    method: r.method as 'GET',
    url: r.url,
    headers: r.headers,
    ...(r.payload !== undefined ? { payload: r.payload } : {}),
  });
  return { status: res.statusCode, headers: res.headers as Answer['headers'], body: res.body };
}

function viaSocket(r: FuzzRequest): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const u = new URL(baseUrl);
    const headers: Record<string, string | number> = { ...r.headers };
    if (r.payload !== undefined) headers['content-length'] = Buffer.byteLength(r.payload);
    const q = httpRequest(
      { host: u.hostname, port: u.port, method: r.method, path: r.url, headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    q.on('error', reject);
    q.end(r.payload);
  });
}

async function send(r: FuzzRequest): Promise<Answer> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer in ${ANSWER_TIMEOUT_MS} ms`)), ANSWER_TIMEOUT_MS);
  });
  try {
    return await Promise.race([r.socket ? viaSocket(r) : viaInject(r), late]);
  } finally {
    clearTimeout(timer);
  }
}

const ERROR_CODE_STATUS: Readonly<Record<string, number>> = {
  ...API_ERROR_STATUS,
  // domain codes errors.ts passes through with their status
  CONFIG_INVALID: 400,
  INSTRUMENT_ID_INVALID: 400,
  // a breaker reset told a trip (openedAtMs) that is no longer the one in force; a release that raced an engage
  BREAKER_RESET_CONFLICT: 409,
  KILL_SWITCH_RELEASE_CONFLICT: 409,
};
const FIELD_CONTEXTS = /^(body|querystring|params|headers)([.[]|$)/;

/** The general rules every answer keeps, then the request's own expectation. */
function check(r: FuzzRequest, a: Answer): void {
  const where = `${r.kind}: ${r.method} ${r.url.length > 200 ? `${r.url.slice(0, 200)}…` : r.url} → ${a.status} ${a.body.slice(0, 500)}`;
  if (a.status >= 500) {
    const logged = logLines.filter((l) => /"level":(50|60)/.test(l)).map((l) => l.slice(0, 2_000));
    expect.fail(`5xx answer (${where})\nserver log: ${logged.join('\n') || '(nothing logged)'}`);
  }
  const headers = Object.entries(a.headers).filter(([h]) => h !== 'set-cookie');
  for (const s of secrets) {
    if (a.body.includes(s)) expect.fail(`a secret in the answer (${where})`);
    for (const [h, v] of headers)
      if (String(v).includes(s)) expect.fail(`a secret in header ${h} (${where})`);
    for (const l of logLines) if (l.includes(s)) expect.fail(`a secret in the server log (${where}): ${l}`);
  }
  if (a.status >= 400) {
    expect(String(a.headers['content-type']), where).toMatch(/^application\/json/);
    let parsed: unknown;
    try {
      parsed = JSON.parse(a.body);
    } catch {
      expect.fail(`a ${a.status} whose body is not JSON (${where})`);
    }
    const body = parsed as { error?: { code?: unknown; message?: unknown; details?: unknown } };
    expect(Object.keys(body), where).toEqual(['error']);
    const e = body.error ?? {};
    expect(Object.keys(e).sort(), where).toEqual(['code', 'details', 'message']);
    expect(typeof e.code === 'string' && ERROR_CODE_STATUS[e.code], `code and status (${where})`).toBe(
      a.status,
    );
    expect(typeof e.message === 'string' && e.message.trim().length > 0, `a message (${where})`).toBe(true);
    expect(
      e.details !== null && typeof e.details === 'object' && !Array.isArray(e.details),
      `details (${where})`,
    ).toBe(true);
    if (e.code === 'VALIDATION') {
      const issues = (e.details as { issues?: unknown }).issues as { field?: unknown; message?: unknown }[];
      expect(Array.isArray(issues) && issues.length > 0, `issues listed (${where})`).toBe(true);
      for (const i of issues) {
        expect(typeof i.field === 'string' && FIELD_CONTEXTS.test(i.field), `issue field (${where})`).toBe(
          true,
        );
        expect(typeof i.message === 'string' && i.message.length > 0, `issue message (${where})`).toBe(true);
      }
      expect(e.message, where).toBe(`${issues[0]?.field}: ${issues[0]?.message}`);
      for (const i of issues)
        if (String(i.message).startsWith('required'))
          expect(
            sentField(r, String(i.field)),
            `"${i.field}: ${i.message}", but it was sent (${where})`,
          ).toBe(false);
    }
  }
  const want = r.expect;
  if (!want) return;
  if (want.status) expect(want.status, `expected status (${where})`).toContain(a.status);
  if (want.never) expect(want.never, `unexpected status (${where})`).not.toContain(a.status);
  if (want.names && a.status === 400) {
    const e = (JSON.parse(a.body) as { error: { code: string; details: { issues?: { field: string }[] } } })
      .error;
    expect(e.code, where).toBe('VALIDATION');
    const fields = (e.details.issues ?? []).map((i) => i.field);
    const named = fields.some((f) => want.names?.includes(f));
    const earlier = want.bodyFirst === true && fields.every((f) => /^body([.[]|$)/.test(f));
    expect(
      named || earlier,
      `the error names ${want.names.join(' or ')}; it names ${fields.join(', ')} (${where})`,
    ).toBe(true);
  }
}

/** Whether the request carried the field an error names (`querystring.limit`, `body.legs[0].venue`). */
function sentField(r: FuzzRequest, field: string): boolean {
  const query = /^querystring\.([^.[]+)/.exec(field);
  if (query) return new URL(r.url, 'http://localhost').searchParams.has(query[1] as string);
  if (!field.startsWith('body') || field === 'body' || typeof r.payload !== 'string') return false;
  let cur: unknown;
  try {
    cur = JSON.parse(r.payload);
  } catch {
    return false;
  }
  for (const m of field.slice('body'.length).matchAll(/\.([^.[]+)|\[(\d+)\]/g)) {
    if (cur === null || typeof cur !== 'object') return false;
    const k = m[1] ?? Number(m[2]);
    if (!Object.hasOwn(cur, k)) return false;
    cur = (cur as Record<string | number, unknown>)[k];
  }
  return cur !== undefined;
}

async function operations(): Promise<Operation[]> {
  const doc = (await app.inject({ url: '/docs/json' })).json() as {
    paths: Record<
      string,
      Record<
        string,
        {
          parameters?: { in: string; name: string; required?: boolean; schema: JsonSchema }[];
          requestBody?: { content: Record<string, { schema: JsonSchema }> };
          responses?: Record<string, { description?: string }>;
        }
      >
    >;
  };
  const out: Operation[] = [];
  for (const [path, ops] of Object.entries(doc.paths))
    for (const [method, op] of Object.entries(ops)) {
      const params = (op.parameters ?? []).map((p) => ({
        in: p.in,
        name: p.name,
        required: p.required === true,
        schema: p.schema,
      }));
      // the least role the route takes: a viewer's 403 says which (auth runs before validation)
      const probe = await app.inject({
        method: method.toUpperCase() as 'GET',
        url: `${path.replace(/\{(\w+)\}/g, 'x')}?xh_probe=1`,
        headers: { authorization: `Bearer ${tokens.viewer}` },
      });
      const role: Role =
        probe.statusCode === 403
          ? (probe.json() as { error: { details: { need: Role } } }).error.details.need
          : 'viewer';
      out.push({
        method,
        path,
        params: params.filter((p) => p.in === 'path'),
        query: params.filter((p) => p.in === 'query'),
        body: op.requestBody?.content['application/json']?.schema,
        streaming: op.responses?.['200']?.description === 'text/event-stream',
        role,
      });
    }
  return out;
}

const ops = await operations();

describe(`API fuzz from the OpenAPI document (seed ${SEED}, ${RUNS} runs per operation)`, () => {
  it('finds every operation of the document', () => {
    expect(ops.length).toBeGreaterThanOrEqual(33);
  });

  for (const op of ops) {
    const label = `${op.method.toUpperCase()} ${op.path}`;
    it(`${label} as ${op.role}: malformed requests get a 4xx naming what is wrong, never a 5xx, never a secret (seed ${SEED})`, async () => {
      const auth = { authorization: `Bearer ${tokens[op.role]}` };
      const row = { role: op.role, sent: 0, statuses: new Map<number, number>() };
      report.set(label, row);
      await fc.assert(
        fc.asyncProperty(requestArb(op, auth), async (r) => {
          logLines = [];
          row.sent++;
          const a = await send(r);
          row.statuses.set(a.status, (row.statuses.get(a.status) ?? 0) + 1);
          check(r, a);
          // the answer that made it may show a new token or session; no later one may
          if (a.status === 201 && op.path === '/v1/tokens')
            addSecret((JSON.parse(a.body) as { token: string }).token);
          const sid = /xh_session=([^;]+)/.exec(String(a.headers['set-cookie'] ?? ''))?.[1];
          if (sid) addSecret(sid);
          if (a.status === 201 && op.path === '/v1/venues')
            created.add((JSON.parse(a.body) as { id: string }).id);
        }),
        { seed: SEED, numRuns: RUNS },
      );
    }, 120_000);
  }

  it('every read answers what the fuzzed changes left (venues, policy, mark, kill switches, audit, tokens)', async () => {
    for (const op of ops.filter((o) => o.method === 'get' && !o.streaming)) {
      const values = (p: Param) =>
        [...(KNOWN[p.name] ?? []), ...created].filter((v) => !rejectsValue(p.schema, v));
      const paths = op.params.reduce<Record<string, string>[]>(
        (acc, p) => acc.flatMap((a) => values(p).map((v) => ({ ...a, [p.name]: v }))),
        [{}],
      );
      for (const path of paths) {
        const r: FuzzRequest = {
          kind: 'read-back',
          method: 'GET',
          url: buildUrl(op, path, ''),
          headers: { authorization: `Bearer ${tokens[op.role]}` },
        };
        logLines = [];
        check(r, await send(r));
      }
    }
  });

  it('valid-shaped requests reached the handler of every operation (the stream: its valid requests never end)', () => {
    const unreached = ops
      .filter((op) => !op.streaming)
      .map((op) => `${op.method.toUpperCase()} ${op.path.replace(/\{(\w+)\}/g, ':$1')}`)
      .filter((k) => !handled.get(k));
    expect(unreached).toEqual([]);
  });
});
