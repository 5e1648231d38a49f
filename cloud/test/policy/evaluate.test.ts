import { type IotPolicyDocument, recommendedDevicePolicy } from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import {
  compileGlob,
  compilePolicies,
  evaluatePolicies,
  globMatches,
  type IotAction,
  iotResourceArn,
  type PolicyContext,
  policyProblems,
  resolveVariables,
  wildcardMatches,
} from '../../src/core/policy/index.js';

const R = 'eu-west-1';
const A = '123456789012';
const arn = (kind: 'client' | 'topic' | 'topicfilter', name: string) =>
  iotResourceArn({ region: R, accountId: A }, kind, name);
const ctx = (over: Partial<PolicyContext> = {}): PolicyContext => ({
  region: R,
  accountId: A,
  clientId: 'pi-01',
  thingNames: ['pi-01'],
  ...over,
});
const doc = (...Statement: IotPolicyDocument['Statement']): IotPolicyDocument => ({ Version: '2012-10-17', Statement });
const allowed = (d: IotPolicyDocument, c: PolicyContext, action: IotAction, resource: string) =>
  evaluatePolicies([{ name: 'p', document: d }], c, action, resource).allowed;

describe('recommended device policy', () => {
  const policy = recommendedDevicePolicy(R, A);
  const own = ctx();
  const unattached = ctx({ thingNames: [] });
  const other = ctx({ clientId: 'pi-02', thingNames: ['pi-01'] });

  it.each<[string, PolicyContext, IotAction, string, boolean]>([
    ['connects as its own thing', own, 'iot:Connect', arn('client', 'pi-01'), true],
    ['cannot connect without an attached thing', unattached, 'iot:Connect', arn('client', 'pi-01'), false],
    ['cannot connect as another client id', other, 'iot:Connect', arn('client', 'pi-02'), false],
    ['publishes its telemetry', own, 'iot:Publish', arn('topic', 'pifleet/pi-01/telemetry'), true],
    ['publishes its status', own, 'iot:Publish', arn('topic', 'pifleet/pi-01/status'), true],
    ['retains its status', own, 'iot:RetainPublish', arn('topic', 'pifleet/pi-01/status'), true],
    ['does not retain telemetry', own, 'iot:RetainPublish', arn('topic', 'pifleet/pi-01/telemetry'), false],
    ["cannot publish another thing's telemetry", own, 'iot:Publish', arn('topic', 'pifleet/pi-02/telemetry'), false],
    ['cannot publish its own commands', own, 'iot:Publish', arn('topic', 'pifleet/pi-01/commands'), false],
    ['publishes shadow update', own, 'iot:Publish', arn('topic', '$aws/things/pi-01/shadow/update'), true],
    ['publishes named shadow get', own, 'iot:Publish', arn('topic', '$aws/things/pi-01/shadow/name/cfg/get'), true],
    [
      "cannot update another thing's shadow",
      own,
      'iot:Publish',
      arn('topic', '$aws/things/pi-02/shadow/update'),
      false,
    ],
    [
      'cannot fake update/accepted',
      own,
      'iot:Publish',
      arn('topic', '$aws/things/pi-01/shadow/update/accepted'),
      false,
    ],
    [
      'subscribes to update/accepted',
      own,
      'iot:Subscribe',
      arn('topicfilter', '$aws/things/pi-01/shadow/update/accepted'),
      true,
    ],
    [
      'subscribes to update/# (literal # matched by *)',
      own,
      'iot:Subscribe',
      arn('topicfilter', '$aws/things/pi-01/shadow/update/#'),
      true,
    ],
    ['subscribes to its commands', own, 'iot:Subscribe', arn('topicfilter', 'pifleet/pi-01/commands'), true],
    ['cannot subscribe to everything', own, 'iot:Subscribe', arn('topicfilter', '#'), false],
    ['cannot subscribe to every thing with +', own, 'iot:Subscribe', arn('topicfilter', 'pifleet/+/commands'), false],
    [
      "cannot subscribe to another thing's shadow",
      own,
      'iot:Subscribe',
      arn('topicfilter', '$aws/things/pi-02/shadow/update/delta'),
      false,
    ],
    ['receives delta', own, 'iot:Receive', arn('topic', '$aws/things/pi-01/shadow/update/delta'), true],
    [
      'receives named shadow get/accepted',
      own,
      'iot:Receive',
      arn('topic', '$aws/things/pi-01/shadow/name/a/get/accepted'),
      true,
    ],
    ["does not receive another thing's commands", own, 'iot:Receive', arn('topic', 'pifleet/pi-02/commands'), false],
    ['publishes jobs/get', own, 'iot:Publish', arn('topic', '$aws/things/pi-01/jobs/get'), true],
    ['publishes jobs/start-next', own, 'iot:Publish', arn('topic', '$aws/things/pi-01/jobs/start-next'), true],
    ['publishes a job update', own, 'iot:Publish', arn('topic', '$aws/things/pi-01/jobs/j-1/update'), true],
    ['publishes describe $next', own, 'iot:Publish', arn('topic', '$aws/things/pi-01/jobs/$next/get'), true],
    ["cannot ask for another thing's jobs", own, 'iot:Publish', arn('topic', '$aws/things/pi-02/jobs/get'), false],
    ["cannot update another thing's job", own, 'iot:Publish', arn('topic', '$aws/things/pi-02/jobs/j-1/update'), false],
    ['cannot fake a jobs notification', own, 'iot:Publish', arn('topic', '$aws/things/pi-01/jobs/notify'), false],
    [
      'subscribes to its job update answers (the SDK filter)',
      own,
      'iot:Subscribe',
      arn('topicfilter', '$aws/things/pi-01/jobs/j-1/update/+'),
      true,
    ],
    ['subscribes to notify-next', own, 'iot:Subscribe', arn('topicfilter', '$aws/things/pi-01/jobs/notify-next'), true],
    // One grant over the thing's own reserved topics keeps the policy within IoT Core's 2,048
    // characters; AWS advises against such a subscription, but it reaches only the own thing.
    [
      'may subscribe to all its own jobs topics at once',
      own,
      'iot:Subscribe',
      arn('topicfilter', '$aws/things/pi-01/jobs/#'),
      true,
    ],
    [
      'cannot subscribe to all jobs topics of every thing',
      own,
      'iot:Subscribe',
      arn('topicfilter', '$aws/things/+/jobs/#'),
      false,
    ],
    ['cannot publish a shadow delta', own, 'iot:Publish', arn('topic', '$aws/things/pi-01/shadow/update/delta'), false],
    [
      'cannot publish a named shadow update/documents',
      own,
      'iot:Publish',
      arn('topic', '$aws/things/pi-01/shadow/name/a/update/documents'),
      false,
    ],
    [
      'publishes a named shadow delete',
      own,
      'iot:Publish',
      arn('topic', '$aws/things/pi-01/shadow/name/a/delete'),
      true,
    ],
    [
      'cannot publish a jobs notify-next',
      own,
      'iot:Publish',
      arn('topic', '$aws/things/pi-01/jobs/notify-next'),
      false,
    ],
    [
      'cannot publish a jobs update/accepted',
      own,
      'iot:Publish',
      arn('topic', '$aws/things/pi-01/jobs/j1/update/accepted'),
      false,
    ],
    [
      "cannot subscribe to another thing's notify",
      own,
      'iot:Subscribe',
      arn('topicfilter', '$aws/things/pi-02/jobs/notify'),
      false,
    ],
    ['receives get/accepted', own, 'iot:Receive', arn('topic', '$aws/things/pi-01/jobs/get/accepted'), true],
    ['receives notify', own, 'iot:Receive', arn('topic', '$aws/things/pi-01/jobs/notify'), true],
    [
      "does not receive another thing's job answers",
      own,
      'iot:Receive',
      arn('topic', '$aws/things/pi-02/jobs/j-1/get/accepted'),
      false,
    ],
    [
      'publish of an unattached client is denied (variable unresolved)',
      unattached,
      'iot:Publish',
      arn('topic', 'pifleet/pi-01/telemetry'),
      false,
    ],
    [
      'a client id that is another attached thing acts as that thing',
      ctx({ clientId: 'pi-02', thingNames: ['pi-01', 'pi-02'] }),
      'iot:Publish',
      arn('topic', 'pifleet/pi-02/telemetry'),
      true,
    ],
  ])('%s', (_name, c, action, resource, expected) => {
    expect(allowed(policy, c, action, resource)).toBe(expected);
  });
});

