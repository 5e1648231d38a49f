import { createHash, randomUUID } from 'node:crypto';
import { type JsonValue, parseBasicIngestTopic, parseJson, setOwn } from '@pifleet/protocol';
import type { Expr } from './ast.js';
import {
  compilePattern,
  type DatePattern,
  formatInstant,
  type PatternDialect,
  parseInstant,
  resolveZone,
} from './datetime.js';
import { md2 } from './md2.js';
import type { EvalContext, MqttMessageProperties, PreparedMessage } from './message.js';
import {
  isObject,
  numberToString,
  ownField,
  parseDecimalString,
  type SqlValue,
  sqlArith,
  toInt,
  toNumber,
  toStringValue,
} from './values.js';

/** What a function can see besides its arguments: the message and the injected context. */
export interface FunctionEnv {
  readonly msg: PreparedMessage;
  readonly ctx: EvalContext;
  timestamp(): number | undefined;
}

export interface FunctionDef {
  readonly min: number;
  readonly max: number;
  readonly impl: (args: readonly SqlValue[], env: FunctionEnv) => SqlValue;
  /** A compile-time check of the argument expressions (literals); returns the problem, if any. */
  readonly check?: (args: readonly Expr[]) => string | undefined;
}

/** Functions AWS documents that this engine does not evaluate (they call other services or need Joda/Java). */
export const UNSUPPORTED_FUNCTIONS: ReadonlySet<string> = new Set([
  'aws_lambda',
  'get_dynamodb',
  'get_secret',
  'get_registry_data',
  'machinelearning_predict',
]);

/**
 * Names that are not IoT SQL functions but are easily mistaken for one, with the function meant:
 * the user-properties function is plural in IoT SQL (it returns every value of a key).
 */
export const MISNAMED_FUNCTIONS: ReadonlyMap<string, string> = new Map([['get_user_property', 'get_user_properties']]);

/**
 * `get_mqtt_property(name)`: the names IoT SQL documents (lower case, as written) and what each
 * returns. The payload format indicator reads as the enum strings the republish action's headers
 * take (`UTF8_DATA`, `UNSPECIFIED_BYTES`); correlation data, which is binary, as base64. A
 * property the message does not carry, and every property of an MQTT 3.1.1 message, is Undefined.
 */
const MQTT_PROPERTIES: ReadonlyMap<string, (p: MqttMessageProperties) => SqlValue> = new Map<
  string,
  (p: MqttMessageProperties) => SqlValue
>([
  [
    'format_indicator',
    (p) =>
      p.payloadFormatIndicator === undefined ? undefined : p.payloadFormatIndicator ? 'UTF8_DATA' : 'UNSPECIFIED_BYTES',
  ],
  ['content_type', (p) => p.contentType],
  ['response_topic', (p) => p.responseTopic],
  [
    'correlation_data',
    (p) =>
      p.correlationData === undefined
        ? undefined
        : Buffer.from(p.correlationData.buffer, p.correlationData.byteOffset, p.correlationData.byteLength).toString(
            'base64',
          ),
  ],
]);

/** The documented names, for error messages. */
export const MQTT_PROPERTY_NAMES: readonly string[] = [...MQTT_PROPERTIES.keys()];

function mqttProperty(name: SqlValue, msg: PreparedMessage): SqlValue {
  if (typeof name !== 'string') return undefined;
  const read = MQTT_PROPERTIES.get(name);
  const props = msg.properties;
  return read === undefined || props === undefined ? undefined : read(props);
}

/**
 * `get_user_properties(key)`: every value the message carries under that key (case-sensitive, as
 * MQTT compares strings), as an Array of Strings in wire order — an Array even for one value,
 * because MQTT 5 allows a key more than once; Undefined when the key is absent, for a non-String
 * key, and for an MQTT 3.1.1 message. Without an argument, every user property as an Array of
 * one-key objects (`[{"k": "v"}, …]`), the shape IoT Core's GetRetainedMessage uses for them.
 * Keys are data: only own keys are read, so `toString` or `__proto__` are ordinary keys.
 */
