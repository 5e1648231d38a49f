import { RECOMMENDED_POLICY_NAME, recommendedDevicePolicy } from '@pifleet/protocol';
import { App, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import type { CfnFunction } from 'aws-cdk-lib/aws-lambda';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { describe, expect, it } from 'vitest';
import { esbuildTargetOf, LAMBDA_RUNTIME, type LambdaName } from '../../cdk/bundle.js';
import { DeploymentError } from '../../cdk/errors.js';
import { COMMAND_ROUTES, PifleetStack, type PifleetStackProps, QUERY_ROUTES } from '../../cdk/pifleet-stack.js';
import { TELEMETRY_TABLE_KEYS, telemetryTableSchema } from '../../src/adapters/dynamodb-telemetry-store.js';
import { API_ROUTES } from '../../src/app/api-routes.js';
import { RULE_ERROR_LOG_GROUP, RULES, type RuleDefinition } from '../../src/rules/definitions.js';
import {
  allow,
  type Grant,
  grantsOf,
  idsOfType,
  type Resources,
  refId,
  render,
  roleGrants,
} from './template-helpers.js';

// Inline stubs instead of bundles: synthesis stays fast and needs no esbuild (bundle.test.ts covers the bundles).
const stubCode = (name: LambdaName) => lambda.Code.fromInline(`exports.handler = async () => ${JSON.stringify(name)};`);

function synth(props: Partial<PifleetStackProps> = {}) {
  const app = new App({ analyticsReporting: false });
  const stack = new PifleetStack(app, 'Test', { handlerCode: stubCode, ...props });
  const template = Template.fromStack(stack);
  return { app, stack, template, resources: template.toJSON().Resources as Resources };
}

const { stack, template, resources } = synth();
const id = (construct: { node: { defaultChild?: unknown } } | undefined) => {
  if (construct === undefined) throw new Error('construct missing');
  return stack.getLogicalId(construct.node.defaultChild as CfnFunction);
};
const fnIds: Record<LambdaName, string> = {
  ingest: id(stack.functions.ingest),
  presence: id(stack.functions.presence),
  query: id(stack.functions.query),
  command: id(stack.functions.command),
  'silent-devices': id(stack.functions['silent-devices']),
};
const tableArn = `\${${stack.getLogicalId(stack.table.node.defaultChild as CfnFunction)}.Arn}`;
const ARN = (service: string, rest: string) =>
  `arn:\${AWS::Partition}:${service}:\${AWS::Region}:\${AWS::AccountId}:${rest}`;

const ruleResource = (name: string) => {
  const found = Object.entries(resources).filter(
    ([, r]) => r.Type === 'AWS::IoT::TopicRule' && r.Properties?.RuleName === name,
  );
  expect(found).toHaveLength(1);
  const [ruleId, r] = found[0] as [string, Resources[string]];
  return { ruleId, payload: render(r.Properties?.TopicRulePayload) as Record<string, unknown> };
};

/** The IoT role behind a rule action, and what it may do. */
const actionRole = (action: Record<string, unknown>) => {
  const body = Object.values(action)[0] as { RoleArn?: string };
  const roleId = refId(body.RoleArn);
  return { roleId, grants: roleGrants(resources, roleId) };
};

describe('IoT topic rules (from src/rules/definitions.ts)', () => {
  it('deploys exactly the rules of the rule file', () => {
    const names = Object.values(resources)
      .filter((r) => r.Type === 'AWS::IoT::TopicRule')
      .map((r) => r.Properties?.RuleName);
    expect(names.sort()).toEqual(RULES.map((r) => r.name).sort());
  });

  it.each(RULES.map((r) => [r.name, r] as const))('%s: SQL, SQL version and state equal the rule file', (_, def) => {
    const { payload } = ruleResource(def.name);
    expect(payload.Sql).toBe(def.sql);
    expect(payload.AwsIotSqlVersion).toBe(def.sqlVersion);
    expect(payload.RuleDisabled).toBe(false);
    expect(payload.Description).toBe(def.description);
    expect(payload.Actions).toHaveLength(def.actions.length);
  });

  it.each(RULES.map((r) => [r.name, r] as const))(
    '%s: has an error action writing to the rule error log group, with a role for that group only',
    (_, def) => {
      const { ruleId, payload } = ruleResource(def.name);
      const error = payload.ErrorAction as { CloudwatchLogs?: { LogGroupName: string; RoleArn: string } };
      expect(error.CloudwatchLogs).toBeDefined();
      const groupId = refId(error.CloudwatchLogs?.LogGroupName);
      expect(resources[groupId]?.Properties?.LogGroupName).toBe(RULE_ERROR_LOG_GROUP);
      const { roleId, grants } = actionRole(error);
      expect(grants).toEqual(
        allow(['logs:CreateLogStream', 'logs:DescribeLogStreams', 'logs:PutLogEvents'], `\${${groupId}.Arn}`).sort(
          (a, b) => a.action.localeCompare(b.action),
        ),
      );
      // Only IoT, only from this rule in this account, may assume it.
      const trust = render(resources[roleId]?.Properties?.AssumeRolePolicyDocument);
      expect(trust).toEqual({
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Principal: { Service: 'iot.amazonaws.com' },
            Action: 'sts:AssumeRole',
            Condition: {
              StringEquals: { 'aws:SourceAccount': '${AWS::AccountId}' },
              ArnEquals: { 'aws:SourceArn': ARN('iot', `rule/${def.name}`) },
            },
          },
        ],
      });
      // The rule is created after its roles' policies (IoT assumes them on the first message).
      const dependsOn = (resources[ruleId]?.DependsOn as string[] | undefined) ?? [];
      expect(dependsOn).toEqual(expect.arrayContaining([roleId]));
    },
  );

  it.each([
    ['pifleet_telemetry_ingest', 'ingest'],
    ['pifleet_presence', 'presence'],
  ] as const)('%s invokes the %s function, which IoT may invoke only from that rule', (ruleName, fn) => {
    const { ruleId, payload } = ruleResource(ruleName);
    expect(payload.Actions).toEqual([{ Lambda: { FunctionArn: `\${${fnIds[fn]}.Arn}` } }]);
    const permissions = Object.values(resources).filter(
      (r) => r.Type === 'AWS::Lambda::Permission' && r.Properties?.Principal === 'iot.amazonaws.com',
    );
    const mine = permissions.filter((p) => render(p.Properties?.SourceArn) === `\${${ruleId}.Arn}`);
    expect(mine.map((p) => render(p.Properties))).toEqual([
      {
        Action: 'lambda:InvokeFunction',
        FunctionName: `\${${fnIds[fn]}.Arn}`,
        Principal: 'iot.amazonaws.com',
        SourceAccount: '${AWS::AccountId}',
        SourceArn: `\${${ruleId}.Arn}`,
      },
    ]);
  });

  it('IoT may invoke only the two rule-driven functions', () => {
    const invoked = Object.values(resources)
      .filter((r) => r.Type === 'AWS::Lambda::Permission' && r.Properties?.Principal === 'iot.amazonaws.com')
      .map((r) => render(r.Properties?.FunctionName));
    expect(invoked.sort()).toEqual([`\${${fnIds.ingest}.Arn}`, `\${${fnIds.presence}.Arn}`].sort());
  });

  it('the archive rule puts records into the archive stream (test/cdk/archive-stream.test.ts has the stream)', () => {
    const { payload } = ruleResource('pifleet_telemetry_archive');
    const [action] = payload.Actions as Record<string, unknown>[];
    expect(Object.keys(action ?? {})).toEqual(['Firehose']);
  });

  it('the alert rule republishes with the rule file topic and QoS, allowed iot:Publish on the alerts topics only', () => {
    const def = RULES.find((r) => r.name === 'pifleet_temperature_alert');
    const action = def?.actions[0];
    if (action?.kind !== 'republish') throw new Error('alert rule changed');
    const { payload } = ruleResource('pifleet_temperature_alert');
    const [republish] = payload.Actions as Record<string, unknown>[];
    expect((republish as { Republish: unknown }).Republish).toEqual({
      Topic: action.topic,
      Qos: action.qos,
      RoleArn: expect.any(String),
    });
    expect(actionRole(republish as Record<string, unknown>).grants).toEqual(
      allow(['iot:Publish'], ARN('iot', 'topic/pifleet/*/alerts')),
    );
  });
});

