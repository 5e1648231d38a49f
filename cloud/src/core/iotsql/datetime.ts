/**
 * Date-time patterns for IoT SQL's `parse_time()` (format) and `time_to_epoch()` (parse), with
 * time zones from the IANA database that `Intl` carries (no dependency). Pure: no clock, no I/O.
 *
 * The two functions speak different dialects, as the SQL reference says: `time_to_epoch` takes
 * JDK 11 `DateTimeFormatter` patterns, `parse_time` Joda-Time `DateTimeFormat` patterns and
 * Joda-Time zone IDs. They share most letters but not all (Joda's `y` is Java's `u`, Joda's `Y`
 * Java's `y`, Joda's `ZZ` is `-08:00` and `ZZZ` the zone ID, Joda has no `u L X x V`, and Java
 * reserves `[ ] # { }`), so a pattern is compiled for one dialect into the shared letter set below.
 *
 * Java letters (English text only): G y u M L d D H h k K m s S a E z Z X x V. Joda letters: G y Y
 * M d D H h k K m s S a E z Z. Both: literals in single quotes (`''` is a quote) and any other
 * non-letter character as itself. Any other letter is refused when the pattern compiles, so a
 * pattern either means what Java (or Joda) means or is an error: never a guess.
 */

/** Which library's pattern letters a pattern is written in. */
export type PatternDialect = 'java' | 'joda';

/** A pattern that cannot be used: the reason names the letter or construct. */
export class PatternError extends Error {
  override name = 'PatternError';
}

type Field = 'G' | 'y' | 'u' | 'M' | 'L' | 'd' | 'D' | 'H' | 'h' | 'k' | 'K' | 'm' | 's' | 'S' | 'a' | 'E';
type ZoneField = 'z' | 'Z' | 'X' | 'x' | 'V';

type Part =
  | { readonly kind: 'literal'; readonly text: string }
  | { readonly kind: 'field'; readonly letter: Field | ZoneField; readonly count: number };

/** Highest count each letter takes (Java throws "Too many pattern letters" past it). */
const MAX_COUNT: Readonly<Record<Field | ZoneField, number>> = {
  G: 5,
  y: 19,
  u: 19,
  M: 5,
  L: 5,
  d: 2,
  D: 3,
  H: 2,
  h: 2,
  k: 2,
  K: 2,
  m: 2,
  s: 2,
  S: 9,
  a: 1,
  E: 5,
  z: 4,
  Z: 5,
  X: 5,
  x: 5,
  V: 2,
};

