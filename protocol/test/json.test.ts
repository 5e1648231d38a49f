import { describe, expect, it } from 'vitest';
import {
  isJsonObject,
  jsonValueDepth,
  MAX_JSON_DEPTH,
  ownValue,
  parseJson,
  setOwn,
  tooDeepMessage,
} from '../src/json.js';

function nestedText(levels: number, open = '{"a":', close = '}'): string {
  return `${open.repeat(levels)}1${close.repeat(levels)}`;
}

describe('parseJson', () => {
  it('parses JSON up to the depth limit', () => {
    expect(parseJson(nestedText(MAX_JSON_DEPTH))).toMatchObject({ ok: true });
    expect(parseJson('{"a":[1,2]}', { maxDepth: 2 })).toEqual({ ok: true, value: { a: [1, 2] } });
  });

  it('refuses deeper JSON as a result, not a throw, at any depth', () => {
    expect(parseJson(nestedText(MAX_JSON_DEPTH + 1))).toEqual({
      ok: false,
      reason: 'depth',
      message: tooDeepMessage(MAX_JSON_DEPTH),
    });
    expect(parseJson(nestedText(10_000, '[', ']'))).toMatchObject({ ok: false, reason: 'depth' });
    expect(parseJson(nestedText(100_000))).toMatchObject({ ok: false, reason: 'depth' });
    expect(parseJson('{"a":[1,2]}', { maxDepth: 1 })).toMatchObject({ ok: false, reason: 'depth' });
    // Strings that look like brackets are not levels.
    expect(parseJson('{"a":"{[{[{[{["}', { maxDepth: 1 })).toMatchObject({ ok: true });
  });

  it('reports a syntax error as a result', () => {
    expect(parseJson('{"a":')).toMatchObject({ ok: false, reason: 'syntax' });
    expect(parseJson('')).toMatchObject({ ok: false, reason: 'syntax' });
  });

  it('keeps __proto__, constructor and prototype as ordinary own keys', () => {
    const parsed = parseJson('{"__proto__":{"x":1},"constructor":2,"prototype":{"y":3}}');
    expect(parsed.ok).toBe(true);
    const value = (parsed as { value: Record<string, unknown> }).value;
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    expect(Object.keys(value)).toEqual(['__proto__', 'constructor', 'prototype']);
    expect(Object.getOwnPropertyDescriptor(value, '__proto__')?.value).toEqual({ x: 1 });
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });
});

describe('ownValue and setOwn', () => {
  it('reads only own keys: never a member of Object.prototype', () => {
    const obj: Record<string, unknown> = { a: 1 };
    expect(ownValue(obj, 'a')).toBe(1);
    for (const key of ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty']) {
      expect(ownValue(obj, key), key).toBeUndefined();
    }
  });

  it('writes __proto__ as an own key instead of changing the prototype', () => {
    const obj: Record<string, unknown> = {};
    setOwn(obj, '__proto__', { polluted: true });
    setOwn(obj, 'constructor', 'c');
    setOwn(obj, 'prototype', 'p');
    expect(Object.getPrototypeOf(obj)).toBe(Object.prototype);
    expect(obj.polluted).toBeUndefined();
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(JSON.stringify(obj)).toBe('{"__proto__":{"polluted":true},"constructor":"c","prototype":"p"}');
    // Written twice: the own key is replaced, still not the prototype.
    setOwn(obj, '__proto__', 2);
    expect(ownValue(obj, '__proto__')).toBe(2);
    expect(Object.getPrototypeOf(obj)).toBe(Object.prototype);
  });
});

describe('jsonValueDepth', () => {
  it.each([
    [1, 0],
    [null, 0],
    [{}, 1],
    [{ a: [1, { b: 2 }] }, 3],
    [[[], [[]]], 3],
  ])('%j is %i deep', (value, depth) => {
    expect(jsonValueDepth(value)).toBe(depth);
  });

  it('measures 100,000 levels without recursion, and stops early at a limit', () => {
    const deep = JSON.parse(nestedText(100_000)) as unknown;
    expect(jsonValueDepth(deep)).toBe(100_000);
    expect(jsonValueDepth(deep, 6)).toBe(7);
  });

  it('isJsonObject is true only for objects that are not arrays', () => {
    expect([{}, { a: 1 }].map(isJsonObject)).toEqual([true, true]);
    expect([[], null, 1, 'x', undefined].map(isJsonObject)).toEqual([false, false, false, false, false]);
  });
});
