import type { IotPolicyDocument, IotPolicyStatement } from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import {
  compilePolicies,
  contextValues,
  evaluatePolicies,
  type IotAction,
  iotResourceArn,
  type PolicyContext,
} from '../../src/core/policy/index.js';

/**
 * Thing policy variables in resources (AWS IoT Developer Guide, "Thing policy variables", "Thing
 * policy examples"), NotAction and NotResource with IAM's meaning, and statements whose
 * condition depends on the time of the request.
 */

const R = 'us-east-1';
const A = '123456789012';
const arn = (kind: 'client' | 'topic' | 'topicfilter', name: string) =>
  iotResourceArn({ region: R, accountId: A }, kind, name);
const doc = (...Statement: IotPolicyStatement[]): IotPolicyDocument => ({ Version: '2012-10-17', Statement });
const thing = (attributes: Record<string, string>, thingTypeName?: string): NonNullable<PolicyContext['thing']> =>
  thingTypeName === undefined ? { attributes } : { attributes, thingTypeName };
const ctx = (over: Partial<PolicyContext> = {}): PolicyContext => ({
  region: R,
  accountId: A,
  clientId: 'pi-01',
  thingNames: ['pi-01'],
  thing: thing({ site: 'plant-a' }, 'sensor'),
  ...over,
});
const allowed = (d: IotPolicyDocument, c: PolicyContext, action: IotAction, resource: string, now?: () => number) =>
  evaluatePolicies([{ name: 'p', document: d }], c, action, resource, now ? { now } : {}).allowed;

describe('thing policy variables in resources', () => {
  // The Developer Guide's example: publish to a topic that starts with an attribute of the thing.
  const bySite = doc({
    Effect: 'Allow',
    Action: ['iot:Publish'],
    Resource: `arn:aws:iot:${R}:${A}:topic/\${iot:Connection.Thing.Attributes[site]}/*`,
  });
  const byType = doc({
    Effect: 'Allow',
    Action: 'iot:Subscribe',
    Resource: arn('topicfilter', 'types/${iot:Connection.Thing.ThingTypeName}/#'),
  });

  it.each<[string, IotPolicyDocument, PolicyContext, IotAction, string, boolean]>([
    ['publishes under its site', bySite, ctx(), 'iot:Publish', arn('topic', 'plant-a/t'), true],
    ['not under another site', bySite, ctx(), 'iot:Publish', arn('topic', 'plant-b/t'), false],
    [
      'an attribute value is literal: plant-* is not a wildcard',
      bySite,
      ctx({ thing: thing({ site: 'plant-*' }) }),
      'iot:Publish',
      arn('topic', 'plant-b/t'),
      false,
    ],
    [
      'an attribute value with a * matches itself',
      bySite,
      ctx({ thing: thing({ site: 'plant-*' }) }),
      'iot:Publish',
      arn('topic', 'plant-*/t'),
      true,
    ],
    [
      'a thing without the attribute: the variable does not resolve',
      bySite,
      ctx({ thing: thing({}) }),
      'iot:Publish',
      arn('topic', '/t'),
      false,
    ],
    [
      'a client id that is not the thing has no attributes',
      bySite,
      ctx({ clientId: 'other' }),
      'iot:Publish',
      arn('topic', 'plant-a/t'),
      false,
    ],
    [
      'a certificate with no thing has no attributes',
      bySite,
      ctx({ thingNames: [] }),
      'iot:Publish',
      arn('topic', 'plant-a/t'),
      false,
    ],
    ['subscribes under its thing type', byType, ctx(), 'iot:Subscribe', arn('topicfilter', 'types/sensor/#'), true],
    ['not under another type', byType, ctx(), 'iot:Subscribe', arn('topicfilter', 'types/gateway/#'), false],
    [
      'a thing without a type: the variable does not resolve',
      byType,
      ctx({ thing: thing({ site: 'x' }) }),
      'iot:Subscribe',
      arn('topicfilter', 'types//#'),
      false,
    ],
  ])('%s', (_name, d, c, action, resource, expected) => {
    expect(allowed(d, c, action, resource)).toBe(expected);
  });

  it("falls back to a variable's default when the attribute is missing", () => {
    const d = doc({
      Effect: 'Allow',
      Action: 'iot:Publish',
      Resource: arn('topic', "${iot:Connection.Thing.Attributes[site], 'unsited'}/*"),
    });
    expect(allowed(d, ctx({ thing: thing({}) }), 'iot:Publish', arn('topic', 'unsited/t'))).toBe(true);
    expect(allowed(d, ctx(), 'iot:Publish', arn('topic', 'plant-a/t'))).toBe(true);
    expect(allowed(d, ctx(), 'iot:Publish', arn('topic', 'unsited/t'))).toBe(false);
  });

  it('keeps an attribute name as written: Attributes[Site] is not Attributes[site]', () => {
    const d = doc({
      Effect: 'Allow',
      Action: 'iot:Publish',
      Resource: arn('topic', '${iot:connection.thing.attributes[Site]}'),
    });
    expect(allowed(d, ctx({ thing: thing({ Site: 'a', site: 'b' }) }), 'iot:Publish', arn('topic', 'a'))).toBe(true);
    expect(allowed(d, ctx({ thing: thing({ site: 'b' }) }), 'iot:Publish', arn('topic', 'b'))).toBe(false);
  });

  it('has the keys an MQTT connection has: the thing, the address, TLS, the server name', () => {
    const values = contextValues(ctx({ sourceIp: '203.0.113.7', domainName: 'iot.example.test' }));
    expect(Object.fromEntries(values)).toMatchObject({
      'iot:clientid': 'pi-01',
      'iot:connection.thing.thingname': 'pi-01',
      'iot:connection.thing.isattached': 'true',
      'iot:connection.thing.thingtypename': 'sensor',
      'iot:connection.thing.attributes[site]': 'plant-a',
      'aws:sourceip': '203.0.113.7',
      'aws:securetransport': 'true',
      'iot:domainname': 'iot.example.test',
    });
    expect(values.has('aws:region')).toBe(false);
  });
});