function isLetter(c: string): boolean {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

export interface DatePattern {
  readonly source: string;
  readonly parts: readonly Part[];
}

/** Joda-Time's letters this engine supports, and the highest count taken (Joda pads to any count). */
const JODA_LETTERS: ReadonlySet<string> = new Set([
  'G',
  'y',
  'Y',
  'M',
  'd',
  'D',
  'H',
  'h',
  'k',
  'K',
  'm',
  's',
  'S',
  'a',
  'E',
  'z',
  'Z',
]);
const JODA_MAX_COUNT = 9;

/** A Joda letter and count as the shared (Java-named) letter it means. */
function jodaPart(c: string, count: number): Part {
  switch (c) {
    case 'G':
      return { kind: 'field', letter: 'G', count: 1 }; // "AD" at any count
    case 'y':
      return { kind: 'field', letter: 'u', count }; // proleptic year
    case 'Y':
      return { kind: 'field', letter: 'y', count }; // year of era
    case 'M':
      return { kind: 'field', letter: 'M', count: Math.min(count, 4) };
    case 'E':
      return { kind: 'field', letter: 'E', count: count >= 4 ? 4 : 1 };
    case 'a':
      return { kind: 'field', letter: 'a', count: 1 };
    case 'z':
      return { kind: 'field', letter: 'z', count: count >= 4 ? 4 : 1 };
    case 'Z':
      // Z: -0800 (+0000 at zero), ZZ: -08:00, ZZZ and more: the zone ID.
      return count === 1
        ? { kind: 'field', letter: 'x', count: 2 }
        : count === 2
          ? { kind: 'field', letter: 'x', count: 3 }
          : { kind: 'field', letter: 'V', count: 2 };
    default:
      return { kind: 'field', letter: c as Field, count };
  }
}

/** Compiles a pattern; throws {@link PatternError} for anything outside the supported set. */
export function compilePattern(source: string, dialect: PatternDialect = 'java'): DatePattern {
  const parts: Part[] = [];
  let i = 0;
  while (i < source.length) {
    const c = source[i] as string;
    if (c === "'") {
      let j = i + 1;
      let text = '';
      for (;;) {
        if (j >= source.length) throw new PatternError(`unterminated quote in pattern ${JSON.stringify(source)}`);
        if (source[j] === "'") {
          if (source[j + 1] === "'") {
            text += "'";
            j += 2;
            continue;
          }
          break;
        }
        text += source[j];
        j++;
      }
      parts.push({ kind: 'literal', text: j === i + 1 ? "'" : text });
      i = j + 1;
      continue;
    }
    if (isLetter(c)) {
      let j = i;
      while (source[j] === c) j++;
      const count = j - i;
      if (dialect === 'joda') {
        if (!JODA_LETTERS.has(c)) {
          throw new PatternError(
            `pattern letter '${c}' is not supported by the local engine (Joda-Time letters supported: G y Y M d D H h k K m s S a E z Z and 'quoted' text)`,
          );
        }
        if (count > JODA_MAX_COUNT) throw new PatternError(`too many pattern letters: '${c}' × ${count}`);
        parts.push(jodaPart(c, count));
        i = j;
        continue;
      }
      if (!Object.hasOwn(MAX_COUNT, c)) {
        throw new PatternError(
          `pattern letter '${c}' is not supported by the local engine (supported: G y u M L d D H h k K m s S a E z Z X x V and 'quoted' text)`,
        );
      }
      const letter = c as Field | ZoneField;
      if (count > MAX_COUNT[letter] || (letter === 'V' && count !== 2)) {
        throw new PatternError(
          letter === 'V'
            ? "pattern letter 'V' must appear exactly twice (VV)"
            : `too many pattern letters: '${c}' × ${count}`,
        );
      }
      parts.push({ kind: 'field', letter, count });
      i = j;
      continue;
    }
    if (dialect === 'java' && (c === '[' || c === ']' || c === '#' || c === '{' || c === '}')) {
      throw new PatternError(`'${c}' (optional sections and reserved characters) is not supported in a pattern`);
    }
    parts.push({ kind: 'literal', text: c });
    i++;
  }
  return { source, parts };
}

// ---------------------------------------------------------------------------------------------
// Time zones

/** A zone: a fixed offset (seconds east of UTC) or an IANA region read through Intl. */
export type Zone =
  | { readonly kind: 'fixed'; readonly id: string; readonly offsetSeconds: number }
  | { readonly kind: 'region'; readonly id: string };

const regionCache = new Map<string, Intl.DateTimeFormat>();

function regionFormat(id: string): Intl.DateTimeFormat | undefined {
  const cached = regionCache.get(id);
  if (cached) return cached;
  let f: Intl.DateTimeFormat;
  try {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: id,
      hourCycle: 'h23',
      era: 'short',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
  } catch {
    return undefined;
  }
  if (regionCache.size > 500) regionCache.clear();
  regionCache.set(id, f);
  return f;
}

/** `+h`, `+hh`, `+hh:mm`, `+hhmm`, `+hh:mm:ss`, `+hhmmss` (sign required); seconds east of UTC. */
function parseOffsetText(s: string): number | undefined {
  const sign = s[0] === '+' ? 1 : s[0] === '-' ? -1 : 0;
  if (sign === 0) return undefined;
  const body = s.slice(1);
  let h: string;
  let m = '0';
  let sec = '0';
  if (/^\d{1,2}$/.test(body)) h = body;
  else if (/^\d{2}:\d{2}$/.test(body)) [h, m] = body.split(':') as [string, string];
  else if (/^\d{4}$/.test(body)) [h, m] = [body.slice(0, 2), body.slice(2)];
  else if (/^\d{2}:\d{2}:\d{2}$/.test(body)) [h, m, sec] = body.split(':') as [string, string, string];
  else if (/^\d{6}$/.test(body)) [h, m, sec] = [body.slice(0, 2), body.slice(2, 4), body.slice(4)];
  else return undefined;
  const hours = Number(h);
  const minutes = Number(m);
  const seconds = Number(sec);
  if (hours > 18 || minutes > 59 || seconds > 59) return undefined;
  const total = hours * 3600 + minutes * 60 + seconds;
  return total > 18 * 3600 ? undefined : sign * total;
}

/**
 * A zone ID as Java's `ZoneId.of` reads it: `Z`, an offset (`+01:00`), a prefixed offset
 * (`UTC+01:00`, `GMT-5`, `UT+3`), `UTC`/`GMT`/`UT`, or an IANA region (`America/Los_Angeles`,
 * case as written). Joda-Time's `DateTimeZone.forID` takes fewer: `UTC`, an offset, or a region
 * of the tz database (which has `GMT` and `Etc/GMT+5`, but not `Z`, `UT` or `UTC+01:00`).
 * Undefined for anything else.
 */
export function resolveZone(id: string, dialect: PatternDialect = 'java'): Zone | undefined {
  if (id === 'UTC') return { kind: 'fixed', id, offsetSeconds: 0 };
  if (id[0] === '+' || id[0] === '-') {
    const o = parseOffsetText(id);
    return o === undefined ? undefined : { kind: 'fixed', id, offsetSeconds: o };
  }
  if (dialect === 'joda') return regionZone(id);
  if (id === 'Z' || id === 'GMT' || id === 'UT') return { kind: 'fixed', id, offsetSeconds: 0 };
  for (const prefix of ['UTC', 'GMT', 'UT']) {
    if (id.startsWith(prefix) && (id[prefix.length] === '+' || id[prefix.length] === '-')) {
      const o = parseOffsetText(id.slice(prefix.length));
      return o === undefined ? undefined : { kind: 'fixed', id, offsetSeconds: o };
    }
  }
  return regionZone(id);
}

/** An IANA region ID (letters, digits, / _ + -), as the tz database that Intl (ICU) carries knows it. */
function regionZone(id: string): Zone | undefined {
  if (!/^[A-Za-z][A-Za-z0-9/_+-]*$/.test(id)) return undefined;
  const f = regionFormat(id);
  if (f === undefined) return undefined;
  // Intl matches IDs case-insensitively; Java does not ("america/los_angeles" is no zone there).
  const resolved = f.resolvedOptions().timeZone;
  if (resolved !== id && resolved.toLowerCase() === id.toLowerCase()) return undefined;
  return { kind: 'region', id };
}

/** Local wall-clock fields of an instant in a zone. */
interface Local {
  readonly year: number; // proleptic (0 = 1 BC)
  readonly month: number; // 1-12
  readonly day: number;
  readonly hour: number;
  readonly minute: number;
  readonly second: number;
  readonly milli: number;
}

/** Offset (ms east of UTC) of a zone at an instant. */
export function offsetAt(zone: Zone, epochMs: number): number {
  if (zone.kind === 'fixed') return zone.offsetSeconds * 1000;
  const f = regionFormat(zone.id) as Intl.DateTimeFormat;
  const whole = Math.floor(epochMs / 1000) * 1000;
  const p: Record<string, string> = {};
  for (const part of f.formatToParts(new Date(whole))) p[part.type] = part.value;
  let year = Number(p.year);
  if (p.era === 'BC' || p.era === 'B') year = 1 - year;
  const asUtc = utcMillis(year, Number(p.month), Number(p.day), Number(p.hour), Number(p.minute), Number(p.second), 0);
  return asUtc - whole;
}

function utcMillis(year: number, month: number, day: number, h: number, mi: number, s: number, ms: number): number {
  const d = new Date(0);
  d.setUTCFullYear(year, month - 1, day);
  d.setUTCHours(h, mi, s, ms);
  return d.getTime();
}

function localOf(epochMs: number, offsetMs: number): Local {
  const d = new Date(epochMs + offsetMs);
  return {
    year: d.getUTCFullYear(),
    month: d.getUTCMonth() + 1,
    day: d.getUTCDate(),
    hour: d.getUTCHours(),
    minute: d.getUTCMinutes(),
    second: d.getUTCSeconds(),
    milli: d.getUTCMilliseconds(),
  };
}

/** Zone-name formatters by locale, zone and style: building one costs far more than using it. */
const nameCache = new Map<string, Intl.DateTimeFormat>();

function nameFormat(locale: string, id: string, style: 'short' | 'long'): Intl.DateTimeFormat {
  const key = `${locale}|${id}|${style}`;
  let f = nameCache.get(key);
  if (f === undefined) {
    f = new Intl.DateTimeFormat(locale, { timeZone: id, timeZoneName: style });
    if (nameCache.size > 500) nameCache.clear();
    nameCache.set(key, f);
  }
  return f;
}

function zoneName(zone: Zone, epochMs: number, style: 'short' | 'long'): string {
  if (zone.kind === 'fixed') return zone.id;
  const read = (locale: string) =>
    nameFormat(locale, zone.id, style)
      .formatToParts(new Date(epochMs))
      .find((p) => p.type === 'timeZoneName')?.value ?? zone.id;
  const us = read('en-US');
  // en-US has no abbreviation for most zones outside the Americas ("GMT+1"); en-GB has the
  // European ones ("CET"), as Java prints them.
  if (style === 'short' && /^GMT[+-]/.test(us)) return read('en-GB');
  return us;
}

// ---------------------------------------------------------------------------------------------
// Formatting (parse_time)

const MONTHS = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
];
const DAYS = ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'];

