import { IoTClient, type IoTClientConfig } from '@aws-sdk/client-iot';
import type { LocalCoreInfo } from '../../src/app/local-core.js';
import { localProfileCredentials } from '../../src/testing/in-process-core.js';

/**
 * Test harness: a local IoT Core on ephemeral ports in a temp data dir and real IoT SDK clients
 * (cloud's testing entry, src/testing/in-process-core.ts), plus clients with credentials of a
 * test's choosing (a wrong secret, an unknown key).
 */

export {
  type InProcessCore as RunningCore,
  removeDir,
  startInProcessCore as startCore,
  tempDir,
} from '../../src/testing/in-process-core.js';

/** Reads the generated credentials file (profile pifleet-local) into static credentials. */
export function credentialsFrom(file: string) {
  return localProfileCredentials({ credentialsFile: file })();
}

export function iotClient(
  info: LocalCoreInfo,
  credentials: IoTClientConfig['credentials'] = localProfileCredentials(info),
): IoTClient {
  return new IoTClient({ region: info.region, endpoint: info.http, credentials, maxAttempts: 1 });
}
