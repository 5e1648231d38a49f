import { type IotPolicyDocument, recommendedDevicePolicy } from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import { documentProblems } from '../../src/core/policy/index.js';
import { RegistryError } from '../../src/registry/errors.js';
import { checkPolicyDocument, parsePolicyDocument } from '../../src/registry/validation.js';

/**
 * What CreatePolicy refuses beyond the grammar: anything the local IoT Core would not evaluate as
 * AWS IoT Core does, named in the MalformedPolicyException's message, never ignored.
 */

type Condition = Record<string, Record<string, string | string[]>>;
const withCondition = (Condition: Condition): IotPolicyDocument => ({
  Version: '2012-10-17',
  Statement: [
    { Effect: 'Allow', Action: 'iot:Connect', Resource: '*' },
    { Effect: 'Allow', Action: 'iot:Publish', Resource: '*', Condition },
  ],
});
const withResource = (Resource: string): IotPolicyDocument => ({
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Action: 'iot:Publish', Resource }],
});

function refusal(document: IotPolicyDocument): { code: string; message: string } {
  try {
    checkPolicyDocument(JSON.stringify(document));
  } catch (err) {
    expect(err).toBeInstanceOf(RegistryError);
    return { code: (err as RegistryError).code, message: (err as RegistryError).message };
  }
  throw new Error('expected the document to be refused');
}

