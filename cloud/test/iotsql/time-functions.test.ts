import type { JsonValue } from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import { compilePattern, formatInstant, parseInstant, resolveZone } from '../../src/core/iotsql/datetime.js';
import { compileTemplate } from '../../src/core/iotsql/index.js';
import { compileError, run, value } from './helpers.js';

const U = undefined;
const utc = (iso: string) => Date.parse(iso);

describe('time_to_epoch(String, String): the reference examples', () => {
  it.each([
    ['2020-04-03 09:45:18 UTC+01:00', 'yyyy-MM-dd HH:mm:ss VV', 1585903518000],
    ['18 December 2015', 'dd MMMM yyyy', 1450396800000],
    ['2007-12-03 10:15:30.592 America/Los_Angeles', 'yyyy-MM-dd HH:mm:ss.SSS z', 1196705730592],
  ])('time_to_epoch(%j, %j) = %d', (text, pattern, expected) => {
    expect(value(`time_to_epoch('${text}', '${pattern}')`)).toBe(expected);
    // The same through payload fields, so the pattern is compiled at run time.
    expect(value('time_to_epoch(t, p)', { t: text, p: pattern })).toBe(expected);
  });
});

describe('parse_time(String, Long[, String]): the reference examples', () => {
  it('formats in the zone given, with era and zone abbreviation', () => {
    expect(
      run(
        "SELECT parse_time(\"yyyy.MM.dd G 'at' HH:mm:ss z\", 100000000, 'America/Belize') as ts FROM 'a/b'",
        'a/b',
        {},
      ),
    ).toEqual({ ts: '1970.01.01 AD at 21:46:40 CST' });
  });

  it('defaults to UTC', () => {
    expect(run("SELECT parse_time(\"yyyy.MM.dd G 'at' HH:mm:ss z\", 100000000) as ts FROM 'a/b'", 'a/b', {})).toEqual({
      ts: '1970.01.02 AD at 03:46:40 UTC',
    });
  });

  it('formats timestamp() as the reference shows ("2017.06.09 AD at 17:19:46 UTC")', () => {
    const out = run(
      "SELECT parse_time(\"yyyy.MM.dd G 'at' HH:mm:ss z\", timestamp() ) as ts FROM 'A/B'",
      'A/B',
      {},
      { timestamp: utc('2017-06-09T17:19:46Z') },
    );
    expect(out).toEqual({ ts: '2017.06.09 AD at 17:19:46 UTC' });
  });

  it('works in a substitution template (the reference\'s S3 key "2017")', () => {
    const key = compileTemplate('${parse_time("yyyy", timestamp(), "UTC")}').render({
      topic: 'A/B',
      payload: '{}',
      timestamp: utc('2017-06-09T17:19:46Z'),
    });
    expect(key).toBe('2017');
  });

  it('formats the rule timestamp() (Joda-Time ZZ is the offset with a colon)', () => {
    const out = run(
      "SELECT parse_time(\"yyyy-MM-dd'T'HH:mm:ss.SSSZZ\", timestamp()) AS ts FROM 'a/b'",
      'a/b',
      {},
      { timestamp: 1_700_000_000_123 },
    );
    expect(out).toEqual({ ts: '2023-11-14T22:13:20.123+00:00' });
  });
});

const t = utc('2007-12-03T18:05:09.592Z'); // a Monday

