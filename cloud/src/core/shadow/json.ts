import type { JsonObject, JsonValue } from '@pifleet/protocol';

/** JSON helpers for shadow documents. Pure; values are plain JSON (what `JSON.parse` returns). */

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Structural equality of two JSON values (object key order ignored, arrays compared element by element). */
export function jsonEqual(a: JsonValue | undefined, b: JsonValue | undefined): boolean {
  if (a === b) return true;
  if (a === null || b === null || a === undefined || b === undefined) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    return a.every((item, i) => jsonEqual(item, b[i]));
  }
  if (isJsonObject(a)) {
    if (!isJsonObject(b)) return false;
    const keys = Object.keys(a);
    if (keys.length !== Object.keys(b).length) return false;
    return keys.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k], b[k]));
  }
  return false;
}

export function cloneJson<T extends JsonValue>(value: T): T {
  return structuredClone(value);
}

/**
 * Nesting depth of a value: 0 for a primitive, 1 + the deepest child for an object or array.
 * `{"a": {"b": 1}}` has depth 2.
 */
export function nestingDepth(value: JsonValue): number {
  if (Array.isArray(value)) {
    let max = 0;
    for (const item of value) max = Math.max(max, nestingDepth(item));
    return 1 + max;
  }
  if (isJsonObject(value)) {
    let max = 0;
    for (const item of Object.values(value)) max = Math.max(max, nestingDepth(item));
    return 1 + max;
  }
  return 0;
}

/** True when any array anywhere inside `value` holds a `null` element. */
export function hasNullInArray(value: JsonValue): boolean {
  if (Array.isArray(value)) return value.some((item) => item === null || hasNullInArray(item));
  if (isJsonObject(value)) return Object.values(value).some((item) => hasNullInArray(item));
  return false;
}

const encoder = new TextEncoder();

/** UTF-8 byte length of the compact JSON serialization (no whitespace). */
export function jsonByteLength(value: JsonValue): number {
  return encoder.encode(JSON.stringify(value)).length;
}
