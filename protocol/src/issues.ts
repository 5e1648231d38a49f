import { z } from 'zod';
import { ownValue, setOwn } from './json.js';

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
      message: plainMessage(issue),
    })),
  };
}

/**
 * zod's built-in messages, said the way the rest of our messages are: `required (a string)` for a
 * missing field instead of `Invalid input: expected string, received undefined`, and without the
 * `Invalid input: ` prefix elsewhere. Messages a schema sets itself pass through unchanged.
 */
function plainMessage(issue: z.core.$ZodIssue): string {
  if (issue.code === 'invalid_type' && /received undefined$/.test(issue.message)) {
    return `required (${/^[aeiou]/.test(issue.expected) ? 'an' : 'a'} ${issue.expected})`;
  }
  return issue.message.replace(/^Invalid input: /, '');
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

/** A problem a schema found, at a path into the value (keys and indexes, as zod reports them). */
export interface PathIssue {
  readonly path: readonly PropertyKey[];
  readonly message: string;
}

const isRecordObject = (v: unknown): v is Readonly<Record<string, unknown>> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * A record schema for outside input whose keys are data, not names pifleet gives meaning to:
 * every own key, `__proto__` included, is checked with `value` and kept as an own key of the
 * result. Where {@link recordOf} refuses `__proto__` (an id in pifleet's own formats) and zod's
 * `z.record` drops it, an AWS format may legally carry it: a thing attribute named `__proto__`,
 * or a policy condition operator that the evaluator must see so that its statement fails closed;
 * dropping that operator would turn a conditional Allow into an unconditional one. Keys are read
 * as own keys and written with {@link setOwn}, so none reaches a prototype.
 *
 * `messages` replaces zod's wording where a format has its own: for a value that is not an
 * object, and for a key whose value the schema refuses.
 */
export function ownRecordOf<V extends z.ZodType>(
  value: V,
  messages: { readonly notObject?: string; readonly invalidValue?: (key: string) => string } = {},
) {
  return z.unknown().transform((input, ctx): Record<string, z.output<V>> => {
    if (!isRecordObject(input)) {
      ctx.issues.push({
        code: 'invalid_type',
        expected: 'record',
        input,
        ...(messages.notObject === undefined ? {} : { message: messages.notObject }),
      });
      return z.NEVER;
    }
    const out: Record<string, z.output<V>> = {};
    for (const key of Object.keys(input)) {
      const item = ownValue(input, key);
      const result = value.safeParse(item);
      if (result.success) {
        setOwn(out, key, result.data);
        continue;
      }
      for (const issue of result.error.issues) {
        ctx.issues.push({
          code: 'custom',
          input: item,
          path: [key, ...issue.path],
          message: messages.invalidValue?.(key) ?? issue.message,
        });
      }
    }
    return out;
  });
}