describe('rule translation beyond the shipped rules', () => {
  const custom: RuleDefinition[] = [
    {
      name: 'custom_errors_to_lambda',
      description: 'error action that invokes a handler; republish at QoS 0 with two templates',
      sql: "SELECT * FROM 'pifleet/+/status'",
      sqlVersion: '2016-03-23',
      actions: [{ kind: 'republish', topic: 'fleet/${topic(2)}/seen/${clientid()}', qos: 0 }],
      errorAction: { kind: 'lambda', handler: 'ingest' },
    },
    {
      name: 'custom_log_action',
      description: 'a log action into a second log group, with an archive error action under another prefix',
      sql: "SELECT * FROM 'pifleet/+/alerts'",
      sqlVersion: '2016-03-23',
      actions: [{ kind: 'log', logGroup: '/pifleet/alerts' }],
      errorAction: { kind: 'archive', key: 'failed/${topic(2)}/${newuuid()}.json' },
    },
  ];
  const built = synth({ rules: custom });
  const res = built.resources;
  const rule = (name: string) =>
    render(Object.values(res).find((r) => r.Properties?.RuleName === name)?.Properties?.TopicRulePayload) as Record<
      string,
      Record<string, Record<string, string>>
    >;

  it('an error action can invoke a function (with its invoke permission)', () => {
    const payload = rule('custom_errors_to_lambda');
    const ingestId = built.stack.getLogicalId(built.stack.functions.ingest.node.defaultChild as CfnFunction);
    expect(payload.ErrorAction).toEqual({ Lambda: { FunctionArn: `\${${ingestId}.Arn}` } });
    const permission = Object.values(res).find(
      (r) => r.Type === 'AWS::Lambda::Permission' && r.Properties?.Principal === 'iot.amazonaws.com',
    );
    expect(render(permission?.Properties?.FunctionName)).toBe(`\${${ingestId}.Arn}`);
  });

  it('every template in a republish topic becomes one wildcard in the role', () => {
    const payload = rule('custom_errors_to_lambda');
    const actions = payload.Actions as unknown as Record<string, { RoleArn: string }>[];
    const roleId = refId(actions[0]?.Republish?.RoleArn);
    expect(roleGrants(res, roleId)).toEqual(allow(['iot:Publish'], ARN('iot', 'topic/fleet/*/seen/*')));
    expect(actions[0]?.Republish).toMatchObject({ Qos: 0, Topic: 'fleet/${topic(2)}/seen/${clientid()}' });
  });

  it('a log action gets its own log group and a role for it alone; an archive error action its key prefix', () => {
    const payload = rule('custom_log_action');
    const actions = payload.Actions as unknown as Record<string, { LogGroupName: string; RoleArn: string }>[];
    const groupId = refId(actions[0]?.CloudwatchLogs?.LogGroupName);
    expect(res[groupId]?.Properties?.LogGroupName).toBe('/pifleet/alerts');
    expect(roleGrants(res, refId(actions[0]?.CloudwatchLogs?.RoleArn)).map((g) => g.resource)).toEqual([
      `\${${groupId}.Arn}`,
      `\${${groupId}.Arn}`,
      `\${${groupId}.Arn}`,
    ]);
    const bucketId = built.stack.getLogicalId(built.stack.archiveBucket.node.defaultChild as CfnFunction);
    const s3 = payload.ErrorAction?.S3 as { RoleArn: string };
    expect(roleGrants(res, refId(s3.RoleArn))).toEqual(allow(['s3:PutObject'], `\${${bucketId}.Arn}/failed/*`));
  });

  it.each([
    ['two rules with one name', [RULES[0], RULES[0]] as RuleDefinition[], 'RULE_DUPLICATE'],
    [
      'a templated log group',
      [
        { ...(RULES[0] as RuleDefinition), errorAction: { kind: 'log', logGroup: '/x/${topic(1)}' } },
      ] as RuleDefinition[],
      'LOG_GROUP_TEMPLATE',
    ],
    [
      'an unclosed template',
      [
        { ...(RULES[0] as RuleDefinition), actions: [{ kind: 'republish', topic: 'a/${topic(2)', qos: 1 }] },
      ] as RuleDefinition[],
      'TEMPLATE_UNTERMINATED',
    ],
  ])('refuses %s', (_, rules, code) => {
    expect(() => synth({ rules })).toThrow(expect.objectContaining({ name: 'DeploymentError', code }));
  });
});