function userProperties(args: readonly SqlValue[], msg: PreparedMessage): SqlValue {
  const all = msg.properties?.userProperties;
  if (all === undefined) return undefined;
  if (args.length === 0) {
    const out: JsonValue[] = [];
    for (const key of Object.keys(all)) {
      const v = all[key] as string | readonly string[];
      for (const one of typeof v === 'string' ? [v] : v) {
        const entry: { [k: string]: JsonValue } = {};
        setOwn(entry, key, one);
        out.push(entry);
      }
    }
    return out.length === 0 ? undefined : out;
  }
  const [key] = args;
  if (typeof key !== 'string' || !Object.hasOwn(all, key)) return undefined;
  const v = all[key] as string | readonly string[];
  return typeof v === 'string' ? [v] : [...v];
}

function double(f: (x: number) => number): FunctionDef {
  return {
    min: 1,
    max: 1,
    impl: ([a]) => {
      const x = toNumber(a);
      if (x === undefined) return undefined;
      const r = f(x);
      return Number.isFinite(r) ? r : undefined;
    },
  };
}

function str(a: SqlValue): string | undefined {
  return typeof a === 'string' ? a : toStringValue(a);
}

function stringFn(f: (s: string) => SqlValue): FunctionDef {
  return {
    min: 1,
    max: 1,
    impl: ([a]) => {
      const s = str(a);
      return s === undefined ? undefined : f(s);
    },
  };
}

function hash(algorithm: string): FunctionDef {
  return stringFn((s) => createHash(algorithm).update(s, 'utf8').digest('hex'));
}

/**
 * The reference gives each time function its own pattern language: `time_to_epoch` takes JDK 11
 * `DateTimeFormatter` patterns, `parse_time` Joda-Time ones (and Joda-Time zone IDs).
 */
const DIALECT: Readonly<Record<'time_to_epoch' | 'parse_time', PatternDialect>> = {
  time_to_epoch: 'java',
  parse_time: 'joda',
};

/** Patterns computed at run time, compiled once each (bounded: a payload can name many). */
const patternCache = new Map<string, DatePattern | undefined>();

function runtimePattern(p: SqlValue, dialect: PatternDialect): DatePattern | undefined {
  if (typeof p !== 'string') return undefined;
  const key = `${dialect}:${p}`;
  if (patternCache.has(key)) return patternCache.get(key);
  let compiled: DatePattern | undefined;
  try {
    compiled = compilePattern(p, dialect);
  } catch {
    compiled = undefined;
  }
  if (patternCache.size >= 256) patternCache.clear();
  patternCache.set(key, compiled);
  return compiled;
}

/** A literal pattern argument is compiled with the rule, so an unsupported letter fails CreateTopicRule. */
function checkPattern(name: 'time_to_epoch' | 'parse_time', arg: Expr | undefined): string | undefined {
  if (arg?.type !== 'literal') return undefined;
  if (typeof arg.value !== 'string') return `${name}() takes its pattern as a string`;
  try {
    compilePattern(arg.value, DIALECT[name]);
    return undefined;
  } catch (err) {
    return `${name}(): ${(err as Error).message}`;
  }
}

/** Dates JavaScript can hold (±100,000,000 days around the epoch). */
const MAX_EPOCH_MS = 8.64e15;

/**
 * `parse_time(pattern, epochMs[, zone])`: formats an instant. The zone defaults to UTC; a zone or
 * pattern that does not resolve, or a time that is not a number, gives Undefined.
 */
function parseTime(args: readonly SqlValue[]): SqlValue {
  const pattern = runtimePattern(args[0], DIALECT.parse_time);
  const ms = toNumber(args[1]);
  const zoneArg = args.length > 2 ? args[2] : 'UTC';
  if (pattern === undefined || ms === undefined || typeof zoneArg !== 'string') return undefined;
  const t = Math.trunc(ms);
  if (Math.abs(t) > MAX_EPOCH_MS) return undefined;
  const zone = resolveZone(zoneArg, DIALECT.parse_time);
  return zone === undefined ? undefined : formatInstant(pattern, t, zone);
}

