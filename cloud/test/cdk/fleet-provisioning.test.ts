import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  DEFAULT_CLAIM_TEMPLATE_NAME,
  DEFAULT_CLAIMED_THING_GROUP,
  pifleetClaimTemplateBody,
  RECOMMENDED_POLICY_NAME,
} from '@pifleet/protocol';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { CfnFunction } from 'aws-cdk-lib/aws-lambda';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPifleetApp } from '../../cdk/build-app.js';
import { bundleHandlers, type LambdaName, PROVISIONING_HOOK_BUNDLE } from '../../cdk/bundle.js';
import {
  type FleetProvisioningSettings,
  LAMBDA_ENVIRONMENT_LIMIT,
  PROVISIONING_ROLE_ACTIONS,
  THINGS_REGISTRATION_MANAGED_POLICY,
} from '../../cdk/fleet-provisioning.js';
import { PifleetStack } from '../../cdk/pifleet-stack.js';
import { createProvisioningHook, PROVISIONING_HOOK_FUNCTION_NAME } from '../../src/handlers/provisioning-hook.js';
import { evaluateProvisioningTemplate } from '../../src/provisioning/template-language.js';
import { allow, idsOfType, type Resources, refId, render, roleGrants, sortGrants } from './template-helpers.js';

/**
 * Fleet provisioning in the CDK stack, read from the synthesized template: who may assume the
 * provisioning role and what it may do, who may invoke the hook, the template's settings, and its
 * body run through the local core's evaluator with the hook's overrides, checked against the
 * role's grants. Then the hook as Lambda runs it: bundled, loaded in plain node, invoked.
 */

const stubCode = (name: LambdaName) => lambda.Code.fromInline(`exports.handler = async () => ${JSON.stringify(name)};`);
const hookCode = lambda.Code.fromInline('exports.handler = async () => ({ allowProvisioning: false });');

function synth(fleetProvisioning?: Partial<FleetProvisioningSettings>) {
  const app = new App({ analyticsReporting: false });
  const stack = new PifleetStack(app, 'Test', {
    handlerCode: stubCode,
    ...(fleetProvisioning === undefined ? {} : { fleetProvisioning: { hookCode, ...fleetProvisioning } }),
  });
  const json = Template.fromStack(stack).toJSON() as { Resources: Resources; Outputs: Record<string, unknown> };
  return { stack, resources: json.Resources, outputs: json.Outputs };
}

const { stack, resources, outputs } = synth({});
const fp = stack.fleetProvisioning;
if (fp === undefined) throw new Error('fleet provisioning missing');
const logicalId = (construct: { node: { defaultChild?: unknown } }) =>
  stack.getLogicalId(construct.node.defaultChild as CfnFunction);
const roleId = logicalId(fp.provisioningRole);
const hookId = logicalId(fp.hook);
const templateId = stack.getLogicalId(fp.template);
const groupId = stack.getLogicalId(fp.thingGroup);
const ARN = (rest: string) => `arn:\${AWS::Partition}:iot:\${AWS::Region}:\${AWS::AccountId}:${rest}`;
const IOT_SOURCE = {
  StringEquals: { 'aws:SourceAccount': '${AWS::AccountId}' },
  ArnLike: { 'aws:SourceArn': ARN('*') },
};

describe('provisioning role', () => {
  it('is assumable by IoT only, for this account’s IoT resources in this region (confused deputy)', () => {
    expect(render(resources[roleId]?.Properties?.AssumeRolePolicyDocument)).toEqual({
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Principal: { Service: 'iot.amazonaws.com' },
          Action: 'sts:AssumeRole',
          Condition: IOT_SOURCE,
        },
      ],
    });
  });

  it('may do exactly what the template does: things pi-*, the claimed group, certificates, the device policy', () => {
    const A = PROVISIONING_ROLE_ACTIONS;
    const expected = [
      ...allow(A.things, ARN('thing/pi-*')),
      ...allow(A.groupMembership, ARN('thing/pi-*'), ARN(`thinggroup/${DEFAULT_CLAIMED_THING_GROUP}`)),
      ...allow(A.group, ARN(`thinggroup/${DEFAULT_CLAIMED_THING_GROUP}`)),
      ...allow(A.certificates, ARN('cert/*')),
      ...allow(A.policy, ARN(`policy/${RECOMMENDED_POLICY_NAME}`)),
    ];
    // roleGrants throws on a managed policy: AWSIoTThingsRegistration is not attached.
    expect(roleGrants(resources, roleId)).toEqual(sortGrants(expected));
  });

  it('holds none of the managed policy’s wider powers', () => {
    const actions = roleGrants(resources, roleId).map((g) => g.action);
    for (const wider of [
      'iot:CreatePolicy',
      'iot:CreatePolicyVersion',
      'iot:RegisterCertificate',
      'iot:CreateCertificateFromCsr',
      'iot:DetachPolicy',
      'iot:DeleteThing',
      'iot:AddThingToBillingGroup',
      'iot:RemoveThingFromThingGroup',
    ]) {
      expect(actions).not.toContain(wider);
    }
    expect(roleGrants(resources, roleId).filter((g) => g.resource === '*' || g.action.includes('*'))).toEqual([]);
  });
});