/** Runtime and architecture of every `AWS::Lambda::Function` of a template, by logical id (x86_64 when unset, as Lambda defaults). */
const runtimes = (res: Resources) =>
  Object.fromEntries(
    idsOfType(res, 'AWS::Lambda::Function').map((fnId) => {
      const props = res[fnId]?.Properties ?? {};
      return [fnId, { runtime: props.Runtime, architectures: props.Architectures ?? ['x86_64'] }];
    }),
  );

describe('Lambda runtime', () => {
  it('every function of the stack runs Node.js 24: the five handlers on arm64, CDK’s endpoint lookup on x86_64', () => {
    const lookupId = idsOfType(resources, 'Custom::AWS')[0] as string;
    const lookupFn = refId(render(resources[lookupId]?.Properties?.ServiceToken));
    const handler = { runtime: 'nodejs24.x', architectures: ['arm64'] };
    expect(runtimes(resources)).toEqual({
      [fnIds.ingest]: handler,
      [fnIds.presence]: handler,
      [fnIds.query]: handler,
      [fnIds.command]: handler,
      [fnIds['silent-devices']]: handler,
      // A plain string in every region (no Fn::FindInMap): CDK's latest-Node fact is the same everywhere.
      [lookupFn]: { runtime: 'nodejs24.x', architectures: ['x86_64'] },
    });
    expect(LAMBDA_RUNTIME.name).toBe('nodejs24.x');
  });

  it('with a given data endpoint there is no lookup function: the five handlers, Node.js 24 on arm64', () => {
    const given = synth({ iotDataEndpoint: 'abc123-ats.iot.eu-west-1.amazonaws.com' });
    const all = Object.values(runtimes(given.resources));
    expect(all).toHaveLength(5);
    for (const fn of all) expect(fn).toEqual({ runtime: 'nodejs24.x', architectures: ['arm64'] });
  });

  it.each([
    [lambda.Runtime.NODEJS_24_X, 'node24'],
    [lambda.Runtime.NODEJS_22_X, 'node22'],
  ])('esbuild targets the Node of the runtime: %s → %s', (runtime, target) => {
    expect(esbuildTargetOf(runtime)).toBe(target);
  });

  it('refuses to derive an esbuild target from a runtime that is not Node.js', () => {
    expect(() => esbuildTargetOf(lambda.Runtime.PYTHON_3_13)).toThrow(
      expect.objectContaining({ name: 'DeploymentError', code: 'BAD_SETTING', data: { runtime: 'python3.13' } }),
    );
  });
});

