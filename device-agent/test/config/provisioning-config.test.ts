import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { MAX_PROVISIONING_PARAMETERS, provisioningConfigSchema } from '../../src/config/schema.js';

/** The config's `provisioning` section (fleet provisioning by claim), through the agent's loader. */

const base = {
  thingName: 'pi-01',
  endpoint: 'abc-ats.iot.eu-west-1.amazonaws.com',
  certFile: '/etc/pifleet/cert.pem',
  keyFile: '/etc/pifleet/key.pem',
};
const section = {
  templateName: 'pifleet-claim',
  claimCertFile: '/etc/pifleet/claim.pem',
  claimKeyFile: '/etc/pifleet/claim.key',
};

const issuesOf = (provisioning: unknown) => {
  const r = loadConfig({ fileText: JSON.stringify({ ...base, provisioning }) });
  return r.ok ? [] : r.issues;
};

describe('the provisioning section', () => {
  it('is optional, and defaults the method to csr and the timeout to 300 s', () => {
    const without = loadConfig({ fileText: JSON.stringify(base) });
    expect(without.ok && without.value.provisioning).toBe(undefined);
    const r = loadConfig({ fileText: JSON.stringify({ ...base, provisioning: section }) });
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    expect(r.value.provisioning).toEqual({ ...section, method: 'csr', timeoutSeconds: 300 });
    expect(Object.isFrozen(r.value.provisioning)).toBe(true);
  });

  it('keeps parameters as a null-prototype map of strings', () => {
    const r = loadConfig({
      fileText: JSON.stringify({
        ...base,
        provisioning: { ...section, method: 'create-keys', parameters: { Model: 'x', SerialNumber: '' } },
      }),
    });
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    const params = r.value.provisioning?.parameters;
    expect({ ...params }).toEqual({ Model: 'x', SerialNumber: '' });
    expect(Object.getPrototypeOf(params)).toBe(null);
  });

  it.each([
    ['no template', { claimCertFile: 'c', claimKeyFile: 'k' }, 'provisioning.templateName', /required/],
    [
      'a template name with a slash',
      { ...section, templateName: 'a/b' },
      'provisioning.templateName',
      /1-36 characters/,
    ],
    [
      'a template name of 37 characters',
      { ...section, templateName: 'a'.repeat(37) },
      'provisioning.templateName',
      /1-36/,
    ],
    [
      'an empty claim certificate path',
      { ...section, claimCertFile: '' },
      'provisioning.claimCertFile',
      /must not be empty/,
    ],
    ['no claim key', { templateName: 't', claimCertFile: 'c' }, 'provisioning.claimKeyFile', /string/],
    ['an unknown method', { ...section, method: 'jitp' }, 'provisioning.method', /"csr" or "create-keys"/],
    ['an unknown key', { ...section, extra: 1 }, 'provisioning', /extra/],
    ['a timeout of 5 s', { ...section, timeoutSeconds: 5 }, 'provisioning.timeoutSeconds', /at least 10/],
    ['parameters that are a list', { ...section, parameters: ['a'] }, 'provisioning.parameters', /object of strings/],
    [
      'a number as a parameter value',
      { ...section, parameters: { SerialNumber: 1 } },
      'provisioning.parameters.SerialNumber',
      /string/,
    ],
    [
      'a nested parameter',
      { ...section, parameters: { Model: { a: 'b' } } },
      'provisioning.parameters.Model',
      /string/,
    ],
    ['an empty parameter name', { ...section, parameters: { '': 'x' } }, 'provisioning.parameters[""]', /1 to 2048/],
    [
      'a value over 4,096 characters',
      { ...section, parameters: { Model: 'x'.repeat(4097) } },
      'provisioning.parameters.Model',
      /4096/,
    ],
    [
      'a constructor key',
      { ...section, parameters: { constructor: 'x' } },
      'provisioning.parameters.constructor',
      /not a parameter name/,
    ],
    ['the section as a string', 'pifleet-claim', 'provisioning', /object/],
  ])('refuses %s, naming the path', (_label, provisioning, path, message) => {
    const issues = issuesOf(provisioning);
    expect(issues).toContainEqual({ path, message: expect.stringMatching(message) });
  });

  it('refuses a __proto__ parameter key (which z.record would drop without a word)', () => {
    const text = `{"thingName":"pi-01","endpoint":"h","certFile":"c","keyFile":"k","provisioning":{"templateName":"t","claimCertFile":"c","claimKeyFile":"k","parameters":{"__proto__":{"polluted":"yes"},"Model":"x"}}}`;
    const r = loadConfig({ fileText: text });
    expect(r.ok).toBe(false);
    expect(r.ok ? [] : r.issues).toContainEqual({
      path: 'provisioning.parameters.__proto__',
      message: expect.stringMatching(/not a parameter name/),
    });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it(`refuses more than ${MAX_PROVISIONING_PARAMETERS} parameters`, () => {
    const parameters = Object.fromEntries(
      Array.from({ length: MAX_PROVISIONING_PARAMETERS + 1 }, (_, i) => [`p${i}`, 'v']),
    );
    expect(provisioningConfigSchema.safeParse({ ...section, parameters }).success).toBe(false);
    const fewer = Object.fromEntries(Object.entries(parameters).slice(1));
    expect(provisioningConfigSchema.safeParse({ ...section, parameters: fewer }).success).toBe(true);
  });
});