describe('provisioning role, managed fallback', () => {
  it('with provisioningRolePolicy "managed" it carries AWSIoTThingsRegistration and no inline grants', () => {
    const managed = synth({ provisioningRolePolicy: 'managed' });
    const m = managed.stack.fleetProvisioning;
    if (m === undefined) throw new Error('missing');
    const id = managed.stack.getLogicalId(m.provisioningRole.node.defaultChild as CfnFunction);
    expect(render(managed.resources[id]?.Properties?.ManagedPolicyArns)).toEqual([
      `arn:\${AWS::Partition}:iam::aws:policy/${THINGS_REGISTRATION_MANAGED_POLICY}`,
    ]);
    const attached = idsOfType(managed.resources, 'AWS::IAM::Policy').filter((p) =>
      JSON.stringify(render(managed.resources[p]?.Properties?.Roles)).includes(id),
    );
    expect(attached).toEqual([]);
    // The trust is the same: IoT, this account, this region.
    expect(render(managed.resources[id]?.Properties?.AssumeRolePolicyDocument)).toEqual(
      render(resources[roleId]?.Properties?.AssumeRolePolicyDocument),
    );
  });
});

describe('pre-provisioning hook function', () => {
  it('is pifleet-provisioning-hook: Node.js 24 on arm64, a 5 s timeout (IoT’s), no table in its environment', () => {
    const props = render(resources[hookId]?.Properties) as Record<string, unknown>;
    expect(props).toMatchObject({
      FunctionName: PROVISIONING_HOOK_FUNCTION_NAME,
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
      Handler: 'index.handler',
      Timeout: 5,
      MemorySize: 256,
      Environment: { Variables: { LOG_LEVEL: 'info', NODE_OPTIONS: '--enable-source-maps' } },
    });
    const groupRef = refId((props.LoggingConfig as { LogGroup: string }).LogGroup);
    expect(resources[groupRef]?.Properties?.RetentionInDays).toBe(30);
  });

  it('its role may write its own logs and nothing else', () => {
    const role = refId(render(resources[hookId]?.Properties?.Role));
    const logGroup = refId((render(resources[hookId]?.Properties?.LoggingConfig) as { LogGroup: string }).LogGroup);
    expect(roleGrants(resources, role)).toEqual(
      sortGrants(allow(['logs:CreateLogStream', 'logs:PutLogEvents'], `\${${logGroup}.Arn}`)),
    );
    expect(render(resources[role]?.Properties?.AssumeRolePolicyDocument)).toMatchObject({
      Statement: [{ Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' }],
    });
  });

  it('IoT may invoke it only from this account and this account’s IoT resources in this region', () => {
    const permissions = Object.values(resources).filter(
      (r) => r.Type === 'AWS::Lambda::Permission' && render(r.Properties?.FunctionName) === `\${${hookId}.Arn}`,
    );
    expect(permissions.map((p) => render(p.Properties))).toEqual([
      {
        Action: 'lambda:InvokeFunction',
        FunctionName: `\${${hookId}.Arn}`,
        Principal: 'iot.amazonaws.com',
        SourceAccount: '${AWS::AccountId}',
        SourceArn: ARN('*'),
      },
    ]);
  });
});

describe('provisioning template', () => {
  const props = () => render(resources[templateId]?.Properties) as Record<string, unknown>;

  it('is pifleet-claim, a fleet provisioning template, enabled, with the role and the hook', () => {
    expect(props()).toEqual({
      TemplateName: DEFAULT_CLAIM_TEMPLATE_NAME,
      Description: expect.any(String),
      TemplateType: 'FLEET_PROVISIONING',
      Enabled: true,
      ProvisioningRoleArn: `\${${roleId}.Arn}`,
      TemplateBody: pifleetClaimTemplateBody(),
      PreProvisioningHook: { TargetArn: `\${${hookId}.Arn}`, PayloadVersion: '2020-04-01' },
    });
  });

  it('holds the body `pifleet claims create` compares with, so the CLI reuses it', () => {
    expect(JSON.stringify(JSON.parse(String(props().TemplateBody)))).toBe(pifleetClaimTemplateBody());
  });

  it('is created after the role’s policy, the invoke permission, the thing group and the device policy', () => {
    const dependsOn = (resources[templateId]?.DependsOn as string[] | undefined) ?? [];
    const rolePolicy = idsOfType(resources, 'AWS::IAM::Policy').find((p) =>
      JSON.stringify(render(resources[p]?.Properties?.Roles)).includes(roleId),
    );
    const permission = idsOfType(resources, 'AWS::Lambda::Permission').find(
      (p) => render(resources[p]?.Properties?.FunctionName) === `\${${hookId}.Arn}`,
    );
    const devicePolicy = stack.getLogicalId(stack.devicePolicy);
    expect(dependsOn).toEqual(expect.arrayContaining([roleId, rolePolicy, permission, groupId, devicePolicy]));
  });

  it('the claimed thing group exists, and outlives the stack', () => {
    expect(resources[groupId]).toMatchObject({
      Type: 'AWS::IoT::ThingGroup',
      Properties: { ThingGroupName: DEFAULT_CLAIMED_THING_GROUP },
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
  });

  it('outputs the template name, the role ARN, the hook ARN and the group', () => {
    expect(render(outputs.ProvisioningTemplateName)).toMatchObject({ Value: DEFAULT_CLAIM_TEMPLATE_NAME });
    expect(render(outputs.ProvisioningRoleArn)).toMatchObject({ Value: `\${${roleId}.Arn}` });
    expect(render(outputs.ProvisioningHookArn)).toMatchObject({ Value: `\${${hookId}.Arn}` });
    expect(render(outputs.ClaimedThingGroupName)).toMatchObject({ Value: DEFAULT_CLAIMED_THING_GROUP });
  });
});

/**
 * What a plan asks of the provisioning role, as (action, ARN) pairs with the template's
 * placeholders for partition, region and account: the calls a thing, its group, an existing
 * certificate made ACTIVE and an attached policy take.
 */
function needsOf(plan: {
  thing?: { thingName: string; thingGroups: readonly string[] };
  certificate?: { source: { kind: string; certificateId?: string } };
  policies: readonly { policyName?: string }[];
}): { action: string; arn: string }[] {
  const needs: { action: string; arn: string }[] = [];
  const thing = plan.thing;
  const cert = ARN(`cert/${plan.certificate?.source.certificateId ?? ''}`);
  if (thing !== undefined) {
    const thingArn = ARN(`thing/${thing.thingName}`);
    needs.push({ action: 'iot:CreateThing', arn: thingArn }, { action: 'iot:AttachThingPrincipal', arn: thingArn });
    for (const g of thing.thingGroups) {
      needs.push(
        { action: 'iot:AddThingToThingGroup', arn: thingArn },
        { action: 'iot:AddThingToThingGroup', arn: ARN(`thinggroup/${g}`) },
      );
    }
  }
  needs.push({ action: 'iot:UpdateCertificate', arn: cert });
  for (const p of plan.policies) {
    needs.push(
      { action: 'iot:AttachPolicy', arn: cert },
      { action: 'iot:GetPolicy', arn: ARN(`policy/${p.policyName}`) },
    );
  }
  return needs;
}

/** IAM's wildcard match of a resource pattern (`*`, `?`) against an ARN. */
function arnMatches(pattern: string, arn: string): boolean {
  const re = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${re}$`).test(arn);
}

describe('the template’s body, evaluated by the local core with the hook’s overrides', () => {
  const CERT_ID = 'f'.repeat(64);
  const hook = createProvisioningHook();
  const body = String(render(resources[templateId]?.Properties?.TemplateBody));

  async function provision(parameters: Record<string, string>) {
    const answer = await hook({
      claimCertificateId: 'c'.repeat(64),
      certificateId: CERT_ID,
      certificatePem: '',
      templateArn: ARN(`provisioningtemplate/${DEFAULT_CLAIM_TEMPLATE_NAME}`),
      clientId: 'boot',
      parameters,
    });
    if (!answer.allowProvisioning) return { denied: true as const };
    // IoT adds the overrides to the request's parameters, replacing those of the same name.
    return evaluateProvisioningTemplate(
      body,
      { ...parameters, ...answer.parameterOverrides },
      { certificateId: CERT_ID },
    );
  }

  it('a Pi’s facts make the thing pi-<serial, lower-case> with attribute-safe values, in the group, policy attached', async () => {
    const result = await provision({
      SerialNumber: '10000000ABCDEF01',
      Model: 'Raspberry Pi 4 Model B Rev 1.4',
      MacAddress: 'DC:A6:32:01:02:03',
    });
    expect(result).toMatchObject({
      ok: true,
      plan: {
        thing: {
          thingName: 'pi-10000000abcdef01',
          thingGroups: [DEFAULT_CLAIMED_THING_GROUP],
          attributes: { serial: '10000000abcdef01', model: 'Raspberry_Pi_4_Model_B_Rev_1.4', mac: 'dc:a6:32:01:02:03' },
        },
        certificate: { source: { kind: 'certificateId', certificateId: CERT_ID }, status: 'ACTIVE' },
        policies: [{ policyName: RECOMMENDED_POLICY_NAME }],
      },
    });
  });

  it.each([
    ['a Pi', { SerialNumber: '10000000abcdef01', Model: 'Raspberry Pi 5 Model B Rev 1.0', MacAddress: '' }],
    ['the longest serial, nothing else', { SerialNumber: `Z${'9'.repeat(63)}` }],
    ['underscores and hyphens', { SerialNumber: 'lab_pi-07', Model: 'x' }],
  ])('every call the plan for %s needs is granted to the role, and the thing name is valid', async (_, params) => {
    const result = await provision(params);
    if (!('ok' in result) || !result.ok) throw new Error(`not provisioned: ${JSON.stringify(result)}`);
    expect(result.plan.thing?.thingName).toMatch(/^[a-zA-Z0-9:_-]{1,128}$/);
    for (const value of Object.values(result.plan.thing?.attributes ?? {})) {
      expect(value).toMatch(/^[a-zA-Z0-9_.,@/:#=[\]-]{0,800}$/);
    }
    const grants = roleGrants(resources, roleId);
    for (const need of needsOf(result.plan)) {
      const granted = grants.some((g) => g.action === need.action && arnMatches(g.resource, need.arn));
      expect(granted, `${need.action} on ${need.arn}`).toBe(true);
    }
  });

  it('a serial that would break the thing name never reaches the template: the hook denies it', async () => {
    for (const SerialNumber of ['a/b', 'a b', '', 'x'.repeat(65), 'a:b']) {
      await expect(provision({ SerialNumber })).resolves.toEqual({ denied: true });
    }
  });

  it('the grants do not reach things outside the template’s prefix or another group', () => {
    const grants = roleGrants(resources, roleId);
    const granted = (action: string, arn: string) =>
      grants.some((g) => g.action === action && arnMatches(g.resource, arn));
    expect(granted('iot:CreateThing', ARN('thing/pi-1'))).toBe(true);
    expect(granted('iot:CreateThing', ARN('thing/admin-console'))).toBe(false);
    expect(granted('iot:AddThingToThingGroup', ARN('thinggroup/operators'))).toBe(false);
    expect(granted('iot:GetPolicy', ARN('policy/admin'))).toBe(false);
  });
});

describe('settings', () => {
  it('without fleetProvisioning the stack has no template, group, provisioning role or hook', () => {
    const plain = synth();
    expect(plain.stack.fleetProvisioning).toBeUndefined();
    for (const type of ['AWS::IoT::ProvisioningTemplate', 'AWS::IoT::ThingGroup']) {
      expect(idsOfType(plain.resources, type)).toEqual([]);
    }
    expect(JSON.stringify(plain.resources)).not.toContain(PROVISIONING_HOOK_FUNCTION_NAME);
    expect(plain.outputs.ProvisioningTemplateName).toBeUndefined();
  });

  it('a template name, a group and an allow-list reach the template, the role and the hook', () => {
    const custom = synth({
      templateName: 'lab_claim',
      thingGroupName: 'lab-pis',
      allowedSerials: ['ABC', 'def', 'abc'],
    });
    const c = custom.stack.fleetProvisioning;
    if (c === undefined) throw new Error('missing');
    const props = render(custom.resources[custom.stack.getLogicalId(c.template)]?.Properties) as Record<
      string,
      unknown
    >;
    expect(props.TemplateName).toBe('lab_claim');
    expect(props.TemplateBody).toBe(pifleetClaimTemplateBody({ thingGroup: 'lab-pis' }));
    const hookId = custom.stack.getLogicalId(c.hook.node.defaultChild as CfnFunction);
    expect(render(custom.resources[hookId]?.Properties?.Environment)).toMatchObject({
      Variables: { PIFLEET_ALLOWED_SERIALS: 'abc,def' },
    });
    const roleGroups = roleGrants(
      custom.resources,
      custom.stack.getLogicalId(c.provisioningRole.node.defaultChild as CfnFunction),
    )
      .filter((g) => g.resource.includes('thinggroup/'))
      .map((g) => g.resource);
    expect(new Set(roleGroups)).toEqual(new Set([ARN('thinggroup/lab-pis')]));
  });

  it('the largest allow-list Lambda takes is accepted, one serial more is refused at synth', () => {
    // 16-digit serials plus a comma; LOG_LEVEL=info, NODE_OPTIONS and the variable's name take the rest.
    const fixed = 'LOG_LEVEL'.length + 'info'.length + 'NODE_OPTIONS'.length + '--enable-source-maps'.length;
    const room = LAMBDA_ENVIRONMENT_LIMIT - fixed - 'PIFLEET_ALLOWED_SERIALS'.length;
    const fits = Math.floor((room + 1) / 17);
    const serials = (n: number) => Array.from({ length: n }, (_, i) => i.toString(16).padStart(16, '0'));
    expect(() => synth({ allowedSerials: serials(fits) })).not.toThrow();
    expect(fits).toBeGreaterThan(200);
    expect(() => synth({ allowedSerials: serials(fits + 1) })).toThrow(
      expect.objectContaining({ name: 'DeploymentError', code: 'BAD_SETTING', message: expect.stringMatching(/4096/) }),
    );
  });

  it.each<[string, Partial<FleetProvisioningSettings>]>([
    ['a template name too long', { templateName: 'x'.repeat(37) }],
    ['a template name with a slash', { templateName: 'a/b' }],
    ['a thing group name with a space', { thingGroupName: 'lab pis' }],
    ['an empty allow-list', { allowedSerials: [] }],
    ['an allow-list entry that is not a serial', { allowedSerials: ['abc', 'pi#7'] }],
  ])('refuses %s at synth', (_, settings) => {
    expect(() => synth(settings)).toThrow(expect.objectContaining({ name: 'DeploymentError', code: 'BAD_SETTING' }));
  });
});

describe('the hook as Lambda runs it', () => {
  const run = promisify(execFile);
  const outDir = mkdtempSync(path.join(os.tmpdir(), 'pifleet-hook-bundle-'));
  let dir = '';
  beforeAll(async () => {
    const bundled = await bundleHandlers({ names: [PROVISIONING_HOOK_BUNDLE], outDir });
    dir = bundled.dirs[PROVISIONING_HOOK_BUNDLE] ?? '';
  }, 120_000);
  afterAll(() => rmSync(outDir, { recursive: true, force: true }));

  /** Invokes the bundle's `handler` in a plain node outside the workspace; the answer is the last stdout line. */
  async function invoke(event: unknown, env: Record<string, string> = {}) {
    const script = `
      const m = await import(${JSON.stringify(path.join(dir, 'index.mjs'))});
      const answer = await m.handler(${JSON.stringify(event)});
      console.log(JSON.stringify({ arity: m.handler.length, answer }));`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '', ...env },
      timeout: 30_000,
    });
    const lines = stdout.trim().split('\n');
    return {
      result: JSON.parse(lines.at(-1) ?? '{}') as { arity: number; answer: unknown },
      logs: lines.slice(0, -1).map((l) => JSON.parse(l) as Record<string, unknown>),
    };
  }

  const event = (SerialNumber: unknown) => ({
    claimCertificateId: 'c'.repeat(64),
    certificateId: 'd'.repeat(64),
    certificatePem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
    templateArn: 'arn:aws:iot:eu-west-1:123456789012:provisioningtemplate/pifleet-claim',
    clientId: 'boot-1',
    parameters: { SerialNumber },
  });

  it('allows a well-formed serial, lower-cased, and logs JSON lines for CloudWatch without the PEM', async () => {
    const { result, logs } = await invoke(event('10000000ABCDEF01'));
    expect(result).toEqual({
      arity: 1,
      answer: { allowProvisioning: true, parameterOverrides: { SerialNumber: '10000000abcdef01' } },
    });
    expect(logs.map((l) => l.msg)).toEqual(['provisioning hook ready', 'provisioning allowed']);
    expect(logs[1]).toMatchObject({ handler: 'provisioning-hook', serialNumber: '10000000abcdef01' });
    expect(JSON.stringify(logs)).not.toContain('BEGIN CERTIFICATE');
  });

  it('reads the allow-list from its environment, as the stack sets it', async () => {
    const env = { PIFLEET_ALLOWED_SERIALS: 'abc,def' };
    await expect(invoke(event('DEF'), env)).resolves.toMatchObject({ result: { answer: { allowProvisioning: true } } });
    const denied = await invoke(event('xyz'), env);
    expect(denied.result.answer).toEqual({ allowProvisioning: false });
    expect(denied.logs.at(-1)).toMatchObject({ msg: 'provisioning denied', reason: 'SERIAL_NOT_ALLOWED' });
  });

  it('denies a hostile event instead of failing the invocation', async () => {
    const { result } = await invoke({ parameters: { SerialNumber: { $gt: '' } } });
    expect(result.answer).toEqual({ allowProvisioning: false });
  });
});

describe('the CDK app', () => {
  it('refuses a pifleet:fleetProvisioning that is neither true nor false, before bundling', async () => {
    await expect(buildPifleetApp({ context: { 'pifleet:fleetProvisioning': 'yes' } })).rejects.toMatchObject({
      name: 'DeploymentError',
      code: 'BAD_SETTING',
    });
  });

  it('refuses a pifleet:provisioningRolePolicy other than scoped or managed, before bundling', async () => {
    await expect(buildPifleetApp({ context: { 'pifleet:provisioningRolePolicy': 'admin' } })).rejects.toMatchObject({
      name: 'DeploymentError',
      code: 'BAD_SETTING',
    });
  });

  it('deploys fleet provisioning by default, with the allow-list from context; off when told', async () => {
    const outdir = mkdtempSync(path.join(os.tmpdir(), 'pifleet-cdk-fp-'));
    try {
      const on = await buildPifleetApp({ outdir, context: { 'pifleet:allowedSerials': 'aaa, BBB' } });
      on.dispose();
      const fpOn = on.stack.fleetProvisioning;
      expect(fpOn?.templateName).toBe(DEFAULT_CLAIM_TEMPLATE_NAME);
      const onResources = Template.fromStack(on.stack).toJSON().Resources as Resources;
      const hook = onResources[on.stack.getLogicalId(fpOn?.hook.node.defaultChild as CfnFunction)];
      expect(render(hook?.Properties?.Environment)).toMatchObject({
        Variables: { PIFLEET_ALLOWED_SERIALS: 'aaa,bbb' },
      });
      expect(on.bundleBytes[PROVISIONING_HOOK_BUNDLE]).toBeGreaterThan(10_000);
      expect(on.stack.templateOptions.description).toMatch(/, fleet provisioning by claim$/);

      const off = await buildPifleetApp({ outdir, context: { 'pifleet:fleetProvisioning': 'false' } });
      off.dispose();
      expect(off.stack.fleetProvisioning).toBeUndefined();
      expect(off.bundleBytes[PROVISIONING_HOOK_BUNDLE]).toBeUndefined();
      expect(off.stack.templateOptions.description).not.toMatch(/fleet provisioning/);
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  }, 180_000);
});
