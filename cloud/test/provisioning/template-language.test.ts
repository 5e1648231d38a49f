import { describe, expect, it } from 'vitest';
import {
  checkProvisioningTemplate,
  evaluateProvisioningTemplate,
  MAX_EVALUATED_STRING_CHARS,
  MAX_TEMPLATE_BODY_CHARS,
  type ProvisioningPlan,
  type TemplateErrorCode,
} from '../../src/provisioning/template-language.js';
import {
  BULK_CERTIFICATE_ID_TEMPLATE,
  BULK_CSR_TEMPLATE,
  CLI_EXAMPLE,
  FLEET_EXAMPLE,
  RESOURCE_EXAMPLE,
} from './aws-examples.js';

const CERT_ID = 'a'.repeat(64);
const POLICY_TEXT =
  '{ "Version": "2012-10-17", "Statement": [{ "Effect": "Allow", "Action":["iot:Publish"], "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/foo/bar"] }] }';

/** AWS's fleet example ends with one closing brace more than it opens (see the test below). */
const withoutLastBrace = (body: string) => body.trimEnd().replace(/}$/, '');
/** An example whose thing has no ThingName, named from its SerialNumber parameter. */
const named = (body: string) =>
  body.replace('"AttributePayload" : {', '"ThingName": {"Ref": "SerialNumber"}, "AttributePayload" : {');

function plan(body: string, parameters: Record<string, string> = {}, certificateId = CERT_ID): ProvisioningPlan {
  const result = evaluateProvisioningTemplate(body, parameters, { certificateId });
  if (!result.ok) throw new Error(`${result.code}: ${result.message}`);
  return result.plan;
}

function refused(body: string, code: TemplateErrorCode, message: RegExp, parameters: Record<string, string> = {}) {
  const result = evaluateProvisioningTemplate(body, parameters, { certificateId: CERT_ID });
  expect(result).toMatchObject({ ok: false, code });
  if (!result.ok) expect(result.message).toMatch(message);
}

/** A fleet template around a thing's properties and extra sections. */
function fleet(thingProperties: object, extra: object = {}, parameters: object = {}): string {
  return JSON.stringify({
    Parameters: parameters,
    Resources: {
      thing: { Type: 'AWS::IoT::Thing', Properties: thingProperties },
      certificate: {
        Type: 'AWS::IoT::Certificate',
        Properties: { CertificateId: { Ref: 'AWS::IoT::Certificate::Id' } },
      },
    },
    ...extra,
  });
}

const thingNameOf = (body: string, parameters: Record<string, string> = {}) => plan(body, parameters).thing?.thingName;

describe('declared pseudo parameters', () => {
  const declared = {
    'AWS::IoT::Certificate::Id': { Type: 'String' },
    'AWS::IoT::Certificate::Country': { Type: 'String', Default: 'XX' },
  };

  it("may be declared, as AWS's JITP example does, and take the service's value, not the device's", () => {
    const body = fleet(
      {
        ThingName: {
          'Fn::Join': ['-', [{ Ref: 'AWS::IoT::Certificate::Id' }, { Ref: 'AWS::IoT::Certificate::Country' }]],
        },
      },
      {},
      declared,
    );
    const sent = { 'AWS::IoT::Certificate::Id': 'forged', 'AWS::IoT::Certificate::Country': 'ZZ' };
    expect(thingNameOf(body, sent)).toBe(`${CERT_ID}-XX`);
    const subject = evaluateProvisioningTemplate(body, sent, {
      certificateId: CERT_ID,
      pseudoParameters: { 'AWS::IoT::Certificate::Country': 'DE' },
    });
    expect(subject.ok && subject.plan.thing?.thingName).toBe(`${CERT_ID}-DE`);
  });
});

