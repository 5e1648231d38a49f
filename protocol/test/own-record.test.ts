import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { iotPolicyDocumentSchema, ownRecordOf, parseIotPolicyDocument } from '../src/index.js';

afterEach(() => {
  expect(Object.keys(Object.prototype)).toEqual([]);
});

describe('ownRecordOf', () => {
  const strings = ownRecordOf(z.string(), {
    notObject: 'must be an object of strings',
    invalidValue: (key) => `${key} must be a string`,
  });

  it('keeps every own key, __proto__ and constructor included, as an own key of a plain object', () => {
    const r = strings.safeParse(JSON.parse('{"__proto__":"p","constructor":"c","a":"b"}'));
    expect(r.success).toBe(true);
    if (!r.success) return;
    expect(Object.getPrototypeOf(r.data)).toBe(Object.prototype);
    expect(Object.keys(r.data)).toEqual(['__proto__', 'constructor', 'a']);
    expect(Object.getOwnPropertyDescriptor(r.data, '__proto__')?.value).toBe('p');
  });

  it('checks the value under __proto__ like any other (z.record would skip it)', () => {
    const r = strings.safeParse(JSON.parse('{"__proto__":{"polluted":true}}'));
    expect(r.success).toBe(false);
    expect(r.error?.issues.map((i) => [i.path, i.message])).toEqual([[['__proto__'], '__proto__ must be a string']]);
    expect(z.record(z.string(), z.string()).safeParse(JSON.parse('{"__proto__":{"polluted":true}}')).success).toBe(
      true,
    );
  });

  it.each([[null], [[]], ['x'], [5]])('refuses %j with its own message', (input) => {
    const r = strings.safeParse(input);
    expect(r.error?.issues.map((i) => [i.path, i.message])).toEqual([[[], 'must be an object of strings']]);
  });

  it('reports every refused value at its key, with the inner path, and zod wording when none is given', () => {
    const nested = ownRecordOf(ownRecordOf(z.number()));
    const r = nested.safeParse({ a: { x: 1, y: 'no' }, b: 3 });
    expect(r.error?.issues.map((i) => i.path)).toEqual([['a', 'y'], ['b']]);
    expect(r.error?.issues[0]?.message).toMatch(/number/);
  });

  it('reports the path inside an enclosing object', () => {
    const r = z.object({ attributes: strings }).safeParse({ attributes: { k: 1 } });
    expect(r.error?.issues.map((i) => [i.path, i.message])).toEqual([[['attributes', 'k'], 'k must be a string']]);
  });
});

describe('iotPolicyDocumentSchema', () => {
  it('is what parseIotPolicyDocument applies after a depth-bounded parse', () => {
    const text = '{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"a","Resource":"r"}}';
    expect(parseIotPolicyDocument(text)).toEqual({ ok: true, value: iotPolicyDocumentSchema.parse(JSON.parse(text)) });
    expect(parseIotPolicyDocument('{')).toMatchObject({ ok: false, reason: 'syntax' });
    expect(parseIotPolicyDocument(`${'['.repeat(10_000)}${']'.repeat(10_000)}`)).toMatchObject({
      ok: false,
      reason: 'depth',
    });
  });

  it('reports every problem with its path', () => {
    const r = parseIotPolicyDocument('{"Version":"1","Statement":[{"Effect":"Allow","Action":"a"},7]}');
    expect(r).toEqual({
      ok: false,
      reason: 'schema',
      issues: [
        { path: ['Version'], message: "Version must be '2012-10-17'." },
        {
          path: ['Statement', 0, 'Resource'],
          message: 'A statement must have exactly one of Resource and NotResource.',
        },
        { path: ['Statement', 1], message: 'A policy statement must be an object.' },
      ],
    });
  });
});
