import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { type InProcessCore, provisionThing } from '@pifleet/cloud';

/** The files of a provisioned device, as an agent's config names them. */
export interface DeviceFiles {
  readonly thingName: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
}

/**
 * Provisions a thing through the real `@aws-sdk/client-iot` (CreateThing, CreateKeysAndCertificate,
 * the recommended device policy, attachments: cloud's `provisionThing`) and writes its certificate,
 * private key (0600) and the core's CA to `dir/<thingName>/`.
 */
export async function provisionDevice(
  core: Pick<InProcessCore, 'iot' | 'info'>,
  thingName: string,
  dir: string,
  options: { readonly policyName?: string } = {},
): Promise<DeviceFiles> {
  const thing = await provisionThing(core, thingName, options);
  const bundle = path.join(dir, thingName);
  mkdirSync(bundle, { recursive: true, mode: 0o700 });
  const files = {
    thingName,
    certFile: path.join(bundle, 'certificate.pem.crt'),
    keyFile: path.join(bundle, 'private.pem.key'),
    caFile: path.join(bundle, 'ca.pem'),
  };
  writeFileSync(files.certFile, thing.certPem);
  writeFileSync(files.keyFile, thing.keyPem, { mode: 0o600 });
  // The mode of writeFileSync applies only to a new file.
  chmodSync(files.keyFile, 0o600);
  writeFileSync(files.caFile, readFileSync(core.info.caFile));
  return files;
}
