import { describe, expect, it } from 'vitest';
import { FUNCTIONS, type RuleOutput, UNSUPPORTED_FUNCTIONS } from '../../src/core/iotsql/index.js';
import { run, value } from './helpers.js';

const U = undefined;
type Row = [expr: string, expected: RuleOutput];

/** Examples from the AWS IoT SQL reference's Functions page, plus the argument-type tables. */
const rows: Row[] = [
  // abs
  ['abs(-5)', 5],
  ['abs(-5.123)', 5.123],
  ["abs('-5.123')", 5.123],
  ['abs(true)', U],
  ["abs('x')", U],
  ['abs(null)', U],
  ['abs(missing)', U],
  ['abs([1])', U],
  // trigonometry and logarithms (double precision)
  ['acos(0)', Math.acos(0)],
  ['acos(2)', U],
  ['asin(0)', 0],
  ['atan(1)', Math.atan(1)],
  ['atan2(1, 0)', 1.5707963267948966],
  ["atan2('1', x)", U],
  ['cos(0)', 1],
  ['cosh(2.3)', Math.cosh(2.3)],
  ['sin(0)', 0],
  ['sinh(2.3)', Math.sinh(2.3)],
  ['tan(3)', Math.tan(3)],
  ['tanh(2.3)', Math.tanh(2.3)],
  ['exp(1)', Math.E],
  ['ln(1)', 0],
  ['ln(0)', U],
  ['log(100)', 2],
  ["log('1000')", 3],
  ['sqrt(9)', 3],
  ['sqrt(-1)', U],
  ['sqrt(true)', U],
  ['power(2, 5)', 32],
  ["power('2', 0.5)", Math.SQRT2],
  ["power(2, 'x')", U],
  // bit functions
  ['bitand(13, 5)', 5],
  ['bitor(8, 5)', 13],
  ['bitxor(13, 5)', 8],
  ["bitand('13', 5.9)", 5],
  ['bitnot(13)', -14],
  ['bitand(true, 1)', U],
  // rounding
  ['ceil(1.2)', 2],
  ['ceil(-1.2)', -1],
  ["ceil('2.1')", 3],
  ['ceil(5)', 5],
  ['floor(1.2)', 1],
  ['floor(-1.2)', -2],
  ['floor([1, 2, 3])', U],
  ['round(1.2)', 1],
  ['round(1.5)', 2],
  ['round(1.7)', 2],
  ['round(-1.1)', -1],
  ['round(-1.5)', -2],
  ["round('2.5')", 3],
  ['round(false)', U],
  ['sign(-7)', -1],
  ['sign(0)', 0],
  ['sign(13)', 1],
  ["sign('-0.5')", -1],
  ['trunc(2.3, 0)', 2],
  ['trunc(2.3123, 2)', 2.31],
  ['trunc(2.888, 2)', 2.88],
  ['trunc(2.00, 5)', 2],
  ['trunc(-2.888, 1)', -2.8],
  ["trunc('1.005', 3)", 1.005],
  ["trunc('x', 1)", U],
  ['mod(8, 3)', 2],
  ['remainder(8, 3)', 2],
  ['mod(8.5, 3)', 2.5],
  ["mod('x', 3)", U],
  ['mod(8, 0)', U],
  // strings
  ['chr(65)', 'A'],
  ['chr(49)', '1'],
  ["chr('66.9')", 'B'],
  ['chr(300)', U],
  ['concat()', U],
  ['concat(1)', '1'],
  ['concat([1, 2, 3], 4)', [1, 2, 3, 4]],
  ["concat([1, 2, 3], 'hello')", [1, 2, 3, 'hello']],
  ["concat('con', 'cat')", 'concat'],
  ["concat(1, 'hello')", '1hello'],
  ["concat('he', 'is', 'man')", 'heisman'],
  ["concat([1, 2, 3], 'hello', [4, 5, 6])", [1, 2, 3, 'hello', 4, 5, 6]],
  ["concat('a', missing)", U],
  ["concat('a', null)", U],
  ["endswith('cat', 'at')", true],
  ["endswith('cat', 'ca')", false],
  ['endswith(123, 3)', true],
  ["endswith(null, 'a')", U],
  ["startswith('ranger', 'ran')", true],
  ["startswith('ranger', missing)", U],
  ["indexof('abcd', 'bc')", 1],
  ["indexof('abcd', 'x')", -1],
  ["length('hi')", 2],
  ['length(false)', 5],
  ['length(null)', U],
  ["lower('HELLO')", 'hello'],
  ["lower(['HELLO'])", '["hello"]'],
  ["upper('hello')", 'HELLO'],
  ["upper(['hello'])", '["HELLO"]'],
  ['upper(missing)', U],
  ["lpad('hello', 2)", '  hello'],
  ['lpad(1, 3)', '   1'],
  ["lpad('x', -4)", 'x'],
  ["lpad('x', '2.9')", '  x'],
  ["lpad('x', true)", U],
  ["rpad('hello', 2)", 'hello  '],
  ['rpad(1, 3)', '1   '],
  ["ltrim(' h i ')", 'h i '],
  ["rtrim(' h i ')", ' h i'],
  ["trim(' hi ')", 'hi'],
  ["trim('\thi\t')", 'hi'],
  ['trim(null)', U],
  ["numbytes('hi')", 2],
  ["numbytes('€')", 3],
  ["replace('abcd', 'bc', 'x')", 'axd'],
  ["replace('abcdabcd', 'b', 'x')", 'axcdaxcd'],
  ["replace('a.b', '.', '$&')", 'a$&b'],
  ["replace(missing, 'a', 'b')", U],
  ["substring('012345', 0)", '012345'],
  ["substring('012345', 2)", '2345'],
  ["substring('012345', 2.745)", '2345'],
  ['substring(123, 2)', '3'],
  ["substring('012345', -1)", '012345'],
  ['substring(true, 1.2)', 'rue'],
  ['substring(false, -2.411E247)', 'false'],
  ["substring('012345', 1, 3)", '12'],
  ["substring('012345', -50, 50)", '012345'],
  ["substring('012345', 3, 1)", ''],
  ["substring('012345', 'x')", U],
  // regular expressions
  ["regexp_matches('aaaa', 'a{2,}')", true],
  ["regexp_matches('aaaa', 'b')", false],
  ["regexp_matches('aaaa', '(')", U],
  ["regexp_matches(null, 'a')", U],
  ["regexp_replace('abcd', 'bc', 'x')", 'axd'],
  ["regexp_replace('abcd', 'b(.*)d', '$1')", 'ac'],
  ["regexp_replace('aXbXc', 'X', '-')", 'a-b-c'],
  ["regexp_substr('hihihello', 'hi')", 'hi'],
  ["regexp_substr('hihihello', '(hi)*')", 'hihi'],
  ["regexp_substr('abc', 'z')", U],
  // hashes
  ["md2('hello')", 'a9046c73e00331af68917d3804f70655'],
  ["parse_time('yyyy-MM-dd', 0)", '1970-01-01'],
  ["time_to_epoch('1970-01-02', 'yyyy-MM-dd')", 86_400_000],
  ["md5('hello')", '5d41402abc4b2a76b9719d911017c592'],
  ["transform('enrichArray', {'k': 1}, [{'a': 2}])", [{ a: 2, k: 1 }]],
  ["sha1('hello')", 'aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d'],
  ["sha256('hello')", '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824'],
  ["sha224('')", 'd14a028c2a3a2bc9476102bb288234c415a2b01f828ea62ac5b3e42f'],
  ['length(sha384(1))', 96],
  ['length(sha512(1))', 128],
  ['md5(missing)', U],
  // base64
  ["encode('hello', 'base64')", 'aGVsbG8='],
  ["encode('hello', 'hex')", U],
  ["decode('aGVsbG8=', 'base64')", 'hello'],
  ["decode('eyAidGVtcGVyYXR1cmUiOiAzMyB9Cg==', 'base64').temperature", 33],
  ["decode('not base64!', 'base64')", null],
  ["decode('aGVsbG8=', 'rot13')", U],
  // get
  ["get(['a', 'b', 'c'], 1)", 'b'],
  ["get({'a': 'b'}, 'a')", 'b'],
  ["get('abc', 1)", 'b'],
  ["get(['a'], '0')", 'a'],
  ["get(['a'], 5)", U],
  ["get({'1': 'x'}, 1)", U],
  ['get(5, 0)', U],
  // predicates and null handling
  ['isNull(5)', false],
  ['isNull(Null)', true],
  ['isNull(missing)', false],
  ['isUndefined(5)', false],
  ['isUndefined(floor([1, 2, 3]))', true],
  ['ISUNDEFINED(missing)', true],
  ['isUndefined(null)', false],
  ['nanvl(8, 3)', 8],
  ['nanvl(missing, 3)', 3],
  ['nanvl(null, 3)', 3],
  ["nanvl('x', 3)", 'x'],
  // cast
  ['cast(true AS Int)', 1],
  ['cast(false as Decimal)', 0],
  ["cast('5.9' AS Int)", 5],
  ["cast('-1.5' AS Integer)", -2],
  ['cast(2.7 AS Int)', 2],
  ["cast('1.5' AS Double)", 1.5],
  ['cast(10 AS String)', '10'],
  ['cast(2.5 AS varchar)', '2.5'],
  ['cast(true AS Text)', 'true'],
  ["cast('x' AS Nvarchar)", 'x'],
  ["cast([1, 'a'] AS String)", '[1,"a"]'],
  ["cast({'k': null} AS ntext)", '{"k":null}'],
  ['cast(null AS String)', U],
  ['cast(0 AS Bool)', false],
  ['cast(0.5 AS Boolean)', true],
  ["cast('TRUE' AS Bool)", true],
  ["cast('yes' AS Bool)", U],
  ['cast(missing AS Int)', U],
  ["cast('abc' AS Decimal)", U],
  ['cast([1] AS Int)', U],
  // misc
  ['sql_version()', '2016-03-23'],
  ['clientid()', 'pi-01'],
];