/** `time_to_epoch(text, pattern)`: ms since the epoch; Undefined when the text does not match. */
function timeToEpoch([input, p]: readonly SqlValue[]): SqlValue {
  const pattern = runtimePattern(p, DIALECT.time_to_epoch);
  if (pattern === undefined || typeof input !== 'string') return undefined;
  return parseInstant(pattern, input);
}

/** The most `transform()` returns: the reference limits its array to 128 KiB (of JSON). */
export const TRANSFORM_MAX_BYTES = 128 * 1024;

/**
 * `transform(mode, object, array)`. The reference documents one mode, `enrichArray`: every element
 * of the array, an object, gets the object's attributes added; any other mode is Undefined. Not
 * documented, and chosen here: the mode is case-sensitive; an element that is not an object, an
 * object argument that is not an object, or an array argument that is not an array make the whole
 * result Undefined (rather than silently dropping data); an attribute of the object replaces an
 * element's attribute of the same name (the object is what enriches); a result over 128 KiB is
 * Undefined.
 */
function transform([mode, obj, arr]: readonly SqlValue[]): SqlValue {
  if (mode !== 'enrichArray' || !isObject(obj) || !Array.isArray(arr)) return undefined;
  const out: JsonValue[] = [];
  for (const element of arr) {
    if (!isObject(element)) return undefined;
    const merged: { [k: string]: JsonValue } = {};
    for (const k of Object.keys(element)) setOwn(merged, k, element[k] as JsonValue);
    for (const k of Object.keys(obj)) setOwn(merged, k, obj[k] as JsonValue);
    out.push(merged);
  }
  return Buffer.byteLength(JSON.stringify(out), 'utf8') > TRANSFORM_MAX_BYTES ? undefined : out;
}

/** Int/Decimal/String argument, rounded down (bit functions, chr). */
function floorInt(a: SqlValue): number | undefined {
  const x = toNumber(a);
  return x === undefined ? undefined : Math.floor(x);
}

function bitwise(op: (a: bigint, b: bigint) => bigint): FunctionDef {
  return {
    min: 2,
    max: 2,
    impl: ([a, b]) => {
      const x = floorInt(a);
      const y = floorInt(b);
      if (x === undefined || y === undefined || !Number.isSafeInteger(x) || !Number.isSafeInteger(y)) return undefined;
      return Number(BigInt.asIntN(64, op(BigInt(x), BigInt(y))));
    },
  };
}

function isWhite(c: number): boolean {
  return c === 32 || c === 9 || c === 10 || c === 13;
}
function trimStart(s: string): string {
  let i = 0;
  while (i < s.length && isWhite(s.charCodeAt(i))) i++;
  return s.slice(i);
}
function trimEnd(s: string): string {
  let j = s.length;
  while (j > 0 && isWhite(s.charCodeAt(j - 1))) j--;
  return s.slice(0, j);
}

function pad(side: 'left' | 'right'): FunctionDef {
  return {
    min: 2,
    max: 2,
    impl: ([a, b]) => {
      const s = str(a);
      const n = toNumber(b);
      if (s === undefined || n === undefined) return undefined;
      const count = Math.min(1000, Math.max(0, Math.floor(n)));
      const spaces = ' '.repeat(count);
      return side === 'left' ? spaces + s : s + spaces;
    },
  };
}

function twoStrings(f: (a: string, b: string) => SqlValue): FunctionDef {
  return {
    min: 2,
    max: 2,
    impl: ([a, b]) => {
      const x = str(a);
      const y = str(b);
      return x === undefined || y === undefined ? undefined : f(x, y);
    },
  };
}