describe('Lambda functions', () => {
  it.each(Object.keys(fnIds) as LambdaName[])(
    '%s: Node.js 24 on arm64, bundle handler, table and log level in env',
    (name) => {
      const props = render(resources[fnIds[name]]?.Properties) as Record<string, unknown>;
      expect(props.Runtime).toBe('nodejs24.x');
      expect(props.Architectures).toEqual(['arm64']);
      expect(props.Handler).toBe('index.handler');
      expect(props.Environment).toMatchObject({
        Variables: { TABLE_NAME: expect.stringMatching(/^\$\{TelemetryTable[A-Z0-9]+\}$/), LOG_LEVEL: 'info' },
      });
      // Logs go to a group of the stack with a retention, not an unbounded implicit one.
      const groupId = refId((props.LoggingConfig as { LogGroup: string }).LogGroup);
      expect(resources[groupId]?.Properties?.RetentionInDays).toBe(30);
    },
  );

  it('every function of the stack other than the deploy-time endpoint lookup is one of the five handlers', () => {
    const ours = new Set(Object.values(fnIds));
    const others = idsOfType(resources, 'AWS::Lambda::Function').filter((i) => !ours.has(i));
    expect(others).toHaveLength(1);
    expect(resources[others[0] as string]?.Properties?.Handler).toBe('index.handler');
    template.resourceCountIs('Custom::AWS', 1);
  });

  it('ingest keeps readings for the configured retention, and the command handler gets the data endpoint as a URL', () => {
    const custom = synth({ retentionDays: 7, iotDataEndpoint: 'abc123-ats.iot.eu-west-1.amazonaws.com' });
    const env = (name: LambdaName) => {
      const fnId = custom.stack.getLogicalId(custom.stack.functions[name]?.node.defaultChild as CfnFunction);
      const environment = custom.resources[fnId]?.Properties?.Environment as { Variables: Record<string, unknown> };
      return environment.Variables;
    };
    expect(env('ingest').RETENTION_DAYS).toBe('7');
    expect(env('command').IOT_DATA_ENDPOINT).toBe('https://abc123-ats.iot.eu-west-1.amazonaws.com');
    // A given endpoint needs no deploy-time lookup.
    custom.template.resourceCountIs('Custom::AWS', 0);
    custom.template.hasOutput('IotDataEndpoint', { Value: 'abc123-ats.iot.eu-west-1.amazonaws.com' });
  });

  it('without an endpoint, the command handler gets the one the deploy-time lookup returns', () => {
    const env = render(resources[fnIds.command]?.Properties?.Environment) as { Variables: Record<string, string> };
    const lookupId = idsOfType(resources, 'Custom::AWS')[0] as string;
    expect(env.Variables.IOT_DATA_ENDPOINT).toBe(`https://\${${lookupId}.endpointAddress}`);
    const create = JSON.parse(String(resources[lookupId]?.Properties?.Create)) as Record<string, unknown>;
    expect(create).toMatchObject({
      service: 'IoT',
      action: 'DescribeEndpoint',
      parameters: { endpointType: 'iot:Data-ATS' },
    });
  });

  it.each(['ingest', 'presence'] as const)(
    '%s (invoked asynchronously by a rule): two retries, then its SQS failure queue',
    (name) => {
      const configs = Object.values(resources).filter(
        (r) =>
          r.Type === 'AWS::Lambda::EventInvokeConfig' && render(r.Properties?.FunctionName) === `\${${fnIds[name]}}`,
      );
      const queueId = stack.getLogicalId(stack.failureQueues[name].node.defaultChild as CfnFunction);
      expect(configs.map((c) => render(c.Properties))).toEqual([
        {
          FunctionName: `\${${fnIds[name]}}`,
          Qualifier: '$LATEST',
          MaximumRetryAttempts: 2,
          MaximumEventAgeInSeconds: 21600,
          DestinationConfig: { OnFailure: { Destination: `\${${queueId}.Arn}` } },
        },
      ]);
      expect(resources[queueId]?.Properties).toMatchObject({
        MessageRetentionPeriod: 1209600,
        SqsManagedSseEnabled: true,
      });
    },
  );

  it('the API-invoked functions have no asynchronous invoke config', () => {
    const configured = Object.values(resources)
      .filter((r) => r.Type === 'AWS::Lambda::EventInvokeConfig')
      .map((r) => render(r.Properties?.FunctionName));
    expect(configured.sort()).toEqual([`\${${fnIds.ingest}}`, `\${${fnIds.presence}}`].sort());
  });
});