describe('functions (AWS IoT SQL reference examples and argument tables)', () => {
  it.each(rows)('%s', (expr, expected) => {
    const got = value(expr, { x: 'not a number' });
    if (typeof expected === 'number' && !Number.isInteger(expected)) expect(got).toBeCloseTo(expected, 12);
    else expect(got).toEqual(expected);
  });

  it('function names are case-insensitive', () => {
    expect(value("UPPER('a') + Lower('B') + Round(1.5)")).toBe('Ab2');
  });

  it('covers every supported function in the table above', () => {
    const used = new Set(rows.map(([e]) => e.toLowerCase()));
    const contextual = [
      'get_thing_shadow',
      'accountid',
      'newuuid',
      'principal',
      'rand',
      'timestamp',
      'topic',
      'traceid',
      'clientid',
      // message properties: mqtt5-properties.test.ts
      'get_mqtt_property',
      'get_user_properties',
    ];
    const missing = [...FUNCTIONS.keys()].filter(
      (name) => !contextual.includes(name) && ![...used].some((e) => e.includes(`${name}(`)),
    );
    expect(missing).toEqual([]);
  });

  it('names the AWS functions it does not evaluate', () => {
    expect([...UNSUPPORTED_FUNCTIONS]).toEqual(expect.arrayContaining(['aws_lambda', 'get_dynamodb', 'get_secret']));
    for (const name of UNSUPPORTED_FUNCTIONS) expect(FUNCTIONS.has(name)).toBe(false);
  });
});