describe('parse_time: Joda-Time pattern letters (the reference links Joda-Time DateTimeFormat)', () => {
  it.each([
    ['G GG GGGG', 'UTC', 'AD AD AD'],
    ['y yy yyyy', 'UTC', '2007 07 2007'],
    ['Y YYYY', 'UTC', '2007 2007'],
    ['M MM MMM MMMM', 'UTC', '12 12 Dec December'],
    ['d dd ddd D DDD', 'UTC', '3 03 003 337 337'],
    ['H HH k h hh K a', 'UTC', '18 18 18 6 06 6 PM'],
    ['m mm s ss', 'UTC', '5 05 9 09'],
    ['S SS SSS SSSSSS', 'UTC', '5 59 592 592000'],
    ['E EEE EEEE', 'UTC', 'Mon Mon Monday'],
    ['z zzzz', 'America/Los_Angeles', 'PST Pacific Standard Time'],
    ['Z ZZ ZZZ', 'America/Los_Angeles', '-0800 -08:00 America/Los_Angeles'],
    ['Z ZZ ZZZ', 'UTC', '+0000 +00:00 UTC'],
    ['Z ZZ', 'Asia/Kolkata', '+0530 +05:30'],
    ['z', 'Europe/Berlin', 'CET'],
    ["'at' HH 'o''clock' ''", 'UTC', "at 18 o'clock '"],
    // Java reserves [ ] # { }; Joda prints them.
    ['[yyyy] #{MM}', 'UTC', '[2007] #{12}'],
    ['yyyy-MM-dd HH:mm', '+05:30', '2007-12-03 23:35'],
    ['yyyy-MM-dd HH:mm ZZZ', '-03:30', '2007-12-03 14:35 -03:30'],
  ])('parse_time(%j, t, %j) = %j', (pattern, zone, expected) => {
    expect(value(`parse_time('${pattern.replaceAll("'", "''")}', ${t}, '${zone}')`)).toBe(expected);
  });

  it('daylight saving time: the offset and abbreviation of the instant', () => {
    expect(
      value("parse_time('yyyy-MM-dd HH:mm z ZZ', t, 'America/Los_Angeles')", { t: utc('2007-07-01T12:00:00Z') }),
    ).toBe('2007-07-01 05:00 PDT -07:00');
  });

  it('a year before 1 AD: Joda y is the proleptic year, Y the year of era', () => {
    const bc = utc('-000043-03-15T00:00:00Z'); // proleptic -43 = 44 BC
    expect(value(`parse_time('yyyy G|YYYY', ${bc})`)).toBe('-0043 BC|0044');
  });

  it.each([
    ["SELECT parse_time('uuuu', 0) FROM 'a'", /pattern letter 'u' is not supported.*Joda-Time/],
    ["SELECT parse_time('xxxx', 0) FROM 'a'", /pattern letter 'x'/], // Joda's week-year: not supported here
    ["SELECT parse_time('yyyy VV', 0) FROM 'a'", /pattern letter 'V'/],
    ["SELECT parse_time('LLL', 0) FROM 'a'", /pattern letter 'L'/],
    ["SELECT parse_time('yyyy X', 0) FROM 'a'", /pattern letter 'X'/],
    ["SELECT parse_time('dddddddddd', 0) FROM 'a'", /too many pattern letters: 'd' × 10/],
    // Joda-Time zone IDs: no 'Z', 'UT' or prefixed offsets (Java's ZoneId takes them).
    ["SELECT parse_time('yyyy', 0, 'UTC+01:00') FROM 'a'", /unknown time zone "UTC\+01:00"/],
    ["SELECT parse_time('yyyy', 0, 'Z') FROM 'a'", /unknown time zone "Z"/],
    ["SELECT parse_time('yyyy', 0, 'america/belize') FROM 'a'", /unknown time zone/],
  ])('refused at compile time: %s', (sql, reason) => {
    expect(compileError(sql).reason).toMatch(reason);
  });
});

describe('Java DateTimeFormatter letters, formatting (the shared letter set Joda patterns compile to)', () => {
  it.each([
    ['G GGGG GGGGG', 'UTC', 'AD Anno Domini A'],
    ['y yy yyy yyyy yyyyy', 'UTC', '2007 07 2007 2007 02007'],
    ['u uu uuuu', 'UTC', '2007 07 2007'],
    ['M MM MMM MMMM MMMMM', 'UTC', '12 12 Dec December D'],
    ['L LL LLL LLLL', 'UTC', '12 12 Dec December'],
    ['d dd D DD DDD', 'UTC', '3 03 337 337 337'],
    ['E EEE EEEE EEEEE', 'UTC', 'Mon Mon Monday M'],
    ['z zzzz VV', 'America/Los_Angeles', 'PST Pacific Standard Time America/Los_Angeles'],
    ['Z ZZZZ ZZZZZ', 'America/Los_Angeles', '-0800 GMT-08:00 -08:00'],
    ['Z ZZZZ ZZZZZ', 'UTC', '+0000 GMT Z'],
    ['X XX XXX', 'Asia/Kolkata', '+0530 +0530 +05:30'],
    ['X XX XXX', 'UTC', 'Z Z Z'],
    ['x xx xxx', 'UTC', '+00 +0000 +00:00'],
    ['x xxx', 'America/Los_Angeles', '-08 -08:00'],
    ['yyyy-MM-dd HH:mm VV', 'UTC+01:00', '2007-12-03 19:05 UTC+01:00'],
  ])('%j in %s → %j', (pattern, zone, expected) => {
    const z = resolveZone(zone) as NonNullable<ReturnType<typeof resolveZone>>;
    expect(formatInstant(compilePattern(pattern), t, z)).toBe(expected);
  });
});

