import type { z } from 'zod';
import { ValidationError } from './errors.ts';

/** `['venues', 1, 'chain']` → `venues[1].chain`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out;
}

/** Parses with a zod schema at a boundary; throws a ValidationError listing every problem by path. */
export function parseOrThrow<T extends z.ZodType>(schema: T, value: unknown, what: string): z.infer<T> {
  const res = schema.safeParse(value);
  if (res.success) return res.data;
  throw new ValidationError(
    what,
    res.error.issues.map((i) => ({ path: formatPath(i.path), message: i.message })),
  );
}
