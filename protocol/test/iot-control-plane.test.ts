import { afterEach, describe, expect, it } from 'vitest';
import {
  createThingBodySchema,
  optionalIntegerField,
  requiredStringField,
  updateThingBodySchema,
  validateWith,
} from '../src/index.js';

/** The control-plane bodies the local IoT Core reads: values, and the first problem's message. */

const first = (r: { ok: boolean; issues?: readonly { message: string }[] }) => r.issues?.[0]?.message;

afterEach(() => {
  expect(Object.keys(Object.prototype)).toEqual([]);
});

describe('control-plane fields', () => {
  it.each<[unknown, number | undefined]>([
    [undefined, undefined],
    [null, undefined],
    [3, 3],
    ['42', 42],
    [' 7 ', 7],
    [-1, -1],
  ])('an integer field reads %j as %j', (input, value) => {
    expect(validateWith(optionalIntegerField('n'), input)).toEqual({ ok: true, value });
  });

  it.each([[''], ['  '], ['1.5'], [1.5], [2 ** 53], [true], [{}], ['x']])('an integer field refuses %j', (input) => {
    expect(first(validateWith(optionalIntegerField('n'), input))).toBe("'n' must be an integer.");
  });

  it.each<[unknown, string]>([
    [undefined, "'f' is required."],
    [null, "'f' is required."],
    ['', "'f' is required."],
    [5, "'f' must be a string."],
    [['x'], "'f' must be a string."],
  ])('a required string refuses %j: %s', (input, message) => {
    expect(first(validateWith(requiredStringField('f'), input))).toBe(message);
  });
});

describe('CreateThing and UpdateThing bodies', () => {
  it('reads an empty body as nothing given', () => {
    expect(validateWith(createThingBodySchema, {})).toEqual({
      ok: true,
      value: { thingTypeName: undefined, billingGroupName: undefined, attributePayload: undefined },
    });
  });

  it('keeps attribute names as own keys, __proto__ included', () => {
    const r = validateWith(
      updateThingBodySchema,
      JSON.parse('{"attributePayload":{"attributes":{"__proto__":"p"},"merge":true},"expectedVersion":2}'),
    );
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const attributes = r.value.attributePayload?.attributes ?? {};
    expect(Object.getPrototypeOf(attributes)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(attributes, '__proto__')?.value).toBe('p');
    expect(r.value.attributePayload?.merge).toBe(true);
    expect(r.value.expectedVersion).toBe(2);
  });

  it('names the first problem in wire order', () => {
    const r = validateWith(updateThingBodySchema, {
      thingTypeName: 1,
      attributePayload: { merge: 'yes', attributes: { a: 1 } },
      expectedVersion: 'x',
    });
    expect(r.ok ? [] : r.issues.map((i) => i.message)).toEqual([
      "'thingTypeName' must be a string.",
      "'attributePayload.merge' must be a boolean.",
      "Attribute 'a' must be a string.",
      "'expectedVersion' must be an integer.",
    ]);
  });
});
