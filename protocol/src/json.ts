import type { JsonObject, JsonValue } from './shadow.js';

/**
 * JSON from outside (devices, HTTP bodies, rule payloads) is hostile until it is parsed here.
 *
 * Two things go wrong with it in JavaScript, and every entry point guards against both:
 *
 * - Keys: `JSON.parse` makes `__proto__` an ordinary own key, but copying it with `out[key] = v`
 *   calls the `__proto__` setter instead, and reading `obj[key]` for a key the object lacks finds
 *   `Object.prototype` members (`constructor`, `__proto__`). A merge that does both wrote into
 *   `Object.prototype` itself, and then every object in the process had the device's keys. So
 *   outside keys are read with {@link ownValue} and written with {@link setOwn}.
 * - Depth: `JSON.parse` is not recursive in V8, but everything after it is (`JSON.stringify`,
 *   `structuredClone`, deep equality, merges). Measured on Node 20 with the default stack:
 *   `JSON.stringify` overflows at ~4,100 levels, `structuredClone` at ~1,900, less when called from
 *   deeper frames. {@link parseJson} counts the depth in the text first and refuses anything
 *   deeper than {@link MAX_JSON_DEPTH}, so no later walk can be driven into a stack overflow.
 */

/**
 * How deeply JSON from outside may nest (each object or array is a level). Far above any document
 * pifleet defines (a telemetry batch is 4 levels, a shadow update at most 9) and far below where
 * V8's recursive JSON functions overflow.
 */
export const MAX_JSON_DEPTH = 64;

/** Keys that name parts of JavaScript's object model: never accepted as ids or names in pifleet's own formats. */
export const RESERVED_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

export type JsonParseResult =
  | { readonly ok: true; readonly value: JsonValue }
  | { readonly ok: false; readonly reason: 'syntax' | 'depth'; readonly message: string };

/**
 * The nesting depth of JSON text without parsing it: brackets outside strings, counted in one
 * loop. Stops as soon as the depth passes `limit` (and returns that depth). Text that is not
 * valid JSON gets some number; `JSON.parse` rejects it afterwards.
 */
export function jsonTextDepth(text: string, limit = Number.POSITIVE_INFINITY): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      // A backslash escapes the next character (it may be a quote).
      if (c === 92) i++;
      else if (c === 34) inString = false;
    } else if (c === 34) {
      inString = true;
    } else if (c === 123 || c === 91) {
      depth++;
      if (depth > max) {
        max = depth;
        if (max > limit) return max;
      }
    } else if (c === 125 || c === 93) {
      depth--;
    }
  }
  return max;
}

/** The message for JSON nested deeper than allowed. */
export function tooDeepMessage(maxDepth: number): string {
  return `JSON is nested more than ${maxDepth} levels deep`;
}

/**
 * `JSON.parse` for outside input: the depth is checked on the text before anything is built, and
 * every failure (a syntax error, or a `RangeError` from an engine that parses recursively) is a
 * result, never a throw.
 */
export function parseJson(text: string, options: { maxDepth?: number } = {}): JsonParseResult {
  const maxDepth = options.maxDepth ?? MAX_JSON_DEPTH;
  if (jsonTextDepth(text, maxDepth) > maxDepth) {
    return { ok: false, reason: 'depth', message: tooDeepMessage(maxDepth) };
  }
  try {
    return { ok: true, value: JSON.parse(text) as JsonValue };
  } catch (err) {
    if (err instanceof RangeError) return { ok: false, reason: 'depth', message: tooDeepMessage(maxDepth) };
    return { ok: false, reason: 'syntax', message: err instanceof Error ? err.message : String(err) };
  }
}

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const hasOwn = Object.prototype.hasOwnProperty;

/** `obj[key]` only when the object has the key itself: never a member of `Object.prototype`. */
export function ownValue<T>(obj: { readonly [key: string]: T }, key: string): T | undefined {
  return hasOwn.call(obj, key) ? obj[key] : undefined;
}

/**
 * `obj[key] = value` that makes `__proto__` an ordinary own key (as `JSON.parse` does) instead of
 * calling the prototype setter. Other keys have no setter on `Object.prototype`, so plain
 * assignment already creates an own key for them.
 */
export function setOwn<T>(obj: { [key: string]: T }, key: string, value: T): void {
  if (key === '__proto__')
    Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  else obj[key] = value;
}

/**
 * Nesting depth of a parsed value (0 for a primitive, each object or array adds one), walked with
 * an explicit stack so that a value of any depth is measured without recursion. Stops once the
 * depth passes `limit`.
 */
export function jsonValueDepth(value: unknown, limit = Number.POSITIVE_INFINITY): number {
  let max = 0;
  const stack: Array<{ readonly value: unknown; readonly depth: number }> = [{ value, depth: 0 }];
  for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
    const v = top.value;
    if (typeof v !== 'object' || v === null) continue;
    const depth = top.depth + 1;
    if (depth > max) {
      max = depth;
      if (max > limit) return max;
    }
    const children = Array.isArray(v) ? v : Object.values(v);
    for (const child of children) {
      if (typeof child === 'object' && child !== null) stack.push({ value: child, depth });
    }
  }
  return max;
}
