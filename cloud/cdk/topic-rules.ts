import { Aws, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as iot from 'aws-cdk-lib/aws-iot';
import * as firehose from 'aws-cdk-lib/aws-kinesisfirehose';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { archiveStreamProblem, firehoseLayout } from '../src/rules/archive-layout.js';
import type {
  ArchiveStream,
  RepublishHeaders,
  RuleAction,
  RuleDefinition,
  RuleHandlerName,
} from '../src/rules/definitions.js';
import { DeploymentError } from './errors.js';

/**
 * Turns the rule definitions (`src/rules/definitions.ts`, the same file the local rules engine
 * loads) into `AWS::IoT::TopicRule` resources, with least privilege for every action:
 *
 * | action      | IoT rule action       | what IoT may do (one role per rule action, assumable only by that rule) |
 * |-------------|-----------------------|--------------------------------------------------------------------------|
 * | `lambda`    | `lambda`              | nothing through a role: a `lambda:InvokeFunction` permission on the function for `iot.amazonaws.com` from that rule's ARN and this account |
 * | `republish` | `republish`           | `iot:Publish` on the topic ARN the template can render (`${…}` → `*`)   |
 * | `archive`   | `s3`                  | `s3:PutObject` on `<bucket>/<static key prefix>*`                       |
 * | `firehose`  | `firehose` (separator `\n`) | `firehose:PutRecord`, `firehose:PutRecordBatch` on that delivery stream |
 * | `log`       | `cloudwatchLogs`      | `logs:CreateLogStream`, `logs:DescribeLogStreams`, `logs:PutLogEvents` on that log group (the three IoT documents as required for this action) |
 *
 * The error action is translated the same way and set on every rule.
 *
 * A `firehose` action's stream is made here, once per stream name (see {@link ArchiveDeliveryStreams}
 * below): DirectPut, dynamic partitioning by the record's thing field (JQ) and the arrival day,
 * GZIP, the key layout of `src/rules/archive-layout.ts` (the local archive writes the same keys),
 * its own role allowed to write only under its two prefixes of the archive bucket.
 */

/** A republish action's MQTT 5 headers as CloudFormation takes them (the same fields; mutable arrays). */
function cfnHeaders(headers: RepublishHeaders): iot.CfnTopicRule.RepublishActionHeadersProperty {
  const { userProperties, ...values } = headers;
  return {
    ...values,
    ...(userProperties === undefined ? {} : { userProperties: userProperties.map((p) => ({ ...p })) }),
  };
}

export interface TopicRuleTargets {
  /** The function each `lambda` action invokes. */
  readonly functions: Readonly<Partial<Record<RuleHandlerName, lambda.IFunction>>>;
  /** The bucket `archive` and `firehose` actions write to (required when a rule archives); an `s3.Bucket`. */
  readonly archiveBucket?: Pick<s3.IBucket, 'bucketName' | 'bucketArn' | 'arnForObjects'>;
}

/**
 * Firehose's buffering hints for the archive streams. With dynamic partitioning Firehose takes
 * 60-900 s and 64-128 MiB; a partition (one thing, one day) is delivered when either is reached,
 * so for telemetry (a thing sends ~6 KB a minute) the interval decides: one object per thing per
 * interval. Longer means fewer, larger objects (cost: per object) and an archive that lags more
 * (Firehose's multi-stage buffering can take 1.5× the interval).
 */
export interface ArchiveBufferingHints {
  /** Default 300 s. */
  readonly interval?: Duration;
  /** Default 64 MiB (Firehose's minimum with dynamic partitioning). */
  readonly sizeMiB?: number;
}

export const DEFAULT_ARCHIVE_BUFFERING_HINTS = { intervalSeconds: 300, sizeMiB: 64 } as const;

export interface TopicRulesProps extends TopicRuleTargets {
  readonly rules: readonly RuleDefinition[];
  /** Retention of the log groups that `log` actions write to (default one month). */
  readonly logRetention?: logs.RetentionDays;
  /** What happens to those log groups when the stack is deleted (default RETAIN: they hold the failures). */
  readonly logRemovalPolicy?: RemovalPolicy;
  /** Buffering of the archive delivery streams (default {@link DEFAULT_ARCHIVE_BUFFERING_HINTS}). */
  readonly archiveBuffering?: ArchiveBufferingHints;
}

/**
 * A substitution template as an IAM resource pattern: every `${…}` (whatever it renders to) becomes
 * `*`. Braces inside a template expression, and quotes in it, are skipped over correctly.
 */
export function templateToWildcard(template: string): string {
  let out = '';
  let i = 0;
  while (i < template.length) {
    if (template.startsWith('${', i)) {
      const end = templateExpressionEnd(template, i + 2);
      if (!out.endsWith('*')) out += '*';
      i = end + 1;
    } else {
      out += template[i];
      i++;
    }
  }
  return out;
}

/** The literal text of a template before its first `${…}` (the whole template when it has none). */
export function templateStaticPrefix(template: string): string {
  const at = template.indexOf('${');
  return at === -1 ? template : template.slice(0, at);
}

/** Index of the `}` that closes the expression starting at `from` (just after `${`). */
function templateExpressionEnd(template: string, from: number): number {
  let depth = 0;
  let quote: string | undefined;
  for (let i = from; i < template.length; i++) {
    const c = template[i];
    if (quote !== undefined) {
      if (c === quote) quote = undefined;
      continue;
    }
    if (c === "'" || c === '"') quote = c;
    else if (c === '{') depth++;
    else if (c === '}') {
      if (depth === 0) return i;
      depth--;
    }
  }
  throw new DeploymentError(
    'TEMPLATE_UNTERMINATED',
    `substitution template ${JSON.stringify(template)} has an unclosed \${`,
    {
      data: { template },
    },
  );
}

/** The ARN of a rule by name (built, not referenced, so a role's trust policy can name its rule without a cycle). */
export function topicRuleArn(scope: Construct, ruleName: string): string {
  return Stack.of(scope).formatArn({ service: 'iot', resource: 'rule', resourceName: ruleName });
}

/** One `AWS::IoT::TopicRule` per definition, its action roles and log groups, and its Lambda invoke permissions. */
export class TopicRules extends Construct {
  /** The rule resource of each definition, by rule name. */
  readonly rules: ReadonlyMap<string, iot.CfnTopicRule>;
  /** Log groups the `log` actions write to, by log group name. */
  readonly logGroups: ReadonlyMap<string, logs.LogGroup>;
  /** Delivery streams the `firehose` actions put records into, by stream name. */
  readonly archiveStreams: ReadonlyMap<string, firehose.CfnDeliveryStream>;

  private readonly targets: TopicRuleTargets;
  private readonly groups = new Map<string, logs.LogGroup>();
  private readonly streams = new Map<
    string,
    { readonly stream: ArchiveStream; readonly resource: firehose.CfnDeliveryStream }
  >();
  private readonly buffering: { readonly intervalSeconds: number; readonly sizeMiB: number };
  private readonly logRetention: logs.RetentionDays;
  private readonly logRemovalPolicy: RemovalPolicy;

  constructor(scope: Construct, id: string, props: TopicRulesProps) {
    super(scope, id);
    this.targets = props;
    this.logRetention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;
    this.logRemovalPolicy = props.logRemovalPolicy ?? RemovalPolicy.RETAIN;
    this.buffering = {
      intervalSeconds: props.archiveBuffering?.interval?.toSeconds() ?? DEFAULT_ARCHIVE_BUFFERING_HINTS.intervalSeconds,
      sizeMiB: props.archiveBuffering?.sizeMiB ?? DEFAULT_ARCHIVE_BUFFERING_HINTS.sizeMiB,
    };
    const { intervalSeconds, sizeMiB } = this.buffering;
    if (!(Number.isInteger(intervalSeconds) && intervalSeconds >= 60 && intervalSeconds <= 900)) {
      throw new DeploymentError('BAD_SETTING', 'archiveBuffering.interval must be 60-900 whole seconds', {
        data: { intervalSeconds },
      });
    }
    if (!(Number.isInteger(sizeMiB) && sizeMiB >= 64 && sizeMiB <= 128)) {
      throw new DeploymentError('BAD_SETTING', 'archiveBuffering.sizeMiB must be 64-128 (dynamic partitioning)', {
        data: { sizeMiB },
      });
    }
    const names = new Set<string>();
    const rules = new Map<string, iot.CfnTopicRule>();
    for (const def of props.rules) {
      if (names.has(def.name)) {
        throw new DeploymentError('RULE_DUPLICATE', `two rules are named ${def.name}`, { data: { rule: def.name } });
      }
      names.add(def.name);
      rules.set(def.name, this.addRule(def));
    }
    this.rules = rules;
    this.logGroups = this.groups;
    this.archiveStreams = new Map([...this.streams].map(([name, s]) => [name, s.resource]));
  }

  private addRule(def: RuleDefinition): iot.CfnTopicRule {
    const scope = new Construct(this, def.name);
    const invoked: lambda.IFunction[] = [];
    const roles: iam.Role[] = [];
    const translate = (action: RuleAction, id: string) => this.translate(scope, def, action, id, invoked, roles);
    const rule = new iot.CfnTopicRule(scope, 'Rule', {
      ruleName: def.name,
      topicRulePayload: {
        description: def.description,
        sql: def.sql,
        awsIotSqlVersion: def.sqlVersion,
        ruleDisabled: false,
        actions: def.actions.map((action, i) => translate(action, `Action${i}`)),
        errorAction: translate(def.errorAction, 'ErrorAction'),
      },
    });
    // IoT assumes the roles at the first message: their policies must exist before the rule does.
    for (const role of roles) rule.node.addDependency(role);
    const seen = new Set<lambda.IFunction>();
    for (const fn of invoked) {
      if (seen.has(fn)) continue;
      seen.add(fn);
      fn.addPermission(`InvokedBy${def.name}`, {
        principal: new iam.ServicePrincipal('iot.amazonaws.com'),
        action: 'lambda:InvokeFunction',
        sourceArn: rule.attrArn,
        sourceAccount: Aws.ACCOUNT_ID,
      });
    }
    return rule;
  }

  private translate(
    scope: Construct,
    def: RuleDefinition,
    action: RuleAction,
    id: string,
    invoked: lambda.IFunction[],
    roles: iam.Role[],
  ): iot.CfnTopicRule.ActionProperty {
    const role = (statement: iam.PolicyStatement) => {
      const r = new iam.Role(scope, `${id}Role`, {
        description: `IoT rule ${def.name}: ${id === 'ErrorAction' ? 'error action' : `action ${id.slice(6)}`} (${action.kind})`,
        assumedBy: new iam.ServicePrincipal('iot.amazonaws.com', {
          conditions: {
            StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID },
            ArnEquals: { 'aws:SourceArn': topicRuleArn(scope, def.name) },
          },
        }),
        maxSessionDuration: Duration.hours(1),
      });
      r.addToPrincipalPolicy(statement);
      roles.push(r);
      return r;
    };

    switch (action.kind) {
      case 'lambda': {
        const fn = this.targets.functions[action.handler];
        if (fn === undefined) {
          throw new DeploymentError(
            'RULE_TARGET_MISSING',
            `rule ${def.name} invokes handler ${action.handler}, which the stack does not deploy`,
            {
              data: { rule: def.name, handler: action.handler },
            },
          );
        }
        invoked.push(fn);
        return { lambda: { functionArn: fn.functionArn } };
      }
      case 'republish': {
        const topicArn = Stack.of(scope).formatArn({
          service: 'iot',
          resource: 'topic',
          resourceName: templateToWildcard(action.topic),
        });
        const r = role(new iam.PolicyStatement({ actions: ['iot:Publish'], resources: [topicArn] }));
        return {
          republish: {
            topic: action.topic,
            qos: action.qos,
            roleArn: r.roleArn,
            // MQTT 5 headers: the same MqttHeaders shape in CloudFormation as in the rule file.
            ...(action.headers === undefined ? {} : { headers: cfnHeaders(action.headers) }),
          },
        };
      }
      case 'archive': {
        const bucket = this.archiveBucketOf(def.name);
        const r = role(
          new iam.PolicyStatement({
            actions: ['s3:PutObject'],
            resources: [bucket.arnForObjects(`${templateStaticPrefix(action.key)}*`)],
          }),
        );
        return { s3: { bucketName: bucket.bucketName, key: action.key, roleArn: r.roleArn } };
      }
      case 'firehose': {
        const stream = this.archiveStream(def, action.stream);
        const r = role(
          new iam.PolicyStatement({
            actions: ['firehose:PutRecord', 'firehose:PutRecordBatch'],
            resources: [stream.attrArn],
          }),
        );
        return {
          firehose: {
            deliveryStreamName: action.stream.name,
            roleArn: r.roleArn,
            separator: action.separator,
            // One record per message (the batch mode would split a JSON array into records).
            batchMode: false,
          },
        };
      }
      case 'log': {
        const group = this.logGroup(action.logGroup);
        const r = role(
          new iam.PolicyStatement({
            actions: ['logs:CreateLogStream', 'logs:DescribeLogStreams', 'logs:PutLogEvents'],
            resources: [group.logGroupArn],
          }),
        );
        return { cloudwatchLogs: { logGroupName: group.logGroupName, roleArn: r.roleArn } };
      }
    }
  }

  /**
   * The delivery stream of an archive stream description, made on first use. Its role may write
   * objects (and abort their multipart uploads) under the stream's two prefixes only, list the
   * bucket and read its location (what Firehose's S3 delivery calls), and write its delivery
   * error log; the trust policy names this account as the external id, as Firehose's guide does.
   * The guide's example policy also grants `s3:GetObject`: delivery only writes, so it is left out
   * (were it needed, the delivery-error log would show the AccessDenied).
   *
   * Scale: each thing with records in the current buffer interval is one active partition; a
   * stream has 500 by default, 5,000 at most on request, and records past the quota go to the
   * error prefix (`activePartitionExceeded`). A larger fleet needs more streams or a coarser key.
   */
  private archiveStream(def: RuleDefinition, stream: ArchiveStream): firehose.CfnDeliveryStream {
    const known = this.streams.get(stream.name);
    if (known !== undefined) {
      if (JSON.stringify(known.stream) !== JSON.stringify(stream)) {
        throw new DeploymentError('ARCHIVE_STREAM_CONFLICT', `two archive streams are named ${stream.name}`, {
          data: { rule: def.name, stream: stream.name },
        });
      }
      return known.resource;
    }
    const problem = archiveStreamProblem(stream);
    if (problem !== undefined) {
      throw new DeploymentError('BAD_ARCHIVE_STREAM', `archive stream ${stream.name}: ${problem}`, {
        data: { rule: def.name, stream: stream.name },
      });
    }
    const bucket = this.archiveBucketOf(def.name);
    const scope = new Construct(this, `Archive${this.streams.size}`);
    const logGroup = new logs.LogGroup(scope, 'DeliveryLogs', {
      logGroupName: `/aws/kinesisfirehose/${stream.name}`,
      retention: this.logRetention,
      removalPolicy: this.logRemovalPolicy,
    });
    const logStream = new logs.LogStream(scope, 'DeliveryLogStream', {
      logGroup,
      logStreamName: 'DestinationDelivery',
      removalPolicy: this.logRemovalPolicy,
    });
    const deliveryRole = new iam.Role(scope, 'DeliveryRole', {
      description: `Firehose ${stream.name}: delivers into the archive bucket under ${stream.prefix} and ${stream.errorPrefix}`,
      assumedBy: new iam.ServicePrincipal('firehose.amazonaws.com', {
        conditions: { StringEquals: { 'sts:ExternalId': Aws.ACCOUNT_ID } },
      }),
      maxSessionDuration: Duration.hours(1),
    });
    deliveryRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['s3:AbortMultipartUpload', 's3:PutObject'],
        resources: [bucket.arnForObjects(`${stream.prefix}*`), bucket.arnForObjects(`${stream.errorPrefix}*`)],
      }),
    );
    deliveryRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['s3:GetBucketLocation', 's3:ListBucket', 's3:ListBucketMultipartUploads'],
        resources: [bucket.bucketArn],
      }),
    );
    deliveryRole.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['logs:PutLogEvents'], resources: [logGroup.logGroupArn] }),
    );
    const layout = firehoseLayout(stream);
    const resource = new firehose.CfnDeliveryStream(scope, 'Stream', {
      deliveryStreamName: stream.name,
      deliveryStreamType: 'DirectPut',
      deliveryStreamEncryptionConfigurationInput: { keyType: 'AWS_OWNED_CMK' },
      extendedS3DestinationConfiguration: {
        bucketArn: bucket.bucketArn,
        roleArn: deliveryRole.roleArn,
        prefix: layout.prefix,
        errorOutputPrefix: layout.errorOutputPrefix,
        fileExtension: layout.fileExtension,
        compressionFormat: 'GZIP',
        bufferingHints: { intervalInSeconds: this.buffering.intervalSeconds, sizeInMBs: this.buffering.sizeMiB },
        dynamicPartitioningConfiguration: { enabled: true, retryOptions: { durationInSeconds: 300 } },
        processingConfiguration: {
          enabled: true,
          processors: [
            {
              type: 'MetadataExtraction',
              parameters: [
                { parameterName: 'MetadataExtractionQuery', parameterValue: layout.metadataExtractionQuery },
                { parameterName: 'JsonParsingEngine', parameterValue: 'JQ-1.6' },
              ],
            },
          ],
        },
        cloudWatchLoggingOptions: {
          enabled: true,
          logGroupName: logGroup.logGroupName,
          logStreamName: logStream.logStreamName,
        },
      },
    });
    // Firehose checks that it can assume the role and write when the stream is created.
    resource.node.addDependency(deliveryRole);
    this.streams.set(stream.name, { stream, resource });
    return resource;
  }

  /** The archive bucket a rule that archives writes to; a deployment error when the stack has none. */
  private archiveBucketOf(rule: string): NonNullable<TopicRuleTargets['archiveBucket']> {
    const bucket = this.targets.archiveBucket;
    if (bucket === undefined) {
      throw new DeploymentError('RULE_TARGET_MISSING', `rule ${rule} archives, but the stack has no archive bucket`, {
        data: { rule },
      });
    }
    return bucket;
  }

  private logGroup(name: string): logs.LogGroup {
    if (name.includes('${')) {
      throw new DeploymentError(
        'LOG_GROUP_TEMPLATE',
        `log group ${name} is a template; the stack can only create fixed log groups`,
        {
          data: { logGroup: name },
        },
      );
    }
    let group = this.groups.get(name);
    if (group === undefined) {
      group = new logs.LogGroup(this, `LogGroup${this.groups.size}`, {
        logGroupName: name,
        retention: this.logRetention,
        removalPolicy: this.logRemovalPolicy,
      });
      this.groups.set(name, group);
    }
    return group;
  }
}
