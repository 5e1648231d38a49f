import {
  claimPolicyDocument,
  DEFAULT_CLAIM_TEMPLATE_NAME,
  pifleetClaimTemplateBody,
  RECOMMENDED_POLICY_NAME,
} from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import type { IotAction, PolicyContext } from '../../src/core/policy/context.js';
import { evaluatePolicies } from '../../src/core/policy/index.js';
import { checkProvisioningTemplate, evaluateProvisioningTemplate } from '../../src/provisioning/template-language.js';

/**
 * protocol's default claim template and claim policy, as the local core reads them: the template
 * passes CreateProvisioningTemplate's static check and evaluates to the plan RegisterThing applies;
 * the policy, through the broker's evaluator, lets a claim connection provision and do nothing else.
 */

const CERT_ID = 'a'.repeat(64);

describe('the default claim template in the local core', () => {
  it('passes the static check', () => {
    expect(checkProvisioningTemplate(pifleetClaimTemplateBody())).toMatchObject({ ok: true });
  });

  it('evaluates a Pi’s facts to its thing, the certificate made ACTIVE and the device policy', () => {
    const result = evaluateProvisioningTemplate(
      pifleetClaimTemplateBody(),
      { SerialNumber: '10000000abcdef01', Model: 'Raspberry Pi 4 Model B Rev 1.4', MacAddress: 'dc:a6:32:01:02:03' },
      { certificateId: CERT_ID },
    );
    expect(result).toEqual({
      ok: true,
      plan: {
        thing: {
          logicalName: 'thing',
          thingName: 'pi-10000000abcdef01',
          thingGroups: ['pifleet-claimed'],
          attributes: { serial: '10000000abcdef01', model: 'Raspberry_Pi_4_Model_B_Rev_1.4', mac: 'dc:a6:32:01:02:03' },
          overrideSettings: { attributePayload: 'MERGE', thingGroups: 'MERGE' },
        },
        certificate: {
          logicalName: 'certificate',
          source: { kind: 'certificateId', certificateId: CERT_ID },
          status: 'ACTIVE',
          overrideSettings: {},
        },
        policies: [{ logicalName: 'policy', policyName: RECOMMENDED_POLICY_NAME }],
        deviceConfiguration: {},
      },
    });
  });

  it('fills Model and MacAddress with their defaults and names the thing with the options', () => {
    const result = evaluateProvisioningTemplate(
      pifleetClaimTemplateBody({ thingGroup: 'lab', thingNamePrefix: 'lab-', policyName: 'lab-device' }),
      { SerialNumber: '00000000deadbeef' },
      { certificateId: CERT_ID },
    );
    expect(result).toMatchObject({
      ok: true,
      plan: {
        thing: { thingName: 'lab-00000000deadbeef', thingGroups: ['lab'], attributes: { model: 'unknown', mac: '' } },
        policies: [{ policyName: 'lab-device' }],
      },
    });
  });

  it('fails without a SerialNumber (the one required parameter)', () => {
    const result = evaluateProvisioningTemplate(pifleetClaimTemplateBody(), { Model: 'x' }, { certificateId: CERT_ID });
    expect(result).toMatchObject({ ok: false, code: 'PARAMETER_INVALID' });
    if (!result.ok) expect(result.message).toContain('SerialNumber');
  });

  it('keeps a hostile parameter as data (`__proto__` keys among the parameters are not declared)', () => {
    const parameters = JSON.parse('{"SerialNumber":"1234","__proto__":{"polluted":"yes"}}') as Record<string, string>;
    const result = evaluateProvisioningTemplate(pifleetClaimTemplateBody(), parameters, { certificateId: CERT_ID });
    expect(result).toMatchObject({ ok: true, plan: { thing: { thingName: 'pi-1234' } } });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('the claim policy in the local core’s evaluator', () => {
  const ctx: PolicyContext = {
    region: 'us-east-1',
    accountId: '123456789012',
    clientId: 'pifleet-claim-10000000abcdef01',
    thingNames: [],
  };
  const arn = (kind: string, name: string) => `arn:aws:iot:${ctx.region}:${ctx.accountId}:${kind}/${name}`;
  const policies = [
    { name: 'pifleet-claim', document: claimPolicyDocument({ region: ctx.region, accountId: ctx.accountId }) },
  ];
  const allowed = (action: IotAction, resource: string) => evaluatePolicies(policies, ctx, action, resource).allowed;
  const own = `$aws/provisioning-templates/${DEFAULT_CLAIM_TEMPLATE_NAME}/provision/json`;

  it.each([
    ['iot:Connect', arn('client', 'pifleet-claim-10000000abcdef01')],
    ['iot:Connect', arn('client', 'pifleet-claim-0123456789abcdef')],
    ['iot:Publish', arn('topic', '$aws/certificates/create/json')],
    ['iot:Publish', arn('topic', '$aws/certificates/create-from-csr/json')],
    ['iot:Publish', arn('topic', own)],
    ['iot:Receive', arn('topic', '$aws/certificates/create-from-csr/json/accepted')],
    ['iot:Receive', arn('topic', `${own}/rejected`)],
    ['iot:Subscribe', arn('topicfilter', '$aws/certificates/create/json/accepted')],
    ['iot:Subscribe', arn('topicfilter', `${own}/accepted`)],
  ] as const)('allows %s on %s', (action, resource) => {
    expect(allowed(action, resource)).toBe(true);
  });

  it.each([
    // A device's own client id: connecting as it would drop that device's connection.
    ['iot:Connect', arn('client', 'pi-10000000abcdef01')],
    ['iot:Connect', arn('client', 'whatever-the-device-picks')],
    ['iot:Connect', arn('client', 'pifleet-clai')],
    ['iot:Publish', arn('topic', '$aws/provisioning-templates/other-template/provision/json')],
    ['iot:Publish', arn('topic', 'pifleet/pi-1/telemetry')],
    ['iot:Publish', arn('topic', '$aws/things/pi-1/shadow/update')],
    ['iot:RetainPublish', arn('topic', '$aws/certificates/create/json')],
    ['iot:Subscribe', arn('topicfilter', '#')],
    ['iot:Subscribe', arn('topicfilter', '$aws/things/+/shadow/#')],
    ['iot:Subscribe', arn('topicfilter', '$aws/provisioning-templates/+/provision/json/accepted')],
    ['iot:Receive', arn('topic', 'pifleet/pi-1/commands')],
  ] as const)('refuses %s on %s', (action, resource) => {
    expect(allowed(action, resource)).toBe(false);
  });
});
