import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IoTClient } from '@aws-sdk/client-iot';
import { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { createLocalIotCore, type LocalCoreInfo, type LocalIotCore, type LocalIotCoreDeps } from '../app/local-core.js';
import { LOCAL_CORE_DEFAULTS } from '../config/local-core.js';
import { LOCAL_PROFILE, readCredentialsFile } from '../http/credentials.js';
import type { JobsClock } from '../jobs/clock.js';
import type { Limits } from '../limits/quotas.js';
import type { ShadowStore } from '../shadow/store.js';

/**
 * The composed local IoT Core in-process, on ephemeral ports unless given, driven by the real
 * `@aws-sdk/client-iot` and `@aws-sdk/client-iot-data-plane` with the credentials of its generated
 * shared-credentials file, read by the AWS SDK's own profile loader as any AWS SDK reads them.
 * Cloud's suites use it directly; @pifleet/testkit extends it for every other package.
 */

export interface InProcessCore {
  readonly core: LocalIotCore;
  readonly info: LocalCoreInfo;
  readonly iot: IoTClient;
  readonly data: IoTDataPlaneClient;
  stop(): Promise<void>;
}

export interface InProcessCoreOptions {
  /** Ports to listen on (0 or absent: ephemeral), e.g. a restarted core on the ports its devices know. */
  readonly mqttPort?: number;
  readonly httpPort?: number;
  readonly wsPort?: number;
  readonly shadowStore?: () => ShadowStore;
  /** Attempts per SDK request (default 1: a test sees the first failure). */
  readonly maxAttempts?: number;
  /** Quotas to enforce (default: IoT Core's, as `pifleet-local-core` runs). */
  readonly limits?: Limits;
  /** The jobs service's clock and timers (a virtual clock drives rollouts and timeouts). */
  readonly jobsClock?: JobsClock;
  /** Pre-provisioning hooks by Lambda function name (see LocalIotCoreDeps.provisioningHooks). */
  readonly provisioningHooks?: LocalIotCoreDeps['provisioningHooks'];
  /** The silent-devices check's schedule and threshold (see LocalIotCoreDeps.silentCheck). */
  readonly silentCheck?: LocalIotCoreDeps['silentCheck'];
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `pifleet-${prefix}-`));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** A credentials provider for the core's `pifleet-local` profile, read from its shared-credentials file. */
export function localProfileCredentials(info: Pick<LocalCoreInfo, 'credentialsFile'>) {
  return async () => {
    const credentials = await readCredentialsFile(info.credentialsFile, LOCAL_PROFILE);
    if (!credentials) throw new Error(`no [${LOCAL_PROFILE}] profile in ${info.credentialsFile}`);
    return credentials;
  };
}

/** Control-plane and data-plane clients of a running core. */
export function sdkClients(info: LocalCoreInfo, maxAttempts = 1): { iot: IoTClient; data: IoTDataPlaneClient } {
  const common = { region: info.region, endpoint: info.http, credentials: localProfileCredentials(info), maxAttempts };
  return { iot: new IoTClient(common), data: new IoTDataPlaneClient(common) };
}

export async function startInProcessCore(dataDir: string, options: InProcessCoreOptions = {}): Promise<InProcessCore> {
  const core = createLocalIotCore({
    config: {
      ...LOCAL_CORE_DEFAULTS,
      dataDir,
      mqttPort: options.mqttPort ?? 0,
      httpPort: options.httpPort ?? 0,
      wsPort: options.wsPort ?? 0,
    },
    ...(options.shadowStore ? { shadowStore: options.shadowStore } : {}),
    ...(options.limits ? { limits: options.limits } : {}),
    ...(options.jobsClock ? { jobsClock: options.jobsClock } : {}),
    ...(options.provisioningHooks ? { provisioningHooks: options.provisioningHooks } : {}),
    ...(options.silentCheck ? { silentCheck: options.silentCheck } : {}),
  });
  const info = await core.start();
  const { iot, data } = sdkClients(info, options.maxAttempts);
  return {
    core,
    info,
    iot,
    data,
    async stop() {
      iot.destroy();
      data.destroy();
      await core.stop();
    },
  };
}
