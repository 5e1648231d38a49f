import { App, type CfnElement } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type { IConstruct } from 'constructs';
import { describe, expect, it } from 'vitest';
import type { LambdaName } from '../../cdk/bundle.js';
import { IOT_BROKER_METRICS, METRIC_SERVICES, RULE_ERRORS_METRIC } from '../../cdk/observability.js';
import { PifleetStack, type PifleetStackProps } from '../../cdk/pifleet-stack.js';
import { createEmfMetrics } from '../../src/adapters/emf-metrics.js';
import { CLOUD_METRICS, type CloudMetricName, METRICS_NAMESPACE } from '../../src/ports/metrics.js';
import { RULE_ERROR_LOG_GROUP, RULES, type RuleDefinition } from '../../src/rules/definitions.js';
import { idsOfType, type Resources, refId, render, roleGrants } from './template-helpers.js';

// Inline stubs instead of bundles, as in stack.test.ts.
const stubCode = (name: LambdaName) => lambda.Code.fromInline(`exports.handler = async () => ${JSON.stringify(name)};`);
const hookCode = lambda.Code.fromInline('exports.handler = async () => ({ allowProvisioning: false });');

function synth(props: Partial<PifleetStackProps> = {}) {
  const app = new App({ analyticsReporting: false });
  const stack = new PifleetStack(app, 'Test', { handlerCode: stubCode, ...props });
  const json = Template.fromStack(stack).toJSON() as { Resources: Resources; Outputs: Record<string, unknown> };
  const logical = (c: IConstruct | undefined) => {
    if (c === undefined) throw new Error('construct missing');
    return stack.getLogicalId((c.node.defaultChild ?? c) as CfnElement);
  };
  return { stack, resources: json.Resources, outputs: json.Outputs, logical };
}

type Alarm = Record<string, unknown>;
const alarmsOf = (res: Resources): Alarm[] =>
  idsOfType(res, 'AWS::CloudWatch::Alarm').map((alarmId) => render(res[alarmId]?.Properties) as Alarm);

const { stack, resources, outputs, logical } = synth();
const topic = `\${${logical(stack.observability.alarmTopic)}}`;
const fnRef = (name: LambdaName) => `\${${logical(stack.functions[name])}}`;
const queueName = (name: 'ingest' | 'presence') => `\${${logical(stack.failureQueues[name])}.QueueName}`;
const tableArn = `\${${logical(stack.table)}.Arn}`;

function alarmNamed(name: string, res: Resources = resources, stackName = 'Test'): Alarm {
  const found = alarmsOf(res).filter((a) => a.AlarmName === `${stackName}-${name}`);
  expect(found, name).toHaveLength(1);
  return found[0] as Alarm;
}

/** Every alarm tells the topic when it fires and when it clears. */
const notifies = { AlarmActions: [topic], OKActions: [topic] };
const anyOver = { Threshold: 0, ComparisonOperator: 'GreaterThanThreshold', EvaluationPeriods: 1 };

const lambdaAlarm = (fn: LambdaName, metricName: 'Errors' | 'Throttles') => ({
  Namespace: 'AWS/Lambda',
  MetricName: metricName,
  Dimensions: [{ Name: 'FunctionName', Value: fnRef(fn) }],
  Statistic: 'Sum',
  Period: 300,
  ...anyOver,
  TreatMissingData: 'notBreaching',
});

const FUNCTIONS: LambdaName[] = ['ingest', 'presence', 'query', 'command', 'silent-devices'];