function pad(n: number, width: number): string {
  const s = String(Math.abs(n));
  return (n < 0 ? '-' : '') + (s.length >= width ? s : '0'.repeat(width - s.length) + s);
}

function text(full: string, count: number): string {
  return count === 4 ? full : count === 5 ? full.slice(0, 1) : full.slice(0, 3);
}

/** ISO day of week, 1 = Monday, of a proleptic date. */
function dayOfWeek(year: number, month: number, day: number): number {
  const dow = new Date(utcMillis(year, month, day, 0, 0, 0, 0)).getUTCDay();
  return dow === 0 ? 7 : dow;
}

function dayOfYear(year: number, month: number, day: number): number {
  return Math.round((utcMillis(year, month, day, 0, 0, 0, 0) - utcMillis(year, 1, 1, 0, 0, 0, 0)) / 86_400_000) + 1;
}

function formatOffset(offsetSeconds: number, letter: 'Z' | 'X' | 'x', count: number): string {
  if (offsetSeconds === 0) {
    if (letter === 'X') return 'Z';
    if (letter === 'Z' && count === 4) return 'GMT';
    if (letter === 'Z' && count === 5) return 'Z';
  }
  const sign = offsetSeconds < 0 ? '-' : '+';
  const abs = Math.abs(offsetSeconds);
  const hh = pad(Math.floor(abs / 3600), 2);
  const mm = pad(Math.floor((abs % 3600) / 60), 2);
  const ss = abs % 60;
  if (letter === 'Z') {
    if (count <= 3) return `${sign}${hh}${mm}`;
    if (count === 4) return `GMT${sign}${hh}:${mm}${ss ? `:${pad(ss, 2)}` : ''}`;
    return `${sign}${hh}:${mm}${ss ? `:${pad(ss, 2)}` : ''}`;
  }
  switch (count) {
    case 1:
      return mm === '00' ? `${sign}${hh}` : `${sign}${hh}${mm}`;
    case 2:
      return `${sign}${hh}${mm}`;
    case 3:
      return `${sign}${hh}:${mm}`;
    case 4:
      return `${sign}${hh}${mm}${ss ? pad(ss, 2) : ''}`;
    default:
      return `${sign}${hh}:${mm}${ss ? `:${pad(ss, 2)}` : ''}`;
  }
}

