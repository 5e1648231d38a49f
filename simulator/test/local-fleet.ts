import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { type FleetIdentity, provisionLocalFleet } from '../src/fleet/provision.js';
import { type LocalTarget, startLocalTarget } from '../src/fleet/target.js';

/**
 * The local IoT Core a test file's suites share, with `thingNames` provisioned in it (certificates
 * under `certs/`, the core's data under `core/`, both in a temp dir `<prefix>*`): started before
 * the suites (`onStarted` receives the core and the identities, in `thingNames` order), stopped
 * after them and the dir removed.
 */
export function localFleetForFile(
  prefix: string,
  thingNames: readonly string[],
  onStarted: (fleet: { readonly target: LocalTarget; readonly identities: readonly FleetIdentity[] }) => void,
): void {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  let target: LocalTarget | undefined;
  beforeAll(async () => {
    target = await startLocalTarget({ dataDir: path.join(dir, 'core') });
    const s = target.services;
    const { identities } = await provisionLocalFleet({
      registry: s.registry,
      ca: s.ca,
      region: s.account.region,
      accountId: s.account.accountId,
      dir: path.join(dir, 'certs'),
      thingNames,
    });
    onStarted({ target, identities });
  });
  afterAll(async () => {
    await target?.stop();
    rmSync(dir, { recursive: true, force: true });
  });
}