describe('least privilege', () => {
  const logs = (name: LambdaName) =>
    allow(['logs:CreateLogStream', 'logs:PutLogEvents'], `\${${logGroupOf(name)}.Arn}`);
  const logGroupOf = (name: LambdaName) =>
    refId((render(resources[fnIds[name]]?.Properties?.LoggingConfig) as { LogGroup: string }).LogGroup);
  const queue = (name: 'ingest' | 'presence') =>
    allow(
      ['sqs:SendMessage', 'sqs:GetQueueAttributes', 'sqs:GetQueueUrl'],
      `\${${stack.getLogicalId(stack.failureQueues[name].node.defaultChild as CfnFunction)}.Arn}`,
    );
  const expected: Record<LambdaName, () => Grant[]> = {
    ingest: () => [
      ...logs('ingest'),
      ...allow(['dynamodb:GetItem', 'dynamodb:BatchWriteItem', 'dynamodb:UpdateItem', 'dynamodb:PutItem'], tableArn),
      ...queue('ingest'),
    ],
    presence: () => [...logs('presence'), ...allow(['dynamodb:PutItem'], tableArn), ...queue('presence')],
    // Readings and newest values by thing, and the connectivity index for GET /presence.
    query: () => [...logs('query'), ...allow(['dynamodb:Query'], tableArn, `${tableArn}/index/connectivity-by-thing`)],
    command: () => [
      ...logs('command'),
      ...allow(['iot:GetThingShadow', 'iot:UpdateThingShadow', 'iot:DescribeThing'], ARN('iot', 'thing/*')),
      ...allow(['dynamodb:GetItem'], tableArn),
    ],
    // observability.test.ts asserts this role's statements one by one.
    'silent-devices': () => [
      ...logs('silent-devices'),
      ...allow(['dynamodb:Query'], tableArn, `${tableArn}/index/connectivity-by-thing`),
    ],
  };

  it.each(Object.keys(expected) as LambdaName[])('%s: its role allows exactly what the handler calls', (name) => {
    const roleId = refId(render(resources[fnIds[name]]?.Properties?.Role));
    const sorted = (g: Grant[]) =>
      [...g].sort((a, b) => `${a.action} ${a.resource}`.localeCompare(`${b.action} ${b.resource}`));
    expect(roleGrants(resources, roleId)).toEqual(sorted(expected[name]()));
    expect(render(resources[roleId]?.Properties?.AssumeRolePolicyDocument)).toEqual({
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' }],
    });
  });

  it('no policy in the stack has a wildcard action, and only the endpoint lookup has Resource "*"', () => {
    const grants = [
      ...idsOfType(resources, 'AWS::IAM::Policy').flatMap((p) => grantsOf(resources[p]?.Properties?.PolicyDocument)),
      ...idsOfType(resources, 'AWS::IAM::Role').flatMap((r) =>
        ((resources[r]?.Properties?.Policies as { PolicyDocument: unknown }[] | undefined) ?? []).flatMap((p) =>
          grantsOf(p.PolicyDocument),
        ),
      ),
    ];
    expect(grants.length).toBeGreaterThan(20);
    expect(grants.filter((g) => g.action.includes('*'))).toEqual([]);
    expect(grants.filter((g) => g.resource === '*')).toEqual(allow(['iot:DescribeEndpoint'], '*'));
  });

  it('only the endpoint lookup provider (an AWS construct) carries a managed policy', () => {
    const withManaged = idsOfType(resources, 'AWS::IAM::Role').filter(
      (r) => resources[r]?.Properties?.ManagedPolicyArns !== undefined,
    );
    expect(withManaged).toHaveLength(1);
    expect(render(resources[withManaged[0] as string]?.Properties?.ManagedPolicyArns)).toEqual([
      'arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole',
    ]);
  });
});