describe('message and context functions', () => {
  const sql = (select: string) => `SELECT ${select} FROM 'things/+/thingOne'`;
  const topic = 'things/myThings/thingOne';

  it.each<[string, RuleOutput]>([
    ['topic() AS t', { t: 'things/myThings/thingOne' }],
    ['topic(1) AS t', { t: 'things' }],
    ['topic(2) AS t', { t: 'myThings' }],
    ["topic('3') AS t", { t: 'thingOne' }],
    ['topic(4) AS t', {}],
    ['topic(0) AS t', {}],
    ['clientid() AS c', { c: 'dev-7' }],
    ['principal() AS p', { p: 'ba67293af50bf250' }],
    ['timestamp() AS ts', { ts: 1481825251155 }],
    ['traceid() AS id', { id: '12345678-1234-1234-1234-123456789012' }],
    ['newuuid() AS a, newuuid() AS b', { a: 'uuid-1', b: 'uuid-2' }],
    ['rand() AS r', { r: 0.25 }],
    ['accountid() AS acct', { acct: '123456789012' }],
  ])('%s', (select, expected) => {
    let n = 0;
    const out = run(
      sql(select),
      topic,
      {},
      {
        clientId: 'dev-7',
        principal: 'ba67293af50bf250',
        timestamp: 1481825251155,
        traceId: '12345678-1234-1234-1234-123456789012',
      },
      { newUuid: () => `uuid-${++n}`, random: () => 0.25, accountId: '123456789012' },
    );
    expect(out).toEqual(expected);
  });

  it('without message metadata: clientid() is n/a, principal(), traceid() and accountid() are Undefined', () => {
    expect(run(sql('clientid() AS c, principal() AS p, traceid() AS t, accountid() AS a'), topic, {})).toEqual({
      c: 'n/a',
    });
  });

  it('get_thing_shadow() asks the injected lookup for the classic or a named shadow', () => {
    const shadows: Record<string, unknown> = {
      'MyThing/': { state: { reported: { alarm: 'ON' } } },
      'MyThing/MyThingShadow': { state: { reported: { alarm: 'OFF' } } },
    };
    const ctx = {
      getThingShadow: (thing: string, shadow: string | undefined) => shadows[`${thing}/${shadow ?? ''}`] as never,
    };
    const role = "'arn:aws:iam::123456789012:role/AllowsThingShadowAccess'";
    const classic = `SELECT * FROM 'topic/subtopic' WHERE get_thing_shadow('MyThing', ${role}).state.reported.alarm = 'ON'`;
    const named = `SELECT * FROM 'topic/subtopic' WHERE get_thing_shadow('MyThing', 'MyThingShadow', ${role}).state.reported.alarm = 'ON'`;
    expect(run(classic, 'topic/subtopic', {}, {}, ctx)).toEqual({});
    expect(run(named, 'topic/subtopic', {}, {}, ctx)).toBe('no match');
    expect(run(classic, 'topic/subtopic', {}, {})).toBe('no match');
    expect(run(`SELECT get_thing_shadow('Nope', ${role}) AS s FROM 'a'`, 'a', {}, {}, ctx)).toEqual({});
    expect(run(`SELECT get_thing_shadow(1, ${role}) AS s FROM 'a'`, 'a', {}, {}, ctx)).toEqual({});
  });

  it('timestamp() falls back to the injected clock and is fixed for one evaluation', () => {
    let calls = 0;
    const out = run(sql('timestamp() AS a, timestamp() AS b'), topic, {}, {}, { now: () => 1000 + calls++ });
    expect(out).toEqual({ a: 1000, b: 1000 });
    expect(calls).toBe(1);
  });

  it('newuuid() defaults to a random RFC 4122 UUID', () => {
    const out = run(sql('newuuid() AS id'), topic, {}) as { id: string };
    expect(out.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('topic() drops the Basic Ingest prefix $aws/rules/{rule}/', () => {
    const out = run(
      "SELECT topic() AS t, topic(3) AS floor FROM '$aws/rules/BuildingManager/Buildings/#'",
      '$aws/rules/BuildingManager/Buildings/Building5/Floor2/Room201/Lights',
      {},
    );
    expect(out).toEqual({ t: 'Buildings/Building5/Floor2/Room201/Lights', floor: 'Floor2' });
  });

  it('encode(*, base64) encodes the raw payload, JSON or not', () => {
    const bytes = new Uint8Array([0, 1, 2, 250]);
    expect(run("SELECT encode(*, 'base64') AS data FROM 'a/b'", 'a/b', bytes)).toEqual({ data: 'AAEC+g==' });
    expect(run("SELECT encode(*, 'base64') AS data FROM 'a/b'", 'a/b', '{"k":1}')).toEqual({ data: 'eyJrIjoxfQ==' });
  });

  it('decode(encode(*)) turns a non-JSON number payload into a value (WHERE clause example)', () => {
    const sql =
      "SELECT decode(encode(*, 'base64'), 'base64') AS value FROM 'topic/subtopic' WHERE decode(encode(*, 'base64'), 'base64') > 50";
    expect(run(sql, 'topic/subtopic', '80')).toEqual({ value: 80 });
    expect(run(sql, 'topic/subtopic', '20')).toBe('no match');
  });
});
