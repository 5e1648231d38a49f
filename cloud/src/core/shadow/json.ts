import { isJsonObject, type JsonValue, jsonValueDepth } from '@pifleet/protocol';

/**
 * JSON helpers for shadow documents. Pure; values are plain JSON (what `JSON.parse` returns).
 * Request documents reach these helpers unchecked, so the ones that look at a whole request
 * ({@link nestingDepth}, {@link hasNullInArray}) walk with an explicit stack: a document of any
 * depth is measured, never overflowing the call stack. The recursive ones run only on documents
 * already held to the shadow's depth limit.
 */

export { isJsonObject };

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

/** A deep copy; own `__proto__` keys stay own keys (structured clone defines properties, it does not assign them). */
export function cloneJson<T extends JsonValue>(value: T): T {
  return structuredClone(value);
}

/**
 * Nesting depth of a value: 0 for a primitive, 1 + the deepest child for an object or array.
 * `{"a": {"b": 1}}` has depth 2. Stops counting once past `limit`.
 */
export function nestingDepth(value: JsonValue, limit?: number): number {
  return jsonValueDepth(value, limit);
}

/** True when any array anywhere inside `value` holds a `null` element. */
export function hasNullInArray(value: JsonValue): boolean {
  const stack: JsonValue[] = [value];
  for (let v = stack.pop(); v !== undefined; v = stack.pop()) {
    if (Array.isArray(v)) {
      for (const item of v) {
        if (item === null) return true;
        if (typeof item === 'object') stack.push(item);
      }
    } else if (isJsonObject(v)) {
      for (const item of Object.values(v)) if (typeof item === 'object' && item !== null) stack.push(item);
    }
  }
  return false;
}

const encoder = new TextEncoder();

/** UTF-8 byte length of the compact JSON serialization (no whitespace). */
export function jsonByteLength(value: JsonValue): number {
  return encoder.encode(JSON.stringify(value)).length;
}