/** `get(collection, key)` and the `[ ]` operator. */
export function getItem(container: SqlValue, key: SqlValue): SqlValue {
  if (Array.isArray(container)) {
    const i = toInt(key);
    return i === undefined || i < 0 || i >= container.length ? undefined : container[i];
  }
  if (typeof container === 'string') {
    const i = toInt(key);
    return i === undefined || i < 0 || i >= container.length ? undefined : container.charAt(i);
  }
  if (isObject(container)) return typeof key === 'string' ? ownField(container, key) : undefined;
  return undefined;
}

const BASE64_ALPHABET = /* A-Z a-z 0-9 + / */ (() => {
  const ok = new Uint8Array(128);
  for (let c = 65; c <= 90; c++) ok[c] = 1;
  for (let c = 97; c <= 122; c++) ok[c] = 1;
  for (let c = 48; c <= 57; c++) ok[c] = 1;
  ok[43] = 1;
  ok[47] = 1;
  return ok;
})();

function isBase64(s: string): boolean {
  let end = s.length;
  let padding = 0;
  while (end > 0 && s.charCodeAt(end - 1) === 61 && padding < 2) {
    end--;
    padding++;
  }
  if (padding > 0 && s.length % 4 !== 0) return false;
  if (end % 4 === 1) return false;
  for (let i = 0; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || BASE64_ALPHABET[c] !== 1) return false;
  }
  return true;
}

const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/** `decode(value, 'base64')`: JSON documents become addressable values, other text a String, bad input Null. */
function decodeBase64(value: SqlValue, scheme: SqlValue): SqlValue {
  if (typeof scheme !== 'string' || scheme.toLowerCase() !== 'base64') return undefined;
  if (typeof value !== 'string') return value === undefined ? undefined : null;
  if (!isBase64(value)) return null;
  let text: string;
  try {
    text = utf8Strict.decode(Buffer.from(value, 'base64'));
  } catch {
    return null;
  }
  // Held to the same depth bound as payloads (see decodePayload); deeper JSON stays text.
  const parsed = parseJson(text);
  return parsed.ok ? parsed.value : text;
}

/** `encode(value, 'base64')` for an expression (the `*` form is handled where the payload bytes are). */
export function encodeBase64(value: SqlValue, scheme: SqlValue): SqlValue {
  if (typeof scheme !== 'string' || scheme.toLowerCase() !== 'base64') return undefined;
  const s = str(value);
  return s === undefined ? undefined : Buffer.from(s, 'utf8').toString('base64');
}