const EXPECTED_ALARMS: [string, Alarm, RegExp][] = [
  [
    'rule-errors',
    {
      Namespace: 'pifleet',
      MetricName: 'RuleErrors',
      Statistic: 'Sum',
      Period: 300,
      ...anyOver,
      TreatMissingData: 'notBreaching',
    },
    /IoT rule action failed/,
  ],
  ...(['ingest', 'presence'] as const).map((name): [string, Alarm, RegExp] => [
    `${name}-failure-queue`,
    {
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [{ Name: 'QueueName', Value: queueName(name) }],
      Statistic: 'Maximum',
      Period: 300,
      ...anyOver,
      TreatMissingData: 'notBreaching',
    },
    new RegExp(`${name} function failed on`),
  ]),
  ...FUNCTIONS.flatMap((fn): [string, Alarm, RegExp][] => [
    [`${fn}-errors`, lambdaAlarm(fn, 'Errors'), new RegExp(`The ${fn} function failed`)],
    [`${fn}-throttles`, lambdaAlarm(fn, 'Throttles'), new RegExp(`invocations of the ${fn} function`)],
  ]),
  [
    'ingest-lag-p99',
    {
      Namespace: 'pifleet',
      MetricName: 'IngestLag',
      Dimensions: [{ Name: 'service', Value: 'ingest' }],
      ExtendedStatistic: 'p99',
      Period: 60,
      Threshold: 60_000,
      ComparisonOperator: 'GreaterThanThreshold',
      EvaluationPeriods: 5,
      DatapointsToAlarm: 3,
      TreatMissingData: 'notBreaching',
    },
    /more than 60 s/,
  ],
  [
    'silent-devices',
    {
      Namespace: 'pifleet',
      MetricName: 'SilentDevices',
      Dimensions: [{ Name: 'service', Value: 'silent-devices' }],
      Statistic: 'Maximum',
      Period: 300,
      ...anyOver,
      // Missing data is a check that did not run: it neither clears nor fires this alarm…
      TreatMissingData: 'ignore',
    },
    /longer than 15 minutes/,
  ],
  [
    'silent-devices-check',
    {
      Namespace: 'pifleet',
      MetricName: 'SilentDevices',
      Dimensions: [{ Name: 'service', Value: 'silent-devices' }],
      Statistic: 'SampleCount',
      Period: 300,
      Threshold: 1,
      ComparisonOperator: 'LessThanThreshold',
      EvaluationPeriods: 3,
      // …and fires this one.
      TreatMissingData: 'breaching',
    },
    /reported nothing for 15 minutes/,
  ],
];