describe('wildcards', () => {
  it.each<[string, string, boolean]>([
    ['a/*', 'a/b/c', true],
    ['a/*', 'a/', true],
    ['a/*', 'a', false],
    ['a/?', 'a/b', true],
    ['a/?', 'a/bc', false],
    ['a/+/c', 'a/+/c', true],
    ['a/+/c', 'a/b/c', false],
    ['a/#', 'a/#', true],
    ['a/#', 'a/b', false],
    ['a.b', 'aXb', false],
    ['a(b)', 'a(b)', true],
    ['*', '', true],
    ['**', 'abc', true],
    ['*a', 'aaa', true],
    ['a*', 'b', false],
    ['a*b*c', 'aXbYbZc', true],
    ['a*b*c', 'aXcYb', false],
    ['a*bc*bc', 'abcbc', true],
    ['a*bc*bc', 'abc', false],
    ['?*?', 'ab', true],
    ['?*?', 'a', false],
    ['x/*/y?', 'x/1/2/yz', true],
    ['*/telemetry', 'pifleet/pi/telemetry', true],
  ])('%s matches %s: %s', (pattern, value, expected) => {
    expect(wildcardMatches(pattern, value)).toBe(expected);
  });

  it('agrees with a regular-expression reference on many generated patterns', () => {
    let seed = 42;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const pick = (alphabet: string, max: number) =>
      Array.from({ length: rand(max + 1) }, () => alphabet[rand(alphabet.length)]).join('');
    for (let i = 0; i < 3000; i++) {
      const pattern = pick('ab*?/', 7);
      const value = pick('ab/', 8);
      const reference = new RegExp(
        `^${pattern.replace(/[/]/g, '\\/').replace(/\*/g, '[\\s\\S]*').replace(/\?/g, '[\\s\\S]')}$`,
      );
      expect(wildcardMatches(pattern, value), `${pattern} ~ ${value}`).toBe(reference.test(value));
    }
  });

  it('treats * and ? inside a resolved variable value as literal characters', () => {
    const glob = compileGlob([
      { kind: 'wild', text: 'a/' },
      { kind: 'exact', text: '*?' },
      { kind: 'wild', text: '/*' },
    ]);
    expect(globMatches(glob, 'a/*?/x')).toBe(true);
    expect(globMatches(glob, 'a/xy/x')).toBe(false);
  });

  it('matches actions case-insensitively and resources case-sensitively', () => {
    const d = doc({ Effect: 'Allow', Action: 'IOT:pub*', Resource: arn('topic', 'Room/*') });
    expect(allowed(d, ctx(), 'iot:Publish', arn('topic', 'Room/1'))).toBe(true);
    expect(allowed(d, ctx(), 'iot:Publish', arn('topic', 'room/1'))).toBe(false);
    expect(allowed(d, ctx(), 'iot:Subscribe', arn('topicfilter', 'Room/1'))).toBe(false);
  });

  it.each<[string | string[], IotAction, boolean]>([
    ['iot:*', 'iot:Receive', true],
    ['*', 'iot:Connect', true],
    ['iot:?onnect', 'iot:Connect', true],
    [['iot:Publish', 'iot:Subscribe'], 'iot:Subscribe', true],
    [['iot:Publish', 'iot:Subscribe'], 'iot:Receive', false],
    ['iot:Publish', 'iot:RetainPublish', false],
  ])('action %j covers %s: %s', (action, asked, expected) => {
    expect(allowed(doc({ Effect: 'Allow', Action: action, Resource: '*' }), ctx(), asked, arn('topic', 'x'))).toBe(
      expected,
    );
  });
});