describe("AWS's documented examples", () => {
  it('bulk registration with a CSR (JITP): the thing, the CSR certificate and the policy document', () => {
    const csr = { SerialNumber: '123', CSR: '-----BEGIN CERTIFICATE REQUEST-----' };
    // The example's thing has no ThingName: it cannot be provisioned as published, and says why.
    const unnamed = evaluateProvisioningTemplate(BULK_CSR_TEMPLATE, csr, {}, { type: 'JITP' });
    expect(unnamed).toMatchObject({ ok: false, code: 'EVALUATION_FAILED' });
    if (!unnamed.ok) expect(unnamed.message).toMatch(/Resources\.thing has no ThingName/);
    const result = evaluateProvisioningTemplate(named(BULK_CSR_TEMPLATE), csr, {}, { type: 'JITP' });
    expect(result).toEqual({
      ok: true,
      plan: {
        thing: {
          logicalName: 'thing',
          thingName: '123',
          thingTypeName: 'lightBulb-versionA',
          thingGroups: ['v1-lightbulbs', 'WA'],
          attributes: { version: 'v1', serialNumber: '123' },
          overrideSettings: {},
        },
        certificate: {
          logicalName: 'certificate',
          source: { kind: 'csr', certificateSigningRequest: '-----BEGIN CERTIFICATE REQUEST-----' },
          status: 'ACTIVE',
          overrideSettings: {},
        },
        policies: [{ logicalName: 'policy', policyDocument: POLICY_TEXT }],
        deviceConfiguration: {},
      },
    });
  });

  it('a fleet provisioning template may not take a CSR ("Only certificate IDs can be used")', () => {
    expect(checkProvisioningTemplate(BULK_CSR_TEMPLATE)).toMatchObject({ ok: false, code: 'TEMPLATE_INVALID' });
    expect(checkProvisioningTemplate(BULK_CSR_TEMPLATE, { type: 'JITP' }).ok).toBe(true);
  });

  it('bulk registration with a certificate ID: the Default of Location applies, the sent value wins', () => {
    const p = plan(named(BULK_CERTIFICATE_ID_TEMPLATE), { SerialNumber: 's1', CertificateId: 'c1' });
    expect(p.certificate?.source).toEqual({ kind: 'certificateId', certificateId: 'c1' });
    expect(p.thing?.thingGroups).toEqual(['v1-lightbulbs', 'WA']);
    expect(
      plan(named(BULK_CERTIFICATE_ID_TEMPLATE), { SerialNumber: 's1', CertificateId: 'c1', Location: 'OR' }).thing
        ?.thingGroups,
    ).toEqual(['v1-lightbulbs', 'OR']);
  });

  it('the resource example: OverrideSettings MERGE / REPLACE / DO_NOTHING reach the plan', () => {
    const result = evaluateProvisioningTemplate(
      named(RESOURCE_EXAMPLE),
      { SerialNumber: 'x', Location: 'WA', CSR: 'csr' },
      {},
      { type: 'JITP' },
    );
    expect(result.ok && result.plan.thing?.overrideSettings).toEqual({
      attributePayload: 'MERGE',
      thingTypeName: 'REPLACE',
      thingGroups: 'DO_NOTHING',
    });
  });

  it('the fleet example as published has one closing brace too many: refused as not JSON', () => {
    expect(checkProvisioningTemplate(FLEET_EXAMPLE)).toMatchObject({ ok: false, code: 'TEMPLATE_NOT_JSON' });
  });

  it('the fleet example (brace fixed): Join, FindInMap over a Mapping, the certificate ID pseudo parameter, "Active"', () => {
    const body = withoutLastBrace(FLEET_EXAMPLE);
    expect(checkProvisioningTemplate(body).ok).toBe(true);
    // It names no ThingName: a device cannot be provisioned with it, and the error says why.
    refused(body, 'EVALUATION_FAILED', /thing has no ThingName|has no ThingName/, {
      SerialNumber: '42',
      DeviceLocation: 'Seattle',
    });
    const p = plan(named(body), { SerialNumber: '42', DeviceLocation: 'Seattle' });
    expect(p.thing).toMatchObject({
      thingName: '42',
      thingTypeName: 'ThingPrefix_42',
      billingGroup: 'LightBulbBillingGroup',
      attributes: { version: 'v1', serialNumber: 'serialNumber' },
    });
    expect(p.certificate).toEqual({
      logicalName: 'certificate',
      source: { kind: 'certificateId', certificateId: CERT_ID },
      status: 'ACTIVE',
      overrideSettings: {},
    });
    expect(JSON.parse(p.policies[0]?.policyDocument ?? '')).toEqual(JSON.parse(POLICY_TEXT));
    expect(p.deviceConfiguration).toEqual({
      FallbackUrl: 'https://www.example.com/test-site',
      LocationUrl: 'https://example.aws',
    });
    // A location the mapping does not have.
    refused(named(body), 'EVALUATION_FAILED', /LocationTable has no Portland\.LocationUrl/, {
      SerialNumber: '42',
      DeviceLocation: 'Portland',
    });
  });

  it('the CLI example, one closing brace too many as published; fixed: an undeclared SerialNumber takes the value the device sends, and fails when none is sent', () => {
    expect(checkProvisioningTemplate(CLI_EXAMPLE)).toMatchObject({ ok: false, code: 'TEMPLATE_NOT_JSON' });
    const body = withoutLastBrace(CLI_EXAMPLE);
    expect(checkProvisioningTemplate(body).ok).toBe(true);
    expect(thingNameOf(body, { DeviceLocation: 'Seattle', SerialNumber: '7' })).toBe('ThingPrefix_7');
    refused(body, 'PARAMETER_INVALID', /'SerialNumber' has no value/, { DeviceLocation: 'Seattle' });
  });
});

