import {
  describeIssues,
  isValidThingName,
  type JsonObject,
  type JsonValue,
  ownValue,
  parseJson,
  setOwn,
  validateDesiredState,
} from '@pifleet/protocol';
import { InputError, UsageError } from '../errors.js';

/**
 * Parsing of command-line values: thing names, attributes, counts and desired-state assignments.
 * Pure: every function returns a value or throws an {@link InputError}/{@link UsageError}.
 */

const ATTRIBUTE_NAME = /^[a-zA-Z0-9_.,@/:#-]{1,128}$/;
const ATTRIBUTE_VALUE = /^[a-zA-Z0-9_.,@/:#=[\]-]{0,800}$/;
/** Fleet name prefixes: a thing name without the `-NNNN` suffix the fleet adds. */
const PREFIX = /^[a-zA-Z0-9:_-]{1,100}$/;

export function parseThingName(name: string): string {
  if (!isValidThingName(name)) {
    throw new InputError(`invalid thing name ${JSON.stringify(name)}`, {
      hint: 'use 1-128 characters of a-z A-Z 0-9 : _ -',
    });
  }
  return name;
}

/** A thing type or thing group name (`--type`, `--group`, `groups …`): the thing name's pattern. */
export function parseRegistryName(what: 'thing type' | 'thing group', name: string): string {
  if (!isValidThingName(name)) {
    throw new InputError(`invalid ${what} name ${JSON.stringify(name)}`, {
      hint: 'use 1-128 characters of a-z A-Z 0-9 : _ -',
    });
  }
  return name;
}

export function parsePrefix(prefix: string): string {
  if (!PREFIX.test(prefix)) {
    throw new InputError(`invalid fleet prefix ${JSON.stringify(prefix)}`, {
      hint: 'use 1-100 characters of a-z A-Z 0-9 : _ -',
    });
  }
  return prefix;
}

/** Parses a positive integer option such as `--count 1000`. */
export function parsePositiveInt(what: string, raw: string, max = 1_000_000): number {
  if (!/^\d+$/.test(raw.trim())) throw new UsageError(`${what} must be a positive integer, got ${JSON.stringify(raw)}`);
  const n = Number.parseInt(raw, 10);
  if (n < 1 || n > max) throw new UsageError(`${what} must be between 1 and ${max}, got ${n}`);
  return n;
}

/** Parses a non-negative integer (shadow versions). */
export function parseNonNegativeInt(what: string, raw: string): number {
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(Number(raw))) {
    throw new UsageError(`${what} must be a non-negative integer, got ${JSON.stringify(raw)}`);
  }
  return Number.parseInt(raw, 10);
}

/** Parses `--attr k=v` values into a thing attribute map (AWS IoT's name and value patterns). */
export function parseAttributes(pairs: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0)
      throw new InputError(`attribute ${JSON.stringify(pair)} is not key=value`, { hint: '--attr room=lab' });
    const key = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    if (!ATTRIBUTE_NAME.test(key)) {
      throw new InputError(`invalid attribute name ${JSON.stringify(key)}`, {
        hint: 'use 1-128 characters of a-z A-Z 0-9 _ . , @ / : # -',
      });
    }
    if (!ATTRIBUTE_VALUE.test(value)) {
      throw new InputError(`invalid value for attribute ${key}: ${JSON.stringify(value)}`, {
        hint: 'use up to 800 characters of a-z A-Z 0-9 _ . , @ / : # = [ ] -',
      });
    }
    if (Object.hasOwn(out, key)) throw new InputError(`attribute ${key} given twice`);
    setOwn(out, key, value);
  }
  return out;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * A value as typed on the command line: JSON when it parses (`5000`, `true`, `null`, `"x"`), else
 * the raw string. JSON nested deeper than {@link parseJson} allows is refused, not sent as text.
 */
function parseScalar(key: string, raw: string): JsonValue {
  const parsed = parseJson(raw);
  if (parsed.ok) return parsed.value;
  if (parsed.reason === 'depth') throw new InputError(`value of ${key}: ${parsed.message}`);
  return raw;
}

