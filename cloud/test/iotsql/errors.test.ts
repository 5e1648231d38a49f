import { describe, expect, it } from 'vitest';
import { compileRule, type IotSqlError } from '../../src/core/iotsql/index.js';
import { CloudError } from '../../src/errors.js';
import { compileError } from './helpers.js';

type Row = [sql: string, kind: IotSqlError['kind'], line: number, column: number, reason: RegExp];

describe('malformed SQL is rejected at load time with line and column', () => {
  it.each<Row>([
    ["SELECT a FROM 'x/y", 'lexical', 1, 15, /unterminated string/],
    ["SELECT 'abc FROM 'x'", 'syntax', 1, 19, /unexpected identifier "x", expected ',' or FROM/],
    ["SELECT a FROM 'x' WHERE b = 'abc", 'lexical', 1, 29, /unterminated string/],
    ["SELECT a FROM 'x' WHERE b = 'abc\\'", 'lexical', 1, 29, /unterminated string/],
    ["SELECT a FROM 'x' WHERE b = 'it\\q'", 'lexical', 1, 32, /unknown escape/],
    ["SELECT a # b FROM 'x'", 'lexical', 1, 10, /unexpected character "#"/],
    ["SELECT 12abc FROM 'x'", 'lexical', 1, 8, /malformed number/],
    ["SELECT 1e FROM 'x'", 'lexical', 1, 8, /exponent/],
    ["SELECT a FROM 'x' WHERE s = 'bad \\u12'", 'lexical', 1, 34, /\\u escape/],
    ['', 'syntax', 1, 1, /expected SELECT/],
    ['UPDATE x SET a = 1', 'syntax', 1, 1, /expected SELECT/],
    ['SELECT a', 'syntax', 1, 9, /missing FROM/],
    ["SELECT a b FROM 'x'", 'syntax', 1, 10, /unexpected identifier "b"/],
    ["SELECT FROM 'x'", 'syntax', 1, 8, /unexpected keyword FROM, expected an expression/],
    ['SELECT a FROM x/y', 'syntax', 1, 15, /topic filter in single quotes/],
    ['SELECT a FROM "x/y"', 'syntax', 1, 15, /topic filter in single quotes/],
    ["SELECT a FROM 'x/#/y'", 'semantic', 1, 15, /invalid topic filter.*'#'/],
    ["SELECT a FROM 'x/y+'", 'semantic', 1, 15, /invalid topic filter.*'\+'/],
    ["SELECT a FROM ''", 'semantic', 1, 15, /topic filter is empty/],
    ["SELECT a FROM 'a/b/c/d/e/f/g/h/i'", 'semantic', 1, 15, /forward slashes/],
    ["SELECT a FROM 'x' WHERE", 'syntax', 1, 24, /unexpected end of input, expected an expression/],
    ["SELECT a FROM 'x' WHERE b > 1 garbage", 'syntax', 1, 31, /after the end of the statement/],
    ["SELECT a FROM 'x' LIMIT 1", 'syntax', 1, 19, /after the end of the statement/],
    ["SELECT a FROM 'x';", 'lexical', 1, 18, /unexpected character ";"/],
    ["SELECT a FROM 'x' WHERE b != 1", 'syntax', 1, 27, /use '<>'/],
    ["SELECT a FROM 'x' WHERE b == 1", 'syntax', 1, 27, /use '='/],
    ["SELECT (a FROM 'x'", 'syntax', 1, 11, /expected '\)'/],
    ["SELECT [1, 2 FROM 'x'", 'syntax', 1, 14, /expected '\]'/],
    ["SELECT {'a' 1} FROM 'x'", 'syntax', 1, 13, /expected ':'/],
    ["SELECT {1: 2} FROM 'x'", 'syntax', 1, 9, /expected an object key/],
    ["SELECT a. FROM 'x'", 'syntax', 1, 11, /expected a field name/],
    ["SELECT a.end FROM 'x'", 'syntax', 1, 10, /keyword END, expected a field name/],
    ["SELECT a.0 FROM 'x'", 'syntax', 1, 10, /use get/],
    ["SELECT a[1 FROM 'x'", 'syntax', 1, 12, /expected '\]'/],
    ["SELECT CASE WHEN a THEN 1 FROM 'x'", 'syntax', 1, 27, /expected END/],
    ["SELECT CASE a END FROM 'x'", 'syntax', 1, 15, /expected WHEN/],
    [
      "SELECT a FROM 'x' WHERE a IS 5",
      'syntax',
      1,
      27,
      /'IS' is not an IoT SQL operator; use isNull\(x\) or isUndefined\(x\)/,
    ],
    ["SELECT a AS FROM 'x'", 'syntax', 1, 13, /keyword FROM, expected an alias name/],
    ["SELECT VALUE a, b FROM 'x'", 'semantic', 1, 17, /exactly one expression/],
    ["SELECT VALUE a AS b FROM 'x'", 'semantic', 1, 16, /cannot have an alias/],
    ["SELECT foo(a) FROM 'x'", 'semantic', 1, 8, /unknown function foo\(\)/],
    ["SELECT get_dynamodb('t', 'k', 'v', 'r') FROM 'x'", 'semantic', 1, 8, /get_dynamodb\(\) is not supported/],
    ["SELECT get_thing_shadow('t') FROM 'x'", 'semantic', 1, 8, /takes 2 to 3 arguments, got 1/],
    ["SELECT topic(1, 2) FROM 'x'", 'semantic', 1, 8, /topic\(\) takes 0 to 1 arguments, got 2/],
    ["SELECT get(a) FROM 'x'", 'semantic', 1, 8, /get\(\) takes 2 arguments, got 1/],
    ["SELECT abs() FROM 'x'", 'semantic', 1, 8, /abs\(\) takes 1 argument, got 0/],
    ["SELECT timestamp(1) FROM 'x'", 'semantic', 1, 8, /takes 0 arguments/],
    ["SELECT cast(a AS Float) FROM 'x'", 'semantic', 1, 18, /unknown type FLOAT in cast/],
    ["SELECT cast(a, Int) FROM 'x'", 'syntax', 1, 14, /expected AS/],
    ["SELECT a FROM 'x' WHERE EXISTS a", 'syntax', 1, 32, /expected '\('/],
    ["SELECT a + * FROM 'x'", 'syntax', 1, 12, /'\*' stands for the whole payload/],
    ["SELECT 1e999 FROM 'x'", 'semantic', 1, 8, /out of range/],
    ["SELECT end FROM 'x'", 'syntax', 1, 8, /keyword END/],
    ["SELECT a,\n  b,\n  upper(c, d)\nFROM 'x'", 'semantic', 3, 3, /upper\(\) takes 1 argument/],
    ["SELECT a\r\nFROM 'x'\r\nWHERE a >", 'syntax', 3, 10, /end of input/],
    [
      "SELECT *\n  FROM 'pifleet/+/telemetry'\n  WHERE get(readings, 0).metrics.temperature >> 30",
      'syntax',
      3,
      47,
      /unexpected '>'/,
    ],
    ["SELECT (SELECT VALUE x FROM) AS y FROM 'x'", 'syntax', 1, 28, /expected an expression/],
  ])('%j', (sql, kind, line, column, reason) => {
    const err = compileError(sql);
    expect(err).toBeInstanceOf(CloudError);
    expect(err.name).toBe('IotSqlError');
    expect({ kind: err.kind, line: err.line, column: err.column }).toEqual({ kind, line, column });
    expect(err.reason).toMatch(reason);
    expect(err.message).toBe(`${err.reason} at line ${line}, column ${column}`);
    expect(err.code).toBe(`IOT_SQL_${kind.toUpperCase()}`);
    expect(err.data).toMatchObject({ line, column, source: sql });
  });
});

