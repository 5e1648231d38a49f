import type { JsonValue } from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import type { RuleOutput } from '../../src/core/iotsql/index.js';
import { value, where } from './helpers.js';

const U = undefined;
const P = {
  i: 10,
  d: 2.5,
  s: 'abc',
  n5: '5',
  neg: '-1.2',
  e: '5E-12',
  t: true,
  f: false,
  nul: null,
  arr: [1, 2],
  obj: { a: 1 },
};

type Row = [expr: string, expected: RuleOutput];

describe('arithmetic (Operators: + - * / %)', () => {
  it.each<Row>([
    ['1 + 2', 3],
    ['i + 5', 15],
    ['i + d', 12.5],
    ['0.1 + 0.2', 0.3],
    ["'con' + 'cat'", 'concat'],
    ['s + 1', 'abc1'],
    ['1 + s', '1abc'],
    ['s + t', 'abctrue'],
    ['s + arr', 'abc[1,2]'],
    ['s + obj', 'abc{"a":1}'],
    ['s + nul', U],
    ['s + missing', U],
    ['i + missing', U],
    ['i + t', U],
    ['i + nul', U],
    ['arr + arr', U],
    ['n5 + 1', '51'],
    ['10 - 4', 6],
    ['i - d', 7.5],
    ['n5 - 2', 3],
    ["'7.5' - '0.5'", 7],
    ['s - 1', U],
    ['t - 1', U],
    ['3 * 4', 12],
    ['d * 2', 5],
    ["n5 * '2'", 10],
    ['1.1 * 3', 3.3],
    ['obj * 2', U],
    ['7 / 2', 3],
    ['-7 / 2', -3],
    ['7.0 / 2', 3],
    ['7.5 / 2.5', 3],
    ['d / 2', 1.25],
    ["'7' / 2", 3.5],
    ['1 / 0', U],
    ['7 % 3', 1],
    ['-7 % 3', -1],
    ['7.5 % 2', 1.5],
    ["'8' % 3", 2],
    ['5 % 0', U],
    ['(50 - 32) * 5 / 9', 10],
    ['1 + 2 * 3', 7],
    ['(1 + 2) * 3', 9],
    ['10 - 2 - 3', 5],
    ['-i', -10],
    ['-d', -2.5],
    ['-neg', 1.2],
    ['- s', U],
    ['-(1 + 2)', -3],
    ['+n5', 5],
  ])('%s', (expr, expected) => {
    expect(value(expr, P)).toEqual(expected);
  });
});

describe('comparison (Operators: = <> < <= > >=)', () => {
  it.each<Row>([
    ['i = 10', true],
    ['i = 10.0', true],
    ['d = 2.5', true],
    ['i = 11', false],
    ["s = 'abc'", true],
    ["s = 'ABC'", false],
    ['n5 = 5', false],
    ['t = true', true],
    ['t = false', false],
    ['nul = null', true],
    ['nul = 0', false],
    ['arr = [1, 2]', true],
    ['arr = [2, 1]', false],
    ['arr = [1, 2.0]', true],
    ["obj = {'a': 1}", true],
    ["{'x': 1, 'y': [1, {'z': 2}]} = {'y': [1, {'z': 2}], 'x': 1}", true],
    ["obj = {'a': 1, 'b': 2}", false],
    ['obj = arr', false],
    ['missing = 1', U],
    ['1 = missing', U],
    ['missing = missing', U],
    ['i <> 10', false],
    ['i <> 11', true],
    ["s <> 'abd'", true],
    ['arr <> [2, 1]', true],
    ['nul <> null', false],
    ['n5 <> 5', true],
    ['missing <> 1', U],
    ['i > 9', true],
    ['i > 10', false],
    ['i >= 10', true],
    ['d < 3', true],
    ['d <= 2.5', true],
    ['n5 > 4', true],
    ["'10' > 9", true],
    ["'10' > '9'", true],
    ['neg < 0', true],
    ['e > 0', true],
    ['s > 1', U],
    ["'a' < 'b'", U],
    ['t > 0', U],
    ['nul > 0', U],
    ['missing > 0', U],
    ['arr > 0', U],
  ])('%s', (expr, expected) => {
    expect(value(expr, P)).toEqual(expected);
  });
});

describe('boolean operators (AND, OR, NOT)', () => {
  it.each<Row>([
    ['true AND true', true],
    ['true AND false', false],
    ["'TRUE' AND true", true],
    ["'false' OR 'True'", true],
    ['false OR false', false],
    ['true AND missing', U],
    ['false AND missing', U],
    ['true OR missing', U],
    ['true AND 1', U],
    ["true AND 'yes'", U],
    ['NOT true', false],
    ['NOT f', true],
    ["NOT 'FALSE'", true],
    ['NOT 0', U],
    ['NOT missing', U],
    ['NOT nul', U],
    ['i > 5 AND d < 3', true],
    ['i > 50 OR d < 3', true],
    ['NOT i > 50', true],
    ['true OR false AND false', true],
    ['(true OR false) AND false', false],
  ])('%s', (expr, expected) => {
    expect(value(expr, P)).toEqual(expected);
  });
});

