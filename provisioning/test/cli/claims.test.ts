import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  CreatePolicyCommand,
  DescribeCertificateCommand,
  DescribeProvisioningTemplateCommand,
  DescribeThingCommand,
  DescribeThingGroupCommand,
  GetPolicyCommand,
  type IoTClient,
  ListAttachedPoliciesCommand,
  ListCertificatesCommand,
  ListThingGroupsForThingCommand,
  ListThingPrincipalsCommand,
} from '@aws-sdk/client-iot';
import {
  certificateTopics,
  claimPolicyDocument,
  EXIT,
  MQTT5_REASON,
  pifleetClaimTemplateBody,
  provisionTopics,
} from '@pifleet/protocol';
import type { RunningCoreProcess } from '@pifleet/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { CLAIM_BUNDLE_FILES } from '../../src/core/claim-bundle.js';
import { ClaimConnectRefused, type ClaimDevice, connectClaimDevice } from '../claim-device.js';
import { cli, localCoreWithIotForFile } from '../helpers.js';

/**
 * `claims create` and `claims revoke` in-process against the real local core through the real
 * @aws-sdk/client-iot; the bundle it writes is then used as a device uses it, with the device
 * SDK's MQTT 5 client (aws-crt) and identity client.
 */

let core: RunningCoreProcess;
let iot: IoTClient;
const { cwd } = localCoreWithIotForFile((started, client) => {
  core = started;
  iot = client;
});

const run = (dir: string, ...args: string[]) => cli(['--local', core.dataDir, ...args], { cwd: dir });
const json = <T>(s: string) => JSON.parse(s) as T;

interface ClaimOutput {
  templateName: string;
  templateArn: string;
  thingGroup: string;
  devicePolicyName: string;
  claimPolicyName: string;
  certificateId: string;
  certificateArn: string;
  bundleDir: string;
  changes: string[];
  reused: string[];
  notes: string[];
}

/**
 * A test's own registry reads, retried when the core throttles them: it enforces IoT Core's API
 * rates (ListCertificates 10/s), and the cases that check "nothing was created" list twice each.
 */
async function throttled<T>(read: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await read();
    } catch (err) {
      if ((err as { name?: string }).name !== 'ThrottlingException' || attempt === 10) throw err;
      await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
    }
  }
}

async function certificateIds(): Promise<string[]> {
  const ids: string[] = [];
  let marker: string | undefined;
  do {
    const m = marker;
    const page = await throttled(() =>
      iot.send(new ListCertificatesCommand({ pageSize: 250, ...(m ? { marker: m } : {}) })),
    );
    for (const c of page.certificates ?? []) if (c.certificateId) ids.push(c.certificateId);
    marker = page.nextMarker ?? undefined;
  } while (marker);
  return ids;
}

async function templateExists(templateName: string): Promise<boolean> {
  return throttled(() => iot.send(new DescribeProvisioningTemplateCommand({ templateName }))).then(
    () => true,
    (err: { name?: string }) => {
      if (err.name === 'ResourceNotFoundException') return false;
      throw err;
    },
  );
}

const attachedPolicies = async (target: string) =>
  ((await iot.send(new ListAttachedPoliciesCommand({ target }))).policies ?? []).map((p) => p.policyName);

const statusOf = async (certificateId: string) =>
  (await iot.send(new DescribeCertificateCommand({ certificateId }))).certificateDescription?.status;

function expectOneLineFailure(r: { code: number; stdout: string; stderr: string }, code: number, message: RegExp) {
  expect(r.code).toBe(code);
  expect(r.stdout).toBe('');
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  expect(r.stderr).toMatch(message);
}

const opened: ClaimDevice[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((d) => d.close()));
});

let seq = 0;
/** A device holding the bundle in `bundleDir`, connected with its claim certificate under a claim client id (or `clientId`). */
async function deviceWith(bundleDir: string, clientId = `pifleet-claim-${++seq}`): Promise<ClaimDevice> {
  const read = (name: string) => fs.readFileSync(path.join(bundleDir, name), 'utf8');
  const config = json<{ endpoint: string; port: number }>(read(CLAIM_BUNDLE_FILES.agentConfig));
  const device = await connectClaimDevice({
    host: config.endpoint,
    port: config.port,
    caPem: read(CLAIM_BUNDLE_FILES.ca),
    certPem: read(CLAIM_BUNDLE_FILES.claimCertificate),
    keyPem: read(CLAIM_BUNDLE_FILES.claimPrivateKey),
    clientId,
  });
  opened.push(device);
  return device;
}