describe('policy variables', () => {
  it.each<[string, Partial<PolicyContext>, string, boolean]>([
    ['topic/${iot:ClientId}', { clientId: 'c1' }, 'topic/c1', true],
    ['topic/${iot:ClientId}', { clientId: 'c1' }, 'topic/c2', false],
    ['topic/${iot:Connection.Thing.ThingName}/x', { clientId: 't', thingNames: ['t'] }, 'topic/t/x', true],
    ['topic/${iot:Connection.Thing.ThingName}/x', { clientId: 't', thingNames: [] }, 'topic/t/x', false],
    ['topic/${iot:Connection.Thing.IsAttached}', { thingNames: [] }, 'topic/false', true],
    [
      'topic/${iot:Certificate.Subject.CommonName}',
      { certificate: { subject: { CommonName: 'dev' } } },
      'topic/dev',
      true,
    ],
    ['topic/${iot:Certificate.Subject.CommonName}', {}, 'topic/dev', false],
    ["topic/${iot:Certificate.Subject.CommonName, 'none'}", {}, 'topic/none', true],
    ['topic/${*}', {}, 'topic/*', true],
    ['topic/${*}', {}, 'topic/x', false],
    ['topic/${iot:Unknown}', {}, 'topic/', false],
  ])('%s with %j matches %s: %s', (resource, over, topic, expected) => {
    const d = doc({ Effect: 'Allow', Action: 'iot:Publish', Resource: arn('topic', resource) });
    expect(allowed(d, ctx(over), 'iot:Publish', arn('topic', topic))).toBe(expected);
  });

  it('matches a variable value literally, never as a wildcard', () => {
    const d = doc({ Effect: 'Allow', Action: 'iot:Publish', Resource: arn('topic', 'x/${iot:ClientId}') });
    expect(allowed(d, ctx({ clientId: '*' }), 'iot:Publish', arn('topic', 'x/*'))).toBe(true);
    expect(allowed(d, ctx({ clientId: '*' }), 'iot:Publish', arn('topic', 'x/anything'))).toBe(false);
  });

  it('resolves variable names case-insensitively and reports unresolved ones', () => {
    const values = new Map([['iot:clientid', 'c']]);
    expect(resolveVariables('a/${IOT:CLIENTID}', values)).toEqual([
      { kind: 'wild', text: 'a/' },
      { kind: 'exact', text: 'c' },
    ]);
    expect(resolveVariables('a/${iot:Nope}', values)).toBeUndefined();
  });
});