/** Formats an instant (ms since the epoch) in a zone, as Java's formatter prints it in English. */
export function formatInstant(pattern: DatePattern, epochMs: number, zone: Zone): string {
  const offsetMs = offsetAt(zone, epochMs);
  const t = localOf(epochMs, offsetMs);
  let out = '';
  for (const part of pattern.parts) {
    if (part.kind === 'literal') {
      out += part.text;
      continue;
    }
    const n = part.count;
    switch (part.letter) {
      case 'G': {
        const ad = t.year >= 1;
        out += n === 4 ? (ad ? 'Anno Domini' : 'Before Christ') : n === 5 ? (ad ? 'A' : 'B') : ad ? 'AD' : 'BC';
        break;
      }
      case 'y': {
        const yoe = t.year >= 1 ? t.year : 1 - t.year;
        out += n === 2 ? pad(yoe % 100, 2) : pad(yoe, n);
        break;
      }
      case 'u':
        out += n === 2 ? pad(((t.year % 100) + 100) % 100, 2) : pad(t.year, n);
        break;
      case 'M':
      case 'L':
        out += n <= 2 ? pad(t.month, n) : text(MONTHS[t.month - 1] as string, n);
        break;
      case 'd':
        out += pad(t.day, n);
        break;
      case 'D':
        out += pad(dayOfYear(t.year, t.month, t.day), n);
        break;
      case 'H':
        out += pad(t.hour, n);
        break;
      case 'k':
        out += pad(t.hour === 0 ? 24 : t.hour, n);
        break;
      case 'h':
        out += pad(t.hour % 12 === 0 ? 12 : t.hour % 12, n);
        break;
      case 'K':
        out += pad(t.hour % 12, n);
        break;
      case 'm':
        out += pad(t.minute, n);
        break;
      case 's':
        out += pad(t.second, n);
        break;
      case 'S':
        // Fraction of the second, truncated to n digits (milliseconds are all there is).
        out += pad(t.milli, 3).padEnd(9, '0').slice(0, n);
        break;
      case 'a':
        out += t.hour < 12 ? 'AM' : 'PM';
        break;
      case 'E':
        out += text(DAYS[dayOfWeek(t.year, t.month, t.day) - 1] as string, n);
        break;
      case 'z':
        out += zoneName(zone, epochMs, n === 4 ? 'long' : 'short');
        break;
      case 'V':
        out += zone.id;
        break;
      case 'Z':
      case 'X':
      case 'x':
        out += formatOffset(Math.round(offsetMs / 1000), part.letter, n);
        break;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Parsing (time_to_epoch)

const NUMERIC: ReadonlySet<string> = new Set(['y', 'u', 'M', 'L', 'd', 'D', 'H', 'h', 'k', 'K', 'm', 's', 'S']);

interface Parsed {
  era?: number; // 1 AD, 0 BC
  yearOfEra?: number;
  year?: number;
  month?: number;
  day?: number;
  dayOfYear?: number;
  hour?: number; // 0-23
  hour12?: number; // 1-12 (h) or 0-11 (K)
  pm?: boolean;
  minute?: number;
  second?: number;
  nano?: number;
  dayOfWeek?: number;
  offsetSeconds?: number;
  zone?: Zone;
}

function matchWord(s: string, pos: number, words: readonly string[]): number {
  // Longest first, so that "May" does not stop "Mayday"-like prefixes from being tried wrongly.
  let best = -1;
  let bestLen = 0;
  words.forEach((w, i) => {
    if (w.length > bestLen && s.startsWith(w, pos)) {
      best = i;
      bestLen = w.length;
    }
  });
  return best;
}

function readDigits(s: string, pos: number, min: number, max: number): [value: number, end: number] | undefined {
  let end = pos;
  while (end < s.length && end - pos < max && s.charCodeAt(end) >= 48 && s.charCodeAt(end) <= 57) end++;
  if (end - pos < min) return undefined;
  return [Number(s.slice(pos, end)), end];
}

const MAX_ZONE_ID = 40;

/** The zone text at `pos` for V/z: the longest prefix that is a known zone ID. */
function readZoneId(s: string, pos: number): [Zone, number] | undefined {
  // The longest IANA ID has 32 characters; the bound keeps a hostile string from costing one
  // Intl lookup per character.
  let end = pos;
  while (end < s.length && end - pos < MAX_ZONE_ID && /[A-Za-z0-9/_+:-]/.test(s[end] as string)) end++;
  for (let e = end; e > pos; e--) {
    const zone = resolveZone(s.slice(pos, e));
    if (zone) return [zone, e];
  }
  return undefined;
}

function readOffset(s: string, pos: number, letter: 'Z' | 'X' | 'x', count: number): [number, number] | undefined {
  if (s[pos] === 'Z' && (letter === 'X' || (letter === 'Z' && count === 5))) return [0, pos + 1];
  let p = pos;
  if (letter === 'Z' && count === 4) {
    if (!s.startsWith('GMT', p)) return undefined;
    p += 3;
    if (s[p] !== '+' && s[p] !== '-') return [0, p];
  }
  const sign = s[p] === '+' ? 1 : s[p] === '-' ? -1 : 0;
  if (sign === 0) return undefined;
  p++;
  const colon = (letter === 'Z' && count >= 4) || (letter !== 'Z' && (count === 3 || count === 5));
  const hh = readDigits(s, p, 2, 2);
  if (!hh) return undefined;
  p = hh[1];
  let minutes = 0;
  let seconds = 0;
  const wantMinutes = !(letter !== 'Z' && count === 1);
  const optionalMinutes = letter !== 'Z' && count === 1;
  if (wantMinutes || optionalMinutes) {
    const q = colon ? p + 1 : p;
    if (!colon || s[p] === ':') {
      const mm = readDigits(s, q, 2, 2);
      if (mm) {
        minutes = mm[0];
        p = mm[1];
      } else if (wantMinutes) return undefined;
    } else if (wantMinutes) return undefined;
  }
  if ((letter === 'Z' && count >= 4) || (letter !== 'Z' && count >= 4)) {
    const q = colon ? p + 1 : p;
    if (!colon || s[p] === ':') {
      const ss = readDigits(s, q, 2, 2);
      if (ss) {
        seconds = ss[0];
        p = ss[1];
      }
    }
  }
  if (hh[0] > 18 || minutes > 59 || seconds > 59) return undefined;
  return [sign * (hh[0] * 3600 + minutes * 60 + seconds), p];
}

function isNumericPart(part: Part | undefined): boolean {
  return part?.kind === 'field' && NUMERIC.has(part.letter) && part.count <= 2;
}

/** Reads `input` against the pattern into fields; undefined when it does not match exactly. */
function parseFields(pattern: DatePattern, input: string): Parsed | undefined {
  const f: Parsed = {};
  let pos = 0;
  const parts = pattern.parts;
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i] as Part;
    if (part.kind === 'literal') {
      if (!input.startsWith(part.text, pos)) return undefined;
      pos += part.text.length;
      continue;
    }
    const n = part.count;
    // A variable-width number followed directly by another number takes only its letter count
    // (Java's adjacent value parsing), so "yyyyMMdd" reads 20151218.
    const adjacent = isNumericPart(parts[i + 1]);
    const num = (min: number, max: number) => readDigits(input, pos, min, adjacent ? Math.max(min, n) : max);
    let r: [number, number] | undefined;
    switch (part.letter) {
      case 'G': {
        const words = n === 4 ? ['Anno Domini', 'Before Christ'] : n === 5 ? ['A', 'B'] : ['AD', 'BC'];
        const w = matchWord(input, pos, words);
        if (w < 0) return undefined;
        f.era = w === 0 ? 1 : 0;
        pos += (words[w] as string).length;
        continue;
      }
      case 'y':
      case 'u': {
        r = n === 2 ? readDigits(input, pos, 2, 2) : num(n, 9);
        if (!r) return undefined;
        const v = n === 2 ? 2000 + r[0] : r[0];
        if (part.letter === 'y') f.yearOfEra = v;
        else f.year = v;
        break;
      }
      case 'M':
      case 'L': {
        if (n >= 3) {
          const words = MONTHS.map((m) => text(m, n));
          const w = matchWord(input, pos, words);
          if (w < 0) return undefined;
          f.month = w + 1;
          pos += (words[w] as string).length;
          continue;
        }
        r = n === 2 ? readDigits(input, pos, 2, 2) : num(1, 2);
        if (!r) return undefined;
        f.month = r[0];
        break;
      }
      case 'd':
        r = n === 2 ? readDigits(input, pos, 2, 2) : num(1, 2);
        if (!r) return undefined;
        f.day = r[0];
        break;
      case 'D':
        r = n >= 2 ? readDigits(input, pos, n, 3) : num(1, 3);
        if (!r) return undefined;
        f.dayOfYear = r[0];
        break;
      case 'H':
      case 'k':
      case 'h':
      case 'K':
        r = n === 2 ? readDigits(input, pos, 2, 2) : num(1, 2);
        if (!r) return undefined;
        if (part.letter === 'H') f.hour = r[0];
        else if (part.letter === 'k') f.hour = r[0] === 24 ? 0 : r[0] > 24 || r[0] < 1 ? -1 : r[0];
        else if (part.letter === 'h') f.hour12 = r[0] === 12 ? 0 : r[0] < 1 || r[0] > 12 ? -1 : r[0];
        else f.hour12 = r[0] > 11 ? -1 : r[0];
        break;
      case 'm':
        r = n === 2 ? readDigits(input, pos, 2, 2) : num(1, 2);
        if (!r) return undefined;
        f.minute = r[0];
        break;
      case 's':
        r = n === 2 ? readDigits(input, pos, 2, 2) : num(1, 2);
        if (!r) return undefined;
        f.second = r[0];
        break;
      case 'S':
        r = readDigits(input, pos, n, n);
        if (!r) return undefined;
        f.nano = Number(input.slice(pos, r[1]).padEnd(9, '0'));
        break;
      case 'a': {
        const w = matchWord(input, pos, ['AM', 'PM']);
        if (w < 0) return undefined;
        f.pm = w === 1;
        pos += 2;
        continue;
      }
      case 'E': {
        const words = DAYS.map((d) => text(d, n));
        const w = matchWord(input, pos, words);
        if (w < 0) return undefined;
        f.dayOfWeek = w + 1;
        pos += (words[w] as string).length;
        continue;
      }
      case 'z':
      case 'V': {
        const z = readZoneId(input, pos);
        if (!z) return undefined;
        f.zone = z[0];
        pos = z[1];
        continue;
      }
      case 'Z':
      case 'X':
      case 'x': {
        const o = readOffset(input, pos, part.letter, n);
        if (!o) return undefined;
        f.offsetSeconds = o[0];
        pos = o[1];
        continue;
      }
    }
    pos = r[1];
  }
  return pos === input.length ? f : undefined;
}

function daysInMonth(year: number, month: number): number {
  return new Date(utcMillis(year, month + 1, 0, 0, 0, 0, 0)).getUTCDate();
}

/**
 * Parses `input` with the pattern into ms since the epoch. Fields the pattern leaves out default
 * to 1970-01-01T00:00:00.000 in UTC (the reference's `dd MMMM yyyy` example is midnight UTC). A
 * value out of range (month 13, February 30, hour 24), a day of week that is not the date's, or
 * text that does not match the pattern exactly gives undefined. A local time in a region's DST
 * gap moves forward by the gap; in an overlap, the earlier offset wins (Java's resolution).
 */
export function parseInstant(pattern: DatePattern, input: string): number | undefined {
  const f = parseFields(pattern, input);
  if (!f) return undefined;
  let year = f.year ?? 1970;
  if (f.yearOfEra !== undefined) {
    const y = f.era === 0 ? 1 - f.yearOfEra : f.yearOfEra;
    if (f.year !== undefined && f.year !== y) return undefined;
    year = y;
  }
  let month: number;
  let day: number;
  if (f.dayOfYear !== undefined) {
    const leap = daysInMonth(year, 2) === 29;
    if (f.dayOfYear < 1 || f.dayOfYear > (leap ? 366 : 365)) return undefined;
    const d = new Date(utcMillis(year, 1, f.dayOfYear, 0, 0, 0, 0));
    month = d.getUTCMonth() + 1;
    day = d.getUTCDate();
    if ((f.month !== undefined && f.month !== month) || (f.day !== undefined && f.day !== day)) return undefined;
  } else {
    month = f.month ?? 1;
    day = f.day ?? 1;
  }
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined;
  let hour = f.hour ?? 0;
  if (f.hour12 !== undefined) {
    if (f.hour12 < 0) return undefined;
    const h = f.hour12 + (f.pm ? 12 : 0);
    if (f.hour !== undefined && f.hour !== h) return undefined;
    hour = h;
  } else if (f.pm !== undefined && f.hour !== undefined && f.pm !== f.hour >= 12) {
    return undefined;
  }
  const minute = f.minute ?? 0;
  const second = f.second ?? 0;
  if (hour < 0 || hour > 23 || minute > 59 || second > 59) return undefined;
  if (f.dayOfWeek !== undefined && f.dayOfWeek !== dayOfWeek(year, month, day)) return undefined;
  const local = utcMillis(year, month, day, hour, minute, second, Math.floor((f.nano ?? 0) / 1e6));
  if (f.offsetSeconds !== undefined) {
    const t = local - f.offsetSeconds * 1000;
    // An offset and a region both given must agree, as Java checks.
    if (f.zone && offsetAt(f.zone, t) !== f.offsetSeconds * 1000) return undefined;
    return t;
  }
  const zone = f.zone;
  if (!zone) return local;
  // The offsets in force a day before and a day after: a local time valid under both is in an
  // overlap (the earlier instant wins, as Java resolves it); under neither, in a gap (Java moves it
  // later by the gap: read with the offset from before the transition).
  const before = offsetAt(zone, local - 86_400_000);
  const after = offsetAt(zone, local + 86_400_000);
  const valid = [local - before, local - after].filter((t) => offsetAt(zone, t) === local - t);
  return valid.length === 0 ? local - before : Math.min(...valid);
}
