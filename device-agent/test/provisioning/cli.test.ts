import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EXIT } from '@pifleet/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliIo, runCli } from '../../src/main.js';
import { makePki, type TestPki } from '../transport/tls-broker.js';

/**
 * `pifleet-agent provision` and `check-config` on an image's config, in process, for everything
 * decided before a connection is made: the config and the claim files are refused with every
 * problem and its path (exit 78), the command line with 64, and nothing is written. Provisioning
 * itself, against the local core, is in test/e2e/agent-provisioning.test.ts.
 */

const dir = mkdtempSync(path.join(os.tmpdir(), 'pifleet-provision-cli-'));
let claim: TestPki;
let other: TestPki;
beforeAll(async () => {
  [claim, other] = await Promise.all([makePki('claim'), makePki('other')]);
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  claim?.cleanup();
  other?.cleanup();
});

const io = (env: Record<string, string> = {}) => {
  const out: string[] = [];
  const err: string[] = [];
  const value: CliIo = { stdout: (t) => out.push(t), stderr: (t) => err.push(t), env };
  return { io: value, out: () => out.join(''), err: () => err.join('') };
};

let n = 0;
/** An image's config: a provisioning section and no thing name; `patch` replaces or adds keys. */
function imageConfig(patch: Record<string, unknown> = {}, section: Record<string, unknown> = {}): string {
  const caseDir = path.join(dir, `case-${++n}`);
  const file = path.join(dir, `agent-${n}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      endpoint: '127.0.0.1',
      port: 1,
      certFile: path.join(caseDir, 'cert.pem'),
      keyFile: path.join(caseDir, 'key.pem'),
      caFile: claim.caFile,
      hardware: 'none',
      provisioning: {
        templateName: 'pifleet-claim',
        claimCertFile: claim.certFile,
        claimKeyFile: claim.keyFile,
        ...section,
      },
      ...patch,
    }),
  );
  return file;
}

const provision = async (...args: string[]) => {
  const c = io();
  const code = await runCli(['provision', ...args], c.io);
  return { code, out: c.out(), err: c.err() };
};

describe('pifleet-agent check-config on an image (not provisioned yet)', () => {
  it('is ok without a thing name or device certificate, and says it provisions on first run', async () => {
    const file = imageConfig();
    const c = io();
    expect(await runCli(['check-config', file], c.io)).toBe(EXIT.ok);
    expect(c.out()).toMatch(
      /ok, not provisioned yet \(template pifleet-claim, csr, claim certificate .+\): `pifleet-agent run` provisions it first/,
    );
    const j = io();
    expect(await runCli(['check-config', file, '--json'], j.io)).toBe(EXIT.ok);
    expect(JSON.parse(j.out())).toEqual({ ok: true, provisioned: false, templateName: 'pifleet-claim', method: 'csr' });
  });

  it('refuses a claim key of another pair and a missing claim certificate, each under its own path', async () => {
    const file = imageConfig({}, { claimKeyFile: other.keyFile });
    const c = io();
    expect(await runCli(['check-config', file], c.io)).toBe(EXIT.config);
    expect(c.err()).toMatch(/provisioning\.claimKeyFile: .* is not the private key of/);
    const missing = imageConfig({}, { claimCertFile: path.join(dir, 'nope.pem') });
    const m = io();
    expect(await runCli(['check-config', missing], m.io)).toBe(EXIT.config);
    expect(m.err()).toMatch(/provisioning\.claimCertFile: .*nope\.pem does not exist/);
  });
});

describe('pifleet-agent provision before it connects', () => {
  it('a config without a provisioning section: 78, and how to add one', async () => {
    const file = imageConfig({ provisioning: undefined, thingName: 'pi-1' });
    const r = await provision('--config', file);
    expect(r.code).toBe(EXIT.config);
    expect(r.err).toMatch(/provisioning: the config has no provisioning section: add one/);
  });

  it('reports every problem at once, flags included, and writes nothing', async () => {
    const file = imageConfig({ port: 70_000 }, { method: 'jitp', parameters: { SerialNumber: 7 } });
    const before = readFileSync(file, 'utf8');
    const r = await provision('--config', file, '--template', 'bad/name');
    expect(r.code).toBe(EXIT.config);
    for (const p of [
      'port',
      'provisioning.templateName',
      'provisioning.method',
      'provisioning.parameters.SerialNumber',
    ])
      expect(r.err).toContain(`  ${p}: `);
    expect(readFileSync(file, 'utf8')).toBe(before);
  });

  it('a world-readable claim key is refused (chmod 600)', async () => {
    const key = path.join(dir, 'open-claim.key');
    writeFileSync(key, readFileSync(claim.keyFile));
    chmodSync(key, 0o644);
    const r = await provision('--config', imageConfig(), '--claim-key', key);
    expect(r.code).toBe(EXIT.config);
    expect(r.err).toMatch(/provisioning\.claimKeyFile: .*chmod 600/);
  });

  it('a certFile where nothing can be written (under a file) is refused before connecting', async () => {
    const blocker = path.join(dir, 'a-file');
    writeFileSync(blocker, 'x');
    const file = imageConfig({ certFile: path.join(blocker, 'cert.pem') });
    const r = await provision('--config', file);
    expect(r.code).toBe(EXIT.config);
    expect(r.err).toMatch(/certFile: .*a-file is not a directory/);
  });

  it.each([
    [['--csr', '--create-keys'], /exclude each other/],
    [['--param', 'SerialNumber'], /use NAME=VALUE/],
    [['--param', '=x'], /use NAME=VALUE/],
    [['--timeout', 'soon'], /whole number of seconds/],
    [['--transport', 'carrier-pigeon'], /crt or mqttjs/],
  ])('%j is a usage error (64)', async (args, message) => {
    const r = await provision('--config', imageConfig(), ...args);
    expect(r.code).toBe(EXIT.usage);
    expect(r.err).toMatch(message);
  });

  it('a __proto__ --param is refused as a parameter name, not merged into a prototype', async () => {
    const r = await provision('--config', imageConfig(), '--param', '__proto__=x');
    expect(r.code).toBe(EXIT.config);
    expect(r.err).toMatch(/provisioning\.parameters\.__proto__: "__proto__" is not a parameter name/);
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });

  it('--timeout below 10 s is refused with the range', async () => {
    const r = await provision('--config', imageConfig(), '--timeout', '1');
    expect(r.code).toBe(EXIT.config);
    expect(r.err).toMatch(/provisioning\.timeoutSeconds: timeoutSeconds must be at least 10/);
  });

  it('a config that is not JSON: 78 naming the file', async () => {
    const file = path.join(dir, 'broken.json');
    writeFileSync(file, '{"endpoint":');
    const r = await provision('--config', file);
    expect(r.code).toBe(EXIT.config);
    expect(r.err).toMatch(/broken\.json is not valid JSON/);
  });

  it('a provisioned device is left alone', async () => {
    const file = imageConfig({ thingName: 'pi-done', certFile: claim.certFile, keyFile: claim.keyFile });
    const r = await provision('--config', file);
    expect(r.code).toBe(EXIT.ok);
    expect(r.out).toMatch(/already provisioned as pi-done \(nothing done; --force provisions again\)/);
    expect(existsSync(path.join(dir, `case-${n}`))).toBe(false);
  });
});