describe('IN, isNull(), isUndefined() (AWS IoT SQL has no IS operator)', () => {
  it.each<Row>([
    ["'b' IN ['a', 'b']", true],
    ["'c' IN ['a', 'b']", false],
    ['3 IN [1, 2, 3.0]', true],
    ['[1, 2] IN [[1, 2], 3]', true],
    ["{'a': 1} IN [obj]", true],
    ['i IN arr', false],
    ['1 IN arr', true],
    ['null IN [null]', true],
    ['missing IN [1]', U],
    ['1 IN missing', U],
    ["1 IN 'abc'", U],
    ['3 NOT IN [1, 2]', true],
    ['isNull(nul)', true],
    ['isNull(missing)', false],
    ['isNull(i)', false],
    ['NOT isNull(nul)', false],
    ['NOT isNull(i)', true],
    ['isUndefined(missing)', true],
    ['isUndefined(nul)', false],
    ['NOT isUndefined(i)', true],
    ['NOT isUndefined(missing)', false],
    ['isUndefined(floor(arr))', true],
    ['isUndefined(obj.a.b)', true],
  ])('%s', (expr, expected) => {
    expect(value(expr, P)).toEqual(expected);
  });
});

describe('WHERE is true only for Boolean true', () => {
  it.each<[string, JsonValue, boolean]>([
    ['temperature > 50', { temperature: 100 }, true],
    ['temperature > 50', { temperature: 40 }, false],
    ['temperature > 50', {}, false],
    ["temperature > 50 AND color <> 'red'", { color: 'red', temperature: 40 }, false],
    ["temperature > 50 AND color <> 'red'", { color: 'blue', temperature: 60 }, true],
    ['flag', { flag: 'true' }, true],
    ['flag', { flag: 1 }, false],
    ['NOT flag', { flag: false }, true],
    ['isUndefined(missing)', {}, true],
    ["state IN ['online', 'offline']", { state: 'online' }, true],
    ["state IN ['online', 'offline']", { state: 'rebooting' }, false],
  ])('WHERE %s on %j → %s', (cond, payload, expected) => {
    expect(where(cond, payload)).toBe(expected);
  });
});

describe('literals (Literals, Data types)', () => {
  it.each<Row>([
    ['10', 10],
    ['10.0', 10],
    ['1.5e3', 1500],
    ['2E-2', 0.02],
    ["'it''s'", "it's"],
    ["'a\\'b'", "a'b"],
    ['"double"', 'double'],
    ["'tab\\there'", 'tab\there'],
    ["'\\u00e9'", 'é'],
    ['true', true],
    ['FALSE', false],
    ['NULL', null],
    ['[1, "a", [true], {}]', [1, 'a', [true], {}]],
    ['{\'latitude\': 47.606, "longitude": -122.332, bare: 1}', { latitude: 47.606, longitude: -122.332, bare: 1 }],
    ["{'kept': 1, 'gone': missing}", { kept: 1 }],
    ['[1, missing, 3]', [1, 3]],
    ['[]', []],
  ])('%s', (expr, expected) => {
    expect(value(expr, P)).toEqual(expected);
  });
});

describe('CASE (Case statements)', () => {
  const light = (color: JsonValue) =>
    value(
      "CASE color WHEN 'green' THEN 'go' WHEN 'yellow' THEN 'caution' WHEN 'red' THEN 'stop' ELSE 'you are not at a stop light' END",
      { color },
    );
  it.each<[JsonValue, string]>([
    ['yellow', 'caution'],
    ['green', 'go'],
    ['red', 'stop'],
    ['blue', 'you are not at a stop light'],
  ])('simple CASE on %s', (color, expected) => {
    expect(light(color)).toBe(expected);
  });

  it.each<Row>([
    ["CASE missing WHEN 1 THEN 'one' ELSE 'other' END", U],
    ["CASE i WHEN 1 THEN 'one' END", U],
    ["CASE i WHEN 10.0 THEN 'ten' END", 'ten'],
    ["CASE arr WHEN [1, 2] THEN 'pair' END", 'pair'],
    ["CASE WHEN i > 100 THEN 'hot' WHEN i > 5 THEN 'warm' ELSE 'cold' END", 'warm'],
    ["CASE WHEN missing > 1 THEN 'x' ELSE 'fallback' END", 'fallback'],
    ["CASE WHEN 'true' THEN 'string true counts' END", 'string true counts'],
    ["CASE WHEN 1 THEN 'no' END", U],
    ["CASE i WHEN 10 THEN CASE WHEN d > 2 THEN 'nested' END END", 'nested'],
  ])('%s', (expr, expected) => {
    expect(value(expr, P)).toEqual(expected);
  });
});

describe('paths (JSON extensions)', () => {
  const doc = {
    color: { red: 255, green: 0 },
    a: { b: [{ c: 1 }, { c: 2, d: { e: 'deep' } }] },
    list: [10, 20, 30],
    mydata: { item2: { '0': { 'my-key': 'myValue' } } },
    'weird key': 1,
    constructor: 'own',
  };
  it.each<Row>([
    ['color.red', 255],
    ['color.blue', U],
    ['color.red.x', U],
    ['a.b[1].c', 2],
    ['a.b[1].d.e', 'deep'],
    ['a.b[0]', { c: 1 }],
    ['list[0]', 10],
    ['list[2]', 30],
    ['list[3]', U],
    ['list[-1]', U],
    ["list['1']", 20],
    ['list[1.6]', 30],
    ['list.x', U],
    ["a['b']", [{ c: 1 }, { c: 2, d: { e: 'deep' } }]],
    ["get(get(get(mydata, 'item2'), '0'), 'my-key')", 'myValue'],
    ["get(*, 'weird key')", 1],
    ['constructor', 'own'],
    ['toString', U],
    ['color.constructor', U],
    ['a.b.c', U],
  ])('%s', (expr, expected) => {
    expect(value(expr, doc)).toEqual(expected);
  });
});
