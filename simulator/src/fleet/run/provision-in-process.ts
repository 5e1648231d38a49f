import { loadOrCreateCa, localCorePaths, openSqliteRegistry } from '@pifleet/cloud';
import { deprovisionLocalFleet, type FleetIdentity, provisionLocalFleet } from '../provision.js';
import type { FleetResult } from '../result.js';
import { provisioningSummary } from '../summary.js';
import type { LocalTarget } from '../target.js';

interface Account {
  readonly region: string;
  readonly accountId: string;
}

/**
 * Provisions the fleet in this process, straight into the core's registry and CA: the running
 * in-process core's, or a core's files in `dataDir` (the external target).
 */
export async function provisionInProcess(opts: {
  readonly dataDir: string;
  readonly certDir: string;
  readonly local: LocalTarget | undefined;
  readonly account: Account;
  readonly names: readonly string[];
  readonly say: (line: string, final: boolean) => void;
}): Promise<{ identities: readonly FleetIdentity[]; provisioning: NonNullable<FleetResult['provisioning']> }> {
  const { dataDir, local, account, names, say } = opts;
  say(`provisioning ${names.length} devices (EC P-256, in process)`, true);
  const paths = localCorePaths(dataDir);
  const registry = local?.services.registry ?? openSqliteRegistry({ file: paths.registryFile, account, now: Date.now });
  const ca = local?.services.ca ?? (await loadOrCreateCa({ dir: paths.caDir, now: Date.now }));
  try {
    const prov = await provisionLocalFleet({
      registry,
      ca,
      region: account.region,
      accountId: account.accountId,
      dir: opts.certDir,
      thingNames: names,
      onProgress: (n) => {
        if (n % 500 === 0 || n === names.length) say(`provisioned ${n}/${names.length}`, n === names.length);
      },
    });
    return {
      identities: prov.identities,
      provisioning: provisioningSummary(prov.seconds, names.length, prov.keyType, dataDir),
    };
  } finally {
    if (!local) registry.close();
  }
}

/** Removes what `provisionInProcess` made: things, certificates, their files. */
export async function removeProvisioned(opts: {
  readonly dataDir: string;
  readonly certDir: string;
  readonly account: Account;
  readonly identities: readonly FleetIdentity[];
}): Promise<FleetResult['cleanup']> {
  const registry = openSqliteRegistry({
    file: localCorePaths(opts.dataDir).registryFile,
    account: opts.account,
    now: Date.now,
  });
  try {
    const r = await deprovisionLocalFleet({
      registry,
      identities: opts.identities,
      policyName: 'pifleet-device',
      dir: opts.certDir,
    });
    return { ...r, kept: false };
  } finally {
    registry.close();
  }
}