describe('storage', () => {
  it('the telemetry table has the documented keys and connectivity index, on-demand billing, TTL on expiresAt and PITR; it is retained', () => {
    const { ttlAttribute } = TELEMETRY_TABLE_KEYS;
    template.hasResource('AWS::DynamoDB::Table', {
      Properties: {
        // The keys and the sparse connectivity index the adapter creates its own table with: only
        // connectivity items carry the index's partition key (adapters/dynamodb-telemetry-store.ts).
        ...telemetryTableSchema(),
        BillingMode: 'PAY_PER_REQUEST',
        TimeToLiveSpecification: { AttributeName: ttlAttribute, Enabled: true },
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        SSESpecification: { SSEEnabled: true },
      },
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
    expect(ttlAttribute).toBe('expiresAt');
  });

  it('the archive bucket blocks public access, is encrypted, tiers raw/ and raw-errors/ to IA then Glacier and expires them', () => {
    template.hasResource('AWS::S3::Bucket', {
      Properties: {
        PublicAccessBlockConfiguration: {
          BlockPublicAcls: true,
          BlockPublicPolicy: true,
          IgnorePublicAcls: true,
          RestrictPublicBuckets: true,
        },
        BucketEncryption: {
          ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
        },
        OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
        LifecycleConfiguration: {
          Rules: [
            {
              Id: 'archive-tiering-0',
              Prefix: 'raw/',
              Status: 'Enabled',
              Transitions: [
                { StorageClass: 'STANDARD_IA', TransitionInDays: 30 },
                { StorageClass: 'GLACIER', TransitionInDays: 90 },
              ],
              ExpirationInDays: 365,
            },
            {
              Id: 'archive-tiering-1',
              Prefix: 'raw-errors/',
              Status: 'Enabled',
              Transitions: [
                { StorageClass: 'STANDARD_IA', TransitionInDays: 30 },
                { StorageClass: 'GLACIER', TransitionInDays: 90 },
              ],
              ExpirationInDays: 365,
            },
            {
              Id: 'abort-incomplete-uploads',
              AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
              Status: 'Enabled',
            },
          ],
        },
      },
      DeletionPolicy: 'Retain',
    });
  });

  it('the archive bucket refuses requests without TLS 1.2', () => {
    const policy = Object.values(resources).find((r) => r.Type === 'AWS::S3::BucketPolicy');
    const statements = (render(policy?.Properties?.PolicyDocument) as { Statement: Record<string, unknown>[] })
      .Statement;
    expect(statements).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          Effect: 'Deny',
          Action: 's3:*',
          Condition: { Bool: { 'aws:SecureTransport': 'false' } },
        }),
        expect.objectContaining({
          Effect: 'Deny',
          Action: 's3:*',
          Condition: { NumericLessThan: { 's3:TlsVersion': 1.2 } },
        }),
      ]),
    );
  });

  it.each([
    [{ retentionDays: 0 }],
    [{ retentionDays: Number.NaN }],
    [{ archiveLifecycle: { infrequentAccessAfterDays: 10 } }],
    [{ archiveLifecycle: { glacierAfterDays: 40 } }],
    [{ archiveLifecycle: { expireAfterDays: 90 } }],
    [{ iotDataEndpoint: 'https://abc-ats.iot.eu-west-1.amazonaws.com' }],
  ] as Partial<PifleetStackProps>[][])('refuses settings %j', (props) => {
    expect(() => synth(props)).toThrow(DeploymentError);
  });
});