describe('alarms', () => {
  it('the stack has exactly the documented alarms', () => {
    expect(alarmsOf(resources).map((a) => a.AlarmName)).toEqual(
      expect.arrayContaining(EXPECTED_ALARMS.map(([name]) => `Test-${name}`)),
    );
    expect(alarmsOf(resources)).toHaveLength(EXPECTED_ALARMS.length);
  });

  it.each(EXPECTED_ALARMS)(
    '%s: metric, statistic, threshold, periods, missing data, topic actions',
    (name, expected, description) => {
      expect(alarmNamed(name)).toEqual({
        AlarmName: `Test-${name}`,
        AlarmDescription: expect.stringMatching(description),
        ...expected,
        ...notifies,
      });
    },
  );

  it('every function of the stack has an Errors and a Throttles alarm, but CDK’s deploy-time endpoint lookup', () => {
    const lookupId = idsOfType(resources, 'Custom::AWS')[0] as string;
    const lookupFn = refId(render(resources[lookupId]?.Properties?.ServiceToken));
    const functions = idsOfType(resources, 'AWS::Lambda::Function').filter((fnId) => fnId !== lookupFn);
    expect(functions).toHaveLength(FUNCTIONS.length);
    for (const metricName of ['Errors', 'Throttles']) {
      const watched = alarmsOf(resources)
        .filter((a) => a.Namespace === 'AWS/Lambda' && a.MetricName === metricName)
        .map((a) => refId((a.Dimensions as { Value: string }[])[0]?.Value));
      expect(watched.sort()).toEqual([...functions].sort());
    }
  });

  it('with fleet provisioning, the pre-provisioning hook is watched too', () => {
    const built = synth({ fleetProvisioning: { hookCode } });
    const hook = `\${${built.logical(built.stack.fleetProvisioning?.hook)}}`;
    for (const metricName of ['Errors', 'Throttles'] as const) {
      expect(alarmNamed(`provisioning-hook-${metricName.toLowerCase()}`, built.resources)).toMatchObject({
        MetricName: metricName,
        Dimensions: [{ Name: 'FunctionName', Value: hook }],
      });
    }
    expect(alarmsOf(built.resources)).toHaveLength(EXPECTED_ALARMS.length + 2);
  });

  it('without command code, no command alarms', () => {
    const built = synth({ handlerCode: (name) => (name === 'command' ? undefined : stubCode(name)) });
    const names = alarmsOf(built.resources).map((a) => String(a.AlarmName));
    expect(names.filter((n) => n.includes('command'))).toEqual([]);
    expect(names).toHaveLength(EXPECTED_ALARMS.length - 2);
  });

  it('counts every line of the rules’ error log group as a rule error', () => {
    const filters = idsOfType(resources, 'AWS::Logs::MetricFilter').map((f) => render(resources[f]?.Properties));
    expect(filters).toHaveLength(1);
    const [filter] = filters as Record<string, unknown>[];
    expect(resources[refId(filter?.LogGroupName)]?.Properties?.LogGroupName).toBe(RULE_ERROR_LOG_GROUP);
    expect(filter).toEqual({
      LogGroupName: expect.any(String),
      FilterPattern: '',
      MetricTransformations: [{ MetricNamespace: 'pifleet', MetricName: RULE_ERRORS_METRIC, MetricValue: '1' }],
    });
  });

  it('rules whose error actions do not log get no rule-error filter or alarm', () => {
    const rules: RuleDefinition[] = RULES.map((r) => ({
      ...r,
      errorAction: { kind: 'archive', key: 'failed/x.json' },
    }));
    const built = synth({ rules });
    expect(idsOfType(built.resources, 'AWS::Logs::MetricFilter')).toEqual([]);
    expect(alarmsOf(built.resources).map((a) => a.AlarmName)).not.toContain('Test-rule-errors');
  });

  it('the alarms’ pifleet dimensions are the ones the EMF adapter writes', () => {
    for (const [service, metric] of [
      [METRIC_SERVICES.ingest, 'IngestLag'],
      [METRIC_SERVICES.silentDevices, 'SilentDevices'],
      [METRIC_SERVICES.command, 'CommandsAccepted'],
    ] as const) {
      const lines: string[] = [];
      const emf = createEmfMetrics({ serviceName: service, write: (line) => void lines.push(line) });
      emf.add(metric, 1);
      emf.flush();
      const doc = JSON.parse(lines[0] ?? '{}') as {
        _aws: { CloudWatchMetrics: { Namespace: string; Dimensions: string[][] }[] };
        service: string;
      };
      expect(doc._aws.CloudWatchMetrics).toEqual([
        expect.objectContaining({ Namespace: METRICS_NAMESPACE, Dimensions: [['service']] }),
      ]);
      expect(doc.service).toBe(service);
    }
  });

  it.each([
    [{ silentAfterMinutes: 30 }, '30', /longer than 30 minutes/],
    [{}, '15', /longer than 15 minutes/],
  ])('the silence threshold %j reaches the function and the alarm’s description', (props, env, description) => {
    const built = synth(props);
    const fnId = built.logical(built.stack.functions['silent-devices']);
    const environment = built.resources[fnId]?.Properties?.Environment as
      | { Variables: Record<string, unknown> }
      | undefined;
    const variables = environment?.Variables ?? {};
    expect(variables.SILENT_AFTER_MINUTES).toBe(env);
    expect(alarmNamed('silent-devices', built.resources).AlarmDescription).toMatch(description);
  });

  it.each([
    ['silentAfterMinutes 0', { silentAfterMinutes: 0 }],
    ['silentAfterMinutes NaN (a bad context value)', { silentAfterMinutes: Number.NaN }],
    ['silentAfterMinutes past a week', { silentAfterMinutes: 10_081 }],
    ['an alarm email without @', { alarmEmail: 'ops.example.com' }],
    ['an alarm email with spaces', { alarmEmail: 'ops @example.com' }],
  ] as const)('refuses %s', (_label, props) => {
    expect(() => synth(props)).toThrow(expect.objectContaining({ name: 'DeploymentError', code: 'BAD_SETTING' }));
  });
});