describe('claims create', () => {
  it('makes the device policy, thing group, template, claim policy and an ACTIVE claim certificate, and writes the bundle', async () => {
    const dir = cwd();
    const r = await run(dir, 'claims', 'create', '--json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(EXIT.ok);
    expect(r.stdout).not.toContain('PRIVATE KEY');
    const out = json<ClaimOutput>(r.stdout);
    const bundle = path.join(dir, '.pifleet', 'claims', 'pifleet-claim');
    expect(out).toMatchObject({
      templateName: 'pifleet-claim',
      thingGroup: 'pifleet-claimed',
      devicePolicyName: 'pifleet-device',
      claimPolicyName: 'pifleet-claim-claim-policy',
      certificateId: expect.stringMatching(/^[0-9a-f]{64}$/),
      bundleDir: bundle,
      reused: [],
      notes: [],
    });
    expect(out.changes).toEqual([
      'created thing group pifleet-claimed',
      'created policy pifleet-device',
      'created template pifleet-claim',
      'created policy pifleet-claim-claim-policy',
      `created claim certificate ${out.certificateId} (ACTIVE)`,
      'attached policy pifleet-claim-claim-policy to it',
      'wrote claim.pem.crt, claim.pem.key, ca.pem, agent.json, pifleet-agent.service',
    ]);

    // The files, their modes, and the claim certificate is the one in the registry.
    expect(fs.statSync(bundle).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(bundle, CLAIM_BUNDLE_FILES.claimPrivateKey)).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(bundle).sort()).toEqual(Object.values(CLAIM_BUNDLE_FILES).sort());
    const certPem = fs.readFileSync(path.join(bundle, CLAIM_BUNDLE_FILES.claimCertificate), 'utf8');
    expect(new X509Certificate(certPem).fingerprint256.replace(/:/g, '').toLowerCase()).toBe(out.certificateId);
    expect(fs.readFileSync(path.join(bundle, CLAIM_BUNDLE_FILES.claimPrivateKey), 'utf8')).toMatch(/PRIVATE KEY-----/);
    expect(fs.readFileSync(path.join(bundle, CLAIM_BUNDLE_FILES.ca), 'utf8')).toBe(
      fs.readFileSync(core.info.caFile, 'utf8'),
    );
    const configText = fs.readFileSync(path.join(bundle, CLAIM_BUNDLE_FILES.agentConfig), 'utf8');
    expect(json<Record<string, unknown>>(configText)).toEqual({
      endpoint: core.info.mqtt.host,
      port: core.info.mqtt.port,
      certFile: path.join(bundle, 'certificate.pem.crt'),
      keyFile: path.join(bundle, 'private.pem.key'),
      caFile: path.join(bundle, 'ca.pem'),
      mqtt: { protocol: '5' },
      outbox: { path: path.join(bundle, 'outbox.db') },
      sensors: [],
      outputs: [],
      provisioning: {
        templateName: 'pifleet-claim',
        claimCertFile: path.join(bundle, 'claim.pem.crt'),
        claimKeyFile: path.join(bundle, 'claim.pem.key'),
      },
    });
    expect(fs.readFileSync(path.join(bundle, CLAIM_BUNDLE_FILES.unit), 'utf8')).toContain(
      `--config ${path.join(bundle, 'agent.json')}`,
    );

    // What exists in the registry now.
    const template = await iot.send(new DescribeProvisioningTemplateCommand({ templateName: 'pifleet-claim' }));
    expect(template).toMatchObject({ enabled: true, type: 'FLEET_PROVISIONING', defaultVersionId: 1 });
    expect(JSON.parse(template.templateBody as string)).toEqual(JSON.parse(pifleetClaimTemplateBody()));
    expect(template.preProvisioningHook).toBeUndefined();
    await iot.send(new DescribeThingGroupCommand({ thingGroupName: 'pifleet-claimed' }));
    const claimPolicy = await iot.send(new GetPolicyCommand({ policyName: 'pifleet-claim-claim-policy' }));
    expect(JSON.parse(claimPolicy.policyDocument as string)).toEqual(
      claimPolicyDocument({ region: core.info.region, accountId: core.info.accountId, templateName: 'pifleet-claim' }),
    );
    await iot.send(new GetPolicyCommand({ policyName: 'pifleet-device' }));
    expect(await statusOf(out.certificateId)).toBe('ACTIVE');
    expect(await attachedPolicies(out.certificateArn)).toEqual(['pifleet-claim-claim-policy']);

    const text = await run(cwd(), 'claims', 'create', '--out', 'again');
    expect(text.code).toBe(EXIT.ok);
    expect(text.stdout).toMatch(/^claim certificate [0-9a-f]{64} for template pifleet-claim\n/);
    expect(text.stdout).toContain(
      '\nreused: thing group pifleet-claimed, policy pifleet-device, template pifleet-claim, policy pifleet-claim-claim-policy\n',
    );
  });

  it('with --install-dir, names the files there and lets the unit write there (the agent writes its key and config)', async () => {
    const dir = cwd();
    expect((await run(dir, 'claims', 'create', '--out', 'img', '--install-dir', '/var/lib/pifleet')).code).toBe(0);
    const config = json<Record<string, unknown>>(
      fs.readFileSync(path.join(dir, 'img', CLAIM_BUNDLE_FILES.agentConfig), 'utf8'),
    );
    expect(config).toMatchObject({
      certFile: '/var/lib/pifleet/certificate.pem.crt',
      keyFile: '/var/lib/pifleet/private.pem.key',
      caFile: '/var/lib/pifleet/ca.pem',
      outbox: { path: '/var/lib/pifleet/outbox.db' },
      provisioning: {
        templateName: 'pifleet-claim',
        claimCertFile: '/var/lib/pifleet/claim.pem.crt',
        claimKeyFile: '/var/lib/pifleet/claim.pem.key',
      },
    });
    expect(config).not.toHaveProperty('thingName');
    const unit = fs.readFileSync(path.join(dir, 'img', CLAIM_BUNDLE_FILES.unit), 'utf8');
    expect(unit).toContain('--config /var/lib/pifleet/agent.json');
    expect(unit).toContain('ReadWritePaths=/var/lib/pifleet\n');
    expect(unit).not.toContain('ReadOnlyPaths=');
  });

  it('takes `__proto__` as the template name it is (valid for IoT), never as a prototype', async () => {
    const r = await run(cwd(), 'claims', 'create', '--template', '__proto__', '--json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(EXIT.ok);
    expect(json<ClaimOutput>(r.stdout)).toMatchObject({
      templateName: '__proto__',
      claimPolicyName: '__proto__-claim-policy',
    });
    expect(await templateExists('__proto__')).toBe(true);
  });

  it('a re-run reuses what exists and makes only a new claim certificate, and says so', async () => {
    const before = json<ClaimOutput>((await run(cwd(), 'claims', 'create', '--json')).stdout);
    const again = await run(cwd(), 'claims', 'create', '--json');
    expect(again.code).toBe(EXIT.ok);
    const out = json<ClaimOutput>(again.stdout);
    expect(out.certificateId).not.toBe(before.certificateId);
    expect(out.reused).toEqual([
      'thing group pifleet-claimed',
      'policy pifleet-device',
      'template pifleet-claim',
      'policy pifleet-claim-claim-policy',
    ]);
    expect(out.changes).toEqual([
      `created claim certificate ${out.certificateId} (ACTIVE)`,
      'attached policy pifleet-claim-claim-policy to it',
      'wrote claim.pem.crt, claim.pem.key, ca.pem, agent.json, pifleet-agent.service',
    ]);
    expect(out.notes).toEqual([expect.stringMatching(/^a new claim certificate was made; earlier ones stay active/)]);
    // Both stay active: images made with the first one keep provisioning.
    expect(await statusOf(before.certificateId)).toBe('ACTIVE');
    expect(await statusOf(out.certificateId)).toBe('ACTIVE');
  });

  it('refuses an --out that holds a claim bundle (its key would be lost) unless --force, creating nothing', async () => {
    const dir = cwd();
    const first = json<ClaimOutput>((await run(dir, 'claims', 'create', '--out', 'b', '--json')).stdout);
    const keyBefore = fs.readFileSync(path.join(dir, 'b', CLAIM_BUNDLE_FILES.claimPrivateKey), 'utf8');
    const certs = await certificateIds();
    expectOneLineFailure(
      await run(dir, 'claims', 'create', '--out', 'b'),
      EXIT.dataError,
      new RegExp(`already holds a claim bundle \\(claim certificate ${first.certificateId}\\) \\(hint: .*--force`),
    );
    expect(await certificateIds()).toEqual(certs);
    expect(fs.readFileSync(path.join(dir, 'b', CLAIM_BUNDLE_FILES.claimPrivateKey), 'utf8')).toBe(keyBefore);

    const forced = json<ClaimOutput>((await run(dir, 'claims', 'create', '--out', 'b', '--force', '--json')).stdout);
    expect(forced.notes[0]).toContain(
      `replaced a claim bundle (claim certificate ${first.certificateId}) in ${path.join(dir, 'b')}; that certificate stays active until revoked: pifleet --local ${core.dataDir} claims revoke --certificate-id ${first.certificateId}`,
    );
    expect(fs.readFileSync(path.join(dir, 'b', CLAIM_BUNDLE_FILES.claimPrivateKey), 'utf8')).not.toBe(keyBefore);
  });

  it('refuses a things bundle directory as --out', async () => {
    const dir = cwd();
    expect((await run(dir, 'things', 'create', 'claim-dir-thing', '--out', 'tb')).code).toBe(0);
    expectOneLineFailure(
      await run(dir, 'claims', 'create', '--out', 'tb'),
      EXIT.dataError,
      /already holds the bundle of thing claim-dir-thing/,
    );
  });

  it.each(['bad/name', 'x'.repeat(37), 'has space', '', 'dot.ted'])(
    'refuses --template %j (65, one line) before anything is made',
    async (name) => {
      const dir = cwd();
      const certs = await certificateIds();
      expectOneLineFailure(
        await run(dir, 'claims', 'create', '--template', name),
        EXIT.dataError,
        /invalid provisioning template name .*\(hint: use 1-36 characters/,
      );
      expect(await certificateIds()).toEqual(certs);
      expect(fs.existsSync(path.join(dir, '.pifleet'))).toBe(false);
    },
  );

  it.each<[string, string[], number, RegExp]>([
    ['a --thing-group', ['--thing-group', 'a/b'], EXIT.dataError, /invalid thing group name "a\/b"/],
    ['a --hook-arn', ['--hook-arn', 'arn:aws:iam::123456789012:role/x'], EXIT.usage, /is not a Lambda function ARN/],
    ['a --role-arn', ['--role-arn', 'role'], EXIT.usage, /--role-arn "role" is not an IAM role ARN/],
    ['an --install-dir', ['--install-dir', 'relative/dir'], EXIT.dataError, /--install-dir must be an absolute path/],
    ['an --mqtt-protocol', ['--mqtt-protocol', '4'], EXIT.usage, /--mqtt-protocol must be 5 or 3\.1\.1/],
  ])('refuses %s it cannot use, creating nothing', async (_what, args, code, message) => {
    const certs = await certificateIds();
    expectOneLineFailure(await run(cwd(), 'claims', 'create', '--template', 'never-made', ...args), code, message);
    expect(await certificateIds()).toEqual(certs);
    expect(await templateExists('never-made')).toBe(false);
  });

  it('refuses an --out that cannot be made before anything is created (a path through a file: 65)', async () => {
    const dir = cwd();
    fs.writeFileSync(path.join(dir, 'file'), 'x');
    const certs = await certificateIds();
    expectOneLineFailure(
      await run(dir, 'claims', 'create', '--template', 'never-made', '--out', 'file/bundle'),
      EXIT.dataError,
      /cannot write into .*file\/bundle \(ENOTDIR\) \(hint: choose another --out directory/,
    );
    expect(await certificateIds()).toEqual(certs);
    expect(await templateExists('never-made')).toBe(false);
  });

  it('refuses an --out whose name is too long for the file system (65), creating nothing', async () => {
    const certs = await certificateIds();
    expectOneLineFailure(
      await run(cwd(), 'claims', 'create', '--template', 'never-made', '--out', 'x'.repeat(300)),
      EXIT.dataError,
      /cannot write into .* \(ENAMETOOLONG\)/,
    );
    expect(await certificateIds()).toEqual(certs);
  });

  it('refuses a claim policy of that name that grants something else, before a certificate is made', async () => {
    await iot.send(
      new CreatePolicyCommand({
        policyName: 'squatted-claim-policy',
        policyDocument: JSON.stringify({
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Action: 'iot:*', Resource: '*' }],
        }),
      }),
    );
    const certs = await certificateIds();
    expectOneLineFailure(
      await run(cwd(), 'claims', 'create', '--template', 'squatted'),
      EXIT.dataError,
      /policy squatted-claim-policy exists with another document \(hint: delete policy squatted-claim-policy/,
    );
    expect(await certificateIds()).toEqual(certs);
  });

  it('creates a named template with a hook and its own thing group; describe shows both', async () => {
    const hook = `arn:aws:lambda:${core.info.region}:${core.info.accountId}:function:pifleet-provisioning-hook`;
    const r = await run(cwd(), 'claims', 'create', '--template', 'lab', '--thing-group', 'lab-pis', '--hook-arn', hook);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(EXIT.ok);
    expect(r.stdout).toContain('created template lab with its pre-provisioning hook');
    const described = await run(cwd(), 'templates', 'describe', 'lab');
    expect(described.stdout).toContain(`pre-provisioning hook: ${hook} (payload 2020-04-01)`);
    expect(described.stdout).toContain('"lab-pis"');
    // Given again to the existing template, the hook is not applied: the note says so.
    const other = await run(cwd(), 'claims', 'create', '--template', 'lab', '--hook-arn', `${hook}-2`, '--json');
    expect(json<ClaimOutput>(other.stdout).notes).toEqual(
      expect.arrayContaining([expect.stringMatching(/--hook-arn was not applied/)]),
    );
  });
});

describe('the claim certificate of a bundle', () => {
  it('connects as a claim client and may use the provisioning topics of its template only', async () => {
    const dir = cwd();
    expect((await run(dir, 'claims', 'create', '--out', 'dev')).code).toBe(0);
    const device = await deviceWith(path.join(dir, 'dev'));
    const own = provisionTopics('pifleet-claim');
    for (const allowed of [certificateTopics.create.accepted, certificateTopics.createFromCsr.rejected, own.accepted]) {
      expect(await device.subscribe(allowed)).toBe(MQTT5_REASON.GRANTED_QOS_1);
    }
    for (const denied of [
      'pifleet/#',
      '$aws/things/pi-0001/shadow/update/accepted',
      provisionTopics('other-template').accepted,
      '#',
    ]) {
      expect(await device.subscribe(denied)).toBe(MQTT5_REASON.NOT_AUTHORIZED);
    }
    expect(await device.publish('pifleet/pi-0001/telemetry', '{}')).toBe(MQTT5_REASON.NOT_AUTHORIZED);
    expect(await device.publish(provisionTopics('other-template').request, '{}')).toBe(MQTT5_REASON.NOT_AUTHORIZED);
    expect(await device.publish('$aws/things/pi-0001/shadow/update', '{}')).toBe(MQTT5_REASON.NOT_AUTHORIZED);
    // And its own request goes through and is answered.
    expect(await device.publish(certificateTopics.create.request, '{}')).toBe(MQTT5_REASON.SUCCESS);
    expect(json<{ certificateId: string }>(await device.next(certificateTopics.create.accepted))).toMatchObject({
      certificateId: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
  });

  it('cannot connect under another client id: not as a device (that would drop the device), not as anything else', async () => {
    const dir = cwd();
    expect((await run(dir, 'claims', 'create', '--out', 'ids')).code).toBe(0);
    for (const clientId of ['pi-10000000abcdef01', `other-${++seq}`]) {
      await expect(deviceWith(path.join(dir, 'ids'), clientId)).rejects.toBeInstanceOf(ClaimConnectRefused);
    }
  });

  it('provisions a device through the template: pi-<serial> in the group, its certificate ACTIVE with pifleet-device', async () => {
    const dir = cwd();
    expect((await run(dir, 'claims', 'create', '--out', 'prov')).code).toBe(0);
    const device = await deviceWith(path.join(dir, 'prov'));
    const keys = await device.identity.createKeysAndCertificate({});
    const registered = await device.identity
      .registerThing({
        templateName: 'pifleet-claim',
        certificateOwnershipToken: keys.certificateOwnershipToken as string,
        parameters: {
          SerialNumber: '10000000abcdef01',
          Model: 'Raspberry Pi 4 Model B Rev 1.4',
          MacAddress: 'dc:a6:32:00:00:01',
        },
      })
      .catch((e: { modeledError?: unknown; message?: string }) => {
        throw new Error(`${e.message}: ${JSON.stringify(e.modeledError ?? e)}`);
      });
    expect(registered.thingName).toBe('pi-10000000abcdef01');
    const thing = await iot.send(new DescribeThingCommand({ thingName: 'pi-10000000abcdef01' }));
    expect(thing.attributes).toEqual({
      serial: '10000000abcdef01',
      // Spaces are not allowed in an attribute value: the template writes them as _.
      model: 'Raspberry_Pi_4_Model_B_Rev_1.4',
      mac: 'dc:a6:32:00:00:01',
    });
    const groups = await iot.send(new ListThingGroupsForThingCommand({ thingName: 'pi-10000000abcdef01' }));
    expect(groups.thingGroups?.map((g) => g.groupName)).toEqual(['pifleet-claimed']);
    const principals = await iot.send(new ListThingPrincipalsCommand({ thingName: 'pi-10000000abcdef01' }));
    expect(principals.principals).toHaveLength(1);
    expect(await statusOf(keys.certificateId as string)).toBe('ACTIVE');
    expect(await attachedPolicies(principals.principals?.[0] as string)).toEqual(['pifleet-device']);
  });
});

describe('claims revoke', () => {
  it('sets the claim certificate INACTIVE: it can no longer connect; a second revoke says so', async () => {
    const dir = cwd();
    const out = json<ClaimOutput>((await run(dir, 'claims', 'create', '--out', 'rv', '--json')).stdout);
    const r = await run(dir, 'claims', 'revoke', '--certificate-id', out.certificateId);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(EXIT.ok);
    expect(r.stdout.trim()).toBe(`claim certificate ${out.certificateId} is now INACTIVE`);
    expect(await statusOf(out.certificateId)).toBe('INACTIVE');
    await expect(deviceWith(path.join(dir, 'rv'))).rejects.toBeInstanceOf(ClaimConnectRefused);
    const again = await run(dir, 'claims', 'revoke', '--certificate-id', out.certificateId, '--json');
    expect(json<{ changed: boolean }>(again.stdout)).toMatchObject({ changed: false, status: 'INACTIVE' });
  });

  it.each<[string, string, number, RegExp]>([
    ['not hex', 'xyz', EXIT.usage, /--certificate-id "xyz" is not a certificate ID/],
    ['63 digits', 'a'.repeat(63), EXIT.usage, /is not a certificate ID/],
    ['unknown', 'a'.repeat(64), EXIT.dataError, new RegExp(`certificate ${'a'.repeat(64)} not found`)],
  ])('refuses a certificate ID that is %s', async (_what, id, code, message) => {
    expectOneLineFailure(await run(cwd(), 'claims', 'revoke', '--certificate-id', id), code, message);
  });

  it('needs --certificate-id (64)', async () => {
    expectOneLineFailure(await run(cwd(), 'claims', 'revoke'), EXIT.usage, /required option '--certificate-id <id>'/);
  });
});