export function encodeBytes(bytes: Uint8Array, scheme: SqlValue): SqlValue {
  if (typeof scheme !== 'string' || scheme.toLowerCase() !== 'base64') return undefined;
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

function concat(args: readonly SqlValue[]): SqlValue {
  if (args.length === 0) return undefined;
  if (args.length === 1) {
    const [a] = args;
    return Array.isArray(a) ? a : str(a);
  }
  for (const a of args) if (a === undefined) return undefined;
  if (args.some(Array.isArray)) {
    const out: JsonValue[] = [];
    for (const a of args) {
      if (Array.isArray(a)) out.push(...a);
      else out.push(a as JsonValue);
    }
    return out;
  }
  let s = '';
  for (const a of args) {
    const part = str(a);
    if (part === undefined) return undefined;
    s += part;
  }
  return s;
}

function substring(args: readonly SqlValue[]): SqlValue {
  const s = str(args[0]);
  const from = toNumber(args[1]);
  if (s === undefined || from === undefined) return undefined;
  const clamp = (n: number) => Math.min(s.length, Math.max(0, Math.floor(n)));
  const i = clamp(from);
  if (args.length < 3) return s.slice(i);
  const to = toNumber(args[2]);
  if (to === undefined) return undefined;
  const j = clamp(to);
  return i >= j ? '' : s.slice(i, j);
}

function trunc(a: SqlValue, b: SqlValue): SqlValue {
  const x = toNumber(a);
  const n = toNumber(b);
  if (x === undefined || n === undefined) return undefined;
  if (Number.isInteger(x)) return x;
  const places = Math.min(34, Math.max(0, Math.floor(n)));
  const text = numberToString(x);
  const dot = text.indexOf('.');
  if (dot >= 0 && !text.includes('e')) {
    const cut = places === 0 ? text.slice(0, dot) : text.slice(0, dot + 1 + places);
    const r = Number(cut);
    return r === 0 ? 0 : r; // trunc(-0.4, 0) is 0, not -0
  }
  const scale = 10 ** places;
  const r = Math.trunc(x * scale) / scale;
  return r === 0 ? 0 : r;
}

function round(a: SqlValue): SqlValue {
  const x = toNumber(a);
  if (x === undefined) return undefined;
  const r = Math.sign(x) * Math.round(Math.abs(x));
  return r === 0 ? 0 : r;
}

function regex(pattern: SqlValue): RegExp | undefined {
  const p = str(pattern);
  if (p === undefined) return undefined;
  try {
    return new RegExp(p);
  } catch {
    return undefined;
  }
}

function numeric(f: (x: number) => number): FunctionDef {
  return {
    min: 1,
    max: 1,
    impl: ([a]) => {
      const x = toNumber(a);
      if (x === undefined) return undefined;
      const r = f(x);
      return r === 0 ? 0 : r;
    },
  };
}

const defs: Record<string, FunctionDef> = {
  abs: numeric(Math.abs),
  accountid: { min: 0, max: 0, impl: (_, env) => env.ctx.accountId },
  acos: double(Math.acos),
  asin: double(Math.asin),
  atan: double(Math.atan),
  atan2: {
    min: 2,
    max: 2,
    impl: ([a, b]) => {
      const y = toNumber(a);
      const x = toNumber(b);
      return y === undefined || x === undefined ? undefined : Math.atan2(y, x);
    },
  },
  bitand: bitwise((a, b) => a & b),
  bitor: bitwise((a, b) => a | b),
  bitxor: bitwise((a, b) => a ^ b),
  bitnot: {
    min: 1,
    max: 1,
    impl: ([a]) => {
      const x = floorInt(a);
      return x === undefined || !Number.isSafeInteger(x) ? undefined : Number(BigInt.asIntN(64, ~BigInt(x)));
    },
  },
  ceil: numeric(Math.ceil),
  chr: {
    min: 1,
    max: 1,
    impl: ([a]) => {
      const x = floorInt(a);
      return x === undefined || x < 0 || x > 127 ? undefined : String.fromCharCode(x);
    },
  },
  clientid: { min: 0, max: 0, impl: (_, env) => env.msg.clientId ?? 'n/a' },
  concat: { min: 0, max: Number.POSITIVE_INFINITY, impl: (args) => concat(args) },
  cos: double(Math.cos),
  cosh: double(Math.cosh),
  decode: { min: 2, max: 2, impl: ([a, b]) => decodeBase64(a, b) },
  encode: { min: 2, max: 2, impl: ([a, b]) => encodeBase64(a, b) },
  endswith: twoStrings((a, b) => a.endsWith(b)),
  exp: double(Math.exp),
  floor: numeric(Math.floor),
  get: { min: 2, max: 2, impl: ([a, b]) => getItem(a, b) },
  get_mqtt_property: {
    min: 1,
    max: 1,
    impl: ([name], env) => mqttProperty(name, env.msg),
    // The reference lists the names as literal strings; a literal that is none of them can never
    // return a value, so it is refused when the rule is created rather than read as Undefined.
    check: ([arg]) =>
      arg?.type === 'literal' && typeof arg.value === 'string' && !MQTT_PROPERTIES.has(arg.value)
        ? `get_mqtt_property() takes one of ${MQTT_PROPERTY_NAMES.map((n) => `'${n}'`).join(', ')}, not ${JSON.stringify(arg.value)}`
        : arg?.type === 'literal' && typeof arg.value !== 'string'
          ? 'get_mqtt_property() takes a property name (a string)'
          : undefined,
  },
  get_user_properties: { min: 0, max: 1, impl: (args, env) => userProperties(args, env.msg) },
  // get_thing_shadow(thingName, [shadowName,] roleArn): the role is AWS's concern; locally the
  // injected lookup answers (Undefined without one, or for an unknown thing or shadow).
  get_thing_shadow: {
    min: 2,
    max: 3,
    impl: (args, env) => {
      const thing = args[0];
      const shadow = args.length === 3 ? args[1] : undefined;
      if (typeof thing !== 'string' || (args.length === 3 && typeof shadow !== 'string')) return undefined;
      return env.ctx.getThingShadow?.(thing, shadow as string | undefined);
    },
  },
  indexof: twoStrings((a, b) => a.indexOf(b)),
  isnull: { min: 1, max: 1, impl: ([a]) => a === null },
  isundefined: { min: 1, max: 1, impl: ([a]) => a === undefined },
  length: stringFn((s) => s.length),
  ln: double(Math.log),
  log: double(Math.log10),
  lower: stringFn((s) => s.toLowerCase()),
  lpad: pad('left'),
  ltrim: stringFn(trimStart),
  md2: stringFn((s) => Buffer.from(md2(Buffer.from(s, 'utf8'))).toString('hex')),
  md5: hash('md5'),
  mod: { min: 2, max: 2, impl: ([a, b]) => sqlArith('%', a, b) },
  nanvl: {
    min: 2,
    max: 2,
    impl: ([a, b]) => (a === undefined || a === null || (typeof a === 'number' && Number.isNaN(a)) ? b : a),
  },
  newuuid: { min: 0, max: 0, impl: (_, env) => (env.ctx.newUuid ?? randomUUID)() },
  numbytes: stringFn((s) => Buffer.byteLength(s, 'utf8')),
  parse_time: {
    min: 2,
    max: 3,
    impl: parseTime,
    check: ([pattern, , zone]) => {
      const problem = checkPattern('parse_time', pattern);
      if (problem !== undefined) return problem;
      if (
        zone?.type === 'literal' &&
        (typeof zone.value !== 'string' || resolveZone(zone.value, DIALECT.parse_time) === undefined)
      ) {
        return `parse_time(): unknown time zone ${JSON.stringify(zone.value)} (a Joda-Time zone ID: an IANA name such as 'America/Los_Angeles', 'UTC' or an offset such as '+01:00')`;
      }
      return undefined;
    },
  },
  power: {
    min: 2,
    max: 2,
    impl: ([a, b]) => {
      const x = toNumber(a);
      const y = toNumber(b);
      if (x === undefined || y === undefined) return undefined;
      const r = x ** y;
      return Number.isFinite(r) ? r : undefined;
    },
  },
  principal: { min: 0, max: 0, impl: (_, env) => env.msg.principal },
  rand: { min: 0, max: 0, impl: (_, env) => (env.ctx.random ?? Math.random)() },
  regexp_matches: {
    min: 2,
    max: 2,
    impl: ([a, b]) => {
      const s = str(a);
      const re = regex(b);
      return s === undefined || re === undefined ? undefined : re.test(s);
    },
  },
  regexp_replace: {
    min: 3,
    max: 3,
    impl: ([a, b, c]) => {
      const s = str(a);
      const p = str(b);
      const r = str(c);
      if (s === undefined || p === undefined || r === undefined) return undefined;
      let re: RegExp;
      try {
        re = new RegExp(p, 'g');
      } catch {
        return undefined;
      }
      return s.replace(re, r);
    },
  },
  regexp_substr: {
    min: 2,
    max: 2,
    impl: ([a, b]) => {
      const s = str(a);
      const re = regex(b);
      if (s === undefined || re === undefined) return undefined;
      const m = re.exec(s);
      return m ? m[0] : undefined;
    },
  },
  remainder: { min: 2, max: 2, impl: ([a, b]) => sqlArith('%', a, b) },
  replace: {
    min: 3,
    max: 3,
    impl: ([a, b, c]) => {
      const s = str(a);
      const find = str(b);
      const by = str(c);
      return s === undefined || find === undefined || by === undefined ? undefined : s.split(find).join(by);
    },
  },
  round: { min: 1, max: 1, impl: ([a]) => round(a) },
  rpad: pad('right'),
  rtrim: stringFn(trimEnd),
  sha1: hash('sha1'),
  sha224: hash('sha224'),
  sha256: hash('sha256'),
  sha384: hash('sha384'),
  sha512: hash('sha512'),
  sign: numeric(Math.sign),
  sin: double(Math.sin),
  sinh: double(Math.sinh),
  sql_version: { min: 0, max: 0, impl: () => '2016-03-23' },
  sqrt: double(Math.sqrt),
  startswith: twoStrings((a, b) => a.startsWith(b)),
  substring: { min: 2, max: 3, impl: substring },
  tan: double(Math.tan),
  tanh: double(Math.tanh),
  timestamp: { min: 0, max: 0, impl: (_, env) => env.timestamp() },
  time_to_epoch: { min: 2, max: 2, impl: timeToEpoch, check: ([, pattern]) => checkPattern('time_to_epoch', pattern) },
  topic: {
    min: 0,
    max: 1,
    impl: (args, env) => {
      // Basic Ingest: the $aws/rules/{rule}/ prefix is not part of topic().
      const topic = parseBasicIngestTopic(env.msg.topic)?.topic ?? env.msg.topic;
      if (args.length === 0) return topic;
      const n = toInt(args[0]);
      if (n === undefined || n < 1) return undefined;
      return topic.split('/')[n - 1];
    },
  },
  traceid: { min: 0, max: 0, impl: (_, env) => env.msg.traceId },
  transform: { min: 3, max: 3, impl: transform },
  trim: stringFn((s) => trimEnd(trimStart(s))),
  trunc: { min: 2, max: 2, impl: ([a, b]) => trunc(a, b) },
  upper: stringFn((s) => s.toUpperCase()),
};

/** Built-in functions by lower-case name (IoT SQL function names are case-insensitive). */
export const FUNCTIONS: ReadonlyMap<string, FunctionDef> = new Map(Object.entries(defs));

/** `cast(value AS type)` target keywords (upper-case) and their conversions. */
export const CAST_TARGETS: ReadonlyMap<string, (v: SqlValue) => SqlValue> = (() => {
  const toStr = (v: SqlValue): SqlValue => (typeof v === 'string' ? v : toStringValue(v));
  const toDec = (v: SqlValue): SqlValue => {
    if (typeof v === 'boolean') return v ? 1 : 0;
    return typeof v === 'string' ? parseDecimalString(v) : typeof v === 'number' ? v : undefined;
  };
  const toInteger = (v: SqlValue): SqlValue => {
    const d = toDec(v);
    return typeof d === 'number' ? Math.floor(d) : undefined;
  };
  const toBool = (v: SqlValue): SqlValue => {
    if (typeof v === 'number') return v !== 0;
    if (typeof v === 'boolean') return v;
    if (typeof v === 'string') {
      const l = v.toLowerCase();
      return l === 'true' ? true : l === 'false' ? false : undefined;
    }
    return undefined;
  };
  return new Map<string, (v: SqlValue) => SqlValue>([
    ['STRING', toStr],
    ['NVARCHAR', toStr],
    ['TEXT', toStr],
    ['NTEXT', toStr],
    ['VARCHAR', toStr],
    ['INT', toInteger],
    ['INTEGER', toInteger],
    ['DOUBLE', toDec],
    ['DECIMAL', toDec],
    ['BOOL', toBool],
    ['BOOLEAN', toBool],
  ]);
})();
