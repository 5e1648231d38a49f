import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadOrCreateCa } from '@pifleet/cloud';
import { EXIT } from '@pifleet/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { simulatedConfigInput } from '../../src/agents/simulated-device.js';
import { runSimCli } from '../../src/cli.js';
import { writeCredential } from '../helpers.js';

let dir: string;
let files: { certFile: string; keyFile: string; otherKeyFile: string; caFile: string };
beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'pifleet-sim-agent-'));
  const ca = await loadOrCreateCa({ dir: path.join(dir, 'ca'), now: Date.now });
  const [mine, other] = await Promise.all([ca.createKeysAndCertificate(), ca.createKeysAndCertificate()]);
  const write = (name: string, text: string) => writeCredential(dir, name, text);
  files = {
    certFile: write('cert.pem', mine.certificatePem),
    keyFile: write('key.pem', mine.privateKeyPem),
    otherKeyFile: write('other-key.pem', other.privateKeyPem),
    caFile: ca.caFile,
  };
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('pifleet-sim agent', () => {
  it('checks the config and its files as pifleet-agent run does: 78 for a key from another pair, before connecting', async () => {
    const config = simulatedConfigInput({
      thingName: 'sim-agent-key',
      endpoint: '127.0.0.1',
      port: 1,
      certFile: files.certFile,
      keyFile: files.otherKeyFile,
      caFile: files.caFile,
      outboxPath: dir,
    });
    const file = path.join(dir, 'agent.json');
    writeFileSync(file, JSON.stringify(config));
    let stderr = '';
    const code = await runSimCli(['agent', '--config', file], {
      stdout: () => undefined,
      stderr: (t) => {
        stderr += t;
      },
      env: {},
      waitForStop: () => new Promise(() => undefined),
    });
    expect(code).toBe(EXIT.config);
    expect(stderr).toMatch(/keyFile: .* is not the private key of/);
    expect(stderr).toMatch(/outbox\.path: .* is a directory/);
  });
});