describe('device policy', () => {
  it('is the recommended policy of @pifleet/protocol, named for provisioning to find, with region and account resolved', () => {
    const policy = Object.values(resources).filter((r) => r.Type === 'AWS::IoT::Policy');
    expect(policy).toHaveLength(1);
    expect(policy[0]?.Properties?.PolicyName).toBe(RECOMMENDED_POLICY_NAME);
    expect(policy[0]?.DeletionPolicy).toBe('Retain');
    const doc = render(policy[0]?.Properties?.PolicyDocument);
    expect(doc).toEqual(recommendedDevicePolicy('${AWS::Region}', '${AWS::AccountId}'));
    // No unresolved token made it into the JSON (tokens must be resolved by CloudFormation, not stringified).
    expect(JSON.stringify(policy[0]?.Properties?.PolicyDocument)).not.toMatch(/Token\[/);
    // As a JSON string (the form the provisioning CLI sends), the tokens resolve too.
    const json = render(
      stack.resolve(stack.toJsonString(recommendedDevicePolicy(Stack.of(stack).region, Stack.of(stack).account))),
    );
    expect(JSON.parse(String(json))).toEqual(recommendedDevicePolicy('${AWS::Region}', '${AWS::AccountId}'));
  });
});

describe('HTTP API', () => {
  const routes = Object.values(resources).filter((r) => r.Type === 'AWS::ApiGatewayV2::Route');

  it('serves the query and command routes, each with IAM authorization', () => {
    const keys = routes.map((r) => r.Properties?.RouteKey).sort();
    expect(keys).toEqual([...QUERY_ROUTES, ...COMMAND_ROUTES].map((r) => `${r.method} ${r.path}`).sort());
    for (const r of routes) expect(r.Properties?.AuthorizationType).toBe('AWS_IAM');
  });

  it('serves exactly the routes the local core serves, each with the same handler', () => {
    const deployed = [
      ...QUERY_ROUTES.map((r) => `${r.method} ${r.path} query`),
      ...COMMAND_ROUTES.map((r) => `${r.method} ${r.path} command`),
    ];
    expect(deployed.sort()).toEqual(API_ROUTES.map((r) => `${r.method} ${r.path} ${r.handler}`).sort());
    expect(deployed).toContain('GET /presence query');
  });

  it.each([
    ...QUERY_ROUTES.map((r) => [`${r.method} ${r.path}`, 'query'] as const),
    ...COMMAND_ROUTES.map((r) => [`${r.method} ${r.path}`, 'command'] as const),
  ])('%s goes to the %s function', (routeKey, fn) => {
    const route = routes.find((r) => r.Properties?.RouteKey === routeKey);
    const target = String(render(route?.Properties?.Target)).replace(/^integrations\//, '');
    const integration = resources[refId(target)];
    expect(render(integration?.Properties)).toMatchObject({
      IntegrationType: 'AWS_PROXY',
      PayloadFormatVersion: '2.0',
      IntegrationUri: `\${${fnIds[fn]}.Arn}`,
    });
  });

  it('throttles the default stage and outputs the API URL', () => {
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      StageName: '$default',
      AutoDeploy: true,
      DefaultRouteSettings: { ThrottlingBurstLimit: 100, ThrottlingRateLimit: 50 },
    });
    template.hasOutput('ApiUrl', { Value: Match.anyValue() });
  });

  it('without command code it deploys no command function or routes and says so', () => {
    const partial = synth({ handlerCode: (name) => (name === 'command' ? undefined : stubCode(name)) });
    expect(partial.stack.functions.command).toBeUndefined();
    const keys = Object.values(partial.resources)
      .filter((r) => r.Type === 'AWS::ApiGatewayV2::Route')
      .map((r) => r.Properties?.RouteKey);
    expect(keys.sort()).toEqual(QUERY_ROUTES.map((r) => `${r.method} ${r.path}`).sort());
    Annotations.fromStack(partial.stack).hasWarning('*', Match.stringLikeRegexp('command function'));
  });

  it.each(['ingest', 'presence', 'query'] as const)('refuses to deploy without %s code', (missing) => {
    expect(() => synth({ handlerCode: (name) => (name === missing ? undefined : stubCode(name)) })).toThrow(
      expect.objectContaining({ code: 'HANDLER_MISSING' }),
    );
  });
});
