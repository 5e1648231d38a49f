import type { JsonValue } from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import { md2 } from '../../src/core/iotsql/md2.js';
import { run, value } from './helpers.js';

const U = undefined;

describe('md2(): RFC 1319 test suite (§A.5) and the reference example', () => {
  it.each([
    ['', '8350e5a3e24c153df2275c9f80692773'],
    ['a', '32ec01ec4a6dac72c0ab96fb34c0b5d1'],
    ['abc', 'da853b0d3f88d99b30283a69e6ded6bb'],
    ['message digest', 'ab4f496bfb2a530b219ff33031fe06b0'],
    ['abcdefghijklmnopqrstuvwxyz', '4e8ddff3650292ab5a4108c3aa47940b'],
    ['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789', 'da33def2a42df13975352846c30338cd'],
    ['1234567890'.repeat(8), 'd5976f79d83d3a0dc9806c3c66f3efd8'],
  ])('MD2(%j) = %s', (input, digest) => {
    expect(Buffer.from(md2(Buffer.from(input, 'latin1'))).toString('hex')).toBe(digest);
    expect(value('md2(s)', { s: input })).toBe(digest);
  });

  it.each<[string, JsonValue, RuleOutputValue]>([
    // The reference: md2("hello") = "a9046c73e00331af68917d3804f70655".
    ["md2('hello')", {}, 'a9046c73e00331af68917d3804f70655'],
    // Non-string arguments convert with the standard String conversion, as md5() does.
    ['md2(n)', { n: 1 }, Buffer.from(md2(Buffer.from('1'))).toString('hex')],
    ['md2(missing)', {}, U],
    ['md2(nul)', { nul: null }, U],
    // UTF-8 bytes of the string.
    ["md2('é')", {}, Buffer.from(md2(Buffer.from('é', 'utf8'))).toString('hex')],
  ])('%s on %j', (expr, payload, expected) => {
    expect(value(expr, payload)).toEqual(expected);
  });
});
type RuleOutputValue = JsonValue | undefined;

/** The transform() function's documented examples, on topic A/B. */
describe("transform('enrichArray', Object, Array)", () => {
  const example = {
    attributes: { data1: 1, data2: 2 },
    values: [{ a: 3 }, { b: 4 }, { c: 5 }],
  };

  it('example 1: the attributes object is added to every element', () => {
    expect(run('select value transform("enrichArray", attributes, values) from \'A/B\'', 'A/B', example)).toEqual([
      { a: 3, data1: 1, data2: 2 },
      { b: 4, data1: 1, data2: 2 },
      { c: 5, data1: 1, data2: 2 },
    ]);
  });

  it('example 2: a literal object picks and renames an attribute', () => {
    expect(
      run('select value transform("enrichArray", {"key": attributes.data1}, values) from \'A/B\'', 'A/B', example),
    ).toEqual([
      { a: 3, key: 1 },
      { b: 4, key: 1 },
      { c: 5, key: 1 },
    ]);
  });

  it('example 3: nested SELECTs build both arguments (FROM an object reads that one object)', () => {
    const payload = {
      data1: 'example',
      data2: {
        a: 'first attribute',
        b: 'second attribute',
        c: [
          { x: { someInt: 5, someString: 'hello' }, y: true },
          { x: { someInt: 10, someString: 'world' }, y: false },
        ],
      },
    };
    expect(
      run(
        "select value transform('enrichArray', (select a, b from data2), (select value c from data2)) from 'A/B'",
        'A/B',
        payload,
      ),
    ).toEqual([
      { x: { someInt: 5, someString: 'hello' }, y: true, a: 'first attribute', b: 'second attribute' },
      { x: { someInt: 10, someString: 'world' }, y: false, a: 'first attribute', b: 'second attribute' },
    ]);
  });

  it('keeps the element keys first, then the object keys; the object wins a name clash', () => {
    const out = value("transform('enrichArray', {'k': 'obj', 'z': 1}, [{'k': 'el', 'a': 0}])");
    expect(out).toEqual([{ k: 'obj', a: 0, z: 1 }]);
    expect(Object.keys((out as JsonValue[])[0] as object)).toEqual(['k', 'a', 'z']);
  });

  it.each<[string, JsonValue]>([
    // Any other mode is Undefined (the reference's table); the mode is case-sensitive here.
    ["transform('enrichObject', {'a': 1}, [{}])", {}],
    ["transform('ENRICHARRAY', {'a': 1}, [{}])", {}],
    ["transform(1, {'a': 1}, [{}])", {}],
    ["transform(missing, {'a': 1}, [{}])", {}],
    // Object and Array must be an object and an array.
    ["transform('enrichArray', [1], [{}])", {}],
    ["transform('enrichArray', null, [{}])", {}],
    ["transform('enrichArray', {'a': 1}, {'b': 2})", {}],
    ["transform('enrichArray', {'a': 1}, missing)", {}],
    // An element that is not an object: Undefined rather than silently dropped.
    ["transform('enrichArray', {'a': 1}, [{}, 2])", {}],
  ])('%s is Undefined', (expr, payload) => {
    expect(value(expr, payload)).toBeUndefined();
  });

  it('an empty array gives an empty array', () => {
    expect(value("transform('enrichArray', {'a': 1}, [])")).toEqual([]);
  });

  it('a prototype-named key stays data', () => {
    const out = run(
      "SELECT VALUE transform('enrichArray', o, arr) FROM 't'",
      't',
      '{"o": {"__proto__": {"polluted": 1}}, "arr": [{}]}',
    ) as JsonValue[];
    expect(Object.getPrototypeOf(out[0])).toBe(Object.prototype);
    expect(Object.hasOwn(out[0] as object, '__proto__')).toBe(true);
    expect(({} as { polluted?: number }).polluted).toBeUndefined();
  });

  it('a result over 128 KiB is Undefined (the reference limits the array to 128 KiB)', () => {
    const big = 'x'.repeat(1000);
    const arr = Array.from({ length: 140 }, (_, i) => ({ i }));
    expect(value("transform('enrichArray', {'pad': p}, arr)", { p: big, arr })).toBeUndefined();
    expect(value("transform('enrichArray', {'pad': p}, arr)", { p: big, arr: arr.slice(0, 100) })).toHaveLength(100);
  });
});

describe('a nested SELECT FROM an object', () => {
  it.each<[string, JsonValue, RuleOutputValue]>([
    ['(SELECT a FROM o WHERE a = 1)', { o: { a: 1, b: 2 } }, { a: 1 }],
    ['(SELECT a FROM o WHERE a = 2)', { o: { a: 1, b: 2 } }, U],
    ['(SELECT VALUE b FROM o)', { o: { a: 1, b: 2 } }, 2],
    ['(SELECT VALUE b FROM o)', { o: 'text' }, U],
    // An array still gives one result per element.
    ['(SELECT VALUE b FROM o)', { o: [{ b: 1 }, { b: 2 }] }, [1, 2]],
  ])('%s on %j', (expr, payload, expected) => {
    expect(value(expr, payload)).toEqual(expected);
  });
});
