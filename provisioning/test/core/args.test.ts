import { describe, expect, it } from 'vitest';
import {
  fleetThingNames,
  isFleetThing,
  parseAttributes,
  parseDesiredAssignments,
  parseDesiredJson,
  parsePositiveInt,
  parsePrefix,
  parseThingName,
} from '../../src/core/args.js';
import { CliError } from '../../src/errors.js';

const exitOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    if (err instanceof CliError) return err.exitCode;
    throw err;
  }
  return 0;
};

describe('thing names and prefixes', () => {
  it.each([
    ['pi-01', 0],
    ['a:b_c-d', 0],
    ['x'.repeat(128), 0],
    ['x'.repeat(129), 65],
    ['', 65],
    ['bad name', 65],
    ['pi/01', 65],
    ['pi.01', 65],
  ])('%s → exit %i', (name, code) => {
    expect(exitOf(() => parseThingName(name))).toBe(code);
  });

  it.each([
    ['lab', 0],
    ['lab-a', 0],
    ['', 65],
    ['la b', 65],
  ])('prefix %s → exit %i', (p, code) => {
    expect(exitOf(() => parsePrefix(p))).toBe(code);
  });

  it('fleet names are zero-padded to four digits or more and recognised by prefix', () => {
    expect(fleetThingNames('lab', 3)).toEqual(['lab-0001', 'lab-0002', 'lab-0003']);
    expect(fleetThingNames('lab', 12345).at(-1)).toBe('lab-12345');
    expect(isFleetThing('lab', 'lab-0001')).toBe(true);
    expect(isFleetThing('lab', 'lab-a-0001')).toBe(false);
    expect(isFleetThing('lab', 'lab-')).toBe(false);
    expect(isFleetThing('lab', 'labx-0001')).toBe(false);
  });

  it.each([
    ['10', 10],
    [' 7 ', 7],
  ])('positive int %s', (raw, n) => {
    expect(parsePositiveInt('--count', raw)).toBe(n);
  });
  it.each(['0', '-1', '1.5', 'ten', '2000000'])('rejects count %s with usage 64', (raw) => {
    expect(exitOf(() => parsePositiveInt('--count', raw))).toBe(64);
  });
});

describe('parseAttributes', () => {
  it('parses key=value pairs, values may contain =', () => {
    expect(parseAttributes(['room=lab', 'rack=a=1'])).toEqual({ room: 'lab', rack: 'a=1' });
  });
  it.each([['noequals'], ['=v'], ['bad key=v'], ['k=bad value'], ['k=1', 'k=2']])('rejects %j', (...pairs) => {
    expect(exitOf(() => parseAttributes(pairs))).toBe(65);
  });
});

describe('parseDesiredAssignments', () => {
  it('builds a nested document; values are JSON when they parse', () => {
    expect(
      parseDesiredAssignments([
        'sampling.bme280=5000',
        'outputs.relay=true',
        'outputs.led.1=false',
        'batch.maxReadings=100',
        'logLevel=debug',
      ]),
    ).toEqual({
      sampling: { bme280: 5000 },
      outputs: { relay: true, 'led.1': false },
      batch: { maxReadings: 100 },
      logLevel: 'debug',
    });
  });

  it('keeps null to clear a key', () => {
    expect(parseDesiredAssignments(['outputs.relay=null'])).toEqual({ outputs: { relay: null } });
  });

  it.each([
    [['sampling.bme280=5'], /at least 100/],
    [['outputs.relay=on'], /true \(on\) or false/],
    [['logLevel=loud'], /log level/],
    [['colour=red'], /colour/],
    [['batch.maxBytes=abc'], /maxBytes/],
    [['outputs=1', 'outputs.x=true'], /both a value and an object/],
    [['novalue'], /not key=value/],
    [['a.=1'], /invalid desired key/],
    [
      [`outputs.relay=${'['.repeat(10_000)}${']'.repeat(10_000)}`],
      /value of outputs\.relay: JSON is nested more than 64/,
    ],
  ])('rejects %j with a reason', (assignments, reason) => {
    let err: unknown;
    try {
      parseDesiredAssignments(assignments);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CliError);
    expect((err as CliError).exitCode).toBe(65);
    expect((err as Error).message).toMatch(reason);
  });

  it('needs at least one assignment (usage)', () => {
    expect(exitOf(() => parseDesiredAssignments([]))).toBe(64);
  });

  // Keys are the operator's data: `__proto__` must neither reach Object.prototype nor vanish.
  it.each([
    [['__proto__.polluted=1']],
    [['__proto__=1']],
    [['constructor.polluted=1']],
    [['outputs.__proto__=true']],
    [['outputs.relay=true', 'outputs.__proto__=true']],
  ])('%j never touches a prototype', (assignments) => {
    let result: unknown;
    let code = 0;
    try {
      result = parseDesiredAssignments(assignments);
    } catch (err) {
      if (!(err instanceof CliError)) throw err;
      code = err.exitCode;
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf({})).toBe(Object.prototype);
    expect(Object.hasOwn(Object.prototype, 'polluted')).toBe(false);
    // Either refused as bad input, or kept as the own key it was typed as.
    if (code === 0) expect(JSON.stringify(result)).toContain('__proto__');
    else expect(code).toBe(65);
  });

  it('a key typed twice through __proto__ is reported, not confused with the prototype', () => {
    expect(exitOf(() => parseAttributes(['__proto__=a']))).toBe(0);
    expect(Object.hasOwn(parseAttributes(['__proto__=a']), '__proto__')).toBe(true);
    expect(exitOf(() => parseAttributes(['__proto__=a', '__proto__=b']))).toBe(65);
  });
});

describe('parseDesiredJson', () => {
  it('accepts a valid document', () => {
    expect(parseDesiredJson('{"outputs":{"relay":true},"sampling":{"s1":1000}}')).toEqual({
      outputs: { relay: true },
      sampling: { s1: 1000 },
    });
  });
  it.each(['{not json', '[1,2]', '"x"', '{"outputs":{"relay":"yes"}}'])('rejects %s', (text) => {
    expect(exitOf(() => parseDesiredJson(text))).toBe(65);
  });

  it('rejects a deeply nested document as bad input before anything recurses into it', () => {
    const deep = `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`;
    expect(exitOf(() => parseDesiredJson(`{"outputs":${deep}}`))).toBe(65);
    expect(() => parseDesiredJson(deep)).toThrow(/nested more than/);
  });

  it('a __proto__ key stays data and never reaches a prototype', () => {
    expect(exitOf(() => parseDesiredJson('{"__proto__":{"polluted":1},"outputs":{"__proto__":true}}'))).toBe(65);
    expect(Object.hasOwn(Object.prototype, 'polluted')).toBe(false);
    expect(Object.getPrototypeOf({})).toBe(Object.prototype);
  });
});