describe('alarm topic', () => {
  it('is a plain SNS topic under the default access policy (CloudWatch publishes to it), with its ARN an output', () => {
    const topics = idsOfType(resources, 'AWS::SNS::Topic');
    expect(topics).toEqual([refId(topic)]);
    expect(resources[refId(topic)]?.Properties).toEqual({ DisplayName: 'pifleet alarms (Test)' });
    expect(idsOfType(resources, 'AWS::SNS::TopicPolicy')).toEqual([]);
    expect(render(outputs.AlarmTopicArn)).toMatchObject({ Value: topic });
  });

  it('has no subscription unless an email is given, then exactly that one', () => {
    expect(idsOfType(resources, 'AWS::SNS::Subscription')).toEqual([]);
    const built = synth({ alarmEmail: 'ops@example.com' });
    const subs = idsOfType(built.resources, 'AWS::SNS::Subscription').map((s) =>
      render(built.resources[s]?.Properties),
    );
    expect(subs).toEqual([
      {
        Protocol: 'email',
        Endpoint: 'ops@example.com',
        TopicArn: `\${${built.logical(built.stack.observability.alarmTopic)}}`,
      },
    ]);
  });
});

describe('silent-devices schedule and function', () => {
  const fnId = logical(stack.functions['silent-devices']);

  it('an EventBridge rule invokes the function every 5 minutes; a run it cannot deliver within 4 minutes is dropped', () => {
    const rules = idsOfType(resources, 'AWS::Events::Rule');
    expect(rules).toHaveLength(1);
    expect(render(resources[rules[0] as string]?.Properties)).toEqual({
      Description: 'pifleet: the silent-devices check',
      ScheduleExpression: 'rate(5 minutes)',
      State: 'ENABLED',
      Targets: [
        {
          Arn: `\${${fnId}.Arn}`,
          Id: 'Target0',
          RetryPolicy: { MaximumRetryAttempts: 2, MaximumEventAgeInSeconds: 240 },
        },
      ],
    });
  });

  it('only that rule may invoke it through EventBridge, and no other function', () => {
    const ruleId = idsOfType(resources, 'AWS::Events::Rule')[0] as string;
    const fromEvents = Object.values(resources)
      .filter((r) => r.Type === 'AWS::Lambda::Permission' && r.Properties?.Principal === 'events.amazonaws.com')
      .map((r) => render(r.Properties));
    expect(fromEvents).toEqual([
      {
        Action: 'lambda:InvokeFunction',
        FunctionName: `\${${fnId}.Arn}`,
        Principal: 'events.amazonaws.com',
        SourceArn: `\${${ruleId}.Arn}`,
      },
    ]);
  });

  it('its role reads the table only: Query on the table (newest values) and on the connectivity index', () => {
    const fn = render(resources[fnId]?.Properties) as Record<string, unknown>;
    const roleId = refId(fn.Role);
    const logGroup = refId((fn.LoggingConfig as { LogGroup: string }).LogGroup);
    const policies = Object.values(resources).filter(
      (r) =>
        r.Type === 'AWS::IAM::Policy' &&
        ((r.Properties?.Roles as unknown[] | undefined) ?? []).some((ref) => render(ref) === `\${${roleId}}`),
    );
    expect(policies).toHaveLength(1);
    expect((render(policies[0]?.Properties?.PolicyDocument) as { Statement: unknown[] }).Statement).toEqual([
      { Effect: 'Allow', Action: ['logs:CreateLogStream', 'logs:PutLogEvents'], Resource: `\${${logGroup}.Arn}` },
      {
        Effect: 'Allow',
        Action: 'dynamodb:Query',
        Resource: [tableArn, `${tableArn}/index/connectivity-by-thing`],
      },
    ]);
    // No inline or managed policy beside it (roleGrants throws on managed ones).
    expect(resources[roleId]?.Properties?.Policies).toBeUndefined();
    expect(roleGrants(resources, roleId)).toHaveLength(4);
    expect(render(resources[roleId]?.Properties?.AssumeRolePolicyDocument)).toEqual({
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' }],
    });
  });

  it('runs with the table, the threshold, a minute and 256 MB', () => {
    expect(render(resources[fnId]?.Properties)).toMatchObject({
      Timeout: 60,
      MemorySize: 256,
      Environment: {
        Variables: { TABLE_NAME: expect.stringMatching(/^\$\{TelemetryTable/), SILENT_AFTER_MINUTES: '15' },
      },
    });
  });
});

describe('dashboard', () => {
  const dashboards = idsOfType(resources, 'AWS::CloudWatch::Dashboard');
  const props = render(resources[dashboards[0] as string]?.Properties) as {
    DashboardName: string;
    DashboardBody: string;
  };
  interface Widget {
    type: string;
    properties: {
      title: string;
      metrics?: unknown[][];
      alarms?: string[];
      annotations?: { horizontal: { value: number }[] };
    };
  }
  const body = JSON.parse(props.DashboardBody) as { widgets: Widget[] };

  /** A widget's metric lines as (namespace, name, dimensions, stat, axis) or a math expression. */
  interface Line {
    namespace?: string;
    name?: string;
    dimensions: Record<string, string>;
    stat?: string;
    expression?: string;
    axis: string;
  }
  const linesOf = (title: string): Line[] => {
    const widget = body.widgets.find((w) => w.properties.title === title);
    if (widget === undefined) throw new Error(`no widget ${title}`);
    return (widget.properties.metrics ?? []).map((row) => {
      const last = row.at(-1);
      const options = (typeof last === 'object' && last !== null ? last : {}) as Record<string, string>;
      const strings = row.filter((x): x is string => typeof x === 'string');
      const [namespace, name, ...dims] = strings;
      const dimensions: Record<string, string> = {};
      for (let i = 0; i + 1 < dims.length; i += 2) dimensions[dims[i] as string] = dims[i + 1] as string;
      return {
        ...(namespace === undefined ? {} : { namespace, name }),
        dimensions,
        ...(options.stat === undefined ? {} : { stat: options.stat }),
        ...(options.expression === undefined ? {} : { expression: options.expression }),
        axis: options.yAxis ?? 'left',
      };
    });
  };
  const pifleet = (name: CloudMetricName, service: string, stat: string) => ({
    namespace: 'pifleet',
    name,
    dimensions: { service },
    stat,
    axis: 'left',
  });

  it('is one dashboard named after the stack, its name an output', () => {
    expect(dashboards).toHaveLength(1);
    expect(props.DashboardName).toBe('Test-fleet');
    expect(render(outputs.DashboardName)).toMatchObject({ Value: `\${${dashboards[0]}}` });
  });

  it('opens with the state of every alarm', () => {
    const alarmIds = idsOfType(resources, 'AWS::CloudWatch::Alarm');
    const [first] = body.widgets;
    expect(first?.type).toBe('alarm');
    expect(first?.properties.alarms?.map(refId).sort()).toEqual([...alarmIds].sort());
  });

  it.each([
    ['Readings stored', [pifleet('ReadingsStored', 'ingest', 'Sum')]],
    [
      'Batches',
      [
        pifleet('BatchesStored', 'ingest', 'Sum'),
        pifleet('BatchesDeduplicated', 'ingest', 'Sum'),
        pifleet('PoisonBatches', 'ingest', 'Sum'),
        pifleet('StoreFailures', 'ingest', 'Sum'),
      ],
    ],
    ['Ingest lag (sealed → stored)', [pifleet('IngestLag', 'ingest', 'p50'), pifleet('IngestLag', 'ingest', 'p99')]],
    [
      'Commands',
      [
        pifleet('CommandsAccepted', 'command', 'Sum'),
        pifleet('CommandsRejected', 'command', 'Sum'),
        pifleet('CommandsConflicting', 'command', 'Sum'),
      ],
    ],
    ['Silent devices', [pifleet('SilentDevices', 'silent-devices', 'Maximum')]],
    [
      'Failures waiting',
      [
        ...(['ingest', 'presence'] as const).map((q) => ({
          namespace: 'AWS/SQS',
          name: 'ApproximateNumberOfMessagesVisible',
          dimensions: { QueueName: queueName(q) },
          stat: 'Maximum',
          axis: 'left',
        })),
        { namespace: 'pifleet', name: 'RuleErrors', dimensions: {}, stat: 'Sum', axis: 'right' },
      ],
    ],
    ...(
      [
        ['Lambda errors', 'Errors', 'Sum'],
        ['Lambda throttles', 'Throttles', 'Sum'],
        ['Lambda duration p99', 'Duration', 'p99'],
      ] as const
    ).map(([title, name, stat]): [string, Line[]] => [
      title,
      FUNCTIONS.map((fn) => ({
        namespace: 'AWS/Lambda',
        name,
        dimensions: { FunctionName: fnRef(fn) },
        stat,
        axis: 'left',
      })).sort((a, b) => a.dimensions.FunctionName.localeCompare(b.dimensions.FunctionName)),
    ]),
    [
      'IoT Core connects',
      IOT_BROKER_METRICS.filter((m) => m.startsWith('Connect.')).map((m) => ({
        dimensions: {},
        expression: `SEARCH('Namespace="AWS/IoT" MetricName="${m}"', 'Sum', 300)`,
        axis: 'left',
      })),
    ],
    [
      'IoT Core messages in',
      IOT_BROKER_METRICS.filter((m) => m.startsWith('PublishIn.')).map((m) => ({
        dimensions: {},
        expression: `SEARCH('Namespace="AWS/IoT" MetricName="${m}"', 'Sum', 300)`,
        axis: 'left',
      })),
    ],
    [
      'IoT rules',
      [
        ...RULES.map((r) => ({
          namespace: 'AWS/IoT',
          name: 'TopicMatch',
          dimensions: { RuleName: r.name },
          stat: 'Sum',
          axis: 'left',
        })),
        ...RULES.map((r) => ({
          namespace: 'AWS/IoT',
          name: 'RuleMessageThrottled',
          dimensions: { RuleName: r.name },
          stat: 'Sum',
          axis: 'right',
        })),
      ],
    ],
  ] as [string, Line[]][])('%s: the right metrics', (title, expected) => {
    const lines = linesOf(title);
    const sorted = title.startsWith('Lambda')
      ? [...lines].sort((a, b) => String(a.dimensions.FunctionName).localeCompare(String(b.dimensions.FunctionName)))
      : lines;
    expect(sorted).toEqual(expected);
  });

  it('draws the alarm thresholds on the lag and silent-devices graphs', () => {
    const annotation = (title: string) =>
      body.widgets.find((w) => w.properties.title === title)?.properties.annotations?.horizontal.map((h) => h.value);
    expect(annotation('Ingest lag (sealed → stored)')).toEqual([60_000]);
    expect(annotation('Silent devices')).toEqual([1]);
  });

  it('names only metrics the handlers publish, with the dimension the EMF adapter gives them', () => {
    const ours = body.widgets.flatMap((w) => (w.properties.metrics === undefined ? [] : linesOf(w.properties.title)));
    const pifleetLines = ours.filter((l) => l.namespace === 'pifleet');
    expect(pifleetLines.length).toBeGreaterThan(10);
    const services: string[] = Object.values(METRIC_SERVICES);
    for (const line of pifleetLines) {
      if (line.name === RULE_ERRORS_METRIC) continue;
      expect(Object.keys(CLOUD_METRICS)).toContain(line.name);
      expect(Object.keys(line.dimensions)).toEqual(['service']);
      expect(services).toContain(line.dimensions.service);
    }
  });
});
