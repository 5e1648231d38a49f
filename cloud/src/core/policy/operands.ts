/**
 * The typed values IAM's condition operators compare: numbers, dates, IP addresses and CIDR
 * ranges, base64 binaries. Each parser is strict and returns undefined for anything it does not
 * read, so CreatePolicy can refuse a value that could never match, and evaluation treats a
 * request value that does not parse as matching nothing. Pure: no I/O, no clock.
 */

const DECIMAL = /^-?\d+(?:\.\d+)?$/;

/** An integer or decimal, as IAM's numeric operators take them (no exponent, hex or blanks). */
export function parseNumber(text: string): number | undefined {
  if (!DECIMAL.test(text)) return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? n : undefined;
}

/**
 * W3C's profile of ISO 8601 (https://www.w3.org/TR/NOTE-datetime), which IAM's date operators
 * name: YYYY, YYYY-MM, YYYY-MM-DD, or a date with hh:mm[:ss[.s+]] and a zone designator (Z or
 * ±hh:mm), which the profile requires whenever a time is given.
 */
const W3C_DATE = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:\d{2}))?)?)?$/;
const EPOCH_SECONDS = /^\d+$/;

/**
 * Milliseconds since the epoch of a date as IAM's date operators read it: the W3C ISO 8601
 * profile, or epoch (UNIX) seconds. Four digits alone are a year (W3C's `YYYY`), not 2,020
 * seconds after 1970: an epoch time that short names a moment nobody means. Calendar fields are
 * checked (no 2024-02-30, no 24:00).
 */
export function parseDate(text: string): number | undefined {
  const m = W3C_DATE.exec(text);
  if (m) {
    const [, y, mo = '01', d = '01', h = '00', mi = '00', s = '00', frac = '', zone = 'Z'] = m;
    const year = Number(y);
    const month = Number(mo);
    const day = Number(d);
    const hour = Number(h);
    const minute = Number(mi);
    const second = Number(s);
    if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return undefined;
    const utc = Date.UTC(year, month - 1, day, hour, minute, second, Number(`0.${frac || '0'}`) * 1000);
    // Date.UTC rolls 02-30 over into March: a day that does not exist in its month is refused.
    if (new Date(utc).getUTCDate() !== day) return undefined;
    if (zone === 'Z') return utc;
    const sign = zone.startsWith('-') ? -1 : 1;
    const offsetHours = Number(zone.slice(1, 3));
    const offsetMinutes = Number(zone.slice(4, 6));
    if (offsetHours > 23 || offsetMinutes > 59) return undefined;
    return utc - sign * (offsetHours * 60 + offsetMinutes) * 60_000;
  }
  if (EPOCH_SECONDS.test(text)) {
    const seconds = Number(text);
    return Number.isSafeInteger(seconds) ? seconds * 1000 : undefined;
  }
  return undefined;
}

/** `aws:CurrentTime`'s form: ISO 8601 in UTC to the second, as IAM shows it (2019-07-16T12:00:00Z). */
export function isoSeconds(ms: number): string {
  return `${new Date(Math.floor(ms / 1000) * 1000).toISOString().slice(0, 19)}Z`;
}

/** An IP address as a number: 32 bits for IPv4, 128 for IPv6. */
export interface IpAddress {
  readonly version: 4 | 6;
  readonly value: bigint;
}

/** A CIDR range: the address with its host bits cleared, and the prefix length. */
export interface CidrRange {
  readonly version: 4 | 6;
  readonly network: bigint;
  readonly prefix: number;
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function parseIpv4(text: string): bigint | undefined {
  const m = IPV4.exec(text);
  if (!m) return undefined;
  let value = 0n;
  for (const octet of m.slice(1)) {
    // A leading zero is refused: some readers take 010 as octal 8, so it has no single meaning.
    if (octet.length > 1 && octet.startsWith('0')) return undefined;
    const n = Number(octet);
    if (n > 255) return undefined;
    value = (value << 8n) | BigInt(n);
  }
  return value;
}

const HEXTET = /^[0-9a-fA-F]{1,4}$/;

function parseIpv6(text: string): bigint | undefined {
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groups = (part: string): bigint[] | undefined => {
    if (part === '') return [];
    const out: bigint[] = [];
    const pieces = part.split(':');
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i] as string;
      if (i === pieces.length - 1 && piece.includes('.')) {
        // An embedded IPv4 address (::ffff:192.0.2.1) fills the last two groups.
        const v4 = parseIpv4(piece);
        if (v4 === undefined) return undefined;
        out.push(v4 >> 16n, v4 & 0xffffn);
      } else if (HEXTET.test(piece)) {
        out.push(BigInt(`0x${piece}`));
      } else {
        return undefined;
      }
    }
    return out;
  };
  const head = groups(halves[0] as string);
  const tail = halves.length === 2 ? groups(halves[1] as string) : [];
  if (!head || !tail) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  let value = 0n;
  for (const g of [...head, ...new Array<bigint>(halves.length === 2 ? missing : 0).fill(0n), ...tail]) {
    value = (value << 16n) | g;
  }
  return value;
}

const V4_MAPPED_PREFIX = 0xffffn << 32n;

/**
 * An IPv4 or IPv6 address. An IPv4-mapped IPv6 address (::ffff:a.b.c.d, what a dual-stack socket
 * reports for an IPv4 client) is read as the IPv4 address it carries, so IPv4 ranges match it.
 * A zone index (fe80::1%eth0) is dropped: it names the local interface, not the address.
 */
export function parseIp(text: string): IpAddress | undefined {
  const v4 = parseIpv4(text);
  if (v4 !== undefined) return { version: 4, value: v4 };
  const v6 = parseIpv6(text.replace(/%[^%]+$/, ''));
  if (v6 === undefined) return undefined;
  if (v6 >> 32n === V4_MAPPED_PREFIX >> 32n) return { version: 4, value: v6 & 0xffff_ffffn };
  return { version: 6, value: v6 };
}

/**
 * A range as IAM's IP operators take it: `203.0.113.0/24`, `2001:DB8:1234:5678::/64`, or an
 * address alone (IAM's default prefix /32; /128 for IPv6, the same "this one address").
 */
export function parseCidr(text: string): CidrRange | undefined {
  const slash = text.indexOf('/');
  const addressText = slash < 0 ? text : text.slice(0, slash);
  if (addressText.includes('%')) return undefined;
  const v4 = parseIpv4(addressText);
  const address = v4 !== undefined ? { version: 4 as const, value: v4 } : undefined;
  const v6 = address ? undefined : parseIpv6(addressText);
  const ip = address ?? (v6 === undefined ? undefined : { version: 6 as const, value: v6 });
  if (!ip) return undefined;
  const bits = ip.version === 4 ? 32 : 128;
  let prefix = bits;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > bits) return undefined;
    prefix = Number(p);
  }
  return { version: ip.version, network: ip.value & mask(bits, prefix), prefix };
}

function mask(bits: number, prefix: number): bigint {
  const all = (1n << BigInt(bits)) - 1n;
  return all ^ ((1n << BigInt(bits - prefix)) - 1n);
}

export function cidrContains(range: CidrRange, ip: IpAddress): boolean {
  if (range.version !== ip.version) return false;
  return (ip.value & mask(range.version === 4 ? 32 : 128, range.prefix)) === range.network;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Standard padded base64, as BinaryEquals takes its values. */
export function parseBase64(text: string): Buffer | undefined {
  return BASE64.test(text) ? Buffer.from(text, 'base64') : undefined;
}