describe('checkPolicyDocument (CreatePolicy)', () => {
  it.each<[string, IotPolicyDocument, string]>([
    [
      'an operator IAM does not have',
      withCondition({ StringMaybe: { 'iot:ClientId': 'x' } }),
      'Condition operator StringMaybe is not supported',
    ],
    [
      'Null with IfExists',
      withCondition({ NullIfExists: { 'iot:ClientId': 'true' } }),
      'Condition operator NullIfExists is not supported',
    ],
    [
      'Null with a set operator',
      withCondition({ 'ForAnyValue:Null': { 'iot:ClientId': 'true' } }),
      'Condition operator ForAnyValue:Null is not supported',
    ],
    [
      'a key IoT Core does not set',
      withCondition({ StringEquals: { 'aws:PrincipalTag/team': 'a' } }),
      'Condition key aws:PrincipalTag/team is not a key IoT Core sets for an MQTT connection',
    ],
    [
      'a local-only key of the past',
      withCondition({ StringEquals: { 'aws:Region': 'eu-west-1' } }),
      'Condition key aws:Region is not a key IoT Core sets for an MQTT connection',
    ],
    [
      'a certificate alternative name',
      withCondition({ StringEquals: { 'iot:Certificate.Subject.AlternativeName.DNSName': 'a' } }),
      "Condition key iot:Certificate.Subject.AlternativeName.DNSName is not evaluated by the local IoT Core: the broker does not read the certificate's alternative names",
    ],
    [
      'a multi-value certificate field',
      withCondition({ 'ForAnyValue:StringEquals': { 'iot:Certificate.Subject.Organization.List': 'a' } }),
      'Condition key iot:Certificate.Subject.Organization.List is not evaluated by the local IoT Core: the broker reads the first value of each certificate name field only',
    ],
    [
      'an indexed value of a certificate field',
      withCondition({ StringEquals: { 'iot:Certificate.Issuer.Country.1': 'DE' } }),
      'Condition key iot:Certificate.Issuer.Country.1 is not evaluated by the local IoT Core: the broker reads the first value of each certificate name field only',
    ],
    [
      'a date that is not one',
      withCondition({ DateLessThan: { 'aws:CurrentTime': '2024-02-30' } }),
      "Condition DateLessThan value '2024-02-30' for aws:CurrentTime is not an ISO 8601 date (W3C profile) or epoch seconds",
    ],
    [
      'a date without a zone',
      withCondition({ DateGreaterThan: { 'aws:CurrentTime': '2024-01-01T10:00:00' } }),
      "Condition DateGreaterThan value '2024-01-01T10:00:00' for aws:CurrentTime is not an ISO 8601 date (W3C profile) or epoch seconds",
    ],
    [
      'a variable in a date value',
      withCondition({ DateLessThan: { 'aws:CurrentTime': '${iot:Connection.Thing.Attributes[until]}' } }),
      "Condition DateLessThan value '${iot:Connection.Thing.Attributes[until]}' for aws:CurrentTime takes no policy variables",
    ],
    [
      'a range that is not one',
      withCondition({ IpAddress: { 'aws:SourceIp': '10.0.0.0/33' } }),
      "Condition IpAddress value '10.0.0.0/33' for aws:SourceIp is not an IPv4 or IPv6 address or CIDR range",
    ],
    [
      'a hostname for an address',
      withCondition({ NotIpAddress: { 'aws:SourceIp': 'localhost' } }),
      "Condition NotIpAddress value 'localhost' for aws:SourceIp is not an IPv4 or IPv6 address or CIDR range",
    ],
    [
      'a number that is not one',
      withCondition({ NumericLessThan: { 'aws:EpochTime': 'soon' } }),
      "Condition NumericLessThan value 'soon' for aws:EpochTime is not a number",
    ],
    [
      'a Bool that is neither',
      withCondition({ Bool: { 'aws:SecureTransport': 'yes' } }),
      "Condition Bool value 'yes' for aws:SecureTransport is not 'true' or 'false'",
    ],
    [
      'a Null that is neither',
      withCondition({ Null: { 'aws:SourceIp': '1' } }),
      "Condition Null value '1' for aws:SourceIp is not 'true' or 'false'",
    ],
    [
      'binary that is not base64',
      withCondition({ BinaryEquals: { 'iot:ClientId': 'pi-01' } }),
      "Condition BinaryEquals value 'pi-01' for iot:ClientId is not base64",
    ],
    [
      'an unknown variable in a condition value',
      withCondition({ StringEquals: { 'iot:ClientId': '${iot:Nope}' } }),
      'policy variable ${iot:Nope} is not a key IoT Core sets for an MQTT connection',
    ],
    [
      'an unknown variable in a resource',
      withResource('arn:aws:iot:us-east-1:123456789012:topic/${aws:username}/*'),
      'Resource arn:aws:iot:us-east-1:123456789012:topic/${aws:username}/*: policy variable ${aws:username} is not a key IoT Core sets for an MQTT connection',
    ],
    [
      'a time variable in a resource',
      withResource('arn:aws:iot:us-east-1:123456789012:topic/${aws:CurrentTime}'),
      'Resource arn:aws:iot:us-east-1:123456789012:topic/${aws:CurrentTime}: policy variable ${aws:CurrentTime} is not resolved by the local IoT Core in a policy',
    ],
    [
      'a default that is not quoted',
      withResource('arn:aws:iot:us-east-1:123456789012:topic/${iot:ClientId, none}'),
      'Resource arn:aws:iot:us-east-1:123456789012:topic/${iot:ClientId, none}: policy variable ${iot:ClientId, none} has a default that is not a quoted string',
    ],
  ])('refuses %s', (_name, document, message) => {
    expect(refusal(document)).toEqual({
      code: 'MalformedPolicyException',
      message: `Policy statement ${document.Statement.length - 1}: ${message}.`,
    });
  });

  it('accepts every operator on every key it evaluates, and the recommended policy', () => {
    const everything = withCondition({
      StringEquals: { 'iot:Connection.Thing.Attributes[site]': '${iot:Connection.Thing.ThingName}' },
      StringNotEqualsIfExists: { 'iot:Connection.Thing.ThingTypeName': 'x' },
      StringEqualsIgnoreCase: { 'iot:DomainName': 'IOT.EXAMPLE' },
      StringNotEqualsIgnoreCase: { 'iot:Certificate.Subject.CommonName': 'x' },
      StringLike: { 'iot:Certificate.Issuer.Organization': '*' },
      StringNotLike: { 'iot:Certificate.SerialNumber': 'x*' },
      'ForAllValues:StringEquals': { 'iot:ConnectAttributes': ['PersistentConnect', 'LastWill'] },
      'ForAnyValue:StringLikeIfExists': { 'iot:ConnectAttributes': 'Last*' },
      NumericEquals: { 'aws:EpochTime': '1' },
      NumericNotEquals: { 'aws:EpochTime': '1.5' },
      NumericLessThan: { 'aws:EpochTime': '-1' },
      NumericLessThanEquals: { 'aws:EpochTime': '1' },
      NumericGreaterThan: { 'aws:EpochTime': '1' },
      NumericGreaterThanEqualsIfExists: { 'aws:EpochTime': '1' },
      DateEquals: { 'aws:CurrentTime': '2020' },
      DateNotEquals: { 'aws:CurrentTime': '2020-01' },
      DateLessThan: { 'aws:CurrentTime': '2020-01-01' },
      DateLessThanEquals: { 'aws:CurrentTime': '2020-01-01T00:00Z' },
      DateGreaterThan: { 'iot:Certificate.Validity.NotAfter': '2020-01-01T00:00:00+01:00' },
      DateGreaterThanEquals: { 'iot:Certificate.Validity.NotBefore': '1577836800' },
      Bool: { 'aws:SecureTransport': 'true', 'iot:Connection.Thing.IsAttached': '${iot:Connection.Thing.IsAttached}' },
      BinaryEquals: { 'iot:ClientId': 'cGktMDE=' },
      IpAddress: { 'aws:SourceIp': ['203.0.113.0/24', '2001:DB8:1234:5678::/64'] },
      NotIpAddress: { 'aws:SourceIp': '10.0.0.1' },
      ArnEquals: { 'iot:Connection.Thing.Attributes[role]': 'arn:aws:iam::*:role/*' },
      ArnLike: { 'iot:Connection.Thing.Attributes[role]': 'arn:*' },
      ArnNotEquals: { 'iot:Connection.Thing.Attributes[role]': 'x' },
      ArnNotLike: { 'iot:Connection.Thing.Attributes[role]': 'x' },
      Null: { 'iot:Connection.Thing.ThingTypeName': 'false' },
    });
    expect(documentProblems(everything)).toEqual([]);
    expect(checkPolicyDocument(JSON.stringify(everything))).toEqual(everything);
    const recommended = recommendedDevicePolicy('us-east-1', '123456789012');
    expect(checkPolicyDocument(JSON.stringify(recommended))).toEqual(recommended);
    expect(
      documentProblems(withResource("arn:aws:iot:*:*:topic/${iot:Connection.Thing.Attributes[site], 'none'}/${*}")),
    ).toEqual([]);
  });

  it('reports every problem of every statement, and leaves stored documents to parsePolicyDocument', () => {
    const document: IotPolicyDocument = {
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Action: 'iot:*', NotResource: 'arn:aws:iot:*:*:topic/${iot:Nope}' },
        {
          Effect: 'Deny',
          NotAction: 'iot:Connect',
          Resource: '*',
          Condition: { DateMaybe: { 'aws:CurrentTime': 'x' }, Bool: { 'aws:Nope': 'maybe' } },
        },
      ],
    };
    expect(documentProblems(document)).toEqual([
      {
        statement: 0,
        message:
          'NotResource arn:aws:iot:*:*:topic/${iot:Nope}: policy variable ${iot:Nope} is not a key IoT Core sets for an MQTT connection',
      },
      { statement: 1, message: 'Condition operator DateMaybe is not supported' },
      { statement: 1, message: 'Condition key aws:Nope is not a key IoT Core sets for an MQTT connection' },
      { statement: 1, message: "Condition Bool value 'maybe' for aws:Nope is not 'true' or 'false'" },
    ]);
    // A document stored before these checks still loads; its unknown operator then fails closed.
    expect(parsePolicyDocument(JSON.stringify(document))).toEqual(document);
  });
});
