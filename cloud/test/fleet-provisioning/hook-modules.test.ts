import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PreProvisioningHookEvent } from '@pifleet/protocol';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/local-core.js';
import { loadHookModules } from '../../src/fleet-provisioning/hook-modules.js';
import { removeDir, tempDir } from '../../src/testing/in-process-core.js';

/** Operator-written hooks (`--hooks NAME=FILE`): real ES modules on disk, imported as the core does at start. */

const dir = tempDir('hook-modules');
afterAll(() => removeDir(dir));

const event: PreProvisioningHookEvent = {
  claimCertificateId: 'c'.repeat(64),
  certificateId: 'd'.repeat(64),
  certificatePem: '-----BEGIN CERTIFICATE-----',
  templateArn: 'arn:aws:iot:us-east-1:123456789012:provisioningtemplate/t',
  clientId: 'device-1',
  parameters: { SerialNumber: '00000000deadbeef' },
};

describe('loadHookModules', () => {
  it("imports each module once and calls its handler as Lambda would (event, context with the function's name)", async () => {
    writeFileSync(
      join(dir, 'serials.mjs'),
      `let loads = 0; loads++;
export async function handler(event, context) {
  return { allowProvisioning: event.parameters.SerialNumber.endsWith('beef'), parameterOverrides: { By: context.functionName, Loads: String(loads) } };
}`,
    );
    const hooks = await loadHookModules('serials=serials.mjs', dir);
    expect(Object.keys(hooks)).toEqual(['serials']);
    expect(await hooks.serials?.(event)).toEqual({
      allowProvisioning: true,
      parameterOverrides: { By: 'serials', Loads: '1' },
    });
    expect(await loadHookModules('')).toEqual({});
  });

  it.each([
    [
      'a file that does not exist',
      'missing=nowhere.mjs',
      undefined,
      /cannot load .*nowhere\.mjs \(ERR_MODULE_NOT_FOUND\)/,
    ],
    [
      'a module that throws as it loads',
      'broken=broken.mjs',
      'throw new Error("no config");',
      /cannot load .*broken\.mjs \(no config\)/,
    ],
    [
      'a module without a handler',
      'nohandler=nohandler.mjs',
      'export const handle = () => 1;',
      /no exported function 'handler'/,
    ],
    ['a syntax error', 'syntax=syntax.mjs', 'export async function handler( {', /cannot load .*syntax\.mjs/],
  ])('%s stops the core with a ConfigError (exit 78) naming the module', async (_label, spec, source, message) => {
    if (source !== undefined) writeFileSync(join(dir, spec.split('=')[1] as string), source);
    const loading = loadHookModules(spec, dir);
    await expect(loading).rejects.toBeInstanceOf(ConfigError);
    await expect(loadHookModules(spec, dir)).rejects.toThrow(message);
  });
});
