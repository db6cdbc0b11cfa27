import fc from 'fast-check';

/** The parts of an OpenAPI 3.1 document the fuzzer reads. */
interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  enum?: unknown[];
  pattern?: string;
  minimum?: number;
  maximum?: number;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  additionalProperties?: boolean | JsonSchema;
}
interface Parameter {
  in: 'query' | 'path' | 'header';
  name: string;
  required?: boolean;
  schema?: JsonSchema;
}
interface Operation {
  parameters?: Parameter[];
  requestBody?: { content?: Record<string, { schema?: JsonSchema }> };
}
export interface OpenApiDoc {
  paths: Record<string, Record<string, Operation>>;
}

export interface FuzzRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string;
  /** What makes it malformed, for failure messages. */
  why: string;
}

/** A path value no parameter pattern of the API accepts (too long, and with characters outside every pattern). */
const BAD_PATH_VALUES = ['x'.repeat(200), '%20%20', 'a%2Fb%2Fc!', '-', '%00', '9'.repeat(300)];

/** A value of the wrong JSON type for a schema (a string where a number is due, and so on). */
function wrongType(s: JsonSchema | undefined, rnd: number): unknown {
  const t = Array.isArray(s?.type) ? s.type[0] : s?.type;
  switch (t) {
    case 'string':
      return [12345, true, [], { a: 1 }][rnd % 4];
    case 'number':
    case 'integer':
      return ['twelve', true, [], {}][rnd % 4];
    case 'boolean':
      return ['yes', 1, [], {}][rnd % 4];
    case 'array':
      return [{}, 'list', 3][rnd % 3];
    case 'object':
      return [[], 'obj', 7, true][rnd % 4];
    default:
      return undefined;
  }
}

/** A query value the parameter's schema rejects, or undefined when none is known to be invalid. */
function badQueryValue(s: JsonSchema | undefined, junk: string): string | undefined {
  if (!s) return undefined;
  const t = Array.isArray(s.type) ? s.type[0] : s.type;
  if (t === 'integer' || t === 'number') return `${junk.replace(/[0-9.eE+-]/g, '')}x`;
  if (s.enum) return `${junk}~not-a-member`;
  if (s.pattern) return `${junk} !@#`;
  return undefined;
}

/**
 * Generates malformed requests for every operation of the document: unknown and ill-typed query
 * parameters, path values outside every pattern, bodies that are not JSON, of the wrong JSON type,
 * missing required fields, with ill-typed fields, or sent as text/plain. Each one must be refused with
 * a 4xx. Deterministic for a seed.
 */
export function malformedRequests(
  doc: OpenApiDoc,
  opts: { seed: number; perOperation: number; headers: Record<string, string>; prefix?: string },
): FuzzRequest[] {
  const out: FuzzRequest[] = [];
  const junk = fc.sample(fc.string({ minLength: 1, maxLength: 12 }), { seed: opts.seed, numRuns: 5000 });
  const junkJson = fc.sample(fc.jsonValue({ maxDepth: 3 }), { seed: opts.seed + 1, numRuns: 5000 });
  let k = 0;
  const next = <T>(arr: T[]): T => arr[k++ % arr.length] as T;
  const samplePath = (path: string, params: Parameter[]) =>
    path.replace(/\{(\w+)\}/g, (_m, name: string) => {
      const p = params.find((x) => x.in === 'path' && x.name === name);
      const en = p?.schema?.enum?.[0];
      return typeof en === 'string' ? en : 'gmx-arb';
    });
  for (const [path, ops] of Object.entries(doc.paths)) {
    if (opts.prefix && !path.startsWith(opts.prefix)) continue;
    for (const [method, op] of Object.entries(ops)) {
      const params = op.parameters ?? [];
      const bodySchema = op.requestBody?.content?.['application/json']?.schema;
      const base = samplePath(path, params);
      const send = (url: string, why: string, body?: string, contentType = 'application/json') => {
        const r: FuzzRequest = { method: method.toUpperCase(), url, headers: { ...opts.headers }, why };
        if (body !== undefined) {
          r.body = body;
          r.headers['content-type'] = contentType;
        }
        out.push(r);
      };
      // A valid-looking body for operations that need one, so query and path faults are what is wrong.
      const filler = bodySchema ? '{}' : undefined;
      for (let i = 0; i < opts.perOperation; i++) {
        const variant = i % (bodySchema ? 9 : 3);
        const j = next(junk);
        if (variant === 0) {
          send(
            `${base}?zz${encodeURIComponent(j)}=1&unknown_${i}=${encodeURIComponent(j)}`,
            'unknown query parameter',
            filler,
          );
        } else if (variant === 1) {
          const q = params
            .filter((p) => p.in === 'query')
            .map((p) => [p.name, badQueryValue(p.schema, j)] as const);
          const bad = q.find(([, v]) => v !== undefined);
          if (bad)
            send(`${base}?${bad[0]}=${encodeURIComponent(bad[1] ?? '')}`, `bad query ${bad[0]}`, filler);
          else
            send(
              `${base}?${encodeURIComponent(`${j}`)}x=%ZZ`,
              'unknown query parameter with bad escape',
              filler,
            );
        } else if (variant === 2) {
          const names = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1] ?? '');
          if (names.length > 0) {
            const bad = next(BAD_PATH_VALUES);
            const url = path.replace(/\{(\w+)\}/g, () => bad);
            send(url, `path value ${bad.slice(0, 20)}`, filler);
          } else
            send(`${base}?limit=${encodeURIComponent(j)}x&fromMs=-1&zz=1`, 'bad and unknown query', filler);
        } else if (variant === 3) {
          send(base, 'body is not JSON', `{${j.replace(/[{}]/g, '')}: ,`);
        } else if (variant === 4) {
          const v = next(junkJson);
          const notObject = Array.isArray(v) || v === null || typeof v !== 'object' ? v : [v];
          send(base, 'body of the wrong JSON type', JSON.stringify(notObject));
        } else if (variant === 5 && bodySchema) {
          // Required fields dropped: an object of random keys only.
          const v = next(junkJson);
          const obj: Record<string, unknown> = {};
          if (v !== null && typeof v === 'object' && !Array.isArray(v)) Object.assign(obj, v);
          for (const r of bodySchema.required ?? []) delete obj[r];
          obj[`zz_${j}`] = v;
          send(base, 'required fields missing', JSON.stringify(obj));
        } else if (variant === 6 && bodySchema) {
          const props = Object.entries(bodySchema.properties ?? {});
          const [name, schema] = props[i % Math.max(1, props.length)] ?? ['x', undefined];
          const bad = wrongType(schema, i);
          send(
            base,
            `body.${name} of the wrong type`,
            JSON.stringify({ [name]: bad === undefined ? [[[]]] : bad }),
          );
        } else if (variant === 7) {
          send(base, 'text/plain body', j, 'text/plain');
        } else {
          send(base, 'empty JSON body', '');
        }
      }
    }
  }
  return out;
}
