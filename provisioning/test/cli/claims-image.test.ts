import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  DescribeCertificateCommand,
  DescribeThingCommand,
  type IoTClient,
  ListAttachedPoliciesCommand,
  ListThingGroupsForThingCommand,
} from '@aws-sdk/client-iot';
import { EXIT } from '@pifleet/protocol';
import { BINS, type RunningCoreProcess, removeDir, tempDir } from '@pifleet/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { CLAIM_BUNDLE_FILES } from '../../src/core/claim-bundle.js';
import { localCoreWithIotForFile } from '../helpers.js';

/**
 * The one-image workflow as processes: `pifleet claims create` writes the claim bundle, the agent's
 * own `check-config` accepts it as an image's config, and `pifleet-agent provision` on a copy of it
 * (the image flashed on a device) provisions that device through the template; a second copy (a
 * second device of the same image) provisions as a thing of its own.
 */

let core: RunningCoreProcess;
let iot: IoTClient;
localCoreWithIotForFile((started, client) => {
  core = started;
  iot = client;
});

const work = tempDir('claims-image');
afterAll(() => removeDir(work));

/** A bin as a process with a clean environment (no AWS settings of the machine leak in). */
function runBin(bin: string, args: string[], env: Record<string, string> = {}) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {
      cwd: work,
      env: { PATH: process.env.PATH ?? '', HOME: work, AWS_EC2_METADATA_DISABLED: 'true', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The bundle as flashed on a device at `root`: the same files where the config says they are. */
function flash(bundle: string, installDir: string) {
  fs.mkdirSync(installDir, { recursive: true, mode: 0o700 });
  for (const name of Object.values(CLAIM_BUNDLE_FILES)) {
    fs.copyFileSync(path.join(bundle, name), path.join(installDir, name));
  }
  fs.chmodSync(path.join(installDir, CLAIM_BUNDLE_FILES.claimPrivateKey), 0o600);
}

describe('the one-image workflow', () => {
  it('claims create → check-config → provision on two devices of one image', async () => {
    // The image's install directory is fixed when the bundle is made; each "device" here is a
    // directory of its own, so the test makes a bundle per device root with the same claim.
    const installA = path.join(work, 'device-a', 'var', 'lib', 'pifleet');
    const created = await runBin(
      BINS.pifleet,
      ['claims', 'create', '--out', 'image', '--install-dir', installA, '--json'],
      { PIFLEET_LOCAL: core.dataDir },
    );
    expect(created.stderr).toBe('');
    expect(created.code).toBe(EXIT.ok);
    expect(created.stdout).not.toContain('PRIVATE KEY');
    const claim = JSON.parse(created.stdout) as { certificateId: string; bundleDir: string };
    flash(claim.bundleDir, installA);
    const configA = path.join(installA, CLAIM_BUNDLE_FILES.agentConfig);

    const checked = await runBin(BINS.agent, ['check-config', configA, '--json']);
    expect(checked.stderr).toBe('');
    expect(checked.code).toBe(EXIT.ok);
    expect(JSON.parse(checked.stdout)).toEqual({
      ok: true,
      provisioned: false,
      templateName: 'pifleet-claim',
      method: 'csr',
    });

    const serial = '10000000c0ffee01';
    const provisioned = await runBin(BINS.agent, [
      'provision',
      '--config',
      configA,
      '--param',
      `SerialNumber=${serial}`,
      '--param',
      'Model=Raspberry Pi 5 Model B Rev 1.0',
      '--param',
      'MacAddress=2c:cf:67:00:00:01',
      '--json',
    ]);
    expect(provisioned.code, provisioned.stderr).toBe(EXIT.ok);
    const result = JSON.parse(provisioned.stdout) as { thingName: string; certificateId: string };
    expect(result.thingName).toBe(`pi-${serial}`);
    // The device's own key is where the claim bundle's config said, readable by its owner only.
    expect(fs.statSync(path.join(installA, 'private.pem.key')).mode & 0o777).toBe(0o600);
    expect(JSON.parse(fs.readFileSync(configA, 'utf8'))).toMatchObject({ thingName: `pi-${serial}` });

    const thing = await iot.send(new DescribeThingCommand({ thingName: `pi-${serial}` }));
    expect(thing.attributes).toEqual({ serial, model: 'Raspberry_Pi_5_Model_B_Rev_1.0', mac: '2c:cf:67:00:00:01' });
    const groups = await iot.send(new ListThingGroupsForThingCommand({ thingName: `pi-${serial}` }));
    expect(groups.thingGroups?.map((g) => g.groupName)).toEqual(['pifleet-claimed']);
    const cert = await iot.send(new DescribeCertificateCommand({ certificateId: result.certificateId }));
    expect(cert.certificateDescription?.status).toBe('ACTIVE');
    const policies = await iot.send(
      new ListAttachedPoliciesCommand({ target: cert.certificateDescription?.certificateArn as string }),
    );
    expect(policies.policies?.map((p) => p.policyName)).toEqual(['pifleet-device']);

    // A second device of the same image (same claim certificate) becomes a thing of its own.
    const installB = path.join(work, 'device-b', 'var', 'lib', 'pifleet');
    flash(claim.bundleDir, installB);
    const configB = path.join(installB, CLAIM_BUNDLE_FILES.agentConfig);
    // The bundle names device A's directory: rewrite its paths for device B's root, as flashing
    // the same image at / on two devices would need no rewrite at all.
    fs.writeFileSync(configB, fs.readFileSync(configB, 'utf8').replaceAll(installA, installB));
    const second = await runBin(BINS.agent, [
      'provision',
      '--config',
      configB,
      '--param',
      'SerialNumber=10000000c0ffee02',
      // Every fact given: the test machine's own /proc/cpuinfo and network interfaces stay out of it.
      '--param',
      'Model=Raspberry Pi 4 Model B Rev 1.5',
      '--param',
      'MacAddress=',
      '--json',
    ]);
    expect(second.code, second.stderr).toBe(EXIT.ok);
    expect(JSON.parse(second.stdout)).toMatchObject({ thingName: 'pi-10000000c0ffee02' });
    expect((await iot.send(new DescribeThingCommand({ thingName: 'pi-10000000c0ffee02' }))).attributes).toEqual({
      serial: '10000000c0ffee02',
      model: 'Raspberry_Pi_4_Model_B_Rev_1.5',
      // An empty attribute value is no attribute (as UpdateThing removes one given empty).
    });
  });
});
