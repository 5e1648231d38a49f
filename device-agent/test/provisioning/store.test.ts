import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  configWithThingName,
  removeStaleCertificate,
  type StoreStep,
  storeIdentity,
} from '../../src/provisioning/store.js';

/**
 * Storing a provisioned identity on a real file system: modes, atomic replacement, and what a crash
 * after each step leaves (each step then stops the store, as a kill would).
 */

const root = mkdtempSync(path.join(os.tmpdir(), 'pifleet-store-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => {
  const dir = path.join(root, `case-${++n}`);
  return { dir, file: (name: string) => path.join(dir, name) };
};
const mode = (file: string) => statSync(file).mode & 0o777;

describe('configWithThingName', () => {
  it('puts thingName first and keeps the rest as it was', () => {
    const text = JSON.stringify({ endpoint: 'h', provisioning: { templateName: 't' }, thingName: 'old' });
    expect(JSON.parse(configWithThingName(text, 'pi-1'))).toEqual({
      thingName: 'pi-1',
      endpoint: 'h',
      provisioning: { templateName: 't' },
    });
    expect(Object.keys(JSON.parse(configWithThingName(text, 'pi-1')))[0]).toBe('thingName');
  });

  it('keeps a __proto__ key as data, without touching any prototype', () => {
    const out = configWithThingName('{"__proto__":{"polluted":1},"a":1}', 'pi-1');
    expect(out).toContain('"__proto__"');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('refuses a config that is not an object', () => {
    expect(() => configWithThingName('[1]', 'pi-1')).toThrow(TypeError);
  });
});

class Crash extends Error {}

describe('storeIdentity', () => {
  const identity = { thingName: 'pi-10000000e1f2a3b4', certificatePem: 'CERT', privateKeyPem: 'KEY' };
  const setup = () => {
    const { dir, file } = fresh();
    mkdirSync(dir);
    const configText = `${JSON.stringify({ endpoint: 'h', certFile: file('cert.pem'), keyFile: file('key.pem') })}\n`;
    writeFileSync(file('agent.json'), configText, { mode: 0o640 });
    return {
      dir,
      files: { configFile: file('agent.json'), configText, certFile: file('cert.pem'), keyFile: file('key.pem') },
    };
  };
  const provisioned = (f: { configFile: string; certFile: string }) =>
    existsSync(f.certFile) && typeof JSON.parse(readFileSync(f.configFile, 'utf8')).thingName === 'string';

  it('writes the key 0600, the config with thingName (its mode kept), and the certificate', async () => {
    const { dir, files } = setup();
    await storeIdentity(files, identity);
    expect(readFileSync(files.keyFile, 'utf8')).toBe('KEY');
    expect(mode(files.keyFile)).toBe(0o600);
    expect(readFileSync(files.certFile, 'utf8')).toBe('CERT');
    expect(JSON.parse(readFileSync(files.configFile, 'utf8'))).toMatchObject({
      thingName: identity.thingName,
      endpoint: 'h',
    });
    expect(mode(files.configFile)).toBe(0o600);
    expect(readdirSync(dir).sort()).toEqual(['agent.json', 'cert.pem', 'key.pem']);
  });

  it('makes the key 0600 under a permissive umask, and replaces a world-readable key with a 0600 one', async () => {
    const { files } = setup();
    writeFileSync(files.keyFile, 'OLD', { mode: 0o644 });
    const old = process.umask(0);
    try {
      await storeIdentity(files, identity);
    } finally {
      process.umask(old);
    }
    expect(mode(files.keyFile)).toBe(0o600);
    expect(readFileSync(files.keyFile, 'utf8')).toBe('KEY');
  });

  it('creates the directories of the key and certificate when they are missing', async () => {
    const { files, dir } = setup();
    const nested = { ...files, keyFile: path.join(dir, 'a/b/key.pem'), certFile: path.join(dir, 'c/cert.pem') };
    await storeIdentity(nested, identity);
    expect(readFileSync(nested.keyFile, 'utf8')).toBe('KEY');
    expect(readFileSync(nested.certFile, 'utf8')).toBe('CERT');
  });

  it.each<StoreStep>(['stale-certificate', 'key', 'config'])(
    'a crash after the %s step leaves a device that is not provisioned (it provisions again), with no certificate to mismatch',
    async (stop) => {
      const { files } = setup();
      // A device provisioned before, being provisioned again (its config lost its thingName).
      writeFileSync(files.certFile, 'EARLIER-CERT');
      await expect(
        storeIdentity(files, identity, (step) => {
          if (step === stop) throw new Crash(step);
        }),
      ).rejects.toBeInstanceOf(Crash);
      expect(existsSync(files.certFile)).toBe(false);
      expect(provisioned(files)).toBe(false);
      // The next run provisions again and finishes.
      await storeIdentity(files, { ...identity, privateKeyPem: 'KEY2', certificatePem: 'CERT2' });
      expect(provisioned(files)).toBe(true);
      expect(readFileSync(files.keyFile, 'utf8')).toBe('KEY2');
      expect(readFileSync(files.certFile, 'utf8')).toBe('CERT2');
    },
  );

  it('after the last step the device is provisioned', async () => {
    const { files } = setup();
    const steps: StoreStep[] = [];
    await storeIdentity(files, identity, (s) => {
      steps.push(s);
    });
    expect(steps).toEqual(['stale-certificate', 'key', 'config', 'certificate']);
    expect(provisioned(files)).toBe(true);
  });
});

describe('removeStaleCertificate', () => {
  it('removes a certificate and says so; none there is not an error', async () => {
    const { dir, file } = fresh();
    mkdirSync(dir);
    writeFileSync(file('cert.pem'), 'x');
    expect(await removeStaleCertificate(file('cert.pem'))).toBe(true);
    expect(existsSync(file('cert.pem'))).toBe(false);
    expect(await removeStaleCertificate(file('cert.pem'))).toBe(false);
  });
});
