import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseLocalEndpoint } from '@pifleet/protocol';
import { afterAll, describe, expect, it } from 'vitest';
import { createLocalIotCore, localCorePaths, readLocalEndpoint } from '../../src/app/local-core.js';
import { LOCAL_CORE_DEFAULTS } from '../../src/config/local-core.js';
import { readCredentialsFile } from '../../src/http/credentials.js';
import { removeDir, tempDir } from '../http/harness.js';

/** The endpoint file: written by the core through the protocol's type, read back through its schema. */

const root = tempDir('local-endpoint');
afterAll(() => removeDir(root));

describe('the endpoint file of a local core', () => {
  it('holds the ready line while the core runs, and is gone when it stops', async () => {
    const dir = join(root, 'running');
    const core = createLocalIotCore({ config: { ...LOCAL_CORE_DEFAULTS, dataDir: dir, mqttPort: 0, httpPort: 0 } });
    expect(await readLocalEndpoint(dir)).toBeUndefined();
    const info = await core.start();
    try {
      expect(await readLocalEndpoint(dir)).toEqual(info);
      // What a tool needs next is where the endpoint says it is.
      expect(await readCredentialsFile(info.credentialsFile)).toEqual(core.services.credentials);
      expect(parseLocalEndpoint(JSON.stringify(info)).ok).toBe(true);
    } finally {
      await core.stop();
    }
    expect(existsSync(localCorePaths(dir).endpointFile)).toBe(false);
    expect(await readLocalEndpoint(dir)).toBeUndefined();
  });

  it('refuses a file that is not an endpoint, naming the file and every problem', async () => {
    const dir = join(root, 'broken');
    mkdirSync(dir, { recursive: true });
    const file = localCorePaths(dir).endpointFile;
    writeFileSync(file, JSON.stringify({ ready: true, http: 'http://127.0.0.1:1' }));
    await expect(readLocalEndpoint(dir)).rejects.toMatchObject({
      code: 'LOCAL_CORE_ENDPOINT_INVALID',
      message: expect.stringMatching(new RegExp(`^${file} is not a local IoT Core endpoint file: mqtt: .*; caFile: `)),
    });
    writeFileSync(file, '{');
    await expect(readLocalEndpoint(dir)).rejects.toMatchObject({
      message: expect.stringContaining(`${file} is not a local IoT Core endpoint file: $: not valid JSON`),
    });
  });
});