describe('NotAction and NotResource (IAM semantics)', () => {
  const open = { Effect: 'Allow', Action: 'iot:*', Resource: '*' } as const;

  it.each<[string, IotPolicyDocument, IotAction, string, boolean]>([
    // Allow + NotAction: every action except those listed.
    [
      'Allow NotAction: another action is allowed',
      doc({ Effect: 'Allow', NotAction: 'iot:Publish', Resource: '*' }),
      'iot:Subscribe',
      arn('topicfilter', 'a'),
      true,
    ],
    [
      'Allow NotAction: the listed action is not',
      doc({ Effect: 'Allow', NotAction: 'iot:Publish', Resource: '*' }),
      'iot:Publish',
      arn('topic', 'a'),
      false,
    ],
    [
      'Allow NotAction with a wildcard',
      doc({ Effect: 'Allow', NotAction: 'iot:*Publish', Resource: '*' }),
      'iot:RetainPublish',
      arn('topic', 'a'),
      false,
    ],
    // Deny + NotAction: denies every action except those listed.
    [
      'Deny NotAction denies the rest',
      doc(open, { Effect: 'Deny', NotAction: ['iot:Connect', 'iot:Receive'], Resource: '*' }),
      'iot:Publish',
      arn('topic', 'a'),
      false,
    ],
    [
      'Deny NotAction spares the listed',
      doc(open, { Effect: 'Deny', NotAction: ['iot:Connect', 'iot:Receive'], Resource: '*' }),
      'iot:Receive',
      arn('topic', 'a'),
      true,
    ],
    // Allow + NotResource: every resource except those listed.
    [
      'Allow NotResource: another topic',
      doc({ Effect: 'Allow', Action: 'iot:Publish', NotResource: arn('topic', 'admin/*') }),
      'iot:Publish',
      arn('topic', 'data/1'),
      true,
    ],
    [
      'Allow NotResource: the listed topic',
      doc({ Effect: 'Allow', Action: 'iot:Publish', NotResource: arn('topic', 'admin/*') }),
      'iot:Publish',
      arn('topic', 'admin/1'),
      false,
    ],
    // Deny + NotResource: denied everywhere except the listed resources.
    [
      'Deny NotResource: denied elsewhere',
      doc(open, { Effect: 'Deny', Action: 'iot:Publish', NotResource: arn('topic', 'ok/*') }),
      'iot:Publish',
      arn('topic', 'bad/1'),
      false,
    ],
    [
      'Deny NotResource: the exception stays allowed',
      doc(open, { Effect: 'Deny', Action: 'iot:Publish', NotResource: arn('topic', 'ok/*') }),
      'iot:Publish',
      arn('topic', 'ok/1'),
      true,
    ],
    [
      'Deny NotResource: other actions untouched',
      doc(open, { Effect: 'Deny', Action: 'iot:Publish', NotResource: arn('topic', 'ok/*') }),
      'iot:Receive',
      arn('topic', 'bad/1'),
      true,
    ],
    // Both negations in one statement.
    [
      'Deny NotAction + NotResource',
      doc(open, { Effect: 'Deny', NotAction: 'iot:Connect', NotResource: arn('topic', 'ok/*') }),
      'iot:Receive',
      arn('topic', 'x'),
      false,
    ],
    [
      'Deny NotAction + NotResource, excepted resource',
      doc(open, { Effect: 'Deny', NotAction: 'iot:Connect', NotResource: arn('topic', 'ok/*') }),
      'iot:Receive',
      arn('topic', 'ok/x'),
      true,
    ],
    // With a condition: the statement applies only when it holds.
    [
      'Deny NotResource under a condition that holds',
      doc(open, {
        Effect: 'Deny',
        Action: 'iot:Publish',
        NotResource: arn('topic', '${iot:Connection.Thing.Attributes[site]}/*'),
        Condition: { StringEquals: { 'iot:Connection.Thing.ThingTypeName': 'sensor' } },
      }),
      'iot:Publish',
      arn('topic', 'plant-b/1'),
      false,
    ],
    [
      'Deny NotResource under a condition that holds, own site',
      doc(open, {
        Effect: 'Deny',
        Action: 'iot:Publish',
        NotResource: arn('topic', '${iot:Connection.Thing.Attributes[site]}/*'),
        Condition: { StringEquals: { 'iot:Connection.Thing.ThingTypeName': 'sensor' } },
      }),
      'iot:Publish',
      arn('topic', 'plant-a/1'),
      true,
    ],
    [
      'Deny NotResource under a condition that does not hold',
      doc(open, {
        Effect: 'Deny',
        Action: 'iot:Publish',
        NotResource: arn('topic', 'ok/*'),
        Condition: { StringEquals: { 'iot:Connection.Thing.ThingTypeName': 'gateway' } },
      }),
      'iot:Publish',
      arn('topic', 'bad/1'),
      true,
    ],
  ])('%s', (_name, d, action, resource, expected) => {
    expect(allowed(d, ctx(), action, resource)).toBe(expected);
  });

  it('fails closed when a NotResource variable does not resolve: an Allow grants nothing, a Deny exempts nothing', () => {
    const unsited = ctx({ thing: thing({}) });
    const notOwnSite = arn('topic', '${iot:Connection.Thing.Attributes[site]}/*');
    const allow = doc({ Effect: 'Allow', Action: 'iot:Publish', NotResource: [notOwnSite, arn('topic', 'admin/*')] });
    expect(allowed(allow, unsited, 'iot:Publish', arn('topic', 'data/1'))).toBe(false);
    expect(allowed(allow, ctx(), 'iot:Publish', arn('topic', 'data/1'))).toBe(true);
    const deny = doc(open, { Effect: 'Deny', Action: 'iot:Publish', NotResource: notOwnSite });
    expect(allowed(deny, unsited, 'iot:Publish', arn('topic', '/1'))).toBe(false);
    expect(allowed(deny, ctx(), 'iot:Publish', arn('topic', 'plant-a/1'))).toBe(true);
  });
});