describe('pattern letters (Java DateTimeFormatter), parsing', () => {
  it.each<[string, string, number | undefined]>([
    ['yyyy-MM-dd', '2015-12-18', utc('2015-12-18T00:00:00Z')],
    ['yyyyMMddHHmmss', '20151218123456', utc('2015-12-18T12:34:56Z')],
    ['yy-M-d', '15-1-2', utc('2015-01-02T00:00:00Z')],
    ['uuuu-DDD', '2016-366', utc('2016-12-31T00:00:00Z')],
    ['dd MMM yyyy hh:mm a', '03 Dec 2007 06:05 PM', utc('2007-12-03T18:05:00Z')],
    ['dd MMM yyyy hh:mm a', '03 Dec 2007 12:05 AM', utc('2007-12-03T00:05:00Z')],
    ['EEEE, d MMMM yyyy', 'Monday, 3 December 2007', utc('2007-12-03T00:00:00Z')],
    ["yyyy-MM-dd'T'HH:mm:ss.SSSXXX", '2007-12-03T10:15:30.592+01:00', utc('2007-12-03T09:15:30.592Z')],
    ["yyyy-MM-dd'T'HH:mm:ssX", '2007-12-03T10:15:30Z', utc('2007-12-03T10:15:30Z')],
    ["yyyy-MM-dd'T'HH:mm:ssX", '2007-12-03T10:15:30-05', utc('2007-12-03T15:15:30Z')],
    ["yyyy-MM-dd'T'HH:mm:ssxx", '2007-12-03T10:15:30+0530', utc('2007-12-03T04:45:30Z')],
    ['yyyy-MM-dd HH:mm:ss Z', '2007-12-03 10:15:30 -0800', utc('2007-12-03T18:15:30Z')],
    ['yyyy-MM-dd HH:mm:ss.SSSSSS', '2007-12-03 10:15:30.123456', utc('2007-12-03T10:15:30.123Z')],
    ['yyyy G', '0044 BC', utc('-000043-01-01T00:00:00Z')],
    ['yyyy G', '44 BC', U], // yyyy reads at least four digits, as Java's does
    ['HH:mm', '10:15', utc('1970-01-01T10:15:00Z')],
    // Daylight saving time in a region: the gap moves forward, the overlap takes the earlier instant.
    ['yyyy-MM-dd HH:mm VV', '2026-03-08 02:30 America/Los_Angeles', utc('2026-03-08T10:30:00Z')],
    ['yyyy-MM-dd HH:mm VV', '2026-11-01 01:30 America/Los_Angeles', utc('2026-11-01T08:30:00Z')],
    ['yyyy-MM-dd HH:mm VV', '2026-07-01 12:00 Europe/Berlin', utc('2026-07-01T10:00:00Z')],
    // Undefined: the text does not fit the pattern, or names a date or zone that does not exist.
    ['yyyy-MM-dd', '2015-12-18 ', U],
    ['yyyy-MM-dd', '2015-13-01', U],
    ['yyyy-MM-dd', '2015-02-29', U],
    ['yyyy-MM-dd', '2016-02-30', U],
    ['HH:mm', '24:00', U],
    ['hh a', '13 PM', U],
    ['dd MMMM yyyy', '18 december 2015', U],
    ['EEEE, d MMMM yyyy', 'Tuesday, 3 December 2007', U],
    ['yyyy-MM-dd z', '2007-12-03 Mars/Olympus', U],
    ['yyyy-MM-dd z', '2007-12-03 america/los_angeles', U],
    ['yyyy-MM-dd X', '2007-12-03 +19', U],
    ['uuuu-DDD', '2015-366', U],
  ])('%j reads %j', (pattern, text, expected) => {
    expect(parseInstant(compilePattern(pattern), text)).toBe(expected);
    expect(value('time_to_epoch(t, p)', { t: text, p: pattern })).toBe(expected);
  });

  it('parse_time (Joda letters) and time_to_epoch (Java letters) are inverse on the same layout', () => {
    const joda = "G yyyy-MM-dd'T'HH:mm:ss.SSS EEEE MMMM ZZ";
    const java = "G uuuu-MM-dd'T'HH:mm:ss.SSS EEEE MMMM xxx";
    for (const at of [0, 1_700_000_000_123, utc('1999-12-31T23:59:59.999Z'), utc('2024-02-29T12:00:00Z')]) {
      const text = value(`parse_time('${joda.replaceAll("'", "''")}', ${at}, '-03:30')`) as string;
      expect(value('time_to_epoch(t, p)', { t: text, p: java })).toBe(at);
    }
  });
});