describe('parameters', () => {
  const body = fleet({ ThingName: { Ref: 'Name' } }, {}, { Name: { Type: 'String' } });

  it('a declared parameter without value or default is refused; a non-string value too', () => {
    refused(body, 'PARAMETER_INVALID', /'Name' has no value and no default/);
    refused(body, 'PARAMETER_INVALID', /'Name' must be a string/, { Name: 5 as unknown as string });
  });

  it.each([
    [{ Name: { Type: 'Number' } }, /Type must be "String"/],
    [{ Name: { Type: 'String', Default: 1 } }, /Default must be a string/],
    [{ Name: { Type: 'String', AllowedValues: ['a'] } }, /unknown key 'AllowedValues'/],
    [{ 'AWS::NoValue': { Type: 'String' } }, /AWS::NoValue cannot be declared/],
  ])('declaration %j is refused', (parameters, message) => {
    refused(fleet({ ThingName: 'x' }, {}, parameters), 'TEMPLATE_INVALID', message);
  });
});

describe('intrinsic functions', () => {
  const params = { Serial: 'ab-cd-ef', Csv: 'x,y,z' };
  const declared = { Serial: { Type: 'String' }, Csv: { Type: 'String' } };
  const name = (expr: unknown, extra: object = {}) => thingNameOf(fleet({ ThingName: expr }, extra, declared), params);

  it.each([
    ['Fn::Join', { 'Fn::Join': ['-', ['pi', { Ref: 'Serial' }]] }, 'pi-ab-cd-ef'],
    ['Fn::Join with an empty delimiter', { 'Fn::Join': ['', ['a', 'b']] }, 'ab'],
    ['Fn::Split then Fn::Select', { 'Fn::Select': [1, { 'Fn::Split': ['-', { Ref: 'Serial' }] }] }, 'cd'],
    ['Fn::Select with a string index', { 'Fn::Select': ['2', { 'Fn::Split': [',', { Ref: 'Csv' }] }] }, 'z'],
    ['Fn::Sub', { 'Fn::Sub': 'pi-${Serial}' }, 'pi-ab-cd-ef'],
    ['Fn::Sub with a variable map', { 'Fn::Sub': ['${A}-${Serial}', { A: { Ref: 'Csv' } }] }, 'x,y,z-ab-cd-ef'],
    ['Fn::Sub with a literal ${!x}', { 'Fn::Sub': 'a${!Serial}' }, 'a${Serial}'],
    ['Fn::Sub with the certificate ID', { 'Fn::Sub': '${AWS::IoT::Certificate::Id}' }, CERT_ID],
  ])('%s', (_name, expr, expected) => {
    expect(name(expr)).toBe(expected);
  });

  it('Fn::FindInMap with keys from parameters', () => {
    const extra = { Mappings: { Sites: { 'ab-cd-ef': { Name: 'site-7' } } } };
    expect(name({ 'Fn::FindInMap': ['Sites', { Ref: 'Serial' }, 'Name'] }, extra)).toBe('site-7');
  });

  it.each([
    [
      'Fn::Select out of range',
      { 'Fn::Select': [5, { 'Fn::Split': [',', { Ref: 'Csv' }] }] },
      /index 5 is out of range for a list of 3/,
    ],
    ['Fn::Join of a non-list', { 'Fn::Join': ['', { Ref: 'Serial' }] }, /must be a list of strings/],
    ['a list where a string goes', { 'Fn::Split': [',', { Ref: 'Csv' }] }, /ThingName must be a string/],
  ])('%s fails at evaluation', (_name, expr, message) => {
    refused(fleet({ ThingName: expr }, {}, declared), 'EVALUATION_FAILED', message, params);
  });

  it.each([
    ['an unknown function', { 'Fn::Base64': 'x' }, /unknown or unsupported function 'Fn::Base64'/],
    [
      'Fn::GetAtt (not documented for provisioning templates)',
      { 'Fn::GetAtt': ['thing', 'Arn'] },
      /Fn::GetAtt is not supported/,
    ],
    ['Fn::Sub with an attribute', { 'Fn::Sub': '${thing.Arn}' }, /an attribute\) is not supported/],
    ['Fn::Join with one argument', { 'Fn::Join': ['-'] }, /Fn::Join takes a list of 2 arguments/],
    ['Fn::Select with a negative index', { 'Fn::Select': [-1, ['a']] }, /non-negative integer/],
    ['Fn::Split with an empty delimiter', { 'Fn::Split': ['', 'a'] }, /non-empty string/],
    ['Fn::FindInMap on no mapping', { 'Fn::FindInMap': ['Nope', 'a', 'b'] }, /no mapping named 'Nope'/],
    ['Fn::If on no condition', { 'Fn::If': ['Nope', 'a', 'b'] }, /must name a condition/],
    ['a condition function as a value', { 'Fn::Equals': ['a', 'a'] }, /belongs in the Conditions section/],
    ['Ref to a non-string', { Ref: 5 }, /Ref takes a name/],
    ['null', null, /null is not a value/],
  ])('%s is refused by the static check', (_name, expr, message) => {
    const result = checkProvisioningTemplate(fleet({ ThingName: expr }, {}, declared));
    expect(result).toMatchObject({ ok: false, code: 'TEMPLATE_INVALID' });
    if (!result.ok) expect(result.message).toMatch(message);
  });

  it('mapping values are literals: a function inside Mappings is refused', () => {
    refused(
      fleet({ ThingName: 'x' }, { Mappings: { M: { a: { b: { Ref: 'Serial' } } } } }, declared),
      'TEMPLATE_INVALID',
      /a mapping value must be a string or a list of strings/,
    );
  });
});

