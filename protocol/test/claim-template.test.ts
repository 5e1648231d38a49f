import { describe, expect, it } from 'vitest';
import {
  CLAIM_TEMPLATE_PARAMETERS,
  claimPolicyDocument,
  DEFAULT_CLAIM_TEMPLATE_NAME,
  DEFAULT_CLAIMED_THING_GROUP,
  POLICY_DOCUMENT_MAX_CHARS,
  parseIotPolicyDocument,
  pifleetClaimTemplate,
  pifleetClaimTemplateBody,
  policyDocumentLength,
  RECOMMENDED_POLICY_NAME,
} from '../src/index.js';

/** The default template's shape and the claim policy's grants (the local core's evaluation is in cloud/test/provisioning/claim-template.test.ts). */
describe('pifleetClaimTemplate', () => {
  it('declares the device facts of the contract, with their defaults, and not the certificate ID pseudo parameter', () => {
    const body = pifleetClaimTemplate();
    expect(body.Parameters).toEqual({
      SerialNumber: { Type: 'String' },
      Model: { Type: 'String', Default: 'unknown' },
      MacAddress: { Type: 'String', Default: '' },
    });
    expect(Object.values(CLAIM_TEMPLATE_PARAMETERS)).toEqual(Object.keys(body.Parameters));
    expect(body.DeviceConfiguration).toEqual({});
  });

  it('uses the default group and policy, and the options when given', () => {
    const text = JSON.stringify(pifleetClaimTemplate());
    expect(text).toContain(`"ThingGroups":["${DEFAULT_CLAIMED_THING_GROUP}"]`);
    expect(text).toContain(`"PolicyName":"${RECOMMENDED_POLICY_NAME}"`);
    expect(text).toContain('"Fn::Join":["",["pi-",{"Ref":"SerialNumber"}]]');
    const custom = JSON.stringify(
      pifleetClaimTemplate({ thingGroup: 'lab', policyName: 'lab-device', thingNamePrefix: 'lab-' }),
    );
    expect(custom).toContain('"ThingGroups":["lab"]');
    expect(custom).toContain('"PolicyName":"lab-device"');
    expect(custom).toContain('"Fn::Join":["",["lab-",{"Ref":"SerialNumber"}]]');
    expect(custom).not.toContain(DEFAULT_CLAIMED_THING_GROUP);
  });

  it('gives the body as the string CreateProvisioningTemplate takes', () => {
    expect(JSON.parse(pifleetClaimTemplateBody({ thingGroup: 'g' }))).toEqual(
      pifleetClaimTemplate({ thingGroup: 'g' }),
    );
  });

  it.each([
    [{ thingGroup: '' }, /invalid thing group name ""/],
    [{ thingGroup: 'a/b' }, /invalid thing group name/],
    [{ thingGroup: 'x'.repeat(129) }, /invalid thing group name/],
    [{ policyName: 'has space' }, /invalid policy name/],
    [{ policyName: '' }, /invalid policy name/],
    [{ thingNamePrefix: 'pi/' }, /invalid thing name prefix/],
    [{ thingNamePrefix: 'p'.repeat(65) }, /invalid thing name prefix/],
  ])('refuses %j, which IoT would refuse', (options, message) => {
    expect(() => pifleetClaimTemplate(options)).toThrow(message);
  });

  it('accepts an empty prefix (things named by the serial alone) and names that are reserved object keys elsewhere', () => {
    expect(JSON.stringify(pifleetClaimTemplate({ thingNamePrefix: '' }))).toContain('["",["",{"Ref":"SerialNumber"}]]');
    // A group name is a value in a list, never a key: `__proto__` is a valid (if odd) group name.
    expect(pifleetClaimTemplate({ thingGroup: '__proto__' }).Resources).toHaveProperty('thing.Properties.ThingGroups', [
      '__proto__',
    ]);
  });
});

describe('claimPolicyDocument', () => {
  const ARN = 'arn:aws:iot:eu-west-1:123456789012';

  it('grants connect and the provisioning topics of one template, nothing else', () => {
    expect(claimPolicyDocument({ region: 'eu-west-1', accountId: '123456789012', templateName: 'fleet-a' })).toEqual({
      Version: '2012-10-17',
      Statement: [
        {
          Sid: 'ConnectToProvision',
          Effect: 'Allow',
          Action: 'iot:Connect',
          Resource: `${ARN}:client/pifleet-claim-*`,
        },
        {
          Sid: 'ProvisioningRequests',
          Effect: 'Allow',
          Action: ['iot:Publish', 'iot:Receive'],
          Resource: [
            `${ARN}:topic/$aws/certificates/create/*`,
            `${ARN}:topic/$aws/certificates/create-from-csr/*`,
            `${ARN}:topic/$aws/provisioning-templates/fleet-a/provision/*`,
          ],
        },
        {
          Sid: 'ProvisioningAnswers',
          Effect: 'Allow',
          Action: 'iot:Subscribe',
          Resource: [
            `${ARN}:topicfilter/$aws/certificates/create/*`,
            `${ARN}:topicfilter/$aws/certificates/create-from-csr/*`,
            `${ARN}:topicfilter/$aws/provisioning-templates/fleet-a/provision/*`,
          ],
        },
      ],
    });
  });

  it('takes a partition, or a ready ARN prefix (with or without its trailing colon), and the default template', () => {
    const china = JSON.stringify(claimPolicyDocument({ partition: 'aws-cn', region: 'cn-north-1', accountId: '1' }));
    expect(china).toContain('arn:aws-cn:iot:cn-north-1:1:client/pifleet-claim-*');
    expect(china).toContain(`$aws/provisioning-templates/${DEFAULT_CLAIM_TEMPLATE_NAME}/provision/*`);
    expect(claimPolicyDocument({ arnPrefix: `${ARN}:` })).toEqual(claimPolicyDocument({ arnPrefix: ARN }));
    expect(claimPolicyDocument({ arnPrefix: ARN })).toEqual(
      claimPolicyDocument({ region: 'eu-west-1', accountId: '123456789012' }),
    );
  });

  it('is a valid IoT policy document well inside the 2,048-character limit', () => {
    const text = JSON.stringify(
      claimPolicyDocument({ region: 'ap-southeast-2', accountId: '123456789012', templateName: 't'.repeat(36) }),
    );
    expect(parseIotPolicyDocument(text)).toMatchObject({ ok: true });
    expect(policyDocumentLength(text)).toBeLessThan(POLICY_DOCUMENT_MAX_CHARS);
  });

  it.each(['', 'a/b', '+', '#', 'x'.repeat(37), 'pifleet claim'])('refuses the template name %j', (templateName) => {
    expect(() => claimPolicyDocument({ arnPrefix: ARN, templateName })).toThrow(/invalid provisioning template name/);
  });
});
