import { join } from 'node:path';
import { type JsonObject, RECOMMENDED_POLICY_NAME, recommendedDevicePolicy } from '@pifleet/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalCa, loadOrCreateCa } from '../../src/ca/local-ca.js';
import { createOwnershipTokens, OWNERSHIP_TOKEN_TTL_MS } from '../../src/fleet-provisioning/ownership-tokens.js';
import {
  createRegisterThing,
  inlinePolicyName,
  type PreProvisioningHookFunction,
} from '../../src/fleet-provisioning/register-thing.js';
import { openSqliteProvisioningStore } from '../../src/provisioning/store.js';
import { createProvisioningTemplates, type ProvisioningTemplates } from '../../src/provisioning/templates.js';
import { RegistryError } from '../../src/registry/errors.js';
import { openSqliteRegistry, type Registry } from '../../src/registry/sqlite-registry.js';
import { removeDir, tempDir } from '../../src/testing/in-process-core.js';

/**
 * The RegisterThing service against the real SQLite registry, template store and local CA, with
 * the clock in the test's hand: what no device connection can show quickly (a token past its
 * hour, a hook that never answers) and the plan's application against what already exists
 * (override settings, inline policies, the undo of a failure part way).
 */

const ACCOUNT = { region: 'eu-west-1', accountId: '123456789012' };
let dir: string;
let ca: LocalCa;
let registry: Registry;
let templates: ProvisioningTemplates;
let clock = 1_700_000_000_000;
const now = () => clock;

beforeAll(async () => {
  dir = tempDir('register-thing-service');
  ca = await loadOrCreateCa({ dir: join(dir, 'ca'), now });
  registry = openSqliteRegistry({ file: join(dir, 'registry.sqlite'), account: ACCOUNT, now });
  const store = openSqliteProvisioningStore({ path: join(dir, 'templates.sqlite') });
  templates = createProvisioningTemplates({ store, ...ACCOUNT, now });
  registry.createPolicy(
    RECOMMENDED_POLICY_NAME,
    JSON.stringify(recommendedDevicePolicy(ACCOUNT.region, ACCOUNT.accountId)),
  );
  registry.createThingGroup({ thingGroupName: 'claimed' });
  registry.createThingGroup({ thingGroupName: 'old-group' });
  registry.createThingType({ thingTypeName: 'pi' });
});

afterAll(() => {
  registry?.close();
  removeDir(dir);
});

let seq = 0;
const ROLE = 'arn:aws:iam::123456789012:role/pifleet-provisioning';

/** A template whose thing properties, overrides and extra resources the test chooses. */
function template(options: {
  thing?: JsonObject;
  overrides?: JsonObject;
  policies?: JsonObject;
  hook?: string;
  certificateStatus?: string;
}): string {
  const templateName = `t-${++seq}`;
  const body = {
    Parameters: { SerialNumber: { Type: 'String' } },
    Resources: {
      thing: {
        Type: 'AWS::IoT::Thing',
        Properties: { ThingName: { 'Fn::Join': ['', ['pi-', { Ref: 'SerialNumber' }]] }, ...options.thing },
        ...(options.overrides === undefined ? {} : { OverrideSettings: options.overrides }),
      },
      certificate: {
        Type: 'AWS::IoT::Certificate',
        Properties: {
          CertificateId: { Ref: 'AWS::IoT::Certificate::Id' },
          Status: options.certificateStatus ?? 'ACTIVE',
        },
      },
      ...(options.policies ?? {
        policy: { Type: 'AWS::IoT::Policy', Properties: { PolicyName: RECOMMENDED_POLICY_NAME } },
      }),
    },
  };
  templates.create({
    templateName,
    templateBody: JSON.stringify(body),
    provisioningRoleArn: ROLE,
    enabled: true,
    ...(options.hook === undefined
      ? {}
      : { preProvisioningHook: { targetArn: `arn:aws:lambda:eu-west-1:123456789012:function:${options.hook}` } }),
  });
  return templateName;
}

