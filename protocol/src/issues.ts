import { z } from 'zod';

/** One problem found in a value, located by a path such as `readings[3].metrics.temp`. */
export interface Issue {
  readonly path: string;
  readonly message: string;
}

/** The result of validating untrusted input: the typed value, or every problem found. */
export type Validation<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly issues: readonly Issue[] };

/** Formats a property path the way a person reads it: `a.b[2].c`; the root is `$`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else if (typeof key === 'string' && /^[A-Za-z_$][\w$-]*$/.test(key)) out += out ? `.${key}` : key;
    else out += `[${JSON.stringify(String(key))}]`;
  }
  return out || '$';
}

/** Runs a zod schema and converts its result into a {@link Validation} with every issue. */
export function validateWith<S extends z.ZodType>(schema: S, input: unknown): Validation<z.infer<S>> {
  const result = schema.safeParse(input);
  if (result.success) return { ok: true, value: result.data };
  return {
    ok: false,
    issues: result.error.issues.map((issue) => ({
      path: formatPath(issue.path),
      message: issue.message,
    })),
  };
}

/** One line per issue, for error messages and logs. */
export function describeIssues(issues: readonly Issue[]): string {
  return issues.map((i) => `${i.path}: ${i.message}`).join('; ');
}

/**
 * `z.record` for outside input. zod skips an own `__proto__` key without checking it (its key
 * schema and value schema never run, and the key is left out of the result), so a record would
 * accept `{"__proto__": <anything>}` as valid and quietly drop it. This reports that key as an
 * issue instead, with the key schema's own message when it refuses the name.
 */
export function recordOf<K extends z.ZodType<string>, V extends z.ZodType>(key: K, value: V) {
  const refused = key.safeParse('__proto__');
  const message = refused.success
    ? '__proto__ is not accepted as a key'
    : (refused.error.issues[0]?.message ?? '__proto__ is not accepted as a key');
  return z
    .unknown()
    .check((ctx) => {
      const input = ctx.value;
      if (typeof input === 'object' && input !== null && !Array.isArray(input) && Object.hasOwn(input, '__proto__')) {
        ctx.issues.push({ code: 'custom', message, input, path: ['__proto__'] });
      }
    })
    .pipe(z.record(key, value));
}
