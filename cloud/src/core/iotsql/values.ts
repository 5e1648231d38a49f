import { type JsonValue, ownValue, setOwn } from '@pifleet/protocol';

/**
 * A value inside the engine: a JSON value, or `undefined` for IoT SQL's Undefined (a missing field,
 * a function called with arguments it cannot use). A number is an Int when it is whole, otherwise a
 * Decimal: SQL version 2016-03-23 processes whole numbers such as 10.0 as Int 10, so the distinction
 * needs no tag.
 */
export type SqlValue = JsonValue | undefined;
export type SqlObject = { [key: string]: JsonValue };

export type SqlType = 'Int' | 'Decimal' | 'Boolean' | 'String' | 'Array' | 'Object' | 'Null' | 'Undefined';

export function typeOf(v: SqlValue): SqlType {
  if (v === undefined) return 'Undefined';
  if (v === null) return 'Null';
  switch (typeof v) {
    case 'number':
      return Number.isInteger(v) ? 'Int' : 'Decimal';
    case 'string':
      return 'String';
    case 'boolean':
      return 'Boolean';
    default:
      return Array.isArray(v) ? 'Array' : 'Object';
  }
}

export function isObject(v: SqlValue): v is SqlObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const hasOwn = Object.prototype.hasOwnProperty;

/** The value under `key` if the object has it as its own key, else Undefined. */
export function ownField(obj: SqlObject, key: string): SqlValue {
  return ownValue(obj, key);
}

/** Sets a key on an output object; `__proto__` becomes an ordinary key instead of a prototype change. */
export function setField(obj: SqlObject, key: string, value: JsonValue): void {
  setOwn(obj, key, value);
}

function isDigitCode(c: number): boolean {
  return c >= 48 && c <= 57;
}

/**
 * Parses a string the way IoT converts String to Decimal: it must match
 * `^-?\d+(\.\d+)?([eE]-?\d+)?$` (checked by a scanner, not a regular expression).
 */
export function parseDecimalString(s: string): number | undefined {
  const n = s.length;
  let i = 0;
  if (s.charCodeAt(i) === 45) i++;
  const intStart = i;
  while (i < n && isDigitCode(s.charCodeAt(i))) i++;
  if (i === intStart) return undefined;
  if (i < n && s.charCodeAt(i) === 46) {
    i++;
    const fracStart = i;
    while (i < n && isDigitCode(s.charCodeAt(i))) i++;
    if (i === fracStart) return undefined;
  }
  if (i < n && (s.charCodeAt(i) === 69 || s.charCodeAt(i) === 101)) {
    i++;
    if (i < n && s.charCodeAt(i) === 45) i++;
    const expStart = i;
    while (i < n && isDigitCode(s.charCodeAt(i))) i++;
    if (i === expStart) return undefined;
  }
  if (i !== n) return undefined;
  const v = Number(s);
  return Number.isFinite(v) ? v : undefined;
}

/** Standard conversion to Decimal (number): numbers as they are, numeric strings parsed, all else Undefined. */
export function toNumber(v: SqlValue): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v === 'string') return parseDecimalString(v);
  return undefined;
}

/** Standard conversion to Int: Decimal rounded to the nearest Int, a numeric string truncated. */
export function toInt(v: SqlValue): number | undefined {
  if (typeof v === 'number') return Number.isInteger(v) ? v : Math.round(v);
  if (typeof v === 'string') {
    const d = parseDecimalString(v);
    return d === undefined ? undefined : Math.trunc(d);
  }
  return undefined;
}

/** Standard conversion to Boolean: booleans, and the strings "true"/"false" in any case. */
export function toBoolean(v: SqlValue): boolean | undefined {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string') {
    if (v.length === 4 && v.toLowerCase() === 'true') return true;
    if (v.length === 5 && v.toLowerCase() === 'false') return false;
  }
  return undefined;
}

export function numberToString(n: number): string {
  return Object.is(n, -0) ? '0' : String(n);
}

/** Standard conversion to String: arrays and objects serialize to JSON; Null and Undefined give Undefined. */
export function toStringValue(v: SqlValue): string | undefined {
  switch (typeof v) {
    case 'string':
      return v;
    case 'number':
      return numberToString(v);
    case 'boolean':
      return v ? 'true' : 'false';
    case 'object':
      return v === null ? undefined : JSON.stringify(v);
    default:
      return undefined;
  }
}

/**
 * Decimal arithmetic in AWS IoT uses 34-digit decimals, where 0.1 + 0.2 is 0.3. Doubles are kept
 * here; rounding a non-whole result to 15 significant digits removes the binary noise for values
 * of ordinary sensor precision.
 */
export function decimalResult(x: number): number | undefined {
  if (!Number.isFinite(x)) return undefined;
  // IoT's decimals have no negative zero (0 * -1 is 0).
  if (x === 0) return 0;
  if (Number.isInteger(x)) return x;
  return Number(x.toPrecision(15));
}

/** Deep equality of two defined values: Int and Decimal compare by value, object key order is ignored. */
export function deepEqual(a: JsonValue, b: JsonValue): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!deepEqual(a[i] as JsonValue, b[i] as JsonValue)) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) {
    if (!hasOwn.call(b, k)) return false;
    if (!deepEqual(a[k] as JsonValue, b[k] as JsonValue)) return false;
  }
  return true;
}

/** The `=` operator: Undefined if either side is Undefined, false for mismatched types. */
export function sqlEquals(a: SqlValue, b: SqlValue): boolean | undefined {
  if (a === undefined || b === undefined) return undefined;
  return deepEqual(a, b);
}

/** Orders two values for `<`, `<=`, `>`, `>=`: both must be numbers or numeric strings. */
export function sqlCompare(a: SqlValue, b: SqlValue): number | undefined {
  const x = typeof a === 'number' ? a : toNumber(a);
  if (x === undefined) return undefined;
  const y = typeof b === 'number' ? b : toNumber(b);
  if (y === undefined) return undefined;
  return x < y ? -1 : x > y ? 1 : 0;
}

/** `+`: string concatenation when either side is a String, else numeric addition. */
export function sqlAdd(a: SqlValue, b: SqlValue): SqlValue {
  if (typeof a === 'number' && typeof b === 'number') return Number.isInteger(a + b) ? a + b : decimalResult(a + b);
  if (typeof a === 'string' || typeof b === 'string') {
    const l = toStringValue(a);
    const r = toStringValue(b);
    return l === undefined || r === undefined ? undefined : l + r;
  }
  return undefined;
}

export type ArithOp = '-' | '*' | '/' | '%';

/** `-`, `*`, `/`, `%`: Int op Int stays Int (division truncates); numeric strings convert; else Undefined. */
export function sqlArith(op: ArithOp, a: SqlValue, b: SqlValue): SqlValue {
  const x = toNumber(a);
  if (x === undefined) return undefined;
  const y = toNumber(b);
  if (y === undefined) return undefined;
  switch (op) {
    case '-':
      return decimalResult(x - y);
    case '*':
      return decimalResult(x * y);
    case '/':
      if (y === 0) return undefined;
      if (Number.isInteger(x) && Number.isInteger(y) && typeof a === 'number' && typeof b === 'number') {
        return Math.trunc(x / y);
      }
      return decimalResult(x / y);
    case '%':
      if (y === 0) return undefined;
      return decimalResult(x % y);
  }
}
