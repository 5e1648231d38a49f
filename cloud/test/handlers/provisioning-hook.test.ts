import type { PreProvisioningHookEvent } from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import {
  ALLOWED_SERIALS_ENV,
  createProvisioningHook,
  decideProvisioning,
  MAX_MODEL_CHARS,
  type ProvisioningDenialReason,
  parseAllowedSerials,
} from '../../src/handlers/provisioning-hook.js';
import { logSink } from '../log-sink.js';

/**
 * The default pre-provisioning hook, as IoT and the local core call it: events with the fields
 * AWS documents, then every hostile shape a claim certificate's holder (or a broken caller) can
 * send. Each denial is checked by its reason, each allow by the overrides IoT would apply.
 */

const PEM = '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUSECRET\n-----END CERTIFICATE-----\n';

function event(parameters: unknown, extra: Record<string, unknown> = {}): PreProvisioningHookEvent {
  return {
    claimCertificateId: 'c'.repeat(64),
    certificateId: 'd'.repeat(64),
    certificatePem: PEM,
    templateArn: 'arn:aws:iot:eu-west-1:123456789012:provisioningtemplate/pifleet-claim',
    clientId: 'pi-boot-1',
    parameters,
    ...extra,
  } as PreProvisioningHookEvent;
}

const reasonOf = (e: unknown, allowed?: string[]) => {
  const d = decideProvisioning(e, allowed === undefined ? {} : { allowedSerials: new Set(allowed) });
  return d.allow ? 'allowed' : d.reason;
};