describe('statements that depend on the time of the request', () => {
  const until = (iso: string) =>
    doc({
      Effect: 'Allow',
      Action: 'iot:Publish',
      Resource: '*',
      Condition: { DateLessThan: { 'aws:CurrentTime': iso } },
    });

  it('reads the injected clock on every question and says its decisions must not be kept', () => {
    let now = Date.parse('2026-03-01T11:59:59Z');
    const auth = compilePolicies([{ name: 'window', document: until('2026-03-01T12:00:00Z') }], ctx(), {
      now: () => now,
    });
    expect(auth.cacheable).toBe(false);
    expect(auth.authorize('iot:Publish', arn('topic', 'a'))).toMatchObject({ allowed: true, policy: 'window' });
    now += 1000;
    expect(auth.authorize('iot:Publish', arn('topic', 'a'))).toEqual({ allowed: false, reason: 'implicit-deny' });
  });

  it('applies a time-bound Deny only inside its window', () => {
    let now = Date.parse('2026-03-01T00:00:00Z');
    const blackout = doc(
      { Effect: 'Allow', Action: 'iot:*', Resource: '*' },
      {
        Sid: 'Maintenance',
        Effect: 'Deny',
        Action: 'iot:Publish',
        Resource: '*',
        Condition: { DateGreaterThanEquals: { 'aws:EpochTime': String(Date.parse('2026-03-01T02:00:00Z') / 1000) } },
      },
    );
    const auth = compilePolicies([{ name: 'b', document: blackout }], ctx(), { now: () => now });
    expect(auth.authorize('iot:Publish', arn('topic', 'a')).allowed).toBe(true);
    now = Date.parse('2026-03-01T02:00:00Z');
    expect(auth.authorize('iot:Publish', arn('topic', 'a'))).toMatchObject({ allowed: false, sid: 'Maintenance' });
    expect(auth.authorize('iot:Subscribe', arn('topicfilter', 'a')).allowed).toBe(true);
  });

  it('keeps decisions cacheable when no statement reads the time', () => {
    const auth = compilePolicies(
      [
        {
          name: 'p',
          document: doc({
            Effect: 'Allow',
            Action: 'iot:*',
            Resource: '*',
            Condition: { IpAddress: { 'aws:SourceIp': '10.0.0.0/8' } },
          }),
        },
      ],
      ctx({ sourceIp: '10.1.1.1' }),
    );
    expect(auth.cacheable).toBe(true);
    expect(auth.authorize('iot:Publish', arn('topic', 'a')).allowed).toBe(true);
  });

  it('drops a statement whose static condition fails without consulting the clock', () => {
    let reads = 0;
    const d = doc({
      Effect: 'Allow',
      Action: 'iot:Publish',
      Resource: '*',
      Condition: { DateLessThan: { 'aws:CurrentTime': '2100' }, StringEquals: { 'iot:ClientId': 'someone-else' } },
    });
    const auth = compilePolicies([{ name: 'p', document: d }], ctx(), {
      now: () => {
        reads++;
        return 0;
      },
    });
    expect(auth.cacheable).toBe(true);
    expect(auth.authorize('iot:Publish', arn('topic', 'a')).allowed).toBe(false);
    expect(reads).toBe(0);
  });
});
