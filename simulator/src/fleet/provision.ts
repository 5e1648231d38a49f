import { webcrypto } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { LocalCa, Registry } from '@pifleet/cloud';
import { RECOMMENDED_POLICY_NAME, recommendedDevicePolicy } from '@pifleet/protocol';
import { SimulatorError } from '../errors.js';
import * as x509 from './x509.js';

/** One provisioned simulated device: its thing, its certificate and the files the agent reads. */
export interface FleetIdentity {
  readonly thingName: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly certificateId: string;
  readonly certificateArn: string;
}

export interface ProvisionResult {
  readonly identities: readonly FleetIdentity[];
  /** Wall-clock seconds for keys, certificates, registry entries and files. */
  readonly seconds: number;
  readonly keyType: 'EC P-256';
  readonly policyName: string;
}

export interface LocalProvisionDeps {
  readonly registry: Registry;
  readonly ca: LocalCa;
  readonly region: string;
  readonly accountId: string;
  /** Directory for `{thing}.cert.pem` / `{thing}.key.pem`. */
  readonly dir: string;
  readonly thingNames: readonly string[];
  /** Keys and certificates made at once. Default 16. */
  readonly concurrency?: number;
  readonly onProgress?: (done: number) => void;
}

const crypto = webcrypto as unknown as webcrypto.Crypto;
const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;

/**
 * Fast-path provisioning on the local IoT Core, in process: for each thing an EC P-256 key pair
 * (generated here, as a device would), a CSR signed with it, a certificate from the core's CA
 * through CreateCertificateFromCsr's code path (`ca.certificateFromCsr`), the certificate registered
 * ACTIVE, the thing created, and the recommended device policy attached to the certificate, the
 * same records `pifleet things create` makes through the control plane. RSA-2048 keys would cost
 * 70–300 ms each to generate; P-256 costs well under a millisecond.
 */
export async function provisionLocalFleet(deps: LocalProvisionDeps): Promise<ProvisionResult> {
  const started = performance.now();
  await mkdir(deps.dir, { recursive: true, mode: 0o700 });
  const policyName = RECOMMENDED_POLICY_NAME;
  try {
    deps.registry.getPolicy(policyName);
  } catch {
    deps.registry.createPolicy(policyName, JSON.stringify(recommendedDevicePolicy(deps.region, deps.accountId)));
  }
  const out: FleetIdentity[] = new Array(deps.thingNames.length);
  let next = 0;
  let done = 0;
  const one = async (thingName: string): Promise<FleetIdentity> => {
    const keys = (await crypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const csr = await x509.Pkcs10CertificateRequestGenerator.create(
      { name: `CN=${thingName}`, keys, signingAlgorithm: SIGN },
      crypto,
    );
    const certificatePem = await deps.ca.certificateFromCsr(csr.toString('pem'));
    const cert = deps.registry.registerCertificate({ certificatePem, status: 'ACTIVE' });
    deps.registry.createThing({ thingName });
    deps.registry.attachThingPrincipal(thingName, cert.certificateArn);
    deps.registry.attachPolicy(policyName, cert.certificateArn);
    const keyPem = x509.PemConverter.encode(await crypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY');
    const certFile = path.join(deps.dir, `${thingName}.cert.pem`);
    const keyFile = path.join(deps.dir, `${thingName}.key.pem`);
    await writeFile(certFile, certificatePem, { mode: 0o644 });
    await writeFile(keyFile, keyPem, { mode: 0o600 });
    return { thingName, certFile, keyFile, certificateId: cert.certificateId, certificateArn: cert.certificateArn };
  };
  const worker = async () => {
    for (;;) {
      const i = next++;
      const name = deps.thingNames[i];
      if (name === undefined) return;
      try {
        out[i] = await one(name);
      } catch (err) {
        throw new SimulatorError('FLEET_PROVISION', `could not provision ${name}`, {
          cause: err,
          data: { thingName: name },
        });
      }
      done += 1;
      deps.onProgress?.(done);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, deps.concurrency ?? 16) }, worker));
  return { identities: out, seconds: (performance.now() - started) / 1000, keyType: 'EC P-256', policyName };
}

/** Removes what {@link provisionLocalFleet} created: things, certificates, attachments and files. */
export async function deprovisionLocalFleet(deps: {
  readonly registry: Registry;
  readonly identities: readonly FleetIdentity[];
  readonly policyName: string;
  readonly dir: string;
}): Promise<{ removed: number; failed: number }> {
  let removed = 0;
  let failed = 0;
  for (const id of deps.identities) {
    try {
      deps.registry.detachPolicy(deps.policyName, id.certificateArn);
      deps.registry.detachThingPrincipal(id.thingName, id.certificateArn);
      deps.registry.deleteThing({ thingName: id.thingName });
      deps.registry.updateCertificate(id.certificateId, 'INACTIVE');
      deps.registry.deleteCertificate(id.certificateId, true);
      removed += 1;
    } catch {
      failed += 1;
    }
  }
  await rm(deps.dir, { recursive: true, force: true });
  return { removed, failed };
}
