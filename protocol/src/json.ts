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
 *   deeper frames. {@link parseJson} measures the depth without recursion and refuses anything
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

/** The message for JSON nested deeper than allowed. */
export function tooDeepMessage(maxDepth: number): string {
  return `JSON is nested more than ${maxDepth} levels deep`;
}

/**
 * `JSON.parse` for outside input: the parsed value's depth is measured (without recursion) before
 * anything else sees it, and every failure (a syntax error, or a `RangeError` from an engine that
 * parses recursively) is a result, never a throw.
 *
 * Parsing first and then walking the containers costs less than scanning the text beforehand (it
 * visits ~2 containers per reading instead of ~100 characters). Measured (best of 60 runs, Node
 * 20): a 10-reading telemetry batch (1.2 KB) parses in 15 µs and walks in 1.1 µs; a 500-reading
 * batch (53 KB) in 570 µs and 52 µs; a character scan of the text added ~20% to the parse. V8
 * parses any depth iteratively, and a payload is bounded by the 128 KB message limit, so the tree
 * built for a too-deep payload is small and dropped at once.
 */
export function parseJson(text: string, options: { maxDepth?: number } = {}): JsonParseResult {
  const maxDepth = options.maxDepth ?? MAX_JSON_DEPTH;
  let value: JsonValue;
  try {
    value = JSON.parse(text) as JsonValue;
  } catch (err) {
    if (err instanceof RangeError) return { ok: false, reason: 'depth', message: tooDeepMessage(maxDepth) };
    return { ok: false, reason: 'syntax', message: err instanceof Error ? err.message : String(err) };
  }
  if (jsonValueDepth(value, maxDepth) > maxDepth) {
    return { ok: false, reason: 'depth', message: tooDeepMessage(maxDepth) };
  }
  return { ok: true, value };
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
  if (typeof value !== 'object' || value === null) return 0;
  // Two parallel stacks (container, its depth): no object allocated per visited container.
  const containers: object[] = [value];
  const depths: number[] = [1];
  let max = 0;
  for (let v = containers.pop(); v !== undefined; v = containers.pop()) {
    const depth = depths.pop() as number;
    if (depth > max) {
      max = depth;
      if (max > limit) return max;
    }
    const children = Array.isArray(v) ? v : Object.values(v);
    for (const child of children) {
      if (typeof child === 'object' && child !== null) {
        containers.push(child);
        depths.push(depth + 1);
      }
    }
  }
  return max;
}