interface Answer {
  readonly topic: string;
  readonly body: JsonObject;
}

function bed(options: { hooks?: Record<string, PreProvisioningHookFunction>; hookTimeoutMs?: number } = {}) {
  const tokens = createOwnershipTokens({ now });
  const answers: Answer[] = [];
  const service = createRegisterThing({
    templates,
    registry,
    tokens,
    hooks: (arn) => options.hooks?.[arn.split(':')[6] ?? ''],
    reply: async (_clientId, topic, payload) => {
      answers.push({ topic, body: JSON.parse(payload) as JsonObject });
    },
    certificateOf: () => 'claim-certificate-id',
    ...(options.hookTimeoutMs === undefined ? {} : { hookTimeoutMs: options.hookTimeoutMs }),
  });
  /** A pending certificate with its token, as CreateKeysAndCertificate over MQTT leaves it. */
  async function pendingCertificate() {
    const issued = await ca.createKeysAndCertificate();
    const cert = registry.registerCertificate({ certificatePem: issued.certificatePem, status: 'PENDING_ACTIVATION' });
    const token = tokens.issue(cert.certificateId, 'claim-certificate-id') as string;
    return { certificateId: cert.certificateId, certificateArn: cert.certificateArn, token };
  }
  async function register(templateName: string, token: string, parameters: Record<string, string>): Promise<Answer> {
    const before = answers.length;
    await service.handle({
      topic: `$aws/provisioning-templates/${templateName}/provision/json`,
      payload: Buffer.from(JSON.stringify({ certificateOwnershipToken: token, parameters })),
      clientId: 'device',
    });
    expect(answers).toHaveLength(before + 1);
    return answers[before] as Answer;
  }
  return { pendingCertificate, register };
}

const thingExists = (thingName: string) => {
  try {
    registry.describeThing(thingName);
    return true;
  } catch (err) {
    if (err instanceof RegistryError && err.code === 'ResourceNotFoundException') return false;
    throw err;
  }
};
const groupsOf = (thingName: string) =>
  registry
    .listThingGroupsForThing(thingName, { pageSize: 250 })
    .items.map((g) => g.groupName)
    .sort();
const policiesOf = (certificateArn: string) =>
  registry
    .listAttachedPolicies(certificateArn, { pageSize: 250 })
    .items.map((p) => p.policyName)
    .sort();

