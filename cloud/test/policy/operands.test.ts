import { describe, expect, it } from 'vitest';
import {
  cidrContains,
  isoSeconds,
  parseBase64,
  parseCidr,
  parseDate,
  parseIp,
  parseNumber,
} from '../../src/core/policy/index.js';

/** The typed values IAM's condition operators read, each parser strict. */

describe('parseDate (W3C ISO 8601 profile, or epoch seconds)', () => {
  it.each<[string, string | undefined]>([
    // IAM's own examples ("Date condition operators", aws:CurrentTime).
    ['2020-01-01T00:00:01Z', '2020-01-01T00:00:01.000Z'],
    ['2019-07-16T12:00:00Z', '2019-07-16T12:00:00.000Z'],
    ['1563278400', '2019-07-16T12:00:00.000Z'],
    // Every W3C form.
    ['1997', '1997-01-01T00:00:00.000Z'],
    ['1997-07', '1997-07-01T00:00:00.000Z'],
    ['1997-07-16', '1997-07-16T00:00:00.000Z'],
    ['1997-07-16T19:20+01:00', '1997-07-16T18:20:00.000Z'],
    ['1997-07-16T19:20:30+01:00', '1997-07-16T18:20:30.000Z'],
    ['1997-07-16T19:20:30.45+01:00', '1997-07-16T18:20:30.450Z'],
    ['1997-07-16T19:20:30.45-05:30', '1997-07-17T00:50:30.450Z'],
    ['2024-02-29', '2024-02-29T00:00:00.000Z'],
    ['0', '1970-01-01T00:00:00.000Z'],
    // Refused: not a date W3C's profile or epoch seconds can name.
    ['2023-02-29', undefined],
    ['2024-02-30', undefined],
    ['2024-13-01', undefined],
    ['2024-00-10', undefined],
    ['2024-01-01T24:00:00Z', undefined],
    ['2024-01-01T10:60Z', undefined],
    ['2024-01-01T10:00', undefined],
    ['2024-01-01T10:00:00', undefined],
    ['2024-01-01 10:00:00Z', undefined],
    ['2024-01-01T10:00:00+0100', undefined],
    ['2024-1-1', undefined],
    ['-1', undefined],
    ['1.5', undefined],
    ['', undefined],
    ['yesterday', undefined],
  ])('%s → %s', (text, iso) => {
    const ms = parseDate(text);
    expect(ms === undefined ? undefined : new Date(ms).toISOString()).toBe(iso);
  });

  it('writes aws:CurrentTime as IAM shows it: UTC to the second', () => {
    expect(isoSeconds(Date.parse('2026-03-01T12:34:56.789Z'))).toBe('2026-03-01T12:34:56Z');
    expect(parseDate(isoSeconds(1_772_366_400_000))).toBe(1_772_366_400_000);
  });
});

describe('parseNumber', () => {
  it.each<[string, number | undefined]>([
    ['42', 42],
    ['-7', -7],
    ['1.25', 1.25],
    ['0', 0],
    ['1e3', undefined],
    ['0x10', undefined],
    [' 1', undefined],
    ['', undefined],
    ['.5', undefined],
    ['NaN', undefined],
  ])('%j → %s', (text, n) => {
    expect(parseNumber(text)).toBe(n);
  });
});

describe('IP addresses and CIDR ranges', () => {
  it.each<[string, string, boolean]>([
    // IAM's examples ("IP address condition operators").
    ['203.0.113.0/24', '203.0.113.7', true],
    ['203.0.113.0/24', '203.0.114.7', false],
    ['2001:DB8:1234:5678::/64', '2001:db8:1234:5678::1', true],
    ['2001:DB8:1234:5678::/64', '2001:db8:1234:5679::1', false],
    // The IoT Developer Guide's aws:SourceIp example: an address alone is /32.
    ['123.45.167.89', '123.45.167.89', true],
    ['123.45.167.89', '123.45.167.90', false],
    ['2001:db8::1', '2001:db8::1', true],
    ['2001:db8::1', '2001:db8::2', false],
    // Host bits in the range are cleared, as a network is.
    ['10.1.2.3/8', '10.200.0.1', true],
    ['0.0.0.0/0', '198.51.100.1', true],
    ['::/0', '2001:db8::1', true],
    // A dual-stack socket reports an IPv4 client as ::ffff:a.b.c.d: it is the IPv4 address.
    ['127.0.0.0/8', '::ffff:127.0.0.1', true],
    ['::/0', '::ffff:127.0.0.1', false],
    // IPv4 ranges never match IPv6 addresses, and the reverse.
    ['0.0.0.0/0', '2001:db8::1', false],
    ['::/0', '203.0.113.7', false],
    // A zone index is the local interface, not part of the address.
    ['fe80::/10', 'fe80::1%eth0', true],
    ['1:2:3:4:5:6:7:8/128', '1:2:3:4:5:6:7:8', true],
    ['::ffff:0:0/96', '::ffff:0:1', false],
  ])('%s contains %s: %s', (range, ip, expected) => {
    const r = parseCidr(range);
    const a = parseIp(ip);
    expect(r).toBeDefined();
    expect(a).toBeDefined();
    expect(cidrContains(r as never, a as never)).toBe(expected);
  });

  it.each([
    '203.0.113.0/33',
    '203.0.113.0/',
    '203.0.113.0/-1',
    '256.0.0.1',
    '010.0.0.1',
    '1.2.3',
    '1.2.3.4.5',
    '2001:db8::/129',
    '2001:db8:::1',
    '2001:db8::1::2',
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7',
    'fe80::1%eth0',
    '12345::',
    'g::1',
    '',
    'localhost',
  ])('refuses the range %j', (text) => {
    expect(parseCidr(text)).toBeUndefined();
  });

  it.each(['1.2.3.4/8', '256.1.1.1', 'fe80::1::', '', 'x'])('refuses the address %j', (text) => {
    expect(parseIp(text)).toBeUndefined();
  });
});

describe('parseBase64', () => {
  it('reads padded base64 and refuses anything else', () => {
    expect(parseBase64('cGktMDE=')?.toString()).toBe('pi-01');
    expect(parseBase64('')?.length).toBe(0);
    expect(parseBase64('cGktMDE')).toBeUndefined();
    expect(parseBase64('cGk*MDE=')).toBeUndefined();
    expect(parseBase64('cGktMDE=\n')).toBeUndefined();
  });
});
