import { Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { type CloudMetricName, METRICS_NAMESPACE } from '../src/ports/metrics.js';
import type { RuleDefinition } from '../src/rules/definitions.js';
import { DeploymentError } from './errors.js';
import type { TopicRules } from './topic-rules.js';

/**
 * Watching a deployed fleet: an SNS topic for alarms, the silent-devices check on a schedule, the
 * alarms, and one CloudWatch dashboard of the fleet's vital signs.
 *
 * Every alarm notifies the topic when it fires and again when it clears (alarm and OK actions), so
 * a subscriber learns that a problem ended without looking. The topic is not encrypted: CloudWatch
 * cannot publish to a topic under the AWS managed SNS key (its key policy does not let CloudWatch
 * use it), and alarm notifications carry no fleet data beyond names and numbers.
 *
 * | alarm                          | metric                                         | fires when                               | missing data |
 * |--------------------------------|------------------------------------------------|------------------------------------------|--------------|
 * | `<stack>-rule-errors`          | pifleet `RuleErrors` (the rules' error log)    | Sum > 0 in 5 min                         | not breaching: no error logged |
 * | `<stack>-<fn>-failure-queue`   | AWS/SQS ApproximateNumberOfMessagesVisible     | Maximum > 0 in 5 min                     | not breaching: SQS reports a queue with messages |
 * | `<stack>-<fn>-errors`          | AWS/Lambda Errors                              | Sum > 0 in 5 min                         | not breaching: no invocation, no error |
 * | `<stack>-<fn>-throttles`       | AWS/Lambda Throttles                           | Sum > 0 in 5 min                         | not breaching |
 * | `<stack>-ingest-lag-p99`       | pifleet `IngestLag` p99, service=ingest        | > 60 s in 3 of 5 one-minute periods      | not breaching: no batch, no lag |
 * | `<stack>-silent-devices`       | pifleet `SilentDevices` Maximum, service=silent-devices | > 0 in 5 min                    | ignore: keep the last state (see below) |
 * | `<stack>-silent-devices-check` | pifleet `SilentDevices` SampleCount            | < 1 in 3 consecutive 5-min periods       | breaching: the check did not run |
 *
 * Missing `SilentDevices` means the check did not run or failed, not that the fleet is fine, so the
 * silent-devices alarm neither clears nor fires on it (`ignore`), and a second alarm fires on the
 * missing data itself (three periods: one late run is not an outage). A new stack has no data yet,
 * so that alarm may fire once and clear within 5 minutes of the first deployment.
 */

/** How often the silent-devices check runs. */
export const SILENT_DEVICES_SCHEDULE = Duration.minutes(5);

/** Ingest lag p99 above which the ingest-lag alarm fires (default of {@link ObservabilityProps.ingestLagThreshold}). */
export const DEFAULT_INGEST_LAG_THRESHOLD = Duration.seconds(60);

/**
 * The metric the rule-error metric filter publishes (namespace {@link METRICS_NAMESPACE}): one per
 * line an error action writes to its log group. CloudWatch Logs publishes it, not a handler, so it
 * is not in the port's `CLOUD_METRICS`.
 */
export const RULE_ERRORS_METRIC = 'RuleErrors';

/**
 * The `service` dimension each handler's EMF metrics carry (`adapters/emf-metrics.ts`, the
 * `serviceName` of each Lambda entry point).
 */
export const METRIC_SERVICES = { ingest: 'ingest', command: 'command', silentDevices: 'silent-devices' } as const;

/** IoT Core's message broker metrics on the dashboard; each is published per `Protocol`. */
export const IOT_BROKER_METRICS = [
  'Connect.Success',
  'Connect.AuthError',
  'Connect.Throttle',
  'PublishIn.Success',
  'PublishIn.Throttle',
] as const;

export interface ObservabilityProps {
  /** Every Lambda function of the stack, by name: each gets an Errors and a Throttles alarm and dashboard lines. */
  readonly functions: Readonly<Record<string, lambda.IFunction>>;
  /** The silent-devices check the schedule invokes. */
  readonly silentDevices: lambda.IFunction;
  /** On-failure destinations, by the name of the function they serve: each gets a depth alarm. */
  readonly failureQueues: Readonly<Record<string, sqs.IQueue>>;
  /** The deployed rules: their error actions' log groups are counted, their IoT metrics charted. */
  readonly rules: readonly RuleDefinition[];
  readonly topicRules: TopicRules;
  /** An address subscribed to the alarm topic (it must confirm the subscription from the email SNS sends). */
  readonly alarmEmail?: string;
  readonly ingestLagThreshold?: Duration;
  /** The silent-devices function's threshold, for the alarm's description. */
  readonly silentAfterMinutes?: number;
}

export class Observability extends Construct {
  readonly alarmTopic: sns.Topic;
  readonly schedule: events.Rule;
  readonly dashboard: cloudwatch.Dashboard;
  /** Every alarm, by the part of its name after the stack's. */
  readonly alarms: ReadonlyMap<string, cloudwatch.Alarm>;

  constructor(scope: Construct, id: string, props: ObservabilityProps) {
    super(scope, id);
    const stackName = Stack.of(this).stackName;
    const lagThreshold = props.ingestLagThreshold ?? DEFAULT_INGEST_LAG_THRESHOLD;
    const lagMs = lagThreshold.toMilliseconds();
    if (!(lagMs > 0)) {
      throw new DeploymentError('BAD_SETTING', 'ingestLagThreshold must be positive', { data: { lagMs } });
    }
    if (props.alarmEmail !== undefined && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(props.alarmEmail)) {
      throw new DeploymentError('BAD_SETTING', 'alarmEmail must be an email address', {
        data: { alarmEmail: props.alarmEmail },
      });
    }

    this.alarmTopic = new sns.Topic(this, 'AlarmTopic', { displayName: `pifleet alarms (${stackName})` });
    if (props.alarmEmail !== undefined) {
      this.alarmTopic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    }

    // EventBridge invokes the function asynchronously. A delivery it cannot make within 4 minutes
    // is dropped rather than run late: the next run, 5 minutes after this one, replaces it.
    this.schedule = new events.Rule(this, 'SilentDevicesSchedule', {
      description: 'pifleet: the silent-devices check',
      schedule: events.Schedule.rate(SILENT_DEVICES_SCHEDULE),
      targets: [
        new targets.LambdaFunction(props.silentDevices, { retryAttempts: 2, maxEventAge: Duration.minutes(4) }),
      ],
    });

    const alarms = new Map<string, cloudwatch.Alarm>();
    const action = new cwActions.SnsAction(this.alarmTopic);
    const alarm = (
      name: string,
      metric: cloudwatch.IMetric,
      settings: Omit<cloudwatch.CreateAlarmOptions, 'alarmName'> & { readonly alarmDescription: string },
    ) => {
      const created = new cloudwatch.Alarm(this, `Alarm-${name}`, {
        metric,
        alarmName: `${stackName}-${name}`,
        ...settings,
      });
      created.addAlarmAction(action);
      created.addOkAction(action);
      alarms.set(name, created);
      return created;
    };
    const atLeastOne = {
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
    };
    const FIVE_MINUTES = Duration.minutes(5);

    // --- rule errors: every rule's error action that logs, counted by a metric filter ---------
    const errorLogGroups = [
      ...new Set(props.rules.flatMap((r) => (r.errorAction.kind === 'log' ? [r.errorAction.logGroup] : []))),
    ].flatMap((name) => {
      const group = props.topicRules.logGroups.get(name);
      return group === undefined ? [] : [group];
    });
    const ruleErrors = new cloudwatch.Metric({
      namespace: METRICS_NAMESPACE,
      metricName: RULE_ERRORS_METRIC,
      statistic: 'Sum',
      period: FIVE_MINUTES,
    });
    for (const [i, logGroup] of errorLogGroups.entries()) {
      // No dimensions: one metric for every rule (a dimension per rule name would be a custom
      // metric each); the log line itself names the rule, the topic and the failed action.
      new logs.MetricFilter(this, `RuleErrorsFilter${i}`, {
        logGroup,
        filterPattern: logs.FilterPattern.allEvents(),
        metricNamespace: METRICS_NAMESPACE,
        metricName: RULE_ERRORS_METRIC,
        metricValue: '1',
      });
    }
    if (errorLogGroups.length > 0) {
      alarm('rule-errors', ruleErrors, {
        ...atLeastOne,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescription: `An IoT rule action failed; its error action logged the message to ${errorLogGroups
          .map((g) => g.logGroupName)
          .join(', ')}.`,
      });
    }

    // --- failure queues ----------------------------------------------------------------------
    const queueDepth = Object.entries(props.failureQueues).map(([name, queue]) => {
      // No label on an alarm's metric: with one, CloudFormation gets the metric-math form.
      const depth = queue.metricApproximateNumberOfMessagesVisible({ statistic: 'Maximum', period: FIVE_MINUTES });
      alarm(`${name}-failure-queue`, depth, {
        ...atLeastOne,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescription: `Events the ${name} function failed on after every retry are waiting in its failure queue.`,
      });
      return depth.with({ label: `${name} failure queue` });
    });

    // --- Lambda errors and throttles ---------------------------------------------------------
    const fns = Object.entries(props.functions);
    for (const [name, fn] of fns) {
      alarm(`${name}-errors`, fn.metricErrors({ statistic: 'Sum', period: FIVE_MINUTES }), {
        ...atLeastOne,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescription: `The ${name} function failed (threw, timed out or ran out of memory).`,
      });
      alarm(`${name}-throttles`, fn.metricThrottles({ statistic: 'Sum', period: FIVE_MINUTES }), {
        ...atLeastOne,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescription: `Lambda refused invocations of the ${name} function (concurrency limit).`,
      });
    }

    // --- the handlers' own metrics -----------------------------------------------------------
    const pifleet = (service: string, metricName: CloudMetricName, statistic: string, period: Duration) =>
      new cloudwatch.Metric({
        namespace: METRICS_NAMESPACE,
        metricName,
        dimensionsMap: { service },
        statistic,
        period,
      });
    const ONE_MINUTE = Duration.minutes(1);
    const lagP99 = pifleet(METRIC_SERVICES.ingest, 'IngestLag', 'p99', ONE_MINUTE);
    alarm('ingest-lag-p99', lagP99, {
      threshold: lagMs,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 5,
      datapointsToAlarm: 3,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription: `Batches take more than ${lagThreshold.toSeconds()} s from the agent sealing them to the table (p99, 3 of 5 minutes).`,
    });
    const silent = pifleet(METRIC_SERVICES.silentDevices, 'SilentDevices', 'Maximum', FIVE_MINUTES);
    alarm('silent-devices', silent, {
      ...atLeastOne,
      treatMissingData: cloudwatch.TreatMissingData.IGNORE,
      alarmDescription: `Things have been disconnected, or connected without storing a reading, for longer than ${
        props.silentAfterMinutes === undefined ? 'SILENT_AFTER_MINUTES' : `${props.silentAfterMinutes} minutes`
      }; the silent-devices function logs their names.`,
    });
    alarm(
      'silent-devices-check',
      pifleet(METRIC_SERVICES.silentDevices, 'SilentDevices', 'SampleCount', FIVE_MINUTES),
      {
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
        evaluationPeriods: 3,
        treatMissingData: cloudwatch.TreatMissingData.BREACHING,
        alarmDescription:
          'The silent-devices check has reported nothing for 15 minutes: it is failing or not scheduled.',
      },
    );
    this.alarms = alarms;

    // --- dashboard ---------------------------------------------------------------------------
    const ingest = (metricName: CloudMetricName, label: string) =>
      pifleet(METRIC_SERVICES.ingest, metricName, 'Sum', ONE_MINUTE).with({ label });
    const command = (metricName: CloudMetricName, label: string) =>
      pifleet(METRIC_SERVICES.command, metricName, 'Sum', ONE_MINUTE).with({ label });
    const perFunction = (label: string, metric: (fn: lambda.IFunction) => cloudwatch.Metric) =>
      fns.map(([name, fn]) => metric(fn).with({ label: `${name} ${label}` }));
    const iotRule = (metricName: string, rule: string) =>
      new cloudwatch.Metric({
        namespace: 'AWS/IoT',
        metricName,
        dimensionsMap: { RuleName: rule },
        statistic: 'Sum',
        period: FIVE_MINUTES,
        label: `${rule} ${metricName}`,
      });
    // A SEARCH, not one metric per protocol: IoT Core publishes these per `Protocol` (MQTT, HTTP,
    // …), and the search draws whichever the account has, each line labelled with its dimensions
    // by CloudWatch (no label here: one would name every line the same).
    const broker = (metricName: string) =>
      new cloudwatch.MathExpression({
        expression: `SEARCH('Namespace="AWS/IoT" MetricName="${metricName}"', 'Sum', 300)`,
        usingMetrics: {},
        period: FIVE_MINUTES,
      });
    const graph = (title: string, left: cloudwatch.IMetric[], extra: Partial<cloudwatch.GraphWidgetProps> = {}) =>
      new cloudwatch.GraphWidget({ title, left, width: 8, height: 6, ...extra });
    const line = (label: string, value: number) => ({ label, value, color: cloudwatch.Color.RED });
    const ruleNames = props.rules.map((r) => r.name);

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: `${stackName}-fleet`,
      defaultInterval: Duration.hours(3),
      widgets: [
        [
          new cloudwatch.AlarmStatusWidget({
            title: 'Alarms',
            alarms: [...alarms.values()],
            width: 24,
            height: 3,
          }),
        ],
        [
          graph('Readings stored', [ingest('ReadingsStored', 'readings stored')]),
          graph('Batches', [
            ingest('BatchesStored', 'stored'),
            ingest('BatchesDeduplicated', 'deduplicated'),
            ingest('PoisonBatches', 'poison'),
            ingest('StoreFailures', 'store failures'),
          ]),
          graph(
            'Ingest lag (sealed → stored)',
            [
              pifleet(METRIC_SERVICES.ingest, 'IngestLag', 'p50', ONE_MINUTE).with({ label: 'p50' }),
              lagP99.with({ label: 'p99' }),
            ],
            { leftAnnotations: [line('alarm', lagMs)], leftYAxis: { label: 'ms', showUnits: false, min: 0 } },
          ),
        ],
        [
          graph('Commands', [
            command('CommandsAccepted', 'accepted'),
            command('CommandsRejected', 'rejected'),
            command('CommandsConflicting', 'conflicting (409)'),
          ]),
          graph('Silent devices', [silent.with({ label: 'silent devices' })], {
            leftAnnotations: [line('alarm', 1)],
            leftYAxis: { min: 0 },
          }),
          graph('Failures waiting', [...queueDepth], { right: [ruleErrors.with({ label: 'rule errors' })] }),
        ],
        [
          graph(
            'Lambda errors',
            perFunction('errors', (fn) => fn.metricErrors({ statistic: 'Sum', period: ONE_MINUTE })),
          ),
          graph(
            'Lambda throttles',
            perFunction('throttles', (fn) => fn.metricThrottles({ statistic: 'Sum', period: ONE_MINUTE })),
          ),
          graph(
            'Lambda duration p99',
            perFunction('p99', (fn) => fn.metricDuration({ statistic: 'p99', period: ONE_MINUTE })),
          ),
        ],
        [
          graph('IoT Core connects', IOT_BROKER_METRICS.filter((m) => m.startsWith('Connect.')).map(broker)),
          graph('IoT Core messages in', IOT_BROKER_METRICS.filter((m) => m.startsWith('PublishIn.')).map(broker)),
          graph(
            'IoT rules',
            ruleNames.map((rule) => iotRule('TopicMatch', rule)),
            { right: ruleNames.map((rule) => iotRule('RuleMessageThrottled', rule)) },
          ),
        ],
      ],
    });
  }
}