describe('RegisterThing, the service', () => {
  it('a token past its hour is refused, and the certificate stays pending', async () => {
    const { pendingCertificate, register } = bed();
    const name = template({});
    const cert = await pendingCertificate();
    clock += OWNERSHIP_TOKEN_TTL_MS + 1;
    const answer = await register(name, cert.token, { SerialNumber: `exp${seq}` });
    expect(answer.body).toMatchObject({ statusCode: 400, errorCode: 'InvalidCertificateOwnershipToken' });
    expect(answer.body.errorMessage).toMatch(/expired/);
    expect(registry.describeCertificate(cert.certificateId).status).toBe('PENDING_ACTIVATION');
  });

  it('a hook that never answers is denied after the timeout; a malformed answer is denied', async () => {
    const { pendingCertificate, register } = bed({
      hooks: {
        hangs: () => new Promise(() => {}),
        'says-yes-as-a-string': async () => ({ allowProvisioning: 'true' }),
        'bad-overrides': async () => ({ allowProvisioning: true, parameterOverrides: { SerialNumber: 7 } }),
        'inherited-allow': async () => Object.create({ allowProvisioning: true }),
      },
      hookTimeoutMs: 50,
    });
    for (const hook of ['hangs', 'says-yes-as-a-string', 'bad-overrides', 'inherited-allow']) {
      const cert = await pendingCertificate();
      const serial = `hook-${hook}`;
      const answer = await register(template({ hook }), cert.token, { SerialNumber: serial });
      expect({ hook, body: answer.body }).toMatchObject({ hook, body: { statusCode: 403, errorCode: 'AccessDenied' } });
      expect(thingExists(`pi-${serial}`)).toBe(false);
    }
  });

  it('the hook cannot change the request through the event it is given', async () => {
    const { pendingCertificate, register } = bed({
      hooks: {
        meddles: async (event) => {
          (event.parameters as Record<string, string>).SerialNumber = 'meddled';
          return { allowProvisioning: true };
        },
      },
    });
    const cert = await pendingCertificate();
    const answer = await register(template({ hook: 'meddles' }), cert.token, { SerialNumber: 'untouched' });
    expect(answer.body.thingName).toBe('pi-untouched');
  });

  it('an existing thing: no override setting leaves it as it is; REPLACE and MERGE change it', async () => {
    const { pendingCertificate, register } = bed();
    registry.createThing({ thingName: 'pi-existing', attributes: { kept: 'yes', serial: 'old' } });
    registry.addThingToThingGroup({ thingGroupName: 'old-group', thingName: 'pi-existing' });
    const thing = {
      AttributePayload: { serial: { Ref: 'SerialNumber' } },
      ThingGroups: ['claimed'],
      ThingTypeName: 'pi',
    };

    await register(template({ thing }), (await pendingCertificate()).token, { SerialNumber: 'existing' });
    expect(registry.describeThing('pi-existing').attributes).toEqual({ kept: 'yes', serial: 'old' });
    expect(registry.describeThing('pi-existing').thingTypeName).toBeUndefined();
    expect(groupsOf('pi-existing')).toEqual(['old-group']);

    await register(
      template({ thing, overrides: { AttributePayload: 'MERGE', ThingGroups: 'MERGE' } }),
      (await pendingCertificate()).token,
      { SerialNumber: 'existing' },
    );
    expect(registry.describeThing('pi-existing').attributes).toEqual({ kept: 'yes', serial: 'existing' });
    expect(groupsOf('pi-existing')).toEqual(['claimed', 'old-group']);

    await register(
      template({ thing, overrides: { AttributePayload: 'REPLACE', ThingGroups: 'REPLACE', ThingTypeName: 'REPLACE' } }),
      (await pendingCertificate()).token,
      { SerialNumber: 'existing' },
    );
    expect(registry.describeThing('pi-existing')).toMatchObject({
      attributes: { serial: 'existing' },
      thingTypeName: 'pi',
    });
    expect(groupsOf('pi-existing')).toEqual(['claimed']);
    // Three certificates, each attached: every registration of the thing added its own.
    expect(registry.listThingPrincipals('pi-existing', { pageSize: 250 }).items).toHaveLength(3);
  });

  it('FAIL refuses only a change: 409 ConflictingResourceUpdate, the certificate left pending', async () => {
    const { pendingCertificate, register } = bed();
    registry.createThing({ thingName: 'pi-guarded', attributes: { serial: 'guarded' } });
    const name = template({
      thing: { AttributePayload: { serial: { Ref: 'SerialNumber' } } },
      overrides: { AttributePayload: 'FAIL' },
    });
    const same = await register(name, (await pendingCertificate()).token, { SerialNumber: 'guarded' });
    expect(same.body.thingName).toBe('pi-guarded');

    registry.updateThing({ thingName: 'pi-guarded', attributes: { serial: 'changed-since' } });
    const cert = await pendingCertificate();
    const changed = await register(name, cert.token, { SerialNumber: 'guarded' });
    expect(changed.body).toMatchObject({ statusCode: 409, errorCode: 'ConflictingResourceUpdate' });
    expect(registry.describeCertificate(cert.certificateId).status).toBe('PENDING_ACTIVATION');
  });

  it('an inline policy becomes one policy named by its SHA-256, shared by every device it provisions', async () => {
    const { pendingCertificate, register } = bed();
    const document = {
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Action: 'iot:Connect',
          Resource: 'arn:aws:iot:eu-west-1:123456789012:client/${iot:Connection.Thing.ThingName}',
        },
      ],
    };
    const name = template({
      policies: { policy: { Type: 'AWS::IoT::Policy', Properties: { PolicyDocument: document } } },
    });
    const a = await pendingCertificate();
    const b = await pendingCertificate();
    await register(name, a.token, { SerialNumber: 'inline-a' });
    await register(name, b.token, { SerialNumber: 'inline-b' });
    const policyName = inlinePolicyName(JSON.stringify(document));
    expect(policyName).toMatch(/^[0-9a-f]{64}$/);
    expect(policiesOf(a.certificateArn)).toEqual([policyName]);
    expect(policiesOf(b.certificateArn)).toEqual([policyName]);
  });

  it.each([
    ['a thing group that does not exist', { thing: { ThingGroups: ['no-such-group'] } }],
    ['a thing type that does not exist', { thing: { ThingTypeName: 'no-such-type' } }],
    [
      'a policy that does not exist',
      { policies: { p: { Type: 'AWS::IoT::Policy', Properties: { PolicyName: 'no-such-policy' } } } },
    ],
    ['an attribute IoT refuses', { thing: { AttributePayload: { model: 'Raspberry Pi 4 Model B' } } }],
    ['a billing group (the local core has none)', { thing: { BillingGroup: 'b' } }],
    [
      'a certificate status of INACTIVE with a malformed policy',
      { policies: { p: { Type: 'AWS::IoT::Policy', Properties: { PolicyDocument: '{"Version":"2012-10-17"}' } } } },
    ],
  ])('%s: 400 ResourceRegistrationFailure and nothing made', async (label, options) => {
    const { pendingCertificate, register } = bed();
    const cert = await pendingCertificate();
    const serial = `bad-${seq}`;
    const answer = await register(template(options as Parameters<typeof template>[0]), cert.token, {
      SerialNumber: serial,
    });
    expect({ label, body: answer.body }).toMatchObject({
      label,
      body: { statusCode: 400, errorCode: 'ResourceRegistrationFailure' },
    });
    expect(thingExists(`pi-${serial}`)).toBe(false);
    expect(registry.describeCertificate(cert.certificateId).status).toBe('PENDING_ACTIVATION');
    expect(policiesOf(cert.certificateArn)).toEqual([]);
  });

  it('a failure part way is undone: the thing made for the request is deleted, the certificate stays pending', async () => {
    const { pendingCertificate, register } = bed();
    const cert = await pendingCertificate();
    const name = template({ thing: { ThingGroups: ['claimed'] } });
    // The registry refuses the last step (the certificate's status) once: everything before it must go.
    const original = registry.updateCertificate;
    registry.updateCertificate = () => {
      throw new Error('disk full');
    };
    try {
      const answer = await register(name, cert.token, { SerialNumber: 'undone' });
      expect(answer.body).toMatchObject({ statusCode: 500, errorCode: 'InternalFailure' });
    } finally {
      registry.updateCertificate = original;
    }
    expect(thingExists('pi-undone')).toBe(false);
    expect(policiesOf(cert.certificateArn)).toEqual([]);
    expect(registry.describeCertificate(cert.certificateId).status).toBe('PENDING_ACTIVATION');
  });

  it('INACTIVE in the template registers the certificate INACTIVE', async () => {
    const { pendingCertificate, register } = bed();
    const cert = await pendingCertificate();
    const answer = await register(template({ certificateStatus: 'INACTIVE' }), cert.token, {
      SerialNumber: 'inactive',
    });
    expect(answer.body.thingName).toBe('pi-inactive');
    expect(registry.describeCertificate(cert.certificateId).status).toBe('INACTIVE');
  });
});