describe('wrong argument types are Undefined (run time), unusable literal patterns and zones are compile errors', () => {
  it.each<[string, JsonValue]>([
    ["time_to_epoch(1, 'yyyy')", {}],
    ["time_to_epoch('2015', p)", { p: 1 }],
    ["time_to_epoch(missing, 'yyyy')", {}],
    ["time_to_epoch('2015', p)", { p: 'yyyy Q' }],
    ["parse_time('yyyy', 'abc')", {}],
    ["parse_time('yyyy', missing)", {}],
    ["parse_time('yyyy', 1e300)", {}],
    ["parse_time('yyyy', 0, z)", { z: 'Mars/Olympus' }],
    ["parse_time('yyyy', 0, z)", { z: 5 }],
    ['parse_time(p, 0)', { p: 'yyyy uuuu' }],
    ['time_to_epoch(t, p)', { t: '2007', p: 'yyyy [HH]' }],
  ])('%s on %j', (expr, payload) => {
    expect(value(expr, payload)).toBe(U);
  });

  it.each([
    ["SELECT time_to_epoch(t, 'yyyy-ww') FROM 'a'", /time_to_epoch\(\): pattern letter 'w' is not supported/],
    ["SELECT time_to_epoch(t, 'YYYY') FROM 'a'", /pattern letter 'Y' is not supported/],
    ["SELECT time_to_epoch(t, 'yyyy[-MM]') FROM 'a'", /optional sections/],
    ["SELECT time_to_epoch(t, 'ddd') FROM 'a'", /too many pattern letters: 'd' × 3/],
    ["SELECT time_to_epoch(t, 'V') FROM 'a'", /exactly twice/],
    ["SELECT time_to_epoch(t, 'yyyy ''x') FROM 'a'", /unterminated quote/],
    ["SELECT time_to_epoch(t, 5) FROM 'a'", /pattern as a string/],
    ["SELECT parse_time('yyyy Q', 0) FROM 'a'", /parse_time\(\): pattern letter 'Q' is not supported/],
    ["SELECT parse_time('yyyy', 0, 'Mars/Olympus') FROM 'a'", /unknown time zone "Mars\/Olympus"/],
    ["SELECT parse_time('yyyy', 0, 'UTC+25:00') FROM 'a'", /unknown time zone/],
    ["SELECT parse_time('yyyy') FROM 'a'", /parse_time\(\) takes 2 to 3 arguments, got 1/],
    ["SELECT time_to_epoch('2015') FROM 'a'", /time_to_epoch\(\) takes 2 arguments, got 1/],
  ])('%s', (sql, reason) => {
    const err = compileError(sql);
    expect(err.kind).toBe('semantic');
    expect(err.reason).toMatch(reason);
  });
});

describe('hostile input', () => {
  it('a long zone-like string is read in bounded time', () => {
    const long = `2007-12-03 ${'A/'.repeat(50_000)}`;
    const started = performance.now();
    expect(value('time_to_epoch(t, p)', { t: long, p: 'yyyy-MM-dd VV' })).toBe(U);
    expect(performance.now() - started).toBeLessThan(1_000);
  });
});