describe('nesting is bounded', () => {
  it.each([
    ['parentheses', `SELECT ${'('.repeat(300)}1${')'.repeat(300)} AS x FROM 'a'`],
    ['NOT', `SELECT * FROM 'a' WHERE ${'NOT '.repeat(300)}true`],
    ['unary minus', `SELECT ${'- '.repeat(300)}1 AS x FROM 'a'`],
    ['arrays', `SELECT ${'['.repeat(300)}${']'.repeat(300)} AS x FROM 'a'`],
  ])('%s nested 300 deep is a located error', (_name, sql) => {
    const err = compileError(sql);
    expect(err.reason).toMatch(/nested more than 200 levels/);
    expect(err.line).toBe(1);
  });

  it('nesting 100 deep compiles and evaluates', () => {
    const sql = `SELECT VALUE ${'('.repeat(100)}1${')'.repeat(100)} + ${'- '.repeat(100)}1 FROM 'a'`;
    expect(compileRule(sql).evaluate({ topic: 'a', payload: '{}' })).toEqual({ matched: true, output: 2 });
  });
});

describe('edge syntax that is valid', () => {
  it.each([
    "select * from 'a/b' where x > 1",
    "SELECT VALUE FROM 'a/b'".replace('VALUE FROM', 'value FROM'),
    "SELECT value AS v FROM 'a/b'",
    "SELECT * FROM '#'",
    "SELECT *\n\tFROM\n'a/b'\nWHERE\n  NOT   (a = 1)",
    "SELECT a AS timestamp FROM 'a/b'",
    "SELECT get(*, 'end') AS e FROM 'a/b'",
    "SELECT x FROM 'a/b' WHERE x NOT IN [1, 2]",
    "SELECT -(-(1)) AS one FROM 'a/b'",
  ])('%j', (sql) => {
    expect(() => compileRule(sql)).not.toThrow();
  });

  it("a field named 'value' can still be selected", () => {
    const r = compileRule("SELECT value FROM 'a/b'").evaluate({ topic: 'a/b', payload: '{"value": 3}' });
    expect(r).toEqual({ matched: true, output: { value: 3 } });
  });
});

describe('ANSI SQL that AWS IoT SQL does not have is refused, naming the construct and the function to use', () => {
  it.each([
    ["SELECT a FROM 'x' WHERE a IS NULL", 27, "'x IS NULL' is not IoT SQL; use isNull(x)"],
    ["SELECT a FROM 'x' WHERE a IS NOT NULL", 27, "'x IS NOT NULL' is not IoT SQL; use NOT isNull(x)"],
    ["SELECT a FROM 'x' WHERE a.b is undefined", 29, "'x IS UNDEFINED' is not IoT SQL; use isUndefined(x)"],
    ["SELECT a FROM 'x' WHERE a IS NOT UNDEFINED", 27, "'x IS NOT UNDEFINED' is not IoT SQL; use NOT isUndefined(x)"],
    ["SELECT a IS NULL AS n FROM 'x'", 10, "'x IS NULL' is not IoT SQL; use isNull(x)"],
  ])('%j', (sql, column, reason) => {
    const err = compileError(sql);
    expect(err.kind).toBe('syntax');
    expect(err.column).toBe(column);
    expect(err.reason).toBe(reason);
  });

  it('the documented functions answer what IS would have asked', () => {
    const r = compileRule("SELECT isNull(a) AS n, NOT isUndefined(b) AS b FROM 'x' WHERE isUndefined(c)").evaluate({
      topic: 'x',
      payload: '{"a": null, "b": 1}',
    });
    expect(r).toEqual({ matched: true, output: { n: true, b: true } });
  });
});