describe('conditions', () => {
  const parameters = { Env: { Type: 'String', Default: 'prod' }, Site: { Type: 'String', Default: 'a' } };
  const conditions = {
    IsProd: { 'Fn::Equals': [{ Ref: 'Env' }, 'prod'] },
    IsSiteA: { 'Fn::Equals': ['a', { Ref: 'Site' }] },
    ProdA: { 'Fn::And': [{ Condition: 'IsProd' }, { Condition: 'IsSiteA' }] },
    NotProd: { 'Fn::Not': [{ Condition: 'IsProd' }] },
    Either: { 'Fn::Or': [{ Condition: 'NotProd' }, { Condition: 'IsSiteA' }] },
  };
  const body = JSON.stringify({
    Parameters: parameters,
    Conditions: conditions,
    Resources: {
      thing: {
        Type: 'AWS::IoT::Thing',
        Properties: {
          ThingName: { 'Fn::If': ['ProdA', 'prod-a', 'other'] },
          ThingGroups: [{ 'Fn::If': ['NotProd', 'staging', { Ref: 'AWS::NoValue' }] }, 'all'],
          ThingTypeName: { 'Fn::If': ['Either', 'pi', { Ref: 'AWS::NoValue' }] },
        },
      },
      certificate: {
        Type: 'AWS::IoT::Certificate',
        Properties: { CertificateId: { Ref: 'AWS::IoT::Certificate::Id' } },
      },
      stagingPolicy: { Type: 'AWS::IoT::Policy', Condition: 'NotProd', Properties: { PolicyName: 'staging-policy' } },
      policy: { Type: 'AWS::IoT::Policy', Properties: { PolicyName: 'pifleet-device' } },
    },
  });

  it.each([
    [{}, { thingName: 'prod-a', thingGroups: ['all'], thingTypeName: 'pi' }, ['pifleet-device']],
    [{ Site: 'b' }, { thingName: 'other', thingGroups: ['all'] }, ['pifleet-device']],
    [
      { Env: 'dev', Site: 'b' },
      { thingName: 'other', thingGroups: ['staging', 'all'], thingTypeName: 'pi' },
      ['staging-policy', 'pifleet-device'],
    ],
  ])('with %j: Fn::If, AWS::NoValue and a resource Condition', (values, thing, policyNames) => {
    const p = plan(body, values);
    expect(p.thing).toMatchObject(thing);
    if (!('thingTypeName' in thing)) expect(p.thing).not.toHaveProperty('thingTypeName');
    expect(p.policies.map((x) => x.policyName)).toEqual(policyNames);
  });

  it.each([
    [{ A: { Condition: 'A' } }, /condition 'A' refers to itself/],
    [
      {
        A: { 'Fn::Not': [{ Condition: 'B' }] },
        B: { 'Fn::And': [{ Condition: 'C' }, { Condition: 'C' }] },
        C: { Condition: 'A' },
      },
      /refers to itself/,
    ],
    [{ A: { Condition: 'Nope' } }, /must name a condition/],
    [{ A: { 'Fn::Equals': [{ 'Fn::If': ['A', 'x', 'y'] }, 'x'] } }, /condition 'A' refers to itself/],
    [{ A: { 'Fn::Equals': [{ Ref: 'thing' }, 'x'] } }, /a condition cannot refer to the resource 'thing'/],
    [{ A: 'yes' }, /a condition must be/],
    [{ A: { 'Fn::Join': ['', []] } }, /Fn::Join is not a condition function/],
    [{ A: { 'Fn::And': [{ Condition: 'B' }] }, B: { 'Fn::Equals': ['a', 'a'] } }, /Fn::And takes a list of 2 to 10/],
  ])('Conditions %j are refused', (conds, message) => {
    refused(fleet({ ThingName: 'x' }, { Conditions: conds }), 'TEMPLATE_INVALID', message);
  });

  it('a long chain of conditions is evaluated without recursion trouble, and each once (memoized)', () => {
    const chain: Record<string, unknown> = { C0: { 'Fn::Equals': ['a', 'a'] } };
    // Each condition names the previous one twice: without memoizing, 2^120 evaluations.
    for (let i = 1; i <= 120; i++)
      chain[`C${i}`] = { 'Fn::And': [{ Condition: `C${i - 1}` }, { Condition: `C${i - 1}` }] };
    const body2 = fleet({ ThingName: { 'Fn::If': ['C120', 'deep', 'shallow'] } }, { Conditions: chain });
    expect(body2.length).toBeLessThan(MAX_TEMPLATE_BODY_CHARS);
    expect(thingNameOf(body2)).toBe('deep');
  });
});