describe('effects', () => {
  const allowAll = doc({ Effect: 'Allow', Action: 'iot:*', Resource: '*' });
  const denyOne = doc({ Sid: 'NoSecrets', Effect: 'Deny', Action: 'iot:Publish', Resource: arn('topic', 'secret/*') });

  it('lets an explicit Deny in any policy win over an Allow in another', () => {
    const auth = compilePolicies(
      [
        { name: 'all', document: allowAll },
        { name: 'deny', document: denyOne },
      ],
      ctx(),
    );
    expect(auth.authorize('iot:Publish', arn('topic', 'secret/a'))).toEqual({
      allowed: false,
      reason: 'explicit-deny',
      policy: 'deny',
      sid: 'NoSecrets',
    });
    expect(auth.authorize('iot:Publish', arn('topic', 'open/a'))).toMatchObject({ allowed: true, policy: 'all' });
    expect(auth.authorize('iot:Receive', arn('topic', 'secret/a'))).toMatchObject({ allowed: true });
  });

  it('denies implicitly with no policy or no matching statement', () => {
    expect(evaluatePolicies([], ctx(), 'iot:Connect', arn('client', 'pi-01'))).toEqual({
      allowed: false,
      reason: 'implicit-deny',
    });
    expect(allowed(denyOne, ctx(), 'iot:Publish', arn('topic', 'open/a'))).toBe(false);
  });

  it('supports NotResource and NotAction', () => {
    const d = doc(
      { Effect: 'Allow', NotAction: 'iot:Subscribe', Resource: '*' } as never,
      { Effect: 'Deny', Action: 'iot:Publish', NotResource: arn('topic', 'ok/*') } as never,
    );
    expect(allowed(d, ctx(), 'iot:Publish', arn('topic', 'ok/1'))).toBe(true);
    expect(allowed(d, ctx(), 'iot:Publish', arn('topic', 'bad/1'))).toBe(false);
    expect(allowed(d, ctx(), 'iot:Subscribe', arn('topicfilter', 'ok/1'))).toBe(false);
    expect(allowed(d, ctx(), 'iot:Receive', arn('topic', 'bad/1'))).toBe(true);
  });

  it('does not apply a Deny whose resource variable does not resolve (as IAM)', () => {
    const d = doc(allowAll.Statement[0] as never, {
      Effect: 'Deny',
      Action: 'iot:Publish',
      Resource: arn('topic', 'x/${iot:Connection.Thing.ThingName}'),
    });
    expect(allowed(d, ctx({ thingNames: [] }), 'iot:Publish', arn('topic', 'x/pi-01'))).toBe(true);
    expect(allowed(d, ctx(), 'iot:Publish', arn('topic', 'x/pi-01'))).toBe(false);
  });
});