/**
 * Turns `key=value` assignments into a desired-state document. A key is `top` or `top.rest`:
 * the rest is one key (sensor and output ids may contain dots), e.g. `sampling.bme280=5000`,
 * `outputs.relay=true`, `batch.maxReadings=100`, `logLevel=debug`. `null` clears a key.
 */
export function parseDesiredAssignments(assignments: readonly string[]): JsonObject {
  if (assignments.length === 0)
    throw new UsageError('nothing to set', { hint: 'give key=value pairs, e.g. outputs.relay=true sampling.env=5000' });
  const doc: JsonObject = {};
  for (const a of assignments) {
    const eq = a.indexOf('=');
    if (eq <= 0) throw new InputError(`${JSON.stringify(a)} is not key=value`, { hint: 'outputs.relay=true' });
    const path = a.slice(0, eq);
    const value = parseScalar(path, a.slice(eq + 1));
    const dot = path.indexOf('.');
    if (dot === -1) {
      if (Object.hasOwn(doc, path)) throw new InputError(`desired key ${path} given twice`);
      setOwn(doc, path, value);
      continue;
    }
    const top = path.slice(0, dot);
    const rest = path.slice(dot + 1);
    if (top === '' || rest === '') throw new InputError(`invalid desired key ${JSON.stringify(path)}`);
    // Keys are the operator's data: `__proto__.x=1` must name a key, not reach Object.prototype
    // (read own values only, write own keys; the contract check then refuses the key).
    const node = ownValue(doc, top) ?? {};
    if (!isObject(node)) throw new InputError(`desired key ${top} is both a value and an object`);
    if (Object.hasOwn(node, rest)) throw new InputError(`desired key ${path} given twice`);
    setOwn(node as JsonObject, rest, value);
    setOwn(doc, top, node as JsonObject);
  }
  return checkDesired(doc);
}

/** Parses `--json '{...}'` into a desired-state document. */
export function parseDesiredJson(text: string): JsonObject {
  // Depth checked before anything recurses into the document (the validation below does).
  const parsed = parseJson(text);
  if (!parsed.ok) throw new InputError(`--json is not valid JSON: ${parsed.message}`);
  if (!isObject(parsed.value)) throw new InputError('--json must be a JSON object of desired keys');
  return checkDesired(parsed.value as JsonObject);
}

/** Removes `null` leaves (which clear a desired key and are always allowed) for validation. */
function withoutNulls(doc: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(doc)) {
    if (v === null) continue;
    if (isObject(v)) {
      const inner = withoutNulls(v as JsonObject);
      if (Object.keys(inner).length > 0) setOwn(out, k, inner);
    } else setOwn(out, k, v);
  }
  return out;
}

/** Validates a desired document against the device contract (`validateDesiredState`), reporting every issue. */
export function checkDesired(doc: JsonObject): JsonObject {
  const result = validateDesiredState(withoutNulls(doc));
  if (!result.ok) {
    throw new InputError(`invalid desired state: ${describeIssues(result.issues)}`, {
      hint: 'keys are sampling.SENSOR (ms), batch.maxReadings|maxBytes|maxAgeMs, outputs.OUTPUT (true/false), logLevel',
      data: { issues: result.issues },
    });
  }
  return doc;
}

/** Names of a fleet's things: `PREFIX-0001` … with at least four digits. */
export function fleetThingNames(prefix: string, count: number): string[] {
  const width = Math.max(4, String(count).length);
  const names: string[] = [];
  for (let i = 1; i <= count; i++) names.push(`${prefix}-${String(i).padStart(width, '0')}`);
  return names;
}

/** Whether a thing name belongs to the fleet with this prefix (`PREFIX-` then digits). */
export function isFleetThing(prefix: string, name: string): boolean {
  return name.startsWith(`${prefix}-`) && /^\d+$/.test(name.slice(prefix.length + 1));
}