describe('resources', () => {
  it('Ref to a resource gives its name; a resource naming itself is a cycle', () => {
    const body = JSON.stringify({
      Resources: {
        thing: {
          Type: 'AWS::IoT::Thing',
          Properties: { ThingName: 'pi-1', AttributePayload: { self: { Ref: 'thing' } } },
        },
        policy: { Type: 'AWS::IoT::Policy', Properties: { PolicyName: { 'Fn::Sub': '${thing}-policy' } } },
      },
    });
    const p = plan(body);
    expect(p.thing?.attributes).toEqual({ self: 'pi-1' });
    expect(p.policies).toEqual([{ logicalName: 'policy', policyName: 'pi-1-policy' }]);

    const cycle = JSON.stringify({
      Resources: {
        a: { Type: 'AWS::IoT::Thing', Properties: { ThingName: { Ref: 'b' } } },
        b: { Type: 'AWS::IoT::Policy', Properties: { PolicyName: { 'Fn::Join': ['', [{ Ref: 'a' }]] } } },
      },
    });
    refused(cycle, 'TEMPLATE_INVALID', /refers to itself/);
  });

  it.each([
    [{ x: { Type: 'AWS::S3::Bucket' } }, /Type must be AWS::IoT::Thing/],
    [{ x: { Type: 'AWS::IoT::Thing', Properties: { ThingName: 'a', Color: 'red' } } }, /unknown property 'Color'/],
    [{ x: { Type: 'AWS::IoT::Thing', Properties: { ThingName: 'a' }, Metadata: {} } }, /unknown key 'Metadata'/],
    [
      {
        x: { Type: 'AWS::IoT::Thing', Properties: { ThingName: 'a' } },
        y: { Type: 'AWS::IoT::Thing', Properties: { ThingName: 'b' } },
      },
      /at most one AWS::IoT::Thing/,
    ],
    [
      { x: { Type: 'AWS::IoT::Certificate', Properties: {} } },
      /exactly one of CertificateSigningRequest, CertificateId and CertificatePem/,
    ],
    [
      { x: { Type: 'AWS::IoT::Certificate', Properties: { CertificateId: 'a', CertificateSigningRequest: 'b' } } },
      /exactly one of/,
    ],
    [{ x: { Type: 'AWS::IoT::Policy', Properties: {} } }, /PolicyName or PolicyDocument, not both and not neither/],
    [{ x: { Type: 'AWS::IoT::Policy', Properties: { PolicyName: 'a', PolicyDocument: '{}' } } }, /not both/],
    [
      { x: { Type: 'AWS::IoT::Policy', Properties: { PolicyName: 'a' }, OverrideSettings: {} } },
      /not available for policy resources/,
    ],
    [
      { x: { Type: 'AWS::IoT::Thing', Properties: { ThingName: 'a' }, OverrideSettings: { ThingName: 'REPLACE' } } },
      /'ThingName' cannot be overridden/,
    ],
    [
      { x: { Type: 'AWS::IoT::Thing', Properties: { ThingName: 'a' }, OverrideSettings: { ThingGroups: 'KEEP' } } },
      /must be one of DO_NOTHING, REPLACE, FAIL, MERGE/,
    ],
    [
      { x: { Type: 'AWS::IoT::Thing', Properties: { ThingName: 'a' }, OverrideSettings: { ThingTypeName: 'MERGE' } } },
      /MERGE is valid only/,
    ],
    [
      {
        x: { Type: 'AWS::IoT::Certificate', Properties: { CertificateId: 'a' }, OverrideSettings: { Status: 'MERGE' } },
      },
      /MERGE is valid only/,
    ],
    [
      { x: { Type: 'AWS::IoT::Thing', Properties: { ThingName: 'a' }, Condition: 'Nope' } },
      /Condition must name a condition/,
    ],
  ])('%j is refused', (resources, message) => {
    refused(JSON.stringify({ Resources: resources }), 'TEMPLATE_INVALID', message);
  });

  it('FAIL and the upper-case override names of the guide are accepted; Status is read without case', () => {
    const body = JSON.stringify({
      Resources: {
        t: {
          Type: 'AWS::IoT::Thing',
          Properties: { ThingName: 'a' },
          OverrideSettings: { THING_GROUPS: 'MERGE', THING_TYPE_NAME: 'FAIL' },
        },
        c: {
          Type: 'AWS::IoT::Certificate',
          Properties: { CertificateID: 'id', Status: 'inactive' },
          OverrideSettings: { Status: 'REPLACE' },
        },
      },
    });
    const p = plan(body);
    expect(p.thing?.overrideSettings).toEqual({ thingGroups: 'MERGE', thingTypeName: 'FAIL' });
    expect(p.certificate).toMatchObject({
      status: 'INACTIVE',
      source: { certificateId: 'id' },
      overrideSettings: { status: 'REPLACE' },
    });
    refused(body.replace('inactive', 'revoked'), 'EVALUATION_FAILED', /Status must be ACTIVE or INACTIVE/);
  });
});