describe('conditions', () => {
  const withCondition = (
    Condition: Record<string, Record<string, string | string[]>>,
    Effect: 'Allow' | 'Deny' = 'Allow',
  ) =>
    Effect === 'Allow'
      ? doc({ Effect, Action: 'iot:Connect', Resource: '*', Condition })
      : doc(
          { Effect: 'Allow', Action: 'iot:Connect', Resource: '*' },
          { Effect, Action: 'iot:Connect', Resource: '*', Condition },
        );
  const connect = (d: IotPolicyDocument, c: PolicyContext) => allowed(d, c, 'iot:Connect', arn('client', c.clientId));

  it.each<[string, Record<string, Record<string, string | string[]>>, Partial<PolicyContext>, boolean]>([
    ['Bool IsAttached true, attached', { Bool: { 'iot:Connection.Thing.IsAttached': 'true' } }, {}, true],
    [
      'Bool IsAttached true, not attached',
      { Bool: { 'iot:Connection.Thing.IsAttached': 'true' } },
      { thingNames: [] },
      false,
    ],
    ['Bool IsAttached ["true"] (array)', { Bool: { 'iot:Connection.Thing.IsAttached': ['true'] } }, {}, true],
    [
      'Bool IsAttached false, not attached',
      { Bool: { 'iot:Connection.Thing.IsAttached': 'false' } },
      { thingNames: [] },
      true,
    ],
    ['StringEquals ClientId', { StringEquals: { 'iot:ClientId': 'pi-01' } }, {}, true],
    ['StringEquals ClientId other', { StringEquals: { 'iot:ClientId': 'pi-02' } }, {}, false],
    ['StringEquals ClientId any of list', { StringEquals: { 'iot:ClientId': ['x', 'pi-01'] } }, {}, true],
    ['StringEquals key is case-insensitive', { StringEquals: { 'IOT:CLIENTID': 'pi-01' } }, {}, true],
    [
      'StringEquals ThingName = ClientId variable',
      { StringEquals: { 'iot:Connection.Thing.ThingName': '${iot:ClientId}' } },
      {},
      true,
    ],
    [
      'StringEquals ThingName missing',
      { StringEquals: { 'iot:Connection.Thing.ThingName': 'pi-01' } },
      { thingNames: [] },
      false,
    ],
    [
      'StringNotEquals ThingName missing is true',
      { StringNotEquals: { 'iot:Connection.Thing.ThingName': 'pi-01' } },
      { thingNames: [] },
      true,
    ],
    [
      'StringEqualsIfExists missing is true',
      { StringEqualsIfExists: { 'iot:Connection.Thing.ThingName': 'x' } },
      { thingNames: [] },
      true,
    ],
    ['StringEqualsIgnoreCase', { StringEqualsIgnoreCase: { 'iot:ClientId': 'PI-01' } }, {}, true],
    ['StringLike prefix', { StringLike: { 'iot:ClientId': 'pi-*' } }, {}, true],
    ['StringLike no match', { StringLike: { 'iot:ClientId': 'sensor-?' } }, {}, false],
    ['StringNotLike', { StringNotLike: { 'iot:ClientId': 'admin*' } }, {}, true],
    // IAM compares ARNs component by component: a value that is not an ARN matches no ARN pattern.
    ['ArnLike on a value that is not an ARN', { ArnLike: { 'iot:ClientId': 'pi-0?' } }, {}, false],
    ['ArnEquals', { ArnEquals: { 'iot:ClientId': 'pi-02' } }, {}, false],
    [
      'Null ThingName true when unattached',
      { Null: { 'iot:Connection.Thing.ThingName': 'true' } },
      { thingNames: [] },
      true,
    ],
    ['Null ThingName false when attached', { Null: { 'iot:Connection.Thing.ThingName': 'false' } }, {}, true],
    [
      'two operators both must hold',
      { StringLike: { 'iot:ClientId': 'pi-*' }, Bool: { 'iot:Connection.Thing.IsAttached': 'true' } },
      { thingNames: [] },
      false,
    ],
    [
      'ForAllValues ConnectAttributes, none used',
      { 'ForAllValues:StringEquals': { 'iot:ConnectAttributes': ['PersistentConnect'] } },
      {},
      true,
    ],
    [
      'ForAllValues ConnectAttributes, LastWill not allowed',
      { 'ForAllValues:StringEquals': { 'iot:ConnectAttributes': ['PersistentConnect'] } },
      { connectAttributes: ['LastWill'] },
      false,
    ],
    [
      'ForAnyValue ConnectAttributes',
      { 'ForAnyValue:StringEquals': { 'iot:ConnectAttributes': ['LastWill'] } },
      { connectAttributes: ['PersistentConnect', 'LastWill'] },
      true,
    ],
    [
      'Certificate CommonName',
      { StringEquals: { 'iot:Certificate.Subject.CommonName': 'pi-01' } },
      { certificate: { subject: { CommonName: 'pi-01' } } },
      true,
    ],
    ['unknown operator grants nothing', { StringMaybe: { 'iot:ClientId': 'pi-01' } }, {}, false],
  ])('%s', (_name, condition, over, expected) => {
    expect(connect(withCondition(condition), ctx(over))).toBe(expected);
  });

  it('applies a Deny whose condition operator is unknown (fail closed)', () => {
    expect(connect(withCondition({ StringMaybe: { 'iot:ClientId': 'x' } }, 'Deny'), ctx())).toBe(false);
    expect(connect(withCondition({ StringEquals: { 'iot:ClientId': 'x' } }, 'Deny'), ctx())).toBe(true);
    expect(connect(withCondition({ StringEquals: { 'iot:ClientId': 'pi-01' } }, 'Deny'), ctx())).toBe(false);
  });

  it.each(['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf'])(
    'an operator named %s is unknown, not a member of Object.prototype: its Deny applies, and it is reported',
    (operator) => {
      const condition = JSON.parse(`{"${operator}":{"iot:ClientId":"x"}}`) as Record<string, Record<string, string>>;
      expect(connect(withCondition(condition, 'Deny'), ctx())).toBe(false);
      expect(connect(withCondition(condition), ctx())).toBe(false);
      expect(
        policyProblems({
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Action: '*', Resource: '*', Condition: condition }],
        }),
      ).toContain(`Statement[0].Condition operator ${operator} is not supported`);
    },
  );
});

describe('policyProblems', () => {
  it('accepts the recommended policy as written', () => {
    expect(policyProblems(recommendedDevicePolicy(R, A))).toEqual([]);
  });

  it.each<[unknown, string]>([
    [null, 'policy document must be a JSON object'],
    [
      { Version: '2008-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] },
      'Version must be "2012-10-17"',
    ],
    [{ Version: '2012-10-17', Statement: [] }, 'Statement must be a non-empty array'],
    [
      { Version: '2012-10-17', Statement: [{ Effect: 'Maybe', Action: '*', Resource: '*' }] },
      'Statement[0].Effect must be Allow or Deny',
    ],
    [
      { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Resource: '*' }] },
      'Statement[0] needs Action or NotAction',
    ],
    [
      {
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Action: '*', Resource: '*', Condition: { DateMaybe: {} } }],
      },
      'Statement[0].Condition operator DateMaybe is not supported',
    ],
  ])('reports %j', (document, problem) => {
    expect(policyProblems(document)).toContain(problem);
  });
});