describe('decideProvisioning: allow', () => {
  it('admits a Pi serial, lower-cased, with its model made attribute-safe and its MAC lower-cased', () => {
    const d = decideProvisioning(
      event({
        SerialNumber: '10000000ABCDEF01',
        Model: 'Raspberry Pi 4 Model B Rev 1.4',
        MacAddress: 'DC:A6:32:01:02:0A',
        Other: 'kept by IoT, not overridden',
      }),
    );
    expect(d).toEqual({
      allow: true,
      serialNumber: '10000000abcdef01',
      parameterOverrides: {
        SerialNumber: '10000000abcdef01',
        Model: 'Raspberry_Pi_4_Model_B_Rev_1.4',
        MacAddress: 'dc:a6:32:01:02:0a',
      },
    });
  });

  it.each([
    ['one character', 'a', 'a'],
    ['64 characters', 'A'.repeat(64), 'a'.repeat(64)],
    ['underscore and hyphen', 'Lab_Pi-07', 'lab_pi-07'],
    ['a name that is an Object.prototype key', 'constructor', 'constructor'],
    ['__proto__ as a value', '__proto__', '__proto__'],
  ])('admits %s', (_, serial, lower) => {
    const d = decideProvisioning(event({ SerialNumber: serial }));
    expect(d).toEqual({ allow: true, serialNumber: lower, parameterOverrides: { SerialNumber: lower } });
  });

  it('overrides only the facts it was given (absent Model and MacAddress keep the template defaults)', () => {
    const d = decideProvisioning(event({ SerialNumber: 'abc' }));
    expect(d.allow && Object.keys(d.parameterOverrides)).toEqual(['SerialNumber']);
  });

  it.each([
    ['hyphen-separated', '00-1A-2b-3C-4d-5E', '00:1a:2b:3c:4d:5e'],
    ['empty (a device without a network interface found)', '', ''],
  ])('takes a %s MAC', (_, mac, expected) => {
    const d = decideProvisioning(event({ SerialNumber: 'abc', MacAddress: mac }));
    expect(d.allow && d.parameterOverrides.MacAddress).toBe(expected);
  });

  it('replaces each run of characters an attribute value cannot hold with one underscore', () => {
    const d = decideProvisioning(event({ SerialNumber: 'abc', Model: '  Pi\t(Zero) 2 W\u00e9 ' }));
    expect(d.allow && d.parameterOverrides.Model).toBe('Pi_Zero_2_W_');
    expect(d.allow && d.parameterOverrides.Model).toMatch(/^[a-zA-Z0-9_.,@/:#=[\]-]*$/);
  });
});

describe('decideProvisioning: deny, never throw', () => {
  it.each<[string, unknown, ProvisioningDenialReason]>([
    ['undefined', undefined, 'EVENT_INVALID'],
    ['null', null, 'EVENT_INVALID'],
    ['a string', '{"parameters":{"SerialNumber":"abc"}}', 'EVENT_INVALID'],
    ['an array', [{ parameters: { SerialNumber: 'abc' } }], 'EVENT_INVALID'],
    ['no parameters', { clientId: 'x' }, 'PARAMETERS_INVALID'],
    ['parameters null', event(null), 'PARAMETERS_INVALID'],
    ['parameters an array', event(['abc']), 'PARAMETERS_INVALID'],
    ['parameters a string', event('SerialNumber=abc'), 'PARAMETERS_INVALID'],
    ['no SerialNumber', event({ Model: 'Pi' }), 'SERIAL_MISSING'],
    ['lower-case serialnumber only', event({ serialnumber: 'abc' }), 'SERIAL_MISSING'],
    ['a number', event({ SerialNumber: 1234 }), 'SERIAL_INVALID'],
    ['null', event({ SerialNumber: null }), 'SERIAL_INVALID'],
    ['an array', event({ SerialNumber: ['abc'] }), 'SERIAL_INVALID'],
    ['an object', event({ SerialNumber: { toString: () => 'abc' } }), 'SERIAL_INVALID'],
    ['a boolean', event({ SerialNumber: true }), 'SERIAL_INVALID'],
    ['empty', event({ SerialNumber: '' }), 'SERIAL_INVALID'],
    ['65 characters', event({ SerialNumber: 'a'.repeat(65) }), 'SERIAL_INVALID'],
    ['a colon (valid in a thing name, not in a serial)', event({ SerialNumber: 'a:b' }), 'SERIAL_INVALID'],
    ['a slash (would leave the thing name)', event({ SerialNumber: '../admin' }), 'SERIAL_INVALID'],
    ['a space', event({ SerialNumber: 'abc def' }), 'SERIAL_INVALID'],
    ['a trailing newline', event({ SerialNumber: 'abc\n' }), 'SERIAL_INVALID'],
    ['a NUL', event({ SerialNumber: 'abc\u0000' }), 'SERIAL_INVALID'],
    ['non-ASCII letters', event({ SerialNumber: 'ａｂｃ' }), 'SERIAL_INVALID'],
    ['an MQTT wildcard', event({ SerialNumber: '#' }), 'SERIAL_INVALID'],
    ['Model a number', event({ SerialNumber: 'abc', Model: 4 }), 'MODEL_INVALID'],
    ['Model too long', event({ SerialNumber: 'abc', Model: 'x'.repeat(MAX_MODEL_CHARS + 1) }), 'MODEL_INVALID'],
    ['MacAddress a number', event({ SerialNumber: 'abc', MacAddress: 0xdca632 }), 'MAC_ADDRESS_INVALID'],
    ['MacAddress five octets', event({ SerialNumber: 'abc', MacAddress: 'dc:a6:32:01:02' }), 'MAC_ADDRESS_INVALID'],
    [
      'MacAddress mixed separators',
      event({ SerialNumber: 'abc', MacAddress: 'dc:a6-32:01:02:0a' }),
      'MAC_ADDRESS_INVALID',
    ],
    ['MacAddress not hex', event({ SerialNumber: 'abc', MacAddress: 'zz:a6:32:01:02:0a' }), 'MAC_ADDRESS_INVALID'],
  ])('%s → %s', (_, e, reason) => {
    expect(reasonOf(e)).toBe(reason);
  });

  it('reads no inherited value: a SerialNumber reached through the prototype is missing', () => {
    // An in-process caller's object literal with a __proto__ key sets the prototype.
    const inherited = { __proto__: { SerialNumber: 'abc' } };
    expect((inherited as { SerialNumber?: string }).SerialNumber).toBe('abc');
    expect(reasonOf(event(inherited))).toBe('SERIAL_MISSING');
    // The parameters object itself inherited from a prototype holding them.
    expect(reasonOf(Object.create({ parameters: { SerialNumber: 'abc' } }))).toBe('PARAMETERS_INVALID');
  });

  it('a JSON "__proto__" key is data: it neither supplies the serial nor pollutes a prototype', () => {
    const parsed = JSON.parse('{"parameters":{"__proto__":{"SerialNumber":"abc","polluted":"yes"}}}') as unknown;
    expect(reasonOf(parsed)).toBe('SERIAL_MISSING');
    const withSerial = JSON.parse('{"parameters":{"SerialNumber":"abc","__proto__":{"isAdmin":"true"}}}') as unknown;
    const d = decideProvisioning(withSerial);
    expect(d).toEqual({ allow: true, serialNumber: 'abc', parameterOverrides: { SerialNumber: 'abc' } });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();
  });

  it('"constructor" and "toString" keys are not facts: the template sees only what was sent', () => {
    const d = decideProvisioning(event({ SerialNumber: 'abc', constructor: 'x', toString: 'y' }));
    expect(d).toEqual({ allow: true, serialNumber: 'abc', parameterOverrides: { SerialNumber: 'abc' } });
    expect(reasonOf(event({ constructor: { SerialNumber: 'abc' } }))).toBe('SERIAL_MISSING');
  });

  it('denies an event it cannot even read (a proxy that throws on every access)', () => {
    const hostile = new Proxy(
      {},
      {
        get: () => {
          throw new Error('boom');
        },
        getOwnPropertyDescriptor: () => {
          throw new Error('boom');
        },
        has: () => {
          throw new Error('boom');
        },
      },
    );
    expect(reasonOf(hostile)).toBe('EVENT_INVALID');
    expect(reasonOf(event(hostile))).toBe('EVENT_INVALID');
  });

  it('a 16 MB serial and a 100,000-deep value are denied without walking them', () => {
    expect(reasonOf(event({ SerialNumber: 'a'.repeat(16 * 1024 * 1024) }))).toBe('SERIAL_INVALID');
    let deep: unknown = 'abc';
    for (let i = 0; i < 100_000; i++) deep = { v: deep };
    expect(reasonOf(event({ SerialNumber: deep }))).toBe('SERIAL_INVALID');
    expect(reasonOf(event({ SerialNumber: 'abc', Model: deep }))).toBe('MODEL_INVALID');
  });
});

describe('allow-list', () => {
  it('admits the serials on it, in any case, and denies the rest', () => {
    const allowed = ['10000000abcdef01', 'lab_pi-07'];
    expect(reasonOf(event({ SerialNumber: '10000000ABCDEF01' }), allowed)).toBe('allowed');
    expect(reasonOf(event({ SerialNumber: 'LAB_PI-07' }), allowed)).toBe('allowed');
    expect(reasonOf(event({ SerialNumber: '10000000abcdef02' }), allowed)).toBe('SERIAL_NOT_ALLOWED');
  });

  it('is a set, not an object: Object.prototype names are not on it', () => {
    for (const serial of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
      expect(reasonOf(event({ SerialNumber: serial }), ['abc'])).toBe('SERIAL_NOT_ALLOWED');
    }
  });

  it.each([
    ['commas', 'aaa,BBB,ccc'],
    ['commas and spaces', ' aaa , BBB,ccc '],
    ['newlines', 'aaa\nBBB\r\nccc\n'],
    ['repeated separators and a duplicate', 'aaa,,BBB, ,ccc,aaa'],
  ])('parses %s', (_, value) => {
    expect(parseAllowedSerials(value)).toEqual(new Set(['aaa', 'bbb', 'ccc']));
  });

  it.each([
    ['absent', undefined],
    ['empty', ''],
    ['blank', ' \n\t'],
  ])('%s means no allow-list', (_, value) => {
    expect(parseAllowedSerials(value)).toBeUndefined();
  });

  it.each([
    ['set but naming no serial', ',', /names no serial/],
    ['an entry with a colon', 'aaa,b:b', /entry 2 is not a serial/],
    ['an entry too long', `aaa,bbb,${'c'.repeat(65)}`, /entry 3 is not a serial/],
    ['a semicolon-separated list', 'aaa;bbb', /entry 1 is not a serial/],
  ])('refuses a value %s, naming the variable', (_, value, message) => {
    let thrown: unknown;
    try {
      parseAllowedSerials(value);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toMatchObject({ name: 'HandlerConfigError', code: 'HANDLER_CONFIG' });
    expect(String((thrown as Error).message)).toContain(ALLOWED_SERIALS_ENV);
    expect(String((thrown as Error).message)).toMatch(message);
  });
});

describe('createProvisioningHook', () => {
  it('answers IoT’s result shape and logs the decision with its reason, never the PEM', async () => {
    const { logger, lines } = logSink();
    const hook = createProvisioningHook({ logger, env: { [ALLOWED_SERIALS_ENV]: 'abc' } });
    await expect(hook(event({ SerialNumber: 'ABC' }))).resolves.toEqual({
      allowProvisioning: true,
      parameterOverrides: { SerialNumber: 'abc' },
    });
    await expect(hook(event({ SerialNumber: 'abd' }))).resolves.toEqual({ allowProvisioning: false });
    const decisions = lines.filter((l) => l.component === 'provisioning-hook' && l.msg !== 'provisioning hook ready');
    expect(decisions).toEqual([
      expect.objectContaining({
        level: 30,
        msg: 'provisioning allowed',
        serialNumber: 'abc',
        clientId: 'pi-boot-1',
        certificateId: 'd'.repeat(64),
        templateArn: 'arn:aws:iot:eu-west-1:123456789012:provisioningtemplate/pifleet-claim',
      }),
      expect.objectContaining({
        level: 40,
        msg: 'provisioning denied',
        reason: 'SERIAL_NOT_ALLOWED',
        serialGiven: 'abd',
      }),
    ]);
    expect(lines.find((l) => l.msg === 'provisioning hook ready')).toMatchObject({
      allowList: 'configured',
      allowedSerials: 1,
    });
    const all = JSON.stringify(lines);
    expect(all).not.toContain('BEGIN CERTIFICATE');
    expect(all).not.toContain('SECRET');
  });

  it('a huge or non-string value is logged as a bounded preview or its type', async () => {
    const { logger, lines } = logSink();
    const hook = createProvisioningHook({ logger });
    await hook(event({ SerialNumber: 'x'.repeat(1_000_000) }, { clientId: 'y'.repeat(1_000_000) }));
    await hook(event({ SerialNumber: null }));
    const [huge, typed] = lines.filter((l) => l.msg === 'provisioning denied');
    expect(huge).toMatchObject({ reason: 'SERIAL_INVALID', serialGiven: `${'x'.repeat(80)}… (1000000 characters)` });
    expect(String(huge?.clientId)).toHaveLength(80 + '… (1000000 characters)'.length);
    expect(JSON.stringify(lines).length).toBeLessThan(5_000);
    expect(typed).toMatchObject({ reason: 'SERIAL_INVALID', serialType: 'null' });
  });

  it('never rejects: every hostile event resolves to a denial', async () => {
    const hook = createProvisioningHook();
    const hostile = [undefined, null, 42, 'x', [], { parameters: [] }, event({ SerialNumber: 1 })];
    for (const e of hostile) {
      await expect(hook(e as PreProvisioningHookEvent)).resolves.toEqual({ allowProvisioning: false });
    }
  });

  it('an allow-list given in code wins over the environment’s; an empty one admits nothing', async () => {
    const env = { [ALLOWED_SERIALS_ENV]: 'abc' };
    const coded = createProvisioningHook({ env, allowedSerials: ['XYZ'] });
    await expect(coded(event({ SerialNumber: 'xyz' }))).resolves.toMatchObject({ allowProvisioning: true });
    await expect(coded(event({ SerialNumber: 'abc' }))).resolves.toEqual({ allowProvisioning: false });
    const none = createProvisioningHook({ env, allowedSerials: [] });
    await expect(none(event({ SerialNumber: 'abc' }))).resolves.toEqual({ allowProvisioning: false });
  });

  it('without an allow-list it admits any well-formed serial', async () => {
    const { logger, lines } = logSink();
    const hook = createProvisioningHook({ env: {}, logger });
    await expect(hook(event({ SerialNumber: 'anything-1' }))).resolves.toMatchObject({ allowProvisioning: true });
    expect(lines.find((l) => l.msg === 'provisioning hook ready')).toMatchObject({ allowList: 'none' });
  });

  it('a malformed allow-list fails when the hook is built, not when a device asks', () => {
    expect(() => createProvisioningHook({ env: { [ALLOWED_SERIALS_ENV]: 'abc,pi#7' } })).toThrow(
      expect.objectContaining({ code: 'HANDLER_CONFIG' }),
    );
    expect(() => createProvisioningHook({ allowedSerials: ['ok', 'b/d'] })).toThrow(
      expect.objectContaining({ name: 'ProvisioningHookConfigError', code: 'HOOK_CONFIG' }),
    );
  });
});