describe('hostile input', () => {
  it('a template body over 10,240 characters is refused before it is parsed; exactly 10,240 is not', () => {
    const pad = (n: number) => {
      const base = fleet({ ThingName: 'x' }).slice(0, -1);
      const prefix = ',"DeviceConfiguration":{"p":"';
      const suffix = '"}}';
      return `${base}${prefix}${'x'.repeat(n - base.length - prefix.length - suffix.length)}${suffix}`;
    };
    expect(pad(MAX_TEMPLATE_BODY_CHARS).length).toBe(MAX_TEMPLATE_BODY_CHARS);
    expect(checkProvisioningTemplate(pad(MAX_TEMPLATE_BODY_CHARS)).ok).toBe(true);
    expect(checkProvisioningTemplate(pad(MAX_TEMPLATE_BODY_CHARS + 1))).toMatchObject({
      ok: false,
      code: 'TEMPLATE_TOO_LARGE',
    });
    expect(checkProvisioningTemplate(`{${' '.repeat(5_000_000)}}`)).toMatchObject({
      ok: false,
      code: 'TEMPLATE_TOO_LARGE',
    });
  });

  it('characters are counted, not UTF-16 units: 10,240 emoji is within the limit', () => {
    const emoji = '😀'.repeat(MAX_TEMPLATE_BODY_CHARS - 2);
    expect(checkProvisioningTemplate(`"${emoji}"`)).toMatchObject({ code: 'TEMPLATE_INVALID' });
  });

  it('10,000-deep JSON is refused as too deep (and a 10,000-deep Fn::Not chain cannot even be written in 10 KB)', () => {
    const deep = `${'['.repeat(10_000)}${']'.repeat(10_000)}`;
    // Over the size limit first; a deep body within the size limit is refused for its depth.
    expect(checkProvisioningTemplate(deep)).toMatchObject({ ok: false, code: 'TEMPLATE_TOO_LARGE' });
    const within = `{"Resources":${'['.repeat(5_000)}${']'.repeat(5_000)}}`;
    const result = checkProvisioningTemplate(within);
    expect(result).toMatchObject({ ok: false, code: 'TEMPLATE_NOT_JSON' });
    if (!result.ok) expect(result.message).toMatch(/nested more than 64 levels/);
  });

  it.each([
    ['not JSON', '{"Resources": ', 'TEMPLATE_NOT_JSON'],
    ['a JSON array', '[]', 'TEMPLATE_INVALID'],
    ['a string', '"x"', 'TEMPLATE_INVALID'],
    ['no Resources', '{}', 'TEMPLATE_INVALID'],
    ['an unknown section', '{"Resources":{},"Outputs":{}}', 'TEMPLATE_INVALID'],
    ['a null section', '{"Resources":null}', 'TEMPLATE_INVALID'],
  ] as const)('%s is refused', (_name, body, code) => {
    expect(checkProvisioningTemplate(body)).toMatchObject({ ok: false, code });
  });

  it('__proto__ keys are data: parameters, mappings, attributes and device configuration', () => {
    const body = `{
      "Parameters": {"__proto__": {"Type": "String"}, "constructor": {"Type": "String", "Default": "c"}},
      "Mappings": {"__proto__": {"__proto__": {"__proto__": "mapped"}}},
      "Resources": {"thing": {"Type": "AWS::IoT::Thing", "Properties": {
        "ThingName": {"Fn::FindInMap": ["__proto__", "__proto__", "__proto__"]},
        "AttributePayload": {"__proto__": {"Ref": "__proto__"}, "toString": {"Ref": "constructor"}}}}},
      "DeviceConfiguration": {"__proto__": {"Ref": "__proto__"}}
    }`;
    const p = plan(body, JSON.parse('{"__proto__": "polluted?"}') as Record<string, string>);
    expect(p.thing?.thingName).toBe('mapped');
    expect(Object.getOwnPropertyDescriptor(p.thing?.attributes, '__proto__')?.value).toBe('polluted?');
    expect(Object.getOwnPropertyDescriptor(p.thing?.attributes, 'toString')?.value).toBe('c');
    expect(Object.getOwnPropertyDescriptor(p.deviceConfiguration, '__proto__')?.value).toBe('polluted?');
    expect(Object.getPrototypeOf(p.thing?.attributes)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    // A parameter named like an Object.prototype member is not "declared" by inheritance.
    refused(fleet({ ThingName: { Ref: 'hasOwnProperty' } }), 'PARAMETER_INVALID', /'hasOwnProperty' has no value/);
  });

  it('an evaluated string cannot grow past the bound (Fn::Sub or Fn::Join repeating a large parameter)', () => {
    const declared = { P: { Type: 'String' } };
    const big = 'x'.repeat(10_000);
    const sub = fleet({ ThingName: { 'Fn::Sub': '${P}'.repeat(10) } }, {}, declared);
    refused(sub, 'EVALUATION_FAILED', new RegExp(`longer than ${MAX_EVALUATED_STRING_CHARS}`), { P: big });
    const join = fleet(
      { ThingName: { 'Fn::Join': ['', Array.from({ length: 10 }, () => ({ Ref: 'P' }))] } },
      {},
      declared,
    );
    refused(join, 'EVALUATION_FAILED', /longer than/, { P: big });
    refused(fleet({ ThingName: { Ref: 'P' } }, {}, declared), 'EVALUATION_FAILED', /longer than/, {
      P: 'x'.repeat(MAX_EVALUATED_STRING_CHARS + 1),
    });
  });
});
