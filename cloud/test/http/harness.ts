import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IoTClient } from '@aws-sdk/client-iot';
import { fromIni } from '@aws-sdk/credential-provider-ini';
import { createLocalIotCore, type LocalCoreInfo, type LocalIotCore } from '../../src/app/local-core.js';
import { LOCAL_CORE_DEFAULTS } from '../../src/config/local-core.js';
import { LOCAL_PROFILE, readCredentialsFile } from '../../src/http/credentials.js';

/** Test harness: a local IoT Core on ephemeral ports in a temp data dir, and a real IoT SDK client. */

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `pifleet-${prefix}-`));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export interface RunningCore {
  readonly core: LocalIotCore;
  readonly info: LocalCoreInfo;
  readonly iot: IoTClient;
  stop(): Promise<void>;
}

/** Reads the generated credentials file the way any AWS SDK would (profile pifleet-local). */
export async function credentialsFrom(file: string) {
  const credentials = await readCredentialsFile(file, LOCAL_PROFILE);
  if (!credentials) throw new Error(`no [${LOCAL_PROFILE}] profile in ${file}`);
  return credentials;
}

/** The generated credentials file as any AWS SDK client reads it: profile pifleet-local of that file only. */
function localProfile(info: LocalCoreInfo) {
  return fromIni({ profile: LOCAL_PROFILE, filepath: info.credentialsFile, configFilepath: info.credentialsFile });
}

export function iotClient(
  info: LocalCoreInfo,
  credentials: { accessKeyId: string; secretAccessKey: string } | ReturnType<typeof fromIni> = localProfile(info),
): IoTClient {
  return new IoTClient({ region: info.region, endpoint: info.http, credentials, maxAttempts: 1 });
}

export async function startCore(dataDir: string): Promise<RunningCore> {
  const core = createLocalIotCore({
    config: { ...LOCAL_CORE_DEFAULTS, dataDir, mqttPort: 0, httpPort: 0 },
  });
  const info = await core.start();
  const iot = iotClient(info);
  return {
    core,
    info,
    iot,
    async stop() {
      iot.destroy();
      await core.stop();
    },
  };
}
